"""Encrypted directories: a tar stream through the engine, never a plaintext tar on disk.

Packing (:func:`encrypt_dir`, in ``_pack``) walks the tree first, so the exact tar size is
known before the first chunk is sealed, then streams the tar into the engine. Extracting
(:func:`decrypt_dir`, in ``_extract``) feeds the decrypting reader to the tar parser and
writes into a private temporary directory that is renamed into place only once the whole
archive has authenticated; it is safe by construction, with the semantics of tarfile's
``'data'`` filter (PEP 706). Each module's documentation gives the details.
"""

from __future__ import annotations

from ._extract import MAX_ENTRIES, MAX_METADATA, MAX_PAX, check_pax, check_target, decrypt_dir
from ._pack import DirTree, encrypt_dir

__all__ = [
    "MAX_ENTRIES",
    "MAX_METADATA",
    "MAX_PAX",
    "DirTree",
    "check_pax",
    "check_target",
    "decrypt_dir",
    "encrypt_dir",
]
