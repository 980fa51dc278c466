"""The timing model: seconds per image as a robust fit over the steps, per shape and sampler, with its noise.

One cell's seconds are noisy (other work on the machine, the first call's warm-up), so no time claim rests on
single cells. Cells are grouped by what changes the cost of a step: every axis whose registry entry has a `cost`
(size, sampler, CFG on or off, ...) and how the images were made (model, device, dtype, batch size). Within a
group, seconds = fixed + per_step x steps, fitted with Theil-Sen (the median of the slopes between pairs of
cells, scipy.stats.theilslopes: one outlier moves it little), leaving out warm-up calls (each job's first call).
The spread is the robust standard deviation of one image around the fit (1.4826 x the median absolute residual).

A time difference is claimed only when it is larger than twice the spread of the groups it compares, the
figure stays within 10 percentage points along the slope's 95 % interval, and the machine was not busy (a load
average above its cores at the start or the end of the run, from results.csv's `load_avg` and `cpus`: cells made
at different times were slowed differently); otherwise the report says the timings were too noisy, and why.

timing.csv: one row per group: its columns, `cells`, `warm_up` (cells left out), `per_step` (s), `per_step_low`
and `per_step_high` (95 % interval of the slope), `fixed` (s), `spread` (s) and `relative_spread`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep import axes
from sweep.report.atomic import save_csv
from sweep.report.layout import labels, order_values, varying

TIMING = "timing.csv"
STEPS = "num_inference_steps"
# How the images were made: each changes the seconds (not registry axes: columns of every row).
MADE = ("model", "device", "dtype", "batch_size", "options", "gpu", "threads")
# How many times its spread a difference must be to be claimed.
SIGNIFICANT = 2.0
MIN_CELLS = 3  # images a group needs for its spread to mean something
SHARE_WIDTH = 0.1  # a time share is quoted only when the fit pins it within 10 percentage points


@dataclass(frozen=True)
class Fit:
    """One group's line: seconds = fixed + per_step x steps (per_step 0 when steps do not vary)."""

    per_step: float
    fixed: float
    per_step_low: float
    per_step_high: float
    spread: float  # robust SD of one image around the fit (s)
    cells: int
    warm_up: int
    median: float = float("nan")  # the group's median seconds per image
    fixed_low: float = float("nan")  # the fixed cost that goes with per_step_low (median of seconds - low x steps)
    fixed_high: float = float("nan")

    def at(self, steps: float, bound: str = "") -> float:
        """Fitted seconds at `steps`; bound "low"/"high": along the slope's 95 % bounds instead."""
        per_step, fixed = {"low": (self.per_step_low, self.fixed_low),
                           "high": (self.per_step_high, self.fixed_high)}.get(bound, (self.per_step, self.fixed))
        if fixed != fixed:
            per_step, fixed = self.per_step, self.fixed
        return fixed + per_step * steps if steps == steps else fixed

    @property
    def relative_spread(self) -> float:
        return self.spread / self.median if self.median > 0 else float("nan")


@dataclass
class Load:
    """The 1-minute load average when the first and the last image landed, and the cores."""

    start: float | None = None
    end: float | None = None
    cpus: int | None = None

    @property
    def busy(self) -> bool:
        return bool(self.cpus) and any(v is not None and v > self.cpus for v in (self.start, self.end))

    def describe(self) -> str:
        if self.start is None and self.end is None:
            return ""
        cores = f" on {self.cpus} cores" if self.cpus else ""
        return f"load average {self.start:.1f} at the start, {self.end:.1f} at the end{cores}"


@dataclass
class Comparison:
    """Two sets of cells compared through the model: predicted seconds and whether the difference is real."""

    seconds_a: float
    seconds_b: float
    spread: float
    share_range: tuple[float, float] = (float("nan"), float("nan"))  # the share along the slope's 95 % bounds
    busy: bool = False  # more work than cores while the images were made

    @property
    def share(self) -> float | None:
        ok = self.seconds_b > 0 and np.isfinite(self.seconds_a) and np.isfinite(self.seconds_b)
        return float(self.seconds_a / self.seconds_b) if ok else None

    @property
    def significant(self) -> bool:
        """The difference is more than twice one image's spread, and the share moves less than SHARE_WIDTH
        between the slope's 95 % bounds (a figure that could be 5 % or 30 % is not a figure)."""
        low, high = self.share_range
        steady = not (np.isfinite(low) and np.isfinite(high)) or abs(high - low) <= SHARE_WIDTH
        return (not self.busy and bool(np.isfinite(self.spread)) and steady
                and abs(self.seconds_a - self.seconds_b) > SIGNIFICANT * self.spread)

    def phrase(self) -> str:
        """' in 35 % of the time' / ', but takes 1.4x the time' / '' when within the noise."""
        share = self.share
        if share is None or not self.significant:
            return ""
        return f" in {share * 100:.0f} % of the time" if share <= 1 else f", but takes {share:.1f}x the time"


