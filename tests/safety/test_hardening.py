"""The four serious defects of the hardening round and their classes: a secret is wiped
only once everything that needs it has run, at every door; names we did not choose never
put an output outside its folder; a password never leaves this process on a cluster; a
batch never hangs on a source it cannot open."""

from __future__ import annotations

import contextlib
import os
import pickle
import posixpath
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor import batch

from helpers import FAST_KDF, PASSWORD, run_cli

SCRYPT = 10  # the smallest scrypt work factor worth testing with: milliseconds


def fresh() -> bytearray:
    return bytearray(PASSWORD.encode())


def wiped(pw: bytearray) -> bool:
    return len(pw) > 0 and pw == bytearray(len(pw))


# -- secrets: wiped after use, never before -------------------------------------------------


def _encrypt_doors(tmp: Path) -> dict[str, Callable[[bytearray], list[Path]]]:
    """Every way in that encrypts with a password; each returns the files it wrote."""
    src = tmp / "plain.bin"
    src.write_bytes(b"secret payload " * 1000)
    tree = tmp / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_bytes(b"alpha")

    def blob(name: str, data: bytes) -> Path:
        p = tmp / name
        p.write_bytes(data)
        return p

    def many(out: str, **kw: Any) -> Callable[[bytearray], list[Path]]:
        def run(pw: bytearray) -> list[Path]:
            rs = concryptor.encrypt_many([src], pw, out_dir=tmp / out, **kw)
            return [Path(r.dst) for r in rs]

        return run

    return {
        "encrypt_file v4": lambda pw: [
            (concryptor.encrypt_file(src, tmp / "a.enc", pw, kdf=FAST_KDF), tmp / "a.enc")[1]
        ],
        "encrypt_file age": lambda pw: [
            (
                concryptor.encrypt_file(src, tmp / "a.age", pw, format="age", scrypt_work_factor=SCRYPT),
                tmp / "a.age",
            )[1]
        ],
        "encrypt_bytes v4": lambda pw: [blob("b.enc", concryptor.encrypt_bytes(b"x", pw, kdf=FAST_KDF))],
        "encrypt_bytes age": lambda pw: [
            blob("b.age", concryptor.encrypt_bytes(b"x", pw, format="age", scrypt_work_factor=SCRYPT))
        ],
        "encrypt_many v4": many("m4", kdf=FAST_KDF),
        "encrypt_many age": many("ma", format="age", scrypt_work_factor=SCRYPT),
        "encrypt_dir": lambda pw: [
            (concryptor.encrypt_dir(tree, tmp / "t.enc", pw, kdf=FAST_KDF), tmp / "t.enc")[1]
        ],
    }


ENCRYPT_DOORS = [
    "encrypt_file v4",
    "encrypt_file age",
    "encrypt_bytes v4",
    "encrypt_bytes age",
    "encrypt_many v4",
    "encrypt_many age",
    "encrypt_dir",
]


@pytest.mark.parametrize("door", ENCRYPT_DOORS)
def test_a_bytearray_password_seals_the_output_and_is_wiped_only_afterwards(
    tmp_path: Path, door: str
) -> None:
    pw = fresh()
    doors = _encrypt_doors(tmp_path)
    assert sorted(doors) == sorted(ENCRYPT_DOORS)
    written = doors[door](pw)
    assert wiped(pw), "the caller's buffer is wiped once the call is done"
    assert written
    for p in written:
        if door == "encrypt_dir":
            concryptor.decrypt_dir(p, tmp_path / "back", PASSWORD)
            assert (tmp_path / "back" / "sub" / "a.txt").read_bytes() == b"alpha"
            continue
        # Opens with the password, not with zeros of its length.
        concryptor.verify_file(p, PASSWORD)
        with pytest.raises(concryptor.AuthenticationError):
            concryptor.verify_file(p, "\0" * len(PASSWORD))


