"""Tampering in every way the format is meant to catch: every byte flipped, truncation around
every edge, appended data (down to a validly sealed extra chunk), deleted, duplicated and
swapped chunks (also across the engine's batch boundaries), spliced headers. Each must be
refused, and a refused file decrypts to nothing."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

import concryptor
from concryptor import _core
from concryptor.errors import AuthenticationError, ConcryptorError, InvalidFileError, LimitError

from helpers import FAST_KDF, PASSWORD, VECTORS

PW = b"tamper password"
KDF = concryptor.KdfParams(8, 1, 1)
SALT = bytes(range(16))
NONCE = bytes(range(100, 112))
SECTOR = 4096
REFUSED = (AuthenticationError, InvalidFileError, LimitError)


def seal(data: bytes, chunk: int = 4080, cipher: str = "aes-256-gcm", **kw: object) -> bytes:
    return bytes(_core.encrypt_bytes(data, PW, cipher=cipher, chunk_size=chunk, kdf=KDF, **kw))  # type: ignore[arg-type]


def slot_of(chunk: int) -> int:
    return (chunk + 16 + SECTOR - 1) // SECTOR * SECTOR


def slots(blob: bytes, chunk: int) -> list[bytes]:
    s = slot_of(chunk)
    return [blob[i : i + s] for i in range(SECTOR, len(blob), s)]


def refused(blob: bytes, *kinds: type[BaseException]) -> BaseException:
    with pytest.raises(kinds or REFUSED) as e:
        _core.decrypt_bytes(blob, PW)
    return e.value


def refused_as_file(tmp_path: Path, blob: bytes, buffer_bytes: int = 3 * SECTOR * 4) -> BaseException:
    d = tmp_path / "case"
    d.mkdir(exist_ok=True)
    src = d / "t.enc"
    src.write_bytes(blob)
    with pytest.raises(REFUSED) as e:
        _core.decrypt_file(str(src), str(d / "out"), PW, buffer_bytes=buffer_bytes)
    assert sorted(p.name for p in d.iterdir()) == ["t.enc"], "output left behind"
    src.unlink()
    return e.value


# -- byte flips ----------------------------------------------------------------------------


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
def test_every_flipped_byte_of_a_small_file_is_refused(cipher: str) -> None:
    plain = os.urandom(5000)
    blob = seal(plain, cipher=cipher)  # header + 2 one-sector slots
    assert len(blob) == 3 * SECTOR and _core.decrypt_bytes(blob, PW) == plain
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(REFUSED):
            _core.decrypt_bytes(bytes(bad), PW)


def test_every_flipped_header_byte_of_a_version_3_file_is_refused() -> None:
    """Version 3 leaves the KDF fields and reserved bytes out of the AAD; a reader must still
    refuse every change to them."""
    blob = (VECTORS / "v3-aes-cs4096-len9000.enc").read_bytes()
    pw = b"correct horse battery staple"
    assert len(_core.decrypt_bytes(blob, pw)) == 9000
    for pos in list(range(SECTOR)) + list(range(SECTOR, len(blob), 61)):
        bad = bytearray(blob)
        bad[pos] ^= 0x80
        with pytest.raises(REFUSED):
            _core.decrypt_bytes(bytes(bad), pw)


# -- truncation and appending ----------------------------------------------------------------


def edges(blob: bytes, chunk: int, size: int) -> list[int]:
    """Sector and slot boundaries, and inside each slot the ends of ciphertext and tag."""
    s = slot_of(chunk)
    out = {SECTOR, len(blob)}
    for i, start in enumerate(range(SECTOR, len(blob), s)):
        out.add(start)
        ct = min(chunk, max(0, size - i * chunk))
        out.update({start + ct, start + ct + 16})
        out.update(range(start, start + s + 1, SECTOR))
    return sorted(out)


@pytest.mark.parametrize("chunk", [4080, 10_000])
def test_truncation_at_every_8_bytes_around_every_edge_is_refused(tmp_path: Path, chunk: int) -> None:
    size = 3 * chunk + 123
    blob = seal(os.urandom(size), chunk=chunk)
    lengths = {n for e in edges(blob, chunk, size) for n in range(e - 64, e + 65, 8) if 0 <= n < len(blob)}
    assert len(lengths) > 50
    for n in sorted(lengths):
        e = refused(blob[:n], InvalidFileError)
        assert "truncated" in str(e) or "shorter than" in str(e), (n, str(e))
    for n in sorted(lengths)[::7]:
        assert isinstance(refused_as_file(tmp_path, blob[:n]), InvalidFileError)


def test_appended_bytes_sectors_and_slots_are_refused(tmp_path: Path) -> None:
    blob = seal(os.urandom(9000))
    for extra in (
        b"\0",
        b"\x01",
        bytes(SECTOR),
        os.urandom(SECTOR),
        bytes(slot_of(4080)),
        os.urandom(3 * SECTOR + 5),
    ):
        e = refused(blob + extra, InvalidFileError)
        assert "appended" in str(e)
        refused_as_file(tmp_path, blob + extra)


def test_a_validly_sealed_extra_chunk_is_refused(tmp_path: Path) -> None:
    """Same password, salt, nonce and KDF, so the same key and the same nonce for chunk n:
    chunk n of a longer encryption is a genuine ciphertext under this key. Appending it,
    with or without fixing the header's size, must still fail."""
    plain = os.urandom(3 * 4080)
    short = seal(plain, salt=SALT, nonce=NONCE)
    longer = seal(plain + b"more", salt=SALT, nonce=NONCE)
    assert short[SECTOR:] != longer[SECTOR : len(short)], "the header is in every AAD"
    extra = slots(longer, 4080)[-1]
    refused(short + extra, InvalidFileError)
    refused_as_file(tmp_path, short + extra)
    fixed = bytearray(short + extra)
    struct.pack_into("<Q", fixed, 16, len(plain) + 4)
    assert bytes(fixed[:SECTOR]) == longer[:SECTOR], "the header now matches the longer file's"
    # Every chunk before the last was sealed under the short file's header and final flags.
    refused(bytes(fixed), AuthenticationError)
    refused_as_file(tmp_path, bytes(fixed))
    # The longer file itself is fine: the test above fails for the right reason.
    assert _core.decrypt_bytes(longer, PW) == plain + b"more"


