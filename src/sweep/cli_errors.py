"""One line per bad input, also for errors Hydra finds while composing the config (typos, wrong types).

Hydra reports a composition error in five to twenty lines (override, cause, full_key, object_type, search
path). Users of this tool get the same facts in one line: the key, the value, what is allowed. Set
HYDRA_FULL_ERROR=1 for Hydra's own report with the stack trace.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

_FULL_KEY = re.compile(r"full_key:\s*(\S+)")
_NOT_FOUND = re.compile(r"Could not find '([^']+)/([^']+)'")
_OVERRIDE = re.compile(r"(?:override|Could not override)\s+'?([^'=\s]+)(?:=(\S+))?'?")
_CONVERT = re.compile(r"Value '([^']*)'.*could not be converted to (\w+)")


def one_line(exc: BaseException) -> str:
    """The facts of a Hydra/OmegaConf composition error as `key: got value; allowed: ...`."""
    text = "\n".join(str(e) for e in (exc, exc.__cause__) if e is not None)
    missing = _NOT_FOUND.search(text)
    if missing:
        group, name = missing.groups()
        options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.M)
        allowed = ", ".join(options) if options else f"a config in the '{group}' group"
        return f"{group}: got {name!r}; allowed: {allowed}"
    key_match = _FULL_KEY.search(text)
    override = _OVERRIDE.search(text)
    key = key_match.group(1) if key_match else (override.group(1) if override else "config")
    value = override.group(2) if override and override.group(2) else None
    convert = _CONVERT.search(text)
    if convert:
        return f"{key}: got {convert.group(1)!r}; allowed: a value of type {convert.group(2)}"
    if "not in struct" in text or "Key '" in text and "not in" in text:
        shown = f" (value {value})" if value else ""
        return (f"{key}: unknown key{shown}; allowed: the keys listed by "
                "`python -m sweep sweep=NAME --cfg job` (a typo?)")
    reason = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"{key}: {reason}"


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

            if not isinstance(exc, HydraException | OmegaConfBaseException):
                error = exc

                def reraise() -> None:
                    raise error

                return original(reraise)  # not a config error but a bug: Hydra's report, with traceback
            print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
            sys.exit(2)

    hydra_utils.run_and_report = run_and_report
