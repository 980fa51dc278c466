"""Which value of each axis scores best, and whether that stands out of the seed noise (scores.csv -> ranking).

Per scorer (a column of scores.csv), per varied axis (seeds, repeats and axes that follow another left out; a
prompt axis is not ranked by a text-image score, whose texts differ) and per group (each combination of the
other varied axes, as convergence.csv groups by sampler): every value's mean over seeds with a 95 % t interval
(mean +- t(0.975, n-1) * sd / sqrt(n); repeats of one seed averaged first). The best value is the highest mean.
Every other value is compared with it by the difference (value - best): paired by seed where both values have
the same seeds (the mean of the per-seed differences, its t interval over the pairs), else Welch's interval of
the difference of the means. A value whose interval of the difference reaches 0 is "within noise" of the best.

ranking.csv: `scorer`, `axis`, `group` (the other axes' values, '' when none vary), `value`, `mean`, `low`,
`high` (the 95 % interval of the mean), `seeds`, `best`, `diff` (value - best), `diff_low`, `diff_high`,
`pairs` (seeds paired; 0 for Welch), `method` (paired, welch, or none: a single seed cannot be told from noise),
`within_noise`. plots/scores_<scorer>_<axis>.png: the mean and interval per value, one line per group.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep import axes
from sweep.report import names as nm
from sweep.report.atomic import save_csv, save_figure
from sweep.report.layout import dependents, labels, order_values, varying
from sweep.report.metrics import NOT_AUTOMATIC, is_numeric
from sweep.report.sheets import safe

LEVEL = 0.95
CSV = "ranking.csv"
PREFIX = "scores_"
MAX_GROUPS = 6  # sentences per scorer and axis; the rest are in ranking.csv
MAX_LINES = 8  # lines per plot
TEXT_SCORERS = ("clip_score", "pickscore")
PROMPT_AXES = ("prompt", "prompt_2", "prompt_sr")
COLUMNS = ["scorer", "axis", "group", "value", "mean", "low", "high", "seeds", "best", "diff", "diff_low",
           "diff_high", "pairs", "method", "within_noise"]


def t_quantile(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df))


def t_interval(values: Any) -> tuple[float, float, float, int]:
    """(mean, low, high, n): the 95 % t interval of the mean; low = high = NaN with fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def difference(other: pd.Series, best: pd.Series) -> tuple[float, float, float, int, str]:
    """(diff, low, high, pairs, method) of other - best, two Series of per-seed scores indexed by seed: paired
    when they share the same seeds (at least 2), else Welch; method 'none' when neither has 2 seeds."""
    common = other.index.intersection(best.index)
    if len(common) >= 2 and len(common) == len(other) == len(best):
        mean, low, high, n = t_interval(other[common].to_numpy(float) - best[common].to_numpy(float))
        return mean, low, high, n, "paired"
    diff = float(other.mean() - best.mean())
    n1, n2 = len(other), len(best)
    if n1 < 2 or n2 < 2:
        return diff, math.nan, math.nan, 0, "none"
    v1, v2 = float(other.var(ddof=1)) / n1, float(best.var(ddof=1)) / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return diff, diff, diff, 0, "welch"
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    half = t_quantile(df) * se  # scipy takes a fractional df
    return diff, diff - half, diff + half, 0, "welch"


@dataclass
class Ranked:
    """One scorer's ranking of one axis's values in one group."""

    scorer: str
    axis: str
    keys: tuple[str, ...]  # the group axes
    group: tuple[str, ...]  # their values
    label: str  # 'Euler a · P1' ('' for the only group)
    table: pd.DataFrame  # one row per value: COLUMNS less scorer/axis/group
    best: str


def rank_axes(cells: pd.DataFrame, candidates: list[str]) -> list[str]:
    moving = [a for a in varying(cells, candidates) if a not in NOT_AUTOMATIC]
    follow = dependents(cells, moving)
    return [a for a in moving if a not in follow]


