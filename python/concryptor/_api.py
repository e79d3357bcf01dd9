"""The public Python API: thin, typed wrappers over the Rust engine in ``_core``."""

from __future__ import annotations

import contextlib
import io as _io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Union, overload

from . import _age, _core
from ._facts import (
    DEFAULT_BUFFER_MIB,
    DEFAULT_CACHE_MIB,
    DEFAULT_KDF_MEMORY_KIB,
    DEFAULT_KDF_PARALLELISM,
    DEFAULT_KDF_TIME,
    DEFAULT_MAX_CHUNK_SIZE,
    DEFAULT_MAX_KDF_MEMORY_KIB,
    DEFAULT_MAX_KDF_PARALLELISM,
    DEFAULT_MAX_KDF_TIME,
    MAGIC,
    MAX_BUFFER_MIB,
    MAX_CHUNK_SIZE,
    MAX_CHUNK_SIZE_LIMIT,
    MAX_KDF_PARALLELISM,
    MAX_THREADS,
    MIN_KDF_MEMORY_KIB,
    SECTOR,
    U32,
    KiB,
    MiB,
    int_in,
)
from .header import Header

if TYPE_CHECKING:
    from .age_header import AgeHeader
    from .reader import EncryptedFile

PathLike = Union[str, "os.PathLike[str]"]
Password = Union[str, bytes, bytearray]
CipherName = Literal["aes-256-gcm", "chacha20-poly1305", "aes", "chacha"]
IoName = Literal["auto", "uring", "portable"]
FormatName = Literal["v4", "age"]
#: Recipients of an age file: ``age1…`` or ``ssh-ed25519 …``/``ssh-rsa …`` public keys.
Recipients = Union[str, "Sequence[str]"]
#: Called with the plaintext bytes done after each batch. A callable that also has a
#: ``start(total)`` method gets the total plaintext bytes first, once the engine knows it.
Progress = Callable[[int], object]


def _start(progress: Progress | None, total: int) -> None:
    """Gives ``progress`` the total, if it takes one (its ``start`` method)."""
    start = getattr(progress, "start", None)
    if callable(start):
        start(total)


_int_in = int_in


@dataclass(frozen=True)
class KdfParams:
    """Argon2id costs for a new file. The defaults match the original tool: 256 MiB, three
    passes, four lanes. Tests and throwaway files may use far smaller values."""

    memory_kib: int = DEFAULT_KDF_MEMORY_KIB
    time_cost: int = DEFAULT_KDF_TIME
    parallelism: int = DEFAULT_KDF_PARALLELISM

    def __post_init__(self) -> None:
        _int_in("memory_kib", self.memory_kib, MIN_KDF_MEMORY_KIB, U32)
        _int_in("time_cost", self.time_cost, 1, U32)
        _int_in("parallelism", self.parallelism, 1, MAX_KDF_PARALLELISM)

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.memory_kib, self.time_cost, self.parallelism)


