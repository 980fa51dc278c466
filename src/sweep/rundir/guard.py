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

from sweep.errors import RunDirError

MANIFEST, RESULTS, STATUS, IMAGES = "sweep.json", "results.csv", "status.json", "images"
LOCK = ".sweep.lock"
HYDRA = ".hydra"
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)  # flock: another open file holds the lock
PREVIOUS = "previous"  # restart=true moves an earlier experiment into previous/<date>_<time>/
# What a run of the tool consists of; report outputs come from sweep.report.OUTPUTS.
EXPERIMENT = (IMAGES, RESULTS, MANIFEST, STATUS)
MULTIRUN_MARKERS = ("multirun.yaml", "jobs.csv")
KEY = "hydra.run.dir"


def hydra_only(entry: Path) -> bool:
    """What Hydra writes into every run dir before the job starts: its config folder and the job log."""
    return entry.name == HYDRA or (entry.suffix == ".log" and entry.is_file()) or entry.name == LOCK


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


def check_links(run_dir: Path, key: str = KEY) -> None:
    """Refuse a run directory that holds a symbolic link at its top level (images/, previous/, sheets/, sweep.log,
    results.csv, ...): the tool writes only inside the run directory, and a link there would send a resume or a
    report's files wherever it points (docs/security.md). The run directory itself may be a link: the user
    named it. Inside images/, sheets/, ... a linked file is replaced, never written through (sweep.atomic)."""
    run_dir = Path(run_dir)
    try:
        links = sorted(entry.name for entry in run_dir.iterdir() if entry.is_symlink())
    except OSError:
        return  # missing or unreadable: classify says so
    if links:
        from sweep.safe_log import escape_controls

        shown = ", ".join(f"{name} -> {os.readlink(run_dir / name)}" for name in links[:3])
        shown += ", ..." if len(links) > 3 else ""
        raise RunDirError(escape_controls(
            f"{key}: '{run_dir}' holds {'a link' if len(links) == 1 else 'links'} ({shown}); allowed: real "
            "folders and files only: sdxl-sweep writes only inside its run directory and never through a link "
            "(move the link out of the run directory, or copy what it points to in its place)"))


def classify(run_dir: Path) -> str:
    """'new' or 'ours'; raises RunDirError (one line) for anything the tool must not write into."""
    run_dir = Path(run_dir)
    shown = str(run_dir) or "."
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{KEY}: got '{shown}', which is a file; allowed: a directory (new or a run of sdxl-sweep)")
    if not run_dir.exists():
        return "new"
    check_links(run_dir)
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


def classify_unheld(run_dir: Path) -> str:
    """`classify` for a process that does not hold the run dir's lock. A run that another process has just
    started looks like someone else's files (its empty images/ before results.csv exists): a refusal is first
    checked against the lock, so the second of two processes started together hears that the dir is in use."""
    try:
        return classify(run_dir)
    except RunDirError:
        check_free(run_dir)  # raises "in use by another sdxl-sweep process" while the other run holds it
        return classify(run_dir)  # free now: the other run finished meanwhile, or the files really are foreign


def check_free(run_dir: Path) -> None:
    """Refuse now when another process holds the run dir's lock: the lock is taken and dropped at once,
    nothing is created (RunLock.acquire takes it for the run later, after the checks that need torch)."""
    if not Path(run_dir).is_dir():
        return
    try:
        fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            raise RunLock(run_dir)._in_use() from None
    finally:
        os.close(fd)  # drops this description's lock, if it got it


