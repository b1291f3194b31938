"""The ``alma`` command line: the entry point, and how every way a command ends becomes an
exit code and at most one error line.

Errors alma understands print one line and a hint (exit 2 for usage and configuration, 1 for
failures, 3 when the budget stopped the work, 130 on Ctrl-C, 143 on SIGTERM and 129 on SIGHUP,
which stop it the same way); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import suppress
from types import FrameType
from typing import Any

import typer
from rich.markup import escape
from typer.exceptions import TyperException

from alma.cli.app import app
from alma.cli.options import err, state
from alma.errors import AlmaError
from alma.storage_faults import fault_behind

INTERRUPTED = "what was finished is saved in the run directory"
# a service manager or `kill` (SIGTERM) and a closed terminal (SIGHUP) stop alma as Ctrl-C does
STOP_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (and exits with it when called as a script)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("ALMA_DEBUG") == "1"
    received: list[signal.Signals] = []
    state.resume_hint = None
    previous = stop_like_ctrl_c(received)
    try:
        code = run_app(args, debug)
    finally:
        restore_handlers(previous)
    if code == 130:
        if received:  # the shell's convention: 128 + the signal's number
            code = 128 + received[0]
        with suppress(OSError):  # SIGHUP: the terminal may be gone
            stopped = f"interrupted by {STOP_SIGNALS[received[0]]}" if received else "interrupted"
            err.print(f"[yellow]{stopped}[/]: {INTERRUPTED}")
            if state.resume_hint:
                err.print(f"[dim]hint[/]: {escape(state.resume_hint)}", highlight=False)
    if argv is None:
        sys.exit(code)
    return code


def stop_like_ctrl_c(received: list[signal.Signals]) -> dict[signal.Signals, Any]:
    """Handle SIGTERM and SIGHUP the way Ctrl-C is handled; returns the handlers they replace.

    The handler calls whatever handles SIGINT at that moment: inside ``asyncio.run`` that
    cancels the main task (evaluations are marked interrupted, workers closed, everything
    saved, then KeyboardInterrupt); elsewhere it raises KeyboardInterrupt at once.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers (alma called from a thread)
    previous: dict[signal.Signals, Any] = {}
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Ctrl-C is ignored here (a job started in the background by a script). Block it
        # instead: asyncio then sets up its SIGINT handling, the clean way these signals stop
        # a run (a KeyboardInterrupt raised at a random point would strand its tasks)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):
            on_interrupt(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handler)
    return previous


def restore_handlers(previous: dict[signal.Signals, Any]) -> None:
    """Put back the handlers :func:`stop_like_ctrl_c` replaced (and unblock Ctrl-C)."""
    for signum, handler in previous.items():
        # None: a handler set outside Python, which cannot be put back; the default stands in
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if signal.SIGINT in previous:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_app(args: list[str], debug: bool) -> int:
    """Run the command; every way it can end becomes an exit code and at most one error line
    (the interruption line is main's, as it knows which signal it was)."""
    try:
        returned = app(args=args, prog_name="alma", standalone_mode=False)
        # typer returns the code of an Exit (Ctrl-C becomes Exit(130)) instead of raising it
        return returned if isinstance(returned, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except TyperException as usage:  # bad flags or arguments: typer's own usage message
        show = getattr(usage, "show", None)
        if show is not None:
            show(file=sys.stderr)
        else:
            err.print(f"[red]error[/]: {escape(usage.message)}")
        return usage.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except AlmaError as error:
        return report(error, debug)
    except Exception as error:
        fault = storage_fault_behind(error)
        if fault is not None:
            return report(fault, debug)
        if debug:  # an alma bug: still one line unless --debug
            err.print_exception()
        err.print(
            f"[red]internal error[/]: {type(error).__name__}: {escape(str(error))}",
            highlight=False,
        )
        err.print("[dim]hint[/]: run again with --debug and report the traceback")
        return 1


def report(error: AlmaError, debug: bool) -> int:
    if debug:
        err.print_exception()
    err.print(f"[red]error[/]: {escape(error.message)}", highlight=False)
    if error.hint:
        err.print(f"[dim]hint[/]: {escape(error.hint)}", highlight=False)
    return error.exit_code


def storage_fault_behind(error: BaseException) -> AlmaError | None:
    """A fault of the disk or a file met outside the run's store (the model cache, a scratch
    folder), as one line instead of a bug report."""
    return fault_behind(error)
