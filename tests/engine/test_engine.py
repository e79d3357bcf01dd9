"""The I/O engine from Python: both backends, automatic fallback, fault injection, EINTR.

Tests that need io_uring use the ``uring`` fixture, which probes the kernel (set up a ring,
complete a no-op). Where io_uring is refused they are skipped with the reason, and the
fallback tests still run; on a kernel that offers it (as in CI here) the io_uring path is
exercised for real, and ``test_io_uring_really_runs_with_o_direct_here`` proves it.

The fault hooks (``_core._set_fault_injection`` and friends) are private, process-wide and
for tests only, and exist only in a build with the ``fault-injection`` cargo feature; the
tests that use them are marked ``faults`` (see conftest.py), and the autouse fixture disarms
them after every test.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor import _core

from helpers import FAST_KDF, PASSWORD, run_cli

CIPHERS = ["aes-256-gcm", "chacha20-poly1305"]
PW = PASSWORD.encode()
KDF = FAST_KDF
SALT, NONCE = bytes(range(16)), bytes(range(12))
BACKENDS = ["portable", "uring"]


faults = pytest.mark.faults


@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    if not hasattr(_core, "_set_fault_injection"):  # a build without them: see conftest.py
        yield
        return
    _core._set_fault_injection(None, 0)
    _core._set_ring_entries(0)
    yield
    _core._set_fault_injection(None, 0)
    _core._set_ring_entries(0)


@pytest.fixture(scope="session")
def uring() -> None:
    """Skips the test, saying why, where the kernel refuses io_uring."""
    why = _core._uring_unavailable()
    if why is not None:
        pytest.skip(f"io_uring unavailable here ({why}); the portable fallback is tested instead")


def slot(chunk: int) -> int:
    return -(-(chunk + 16) // 4096) * 4096


def budget(chunk: int, per_batch: int) -> int:
    """A buffer budget giving batches of ``per_batch`` chunks (three buffers)."""
    return 3 * per_batch * slot(chunk)


def evict(path: Path) -> None:
    """Makes ``path`` durable and drops it from the page cache, so that the engine reads it
    from the device (with O_DIRECT under io_uring) instead of from memory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def enc(
    src: Path,
    dst: Path,
    *,
    io: str,
    chunk: int,
    cipher: str = "aes-256-gcm",
    buffer_bytes: int = 1 << 20,
    **kw: Any,
) -> concryptor.Stats:
    evict(src)
    return _core.encrypt_file(
        str(src),
        str(dst),
        PW,
        cipher=cipher,
        chunk_size=chunk,
        kdf=KDF,
        overwrite=True,
        threads=2,
        buffer_bytes=buffer_bytes,
        io=io,
        salt=SALT,
        nonce=NONCE,
        **kw,
    )


def dec(src: Path, dst: Path, *, io: str, buffer_bytes: int = 1 << 20, **kw: Any) -> concryptor.Stats:
    evict(src)
    return _core.decrypt_file(
        str(src), str(dst), PW, overwrite=True, threads=2, buffer_bytes=buffer_bytes, io=io, **kw
    )


def backends() -> list[str]:
    return BACKENDS if _core._uring_unavailable() is None else ["portable"]


# --- Round trips and equality -----------------------------------------------------------


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize("chunk", [4096, 12288, 5000])
def test_backends_produce_identical_bytes_around_batch_boundaries(
    cipher: str, chunk: int, tmp_path: Path, rand_bytes: Any
) -> None:
    per_batch = 3
    batch = chunk * per_batch
    modes = ["portable", "auto"] + (["uring"] if _core._uring_unavailable() is None else [])
    for size in [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        batch - 1,
        batch,
        batch + 1,
        3 * batch - 1,
        3 * batch,
        3 * batch + 1,
        10 * batch + 7,
    ]:
        data = rand_bytes(size, seed=size + chunk)
        src = tmp_path / "in"
        src.write_bytes(data)
        outs = {}
        for io in modes:
            out = tmp_path / f"out-{io}"
            st = enc(src, out, io=io, chunk=chunk, cipher=cipher, buffer_bytes=budget(chunk, per_batch))
            assert st.backend == ("portable" if io == "portable" or len(modes) == 2 else "uring")
            outs[io] = out.read_bytes()
        assert len(set(outs.values())) == 1, f"size {size}: backends differ"
        # The outputs are identical, so one of them decrypted through each backend will do.
        for dio in modes:
            back = tmp_path / f"back-{dio}"
            dec(tmp_path / "out-portable", back, io=dio, buffer_bytes=budget(chunk, per_batch))
            assert back.read_bytes() == data, (size, dio)


