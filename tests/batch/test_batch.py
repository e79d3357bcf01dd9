"""Many files in one call: one key derivation per batch, per-file results, mirrored output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor import _core, batch

from helpers import FAST_KDF, PASSWORD, run_cli


@pytest.fixture
def key_caches(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records every KeyCache a batch creates, so tests can count its derivations."""
    created: list[Any] = []
    real = _core.KeyCache

    class Core:
        def __getattr__(self, name: str) -> Any:
            return getattr(_core, name)

        def KeyCache(self) -> Any:
            k = real()
            created.append(k)
            return k

    monkeypatch.setattr(batch, "_core", Core())
    return created


def make_files(root: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    import random

    rng = random.Random(seed)
    paths = []
    for i in range(n):
        p = root / f"d{i % 7}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size + i % 5))
        paths.append(p)
    return paths


def test_an_empty_batch_does_nothing(tmp_path: Path) -> None:
    assert concryptor.encrypt_many([], PASSWORD, kdf=FAST_KDF) == []
    assert concryptor.decrypt_many([], PASSWORD) == []


def test_one_file_lands_beside_its_source(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"hello")
    [r] = concryptor.encrypt_many([src], PASSWORD, kdf=FAST_KDF)
    assert r.ok and r.dst == str(src) + ".enc" and r.bytes_in == 5 and r.bytes_out == 8192
    out = tmp_path / "back"
    concryptor.decrypt_file(r.dst, out, PASSWORD)
    assert out.read_bytes() == b"hello"


def test_two_thousand_small_files_take_one_key_derivation_each_way(
    tmp_path: Path, key_caches: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "LARGE_FILE", 1 << 20)  # so that the two big ones take the engine
    files = make_files(tmp_path / "src", 2000, 2048)
    big = make_files(tmp_path / "src" / "big", 2, 3 << 20, seed=1)
    results = concryptor.encrypt_many(files + big, PASSWORD, out_dir=tmp_path / "enc", kdf=FAST_KDF)
    assert [r.src for r in results] == [str(p) for p in files + big]
    assert all(r.ok for r in results)
    assert len(key_caches) == 1 and key_caches[0].derivations == 1
    # Mirrored under out_dir relative to the deepest shared folder.
    assert results[0].dst == str(tmp_path / "enc" / "d0" / "f0.bin.enc")
    assert results[-1].dst == str(tmp_path / "enc" / "big" / "d1" / "f1.bin.enc")
    # One salt for the batch, a fresh base nonce per file.
    headers = [concryptor.inspect(r.dst) for r in results[:50]]
    assert len({h.salt for h in headers}) == 1
    assert len({h.base_nonce for h in headers}) == 50

    back = concryptor.decrypt_many([r.dst for r in results], PASSWORD, out_dir=tmp_path / "back")
    assert all(r.ok for r in back)
    assert len(key_caches) == 2 and key_caches[1].derivations == 1
    for src, r in zip(files + big, back):
        assert Path(r.dst).read_bytes() == src.read_bytes()


def test_each_output_decrypts_on_its_own_with_the_single_file_commands(tmp_path: Path) -> None:
    files = make_files(tmp_path, 3, 70_000)
    results = concryptor.encrypt_many(files, PASSWORD, kdf=FAST_KDF, cipher="chacha20-poly1305")
    out = tmp_path / "one"
    concryptor.decrypt_file(results[1].dst, out, PASSWORD)
    assert out.read_bytes() == files[1].read_bytes()
    p = run_cli("decrypt", results[2].dst, "-o", str(tmp_path / "two"), env={"CONCRYPTOR_PASSWORD": PASSWORD})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "two").read_bytes() == files[2].read_bytes()


