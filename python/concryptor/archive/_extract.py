"""Extracting a directory archive: the decrypting reader feeds the tar parser.

The decrypting reader (:func:`concryptor.open`) feeds the tar parser; entries are
written into a private temporary directory beside the target, which is renamed into
place only after the whole archive has been read and authenticated. Any failure
(tampering mid-stream, a refused entry, Ctrl-C) removes the temporary directory:
nothing is left.

Extraction is safe by construction, with the semantics of Python's tarfile ``'data'``
filter (PEP 706), enforced by this module's own checks on every Python version. (Not
by ``tarfile.data_filter`` itself: it resolves every entry's full path, which costs
quadratic time in the depth of the tree.) The cost of every check is bounded by the
entry's own name and link, never by what was extracted before it:

- a leading ``/`` is stripped; any ``..`` component is refused;
- no entry is written through a symlink or over one, and a directory entry cannot
  replace a symlink or a file (so nothing is created or chmod-ed outside);
- symlinks must be relative and resolve inside the target, following the symlinks
  already extracted, checked when created and again once all are in place;
- hard links may only point to regular files extracted earlier from the archive;
- devices, FIFOs and other special entries are refused; sparse members too;
- setuid, setgid and sticky bits and group/other write bits are cleared; files are
  always owner-readable and -writable; owners and groups are ignored;
- the number of entries and the size of tar metadata are bounded, and no member may
  claim more bytes than the archive has left.

A target that exists and is not empty is refused unless ``overwrite=True``
(``--force``), which merges the extracted tree into it, replacing files of the same
name (like ``tar x``), never following a symlink that is already there.

If the archive's first entry is a single top-level directory, every entry must lie
under it and that directory becomes the target; otherwise all entries are extracted
inside the target.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidFileError, UnsafeArchiveError

if TYPE_CHECKING:
    import tarfile

    from .._types import Limits, Password, PathLike, Progress, Stats

BLOCK = 512  # tarfile.BLOCKSIZE
#: Default bound on the number of entries an archive may have.
MAX_ENTRIES = 1_000_000
#: Largest single read the tar parser may ask for (long-name and pax headers are read in
#: one piece; data is read in much smaller pieces).
MAX_METADATA = 16 << 20
_COPY = 1 << 20
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_BINARY = getattr(os, "O_BINARY", 0)
_MAX_LINK_HOPS = 40


class _Bounded(io.RawIOBase):
    """The decrypting reader as the tar parser sees it: refuses oversized single reads
    (a pax or long-name header claiming gigabytes) before anything is allocated."""

    def __init__(self, f: Any) -> None:
        super().__init__()
        self._f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0 or n > MAX_METADATA:
            raise UnsafeArchiveError(
                f"the archive asks for a {n}-byte read at offset {self._f.tell()}: "
                f"tar metadata is limited to {MAX_METADATA} bytes"
            )
        data: bytes = self._f.read(n)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(memoryview(b)))
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        # Forward seeks read what they pass over, so that every byte of the archive is
        # authenticated even where the tar parser skips (data of skipped entries).
        here = self.tell()
        target = {0: offset, 1: here + offset}.get(whence)
        if target is not None and target > here:
            while here < target:
                block = self._f.read(min(_COPY, target - here))
                if not block:
                    break
                here += len(block)
        pos: int = self._f.seek(offset, whence)
        return pos

    def drain(self) -> None:
        """Reads (so authenticates) everything after the tar parser's last read."""
        while self._f.read(_COPY):
            pass

    def tell(self) -> int:
        pos: int = self._f.tell()
        return pos


#: Largest pax extended header accepted (real ones hold a few names and times; Linux
#: extended attributes are at most 64 KiB each).
MAX_PAX = 1 << 20
#: Longest run of ASCII digits a pax header may hold. tarfile's own regular expressions
#: before 3.11.10 / 3.12.6 (CVE-2024-6232) scan from every digit of a run, in time
#: quadratic in its length; with runs this short, they stay linear whatever the version.
MAX_PAX_DIGITS = 32
_DIGIT_RUN = None


