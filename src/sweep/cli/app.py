"""What the CLI does with a composed config: run one job, print its summary, map errors to exit codes.

Kept apart from `__main__` so it can be called with a config from `hydra.compose` in tests.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweep.errors import SweepError, disk_error
from sweep.rundir.results import atomic_write
from sweep.running.distributed import Ranks, ranks_for, remove_hydra_only_dir, shared_run_dir
from sweep.running.signals import Interrupted
from sweep.safe_log import escape_controls

log = logging.getLogger("sweep")

# Exit code of the whole command: a multirun job cannot sys.exit (it would stop the other jobs), so jobs
# record failure here and the entry point exits with it after Hydra returns.
EXIT = {"code": 0}
EXIT_FAILED_CELLS = 1
EXIT_BAD_INPUT = 2
REFUSED = "refused"  # a multirun job refused an existing job dir: its error goes here in the sweep dir
# How each multirun job of this process went (started, accepted, or refused: it refused an existing job dir
# before writing anything there): a multirun whose every job was refused changes no file (sweep.cli.multirun).
OUTCOMES: list[str] = []


def run_job(cfg: Any, run_dir: Path, *, multirun: bool = False, sweep_dir: Path | None = None,
            save_hydra: Callable[[Path], None] | None = None, job: dict[str, Any] | None = None) -> int:
    """`_run_job`, with its directory known to the resume hints (sweep.resume) while it runs, and after a
    Ctrl-C that reaches the entry point."""
    from sweep.resume import remember_dir

    remember_dir(sweep_dir if multirun and sweep_dir is not None else run_dir, multirun=multirun)
    try:
        code = _run_job(cfg, run_dir, multirun=multirun, sweep_dir=sweep_dir, save_hydra=save_hydra, job=job)
    except KeyboardInterrupt:
        raise
    except BaseException:
        remember_dir(None)
        raise
    remember_dir(None)
    return code


def _run_job(cfg: Any, run_dir: Path, *, multirun: bool = False, sweep_dir: Path | None = None,
             save_hydra: Callable[[Path], None] | None = None, job: dict[str, Any] | None = None) -> int:
    """Run one sweep into run_dir; return the exit code (0 ok, 1 some image failed, 2 bad input).

    `save_hydra(dir)` writes Hydra's record of the job (.hydra/) once the directory is accepted, so a refused
    run leaves an existing directory exactly as it was. `job` (num, overrides) names a multirun job.
    """
    from sweep.planning.config_checks import check_config

    ranks = Ranks()
    run_dir = Path(run_dir)
    if multirun:
        OUTCOMES.append("started")  # "accepted" once its dir is taken, "refused" when it refuses an existing one
    try:
        check_config(cfg)  # first: `+typo=1` and unresolvable ${...} fail before anything is read or loaded
        from sweep.planning.schema import typed
        from sweep.running.runner import run_sweep  # torch: only once the config is known to be good

        settings = typed(cfg)  # the raw config stops here: everything below reads the typed, checked one
        # Before anything is written: under torchrun / accelerate launch every rank uses the main rank's dir.
        ranks = ranks_for(settings)
        run_dir = shared_run_dir(ranks, run_dir)

        def accepted() -> None:
            if multirun and OUTCOMES:
                OUTCOMES[-1] = "accepted"
            if save_hydra:
                save_hydra(run_dir)
            if multirun and sweep_dir is not None and job:
                # An earlier attempt of this job was refused: its record in the sweep dir is stale now.
                (Path(sweep_dir) / REFUSED / f"job{job.get('num', 'x')}.json").unlink(missing_ok=True)

        summary = run_sweep(settings, run_dir, ranks=ranks, echo=log.info, multirun=multirun,
                            shared_dir=sweep_dir if multirun else None, on_accept=accepted, job=job)
    except SweepError as exc:
        if ranks.is_main:  # every rank meets the same error; say it once
            print(f"error: {escape_controls(str(exc))}", file=sys.stderr, flush=True)
        code = exc.exit_code
        if multirun and ranks.is_main:
            _record_job_error(run_dir, sweep_dir, job or {}, str(exc), code, save_hydra)
        elif ranks.is_main:
            remove_hydra_only_dir(run_dir)
        return _fail(code, multirun)
    except Interrupted as exc:
        if ranks.is_main:
            print(str(exc) or f"interrupted: {run_dir}; {_resume_hint(run_dir, sweep_dir, multirun)}",
                  file=sys.stderr, flush=True)
            remove_hydra_only_dir(run_dir)
        sys.exit(exc.code)  # a multirun stops too: its other jobs resume with the same command
    except OSError as exc:
        line = disk_error(exc)
        if line is None and not multirun:
            raise
        if line is None:
            log.exception("job failed")
        elif ranks.is_main:
            print(f"error: {line}", file=sys.stderr, flush=True)
        if multirun and ranks.is_main:
            _record_job_error_quietly(run_dir, sweep_dir, job or {}, line or f"{type(exc).__name__}: {exc}",
                                      EXIT_FAILED_CELLS, save_hydra)
        return _fail(EXIT_FAILED_CELLS, multirun)
    except Exception as exc:
        if not multirun:
            raise
        # Hydra's sweeper stops the whole multirun, merge included, on a job's exception: record it instead.
        log.exception("job failed")
        _record_job_error(run_dir, sweep_dir, job or {}, f"{type(exc).__name__}: {exc}", EXIT_FAILED_CELLS,
                          save_hydra)
        return _fail(EXIT_FAILED_CELLS, multirun)
    if ranks.is_main:
        for line in summary.lines():
            log.info(line)
    if not summary.ok:
        return _fail(EXIT_FAILED_CELLS, multirun)
    return 0


def _resume_hint(run_dir: Path, sweep_dir: Path | None, multirun: bool) -> str:
    """The command that resumes this run (a multirun as a whole: its sweep dir)."""
    from sweep.resume import hint

    if multirun and sweep_dir is not None:
        return hint(sweep_dir, multirun=True)
    return hint(run_dir)


def _fail(code: int, multirun: bool) -> int:
    EXIT["code"] = max(EXIT["code"], code)
    if not multirun:
        sys.exit(code)
    return code


def _writable_by_this_job(run_dir: Path) -> bool:
    """A job dir this job may write its error into: new (nothing but Hydra's files) and not in use."""
    from sweep.rundir import guard as rundir

    try:
        if rundir.classify(run_dir) != "new":
            return False
        with rundir.RunLock(run_dir):
            return True
    except SweepError:
        return False


def _record_job_error_quietly(*args: Any) -> None:
    """The job's error into its status file, unless the disk refuses that too (it is already said)."""
    try:
        _record_job_error(*args)
    except OSError:
        pass


def _record_job_error(run_dir: Path, sweep_dir: Path | None, job: dict[str, Any], message: str, code: int,
                      save_hydra: Callable[[Path], None] | None) -> None:
    """A job that failed before its first image still leaves a status file for the multirun merge: in its own
    dir when that is new, else beside the jobs (never over an earlier job's files)."""
    from sweep.running.distributed import scheduler_job

    status = {"errors": [message], "exit_code": code, **job, **scheduler_job()}
    if _writable_by_this_job(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        if save_hydra:
            save_hydra(run_dir)
        atomic_write(run_dir / "status.json", json.dumps(status, indent=2) + "\n")
    elif sweep_dir is not None:
        if OUTCOMES and OUTCOMES[-1] == "started":  # refused before its dir was accepted: nothing written there
            OUTCOMES[-1] = "refused"
        name = f"job{job.get('num', 'x')}.json"
        atomic_write(Path(sweep_dir) / REFUSED / name, json.dumps({**status, "dir": str(run_dir)}, indent=2) + "\n")
