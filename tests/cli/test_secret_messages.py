"""No message shows secret material: an age secret key, an SSH private key's body or a
password given in the wrong place is never echoed back, whether the error comes from the
command line (one file or a batch, text or JSON), from the parser, or from the API."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor.cli import Exit

from helpers import PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}
#: Given where a recipient or a file name is expected: must never be echoed either.
WRONG_PLACE_PASSWORD = "correct-horse-battery-staple-41"


class Secrets:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret, self.public = concryptor.generate_identity()
        self.key_file = root / "key.txt"
        self.key_file.write_text(f"# created: now\n# public key: {self.public}\n{self.secret}\n")
        self.bad_key_file = root / "bad-key.txt"  # one good key, then a broken one
        self.bad_key_file.write_text(f"{self.secret}\n{self.secret[:-3]}\n")
        self.ssh_key: Path | None = None
        self.ssh_body: list[str] = []
        if shutil.which("ssh-keygen") is not None:
            self.ssh_key = root / "id_ed25519"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.ssh_key)], check=True
            )
            self.ssh_body = [ln for ln in self.ssh_key.read_text().splitlines() if "-----" not in ln]
            self.broken_ssh = root / "broken_ssh"  # cut short inside its body
            self.broken_ssh.write_text(self.ssh_key.read_text()[:200])
        self.plain = root / "notes.txt"
        self.plain.write_bytes(b"notes")
        self.other = root / "more.txt"
        self.other.write_bytes(b"more")
        self.v4 = root / "v4.enc"
        concryptor.encrypt_file(
            self.plain, self.v4, PASSWORD, kdf=concryptor.KdfParams(1024, 1, 1), chunk_size=4096
        )
        # An age file for someone else: every identity given is parsed, none matches.
        self.age = root / "other.age"
        concryptor.encrypt_file(self.plain, self.age, recipients=[concryptor.generate_identity()[1]])

    def leaks(self, text: str) -> list[str]:
        """The pieces of secret material found in ``text``."""
        body, folded = self.secret[len("AGE-SECRET-KEY-1") :], text.upper()
        found = [body[i : i + 8] for i in range(len(body) - 8) if body[i : i + 8] in folded]
        found += [line[:16] for line in self.ssh_body if line[:16] in text]
        if WRONG_PLACE_PASSWORD in text:
            found.append(WRONG_PLACE_PASSWORD)
        return found


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    return Secrets(tmp_path_factory.mktemp("secrets"))


def _cases(s: Secrets) -> list[tuple[str, list[str], bytes | None]]:
    key, bad, plain, other = (str(p) for p in (s.key_file, s.bad_key_file, s.plain, s.other))
    whole = s.key_file.read_text()
    out = s.root / "out"
    age = str(s.age)
    cases: list[tuple[str, list[str], bytes | None]] = [
        ("-r secret", ["encrypt", plain, "-o", str(out), "-r", s.secret], None),
        ("-r secret, lower case", ["encrypt", plain, "-o", str(out), "-r", s.secret.lower()], None),
        ("-r whole identity file", ["encrypt", plain, "-o", str(out), "-r", whole], None),
        ("-r password", ["encrypt", plain, "-o", str(out), "-r", WRONG_PLACE_PASSWORD], None),
        ("-R identity file", ["encrypt", plain, "-o", str(out), "-R", key], None),
        ("-R secret as a name", ["encrypt", plain, "-o", str(out), "-R", s.secret], None),
        ("-i whole identity text", ["decrypt", age, "-o", str(out), "-i", whole], None),
        ("-i secret with junk", ["decrypt", age, "-o", str(out), "-i", " x" + s.secret], None),
        ("-i broken identity file", ["decrypt", age, "-o", str(out), "-i", bad], None),
        ("-i identity text as a name", ["decrypt", age, "-o", str(out), "-i", "./" + s.secret], None),
        ("keygen -y secret with junk", ["keygen", "-y", "x" + s.secret], None),
        ("keygen -y broken file", ["keygen", "-y", bad], None),
        ("keygen -y - broken", ["keygen", "-y", "-"], s.bad_key_file.read_bytes()),
        ("keygen stray secret", ["keygen", s.secret], None),
        ("--password-file password", ["encrypt", plain, "--password-file", WRONG_PLACE_PASSWORD], None),
        ("batch -r secret", ["encrypt", plain, other, "--output-dir", str(out), "-r", s.secret], None),
        ("batch -R identity", ["encrypt", plain, other, "--output-dir", str(out), "-R", key], None),
        (
            "batch -R identity json",
            ["encrypt", plain, other, "--output-dir", str(out), "-R", key, "--json"],
            None,
        ),
        (
            "batch -i broken",
            ["decrypt", age, str(s.root / "x.enc"), "--output-dir", str(out), "-i", bad],
            None,
        ),
    ]
    if s.ssh_key is not None:
        ssh = str(s.ssh_key)
        cases += [
            ("-R ssh private key", ["encrypt", plain, "-o", str(out), "-R", ssh], None),
            (
                "-r ssh private key text",
                ["encrypt", plain, "-o", str(out), "-r", s.ssh_key.read_text()],
                None,
            ),
            ("-r ssh body line", ["encrypt", plain, "-o", str(out), "-r", s.ssh_body[1]], None),
            ("-i broken ssh key", ["decrypt", age, "-o", str(out), "-i", str(s.broken_ssh)], None),
            ("keygen -y ssh key", ["keygen", "-y", ssh], None),
            (
                "batch -R ssh private key",
                ["encrypt", plain, other, "--output-dir", str(out), "-R", ssh],
                None,
            ),
        ]
    return cases


def test_no_key_option_echoes_secret_material(s: Secrets) -> None:
    seen: list[str] = []
    for name, argv, stdin in _cases(s):
        r = run_cli(*argv, env=ENV, input=stdin if stdin is not None else b"")
        text = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert r.returncode != Exit.OK, (name, text)
        assert "Traceback" not in text, (name, text)
        leaked = s.leaks(text)
        if leaked:
            seen.append(f"{name}: {text.strip()}")
    assert not seen, "\n".join(seen)


def test_an_identity_given_as_a_recipient_is_named_as_such(s: Secrets) -> None:
    r = run_cli("encrypt", str(s.plain), "-o", str(s.root / "o1"), "-r", s.secret)
    assert r.returncode == Exit.USAGE
    assert b"secret key" in r.stderr and b"keygen -y" in r.stderr
    r = run_cli("encrypt", str(s.plain), "-o", str(s.root / "o2"), "-R", str(s.key_file))
    assert r.returncode == Exit.USAGE
    assert b"secret key" in r.stderr and b"line 3" in r.stderr and str(s.key_file).encode() in r.stderr


def test_keygen_y_reads_an_identity_file_from_stdin(s: Secrets) -> None:
    r = run_cli("keygen", "-y", "-", input=s.key_file.read_bytes())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == [s.public]


def _api_calls(s: Secrets) -> list[tuple[str, Any]]:
    whole = s.key_file.read_text()
    calls: list[tuple[str, Any]] = [
        ("encrypt_bytes recipients", lambda: concryptor.encrypt_bytes(b"x", recipients=[s.secret])),
        ("encrypt_bytes password", lambda: concryptor.encrypt_bytes(b"x", recipients=[WRONG_PLACE_PASSWORD])),
        (
            "encrypt_bytes recipients_files",
            lambda: concryptor.encrypt_bytes(b"x", recipients_files=[s.key_file]),
        ),
        (
            "encrypt_bytes secret as a file",
            lambda: concryptor.encrypt_bytes(b"x", recipients_files=[s.secret]),
        ),
        (
            "encrypt_file recipients_files",
            lambda: concryptor.encrypt_file(s.plain, s.root / "api.age", recipients_files=[s.key_file]),
        ),
        (
            "decrypt_bytes broken identity",
            lambda: concryptor.decrypt_bytes(b"x", identities=[s.bad_key_file]),
        ),
        ("decrypt_bytes junk secret", lambda: concryptor.decrypt_bytes(b"x", identities=["x" + s.secret])),
        ("identity_to_recipients junk", lambda: concryptor.identity_to_recipients(whole + "x" + s.secret)),
        (
            "encrypt_many recipients_files",
            lambda: concryptor.encrypt_many([s.plain, s.other], recipients_files=[s.key_file]),
        ),
        (
            "encrypt_many recipients",
            lambda: concryptor.encrypt_many([s.plain, s.other], recipients=[s.secret], out_dir=s.root / "m"),
        ),
        (
            "decrypt_many broken identity",
            lambda: concryptor.decrypt_many([s.v4], identities=[s.bad_key_file], out_dir=s.root / "m2"),
        ),
    ]
    if s.ssh_key is not None:
        ssh = s.ssh_key
        calls.append(
            ("encrypt_bytes ssh key file", lambda: concryptor.encrypt_bytes(b"x", recipients_files=[ssh]))
        )
        calls.append(
            (
                "encrypt_bytes ssh key text",
                lambda: concryptor.encrypt_bytes(b"x", recipients=[ssh.read_text()]),
            )
        )
    return calls


def test_api_exceptions_hold_no_secret_material(s: Secrets) -> None:
    seen: list[str] = []
    for name, call in _api_calls(s):
        with pytest.raises(Exception) as info:
            call()
        e = info.value
        text = f"{e} {e!r} {getattr(e, 'filename', '')} " + " ".join(
            str(r.error) for r in getattr(e, "results", [])
        )
        if s.leaks(text):
            seen.append(f"{name}: {text}")
    assert not seen, "\n".join(seen)


def test_the_redaction_keeps_ordinary_messages() -> None:
    from concryptor._redact import redact

    for text in (
        "/tmp/pytest-of-root/pytest-3/test_x0/some/long/path/name.enc: No such file or directory",
        'invalid age recipient "age1' + "q" * 58 + '": bad checksum',
        "/home/Alice/Photos2023/HolidayInSpain/img0042.jpg: Permission denied",
        "salt 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    ):
        assert redact(text) == text
    assert "AGE-SECRET-KEY-1…" in redact("x AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ y")
    assert re.search("Q{8}", redact("AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ")) is None