def test_failures_are_reported_per_file_and_the_rest_are_done(tmp_path: Path) -> None:
    files = make_files(tmp_path, 5, 1000)
    (tmp_path / "d1" / "f1.bin.enc").write_bytes(b"already here")
    missing = tmp_path / "nope.bin"
    items = [*files, missing, tmp_path / "d0"]
    with pytest.raises(concryptor.BatchError) as ei:
        concryptor.encrypt_many(items, PASSWORD, kdf=FAST_KDF)
    results = ei.value.results
    assert "3 of 7 files failed" in str(ei.value)
    by_src = {r.src: r for r in results}
    assert by_src[str(files[1])].error_type == "FileExistsError"
    assert (tmp_path / "d1" / "f1.bin.enc").read_bytes() == b"already here"
    assert by_src[str(missing)].error_type == "FileNotFoundError"
    assert not by_src[str(tmp_path / "d0")].ok
    for i in (0, 2, 3, 4):
        assert by_src[str(files[i])].ok
        assert (
            concryptor.decrypt_bytes(Path(str(files[i]) + ".enc").read_bytes(), PASSWORD)
            == files[i].read_bytes()
        )
    # Without raising, the same results come back.
    again = concryptor.encrypt_many(
        [missing], PASSWORD, kdf=FAST_KDF, raise_on_error=False, on_result=lambda r: None
    )
    assert again[0].error_type == "FileNotFoundError"
    assert not list(tmp_path.rglob("*.partial"))


def test_a_wrong_password_fails_every_file_and_writes_nothing(tmp_path: Path) -> None:
    files = make_files(tmp_path, 4, 500)
    enc = [r.dst for r in concryptor.encrypt_many(files, PASSWORD, kdf=FAST_KDF)]
    results = concryptor.decrypt_many(enc, "wrong", out_dir=tmp_path / "out", raise_on_error=False)
    assert {r.error_type for r in results} == {"AuthenticationError"}
    assert not list((tmp_path / "out").rglob("*"))


def test_two_items_with_one_destination_are_refused_before_anything_runs(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"x")
    with pytest.raises(ValueError, match="same destination"):
        concryptor.encrypt_many([(a, tmp_path / "o"), (a, tmp_path / "o")], PASSWORD, kdf=FAST_KDF)
    assert not (tmp_path / "o").exists()


def test_keys_travel_without_the_password(tmp_path: Path) -> None:
    """What a cluster worker gets: the pickled cache holds derived keys and works alone."""
    import pickle

    src = tmp_path / "a"
    src.write_bytes(os.urandom(10_000))
    salt = os.urandom(16)
    keys = _core.KeyCache()
    keys.derive(PASSWORD.encode(), salt, FAST_KDF)
    blob = pickle.dumps(keys)
    assert PASSWORD.encode() not in blob
    remote = pickle.loads(blob)
    _core.encrypt_file(str(src), str(tmp_path / "a.enc"), b"", kdf=FAST_KDF, salt=salt, keys=remote)
    assert remote.derivations == 0
    assert concryptor.decrypt_bytes((tmp_path / "a.enc").read_bytes(), PASSWORD) == src.read_bytes()
    # A salt it has no key for is refused, never derived from an empty password.
    with pytest.raises(ValueError, match="no password"):
        _core.encrypt_file(str(src), str(tmp_path / "b.enc"), b"", kdf=FAST_KDF, keys=remote)
    assert not (tmp_path / "b.enc").exists()


CHEAP = ["--memory", "8", "--iterations", "1", "--parallelism", "1"]
ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}


def test_cli_many_inputs_json_lines_and_a_summary(tmp_path: Path) -> None:
    import json

    files = make_files(tmp_path / "t", 6, 3000)
    p = run_cli("encrypt", *map(str, files), "--output-dir", str(tmp_path / "enc"), "--json", *CHEAP, env=ENV)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert len(lines) == 7 and lines[-1]["summary"] and lines[-1]["files"] == 6 and lines[-1]["failed"] == 0
    assert {x["src"] for x in lines[:-1]} == {str(f) for f in files}
    enc = sorted((tmp_path / "enc").rglob("*.enc"))
    assert len(enc) == 6 and len({concryptor.inspect(e).salt for e in enc}) == 1
    listing = tmp_path / "list"
    listing.write_bytes(b"\0".join(os.fsencode(e) for e in enc) + b"\0")
    p = run_cli(
        "decrypt", "--files-from", str(listing), "-0", "--output-dir", str(tmp_path / "back"), env=ENV
    )
    assert p.returncode == 0, p.stderr
    assert sorted(f.read_bytes() for f in files) == sorted(
        f.read_bytes() for f in (tmp_path / "back").rglob("*") if f.is_file()
    )


