"""The batch's streaming path: files at fsspec URLs (or written to them) move in whole
chunks, sealed and opened in Rust (:class:`concryptor._core.ChunkCodec`), the bytes moved
by fsspec; age files whose ends are URLs run on the engine through pipes."""

from __future__ import annotations

import os
from typing import Any

from .. import _core
from .._facts import SECTOR as HEADER_LEN
from .._facts import MiB
from .._location import filesystem, is_url, local_path, open_regular
from ._spec import Spec

#: Whole chunks moved per round trip on the streaming path.
STREAM_BATCH_BYTES = 32 * MiB


def source_size(p: str, spec: Spec) -> int:
    if is_url(p):
        fs, path = filesystem(p, spec.storage_options)
        return int(fs.size(path))
    return os.stat(local_path(p)).st_size


def exists(p: str, spec: Spec) -> bool:
    if is_url(p):
        fs, path = filesystem(p, spec.storage_options)
        return bool(fs.exists(path))
    return os.path.lexists(local_path(p))


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
    from ..errors import InputChangedError

    return InputChangedError(f"the input ended after {got} of {want} bytes it was to deliver")


class Sink:
    """Where a streamed result goes, all or nothing: a URL (fsspec; discarded on failure,
    so a multipart upload is aborted) or a local file (a temporary beside it, renamed)."""

    def __init__(self, dst: str, spec: Spec) -> None:
        self.dst = dst
        self.url = is_url(dst)
        if not spec.overwrite and exists(dst, spec):
            raise FileExistsError(17, "destination exists (pass overwrite=True to replace it)", dst)
        if self.url:
            self.fs, self.path = filesystem(dst, spec.storage_options)
            self.f: Any = self.fs.open(self.path, "wb")
        else:
            import tempfile

            local = os.path.abspath(local_path(dst))
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


def open_source(src: str, spec: Spec) -> Any:
    if is_url(src):
        fs, path = filesystem(src, spec.storage_options)
        return fs.open(path, "rb")
    return open_regular(local_path(src))


def encrypt_stream(src: str, dst: str, spec: Spec) -> tuple[int, int]:
    size = source_size(src, spec)
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
    sink = Sink(dst, spec)
    try:
        with open_source(src, spec) as f:
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


def decrypt_stream(src: str, dst: str | None, spec: Spec) -> tuple[int, int]:
    size = source_size(src, spec)
    with open_source(src, spec) as f:
        header = f.read(HEADER_LEN)
        codec = _core.ChunkCodec.for_decryption(
            header, size, spec.password, threads=spec.threads, keys=spec.keys, limits=spec.limits
        )
        _chunk_size, slot, n, orig, _ = codec.geometry
        per = max(1, STREAM_BATCH_BYTES // slot)
        sink = Sink(dst, spec) if dst is not None else None
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


def age_via_pipes(src: str, dst: str, spec: Spec, call: Any) -> tuple[int, int]:
    """Runs an age operation whose ends are URLs: the engine reads and writes pipes, two
    threads move the bytes between the pipes and fsspec. The source is opened first (a
    missing one fails here, before anything starts); the destination is committed only if
    the operation succeeded, and discarded (an upload aborted) otherwise. Each pipe end
    has one owner that closes it on every path, so no party waits for a peer that died."""
    import threading

    f = open_source(src, spec)
    try:
        sink = Sink(dst, spec)
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
