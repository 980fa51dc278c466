"""The small commands' shared frame (sweep.report, sweep.compare, sweep.cli.multirun): help, one-line errors, signals
and disks turned into exit codes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from sweep.errors import EXIT_DISK, SweepError, disk_error, survive_closed_output


def run_command(argv: list[str] | None, doc: str | None, run: Callable[[list[str]], int],
                hint: str = "nothing it had written is lost: run the same command again") -> int:
    """The small commands' shared frame (sweep.report, sweep.compare, sweep.cli.multirun): `-h` prints the module's
    doc; bad input raised as SweepError is one `error:` line on stderr and exit code 2; Ctrl-C and SIGTERM are one
    line and 130 / 143 (a second one, or a first one the command cannot act on for a while, stops it at once); a
    full, read-only or forbidden disk is one line and exit code 1; output to a closed pipe is dropped."""
    from sweep.running.signals import Interrupted, guard, install_entry_handlers, interrupted_line

    survive_closed_output()
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print((doc or "").strip())
        return 0
    import signal

    previous = signal.getsignal(signal.SIGTERM)
    install_entry_handlers()
    try:
        with guard(hint):
            return run(args)
    except SweepError as exc:
        from sweep.safe_log import escape_controls

        print(f"error: {escape_controls(str(exc))}", file=sys.stderr, flush=True)
        return exc.exit_code
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(interrupted_line(signum, hint), file=sys.stderr, flush=True)
        return 128 + signum
    except OSError as exc:
        line = disk_error(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        return EXIT_DISK
    finally:
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
