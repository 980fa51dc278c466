"""build_report: run directory -> contact sheets, summary.csv, timing plots, similarity metrics and index.html
(no generation)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sweep.axes import title as axis_title
from sweep.errors import SweepError
from sweep.report import metrics as mx
from sweep.report import names as nm
from sweep.report import reference as ref
from sweep.report import timing as tm
from sweep.report.atomic import ImageSaver
from sweep.report.convergence_plot import write_convergence
from sweep.report.data import load_run
from sweep.report.layout import SLOTS, choose_layout, labels, order_values, parse_slot, varying
from sweep.report.plots import write_plots
from sweep.report.ranking import write_ranking
from sweep.report.result import Layout, ReportError, ReportResult
from sweep.report.scores import ScoreOptions, attach_scores, score_run
from sweep.report.scores import check as check_scores
from sweep.report.sheets import style_for, write_sheets
from sweep.report.tables import write_summary
from sweep.report.viewer import write_viewer
from sweep.rundir.guard import check_links

SHEETS_DIR, PLOTS_DIR = "sheets", "plots"
MIN_CELL = 64
MAX_SHEETS = 8  # inferred sheets beyond this: one per value of the slowest-changing sheet axis


def _changes(cells: pd.DataFrame, axis: str) -> int:
    """How often the axis's value changes along the sweep's order (the outermost loop changes least)."""
    values = labels(cells.sort_values("_order", kind="stable"), axis)
    return int((values != values.shift()).sum())


def few_sheets(cells: pd.DataFrame, layout: Layout) -> tuple[pd.DataFrame, str]:
    """A large sweep's sheets: when the sheet axes make more than MAX_SHEETS sheets, one sheet per value of the
    slowest-changing of them (up to MAX_SHEETS), the other sheet axes at their first value; the viewer has all.
    Returns the cells to draw and a note saying what was drawn ('' when everything was)."""
    if not layout.sheets:
        return cells, ""
    counts = [labels(cells, a).nunique() for a in layout.sheets]
    total = math.prod(counts)
    if total <= MAX_SHEETS:
        return cells, ""
    slowest = min(layout.sheets, key=lambda a: (_changes(cells, a), layout.sheets.index(a)))
    keep = pd.Series(True, index=cells.index)
    fixed = []
    for axis in layout.sheets:
        values = order_values(cells, axis)
        if axis == slowest:
            keep &= labels(cells, axis).isin(values[:MAX_SHEETS])
        else:
            keep &= labels(cells, axis) == values[0]
            fixed.append(nm.name(cells, axis, values[0]))
    shown = min(MAX_SHEETS, labels(cells, slowest).nunique())
    note = f"{shown} of {total} sheet combinations: one per {axis_title(slowest)}"
    if fixed:
        note += f" at {', '.join(fixed)}"
    return cells[keep], note


def _check_int(key: str, value: object, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ReportError(key, value, f"an integer >= {minimum}")
    return number


def remove_stale_report_files(run_dir: Path) -> int:
    """The hidden `.NAME.*.tmp` files a killed report (or run) left, removed before this report writes; not while
    a run holds the directory's lock (its temp files are live)."""
    import fcntl

    from sweep.atomic import remove_stale_temp_files
    from sweep.report.result import OUTPUTS
    from sweep.rundir.guard import LOCK

    lock = run_dir / LOCK
    handle = None
    try:
        if lock.is_file():
            handle = open(lock, encoding="utf-8")  # noqa: SIM115  closed below; read-only: never creates it
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return remove_stale_temp_files([run_dir, *(run_dir / name for name in OUTPUTS)])
    except OSError:
        return 0  # a run holds the directory (or it cannot be locked or cleaned): leave its files alone
    finally:
        if handle is not None:
            handle.close()


