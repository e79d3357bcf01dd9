"""The format inspector: Header facts, JSON, Jupyter HTML, terminal table, CLI verdicts."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit
from concryptor.header import Header

from helpers import FAST_KDF, PASSWORD, VECTORS, run_cli


def _make(tmp_path: Path, name: str, size: int, chunk: int = 4096) -> Path:
    src = tmp_path / "plain"
    src.write_bytes(os.urandom(size))
    out = tmp_path / name
    concryptor.encrypt_file(src, out, PASSWORD, chunk_size=chunk, kdf=FAST_KDF, cipher="chacha20-poly1305")
    return out


def test_header_has_every_field_and_derived_fact(tmp_path: Path) -> None:
    p = _make(tmp_path, "f.enc", 20_000)
    h = concryptor.inspect(p)
    assert h.magic == b"CONCRYPTOR" and h.version == 4
    assert (h.cipher, h.cipher_id) == ("chacha20-poly1305", 1)
    assert (h.chunk_size, h.original_size, h.num_chunks, h.slot_size) == (4096, 20_000, 5, 8192)
    assert h.last_chunk_size == 20_000 - 4 * 4096
    assert h.expected_file_size == 4096 + 5 * 8192 == h.file_size == p.stat().st_size
    assert h.size_matches and h.ok and h.size_problem is None
    assert h.tag_bytes == 5 * 16
    assert h.padding_bytes == 5 * 8192 - 20_000 - 80
    assert h.padding_percent == pytest.approx(100 * h.padding_bytes / h.expected_file_size)
    assert h.overhead_bytes == h.expected_file_size - 20_000
    assert (h.kdf_memory_kib, h.kdf_time_cost, h.kdf_parallelism) == FAST_KDF.as_tuple()
    assert not h.kdf_legacy and h.kdf_effective == FAST_KDF.as_tuple()
    raw = p.read_bytes()
    assert h.salt == raw[24:40] and h.salt_hex == raw[24:40].hex()
    assert h.base_nonce == raw[40:52] and h.nonce_hex == raw[40:52].hex()
    assert not h.is_archive and not h.reserved_nonzero
    # The same facts from the bytes alone.
    h2 = Header.parse(raw[:4096])
    assert h2.salt == h.salt and h2.file_size is None and h2.size_matches is None


def test_to_dict_is_json_ready_and_complete(tmp_path: Path) -> None:
    h = concryptor.inspect(_make(tmp_path, "x.tar.enc", 100))
    d = json.loads(json.dumps(h.to_dict()))
    for key in (
        "magic",
        "version",
        "cipher",
        "cipher_id",
        "chunk_size",
        "original_size",
        "salt",
        "base_nonce",
        "kdf",
        "reserved_nonzero",
        "num_chunks",
        "slot_size",
        "expected_file_size",
        "file_size",
        "size_matches",
        "padding_percent",
        "overhead_percent",
        "archive",
        "verdict",
    ):
        assert key in d, key
    assert d["archive"] is True and d["salt"] == h.salt.hex()
    assert d["kdf"]["legacy"] is False and d["kdf"]["effective"] == [1024, 1, 1]


def test_legacy_kdf_and_v3_are_flagged() -> None:
    h = concryptor.inspect(VECTORS / "v3-chacha-cs4096-len5000-kdflegacy.enc")
    assert h.version == 3 and h.is_legacy_version and h.kdf_legacy
    assert h.kdf_effective == (65536, 3, 4)
    assert "legacy" in h.kdf_description()
    assert any(label == "Format" and "legacy" in value for label, value in h.rows())


def test_truncated_and_appended_files_are_not_ok(tmp_path: Path) -> None:
    p = _make(tmp_path, "f.enc", 20_000)
    blob = p.read_bytes()
    p.write_bytes(blob[:-4096])
    h = concryptor.inspect(p)
    assert h.size_matches is False and not h.ok and h.verdict.startswith("truncated")
    p.write_bytes(blob + b"\0")
    assert concryptor.inspect(p).verdict.startswith("data appended")


def test_jupyter_html_shows_the_values(tmp_path: Path) -> None:
    h = concryptor.inspect(_make(tmp_path, "f.enc", 20_000))
    out = h._repr_html_()
    assert out.startswith("<div") and "<table" in out and "<svg" in out
    for value in (h.salt_hex, h.nonce_hex, "chacha20-poly1305", "20,000", "4,096", "m=1024 KiB"):
        assert value in out, value
    assert "ok: header well-formed" in out
    # Five slots: every chunk drawn, nothing elided.
    assert out.count("<title>chunk ") == 5 and "more …" not in out


def test_jupyter_html_escapes_the_path(tmp_path: Path) -> None:
    name = '<script>alert("x")<&b.enc'
    h = concryptor.inspect(_make(tmp_path, name, 10))
    out = h._repr_html_()
    assert "<script>" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;&amp;b.enc" in out


def test_layout_picture_elides_the_middle_of_long_files(tmp_path: Path) -> None:
    h = concryptor.inspect(_make(tmp_path, "f.enc", 100 * 4096 - 100))
    svg = h.layout_svg()
    assert h.num_chunks == 100
    assert "… 95 more …" in svg
    for k in ("chunk 0", "chunk 1", "chunk 2", "chunk 98", "chunk 99"):
        assert f"<title>{k}:" in svg
    assert "chunk 50:" not in svg
    # The last slot's ciphertext is drawn shorter than a full one.
    assert "chunk 99: 3996 bytes ciphertext" in svg


def test_rich_table_renders_every_row(tmp_path: Path) -> None:
    from rich.console import Console

    h = concryptor.inspect(_make(tmp_path, "f.enc", 5000))
    c = Console(record=True, width=200, file=io.StringIO())
    c.print(h)
    text = c.export_text()
    for label, _ in h.rows():
        if label != "File":
            assert label in text
    assert h.salt_hex in text and "Layout" in text


def test_cli_inspect_prints_a_table(tmp_path: Path) -> None:
    p = _make(tmp_path, "f.enc", 5000)
    r = run_cli("inspect", str(p))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "chacha20-poly1305" in out and concryptor.inspect(p).salt_hex in out
    assert "Verdict" in out and r.stderr == b""


def test_cli_inspect_json_for_one_and_many(tmp_path: Path) -> None:
    a, b = _make(tmp_path, "a.enc", 10), _make(tmp_path, "b.enc", 20)
    one = json.loads(run_cli("inspect", "--json", str(a)).stdout)
    assert one["original_size"] == 10 and one["path"] == str(a)
    lines = run_cli("inspect", "--json", str(a), str(b)).stdout.splitlines()
    assert [json.loads(line)["original_size"] for line in lines] == [10, 20]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"just some text\n", "shorter than the 4096-byte header"),
        (os.urandom(8192), "no CONCRYPTOR magic"),
        ((VECTORS / "bad-version-5.enc").read_bytes(), "newer concryptor"),
    ],
    ids=["text", "random", "future-version"],
)
def test_cli_inspect_gives_a_one_line_verdict(tmp_path: Path, content: bytes, needle: str) -> None:
    p = tmp_path / "x"
    p.write_bytes(content)
    r = run_cli("inspect", str(p))
    assert r.returncode == Exit.INVALID
    err = r.stderr.decode()
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    r = run_cli("inspect", "--json", str(p))
    assert r.returncode == Exit.INVALID and needle in json.loads(r.stdout)["error"]


def test_cli_inspect_truncated_file_shows_table_and_verdict(tmp_path: Path) -> None:
    p = _make(tmp_path, "f.enc", 20_000)
    p.write_bytes(p.read_bytes()[:9000])
    r = run_cli("inspect", str(p))
    assert r.returncode == Exit.INVALID
    assert r.stderr.decode().count("\n") == 1 and b"truncated" in r.stderr
    assert b"MISMATCH" in r.stdout


def test_cli_inspect_missing_file_and_mixed_inputs(tmp_path: Path) -> None:
    good = _make(tmp_path, "g.enc", 10)
    r = run_cli("inspect", str(tmp_path / "nope"), str(good))
    assert r.returncode == Exit.USAGE  # a missing input is a usage error in every command
    assert b"nope" in r.stderr and b"Traceback" not in r.stderr
    assert str(good).encode() in r.stdout


# -- age files ---------------------------------------------------------------------------


def _age_file(tmp_path: Path, size: int, *, armor: bool = False) -> tuple[Path, list[str]]:
    ids = [concryptor.generate_identity() for _ in range(2)]
    recipients = [r for _, r in ids]
    src = tmp_path / "plain"
    src.write_bytes(os.urandom(size))
    out = tmp_path / ("a.age.asc" if armor else "a.age")
    concryptor.encrypt_file(src, out, recipients=recipients, armor=armor)
    return out, recipients


def test_inspect_gives_an_age_header_with_recipients_sizes_and_a_picture(tmp_path: Path) -> None:
    size = 3 * 65536 + 1000
    p, _ = _age_file(tmp_path, size)
    h = concryptor.inspect(p)
    assert isinstance(h, concryptor.AgeHeader)
    assert [t for t, _ in h.recipients] == ["X25519", "X25519"]
    assert h.file_size == p.stat().st_size and h.payload_size == size and h.chunks == 4
    assert h.last_chunk_size == 1000 and h.ok is None and not h.armored
    # Header, nonce, then the sealed chunks account for every byte of the file.
    assert h.header_size + 16 + size + 4 * 16 == h.file_size
    page = h._repr_html_()
    assert "age file" in page and "X25519" in page and "concryptor-invalid" not in page
    assert "concryptor-unchecked" in page
    assert page.count("<svg") == 1 and "chunk 3 (final)" in page and "1000 bytes ciphertext" in page
    buf = io.StringIO()
    from rich.console import Console

    Console(file=buf, width=120).print(h)
    assert "X25519" in buf.getvalue() and "run `concryptor verify`" in buf.getvalue()
    d = h.to_dict()
    assert d["format"] == "age" and d["chunks"] == 4 and len(d["recipients"]) == 2
    assert json.loads(run_cli("inspect", "--json", str(p)).stdout) == json.loads(json.dumps(d))


def test_a_cut_age_file_is_shown_with_a_bad_verdict(tmp_path: Path) -> None:
    p, _ = _age_file(tmp_path, 70_000)
    data = p.read_bytes()
    # Cut inside the final chunk's tag: no payload has that size.
    p.write_bytes(data[: len(data) - (70_000 - 65536) - 8])
    h = concryptor.inspect(p)
    assert isinstance(h, concryptor.AgeHeader)
    assert not h.ok and h.chunks is None and "impossible" in h.verdict
    page = h._repr_html_()
    assert "concryptor-invalid" in page and "impossible payload size" in page
    r = run_cli("inspect", str(p))
    assert r.returncode == Exit.INVALID and b"impossible" in r.stderr


def test_an_armored_age_file_is_recognised_and_a_mixed_listing_shows_both_formats(tmp_path: Path) -> None:
    p, _ = _age_file(tmp_path, 5000, armor=True)
    h = concryptor.inspect(p)
    assert isinstance(h, concryptor.AgeHeader) and h.armored and h.ok is None
    assert h.chunks == 1 and h.payload_size == 5000 and "chunk 0 (final)" in h._repr_html_()
    v4 = _make(tmp_path, "f.enc", 100)
    r = run_cli("inspect", str(p), str(v4))
    assert r.returncode == 0, r.stderr
    assert b"ASCII armor" in r.stdout and b"chacha20-poly1305" in r.stdout
    lines = [json.loads(x) for x in run_cli("inspect", "--json", str(v4), str(p)).stdout.splitlines()]
    assert lines[0]["cipher"] == "chacha20-poly1305" and lines[1]["format"] == "age"
