"""Timing plots (matplotlib, Agg, PNG): seconds per image against each axis that varies.

Numeric axes (steps, guidance, resolution as megapixels, ...) are lines; categorical ones (samplers, prompts)
are bars. Seconds are what each image cost the sweep (its call's wall time over the calls run side by side and
the images of the call, see sweep.runner.Outcome): comparable across cells, and about the sweep's wall time
when added up.
"""

from __future__ import annotations

import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep import axes
from sweep.report import text as tx
from sweep.report.atomic import save_figure
from sweep.report.layout import labels, order_values

# Which other axis splits the data into lines: the one that changes the cost most, first.
GROUP_BY = ("model", "resolution", "num_inference_steps", "guidance_scale", "scheduler", "dtype", "device", "sweep")
MAX_LINES = 8
# Axes whose timing says nothing (noise, copies).
SKIP = ("seed", "repeat", "job", "copy")
Y_LABEL = "seconds per image (s)\n(what it cost the sweep: throughput)"
PREFIX = "seconds_vs_"


def _x(cells: pd.DataFrame, axis: str) -> pd.Series:
    if axis == "resolution":
        return cells["_h"] * cells["_w"] / 1e6
    return pd.to_numeric(labels(cells, axis), errors="coerce")


def _numeric(cells: pd.DataFrame, axis: str) -> bool:
    known = axes.BY_NAME.get(axis)
    if known is not None and not known.numeric:
        return False
    return _x(cells, axis).notna().all()


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


def file_name(axis: str) -> str:
    known = axes.BY_NAME.get(axis)
    return f"{PREFIX}{known.token if known else axis.replace('.', '-')}.png"


@lru_cache(maxsize=1)
def fallback_families() -> tuple[str, ...]:
    """Families of the sheets' fallback fonts (text.fallback_files: CJK and others DejaVu Sans lacks),
    registered with matplotlib (its font cache may predate them). Listed after the default family, they give
    matplotlib's per-glyph fallback (>= 3.6) the characters DejaVu Sans lacks."""
    from matplotlib import font_manager

    names: list[str] = []
    for path in dict.fromkeys((*tx.fallback_files(), *tx.fallback_files(bold=True))):
        if not tx.usable(path):
            continue
        try:
            font_manager.fontManager.addfont(path)
            name = font_manager.get_font(path).family_name
        except (OSError, RuntimeError, ValueError):
            continue
        if name not in names:
            names.append(name)
    return tuple(names)


