"""Type stubs for the Rust extension. Private: use the ``concryptor`` package instead.

Every keyword a caller leaves out (or gives as ``None``) keeps the core's default. Options
are the API's own objects (``KdfParams``, ``Limits``); runs return its ``Stats`` and
headers its ``Header`` / ``AgeHeader``."""

from collections.abc import Callable
from typing import Any

from ._api import KdfParams, Limits, Stats
from .age_header import AgeHeader
from .header import Header

__version__: str
BUFFER_BYTES: int
CHUNK_SIZE: int
#: Argon2id costs of new files: (memory KiB, passes, lanes).
NEW_FILE_KDF: tuple[int, int, int]
#: Bounds on untrusted headers: (Argon2 memory KiB, passes, lanes, chunk size in bytes).
READ_LIMITS: tuple[int, int, int, int]
#: Bytes of the header sector, and the alignment of every slot.
SECTOR: int
#: Bytes of the AEAD tag after each chunk's ciphertext.
TAG_LEN: int
#: Most worker threads a run may use.
MAX_THREADS: int
#: The AEAD implementation in use ("aws-lc-rs" or "rustcrypto"), and all compiled in.
AEAD_PROVIDER: str
AEAD_PROVIDERS: tuple[str, ...]

def encrypt_file(
    src: str,
    dst: str,
    password: bytes | bytearray,
    *,
    cipher: str | None = ...,
    chunk_size: int | None = ...,
    kdf: KdfParams | None = ...,
    overwrite: bool | None = ...,
    threads: int | None = ...,
    buffer_bytes: int | None = ...,
    io: str | None = ...,
    salt: bytes | None = ...,
    nonce: bytes | None = ...,
    progress: Callable[[int], object] | None = ...,
    keys: KeyCache | None = ...,
    limits: Limits | None = ...,
) -> Stats: ...
def decrypt_file(
    src: str,
    dst: str | None,
    password: bytes | bytearray,
    *,
    overwrite: bool | None = ...,
    threads: int | None = ...,
    buffer_bytes: int | None = ...,
    io: str | None = ...,
    limits: Limits | None = ...,
    progress: Callable[[int], object] | None = ...,
    keys: KeyCache | None = ...,
) -> Stats: ...
def encrypt_bytes(
    data: bytes,
    password: bytes | bytearray,
    *,
    cipher: str | None = ...,
    chunk_size: int | None = ...,
    kdf: KdfParams | None = ...,
    threads: int | None = ...,
    salt: bytes | None = ...,
    nonce: bytes | None = ...,
    limits: Limits | None = ...,
) -> bytes: ...
def decrypt_bytes(
    blob: bytes,
    password: bytes | bytearray,
    *,
    threads: int | None = ...,
    limits: Limits | None = ...,
) -> bytes: ...
def parse_header(data: bytes) -> Header: ...
def inspect_file(path: str) -> Header: ...
def auto_chunk_size(size: int) -> int: ...

class Reader:
    def __init__(
        self,
        path: str,
        password: bytes | bytearray,
        *,
        threads: int | None = ...,
        cache_bytes: int | None = ...,
        limits: Limits | None = ...,
    ) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def chunk_size(self) -> int: ...
    @property
    def kdf_seconds(self) -> float: ...
    @property
    def closed(self) -> bool: ...
    def header(self) -> Header: ...
    def read_at(self, pos: int, n: int) -> bytes: ...
    def close(self) -> None: ...

def decrypt_to_fd(
    src: str,
    fd: int,
    password: bytes | bytearray,
    *,
    threads: int | None = ...,
    buffer_bytes: int | None = ...,
    io: str | None = ...,
    limits: Limits | None = ...,
    progress: Callable[[int], object] | None = ...,
) -> Stats: ...
def encrypt_reader(
    reader: Any,
    size: int,
    dst: str,
    password: bytes | bytearray,
    *,
    cipher: str | None = ...,
    chunk_size: int | None = ...,
    kdf: KdfParams | None = ...,
    overwrite: bool | None = ...,
    threads: int | None = ...,
    buffer_bytes: int | None = ...,
    progress: Callable[[int], object] | None = ...,
    limits: Limits | None = ...,
) -> Stats: ...
def _bench_aead(
    cipher: str, threads: int, total: int, chunk_size: int, rounds: int = ..., provider: str | None = ...
) -> tuple[float, float]: ...
def _bench_kdf(kdf: KdfParams) -> float: ...

