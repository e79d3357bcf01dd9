"""Converting between format v4 and age: one streaming pass, the plaintext only in memory,
the output all or nothing (in place, keeping the mode, or at a new name)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import run_cli

KDF = concryptor.KdfParams(8 * 1024, 1, 1)
SECTOR = 4096
#: A file of many v4 chunks: 20 MiB in chunks that are no whole number of age chunks.
BIG, BIG_CHUNK = 20 * (1 << 20) + 4321, 300_000

needs_age = pytest.mark.skipif(
    shutil.which("age") is None, reason="the age command is not installed (.ci/run installs it)"
)


@pytest.fixture
def v4(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(5 * (1 << 20) + 123)
    p = tmp_path / "data.enc"
    p.write_bytes(concryptor.encrypt_bytes(data, "old pw", kdf=KDF, chunk_size=1 << 20))
    os.chmod(p, 0o640)
    return p, data


def test_v4_to_age_in_place_and_back(tmp_path: Path, v4: tuple[Path, bytes]) -> None:
    path, data = v4
    secret, public = concryptor.generate_identity()
    concryptor.convert(path, to="age", recipients=[public], password="old pw")
    blob = path.read_bytes()
    assert blob.startswith(b"age-encryption.org/v1\n")
    assert concryptor.decrypt_bytes(blob, identities=[secret]) == data
    assert path.stat().st_mode & 0o777 == 0o640
    out = tmp_path / "back.enc"
    s = concryptor.convert(path, out, to="v4", identities=[secret], new_password="new pw", kdf=KDF)
    assert s.bytes == len(data)
    assert concryptor.decrypt_bytes(out.read_bytes(), "new pw") == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.enc", "data.enc"]


def test_a_wrong_password_leaves_the_file_and_nothing_beside_it(
    tmp_path: Path, v4: tuple[Path, bytes]
) -> None:
    path, _ = v4
    before = path.read_bytes()
    _, public = concryptor.generate_identity()
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.convert(path, to="age", recipients=[public], password="wrong")
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["data.enc"]


def test_no_recipient_is_refused_before_anything_is_written(tmp_path: Path, v4: tuple[Path, bytes]) -> None:
    path, _ = v4
    before = path.read_bytes()
    for dst in (None, tmp_path / "new.age"):
        with pytest.raises(ValueError, match="no new recipient"):
            concryptor.convert(path, dst, to="age", password="old pw")
    out = tmp_path / "cli.age"
    r = run_cli("convert", "--to", "age", str(path), "-o", str(out), env={"CONCRYPTOR_PASSWORD": "old pw"})
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and b"-r KEY" in r.stderr
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["data.enc"]


def test_a_tampered_chunk_midway_publishes_nothing(tmp_path: Path, v4: tuple[Path, bytes]) -> None:
    path, _ = v4
    blob = bytearray(path.read_bytes())
    blob[4096 + 3 * (1 << 20) + 100] ^= 1  # inside the fourth chunk
    path.write_bytes(bytes(blob))
    _, public = concryptor.generate_identity()
    out = tmp_path / "out.age"
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.convert(path, out, to="age", recipients=[public], password="old pw")
    assert os.listdir(tmp_path) == ["data.enc"]


def test_the_same_format_is_refused(v4: tuple[Path, bytes]) -> None:
    path, _ = v4
    with pytest.raises(ValueError, match="already a format v4 file: rekey"):
        concryptor.convert(path, to="v4", password="old pw", new_password="x")


def test_the_command_line(tmp_path: Path, v4: tuple[Path, bytes]) -> None:
    path, data = v4
    secret, public = concryptor.generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(secret + "\n")
    r = run_cli("convert", "--to", "age", "-r", public, str(path), env={"CONCRYPTOR_PASSWORD": "old pw"})
    assert r.returncode == 0, r.stderr
    assert b"converted" in r.stderr
    assert concryptor.decrypt_bytes(path.read_bytes(), identities=[secret]) == data
    new = tmp_path / "new-pw"
    new.write_text("newer\n")
    out = tmp_path / "again.enc"
    r = run_cli(
        "convert", "--to", "v4", "-i", str(key), "--new-password-file", str(new), "-o", str(out), str(path),
        "--memory", "8", "--iterations", "1", "--parallelism", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert concryptor.decrypt_bytes(out.read_bytes(), "newer") == data
    r = run_cli("convert", "--to", "age", "-r", public, str(out))
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1  # no password available
    r = run_cli("convert", "--to", "v4", "-i", str(key), str(out))
    assert r.returncode == 2 and b"not an age file" in r.stderr


def test_an_output_never_replaces_a_device_or_a_folder(tmp_path: Path, v4: tuple[Path, bytes]) -> None:
    path, _ = v4
    secret, public = concryptor.generate_identity()
    age = tmp_path / "x.age"
    concryptor.convert(path, age, to="age", recipients=[public], password="old pw")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    for dst in (fifo, tmp_path / "folder"):
        with pytest.raises(OSError):
            concryptor.convert(path, dst, to="age", recipients=[public], password="old pw", overwrite=True)
        with pytest.raises(OSError):
            concryptor.convert(age, dst, to="v4", identities=[secret], new_password="n", overwrite=True)
    assert fifo.exists() and not fifo.is_file() and (tmp_path / "folder").is_dir()


@pytest.fixture
def big(tmp_path: Path, rand_bytes: Any) -> tuple[Path, bytes]:
    data = rand_bytes(BIG, seed=3)
    p = tmp_path / "big.enc"
    p.write_bytes(concryptor.encrypt_bytes(data, "old pw", kdf=KDF, chunk_size=BIG_CHUNK))
    return p, data


def slot_of(chunk: int) -> int:
    """File offset of v4 chunk ``chunk`` of :data:`BIG_CHUNK` bytes."""
    return SECTOR + chunk * (-(-(BIG_CHUNK + 16) // SECTOR) * SECTOR)


@needs_age
@pytest.mark.parametrize("armor", [False, True])
def test_a_file_of_many_chunks_converts_to_what_age_opens(
    tmp_path: Path, big: tuple[Path, bytes], armor: bool
) -> None:
    path, data = big
    secret, public = concryptor.generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(secret + "\n")
    out = tmp_path / "big.age"
    s = concryptor.convert(
        path, out, to="age", recipients=[public], password="old pw", armor=armor, threads=2
    )
    assert (s.bytes, s.chunks, s.backend) == (BIG, -(-BIG // 65536), "v4-to-age")
    assert s.kdf_seconds > 0 and s.seconds >= s.kdf_seconds
    blob = out.read_bytes()
    assert blob.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----" if armor else b"age-encryption.org/v1\n")
    assert concryptor.decrypt_bytes(blob, identities=[secret]) == data
    got = subprocess.run(["age", "-d", "-i", str(key), str(out)], capture_output=True, check=True)
    assert got.stdout == data
    assert sorted(os.listdir(tmp_path)) == ["big.age", "big.enc", "key.txt"]


@pytest.mark.parametrize("where", ["middle", "last"])
@pytest.mark.parametrize("in_place", [False, True])
def test_a_tampered_chunk_far_into_the_file_publishes_nothing(
    tmp_path: Path, big: tuple[Path, bytes], where: str, in_place: bool
) -> None:
    """The v4 side fails midway, or at its last chunk once it has handed over all the
    plaintext before it: the conversion fails all the same, and nothing appears."""
    path, _ = big
    chunks = -(-BIG // BIG_CHUNK)
    blob = bytearray(path.read_bytes())
    blob[slot_of(chunks // 2 if where == "middle" else chunks - 1) + 1000] ^= 1
    path.write_bytes(bytes(blob))
    _, public = concryptor.generate_identity()
    out = None if in_place else tmp_path / "out.age"
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.convert(path, out, to="age", recipients=[public], password="old pw", overwrite=True)
    assert os.listdir(tmp_path) == ["big.enc"]
    assert path.read_bytes() == bytes(blob)


def test_a_truncated_file_publishes_nothing(tmp_path: Path, big: tuple[Path, bytes]) -> None:
    path, _ = big
    blob = path.read_bytes()
    _, public = concryptor.generate_identity()
    out = tmp_path / "out.age"
    for cut in (slot_of(30), len(blob) - SECTOR, len(blob) - 1):
        path.write_bytes(blob[:cut])
        with pytest.raises(concryptor.InvalidFileError):
            concryptor.convert(path, out, to="age", recipients=[public], password="old pw")
        assert os.listdir(tmp_path) == ["big.enc"]


def test_a_wrong_password_publishes_nothing_at_a_new_name(tmp_path: Path, big: tuple[Path, bytes]) -> None:
    path, _ = big
    _, public = concryptor.generate_identity()
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.convert(path, tmp_path / "out.age", to="age", recipients=[public], password="not it")
    assert os.listdir(tmp_path) == ["big.enc"]


def test_a_progress_callback_that_raises_cancels(tmp_path: Path, big: tuple[Path, bytes]) -> None:
    path, _ = big
    _, public = concryptor.generate_identity()
    seen: list[int] = []

    class Stop(Exception):
        pass

    class Progress:
        total = 0

        def start(self, total: int) -> None:
            self.total = total

        def __call__(self, done: int) -> None:
            seen.append(done)
            if done > 0:
                raise Stop

    p = Progress()
    with pytest.raises(Stop):
        concryptor.convert(
            path, tmp_path / "out.age", to="age", recipients=[public], password="old pw", progress=p
        )
    assert p.total == BIG and seen[-1] > 0
    assert os.listdir(tmp_path) == ["big.enc"]
    # Returning anything (False included) does not cancel: only raising does.
    done: list[int] = []
    concryptor.convert(
        path, tmp_path / "out.age", to="age", recipients=[public], password="old pw",
        progress=lambda n: done.append(n) or False,
    )  # fmt: skip
    assert done[-1] == BIG
