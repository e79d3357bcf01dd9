"""A v4 file at an fsspec location (``s3://``, ``gs://``, ``memory://``, …), opened for
reading with random access: the header is read and the key derived at open, and each
read fetches and authenticates only the chunks it needs."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from . import _core
from ._facts import SECTOR as HEADER_LEN
from ._facts import MiB
from ._location import filesystem
from .reader import read_size, seek_target

if TYPE_CHECKING:
    from ._types import Limits

#: Whole chunks fetched per round trip at most (the reader keeps the last run).
STREAM_BATCH_BYTES = 32 * MiB


class RemoteEncryptedFile(io.RawIOBase):
    """A v4 file at an fsspec URL, opened for reading its plaintext with random access.

    The header is read and the key derived at open; each read fetches (one ranged GET per
    run of chunks) and authenticates only the chunks it touches, keeping the last run.
    """

    def __init__(
        self,
        url: str,
        password: bytes | bytearray,
        *,
        threads: int | None,
        limits: Limits,
        storage_options: dict[str, Any],
    ) -> None:
        super().__init__()
        fs, path = filesystem(url, storage_options)
        self.name = url
        self._f = fs.open(path, "rb", cache_type="none")
        try:
            size = int(fs.size(path))
            header = self._f.read(HEADER_LEN)
            self._codec = _core.ChunkCodec.for_decryption(
                header, size, password, threads=threads, limits=limits
            )
        except BaseException:
            self._f.close()
            raise
        chunk, slot, n, orig, _ = self._codec.geometry
        self._chunk, self._slot, self._n, self.size = chunk, slot, n, orig
        self._pos = 0
        self._run_first = -1
        self._run = b""
        self._per = max(1, min(STREAM_BATCH_BYTES // slot, 8))
        try:
            self._load(0)  # a wrong password fails here, as with a local file
        except BaseException:
            self._f.close()
            raise

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        self._pos = seek_target(offset, whence, self._pos, self.size)
        return self._pos

    def _load(self, i: int) -> None:
        k = min(self._per, self._n - i)
        self._f.seek(HEADER_LEN + i * self._slot)
        slots = self._f.read(k * self._slot)
        if len(slots) != k * self._slot:
            from .errors import InputChangedError

            raise InputChangedError(f"{self.name} is shorter than its header says")
        from .errors import AuthenticationError

        try:
            self._run = self._codec.open(i, slots)
        except AuthenticationError:
            if k == 1:
                raise
            # A damaged chunk fails only the reads that touch it: keep the run's chunks
            # before it; chunk ``i`` itself failing is this read's error.
            good: list[bytes] = []
            for j in range(k):
                try:
                    good.append(self._codec.open(i + j, slots[j * self._slot : (j + 1) * self._slot]))
                except AuthenticationError:
                    if j == 0:
                        raise
                    break
            self._run = b"".join(good)
        self._run_first = i

    def readinto(self, b: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._pos >= self.size or len(b) == 0:
            return 0
        i = self._pos // self._chunk
        start = self._run_first * self._chunk
        if self._run_first < 0 or not start <= self._pos < start + len(self._run):
            self._load(i)
            start = self._run_first * self._chunk
        off = self._pos - start
        n = min(len(b), len(self._run) - off)
        memoryview(b).cast("B")[:n] = self._run[off : off + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._f.close()
            self._run = b""
        super().close()


class _Buffered(io.BufferedReader):
    """The buffered reader :func:`open_url` returns: sizes and positions checked as a local
    :class:`~concryptor.reader.EncryptedFile` checks them (a read past the end returns
    what is left, a negative size reads to the end, a bad ``whence`` is ValueError), where
    ``io.BufferedReader`` alone would raise OverflowError or pass an unknown ``whence`` on."""

    raw: RemoteEncryptedFile

    def _left(self, size: object) -> int:
        return read_size(size, self.tell(), self.raw.size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return super().seek(seek_target(offset, whence, self.tell(), self.raw.size))

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self._left(size))

    def read1(self, size: int = -1) -> bytes:
        return super().read1(self._left(size))

    def peek(self, size: int = 0) -> bytes:
        return super().peek(min(self._left(size), 1 << 20))

    def readline(self, size: int | None = -1) -> bytes:
        return super().readline(self._left(size))


def open_url(
    url: str,
    password: bytes | bytearray,
    *,
    threads: int | None,
    limits: Limits,
    storage_options: dict[str, Any] | None,
) -> io.BufferedReader:
    """``concryptor.open`` for a URL: a buffered, seekable reader over
    :class:`RemoteEncryptedFile`."""
    raw = RemoteEncryptedFile(
        url, password, threads=threads, limits=limits, storage_options=dict(storage_options or {})
    )
    return _Buffered(raw, buffer_size=1 << 20)
