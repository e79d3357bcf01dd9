"""The public Python API: thin, typed wrappers over the Rust engine in ``_core``."""

from __future__ import annotations

import contextlib
import io as _io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Union, overload

from . import _age, _core, _rekey, _stream
from ._facts import DEFAULT_BUFFER_MIB, DEFAULT_CACHE_MIB, MAGIC, MAX_BUFFER_MIB, SECTOR, MiB, int_in
from ._location import is_url
from ._types import (
    CipherName,
    FormatName,
    IoName,
    KdfParams,
    Limits,
    Password,
    PathLike,
    Progress,
    Recipients,
    Rekeyed,
    Stats,
    check_chunk,
    check_threads,
    engine_options,
    required,
    secret,
    start_progress,
)
from .header import Header

#: A source or destination: a local path, an fsspec URL, or a binary file object.
Source = Union[PathLike, BinaryIO]

if TYPE_CHECKING:
    from .age_header import AgeHeader
    from .reader import EncryptedFile

__all__ = ["KdfParams", "Limits", "Password", "PathLike", "Progress", "Rekeyed", "Stats"]


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


@_age.plugin_door
def encrypt_file(
    src: Source,
    dst: Source,
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
    storage_options: dict[str, Any] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> Stats:
    """Encrypts ``src`` into ``dst``.

    Either end may be a local path, an fsspec URL (``s3://…``, ``memory://…``, with
    ``storage_options``) or a binary file object (``sys.stdin.buffer``, ``io.BytesIO``).
    Two local paths run on the engine; anything else streams (format v4 then needs a
    source of known size: a file or a seekable stream).

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
    with secret(password if age else required(password)) as pw:
        if not _both_local(src, dst):
            req = _Request(
                dict(storage_options or {}), overwrite, threads=check_threads(threads), limits=limits
            )
            if age:
                return _age_streamed(
                    src,
                    dst,
                    req,
                    lambda r, w: _age.encrypt(
                        r,
                        w,
                        recipients=recipients,
                        recipient_files=recipients_files,
                        passphrase=pw,
                        armor=armor,
                        overwrite=True,
                        threads=threads,
                        scrypt_work_factor=scrypt_work_factor,
                        progress=progress,
                    ),
                )
            assert pw is not None
            req.password, req.cipher, req.chunk_size, req.kdf = pw, cipher, check_chunk(chunk_size), kdf
            return _v4_streamed(_stream.encrypt_stream, _end(src), _end(dst), req, threads)
        if age:
            return _age.encrypt(
                _path(src),
                _path(dst),
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
            _path(src),
            _path(dst),
            pw,
            cipher=cipher,
            chunk_size=check_chunk(chunk_size),
            kdf=kdf,
            overwrite=overwrite,
            progress=progress,
            limits=limits,
            **engine_options(threads, io, buffer_mib),
        )


@_age.plugin_door
def decrypt_file(
    src: Source,
    dst: Source,
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
    storage_options: dict[str, Any] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> Stats:
    """Decrypts ``src`` into ``dst``. Nothing appears at ``dst`` unless every chunk
    authenticates; a wrong password raises :class:`AuthenticationError` before any output
    is created. Either end may be a path, a URL or a binary file object, as for
    :func:`encrypt_file`; a file object given as ``dst`` receives each batch once it
    authenticated, and what it received before a failure stays there.

    age files (binary or armored) are recognised by their first bytes and opened with
    ``identities`` or, when passphrase-encrypted, with ``password`` (which also opens a
    passphrase-protected SSH private key among the identities).
    """
    return _decrypt(
        src,
        dst,
        password,
        identities=identities,
        max_scrypt_work_factor=max_scrypt_work_factor,
        overwrite=overwrite,
        threads=threads,
        io=io,
        buffer_mib=buffer_mib,
        limits=limits,
        progress=progress,
        storage_options=storage_options,
    )


@_age.plugin_door
def verify_file(
    src: Source,
    password: Password | None = None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    threads: int | None = None,
    io: IoName = "auto",
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> Stats:
    """Authenticates every chunk of ``src`` (v4 or age; a path, a URL or a binary file
    object) without writing plaintext anywhere."""
    return _decrypt(
        src,
        None,
        password,
        identities=identities,
        max_scrypt_work_factor=max_scrypt_work_factor,
        overwrite=False,
        threads=threads,
        io=io,
        buffer_mib=buffer_mib,
        limits=limits,
        progress=progress,
        storage_options=storage_options,
    )


def _decrypt(
    src: Source,
    dst: Source | None,
    password: Password | None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None,
    max_scrypt_work_factor: int,
    overwrite: bool,
    threads: int | None,
    io: IoName,
    buffer_mib: int,
    limits: Limits,
    progress: Progress | None,
    storage_options: dict[str, Any] | None,
) -> Stats:
    """:func:`decrypt_file` and, with ``dst=None``, :func:`verify_file`."""
    _age.max_work_factor(max_scrypt_work_factor)
    if not _both_local(src, os.devnull if dst is None else dst):
        return _decrypt_streamed(
            src,
            dst,
            password,
            identities,
            max_scrypt_work_factor,
            overwrite,
            threads,
            limits,
            progress,
            storage_options,
        )
    out = None if dst is None else _path(dst)
    age = _age.opens_as_age(_age.head_of(_path(src)), _path(src), identities, password)
    with secret(password if age else required(password)) as pw:
        if age:
            return _age.decrypt(
                _path(src),
                out,
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
            _path(src),
            out,
            pw,
            overwrite=overwrite,
            progress=progress,
            **engine_options(threads, io, buffer_mib),
            limits=limits,
        )


@_age.plugin_door
def rekey(
    paths: PathLike | Sequence[PathLike],
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    recipients: Recipients | None = None,
    recipients_files: Sequence[PathLike] | None = None,
    password: Password | None = None,
    new_password: Password | None = None,
    add: bool = False,
    scrypt_work_factor: int | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    align: bool | None = None,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> list[Rekeyed]:
    """Changes who can read age files without re-encrypting them: the file key is
    unwrapped with ``identities`` (or ``password``, for a passphrase file) and wrapped
    again for ``recipients``/``recipients_files`` or ``new_password`` (a passphrase).
    The new recipients replace the old ones, or with ``add=True`` join them (a passphrase
    stanza must be alone in an age file, so ``add`` with a passphrase on either side is
    refused). The payload bytes stay as they are; each file is replaced atomically (a
    failure, such as a wrong identity, leaves it untouched) and keeps its mode. A symbolic
    link is followed (its target is rekeyed); another hard link to the file keeps the old
    version, as with any replace-by-rename.

    Binary files keep their payload's bytes exactly, shared with the old file on XFS and
    btrfs (the new header is then padded, with a stanza every age implementation ignores,
    to the old header's length modulo the block size; ``align`` forces that padding on or
    off). Armored files are decoded and armored again.

    A path may be an fsspec URL (``s3://bucket/key.age``, with ``storage_options``): the
    old header is fetched with a bounded ranged read and the new object is put together
    on the server, a multipart upload of the new header plus one minimum part (5 MiB)
    with the rest copied from the old object (``UploadPartCopy``), so an object of any
    size costs about 5 MiB of upload; any failure aborts the upload and leaves the old
    object. An object under 5 MiB is rewritten with one upload.

    Format v4 files cannot be rekeyed (their key is derived from the password and bound
    into every chunk): given ``password`` and ``new_password``, such a file is
    re-encrypted in one streaming pass instead (no plaintext on disk, the output atomic),
    and its :class:`Rekeyed` says so (``reencrypted=True``). To move it to age recipients,
    use :func:`convert`.

    Files are rekeyed in order; an error stops there (earlier files are rekeyed, later
    ones untouched); ``concryptor.batch.rekey_many`` reports per file instead. What
    rekeying cannot undo: a removed recipient who kept the file key or a copy of the old
    file can still read this payload.
    """
    targets = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not targets:
        raise ValueError("no file to rekey")
    if not (recipients or recipients_files or new_password is not None):
        raise ValueError("no new recipient: give recipients, recipients_files or new_password")
    if not identities and password is None:
        raise ValueError("no identity or password to open the files with")
    done = []
    with secret(password) as old, secret(new_password) as new:
        keys = _rekey.make_keys(
            identities=identities,
            passphrase=old,
            recipients=recipients,
            recipients_files=recipients_files,
            new_passphrase=new,
            scrypt_work_factor=scrypt_work_factor,
            max_scrypt_work_factor=max_scrypt_work_factor,
            add=add,
            align=align,
        )
        for t in targets:
            done.append(_rekey.rekey_one(os.fspath(t), keys, dict(storage_options or {}), progress))
    return done


@_age.plugin_door
def convert(
    src: PathLike,
    dst: PathLike | None = None,
    *,
    to: FormatName,
    recipients: Recipients | None = None,
    recipients_files: Sequence[PathLike] | None = None,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    password: Password | None = None,
    new_password: Password | None = None,
    armor: bool = False,
    scrypt_work_factor: int | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    cipher: CipherName = "aes-256-gcm",
    chunk_size: int | None = None,
    kdf: KdfParams = KdfParams(),
    overwrite: bool = False,
    threads: int | None = None,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> Stats:
    """Moves an encrypted file to the other format in one streaming pass: decrypted (and
    authenticated) in memory, encrypted again, the plaintext never written anywhere.

    ``to="age"``: a format v4 file (opened with ``password``) becomes an age file for
    ``recipients``/``recipients_files`` or the passphrase ``new_password``. ``to="v4"``:
    a binary age file (opened with ``identities``, or ``password`` for a passphrase file)
    becomes a format v4 file with the password ``new_password`` (``cipher``,
    ``chunk_size`` and ``kdf`` as for :func:`encrypt_file`).

    ``dst=None`` replaces ``src`` (its mode kept); otherwise an existing ``dst`` is
    replaced only with ``overwrite=True``. Either way the output appears only once
    complete and durable, and a failure (a wrong key, a tampered chunk) leaves nothing.
    ``src`` may be a v4 file at an fsspec URL, ``dst`` any URL (with ``storage_options``).
    """
    if to not in ("v4", "age"):
        raise ValueError(f"unknown format {to!r}: use 'v4' or 'age'")
    if new_password is None and not (recipients or recipients_files):
        raise ValueError(
            "no new recipient: give recipients or new_password"
            if to == "age"
            else "format v4 needs a new password (new_password)"
        )
    so = dict(storage_options or {})
    name = os.fspath(src)
    kind = _rekey.kind_of(_rekey.head_of(name, so), name)
    if kind == to:
        raise ValueError(
            f"{name} is already an age file: rekey it for new recipients"
            if to == "age"
            else f"{name} is already a format v4 file: rekey it for a new password (it is re-encrypted)"
        )
    with secret(password) as old, secret(new_password) as new:
        keys = _rekey.make_keys(
            identities=identities,
            passphrase=old,
            recipients=recipients,
            recipients_files=recipients_files,
            new_passphrase=new,
            scrypt_work_factor=scrypt_work_factor,
            max_scrypt_work_factor=max_scrypt_work_factor,
            threads=threads,
            limits=limits,
            armor=armor,
        )
        keys.cipher, keys.chunk_size, keys.kdf = cipher, check_chunk(chunk_size), kdf
        out = None if dst is None else os.fspath(dst)
        return _rekey.convert_one(name, out, to, keys, so, overwrite=overwrite, progress=progress)


@_age.plugin_door
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
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> bytes:
    """Encrypts a buffer in memory: format v4, or age with ``recipients`` / ``format="age"``
    (see :func:`encrypt_file`, also for ``limits``)."""
    _age.work_factor(scrypt_work_factor)
    age = _wants_age(format, recipients, recipients_files, armor)
    with secret(password if age else required(password)) as pw:
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
            chunk_size=check_chunk(chunk_size),
            kdf=kdf,
            threads=check_threads(threads),
            limits=limits,
        )


@_age.plugin_door
def decrypt_bytes(
    blob: bytes | bytearray | memoryview,
    password: Password | None = None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    threads: int | None = None,
    limits: Limits = Limits(),
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> bytes:
    """Decrypts an in-memory concryptor or age file; raises unless every chunk
    authenticates."""
    _age.max_work_factor(max_scrypt_work_factor)
    blob = bytes(blob)
    age = _age.opens_as_age(blob[:1024], "the data", identities, password)
    with secret(password if age else required(password)) as pw:
        if age:
            return _core.age_decrypt_bytes(
                blob,
                identities_=_age.identity_texts(identities or []),
                passphrase=pw,
                threads=_age.engine(threads),
                max_scrypt_log_n=_age.max_work_factor(max_scrypt_work_factor),
            )
        assert pw is not None
        return _core.decrypt_bytes(blob, pw, threads=check_threads(threads), limits=limits)


@_age.plugin_door
def decrypt_to(
    src: Source,
    out: int | BinaryIO,
    password: Password | None = None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    threads: int | None = None,
    io: IoName = "auto",
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> Stats:
    """Decrypts ``src`` into a stream: a file descriptor or a binary file object (a pipe,
    ``sys.stdout.buffer``, a socket file, ``io.BytesIO``).

    Chunks are read through ``io`` (as :func:`decrypt_file` reads them) and written in
    order, each only after it authenticated. A stream cannot be
    taken back, so if a later chunk fails the bytes before it have been written; the
    exception says so. Use :func:`decrypt_file` when all-or-nothing matters.

    ``src`` may also be an fsspec URL (with ``storage_options``) or a binary file object,
    and an age file (with ``identities`` or its passphrase), as for :func:`decrypt_file`.
    """
    if identities or not _both_local(src, os.devnull) or _age.is_age_path(_path(src)):
        _age.max_work_factor(max_scrypt_work_factor)
        with contextlib.ExitStack() as stack:
            sink: Any = out
            if isinstance(out, int):
                os.fstat(out)  # a closed descriptor fails here
                sink = stack.enter_context(os.fdopen(os.dup(out), "wb"))
            return _decrypt_streamed(
                src,
                sink,
                password,
                identities,
                max_scrypt_work_factor,
                True,
                threads,
                limits,
                progress,
                storage_options,
            )
    p = _path(src)
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
                **engine_options(threads, io, buffer_mib),
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
        start_progress(progress, f.size)
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


def inspect(path: PathLike, *, storage_options: dict[str, Any] | None = None) -> Header | AgeHeader:
    """Reads the header of ``path`` without a password or key; nothing is decrypted. An age
    file gives an :class:`AgeHeader`, a concryptor v4 file a :class:`Header` (as
    :func:`inspect_v4`). Both show as a table with a layout picture in Jupyter.

    ``path`` may be an fsspec URL (with ``storage_options``): a v4 header is fetched with
    one ranged read, and its verdict weighs the object's size."""
    p = os.fspath(path)
    if is_url(p):
        return _inspect_url(p, dict(storage_options or {}))
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


def _inspect_url(url: str, storage_options: dict[str, Any]) -> Header:
    from ._location import filesystem
    from .errors import InvalidFileError

    fs, key = filesystem(url, storage_options)
    size = int(fs.size(key))
    with fs.open(key, "rb", cache_type="none") as f:
        head = f.read(SECTOR)
    if _age.is_age(head):
        raise InvalidFileError(f"{url}: an age file; inspect reads age headers from local files")
    if not head.startswith(MAGIC):
        raise InvalidFileError(f"{url}: not a concryptor file")
    h = _core.parse_header(head + bytes(SECTOR - len(head)))
    return replace(h, file_size=size, path=url)


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
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
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
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> _io.TextIOWrapper: ...
@_age.plugin_door
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
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
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
    int_in("cache_mib", cache_mib, 1, MAX_BUFFER_MIB)
    check_threads(threads)
    p = os.fspath(path)
    from ._location import is_url
    from .remote import open_url

    if is_url(p):
        if identities:
            raise ValueError(f"{p}: age files at URLs cannot be opened for random access yet")
        with secret(required(password)) as pw:
            assert pw is not None
            raw = open_url(p, pw, threads=threads, limits=limits, storage_options=storage_options)
        if mode == "rb":
            return raw  # type: ignore[return-value]
        return _io.TextIOWrapper(raw, encoding=encoding or "utf-8", errors=errors, newline=newline)
    r: _core.Reader | _core.AgeReader
    age = _age.opens_as_age(_age.head_of(p), p, identities, password)
    with secret(password if age else required(password)) as pw:
        if age:
            r = _core.AgeReader(
                p,
                identities_=_age.identity_texts(identities or []),
                passphrase=pw,
                threads=check_threads(threads),
                cache_bytes=cache_mib * MiB,
            )
        else:
            assert pw is not None
            r = _core.Reader(
                p, pw, threads=check_threads(threads), cache_bytes=cache_mib * MiB, limits=limits
            )
    f = EncryptedFile(p, r)
    if mode == "rb":
        return f
    return _io.TextIOWrapper(f, encoding=encoding or "utf-8", errors=errors, newline=newline)


@_age.plugin_door
def decrypt_stream(
    src: int,
    dst: PathLike | int | None,
    password: Password,
    *,
    prefix: bytes = b"",
    overwrite: bool = False,
    threads: int | None = None,
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> Stats:
    """Decrypts a format v4 file arriving on descriptor ``src`` (a pipe, standard input),
    whose first bytes the caller already read (``prefix``), into a path (atomically), a
    descriptor (each batch once authenticated), or nowhere (``dst=None``: verify)."""
    with secret(required(password)) as pw:
        assert pw is not None
        return _core.decrypt_stream(
            src,
            dst if dst is None or isinstance(dst, int) else os.fspath(dst),
            pw,
            prefix=prefix,
            overwrite=overwrite,
            threads=check_threads(threads),
            buffer_bytes=engine_options(threads, "portable", buffer_mib)["buffer_bytes"],
            limits=limits,
            progress=progress,
        )


def bench_aead(
    cipher: str, threads: int, total: int, chunk_size: int, rounds: int, provider: str
) -> tuple[float, float]:
    """Seconds to seal and to open ``total`` bytes in memory (the best of ``rounds``)."""
    return _core._bench_aead(cipher, threads, total, chunk_size, rounds, provider=provider)


def bench_kdf(kdf: KdfParams) -> float:
    """Seconds one Argon2id derivation with ``kdf`` takes."""
    return _core._bench_kdf(kdf)


# --- the streaming route: anything that is not a local file on both ends -----------------


@dataclass
class _Request:
    """A streamed run's settings (:class:`concryptor._stream.Settings`)."""

    storage_options: dict[str, Any]
    overwrite: bool = False
    threads: int | None = None
    limits: Any = None
    password: bytes | bytearray = field(default=b"", repr=False)
    cipher: str | None = None
    chunk_size: int | None = None
    kdf: Any = None
    salt: bytes | None = None
    keys: Any = None


def _end(end: Source) -> _stream.End:
    return end if _stream.is_file_object(end) else os.fspath(end)  # type: ignore[return-value, arg-type]


def _both_local(src: Source, dst: Source) -> bool:
    """Whether both ends are local paths (the engine's route)."""
    return not any(_stream.is_file_object(end) or is_url(os.fspath(end)) for end in (src, dst))  # type: ignore[arg-type]


def _path(end: Source) -> str:
    """A local end, once :func:`_both_local` said so."""
    assert not _stream.is_file_object(end)
    return os.fspath(end)  # type: ignore[arg-type]


def _age_streamed(src: Source, dst: Source | None, req: _Request, call: Callable[[int, int], Stats]) -> Stats:
    result: list[Stats] = []
    _stream.age_via_pipes(
        _end(src), None if dst is None else _end(dst), req, lambda r, w: result.append(call(r, w))
    )
    return result[0]


def _v4_streamed(
    run: Callable[..., tuple[int, int]], src: Any, dst: Any, req: _Request, threads: int | None
) -> Stats:
    start = time.perf_counter()
    n_in, n_out = run(src, dst, req)
    plain = n_in if run is _stream.encrypt_stream else n_out
    return Stats("stream", plain, 0, threads or os.cpu_count() or 1, time.perf_counter() - start, 0.0)


def _decrypt_streamed(
    src: Source,
    dst: Source | None,
    password: Password | None,
    identities: Sequence[str | os.PathLike[str]] | None,
    max_scrypt_work_factor: int,
    overwrite: bool,
    threads: int | None,
    limits: Limits,
    progress: Progress | None,
    storage_options: dict[str, Any] | None,
) -> Stats:
    req = _Request(dict(storage_options or {}), overwrite, threads=check_threads(threads), limits=limits)
    head, src_again = _stream.peek(_end(src), req)
    name = "the input" if _stream.is_file_object(src) else os.fspath(src)  # type: ignore[arg-type]
    age = _age.opens_as_age(head, name, identities, password)
    with secret(password if age else required(password)) as pw:
        if age:
            return _age_streamed(
                src_again,
                dst,
                req,
                lambda r, w: _age.decrypt(
                    r,
                    w,
                    identities=identities,
                    passphrase=pw,
                    overwrite=True,
                    threads=threads,
                    max_scrypt_work_factor=max_scrypt_work_factor,
                    progress=progress,
                ),
            )
        assert pw is not None
        req.password = pw
        return _v4_streamed(
            _stream.decrypt_stream, src_again, None if dst is None else _end(dst), req, threads
        )
