"""Writing a run's images and rows: PNG encoding and atomic writes on threads, off the generation loop, with
results.csv appended in submission order as each image lands."""

from __future__ import annotations

import errno
import queue
import threading
from pathlib import Path
from typing import Any

from sweep import axes
from sweep.errors import SweepError
from sweep.grid import Cell
from sweep.resume import hint_here
from sweep.rundir.results import DIGEST, ResultsTable, atomic_write, file_digest

# Errors of the disk, not of a cell: stop at once (every further write would fail too), resume later.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


class StorageError(SweepError):
    """The disk refused a write (full, read-only, gone): the run stops; what was written is kept."""

    exit_code = 1


class ImageWriter:
    """PNG encoding and writing on threads, off the generation loop; bounded so memory stays flat.

    `threads` writers take images from one queue (Pillow's PNG encoder releases the GIL while it filters and
    deflates, so two encode on two cores): a fast GPU is not held up by a writer that falls behind, and the
    images waiting at the end of the sweep are written sooner. Rows are appended in the order images were
    submitted (a rerun's results.csv lists its rows in the same order), each as soon as its image and those
    before it are on disk. A cell whose image cannot be encoded or written becomes a failed row with the error,
    and the other cells still land; a full or read-only disk stops the run (StorageError on the next submit).
    """

    def __init__(self, run_dir: Path, table: ResultsTable, pending: int = 8, threads: int | None = None,
                 yield_cpu: bool = True) -> None:
        self.run_dir = run_dir
        self.yield_cpu = yield_cpu  # the pipeline computes on the CPU: write at a lower priority
        self.table = table
        self.queue: queue.Queue = queue.Queue(maxsize=pending)
        self.fatal: BaseException | None = None
        self.ok = 0
        self.failed = 0
        self._submitted = 0
        self._next_row = 0  # the submission number whose row is appended next
        self._turn = threading.Condition()
        self.threads = [threading.Thread(target=self._loop, name=f"png-writer-{i}", daemon=True)
                        for i in range(threads or writer_threads())]
        for thread in self.threads:
            thread.start()

    def submit(self, row: dict[str, Any], image: Any | None, cell: Cell, facts: axes.Facts) -> None:
        if self.fatal is not None:
            raise self.fatal
        self.queue.put((self._submitted, row, image, cell, facts))
        self._submitted += 1

    def _loop(self) -> None:
        if self.yield_cpu:
            _yield_to_pipeline()
        while (item := self.queue.get()) is not None:
            number, *work = item
            row = self._write(*work) if self.fatal is None else None
            with self._turn:
                self._turn.wait_for(lambda n=number: self._next_row == n)
                try:
                    # An image on disk gets its row even when a later image found the disk full: with two
                    # writers the later one may fail first, and its failure must not lose this row.
                    if row is not None:
                        self._append(row)
                finally:
                    self._next_row += 1
                    self._turn.notify_all()

    def _write(self, row: dict[str, Any], image: Any | None, cell: Cell, facts: axes.Facts) -> dict | None:
        """Write the cell's PNG; returns its row (failed if the image could not be made), None on a disk error."""
        from sweep.rundir.metadata import a1111_parameters, comfy_prompt, png_bytes
        from sweep.running.pixels import NAN_ERROR, NAN_ERROR_FP32

        try:
            picture, why = image.to_image() if image is not None else (None, None)
            if why == NAN_ERROR and row.get("dtype") == "float32":
                why = NAN_ERROR_FP32  # "try float32" would send a float32 run round in a circle
            if why:
                return _failed(row, why)
            if picture is not None:
                # Image first, row second: a row always points at a complete PNG, and records its digest, so
                # a resume keeps the image only while it is still these bytes.
                data = png_bytes(picture, row, a1111_parameters(cell, row, facts), comfy_prompt(cell, row, facts))
                atomic_write(self.run_dir / row["image"], data)
                row = {**row, DIGEST: file_digest(data)}
            return row
        except OSError as exc:
            if exc.errno in DISK_ERRORS:
                self.fatal = StorageError(f"{self.run_dir / row['image']}: could not write ({exc.strerror}); "
                                          f"free space or fix the disk; {hint_here(self.run_dir)}")
                return None
            return _failed(row, f"could not write the image: {exc}")
        except Exception as exc:  # encoding failed (bad metadata): this cell fails, the others go on
            return _failed(row, f"could not write the image: {type(exc).__name__}: {exc}")

    def _append(self, row: dict[str, Any]) -> None:
        try:
            self.table.append(row)
        except OSError as exc:
            if self.fatal is None:  # the first disk error is the one to report
                self.fatal = StorageError(f"{self.table.path}: could not append a row ({exc.strerror}); free "
                                          f"space or fix the disk; {hint_here(self.run_dir)}")
            return
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        if self.fatal is not None:
            raise self.fatal


def writer_threads() -> int:
    """Two PNG writers where two cores are ours, else one."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


def _failed(row: dict[str, Any], error: str) -> dict[str, Any]:
    return {**row, "status": "failed", "error": error[:300], "image": ""}


def _yield_to_pipeline() -> None:
    """Lower this thread's CPU priority (Linux, where nice is per thread): PNG encoding fills the gaps.

    torch's OpenMP threads wait for each other at every op, so a writer that takes a core from one of them for a
    moment stalls all of them for longer than it runs; at a lower priority it runs when a core is free instead.
    The bounded queue keeps it from falling behind for long: a full queue makes the pipeline wait for it.
    Only for CPU pipelines: on a GPU the pipeline's thread mostly waits for the device, and a writer at nice +10
    on a machine busy with other work was starved until the sweep waited seconds per image for its last PNGs
    (benchmarks/overhead.py on a loaded 2-core machine).
    """
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return  # elsewhere PRIO_PROCESS with a thread id would renice the whole process, or fail
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
    except OSError:
        pass  # a sandbox may forbid it; the writer still works at normal priority
