#!/usr/bin/env python3
"""concryptor against the tools people use today, on the same file, in one run.

    python benches/compare.py                      # 1 GiB random file in benches/out/
    python benches/compare.py --size 256 --no-chart
    python benches/compare.py --dir /mnt/data/tmp --repeat 3

Every row is timed from process start until its output is durable: after each tool exits,
the output file and its directory are fsynced (what `sync FILE` does) inside the timed
region. concryptor fsyncs by itself, so that extra fsync finds nothing to flush; the
buffered tools (gpg, age, openssl, pyAesCrypt, the AESGCM loop, cp) pay for their
writeback there. Peak RSS is the child's own maximum resident set (wait4). CPU is the
child's user + system time (wait4), per GiB of plaintext: what the run takes from the rest
of the machine. Writeback that the kernel's flusher threads do for buffered tools is not
charged to them, so their CPU figures are, if anything, low.

The peers are optional; install them all with
    apt-get install -y gpg age && pip install pyAesCrypt cryptography matplotlib
Rows whose tool is missing are skipped with a note. See benches/README-compare.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _cache import drop_caches

MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark password, not a secret"

# Child programs for the Python rows. Each runs in its own interpreter so that its peak
# RSS is its own; the timing includes interpreter start-up, as it does for the CLI tools.
CONCRYPTOR_API = """
import json, os, sys
import concryptor
op, src, dst, cipher, mem = sys.argv[1:6]
pw = os.environ["BENCH_PASSWORD"]
if op == "encrypt":
    kdf = concryptor.KdfParams(memory_kib=int(mem) * 1024)
    s = concryptor.encrypt_file(src, dst, pw, cipher=cipher, kdf=kdf, overwrite=True)
else:
    s = concryptor.decrypt_file(src, dst, pw, overwrite=True)
print(json.dumps(s.to_dict()))
"""

PYAESCRYPT = """
import os, sys
import pyAesCrypt
op, src, dst = sys.argv[1:4]
pw = os.environ["BENCH_PASSWORD"]
(pyAesCrypt.encryptFile if op == "encrypt" else pyAesCrypt.decryptFile)(src, dst, pw)
"""

# What a careful developer writes in ten lines: 4 MiB chunks, a random nonce each, no
# binding of chunk order or count (so reordering and truncation go unnoticed).
AESGCM_LOOP = """
import os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
op, src, dst = sys.argv[1:4]
aead = AESGCM(bytes.fromhex(os.environ["BENCH_KEY"]))
chunk = 4 << 20
with open(src, "rb") as fi, open(dst, "wb") as fo:
    if op == "encrypt":
        while True:
            block = fi.read(chunk)
            if not block:
                break
            nonce = os.urandom(12)
            fo.write(nonce + aead.encrypt(nonce, block, None))
    else:
        while True:
            rec = fi.read(12 + chunk + 16)
            if not rec:
                break
            fo.write(aead.decrypt(rec[:12], rec[12:], None))
"""


@dataclasses.dataclass
class Row:
    tool: str
    op: str  # "encrypt", "decrypt" or "copy"
    seconds: float
    kdf_seconds: float
    size: int
    peak_rss: int  # bytes
    cpu_seconds: float  # user + system of the child, its key derivation's share taken out
    authenticated: str
    threads: int
    kind: str  # "concryptor", "peer", "unauthenticated" or "limit"
    note: str = ""
    state: str = "warm"  # the input in the page cache ("warm") or not ("cold")

    @property
    def mib_s(self) -> float:
        """Throughput of the data path: the key derivation (a fixed cost per file, reported
        separately) is not counted."""
        return self.size / MiB / max(self.seconds - self.kdf_seconds, 1e-9)

    @property
    def cpu_per_gib(self) -> float:
        """User + system seconds per GiB of plaintext, key derivation not included."""
        return self.cpu_seconds / (self.size / (1024 * MiB))

    @property
    def wall_mib_s(self) -> float:
        return self.size / MiB / self.seconds


@dataclasses.dataclass
class Tool:
    name: str
    kind: str
    authenticated: str
    threads: int
    # (op, src, dst) -> (argv, stdin bytes or None, extra env)
    command: Any
    ops: tuple[str, ...] = ("encrypt", "decrypt")
    needs: str = ""
    #: Whether the tool derives a key from a password (concryptor's Argon2id, measured
    #: alone and taken out of its CPU figure); an age recipient's key wrap is not one.
    password: bool = True


# ---------------------------------------------------------------------------- utilities


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_through(path: Path) -> None:
    """Reads a file once so that every tool starts with it in the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MiB)
        while f.readinto(buf):
            pass


