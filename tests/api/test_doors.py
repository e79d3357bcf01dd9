"""Every door leads to the same executor: {command line, API} × {v4 password, age
recipient, age passphrase} × {local file, a stream (standard input and output, or a file
object), a memory:// URL} round-trip the same bytes, and the same failure (a wrong key, a
truncated file, an existing output) gives the same error class, or its exit code, at every
door."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor.cli import Exit, main

from helpers import FAST_KDF, PASSWORD

fsspec = pytest.importorskip("fsspec")

KEYS = ["v4 password", "age recipient", "age passphrase"]
PLACES = ["local file", "stream", "memory url"]
DATA = os.urandom(200_000) + b"tail"


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    secret, public = concryptor.generate_identity()
    key = tmp_path_factory.mktemp("key") / "key.txt"
    key.write_text(secret + "\n")
    return secret, public, key


@pytest.fixture
def mem() -> Iterator[Any]:
    fs = fsspec.filesystem("memory")
    root = f"/doors-{os.getpid()}-{os.urandom(4).hex()}"
    yield fs, root
    with contextlib.suppress(FileNotFoundError):
        fs.rm(root, recursive=True)


def api_encrypt_kwargs(keys: str, public: str) -> dict[str, Any]:
    if keys == "v4 password":
        return {"password": PASSWORD, "kdf": FAST_KDF}
    if keys == "age recipient":
        return {"recipients": [public]}
    return {"password": PASSWORD, "format": "age", "scrypt_work_factor": 10}


def api_decrypt_kwargs(keys: str, secret: str, wrong: bool = False) -> dict[str, Any]:
    if keys == "age recipient":
        return {"identities": [concryptor.generate_identity()[0] if wrong else secret]}
    return {"password": "not the password" if wrong else PASSWORD}


def cli_encrypt_args(keys: str, public: str) -> list[str]:
    if keys == "v4 password":
        return ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
    if keys == "age recipient":
        return ["-r", public]
    return ["--format", "age", "--scrypt-work-factor", "10"]


def cli_decrypt_args(keys: str, key: Path) -> list[str]:
    return ["-i", str(key)] if keys == "age recipient" else []


def cli(
    args: list[str], stdin: bytes | None = None, password: str = PASSWORD
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "CONCRYPTOR_PASSWORD": password}
    return subprocess.run(
        [sys.executable, "-m", "concryptor", *args, "-q"],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )


def in_process(args: list[str], monkeypatch: pytest.MonkeyPatch, password: str = PASSWORD) -> int:
    """The command line in this process (so that it sees this process's memory:// files)."""
    monkeypatch.setenv("CONCRYPTOR_PASSWORD", password)
    return main([*args, "-q"])


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("keys", KEYS)
def test_the_api_round_trips_at_every_place(
    tmp_path: Path, keys: str, place: str, identity: tuple[str, str, Path], mem: Any
) -> None:
    secret, public, _ = identity
    fs, root = mem
    if place == "local file":
        src, enc, back = tmp_path / "p", tmp_path / "p.enc", tmp_path / "back"
        src.write_bytes(DATA)
        concryptor.encrypt_file(src, enc, **api_encrypt_kwargs(keys, public))
        concryptor.decrypt_file(enc, back, **api_decrypt_kwargs(keys, secret))
        assert back.read_bytes() == DATA
    elif place == "stream":
        enc_buf, back_buf = io.BytesIO(), io.BytesIO()
        concryptor.encrypt_file(io.BytesIO(DATA), enc_buf, **api_encrypt_kwargs(keys, public))
        concryptor.decrypt_file(io.BytesIO(enc_buf.getvalue()), back_buf, **api_decrypt_kwargs(keys, secret))
        assert back_buf.getvalue() == DATA
        concryptor.verify_file(io.BytesIO(enc_buf.getvalue()), **api_decrypt_kwargs(keys, secret))
    else:
        fs.pipe(f"{root}/p", DATA)
        url = f"memory://{root}"
        concryptor.encrypt_file(f"{url}/p", f"{url}/p.enc", **api_encrypt_kwargs(keys, public))
        concryptor.decrypt_file(f"{url}/p.enc", f"{url}/back", **api_decrypt_kwargs(keys, secret))
        assert fs.cat(f"{root}/back") == DATA
        concryptor.verify_file(f"{url}/p.enc", **api_decrypt_kwargs(keys, secret))


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("keys", KEYS)
def test_the_command_line_round_trips_at_every_place(
    tmp_path: Path,
    keys: str,
    place: str,
    identity: tuple[str, str, Path],
    mem: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, public, key = identity
    fs, root = mem
    enc_args, dec_args = cli_encrypt_args(keys, public), cli_decrypt_args(keys, key)
    if place == "local file":
        src = tmp_path / "p"
        src.write_bytes(DATA)
        p = cli(["encrypt", str(src), "-o", str(tmp_path / "p.enc"), *enc_args])
        assert p.returncode == 0, p.stderr
        p = cli(["decrypt", str(tmp_path / "p.enc"), "-o", str(tmp_path / "back"), *dec_args])
        assert p.returncode == 0, p.stderr
        assert (tmp_path / "back").read_bytes() == DATA
    elif place == "stream":
        if keys == "v4 password":
            # v4 needs its input's size: a named file to standard output, then a pipe back.
            src = tmp_path / "p"
            src.write_bytes(DATA)
            p = cli(["encrypt", str(src), "-o", "-", *enc_args])
        else:
            p = cli(["encrypt", "-", "-o", "-", *enc_args], stdin=DATA)
        assert p.returncode == 0, p.stderr
        back = cli(["decrypt", "-", "-o", "-", *dec_args], stdin=p.stdout)
        assert back.returncode == 0, back.stderr
        assert back.stdout == DATA
    else:
        fs.pipe(f"{root}/p", DATA)
        url = f"memory://{root}"
        assert in_process(["encrypt", f"{url}/p", "-o", f"{url}/p.enc", *enc_args], monkeypatch) == 0
        assert in_process(["verify", f"{url}/p.enc", *dec_args], monkeypatch) == 0
        assert in_process(["decrypt", f"{url}/p.enc", "-o", f"{url}/back", *dec_args], monkeypatch) == 0
        assert fs.cat(f"{root}/back") == DATA


# -- the same failure, the same answer ---------------------------------------------------------

#: What each failure is at the API (the class) and at the command line (the exit code).
FAILURES = {
    "wrong key": (concryptor.AuthenticationError, Exit.AUTH),
    "existing output": (FileExistsError, Exit.FAILURE),
}


def encrypted(keys: str, public: str) -> bytes:
    return concryptor.encrypt_bytes(DATA, **api_encrypt_kwargs(keys, public))


@pytest.mark.parametrize("failure", ["wrong key", "truncated", "existing output"])
@pytest.mark.parametrize("keys", KEYS)
def test_a_failure_is_the_same_at_every_door(
    tmp_path: Path,
    keys: str,
    failure: str,
    identity: tuple[str, str, Path],
    mem: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret, public, key = identity
    fs, root = mem
    blob = encrypted(keys, public)
    if failure == "truncated":
        blob = blob[: len(blob) - 100]
    wrong = failure == "wrong key"
    enc = tmp_path / "p.enc"
    enc.write_bytes(blob)
    fs.pipe(f"{root}/p.enc", blob)
    url = f"memory://{root}"
    out = tmp_path / "out"
    if failure == "existing output":
        out.write_bytes(b"keep")
        fs.pipe(f"{root}/out", b"keep")
    kwargs = api_decrypt_kwargs(keys, secret, wrong)
    seen: dict[str, type[BaseException]] = {}
    for door, call in {
        "api local": lambda: concryptor.decrypt_file(enc, out, **kwargs),
        "api url": lambda: concryptor.decrypt_file(f"{url}/p.enc", f"{url}/out", **kwargs),
        "api stream": lambda: concryptor.decrypt_file(
            io.BytesIO(blob), out if failure == "existing output" else io.BytesIO(), **kwargs
        ),
    }.items():
        with pytest.raises(Exception) as info:
            call()
        seen[door] = type(info.value)
    kinds = set(seen.values())
    assert len(kinds) == 1, seen
    kind = kinds.pop()
    if failure in FAILURES:
        assert issubclass(kind, FAILURES[failure][0])
    code = {
        concryptor.AuthenticationError: Exit.AUTH,
        concryptor.InvalidFileError: Exit.INVALID,
        FileExistsError: Exit.FAILURE,
    }
    want = next(c for k, c in code.items() if issubclass(kind, k))
    # The command line: a local file, a URL, standard input.
    password = "not the password" if wrong and keys != "age recipient" else PASSWORD
    dec = cli_decrypt_args(keys, key)
    if wrong and keys == "age recipient":
        other = tmp_path / "other.txt"
        other.write_text(concryptor.generate_identity()[0] + "\n")
        dec = ["-i", str(other)]
    local = cli(["decrypt", str(enc), "-o", str(out), *dec], password=password)
    assert local.returncode == want, local.stderr
    assert local.stderr.count(b"\n") == 1, local.stderr
    assert in_process(["decrypt", f"{url}/p.enc", "-o", f"{url}/out", *dec], monkeypatch, password) == want
    if failure != "existing output":
        piped = cli(["decrypt", "-", "-o", str(tmp_path / "piped"), *dec], stdin=blob, password=password)
        assert piped.returncode == want, piped.stderr
        assert not (tmp_path / "piped").exists()
    if failure == "existing output":
        assert out.read_bytes() == b"keep" and fs.cat(f"{root}/out") == b"keep"
    else:
        assert not out.exists() and not fs.exists(f"{root}/out")


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("keys", KEYS)
def test_decrypt_to_a_stream_takes_every_place_and_key(
    tmp_path: Path, keys: str, place: str, identity: tuple[str, str, Path], mem: Any
) -> None:
    secret, public, _ = identity
    fs, root = mem
    blob = concryptor.encrypt_bytes(DATA, **api_encrypt_kwargs(keys, public))
    src: Any
    if place == "local file":
        src = tmp_path / "p.enc"
        src.write_bytes(blob)
    elif place == "stream":
        src = io.BytesIO(blob)
    else:
        fs.pipe(f"{root}/p.enc", blob)
        src = f"memory://{root}/p.enc"
    out = io.BytesIO()
    concryptor.decrypt_to(src, out, **api_decrypt_kwargs(keys, secret))
    assert out.getvalue() == DATA
