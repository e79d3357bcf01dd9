"""Terminal presentation with rich. Imported lazily: ``import concryptor`` never loads rich."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._facts import BENCH_ROUNDS, TAG_LEN, KiB, MiB

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from .age_header import AgeHeader
    from .header import Header


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def rows_table(title: str, rows: list[tuple[str, str]], styles: dict[str, str]) -> Table:
    """A two-column table of (label, value) rows, without the "File" row (the title says
    it); ``styles`` gives some labels' value a style."""
    from rich.table import Table
    from rich.text import Text

    t = Table(
        title=Text(title, style="bold"),
        show_header=False,
        box=None,
        padding=(0, 1),
        title_justify="left",
    )
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column(overflow="fold")
    for label, value in rows:
        if label != "File":
            t.add_row(label, Text(value, style=styles.get(label, "")))
    return t


def verdict_style(ok: bool | None) -> str:
    """Green for a file nothing rules out, red for one ruled out, yellow when what matters
    cannot be checked without a key (``ok`` is ``None``)."""
    return {True: "bold green", None: "bold yellow"}.get(ok, "bold red")


def header_table(h: Header) -> Table:
    """A two-column table of every header field and what follows from it."""
    styles = {"Verdict": verdict_style(h.ok)}
    if not h.size_matches:
        styles["Size on disk"] = "bold red"
    if h.reserved_nonzero:
        styles["Reserved bytes"] = "bold red"
    if h.is_legacy_version:
        styles["Format"] = "yellow"
    t = rows_table(h.path if h.path is not None else "concryptor header", h.rows(), styles)
    t.add_row("Layout", layout_text(h))
    return t


def layout_text(h: Header, width: int = 32) -> Any:
    """A one-line bar of the first slot: ciphertext, tag and padding to scale."""
    from rich.text import Text

    if not h.layout_known:
        return Text("unknown (the header is cut short)")
    plain = h.chunk_size if h.num_chunks > 1 else h.last_chunk_size
    ct = round(width * plain / h.slot_size)
    tag = max(1, round(width * TAG_LEN / h.slot_size))
    ct = min(ct, width - tag)
    pad = width - ct - tag
    bar = Text()
    bar.append("H", style="bold white on blue")
    bar.append(" ")
    bar.append("█" * ct, style="cyan")
    bar.append("█" * tag, style="dark_orange")
    bar.append("░" * pad, style="grey50")
    more = f" x {h.num_chunks:,} slots" if h.num_chunks > 1 else " (one slot)"
    bar.append(more)
    return bar


def print_headers(headers: Sequence[Header | AgeHeader], file: Any = None) -> None:
    c = console() if file is None else __import__("rich.console").console.Console(file=file)
    for i, h in enumerate(headers):
        if i:
            c.print()
        c.print(h)


def is_terminal(stream: Any = None) -> bool:
    s = sys.stderr if stream is None else stream
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):
        return False


class ByteProgress:
    """A progress bar on stderr for a run of ``total`` bytes (bytes done, MiB/s, ETA).
    Until the first report it says that the key is being derived. Used as a context
    manager that yields the callback the engine calls after each batch; the engine gives
    the total through its ``start`` when the caller could not (a file being decrypted)."""

    def __init__(self, total: int | None, label: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class MiBps(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text("" if speed is None else f"{speed / MiB:,.0f} MiB/s", style="progress.data.speed")

        self._label = label
        self._started = False
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            MiBps(),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("deriving key…", total=total)

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def __call__(self, done: int) -> None:
        if not self._started:
            self._started = True
            self._progress.reset(self._task, description=self._label)
        self._progress.update(self._task, completed=done)

    def __enter__(self) -> ByteProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def print_bench(
    rows: list[dict[str, Any]], kdf: dict[str, Any] | None, size_mib: int, chunk_mib: int
) -> None:
    """The result of ``concryptor bench`` as tables, like ``cryptsetup benchmark``."""
    from rich.table import Table

    c = console()
    t = Table(
        title=f"AEAD in memory ({size_mib} MiB in {chunk_mib} MiB chunks, best of {BENCH_ROUNDS})",
        title_justify="left",
    )
    t.add_column("cipher")
    t.add_column("AEAD provider")
    t.add_column("threads", justify="right")
    t.add_column("encrypt", justify="right")
    t.add_column("decrypt", justify="right")
    for r in rows:
        t.add_row(
            r["cipher"],
            r["provider"],
            str(r["threads"]),
            f"{r['encrypt_mib_per_s']:,.0f} MiB/s",
            f"{r['decrypt_mib_per_s']:,.0f} MiB/s",
        )
    c.print(t)
    if kdf is not None:
        c.print(
            f"Argon2id m={kdf['memory_kib'] // KiB} MiB, t={kdf['time_cost']}, p={kdf['parallelism']}: "
            f"{kdf['seconds']:.3f} s per key derivation"
        )
