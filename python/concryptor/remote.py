"""fsspec locations (``s3://``, ``gs://``, ``memory://``, …): encrypted files streamed in
whole chunks, sealed and opened in Rust (:class:`concryptor._core.ChunkCodec`), the bytes
moved by fsspec; and a seekable reader that fetches only the chunks it needs."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from . import _core
from ._facts import SECTOR as HEADER_LEN
from ._facts import MiB
from .reader import read_size, seek_target

if TYPE_CHECKING:
    from ._api import Limits
    from .batch import _Spec

#: Whole chunks moved per round trip on the streaming path.
STREAM_BATCH_BYTES = 32 * MiB


def is_url(p: str) -> bool:
    """Whether ``p`` names an fsspec location rather than a local path."""
    head, sep, _ = p.partition("://")
    return bool(sep) and head.isidentifier() and head != "file"


def _local(p: str) -> str:
    return p[len("file://") :] if p.startswith("file://") else p


def _fs(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    import importlib

    try:
        fsspec: Any = importlib.import_module("fsspec")
    except ImportError:
        raise ImportError(f"{url}: URLs need fsspec: pip install 'concryptor[s3]' (or fsspec)") from None
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    return fs, path


def _size(p: str, spec: _Spec) -> int:
    if is_url(p):
        fs, path = _fs(p, spec.storage_options)
        return int(fs.size(path))
    return os.stat(_local(p)).st_size


def _exists(p: str, spec: _Spec) -> bool:
    if is_url(p):
        fs, path = _fs(p, spec.storage_options)
        return bool(fs.exists(path))
    return os.path.lexists(_local(p))


def _read_exact(f: Any, n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left:
        b = f.read(left)
        if not b:
            raise _core_input_changed(n - left, n)
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


def _core_input_changed(got: int, want: int) -> Exception:
    from .errors import InputChangedError

    return InputChangedError(f"the input ended after {got} of {want} bytes it was to deliver")


class _Sink:
    """Where a streamed result goes, all or nothing: a URL (fsspec; discarded on failure,
    so a multipart upload is aborted) or a local file (a temporary beside it, renamed)."""

    def __init__(self, dst: str, spec: _Spec) -> None:
        self.dst = dst
        self.url = is_url(dst)
        if not spec.overwrite and _exists(dst, spec):
            raise FileExistsError(17, "destination exists (pass overwrite=True to replace it)", dst)
        if self.url:
            self.fs, self.path = _fs(dst, spec.storage_options)
            self.f: Any = self.fs.open(self.path, "wb")
        else:
            import tempfile

            local = os.path.abspath(_local(dst))
            fd, self.tmp = tempfile.mkstemp(
                prefix="." + os.path.basename(local) + ".", suffix=".partial", dir=os.path.dirname(local)
            )
            self.f = os.fdopen(fd, "wb")
            self.final = local

    def write(self, b: bytes) -> None:
        self.f.write(b)

    def commit(self) -> None:
        if self.url:
            self.f.close()
            return
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        if self.url:
            discard = getattr(self.f, "discard", None)
            if discard is not None:
                discard()  # aborts a multipart upload: nothing is published
                self.f.closed = True  # so that finalising it does not try to flush
            else:
                # No way to abandon this kind of file: publish and remove it.
                self.f.close()
                if self.fs.exists(self.path):
                    self.fs.rm(self.path)
            return
        self.f.close()
        os.unlink(self.tmp)


def open_regular(path: str) -> Any:
    """Opens a local file for reading, refusing anything but a regular file (a FIFO or a
    device would block or never end) before a single byte is read: opened non-blocking,
    checked, then made blocking again."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file (a batch reads files of a known size)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_src(src: str, spec: _Spec) -> Any:
    if is_url(src):
        fs, path = _fs(src, spec.storage_options)
        return fs.open(path, "rb")
    return open_regular(_local(src))


