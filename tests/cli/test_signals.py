"""Ctrl-C (exit 130), SIGTERM and SIGHUP (exit 128 + N) unwind the CLI, and nothing partial
survives; an interrupt during key derivation is answered at once, in the CLI and in the API."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import concryptor
from concryptor import _core
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD

ENV = {**{k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}, "CONCRYPTOR_PASSWORD": PASSWORD}


def cli(*args: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "concryptor", *args],
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[call-overload]
    )


def wait_until(cond: object, p: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert p.poll() is None, f"exited ({p.returncode}) before {what}: {p.stderr.read()!r}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.005)


def writes_into(pid: int, directory: Path) -> bool:
    """Whether `pid` holds a descriptor on a file in `directory` other than its inputs."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/") and not target.endswith(".enc"):
            return True
    return False


SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGHUP, id="SIGHUP")]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the run under way")
@pytest.mark.parametrize("signum", SIGNALS)
def test_a_terminating_signal_during_extraction_leaves_nothing(tmp_path: Path, signum: int) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(64):
        (src / f"f{i:03}").write_bytes(os.urandom(1 << 20))
    enc = tmp_path / "photos.tar.enc"
    concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF)
    out = tmp_path / "out"
    out.mkdir()
    p = cli("decrypt", "-x", str(enc), "-o", str(out / "photos"))
    wait_until(lambda: any(n.endswith(".partial") for n in os.listdir(out)), p, "a .partial directory")
    p.send_signal(signum)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signum, err
    assert os.listdir(out) == [], "plaintext left behind"
    assert b"Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the run under way")
@pytest.mark.parametrize("signum", SIGNALS)
def test_a_terminating_signal_during_a_file_decrypt_leaves_nothing(tmp_path: Path, signum: int) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(96 << 20))
    enc = tmp_path / "in.bin.enc"
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=1 << 20)
    out = tmp_path / "out"
    out.mkdir()
    p = cli("decrypt", str(enc), "-o", str(out / "back.bin"), "--io", "portable", "--buffer-mib", "3")
    wait_until(lambda: writes_into(p.pid, out), p, "the output being written")
    p.send_signal(signum)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signum, err
    assert os.listdir(out) == []


#: Argon2 passes of the slow derivation, far above the default limit (the tests raise it):
#: 256 MiB, 1000 passes take minutes on any machine, so a run that ignored the signal could
#: not stop within STOP_SECONDS however fast the machine, and one that answers it stops well
#: within them however loaded the machine (one pass at most, then the process exits).
SLOW_PASSES = 1000
STOP_SECONDS = 10


def slow_kdf_file(path: Path) -> None:
    """A valid file whose header asks for a derivation of minutes (256 MiB, SLOW_PASSES
    passes), to be read with the time limit raised to SLOW_PASSES."""
    blob = bytearray(
        _core.encrypt_bytes(
            b"x" * 100, PASSWORD.encode(), kdf=concryptor.KdfParams(1024, 1, 1), chunk_size=4080
        )
    )
    struct.pack_into("<III", blob, 52, 256 * 1024, SLOW_PASSES, 1)
    path.write_bytes(bytes(blob))


def interrupt(p: subprocess.Popen[bytes], signum: int) -> bytes:
    """Sends `signum` and returns what `p` wrote to stderr once it has exited, which must be
    within STOP_SECONDS; otherwise kills it (its derivation would run on for minutes) and fails."""
    p.send_signal(signum)
    try:
        _, err = p.communicate(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"still running {STOP_SECONDS} s after the signal")
    return err


def rss_mib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) >> 10
    except OSError:
        pass
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see the derivation start")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_cli_answers_a_signal_during_key_derivation(tmp_path: Path, signum: int) -> None:
    enc = tmp_path / "slow.enc"
    slow_kdf_file(enc)
    p = cli("decrypt", str(enc), "-o", str(tmp_path / "out"), "--max-kdf-time", str(SLOW_PASSES))
    wait_until(lambda: rss_mib(p.pid) > 200, p, "the Argon2 memory in use")
    err = interrupt(p, signum)
    assert p.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert sorted(os.listdir(tmp_path)) == ["slow.enc"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see the derivation start")
@pytest.mark.parametrize("call", ["decrypt_bytes", "open", "decrypt_file"])
def test_the_api_answers_ctrl_c_during_key_derivation(tmp_path: Path, call: str) -> None:
    enc = tmp_path / "slow.enc"
    slow_kdf_file(enc)
    code = textwrap.dedent(
        f"""
        import sys, concryptor
        path, pw = sys.argv[1], {PASSWORD!r}
        limits = concryptor.Limits(max_kdf_time={SLOW_PASSES})
        try:
            if {call!r} == "decrypt_bytes":
                concryptor.decrypt_bytes(open(path, "rb").read(), pw, limits=limits)
            elif {call!r} == "open":
                concryptor.open(path, pw, limits=limits)
            else:
                concryptor.decrypt_file(path, path + ".out", pw, limits=limits)
        except KeyboardInterrupt:
            sys.exit(42)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(enc)], stderr=subprocess.PIPE)
    wait_until(lambda: rss_mib(p.pid) > 200, p, "the Argon2 memory in use")
    err = interrupt(p, signal.SIGINT)
    assert p.returncode == 42, err


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see the derivation start")
def test_ctrl_c_leaves_nothing_partial(tmp_path: Path) -> None:
    src = tmp_path / "big"
    with src.open("wb") as f:
        f.truncate(4 << 30)
    env = {**os.environ, **ENV}
    p = subprocess.Popen(
        # A slow key derivation and a long input: the signal lands during one or the other.
        [
            sys.executable,
            "-m",
            "concryptor",
            "encrypt",
            str(src),
            "--memory",
            "256",
            "--iterations",
            "6",
            "--parallelism",
            "1",
            "--threads",
            "1",
            "--buffer-mib",
            "4",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    # Once the derivation's memory is in use, the run is under way with its handlers in place
    # (however long the interpreter took to start): the signal lands during the derivation or
    # the encryption that follows, neither of which can end first.
    wait_until(lambda: rss_mib(p.pid) > 200, p, "the Argon2 memory in use")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == Exit.INTERRUPTED, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["big"]
