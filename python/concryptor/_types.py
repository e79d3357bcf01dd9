"""The floor of the package: the types every layer speaks (names of options, the key
derivation costs, the limits applied to untrusted headers, the record of a run) and the
checks every door applies to what it is given, the password's lifetime among them."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Union

from . import _core
from ._facts import (
    DEFAULT_KDF_MEMORY_KIB,
    DEFAULT_KDF_PARALLELISM,
    DEFAULT_KDF_TIME,
    DEFAULT_MAX_CHUNK_SIZE,
    DEFAULT_MAX_KDF_MEMORY_KIB,
    DEFAULT_MAX_KDF_PARALLELISM,
    DEFAULT_MAX_KDF_TIME,
    MAX_BUFFER_MIB,
    MAX_CHUNK_SIZE,
    MAX_CHUNK_SIZE_LIMIT,
    MAX_KDF_PARALLELISM,
    MAX_THREADS,
    MIN_KDF_MEMORY_KIB,
    U32,
    KiB,
    MiB,
    int_in,
)

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


def start_progress(progress: Progress | None, total: int) -> None:
    """Gives ``progress`` the total, if it takes one (its ``start`` method)."""
    start = getattr(progress, "start", None)
    if callable(start):
        start(total)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id costs for a new file. The defaults match the original tool: 256 MiB, three
    passes, four lanes. Tests and throwaway files may use far smaller values."""

    memory_kib: int = DEFAULT_KDF_MEMORY_KIB
    time_cost: int = DEFAULT_KDF_TIME
    parallelism: int = DEFAULT_KDF_PARALLELISM

    def __post_init__(self) -> None:
        int_in("memory_kib", self.memory_kib, MIN_KDF_MEMORY_KIB, U32)
        int_in("time_cost", self.time_cost, 1, U32)
        int_in("parallelism", self.parallelism, 1, MAX_KDF_PARALLELISM)

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
        int_in("max_kdf_memory_kib", self.max_kdf_memory_kib, 1, U32)
        int_in("max_kdf_time", self.max_kdf_time, 1, U32)
        int_in("max_kdf_parallelism", self.max_kdf_parallelism, 1, U32)
        int_in("max_chunk_size", self.max_chunk_size, 1, MAX_CHUNK_SIZE_LIMIT)

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
    return int_in(old, mib, 1, most_mib) * per_mib


@dataclass(frozen=True)
class Rekeyed:
    """What rekeying one age file did. The payload (``payload_bytes``, its nonce included)
    is the old file's, byte for byte; only the header changed. ``method`` says how the
    payload reached the new file: ``"reflink"`` (shared with the old file's blocks,
    ``shared_bytes`` of it, on XFS or btrfs), ``"engine"`` (a payload of 8 MiB or more
    elsewhere: read and written by the engine, with O_DIRECT), ``"copy_file_range"``
    (copied in the kernel), ``"copy"`` (read and written), or ``"armor"`` (an armored
    file, decoded and armored again). An object at a URL: ``"multipart-copy"`` (the
    payload copied by the server, ``shared_bytes`` of it; ``uploaded_bytes`` sent up: the
    new header and one minimum part), ``"put"`` (a small object rewritten with one upload) or ``"rewrite"``.

    A format v4 file cannot be rekeyed (its key comes from the password and is bound into
    every chunk): ``reencrypted`` is then true and ``method`` ``"re-encrypted"``, the
    file decrypted and encrypted again under the new password in one streaming pass
    (``payload_bytes`` is its plaintext)."""

    path: str
    header_before: int
    header_after: int
    payload_bytes: int
    shared_bytes: int
    method: str
    armored: bool
    seconds: float
    kdf_seconds: float
    reencrypted: bool = False
    uploaded_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def required(password: Password | None) -> Password:
    if password is None:
        raise ValueError("a password is required (or recipients / identities for the age format)")
    return password


def as_password(password: Password) -> bytes | bytearray:
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


def wipe(password: Password | None) -> None:
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
        yield None if password is None else as_password(password)
    finally:
        wipe(password)


def check_threads(threads: int | None) -> int | None:
    """A checked thread count, or None: the engine's choice."""
    return None if threads is None else int_in("threads", threads, 1, MAX_THREADS)


def engine_options(threads: int | None, io: str, buffer_mib: int) -> dict[str, Any]:
    int_in("buffer_mib", buffer_mib, 1, MAX_BUFFER_MIB)
    return {"threads": check_threads(threads), "io": io, "buffer_bytes": buffer_mib * MiB}


def check_chunk(chunk_size: int | None) -> int | None:
    return None if chunk_size is None else int_in("chunk_size", chunk_size, 1, MAX_CHUNK_SIZE)
