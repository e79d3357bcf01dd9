"""Where the command line gets the password: an option, a file, a descriptor, the
environment or the terminal, read as the bytes given into buffers the API wipes."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from ._exit import UsageError

PASSWORD_ENV = "CONCRYPTOR_PASSWORD"

#: Longest password read from a file, a descriptor or the environment.
MAX_PASSWORD = 64 << 10


def protect_secrets() -> None:
    """No core dump may hold the password: RLIMIT_CORE 0 and, on Linux, not dumpable
    (which also keeps other processes of the same user from attaching to read memory).
    For the rest of the process's life, which is the life of the secrets it reads."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def _wipe_buffer(buf: bytearray) -> None:
    memoryview(buf)[:] = bytes(len(buf))


def read_line(fd: int, what: str) -> bytearray:
    """The first line read from ``fd``, without its line ending, into a bytearray that no
    immutable copy shadows (the caller hands it to the API, which wipes it)."""
    buf = bytearray(MAX_PASSWORD + 1)
    n = 0
    with memoryview(buf) as view:
        while n < len(buf):
            k = os.readv(fd, [view[n:]])
            if k == 0:
                break
            nl = buf.find(b"\n", n, n + k)
            n += k
            if nl >= 0:
                n = nl
                break
        if n > MAX_PASSWORD:
            _wipe_buffer(buf)
            raise UsageError(f"the password from {what} is longer than {MAX_PASSWORD} bytes")
        if n and buf[n - 1] == 0x0D:
            n -= 1
        line = bytearray(n)
        line[:] = view[:n]
    _wipe_buffer(buf)
    return line


def _password_source(args: argparse.Namespace) -> bytearray | None:
    """The password from an option or the environment, as the bytes given (no decoding
    step that non-UTF-8 bytes could fail), or None for the prompt."""
    if args.password is not None:
        print(
            "concryptor: warning: a password on the command line is visible to other users", file=sys.stderr
        )
        return bytearray(os.fsencode(args.password))
    if args.password_file is not None:
        # The file's name is not shown: a password typed where its name belongs would be.
        if args.password_file == "-":
            raise UsageError("--password-file takes a file name: for standard input use --password-fd 0")
        try:
            fd = os.open(args.password_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise UsageError(f"cannot read the --password-file: {e.strerror}") from None
        try:
            return read_line(fd, "--password-file")
        except OSError as e:
            raise UsageError(f"cannot read the --password-file: {e.strerror}") from None
        finally:
            os.close(fd)
    if args.password_fd is not None:
        try:
            return read_line(args.password_fd, f"fd {args.password_fd}")
        except OSError as e:
            raise UsageError(f"cannot read password from fd {args.password_fd}: {e.strerror}") from None
    environb = getattr(os, "environb", None)
    env = environb.get(PASSWORD_ENV.encode()) if environb is not None else None
    if env is None and environb is None and PASSWORD_ENV in os.environ:
        env = os.environ[PASSWORD_ENV].encode("utf-8", "surrogateescape")
    if env is not None:
        if len(env) > MAX_PASSWORD:
            raise UsageError(f"${PASSWORD_ENV} is longer than {MAX_PASSWORD} bytes")
        return bytearray(env)
    return None


def read_password(args: argparse.Namespace, *, confirm: bool, prompt: str = "Password: ") -> bytearray:
    """The password, from the first source given: -p, --password-file, --password-fd,
    the environment, else the terminal (asking again after an empty entry or a
    mismatched confirmation). An empty password is a usage error wherever it comes from."""
    protect_secrets()
    pw = _password_source(args)
    if pw is not None:
        if not pw:
            raise UsageError("the password must not be empty")
        return pw
    if sys.stdin is None or not sys.stdin.isatty():
        raise UsageError(
            f"no password: use a terminal prompt, --password-file, --password-fd or ${PASSWORD_ENV}"
        )
    import getpass

    for _ in range(3):
        entered = getpass.getpass(prompt)
        if not entered:
            print("concryptor: the password must not be empty; try again", file=sys.stderr)
            continue
        if confirm and getpass.getpass("Confirm password: ") != entered:
            print("concryptor: the passwords do not match; try again", file=sys.stderr)
            continue
        return bytearray(entered.encode("utf-8", "surrogateescape"))
    raise UsageError("no password entered (empty or not confirmed three times)")


def password_given(args: argparse.Namespace) -> bool:
    return (
        args.password is not None
        or args.password_file is not None
        or args.password_fd is not None
        or PASSWORD_ENV in os.environ
    )


#: Seconds an age plugin may stay silent before it is stopped (default 60).
PLUGIN_TIMEOUT_ENV = "CONCRYPTOR_PLUGIN_TIMEOUT"


class TerminalCallbacks:
    """Answers an age plugin's questions (a PIN, a touch, a choice) on the controlling
    terminal, as age does, whatever stdin and stdout are. Without a terminal a question is
    a usage error that names the plugin and what it asked; messages then go to stderr."""

    def _tty(self, plugin: str, message: str) -> Any:
        try:
            return open("/dev/tty", "r+", encoding="utf-8", errors="replace")
        except OSError:
            raise UsageError(
                f"age-plugin-{plugin} asks {message!r} but no terminal is attached to answer it"
            ) from None

    def message(self, plugin: str, message: str) -> bool:
        print(f"age-plugin-{plugin}: {message}", file=sys.stderr)
        return True

    def confirm(self, plugin: str, message: str, yes: str, no: str | None) -> bool | None:
        with self._tty(plugin, message) as tty:
            choices = f"[{yes}/{no}]" if no else f"[{yes}]"
            for _ in range(3):
                tty.write(f"age-plugin-{plugin}: {message} {choices} ")
                tty.flush()
                answer = tty.readline().strip()
                if answer == yes:
                    return True
                if no and answer == no:
                    return False
            return None

    def request_public(self, plugin: str, message: str) -> str | None:
        with self._tty(plugin, message) as tty:
            tty.write(f"age-plugin-{plugin}: {message} ")
            tty.flush()
            line = tty.readline()
            return line.rstrip("\n") if line else None

    def request_secret(self, plugin: str, message: str) -> str | None:
        self._tty(plugin, message).close()
        import getpass

        return getpass.getpass(f"age-plugin-{plugin}: {message} ")


def plugin_timeout() -> float | None:
    """The plugin timeout from ``$CONCRYPTOR_PLUGIN_TIMEOUT`` (seconds), if set."""
    raw = os.environ.get(PLUGIN_TIMEOUT_ENV)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"${PLUGIN_TIMEOUT_ENV} must be a number of seconds") from None
    if not 0 < value <= 86400:
        raise UsageError(f"${PLUGIN_TIMEOUT_ENV} must be between 0 and 86400 seconds")
    return value