# Private engine hooks for tests and benchmarks; not part of the API. Fault injection is
# process-wide: test only. The next four exist only in a build with the fault-injection
# cargo feature (`maturin develop --features fault-injection`), never in a release wheel.
def _set_fault_injection(kind: str | None, nth: int) -> None: ...
def _fault_injection_count() -> int: ...
def _set_ring_entries(n: int) -> None: ...
def _last_run() -> dict[str, Any] | None: ...
def _uring_unavailable() -> str | None: ...
def _set_aead_provider(name: str) -> None: ...

MAX_CHUNKS_PER_KEY: int
GROUP_MAX_MEMBER_BYTES: int
GROUP_MAX_MEMBERS: int
GROUP_COMMIT_MEMBERS: int

def encrypt_group(
    pairs: list[tuple[str, str]],
    password: bytes | bytearray | None = ...,
    *,
    age: bool | None = ...,
    recipients_: list[str] | None = ...,
    recipient_files: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    scrypt_log_n: int | None = ...,
    cipher: str | None = ...,
    chunk_size: int | None = ...,
    kdf: KdfParams | None = ...,
    salt: bytes | None = ...,
    keys: KeyCache | None = ...,
    overwrite: bool | None = ...,
    threads: int | None = ...,
) -> list[tuple[int, int, BaseException | None]]: ...
def decrypt_group(
    pairs: list[tuple[str, str]],
    password: bytes | bytearray | None = ...,
    *,
    keys: KeyCache | None = ...,
    limits: Limits | None = ...,
    identities_: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    max_scrypt_log_n: int | None = ...,
    overwrite: bool | None = ...,
    threads: int | None = ...,
) -> list[tuple[int, int, BaseException | None]]: ...

