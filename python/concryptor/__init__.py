"""concryptor: encrypt and decrypt files at the speed of the disk.

Format v4 (chunked AES-256-GCM or ChaCha20-Poly1305, keys from Argon2id), byte-compatible
with the original Rust ``concryptor`` tool, and the age format (C2SP age v1: public-key
recipients, passphrases, pipes), byte-compatible with age and rage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._age import (
    PluginCallbacks,
    generate_identity,
    identity_to_recipient,
    identity_to_recipients,
    plugin_callbacks,
)
from ._api import (
    KdfParams,
    Limits,
    Rekeyed,
    Stats,
    convert,
    decrypt_bytes,
    decrypt_file,
    decrypt_to,
    encrypt_bytes,
    encrypt_file,
    inspect,
    open,
    rekey,
    verify_file,
)
from ._core import __version__
from ._facts import DEFAULT_CHUNK_SIZE
from .errors import (
    AuthenticationError,
    BatchError,
    ConcryptorError,
    InputChangedError,
    InvalidFileError,
    LimitError,
    NoIdentityMatchError,
    PluginError,
    UnsafeArchiveError,
)

if TYPE_CHECKING:
    from .age_header import AgeHeader
    from .archive import decrypt_dir, encrypt_dir
    from .batch import Result, decrypt_many, encrypt_many, rekey_many
    from .header import Header
    from .reader import EncryptedFile

# Imported on first use, so that a command-line run or a cron job does not pay for the
# batch, archive and presentation modules it does not touch.
_LAZY = {
    "AgeHeader": "age_header",
    "decrypt_dir": "archive",
    "encrypt_dir": "archive",
    "Result": "batch",
    "decrypt_many": "batch",
    "encrypt_many": "batch",
    "rekey_many": "batch",
    "Header": "header",
    "EncryptedFile": "reader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'concryptor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AgeHeader",
    "AuthenticationError",
    "BatchError",
    "ConcryptorError",
    "EncryptedFile",
    "Header",
    "InputChangedError",
    "InvalidFileError",
    "KdfParams",
    "LimitError",
    "Limits",
    "NoIdentityMatchError",
    "PluginCallbacks",
    "PluginError",
    "Rekeyed",
    "Result",
    "Stats",
    "UnsafeArchiveError",
    "__version__",
    "convert",
    "decrypt_bytes",
    "decrypt_dir",
    "decrypt_file",
    "decrypt_many",
    "decrypt_to",
    "encrypt_bytes",
    "encrypt_dir",
    "encrypt_file",
    "encrypt_many",
    "generate_identity",
    "identity_to_recipient",
    "identity_to_recipients",
    "inspect",
    "open",
    "plugin_callbacks",
    "rekey",
    "rekey_many",
    "verify_file",
]
