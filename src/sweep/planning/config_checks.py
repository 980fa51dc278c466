"""Checks of a config against the structured schema, before anything runs; each problem is one line.

The schema is read from `sweep.planning.schema.Config` at run time (field names, types, which nodes are closed
mappings), never from a list kept here, so a field added to the schema is known to every check at once.

- `check_config(cfg)`: the composed job config, checked by `app.run_job` and, in run mode, by the
  `CheckConfig` callback before Hydra makes the run directory (a refused run leaves no `outputs/` behind).
  Hydra's `+key=value` adds a key the schema lacks without a word (`+guidanc_scale=9` would run with the
  default guidance); interpolations that cannot resolve (`${oc.env:UNSET}`) would fail only after the run
  directory exists.
- `check_mapping(data)`: a plain mapping loaded from a sweep file, key by key, so the message can name the
  file's own key (`grid: got [1, 2]`) where OmegaConf's merge error has lost it.
- `unknown_key`, `bad_type`: the one-line messages, shared with `sweep.cli.compose_errors` for Hydra's own errors.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Mapping
from typing import Any

from hydra.experimental.callback import Callback
from hydra.plugins.config_source import ConfigLoadError
from omegaconf import DictConfig, ListConfig, Node, OmegaConf, open_dict, read_write
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from sweep.errors import SweepError, bad_value, key_list, suggest

# Keys of a composed or loaded config that belong to Hydra, not to the schema.
HYDRA_KEYS = ("hydra", "defaults")


class ConfigFileError(ConfigLoadError):
    """A config file Hydra cannot use (bad YAML, wrong keys); its message is the whole one-line report."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@functools.cache
def schema() -> DictConfig:
    """The structured schema as an OmegaConf node (built once; read-only by convention)."""
    from sweep.planning.schema import Config

    return OmegaConf.structured(Config)


def _child(node: DictConfig, key: str) -> Node | None:
    try:
        return node._get_node(key)  # type: ignore[return-value]
    except (KeyError, OmegaConfBaseException):
        return None


def schema_node(key: str) -> Node | None:
    """The schema node at a dotted key (`model.dtype`), or None where the schema has no such key."""
    node: Any = schema()
    for part in key.split(".") if key else ():
        if not isinstance(node, DictConfig):
            return None
        node = _child(node, part)
        if node is None:
            return None
    return node


def is_closed(node: Node | None) -> bool:
    """True for a node made from a dataclass: its keys are fixed. Any-typed and dict-typed nodes are open."""
    return isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node))


def keys_of(parent: str) -> list[str] | None:
    """The keys a closed mapping at `parent` allows ('' = the top level); None if it is not closed."""
    node = schema_node(parent)
    return [str(k) for k in node.keys()] if is_closed(node) else None  # type: ignore[union-attr]


def describe(key: str) -> str:
    """What the schema allows at a key, in words: 'an integer', 'a mapping with the keys ...'."""
    node = schema_node(key)
    if node is None:
        return "any value"
    if is_closed(node):
        text = "a mapping with the keys " + key_list(node.keys(), docs=docs_of(key))  # type: ignore[union-attr]
    elif isinstance(node, DictConfig):
        text = "a mapping"
    elif isinstance(node, ListConfig):
        text = "a list"
    else:
        text = _LEAF_WORDS.get(type(node).__name__, "any value")
    return text + (" or null" if node._is_optional() and text != "any value" else "")


_LEAF_WORDS = {
    "IntegerNode": "an integer",
    "FloatNode": "a number",
    "BooleanNode": "true or false",
    "StringNode": "a string",
    "BytesNode": "bytes",
    "PathNode": "a path",
}


