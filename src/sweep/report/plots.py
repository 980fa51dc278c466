"""Timing plots (matplotlib, Agg, PNG): seconds per image against each axis that varies.

Numeric axes (steps, guidance, resolution as megapixels, ...) are lines; categorical ones (samplers, prompts)
are bars. Seconds are what each image cost the sweep (its call's wall time over the calls run side by side and
the images of the call, see sweep.running.scheduling.Outcome): comparable across cells, and about the sweep's wall time
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
from sweep.report import names as nm
from sweep.report import text as tx
from sweep.report import timing as tm
from sweep.report.atomic import save_figure
from sweep.report.layout import labels, order_values
from sweep.report.timing import TimingModel, secs

# Which other axis splits the data into lines: the one that changes the cost most, first.
GROUP_BY = ("model", "resolution", "num_inference_steps", "guidance_scale", "scheduler", "dtype", "device", "sweep")
MAX_LINES = 8
# Axes whose timing says nothing (noise, copies).
SKIP = ("seed", "subseed", "repeat", "job", "copy")
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


def write_plots(cells: pd.DataFrame, moving: list[str], out_dir: Path, timing: TimingModel | None = None
                ) -> list[Path]:
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
                per_step = axis != tm.STEPS and tm.STEPS in moving and labels(done, tm.STEPS).nunique() >= 2
                wide = axis == tm.STEPS or per_step
                figure = Figure(figsize=(11 if wide else 8, 5), layout="constrained")
                FigureCanvasAgg(figure)
                ax = figure.add_subplot()
                numeric = _numeric(done, axis)
                known = axes.known(axis)
                helpful = known is not None and known.help and known.help.lower() != axes.title(axis).lower()
                label = f"{axes.title(axis)} ({known.help})" if helpful else axes.title(axis)
                if axis == tm.STEPS and timing is not None:
                    _steps_fit(ax, done, timing)
                    ax.set_xlabel(label)
                    what = "Seconds per image vs steps: robust fit per shape and sampler"
                elif per_step:
                    _per_step(ax, done, axis, numeric, timing)
                    ax.set_xlabel(label)
                    what = f"Seconds per denoising step vs {axes.title(axis)} (steps vary: compared per step)"
                else:
                    if numeric:
                        _lines(ax, done, axis, _group_axis(done, axis, moving))
                    else:
                        _bars(ax, done, axis)
                    ax.set_xlabel(label if numeric else
                                  f"{label}\nbars: mean over the other axes; whiskers: min to max")
                    what = f"Seconds per image vs {axes.title(axis)}"
                subtitle = _subtitle(done)
                ax.set_title(what + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
                _key_ids(figure, ax, done)
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
            label += f"  (≈ {secs(slope)} s/step {sign} {secs(abs(intercept), 2)} s)"
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


def _key_ids(figure: Any, ax: Any, cells: pd.DataFrame) -> None:
    """Prompt ids the plot shows (P1, N2, S1 in ticks, legend, title) get their key under the plot."""
    texts = [t.get_text() for t in ax.get_xticklabels()] + list(ax.get_legend_handles_labels()[1])
    texts.append(ax.get_title())
    legend = ax.get_legend()
    if legend is not None:
        texts += [t.get_text() for t in legend.get_texts()]
    keys = nm.keys_for(cells, "\n".join(texts))
    if keys:
        shown = [k if len(k) <= 110 else k[:109] + "…" for k in keys[:12]]
        figure.supxlabel("\n".join(shown), x=0.01, ha="left", fontsize=7)


def _legend_outside(ax: Any, title: str | None = None) -> None:
    """To the right of the data: a legend inside sat on the points."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, title=title, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False)


def _group_name(cells: pd.DataFrame, columns: list[str], key: tuple[str, ...]) -> str:
    """'DDIM · CFG on': a timing group's key as users say it (cost classes as they are)."""
    parts = []
    for column, value in zip(columns, key, strict=True):
        axis = axes.known(column)
        if axis is not None and callable(axis.timing) and axis.timing is not str:
            parts.append(value)  # a cost class: 'CFG on'
        else:
            parts.append(nm.name(cells, column, value))
    return " · ".join(parts) or "all images"


