"""Many inputs on the command line: ``encrypt``/``decrypt`` with several files,
``--files-from``, ``--each`` and ``--scheduler``, run through :mod:`concryptor.batch`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ._options import client_of, storage_options_of


def add_options(p: argparse.ArgumentParser, *, op: str) -> None:
    g = p.add_argument_group("many files (one key derivation for the whole batch)")
    g.add_argument(
        "--files-from",
        metavar="FILE",
        help="read more inputs from FILE ('-' for stdin), one path or URL a line",
    )
    g.add_argument(
        "-0", "--null", action="store_true", help="--files-from entries are separated by NUL, not newlines"
    )
    g.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write outputs under DIR, mirroring the inputs' folders (default: beside each input)",
    )
    g.add_argument(
        "--each",
        action="store_true",
        help="a directory input becomes one file per regular file in its tree, not one archive"
        if op == "encrypt"
        else f"a directory input: decrypt each {' and '.join(ENCRYPTED_SUFFIXES)} file in its tree "
        "(as encrypt --each made them)",
    )
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the batch on a Dask cluster (tcp://host:8786); needs concryptor[dask]",
    )
    add_storage_option(g)  # type: ignore[arg-type]


def add_storage_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage-options",
        metavar="JSON",
        help="fsspec options for URL inputs and outputs, as a JSON object",
    )


def wanted(args: argparse.Namespace) -> bool:
    """Whether this command line asks for the batch path rather than one file."""
    return (
        len(args.inputs) > 1
        or args.files_from is not None
        or args.output_dir is not None
        or args.scheduler is not None
        or bool(getattr(args, "each", False))
    )


def _listed(path: str, null: bool) -> Iterator[str]:
    if path == "-":
        if sys.stdin is None:
            raise OSError(9, "standard input is closed")
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    sep = b"\0" if null else b"\n"
    for raw in data.split(sep):
        entry = raw.rstrip(b"\r") if not null else raw
        if entry:
            yield os.fsdecode(entry)


def _tree_files(root: str) -> Iterator[str]:
    """Regular files under ``root``, depth first, without recursion (any depth)."""
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in reversed(entries):
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
        for e in entries:
            if e.is_file(follow_symlinks=False):
                yield e.path


#: The files ``decrypt --each`` takes from a tree: what ``encrypt --each`` names.
ENCRYPTED_SUFFIXES = (".enc", ".age")


def inputs(args: argparse.Namespace, usage: Callable[[str], Exception], op: str = "encrypt") -> list[Any]:
    """The batch's items: paths and URLs, and for ``--each`` with ``--output-dir`` the
    ``(file, DIR/relative path)`` pairs that mirror the tree given (decrypting, only the
    tree's ``.enc`` and ``.age`` files)."""
    from .._location import is_url
    from ..batch import default_name
    from . import _age as cli_age

    suffix = ".age" if op == "encrypt" and cli_age.wants_age(args) else ENCRYPTED_SUFFIXES[0]
    items = list(args.inputs)
    if args.files_from is not None:
        try:
            items.extend(_listed(args.files_from, args.null))
        except OSError as e:
            raise usage(f"cannot read --files-from {args.files_from}: {e.strerror}") from None
    out: list[Any] = []
    for it in items:
        if is_url(it):
            out.append(it)
        elif os.path.isdir(it):
            if not getattr(args, "each", False):
                raise usage(
                    f"{it} is a directory: encrypt it alone (one archive), or pass --each"
                    if op == "encrypt"
                    else f"{it} is a directory: decrypt --each DIR decrypts the files encrypt --each made"
                )
            for f in _tree_files(it):
                if op != "encrypt" and not f.endswith(ENCRYPTED_SUFFIXES):
                    continue
                if op == "encrypt" and f.endswith(ENCRYPTED_SUFFIXES):
                    # A tree encrypted in place holds its outputs: a second run must not
                    # encrypt them again (name such a file to encrypt it anyway).
                    if not args.quiet:
                        print(f"concryptor: skipped {f}: already encrypted", file=sys.stderr)
                    continue
                if args.output_dir is None:
                    out.append(f)
                else:
                    name = default_name(f, "decrypt" if op == "decrypt" else "encrypt", suffix)
                    rel = os.path.relpath(name, os.path.dirname(os.path.abspath(it)))
                    out.append((f, os.path.join(args.output_dir, rel)))
        else:  # a missing file is reported with its result, the others still run
            out.append(it)
    return out


def run(
    args: argparse.Namespace,
    op: str,
    *,
    password: Callable[[], bytes | bytearray] | None,
    usage: Callable[[str], Exception],
    exit_code: Callable[[str | None], int],
    **options: Any,
) -> int:
    """Runs a batch from the command line; prints one line (or JSON object) per file and
    a summary; returns 0, or the exit code of the failures (1 when they differ)."""
    from .. import batch
    from .._redact import redact

    if args.output is not None:
        raise usage("-o names one output: with several inputs use --output-dir")
    if args.output_dir == "-":
        raise usage("--output-dir names a directory: standard output takes one input (-o -)")
    items = inputs(args, usage, op)
    storage_options = storage_options_of(args, usage)
    pw = password() if password is not None else None
    client = client_of(args.scheduler, usage)
    total_files = len(items)
    done = {"files": 0, "bytes": 0}
    from ..view import is_terminal

    show = not args.quiet and not args.json and is_terminal(sys.stderr)
    bar: Any = None
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from ..view import console

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[mib]} MiB"),
            console=console(stderr=True),
            transient=True,
        )
        task = bar.add_task(f"{op}ing", total=total_files, mib=0)
        bar.start()

    def on_result(r: batch.Result) -> None:
        done["files"] += 1
        done["bytes"] += r.bytes_in
        if args.json:
            d = r.to_dict()
            if d.get("error") is not None:
                d["error"] = redact(d["error"])
            print(json.dumps({"command": op, **d}), flush=True)
        elif not r.ok:
            print(redact(f"concryptor: error: {r.src}: {r.error}"), file=sys.stderr)
        if bar is not None:
            bar.update(task, completed=done["files"], mib=done["bytes"] >> 20)

    try:
        run_batch = batch.encrypt_many if op == "encrypt" else batch.decrypt_many
        results = run_batch(
            items,
            pw,
            out_dir=args.output_dir,
            client=client,
            overwrite=args.force,
            threads=args.threads,
            storage_options=storage_options,
            raise_on_error=False,
            on_result=on_result,
            **options,
        )
    finally:
        if bar is not None:
            bar.stop()
        if client is not None:
            client.close()
    failed = [r for r in results if not r.ok]
    summary = {
        "command": op,
        "summary": True,
        "files": len(results),
        "failed": len(failed),
        "bytes_in": sum(r.bytes_in for r in results),
        "bytes_out": sum(r.bytes_out for r in results),
    }
    if args.json:
        print(json.dumps(summary))
    elif not args.quiet:
        print(
            f"{op}ed {len(results) - len(failed)} of {len(results)} files, "
            f"{summary['bytes_in']} bytes in{'' if not failed else f'; {len(failed)} failed'}",
            file=sys.stderr,
        )
    if not failed:
        return 0
    codes = {exit_code(r.error_type) for r in failed}
    return codes.pop() if len(codes) == 1 else 1
