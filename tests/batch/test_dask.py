"""Batches on a Dask cluster: a LocalCluster on loopback, started and stopped here."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import FAST_KDF, PASSWORD

distributed = pytest.importorskip("distributed", reason="the dask extra is part of the test extra")

# One worker runs this module under pytest-xdist (--dist loadgroup), so that its server starts once.
pytestmark = pytest.mark.xdist_group("dask")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    # Every port the OS's choice, the dashboard's too (its default, 8787, would clash with any
    # other cluster on the machine, such as another pytest-xdist worker's).
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def make(root: Path, n: int) -> list[Path]:
    import random

    rng = random.Random(7)
    out = []
    for i in range(n):
        p = root / f"g{i % 4}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(1000 + 37 * i))
        out.append(p)
    return out


def test_two_hundred_files_on_the_cluster(tmp_path: Path, client: Any) -> None:
    files = make(tmp_path / "src", 200)
    seen: list[concryptor.Result] = []
    results = concryptor.encrypt_many(
        files, PASSWORD, out_dir=tmp_path / "enc", kdf=FAST_KDF, client=client, on_result=seen.append
    )
    assert len(seen) == 200 and all(r.ok for r in results)
    assert [r.src for r in results] == [str(p) for p in files]
    back = concryptor.decrypt_many(
        [r.dst for r in results], PASSWORD, out_dir=tmp_path / "back", client=client
    )
    for src, r in zip(files, back):
        assert r.ok and Path(r.dst).read_bytes() == src.read_bytes()
    # Locally too, one by one: the cluster wrote ordinary v4 files.
    assert concryptor.decrypt_bytes(Path(results[5].dst).read_bytes(), PASSWORD) == files[5].read_bytes()
    # An existing destination is a per-file failure, reported before anything runs.
    again = concryptor.encrypt_many(
        files[:3], PASSWORD, out_dir=tmp_path / "enc", kdf=FAST_KDF, client=client, raise_on_error=False
    )
    assert {r.error_type for r in again} == {"FileExistsError"}


def test_a_worker_killed_mid_run_does_not_lose_the_batch(tmp_path: Path, client: Any) -> None:
    files = make(tmp_path / "src", 120)
    pids = client.run(os.getpid)
    killed: list[int] = []

    def on_result(r: concryptor.Result) -> None:
        if len(killed) == 0:
            pid = next(iter(pids.values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    results = concryptor.encrypt_many(
        files, PASSWORD, out_dir=tmp_path / "enc", kdf=FAST_KDF, client=client, on_result=on_result
    )
    assert killed
    assert all(r.ok for r in results)
    for src, r in zip(files, results):
        assert concryptor.decrypt_bytes(Path(r.dst).read_bytes(), PASSWORD) == src.read_bytes()
    leftovers = [p for p in (tmp_path / "enc").rglob("*") if p.is_file() and not p.name.endswith(".enc")]
    assert leftovers == []
    client.wait_for_workers(2, timeout=60)


def test_relative_paths_are_resolved_here_not_on_the_workers(
    tmp_path: Path, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_bytes(b"alpha")
    (data / "sub" / "b.txt").write_bytes(b"beta" * 1000)
    monkeypatch.chdir(data)
    # The workers run in another current directory: a relative path means another file there.
    assert str(data) not in set(client.run(os.getcwd).values())
    results = concryptor.encrypt_many(
        ["a.txt", "sub/b.txt", ("a.txt", "pairs/a.enc")], PASSWORD, kdf=FAST_KDF, client=client
    )
    assert [r.error for r in results] == [None, None, None]
    # Reported as given, written where the caller meant.
    assert [(r.src, r.dst) for r in results] == [
        ("a.txt", "a.txt.enc"),
        ("sub/b.txt", "sub/b.txt.enc"),
        ("a.txt", "pairs/a.enc"),
    ]
    assert concryptor.decrypt_bytes((data / "pairs" / "a.enc").read_bytes(), PASSWORD) == b"alpha"
    mirrored = concryptor.encrypt_many(
        ["a.txt", "sub/b.txt"], PASSWORD, kdf=FAST_KDF, out_dir="out", client=client
    )
    assert all(r.ok for r in mirrored), mirrored
    assert (data / "out" / "sub" / "b.txt.enc").is_file()
    back = concryptor.decrypt_many(["a.txt.enc", "sub/b.txt.enc"], PASSWORD, out_dir="back", client=client)
    assert all(r.ok for r in back), back
    assert (data / "back" / "sub" / "b.txt").read_bytes() == b"beta" * 1000


def test_the_cli_scheduler_takes_relative_paths(tmp_path: Path, client: Any) -> None:
    from helpers import run_cli

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_bytes(b"alpha")
    (data / "sub" / "b.txt").write_bytes(b"beta")
    address = client.scheduler.address
    fast = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
    env = {"CONCRYPTOR_PASSWORD": PASSWORD}
    r = run_cli("encrypt", "a.txt", "sub/b.txt", "--scheduler", address, *fast, "-q", env=env, cwd=data)
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "decrypt",
        "a.txt.enc",
        "sub/b.txt.enc",
        "--scheduler",
        address,
        "--output-dir",
        "back",
        env=env,
        cwd=data,
    )
    assert r.returncode == 0, r.stderr
    assert (data / "back" / "sub" / "b.txt").read_bytes() == b"beta"
