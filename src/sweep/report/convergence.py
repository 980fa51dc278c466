"""Convergence: how close each value of an axis gets to the reference image, per group, and at what cost.

Groups: every combination of the other varying axes that can change the answer (sampler, CFG, prompt, model,
...); seeds are averaged, never groups. Nothing is averaged across groups: each has its own curve and knee. An
axis whose curves are the same for all its values (every mean SSIM within TOLERANCE) makes no difference and is
merged; within a panel, lines that are the same are merged into one ("CFG 3, 5, 7").

The knee (numeric axes): walking from the value farthest from the reference towards it (from the fewest steps
up to the most, when the reference is the largest value), the first value from which the mean SSIM over seeds,
and that of every value between it and the reference, is >= THRESHOLD. A categorical axis (a sampler) has no
order to walk: the value closest to the reference is named instead.

Time: "in 35 % of the time" comes from the timing model (sweep.report.timing: a robust per-step fit per shape
and sampler), and only when the difference is larger than the noise; otherwise the summary says why not.

convergence.csv: one row per group and axis value: the group's columns, the axis, `mean_ssim`, `min_ssim`,
`max_ssim`, `seeds` (images averaged), `seconds` (fitted seconds per image), `measured_seconds` (median),
`reaches` (mean SSIM >= THRESHOLD), `knee` (this value is the group's knee) and `line` (the line it is drawn in).
plots/convergence_<axis>.png: one panel per value of the axis that changes the answer most when the lines are
many (small multiples), else one panel; bands = min..max over seeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sweep import axes
from sweep.report import names as nm
from sweep.report.data import RunData
from sweep.report.layout import dependents, labels, order_values
from sweep.report.metrics import NOT_AUTOMATIC, Metrics, Reference, is_numeric, pairing_axes
from sweep.report.timing import TimingModel

THRESHOLD = 0.95
# Axes where more is more refined (more denoising steps): only there does "from N on the image is as good as
# the reference's" mean "N is enough". On other numeric axes (CFG, hires_denoise, ...) the summary says which
# value comes closest to the reference image, as for a sampler, and what it measured.
REFINING = ("num_inference_steps", "hires_steps")
TOLERANCE = 0.01  # curves whose mean SSIMs all differ by at most this are the same curve
MAX_LINES = 6  # more lines than this in one panel: small multiples
MAX_PANELS = 12
PREFIX = "convergence_"
CSV = "convergence.csv"


@dataclass(frozen=True)
class Knee:
    value: str | None  # the knee value, None when no value reaches the threshold
    ssim: float
    nearest: str | None = None  # when none reaches: the value closest to the reference


@dataclass
class Line:
    """One drawn line: the groups it merges (their keys on `axes`), its curve and its knee."""

    keys: list[tuple[str, ...]]
    label: str
    curve: pd.DataFrame  # value, mean, low, high, n
    knee: Knee | None
    time: str = ""  # ' in 35 % of the time' when the timing model backs it
    noisy: bool = False


@dataclass
class Panel:
    value: str | None  # the panel axis's value (None: one panel)
    lines: list[Line] = field(default_factory=list)


def phrase(axis: str, value: str) -> str:
    """'30 steps' / 'CFG 7'."""
    return axes.says(axis, value)


def image_of(axis: str, value: str) -> str:
    """'the 90-step image' / 'the CFG 7 image'."""
    return f"the {value}-step image" if axis == "num_inference_steps" else f"the {axes.says(axis, value)} image"


def group_axes(run: RunData, cells: pd.DataFrame, reference: Reference) -> list[str]:
    """The axes that can change the answer: the other varying ones, less seeds and copies and axes that follow
    another (dtype follows model)."""
    found = [a for a in pairing_axes(run, cells, reference.axis) if a not in NOT_AUTOMATIC]
    follow = dependents(cells, found)
    return [a for a in found if a not in follow]


def _stats(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.groupby([*keys, "value"], sort=False).agg(
        mean=("ssim", "mean"), low=("ssim", "min"), high=("ssim", "max"), n=("ssim", "size"),
        seconds=("fitted", "mean"), measured=("seconds", "median")).reset_index()


def _same(stats: pd.DataFrame, keys: list[str], axis: str) -> bool:
    """Whether `axis` leaves every curve as it is: for each combination of the other keys and each value, the
    mean SSIMs of its values lie within TOLERANCE."""
    others = [k for k in keys if k != axis]
    spread = stats.groupby([*others, "value"], sort=False)["mean"].agg(lambda s: s.max() - s.min())
    return bool((spread <= TOLERANCE).all())


def find_knee(curve: pd.DataFrame, reference: Reference, numeric: bool) -> Knee | None:
    """The knee of one curve (see the module doc); None when it lacks the reference."""
    values = list(curve["value"])
    if reference.value not in values or len(values) < 2:
        return None
    mean = dict(zip(curve["value"], curve["mean"], strict=True))
    others = [v for v in values if v != reference.value]
    if not numeric:
        best = max(others, key=lambda v: mean[v])
        return Knee(best, float(mean[best]))
    r = values.index(reference.value)
    side = values[:r] if r > 0 else values[r + 1:][::-1]  # farthest from the reference first
    for i, value in enumerate(side):
        if all(mean[v] >= THRESHOLD for v in side[i:]):
            return Knee(value, float(mean[value]))
    best = side[-1] if side else others[0]
    return Knee(None, float(mean[best]), best)


def _rank_axes(stats: pd.DataFrame, keys: list[str]) -> list[str]:
    """Group axes by how much they change the mean SSIM (the widest range of their values' means first)."""
    def effect(axis: str) -> float:
        means = stats.groupby(axis, sort=False)["mean"].mean()
        return float(means.max() - means.min())
    return sorted(keys, key=lambda a: -effect(a))


@dataclass
class Convergence:
    reference: Reference
    numeric: bool
    keys: list[str]  # the group axes kept (those that change the answer)
    merged_axes: list[str]  # group axes that made no difference
    panel_axis: str | None
    panels: list[Panel]
    table: pd.DataFrame  # convergence.csv
    hidden_panels: int = 0
    smallest: str | None = None  # the value tried farthest from the reference (a knee there: fewer may do)

    @property
    def refining(self) -> bool:
        """A knee means "enough" only on an axis where more is more refined (REFINING)."""
        return self.numeric and self.reference.axis in REFINING


def analyse(run: RunData, cells: pd.DataFrame, reference: Reference, timing: TimingModel) -> Convergence | None:
    """Curves, knees and lines of every group (see the module doc)."""
    scored = cells[cells["_ssim"].notna()]
    if scored.empty:
        return None
    numeric = is_numeric(cells, reference.axis)
    knee_walk = numeric and reference.axis in REFINING  # elsewhere: the closest value, as for a category
    all_keys = group_axes(run, cells, reference)
    frame = pd.DataFrame({k: labels(scored, k) for k in all_keys}, index=scored.index)
    frame["value"] = labels(scored, reference.axis)
    frame["ssim"] = scored["_ssim"].astype(float)
    frame["seconds"] = scored["_seconds"].astype(float)
    frame["fitted"] = timing.predict(scored)
    order = {v: i for i, v in enumerate(order_values(cells, reference.axis))}
    full = _stats(frame, all_keys)

    keys = list(all_keys)
    merged: list[str] = []
    for axis in list(reversed(all_keys)):  # the least important (innermost) first
        if len(keys) and _same(_stats(frame, keys), keys, axis):
            keys.remove(axis)
            merged.append(axis)
    stats = _stats(frame, keys)
    ranked = _rank_axes(stats, keys) if keys else []
    groups = list(stats.groupby(keys, sort=False).groups) if keys else [()]
    groups = [g if isinstance(g, tuple) else (g,) for g in groups]
    panel_axis = ranked[0] if len(groups) > MAX_LINES and len(keys) > 1 else None
    line_keys = [k for k in keys if k != panel_axis]

    def curve_of(members: list[tuple[str, ...]]) -> pd.DataFrame:
        mask = pd.Series(False, index=stats.index)
        for key in members:
            hit = pd.Series(True, index=stats.index)
            for axis, value in zip(keys, key, strict=True):
                hit &= stats[axis] == value
            mask |= hit
        part = stats[mask]
        curve = part.groupby("value", sort=False).agg(mean=("mean", "mean"), low=("low", "min"),
                                                     high=("high", "max"), n=("n", "sum")).reset_index()
        return curve.sort_values("value", key=lambda s: s.map(order)).reset_index(drop=True)

    # Groups in reading order of each key's values.
    ranks = {k: {v: i for i, v in enumerate(order_values(cells, k))} for k in keys}
    groups.sort(key=lambda g: tuple(ranks[k].get(v, 0) for k, v in zip(keys, g, strict=True)))
    panel_values = order_values(cells, panel_axis) if panel_axis else [None]
    panels = []
    for pv in panel_values:
        members = [g for g in groups if panel_axis is None or g[keys.index(panel_axis)] == pv]
        if not members:
            continue
        lines: list[Line] = []
        for key in members:
            curve = curve_of([key])
            knee = find_knee(curve, reference, knee_walk)
            same = next((ln for ln in lines if _mergeable(ln, curve, knee)), None)
            if same is not None:
                same.keys.append(key)
                same.curve = curve_of(same.keys)  # the next comparison is with the merged line and its band
            else:
                lines.append(Line([key], "", curve, knee))
        for line in lines:
            line.curve = curve_of(line.keys)
            line.label = _line_label(cells, keys, line_keys, line.keys)
            _time(line, cells, scored, keys, reference, timing)
        panels.append(Panel(pv, lines))
    hidden = max(0, len(panels) - MAX_PANELS)
    table = _table(cells, full, all_keys, keys, panels, reference, knee_walk, order)
    tried = order_values(cells, reference.axis)
    far = (tried[0] if tried.index(reference.value) > 0 else tried[-1]) if reference.value in tried else None
    return Convergence(reference, numeric, keys, merged, panel_axis, panels, table, hidden, far)


def _mergeable(line: Line, curve: pd.DataFrame, knee: Knee | None) -> bool:
    a = dict(zip(line.curve["value"], line.curve["mean"], strict=True))
    b = dict(zip(curve["value"], curve["mean"], strict=True))
    if set(a) != set(b):
        return False
    same_knee = (line.knee.value if line.knee else None) == (knee.value if knee else None)
    # Within TOLERANCE, or within half the seeds' range of both: these seeds cannot tell the lines apart.
    width_a = dict(zip(line.curve["value"], line.curve["high"] - line.curve["low"], strict=True))
    width_b = dict(zip(curve["value"], curve["high"] - curve["low"], strict=True))
    return same_knee and all(abs(a[v] - b[v]) <= max(TOLERANCE, 0.5 * min(width_a[v], width_b[v])) for v in a)


def _line_label(cells: pd.DataFrame, keys: list[str], line_keys: list[str], members: list[tuple[str, ...]]) -> str:
    """'CFG 3, 5, 7' / 'P1 · CFG 7' / 'all' (every combination of the line axes)."""
    return describe(cells, keys, line_keys, members)


def describe(cells: pd.DataFrame, keys: list[str], shown: list[str], members: list[tuple[str, ...]]) -> str:
    """The members (keys on `keys`) said on the `shown` axes: an axis all of whose values are there is left out
    ('all' when every one is); a set that is not a full product is listed member by member."""
    if not shown:
        return "all"
    sets = {a: list(dict.fromkeys(m[keys.index(a)] for m in members)) for a in shown}
    product = 1
    for a in shown:
        product *= len(sets[a])
    distinct = {tuple(m[keys.index(a)] for a in shown) for m in members}
    if len(distinct) == product:
        parts = []
        for a in shown:
            ordered = [v for v in order_values(cells, a) if v in sets[a]]
            if len(ordered) == labels(cells, a).nunique() and len(ordered) > 1:
                continue
            parts.append(nm.names(cells, a, ordered))
        return " · ".join(parts) or "all"
    return "; ".join(" · ".join(nm.name(cells, a, v) for a, v in zip(shown, m, strict=True))
                     for m in sorted(distinct))


def _cells_of(scored: pd.DataFrame, keys: list[str], members: list[tuple[str, ...]]) -> pd.DataFrame:
    mask = pd.Series(False, index=scored.index)
    for key in members:
        hit = pd.Series(True, index=scored.index)
        for axis, value in zip(keys, key, strict=True):
            hit &= labels(scored, axis) == value
        mask |= hit
    return scored[mask]


def _time(line: Line, cells: pd.DataFrame, scored: pd.DataFrame, keys: list[str], reference: Reference,
          timing: TimingModel) -> None:
    """The knee's time against the reference's, from the timing model, when it stands out of the noise."""
    if line.knee is None or line.knee.value is None:
        return
    mine = _cells_of(cells[cells["status"] == "ok"], keys, line.keys)
    on_axis = labels(mine, reference.axis)
    comparison = timing.compare(mine[on_axis == line.knee.value], mine[on_axis == reference.value])
    if comparison.share is None:
        return
    line.time = comparison.phrase()
    line.noisy = not comparison.significant


def _table(cells: pd.DataFrame, full: pd.DataFrame, all_keys: list[str], keys: list[str], panels: list[Panel],
           reference: Reference, numeric: bool, order: dict[str, int]) -> pd.DataFrame:
    line_of: dict[tuple[str, ...], str] = {}
    for panel in panels:
        for line in panel.lines:
            head = nm.name(cells, panel_axis_of(panel, keys, line), panel.value) if panel.value is not None else ""
            label = " · ".join(x for x in (head, line.label) if x)
            for key in line.keys:
                line_of[key] = label
    rows = []
    groups = full.groupby(all_keys, sort=False) if all_keys else [((), full)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        curve = part.sort_values("value", key=lambda s: s.map(order)).reset_index(drop=True)
        knee = find_knee(curve, reference, numeric)
        short = tuple(key[all_keys.index(k)] for k in keys)
        for _, row in curve.iterrows():
            rows.append({**dict(zip(all_keys, key, strict=True)), reference.axis: row["value"],
                         "mean_ssim": round(float(row["mean"]), 6), "min_ssim": round(float(row["low"]), 6),
                         "max_ssim": round(float(row["high"]), 6), "seeds": int(row["n"]),
                         "seconds": round(float(row["seconds"]), 6) if row["seconds"] == row["seconds"] else None,
                         "measured_seconds": round(float(row["measured"]), 6),
                         "reaches": bool(row["mean"] >= THRESHOLD),
                         "knee": bool(knee is not None and knee.value == row["value"]),
                         "line": line_of.get(short, "")})
    return pd.DataFrame(rows, columns=[*all_keys, reference.axis, "mean_ssim", "min_ssim", "max_ssim", "seeds",
                                       "seconds", "measured_seconds", "reaches", "knee", "line"])


def panel_axis_of(panel: Panel, keys: list[str], line: Line) -> str:
    """The axis a panel's value belongs to: the key whose value is the panel's in every member."""
    for i, axis in enumerate(keys):
        if all(m[i] == panel.value for m in line.keys):
            return axis
    return keys[0]


# --- sentences ------------------------------------------------------------------------------------------


def sentences(c: Convergence, cells: pd.DataFrame, timing: TimingModel) -> list[str]:
    """The printed summary: the knee per group in a few lines, whether groups disagree, merged axes, noise."""
    axis, ref = c.reference.axis, c.reference.value
    target = image_of(axis, ref)
    lines = [ln for p in c.panels for ln in p.lines]
    noisy = any(ln.noisy for ln in lines)
    out: list[str] = []
    agree = not c.panel_axis and len(_by_knee(lines)) == 1 and len({ln.time for ln in lines}) == 1
    if len(lines) == 1 and not c.panel_axis or agree and c.refining and lines[0].knee is not None:
        line, knee = lines[0], lines[0].knee
        if len(lines) > 1:  # lines that differ but agree on the knee: one sentence, its lowest SSIM
            knee = min((ln.knee for ln in lines if ln.knee), key=lambda k: k.ssim)
        head = f"{line.label}: " if line.label and line.label != "all" and len(lines) == 1 else ""
        if len(lines) > 1 or (c.keys and line.label == "all"):
            head = f"every {' · '.join(axes.title(k) for k in c.keys)}: "
        if knee is None:
            pass
        elif not c.refining:
            out.append(f"{head}closest to {target}: {phrase(axis, knee.value)} (SSIM {knee.ssim:.3f}{line.time})"
                       f"{_fewest(c, knee.value) if c.numeric else ''}")
        elif knee.value is not None:
            verb = "reach" if axis in REFINING else "reaches"
            out.append(f"{head}{phrase(axis, knee.value)} {verb} SSIM {knee.ssim:.3f} (>= {THRESHOLD}) to {target}"
                       f"{line.time}{_fewest(c, knee.value)}")
        else:
            word = "below" if order_values(cells, axis).index(ref) > 0 else "above"
            out.append(f"{head}no {axes.title(axis)} {word} {ref} reaches SSIM {THRESHOLD} to {target} "
                       f"(nearest: {phrase(axis, knee.nearest)}, SSIM {knee.ssim:.3f})")
    else:
        by = f" per {axes.title(c.panel_axis)}" if c.panel_axis else ""
        what = (f"knee (mean SSIM over seeds >= {THRESHOLD} to {target} from there on){by}:" if c.refining
                else f"closest to {target}{by}:")
        out.append(what)
        for panel in c.panels[:MAX_PANELS]:
            head = nm.name(cells, c.panel_axis, panel.value) if c.panel_axis else ""
            if head:
                out.append("  " + _panel_sentence(c, cells, panel, head))
            else:
                for _, same in _by_knee(panel.lines):  # one line per knee: 'Euler, UniPC: 8 steps ...'
                    where = describe(cells, c.keys, c.keys, [m for ln in same for m in ln.keys])
                    text = _clause(c, cells, same)
                    out.append(f"  {where}: {text}" if where != "all" else f"  {text}")
        if c.hidden_panels:
            out.append(f"  ... {c.hidden_panels} more in convergence.csv")
        if c.refining:
            out += _disagree(c, cells, lines)
    for merged in c.merged_axes:
        out.append(f"{axes.title(merged)} made no difference (every mean SSIM within {TOLERANCE}): merged")
    said = "\n".join(out)
    out += [t for t in nm.legend(cells, [a for a in c.keys if nm.is_text(a)])
            if re.search(rf"\b{re.escape(t.split(':')[0])}\b", said)]
    if noisy:
        out.append(timing.noise_note())
    return out


def _disagree(c: Convergence, cells: pd.DataFrame, lines: list[Line]) -> list[str]:
    """'groups disagree: from 4 steps (UniPC, DPM++ 2M Karras) to 16 steps (Euler a); DDIM never reaches it'."""
    axis = c.reference.axis
    rank = {v: i for i, v in enumerate(order_values(cells, axis))}
    where: dict[str | None, list[tuple[str, ...]]] = {}
    for line in lines:
        where.setdefault(line.knee.value if line.knee else None, []).extend(line.keys)
    reached = sorted((v for v in where if v is not None), key=lambda v: rank[v])
    if len(where) < 2:
        return []
    said = {v: describe(cells, c.keys, c.keys, m) for v, m in where.items()}
    text = "groups disagree"
    if len(reached) >= 2:
        text += (f": from {phrase(axis, reached[0])} ({said[reached[0]]}) to {phrase(axis, reached[-1])} "
                 f"({said[reached[-1]]})")
    elif reached:
        text += f": {phrase(axis, reached[0])} ({said[reached[0]]})"
    if None in where:
        text += f"; never reached by {said[None]}"
    return [text]


def _by_knee(lines: list[Line]) -> list[tuple[str | None, list[Line]]]:
    """Lines grouped by their knee value, in the order first met."""
    out: dict[str | None, list[Line]] = {}
    for line in lines:
        out.setdefault(line.knee.value if line.knee else None, []).append(line)
    return list(out.items())


def _clause(c: Convergence, cells: pd.DataFrame, lines: list[Line]) -> str:
    """One knee and its lines' time: '8 steps in 38 % of the time' / 'none (best: 24 steps, SSIM 0.09-0.14)'."""
    knee = lines[0].knee
    axis = c.reference.axis
    if knee is None:
        return "no reference image"
    if knee.value is None:
        ssims = [ln.knee.ssim for ln in lines if ln.knee]
        nearest = {ln.knee.nearest for ln in lines if ln.knee}
        best = phrase(axis, nearest.pop()) if len(nearest) == 1 else "nearest"
        span = f"{min(ssims):.3f}" if max(ssims) - min(ssims) < 0.001 else f"{min(ssims):.2f}-{max(ssims):.2f}"
        return f"none reaches it (best {best}, SSIM {span})"
    if not c.refining:
        return f"{phrase(axis, knee.value)} (SSIM {knee.ssim:.3f})"
    times = {ln.time for ln in lines}
    return phrase(axis, knee.value) + (times.pop() if len(times) == 1 else "") + _fewest(c, knee.value)


def _fewest(c: Convergence, value: str) -> str:
    """When the knee is the value tried farthest from the reference: nothing below it was tried."""
    if value != c.smallest:
        return ""
    word = "fewest" if c.reference.axis in REFINING else "smallest"
    return f" (the {word} tried: fewer may do too)" if word == "fewest" else f" (the {word} tried)"


def _panel_sentence(c: Convergence, cells: pd.DataFrame, panel: Panel, head: str) -> str:
    """'DDIM: 16 steps at CFG 1; 24 steps at CFG 3, 5, 7' (lines with the same knee share one clause)."""
    line_keys = [k for k in c.keys if k != c.panel_axis]
    groups = _by_knee(panel.lines)
    parts = []
    for _, lines in groups:
        members = [m for ln in lines for m in ln.keys]
        where = describe(cells, c.keys, line_keys, members) if len(groups) > 1 else ""
        text = _clause(c, cells, lines)
        if where and where != "all":
            text = f"{where}: {text}" if not head else f"{text} at {where}"
        parts.append(text)
    body = "; ".join(parts)
    return f"{head}: {body}" if head else body


def spread_sentence(metrics: Metrics, cells: pd.DataFrame | None = None) -> str | None:
    """'seed spread (mean 1 - SSIM between seeds): 0.42, from 0.30 (... 10) to 0.50 (... 90)'."""
    table = metrics.spread
    if table is None or table.empty:
        return None
    mean = float(table["spread"].mean())
    text = f"seed spread (mean 1 - SSIM between seeds): {mean:.2f}"
    if len(table) > 1 and metrics.spread_axes:
        lo, hi = table["spread"].idxmin(), table["spread"].idxmax()

        def where(i: Any) -> str:
            if cells is None:
                return ", ".join(f"{a} {table.at[i, a]}" for a in metrics.spread_axes)
            return ", ".join(nm.name(cells, a, str(table.at[i, a])) for a in metrics.spread_axes)

        text += (f" on average, from {table.at[lo, 'spread']:.2f} ({where(lo)}) "
                 f"to {table.at[hi, 'spread']:.2f} ({where(hi)})")
    return text
