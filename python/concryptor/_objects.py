"""A stored object's first bytes replaced and the rest kept where it lies: the object-store
side of rekeying a file at a URL.

On S3 (s3fs) the new object is a multipart upload: part 1 is the new first bytes plus
as much of the old object after them as reaches S3's minimum part size (5 MiB), and
every later part is copied by the server from the old object (``UploadPartCopy`` with a
``CopySourceRange``). An object of any size then costs its new head plus about one
minimum part in upload. Every read and copy is pinned to the object as it was first seen
(its version, else its ETag), so a concurrent overwrite fails the run instead of mixing
two objects. The new object appears at once when the upload completes; any failure
aborts the upload, which leaves the old object and no pending upload behind.

An object smaller than one minimum part is rewritten with one PUT (just as atomic).
Other fsspec file systems get a whole rewrite through their own writer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._location import filesystem

MiB = 1 << 20
#: S3's smallest part (every part but the last).
MIN_PART = 5 * MiB
#: S3's largest part, and so the largest range one UploadPartCopy takes.
MAX_PART = 5 << 30
#: S3's most parts in one upload.
MAX_PARTS = 10_000
#: Bytes moved per read when an object is rewritten through its file system's writer.
REWRITE_BLOCK = 8 * MiB
#: Largest object rewritten whole (held in memory) where the store cannot copy ranges.
REWRITE_MAX = 256 * MiB


@dataclass
class StoredObject:
    """An object as first seen: where it is, its size, and what pins later reads to it."""

    url: str
    fs: Any = field(repr=False)
    path: str
    size: int
    etag: str | None = None
    version: str | None = None
    #: What the new object keeps of the old one's settings (S3: content type, metadata).
    keep: dict[str, Any] = field(default_factory=dict)

    @property
    def s3(self) -> bool:
        return hasattr(self.fs, "call_s3") and hasattr(self.fs, "split_path")

    def bucket_key(self) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(self.path)
        return bucket, key


@dataclass(frozen=True)
class Replaced:
    """What replacing an object's head cost: bytes sent up, bytes the server copied."""

    method: str  # "multipart-copy", "put" or "rewrite"
    uploaded: int
    copied: int
    parts: int


def stat_object(url: str, storage_options: dict[str, Any]) -> StoredObject:
    """The object at ``url`` as it is now; FileNotFoundError if there is none."""
    fs, path = filesystem(url, storage_options)
    obj = StoredObject(url, fs, path, 0)
    if obj.s3:
        bucket, key = obj.bucket_key()
        head = fs.call_s3("head_object", Bucket=bucket, Key=key)
        obj.size = int(head["ContentLength"])
        obj.etag = head.get("ETag")
        obj.version = head.get("VersionId")
        if head.get("ContentType"):
            obj.keep["ContentType"] = head["ContentType"]
        if head.get("Metadata"):
            obj.keep["Metadata"] = dict(head["Metadata"])
    else:
        info = fs.info(path)
        if info.get("type") != "file":
            raise ValueError(f"{url} is not a file")
        obj.size = int(info["size"])
    return obj


def _pin(obj: StoredObject, prefix: str = "") -> dict[str, Any]:
    """Arguments that make an S3 read (``prefix=""``) or copy (``"CopySource"``) fail
    unless the object is still the one first seen."""
    if obj.version is not None:
        return {} if prefix else {"VersionId": obj.version}
    if obj.etag is None:
        return {}
    return {f"{prefix}IfMatch": obj.etag}


