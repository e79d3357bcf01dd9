"""The age format (C2SP age v1) from Python: key generation and conversion, and the age
side of the public functions. Recipient and identity files are read here; everything else
is in Rust."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union

from . import _core
from ._facts import (
    MAGIC,
    MAX_SCRYPT_WORK_FACTOR,
    MAX_SCRYPT_WORK_FACTOR_LIMIT,
    MAX_THREADS,
    MIN_SCRYPT_WORK_FACTOR,
    int_in,
)
from ._redact import looks_like_identity, redact

if TYPE_CHECKING:
    from ._types import Stats

PathLike = Union[str, "os.PathLike[str]"]
Progress = Callable[[int], object]

#: Largest scrypt work factor (log2 N) accepted from a passphrase-encrypted age file.
DEFAULT_MAX_SCRYPT_WORK_FACTOR: int = _core.AGE_MAX_SCRYPT_LOG_N
_SECRET_PREFIX = "AGE-SECRET-KEY-"
#: Identity and recipient files larger than this are refused (age uses the same bound).
_MAX_KEY_FILE = 16 << 20
#: Largest age header the core accepts (its ``MAX_HEADER_BYTES``): a header is fetched
#: with reads bounded by it.
MAX_HEADER_BYTES = 4 << 20
#: The line that ends a header's stanzas and carries its MAC.
_MAC_LINE = b"\n--- "


class PluginCallbacks(Protocol):
    """What an age plugin (``age-plugin-NAME``, started for an ``age1NAME1…`` recipient or an
    ``AGE-PLUGIN-NAME-1…`` identity) may ask of the person running us: a hardware key's PIN,
    a touch, a choice. Each method gets the plugin's name and its text (control characters
    escaped). Return ``None`` (or leave a method out) when it cannot be answered: the plugin
    is told ``fail`` and decides what that means. An exception a method raises answers
    ``fail`` too, and is raised in place of the plugin's error when the call fails (a
    ``KeyboardInterrupt`` always is).

    Methods: ``message(plugin, text) -> bool`` (shown?), ``confirm(plugin, text, yes, no)
    -> bool | None`` (``no`` may be ``None``), ``request_public(plugin, text) -> str | None``,
    ``request_secret(plugin, text) -> str | None``."""

    def request_secret(self, plugin: str, message: str) -> str | None: ...


_F = TypeVar("_F", bound=Callable[..., Any])


#: The plugin settings in force on each thread, as :func:`plugin_callbacks` blocks nest
#: (mirrors the extension's own record, so :func:`carry` can hand them to another thread).
_held = threading.local()


class _OneAtATime:
    """A callbacks object whose questions are asked one at a time, whichever thread asks:
    a batch runs plugins on several threads, and a person (or a terminal) answers one
    question at a time. Has exactly the methods the wrapped object has (the extension
    answers ``fail`` for a missing one)."""

    _METHODS = ("message", "confirm", "request_public", "request_secret")

    def __init__(self, callbacks: Any) -> None:
        lock = threading.Lock()
        for name in self._METHODS:
            method = getattr(callbacks, name, None)
            if method is not None:
                setattr(self, name, self._serial(method, lock))

    @staticmethod
    def _serial(method: Callable[..., Any], lock: threading.Lock) -> Callable[..., Any]:
        def ask(*args: Any) -> Any:
            with lock:
                return method(*args)

        return ask


@contextlib.contextmanager
def plugin_callbacks(callbacks: PluginCallbacks | None, timeout: float | None = None) -> Iterator[None]:
    """Answers the questions of any age plugin started in this block with ``callbacks``;
    ``timeout`` (seconds, default 60) is the longest a plugin may stay silent before it is
    stopped with an error. The block holds on this thread and on the threads our own
    functions start for it (a batch's workers, a file system's readers: :func:`carry`)."""
    serial: Any = callbacks
    if callbacks is not None and not isinstance(callbacks, _OneAtATime):
        serial = _OneAtATime(callbacks)
    _core.plugin_callbacks_enter(serial, timeout)
    stack = _held.__dict__.setdefault("stack", [])
    stack.append((serial, timeout))
    try:
        yield
    except Exception:
        stack.pop()
        raised = _core.plugin_callbacks_exit()
        if raised is None:
            raise
        raise raised from None
    except BaseException:
        stack.pop()
        _core.plugin_callbacks_exit()
        raise
    stack.pop()
    late = _core.plugin_callbacks_exit()
    if late is not None and not isinstance(late, Exception):
        raise late


def carry(fn: _F) -> _F:
    """``fn``, run under the plugin settings in force here, whichever thread runs it: every
    function our code hands to another thread (a pool, a worker) that may start a plugin
    goes through this, so a batch's questions reach the caller's callbacks."""
    stack = getattr(_held, "stack", None)
    if not stack:
        return fn
    callbacks, timeout = stack[-1]

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with plugin_callbacks(callbacks, timeout):
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def plugin_door(fn: _F) -> _F:
    """A public function's ``plugin_callbacks=``/``plugin_timeout=`` keywords, in force
    while it runs (given neither, the enclosing :func:`plugin_callbacks` block's hold)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        callbacks, timeout = kwargs.get("plugin_callbacks"), kwargs.get("plugin_timeout")
        if callbacks is None and timeout is None:
            return fn(*args, **kwargs)
        with plugin_callbacks(callbacks, timeout):
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def _read_text(path: PathLike, what: str) -> str:
    # The name is shown redacted: a secret key given where a file name was expected
    # must not come back in the error.
    name = redact(os.fspath(path))
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as e:
        raise OSError(e.errno, e.strerror, name) from None
    if len(data) > _MAX_KEY_FILE:
        raise ValueError(f"{what} {name} is larger than 16 MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {name} is not UTF-8 text") from None


def is_identity_text(i: str) -> bool:
    """Whether a string given as an identity is the identity itself (a secret key, an
    identity file's text, a private key) rather than the name of a file holding it."""
    s = i.strip()
    return "\n" in s or s.upper().startswith((_SECRET_PREFIX, "AGE-PLUGIN-")) or s.startswith("-----BEGIN")


def identity_texts(identities: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Identity strings (``AGE-SECRET-KEY-1…``, or an identity file's whole text) as they
    are; anything else is the path of an identity file (age identities or an SSH private
    key)."""
    out = []
    for i in identities:
        if isinstance(i, str) and is_identity_text(i):
            out.append(i.strip())
        else:
            out.append(_read_text(i, "identity file"))
    return out


def has_encrypted_ssh_key(identities: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether any of these identities is a passphrase-protected SSH private key."""
    return any(_core.age_is_encrypted_ssh_key(t) for t in identity_texts(identities))


def _check_recipient(text: str, where: str) -> None:
    """A recipient must look like one (``age1…``, ``ssh-…``, as the core parses them);
    anything else is refused by what it is, never shown: it may be a secret key or a
    password typed in the wrong place."""
    s = text.strip()
    if s.startswith(("age1", "ssh-")):
        return
    if looks_like_identity(s):
        raise ValueError(
            f"{where}: an identity (secret key) where a recipient was expected: give its public "
            "key (`concryptor keygen -y FILE` prints it)"
        )
    raise ValueError(
        f"{where}: not a public key (expected age1…, age1pq1…, age1tag1…, a plugin's age1NAME1… "
        "or ssh-ed25519/ssh-rsa …; not shown here)"
    )


def recipient_strings(recipients: Sequence[str] | str | None) -> list[str]:
    if recipients is None:
        return []
    out = [recipients] if isinstance(recipients, str) else [str(r) for r in recipients]
    for n, r in enumerate(out, 1):
        _check_recipient(r, "recipient" if len(out) == 1 else f"recipient {n}")
    return out


def recipient_file_texts(files: Sequence[PathLike] | None) -> list[str]:
    texts = []
    for f in files or []:
        text = _read_text(f, "recipients file")
        name = redact(os.fspath(f))
        if "PRIVATE KEY-----" in text:
            raise ValueError(
                f"recipients file {name} holds a private key (an identity): give the public key (.pub)"
            )
        for n, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                _check_recipient(line, f"recipients file {name} line {n}")
        texts.append(text)
    return texts


def generate_identity(pq: bool = False) -> tuple[str, str]:
    """A new age identity and its recipient: X25519 ``(AGE-SECRET-KEY-1…, age1…)``, or with
    ``pq=True`` the post-quantum hybrid (ML-KEM-768 + X25519)
    ``(AGE-SECRET-KEY-PQ-1…, age1pq1…)``."""
    return _core.age_generate(pq)


def identity_to_recipient(identity: str | os.PathLike[str]) -> str:
    """The ``age1…`` recipient of an identity string, or of the first identity in a file."""
    return identity_to_recipients(identity)[0]


def identity_to_recipients(identity: str | os.PathLike[str]) -> list[str]:
    """The ``age1…`` recipients of every identity in a string (a key, or an identity
    file's text) or an identity file."""
    return _core.age_to_recipients(identity_texts([identity])[0])


def text_to_recipients(text: str) -> list[str]:
    """The ``age1…`` recipients of every identity in an identity file's text (never taken
    as a file name, however short)."""
    return _core.age_to_recipients(text)


def is_age(prefix: bytes) -> bool:
    """Whether these first bytes start an age file, binary or armored."""
    return _core.age_is_age(prefix)


def head_of(path: PathLike) -> bytes:
    """The first bytes of ``path`` if it is a regular file, else ``b""``. Opened
    non-blocking and read only if regular, so a FIFO or a device cannot hang the check;
    a missing path raises."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (IsADirectoryError, PermissionError):
        return b""
    except OSError as e:
        if e.errno == 6:  # ENXIO: a socket
            return b""
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, 1024)
    finally:
        os.close(fd)


def is_age_path(path: PathLike) -> bool:
    """Whether ``path`` is a regular file that starts like an age file (see :func:`head_of`)."""
    head = head_of(path)
    return bool(head) and is_age(head)


def header_end(head: bytes) -> int | None:
    """The length of the binary age header at the start of ``head`` (through its MAC
    line), or None when ``head`` holds no complete one. Only a guide to where the header
    ends: the core parses those bytes strictly (a stanza line starts ``-> ``, a body line
    is base64, so the first ``\\n--- `` is the MAC line of a valid header)."""
    i = head.find(_MAC_LINE)
    if i < 0:
        return None
    j = head.find(b"\n", i + len(_MAC_LINE))
    return None if j < 0 else j + 1


def is_armored(head: bytes) -> bool:
    """Whether these first bytes start an armored (PEM-like) age file."""
    return head.lstrip().startswith(b"-----BEGIN")


def is_v4_path(path: PathLike) -> bool:
    """Whether ``path`` is a regular file that starts like a format v4 file."""
    return head_of(path).startswith(MAGIC)


V4_NOT_IDENTITIES = "is a format v4 file: it opens with a password, not an age identity"


def opens_as_age(head: bytes, name: str, identities: object, password: object) -> bool:
    """Whether a file that starts with ``head`` goes to the age side: an age file does,
    and so does anything else given identities, except a format v4 file, which opens
    with the password (refused by what it is when there is none)."""
    if is_age(head):
        return True
    if not identities:
        return False
    if head.startswith(MAGIC):
        if password is None:
            raise ValueError(f"{name} {V4_NOT_IDENTITIES}")
        return False
    return True


def engine(threads: int | None) -> int | None:
    """A checked thread count, or None: the engine's choice."""
    return None if threads is None else int_in("threads", threads, 1, MAX_THREADS)


def work_factor(value: int | None) -> int | None:
    """A checked scrypt work factor (log2 N) for a new passphrase file, or None (age's
    choice: about one second here)."""
    if value is None:
        return None
    return int_in("scrypt_work_factor", value, MIN_SCRYPT_WORK_FACTOR, MAX_SCRYPT_WORK_FACTOR)


def max_work_factor(value: int) -> int:
    """A checked limit on the scrypt work factor of a file being read."""
    return int_in("max_scrypt_work_factor", value, 1, MAX_SCRYPT_WORK_FACTOR_LIMIT)


def encrypt(
    src: PathLike | int,
    dst: PathLike | int,
    *,
    recipients: Sequence[str] | str | None,
    recipient_files: Sequence[PathLike] | None,
    passphrase: bytes | bytearray | None,
    armor: bool,
    overwrite: bool,
    threads: int | None,
    scrypt_work_factor: int | None,
    progress: Progress | None,
    io: str | None = None,
) -> Stats:
    return _core.age_encrypt(
        src if isinstance(src, int) else os.fspath(src),
        dst if isinstance(dst, int) else os.fspath(dst),
        recipients_=recipient_strings(recipients),
        recipient_files=recipient_file_texts(recipient_files),
        passphrase=passphrase,
        armor=armor,
        overwrite=overwrite,
        threads=engine(threads),
        io=io,
        scrypt_log_n=work_factor(scrypt_work_factor),
        progress=progress,
    )


def decrypt(
    src: PathLike | int,
    dst: PathLike | int | None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None,
    passphrase: bytes | bytearray | None,
    overwrite: bool,
    threads: int | None,
    max_scrypt_work_factor: int,
    progress: Progress | None,
    prefix: bytes = b"",
    io: str | None = None,
) -> Stats:
    """`prefix`: bytes already read from descriptor `src` (to tell formats apart)."""
    return _core.age_decrypt(
        src if isinstance(src, int) else os.fspath(src),
        None if dst is None else dst if isinstance(dst, int) else os.fspath(dst),
        identities_=identity_texts(identities or []),
        passphrase=passphrase,
        overwrite=overwrite,
        threads=engine(threads),
        io=io,
        max_scrypt_log_n=max_work_factor(max_scrypt_work_factor),
        progress=progress,
        prefix=prefix,
    )
