"""`sdxl-sweep sweep=NAME [overrides]` (or `python -m sweep ...`): a thin Hydra entry around sweep.cli.app.run_job."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import sweep.planning.schema  # noqa: F401  registers the structured-config schema and the ${safe:} resolver
from sweep.cli.app import EXIT, run_job
from sweep.cli.compose_errors import install as install_compact_errors
from sweep.cli.config_dirs import add_config_dirs
from sweep.cli.hydra_flags import conflicting_modes, flags_first
from sweep.errors import EXIT_DISK, disk_error, survive_closed_output
from sweep.paths import CONF_DIR, expand_home
from sweep.resume import current_hint, remember_invocation
from sweep.running.signals import Interrupted, guard, install_entry_handlers, interrupted_line

HYDRA_SUBDIR = ".hydra"
SCRIPT = "sdxl-sweep"  # the console script of pyproject.toml's [project.scripts]
RESUME_HINT = "every image already written is kept: run the same command to resume"


def save_hydra_files(cfg: DictConfig, run_dir: Path) -> None:
    """Hydra's record of the job (config.yaml, hydra.yaml, overrides.yaml), as Hydra writes it, but only once
    the run directory is accepted: conf/config.yaml sets hydra.output_subdir=null so that Hydra itself does not
    rewrite an existing run's files before the tool has checked that the run may use the directory."""
    hydra_cfg = HydraConfig.instance().cfg
    folder = run_dir / HYDRA_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(hydra_cfg, folder / "hydra.yaml")
    OmegaConf.save(hydra_cfg.hydra.overrides.task, folder / "overrides.yaml")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> int:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    job = {"num": hydra_cfg.job.get("num"), "overrides": list(hydra_cfg.overrides.task)} if multirun else None
    return run_job(cfg, Path(hydra_cfg.runtime.output_dir), multirun=multirun,
                   sweep_dir=Path(hydra_cfg.sweep.dir) if multirun else None,
                   save_hydra=lambda run_dir: save_hydra_files(cfg, run_dir), job=job)


def version() -> str:
    """The installed distribution's version (the source tree's when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("sdxl-sweep")
    except PackageNotFoundError:
        return sweep.__version__


def _completion_install(args: list[str]) -> bool:
    """True for `-sc install=SHELL` / `--shell-completion uninstall=SHELL` (also `-sc=...`)."""
    for i, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if flag in ("-sc", "--shell-completion"):
            value = value if sep else (args[i + 1] if i + 1 < len(args) else "")
            if value.startswith(("install=", "uninstall=")):
                return True
    return False


def entry() -> None:
    """Entry of the `sdxl-sweep` console script and of `python -m sweep`: run the Hydra app; a stop before the
    first image (Ctrl-C, SIGTERM) is one line, not a traceback; exits with the run's code."""
    # `... model=tiny -m guidance_scale=3,7` as Hydra users type it; `model.path=~/x` as the README writes it
    sys.argv[1:] = args = expand_home(flags_first(sys.argv[1:]))
    clash = conflicting_modes(args)
    if clash:  # Hydra itself raises a ValueError before its error handling, with a traceback
        print(f"error: {clash}", file=sys.stderr, flush=True)
        sys.exit(2)
    if "--version" in args:  # Hydra's own --version prints Hydra's version
        print(f"{SCRIPT} {version()}")
        sys.exit(0)
    if _completion_install(args):
        # Hydra writes the script for the command in argv[0]; under `python -m` that is `python` plus a
        # script path the completion function then fails to find. The console script can be completed.
        sys.argv[0] = SCRIPT
    survive_closed_output()  # `... | head -1`: the run goes on when its reader goes away; sweep.log keeps it all
    add_config_dirs(args)
    remember_invocation(args)  # the words of the resume command printed on a stop, a failure or a full disk
    install_compact_errors()
    install_entry_handlers()
    try:
        with guard(lambda: current_hint(RESUME_HINT)):
            main()
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(interrupted_line(signum, current_hint(RESUME_HINT)), file=sys.stderr, flush=True)
        _exit_now(128 + signum)
    except OSError as exc:  # a full or read-only disk before the run's own handling (Hydra's log file)
        line = disk_error(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        _exit_now(EXIT_DISK)
    except SystemExit as exc:
        if exc.code in (130, 143):  # a stop the job already reported (sweep.cli.app): out now, without the teardown
            _exit_now(exc.code)
        raise
    _exit_now(EXIT["code"])


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown once everything is written: freeing torch's and diffusers'
    module state takes ~1.3 s at exit and saves nothing (every file is already fsynced and renamed, and the
    run dir's lock goes with the process). Logs and streams are flushed first."""
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
