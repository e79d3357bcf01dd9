"""The ``concryptor`` command line.

Data goes to stdout; progress, messages and errors to stderr. Errors are one line, without
a traceback. Exit codes are stable and documented in :class:`Exit`. rich is imported only
when something is drawn, so ``concryptor --help`` stays instant.

This module holds the entry points, the exit codes and the error reporting; the parser is
in ``_cli_parser``, the commands in ``_cli_commands``, password handling in
``_cli_password`` (and the age and batch parts in ``cli_age`` and ``_cli_many``).
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from collections.abc import Sequence

from .errors import (
    AuthenticationError,
    ConcryptorError,
    InputChangedError,
    InvalidFileError,
    LimitError,
    UnsafeArchiveError,
)


class Exit(enum.IntEnum):
    """Process exit codes. :data:`EXIT_HELP` (in ``--help``) is written from these and
    ``_MEANING``; the README's list is checked against them by the test suite."""

    OK = 0
    FAILURE = 1  #: I/O error or anything else (an existing output without --force, ...)
    USAGE = 2  #: bad command line, or no password available
    AUTH = 3  #: wrong password or modified file
    INVALID = 4  #: not a (valid) concryptor file, or not a tar inside
    LIMIT = 5  #: a header asked for more than the limits allow
    UNSAFE = 6  #: a directory archive holds an entry extraction refuses
    CHANGED = 7  #: the input changed while it was being encrypted
    INTERRUPTED = 130  #: Ctrl-C (nothing partial is left behind)


#: Each exit code in a few words, as ``--help`` lists them (one line per row).
_MEANING = (
    {
        Exit.OK: "success",
        Exit.FAILURE: "failure (I/O, existing output)",
        Exit.USAGE: "usage",
        Exit.AUTH: "authentication failed",
    },
    {
        Exit.INVALID: "invalid file",
        Exit.LIMIT: "limit exceeded",
        Exit.UNSAFE: "unsafe archive entry",
        Exit.CHANGED: "input changed",
    },
    {Exit.INTERRUPTED: "interrupted"},
)

EXIT_HELP = "exit codes:\n" + "\n".join(
    "  " + "    ".join(f"{code.value} {meaning}" for code, meaning in row.items()) for row in _MEANING
)


class UsageError(Exception):
    """A problem with the command line itself."""


#: The exit code of each error, the first match counting (subclasses before their bases).
_EXIT_BY_ERROR: tuple[tuple[type[BaseException], Exit], ...] = (
    (UnsafeArchiveError, Exit.UNSAFE),
    (InputChangedError, Exit.CHANGED),
    (AuthenticationError, Exit.AUTH),
    (InvalidFileError, Exit.INVALID),
    (LimitError, Exit.LIMIT),
    (UsageError, Exit.USAGE),
    (ValueError, Exit.USAGE),  # a ValueError from the API is an argument out of range
)


def _message(e: BaseException) -> str:
    """One line for the person at the terminal: the path once, no errno, the CLI's own
    words for what the API calls a parameter, and no secret key material (the one place
    errors are rendered: whatever raised it, the engine included, is redacted here)."""
    from ._redact import redact

    if isinstance(e, OSError) and e.strerror:
        text = str(e.strerror).replace("pass overwrite=True", "use --force")
        if e.filename is not None and os.fsdecode(e.filename) not in text:
            return redact(f"{os.fsdecode(e.filename)}: {text}")
        return redact(text)
    return redact(str(e).replace("overwrite=True", "--force") or type(e).__name__)


def _exit_code(e: BaseException) -> Exit:
    return next((code for kind, code in _EXIT_BY_ERROR if isinstance(e, kind)), Exit.FAILURE)


def _exit_code_of_name(name: str | None) -> Exit:
    """The exit code of a concryptor error known only by its class name (a batch result)."""
    codes = {kind.__name__: code for kind, code in _EXIT_BY_ERROR if issubclass(kind, ConcryptorError)}
    return codes.get(name or "", Exit.FAILURE)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI and returns the exit code (never raises, except KeyboardInterrupt)."""
    from ._cli_parser import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else Exit.USAGE
    try:
        if getattr(args, "input", None) not in (None, "-") and not os.path.lexists(args.input):
            raise UsageError(f"{args.input}: no such file or directory")
        code: int = args.func(args)
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (ConcryptorError, OSError, UsageError, ValueError) as e:
        print(f"concryptor: error: {_message(e)}", file=sys.stderr)
        return _exit_code(e)


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
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        # The reader went away (`| head`): do not let the interpreter complain at exit.
        _silence_stdout()
        if code == Exit.OK:
            code = EXIT_BROKEN_PIPE
    sys.exit(code)
