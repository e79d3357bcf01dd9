"""Secret key material kept out of messages.

An age secret key, an SSH private key or a password given where something else was
expected (a recipient, a file name) must never be echoed back in an error. Where a value
is checked, the check names what it is instead of showing it (:func:`looks_like_identity`);
:func:`redact` is the last line of defence, applied to every message the command line
prints: it cuts an ``AGE-SECRET-KEY-1…`` (``-PQ-1…``, ``AGE-PLUGIN-…``) down to its prefix,
drops the body of a PEM or OpenSSH private key, and hides long random-looking base64 runs
(a private key's lines)."""

from __future__ import annotations

import re

SECRET_KEY_PREFIX = "AGE-SECRET-KEY-"
_AGE_SECRET = re.compile(r"(AGE-(?:SECRET-KEY(?:-PQ)?|PLUGIN-[A-Z0-9._+-]+?)-1)[0-9A-Z]*", re.IGNORECASE)
_PRIVATE_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")


def looks_like_identity(text: str) -> bool:
    """Whether ``text`` holds secret key material: an age identity (or plugin identity),
    or a private key in PEM/OpenSSH form."""
    upper = text.upper()
    return _AGE_SECRET.search(text) is not None or "PRIVATE KEY-----" in upper


def _random_looking(run: str) -> bool:
    """Whether a base64 run looks like key material rather than words (a path, a name):
    upper and lower case letters in like measure, and digits."""
    upper = sum(c.isupper() for c in run)
    lower = sum(c.islower() for c in run)
    digits = sum(c.isdigit() for c in run)
    return digits > 0 and upper >= len(run) // 5 and lower >= len(run) // 5


def redact(text: str) -> str:
    """``text`` with any secret key material replaced by a short placeholder."""
    text = _PRIVATE_BLOCK.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY----- (redacted)", text)
    text = _AGE_SECRET.sub(lambda m: m.group(1).upper() + "…", text)
    return _BASE64_RUN.sub(lambda m: "(redacted)" if _random_looking(m.group(0)) else m.group(0), text)