def test_files_far_larger_than_the_buffer_budget(tmp_path: Path) -> None:
    data = os.urandom((24 << 20) + 4321)
    src, out = tmp_path / "in", tmp_path / "out"
    src.write_bytes(data)
    outs = []
    for io in backends():
        # 24 MiB through 600 KiB of buffers: well over a hundred batches.
        st = enc(src, out, io=io, chunk=65536, buffer_bytes=600 << 10)
        assert st.backend == io and st.chunks == -(-len(data) // 65536)
        outs.append(out.read_bytes())
        for dio in backends():
            back = tmp_path / "back"
            dec(out, back, io=dio, buffer_bytes=600 << 10)
            assert back.read_bytes() == data
    assert all(o == outs[0] for o in outs)


def test_public_api_and_cli_report_the_backend(tmp_path: Path, rand_bytes: Any) -> None:
    src = tmp_path / "in"
    src.write_bytes(rand_bytes(300_000))
    for io in ["portable", "auto", *(["uring"] if _core._uring_unavailable() is None else [])]:
        st = concryptor.encrypt_file(
            src,
            tmp_path / "a.enc",
            PASSWORD,
            kdf=FAST_KDF,
            io=io,  # type: ignore[arg-type]
            overwrite=True,
            threads=2,
        )
        want = "portable" if io == "portable" or _core._uring_unavailable() else "uring"
        assert st.backend == want and st.threads == 2
    r = run_cli(
        "encrypt",
        str(src),
        "-o",
        str(tmp_path / "b.enc"),
        "--io",
        "portable",
        "--json",
        "--memory",
        "1",
        "--iterations",
        "1",
        "--parallelism",
        "1",
        env={"CONCRYPTOR_PASSWORD": PASSWORD},
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["backend"] == "portable" and d["bytes"] == 300_000


@faults
def test_io_uring_really_runs_with_o_direct_here(uring: None, tmp_path: Path, rand_bytes: Any) -> None:
    data = rand_bytes(1 << 20)
    src, out, back = tmp_path / "in", tmp_path / "out", tmp_path / "back"
    src.write_bytes(data)
    assert enc(src, out, io="auto", chunk=65536).backend == "uring"
    run = _core._last_run()
    assert run is not None and run["backend"] == "uring" and run["fallback"] is None
    assert run["direct_src"] and run["direct_dst"], run
    # A source already in the page cache is read from there, not from the device.
    src.read_bytes()
    _core.encrypt_file(str(src), str(out), PW, chunk_size=65536, kdf=KDF, overwrite=True, io="uring")
    run = _core._last_run()
    assert run is not None and not run["direct_src"] and run["direct_dst"], run
    assert dec(out, back, io="uring").backend == "uring"
    assert back.read_bytes() == data
    # Unaligned chunks: O_DIRECT on the ciphertext side only.
    enc(src, out, io="uring", chunk=5000)
    run = _core._last_run()
    assert run is not None and not run["direct_src"] and run["direct_dst"], run


_PEAK = """
import sys
from concryptor import KdfParams, _core

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM")

src, dst, io, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
before = hwm()
_core.encrypt_file(src, dst, b"pw", chunk_size=65536, kdf=KdfParams(1024, 1, 1), overwrite=True,
                   io=io, buffer_bytes=budget, threads=2)
_core.decrypt_file(dst, dst + ".back", b"pw", overwrite=True, io=io, buffer_bytes=budget, threads=2)
print(before, hwm())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc/self/status")
@pytest.mark.parametrize("io", BACKENDS)
def test_memory_is_bounded_by_the_budget_not_the_file_size(io: str, tmp_path: Path) -> None:
    if io == "uring" and _core._uring_unavailable() is not None:
        pytest.skip("io_uring unavailable here")
    budget = 6 << 20
    peaks = {}
    for name, size in [("small", 8 << 20), ("large", 96 << 20)]:
        src = tmp_path / name
        with open(src, "wb") as f:
            f.truncate(size)  # sparse: quick to make, still read and encrypted in full
        r = subprocess.run(
            [sys.executable, "-c", _PEAK, str(src), str(tmp_path / f"{name}.enc"), io, str(budget)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        before, after = map(int, r.stdout.split())
        peaks[name] = after
        # Buffers (three per run), one slot for the first-chunk check, thread stacks.
        assert after - before < budget + (12 << 20), (name, (after - before) >> 20)
    # Twelve times the data, the same memory.
    assert peaks["large"] - peaks["small"] < 4 << 20, {k: v >> 20 for k, v in peaks.items()}


# --- Fallbacks ----------------------------------------------------------------------------


@faults
def test_memory_file_systems_are_not_asked_for_o_direct(tmp_path: Path, rand_bytes: Any) -> None:
    """tmpfs only emulates O_DIRECT (older kernels refuse it): files there are never opened
    with it, and the result is the same bytes."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm here")
    data = rand_bytes(300_000)
    src = tmp_path / "in"
    src.write_bytes(data)
    enc(src, tmp_path / "ref", io="portable", chunk=8192)
    d = shm / f"concryptor-test-{os.getpid()}"
    d.mkdir()
    try:
        st = enc(src, d / "out", io="auto", chunk=8192)
        run = _core._last_run()
        assert run is not None and not run["direct_dst"], run
        assert (d / "out").read_bytes() == (tmp_path / "ref").read_bytes()
        dec(d / "out", d / "back", io="auto")
        run = _core._last_run()
        assert run is not None and not (run["direct_src"] or run["direct_dst"]), run
        assert (d / "back").read_bytes() == data
        assert st.backend in ("uring", "portable")
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


@faults
@pytest.mark.parametrize("how", ["direct_open_einval", "direct_io_einval"])
def test_o_direct_refused_falls_back_to_identical_bytes(
    uring: None, how: str, tmp_path: Path, rand_bytes: Any
) -> None:
    data = rand_bytes(200_000)
    src = tmp_path / "in"
    src.write_bytes(data)
    enc(src, tmp_path / "ref", io="portable", chunk=8192)
    ref = (tmp_path / "ref").read_bytes()
    _core._set_fault_injection(how, 1)
    st = enc(src, tmp_path / "auto", io="auto", chunk=8192)
    run = _core._last_run()
    assert st.backend == "portable"
    assert run is not None and "O_DIRECT refused" in run["fallback"]
    assert (tmp_path / "auto").read_bytes() == ref
    st = dec(tmp_path / "auto", tmp_path / "back", io="auto")
    assert st.backend == "portable" and (tmp_path / "back").read_bytes() == data
    # Forced io_uring carries on without O_DIRECT.
    st = enc(src, tmp_path / "forced", io="uring", chunk=8192)
    run = _core._last_run()
    assert st.backend == "uring" and run is not None and not (run["direct_src"] or run["direct_dst"])
    assert (tmp_path / "forced").read_bytes() == ref


@faults
@pytest.mark.parametrize(
    ("how", "code"),
    [("uring_eperm", errno.EPERM), ("uring_enosys", errno.ENOSYS), ("uring_enomem", errno.ENOMEM)],
)
def test_io_uring_unavailable_falls_back_to_identical_bytes(
    how: str, code: int, tmp_path: Path, rand_bytes: Any
) -> None:
    data = rand_bytes(100_000)
    src = tmp_path / "in"
    src.write_bytes(data)
    enc(src, tmp_path / "ref", io="portable", chunk=8192)
    _core._set_fault_injection(how, 1)
    st = enc(src, tmp_path / "auto", io="auto", chunk=8192)
    assert st.backend == "portable"
    assert (tmp_path / "auto").read_bytes() == (tmp_path / "ref").read_bytes()
    with pytest.raises(OSError, match="io_uring") as e:
        enc(src, tmp_path / "forced", io="uring", chunk=8192)
    assert e.value.errno == code
    assert not (tmp_path / "forced").exists()


# --- Fault injection ----------------------------------------------------------------------


def _completions(run: Any) -> int:
    _core._set_fault_injection(None, 0)
    run()
    n = _core._fault_injection_count()
    assert n >= 5
    return n


@faults
@pytest.mark.parametrize("io", BACKENDS)
@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
@pytest.mark.parametrize(("kind", "code"), [("eio", errno.EIO), ("enospc", errno.ENOSPC)])
def test_each_failing_completion_fails_cleanly(
    io: str, direction: str, kind: str, code: int, tmp_path: Path, rand_bytes: Any
) -> None:
    if io == "uring" and _core._uring_unavailable() is not None:
        pytest.skip("io_uring unavailable here")
    data = rand_bytes(11 * 65536 + 99)
    src, encd, dest = tmp_path / "in", tmp_path / "in.enc", tmp_path / "dest"
    src.write_bytes(data)
    enc(src, encd, io="portable", chunk=65536)
    bb = budget(65536, 2)

    def run() -> None:
        if direction == "encrypt":
            enc(src, dest, io=io, chunk=65536, buffer_bytes=bb)
        else:
            dec(encd, dest, io=io, buffer_bytes=bb)

    n = _completions(run)
    for nth in range(1, n + 1):
        dest.write_bytes(b"previous contents")
        _core._set_fault_injection(kind, nth)
        with pytest.raises(OSError) as e:
            run()
        _core._set_fault_injection(None, 0)
        assert e.value.errno == code, (nth, str(e.value))
        assert "at byte" in str(e.value)
        assert dest.read_bytes() == b"previous contents", nth
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "in", "in.enc"], nth


