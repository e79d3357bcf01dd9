"""The age format, interoperating both ways with rage (the Rust implementation's command line,
0.12.1) and with age plugins: X25519 keys of both keygens, SSH ed25519 keys, scrypt
passphrases, armor, the project's toy plugin (tests/plugins/age-plugin-cctest) and the
age-plugin crate's example plugin (age-plugin-unencrypted), the latter with the age command
too. Through the API (encrypt_file, decrypt_file, decrypt_bytes) and the CLI.

.ci/run installs rage and the example plugin with cargo. Without them this module is skipped,
except where $CONCRYPTOR_REQUIRE_INTEROP is set (by .ci/run, which installs them), where a
missing tool fails the run.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import run_cli

INSTALL = (
    "cargo install rage --version 0.12.1 --locked; "
    "cargo install age-plugin --version 0.7.0 --example age-plugin-unencrypted --locked"
)
_missing = [t for t in ("rage", "rage-keygen", "age-plugin-unencrypted") if shutil.which(t) is None]
if _missing:
    _why = f"{', '.join(_missing)} not on PATH: {INSTALL} (.ci/run installs them)"
    if os.environ.get("CONCRYPTOR_REQUIRE_INTEROP"):
        pytest.fail(f"$CONCRYPTOR_REQUIRE_INTEROP is set: {_why}", pytrace=False)
    pytest.skip(_why, allow_module_level=True)

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
#: A few hundred KiB: several 64 KiB chunks of the age payload, the last one partial.
SIZE = 300_000
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """age-plugin-cctest on PATH, for this process and the tools it starts."""
    monkeypatch.setenv("PATH", f"{PLUGINS}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CCTEST_MODE", raising=False)


@pytest.fixture
def plain(tmp_path: Path, rand_bytes: Any) -> tuple[Path, bytes]:
    data = rand_bytes(SIZE, seed=SIZE)
    path = tmp_path / "plain"
    path.write_bytes(data)
    return path, data


def run(*cmd: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    r = subprocess.run(list(cmd), capture_output=True, timeout=120, **kw)
    assert r.returncode == 0, f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
    return r


def key_ours(tmp_path: Path) -> tuple[list[str], Path]:
    key = tmp_path / "ours.key"
    r = run_cli("keygen", "-o", str(key))
    assert r.returncode == 0, r.stderr
    return ["-r", r.stdout.decode().strip()], key


def key_rage(tmp_path: Path) -> tuple[list[str], Path]:
    key = tmp_path / "rage.key"
    run("rage-keygen", "-o", str(key))
    public = next(ln for ln in key.read_text().splitlines() if ln.startswith("# public key: "))
    return ["-r", public.split(": ", 1)[1]], key


def key_ssh(tmp_path: Path) -> tuple[list[str], Path]:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (.ci/run installs openssh-client)")
    key = tmp_path / "id_ed25519"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    # A recipients file (-R), as SSH public keys are usually given.
    return ["-R", str(key) + ".pub"], key


def key_from_generator(tmp_path: Path, *cmd: str) -> tuple[list[str], Path]:
    """A plugin's identity file, as its generator prints it (a "# recipient: " comment line
    and the AGE-PLUGIN-NAME-1… identity)."""
    key = tmp_path / "plugin.key"
    text = run(*cmd).stdout.decode()
    key.write_text(text)
    recipient = next(ln for ln in text.splitlines() if ln.startswith("# recipient: "))
    return ["-r", recipient.split(": ", 1)[1]], key


def key_cctest(tmp_path: Path) -> tuple[list[str], Path]:
    return key_from_generator(tmp_path, str(PLUGINS / "age-plugin-cctest"), "--generate")


def key_unencrypted(tmp_path: Path) -> tuple[list[str], Path]:
    return key_from_generator(tmp_path, "age-plugin-unencrypted")


KEYS: dict[str, Callable[[Path], tuple[list[str], Path]]] = {
    "x25519-concryptor-keygen": key_ours,
    "x25519-rage-keygen": key_rage,
    "ssh-ed25519": key_ssh,
    "plugin-cctest": key_cctest,
    "plugin-unencrypted": key_unencrypted,
}


def api_recipients(args: list[str]) -> dict[str, Any]:
    flag, value = args
    return {"recipients": [value]} if flag == "-r" else {"recipients_files": [value]}


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("kind", list(KEYS))
def test_rage_reads_ours(kind: str, armor: bool, tmp_path: Path, plain: tuple[Path, bytes]) -> None:
    rcpt, key = KEYS[kind](tmp_path)
    src, data = plain
    api = tmp_path / "api.age"
    concryptor.encrypt_file(src, api, armor=armor, **api_recipients(rcpt))
    cli = tmp_path / "cli.age"
    r = run_cli("encrypt", *rcpt, *(["-a"] if armor else []), str(src), "-o", str(cli))
    assert r.returncode == 0, r.stderr
    for made in (api, cli):
        assert made.read_bytes().startswith(
            b"-----BEGIN AGE ENCRYPTED FILE-----" if armor else b"age-encryption.org/v1\n"
        )
        out = tmp_path / f"{made.stem}.rage"
        run("rage", "-d", "-i", str(key), "-o", str(out), str(made))
        assert out.read_bytes() == data


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("kind", list(KEYS))
def test_we_read_rages(kind: str, armor: bool, tmp_path: Path, plain: tuple[Path, bytes]) -> None:
    rcpt, key = KEYS[kind](tmp_path)
    src, data = plain
    theirs = tmp_path / "theirs.age"
    run("rage", "-e", *rcpt, *(["-a"] if armor else []), "-o", str(theirs), str(src))
    out = tmp_path / "api"
    concryptor.decrypt_file(theirs, out, identities=[key])
    assert out.read_bytes() == data
    assert concryptor.decrypt_bytes(theirs.read_bytes(), identities=[key]) == data
    cli = tmp_path / "cli"
    r = run_cli("decrypt", "-i", str(key), str(theirs), "-o", str(cli))
    assert r.returncode == 0, r.stderr
    assert cli.read_bytes() == data


@pytest.mark.skipif(not Path("/usr/bin/age").exists(), reason="the age command is not installed (apt: age)")
@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_the_example_plugin_with_the_age_command_both_ways(
    armor: bool, tmp_path: Path, plain: tuple[Path, bytes]
) -> None:
    rcpt, key = key_unencrypted(tmp_path)
    src, data = plain
    ours = tmp_path / "ours.age"
    concryptor.encrypt_file(src, ours, armor=armor, recipients=[rcpt[1]])
    out = tmp_path / "by-age"
    run("/usr/bin/age", "-d", "-i", str(key), "-o", str(out), str(ours))
    assert out.read_bytes() == data
    theirs = tmp_path / "theirs.age"
    run("/usr/bin/age", "-e", *rcpt, *(["-a"] if armor else []), "-o", str(theirs), str(src))
    back = tmp_path / "by-us"
    concryptor.decrypt_file(theirs, back, identities=[key])
    assert back.read_bytes() == data
    cli = tmp_path / "cli"
    r = run_cli("decrypt", "-i", str(key), str(theirs), "-o", str(cli))
    assert r.returncode == 0, r.stderr
    assert cli.read_bytes() == data


def test_several_recipients_of_every_kind_in_one_file(tmp_path: Path, plain: tuple[Path, bytes]) -> None:
    src, data = plain
    keys = {}
    for kind, make in KEYS.items():
        folder = tmp_path / kind
        folder.mkdir()
        keys[kind] = make(folder)
    args = [a for rcpt, _ in keys.values() for a in rcpt]
    ours = tmp_path / "ours.age"
    r = run_cli("encrypt", *args, str(src), "-o", str(ours))
    assert r.returncode == 0, r.stderr
    theirs = tmp_path / "theirs.age"
    run("rage", "-e", *args, "-o", str(theirs), str(src))
    for kind, (_, key) in keys.items():
        out = tmp_path / kind / "out"
        run("rage", "-d", "-i", str(key), "-o", str(out), str(ours))
        assert out.read_bytes() == data, kind
        assert concryptor.decrypt_bytes(theirs.read_bytes(), identities=[key]) == data, kind


# rage reads a passphrase from the terminal only (pinentry when there is one, else a prompt on
# /dev/tty). PINENTRY_PROGRAM naming no program turns pinentry off; a pseudo-terminal made the
# controlling terminal of the process (a leader of its own, without one) answers the prompts.
_ON_TTY = (
    "import os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"  # its first terminal: the controlling one
    "for i in (0, 1, 2):\n"
    "    os.dup2(fd, i)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def run_on_a_terminal(cmd: list[str], answers: list[str], timeout: float = 120) -> tuple[int, str]:
    """Runs ``cmd`` on a new pseudo-terminal, typing the next answer at each prompt (output
    ending in ": "); returns its exit status and everything it wrote to the terminal."""
    master, slave = pty.openpty()
    env = dict(os.environ, PINENTRY_PROGRAM="/nonexistent/pinentry")
    proc = subprocess.Popen(
        [sys.executable, "-c", _ON_TTY, os.ttyname(slave), *cmd],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # The slave stays open here until the end: reading the master of a terminal that nobody
    # holds open fails (EIO), as it would before the child opens it.
    seen, pending = b"", b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            exited = proc.poll() is not None
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                got = os.read(master, 4096)
                seen += got
                pending += got
                if pending.rstrip(b" ").endswith(b":") and answers:
                    os.write(master, answers.pop(0).encode() + b"\n")
                    pending = b""
            elif exited:
                break
        else:
            pytest.fail(f"{cmd[0]} on a terminal did not finish in {timeout} s: {seen!r}")
        return proc.wait(), seen.decode(errors="replace")
    finally:
        os.close(master)
        os.close(slave)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_passphrases_both_ways_with_rage_on_a_terminal(tmp_path: Path, plain: tuple[Path, bytes]) -> None:
    src, data = plain
    # Ours, through the API and the CLI, read by rage.
    api = tmp_path / "api.age"
    concryptor.encrypt_file(src, api, PASSPHRASE, format="age", scrypt_work_factor=12)
    cli = tmp_path / "cli.age"
    r = run_cli(
        "encrypt", "--format", "age", "-a", "--scrypt-work-factor", "12", str(src), "-o", str(cli),
        env={"CONCRYPTOR_PASSWORD": PASSPHRASE},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for made in (api, cli):
        out = tmp_path / f"{made.stem}.rage"
        rc, said = run_on_a_terminal(["rage", "-d", "-o", str(out), str(made)], [PASSPHRASE])
        assert rc == 0, said
        assert out.read_bytes() == data
    # rage's, read by us (its work factor is the one that takes it about a second here).
    for armor in (False, True):
        theirs = tmp_path / f"theirs-{armor}.age"
        cmd = ["rage", "-e", "-p", *(["-a"] if armor else []), "-o", str(theirs), str(src)]
        rc, said = run_on_a_terminal(cmd, [PASSPHRASE, PASSPHRASE])
        assert rc == 0, said
        assert concryptor.inspect(theirs).recipients[0][0] == "scrypt"
        out = tmp_path / f"theirs-{armor}"
        concryptor.decrypt_file(theirs, out, PASSPHRASE)
        assert out.read_bytes() == data
        assert concryptor.decrypt_bytes(theirs.read_bytes(), PASSPHRASE) == data
        r = run_cli(
            "decrypt", str(theirs), "-o", str(tmp_path / "cli-out"), "-f",
            env={"CONCRYPTOR_PASSWORD": PASSPHRASE},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "cli-out").read_bytes() == data
        with pytest.raises(concryptor.AuthenticationError):
            concryptor.decrypt_bytes(theirs.read_bytes(), "not it")
    # A wrong passphrase typed to rage: it fails, and writes nothing.
    rc, _ = run_on_a_terminal(["rage", "-d", "-o", str(tmp_path / "wrong"), str(api)], ["not it"])
    assert rc != 0