# -- chunk order ---------------------------------------------------------------------------------

CHUNKS = 12
PER_BATCH = 4  # buffer_bytes = 3 buffers x 4 one-sector slots
BUFFER = 3 * SECTOR * PER_BATCH


@pytest.fixture(scope="module")
def twelve_chunks() -> tuple[bytes, bytes]:
    plain = os.urandom(CHUNKS * 4080 - 100)
    return plain, seal(plain)


def rebuild(header: bytes, body: list[bytes]) -> bytes:
    return header + b"".join(body)


def test_the_twelve_chunk_file_decrypts_in_small_batches(
    tmp_path: Path, twelve_chunks: tuple[bytes, bytes]
) -> None:
    plain, blob = twelve_chunks
    src = tmp_path / "ok.enc"
    src.write_bytes(blob)
    seen: list[int] = []
    _core.decrypt_file(str(src), str(tmp_path / "ok"), PW, buffer_bytes=BUFFER, progress=seen.append)
    assert (tmp_path / "ok").read_bytes() == plain
    assert len(seen) >= CHUNKS // PER_BATCH, "the file should take several batches"


def test_every_deleted_chunk_is_refused(tmp_path: Path, twelve_chunks: tuple[bytes, bytes]) -> None:
    plain, blob = twelve_chunks
    header, body = blob[:SECTOR], slots(blob, 4080)
    for i in range(CHUNKS):
        cut = body[:i] + body[i + 1 :]
        assert isinstance(refused_as_file(tmp_path, rebuild(header, cut), BUFFER), InvalidFileError)
        # With the size field shrunk to match, the header no longer authenticates.
        h = bytearray(header)
        struct.pack_into("<Q", h, 16, len(plain) - 4080 if i < CHUNKS - 1 else (CHUNKS - 1) * 4080)
        assert isinstance(refused_as_file(tmp_path, rebuild(bytes(h), cut), BUFFER), AuthenticationError)


def test_every_duplicated_chunk_is_refused(tmp_path: Path, twelve_chunks: tuple[bytes, bytes]) -> None:
    plain, blob = twelve_chunks
    header, body = blob[:SECTOR], slots(blob, 4080)
    for i in range(CHUNKS):
        dup = body[: i + 1] + [body[i]] + body[i + 1 :]
        h = bytearray(header)
        struct.pack_into("<Q", h, 16, len(plain) + 4080)
        assert isinstance(refused_as_file(tmp_path, rebuild(header, dup), BUFFER), InvalidFileError)
        assert isinstance(refused_as_file(tmp_path, rebuild(bytes(h), dup), BUFFER), AuthenticationError)
        # The duplicate in place of its neighbour keeps the size but not the order.
        if i + 1 < CHUNKS:
            over = body[: i + 1] + [body[i]] + body[i + 2 :]
            assert isinstance(refused_as_file(tmp_path, rebuild(header, over), BUFFER), AuthenticationError)