def show(value: Any) -> str:
    """A value as a user would type it in YAML or on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=False)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def unknown_key(key: str, value: Any = None, *, has_value: bool = True, typed: str | None = None) -> SweepError:
    """`KEY: unknown key (got VALUE); allowed: the keys ... (did you mean X?)`; `typed` is the value as the
    user typed it on the command line, shown verbatim."""
    parent, _, name = key.rpartition(".")
    allowed = keys_of(parent)
    got = f" (got {typed})" if typed is not None else f" (got {show(value)})" if has_value else ""
    if allowed is None:
        return SweepError(f"{key}: unknown key{got}; allowed: the keys shown by `python -m sweep --cfg job`")
    where = f"the keys of {parent}: " if parent else "the keys "
    listed = key_list(allowed, near=name, docs=docs_of(parent))
    return SweepError(f"{key}: unknown key{got}; allowed: {where}{listed}{suggest(name, allowed)}")


def docs_of(key: str) -> str:
    """The docs page that lists the keys of a mapping: the grid's axes, the model's keys or the others."""
    last = key.rpartition(".")[2]
    return {"grid": "docs/axes.md", "model": "docs/models.md"}.get(last, "docs/configuration.md")


def bad_type(key: str, value: Any) -> SweepError:
    """`KEY: got VALUE; allowed: <what the schema allows there>`."""
    return SweepError(f"{key}: got {show(value)}; allowed: {describe(key)}")


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def open_to_plus_keys(node: Node | None) -> bool:
    """A schema mapping whose dataclass says `OPEN_KEYS = True` takes keys added with `+` (the grid: any
    pipeline argument is an axis, checked by the registry); a sweep file still gets only its fields."""
    return bool(getattr(OmegaConf.get_type(node), "OPEN_KEYS", False)) if isinstance(node, DictConfig) else False


def find_unknown(cfg: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every key below `prefix` that its closed schema mapping does not have."""
    node = schema_node(prefix)
    if not is_closed(node) or open_to_plus_keys(node) or not isinstance(cfg, DictConfig | Mapping):
        return []
    allowed = set(node.keys())  # type: ignore[union-attr]
    found: list[tuple[str, Any]] = []
    for key in cfg.keys():
        if not prefix and key in HYDRA_KEYS:
            continue
        full = _join(prefix, key)
        raw = cfg._get_node(key) if isinstance(cfg, DictConfig) else cfg[key]
        if key not in allowed:
            found.append((full, raw._value() if isinstance(raw, Node) else raw))
        elif isinstance(raw, DictConfig | Mapping):
            found += find_unknown(raw, full)
    return found


def check_mapping(data: Mapping[str, Any], prefix: str = "") -> None:
    """Raise a one-line SweepError for the first key of plain `data` the schema does not allow: an unknown
    key, a scalar or list where a closed mapping belongs, or a value of the wrong type."""
    for key, value in data.items():
        if not prefix and key in HYDRA_KEYS:
            continue
        full = _join(prefix, key)
        if keys_of(prefix) is not None and key not in (keys_of(prefix) or ()):
            raise unknown_key(full, value)
        node = schema_node(full)
        if is_closed(node):
            if isinstance(value, Mapping):
                check_mapping(value, full)
            elif not _deferred(value) and not (value is None and node._is_optional()):  # type: ignore[union-attr]
                raise bad_type(full, value)
            continue
        _check_leaf(full, value)


def _deferred(value: Any) -> bool:
    """An interpolation or '???': checked when the config resolves, not here."""
    return isinstance(value, str) and (value == "???" or "${" in value)


def _check_leaf(key: str, value: Any) -> None:
    """Let OmegaConf convert the value as Hydra would ("5" into an int field is fine, "abc" is not)."""
    parent, _, name = key.rpartition(".")
    node = schema_node(parent)
    if not is_closed(node):
        return
    probe = OmegaConf.structured(OmegaConf.get_type(node))  # a fresh copy: the cached schema stays untouched
    try:
        probe[name] = value
    except OmegaConfBaseException:
        raise bad_type(key, value) from None


def check_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """The composed job config: no key the schema lacks, every interpolation resolves. Raises SweepError."""
    unknown = find_unknown(cfg)
    if unknown:
        key, value = unknown[0]
        raise unknown_key(key, value)
    if not isinstance(cfg, DictConfig):
        return  # a plain mapping (tests) has nothing to resolve
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as exc:
        raise unresolved(cfg, exc) from None


def unresolved(cfg: DictConfig, exc: OmegaConfBaseException) -> SweepError:
    """`KEY: got ${oc.env:VAR}; allowed: ...` for an interpolation that does not resolve."""
    key = str(getattr(exc, "full_key", "") or "config")
    raw = _raw(cfg, key)
    reason = str(getattr(exc, "msg", "") or exc).splitlines()[0]
    if "Environment variable" in reason and "not found" in reason:
        var = reason.split("'")[1] if reason.count("'") >= 2 else "VAR"
        allowed = f"a set environment variable (export {var}=...), or a default: ${{oc.env:{var},DEFAULT}}"
        return bad_value(key, raw if raw is not None else f"${{oc.env:{var}}}", allowed)
    return bad_value(key, raw if raw is not None else "an interpolation",
                     f"an interpolation that resolves ({reason.rstrip('.')})")


def _raw(cfg: DictConfig, key: str) -> Any:
    """The unresolved value at a dotted key, or None."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig):
            return None
        node = _child(node, part)
        if node is None:
            return None
    return node._value() if isinstance(node, Node) and not isinstance(node, DictConfig | ListConfig) else None


class CheckConfig(Callback):
    """Hydra callback (conf/config.yaml): `check_config` in run mode before Hydra creates the run directory.

    Hydra turns a callback's exception into a warning and runs the job anyway, so a bad config exits here,
    with the one line and code 2 that `app.run_job` would give. Multirun jobs are checked by `app.run_job`,
    which records the error for the merged jobs.csv."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)  # ${hydra:...} in a user's key resolves as in the job
        job = config.copy()
        with read_write(job), open_dict(job):
            job.pop("hydra", None)  # what the job itself gets (Hydra's run_job does the same)
        try:
            check_config(job)
        except SweepError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)

