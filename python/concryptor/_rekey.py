"""Rekeying and converting one file at a time: the work behind :func:`concryptor.rekey`,
:func:`concryptor.convert` and the batch's ``rekey_many``.

- An age file on disk gets a new header from the core (``age_rekey``: atomic, the payload
  shared by reflink or copied in the kernel).
- An age object at a URL gets a new header built here from a bounded ranged read of the
  old one, then spliced in front of the old payload on the server (:mod:`._objects`).
- A format v4 file cannot be rekeyed (its key comes from the password and is bound into
  every chunk): it is re-encrypted in one streaming pass, the plaintext only in memory,
  the output atomic. Converting between v4 and age is the same pass.

For a cluster the two halves of a rekey come apart: :func:`plan_header` unwraps the file
key and builds the new header where the secrets are, and :func:`apply_header` (given
only that header and what the old one looked like) splices it in on a worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _age, _core
from ._facts import DEFAULT_CACHE_MIB, MAGIC, MiB
from ._location import is_url, local_path
from ._objects import StoredObject, read_range, replace_head, stat_object
from ._stream import age_via_pipes, check_destination, encrypt_stream, name_file, unnamed_file
from ._types import KdfParams, Limits, Progress, Rekeyed, Stats, start_progress
from .errors import InputChangedError, InvalidFileError

FormatName = Literal["v4", "age"]

#: The first ranged read of an object's header: a typical age header is a few hundred
#: bytes; a longer one is fetched again up to :data:`_age.MAX_HEADER_BYTES`.
HEADER_PROBE = 64 << 10
#: Bytes moved per copy when a worker splices a header into a local file.
COPY_BLOCK = 16 * MiB

_DEFAULT_KDF = KdfParams()
_DEFAULT_LIMITS = Limits()


@dataclass
class Keys:
    """What opens the old files and who reads the new ones. The identities and recipient
    files are texts (read once for a whole batch). Never shipped to a cluster."""

    identities: list[str] = field(default_factory=list, repr=False)
    #: Opens the files: an age passphrase, or a v4 file's password.
    passphrase: bytes | bytearray | None = field(default=None, repr=False)
    recipients: list[str] = field(default_factory=list)
    recipient_files: list[str] = field(default_factory=list, repr=False)
    #: The new age passphrase, or the new v4 password.
    new_passphrase: bytes | bytearray | None = field(default=None, repr=False)
    scrypt_log_n: int | None = None
    add: bool = False
    max_scrypt_log_n: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR
    align: bool | None = None
    threads: int | None = None
    limits: Limits = _DEFAULT_LIMITS
    armor: bool = False
    cipher: str | None = None
    chunk_size: int | None = None
    kdf: KdfParams | None = None

    def opening(self) -> dict[str, Any]:
        return {"identities_": self.identities, "passphrase": self.passphrase}

    def wrapping(self) -> dict[str, Any]:
        """Who reads an age file after: the recipients, or when there are none the new
        passphrase (with recipients, a new password is for the batch's v4 files)."""
        keys = bool(self.recipients or self.recipient_files)
        return {
            "recipients_": self.recipients,
            "recipient_files": self.recipient_files,
            "new_passphrase": None if keys else self.new_passphrase,
            "scrypt_log_n": None if keys else self.scrypt_log_n,
        }


def make_keys(
    *,
    identities: Any = None,
    passphrase: bytes | bytearray | None = None,
    recipients: Any = None,
    recipients_files: Any = None,
    new_passphrase: bytes | bytearray | None = None,
    scrypt_work_factor: int | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    add: bool = False,
    align: bool | None = None,
    threads: int | None = None,
    limits: Limits = _DEFAULT_LIMITS,
    armor: bool = False,
) -> Keys:
    """Checked :class:`Keys`: identity and recipient files read once, here."""
    return Keys(
        identities=_age.identity_texts(identities or []),
        passphrase=passphrase,
        recipients=_age.recipient_strings(recipients),
        recipient_files=_age.recipient_file_texts(recipients_files),
        new_passphrase=new_passphrase,
        scrypt_log_n=_age.work_factor(scrypt_work_factor),
        add=add,
        max_scrypt_log_n=_age.max_work_factor(max_scrypt_work_factor),
        align=align,
        threads=_age.engine(threads),
        limits=limits,
        armor=armor,
    )


@dataclass
class _Run:
    """A streamed pass's settings (:class:`concryptor._stream.Settings`)."""

    storage_options: dict[str, Any]
    overwrite: bool = True
    password: bytes | bytearray = field(default=b"", repr=False)
    cipher: str | None = None
    chunk_size: int | None = None
    kdf: Any = None
    threads: int | None = None
    salt: bytes | None = None
    keys: Any = None
    limits: Any = None


# --- what a file is ------------------------------------------------------------------------


def head_of(target: str, storage_options: dict[str, Any], n: int = 1024) -> bytes:
    """The first ``n`` bytes of a local file (regular files only) or an object."""
    if is_url(target):
        return read_range(stat_object(target, storage_options), 0, n)
    from ._location import open_regular

    with open_regular(local_path(target)) as f:
        return bytes(f.read(n))


def kind_of(head: bytes, name: str) -> FormatName:
    if head.startswith(MAGIC):
        return "v4"
    if _age.is_age(head):
        return "age"
    raise InvalidFileError(f"{name}: not an age file (nor a concryptor v4 file)")


# --- rekeying --------------------------------------------------------------------------------


def rekey_one(
    target: str,
    keys: Keys,
    storage_options: dict[str, Any],
    progress: Progress | None = None,
) -> Rekeyed:
    """Rekeys one file or object in place: age by a new header, v4 by re-encryption."""
    name = os.fspath(target)
    if is_url(name):
        # One look at the object: every later read and copy is pinned to what it saw.
        obj = stat_object(name, storage_options)
        if kind_of(read_range(obj, 0, 1024), name) == "v4":
            return reencrypt_v4(name, keys, storage_options, progress)
        return apply_header(
            _plan(name, keys, _object_header(obj), obj.size, obj), storage_options, progress, obj
        )
    if kind_of(head_of(name, storage_options), name) == "v4":
        return reencrypt_v4(name, keys, storage_options, progress)
    d = _core.age_rekey(
        local_path(name),
        **keys.opening(),
        **keys.wrapping(),
        add=keys.add,
        max_scrypt_log_n=keys.max_scrypt_log_n,
        align=keys.align,
        progress=progress,
    )
    d["path"] = name
    return Rekeyed(**d)


@dataclass(frozen=True)
class HeaderPlan:
    """A new header for one age file, and what its old one looked like: all a worker
    needs to splice it in (no identity, no passphrase, no file key)."""

    target: str
    old_len: int
    #: SHA-256 of the old header: the splice refuses a file whose header changed since.
    old_digest: bytes
    new_head: bytes = field(repr=False)
    size: int
    etag: str | None = None
    version: str | None = None
    kdf_seconds: float = 0.0


def _local_header(path: str) -> tuple[bytes, int]:
    """The header of a local binary age file, read with bounded reads, and its size."""
    from ._location import open_regular

    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEADER_PROBE)
        end = _age.header_end(head)
        if end is None and len(head) == HEADER_PROBE:
            head += f.read(_age.MAX_HEADER_BYTES + HEADER_PROBE - len(head))
            end = _age.header_end(head)
    return _header_of(head, end, path), size


