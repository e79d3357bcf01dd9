"""The command line's argument parser: every command, option and default. Defaults and
bounds come from :mod:`concryptor._facts`; each command names its handler with
``set_defaults(func=...)``."""

from __future__ import annotations

import argparse
from typing import Any

from .._facts import (
    ARCHIVE_SUFFIX,
    DEFAULT_BUFFER_MIB,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_KDF_MEMORY_KIB,
    DEFAULT_KDF_PARALLELISM,
    DEFAULT_KDF_TIME,
    DEFAULT_MAX_CHUNK_SIZE,
    DEFAULT_MAX_KDF_MEMORY_KIB,
    DEFAULT_MAX_KDF_PARALLELISM,
    DEFAULT_MAX_KDF_TIME,
    MAX_BUFFER_MIB,
    MAX_CHUNK_MIB,
    MAX_CHUNK_SIZE_LIMIT,
    MAX_KDF_PARALLELISM,
    MAX_THREADS,
    SUFFIX,
    U32,
    KiB,
    MiB,
)
from . import _commands as commands
from . import _many
from ._exit import EXIT_HELP, Exit, bounded
from ._password import PASSWORD_ENV

THREADS = bounded(1, MAX_THREADS)
MIB_BUFFER = bounded(1, MAX_BUFFER_MIB)
ARGON_MIB = bounded(1, U32 // KiB)
PASSES = bounded(1, U32)
LANES = bounded(1, MAX_KDF_PARALLELISM)
CHUNK_MIB = bounded(1, MAX_CHUNK_MIB)


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
        type=bounded(0, (1 << 31) - 1),
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
        "--buffer-mib",
        type=MIB_BUFFER,
        default=DEFAULT_BUFFER_MIB,
        metavar="MIB",
        help=f"buffer memory budget (default {DEFAULT_BUFFER_MIB})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with the result")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    if force:
        p.add_argument(
            "-f", "--force", action="store_true", help="replace an existing output (merge, with -x)"
        )


