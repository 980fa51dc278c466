"""Similarity metrics of a run: each image against a reference image that shares every other parameter.

metrics.csv has one row per row of results.csv: `cell_id`, `axis` (the axis compared along), `value` (this
image's value on it), `reference` (the reference image's cell_id), `ssim`, `psnr` (dB, `inf` when identical),
`mean_abs_diff` and `max_abs_diff` (0-255 per RGB channel) and `note` (why a row has no scores: failed, no image,
no reference image, size differs, ...; `reference` on the reference row). A merged multirun table adds `job` and
`reference_job`, since its cell_ids repeat per job.

seed_spread.csv (when seeds vary): per setting (each combination of the other varying axes), how much the image
depends on the seed: `seeds`, `pairs`, `spread` (mean of 1 - SSIM over every pair of seeds), `spread_min`,
`spread_max`.

Only the PNGs listed in results.csv are read (scores are in similarity.py); nothing loads a model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep.report import similarity as sim
from sweep.report.atomic import save_csv
from sweep.report.data import RunData, norm_number
from sweep.report.layout import canonical, finite_decimal, labels, order_values, varying
from sweep.report.reference import ReferenceSpec
from sweep.report.result import ReportError

METRICS, SPREAD = "metrics.csv", "seed_spread.csv"
SEED = "seed"
# The automatic comparison axis: steps when they vary (the most-refined image is the natural reference);
# never an axis whose values are interchangeable draws (seed, variation seed) or copies.
PREFERRED = "num_inference_steps"
NOT_AUTOMATIC = (SEED, "subseed", "repeat", "job", "copy")
MAX_SEEDS = 16  # pairs grow as n^2: seed spread uses the first 16 seeds of a setting (120 pairs)


@dataclass(frozen=True)
class Reference:
    axis: str
    value: str  # label of the reference value on `axis`
    explicit: bool = False


@dataclass
class Metrics:
    """What compute() found: the metrics table (index = the cells' index) and the seed spread table."""

    reference: Reference | None
    table: pd.DataFrame | None = None
    spread: pd.DataFrame | None = None
    spread_axes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- which reference ----------------------------------------------------------------------------------


def is_numeric(cells: pd.DataFrame, axis: str) -> bool:
    values = set(labels(cells, axis))
    return bool(values) and all(finite_decimal(v) is not None for v in values)


def choose_reference(run: RunData, cells: pd.DataFrame, spec: ReferenceSpec) -> tuple[Reference | None, str]:
    """The reference axis and value for these cells, or None with a note saying why there is none.

    Raises ReportError for an unknown axis, or a value the axis does not have."""
    if spec.off:
        return None, ""
    moving = varying(cells, run.candidates)
    if spec.axis is None:
        numeric = [a for a in moving if a not in NOT_AUTOMATIC and is_numeric(cells, a)]
        axis = PREFERRED if PREFERRED in numeric else next(iter(numeric), None)
        if axis is None:
            return None, ""
        return Reference(axis, order_values(cells, axis)[-1]), ""
    axis = canonical(spec.axis, run.usable_axes, "reference")
    if not varying(cells, [axis]):
        return None, f"reference: {axis} does not vary in {run.run_dir}; no similarity metrics"
    values = order_values(cells, axis)
    if spec.value is None:
        return Reference(axis, values[-1], explicit=True), ""
    wanted = spec.value.strip()
    for match in (lambda v: v == wanted, lambda v: norm_number(v) == norm_number(wanted),
                  lambda v: v.lower() == wanted.lower()):
        found = [v for v in values if match(v)]
        if found:
            return Reference(axis, found[0], explicit=True), ""
    raise ReportError("reference", f"{axis}:{spec.value}", f"a value of {axis}: " + ", ".join(values))


def _determined_by(cells: pd.DataFrame, axis: str, others: list[str]) -> list[str]:
    """Axes that follow `axis` (dtype follows model): they differ only because `axis` does."""
    by = labels(cells, axis)
    return [o for o in others if labels(cells, o).groupby(by).nunique().max() == 1]


def pairing_axes(run: RunData, cells: pd.DataFrame, axis: str) -> list[str]:
    """The parameters an image must share with its reference: every other varying axis, except those that
    merely follow the reference axis."""
    others = [a for a in varying(cells, run.candidates) if a != axis]
    follow = set(_determined_by(cells, axis, others))
    return [a for a in others if a not in follow]


# --- computing ----------------------------------------------------------------------------------------


def _key(cells: pd.DataFrame, axes: list[str]) -> pd.Series:
    """One text key per cell from its labels on `axes` (a unit separator keeps 'a b'+'c' apart from 'a'+'b c')."""
    if not axes:
        return pd.Series([""] * len(cells), index=cells.index, dtype=object)
    return cells[axes].astype(str).agg("\x1f".join, axis=1)


def _path(run: RunData, row: pd.Series) -> Path | None:
    return run.run_dir / row["image"] if row.get("image") else None


def _score_group(run: RunData, cells: pd.DataFrame, ref_index: Any, members: list[Any]
                 ) -> tuple[dict[Any, dict[str, Any]], dict[Any, np.ndarray]]:
    """Score one group (the images sharing every other parameter) against its reference image.

    The reference is decoded once; the members are decoded and scored on one thread per core, so memory holds
    the reference plus one image per thread, whatever the group's size."""
    ref = ref_prepared = None
    if ref_index is not None and cells.at[ref_index, "status"] == "ok":
        ref = sim.load(_path(run, cells.loc[ref_index]))
        ref_prepared = sim.prepare(ref.luma) if ref is not None else None

    def score(index: Any) -> tuple[dict[str, Any], np.ndarray | None]:
        row = cells.loc[index]
        if row["status"] != "ok":
            return {"note": "failed"}, None
        pixels = ref if index == ref_index else sim.load(_path(run, row))
        if pixels is None:
            return {"note": "no image"}, None
        if ref_index is None:
            return {"note": "no reference image"}, pixels.luma
        if ref is None:
            failed = cells.at[ref_index, "status"] != "ok"
            return {"note": "reference failed" if failed else "reference has no image"}, pixels.luma
        if not sim.same_size(pixels, ref):
            return {"note": "size differs"}, pixels.luma  # never compared pixel to pixel
        s = sim.scores(pixels, ref, ref_prepared)
        note = "reference" if index == ref_index else ("too small for SSIM" if s.ssim != s.ssim else "")
        return ({"ssim": s.ssim, "psnr": s.psnr, "mean_abs_diff": s.mean_abs_diff, "max_abs_diff": s.max_abs_diff,
                 "note": note}, pixels.luma)

    done = sim.thread_map(score, members)
    out = {index: found for index, (found, _) in zip(members, done, strict=True)}
    thumbs = {index: luma for index, (_, luma) in zip(members, done, strict=True) if luma is not None}
    return out, thumbs


def compute(run: RunData, cells: pd.DataFrame, reference: Reference | None) -> Metrics:
    """Scores for the results rows of `cells` (missing cells are skipped) and the seed spread."""
    result = Metrics(reference)
    made = cells[cells["status"] != "missing"]
    thumbs: dict[Any, np.ndarray] = {}
    if reference is not None and len(made):
        result.table, thumbs = _reference_table(run, made, reference)
    if SEED in varying(made, run.candidates):
        result.spread, result.spread_axes = _seed_spread(run, made, thumbs)
    return result


def _reference_table(run: RunData, made: pd.DataFrame, reference: Reference
                     ) -> tuple[pd.DataFrame, dict[Any, np.ndarray]]:
    axes = pairing_axes(run, made, reference.axis)
    keys = _key(made, axes)
    on_axis = labels(made, reference.axis)
    is_ref = on_axis == reference.value
    # One reference per group: the first made in the sweep's order, preferring one that succeeded.
    refs: dict[str, Any] = {}
    for index in made.index[is_ref]:
        key = keys[index]
        if key not in refs or (made.at[refs[key], "status"] != "ok" and made.at[index, "status"] == "ok"):
            refs[key] = index
    scores: dict[Any, dict[str, Any]] = {}
    thumbs: dict[Any, np.ndarray] = {}
    for key, members in made.groupby(keys, sort=False).groups.items():
        part, small = _score_group(run, made, refs.get(key), list(members))
        scores.update(part)
        thumbs.update(small)

    table = pd.DataFrame(index=made.index)
    table["cell_id"] = made["cell_id"]
    has_job = "job" in made and any(made["job"])
    if has_job:
        table["job"] = made["job"]
    table["axis"] = reference.axis
    table["value"] = on_axis
    ref_of = [refs.get(keys[i]) for i in made.index]
    table["reference"] = [made.at[r, "cell_id"] if r is not None else "" for r in ref_of]
    if has_job:
        table["reference_job"] = [made.at[r, "job"] if r is not None else "" for r in ref_of]
    for column, digits in (("ssim", 6), ("psnr", 3), ("mean_abs_diff", 4)):
        table[column] = [round(scores[i].get(column, np.nan), digits) for i in made.index]
    table["max_abs_diff"] = pd.array([scores[i].get("max_abs_diff") for i in made.index], dtype="Int64")
    table["note"] = [scores[i]["note"] for i in made.index]
    return table, thumbs


def _seed_spread(run: RunData, made: pd.DataFrame, thumbs: dict[Any, np.ndarray]
                 ) -> tuple[pd.DataFrame | None, list[str]]:
    """Mean pairwise 1 - SSIM between the seeds of each setting."""
    ok = made[made["status"] == "ok"]
    others = [a for a in varying(made, run.candidates) if a != SEED]
    axes = [a for a in others if a not in _determined_by(made, SEED, others)]
    keys = _key(ok, axes)
    needed = [i for i in ok.index if i not in thumbs]
    loaded = sim.thread_map(lambda i: sim.load(_path(run, ok.loc[i])), needed)
    thumbs = {**thumbs, **{i: p.luma for i, p in zip(needed, loaded, strict=True) if p is not None}}

    def spread(indices: list[Any]) -> dict[str, Any] | None:
        first: dict[str, Any] = {}
        for i in indices:  # one image per seed (a merged table may hold copies), in the sweep's order
            if i in thumbs:
                first.setdefault(str(ok.at[i, SEED]), i)
        chosen = list(first.values())[:MAX_SEEDS]
        prepared = {i: sim.prepare(thumbs[i]) for i in chosen}  # each image filtered once, not once per pair
        values = [1 - sim.ssim_prepared(prepared[a], prepared[b]) for a, b in itertools.combinations(chosen, 2)
                  if thumbs[a].shape == thumbs[b].shape]
        values = [v for v in values if v == v]
        if not values:
            return None
        return {"seeds": len(chosen), "pairs": len(values), "spread": round(float(np.mean(values)), 6),
                "spread_min": round(float(np.min(values)), 6), "spread_max": round(float(np.max(values)), 6)}

    groups = list(ok.groupby(keys, sort=False).groups.items())
    found = sim.thread_map(lambda item: spread(list(item[1])), groups)
    rows = [{**{a: ok.at[indices[0], a] for a in axes}, **stats}
            for (_, indices), stats in zip(groups, found, strict=True) if stats]
    if not rows:
        return None, axes
    return pd.DataFrame(rows, columns=[*axes, "seeds", "pairs", "spread", "spread_min", "spread_max"]), axes


def similarity_labels(cells: pd.DataFrame, metrics: Metrics) -> pd.Series:
    """Caption text per cell: 'SSIM 0.934', 'reference', or '' (for the contact sheets; three decimals, as
    0.998 and 1.000 are different things)."""
    text = pd.Series([""] * len(cells), index=cells.index, dtype=object)
    if metrics.table is None:
        return text
    for index, row in metrics.table.iterrows():
        if row["note"] == "reference":
            text[index] = "reference"
        elif row["ssim"] == row["ssim"]:
            text[index] = f"SSIM {row['ssim']:.3f}"
    return text


def write(metrics: Metrics, run_dir: Path) -> list[Path]:
    """metrics.csv and seed_spread.csv; a file this build has nothing for is removed (no stale metrics)."""
    written = []
    for name, table in ((METRICS, metrics.table), (SPREAD, metrics.spread)):
        path = run_dir / name
        if table is not None:
            written.append(save_csv(table, path))
        elif path.exists():
            path.unlink()
    return written
