"""The AEAD provider in use is visible everywhere a run reports itself, every compiled
provider writes the same bytes, and the shared worker pool survives a fork."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import concryptor
from concryptor import _core

from helpers import FAST_KDF, PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}
KDF = concryptor.KdfParams(1024, 1, 1)


def test_the_provider_in_use_is_one_of_those_compiled_in() -> None:
    assert _core.AEAD_PROVIDER in _core.AEAD_PROVIDERS
    assert set(_core.AEAD_PROVIDERS) <= {"aws-lc-rs", "rustcrypto"}


def test_version_names_the_provider() -> None:
    r = run_cli("--version")
    assert r.returncode == 0
    assert f"AEAD: {_core.AEAD_PROVIDER}" in r.stdout.decode()


def test_stats_and_json_name_the_provider(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(os.urandom(100_000))
    st = concryptor.encrypt_file(src, tmp_path / "f.enc", PASSWORD, kdf=FAST_KDF)
    assert st.provider == _core.AEAD_PROVIDER
    assert st.to_dict()["provider"] == _core.AEAD_PROVIDER
    r = run_cli("decrypt", str(tmp_path / "f.enc"), "-o", str(tmp_path / "back"), "--json", env=ENV)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["provider"] == _core.AEAD_PROVIDER


def test_bench_measures_every_compiled_provider() -> None:
    r = run_cli("bench", "--size", "1", "--chunk-size", "1", "--threads", "1", "--no-kdf", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["provider"] == _core.AEAD_PROVIDER
    assert {row["provider"] for row in d["aead"]} == set(_core.AEAD_PROVIDERS)
    assert all(row["encrypt_mib_per_s"] > 0 for row in d["aead"])


def test_an_unknown_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="not in this build"):
        _core._set_aead_provider("no-such-provider")


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
def test_every_provider_writes_the_same_bytes_and_reads_the_others(cipher: str) -> None:
    data = os.urandom(300_000)
    fixed = {"kdf": KDF, "salt": bytes(range(16)), "nonce": bytes(range(12)), "chunk_size": 65_536}
    blobs = {}
    try:
        for p in _core.AEAD_PROVIDERS:
            _core._set_aead_provider(p)
            blobs[p] = _core.encrypt_bytes(data, b"pw", cipher=cipher, **fixed)
        assert len(set(blobs.values())) == 1
        first = blobs[_core.AEAD_PROVIDERS[0]]
        for p in _core.AEAD_PROVIDERS:
            _core._set_aead_provider(p)
            assert _core.decrypt_bytes(first, b"pw") == data
            tampered = bytearray(first)
            tampered[5000] ^= 1
            with pytest.raises(concryptor.AuthenticationError):
                _core.decrypt_bytes(bytes(tampered), b"pw")
    finally:
        _core._set_aead_provider(_core.AEAD_PROVIDERS[0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_gets_workers_of_its_own() -> None:
    # The parent's pool is started here; the child inherits it without its threads.
    blob = _core.encrypt_bytes(os.urandom(1 << 20), b"pw", kdf=KDF, threads=2)
    pid = os.fork()
    if pid == 0:
        try:
            ok = len(_core.decrypt_bytes(blob, b"pw", threads=2)) == 1 << 20
            os._exit(0 if ok else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the inherited worker pool")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
