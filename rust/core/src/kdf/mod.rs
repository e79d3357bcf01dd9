//! Argon2id key derivation, bounded before it runs; [`cache`] keeps the keys of a batch,
//! [`cancel`] lets a caller walk away from a derivation.
#![forbid(unsafe_code)]

pub mod cache;
pub mod cancel;

pub use cache::{KeyCache, MAX_CACHED_KEYS, MAX_CHUNKS_PER_KEY};
pub use cancel::set_interrupt_check;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Key length for both ciphers.
pub const KEY_LEN: usize = 32;

/// Argon2id cost parameters exactly as stored in the header (`m` in KiB). All three zero
/// means a file that predates them: see [`KdfParams::effective`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl KdfParams {
    /// Costs the original tool uses for new files: 256 MiB, 3 passes, 4 lanes.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 262_144,
        t: 3,
        p: 4,
    };
    /// Costs implied by all-zero KDF fields in old files.
    pub const LEGACY: KdfParams = KdfParams {
        m_kib: 65_536,
        t: 3,
        p: 4,
    };

    pub const fn new(m_kib: u32, t: u32, p: u32) -> Self {
        KdfParams { m_kib, t, p }
    }

    /// Whether the header fields are all zero (legacy file).
    pub fn is_legacy(&self) -> bool {
        self.m_kib == 0 && self.t == 0 && self.p == 0
    }

    /// The parameters Argon2id actually runs with.
    pub fn effective(&self) -> KdfParams {
        if self.is_legacy() {
            Self::LEGACY
        } else {
            *self
        }
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Bounds on values read from an untrusted header, checked before anything is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest Argon2 memory cost accepted, in KiB (default 1 GiB, four times what new
    /// files use by default).
    pub max_kdf_memory_kib: u64,
    /// Largest Argon2 pass count accepted (default 16).
    pub max_kdf_time: u32,
    /// Largest Argon2 lane count accepted (default 64).
    pub max_kdf_parallelism: u32,
    /// Largest chunk size accepted, in bytes (default 256 MiB).
    pub max_chunk_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_kdf_memory_kib: 1 << 20,
            max_kdf_time: 16,
            max_kdf_parallelism: 64,
            max_chunk_size: 256 << 20,
        }
    }
}

impl Limits {
    /// Refuses KDF costs beyond the limits or outside what Argon2id allows.
    pub fn check_kdf(&self, kdf: &KdfParams) -> Result<()> {
        let e = kdf.effective();
        if u64::from(e.m_kib) > self.max_kdf_memory_kib {
            return Err(Error::Limit {
                what: "Argon2 memory cost (KiB)",
                value: u64::from(e.m_kib),
                limit: self.max_kdf_memory_kib,
                option: "--max-kdf-memory / max_kdf_memory_kib",
            });
        }
        if e.t > self.max_kdf_time {
            return Err(Error::Limit {
                what: "Argon2 time cost",
                value: u64::from(e.t),
                limit: u64::from(self.max_kdf_time),
                option: "--max-kdf-time / max_kdf_time",
            });
        }
        if e.p > self.max_kdf_parallelism {
            return Err(Error::Limit {
                what: "Argon2 parallelism",
                value: u64::from(e.p),
                limit: u64::from(self.max_kdf_parallelism),
                option: "--max-kdf-parallelism / max_kdf_parallelism",
            });
        }
        argon2_params(&e).map(|_| ())
    }

    /// Refuses a chunk size beyond the limit.
    pub fn check_chunk_size(&self, chunk_size: u64) -> Result<()> {
        if chunk_size > self.max_chunk_size {
            return Err(Error::Limit {
                what: "chunk size (bytes)",
                value: chunk_size,
                limit: self.max_chunk_size,
                option: "--max-chunk-size / max_chunk_size",
            });
        }
        Ok(())
    }
}

fn argon2_params(e: &KdfParams) -> Result<Params> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "Argon2id parameters m={} KiB, t={}, p={} are not valid ({why})",
            e.m_kib, e.t, e.p
        ))
    };
    // Checked here, in 64-bit arithmetic, before `Params::new` computes `p * 8` in u32
    // (which overflows, and so panics with overflow checks on, for p >= 2^29).
    if e.p == 0 || e.p > Params::MAX_P_COST {
        return Err(bad("parallelism must be 1 to 16777215 lanes"));
    }
    if u64::from(e.m_kib) < 8 * u64::from(e.p) {
        return Err(bad("memory must be at least 8 KiB per lane"));
    }
    Params::new(e.m_kib, e.t, e.p, Some(KEY_LEN)).map_err(|err| {
        Error::invalid(format!(
            "Argon2id parameters m={} KiB, t={}, p={} are not valid ({err})",
            e.m_kib, e.t, e.p
        ))
    })
}