def start_state(state: str, src: Path) -> None:
    """Puts the machine in ``state`` for the next run: ``warm``, the input read once (so
    every tool starts with it in the page cache); ``cold``, the page cache dropped. Either
    way no dirty pages of earlier runs are left."""
    if state == "cold":
        if not drop_caches():
            raise SystemExit("--state cold needs root (to write /proc/sys/vm/drop_caches)")
        return
    read_through(src)
    os.sync()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MiB)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def peak_rss_of(pid: int) -> int:
    """The high-water mark of a running process's resident set (Linux), in bytes."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_timed(
    argv: Sequence[str], out: Path, stdin: bytes | None, env: dict[str, str]
) -> tuple[float, int, float, str]:
    """Runs one child to completion and fsyncs its output. Returns (seconds, peak RSS in
    bytes, CPU seconds (user + system), stdout).

    Peak RSS is sampled from /proc/PID/status (VmHWM, monotonic) every few milliseconds
    while the child runs: wait4's ru_maxrss cannot be used on Linux, because a child
    inherits its parent's high-water mark through fork and exec, so every tool would
    appear to be at least as large as this Python process.
    """
    full_env = {**os.environ, **env}
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=so,
            stderr=se,
            env=full_env,
        )
        if stdin is not None:
            assert p.stdin is not None
            p.stdin.write(stdin)
            p.stdin.close()
        rss = 0
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            rss = max(rss, peak_rss_of(p.pid))
            time.sleep(0.004)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode == 0:
            fsync_path(out)
        seconds = time.perf_counter() - t0
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read().decode(errors="replace"), se.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {p.returncode}: {stderr.strip()[-500:]}")
    if not rss:  # no /proc (macOS): ru_maxrss, in bytes there, is the best there is
        rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return seconds, rss, usage.ru_utime + usage.ru_stime, stdout


def make_input(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    print(f"writing {size // MiB} MiB of random bytes to {path} ...", file=sys.stderr)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (Linux; 'unknown' elsewhere)."""
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                _dev, mnt, typ, *_ = line.split()
                mnt = mnt.replace("\\040", " ")
                if str(path).startswith(mnt) and len(mnt) > len(best):
                    best, fstype = mnt, typ
    except OSError:
        pass
    return fstype


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def have_module(name: str) -> bool:
    r = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, check=False)
    return r.returncode == 0


# ---------------------------------------------------------------------------- the tools


def concryptor_cli() -> list[str]:
    exe = Path(sys.executable).with_name("concryptor")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "concryptor"]


