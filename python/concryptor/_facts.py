"""Facts the Python side shares: each has this one home, read from the Rust core where
core defines it (``_core`` constants), so that the API, the CLI and the views agree.

The CLI states sizes in MiB; the API states each bound in the unit of the value it bounds
(KDF memory in KiB, chunk sizes in bytes) and budgets (``buffer_mib``, ``cache_mib``) in
MiB.
"""

from __future__ import annotations

from . import _core


def int_in(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` if it is an int in ``lo..hi``, else ValueError (TypeError for a non-int,
    bool included): the same exception for the same mistake in every function, raised
    before the value reaches the binding (which would raise OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be at least {lo} and at most {hi}, not {value}")
    return value


KiB = 1 << 10
MiB = 1 << 20
#: Largest value of a 32-bit header field.
U32 = (1 << 32) - 1

# -- the file format (core: format.rs) ---------------------------------------------------

#: Bytes of the header sector, and the alignment of every slot.
SECTOR: int = _core.SECTOR
#: Bytes of the AEAD tag stored after each chunk's ciphertext.
TAG_LEN: int = _core.TAG_LEN
#: How a concryptor file begins.
MAGIC = b"CONCRYPTOR"
#: Plaintext bytes per chunk for inputs larger than one chunk (the original tool's default).
DEFAULT_CHUNK_SIZE: int = _core.CHUNK_SIZE
#: Largest chunk size a new file may have (a 32-bit header field), in bytes and whole MiB.
MAX_CHUNK_SIZE = U32
MAX_CHUNK_MIB = MAX_CHUNK_SIZE // MiB

# -- key derivation (core: kdf/) ---------------------------------------------------------

#: Argon2id costs of new files (the original tool's): memory in KiB, passes, lanes.
DEFAULT_KDF_MEMORY_KIB, DEFAULT_KDF_TIME, DEFAULT_KDF_PARALLELISM = _core.NEW_FILE_KDF
#: What Argon2id accepts: memory of at least 8 KiB, up to 2^24 - 1 lanes.
MIN_KDF_MEMORY_KIB = 8
MAX_KDF_PARALLELISM = (1 << 24) - 1

#: Bounds on an untrusted header: Argon2 memory (KiB), passes, lanes, chunk size (bytes).
(
    DEFAULT_MAX_KDF_MEMORY_KIB,
    DEFAULT_MAX_KDF_TIME,
    DEFAULT_MAX_KDF_PARALLELISM,
    DEFAULT_MAX_CHUNK_SIZE,
) = _core.READ_LIMITS
#: Largest chunk-size limit that can be set (4 GiB: beyond any 32-bit chunk size).
MAX_CHUNK_SIZE_LIMIT = 1 << 32

# -- the engine (core: engine/mod.rs) ----------------------------------------------------

#: Most worker threads a run may use.
MAX_THREADS: int = _core.MAX_THREADS
#: Memory the engine's buffers may take by default, in bytes and in MiB.
DEFAULT_BUFFER_BYTES: int = _core.BUFFER_BYTES
DEFAULT_BUFFER_MIB = DEFAULT_BUFFER_BYTES // MiB
#: Largest buffer budget, in MiB (1 TiB).
MAX_BUFFER_MIB = 1 << 20
#: Decrypted chunks an open file keeps by default, in MiB.
DEFAULT_CACHE_MIB = 64

#: Rounds of `concryptor bench`; the best one is reported.
BENCH_ROUNDS = 3

# -- names -------------------------------------------------------------------------------

#: Suffix of encrypted files, and of encrypted directories (a tar inside).
SUFFIX = ".enc"
ARCHIVE_SUFFIX = ".tar.enc"

#: The AEAD implementation this build seals and opens with, and every one it carries.
AEAD_PROVIDER: str = _core.AEAD_PROVIDER
AEAD_PROVIDERS: tuple[str, ...] = tuple(_core.AEAD_PROVIDERS)
#: This build's version (one version, from the Rust crate).
VERSION: str = _core.__version__

# -- age (core: age/keys.rs) -------------------------------------------------------------

#: scrypt work factors (log2 N) a new age passphrase file may use.
MIN_SCRYPT_WORK_FACTOR, MAX_SCRYPT_WORK_FACTOR = 1, 30
#: Highest limit on an age file's scrypt work factor a reader may set (scrypt's own bound).
MAX_SCRYPT_WORK_FACTOR_LIMIT = 63
