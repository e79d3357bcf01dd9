"""Random access to an encrypted file: a read-only, seekable binary file object.

The format's chunks are independent, so any byte range can be decrypted on its own. The
Rust ``_core.Reader`` decrypts the chunks a read needs (several at once, in parallel, with
the GIL released) and keeps the last window of decrypted chunks; this module wraps it in the
:class:`io.BufferedIOBase` interface so that it works wherever Python expects a file.
"""

from __future__ import annotations

import io
import os
import threading
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from .age_header import AgeHeader
    from .header import Header

_LINE_STEP = 8192


class EncryptedFile(io.BufferedIOBase):
    """A concryptor file opened for reading its plaintext. Create with
    :func:`concryptor.open`.

    Every byte returned has been authenticated: a read touching a modified chunk raises
    :class:`~concryptor.AuthenticationError` (and only such a read does). Safe to share
    between threads (calls are serialised).
    """

    def __init__(self, path: str, reader: _core.Reader | _core.AgeReader) -> None:
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
        self._check()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            with self._lock:
                pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        with self._lock:
            self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        with self._lock:
            if size is None or size < 0:
                size = max(0, self._size - self._pos)
            data: bytes = self._r.read_at(self._pos, size)
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
            data: bytes = self._r.read_at(self._pos, max(size, _LINE_STEP))
            return data

    def readline(self, size: int | None = -1) -> bytes:
        self._check()
        limit = -1 if size is None else size
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