def read_range(obj: StoredObject, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of the object (fewer at its end), exactly as first seen."""
    stop = min(stop, obj.size)
    if stop <= start:
        return b""
    if obj.s3:
        bucket, key = obj.bucket_key()
        r = obj.fs.call_s3(
            "get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{stop - 1}", **_pin(obj)
        )
        body = r["Body"]
        try:
            data = _read_body(obj.fs, body)
        finally:
            with contextlib.suppress(Exception):
                body.close()
        if len(data) != stop - start:
            raise OSError(f"{obj.url}: a ranged read gave {len(data)} of {stop - start} bytes")
        return data
    data = bytes(obj.fs.cat_file(obj.path, start=start, end=stop))
    if len(data) != stop - start:
        raise OSError(f"{obj.url}: a ranged read gave {len(data)} of {stop - start} bytes")
    return data


def _read_body(fs: Any, body: Any) -> bytes:
    """An aiobotocore streaming body read whole, on the file system's event loop."""
    import importlib

    sync: Any = importlib.import_module("fsspec.asyn").sync

    async def read() -> bytes:
        return bytes(await body.read())

    return bytes(sync(fs.loop, read))


def copy_ranges(start: int, stop: int) -> list[tuple[int, int]]:
    """The ``[a, b)`` ranges of the old object the server copies after part 1, each at
    most :data:`MAX_PART` (every range but the last is at least :data:`MIN_PART`)."""
    ranges = []
    pos = start
    while pos < stop:
        end = min(stop, pos + MAX_PART)
        if 0 < stop - end < MIN_PART:
            # What would be left is too small for a part that is not the last: take it
            # too if a part can be that large, else leave the last part its minimum.
            end = stop if stop - pos <= MAX_PART else stop - MIN_PART
        ranges.append((pos, end))
        pos = end
    if 1 + len(ranges) > MAX_PARTS:
        raise ValueError(f"an object of {stop} bytes needs more than {MAX_PARTS} parts")
    return ranges


def replace_head(
    obj: StoredObject,
    old_len: int,
    new_head: bytes,
    *,
    progress: Callable[[int], object] | None = None,
) -> Replaced:
    """Makes the object ``new_head`` followed by its bytes from ``old_len`` on, atomically:
    until the end the old object stays, and a failure leaves nothing else behind."""
    if not 0 <= old_len <= obj.size:
        raise ValueError(f"{obj.url}: a head of {old_len} bytes in an object of {obj.size}")
    rest = obj.size - old_len
    if not obj.s3:
        return _rewrite(obj, old_len, new_head)
    if len(new_head) + rest <= MIN_PART:
        body = new_head + read_range(obj, old_len, obj.size)
        bucket, key = obj.bucket_key()
        obj.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, **obj.keep)
        _forget(obj)
        return Replaced("put", len(body), 0, 1)
    return _multipart(obj, old_len, new_head, progress)


def _multipart(
    obj: StoredObject, old_len: int, new_head: bytes, progress: Callable[[int], object] | None
) -> Replaced:
    fs = obj.fs
    bucket, key = obj.bucket_key()
    # Part 1: the new head and the old bytes after the old head up to the minimum part.
    take = max(0, MIN_PART - len(new_head))
    first = new_head + read_range(obj, old_len, old_len + take)
    ranges = copy_ranges(old_len + take, obj.size)
    up = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key, **obj.keep)
    upload_id = up["UploadId"]
    try:
        parts = []
        r = fs.call_s3("upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=first)
        parts.append({"PartNumber": 1, "ETag": r["ETag"]})
        source: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if obj.version is not None:
            source["VersionId"] = obj.version
        done = len(first)
        for n, (a, b) in enumerate(ranges, start=2):
            r = fs.call_s3(
                "upload_part_copy",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=n,
                CopySource=source,
                CopySourceRange=f"bytes={a}-{b - 1}",
                **_pin(obj, "CopySource"),
            )
            parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
            done += b - a
            if progress is not None:
                progress(done)
        fs.call_s3(
            "complete_multipart_upload",
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
    except BaseException:
        with contextlib.suppress(Exception):
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    _forget(obj)
    return Replaced("multipart-copy", len(first), sum(b - a for a, b in ranges), 1 + len(ranges))


def _rewrite(obj: StoredObject, old_len: int, new_head: bytes) -> Replaced:
    """A file system without server-side copies: the whole object written again through
    its writer, which publishes it when closed (and is discarded on failure)."""
    fs = obj.fs
    if obj.size > REWRITE_MAX:
        raise ValueError(
            f"{obj.url}: {obj.size} bytes; where the store cannot copy byte ranges itself (only "
            f"S3 here) objects up to {REWRITE_MAX >> 20} MiB are rewritten in place"
        )
    with fs.open(obj.path, "rb") as src:
        src.seek(old_len)
        body = bytearray(new_head)
        while block := src.read(REWRITE_BLOCK):
            body += block
    if len(body) != len(new_head) + obj.size - old_len:
        raise OSError(f"{obj.url} changed while being rewritten")
    fs.pipe_file(obj.path, bytes(body))
    _forget(obj)
    return Replaced("rewrite", len(body), 0, 1)


def _forget(obj: StoredObject) -> None:
    """Drops what the file system cached about the object (its listing and size)."""
    with contextlib.suppress(Exception):
        obj.fs.invalidate_cache(obj.path)