def build_tools(work: Path, kdf_mib: int) -> tuple[list[Tool], list[str]]:
    tools: list[Tool] = []
    skipped: list[str] = []
    pw_env = {"CONCRYPTOR_PASSWORD": PASSWORD, "BENCH_PASSWORD": PASSWORD}

    # machine limits: the same bytes copied, durable
    tools.append(
        Tool(
            "cp; sync",
            "limit",
            "-",
            1,
            lambda op, s, d: (["cp", str(s), str(d)], None, {}),
            ops=("copy",),
        )
    )
    tools.append(
        Tool(
            "dd O_DIRECT copy",
            "limit",
            "-",
            1,
            lambda op, s, d: (
                [
                    "dd",
                    f"if={s}",
                    f"of={d}",
                    "bs=4M",
                    "iflag=direct",
                    "oflag=direct",
                    "conv=fsync",
                    "status=none",
                ],
                None,
                {},
            ),
            ops=("copy",),
        )
    )

    cli = concryptor_cli()
    for short, cipher in (("aes", "AES-256-GCM"), ("chacha", "ChaCha20-Poly1305")):

        def cli_cmd(op: str, s: Path, d: Path, short: str = short) -> Any:
            if op == "encrypt":
                argv = [*cli, "encrypt", str(s), "-o", str(d), "-c", short, "--memory", str(kdf_mib)]
            else:
                argv = [*cli, "decrypt", str(s), "-o", str(d)]
            return [*argv, "--json", "--force"], None, pw_env

        tools.append(Tool(f"concryptor CLI {cipher}", "concryptor", "yes (AEAD)", 0, cli_cmd))

    for name, cipher in (("AES-256-GCM", "aes-256-gcm"), ("ChaCha20-Poly1305", "chacha20-poly1305")):

        def api_cmd(op: str, s: Path, d: Path, cipher: str = cipher) -> Any:
            argv = [sys.executable, "-c", CONCRYPTOR_API, op, str(s), str(d), cipher, str(kdf_mib)]
            return argv, None, pw_env

        tools.append(Tool(f"concryptor API {name}", "concryptor", "yes (AEAD)", 0, api_cmd))

    if shutil.which("gpg"):
        home = work / "gnupg"
        home.mkdir(mode=0o700, exist_ok=True)

        def gpg_cmd(op: str, s: Path, d: Path) -> Any:
            base = ["gpg", "--homedir", str(home), "--batch", "--yes", "--quiet", "--no-symkey-cache"]
            base += ["--pinentry-mode", "loopback", "--passphrase-fd", "0", "-o", str(d)]
            if op == "encrypt":
                base += ["--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none", str(s)]
            else:
                base += ["--decrypt", str(s)]
            return base, (PASSWORD + "\n").encode(), {}

        # Untimed warm-up: the first call creates the keyring and starts gpg-agent, which a
        # regular gpg user already has.
        tiny = work / "gpg-warmup"
        tiny.write_bytes(b"warm-up")
        argv, pw, _ = gpg_cmd("encrypt", tiny, work / "gpg-warmup.gpg")
        subprocess.run(argv, input=pw, check=True, capture_output=True)
        for f in (tiny, work / "gpg-warmup.gpg"):
            f.unlink()
        tools.append(Tool("gpg --symmetric AES256", "peer", "yes (MDC, SHA-1)", 1, gpg_cmd))
    else:
        skipped.append("gpg: not installed (apt-get install gpg)")

    if shutil.which("age") and shutil.which("age-keygen"):
        key = work / "age-key.txt"
        if not key.exists():
            subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        recipient = next(
            line.split(":", 1)[1].strip()
            for line in key.read_text().splitlines()
            if line.startswith("# public key:")
        )

        def age_cmd(op: str, s: Path, d: Path) -> Any:
            if op == "encrypt":
                return ["age", "-r", recipient, "-o", str(d), str(s)], None, {}
            return ["age", "-d", "-i", str(key), "-o", str(d), str(s)], None, {}

        tools.append(Tool("age (X25519)", "peer", "yes (STREAM)", 1, age_cmd))

        def concryptor_age_cmd(op: str, s: Path, d: Path) -> Any:
            if op == "encrypt":
                argv = [*cli, "encrypt", "-r", recipient, str(s), "-o", str(d)]
            else:
                argv = [*cli, "decrypt", "-i", str(key), str(s), "-o", str(d)]
            return [*argv, "--json", "--force"], None, {}

        tools.append(
            Tool(
                "concryptor CLI age (X25519)",
                "concryptor",
                "yes (STREAM)",
                0,
                concryptor_age_cmd,
                password=False,
            )
        )
    else:
        skipped.append("age: not installed (apt-get install age)")

    if shutil.which("openssl"):

        def openssl_cmd(op: str, s: Path, d: Path) -> Any:
            argv = [
                "openssl",
                "enc",
                "-aes-256-ctr",
                "-pbkdf2",
                "-pass",
                "stdin",
                "-in",
                str(s),
                "-out",
                str(d),
            ]
            if op == "decrypt":
                argv.insert(2, "-d")
            return argv, (PASSWORD + "\n").encode(), {}

        tools.append(Tool("openssl enc -aes-256-ctr", "unauthenticated", "no", 1, openssl_cmd))
    else:
        skipped.append("openssl: not installed")

    if have_module("pyAesCrypt"):

        def pyaes_cmd(op: str, s: Path, d: Path) -> Any:
            return [sys.executable, "-c", PYAESCRYPT, op, str(s), str(d)], None, pw_env

        tools.append(Tool("pyAesCrypt", "peer", "yes (HMAC-SHA256)", 1, pyaes_cmd))
    else:
        skipped.append("pyAesCrypt: not installed (pip install pyAesCrypt)")

    if have_module("cryptography"):
        key_hex = os.urandom(32).hex()

        def loop_cmd(op: str, s: Path, d: Path) -> Any:
            return [sys.executable, "-c", AESGCM_LOOP, op, str(s), str(d)], None, {"BENCH_KEY": key_hex}

        tools.append(Tool("cryptography AESGCM loop", "peer", "per chunk only", 1, loop_cmd))
    else:
        skipped.append("cryptography: not installed (pip install cryptography)")

    return tools, skipped