class RunLock:
    """One writer per run directory: an exclusive flock on the directory itself, held until release or exit.

    The lock is taken on the directory (an open file description of it), not on `.sweep.lock`: a lock on a
    file is lost for newcomers when someone deletes the file during a run (the next process creates a new
    file, a new inode, and its flock does not conflict), while the directory stays the same inode as long as
    anything is in it. flock locks belong to the open file, so the OS drops the lock when the process dies
    (kill -9 included) and a resume can take it again at once. `.sweep.lock` only tells who holds it: the
    holder's pid, host and start time, written once the run is accepted (a refused run leaves its content as it
    was; it only creates the file, empty, where it is missing).
    Where a directory cannot be locked (some network file systems), the lock falls back to `.sweep.lock`.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.handle: int | None = None

    def acquire(self) -> RunLock:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        try:  # the file exists before anyone holds the lock: a refused process's clean-up of a folder that
            # holds only Hydra's files (distributed.remove_hydra_only_dir) never removes the holder's new dir
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666))
        except OSError:
            pass  # .sweep.lock a directory or read-only: the lock is on the directory anyway
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:  # a directory you may write but not list: lock the file instead
            fd = None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.handle = fd
                return self
            except OSError as exc:
                os.close(fd)
                if exc.errno in _BUSY:
                    raise self._in_use() from None
            # The directory cannot be locked here (some network file systems): lock the file instead.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                raise self._in_use() from None
            raise
        self.handle = fd
        return self

    def _in_use(self) -> RunDirError:
        holder = _holder(self.path)
        who = f" ({holder})" if holder else ""
        return RunDirError(f"{KEY}: '{self.path.parent}' is in use by another sdxl-sweep process{who}; allowed: one "
                           "process per run directory: wait for it to finish, or pick another hydra.run.dir")

    def record_holder(self) -> None:
        """Write who holds the lock into `.sweep.lock` (best effort: the lock itself is on the directory)."""
        if self.handle is None:
            return
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            with open(self.path, "w", encoding="utf-8") as handle:
                handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        except OSError:
            pass  # the lock holds without it; only the name of the holder is lost

    def release(self) -> None:
        if self.handle is not None:
            os.close(self.handle)  # closing drops the flock
            self.handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()[:200]
    except OSError:
        return ""


def previous_folder(run_dir: Path) -> Path:
    """A new, empty previous/<date>_<time>/ folder: where what the tool moves aside goes (never deleted)."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    target = run_dir / PREVIOUS / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = run_dir / PREVIOUS / f"{stamp}_{suffix}"
    target.mkdir(parents=True)
    return target


def move_aside(run_dir: Path, outputs: tuple[str, ...]) -> Path | None:
    """restart=true: move the earlier experiment (its report and Hydra's record of it, .hydra/, too) into
    previous/<date>_<time>/; nothing is deleted. Returns the folder, or None when there was nothing to move."""
    present = [run_dir / name for name in (*EXPERIMENT, *outputs) if (run_dir / name).exists()]
    if not present:
        return None
    if (run_dir / HYDRA).is_dir():
        present.append(run_dir / HYDRA)
    target = previous_folder(run_dir)
    for path in present:
        shutil.move(str(path), str(target / path.name))
    return target


def _override_values(overrides: list[str]) -> dict[str, str]:
    """key -> value of Hydra command-line overrides, values compared as Hydra parses them ([1, 2] = [1,2])."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    found = {}
    for text in overrides:
        try:
            override = parser.parse_override(text)
            found[override.key_or_group] = json.dumps(override.value(), sort_keys=True, default=str)
        except Exception:  # not Hydra's syntax (another sweeper's): compare the text
            key, _, value = text.partition("=")
            found[key.lstrip("+~")] = value
    return found


def swept_keys(sweep_dir: Path | None) -> set[str] | None:
    """The keys the current multirun sweeps (from the multirun.yaml Hydra wrote into the sweep dir before the
    first job); None when that cannot be read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    if sweep_dir is None:
        return None
    try:
        config = OmegaConf.load(Path(sweep_dir) / "multirun.yaml")
        parsed = OverridesParser.create().parse_overrides([str(o) for o in config.hydra.overrides.task])
        params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    except Exception:
        return None
    keys = {o.key_or_group for o in parsed if o.is_sweep_override()} | {str(k) for k in params}
    return keys or None


def check_job(run_dir: Path, sweep_dir: Path | None, overrides: list[str], num: object) -> None:
    """Refuse a multirun job dir that an earlier job of other swept values made.

    Hydra names job dirs by the job's number, its place in the order of the swept values: `seed=[1,2],[2,3]`
    then `seed=[2,3],[1,2]` gives job 0 the dir of the other list. Values that overlap look like a grown grid,
    so the swept values themselves are compared (keys every job shares may change: that grows each job).
    """
    from omegaconf import OmegaConf

    recorded_file = run_dir / HYDRA / "overrides.yaml"
    if not recorded_file.is_file():
        return
    try:
        recorded = [str(o) for o in OmegaConf.load(recorded_file)]
    except Exception:
        return  # not Hydra's record: the experiment check still applies
    old, new = _override_values(recorded), _override_values([str(o) for o in overrides])
    keys = swept_keys(sweep_dir)
    compared = sorted(keys if keys is not None else set(old) | set(new))
    for key in compared:
        if old.get(key) != new.get(key):
            was = next((o for o in recorded if o.lstrip("+~").partition("=")[0] == key), f"{key} unset")
            now = next((str(o) for o in overrides if str(o).lstrip("+~").partition("=")[0] == key), f"{key} unset")
            raise RunDirError(f"hydra.sweep.dir: job {num} ({run_dir}) was made by {was}, this job is {now}: Hydra "
                             "numbers jobs by the order of the swept values, so a reordered list gives a job dir "
                             "another job's values; allowed: the swept values in their earlier order, or another "
                             "hydra.sweep.dir")
