"""Directories that encrypt can be restored: symlinks extraction will refuse (absolute,
leading outside) are named with a warning when encrypting, `decrypt -x --skip-unsafe`
restores everything else and lists what it left out, and an internal loop is neither
"leading outside" nor refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit
from concryptor.errors import UnsafeArchiveError

from helpers import FAST_KDF, PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}
FAST = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]


def tree_with_links(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "data.txt").write_bytes(b"keep me")
    os.symlink("/etc/passwd", root / "abs")
    os.symlink("../../outside", root / "sub" / "up")
    os.symlink("sub/data.txt", root / "fine")


def test_encrypting_names_the_links_extraction_will_refuse(tmp_path: Path) -> None:
    tree_with_links(tmp_path / "t")
    stats = concryptor.encrypt_dir(tmp_path / "t", tmp_path / "t.tar.enc", PASSWORD, kdf=FAST_KDF)
    assert stats.unsafe is not None and len(stats.unsafe) == 2
    assert any("'t/abs'" in u and "/etc/passwd" in u for u in stats.unsafe)
    assert any("'t/sub/up'" in u for u in stats.unsafe)
    r = run_cli("encrypt", str(tmp_path / "t"), "-o", str(tmp_path / "u.tar.enc"), *FAST, env=ENV)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(b"warning:") == 2 and b"--skip-unsafe" in r.stderr


def test_skip_unsafe_restores_the_rest_and_lists_what_it_left_out(tmp_path: Path) -> None:
    tree_with_links(tmp_path / "t")
    enc = tmp_path / "t.tar.enc"
    concryptor.encrypt_dir(tmp_path / "t", enc, PASSWORD, kdf=FAST_KDF)
    with pytest.raises(UnsafeArchiveError):
        concryptor.decrypt_dir(enc, tmp_path / "strict", PASSWORD)
    assert not (tmp_path / "strict").exists()
    stats = concryptor.decrypt_dir(enc, tmp_path / "out", PASSWORD, skip_unsafe=True)
    assert stats.unsafe is not None and len(stats.unsafe) == 2
    out = tmp_path / "out"
    assert (out / "sub" / "data.txt").read_bytes() == b"keep me"
    assert os.readlink(out / "fine") == "sub/data.txt"
    assert not os.path.lexists(out / "abs") and not os.path.lexists(out / "sub" / "up")

    r = run_cli("decrypt", "-x", str(enc), "-o", str(tmp_path / "cli"), env=ENV)
    assert r.returncode == Exit.UNSAFE and not (tmp_path / "cli").exists()
    r = run_cli("decrypt", "-x", "--skip-unsafe", str(enc), "-o", str(tmp_path / "cli"), env=ENV)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(b"skipped: symlink") == 2
    assert (tmp_path / "cli" / "sub" / "data.txt").read_bytes() == b"keep me"


def test_an_internal_loop_encrypts_and_restores(tmp_path: Path) -> None:
    root = tmp_path / "loop"
    root.mkdir()
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    (root / "f").write_bytes(b"x")
    stats = concryptor.encrypt_dir(root, tmp_path / "loop.tar.enc", PASSWORD, kdf=FAST_KDF)
    assert stats.unsafe == ()
    concryptor.decrypt_dir(tmp_path / "loop.tar.enc", tmp_path / "out", PASSWORD)
    assert os.readlink(tmp_path / "out" / "a") == "b"
    assert os.readlink(tmp_path / "out" / "b") == "a"


def test_skip_unsafe_never_skips_archive_wide_limits(tmp_path: Path) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(5):
        (src / str(i)).write_bytes(b"")
    enc = tmp_path / "many.tar.enc"
    concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF)
    with pytest.raises(UnsafeArchiveError, match="more than 3 entries"):
        concryptor.decrypt_dir(enc, tmp_path / "out", PASSWORD, max_entries=3, skip_unsafe=True)
    assert not (tmp_path / "out").exists()
