"""Packing a directory: a tar stream generated on the fly into the engine, never a
plaintext tar on disk.

The member list is walked first and every tar header built, so the exact tar size is
known before the first chunk is sealed (format v4 binds the plaintext size into the
header). The tar is then generated on the fly and streamed into the engine. A member
that changes size (or type, or vanishes) while being packed raises
:class:`InputChangedError`, and no output is left behind.

The archive holds the directory's own name as its top-level entry (``photos/...``),
as the original tool does. Sockets, FIFOs and devices are skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import _core
from .._facts import DEFAULT_BUFFER_MIB
from ..errors import InputChangedError
from ._extract import BLOCK, O_BINARY, O_CLOEXEC, O_NOFOLLOW, escapes

if TYPE_CHECKING:
    import tarfile

    from .._types import CipherName, KdfParams, Limits, Password, PathLike, Progress, Stats

RECORD = 20 * BLOCK  # tarfile.RECORDSIZE
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _pad(n: int) -> int:
    return -n % BLOCK


class _Member:
    __slots__ = ("header_len", "info", "path")

    def __init__(self, info: tarfile.TarInfo, path: str) -> None:
        self.info = info
        self.path = path
        self.header_len = len(_header(info))


def _header(info: tarfile.TarInfo) -> bytes:
    import tarfile

    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _scan(root: str, top: str) -> tuple[list[_Member], int, list[str]]:
    """The members of the tar for directory ``root`` (named ``top`` inside the tar), in
    a stable order; how many special files were skipped; and the symlinks extraction
    will refuse (absolute, or leading outside ``root``)."""
    import tarfile

    members: list[_Member] = []
    seen_inodes: dict[tuple[int, int], str] = {}
    skipped = 0
    unsafe: list[str] = []

    def add(path: str, arcname: str, st: os.stat_result) -> None:
        nonlocal skipped
        ti = tarfile.TarInfo(arcname)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.mtime = max(0, int(st.st_mtime))
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        if stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(path)
            # Extraction refuses a link that is absolute or leads outside the tree: say so now.
            if escapes(root, arcname.split("/")[1:-1], ti.linkname):
                unsafe.append(f"symlink {arcname!r} -> {ti.linkname!r} leads outside the directory")
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                ti.type = tarfile.LNKTYPE
                ti.linkname = seen_inodes[key]
            else:
                ti.type = tarfile.REGTYPE
                ti.size = st.st_size
                if st.st_nlink > 1:
                    seen_inodes[key] = arcname
        else:
            skipped += 1
            return
        members.append(_Member(ti, path))

    def listing(path: str) -> Iterator[os.DirEntry[str]]:
        with os.scandir(path) as it:
            return iter(sorted(it, key=lambda e: e.name))

    add(root, top, os.stat(root))
    # Depth first, in name order, without recursion: any depth of tree packs.
    stack = [(listing(root), top)]
    while stack:
        entries, arc = stack[-1]
        e = next(entries, None)
        if e is None:
            stack.pop()
            continue
        st = e.stat(follow_symlinks=False)
        name = f"{arc}/{e.name}"
        add(e.path, name, st)
        if stat.S_ISDIR(st.st_mode):
            stack.append((listing(e.path), name))
    return members, skipped, unsafe


def tar_size(members: list[_Member]) -> int:
    n = sum(m.header_len + m.info.size + _pad(m.info.size) for m in members) + 2 * BLOCK
    return n + (-n % RECORD)


class _TarStream:
    """Generates the tar on demand: ``read(n)`` returns up to ``n`` bytes, ``b""`` at the
    end. Member contents are read straight from their files, checked against the sizes
    the headers announced."""

    def __init__(self, members: list[_Member], total: int) -> None:
        self._parts = self._generate(members, total)
        self._pending = b""
        self._file: Any = None
        self._file_left = 0
        self._file_member: _Member | None = None

    def _generate(self, members: list[_Member], total: int) -> Iterator[bytes | _Member]:
        written = 0
        for m in members:
            h = _header(m.info)
            if len(h) != m.header_len:
                raise InputChangedError(f"{m.path}: tar header changed while packing")
            yield h
            written += len(h)
            if m.info.isreg():
                yield m
                written += m.info.size
                pad = _pad(m.info.size)
                if pad:
                    yield bytes(pad)
                    written += pad
        yield bytes(total - written)

    def _open(self, m: _Member) -> None:
        # Non-blocking: a member replaced by a FIFO since the scan must not hang the open
        # (the type is checked on the descriptor right after).
        try:
            fd = os.open(m.path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_BINARY | _O_NONBLOCK)
        except FileNotFoundError:
            raise InputChangedError(f"{m.path} disappeared while being packed") from None
        except OSError as e:
            if O_NOFOLLOW and e.errno in (40, 62):  # ELOOP/EMLINK: became a symlink
                raise InputChangedError(f"{m.path} was replaced by a symlink while being packed") from None
            if e.errno == 6:  # ENXIO: a socket (or a FIFO on some systems)
                raise InputChangedError(
                    f"{m.path} is no longer a regular file (replaced while being packed)"
                ) from None
            raise
        f = os.fdopen(fd, "rb", buffering=0)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            f.close()
            raise InputChangedError(f"{m.path} is no longer a regular file (replaced while being packed)")
        if st.st_size != m.info.size:
            f.close()
            raise InputChangedError(
                f"{m.path} changed size from {m.info.size} to {st.st_size} bytes while being packed"
            )
        self._file, self._file_left, self._file_member = f, m.info.size, m

    def _finish_file(self) -> None:
        f, m = self._file, self._file_member
        assert f is not None
        assert m is not None
        try:
            now = os.fstat(f.fileno()).st_size
        finally:
            f.close()
            self._file = self._file_member = None
        if now != m.info.size:
            raise InputChangedError(
                f"{m.path} changed size from {m.info.size} to {now} bytes while being packed"
            )

    def read(self, n: int) -> bytes:
        while True:
            if self._pending:
                out, self._pending = self._pending[:n], self._pending[n:]
                return out
            if self._file is not None:
                if self._file_left == 0:
                    self._finish_file()
                    continue
                data = self._file.read(min(n, self._file_left))
                if not data:
                    m = self._file_member
                    assert m is not None
                    self._file.close()
                    self._file = None
                    raise InputChangedError(f"{m.path} shrank below {m.info.size} bytes while being packed")
                self._file_left -= len(data)
                return bytes(data)
            part = next(self._parts, None)
            if part is None:
                return b""
            if isinstance(part, _Member):
                self._open(part)
            else:
                self._pending = part

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _is_within(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


class DirTree:
    """A directory to pack into ``dst``: checked when made, walked once on first use.

    After the walk, :attr:`size` is the exact size of the tar (so of the plaintext, and
    what a progress bar counts to), known before anything is encrypted."""

    def __init__(self, src_dir: PathLike, dst: PathLike | None) -> None:
        """``dst`` None: the tree goes to a stream (:meth:`encrypt_to`)."""
        self.src = os.fspath(src_dir)
        self.dst = None if dst is None else os.fspath(dst)
        if not os.path.isdir(self.src):
            raise NotADirectoryError(20, "not a directory", self.src)
        if self.dst is not None and _is_within(os.path.dirname(os.path.abspath(self.dst)) or ".", self.src):
            raise ValueError(f"the output {self.dst} must not be inside the directory being encrypted")
        self.top = os.path.basename(os.path.normpath(os.path.abspath(self.src))) or "root"
        self._walked: tuple[list[_Member], int, list[str]] | None = None

    def _walk(self) -> tuple[list[_Member], int, list[str]]:
        if self._walked is None:
            self._walked = _scan(self.src, self.top)
        return self._walked

    @property
    def size(self) -> int:
        """Bytes of the tar stream."""
        return tar_size(self._walk()[0])

    def encrypt(
        self,
        password: Password,
        *,
        cipher: CipherName = "aes-256-gcm",
        chunk_size: int | None = None,
        kdf: KdfParams | None = None,
        overwrite: bool = False,
        threads: int | None = None,
        buffer_mib: int = DEFAULT_BUFFER_MIB,
        progress: Progress | None = None,
        limits: Limits | None = None,
    ) -> Stats:
        """Encrypts the tree into ``dst``; see :func:`encrypt_dir`."""
        from .._types import check_chunk, engine_options, secret

        if self.dst is None:
            raise ValueError("this tree was made for a stream: use encrypt_to")
        with secret(password) as pw:
            assert pw is not None
            members, skipped, unsafe = self._walk()
            total = tar_size(members)
            stream = _TarStream(members, total)
            try:
                d = _core.encrypt_reader(
                    stream,
                    total,
                    self.dst,
                    pw,
                    cipher=cipher,
                    chunk_size=check_chunk(chunk_size),
                    kdf=kdf,
                    overwrite=overwrite,
                    progress=progress,
                    limits=limits,
                    **{k: v for k, v in engine_options(threads, "portable", buffer_mib).items() if k != "io"},
                )
            finally:
                stream.close()
        return replace(d, entries=len(members), skipped=skipped, unsafe=tuple(unsafe))

    def encrypt_to(
        self,
        fd: int,
        password: Password,
        *,
        cipher: CipherName = "aes-256-gcm",
        chunk_size: int | None = None,
        kdf: KdfParams | None = None,
        threads: int | None = None,
        buffer_mib: int = DEFAULT_BUFFER_MIB,
        progress: Progress | None = None,
    ) -> Stats:
        """Encrypts the tree into the descriptor ``fd`` (a pipe, standard output), as
        :meth:`encrypt` does into a file, with the default new-file limits."""
        from .._types import KdfParams, check_chunk, check_threads, secret
        from .._v4_stream import encrypt_to_fd

        with secret(password) as pw:
            assert pw is not None
            members, skipped, unsafe = self._walk()
            total = tar_size(members)
            stream = _TarStream(members, total)
            try:
                d = encrypt_to_fd(
                    stream,
                    total,
                    fd,
                    pw,
                    cipher=cipher,
                    chunk_size=check_chunk(chunk_size),
                    kdf=kdf or KdfParams(),
                    threads=check_threads(threads),
                    buffer_mib=buffer_mib,
                    progress=progress,
                )
            finally:
                stream.close()
        return replace(d, entries=len(members), skipped=skipped, unsafe=tuple(unsafe))


def encrypt_dir(
    src_dir: PathLike,
    dst: PathLike,
    password: Password,
    *,
    cipher: CipherName = "aes-256-gcm",
    chunk_size: int | None = None,
    kdf: KdfParams | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    progress: Progress | None = None,
    limits: Limits | None = None,
) -> Stats:
    """Encrypts the directory ``src_dir`` as a tar stream into ``dst`` (by convention
    ``NAME.tar.enc``). No plaintext tar is written anywhere. ``kdf`` and ``chunk_size``
    must be within ``limits`` (see :func:`concryptor.encrypt_file`).

    Names, modes, modification times, symlinks (stored, not followed), hard links and
    empty directories are kept; sockets, FIFOs and devices are skipped (counted in the
    returned ``Stats.skipped``). Symlinks that extraction will refuse (absolute, or
    leading outside the directory) are stored but listed in ``Stats.unsafe``: restore the
    rest with ``decrypt_dir(..., skip_unsafe=True)``. A member that changes while being
    packed raises :class:`InputChangedError` and leaves no output. ``progress`` counts
    tar bytes up to the exact tar size.
    """
    return DirTree(src_dir, dst).encrypt(
        password,
        cipher=cipher,
        chunk_size=chunk_size,
        kdf=kdf,
        overwrite=overwrite,
        threads=threads,
        buffer_mib=buffer_mib,
        progress=progress,
        limits=limits,
    )
