"""The convergence outputs: convergence.csv, plots/convergence_<axis>.png and the summary sentences, from the
analysis in sweep.report.convergence (which says what is measured and how the knee is found)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep import axes
from sweep.report import names as nm
from sweep.report.atomic import save_csv, save_figure
from sweep.report.convergence import (
    CSV,
    MAX_PANELS,
    PREFIX,
    THRESHOLD,
    TOLERANCE,
    Convergence,
    analyse,
    image_of,
    phrase,
    sentences,
    spread_sentence,
)
from sweep.report.data import RunData
from sweep.report.layout import labels, order_values
from sweep.report.metrics import Metrics
from sweep.report.sheets import safe
from sweep.report.timing import TimingModel


def write_convergence(run: RunData, cells: pd.DataFrame, metrics: Metrics, timing: TimingModel, out_dir: Path
                      ) -> tuple[list[Path], list[str]]:
    """convergence.csv, the convergence plot of this build's reference axis, and the summary sentences.

    `cells` carries `_ssim` (NaN where not scored). Convergence plots of other axes are removed."""
    written: list[Path] = []
    out: list[str] = []
    reference = metrics.reference
    csv_path = run.run_dir / CSV
    found = None
    if reference is not None and "_ssim" in cells and cells["_ssim"].notna().any():
        others = cells[labels(cells, reference.axis) != reference.value]
        if len(others) and others["_ssim"].isna().all():
            # Only the reference images scored themselves (SSIM 1): no pair was compared, so nothing converged
            # and no axis "made no difference".
            notes = set(metrics.table["note"]) if metrics.table is not None and "note" in metrics.table else set()
            why = ("every other image has another size than its reference image" if "size differs" in notes
                   else "no other image could be compared with its reference image")
            out.append(f"{axes.title(reference.axis)}: no pairs compared ({why}; metrics.csv says why per image): "
                       "no convergence found, no axis merged")
        else:
            found = analyse(run, cells, reference, timing)
    if found is not None:
        written.append(save_csv(found.table, csv_path))
        if labels(cells[cells["_ssim"].notna()], reference.axis).nunique() >= 2:
            written.append(_plot(cells, found, out_dir / f"{PREFIX}{safe(reference.axis)}.png"))
        out += sentences(found, cells, timing)
    else:
        csv_path.unlink(missing_ok=True)
    spread = spread_sentence(metrics, cells)
    if spread:
        out.append(spread)
    if out_dir.is_dir():
        for path in out_dir.glob(f"{PREFIX}*.png"):
            if path not in written:
                path.unlink(missing_ok=True)
    return written, out


# --- drawing ------------------------------------------------------------------------------------------


def _subtitle(cells: pd.DataFrame, c: Convergence) -> str:
    parts = []
    for column in ("model", "device", "dtype"):
        found = sorted({v for v in cells.get(column, []) if v})
        if len(found) == 1:
            parts.append(f"{column} {found[0]}")
    parts.append("mean over seeds (band: min to max)")
    return " · ".join(parts)


def _plot(cells: pd.DataFrame, c: Convergence, path: Path) -> Path:
    # Imported here: matplotlib takes ~0.5 s to import and only the plots need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    axis, ref = c.reference.axis, c.reference.value
    values = order_values(cells, axis)
    position = {v: (float(v) if c.numeric else float(i)) for i, v in enumerate(values)}
    panels = c.panels[:MAX_PANELS]
    n = len(panels)
    ncols = 1 if n == 1 else min(3, n)
    nrows = -(-n // ncols)
    notes = []
    if c.refining:
        notes.append(f"knee (circled): walking towards the reference, the first value from which every mean SSIM "
                     f"over seeds is >= {THRESHOLD}. SSIM: scikit-image, on the luma.")
    notes += [f"{axes.title(a)} made no difference (every mean SSIM within {TOLERANCE}): merged"
              for a in c.merged_axes]
    notes += nm.legend(cells, [a for a in c.keys if nm.is_text(a)])
    if c.hidden_panels:
        notes.append(f"{c.hidden_panels} more panels in convergence.csv")
    width = 7.5 if n == 1 else 4.3 * ncols
    # Wrapped to the figure's width (about 13 characters of 8.5 pt text per inch): nothing runs off the edge.
    wrapped = [textwrap.fill(t, int(width * 13), subsequent_indent="    ") for t in notes]
    n_text = sum(w.count("\n") + 1 for w in wrapped)

    labels_seen: dict[str, str] = {}
    for panel in panels:
        for line in panel.lines:
            labels_seen.setdefault(line.label, f"C{len(labels_seen) % 10}")
    height = (3.6 if n > 1 else 4.6) * nrows + 0.9 + 0.2 * n_text + 0.25 * max(0, len(labels_seen) // 4)
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    spare = nrows * ncols > n  # an empty slot holds the legend; else a row of its own under the panels
    legend_rows = 0 if spare or len(labels_seen) <= 1 else 1
    ratios = [*[1.0] * nrows, *([0.06 * (1 + len(labels_seen) // 4)] * legend_rows), max(0.05, 0.06 * n_text)]
    grid = figure.add_gridspec(nrows + legend_rows + 1, ncols, height_ratios=ratios)
    text_ax = figure.add_subplot(grid[nrows + legend_rows, :])
    text_ax.axis("off")
    legend_ax = None
    if len(labels_seen) > 1:
        legend_ax = figure.add_subplot(grid[nrows - 1, ncols - 1] if spare else grid[nrows, :])
        legend_ax.axis("off")
    low = float(np.nanmin([ln.curve["low"].min() for p in panels for ln in p.lines]))
    first = None
    handles: dict[str, Any] = {}
    for i, panel in enumerate(panels):
        ax = figure.add_subplot(grid[i // ncols, i % ncols], sharey=first)
        first = first or ax
        for index, line in enumerate(panel.lines):
            colour = labels_seen[line.label]
            data = line.curve
            x = np.array([position[v] for v in data["value"]])
            if c.numeric:
                (handle,) = ax.plot(x, data["mean"], marker="o", markersize=4, color=colour, label=line.label)
                if (data["high"] > data["low"]).any():
                    ax.fill_between(x, data["low"], data["high"], color=colour, alpha=0.12, linewidth=0)
            else:
                x = x + (index - (len(panel.lines) - 1) / 2) * 0.08
                mean = data["mean"].to_numpy(float)
                errors = np.clip(np.vstack([mean - data["low"].to_numpy(float),
                                            data["high"].to_numpy(float) - mean]), 0, None)
                handle = ax.errorbar(x, mean, yerr=errors, fmt="o", color=colour, capsize=3, label=line.label)
            handles.setdefault(line.label, handle)
            knee = line.knee
            if knee is not None and knee.value is not None and c.refining:
                row = data[data["value"] == knee.value].iloc[0]
                ax.plot([position[knee.value]], [row["mean"]], marker="o", markersize=12, markerfacecolor="none",
                        markeredgecolor=colour, markeredgewidth=1.6)
        if c.refining:  # the knee's threshold means something only where more is more refined
            ax.axhline(THRESHOLD, color="#777777", linestyle="--", linewidth=1)
        ax.grid(True, alpha=0.3)
        ax.set_ylim((min(low, THRESHOLD) if c.refining else low) - 0.05, 1.03)
        if c.numeric and len(values) <= 15:
            ax.set_xticks([position[v] for v in values], values, fontsize=8)
        elif not c.numeric:
            ax.set_xticks([position[v] for v in values], [nm.name(cells, axis, v) for v in values],
                          rotation=30 if len(values) > 3 else 0, ha="right" if len(values) > 3 else "center",
                          fontsize=8)
        title = nm.name(cells, c.panel_axis, panel.value) if c.panel_axis else ""
        knees = {ln.knee.value for ln in panel.lines if ln.knee and ln.knee.value is not None}
        if c.refining and c.panel_axis:
            said = (phrase(axis, knees.pop()) if len(knees) == 1 else
                    ", ".join(phrase(axis, v) for v in values if v in knees) if knees else "none")
            title += f" — knee: {said}"
        if title:
            ax.set_title(title, fontsize=10)
        if i // ncols == nrows - 1 or i + ncols >= n:
            ax.set_xlabel(axes.title(axis) if axis != "num_inference_steps" else "denoising steps")
        if i % ncols == 0:
            ax.set_ylabel(f"SSIM to {image_of(axis, ref)}", fontsize=9)
    if legend_ax is not None:
        # Outside every panel: a legend inside one sat on its curves.
        every = "every " + " · ".join(axes.title(k) for k in c.keys if k != c.panel_axis)
        shown = [every if k == "all" else k for k in handles]
        legend_ax.legend(list(handles.values()), shown, loc="center" if spare else "upper center",
                         ncols=1 if spare else min(4, len(handles)), fontsize=8, frameon=False,
                         title=" · ".join(axes.title(k) for k in c.keys if k != c.panel_axis), title_fontsize=8)
    figure.suptitle(f"Convergence along {axes.title(axis)}: similarity to {image_of(axis, ref)}"
                    + (f" (dashed: SSIM {THRESHOLD})" if c.refining else "")
                    + f"\n{_subtitle(cells, c)}", fontsize=11)
    text_ax.text(0.0, 1.0, "\n".join(wrapped), transform=text_ax.transAxes, va="top", ha="left", fontsize=8.5)
    return save_figure(figure, path)
