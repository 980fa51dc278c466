"""Atomic writes: a temp file in the same directory, then os.replace, so readers never see half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call write(handle) on a temp file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_image(image: Any, path: Path) -> Path:
    """A PIL image as PNG (optimize off: large sheets would take seconds to squeeze a few percent)."""
    return write_atomic(path, lambda h: image.save(h, format="PNG", compress_level=6))


def save_figure(figure: Any, path: Path, dpi: int = 110) -> Path:
    return write_atomic(path, lambda h: figure.savefig(h, format="png", dpi=dpi))


def save_csv(table: Any, path: Path) -> Path:
    return write_atomic(path, lambda h: h.write(table.to_csv(index=False).encode("utf-8")))
