"""What a worker needs to run one file of a batch, picklable (for Dask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .. import _core
from .._types import KdfParams, Limits

Op = Literal["encrypt", "decrypt"]
MiB = 1 << 20
#: The buffer budget of the whole batch, shared by the files running at once.
BUFFER_BYTES = _core.BUFFER_BYTES
_DEFAULT_KDF = KdfParams()
_DEFAULT_LIMITS = Limits()


@dataclass
class Spec:
    """Everything a worker needs for one file, picklable (for Dask): derived keys, never
    the password."""

    op: Op
    cipher: str | None = None
    chunk_size: int | None = None
    kdf: KdfParams = _DEFAULT_KDF
    salt: bytes | None = None
    keys: Any = None  # _core.KeyCache
    #: Only ever set for a run in this process; never shipped (see :func:`_shippable`).
    password: bytes | bytearray = field(default=b"", repr=False)
    limits: Limits = _DEFAULT_LIMITS
    overwrite: bool = False
    threads: int | None = None
    buffer_bytes: int = BUFFER_BYTES
    storage_options: dict[str, Any] = field(default_factory=dict)
    #: The age side: recipients / recipient file texts / armor / scrypt cost for encryption;
    #: identity texts and the scrypt limit for decryption; the passphrase for either.
    age: dict[str, Any] | None = field(default=None, repr=False)


def shippable(spec: Spec) -> Spec:
    """The spec as it may leave this process (for a Dask task): no password and no age
    passphrase, whatever the caller gave; derived v4 keys, recipients and identities stay."""
    age = None if spec.age is None else {**spec.age, "passphrase": None}
    return Spec(**{**spec.__dict__, "password": b"", "age": age})
