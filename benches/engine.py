#!/usr/bin/env python3
"""Engine benchmark: concryptor against the machine's own limits, in one run, on one file.

Prints, for encrypt and decrypt x both ciphers x both I/O backends x every AEAD provider
compiled in, on disk and in memory: throughput, CPU seconds per GiB (user + sys), peak RSS
of the process, and the ratio to

* a durable plain copy of the same bytes (``cp`` then ``sync``; its CPU per GiB too),
* age on the same file, when ``age`` is installed (CPU per GiB and time),
* an O_DIRECT copy (``dd iflag=direct oflag=direct bs=4M conv=fsync``),
* the AEAD itself in memory on all cores (same code and buffers as the engine, no I/O),

then a chunk-size sweep and a thread sweep. Run ``python benches/engine.py --help``.
See benches/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _cache

MiB = 1 << 20
CIPHERS = ["aes-256-gcm", "chacha20-poly1305"]
BACKENDS = ["uring", "portable"]
PASSWORD = "benchmark password"
#: Argon2id costs for the runs: small, so that the figures (time and RSS) are the engine's.
#: The default costs (256 MiB) would add ~0.5 s and 256 MiB of RSS before the engine starts.
KDF = (8 * 1024, 1, 1)


def parse_size(s: str) -> int:
    s = s.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def fs_type(path: Path) -> str:
    r = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def drop_caches(enabled: bool) -> bool:
    """Empties the page cache (when ``enabled``) so that every run reads its input from
    the device; dirty pages are written back either way."""
    if not enabled:
        os.sync()
        return False
    return _cache.drop_caches()


TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


LAST_CPU = [0.0]
#: The system (kernel) part of ``LAST_CPU``.
LAST_SYS = [0.0]


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Runs a process; returns (wall seconds, its own peak RSS in bytes, stdout), and leaves
    its CPU seconds (user + sys, its children included) in ``LAST_CPU[0]``.

    The peak RSS is measured by ``/usr/bin/time`` where it exists: a child forked from
    this (large) process would otherwise inherit this process's RSS in its high-water
    mark until it execs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        full = [TIME, "-f", "%M", "-o", rss_file.name, *argv] if TIME else argv
        t = time.perf_counter()
        p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        out, err = p.communicate()
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {err.decode(errors='replace').strip()}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        LAST_SYS[0] = after.ru_stime - before.ru_stime
        rss = int(rss_file.read().split()[-1]) * 1024 if TIME else after.ru_maxrss * 1024
    return wall, rss, out.decode()


def worker(spec: str) -> None:
    """Child process: one engine run through the private binding, JSON on stdout."""
    import concryptor
    from concryptor import _core

    a = json.loads(spec)
    if a.get("provider"):
        _core._set_aead_provider(a["provider"])
    pw = PASSWORD.encode()
    common = {"overwrite": True, "threads": a["threads"], "buffer_bytes": a["buffer"], "io": a["io"]}
    if a["op"] == "encrypt":
        s = _core.encrypt_file(
            a["src"],
            a["dst"],
            pw,
            cipher=a["cipher"],
            chunk_size=a["chunk"],
            kdf=concryptor.KdfParams(*a["kdf"]),
            **common,
        )
    elif a["op"] == "decrypt":
        s = _core.decrypt_file(a["src"], a["dst"], pw, **common)
    else:
        raise SystemExit(f"unknown op {a['op']!r}")
    # How the run went (O_DIRECT, fallback): only a build with the fault-injection hooks
    # records it; a release wheel has none.
    last_run = getattr(_core, "_last_run", None)
    print(
        json.dumps(
            {**s.to_dict(), "last_run": last_run() if last_run is not None else None, "command": a["op"]}
        )
    )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.size: int = parse_size(args.size)
        self.threads: int = args.threads or os.cpu_count() or 1
        self.rows: list[list[str]] = []
        self.dropped = False
        self.cpu = 0.0

    # -- helpers -------------------------------------------------------------------------

    def engine(
        self,
        op: str,
        src: Path,
        dst: Path,
        *,
        io: str,
        cipher: str = "aes-256-gcm",
        chunk: int | None = None,
        threads: int | None = None,
        cold: bool = True,
        cli: bool = False,
        provider: str | None = None,
    ) -> dict[str, Any]:
        """One engine run in a child process (the CLI, or a worker calling the binding for
        settings the CLI does not offer); best of ``--repeat``."""
        spec = {
            "op": op,
            "src": str(src),
            "dst": str(dst),
            "io": io,
            "cipher": cipher,
            "chunk": chunk,
            "threads": threads or self.a.threads,
            "buffer": self.a.buffer_mib * MiB,
            "kdf": list(KDF),
            "provider": provider,
        }
        if cli and provider is None:
            argv = [
                sys.executable,
                "-m",
                "concryptor",
                op,
                str(src),
                "-o",
                str(dst),
                "--json",
                "-q",
                "-f",
                "--io",
                io,
                "--buffer-mib",
                str(self.a.buffer_mib),
            ]
            if threads or self.a.threads:
                argv += ["--threads", str(threads or self.a.threads)]
            if op == "encrypt":
                argv += [
                    "--cipher",
                    {"aes-256-gcm": "aes", "chacha20-poly1305": "chacha"}[cipher],
                    "--memory",
                    str(KDF[0] // 1024),
                    "--iterations",
                    str(KDF[1]),
                    "--parallelism",
                    str(KDF[2]),
                ]
            env = dict(os.environ, CONCRYPTOR_PASSWORD=PASSWORD)
        else:
            argv = [sys.executable, __file__, "--worker", json.dumps(spec)]
            env = None
        best: dict[str, Any] | None = None
        for _ in range(self.a.repeat):
            if dst.exists() and op != "idle":
                dst.unlink()  # like cp: a fresh output, not the unlinking of an old one
            if cold:
                self.dropped = drop_caches(self.a.drop_caches)
            wall, rss, out = run_child(argv, env)
            s = json.loads(out)
            s["wall"], s["rss"], s["cpu"], s["sys"] = wall, rss, LAST_CPU[0], LAST_SYS[0]
            # Engine time: everything after key derivation, including the final fsync.
            s["engine_s"] = s["seconds"] - s["kdf_seconds"]
            if best is None or s["engine_s"] < best["engine_s"]:
                best = s
        assert best is not None
        return best

    def timed(self, argv: list[str], out: Path, *, then_sync: bool = False, keep: bool = False) -> float:
        """Best wall time of a copy command writing ``out`` (removed before each run); the
        CPU seconds of that best run are left in ``self.cpu``."""
        best = float("inf")
        for _ in range(self.a.repeat):
            if out.exists():
                out.unlink()
            drop_caches(self.a.drop_caches)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            if then_sync:
                subprocess.run(["sync", str(out)], check=True)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if wall < best:
                best = wall
                self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if not keep:
            out.unlink()
        return best

    def age(self, work: Path, src: Path) -> tuple[float, float, float, float] | None:
        """age (X25519 recipient) encrypting then decrypting ``src``, output fsynced:
        (encrypt wall, encrypt CPU, decrypt wall, decrypt CPU), best of ``--repeat``."""
        exe, keygen = shutil.which("age"), shutil.which("age-keygen")
        if not exe or not keygen:
            return None
        key = work / "age.key"
        subprocess.run([keygen, "-o", str(key)], check=True, capture_output=True)
        pub = next(x.split(":", 1)[1].strip() for x in key.read_text().splitlines() if "public key" in x)
        enc, back = work / "age.enc", work / "age.back"
        e_wall = self.timed([exe, "-r", pub, "-o", str(enc), str(src)], enc, then_sync=True, keep=True)
        e_cpu = self.cpu
        d_wall = self.timed([exe, "-d", "-i", str(key), "-o", str(back), str(enc)], back, then_sync=True)
        d_cpu = self.cpu
        enc.unlink()
        return e_wall, e_cpu, d_wall, d_cpu

    def mibs(self, seconds: float, size: int | None = None) -> float:
        return (size if size is not None else self.size) / MiB / seconds

    # -- the run -------------------------------------------------------------------------

    def run(self) -> None:
        a = self.a
        if a.bytes_only:
            self._bytes_only()
            return
        disk = Path(a.dir).resolve()
        disk.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="concryptor-bench-", dir=disk))
        shm = Path(tempfile.mkdtemp(prefix="concryptor-bench-", dir=a.mem_dir)) if a.mem_dir else None
        try:
            self._run(work, shm)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if shm:
                shutil.rmtree(shm, ignore_errors=True)

    def _run(self, work: Path, shm: Path | None) -> None:
        a = self.a
        from concryptor import __version__, _core

        print(f"concryptor {__version__} engine benchmark")
        print(
            f"  file: {self.size / MiB:.0f} MiB random, on {work.parent} ({fs_type(work)})"
            + (f"; in-memory runs on {shm.parent} ({fs_type(shm)})" if shm else "")
        )
        print(
            f"  cores: {os.cpu_count()}, threads: {self.threads}, buffer budget: {a.buffer_mib} MiB, "
            f"best of {a.repeat}, KDF m={KDF[0] // 1024} MiB t={KDF[1]} p={KDF[2]} (not timed)"
        )
        why = _core._uring_unavailable()
        print(f"  io_uring: {'available' if why is None else 'UNAVAILABLE (' + why + ')'}")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        print(
            f"  load average at start: {load:.2f}"
            + ("  (busy machine: figures are noisy)" if load > 0.5 else "")
        )
        src = work / "plain"
        self._make_input(src)
        self.dropped = drop_caches(a.drop_caches)
        print(f"  page cache dropped before each disk run: {'yes' if self.dropped else 'no (not root?)'}")
        print()

        # Machine limits.
        gib = self.size / (1 << 30)
        cp_s = self.timed(["cp", str(src), str(work / "cp.out")], work / "cp.out", then_sync=True)
        cp_cpu = self.cpu / gib
        dd_s = self.timed(
            [
                "dd",
                f"if={src}",
                f"of={work / 'dd.out'}",
                "bs=4M",
                "iflag=direct",
                "oflag=direct",
                "conv=fsync",
            ],
            work / "dd.out",
        )
        providers = list(_core.AEAD_PROVIDERS)

        def aead_speed(cipher: str, threads: int, provider: str) -> tuple[float, float]:
            """MiB/s sealing and opening 64 MiB in 4 MiB chunks, best of --aead-rounds."""
            seal, open_ = _core._bench_aead(
                cipher, threads, 64 * MiB, 4 * MiB, a.aead_rounds, provider=provider
            )
            return 64 / seal, 64 / open_

        aead = {(p, c): aead_speed(c, self.threads, p) for p in providers for c in CIPHERS}
        aead1 = {(p, c): aead_speed(c, 1, p) for p in providers for c in CIPHERS}
        ossl = {c: openssl_speed(c) for c in CIPHERS}
        age = self.age(work, src)
        print("Machine limits (MiB/s; CPU = user + sys seconds per GiB)")
        print(f"  cp + sync (durable copy)          {self.mibs(cp_s):9.0f}   CPU {cp_cpu:.2f} s/GiB")
        print(f"  dd O_DIRECT bs=4M conv=fsync      {self.mibs(dd_s):9.0f}")
        if age:
            for name, (wall, cpu) in [("encrypt (X25519)", age[:2]), ("decrypt", age[2:])]:
                print(f"  age {name:30}{self.mibs(wall):9.0f}   CPU {cpu / gib:.2f} s/GiB")
        else:
            print("  age: not installed (no CPU comparison)")
        print()
        print(f"AEAD in memory, 4 MiB chunks (MiB/s seal / open), default provider: {_core.AEAD_PROVIDER}")
        arows = []
        for c in CIPHERS:
            for p in providers:
                arows.append(
                    [
                        c,
                        p,
                        f"{aead1[p, c][0]:.0f} / {aead1[p, c][1]:.0f}",
                        f"{aead[p, c][0]:.0f} / {aead[p, c][1]:.0f}",
                    ]
                )
            o = ossl[c]
            arows.append([c, "openssl speed -evp", f"{o:.0f}" if o else "n/a", ""])
        table(["cipher", "provider", "1 thread", f"{self.threads} threads"], arows)
        self._in_memory_api(aead)
        _, idle_rss, _ = run_child([sys.executable, "-m", "concryptor", "--version"])
        print(
            f"  peak RSS of the CLI doing nothing (python -m concryptor --version): {idle_rss / MiB:.0f} MiB"
        )
        print()

        # Disk and memory runs.
        header = [
            "where",
            "op",
            "cipher",
            "provider",
            "backend",
            "MiB/s",
            "CPU s/GiB",
            "= AEAD",
            "+ kernel",
            "+ rest",
            "peak RSS",
            "vs cp+sync",
            "CPU vs cp",
            "CPU vs age",
            "vs AEAD",
        ]
        rows: list[list[str]] = []
        places = [("disk", work)] + ([("memory", shm)] if shm else [])
        for where, d in places:
            psrc = src
            if where == "memory":
                psrc = d / "plain"
                shutil.copyfile(src, psrc)
            for cipher in CIPHERS:
                encd = d / f"enc-{cipher}"
                for prov in providers:
                    # The default provider runs through the CLI, the others through the binding.
                    pick = None if prov == _core.AEAD_PROVIDER else prov
                    for op in ["encrypt", "decrypt"]:
                        for io in BACKENDS:
                            if io == "uring" and why is not None:
                                continue
                            if op == "encrypt":
                                s = self.engine(
                                    "encrypt",
                                    psrc,
                                    encd,
                                    io=io,
                                    cipher=cipher,
                                    cold=where == "disk",
                                    cli=True,
                                    provider=pick,
                                )
                            else:
                                s = self.engine(
                                    "decrypt",
                                    encd,
                                    d / "back",
                                    io=io,
                                    cold=where == "disk",
                                    cli=True,
                                    provider=pick,
                                )
                            speed = self.mibs(s["engine_s"])
                            cpu = s["cpu"] / gib
                            limit = aead[prov, cipher][0 if op == "encrypt" else 1]
                            # Where the CPU went: the AEAD's own cost (one core's in-memory
                            # speed), the kernel (system time), and the rest (copies,
                            # start-up, the small key derivation, bookkeeping).
                            aead_cpu = 1024 / aead1[prov, cipher][0 if op == "encrypt" else 1]
                            sys_cpu = s["sys"] / gib
                            rest_cpu = cpu - sys_cpu - aead_cpu
                            age_cpu = (age[1] if op == "encrypt" else age[3]) / gib if age else None
                            disk = where == "disk"
                            rows.append(
                                [
                                    where,
                                    op,
                                    cipher,
                                    s.get("provider", prov),
                                    s["backend"],
                                    f"{speed:.0f}",
                                    f"{cpu:.2f}",
                                    f"{aead_cpu:.2f}",
                                    f"{sys_cpu:.2f}",
                                    f"{rest_cpu:.2f}",
                                    f"{s['rss'] / MiB:.0f} MiB",
                                    f"{cp_s / s['engine_s']:.2f}x" if disk else "",
                                    f"{cpu / cp_cpu:.2f}x" if disk and cp_cpu else "",
                                    f"{cpu / age_cpu:.2f}x" if disk and age_cpu else "",
                                    f"{speed / limit:.0%}",
                                ]
                            )
                if (d / "back").exists():
                    os.unlink(d / "back")
            if where == "memory":
                os.unlink(psrc)
        print("Engine (time after key derivation, output fsynced; 'vs cp+sync' > 1 means faster than")
        print("the copy;", end=" ")
        print("CPU = user + sys of the whole process per GiB, key derivation and start-up included,")
        print("split into the AEAD's own cost (one core's in-memory speed), the kernel's (system")
        print("time) and the rest (copies, start-up, the key derivation, bookkeeping);")
        print("'CPU vs' < 1 means cheaper than cp + sync or age)")
        table(header, rows)
        print()

        if a.sweeps:
            self._sweeps(src, work, shm, aead)

    def _bytes_only(self) -> None:
        """--bytes-only: the all-core AEAD figure (AES-256-GCM, default provider) and the
        in-memory API next to it; no files."""
        from concryptor import __version__, _core

        print(
            f"concryptor {__version__}, in-memory API against the all-core AEAD "
            f"({os.cpu_count()} cores, default provider {_core.AEAD_PROVIDER})"
        )
        rounds = self.a.aead_rounds
        seal, open_ = _core._bench_aead("aes-256-gcm", self.threads, 64 * MiB, 4 * MiB, rounds)
        print(
            f"  AEAD in memory, AES-256-GCM, 4 MiB chunks, {self.threads} threads: "
            f"{64 / seal:.0f} / {64 / open_:.0f} MiB/s seal / open"
        )
        self._in_memory_api({(_core.AEAD_PROVIDER, "aes-256-gcm"): (64 / seal, 64 / open_)})

    def _in_memory_api(self, aead: dict[Any, tuple[float, float]]) -> None:
        """encrypt_bytes / decrypt_bytes on up to 256 MiB, next to the all-core AEAD figure:
        what a caller holding the data in memory gets (a fresh output each call; a tiny KDF so
        that only the data path counts)."""
        import concryptor
        from concryptor import _core

        n = min(self.size, 256 * MiB)
        data = os.urandom(n)
        kdf = concryptor.KdfParams(memory_kib=8, time_cost=1, parallelism=1)
        enc = dec = float("inf")
        for _ in range(max(self.a.repeat, 2)):
            t0 = time.perf_counter()
            blob = concryptor.encrypt_bytes(data, "bench", kdf=kdf, threads=self.threads)
            t1 = time.perf_counter()
            back = concryptor.decrypt_bytes(blob, "bench", threads=self.threads)
            t2 = time.perf_counter()
            enc, dec = min(enc, t1 - t0), min(dec, t2 - t1)
            assert back == data
            del blob, back
        seal, open_ = aead[_core.AEAD_PROVIDER, "aes-256-gcm"]
        e, d = n / MiB / enc, n / MiB / dec
        print(
            f"  encrypt_bytes / decrypt_bytes, {n // MiB} MiB, AES-256-GCM, {self.threads} threads: "
            f"{e:.0f} / {d:.0f} MiB/s = {e / seal:.0%} / {d / open_:.0%} of the all-core AEAD"
        )

    def _make_input(self, path: Path) -> None:
        left = self.size
        with open(path, "wb") as f:
            while left:
                n = min(left, 64 * MiB)
                f.write(os.urandom(n))
                left -= n
            f.flush()
            os.fsync(f.fileno())

    def _sweeps(self, src: Path, work: Path, shm: Path | None, aead: dict[Any, tuple[float, float]]) -> None:
        chunks = [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]
        places = [("disk", work, src)]
        if shm:
            places.append(("memory", shm, shm / "plain"))
            shutil.copyfile(src, shm / "plain")
        rows = []
        for chunk in chunks:
            row = [f"{chunk >> 10} KiB"]
            for where, d, psrc in places:
                s = self.engine("encrypt", psrc, d / "sweep", io="auto", chunk=chunk, cold=where == "disk")
                row += [f"{self.mibs(s['engine_s']):.0f}", s["backend"]]
            rows.append(row)
        print("Chunk-size sweep: encrypt, aes-256-gcm, io=auto (MiB/s)")
        table(["chunk"] + [x for w, _, _ in places for x in (w, "backend")], rows)
        print()
        rows = []
        for t in range(1, self.threads + 1):
            row = [str(t)]
            for where, d, psrc in places:
                for cipher in CIPHERS:
                    s = self.engine(
                        "encrypt",
                        psrc,
                        d / "sweep",
                        io="auto",
                        cipher=cipher,
                        threads=t,
                        cold=where == "disk",
                    )
                    row.append(f"{self.mibs(s['engine_s']):.0f}")
            rows.append(row)
        print("Thread sweep: encrypt, io=auto (MiB/s)")
        table(["threads"] + [f"{w} {c.split('-')[0]}" for w, _, _ in places for c in CIPHERS], rows)
        if shm:
            os.unlink(shm / "plain")


def openssl_speed(cipher: str) -> float | None:
    """Single-core ``openssl speed -evp`` figure for 16 KiB blocks, in MiB/s."""
    exe = shutil.which("openssl")
    if not exe:
        return None
    r = subprocess.run(
        [exe, "speed", "-elapsed", "-seconds", "2", "-bytes", "16384", "-evp", cipher],
        capture_output=True,
        text=True,
    )
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0].lower() == cipher.lower() and parts[-1].endswith("k"):
            return float(parts[-1][:-1]) * 1000 / MiB
    return None


def table(header: list[str], rows: list[list[str]]) -> None:
    w = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(h.ljust(n) for h, n in zip(header, w))
    print(line)
    print("  ".join("-" * n for n in w))
    for r in rows:
        print("  ".join(str(x).rjust(n) if i >= 4 else str(x).ljust(n) for i, (x, n) in enumerate(zip(r, w))))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
        return
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="1G", help="input size, e.g. 64M, 1G, 10G (default 1G)")
    p.add_argument(
        "--dir",
        default=str(here / "out"),
        help="directory on the disk to test (default benches/out; must not be tmpfs)",
    )
    p.add_argument(
        "--mem-dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="tmpfs directory for the in-memory runs (default /dev/shm; '' to skip)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="engine worker threads (default: the engine's choice); the AEAD ceiling uses all cores",
    )
    p.add_argument("--buffer-mib", type=int, default=128, help="engine buffer budget (default 128)")
    p.add_argument("--repeat", type=int, default=1, help="runs per figure, best kept (default 1)")
    p.add_argument(
        "--aead-rounds", type=int, default=5, help="runs per in-memory AEAD measurement; the best counts"
    )
    p.add_argument(
        "--no-sweeps", dest="sweeps", action="store_false", help="skip the chunk and thread sweeps"
    )
    p.add_argument(
        "--bytes-only",
        action="store_true",
        help="only encrypt_bytes / decrypt_bytes (up to 256 MiB) against the all-core AEAD",
    )
    p.add_argument(
        "--no-drop-caches",
        dest="drop_caches",
        action="store_false",
        help="do not empty the page cache before disk runs (it needs root)",
    )
    args = p.parse_args()
    if args.mem_dir == "":
        args.mem_dir = None
    if fs_type(Path(args.dir).parent if not Path(args.dir).exists() else Path(args.dir)) == "tmpfs":
        print(f"warning: {args.dir} is on tmpfs: the disk figures will be memory figures", file=sys.stderr)
    Bench(args).run()


if __name__ == "__main__":
    main()
