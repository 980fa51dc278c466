"""The one exception type a user sees: a single line naming the key, the value and what is allowed."""

from __future__ import annotations

from typing import Any


class SweepError(Exception):
    """Bad input or an unusable environment; printed as one line, exit code 2, no traceback."""

    def __init__(self, message: str) -> None:
        # Collapse to one line: the CLI promises exactly one line per error.
        super().__init__(" ".join(str(message).split()))


def bad_value(key: str, value: Any, allowed: str) -> SweepError:
    """`key: got VALUE; allowed: ...` in the same shape everywhere."""
    shown = repr(value) if isinstance(value, str) else value
    text = str(shown)
    if len(text) > 80:
        text = text[:77] + "..."
    return SweepError(f"{key}: got {text}; allowed: {allowed}")
