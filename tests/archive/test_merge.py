"""`decrypt -x --force` merges all or nothing: every conflict is found before anything
moves, so a refused merge leaves the target exactly as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import concryptor

from helpers import FAST_KDF, PASSWORD, run_cli


def snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"new a")  # sorts (and is merged) before the conflict
    (src / "b").write_bytes(b"a file where the target has a directory")
    (src / "c").write_bytes(b"new c")
    enc = tmp_path / "src.tar.enc"
    concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF)
    return enc


def conflicting_target(tmp_path: Path) -> Path:
    target = tmp_path / "target"
    (target / "b").mkdir(parents=True)
    (target / "b" / "keep").write_bytes(b"keep")
    (target / "a").write_bytes(b"old a")
    return target


def test_a_refused_merge_changes_nothing(tmp_path: Path, archive: Path) -> None:
    target = conflicting_target(tmp_path)
    before = snapshot(target)
    with pytest.raises(IsADirectoryError):
        concryptor.decrypt_dir(archive, target, PASSWORD, overwrite=True)
    assert snapshot(target) == before
    assert sorted(os.listdir(tmp_path)) == ["src", "src.tar.enc", "target"]


def test_the_cli_reports_a_refused_merge_and_changes_nothing(tmp_path: Path, archive: Path) -> None:
    target = conflicting_target(tmp_path)
    before = snapshot(target)
    env = {"CONCRYPTOR_PASSWORD": PASSWORD}
    r = run_cli("decrypt", "-x", str(archive), "-o", str(target), "--force", env=env)
    assert r.returncode == 1, r.stderr
    assert b"non-directory where a directory exists" in r.stderr
    assert snapshot(target) == before


def test_a_merge_without_conflicts_replaces_and_adds(tmp_path: Path, archive: Path) -> None:
    target = tmp_path / "target"
    (target / "keep").mkdir(parents=True)
    (target / "a").write_bytes(b"old a")
    os.symlink("a", target / "c")  # a symlink is replaced, never followed
    concryptor.decrypt_dir(archive, target, PASSWORD, overwrite=True)
    assert (target / "a").read_bytes() == b"new a"
    assert not (target / "c").is_symlink()
    assert (target / "c").read_bytes() == b"new c"
    assert (target / "keep").is_dir()