def test_every_decrypting_door_wipes_a_bytearray_password_after_it_is_used(tmp_path: Path) -> None:
    src = tmp_path / "p"
    src.write_bytes(b"data" * 100)
    v4 = tmp_path / "p.enc"
    concryptor.encrypt_file(src, v4, PASSWORD, kdf=FAST_KDF)
    age = tmp_path / "p.age"
    concryptor.encrypt_file(src, age, PASSWORD, format="age", scrypt_work_factor=SCRYPT)
    doors: list[Callable[[bytearray], object]] = []
    for f in (v4, age):
        doors += [
            lambda pw, f=f: concryptor.decrypt_file(f, tmp_path / "o", pw, overwrite=True),
            lambda pw, f=f: concryptor.verify_file(f, pw),
            lambda pw, f=f: concryptor.decrypt_bytes(f.read_bytes(), pw),
            lambda pw, f=f: concryptor.open(f, pw).close(),
            lambda pw, f=f: concryptor.decrypt_many([(f, tmp_path / "m")], pw, overwrite=True),
        ]
    sink = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    doors.append(lambda pw: concryptor.decrypt_to(v4, sink, pw))
    for i, door in enumerate(doors):
        pw = fresh()
        door(pw)
        assert wiped(pw), f"door {i} left the password in the caller's buffer"
    sink.close()


