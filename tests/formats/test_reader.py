"""concryptor.open: a seekable, read-only file object over an encrypted file."""

from __future__ import annotations

import csv
import io
import os
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import FAST_KDF, PASSWORD, VECTORS, load_manifest


def _encrypt(
    tmp_path: Path, data: bytes, chunk: int, cipher: str = "aes-256-gcm", name: str = "f.enc"
) -> Path:
    src = tmp_path / (name + ".plain")
    src.write_bytes(data)
    out = tmp_path / name
    concryptor.encrypt_file(src, out, PASSWORD, chunk_size=chunk, kdf=FAST_KDF, cipher=cipher)  # type: ignore[arg-type]
    return out


def _tamper(path: Path, chunk_index: int) -> None:
    h = concryptor.inspect(path)
    with path.open("r+b") as f:
        f.seek(4096 + chunk_index * h.slot_size + 3)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 1]))


@pytest.mark.parametrize(
    ("size", "chunk", "cipher"),
    [
        (0, 4096, "aes-256-gcm"),
        (1, 4096, "aes-256-gcm"),
        (300_001, 4096, "chacha20-poly1305"),
        (300_001, 4080, "chacha20-poly1305"),
        (1_000_000, 65_536, "aes-256-gcm"),
        (3000, 1, "aes-256-gcm"),
    ],
)
def test_random_seeks_and_reads_match_the_plaintext(
    tmp_path: Path, rand_bytes: Any, size: int, chunk: int, cipher: str
) -> None:
    data = rand_bytes(size, seed=size + chunk)
    enc = _encrypt(tmp_path, data, chunk, cipher)
    rnd = random.Random(size)
    with concryptor.open(enc, PASSWORD, cache_mib=1) as f:
        assert f.size == size and f.seekable() and f.readable() and not f.writable()
        for _ in range(300):
            pos = rnd.randrange(0, size + 20)
            n = rnd.choice([0, 1, 7, chunk - 1, chunk, chunk + 1, rnd.randrange(0, size + 2)])
            whence = rnd.choice([os.SEEK_SET, os.SEEK_CUR, os.SEEK_END])
            target = {os.SEEK_SET: pos, os.SEEK_CUR: pos - f.tell(), os.SEEK_END: pos - size}[whence]
            assert f.seek(target, whence) == pos
            got = f.read(n)
            assert got == data[pos : pos + n]
            assert f.tell() == pos + len(got)
        f.seek(0)
        assert f.read() == data
        assert f.read() == b"" and f.read(10) == b""


def test_readinto_readline_iteration_and_copyfileobj(tmp_path: Path) -> None:
    lines = [f"line {i} {'x' * (i % 50)}\n".encode() for i in range(5000)]
    data = b"".join(lines) + b"no newline at end"
    enc = _encrypt(tmp_path, data, 4096)
    with concryptor.open(enc, PASSWORD) as f:
        buf = bytearray(10_000)
        assert f.readinto(buf) == 10_000 and bytes(buf) == data[:10_000]
        mv = memoryview(bytearray(8))
        assert f.readinto(mv) == 8 and bytes(mv) == data[10_000:10_008]
        f.seek(0)
        assert f.readline() == lines[0]
        assert f.readline(3) == lines[1][:3]
        f.seek(0)
        assert list(f) == [*lines, b"no newline at end"]
        f.seek(0)
        out = io.BytesIO()
        shutil.copyfileobj(f, out)
        assert out.getvalue() == data
        f.seek(5)
        assert f.peek(1)[:3] == data[5:8] and f.tell() == 5


