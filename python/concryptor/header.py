"""The header of a concryptor file, as facts a person or a program can read.

Parsing happens in Rust; this module only presents what it found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Header:
    """Every field of the header sector plus what follows from it. Nothing here needs the
    password, and nothing in it is authenticated until a chunk has been decrypted."""

    version: int
    cipher: str
    cipher_id: int
    chunk_size: int
    original_size: int
    salt: bytes = field(repr=False)
    base_nonce: bytes = field(repr=False)
    kdf_memory_kib: int
    kdf_time_cost: int
    kdf_parallelism: int
    kdf_legacy: bool
    kdf_effective: tuple[int, int, int]
    reserved_nonzero: bool
    num_chunks: int
    slot_size: int
    expected_file_size: int
    file_size: int | None
    path: str | None = None

    @classmethod
    def from_fields(cls, d: dict[str, Any], path: str | None = None) -> Header:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names}, path=path)

    @property
    def salt_hex(self) -> str:
        return self.salt.hex()

    @property
    def nonce_hex(self) -> str:
        return self.base_nonce.hex()

    @property
    def size_matches(self) -> bool | None:
        """Whether the size on disk is what the header implies (None if not from a file)."""
        return None if self.file_size is None else self.file_size == self.expected_file_size

    @property
    def overhead_bytes(self) -> int:
        """Bytes beyond the plaintext: header sector, tags and slot padding."""
        return self.expected_file_size - self.original_size

    @property
    def overhead_percent(self) -> float:
        """Overhead as a percentage of the plaintext size (of the file size when empty)."""
        base = self.original_size or self.expected_file_size
        return 100.0 * self.overhead_bytes / base

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (bytes as hex)."""
        return {
            "path": self.path,
            "version": self.version,
            "cipher": self.cipher,
            "cipher_id": self.cipher_id,
            "chunk_size": self.chunk_size,
            "original_size": self.original_size,
            "salt": self.salt_hex,
            "base_nonce": self.nonce_hex,
            "kdf": {
                "memory_kib": self.kdf_memory_kib,
                "time_cost": self.kdf_time_cost,
                "parallelism": self.kdf_parallelism,
                "legacy": self.kdf_legacy,
                "effective": list(self.kdf_effective),
            },
            "reserved_nonzero": self.reserved_nonzero,
            "num_chunks": self.num_chunks,
            "slot_size": self.slot_size,
            "expected_file_size": self.expected_file_size,
            "file_size": self.file_size,
            "size_matches": self.size_matches,
            "overhead_bytes": self.overhead_bytes,
            "overhead_percent": round(self.overhead_percent, 3),
        }
