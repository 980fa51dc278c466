"""One line per bad input, also for errors Hydra finds while composing the config (typos, wrong types).

Hydra reports a composition error in five to twenty lines (override, cause, full_key, object_type, search
path). Users of this tool get the same facts in one line: the key, the value, what is allowed, and the
nearest key or option for a typo. Set HYDRA_FULL_ERROR=1 for Hydra's own report with the stack trace.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import yaml

from sweep.cli.yaml_errors import describe_load_error, not_a_mapping
from sweep.errors import SweepError, suggest

_NOT_FOUND = re.compile(r"Could not find '([^']+)'")
_OPTIONS_OF = re.compile(r"Available options in '([^']+)'")
# The override with its value first (Hydra names it in one of these), else the key alone.
_OVERRIDE = (re.compile(r"(?:Error merging override|To append to your config use)\s+(\S+)"),
             re.compile(r"Could not override\s+'([^'\s]+)'"))
_FILE = re.compile(r"^In '([^']+)': ")
_CONVERT = re.compile(r"Value '([^']*)'.*could not be converted to (\w+)")
_CONVERT_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string",
                  "Bytes": "bytes", "Path": "a path"}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def one_line(exc: BaseException, argv: Sequence[str] | None = None) -> str:
    """The facts of a Hydra/OmegaConf composition error as `key: got value; allowed: ...`.

    argv (default sys.argv[1:]) lets an override split by the shell be shown as the user typed it."""
    from hydra.errors import OverrideParseException

    from sweep.planning.config_checks import ConfigFileError

    for error in _chain(exc):
        if isinstance(error, ConfigFileError | SweepError):
            return str(error)
        if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
            # A config file Hydra's own file source read (conf/, --config-dir): same words as for sweep files.
            path = error.problem_mark.name
            return f"config file {path}{describe_load_error(error, path)}"
    text = "\n".join(str(e) for e in _chain(exc))
    if isinstance(exc, OverrideParseException):
        return override_hint(text, sys.argv[1:] if argv is None else list(argv))
    missing = _NOT_FOUND.search(text)
    if missing:
        return _missing_option(missing.group(1), text)
    return _schema_error(exc, text)


def _missing_option(path: str, text: str) -> str:
    """`sweep: got 'stpes'; allowed: a, b (did you mean steps?)` for a config group option that is not there."""
    group_match = _OPTIONS_OF.search(text)
    group, _, name = path.rpartition("/")
    if group_match and path.startswith(group_match.group(1) + "/"):
        group, name = group_match.group(1), path[len(group_match.group(1)) + 1:]
    options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.M)
    allowed = ", ".join(options) if options else f"a config in the '{group}' group"
    if group == "sweep":
        allowed += ", or the path of a .yaml file"
        if "/" in name or name.endswith(".yaml"):
            return f"sweep: got {name!r}; allowed: an existing sweep file (no file {os.path.abspath(name)}), " \
                   f"or one of {', '.join(options)}"
    return f"{group}: got {name!r}; allowed: {allowed}{suggest(name, options)}"


def _schema_error(exc: BaseException, text: str) -> str:
    """An unknown key or a value of the wrong type, checked against the schema for what is allowed."""
    from omegaconf.errors import ConfigKeyError, ValidationError

    from sweep.planning import config_checks

    cause = next((e for e in _chain(exc) if getattr(e, "full_key", None)), None)
    override = _OVERRIDE[0].search(text) or _OVERRIDE[1].search(text)
    key_value = override.group(1).lstrip("+~") if override else ""
    o_key, has_value, o_value = key_value.partition("=")
    key = str(cause.full_key) if cause is not None else o_key or "config"  # type: ignore[attr-defined]
    where = _FILE.match(str(exc))
    prefix = f"in {where.group(1)}: " if where and where.group(1) != "config" else ""
    if isinstance(cause, ConfigKeyError) or "not in struct" in text or "not in '" in text:
        typed = _typed(o_value) if has_value and o_key == key else None
        return prefix + str(config_checks.unknown_key(key, has_value=False, typed=typed))
    if isinstance(cause, ValidationError) or "Validation" in text:
        convert = _CONVERT.search(text)
        if has_value and o_key == key:
            shown = _typed(o_value)
        elif convert:
            shown = repr(convert.group(1))
        else:
            shown = config_checks.show(getattr(cause, "value", None))
        allowed = config_checks.describe(key)
        if allowed == "any value":  # a key outside this tool's schema (hydra.launcher.mem_gb): the type it refused
            allowed = _CONVERT_WORDS.get(convert.group(2), f"a {convert.group(2).lower()}") if convert else \
                "a value of the type the key's config declares (`--cfg hydra` shows it)"
        return f"{prefix}{key}: got {shown}; allowed: {allowed}"
    reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"{key}: {reason}"


def _typed(text: str) -> str:
    """A command-line value as the other messages show values: text quoted, numbers, lists and null bare."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    return repr(text) if isinstance(value, str) else text


