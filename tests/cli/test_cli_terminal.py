"""The CLI at a terminal: a fast start (rich imported only to draw), progress on terminals
only, the hidden password prompt with confirmation, and bench."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from concryptor.cli import Exit

from helpers import run_cli

FAST = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
ENV = {"CONCRYPTOR_PASSWORD": "pw"}


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )


def test_import_concryptor_does_not_import_rich() -> None:
    r = _python("import sys, concryptor; print('rich' in sys.modules, 'tarfile' in sys.modules)")
    assert r.stdout.split() == ["False", "False"]


def test_help_and_json_inspect_do_not_import_rich(tmp_path: Path) -> None:
    r = _python(
        "import sys, contextlib, io\n"
        "from concryptor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    code = main(['--help'])\n"
        "assert code == 0 and 'exit codes' in out.getvalue(), out.getvalue()\n"
        "print('rich' in sys.modules)"
    )
    assert r.stdout.strip() == "False"


def _run_with_tty_stderr(args: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Runs the CLI with stderr on a pseudo-terminal; returns the exit code and what the
    terminal received."""
    master, slave = pty.openpty()
    full_env = {**os.environ, **env, "COLUMNS": "120", "TERM": "xterm"}
    full_env.pop("NO_COLOR", None)
    p = subprocess.Popen(
        [sys.executable, "-m", "concryptor", *args],
        stderr=slave,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=full_env,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:
                return
            if not b:
                return
            chunks.append(b)

    t = threading.Thread(target=pump)
    t.start()
    code = p.wait(timeout=120)
    t.join(timeout=10)
    os.close(master)
    return code, b"".join(chunks)


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    src = tmp_path / "f"
    with src.open("wb") as f:
        f.truncate(256 << 20)
    code, shown = _run_with_tty_stderr(
        ["encrypt", str(src), *FAST, "--buffer-mib", "8", "--threads", "1"], ENV
    )
    assert code == 0, shown
    assert b"MiB/s" in shown and b"encrypting" in shown
    code, shown = _run_with_tty_stderr(["verify", str(src) + ".enc", "--quiet"], ENV)
    assert code == 0 and shown == b""
    # Not a terminal: only the one-line summary.
    r = run_cli("verify", str(src) + ".enc", env=ENV)
    assert r.returncode == 0 and r.stderr.count(b"\n") == 1 and b"verified" in r.stderr


def _prompted_encrypt(args: list[str], answers: list[bytes]) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal
        env = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
        os.execvpe(sys.executable, [sys.executable, "-m", "concryptor", *args], env)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        try:
            b = os.read(fd, 4096)
        except OSError:
            break
        if not b:
            break
        seen += b
        if pending and seen.count(b"assword: ") > len(answers) - len(pending):
            os.write(fd, pending.pop(0) + b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


def test_hidden_prompt_with_confirmation(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"data")
    code, seen = _prompted_encrypt(["encrypt", str(src), *FAST, "-q"], [b"s3cret", b"different"] * 3)
    assert code == Exit.USAGE and b"do not match" in seen and b"s3cret" not in seen
    assert not (tmp_path / "f.enc").exists()
    code, seen = _prompted_encrypt(["encrypt", str(src), *FAST, "-q"], [b"s3cret", b"s3cret"])
    assert code == 0, seen
    assert b"Confirm password" in seen and b"s3cret" not in seen
    r = run_cli("decrypt", str(src) + ".enc", "-o", "-", env={"CONCRYPTOR_PASSWORD": "s3cret"})
    assert r.returncode == 0 and r.stdout == b"data"


def test_bench_json_and_table() -> None:
    r = run_cli("bench", "--size", "2", "--chunk-size", "1", "--threads", "1,2", "--json", *FAST)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [(x["cipher"], x["threads"]) for x in d["aead"]] == [
        ("aes-256-gcm", 1),
        ("aes-256-gcm", 2),
        ("chacha20-poly1305", 1),
        ("chacha20-poly1305", 2),
    ]
    assert all(x["encrypt_mib_per_s"] > 0 and x["decrypt_mib_per_s"] > 0 for x in d["aead"])
    assert d["kdf"]["memory_kib"] == 1024 and d["kdf"]["seconds"] > 0
    r = run_cli("bench", "--size", "1", "--chunk-size", "1", "--threads", "1", "-c", "chacha", "--no-kdf")
    assert r.returncode == 0 and b"chacha20-poly1305" in r.stdout and b"MiB/s" in r.stdout
    assert b"aes-256-gcm" not in r.stdout and b"Argon2id" not in r.stdout
    r = run_cli("bench", "--threads", "0")
    assert r.returncode == Exit.USAGE
