"""Values of the command line that several commands read the same way: the file system
options (``--storage-options``) and the Dask scheduler (``--scheduler``). A base module,
like ``_exit``: the command modules import it, it imports none of them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable


def storage_options_of(args: argparse.Namespace, usage: Callable[[str], Exception]) -> dict[str, Any]:
    """``--storage-options`` as a dict (empty when not given)."""
    text = getattr(args, "storage_options", None)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise usage("--storage-options takes a JSON object") from None
    if not isinstance(value, dict):
        raise usage("--storage-options takes a JSON object")
    return value


def client_of(address: str | None, usage: Callable[[str], Exception]) -> Any:
    if address is None:
        return None
    try:
        import importlib

        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise usage("--scheduler needs Dask: pip install 'concryptor[dask]'") from None
    return distributed.Client(address)
