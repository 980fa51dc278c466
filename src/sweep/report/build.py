"""build_report: run directory -> contact sheets, summary.csv, timing plots, similarity metrics and index.html
(no generation)."""

from __future__ import annotations

import math
from pathlib import Path

from sweep.errors import SweepError
from sweep.report import metrics as mx
from sweep.report import reference as ref
from sweep.report.atomic import ImageSaver
from sweep.report.convergence import write_convergence
from sweep.report.data import load_run
from sweep.report.layout import SLOTS, choose_layout, labels, order_values, parse_slot, varying
from sweep.report.plots import write_plots
from sweep.report.result import ReportError, ReportResult
from sweep.report.sheets import style_for, write_sheets
from sweep.report.tables import write_summary
from sweep.report.viewer import write_viewer

SHEETS_DIR, PLOTS_DIR = "sheets", "plots"
MIN_CELL = 64


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
    from sweep.report import OUTPUTS
    from sweep.rundir import LOCK

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
                 captions: bool = True, reference: str | None = None) -> ReportResult:
    """Rebuild the sheets, summary.csv, plots and metrics of a finished or partial run. See sweep.report."""
    try:
        spec = ref.parse(reference, "reference")
    except SweepError:
        raise ReportError("reference", reference, ref.FORMS) from None
    cell_max = _check_int("cell_max", cell_max, MIN_CELL)
    max_cells = _check_int("max_cells", max_cells, 1)
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

    # Metrics first: the sheets' captions show each image's similarity beside its seconds.
    chosen, note = mx.choose_reference(run, cells, spec)
    metrics = mx.compute(run, cells, chosen)
    result.metrics = mx.write(metrics, run.run_dir)
    cells["_ssim"] = metrics.table["ssim"] if metrics.table is not None else float("nan")
    cells["_similarity"] = mx.similarity_labels(cells, metrics)
    result.insights += [note] if note else []

    # One downscale factor for the whole report keeps relative sizes true across cells and sheets.
    edge = max((v for v in (cells["_h"].max(), cells["_w"].max()) if v == v), default=512)
    scale = min(1.0, cell_max / edge)
    style = style_for(math.floor(edge * scale))

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
            pages = write_sheets(run, sub, layout, deps, scale=scale, style=style, max_cells=max_cells,
                                 captions=captions, out_dir=run.run_dir / SHEETS_DIR, save=saver.save)
            result.layouts.append(layout)
            result.pages += pages
        result.summary = write_summary(cells, moving, run.run_dir)
        result.plots = write_plots(cells, moving, run.run_dir / PLOTS_DIR)
        # Thumbnails are made here, while the last sheets are still being encoded on the saver's thread.
        result.viewer = write_viewer(run, result.layouts[0] if result.layouts else None)
        convergence, sentences = write_convergence(run, cells, metrics, run.run_dir / PLOTS_DIR)
        result.plots += convergence
        result.insights += sentences
    result.sheets = [p.path for p in result.pages]
    return result