def _steps_fit(ax: Any, cells: pd.DataFrame, timing: TimingModel) -> None:
    """Measured seconds (warm-up calls hollow) and each group's Theil-Sen line, drawn where it is quoted."""
    steps = pd.to_numeric(labels(cells, tm.STEPS), errors="coerce")
    warm = tm.warm_up(cells)
    keys = timing.keys[cells.index] if timing.keys is not None else pd.Series([()] * len(cells), index=cells.index)
    many = len(timing.fits) > 10
    span = np.linspace(float(steps.min()), float(steps.max()), 2)
    for index, (key, fit) in enumerate(timing.fits.items()):
        colour = "#5f6368" if many else f"C{index % 10}"
        mask = keys.map(lambda k, key=key: k == key).astype(bool)
        kept, early = mask & ~warm, mask & warm
        ax.scatter(steps[kept], cells.loc[kept, "_seconds"], s=10, color=colour, alpha=0.35, linewidths=0)
        if early.any():
            ax.scatter(steps[early], cells.loc[early, "_seconds"], s=30, facecolors="none", edgecolors=colour,
                       linewidths=1.2, label="warm-up call (left out of the fit)" if index == 0 else None)
        if not many:
            sign = "+" if fit.fixed >= 0 else "−"
            ax.plot(span, fit.fixed + fit.per_step * span, color=colour, linewidth=1.8,
                    label=f"{_group_name(cells, timing.columns, key)}: {secs(fit.per_step)} s/step {sign} "
                          f"{secs(abs(fit.fixed), 2)} s (±{secs(fit.spread, 2)} s)")
    if many:
        ax.text(0.01, 0.98, f"{len(timing.fits)} groups: their fits are in timing.csv", transform=ax.transAxes,
                va="top", fontsize=8)
    ax.set_ylabel("seconds per image (s)\npoints: measured; lines: robust fit (Theil-Sen)")
    ax.grid(True, alpha=0.3)
    # From 0, or lower where a fitted line (a negative fixed cost on a noisy machine) dips below: never cut.
    lowest = min([0.0, *(f.fixed + f.per_step * span.min() for f in timing.fits.values())]) if not many else 0.0
    ax.set_ylim(bottom=lowest * 1.1)
    ticks = sorted(steps.dropna().unique())
    if len(ticks) <= 15:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    _legend_outside(ax, "shape and sampler: per step + fixed (± spread of one image)")


def _per_step(ax: Any, cells: pd.DataFrame, axis: str, numeric: bool, timing: TimingModel | None) -> None:
    """The cost of one step (Theil-Sen slope, 95 % interval) per value of `axis`, split by the other cost
    classes: samplers compared per step, never pooled over step counts."""
    warm = tm.warm_up(cells)
    kept = cells[~warm]
    others = [c for c in (timing.columns if timing else []) if c != axis]
    hue = tm._cost_key(kept, others)
    hues = list(dict.fromkeys(hue))
    values = order_values(kept, axis)
    steps = pd.to_numeric(labels(kept, tm.STEPS), errors="coerce").to_numpy(float)
    width = 0.8 / max(1, len(hues))
    # Numeric positions as the axis's own plot has them (resolution in megapixels).
    where = _x(kept, axis)
    position = {v: float(where[labels(kept, axis) == v].iloc[0]) for v in values} if numeric else {}
    for h_index, h in enumerate(hues):
        xs, ys, lows, highs = [], [], [], []
        for v_index, value in enumerate(values):
            mask = ((labels(kept, axis) == value) & (hue == h)).to_numpy()
            if mask.sum() < 2:
                continue
            slope, _, low, high = tm._fit(steps[mask], kept["_seconds"].to_numpy(float)[mask])
            xs.append(position[value] if numeric else v_index + (h_index - (len(hues) - 1) / 2) * width)
            ys.append(slope)
            lows.append(max(0.0, slope - low))
            highs.append(max(0.0, high - slope))
        label = _group_name(kept, others, h) if others else None
        colour = f"C{h_index % 10}"
        if numeric:
            ax.errorbar(xs, ys, yerr=[lows, highs], fmt="o-", color=colour, capsize=3, label=label)
        else:
            ax.bar(xs, ys, width=width, color=colour, alpha=0.8, yerr=[lows, highs], capsize=3, ecolor="#5f6368",
                   label=label)
    if numeric:
        ax.set_xticks([position[v] for v in values], [nm.name(kept, axis, v) for v in values], fontsize=8)
    else:
        shown = ["\n".join(_wrap_label(nm.name(kept, axis, v))) for v in values]
        rotation = 30 if len(values) > 6 else 0
        ax.set_xticks(range(len(values)), shown, fontsize=8, rotation=rotation, ha="right" if rotation else "center")
    ax.set_ylabel("seconds per denoising step (s)\nrobust fit over the steps; whiskers: 95 % interval")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_ylim(bottom=0)
    _legend_outside(ax, " · ".join(axes.title(c) for c in others) if others else None)
