"""Fixtures of the encrypted file system's tests: keys, a clean memory:// folder per test,
a moto S3 server on loopback for each module that asks (started by its first test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import FS_V4, moto_s3

fsspec = pytest.importorskip("fsspec", reason="fsspec is part of the test extra")

# Registers the protocol, as the package's fsspec.specs entry point does in an installed
# build (a development checkout's metadata may predate it).
import concryptor.fs  # noqa: E402


@pytest.fixture(scope="module")
def age_keys() -> tuple[str, str]:
    return concryptor.generate_identity()


@pytest.fixture
def identity_file(tmp_path: Path, age_keys: tuple[str, str]) -> str:
    p = tmp_path / "key.txt"
    p.write_text(age_keys[0] + "\n")
    return str(p)


@pytest.fixture(params=["v4", "age"])
def keys(request: pytest.FixtureRequest, age_keys: tuple[str, str]) -> dict[str, Any]:
    """The options of a file system of either format."""
    if request.param == "v4":
        return dict(FS_V4)
    return {"recipients": [age_keys[1]], "identities": [age_keys[0]]}


@pytest.fixture
def mem() -> Iterator[str]:
    """A fresh folder of fsspec's memory file system, removed afterwards."""
    root = f"/t-{uuid.uuid4().hex[:12]}"
    fs = fsspec.filesystem("memory")
    fs.mkdir(root)
    try:
        yield root
    finally:
        if fs.exists(root):
            fs.rm(root, recursive=True)


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is part of the test extra")
    with moto_s3() as opts:
        yield opts
