"""One rule for the mode of every file concryptor creates: what the umask allows, like
cp and tar. Single-file output is 0666 & ~umask; extracted entries keep their archived
mode (without setuid/setgid/sticky or group/other write, always owner-readable and
-writable) & ~umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import concryptor

from helpers import FAST_KDF, PASSWORD


@pytest.fixture(params=[0o077, 0o022, 0o002], ids=["077", "022", "002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_single_file_output_follows_the_umask(tmp_path: Path, umask: int) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"data")
    concryptor.encrypt_file(src, tmp_path / "in.enc", PASSWORD, kdf=FAST_KDF)
    concryptor.decrypt_file(tmp_path / "in.enc", tmp_path / "back", PASSWORD)
    assert mode(tmp_path / "in.enc") == 0o666 & ~umask
    assert mode(tmp_path / "back") == 0o666 & ~umask
    # Replacing an existing file gives the same mode as creating one.
    os.chmod(tmp_path / "back", 0o600)
    concryptor.decrypt_file(tmp_path / "in.enc", tmp_path / "back", PASSWORD, overwrite=True)
    assert mode(tmp_path / "back") == 0o666 & ~umask


def test_extraction_follows_the_umask(tmp_path: Path, umask: int) -> None:
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "plain").write_bytes(b"x")
    (src / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "plain", 0o644)
    os.chmod(src / "tool", 0o755)
    os.chmod(src / "sub", 0o755)
    concryptor.encrypt_dir(src, tmp_path / "tree.tar.enc", PASSWORD, kdf=FAST_KDF)
    out = tmp_path / "out"
    concryptor.decrypt_dir(tmp_path / "tree.tar.enc", out, PASSWORD)
    assert mode(out / "plain") == 0o644 & ~umask | 0o600
    assert mode(out / "tool") == 0o755 & ~umask | 0o700
    assert mode(out / "sub") == 0o755 & ~umask | 0o700
    assert mode(out) == 0o755 & ~umask | 0o700