@dataclass
class TimingModel:
    columns: list[str]  # what defines a group
    fits: dict[tuple[str, ...], Fit] = field(default_factory=dict)
    keys: pd.Series | None = None  # group key per cell (index = the cells')
    load: Load = field(default_factory=Load)

    def predict(self, cells: pd.DataFrame, bound: str = "") -> np.ndarray:
        """Fitted seconds per image for these cells (NaN where their group has no fit)."""
        steps = _steps(cells)
        out = []
        for index, s in zip(cells.index, steps, strict=True):
            fit = self.fits.get(self.keys.get(index)) if self.keys is not None else None
            out.append(fit.at(s, bound) if fit else float("nan"))
        return np.array(out, dtype=float)

    def spread_of(self, cells: pd.DataFrame) -> float:
        """The largest spread among the groups of these cells (NaN when one is unknown or none has a fit)."""
        found = [self.fits[k].spread for k in {self.keys.get(i) for i in cells.index} if k in self.fits] \
            if self.keys is not None else []
        return float(max(found)) if found and all(f == f for f in found) else float("nan")

    def compare(self, a: pd.DataFrame, b: pd.DataFrame) -> Comparison:
        shares = [_mean(self.predict(a, bound)) / _mean(self.predict(b, bound)) for bound in ("", "low", "high")]
        return Comparison(_mean(self.predict(a)), _mean(self.predict(b)), max(self.spread_of(a), self.spread_of(b)),
                          (min(shares), max(shares)), self.load.busy)

    def noise_note(self) -> str:
        """Why time differences were not claimed: the spread of single images and the machine's load."""
        fits = [f for f in self.fits.values() if f.spread == f.spread]
        if not fits:
            return (f"timings not compared: fewer than {MIN_CELLS} images per shape and sampler, too few to "
                    "measure their noise")
        spread = float(np.median([f.spread for f in fits]))
        relative = [f.relative_spread for f in fits if f.relative_spread == f.relative_spread]
        if self.load.busy:
            # Other work slowed the calls unevenly over the run: cells made at different times do not compare.
            return (f"timings too noisy to compare: the machine was busy ({self.load.describe()}), so other work "
                    f"slowed the calls unevenly; one image's seconds vary by ±{secs(spread)} s"
                    + (f" (±{np.median(relative) * 100:.0f} %)" if relative else "") + " around the per-step fit")
        text = (f"timings too noisy to compare: one image's seconds vary by ±{secs(spread)} s"
                + (f" (±{np.median(relative) * 100:.0f} %)" if relative else "")
                + " around the per-step fit, too much to pin the differences in question")
        load = self.load.describe()
        if load:
            text += f"; {load}" + (" (a busy machine)" if self.load.busy else "")
        return text


def secs(value: float, digits: int = 3) -> str:
    """Seconds as people read them: `digits` significant digits, never float noise (`4.12e-17` is `0`), and
    nothing finer than a millisecond (a timer's resolution on a busy machine is coarser anyway)."""
    value = float(value)
    if value != value:
        return "?"
    rounded = round(value, 3)
    if rounded == 0:
        return "0"
    return f"{float(f'{rounded:.{digits}g}'):g}" if abs(rounded) < 10 ** digits else f"{rounded:.0f}"


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _steps(cells: pd.DataFrame) -> np.ndarray:
    if STEPS not in cells:
        return np.full(len(cells), np.nan)
    return pd.to_numeric(labels(cells, STEPS), errors="coerce").to_numpy(float)


def group_columns(cells: pd.DataFrame, candidates: list[str]) -> list[str]:
    """The varying columns that change the cost of an image (steps excluded: the fit's x)."""
    found = []
    for column in varying(cells, list(dict.fromkeys([*candidates, *MADE]))):
        axis = axes.known(column)
        if axis is None:
            if column in MADE:
                found.append(column)
            continue
        if axis.timing is not None and axis.timing != "linear":
            found.append(column)
    return found


def _cost_key(cells: pd.DataFrame, columns: list[str]) -> pd.Series:
    parts = []
    for column in columns:
        axis = axes.known(column)
        cost = axis.timing if axis is not None and callable(axis.timing) else str
        parts.append(labels(cells, column).map(cost))
    if not parts:
        return pd.Series([()] * len(cells), index=cells.index, dtype=object)
    return pd.Series(list(zip(*parts, strict=True)), index=cells.index, dtype=object)


