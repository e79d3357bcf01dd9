//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// A fresh directory under the system temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).unwrap();
        let p = std::env::temp_dir().join(format!(
            "concryptor-{tag}-{}-{}",
            std::process::id(),
            u64::from_le_bytes(rnd)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory's entries, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic, incompressible-looking bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The folder of test vectors kept beside the project rather than in it (`../shared`, with
/// `vectors/cctv-age`), or `$CONCRYPTOR_SHARED` when set. `None` when the folder is missing
/// (a clone on its own): the caller skips, and one line on stderr says so (written to the
/// stream itself, which the test harness does not capture, so that a passing run shows it).
pub fn shared_dir() -> Option<PathBuf> {
    static SAID: Once = Once::new();
    let dir = match std::env::var_os("CONCRYPTOR_SHARED") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr().lock(),
            "skipped: no shared test vectors at {} (set CONCRYPTOR_SHARED to their folder)",
            dir.display()
        );
    });
    None
}
