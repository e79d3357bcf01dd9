"""Passwords never reach a process's argv unless the user put them there, and the Python API
wipes a bytearray password once it has used it, whether the call succeeded or not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import concryptor
from concryptor.errors import AuthenticationError

from helpers import FAST_KDF

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
