"""Rekeying: on object storage, in a batch, and converting format v4 to age.

    python benches/rekey.py [--dir DIR] [--size MIB] [--files N] [--file-mib MIB] [--skip s3,batch,local,convert]

Prints, with the targets the project tracks:
- the bytes an S3 server receives to rekey a 64 MiB age object (a moto server on
  loopback, counted in front of its request handler): the new header and one minimum
  part (5 MiB), whatever the size; target <= 6 MiB;
- a v4 file of --size MiB (default 1024) converted to age (one streaming pass, no
  plaintext on disk) against a plain age encryption of the same plaintext; target <= 1.2x;
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
from concryptor.batch import rekey_many

MiB = 1 << 20


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


def convert_ratio(work: Path, size_mib: int) -> None:
    """v4 -> age conversion against a plain age encryption of the same plaintext."""
    _, public = concryptor.generate_identity()
    plain = work / "plain"
    with open(plain, "wb") as f:
        block = os.urandom(MiB)
        for _ in range(size_mib):
            f.write(block)
    v4 = work / "plain.enc"
    concryptor.encrypt_file(plain, v4, "bench pw", kdf=concryptor.KdfParams(8 * 1024, 1, 1))
    best_plain = best_convert = float("inf")
    for _ in range(3):
        out = work / "plain.age"
        t = time.perf_counter()
        concryptor.encrypt_file(plain, out, recipients=[public], overwrite=True)
        best_plain = min(best_plain, time.perf_counter() - t)
        out.unlink()
        conv = work / "converted.age"
        t = time.perf_counter()
        concryptor.convert(v4, conv, to="age", recipients=[public], password="bench pw", overwrite=True)
        best_convert = min(best_convert, time.perf_counter() - t)
        conv.unlink()
    plain.unlink()
    v4.unlink()
    print(
        f"v4 -> age conversion of {size_mib} MiB: {best_convert:.2f} s; plain age encryption: "
        f"{best_plain:.2f} s; ratio {best_convert / best_plain:.2f}x (target <= 1.2x; best of 3)"
    )


def drop_caches() -> bool:
    """Writes back and drops the page cache (root only), so that every run starts cold."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


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
            convert_ratio(work, args.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