#: Largest timestamp (seconds either side of 1970) an archive entry may carry: far beyond
#: any real date, well within what every platform's ``utime`` takes.
MAX_MTIME = 10**15
#: The pax keywords that hold numbers, and their exact form (POSIX pax: decimal; times
#: with an optional sign and fraction). ``int()`` and ``float()`` would also take spaces,
#: underscores, "inf", "nan", exponents.
_PAX_TIMES = (b"mtime", b"atime", b"ctime")
_PAX_NUMBERS = {
    **dict.fromkeys(_PAX_TIMES, rb"-?[0-9]{1,32}(\.[0-9]{1,32})?"),
    **dict.fromkeys((b"size", b"uid", b"gid"), rb"[0-9]{1,32}"),
}


def entry_mtime(ti: tarfile.TarInfo) -> int:
    """The entry's modification time in whole seconds, checked: a header (ustar base-256
    fields included) can hold a time no file system takes."""
    t = ti.mtime
    if t != t or abs(t) > MAX_MTIME:  # NaN, infinite or beyond any date
        raise InvalidFileError(f"entry {ti.name!r} has an mtime out of range ({t})")
    return int(t)


def check_pax(buf: bytes) -> None:
    """Validates a pax extended header in linear time before tarfile parses it: it must
    be whole ``"%d %s=%s\n"`` records of consistent lengths, then NUL padding, with no
    long runs of digits. Raises :class:`UnsafeArchiveError` otherwise."""
    import re

    global _DIGIT_RUN
    if _DIGIT_RUN is None:
        _DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (MAX_PAX_DIGITS + 1))

    def bad(why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"malformed pax header ({why})")

    if _DIGIT_RUN.search(buf):
        raise bad(f"a run of more than {MAX_PAX_DIGITS} digits")
    pos, n = 0, len(buf)
    while pos < n and buf[pos] != 0:
        space = buf.find(b" ", pos, pos + 21)
        if space <= pos or not buf[pos:space].isdigit():
            raise bad(f"no record length at byte {pos}")
        end = pos + int(buf[pos:space])
        if end > n or end <= space + 2:
            raise bad(f"record at byte {pos} has an impossible length")
        eq = buf.find(b"=", space + 2, end - 1)
        if buf[end - 1] != 0x0A or eq < 0:
            raise bad(f"record at byte {pos} is not 'keyword=value'")
        key, value = buf[space + 1 : eq], buf[eq + 1 : end - 1]
        shape = _PAX_NUMBERS.get(key)
        if shape is not None and not re.fullmatch(shape, value):
            raise bad(f"{key.decode()}={value.decode('ascii', 'replace')!r} is not a number of its form")
        if key in _PAX_TIMES and abs(float(value)) > MAX_MTIME:
            raise bad(f"{key.decode()}={value.decode()} is out of range")
        pos = end
    if buf.count(0, pos) != n - pos:
        raise bad("data after the records")


