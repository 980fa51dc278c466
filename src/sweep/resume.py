"""The command that resumes a run, printed so that it can be pasted as it is.

A default run goes into a new timestamped folder (`outputs/NAME/2026-12-07_00-16-48`), so "the same command"
would start a new run: the line printed on Ctrl-C, SIGTERM, a failed image or a full disk names the run
directory instead (`hydra.run.dir=...`, or `hydra.sweep.dir=...` for a multirun), after the user's own words.
`resume=last` (the `${sweep_run_dir:...}` resolver of conf/config.yaml) picks the newest timestamped run of
the sweep without copying its timestamp.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

# The console script; `python -m sweep` when the process was started that way.
SCRIPT = "sdxl-sweep"
# What `resume` accepts besides null (a new timestamped folder).
LAST = "last"
# The names Hydra's default run dir gives: ${now:%Y-%m-%d}_${now:%H-%M-%S}, sorted by name = by start time.
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$")
# Overrides the printed command replaces: the directory it names, and `resume=` (the directory says it).
_REPLACED = ("hydra.run.dir=", "hydra.sweep.dir=", "resume=")
_HYDRA_PLAIN = re.compile(r"^[\w./:~+-]+$")  # a value Hydra's override grammar reads as it is

_STATE: dict[str, Any] = {"argv": None, "prefix": None, "dir": None, "multirun": False}


def remember_invocation(args: list[str]) -> None:
    """The words the user ran the tool with (after the program's name), for `command`. Called by the CLI."""
    _STATE["argv"] = list(args)
    orig = list(getattr(sys, "orig_argv", []) or [])
    if "-m" in orig and orig.index("-m") + 1 < len(orig):
        _STATE["prefix"] = orig[: orig.index("-m") + 2]  # `python -m sweep`, with the python the user typed
    else:
        _STATE["prefix"] = [SCRIPT]


def shown_path(path: Path) -> str:
    """The path relative to the working directory when it is inside it (what the user typed), else absolute."""
    full = Path(path).absolute()
    try:
        return str(full.relative_to(Path.cwd()))
    except ValueError:
        return str(full)


def _override(key: str, value: str) -> str:
    """`key=value` as one shell word that Hydra reads back as exactly `value`."""
    if not _HYDRA_PLAIN.match(value):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        value = f"'{escaped}'"
    return shlex.quote(f"{key}={value}")


def command(run_dir: Path | str, *, multirun: bool = False) -> str | None:
    """The command that resumes the run in `run_dir` (the sweep dir of a multirun), or None outside the CLI."""
    args = _STATE["argv"]
    if args is None:
        return None
    kept = [shlex.quote(arg) for arg in args if not arg.lstrip("+~").startswith(_REPLACED)]
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    return " ".join([*(shlex.quote(w) for w in _STATE["prefix"]), *kept, _override(key, shown_path(Path(run_dir)))])


def hint(run_dir: Path | str, *, multirun: bool = False) -> str:
    """`to resume, run: CMD` (or, outside the CLI, the same command with the run's directory)."""
    cmd = command(run_dir, multirun=multirun)
    if cmd:
        return f"to resume, run: {cmd}"
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    return f"to resume, run the same command with {key}={shown_path(Path(run_dir))}"


def remember_dir(path: Path | str | None, *, multirun: bool = False) -> None:
    """The directory of the run in progress (a multirun's sweep dir), for a stop before the job can say it;
    None once the job is over."""
    _STATE["dir"], _STATE["multirun"] = (Path(path) if path is not None else None), multirun


def hint_here(run_dir: Path | str) -> str:
    """The hint for the run in progress (a multirun's whole sweep) when `run_dir` is in it, else for `run_dir`."""
    known = _STATE["dir"]
    if known is not None and (Path(run_dir) == known or known in Path(run_dir).parents):
        return hint(_STATE["dir"], multirun=_STATE["multirun"])
    return hint(run_dir)


def current_hint(default: str) -> str:
    """The resume hint for the run in progress; `default` before its directory is known."""
    if _STATE["dir"] is None:
        return default
    return f"every image already written is kept; {hint(_STATE['dir'], multirun=_STATE['multirun'])}"


