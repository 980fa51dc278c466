"""Timing plots (matplotlib, Agg, PNG): seconds per image against each axis that varies and has a scale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep.report.atomic import save_figure
from sweep.report.layout import labels, order_values


@dataclass(frozen=True)
class PlotSpec:
    axis: str
    file: str
    title: str
    xlabel: str


PLOTS = (
    PlotSpec("num_inference_steps", "seconds_vs_steps.png", "Seconds per image vs denoising steps",
             "num_inference_steps (denoising steps)"),
    PlotSpec("resolution", "seconds_vs_resolution.png", "Seconds per image vs resolution",
             "resolution (megapixels, height x width)"),
    PlotSpec("guidance_scale", "seconds_vs_guidance.png", "Seconds per image vs guidance scale",
             "guidance_scale (CFG scale; <= 1 turns CFG off)"),
)
# Which other axis splits the data into lines: the one that changes the cost most, first.
GROUP_BY = ("model", "resolution", "num_inference_steps", "guidance_scale", "dtype", "device", "sweep")
MAX_LINES = 8


def _x(cells: pd.DataFrame, axis: str) -> pd.Series:
    if axis == "resolution":
        return cells["_h"] * cells["_w"] / 1e6
    return pd.to_numeric(labels(cells, axis), errors="coerce")


def _group_axis(cells: pd.DataFrame, axis: str, moving: list[str]) -> str | None:
    for name in GROUP_BY:
        if name != axis and name in moving and 2 <= labels(cells, name).nunique() <= MAX_LINES:
            return name
    return None


def _subtitle(cells: pd.DataFrame) -> str:
    parts = []
    for column in ("model", "device", "dtype", "gpu"):
        found = sorted({v for v in cells.get(column, []) if v})
        if len(found) == 1:
            parts.append(f"{column} {found[0]}")
    return " · ".join(parts)


def write_plots(cells: pd.DataFrame, moving: list[str], out_dir: Path) -> list[Path]:
    """One PNG per varying axis among steps, resolution and guidance; stale ones are removed."""
    done = cells[(cells["status"] == "ok") & cells["_seconds"].notna()]
    written: list[Path] = []
    specs = [p for p in PLOTS if p.axis in moving and _x(done, p.axis).dropna().nunique() >= 2]
    if specs:
        # Imported here: matplotlib takes ~0.5 s to import and only this function needs it.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        for spec in specs:
            figure = Figure(figsize=(8, 5), layout="constrained")
            FigureCanvasAgg(figure)
            ax = figure.add_subplot()
            _draw(ax, done, spec, _group_axis(done, spec.axis, moving))
            steps = sorted(_x(done, spec.axis).dropna().unique())
            if spec.axis in ("num_inference_steps", "guidance_scale") and len(steps) <= 15:
                ax.set_xticks(steps)  # the values actually run, not 12, 15, 18... or 3.5, 4.5...
            elif spec.axis == "num_inference_steps":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            subtitle = _subtitle(done)
            ax.set_title(spec.title + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
            written.append(save_figure(figure, out_dir / spec.file))
    for spec in PLOTS:  # an axis that no longer varies must not leave an old plot behind
        path = out_dir / spec.file
        if path not in written and path.exists():
            path.unlink()
    return written


def _draw(ax: Any, cells: pd.DataFrame, spec: PlotSpec, group: str | None) -> None:
    x_all = _x(cells, spec.axis)
    values = order_values(cells, group) if group else [None]
    for index, value in enumerate(values):
        mask = labels(cells, group) == value if group else pd.Series(True, index=cells.index)
        x, y = x_all[mask], cells.loc[mask, "_seconds"]
        stats = y.groupby(x).agg(["mean", "min", "max"]).sort_index()
        colour = f"C{index % 10}"
        label = f"{group} = {value}" if group else "mean seconds per image"
        if spec.axis == "num_inference_steps" and len(stats) >= 2:
            # The slope is the cost of one step; the intercept is the fixed cost (text encoder, VAE decode).
            slope, intercept = np.polyfit(stats.index.to_numpy(float), stats["mean"].to_numpy(float), 1)
            sign = "+" if intercept >= 0 else "−"
            label += f"  (≈ {slope:.3g} s/step {sign} {abs(intercept):.2g} s)"
        ax.plot(stats.index, stats["mean"], marker="o", color=colour, label=label)
        if (stats["max"] > stats["min"]).any():
            ax.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.15, linewidth=0)
        ax.scatter(x, y, s=12, color=colour, alpha=0.35, linewidths=0)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel("seconds per image (s)")
    ax.grid(True, alpha=0.3)
    seconds = cells["_seconds"]
    if seconds.min() > 0 and seconds.max() / seconds.min() > 30:
        # Tiny and full-size models on one plot differ by orders of magnitude.
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    if spec.axis == "resolution":
        # One tick per pixel count; 512x768 and 768x512 share one.
        ticks = cells.assign(_mp=x_all).groupby("_mp")["resolution"].agg(lambda r: "/".join(dict.fromkeys(r)))
        ax.set_xticks(ticks.index, [f"{mp:.2f}\n{r}" for mp, r in ticks.items()], fontsize=8)
    if group or spec.axis == "num_inference_steps":
        ax.legend(fontsize=8, title=None, loc="best")
