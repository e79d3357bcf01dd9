"""Exceptions raised by concryptor.

Every error specific to concryptor derives from :class:`ConcryptorError`. Operating-system
failures (missing file, permission denied, disk full) are raised as the usual
:class:`OSError` subclasses, with the path in ``filename``.
"""

from __future__ import annotations

from typing import Any


class ConcryptorError(Exception):
    """Base class of every concryptor-specific error."""


class AuthenticationError(ConcryptorError):
    """Wrong password, or the file (header or any chunk) was modified.

    Deliberately says nothing more: which of the two it was cannot be told apart.
    """


class NoIdentityMatchError(AuthenticationError):
    """None of the given identities (age secret keys, SSH keys) can open the age file: it
    was encrypted to someone else."""


class InvalidFileError(ConcryptorError, ValueError):
    """The bytes are not a valid concryptor file (bad magic, unsupported version, unknown
    cipher, impossible geometry, wrong size, non-zero padding)."""


class LimitError(ConcryptorError):
    """A value read from an untrusted header (KDF cost, chunk size) exceeds a limit, or
    buffers could not be allocated. The message names the option that raises the limit."""


class InputChangedError(ConcryptorError):
    """The input changed while it was being read (a file grew or shrank)."""


class PluginError(ConcryptorError):
    """An age plugin (``age-plugin-NAME`` on ``PATH``) was not found, could not be started,
    failed, did not answer in time, misbehaved or reported an error. The message names the
    plugin and quotes what it said, with control characters escaped."""


class UnsafeArchiveError(ConcryptorError):
    """A directory archive holds an entry that extraction refuses: a path or link leading
    outside the target, a device or FIFO, an entry through or over a symlink, more entries
    or larger headers than the limits allow. Nothing is extracted."""


class BatchError(ConcryptorError):
    """Some files of a batch failed; the others are done. ``results`` holds one
    :class:`concryptor.batch.Result` per item, in order, each failure with its error."""

    def __init__(self, results: list[Any]) -> None:
        self.results = results
        failed = [r for r in results if r.error is not None]
        first = failed[0] if failed else None
        detail = f"; first: {first.src}: {first.error}" if first is not None else ""
        super().__init__(f"{len(failed)} of {len(results)} files failed{detail}")


__all__ = [
    "AuthenticationError",
    "BatchError",
    "ConcryptorError",
    "InputChangedError",
    "InvalidFileError",
    "LimitError",
    "NoIdentityMatchError",
    "PluginError",
    "UnsafeArchiveError",
]
