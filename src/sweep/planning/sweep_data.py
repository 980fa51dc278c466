"""A sweep file is data: no Hydra settings, no objects, no interpolation that reads outside the file.

Sweep files are shared and downloaded like Infinity Grid's YAML grids, so the tool treats one as untrusted
(docs/security.md). Hydra would act on some keys of a config it composes: `hydra:` (callbacks run at job start,
`job_logging` builds handlers with `()` factories, launchers copy `setup` lines into batch scripts), `defaults:`
(pulls in other configs, Hydra's included), and `_target_`/`_args_`/`()` (what `instantiate` calls). OmegaConf
resolves `${...}` when a value is read: `oc.env` reads the environment, `oc.decode`/`oc.create` build configs,
`oc.select` and node interpolations read the rest of the config, and any registered resolver runs code.

`data_of` is called by the sweep config sources (hydra_plugins.sdxl_sweep) before the file is handed to Hydra:
it refuses those keys in one line naming the file and the key, resolves the file's own `${key}` interpolations
within the file (a resolver call `${name:...}` is refused), and escapes every `${` left in a value so that
OmegaConf reads it as text later. The command line and conf/ keep all of Hydra: they are the user's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

# Keys Hydra acts on at the top of a config, and keys hydra.utils.instantiate reads anywhere.
HYDRA_ONLY = ("hydra", "defaults")
INSTANTIATE = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_", "()")
HOLDS = ("a sweep file holds data only: name, description, grid, layout, titles, descriptions and base "
         "parameters (prompt, seed, model, ...); Hydra's settings (hydra:, defaults:, _target_) and resolvers "
         "(${oc.env:...}) belong on the command line or in conf/")
LOCAL = ("${KEY} of a key of this sweep file; a sweep file reads no environment variable, file or other config "
         "(resolvers such as ${oc.env:...} belong on the command line or in conf/)")


def _error(path: str, key: str, got: str, allowed: str) -> Exception:
    from sweep.planning.config_checks import ConfigFileError

    return ConfigFileError(f"sweep file {path}: {key}: got {got}; allowed: {allowed}")


def _shown(value: Any) -> str:
    """A value for the error line: short, on one line, never resolved (an interpolation is shown as written)."""
    from sweep.planning.config_checks import show

    return show(value).encode("unicode_escape").decode("ascii")


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _walk(value: Any, prefix: str = ""):  # type: ignore[no-untyped-def]
    """(dotted key, key or None, value) of every node below value, depth first, in the file's order."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            full = _join(prefix, key)
            yield full, key, item
            yield from _walk(item, full)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            full = f"{prefix}[{i}]"
            yield full, None, item
            yield from _walk(item, full)


def resolver_names(text: str) -> list[str]:
    """The resolvers a value calls (`${oc.env:X}` -> ['oc.env']), nested ones too; raises on bad syntax."""
    from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser
    from omegaconf.grammar_parser import parse

    names: list[str] = []
    stack = [parse(text, parser_rule="configValue", lexer_mode="DEFAULT_MODE")]
    while stack:
        node = stack.pop()
        if isinstance(node, OmegaConfGrammarParser.InterpolationResolverContext):
            names.append(node.resolverName().getText())
        stack.extend(getattr(node, "children", None) or ())
    return names


def escape_interpolations(text: str) -> str:
    """Text that OmegaConf reads back unchanged: every `${` escaped, with the backslashes before it doubled."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_interpolations(value) if "${" in value else value
    if isinstance(value, Mapping):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value


def check_keys(raw: Mapping[str, Any], path: str) -> None:
    """Refuse Hydra's top-level keys and instantiate's keys at any depth, naming the first one found."""
    for key in raw:
        if key in HYDRA_ONLY:
            raise _error(path, str(key), f"a Hydra setting ({_shown(raw[key])})", HOLDS)
    for full, key, value in _walk(raw):
        if key in INSTANTIATE:
            raise _error(path, full, f"{_shown(value)}, a key Hydra's instantiate acts on", HOLDS)


def check_interpolations(raw: Mapping[str, Any], path: str) -> None:
    """Refuse any `${...}` that calls a resolver; show the value as written (a secret is never resolved)."""
    for full, _, value in _walk(raw):
        if not isinstance(value, str) or "${" not in value:
            continue
        try:
            names = resolver_names(value)
        except OmegaConfBaseException:
            raise _error(path, full, f"{_shown(value)}, not a valid interpolation",
                         LOCAL + "; \\${ for a literal ${") from None
        if names:
            raise _error(path, full, f"{_shown(value)}, which calls the resolver {names[0]}", LOCAL)


def data_of(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The sweep file's mapping as plain data: keys checked, its own interpolations resolved within the file,
    every `${` left in a value escaped. Raises ConfigFileError (one line) for anything else."""
    check_keys(raw, path)
    check_interpolations(raw, path)
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(dict(raw)), resolve=True)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        value = dict((full, item) for full, _, item in _walk(raw)).get(key)
        reason = str(getattr(exc, "msg", "") or exc).splitlines()[0].rstrip(".")
        raise _error(path, key or "interpolation", f"{_shown(value) if value is not None else 'a value'} "
                     f"({reason})", LOCAL) from None
    return _escaped(resolved)  # type: ignore[arg-type]
