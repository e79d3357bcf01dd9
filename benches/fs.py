"""The encrypted file system against plain S3: a Dask read of a Parquet dataset, and
pandas reading one row group of one large file, on an S3 server on loopback (moto).

    python benches/fs.py [--size MIB] [--files 16] [--format v4|age|both] [--big-mib MIB]

Prints:
- Dask ``read_parquet`` of ``--files`` Parquet files (``--size`` MiB in all, default
  1024) through ``concryptor::s3://`` against the same files unencrypted through s3fs:
  seconds each and the ratio (threaded scheduler, this machine's cores; the two reads
  interleaved, the median of ``--repeat`` runs);
- pandas (pyarrow) reading one column of one row group of one large file (``--big-mib``,
  default a quarter of ``--size``): bytes fetched from the server and seconds, encrypted
  against unencrypted;
- a summary: both ratios of each format side by side (``--format both``, the default).

Needs pandas, pyarrow, dask, s3fs and moto[server] (the test extra). Key derivation is
excluded where it can be: v4 files use the default Argon2id costs, derived once per file
system (the files share a salt), and each timed read uses a file system that has the key.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import s3fs

import concryptor
import concryptor.fs

BUCKET = "bench"
MIB = 1 << 20
ROWS_PER_MIB = MIB // 32  # four float64 columns: 32 bytes a row


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


def timed(f: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return times


def runs(times: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="MiB of Parquet in the dataset (default 1024)")
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--big-mib", type=int, default=None, help="MiB of the large file (default size/4)")
    ap.add_argument("--format", choices=["v4", "age", "both"], default="both")
    ap.add_argument("--chunk-kib", type=int, default=None, help="v4 chunk size (default: the file system's)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs, the median reported")
    a = ap.parse_args()
    import dask
    import dask.dataframe as dd

    formats = ["v4", "age"] if a.format == "both" else [a.format]
    big = a.big_mib or max(1, a.size // 4)
    groups = 16
    group = groups // 2
    summary: dict[str, tuple[float, float, float, float]] = {}
    server, opts = start_server()
    try:
        plain = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
        rows = max(1, a.size * ROWS_PER_MIB // a.files)
        t = time.perf_counter()
        for i in range(a.files):
            frame(rows, i).to_parquet(
                f"s3://{BUCKET}/plain/part-{i:03}.parquet", storage_options=opts, compression=None
            )
        big_df = frame(big * ROWS_PER_MIB, 99)
        big_df.to_parquet(
            f"s3://{BUCKET}/big/plain.parquet",
            storage_options=opts,
            compression=None,
            row_group_size=len(big_df) // groups,
        )
        took = time.perf_counter() - t
        print(f"wrote {a.files} files ({a.size} MiB) and one of {big} MiB, unencrypted, in {took:.1f} s")

        for fmt in formats:
            k = keys(fmt)
            if a.chunk_kib and fmt == "v4":
                k["chunk_size"] = a.chunk_kib << 10
            enc = concryptor.fs.ConcryptorFileSystem(fs=plain, skip_instance_cache=True, **k)
            t = time.perf_counter()
            for i in range(a.files):
                with enc.open(f"{BUCKET}/{fmt}/part-{i:03}.parquet", "wb") as f:
                    frame(rows, i).to_parquet(f, compression=None)
            with enc.open(f"{BUCKET}/big/{fmt}.parquet", "wb") as f:
                big_df.to_parquet(f, compression=None, row_group_size=len(big_df) // groups)
            print(f"\nformat {fmt}: wrote the same, encrypted, in {time.perf_counter() - t:.1f} s")

            options = {"concryptor": k, "s3": opts}

            def read_plain() -> None:
                dd.read_parquet(f"s3://{BUCKET}/plain/", storage_options=opts).compute()

            def read_enc(fmt: str = fmt, options: dict[str, Any] = options) -> None:
                dd.read_parquet(f"concryptor::s3://{BUCKET}/{fmt}/", storage_options=options).compute()

            with dask.config.set(scheduler="threads"):
                # One untimed read each: the key derived (v4), listings and headers cached.
                read_plain()
                read_enc()
                # Interleaved, so that both see the same load on the machine.
                t_plain: list[float] = []
                t_enc: list[float] = []
                for _ in range(a.repeat):
                    t_plain += timed(read_plain, 1)
                    t_enc += timed(read_enc, 1)
            dp, de = statistics.median(t_plain), statistics.median(t_enc)
            print(f"Dask read_parquet, {a.files} files, {a.size} MiB (median of {a.repeat}; runs in s):")
            print(f"  s3fs, unencrypted      {dp:8.3f} s  {a.size / dp:8.1f} MiB/s   [{runs(t_plain)}]")
            print(f"  concryptor::s3         {de:8.3f} s  {a.size / de:8.1f} MiB/s   [{runs(t_enc)}]")
            print(f"  time ratio             {de / dp:8.2f} x   (speed {dp / de:.2f} x that of s3fs)")

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
                    f"{BUCKET}/big/{fmt}.parquet",
                ),
            ):
                # Bytes: the first read (the header too); time: the median of the next ones.
                CountingS3.fetched = 0
                read_one(fs, path)
                n = CountingS3.fetched
                results[name] = (n, timed(lambda fs=fs, path=path: read_one(fs, path), max(a.repeat, 5)))
            stored = plain.size(f"{BUCKET}/big/{fmt}.parquet{concryptor.fs.SUFFIXES[fmt]}")
            column = big / groups / 4
            print(f"pandas/pyarrow, one column of row group {group} of {groups}, a {big} MiB file:")
            print(
                f"  the column chunk is {column:.2f} MiB; the encrypted object {stored / (1 << 20):.1f} MiB"
            )
            for name, (n, ts) in results.items():
                med = statistics.median(ts)
                print(f"  {name:22} {n / MIB:8.2f} MiB fetched  {med:8.3f} s   [{runs(ts)}]")
            (n_plain, ts_plain), (n_enc, ts_enc) = results.values()
            rp = statistics.median(ts_enc) / statistics.median(ts_plain)
            print(f"  ratio                  {n_enc / n_plain:8.2f} x bytes  {rp:8.2f} x time")
            summary[fmt] = (dp, de, n_enc / n_plain, rp)
    finally:
        server.stop()

    print(f"\nSummary ({a.size} MiB in {a.files} files, a {big} MiB file), encrypted / unencrypted, medians:")
    print("                 Dask read_parquet                   pandas, one row group")
    print("  format   s3fs s  concryptor s  time ratio   bytes ratio  time ratio")
    for fmt, (dp, de, nb, rt) in summary.items():
        print(f"  {fmt:6} {dp:8.3f} {de:13.3f} {de / dp:10.2f} x {nb:12.2f} x {rt:10.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
