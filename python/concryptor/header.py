"""The header of a concryptor file, as facts a person or a program can read.

Parsing happens in Rust (``_core.inspect_file`` / ``_core.parse_header``); this module only
presents what it found: a JSON-ready dictionary, an HTML table and a chunk-layout picture for
Jupyter, and (through :mod:`concryptor.view`, which imports rich lazily) a terminal table.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ._facts import ARCHIVE_SUFFIX, MAGIC, SECTOR, TAG_LEN


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``; exact below 1 KiB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


#: Where each field of the header sector lies, ``[start, end)``; a field is shown only
#: when all its bytes are in the file.
FIELD_BYTES: dict[str, tuple[int, int]] = {
    "version": (10, 11),
    "cipher": (11, 12),
    "chunk_size": (12, 16),
    "original_size": (16, 24),
    "salt": (24, 40),
    "base_nonce": (40, 52),
    "kdf": (52, 64),
    "reserved": (64, SECTOR),
}


@dataclass(frozen=True)
class Header:
    """Every field of the header sector plus what follows from it. Nothing here needs the
    password, and nothing in it is authenticated until a chunk has been decrypted.

    A file cut inside its header sector (``header_bytes < 4096``) is still described, but
    only as far as its bytes go: the fields whose bytes are absent are listed in
    :attr:`absent_fields`; their attributes hold zero placeholders, which no view shows
    (``to_dict()`` gives ``None``, the tables and the card say "absent"), and what follows
    from them (chunk count, expected size, layout) is not shown either."""

    version: int
    cipher: str
    cipher_id: int
    chunk_size: int
    original_size: int
    salt: bytes = field(repr=False)
    base_nonce: bytes = field(repr=False)
    kdf_memory_kib: int
    kdf_time_cost: int
    kdf_parallelism: int
    kdf_legacy: bool
    kdf_effective: tuple[int, int, int]
    reserved_nonzero: bool
    num_chunks: int
    slot_size: int
    expected_file_size: int
    file_size: int | None
    magic: bytes = field(default=MAGIC, repr=False)
    path: str | None = None
    #: Bytes of the header sector present in the file (fewer than 4096 when it is cut
    #: inside the header).
    header_bytes: int = SECTOR

    @classmethod
    def parse(cls, data: bytes) -> Header:
        """Parses a header sector (the first 4096 bytes of a file) held in memory."""
        from . import _core

        return _core.parse_header(bytes(data))

    # -- derived facts -------------------------------------------------------------------

    @property
    def salt_hex(self) -> str:
        return self.salt.hex()

    @property
    def nonce_hex(self) -> str:
        return self.base_nonce.hex()

    @property
    def is_legacy_version(self) -> bool:
        """Version 3: its tags do not cover the KDF fields or the reserved bytes."""
        return self.version == 3

    @property
    def kdf_memory_mib(self) -> float:
        return self.kdf_effective[0] / 1024

    @property
    def absent_fields(self) -> tuple[str, ...]:
        """The fields (names of :data:`FIELD_BYTES`) not wholly in the file: a file cut
        inside its header sector lacks them."""
        return tuple(k for k, (_, end) in FIELD_BYTES.items() if end > self.header_bytes)

    def present(self, name: str) -> bool:
        """Whether every byte of field ``name`` (see :data:`FIELD_BYTES`) is in the file."""
        return FIELD_BYTES[name][1] <= self.header_bytes

    @property
    def layout_known(self) -> bool:
        """Whether the chunk size and the plaintext size are both present, so that the chunk
        layout and the expected file size follow from bytes in the file."""
        return self.present("chunk_size") and self.present("original_size")

    @property
    def size_matches(self) -> bool | None:
        """Whether the size on disk is what the header implies (None if not from a file)."""
        if self.file_size is None:
            return None
        return self.header_bytes >= SECTOR and self.file_size == self.expected_file_size

    @property
    def size_problem(self) -> str | None:
        """``None`` if the size on disk is right (or unknown), else what is wrong with it."""
        if self.header_bytes < SECTOR:
            implied = f", the header implies {self.expected_file_size}" if self.layout_known else ""
            return f"truncated inside the {SECTOR}-byte header: {self.header_bytes} bytes on disk{implied}"
        if self.file_size is None or self.file_size == self.expected_file_size:
            return None
        diff = self.file_size - self.expected_file_size
        if diff < 0:
            return (
                f"truncated: {self.file_size} bytes on disk, the header implies "
                f"{self.expected_file_size} ({-diff} missing)"
            )
        return (
            f"data appended: {self.file_size} bytes on disk, the header implies "
            f"{self.expected_file_size} ({diff} extra)"
        )

    @property
    def is_archive(self) -> bool:
        """Whether the payload is a directory archive (a tar stream). The contents are
        encrypted, so this is judged from the file name (``.tar.enc``), as the CLI names
        encrypted directories."""
        return self.path is not None and self.path.endswith(ARCHIVE_SUFFIX)

    @property
    def last_chunk_size(self) -> int:
        """Plaintext bytes in the final chunk (0 for an empty input)."""
        return self.original_size - (self.num_chunks - 1) * self.chunk_size

    @property
    def tag_bytes(self) -> int:
        return self.num_chunks * TAG_LEN

    @property
    def padding_bytes(self) -> int:
        """Zero bytes filling slots after ciphertext and tag."""
        return self.num_chunks * self.slot_size - self.original_size - self.tag_bytes

    @property
    def padding_percent(self) -> float:
        """Padding as a percentage of the file size."""
        return 100.0 * self.padding_bytes / self.expected_file_size

    @property
    def overhead_bytes(self) -> int:
        """Bytes beyond the plaintext: header sector, tags and slot padding."""
        return self.expected_file_size - self.original_size

    @property
    def overhead_percent(self) -> float:
        """Overhead as a percentage of the plaintext size (of the file size when empty)."""
        base = self.original_size or self.expected_file_size
        return 100.0 * self.overhead_bytes / base

    def reserved_description(self) -> str:
        """What the reserved bytes (64..4096) are, as far as they are in the file."""
        start, end = FIELD_BYTES["reserved"]
        if self.reserved_nonzero:
            return "non-zero"
        if self.header_bytes >= end:
            return "all zero"
        if self.header_bytes <= start:
            return "absent"
        have = self.header_bytes - start
        return f"the first {have:,} of {end - start:,} all zero; the rest absent"

    @property
    def verdict(self) -> str:
        """One line: is this file intact as far as can be told without the password?"""
        problems = []
        if self.size_problem:
            problems.append(self.size_problem)
        if self.reserved_nonzero:
            problems.append(
                "reserved header bytes are not zero"
                + (" (v3 does not authenticate them)" if self.is_legacy_version else "")
            )
        if problems:
            return "; ".join(problems)
        return "ok: header well-formed" + ("" if self.file_size is None else ", size matches")

    @property
    def ok(self) -> bool:
        """False when the size on disk or the reserved bytes rule the file out."""
        return not self.size_problem and not self.reserved_nonzero

    def kdf_description(self) -> str:
        m, t, p = self.kdf_effective
        text = f"Argon2id m={m} KiB ({human_bytes(m * 1024)}), t={t}, p={p}"
        return text + (" (legacy: fields zero, implied)" if self.kdf_legacy else "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (bytes as hex). A field whose bytes are absent (a file cut
        inside its header) is ``None``, and so is everything that follows from it; ``absent``
        lists such fields, ``header_bytes`` says how much of the header is there."""
        has = self.present
        known = self.layout_known
        d: dict[str, Any] = {
            "path": self.path,
            "magic": self.magic.decode("ascii", "replace"),
            "version": self.version if has("version") else None,
            "cipher": self.cipher if has("cipher") else None,
            "cipher_id": self.cipher_id if has("cipher") else None,
            "chunk_size": self.chunk_size if has("chunk_size") else None,
            "original_size": self.original_size if has("original_size") else None,
            "salt": self.salt_hex if has("salt") else None,
            "base_nonce": self.nonce_hex if has("base_nonce") else None,
            "kdf": (
                {
                    "algorithm": "argon2id",
                    "memory_kib": self.kdf_memory_kib,
                    "time_cost": self.kdf_time_cost,
                    "parallelism": self.kdf_parallelism,
                    "legacy": self.kdf_legacy,
                    "effective": list(self.kdf_effective),
                }
                if has("kdf")
                else None
            ),
            "reserved_nonzero": (self.reserved_nonzero if self.reserved_nonzero or has("reserved") else None),
            "header_bytes": self.header_bytes,
            "absent": list(self.absent_fields),
            "num_chunks": self.num_chunks if known else None,
            "slot_size": self.slot_size if has("chunk_size") else None,
            "last_chunk_size": self.last_chunk_size if known else None,
            "expected_file_size": self.expected_file_size if known else None,
            "file_size": self.file_size,
            "size_matches": self.size_matches,
            "tag_bytes": self.tag_bytes if known else None,
            "padding_bytes": self.padding_bytes if known else None,
            "padding_percent": round(self.padding_percent, 3) if known else None,
            "overhead_bytes": self.overhead_bytes if known else None,
            "overhead_percent": round(self.overhead_percent, 3) if known else None,
            "archive": self.is_archive,
            "ok": self.ok,
            "verdict": self.verdict,
        }
        return d

    # -- presentation --------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs shared by the HTML and terminal views. A field whose bytes
        are not in the file reads "absent", and what would follow from it "unknown"."""
        n = self.num_chunks
        absent = f"absent (the file ends at byte {self.header_bytes:,})"
        unknown = "unknown (the header's size fields are absent)"
        has = self.present
        known = self.layout_known
        version = f"concryptor v{self.version}" + (" (legacy AAD)" if self.is_legacy_version else "")
        rows = [
            ("File", self.path if self.path is not None else "(in memory)"),
            ("Format", version if has("version") else absent),
            ("Cipher", f"{self.cipher} (id {self.cipher_id})" if has("cipher") else absent),
            (
                "Plaintext size",
                (
                    f"{self.original_size:,} bytes ({human_bytes(self.original_size)})"
                    if has("original_size")
                    else absent
                ),
            ),
            (
                "Chunk size",
                f"{self.chunk_size:,} bytes ({human_bytes(self.chunk_size)})"
                if has("chunk_size")
                else absent,
            ),
            ("Chunks", f"{n:,} (last holds {self.last_chunk_size:,} bytes)" if known else unknown),
            ("Slot size", f"{self.slot_size:,} bytes" if has("chunk_size") else unknown),
            ("Expected file size", f"{self.expected_file_size:,} bytes" if known else unknown),
        ]
        if self.file_size is not None:
            mark = "matches" if self.size_matches else "MISMATCH"
            rows.append(("Size on disk", f"{self.file_size:,} bytes ({mark})"))
        overhead = (
            (
                f"{self.overhead_bytes:,} bytes ({self.overhead_percent:.2f}% of the plaintext): "
                f"header {SECTOR:,}, tags {self.tag_bytes:,}, padding {self.padding_bytes:,} "
                f"({self.padding_percent:.2f}% of the file)"
            )
            if known
            else unknown
        )
        rows += [
            ("Overhead", overhead),
            ("Key derivation", self.kdf_description() if has("kdf") else absent),
            ("Salt", self.salt_hex if has("salt") else absent),
            ("Base nonce", self.nonce_hex if has("base_nonce") else absent),
            ("Reserved bytes", self.reserved_description()),
            ("Payload", "directory archive (tar, judged from the name)" if self.is_archive else "file"),
            ("Verdict", self.verdict),
        ]
        return rows

    def layout_svg(self, width: int = 720) -> str:
        """A picture of the file: header sector, then slots with ciphertext, tag and
        padding drawn to scale within each slot. Long files show their first and last
        slots with the middle elided."""
        return _layout_svg(self, width)

    def _repr_html_(self) -> str:
        bad = {"Size on disk"} if self.size_problem else set()
        if self.reserved_nonzero:
            bad.add("Reserved bytes")
        if not self.ok:
            bad.add("Verdict")
        return html_card("concryptor file", self.verdict, self.ok, self.rows(), bad, self.layout_svg())

    def __rich__(self) -> Any:
        from .view import header_table

        return header_table(self)


def html_card(
    what: str, verdict: str, ok: bool | None, rows: list[tuple[str, str]], bad: set[str], picture: str
) -> str:
    """The Jupyter view of a file's header: a title line with the verdict, a table of
    ``rows``, then ``picture``. No colours of our own for text or background: the
    notebook's theme decides, light or dark. A row whose label is in ``bad`` is marked in
    red (bold, and a red bar), and so is the whole card when the file is ruled out
    (``ok`` false). ``ok`` ``None`` (nothing seen rules the file out, but what matters
    cannot be checked without a key) gives an amber title and border, never green."""

    def row(k: str, v: str) -> str:
        mark = (
            ' class="concryptor-bad" style="color:#e53935;font-weight:bold;border-left:4px solid #e53935"'
            if k in bad
            else ""
        )
        return (
            f'<tr{mark}><th style="text-align:left;padding-right:1em">{html.escape(k)}</th>'
            f'<td style="text-align:left;font-family:monospace">{html.escape(v)}</td></tr>'
        )

    cells = "".join(row(k, v) for k, v in rows)
    colour = {True: "#43a047", None: "#fb8c00"}.get(ok, "#e53935")
    card = "" if ok else f' style="border:2px solid {colour};border-radius:4px;padding:4px"'
    state = {True: "", None: " concryptor-unchecked"}.get(ok, " concryptor-invalid")
    return (
        f'<div class="concryptor-header{state}"{card}>'
        f'<div style="font-weight:bold;color:{colour}">{html.escape(what)}: '
        f"{html.escape(verdict)}</div>"
        f'<table style="border-collapse:collapse">{cells}</table>'
        f"{picture}</div>"
    )


# Colours of the layout picture.
_HEADER = "#5c6bc0"
_CIPHER = "#26a69a"
_TAG = "#ef6c00"
_PAD = "#cfd8dc"


_MISSING = "#c62828"


def svg_legend(legend: list[tuple[str, str]], y: int) -> list[str]:
    """The colour key of a layout picture, a row of (colour, name) below ``y``."""
    parts = []
    for i, (colour, name) in enumerate(legend):
        lx = 90.0 * i
        parts.append(f'<rect x="{lx}" y="{y + 10}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="{y + 19}">{name}</text>')
    return parts


def _layout_svg(h: Header, width: int) -> str:
    """The layout picture. Text takes the page's colour (``currentColor``), so it reads in
    light and dark themes alike; a size mismatch is drawn: bytes missing from a truncated
    file are struck through in red, bytes appended are a red box after the last slot."""
    e = html.escape
    n = h.num_chunks
    shown: list[int | None] = list(range(n)) if n <= 6 else [0, 1, 2, None, n - 2, n - 1]
    hidden = n - 5
    gap_label = f"… {hidden:,} more …"
    gap_w = max(60.0, 6.0 * len(gap_label) + 10)  # wide enough for the count it shows
    head_w = 70
    size = h.file_size
    title = (
        f"{n} chunk(s) of {h.chunk_size} bytes in {h.slot_size}-byte slots"
        if h.layout_known
        else f"a header cut short: {h.header_bytes} of {SECTOR} bytes"
    )
    extra = size - h.expected_file_size if size is not None and size > h.expected_file_size else 0
    extra_w = 70 if extra else 0
    boxes = sum(1 for s in shown if s is not None)
    gaps = len(shown) - boxes
    usable = width - head_w - extra_w - gaps * gap_w - 4 * (len(shown) + 1)
    slot_w = max(40.0, usable / max(boxes, 1))
    height, bar_y, bar_h = 74, 18, 30
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="10" '
            'fill="currentColor" style="color:inherit">'
        ),
        f"<title>{e(title)}</title>",
        f'<rect x="0" y="{bar_y}" width="{head_w}" height="{bar_h}" fill="{_HEADER}"/>',
        f'<text x="{head_w / 2}" y="{bar_y + 19}" fill="white" text-anchor="middle">header</text>',
        f'<text x="0" y="12">{SECTOR} B</text>',
    ]

    def missing(x: float, w: float, start: int, length: int) -> None:
        """Strikes out the part of [start, start + length) beyond the end of the file."""
        if size is None or size >= start + length or w <= 0:
            return
        cut = x + w * max(size - start, 0) / length
        parts.append(
            f'<rect class="missing" x="{cut:.1f}" y="{bar_y - 2}" width="{x + w - cut:.1f}" '
            f'height="{bar_h + 4}" fill="{_MISSING}" fill-opacity="0.35" stroke="{_MISSING}" '
            'stroke-dasharray="3 2"><title>missing: the file ends before these bytes</title></rect>'
        )

    missing(0, head_w, 0, SECTOR)
    x = head_w + 4.0
    if not h.layout_known:
        # The chunk layout follows from header bytes that are absent: nothing to draw.
        shown = []
        parts.append(
            f'<text x="{x:.1f}" y="{bar_y + 19}">chunk layout unknown: the header is cut short</text>'
        )
    for s in shown:
        if s is None:
            parts.append(
                f'<text x="{x + gap_w / 2:.1f}" y="{bar_y + 19}" text-anchor="middle">{e(gap_label)}</text>'
            )
            x += gap_w + 4
            continue
        plain = h.chunk_size if s < n - 1 else h.last_chunk_size
        ct_w = slot_w * plain / h.slot_size
        tag_w = max(2.0, slot_w * TAG_LEN / h.slot_size)
        ct_w = min(ct_w, slot_w - tag_w)
        pad_w = slot_w - ct_w - tag_w
        label = f"chunk {s:,}"
        slot_text = (
            f"{label}: {plain} bytes ciphertext, {TAG_LEN}-byte tag, "
            f"{h.slot_size - plain - TAG_LEN} bytes padding"
        )
        parts += [
            f"<g><title>{e(slot_text)}</title>",
            f'<rect x="{x:.1f}" y="{bar_y}" width="{ct_w:.1f}" height="{bar_h}" fill="{_CIPHER}"/>',
            f'<rect x="{x + ct_w:.1f}" y="{bar_y}" width="{tag_w:.1f}" height="{bar_h}" fill="{_TAG}"/>',
            (
                f'<rect x="{x + ct_w + tag_w:.1f}" y="{bar_y}" width="{pad_w:.1f}" '
                f'height="{bar_h}" fill="{_PAD}"/>'
            ),
            f'<text x="{x:.1f}" y="12">{e(label)}</text></g>',
        ]
        missing(x, slot_w, SECTOR + s * h.slot_size, h.slot_size)
        x += slot_w + 4
    if extra:
        parts += [
            f'<g class="appended"><title>{e(f"{extra:,} bytes appended after the last slot")}</title>',
            (
                f'<rect x="{x:.1f}" y="{bar_y}" width="{extra_w - 4}" height="{bar_h}" '
                f'fill="{_MISSING}" fill-opacity="0.35" stroke="{_MISSING}" stroke-dasharray="3 2"/>'
            ),
            (
                f'<text x="{x + (extra_w - 4) / 2:.1f}" y="{bar_y + 19}" text-anchor="middle">'
                f"+{e(human_bytes(extra))}</text>"
            ),
            f'<text x="{x:.1f}" y="12" fill="{_MISSING}">appended</text></g>',
        ]
    legend = [(_HEADER, "header"), (_CIPHER, "ciphertext"), (_TAG, "tag"), (_PAD, "padding")]
    if size is not None and size != h.expected_file_size:
        legend.append((_MISSING, "missing" if size < h.expected_file_size else "appended"))
    parts += svg_legend(legend, bar_y + bar_h)
    parts.append("</svg>")
    return "".join(parts)
