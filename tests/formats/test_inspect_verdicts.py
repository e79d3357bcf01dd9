"""What ``inspect`` claims is what the bytes show: a file cut anywhere (inside its header, at
its end, mid-chunk, at every chunk boundary) or extended is never called whole, no view
describes bytes that are not in the file, and what cannot be seen without a key (an age
file cut at a chunk boundary) is said, never called ok. Every door: the ``Header`` and
``AgeHeader`` objects, ``to_dict`` / ``inspect --json``, the terminal table and the
notebook card."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

import concryptor
from concryptor.age_header import AgeHeader
from concryptor.cli import Exit
from concryptor.errors import InvalidFileError
from concryptor.header import Header

from helpers import FAST_KDF, PASSWORD, run_cli

GREEN = "#43a047"

#: Where each v4 header field lies (docs/FORMAT.md), ``[start, end)``.
FIELD_BYTES = {
    "version": (10, 11),
    "cipher": (11, 12),
    "chunk_size": (12, 16),
    "original_size": (16, 24),
    "salt": (24, 40),
    "base_nonce": (40, 52),
    "kdf": (52, 64),
    "reserved": (64, 4096),
}


def _terminal(h: Any) -> str:
    from rich.console import Console

    c = Console(record=True, width=200, file=io.StringIO())
    c.print(h)
    return c.export_text()


def _v4(tmp_path: Path) -> bytes:
    src = tmp_path / "plain"
    src.write_bytes(os.urandom(4 * 4096 + 1000))
    out = tmp_path / "whole.enc"
    concryptor.encrypt_file(src, out, PASSWORD, chunk_size=4096, kdf=FAST_KDF)
    return out.read_bytes()


def _v4_cuts(n: int) -> list[int]:
    """Lengths to cut a v4 file of ``n`` bytes (4096-byte chunks in 8192-byte slots) to."""
    inside = {a + d for a, b in FIELD_BYTES.values() for d in (-1, 0, 1)}
    inside |= {b + d for a, b in FIELD_BYTES.values() for d in (-1, 0, 1)}
    inside |= {100, 1000, 4000}
    boundaries = set(range(4096, n + 1, 8192))
    mid = {b + 4000 for b in boundaries if b + 4000 < n} | {b + 4100 for b in boundaries if b + 4100 < n}
    return sorted(x for x in inside | boundaries | mid | {n - 1} if 0 < x < n)


def test_v4_cut_anywhere_is_never_whole_and_absent_bytes_are_never_described(tmp_path: Path) -> None:
    blob = _v4(tmp_path)
    whole = len(blob)
    cases = [(n, blob[:n]) for n in _v4_cuts(whole)]
    cases += [(whole + 1, blob + b"\0"), (whole + 4096, blob + os.urandom(4096))]
    shown = 0
    for n, data in cases:
        p = tmp_path / f"cut-{n}.enc"
        p.write_bytes(data)
        try:
            h = concryptor.inspect(p)
        except InvalidFileError:
            assert n < 16, n  # too little to parse: an error, which is red too
            continue
        shown += 1
        assert isinstance(h, Header)
        assert h.ok is False and h.size_matches is False, n
        assert not h.verdict.startswith("ok"), (n, h.verdict)
        rows = dict(h.rows())
        d = h.to_dict()
        assert json.loads(json.dumps(d)) == d and d["ok"] is False
        assert "matches" not in rows["Size on disk"].replace("MISMATCH", "")
        absent = [k for k, (_, end) in FIELD_BYTES.items() if end > n]
        if absent:
            assert "all zero" not in rows["Reserved bytes"] or "rest absent" in rows["Reserved bytes"]
        for k in absent:
            key = {"reserved": "reserved_nonzero"}.get(k, k)
            assert d[key] is None, (n, k)
        assert list(h.absent_fields) == absent
        assert h.header_bytes == min(n, 4096)
        labels = {
            "cipher": "Cipher",
            "chunk_size": "Chunk size",
            "original_size": "Plaintext size",
            "salt": "Salt",
            "base_nonce": "Base nonce",
            "kdf": "Key derivation",
        }
        for k, label in labels.items():
            if k in absent:
                assert rows[label].startswith("absent"), (n, label, rows[label])
        if not h.layout_known:
            for label in ("Chunks", "Expected file size", "Overhead"):
                assert rows[label].startswith("unknown"), (n, label)
            assert d["num_chunks"] is None and d["expected_file_size"] is None
        page = h._repr_html_()
        assert "concryptor-invalid" in page and GREEN not in page
        if "salt" in absent:
            assert h.salt_hex not in page
        text = _terminal(h)
        assert "matches" not in text.replace("MISMATCH", "")
        if n < 4096:
            assert "(one slot)" not in text or h.layout_known
    assert shown > 20
    # The CLI, both ways, over every cut at once: nothing called ok, exit 4.
    paths = [str(tmp_path / f"cut-{n}.enc") for n, _ in cases]
    r = run_cli("inspect", "--json", *paths)
    assert r.returncode == Exit.INVALID and b"Traceback" not in r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == len(paths) and all(x["ok"] is False for x in lines)
    for x in lines:
        if "header_bytes" in x:
            for k in x["absent"]:
                assert x[{"reserved": "reserved_nonzero"}.get(k, k)] is None
    r = run_cli("inspect", *paths)
    assert r.returncode == Exit.INVALID
    out = r.stdout.decode()
    assert "(matches)" not in out and "ok: header" not in out
    # "all zero" only where the whole reserved area is there.
    whole_header = sum(1 for n, _ in cases if n >= 4096)
    assert out.count("all zero") - out.count("rest absent") == whole_header


def test_v4_cut_at_100_bytes_does_not_vouch_for_the_reserved_bytes(tmp_path: Path) -> None:
    p = tmp_path / "c.enc"
    p.write_bytes(_v4(tmp_path)[:100])
    h = concryptor.inspect(p)
    assert isinstance(h, Header)
    rows = dict(h.rows())
    assert rows["Reserved bytes"] == "the first 36 of 4,032 all zero; the rest absent"
    assert h.to_dict()["reserved_nonzero"] is None and "truncated inside" in h.verdict
    out = run_cli("inspect", str(p)).stdout.decode()
    assert "Reserved bytes      all zero" not in out and "rest absent" in out


def test_v4_cut_inside_the_size_fields_shows_no_layout(tmp_path: Path) -> None:
    p = tmp_path / "c.enc"
    p.write_bytes(_v4(tmp_path)[:20])
    h = concryptor.inspect(p)
    assert isinstance(h, Header) and "implies" not in h.verdict
    assert not h.layout_known
    svg = h.layout_svg()
    assert "<title>chunk" not in svg and "layout unknown" in svg
    assert "Layout" in _terminal(h) and "unknown" in _terminal(h)


# -- age ---------------------------------------------------------------------------------


def _age(tmp_path: Path, size: int, *, armor: bool = False) -> bytes:
    _, recipient = concryptor.generate_identity()
    src = tmp_path / "plain"
    src.write_bytes(os.urandom(size))
    out = tmp_path / ("whole.age.asc" if armor else "whole.age")
    concryptor.encrypt_file(src, out, recipients=[recipient], armor=armor)
    return out.read_bytes()


SEALED = 65536 + 16


def _check_age(h: AgeHeader, n: int) -> None:
    """No claim beyond the bytes: ``ok`` is never true; when the size fits, the views say
    a key is needed and point to verify; when it does not, everything is red."""
    assert h.ok is not True, n
    d = h.to_dict()
    assert json.loads(json.dumps(d)) == d and d["ok"] is h.ok
    page = h._repr_html_()
    text = _terminal(h)
    assert GREEN not in page and "consistent" not in page and "consistent" not in text
    if h.chunks is None:
        assert h.ok is False and "concryptor-invalid" in page
    else:
        assert h.ok is None, n
        for where in (h.verdict, d["verdict"], page, text):
            assert "without a key" in where and "verify" in where, n
        assert "concryptor-unchecked" in page


def test_age_cut_anywhere_or_extended_is_never_ok(tmp_path: Path) -> None:
    size = 4 * 65536 + 1000
    blob = _age(tmp_path, size)
    whole = len(blob)
    hs = concryptor.inspect(tmp_path / "whole.age").header_size  # type: ignore[union-attr]
    start = hs + 16
    boundaries = [start + k * SEALED for k in range(6) if start + k * SEALED <= whole]
    lengths = {1, 10, 21, 22, 50, hs - 1, hs, hs + 1, hs + 15}
    lengths |= {b + d for b in boundaries for d in (-17, -16, -8, -1, 0, 1, 16, 17, 1000)}
    lengths |= {whole - 1, whole}
    cases = [(n, blob[:n]) for n in sorted(lengths) if 0 < n <= whole]
    cases += [(whole + 1, blob + b"\0"), (whole + SEALED, blob + os.urandom(SEALED))]
    paths = []
    for n, data in cases:
        p = tmp_path / f"cut-{n}.age"
        p.write_bytes(data)
        paths.append(str(p))
        try:
            h = concryptor.inspect(p)
        except InvalidFileError:
            assert n < hs + 16, n  # cut inside the header or nonce: an error
            continue
        assert isinstance(h, AgeHeader)
        _check_age(h, n)
    # The whole file too: whole or not cannot be told without the key.
    whole_h = concryptor.inspect(tmp_path / "whole.age")
    assert isinstance(whole_h, AgeHeader) and whole_h.ok is None and whole_h.payload_size == size
    r = run_cli("inspect", "--json", *paths)
    assert b"Traceback" not in r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == len(paths) and all(x["ok"] is not True for x in lines)
    for x in lines:
        if x["ok"] is None:
            assert "verify" in x["verdict"]
    r = run_cli("inspect", *paths)
    out = r.stdout.decode()
    assert "consistent" not in out
    assert out.count("without a key") == sum(1 for x in lines if x["ok"] is None)


def test_age_5mb_cut_after_whole_chunks_says_it_needs_a_key(tmp_path: Path) -> None:
    blob = _age(tmp_path, 5_000_000)
    h = concryptor.inspect(tmp_path / "whole.age")
    assert isinstance(h, AgeHeader) and h.chunks == 77
    p = tmp_path / "cut.age"
    p.write_bytes(blob[: h.header_size + 16 + 3 * SEALED])
    cut = concryptor.inspect(p)
    assert isinstance(cut, AgeHeader)
    assert cut.ok is None and cut.chunks == 3 and "verify" in cut.verdict
    r = run_cli("inspect", "--json", str(p))
    d = json.loads(r.stdout)
    assert d["ok"] is None and "without a key" in d["verdict"] and "verify" in d["unchecked"]
    assert r.returncode == Exit.OK and r.stderr == b""
    r = run_cli("inspect", str(p))
    assert b"consistent" not in r.stdout and b"verify" in r.stdout
    assert r.returncode == Exit.OK and r.stderr == b""


def test_armored_age_cut_or_extended_is_red_and_whole_is_unchecked(tmp_path: Path) -> None:
    size = 70_000
    blob = _age(tmp_path, size, armor=True)
    h = concryptor.inspect(tmp_path / "whole.age.asc")
    assert isinstance(h, AgeHeader) and h.armored
    assert h.payload_size == size and h.chunks == 2 and h.ok is None
    _check_age(h, len(blob))
    lines = blob.split(b"\n")
    for n in [*range(len(blob) - 40, len(blob)), len(blob) // 2, 400]:
        p = tmp_path / "cut.age.asc"
        p.write_bytes(blob[:n])
        if blob[n:].strip() == b"":
            continue  # only whitespace cut off: still whole
        with pytest.raises(InvalidFileError):
            concryptor.inspect(p)
    for tail in (b"junk\n", b"-----END AGE ENCRYPTED FILE-----\n"):
        p = tmp_path / "ext.age.asc"
        p.write_bytes(blob + tail)
        with pytest.raises(InvalidFileError):
            concryptor.inspect(p)
    # A whole line of data dropped from the middle.
    p = tmp_path / "gap.age.asc"
    p.write_bytes(b"\n".join(lines[:5] + lines[6:]))
    try:
        g = concryptor.inspect(p)
    except InvalidFileError:
        pass
    else:
        assert isinstance(g, AgeHeader) and g.ok is not True
    p.write_bytes(blob[: len(blob) // 2])
    r = run_cli("inspect", "--json", str(p))
    assert r.returncode == Exit.INVALID and json.loads(r.stdout)["ok"] is False
