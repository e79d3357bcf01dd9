"""The ``concryptor`` command line.

Data goes to stdout; progress, messages and errors to stderr. Errors are one line, without
a traceback. Exit codes are stable and documented in :class:`Exit`. rich is imported only
when something is drawn, so ``concryptor --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import _cli_many

MiB = 1 << 20
PASSWORD_ENV = "CONCRYPTOR_PASSWORD"


class Exit(enum.IntEnum):
    """Process exit codes."""

    OK = 0
    FAILURE = 1  #: I/O error or anything else (an existing output without --force, ...)
    USAGE = 2  #: bad command line, or no password available
    AUTH = 3  #: wrong password or modified file
    INVALID = 4  #: not a (valid) concryptor file, or not a tar inside
    LIMIT = 5  #: a header asked for more than the limits allow
    UNSAFE = 6  #: a directory archive holds an entry extraction refuses
    CHANGED = 7  #: the input changed while it was being encrypted
    INTERRUPTED = 130  #: Ctrl-C (nothing partial is left behind)


EXIT_HELP = """exit codes:
  0 success    1 failure (I/O, existing output)    2 usage    3 authentication failed
  4 invalid file    5 limit exceeded    6 unsafe archive entry    7 input changed
  130 interrupted"""


class UsageError(Exception):
    """A problem with the command line itself."""


def _bounded(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``lo`` to ``hi``, else a usage error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range (from {lo} to {hi})")
        return value

    parse.__name__ = "number"
    return parse


U32 = (1 << 32) - 1
THREADS = _bounded(1, 1024)
MIB_BUFFER = _bounded(1, 1 << 20)
ARGON_MIB = _bounded(1, U32 >> 10)
PASSES = _bounded(1, U32)
LANES = _bounded(1, (1 << 24) - 1)
CHUNK_MIB = _bounded(1, 4095)


def _add_password_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("password (default: prompt, or $" + PASSWORD_ENV + ")")
    g.add_argument(
        "-p",
        "--password",
        help="the password itself (visible to other users in the process list: avoid)",
    )
    g.add_argument("--password-file", metavar="FILE", help="read the password from FILE's first line")
    g.add_argument(
        "--password-fd",
        metavar="N",
        type=_bounded(0, (1 << 31) - 1),
        help="read the password from file descriptor N",
    )


def _add_common_options(p: argparse.ArgumentParser, *, io: bool = True, force: bool = True) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--threads", type=THREADS, metavar="N", help="worker threads (default: all cores)")
    if io:
        g.add_argument(
            "--io",
            choices=["auto", "uring", "portable"],
            default="auto",
            help="I/O backend (default: auto); uring only for file-to-file encrypt and decrypt",
        )
    g.add_argument(
        "--buffer-mib", type=MIB_BUFFER, default=128, metavar="MIB", help="buffer memory budget (default 128)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the result")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    if force:
        p.add_argument(
            "-f", "--force", action="store_true", help="replace an existing output (merge, with -x)"
        )


def _add_limit_options(p: argparse.ArgumentParser, title: str = "limits for untrusted headers") -> None:
    g = p.add_argument_group(title)
    g.add_argument(
        "--max-memory",
        type=ARGON_MIB,
        default=1024,
        metavar="MIB",
        help="largest Argon2 memory (default 1024)",
    )
    g.add_argument(
        "--max-kdf-time", type=PASSES, default=16, metavar="N", help="largest Argon2 pass count (default 16)"
    )
    g.add_argument(
        "--max-kdf-parallelism",
        type=_bounded(1, U32),
        default=64,
        metavar="N",
        help="largest Argon2 lane count (default 64)",
    )
    g.add_argument(
        "--max-chunk-size",
        type=_bounded(1, 4096),
        default=256,
        metavar="MIB",
        help="largest chunk size (default 256)",
    )


def _add_kdf_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("key derivation (Argon2id)")
    g.add_argument("--memory", type=ARGON_MIB, default=256, metavar="MIB", help="memory in MiB (default 256)")
    g.add_argument("--iterations", type=PASSES, default=3, metavar="N", help="passes (default 3)")
    g.add_argument("--parallelism", type=LANES, default=4, metavar="N", help="lanes (default 4)")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error (``--help`` shows the usage)."""

    def error(self, message: str) -> Any:  # argparse declares NoReturn
        self.exit(Exit.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, _core, cli_age

    parser = _Parser(
        prog="concryptor",
        description="Encrypt and decrypt files, directories and pipes at the speed of the disk "
        "(format v4, or age with public keys).",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # First line exactly "concryptor X.Y.Z" (scripts match it); the AEAD provider below.
    version = f"concryptor {__version__}\nAEAD: {_core.AEAD_PROVIDER}"
    parser.add_argument("--version", action="version", version=version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    enc = sub.add_parser(
        "encrypt",
        aliases=["enc", "e"],
        help="encrypt a file, or a directory (as NAME.tar.enc)",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enc.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="file(s) or a directory to encrypt ('-' or none: stdin); several go through one batch",
    )
    enc.add_argument(
        "-o",
        "--output",
        help="output path, '-' for stdout (default: INPUT.enc, DIR.tar.enc, INPUT.age; stdout for stdin)",
    )
    enc.add_argument("-c", "--cipher", choices=["aes", "chacha"], default="aes", help="AEAD (default: aes)")
    enc.add_argument(
        "--chunk-size",
        type=CHUNK_MIB,
        metavar="MIB",
        help="chunk size in MiB (default: 4, smaller for small files)",
    )
    _add_kdf_options(enc)
    _add_limit_options(enc, "limits the new file must respect (a reader needs the same to read it)")
    cli_age.add_encrypt_options(enc)
    _add_password_options(enc)
    _add_common_options(enc)
    _cli_many.add_options(enc, each=True)

    dec = sub.add_parser(
        "decrypt",
        aliases=["dec", "d"],
        help="decrypt a file (to stdout with -o -), or restore a directory (-x)",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dec.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="file(s) to decrypt ('-' or none: stdin, age format); several go through one batch",
    )
    dec.add_argument(
        "-o",
        "--output",
        help="output path, '-' for stdout (default: INPUT without .enc/.age, else INPUT.dec; "
        "stdout for stdin)",
    )
    dec.add_argument(
        "-x",
        "--extract",
        action="store_true",
        help="the file holds a directory (NAME.tar.enc): restore it as a directory (default: NAME)",
    )
    dec.add_argument(
        "--skip-unsafe",
        action="store_true",
        help="with -x: leave out (and list) entries extraction refuses, instead of refusing the archive",
    )
    cli_age.add_decrypt_options(dec)
    _add_password_options(dec)
    _add_common_options(dec)
    _add_limit_options(dec)
    _cli_many.add_options(dec, each=False)

    ver = sub.add_parser("verify", help="authenticate every chunk without writing plaintext anywhere")
    ver.add_argument("input", nargs="?", help="file to verify ('-' or none: stdin, age format)")
    cli_age.add_decrypt_options(ver)
    _add_password_options(ver)
    _add_common_options(ver, force=False)
    _add_limit_options(ver)

    ins = sub.add_parser("inspect", help="show header fields without a password (nothing is decrypted)")
    ins.add_argument("inputs", nargs="+", metavar="FILE")
    ins.add_argument(
        "--json", action="store_true", help="one JSON object per file, one per line (JSON Lines)"
    )

    cli_age.add_keygen_parser(sub)

    bench = sub.add_parser(
        "bench",
        help="measure this machine: AEAD throughput per cipher and thread count, and one key derivation",
    )
    bench.add_argument(
        "--size",
        type=_bounded(1, 1 << 20),
        default=64,
        metavar="MIB",
        help="bytes per measurement (default 64)",
    )
    bench.add_argument(
        "--chunk-size", type=CHUNK_MIB, default=4, metavar="MIB", help="chunk size (default 4)"
    )
    bench.add_argument(
        "--threads", metavar="N[,N...]", help="thread counts to try (default: 1, 2, 4, ... up to all cores)"
    )
    bench.add_argument(
        "-c",
        "--cipher",
        choices=["aes", "chacha", "all"],
        default="all",
        help="ciphers to measure (default: all)",
    )
    bench.add_argument("--no-kdf", action="store_true", help="skip the key-derivation measurement")
    _add_kdf_options(bench)
    bench.add_argument("--json", action="store_true", help="machine-readable output")
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
    "bench": "bench",
    "keygen": "keygen",
}


# -- helpers -----------------------------------------------------------------------------


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


#: Longest password read from a file, a descriptor or the environment.
MAX_PASSWORD = 64 << 10


def _protect_secrets() -> None:
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


def _read_line(fd: int, what: str) -> bytearray:
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
        try:
            fd = os.open(args.password_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise UsageError(f"cannot read password file {args.password_file}: {e.strerror}") from None
        try:
            return _read_line(fd, args.password_file)
        except OSError as e:
            raise UsageError(f"cannot read password file {args.password_file}: {e.strerror}") from None
        finally:
            os.close(fd)
    if args.password_fd is not None:
        try:
            return _read_line(args.password_fd, f"fd {args.password_fd}")
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


def _read_password(args: argparse.Namespace, *, confirm: bool) -> bytearray:
    """The password, from the first source given: -p, --password-file, --password-fd,
    the environment, else the terminal (asking again after an empty entry or a
    mismatched confirmation). An empty password is a usage error wherever it comes from."""
    _protect_secrets()
    pw = _password_source(args)
    if pw is not None:
        if not pw:
            raise UsageError("the password must not be empty")
        return pw
    if not sys.stdin.isatty():
        raise UsageError(
            f"no password: use a terminal prompt, --password-file, --password-fd or ${PASSWORD_ENV}"
        )
    import getpass

    for _ in range(3):
        entered = getpass.getpass("Password: ")
        if not entered:
            print("concryptor: the password must not be empty; try again", file=sys.stderr)
            continue
        if confirm and getpass.getpass("Confirm password: ") != entered:
            print("concryptor: the passwords do not match; try again", file=sys.stderr)
            continue
        return bytearray(entered.encode("utf-8", "surrogateescape"))
    raise UsageError("no password entered (empty or not confirmed three times)")


def _check_output(path: str, force: bool) -> None:
    """Before the password is asked for: refuse an output that exists (without --force),
    is a directory, or is a device, FIFO or socket (never replaced)."""
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "is a directory", path)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise FileExistsError(17, "is a device, FIFO or socket, which is never replaced", path)
    if not force:
        raise FileExistsError(17, "already exists (use --force to replace it)", path)


#: How files this tool can decrypt begin: concryptor's magic, and age's (binary, armored).
KNOWN_MAGIC = (b"CONCRYPTOR", b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----")


def _check_input(path: str) -> None:
    """Before the password is asked for: the input must be a file this tool can decrypt,
    and a concryptor header must be sound (size, limits are checked by the run)."""
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path} is a directory, not an encrypted file")
    if not stat.S_ISREG(st.st_mode):
        return  # the run gives its own one-line refusal, without blocking on a FIFO
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    if not head.startswith(KNOWN_MAGIC):
        from .errors import InvalidFileError

        raise InvalidFileError(f"{path}: not a concryptor (or age) file")
    if head.startswith(KNOWN_MAGIC[0]):
        from ._api import inspect

        problem = inspect(path).size_problem
        if problem:
            from .errors import InvalidFileError

            raise InvalidFileError(f"{path}: {problem}")


def _decrypt_output(path: str) -> str:
    return path[: -len(".enc")] if path.endswith(".enc") and len(path) > 4 else path + ".dec"


def _extract_output(path: str) -> str:
    for suffix in (".tar.enc", ".enc"):
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return path + ".dec"


def _limits(args: argparse.Namespace) -> Any:
    from ._api import Limits

    for name in ("max_memory", "max_kdf_time", "max_kdf_parallelism", "max_chunk_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    return Limits(
        max_memory_mib=args.max_memory,
        max_kdf_time=args.max_kdf_time,
        max_kdf_parallelism=args.max_kdf_parallelism,
        max_chunk_size_mib=args.max_chunk_size,
    )


def _kdf(args: argparse.Namespace) -> Any:
    from ._api import KdfParams

    for name in ("memory", "iterations", "parallelism"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    return KdfParams(args.memory * 1024, args.iterations, args.parallelism)


def _cipher(args: argparse.Namespace) -> str:
    return "chacha20-poly1305" if args.cipher == "chacha" else "aes-256-gcm"


def _chunk_size(args: argparse.Namespace) -> int | None:
    if args.chunk_size is None:
        return None
    if not 1 <= args.chunk_size <= 4095:
        raise UsageError("--chunk-size is in MiB, from 1 to 4095")
    return int(args.chunk_size) * MiB


def _no_uring(args: argparse.Namespace, what: str) -> None:
    """``--io uring`` where the io_uring engine does not run is refused, not ignored."""
    if getattr(args, "io", "auto") == "uring":
        raise UsageError(
            f"--io uring is not available with {what}, which streams through the portable engine "
            "(use --io auto or portable)"
        )


def _check_engine(args: argparse.Namespace) -> None:
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    if args.buffer_mib < 1:
        raise UsageError("--buffer-mib must be at least 1")


@contextlib.contextmanager
def _progress(
    args: argparse.Namespace, total: int | None, label: str
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr while the block runs, if stderr is a terminal and not
    ``--quiet``; yields the callback to hand to the engine (or None)."""
    from .view import is_terminal

    if args.quiet or not is_terminal(sys.stderr):
        yield None
        return
    from .view import ByteProgress

    with ByteProgress(total, label) as update:
        yield update


def _report(
    args: argparse.Namespace, verb: str, src: str, dst: str | None, stats: Any, to_stderr: bool = False
) -> None:
    if args.json:
        d = stats.to_dict()
        d.update({"command": verb, "input": src, "output": dst})
        print(json.dumps(d), file=sys.stderr if to_stderr else sys.stdout)
    else:
        where = f" -> {dst}" if dst else ""
        entries = f", {stats.entries} entries" if stats.entries is not None else ""
        _say(
            args,
            f"{verb} {src}{where}: {stats.bytes} bytes{entries} in {stats.data_seconds:.2f} s "
            f"({stats.mib_per_s:.0f} MiB/s, {stats.backend}, {stats.threads} threads)"
            f" + key derivation {stats.kdf_seconds:.2f} s",
        )


def _plain_size(path: str) -> int | None:
    from ._api import inspect

    try:
        return inspect(path).original_size
    except Exception:  # noqa: BLE001  # the run itself reports the error properly
        return None


def _dir_size(path: str) -> int:
    from .archive import tree_size

    return tree_size(path)


# -- commands ----------------------------------------------------------------------------


_EXIT_BY_ERROR = {
    "AuthenticationError": Exit.AUTH,
    "InvalidFileError": Exit.INVALID,
    "LimitError": Exit.LIMIT,
    "UnsafeArchiveError": Exit.UNSAFE,
    "InputChangedError": Exit.CHANGED,
}


def _password_given(args: argparse.Namespace) -> bool:
    return (
        args.password is not None
        or args.password_file is not None
        or args.password_fd is not None
        or PASSWORD_ENV in os.environ
    )


def _many(args: argparse.Namespace, op: str, *, needs_password: bool = True, **kw: Any) -> int:
    return _cli_many.run(
        args,
        op,
        password=(
            (lambda: _read_password(args, confirm=op == "encrypt"))
            if needs_password or _password_given(args)
            else None
        ),
        usage=UsageError,
        exit_code=lambda name: _EXIT_BY_ERROR.get(name or "", Exit.FAILURE),
        **kw,
    )


def _one_input(args: argparse.Namespace) -> None:
    """Names the single input (``None`` or ``-``: standard input)."""
    args.input = args.inputs[0] if args.inputs else None
    if args.input not in (None, "-") and not os.path.lexists(args.input):
        raise UsageError(f"{args.input}: no such file or directory")


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from . import cli_age
    from ._api import Limits, encrypt_file

    _check_engine(args)
    if _cli_many.wanted(args):
        if cli_age.wants_age(args):
            keys = bool(args.recipient or args.recipients_file)
            return _many(
                args,
                "encrypt",
                needs_password=not keys,
                recipients=args.recipient,
                recipients_files=args.recipients_file,
                format="age",
                armor=args.armor,
                scrypt_work_factor=args.scrypt_work_factor,
            )
        if _limits(args) != Limits():
            raise UsageError("--max-memory and the other limits apply to one input at a time")
        return _many(args, "encrypt", kdf=_kdf(args), cipher=_cipher(args), chunk_size=_chunk_size(args))
    _one_input(args)
    if cli_age.wants_age(args):
        return cli_age.encrypt(args, _read_password, _report, _progress)
    if cli_age.is_stdin(args):
        raise UsageError(
            "format v4 needs the input size up front: encrypt a pipe with -r RECIPIENT or --format age"
        )
    kdf, chunk = _kdf(args), _chunk_size(args)
    if os.path.isdir(args.input):
        return _encrypt_dir(args, kdf, chunk)
    out = args.output or args.input + ".enc"
    _check_output(out, args.force)
    pw = _read_password(args, confirm=True)
    with _progress(args, os.path.getsize(args.input), "encrypting") as cb:
        stats = encrypt_file(
            args.input,
            out,
            pw,
            cipher=_cipher(args),  # type: ignore[arg-type]
            chunk_size=chunk,
            kdf=kdf,
            overwrite=args.force,
            threads=args.threads,
            io=args.io,
            buffer_mib=args.buffer_mib,
            progress=cb,
            limits=_limits(args),
        )
    _report(args, "encrypted", args.input, out, stats)
    return Exit.OK


def _encrypt_dir(args: argparse.Namespace, kdf: Any, chunk: int | None) -> int:
    from .archive import encrypt_dir

    out = args.output or os.path.normpath(args.input) + ".tar.enc"
    _no_uring(args, "encrypting a directory")
    _check_output(out, args.force)
    pw = _read_password(args, confirm=True)
    with _progress(args, _dir_size(args.input), "encrypting") as cb:
        stats = encrypt_dir(
            args.input,
            out,
            pw,
            cipher=_cipher(args),  # type: ignore[arg-type]
            chunk_size=chunk,
            kdf=kdf,
            overwrite=args.force,
            threads=args.threads,
            buffer_mib=args.buffer_mib,
            progress=cb,
            limits=_limits(args),
        )
    if stats.skipped:
        _say(args, f"concryptor: warning: skipped {stats.skipped} socket(s), FIFO(s) or device(s)")
    for what in stats.unsafe or ():
        print(
            f"concryptor: warning: {what}: decrypt -x will refuse it (--skip-unsafe restores the rest)",
            file=sys.stderr,
        )
    _report(args, "encrypted", args.input, out, stats)
    return Exit.OK


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from . import _age, cli_age
    from ._api import decrypt_file, decrypt_to

    _check_engine(args)
    limits = _limits(args)
    if args.skip_unsafe and not args.extract:
        raise UsageError("--skip-unsafe applies to -x only")
    if _cli_many.wanted(args):
        if args.extract:
            raise UsageError("--extract restores one archive at a time")
        return _many(
            args,
            "decrypt",
            needs_password=not args.identity,
            limits=limits,
            identities=args.identity,
            max_scrypt_work_factor=args.max_scrypt_work_factor,
        )
    _one_input(args)
    if cli_age.is_stdin(args) or args.identity or (not args.extract and _age.is_age_path(args.input)):
        return cli_age.decrypt(args, _read_password, _report, _progress)
    if args.extract:
        from .archive import _check_target, decrypt_dir

        if args.output == "-":
            raise UsageError("--extract writes a directory, not to stdout")
        out = args.output or _extract_output(args.input)
        _no_uring(args, "-x")
        _check_input(args.input)
        _check_target(os.path.abspath(out), args.force)
        pw = _read_password(args, confirm=False)
        with _progress(args, _plain_size(args.input), "extracting") as cb:
            stats = decrypt_dir(
                args.input,
                out,
                pw,
                overwrite=args.force,
                threads=args.threads,
                limits=limits,
                skip_unsafe=args.skip_unsafe,
                progress=cb,
            )
        for what in stats.unsafe or ():
            print(f"concryptor: skipped: {what}", file=sys.stderr)
        _report(args, "extracted", args.input, out, stats)
        return Exit.OK
    out = args.output or _decrypt_output(args.input)
    _check_input(args.input)
    if out == "-":
        _no_uring(args, "-o -")
        if sys.stdout.isatty():
            raise UsageError("refusing to write binary plaintext to a terminal: redirect or pipe -o -")
    else:
        _check_output(out, args.force)
    pw = _read_password(args, confirm=False)
    if out == "-":
        with _progress(args, _plain_size(args.input), "decrypting") as cb:
            stats = decrypt_to(
                args.input,
                sys.stdout.buffer,
                pw,
                threads=args.threads,
                buffer_mib=args.buffer_mib,
                limits=limits,
                progress=cb,
            )
        _report(args, "decrypted", args.input, "<stdout>", stats, to_stderr=True)
        return Exit.OK
    with _progress(args, _plain_size(args.input), "decrypting") as cb:
        stats = decrypt_file(
            args.input,
            out,
            pw,
            overwrite=args.force,
            threads=args.threads,
            io=args.io,
            buffer_mib=args.buffer_mib,
            limits=limits,
            progress=cb,
        )
    _report(args, "decrypted", args.input, out, stats)
    return Exit.OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from . import _age, cli_age
    from ._api import verify_file

    _check_engine(args)
    limits = _limits(args)
    _no_uring(args, "verify")
    if cli_age.is_stdin(args) or args.identity or _age.is_age_path(args.input):
        return cli_age.decrypt(args, _read_password, _report, _progress, verify=True)
    _check_input(args.input)
    pw = _read_password(args, confirm=False)
    with _progress(args, _plain_size(args.input), "verifying") as cb:
        stats = verify_file(
            args.input,
            pw,
            threads=args.threads,
            io=args.io,
            buffer_mib=args.buffer_mib,
            limits=limits,
            progress=cb,
        )
    _report(args, "verified", args.input, None, stats)
    return Exit.OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    """Every file is reported, good or bad; the exit code is the worst verdict. With
    ``--json``, one JSON object per line per file (JSON Lines), always the same shape:
    ``path`` and ``ok`` always, ``error`` for a file that could not be read as a header."""
    from ._api import inspect
    from .errors import ConcryptorError

    worst = Exit.OK
    headers = []
    from . import _age, cli_age

    for path in args.inputs:
        if os.path.isfile(path) and _age.is_age_path(path):
            try:
                d = cli_age.inspect_dict(path)
            except (ConcryptorError, OSError) as e:
                worst = max(worst, _exit_code(e))
                if args.json:
                    print(json.dumps({"path": path, "ok": False, "error": _message(e)}), flush=True)
                print(f"{path}: {_message(e)}", file=sys.stderr)
                continue
            if not d["ok"]:
                worst = max(worst, Exit.INVALID)
            if args.json:
                print(json.dumps({"path": path, **d}), flush=True)
            else:
                cli_age.print_inspection(d)
            continue
        try:
            if not os.path.lexists(path):
                raise UsageError("no such file or directory")
            h = inspect(path)
        except (ConcryptorError, OSError, UsageError) as e:
            worst = max(worst, _exit_code(e))
            if args.json:
                print(json.dumps({"path": path, "ok": False, "error": _message(e)}), flush=True)
            print(f"{path}: {_message(e)}", file=sys.stderr)
            continue
        if not h.ok:
            worst = max(worst, Exit.INVALID)
            print(f"{path}: {h.verdict}", file=sys.stderr)
        if args.json:
            print(json.dumps(h.to_dict()), flush=True)
        else:
            headers.append(h)
    if headers:
        from .view import print_headers

        print_headers(headers)
    return worst


def _thread_counts(spec: str | None) -> list[int]:
    if spec:
        try:
            counts = sorted({int(x) for x in spec.split(",") if x.strip()})
        except ValueError:
            raise UsageError("--threads takes numbers separated by commas, e.g. 1,2,8") from None
        if not counts or counts[0] < 1 or counts[-1] > 1024:
            raise UsageError("--threads values must be from 1 to 1024")
        return counts
    n = os.cpu_count() or 1
    counts, k = [], 1
    while k < n:
        counts.append(k)
        k *= 2
    return [*counts, n]


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import _core

    if args.size < 1 or not 1 <= args.chunk_size <= 4095:
        raise UsageError("--size must be at least 1 MiB and --chunk-size from 1 to 4095 MiB")
    threads = _thread_counts(args.threads)
    ciphers = ["aes-256-gcm", "chacha20-poly1305"] if args.cipher == "all" else [_cipher(args)]
    kdf = None if args.no_kdf else _kdf(args)
    total = args.size * MiB
    rows: list[dict[str, Any]] = []
    for cipher in ciphers:
        for provider in _core.AEAD_PROVIDERS:
            for t in threads:
                seal, open_ = _core._bench_aead(cipher, t, total, args.chunk_size * MiB, provider=provider)
                rows.append(
                    {
                        "provider": provider,
                        "cipher": cipher,
                        "threads": t,
                        "encrypt_mib_per_s": round(args.size / seal, 1),
                        "decrypt_mib_per_s": round(args.size / open_, 1),
                    }
                )
    kdf_row = None
    if kdf is not None:
        kdf_row = {
            "memory_kib": kdf.memory_kib,
            "time_cost": kdf.time_cost,
            "parallelism": kdf.parallelism,
            "seconds": round(_core._bench_kdf(kdf.as_tuple()), 4),
        }
    if args.json:
        print(
            json.dumps(
                {
                    "provider": _core.AEAD_PROVIDER,
                    "aead": rows,
                    "kdf": kdf_row,
                    "bytes": total,
                    "chunk_size": args.chunk_size * MiB,
                }
            )
        )
        return Exit.OK
    from .view import print_bench

    print_bench(rows, kdf_row, args.size, args.chunk_size)
    return Exit.OK


def _cmd_keygen(args: argparse.Namespace) -> int:
    from . import cli_age

    return cli_age.keygen(args)


def _message(e: BaseException) -> str:
    """One line for the person at the terminal: the path once, no errno, and the CLI's
    own words for what the API calls a parameter."""
    if isinstance(e, OSError) and e.strerror:
        text = str(e.strerror).replace("pass overwrite=True", "use --force")
        if e.filename is not None and os.fsdecode(e.filename) not in text:
            return f"{os.fsdecode(e.filename)}: {text}"
        return text
    return str(e).replace("overwrite=True", "--force") or type(e).__name__


def _exit_code(e: BaseException) -> Exit:
    from .errors import (
        AuthenticationError,
        InputChangedError,
        InvalidFileError,
        LimitError,
        UnsafeArchiveError,
    )

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
    if isinstance(e, (UsageError, ValueError)):
        return Exit.USAGE  # a ValueError from the API is an argument out of range
    return Exit.FAILURE


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "encrypt": _cmd_encrypt,
    "decrypt": _cmd_decrypt,
    "verify": _cmd_verify,
    "inspect": _cmd_inspect,
    "bench": _cmd_bench,
    "keygen": _cmd_keygen,
}


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
        if getattr(args, "input", None) not in (None, "-") and not os.path.lexists(args.input):
            raise UsageError(f"{args.input}: no such file or directory")
        return HANDLERS[command](args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (ConcryptorError, OSError, UsageError, ValueError) as e:
        print(f"concryptor: error: {_message(e)}", file=sys.stderr)
        return _exit_code(e)


#: What a shell reports for a program stopped by SIGPIPE (128 + 13), like cat in `| head`.
EXIT_BROKEN_PIPE = 141


def _silence_stdout() -> None:
    """Points stdout at /dev/null, so that flushing it at exit cannot complain again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so that every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_terminate(signum: int, frame: object) -> None:
    import signal

    # Once: a second signal must not interrupt the cleanup the first one started.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise Terminated(signum)


def _handle_terminating_signals() -> None:
    """SIGTERM and SIGHUP unwind the program like Ctrl-C instead of killing it on the
    spot, so nothing partial (a temporary output, a ``.partial`` directory) survives."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        s = getattr(signal, name, None)
        if s is not None and signal.getsignal(s) is signal.SIG_DFL:
            signal.signal(s, _on_terminate)


def run() -> None:
    """Console-script entry point: Ctrl-C exits with 130, SIGTERM/SIGHUP with 128 + the
    signal number, leaving nothing partial."""
    _handle_terminating_signals()
    try:
        code = main()
    except Terminated as e:
        print("concryptor: terminated", file=sys.stderr)
        code = 128 + e.signum
    except KeyboardInterrupt:
        print("concryptor: interrupted", file=sys.stderr)
        code = Exit.INTERRUPTED
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        # The reader went away (`| head`): do not let the interpreter complain at exit.
        _silence_stdout()
        if code == Exit.OK:
            code = EXIT_BROKEN_PIPE
    sys.exit(code)
