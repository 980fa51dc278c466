"""Log lines that carry values from untrusted input (a sweep name, a prompt, a path) safely.

A sweep file is data from someone else (docs/security.md): a name like "x\\nrm -rf ~" must not put a line of
its own into sweep.log or the terminal, and an escape sequence must not drive the terminal. The formatter
escapes control characters (and Unicode line separators and bidirectional overrides, which reorder what a
terminal shows) in each message as Python writes them in a string (`\\n`, `\\x1b`, `\\u202e`). The file handler
opens the log without following a link: a `sweep.log` link in a run directory is never written through (the run
is then refused by rundir.check_links, with one line).

conf/hydra/job_logging/sweep.yaml uses both; library_output uses them for the libraries' records.
"""

from __future__ import annotations

import errno
import logging
import os
import re

# C0 and C1 controls (tab and newline included), line/paragraph separators, bidi embeddings/overrides/isolates.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str) -> str:
    """Text on one line, every control character written as its escape (`a\\nb` -> `a\\\\nb`)."""
    return _CONTROLS.sub(_escape, str(text))


class EscapingFormatter(logging.Formatter):
    """A logging.Formatter whose message is escaped (escape_controls); a traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class RunLogHandler(logging.FileHandler):
    """A FileHandler that appends to a real file only: where the log's name is a link, nothing is written
    (the records go to os.devnull) and the run refuses the directory."""

    def _open(self):  # type: ignore[no-untyped-def]
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.baseFilename, flags, 0o666)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = os.open(os.devnull, os.O_WRONLY)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)
