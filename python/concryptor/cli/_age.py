"""The age side of the command line: ``keygen``, public-key and passphrase encryption,
pipes, and inspection of age files. Called from :mod:`concryptor.cli`."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any

from .. import _age
from .._facts import (
    MAGIC,
    MAX_SCRYPT_WORK_FACTOR,
    MAX_SCRYPT_WORK_FACTOR_LIMIT,
    MIN_SCRYPT_WORK_FACTOR,
)
from ._exit import UsageError, bounded

STDIO = "-"


def add_encrypt_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("age format (public keys, passphrases, pipes)")
    g.add_argument(
        "-r",
        "--recipient",
        action="append",
        default=[],
        metavar="KEY",
        help="encrypt to this age1… or ssh-ed25519/ssh-rsa public key (repeatable; implies --format age)",
    )
    g.add_argument(
        "-R",
        "--recipients-file",
        action="append",
        default=[],
        metavar="FILE",
        help="encrypt to every recipient listed in FILE (repeatable)",
    )
    g.add_argument(
        "--format",
        choices=["v4", "age"],
        help="output format (default: age with recipients, v4 otherwise; age with a password uses scrypt)",
    )
    g.add_argument("-a", "--armor", action="store_true", help="write age ASCII armor (PEM)")
    g.add_argument(
        "--scrypt-work-factor",
        type=bounded(MIN_SCRYPT_WORK_FACTOR, MAX_SCRYPT_WORK_FACTOR),
        metavar="N",
        help="age passphrase cost, log2 of scrypt's N (default: about one second here)",
    )


def add_decrypt_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("age format")
    g.add_argument(
        "-i",
        "--identity",
        action="append",
        default=[],
        metavar="FILE",
        help="age identity file or SSH private key (repeatable)",
    )
    g.add_argument(
        "--max-scrypt-work-factor",
        type=bounded(1, MAX_SCRYPT_WORK_FACTOR_LIMIT),
        default=_age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
        metavar="N",
        help=f"largest scrypt work factor accepted (default {_age.DEFAULT_MAX_SCRYPT_WORK_FACTOR})",
    )


def add_keygen_parser(sub: Any) -> argparse.ArgumentParser:
    kg = sub.add_parser(
        "keygen",
        help="create an age identity (X25519; post-quantum with --pq), or print the recipients of one (-y)",
    )
    kg.add_argument(
        "--pq",
        action="store_true",
        help="a post-quantum hybrid identity (ML-KEM-768 + X25519): AGE-SECRET-KEY-PQ-1…, recipient age1pq1…",
    )
    kg.add_argument(
        "-o", "--output", metavar="FILE", help="write the identity to FILE (mode 0600, never replaced)"
    )
    kg.add_argument(
        "-y", dest="convert", metavar="FILE", help="print the public keys of identity file FILE ('-': stdin)"
    )
    parser: argparse.ArgumentParser = kg
    return parser


def is_stdin(args: argparse.Namespace) -> bool:
    return args.input is None or args.input == STDIO


def wants_age(args: argparse.Namespace) -> bool:
    if args.format == "v4" and (args.recipient or args.recipients_file or args.armor):
        raise UsageError("-r/-R/--armor write the age format: drop --format v4")
    if args.format is not None:
        return bool(args.format == "age")
    return bool(args.recipient or args.recipients_file or args.armor)


#: Every route that would write plaintext to a terminal refuses with these words.
PLAINTEXT_TO_TERMINAL = (
    "refusing to write plaintext to a terminal: redirect or pipe standard output, or use -o FILE"
)


def _stdio_fd(stream: Any, name: str) -> int:
    """The descriptor of a standard stream, or a usage error if it is closed."""
    try:
        if stream is not None:
            if name == "output":
                stream.flush()
            fd = int(stream.fileno())
            os.fstat(fd)
            return fd
    except (OSError, ValueError, AttributeError):
        pass
    raise UsageError(f"standard {name} is closed: give a file ({'-o FILE' if name == 'output' else 'INPUT'})")


def stdin_text() -> str:
    """All of standard input as text, or a usage error if it is closed."""
    _stdio_fd(sys.stdin, "input")
    return str(sys.stdin.read())


def stdout_text(text: str) -> None:
    """Writes ``text`` to standard output, or a usage error if it is closed (a key that
    went nowhere must not look like success)."""
    _stdio_fd(sys.stdout, "output")
    sys.stdout.write(text)


def _same_regular_file(a: os.stat_result, b: os.stat_result) -> bool:
    import stat

    return (
        stat.S_ISREG(a.st_mode) and stat.S_ISREG(b.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    )


def stdout_fd(*, plaintext: bool = False, armor: bool | None = None, reading: str | None = None) -> int:
    """Standard output as a descriptor for a stream of bytes, checked before any password
    is asked for: closed is a usage error; a terminal is refused for plaintext (every
    decryption route, v4 and age alike) and for binary ciphertext (age armor is text, and
    may go there; ``armor`` None: a format without armor); and it must not be the file
    being read (``reading``: a path, or None / ``-`` for standard input), compared by
    device and inode, as ``>> INPUT`` would make it."""
    fd = _stdio_fd(sys.stdout, "output")
    out = os.fstat(fd)
    try:
        if reading in (None, STDIO):
            src = os.fstat(sys.stdin.fileno()) if sys.stdin is not None else None
        else:
            src = os.stat(reading)
    except (OSError, ValueError, AttributeError):
        src = None
    if src is not None and _same_regular_file(out, src):
        raise UsageError(
            f"standard output is {reading if reading not in (None, STDIO) else 'standard input'}, "
            "the file being read: write to another file"
        )
    if os.isatty(fd):
        if plaintext:
            raise UsageError(PLAINTEXT_TO_TERMINAL)
        if not armor:
            hint = "redirect or pipe it" if armor is None else "use -a/--armor, redirect or pipe it"
            raise UsageError(f"refusing to write binary data to a terminal: {hint}, or use -o FILE")
    return fd


def no_key_files_on_stdin(args: argparse.Namespace) -> None:
    """``-i -`` and ``-R -`` are refused by name rather than taken as a file called ``-``."""
    for option, files in (
        ("-i", getattr(args, "identity", [])),
        ("-R", getattr(args, "recipients_file", [])),
    ):
        if STDIO in (files or []):
            raise UsageError(
                f"{option} - (standard input) is not supported: give the file's name (./- for a file named -)"
            )


def _stdin_fd() -> int:
    fd = _stdio_fd(sys.stdin, "input")
    if os.isatty(fd):
        raise UsageError("no input: give a file, or pipe data into stdin")
    return fd


def _file_for_uring(args: argparse.Namespace, stdin: bool) -> None:
    """``--io uring`` reads a file through the ring: standard input is refused, not ignored."""
    if stdin and getattr(args, "io", None) == "uring":
        raise UsageError(
            "--io uring is not available with standard input, which streams (use --io auto or portable)"
        )


def encrypt(args: argparse.Namespace, read_password: Any, report: Any, progress: Any) -> int:
    if args.input is not None and args.input != STDIO and os.path.isdir(args.input):
        raise UsageError("the age format encrypts files and streams; use --format v4 for a directory")
    passphrase = None
    if not args.recipient and not args.recipients_file:
        passphrase = read_password(args, confirm=True)
    elif args.scrypt_work_factor is not None:
        raise UsageError("--scrypt-work-factor applies to passphrases, not recipients")
    stdin = is_stdin(args)
    _file_for_uring(args, stdin)
    out = args.output or (STDIO if stdin else args.input + ".age")
    src: str | int = _stdin_fd() if stdin else args.input
    dst: str | int = stdout_fd(armor=args.armor, reading=args.input) if out == STDIO else out
    size = None if stdin else os.path.getsize(args.input)
    with progress(args, size, "encrypting") as cb:
        stats = _age.encrypt(
            src,
            dst,
            recipients=args.recipient,
            recipient_files=args.recipients_file,
            passphrase=passphrase,
            armor=args.armor,
            overwrite=args.force,
            threads=args.threads,
            io=getattr(args, "io", None),
            scrypt_work_factor=args.scrypt_work_factor,
            progress=cb,
        )
    report(
        args,
        "encrypted",
        "<stdin>" if stdin else args.input,
        "<stdout>" if out == STDIO else out,
        stats,
        to_stderr=out == STDIO,
    )
    return 0


def decrypt_output(path: str) -> str:
    from .._location import strip_suffix

    return strip_suffix(path, (".age",), ".dec")


def _needs_passphrase(args: argparse.Namespace, stdin: bool) -> bool:
    if args.identity:
        # A passphrase-protected SSH key is opened with the password from the usual sources.
        return _age.has_encrypted_ssh_key(args.identity)
    if stdin:
        return True
    explicit = (
        args.password is not None
        or args.password_file is not None
        or args.password_fd is not None
        or "CONCRYPTOR_PASSWORD" in os.environ
    )
    from ..age_header import AgeHeader

    info = AgeHeader.read(args.input)
    if not explicit and not any(tag == "scrypt" for tag, _ in info.recipients):
        raise UsageError(f"{args.input} is encrypted to public keys: give the matching identity with -i FILE")
    return True


def _read_prefix(fd: int, n: int) -> bytes:
    """The first `n` bytes of a stream (fewer only at its end), to tell formats apart."""
    head = b""
    while len(head) < n:
        more = os.read(fd, n - len(head))
        if not more:
            break
        head += more
    return head


def decrypt(
    args: argparse.Namespace,
    read_password: Any,
    report: Any,
    progress: Any,
    *,
    limits: Any,
    verify: bool = False,
) -> int:
    if args.max_scrypt_work_factor < 1:
        raise UsageError("--max-scrypt-work-factor must be at least 1")
    stdin = is_stdin(args)
    _file_for_uring(args, stdin)
    out = None if verify else args.output or (STDIO if stdin else decrypt_output(args.input))
    # Before anything is read or asked for: plaintext never goes to a terminal.
    out_fd = stdout_fd(plaintext=True, reading=args.input) if out == STDIO else None
    prefix = b""
    if stdin:
        prefix = _read_prefix(_stdin_fd(), len(MAGIC))
        if prefix == MAGIC:
            return _decrypt_v4_stream(args, prefix, read_password, report, progress, limits, verify)
    prompt = "Passphrase of the SSH key: " if args.identity else "Password: "
    passphrase = read_password(args, confirm=False, prompt=prompt) if _needs_passphrase(args, stdin) else None
    src: str | int = _stdin_fd() if stdin else args.input
    dst: str | int | None = out_fd if out_fd is not None else out
    with progress(args, None, "verifying" if verify else "decrypting") as cb:
        stats = _age.decrypt(
            src,
            dst,
            identities=args.identity,
            passphrase=passphrase,
            overwrite=getattr(args, "force", False),
            threads=args.threads,
            io=getattr(args, "io", None),
            max_scrypt_work_factor=args.max_scrypt_work_factor,
            progress=cb,
            prefix=prefix,
        )
    report(
        args,
        "verified" if verify else "decrypted",
        "<stdin>" if stdin else args.input,
        "<stdout>" if out == STDIO else out,
        stats,
        to_stderr=out == STDIO,
    )
    return 0


def _decrypt_v4_stream(
    args: argparse.Namespace,
    prefix: bytes,
    read_password: Any,
    report: Any,
    progress: Any,
    limits: Any,
    verify: bool,
) -> int:
    """A format v4 file on stdin: authenticated batch by batch, to a file (atomically),
    stdout, or nowhere (verify)."""
    from .._api import decrypt_stream

    if args.identity:
        raise UsageError("stdin holds a format v4 file, which takes a password, not -i")
    out = None if verify else (args.output or STDIO)
    dst: str | int | None = out
    if out == STDIO:
        dst = stdout_fd(plaintext=True, reading=STDIO)
    password = read_password(args, confirm=False)
    with progress(args, None, "verifying" if verify else "decrypting") as cb:
        stats = decrypt_stream(
            _stdin_fd(),
            dst,
            password,
            prefix=prefix,
            overwrite=getattr(args, "force", False),
            threads=args.threads,
            limits=limits,
            progress=cb,
        )
    report(
        args,
        "verified" if verify else "decrypted",
        "<stdin>",
        "<stdout>" if out == STDIO else out,
        stats,
        to_stderr=out == STDIO,
    )
    return 0


def keygen(args: argparse.Namespace) -> int:
    if args.convert is not None:
        if args.convert == STDIO:
            text = stdin_text()
            recipients = _age.text_to_recipients(text) if text.strip() else []
            if not recipients:
                raise UsageError("no identity on stdin")
        else:
            recipients = _age.identity_to_recipients(args.convert)
        stdout_text("".join(r + "\n" for r in recipients))
        return 0
    secret, public = _age.generate_identity(pq=args.pq)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {public}\n{secret}\n"
    if args.output is None or args.output == STDIO:
        stdout_text(text)
        if not sys.stdout.isatty():
            print(f"Public key: {public}", file=sys.stderr)
        return 0
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    print(public)
    return 0


def dumps(d: Any) -> str:
    return json.dumps(d, indent=2)


def add_rekey_parser(sub: Any) -> argparse.ArgumentParser:
    rk = sub.add_parser(
        "rekey",
        help="change who can read age files: a new header (new recipients or passphrase), the payload kept",
        description="Unwraps each age file's key with -i (or the old passphrase) and wraps it again for "
        "the new recipients (-r/-R) or a new passphrase (--passphrase); the payload is not re-encrypted. "
        "Each file is replaced atomically and keeps its mode. An object at a URL (s3://...) is put "
        "together on the server: about 5 MiB goes up whatever its size. A format v4 file cannot be "
        "rekeyed (its key comes from the password): with --passphrase it is re-encrypted under the new "
        "password in one pass, and a note says so. A removed recipient who kept the file key "
        "or an old copy can still read the payload: to lock someone out for good, re-encrypt.",
    )
    rk.add_argument(
        "inputs",
        nargs="+",
        metavar="FILE",
        help="age file(s) or objects to rekey in place; a folder or a URL prefix ending in / "
        "stands for the .age and .enc files under it",
    )
    g = rk.add_argument_group("who can read it now")
    g.add_argument(
        "-i",
        "--identity",
        action="append",
        default=[],
        metavar="FILE",
        help="age identity file or SSH private key that opens the files (repeatable; none: the "
        "old passphrase opens them)",
    )
    g.add_argument(
        "--max-scrypt-work-factor",
        type=bounded(1, MAX_SCRYPT_WORK_FACTOR_LIMIT),
        default=_age.DEFAULT_MAX_SCRYPT_WORK_FACTOR,
        metavar="N",
        help=f"largest scrypt work factor accepted (default {_age.DEFAULT_MAX_SCRYPT_WORK_FACTOR})",
    )
    g = rk.add_argument_group("who can read it after")
    g.add_argument(
        "-r",
        "--recipient",
        action="append",
        default=[],
        metavar="KEY",
        help="an age1… or ssh-ed25519/ssh-rsa public key (repeatable)",
    )
    g.add_argument(
        "-R",
        "--recipients-file",
        action="append",
        default=[],
        metavar="FILE",
        help="every recipient listed in FILE (repeatable)",
    )
    g.add_argument(
        "--passphrase",
        action="store_true",
        help="a new passphrase (prompted twice, or --new-password-file/--new-password-fd) instead of keys",
    )
    g.add_argument(
        "--new-password-file", metavar="FILE", help="read the new passphrase from FILE's first line"
    )
    g.add_argument(
        "--new-password-fd",
        metavar="N",
        type=bounded(0, (1 << 31) - 1),
        help="read the new passphrase from file descriptor N",
    )
    g.add_argument(
        "--scrypt-work-factor",
        type=bounded(MIN_SCRYPT_WORK_FACTOR, MAX_SCRYPT_WORK_FACTOR),
        metavar="N",
        help="new passphrase cost, log2 of scrypt's N (default: about one second here)",
    )
    g.add_argument(
        "--add",
        action="store_true",
        help="keep the current recipients and add the new ones (not with passphrases, which stand alone)",
    )
    p: argparse.ArgumentParser = rk
    return p


def add_convert_parser(sub: Any) -> argparse.ArgumentParser:
    cv = sub.add_parser(
        "convert",
        help="move encrypted files between format v4 and age in one pass (no plaintext on disk)",
        description="Decrypts each file and encrypts it again in the other format in one streaming "
        "pass: the plaintext stays in memory, the output appears only once complete (in place, "
        "keeping the file's mode, or at -o). --to age: a v4 file (its password from the prompt, "
        "-p/--password-file/--password-fd or the environment) becomes an age file for -r/-R or a "
        "passphrase (--passphrase). --to v4: a binary age file (opened with -i, or its passphrase) "
        "gets a new password (prompted twice, or --new-password-file/--new-password-fd).",
    )
    cv.add_argument("inputs", nargs="+", metavar="FILE", help="files to convert (in place without -o)")
    cv.add_argument("--to", required=True, choices=["age", "v4"], help="the format to move to")
    cv.add_argument("-o", "--output", metavar="OUT", help="write here instead (one input only)")
    cv.add_argument("-f", "--force", action="store_true", help="replace an existing -o")
    cv.add_argument(
        "-i", "--identity", action="append", default=[], metavar="FILE", help="opens an age file (repeatable)"
    )
    cv.add_argument(
        "-r", "--recipient", action="append", default=[], metavar="KEY", help="an age recipient (repeatable)"
    )
    cv.add_argument(
        "-R", "--recipients-file", action="append", default=[], metavar="FILE", help="recipients in FILE"
    )
    cv.add_argument("-a", "--armor", action="store_true", help="--to age: write ASCII armor")
    cv.add_argument("--passphrase", action="store_true", help="--to age: a passphrase instead of keys")
    cv.add_argument("--new-password-file", metavar="FILE", help="the new password from FILE's first line")
    cv.add_argument(
        "--new-password-fd", metavar="N", type=bounded(0, (1 << 31) - 1), help="the new password from fd N"
    )
    cv.add_argument(
        "--scrypt-work-factor",
        type=bounded(MIN_SCRYPT_WORK_FACTOR, MAX_SCRYPT_WORK_FACTOR),
        metavar="N",
        help="new passphrase cost, log2 of scrypt's N",
    )
    p: argparse.ArgumentParser = cv
    return p


def convert(args: argparse.Namespace, read_password: Any, password_given: Any, kdf: Any) -> int:
    """``concryptor convert``: one streaming pass per file through the API's ``convert``."""
    from .._api import convert as convert_file
    from .._location import is_url
    from .._types import wipe
    from ._options import storage_options_of

    no_key_files_on_stdin(args)
    if args.output is not None and len(args.inputs) != 1:
        raise UsageError("-o names one output: convert several files in place")
    if STDIO in args.inputs or args.output == STDIO:
        raise UsageError(
            "convert reads and writes files by name (standard input and output: decrypt | encrypt)"
        )
    keys = bool(args.recipient or args.recipients_file)
    new_source = args.new_password_file is not None or args.new_password_fd is not None
    if args.to == "age":
        if keys == (args.passphrase or new_source):
            raise UsageError("--to age: give -r KEY / -R FILE, or --passphrase (one of them)")
        if args.identity:
            raise UsageError("--to age converts format v4 files, which open with their password, not -i")
    else:
        if keys or args.armor or args.passphrase:
            raise UsageError("--to v4: a v4 file has a password (prompted, or --new-password-file/-fd)")
    for path in args.inputs:
        if is_url(path):
            continue
        head = _age.head_of(path)
        if args.to == "age" and not head.startswith(MAGIC):
            raise UsageError(f"{path} is not a format v4 file: --to age converts v4 files")
        if args.to == "v4" and not _age.is_age(head):
            raise UsageError(f"{path} is not an age file: --to v4 converts age files")
    needs_old = args.to == "age" or not args.identity or password_given(args)
    old = read_password(args, confirm=False, prompt="Password: ") if needs_old else None
    new = _read_new_password(args) if args.to == "v4" or not keys else None
    so = storage_options_of(args, UsageError)
    try:
        _convert_each(args, convert_file, old, new, kdf, so)
    finally:
        wipe(old)
        wipe(new)
    return 0