def rank_group(frame: pd.DataFrame, values: list[str]) -> tuple[pd.DataFrame, str]:
    """frame: value, seed, score (one group). Per-seed means first (repeats of a seed are one draw)."""
    per_seed = frame.groupby(["value", "seed"], sort=False)["score"].mean()
    series = {v: per_seed.loc[v] for v in values if v in per_seed.index.get_level_values(0)}
    stats = {v: t_interval(s.to_numpy(float)) for v, s in series.items()}
    best = max(stats, key=lambda v: stats[v][0])
    rows = []
    for value in [v for v in values if v in stats]:
        mean, low, high, n = stats[value]
        if value == best:
            diff = (0.0, 0.0, 0.0, n, "best")
        else:
            diff = difference(series[value], series[best])
        within = value != best and diff[4] != "none" and diff[2] >= 0
        rows.append({"value": value, "mean": mean, "low": low, "high": high, "seeds": n, "best": value == best,
                     "diff": diff[0], "diff_low": diff[1], "diff_high": diff[2], "pairs": diff[3],
                     "method": diff[4], "within_noise": within})
    return pd.DataFrame(rows), best


def rank(cells: pd.DataFrame, candidates: list[str], scores: dict[str, pd.Series]) -> list[Ranked]:
    """Every scorer x axis x group ranking (see the module doc). `scores`: {scorer: float Series on cells'
    index, NaN where not scored}."""
    found: list[Ranked] = []
    moving = rank_axes(cells, candidates)
    seed = "seed" if "seed" in cells else None
    for scorer, values in scores.items():
        scored = cells[values.notna()]
        if scored.empty:
            continue
        for axis in moving:
            if scorer in TEXT_SCORERS and axis in PROMPT_AXES:
                continue
            if labels(scored, axis).nunique() < 2:
                continue
            keys = [a for a in moving if a != axis]
            frame = pd.DataFrame({k: labels(scored, k) for k in keys}, index=scored.index)
            frame["value"] = labels(scored, axis)
            frame["seed"] = labels(scored, seed) if seed else ""
            frame["score"] = values[scored.index].astype(float)
            order = order_values(cells, axis)
            groups = frame.groupby(keys, sort=False) if keys else [((), frame)]
            ranks = {k: {v: i for i, v in enumerate(order_values(cells, k))} for k in keys}
            for key, part in sorted(groups, key=lambda g: _rank_key(g[0], keys, ranks)):
                key = key if isinstance(key, tuple) else (key,)
                if part["value"].nunique() < 2:
                    continue
                table, best = rank_group(part, order)
                label = " · ".join(nm.name(cells, k, v) for k, v in zip(keys, key, strict=True))
                found.append(Ranked(scorer, axis, tuple(keys), tuple(key), label, table, best))
    return found


def _rank_key(key: Any, keys: list[str], ranks: dict[str, dict[str, int]]) -> tuple[int, ...]:
    key = key if isinstance(key, tuple) else (key,)
    return tuple(ranks[k].get(v, 0) for k, v in zip(keys, key, strict=True))


# --- sentences --------------------------------------------------------------------------------------------


def fmt(value: float, scale: float) -> str:
    """A score with as many decimals as its interval's width asks (3 significant digits of the width)."""
    scale = abs(scale) if scale == scale and scale else abs(value) or 1.0
    decimals = min(4, max(1, 1 - math.floor(math.log10(scale)))) if scale else 1
    return f"{value:.{decimals}f}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _values(cells: pd.DataFrame, axis: str, values: list[str]) -> str:
    """'5 and 9' when the axis says every value as 'HEAD value' (CFG 5), else each value named ('Euler a and DDIM',
    'P1 and P2')."""
    said = [nm.name(cells, axis, v) for v in values]
    plain = [axes.label(axis, v) for v in values]
    heads = {s[: -len(p)] for s, p in zip(said, plain, strict=True) if p and s.endswith(" " + p)}
    if len(heads) == 1 and all(s.endswith(" " + p) for s, p in zip(said, plain, strict=True) if p):
        said = plain
    return _join(said)


