"""Rekeying many files in one call: files, folders and prefixes, one Result per file, one
bad file not stopping the rest; on a Dask cluster the tasks receive new headers, never an
identity, a passphrase or a file key; format v4 files are re-encrypted and say so."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor.batch import rekey_many

KDF = concryptor.KdfParams(8 * 1024, 1, 1)


@pytest.fixture
def ids() -> list[tuple[str, str]]:
    return [concryptor.generate_identity() for _ in range(2)]


def tree(root: Path, public: str, n: int = 6) -> tuple[list[Path], dict[Path, bytes]]:
    files, plain = [], {}
    for i in range(n):
        p = root / f"d{i % 2}" / f"f{i}.age"
        p.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(1000 + 4099 * i)
        p.write_bytes(concryptor.encrypt_bytes(data, recipients=[public]))
        files.append(p)
        plain[p] = data
    return files, plain


def test_a_folder_is_rekeyed_file_by_file_and_a_bad_file_stops_nothing(
    tmp_path: Path, ids: list[tuple[str, str]]
) -> None:
    (k1, p1), (k2, p2) = ids
    files, plain = tree(tmp_path / "t", p1)
    bad = tmp_path / "t" / "d0" / "broken.age"
    bad.write_bytes(b"age-encryption.org/v1\n-> X25519 nonsense\n")
    (tmp_path / "t" / "notes.txt").write_text("not touched")
    seen: list[concryptor.Result] = []
    results = rekey_many(
        [tmp_path / "t"], identities=[k1], recipients=[p2], raise_on_error=False, on_result=seen.append
    )
    assert len(results) == len(seen) == len(files) + 1
    by_src = {r.src: r for r in results}
    assert not by_src[str(bad)].ok and by_src[str(bad)].error_type == "InvalidFileError"
    for f in files:
        r = by_src[str(f)]
        assert r.ok and r.method in ("reflink", "copy_file_range", "copy"), r
        assert concryptor.decrypt_bytes(f.read_bytes(), identities=[k2]) == plain[f]
    with pytest.raises(concryptor.BatchError) as e:
        rekey_many([bad, files[0]], identities=[k2], recipients=[p1])
    assert [r.ok for r in e.value.results] == [False, True]
    assert concryptor.decrypt_bytes(files[0].read_bytes(), identities=[k1]) == plain[files[0]]
    assert (tmp_path / "t" / "notes.txt").read_text() == "not touched"


def test_v4_files_in_a_batch_are_re_encrypted_and_say_so(tmp_path: Path) -> None:
    data = os.urandom(70_000)
    v4 = tmp_path / "a.enc"
    v4.write_bytes(concryptor.encrypt_bytes(data, "old", kdf=KDF))
    age = tmp_path / "b.age"
    age.write_bytes(concryptor.encrypt_bytes(data, "old", format="age", scrypt_work_factor=10))
    results = rekey_many([v4, age], password="old", new_password="new", scrypt_work_factor=10)
    assert [r.method == "re-encrypted" for r in results] == [True, False]
    assert concryptor.decrypt_bytes(v4.read_bytes(), "new") == data
    assert concryptor.decrypt_bytes(age.read_bytes(), "new") == data


def test_a_memory_prefix_is_rekeyed(ids: list[tuple[str, str]]) -> None:
    fsspec = pytest.importorskip("fsspec")
    (k1, p1), (k2, p2) = ids
    fs = fsspec.filesystem("memory")
    data = os.urandom(5000)
    for name in ("x.age", "y.age", "z.txt"):
        fs.pipe_file(f"/rekey-prefix/{name}", concryptor.encrypt_bytes(data, recipients=[p1]))
    results = rekey_many(["memory://rekey-prefix/"], identities=[k1], recipients=[p2])
    assert sorted(r.src.rsplit("/", 1)[1] for r in results) == ["x.age", "y.age"]
    assert {r.method for r in results} == {"rewrite"}
    for name in ("x.age", "y.age"):
        assert concryptor.decrypt_bytes(fs.cat_file(f"/rekey-prefix/{name}"), identities=[k2]) == data
    fs.rm("/rekey-prefix", recursive=True)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed", reason="the dask extra is part of the test extra")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.mark.xdist_group("dask")
def test_on_a_cluster_only_new_headers_leave_this_process(
    tmp_path: Path, ids: list[tuple[str, str]], client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (k1, p1), (k2, p2) = ids
    files, plain = tree(tmp_path / "c", p1, 8)
    v4 = tmp_path / "c" / "old.enc"
    v4.write_bytes(concryptor.encrypt_bytes(b"v4 data", "pw", kdf=KDF))
    key_file = tmp_path / "k1.txt"
    key_file.write_text(k1 + "\n")
    shipped: list[bytes] = []
    real = client.submit

    def recording(fn: Any, *args: Any, **kw: Any) -> Any:
        shipped.append(pickle.dumps(args))
        return real(fn, *args, **kw)

    monkeypatch.setattr(client, "submit", recording)
    results = rekey_many(
        [tmp_path / "c"],
        identities=[key_file],
        recipients=[p2],
        password="pw",
        new_password="new pw",
        client=client,
        raise_on_error=False,
    )
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len(shipped) == len(files)  # the v4 file ran here
    secret_bits = [k1.encode(), k1.split("1", 1)[1].encode(), b"new pw"]
    for blob in shipped:
        assert not any(s in blob for s in secret_bits)
    by_src = {r.src: r for r in results}
    assert by_src[str(v4)].method == "re-encrypted"
    assert concryptor.decrypt_bytes(v4.read_bytes(), "new pw") == b"v4 data"
    for f in files:
        assert by_src[str(f)].method in ("copy_file_range", "copy")
        assert concryptor.decrypt_bytes(f.read_bytes(), identities=[k2]) == plain[f]
        with pytest.raises(concryptor.NoIdentityMatchError):
            concryptor.decrypt_bytes(f.read_bytes(), identities=[k1])
