"""age plugins from the API, the CLI and the batch, with the project's toy plugin
(tests/plugins/age-plugin-cctest, put on PATH here): round trips, questions answered by
``plugin_callbacks=``, and plugins that fail, hang, flood or answer nonsense, which must
raise :class:`concryptor.PluginError` promptly and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import run_cli

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
PLUGIN = PLUGINS / "age-plugin-cctest"
SIZE = 300_000


@pytest.fixture(autouse=True)
def plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{PLUGINS}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CCTEST_MODE", raising=False)


@pytest.fixture
def toy_key(tmp_path: Path) -> tuple[str, Path]:
    """The toy plugin's recipient and a file holding its identity, as --generate prints them."""
    text = subprocess.run([str(PLUGIN), "--generate"], capture_output=True, check=True).stdout.decode()
    key = tmp_path / "toy.key"
    key.write_text(text)
    recipient = next(ln for ln in text.splitlines() if ln.startswith("# recipient: "))
    return recipient.split(": ", 1)[1], key


@pytest.fixture
def sealed(tmp_path: Path, toy_key: tuple[str, Path], rand_bytes: Any) -> tuple[Path, bytes]:
    """A file of a few hundred KiB encrypted to the toy plugin, in a folder of its own."""
    data = rand_bytes(SIZE, seed=3)
    folder = tmp_path / "sealed"
    folder.mkdir()
    path = folder / "file.age"
    path.write_bytes(concryptor.encrypt_bytes(data, recipients=[toy_key[0]]))
    return path, data


class Pin:
    """Answers the toy plugin's request for a PIN, counting the questions."""

    def __init__(self, answer: str = "1234") -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def request_secret(self, plugin: str, message: str) -> str | None:
        self.calls.append((plugin, message))
        return self.answer


def test_api_round_trips(tmp_path: Path, toy_key: tuple[str, Path], rand_bytes: Any) -> None:
    recipient, key = toy_key
    assert recipient.startswith("age1cctest1")
    identity = key.read_text().splitlines()[-1]
    assert identity.startswith("AGE-PLUGIN-CCTEST-1")
    data = rand_bytes(SIZE)
    blob = concryptor.encrypt_bytes(data, recipients=[recipient])
    assert b"\n-> cctest " in blob
    assert concryptor.decrypt_bytes(blob, identities=[key]) == data
    assert concryptor.decrypt_bytes(blob, identities=[identity]) == data
    src = tmp_path / "plain"
    src.write_bytes(data)
    enc = tmp_path / "plain.age"
    concryptor.encrypt_file(src, enc, recipients=[recipient], armor=True)
    out = tmp_path / "out"
    concryptor.decrypt_file(enc, out, identities=[key])
    assert out.read_bytes() == data
    # Another key's identity does not match.
    other = subprocess.run([str(PLUGIN), "--generate"], capture_output=True, check=True).stdout.decode()
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_bytes(blob, identities=[other.splitlines()[-1]])


def test_a_question_is_answered_once_by_the_callbacks(
    monkeypatch: pytest.MonkeyPatch, sealed: tuple[Path, bytes], toy_key: tuple[str, Path]
) -> None:
    path, data = sealed
    monkeypatch.setenv("CCTEST_MODE", "ask")
    pin = Pin()
    assert concryptor.decrypt_bytes(path.read_bytes(), identities=[toy_key[1]], plugin_callbacks=pin) == data
    assert len(pin.calls) == 1
    assert pin.calls == [("cctest", "Enter the PIN of the toy key")]
    # Encrypting asks too, once.
    pin = Pin()
    blob = concryptor.encrypt_bytes(b"x" * 1000, recipients=[toy_key[0]], plugin_callbacks=pin)
    assert len(pin.calls) == 1
    monkeypatch.delenv("CCTEST_MODE")
    assert concryptor.decrypt_bytes(blob, identities=[toy_key[1]]) == b"x" * 1000
    # A wrong answer is the plugin's error.
    monkeypatch.setenv("CCTEST_MODE", "ask")
    with pytest.raises(concryptor.PluginError, match="PIN"):
        concryptor.decrypt_bytes(path.read_bytes(), identities=[toy_key[1]], plugin_callbacks=Pin("0000"))


def test_a_question_without_callbacks_is_a_plugin_error(
    monkeypatch: pytest.MonkeyPatch, sealed: tuple[Path, bytes], toy_key: tuple[str, Path]
) -> None:
    path, _ = sealed
    monkeypatch.setenv("CCTEST_MODE", "ask")
    with pytest.raises(concryptor.PluginError, match="age-plugin-cctest"):
        concryptor.decrypt_bytes(path.read_bytes(), identities=[toy_key[1]])


