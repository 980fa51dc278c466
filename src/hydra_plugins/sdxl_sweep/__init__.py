"""Hydra plugins of sdxl-sweep: sweep files live in a plain folder, not in a `sweep/` config group folder.

Hydra maps the config group `sweep` to a folder named `sweep` under a search-path root. Our sweeps live in the
top-level `sweeps/` folder, and users keep their own in any folder they like, so a config source with the
scheme `sweepdir://` serves every `*.yaml` of one folder as the `sweep` group:

    python -m sweep sweep=my_grid 'hydra.searchpath=[sweepdir:///home/me/my_sweeps]'

A sweep file holds the sweep's own keys (name, description, grid, layout) and, optionally, base parameters
(prompt, seed, num_inference_steps, ...). It is served as a `_global_` config with the sweep keys moved under
`sweep:`, so its base parameters override conf/config.yaml and the command line overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

GROUP = "sweep"
SWEEP_KEYS = ("name", "description", "grid", "layout")


class SweepDirConfigSource(FileConfigSource):
    """Serves the YAML files of one folder as the `sweep` config group."""

    @staticmethod
    def scheme() -> str:
        return "sweepdir"

    @staticmethod
    def _in_folder(config_path: str) -> str | None:
        """`sweep/NAME.yaml` -> `NAME.yaml`, `sweep` -> ``; anything else is not ours (None)."""
        head, _, rest = config_path.strip("/").partition("/")
        return rest if head == GROUP else None

    def load_config(self, config_path: str) -> ConfigResult:
        inner = self._in_folder(config_path)
        if inner is None:
            raise ConfigLoadError(f"Config not found : {config_path}")
        result = super().load_config(inner)
        raw = OmegaConf.to_container(result.config) or {}
        if not isinstance(raw, dict):
            raise ConfigLoadError(f"sweep file {inner} must be a mapping, got {type(raw).__name__}")
        sweep = {key: raw.pop(key) for key in SWEEP_KEYS if key in raw}
        sweep.setdefault("name", Path(inner).stem)
        result.config = OmegaConf.create({**raw, GROUP: sweep})
        result.header["package"] = "_global_"
        return result

    def is_group(self, config_path: str) -> bool:
        if config_path.strip("/") == "":
            return True
        inner = self._in_folder(config_path)
        return inner is not None and super().is_group(inner)

    def is_config(self, config_path: str) -> bool:
        inner = self._in_folder(config_path)
        return inner is not None and inner != "" and super().is_config(inner)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path.strip("/") == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
        inner = self._in_folder(config_path)
        if inner != "" or results_filter == ObjectType.GROUP or not super().is_group(""):
            return []  # a flat folder: sweeps only, no nested groups
        return sorted(p.stem for p in Path(self.path).glob("*.yaml") if p.is_file())


class SweepSearchPathPlugin(SearchPathPlugin):
    """Adds the shipped `sweeps/` folder to the search path of sdxl-sweep's own app (no other app)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        try:
            from sweep.paths import CONF_DIR, shipped_dir
        except Exception:  # another app in an environment where sdxl-sweep is broken or absent
            return
        ours = {os.path.realpath(CONF_DIR)}
        if not any(
            os.path.realpath(element.path.split("://", 1)[-1]) in ours for element in search_path.get_path()
        ):
            return
        search_path.append(provider="sdxl-sweep", path=f"sweepdir://{shipped_dir('sweeps')}")
