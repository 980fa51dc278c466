"""Hydra plugins of sdxl-sweep: sweep files live in a plain folder, not in a `sweep/` config group folder.

Hydra maps the config group `sweep` to a folder named `sweep` under a search-path root. Our sweeps live in the
top-level `sweeps/` folder, and users keep their own in any folder they like, so a config source with the
scheme `sweepdir://` serves every `*.yaml` of one folder as the `sweep` group:

    python -m sweep sweep=my_grid 'hydra.searchpath=[sweepdir:///home/me/my_sweeps]'

A sweep file holds the sweep's own keys (name, description, grid, layout, titles, descriptions) and, optionally,
base parameters (prompt, seed, num_inference_steps, ...). It is served as a `_global_` config with the sweep keys
moved under `sweep:`, so its base parameters override conf/config.yaml and the command line overrides both.

The same file can come from three more places, and behaves the same from each:
- a `sweep/` folder in Hydra's usual `--config-dir DIR` (`DIR/sweep/NAME.yaml`): Hydra's own file source would
  load it into the package `sweep` (its `prompt` would land on `sweep.prompt`), so the entry point notes DIR
  in `sweep.cli.config_dirs` and `DIR/sweep` is served by a `sweepdir://` source that comes first;
- a path: `sweep=my/grid.yaml` or `sweep=/abs/grid.yaml` (an option ending in `.yaml` or holding a `/`) is read
  relative to the current directory by the `sweeppath://` source, before any folder is searched.

A file that is not valid YAML (syntax, tabs, duplicate keys, bytes that are not UTF-8, a recursive alias) or
whose keys or types the schema refuses fails with one line naming the file, the line where known, and the key.
A sweep file is untrusted data (docs/security.md): `hydra:`, `defaults:`, `_target_` and resolvers are refused
here, before Hydra sees the file (sweep.planning.sweep_data).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

GROUP = "sweep"
SWEEP_KEYS = ("name", "description", "grid", "layout", "titles", "descriptions")

def _split(config_path: str) -> str | None:
    """`sweep/NAME.yaml` -> `NAME.yaml`, `sweep` -> ``; anything else is not ours (None)."""
    head, _, rest = config_path.strip("/").partition("/")
    if head != GROUP:
        return None
    # `sweep=/abs/x.yaml` arrives as `sweep//abs/x.yaml`: keep the leading slash of the option.
    return config_path.lstrip("/")[len(GROUP) + 1:] if rest else ""


class SweepDirConfigSource(FileConfigSource):
    """Serves the YAML files of one folder as the `sweep` config group."""

    @staticmethod
    def scheme() -> str:
        return "sweepdir"

    def _inner(self, config_path: str) -> str | None:
        """The file name inside this folder; None for what is not ours, including any path with a `/`
        (the folder is flat; paths are the `sweeppath://` source's)."""
        inner = _split(config_path)
        return None if inner is None or "/" in inner else inner

    def load_config(self, config_path: str) -> ConfigResult:
        inner = self._inner(config_path)
        if not inner:
            raise ConfigLoadError(f"Config not found : {config_path}")
        return load_sweep_file(self, inner)

    def is_group(self, config_path: str) -> bool:
        if config_path.strip("/") == "":
            return True
        inner = self._inner(config_path)
        return inner == "" and super().is_group("")

    def is_config(self, config_path: str) -> bool:
        inner = self._inner(config_path)
        return bool(inner) and super().is_config(inner)  # type: ignore[arg-type]

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path.strip("/") == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
        inner = self._inner(config_path)
        if inner != "" or results_filter == ObjectType.GROUP or not super().is_group(""):
            return []  # a flat folder: sweeps only, no nested groups
        return sorted(p.stem for p in Path(self.path).glob("*.yaml") if p.is_file())


class SweepPathConfigSource(FileConfigSource):
    """`sweep=PATH.yaml`: a sweep file named by its path, relative to this source's folder (the current
    directory) or absolute. Only options that look like a path are served; it lists nothing."""

    @staticmethod
    def scheme() -> str:
        return "sweeppath"

    @staticmethod
    def _inner(config_path: str) -> str | None:
        inner = _split(config_path)
        return inner if inner and ("/" in inner or inner.endswith(".yaml")) else None

    def load_config(self, config_path: str) -> ConfigResult:
        inner = self._inner(config_path)
        if inner is None:
            raise ConfigLoadError(f"Config not found : {config_path}")
        return load_sweep_file(self, inner)

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") == ""

    def is_config(self, config_path: str) -> bool:
        inner = self._inner(config_path)
        return inner is not None and super().is_config(inner)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        return []


def load_sweep_file(source: FileConfigSource, inner: str) -> ConfigResult:
    """Load one sweep file as a `_global_` config with its sweep keys under `sweep:`; any problem with the
    file is one ConfigFileError line naming it."""
    from sweep.planning.config_checks import ConfigFileError

    path = os.path.realpath(os.path.join(source.path, FileConfigSource._normalize_file_name(inner)))
    _check_expansion(path)
    try:
        result = FileConfigSource.load_config(source, inner)
    except ConfigLoadError:
        raise
    except Exception as exc:  # yaml's errors, UnicodeDecodeError, RecursionError: say what and where
        from sweep.cli.yaml_errors import describe_load_error

        raise ConfigFileError(f"sweep file {path}{describe_load_error(exc, path)}") from None
    raw: Any = OmegaConf.to_container(result.config)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigFileError(f"sweep file {path}: got a {type(raw).__name__} at the top; allowed: a mapping "
                              "of name, description, grid, layout, titles, descriptions and base parameters")
    from sweep.planning.sweep_data import data_of

    raw = data_of(raw, path)  # untrusted data: no hydra:, defaults:, _target_ or resolver reaches Hydra
    _check_file_keys(raw, path)
    sweep = {key: raw.pop(key) for key in SWEEP_KEYS if key in raw}
    sweep.setdefault("name", Path(inner).stem)
    result.config = OmegaConf.create({**raw, GROUP: sweep})
    # Whatever `# @package` header the file has: its keys were checked as top-level keys, so they stay there.
    result.header = {"package": "_global_"}
    return result


MAX_VALUES = 100_000  # far beyond any real sweep file (a 10,000-image grid is a few hundred values)


def _check_expansion(path: str) -> None:
    """Refuse a file whose anchors and aliases expand to more values than any sweep holds (nested aliases:
    9 lists of 9 aliases, 8 deep, are 43 million values built from 80 written), before anything builds them.

    yaml.compose keeps an alias as a reference to its anchor's node, so the file's graph costs what its text
    does; the count below visits each node once, however many aliases point at it."""
    import yaml

    from sweep.planning.config_checks import ConfigFileError

    try:
        with open(path, "rb") as handle:
            root = yaml.compose(handle, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return  # not readable or not YAML: the loader says so, with the line
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:  # a recursive alias: the loader reports it
            return 0
        open_nodes.add(key)
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    if root is not None and size(root) > MAX_VALUES:
        raise ConfigFileError(f"sweep file {path}: got anchors and aliases that expand to more than "
                              f"{MAX_VALUES:,} values; allowed: a sweep file of at most {MAX_VALUES:,} values once "
                              "its aliases (*name) are written out")
    if isinstance(root, yaml.ScalarNode) and root.tag != "tag:yaml.org,2002:null":
        # One value for the whole file: OmegaConf would read a text as a key (`just text: null`).
        from sweep.cli.yaml_errors import MAPPING

        shown = root.value if len(root.value) <= 40 else root.value[:37] + "..."
        raise ConfigFileError(f"sweep file {path}: got {shown!r}, a single value where keys are expected; "
                              f"allowed: {MAPPING}")


def _check_file_keys(raw: dict[str, Any], path: str) -> None:
    """Keys and types of a sweep file against the schema; messages use the file's own keys (`grid`)."""
    from sweep.errors import SweepError, key_list, suggest
    from sweep.planning.config_checks import ConfigFileError, check_mapping, keys_of

    allowed = [*SWEEP_KEYS, *(k for k in keys_of("") or () if k != GROUP)]
    for key, value in raw.items():
        if key not in allowed:
            from sweep.planning.config_checks import show

            raise ConfigFileError(f"sweep file {path}: {key}: unknown key (got {show(value)}); allowed: "
                                  f"{key_list(allowed, near=key)}{suggest(key, allowed)}")
    served = {k: v for k, v in raw.items() if k not in SWEEP_KEYS}
    served[GROUP] = {k: v for k, v in raw.items() if k in SWEEP_KEYS}
    try:
        check_mapping(served)
    except SweepError as exc:
        text = str(exc)
        text = text[len(GROUP) + 1:] if text.startswith(GROUP + ".") else text
        raise ConfigFileError(f"sweep file {path}: {text}") from None


class SweepSearchPathPlugin(SearchPathPlugin):
    """Adds sdxl-sweep's sweep sources to the search path of its own app (no other app): paths, the
    `sweep/` folders of `--config-dir`, then the shipped `sweeps/` folder."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        try:
            from sweep.cli.config_dirs import CONFIG_DIRS
            from sweep.paths import CONF_DIR, shipped_dir
        except Exception:  # another app in an environment where sdxl-sweep is broken or absent
            return
        ours = {os.path.realpath(CONF_DIR)}
        if not any(
            os.path.realpath(element.path.split("://", 1)[-1]) in ours for element in search_path.get_path()
        ):
            return
        search_path.append(provider="sdxl-sweep", path=f"sweeppath://{os.getcwd()}")
        for folder in dict.fromkeys(CONFIG_DIRS):
            if os.path.isdir(os.path.join(folder, GROUP)):
                search_path.append(provider="sdxl-sweep", path=f"sweepdir://{os.path.join(folder, GROUP)}")
        search_path.append(provider="sdxl-sweep", path=f"sweepdir://{shipped_dir('sweeps')}")
