"""Ctrl-C and SIGTERM (a SLURM preemption): stop taking work, keep every image made, say how to resume.

The first signal asks the run to stop: no new pipeline call starts, a call in flight finishes when it is close
to done (or is dropped: its cells stay missing and a resume makes them), every finished image is written, and
the command prints one line and exits 130 (SIGINT) or 143 (SIGTERM); with a compiled model the call in flight is
dropped at once (it may be compiling for minutes). A second signal exits at once; atomic
writes mean even that leaves no half file, only images a resume makes again.

Python runs signal handlers on the main thread between bytecodes only, so a main thread inside one long C call
(a denoising step at a huge size, a huge allocation, a PNG encode) would not see a signal for minutes. `guard()`
watches from a second thread, through the interpreter's wakeup fd, which the C-level handler writes at once:
a second signal, or a first one the command has not acted on within GRACE_SECONDS, ends the process there.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# A call in flight is let finish when the rest of it should take at most this long; else it is dropped.
QUICK_SECONDS = 10.0
HANDLED = (signal.SIGINT, signal.SIGTERM)
# A first signal the command has not finished acting on by then ends the process (the graceful stop lets a call
# finish for up to QUICK_SECONDS, then writes the images in flight).
GRACE_SECONDS = QUICK_SECONDS + 10.0


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


def interrupted_line(signum: int, hint: str) -> str:
    return f"interrupted ({signal.Signals(signum).name}): {hint}"


def _hard_exit(signum: int, hint: str | Callable[[], str], how: str) -> None:
    """Print one line with a raw write (the main thread may hold sys.stderr's lock) and end the process.
    `hint` may be a function: the run dir, and with it the resume command, is known only once the job runs."""
    hint = hint() if callable(hint) else hint
    try:
        os.write(2, (interrupted_line(signum, f"{how}; {hint}") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass  # the terminal is gone: nobody to tell
    os._exit(128 + signum)


@contextmanager
def guard(hint: str | Callable[[], str], grace: float | None = None) -> Iterator[None]:
    """While inside, a second SIGINT/SIGTERM, or a first one still not acted on after `grace` seconds, ends the
    process with one line (`hint`: what is kept and how to go on) and exit code 128 + the signal's number.

    The handlers themselves are the command's (KeyboardInterrupt, Interrupted, or `stop_on_signals`); this
    only watches, from a thread, so that a main thread stuck in C code cannot make a signal wait. (C code that
    holds the GIL throughout would starve the watcher too; torch's ops, PIL's codecs and I/O release it.)"""
    grace = GRACE_SECONDS if grace is None else grace
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):
        reader.close()
        writer.close()
        yield
        return
    done = threading.Event()

    def deadline(signum: int) -> None:
        if not done.wait(grace):
            _hard_exit(signum, hint, f"not stopped within {grace:g} s, stopped at once")

    def watch() -> None:
        seen = 0
        with reader:
            while True:
                try:
                    data = reader.recv(64)
                except OSError:
                    return
                if not data or done.is_set():
                    return
                for signum in (s for s in data if s in HANDLED):
                    seen += 1
                    if seen > 1:
                        _hard_exit(signum, hint, "a second signal, stopped at once")
                    threading.Thread(target=deadline, args=(signum,), name="signal-deadline", daemon=True).start()

    threading.Thread(target=watch, name="signal-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous)
        try:
            writer.send(b"\0")  # wakes the watcher, which sees `done` and closes its end
        except OSError:
            pass
        writer.close()


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """Inside: SIGINT/SIGTERM set `stop.signum` instead of raising; a second one exits at once."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread; a helper thread has nothing to install
        return

    def handle(signum: int, frame: Any) -> None:
        if stop.signum is not None:
            from sweep.resume import current_hint

            print(f"interrupted again ({signal.Signals(signum).name}): stopping now; "
                  f"{current_hint('run the same command to resume')}", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        stop.signum = signum
        if stop.immediate:
            from sweep.models.compiling import stop_workers

            stop_workers()  # inductor's compile workers go too
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handle) for s in HANDLED}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