def warm_up(cells: pd.DataFrame) -> pd.Series:
    """Cells of each job's first call (the first rows written; a batched call's images share its seconds)."""
    flag = pd.Series(False, index=cells.index)
    if "_row" not in cells:
        return flag
    written = cells[cells["_row"].notna()]
    jobs = labels(written, "job") if "job" in written else pd.Series("", index=written.index)
    for _, part in written.groupby(jobs, sort=False):
        part = part.sort_values("_row")
        first = part.iloc[0]
        size = int(pd.to_numeric(first.get("batch_size", 1), errors="coerce") or 1) if "batch_size" in part else 1
        same = part.iloc[:max(1, size)]
        same = same[same["_seconds"] == first["_seconds"]] if first["_seconds"] == first["_seconds"] else same[:1]
        flag[same.index] = True
    return flag


def _fit(steps: np.ndarray, seconds: np.ndarray) -> tuple[float, float, float, float]:
    """Theil-Sen slope and intercept with the slope's 95 % interval; a median when steps do not vary."""
    if len(np.unique(steps)) < 2:
        level = float(np.median(seconds))
        return 0.0, level, 0.0, 0.0
    from scipy.stats import theilslopes

    slope, intercept, low, high = theilslopes(seconds, steps, 0.95)
    return float(slope), float(intercept), float(low), float(high)


def build(cells: pd.DataFrame, candidates: list[str]) -> TimingModel:
    """The model for these cells: only finished images with seconds count; warm-up calls are left out."""
    done = cells[(cells["status"] == "ok") & cells["_seconds"].notna()]
    columns = group_columns(done, candidates)
    model = TimingModel(columns, load=_load(done))
    model.keys = _cost_key(cells, columns)
    warm = warm_up(done)
    for key, part in done.groupby(model.keys[done.index], sort=False):
        kept = part[~warm[part.index]]
        if kept.empty:
            kept = part  # a group of one call: its only figure, warm or not
        steps = _steps(kept)
        seconds = kept["_seconds"].to_numpy(float)
        if not np.isfinite(steps).all():
            steps = np.zeros(len(kept))
        slope, intercept, low, high = _fit(steps, seconds)
        residuals = seconds - (intercept + slope * steps)
        # Fewer images than MIN_CELLS cannot show their noise: unknown, so nothing is claimed from them.
        spread = (float(1.4826 * np.median(np.abs(residuals - np.median(residuals)))) if len(kept) >= MIN_CELLS
                  else float("nan"))
        model.fits[key] = Fit(slope, intercept, low, high, spread, len(kept), int(warm[part.index].sum()),
                              float(np.median(seconds)), float(np.median(seconds - low * steps)),
                              float(np.median(seconds - high * steps)))
    return model


def _load(done: pd.DataFrame) -> Load:
    if "load_avg" not in done or "_row" not in done:
        return Load()
    ordered = done.sort_values("_row")
    values = pd.to_numeric(ordered["load_avg"], errors="coerce").dropna()
    cpus = pd.to_numeric(ordered.get("cpus", pd.Series(dtype=object)), errors="coerce").dropna()
    if values.empty:
        return Load()
    return Load(float(values.iloc[0]), float(values.iloc[-1]), int(cpus.max()) if len(cpus) else None)


def table(model: TimingModel, cells: pd.DataFrame) -> pd.DataFrame:
    """timing.csv's rows: the groups in the order of their columns' values."""
    rows = []
    for key, fit in model.fits.items():
        row: dict[str, Any] = dict(zip(model.columns, key, strict=True))
        row.update(cells=fit.cells, warm_up=fit.warm_up, per_step=round(fit.per_step, 6),
                   per_step_low=round(fit.per_step_low, 6), per_step_high=round(fit.per_step_high, 6),
                   fixed=round(fit.fixed, 6), spread=round(fit.spread, 6),
                   relative_spread=round(fit.relative_spread, 4))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*model.columns, "cells", "warm_up", "per_step", "per_step_low",
                                        "per_step_high", "fixed", "spread", "relative_spread"])
    for column in reversed(model.columns):
        axis = axes.known(column)
        if axis is not None and callable(axis.timing) and axis.timing is not str:
            continue  # a cost class ("CFG on"), not a value of the axis
        rank = {v: i for i, v in enumerate(order_values(cells, column))}
        frame = frame.sort_values(column, key=lambda s, r=rank: s.map(lambda v: r.get(v, len(r))), kind="stable")
    return frame.reset_index(drop=True)


def write(model: TimingModel, cells: pd.DataFrame, run_dir: Path) -> Path | None:
    path = run_dir / TIMING
    if not model.fits:
        path.unlink(missing_ok=True)
        return None
    return save_csv(table(model, cells), path)
