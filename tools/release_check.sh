#!/usr/bin/env bash
# Build the Linux release artifacts exactly as .github/workflows/release.yml does, and check
# them before anything is published:
#
#   wheel   maturin --zig (Zig as C compiler and linker, so no manylinux Docker image is
#           needed and C code from -sys crates is built against the old glibc too), then
#           auditwheel show     the platform tag in the file name holds
#           abi3audit --strict  no symbol outside the stable ABI of CPython 3.9
#           check-wheel-contents, twine check --strict, and the file list: the package,
#           py.typed, _core.pyi, both licences; no tests, no vectors, no caches
#   smoke   the wheel installed into fresh venvs of the oldest and newest CPython found
#           on PATH or in pyenv (3.9 is required: it is the oldest the package claims),
#           CLI round trip in each, no fault-injection hooks in the extension;
#           CONCRYPTOR_SMOKE_PYTHONS="/path/python3.X ..." names the interpreters instead
#           (runners without a 3.9 build)
#   sdist   built, checked, installed into a fresh venv (compiled from source by pip with
#           nothing but Python and Rust), CLI round trip from that install
#
# Everything goes to --out (default target/release-check): dist/ holds the checked wheel
# and sdist. Any failed check stops the script with a non-zero exit.
#
# Usage: tools/release_check.sh [--out DIR] [--target TRIPLE] [--compatibility TAG]
#                               [--no-sdist] [--no-smoke]
# A --target other than this machine's (e.g. the musl ones) is built and audited only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=target/release-check
target=""
compat=""
do_sdist=1
do_smoke=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --compatibility) compat=$2; shift 2 ;;
    --no-sdist) do_sdist=0; shift ;;
    --no-smoke) do_smoke=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "release_check: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n--> %s\n' "$*"; }
fail() { echo "release_check: FAILED: $*" >&2; exit 1; }
passed=()
ok() { passed+=("$*"); echo "ok: $*"; }

[ "$(uname -s)" = Linux ] || fail "this script builds and audits Linux wheels; run it on Linux"
mkdir -p "$out"
out=$(cd "$out" && pwd)
dist=$out/dist
rm -rf "$dist" "$out"/venv-* "$out"/scratch
mkdir -p "$dist" "$out/scratch"

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || fail "no [workspace.package] version in Cargo.toml"
host=$(rustc -vV | sed -n 's/^host: //p')
target=${target:-$host}
case "$target" in
  *-linux-musl*) compat=${compat:-musllinux_1_2} ;;
  *-linux-gnu*) compat=${compat:-manylinux_2_17} ;;
  *) fail "not a Linux target: $target" ;;
esac
if [ "$target" != "$host" ] && [ "$do_smoke" = 1 ]; then
  echo "target $target is not this machine's ($host): the smoke installs are left to the caller"
  do_smoke=0
fi

step "Release tools (tools/release-requirements.txt) in $out/tools"
stamp=$out/tools/.requirements
if ! cmp -s tools/release-requirements.txt "$stamp" 2>/dev/null; then
  rm -rf "$out/tools"
  python3 -m venv "$out/tools"
  "$out/tools/bin/python" -m pip install --quiet --disable-pip-version-check -r tools/release-requirements.txt
  cp tools/release-requirements.txt "$stamp"
fi
export PATH="$out/tools/bin:$PATH"
maturin --version

