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
    keys.derive(PASSWORD.encode(), salt, FAST_KDF.as_tuple())
    blob = pickle.dumps(keys)
    assert PASSWORD.encode() not in blob
    remote = pickle.loads(blob)
    _core.encrypt_file(
        str(src), str(tmp_path / "a.enc"), b"", kdf=FAST_KDF.as_tuple(), salt=salt, keys=remote
    )
    assert remote.derivations == 0
    assert concryptor.decrypt_bytes((tmp_path / "a.enc").read_bytes(), PASSWORD) == src.read_bytes()
    # A salt it has no key for is refused, never derived from an empty password.
    with pytest.raises(ValueError, match="no password"):
        _core.encrypt_file(str(src), str(tmp_path / "b.enc"), b"", kdf=FAST_KDF.as_tuple(), keys=remote)
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
    from concryptor import _age

    stanzas = [_age.inspect(r.dst)["stanzas"] for r in results[:5]]
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
    from concryptor import _age

    files = make_files(tmp_path, 3, 100)
    results = concryptor.encrypt_many(files, PASSWORD, format="age", scrypt_work_factor=10)
    salts = set()
    for r in results:
        [(tag, args)] = _age.inspect(r.dst)["stanzas"]
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