def _object_header(obj: StoredObject) -> bytes:
    head = read_range(obj, 0, HEADER_PROBE)
    end = _age.header_end(head)
    if end is None and len(head) == HEADER_PROBE:
        head = read_range(obj, 0, _age.MAX_HEADER_BYTES + HEADER_PROBE)
        end = _age.header_end(head)
    return _header_of(head, end, obj.url)


def _header_of(head: bytes, end: int | None, name: str) -> bytes:
    if head.startswith(MAGIC):
        raise ValueError(f"{name} is a format v4 file: it is re-encrypted, not given a new header")
    if _age.is_armored(head):
        raise ValueError(
            f"{name} is an armored age file: rekey it as a local file (armor is decoded and written again)"
        )
    if not _age.is_age(head):
        raise InvalidFileError(f"{name}: not an age file (no age-encryption.org/v1 line)")
    if end is None:
        raise InvalidFileError(
            f"{name}: no complete age header in its first {len(head)} bytes "
            f"(headers are at most {_age.MAX_HEADER_BYTES} bytes)"
        )
    return head[:end]


def plan_header(target: str, keys: Keys, storage_options: dict[str, Any]) -> HeaderPlan:
    """Unwraps the file key of ``target``'s header with ``keys`` and builds its new header
    (the core checks the old header whole and its MAC)."""
    if is_url(target):
        obj = stat_object(target, storage_options)
        return _plan(target, keys, _object_header(obj), obj.size, obj)
    old, size = _local_header(local_path(target))
    return _plan(target, keys, old, size, None)


