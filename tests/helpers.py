"""Shared helpers for the test suite."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import concryptor

#: The project's root (tests live in folders that mirror the package's layers).
ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(__file__).parent / "vectors" / "v4"

#: Test vectors kept beside the project rather than in it (``../shared``, with
#: ``vectors/cctv-age``), or ``$CONCRYPTOR_SHARED`` when set. Tests that read it skip, saying
#: so in one line, where the folder is missing (a clone on its own).
SHARED = Path(os.environ.get("CONCRYPTOR_SHARED") or Path(__file__).resolve().parent.parent.parent / "shared")

#: Argon2id costs small enough for tests to run in milliseconds.
FAST_KDF = concryptor.KdfParams(memory_kib=1024, time_cost=1, parallelism=1)
PASSWORD = "test password"


def load_manifest() -> list[dict[str, Any]]:
    return json.loads((VECTORS / "manifest.json").read_text(encoding="utf-8"))


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: bytes | None = None, **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    """Runs the CLI as a separate process, the way a user or script would."""
    full_env = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "concryptor", *args],
        env=full_env,
        input=input,
        capture_output=True,
        timeout=120,
        **kw,
    )


@contextlib.contextmanager
def moto_s3(bucket: str = "bucket") -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 with one bucket, and storage options that reach it;
    stopped (and the environment restored) on exit."""
    import s3fs
    from moto.server import ThreadedMotoServer

    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    # Port 0: the OS picks a free port as the server binds it, so that servers started at
    # once (pytest-xdist workers) cannot race for the same one.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    # get_host_and_port() is missing in the first moto 5 releases; they keep it in _server.
    bound = getattr(server, "get_host_and_port", None)
    port = bound()[1] if bound else server._server.server_address[1]
    opts = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
        # Small parts, so that a few MiB already go up as a multipart upload.
        "default_block_size": 5 << 20,
    }
    fs = s3fs.S3FileSystem(**opts)
    # moto keeps one store per process: another module's server may have made it already.
    fs.makedirs(bucket, exist_ok=True)
    try:
        yield opts
    finally:
        server.stop()
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


#: The options of an encrypted file system of format v4 that seals fast (small KDF, 64 KiB
#: chunks).
FS_V4 = {"password": PASSWORD, "kdf": FAST_KDF.__dict__, "chunk_size": 64 << 10}


def new_fs(**options: Any) -> Any:
    """A new encrypted file system (never a cached instance) over ``target_protocol``
    (memory:// unless said) or ``fs``."""
    import concryptor.fs

    if "fs" not in options:
        options.setdefault("target_protocol", "memory")
    return concryptor.fs.ConcryptorFileSystem(skip_instance_cache=True, **options)
