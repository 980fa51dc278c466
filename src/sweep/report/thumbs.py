"""Thumbnails for the viewer: small JPEGs beside each run's images, made once and reused while the PNG is unchanged.

An image `P/images/NAME.png` gets `P/thumbs/NAME.jpg` (a multirun sweep dir reuses the thumbnails its jobs made).
Each thumbs folder keeps `index.json`: per thumbnail the source PNG's size and mtime, the thumbnail's own size
and mtime (a thumbnail changed or cut since is made again), the PNG's pixel sizes and its A1111 `parameters`
text, so a rebuild of an unchanged run opens no image at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sweep.atomic import atomic_write, write_atomic

THUMBS, INDEX = "thumbs", "index.json"
MAX_EDGE = 256
QUALITY = 85
# Bump when the way thumbnails are made changes: every recorded one is then made again.
VERSION = 2


@dataclass(frozen=True)
class Thumb:
    """One image's thumbnail (`thumb` relative to the run dir), its native size and its `parameters` text."""

    thumb: str
    width: int
    height: int
    parameters: str


@dataclass(frozen=True)
class _Entry:
    source_mtime_ns: int
    source_size: int
    thumb_mtime_ns: int
    thumb_size: int
    width: int
    height: int
    parameters: str
    version: int = VERSION


def thumb_path(image: str) -> str:
    """Where an image's thumbnail goes, relative to the same root: `P/images/N.png` -> `P/thumbs/N.jpg`."""
    path = PurePosixPath(image)
    if path.parent.name == "images":
        return str(path.parent.parent / THUMBS / (path.stem + ".jpg")).removeprefix("./")
    # An image outside an images/ folder: keep it apart from the others by a hash of its path.
    digest = hashlib.sha1(image.encode()).hexdigest()[:10]
    return f"{THUMBS}/{path.stem}-{digest}.jpg"


def inside(root: Path, relative: str) -> Path | None:
    """root/relative when it stays inside root (results.csv is data, not a licence to read anywhere)."""
    if not relative or PurePosixPath(relative).is_absolute():
        return None
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def make_thumbs(root: Path, images: list[str], workers: int | None = None) -> dict[str, Thumb]:
    """Thumbnails for these images (paths relative to root); returns {image: Thumb} for those that exist.

    Fresh thumbnails are reused (their files keep their mtime); new or changed PNGs are read on a few threads
    (PIL decodes and resizes without the GIL).
    """
    folders: dict[Path, dict[str, Any]] = {}
    todo: list[tuple[str, Path, Path, os.stat_result]] = []
    found: dict[str, Thumb] = {}
    for image in dict.fromkeys(images):
        source, thumb = inside(root, image), inside(root, thumb_path(image))
        if source is None or thumb is None:
            continue
        try:
            stat = source.stat()
        except OSError:
            continue  # listed but not on disk: the viewer shows the cell as having no image
        if thumb.parent not in folders:
            folders[thumb.parent] = _read_index(thumb.parent / INDEX)
        index = folders[thumb.parent]
        entry = index.get(thumb.name)
        if (isinstance(entry, _Entry) and entry.source_mtime_ns == stat.st_mtime_ns
                and entry.source_size == stat.st_size and _unchanged(thumb, entry)):
            found[image] = Thumb(thumb_path(image), entry.width, entry.height, entry.parameters)
        else:
            todo.append((image, source, thumb, stat))
    if todo:
        with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1), thread_name_prefix="thumbs") as pool:
            for (image, _, thumb, stat), made in zip(todo, pool.map(lambda t: _make(t[1], t[2]), todo),
                                                     strict=True):
                if made is None:
                    continue
                width, height, parameters = made
                try:
                    own = thumb.stat()
                except OSError:
                    continue
                folders[thumb.parent][thumb.name] = _Entry(stat.st_mtime_ns, stat.st_size, own.st_mtime_ns,
                                                           own.st_size, width, height, parameters)
                found[image] = Thumb(thumb_path(image), width, height, parameters)
        for folder, index in folders.items():
            _write_index(folder / INDEX, index)
    return found


def _unchanged(thumb: Path, entry: _Entry) -> bool:
    """The thumbnail file is the one recorded: same size and mtime (an edited, cut or replaced file is not)."""
    try:
        own = thumb.stat()
    except OSError:
        return False
    return own.st_size == entry.thumb_size and own.st_mtime_ns == entry.thumb_mtime_ns and own.st_size > 0


def _make(source: Path, thumb: Path) -> tuple[int, int, str] | None:
    """Write one thumbnail; returns the PNG's (width, height, parameters), or None when it is unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            image.load()
            size = image.size
            # Text chunks may follow the pixel data; after load() `.text` holds them all.
            parameters = str(getattr(image, "text", {}).get("parameters", ""))
            small = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None  # a torn or foreign file: no thumbnail; the large view still links the PNG
    small.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    write_atomic(thumb, lambda h: small.save(h, format="JPEG", quality=QUALITY, optimize=True))
    return size[0], size[1], parameters


def _read_index(path: Path) -> dict[str, Any]:
    """The index as this tool wrote it; anything else in the file (a hand edit such as `{"thumbs": 5}`, another
    tool's JSON) is a stale cache: those thumbnails are made again."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    thumbs = data.get("thumbs") if isinstance(data, dict) else None
    entries: dict[str, Any] = {}
    for name, value in thumbs.items() if isinstance(thumbs, dict) else ():
        try:
            entry = _Entry(**value) if isinstance(value, dict) else None
            if entry is None:
                continue
        except TypeError:
            continue  # an older or foreign entry: made again
        if entry.version == VERSION:
            entries[name] = entry
    return entries


def _write_index(path: Path, index: dict[str, Any]) -> None:
    entries = {name: asdict(entry) for name, entry in sorted(index.items()) if isinstance(entry, _Entry)}
    atomic_write(path, json.dumps({"thumbs": entries}, ensure_ascii=False, indent=0) + "\n")
