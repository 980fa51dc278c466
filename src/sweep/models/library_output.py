"""What diffusers, transformers, the hub and torch print during a run goes to the run's log, each message once.

The terminal keeps what the tool itself says (the header, the sweep bar, the summary, error lines): library
warnings ("There are modules in AutoencoderKL that should be kept in float32 ...", deprecations, load reports)
would otherwise interleave with the progress bar, some of them once per image. Python `warnings` are routed the
same way; the libraries' own progress bars (`from_pretrained`'s) are turned off by `pipeline.quiet_loading`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Logger trees whose records leave the terminal: each library's root logger, and Python's warnings.
LIBRARIES = ("diffusers", "transformers", "huggingface_hub", "accelerate", "peft", "torch", "py.warnings")
LOG_NAME = "sweep.log"  # conf/hydra/job_logging/sweep.yaml: ${hydra.job.name}.log, job name `sweep`
FILE_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # the same as Hydra's file handler's

_active: list[Once] = []


class Once(logging.Handler):
    """Passes each distinct (logger, level, message) once to the run's log file.

    The file is the root logger's sweep.log handler when there is one (the CLI's: Hydra opens it), so
    a run dir moved by `distributed.shared_run_dir` is followed; without one (a run started from Python) it is
    `run_dir/sweep.log`, opened at the first record only. Without either, records are dropped: what a library
    logs before it raises is carried by the one error line the tool prints.
    """

    def __init__(self, run_dir: Path | None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.seen: set[tuple[str, int, str]] = set()
        self._own: logging.FileHandler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            key = (record.name, record.levelno, record.getMessage())
        except Exception:  # a library's bad format arguments: keep the record as it is
            key = (record.name, record.levelno, str(record.msg))
        if key in self.seen:
            return
        self.seen.add(key)
        target = self._target()
        if target is not None:
            target.handle(record)

    def _target(self) -> logging.Handler | None:
        here = Path(self.run_dir).resolve() if self.run_dir is not None else None
        for handler in logging.getLogger().handlers:
            # Only this run's own file: a handler an earlier run in this process left behind points elsewhere.
            if (isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).name == LOG_NAME
                    and (here is None or Path(handler.baseFilename).resolve().parent == here)):
                return handler
        if self._own is None and self.run_dir is not None:
            from sweep.safe_log import EscapingFormatter, RunLogHandler

            self._own = RunLogHandler(Path(self.run_dir) / LOG_NAME, delay=True, encoding="utf-8")
            self._own.setFormatter(EscapingFormatter(FILE_FORMAT))
        return self._own

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
        super().close()


@contextlib.contextmanager
def to_log(run_dir: Path | None = None) -> Iterator[Once]:
    """Inside: the libraries' log records and Python warnings go once each to the run's log, never to the
    terminal. Nested uses share the outermost one (one file, one memory of what was said)."""
    if _active:
        yield _active[-1]
        return
    once = Once(run_dir)
    _active.append(once)
    saved: list[list[Any]] = []
    try:
        _route(once, saved)
        with warnings.catch_warnings():  # restores warnings.showwarning (and the filters) on the way out
            warnings.showwarning = _warning_to(once)
            yield once
    finally:
        _active.pop()
        for logger, handlers, propagate in reversed(saved):
            logger.removeHandler(once)
            for handler in handlers:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
            logger.propagate = propagate
        once.close()
        _saved.pop(id(once), None)


_saved: dict[int, list[list[Any]]] = {}


def reroute() -> None:
    """Take over handlers a library installed since the run began: diffusers and transformers add their stderr
    handler when first imported, which happens at the model load, inside the run."""
    if _active:
        _route(_active[-1], _saved[id(_active[-1])])


def _route(once: Once, saved: list[list[Any]]) -> None:
    _saved[id(once)] = saved
    done = {id(logger) for logger, _, _ in saved}
    names = [name for name in list(logging.root.manager.loggerDict)
             if any(name == lib or name.startswith(lib + ".") for lib in LIBRARIES)]
    for name in sorted(set(names) | set(LIBRARIES)):
        logger = logging.getLogger(name)
        root = name in LIBRARIES
        handlers = [h for h in logger.handlers if h is not once]
        if not handlers and not (root and once not in logger.handlers):
            continue
        if id(logger) not in done:
            saved.append([logger, handlers, logger.propagate])
            done.add(id(logger))
        else:  # taken over before: keep what the library added since, for the restore
            for entry in saved:
                if entry[0] is logger and handlers:
                    entry[1].extend(h for h in handlers if h not in entry[1])
                    entry[2] = logger.propagate  # what the library set along with its handler
        for handler in handlers:
            logger.removeHandler(handler)
        if root:
            if once not in logger.handlers:
                logger.addHandler(once)
            logger.propagate = False
        else:
            logger.propagate = True  # a child with its own handler (torch._dynamo's): to its library's root


def _warning_to(once: Once) -> Any:
    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        once.handle(logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, text, None, None))

    return show


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No progress bars; what diffusers, transformers, the hub and Python warnings say goes to the run's log,
    once each (sweep.models.library_output), not to the terminal. A failed load is the one line `_build` makes."""
    with to_log():  # inside a run: the run's own (nested use)
        import diffusers.utils.logging as diffusers_logging
        import huggingface_hub.utils as hub_utils
        import transformers.utils.logging as transformers_logging

        reroute()  # diffusers and transformers add their stderr handler when first imported
        saved = [(m, m.is_progress_bar_enabled()) for m in (diffusers_logging, transformers_logging)]
        hub_bars = hub_utils.are_progress_bars_disabled()
        try:
            for module, _ in saved:
                module.disable_progress_bar()
            hub_utils.disable_progress_bars()
            yield
        finally:
            for module, bars in saved:
                if bars:
                    module.enable_progress_bar()
            if not hub_bars:
                hub_utils.enable_progress_bars()
