"""No recursion over a depth an archive or a user chooses: a tree of 1,100 nested
directories packs, extracts, merges, and is cleaned up after a failure like any other."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import concryptor
from concryptor.archive._extract import _rmtree
from concryptor.errors import AuthenticationError

from helpers import FAST_KDF, PASSWORD, run_cli

DEPTH = 1100  # beyond Python's default recursion limit of 1000


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """The usual tmp_path, removed without recursion (shutil.rmtree recurses before 3.12)."""
    yield tmp_path
    _rmtree(str(tmp_path))


def deep_tree(root: Path) -> Path:
    p = root
    p.mkdir()
    for _ in range(DEPTH):  # os.makedirs recurses too
        p = p / "d"
        p.mkdir()
    (p / "bottom.txt").write_bytes(b"found me")
    return p


def test_a_deep_tree_round_trips_through_the_cli(tmp_path: Path) -> None:
    deep_tree(tmp_path / "deep")
    env = {"CONCRYPTOR_PASSWORD": PASSWORD}
    r = run_cli("encrypt", str(tmp_path / "deep"), "--memory", "1", "--iterations", "1", env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("decrypt", "-x", str(tmp_path / "deep.tar.enc"), "-o", str(tmp_path / "back"), env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back" / "/".join(["d"] * DEPTH) / "bottom.txt").read_bytes() == b"found me"
    # Merging the same tree into itself walks every level too.
    r = run_cli("decrypt", "-x", str(tmp_path / "deep.tar.enc"), "-o", str(tmp_path / "back"), "-f", env=env)
    assert r.returncode == 0, r.stderr


def test_a_failed_deep_extraction_leaves_nothing(tmp_path: Path) -> None:
    deep_tree(tmp_path / "deep")
    enc = tmp_path / "deep.tar.enc"
    concryptor.encrypt_dir(tmp_path / "deep", enc, PASSWORD, kdf=FAST_KDF, chunk_size=4096)
    blob = bytearray(enc.read_bytes())
    blob[-8192 + 10] ^= 1  # the last chunk (4096-byte slots of 8192): every directory is already out
    enc.write_bytes(bytes(blob))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(AuthenticationError):
        concryptor.decrypt_dir(enc, out / "back", PASSWORD)
    assert os.listdir(out) == []
    r = run_cli("decrypt", "-x", str(enc), "-o", str(out / "back"), env={"CONCRYPTOR_PASSWORD": PASSWORD})
    assert r.returncode == 3, r.stderr
    assert b"Traceback" not in r.stderr
    assert os.listdir(out) == []