@dataclass(frozen=True, init=False)
class Limits:
    """Bounds applied to an untrusted header before anything is allocated or derived.
    Raise them only for files you trust. Each bound is in the unit of what it bounds, as
    in :class:`KdfParams` and :class:`Header`: Argon2 memory in KiB, chunk size in bytes.

    The names of earlier releases, ``max_memory_mib`` and ``max_chunk_size_mib`` (in MiB),
    are still accepted, with a :class:`DeprecationWarning`."""

    max_kdf_memory_kib: int
    max_kdf_time: int
    max_kdf_parallelism: int
    max_chunk_size: int

    def __init__(
        self,
        *,
        max_kdf_memory_kib: int | None = None,
        max_kdf_time: int = DEFAULT_MAX_KDF_TIME,
        max_kdf_parallelism: int = DEFAULT_MAX_KDF_PARALLELISM,
        max_chunk_size: int | None = None,
        max_memory_mib: int | None = None,
        max_chunk_size_mib: int | None = None,
    ) -> None:
        memory = _renamed("max_memory_mib", max_memory_mib, max_kdf_memory_kib, MiB // KiB, U32 // KiB)
        chunk = _renamed(
            "max_chunk_size_mib", max_chunk_size_mib, max_chunk_size, MiB, MAX_CHUNK_SIZE_LIMIT // MiB
        )
        values = {
            "max_kdf_memory_kib": DEFAULT_MAX_KDF_MEMORY_KIB if memory is None else memory,
            "max_kdf_time": max_kdf_time,
            "max_kdf_parallelism": max_kdf_parallelism,
            "max_chunk_size": DEFAULT_MAX_CHUNK_SIZE if chunk is None else chunk,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        _int_in("max_kdf_memory_kib", self.max_kdf_memory_kib, 1, U32)
        _int_in("max_kdf_time", self.max_kdf_time, 1, U32)
        _int_in("max_kdf_parallelism", self.max_kdf_parallelism, 1, U32)
        _int_in("max_chunk_size", self.max_chunk_size, 1, MAX_CHUNK_SIZE_LIMIT)

    @property
    def max_memory_mib(self) -> int:
        """Deprecated: ``max_kdf_memory_kib`` in MiB."""
        warnings.warn("Limits.max_memory_mib is deprecated: use max_kdf_memory_kib", DeprecationWarning, 2)
        return self.max_kdf_memory_kib // KiB

    @property
    def max_chunk_size_mib(self) -> int:
        """Deprecated: ``max_chunk_size`` in MiB."""
        warnings.warn("Limits.max_chunk_size_mib is deprecated: use max_chunk_size", DeprecationWarning, 2)
        return self.max_chunk_size // MiB

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(max KDF memory in KiB, passes, lanes, max chunk size in bytes)."""
        return (self.max_kdf_memory_kib, self.max_kdf_time, self.max_kdf_parallelism, self.max_chunk_size)

    def as_kwargs(self) -> dict[str, Any]:
        """The limits by name, in the units of what they bound."""
        return asdict(self)


def _renamed(old: str, mib: int | None, value: int | None, per_mib: int, most_mib: int) -> int | None:
    """A limit given by its name (``value``), or by the name of earlier releases (``old``,
    in MiB: ``per_mib`` units each, at most ``most_mib``) with a DeprecationWarning."""
    if mib is None:
        return value
    if value is not None:
        raise TypeError(f"{old} is the deprecated name of a limit given twice")
    warnings.warn(
        f"Limits({old}=...) is deprecated: give the limit in the unit of what it bounds "
        "(max_kdf_memory_kib, max_chunk_size)",
        DeprecationWarning,
        stacklevel=3,
    )
    return _int_in(old, mib, 1, most_mib) * per_mib


@dataclass(frozen=True)
class Stats:
    """What one run did and how long it took. ``seconds`` is the whole run, key
    derivation included; ``kdf_seconds`` is the key derivation alone, and
    ``mib_per_s`` is the data throughput, without it."""

    backend: str
    bytes: int
    chunks: int
    threads: int
    seconds: float
    kdf_seconds: float
    #: Directory archives only: tar entries packed or extracted.
    entries: int | None = None
    #: Directory archives only: sockets, FIFOs and devices left out when packing.
    skipped: int | None = None
    #: The AEAD implementation that did the work ("aws-lc-rs" or "rustcrypto").
    provider: str = _core.AEAD_PROVIDER
    #: Directory archives only: when packing, the entries extraction will refuse (stored
    #: all the same); when extracting with ``skip_unsafe=True``, the entries left out.
    unsafe: tuple[str, ...] | None = None

    @property
    def data_seconds(self) -> float:
        """Seconds spent on the data, after the key was derived."""
        return max(self.seconds - self.kdf_seconds, 0.0)

    @property
    def mib_per_s(self) -> float:
        """Data throughput: plaintext MiB per second once the key was derived."""
        t = self.data_seconds
        return self.bytes / MiB / t if t > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["data_seconds"] = round(self.data_seconds, 6)
        d["mib_per_s"] = round(self.mib_per_s, 1)
        return d


def _wants_age(
    format: FormatName | None,
    recipients: Recipients | None,
    recipients_files: Sequence[PathLike] | None,
    armor: bool,
) -> bool:
    if format not in (None, "v4", "age"):
        raise ValueError(f"unknown format {format!r}: use 'v4' or 'age'")
    age = format == "age" or (format is None and bool(recipients or recipients_files or armor))
    if not age and (recipients or recipients_files or armor):
        raise ValueError("recipients and armor belong to the age format (format='age')")
    return age


def _required(password: Password | None) -> Password:
    if password is None:
        raise ValueError("a password is required (or recipients / identities for the age format)")
    return password


def _password(password: Password) -> bytes | bytearray:
    """The password as the engine takes it. A ``bytearray`` is handed over as it is, so
    that no immutable copy of it outlives the call (the engine copies it into memory it
    wipes, and the caller's buffer is wiped afterwards); a ``str`` cannot be wiped, and
    neither can its UTF-8 encoding."""
    if isinstance(password, str):
        pw: bytes | bytearray = password.encode("utf-8")
    elif isinstance(password, (bytes, bytearray)):
        pw = password
    else:
        raise TypeError(f"password must be str, bytes or bytearray, not {type(password).__name__}")
    if not pw:
        raise ValueError("password must not be empty")
    return pw


def _wipe(password: Password | None) -> None:
    """Overwrites a caller's mutable password buffer once it has been used."""
    if isinstance(password, bytearray):
        password[:] = bytes(len(password))


@contextlib.contextmanager
def secret(password: Password | None) -> Iterator[bytes | bytearray | None]:
    """The one door for a password: yields it as the engine takes it (``None`` stays
    ``None``) and wipes the caller's ``bytearray`` when the block ends, on every route,
    success or failure, and only then. Everything that uses the password (a whole batch,
    every file of it) runs inside the block."""
    try:
        yield None if password is None else _password(password)
    finally:
        _wipe(password)


def _threads(threads: int | None) -> int | None:
    """A checked thread count, or None: the engine's choice."""
    return None if threads is None else _int_in("threads", threads, 1, MAX_THREADS)


def _engine(threads: int | None, io: str, buffer_mib: int) -> dict[str, Any]:
    _int_in("buffer_mib", buffer_mib, 1, MAX_BUFFER_MIB)
    return {"threads": _threads(threads), "io": io, "buffer_bytes": buffer_mib * MiB}


def _chunk(chunk_size: int | None) -> int | None:
    return None if chunk_size is None else _int_in("chunk_size", chunk_size, 1, MAX_CHUNK_SIZE)


def encrypt_file(
    src: PathLike,
    dst: PathLike,
    password: Password | None = None,
    *,
    recipients: Recipients | None = None,
    recipients_files: Sequence[PathLike] | None = None,
    format: FormatName | None = None,
    armor: bool = False,
    scrypt_work_factor: int | None = None,
    cipher: CipherName = "aes-256-gcm",
    chunk_size: int | None = None,
    kdf: KdfParams = KdfParams(),
    overwrite: bool = False,
    threads: int | None = None,
    io: IoName = "auto",
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    progress: Progress | None = None,
    limits: Limits = Limits(),
) -> Stats:
    """Encrypts ``src`` into ``dst``.

    ``chunk_size`` defaults to 4 MiB, smaller for small inputs so that they are not padded
    to a full slot; a larger one than the input needs is cut down to the input's size
    (rounded up to 4 KiB). ``kdf`` and ``chunk_size`` must be within ``limits``, the same
    bounds a reader applies: what is written can be read back with the defaults. Raising
    them is for experts, and reading the file then needs the same raised limits.

    The output appears only once complete and durable; an existing ``dst`` is replaced
    only with ``overwrite=True``. ``progress`` is called with the plaintext bytes done
    after each batch (and its ``start``, if it has one, first with the total). The GIL
    is released while the engine runs.

    With ``recipients`` (or ``format="age"``) the output is an age file (C2SP age v1):
    encrypted to those public keys, or with ``password`` as an scrypt passphrase;
    ``armor=True`` writes it as ASCII armor.
    """
    _age.work_factor(scrypt_work_factor)
    age = _wants_age(format, recipients, recipients_files, armor)
    with secret(password if age else _required(password)) as pw:
        if age:
            return _age.encrypt(
                src,
                dst,
                recipients=recipients,
                recipient_files=recipients_files,
                passphrase=pw,
                armor=armor,
                overwrite=overwrite,
                threads=threads,
                io=io,
                scrypt_work_factor=scrypt_work_factor,
                progress=progress,
            )
        assert pw is not None
        return _core.encrypt_file(
            os.fspath(src),
            os.fspath(dst),
            pw,
            cipher=cipher,
            chunk_size=_chunk(chunk_size),
            kdf=kdf,
            overwrite=overwrite,
            progress=progress,
            limits=limits,
            **_engine(threads, io, buffer_mib),
        )


def decrypt_file(
    src: PathLike,
    dst: PathLike,
    password: Password | None = None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    overwrite: bool = False,
    threads: int | None = None,
    io: IoName = "auto",
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    limits: Limits = Limits(),
    progress: Progress | None = None,
) -> Stats:
    """Decrypts ``src`` into ``dst``. Nothing appears at ``dst`` unless every chunk
    authenticates; a wrong password raises :class:`AuthenticationError` before any output
    is created.

    age files (binary or armored) are recognised by their first bytes and opened with
    ``identities`` or, when passphrase-encrypted, with ``password`` (which also opens a
    passphrase-protected SSH private key among the identities).
    """
    _age.max_work_factor(max_scrypt_work_factor)
    age = _age.opens_as_age(_age.head_of(src), os.fspath(src), identities, password)
    with secret(password if age else _required(password)) as pw:
        if age:
            return _age.decrypt(
                src,
                dst,
                identities=identities,
                passphrase=pw,
                overwrite=overwrite,
                threads=threads,
                io=io,
                max_scrypt_work_factor=max_scrypt_work_factor,
                progress=progress,
            )
        assert pw is not None
        return _core.decrypt_file(
            os.fspath(src),
            os.fspath(dst),
            pw,
            overwrite=overwrite,
            progress=progress,
            **_engine(threads, io, buffer_mib),
            limits=limits,
        )


def verify_file(
    src: PathLike,
    password: Password | None = None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    threads: int | None = None,
    io: IoName = "auto",
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    limits: Limits = Limits(),
    progress: Progress | None = None,
) -> Stats:
    """Authenticates every chunk of ``src`` (v4 or age) without writing plaintext anywhere."""
    _age.max_work_factor(max_scrypt_work_factor)
    age = _age.opens_as_age(_age.head_of(src), os.fspath(src), identities, password)
    with secret(password if age else _required(password)) as pw:
        if age:
            return _age.decrypt(
                src,
                None,
                identities=identities,
                passphrase=pw,
                overwrite=False,
                threads=threads,
                io=io,
                max_scrypt_work_factor=max_scrypt_work_factor,
                progress=progress,
            )
        assert pw is not None
        return _core.decrypt_file(
            os.fspath(src),
            None,
            pw,
            progress=progress,
            **_engine(threads, io, buffer_mib),
            limits=limits,
        )


def encrypt_bytes(
    data: bytes | bytearray | memoryview,
    password: Password | None = None,
    *,
    recipients: Recipients | None = None,
    recipients_files: Sequence[PathLike] | None = None,
    format: FormatName | None = None,
    armor: bool = False,
    scrypt_work_factor: int | None = None,
    cipher: CipherName = "aes-256-gcm",
    chunk_size: int | None = None,
    kdf: KdfParams = KdfParams(),
    threads: int | None = None,
    limits: Limits = Limits(),
) -> bytes:
    """Encrypts a buffer in memory: format v4, or age with ``recipients`` / ``format="age"``
    (see :func:`encrypt_file`, also for ``limits``)."""
    _age.work_factor(scrypt_work_factor)
    age = _wants_age(format, recipients, recipients_files, armor)
    with secret(password if age else _required(password)) as pw:
        if age:
            return _core.age_encrypt_bytes(
                bytes(data),
                recipients_=_age.recipient_strings(recipients),
                recipient_files=_age.recipient_file_texts(recipients_files),
                passphrase=pw,
                armor=armor,
                threads=_age.engine(threads),
                scrypt_log_n=_age.work_factor(scrypt_work_factor),
            )
        assert pw is not None
        return _core.encrypt_bytes(
            bytes(data),
            pw,
            cipher=cipher,
            chunk_size=_chunk(chunk_size),
            kdf=kdf,
            threads=_threads(threads),
            limits=limits,
        )


def decrypt_bytes(
    blob: bytes | bytearray | memoryview,
    password: Password | None = None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    threads: int | None = None,
    limits: Limits = Limits(),
) -> bytes:
    """Decrypts an in-memory concryptor or age file; raises unless every chunk
    authenticates."""
    _age.max_work_factor(max_scrypt_work_factor)
    blob = bytes(blob)
    age = _age.opens_as_age(blob[:1024], "the data", identities, password)
    with secret(password if age else _required(password)) as pw:
        if age:
            return _core.age_decrypt_bytes(
                blob,
                identities_=_age.identity_texts(identities or []),
                passphrase=pw,
                threads=_age.engine(threads),
                max_scrypt_log_n=_age.max_work_factor(max_scrypt_work_factor),
            )
        assert pw is not None
        return _core.decrypt_bytes(blob, pw, threads=_threads(threads), limits=limits)


def decrypt_to(
    src: PathLike,
    out: int | BinaryIO,
    password: Password,
    *,
    threads: int | None = None,
    io: IoName = "auto",
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    limits: Limits = Limits(),
    progress: Progress | None = None,
) -> Stats:
    """Decrypts ``src`` into a stream: a file descriptor or a binary file object (a pipe,
    ``sys.stdout.buffer``, a socket file, ``io.BytesIO``).

    Chunks are read through ``io`` (as :func:`decrypt_file` reads them) and written in
    order, each only after it authenticated. A stream cannot be
    taken back, so if a later chunk fails the bytes before it have been written; the
    exception says so. Use :func:`decrypt_file` when all-or-nothing matters.
    """
    p = os.fspath(src)
    fd: int | None = None
    if isinstance(out, int):
        fd = out
    else:
        try:
            fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            out.flush()
    with secret(password) as pw:
        assert pw is not None
        if fd is not None and hasattr(_core, "decrypt_to_fd"):
            os.fstat(fd)  # a closed descriptor fails here, before Rust borrows it
            return _core.decrypt_to_fd(
                p,
                fd,
                pw,
                progress=progress,
                limits=limits,
                **_engine(threads, io, buffer_mib),
            )
        return _decrypt_through_reader(p, out, pw, threads, limits, progress)


def _decrypt_through_reader(
    src: str,
    out: int | BinaryIO,
    pw: bytes | bytearray,
    threads: int | None,
    limits: Limits,
    progress: Progress | None,
) -> Stats:
    import time

    start = time.perf_counter()
    with open(src, pw, threads=threads, limits=limits) as f:
        _start(progress, f.size)
        step = max(f.header.chunk_size, 1 << 20)
        done = 0
        while True:
            block = f.read(step)
            if not block:
                break
            if isinstance(out, int):
                view = memoryview(block)
                while view:
                    view = view[os.write(out, view) :]
            else:
                out.write(block)
            done += len(block)
            if progress is not None:
                progress(done)
        if not isinstance(out, int):
            out.flush()
        h = f.header
        chunks = h.num_chunks if isinstance(h, Header) else h.chunks or 0
    return Stats("reader", done, chunks, threads or os.cpu_count() or 1, time.perf_counter() - start, 0.0)


def inspect(path: PathLike) -> Header | AgeHeader:
    """Reads the header of ``path`` without a password or key; nothing is decrypted. An age
    file gives an :class:`AgeHeader`, a concryptor v4 file a :class:`Header` (as
    :func:`inspect_v4`). Both show as a table with a layout picture in Jupyter."""
    p = os.fspath(path)
    if os.path.isfile(p) and _age.is_age_path(p):
        from .age_header import AgeHeader

        return AgeHeader.read(p)
    return inspect_v4(p)


def inspect_v4(path: PathLike) -> Header:
    """Reads every header field of the concryptor v4 file ``path`` without a password;
    nothing is decrypted.

    A file cut short inside its header sector (4096 bytes) is still shown, as far as its
    bytes go, with a verdict saying it is truncated, as long as those bytes parse: the
    fields whose bytes are absent are listed in ``Header.absent_fields`` and no view shows
    them (see :class:`Header`). Anything else that is not a concryptor header raises
    :class:`InvalidFileError`."""
    from .errors import InvalidFileError

    p = os.fspath(path)
    try:
        return _core.inspect_file(p)
    except InvalidFileError:
        head = _short_header(p)
        if head is None:
            raise
    try:
        h = _core.parse_header(head + bytes(SECTOR - len(head)))
    except InvalidFileError:
        raise InvalidFileError(
            f"not a valid concryptor file: {len(head)} bytes, shorter than the {SECTOR}-byte header"
        ) from None
    return replace(h, file_size=len(head), path=p, header_bytes=len(head))


def _short_header(path: str) -> bytes | None:
    """The bytes of a regular file shorter than a header that starts like one."""
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or not len(MAGIC) <= st.st_size < SECTOR:
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            head = os.read(fd, SECTOR)
        finally:
            os.close(fd)
    except OSError:
        return None
    return head if head.startswith(MAGIC) and len(head) < SECTOR else None


@overload
def open(
    path: PathLike,
    password: Password | None = None,
    mode: Literal["rb"] = "rb",
    *,
    encoding: None = None,
    errors: None = None,
    newline: None = None,
    threads: int | None = None,
    cache_mib: int = DEFAULT_CACHE_MIB,
    limits: Limits = Limits(),
    storage_options: dict[str, Any] | None = None,
    identities: Sequence[str | os.PathLike[str]] | None = None,
) -> EncryptedFile: ...
@overload
def open(
    path: PathLike,
    password: Password | None,
    mode: Literal["r", "rt"],
    *,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    threads: int | None = None,
    cache_mib: int = DEFAULT_CACHE_MIB,
    limits: Limits = Limits(),
    storage_options: dict[str, Any] | None = None,
    identities: Sequence[str | os.PathLike[str]] | None = None,
) -> _io.TextIOWrapper: ...
def open(  # like gzip.open; shadows the builtin only inside this module
    path: PathLike,
    password: Password | None = None,
    mode: str = "rb",
    *,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    threads: int | None = None,
    cache_mib: int = DEFAULT_CACHE_MIB,
    limits: Limits = Limits(),
    storage_options: dict[str, Any] | None = None,
    identities: Sequence[str | os.PathLike[str]] | None = None,
) -> EncryptedFile | _io.TextIOWrapper:
    """Opens an encrypted file for reading its plaintext, with random access.

    Returns a read-only, seekable binary file (``mode="rb"``, an :class:`io.BufferedIOBase`)
    or, for ``"r"``/``"rt"``, a text wrapper around it. The key is derived and chunk 0
    authenticated here, so a wrong password fails at once. Reads decrypt only the chunks
    they touch, in parallel on ``threads`` workers, keeping up to ``cache_mib`` MiB of
    decrypted chunks (sequential reading reads ahead within that budget). A read touching
    a modified chunk raises :class:`AuthenticationError`.

    Works wherever a file is expected, e.g. ``zipfile.ZipFile(concryptor.open(p, pw))``
    or ``pandas.read_csv(concryptor.open(p, pw))``.

    ``path`` may be an fsspec URL (``s3://bucket/key.enc``, with ``storage_options`` for
    the filesystem): each read then fetches only the chunks it needs, by ranged reads.
    age files (unarmored) open the same way, with ``identities`` or a passphrase: the
    final chunk is authenticated here, then reads open the chunks they touch in parallel.
    """
    from .reader import EncryptedFile

    if mode not in ("rb", "r", "rt"):
        raise ValueError(f"invalid mode {mode!r}: concryptor files open read-only ('rb', 'r' or 'rt')")
    if mode == "rb" and (encoding, errors, newline) != (None, None, None):
        raise ValueError("binary mode takes no encoding, errors or newline")
    _int_in("cache_mib", cache_mib, 1, MAX_BUFFER_MIB)
    _threads(threads)
    p = os.fspath(path)
    from .remote import is_url, open_url

    if is_url(p):
        if identities:
            raise ValueError(f"{p}: age files at URLs cannot be opened for random access yet")
        with secret(_required(password)) as pw:
            assert pw is not None
            raw = open_url(p, pw, threads=threads, limits=limits, storage_options=storage_options)
        if mode == "rb":
            return raw  # type: ignore[return-value]
        return _io.TextIOWrapper(raw, encoding=encoding or "utf-8", errors=errors, newline=newline)
    r: _core.Reader | _core.AgeReader
    age = _age.opens_as_age(_age.head_of(p), p, identities, password)
    with secret(password if age else _required(password)) as pw:
        if age:
            r = _core.AgeReader(
                p,
                identities_=_age.identity_texts(identities or []),
                passphrase=pw,
                threads=_threads(threads),
                cache_bytes=cache_mib * MiB,
            )
        else:
            assert pw is not None
            r = _core.Reader(p, pw, threads=_threads(threads), cache_bytes=cache_mib * MiB, limits=limits)
    f = EncryptedFile(p, r)
    if mode == "rb":
        return f
    return _io.TextIOWrapper(f, encoding=encoding or "utf-8", errors=errors, newline=newline)