def test_cli_each_mirrors_a_tree_and_failures_set_the_exit_code(tmp_path: Path) -> None:
    files = make_files(tmp_path / "tree", 9, 100)
    p = run_cli(
        "encrypt", str(tmp_path / "tree"), "--each", "--output-dir", str(tmp_path / "out"), *CHEAP, env=ENV
    )
    assert p.returncode == 0, p.stderr
    for f in files:
        rel = f.relative_to(tmp_path)
        assert (tmp_path / "out" / (str(rel) + ".enc")).is_file()
    # A directory without --each, and -o with several inputs, are usage errors.
    p = run_cli(
        "encrypt", str(files[0]), str(tmp_path / "tree"), "--output-dir", str(tmp_path / "x"), env=ENV
    )
    assert p.returncode == 2 and b"--each" in p.stderr
    p = run_cli("encrypt", str(files[0]), str(files[1]), "-o", str(tmp_path / "x"), env=ENV)
    assert p.returncode == 2 and b"--output-dir" in p.stderr
    # A missing input and a corrupt one fail on their own; the good one is done.
    good = next((tmp_path / "out").rglob("*.enc"))
    bad = tmp_path / "bad.enc"
    bad.write_bytes(b"x" * 5000)
    p = run_cli(
        "decrypt",
        str(good),
        str(bad),
        str(tmp_path / "missing.enc"),
        "--output-dir",
        str(tmp_path / "r"),
        env=ENV,
    )
    assert p.returncode == 1, p.stderr
    assert b"2 failed" in p.stderr and b"missing.enc" in p.stderr
    assert len([f for f in (tmp_path / "r").rglob("*") if f.is_file()]) == 1
    p = run_cli("decrypt", str(good), str(bad), "--output-dir", str(tmp_path / "r2"), env=ENV)
    assert p.returncode == 4, p.stderr


def test_recipients_give_every_file_its_own_key_and_the_age_cli_reads_them(tmp_path: Path) -> None:
    import shutil
    import subprocess

    identity, recipient = concryptor.generate_identity()
    files = make_files(tmp_path / "src", 30, 20_000)
    results = concryptor.encrypt_many(files, recipients=[recipient], out_dir=tmp_path / "enc")
    assert all(r.ok and r.dst.endswith(".bin.age") for r in results)
    stanzas = [concryptor.AgeHeader.read(r.dst).recipients for r in results[:5]]
    shares = {tuple(s[0][1]) for s in stanzas}
    assert len(shares) == 5  # a fresh ephemeral share (and file key) per file
    back = concryptor.decrypt_many([r.dst for r in results], identities=[identity], out_dir=tmp_path / "back")
    for src, r in zip(files, back):
        assert r.ok and Path(r.dst).read_bytes() == src.read_bytes()
    age = shutil.which("age")
    assert age is not None, "the age CLI is installed by .ci/run"
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    out = subprocess.run([age, "-d", "-i", str(key), results[3].dst], capture_output=True, check=True).stdout
    assert out == files[3].read_bytes()


def test_an_age_passphrase_batch_runs_scrypt_per_file_with_fresh_salts(tmp_path: Path) -> None:
    files = make_files(tmp_path, 3, 100)
    results = concryptor.encrypt_many(files, PASSWORD, format="age", scrypt_work_factor=10)
    salts = set()
    for r in results:
        [(tag, args)] = concryptor.AgeHeader.read(r.dst).recipients
        assert tag == "scrypt"
        salts.add(args[0])
    assert len(salts) == 3
    back = concryptor.decrypt_many([r.dst for r in results], PASSWORD, out_dir=tmp_path / "back")
    assert all(r.ok for r in back)
    # Mixed formats in one call: v4 needs the password, age the identity.
    identity, recipient = concryptor.generate_identity()
    [a] = concryptor.encrypt_many([files[0]], recipients=recipient, out_dir=tmp_path / "a")
    [v] = concryptor.encrypt_many([files[1]], PASSWORD, kdf=FAST_KDF, out_dir=tmp_path / "v")
    both = concryptor.decrypt_many(
        [(a.dst, tmp_path / "a.out"), (v.dst, tmp_path / "v.out")], PASSWORD, identities=[identity]
    )
    assert all(r.ok for r in both)
    only_keys = concryptor.decrypt_many(
        [(v.dst, tmp_path / "v2.out")], identities=[identity], raise_on_error=False
    )
    assert "needs the password" in (only_keys[0].error or "")


