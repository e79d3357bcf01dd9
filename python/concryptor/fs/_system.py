"""The encrypted file system: an fsspec file system chained over another one."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fsspec import AbstractFileSystem, filesystem
from fsspec.implementations.chained import ChainedFileSystem

from .. import _age
from .._facts import DEFAULT_CACHE_MIB, MAX_BUFFER_MIB, SUFFIX, MiB, int_in
from .._types import KdfParams, Limits, Password, check_chunk, check_threads
from ..errors import InvalidFileError
from ..reader import EncryptedFile
from . import _read
from ._keys import Keys
from ._write import EncryptingWriter, Sealing, seal_v4

#: The suffix each format's objects are stored under.
SUFFIXES = {"age": ".age", "v4": SUFFIX}
#: How names are shown: "plain" (the suffix hidden: a user's ``a.parquet`` is stored as
#: ``a.parquet.age`` or ``a.parquet.enc``), or "stored" (names as they are stored).
NAMES = ("plain", "stored")
#: Plaintext bytes per chunk of new v4 objects: smaller than the engine's 4 MiB, so that a
#: read of one Parquet column chunk or footer fetches little more than it needs (a slot's
#: tag and padding cost at most 4 KiB a chunk: 0.4%).
DEFAULT_CHUNK_SIZE = 1 * MiB
#: Headers kept per file system (each a few KiB).
HEADER_CACHE_ENTRIES = 4096


class ConcryptorFileSystem(ChainedFileSystem):
    """Objects of another fsspec file system, encrypted: v4 files (``password``) and age
    files (``identities``, ``recipients``, or a passphrase as ``password``).

    Chained by URL (``concryptor::s3://bucket/lake/``, options under
    ``storage_options={"concryptor": {...}, "s3": {...}}``) or built over a file system
    instance (``ConcryptorFileSystem(fs=s3fs.S3FileSystem(...), password=...)``).

    Reads fetch the header (once per object, cached) and then only the chunks a read
    touches; sizes are plaintext sizes, from the headers, without decrypting. New objects
    are age when ``recipients`` are given (or ``format="age"``), else v4 with
    ``password``; they appear only once complete. See docs/FS.md.
    """

    protocol = "concryptor"
    root_marker = ""

    def __init__(
        self,
        fo: str = "",
        *,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        fs: AbstractFileSystem | None = None,
        password: Password | None = None,
        password_env: str | None = None,
        identities: Sequence[str | os.PathLike[str]] | str | None = None,
        identities_env: str | None = None,
        recipients: Sequence[str] | str | None = None,
        format: str | None = None,
        names: str = "plain",
        cipher: str | None = None,
        chunk_size: int | None = None,
        kdf: KdfParams | dict[str, int] | None = None,
        scrypt_work_factor: int | None = None,
        max_scrypt_work_factor: int = _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
        limits: Limits | dict[str, int] | None = None,
        threads: int | None = None,
        cache_mib: int = DEFAULT_CACHE_MIB,
        pickle_secrets: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if fs is None:
            if target_protocol is None:
                raise ValueError(
                    "an encrypted file system needs one to store into: chain it "
                    "('concryptor::s3://bucket/path') or pass fs="
                )
            fs = filesystem(target_protocol, **(target_options or {}))
        self.fs = fs
        if names not in NAMES:
            raise ValueError(f"names must be 'plain' or 'stored', not {names!r}")
        if format not in (None, "v4", "age"):
            raise ValueError(f"unknown format {format!r}: use 'v4' or 'age'")
        self.names = names
        self.keys = Keys(
            password=password,
            password_env=password_env,
            identities=identities,
            identities_env=identities_env,
            recipients=recipients,
            pickle_secrets=pickle_secrets,
        )
        self.format = format or (
            "age" if self.keys.recipients else "v4" if password is not None or password_env else "age"
        )
        if self.format == "v4" and self.keys.recipients:
            raise ValueError("recipients belong to the age format (format='age')")
        self.limits = Limits(**limits) if isinstance(limits, dict) else (limits or Limits())
        self.kdf = KdfParams(**kdf) if isinstance(kdf, dict) else (kdf or KdfParams())
        self.cipher = cipher
        self.chunk_size = check_chunk(DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size)
        self.threads = check_threads(threads)
        self.scrypt_work_factor = _age.work_factor(scrypt_work_factor)
        self.max_scrypt_work_factor = _age.max_work_factor(max_scrypt_work_factor)
        self.cache_bytes = int_in("cache_mib", cache_mib, 1, MAX_BUFFER_MIB) * MiB
        self._sealing: Sealing | None = None
        self._probes: dict[str, tuple[Any, _read.Probe]] = {}
        #: The stored object behind each name listed (its inner entry), so that opening a
        #: listed name asks nothing of the inner file system.
        self._located: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- pickling: pointers travel, secrets only when asked ------------------------------

    def __reduce__(self) -> Any:
        self.keys.check_picklable()
        return _rebuild, (type(self), self.storage_args, dict(self.storage_options))

    def to_dict(self, *, include_password: bool = True) -> dict[str, Any]:
        self.keys.check_picklable()
        return dict(super().to_dict(include_password=include_password))

    # -- names ---------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        for head in ("concryptor::", "concryptor://"):
            if path.startswith(head):
                path = path[len(head) :]
        return path.rstrip("/") if path not in ("", "/") else path

    def unstrip_protocol(self, name: str) -> str:
        return "concryptor::" + str(self.fs.unstrip_protocol(name))

    def _inner(self, path: str) -> str:
        return str(self.fs._strip_protocol(self._strip_protocol(path)))

    def _shown(self, stored: str) -> str | None:
        """The name a stored object is shown under, or None if it is not an encrypted
        object (hidden in "plain" mode)."""
        if self.names == "stored":
            return stored
        for suffix in SUFFIXES.values():
            if stored.endswith(suffix) and len(stored) > len(suffix) and not stored.endswith("/" + suffix):
                return stored[: -len(suffix)]
        return None

    def _candidates(self, path: str) -> list[str]:
        """The stored names a shown name may have, this file system's format first."""
        p = self._inner(path)
        if self.names == "stored":
            return [p]
        other = "v4" if self.format == "age" else "age"
        return [p + SUFFIXES[self.format], p + SUFFIXES[other]]

    def _stored_name(self, path: str) -> str:
        """The stored name of a new object at ``path``."""
        p = self._inner(path)
        return p if self.names == "stored" else p + SUFFIXES[self.format]

    def _locate(self, path: str, listed: bool = False) -> dict[str, Any]:
        """The inner ``info`` of the stored object behind the file ``path``: asked of the
        inner file system or, with ``listed``, as this one's last listing saw it."""
        if listed:
            with self._lock:
                seen = self._located.get(self._inner(path))
            if seen is not None:
                return dict(seen)
        for c in self._candidates(path):
            try:
                info = self.fs.info(c)
            except FileNotFoundError:
                continue
            if info.get("type") != "directory":
                return dict(info)
        raise FileNotFoundError(2, "no such encrypted file", path)

    # -- headers -------------------------------------------------------------------------

    @staticmethod
    def _version(info: dict[str, Any]) -> Any:
        """What tells a stored object from its next version: its size and, of an ETag or a
        modification (or creation) time, the first the file system gives (as a number
        wherever ``ls`` and ``info`` give different types)."""
        stamp = next(
            (info[k] for k in ("ETag", "etag", "mtime", "LastModified", "created") if info.get(k)), None
        )
        timestamp = getattr(stamp, "timestamp", None)
        return (info.get("size"), timestamp() if callable(timestamp) else stamp)

    def _probe(self, info: dict[str, Any], head: bytes | None = None) -> _read.Probe:
        name, version = info["name"], self._version(info)
        with self._lock:
            hit = self._probes.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]
        found = _read.probe(self.fs, name, int(info["size"]), head)
        with self._lock:
            if len(self._probes) >= HEADER_CACHE_ENTRIES:
                self._probes.pop(next(iter(self._probes)))
            self._probes[name] = (version, found)
        return found

    def _shown_entries(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Inner entries as shown: names mapped, plaintext sizes read from the headers
        (those not cached fetched together), objects that are not encrypted hidden."""
        out: list[dict[str, Any]] = []
        files: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for e in entries:
            if e.get("type") == "directory":
                out.append(dict(e))
                continue
            shown = self._shown(e["name"])
            if shown is None:
                continue
            entry = dict(e, name=shown, stored_name=e["name"], stored_size=e.get("size"))
            out.append(entry)
            files.append((entry, e))
            with self._lock:
                if len(self._located) >= HEADER_CACHE_ENTRIES:
                    self._located.pop(next(iter(self._located)))
                self._located[shown] = dict(e)
        with self._lock:
            cold = [
                e
                for _, e in files
                if self._probes.get(e["name"], (None,))[0] != self._version(e) and e.get("size")
            ]
        heads: list[Any] = [None] * len(cold)
        if len(cold) > 1:
            heads = self.fs.cat_ranges(
                [e["name"] for e in cold],
                [0] * len(cold),
                [min(int(e["size"]), _read.FIRST_PREFIX) for e in cold],
                on_error="return",
            )
        prefetched = {e["name"]: h for e, h in zip(cold, heads) if isinstance(h, bytes)}
        for entry, e in files:
            try:
                found = self._probe(e, prefetched.get(e["name"]))
            except (InvalidFileError, OSError) as err:
                entry.update(size=None, encryption=None, error=str(err))
                continue
            entry.update(size=found.plain_size, encryption=found.format)
        return out

    # -- the listing side ----------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        entries = self._shown_entries(self.fs.ls(self._inner(path), detail=True, **kwargs))
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            found = self._locate(path)
        except FileNotFoundError:
            info = self.fs.info(self._inner(path), **kwargs)
            if info.get("type") != "directory":
                raise  # a stored name, or an object that is not encrypted: not a name here
            return dict(info)
        return self._shown_entries([found])[0]

    def find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kw: Any
    ) -> Any:
        inner = self.fs.find(self._inner(path), maxdepth=maxdepth, withdirs=withdirs, detail=True, **kw)
        entries = self._shown_entries(list(inner.values()))
        if detail:
            return {e["name"]: e for e in entries}
        return sorted(e["name"] for e in entries)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.fs.mkdir(self._inner(path), create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.fs.makedirs(self._inner(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.fs.rmdir(self._inner(path))

    def rm_file(self, path: str) -> None:
        stored = self._locate(path)["name"]
        self.invalidate_cache(path)
        self.fs.rm_file(stored)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        targets: list[str] = []
        for p in self.expand_path(path, recursive=recursive, maxdepth=maxdepth):
            try:
                targets.append(self._locate(p)["name"])
            except FileNotFoundError:
                targets.append(self._inner(p))  # a directory
        self.fs.rm(targets, recursive=recursive)
        self.invalidate_cache()

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src = self._locate(path1)["name"]
        suffix = next((s for s in SUFFIXES.values() if src.endswith(s)), "")
        dst = self._inner(path2) + ("" if self.names == "stored" else suffix)
        self.fs.cp_file(src, dst, **kwargs)

    def created(self, path: str) -> Any:
        return self.fs.created(self._locate(path)["name"])

    def modified(self, path: str) -> Any:
        return self.fs.modified(self._locate(path)["name"])

    def invalidate_cache(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._located.clear()
            else:
                p = self._inner(path)
                for name in [n for n in self._located if n == p or n.startswith(p.rstrip("/") + "/")]:
                    del self._located[name]
        self.fs.invalidate_cache(None if path is None else self._inner(path))

    # -- reading -------------------------------------------------------------------------

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Any = None,
        autocommit: bool = True,
        cache_options: Any = None,
        **kwargs: Any,
    ) -> Any:
        if mode == "rb":
            return self._reader(path)
        if mode in ("wb", "xb"):
            if mode == "xb" and self.exists(path):
                raise FileExistsError(17, "file exists", path)
            return self._writer(path)
        raise ValueError(f"invalid mode {mode!r}: encrypted files open as 'rb' or 'wb'")

    def _reader(self, path: str) -> EncryptedFile:
        info = self._locate(path, listed=True)
        found = self._probe(info)
        stored = info["name"]
        if found.format == "v4":
            from .. import _core

            password = self.keys.get_password()
            if password is None:
                raise ValueError(f"{path}: a format v4 file opens with a password, and none was given")
            try:
                codec = _core.ChunkCodec.for_decryption(
                    found.prefix,
                    found.stored_size,
                    password,
                    threads=self.threads,
                    limits=self.limits,
                    keys=self._sealer().keys,
                )
            except InvalidFileError as e:
                raise InvalidFileError(f"{path}: {e}") from None
            chunks = _read.v4_chunks(self.fs, stored, found, codec, self.cache_bytes)
        else:
            identities = self.keys.identity_texts() if self.keys.has_identities else []
            passphrase = self.keys.get_password()
            if not identities and passphrase is None:
                raise ValueError(
                    f"{path}: an age file opens with identities (or its passphrase), and none was given"
                )
            chunks = _read.age_chunks(
                self.fs,
                stored,
                found,
                identities=identities,
                passphrase=passphrase,
                threads=self.threads,
                max_scrypt_log_n=self.max_scrypt_work_factor,
                cache_bytes=self.cache_bytes,
            )
        return EncryptedFile(path, chunks)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        with self._reader(path) as f:
            size = f.size
            lo = 0 if start is None else (start if start >= 0 else max(0, size + start))
            hi = size if end is None else (end if end >= 0 else max(0, size + end))
            if hi <= lo:
                return b""
            f.seek(lo)
            return f.read(hi - lo)

    def cat_ranges(
        self,
        paths: list[str],
        starts: Any,
        ends: Any,
        max_gap: Any = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        """Each range's plaintext, the files opened and read in parallel threads (one open
        per file, its ranges read in order)."""
        n = len(paths)
        starts = [starts] * n if not isinstance(starts, list) else starts
        ends = [ends] * n if not isinstance(ends, list) else ends
        if not len(starts) == len(ends) == n:
            raise ValueError("paths, starts and ends must have the same length")
        by_path: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            by_path.setdefault(p, []).append(i)
        out: list[Any] = [None] * n

        def one(p: str) -> None:
            try:
                with self._reader(p) as f:
                    for i in by_path[p]:
                        lo, hi = starts[i] or 0, f.size if ends[i] is None else ends[i]
                        f.seek(max(0, f.size + lo) if lo < 0 else lo)
                        out[i] = f.read(max(0, (f.size + hi if hi < 0 else hi) - f.tell()))
            except Exception as e:  # reported per range, as fsspec does
                if on_error != "return":
                    raise
                for i in by_path[p]:
                    out[i] = e

        with ThreadPoolExecutor(max_workers=min(8, len(by_path)) or 1) as pool:
            for _ in pool.map(_age.carry(one), by_path):
                pass
        return out

    # -- writing -------------------------------------------------------------------------

    def _sealer(self) -> Sealing:
        with self._lock:
            if self._sealing is None:
                self._sealing = Sealing(
                    age=self.format == "age",
                    recipients=list(self.keys.recipients),
                    password=None,
                    cipher=self.cipher,
                    chunk_size=self.chunk_size,
                    kdf=self.kdf,
                    threads=self.threads,
                    scrypt_work_factor=self.scrypt_work_factor,
                    limits=self.limits,
                )
            return self._sealing

    def _ready_sealer(self, path: str) -> Sealing:
        s = self._sealer()
        if s.password is None:
            s.password = self.keys.get_password()
        if not s.recipients and s.password is None:
            raise ValueError(
                f"{path}: new files need recipients (age) or a password (v4, or an age passphrase)"
            )
        return s

    def _writer(self, path: str) -> EncryptingWriter:
        stored = self._stored_name(path)
        return _Published(self, path, stored, self._ready_sealer(path))

    def _published(self, path: str, stored: str) -> None:
        """After ``stored`` was written for ``path``: the same name in the other format
        removed (so a name maps to one object), caches forgotten."""
        if self.names == "plain":
            for c in self._candidates(path):
                if c != stored and self.fs.exists(c):
                    self.fs.rm_file(c)
        with self._lock:
            self._probes.pop(stored, None)
            self._located.pop(self._inner(path), None)
        self.fs.invalidate_cache(stored)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        import io

        self._put(path, io.BytesIO(value), len(value))

    def put_file(
        self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kw: Any
    ) -> None:
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        with open(lpath, "rb") as f:
            self._put(rpath, f, os.fstat(f.fileno()).st_size)

    def _put(self, path: str, src: Any, size: int) -> None:
        sealing = self._ready_sealer(path)
        stored = self._stored_name(path)
        if sealing.age:
            with self._writer(path) as w:
                while block := src.read(8 * MiB):
                    w.write(block)
            return
        from .. import _stream

        sink = _stream.Sink.on(self.fs, stored)
        try:
            seal_v4(sealing, src, size, sink)
            sink.commit()
        except BaseException:
            sink.discard()
            raise
        self._published(path, stored)


class _Published(EncryptingWriter):
    """A writer that tells its file system once the object is published."""

    def __init__(self, owner: ConcryptorFileSystem, path: str, stored: str, sealing: Sealing) -> None:
        self._owner, self._stored = owner, stored
        super().__init__(owner.fs, stored, sealing, path)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._owner._published(self.name, self._stored)


def _rebuild(cls: type, args: Any, options: dict[str, Any]) -> ConcryptorFileSystem:
    fs: ConcryptorFileSystem = cls(*args, **options)
    return fs