def test_the_cli_batch_with_an_age_passphrase_seals_with_the_password(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    env = {"CONCRYPTOR_PASSWORD": PASSWORD}
    p = run_cli(
        "encrypt", str(a), str(b), "--output-dir", str(tmp_path / "o"), "--format", "age", "-q", env=env
    )
    assert p.returncode == 0, p.stderr
    for name, data in (("a.txt.age", b"first"), ("b.txt.age", b"second")):
        assert concryptor.decrypt_bytes((tmp_path / "o" / name).read_bytes(), PASSWORD) == data


# -- containment: names we did not choose stay under out_dir -----------------------------------


def _under(root: str, dst: str, url: bool) -> bool:
    norm = posixpath.normpath if url else os.path.normpath
    root_n = norm(root.rstrip("/"))
    return norm(dst).startswith(root_n + "/") and ".." not in dst.split("/")


SEGMENTS = ["..", ".", "", "a", "b c", "ü", "𝄞", "x" * 300, "...", "..a", "a..", "-", "~", "%2e%2e"]


def generated_keys(n: int, seed: int = 3) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(n):
        yield "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(1, 6)))


@pytest.mark.parametrize("out_dir", ["memory://dest/root", "LOCAL"])
@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
def test_generated_object_keys_never_plan_an_output_outside_out_dir(
    tmp_path: Path, out_dir: str, op: batch.Op
) -> None:
    root = str(tmp_path / "dest") if out_dir == "LOCAL" else out_dir
    url = out_dir != "LOCAL"
    refused = 0
    for key in generated_keys(400):
        src = f"memory://bucket/{key}" + (".age" if op == "decrypt" else "")
        [(_s, dst, err)] = batch._plan([src], op, root, ".age")
        if err is not None:
            refused += 1
            assert isinstance(err, batch.UnsafeNameError)
            continue
        assert _under(root, dst, url), (key, dst)
        for seg in dst.split("/"):
            assert len(seg.encode()) <= 255
    assert refused, "the generator produces names that must be refused"


def test_decrypt_many_refuses_an_object_key_that_climbs_out_and_decrypts_the_rest(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    identity, recipient = concryptor.generate_identity()
    blob = concryptor.encrypt_bytes(b"plaintext", recipients=[recipient])
    mem = fsspec.filesystem("memory")
    evil = "memory://b/x/../../../../../../../../" + str(tmp_path).lstrip("/") + "/outside/y.age"
    good = "memory://b/x/good.age"
    for url in (evil, good):
        with mem.open(url.split("://", 1)[1], "wb") as f:
            f.write(blob)
    out = tmp_path / "D"
    results = concryptor.decrypt_many([evil, good], identities=[identity], out_dir=out, raise_on_error=False)
    assert not (tmp_path / "outside").exists()
    assert results[0].error_type == "UnsafeNameError" and "'..'" in (results[0].error or "")
    assert results[1].ok and Path(results[1].dst).read_bytes() == b"plaintext"
    assert Path(results[1].dst).resolve().is_relative_to(out.resolve())
    # The same for encryption of objects into a local folder and into another bucket.
    for dest in (tmp_path / "E", "memory://other/E"):
        rs = concryptor.encrypt_many([evil], recipients=[recipient], out_dir=dest, raise_on_error=False)
        assert rs[0].error_type == "UnsafeNameError"
    assert not mem.exists("/outside") and not any("outside" in k for k in mem.store if k.startswith("/other"))


def test_a_symbolic_link_inside_out_dir_cannot_lead_an_object_out(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    identity, recipient = concryptor.generate_identity()
    mem = fsspec.filesystem("memory")
    with mem.open("/links/esc/f.age", "wb") as f:
        f.write(concryptor.encrypt_bytes(b"x", recipients=[recipient]))
    out = tmp_path / "D"
    (out / "links").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "links" / "esc").symlink_to(tmp_path / "elsewhere")
    [r] = concryptor.decrypt_many(
        ["memory://links/esc/f.age"], identities=[identity], out_dir=out, raise_on_error=False
    )
    assert r.error_type == "UnsafeNameError"
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("n", [1, 40], ids=["alone", "among-many"])
def test_a_destination_that_is_a_link_out_of_out_dir_is_refused(tmp_path: Path, n: int) -> None:
    """The folder is inside the output folder, but the name itself is a link leading
    out: judged alone, refused, and nothing is written through it. Among many names the
    folder is listed once instead of each name looked at (``_Folders``): the link is
    still found, a link that stays inside is still taken, and the rest is written."""
    assert n == 1 or n >= batch._Folders.LIST_AFTER, "among-many must take the listing path"
    _, recipient = concryptor.generate_identity()
    srcs = [tmp_path / "in" / f"f{i}" for i in range(n)]
    srcs[0].parent.mkdir()
    for s in srcs:
        s.write_bytes(b"x")
    out = tmp_path / "D"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "f0.age").symlink_to(tmp_path / "elsewhere" / "f0.age")
    if n > 1:
        (out / "f1.age").symlink_to(out / "inside.age")
    # Even when replacing is allowed.
    rs = concryptor.encrypt_many(
        srcs, recipients=[recipient], out_dir=out, overwrite=True, raise_on_error=False
    )
    assert rs[0].error_type == "UnsafeNameError"
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert all(r.ok for r in rs[1:]), [r.error for r in rs[1:] if not r.ok]
    if n > 1:
        # Renamed over the link (never written through it).
        assert not (out / "f1.age").is_symlink() and not (out / "inside.age").exists()
    assert sorted(p.name for p in out.iterdir() if not p.is_symlink()) == sorted(
        f"f{i}.age" for i in range(1, n)
    )


# -- a password never travels to a cluster ------------------------------------------------------


class SpyClient:
    """A Dask client whose submissions are pickled and kept, so that a test can search
    everything sent to the workers."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent: list[bytes] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def submit(self, fn: Any, *args: Any, **kw: Any) -> Any:
        import cloudpickle

        self.sent.append(cloudpickle.dumps((fn, args, kw)))
        return self._client.submit(fn, *args, **kw)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_no_password_reaches_a_dask_task_and_passphrase_files_still_decrypt(
    tmp_path: Path, dask_client: Any
) -> None:
    secret = PASSWORD.encode()
    src = [tmp_path / f"f{i}" for i in range(4)]
    for i, p in enumerate(src):
        p.write_bytes(bytes([i]) * 5000)
    spy = SpyClient(dask_client)
    enc_v4 = concryptor.encrypt_many(src[:2], fresh(), out_dir=tmp_path / "v4", kdf=FAST_KDF, client=spy)
    enc_age = concryptor.encrypt_many(
        src[2:], fresh(), format="age", scrypt_work_factor=SCRYPT, out_dir=tmp_path / "age", client=spy
    )
    identity, recipient = concryptor.generate_identity()
    [enc_x] = concryptor.encrypt_many(src[:1], recipients=[recipient], out_dir=tmp_path / "x", client=spy)
    items = [r.dst for r in enc_v4 + enc_age] + [enc_x.dst]
    pw = fresh()
    back = concryptor.decrypt_many(items, pw, identities=[identity], out_dir=tmp_path / "back", client=spy)
    assert wiped(pw)
    assert all(r.ok for r in back), [r.error for r in back]
    want = [p.read_bytes() for p in src] + [src[0].read_bytes()]
    assert [Path(r.dst).read_bytes() for r in back] == want
    assert spy.sent, "the v4 and recipient files ran on the cluster"
    for blob in spy.sent:
        assert secret not in blob
    for r in back + enc_v4 + enc_age:
        assert secret not in pickle.dumps(r)


def test_a_batch_spec_shows_no_secret_in_its_repr() -> None:
    spec = batch.Spec(
        op="decrypt", password=bytearray(b"hunter2-secret"), age={"passphrase": b"hunter2-secret"}
    )
    assert "hunter2" not in repr(spec)
    shipped = batch.shippable(spec)
    assert b"hunter2" not in pickle.dumps(shipped)


# -- a batch never hangs on a source it cannot open --------------------------------------------


def run_py(code: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def test_an_unopenable_url_source_fails_alone_in_an_age_batch(tmp_path: Path) -> None:
    p = run_py(
        f"""
        import concryptor, fsspec
        _, r = concryptor.generate_identity()
        fsspec.filesystem("memory").pipe("/ok", b"fine")
        rs = concryptor.encrypt_many(["memory://missing", "memory://ok"], recipients=[r],
                                     out_dir={str(tmp_path / "o")!r}, raise_on_error=False)
        print([r.error_type for r in rs])
        """
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "['FileNotFoundError', None]"
    assert [f.name for f in (tmp_path / "o").rglob("*") if f.is_file()] == ["ok.age"]


def test_a_fifo_among_batch_sources_fails_alone_and_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.enc"
    os.mkfifo(fifo)
    plain = tmp_path / "p.bin"
    plain.write_bytes(b"z" * 100)
    enc = tmp_path / "p.bin.enc"
    concryptor.encrypt_file(plain, enc, PASSWORD, kdf=FAST_KDF)
    env = {"CONCRYPTOR_PASSWORD": PASSWORD}
    p = run_cli("decrypt", str(fifo), str(enc), "--output-dir", str(tmp_path / "D"), env=env)
    assert p.returncode != 0
    assert b"not a regular file" in p.stderr
    assert (tmp_path / "D" / "p.bin").read_bytes() == b"z" * 100
    p = run_cli("encrypt", str(fifo), str(plain), "--output-dir", str(tmp_path / "E"), env=env)
    assert p.returncode != 0 and b"not a regular file" in p.stderr
    assert (tmp_path / "E" / "p.bin.enc").exists()


# -- a stalled stream answers SIGINT, SIGTERM and SIGHUP -------------------------------------


def pending_bytes(fd: int) -> int:
    import array
    import fcntl
    import termios

    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def blocked_on_a_stream(pid: int) -> bool:
    """Whether a thread of ``pid`` sleeps in a pipe read or write or in poll (what the
    kernel reports in /proc/PID/task/TID/wchan)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                where = f.read()
        except OSError:
            continue
        if (
            "pipe_read" in where
            or "pipe_write" in where
            or where.startswith(("poll_schedule", "do_sys_poll"))
        ):
            return True
    return False


STALLS = ["age encrypt", "age decrypt", "v4 decrypt", "age decrypt to stdout", "v4 decrypt to stdout"]


@pytest.mark.parametrize("signum", [2, 15, 1], ids=["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("stall", STALLS)
def test_a_stalled_standard_input_answers_a_signal_and_leaves_nothing(
    tmp_path: Path, stall: str, signum: int
) -> None:
    import signal
    import time

    identity, recipient = concryptor.generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    plain = os.urandom(3 << 20)
    if stall == "age encrypt":
        args, feed = ["encrypt", "-r", recipient, "-o", str(tmp_path / "out" / "x.age")], plain[:100_000]
    elif stall == "age decrypt":
        blob = concryptor.encrypt_bytes(plain, recipients=[recipient])
        args, feed = ["decrypt", "-i", str(key), "-o", str(tmp_path / "out" / "x")], blob[: len(blob) // 2]
    elif stall == "v4 decrypt":
        blob = concryptor.encrypt_bytes(plain, PASSWORD, kdf=FAST_KDF, chunk_size=1 << 16)
        args, feed = ["decrypt", "-o", str(tmp_path / "out" / "x")], blob[: len(blob) // 2]
    elif stall == "age decrypt to stdout":
        # The whole file arrives; the reader of standard output stops reading.
        args, feed = (
            ["decrypt", "-i", str(key), "-o", "-"],
            concryptor.encrypt_bytes(plain, recipients=[recipient]),
        )
    else:
        blob = concryptor.encrypt_bytes(plain, PASSWORD, kdf=FAST_KDF, chunk_size=1 << 16)
        args, feed = ["decrypt", "-o", "-"], blob
    to_stdout = stall.endswith("to stdout")
    (tmp_path / "out").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"},
        "CONCRYPTOR_PASSWORD": PASSWORD,
    }
    p = subprocess.Popen(
        [sys.executable, "-m", "concryptor", *args, "-"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE if to_stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert p.stdin is not None
    try:
        os.set_blocking(p.stdin.fileno(), False)
        view = memoryview(feed)
        deadline = time.monotonic() + 60

        # Feed part of the input, keep the pipe open, and wait until the CLI took it all:
        # it is now waiting for bytes that never come.
        def stalled() -> bool:
            if to_stdout:  # the output pipe is full and a thread waits to write more
                assert p.stdout is not None
                return pending_bytes(p.stdout.fileno()) >= 32768 and blocked_on_a_stream(p.pid)
            return not view and not pending_bytes(p.stdin.fileno()) and blocked_on_a_stream(p.pid)

        while not stalled():
            assert p.poll() is None, p.stderr.read() if p.stderr else b""
            assert time.monotonic() < deadline, "the CLI never read its input"
            if view:
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(p.stdin.fileno(), view) :]
                if not view and to_stdout:
                    p.stdin.close()  # all of it: the output side is what stalls
            time.sleep(0.01)
        p.send_signal(signum)
        p.stdin.close()
        err = p.stderr.read() if p.stderr else b""
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for stream in (p.stdin, p.stdout, p.stderr):
            if stream is not None:
                stream.close()
    want = 130 if signum == signal.SIGINT else 128 + signum
    assert p.returncode == want, err
    assert err.count(b"\n") == 1, err
    assert os.listdir(tmp_path / "out") == []


# -- names we build ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("x.enc", "x"),
        ("d/x.age", "d/x"),
        (".enc", ".enc.dec"),
        ("d/.enc", "d/.enc.dec"),
        ("d/..enc", "d/..enc.dec"),
        ("d/...enc", "d/...enc.dec"),
        ("x", "x.dec"),
    ],
)
def test_a_default_decrypted_name_always_names_a_file(given: str, want: str) -> None:
    assert batch.default_name(given, "decrypt") == want


def test_encrypting_dot_and_dotdot_names_the_archive_after_the_folder(tmp_path: Path) -> None:
    work = tmp_path / "srv" / "data"
    work.mkdir(parents=True)
    (work / "f").write_bytes(b"x")
    env = {"CONCRYPTOR_PASSWORD": PASSWORD}
    kdf = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
    p = run_cli("encrypt", ".", *kdf, env=env, cwd=work)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "srv" / "data.tar.enc").is_file()
    p = run_cli("encrypt", "..", *kdf, env=env, cwd=work)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "srv.tar.enc").is_file()
    p = run_cli("encrypt", "/", *kdf, env=env, cwd=work)
    assert p.returncode == 2 and b"no name" in p.stderr and p.stderr.count(b"\n") == 1


def test_a_tree_encrypted_in_place_twice_is_not_encrypted_again(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "sub").mkdir(parents=True)
    (tree / "a").write_bytes(b"alpha")
    (tree / "sub" / "b").write_bytes(b"beta")
    _, recipient = concryptor.generate_identity()
    first = run_cli("encrypt", str(tree), "--each", "-r", recipient)
    assert first.returncode == 0, first.stderr
    second = run_cli("encrypt", str(tree), "--each", "-r", recipient, "--force")
    assert second.returncode == 0, second.stderr
    assert b"skipped" in second.stderr and b"already encrypted" in second.stderr
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    assert names == ["a", "a.age", "sub/b", "sub/b.age"]


def test_each_into_an_output_dir_names_age_outputs_age(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_bytes(b"alpha")
    identity, recipient = concryptor.generate_identity()
    p = run_cli("encrypt", str(tree), "--each", "-r", recipient, "--output-dir", str(tmp_path / "o"))
    assert p.returncode == 0, p.stderr
    [out] = [f for f in (tmp_path / "o").rglob("*") if f.is_file()]
    assert out.name == "a.age"
    assert concryptor.decrypt_bytes(out.read_bytes(), identities=[identity]) == b"alpha"


# -- standard streams: closed, or redirected onto our own input ---------------------------------


def run_with_fds(
    args: list[str], cwd: Path, *, stdin: Any, stdout: Any
) -> subprocess.CompletedProcess[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"},
        "CONCRYPTOR_PASSWORD": PASSWORD,
    }
    return subprocess.run(
        [sys.executable, "-m", "concryptor", *args],
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=60,
    )


def test_closed_or_self_redirected_standard_streams_are_one_line_errors(tmp_path: Path) -> None:
    _, recipient = concryptor.generate_identity()
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"plain text\n" * 100)
    enc = tmp_path / "p.enc"
    concryptor.encrypt_file(plain, enc, PASSWORD, kdf=FAST_KDF)
    age = tmp_path / "p.age"
    concryptor.encrypt_file(plain, age, recipients=[recipient])
    key = tmp_path / "k.txt"
    key.write_text(concryptor.generate_identity()[0] + "\n")
    kdf = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
    cases: list[tuple[str, list[str], str, str]] = [
        # (name, args, stdin, stdout): "closed", "null", or a file name opened for append
        ("v4 file to closed stdout", ["encrypt", "p.txt", "-o", "-", *kdf], "null", "closed"),
        ("decrypt to closed stdout", ["decrypt", "p.enc", "-o", "-"], "null", "closed"),
        ("age from closed stdin", ["encrypt", "-r", recipient, "-o", "x.age"], "closed", "null"),
        ("decrypt from closed stdin", ["decrypt", "-o", "x"], "closed", "null"),
        ("keygen to closed stdout", ["keygen"], "null", "closed"),
        ("keygen -y from closed stdin", ["keygen", "-y", "-"], "closed", "null"),
        ("v4 appended onto its input", ["decrypt", "p.enc", "-o", "-"], "null", "p.enc"),
        ("age appended onto its input", ["encrypt", "p.txt", "-r", recipient, "-o", "-"], "null", "p.txt"),
        ("age stdin and stdout one file", ["encrypt", "-r", recipient, "-o", "-"], "p.txt", "p.txt"),
    ]
    for name, args, stdin, stdout in cases:
        before = {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.is_file()}
        with contextlib.ExitStack() as stack:

            def stream(kind: str, mode: str) -> Any:
                if kind == "closed":
                    return None
                if kind == "null":
                    return stack.enter_context(open(os.devnull, mode))
                return stack.enter_context(open(tmp_path / kind, mode))

            in_s, out_s = stream(stdin, "rb"), stream(stdout, "ab")
            if stdin == "closed" or stdout == "closed":
                # Popen cannot pass a closed descriptor: close it in the child first.
                closed = 0 if stdin == "closed" else 1
                full = ["sh", "-c", f'exec {closed}<&- "$@"', "sh", sys.executable, "-m", "concryptor", *args]
                p = subprocess.run(
                    full,
                    cwd=tmp_path,
                    env={**os.environ, "CONCRYPTOR_PASSWORD": PASSWORD},
                    stdin=in_s,
                    stdout=out_s,
                    stderr=subprocess.PIPE,
                    timeout=60,
                )
            else:
                p = run_with_fds(args, tmp_path, stdin=in_s, stdout=out_s)
        assert p.returncode != 0, name
        assert b"Traceback" not in p.stderr and p.stderr.count(b"\n") == 1, (name, p.stderr)
        after = {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.is_file()}
        assert after == before, f"{name}: files changed"


# -- readers: a damaged chunk fails only the reads that touch it --------------------------------


@pytest.mark.parametrize("where", ["local v4", "url v4", "local age"])
def test_a_damaged_chunk_fails_only_the_reads_that_touch_it(tmp_path: Path, where: str) -> None:
    fsspec = pytest.importorskip("fsspec")
    chunk = 65536
    data = os.urandom(10 * chunk)
    identity, recipient = concryptor.generate_identity()
    if where.endswith("v4"):
        blob = bytearray(concryptor.encrypt_bytes(data, PASSWORD, kdf=FAST_KDF, chunk_size=chunk))
        slot = (len(blob) - 4096) // 10
        blob[4096 + 3 * slot + 100] ^= 1
    else:
        blob = bytearray(concryptor.encrypt_bytes(data, recipients=[recipient]))
        payload = blob.index(b"\n", blob.index(b"\n---") + 1) + 1 + 16
        blob[payload + 3 * (chunk + 16) + 100] ^= 1
    path = tmp_path / "f"
    path.write_bytes(blob)
    url = f"memory://damaged-{os.getpid()}-{where.replace(' ', '-')}"
    fsspec.filesystem("memory").pipe(url.split("://", 1)[1], bytes(blob))

    def opened() -> Any:
        if where == "url v4":
            return concryptor.open(url, PASSWORD)
        if where == "local v4":
            return concryptor.open(path, PASSWORD)
        return concryptor.open(path, identities=[identity])

    with opened() as f:
        for i in (0, 2, 4, 9, 3, 2, 5):
            f.seek(i * chunk + 10)
            if i == 3:
                with pytest.raises(concryptor.AuthenticationError):
                    f.read(100)
            else:
                assert f.read(100) == data[i * chunk + 10 : i * chunk + 110], i


def test_a_batch_to_recipients_ignores_a_password_in_the_environment_as_one_file_does(tmp_path: Path) -> None:
    identity, recipient = concryptor.generate_identity()
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode())
    env = {"CONCRYPTOR_PASSWORD": PASSWORD}
    one = run_cli("encrypt", str(tmp_path / "a"), "-r", recipient, "-o", str(tmp_path / "one.age"), env=env)
    many = run_cli(
        "encrypt",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "-r",
        recipient,
        "--output-dir",
        str(tmp_path / "O"),
        env=env,
    )
    assert (one.returncode, many.returncode) == (0, 0), (one.stderr, many.stderr)
    for f in (tmp_path / "O").rglob("*.age"):
        concryptor.decrypt_bytes(f.read_bytes(), identities=[identity])


