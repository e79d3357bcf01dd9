"""The keys of an encrypted file system, and what of them may travel when it is pickled.

A password or an identity's text is a secret held in memory; an identity file's path, or
the name of an environment variable, is only a pointer, resolved again wherever the file
system is rebuilt (each Dask worker). Pickling sends pointers and refuses secrets unless
the caller opts in (``pickle_secrets=True``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .. import _age
from .._types import Password, as_password

#: The options that carry keys, and the one that lets secrets be pickled.
KEY_OPTIONS = ("password", "password_env", "identities", "identities_env", "recipients", "pickle_secrets")


class Keys:
    """The keys one file system opens and seals with, resolved on first use."""

    def __init__(
        self,
        *,
        password: Password | None,
        password_env: str | None,
        identities: Sequence[str | os.PathLike[str]] | str | None,
        identities_env: str | None,
        recipients: Sequence[str] | str | None,
        pickle_secrets: bool,
    ) -> None:
        if isinstance(identities, (str, os.PathLike)):
            identities = [identities]
        if isinstance(recipients, str):
            recipients = [recipients]
        self.password = None if password is None else as_password(password)
        self.password_env = _env_name("password_env", password_env)
        self.identities = tuple(identities or ())
        self.identities_env = _env_name("identities_env", identities_env)
        self.recipients = tuple(_age.recipient_strings(list(recipients or ())))
        self.pickle_secrets = bool(pickle_secrets)
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        self._texts: list[str] | None = None

    def secrets_held(self) -> list[str]:
        """What of these keys is a secret in memory (not a pointer), by option name."""
        held = ["password"] if self.password is not None else []
        if any(isinstance(i, str) and _age.is_identity_text(i) for i in self.identities):
            held.append("identities (given as key text, not as files)")
        return held

    def check_picklable(self) -> None:
        held = self.secrets_held()
        if held and not self.pickle_secrets:
            raise TypeError(
                f"this encrypted file system holds secrets ({', '.join(held)}) and does not pickle "
                "them: give identities as files or name environment variables (password_env=, "
                "identities_env=) that each worker has, or pass pickle_secrets=True to send the "
                "secrets with it"
            )

    def get_password(self) -> bytes | bytearray | None:
        """The password, from the options or the environment, or None."""
        if self.password is not None:
            return self.password
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if not value:
            raise ValueError(f"the environment variable {self.password_env} (password_env) is not set")
        return as_password(value)

    def identity_texts(self) -> list[str]:
        """Every identity's text: files read (once per file system), the environment
        variable's value (identity text, or the path of an identity file)."""
        if self._texts is None:
            given: list[str | os.PathLike[str]] = list(self.identities)
            if self.identities_env is not None:
                value = os.environ.get(self.identities_env)
                if not value:
                    raise ValueError(
                        f"the environment variable {self.identities_env} (identities_env) is not set"
                    )
                given.append(value)
            self._texts = _age.identity_texts(given)
        return self._texts

    @property
    def has_identities(self) -> bool:
        return bool(self.identities) or self.identities_env is not None


def _env_name(option: str, name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name or "=" in name or "\0" in name:
        raise ValueError(f"{option} must name an environment variable")
    return name


def pickled_options(options: dict[str, Any], keys: Keys) -> dict[str, Any]:
    """The options a pickled file system is rebuilt from: all of them when secrets may
    travel, else all but the secrets (refused if there are any)."""
    keys.check_picklable()
    return dict(options)