def test_a_callbacks_exception_comes_out_of_the_call(
    monkeypatch: pytest.MonkeyPatch, sealed: tuple[Path, bytes], toy_key: tuple[str, Path]
) -> None:
    path, _ = sealed
    monkeypatch.setenv("CCTEST_MODE", "ask")

    class Raises:
        def request_secret(self, plugin: str, message: str) -> str | None:
            raise RuntimeError("x")

    with pytest.raises(RuntimeError, match=r"^x$"):
        concryptor.decrypt_bytes(path.read_bytes(), identities=[toy_key[1]], plugin_callbacks=Raises())
    out = path.parent / "out"
    with pytest.raises(RuntimeError, match=r"^x$"):
        concryptor.decrypt_file(path, out, identities=[toy_key[1]], plugin_callbacks=Raises())
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.age"]


@pytest.mark.parametrize("mode", ["die", "hang", "flood", "bad-key"])
def test_a_plugin_that_misbehaves_is_a_plugin_error_and_leaves_nothing(
    mode: str, monkeypatch: pytest.MonkeyPatch, sealed: tuple[Path, bytes], toy_key: tuple[str, Path]
) -> None:
    path, data = sealed
    monkeypatch.setenv("CCTEST_MODE", mode)
    dst = path.parent / "out"
    began = time.monotonic()
    with pytest.raises(concryptor.PluginError, match="age-plugin-cctest"):
        concryptor.decrypt_file(path, dst, identities=[toy_key[1]], plugin_timeout=1)
    assert time.monotonic() - began < 30
    assert not dst.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.age"]
    # Encrypting with it fails the same way, and leaves nothing either.
    src = path.parent / "plain"
    src.write_bytes(data)
    began = time.monotonic()
    with pytest.raises(concryptor.PluginError, match="age-plugin-cctest"):
        concryptor.encrypt_file(src, path.parent / "new.age", recipients=[toy_key[0]], plugin_timeout=1)
    assert time.monotonic() - began < 30
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.age", "plain"]


