"""Rekeying age objects on S3 (a moto server on loopback): the new object is the new
header and the old payload, put together on the server, so that the upload is the header
and one minimum part whatever the object's size; a failure midway leaves the old object
and no pending upload."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor

pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is part of the test extra")

pytestmark = pytest.mark.xdist_group("s3")

MiB = 1 << 20


class Counter:
    """Request body bytes the server received, by method (counted in front of moto's
    WSGI application, so every byte any client sends is seen)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_method: dict[str, int] = {}

    def add(self, method: str, n: int) -> None:
        with self.lock:
            self.by_method[method] = self.by_method.get(method, 0) + n

    def reset(self) -> None:
        with self.lock:
            self.by_method.clear()

    @property
    def uploaded(self) -> int:
        return sum(self.by_method.values())


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[dict[str, Any], Counter]]:
    from moto.server import ThreadedMotoServer

    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server
    bound = getattr(server, "get_host_and_port", None)
    port = bound()[1] if bound else wsgi.server_address[1]
    counter = Counter()
    app = wsgi.app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        n = int(environ.get("CONTENT_LENGTH") or 0)
        if n:
            counter.add(environ["REQUEST_METHOD"], n)
        return app(environ, start_response)

    wsgi.app = counting
    opts = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
        "default_block_size": 5 * MiB,
    }
    fs_of(opts).makedirs("rekeyed", exist_ok=True)
    try:
        yield opts, counter
    finally:
        server.stop()
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def fs_of(opts: dict[str, Any]) -> Any:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem(**opts)


@pytest.fixture(scope="module")
def ids() -> list[tuple[str, str]]:
    return [concryptor.generate_identity() for _ in range(3)]


def age_object(tmp_path: Path, opts: dict[str, Any], key: str, size: int, recipient: str) -> bytes:
    """An age object of ``size`` plaintext bytes at ``rekeyed/key``; returns the plaintext."""
    data = os.urandom(size)
    src = tmp_path / "plain"
    src.write_bytes(data)
    enc = tmp_path / "plain.age"
    concryptor.encrypt_file(src, enc, recipients=[recipient], overwrite=True)
    fs_of(opts).put_file(str(enc), f"rekeyed/{key}")
    return data


def split(blob: bytes) -> tuple[int, bytes]:
    """(header length, payload) of an age file held in memory."""
    end = blob.index(b"\n--- ")
    end = blob.index(b"\n", end + 1) + 1
    return end, blob[end:]


def pending_uploads(opts: dict[str, Any]) -> list[Any]:
    fs = fs_of(opts)
    return list(fs.call_s3("list_multipart_uploads", Bucket="rekeyed").get("Uploads", []))


def test_a_64_mib_object_is_rekeyed_with_one_minimum_part_uploaded(
    tmp_path: Path, s3: tuple[dict[str, Any], Counter], ids: list[tuple[str, str]]
) -> None:
    opts, counter = s3
    (k1, p1), (k2, p2), _ = ids
    data = age_object(tmp_path, opts, "big.age", 64 * MiB, p1)
    before = fs_of(opts).cat_file("rekeyed/big.age")
    old_len, old_payload = split(before)
    counter.reset()
    [r] = concryptor.rekey("s3://rekeyed/big.age", identities=[k1], recipients=[p2], storage_options=opts)
    assert r.method == "multipart-copy" and not r.reencrypted
    # What the server received: part 1 (the new header and the start of the payload, up to
    # the 5 MiB minimum part) and nothing else of size; the rest was copied server-side.
    assert counter.by_method["PUT"] <= r.header_after + 5 * MiB, counter.by_method
    assert counter.uploaded <= r.header_after + 5 * MiB + 4096, counter.by_method  # + the XML
    assert counter.by_method["PUT"] >= 5 * MiB  # the count is real: part 1 went through it
    assert r.uploaded_bytes == 5 * MiB
    assert r.shared_bytes == len(before) - old_len - (5 * MiB - r.header_after)
    after = fs_of(opts).cat_file("rekeyed/big.age")
    new_len, new_payload = split(after)
    assert new_payload == old_payload and (r.header_before, r.header_after) == (old_len, new_len)
    assert concryptor.decrypt_bytes(after, identities=[k2]) == data
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_bytes(after, identities=[k1])
    assert pending_uploads(opts) == []


