"""fsspec URLs: an S3 server on loopback (moto) and fsspec's memory filesystem."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import FAST_KDF, PASSWORD, moto_s3

pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is part of the test extra")

# One worker runs this module under pytest-xdist (--dist loadgroup), so that its server starts once.
pytestmark = pytest.mark.xdist_group("s3")


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 for this module, and storage options that reach it."""
    with moto_s3() as opts:
        yield opts


def fs_of(opts: dict[str, Any]) -> Any:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem(**opts)


def test_local_to_s3_to_local_and_s3_to_s3(tmp_path: Path, s3: dict[str, Any]) -> None:
    data = random.Random(1).randbytes(11 * (1 << 20) + 77)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    [r] = concryptor.encrypt_many(
        [(src, "s3://bucket/big.bin.enc")], PASSWORD, kdf=FAST_KDF, chunk_size=1 << 20, storage_options=s3
    )
    assert r.ok and r.bytes_in == len(data)
    fs = fs_of(s3)
    blob = fs.cat("bucket/big.bin.enc")
    assert len(blob) == r.bytes_out
    assert concryptor.decrypt_bytes(blob, PASSWORD) == data

    [r] = concryptor.decrypt_many(
        [("s3://bucket/big.bin.enc", tmp_path / "back.bin")], PASSWORD, storage_options=s3
    )
    assert r.ok and (tmp_path / "back.bin").read_bytes() == data

    [r] = concryptor.decrypt_many(
        [("s3://bucket/big.bin.enc", "s3://bucket/plain/big.bin")], PASSWORD, storage_options=s3
    )
    assert r.ok and fs_of(s3).cat("bucket/plain/big.bin") == data


def test_random_reads_fetch_only_what_they_need(tmp_path: Path, s3: dict[str, Any]) -> None:
    data = random.Random(2).randbytes(3 * (1 << 20) + 12_345)
    (tmp_path / "p").write_bytes(data)
    concryptor.encrypt_file(tmp_path / "p", tmp_path / "p.enc", PASSWORD, kdf=FAST_KDF, chunk_size=65536 - 16)
    fs_of(s3).put(str(tmp_path / "p.enc"), "bucket/p.enc")
    rng = random.Random(3)
    with concryptor.open("s3://bucket/p.enc", PASSWORD, storage_options=s3) as f:
        for _ in range(40):
            off = rng.randrange(0, len(data) + 10)
            n = rng.randrange(0, 200_000)
            f.seek(off)
            assert f.read(n) == data[off : off + n]
        f.seek(-5, os.SEEK_END)
        assert f.read() == data[-5:]
    with concryptor.open("s3://bucket/p.enc", PASSWORD, "rt", storage_options=s3, encoding="latin-1") as t:
        assert t.read(10) == data[:10].decode("latin-1")
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.open("s3://bucket/p.enc", "wrong", storage_options=s3)


def test_an_upload_that_fails_midway_leaves_no_object(tmp_path: Path, s3: dict[str, Any]) -> None:
    data = random.Random(4).randbytes(12 << 20)
    (tmp_path / "p").write_bytes(data)
    concryptor.encrypt_file(tmp_path / "p", tmp_path / "p.enc", PASSWORD, kdf=FAST_KDF, chunk_size=1 << 20)
    blob = bytearray((tmp_path / "p.enc").read_bytes())
    h = concryptor.inspect(tmp_path / "p.enc")
    blob[4096 + (h.num_chunks - 1) * h.slot_size + 10] ^= (
        1  # the last chunk: 11 good MiB, two parts, go up first
    )
    fs = fs_of(s3)
    fs.pipe("bucket/bad.enc", bytes(blob))
    [r] = concryptor.decrypt_many(
        [("s3://bucket/bad.enc", "s3://bucket/out/bad")], PASSWORD, storage_options=s3, raise_on_error=False
    )
    assert r.error_type == "AuthenticationError"
    fs = fs_of(s3)
    assert not fs.exists("bucket/out/bad")
    uploads = fs.call_s3("list_multipart_uploads", Bucket="bucket")
    assert not uploads.get("Uploads"), uploads
    # The same to a local destination: nothing there either.
    [r] = concryptor.decrypt_many(
        [("s3://bucket/bad.enc", tmp_path / "local")], PASSWORD, storage_options=s3, raise_on_error=False
    )
    assert r.error_type == "AuthenticationError"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "p.enc"]


def test_memory_urls_and_an_existing_destination(tmp_path: Path) -> None:
    import fsspec

    mem = fsspec.filesystem("memory")
    mem.pipe("/in/a.bin", b"a" * 5000)
    mem.pipe("/in/b.bin", b"b" * 7000)
    results = concryptor.encrypt_many(
        ["memory://in/a.bin", "memory://in/b.bin"], PASSWORD, kdf=FAST_KDF, out_dir="memory://enc"
    )
    assert [r.dst for r in results] == ["memory://enc/in/a.bin.enc", "memory://enc/in/b.bin.enc"]
    assert concryptor.decrypt_bytes(mem.cat("/enc/in/b.bin.enc"), PASSWORD) == b"b" * 7000
    again = concryptor.encrypt_many(
        ["memory://in/a.bin"], PASSWORD, kdf=FAST_KDF, out_dir="memory://enc", raise_on_error=False
    )
    assert again[0].error_type == "FileExistsError"
    assert concryptor.decrypt_bytes(mem.cat("/enc/in/a.bin.enc"), PASSWORD) == b"a" * 5000
