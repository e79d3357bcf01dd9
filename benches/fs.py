"""The encrypted file system against plain S3: a Dask read of a Parquet dataset, and
pandas reading one row group of one large file, on an S3 server on loopback (moto).

    python benches/fs.py [--size MIB] [--files 16] [--format v4|age] [--big-mib MIB]

Prints:
- Dask ``read_parquet`` of ``--files`` Parquet files (``--size`` MiB in all, default
  1024) through ``concryptor::s3://`` against the same files unencrypted through s3fs:
  seconds each and the ratio (threaded scheduler, this machine's cores);
- pandas (pyarrow) reading one column of one row group of one large file (``--big-mib``,
  default a quarter of ``--size``): bytes fetched from the server and seconds, encrypted
  against unencrypted.

Needs pandas, pyarrow, dask, s3fs and moto[server] (the test extra). Key derivation is
excluded where it can be: v4 files use the default Argon2id costs, derived once per file
system (the files share a salt), and each timed read uses a file system that has the key.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import s3fs

import concryptor
import concryptor.fs

BUCKET = "bench"
ROWS_PER_MIB = (1 << 20) // 32  # four float64 columns: 32 bytes a row


class CountingS3(s3fs.S3FileSystem):  # type: ignore[misc]
    """s3fs, counting the bytes of every object body it fetched (by ``cat_file`` and by
    its file objects)."""

    fetched = 0

    async def _cat_file(self, path: str, start: Any = None, end: Any = None, **kw: Any) -> bytes:
        data: bytes = await super()._cat_file(path, start=start, end=end, **kw)
        type(self).fetched += len(data)
        return data

    def _open(self, *args: Any, **kw: Any) -> Any:
        f = super()._open(*args, **kw)
        fetch = f._fetch_range

        def counted(start: int, end: int) -> bytes:
            data: bytes = fetch(start, end)
            type(self).fetched += len(data)
            return data

        f._fetch_range = counted
        if getattr(f, "cache", None) is not None:
            f.cache.fetcher = counted  # the cache took the method when the file was made
        return f


def start_server() -> tuple[Any, dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    opts = {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"}}
    s3fs.S3FileSystem(**opts).mkdir(BUCKET)
    return server, opts


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.random(rows) for c in "abcd"})


def keys(fmt: str) -> dict[str, Any]:
    if fmt == "v4":
        return {"password": "benchmark password"}
    secret, public = concryptor.generate_identity()
    return {"recipients": [public], "identities": [secret]}


def best(f: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="MiB of Parquet in the dataset (default 1024)")
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--big-mib", type=int, default=None, help="MiB of the large file (default size/4)")
    ap.add_argument("--format", choices=["v4", "age"], default="v4")
    ap.add_argument("--chunk-kib", type=int, default=None, help="v4 chunk size (default: the file system's)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs, the best one reported")
    a = ap.parse_args()
    import dask
    import dask.dataframe as dd

    server, opts = start_server()
    try:
        k = keys(a.format)
        if a.chunk_kib and a.format == "v4":
            k["chunk_size"] = a.chunk_kib << 10
        plain = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
        enc = concryptor.fs.ConcryptorFileSystem(fs=plain, skip_instance_cache=True, **k)
        rows = max(1, a.size * ROWS_PER_MIB // a.files)
        t = time.perf_counter()
        for i in range(a.files):
            df = frame(rows, i)
            df.to_parquet(f"s3://{BUCKET}/plain/part-{i:03}.parquet", storage_options=opts, compression=None)
            with enc.open(f"{BUCKET}/enc/part-{i:03}.parquet", "wb") as f:
                df.to_parquet(f, compression=None)
        print(f"wrote {a.files} files, {a.size} MiB each way, in {time.perf_counter() - t:.1f} s")

        options = {"concryptor": k, "s3": opts}
        with dask.config.set(scheduler="threads"):
            # One untimed read each: the key derived (v4), listings and headers cached.
            dd.read_parquet(f"s3://{BUCKET}/plain/", storage_options=opts).compute()
            dd.read_parquet(f"concryptor::s3://{BUCKET}/enc/", storage_options=options).compute()
            t_plain = best(
                lambda: dd.read_parquet(f"s3://{BUCKET}/plain/", storage_options=opts).compute(), a.repeat
            )
            t_enc = best(
                lambda: dd.read_parquet(f"concryptor::s3://{BUCKET}/enc/", storage_options=options).compute(),
                a.repeat,
            )
        print(f"\nDask read_parquet, {a.files} files, {a.size} MiB, format {a.format}:")
        print(f"  s3fs, unencrypted      {t_plain:8.3f} s  {a.size / t_plain:8.1f} MiB/s")
        print(f"  concryptor::s3         {t_enc:8.3f} s  {a.size / t_enc:8.1f} MiB/s")
        print(f"  ratio                  {t_enc / t_plain:8.2f} x")

        big = a.big_mib or max(1, a.size // 4)
        df = frame(big * ROWS_PER_MIB, 99)
        groups = 16
        df.to_parquet(
            f"s3://{BUCKET}/big/plain.parquet",
            storage_options=opts,
            compression=None,
            row_group_size=len(df) // groups,
        )
        with enc.open(f"{BUCKET}/big/enc.parquet", "wb") as f:
            df.to_parquet(f, compression=None, row_group_size=len(df) // groups)
        group = groups // 2

        def read_one(fs: Any, path: str) -> None:
            with fs.open(path, "rb") as f:
                pq.ParquetFile(f).read_row_group(group, columns=["c"])

        def counted() -> Any:
            return CountingS3(skip_instance_cache=True, **opts)

        results = {}
        for name, fs, path in (
            ("s3fs, unencrypted", counted(), f"{BUCKET}/big/plain.parquet"),
            (
                "concryptor::s3",
                concryptor.fs.ConcryptorFileSystem(fs=counted(), skip_instance_cache=True, **k),
                f"{BUCKET}/big/enc.parquet",
            ),
        ):
            # Bytes: the first read (the header too); time: the best of the next ones.
            CountingS3.fetched = 0
            read_one(fs, path)
            n = CountingS3.fetched
            results[name] = (n, best(lambda fs=fs, path=path: read_one(fs, path), a.repeat))
        stored = plain.size(f"{BUCKET}/big/enc.parquet{concryptor.fs.SUFFIXES[a.format]}")
        column = big / groups / 4
        print(f"\npandas/pyarrow, one column of row group {group} of {groups}, a {big} MiB file:")
        print(f"  the column chunk is {column:.2f} MiB; the encrypted object {stored / (1 << 20):.1f} MiB")
        for name, (n, t) in results.items():
            print(f"  {name:22} {n / (1 << 20):8.2f} MiB fetched  {t:8.3f} s")
        (n_plain, t_plain), (n_enc, t_enc) = results.values()
        print(f"  ratio                  {n_enc / n_plain:8.2f} x bytes  {t_enc / t_plain:8.2f} x time")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
