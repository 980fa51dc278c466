"""What a report build returns, and the one error it raises for bad input (kept free of heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sweep.errors import SweepError

# Everything a report writes into a run dir (restart=true moves these aside with the experiment).
OUTPUTS = ("sheets", "plots", "summary.csv", "metrics.csv", "seed_spread.csv", "convergence.csv", "timing.csv",
           "index.html", "thumbs", "scores.csv", "scores.json", "ranking.csv")


class ReportError(SweepError):
    """Bad report input: one line naming the key, the value and what is allowed (the CLI exits 2)."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        text = str(value)
        if len(text) > 120:
            text = text[:117] + "..."
        super().__init__(f"{key}: got {text!r}; allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed


@dataclass(frozen=True)
class Layout:
    """Axes on rows, columns and separate sheets (several axes in one slot make combined labels)."""

    rows: tuple[str, ...] = ()
    cols: tuple[str, ...] = ()
    sheets: tuple[str, ...] = ()
    group: str | None = None  # the sweep these sheets show, when a merged table holds several

    def describe(self) -> str:
        parts = [f"{k}={','.join(v)}" for k, v in (("rows", self.rows), ("cols", self.cols),
                                                   ("sheets", self.sheets)) if v]
        return " ".join(parts) or "single cell"


@dataclass(frozen=True)
class SheetPage:
    """One written contact sheet; `boxes` maps cell_id to the rectangle (x0, y0, x1, y1) its image fills."""

    path: Path
    layout: Layout
    sheet: str  # the sheet axes' values, e.g. "guidance_scale = 5" ("" when there is one sheet)
    part: int
    parts: int
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)  # cell_id -> "failed" | "missing" | "no image"
    legend: tuple[str, ...] = ()  # 'P1: full prompt' for prompts the headers show by id


LISTED_SHEETS = 4  # more sheets than this: one line pointing at the folder, not one line per sheet


def sheet_lines(sheets: list[Path], viewer: Path | None = None, note: str = "") -> list[str]:
    """The sheets as a summary prints them: each path when few, else one line for the folder and the viewer."""
    if len(sheets) <= LISTED_SHEETS:
        return [f"sheet:   {path}" for path in sheets] + ([f"         ({note})"] if note and sheets else [])
    folders = list(dict.fromkeys(str(p.parent) for p in sheets))
    where = folders[0] if len(folders) == 1 else ", ".join(folders)
    text = f"sheets:  {len(sheets)} in {where}"
    if note:
        text += f" ({note})"
    text += f"; every image in the viewer {viewer}" if viewer else "; every image in the viewer"
    return [text]


@dataclass
class ReportResult:
    """Everything one build wrote, in order."""

    run_dir: Path
    sheets: list[Path] = field(default_factory=list)
    summary: Path | None = None
    plots: list[Path] = field(default_factory=list)
    pages: list[SheetPage] = field(default_factory=list)
    layouts: list[Layout] = field(default_factory=list)
    metrics: list[Path] = field(default_factory=list)  # metrics.csv, seed_spread.csv
    insights: list[str] = field(default_factory=list)  # knee and seed-spread sentences, notes
    viewer: Path | None = None  # index.html, the interactive grid viewer
    sheet_note: str = ""  # which sheets were drawn when a large sweep gets only some ("one per Sampler, ...")

    def lines(self) -> list[str]:
        """What a summary prints about this report beyond its sheets and plots."""
        return ([f"viewer:  {self.viewer}"] if self.viewer else []) + self.insights

    def sheet_lines(self) -> list[str]:
        return sheet_lines(self.sheets, self.viewer, self.sheet_note)
