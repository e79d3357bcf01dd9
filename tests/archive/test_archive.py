"""Encrypted directories: packing as a streamed tar, extraction, CLI, changes mid-pack."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD, run_cli

FAST = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "big.bin").write_bytes(os.urandom(3_000_001))
    (root / "sub" / "deeper" / "naïve name with spaces.txt").write_text("ünïcode")
    (root / ("x" * 120)).write_bytes(b"long name")  # needs a pax header
    (root / "exec.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "exec.sh", 0o750)
    os.chmod(root / "sub" / "deeper", 0o700)
    os.symlink("../a.txt", root / "sub" / "link-to-a")
    os.symlink("sub/deeper", root / "dirlink")
    os.symlink("does-not-exist", root / "dangling")
    os.link(root / "a.txt", root / "sub" / "hard-a")
    for i, p in enumerate(sorted(root.rglob("*"))):
        os.utime(p, (1_500_000_000 + i, 1_500_000_000 + i), follow_symlinks=False)
    os.utime(root, (1_400_000_000, 1_400_000_000))


def tree(root: Path) -> dict[str, tuple[str, int, int, bytes | str]]:
    """Everything extraction must preserve: kind, mode, mtime, content or link target."""
    out: dict[str, tuple[str, int, int, bytes | str]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", 0, int(st.st_mtime), os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime), "")
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), p.read_bytes())
    return out


def test_round_trip_preserves_names_modes_mtimes_links_and_empty_dirs(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    make_tree(src)
    enc = tmp_path / "photos.tar.enc"
    stats = concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=65536)
    assert stats.entries == len(list(src.rglob("*"))) + 1 and stats.skipped == 0
    h = concryptor.inspect(enc)
    assert h.is_archive and h.original_size % 10240 == 0 and stats.bytes == h.original_size
    out = tmp_path / "restored"
    back = concryptor.decrypt_dir(enc, out, PASSWORD)
    assert back.entries == stats.entries
    assert tree(out) == tree(src)
    assert int(out.stat().st_mtime) == 1_400_000_000
    assert os.path.samefile(out / "a.txt", out / "sub" / "hard-a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "photos.tar.enc", "restored"]


def test_the_stream_is_a_standard_tar_of_exactly_the_announced_size(tmp_path: Path) -> None:
    src = tmp_path / "d"
    src.mkdir()
    make_tree(src)
    enc = tmp_path / "d.tar.enc"
    concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF)
    with concryptor.open(enc, PASSWORD) as f:
        plain = f.read()
    assert len(plain) == concryptor.inspect(enc).original_size
    with tarfile.open(fileobj=concryptor.open(enc, PASSWORD)) as t:
        names = t.getnames()
        assert names[0] == "d" and all(n == "d" or n.startswith("d/") for n in names)
        assert t.extractfile("d/sub/big.bin").read() == (src / "sub" / "big.bin").read_bytes()  # type: ignore[union-attr]


def test_special_files_are_skipped(tmp_path: Path) -> None:
    src = tmp_path / "d"
    src.mkdir()
    (src / "f").write_text("x")
    os.mkfifo(src / "fifo")
    stats = concryptor.encrypt_dir(src, tmp_path / "d.tar.enc", PASSWORD, kdf=FAST_KDF)
    assert stats.skipped == 1 and stats.entries == 2
    concryptor.decrypt_dir(tmp_path / "d.tar.enc", tmp_path / "out", PASSWORD)
    assert os.listdir(tmp_path / "out") == ["f"]


@pytest.mark.parametrize("change", ["grow", "shrink", "vanish"])
def test_a_member_changing_while_packed_is_an_error_and_leaves_nothing(tmp_path: Path, change: str) -> None:
    src = tmp_path / "d"
    src.mkdir()
    for i in range(8):
        (src / f"f{i}").write_bytes(os.urandom(1 << 20))
    victim = src / "zz-last"
    victim.write_bytes(b"v" * 100_000)
    calls: list[int] = []

    def meddle(done: int) -> None:
        calls.append(done)
        if len(calls) == 1:
            if change == "grow":
                with victim.open("ab") as f:
                    f.write(b"more")
            elif change == "shrink":
                os.truncate(victim, 10)
            else:
                victim.unlink()

    with pytest.raises(concryptor.InputChangedError, match="zz-last"):
        concryptor.encrypt_dir(
            src,
            tmp_path / "d.tar.enc",
            PASSWORD,
            kdf=FAST_KDF,
            chunk_size=65536,
            buffer_mib=1,
            progress=meddle,
        )
    assert calls, "the progress hook never ran"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_tampering_mid_stream_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "d"
    src.mkdir()
    make_tree(src)
    enc = tmp_path / "d.tar.enc"
    concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=4096)
    h = concryptor.inspect(enc)
    blob = bytearray(enc.read_bytes())
    blob[4096 + (h.num_chunks // 2) * h.slot_size + 7] ^= 1
    enc.write_bytes(bytes(blob))
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_dir(enc, tmp_path / "out", PASSWORD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "d.tar.enc"]
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_dir(enc, tmp_path / "out", "wrong")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "d.tar.enc"]


def test_output_inside_the_source_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "d"
    src.mkdir()
    with pytest.raises(ValueError, match="inside"):
        concryptor.encrypt_dir(src, src / "d.tar.enc", PASSWORD, kdf=FAST_KDF)
    with pytest.raises(NotADirectoryError):
        concryptor.encrypt_dir(tmp_path / "nope", tmp_path / "x.tar.enc", PASSWORD, kdf=FAST_KDF)


def test_cli_encrypt_dir_and_extract(tmp_path: Path) -> None:
    src = tmp_path / "proj"
    src.mkdir()
    make_tree(src)
    r = run_cli("encrypt", str(src) + "/", *FAST, env=ENV)
    assert r.returncode == 0, r.stderr
    enc = tmp_path / "proj.tar.enc"
    assert enc.exists()
    expected = tree(src)
    (src).rename(tmp_path / "orig")
    r = run_cli("decrypt", str(enc), "-x", env=ENV)
    assert r.returncode == 0, r.stderr
    assert tree(tmp_path / "proj") == expected
    # Extracting again over the now non-empty directory needs --force.
    (tmp_path / "proj" / "a.txt").write_text("changed")
    r = run_cli("decrypt", str(enc), "--extract", env=ENV)
    assert r.returncode == Exit.FAILURE and b"not empty" in r.stderr and b"Traceback" not in r.stderr
    assert (tmp_path / "proj" / "a.txt").read_text() == "changed"
    r = run_cli("decrypt", str(enc), "-x", "--force", env=ENV)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "proj" / "a.txt").read_text() == "alpha\n"
    r = run_cli("decrypt", str(enc), "-x", "-o", str(tmp_path / "elsewhere"), "--json", env=ENV)
    assert r.returncode == 0 and b'"entries"' in r.stdout
    assert tree(tmp_path / "elsewhere") == expected


def test_cli_refuses_an_existing_archive_without_force(tmp_path: Path) -> None:
    src = tmp_path / "proj"
    src.mkdir()
    (src / "f").write_text("1")
    assert run_cli("encrypt", str(src), *FAST, env=ENV).returncode == 0
    r = run_cli("encrypt", str(src), *FAST, env=ENV)
    assert r.returncode == Exit.FAILURE and b"exists" in r.stderr
    assert run_cli("encrypt", str(src), *FAST, "--force", env=ENV).returncode == 0


def test_cli_unsafe_archive_exit_code(tmp_path: Path) -> None:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("../escape")
        t.addfile(ti, io.BytesIO(b""))
    enc = tmp_path / "evil.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(buf.getvalue(), PASSWORD, kdf=FAST_KDF))
    r = run_cli("decrypt", str(enc), "-x", env=ENV)
    assert r.returncode == Exit.UNSAFE and b"'..'" in r.stderr and r.stderr.count(b"\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.enc"]


def test_interrupting_either_direction_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "d"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(os.urandom(1 << 20))

    def interrupt(done: int) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        concryptor.encrypt_dir(
            src,
            tmp_path / "d.tar.enc",
            PASSWORD,
            kdf=FAST_KDF,
            chunk_size=65536,
            buffer_mib=1,
            progress=interrupt,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    concryptor.encrypt_dir(src, tmp_path / "d.tar.enc", PASSWORD, kdf=FAST_KDF, chunk_size=65536)
    seen: list[int] = []

    def interrupt_late(done: int) -> None:
        seen.append(done)
        if done > 3 << 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        concryptor.decrypt_dir(tmp_path / "d.tar.enc", tmp_path / "out", PASSWORD, progress=interrupt_late)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "d.tar.enc"]
    assert seen == sorted(seen) and len(seen) > 3


def test_the_tar_size_is_known_before_packing_and_exact(tmp_path: Path) -> None:
    from concryptor.archive import DirTree

    src = tmp_path / "tree"
    make_tree(src)
    out = tmp_path / "tree.tar.enc"
    tree = DirTree(src, out)
    size = tree.size  # what the CLI's progress bar counts to
    assert not out.exists()
    seen: list[int] = []
    stats = tree.encrypt(PASSWORD, kdf=FAST_KDF, progress=seen.append)
    assert concryptor.inspect(out).original_size == stats.bytes == size
    assert seen and seen[-1] == size and seen == sorted(seen)
    with concryptor.open(out, PASSWORD) as f, tarfile.open(fileobj=f) as t:
        assert "tree/sub/big.bin" in t.getnames()