def sentence(r: Ranked, cells: pd.DataFrame) -> str:
    """'CFG 7 scores highest on clip_score (31.2, 95 % interval 30.8-31.6 over 16 seeds); 5 and 9 are within
    noise of it' / 'CFG: no value is better beyond seed noise on clip_score (highest: ...)'."""
    t = r.table.set_index("value")
    b = t.loc[r.best]
    width = (b["high"] - b["low"]) / 2 if b["high"] == b["high"] else abs(b["mean"]) / 100
    head = f"{r.label}: " if r.label else ""
    said = nm.name(cells, r.axis, r.best)
    if b["seeds"] >= 2:
        where = f"{fmt(b['mean'], width)}, 95 % interval {fmt(b['low'], width)}-{fmt(b['high'], width)} " \
                f"over {int(b['seeds'])} seeds"
    else:
        where = fmt(b["mean"], width)
    others = t[~t["best"]]
    unknown = [str(v) for v, row in others.iterrows() if row["method"] == "none"]
    near = [str(v) for v, row in others.iterrows() if row["within_noise"]]
    below = [str(v) for v, row in others.iterrows() if row["method"] != "none" and not row["within_noise"]]
    if unknown and not near and not below:
        return (f"{head}{said} scores highest on {r.scorer} ({where}); one seed per value: seed noise cannot be "
                f"told apart (sweep several seeds)")
    if near and not below and not unknown:
        at = f" at {r.label}" if r.label else ""
        return (f"{axes.title(r.axis)}{at}: no value is better beyond seed noise on {r.scorer} (highest: "
                f"{axes.label(r.axis, r.best) if not nm.is_text(r.axis) else said}, {where})")
    text = f"{head}{said} scores highest on {r.scorer} ({where})"
    if near:
        text += f"; {_values(cells, r.axis, near)} {'is' if len(near) == 1 else 'are'} within noise of it"
    if below:
        verb = "is" if len(below) == 1 else "are"
        text += f"; {_values(cells, r.axis, below)} {verb} lower beyond seed noise" if near else \
            f"; {'it is' if len(below) == 1 else 'both are' if len(below) == 2 else 'all are'} above " \
            f"{_values(cells, r.axis, below)} beyond seed noise"
    if unknown:
        text += f"; {_values(cells, r.axis, unknown)}: one seed, no interval"
    return text


def flat(r: Ranked) -> bool:
    """Every other value within noise of the best: no value stands out."""
    others = r.table[~r.table["best"]]
    return bool(len(others)) and bool(others["within_noise"].all())


def sentences(found: list[Ranked], cells: pd.DataFrame) -> list[str]:
    """One sentence per scorer, axis and group (at most MAX_GROUPS each); an axis on which no value stands out
    in any of several groups is one sentence."""
    out: list[str] = []
    for scorer, axis in dict.fromkeys((r.scorer, r.axis) for r in found):
        mine = [r for r in found if (r.scorer, r.axis) == (scorer, axis)]
        if len(mine) > 1 and all(flat(r) for r in mine):
            where = " · ".join(axes.title(k) for k in mine[0].keys)
            out.append(f"{axes.title(axis)}: no value is better beyond seed noise on {scorer}, at any {where} "
                       f"({len(mine)} groups; {CSV} has each)")
            continue
        out += [sentence(r, cells) for r in mine[:MAX_GROUPS]]
        if len(mine) > MAX_GROUPS:
            out.append(f"  ... {len(mine) - MAX_GROUPS} more groups for {axes.title(axis)} on {scorer} in {CSV}")
    said = "\n".join(out)
    text_axes = list(dict.fromkeys(k for r in found for k in (*r.keys, r.axis) if nm.is_text(k)))
    out += [t for t in nm.legend(cells, text_axes) if re.search(rf"\b{re.escape(t.split(':')[0])}\b", said)]
    return out


def table(found: list[Ranked]) -> pd.DataFrame:
    rows = []
    for r in found:
        for row in r.table.to_dict("records"):
            rows.append({"scorer": r.scorer, "axis": r.axis, "group": r.label, **row})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("mean", "low", "high", "diff", "diff_low", "diff_high"):
        frame[column] = frame[column].astype(float).round(6)
    return frame


# --- writing and drawing ------------------------------------------------------------------------------