def write_plots(cells: pd.DataFrame, moving: list[str], out_dir: Path) -> list[Path]:
    """One PNG per varying axis; plots of axes that no longer vary are removed."""
    done = cells[(cells["status"] == "ok") & cells["_seconds"].notna()]
    written: list[Path] = []
    todo = [a for a in moving if a not in SKIP and labels(done, a).nunique() >= 2]
    if todo:
        # Imported here: matplotlib takes ~0.5 s to import and only this function needs it.
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        # The fallback fonts after the usual family: CJK labels (prompts) are drawn, not boxes.
        with matplotlib.rc_context({"font.family": [*matplotlib.rcParams["font.family"], *fallback_families()]}):
            for axis in todo:
                figure = Figure(figsize=(8, 5), layout="constrained")
                FigureCanvasAgg(figure)
                ax = figure.add_subplot()
                numeric = _numeric(done, axis)
                if numeric:
                    _lines(ax, done, axis, _group_axis(done, axis, moving))
                else:
                    _bars(ax, done, axis)
                known = axes.get(axis) if axis in axes.BY_NAME or axis.startswith(f"{axes.LORA}.") else None
                label = f"{axis} ({known.help})" if known and known.help else axis
                ax.set_xlabel(label if numeric else f"{label}\nbars: mean over the other axes; whiskers: min to max")
                subtitle = _subtitle(done)
                ax.set_title(f"Seconds per image vs {axis}" + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
                written.append(save_figure(figure, out_dir / file_name(axis)))
    if out_dir.is_dir():  # an axis that no longer varies must not leave an old plot behind
        for path in out_dir.glob(f"{PREFIX}*.png"):
            if path not in written:
                path.unlink()
    return written


def _lines(ax: Any, cells: pd.DataFrame, axis: str, group: str | None) -> None:
    x_all = _x(cells, axis)
    values = order_values(cells, group) if group else [None]
    for index, value in enumerate(values):
        mask = labels(cells, group) == value if group else pd.Series(True, index=cells.index)
        x, y = x_all[mask], cells.loc[mask, "_seconds"]
        stats = y.groupby(x).agg(["mean", "min", "max"]).sort_index()
        colour = f"C{index % 10}"
        label = f"{group} = {axes.label(group, value)}" if group else "mean seconds per image"
        if axis == "num_inference_steps" and len(stats) >= 2:
            # The slope is the cost of one step; the intercept is the fixed cost (text encoder, VAE decode).
            slope, intercept = np.polyfit(stats.index.to_numpy(float), stats["mean"].to_numpy(float), 1)
            sign = "+" if intercept >= 0 else "−"
            label += f"  (≈ {slope:.3g} s/step {sign} {abs(intercept):.2g} s)"
        ax.plot(stats.index, stats["mean"], marker="o", color=colour, label=label)
        if (stats["max"] > stats["min"]).any():
            ax.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.15, linewidth=0)
        ax.scatter(x, y, s=12, color=colour, alpha=0.35, linewidths=0)
    ax.set_ylabel(Y_LABEL)
    ax.grid(True, alpha=0.3)
    _y_scale(ax, cells["_seconds"])
    ticks = sorted(x_all.dropna().unique())
    if axis == "resolution":
        # One tick per pixel count; 768x512 and 512x768 share one.
        names = cells.assign(_mp=x_all).groupby("_mp")["resolution"].agg(lambda r: "/".join(dict.fromkeys(r)))
        ax.set_xticks(names.index, [f"{mp:.2f}\n{r}" for mp, r in names.items()], fontsize=8)
    elif len(ticks) <= 15:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # the values actually run, not 12, 15, 18...
    if group or axis == "num_inference_steps":
        ax.legend(fontsize=8, title=None, loc="best")


def _bars(ax: Any, cells: pd.DataFrame, axis: str) -> None:
    values = order_values(cells, axis)
    names = labels(cells, axis)
    stats = [cells.loc[names == v, "_seconds"] for v in values]
    means = [s.mean() for s in stats]
    # Clipped at 0: the mean of equal values can land a rounding error outside [min, max].
    spread = np.clip(np.array([[m - s.min() for m, s in zip(means, stats, strict=True)],
                               [s.max() - m for m, s in zip(means, stats, strict=True)]]), 0, None)
    positions = np.arange(len(values))
    ax.bar(positions, means, color="C0", alpha=0.8, yerr=spread, capsize=3, ecolor="#5f6368")
    shown = ["\n".join(_wrap_label(axes.label(axis, v))) for v in values]
    rotation = 30 if len(values) > 6 else 0
    ax.set_xticks(positions, shown, fontsize=8, rotation=rotation, ha="right" if rotation else "center")
    ax.set_ylabel(Y_LABEL)
    ax.grid(True, axis="y", alpha=0.3)
    _y_scale(ax, cells["_seconds"])


def _wrap_label(text: str, width: int = 18, max_lines: int = 3) -> list[str]:
    if text.isascii():
        return textwrap.wrap(text, width, max_lines=max_lines, placeholder=" …")
    return tx.wrap_columns(" ".join(text.split()), width, max_lines)  # a CJK character counts two


def _y_scale(ax: Any, seconds: pd.Series) -> None:
    if seconds.min() > 0 and seconds.max() / seconds.min() > 30:
        # Tiny and full-size models on one plot differ by orders of magnitude.
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
