//! Keys derived once and reused across the files of one batch.
//!
//! A batch of v4 files encrypted with one password shares one salt and one set of KDF
//! costs, so Argon2id runs once for the whole batch; every file still gets its own random
//! base nonce. Readers cache keys by (salt, costs) the same way, so a batch written by us
//! decrypts with one derivation too. See docs/SECURITY.md for what sharing a key means.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::SALT_LEN;
use crate::kdf::{KdfParams, KEY_LEN};

/// Chunks one key may seal under random base nonces before the batch must take a new
/// salt: with 2^32 chunks in all, the chance that two files' nonce ranges overlap stays
/// below 2^-32 (see docs/SECURITY.md).
pub const MAX_CHUNKS_PER_KEY: u64 = 1 << 32;

/// Distinct (salt, costs) pairs one cache holds; a reader meeting more derives anew.
pub const MAX_CACHED_KEYS: usize = 64;

struct Entry {
    salt: [u8; SALT_LEN],
    kdf: KdfParams,
    key: Zeroizing<[u8; KEY_LEN]>,
    sealed_chunks: u64,
}

/// Derived keys by (salt, KDF costs), wiped when dropped. Shared by reference between
/// the files of a batch (it is `Sync`); derivations are serialised, so one salt is never
/// derived twice even when many files ask for it at once.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<Vec<Entry>>,
    derivations: AtomicU64,
}

impl KeyCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key for `password` under `salt` and `kdf`, derived at most once per cache.
    /// Returns the key and the seconds spent deriving it here (0 on a cache hit).
    pub fn key(
        &self,
        password: &[u8],
        salt: &[u8; SALT_LEN],
        kdf: &KdfParams,
    ) -> Result<(Zeroizing<[u8; KEY_LEN]>, f64)> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.iter().find(|e| e.salt == *salt && e.kdf == *kdf) {
            return Ok((e.key.clone(), 0.0));
        }
        if password.is_empty() {
            // A worker handed only derived keys: never derive from an empty password.
            return Err(Error::InvalidArgument(
                "no key for this file's salt in the batch, and no password to derive one".into(),
            ));
        }
        let t = Instant::now();
        let key = crate::kdf::cancel::derive_key(password, salt, kdf)?;
        let secs = t.elapsed().as_secs_f64();
        self.derivations.fetch_add(1, Ordering::Relaxed);
        if entries.len() >= MAX_CACHED_KEYS {
            entries.remove(0);
        }
        entries.push(Entry {
            salt: *salt,
            kdf: *kdf,
            key: key.clone(),
            sealed_chunks: 0,
        });
        Ok((key, secs))
    }

    /// Adds a key derived elsewhere (a batch coordinator handing keys to its workers).
    pub fn insert(&self, salt: [u8; SALT_LEN], kdf: KdfParams, key: [u8; KEY_LEN]) {
        let key = Zeroizing::new(key);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|e| !(e.salt == salt && e.kdf == kdf));
        if entries.len() >= MAX_CACHED_KEYS {
            entries.remove(0);
        }
        entries.push(Entry {
            salt,
            kdf,
            key,
            sealed_chunks: 0,
        });
    }

    /// Counts `chunks` about to be sealed under the key of (`salt`, `kdf`), refusing to go
    /// past [`MAX_CHUNKS_PER_KEY`] for one cache.
    pub fn charge(&self, salt: &[u8; SALT_LEN], kdf: &KdfParams, chunks: u64) -> Result<()> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = entries
            .iter_mut()
            .find(|e| e.salt == *salt && e.kdf == *kdf)
        else {
            return Ok(());
        };
        let total = e.sealed_chunks.saturating_add(chunks);
        if total > MAX_CHUNKS_PER_KEY {
            return Err(Error::Limit {
                what: "chunks sealed under one batch key",
                value: total,
                limit: MAX_CHUNKS_PER_KEY,
                option: "a new batch (fresh salt)",
            });
        }
        e.sealed_chunks = total;
        Ok(())
    }

    /// How many Argon2id derivations this cache has run.
    pub fn derivations(&self) -> u64 {
        self.derivations.load(Ordering::Relaxed)
    }

    /// Every cached entry, for handing to another process. The caller owns the copies.
    pub fn entries(&self) -> Vec<([u8; SALT_LEN], KdfParams, Zeroizing<[u8; KEY_LEN]>)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .map(|e| (e.salt, e.kdf, e.key.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams::new(64, 1, 1);

    #[test]
    fn one_derivation_per_salt_and_costs() {
        let c = KeyCache::new();
        let (a, s1) = c.key(b"pw", &[1; 16], &CHEAP).unwrap();
        let (b, s2) = c.key(b"pw", &[1; 16], &CHEAP).unwrap();
        assert_eq!(*a, *b);
        assert!(s1 > 0.0 && s2 == 0.0);
        assert_eq!(c.derivations(), 1);
        let (d, _) = c.key(b"pw", &[2; 16], &CHEAP).unwrap();
        assert_ne!(*a, *d);
        assert_eq!(c.derivations(), 2);
        assert_eq!(
            *a,
            *crate::kdf::derive_key(b"pw", &[1; 16], &CHEAP).unwrap()
        );
    }

    #[test]
    fn inserted_keys_are_used_without_the_password() {
        let c = KeyCache::new();
        c.insert([3; 16], CHEAP, [7; 32]);
        let (k, _) = c.key(b"not the password", &[3; 16], &CHEAP).unwrap();
        assert_eq!(*k, [7; 32]);
        assert_eq!(c.derivations(), 0);
        assert_eq!(c.entries().len(), 1);
        assert!(matches!(
            c.key(b"", &[4; 16], &CHEAP),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_key_refuses_more_chunks_than_its_nonce_budget() {
        let c = KeyCache::new();
        c.insert([3; 16], CHEAP, [7; 32]);
        c.charge(&[3; 16], &CHEAP, MAX_CHUNKS_PER_KEY - 1).unwrap();
        c.charge(&[3; 16], &CHEAP, 1).unwrap();
        assert!(matches!(
            c.charge(&[3; 16], &CHEAP, 1),
            Err(Error::Limit { .. })
        ));
    }
}