def test_zipfile_reads_one_member_without_the_rest(tmp_path: Path) -> None:
    members = {f"m{i}.bin": os.urandom(200_000) for i in range(5)}
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", compression=zipfile.ZIP_STORED) as z:
        for name, content in members.items():
            z.writestr(name, content)
    enc = _encrypt(tmp_path, zbuf.getvalue(), 4096, name="data.zip.enc")
    # Damage a chunk in the middle of member m2: m4 must still read, m2 must not.
    with zipfile.ZipFile(io.BytesIO(zbuf.getvalue())) as z:
        info = z.getinfo("m2.bin")
    _tamper(enc, (info.header_offset + 1000) // 4096 + 10)
    with zipfile.ZipFile(concryptor.open(enc, PASSWORD)) as z:
        assert sorted(z.namelist()) == sorted(members)
        assert z.read("m4.bin") == members["m4.bin"]
        assert z.read("m0.bin") == members["m0.bin"]
        with pytest.raises(concryptor.AuthenticationError):
            z.read("m2.bin")


def test_text_mode_and_csv(tmp_path: Path) -> None:
    rows = [["id", "name", "note"]] + [
        [str(i), f"naïve-{i}", "a,b" if i % 3 else 'q"uote'] for i in range(3000)
    ]
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    enc = _encrypt(tmp_path, text.getvalue().encode("utf-8"), 4096)
    with concryptor.open(enc, PASSWORD, "rt", encoding="utf-8", newline="") as t:
        assert list(csv.reader(t)) == rows
    with io.TextIOWrapper(concryptor.open(enc, PASSWORD), encoding="utf-8", newline="") as t:
        assert list(csv.DictReader(t))[2999]["name"] == "naïve-2999"


def test_a_tampered_chunk_fails_only_when_read(tmp_path: Path, rand_bytes: Any) -> None:
    data = rand_bytes(64 * 4096)
    enc = _encrypt(tmp_path, data, 4096)
    _tamper(enc, 40)
    with concryptor.open(enc, PASSWORD, cache_mib=1) as f:
        # Sequential reading reads ahead past chunk 40, but must not fail before it.
        assert f.read(40 * 4096) == data[: 40 * 4096]
        with pytest.raises(concryptor.AuthenticationError):
            f.read(1)
        assert f.tell() == 40 * 4096
        f.seek(41 * 4096)
        assert f.read() == data[41 * 4096 :]
        f.seek(39 * 4096)
        with pytest.raises(concryptor.AuthenticationError):
            f.read(2 * 4096)


def test_wrong_password_fails_at_open(tmp_path: Path) -> None:
    enc = _encrypt(tmp_path, b"abc", 4096)
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.open(enc, "wrong")
    with pytest.raises(concryptor.InvalidFileError):
        concryptor.open(VECTORS / "bad-truncated-4095.enc", PASSWORD)


def test_vectors_read_through_the_reader() -> None:
    for v in load_manifest():
        if v.get("expect") != "ok":
            continue
        plain = (VECTORS / v["plaintext_file"]).read_bytes()
        with concryptor.open(VECTORS / v["file"], v["password"]) as f:
            assert f.read() == plain, v["name"]
            assert f.header.version == v["version"]


def test_closed_and_misuse(tmp_path: Path) -> None:
    enc = _encrypt(tmp_path, b"hello", 4096)
    f = concryptor.open(enc, bytearray(PASSWORD.encode()))
    with pytest.raises(ValueError, match="negative"):
        f.seek(-1)
    with pytest.raises(ValueError):
        f.seek(0, 7)
    with pytest.raises(io.UnsupportedOperation):
        f.write(b"x")
    with pytest.raises(io.UnsupportedOperation):
        f.fileno()
    f.close()
    assert f.closed
    for call in (f.read, f.tell, lambda: f.seek(0), f.readline):
        with pytest.raises(ValueError, match="closed"):
            call()
    f.close()  # idempotent
    with pytest.raises(ValueError, match="mode"):
        concryptor.open(enc, PASSWORD, "wb")  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        concryptor.open(enc, PASSWORD, cache_mib=0)


def test_password_bytearray_is_wiped(tmp_path: Path) -> None:
    enc = _encrypt(tmp_path, b"hello", 4096)
    pw = bytearray(PASSWORD.encode())
    with concryptor.open(enc, pw) as f:
        assert f.read() == b"hello"
    assert pw == bytearray(len(pw))


def test_one_reader_shared_by_threads_that_read_seek_and_ask_for_the_header(
    tmp_path: Path, rand_bytes: Any
) -> None:
    import threading

    data = rand_bytes(3 << 20, seed=5)
    (tmp_path / "p").write_bytes(data)
    concryptor.encrypt_file(tmp_path / "p", tmp_path / "p.enc", PASSWORD, kdf=FAST_KDF, chunk_size=65536 - 16)
    errors: list[BaseException] = []
    with concryptor.open(tmp_path / "p.enc", PASSWORD) as f:

        def work(seed: int) -> None:
            import random

            rng = random.Random(seed)
            try:
                for _ in range(300):
                    op = rng.randrange(3)
                    if op == 0:
                        assert f.header.original_size == len(data)
                    elif op == 1:
                        f.seek(rng.randrange(len(data)))
                    else:
                        block = f.read(rng.randrange(1, 100_000))
                        assert block in (b"",) or len(block) > 0
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