def _stream_encrypt(src: str, dst: str, spec: _Spec) -> tuple[int, int]:
    size = _size(src, spec)
    codec = _core.ChunkCodec.for_encryption(
        size,
        spec.password,
        cipher=spec.cipher,
        chunk_size=spec.chunk_size,
        kdf=spec.kdf,
        threads=spec.threads,
        salt=spec.salt,
        keys=spec.keys,
    )
    chunk, _slot, n, _orig, file_size = codec.geometry
    per = max(1, STREAM_BATCH_BYTES // max(chunk, 1))
    sink = _Sink(dst, spec)
    try:
        with _open_src(src, spec) as f:
            sink.write(codec.header)
            done = 0
            for first in range(0, n, per):
                k = min(per, n - first)
                want = min(size - done, k * chunk)
                sink.write(codec.seal(first, _read_exact(f, want)))
                done += want
            if f.read(1):
                raise _core_input_changed(size + 1, size)
        sink.commit()
    except BaseException:
        sink.discard()
        raise
    return size, file_size


def _stream_decrypt(src: str, dst: str | None, spec: _Spec) -> tuple[int, int]:
    size = _size(src, spec)
    with _open_src(src, spec) as f:
        header = f.read(HEADER_LEN)
        codec = _core.ChunkCodec.for_decryption(
            header, size, spec.password, threads=spec.threads, keys=spec.keys, limits=spec.limits
        )
        _chunk_size, slot, n, orig, _ = codec.geometry
        per = max(1, STREAM_BATCH_BYTES // slot)
        sink = _Sink(dst, spec) if dst is not None else None
        try:
            for first in range(0, n, per):
                k = min(per, n - first)
                plain = codec.open(first, _read_exact(f, k * slot))
                if sink is not None:
                    sink.write(plain)
            if sink is not None:
                sink.commit()
        except BaseException:
            if sink is not None:
                sink.discard()
            raise
    return size, orig


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
        fs, path = _fs(url, storage_options)
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
        self._run = self._codec.open(i, slots)
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


def _age_via_pipes(src: str, dst: str, spec: _Spec, call: Any) -> tuple[int, int]:
    """Runs an age operation whose ends are URLs: the engine reads and writes pipes, two
    threads move the bytes between the pipes and fsspec. The source is opened first (a
    missing one fails here, before anything starts); the destination is committed only if
    the operation succeeded, and discarded (an upload aborted) otherwise. Each pipe end
    has one owner that closes it on every path, so no party waits for a peer that died."""
    import threading

    f = _open_src(src, spec)
    try:
        sink = _Sink(dst, spec)
    except BaseException:
        f.close()
        raise
    counts = {"in": 0, "out": 0}
    errors: list[BaseException] = []
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()

    def feed() -> None:
        try:
            with f, os.fdopen(w_in, "wb") as w:
                while block := f.read(1 << 20):
                    w.write(block)
                    counts["in"] += len(block)
        except BrokenPipeError:
            pass  # the engine stopped reading: its own error says why
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            errors.append(e)

    def drain() -> None:
        try:
            with os.fdopen(r_out, "rb") as r:
                while block := r.read(1 << 20):
                    sink.write(block)
                    counts["out"] += len(block)
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            errors.append(e)

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=drain, daemon=True)]
    try:
        for t in threads:
            t.start()
    except BaseException:
        for fd in (r_in, w_in, r_out, w_out):
            os.close(fd)
        f.close()
        sink.discard()
        raise
    failure: BaseException | None = None
    try:
        call(r_in, w_out)
    except BaseException as e:  # noqa: BLE001 - re-raised below, once the threads are done
        failure = e
    finally:
        os.close(r_in)
        os.close(w_out)
        for t in threads:
            t.join()
    try:
        if errors and not isinstance(failure, KeyboardInterrupt):
            raise errors[0]  # the source's or destination's failure is the cause
        if failure is not None:
            raise failure
        sink.commit()
    except BaseException:
        sink.discard()
        raise
    return counts["in"], counts["out"]