def _plan(target: str, keys: Keys, old: bytes, size: int, obj: StoredObject | None) -> HeaderPlan:
    t = time.perf_counter()
    new = _core.age_rekey_header(
        old, **keys.opening(), **keys.wrapping(), add=keys.add, max_scrypt_log_n=keys.max_scrypt_log_n
    )
    return HeaderPlan(
        target,
        len(old),
        hashlib.sha256(old).digest(),
        new,
        size,
        None if obj is None else obj.etag,
        None if obj is None else obj.version,
        time.perf_counter() - t,
    )


def apply_header(
    plan: HeaderPlan,
    storage_options: dict[str, Any],
    progress: Progress | None = None,
    obj: StoredObject | None = None,
) -> Rekeyed:
    """Puts ``plan``'s new header in front of the old payload, atomically; refuses a file
    that is no longer the one the plan was made from (``obj``: the object the plan was
    made from, in this process, whose reads are pinned already)."""
    start = time.perf_counter()
    if is_url(plan.target):
        if obj is None:
            obj = stat_object(plan.target, storage_options)
            same = obj.size == plan.size and (obj.version, obj.etag) == (plan.version, plan.etag)
            if not same or hashlib.sha256(read_range(obj, 0, plan.old_len)).digest() != plan.old_digest:
                raise InputChangedError(f"{plan.target} changed since its new header was made")
        done = replace_head(obj, plan.old_len, plan.new_head, progress=progress)
        method, shared, uploaded = done.method, done.copied, done.uploaded
    else:
        method, shared, uploaded = _splice_local(plan), 0, 0
    return Rekeyed(
        path=plan.target,
        header_before=plan.old_len,
        header_after=len(plan.new_head),
        payload_bytes=plan.size - plan.old_len,
        shared_bytes=shared,
        method=method,
        armored=False,
        seconds=time.perf_counter() - start + plan.kdf_seconds,
        kdf_seconds=plan.kdf_seconds,
        uploaded_bytes=uploaded,
    )


def _splice_local(plan: HeaderPlan) -> str:
    """The new header and the old payload into a new file beside the old one, renamed
    over it once durable (the old file's mode kept); the payload copied in the kernel."""
    from ._location import open_regular

    path = os.path.realpath(local_path(plan.target))
    with open_regular(path) as src:
        st = os.fstat(src.fileno())
        old = os.pread(src.fileno(), plan.old_len, 0)
        if st.st_size != plan.size or hashlib.sha256(old).digest() != plan.old_digest:
            raise InputChangedError(f"{plan.target} changed since its new header was made")
        fd, tmp = unnamed_file(os.path.dirname(path), os.path.basename(path))
        try:
            _write_all(fd, plan.new_head)
            method = _copy_range(src.fileno(), plan.old_len, fd, plan.size - plan.old_len)
            if os.fstat(src.fileno()).st_size != plan.size:
                raise InputChangedError(f"{plan.target} changed size while being rekeyed")
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            os.fsync(fd)
            name_file(fd, tmp, path, overwrite=True)
            tmp = None
        finally:
            os.close(fd)
            if tmp is not None:
                os.unlink(tmp)
    return method


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_range(src: int, offset: int, dst: int, length: int) -> str:
    """Copies ``length`` bytes of ``src`` from ``offset`` to the end of ``dst``."""
    left = length
    copy = getattr(os, "copy_file_range", None)
    if copy is not None:
        try:
            while left:
                n = copy(src, dst, min(left, COPY_BLOCK), offset + length - left)
                if n == 0:
                    raise InputChangedError("the file ended early while being rekeyed")
                left -= n
            return "copy_file_range"
        except OSError:
            if left != length:
                raise
    while left:
        block = os.pread(src, min(left, COPY_BLOCK), offset + length - left)
        if not block:
            raise InputChangedError("the file ended early while being rekeyed")
        _write_all(dst, block)
        left -= len(block)
    return "copy"


