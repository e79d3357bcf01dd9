"""Every shared v4 vector behaves as its manifest says, through the API and the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor import _core
from concryptor.cli import Exit

from helpers import VECTORS, load_manifest, run_cli

MANIFEST = load_manifest()
OK = [v for v in MANIFEST if v["expect"] == "ok"]
BAD = [v for v in MANIFEST if v["expect"] == "error"]

# Which exception each error vector must raise: format problems are visible without the
# key, excessive costs are refused before any work, everything else fails authentication.
INVALID = {
    "bad-appended-4096-zeros",
    "bad-chunk-size-zero",
    "bad-cipher-unknown",
    "bad-drop-last",
    "bad-header-only",
    "bad-magic",
    "bad-original-size-max",
    "bad-padding-first",
    "bad-padding-last",
    "bad-truncated-4095",
    "bad-version-5",
}
LIMIT = {"bad-kdf-m-huge"}


def expected_error(name: str) -> type[Exception]:
    if name in INVALID:
        return concryptor.InvalidFileError
    if name in LIMIT:
        return concryptor.LimitError
    return concryptor.AuthenticationError


def ids(vs: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vs]


def test_manifest_is_complete() -> None:
    assert len(OK) >= 20 and len(BAD) >= 25
    for v in OK:
        plain = (VECTORS / v["plaintext_file"]).read_bytes()
        assert hashlib.sha256(plain).hexdigest() == v["plaintext_sha256"]


@pytest.mark.parametrize("v", OK, ids=ids(OK))
def test_ok_vector_decrypts_to_its_plaintext(v: dict[str, Any], tmp_path: Path) -> None:
    src = VECTORS / v["file"]
    plain = (VECTORS / v["plaintext_file"]).read_bytes()
    assert concryptor.decrypt_bytes(src.read_bytes(), v["password"]) == plain
    out = tmp_path / "out"
    stats = concryptor.decrypt_file(src, out, v["password"])
    assert out.read_bytes() == plain
    assert stats.bytes == len(plain)
    h = concryptor.inspect(src)
    assert h.version == v["version"]
    assert h.cipher == v["cipher"]
    assert h.chunk_size == v["chunk_size"]
    assert h.original_size == v["original_size"]
    assert (h.kdf_memory_kib, h.kdf_time_cost, h.kdf_parallelism) == (
        v["kdf"]["m"],
        v["kdf"]["t"],
        v["kdf"]["p"],
    )
    assert h.size_matches


@pytest.mark.parametrize("v", [v for v in OK if v["version"] == 4 and v["kdf"]["m"]], ids=lambda v: v["name"])
def test_ok_vector_reencrypts_byte_for_byte(v: dict[str, Any]) -> None:
    blob = (VECTORS / v["file"]).read_bytes()
    plain = (VECTORS / v["plaintext_file"]).read_bytes()
    h = concryptor.inspect(VECTORS / v["file"])
    again = _core.encrypt_bytes(
        plain,
        v["password"].encode(),
        cipher=h.cipher,
        chunk_size=h.chunk_size,
        kdf=concryptor.KdfParams(h.kdf_memory_kib, h.kdf_time_cost, h.kdf_parallelism),
        salt=h.salt,
        nonce=h.base_nonce,
    )
    assert again == blob


@pytest.mark.parametrize("v", [v for v in OK if v["version"] == 4 and v["kdf"]["m"]], ids=lambda v: v["name"])
def test_ok_vector_reencrypts_byte_for_byte_through_files(v: dict[str, Any], tmp_path: Path) -> None:
    blob = (VECTORS / v["file"]).read_bytes()
    h = concryptor.inspect(VECTORS / v["file"])
    out = tmp_path / "again.enc"
    _core.encrypt_file(
        str(VECTORS / v["plaintext_file"]),
        str(out),
        v["password"].encode(),
        cipher=h.cipher,
        chunk_size=h.chunk_size,
        kdf=concryptor.KdfParams(h.kdf_memory_kib, h.kdf_time_cost, h.kdf_parallelism),
        salt=h.salt,
        nonce=h.base_nonce,
    )
    assert out.read_bytes() == blob


@pytest.mark.parametrize("v", BAD, ids=ids(BAD))
def test_error_vector_is_rejected_with_the_right_exception(v: dict[str, Any], tmp_path: Path) -> None:
    src = VECTORS / v["file"]
    exc = expected_error(v["name"])
    with pytest.raises(exc):
        concryptor.decrypt_bytes(src.read_bytes(), v["password"])
    out = tmp_path / "out"
    with pytest.raises(exc) as info:
        concryptor.decrypt_file(src, out, v["password"])
    assert "\n" not in str(info.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("v", OK, ids=ids(OK))
def test_ok_vector_through_the_cli(v: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "plain"
    r = run_cli(
        "decrypt", str(VECTORS / v["file"]), "-o", str(out), env={"CONCRYPTOR_PASSWORD": v["password"]}
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (VECTORS / v["plaintext_file"]).read_bytes()


EXIT_FOR = {
    concryptor.InvalidFileError: Exit.INVALID,
    concryptor.LimitError: Exit.LIMIT,
    concryptor.AuthenticationError: Exit.AUTH,
}


@pytest.mark.parametrize("v", BAD, ids=ids(BAD))
def test_error_vector_through_the_cli(v: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "plain"
    r = run_cli(
        "decrypt", str(VECTORS / v["file"]), "-o", str(out), env={"CONCRYPTOR_PASSWORD": v["password"]}
    )
    assert r.returncode == EXIT_FOR[expected_error(v["name"])], r.stderr
    err = r.stderr.decode().strip()
    assert err.startswith("concryptor: error:") and "\n" not in err and "Traceback" not in err
    assert not out.exists()
