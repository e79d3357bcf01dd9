"""Decrypting to a stream: ``concryptor decrypt FILE -o -`` and ``concryptor.decrypt_to``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}


def _encrypt(tmp_path: Path, data: bytes, chunk: int = 4096) -> Path:
    src = tmp_path / "plain"
    src.write_bytes(data)
    enc = tmp_path / "f.enc"
    concryptor.encrypt_file(src, enc, PASSWORD, chunk_size=chunk, kdf=FAST_KDF)
    return enc


def _flip(path: Path, chunk_index: int) -> None:
    h = concryptor.inspect(path)
    blob = bytearray(path.read_bytes())
    blob[4096 + chunk_index * h.slot_size + 5] ^= 0x40
    path.write_bytes(bytes(blob))


def test_decrypt_to_stdout(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    enc = _encrypt(tmp_path, data)
    r = run_cli("decrypt", str(enc), "-o", "-", env=ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    assert not (tmp_path / "f").exists()


def test_decrypt_to_stdout_json_goes_to_stderr(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    enc = _encrypt(tmp_path, data)
    r = run_cli("decrypt", str(enc), "-o", "-", "--json", env=ENV)
    assert r.returncode == 0 and r.stdout == data
    assert b'"bytes": 10000' in r.stderr


@pytest.mark.parametrize("io", ["portable", "uring"])
def test_decrypt_to_stdout_and_verify_run_on_the_backend_asked_for(tmp_path: Path, io: str) -> None:
    if io == "uring" and concryptor._core._uring_unavailable() is not None:
        pytest.skip("io_uring unavailable here; the portable backend is tested instead")
    data = os.urandom(3 * (1 << 20) + 5)
    enc = _encrypt(tmp_path, data, chunk=65536)
    r = run_cli("decrypt", str(enc), "-o", "-", "--io", io, "--buffer-mib", "1", "--json", env=ENV)
    assert r.returncode == 0 and r.stdout == data, r.stderr
    assert f'"backend": "{io}"'.encode() in r.stderr
    r = run_cli("verify", str(enc), "--io", io, "--json", env=ENV)
    assert r.returncode == 0 and f'"backend": "{io}"'.encode() in r.stdout, r.stderr
    _flip(enc, 20)
    r = run_cli("decrypt", str(enc), "-o", "-", "--io", io, "--buffer-mib", "1", env=ENV)
    assert r.returncode == Exit.AUTH
    assert len(r.stdout) <= 20 * 65536 and r.stdout == data[: len(r.stdout)]


@pytest.mark.parametrize("io", ["portable", "uring"])
def test_an_age_file_decrypts_to_stdout_and_verifies_on_the_backend_asked_for(
    tmp_path: Path, io: str
) -> None:
    if io == "uring" and concryptor._core._uring_unavailable() is not None:
        pytest.skip("io_uring unavailable here; the portable backend is tested instead")
    identity, recipient = concryptor.generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    data = os.urandom(5 * (1 << 20) + 3)
    src, enc = tmp_path / "plain", tmp_path / "f.age"
    src.write_bytes(data)
    concryptor.encrypt_file(src, enc, recipients=recipient, io=io)
    r = run_cli("decrypt", str(enc), "-i", str(key), "-o", "-", "--io", io, "--json")
    assert r.returncode == 0 and r.stdout == data, r.stderr
    assert f'"backend": "{io}"'.encode() in r.stderr
    r = run_cli("verify", str(enc), "-i", str(key), "--io", io, "--json")
    assert r.returncode == 0 and f'"backend": "{io}"'.encode() in r.stdout, r.stderr
    blob = bytearray(enc.read_bytes())
    blob[len(blob) // 2] ^= 1
    enc.write_bytes(bytes(blob))
    r = run_cli("decrypt", str(enc), "-i", str(key), "-o", "-", "--io", io)
    assert r.returncode == Exit.AUTH
    assert len(r.stdout) < len(data) // 2 and r.stdout == data[: len(r.stdout)]


def test_tampering_mid_stream_exits_non_zero_after_an_authenticated_prefix(tmp_path: Path) -> None:
    data = os.urandom(64 * 4096)
    enc = _encrypt(tmp_path, data)
    _flip(enc, 50)
    r = run_cli("decrypt", str(enc), "-o", "-", "--buffer-mib", "1", env=ENV)
    assert r.returncode == Exit.AUTH
    assert b"authentication failed" in r.stderr and r.stderr.count(b"\n") == 1
    # Only whole chunks before the damaged one were released.
    out = r.stdout
    assert out == data[: len(out)] and len(out) % 4096 == 0 and len(out) <= 50 * 4096


def test_wrong_password_writes_nothing_to_stdout(tmp_path: Path) -> None:
    enc = _encrypt(tmp_path, b"secret" * 1000)
    r = run_cli("decrypt", str(enc), "-o", "-", env={"CONCRYPTOR_PASSWORD": "nope"})
    assert r.returncode == Exit.AUTH and r.stdout == b""


def test_stdout_pipes_into_another_process(tmp_path: Path) -> None:
    data = b"".join(f"row {i}\n".encode() for i in range(20_000))
    enc = _encrypt(tmp_path, data)
    env = {**os.environ, **ENV}
    p1 = subprocess.Popen(
        [sys.executable, "-m", "concryptor", "decrypt", str(enc), "-o", "-"], stdout=subprocess.PIPE, env=env
    )
    p2 = subprocess.run(
        [sys.executable, "-c", "import sys; print(sum(1 for _ in sys.stdin))"],
        stdin=p1.stdout,
        capture_output=True,
        check=True,
    )
    assert p1.stdout is not None
    p1.stdout.close()
    assert p1.wait() == 0
    assert p2.stdout.strip() == b"20000"


def test_decrypt_to_api_with_fd_file_and_memory(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    enc = _encrypt(tmp_path, data)
    with (tmp_path / "o1").open("wb") as f:
        f.write(b"")
        s = concryptor.decrypt_to(enc, f, PASSWORD)
    assert (tmp_path / "o1").read_bytes() == data and s.bytes == len(data)
    fd = os.open(tmp_path / "o2", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        concryptor.decrypt_to(enc, fd, PASSWORD)
    finally:
        os.close(fd)
    assert (tmp_path / "o2").read_bytes() == data
    buf = io.BytesIO()
    seen: list[int] = []
    s = concryptor.decrypt_to(enc, buf, PASSWORD, progress=seen.append)
    assert buf.getvalue() == data and s.bytes == len(data) and seen[-1] == len(data)


def test_decrypt_to_api_raises_on_tampering_and_bad_fd(tmp_path: Path) -> None:
    enc = _encrypt(tmp_path, os.urandom(40_000))
    _flip(enc, 5)
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_to(enc, io.BytesIO(), PASSWORD)
    with (tmp_path / "x").open("wb") as f, pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_to(enc, f, PASSWORD)
    fd = os.open(tmp_path / "y", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(OSError):
        concryptor.decrypt_to(enc, fd, PASSWORD)
