"""`python -m sweep sweep=NAME [overrides]`: a thin Hydra entry around sweep.app.run_job."""

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
from sweep.paths import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> int:
    hydra_cfg = HydraConfig.get()
    return run_job(cfg, Path(hydra_cfg.runtime.output_dir), multirun=hydra_cfg.mode == RunMode.MULTIRUN)


if __name__ == "__main__":
    install_compact_errors()
    main()
    sys.exit(EXIT["code"])
