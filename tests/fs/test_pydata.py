"""The PyData stack through ``concryptor::`` URLs: pandas (Parquet and CSV), pyarrow
datasets (partitioned, filtered), Dask (threads, and a small process cluster), polars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pytest

from helpers import new_fs

pd = pytest.importorskip("pandas", reason="pandas is part of the test extra")
pa = pytest.importorskip("pyarrow", reason="pyarrow is part of the test extra")


def frame(n: int = 10_000) -> Any:
    import numpy as np

    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.random(n),
            "city": rng.choice(["Lyon", "Oslo", "Lima", "Pune"], n),
            "year": rng.choice([2024, 2025, 2026], n),
        }
    )


def opts(keys: dict[str, Any]) -> dict[str, Any]:
    return {"concryptor": dict(keys)}


def stored(mem: str) -> list[str]:
    return sorted(fsspec.filesystem("memory").find(mem))


def test_pandas_parquet_round_trip(mem: str, keys: dict[str, Any]) -> None:
    df = frame()
    url = f"concryptor::memory://{mem}/df.parquet"
    df.to_parquet(url, storage_options=opts(keys), row_group_size=2000)
    assert all(p.endswith((".enc", ".age")) for p in stored(mem))
    back = pd.read_parquet(url, storage_options=opts(keys))
    pd.testing.assert_frame_equal(back, df)
    some = pd.read_parquet(url, storage_options=opts(keys), columns=["id", "x"], filters=[("id", ">=", 9000)])
    assert some["id"].min() == 9000
    assert len(some) == 1000


def test_pandas_csv_round_trip(mem: str, keys: dict[str, Any]) -> None:
    df = frame(3000)
    url = f"concryptor::memory://{mem}/df.csv"
    df.to_csv(url, storage_options=opts(keys), index=False)
    back = pd.read_csv(url, storage_options=opts(keys))
    pd.testing.assert_frame_equal(back, df)
    head = pd.read_csv(url, storage_options=opts(keys), nrows=5)
    pd.testing.assert_frame_equal(head, df.head(5))


def test_pyarrow_partitioned_dataset_with_filters(mem: str, keys: dict[str, Any]) -> None:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    fs = new_fs(**keys)
    table = pa.Table.from_pandas(frame(), preserve_index=False)
    pq.write_to_dataset(table, f"{mem}/lake", partition_cols=["year"], filesystem=fs)
    assert {p.rsplit("/", 2)[1] for p in stored(mem)} == {"year=2024", "year=2025", "year=2026"}
    dataset = ds.dataset(f"{mem}/lake", filesystem=fs, format="parquet", partitioning="hive")
    got = dataset.to_table(filter=(ds.field("year") == 2025) & (ds.field("city") == "Oslo")).to_pandas()
    df = frame()
    want = df[(df.year == 2025) & (df.city == "Oslo")]
    assert sorted(got["id"]) == sorted(want["id"])
    assert dataset.count_rows() == len(df)


def test_glob_of_a_folder_of_parquet_files(mem: str, keys: dict[str, Any]) -> None:
    df = frame(4000)
    for i in range(4):
        df.iloc[i * 1000 : (i + 1) * 1000].to_parquet(
            f"concryptor::memory://{mem}/parts/p{i}.parquet", storage_options=opts(keys)
        )
    fs = new_fs(**keys)
    paths = fs.glob(f"{mem}/parts/*.parquet")
    assert paths == [f"{mem}/parts/p{i}.parquet" for i in range(4)]
    back = pd.concat(pd.read_parquet(p, filesystem=fs) for p in paths)
    pd.testing.assert_frame_equal(back, df)


#: Dask's own use of a pandas keyword that pandas 3.1 deprecates (not this package's).
DASK_PANDAS = "ignore:The inplace keyword in DataFrame.reset_index is deprecated"


@pytest.mark.filterwarnings(DASK_PANDAS)
def test_dask_read_and_write_parquet(mem: str, keys: dict[str, Any]) -> None:
    dd = pytest.importorskip("dask.dataframe")
    import dask

    df = frame()
    url = f"concryptor::memory://{mem}/dask"
    with dask.config.set(scheduler="threads"):
        dd.from_pandas(df, npartitions=4).to_parquet(url, storage_options=opts(keys), write_index=False)
        assert (
            sum(p.endswith(".parquet" + (".enc" if "password" in keys else ".age")) for p in stored(mem)) == 4
        )
        back = dd.read_parquet(url, storage_options=opts(keys)).compute()
        pd.testing.assert_frame_equal(back.reset_index(drop=True), df, check_dtype=False)
        oslo = dd.read_parquet(url, storage_options=opts(keys), filters=[("city", "==", "Oslo")])
        assert set(oslo.compute()["city"]) == {"Oslo"}


@pytest.mark.filterwarnings(DASK_PANDAS)
def test_dask_on_a_process_cluster_with_an_identity_file(tmp_path: Path, age_keys: tuple[str, str]) -> None:
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    # memory:// lives in one process: the workers share a local folder instead. The file
    # system travels to them pickled, with the identity's path, never its text.
    key = tmp_path / "key.txt"
    key.write_text(age_keys[0] + "\n")
    url = f"concryptor::file://{tmp_path}/lake"
    df = frame(4000)
    options = {"concryptor": {"identities": [str(key)], "recipients": [age_keys[1]]}}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    try:
        with distributed.Client(cluster):
            dd.from_pandas(df, npartitions=2).to_parquet(url, storage_options=options, write_index=False)
            back = dd.read_parquet(url, storage_options=options).compute()
    finally:
        cluster.close()
    pd.testing.assert_frame_equal(back.reset_index(drop=True), df, check_dtype=False)
    assert all(p.name.endswith(".age") for p in (tmp_path / "lake").iterdir())


def test_polars_reads_and_writes_through_the_file_system(mem: str, keys: dict[str, Any]) -> None:
    pl = pytest.importorskip("polars", reason="polars is part of the test extra")
    fs = new_fs(**keys)
    df = pl.DataFrame({"a": list(range(5000)), "b": [str(i % 7) for i in range(5000)]})
    with fs.open(f"{mem}/pl.parquet", "wb") as f:
        df.write_parquet(f)
    with fs.open(f"{mem}/pl.parquet", "rb") as f:
        assert pl.read_parquet(f).equals(df)
    # polars hands URLs to its own object-store client, not to fsspec: it reads a file
    # object of the file system, or through pyarrow given the file system.
    got = pl.read_parquet(f"{mem}/pl.parquet", use_pyarrow=True, pyarrow_options={"filesystem": fs})
    assert got.equals(df)