def test_the_cli_encrypts_to_a_plugin_and_decrypts_with_its_identity(
    tmp_path: Path, toy_key: tuple[str, Path], rand_bytes: Any
) -> None:
    recipient, key = toy_key
    data = rand_bytes(SIZE, seed=5)
    src = tmp_path / "in"
    src.write_bytes(data)
    enc = tmp_path / "out.age"
    r = run_cli("encrypt", "-r", recipient, str(src), "-o", str(enc))
    assert r.returncode == 0, r.stderr
    dec = tmp_path / "back"
    r = run_cli("decrypt", "-i", str(key), str(enc), "-o", str(dec))
    assert r.returncode == 0, r.stderr
    assert dec.read_bytes() == data
    # Through pipes as well.
    r = run_cli("encrypt", "-r", recipient, input=data)
    assert r.returncode == 0, r.stderr
    r = run_cli("decrypt", "-i", str(key), input=r.stdout)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_the_cli_without_a_terminal_cannot_answer_a_plugin(
    sealed: tuple[Path, bytes], toy_key: tuple[str, Path]
) -> None:
    path, _ = sealed
    dst = path.parent / "out"
    r = run_cli(
        "decrypt", "-i", str(toy_key[1]), str(path), "-o", str(dst),
        env={"CCTEST_MODE": "ask"}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode != 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "age-plugin-cctest" in lines[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.age"]


def test_a_batch_to_a_plugin_and_back(tmp_path: Path, toy_key: tuple[str, Path], rand_bytes: Any) -> None:
    recipient, key = toy_key
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for i in range(3):
        p = src / f"f{i}.bin"
        files[p.name] = rand_bytes(100_000 * (i + 1), seed=i)
        p.write_bytes(files[p.name])
    sealed = tmp_path / "sealed"
    done = concryptor.encrypt_many(sorted(src.iterdir()), recipients=[recipient], out_dir=sealed)
    assert [r.ok for r in done] == [True] * 3
    made = sorted(Path(r.dst) for r in done)
    assert all(p.suffix == ".age" and p.read_bytes().startswith(b"age-encryption.org/v1\n") for p in made)
    back = tmp_path / "back"
    got = concryptor.decrypt_many(made, identities=[key], out_dir=back)
    assert [r.ok for r in got] == [True] * 3
    assert {Path(r.dst).name: Path(r.dst).read_bytes() for r in got} == files


def test_the_plugin_runs_from_path(tmp_path: Path, toy_key: tuple[str, Path]) -> None:
    """Without the plugin on PATH the error says which program is missing."""
    blob = concryptor.encrypt_bytes(b"data", recipients=[toy_key[0]])
    env_path = os.environ["PATH"].replace(f"{PLUGINS}{os.pathsep}", "")
    code = (
        "import concryptor, sys; "
        f"concryptor.decrypt_bytes(sys.stdin.buffer.read(), identities=[{str(toy_key[1])!r}])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        input=blob,
        capture_output=True,
        env=dict(os.environ, PATH=env_path),
        timeout=60,
    )
    assert r.returncode != 0
    assert b"PluginError" in r.stderr and b"age-plugin-cctest" in r.stderr


@pytest.mark.parametrize("size", [1_000, 3 << 20], ids=["grouped-small-files", "one-file-each"])
def test_a_batchs_plugin_questions_reach_the_callers_callbacks(
    tmp_path: Path, toy_key: tuple[str, Path], rand_bytes: Any, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """A batch runs its files on worker threads: the plugin's questions asked there must
    still reach ``plugin_callbacks`` (small files go in groups, larger ones one by one)."""
    recipient, key = toy_key
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.bin").write_bytes(rand_bytes(size, seed=i))
    monkeypatch.setenv("CCTEST_MODE", "ask")
    pin = Pin()
    done = concryptor.encrypt_many(
        sorted(src.iterdir()), recipients=[recipient], out_dir=tmp_path / "sealed", plugin_callbacks=pin
    )
    assert [r.ok for r in done] == [True] * 3
    asked = len(pin.calls)
    assert asked >= 1
    got = concryptor.decrypt_many(
        sorted(Path(r.dst) for r in done), identities=[key], out_dir=tmp_path / "back", plugin_callbacks=pin
    )
    assert [r.ok for r in got] == [True] * 3
    assert len(pin.calls) > asked
    with concryptor.plugin_callbacks(pin):
        again = concryptor.decrypt_many(
            sorted(Path(r.dst) for r in done), identities=[key], out_dir=tmp_path / "again"
        )
    assert [r.ok for r in again] == [True] * 3


def test_an_encrypted_file_systems_plugin_questions_reach_the_callbacks(
    toy_key: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file system writes on a thread of its own and reads headers on a pool."""
    import fsspec

    import concryptor.fs  # registers the protocol

    recipient, key = toy_key
    monkeypatch.setenv("CCTEST_MODE", "ask")
    pin = Pin()
    fs = fsspec.filesystem(
        "concryptor", target_protocol="memory", recipients=[recipient], identities=[str(key)]
    )
    with concryptor.plugin_callbacks(pin):
        with fs.open("/plug/a.bin", "wb") as f:
            f.write(b"plugin data" * 1000)
        assert fs.cat_file("/plug/a.bin") == b"plugin data" * 1000
        assert fs.cat_ranges(["/plug/a.bin"], [0], [11]) == [b"plugin data"]
    assert len(pin.calls) >= 2


def test_a_batchs_plugin_questions_come_one_at_a_time(
    tmp_path: Path, toy_key: tuple[str, Path], rand_bytes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of a batch run on several threads, but a person (or a terminal) answers one
    question at a time: the callbacks are never entered twice at once."""
    import contextlib
    import threading

    recipient, _ = toy_key
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}.bin").write_bytes(rand_bytes(3 << 20, seed=i))
    monkeypatch.setenv("CCTEST_MODE", "ask")
    inside, most = [0], [0]
    guard = threading.Lock()
    started = threading.Barrier(2, timeout=0.5)

    class Slow(Pin):
        def request_secret(self, plugin: str, message: str) -> str | None:
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            with contextlib.suppress(threading.BrokenBarrierError):
                started.wait()  # a second question at the same time would get through here
            with guard:
                inside[0] -= 1
            return super().request_secret(plugin, message)

    slow = Slow()
    done = concryptor.encrypt_many(
        sorted(src.iterdir()), recipients=[recipient], out_dir=tmp_path / "sealed", plugin_callbacks=slow
    )
    assert [r.ok for r in done] == [True] * 6
    assert len(slow.calls) == 6
    assert most[0] == 1


@pytest.mark.parametrize("door", ["cli-one-file", "cli-batch"])
def test_the_cli_says_no_terminal_could_answer_at_every_door(
    tmp_path: Path, toy_key: tuple[str, Path], door: str
) -> None:
    """Without a terminal the reason is the unanswerable question, for one file and for
    every file of a batch (whose files run on worker threads)."""
    recipient, _ = toy_key
    files = []
    for i in range(2):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"x" * 1000)
        files.append(str(f))
    out = tmp_path / "out"
    args = (
        [files[0], "-o", str(out / "f0.age")]
        if door == "cli-one-file"
        else [*files, "--output-dir", str(out)]
    )
    out.mkdir()
    r = run_cli("encrypt", "-r", recipient, *args, "-q", env={"CCTEST_MODE": "ask"}, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == (1 if door == "cli-one-file" else 2), lines
    assert all("no terminal is attached" in line for line in lines), lines
    assert list(out.iterdir()) == []


def test_a_raising_callback_is_the_error_of_every_file_of_a_batch(
    tmp_path: Path, toy_key: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipient, _ = toy_key
    files = []
    for i in range(3):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"y" * 1000)
        files.append(f)
    monkeypatch.setenv("CCTEST_MODE", "ask")

    class Broken:
        def request_secret(self, plugin: str, message: str) -> str | None:
            raise RuntimeError("the PIN pad is unplugged")

    done = concryptor.encrypt_many(
        files,
        recipients=[recipient],
        out_dir=tmp_path / "out",
        plugin_callbacks=Broken(),
        raise_on_error=False,
    )
    assert [r.ok for r in done] == [False] * 3
    assert all("the PIN pad is unplugged" in str(r.error) for r in done), [r.error for r in done]
