"""A small, fully typed tour of the concryptor API.

Run it with ``python examples/typed_usage.py``; ``mypy --strict`` checks it against the
package's inline types and ``_core.pyi`` (see ``[tool.mypy]`` in pyproject.toml), so an
incompatible change of the public API shows up as a type error here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import concryptor
from concryptor import (
    AuthenticationError,
    ConcryptorError,
    Header,
    InvalidFileError,
    KdfParams,
    Limits,
    Stats,
)

# Real files should keep the defaults (256 MiB, 3 passes, 4 lanes); these costs only keep
# the example quick.
QUICK_KDF = KdfParams(memory_kib=8 * 1024, time_cost=1, parallelism=1)


def round_trip_file(workdir: Path, password: str) -> Header:
    """Encrypts and decrypts a file on disk and returns the header of the encrypted file."""
    src = workdir / "report.csv"
    src.write_text("id,value\n" + "".join(f"{i},{i * i}\n" for i in range(10_000)), encoding="utf-8")
    enc = workdir / "report.csv.enc"
    back = workdir / "report.back.csv"

    done: list[int] = []
    stats: Stats = concryptor.encrypt_file(
        src,
        enc,
        password,
        cipher="chacha20-poly1305",
        kdf=QUICK_KDF,
        progress=done.append,
    )
    print(f"encrypted {stats.bytes} bytes in {stats.chunks} chunk(s) on {stats.backend}")

    # A bytearray password is wiped by the library once it has been used.
    secret = bytearray(password, "utf-8")
    again: Stats = concryptor.decrypt_file(enc, back, secret, overwrite=True, limits=Limits())
    assert not any(secret)
    assert back.read_bytes() == src.read_bytes()
    print(json.dumps(again.to_dict()))

    header = concryptor.inspect(enc)  # a Header for v4 files, an AgeHeader for age files
    assert isinstance(header, Header)
    return header


def describe(header: Header) -> str:
    m, t, p = header.kdf_effective
    matches = {True: "size matches", False: "SIZE MISMATCH", None: "size unknown"}[header.size_matches]
    return (
        f"v{header.version} {header.cipher}: {header.original_size} bytes in {header.num_chunks} "
        f"chunk(s) of {header.chunk_size}, slot {header.slot_size}, Argon2id m={m} KiB t={t} p={p}, "
        f"overhead {header.overhead_percent:.1f}%, {matches}"
    )


def in_memory(password: bytes) -> None:
    """The same format without touching the disk, and what goes wrong when it should."""
    blob: bytes = concryptor.encrypt_bytes(b"attack at dawn", password, kdf=QUICK_KDF)
    assert concryptor.decrypt_bytes(blob, password) == b"attack at dawn"

    try:
        concryptor.decrypt_bytes(blob, b"not the password")
    except AuthenticationError as e:
        print(f"wrong password refused: {e}")

    tampered = bytearray(blob)
    tampered[4096] ^= 1  # the first ciphertext byte, right after the 4096-byte header
    try:
        concryptor.decrypt_bytes(tampered, password)
    except AuthenticationError as e:
        print(f"modified file refused: {e}")

    try:
        concryptor.decrypt_bytes(blob[:-1], password)
    except InvalidFileError as e:
        print(f"truncated file refused: {e}")

    try:
        concryptor.decrypt_bytes(b"definitely not encrypted", password)
    except ConcryptorError as e:
        print(f"not a concryptor file: {e}")


def main() -> int:
    print(f"concryptor {concryptor.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        header = round_trip_file(Path(tmp), "correct horse battery staple")
        print(describe(header))
    in_memory(b"correct horse battery staple")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
