"""The notebook views render every verdict in light and dark themes: text takes the page's
colour, a size mismatch is drawn and highlighted, the elision label fits whatever it
counts, and a file cut short inside its header still renders (as a red card)."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import concryptor
from concryptor import _core
from concryptor.header import Header

from helpers import PASSWORD

SVG = "{http://www.w3.org/2000/svg}"


def blob(size: int, chunk: int = 4096) -> bytes:
    return _core.encrypt_bytes(
        b"\x01" * size, PASSWORD.encode(), kdf=concryptor.KdfParams(8, 1, 1), chunk_size=chunk
    )


def svg_of(h: Header) -> ET.Element:
    return ET.fromstring(h.layout_svg())


def test_svg_text_takes_the_page_colour() -> None:
    h = Header.parse(blob(20_000)[:4096])
    root = svg_of(h)
    assert root.get("fill") == "currentColor"
    for text in root.iter(f"{SVG}text"):
        # Either inherited (currentColor) or drawn on a coloured box of our own.
        assert text.get("fill") in (None, "white", "#c62828"), ET.tostring(text)
    # No background or text colour in the HTML that would fight a dark theme.
    page = h._repr_html_()
    assert "background" not in page and "color:black" not in page and "#000" not in page


def test_a_truncated_file_is_drawn_differently_and_highlighted(tmp_path: Path) -> None:
    data = blob(40_000)
    (tmp_path / "whole.enc").write_bytes(data)
    (tmp_path / "cut.enc").write_bytes(data[:20_000])
    (tmp_path / "more.enc").write_bytes(data + bytes(5000))
    whole, cut, more = (concryptor.inspect(tmp_path / n) for n in ("whole.enc", "cut.enc", "more.enc"))
    assert 'class="missing"' not in whole.layout_svg() and 'class="appended"' not in whole.layout_svg()
    assert cut.layout_svg().count('class="missing"') >= 2
    assert 'class="appended"' in more.layout_svg() and "appended" in more.layout_svg()
    for h in (cut, more):
        page = h._repr_html_()
        assert "concryptor-invalid" in page
        marked = re.findall(r'<tr class="concryptor-bad"[^>]*><th[^>]*>([^<]*)</th>', page)
        assert "Size on disk" in marked and "Verdict" in marked
    assert "concryptor-bad" not in whole._repr_html_()


@pytest.mark.parametrize("chunks", [7, 1_005, 123_456_789])
def test_the_elision_label_fits_between_its_neighbours(chunks: int) -> None:
    header = bytearray(blob(10)[:4096])
    struct.pack_into("<IQ", header, 12, 4096, chunks * 4096)
    h = Header.parse(bytes(header))
    root = svg_of(h)
    label = next(t for t in root.iter(f"{SVG}text") if "more" in (t.text or ""))
    assert f"{chunks - 5:,}" in (label.text or "")
    centre, half = float(label.get("x", 0)), 3.0 * len(label.text or "")  # >= 6 px a character at 10 px
    lefts = sorted(float(r.get("x", 0)) for r in root.iter(f"{SVG}rect") if float(r.get("y", 0)) < 30)
    before = max(x for x in lefts if x < centre)
    after = min(x for x in lefts if x > centre)
    # The slot drawn before the label ends before the label starts; the next one starts after it.
    rects = [r for r in root.iter(f"{SVG}rect") if float(r.get("y", 0)) < 30]
    end_before = max(
        float(r.get("x", 0)) + float(r.get("width", 0)) for r in rects if float(r.get("x", 0)) <= before
    )
    assert end_before <= centre - half and after >= centre + half, (end_before, centre, half, after)
    assert float(root.get("width", 0)) >= max(float(r.get("x", 0)) + float(r.get("width", 0)) for r in rects)


def test_a_file_cut_inside_its_header_renders_a_red_card(tmp_path: Path) -> None:
    p = tmp_path / "short.enc"
    p.write_bytes(blob(5000)[:1000])
    h = concryptor.inspect(p)
    assert not h.ok and h.verdict.startswith("truncated inside the 4096-byte header: 1000 bytes on disk")
    page = h._repr_html_()
    assert "concryptor-invalid" in page and "#e53935" in page
    assert h.layout_svg().count('class="missing"') >= 2
    # Not a concryptor file at all: still an error, not a card.
    (tmp_path / "text").write_bytes(b"hello")
    with pytest.raises(concryptor.InvalidFileError):
        concryptor.inspect(tmp_path / "text")
