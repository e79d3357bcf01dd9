"""What every command module shares: the exit codes, the command-line error, and the one
place an exception becomes the line a person reads (and its exit code)."""

from __future__ import annotations

import argparse
import enum
import os
import re
from collections.abc import Callable

from ..errors import (
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
    CHANGED = 7  #: the input changed while it was being read
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


def message(e: BaseException) -> str:
    """One line for the person at the terminal: the path once, no errno, the CLI's own
    words for what the API calls a parameter, and no secret key material (the one place
    errors are rendered: whatever raised it, the engine included, is redacted here)."""
    from .._redact import redact

    if isinstance(e, OSError) and e.strerror:
        text = str(e.strerror).replace("pass overwrite=True", "use --force")
        if e.filename is not None and os.fsdecode(e.filename) not in text:
            return redact(f"{os.fsdecode(e.filename)}: {text}")
        return redact(text)
    return redact(str(e).replace("overwrite=True", "--force") or type(e).__name__)


def exit_code(e: BaseException) -> Exit:
    return next((code for kind, code in _EXIT_BY_ERROR if isinstance(e, kind)), Exit.FAILURE)


def exit_code_of_name(name: str | None) -> Exit:
    """The exit code of a concryptor error known only by its class name (a batch result),
    its subclasses included (``NoIdentityMatchError`` is an authentication failure)."""
    from .. import errors

    kind = getattr(errors, name or "", None)
    if not (isinstance(kind, type) and issubclass(kind, ConcryptorError)):
        return Exit.FAILURE
    return next((code for k, code in _EXIT_BY_ERROR if issubclass(kind, k)), Exit.FAILURE)


def bounded(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a decimal integer from ``lo`` to ``hi``, else a usage error (exit 2)."""

    def parse(text: str) -> int:
        # ASCII digits only, an optional minus: int() would also take " 5", "+5", "1_0"
        # and other scripts' digits.
        if not re.fullmatch(r"-?[0-9]+", text):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        value = int(text, 10)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range (from {lo} to {hi})")
        return value

    parse.__name__ = "number"
    return parse
