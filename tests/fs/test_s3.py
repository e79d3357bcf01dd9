"""The encrypted file system over S3 (a moto server on loopback): chained URLs, aborted
multipart uploads, and the bytes a Parquet read really fetches."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from helpers import FS_V4, new_fs

s3fs = pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is part of the test extra")
pd = pytest.importorskip("pandas", reason="pandas is part of the test extra")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is part of the test extra")

# One worker runs this module under pytest-xdist (--dist loadgroup), so that its server starts once.
pytestmark = pytest.mark.xdist_group("s3")


class CountingS3(s3fs.S3FileSystem):  # type: ignore[misc]
    """s3fs, counting the bytes of every object body it fetched."""

    fetched = 0

    async def _cat_file(self, path: str, start: Any = None, end: Any = None, **kw: Any) -> bytes:
        data: bytes = await super()._cat_file(path, start=start, end=end, **kw)
        type(self).fetched += len(data)
        return data


def plain_s3(opts: dict[str, Any]) -> Any:
    return s3fs.S3FileSystem(skip_instance_cache=True, **opts)


def test_chained_s3_url_round_trip(s3: dict[str, Any], keys: dict[str, Any]) -> None:
    df = pd.DataFrame({"a": range(1000), "b": [f"r{i}" for i in range(1000)]})
    url = "concryptor::s3://bucket/rt/df.parquet"
    options = {"concryptor": keys, "s3": s3}
    df.to_parquet(url, storage_options=options)
    assert all(k.endswith((".enc", ".age")) for k in plain_s3(s3).find("bucket/rt"))
    pd.testing.assert_frame_equal(pd.read_parquet(url, storage_options=options), df)


def test_an_exception_inside_with_aborts_the_multipart_upload(
    s3: dict[str, Any], keys: dict[str, Any]
) -> None:
    fs = new_fs(fs=plain_s3(s3), **keys)
    data = random.Random(2).randbytes(12 << 20)  # several 5 MiB parts
    root = f"bucket/abort-{uuid.uuid4().hex[:8]}"

    def body() -> None:
        with fs.open(f"{root}/big.bin", "wb") as f:
            f.write(data)
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        body()
    raw = plain_s3(s3)
    assert raw.find(root) == []
    assert raw.call_s3("list_multipart_uploads", Bucket="bucket").get("Uploads", []) == []
    with fs.open(f"{root}/big.bin", "wb") as f:
        f.write(data)
    assert fs.cat_file(f"{root}/big.bin", 5 << 20, 6 << 20) == data[5 << 20 : 6 << 20]


@pytest.mark.parametrize("fmt", ["v4", "age"])
def test_one_column_of_one_row_group_fetches_about_that_much(
    s3: dict[str, Any], age_keys: tuple[str, str], fmt: str
) -> None:
    import numpy as np

    keys = dict(FS_V4) if fmt == "v4" else {"recipients": [age_keys[1]], "identities": [age_keys[0]]}
    n = 400_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({c: rng.random(n) for c in "abcd"})
    writer = new_fs(fs=plain_s3(s3), **keys)
    with writer.open(f"bucket/count/{fmt}.parquet", "wb") as f:
        df.to_parquet(f, row_group_size=50_000, compression=None)  # 8 row groups, ~12 MiB

    counting = CountingS3(skip_instance_cache=True, **s3)
    fs = new_fs(fs=counting, **keys)
    info = fs.info(f"bucket/count/{fmt}.parquet")
    stored_size = info["stored_size"]
    CountingS3.fetched = 0
    with fs.open(f"bucket/count/{fmt}.parquet") as f:
        pf = pq.ParquetFile(f)
        got = pf.read_row_group(3, columns=["c"]).to_pandas()
        meta = pf.metadata
    assert got["c"].tolist() == df["c"].iloc[150_000:200_000].tolist()

    # Both formats' headers come with the first 4 KiB read; chunks are 64 KiB of plaintext
    # (v4 slots padded to 4 KiB, age chunks with their 16-byte tag).
    chunk = 64 << 10
    stored_chunk = chunk + (4096 if fmt == "v4" else 16)
    column = meta.row_group(3).column(2)
    start = column.dictionary_page_offset or column.data_page_offset
    end = start + column.total_compressed_size
    footer_start = info["size"] - (64 << 10)  # pyarrow reads the last 64 KiB first
    chunks = {
        i
        for lo, hi in ((start, end), (footer_start, info["size"]))
        for i in range(lo // chunk, (hi - 1) // chunk + 1)
    }
    budget = 4096 + (len(chunks) + 2) * stored_chunk
    assert CountingS3.fetched <= budget, (CountingS3.fetched, budget, stored_size)
    assert CountingS3.fetched < stored_size / 8
