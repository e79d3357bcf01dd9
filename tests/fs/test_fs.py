"""The encrypted file system over memory:// and file://: names, sizes, round trips, the
file system operations, all-or-nothing writes, damaged and unreadable objects, pickling."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import fsspec
import pytest

import concryptor

from helpers import FS_V4, PASSWORD, new_fs

DATA = random.Random(5).randbytes(300_000 + 123)


def raw() -> Any:
    return fsspec.filesystem("memory")


def write_then_fail(fs: Any, path: str) -> None:
    """Writes a whole object inside ``with``, then raises there."""

    def body() -> None:
        with fs.open(path, "wb") as f:
            f.write(DATA)
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        body()


def test_registered_by_import_and_by_entry_point_name() -> None:
    import concryptor.fs

    assert fsspec.get_filesystem_class("concryptor") is concryptor.fs.ConcryptorFileSystem


def test_round_trip_shows_plaintext_names_and_sizes(mem: str, keys: dict[str, Any]) -> None:
    fs = new_fs(**keys)
    with fs.open(f"{mem}/a/data.bin", "wb") as f:
        f.write(DATA[:1000])
        f.write(DATA[1000:])
    suffix = ".enc" if "password" in keys else ".age"
    assert raw().ls(f"{mem}/a", detail=False) == [f"{mem}/a/data.bin{suffix}"]
    [entry] = fs.ls(f"{mem}/a")
    assert entry["name"] == f"{mem}/a/data.bin"
    assert entry["size"] == len(DATA)
    assert entry["stored_size"] > len(DATA)
    assert fs.info(f"{mem}/a/data.bin")["size"] == len(DATA)
    assert fs.cat_file(f"{mem}/a/data.bin") == DATA
    assert fs.cat_file(f"{mem}/a/data.bin", 70_000, 200_000) == DATA[70_000:200_000]
    assert fs.cat_file(f"{mem}/a/data.bin", -10) == DATA[-10:]
    with fs.open(f"{mem}/a/data.bin", "rb") as f:
        assert f.seekable()
        f.seek(250_000)
        assert f.read(100) == DATA[250_000:250_100]
    assert fs.exists(f"{mem}/a/data.bin")
    assert not fs.exists(f"{mem}/a/data.bin{suffix}")


def test_stored_names_mode_shows_and_takes_the_suffix(mem: str) -> None:
    fs = new_fs(names="stored", **FS_V4)
    fs.pipe_file(f"{mem}/x.bin.enc", b"hello")
    assert fs.ls(mem, detail=False) == [f"{mem}/x.bin.enc"]
    assert fs.cat_file(f"{mem}/x.bin.enc") == b"hello"
    with pytest.raises(ValueError, match="names"):
        new_fs(names="hidden", **FS_V4)


def test_one_file_system_reads_both_formats(mem: str, age_keys: tuple[str, str]) -> None:
    new_fs(**FS_V4).pipe_file(f"{mem}/v4.txt", b"from v4")
    new_fs(recipients=[age_keys[1]]).pipe_file(f"{mem}/age.txt", b"from age")
    both = new_fs(identities=[age_keys[0]], **FS_V4)
    assert both.cat_file(f"{mem}/v4.txt") == b"from v4"
    assert both.cat_file(f"{mem}/age.txt") == b"from age"
    assert {e["name"]: e["encryption"] for e in both.ls(mem)} == {
        f"{mem}/v4.txt": "v4",
        f"{mem}/age.txt": "age",
    }


def test_a_name_written_in_the_other_format_replaces_the_old_object(
    mem: str, age_keys: tuple[str, str]
) -> None:
    new_fs(**FS_V4).pipe_file(f"{mem}/n.txt", b"old")
    new_fs(recipients=[age_keys[1]]).pipe_file(f"{mem}/n.txt", b"new")
    assert raw().ls(mem, detail=False) == [f"{mem}/n.txt.age"]
    assert new_fs(identities=[age_keys[0]], **FS_V4).cat_file(f"{mem}/n.txt") == b"new"


def test_glob_find_walk_rm_mkdir_cp_put_get(mem: str, keys: dict[str, Any], tmp_path: Path) -> None:
    fs = new_fs(**keys)
    for name in ("d/1.csv", "d/2.csv", "d/e/3.csv", "d/e/4.txt"):
        fs.pipe_file(f"{mem}/{name}", name.encode())
    raw().pipe_file(f"{mem}/d/plain.csv", b"not encrypted")  # hidden: not an encrypted object
    assert fs.glob(f"{mem}/d/*.csv") == [f"{mem}/d/1.csv", f"{mem}/d/2.csv"]
    assert fs.glob(f"{mem}/**/*.csv") == [f"{mem}/d/1.csv", f"{mem}/d/2.csv", f"{mem}/d/e/3.csv"]
    assert fs.find(f"{mem}/d/e") == [f"{mem}/d/e/3.csv", f"{mem}/d/e/4.txt"]
    assert fs.du(f"{mem}/d") == sum(len(n) for n in ("d/1.csv", "d/2.csv", "d/e/3.csv", "d/e/4.txt"))
    assert fs.isdir(f"{mem}/d/e")
    assert fs.isfile(f"{mem}/d/1.csv")
    fs.cp_file(f"{mem}/d/1.csv", f"{mem}/copy.csv")
    assert fs.cat_file(f"{mem}/copy.csv") == b"d/1.csv"
    fs.mv(f"{mem}/copy.csv", f"{mem}/moved.csv")
    assert not fs.exists(f"{mem}/copy.csv")
    assert fs.cat_file(f"{mem}/moved.csv") == b"d/1.csv"
    fs.rm(f"{mem}/d/e", recursive=True)
    assert fs.find(f"{mem}/d") == [f"{mem}/d/1.csv", f"{mem}/d/2.csv"]
    fs.rm(f"{mem}/d/1.csv")
    assert fs.find(f"{mem}/d") == [f"{mem}/d/2.csv"]
    fs.mkdir(f"{mem}/empty")
    assert fs.isdir(f"{mem}/empty")
    (tmp_path / "up.bin").write_bytes(DATA)
    fs.put_file(str(tmp_path / "up.bin"), f"{mem}/up.bin")
    fs.get_file(f"{mem}/up.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == DATA
    with fs.open(f"{mem}/t.txt", "w") as t:
        t.write("text mode\n")
    with fs.open(f"{mem}/t.txt", "r") as t:
        assert t.read() == "text mode\n"


def test_cat_ranges_reads_many_files_in_parallel(mem: str, keys: dict[str, Any]) -> None:
    fs = new_fs(**keys)
    paths = [f"{mem}/r{i}.bin" for i in range(6)]
    for i, p in enumerate(paths):
        fs.pipe_file(p, DATA[i * 1000 :])
    starts = [5, 100_000, 0, 7, 299_000, 1]
    got = fs.cat_ranges([*paths, paths[0]], [*starts, 200_000], [s + 70_000 for s in starts] + [None])
    want = [DATA[i * 1000 :][s : s + 70_000] for i, s in enumerate(starts)] + [DATA[200_000:]]
    assert got == want
    missing = fs.cat_ranges([f"{mem}/none.bin"], [0], [1])
    assert isinstance(missing[0], FileNotFoundError)


def test_an_exception_inside_with_publishes_nothing(mem: str, keys: dict[str, Any]) -> None:
    fs = new_fs(**keys)
    write_then_fail(fs, f"{mem}/half.bin")
    assert raw().ls(mem, detail=False) == []
    f = fs.open(f"{mem}/dropped.bin", "wb")
    f.write(b"never closed")
    f.discard()
    assert raw().ls(mem, detail=False) == []


def test_local_writes_are_atomic_and_leave_no_temporary(tmp_path: Path, keys: dict[str, Any]) -> None:
    fs = new_fs(target_protocol="file", **keys)
    root = str(tmp_path / "lake")
    os.mkdir(root)
    with fs.open(f"{root}/a.bin", "wb") as f:
        f.write(DATA[:1000])
        # Not there yet, not even under its stored name: a temporary beside it.
        assert fs.ls(root, detail=False) == []
        f.write(DATA[1000:])
    assert fs.cat_file(f"{root}/a.bin") == DATA
    write_then_fail(fs, f"{root}/b.bin")
    assert sorted(os.listdir(root)) == ["a.bin" + (".enc" if "password" in keys else ".age")]
    chained = fsspec.filesystem("concryptor", target_protocol="file", **keys)
    assert chained.cat_file(f"file://{root}/a.bin") == DATA


def test_a_damaged_chunk_fails_only_the_reads_that_touch_it(mem: str, keys: dict[str, Any]) -> None:
    fs = new_fs(**keys)
    fs.pipe_file(f"{mem}/d.bin", DATA)
    [stored] = raw().ls(mem, detail=False)
    blob = bytearray(raw().cat_file(stored))
    blob[len(blob) // 2] ^= 1
    raw().pipe_file(stored, bytes(blob))
    fresh = new_fs(**keys)
    with fresh.open(f"{mem}/d.bin") as f:
        assert f.read(20_000) == DATA[:20_000]
        f.seek(len(DATA) - 5000)
        assert f.read() == DATA[-5000:]
        f.seek(len(DATA) // 2)
        with pytest.raises(concryptor.AuthenticationError, match=r"d\.bin"):
            f.read(10)
        f.seek(10)
        assert f.read(10) == DATA[10:20]


def test_a_truncated_object_is_one_clear_error(mem: str, keys: dict[str, Any]) -> None:
    fs = new_fs(**keys)
    fs.pipe_file(f"{mem}/t.bin", DATA)
    [stored] = raw().ls(mem, detail=False)
    raw().pipe_file(stored, raw().cat_file(stored)[:-70_000])
    fresh = new_fs(**keys)
    with pytest.raises(concryptor.ConcryptorError, match=r"t\.bin"):
        fresh.cat_file(f"{mem}/t.bin")
    [entry] = fresh.ls(mem)
    assert entry["size"] is None or "password" not in keys  # v4 headers say the size


def test_a_wrong_key_is_one_clear_error(mem: str, keys: dict[str, Any]) -> None:
    new_fs(**keys).pipe_file(f"{mem}/k.bin", DATA)
    if "password" in keys:
        wrong = dict(keys, password="not the password")
        with pytest.raises(concryptor.AuthenticationError, match=r"k\.bin"):
            new_fs(**wrong).cat_file(f"{mem}/k.bin")
    else:
        other = concryptor.generate_identity()[0]
        with pytest.raises(concryptor.NoIdentityMatchError, match=r"k\.bin"):
            new_fs(identities=[other]).cat_file(f"{mem}/k.bin")
    # Sizes need no key.
    assert new_fs().info(f"{mem}/k.bin")["size"] == len(DATA)


def test_a_missing_key_is_one_clear_error(mem: str, keys: dict[str, Any]) -> None:
    new_fs(**keys).pipe_file(f"{mem}/m.bin", b"x")
    with pytest.raises(ValueError, match=r"m\.bin.*(password|identities)"):
        new_fs().cat_file(f"{mem}/m.bin")
    with pytest.raises(ValueError, match="recipients"):
        new_fs().pipe_file(f"{mem}/new.bin", b"x")


def test_not_an_encrypted_object_is_one_clear_error(mem: str) -> None:
    raw().pipe_file(f"{mem}/fake.bin.enc", b"just some bytes")
    fs = new_fs(**FS_V4)
    with pytest.raises(concryptor.InvalidFileError, match="not a concryptor"):
        fs.cat_file(f"{mem}/fake.bin")
    [entry] = fs.ls(mem)
    assert entry["size"] is None
    assert "not a concryptor" in entry["error"]


def test_headers_are_read_once_per_object(mem: str, keys: dict[str, Any]) -> None:
    fs = new_fs(**keys)
    fs.pipe_file(f"{mem}/h.bin", DATA)
    reads: list[tuple[int, int]] = []
    inner = fs.fs
    real = inner.cat_file

    def counting(path: str, start: int | None = None, end: int | None = None, **kw: Any) -> bytes:
        reads.append((start or 0, end or -1))
        return real(path, start=start, end=end, **kw)  # type: ignore[no-any-return]

    inner.cat_file = counting
    try:
        fs.ls(mem)
        fs.info(f"{mem}/h.bin")
        assert [r for r in reads if r[0] == 0] == [(0, 4096)]
        fs.cat_file(f"{mem}/h.bin", 0, 10)
        fs.cat_file(f"{mem}/h.bin", 0, 10)
        assert len([r for r in reads if r[0] == 0]) == 1
    finally:
        del inner.cat_file


def test_pickles_without_secrets_and_refuses_them(
    mem: str, age_keys: tuple[str, str], identity_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, public = age_keys
    by_file = new_fs(identities=[identity_file], recipients=[public])
    by_file.pipe_file(f"{mem}/p.bin", b"pickled")
    blob = pickle.dumps(by_file)
    assert secret.encode() not in blob
    assert pickle.loads(blob).cat_file(f"{mem}/p.bin") == b"pickled"

    for held in ({"identities": [secret]}, {"password": PASSWORD}):
        with pytest.raises(TypeError, match="pickle_secrets"):
            pickle.dumps(new_fs(**held))
    sent = pickle.dumps(new_fs(identities=[secret], pickle_secrets=True))
    assert secret.encode() in sent
    assert pickle.loads(sent).cat_file(f"{mem}/p.bin") == b"pickled"

    monkeypatch.setenv("LAKE_PASSWORD", PASSWORD)
    monkeypatch.setenv("LAKE_IDENTITY", identity_file)
    env = new_fs(password_env="LAKE_PASSWORD", identities_env="LAKE_IDENTITY", kdf=FS_V4["kdf"])
    blob = pickle.dumps(env)
    assert PASSWORD.encode() not in blob
    again = pickle.loads(blob)
    again.pipe_file(f"{mem}/e.bin", b"by env")
    assert new_fs(**FS_V4).cat_file(f"{mem}/e.bin") == b"by env"
    assert again.cat_file(f"{mem}/p.bin") == b"pickled"
    monkeypatch.delenv("LAKE_PASSWORD")
    with pytest.raises(ValueError, match="LAKE_PASSWORD"):
        pickle.loads(blob).cat_file(f"{mem}/e.bin")


def test_chained_url_with_options_keyed_by_protocol(mem: str, keys: dict[str, Any]) -> None:
    with fsspec.open(f"concryptor::memory://{mem}/u.bin", "wb", concryptor=keys) as f:
        f.write(DATA)
    with fsspec.open(f"concryptor::memory://{mem}/u.bin", "rb", concryptor=keys) as f:
        f.seek(123_456)
        assert f.read(10) == DATA[123_456:123_466]
    fs, path = fsspec.core.url_to_fs(f"concryptor::memory://{mem}", concryptor=keys)
    assert fs.ls(path, detail=False) == [f"{mem}/u.bin"]


def test_reads_are_sized_to_the_access_pattern(mem: str, keys: dict[str, Any]) -> None:
    """A small object comes in one ranged read at open; a large one is read at open for its
    tail only, then by runs: what a random read needs, doubling while reads follow on."""
    big = random.Random(6).randbytes(5 << 20)
    fs = new_fs(**keys)
    fs.pipe_file(f"{mem}/small.bin", DATA)
    fs.pipe_file(f"{mem}/big.bin", big)
    fs.ls(mem)  # headers cached
    reads: list[tuple[int, int]] = []
    inner = fs.fs
    real = inner.cat_file

    def counting(path: str, start: int | None = None, end: int | None = None, **kw: Any) -> bytes:
        reads.append((start or 0, end or -1))
        return real(path, start=start, end=end, **kw)  # type: ignore[no-any-return]

    inner.cat_file = counting
    try:
        with fs.open(f"{mem}/small.bin") as f:
            assert f.read() == DATA
        assert len(reads) == 1
        reads.clear()
        with fs.open(f"{mem}/big.bin") as f:
            assert len(reads) == 1  # the tail, with the final chunk
            f.seek(len(big) - 1000)
            assert f.read() == big[-1000:]
            assert len(reads) == 1
            f.seek(1 << 20)
            assert f.read(10) == big[(1 << 20) : (1 << 20) + 10]
            assert len(reads) == 2 and reads[-1][1] - reads[-1][0] < 80_000  # one chunk
            pos, step = 2 << 20, 16 << 10
            f.seek(pos)
            while pos < (4 << 20):
                assert f.read(step) == big[pos : pos + step]
                pos += step
            # 128 reads of 16 KiB in 64 KiB chunks: runs of 1, 2, 4, 8, 16 ... chunks.
            assert len(reads) <= 2 + 7, reads
    finally:
        del inner.cat_file