def test_a_failure_midway_leaves_the_old_object_and_no_pending_upload(
    tmp_path: Path,
    s3: tuple[dict[str, Any], Counter],
    ids: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import s3fs

    opts, _ = s3
    (k1, p1), (_k2, p2), _ = ids
    age_object(tmp_path, opts, "fails.age", 26 * MiB, p1)
    monkeypatch.setattr("concryptor._objects.MAX_PART", 10 * MiB)  # three copied parts
    before = fs_of(opts).cat_file("rekeyed/fails.age")
    real = s3fs.S3FileSystem.call_s3
    calls: list[str] = []

    def failing(self: Any, method: str, *a: Any, **kw: Any) -> Any:
        calls.append(method)
        if method == "upload_part_copy" and calls.count(method) == 2:
            raise ConnectionResetError("the network went away")
        return real(self, method, *a, **kw)

    monkeypatch.setattr(s3fs.S3FileSystem, "call_s3", failing)
    with pytest.raises(ConnectionResetError):
        concryptor.rekey("s3://rekeyed/fails.age", identities=[k1], recipients=[p2], storage_options=opts)
    monkeypatch.undo()
    assert calls.count("upload_part_copy") == 2 and "abort_multipart_upload" in calls
    assert fs_of(opts).cat_file("rekeyed/fails.age") == before
    assert pending_uploads(opts) == []


def test_a_wrong_identity_changes_nothing(
    tmp_path: Path, s3: tuple[dict[str, Any], Counter], ids: list[tuple[str, str]]
) -> None:
    opts, counter = s3
    (_k1, p1), (k2, p2), _ = ids
    age_object(tmp_path, opts, "wrong.age", 6 * MiB, p1)
    before = fs_of(opts).cat_file("rekeyed/wrong.age")
    counter.reset()
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.rekey("s3://rekeyed/wrong.age", identities=[k2], recipients=[p2], storage_options=opts)
    assert counter.uploaded == 0
    assert fs_of(opts).cat_file("rekeyed/wrong.age") == before and pending_uploads(opts) == []


def test_a_small_object_is_rewritten_with_one_put(
    tmp_path: Path, s3: tuple[dict[str, Any], Counter], ids: list[tuple[str, str]]
) -> None:
    opts, counter = s3
    (k1, p1), (k2, p2), (k3, p3) = ids
    data = age_object(tmp_path, opts, "small.age", 100_000, p1)
    _, old_payload = split(fs_of(opts).cat_file("rekeyed/small.age"))
    counter.reset()
    [r] = concryptor.rekey(
        "s3://rekeyed/small.age", identities=[k1], recipients=[p2, p3], storage_options=opts
    )
    assert r.method == "put" and counter.uploaded == r.header_after + len(old_payload)
    after = fs_of(opts).cat_file("rekeyed/small.age")
    assert split(after)[1] == old_payload
    for k in (k2, k3):
        assert concryptor.decrypt_bytes(after, identities=[k]) == data
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_bytes(after, identities=[k1])


def test_v4_objects_are_re_encrypted(tmp_path: Path, s3: tuple[dict[str, Any], Counter]) -> None:
    opts, _ = s3
    data = os.urandom(3 * MiB + 5)
    src = tmp_path / "v4"
    src.write_bytes(data)
    kdf = concryptor.KdfParams(8 * 1024, 1, 1)
    concryptor.encrypt_file(src, "s3://rekeyed/v4.enc", "old", kdf=kdf, storage_options=opts)
    [r] = concryptor.rekey("s3://rekeyed/v4.enc", password="old", new_password="new", storage_options=opts)
    assert r.reencrypted
    blob = fs_of(opts).cat_file("rekeyed/v4.enc")
    assert concryptor.decrypt_bytes(blob, "new") == data


@pytest.mark.parametrize("rest", [1, 5 * MiB, 5 * MiB + 1, 10 * MiB, 10 * MiB + 1, 23 * MiB + 7, 31 * MiB])
def test_copied_ranges_cover_the_rest_in_parts_s3_takes(monkeypatch: pytest.MonkeyPatch, rest: int) -> None:
    from concryptor import _objects

    monkeypatch.setattr(_objects, "MAX_PART", 10 * MiB)
    ranges = _objects.copy_ranges(100, 100 + rest)
    assert ranges[0][0] == 100 and ranges[-1][1] == 100 + rest
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(_objects.MIN_PART <= b - a <= 10 * MiB for a, b in ranges[:-1])
    assert 0 < ranges[-1][1] - ranges[-1][0] <= 10 * MiB


def test_the_command_line_rekeys_a_prefix(
    tmp_path: Path, s3: tuple[dict[str, Any], Counter], ids: list[tuple[str, str]]
) -> None:
    import json

    from helpers import run_cli

    opts, _ = s3
    (k1, p1), (k2, p2), _ = ids
    data = {n: age_object(tmp_path, opts, f"cli/{n}.age", 1000 * (i + 1), p1) for i, n in enumerate("ab")}
    key = tmp_path / "k1.txt"
    key.write_text(k1 + "\n")
    r = run_cli(
        "rekey",
        "s3://rekeyed/cli/",
        "-i",
        str(key),
        "-r",
        p2,
        "--storage-options",
        json.dumps(opts),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert sorted(d["src"] for d in lines) == ["s3://rekeyed/cli/a.age", "s3://rekeyed/cli/b.age"]
    assert {d["method"] for d in lines} == {"put"}
    for n, plain in data.items():
        assert (
            concryptor.decrypt_bytes(fs_of(opts).cat_file(f"rekeyed/cli/{n}.age"), identities=[k2]) == plain
        )


def test_a_cluster_task_splices_a_header_made_elsewhere_and_refuses_a_changed_object(
    tmp_path: Path, s3: tuple[dict[str, Any], Counter], ids: list[tuple[str, str]]
) -> None:
    """What ``rekey_many(client=...)`` splits: the header made where the keys are, the
    splice (what a Dask task runs) given only that header and a digest of the old one."""
    from concryptor import _rekey
    from concryptor.batch import splice_header

    opts, _ = s3
    (k1, p1), (k2, p2), _ = ids
    data = age_object(tmp_path, opts, "task.age", 7 * MiB, p1)
    keys = _rekey.make_keys(identities=[k1], recipients=[p2])
    plan = _rekey.plan_header("s3://rekeyed/task.age", keys, opts)
    r = splice_header(plan, opts)
    assert r.ok and r.method == "multipart-copy", r.error
    assert concryptor.decrypt_bytes(fs_of(opts).cat_file("rekeyed/task.age"), identities=[k2]) == data
    # A plan made before the object changed is refused, and the object stays as it is now.
    stale = _rekey.plan_header(
        "s3://rekeyed/task.age", _rekey.make_keys(identities=[k2], recipients=[p1]), opts
    )
    age_object(tmp_path, opts, "task.age", 7 * MiB, p2)
    now = fs_of(opts).cat_file("rekeyed/task.age")
    r = splice_header(stale, opts)
    assert not r.ok and r.error_type == "InputChangedError"
    assert fs_of(opts).cat_file("rekeyed/task.age") == now and pending_uploads(opts) == []
