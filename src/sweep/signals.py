"""Ctrl-C and SIGTERM (a SLURM preemption): stop taking work, keep every image made, say how to resume.

The first signal asks the run to stop: no new pipeline call starts, a call in flight finishes when it is close
to done (or is dropped: its cells stay missing and a resume makes them), every finished image is written, and
the command prints one line and exits 130 (SIGINT) or 143 (SIGTERM); with a compiled model the call in flight is
dropped at once (it may be compiling for minutes). A second signal exits at once; atomic
writes mean even that leaves no half file, only images a resume makes again.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# A call in flight is let finish when the rest of it should take at most this long; else it is dropped.
QUICK_SECONDS = 10.0
HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818  (like KeyboardInterrupt: not an error of the run's input)
    """The run stopped on a signal; `code` is the shell's convention (128 + signal number)."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message)
        self.signum = signum
        self.code = 128 + signum


class Stop:
    """Shared by the generation loop and the pipeline callbacks: has a stop been asked for?"""

    def __init__(self) -> None:
        self.signum: int | None = None
        # Stop at once instead of between steps: set for compiled models, whose first call of each shape
        # compiles for tens of seconds (minutes with autotuning) before its first step ends.
        self.immediate = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def watch(self, steps: int) -> Callable[..., dict[str, Any]]:
        """A `callback_on_step_end` for one pipeline call: after a stop it lets the call finish if the steps
        left should take under QUICK_SECONDS, and otherwise sets the pipeline's `_interrupt` flag, which makes
        diffusers skip the remaining steps (the caller then drops the result)."""
        started = time.perf_counter()

        def callback(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if self.signum is not None and not getattr(pipe, "_interrupt", False):
                per_step = (time.perf_counter() - started) / (step + 1)
                if per_step * (steps - step - 1) > QUICK_SECONDS:
                    pipe._interrupt = True
            return kwargs

        return callback


def _terminate(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def install_entry_handlers() -> None:
    """Outside the generation loop (config, model load) SIGTERM stops like Ctrl-C does: an exception the
    entry point turns into one line, instead of a silent exit."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """Inside: SIGINT/SIGTERM set `stop.signum` instead of raising; a second one exits at once."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread; a helper thread has nothing to install
        return

    def handle(signum: int, frame: Any) -> None:
        if stop.signum is not None:
            print(f"interrupted again ({signal.Signals(signum).name}): stopping now; run the same command to "
                  "resume", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        stop.signum = signum
        if stop.immediate:
            from sweep.compiling import stop_workers

            stop_workers()  # inductor's compile workers go too
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handle) for s in HANDLED}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