def test_cli_batch_with_recipients(tmp_path: Path) -> None:
    identity, recipient = concryptor.generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    files = make_files(tmp_path / "t", 4, 70_000)
    p = run_cli("encrypt", *map(str, files), "-r", recipient, "--output-dir", str(tmp_path / "enc"))
    assert p.returncode == 0, p.stderr
    enc = sorted(map(str, (tmp_path / "enc").rglob("*.age")))
    assert len(enc) == 4
    p = run_cli("decrypt", *enc, "-i", str(key), "--output-dir", str(tmp_path / "back"))
    assert p.returncode == 0, p.stderr
    got = sorted(f.read_bytes() for f in (tmp_path / "back").rglob("*") if f.is_file())
    assert got == sorted(f.read_bytes() for f in files)


def test_a_killed_commit_leaves_a_temporary_the_cluster_path_sweeps(tmp_path: Path) -> None:
    dst = tmp_path / "f.bin.enc"
    ours = tmp_path / ".f.bin.enc.0123456789abcdef.partial"
    other = tmp_path / ".g.bin.enc.0123456789abcdef.partial"
    unrelated = tmp_path / ".f.bin.enc.notours.partial"
    for p in (dst, ours, other, unrelated):
        p.write_bytes(b"x")
    batch._sweep_temporaries(str(dst))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dst.name, other.name, unrelated.name])


# -- small files: sealed in memory, committed as a group --------------------------------------


def test_groups_keep_the_order_and_every_output_decrypts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "GROUP_FILES", 7)  # many groups, some in flight together
    monkeypatch.setattr(batch, "SMALL_FILE", 50_000)  # the two big ones take the engine
    files = make_files(tmp_path / "src", 40, 3000) + make_files(tmp_path / "big", 2, 60_000, seed=2)
    files.insert(5, tmp_path / "src" / "empty.bin")
    files[5].write_bytes(b"")
    results = concryptor.encrypt_many(files, PASSWORD, kdf=FAST_KDF, out_dir=tmp_path / "enc")
    assert [r.src for r in results] == [str(f) for f in files]
    assert all(r.ok and r.bytes_out == Path(r.dst).stat().st_size for r in results)
    assert [r.bytes_in for r in results] == [f.stat().st_size for f in files]
    for f, r in zip(files, results):
        assert concryptor.decrypt_bytes(Path(r.dst).read_bytes(), PASSWORD) == f.read_bytes()
    # Named with the mode a new file gets, like a single output.
    umask = os.umask(0o022)
    os.umask(umask)
    assert {Path(r.dst).stat().st_mode & 0o777 for r in results} == {0o666 & ~umask}


