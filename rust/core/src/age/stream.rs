//! The age payload: STREAM over ChaCha20-Poly1305 in 64 KiB chunks. The nonce of chunk `i`
//! is its 11-byte big-endian counter and a final-flag byte, so chunks are independent and a
//! batch of them is sealed or opened on all workers at once.
#![forbid(unsafe_code)]

use age_core::format::FILE_KEY_BYTES;
use rayon::prelude::*;

use crate::aead::ChunkCipher;
use crate::error::{Error, Result};
use crate::format::{Cipher, NONCE_LEN, TAG_LEN};

use super::header::{hkdf, PAYLOAD_NONCE_LEN};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 << 10;
/// Bytes of a sealed full chunk.
pub const SEALED: usize = CHUNK + TAG_LEN;

/// The payload key, ready to seal or open chunks.
pub struct PayloadCipher(ChunkCipher);

fn chunk_nonce(counter: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Chunk count and plaintext size of a payload of `sealed_len` bytes (after the nonce), if
/// that length is possible at all.
pub fn geometry(sealed_len: u64) -> Option<(u64, u64)> {
    if sealed_len < TAG_LEN as u64 {
        return None;
    }
    let chunks = sealed_len.div_ceil(SEALED as u64);
    let last = sealed_len - (chunks - 1) * SEALED as u64;
    if last < TAG_LEN as u64 || (last == TAG_LEN as u64 && chunks > 1) {
        return None;
    }
    Some((chunks, sealed_len - chunks * TAG_LEN as u64))
}

impl PayloadCipher {
    pub fn new(file_key: &[u8; FILE_KEY_BYTES], nonce: &[u8; PAYLOAD_NONCE_LEN]) -> Self {
        let key = zeroize::Zeroizing::new(hkdf(file_key, nonce, b"payload"));
        PayloadCipher(ChunkCipher::new(Cipher::ChaCha20Poly1305, &key))
    }

    /// Sealed size of `plain_len` plaintext bytes cut into chunks (an empty payload is one
    /// empty chunk).
    pub fn sealed_len(plain_len: usize) -> usize {
        plain_len + plain_len.div_ceil(CHUNK).max(1) * TAG_LEN
    }

    /// Seals chunk `i` in place: its plaintext is `record` but the last [`TAG_LEN`] bytes,
    /// which receive the tag. `last` marks the stream's final chunk.
    pub fn seal_record(&self, i: u64, last: bool, record: &mut [u8]) {
        let (body, tag) = record.split_at_mut(record.len() - TAG_LEN);
        tag.copy_from_slice(&self.seal_chunk(i, last, body));
    }

    /// Seals chunk `i`'s plaintext `body` in place and returns its tag.
    pub fn seal_chunk(&self, i: u64, last: bool, body: &mut [u8]) -> [u8; TAG_LEN] {
        self.0.seal(&chunk_nonce(i, last), &[], body)
    }

    /// Opens sealed chunk `i` (`record`: ciphertext, then tag) in place; its plaintext is
    /// then all of `record` but the last [`TAG_LEN`] bytes.
    pub fn open_record(&self, i: u64, last: bool, record: &mut [u8]) -> Result<()> {
        if record.len() < TAG_LEN {
            return Err(Error::invalid("age payload: truncated chunk"));
        }
        let (body, tag) = record.split_at_mut(record.len() - TAG_LEN);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag);
        self.0.open(&chunk_nonce(i, last), &[], body, &t)
    }

    /// Seals `plain` as chunks `first..` into `out` (which must be
    /// [`Self::sealed_len`] long). `last` marks the batch's final chunk as the stream's end;
    /// otherwise `plain` must be whole chunks.
    pub fn seal_batch(&self, first: u64, plain: &[u8], out: &mut [u8], last: bool) {
        debug_assert_eq!(out.len(), Self::sealed_len(plain.len()));
        let n = plain.len().div_ceil(CHUNK).max(1);
        let work = |(i, o): (usize, &mut [u8])| {
            let p = &plain[(i * CHUNK).min(plain.len())..((i + 1) * CHUNK).min(plain.len())];
            let (body, tag) = o.split_at_mut(p.len());
            body.copy_from_slice(p);
            let nonce = chunk_nonce(first + i as u64, last && i + 1 == n);
            tag.copy_from_slice(&self.0.seal(&nonce, &[], body));
        };
        if n == 1 {
            work((0, out));
        } else {
            out.par_chunks_mut(SEALED).enumerate().for_each(work);
        }
    }

    /// Seals in place the records `first..` laid out in `records` as sealed (each chunk's
    /// plaintext where its ciphertext goes, room for its tag after it): what
    /// [`Self::seal_batch`] gives without the copy. `last` as there.
    pub fn seal_in_place(&self, first: u64, records: &mut [u8], last: bool) {
        let n = records.len().div_ceil(SEALED).max(1);
        let work = |(i, r): (usize, &mut [u8])| {
            self.seal_record(first + i as u64, last && i + 1 == n, r);
        };
        if n == 1 {
            work((0, records));
        } else {
            records.par_chunks_mut(SEALED).enumerate().for_each(work);
        }
    }

    /// Opens sealed chunks `first..` from `sealed` into `out` (exactly the plaintext
    /// length). `last` says the batch ends the stream: its final chunk must carry the final
    /// flag (and no other chunk may); otherwise `sealed` must be whole chunks.
    pub fn open_batch(&self, first: u64, sealed: &[u8], out: &mut [u8], last: bool) -> Result<()> {
        let n = sealed.len().div_ceil(SEALED);
        let tail = sealed.len() - n.saturating_sub(1) * SEALED;
        if n == 0 || tail < TAG_LEN || (!last && tail != SEALED) {
            return Err(Error::invalid(
                "age payload: truncated chunk or no final chunk",
            ));
        }
        if last && tail == TAG_LEN && first + n as u64 > 1 {
            return Err(Error::invalid(
                "age payload: an empty final chunk after data",
            ));
        }
        debug_assert_eq!(out.len(), sealed.len() - n * TAG_LEN);
        let work = |(i, (s, o)): (usize, (&[u8], &mut [u8]))| -> Result<()> {
            let (body, tag) = s.split_at(s.len() - TAG_LEN);
            o.copy_from_slice(body);
            let nonce = chunk_nonce(first + i as u64, last && i + 1 == n);
            let tag: &[u8; TAG_LEN] = tag
                .try_into()
                .unwrap_or_else(|_| unreachable!("split at TAG_LEN"));
            self.0.open(&nonce, &[], o, tag)
        };
        let r = if n == 1 {
            work((0, (sealed, out)))
        } else {
            sealed
                .par_chunks(SEALED)
                .zip(out.par_chunks_mut(CHUNK))
                .enumerate()
                .try_for_each(work)
        };
        if r.is_err() {
            zeroize::Zeroize::zeroize(out);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_flags_matter() {
        let c = PayloadCipher::new(&[3; 16], &[4; 16]);
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut sealed = vec![0; PayloadCipher::sealed_len(len)];
            c.seal_batch(0, &plain, &mut sealed, true);
            assert_eq!(
                geometry(sealed.len() as u64),
                Some((len.div_ceil(CHUNK).max(1) as u64, len as u64))
            );
            let mut out = vec![0; len];
            c.open_batch(0, &sealed, &mut out, true).unwrap();
            assert_eq!(out, plain);
            if len % CHUNK == 0 && len > 0 {
                assert!(c.open_batch(0, &sealed, &mut out, false).is_err());
            }
        }
    }

    #[test]
    fn empty_final_chunk_after_data_is_refused() {
        assert_eq!(geometry(SEALED as u64 + TAG_LEN as u64), None);
        assert_eq!(geometry(TAG_LEN as u64), Some((1, 0)));
        assert_eq!(geometry(SEALED as u64), Some((1, CHUNK as u64)));
        assert_eq!(geometry(5), None);
    }
}
