"""What a report build returns, and the one error it raises for bad input (kept free of heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sweep.errors import SweepError


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


@dataclass
class ReportResult:
    """Everything one build wrote, in order."""

    run_dir: Path
    sheets: list[Path] = field(default_factory=list)
    summary: Path | None = None
    plots: list[Path] = field(default_factory=list)
    pages: list[SheetPage] = field(default_factory=list)
    layouts: list[Layout] = field(default_factory=list)
    viewer: Path | None = None  # index.html, the interactive grid viewer

    def lines(self) -> list[str]:
        """What a summary prints about this report beyond its sheets and plots."""
        return [f"viewer:  {self.viewer}"] if self.viewer else []