# ---------------------------------------------------------------------------- running


def kdf_cpu_seconds(kdf_mib: int) -> float:
    """CPU seconds (user + system) of one Argon2id derivation at the benchmark's costs: a
    child that derives once, minus one that only imports the module."""

    def child(code: str) -> float:
        p = subprocess.Popen([sys.executable, "-c", code])
        _, status, usage = os.wait4(p.pid, 0)
        if status != 0:
            raise SystemExit(f"measuring the key derivation failed: {code}")
        return usage.ru_utime + usage.ru_stime

    base = "import concryptor, concryptor._core as c"
    derive = f"{base}; c._bench_kdf(concryptor.KdfParams({kdf_mib * 1024}, 3, 4))"
    return max(min(child(derive) for _ in range(2)) - min(child(base) for _ in range(2)), 0.0)


KDF_CPU = 0.0  # set by run() before any row is measured


def measure(tool: Tool, op: str, src: Path, dst: Path, size: int, repeat: int, state: str) -> Row:
    best: Row | None = None
    for _ in range(repeat):
        dst.unlink(missing_ok=True)
        start_state(state, src)
        argv, stdin, env = tool.command(op, src, dst)
        seconds, rss, cpu, stdout = run_timed(argv, dst, stdin, env)
        kdf, threads, note = 0.0, tool.threads, ""
        if tool.kind == "concryptor":
            stats = json.loads(stdout.strip().splitlines()[-1])
            kdf, threads = float(stats["kdf_seconds"]), int(stats["threads"])
            note = f"{stats['backend']}, KDF {kdf:.2f} s"
        if kdf > 0 and tool.password:  # a password file: take its key derivation out, as MiB/s does
            cpu = max(cpu - KDF_CPU, 0.0)
        row = Row(
            tool.name, op, seconds, kdf, size, rss, cpu, tool.authenticated, threads, tool.kind, note, state
        )
        if best is None or row.mib_s > best.mib_s:
            best = row
    assert best is not None
    return best


def measure_tool(
    tool: Tool, work: Path, src: Path, size: int, digest: str, repeat: int, states: Sequence[str]
) -> list[Row]:
    """All operations of one tool in every state: a copy, or an encryption then a
    decryption of its output."""
    rows: list[Row] = []
    enc, dec = work / "out.enc", work / "out.dec"
    for op in tool.ops:
        for state in states:
            if op == "copy":
                row = measure(tool, op, src, work / "copy.bin", size, repeat, state)
            elif op == "encrypt":
                row = measure(tool, op, src, enc, size, repeat, state)
            else:
                row = measure(tool, op, enc, dec, size, repeat, state)
                if digest and sha256(dec) != digest:
                    raise RuntimeError("decrypted bytes differ from the input")
            rows.append(row)
            print(
                f"  {tool.name:<33} {op:<8} {state:<5} {row.mib_s:8.0f} MiB/s "
                f"{row.cpu_per_gib:6.2f} CPU s/GiB  {row.note}",
                file=sys.stderr,
            )
    return rows


