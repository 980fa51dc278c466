"""`sdxl-sweep sweep=NAME [overrides]` (or `python -m sweep ...`): a thin Hydra entry around sweep.app.run_job."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import sweep.schema  # noqa: F401  registers the structured-config schema and the ${safe:} resolver
from sweep.app import EXIT, run_job
from sweep.cli_errors import install as install_compact_errors
from sweep.config_dirs import add_config_dirs
from sweep.paths import CONF_DIR

SCRIPT = "sdxl-sweep"  # the console script of pyproject.toml's [project.scripts]


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> int:
    hydra_cfg = HydraConfig.get()
    return run_job(cfg, Path(hydra_cfg.runtime.output_dir), multirun=hydra_cfg.mode == RunMode.MULTIRUN)


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


def cli() -> None:
    """Entry of the `sdxl-sweep` console script and of `python -m sweep`; exits with the run's code."""
    args = sys.argv[1:]
    if "--version" in args:  # Hydra's own --version prints Hydra's version
        print(f"{SCRIPT} {version()}")
        sys.exit(0)
    if _completion_install(args):
        # Hydra writes the script for the command in argv[0]; under `python -m` that is `python` plus a
        # script path the completion function then fails to find. The console script can be completed.
        sys.argv[0] = SCRIPT
    add_config_dirs(args)
    install_compact_errors()
    main()
    sys.exit(EXIT["code"])


if __name__ == "__main__":
    cli()
