"""The report: contact sheets, summary.csv, timing plots and index.html (the viewer), from a run directory alone.

    from sweep.report import build_report
    build_report("outputs/steps_10_to_90/2024-01-01_12-00-00", rows="seed", cols="num_inference_steps")

or `python -m sweep.report DIR [rows=AXIS] [cols=AXIS] [sheets=AXIS] [cell_max=N] [max_cells=N]
[captions=true|false] [reference=AXIS:VALUE] [report.scores=[clip_score,...]]`. Importing this package is cheap:
pandas, PIL and matplotlib load on first build.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sweep.report.result import OUTPUTS, Layout, ReportError, ReportResult, SheetPage

if TYPE_CHECKING:
    from sweep.report.scores import ScoreOptions

__all__ = ["OUTPUTS", "Layout", "ReportError", "ReportResult", "SheetPage", "build_report"]


def build_report(run_dir: str | Path, rows: str | None = None, cols: str | None = None,
                 sheets: str | None = None, *, cell_max: int = 512, max_cells: int = 64,
                 captions: bool = True, reference: str | None = None,
                 scores: ScoreOptions | None = None) -> ReportResult:
    """Build contact sheets (run_dir/sheets/), summary.csv, plots (run_dir/plots/), similarity metrics
    (metrics.csv) and the viewer (run_dir/index.html, thumbnails in thumbs/) from a run directory.

    rows/cols/sheets name an axis (seed, num_inference_steps, guidance_scale, resolution, prompt, or any
    column of results.csv; comma-separated to combine; "none" for an empty slot). Unset slots come from
    sweep.json's layout, else are inferred from what varies. cell_max caps a cell's longest edge in pixels;
    sheets with more than max_cells cells are split into parts. reference (AXIS:VALUE, AXIS, auto or none) picks
    the image every other image is compared with for metrics.csv and plots/convergence_<axis>.png (see
    sweep.report.reference). scores (sweep.report.scores.ScoreOptions) scores the images not scored yet
    (scores.csv) and ranks each axis's values by them (ranking.csv, plots/scores_*.png); scores an earlier build
    wrote are ranked and shown either way. Raises ReportError on bad input.
    """
    from sweep.report.build import build_report as build

    return build(run_dir, rows, cols, sheets, cell_max=cell_max, max_cells=max_cells, captions=captions,
                 reference=reference, scores=scores)