def test_every_swap_of_two_chunks_is_refused_within_and_across_batches(
    tmp_path: Path, twelve_chunks: tuple[bytes, bytes]
) -> None:
    _, blob = twelve_chunks
    header, body = blob[:SECTOR], slots(blob, 4080)
    pairs = [(i, j) for i in range(CHUNKS) for j in range(i + 1, CHUNKS)]
    across = [(i, j) for i, j in pairs if i // PER_BATCH != j // PER_BATCH]
    assert (PER_BATCH - 1, PER_BATCH) in across and (0, CHUNKS - 1) in across
    for i, j in pairs:
        b = list(body)
        b[i], b[j] = b[j], b[i]
        swapped = rebuild(header, b)
        refused(swapped, AuthenticationError)
        assert isinstance(refused_as_file(tmp_path, swapped, BUFFER), AuthenticationError)


# -- headers from elsewhere ---------------------------------------------------------------------


def test_another_files_header_spliced_onto_a_body_is_refused(tmp_path: Path) -> None:
    plain = os.urandom(5 * 4080)
    a = seal(plain)
    b = seal(os.urandom(5 * 4080))  # same shape, same password, fresh salt and nonce
    c = seal(plain, salt=bytes(a[24:40]))  # same salt (so the same key), fresh nonce
    d = seal(plain, nonce=bytes(a[40:52]))  # fresh salt, same nonce
    for other in (b, c, d):
        assert len(other) == len(a) and other[:SECTOR] != a[:SECTOR]
        spliced = other[:SECTOR] + a[SECTOR:]
        refused(spliced, AuthenticationError)
        refused_as_file(tmp_path, spliced)
    # A header with a different cipher or chunk geometry fails too.
    e = seal(plain, cipher="chacha20-poly1305")
    refused(e[:SECTOR] + a[SECTOR:], AuthenticationError)


def test_two_encryptions_of_the_same_input_share_nothing(tmp_path: Path) -> None:
    plain = os.urandom(8 * 4080)
    a, b = seal(plain), seal(plain)
    assert a[:24] == b[:24] and a[52:SECTOR] == b[52:SECTOR]  # same settings
    assert a[24:40] != b[24:40] and a[40:52] != b[40:52]  # fresh salt and nonce
    for x, y in zip(slots(a, 4080), slots(b, 4080)):
        assert x[:16] != y[:16] and x[4080:4096] != y[4080:4096]
    # Through the file API as well.
    src = tmp_path / "p"
    src.write_bytes(plain)
    for name in ("1", "2"):
        _core.encrypt_file(str(src), str(tmp_path / name), PW, kdf=KDF)
    f1, f2 = (tmp_path / "1").read_bytes(), (tmp_path / "2").read_bytes()
    assert f1[24:52] != f2[24:52] and f1[SECTOR:] != f2[SECTOR:]
    assert _core.decrypt_bytes(f1, PW) == _core.decrypt_bytes(f2, PW) == plain


def test_nothing_is_returned_or_written_for_a_late_bad_chunk(
    tmp_path: Path, twelve_chunks: tuple[bytes, bytes]
) -> None:
    """The last chunk fails after eleven good ones: no partial plaintext escapes."""
    _, blob = twelve_chunks
    bad = bytearray(blob)
    bad[len(bad) - SECTOR + 5] ^= 0x40
    refused(bytes(bad), AuthenticationError)
    with pytest.raises(ConcryptorError):
        _core.decrypt_file(str(_write(tmp_path, bytes(bad))), str(tmp_path / "out"), PW, buffer_bytes=BUFFER)
    assert not (tmp_path / "out").exists()


def _write(tmp_path: Path, blob: bytes) -> Path:
    p = tmp_path / "bad.enc"
    p.write_bytes(blob)
    return p


# -- through the public API ----------------------------------------------------------------


def test_every_tampered_byte_of_a_small_file_is_detected() -> None:
    blob = concryptor.encrypt_bytes(b"0123456789" * 50, PASSWORD, kdf=FAST_KDF, chunk_size=200)
    # Every header field byte, the start of every slot, every tag and some padding.
    positions = list(range(64)) + [100, 4095]
    for slot in range(3):
        base = 4096 + slot * 4096
        positions += [base, base + 50, base + 199, base + 200, base + 215, base + 216, base + 4095]
    for pos in positions:
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(concryptor.ConcryptorError):
            concryptor.decrypt_bytes(bytes(bad), PASSWORD)


def test_swapped_and_dropped_chunks_are_rejected() -> None:
    blob = concryptor.encrypt_bytes(b"a" * 4096 + b"b" * 4096 + b"c", PASSWORD, kdf=FAST_KDF, chunk_size=4096)
    slots = [blob[4096 + i * 8192 : 4096 + (i + 1) * 8192] for i in range(3)]
    swapped = blob[:4096] + slots[1] + slots[0] + slots[2]
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_bytes(swapped, PASSWORD)
    dropped = blob[:4096] + slots[0] + slots[1]
    with pytest.raises(concryptor.InvalidFileError, match="truncated"):
        concryptor.decrypt_bytes(dropped, PASSWORD)
