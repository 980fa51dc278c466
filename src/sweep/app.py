"""What the CLI does with a composed config: run one job, print its summary, map errors to exit codes.

Kept apart from `__main__` so it can be called with a config from `hydra.compose` in tests.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from sweep.distributed import Ranks, remove_hydra_only_dir, shared_run_dir
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
    from sweep.config_checks import check_config

    ranks = Ranks()
    try:
        check_config(cfg)  # first: `+typo=1` and unresolvable ${...} fail before anything is read or loaded
        from sweep.runner import run_sweep  # torch: only once the config is known to be good
        # Before anything is written: under torchrun / accelerate launch every rank uses the main rank's dir.
        ranks = _ranks(cfg)
        run_dir = shared_run_dir(ranks, Path(run_dir))
        summary = run_sweep(cfg, run_dir, ranks=ranks, echo=log.info)
    except SweepError as exc:
        if ranks.is_main:  # every rank meets the same error; say it once
            print(f"error: {exc}", file=sys.stderr, flush=True)
        if multirun:
            _record_job_error(run_dir, str(exc), EXIT_BAD_INPUT)
        elif ranks.is_main:
            _remove_if_unused(run_dir)
        return _fail(EXIT_BAD_INPUT, multirun)
    except Exception as exc:
        if not multirun:
            raise
        # Hydra's sweeper stops the whole multirun, merge included, on a job's exception: record it instead.
        log.exception("job failed")
        _record_job_error(run_dir, f"{type(exc).__name__}: {exc}", EXIT_FAILED_CELLS)
        return _fail(EXIT_FAILED_CELLS, multirun)
    if ranks.is_main:
        for line in summary.lines():
            log.info(line)
    if not summary.ok:
        return _fail(EXIT_FAILED_CELLS, multirun)
    return 0


def _ranks(cfg: Any) -> Ranks:
    from sweep.pipeline import resolve_device

    return Ranks.from_env(resolve_device(str(cfg["model"].get("device", "auto"))))


def _fail(code: int, multirun: bool) -> int:
    EXIT["code"] = max(EXIT["code"], code)
    if not multirun:
        sys.exit(code)
    return code


def _remove_if_unused(run_dir: Path) -> None:
    """Bad input generates nothing: drop the run dir Hydra made for it, unless it holds anything else."""
    remove_hydra_only_dir(run_dir)


def _record_job_error(run_dir: Path, message: str, code: int) -> None:
    """A job that failed before its first image still leaves a status file for the multirun merge."""
    if run_dir.is_dir():
        status = {"errors": [message], "exit_code": code}
        atomic_write(run_dir / "status.json", json.dumps(status, indent=2) + "\n")
