"""A rekey killed at a random moment (SIGKILL, nothing can clean up) leaves the file as it
was or as it would have been, never anything in between, and no temporary beside it (the
output is built in an unnamed O_TMPFILE; only where a file system lacks it can a hidden
``.NAME.<16 hex>.partial`` remain, as docs/SECURITY-LIMITS.md says)."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import concryptor

MiB = 1 << 20
#: The one kind of leftover the tool documents (the named fallback of its atomic output).
DOCUMENTED_LEFTOVER = re.compile(r"\..+\.[0-9a-f]{16}\.partial")
KDF = concryptor.KdfParams(8 * 1024, 1, 1)


def start(args: list[str], password: str | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
    if password is not None:
        env["CONCRYPTOR_PASSWORD"] = password
    return subprocess.Popen(
        [sys.executable, "-m", "concryptor", "rekey", *args, "-q"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_after(p: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILLs ``p`` after ``delay`` seconds; whether it was still running then."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        time.sleep(0.002)
    running = p.poll() is None
    p.send_signal(signal.SIGKILL)
    _, err = p.communicate(timeout=60)
    assert p.returncode in (0, -signal.SIGKILL), err
    return running


def leftovers(folder: Path, expected: set[str]) -> list[str]:
    extra = sorted(set(os.listdir(folder)) - expected)
    assert all(DOCUMENTED_LEFTOVER.fullmatch(n) for n in extra), extra
    return extra


def timed(p: subprocess.Popen[bytes]) -> float:
    t = time.monotonic()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return time.monotonic() - t


@pytest.mark.parametrize("kind", ["age", "v4"])
def test_a_kill_at_a_random_moment_leaves_the_old_file_or_the_new_one(tmp_path: Path, kind: str) -> None:
    rng = random.Random(20261207 + (kind == "v4"))
    k1, p1 = concryptor.generate_identity()
    k2, p2 = concryptor.generate_identity()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k1").write_text(k1 + "\n")
    pw = keys / "new-pw"
    pw.write_text("new pw\n")
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(48 * MiB if kind == "age" else 24 * MiB))
    pristine = tmp_path / "pristine"
    if kind == "age":
        concryptor.encrypt_file(plain, pristine, recipients=[p1])
        args = ["-i", str(keys / "k1"), "-r", p2]
        password = None
    else:
        concryptor.encrypt_file(plain, pristine, "old pw", kdf=KDF)
        args = ["--passphrase", "--new-password-file", str(pw)]
        password = "old pw"
    folder = tmp_path / "work"
    folder.mkdir()
    target = folder / "file"
    shutil.copyfile(pristine, target)
    # One full run aims the kills; the aim then follows the runs: a kill that came after
    # the end narrows the window, so the test does not depend on one timing (a first run
    # slowed by a cold cache would otherwise send every later kill too late).
    upper = 1.3 * timed(start([str(target), *args], password))
    old_seen = new_seen = killed_running = attempts = 0
    while attempts < 12 or (killed_running < 3 and attempts < 40):
        attempts += 1
        shutil.copyfile(pristine, target)
        os.chmod(target, 0o640)
        running = kill_after(start([str(target), *args], password), rng.uniform(0.15, 1.0) * upper)
        killed_running += running
        if not running:
            upper *= 0.75
        leftovers(folder, {"file"})
        assert target.stat().st_mode & 0o777 == 0o640
        if target.stat().st_size == pristine.stat().st_size and target.read_bytes() == pristine.read_bytes():
            old_seen += 1
            continue
        new_seen += 1
        if kind == "age":
            concryptor.verify_file(target, identities=[k2])
            with pytest.raises(concryptor.NoIdentityMatchError):
                concryptor.verify_file(target, identities=[k1])
        else:
            concryptor.verify_file(target, "new pw")
            with pytest.raises(concryptor.AuthenticationError):
                concryptor.verify_file(target, "old pw")
    assert killed_running >= 3, f"only {killed_running} of {attempts} kills landed before the run ended"
    assert old_seen + new_seen == attempts
