"""Atomic writes: a temp file in the same directory, then os.replace, so readers never see half a file.

Used for every file the tool writes (images, tables, sheets, plots); a kill at any moment leaves either the
old file or the new one, plus at most a hidden `.NAME.*.tmp` that a resumed run removes.
"""

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


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Bytes or text (UTF-8) to `path`, atomically."""
    payload = data.encode() if isinstance(data, str) else data
    return write_atomic(path, lambda handle: handle.write(payload))
