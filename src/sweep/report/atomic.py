"""Report files written atomically (see sweep.atomic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.atomic import write_atomic


def save_image(image: Any, path: Path) -> Path:
    """A PIL image as PNG (optimize off: large sheets would take seconds to squeeze a few percent)."""
    return write_atomic(path, lambda h: image.save(h, format="PNG", compress_level=6))


def save_figure(figure: Any, path: Path, dpi: int = 110) -> Path:
    return write_atomic(path, lambda h: figure.savefig(h, format="png", dpi=dpi))


def save_csv(table: Any, path: Path) -> Path:
    return write_atomic(path, lambda h: h.write(table.to_csv(index=False).encode("utf-8")))
