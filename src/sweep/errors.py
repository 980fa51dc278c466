"""The one exception type a user sees: a single line naming the key, the value and what is allowed."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable
from typing import Any

# Errors of the disk or the file system, not of the input: one line and exit code 1, never a traceback.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM)
EXIT_DISK = 1


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


# A list of allowed keys longer than this is shortened: the grid has 40+ axes and the top level 50 keys, and
# the whole list made a 900-character "one line" that hid the suggestion at its end.
MAX_LISTED = 12


def key_list(keys: Iterable[str], near: str | None = None, docs: str = "docs/configuration.md") -> str:
    """The allowed keys for an error line: all of them when they are few; else the first four, the ones
    closest to what the user typed (`near`) and the page listing them all."""
    import difflib

    keys = [str(k) for k in keys]
    if len(keys) <= MAX_LISTED:
        return ", ".join(keys)
    shown = keys[:4]
    if near is not None:
        shown += [k for k in difflib.get_close_matches(str(near), keys, n=3, cutoff=0.6) if k not in shown]
    return f"{', '.join(shown)}, ... (all {len(keys)}: {docs})"


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the nearest choice to a mistyped word, '' when nothing is close."""
    import difflib

    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {found[0]}?)" if found else ""


def disk_error(exc: BaseException | None) -> str | None:
    """One line for a full, read-only or forbidden file system (`PATH: No space left on device; ...`), None for
    any other error."""
    seen = 0
    while exc is not None and not (isinstance(exc, OSError) and exc.errno in DISK_ERRORS) and seen < 10:
        exc, seen = exc.__cause__ or exc.__context__, seen + 1  # a disk error under a later one it caused
    if not isinstance(exc, OSError) or exc.errno not in DISK_ERRORS:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    fix = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space", errno.EROFS: "use a writable place",
           errno.EACCES: "fix its permissions or use another place", errno.EPERM: "fix its permissions or flags "
           "(chattr -i) or use another place"}.get(exc.errno, "check the disk")
    from sweep.resume import current_hint

    then = current_hint("then run the same command again")
    then = then if then.startswith("then") else "then " + then.split("; ", 1)[1]
    return " ".join(f"{where}: {exc.strerror or os.strerror(exc.errno)}; {fix}, {then}".split())


class _DropOnBrokenPipe:
    """stdout/stderr that outlive their reader (`... | head -1`): after a broken pipe the stream's file
    descriptor points at /dev/null, so the command finishes its work (the run's log keeps every line)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _drop(self) -> None:
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError):
            pass

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()
            try:
                self._stream.flush()  # what was buffered now goes to /dev/null
            except OSError:
                pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def survive_closed_output() -> None:
    """Make sys.stdout and sys.stderr drop output once their pipe is closed (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _DropOnBrokenPipe):
            setattr(sys, name, _DropOnBrokenPipe(stream))