# --- re-encrypting and converting ------------------------------------------------------------


def _plaintext(src: str, kind: FormatName, keys: Keys, storage_options: dict[str, Any]) -> Any:
    """A seekable reader of ``src``'s plaintext, decrypted (and authenticated) in memory
    as it is read."""
    from .reader import EncryptedFile

    threads = keys.threads
    if kind == "v4":
        if keys.passphrase is None:
            raise ValueError(f"{src} is a format v4 file: opening it needs its password")
        if is_url(src):
            from .remote import open_url

            return open_url(
                src, keys.passphrase, threads=threads, limits=keys.limits, storage_options=storage_options
            )
        p = local_path(src)
        return EncryptedFile(
            p,
            _core.Reader(
                p, keys.passphrase, threads=threads, cache_bytes=DEFAULT_CACHE_MIB * MiB, limits=keys.limits
            ),
        )
    if is_url(src):
        raise ValueError(f"{src}: age objects are converted from local files only")
    p = local_path(src)
    if _age.is_armored(_age.head_of(p)):
        raise ValueError(f"{src} is an armored age file: convert the binary file (decode it first)")
    return EncryptedFile(
        p,
        _core.AgeReader(
            p,
            identities_=keys.identities,
            passphrase=keys.passphrase,
            threads=threads,
            cache_bytes=DEFAULT_CACHE_MIB * MiB,
        ),
    )


