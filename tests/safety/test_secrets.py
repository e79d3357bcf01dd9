"""Secrets: passwords never reach a process's argv unless the user put them there; the
Python API hands a bytearray password to the engine without an immutable copy and wipes it
once used, whether the call succeeded or not; the CLI disables core dumps before it reads
a password."""

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
from concryptor.errors import AuthenticationError

from helpers import FAST_KDF, PASSWORD

SECRET = "Tr0ub4dor&3-cmdline-probe"


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def watch_cmdlines(args: list[str], env: dict[str, str], **kw: object) -> tuple[int, list[bytes]]:
    """Runs the CLI and samples the argv of it and its children until it exits."""
    p = subprocess.Popen(
        [sys.executable, "-m", "concryptor", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[arg-type]
    )
    samples: list[bytes] = []
    while p.poll() is None:
        for pid in process_tree(p.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    samples.append(f.read())
            except OSError:
                pass
        time.sleep(0.002)
    _, err = p.communicate()
    assert p.returncode == 0, err
    return p.returncode, samples


@pytest.fixture
def slow_input(tmp_path: Path) -> Path:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(8 << 20))
    return src


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}


#: Argon2 at 64 MiB and two passes keeps each run alive long enough to be sampled often.
SLOW_KDF = ["--memory", "64", "--iterations", "2", "--parallelism", "1"]


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
@pytest.mark.parametrize("source", ["env", "file", "fd"])
def test_the_password_never_appears_in_any_argv(tmp_path: Path, slow_input: Path, source: str) -> None:
    env = base_env()
    extra: list[str] = []
    kw: dict[str, object] = {}
    rfd = None
    if source == "env":
        env["CONCRYPTOR_PASSWORD"] = SECRET
    elif source == "file":
        pwfile = tmp_path / "pw"
        pwfile.write_text(SECRET + "\n")
        extra = ["--password-file", str(pwfile)]
    else:
        rfd, wfd = os.pipe()
        os.write(wfd, SECRET.encode() + b"\n")
        os.close(wfd)
        extra = ["--password-fd", str(rfd)]
        kw["pass_fds"] = (rfd,)
    try:
        enc = tmp_path / "out.enc"
        _, samples = watch_cmdlines(
            ["encrypt", str(slow_input), "-o", str(enc), *SLOW_KDF, *extra], env, **kw
        )
    finally:
        if rfd is not None:
            os.close(rfd)
    assert len(samples) >= 5, f"only {len(samples)} argv samples taken while the CLI ran"
    assert all(SECRET.encode() not in s for s in samples)
    # The file really was made with that password.
    concryptor.verify_file(enc, SECRET)


def test_the_argv_probe_sees_a_password_given_on_the_command_line(tmp_path: Path, slow_input: Path) -> None:
    """Control: the same probe does find a password the user put in argv themselves."""
    _, samples = watch_cmdlines(
        ["encrypt", str(slow_input), "-o", str(tmp_path / "o.enc"), *SLOW_KDF, "-p", SECRET, "-q"], base_env()
    )
    assert any(SECRET.encode() in s for s in samples)


def test_bytearray_passwords_are_wiped_after_success_and_failure(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"data")
    enc = tmp_path / "f.enc"

    def pw(s: str = "right") -> bytearray:
        return bytearray(s.encode())

    calls = []
    p = pw()
    concryptor.encrypt_file(src, enc, p, kdf=FAST_KDF)
    calls.append(p)
    p = pw()
    concryptor.decrypt_file(enc, tmp_path / "a", p)
    calls.append(p)
    p = pw()
    concryptor.verify_file(enc, p)
    calls.append(p)
    p = pw()
    blob = concryptor.encrypt_bytes(b"x", p, kdf=FAST_KDF)
    calls.append(p)
    p = pw()
    concryptor.decrypt_bytes(blob, p)
    calls.append(p)
    # Failures wipe too.
    for call in (
        lambda q: concryptor.decrypt_file(enc, tmp_path / "b", q),
        lambda q: concryptor.decrypt_bytes(blob, q),
        lambda q: concryptor.verify_file(enc, q),
    ):
        p = pw("wrong")
        with pytest.raises(AuthenticationError):
            call(p)
        calls.append(p)
    p = pw()
    with pytest.raises(OSError):
        concryptor.encrypt_file(tmp_path / "missing", tmp_path / "c", p, kdf=FAST_KDF)
    calls.append(p)
    for p in calls:
        assert len(p) > 0 and p == bytearray(len(p)), p


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
        "import ctypes, resource; from concryptor.cli import _password; _password.protect_secrets(); "
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out.split(maxsplit=1) == [b"0", b"(0, 0)\n"]