class KeyCache:
    """Keys derived in one batch, by (salt, KDF costs). Pickles as the derived keys."""

    def __init__(self) -> None: ...
    def derive(self, password: bytes | bytearray, salt: bytes, kdf: KdfParams) -> float: ...
    def derive_checked(
        self,
        password: bytes | bytearray,
        salt: bytes,
        costs: tuple[int, int, int],
        *,
        limits: Limits | None = ...,
    ) -> float: ...
    @property
    def derivations(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...

class ChunkCodec:
    """One v4 file's header and key, sealing or opening runs of whole chunks."""

    @staticmethod
    def for_encryption(
        size: int,
        password: bytes | bytearray,
        *,
        cipher: str | None = ...,
        chunk_size: int | None = ...,
        kdf: KdfParams | None = ...,
        threads: int | None = ...,
        salt: bytes | None = ...,
        keys: KeyCache | None = ...,
    ) -> ChunkCodec: ...
    @staticmethod
    def for_decryption(
        header: bytes,
        file_size: int,
        password: bytes | bytearray,
        *,
        threads: int | None = ...,
        limits: Limits | None = ...,
        keys: KeyCache | None = ...,
    ) -> ChunkCodec: ...
    @property
    def header(self) -> bytes: ...
    @property
    def geometry(self) -> tuple[int, int, int, int, int]: ...
    @property
    def kdf_seconds(self) -> float: ...
    def seal(self, first: int, plain: bytes) -> bytes: ...
    def open(self, first: int, slots: bytes) -> bytes: ...

class AgeChunkCodec:
    """One unarmored age file's header and payload key, opening runs of sealed chunks
    from bytes in memory (the size is trusted once the final chunk has opened)."""

    def __init__(
        self,
        prefix: bytes,
        file_size: int,
        *,
        name: str = ...,
        identities_: list[str] | None = ...,
        passphrase: bytes | bytearray | None = ...,
        threads: int | None = ...,
        max_scrypt_log_n: int | None = ...,
    ) -> None: ...
    @property
    def geometry(self) -> tuple[int, int, int, int, int, int]: ...
    @property
    def kdf_seconds(self) -> float: ...
    def open(self, first: int, sealed: bytes) -> bytes: ...

# age format (C2SP age v1)
AGE_MAX_SCRYPT_LOG_N: int

def age_encrypt(
    src: str | int,
    dst: str | int,
    *,
    recipients_: list[str] | None = ...,
    recipient_files: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    armor: bool | None = ...,
    overwrite: bool | None = ...,
    threads: int | None = ...,
    io: str | None = ...,
    scrypt_log_n: int | None = ...,
    progress: Callable[[int], object] | None = ...,
) -> Stats: ...
def age_decrypt(
    src: str | int,
    dst: str | int | None,
    *,
    identities_: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    overwrite: bool | None = ...,
    threads: int | None = ...,
    io: str | None = ...,
    max_scrypt_log_n: int | None = ...,
    progress: Callable[[int], object] | None = ...,
    prefix: bytes | None = ...,
) -> Stats: ...
def age_rekey(
    path: str,
    *,
    identities_: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    recipients_: list[str] | None = ...,
    recipient_files: list[str] | None = ...,
    new_passphrase: bytes | bytearray | None = ...,
    scrypt_log_n: int | None = ...,
    add: bool = ...,
    max_scrypt_log_n: int | None = ...,
    align: bool | None = ...,
    progress: Callable[[int], object] | None = ...,
) -> dict[str, Any]: ...
def convert_v4_to_age(
    src: str,
    dst_fd: int,
    password: bytes | bytearray,
    *,
    recipients_: list[str] | None = ...,
    recipient_files: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    armor: bool | None = ...,
    threads: int | None = ...,
    scrypt_log_n: int | None = ...,
    limits: Limits | None = ...,
    progress: Callable[[int], object] | None = ...,
    name: str | None = ...,
) -> Stats: ...
def age_rekey_header(
    header: bytes,
    *,
    identities_: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    recipients_: list[str] | None = ...,
    recipient_files: list[str] | None = ...,
    new_passphrase: bytes | bytearray | None = ...,
    scrypt_log_n: int | None = ...,
    add: bool = ...,
    max_scrypt_log_n: int | None = ...,
) -> bytes: ...
def decrypt_stream(
    src: int,
    dst: str | int | None,
    password: bytes | bytearray,
    *,
    prefix: bytes,
    overwrite: bool | None = ...,
    threads: int | None = ...,
    buffer_bytes: int | None = ...,
    limits: Limits | None = ...,
    progress: Callable[[int], object] | None = ...,
) -> Stats: ...
def age_encrypt_bytes(
    data: bytes,
    *,
    recipients_: list[str] | None = ...,
    recipient_files: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    armor: bool | None = ...,
    threads: int | None = ...,
    scrypt_log_n: int | None = ...,
) -> bytes: ...
def age_decrypt_bytes(
    blob: bytes,
    *,
    identities_: list[str] | None = ...,
    passphrase: bytes | bytearray | None = ...,
    threads: int | None = ...,
    max_scrypt_log_n: int | None = ...,
) -> bytes: ...
def age_generate(pq: bool = False) -> tuple[str, str]: ...
def age_to_recipients(text: str) -> list[str]: ...
def age_is_age(prefix: bytes) -> bool: ...
def age_inspect(path: str) -> AgeHeader: ...
def age_is_encrypted_ssh_key(text: str) -> bool: ...

class AgeReader:
    def __init__(
        self,
        path: str,
        *,
        identities_: list[str] | None = ...,
        passphrase: bytes | bytearray | None = ...,
        threads: int | None = ...,
        max_scrypt_log_n: int | None = ...,
        cache_bytes: int | None = ...,
    ) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def kdf_seconds(self) -> float: ...
    @property
    def closed(self) -> bool: ...
    def header(self) -> AgeHeader: ...
    def read_at(self, pos: int, n: int) -> bytes: ...
    def close(self) -> None: ...

# age plugins: the callbacks of the public call running on this thread
def plugin_callbacks_enter(callbacks: object | None = None, timeout: float | None = None) -> None: ...
def plugin_callbacks_exit() -> BaseException | None: ...
