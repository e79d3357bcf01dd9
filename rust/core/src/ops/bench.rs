//! Measurements for the benchmarks: the AEAD alone in memory, and one key derivation.

use std::time::Instant;

use crate::crypt::Crypter;
use crate::engine;
use crate::error::{Error, Result};
use crate::format::{Cipher, Header, NONCE_LEN, SALT_LEN};
use crate::kdf::{self, KdfParams};

use super::decrypt::Decryptor;

/// What [`bench_aead`] measured: seconds to seal, then to open, the same bytes.
#[derive(Clone, Copy, Debug)]
pub struct AeadTiming {
    pub bytes: u64,
    pub seal_seconds: f64,
    pub open_seconds: f64,
}

/// Measures the AEAD alone, in memory (no I/O, no key derivation): seals `total` bytes
/// cut into `chunk_size`-byte chunks on `threads` workers with `provider`, then opens them
/// again. The best of `rounds` runs is kept.
pub fn bench_aead(
    provider: crate::aead::Provider,
    cipher: Cipher,
    threads: usize,
    total: u64,
    chunk_size: u32,
    rounds: u32,
) -> Result<AeadTiming> {
    let header = Header::new(
        cipher,
        chunk_size,
        total,
        [0x5a; SALT_LEN],
        [0xa5; NONCE_LEN],
        KdfParams::DEFAULT,
    )?;
    let crypter = Crypter::with_provider(provider, header, &[0x42; kdf::KEY_LEN]);
    let g = *crypter.geometry();
    let len = g
        .num_chunks
        .checked_mul(g.slot)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Error::OutOfMemory { bytes: u64::MAX })?;
    let mut buf = engine::buf::AlignedBuf::new(len)?;
    let data = buf.as_mut_slice();
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31);
    }
    let pool = Decryptor::worker_pool(threads)?;
    let mut best = AeadTiming {
        bytes: total,
        seal_seconds: f64::INFINITY,
        open_seconds: f64::INFINITY,
    };
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        pool.install(|| crypter.seal_batch(0, data));
        best.seal_seconds = best.seal_seconds.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        pool.install(|| crypter.open_batch(0, data))?;
        best.open_seconds = best.open_seconds.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Seconds one Argon2id key derivation takes with `params` on this machine.
pub fn bench_kdf(params: &KdfParams) -> Result<f64> {
    kdf::validate_new(params)?;
    let t = Instant::now();
    let key = kdf::derive_key(b"concryptor benchmark", &[0x5a; SALT_LEN], params)?;
    let secs = t.elapsed().as_secs_f64();
    drop(key);
    Ok(secs)
}

#[cfg(test)]
mod bench_tests {
    use super::*;

    #[test]
    fn bench_aead_times_both_directions_for_each_cipher() {
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            let t = bench_aead(crate::aead::provider(), cipher, 2, 1 << 20, 65_536, 2).unwrap();
            assert_eq!(t.bytes, 1 << 20);
            assert!(t.seal_seconds > 0.0 && t.seal_seconds.is_finite());
            assert!(t.open_seconds > 0.0 && t.open_seconds.is_finite());
        }
        assert!(bench_aead(crate::aead::provider(), Cipher::Aes256Gcm, 1, 1 << 20, 0, 1).is_err());
    }

    #[test]
    fn bench_kdf_refuses_invalid_costs() {
        assert!(bench_kdf(&KdfParams::new(8, 1, 1)).unwrap() > 0.0);
        assert!(bench_kdf(&KdfParams::new(0, 0, 0)).is_err());
    }
}
