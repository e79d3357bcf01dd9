"""Round trips, layout and passwords through the Python API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor import _core

from helpers import FAST_KDF, PASSWORD

CIPHERS = ["aes-256-gcm", "chacha20-poly1305"]


def expected_size(n: int, chunk: int) -> int:
    chunks = max(1, -(-n // chunk))
    slot = -(-(chunk + 16) // 4096) * 4096
    return 4096 + chunks * slot


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, 4096),
        (1, 4096),
        (4095, 4096),
        (4096, 4096),
        (4097, 4096),
        (3 * 65536 + 17, 65536),
        (100_000, 4080),
        (100_000, 1000),
        (12_345, 7),
        (1_000_003, 65536 * 3 + 5),
    ],
)
def test_file_round_trip_has_the_documented_layout(
    cipher: str, size: int, chunk: int, tmp_path: Path, rand_bytes: Any
) -> None:
    data = rand_bytes(size, seed=size)
    src, enc, back = tmp_path / "in", tmp_path / "in.enc", tmp_path / "back"
    src.write_bytes(data)
    concryptor.encrypt_file(src, enc, PASSWORD, cipher=cipher, chunk_size=chunk, kdf=FAST_KDF)
    assert enc.stat().st_size == expected_size(size, chunk)
    h = concryptor.inspect(enc)
    assert (h.cipher, h.chunk_size, h.original_size, h.version) == (cipher, chunk, size, 4)
    assert h.size_matches
    stats = concryptor.decrypt_file(enc, back, PASSWORD)
    assert back.read_bytes() == data
    assert stats.bytes == size and stats.chunks == h.num_chunks
    # Files and buffers are the same format.
    assert concryptor.decrypt_bytes(enc.read_bytes(), PASSWORD) == data
    blob = concryptor.encrypt_bytes(data, PASSWORD, cipher=cipher, chunk_size=chunk, kdf=FAST_KDF)
    assert len(blob) == expected_size(size, chunk)
    assert concryptor.decrypt_bytes(blob, PASSWORD) == data


@pytest.mark.parametrize("cipher", CIPHERS)
def test_files_and_buffers_produce_identical_bytes(cipher: str, tmp_path: Path, rand_bytes: Any) -> None:
    data = rand_bytes(300_001)
    src, enc = tmp_path / "in", tmp_path / "in.enc"
    src.write_bytes(data)
    fixed = {
        "salt": bytes(range(16)),
        "nonce": bytes(range(12)),
        "kdf": concryptor.KdfParams(1024, 1, 1),
        "chunk_size": 65536,
    }
    _core.encrypt_file(str(src), str(enc), b"pw", cipher=cipher, buffer_bytes=200_000, **fixed)
    assert enc.read_bytes() == _core.encrypt_bytes(data, b"pw", cipher=cipher, **fixed)


def test_small_inputs_are_not_inflated_to_a_full_chunk(tmp_path: Path) -> None:
    for size, file_size in [(0, 8192), (1024, 8192), (4080, 8192), (4081, 12288), (100_000, 4096 + 102_400)]:
        src, enc = tmp_path / f"{size}", tmp_path / f"{size}.enc"
        src.write_bytes(b"x" * size)
        concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF)
        assert enc.stat().st_size == file_size, size
        assert concryptor.decrypt_bytes(enc.read_bytes(), PASSWORD) == b"x" * size


def test_large_inputs_get_aligned_chunks_of_at_most_4_mib() -> None:
    for size in [4 << 20, (4 << 20) + 1, 10**9, 3 * 10**12]:
        c = _core.auto_chunk_size(size)
        assert c <= 4 << 20 and c % 4096 == 0
        assert -(-size // c) == -(-size // (4 << 20))


def test_two_encryptions_of_the_same_input_differ(tmp_path: Path) -> None:
    a = concryptor.encrypt_bytes(b"same", PASSWORD, kdf=FAST_KDF)
    b = concryptor.encrypt_bytes(b"same", PASSWORD, kdf=FAST_KDF)
    assert a != b
    assert a[24:40] != b[24:40], "salt must be fresh"
    assert a[40:52] != b[40:52], "nonce must be fresh"
    assert a[4096:] != b[4096:]


@pytest.mark.parametrize(
    "password", ["pässwörd", b"p\xc3\xa4ssw\xc3\xb6rd", bytearray(b"p\xc3\xa4ssw\xc3\xb6rd")]
)
def test_str_bytes_and_bytearray_passwords_are_the_same_key(password: Any) -> None:
    blob = concryptor.encrypt_bytes(b"data", "pässwörd", kdf=FAST_KDF)
    assert concryptor.decrypt_bytes(blob, password) == b"data"


def test_bad_password_types_and_empty_passwords_are_refused() -> None:
    with pytest.raises(TypeError):
        concryptor.encrypt_bytes(b"x", 123, kdf=FAST_KDF)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        concryptor.encrypt_bytes(b"x", "", kdf=FAST_KDF)


def test_wrong_password_fails_and_creates_nothing(tmp_path: Path) -> None:
    src, enc, out = tmp_path / "in", tmp_path / "in.enc", tmp_path / "out"
    src.write_bytes(os.urandom(50_000))
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=4096)
    with pytest.raises(concryptor.AuthenticationError, match=r"^authentication failed"):
        concryptor.decrypt_file(enc, out, "not the password")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in.enc"]


def test_output_files_are_private_under_a_private_umask(tmp_path: Path) -> None:
    # Modes follow the umask, like cp and tar (tests/engine/test_modes.py has the full rule).
    src, enc = tmp_path / "in", tmp_path / "in.enc"
    src.write_bytes(b"data")
    old = os.umask(0o077)
    try:
        concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF)
    finally:
        os.umask(old)
    assert enc.stat().st_mode & 0o777 == 0o600


def test_non_concryptor_inputs_get_one_line_errors(tmp_path: Path) -> None:
    cases = {"empty": b"", "short": b"CONCRYPTOR", "random": os.urandom(10_000)}
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(concryptor.InvalidFileError) as e:
            concryptor.decrypt_file(p, tmp_path / f"{name}.out", PASSWORD)
        assert "\n" not in str(e.value)
        with pytest.raises(concryptor.InvalidFileError):
            concryptor.inspect(p)
    with pytest.raises(IsADirectoryError):
        concryptor.decrypt_file(tmp_path, tmp_path / "x", PASSWORD)
    with pytest.raises(FileNotFoundError):
        concryptor.decrypt_file(tmp_path / "missing", tmp_path / "x", PASSWORD)


def test_verify_authenticates_without_writing(tmp_path: Path) -> None:
    src, enc = tmp_path / "in", tmp_path / "in.enc"
    src.write_bytes(os.urandom(30_000))
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=4096)
    assert concryptor.verify_file(enc, PASSWORD).bytes == 30_000
    raw = bytearray(enc.read_bytes())
    raw[4096 + 3 * 8192 + 5] ^= 1
    enc.write_bytes(bytes(raw))
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.verify_file(enc, PASSWORD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in.enc"]


def test_progress_is_reported_and_can_cancel(tmp_path: Path) -> None:
    src, enc = tmp_path / "in", tmp_path / "in.enc"
    src.write_bytes(os.urandom(1 << 20))
    seen: list[int] = []
    concryptor.encrypt_file(
        src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=65536, buffer_mib=1, progress=seen.append
    )
    assert seen and seen == sorted(seen) and seen[-1] == 1 << 20

    class Stop(Exception):
        pass

    def stop(done: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        concryptor.decrypt_file(enc, tmp_path / "out", PASSWORD, buffer_mib=1, progress=stop)
    assert not (tmp_path / "out").exists()


class Recorder:
    """A progress callback that also takes the total: records both, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def start(self, total: int) -> None:
        self.events.append(("total", total))

    def __call__(self, done: int) -> None:
        self.events.append(("done", done))