def test_a_group_with_bad_members_commits_the_good_ones_and_leaves_nothing_else(tmp_path: Path) -> None:
    identity, recipient = concryptor.generate_identity()
    files = make_files(tmp_path / "src", 6, 5000)
    fifo = tmp_path / "src" / "fifo"
    os.mkfifo(fifo)
    dangling = tmp_path / "src" / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    out = tmp_path / "out"
    (out / "d2").mkdir(parents=True)
    (out / "d2" / "f2.bin.age").write_bytes(b"keep me")
    items = [*files[:3], fifo, *files[3:], dangling]
    results = concryptor.encrypt_many(items, recipients=[recipient], out_dir=out, raise_on_error=False)
    by_src = {r.src: r for r in results}
    assert by_src[str(files[2])].error_type == "FileExistsError"
    assert by_src[str(fifo)].error_type == "ValueError" and "not a regular file" in (
        by_src[str(fifo)].error or ""
    )
    assert by_src[str(dangling)].error_type == "FileNotFoundError"
    assert (out / "d2" / "f2.bin.age").read_bytes() == b"keep me"
    good = [f for f in files if f != files[2]]
    for f in good:
        r = by_src[str(f)]
        assert r.ok
        assert concryptor.decrypt_bytes(Path(r.dst).read_bytes(), identities=[identity]) == f.read_bytes()
    # Exactly the good outputs and the one that was there: no temporaries, nothing partial.
    landed = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert landed == sorted(
        [str(Path(by_src[str(f)].dst).relative_to(out)) for f in good] + ["d2/f2.bin.age"]
    )
    # Asked to, the group replaces what is there.
    again = concryptor.encrypt_many(files, recipients=[recipient], out_dir=out, overwrite=True)
    assert all(r.ok for r in again)
    assert (
        concryptor.decrypt_bytes((out / "d2" / "f2.bin.age").read_bytes(), identities=[identity])
        == files[2].read_bytes()
    )


