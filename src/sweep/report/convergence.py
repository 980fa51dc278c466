"""Convergence: how close each value of an axis gets to the reference image, and at what cost in seconds.

The knee (numeric axes): walking from the value farthest from the reference towards it (from the fewest steps
up to the most, when the reference is the largest value), the first value from which the mean SSIM over seeds,
and that of every value between it and the reference, is >= THRESHOLD. "30 steps reach SSIM >= 0.95 to the
90-step image in 35 % of its time" then means: 30 steps and every step count above it are within SSIM 0.95 of
the 90-step image, and a 30-step image takes 35 % of a 90-step image's seconds. A categorical axis (a sampler)
has no order to walk: the sentence names the value closest to the reference instead.

plots/convergence_<axis>.png: mean SSIM against the axis (left) and against mean seconds per image (right),
one line per value of another varying axis, seeds (and any further axes) averaged, band = min..max.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep.report.atomic import save_figure
from sweep.report.data import RunData
from sweep.report.layout import labels, order_values
from sweep.report.metrics import SEED, Metrics, Reference, is_numeric, pairing_axes
from sweep.report.sheets import safe

THRESHOLD = 0.95
MAX_LINES = 8
PREFIX = "convergence_"


@dataclass(frozen=True)
class Knee:
    line: str | None  # the line's value ("guidance_scale 5"), None for a single line
    value: str | None  # the knee value, None when no value reaches the threshold
    ssim: float
    time_share: float | None  # knee seconds / reference seconds
    sentence: str


def phrase(axis: str, value: str) -> str:
    """'30 steps' / 'guidance_scale 7'."""
    return f"{value} steps" if axis == "num_inference_steps" else f"{axis} {value}"


def image_of(axis: str, value: str) -> str:
    """'the 90-step image' / 'the guidance_scale 7 image'."""
    return f"the {value}-step image" if axis == "num_inference_steps" else f"the {axis} {value} image"


def line_axis(run: RunData, cells: pd.DataFrame, reference: Reference) -> str | None:
    """The other varying axis that splits the data into lines (seeds are averaged, never lines)."""
    for axis in pairing_axes(run, cells, reference.axis):
        if axis != SEED and 2 <= labels(cells, axis).nunique() <= MAX_LINES:
            return axis
    return None


def curves(cells: pd.DataFrame, reference: Reference, line: str | None) -> pd.DataFrame:
    """Per (line value, axis value): mean/min/max SSIM, count and mean seconds, in reading order."""
    scored = cells[cells["_ssim"].notna()]
    order = {v: i for i, v in enumerate(order_values(cells, reference.axis))}
    frame = pd.DataFrame({
        "line": labels(scored, line) if line else "",
        "value": labels(scored, reference.axis),
        "ssim": scored["_ssim"].astype(float),
        "seconds": scored["_seconds"].astype(float),
    })
    stats = frame.groupby(["line", "value"], sort=False).agg(
        mean=("ssim", "mean"), low=("ssim", "min"), high=("ssim", "max"), n=("ssim", "size"),
        seconds=("seconds", "mean")).reset_index()
    line_order = {v: i for i, v in enumerate(order_values(cells, line))} if line else {"": 0}
    stats["_o"] = [(line_order.get(a, 0), order[b]) for a, b in zip(stats["line"], stats["value"], strict=True)]
    return stats.sort_values("_o").drop(columns="_o").reset_index(drop=True)


def find_knee(stats: pd.DataFrame, reference: Reference, numeric: bool, line: str | None,
              line_value: str) -> Knee | None:
    """The knee of one line (see the module doc) and its sentence; None when the line lacks the reference."""
    values = list(stats["value"])
    if reference.value not in values or len(values) < 2:
        return None
    by = stats.set_index("value")
    ref_seconds = by.at[reference.value, "seconds"]

    def share(value: str) -> float | None:
        seconds = by.at[value, "seconds"]
        ok = ref_seconds == ref_seconds and ref_seconds > 0 and seconds == seconds
        return float(seconds / ref_seconds) if ok else None

    def cost(value: str) -> str:
        found = share(value)
        if found is None:
            return ""
        # Seconds need not fall with the axis (guidance costs the same; CPU timings are noisy): say it as is.
        return f" in {found * 100:.0f} % of the time" if found <= 1 else f", but takes {found:.1f}x the time"

    head = f"{line} {line_value}: " if line else ""
    target = image_of(reference.axis, reference.value)
    others = [v for v in values if v != reference.value]
    if not numeric:
        best = max(others, key=lambda v: by.at[v, "mean"])
        ssim = float(by.at[best, "mean"])
        text = f"{head}closest to {target}: {phrase(reference.axis, best)} (SSIM {ssim:.3f}{cost(best)})"
        return Knee(line_value if line else None, best, ssim, share(best), text)
    r = values.index(reference.value)
    side = values[:r] if r > 0 else values[r + 1:][::-1]  # farthest from the reference first
    word = "below" if r > 0 else "above"
    for i, value in enumerate(side):
        if all(by.at[v, "mean"] >= THRESHOLD for v in side[i:]):
            ssim = float(by.at[value, "mean"])
            verb = "reach" if reference.axis == "num_inference_steps" else "reaches"
            text = (f"{head}{phrase(reference.axis, value)} {verb} SSIM {ssim:.3f} (>= {THRESHOLD}) to {target}"
                    f"{cost(value)}")
            return Knee(line_value if line else None, value, ssim, share(value), text)
    best = side[-1] if side else others[0]
    ssim = float(by.at[best, "mean"])
    text = (f"{head}no {reference.axis} {word} {reference.value} reaches SSIM {THRESHOLD} to {target} "
            f"(nearest: {phrase(reference.axis, best)}, SSIM {ssim:.3f})")
    return Knee(line_value if line else None, None, ssim, None, text)


def spread_sentence(metrics: Metrics) -> str | None:
    """'seed spread (mean 1 - SSIM between seeds): 0.42, from 0.30 (... 10) to 0.50 (... 90)'."""
    table = metrics.spread
    if table is None or table.empty:
        return None
    mean = float(table["spread"].mean())
    text = f"seed spread (mean 1 - SSIM between seeds): {mean:.2f}"
    if len(table) > 1 and metrics.spread_axes:
        lo, hi = table["spread"].idxmin(), table["spread"].idxmax()

        def where(i: Any) -> str:
            return ", ".join(f"{a} {table.at[i, a]}" for a in metrics.spread_axes)

        text += (f" on average, from {table.at[lo, 'spread']:.2f} ({where(lo)}) "
                 f"to {table.at[hi, 'spread']:.2f} ({where(hi)})")
    return text


def write_convergence(run: RunData, cells: pd.DataFrame, metrics: Metrics, out_dir: Path
                      ) -> tuple[list[Path], list[str]]:
    """The convergence plot of this build's reference axis, and the insight sentences (knees, seed spread).

    `cells` carries `_ssim` (NaN where not scored). Convergence plots of other axes are removed."""
    written: list[Path] = []
    sentences: list[str] = []
    reference = metrics.reference
    if reference is not None and "_ssim" in cells and cells["_ssim"].notna().any():
        line = line_axis(run, cells, reference)
        stats = curves(cells, reference, line)
        numeric = is_numeric(cells, reference.axis)
        knees = []
        for value in (order_values(cells, line) if line else [""]):
            knee = find_knee(stats[stats["line"] == value], reference, numeric, line, value)
            if knee:
                knees.append(knee)
        if stats["value"].nunique() >= 2:
            averaged = [a for a in pairing_axes(run, cells, reference.axis) if a != line]
            written.append(_plot(cells, stats, reference, line, numeric, knees, averaged,
                                 out_dir / f"{PREFIX}{safe(reference.axis)}.png"))
        sentences += [k.sentence for k in knees]
    spread = spread_sentence(metrics)
    if spread:
        sentences.append(spread)
    if out_dir.is_dir():
        for path in out_dir.glob(f"{PREFIX}*.png"):
            if path not in written:
                path.unlink(missing_ok=True)
    return written, sentences


# --- drawing ------------------------------------------------------------------------------------------


def _subtitle(cells: pd.DataFrame, averaged: list[str]) -> str:
    parts = []
    for column in ("model", "device", "dtype"):
        found = sorted({v for v in cells.get(column, []) if v})
        if len(found) == 1:
            parts.append(f"{column} {found[0]}")
    if averaged:
        parts.append("mean over " + ", ".join(averaged) + " (band: min to max)")
    return " · ".join(parts)


def _points(ax: Any, x: np.ndarray, data: pd.DataFrame, colour: str, label: str) -> None:
    """Means as points with min-max error bars."""
    mean = data["mean"].to_numpy(float)
    errors = np.vstack([mean - data["low"].to_numpy(float), data["high"].to_numpy(float) - mean])
    ax.errorbar(x, mean, yerr=errors, fmt="o", color=colour, capsize=3, label=label)


def _label_points(ax: Any, data: pd.DataFrame, colour: str) -> None:
    """The axis value beside each point of the seconds panel, skipping points too close to the last label."""
    xs, ys = data["seconds"].to_numpy(float), data["mean"].to_numpy(float)
    finite = np.isfinite(xs)
    if not finite.any():
        return
    x_room = 0.04 * max(np.nanmax(xs), 1e-9)
    y_room = 0.03 * max(1.0 - np.nanmin(ys), 0.01)
    last: tuple[float, float] | None = None
    for x, y, value in zip(xs, ys, data["value"], strict=True):
        if not np.isfinite(x):
            continue
        if last is not None and abs(x - last[0]) < x_room and abs(y - last[1]) < y_room:
            continue
        ax.annotate(value, (x, y), textcoords="offset points", xytext=(4, -11), fontsize=7, color=colour)
        last = (x, y)


def _plot(cells: pd.DataFrame, stats: pd.DataFrame, reference: Reference, line: str | None, numeric: bool,
          knees: list[Knee], averaged: list[str], path: Path) -> Path:
    # Imported here: matplotlib takes ~0.5 s to import and only the plots need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    axis = reference.axis
    values = order_values(cells, axis)
    position = {v: (float(v) if numeric else float(i)) for i, v in enumerate(values)}
    notes = [k.sentence for k in knees]
    if numeric:
        notes.append(f"knee: walking towards the reference, the first value from which every mean SSIM "
                     f"(over seeds) is >= {THRESHOLD}. SSIM: scikit-image, on the luma.")
    wrapped = [textwrap.fill(n, 140, subsequent_indent="    ") for n in notes]
    n_text = sum(w.count("\n") + 1 for w in wrapped)

    figure = Figure(figsize=(12, 5.4 + 0.2 * n_text), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=[5.4, max(0.3, 0.2 * n_text)])
    left, right = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1], sharey=None)
    text_ax = figure.add_subplot(grid[1, :])
    text_ax.axis("off")
    line_values = order_values(cells, line) if line else [""]
    knee_of = {k.line or "": k for k in knees}
    for index, value in enumerate(line_values):
        data = stats[stats["line"] == value]
        if data.empty:
            continue
        colour = f"C{index % 10}"
        label = f"{line} = {value}" if line else "mean over seeds"
        x = np.array([position[v] for v in data["value"]])
        seconds = data["seconds"].to_numpy(float)
        spread = (data["high"] > data["low"]).any()
        # Lines and bands only where the x order means something: along a numeric axis, and against seconds
        # where they grow with it. Otherwise (a sampler; guidance, whose CPU timings wobble) points with
        # min-max error bars, nudged apart per line so they do not hide each other.
        steady = numeric and bool(np.all(np.diff(seconds[np.isfinite(seconds)]) >= 0))
        if numeric:
            left.plot(x, data["mean"], marker="o", color=colour, label=label)
            if spread:
                left.fill_between(x, data["low"], data["high"], color=colour, alpha=0.15, linewidth=0)
        else:
            x = x + (index - (len(line_values) - 1) / 2) * 0.08
            _points(left, x, data, colour, label)
        if steady:
            right.plot(seconds, data["mean"], marker="o", color=colour, label=label)
            if spread:
                right.fill_between(seconds, data["low"], data["high"], color=colour, alpha=0.10, linewidth=0)
        else:
            _points(right, seconds, data, colour, label)
        if index == 0 or len(line_values) <= 2:
            _label_points(right, data, colour)
        ref_row = data[data["value"] == reference.value]
        if len(ref_row):
            for ax, rx in ((left, x[list(data["value"]).index(reference.value)]),
                           (right, ref_row["seconds"].iloc[0])):
                ax.plot([rx], [ref_row["mean"].iloc[0]], marker="*", markersize=13, color=colour, label=None)
        knee = knee_of.get(value)
        if knee and knee.value is not None and numeric:
            row = data[data["value"] == knee.value].iloc[0]
            for ax, kx in ((left, position[knee.value]), (right, row["seconds"])):
                ax.plot([kx], [row["mean"]], marker="o", markersize=14, markerfacecolor="none",
                        markeredgecolor=colour, markeredgewidth=1.8, label=None)
    for ax in (left, right):
        ax.axhline(THRESHOLD, color="#777777", linestyle="--", linewidth=1)
        ax.grid(True, alpha=0.3)
    # At the right end, under the line: there the curves are near the reference, far above it.
    left.annotate(f"SSIM {THRESHOLD}", (0.995, THRESHOLD), xycoords=("axes fraction", "data"),
                  textcoords="offset points", xytext=(-2, -11), ha="right", fontsize=8, color="#555555")
    low = float(np.nanmin(stats["low"])) if len(stats) else 0.0
    for ax in (left, right):
        ax.set_ylim(min(low, THRESHOLD) - 0.05, 1.02)
    if numeric and len(values) <= 15:
        left.set_xticks([position[v] for v in values], values)
    elif not numeric:
        left.set_xticks([position[v] for v in values], values, rotation=20 if len(values) > 4 else 0,
                        ha="right" if len(values) > 4 else "center", fontsize=8)
    left.set_xlabel(axis if axis != "num_inference_steps" else "num_inference_steps (denoising steps)")
    left.set_ylabel(f"SSIM to {image_of(axis, reference.value)}")
    right.set_xlabel("mean seconds per image (s)")
    right.set_ylabel("SSIM")
    finite = stats["seconds"][np.isfinite(stats["seconds"])]
    right.set_xlim(0, float(finite.max()) * 1.15 if len(finite) and finite.max() > 0 else None)  # room for labels
    if line:
        # In the seconds panel, where curves rise to the top right and leave room: in the axis panel a legend
        # of up to 8 lines sat on the slowest-converging curve.
        right.legend(fontsize=8, loc="best", title=None)
    subtitle = _subtitle(cells, averaged)
    figure.suptitle(f"Convergence along {axis}: similarity to {image_of(axis, reference.value)}"
                    + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    text_ax.text(0.0, 1.0, "\n".join(wrapped), transform=text_ax.transAxes, va="top", ha="left", fontsize=9.5)
    return save_figure(figure, path)
