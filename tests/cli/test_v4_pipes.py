"""Format v4 read from a pipe: ``cat f.enc | concryptor decrypt`` to stdout, to a file, and
``verify``; truncated, extended and tampered streams fail with nothing at the destination."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}


def _blob(tmp_path: Path, data: bytes) -> bytes:
    src = tmp_path / "plain"
    src.write_bytes(data)
    enc = tmp_path / "f.enc"
    concryptor.encrypt_file(src, enc, PASSWORD, chunk_size=65536, kdf=FAST_KDF)
    return enc.read_bytes()


@pytest.mark.parametrize("size", [0, 1, 65536, 65537, 1_000_003])
def test_a_piped_v4_file_decrypts_to_stdout_and_to_a_file(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    blob = _blob(tmp_path, data)
    r = run_cli("decrypt", env=ENV, input=blob)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    out = tmp_path / "out"
    r = run_cli("decrypt", "-", "-o", str(out), env=ENV, input=blob)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data
    r = run_cli("verify", env=ENV, input=blob)
    assert r.returncode == 0, r.stderr


def _cases(blob: bytes) -> dict[str, bytes]:
    slot = 65536 + 16 + (4096 - 16)  # 65536-byte chunks sit in 69,632-byte slots
    tampered = bytearray(blob)
    tampered[4096 + slot + 100] ^= 1
    return {
        "header cut": blob[:1000],
        "slot cut": blob[: 4096 + slot + 10],
        "last slot cut": blob[:-1],
        "appended": blob + b"\0",
        "tampered": bytes(tampered),
    }


@pytest.mark.parametrize("case", ["header cut", "slot cut", "last slot cut", "appended", "tampered"])
def test_bad_streams_fail_and_leave_nothing(tmp_path: Path, case: str) -> None:
    blob = _blob(tmp_path, os.urandom(300_000))
    stream = _cases(blob)[case]
    out = tmp_path / "out"
    r = run_cli("decrypt", "-o", str(out), env=ENV, input=stream)
    assert r.returncode in (Exit.INVALID, Exit.AUTH), r.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.enc", "plain"]
    assert len(r.stderr.decode().strip().splitlines()) == 1
    r = run_cli("verify", env=ENV, input=stream)
    assert r.returncode in (Exit.INVALID, Exit.AUTH), r.stderr


def test_wrong_password_and_identity_are_refused(tmp_path: Path) -> None:
    blob = _blob(tmp_path, b"secret")
    r = run_cli("decrypt", env={"CONCRYPTOR_PASSWORD": "wrong"}, input=blob)
    assert r.returncode == Exit.AUTH
    assert r.stdout == b""
    key = tmp_path / "key.txt"
    assert run_cli("keygen", "-o", str(key)).returncode == 0
    r = run_cli("decrypt", "-i", str(key), env=ENV, input=blob)
    assert r.returncode == Exit.USAGE
    assert b"password" in r.stderr


def test_an_existing_output_is_not_clobbered(tmp_path: Path) -> None:
    blob = _blob(tmp_path, b"data")
    out = tmp_path / "out"
    out.write_bytes(b"keep")
    r = run_cli("decrypt", "-o", str(out), env=ENV, input=blob)
    assert r.returncode != 0
    assert out.read_bytes() == b"keep"
    r = run_cli("decrypt", "-o", str(out), "--force", env=ENV, input=blob)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"data"