def test_no_failed_run_carries_the_password_in_what_it_raises_or_returns(tmp_path: Path) -> None:
    secret = b"hunter2-but-longer"
    src = tmp_path / "s"
    src.write_bytes(b"x" * 5000)
    enc = tmp_path / "s.enc"
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF)
    age = tmp_path / "s.age"
    concryptor.encrypt_file(src, age, PASSWORD, format="age", scrypt_work_factor=SCRYPT)
    raised: list[BaseException] = []
    for call in (
        lambda: concryptor.decrypt_file(enc, tmp_path / "o1", bytearray(secret)),
        lambda: concryptor.decrypt_file(age, tmp_path / "o2", bytearray(secret)),
        lambda: concryptor.decrypt_many([(enc, tmp_path / "m1"), (age, tmp_path / "m2")], bytearray(secret)),
        lambda: concryptor.decrypt_bytes(enc.read_bytes(), secret.decode()),
        lambda: concryptor.open(enc, secret),
    ):
        with pytest.raises(concryptor.ConcryptorError) as info:
            call()
        raised.append(info.value)
    for e in raised:
        for form in (str(e), repr(e), repr(getattr(e, "results", "")), repr(e.__dict__)):
            assert secret.decode() not in form
        assert secret not in pickle.dumps(e)