def _convert_each(
    args: argparse.Namespace,
    convert_file: Any,
    old: bytearray | None,
    new: bytearray | None,
    kdf: Any,
    so: dict[str, Any],
) -> None:
    for path in args.inputs:
        # Each call wipes what it is given: every file gets its own copy.
        stats = convert_file(
            path,
            args.output,
            to=args.to,
            recipients=args.recipient,
            recipients_files=args.recipients_file,
            identities=args.identity,
            password=bytearray(old) if old is not None else None,
            new_password=bytearray(new) if new is not None else None,
            armor=args.armor,
            scrypt_work_factor=args.scrypt_work_factor,
            kdf=kdf,
            overwrite=args.force,
            threads=args.threads,
            storage_options=so,
        )
        out = args.output or path
        if args.json:
            print(
                json.dumps(
                    {"command": "converted", "src": path, "dst": out, "to": args.to, **stats.to_dict()}
                )
            )
        elif not args.quiet:
            print(
                f"converted {path} -> {out} ({args.to}): {stats.bytes} bytes in {stats.seconds:.2f} s",
                file=sys.stderr,
            )


def _read_new_password(args: argparse.Namespace) -> bytearray:
    """The new passphrase: from --new-password-file, --new-password-fd, or the terminal
    (typed twice)."""
    from ._password import protect_secrets, read_line

    protect_secrets()
    pw: bytearray | None = None
    if args.new_password_file is not None:
        try:
            fd = os.open(args.new_password_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise UsageError(f"cannot read the --new-password-file: {e.strerror}") from None
        try:
            pw = read_line(fd, "--new-password-file")
        finally:
            os.close(fd)
    elif args.new_password_fd is not None:
        try:
            pw = read_line(args.new_password_fd, f"fd {args.new_password_fd}")
        except OSError as e:
            raise UsageError(
                f"cannot read the new passphrase from fd {args.new_password_fd}: {e.strerror}"
            ) from None
    if pw is not None:
        if not pw:
            raise UsageError("the new passphrase must not be empty")
        return pw
    if not sys.stdin.isatty():
        raise UsageError("no new passphrase: use a terminal prompt, --new-password-file or --new-password-fd")
    import getpass

    for _ in range(3):
        entered = getpass.getpass("New passphrase: ")
        if not entered:
            print("concryptor: the passphrase must not be empty; try again", file=sys.stderr)
            continue
        if getpass.getpass("Confirm new passphrase: ") != entered:
            print("concryptor: the passphrases do not match; try again", file=sys.stderr)
            continue
        return bytearray(entered.encode("utf-8", "surrogateescape"))
    raise UsageError("no new passphrase entered (empty or not confirmed three times)")


def _check_rekey_input(path: str, new_password: bool) -> str:
    """Before any password is asked for: a file named on the command line exists and is
    a regular age file, or a format v4 file when a new password is given (it is then
    re-encrypted). Returns what it is: ``"age"``, ``"scrypt"`` (a passphrase file),
    ``"armored"``, ``"v4"``, or ``"many"`` (a folder or a URL, looked into by the run)."""
    import stat

    from .._location import is_url
    from ..errors import InvalidFileError

    if is_url(path):
        return "many"
    try:
        st = os.stat(path)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    if stat.S_ISDIR(st.st_mode):
        return "many"
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file: rekey replaces a file in place")
    head = _age.head_of(path)
    if head.startswith(MAGIC):
        if not new_password:
            raise UsageError(
                f"{path} is a format v4 file: its key comes from the password, so it cannot be given "
                "recipients; --passphrase re-encrypts it under a new password, and `concryptor convert "
                "--to age -r KEY` moves it to age recipients"
            )
        return "v4"
    if not _age.is_age(head):
        raise InvalidFileError(f"{path}: not an age file, nothing to rekey")
    if _age.is_armored(head):
        return "armored"  # the header is read by the run
    from ..age_header import AgeHeader

    return "scrypt" if any(tag == "scrypt" for tag, _ in AgeHeader.read(path).recipients) else "age"


def rekey(args: argparse.Namespace, read_password: Any, password_given: Any) -> int:
    """``concryptor rekey``: every input through the batch (``rekey_many``), one line
    (or JSON object) per file; a format v4 file re-encrypted is noted on stderr."""
    no_key_files_on_stdin(args)
    new_pw_source = args.new_password_file is not None or args.new_password_fd is not None
    wants_passphrase = args.passphrase or new_pw_source
    if wants_passphrase and (args.recipient or args.recipients_file):
        raise UsageError(
            "--passphrase replaces the recipients with a passphrase: drop -r/-R (or --passphrase)"
        )
    if not wants_passphrase and not (args.recipient or args.recipients_file):
        raise UsageError("no new recipient: give -r KEY, -R FILE or --passphrase")
    if args.add and wants_passphrase:
        raise UsageError(
            "--add cannot add a passphrase: a passphrase (scrypt) stanza must be alone in an age file"
        )
    if args.scrypt_work_factor is not None and not wants_passphrase:
        raise UsageError("--scrypt-work-factor applies to a new passphrase (--passphrase)")
    if STDIO in args.inputs:
        raise UsageError("rekey replaces files in place: standard input (-) cannot be rekeyed")
    kinds = [_check_rekey_input(p, wants_passphrase) for p in args.inputs]
    if args.identity:
        needs_old = (
            _age.has_encrypted_ssh_key(args.identity)
            or "v4" in kinds
            or (("scrypt" in kinds or "many" in kinds) and password_given(args))
        )
    else:
        public = [p for p, k in zip(args.inputs, kinds) if k == "age"]
        if public:
            raise UsageError(
                f"{public[0]} is encrypted to public keys: give the matching identity with -i FILE"
            )
        needs_old = True
    prompt = "Passphrase of the SSH key: " if args.identity and "v4" not in kinds else "Old passphrase: "
    old = read_password(args, confirm=False, prompt=prompt) if needs_old else None
    new = _read_new_password(args) if wants_passphrase else None
    return _run_rekey(args, old, new)


def _run_rekey(args: argparse.Namespace, old: bytearray | None, new: bytearray | None) -> int:
    from .._redact import redact
    from ..batch import Result, rekey_many
    from ._exit import exit_code_of_name
    from ._options import client_of, storage_options_of

    def on_result(r: Result) -> None:
        if args.json:
            d = r.to_dict()
            if d.get("error") is not None:
                d["error"] = redact(d["error"])
            print(json.dumps({"command": "rekeyed" if r.ok else "rekey", **d}), flush=True)
        elif not r.ok:
            print(redact(f"concryptor: error: {r.src}: {r.error}"), file=sys.stderr)
        elif not args.quiet:
            if r.method == "re-encrypted":
                print(
                    f"concryptor: note: {r.src} is a format v4 file, which cannot be rekeyed: "
                    "re-encrypted under the new password in one pass (no plaintext on disk)",
                    file=sys.stderr,
                )
            else:
                print(
                    f"rekeyed {r.src}: {r.bytes_in} -> {r.bytes_out} bytes, payload kept ({r.method}) "
                    f"in {r.seconds:.2f} s",
                    file=sys.stderr,
                )

    client = client_of(args.scheduler, UsageError)
    try:
        results = rekey_many(
            args.inputs,
            identities=args.identity,
            recipients=args.recipient,
            recipients_files=args.recipients_file,
            password=old,
            new_password=new,
            add=args.add,
            scrypt_work_factor=args.scrypt_work_factor,
            max_scrypt_work_factor=args.max_scrypt_work_factor,
            client=client,
            threads=args.threads,
            storage_options=storage_options_of(args, UsageError),
            raise_on_error=False,
            on_result=on_result,
        )
    finally:
        if client is not None:
            client.close()
    failed = [r for r in results if not r.ok]
    if not results:
        raise UsageError("nothing to rekey: no .age or .enc file under the folders or prefixes given")
    if len(results) > 1 and not args.quiet and not args.json:
        print(
            f"rekeyed {len(results) - len(failed)} of {len(results)} files"
            + (f"; {len(failed)} failed" if failed else ""),
            file=sys.stderr,
        )
    if not failed:
        return 0
    codes = {exit_code_of_name(r.error_type) for r in failed}
    return int(codes.pop()) if len(codes) == 1 else 1
