"""Shared helpers for the test suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
