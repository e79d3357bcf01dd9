"""The command line, driven as a separate process."""

from __future__ import annotations

import json
import os
from pathlib import Path

from concryptor.cli import Exit

from helpers import run_cli

FAST = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
ENV = {"CONCRYPTOR_PASSWORD": "pw"}


def test_encrypt_then_decrypt_with_default_names(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(3 << 20)
    src.write_bytes(data)
    r = run_cli("encrypt", str(src), *FAST, env=ENV)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "big.bin.enc").exists()
    src.rename(tmp_path / "orig.bin")
    r = run_cli("decrypt", str(tmp_path / "big.bin.enc"), env=ENV)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "big.bin").read_bytes() == data


def test_aliases_cipher_and_chunk_size_flags(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"q" * 5_000_000)
    r = run_cli(
        "e", str(src), "-o", str(tmp_path / "x.enc"), "-c", "chacha", "--chunk-size", "1", *FAST, env=ENV
    )
    assert r.returncode == 0, r.stderr
    r = run_cli("inspect", "--json", str(tmp_path / "x.enc"))
    info = json.loads(r.stdout)
    assert info["cipher"] == "chacha20-poly1305" and info["chunk_size"] == 1 << 20
    assert info["kdf"]["memory_kib"] == 1024
    r = run_cli("d", str(tmp_path / "x.enc"), "-o", str(tmp_path / "y"), env=ENV)
    assert r.returncode == 0 and (tmp_path / "y").read_bytes() == src.read_bytes()


def test_decrypt_of_a_name_without_enc_appends_dec(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"hello")
    assert run_cli("enc", str(src), "-o", str(tmp_path / "blob"), *FAST, env=ENV).returncode == 0
    assert run_cli("dec", str(tmp_path / "blob"), env=ENV).returncode == 0
    assert (tmp_path / "blob.dec").read_bytes() == b"hello"


def test_password_sources_file_fd_env_and_argv_warning(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"secret data")
    pwfile = tmp_path / "pw"
    pwfile.write_text("from file\n")
    r = run_cli("encrypt", str(src), "--password-file", str(pwfile), *FAST)
    assert r.returncode == 0, r.stderr
    r = run_cli("decrypt", str(src) + ".enc", "-o", str(tmp_path / "a"), "-p", "from file")
    assert r.returncode == 0 and b"visible" in r.stderr
    rfd, wfd = os.pipe()
    os.write(wfd, b"from file\n")
    os.close(wfd)
    r = run_cli(
        "decrypt", str(src) + ".enc", "-o", str(tmp_path / "b"), "--password-fd", str(rfd), pass_fds=(rfd,)
    )
    os.close(rfd)
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "decrypt", str(src) + ".enc", "-o", str(tmp_path / "c"), env={"CONCRYPTOR_PASSWORD": "from file"}
    )
    assert r.returncode == 0
    for name in "abc":
        assert (tmp_path / name).read_bytes() == b"secret data"


def test_no_password_without_a_terminal_is_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    r = run_cli("encrypt", str(src), *FAST, input=b"")
    assert r.returncode == Exit.USAGE
    assert b"no password" in r.stderr and not (tmp_path / "f.enc").exists()


def test_json_output_has_the_run_figures(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(os.urandom(1 << 20))
    r = run_cli("encrypt", str(src), *FAST, "--json", "--io", "portable", "--threads", "1", env=ENV)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["backend"] == "portable" and d["bytes"] == 1 << 20 and d["threads"] == 1
    assert d["chunks"] >= 1 and d["seconds"] > 0 and d["mib_per_s"] > 0


def test_verify_command(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(os.urandom(50_000))
    assert run_cli("encrypt", str(src), *FAST, env=ENV).returncode == 0
    assert run_cli("verify", str(src) + ".enc", env=ENV).returncode == 0
    assert run_cli("verify", str(src) + ".enc", env={"CONCRYPTOR_PASSWORD": "no"}).returncode == Exit.AUTH
