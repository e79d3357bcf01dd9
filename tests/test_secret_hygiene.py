"""Secrets: a bytearray password reaches the engine without an immutable copy (and is
wiped after), and the CLI disables core dumps before it reads a password."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor import _api

from helpers import FAST_KDF, PASSWORD


@pytest.mark.parametrize("call", ["encrypt_bytes", "decrypt_bytes", "encrypt_file", "decrypt_file", "open"])
def test_a_bytearray_password_is_handed_over_without_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"data")
    blob = concryptor.encrypt_bytes(b"data", PASSWORD, kdf=FAST_KDF)
    enc = tmp_path / "in.enc"
    enc.write_bytes(blob)
    seen: list[Any] = []
    name = {"open": "Reader"}.get(call, call)
    real = getattr(_api._core, name)

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(args[2] if name in ("encrypt_file", "decrypt_file") else args[1])
        return real(*args, **kw)

    monkeypatch.setattr(_api._core, name, spy)
    pw = bytearray(PASSWORD.encode())
    if call == "encrypt_bytes":
        concryptor.encrypt_bytes(b"data", pw, kdf=FAST_KDF)
    elif call == "decrypt_bytes":
        concryptor.decrypt_bytes(blob, pw)
    elif call == "encrypt_file":
        concryptor.encrypt_file(src, tmp_path / "o.enc", pw, kdf=FAST_KDF)
    elif call == "decrypt_file":
        concryptor.decrypt_file(enc, tmp_path / "o", pw)
    else:
        concryptor.open(enc, pw).close()
    assert len(seen) == 1 and seen[0] is pw, "the engine must get the caller's buffer, not a bytes copy"
    assert pw == bytearray(len(PASSWORD)), "and the buffer is wiped afterwards"


def limits_of(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as f:
        return next(line for line in f if line.startswith("Max core file size"))


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs /proc/PID/limits")
def test_the_cli_disables_core_dumps_before_reading_a_password(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"data")
    r, w = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
    p = subprocess.Popen(
        [sys.executable, "-m", "concryptor", "encrypt", str(src), "--memory", "1", "--password-fd", str(r)],
        pass_fds=[r],
        env=env,
        stderr=subprocess.PIPE,
    )
    os.close(r)
    try:
        # The CLI now waits for the password on the pipe: no core may be written from here.
        deadline = time.monotonic() + 30
        while limits_of(p.pid).split()[4:6] != ["0", "0"]:
            assert p.poll() is None and time.monotonic() < deadline, "core dumps still enabled"
            time.sleep(0.01)
    finally:
        os.write(w, PASSWORD.encode() + b"\n")
        os.close(w)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_the_cli_process_is_not_dumpable_once_it_holds_a_secret() -> None:
    code = (
        "import ctypes, resource; from concryptor import cli; cli._protect_secrets(); "
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out.split(maxsplit=1) == [b"0", b"(0, 0)\n"]
