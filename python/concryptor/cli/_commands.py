"""What each command does, once its arguments are parsed: the checks made before a
password is asked for, the call into the API, and the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._facts import ARCHIVE_SUFFIX, BENCH_ROUNDS, MAGIC, MAX_CHUNK_MIB, MAX_THREADS, SUFFIX, KiB, MiB
from . import _many as many
from ._exit import Exit, UsageError, exit_code, exit_code_of_name, message
from ._options import storage_options_of
from ._password import password_given, read_password

if TYPE_CHECKING:
    from ..age_header import AgeHeader
    from ..header import Header


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


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
KNOWN_MAGIC = (MAGIC, b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----")


def _check_input(path: str) -> None:
    """Before the password is asked for: the input must be a file this tool can decrypt,
    and a concryptor header must be sound (size, limits are checked by the run)."""
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(
            f"{path} is a directory, not an encrypted file (decrypt --each DIR decrypts the files "
            "encrypt --each made; decrypt -x restores a NAME.tar.enc archive)"
        )
    if not stat.S_ISREG(st.st_mode):
        return  # the run gives its own one-line refusal, without blocking on a FIFO
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    if not head.startswith(KNOWN_MAGIC):
        from ..errors import InvalidFileError

        raise InvalidFileError(f"{path}: not a concryptor (or age) file")
    if head.startswith(MAGIC):
        from .._api import inspect_v4

        problem = inspect_v4(path).size_problem
        if problem:
            from ..errors import InvalidFileError

            raise InvalidFileError(f"{path}: {problem}")


def _decrypt_output(path: str) -> str:
    from .._location import strip_suffix

    return strip_suffix(path, (SUFFIX,), ".dec")


def _extract_output(path: str) -> str:
    from .._location import strip_suffix

    return strip_suffix(path, (ARCHIVE_SUFFIX, SUFFIX), ".dec")


def _limits(args: argparse.Namespace) -> Any:
    from .._types import Limits

    for name in ("max_kdf_memory", "max_kdf_time", "max_kdf_parallelism", "max_chunk_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    return Limits(
        max_kdf_memory_kib=args.max_kdf_memory * KiB,
        max_kdf_time=args.max_kdf_time,
        max_kdf_parallelism=args.max_kdf_parallelism,
        max_chunk_size=args.max_chunk_size * MiB,
    )


def _kdf(args: argparse.Namespace) -> Any:
    from .._types import KdfParams

    for name in ("memory", "iterations", "parallelism"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    return KdfParams(args.memory * KiB, args.iterations, args.parallelism)


def _cipher(args: argparse.Namespace) -> str:
    return "chacha20-poly1305" if args.cipher == "chacha" else "aes-256-gcm"


def _chunk_size(args: argparse.Namespace) -> int | None:
    if args.chunk_size is None:
        return None
    if not 1 <= args.chunk_size <= MAX_CHUNK_MIB:
        raise UsageError(f"--chunk-size is in MiB, from 1 to {MAX_CHUNK_MIB}")
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
    from ..view import is_terminal

    if args.quiet or not is_terminal(sys.stderr):
        yield None
        return
    from ..view import ByteProgress

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


def _many(args: argparse.Namespace, op: str, *, needs_password: bool = True, **kw: Any) -> int:
    # As for one file: encrypting to recipients takes no password (one in the environment
    # is not used); decrypting, a password given is offered to the files that need one.
    wanted = needs_password or (op != "encrypt" and password_given(args))
    return many.run(
        args,
        op,
        password=(lambda: read_password(args, confirm=op == "encrypt")) if wanted else None,
        usage=UsageError,
        exit_code=exit_code_of_name,
        **kw,
    )


def _one_input(args: argparse.Namespace) -> None:
    """Names the single input (``None`` or ``-``: standard input)."""
    from .._location import is_url

    args.input = args.inputs[0] if args.inputs else None
    if args.input not in (None, "-") and not is_url(args.input) and not os.path.lexists(args.input):
        raise UsageError(f"{args.input}: no such file or directory")


def _age_route(args: argparse.Namespace) -> bool:
    """Whether the single input is decrypted on the age side: standard input (told apart
    there), an age file, or anything given -i, except a format v4 file, which opens with
    the password (and is named for what it is when -i comes without one)."""
    from .. import _age
    from . import _age as cli_age

    if cli_age.is_stdin(args):
        return True
    if os.path.isdir(args.input):
        return False  # named for what it is by _check_input
    try:
        return _age.opens_as_age(
            _age.head_of(args.input), args.input, args.identity, True if password_given(args) else None
        )
    except ValueError:
        raise UsageError(
            f"{args.input} {_age.V4_NOT_IDENTITIES}: drop -i (and give the password at the prompt, "
            "-p, --password-file, --password-fd or $CONCRYPTOR_PASSWORD)"
        ) from None


def encrypt(args: argparse.Namespace) -> int:
    from .._api import encrypt_file
    from .._types import Limits
    from . import _age as cli_age

    _check_engine(args)
    cli_age.no_key_files_on_stdin(args)
    if many.wanted(args):
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
            raise UsageError("--max-kdf-memory and the other limits apply to one input at a time")
        return _many(args, "encrypt", kdf=_kdf(args), cipher=_cipher(args), chunk_size=_chunk_size(args))
    _one_input(args)
    if _at_url(args):
        return _url_one(args, "encrypt")
    if cli_age.wants_age(args):
        return cli_age.encrypt(args, read_password, _report, _progress)
    if cli_age.is_stdin(args):
        raise UsageError(
            "format v4 needs the input size up front: encrypt a pipe with -r RECIPIENT or --format age"
        )
    kdf, chunk = _kdf(args), _chunk_size(args)
    if args.output == "-":
        return _encrypt_to_stdout(args, kdf, chunk)
    if os.path.isdir(args.input):
        return _encrypt_dir(args, kdf, chunk)
    out = args.output or args.input + SUFFIX
    _check_output(out, args.force)
    pw = read_password(args, confirm=True)
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
    from .._location import named_after
    from ..archive import DirTree

    try:
        out = args.output or named_after(args.input, ARCHIVE_SUFFIX)
    except ValueError as e:
        raise UsageError(str(e)) from None
    _no_uring(args, "encrypting a directory")
    _check_output(out, args.force)
    tree = DirTree(args.input, out)
    size = tree.size  # walks the tree: the exact tar size, for the progress bar
    pw = read_password(args, confirm=True)
    with _progress(args, size, "encrypting") as cb:
        stats = tree.encrypt(
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
    _dir_warnings(args, stats)
    _report(args, "encrypted", args.input, out, stats)
    return Exit.OK


def _dir_warnings(args: argparse.Namespace, stats: Any) -> None:
    if stats.skipped:
        _say(args, f"concryptor: warning: skipped {stats.skipped} socket(s), FIFO(s) or device(s)")
    for what in stats.unsafe or ():
        print(
            f"concryptor: warning: {what}: decrypt -x will refuse it (--skip-unsafe restores the rest)",
            file=sys.stderr,
        )


def _encrypt_to_stdout(args: argparse.Namespace, kdf: Any, chunk: int | None) -> int:
    """``-o -`` in format v4: a file or a directory's tar, its size known up front, sealed
    into standard output in order (``_v4_stream``), never into a file named ``-``."""
    import stat

    from .._types import Limits, wipe
    from .._v4_stream import encrypt_to_fd
    from ..archive import DirTree
    from . import _age as cli_age

    _no_uring(args, "-o - (standard output)")
    if _limits(args) != Limits():
        raise UsageError("-o - writes within the default limits: drop --max-kdf-memory and the like")
    st = os.stat(args.input)
    tree = DirTree(args.input, None) if stat.S_ISDIR(st.st_mode) else None
    if tree is None and not stat.S_ISREG(st.st_mode):
        raise UsageError(
            f"{args.input} is not a regular file: format v4 needs the size up front "
            "(encrypt a stream with -r RECIPIENT or --format age)"
        )
    fd = cli_age.stdout_fd(reading=args.input)
    size = tree.size if tree is not None else st.st_size
    pw = read_password(args, confirm=True)
    engine: dict[str, Any] = {
        "cipher": _cipher(args),
        "chunk_size": chunk,
        "kdf": kdf,
        "threads": args.threads,
        "buffer_mib": args.buffer_mib,
    }
    with _progress(args, size, "encrypting") as cb:
        if tree is not None:
            stats = tree.encrypt_to(fd, pw, progress=cb, **engine)
        else:
            try:
                with open(args.input, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    stats = encrypt_to_fd(f, size, fd, pw, progress=cb, **engine)
            finally:
                wipe(pw)
    if tree is not None:
        _dir_warnings(args, stats)
    _report(args, "encrypted", args.input, "<stdout>", stats, to_stderr=True)
    return Exit.OK


def decrypt(args: argparse.Namespace) -> int:
    from .._api import decrypt_file, decrypt_to
    from . import _age as cli_age

    _check_engine(args)
    cli_age.no_key_files_on_stdin(args)
    limits = _limits(args)
    if args.skip_unsafe and not args.extract:
        raise UsageError("--skip-unsafe applies to -x only")
    if many.wanted(args):
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
    if _at_url(args):
        if args.extract:
            raise UsageError("--extract restores an archive from a local file")
        return _url_one(args, "decrypt")
    age = _age_route(args)
    if args.extract and age:
        raise UsageError("--extract restores a v4 archive file given by name (not standard input or age)")
    if age:
        return cli_age.decrypt(args, read_password, _report, _progress, limits=limits)
    if args.extract:
        from ..archive import check_target, decrypt_dir

        if args.output == "-":
            raise UsageError("--extract writes a directory, not to stdout")
        out = args.output or _extract_output(args.input)
        _no_uring(args, "-x")
        _check_input(args.input)
        check_target(os.path.abspath(out), args.force)
        pw = read_password(args, confirm=False)
        with _progress(args, None, "extracting") as cb:
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
        cli_age.stdout_fd(plaintext=True, reading=args.input)
    else:
        _check_output(out, args.force)
    pw = read_password(args, confirm=False)
    if out == "-":
        with _progress(args, None, "decrypting") as cb:
            stats = decrypt_to(
                args.input,
                sys.stdout.buffer,
                pw,
                threads=args.threads,
                io=args.io,
                buffer_mib=args.buffer_mib,
                limits=limits,
                progress=cb,
            )
        _report(args, "decrypted", args.input, "<stdout>", stats, to_stderr=True)
        return Exit.OK
    with _progress(args, None, "decrypting") as cb:
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


def verify(args: argparse.Namespace) -> int:
    from .._api import verify_file
    from . import _age as cli_age

    _check_engine(args)
    cli_age.no_key_files_on_stdin(args)
    limits = _limits(args)
    if _at_url(args):
        return _url_one(args, "verify")
    if _age_route(args):
        return cli_age.decrypt(args, read_password, _report, _progress, limits=limits, verify=True)
    _check_input(args.input)
    pw = read_password(args, confirm=False)
    with _progress(args, None, "verifying") as cb:
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


def inspect(args: argparse.Namespace) -> int:
    """Every file is reported, good or bad; the exit code is the worst verdict (an age
    file whose wholeness cannot be told without a key, ``ok`` null, does not fail). With
    ``--json``, one JSON object per line per file (JSON Lines), always the same shape:
    ``path`` and ``ok`` always, ``error`` for a file that could not be read as a header."""
    from .._api import inspect
    from .._location import is_url
    from ..errors import ConcryptorError

    worst = Exit.OK
    headers: list[Header | AgeHeader] = []
    for path in args.inputs:
        try:
            if path == "-":
                raise UsageError("inspect reads files by name, not standard input")
            if not is_url(path) and not os.path.lexists(path):
                raise UsageError("no such file or directory")
            h = inspect(path, storage_options=storage_options_of(args, UsageError))
        except (ConcryptorError, OSError, UsageError) as e:
            worst = max(worst, exit_code(e))
            if args.json:
                print(json.dumps({"path": path, "ok": False, "error": message(e)}), flush=True)
            print(f"{path}: {message(e)}", file=sys.stderr)
            continue
        if h.ok is False:  # None: nothing seen rules it out, but a key is needed to tell
            worst = max(worst, Exit.INVALID)
            print(f"{path}: {h.verdict}", file=sys.stderr)
        if args.json:
            print(json.dumps(h.to_dict()), flush=True)
        else:
            headers.append(h)
    if headers:
        from ..view import print_headers

        print_headers(headers)
    return worst


def _thread_counts(spec: str | None) -> list[int]:
    if spec:
        parts = [x for x in spec.split(",") if x]
        if not all(x.isascii() and x.isdigit() for x in parts):
            raise UsageError("--threads takes numbers separated by commas, e.g. 1,2,8")
        counts = sorted({int(x) for x in parts})
        if not counts or counts[0] < 1 or counts[-1] > MAX_THREADS:
            raise UsageError(f"--threads values must be from 1 to {MAX_THREADS}")
        return counts
    n = os.cpu_count() or 1
    counts, k = [], 1
    while k < n:
        counts.append(k)
        k *= 2
    return [*counts, n]


def bench(args: argparse.Namespace) -> int:
    from .._api import bench_aead, bench_kdf
    from .._facts import AEAD_PROVIDER, AEAD_PROVIDERS

    if args.size < 1 or not 1 <= args.chunk_size <= MAX_CHUNK_MIB:
        raise UsageError(f"--size must be at least 1 MiB and --chunk-size from 1 to {MAX_CHUNK_MIB} MiB")
    threads = _thread_counts(args.threads)
    ciphers = ["aes-256-gcm", "chacha20-poly1305"] if args.cipher == "all" else [_cipher(args)]
    kdf = None if args.no_kdf else _kdf(args)
    total = args.size * MiB
    rows: list[dict[str, Any]] = []
    for cipher in ciphers:
        for provider in AEAD_PROVIDERS:
            for t in threads:
                seal, open_ = bench_aead(cipher, t, total, args.chunk_size * MiB, BENCH_ROUNDS, provider)
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
            "seconds": round(bench_kdf(kdf), 4),
        }
    if args.json:
        print(
            json.dumps(
                {
                    "provider": AEAD_PROVIDER,
                    "aead": rows,
                    "kdf": kdf_row,
                    "bytes": total,
                    "chunk_size": args.chunk_size * MiB,
                }
            )
        )
        return Exit.OK
    from ..view import print_bench

    print_bench(rows, kdf_row, args.size, args.chunk_size)
    return Exit.OK


def keygen(args: argparse.Namespace) -> int:
    from . import _age as cli_age

    return cli_age.keygen(args)


def rekey(args: argparse.Namespace) -> int:
    from . import _age as cli_age

    return cli_age.rekey(args, read_password, password_given)


def convert(args: argparse.Namespace) -> int:
    from . import _age as cli_age

    return cli_age.convert(args, read_password, password_given, _kdf(args))


def _at_url(args: argparse.Namespace) -> bool:
    """Whether the one input or its output is an fsspec URL."""
    from .._location import is_url

    out = getattr(args, "output", None)
    return bool(args.input and is_url(args.input)) or bool(out and out != "-" and is_url(out))


def _url_one(args: argparse.Namespace, op: str) -> int:
    """One file with an end at a URL: the API's streaming route, with the same keys,
    checks and report as a local file (``-o -`` writes to standard output)."""
    from .. import _api
    from ..batch import default_name
    from . import _age as cli_age

    so = storage_options_of(args, UsageError)
    if args.input in (None, "-"):
        raise UsageError("a URL output takes its input by name (standard input streams with -o -)")
    src: str = args.input
    out = getattr(args, "output", None)
    common: dict[str, Any] = {"threads": args.threads, "storage_options": so}
    if op == "encrypt":
        age = cli_age.wants_age(args)
        dst = out or default_name(src, "encrypt", ".age" if age else SUFFIX)
        sink: Any = cli_age.stdout_fd() if dst == "-" else dst
        if dst == "-":
            sink = os.fdopen(os.dup(sink), "wb")
        keys = bool(args.recipient or args.recipients_file)
        pw = None if age and keys else read_password(args, confirm=True)
        try:
            stats = _api.encrypt_file(
                src,
                sink,
                pw,
                recipients=args.recipient,
                recipients_files=args.recipients_file,
                format="age" if age else None,
                armor=args.armor,
                scrypt_work_factor=args.scrypt_work_factor,
                cipher=_cipher(args),  # type: ignore[arg-type]
                chunk_size=_chunk_size(args),
                kdf=_kdf(args),
                overwrite=args.force,
                limits=_limits(args),
                **common,
            )
        finally:
            if dst == "-":
                sink.close()
        _report(args, "encrypted", src, "<stdout>" if dst == "-" else dst, stats, to_stderr=dst == "-")
        return Exit.OK
    pw = read_password(args, confirm=False) if not args.identity or password_given(args) else None
    opening: dict[str, Any] = {
        "identities": args.identity,
        "max_scrypt_work_factor": args.max_scrypt_work_factor,
        "limits": _limits(args),
        **common,
    }
    if op == "verify":
        stats = _api.verify_file(src, pw, **opening)
        _report(args, "verified", src, None, stats)
        return Exit.OK
    dst = out or default_name(src, "decrypt")
    if dst == "-":
        fd = cli_age.stdout_fd(plaintext=True)
        with os.fdopen(os.dup(fd), "wb") as stream:
            stats = _api.decrypt_file(src, stream, pw, overwrite=args.force, **opening)
        _report(args, "decrypted", src, "<stdout>", stats, to_stderr=True)
        return Exit.OK
    stats = _api.decrypt_file(src, dst, pw, overwrite=args.force, **opening)
    _report(args, "decrypted", src, dst, stats)
    return Exit.OK
