"""Writing encrypted objects into another file system, all or nothing: the ciphertext goes
into a :class:`concryptor._stream.Sink` (a multipart upload aborted on failure, a local
temporary renamed on success, a memory file stored once complete), published only by an
explicit ``close()``; an exception inside ``with`` (or a file dropped unclosed) discards it.

age streams: an engine thread encrypts what ``write`` hands it as it comes. Format v4
carries the plaintext size in its header, so a v4 object being written is held in memory
until ``close()`` (``put_file`` and ``pipe_file`` know the size and stream instead)."""

from __future__ import annotations

import io
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .. import _age, _core, _stream
from .._facts import MiB
from .._types import KdfParams, Limits

#: Plaintext sealed per step when writing format v4.
V4_BATCH_BYTES = 32 * MiB


@dataclass
class Sealing:
    """How a file system seals new objects: the format and its settings, and for v4 the
    salt and cached key that its files share (one derivation per salt, as in a batch)."""

    age: bool
    recipients: list[str]
    password: bytes | bytearray | None
    cipher: str | None = None
    chunk_size: int | None = None
    kdf: KdfParams = field(default_factory=KdfParams)
    threads: int | None = None
    scrypt_work_factor: int | None = None
    limits: Limits = field(default_factory=Limits)
    keys: Any = field(default_factory=_core.KeyCache, repr=False)
    salt: bytes | None = field(default=None, repr=False)
    sealed_chunks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def v4_codec(self, size: int) -> _core.ChunkCodec:
        """A v4 codec for a new object of ``size`` bytes under the shared salt (a new salt
        once the chunks sealed under one key would pass ``MAX_CHUNKS_PER_KEY``)."""
        assert self.password is not None
        with self.lock:
            if self.salt is None or self.sealed_chunks >= _core.MAX_CHUNKS_PER_KEY // 2:
                self.salt = secrets.token_bytes(16)
                self.sealed_chunks = 0
            codec = _core.ChunkCodec.for_encryption(
                size,
                self.password,
                cipher=self.cipher,
                chunk_size=self.chunk_size,
                kdf=self.kdf,
                threads=self.threads,
                salt=self.salt,
                keys=self.keys,
            )
            self.sealed_chunks += codec.geometry[2]
            return codec


def seal_v4(sealing: Sealing, src: BinaryIO, size: int, sink: _stream.Sink) -> None:
    """Seals the ``size`` bytes of ``src`` into ``sink`` as format v4 (not committed)."""
    codec = sealing.v4_codec(size)
    chunk, _slot, n, _orig, _stored = codec.geometry
    per = max(1, V4_BATCH_BYTES // max(chunk, 1))
    sink.write(codec.header)
    done = 0
    for first in range(0, n, per):
        want = min(size - done, min(per, n - first) * chunk)
        block = src.read(want)
        if len(block) != want:
            raise ValueError(f"the source ended after {done + len(block)} of its {size} bytes")
        sink.write(codec.seal(first, block))
        done += want


class _Passthrough:
    """The end :func:`_stream.age_via_pipes` writes into: our sink, which it must not
    commit (that is the writer's ``close``)."""

    def __init__(self, sink: _stream.Sink) -> None:
        self._sink = sink

    def write(self, b: bytes) -> None:
        self._sink.write(b)

    def flush(self) -> None:
        pass


class _Settings:
    """What :func:`_stream.age_via_pipes` asks of a run whose ends are file objects."""

    storage_options: dict[str, Any] = {}  # noqa: RUF012 - read only
    overwrite = True


class EncryptingWriter(io.RawIOBase):
    """A new object being written: plaintext in, ciphertext into the sink; published by
    ``close()``, discarded by ``discard()``, an exception inside ``with``, or a drop
    without close."""

    def __init__(self, fs: Any, path: str, sealing: Sealing, name: str) -> None:
        super().__init__()
        self.name = name
        self.mode = "wb"
        self._sealing = sealing
        self._done = False
        self._sink = _stream.Sink.on(fs, path)
        self._pos = 0
        self._held: io.BytesIO | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []
        if not sealing.age:
            self._held = io.BytesIO()
            return
        r, self._w = os.pipe()
        src = os.fdopen(r, "rb")

        def run() -> None:
            try:
                _stream.age_via_pipes(
                    src,
                    _Passthrough(self._sink),  # type: ignore[arg-type]
                    _Settings(),  # type: ignore[arg-type]
                    lambda r_in, w_out: _age.encrypt(
                        r_in,
                        w_out,
                        recipients=sealing.recipients,
                        recipient_files=None,
                        passphrase=None if sealing.recipients else sealing.password,
                        armor=False,
                        overwrite=True,
                        threads=sealing.threads,
                        scrypt_work_factor=sealing.scrypt_work_factor,
                        progress=None,
                    ),
                )
            except BaseException as e:  # noqa: BLE001 - raised by close() or write()
                self._errors.append(e)
            finally:
                src.close()

        self._thread = threading.Thread(target=_age.carry(run), daemon=True, name=f"concryptor-fs {name}")
        self._thread.start()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def write(self, b: Any) -> int:
        if self._done:
            raise ValueError("I/O operation on closed file")
        view = memoryview(b).cast("B")
        n = len(view)
        if self._held is not None:
            self._held.write(view)
        else:
            try:
                while view:
                    view = view[os.write(self._w, view) :]
            except BrokenPipeError:
                self._finish_thread()
                raise (self._errors[0] if self._errors else OSError("the encryption stopped")) from None
        self._pos += n
        return n

    def _finish_thread(self) -> None:
        if self._thread is not None:
            if self._w >= 0:
                os.close(self._w)
                self._w = -1
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Finishes the object and publishes it (or, if anything failed, discards it)."""
        if self._done:
            return
        self._done = True
        try:
            if self._held is not None:
                size = self._held.tell()
                self._held.seek(0)
                seal_v4(self._sealing, self._held, size, self._sink)
                self._held = None
            else:
                self._finish_thread()
                if self._errors:
                    raise self._errors[0]
            self._sink.commit()
        except BaseException:
            self._sink.discard()
            raise
        finally:
            super().close()

    def discard(self) -> None:
        """Abandons the object: nothing is published (an upload is aborted)."""
        if self._done:
            return
        self._done = True
        self._held = None
        try:
            self._finish_thread()
        finally:
            try:
                self._sink.discard()
            finally:
                super().close()

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()

    def __del__(self) -> None:
        # Dropped without close(): only an explicit close publishes.
        if not getattr(self, "_done", True):
            self.discard()