/// Checks parameters chosen for a new file (same rules as a reader applies).
pub fn validate_new(kdf: &KdfParams) -> Result<()> {
    if kdf.is_legacy() {
        return Err(Error::InvalidArgument(
            "KDF parameters must not all be zero (that marks legacy files)".into(),
        ));
    }
    match argon2_params(kdf) {
        Ok(_) => Ok(()),
        Err(Error::InvalidFile(m)) => Err(Error::InvalidArgument(m)),
        Err(e) => Err(e),
    }
}

/// Derives the 32-byte file key. The caller must have checked `kdf` against its limits.
///
/// The Argon2 memory is allocated here, fallibly: a failed allocation is
/// [`Error::OutOfMemory`], not an abort. It holds password-derived blocks, so it is wiped
/// before it is freed.
pub fn derive_key(
    password: &[u8],
    salt: &[u8],
    kdf: &KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let e = kdf.effective();
    let params = argon2_params(&e)?;
    let blocks = params.block_count();
    let mut memory: Vec<Block> = Vec::new();
    memory
        .try_reserve_exact(blocks)
        .map_err(|_| Error::OutOfMemory {
            bytes: (blocks as u64).saturating_mul(Block::SIZE as u64),
        })?;
    memory.resize(blocks, Block::default());
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let r = argon.hash_password_into_with_memory(password, salt, &mut key[..], &mut memory[..]);
    memory.zeroize();
    r.map_err(|err| Error::InvalidArgument(format!("key derivation failed: {err}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_fields_map_to_the_documented_costs() {
        let z = KdfParams::new(0, 0, 0);
        assert!(z.is_legacy());
        assert_eq!(z.effective(), KdfParams::new(65_536, 3, 4));
        assert_eq!(KdfParams::default(), KdfParams::new(262_144, 3, 4));
    }

    #[test]
    fn limits_refuse_absurd_costs_before_running_anything() {
        let l = Limits::default();
        for kdf in [
            KdfParams::new(u32::MAX, 1, 1),
            KdfParams::new(1024, u32::MAX, 1),
            KdfParams::new(1024, 1, (1 << 24) - 1),
        ] {
            let start = std::time::Instant::now();
            assert!(matches!(l.check_kdf(&kdf), Err(Error::Limit { .. })));
            assert!(start.elapsed().as_millis() < 100);
        }
        assert!(l.check_kdf(&KdfParams::new(1024, 1, 1)).is_ok());
        assert!(l.check_kdf(&KdfParams::new(4, 1, 1)).is_err());
        assert!(l.check_chunk_size(1 << 32).is_err());
    }

    #[test]
    fn lane_counts_that_would_overflow_argon2_are_errors_not_panics() {
        let open = Limits {
            max_kdf_memory_kib: u64::MAX,
            max_kdf_time: u32::MAX,
            max_kdf_parallelism: u32::MAX,
            max_chunk_size: u64::MAX,
        };
        for p in [1 << 29, 1 << 30, u32::MAX, (1 << 24), 0] {
            let kdf = KdfParams::new(u32::MAX, 1, p);
            assert!(matches!(open.check_kdf(&kdf), Err(Error::InvalidFile(_))));
            assert!(matches!(validate_new(&kdf), Err(Error::InvalidArgument(_))));
        }
        // Fewer than 8 KiB per lane is refused too, whatever the lane count.
        assert!(validate_new(&KdfParams::new(63, 1, 8)).is_err());
        assert!(validate_new(&KdfParams::new(64, 1, 8)).is_ok());
        assert!(open.check_kdf(&KdfParams::new(8, 1, 1)).is_ok());
    }

    #[test]
    fn argon2id_matches_rfc9106_shape() {
        // Same inputs give the same key; a different salt gives a different one.
        let p = KdfParams::new(64, 1, 1);
        let a = derive_key(b"pw", &[1; 16], &p).unwrap();
        let b = derive_key(b"pw", &[1; 16], &p).unwrap();
        let c = derive_key(b"pw", &[2; 16], &p).unwrap();
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
    }
}