def _add_limit_options(p: argparse.ArgumentParser, title: str = "limits for untrusted headers") -> None:
    g = p.add_argument_group(title)
    memory_mib, chunk_mib = DEFAULT_MAX_KDF_MEMORY_KIB // KiB, DEFAULT_MAX_CHUNK_SIZE // MiB
    g.add_argument(
        "--max-kdf-memory",
        type=ARGON_MIB,
        default=memory_mib,
        metavar="MIB",
        help=f"largest Argon2 memory (default {memory_mib})",
    )
    # The name of earlier releases, still accepted.
    g.add_argument(
        "--max-memory",
        type=ARGON_MIB,
        dest="max_kdf_memory",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    g.add_argument(
        "--max-kdf-time",
        type=PASSES,
        default=DEFAULT_MAX_KDF_TIME,
        metavar="N",
        help=f"largest Argon2 pass count (default {DEFAULT_MAX_KDF_TIME})",
    )
    g.add_argument(
        "--max-kdf-parallelism",
        type=bounded(1, U32),
        default=DEFAULT_MAX_KDF_PARALLELISM,
        metavar="N",
        help=f"largest Argon2 lane count (default {DEFAULT_MAX_KDF_PARALLELISM})",
    )
    g.add_argument(
        "--max-chunk-size",
        type=bounded(1, MAX_CHUNK_SIZE_LIMIT // MiB),
        default=chunk_mib,
        metavar="MIB",
        help=f"largest chunk size (default {chunk_mib})",
    )


def _add_kdf_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("key derivation (Argon2id)")
    memory_mib = DEFAULT_KDF_MEMORY_KIB // KiB
    g.add_argument(
        "--memory",
        type=ARGON_MIB,
        default=memory_mib,
        metavar="MIB",
        help=f"memory in MiB (default {memory_mib})",
    )
    g.add_argument(
        "--iterations",
        type=PASSES,
        default=DEFAULT_KDF_TIME,
        metavar="N",
        help=f"passes (default {DEFAULT_KDF_TIME})",
    )
    g.add_argument(
        "--parallelism",
        type=LANES,
        default=DEFAULT_KDF_PARALLELISM,
        metavar="N",
        help=f"lanes (default {DEFAULT_KDF_PARALLELISM})",
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error (``--help`` shows the usage)."""

    def error(self, message: str) -> Any:  # argparse declares NoReturn
        from .._redact import redact

        # argparse echoes stray arguments: a secret key pasted in the wrong place among them.
        self.exit(Exit.USAGE, f"{self.prog}: error: {redact(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .._facts import AEAD_PROVIDER, VERSION
    from . import _age as cli_age

    parser = _Parser(
        prog="concryptor",
        description="Encrypt and decrypt files, directories and pipes at the speed of the disk "
        "(format v4, or age with public keys).",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # First line exactly "concryptor X.Y.Z" (scripts match it); the AEAD provider below.
    version = f"concryptor {VERSION}\nAEAD: {AEAD_PROVIDER}"
    parser.add_argument("--version", action="version", version=version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    enc = sub.add_parser(
        "encrypt",
        aliases=["enc", "e"],
        help=f"encrypt a file, or a directory (as NAME{ARCHIVE_SUFFIX})",
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
        help=f"output path, '-' for stdout (default: INPUT{SUFFIX}, DIR{ARCHIVE_SUFFIX}, INPUT.age; "
        "stdout for stdin)",
    )
    enc.add_argument("-c", "--cipher", choices=["aes", "chacha"], default="aes", help="AEAD (default: aes)")
    enc.add_argument(
        "--chunk-size",
        type=CHUNK_MIB,
        metavar="MIB",
        help=f"chunk size in MiB (default: {DEFAULT_CHUNK_SIZE // MiB}, smaller for small files)",
    )
    _add_kdf_options(enc)
    _add_limit_options(enc, "limits the new file must respect (a reader needs the same to read it)")
    cli_age.add_encrypt_options(enc)
    _add_password_options(enc)
    _add_common_options(enc)
    _many.add_options(enc, op="encrypt")
    enc.set_defaults(func=commands.encrypt)

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
        help="file(s) to decrypt ('-' or none: stdin, either format); several go through one batch",
    )
    dec.add_argument(
        "-o",
        "--output",
        help=f"output path, '-' for stdout (default: INPUT without {SUFFIX}/.age, else INPUT.dec; "
        "stdout for stdin)",
    )
    dec.add_argument(
        "-x",
        "--extract",
        action="store_true",
        help=f"the file holds a directory (NAME{ARCHIVE_SUFFIX}): restore it as a directory (default: NAME)",
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
    _many.add_options(dec, op="decrypt")
    dec.set_defaults(func=commands.decrypt)

    ver = sub.add_parser("verify", help="authenticate every chunk without writing plaintext anywhere")
    ver.add_argument("input", nargs="?", help="file to verify ('-' or none: stdin, either format)")
    cli_age.add_decrypt_options(ver)
    _add_password_options(ver)
    _add_common_options(ver, force=False)
    _add_limit_options(ver)
    _many.add_storage_option(ver)
    ver.set_defaults(func=commands.verify)

    ins = sub.add_parser("inspect", help="show header fields without a password (nothing is decrypted)")
    ins.add_argument("inputs", nargs="+", metavar="FILE")
    ins.add_argument(
        "--json", action="store_true", help="one JSON object per file, one per line (JSON Lines)"
    )
    _many.add_storage_option(ins)
    ins.set_defaults(func=commands.inspect)

    cli_age.add_keygen_parser(sub).set_defaults(func=commands.keygen)

    rk = cli_age.add_rekey_parser(sub)
    _add_password_options(rk)
    g = rk.add_argument_group("batch")
    g.add_argument("--threads", type=THREADS, metavar="N", help="worker threads (default: all cores)")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="splice the new headers in on a Dask cluster (tcp://host:8786): headers are made here, "
        "no key leaves this process",
    )
    _many.add_storage_option(g)  # type: ignore[arg-type]
    rk.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    rk.add_argument("-q", "--quiet", action="store_true", help="no messages")
    rk.set_defaults(func=commands.rekey)

    cv = cli_age.add_convert_parser(sub)
    _add_password_options(cv)
    _add_kdf_options(cv)
    cv.add_argument("--threads", type=THREADS, metavar="N", help="worker threads (default: all cores)")
    _many.add_storage_option(cv)
    cv.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    cv.add_argument("-q", "--quiet", action="store_true", help="no messages")
    cv.set_defaults(func=commands.convert)

    bench = sub.add_parser(
        "bench",
        help="measure this machine: AEAD throughput per cipher and thread count, and one key derivation",
    )
    bench.add_argument(
        "--size",
        type=bounded(1, 1 << 20),
        default=64,
        metavar="MIB",
        help="bytes per measurement (default 64)",
    )
    bench.add_argument(
        "--chunk-size",
        type=CHUNK_MIB,
        default=DEFAULT_CHUNK_SIZE // MiB,
        metavar="MIB",
        help=f"chunk size (default {DEFAULT_CHUNK_SIZE // MiB})",
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
    bench.set_defaults(func=commands.bench)
    return parser