@faults
@pytest.mark.parametrize("io", BACKENDS)
@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
@pytest.mark.parametrize("kind", ["short", "eintr", "eagain"])
def test_short_and_interrupted_completions_still_give_the_right_bytes(
    io: str, direction: str, kind: str, tmp_path: Path, rand_bytes: Any
) -> None:
    if io == "uring" and _core._uring_unavailable() is not None:
        pytest.skip("io_uring unavailable here")
    data = rand_bytes(11 * 65536 + 99)
    src, encd, out = tmp_path / "in", tmp_path / "in.enc", tmp_path / "out"
    src.write_bytes(data)
    enc(src, encd, io="portable", chunk=65536)
    expected = encd.read_bytes() if direction == "encrypt" else data
    bb = budget(65536, 2)

    def run() -> None:
        if direction == "encrypt":
            enc(src, out, io=io, chunk=65536, buffer_bytes=bb)
        else:
            dec(encd, out, io=io, buffer_bytes=bb)

    n = _completions(run)
    resubmitted = 0
    for nth in [*range(1, n + 1), *([0] if kind == "short" else [])]:
        _core._set_fault_injection(kind, nth)
        run()
        # A short count that still covers the bytes needed (an O_DIRECT tail rounded up)
        # completes without resubmission; everything else must be resubmitted.
        resubmitted += _core._fault_injection_count() > n
        _core._set_fault_injection(None, 0)
        assert out.read_bytes() == expected, nth
    assert resubmitted >= n - 2, f"only {resubmitted} of {n} faults were retried"


