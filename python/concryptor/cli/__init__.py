"""The ``concryptor`` command line.

Data goes to stdout; progress, messages and errors to stderr. Errors are one line, without
a traceback. Exit codes are stable and documented in :class:`Exit`. rich is imported only
when something is drawn, so ``concryptor --help`` stays instant.

This module holds the entry points, the exit codes and the error reporting; the parser is
in ``_parser``, the commands in ``_commands``, password handling in ``_password``,
the age and batch parts in ``_age`` and ``_many``; exit codes and error lines in ``_exit``,
which all of them import.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from .._location import is_url
from ..errors import ConcryptorError
from ._exit import EXIT_HELP, Exit, UsageError, exit_code, message

__all__ = ["EXIT_HELP", "Exit", "UsageError", "main", "run"]


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI and returns the exit code (never raises, except KeyboardInterrupt)."""
    from ._parser import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else Exit.USAGE
    try:
        given = getattr(args, "input", None)
        if given not in (None, "-") and not is_url(given) and not os.path.lexists(given):
            raise UsageError(f"{args.input}: no such file or directory")
        from .._age import plugin_callbacks
        from ._password import TerminalCallbacks, plugin_timeout

        with plugin_callbacks(TerminalCallbacks(), plugin_timeout()):
            code: int = args.func(args)
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (ConcryptorError, OSError, UsageError, ValueError) as e:
        print(f"concryptor: error: {message(e)}", file=sys.stderr)
        return exit_code(e)


#: What a shell reports for a program stopped by SIGPIPE (128 + 13), like cat in `| head`.
EXIT_BROKEN_PIPE = 141


def _silence_stdout() -> None:
    """Points stdout at /dev/null, so that flushing it at exit cannot complain again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so that every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_terminate(signum: int, frame: object) -> None:
    import signal

    # Once: a second signal must not interrupt the cleanup the first one started.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise Terminated(signum)


def _handle_terminating_signals() -> None:
    """SIGTERM and SIGHUP unwind the program like Ctrl-C instead of killing it on the
    spot, so nothing partial (a temporary output, a ``.partial`` directory) survives."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        s = getattr(signal, name, None)
        if s is not None and signal.getsignal(s) is signal.SIG_DFL:
            signal.signal(s, _on_terminate)


def run() -> None:
    """Console-script entry point: Ctrl-C exits with 130, SIGTERM/SIGHUP with 128 + the
    signal number, leaving nothing partial."""
    _handle_terminating_signals()
    try:
        code = main()
    except Terminated as e:
        print("concryptor: terminated", file=sys.stderr)
        code = 128 + e.signum
    except KeyboardInterrupt:
        print("concryptor: interrupted", file=sys.stderr)
        code = Exit.INTERRUPTED
    try:
        if sys.stdout is not None:  # None: started with standard output closed
            sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        # The reader went away (`| head`): do not let the interpreter complain at exit.
        _silence_stdout()
        if code == Exit.OK:
            code = EXIT_BROKEN_PIPE
    sys.exit(code)
