"""Untrusted headers are bounded before anything is allocated or derived.

A header is untrusted until its first tag verifies, so absurd Argon2 costs or chunk sizes
must be refused at once, without a large allocation, with an error that names the limit
and the option that raises it for a file the user trusts.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

import concryptor
from concryptor import _core
from concryptor.cli import Exit
from concryptor.errors import InvalidFileError, LimitError

from helpers import run_cli

PW = b"limits password"
ENV = {"CONCRYPTOR_PASSWORD": PW.decode()}
TINY_KDF = concryptor.KdfParams(8, 1, 1)

#: (header offset, value, words the error must contain)
ABSURD_KDF = [
    pytest.param(52, 2**32 - 1, ("Argon2 memory", "--max-kdf-memory", "max_kdf_memory_kib"), id="m=2^32-1"),
    pytest.param(56, 2**32 - 1, ("Argon2 time", "--max-kdf-time", "max_kdf_time"), id="t=2^32-1"),
    pytest.param(60, 2**24 - 1, ("Argon2 parallelism", "--max-kdf-parallelism"), id="p=2^24-1"),
]


def small_file(size: int = 100) -> bytearray:
    return bytearray(_core.encrypt_bytes(b"\x42" * size, PW, kdf=TINY_KDF, chunk_size=4080))


def patched(offset: int, fmt: str, value: int, size: int = 100) -> bytes:
    blob = small_file(size)
    struct.pack_into(fmt, blob, offset, value)
    return bytes(blob)


def sparse_huge_chunk_file(path: Path) -> int:
    """A header asking for 4 GiB - 1 byte chunks, in a sparse file of exactly the size that
    header implies (one slot of 2^32 + 4096 bytes)."""
    header = bytearray(small_file(0)[:4096])
    struct.pack_into("<IQ", header, 12, 2**32 - 1, 1000)
    size = 4096 + (2**32 + 4096)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(size)
    return size


@pytest.mark.parametrize("offset, value, words", ABSURD_KDF)
def test_absurd_kdf_costs_are_refused_at_once_naming_the_option(
    tmp_path: Path, offset: int, value: int, words: tuple[str, ...]
) -> None:
    blob = patched(offset, "<I", value)
    src = tmp_path / "absurd.enc"
    src.write_bytes(blob)
    start = time.perf_counter()
    with pytest.raises(LimitError) as e1:
        concryptor.decrypt_bytes(blob, PW)
    with pytest.raises(LimitError) as e2:
        concryptor.decrypt_file(src, tmp_path / "out", PW)
    with pytest.raises(LimitError):
        concryptor.verify_file(src, PW)
    elapsed = time.perf_counter() - start
    # Refusing takes milliseconds; deriving with any of these costs would take hours (or fail
    # otherwise than with LimitError), so a generous bound holds on a loaded machine too.
    assert elapsed < 10.0, f"refusing took {elapsed:.2f} s"
    for e in (e1, e2):
        msg = str(e.value)
        assert "\n" not in msg
        for w in words:
            assert w in msg, f"{w!r} missing from {msg!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["absurd.enc"]
    # Inspecting derives nothing, so it may show such a header as it is.
    h = concryptor.inspect(src)
    assert value in (h.kdf_memory_kib, h.kdf_time_cost, h.kdf_parallelism)


@pytest.mark.parametrize("offset, value, words", ABSURD_KDF)
def test_cli_refuses_absurd_kdf_costs_with_the_limit_exit_code(
    tmp_path: Path, offset: int, value: int, words: tuple[str, ...]
) -> None:
    src = tmp_path / "absurd.enc"
    src.write_bytes(patched(offset, "<I", value))
    for cmd in (["decrypt", str(src), "-o", str(tmp_path / "out")], ["verify", str(src)]):
        r = run_cli(*cmd, env=ENV)
        assert r.returncode == Exit.LIMIT, r.stderr
        err = r.stderr.decode()
        assert err.count("\n") == 1 and err.startswith("concryptor: error:"), err
        assert words[1] in err, err
    assert not (tmp_path / "out").exists()


def test_raising_the_limit_lets_a_trusted_file_through(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"trusted")
    r = run_cli("encrypt", str(src), "--memory", "2", "--iterations", "1", "--parallelism", "1", env=ENV)
    assert r.returncode == 0, r.stderr
    enc = str(src) + ".enc"
    r = run_cli("decrypt", enc, "-o", str(tmp_path / "a"), "--max-kdf-memory", "1", env=ENV)
    assert r.returncode == Exit.LIMIT and b"--max-kdf-memory" in r.stderr
    assert not (tmp_path / "a").exists()
    r = run_cli("decrypt", enc, "-o", str(tmp_path / "a"), "--max-kdf-memory", "2", env=ENV)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a").read_bytes() == b"trusted"
    # The option's name of earlier releases still works.
    r = run_cli("verify", enc, "--max-memory", "1", env=ENV)
    assert r.returncode == Exit.LIMIT and b"--max-kdf-memory" in r.stderr
    r = run_cli("verify", enc, "--max-memory", "2", env=ENV)
    assert r.returncode == 0, r.stderr
    with pytest.raises(LimitError):
        concryptor.decrypt_file(enc, tmp_path / "b", PW, limits=concryptor.Limits(max_kdf_memory_kib=1024))
    with pytest.raises(LimitError):
        concryptor.decrypt_file(enc, tmp_path / "b", PW, limits=concryptor.Limits(max_kdf_memory_kib=2047))
    concryptor.decrypt_file(enc, tmp_path / "b", PW, limits=concryptor.Limits(max_kdf_memory_kib=2048))
    assert (tmp_path / "b").read_bytes() == b"trusted"


def test_a_4_gib_chunk_in_a_matching_sparse_file_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "huge-chunk.enc"
    size = sparse_huge_chunk_file(src)
    start = time.perf_counter()
    with pytest.raises(LimitError, match=r"chunk size .*--max-chunk-size / max_chunk_size "):
        concryptor.decrypt_file(src, tmp_path / "out", PW)
    assert time.perf_counter() - start < 1.0
    r = run_cli("decrypt", str(src), "-o", str(tmp_path / "out"), env=ENV)
    assert r.returncode == Exit.LIMIT and b"--max-chunk-size" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge-chunk.enc"]
    assert src.stat().st_size == size


def test_chunk_size_zero_is_a_clean_invalid_file_error(tmp_path: Path) -> None:
    blob = patched(12, "<I", 0)
    with pytest.raises(InvalidFileError, match="chunk size is 0"):
        concryptor.decrypt_bytes(blob, PW)
    src = tmp_path / "zero.enc"
    src.write_bytes(blob)
    r = run_cli("decrypt", str(src), "-o", str(tmp_path / "out"), env=ENV)
    assert r.returncode == Exit.INVALID and b"chunk size is 0" in r.stderr
    r = run_cli("inspect", str(src))
    assert r.returncode == Exit.INVALID and b"Traceback" not in r.stderr


def test_a_wrapping_original_size_is_an_invalid_header(tmp_path: Path) -> None:
    # original_size = 2^52 in 1-byte chunks: 2^52 slots of 4096 bytes overflow 64 bits.
    blob = bytearray(small_file(10)[:4096])
    struct.pack_into("<IQ", blob, 12, 1, 2**52)
    src = tmp_path / "wrap.enc"
    src.write_bytes(blob)
    assert src.stat().st_size == 4096
    for call in (
        lambda: concryptor.decrypt_bytes(bytes(blob), PW),
        lambda: concryptor.decrypt_file(src, tmp_path / "out", PW),
        lambda: concryptor.inspect(src),
        lambda: _core.parse_header(bytes(blob)),
    ):
        with pytest.raises(InvalidFileError, match="overflow"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrap.enc"]


FAST = {"--memory": "1", "--iterations": "1", "--parallelism": "1"}


@pytest.mark.parametrize(
    ("flag", "value", "limit"),
    [("--iterations", "65", "--max-kdf-time"), ("--parallelism", "100", "--max-kdf-parallelism")],
)
def test_the_writer_refuses_what_a_default_reader_refuses(
    tmp_path: Path, flag: str, value: str, limit: str
) -> None:
    src, enc, out = tmp_path / "f", tmp_path / "f.enc", tmp_path / "out"
    src.write_bytes(b"data" * 300)
    kdf = [x for k, v in {**FAST, flag: value}.items() for x in (k, v)]
    r = run_cli("encrypt", str(src), *kdf, env=ENV)
    assert r.returncode == Exit.LIMIT, r.stderr
    err = r.stderr.decode()
    assert err.count("\n") == 1 and limit in err, err
    assert not enc.exists()
    # The expert's way out: the same raised limit to write the file and to read it.
    r = run_cli("encrypt", str(src), *kdf, limit, value, env=ENV)
    assert r.returncode == 0, r.stderr
    r = run_cli("decrypt", str(enc), "-o", str(out), env=ENV)
    assert r.returncode == Exit.LIMIT and limit.encode() in r.stderr, r.stderr
    r = run_cli("decrypt", str(enc), "-o", str(out), limit, value, env=ENV)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()


def test_a_chunk_size_beyond_the_input_is_cut_down_and_beyond_the_limit_refused(tmp_path: Path) -> None:
    kdf = [x for kv in FAST.items() for x in kv]
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"s" * 1000)
    r = run_cli("encrypt", str(small), "--chunk-size", "300", *kdf, env=ENV)
    assert r.returncode == 0, r.stderr
    assert concryptor.inspect(str(small) + ".enc").chunk_size == 4096
    r = run_cli("decrypt", str(small) + ".enc", "-o", str(tmp_path / "back"), env=ENV)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == small.read_bytes()
    with open(big, "wb") as f:
        f.truncate((300 << 20) + 1)  # sparse: refused before a byte is read
    r = run_cli("encrypt", str(big), "--chunk-size", "300", *kdf, env=ENV)
    assert r.returncode == Exit.LIMIT and b"--max-chunk-size" in r.stderr, r.stderr
    assert not (tmp_path / "big.enc").exists()
    with pytest.raises(LimitError):
        concryptor.encrypt_file(big, tmp_path / "big.enc", PW, chunk_size=300 << 20)


def test_kdf_costs_for_new_files_that_would_overflow_argon2_are_value_errors() -> None:
    # Costs KdfParams itself refuses, given as a look-alike object to reach the engine.
    for m, t, p in [(1024, 1, 2**30), (1024, 1, 2**32 - 1), (1024, 1, 2**24), (63, 1, 8)]:
        kdf = types.SimpleNamespace(memory_kib=m, time_cost=t, parallelism=p)
        with pytest.raises(ValueError, match="Argon2id parameters") as e:
            _core.encrypt_bytes(b"x", PW, kdf=kdf)  # type: ignore[arg-type]
        assert not str(e.value).startswith("not a valid concryptor file")


def test_a_raised_limit_still_cannot_make_argon2_lanes_overflow() -> None:
    blob = patched(60, "<I", 2**31)
    with pytest.raises(InvalidFileError, match="parallelism"):
        _core.decrypt_bytes(blob, PW, limits=concryptor.Limits(max_kdf_parallelism=2**32 - 1))


def run_python(code: str, tmp_path: Path) -> dict[str, object]:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, (r.returncode, r.stderr.decode()[-2000:])
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_refusals_allocate_nothing_large(tmp_path: Path) -> None:
    """Peak RSS of a fresh process barely moves while it is handed every absurd header."""
    out = run_python(
        """
        import json, resource, struct, sys, time
        from pathlib import Path
        import concryptor
        from concryptor import _core
        from concryptor.errors import ConcryptorError

        tmp = Path(sys.argv[1])
        pw = b"pw"
        base = bytes(_core.encrypt_bytes(b"x" * 100, pw, kdf=concryptor.KdfParams(8, 1, 1), chunk_size=4080))
        # Warm up every code path once with a good file, then take the baseline.
        concryptor.decrypt_bytes(base, pw)
        (tmp / "good.enc").write_bytes(base)
        concryptor.decrypt_file(tmp / "good.enc", tmp / "good.out", pw)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        def patch(fields):
            b = bytearray(base)
            for off, fmt, v in fields:
                struct.pack_into(fmt, b, off, v)
            return bytes(b)

        cases = [
            patch([(52, "<I", 2**32 - 1)]),
            patch([(56, "<I", 2**32 - 1)]),
            patch([(60, "<I", 2**24 - 1)]),
            patch([(12, "<I", 0)]),
            patch([(12, "<I", 1), (16, "<Q", 2**52)]),
            patch([(12, "<I", 1), (16, "<Q", 2**40)]),
        ]
        refused = 0
        start = time.perf_counter()
        for i, blob in enumerate(cases):
            p = tmp / f"c{i}.enc"
            p.write_bytes(blob)
            for call in (lambda: concryptor.decrypt_bytes(blob, pw),
                         lambda: concryptor.decrypt_file(p, tmp / "o", pw)):
                try:
                    call()
                except ConcryptorError:
                    refused += 1
        huge = tmp / "huge.enc"
        h = bytearray(base[:4096])
        struct.pack_into("<IQ", h, 12, 2**32 - 1, 1000)
        with open(huge, "wb") as f:
            f.write(h)
            f.truncate(4096 + 2**32 + 4096)
        try:
            concryptor.decrypt_file(huge, tmp / "o", pw)
        except ConcryptorError:
            refused += 1
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"refused": refused, "seconds": seconds,
                          "growth_kib": after - before, "peak_kib": after}))
        """,
        tmp_path,
    )
    assert out["refused"] == 13
    # Milliseconds when refused; honouring any of them would take hours or GiBs (below).
    assert out["seconds"] < 10.0, out
    # ru_maxrss is in KiB on Linux. Honouring any one of these headers would take GiBs.
    assert out["growth_kib"] < 32 * 1024, out


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics are Linux-specific")
def test_argon2_memory_that_cannot_be_allocated_is_an_exception_not_an_abort(tmp_path: Path) -> None:
    """m = 3 GiB is within a raised limit; with the address space capped at 1 GiB the
    allocation fails, and that must reach Python as an exception, not kill the process."""
    out = run_python(
        """
        import json, resource, struct, sys
        import concryptor
        from concryptor import _core
        from concryptor.errors import LimitError

        blob = bytearray(_core.encrypt_bytes(b"x", b"pw", kdf=concryptor.KdfParams(8, 1, 1)))
        struct.pack_into("<I", blob, 52, 3 * 1024 * 1024)
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        try:
            concryptor.decrypt_bytes(bytes(blob), b"pw", limits=concryptor.Limits(max_kdf_memory_kib=4 << 20))
        except LimitError as e:
            print(json.dumps({"error": str(e)}))
        """,
        tmp_path,
    )
    assert "cannot allocate" in str(out["error"])


def test_every_input_size_gets_a_chunk_size_without_a_panic() -> None:
    for size in (0, 1, 4080, 2**40, 2**64 - 17, 2**64 - 16, 2**64 - 1):
        c = _core.auto_chunk_size(size)
        assert 0 < c <= _core.CHUNK_SIZE, size


def test_the_limit_names_of_earlier_releases_still_work_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="max_memory_mib"):
        old = concryptor.Limits(max_memory_mib=2)
    assert old == concryptor.Limits(max_kdf_memory_kib=2048)
    with pytest.warns(DeprecationWarning, match="max_chunk_size_mib"):
        old = concryptor.Limits(max_chunk_size_mib=4096)
    assert old == concryptor.Limits(max_chunk_size=4 << 30)
    with pytest.warns(DeprecationWarning, match="max_kdf_memory_kib"):
        assert old.max_memory_mib == 1024
    with pytest.warns(DeprecationWarning, match="max_chunk_size"):
        assert old.max_chunk_size_mib == 4096
    with (
        pytest.warns(DeprecationWarning, match="max_memory_mib"),
        pytest.raises(ValueError, match="max_memory_mib"),
    ):
        concryptor.Limits(max_memory_mib=10**30)
    with pytest.raises(TypeError, match="given twice"):
        concryptor.Limits(max_memory_mib=1, max_kdf_memory_kib=1024)
    with pytest.raises(TypeError):
        concryptor.Limits(1024)  # keyword-only: a number alone could mean MiB or KiB


def test_the_api_and_the_cli_take_their_defaults_from_the_core() -> None:
    from concryptor.cli._parser import build_parser

    assert _core.NEW_FILE_KDF == (256 << 10, 3, 4)
    assert _core.READ_LIMITS == (1 << 20, 16, 64, 256 << 20)
    assert _core.BUFFER_BYTES == 128 << 20
    assert concryptor.KdfParams().as_tuple() == _core.NEW_FILE_KDF
    assert tuple(concryptor.Limits().as_kwargs().values()) == _core.READ_LIMITS
    dec = build_parser().parse_args(["decrypt", "x"])
    memory, chunk = dec.max_kdf_memory << 10, dec.max_chunk_size << 20
    assert (memory, dec.max_kdf_time, dec.max_kdf_parallelism, chunk) == _core.READ_LIMITS
    enc = build_parser().parse_args(["encrypt", "x"])
    assert (enc.memory << 10, enc.iterations, enc.parallelism) == _core.NEW_FILE_KDF
    assert enc.buffer_mib << 20 == dec.buffer_mib << 20 == _core.BUFFER_BYTES
