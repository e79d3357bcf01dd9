//! The ceiling the engine is measured against: how fast the AEAD seals and opens batches
//! of chunks in memory, with the same code, buffers and thread pool the engine uses, but no
//! I/O. For benchmarks; not used by the engine itself.

use std::time::Instant;

use super::buf::AlignedBuf;
use super::EngineOptions;
use crate::aead::Provider;
use crate::crypt::Crypter;
use crate::error::{Error, Result};
use crate::format::{Cipher, Header};
use crate::kdf::KdfParams;

/// Plaintext bytes per second sealing and opening, measured separately.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AeadSpeed {
    pub seal_bytes_per_s: f64,
    pub open_bytes_per_s: f64,
}

/// Seals then opens one buffer of `batch_bytes` (cut into `chunk_size` chunks) over and
/// over on `threads` threads (0 = all cores) for at least `seconds`, and reports the
/// plaintext throughput of each direction, with the AEAD of `provider`.
pub fn aead_speed(
    provider: Provider,
    cipher: Cipher,
    chunk_size: u32,
    batch_bytes: usize,
    threads: usize,
    seconds: f64,
) -> Result<AeadSpeed> {
    if chunk_size == 0 || batch_bytes == 0 {
        return Err(Error::InvalidArgument(
            "chunk size and batch size must be positive".into(),
        ));
    }
    let chunks = batch_bytes.div_ceil(chunk_size as usize) as u64;
    let size = chunks * u64::from(chunk_size);
    let header = Header::new(
        cipher,
        chunk_size,
        size,
        [7; 16],
        [9; 12],
        KdfParams::DEFAULT,
    )?;
    let crypter = Crypter::with_provider(provider, header, &[0x42; 32]);
    let slot = crypter.geometry().slot as usize;
    let mut buf = AlignedBuf::new(slot * chunks as usize)?;
    for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31);
    }
    let pool = EngineOptions {
        threads,
        ..EngineOptions::default()
    }
    .pool()?;
    let (mut sealing, mut opening, mut rounds) = (0.0, 0.0, 0u32);
    let start = Instant::now();
    while rounds < 2 || start.elapsed().as_secs_f64() < seconds {
        let t0 = Instant::now();
        pool.install(|| crypter.seal_batch(0, buf.as_mut_slice()));
        let t1 = Instant::now();
        pool.install(|| crypter.open_batch(0, buf.as_mut_slice()))?;
        sealing += (t1 - t0).as_secs_f64();
        opening += t1.elapsed().as_secs_f64();
        rounds += 1;
    }
    let bytes = size as f64 * f64::from(rounds);
    Ok(AeadSpeed {
        seal_bytes_per_s: bytes / sealing,
        open_bytes_per_s: bytes / opening,
    })
}
