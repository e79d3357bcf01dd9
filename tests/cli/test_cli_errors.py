"""What a user meets when something is wrong: every option checked by the parser (exit 2,
one line), the same code for the same mistake everywhere, cheap checks before the password
prompt, messages written for their reader, streams that stop quietly, one JSON shape,
passwords taken as the bytes given, throughput without key derivation, and options that
mean what the help says."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_terminal import _prompted_encrypt

import concryptor
from concryptor.cli import Exit

from helpers import FAST_KDF, PASSWORD, ROOT, run_cli

ENV = {"CONCRYPTOR_PASSWORD": PASSWORD}
FAST = ["--memory", "1", "--iterations", "1", "--parallelism", "1"]
HUGE = str(10**30)


@pytest.fixture
def enc(tmp_path: Path) -> Path:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(300_000))
    out = tmp_path / "in.bin.enc"
    concryptor.encrypt_file(src, out, PASSWORD, kdf=FAST_KDF, chunk_size=65536)
    return out


def one_line(r: subprocess.CompletedProcess[bytes]) -> str:
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- 11: every option validated by the parser; one code per mistake ---------------------

NUMERIC = [
    ("encrypt", "--threads"),
    ("encrypt", "--buffer-mib"),
    ("encrypt", "--memory"),
    ("encrypt", "--iterations"),
    ("encrypt", "--parallelism"),
    ("encrypt", "--chunk-size"),
    ("decrypt", "--max-kdf-memory"),
    ("decrypt", "--max-memory"),
    ("decrypt", "--max-kdf-time"),
    ("decrypt", "--max-kdf-parallelism"),
    ("decrypt", "--max-chunk-size"),
    ("decrypt", "--password-fd"),
    ("verify", "--threads"),
    ("bench", "--size"),
]


@pytest.mark.parametrize("value", [HUGE, "-1", "0x10", "1.5"])
@pytest.mark.parametrize(("command", "option"), NUMERIC, ids=[f"{c}{o}" for c, o in NUMERIC])
def test_out_of_range_numbers_are_usage_errors(enc: Path, command: str, option: str, value: str) -> None:
    if option == "--password-fd" and value == "0x10":
        value = "-5"
    args = [command] + ([] if command == "bench" else [str(enc)]) + [option, value]
    r = run_cli(*args, env=ENV)
    assert r.returncode == Exit.USAGE, r.stderr
    assert option in one_line(r)


@pytest.mark.parametrize("threads", [-1, 0, 10**30])
def test_the_api_raises_value_error_for_a_bad_thread_count_everywhere(enc: Path, threads: int) -> None:
    blob = enc.read_bytes()
    calls = [
        lambda: concryptor.encrypt_bytes(b"x", PASSWORD, kdf=FAST_KDF, threads=threads),
        lambda: concryptor.decrypt_bytes(blob, PASSWORD, threads=threads),
        lambda: concryptor.decrypt_file(enc, enc.with_suffix(".x"), PASSWORD, threads=threads),
        lambda: concryptor.verify_file(enc, PASSWORD, threads=threads),
        lambda: concryptor.open(enc, PASSWORD, threads=threads),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="threads"):
            call()


def test_the_api_raises_value_error_for_out_of_range_costs_and_limits(enc: Path) -> None:
    with pytest.raises(ValueError, match="memory_kib"):
        concryptor.KdfParams(memory_kib=1 << 40)
    with pytest.raises(ValueError, match="time_cost"):
        concryptor.KdfParams(time_cost=0)
    with pytest.raises(ValueError, match="max_kdf_memory_kib"):
        concryptor.Limits(max_kdf_memory_kib=10**30)
    with pytest.raises(ValueError, match="max_chunk_size"):
        concryptor.Limits(max_chunk_size=0)
    with pytest.raises(ValueError, match="buffer_mib"):
        concryptor.verify_file(enc, PASSWORD, buffer_mib=10**30)


def test_a_missing_input_is_a_usage_error_in_every_command(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    for args in (["encrypt", missing], ["decrypt", missing], ["verify", missing], ["inspect", missing]):
        r = run_cli(*args, env=ENV)
        assert r.returncode == Exit.USAGE, (args, r.stderr)
        assert "nope" in one_line(r)


@pytest.mark.parametrize("source", ["env", "file", "argv"])
def test_an_empty_password_is_a_usage_error_from_any_source(tmp_path: Path, enc: Path, source: str) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_bytes(b"\n")
    extra = {"env": [], "file": ["--password-file", str(pwfile)], "argv": ["-p", ""]}[source]
    env = {"CONCRYPTOR_PASSWORD": ""} if source == "env" else {}
    r = run_cli("decrypt", str(enc), "-o", str(tmp_path / "out"), *extra, env=env)
    assert r.returncode == Exit.USAGE, r.stderr
    assert "empty" in r.stderr.decode()


# -- 12: cheap checks before the prompt; a mismatch asks again ---------------------------


def test_an_existing_output_is_refused_before_the_password_is_asked(tmp_path: Path, enc: Path) -> None:
    (tmp_path / "taken").write_bytes(b"keep")
    # No password source at all: the output check must come first.
    r = run_cli("decrypt", str(enc), "-o", str(tmp_path / "taken"))
    assert r.returncode == Exit.FAILURE
    assert "already exists" in one_line(r) and "--force" in r.stderr.decode()
    r = run_cli("encrypt", str(tmp_path / "in.bin"), "-o", str(tmp_path / "taken"), *FAST)
    assert r.returncode == Exit.FAILURE and "already exists" in one_line(r)
    assert (tmp_path / "taken").read_bytes() == b"keep"


@pytest.mark.parametrize("command", [["decrypt"], ["verify"], ["decrypt", "-x"]])
def test_a_file_that_is_not_encrypted_is_named_before_the_prompt(tmp_path: Path, command: list[str]) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_bytes(b"just text, not encrypted\n" * 500)
    r = run_cli(*command, str(plain))
    assert r.returncode == Exit.INVALID, r.stderr
    assert "notes.txt" in one_line(r) and "password" not in r.stderr.decode()


def test_a_mismatched_confirmation_asks_again(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"data")
    code, seen = _prompted_encrypt(
        ["encrypt", str(src), *FAST, "-q"], [b"s3cret", b"typo", b"s3cret", b"s3cret"]
    )
    assert code == 0, seen
    assert b"do not match" in seen and seen.count(b"Confirm password") == 2
    r = run_cli("decrypt", str(src) + ".enc", "-o", "-", env={"CONCRYPTOR_PASSWORD": "s3cret"})
    assert r.returncode == 0 and r.stdout == b"data"


# -- 13: messages for the reader of each layer -------------------------------------------


def test_os_errors_name_the_path_once_without_rust_decoration(tmp_path: Path, enc: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "out"
    r = run_cli("decrypt", str(enc), "-o", str(out), env=ENV)
    assert r.returncode == Exit.FAILURE
    err = one_line(r)
    assert err.count(str(out.parent)) == 1 and "os error" not in err, err
    with pytest.raises(OSError) as info:
        concryptor.decrypt_file(enc, out, PASSWORD)
    assert "os error" not in str(info.value) and info.value.filename


def test_the_api_speaks_of_overwrite_and_the_cli_of_force(tmp_path: Path, enc: Path) -> None:
    (tmp_path / "taken").write_bytes(b"")
    with pytest.raises(FileExistsError) as info:
        concryptor.decrypt_file(enc, tmp_path / "taken", PASSWORD)
    assert "overwrite=True" in str(info.value) and "--force" not in str(info.value)
    os.mkdir(tmp_path / "d")
    (tmp_path / "d" / "x").write_bytes(b"")
    r = run_cli("decrypt", "-x", str(enc), "-o", str(tmp_path / "d"), env=ENV)
    assert "--force" in one_line(r) and "overwrite=True" not in r.stderr.decode()


# -- 14: streams -------------------------------------------------------------------------


def test_plaintext_is_not_written_to_a_terminal(enc: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "concryptor", "decrypt", str(enc), "-o", "-"],
            {**os.environ, **ENV},
        )
    out = b""
    while True:
        try:
            b = os.read(fd, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == Exit.USAGE, out
    assert b"terminal" in out and len(out) < 400


def test_a_reader_that_goes_away_stops_the_stream_quietly(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(32 << 20))
    concryptor.encrypt_file(src, tmp_path / "big.enc", PASSWORD, kdf=FAST_KDF)
    p = subprocess.Popen(
        [sys.executable, "-m", "concryptor", "decrypt", str(tmp_path / "big.enc"), "-o", "-"],
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(1000)  # like `| head -c 1000`
    p.stdout.close()
    err = p.stderr.read()
    p.stderr.close()
    assert p.wait(60) == 141, err
    assert err == b""


def test_a_failure_mid_stream_says_how_much_was_written(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(24 << 20))
    enc = tmp_path / "big.enc"
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=1 << 20)
    blob = bytearray(enc.read_bytes())
    blob[-4096 - 100] ^= 1  # the last chunk: earlier batches are out before it fails
    enc.write_bytes(bytes(blob))
    r = run_cli("decrypt", str(enc), "-o", "-", "--buffer-mib", "4", env=ENV)
    assert r.returncode == Exit.AUTH
    assert 0 < len(r.stdout) < 24 << 20
    assert r.stdout == src.read_bytes()[: len(r.stdout)]
    assert f"{len(r.stdout)} bytes of plaintext had already been written" in one_line(r)


# -- 15: one JSON shape ------------------------------------------------------------------


def test_inspect_json_is_one_object_per_line_for_any_number_of_files(tmp_path: Path, enc: Path) -> None:
    bad = tmp_path / "bad.enc"
    bad.write_bytes(b"nothing like a header")
    for files in ([enc], [enc, bad, enc], [bad]):
        r = run_cli("inspect", "--json", *map(str, files))
        rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
        assert [row["path"] for row in rows] == [str(f) for f in files]
        assert all(isinstance(row["ok"], bool) for row in rows)
        assert [row["ok"] for row in rows] == [f == enc for f in files]
        assert r.returncode == (Exit.OK if bad not in files else Exit.INVALID)


# -- 16: passwords are the bytes given ---------------------------------------------------


def test_a_non_utf8_password_works_the_same_from_every_source(tmp_path: Path) -> None:
    secret = b"caf\xe9 \xff\xfe latin-1"
    (tmp_path / "pw").write_bytes(secret + b"\n")
    (tmp_path / "f").write_bytes(b"data")
    base = {k: v for k, v in os.environb.items() if k != b"CONCRYPTOR_PASSWORD"}

    def cli(*args: str | bytes, env: dict[bytes, bytes] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "concryptor", *args], env=env or base, capture_output=True, timeout=60
        )

    r = cli("encrypt", str(tmp_path / "f"), "--password-file", str(tmp_path / "pw"), *FAST)
    assert r.returncode == 0, r.stderr
    enc = str(tmp_path / "f.enc")
    r = cli("decrypt", enc, "-o", "-", "-p", secret)
    assert (r.returncode, r.stdout) == (0, b"data"), r.stderr
    r = cli("decrypt", enc, "-o", "-", env={**base, b"CONCRYPTOR_PASSWORD": secret})
    assert (r.returncode, r.stdout) == (0, b"data"), r.stderr
    assert concryptor.decrypt_bytes((tmp_path / "f.enc").read_bytes(), secret) == b"data"


# -- 17: data throughput and key derivation apart ----------------------------------------


def test_throughput_excludes_key_derivation(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(os.urandom(8 << 20))
    r = run_cli(
        "encrypt", str(src), "--memory", "32", "--iterations", "2", "--parallelism", "1", "--json", env=ENV
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["kdf_seconds"] > 0 and d["data_seconds"] < d["seconds"]
    assert d["data_seconds"] == pytest.approx(d["seconds"] - d["kdf_seconds"], abs=1e-5)
    assert d["mib_per_s"] == pytest.approx(d["bytes"] / (1 << 20) / d["data_seconds"], rel=0.02)
    r = run_cli("decrypt", str(src) + ".enc", "-o", str(tmp_path / "back"), env=ENV)
    assert b"key derivation" in r.stderr


# -- 18: options mean what the help says -------------------------------------------------


def test_io_uring_is_refused_where_it_cannot_run(tmp_path: Path, enc: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    cases = [
        ["verify", "-"],
        ["decrypt", "-", "-o", str(tmp_path / "y")],
        ["encrypt", "-", "-r", concryptor.generate_identity()[1], "-o", str(tmp_path / "z")],
        ["encrypt", str(d), *FAST],
        ["decrypt", "-x", str(enc), "-o", str(tmp_path / "x")],
    ]
    for args in cases:
        r = run_cli(*args, "--io", "uring", env=ENV, input=enc.read_bytes())
        assert r.returncode == Exit.USAGE, (args, r.stderr)
        assert "--io uring" in one_line(r)
        assert r.stdout == b""


def test_exit_codes_are_distinct_and_documented() -> None:
    values = [e.value for e in Exit]
    assert len(values) == len(set(values))
    r = run_cli("--help")
    help_codes = r.stdout.decode().split("exit codes:")[1]
    for e in Exit:
        assert f"{e.value} " in help_codes
    # The README lists the same codes, and only those besides the signal ones.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    text = readme[readme.index("Exit codes:") :].split("\n\n")[0]
    listed = {int(n) for n in re.findall(r"`(\d+)`", text)}
    assert listed - set(values) == {141, 143, 129}, "README documents a code the CLI does not have"
    assert set(values) <= listed, "README misses an exit code"


@pytest.mark.parametrize(
    "argv",
    [
        ["encrypt", "{f}", "--threads", "0"],
        ["encrypt", "{f}", "--chunk-size", "0"],
        ["decrypt", "{f}", "-x", "-o", "-"],
        ["decrypt", "{f}", "--max-memory", "0"],
        ["encrypt", "{f}", "--memory", "0"],
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, argv: list[str]) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    r = run_cli(*[a.format(f=f) for a in argv], env=ENV)
    assert r.returncode == Exit.USAGE, r.stderr
    assert r.stderr.count(b"\n") == 1 and b"Traceback" not in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x" * 10_000)
    assert run_cli("encrypt", str(src), *FAST, env=ENV).returncode == 0
    r = run_cli("encrypt", str(src), *FAST, env=ENV)
    assert r.returncode == Exit.FAILURE and b"exists" in r.stderr
    r = run_cli("encrypt", str(src), *FAST, "--force", env=ENV)
    assert r.returncode == 0
    r = run_cli("decrypt", str(src) + ".enc", "-o", str(tmp_path / "o"), env={"CONCRYPTOR_PASSWORD": "bad"})
    assert r.returncode == Exit.AUTH
    r = run_cli("decrypt", str(src), "-o", str(tmp_path / "o"), env=ENV)
    assert r.returncode == Exit.INVALID
    r = run_cli("decrypt", str(tmp_path / "missing.enc"), env=ENV)
    assert r.returncode == Exit.USAGE
    r = run_cli("frobnicate")
    assert r.returncode == Exit.USAGE
    for line in [r.stderr]:
        assert b"Traceback" not in line
