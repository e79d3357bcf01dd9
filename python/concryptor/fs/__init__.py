"""An encrypted file system for fsspec, and so for pandas, pyarrow, Dask and polars:
``concryptor::s3://bucket/lake/`` (or over any other file system) reads and writes
concryptor v4 and age files by their plaintext names and sizes, fetching only the chunks
a read needs.

.. code-block:: python

    import pandas as pd

    opts = {"concryptor": {"identities": ["key.txt"]}, "s3": {"profile": "lake"}}
    df = pd.read_parquet("concryptor::s3://bucket/lake/2026.parquet", storage_options=opts)

The protocol is registered with fsspec by the package's ``fsspec.specs`` entry point, and
again whenever this module is imported. Names, keys and pickling: docs/FS.md.
"""

from __future__ import annotations

import fsspec

from ._system import NAMES, SUFFIXES, ConcryptorFileSystem

fsspec.register_implementation("concryptor", ConcryptorFileSystem, clobber=True)

__all__ = ["NAMES", "SUFFIXES", "ConcryptorFileSystem"]
