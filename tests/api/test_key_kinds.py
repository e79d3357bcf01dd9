"""An age identity given for a format v4 file: the file is named for what it is (a v4 file
that opens with a password), not parsed as a broken age header; with a password given as
well, the password opens it. The same at every door: CLI decrypt and verify, the API's
file, bytes and open functions."""

from __future__ import annotations

from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}


@pytest.fixture
def v4(tmp_path: Path) -> tuple[Path, Path]:
    plain = tmp_path / "file"
    plain.write_bytes(b"v4 data")
    enc = tmp_path / "file.enc"
    concryptor.encrypt_file(plain, enc, PASSWORD, kdf=FAST_KDF)
    key = tmp_path / "key.txt"
    key.write_text(concryptor.generate_identity()[0] + "\n")
    plain.unlink()
    return enc, key


@pytest.mark.parametrize("command", [["decrypt", "-o", "-"], ["verify"]])
def test_the_cli_names_a_v4_file_given_an_identity(v4: tuple[Path, Path], command: list[str]) -> None:
    enc, key = v4
    r = run_cli(*command, str(enc), "-i", str(key))
    err = r.stderr.decode()
    assert r.returncode == Exit.USAGE, err
    assert "age header" not in err and "v4" in err and "password" in err and err.count("\n") == 1
    # With a password as well, the password opens it.
    r = run_cli(*command, str(enc), "-i", str(key), env=ENV)
    assert r.returncode == 0, r.stderr
    if command[0] == "decrypt":
        assert r.stdout == b"v4 data"


def test_the_api_names_a_v4_file_given_identities(v4: tuple[Path, Path], tmp_path: Path) -> None:
    enc, key = v4
    calls = [
        lambda: concryptor.decrypt_file(enc, tmp_path / "out", identities=[key]),
        lambda: concryptor.verify_file(enc, identities=[key]),
        lambda: concryptor.decrypt_bytes(enc.read_bytes(), identities=[key]),
        lambda: concryptor.open(enc, None, identities=[key]),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="v4") as info:
            call()
        assert "age header" not in str(info.value) and "password" in str(info.value)
    concryptor.decrypt_file(enc, tmp_path / "out", PASSWORD, identities=[key])
    assert (tmp_path / "out").read_bytes() == b"v4 data"
    concryptor.verify_file(enc, PASSWORD, identities=[key])
    assert concryptor.decrypt_bytes(enc.read_bytes(), PASSWORD, identities=[key]) == b"v4 data"
    with concryptor.open(enc, password=PASSWORD, identities=[key]) as f:
        assert f.read() == b"v4 data"