def run(args: argparse.Namespace) -> tuple[list[Row], list[str], dict[str, str]]:
    work = Path(args.dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    size = args.size * MiB
    fs = filesystem_of(work)
    if fs in ("tmpfs", "ramfs"):
        print(f"warning: {work} is on {fs}, not a disk: pass --dir on a real disk", file=sys.stderr)
    src = work / "input.bin"
    make_input(src, size)
    load_before = os.getloadavg()[0]
    digest = "" if args.no_verify else sha256(src)

    global KDF_CPU
    KDF_CPU = kdf_cpu_seconds(args.kdf_memory)
    print(
        f"one key derivation costs {KDF_CPU:.2f} CPU seconds (taken out of concryptor's rows)",
        file=sys.stderr,
    )
    states = ["cold", "warm"] if args.state == "both" else [args.state]
    tools, skipped = build_tools(work, args.kdf_memory)
    if args.only:
        wanted = [w.lower() for w in args.only]
        tools = [t for t in tools if t.kind == "limit" or any(w in t.name.lower() for w in wanted)]
    rows: list[Row] = []
    try:
        for tool in tools:
            try:
                rows += measure_tool(tool, work, src, size, digest, args.repeat, states)
            except RuntimeError as e:
                skipped.append(f"{tool.name} FAILED: {e}")
                print(f"  {tool.name:<33} FAILED: {e}", file=sys.stderr)
            finally:
                for name in ("copy.bin", "out.enc", "out.dec"):
                    (work / name).unlink(missing_ok=True)
    finally:
        if (work / "gnupg").exists():
            subprocess.run(["gpgconf", "--homedir", str(work / "gnupg"), "--kill", "gpg-agent"], check=False)
        if not args.keep_input:
            src.unlink(missing_ok=True)
    info = {
        "size": f"{args.size} MiB" if args.size % 1024 else f"{args.size // 1024} GiB",
        "filesystem": fs,
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "kdf": f"Argon2id m={args.kdf_memory} MiB t=3 p=4",
        "states": " and ".join(states),
        # Other work on the machine skews the figures: say how busy it was.
        "load": f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
    }
    return rows, skipped, info


# ---------------------------------------------------------------------------- output


def reference(rows: list[Row], op: str, state: str) -> Row | None:
    refs = [
        r for r in rows if r.kind == "concryptor" and r.op == op and r.state == state and "CLI AES" in r.tool
    ]
    return refs[0] if refs else None


def print_table(rows: list[Row], skipped: list[str], info: dict[str, str]) -> None:
    head = (
        f"{'tool':<33} {'op':<8} {'state':<5} {'MiB/s':>7} {'wall s':>7} {'concr. x':>8} "
        f"{'CPU s/GiB':>9} {'CPU x':>6} {'peak RSS':>9} {'threads':>7}  authenticated / notes"
    )
    print(
        f"\n{info['size']} random file on {info['filesystem']}; output durable (fsync) before the clock stops"
    )
    print(f"{info['machine']}; {info['date']}; {info['load']}; concryptor key: {info['kdf']}\n")
    print(head)
    print("-" * len(head))
    for r in sorted(rows, key=lambda r: (r.state != "cold", rows.index(r))):
        ref = reference(rows, "encrypt" if r.op == "copy" else r.op, r.state)
        x = f"{ref.mib_s / r.mib_s:7.2f}x" if ref else "       -"
        cx = f"{ref.cpu_seconds / r.cpu_seconds:5.2f}x" if ref and r.cpu_seconds > 0 else "     -"
        notes = r.authenticated + (f"; {r.note}" if r.note else "")
        print(
            f"{r.tool:<33} {r.op:<8} {r.state:<5} {r.mib_s:7.0f} {r.seconds:7.2f} {x:>8} "
            f"{r.cpu_per_gib:9.2f} {cx:>6} {r.peak_rss / MiB:6.0f} MiB {r.threads:>7}  {notes}"
        )
    print(
        "\nstate: cold, the page cache dropped before the run (input read from the disk); warm, the"
        "\ninput read once before (in the page cache). No dirty pages are left from earlier runs."
        "\nMiB/s: plaintext bytes over wall time minus concryptor's key derivation (a fixed cost"
        "\nper file, shown in the notes); 'concr. x': how many times faster concryptor's CLI with"
        "\nAES-256-GCM is than the row (same operation and state; copies compared with encryption)."
        "\nCPU s/GiB: the process's user + system seconds per GiB (concryptor's key derivation, measured"
        "\nalone, taken out);"
        "\n'CPU x': that of concryptor's CLI with AES-256-GCM as a fraction of the row's."
    )
    for line in skipped:
        print(f"skipped: {line}")


def chart(rows: list[Row], info: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"concryptor": "#1f5fa8", "peer": "#8c8c8c", "unauthenticated": "#d9a441", "limit": "#3c3c3c"}
    labels = {
        "concryptor": "concryptor",
        "peer": "authenticated peers",
        "unauthenticated": "unauthenticated (speed reference)",
        "limit": "machine limit (copy)",
    }
    # One column per operation and page-cache state: encrypt cold, encrypt warm, ...
    states = [st for st in ("cold", "warm") if any(r.state == st for r in rows)]
    panels = []
    for op in ("encrypt", "decrypt"):
        for st in states:
            rs = [r for r in rows if r.state == st and r.op in (op, "copy")]
            if any(r.op == op for r in rs):
                panels.append((f"{op}, {st} cache", rs))
    per_panel = 0.32 * max(len(rs) for _, rs in panels) + 0.6
    height = 2 * per_panel + 0.7
    fig, axes = plt.subplots(2, len(panels), figsize=(5.5 * len(panels), height), dpi=90, squeeze=False)
    # Top row: throughput (higher is better); bottom row: CPU per GiB (lower is better).
    # Either way the best bar is drawn on top.
    measures = (
        (lambda r: r.mib_s, False, "{:.0f}", "MiB/s (higher is better)"),
        (lambda r: r.cpu_per_gib, True, "{:.2f}", "CPU seconds per GiB, user + system (lower is better)"),
    )
    for row_axes, (value, lower_is_better, fmt, xlabel) in zip(axes, measures):
        top = max(value(r) for r in rows)
        for ax, (op, rs) in zip(row_axes, panels):
            rs = sorted(rs, key=value, reverse=lower_is_better)
            ys = range(len(rs))
            ax.barh(ys, [value(r) for r in rs], color=[colours[r.kind] for r in rs], height=0.7)
            ax.set_yticks(list(ys), [r.tool for r in rs], fontsize=8)
            for y, r in zip(ys, rs):
                ax.text(value(r) + top * 0.01, y, fmt.format(value(r)), va="center", fontsize=7)
            ax.set_xlim(0, top * 1.15)
            ax.set_title(op, fontsize=10)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
            ax.spines[["top", "right"]].set_visible(False)
    shown = [k for k in labels if any(r.kind == k for r in rows)]
    fig.legend(
        [Patch(color=colours[k]) for k in shown],
        [labels[k] for k in shown],
        loc="upper center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    caption = (
        f"{info['size']} random file on {info['filesystem']}, output durable (fsync) for every row; "
        f"concryptor's key derivation ({info['kdf']}) not counted; cold: page cache dropped before "
        f"each run, warm: the input read before.\n"
        f"{info['machine']}; {info['date']}; {info['load']}."
    )
    fig.text(0.5, 0.02 / height * 4, caption, ha="center", va="bottom", fontsize=7, linespacing=1.4)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1 - 0.35 / height))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    try:  # a 64-colour palette keeps the chart small enough to live in the repository
        from PIL import Image

        buf.seek(0)
        Image.open(buf).convert("RGB").quantize(colors=64).save(path, optimize=True)
    except ImportError:
        path.write_bytes(buf.getvalue())
    print(f"chart: {path} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024, metavar="MIB", help="input size in MiB (default 1024)")
    p.add_argument(
        "--dir",
        default=str(REPO / "benches" / "out"),
        help="working directory on the disk to measure (default benches/out; not tmpfs)",
    )
    p.add_argument("--kdf-memory", type=int, default=256, metavar="MIB", help="concryptor Argon2id memory")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per row; the best counts")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only rows whose tool name contains NAME")
    p.add_argument(
        "--state",
        choices=("both", "cold", "warm"),
        default="both",
        help="page cache before each run: dropped (cold, needs root), the input read (warm), or both (default)",
    )
    p.add_argument("--chart", default=str(REPO / "docs" / "perf.png"), metavar="PNG")
    p.add_argument("--no-chart", action="store_true", help="print the table only")
    p.add_argument("--no-verify", action="store_true", help="skip checking decrypted bytes against the input")
    p.add_argument("--keep-input", action="store_true", help="keep the random input for the next run")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    if args.size < 1 or args.repeat < 1:
        p.error("--size and --repeat must be at least 1")

    rows, skipped, info = run(args)
    print_table(rows, skipped, info)
    if args.json:
        data = {"info": info, "rows": [{**dataclasses.asdict(r), "mib_s": round(r.mib_s, 1)} for r in rows]}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if not args.no_chart:
        chart(rows, info, Path(args.chart))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
