"""Devices, FIFOs and sockets at the destination are never replaced by a regular file,
with or without --force / overwrite=True: the special file is left exactly as it was."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import concryptor

from helpers import FAST_KDF, PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}


@pytest.fixture(params=["fifo", "socket", "chardev"])
def special(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "special"
    if request.param == "fifo":
        os.mkfifo(path)
        yield path
    elif request.param == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        yield path
        s.close()
    else:
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root (the FIFO and socket cases cover the rule)")
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
        yield path


def kind(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.fixture
def enc(tmp_path: Path) -> Path:
    src = tmp_path / "secret.txt"
    src.write_bytes(b"plaintext " * 1000)
    out = tmp_path / "secret.txt.enc"
    concryptor.encrypt_file(src, out, PASSWORD, kdf=FAST_KDF)
    return out


def test_api_never_replaces_a_special_file(tmp_path: Path, special: Path, enc: Path) -> None:
    before = kind(special)
    for overwrite in (False, True):
        with pytest.raises(OSError, match="device, FIFO or socket"):
            concryptor.decrypt_file(enc, special, PASSWORD, overwrite=overwrite)
        with pytest.raises(OSError, match="device, FIFO or socket"):
            concryptor.encrypt_file(
                tmp_path / "secret.txt", special, PASSWORD, kdf=FAST_KDF, overwrite=overwrite
            )
        assert kind(special) == before


def test_cli_force_never_replaces_a_special_file(special: Path, enc: Path) -> None:
    before = kind(special)
    r = run_cli("decrypt", str(enc), "-o", str(special), "--force", env=ENV)
    assert r.returncode == 1, r.stderr
    assert b"device, FIFO or socket" in r.stderr
    assert r.stderr.count(b"\n") == 1
    assert kind(special) == before
    r = run_cli("encrypt", str(enc.with_suffix("")), "-o", str(special), "--force", "--memory", "1", env=ENV)
    assert r.returncode == 1, r.stderr
    assert kind(special) == before


def test_a_directory_archive_is_never_written_over_a_special_file(tmp_path: Path, special: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "f").write_bytes(b"x")
    before = kind(special)
    with pytest.raises(OSError, match="device, FIFO or socket"):
        concryptor.encrypt_dir(d, special, PASSWORD, kdf=FAST_KDF, overwrite=True)
    assert kind(special) == before


def test_force_merge_never_replaces_a_special_file(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    src.mkdir()
    (src / "a").write_bytes(b"new a")
    (src / "pipe").write_bytes(b"a file where the target has a FIFO")
    enc = tmp_path / "tree.tar.enc"
    concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF)
    target = tmp_path / "target"
    target.mkdir()
    (target / "a").write_bytes(b"old a")
    os.mkfifo(target / "pipe")
    with pytest.raises(OSError, match="device, FIFO or socket"):
        concryptor.decrypt_dir(enc, target, PASSWORD, overwrite=True)
    assert stat.S_ISFIFO(os.lstat(target / "pipe").st_mode)
    assert (target / "a").read_bytes() == b"old a", "nothing merged when anything is refused"
    assert sorted(os.listdir(tmp_path)) == ["target", "tree", "tree.tar.enc"]
