"""Report files written atomically (see sweep.atomic)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sweep.atomic import write_atomic


def save_image(image: Any, path: Path, text: dict[str, str] | None = None) -> Path:
    """A PIL image as PNG (optimize off: large sheets would take seconds to squeeze a few percent), with `text`
    as PNG text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    return write_atomic(path, lambda h: image.save(h, format="PNG", compress_level=6, pnginfo=info))


def save_figure(figure: Any, path: Path, dpi: int = 110) -> Path:
    """A matplotlib figure as PNG. A character no installed font has (an emoji in a prompt) is drawn as a box,
    as on the sheets, without matplotlib's warning in the middle of the run's output."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from", category=UserWarning)
        return write_atomic(path, lambda h: figure.savefig(h, format="png", dpi=dpi))


def save_csv(table: Any, path: Path) -> Path:
    return write_atomic(path, lambda h: h.write(table.to_csv(index=False).encode("utf-8")))


class ImageSaver:
    """save_image on a thread: a sheet is PNG-encoded while the next page and the plots are drawn.

    PIL's encoder releases the GIL while it deflates, so encoding (most of a sheet's cost) overlaps the drawing
    on a second core. At most `pending` pages wait for the encoder, so a report of many huge pages holds only a
    few in memory. Use as a context manager: leaving it waits for every file and raises the first error.
    """

    def __init__(self, pending: int = 2) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="report-png")
        self._free = threading.BoundedSemaphore(pending)
        self._futures: list[Future] = []

    def save(self, image: Any, path: Path) -> Path:
        self._free.acquire()  # blocks while `pending` pages wait: memory stays bounded
        future = self._pool.submit(save_image, image, path)
        future.add_done_callback(lambda _: self._free.release())
        self._futures.append(future)
        return path

    def __enter__(self) -> ImageSaver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._pool.shutdown(wait=True)
        if exc_type is None:  # an error raised in the block wins over a failed write
            for future in self._futures:
                future.result()
