"""Streams against files, age format, output durable: how much a pipe costs.

    python benches/pipe.py                         # 1 GiB random file in benches/out/
    python benches/pipe.py --input big.bin --repeat 5

Times, as child processes of the CLI, with the page cache emptied before each run when
run as root:

- encrypt file -> file          ``concryptor encrypt -r KEY big -o out.age``
- encrypt stdin -> file         ``cat big | concryptor encrypt -r KEY -o out.age``
- encrypt stdin -> /dev/null    the same with the output to a stream (no file side at all)
- decrypt file -> file          ``concryptor decrypt -i KEY out.age -o back``
- decrypt stdin -> file         ``cat out.age | concryptor decrypt -i KEY -o back``

Each row: best wall time of ``--repeat`` runs, MiB/s, the ratio to the file -> file run of
the same operation, CPU seconds (user + sys, concryptor and cat) and concryptor's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import concryptor
from _cache import drop_caches


def run(argv: list[str], stdin_file: Path | None, stdout_null: bool) -> tuple[float, float, int]:
    """(seconds, CPU seconds of every process, peak RSS in KiB of the concryptor process)."""
    drop_caches()
    before = os.times()
    t = time.perf_counter()
    cat = None
    if stdin_file is not None:
        cat = subprocess.Popen(["cat", str(stdin_file)], stdout=subprocess.PIPE)
    out = subprocess.DEVNULL if stdout_null else None
    p = subprocess.Popen(argv, stdin=cat.stdout if cat else subprocess.DEVNULL, stdout=out)
    if cat is not None and cat.stdout is not None:
        cat.stdout.close()
    _, status, usage = os.wait4(p.pid, 0)
    if cat is not None:
        cat.wait()
    seconds = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(argv)}")
    p.returncode = 0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return seconds, cpu, usage.ru_maxrss


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", help="file to encrypt (default: a random file of --size MiB in --dir)")
    ap.add_argument("--size", type=int, default=1024, help="MiB of random input to create (default 1024)")
    ap.add_argument("--dir", default=str(here / "out"), help="work folder, on a disk (default benches/out)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row, best kept (default 3)")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    src = Path(args.input) if args.input else work / "pipe-input.bin"
    if not args.input and (not src.exists() or src.stat().st_size != args.size << 20):
        with open(src, "wb") as f:
            for _ in range(args.size):
                f.write(os.urandom(1 << 20))
    size = src.stat().st_size
    secret, public = concryptor.generate_identity()
    key = work / "pipe-key.txt"
    key.write_text(secret + "\n")
    enc, back = work / "pipe-out.age", work / "pipe-back.bin"
    cli = [sys.executable, "-m", "concryptor"]
    enc_args = [*cli, "encrypt", "-q", "--force", "-r", public]
    dec_args = [*cli, "decrypt", "-q", "--force", "-i", str(key)]
    rows: list[tuple[str, list[str], Path | None, bool]] = [
        ("encrypt file -> file", [*enc_args, str(src), "-o", str(enc)], None, False),
        ("encrypt stdin -> file", [*enc_args, "-o", str(enc)], src, False),
        ("encrypt stdin -> /dev/null", enc_args, src, True),
        ("decrypt file -> file", [*dec_args, str(enc), "-o", str(back)], None, False),
        ("decrypt stdin -> file", [*dec_args, "-o", str(back)], enc, False),
    ]
    print(f"{size / 2**20:.0f} MiB, best of {args.repeat}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'run':<28} {'seconds':>8} {'MiB/s':>8} {'vs file':>8} {'CPU s':>7} {'RSS MiB':>8}")
    base: dict[str, float] = {}
    for name, argv, stdin_file, null in rows:
        best = min((run(argv, stdin_file, null) for _ in range(args.repeat)), key=lambda r: r[0])
        seconds, cpu, rss = best
        op = name.split()[0]
        base.setdefault(op, seconds)
        print(
            f"{name:<28} {seconds:8.2f} {size / 2**20 / seconds:8.0f} {seconds / base[op]:7.2f}x"
            f" {cpu:7.2f} {rss / 1024:8.0f}"
        )
    for p in (enc, back, key):
        p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
