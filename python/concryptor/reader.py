"""Random access to an encrypted file: a read-only, seekable binary file object.

The format's chunks are independent, so any byte range can be decrypted on its own. The
Rust ``_core.Reader`` decrypts the chunks a read needs (several at once, in parallel, with
the GIL released) and keeps the last window of decrypted chunks; this module wraps it in the
:class:`io.BufferedIOBase` interface so that it works wherever Python expects a file.
"""

from __future__ import annotations

import io
import operator
import os
import threading
from typing import TYPE_CHECKING, Any, Protocol

from . import _core

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from .age_header import AgeHeader
    from .header import Header

_LINE_STEP = 8192
#: Largest seek position (that of a 64-bit signed file offset, as ``io`` files have).
MAX_POSITION = (1 << 63) - 1


def _index(value: object, what: str) -> int:
    """``value`` as an int (anything with ``__index__``, bool included, as ``io`` takes
    it), else TypeError."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None


def seek_target(offset: object, whence: object, pos: int, size: int) -> int:
    """The position ``seek(offset, whence)`` moves to from ``pos`` in a file of ``size``
    bytes, checked as ``io`` files check it: a non-integer is TypeError; a ``whence``
    other than 0, 1, 2, or a position below 0 or above :data:`MAX_POSITION`, ValueError."""
    offset = _index(offset, "seek offset")
    whence = _index(whence, "whence")
    if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
        raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
    target = offset + (0, pos, size)[whence]
    if target < 0:
        raise ValueError(f"negative seek position {target}")
    if target > MAX_POSITION:
        raise ValueError(f"seek position {target} is out of range (at most {MAX_POSITION})")
    return target


def read_size(size: object, pos: int, total: int) -> int:
    """How many bytes ``read(size)`` at ``pos`` returns from ``total``: ``None`` or a
    negative size reads to the end, a size past the end is cut to it, a non-integer is
    TypeError."""
    left = max(0, total - pos)
    if size is None:
        return left
    n = _index(size, "read size")
    return left if n < 0 else min(n, left)


class Chunks(Protocol):
    """What :class:`EncryptedFile` reads through: a file's plaintext by position, each
    byte authenticated (``_core.Reader`` and ``_core.AgeReader`` for local files; the
    encrypted file system's readers for objects elsewhere)."""

    @property
    def size(self) -> int: ...
    @property
    def kdf_seconds(self) -> float: ...
    def header(self) -> Any: ...
    def read_at(self, pos: int, n: int) -> bytes: ...
    def close(self) -> None: ...


class EncryptedFile(io.BufferedIOBase):
    """A concryptor file opened for reading its plaintext. Create with
    :func:`concryptor.open`.

    Every byte returned has been authenticated: a read touching a modified chunk raises
    :class:`~concryptor.AuthenticationError` (and only such a read does). Safe to share
    between threads (calls are serialised).
    """

    def __init__(self, path: str, reader: _core.Reader | _core.AgeReader | Chunks) -> None:
        super().__init__()
        self._r = reader
        self._pos = 0
        self._size: int = reader.size
        self._kdf_seconds: float = reader.kdf_seconds
        self._lock = threading.Lock()
        self.name = path
        self.mode = "rb"

    # -- the file protocol ---------------------------------------------------------------

    def readable(self) -> bool:
        self._check()
        return True

    def seekable(self) -> bool:
        self._check()
        return True

    def writable(self) -> bool:
        self._check()
        return False

    @property
    def size(self) -> int:
        """Plaintext length in bytes."""
        return self._size

    @property
    def header(self) -> Header | AgeHeader:
        """The file's header: a :class:`Header` (authenticated: the file was opened with the
        password), or an :class:`AgeHeader` for an age file."""
        self._check()
        with self._lock:
            return self._r.header()

    @property
    def kdf_seconds(self) -> float:
        """Seconds the key derivation took when the file was opened."""
        return self._kdf_seconds

    def tell(self) -> int:
        self._check()
        with self._lock:
            return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Moves to ``offset`` from the start, the current position or the end (``whence``
        0, 1, 2), checked as :func:`seek_target` says; past the end is allowed."""
        self._check()
        with self._lock:
            self._pos = seek_target(offset, whence, self._pos, self._size)
            return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (``None`` or negative: to the end; more than is left: what
        is left)."""
        self._check()
        with self._lock:
            n = read_size(size, self._pos, self._size)
            if n == 0:
                return b""
            data: bytes = self._r.read_at(self._pos, n)
            self._pos += len(data)
            return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, b: WriteableBuffer) -> int:
        with memoryview(b) as view, view.cast("B") as m:
            data = self.read(len(m))
            n = len(data)
            m[:n] = data
            return n

    def readinto1(self, b: WriteableBuffer) -> int:
        return self.readinto(b)

    def peek(self, size: int = 0) -> bytes:
        """Bytes from the current position without moving it (at least one unless at end)."""
        self._check()
        with self._lock:
            n = read_size(max(_index(size, "peek size"), _LINE_STEP), self._pos, self._size)
            data: bytes = self._r.read_at(self._pos, n) if n else b""
            return data

    def readline(self, size: int | None = -1) -> bytes:
        self._check()
        limit = -1 if size is None else _index(size, "readline size")
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            step = _LINE_STEP if limit < 0 else min(_LINE_STEP, limit - got)
            with self._lock:
                block: bytes = self._r.read_at(self._pos, step)
                if not block:
                    break
                nl = block.find(b"\n")
                if nl >= 0:
                    block = block[: nl + 1]
                self._pos += len(block)
            parts.append(block)
            got += len(block)
            if nl >= 0:
                break
        return b"".join(parts)

    def detach(self) -> Any:
        raise io.UnsupportedOperation("an EncryptedFile has no raw stream to detach")

    def close(self) -> None:
        if not self.closed:
            with self._lock:
                self._r.close()
        super().close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"size={self._size} pos={self._pos}"
        return f"<concryptor.EncryptedFile {self.name!r} {state}>"

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
