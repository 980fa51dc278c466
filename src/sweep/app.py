"""What the CLI does with a composed config: run one job, print its summary, map errors to exit codes.

Kept apart from `__main__` so it can be called with a config from `hydra.compose` in tests.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from sweep.errors import SweepError
from sweep.results import atomic_write

log = logging.getLogger("sweep")

# Exit code of the whole command: a multirun job cannot sys.exit (it would stop the other jobs), so jobs
# record failure here and the entry point exits with it after Hydra returns.
EXIT = {"code": 0}
EXIT_FAILED_CELLS = 1
EXIT_BAD_INPUT = 2


def run_job(cfg: Any, run_dir: Path, *, multirun: bool = False) -> int:
    """Run one sweep into run_dir; return the exit code (0 ok, 1 some image failed, 2 bad input)."""
    from sweep.runner import run_sweep

    try:
        summary = run_sweep(cfg, run_dir, echo=log.info)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if multirun:
            _record_job_error(run_dir, str(exc))
        else:
            _remove_if_unused(run_dir)
        return _fail(EXIT_BAD_INPUT, multirun)
    for line in summary.lines():
        log.info(line)
    if not summary.ok:
        return _fail(EXIT_FAILED_CELLS, multirun)
    return 0


def _fail(code: int, multirun: bool) -> int:
    EXIT["code"] = max(EXIT["code"], code)
    if not multirun:
        sys.exit(code)
    return code


def _remove_if_unused(run_dir: Path) -> None:
    """Bad input generates nothing: drop the run dir Hydra made for it, unless it holds a sweep already."""
    import shutil

    if not run_dir.is_dir() or any((run_dir / name).exists() for name in ("results.csv", "sweep.json", "images")):
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    for log_file in run_dir.glob("*.log"):
        log_file.unlink(missing_ok=True)
    for folder in (run_dir, run_dir.parent):
        try:
            folder.rmdir()  # only if empty: never remove anything else
        except OSError:
            break


def _record_job_error(run_dir: Path, message: str) -> None:
    """A job that failed before its first image still leaves a status file for the multirun merge."""
    if run_dir.is_dir():
        atomic_write(run_dir / "status.json", json.dumps({"errors": [message]}, indent=2) + "\n")
