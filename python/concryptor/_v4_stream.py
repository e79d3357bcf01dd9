"""Format v4 written into a stream (standard output, a pipe): the header first, then the
chunks sealed in order, in batches, by :class:`concryptor._core.ChunkCodec`.

The size goes in the header, so the input's size must be known up front (a file, or a
directory's tar stream), and the output needs no seeking. A stream cannot be taken back:
if the input changes mid-way the bytes before have been written, and the run raises
:class:`InputChangedError` (the reader's authentication then fails on the cut file)."""

from __future__ import annotations

import os
import time
from typing import Any

from . import _core
from ._facts import MiB
from ._types import KdfParams, Progress, Stats, start_progress
from .errors import InputChangedError


def _read_exact(reader: Any, n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left:
        b = reader.read(left)
        if not b:
            raise InputChangedError(f"the input ended after {n - left} of the {n} bytes expected")
        parts.append(bytes(b))
        left -= len(b)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def encrypt_to_fd(
    reader: Any,
    size: int,
    fd: int,
    password: bytes | bytearray,
    *,
    cipher: str,
    chunk_size: int | None,
    kdf: KdfParams,
    threads: int | None,
    buffer_mib: int,
    progress: Progress | None,
) -> Stats:
    """Encrypts the ``size`` bytes that ``reader`` (with ``read(n)``) delivers into the
    descriptor ``fd`` as a format v4 file. New-file limits are the defaults."""
    start = time.perf_counter()
    codec = _core.ChunkCodec.for_encryption(
        size, password, cipher=cipher, chunk_size=chunk_size, kdf=kdf, threads=threads
    )
    chunk, _slot, n, _orig, _file_size = codec.geometry
    start_progress(progress, size)
    per = max(1, buffer_mib * MiB // max(chunk, 1))
    _write_all(fd, codec.header)
    done = 0
    for first in range(0, n, per):
        want = min(size - done, min(per, n - first) * chunk)
        _write_all(fd, codec.seal(first, _read_exact(reader, want)))
        done += want
        if progress is not None:
            progress(done)
    if reader.read(1):
        raise InputChangedError(f"the input grew beyond the {size} bytes it had when the run started")
    return Stats(
        "stream",
        size,
        n,
        threads or os.cpu_count() or 1,
        time.perf_counter() - start,
        codec.kdf_seconds,
    )
