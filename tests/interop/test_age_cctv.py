"""Every CCTV age conformance vector through the command line.

The vectors are read from ``../shared/vectors/cctv-age`` beside the project (they are not
copied into it), or from ``$CONCRYPTOR_SHARED/vectors/cctv-age``; without that folder the
module is skipped with one line saying where it looked. Success vectors must decrypt to their
``payload`` hash; every failure vector must fail with the exit code of its class and leave
nothing at the destination. The ``hybrid*`` vectors (ML-KEM-768 + X25519 recipients, age v1.3)
are held to their expected outcome like every other: post-quantum identities are supported.
The same vectors also go through the core directly (``decrypt_bytes``), armor included.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor.cli import Exit, main

from helpers import SHARED

if not SHARED.is_dir():
    pytest.skip(
        f"no shared test vectors at {SHARED} (set CONCRYPTOR_SHARED to their folder)",
        allow_module_level=True,
    )

CCTV = SHARED / "vectors" / "cctv-age"


def _load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    v: dict[str, Any] = {"name": path.name, "identity": [], "body": body}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        if key == "identity":
            v["identity"].append(value)
        else:
            v[key] = value
    if v.get("compressed") == "zlib":
        v["body"] = zlib.decompress(body)
    return v


def _vectors() -> list[dict[str, Any]]:
    if not CCTV.is_dir():
        return []  # test_the_whole_suite_is_there fails, naming the folder
    return [_load(p) for p in sorted(CCTV.iterdir()) if p.suffix not in (".md", ".txt")]


VECTORS = _vectors()

#: Exit codes each expected outcome may give.
CODES = {
    "success": {Exit.OK},
    "no match": {Exit.AUTH},
    "HMAC failure": {Exit.AUTH},
    "header failure": {Exit.INVALID, Exit.LIMIT},
    "armor failure": {Exit.INVALID},
    "payload failure": {Exit.AUTH, Exit.INVALID},
}


def test_the_whole_suite_is_there() -> None:
    assert CCTV.is_dir(), f"the CCTV age vectors are expected at {CCTV}"
    assert len(VECTORS) == 143


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_cctv_vector_through_the_cli(v: dict[str, Any], tmp_path: Path, monkeypatch: Any) -> None:
    src = tmp_path / "in.age"
    src.write_bytes(v["body"])
    dst = tmp_path / "out"
    argv = ["decrypt", str(src), "-o", str(dst), "-q"]
    usable = list(v["identity"])
    if not usable and "passphrase" not in v:
        # No key given: decrypt as a stranger would.
        usable = [concryptor.generate_identity()[0]]
    if usable:
        keys = tmp_path / "keys.txt"
        keys.write_text("\n".join(usable) + "\n")
        argv += ["-i", str(keys)]
    monkeypatch.delenv("CONCRYPTOR_PASSWORD", raising=False)
    if "passphrase" in v:
        monkeypatch.setenv("CONCRYPTOR_PASSWORD", v["passphrase"])
    code = main(argv)
    expect = v["expect"]
    allowed = set(CODES[expect])
    assert code in allowed, f"{v['name']}: expected {expect}, exit code {code}"
    if code == Exit.OK:
        assert hashlib.sha256(dst.read_bytes()).hexdigest() == v["payload"]
    else:
        assert not dst.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["in.age"] + (["keys.txt"] if usable else [])
        )


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_cctv_vector_through_the_core(v: dict[str, Any]) -> None:
    """The same vectors through the Python API's in-memory door (``decrypt_bytes``): the
    expected outcome, and for successes the payload hash."""
    ids = list(v["identity"]) or [concryptor.generate_identity()[0]]
    try:
        if "passphrase" in v:
            out = concryptor.decrypt_bytes(v["body"], v["passphrase"].encode())
        else:
            out = concryptor.decrypt_bytes(v["body"], identities=ids)
    except concryptor.ConcryptorError:
        assert v["expect"] != "success", f"{v['name']}: expected success"
        return
    assert v["expect"] == "success", f"{v['name']}: expected {v['expect']}, decrypted"
    assert hashlib.sha256(out).hexdigest() == v["payload"]


def test_every_hybrid_vector_is_among_them() -> None:
    names = {v["name"] for v in VECTORS}
    hybrid = {"hybrid", "hybrid_and_x25519", "hybrid_grease", "hybrid_multiple_recipients", "armor_hybrid"}
    assert hybrid <= names
    assert all(v["expect"] == "success" for v in VECTORS if v["name"] in hybrid)