def build_report(run_dir: str | Path, rows: str | None = None, cols: str | None = None,
                 sheets: str | None = None, *, cell_max: int = 512, max_cells: int = 64,
                 captions: bool = True, reference: str | None = None,
                 scores: ScoreOptions | None = None) -> ReportResult:
    """Rebuild the sheets, summary.csv, plots and metrics of a finished or partial run. See sweep.report."""
    try:
        spec = ref.parse(reference, "reference")
    except SweepError:
        raise ReportError("reference", reference, ref.FORMS) from None
    cell_max = _check_int("cell_max", cell_max, MIN_CELL)
    max_cells = _check_int("max_cells", max_cells, 1)
    if scores is not None:
        check_scores(scores)  # a scorer's model that cannot be found: one line before anything is written
    check_links(Path(run_dir), "DIR")  # a report writes nothing through a link (sheets/ -> elsewhere)
    run = load_run(run_dir)
    remove_stale_report_files(run.run_dir)
    cells = run.cells
    if cells.empty:
        raise ReportError("DIR", str(run.run_dir), "a run whose results.csv has rows or whose sweep.json "
                          "lists the expected cells")
    allowed = run.usable_axes
    given = zip(SLOTS, (rows, cols, sheets), strict=True)
    explicit = {slot: parse_slot(slot, value, allowed) for slot, value in given}
    named: dict[str, str] = {}
    for slot, axes in explicit.items():
        for axis in axes or ():
            if axis in named:
                raise ReportError(slot, axis, f"an axis not already on {named[axis]}")
            named[axis] = slot
    result = ReportResult(run_dir=run.run_dir)

    # Scores (report.scores) before the viewer, which shows them; none asked: those an earlier report wrote.
    scored = score_run(run.run_dir, cells, scores or ScoreOptions())
    result.insights += scored.lines
    score_columns = attach_scores(cells, scored.table)

    # Metrics first: the sheets' captions show each image's similarity beside its seconds.
    chosen, note = mx.choose_reference(run, cells, spec)
    metrics = mx.compute(run, cells, chosen)
    result.metrics = mx.write(metrics, run.run_dir) + ([scored.path] if scored.path else [])
    cells["_ssim"] = metrics.table["ssim"] if metrics.table is not None else float("nan")
    cells["_similarity"] = mx.similarity_labels(cells, metrics)
    result.insights += [note] if note else []

    # One downscale factor for the whole report keeps relative sizes true across cells and sheets.
    edge = max((v for v in (cells["_h"].max(), cells["_w"].max()) if v == v), default=512)
    scale = min(1.0, cell_max / edge)
    style = style_for(math.floor(edge * scale))

    # The timing model before the sheets: their captions show each image's fitted seconds, not one noisy call.
    timing = tm.build(cells, run.candidates)
    fitted = timing.predict(cells)
    cells["_fitted"] = fitted

    # A merged table of several sweeps (multirun sweep=a,b): each sweep gets its own sheets and layout.
    groups = [(None, cells)]
    if "sweep" in cells and labels(cells, "sweep").nunique() > 1 and "sweep" not in named:
        groups = [(name, cells[labels(cells, "sweep") == name]) for name in order_values(cells, "sweep")]
    moving = varying(cells, run.candidates)
    # Sheets are encoded on a thread while the next page, summary.csv and the plots are drawn here.
    with ImageSaver() as saver:
        for group, sub in groups:
            sub = sub.copy()
            layout, deps = choose_layout(run, sub, explicit, group)
            if explicit.get("sheets") is None:
                sub, note = few_sheets(sub, layout)
                result.sheet_note = note or result.sheet_note
            pages = write_sheets(run, sub, layout, deps, scale=scale, style=style, max_cells=max_cells,
                                 captions=captions, out_dir=run.run_dir / SHEETS_DIR, save=saver.save)
            result.layouts.append(layout)
            result.pages += pages
        result.summary = write_summary(cells, moving, run.run_dir)
        written = tm.write(timing, cells, run.run_dir)
        result.metrics += [written] if written else []
        result.plots = write_plots(cells, moving, run.run_dir / PLOTS_DIR, timing)
        convergence, sentences = write_convergence(run, cells, metrics, timing, run.run_dir / PLOTS_DIR)
        result.metrics += [p for p in convergence if p.suffix == ".csv"]
        result.plots += [p for p in convergence if p.suffix != ".csv"]
        result.insights += sentences
        ranked, ranking = write_ranking(run.run_dir, cells, run.candidates, score_columns, run.run_dir / PLOTS_DIR)
        result.metrics += [p for p in ranked if p.suffix == ".csv"]
        result.plots += [p for p in ranked if p.suffix != ".csv"]
        result.insights += ranking
        # Thumbnails are made here, while the last sheets are still being encoded on the saver's thread.
        result.viewer = write_viewer(run, result.layouts[0] if result.layouts else None,
                                     scores=(score_columns, ranking))
    result.sheets = [p.path for p in result.pages]
    # Every prompt id a summary line uses (P1, N1, S2) has its key among the lines.
    said = "\n".join(result.insights)
    result.insights += [k for k in nm.keys_for(cells, said) if k not in result.insights]
    retire_sheets(run.run_dir / SHEETS_DIR, result.sheets)
    return result


RETIRED = "previous"  # sheets/previous/: the sheets of an earlier layout, moved out of the way, never deleted


def retire_sheets(folder: Path, drawn: list[Path]) -> list[Path]:
    """Move the PNGs in sheets/ that this report did not draw (another layout's, `sweep.report DIR rows=...`)
    into sheets/previous/, so sheets/ shows the sheets of one layout. Only plain files (no links)."""
    import os

    keep = {Path(p).name for p in drawn}
    moved = []
    if not folder.is_dir() or folder.is_symlink():
        return moved
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".png" or path.name in keep or path.is_symlink() or not path.is_file():
            continue
        target = folder / RETIRED
        target.mkdir(exist_ok=True)
        if target.is_symlink():
            return moved
        os.replace(path, target / path.name)
        moved.append(target / path.name)
    return moved
