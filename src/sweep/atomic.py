"""Atomic, durable writes: a temp file in the same directory, fsync, then os.replace, so readers never see half
a file and a power cut leaves either the old file or the new one.

Used for every file the tool writes (images, tables, sheets, plots); a kill at any moment leaves at most a
hidden `.NAME.*.tmp` beside the file, which `remove_stale_temp_files` (called when a run or a report starts)
removes. Files get the permissions the user's umask gives a new file (mkstemp alone would make them 0600,
unreadable by the group on a shared server).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

TEMP_GLOB = ".*.tmp"


def _read_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # set-and-restore: only at import, before any thread of ours runs
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call write(handle) on a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        exc.filename = str(path)  # a read-only or full folder: name the file the user knows, not a temp name
        raise
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            exc.filename = str(path)  # name the file the user knows, not the hidden temp file
        raise
    fsync_dir(path.parent)
    return path


def atomic_write(path: Path, data: bytes | str) -> Path:
    """Bytes or text (UTF-8) to `path`, atomically."""
    payload = data.encode() if isinstance(data, str) else data
    return write_atomic(path, lambda handle: handle.write(payload))


def remove_stale_temp_files(folders: Iterable[Path]) -> int:
    """Drop `.NAME.*.tmp` files a kill left behind (never renamed, so never a valid file); returns how many."""
    removed = 0
    for folder in folders:
        if folder.is_dir():
            for stale in folder.glob(TEMP_GLOB):
                if stale.is_file():
                    stale.unlink(missing_ok=True)
                    removed += 1
    return removed
