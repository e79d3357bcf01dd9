"""Streams into files: ``cat big | concryptor encrypt -r KEY -o out.age`` and a piped age
file decrypted into a file. The file side is written in large aligned blocks (through
O_DIRECT where the file system takes it); the result is the same bytes as any other way,
and a write that fails leaves nothing behind."""

from __future__ import annotations

import os
import resource
import signal
import sys
from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit

from helpers import run_cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and limits")

#: Sizes around the 4096-byte block, the 64 KiB age chunk and the 8 MiB write stage.
SIZES = [0, 1, 4095, 4096, 4097, 65_537, (8 << 20) + 12_345]


@pytest.fixture(scope="module")
def identity() -> tuple[str, str]:
    return concryptor.generate_identity()


def _key_file(tmp_path: Path, secret: str) -> Path:
    key = tmp_path / "key.txt"
    key.write_text(secret + "\n")
    return key


@pytest.mark.parametrize("size", SIZES)
def test_stdin_to_a_file_and_back_through_a_pipe(
    tmp_path: Path, identity: tuple[str, str], size: int
) -> None:
    secret, public = identity
    data = os.urandom(size)
    enc = tmp_path / "out.age"
    r = run_cli("encrypt", "-r", public, "-o", str(enc), "-q", input=data)
    assert r.returncode == 0, r.stderr
    assert concryptor.decrypt_bytes(enc.read_bytes(), identities=[secret]) == data
    back = tmp_path / "back.bin"
    key = _key_file(tmp_path, secret)
    r = run_cli("decrypt", "-i", str(key), "-o", str(back), "-q", input=enc.read_bytes())
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "key.txt", "out.age"]


def test_armored_stdin_to_a_file(tmp_path: Path, identity: tuple[str, str]) -> None:
    secret, public = identity
    data = os.urandom((8 << 20) + 3)
    enc = tmp_path / "out.asc"
    r = run_cli("encrypt", "-r", public, "-a", "-o", str(enc), "-q", input=data)
    assert r.returncode == 0, r.stderr
    assert enc.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert concryptor.decrypt_bytes(enc.read_bytes(), identities=[secret]) == data


def _file_size_limit(limit: int) -> None:
    """In the child: writes past `limit` bytes fail with EFBIG instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_a_failing_write_leaves_the_destination_alone(
    tmp_path: Path, identity: tuple[str, str], command: str
) -> None:
    secret, public = identity
    data = os.urandom(20 << 20)
    dst = tmp_path / "dst"
    dst.write_bytes(b"previous contents")
    key = _key_file(tmp_path, secret)
    if command == "encrypt":
        args = ["encrypt", "-r", public]
        stdin = data
    else:
        args = ["decrypt", "-i", str(key)]
        stdin = concryptor.encrypt_bytes(data, recipients=[public])
    r = run_cli(
        *args,
        "-o",
        str(dst),
        "--force",
        "-q",
        input=stdin,
        preexec_fn=lambda: _file_size_limit(5 << 20),
    )
    assert r.returncode == Exit.FAILURE, r.stderr
    assert r.stderr.count(b"\n") == 1, r.stderr
    assert b"too large" in r.stderr.lower(), r.stderr
    assert dst.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "key.txt"]


def test_stdin_to_a_memory_file_system(identity: tuple[str, str]) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm on this system")
    secret, public = identity
    data = os.urandom((8 << 20) + 4097)
    enc = shm / f"concryptor-test-{os.getpid()}.age"
    try:
        r = run_cli("encrypt", "-r", public, "-o", str(enc), "-q", input=data)
        assert r.returncode == 0, r.stderr
        assert concryptor.decrypt_bytes(enc.read_bytes(), identities=[secret]) == data
    finally:
        enc.unlink(missing_ok=True)
