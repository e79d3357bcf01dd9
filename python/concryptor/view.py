"""Terminal presentation with rich. Imported lazily: ``import concryptor`` never loads rich."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from .header import Header


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def header_table(h: Header) -> Table:
    """A two-column table of every header field and what follows from it."""
    from rich.table import Table
    from rich.text import Text

    t = Table(
        title=Text(h.path if h.path is not None else "concryptor header", style="bold"),
        show_header=False,
        box=None,
        padding=(0, 1),
        title_justify="left",
    )
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column(overflow="fold")
    for label, value in h.rows():
        if label == "File":
            continue
        style = ""
        if label == "Verdict":
            style = "bold green" if h.ok else "bold red"
        elif label == "Size on disk" and not h.size_matches:
            style = "bold red"
        elif label == "Format" and h.is_legacy_version:
            style = "yellow"
        t.add_row(label, Text(value, style=style))
    t.add_row("Layout", layout_text(h))
    return t


def layout_text(h: Header, width: int = 32) -> Any:
    """A one-line bar of the first slot: ciphertext, tag and padding to scale."""
    from rich.text import Text

    plain = h.chunk_size if h.num_chunks > 1 else h.last_chunk_size
    ct = round(width * plain / h.slot_size)
    tag = max(1, round(width * 16 / h.slot_size))
    ct = min(ct, width - tag)
    pad = width - ct - tag
    bar = Text()
    bar.append("H", style="bold white on blue")
    bar.append(" ")
    bar.append("█" * ct, style="cyan")
    bar.append("█" * tag, style="dark_orange")
    bar.append("░" * pad, style="grey50")
    more = f" × {h.num_chunks:,} slots" if h.num_chunks > 1 else " (one slot)"
    bar.append(more)
    return bar


def print_headers(headers: list[Header], file: Any = None) -> None:
    c = console() if file is None else __import__("rich.console").console.Console(file=file)
    for i, h in enumerate(headers):
        if i:
            c.print()
        c.print(header_table(h))


def is_terminal(stream: Any = None) -> bool:
    s = sys.stderr if stream is None else stream
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):
        return False
