"""A config file that cannot be read as YAML, in one line: where (line), what was found, what is allowed.

PyYAML's errors span four lines and two marks; OmegaConf adds a recursion traceback for a recursive alias
and UnicodeDecodeError names no file or line. A user needs the line to look at and the fix.
"""

from __future__ import annotations

from pathlib import Path

import yaml

MAPPING = "a YAML mapping (see sweeps/steps_10_to_90.yaml)"
MAX_NESTING = 50  # below where Python's recursion limit stops Hydra's override parser (~85 levels of lists)


def describe_load_error(exc: BaseException, path: str | Path) -> str:
    """', line N: got ...; allowed: ...' for an error raised while loading the YAML file at path."""
    if isinstance(exc, UnicodeDecodeError):
        line, byte = _first_bad_byte(path)
        return f"{line}: got {byte}, which is not UTF-8; allowed: UTF-8 text (save the file as UTF-8)"
    if isinstance(exc, RecursionError):
        depth = _nesting(path)
        if depth > MAX_NESTING:  # a deep list / mapping, not an alias: say so (it has no `*` in it at all)
            return (f": got a list or mapping nested {depth:,} levels deep, deeper than Python's recursion limit "
                    f"lets it be read; allowed: values nested at most {MAX_NESTING} levels")
        return ": got a recursive alias (an anchor used inside its own value); allowed: aliases of complete nodes"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = (exc.problem or "").strip()
        if "'\\t'" in problem:
            return f"{line}: got a tab character; allowed: spaces (YAML does not allow tabs for indentation)"
        if problem.startswith("found duplicate key"):
            key = problem.removeprefix("found duplicate key").strip()
            first = f" (in the mapping from line {exc.context_mark.line + 1})" if exc.context_mark is not None else ""
            return f"{line}: got the key {key!r} twice in one mapping{first}; allowed: each key once"
        context = f" {exc.context}" if exc.context else ""
        return f"{line}: got invalid YAML ({problem}{context}); allowed: {MAPPING}"
    if isinstance(exc, yaml.YAMLError):
        return f": got invalid YAML ({' '.join(str(exc).split())}); allowed: {MAPPING}"
    if not_a_mapping(exc):
        return f": got {_top_value(path)}, a single value where keys are expected; allowed: {MAPPING}"
    return f": got {type(exc).__name__}: {' '.join(str(exc).split())}; allowed: {MAPPING}"


def nesting(text: str) -> int:
    """How deep brackets nest in YAML flow text or a Hydra override (`[[[1]]]` -> 3), quotes skipped."""
    depth = deepest = 0
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]})":
            depth = max(0, depth - 1)
    return deepest


def _nesting(path: str | Path) -> int:
    try:
        return nesting(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return 0


def not_a_mapping(exc: BaseException) -> bool:
    """OmegaConf.load's refusal of a file whose whole content is one number or boolean (raised as an OSError)."""
    return isinstance(exc, OSError) and str(exc).startswith("Invalid loaded object type:")


def _top_value(path: str | Path) -> str:
    """The file's one value as written (cut to 40 characters), for the error line."""
    try:
        text = " ".join(Path(path).read_text(encoding="utf-8").split())
    except (OSError, UnicodeDecodeError):
        return "a single value"
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _first_bad_byte(path: str | Path) -> tuple[str, str]:
    """(', line N', 'the byte 0xAB') of the first byte that is not UTF-8; the decoder's own offset is relative to
    whichever chunk it was reading."""
    try:
        data = Path(path).read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        newlines = data[:exc.start].count(b"\n")
        return f", line {newlines + 1}", f"the byte 0x{data[exc.start]:02x}"
    except OSError:
        pass
    return "", "a byte"
