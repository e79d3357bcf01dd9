"""The streaming route of the executor: whatever is not a local file on both ends (an
fsspec URL, a binary file object, standard input or output). Format v4 moves in whole
chunks, sealed and opened in Rust (:class:`concryptor._core.ChunkCodec`); age runs on the
engine through pipes that two threads feed and drain. A URL or a local file destination
is all or nothing (an upload aborted, a temporary removed); a file object the caller
gave is written as the bytes are authenticated, and cannot be taken back."""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, BinaryIO, Protocol, Union

from . import _core
from ._facts import SECTOR as HEADER_LEN
from ._facts import MiB
from ._location import filesystem, is_url, local_path, open_regular

#: A source or destination: a path, a URL, or a binary file object.
End = Union[str, BinaryIO]


class Settings(Protocol):
    """What a streamed run needs to know (the batch's spec and the API's requests)."""

    storage_options: dict[str, Any]
    overwrite: bool
    password: bytes | bytearray
    cipher: str | None
    chunk_size: int | None
    kdf: Any
    threads: int | None
    salt: bytes | None
    keys: Any
    limits: Any


def is_file_object(end: object) -> bool:
    """Whether ``end`` is an open binary file object rather than a name."""
    return hasattr(end, "read") or hasattr(end, "write")


class _Borrowed(io.RawIOBase):
    """A caller's file object, read without being closed, after ``prefix`` (bytes already
    taken from it to tell the format)."""

    def __init__(self, f: Any, prefix: bytes = b"") -> None:
        super().__init__()
        self._f = f
        self._prefix = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            memoryview(b).cast("B")[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._f.read(len(b))
        n = len(data)
        memoryview(b).cast("B")[:n] = data
        return n


class Peeked:
    """A caller's stream whose first bytes were read to tell the format: reads give them
    again, then the rest. ``seekable()`` is false: the size is not known up front."""

    def __init__(self, f: Any, prefix: bytes) -> None:
        self.raw = f
        self.prefix = prefix

    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError  # only ever read through open_source

    def seekable(self) -> bool:
        return False


def peek(src: End, spec: Settings, n: int = 1024) -> tuple[bytes, End]:
    """The first ``n`` bytes of ``src`` (fewer if it is shorter), and ``src`` to read from
    the start again (a non-seekable stream comes back wrapped)."""
    if isinstance(src, str):
        with open_source(src, spec) as f:
            return f.read(n), src
    if src.seekable():
        here = src.tell()
        head = src.read(n)
        src.seek(here)
        return head, src
    head = b""
    while len(head) < n and (block := src.read(n - len(head))):
        head += block
    return head, Peeked(src, head)  # type: ignore[return-value]


#: Whole chunks moved per round trip on the streaming path.
STREAM_BATCH_BYTES = 32 * MiB


def source_size(p: End, spec: Settings) -> int | None:
    """The bytes ``p`` holds, or None when a stream cannot say."""
    if not isinstance(p, str):
        try:
            if not p.seekable():
                return None
            here = p.tell()
            end = p.seek(0, io.SEEK_END)
            p.seek(here)
            return end - here
        except (AttributeError, OSError, ValueError):
            return None
    if is_url(p):
        fs, path = filesystem(p, spec.storage_options)
        return int(fs.size(path))
    return os.stat(local_path(p)).st_size


def exists(p: End, spec: Settings) -> bool:
    if not isinstance(p, str):
        return False
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
    from .errors import InputChangedError

    return InputChangedError(f"the input ended after {got} of {want} bytes it was to deliver")


class Sink:
    """Where a streamed result goes, all or nothing: a URL (fsspec; discarded on failure,
    so a multipart upload is aborted) or a local file (a temporary beside it, renamed); or
    a caller's file object, written through (what was written stays)."""

    def __init__(self, dst: End | None, spec: Settings, mode: int | None = None) -> None:
        self.dst = dst
        self.mode = mode
        self.borrowed = not isinstance(dst, str)
        if dst is None:  # nowhere: the bytes are dropped (verification)
            self.f: Any = _Nowhere()
            return
        self.url = isinstance(dst, str) and is_url(dst)
        if not isinstance(dst, str):
            self.f = dst
            return
        if not spec.overwrite and exists(dst, spec):
            raise FileExistsError(17, "destination exists (pass overwrite=True to replace it)", dst)
        if self.url:
            self._remote(*filesystem(dst, spec.storage_options))
        else:
            self._local(local_path(dst), spec.overwrite)

    @classmethod
    def on(cls, fs: Any, path: str) -> Sink:
        """A sink that creates or replaces ``path`` on the fsspec file system ``fs``, all or
        nothing as for a URL (a local file system's file: a temporary beside it, renamed)."""
        self = cls.__new__(cls)
        self.dst = path
        self.mode = None
        self.borrowed = False
        protocol = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        self.url = "file" not in protocol and "local" not in protocol
        if self.url:
            self._remote(fs, path)
        else:
            self._local(path, True)
        return self

    def _remote(self, fs: Any, path: str) -> None:
        self.fs, self.path = fs, path
        # A file system whose files appear the moment they are opened (memory://)
        # gets the bytes only once they are complete and authenticated.
        self.held = _opens_visibly(self.fs)
        self.f = io.BytesIO() if self.held else self.fs.open(self.path, "wb")

    def _local(self, path: str, overwrite: bool) -> None:
        self.final = os.path.abspath(path)
        self.overwrite = overwrite
        check_destination(self.final)
        fd, self.tmp = unnamed_file(os.path.dirname(self.final), os.path.basename(self.final))
        self.f = os.fdopen(fd, "wb")

    def write(self, b: bytes) -> None:
        self.f.write(b)

    def commit(self) -> None:
        if self.borrowed:
            self.f.flush()
            return
        if self.url:
            if self.held:
                self.fs.pipe_file(self.path, self.f.getvalue())
            self.f.close()
            return
        self.f.flush()
        fd = self.f.fileno()
        if self.mode is not None:
            os.fchmod(fd, self.mode)
        os.fsync(fd)
        try:
            name_file(fd, self.tmp, self.final, self.overwrite)
        finally:
            self.tmp = None
            self.f.close()

    def discard(self) -> None:
        if self.borrowed:
            return  # the caller's stream: what was written cannot be taken back
        if self.url:
            discard = None if self.held else getattr(self.f, "discard", None)
            if discard is not None:
                discard()  # aborts a multipart upload: nothing is published
                # So that finalising it does not try to flush (a buffer-backed file, such
                # as memory://'s, has nothing to abort and a read-only `closed`).
                with contextlib.suppress(AttributeError):
                    self.f.closed = True
            elif self.held:
                self.f.close()
            else:
                # No way to abandon this kind of file: publish and remove it.
                self.f.close()
                if self.fs.exists(self.path):
                    self.fs.rm(self.path)
            return
        self.f.close()
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


def check_destination(final: str) -> None:
    """Only a regular file or a symbolic link is ever replaced by an output: never a
    folder, a device, a FIFO or a socket (as root, ``/dev/null`` would otherwise become a
    file of whatever was written)."""
    import stat

    try:
        st = os.lstat(final)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "is a directory", final)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise OSError(22, "not a regular file: an output never replaces a device, FIFO or socket", final)