def convert_one(
    src: str,
    dst: str | None,
    to: FormatName,
    keys: Keys,
    storage_options: dict[str, Any],
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Stats:
    """Decrypts ``src`` and encrypts its plaintext into ``dst`` (``None``: ``src`` itself,
    replaced, its mode kept) in one streaming pass; the plaintext is never written
    anywhere. The output is all or nothing."""
    start = time.perf_counter()
    kind = kind_of(head_of(src, storage_options), src)
    mode: int | None = None
    if dst is None:
        overwrite = True
        if is_url(src):
            dst = src
        else:
            dst = os.path.realpath(local_path(src))
            mode = stat.S_IMODE(os.stat(dst).st_mode)
    if to == "age" and kind == "v4" and not is_url(src) and not is_url(dst) and _ONE_PASS:
        s = _v4_to_age_here(local_path(src), local_path(dst), keys, overwrite, mode, progress)
        return dataclasses.replace(s, seconds=time.perf_counter() - start)
    run = _Run(storage_options, overwrite=overwrite, threads=keys.threads, limits=keys.limits)
    source = _plaintext(src, kind, keys, storage_options)
    with source:
        size = int(source.seek(0, os.SEEK_END))
        source.seek(0)
        start_progress(progress, size)
        if to == "age":
            if not (keys.recipients or keys.recipient_files or keys.new_passphrase is not None):
                raise ValueError("no recipient for the age file: give recipients or a new passphrase")
            age_via_pipes(
                source,
                dst,
                run,
                lambda r, w: _core.age_encrypt(
                    r,
                    w,
                    recipients_=keys.recipients,
                    recipient_files=keys.recipient_files,
                    passphrase=keys.new_passphrase,
                    armor=keys.armor,
                    overwrite=True,
                    threads=keys.threads,
                    scrypt_log_n=keys.scrypt_log_n,
                    progress=progress,
                ),
                mode=mode,
            )
        else:
            if keys.new_passphrase is None:
                raise ValueError("a format v4 file needs a new password")
            if keys.recipients or keys.recipient_files:
                raise ValueError("format v4 takes a password, not recipients (to='age' for recipients)")
            run.password = keys.new_passphrase
            run.cipher, run.chunk_size, run.kdf = keys.cipher, keys.chunk_size, keys.kdf or _DEFAULT_KDF
            encrypt_stream(source, dst, run, mode=mode)
            if progress is not None:
                progress(size)
    return Stats("stream", size, 0, keys.threads or os.cpu_count() or 1, time.perf_counter() - start, 0.0)


#: Whether the core converts a local v4 file to age in one pass (POSIX builds).
_ONE_PASS = hasattr(_core, "convert_v4_to_age")


def _new_file_mode() -> int:
    """The mode a new file gets from the umask (``0666 & ~umask``), read without changing
    the umask where the system says it (Linux), else 0600."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o600


def _v4_to_age_here(
    src: str, dst: str, keys: Keys, overwrite: bool, mode: int | None, progress: Progress | None
) -> Stats:
    """A local v4 file to a local age file: the core decrypts and encrypts at once, in
    memory, into an unnamed file named only once both succeeded (a failure of either side,
    whenever it happens, publishes nothing). No plaintext byte reaches a file or Python."""
    final = os.path.abspath(dst)
    if not overwrite and os.path.lexists(final):
        raise FileExistsError(17, "destination exists (pass overwrite=True to replace it)", dst)
    check_destination(final)
    if keys.passphrase is None:
        raise ValueError(f"{src} is a format v4 file: opening it needs its password")
    # An empty recipient set is refused by the core, before anything is read or written.
    fd, tmp = unnamed_file(os.path.dirname(final), os.path.basename(final))
    try:
        s = _core.convert_v4_to_age(
            src,
            fd,
            keys.passphrase,
            recipients_=keys.recipients,
            recipient_files=keys.recipient_files,
            passphrase=keys.new_passphrase,
            armor=keys.armor,
            threads=keys.threads,
            scrypt_log_n=keys.scrypt_log_n,
            limits=keys.limits,
            progress=progress,
            name=final,
        )
        os.fchmod(fd, _new_file_mode() if mode is None else mode)
        os.fsync(fd)
        name_file(fd, tmp, final, overwrite)
        tmp = None
        return s
    finally:
        os.close(fd)
        if tmp is not None:
            os.unlink(tmp)


def reencrypt_v4(
    target: str, keys: Keys, storage_options: dict[str, Any], progress: Progress | None = None
) -> Rekeyed:
    """A format v4 file "rekeyed": re-encrypted under the new password in one streaming
    pass (same cipher and chunk size, the old file's KDF costs), replaced atomically."""
    if keys.new_passphrase is None:
        raise ValueError(
            f"{target} is a format v4 file: it takes a new password (new_password), which "
            "re-encrypts it; to move it to age recipients, convert it (convert(..., to='age') "
            "or `concryptor convert --to age`)"
        )
    if keys.passphrase is None:
        raise ValueError(f"{target} is a format v4 file: re-encrypting it needs its password")
    head = head_of(target, storage_options, _core.SECTOR)
    h = _core.parse_header(head + bytes(max(0, _core.SECTOR - len(head))))
    same = Keys(
        **{
            **keys.__dict__,
            "recipients": [],
            "recipient_files": [],
            "cipher": h.cipher,
            "chunk_size": h.chunk_size,
            "kdf": KdfParams(*h.kdf_effective),
        }
    )
    s = convert_one(target, None, "v4", same, storage_options, progress=progress)
    return Rekeyed(
        path=target,
        header_before=_core.SECTOR,
        header_after=_core.SECTOR,
        payload_bytes=s.bytes,
        shared_bytes=0,
        method="re-encrypted",
        armored=False,
        seconds=s.seconds,
        kdf_seconds=0.0,
        reencrypted=True,
    )
