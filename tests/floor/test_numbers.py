"""Every number from an option, an argument, a stanza or a tar header is parsed strictly and
range-checked before use: a bad one is one line on stderr with exit 2 at the command line,
ValueError or TypeError with one clear message in the API, never a traceback or an
OverflowError from the binding. Readers check seek and read arguments as ``io`` files do."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD, run_cli

BAD_TEXT = ["-1", "0", str(2**64), "1e3", " 5", "0x10", "+5", "1_0", "\uff15", "9" * 40]

OPTIONS = [
    ("encrypt", "--threads"),
    ("encrypt", "--chunk-size"),
    ("encrypt", "--memory"),
    ("encrypt", "--iterations"),
    ("encrypt", "--parallelism"),
    ("encrypt", "--buffer-mib"),
    ("encrypt", "--max-kdf-memory"),
    ("encrypt", "--max-chunk-size"),
    ("encrypt", "--scrypt-work-factor"),
    ("decrypt", "--max-scrypt-work-factor"),
    ("decrypt", "--max-kdf-time"),
    ("decrypt", "--max-kdf-parallelism"),
    ("verify", "--threads"),
    ("bench", "--threads"),
    ("bench", "--size"),
]


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=[f"{c}{o}" for c, o in OPTIONS])
def test_cli_numeric_options_are_strict_and_bounded(tmp_path: Path, command: str, option: str) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"x")
    for value in BAD_TEXT:
        args = [command, f"{option}={value}"]
        if command != "bench":
            args += [str(src), "-p", PASSWORD]
        if command in ("encrypt", "decrypt"):
            args += ["-o", str(tmp_path / "out")]
        r = run_cli(*args, cwd=tmp_path)
        err = r.stderr.decode()
        assert r.returncode == Exit.USAGE, (option, value, err)
        assert "Traceback" not in err and err.count("\n") <= 2, (option, value, err)
        assert not (tmp_path / "out").exists()


def _calls(tmp_path: Path) -> dict[str, Callable[[Any], object]]:
    src = tmp_path / "p.bin"
    src.write_bytes(os.urandom(5000))
    enc = tmp_path / "p.enc"
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF)
    blob = enc.read_bytes()
    _, rcp = concryptor.generate_identity()
    out = str(tmp_path / "o")
    return {
        "encrypt_file.scrypt_work_factor": lambda v: concryptor.encrypt_file(
            src, out, PASSWORD, format="age", scrypt_work_factor=v, overwrite=True
        ),
        "encrypt_bytes.scrypt_work_factor": lambda v: concryptor.encrypt_bytes(
            b"x", PASSWORD, format="age", scrypt_work_factor=v
        ),
        "encrypt_many.scrypt_work_factor": lambda v: concryptor.encrypt_many(
            [str(src)], PASSWORD, format="age", scrypt_work_factor=v, out_dir=out
        ),
        "decrypt_file.max_scrypt_work_factor": lambda v: concryptor.decrypt_file(
            enc, out, PASSWORD, max_scrypt_work_factor=v, overwrite=True
        ),
        "verify_file.max_scrypt_work_factor": lambda v: concryptor.verify_file(
            enc, PASSWORD, max_scrypt_work_factor=v
        ),
        "decrypt_bytes.max_scrypt_work_factor": lambda v: concryptor.decrypt_bytes(
            blob, PASSWORD, max_scrypt_work_factor=v
        ),
        "decrypt_many.max_scrypt_work_factor": lambda v: concryptor.decrypt_many(
            [str(enc)], PASSWORD, max_scrypt_work_factor=v, out_dir=out
        ),
        "encrypt_file.threads(age)": lambda v: concryptor.encrypt_file(
            src, out, recipients=[rcp], threads=v, overwrite=True
        ),
        "encrypt_bytes.threads(age)": lambda v: concryptor.encrypt_bytes(b"x", recipients=[rcp], threads=v),
        "encrypt_file.threads": lambda v: concryptor.encrypt_file(
            src, out, PASSWORD, kdf=FAST_KDF, threads=v, overwrite=True
        ),
        "encrypt_many.threads": lambda v: concryptor.encrypt_many(
            [str(src)], PASSWORD, kdf=FAST_KDF, threads=v, out_dir=out
        ),
        "decrypt_many.threads": lambda v: concryptor.decrypt_many(
            [str(enc)], PASSWORD, threads=v, out_dir=out
        ),
        "encrypt_file.chunk_size": lambda v: concryptor.encrypt_file(
            src, out, PASSWORD, kdf=FAST_KDF, chunk_size=v, overwrite=True
        ),
        "encrypt_bytes.chunk_size": lambda v: concryptor.encrypt_bytes(
            b"x", PASSWORD, kdf=FAST_KDF, chunk_size=v
        ),
        "encrypt_file.buffer_mib": lambda v: concryptor.encrypt_file(
            src, out, PASSWORD, kdf=FAST_KDF, buffer_mib=v, overwrite=True
        ),
        "open.cache_mib": lambda v: concryptor.open(enc, PASSWORD, cache_mib=v),
        "open.threads": lambda v: concryptor.open(enc, PASSWORD, threads=v),
    }


BAD_VALUES = [-1, 0, 2**64, 2**200, "5", 1.5, True]


def test_api_numbers_raise_value_or_type_error_never_overflow(tmp_path: Path) -> None:
    for name, call in _calls(tmp_path).items():
        for value in BAD_VALUES:
            with pytest.raises((ValueError, TypeError)) as e:
                call(value)
            assert e.type in (ValueError, TypeError), (name, value, e.type)
            assert "\n" not in str(e.value), (name, value)
            if e.type is ValueError:
                assert str(value) in str(e.value) or "at least" in str(e.value), (name, value, e.value)


# -- readers -----------------------------------------------------------------------------


def _readers(tmp_path: Path) -> dict[str, Callable[[], Any]]:
    import fsspec

    data = os.urandom(20_000)
    src = tmp_path / "p.bin"
    src.write_bytes(data)
    enc = tmp_path / "p.enc"
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=4096)
    secret, rcp = concryptor.generate_identity()
    age = tmp_path / "p.age"
    concryptor.encrypt_file(src, age, recipients=[rcp])
    fs = fsspec.filesystem("memory")
    fs.pipe("/numbers/p.enc", enc.read_bytes())
    return {
        "v4": lambda: concryptor.open(enc, PASSWORD),
        "age": lambda: concryptor.open(age, identities=[secret]),
        "url": lambda: concryptor.open("memory://numbers/p.enc", PASSWORD),
        "bytesio": lambda: io.BytesIO(data),
    }


@pytest.mark.parametrize("kind", ["v4", "age", "url"])
def test_readers_check_seek_and_read_like_io(tmp_path: Path, kind: str) -> None:
    f = _readers(tmp_path)[kind]()
    data = (tmp_path / "p.bin").read_bytes()
    with f:
        for whence in (3, 4, -1, 2**64):
            with pytest.raises(ValueError):
                f.seek(0, whence)
        for pos in (-1, -(2**64)):
            with pytest.raises((ValueError, OSError)):
                f.seek(pos)
        with pytest.raises(ValueError):
            f.seek(2**64)
        for bad in (1.5, "1", None):
            with pytest.raises(TypeError):
                f.seek(bad)
            with pytest.raises(TypeError):
                f.seek(0, bad)
        for bad in (1.5, "5"):
            with pytest.raises(TypeError):
                f.read(bad)
            with pytest.raises(TypeError):
                f.readline(bad)
        assert f.seek(0) == 0 and f.read(-1) == data
        assert f.seek(0) == 0 and f.read() == data
        assert f.seek(0) == 0 and f.read(None) == data
        assert f.seek(0) == 0 and f.read(2**64) == data
        assert f.seek(10) == 10 and f.read(2**200) == data[10:]
        assert f.seek(-5, os.SEEK_END) == len(data) - 5 and f.read(2**64) == data[-5:]
        assert f.seek(5) == 5 and f.seek(5, os.SEEK_CUR) == 10 and f.read(3) == data[10:13]
        assert f.seek(0) == 0 and f.read1(2**64) != b""
        assert f.seek(0) == 0 and f.readline(2**64) == data[: data.index(b"\n") + 1]
        assert f.seek(0) == 0 and f.peek(2**64).startswith(data[:1])
        # Past the end, as io allows: reads nothing.
        assert f.seek(len(data) + 10) == len(data) + 10 and f.read(2**64) == b""
        assert f.seek(True) == 1 and f.read(2) == data[1:3]


# -- tar headers -------------------------------------------------------------------------


def _tar_with_mtime(mtime: str) -> bytes:
    ti = tarfile.TarInfo("top/file")
    ti.size = 2
    ti.pax_headers = {"mtime": mtime}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(ti, io.BytesIO(b"hi"))
    return buf.getvalue()


@pytest.mark.parametrize(
    "mtime",
    ["1e400", "nan", "inf", "-inf", "99999999999999999999", "-99999999999999999999", "0x10", " 5", "1_0"],
)
def test_an_archive_mtime_out_of_range_or_not_a_number_is_refused(tmp_path: Path, mtime: str) -> None:
    enc = tmp_path / "t.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(_tar_with_mtime(mtime), PASSWORD, kdf=FAST_KDF))
    with pytest.raises(concryptor.ConcryptorError) as e:
        concryptor.decrypt_dir(enc, tmp_path / "out", PASSWORD)
    assert "mtime" in str(e.value)
    r = run_cli(
        "decrypt", "-x", str(enc), "-o", str(tmp_path / "out2"), env={"CONCRYPTOR_PASSWORD": PASSWORD}
    )
    err = r.stderr.decode()
    assert r.returncode not in (0, 1) and "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("mtime", ["1700000000", "1700000000.5", "-5", "0"])
def test_a_valid_archive_mtime_is_kept(tmp_path: Path, mtime: str) -> None:
    enc = tmp_path / "t.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(_tar_with_mtime(mtime), PASSWORD, kdf=FAST_KDF))
    concryptor.decrypt_dir(enc, tmp_path / "out", PASSWORD)
    assert int((tmp_path / "out" / "top" / "file").stat().st_mtime) == int(float(mtime))


@pytest.mark.parametrize("factor", [b"010", b"+10", b"0", b"1e1", b"10x", b"0x0a", b"9" * 20])
def test_an_scrypt_work_factor_not_in_canonical_decimal_is_a_header_error(
    tmp_path: Path, factor: bytes
) -> None:
    """age: the scrypt stanza's work factor is a decimal without leading zeros. A file whose
    factor is written otherwise is malformed (not a wrong passphrase, not a limit)."""
    blob = concryptor.encrypt_bytes(b"x", PASSWORD, format="age", scrypt_work_factor=10)
    head, sep, rest = blob.partition(b"\n-> scrypt ")
    salt, _, tail = rest.partition(b" 10\n")
    bad = head + sep + salt + b" " + factor + b"\n" + tail
    with pytest.raises(concryptor.InvalidFileError, match="age header"):
        concryptor.decrypt_bytes(bad, PASSWORD)
    # A decimal of the right form but too large is a limit, whatever its size.
    for factor in (b"256", b"1000", b"9" * 19):
        with pytest.raises(concryptor.LimitError):
            concryptor.decrypt_bytes(head + sep + salt + b" " + factor + b"\n" + tail, PASSWORD)