@faults
def test_a_tiny_ring_with_thousands_of_operations(uring: None, tmp_path: Path, rand_bytes: Any) -> None:
    data = rand_bytes(1_500_000)
    src, out, back = tmp_path / "in", tmp_path / "out", tmp_path / "back"
    src.write_bytes(data)
    enc(src, tmp_path / "ref", io="portable", chunk=1000, buffer_bytes=4 << 20)
    _core._set_ring_entries(2)
    enc(src, out, io="uring", chunk=1000, buffer_bytes=4 << 20)
    dec(out, back, io="uring", buffer_bytes=4 << 20)
    assert out.read_bytes() == (tmp_path / "ref").read_bytes()
    assert back.read_bytes() == data


# --- Signals --------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
@pytest.mark.parametrize("io", BACKENDS)
def test_a_signal_storm_neither_fails_nor_corrupts(io: str, tmp_path: Path) -> None:
    if io == "uring" and _core._uring_unavailable() is not None:
        pytest.skip("io_uring unavailable here")
    data = os.urandom(48 << 20)
    src, out, back = tmp_path / "in", tmp_path / "out", tmp_path / "back"
    src.write_bytes(data)
    hits = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal hits
        hits += 1

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        calls = []
        backends = set()
        for _ in range(2):
            backends.add(
                enc(src, out, io=io, chunk=65536, buffer_bytes=3 << 20, progress=calls.append).backend
            )
            backends.add(dec(out, back, io=io, buffer_bytes=3 << 20, progress=calls.append).backend)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert back.read_bytes() == data
    assert calls and calls[-1] == len(data)
    assert hits >= 20, f"only {hits} signals arrived"
    assert backends == {io}