def override_hint(text: str, argv: Sequence[str]) -> str:
    """An override Hydra cannot parse: which argument, and how to quote it for the shell and for Hydra."""
    word = _culprit(text, argv)
    if word is not None and "=" not in word and not word.startswith("-"):
        split = _split_by_shell(word, argv)
        if split:
            key, value = split
            return (f"{key}: got {value!r} as {len(value.split())} shell words; allowed: one quoted argument, "
                    f"{_quoted(key, value)}")
        return (f"{word}: got an argument without '='; allowed: key=value overrides "
                "(`python -m sweep --help` lists the keys)")
    if word is not None and "=" in word:
        key, _, value = word.partition("=")
        return (f"{key}: got {value!r}, which Hydra cannot read unquoted; allowed: a quoted value, "
                f"{_quoted(key, value, force=True)}")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"override: got {first}; allowed: key=value; quote values with spaces or symbols: 'prompt=\"a ~ b\"'"


def _culprit(text: str, argv: Sequence[str]) -> str | None:
    """The command-line argument Hydra failed on."""
    for pattern in (r"Error parsing override '([^']*)'", r"LexerNoViableAltException: (.*)$",
                    r"(?:no viable alternative|mismatched input|extraneous input) at input '([^']*)'"):
        found = re.search(pattern, text, flags=re.M)
        if not found:
            continue
        fragment = found.group(1).strip()
        if fragment in argv:
            return fragment
        return next((a for a in argv if fragment and fragment in a), fragment or None)
    return None


def _split_by_shell(word: str, argv: Sequence[str]) -> tuple[str, str] | None:
    """`prompt=a red fox` typed unquoted arrives as `prompt=a`, `red`, `fox`: rebuild (prompt, 'a red fox')."""
    args = list(argv)
    if word not in args:
        return None
    i = args.index(word)
    start = i
    while start > 0 and "=" not in args[start - 1] and not args[start - 1].startswith("-"):
        start -= 1
    if start == 0 or args[start - 1].startswith("-"):
        return None
    key, _, first = args[start - 1].partition("=")
    words = [first]
    for arg in args[start:]:
        if "=" in arg or arg.startswith("-"):
            break
        words.append(arg)
    return key.lstrip("+~"), " ".join(words)


def _quoted(key: str, value: str, *, force: bool = False) -> str:
    """How to type `key=value` in a POSIX shell: Hydra reads `'key=a red fox'` as one string, and
    `key='"a~b"'` keeps symbols that its grammar would read as syntax."""
    inner = f'"{value}"' if '"' not in value else f"'{value}'"
    shell = f"{key}='{inner}'" if "'" not in inner else f"{key}=\"{inner}\""
    if force:
        return shell
    plain = f"'{key}={value}'" if "'" not in value else f'"{key}={value}"'
    return f"{plain} or {shell}"


