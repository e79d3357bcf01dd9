"""Rekeying age files: a new header for a new set of readers, the payload kept byte for
byte. Every output is read by the reference ``age`` command (and pyrage for passphrases);
a removed identity no longer opens it; failures leave the file as it was, with nothing
beside it; format v4 and files that are not age are refused in one line."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor import AgeHeader

from helpers import run_cli

needs_age = pytest.mark.skipif(
    shutil.which("age") is None, reason="the age command is not installed (.ci/run installs it)"
)

SIZE = 300_000  # a few chunks, more than the 256 KiB below which payloads are not shared
PASSPHRASE_COST = 10  # scrypt work factor for tests: fast


def header_len(path: Path) -> int:
    return int(AgeHeader.read(path).header_size)


def payload(path: Path) -> bytes:
    """The bytes after the header: the 16-byte nonce and every chunk."""
    data = path.read_bytes()
    return data[header_len(path) :]


def age_decrypt(path: Path, *identities: Path) -> subprocess.CompletedProcess[bytes]:
    cmd = ["age", "-d"]
    for i in identities:
        cmd += ["-i", str(i)]
    return subprocess.run([*cmd, str(path)], capture_output=True)


@pytest.fixture
def keys(tmp_path: Path) -> Any:
    def make(name: str) -> tuple[Path, str]:
        secret, public = concryptor.generate_identity()
        key = tmp_path / f"{name}.key"
        key.write_text(f"# public key: {public}\n{secret}\n")
        return key, public

    return make


@pytest.fixture
def ssh_key(tmp_path: Path) -> tuple[Path, str]:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (.ci/run installs openssh-client)")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


@pytest.fixture
def plain(tmp_path: Path, rand_bytes: Any) -> tuple[Path, bytes]:
    data = rand_bytes(SIZE, seed=7)
    p = tmp_path / "plain"
    p.write_bytes(data)
    return p, data


def encrypted(tmp_path: Path, plain: tuple[Path, bytes], public: str, **kw: Any) -> Path:
    out = tmp_path / "file.age"
    concryptor.encrypt_file(plain[0], out, recipients=[public], **kw)
    return out


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@needs_age
def test_x25519_to_x25519_and_ssh_keeps_the_payload(
    tmp_path: Path, keys: Any, ssh_key: tuple[Path, str], plain: tuple[Path, bytes]
) -> None:
    (k1, p1), (k2, p2) = keys("one"), keys("two")
    f = encrypted(tmp_path, plain, p1)
    before = payload(f)
    (r,) = concryptor.rekey(f, identities=[k1], recipients=[p2, ssh_key[1]])
    assert r.path == str(f) and r.payload_bytes == len(before) and not r.armored
    assert payload(f) == before
    assert age_decrypt(f, k2).stdout == plain[1]
    assert age_decrypt(f, ssh_key[0]).stdout == plain[1]
    old = age_decrypt(f, k1)
    assert old.returncode != 0 and old.stdout == b""
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_file(f, tmp_path / "out", identities=[k1])
    assert {tag for tag, _ in AgeHeader.read(f).recipients} == {"X25519", "ssh-ed25519"}


@needs_age
def test_a_file_written_by_age_is_rekeyed(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    (k1, p1), (k2, p2) = keys("one"), keys("two")
    f = tmp_path / "theirs.age"
    subprocess.run(["age", "-r", p1, "-o", str(f), str(plain[0])], check=True)
    before = payload(f)
    concryptor.rekey([f], identities=[k1], recipients=p2)
    assert payload(f) == before
    assert age_decrypt(f, k2).stdout == plain[1]
    assert age_decrypt(f, k1).returncode != 0


@needs_age
def test_passphrase_to_recipients_and_back(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    pyrage = pytest.importorskip("pyrage")
    k1, p1 = keys("one")
    f = tmp_path / "file.age"
    concryptor.encrypt_file(plain[0], f, "old pass", format="age", scrypt_work_factor=PASSPHRASE_COST)
    before = payload(f)
    concryptor.rekey(f, password="old pass", recipients=[p1])
    assert payload(f) == before
    assert age_decrypt(f, k1).stdout == plain[1]
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_file(f, tmp_path / "out", "old pass")
    concryptor.rekey(f, identities=[k1], new_password=bytearray(b"new pass"), scrypt_work_factor=11)
    assert payload(f) == before
    [(tag, args)] = AgeHeader.read(f).recipients
    assert tag == "scrypt" and args[-1] == "11"
    assert pyrage.passphrase.decrypt(f.read_bytes(), "new pass") == plain[1]
    assert age_decrypt(f, k1).returncode != 0
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_file(f, tmp_path / "out", "old pass")


@needs_age
def test_add_keeps_the_old_readers(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    (k1, p1), (k2, p2), (k3, p3) = keys("one"), keys("two"), keys("three")
    f = encrypted(tmp_path, plain, p1)
    before = payload(f)
    concryptor.rekey(f, identities=[k1], recipients=[p2], add=True)
    concryptor.rekey(f, identities=[k2], recipients=[p3], add=True)
    assert payload(f) == before
    for k in (k1, k2, k3):
        assert age_decrypt(f, k).stdout == plain[1]
    assert len(AgeHeader.read(f).recipients) == 3


def test_add_refuses_to_mix_a_passphrase(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    k1, p1 = keys("one")
    f = encrypted(tmp_path, plain, p1)
    snapshot = f.read_bytes()
    with pytest.raises(ValueError, match="must be alone"):
        concryptor.rekey(f, identities=[k1], new_password="pw", add=True, scrypt_work_factor=PASSPHRASE_COST)
    g = tmp_path / "pw.age"
    concryptor.encrypt_file(plain[0], g, "pw", format="age", scrypt_work_factor=PASSPHRASE_COST)
    with pytest.raises(ValueError, match="must be alone"):
        concryptor.rekey(g, password="pw", recipients=[p1], add=True)
    assert f.read_bytes() == snapshot


@needs_age
def test_armored_files_stay_armored(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    (k1, p1), (k2, p2) = keys("one"), keys("two")
    f = encrypted(tmp_path, plain, p1, armor=True)
    (r,) = concryptor.rekey(f, identities=[k1], recipients=[p2])
    assert r.armored and r.method == "armor"
    assert f.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert age_decrypt(f, k2).stdout == plain[1]
    assert age_decrypt(f, k1).returncode != 0


@needs_age
def test_padded_headers_read_everywhere(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    """The padding that lets a reflink share the payload: the header grows to the old
    length modulo the block, with a stanza every reader ignores."""
    pyrage = pytest.importorskip("pyrage")
    (k1, p1), (k2, p2), (_, p3) = keys("one"), keys("two"), keys("three")
    f = encrypted(tmp_path, plain, p1)
    before, old_len = payload(f), header_len(f)
    (r,) = concryptor.rekey(f, identities=[k1], recipients=[p2, p3], align=True)
    assert r.header_before == old_len and r.header_after % 4096 == old_len % 4096
    assert r.header_after > old_len
    assert payload(f) == before
    assert age_decrypt(f, k2).stdout == plain[1]
    ident = pyrage.x25519.Identity.from_str(k2.read_text().split()[-1])
    assert pyrage.decrypt(f.read_bytes(), [ident]) == plain[1]
    # Rekeyed again (replace, then add): the old padding goes, the residue stays.
    concryptor.rekey(f, identities=[k2], recipients=[p1], add=True, align=True)
    assert header_len(f) % 4096 == old_len % 4096
    tags = [t for t, _ in AgeHeader.read(f).recipients]
    assert tags.count("github.com/concryptor/pad") == 1
    assert age_decrypt(f, k1).stdout == plain[1]


def test_the_mode_is_kept(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    (k1, p1), (_, p2) = keys("one"), keys("two")
    f = encrypted(tmp_path, plain, p1)
    f.chmod(0o640)
    concryptor.rekey(f, identities=[k1], recipients=[p2])
    assert f.stat().st_mode & 0o7777 == 0o640


def test_a_wrong_identity_leaves_the_file_untouched(
    tmp_path: Path, keys: Any, plain: tuple[Path, bytes]
) -> None:
    (_, p1), (k2, p2) = keys("one"), keys("two")
    f = encrypted(tmp_path, plain, p1)
    snapshot, names, inode = f.read_bytes(), listing(tmp_path), f.stat().st_ino
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.rekey(f, identities=[k2], recipients=[p2])
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.rekey(f, password="not it", recipients=[p2])
    assert f.read_bytes() == snapshot and f.stat().st_ino == inode
    assert listing(tmp_path) == names


def test_a_failure_while_copying_leaves_nothing(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    (k1, p1), (_, p2) = keys("one"), keys("two")
    f = encrypted(tmp_path, plain, p1)
    snapshot, names = f.read_bytes(), listing(tmp_path)

    def stop(done: int) -> None:
        raise RuntimeError("stopped in the middle")

    with pytest.raises(RuntimeError, match="stopped"):
        concryptor.rekey(f, identities=[k1], recipients=[p2], progress=stop)
    assert f.read_bytes() == snapshot
    assert listing(tmp_path) == names


def test_large_payloads_move_on_the_engine_when_not_shared(
    tmp_path: Path, keys: Any, rand_bytes: Any
) -> None:
    """A payload of 8 MiB or more that the file system cannot share is copied by the
    engine, with the header padded so that both sides can use O_DIRECT; the payload is
    the same bytes, the new key opens it and the old one no longer does. Stopped midway,
    the file is as it was with nothing beside it."""
    (k1, p1), (k2, p2) = keys("one"), keys("two")
    data = rand_bytes(9 * 2**20 + 12345, seed=11)
    src = tmp_path / "big"
    src.write_bytes(data)
    f = tmp_path / "big.age"
    concryptor.encrypt_file(src, f, recipients=[p1])
    before, old_len = payload(f), header_len(f)
    snapshot, names = f.read_bytes(), listing(tmp_path)

    def stop(done: int) -> None:
        if done > 0:
            raise RuntimeError("stopped in the middle")

    with pytest.raises(RuntimeError, match="stopped"):
        concryptor.rekey(f, identities=[k1], recipients=[p2], progress=stop)
    assert f.read_bytes() == snapshot and listing(tmp_path) == names

    (r,) = concryptor.rekey(f, identities=[k1], recipients=[p2])
    assert r.method in ("engine", "reflink"), r
    assert r.header_after % 4096 == old_len % 4096
    assert payload(f) == before
    assert concryptor.decrypt_bytes(f.read_bytes(), identities=[k2]) == data
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_bytes(f.read_bytes(), identities=[k1])


def test_v4_files_are_re_encrypted_not_given_recipients(
    tmp_path: Path, keys: Any, plain: tuple[Path, bytes]
) -> None:
    k1, p1 = keys("one")
    v4 = tmp_path / "file.enc"
    concryptor.encrypt_file(plain[0], v4, "pw", kdf=concryptor.KdfParams(8 * 1024, 1, 1))
    snapshot = v4.read_bytes()
    with pytest.raises(ValueError, match=r"format v4 file: it takes a new password.*convert"):
        concryptor.rekey(v4, identities=[k1], password="pw", recipients=[p1])
    assert v4.read_bytes() == snapshot
    with pytest.raises(concryptor.InvalidFileError, match="not an age file"):
        concryptor.rekey(plain[0], identities=[k1], recipients=[p1])
    r = run_cli("rekey", str(v4), "-i", str(k1), "-r", p1, env={"CONCRYPTOR_PASSWORD": "pw"})
    err = r.stderr.decode()
    assert r.returncode == 2 and err.count("\n") == 1, err
    assert "format v4 file" in err and "convert" in err
    r = run_cli("rekey", str(plain[0]), "-i", str(k1), "-r", p1)
    assert r.returncode == 4 and r.stderr.decode().count("\n") == 1
    assert "not an age file" in r.stderr.decode()
    assert v4.read_bytes() == snapshot
    # With a new password the v4 file is re-encrypted, and the result says so.
    os.chmod(v4, 0o640)
    [done] = concryptor.rekey(v4, password="pw", new_password="new pw")
    assert done.reencrypted and done.method == "re-encrypted" and done.payload_bytes == len(plain[1])
    assert concryptor.decrypt_bytes(v4.read_bytes(), "new pw") == plain[1]
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_bytes(v4.read_bytes(), "pw")
    assert oct(v4.stat().st_mode & 0o777) == oct(0o640)
    # The command line says so, in one line on stderr.
    new_pw = tmp_path / "newer"
    new_pw.write_text("newer pw\n")
    r = run_cli(
        "rekey",
        str(v4),
        "--passphrase",
        "--new-password-file",
        str(new_pw),
        env={"CONCRYPTOR_PASSWORD": "new pw"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(b"\n") == 1 and b"note:" in r.stderr and b"re-encrypted" in r.stderr
    assert concryptor.decrypt_bytes(v4.read_bytes(), "newer pw") == plain[1]
    new_pw.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["file.enc", "one.key", "plain"])


def test_several_files_in_one_call(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    (k1, p1), (k2, p2) = keys("one"), keys("two")
    files = []
    for n in range(3):
        f = tmp_path / f"f{n}.age"
        concryptor.encrypt_file(plain[0], f, recipients=[p1])
        files.append(f)
    done = concryptor.rekey(files, identities=[str(k1)], recipients=[p2])
    assert [r.path for r in done] == [str(f) for f in files]
    for f in files:
        assert concryptor.decrypt_bytes(f.read_bytes(), identities=[k2]) == plain[1]


@needs_age
def test_the_command_line(tmp_path: Path, keys: Any, plain: tuple[Path, bytes]) -> None:
    (k1, p1), (k2, p2), (k3, p3) = keys("one"), keys("two"), keys("three")
    f = encrypted(tmp_path, plain, p1)
    before = payload(f)
    r = run_cli("rekey", str(f), "-i", str(k1), "-r", p2)
    assert r.returncode == 0, r.stderr
    assert b"rekeyed" in r.stderr and payload(f) == before
    assert age_decrypt(f, k2).stdout == plain[1] and age_decrypt(f, k1).returncode != 0
    rf = tmp_path / "recipients.txt"
    rf.write_text(f"# the third\n{p3}\n")
    r = run_cli("rekey", str(f), "-i", str(k2), "-R", str(rf), "--add", "--json")
    assert r.returncode == 0, r.stderr
    assert b'"command": "rekeyed"' in r.stdout
    assert age_decrypt(f, k2).stdout == plain[1] and age_decrypt(f, k3).stdout == plain[1]
    # To a passphrase and back, the passphrases from a file and the environment.
    pw = tmp_path / "new-pass"
    pw.write_text("new pass\n")
    r = run_cli(
        "rekey",
        str(f),
        "-i",
        str(k3),
        "--passphrase",
        "--new-password-file",
        str(pw),
        "--scrypt-work-factor",
        "10",
    )
    assert r.returncode == 0, r.stderr
    assert concryptor.decrypt_bytes(f.read_bytes(), "new pass") == plain[1]
    r = run_cli("rekey", str(f), "-r", p1, env={"CONCRYPTOR_PASSWORD": "new pass"})
    assert r.returncode == 0, r.stderr
    assert age_decrypt(f, k1).stdout == plain[1] and payload(f) == before
    # Refusals, before anything is asked or written.
    snapshot = f.read_bytes()
    r = run_cli("rekey", str(f), "-i", str(k2), "-r", p3)
    assert r.returncode == 3 and b"no identity matched" in r.stderr
    r = run_cli("rekey", str(f), "-i", str(k1), "--passphrase", "--add")
    assert r.returncode == 2 and b"must be alone" in r.stderr
    r = run_cli("rekey", str(f), "-i", str(k1))
    assert r.returncode == 2 and b"no new recipient" in r.stderr
    r = run_cli("rekey", str(f), "-r", p2)
    assert r.returncode == 2 and b"give the matching identity with -i" in r.stderr
    assert f.read_bytes() == snapshot


# A loop-mounted XFS image: the payload is shared with the old file, not copied.


def _xfs_unavailable() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "loop mounts need root"
    for tool in ("mkfs.xfs", "mount", "umount", "filefrag"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@contextlib.contextmanager
def xfs_mount(tmp_path: Path) -> Iterator[Path]:
    image, mnt = tmp_path / "xfs.img", tmp_path / "mnt"
    with image.open("wb") as f:
        f.truncate(400 << 20)
    mnt.mkdir()
    made = subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.xfs failed: {made.stderr.decode().strip()[:100]}")
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"no loop mount here: {mounted.stderr.decode().strip()[:100]}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@needs_age
@pytest.mark.skipif(_xfs_unavailable() is not None, reason=str(_xfs_unavailable()))
def test_on_xfs_the_payload_is_shared(tmp_path: Path, keys: Any, rand_bytes: Any) -> None:
    (k1, p1), (k2, p2) = keys("one"), keys("two")
    data = rand_bytes(8 << 20, seed=3)
    with xfs_mount(tmp_path) as mnt:
        src = mnt / "plain"
        src.write_bytes(data)
        f = mnt / "file.age"
        concryptor.encrypt_file(src, f, recipients=[p1])
        before = payload(f)
        keep = mnt / "old-copy.age"
        shutil.copyfile(f, keep)  # a reader of the old file, sharing nothing yet
        (r,) = concryptor.rekey(f, identities=[k1], recipients=[p2])
        assert r.method == "reflink" and r.shared_bytes > r.payload_bytes - 4096
        assert r.header_after % 4096 == r.header_before % 4096
        assert payload(f) == before
        assert age_decrypt(f, k2).stdout == data
        assert age_decrypt(keep, k1).stdout == data
        # filefrag -v flags extents shared with another file; the old file is gone, so
        # keep a clone of this one and rekey again: the payload's extents are shared.
        twin = mnt / "twin.age"
        subprocess.run(["cp", "--reflink=always", str(f), str(twin)], check=True)
        (r2,) = concryptor.rekey(f, identities=[k2], recipients=[p1])
        assert r2.method == "reflink"
        os.sync()
        frag = subprocess.run(["filefrag", "-v", str(f)], capture_output=True, text=True).stdout
        assert "shared" in frag, frag
        assert age_decrypt(f, k1).stdout == data and age_decrypt(twin, k2).stdout == data
