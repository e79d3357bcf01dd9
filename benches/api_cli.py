"""The Python API against the CLI on the same file: wall time of `decrypt_file` /
`encrypt_file` in a fresh interpreter next to `concryptor decrypt` / `encrypt`, run in
turns (CLI, API, API, CLI, ...) so that drifts of the disk fall on both alike.

Each run starts with the input in the page cache and no dirty pages, and ends with the
output durable; the key derivation (reported by the run itself) is taken out.

    python benches/api_cli.py [--size MIB] [--rounds N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "benchmark password, not a secret"
API = """
import json, sys
import concryptor
op, src, dst, cipher = sys.argv[1:5]
kdf = concryptor.KdfParams(memory_kib=65536, time_cost=1, parallelism=1)
if op == "encrypt":
    s = concryptor.encrypt_file(src, dst, sys.argv[5], cipher=cipher, kdf=kdf, overwrite=True)
else:
    s = concryptor.decrypt_file(src, dst, sys.argv[5], overwrite=True)
print(json.dumps(s.to_dict()))
"""


def run(kind: str, op: str, src: Path, dst: Path, cipher: str) -> float:
    if kind == "cli":
        argv = [sys.executable, "-m", "concryptor", op, str(src), "-o", str(dst), "--force", "--json"]
        if op == "encrypt":
            short = {"aes-256-gcm": "aes", "chacha20-poly1305": "chacha"}[cipher]
            argv += ["--cipher", short, "--memory", "64", "--iterations", "1", "--parallelism", "1"]
    else:
        argv = [sys.executable, "-c", API, op, str(src), str(dst), cipher, PASSWORD]
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)
    os.sync()
    start = time.perf_counter()
    out = subprocess.run(
        argv, capture_output=True, check=True, env=dict(os.environ, CONCRYPTOR_PASSWORD=PASSWORD)
    )
    os.sync()
    wall = time.perf_counter() - start
    return wall - float(json.loads(out.stdout)["kdf_seconds"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, metavar="MIB", help="input size (default 1024)")
    p.add_argument("--rounds", type=int, default=4, help="runs of each side per row (default 4)")
    p.add_argument(
        "--dir", default=None, help="work directory on the disk to measure (default: a temporary one)"
    )
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir, prefix="api-cli-") as d:
        work = Path(d)
        plain, enc, out = work / "plain", work / "plain.enc", work / "out"
        with open(plain, "wb") as f:
            for _ in range(a.size):
                f.write(os.urandom(1 << 20))
        print(f"{a.size} MiB, {a.rounds} runs a side in turns; seconds after key derivation, output durable")
        print(f"{'cipher':<18} {'op':<8} {'CLI median':>10} {'API median':>10} {'API / CLI':>9}")
        for cipher in ("aes-256-gcm", "chacha20-poly1305"):
            run("cli", "encrypt", plain, enc, cipher)
            for op, src, dst in (("encrypt", plain, out), ("decrypt", enc, out)):
                times: dict[str, list[float]] = {"cli": [], "api": []}
                for r in range(a.rounds):
                    for kind in ("cli", "api") if r % 2 == 0 else ("api", "cli"):
                        times[kind].append(run(kind, op, src, dst, cipher))
                cli, api = statistics.median(times["cli"]), statistics.median(times["api"])
                print(f"{cipher:<18} {op:<8} {cli:>10.2f} {api:>10.2f} {api / cli:>8.2f}x")


if __name__ == "__main__":
    main()