def _run_dir_error(exc: BaseException) -> str | None:
    """One line for Hydra failing to create the run (or sweep) directory: a file in the way, a path under a
    file, a name longer than the file system allows, no permission."""
    if not isinstance(exc, OSError):
        return None
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename.replace("\\", "/"), tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    in_hydra = any(name.endswith("hydra/core/utils.py") and func == "run_job" for name, func in frames)
    in_hydra |= any(name.endswith("basic_launcher.py") or name.endswith("basic_sweeper.py") for name, _ in frames)
    if not in_hydra or not any(func in ("mkdir", "makedirs") for _, func in frames[-4:]):
        return None
    why = {20: "a part of it is a file", 17: "a file is in the way", 36: "a name is longer than the file system allows",
           13: "no permission"}.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    shown = str(exc.filename if exc.filename is not None else "")
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return (f"hydra.run.dir: got {shown!r}, which cannot be created ({why}); allowed: a directory path you can "
            "create (hydra.run.dir=DIR, or hydra.sweep.dir=DIR with -m)")


def _config_file_error(exc: BaseException) -> str | None:
    """One line for a config file of Hydra's search path (conf/, --config-dir) that holds a single number or
    boolean: OmegaConf.load refuses it with an OSError that names no file."""
    if not not_a_mapping(exc):
        return None
    tb, path = exc.__traceback__, None
    while tb is not None:  # Hydra's file source has the file's full path in hand
        path = tb.tb_frame.f_locals.get("full_path", path) if tb.tb_frame.f_code.co_name == "load_config" else path
        tb = tb.tb_next
    return f"config file {path or '(unknown)'}{describe_load_error(exc, path or '')}"


def _too_deep(exc: BaseException, argv: Sequence[str]) -> str | None:
    """One line for an override nested so deep that Hydra's parser or OmegaConf runs out of recursion (a
    2,000-line RecursionError otherwise): the override, its depth, the limit."""
    from sweep.planning.config_checks import ConfigFileError

    chain = list(_chain(exc))
    if not any(isinstance(e, RecursionError) for e in chain) or any(isinstance(e, ConfigFileError | SweepError)
                                                                    for e in chain):
        return None
    from sweep.cli.yaml_errors import MAX_NESTING, nesting

    depth, word = max(((nesting(w), w) for w in argv), default=(0, ""))
    if depth < 2:
        return None
    key = word.partition("=")[0].lstrip("+~") or "override"
    return (f"{key}: got a value nested {depth:,} levels deep, deeper than Python's recursion limit lets Hydra "
            f"parse; allowed: lists, mappings and brackets nested at most {MAX_NESTING} levels")


def install() -> None:
    """Route Hydra's error reporting through `one_line` (Hydra's full report with HYDRA_FULL_ERROR=1)."""
    import hydra._internal.utils as hydra_utils

    original: Callable[[Callable[[], Any]], Any] = hydra_utils.run_and_report

    def run_and_report(func: Callable[[], Any]) -> Any:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return original(func)
        try:
            return func()
        except Exception as exc:
            from hydra.errors import HydraException
            from omegaconf.errors import OmegaConfBaseException

            from sweep.cli import multirun

            if multirun.is_launcher_error(exc):
                sys.exit(multirun.after_launcher_error(exc))
            made = _run_dir_error(exc) or _config_file_error(exc) or _too_deep(exc, sys.argv[1:])
            if made:
                print(f"error: {made}", file=sys.stderr, flush=True)
                sys.exit(2)
            if not isinstance(exc, HydraException | OmegaConfBaseException | SweepError | yaml.MarkedYAMLError):
                error = exc

                def reraise() -> None:
                    raise error

                return original(reraise)  # not a config error but a bug: Hydra's report, with traceback
            print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
            sys.exit(2)

    hydra_utils.run_and_report = run_and_report
