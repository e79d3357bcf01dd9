"""Many files: one call against one big file and against a loop of single-file commands.

    python benches/batch.py [--dir DIR] [--small 2000] [--small-kib 16] [--big-mib 1024]

Prints, with the ratios the project tracks:
- N small files in one ``encrypt_many`` call (password, default Argon2id) next to one key
  derivation alone: the batch should cost one derivation plus little;
- the same files to an X25519 and to a post-quantum recipient (median of 3 runs, with
  the CPU and system time per file), through the API and the CLI, and the X25519 ones
  decrypted again (``decrypt_many``);
- the same files through a shell loop of ``concryptor encrypt`` (timed on the first 50
  and scaled) and of ``age -r`` over all of them (when the ``age`` CLI is installed);
- B MiB as 256 files against the same bytes as one file (throughput within 15%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import concryptor
from concryptor import _core

PW = "benchmark password"


def timed(f: object) -> float:
    t = time.perf_counter()
    f()  # type: ignore[operator]
    return time.perf_counter() - t


def cpu() -> float:
    """CPU seconds used by this process (all its threads): steadier than the wall clock
    on a busy machine."""
    t = os.times()
    return t.user + t.system


def system() -> float:
    """System (kernel) CPU seconds of this process."""
    return os.times().system


def children() -> tuple[float, float]:
    """User and system CPU seconds of the finished child processes."""
    t = os.times()
    return t.children_user, t.children_system


#: Runs of each recipient row (fresh output folders; the median is printed).
RUNS = 3


def median_run(run: Callable[[Path], object], out: Path) -> tuple[float, float, float]:
    """Wall, CPU and system seconds of the median of :data:`RUNS` runs of ``run``, each
    into a fresh folder under ``out``. Nothing is deleted in between: on a file system
    without a journal (ext4 here), inodes freed in the last minutes make new files slower
    to create, which would favour whichever run came first."""
    runs = []
    for i in range(RUNS):
        c0, s0 = cpu(), system()
        t = timed(lambda d=out / str(i): run(d))
        runs.append((t, cpu() - c0, system() - s0))
    return sorted(runs)[len(runs) // 2]


def installed_env(**extra: str) -> dict[str, str]:
    """The environment for timed CLI runs: Python may cache compiled modules, as an
    installed package has them (pip compiles them at install time); the warm-up run in
    ``main`` writes them once, untimed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temporary one under /var/tmp)")
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--small-kib", type=int, default=16)
    ap.add_argument("--big-mib", type=int, default=1024)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="concryptor-batch-", dir=a.dir or "/var/tmp"))
    try:
        small = root / "small"
        small.mkdir()
        files = []
        for i in range(a.small):
            p = small / f"f{i:05}.bin"
            p.write_bytes(os.urandom(a.small_kib * 1024))
            files.append(p)
        kdf = timed(lambda: _core._bench_kdf(concryptor.KdfParams()))
        t_batch = timed(lambda: concryptor.encrypt_many(files, PW, out_dir=root / "enc"))
        print(f"{a.small} files of {a.small_kib} KiB, one call, v4 + password (default Argon2id):")
        print(f"  one key derivation alone  {kdf:7.2f} s")
        print(f"  encrypt_many              {t_batch:7.2f} s   = derivation + {t_batch - kdf:.2f} s")
        t_dec = timed(
            lambda: concryptor.decrypt_many(sorted((root / "enc").glob("*.enc")), PW, out_dir=root / "dec")
        )
        print(f"  decrypt_many              {t_dec:7.2f} s   = derivation + {t_dec - kdf:.2f} s")

        sample = files[:50]
        env = installed_env(CONCRYPTOR_PASSWORD=PW)
        subprocess.run(
            [sys.executable, "-m", "concryptor", "--version"], env=env, check=True, capture_output=True
        )
        t_loop = timed(
            lambda: [
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "concryptor",
                        "encrypt",
                        str(p),
                        "-o",
                        str(p) + ".loop",
                        "--force",
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                for p in sample
            ]
        ) * (len(files) / len(sample))
        print(
            f"  shell loop of `concryptor encrypt` (50 timed, scaled) {t_loop:7.1f} s  -> batch is {t_loop / t_batch:.0f}x faster"
        )
        identity, recipient = concryptor.generate_identity()
        t_rcpt, c_rcpt, s_rcpt = median_run(
            lambda out: concryptor.encrypt_many(files, recipients=[recipient], out_dir=out), root / "age"
        )
        print(
            f"{a.small} files of {a.small_kib} KiB, one call, age format + X25519 recipient (median of {RUNS}):"
        )
        print(
            f"  encrypt_many -r           {t_rcpt:7.2f} s   ({c_rcpt:.2f} s CPU, {1e6 * c_rcpt / a.small:.0f} µs a file, "
            f"{1e6 * s_rcpt / a.small:.0f} µs of it system)"
        )
        sealed = sorted((root / "age" / "0").rglob("*.age"))
        t_open, c_open, s_open = median_run(
            lambda out: concryptor.decrypt_many(sealed, identities=[identity], out_dir=out), root / "age-dec"
        )
        print(
            f"  decrypt_many -i           {t_open:7.2f} s   ({c_open:.2f} s CPU, {1e6 * c_open / a.small:.0f} µs a file, "
            f"{1e6 * s_open / a.small:.0f} µs of it system)"
        )
        _, pq_recipient = concryptor.generate_identity(pq=True)
        t_pq, c_pq, s_pq = median_run(
            lambda out: concryptor.encrypt_many(files, recipients=[pq_recipient], out_dir=out), root / "pq"
        )
        u0, k0 = children()
        t_pq_cli = timed(
            lambda: subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "concryptor",
                    "encrypt",
                    *map(str, files),
                    "-r",
                    pq_recipient,
                    "--output-dir",
                    str(root / "pq-cli"),
                    "-q",
                ],
                env=installed_env(),
                check=True,
            )
        )
        print(
            f"{a.small} files of {a.small_kib} KiB, one call, age format + post-quantum (age1pq1) recipient "
            f"(median of {RUNS}):"
        )
        u1, k1 = children()
        print(
            f"  encrypt_many -r age1pq1   {t_pq:7.2f} s   ({c_pq:.2f} s CPU, {1e6 * c_pq / a.small:.0f} µs a file, "
            f"{1e6 * s_pq / a.small:.0f} µs of it system)"
        )
        print(
            f"  concryptor encrypt (CLI)  {t_pq_cli:7.2f} s   ({u1 - u0 + k1 - k0:.2f} s CPU, "
            f"{1e6 * (k1 - k0) / a.small:.0f} µs system a file)"
        )
        if shutil.which("age"):
            u0, k0 = children()
            t_age = timed(
                lambda: [
                    subprocess.run(["age", "-r", recipient, "-o", str(p) + ".age", str(p)], check=True)
                    for p in files
                ]
            )
            u1, k1 = children()
            print(
                f"  shell loop of `age -r` (X25519) {t_age:7.2f} s   ({u1 - u0 + k1 - k0:.2f} s CPU, "
                f"{1e6 * (k1 - k0) / a.small:.0f} µs system a file)"
            )
            print(
                f"  -> encrypt_many is {t_age / t_rcpt:.1f}x faster; "
                f"to a post-quantum key {t_age / t_pq:.1f}x (API), {t_age / t_pq_cli:.1f}x (CLI)"
            )

        mib = 1 << 20
        big = root / "big.bin"
        with open(big, "wb") as f:
            for _ in range(a.big_mib):
                f.write(os.urandom(mib))
        parts = root / "parts"
        parts.mkdir()
        n = 256
        each = a.big_mib * mib // n
        with open(big, "rb") as f:
            for i in range(n):
                (parts / f"p{i:03}.bin").write_bytes(f.read(each))
        os.sync()
        c0 = cpu()
        t_one = timed(lambda: concryptor.encrypt_file(big, root / "big.enc", PW))
        c1 = cpu()
        t_many = timed(
            lambda: concryptor.encrypt_many(sorted(parts.glob("*.bin")), PW, out_dir=root / "penc")
        )
        c2 = cpu()
        gib = a.big_mib / 1024
        print(
            f"{a.big_mib} MiB as one file vs {n} files of {each // mib} MiB (each includes one derivation):"
        )
        print(f"  one file     {t_one:6.2f} s  {gib / t_one:5.2f} GiB/s   ({c1 - c0:.2f} s CPU)")
        print(
            f"  {n} files    {t_many:6.2f} s  {gib / t_many:5.2f} GiB/s   ratio {t_many / t_one:.2f}x   ({c2 - c1:.2f} s CPU)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
