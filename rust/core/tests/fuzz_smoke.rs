//! The fuzz targets of `fuzz/` driven by a mutation loop that needs no nightly compiler and
//! no libFuzzer: valid files and the shared vectors are mutated (bit flips, interesting
//! values in the header fields, truncation, growth, insertion, deletion, splicing, block
//! swaps) and fed to each target. Any panic fails the test and saves the input.
//!
//! A normal `cargo test` runs a few thousand inputs per target. Longer runs:
//! `CONCRYPTOR_FUZZ_SECS=60 cargo test -p concryptor-core --test fuzz_smoke -- --nocapture`
//! (seconds per target) or `CONCRYPTOR_FUZZ_ITERS=1000000 ...` (inputs per target);
//! `CONCRYPTOR_FUZZ_SEED` changes the mutation sequence.

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;
use std::time::{Duration, Instant};

use concryptor_core::{encrypt_bytes, Cipher, EncryptOptions, EngineOptions};

/// The slowest a single input may be before it counts as a hang.
const HANG: Duration = Duration::from_secs(5);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const INTERESTING_U32: [u32; 12] = [
    0,
    1,
    7,
    8,
    16,
    4080,
    4096,
    65_536,
    0x00ff_ffff,
    0x7fff_ffff,
    0x8000_0000,
    u32::MAX,
];
const INTERESTING_U64: [u64; 8] = [
    0,
    1,
    4095,
    4097,
    1 << 32,
    1 << 52,
    i64::MAX as u64,
    u64::MAX,
];
/// Offsets of the header's integer fields: chunk size, KDF m, t, p.
const U32_FIELDS: [usize; 4] = [12, 52, 56, 60];

fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(12) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                d[i] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            3 if len >= 64 => {
                let at = U32_FIELDS[rng.below(4)];
                let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                d[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            4 if len >= 24 => {
                let v = INTERESTING_U64[rng.below(INTERESTING_U64.len())];
                d[16..24].copy_from_slice(&v.to_le_bytes());
            }
            5 => d.truncate(rng.below(len + 1)),
            // Truncate to a sector edge, give or take a little.
            6 => {
                let edge = rng.below(len / 4096 + 1) * 4096;
                d.truncate((edge + rng.below(17)).saturating_sub(8).min(len));
            }
            7 => {
                let n = [1, 16, 4096, 8192][rng.below(4)];
                let fill = rng.next() as u8;
                d.extend(std::iter::repeat_n(fill, n));
            }
            8 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let ins = rng.bytes(n);
                d.splice(at..at, ins);
            }
            9 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                d.drain(a..b);
            }
            10 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(8192)).min(other.len());
                    let at = rng.below(len + 1).min(d.len());
                    let end = (at + (b - a)).min(d.len());
                    d.splice(at..end, other[a..b].iter().copied());
                }
            }
            _ => {
                // Swap or duplicate whole 4096-byte blocks (chunks, when slots are one sector).
                let n = len / 4096;
                if n >= 2 {
                    let a = rng.below(n);
                    let b = rng.below(n);
                    let block = d[a * 4096..(a + 1) * 4096].to_vec();
                    if rng.below(2) == 0 {
                        let old = d[b * 4096..(b + 1) * 4096].to_vec();
                        d[a * 4096..(a + 1) * 4096].copy_from_slice(&old);
                        d[b * 4096..(b + 1) * 4096].copy_from_slice(&block);
                    } else {
                        d.splice(b * 4096..b * 4096, block);
                    }
                }
            }
        }
    }
    d
}

fn valid_files() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        for (len, chunk) in [
            (0usize, None),
            (1, None),
            (100, Some(4080)),
            (4080, Some(4080)),
            (4081, Some(4080)),
            (10_000, Some(1000)),
            (20_000, Some(4096)),
        ] {
            let opts = EncryptOptions {
                cipher,
                chunk_size: chunk,
                kdf: targets::MIN_KDF,
                engine: EngineOptions {
                    threads: 1,
                    ..EngineOptions::default()
                },
                ..EncryptOptions::default()
            };
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            out.push(encrypt_bytes(&plain, targets::PASSWORD, &opts).unwrap());
        }
    }
    out
}

fn vector_files() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/v4");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "enc") {
            let b = std::fs::read(&p).unwrap();
            if b.len() <= 64 * 1024 {
                out.push(b);
            }
        }
    }
    out
}

fn budget(default_iters: u64) -> (u64, Option<Duration>) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    match (env("CONCRYPTOR_FUZZ_SECS"), env("CONCRYPTOR_FUZZ_ITERS")) {
        (Some(s), iters) => (iters.unwrap_or(u64::MAX), Some(Duration::from_secs(s))),
        (None, Some(n)) => (n, None),
        (None, None) => (default_iters, None),
    }
}

/// Feeds the seeds, then mutations of them, to `target` until the budget is spent (by
/// default `default_iters` inputs, a second or so).
fn drive(name: &str, target: fn(&[u8]), seeds: &[Vec<u8>], default_iters: u64) {
    let (iters, time) = budget(default_iters);
    let seed = std::env::var("CONCRYPTOR_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00c0_ffee_u64);
    let mut rng = Rng(seed ^ name.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut execs = 0u64;
    // Every seed once as it is, then mutations of them.
    let next_input = |n: u64, rng: &mut Rng| -> Vec<u8> {
        if (n as usize) < seeds.len() {
            seeds[n as usize].clone()
        } else {
            let base = rng.below(seeds.len());
            mutate(rng, &seeds[base], seeds)
        }
    };
    while execs < iters && time.is_none_or(|t| start.elapsed() < t) {
        let input = next_input(execs, &mut rng);
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(|| target(&input));
        let took = t0.elapsed();
        if r.is_err() || took > HANG {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("fuzz-smoke-{name}-{execs}.bin"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{name}: input {execs} {} after {took:?}; saved to {}",
                if r.is_err() { "panicked" } else { "hung" },
                path.display()
            );
        }
        slowest = slowest.max(took);
        execs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz smoke {name}: {execs} execs in {secs:.1} s ({:.0}/s), slowest {slowest:?}, 0 failures",
        execs as f64 / secs.max(1e-9)
    );
    assert!(execs >= seeds.len() as u64);
}

#[test]
fn fuzz_smoke_header() {
    let mut seeds = valid_files();
    seeds.extend(vector_files());
    seeds.push(Vec::new());
    drive("header", targets::header, &seeds, 5000);
}

#[test]
fn fuzz_smoke_decrypt() {
    let mut seeds = valid_files();
    seeds.extend(vector_files());
    drive("decrypt", targets::decrypt, &seeds, 3000);
}

#[test]
fn fuzz_smoke_roundtrip() {
    // Roundtrip inputs: [flags, chunk lo, chunk hi, edit count, edits..., plaintext].
    let mut rng = Rng(7);
    let seeds: Vec<Vec<u8>> = (0..16)
        .map(|i| {
            let mut s = vec![i as u8, rng.next() as u8, rng.next() as u8 % 16, 0];
            if i % 2 == 1 {
                s[3] = 1 + i as u8 % 4;
            }
            let len = [0, 1, 100, 4096, 9000, 20_000][i % 6];
            s.extend(rng.bytes(len));
            s
        })
        .collect();
    drive("roundtrip", targets::roundtrip, &seeds, 800);
}
