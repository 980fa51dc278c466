"""The one exception type a user sees: a single line naming the key, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class SweepError(Exception):
    """Bad input or an unusable environment; printed as one line, exit code 2, no traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # Collapse to one line: the CLI promises exactly one line per error.
        super().__init__(" ".join(str(message).split()))


class RunDirError(SweepError):
    """The run directory cannot be used (someone else's files, another experiment, another process): the
    refused run writes nothing into it."""


def bad_value(key: str, value: Any, allowed: str) -> SweepError:
    """`key: got VALUE; allowed: ...` in the same shape everywhere."""
    shown = repr(value) if isinstance(value, str) else value
    text = str(shown)
    if len(text) > 80:
        text = text[:77] + "..."
    return SweepError(f"{key}: got {text}; allowed: {allowed}")


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the nearest choice to a mistyped word, '' when nothing is close."""
    import difflib

    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {found[0]}?)" if found else ""


def run_command(argv: list[str] | None, doc: str | None, run: Callable[[list[str]], int]) -> int:
    """The small commands' shared frame (sweep.report, sweep.compare): `-h` prints the module's doc; bad input
    raised as SweepError is one `error:` line on stderr and exit code 2."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print((doc or "").strip())
        return 0
    try:
        return run(args)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