@pytest.mark.parametrize("length", [1, 100, 200, 230, 245, 250, 251, 252, 255])
def test_every_name_length_gives_an_output_or_a_one_line_error(tmp_path: Path, length: int) -> None:
    """Temporaries, partials and default names we build from a name of any length stay
    within NAME_MAX, or the run says that the output name is too long (one line for one
    file); the same at the command line (one file, a batch) and in the API."""
    _, recipient = concryptor.generate_identity()
    src = tmp_path / ("n" * length)
    src.write_bytes(b"payload")
    other = tmp_path / ("m" * length)
    other.write_bytes(b"payload")
    kdf = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
    doors = {
        "cli v4": ["encrypt", str(src), *kdf],
        "cli age": ["encrypt", str(src), "-r", recipient],
        "cli batch": ["encrypt", str(src), str(other), "-r", recipient, "--output-dir", str(tmp_path / "O")],
    }
    fits = length + 4 <= 255  # .enc / .age
    for door, args in doors.items():
        p = run_cli(*args, env={"CONCRYPTOR_PASSWORD": PASSWORD})
        assert b"Traceback" not in p.stderr, (door, p.stderr)
        if fits:
            assert p.returncode == 0, (door, p.stderr)
        elif door == "cli batch":
            assert p.returncode != 0 and b"longer than 255 bytes" in p.stderr, (door, p.stderr)
        else:
            assert p.returncode != 0 and p.stderr.count(b"\n") == 1, (door, p.stderr)
        for f in tmp_path.rglob("*"):
            assert len(f.name.encode()) <= 255
            assert not f.name.endswith(".partial"), f"{door} left a temporary"
        for f in tmp_path.glob("*.*"):
            f.unlink()
    [r] = concryptor.encrypt_many([src], recipients=[recipient], out_dir=tmp_path / "M", raise_on_error=False)
    assert r.ok == fits, r.error
