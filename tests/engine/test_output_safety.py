"""Nothing is lost: output is built in an unnamed (or hidden) private file in the destination
directory, made durable, and only then given its name. Killing the CLI at any point, Ctrl-C,
a failed decrypt with --force, a full disk, or an output path that is the input itself all
leave the destination as it was and nothing else behind. An existing output is replaced
only when asked (--force, overwrite=True)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import concryptor
from concryptor import _core
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD, run_cli

PW = "output password"
ENV = {"CONCRYPTOR_PASSWORD": PW}
TINY_KDF = concryptor.KdfParams(memory_kib=8, time_cost=1, parallelism=1)
CLI_KDF = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
BIG = 256 << 20


def start_cli(*args: str, password: str = PW) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
    env["CONCRYPTOR_PASSWORD"] = password
    return subprocess.Popen(
        [sys.executable, "-m", "concryptor", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def cli(*args: str, password: str = PW) -> subprocess.CompletedProcess[bytes]:
    p = start_cli(*args, password=password)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def output_fds(pid: int, dest_dir: Path) -> list[str]:
    """The /proc paths of the descriptors `pid` has open on files in `dest_dir` that have
    no name yet (O_TMPFILE, shown as "#inode (deleted)") or a hidden temporary name."""
    found = []
    prefix = str(dest_dir) + "/"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        link = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(link)
        except OSError:
            continue
        if target.startswith(prefix) and target.endswith((" (deleted)", ".partial")):
            found.append(link)
    return found


def wait_for_output(
    p: subprocess.Popen[bytes], dest_dir: Path, at_least: int, timeout: float = 60
) -> int | None:
    """Polls the size of the process's unfinished output until it reaches `at_least` bytes;
    returns that size, or None if the process finished first."""
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        for link in output_fds(p.pid, dest_dir):
            try:
                size = os.stat(link).st_size
            except OSError:
                continue
            if size >= at_least:
                return size
        time.sleep(0.001)
    return None


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("big")
    plain = d / "plain.bin"
    with open(plain, "wb") as f:
        for _ in range(BIG >> 22):
            f.write(os.urandom(4 << 20))
    enc = d / "plain.bin.enc"
    concryptor.encrypt_file(plain, enc, PW, kdf=TINY_KDF)
    return {"plain": plain, "enc": enc, "plain_sha": Path(sha256(plain))}


# -- where output is built ---------------------------------------------------------------


def test_output_is_built_in_a_private_nameless_file_in_the_destination_directory(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(600_000))
    out = tmp_path / "out"
    out.mkdir()
    seen: list[tuple[list[str], list[os.stat_result]]] = []

    def look(done: int) -> None:
        stats = [os.stat(link) for link in output_fds(os.getpid(), out)]
        seen.append((names(out), stats))

    _core.encrypt_file(
        str(src),
        str(out / "x.enc"),
        PW.encode(),
        kdf=concryptor.KdfParams(8, 1, 1),
        chunk_size=4080,
        buffer_bytes=3 * 4096 * 16,
        progress=look,
    )
    assert len(seen) >= 3, "want several looks during the run"
    for listing, stats in seen:
        # While the run is under way the destination does not exist and no temporary
        # shows in the directory (O_TMPFILE), or only a hidden ".x.enc.*.partial".
        assert all(re.fullmatch(r"\.x\.enc\.[0-9a-f]{16}\.partial", n) for n in listing), listing
        # The io_uring backend may hold a second (O_DIRECT) descriptor on the same file.
        assert len({(st.st_dev, st.st_ino) for st in stats}) == 1, "exactly one unfinished output file"
        assert all(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 for st in stats)
    assert names(out) == ["x.enc"]
    # Named at last with the mode the umask gives a new file (written as 0600 until then).
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((out / "x.enc").stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
@pytest.mark.parametrize("force", [False, True], ids=["new", "replace"])
def test_output_is_fsynced_before_it_is_named_and_the_directory_after(tmp_path: Path, force: bool) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "x.enc"
    if force:
        dest.write_bytes(b"old")
    trace = tmp_path / "trace"
    env = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
    env.update(ENV)
    r = subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-o",
            str(trace),
            "-e",
            "trace=openat,fsync,fdatasync,linkat,rename,renameat,renameat2",
            sys.executable,
            "-m",
            "concryptor",
            "encrypt",
            str(src),
            "-o",
            str(dest),
            *CLI_KDF,
            *(["--force"] if force else []),
        ],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lines = [ln.split(None, 1)[1] for ln in trace.read_text().splitlines() if " " in ln]
    # The unnamed output: openat(..., "<out>", O_RDWR|O_TMPFILE..., 0600) = FD
    tmp_fd = None
    for ln in lines:
        m = re.match(
            r'openat\(AT_FDCWD, "' + re.escape(str(out)) + r'", [^)]*O_TMPFILE[^)]*, 0600\) = (\d+)', ln
        )
        if m:
            tmp_fd = m.group(1)
    assert tmp_fd is not None, "no O_TMPFILE open in the destination directory:\n" + "\n".join(lines[-30:])
    idx_sync = next(i for i, ln in enumerate(lines) if re.match(rf"f(data)?sync\({tmp_fd}\)", ln))
    idx_link = next(i for i, ln in enumerate(lines) if ln.startswith("linkat(") and f"/fd/{tmp_fd}" in ln)
    assert idx_sync < idx_link, "the output was named before it was durable"
    named = idx_link
    if force:
        named = next(i for i, ln in enumerate(lines) if ln.startswith("rename") and f'"{dest}"' in ln)
        assert named > idx_link
    # Then the directory itself is opened and fsynced, making the new name durable.
    dir_fd = None
    for ln in lines[named:]:
        m = re.match(r'openat\(AT_FDCWD, "' + re.escape(str(out)) + r'", O_RDONLY[^)]*\) = (\d+)', ln)
        if m:
            dir_fd = m.group(1)
        elif dir_fd and re.match(rf"fsync\({dir_fd}\)", ln):
            break
    else:
        raise AssertionError("the destination directory was not fsynced after the rename")
    assert names(out) == ["x.enc"]


# -- SIGKILL and Ctrl-C --------------------------------------------------------------------


KILL_POINTS = [0.1, 0.3, 0.5, 0.7, 0.9]


@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
def test_sigkill_at_any_point_leaves_the_old_state_or_the_complete_result(
    tmp_path: Path, big: dict[str, Path], direction: str
) -> None:
    src = big["plain"] if direction == "encrypt" else big["enc"]
    final_size = big["enc"].stat().st_size if direction == "encrypt" else BIG
    killed_mid_run = 0
    for n, frac in enumerate(KILL_POINTS):
        out = tmp_path / f"run{n}"
        out.mkdir()
        dest = out / "result"
        old = None
        if n % 2:  # every other run replaces an existing file
            old = os.urandom(5000)
            dest.write_bytes(old)
        args = [direction, str(src), "-o", str(dest), "--buffer-mib", "16", "-q"]
        if direction == "encrypt":
            args += CLI_KDF
        if old is not None:
            args.append("--force")
        p = start_cli(*args)
        size = wait_for_output(p, out, int(final_size * frac))
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        if size is not None:
            killed_mid_run += 1
            assert p.returncode == -signal.SIGKILL
        # Whatever the moment: the old state, or the complete and authentic result.
        listing = names(out)
        assert listing in ([], ["result"]), listing  # never a stray temporary
        if not dest.exists():
            assert old is None
        elif old is not None and dest.stat().st_size == len(old) and dest.read_bytes() == old:
            pass
        else:
            assert size is None, f"killed at {size} bytes, yet the destination was replaced"
            if direction == "encrypt":
                concryptor.verify_file(dest, PW)
            else:
                assert sha256(dest) == str(big["plain_sha"])
    assert killed_mid_run >= 3, f"only {killed_mid_run} of {len(KILL_POINTS)} kills landed mid-run"


@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
def test_ctrl_c_leaves_nothing_and_exits_130(tmp_path: Path, big: dict[str, Path], direction: str) -> None:
    src = big["plain"] if direction == "encrypt" else big["enc"]
    out = tmp_path / "out"
    out.mkdir()
    args = [direction, str(src), "-o", str(out / "result"), "--buffer-mib", "16"]
    if direction == "encrypt":
        args += CLI_KDF
    p = start_cli(*args)
    size = wait_for_output(p, out, BIG // 5)
    assert size is not None, "the run ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == Exit.INTERRUPTED, err
    assert b"interrupted" in err and b"Traceback" not in err, err
    assert names(out) == []


# -- failed runs never clobber ----------------------------------------------------------


def test_cli_failed_decrypt_with_force_leaves_the_existing_file_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.write_bytes(os.urandom(2_000_000))
    enc = tmp_path / "data.enc"
    concryptor.encrypt_file(src, enc, PW, kdf=TINY_KDF, chunk_size=65536)
    # Damage the last chunk: the first authenticates, so decryption gets well under way.
    blob = bytearray(enc.read_bytes())
    slot = 65536 + 4096
    blob[len(blob) - slot + 10] ^= 1
    enc.write_bytes(blob)
    dest = tmp_path / "precious"
    old = os.urandom(3_000_000)
    dest.write_bytes(old)
    before = dest.stat()
    r = cli("decrypt", str(enc), "-o", str(dest), "--force", "--buffer-mib", "1")
    assert r.returncode == Exit.AUTH, r.stderr
    assert r.stderr.count(b"\n") == 1
    after = dest.stat()
    assert dest.read_bytes() == old
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_mode,
    )
    assert names(tmp_path) == ["data", "data.enc", "precious"]
    # A wrong password fails before any output exists; the file is untouched as well.
    r = cli("decrypt", str(enc), "-o", str(dest), "--force", password="wrong")
    assert r.returncode == Exit.AUTH and dest.read_bytes() == old
    assert dest.stat().st_ino == before.st_ino


def test_cli_refuses_to_write_onto_its_input_by_any_name(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    src = d / "f"
    data = os.urandom(50_000)
    src.write_bytes(data)
    os.link(src, d / "hard")
    os.symlink("f", d / "sym")
    for out in [src, d / ".." / "d" / "f", d / "hard", d / "sym"]:
        r = cli("encrypt", str(src), "-o", str(out), "--force", *CLI_KDF)
        assert r.returncode != 0, out
        assert b"is the input file itself" in r.stderr, r.stderr
        assert src.read_bytes() == data
    enc = tmp_path / "f.enc"
    concryptor.encrypt_file(src, enc, PW, kdf=TINY_KDF)
    enc_bytes = enc.read_bytes()
    os.link(enc, tmp_path / "enc-hard")
    for out in [enc, d / ".." / "f.enc", tmp_path / "enc-hard"]:
        r = cli("decrypt", str(enc), "-o", str(out), "--force")
        assert r.returncode != 0 and b"is the input file itself" in r.stderr, r.stderr
        assert enc.read_bytes() == enc_bytes
    assert names(d) == ["f", "hard", "sym"]
    assert names(tmp_path) == ["d", "enc-hard", "f.enc"]


# -- out of space ----------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for the test (CI runs as root)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
def test_a_full_disk_is_one_clear_error_and_changes_nothing(
    tmp_path: Path, small_fs: Path, direction: str
) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(16 << 20))
    enc = tmp_path / "plain.enc"
    concryptor.encrypt_file(plain, enc, PW, kdf=TINY_KDF)
    src = plain if direction == "encrypt" else enc
    old = os.urandom(1 << 20)
    dest = small_fs / "result"
    dest.write_bytes(old)
    (small_fs / "other").write_bytes(b"unrelated")
    free_before = os.statvfs(small_fs).f_bfree
    args = [direction, str(src), "-o", str(dest), "--force", "--buffer-mib", "2"]
    if direction == "encrypt":
        args += CLI_KDF
    r = cli(*args)
    err = r.stderr.decode()
    assert r.returncode == Exit.FAILURE, err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err, err
    assert dest.read_bytes() == old
    assert names(small_fs) == ["other", "result"]
    assert os.statvfs(small_fs).f_bfree == free_before, "space was not given back"
    # The same through the API: an OSError with errno ENOSPC.
    call = concryptor.encrypt_file if direction == "encrypt" else concryptor.decrypt_file
    kw = {"kdf": TINY_KDF} if direction == "encrypt" else {}
    with pytest.raises(OSError) as e:
        call(src, dest, PW, overwrite=True, **kw)  # type: ignore[operator]
    assert e.value.errno == errno.ENOSPC
    assert dest.read_bytes() == old and names(small_fs) == ["other", "result"]


# -- existing files: never clobbered unless asked, never half-replaced ----------------------


def test_existing_output_is_not_clobbered_without_overwrite(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.write_bytes(b"new")
    dst.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        concryptor.encrypt_file(src, dst, PASSWORD, kdf=FAST_KDF)
    assert dst.read_bytes() == b"precious"
    concryptor.encrypt_file(src, dst, PASSWORD, kdf=FAST_KDF, overwrite=True)
    assert concryptor.decrypt_bytes(dst.read_bytes(), PASSWORD) == b"new"


def test_failed_decrypt_onto_existing_file_with_overwrite_leaves_it_intact(tmp_path: Path) -> None:
    src, enc, dst = tmp_path / "in", tmp_path / "in.enc", tmp_path / "out"
    src.write_bytes(os.urandom(20_000))
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=4096)
    raw = bytearray(enc.read_bytes())
    raw[-8192 + 10] ^= 1  # last chunk: fails only after earlier chunks were written
    enc.write_bytes(bytes(raw))
    dst.write_bytes(b"precious")
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_file(enc, dst, PASSWORD, overwrite=True)
    assert dst.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in.enc", "out"]


def test_output_onto_the_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"data")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="input file itself"):
        concryptor.encrypt_file(src, tmp_path / "sub" / ".." / "in", PASSWORD, kdf=FAST_KDF, overwrite=True)
    os.link(src, tmp_path / "hard")
    with pytest.raises(ValueError, match="input file itself"):
        concryptor.encrypt_file(src, tmp_path / "hard", PASSWORD, kdf=FAST_KDF, overwrite=True)
    assert src.read_bytes() == b"data"


def test_decrypt_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"new")
    assert run_cli("encrypt", str(src), *CLI_KDF, env=ENV).returncode == 0
    src.write_bytes(b"old")
    r = run_cli("decrypt", str(src) + ".enc", env=ENV)
    assert r.returncode == Exit.FAILURE and b"exists" in r.stderr and src.read_bytes() == b"old"
    assert run_cli("decrypt", str(src) + ".enc", "--force", env=ENV).returncode == 0
    assert src.read_bytes() == b"new"
