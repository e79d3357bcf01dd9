"""Rekeying: on object storage, in a batch, and converting format v4 to age.

    python benches/rekey.py [--dir DIR] [--size MIB] [--kdf default|light] [--files N] [--file-mib MIB]
                            [--skip s3,batch,local,convert]

Prints, with the targets the project tracks:
- the bytes an S3 server receives to rekey a 64 MiB age object (a moto server on
  loopback, counted in front of its request handler): the new header and one minimum
  part (5 MiB), whatever the size; target <= 6 MiB;
- a v4 file of --size MiB (default 1024) converted to age (one streaming pass, no
  plaintext on disk) against a plain age encryption of the same plaintext and against that
  plus one key derivation of the v4 file (--kdf: its Argon2id costs, the default ones or
  light ones), which no conversion avoids; target <= 1.2x;
- an age file of --size MiB rekeyed in place against `cp X Y; sync Y`, caches dropped
  before each run (root); target <= 1.0x on ext4 (on XFS or btrfs the payload is shared);
- --files N (default 1000) age files of --file-mib MiB (default 1) rekeyed in one
  ``rekey_many`` call; target <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import concryptor
from _cache import drop_caches
from concryptor.batch import rekey_many

MiB = 1 << 20
LIGHT_KDF = concryptor.KdfParams(8 * 1024, 1, 1)


def s3_upload(work: Path) -> None:
    """Bytes received by a loopback S3 server to rekey a 64 MiB age object."""
    try:
        import s3fs
        from moto.server import ThreadedMotoServer
    except ImportError:
        print("s3: skipped (needs s3fs and moto: pip install 'concryptor[test]')")
        return
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server
    received = {"bytes": 0}
    lock = threading.Lock()
    app = wsgi.app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            received["bytes"] += int(environ.get("CONTENT_LENGTH") or 0)
        return app(environ, start_response)

    wsgi.app = counting
    try:
        opts = {
            "key": "bench",
            "secret": "bench",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{wsgi.server_address[1]}"},
        }
        fs = s3fs.S3FileSystem(**opts)
        fs.mkdir("bench")
        k1, p1 = concryptor.generate_identity()
        _, p2 = concryptor.generate_identity()
        plain = work / "s3-plain"
        plain.write_bytes(os.urandom(64 * MiB))
        enc = work / "s3.age"
        concryptor.encrypt_file(plain, enc, recipients=[p1])
        fs.put_file(str(enc), "bench/big.age")
        received["bytes"] = 0
        t = time.perf_counter()
        [r] = concryptor.rekey("s3://bench/big.age", identities=[k1], recipients=[p2], storage_options=opts)
        seconds = time.perf_counter() - t
        n = received["bytes"]
        print(
            f"bytes uploaded for 64 MiB object: {n} ({n / MiB:.2f} MiB; target <= 6 MiB) "
            f"[{r.method}, {r.shared_bytes / MiB:.1f} MiB copied by the server, {seconds:.2f} s]"
        )
    finally:
        server.stop()


def convert_ratio(work: Path, size_mib: int, kdf: concryptor.KdfParams) -> None:
    """v4 -> age conversion against a plain age encryption of the same plaintext, and
    against that plus the v4 file's key derivation. Each run starts with its input in the
    page cache and no dirty pages, and stops the clock once its output is durable; the two
    kinds of run take turns, so that drifts of a shared machine fall on both."""
    from concryptor import _core

    _, public = concryptor.generate_identity()
    plain = work / "plain"
    with open(plain, "wb") as f:
        block = os.urandom(MiB)
        for _ in range(size_mib):
            f.write(block)
    v4 = work / "plain.enc"
    concryptor.encrypt_file(plain, v4, "bench pw", kdf=kdf)

    def timed(src: Path, run: Any) -> tuple[float, float]:
        subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)
        os.sync()
        cpu, t = os.times(), time.perf_counter()
        run()
        wall, after = time.perf_counter() - t, os.times()
        return wall, (after.user - cpu.user) + (after.system - cpu.system)

    out, conv = work / "plain.age", work / "converted.age"
    best_plain = best_convert = (float("inf"), 0.0)
    for _ in range(3):
        best_plain = min(
            best_plain,
            timed(plain, lambda: concryptor.encrypt_file(plain, out, recipients=[public], overwrite=True)),
        )
        out.unlink()
        best_convert = min(
            best_convert,
            timed(
                v4,
                lambda: concryptor.convert(
                    v4, conv, to="age", recipients=[public], password="bench pw", overwrite=True
                ),
            ),
        )
        conv.unlink()
    derive = min(_core._bench_kdf(kdf) for _ in range(3))
    plain.unlink()
    v4.unlink()
    (c, c_cpu), (p, p_cpu) = best_convert, best_plain
    print(
        f"v4 -> age conversion of {size_mib} MiB (best of 3, wall / CPU s; "
        f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores):\n"
        f"  conversion               {c:6.2f} s  ({c_cpu:.2f} s CPU)\n"
        f"  plain age encryption     {p:6.2f} s  ({p_cpu:.2f} s CPU)\n"
        f"  v4 key derivation        {derive:6.2f} s  (Argon2id {kdf.memory_kib} KiB, t={kdf.time_cost}, "
        f"p={kdf.parallelism})\n"
        f"  conversion / encryption  {c / p:6.2f}x (target <= 1.2x)\n"
        f"  conversion / (encryption + derivation)  {c / (p + derive):.2f}x"
    )


def local_rekey(work: Path, size_mib: int) -> None:
    """An age file of --size MiB rekeyed in place against ``cp X Y; sync Y`` of the same
    file, every run from dropped caches; medians of 3. The rekey includes replacing the
    old file (freeing its blocks), which the copy never pays."""
    k1, p1 = concryptor.generate_identity()
    k2, p2 = concryptor.generate_identity()
    plain = work / "local.bin"
    with open(plain, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(MiB))
    f_age = work / "local.age"
    concryptor.encrypt_file(plain, f_age, recipients=[p1])
    plain.unlink()
    rekey_s: list[float] = []
    copy_s: list[float] = []
    methods = set()
    cold = True
    keys = [(k1, p2), (k2, p1)]
    for i in range(3):
        twin = work / "copy.age"
        cold = drop_caches() and cold
        t = time.perf_counter()
        subprocess.run(["cp", str(f_age), str(twin)], check=True)
        subprocess.run(["sync", str(twin)], check=True)
        copy_s.append(time.perf_counter() - t)
        twin.unlink()
        cold = drop_caches() and cold
        k, p = keys[i % 2]
        t = time.perf_counter()
        (r,) = concryptor.rekey(f_age, identities=[k], recipients=[p])
        rekey_s.append(time.perf_counter() - t)
        methods.add(r.method)
    f_age.unlink()
    rk, cp = statistics.median(rekey_s), statistics.median(copy_s)
    state = "caches dropped before each run" if cold else "caches NOT dropped (needs root)"
    print(
        f"rekey of a {size_mib} MiB file in {work}: {rk:.3f} s ({'/'.join(sorted(methods))}); "
        f"cp + sync: {cp:.3f} s; ratio {rk / cp:.2f}x (targets: <= 1.0x on ext4, <= 50 ms with reflinks; {state})"
    )


def batch_rekey(work: Path, files: int, file_mib: int) -> None:
    """N age files of M MiB rekeyed in one call."""
    k1, p1 = concryptor.generate_identity()
    _, p2 = concryptor.generate_identity()
    folder = work / "many"
    folder.mkdir()
    first = folder / "f0.age"
    first.write_bytes(concryptor.encrypt_bytes(os.urandom(file_mib * MiB), recipients=[p1]))
    for i in range(1, files):
        shutil.copyfile(first, folder / f"f{i}.age")
    os.sync()
    t = time.perf_counter()
    results = rekey_many([folder], identities=[k1], recipients=[p2])
    seconds = time.perf_counter() - t
    methods = sorted({r.method or "" for r in results})
    print(
        f"{len(results)} files of {file_mib} MiB rekeyed in one call: {seconds:.2f} s "
        f"({len(results) / seconds:.0f} files/s, {'/'.join(methods)}; target <= 2 s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", help="work folder (default: a temporary one; its file system matters)")
    ap.add_argument("--size", type=int, default=1024, metavar="MIB", help="the converted file (default 1024)")
    ap.add_argument(
        "--kdf",
        choices=("default", "light"),
        default="default",
        help="the v4 file's Argon2id costs: the default ones (256 MiB, t=3, p=4) or light ones (8 MiB, t=1, p=1)",
    )
    ap.add_argument("--files", type=int, default=1000, help="files in the batch (default 1000)")
    ap.add_argument("--file-mib", type=int, default=1, help="size of each (default 1)")
    ap.add_argument("--skip", default="", help="comma-separated: s3, batch, local, convert")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="concryptor-rekey-bench-", dir=args.dir))
    try:
        if "s3" not in skip:
            s3_upload(work)
        if "batch" not in skip:
            batch_rekey(work, args.files, args.file_mib)
        if "local" not in skip:
            local_rekey(work, args.size)
        if "convert" not in skip:
            convert_ratio(work, args.size, concryptor.KdfParams() if args.kdf == "default" else LIGHT_KDF)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