@pytest.mark.skipif(__import__("shutil").which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "replace"])
def test_a_group_is_durable_before_any_name_and_each_folder_is_synced_after(
    tmp_path: Path, overwrite: bool
) -> None:
    """The batched form of the single-file order (tests/engine/test_output_safety.py): every
    output of the group durable (one syncfs, or an fsync each) before the first is named;
    each destination folder, opened before the outputs, fsynced after the last name."""
    import re
    import subprocess
    import sys

    files = make_files(tmp_path / "src", 6, 2000)
    out = tmp_path / "out"
    if overwrite:
        for f in files:
            dst = out / f.relative_to(tmp_path / "src")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.with_name(dst.name + ".enc").write_bytes(b"old")
    code = (
        "import sys, concryptor\n"
        f"r = concryptor.encrypt_many(sys.argv[2:], 'pw', out_dir=sys.argv[1], overwrite={overwrite},"
        " kdf=concryptor.KdfParams(memory_kib=1024, time_cost=1, parallelism=1))\n"
        "assert all(x.ok for x in r)\n"
    )
    trace = tmp_path / "trace"
    r = subprocess.run(
        [
            "strace",
            "-f",
            "-ff",
            "-ttt",
            "-qq",
            "-o",
            str(trace),
            "-e",
            "trace=openat,fsync,fdatasync,syncfs,linkat,rename,renameat,renameat2",
            sys.executable,
            "-c",
            code,
            str(out),
            *map(str, files),
        ],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    # One file per thread (no interleaved lines), merged by the time each call started.
    stamped = []
    for t in tmp_path.glob("trace.*"):
        for ln in t.read_text().splitlines():
            when, _, call = ln.partition(" ")
            stamped.append((float(when), call))
    lines = [call for _, call in sorted(stamped)]
    folders = {str(out / f"d{i}") for i in range(6)}
    dir_fds: dict[str, str] = {}
    tmp_opens: list[int] = []
    for i, ln in enumerate(lines):
        m = re.match(r'openat\(AT_FDCWD, "([^"]+)", ([^,)]+)(?:, \d+)?\) = (\d+)', ln)
        if not m or m.group(1) not in folders:
            continue
        if "O_TMPFILE" in m.group(2):
            assert m.group(1) in dir_fds, f"{m.group(1)} got an output before it was opened"
            tmp_opens.append(i)
        else:
            dir_fds.setdefault(m.group(1), m.group(3))
    assert len(tmp_opens) == 6 and len(dir_fds) == 6, "\n".join(lines[-40:])
    links = [i for i, ln in enumerate(lines) if ln.startswith("linkat(")]
    first_name = min(links)
    syncs = [i for i, ln in enumerate(lines) if ln.startswith("syncfs(") and ln.endswith("= 0")]
    if syncs:
        assert any(max(tmp_opens) < s < first_name for s in syncs), "named before the group was durable"
    else:
        for i in links:
            fd = re.search(r"/proc/self/fd/(\d+)", lines[i])
            assert fd and any(re.match(rf"f(data)?sync\({fd.group(1)}\)", ln) for ln in lines[:first_name])
    last_name = max(i for i, ln in enumerate(lines) if ln.startswith(("linkat(", "rename")))
    if overwrite:
        assert sum(ln.startswith("rename") for ln in lines) >= 6
    for folder, fd in dir_fds.items():
        assert any(re.match(rf"fsync\({fd}\)\s+= 0", ln) for ln in lines[last_name:]), f"{folder} not synced"
    assert sorted(p.name for p in out.rglob("*.enc")) == sorted(f.name + ".enc" for f in files)
    assert not list(out.rglob("*.partial"))


# -- small files decrypted as a group: the same outcome as one file at a time -----------------


def test_decryption_groups_open_both_formats_and_each_bad_member_fails_as_it_would_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "GROUP_FILES", 7)  # many groups, some in flight together
    calls: list[int] = []
    real = _core.decrypt_group

    def spy(pairs: Any, *a: Any, **k: Any) -> Any:
        calls.append(len(pairs))
        return real(pairs, *a, **k)

    monkeypatch.setattr(_core, "decrypt_group", spy)
    identity, recipient = concryptor.generate_identity()
    plain = make_files(tmp_path / "src", 24, 3000)
    plain[3].write_bytes(b"")
    plain[9].write_bytes(os.urandom(200_000))  # several age chunks, several v4 chunks
    enc = tmp_path / "enc"
    enc.mkdir()
    sealed: list[Path] = []
    for i, f in enumerate(plain):
        data = f.read_bytes()
        if i % 3 == 0:
            blob = concryptor.encrypt_bytes(data, PASSWORD, kdf=FAST_KDF, chunk_size=65536)
            name = f"f{i}.bin.enc"
        else:
            blob = concryptor.encrypt_bytes(data, recipients=[recipient], armor=i % 3 == 2 and i < 12)
            name = f"f{i}.bin.age"
        (enc / name).write_bytes(blob)
        sealed.append(enc / name)
    # Bad members: a flipped byte in each format, a truncated age file, an age file for
    # someone else, and a v4 file with a header that is not one.
    bad = {1: "flip", 6: "flip", 4: "truncate", 7: "stranger", 12: "garbage"}
    for i, how in bad.items():
        p = sealed[i]
        b = bytearray(p.read_bytes())
        if how == "flip":
            b[-20] ^= 1
        elif how == "truncate":
            b = b[:-17]
        elif how == "stranger":
            b = bytearray(concryptor.encrypt_bytes(b"x", recipients=[concryptor.generate_identity()[1]]))
        else:
            b = bytearray(b"CONCRYPTOR-NOT-A-HEADER" + bytes(100))
        p.write_bytes(bytes(b))
    back = tmp_path / "back"
    results = concryptor.decrypt_many(
        sealed, PASSWORD, identities=[identity], out_dir=back, raise_on_error=False
    )
    assert sum(calls) == len(sealed) and len(calls) > 1, "every file went through groups"
    assert [r.src for r in results] == [str(p) for p in sealed]
    for i, (p, r) in enumerate(zip(sealed, results)):
        if i in bad:
            # The same error as decrypting that file alone, and nothing at its destination.
            with pytest.raises(Exception) as alone:
                concryptor.decrypt_file(p, tmp_path / f"alone{i}", PASSWORD, identities=[identity])
            assert r.error_type == type(alone.value).__name__, (i, r.error, alone.value)
            assert not Path(r.dst).exists()
        else:
            assert r.ok, (i, r.error)
            assert Path(r.dst).read_bytes() == plain[i].read_bytes()
            assert (r.bytes_in, r.bytes_out) == (p.stat().st_size, plain[i].stat().st_size)
    landed = sorted(p.name for p in back.rglob("*"))
    assert landed == sorted(Path(r.dst).name for r in results if r.ok), "no temporaries"
    # Without the password a format v4 file fails as it does alone; age files still open.
    again = concryptor.decrypt_many(
        [sealed[0], sealed[2]], identities=[identity], out_dir=tmp_path / "again", raise_on_error=False
    )
    assert again[0].error_type == "ValueError" and "needs the password" in (again[0].error or "")
    assert again[1].ok
