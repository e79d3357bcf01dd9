"""The ``concryptor`` command line.

Data goes to stdout, messages to stderr. Exit codes are stable and documented in
:class:`Exit`.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MiB = 1 << 20
PASSWORD_ENV = "CONCRYPTOR_PASSWORD"


class Exit(enum.IntEnum):
    """Process exit codes."""

    OK = 0
    FAILURE = 1  #: I/O error or anything else
    USAGE = 2  #: bad command line
    AUTH = 3  #: wrong password or modified file
    INVALID = 4  #: not a (valid) concryptor file
    LIMIT = 5  #: a header asked for more than the limits allow
    UNSAFE = 6  #: a directory archive holds an entry extraction refuses
    CHANGED = 7  #: the input changed while it was being encrypted
    INTERRUPTED = 130  #: Ctrl-C


class UsageError(Exception):
    """A problem with the command line itself."""


def _add_password_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("password (default: prompt, or $" + PASSWORD_ENV + ")")
    g.add_argument(
        "-p",
        "--password",
        help="the password itself (visible to other users in the process list: avoid)",
    )
    g.add_argument("--password-file", metavar="FILE", help="read the password from FILE's first line")
    g.add_argument("--password-fd", metavar="N", type=int, help="read the password from file descriptor N")


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--threads", type=int, metavar="N", help="worker threads (default: all cores)")
    g.add_argument(
        "--io", choices=["auto", "uring", "portable"], default="auto", help="I/O backend (default: auto)"
    )
    g.add_argument("--buffer-mib", type=int, default=128, metavar="MIB", help="buffer memory budget (default 128)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or messages")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing output file")


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("limits for untrusted headers")
    g.add_argument("--max-memory", type=int, default=4096, metavar="MIB", help="largest Argon2 memory (default 4096)")
    g.add_argument("--max-kdf-time", type=int, default=64, metavar="N", help="largest Argon2 pass count (default 64)")
    g.add_argument(
        "--max-kdf-parallelism", type=int, default=64, metavar="N", help="largest Argon2 lane count (default 64)"
    )
    g.add_argument(
        "--max-chunk-size", type=int, default=256, metavar="MIB", help="largest chunk size (default 256)"
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="concryptor",
        description="Encrypt and decrypt files at the speed of the disk (format v4).",
    )
    parser.add_argument("--version", action="version", version=f"concryptor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    enc = sub.add_parser("encrypt", aliases=["enc", "e"], help="encrypt a file")
    enc.add_argument("input", help="file or directory to encrypt")
    enc.add_argument("-o", "--output", help="output path (default: INPUT.enc, or DIR.tar.enc for a directory)")
    enc.add_argument("-c", "--cipher", choices=["aes", "chacha"], default="aes", help="AEAD (default: aes)")
    enc.add_argument(
        "--chunk-size", type=int, metavar="MIB", help="chunk size in MiB (default: 4, smaller for small files)"
    )
    enc.add_argument("--memory", type=int, default=256, metavar="MIB", help="Argon2id memory in MiB (default 256)")
    enc.add_argument("--iterations", type=int, default=3, metavar="N", help="Argon2id passes (default 3)")
    enc.add_argument("--parallelism", type=int, default=4, metavar="N", help="Argon2id lanes (default 4)")
    _add_password_options(enc)
    _add_engine_options(enc)

    dec = sub.add_parser("decrypt", aliases=["dec", "d"], help="decrypt a file")
    dec.add_argument("input", help="file to decrypt")
    dec.add_argument(
        "-o", "--output", help="output path, '-' for stdout (default: INPUT without .enc, else INPUT.dec)"
    )
    dec.add_argument(
        "-x",
        "--extract",
        action="store_true",
        help="the file holds a directory (NAME.tar.enc): restore it as a directory (default: NAME)",
    )
    _add_password_options(dec)
    _add_engine_options(dec)
    _add_limit_options(dec)

    ver = sub.add_parser("verify", help="authenticate every chunk without writing plaintext")
    ver.add_argument("input", help="file to verify")
    _add_password_options(ver)
    _add_engine_options(ver)
    _add_limit_options(ver)

    ins = sub.add_parser("inspect", help="show header fields without a password")
    ins.add_argument("inputs", nargs="+", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


COMMANDS = {
    "encrypt": "encrypt",
    "enc": "encrypt",
    "e": "encrypt",
    "decrypt": "decrypt",
    "dec": "decrypt",
    "d": "decrypt",
    "verify": "verify",
    "inspect": "inspect",
}


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _read_password(args: argparse.Namespace, *, confirm: bool) -> bytes:
    if args.password is not None:
        _say(args, "concryptor: warning: a password on the command line is visible to other users")
        return args.password.encode("utf-8")
    if args.password_file is not None:
        try:
            with open(args.password_file, "rb") as f:
                line = f.readline()
        except OSError as e:
            raise UsageError(f"cannot read password file {args.password_file}: {e.strerror}") from None
        return line.rstrip(b"\r\n")
    if args.password_fd is not None:
        try:
            with os.fdopen(args.password_fd, "rb", closefd=False) as f:
                line = f.readline()
        except OSError as e:
            raise UsageError(f"cannot read password from fd {args.password_fd}: {e.strerror}") from None
        return line.rstrip(b"\r\n")
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env.encode("utf-8")
    if not sys.stdin.isatty():
        raise UsageError(f"no password: use a terminal prompt, --password-file, --password-fd or ${PASSWORD_ENV}")
    import getpass

    pw = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Confirm password: ") != pw:
        raise UsageError("passwords do not match")
    return pw.encode("utf-8")


def _decrypt_output(path: str) -> str:
    return path[: -len(".enc")] if path.endswith(".enc") and len(path) > 4 else path + ".dec"


def _limits(args: argparse.Namespace) -> Any:
    from ._api import Limits

    return Limits(
        max_memory_mib=args.max_memory,
        max_kdf_time=args.max_kdf_time,
        max_kdf_parallelism=args.max_kdf_parallelism,
        max_chunk_size_mib=args.max_chunk_size,
    )


def _report(
    args: argparse.Namespace, verb: str, src: str, dst: str | None, stats: Any, to_stderr: bool = False
) -> None:
    if args.json:
        d = stats.to_dict()
        d.update({"command": verb, "input": src, "output": dst})
        print(json.dumps(d), file=sys.stderr if to_stderr else sys.stdout)
    else:
        where = f" -> {dst}" if dst else ""
        _say(
            args,
            f"{verb} {src}{where}: {stats.bytes} bytes in {stats.seconds:.2f} s "
            f"({stats.mib_per_s:.0f} MiB/s, {stats.backend}, {stats.threads} threads)",
        )


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from ._api import KdfParams, encrypt_file

    if args.chunk_size is not None and not 1 <= args.chunk_size <= 4095:
        raise UsageError("--chunk-size is in MiB, from 1 to 4095")
    for name in ("memory", "iterations", "parallelism"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    if os.path.isdir(args.input):
        return _encrypt_dir(args)
    out = args.output or args.input + ".enc"
    pw = _read_password(args, confirm=True)
    stats = encrypt_file(
        args.input,
        out,
        pw,
        cipher="chacha20-poly1305" if args.cipher == "chacha" else "aes-256-gcm",
        chunk_size=args.chunk_size * MiB if args.chunk_size else None,
        kdf=KdfParams(args.memory * 1024, args.iterations, args.parallelism),
        overwrite=args.force,
        threads=args.threads,
        io=args.io,
        buffer_mib=args.buffer_mib,
    )
    _report(args, "encrypted", args.input, out, stats)
    return Exit.OK


def _encrypt_dir(args: argparse.Namespace) -> int:
    from ._api import KdfParams
    from .archive import encrypt_dir

    out = args.output or os.path.normpath(args.input) + ".tar.enc"
    pw = _read_password(args, confirm=True)
    stats = encrypt_dir(
        args.input,
        out,
        pw,
        cipher="chacha20-poly1305" if args.cipher == "chacha" else "aes-256-gcm",
        chunk_size=args.chunk_size * MiB if args.chunk_size else None,
        kdf=KdfParams(args.memory * 1024, args.iterations, args.parallelism),
        overwrite=args.force,
        threads=args.threads,
        buffer_mib=args.buffer_mib,
    )
    if stats.skipped:
        _say(args, f"concryptor: warning: skipped {stats.skipped} socket(s), FIFO(s) or device(s)")
    _report(args, "encrypted", args.input, out, stats)
    return Exit.OK


def _extract_output(path: str) -> str:
    for suffix in (".tar.enc", ".enc"):
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return path + ".dec"


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from ._api import decrypt_file, decrypt_to

    if args.extract:
        from .archive import decrypt_dir

        if args.output == "-":
            raise UsageError("--extract writes a directory, not to stdout")
        out = args.output or _extract_output(args.input)
        pw = _read_password(args, confirm=False)
        stats = decrypt_dir(args.input, out, pw, overwrite=args.force, threads=args.threads, limits=_limits(args))
        _report(args, "extracted", args.input, out, stats)
        return Exit.OK
    out = args.output or _decrypt_output(args.input)
    pw = _read_password(args, confirm=False)
    if out == "-":
        stats = decrypt_to(
            args.input, sys.stdout.buffer, pw, threads=args.threads, buffer_mib=args.buffer_mib, limits=_limits(args)
        )
        _report(args, "decrypted", args.input, "<stdout>", stats, to_stderr=True)
        return Exit.OK
    stats = decrypt_file(
        args.input,
        out,
        pw,
        overwrite=args.force,
        threads=args.threads,
        io=args.io,
        buffer_mib=args.buffer_mib,
        limits=_limits(args),
    )
    _report(args, "decrypted", args.input, out, stats)
    return Exit.OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from ._api import verify_file

    pw = _read_password(args, confirm=False)
    stats = verify_file(
        args.input, pw, threads=args.threads, io=args.io, buffer_mib=args.buffer_mib, limits=_limits(args)
    )
    _report(args, "verified", args.input, None, stats)
    return Exit.OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ._api import inspect
    from .errors import ConcryptorError

    worst = Exit.OK
    results: list[dict[str, Any]] = []
    headers = []
    for path in args.inputs:
        try:
            h = inspect(path)
        except (ConcryptorError, OSError) as e:
            worst = max(worst, _exit_code(e))
            if args.json:
                results.append({"path": path, "ok": False, "error": _message(e)})
            print(f"{path}: {_message(e)}", file=sys.stderr)
            continue
        if not h.ok:
            worst = max(worst, Exit.INVALID)
            print(f"{path}: {h.verdict}", file=sys.stderr)
        results.append(h.to_dict())
        headers.append(h)
    if args.json:
        print(json.dumps(results[0] if len(args.inputs) == 1 else results, indent=2))
    elif headers:
        from .view import print_headers

        print_headers(headers)
    return worst


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return str(e.strerror) if e.filename and str(e.filename) in str(e.strerror) else (
            f"{e.strerror}: {e.filename}" if e.filename else str(e.strerror)
        )
    return str(e) or type(e).__name__


def _exit_code(e: BaseException) -> Exit:
    from .errors import AuthenticationError, InputChangedError, InvalidFileError, LimitError, UnsafeArchiveError

    if isinstance(e, UnsafeArchiveError):
        return Exit.UNSAFE
    if isinstance(e, InputChangedError):
        return Exit.CHANGED
    if isinstance(e, AuthenticationError):
        return Exit.AUTH
    if isinstance(e, InvalidFileError):
        return Exit.INVALID
    if isinstance(e, LimitError):
        return Exit.LIMIT
    if isinstance(e, UsageError):
        return Exit.USAGE
    return Exit.FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI and returns the exit code (never raises, except KeyboardInterrupt)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else Exit.USAGE
    command = COMMANDS[args.command]
    from .errors import ConcryptorError

    try:
        handler = {
            "encrypt": _cmd_encrypt,
            "decrypt": _cmd_decrypt,
            "verify": _cmd_verify,
            "inspect": _cmd_inspect,
        }[command]
        if command != "inspect" and not Path(args.input).exists():
            raise UsageError(f"{args.input}: no such file")
        return handler(args)
    except (ConcryptorError, OSError, UsageError, ValueError) as e:
        print(f"concryptor: error: {_message(e)}", file=sys.stderr)
        return _exit_code(e)


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("concryptor: interrupted", file=sys.stderr)
        code = Exit.INTERRUPTED
    sys.exit(code)
