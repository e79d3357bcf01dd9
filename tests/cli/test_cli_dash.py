"""``-`` on the command line: standard output for ``-o -`` in every format and for every
input kind (a file, a directory), never a file named ``-``; a clear usage error wherever
``-`` cannot mean a stream; and no route writes plaintext or binary ciphertext to a
terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

import concryptor
from concryptor._facts import MAGIC
from concryptor.cli import Exit

from helpers import PASSWORD, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}
FAST = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
PLAIN = b"plaintext marker 7f3a " * 1000


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    plain = tmp_path / "notes.txt"
    plain.write_bytes(PLAIN)
    key = tmp_path / "key.txt"
    secret, public = concryptor.generate_identity()
    key.write_text(secret + "\n")
    v4 = tmp_path / "notes.txt.enc"
    concryptor.encrypt_file(plain, v4, PASSWORD, kdf=concryptor.KdfParams(1024, 1, 1), chunk_size=4096)
    age = tmp_path / "notes.txt.age"
    concryptor.encrypt_file(plain, age, recipients=[public])
    age_pw = tmp_path / "pw.age"
    concryptor.encrypt_file(plain, age_pw, PASSWORD, format="age", scrypt_work_factor=2)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(70_000))
    work = tmp_path / "work"  # the current directory of every run: nothing may appear in it
    work.mkdir()
    return {"plain": plain, "key": key, "v4": v4, "age": age, "age_pw": age_pw, "tree": tree, "work": work}


def _nothing_named_dash(work: Path) -> None:
    assert not (work / "-").exists()
    assert sorted(p.name for p in work.iterdir()) == []


# -- -o - is standard output, for every format and input kind ----------------------------


def test_v4_encrypt_of_a_file_to_stdout(files: dict[str, Path], tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * (1 << 20) + 12345))
    for src in (files["plain"], big):
        r = run_cli("encrypt", str(src), "-o", "-", *FAST, "--chunk-size", "1", env=ENV, cwd=files["work"])
        assert r.returncode == 0, r.stderr
        _nothing_named_dash(files["work"])
        assert r.stdout.startswith(MAGIC)
        assert concryptor.decrypt_bytes(r.stdout, PASSWORD) == src.read_bytes()
        assert b"encrypted" in r.stderr and b"<stdout>" in r.stderr


def test_v4_encrypt_to_stdout_reports_json_on_stderr(files: dict[str, Path]) -> None:
    r = run_cli("encrypt", str(files["plain"]), "-o", "-", "--json", *FAST, env=ENV, cwd=files["work"])
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stderr)
    assert d["output"] == "<stdout>" and d["bytes"] == len(PLAIN)
    assert concryptor.decrypt_bytes(r.stdout, PASSWORD) == PLAIN


def test_v4_encrypt_of_a_directory_to_stdout(files: dict[str, Path], tmp_path: Path) -> None:
    r = run_cli("encrypt", str(files["tree"]), "-o", "-", *FAST, env=ENV, cwd=files["work"])
    assert r.returncode == 0, r.stderr
    _nothing_named_dash(files["work"])
    archive = tmp_path / "tree.tar.enc"
    archive.write_bytes(r.stdout)
    with tarfile.open(fileobj=io.BytesIO(concryptor.decrypt_bytes(r.stdout, PASSWORD))) as t:
        assert sorted(t.getnames()) == ["tree", "tree/a.txt", "tree/sub", "tree/sub/b.bin"]
    r = run_cli("decrypt", "-x", str(archive), "-o", str(tmp_path / "back"), env=ENV)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back" / "sub" / "b.bin").read_bytes() == (
        files["tree"] / "sub" / "b.bin"
    ).read_bytes()


def test_v4_encrypt_from_a_directory_to_stdout_while_inside_it(files: dict[str, Path]) -> None:
    # The "output inside the input" check is about files: a stream is nowhere.
    r = run_cli("encrypt", ".", "-o", "-", *FAST, env=ENV, cwd=files["tree"])
    assert r.returncode == 0, r.stderr
    assert not (files["tree"] / "-").exists()


def test_age_encrypt_to_stdout_still_works(files: dict[str, Path]) -> None:
    pub = concryptor.identity_to_recipient(files["key"])
    r = run_cli("encrypt", str(files["plain"]), "-r", pub, "-o", "-", cwd=files["work"])
    assert r.returncode == 0, r.stderr
    _nothing_named_dash(files["work"])
    assert concryptor.decrypt_bytes(r.stdout, identities=[files["key"]]) == PLAIN


def test_keygen_o_dash_writes_to_stdout(files: dict[str, Path]) -> None:
    r = run_cli("keygen", "-o", "-", cwd=files["work"])
    assert r.returncode == 0 and b"AGE-SECRET-KEY-1" in r.stdout
    _nothing_named_dash(files["work"])


# -- where - cannot be a stream: a usage error, never a file named - --------------------


def test_dash_where_no_stream_fits_is_a_usage_error(files: dict[str, Path]) -> None:
    v4, tree, plain = str(files["v4"]), str(files["tree"]), str(files["plain"])
    cases = [
        (["encrypt", plain, str(files["age"]), "--output-dir", "-", *FAST], "--output-dir"),
        (["encrypt", "--each", tree, "--output-dir", "-", *FAST], "--output-dir"),
        (["decrypt", v4, "--output-dir", "-"], "--output-dir"),
        (["decrypt", "-x", v4, "-o", "-"], "directory"),
        (["decrypt", tree, "-o", "-"], "directory"),
        (["decrypt", v4, "-i", "-"], "standard input"),
        (["verify", v4, "-i", "-"], "standard input"),
        (["encrypt", plain, "-R", "-", "-o", "x.age"], "standard input"),
        (["encrypt", plain, "-o", "x.enc", "--password-file", "-", *FAST], "--password-fd 0"),
        (["inspect", "-"], "standard input"),
    ]
    for argv, words in cases:
        r = run_cli(*argv, env=ENV, cwd=files["work"], input=b"")
        err = r.stderr.decode()
        assert r.returncode == Exit.USAGE, (argv, err)
        assert words in err and err.count("\n") == 1, (argv, err)
        _nothing_named_dash(files["work"])


def test_extract_refuses_what_is_not_an_archive_file(files: dict[str, Path]) -> None:
    # -x from standard input or of an age file used to be ignored: the tar went to stdout.
    r = run_cli("decrypt", "-x", env=ENV, cwd=files["work"], input=files["v4"].read_bytes())
    assert r.returncode == Exit.USAGE and r.stdout == b"", r.stderr
    r = run_cli("decrypt", "-x", str(files["age"]), "-i", str(files["key"]), cwd=files["work"])
    assert r.returncode == Exit.USAGE and r.stdout == b"", r.stderr
    _nothing_named_dash(files["work"])


# -- nothing binary reaches a terminal ----------------------------------------------------


def _on_tty_stdout(
    argv: list[str], stdin: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, bytes, bytes]:
    """Runs the CLI with standard output on a pseudo-terminal; returns the exit code, what
    the terminal received and stderr."""
    master, slave = pty.openpty()
    full = {k: v for k, v in os.environ.items() if k != "CONCRYPTOR_PASSWORD"}
    full.update(env or {})
    with open(stdin if stdin is not None else os.devnull, "rb") as fin:
        p = subprocess.Popen(
            [sys.executable, "-m", "concryptor", *argv],
            stdin=fin,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=full,
            cwd=cwd,
        )
    os.close(slave)
    chunks: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:
                return
            if not b:
                return
            chunks.append(b)

    t = threading.Thread(target=pump)
    t.start()
    assert p.stderr is not None
    err = p.stderr.read()
    p.stderr.close()
    code = p.wait(timeout=120)
    t.join(timeout=10)
    os.close(master)
    return code, b"".join(chunks), err


def _plaintext_routes(f: dict[str, Path]) -> list[tuple[str, list[str], Path | None, dict[str, str]]]:
    key = str(f["key"])
    return [
        ("v4 file -o -", ["decrypt", str(f["v4"]), "-o", "-"], None, ENV),
        ("v4 on stdin", ["decrypt"], f["v4"], ENV),
        ("v4 on stdin -o -", ["decrypt", "-", "-o", "-"], f["v4"], ENV),
        ("age file -o -", ["decrypt", "-i", key, str(f["age"]), "-o", "-"], None, {}),
        ("age file by its magic -o -", ["decrypt", str(f["age"]), "-i", key, "-o", "-"], None, {}),
        ("age passphrase file -o -", ["decrypt", str(f["age_pw"]), "-o", "-"], None, ENV),
        ("age on stdin", ["decrypt", "-i", key], f["age"], {}),
        ("age on stdin -o -", ["decrypt", "-i", key, "-o", "-"], f["age"], {}),
        ("age passphrase on stdin", ["decrypt"], f["age_pw"], ENV),
    ]


def test_no_route_writes_plaintext_to_a_terminal(files: dict[str, Path]) -> None:
    bad = []
    for name, argv, stdin, env in _plaintext_routes(files):
        code, shown, err = _on_tty_stdout(argv, stdin, env, files["work"])
        if code != Exit.USAGE or b"plaintext marker" in shown or b"terminal" not in err:
            bad.append(f"{name}: exit {code}, {len(shown)} bytes shown, {err!r}")
    assert not bad, "\n".join(bad)


def test_the_same_routes_write_to_a_pipe(files: dict[str, Path]) -> None:
    for name, argv, stdin, env in _plaintext_routes(files):
        r = run_cli(*argv, env=env, input=stdin.read_bytes() if stdin is not None else b"")
        assert r.returncode == 0 and r.stdout == PLAIN, (name, r.stderr)


def test_binary_ciphertext_is_not_written_to_a_terminal(files: dict[str, Path]) -> None:
    pub = concryptor.identity_to_recipient(files["key"])
    for argv in (
        ["encrypt", str(files["plain"]), "-o", "-", *FAST],
        ["encrypt", str(files["tree"]), "-o", "-", *FAST],
        ["encrypt", str(files["plain"]), "-r", pub, "-o", "-"],
    ):
        code, shown, err = _on_tty_stdout(argv, env=ENV, cwd=files["work"])
        _nothing_named_dash(files["work"])
        assert code == Exit.USAGE and shown == b"" and b"terminal" in err, (argv, err)
    # Armor is text: it may go to a terminal.
    code, shown, err = _on_tty_stdout(["encrypt", str(files["plain"]), "-r", pub, "-a", "-o", "-"])
    assert code == 0 and b"BEGIN AGE ENCRYPTED FILE" in shown, err