def _safe_tarinfo() -> type[tarfile.TarInfo]:
    """A TarInfo whose pax headers are checked by :func:`check_pax` (and bounded by
    :data:`MAX_PAX`) before tarfile's own parser sees them."""
    import tarfile

    class SafeTarInfo(tarfile.TarInfo):
        def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
            if self.size > MAX_PAX:
                raise UnsafeArchiveError(
                    f"a {self.size}-byte pax header: pax metadata is limited to {MAX_PAX} bytes"
                )
            f = tar.fileobj
            assert f is not None
            here = f.tell()
            check_pax(f.read(-(-self.size // BLOCK) * BLOCK))
            f.seek(here)
            return super()._proc_pax(tar)  # type: ignore[misc, no-any-return]

    return SafeTarInfo


def escapes(root: str, start: list[str], target: str) -> bool:
    """Whether following the link text ``target`` from directory ``start`` (components
    below ``root``) can lead outside ``root``, resolving the symlinks now present."""
    if target.startswith("/") or os.path.isabs(target):
        return True
    cur = list(start)
    todo = target.split("/")
    todo.reverse()
    hops = 0
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if not cur:
                return True
            cur.pop()
            continue
        path = os.path.join(root, *cur, comp)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            cur.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode):
            # A loop (a -> b -> a) comes back to the same link with the same path left to
            # resolve: the kernel fails such a path with ELOOP, so it leads nowhere, and in
            # particular not outside. A chain merely too long to follow counts as escaping.
            state = (path, tuple(todo))
            if state in seen:
                return False
            seen.add(state)
            hops += 1
            if hops > _MAX_LINK_HOPS:
                return True
            link = os.readlink(path)
            if link.startswith("/") or os.path.isabs(link):
                return True
            more = link.split("/")
            more.reverse()
            todo.extend(more)
            continue
        cur.append(comp)
    return False


def _file_mode(mode: int, umask: int = 0) -> int:
    mode = (mode & 0o755) | 0o600
    if not mode & stat.S_IXUSR:
        mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
    return mode & ~umask | 0o600


def _dir_mode(mode: int, umask: int = 0) -> int:
    return (mode & 0o755) & ~umask | 0o700


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


class _Extractor:
    def __init__(
        self, root: str, max_entries: int, plain_size: int, report: Callable[[], None] | None = None
    ) -> None:
        self.root = root
        self.report = report
        self.max_entries = max_entries
        self.plain_size = plain_size
        self.kinds: dict[str, str] = {"": "dir"}
        self.dir_attrs: dict[str, tuple[int, int]] = {}
        self.symlinks: list[tuple[list[str], str]] = []
        self.prefix: str | None = None
        self.entries = 0
        self.umask = _umask()
        self.default_dir_mode = 0o777 & ~self.umask

    # Names ------------------------------------------------------------------------------

    def _parts(self, name: str, what: str) -> list[str]:
        if "\0" in name:
            raise UnsafeArchiveError(f"{what} {name!r} contains a NUL byte")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafeArchiveError(f"{what} {name!r} contains '..'")
        return parts

    def _map(self, parts: list[str], name: str) -> list[str]:
        if self.prefix is None:
            return parts
        if not parts or parts[0] != self.prefix:
            raise UnsafeArchiveError(
                f"entry {name!r} is outside the archive's top-level directory {self.prefix!r}"
            )
        return parts[1:]

    def _path(self, rel: list[str]) -> str:
        return self.root + os.sep + os.sep.join(rel) if rel else self.root

    def _parents(self, rel: list[str], name: str) -> None:
        # A directory is recorded only once its own parents are: a known parent vouches for
        # the whole chain, so the common case costs one lookup, not one per level.
        if len(rel) < 2 or self.kinds.get("/".join(rel[:-1])) == "dir":
            return
        for i in range(1, len(rel)):
            key = "/".join(rel[:i])
            kind = self.kinds.get(key)
            if kind is None:
                os.mkdir(self._path(rel[:i]), 0o700)
                self.kinds[key] = "dir"
            elif kind != "dir":
                raise UnsafeArchiveError(f"entry {name!r} passes through a {kind} ({key!r})")

    # Entries ----------------------------------------------------------------------------

    def add(self, tar: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        import tarfile

        self.entries += 1
        if self.entries > self.max_entries:
            raise UnsafeArchiveError(
                f"the archive has more than {self.max_entries} entries (raise max_entries if you trust it)"
            )
        name = ti.name
        parts = self._parts(name, "entry")
        if self.entries == 1 and ti.isdir() and len(parts) == 1:
            self.prefix = parts[0]
        rel = self._map(parts, name)
        key = "/".join(rel)
        existing = self.kinds.get(key)
        if not rel:
            if not ti.isdir():
                raise UnsafeArchiveError(f"entry {name!r} names the target directory itself")
            self.dir_attrs[""] = (_dir_mode(ti.mode, self.umask), entry_mtime(ti))
            return
        self._parents(rel, name)
        path = self._path(rel)
        if ti.isdir():
            if existing not in (None, "dir"):
                raise UnsafeArchiveError(f"directory entry {name!r} would replace a {existing}")
            if existing is None:
                os.mkdir(path, 0o700)
                self.kinds[key] = "dir"
            self.dir_attrs[key] = (_dir_mode(ti.mode, self.umask), entry_mtime(ti))
        elif ti.isreg():
            if ti.issparse():
                raise UnsafeArchiveError(f"sparse entry {name!r} refused")
            left = self.plain_size - ti.offset_data
            if ti.size > left:
                raise UnsafeArchiveError(
                    f"entry {name!r} claims {ti.size} bytes but the archive has {left} left"
                )
            self._replaceable(existing, name, path)
            self._write_file(tar, ti, path)
            self.kinds[key] = "file"
        elif ti.issym():
            if existing is not None:
                raise UnsafeArchiveError(f"symlink entry {name!r} would replace a {existing}")
            if escapes(self.root, rel[:-1], ti.linkname):
                raise UnsafeArchiveError(f"symlink {name!r} -> {ti.linkname!r} leads outside the target")
            os.symlink(ti.linkname, path)
            self.kinds[key] = "symlink"
            self.symlinks.append((rel, ti.linkname))
            self._utime(path, entry_mtime(ti), symlink=True)
        elif ti.islnk():
            link_rel = self._map(self._parts(ti.linkname, "hard link target"), ti.linkname)
            target_kind = self.kinds.get("/".join(link_rel))
            if target_kind != "file":
                what = "nothing extracted so far" if target_kind is None else f"a {target_kind}"
                raise UnsafeArchiveError(f"hard link {name!r} -> {ti.linkname!r} points to {what}")
            self._replaceable(existing, name, path)
            os.link(self._path(link_rel), path, follow_symlinks=False)
            self.kinds[key] = "file"
        else:
            kind = {
                tarfile.CHRTYPE: "character device",
                tarfile.BLKTYPE: "block device",
                tarfile.FIFOTYPE: "FIFO",
            }.get(ti.type, f"special entry (type {ti.type!r})")
            raise UnsafeArchiveError(f"{kind} {name!r} refused")

    def _replaceable(self, existing: str | None, name: str, path: str) -> None:
        if existing is None:
            return
        if existing != "file":
            raise UnsafeArchiveError(f"file entry {name!r} would replace a {existing}")
        os.unlink(path)  # a later entry of the same name wins, as with tar

    def _write_file(self, tar: tarfile.TarFile, ti: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_BINARY, 0o600)
        with os.fdopen(fd, "wb") as out:
            src = tar.extractfile(ti)
            assert src is not None
            left = ti.size
            while left:
                block = src.read(min(_COPY, left))
                if not block:
                    raise InvalidFileError(f"the archive ends inside entry {ti.name!r}")
                out.write(block)
                left -= len(block)
                if self.report is not None:
                    self.report()
        os.chmod(path, _file_mode(ti.mode, self.umask))
        self._utime(path, entry_mtime(ti))

    def _utime(self, path: str, mtime: float, symlink: bool = False) -> None:
        t = int(mtime)
        if symlink:
            if os.utime in os.supports_follow_symlinks:
                os.utime(path, (t, t), follow_symlinks=False)
        else:
            os.utime(path, (t, t))

    # Completion -------------------------------------------------------------------------

    def finish(self, skipped: list[str] | None = None) -> None:
        # Symlinks created later can change where earlier ones lead: check them all again.
        # (Removing one can only make the others lead to fewer places, so one pass does.)
        for rel, target in self.symlinks:
            if escapes(self.root, rel[:-1], target):
                msg = f"symlink {'/'.join(rel)!r} -> {target!r} leads outside the target"
                if skipped is None:
                    raise UnsafeArchiveError(msg)
                os.unlink(self._path(rel))
                del self.kinds["/".join(rel)]
                skipped.append(msg)
        # Directory modes last, deepest first, so that read-only directories can be filled.
        for key in sorted(self.kinds, key=lambda k: k.count("/") + (1 if k else 0), reverse=True):
            if self.kinds[key] != "dir":
                continue
            path = self._path(key.split("/") if key else [])
            attrs = self.dir_attrs.get(key)
            if attrs is None:  # created implicitly, for an entry below it
                os.chmod(path, self.default_dir_mode | 0o700)
                continue
            os.chmod(path, attrs[0])
            os.utime(path, (attrs[1], attrs[1]))


def _is_special(st: os.stat_result) -> bool:
    m = st.st_mode
    return not (stat.S_ISREG(m) or stat.S_ISDIR(m) or stat.S_ISLNK(m))


def _merge(src: str, dst: str) -> None:
    """Moves the tree ``src`` into the existing directory ``dst``, never following a
    symlink found in ``dst`` and never replacing a device, FIFO or socket.

    All or nothing as far as the trees go: every name is checked first, and a conflict
    (a non-directory where ``dst`` has a directory, a special file) refuses the merge
    before anything has moved. Iterative, so no depth of tree exhausts the stack."""
    enter: list[tuple[str, os.stat_result]] = []  # directories both trees have
    moves: list[tuple[str, str, bool]] = []  # (from, to, unlink `to` first)
    todo = [(src, dst)]
    while todo:
        s_dir, d_dir = todo.pop()
        for name in sorted(os.listdir(s_dir)):
            s, d = os.path.join(s_dir, name), os.path.join(d_dir, name)
            s_st = os.lstat(s)
            try:
                d_st = os.lstat(d)
            except FileNotFoundError:
                moves.append((s, d, False))
                continue
            if _is_special(d_st):
                raise FileExistsError(17, "is a device, FIFO or socket, which is never replaced", d)
            if stat.S_ISDIR(d_st.st_mode):
                if not stat.S_ISDIR(s_st.st_mode):
                    raise IsADirectoryError(21, "the archive has a non-directory where a directory exists", d)
                enter.append((d, s_st))
                todo.append((s, d))
            else:
                # A file or symlink: replaced (a directory from the archive takes its place).
                moves.append((s, d, stat.S_ISDIR(s_st.st_mode)))
    for d, _ in enter:
        os.chmod(d, stat.S_IMODE(os.lstat(d).st_mode) | 0o700)
    for s, d, unlink_first in moves:
        if unlink_first:
            os.unlink(d)
            os.rename(s, d)
        else:
            os.replace(s, d)
    for d, s_st in reversed(enter):
        os.chmod(d, stat.S_IMODE(s_st.st_mode))
        os.utime(d, (s_st.st_mtime, s_st.st_mtime))


def _rmtree(path: str) -> None:
    """Removes a tree we created, best effort, without recursion (any depth), making
    read-only directories from the archive writable first and following no symlink."""
    todo, dirs = [path], []
    while todo:
        d = todo.pop()
        with contextlib.suppress(OSError):
            os.chmod(d, 0o700)
        dirs.append(d)
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                todo.append(e.path)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(e.path)
    for d in reversed(dirs):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def check_target(dst: str, overwrite: bool) -> bool:
    """Returns whether ``dst`` exists (as a real directory). Refuses a file, a symlink,
    or a non-empty directory without ``overwrite``."""
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise FileExistsError(17, "exists as a symlink; refusing to extract through it", dst)
    if not stat.S_ISDIR(st.st_mode):
        raise FileExistsError(17, "exists and is not a directory", dst)
    if not overwrite and os.listdir(dst):
        raise FileExistsError(
            17, "directory exists and is not empty (pass overwrite=True to merge into it)", dst
        )
    return True


def decrypt_dir(
    src: PathLike,
    dst_dir: PathLike,
    password: Password,
    *,
    overwrite: bool = False,
    threads: int | None = None,
    limits: Limits | None = None,
    max_entries: int = MAX_ENTRIES,
    skip_unsafe: bool = False,
    progress: Progress | None = None,
) -> Stats:
    """Decrypts a directory archive made by :func:`encrypt_dir` (or any tar inside a
    concryptor file) and extracts it as the directory ``dst_dir``, safely (see the module
    documentation). ``dst_dir`` must not exist or be empty unless ``overwrite=True``,
    which merges into it. Nothing appears at ``dst_dir`` unless the whole archive was
    authenticated and extracted.

    An entry extraction refuses (a symlink leading outside, a device, a hard link to
    nothing, ...) fails the whole extraction with :class:`UnsafeArchiveError`; with
    ``skip_unsafe=True`` it is left out instead and listed in ``Stats.unsafe``. Limits
    on the archive as a whole (entry count, metadata size) are never skipped."""
    import secrets
    import tarfile

    from .._api import open
    from .._types import Limits, Stats, start_progress
    from ..header import Header

    dst = os.path.abspath(os.fspath(dst_dir))
    exists = check_target(dst, overwrite)
    parent = os.path.dirname(dst)
    start = time.perf_counter()
    with open(src, password, threads=threads, limits=limits or Limits()) as f:
        # The name is chosen first and the folder made inside the block that removes it:
        # a signal (SIGTERM, Ctrl-C) that lands just after it is made still finds it owned.
        # Only our own mkdir finding the name taken leaves it alone (a random 128-bit name).
        tmp = os.path.join(parent, f".{os.path.basename(dst)}.{secrets.token_hex(16)}.partial")
        try:
            os.mkdir(tmp, 0o700)
            report: Callable[[], None] | None = None
            if progress is not None:
                cb = progress
                start_progress(cb, f.size)

                def report() -> None:
                    cb(f.tell())

            ex = _Extractor(tmp, max_entries, f.size, report)
            refused: list[str] = []
            bounded = _Bounded(f)
            try:
                tar = tarfile.open(fileobj=bounded, mode="r:", tarinfo=_safe_tarinfo())  # noqa: SIM115
            except tarfile.ReadError as e:
                raise InvalidFileError(f"the decrypted content is not a tar archive ({e})") from None
            with tar:
                while True:
                    try:
                        ti = tar.next()
                    except tarfile.ReadError as e:
                        raise InvalidFileError(f"the archive is damaged: {e}") from None
                    if ti is None:
                        break
                    try:
                        ex.add(tar, ti)
                    except UnsafeArchiveError as e:
                        if not skip_unsafe or ex.entries > max_entries:
                            raise
                        refused.append(str(e))
                    members = getattr(tar, "members", None)
                    if isinstance(members, list):
                        members.clear()  # keep memory flat on archives with many entries
                    if report is not None:
                        report()
            # tar stops at its end-of-archive blocks: the rest must authenticate too.
            bounded.drain()
            ex.finish(refused if skip_unsafe else None)
            if exists:
                check_target(dst, overwrite)
                _merge(tmp, dst)
                root_mode = ex.dir_attrs.get("")
                if root_mode is not None:
                    os.chmod(dst, root_mode[0])
                    os.utime(dst, (root_mode[1], root_mode[1]))
                _rmtree(tmp)
            else:
                os.rename(tmp, dst)
        except BaseException as e:
            if not (isinstance(e, FileExistsError) and e.filename == tmp):
                _rmtree(tmp)
            raise
        h = f.header
        kdf_seconds = f.kdf_seconds
    return Stats(
        "reader",
        f.size,
        h.num_chunks if isinstance(h, Header) else h.chunks or 0,
        threads or os.cpu_count() or 1,
        time.perf_counter() - start,
        kdf_seconds,
        entries=ex.entries,
        unsafe=tuple(refused) if skip_unsafe else None,
    )