def write_ranking(run_dir: Path, cells: pd.DataFrame, candidates: list[str], scores: dict[str, pd.Series],
                  out_dir: Path) -> tuple[list[Path], list[str]]:
    """ranking.csv, one plot per scorer and axis, and the sentences; earlier files of this kind that no longer
    apply are removed."""
    found = rank(cells, candidates, scores)
    written: list[Path] = []
    csv_path = run_dir / CSV
    if found:
        written.append(save_csv(table(found), csv_path))
    else:
        csv_path.unlink(missing_ok=True)
    lines = sentences(found, cells)
    for scorer, axis in dict.fromkeys((r.scorer, r.axis) for r in found):
        mine = [r for r in found if r.scorer == scorer and r.axis == axis]
        # A no-break space keeps '95 %' on one line when the note is wrapped.
        notes = [sentence(r, cells).replace("95 %", "95\u00a0%") for r in mine[:MAX_LINES]]
        written.append(plot(cells, mine, notes, out_dir / f"{PREFIX}{safe(scorer)}_{safe(axis)}.png"))
    if out_dir.is_dir():
        for path in out_dir.glob(f"{PREFIX}*.png"):
            if path not in written:
                path.unlink(missing_ok=True)
    return written, lines


def plot(cells: pd.DataFrame, found: list[Ranked], notes: list[str], path: Path) -> Path:
    """Mean and 95 % interval per value, one line (or column of points) per group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    axis, scorer = found[0].axis, found[0].scorer
    values = order_values(cells, axis)
    numeric = is_numeric(cells, axis)
    position = {v: (float(v) if numeric else float(i)) for i, v in enumerate(values)}
    lines = found[:MAX_LINES]
    if len(found) > MAX_LINES:
        notes = [*notes, f"{len(found) - MAX_LINES} more groups in {CSV}"]
    notes = [*notes, "Bars: 95 % t interval of the mean over seeds; a value is 'within noise' of the best when "
             "the interval of its difference to the best (paired by seed where the seeds match) reaches 0."]
    width = 8.0
    wrapped = [textwrap.fill(t, int(width * 13), subsequent_indent="    ") for t in notes]
    n_text = sum(w.count("\n") + 1 for w in wrapped)
    figure = Figure(figsize=(width, 4.6 + 0.16 * n_text), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 1, height_ratios=[1.0, max(0.08, 0.055 * n_text)])
    ax = figure.add_subplot(grid[0])
    text_ax = figure.add_subplot(grid[1])
    text_ax.axis("off")
    span = (max(position.values()) - min(position.values())) or 1.0
    step = span / max(1, len(values) - 1) if numeric else 1.0
    for index, r in enumerate(lines):
        data = r.table
        offset = (index - (len(lines) - 1) / 2) * min(0.08, 0.4 / max(1, len(lines))) * step
        x = np.array([position[v] for v in data["value"]]) + offset
        mean = data["mean"].to_numpy(float)
        low, high = data["low"].to_numpy(float), data["high"].to_numpy(float)
        errors = np.nan_to_num(np.clip(np.vstack([mean - low, high - mean]), 0, None))
        colour = f"C{index % 10}"
        ax.errorbar(x, mean, yerr=errors, fmt="o-" if numeric else "o", color=colour, capsize=3, markersize=4,
                    linewidth=1.2, label=r.label or "all")
        at = data.index[data["best"]][0]
        ax.plot([x[list(data.index).index(at)]], [mean[list(data.index).index(at)]], marker="*", markersize=13,
                color=colour, markeredgecolor="black", markeredgewidth=0.6, linestyle="none")
    ticks = [position[v] for v in values]
    shown = [axes.label(axis, v) if not nm.is_text(axis) else nm.name(cells, axis, v) for v in values]
    rotate = not numeric and (len(values) > 4 or max(len(s) for s in shown) > 10)
    if len(values) <= 15:
        ax.set_xticks(ticks, shown, rotation=30 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    ax.set_xlabel(axes.title(axis))
    ax.set_ylabel(f"{scorer} (mean over seeds)")
    ax.grid(True, alpha=0.3)
    if len(lines) > 1:
        group_axes = found[0].keys
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
                  title=" · ".join(axes.title(a) for a in group_axes) or None, title_fontsize=8)
    figure.suptitle(f"{scorer} by {axes.title(axis)} (star: highest mean)", fontsize=11)
    text_ax.text(0.0, 1.0, "\n".join(wrapped), transform=text_ax.transAxes, va="top", ha="left", fontsize=8.5)
    return save_figure(figure, path)
