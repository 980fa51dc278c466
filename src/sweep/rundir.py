"""Guarding a run directory: what it holds, one writer at a time, and moving an old experiment aside.

The tool only rewrites or moves what it can prove it wrote. Before anything is written a run directory is
classified: new (missing, empty, or holding only what Hydra puts in every run dir), ours (a run of sdxl-sweep:
its manifest, its results table or its images), or refused (a file, a multirun sweep dir, or a folder of
someone else's files). A lock held for the whole run keeps a second process out; the OS drops it on kill -9.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
import shutil
import socket
from datetime import datetime
from pathlib import Path
from typing import IO

from sweep.errors import RunDirError

MANIFEST, RESULTS, STATUS, IMAGES = "sweep.json", "results.csv", "status.json", "images"
LOCK = ".sweep.lock"
PREVIOUS = "previous"  # restart=true moves an earlier experiment into previous/<date>_<time>/
# What a run of the tool consists of; report outputs come from sweep.report.OUTPUTS.
EXPERIMENT = (IMAGES, RESULTS, MANIFEST, STATUS)
MULTIRUN_MARKERS = ("multirun.yaml", "jobs.csv")
KEY = "hydra.run.dir"


def hydra_only(entry: Path) -> bool:
    """What Hydra writes into every run dir before the job starts: its config folder and the job log."""
    return entry.name == ".hydra" or (entry.suffix == ".log" and entry.is_file()) or entry.name == LOCK


def _our_table(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return {"cell_id", "status", "image"} <= set(header) and "job" not in header


def _our_manifest(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "sdxl_sweep" in data


def _our_images(folder: Path) -> bool:
    from PIL import Image

    for png in sorted(folder.glob("*.png"))[:3]:
        try:
            with Image.open(png) as image:
                if "sdxl-sweep" in getattr(image, "text", {}):
                    return True
        except (OSError, ValueError):
            continue
    return False


def classify(run_dir: Path) -> str:
    """'new' or 'ours'; raises RunDirError (one line) for anything the tool must not write into."""
    run_dir = Path(run_dir)
    shown = str(run_dir) or "."
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{KEY}: got '{shown}', which is a file; allowed: a directory (new or a run of sdxl-sweep)")
    if not run_dir.exists():
        return "new"
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise RunDirError(f"{KEY}: got '{shown}', which you cannot write to; allowed: a writable directory")
    entries = [e for e in run_dir.iterdir() if not hydra_only(e)]
    if not entries:
        return "new"
    if any((run_dir / m).exists() for m in MULTIRUN_MARKERS):
        raise RunDirError(f"{KEY}: got '{shown}', which is a multirun sweep directory; allowed: a run directory "
                         "(its jobs are the numbered folders inside it)")
    if (_our_manifest(run_dir / MANIFEST) or _our_table(run_dir / RESULTS)
            or ((run_dir / IMAGES).is_dir() and _our_images(run_dir / IMAGES))):
        return "ours"
    names = ", ".join(sorted(e.name for e in entries)[:4]) + (", ..." if len(entries) > 4 else "")
    raise RunDirError(f"{KEY}: got '{shown}', which holds files sdxl-sweep did not write ({names}); allowed: a new "
                     "or empty directory, or a run directory of sdxl-sweep (an empty hydra.run.dir= means the "
                     "current directory)")


class RunLock:
    """One writer per run directory: an exclusive flock on `.sweep.lock`, held until release or exit.

    flock locks belong to the open file, so the OS drops the lock when the process dies (kill -9 included)
    and a resume can take it again at once. The holder's pid, host and start time are written into the file
    only after the run is accepted, so a refused run leaves an existing lock file as it was.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.handle: IO[str] | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115  held for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            who = f" ({holder})" if holder else ""
            raise RunDirError(f"{KEY}: '{self.path.parent}' is in use by another sdxl-sweep process{who}; allowed: "
                             "one process per run directory: wait for it to finish, or pick another "
                             "hydra.run.dir") from None
        self.handle = handle
        return self

    def record_holder(self) -> None:
        if self.handle is None:
            return
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        self.handle.flush()

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing drops the flock
            self.handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def move_aside(run_dir: Path, outputs: tuple[str, ...]) -> Path | None:
    """restart=true: move the earlier experiment (and its report) into previous/<date>_<time>/; nothing is
    deleted. Returns the folder, or None when there was nothing to move."""
    present = [run_dir / name for name in (*EXPERIMENT, *outputs) if (run_dir / name).exists()]
    if not present:
        return None
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    target = run_dir / PREVIOUS / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = run_dir / PREVIOUS / f"{stamp}_{suffix}"
    target.mkdir(parents=True)
    for path in present:
        shutil.move(str(path), str(target / path.name))
    return target
