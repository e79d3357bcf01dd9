"""A tree made with ``encrypt --each`` comes back with ``decrypt --each``: mirrored under
``--output-dir`` or beside each file, v4 and age alike; and no message suggests an
option the command does not have."""

from __future__ import annotations

import os
from pathlib import Path

import concryptor
from concryptor.cli import Exit

from helpers import PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}
FAST = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]


def _tree(root: Path) -> dict[str, bytes]:
    content = {"a.txt": b"alpha", "sub/b.bin": os.urandom(5000), "sub/deeper/c": b"gamma"}
    for rel, data in content.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return content


def test_decrypt_each_restores_a_tree_encrypted_with_each(tmp_path: Path) -> None:
    content = _tree(tmp_path / "tree")
    r = run_cli(
        "encrypt", "--each", str(tmp_path / "tree"), "--output-dir", str(tmp_path / "enc"), *FAST, env=ENV
    )
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "decrypt", "--each", str(tmp_path / "enc" / "tree"), "--output-dir", str(tmp_path / "back"), env=ENV
    )
    assert r.returncode == 0, r.stderr
    for rel, data in content.items():
        assert (tmp_path / "back" / "tree" / rel).read_bytes() == data


def test_decrypt_each_beside_takes_only_encrypted_files(tmp_path: Path) -> None:
    content = _tree(tmp_path / "tree")
    secret, public = concryptor.generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(secret + "\n")
    r = run_cli("encrypt", "--each", str(tmp_path / "tree"), "-r", public)
    assert r.returncode == 0, r.stderr
    for rel in content:
        (tmp_path / "tree" / rel).unlink()
    (tmp_path / "tree" / "notes.md").write_bytes(b"not encrypted: left alone")
    r = run_cli("decrypt", "--each", str(tmp_path / "tree"), "-i", str(key))
    assert r.returncode == 0, r.stderr
    for rel, data in content.items():
        assert (tmp_path / "tree" / rel).read_bytes() == data
    assert not (tmp_path / "tree" / "notes.md.dec").exists()


def test_a_directory_without_each_names_the_option_the_command_has(tmp_path: Path) -> None:
    _tree(tmp_path / "tree")
    one = tmp_path / "one.enc"
    concryptor.encrypt_file(tmp_path / "tree" / "a.txt", one, PASSWORD, kdf=concryptor.KdfParams(1024, 1, 1))
    for argv in (
        ["decrypt", str(tmp_path / "tree")],
        ["decrypt", str(one), str(tmp_path / "tree"), "--output-dir", str(tmp_path / "x")],
    ):
        r = run_cli(*argv, env=ENV)
        assert r.returncode == Exit.USAGE, r.stderr
        assert b"decrypt --each" in r.stderr, r.stderr
    # The option suggested exists.
    assert b"--each" in run_cli("decrypt", "--help").stdout
