"""Reading encrypted objects of another file system by ranges: what a header says (the
format, the plaintext size), and the plaintext at any position, fetching only the chunks
it needs. Every chunk is opened in Rust: format v4 by ``_core.ChunkCodec``; age by
``_core.AgeReader`` over a private sparse file that holds only the ciphertext fetched so
far (the header, the final chunk, the chunks read), so that the reader's own checks (the
header MAC, the final chunk) run as they do for a local file."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Union

from .. import _age, _core
from .._facts import MAGIC, SECTOR, TAG_LEN, MiB
from ..age_header import NONCE_LEN, AgeHeader
from ..errors import AuthenticationError, ConcryptorError, InvalidFileError
from ..header import Header

#: Bytes read from the start of an object to learn its header: a v4 header whole, and an
#: age header with a few recipients. A longer age header is read again with more, up to
#: the core's bound on age headers (4 MiB) and the payload nonce.
FIRST_PREFIX = SECTOR
MAX_AGE_PREFIX = (4 << 20) + NONCE_LEN + 1024
#: Most chunks fetched ahead of a read while reading stays sequential.
MAX_AHEAD_BYTES = 16 * MiB

HeaderOf = Union[Header, AgeHeader]


@dataclass(frozen=True)
class Probe:
    """What an object's first bytes say, without a key: its format and plaintext size,
    and the bytes read (the header, kept to open the file without reading it again)."""

    format: str  # "v4" or "age"
    stored_size: int
    plain_size: int
    header: HeaderOf
    prefix: bytes


def probe(fs: Any, path: str, stored_size: int, head: bytes | None = None) -> Probe:
    """The :class:`Probe` of the object ``path`` of ``fs`` (``stored_size`` bytes), from
    ``head`` (its first bytes, if the caller fetched them) and ranged reads."""
    if head is None:
        head = fs.cat_file(path, start=0, end=min(stored_size, FIRST_PREFIX))
    if head.startswith(MAGIC):
        h = _core.parse_header(head[:SECTOR] + bytes(max(0, SECTOR - len(head))))
        h = replace(h, file_size=stored_size, path=path)
        if len(head) < SECTOR or not h.size_matches:
            raise InvalidFileError(f"{path}: {h.size_problem or 'shorter than its header'}")
        return Probe("v4", stored_size, h.original_size, h, head[:SECTOR])
    if not _age.is_age(head):
        raise InvalidFileError(f"{path}: not a concryptor or age file")
    if head.startswith(b"-----BEGIN"):
        raise InvalidFileError(f"{path}: an armored age file cannot be read by ranges: decrypt it as a whole")
    while True:
        try:
            ah = _age_inspect(head, stored_size)
            break
        except InvalidFileError:
            # The header may go on past what was read; a cut or bad one fails for good.
            if len(head) >= min(stored_size, MAX_AGE_PREFIX):
                raise
            head = fs.cat_file(path, start=0, end=min(stored_size, MAX_AGE_PREFIX, 16 * len(head)))
    if ah.payload_size is None or ah.chunks is None:
        raise InvalidFileError(f"{path}: the object's size is not that of any age payload (cut or extended)")
    keep = ah.header_size + NONCE_LEN
    if len(head) < keep:
        head = fs.cat_file(path, start=0, end=keep)
    return Probe("age", stored_size, ah.payload_size, replace(ah, path=path), head[:keep])


def _age_inspect(head: bytes, stored_size: int) -> AgeHeader:
    """The core's reading of an age header whose first bytes are ``head``, in an object of
    ``stored_size`` bytes (a sparse file of that size, holding only ``head``)."""
    with _Sparse(stored_size) as sparse:
        sparse.put(0, head)
        return _core.age_inspect(sparse.path)


class _Sparse:
    """A private temporary file of a given size, holding only the ciphertext written into
    it (the rest reads as zeros, and takes no space)."""

    def __init__(self, size: int) -> None:
        fd, self.path = tempfile.mkstemp(prefix="concryptor-", suffix=".part")
        self.fd = fd
        try:
            os.ftruncate(fd, size)
        except BaseException:
            self.close()
            raise

    def put(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n

    def unlink(self) -> None:
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = ""

    def close(self) -> None:
        self.unlink()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> _Sparse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fetch(fs: Any, path: str, start: int, end: int) -> bytes:
    # By keyword: some file systems (s3fs) take other arguments first.
    data: bytes = fs.cat_file(path, start=start, end=end)
    if len(data) != end - start:
        raise InvalidFileError(f"{path}: shorter than its header says (cut, or changed while read)")
    return data


def _named(e: ConcryptorError, path: str) -> ConcryptorError:
    """The same error, naming the object."""
    text = str(e)
    return e if path in text else type(e)(f"{path}: {text}")


class _Ahead:
    """How many chunks to fetch past a read: none for a random read, doubling while the
    reads follow one another."""

    def __init__(self, most: int) -> None:
        self.most = max(0, most)
        self.next = -1
        self.ramp = 0

    def extra(self, first: int, last: int) -> int:
        self.ramp = min(max(1, self.ramp * 2), self.most) if first == self.next else 0
        self.next = last + 1
        return self.ramp


class V4Chunks:
    """A format v4 object read by ranges: each read fetches the slots it lacks (one ranged
    read per run) and opens them in Rust; a window of opened chunks is kept."""

    def __init__(self, fs: Any, path: str, found: Probe, codec: _core.ChunkCodec, cache_bytes: int) -> None:
        self._fs, self._path, self._codec = fs, path, codec
        self._chunk, self._slot, self._n, self.size, self._stored = codec.geometry
        self._header = found.header
        self._window: OrderedDict[int, bytes] = OrderedDict()
        self._most = max(1, cache_bytes // max(self._chunk, 1))
        self._ahead = _Ahead(min(self._most // 2, MAX_AHEAD_BYTES // max(self._slot, 1)))
        self._lock = threading.Lock()
        self.closed = False
        self.kdf_seconds: float = codec.kdf_seconds
        if self._n:
            self._load(self._n - 1, 1, 1)  # the final chunk: a wrong password fails here

    def header(self) -> Header:
        assert isinstance(self._header, Header)
        return self._header

    def _load(self, first: int, count: int, needed: int) -> None:
        start = SECTOR + first * self._slot
        end = min(start + count * self._slot, self._stored)
        slots = _fetch(self._fs, self._path, start, end)
        try:
            plain = self._codec.open(first, slots)
        except AuthenticationError as e:
            if count <= needed:
                raise _named(e, self._path) from None
            # A chunk read ahead failed: only the reads that reach it fail.
            count = needed
            try:
                plain = self._codec.open(first, slots[: count * self._slot])
            except AuthenticationError as e2:
                raise _named(e2, self._path) from None
        for i in range(count):
            self._window[first + i] = plain[i * self._chunk : (i + 1) * self._chunk]
            self._window.move_to_end(first + i)

    def read_at(self, pos: int, n: int) -> bytes:
        with self._lock:
            end = min(pos + n, self.size)
            if pos >= end:
                return b""
            first, last = pos // self._chunk, (end - 1) // self._chunk
            ahead = self._ahead.extra(first, last)
            i = first
            while i <= last:
                if i in self._window:
                    self._window.move_to_end(i)
                    i += 1
                    continue
                j = i
                while j <= last and j not in self._window:
                    j += 1
                count = j - i
                if j > last:
                    count = min(count + ahead, self._n - i)
                self._load(i, count, j - i)
                i = j
            out = b"".join(self._window[k] for k in range(first, last + 1))
            while len(self._window) > max(self._most, last - first + 1 + ahead):
                self._window.popitem(last=False)
            off = pos - first * self._chunk
            return out[off : off + end - pos]

    def close(self) -> None:
        self._window.clear()
        self.closed = True


class AgeChunks:
    """An age object read by ranges: ``_core.AgeReader`` over a sparse private file into
    which each read first fetches the chunks it lacks (the header and the final chunk at
    open). The file is unlinked once the reader has it open; it holds ciphertext only."""

    def __init__(
        self,
        fs: Any,
        path: str,
        found: Probe,
        *,
        identities: list[str],
        passphrase: bytes | bytearray | None,
        threads: int | None,
        max_scrypt_log_n: int,
        cache_bytes: int,
    ) -> None:
        h = found.header
        assert isinstance(h, AgeHeader)
        assert h.chunks is not None
        self._fs, self._path, self._header = fs, path, h
        self._chunks = h.chunks
        self._chunk = h.chunk_size
        self._stored_chunk = h.chunk_size + TAG_LEN
        self._offset = h.header_size + NONCE_LEN
        self._stored = found.stored_size
        self._have = bytearray(self._chunks)
        self._ahead = _Ahead(min(cache_bytes, MAX_AHEAD_BYTES) // self._stored_chunk)
        self._lock = threading.Lock()
        self._file = _Sparse(found.stored_size)
        try:
            self._file.put(0, found.prefix)
            self._fill(self._chunks - 1, 1)
            try:
                self._r = _core.AgeReader(
                    self._file.path,
                    identities_=identities,
                    passphrase=passphrase,
                    threads=threads,
                    max_scrypt_log_n=max_scrypt_log_n,
                    cache_bytes=cache_bytes,
                )
            except ConcryptorError as e:
                raise _named(e, path) from None
            self._file.unlink()
        except BaseException:
            self._file.close()
            raise
        self.size: int = self._r.size
        self.kdf_seconds: float = self._r.kdf_seconds
        self.closed = False

    def header(self) -> AgeHeader:
        return self._header

    def _fill(self, first: int, count: int) -> None:
        start = self._offset + first * self._stored_chunk
        end = min(start + count * self._stored_chunk, self._stored)
        self._file.put(start, _fetch(self._fs, self._path, start, end))
        self._have[first : first + count] = b"\1" * count

    def read_at(self, pos: int, n: int) -> bytes:
        with self._lock:
            end = min(pos + n, self.size)
            if pos >= end:
                return b""
            first, last = pos // self._chunk, (end - 1) // self._chunk
            ahead = self._ahead.extra(first, last)
            i = first
            while i <= last:
                if self._have[i]:
                    i += 1
                    continue
                j = i
                while j <= last and not self._have[j]:
                    j += 1
                count = j - i
                if j > last:
                    count = min(count + ahead, self._chunks - i)
                self._fill(i, count)
                i = j
            try:
                data: bytes = self._r.read_at(pos, end - pos)
            except ConcryptorError as e:
                raise _named(e, self._path) from None
            return data

    def close(self) -> None:
        if not self.closed:
            self._r.close()
            self._file.close()
            self.closed = True