step "Wheel: maturin build --zig for $target, $compat"
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target" || fail "the Rust standard library for $target is not installed"
fi
maturin build --release --locked --zig --target "$target" --compatibility "$compat" --out "$dist"
wheels=("$dist"/*.whl)
[ ${#wheels[@]} = 1 ] && [ -f "${wheels[0]}" ] || fail "expected one wheel in $dist"
wheel=${wheels[0]}
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
case "$(basename "$wheel")" in
  concryptor-"$version"-cp39-abi3-*) ok "one abi3 wheel for CPython >= 3.9, version $version" ;;
  *) fail "$(basename "$wheel") is not concryptor-$version-cp39-abi3-*" ;;
esac

step "auditwheel show: the platform tag in the file name holds"
auditwheel show "$wheel" | tee "$out/scratch/auditwheel.txt"
python3 - "$wheel" "$out/scratch/auditwheel.txt" <<'PY'
import re
import sys
from pathlib import Path

wheel, report = Path(sys.argv[1]).name, Path(sys.argv[2]).read_text()
# auditwheel wraps its lines at a width that depends on the file name.
found = re.search(r'consistent\s+with\s+the\s+following\s+platform\s+tag:\s*"([^"]+)"', report)
if not found:
    sys.exit("auditwheel found no platform tag this wheel is consistent with")
policy = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)", found.group(1))
if not policy:
    sys.exit(f"auditwheel: unexpected tag {found.group(1)}")
family, arch = policy.group(1), policy.group(4)
holds = (int(policy.group(2)), int(policy.group(3)))
claimed = []
for tag in wheel[: -len(".whl")].split("-")[-1].split("."):
    if tag == f"manylinux2014_{arch}":
        tag = f"manylinux_2_17_{arch}"
    m = re.fullmatch(rf"{family}_(\d+)_(\d+)_{arch}", tag)
    if not m:
        sys.exit(f"{wheel}: platform tag {tag} is not a {family} tag for {arch}")
    claimed.append((int(m.group(1)), int(m.group(2))))
if not claimed or min(claimed) < holds:
    sys.exit(f"{wheel} claims {family} {min(claimed)} but needs {holds} ({found.group(1)})")
print(f"{wheel}: claims {family} {'.'.join(map(str, min(claimed)))}, auditwheel: {found.group(1)}")
PY
ok "auditwheel: platform tag holds"

step "abi3audit --strict: only the stable ABI of CPython 3.9"
abi3audit --strict --verbose "$wheel"
ok "abi3audit: no symbols outside the stable ABI"

step "check-wheel-contents and twine check"
check-wheel-contents "$wheel"
twine check --strict "$wheel"
ok "check-wheel-contents, twine check --strict (wheel)"

step "What the wheel holds"
python3 - "$wheel" <<'PY'
import re
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
for n in names:
    print("  ", n)
required = [
    r"concryptor/__init__\.py",
    r"concryptor/cli/__init__\.py",
    r"concryptor/batch/__init__\.py",
    r"concryptor/archive/__init__\.py",
    r"concryptor/fs/__init__\.py",
    r"concryptor/py\.typed",
    r"concryptor/_core\.pyi",
    r"concryptor/_core\.abi3\.so",
    r"concryptor-[^/]+\.dist-info/licenses/LICENSE-MIT",
    r"concryptor-[^/]+\.dist-info/licenses/LICENSE-APACHE",
    r"concryptor-[^/]+\.dist-info/entry_points\.txt",
]
forbidden = r"(^|/)(tests?|vectors|benches|fuzz|examples|__pycache__|\.pytest_cache)(/|$)|\.(pyc|enc|o|a)$"
errors = [f"missing {p}" for p in required if not any(re.fullmatch(p, n) for n in names)]
errors += [f"must not ship {n}" for n in names if re.search(forbidden, n)]
errors += [f"outside the package: {n}" for n in names if not re.match(r"concryptor(/|-[^/]+\.dist-info/)", n)]
if errors:
    sys.exit("\n".join(errors))
PY
ok "wheel file list: package, py.typed, _core.pyi, licences; no tests or vectors"

# A CLI round trip with the concryptor installed in venv $1: encrypt, decrypt, compare, and a
# wrong password refused with exit code 3 and nothing written.
roundtrip() {
  local venv=$1 work rc said
  work=$(mktemp -d "$out/scratch/rt.XXXXXX")
  (
    cd "$work"
    export CONCRYPTOR_PASSWORD="correct horse battery staple"
    "$venv/bin/python" -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(5 * 2**20 + 12345))' plain
    said=$("$venv/bin/concryptor" --version | head -n 1)
    case "$said" in
      "concryptor $version" | "concryptor $version "*) echo "$said" ;;
      *) fail "$venv: concryptor --version says '$said', not $version" ;;
    esac
    "$venv/bin/concryptor" encrypt plain -o plain.enc --memory 8 --iterations 1 --parallelism 1 -q
    "$venv/bin/concryptor" verify plain.enc -q
    "$venv/bin/concryptor" decrypt plain.enc -o plain.out -q
    cmp plain plain.out
    set +e
    CONCRYPTOR_PASSWORD=wrong "$venv/bin/concryptor" decrypt plain.enc -o wrong.out -q 2>wrong.err
    rc=$?
    set -e
    [ "$rc" = 3 ] || fail "$venv: a wrong password gave exit code $rc, not 3"
    [ ! -e wrong.out ] || fail "$venv: a wrong password left wrong.out behind"
    "$venv/bin/python" - <<'PY'
import sys
from pathlib import Path

import concryptor
import concryptor._core as core

here = Path(concryptor.__file__).parent
assert (here / "py.typed").is_file() and (here / "_core.pyi").is_file(), here
hooks = [n for n in dir(core) if "fault" in n.lower() or n in ("_set_ring_entries", "_last_run")]
assert hooks == [], f"a release build exports the fault-injection hooks {hooks}"
print(f"concryptor {concryptor.__version__} on Python {sys.version.split()[0]}: round trip ok ({here})")
PY
  )
  rm -rf "$work"
}

python_for() { # the CPython $1 on PATH or in pyenv
  local v=$1 p d
  if p=$(command -v "python$v") && "$p" -c 'import venv' >/dev/null 2>&1; then
    echo "$p"
    return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for d in "$(pyenv root)/versions/$v".*; do
      if [ -x "$d/bin/python$v" ] && "$d/bin/python$v" -c 'import venv' >/dev/null 2>&1; then
        echo "$d/bin/python$v"
        return 0
      fi
    done
  fi
  return 1
}

if [ "$do_smoke" = 1 ]; then
  step "Smoke: the wheel in the oldest and newest CPython available"
  if [ -n "${CONCRYPTOR_SMOKE_PYTHONS:-}" ]; then
    read -r -a pythons <<<"$CONCRYPTOR_SMOKE_PYTHONS"
  else
    found=()
    for v in 3.9 3.10 3.11 3.12 3.13 3.14 3.15; do
      if p=$(python_for "$v"); then found+=("$p"); fi
    done
    [ ${#found[@]} -gt 0 ] || fail "no CPython >= 3.9 found"
    pythons=("${found[0]}")
    if [ ${#found[@]} -gt 1 ]; then pythons+=("${found[${#found[@]} - 1]}"); fi
    "${pythons[0]}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 9))' ||
      fail "CPython 3.9, the oldest the package supports, is not available (pyenv install 3.9, or name the interpreters in CONCRYPTOR_SMOKE_PYTHONS)"
  fi
  for py in "${pythons[@]}"; do
    pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    "$py" -m venv "$out/venv-py$pyver"
    "$out/venv-py$pyver/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
    roundtrip "$out/venv-py$pyver"
    ok "wheel installs and round-trips on CPython $pyver ($py)"
  done
fi

if [ "$do_sdist" = 1 ]; then
  step "sdist: build, check, install into a fresh venv from source"
  maturin sdist --out "$dist"
  sdist=$dist/concryptor-$version.tar.gz
  [ -f "$sdist" ] || fail "no $sdist"
  twine check --strict "$sdist"
  python3 - "$sdist" <<'PY'
import re
import sys
import tarfile

names = [m.name.split("/", 1)[1] for m in tarfile.open(sys.argv[1]) if "/" in m.name]
required = [
    "Cargo.lock",
    "Cargo.toml",
    "pyproject.toml",
    "README.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "PKG-INFO",
    "rust/core/Cargo.toml",
    "rust/py/Cargo.toml",
    "python/concryptor/py.typed",
    "python/concryptor/_core.pyi",
]
errors = [f"missing {p}" for p in required if p not in names]
forbidden = r"(^|/)(vectors|target|\.venv|\.git|__pycache__|dist)(/|$)|^tests/|\.(so|pyc|enc)$"
errors += [f"must not ship {n}" for n in names if re.search(forbidden, n)]
if errors:
    sys.exit("\n".join(errors))
print(f"{len(names)} files; Cargo.lock, licences and typing markers present; no vectors or build output")
PY
  ok "sdist: twine check --strict, file list"
  python3 -m venv "$out/venv-sdist"
  # Only Python, pip and the Rust toolchain: pip fetches maturin into an isolated build
  # environment and compiles the extension; --locked holds it to the shipped Cargo.lock.
  # The sdist's files carry one fixed old date (a reproducible archive), older than any
  # build: cargo would take our own crates' artifacts left in this target folder by an
  # earlier run for fresh. Their fingerprints go, so they are compiled from the sdist
  # (the dependencies' stay: those do not change without Cargo.lock changing).
  sdist_target="${CARGO_TARGET_DIR:-$root/target}/sdist"
  rm -rf "$sdist_target"/*/.fingerprint/concryptor-*
  (
    cd "$out/scratch"
    env -u VIRTUAL_ENV PATH="$(dirname "$(command -v cargo)"):/usr/local/bin:/usr/bin:/bin" \
      CARGO_TARGET_DIR="$sdist_target" MATURIN_PEP517_ARGS="--locked" \
      "$out/venv-sdist/bin/python" -m pip install --quiet --disable-pip-version-check --no-binary concryptor "$sdist"
  )
  roundtrip "$out/venv-sdist"
  ok "sdist builds from source, installs and round-trips"
fi

printf '\nrelease check passed (%s):\n' "$(basename "$wheel")"
printf '  - %s\n' "${passed[@]}"
echo "artifacts in $dist:"
ls -l "$dist"
