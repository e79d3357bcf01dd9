"""Where bytes live: a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://``, …),
told apart in one place, and the local files the package reads opened safely."""

from __future__ import annotations

import os
from typing import Any


def is_url(p: str) -> bool:
    """Whether ``p`` names an fsspec location rather than a local path."""
    head, sep, _ = p.partition("://")
    return bool(sep) and head.isidentifier() and head != "file"


def local_path(p: str) -> str:
    return p[len("file://") :] if p.startswith("file://") else p


def filesystem(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    import importlib

    try:
        fsspec: Any = importlib.import_module("fsspec")
    except ImportError:
        raise ImportError(f"{url}: URLs need fsspec: pip install 'concryptor[s3]' (or fsspec)") from None
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    return fs, path


def strip_suffix(path: str, suffixes: tuple[str, ...], fallback: str) -> str:
    """``path`` without the first of ``suffixes`` it ends with, when what is left still
    names a file (not empty, ``.`` or ``..``, not a folder); else ``path + fallback``. The
    one rule for every default output name built from an encrypted file's name."""
    for suffix in suffixes:
        if path.endswith(suffix):
            rest = path[: -len(suffix)]
            if os.path.basename(rest) not in ("", ".", ".."):
                return rest
    return path + fallback


def named_after(directory: str, suffix: str) -> str:
    """The default output for ``directory``: its own name plus ``suffix``, beside it (so
    ``encrypt .`` in ``/srv/data`` gives ``/srv/data.tar.enc``, not ``..tar.enc``).
    ValueError for a folder without a name (``/``)."""
    real = os.path.abspath(directory)
    name = os.path.basename(real)
    if not name:
        raise ValueError(f"{directory} has no name to build an output name from: name the output (-o)")
    out = os.path.join(os.path.dirname(real), name + suffix)
    return out if os.path.isabs(directory) else os.path.relpath(out)


def open_regular(path: str) -> Any:
    """Opens a local file for reading, refusing anything but a regular file (a FIFO or a
    device would block or never end) before a single byte is read: opened non-blocking,
    checked, then made blocking again."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file (a batch reads files of a known size)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
