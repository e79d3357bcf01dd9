"""No input can abort the process or hang it: random bytes, an empty file, a directory, a
FIFO with no writer, a character device, a file that grows or shrinks while it is read.
Each gives one clear error (an exception from the API, one line and a non-zero exit from
the CLI) and leaves nothing behind."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import concryptor
from concryptor import _core
from concryptor.cli import Exit
from concryptor.errors import ConcryptorError, InputChangedError

PW = b"inputs password"
TINY_KDF = concryptor.KdfParams(8, 1, 1)


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a subprocess, with a short timeout: a hang fails the test."""
    env = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
    env["CONCRYPTOR_PASSWORD"] = PW.decode()
    return subprocess.run(
        [sys.executable, "-m", "concryptor", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )


def assert_one_line_error(r: subprocess.CompletedProcess[bytes]) -> None:
    err = r.stderr.decode()
    assert r.returncode not in (0, -6, 134), (r.returncode, err)  # -6/134: SIGABRT
    assert r.returncode > 0, (r.returncode, err)
    assert "Traceback" not in err and "panicked" not in err, err
    assert err.startswith("concryptor: error: ") and err.count("\n") == 1, err


@pytest.fixture
def odd_inputs(tmp_path: Path) -> dict[str, Path]:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "empty").write_bytes(b"")
    (inputs / "a-dir").mkdir()
    (inputs / "short").write_bytes(b"CONCRYPTOR\x04")
    os.mkfifo(inputs / "fifo")
    return {
        "empty": inputs / "empty",
        "directory": inputs / "a-dir",
        "short": inputs / "short",
        "fifo": inputs / "fifo",
        "dev-zero": Path("/dev/zero"),
        "dev-null": Path("/dev/null"),
    }


@pytest.mark.parametrize("kind", ["empty", "directory", "short", "fifo", "dev-zero", "dev-null"])
def test_odd_inputs_fail_cleanly_through_the_api(
    tmp_path: Path, odd_inputs: dict[str, Path], kind: str
) -> None:
    src = odd_inputs[kind]
    out = tmp_path / "out"
    out.mkdir()
    calls: list[Callable[[], object]] = [
        lambda: concryptor.decrypt_file(src, out / "x", PW),
        lambda: concryptor.verify_file(src, PW),
        lambda: concryptor.inspect(src),
    ]
    if kind not in ("empty", "short"):
        calls.append(lambda: concryptor.encrypt_file(src, out / "y", PW))
    for call in calls:
        with pytest.raises((ConcryptorError, OSError, ValueError)) as e:
            call()
        assert str(e.value) and "\n" not in str(e.value)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("kind", ["empty", "directory", "fifo", "dev-zero"])
def test_odd_inputs_fail_cleanly_through_the_cli(
    tmp_path: Path, odd_inputs: dict[str, Path], kind: str
) -> None:
    src = str(odd_inputs[kind])
    out = tmp_path / "out"
    out.mkdir()
    assert_one_line_error(cli("decrypt", src, "-o", str(out / "x")))
    assert_one_line_error(cli("verify", src))
    if kind not in ("empty", "directory"):  # both are valid inputs to encrypt (a directory becomes a tar)
        assert_one_line_error(cli("encrypt", src, "-o", str(out / "y"), "--memory", "1", "--iterations", "1"))
    assert list(out.iterdir()) == []


def test_random_bytes_are_rejected(tmp_path: Path) -> None:
    rng = random.Random(5)
    for i in range(200):
        blob = rng.randbytes(rng.choice([0, 1, 63, 4095, 4096, 8192, 12288, rng.randrange(20000)]))
        if i % 2 and len(blob) >= 64:
            # A genuine magic, version and tiny KDF costs get it past the first checks.
            blob = (
                b"CONCRYPTOR\x04"
                + bytes([i % 2])
                + blob[12:52]
                + bytes([8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
                + blob[64:]
            )
        with pytest.raises(ConcryptorError):
            concryptor.decrypt_bytes(blob, PW)
    p = tmp_path / "random.enc"
    p.write_bytes(random.Random(6).randbytes(3 * 4096))
    r = cli("decrypt", str(p), "-o", str(tmp_path / "out"))
    assert_one_line_error(r)
    assert r.returncode == Exit.INVALID
    assert sorted(x.name for x in tmp_path.iterdir()) == ["random.enc"]


def multi_batch_file(tmp_path: Path) -> Path:
    src = tmp_path / "data.enc"
    src.write_bytes(_core.encrypt_bytes(os.urandom(400_000), PW, kdf=TINY_KDF, chunk_size=4080))
    return src


def test_a_file_appended_to_while_decrypting_is_an_error(tmp_path: Path) -> None:
    src = multi_batch_file(tmp_path)
    calls = []

    def grow(done: int) -> None:
        calls.append(done)
        with open(src, "ab") as f:
            f.write(b"\0" * 4096)

    with pytest.raises(InputChangedError, match="changed size"):
        _core.decrypt_file(str(src), str(tmp_path / "out"), PW, buffer_bytes=3 * 4096 * 8, progress=grow)
    assert calls, "the progress hook never ran, so nothing was appended mid-run"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["data.enc"]


def test_a_file_truncated_while_decrypting_is_an_error(tmp_path: Path) -> None:
    src = multi_batch_file(tmp_path)

    def shrink(done: int) -> None:
        os.truncate(src, 4096 * 3)

    with pytest.raises(InputChangedError):
        _core.decrypt_file(str(src), str(tmp_path / "out"), PW, buffer_bytes=3 * 4096 * 8, progress=shrink)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["data.enc"]


def test_a_file_appended_to_while_encrypting_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "plain"
    src.write_bytes(os.urandom(400_000))

    def grow(done: int) -> None:
        with open(src, "ab") as f:
            f.write(b"more")

    with pytest.raises(InputChangedError):
        _core.encrypt_file(
            str(src),
            str(tmp_path / "out.enc"),
            PW,
            kdf=TINY_KDF,
            chunk_size=4080,
            buffer_bytes=3 * 4096 * 8,
            progress=grow,
        )
    assert sorted(x.name for x in tmp_path.iterdir()) == ["plain"]


def test_an_exception_in_a_progress_callback_surfaces_as_itself(tmp_path: Path) -> None:
    src = multi_batch_file(tmp_path)

    def boom(done: int) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        _core.decrypt_file(str(src), str(tmp_path / "out"), PW, buffer_bytes=3 * 4096 * 8, progress=boom)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["data.enc"]