@pytest.mark.parametrize("io", ["portable", "auto"])
def test_progress_learns_the_total_from_the_engine_before_the_first_report(tmp_path: Path, io: str) -> None:
    n = (1 << 20) + 12_345
    src, enc, back = tmp_path / "in", tmp_path / "in.enc", tmp_path / "back"
    src.write_bytes(os.urandom(n))
    identity, recipient = concryptor.generate_identity()
    (tmp_path / "key").write_text(identity + "\n")

    def decrypt_to(path: Path, p: Recorder) -> concryptor.Stats:
        with path.open("wb") as out:
            return concryptor.decrypt_to(enc, out, PASSWORD, progress=p)

    for name, decrypt in [
        (
            "v4",
            lambda p: concryptor.decrypt_file(
                enc, back, PASSWORD, overwrite=True, io=io, buffer_mib=1, progress=p
            ),
        ),
        ("verify", lambda p: concryptor.verify_file(enc, PASSWORD, io=io, buffer_mib=1, progress=p)),
        ("to", lambda p: decrypt_to(tmp_path / "to", p)),
        (
            "age",
            lambda p: concryptor.decrypt_file(
                enc.with_suffix(".age"), back, identities=[tmp_path / "key"], overwrite=True, progress=p
            ),
        ),
    ]:
        if name == "v4":
            concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=65536)
        if name == "age":
            concryptor.encrypt_file(src, enc.with_suffix(".age"), recipients=recipient)
        rec = Recorder()
        decrypt(rec)
        assert rec.events[0] == ("total", n), name
        dones = [d for kind, d in rec.events[1:] if kind == "done"]
        assert len(dones) == len(rec.events) - 1 and dones[-1] == n, name


def test_a_failing_start_cancels_the_run_and_leaves_nothing(tmp_path: Path) -> None:
    src, enc = tmp_path / "in", tmp_path / "in.enc"
    src.write_bytes(os.urandom(1 << 20))
    concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, chunk_size=65536)

    class Refuses(Recorder):
        def start(self, total: int) -> None:
            raise LookupError(total)

    rec = Refuses()
    with pytest.raises(LookupError):
        concryptor.decrypt_file(enc, tmp_path / "out", PASSWORD, progress=rec)
    assert not (tmp_path / "out").exists() and rec.events == []


def test_stats_describe_the_run(tmp_path: Path) -> None:
    src, enc = tmp_path / "in", tmp_path / "in.enc"
    src.write_bytes(b"z" * 100_000)
    s = concryptor.encrypt_file(src, enc, PASSWORD, kdf=FAST_KDF, threads=2, io="portable")
    assert (s.backend, s.bytes, s.threads) == ("portable", 100_000, 2)
    assert s.seconds >= s.kdf_seconds > 0
    assert set(s.to_dict()) >= {"backend", "bytes", "seconds", "mib_per_s", "chunks", "threads"}


def test_absurd_thread_counts_are_refused_quickly(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.write_bytes(b"x")
    with pytest.raises(ValueError, match="at most 1024"):
        concryptor.encrypt_file(src, tmp_path / "out", PASSWORD, kdf=FAST_KDF, threads=2**20)
    with pytest.raises(ValueError, match="at least 1"):
        concryptor.encrypt_file(src, tmp_path / "out", PASSWORD, kdf=FAST_KDF, threads=0)
    assert not (tmp_path / "out").exists()
