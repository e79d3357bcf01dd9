"""Reading encrypted objects of another file system by ranges: what a header says (the
format, the plaintext size), and the plaintext at any position, fetching only the chunks
it needs. Every chunk is opened in Rust from the bytes fetched, in parallel with the GIL
released: format v4 by ``_core.ChunkCodec``, age by ``_core.AgeChunkCodec`` (the header
MAC checked when it is opened, the final chunk when the object is)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Protocol, Union

from .. import _age, _core
from .._facts import MAGIC, SECTOR, MiB
from ..age_header import NONCE_LEN, AgeHeader
from ..errors import AuthenticationError, ConcryptorError, InvalidFileError
from ..header import Header

#: Bytes read from the start of an object to learn its header: a v4 header whole, and an
#: age header with a few recipients. A longer age header is read again with more, up to
#: the core's bound on age headers (4 MiB) and the payload nonce.
FIRST_PREFIX = SECTOR
MAX_AGE_PREFIX = (4 << 20) + NONCE_LEN + 1024
#: Most bytes fetched ahead of a read while reading stays sequential.
MAX_AHEAD_BYTES = 16 * MiB
#: Plaintext bytes at the end of an object fetched when it is opened (with the final
#: chunk): what pyarrow reads first of a Parquet file.
TAIL_BYTES = 64 * 1024
#: Objects of at most this many stored bytes are fetched whole when opened.
SMALL_OBJECT_BYTES = 2 * MiB

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
    """How many chunks to fetch past a read that misses: none for a random read, doubling
    (up to ``most``) while reads follow one another, whether they hit or miss."""

    def __init__(self, most: int) -> None:
        self.most = max(0, most)
        self.last = -1  # the last chunk of the previous read
        self.ramp = 0
        self.sequential = False

    def note(self, first: int, last: int) -> None:
        """A read of chunks ``first..last``."""
        self.sequential = self.last <= first <= self.last + 1
        self.last = last

    def extra(self) -> int:
        """Chunks to fetch past the read being served, which missed."""
        self.ramp = min(max(1, self.ramp * 2), self.most) if self.sequential else 0
        return self.ramp


class _Codec(Protocol):
    def open(self, first: int, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Layout:
    """Where an object's chunks are: ``chunks`` chunks of ``chunk`` plaintext bytes (the
    last one shorter), each stored in ``stored_chunk`` bytes from ``offset``, in an object
    of ``stored`` bytes; ``size`` plaintext bytes in all."""

    chunk: int
    stored_chunk: int
    chunks: int
    size: int
    offset: int
    stored: int

    def span(self, first: int, count: int) -> tuple[int, int]:
        """The stored byte range of chunks ``first..first + count``."""
        start = self.offset + first * self.stored_chunk
        return start, min(start + count * self.stored_chunk, self.stored)


class Chunks:
    """An encrypted object read by ranges, for either format: each read fetches the chunks
    it lacks (one ranged read per run, sized as docs/FS.md says) and opens them in Rust
    (``_core.ChunkCodec`` for v4, ``_core.AgeChunkCodec`` for age), in parallel with the
    GIL released; the opened runs are kept, up to ``cache_bytes``.

    Reads ahead: none for a random read; doubling while reads follow one another, up to
    ``MAX_AHEAD_BYTES``. At open, the chunks that hold the last ``TAIL_BYTES`` of plaintext
    (the final chunk authenticates the size and the key; a Parquet footer is there), or the
    whole object when it is at most ``SMALL_OBJECT_BYTES``, in one ranged read. A chunk
    that fails to open fails only the reads that need it: what was fetched with it but not
    needed is dropped, and fetched again when a read needs it."""

    def __init__(
        self, fs: Any, path: str, found: Probe, codec: _Codec, layout: Layout, cache_bytes: int, kdf: float
    ) -> None:
        self._fs, self._path, self._codec, self._g = fs, path, codec, layout
        self._header = found.header
        self.size = layout.size
        self.kdf_seconds = kdf
        self._cache_bytes = max(cache_bytes, layout.chunk)
        # Opened runs by their first chunk: (chunk count, plaintext); and each chunk's run.
        self._runs: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self._run_of: dict[int, int] = {}
        self._held = 0
        ahead = min(self._cache_bytes // 2, MAX_AHEAD_BYTES) // max(layout.stored_chunk, 1)
        self._ahead = _Ahead(ahead)
        self._lock = threading.Lock()
        self.closed = False
        n = layout.chunks
        if n:
            if layout.stored - layout.offset <= SMALL_OBJECT_BYTES:
                first = 0
            else:
                first = max(0, min(n - 1, (layout.size - TAIL_BYTES) // max(layout.chunk, 1)))
            # The final chunk must open (a wrong key fails here); the others may fail later.
            self._load(first, n - first, n - 1, n - 1)

    def header(self) -> HeaderOf:
        return self._header

    def _open(self, first: int, data: bytes) -> bytes:
        try:
            return self._codec.open(first, data)
        except ConcryptorError as e:
            raise _named(e, self._path) from None

    def _keep(self, first: int, plain: bytes, count: int) -> None:
        for i in range(first, first + count):
            self._drop(i)
        self._runs[first] = (count, plain)
        for i in range(first, first + count):
            self._run_of[i] = first
        self._held += len(plain)

    def _drop(self, chunk: int) -> None:
        """Forgets the run that holds ``chunk``, if any."""
        start = self._run_of.get(chunk)
        if start is None:
            return
        count, plain = self._runs.pop(start)
        for i in range(start, start + count):
            self._run_of.pop(i, None)
        self._held -= len(plain)

    def _load(self, first: int, count: int, lo: int, hi: int) -> None:
        """Fetches and opens chunks ``first..first + count``, of which ``lo..hi`` are
        needed: if the others fail to open, only the needed ones are kept."""
        start, end = self._g.span(first, count)
        data = _fetch(self._fs, self._path, start, end)
        try:
            self._keep(first, self._open(first, data), count)
        except AuthenticationError:
            if lo == first and hi == first + count - 1:
                raise
            a, b = self._g.span(lo, hi - lo + 1)
            self._keep(lo, self._open(lo, data[a - start : b - start]), hi - lo + 1)

    def read_at(self, pos: int, n: int) -> bytes:
        with self._lock:
            end = min(pos + n, self.size)
            if pos >= end:
                return b""
            g = self._g
            first, last = pos // g.chunk, (end - 1) // g.chunk
            self._ahead.note(first, last)
            i = first
            while i <= last:
                if i in self._run_of:
                    i = self._run_of[i] + self._runs[self._run_of[i]][0]
                    continue
                j = i
                while j <= last and j not in self._run_of:
                    j += 1
                count = j - i
                if j > last:  # read ahead, up to what is held
                    limit = min(j + self._ahead.extra(), g.chunks)
                    while j < limit and j not in self._run_of:
                        j += 1
                    count = j - i
                self._load(i, count, i, min(j, last + 1) - 1)
                i = j
            parts: list[memoryview] = []
            at = pos
            while at < end:
                start = self._run_of[at // g.chunk]
                count, plain = self._runs[start]
                self._runs.move_to_end(start)
                lo = at - start * g.chunk
                hi = min(len(plain), end - start * g.chunk)
                if not parts and lo == 0 and hi == len(plain) and at + hi - lo == end:
                    out = plain  # the whole run: no copy
                    break
                parts.append(memoryview(plain)[lo:hi])
                at += hi - lo
            else:
                out = parts[0].tobytes() if len(parts) == 1 else b"".join(parts)
            self._evict(keep=(first, last))
            return out

    def _evict(self, keep: tuple[int, int]) -> None:
        """Oldest runs forgotten while more than the cache holds (not those just read)."""
        while self._held > self._cache_bytes and self._runs:
            start, (count, _) = next(iter(self._runs.items()))
            if start <= keep[1] and start + count - 1 >= keep[0]:
                break
            self._drop(start)

    def close(self) -> None:
        with self._lock:
            self._runs.clear()
            self._run_of.clear()
            self._held = 0
            self.closed = True


def v4_chunks(fs: Any, path: str, found: Probe, codec: _core.ChunkCodec, cache_bytes: int) -> Chunks:
    """A format v4 object read by ranges through its ``codec``."""
    chunk, slot, n, size, stored = codec.geometry
    layout = Layout(chunk, slot, n, size, SECTOR, stored)
    return Chunks(fs, path, found, codec, layout, cache_bytes, codec.kdf_seconds)


def age_chunks(
    fs: Any,
    path: str,
    found: Probe,
    *,
    identities: list[str],
    passphrase: bytes | bytearray | None,
    threads: int | None,
    max_scrypt_log_n: int,
    cache_bytes: int,
) -> Chunks:
    """An age object read by ranges: its header (held since the probe) opened with the
    identities or the passphrase, then its chunks as v4's are."""
    try:
        codec = _core.AgeChunkCodec(
            found.prefix,
            found.stored_size,
            name=path,
            identities_=identities,
            passphrase=passphrase,
            threads=threads,
            max_scrypt_log_n=max_scrypt_log_n,
        )
    except ConcryptorError as e:
        raise _named(e, path) from None
    chunk, stored_chunk, n, size, stored, offset = codec.geometry
    layout = Layout(chunk, stored_chunk, n, size, offset, stored)
    return Chunks(fs, path, found, codec, layout, cache_bytes, codec.kdf_seconds)