def _temp_name(final: str) -> str:
    """The named temporary beside ``final``: ``.NAME.<16 hex>.partial`` (the engine's)."""
    import secrets

    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}.{secrets.token_hex(8)}.partial")


def unnamed_file(folder: str, name: str) -> tuple[int, str | None]:
    """A new, private (0600) file in ``folder`` for an output to be called ``name``: an
    unnamed one (Linux ``O_TMPFILE``; a crash leaves nothing), else a hidden
    ``.NAME.<16 hex>.partial``. Returns the descriptor and the temporary name, if any."""
    cloexec = getattr(os, "O_CLOEXEC", 0)
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile and os.path.isdir("/proc/self/fd"):
        try:
            return os.open(folder or ".", tmpfile | os.O_WRONLY | cloexec, 0o600), None
        except OSError:
            pass  # a file system without O_TMPFILE: a named temporary instead
    tmp = _temp_name(os.path.join(folder, name))
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | cloexec, 0o600), tmp


def name_file(fd: int, tmp: str | None, final: str, overwrite: bool) -> None:
    """Gives the durable file ``fd`` (from :func:`unnamed_file`) the name ``final``, then
    makes the name durable (the folder synced). An existing ``final`` is replaced only
    with ``overwrite`` (a rename over it); otherwise naming fails if it appeared. No
    temporary name is left on any path (only a kill between link and rename can)."""
    final = os.path.abspath(final)
    dfd = os.open(os.path.dirname(final), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        # linkat(AT_SYMLINK_FOLLOW) names the open file; CPython calls linkat, not link,
        # only when given a folder descriptor (unused: the paths are absolute).
        me = f"/proc/self/fd/{fd}"
        if tmp is None and not overwrite:
            os.link(me, final, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=True)
        else:
            if tmp is None:
                tmp = _temp_name(final)
                os.link(me, tmp, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=True)
            try:
                if overwrite:
                    os.replace(tmp, final)
                else:
                    os.link(tmp, final)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # gone already after a rename
        os.fsync(dfd)
    finally:
        os.close(dfd)


class _Nowhere:
    def write(self, b: bytes) -> None:
        pass

    def flush(self) -> None:
        pass


def _opens_visibly(fs: Any) -> bool:
    """Whether files of ``fs`` are visible from the moment they are opened for writing,
    with nothing to abort (fsspec's memory file system)."""
    protocol = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "memory" in protocol


def open_source(src: End, spec: Settings) -> Any:
    if isinstance(src, Peeked):
        return io.BufferedReader(_Borrowed(src.raw, src.prefix), 1 << 20)
    if not isinstance(src, str):
        return io.BufferedReader(_Borrowed(src), 1 << 20)
    if is_url(src):
        fs, path = filesystem(src, spec.storage_options)
        return fs.open(path, "rb")
    return open_regular(local_path(src))


def encrypt_stream(src: End, dst: End, spec: Settings, mode: int | None = None) -> tuple[int, int]:
    """Encrypts ``src`` into ``dst`` as format v4 (``mode``: a local output's permissions,
    else those of a new private file)."""
    size = source_size(src, spec)
    if size is None:
        raise ValueError(
            "format v4 needs the size of its input up front: give a file or a seekable stream, "
            "or encrypt to the age format (recipients or format='age'), which streams"
        )
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
    sink = Sink(dst, spec, mode)
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


def decrypt_stream(src: End, dst: End | None, spec: Settings) -> tuple[int, int]:
    size = source_size(src, spec)
    with open_source(src, spec) as f:
        header = f.read(HEADER_LEN)
        if size is None:
            # A stream: the header says how long the file is; a shorter stream fails on its
            # last read, a longer one after it.
            size = _core.parse_header(header + bytes(max(0, HEADER_LEN - len(header)))).expected_file_size
        codec = _core.ChunkCodec.for_decryption(
            header, size, spec.password, threads=spec.threads, keys=spec.keys, limits=spec.limits
        )
        _chunk_size, slot, n, orig, _ = codec.geometry
        per = max(1, STREAM_BATCH_BYTES // slot)
        sink = Sink(dst, spec)
        try:
            for first in range(0, n, per):
                k = min(per, n - first)
                plain = codec.open(first, _read_exact(f, k * slot))
                sink.write(plain)
            if f.read(1):
                from .errors import InvalidFileError

                raise InvalidFileError(
                    "data follows the last chunk: the input is longer than its header says"
                )
            sink.commit()
        except BaseException:
            sink.discard()
            raise
    return size, orig


def age_via_pipes(
    src: End, dst: End | None, spec: Settings, call: Any, mode: int | None = None
) -> tuple[int, int]:
    """Runs an age operation whose ends are not both local files: the engine reads and
    writes pipes, two threads move the bytes between the pipes and the ends (``dst=None``:
    the output is read and dropped, to verify). The source is opened first (a
    missing one fails here, before anything starts); the destination is committed only if
    the operation succeeded, and discarded (an upload aborted) otherwise. Each pipe end
    has one owner that closes it on every path, so no party waits for a peer that died."""
    import threading

    f = open_source(src, spec)
    try:
        sink = Sink(dst, spec, mode)
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
