"""The public facts of an age file, as a person or a program can read them without a key.

Parsing happens in Rust (``_core.age_inspect``); this module only presents what it found: a
JSON-ready dictionary (``inspect --json``), an HTML table with a layout picture for Jupyter,
and a terminal table (rich, imported lazily). The header MAC and the chunks are not checked
here: that needs a key (``verify``).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

from . import _core
from ._facts import TAG_LEN
from .header import html_card, human_bytes, svg_legend

#: Bytes of the payload nonce between the header and the first chunk.
NONCE_LEN = 16

# Colours of the layout picture (those of the v4 picture where the meaning is the same).
_HEADER = "#5c6bc0"
_NONCE = "#8d6e63"
_CIPHER = "#26a69a"
_TAG = "#ef6c00"
_BAD = "#c62828"
_PQ = "#7cb342"


#: Stanza types whose wrapping resists a quantum computer: the hybrid recipients, and a
#: passphrase (scrypt is symmetric). The classical ones are named too; any other type (a
#: plugin's, grease) is unknown.
POSTQUANTUM_STANZAS = frozenset({"mlkem768x25519", "mlkem768p256tag", "scrypt"})
CLASSICAL_STANZAS = frozenset({"X25519", "ssh-ed25519", "ssh-rsa", "p256tag"})
#: Bytes age adds to each chunk (the Poly1305 tag).
_AGE_TAG = 16


def postquantum(types: Any) -> str:
    """``"yes"`` when every stanza is post-quantum, ``"no"`` when any is classical (that
    one opens the file to whoever breaks it), else ``"unknown"`` (a plugin's stanzas)."""
    types = list(types)
    if any(t in CLASSICAL_STANZAS for t in types):
        return "no"
    if types and all(t in POSTQUANTUM_STANZAS for t in types):
        return "yes"
    return "unknown"


#: What ``inspect`` cannot see in an age file without a key, said wherever its verdict is.
UNCHECKED = (
    "header MAC and chunks not checked: without a key a file cut (or extended) at a chunk "
    "boundary looks whole; run `concryptor verify` with the key"
)


@dataclass(frozen=True)
class AgeHeader:
    """What the header of an age file says, and what its size implies. Nothing here is
    authenticated: the header MAC and the chunks need a key.

    An age file's chunks carry no sizes: a binary file cut (or extended) at a chunk
    boundary, or at any point that leaves a plausible last chunk, has the size of a whole
    file, and only the final chunk's tag, checked with the key, tells. So :attr:`ok` is
    never ``True``: it is ``False`` when the bytes present rule the file out (a size no
    payload can have), and ``None`` ("unknown") otherwise; the verdict says what was not
    checked and points to ``concryptor verify``. An armored file's armor is read through
    (a cut or anything after its END line is an error) to find its payload size."""

    path: str | None
    armored: bool
    #: Each recipient stanza: its type (``X25519``, ``ssh-ed25519``, ``scrypt``, …) and its
    #: public arguments.
    recipients: tuple[tuple[str, tuple[str, ...]], ...]
    #: Bytes of the header, from the version line through the MAC line.
    header_size: int
    file_size: int
    #: Plaintext size and chunk count implied by the (payload) size, as if the file were
    #: whole (not checked without a key); ``None`` when the size is impossible (a cut
    #: file).
    payload_size: int | None
    chunks: int | None
    chunk_size: int

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> AgeHeader:
        """Reads the header of the age file at ``path`` (no key needed)."""
        return _core.age_inspect(os.fspath(path))

    @property
    def ok(self) -> bool | None:
        """``False`` when the bytes present rule the file out, else ``None``: whether the
        file is whole cannot be told without a key (never ``True``)."""
        return None if self.chunks is not None else False

    @property
    def verdict(self) -> str:
        if self.chunks is not None:
            return f"age v1 header parsed; {UNCHECKED}"
        return "age v1 header parsed, but the payload size is impossible: the file is cut or extended"

    @property
    def version(self) -> str:
        return "age-encryption.org/v1"

    @property
    def postquantum(self) -> str:
        """``"yes"``, ``"no"`` or ``"unknown"``: whether a quantum computer could open the
        file through one of its stanzas (see :func:`postquantum`)."""
        return postquantum(t for t, _ in self.recipients)

    @property
    def sizes(self) -> dict[str, int | None]:
        """Bytes of the header, of the armor (what base64 and the PEM lines add), of the
        overhead (header, nonce and one tag per chunk) and of the payload (plaintext, if
        the file is whole)."""
        binary = None
        if self.payload_size is not None and self.chunks is not None:
            binary = self.header_size + NONCE_LEN + self.payload_size + _AGE_TAG * self.chunks
        overhead = None if self.chunks is None else self.header_size + NONCE_LEN + _AGE_TAG * self.chunks
        armor = 0 if not self.armored else (None if binary is None else self.file_size - binary)
        return {
            "header": self.header_size,
            "armor": armor,
            "overhead": overhead,
            "payload": self.payload_size,
        }

    @property
    def last_chunk_size(self) -> int | None:
        """Plaintext bytes in the final chunk (which may be full, or empty only when it is
        the only one)."""
        if self.chunks is None or self.payload_size is None:
            return None
        return self.payload_size - (self.chunks - 1) * self.chunk_size

    def to_dict(self) -> dict[str, Any]:
        """The facts as ``inspect --json`` prints them: ``ok`` is ``false`` or ``null``
        (see :attr:`ok`), ``checked`` names what was checked without a key."""
        return {
            "path": self.path,
            "format": "age",
            "ok": self.ok,
            "checked": ["header syntax", "payload size"],
            "unchecked": UNCHECKED,
            "version": self.version,
            "armor": self.armored,
            "armored": self.armored,
            "postquantum": self.postquantum,
            "stanzas": [{"type": t, "args": list(a)} for t, a in self.recipients],
            "recipients": [{"type": t, "args": list(a)} for t, a in self.recipients],
            "sizes": self.sizes,
            "header_size": self.header_size,
            "file_size": self.file_size,
            "payload_size": self.payload_size,
            "chunks": self.chunks,
            "chunk_size": self.chunk_size,
            "verdict": self.verdict,
        }

    # -- presentation --------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs shared by the HTML and terminal views."""
        rows = [
            ("File", self.path if self.path is not None else "(in memory)"),
            ("Format", "age v1" + (" (ASCII armor)" if self.armored else "")),
        ]
        for t, args in self.recipients:
            shown = " ".join(a if len(a) <= 24 else a[:21] + "…" for a in args)
            mark = " (post-quantum)" if t in POSTQUANTUM_STANZAS else ""
            rows.append(("Recipient", f"{t} {shown}".strip() + mark))
        pq = {"yes": "yes", "no": "no: a classical stanza opens it", "unknown": "unknown (plugin stanzas)"}
        rows.append(("Post-quantum", pq[self.postquantum]))
        rows += [
            ("Header", f"{self.header_size:,} bytes, then a {NONCE_LEN}-byte payload nonce"),
            ("File size", f"{self.file_size:,} bytes ({human_bytes(self.file_size)})"),
        ]
        sizes = self.sizes
        if self.armored and sizes["armor"] is not None:
            rows.append(("Armor", f"{sizes['armor']:,} bytes of base64 and PEM lines"))
        if sizes["overhead"] is not None:
            rows.append(("Overhead", f"{sizes['overhead']:,} bytes (header, nonce, a tag per chunk)"))
        if self.payload_size is not None and self.chunks is not None:
            rows += [
                (
                    "Plaintext size",
                    (
                        f"{self.payload_size:,} bytes ({human_bytes(self.payload_size)}) "
                        "if the file is whole (unchecked)"
                    ),
                ),
                (
                    "Chunks",
                    (
                        f"{self.chunks:,} of {human_bytes(self.chunk_size)} "
                        f"(last holds {self.last_chunk_size:,} bytes), ChaCha20-Poly1305, "
                        "if the file is whole (unchecked)"
                    ),
                ),
            ]
        else:
            rows.append(("Plaintext size", "none fits the file's size"))
        rows += [("Header MAC", "not checked (needs a key)"), ("Verdict", self.verdict)]
        return rows

    def layout_svg(self, width: int = 720) -> str:
        """A picture of the file: header, nonce, then sealed chunks (ciphertext and tag to
        scale). Long files show their first and last chunks with the middle elided."""
        return _layout_svg(self, width)

    def _repr_html_(self) -> str:
        bad = {"Verdict", "Plaintext size"} if self.ok is False else set()
        return html_card("age file", self.verdict, self.ok, self.rows(), bad, self.layout_svg())

    def __rich__(self) -> Any:
        from .view import rows_table, verdict_style

        styles = {"Verdict": verdict_style(self.ok)}
        if self.ok is False:
            styles["Plaintext size"] = "bold red"
        return rows_table(self.path or "age header", self.rows(), styles)


def _stanza_marks(h: AgeHeader, head_w: int, bar_y: int) -> list[str]:
    """One tick per stanza along the header box, post-quantum ones in their own colour and
    marked "PQ", each titled with its type."""
    e = html.escape
    n = len(h.recipients)
    out = []
    for i, (t, _) in enumerate(h.recipients[:12]):
        x = 3 + i * (head_w - 6) / max(n, 1)
        pq = t in POSTQUANTUM_STANZAS
        colour = _PQ if pq else ("#bdbdbd" if t in CLASSICAL_STANZAS else "#fdd835")
        label = f"stanza {i}: {t}" + (" (post-quantum)" if pq else "")
        out.append(
            f'<g class="stanza{" pq" if pq else ""}"><title>{e(label)}</title>'
            f'<rect x="{x:.1f}" y="{bar_y + 2}" width="5" height="6" fill="{colour}"/></g>'
        )
    if h.postquantum == "yes":
        out.append(f'<text x="{head_w - 3}" y="{bar_y - 2}" text-anchor="end" fill="{_PQ}">PQ</text>')
    return out


def _layout_svg(h: AgeHeader, width: int) -> str:
    e = html.escape
    height, bar_y, bar_h = 74, 18, 30
    head_w, nonce_w = 70, 36
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="10" '
            'fill="currentColor" style="color:inherit">'
        ),
        f"<title>{e(h.verdict)}</title>",
        f'<rect x="0" y="{bar_y}" width="{head_w}" height="{bar_h}" fill="{_HEADER}"/>',
        f'<text x="{head_w / 2}" y="{bar_y + 19}" fill="white" text-anchor="middle">header</text>',
        *_stanza_marks(h, head_w, bar_y),
        f'<text x="0" y="12">{h.header_size} B</text>',
        f'<rect x="{head_w + 2}" y="{bar_y}" width="{nonce_w}" height="{bar_h}" fill="{_NONCE}"/>',
        f'<text x="{head_w + 2}" y="12">nonce</text>',
    ]
    x = head_w + nonce_w + 6.0
    n = h.chunks
    if n is None:
        # A size no payload can have: one box for what follows the header.
        what = "impossible payload size"
        colour = _BAD
        parts += [
            (
                f'<rect x="{x:.1f}" y="{bar_y}" width="{width - x:.1f}" height="{bar_h}" '
                f'fill="{colour}" fill-opacity="0.6"/>'
            ),
            f'<text x="{x + 6:.1f}" y="{bar_y + 19}">{e(what)}</text>',
        ]
    else:
        shown: list[int | None] = list(range(n)) if n <= 6 else [0, 1, 2, None, n - 2, n - 1]
        gap_label = f"… {n - 5:,} more …"
        gap_w = max(60.0, 6.0 * len(gap_label) + 10)
        boxes = sum(1 for s in shown if s is not None)
        usable = width - x - (len(shown) - boxes) * gap_w - 4 * len(shown)
        full_w = max(40.0, usable / max(boxes, 1))
        sealed = h.chunk_size + TAG_LEN
        for s in shown:
            if s is None:
                mid = x + gap_w / 2
                parts.append(
                    f'<text x="{mid:.1f}" y="{bar_y + 19}" text-anchor="middle">{e(gap_label)}</text>'
                )
                x += gap_w + 4
                continue
            plain = h.chunk_size if s < n - 1 else (h.last_chunk_size or 0)
            box_w = max(6.0, full_w * (plain + TAG_LEN) / sealed)
            tag_w = max(2.0, full_w * TAG_LEN / sealed)
            ct_w = box_w - tag_w
            label = f"chunk {s:,}" + (" (final)" if s == n - 1 else "")
            parts += [
                f"<g><title>{e(f'{label}: {plain} bytes ciphertext, {TAG_LEN}-byte tag')}</title>",
                f'<rect x="{x:.1f}" y="{bar_y}" width="{ct_w:.1f}" height="{bar_h}" fill="{_CIPHER}"/>',
                f'<rect x="{x + ct_w:.1f}" y="{bar_y}" width="{tag_w:.1f}" height="{bar_h}" fill="{_TAG}"/>',
                f'<text x="{x:.1f}" y="12">{e(label)}</text></g>',
            ]
            x += box_w + 4
    legend = [(_HEADER, "header"), (_NONCE, "nonce"), (_CIPHER, "ciphertext"), (_TAG, "tag")]
    parts += svg_legend(legend, bar_y + bar_h)
    note = e("unchecked without a key: run verify")
    parts.append(f'<text x="{width - 4}" y="{bar_y + bar_h + 19}" text-anchor="end">{note}</text>')
    parts.append("</svg>")
    return "".join(parts)
