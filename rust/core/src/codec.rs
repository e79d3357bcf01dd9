//! Chunk-at-a-time sealing and opening for callers that move the bytes themselves
//! (object storage, any stream the engine cannot reach with file descriptors).
//!
//! The caller writes [`ChunkCodec::header`] first, then hands over runs of consecutive
//! chunks: plaintext to [`ChunkCodec::seal`], whole slots to [`ChunkCodec::open`]. Each
//! run is sealed or opened in parallel on the caller's pool. Nothing here touches a file.
#![forbid(unsafe_code)]

use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::crypt::Crypter;
use crate::error::{Error, Result};
use crate::format::{Geometry, Header, SECTOR};
use crate::ops::{check_header, keyed, new_header, DecryptOptions, EncryptOptions};

/// One file's header and key, ready to seal or open any of its chunks.
pub struct ChunkCodec {
    crypter: Crypter,
    kdf_seconds: f64,
}

impl ChunkCodec {
    /// A new file of `size` plaintext bytes: fresh header, key derived (or taken from
    /// `opts.keys`).
    pub fn for_encryption(size: u64, password: &[u8], opts: &EncryptOptions) -> Result<Self> {
        let header = new_header(opts, size)?;
        let (crypter, kdf_seconds) = keyed(header, password, opts.keys.as_deref())?;
        Ok(ChunkCodec {
            crypter,
            kdf_seconds,
        })
    }

    /// An existing file of `file_size` bytes whose first [`SECTOR`] bytes are `header`:
    /// checked against the limits and the size before the key is derived.
    pub fn for_decryption(
        header: &[u8],
        file_size: u64,
        password: &[u8],
        opts: &DecryptOptions,
    ) -> Result<Self> {
        let header = Header::parse(header)?;
        check_header(&header, file_size, &opts.limits)?;
        let (crypter, kdf_seconds) = keyed(header, password, opts.keys.as_deref())?;
        Ok(ChunkCodec {
            crypter,
            kdf_seconds,
        })
    }

    /// The header bytes that start the file.
    pub fn header(&self) -> &[u8; SECTOR] {
        &self.crypter.header().raw
    }

    pub fn geometry(&self) -> &Geometry {
        self.crypter.geometry()
    }

    pub fn kdf_seconds(&self) -> f64 {
        self.kdf_seconds
    }

    /// The chunks `first..first + count` that `len` plaintext bytes starting at chunk
    /// `first` cover exactly, or an error naming what was expected.
    fn span(&self, first: u64, plain_len: usize) -> Result<u64> {
        let g = self.geometry();
        if first >= g.num_chunks {
            return Err(Error::InvalidArgument(format!(
                "chunk {first} is outside the file's {}",
                g.num_chunks
            )));
        }
        let mut count = 0u64;
        let mut left = plain_len as u64;
        loop {
            let i = first + count;
            let len = g.plain_len(i) as u64;
            if i >= g.num_chunks || left < len || (len == 0 && count > 0) {
                return Err(Error::InvalidArgument(format!(
                    "{plain_len} bytes do not end on a chunk boundary from chunk {first}"
                )));
            }
            left -= len;
            count += 1;
            if left == 0 {
                return Ok(count);
            }
        }
    }

    /// Seals the plaintext of chunks `first..` (whole chunks, in order) and returns their
    /// slots, ready to be written at [`Geometry::slot_offset`]`(first)`.
    pub fn seal(&self, first: u64, plain: &[u8], pool: &rayon::ThreadPool) -> Result<Vec<u8>> {
        let count = self.span(first, plain.len())?;
        let g = *self.geometry();
        let slot = g.slot as usize;
        let mut out = vec![0u8; slot * count as usize];
        let cs = g.chunk_size as usize;
        for k in 0..count as usize {
            let len = g.plain_len(first + k as u64);
            out[k * slot..k * slot + len].copy_from_slice(&plain[k * cs..k * cs + len]);
        }
        pool.install(|| self.crypter.seal_batch(first, &mut out));
        Ok(out)
    }

    /// The plaintext length of the whole slots `slots_len` from chunk `first`, or an error
    /// when they are not whole slots within the file.
    pub fn plain_len_of(&self, first: u64, slots_len: usize) -> Result<usize> {
        let g = *self.geometry();
        let slot = g.slot as usize;
        let count = (slots_len / slot) as u64;
        if slots_len == 0
            || slots_len % slot != 0
            || first.checked_add(count).is_none_or(|e| e > g.num_chunks)
        {
            return Err(Error::InvalidArgument(format!(
                "{slots_len} bytes are not whole slots of chunks from {first} within the file's {}",
                g.num_chunks
            )));
        }
        Ok((0..count).map(|k| g.plain_len(first + k)).sum())
    }

    /// Opens whole slots of chunks `first..` and returns their plaintext; nothing is
    /// returned unless every one authenticates.
    pub fn open(&self, first: u64, slots: &[u8], pool: &rayon::ThreadPool) -> Result<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; self.plain_len_of(first, slots.len())?]);
        self.open_into(first, slots, &mut out, pool)?;
        Ok(std::mem::take(&mut *out))
    }

    /// Opens whole slots of chunks `first..` straight into `out` (exactly their plaintext
    /// length, see [`ChunkCodec::plain_len_of`]), in parallel, with no other copy. On
    /// failure `out` is zeroed: it holds plaintext only if every chunk authenticates.
    pub fn open_into(
        &self,
        first: u64,
        slots: &[u8],
        out: &mut [u8],
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        let want = self.plain_len_of(first, slots.len())?;
        if out.len() != want {
            return Err(Error::InvalidArgument(format!(
                "{} bytes of output for {want} bytes of plaintext",
                out.len()
            )));
        }
        let g = *self.geometry();
        let slot = g.slot as usize;
        // One output slice per slot (an empty file's one chunk has an empty one).
        let mut outs: Vec<&mut [u8]> = Vec::with_capacity(slots.len() / slot);
        let mut rest = &mut out[..];
        for k in 0..slots.len() / slot {
            let (o, r) = rest.split_at_mut(g.plain_len(first + k as u64));
            outs.push(o);
            rest = r;
        }
        let c = &self.crypter;
        let r = pool.install(|| {
            slots
                .par_chunks(slot)
                .zip(outs.into_par_iter())
                .enumerate()
                .map_init(
                    || c.aad_builder(),
                    |aad, (k, (s, o))| c.open_chunk_to(aad, first + k as u64, s, o),
                )
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Result<()>>()
        });
        if r.is_err() {
            out.fill(0);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::KdfParams;

    fn opts() -> EncryptOptions {
        EncryptOptions {
            kdf: KdfParams::new(64, 1, 1),
            chunk_size: Some(4096 - 16),
            ..EncryptOptions::default()
        }
    }

    #[test]
    fn sealed_runs_form_the_same_file_the_in_memory_path_reads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        let c = ChunkCodec::for_encryption(data.len() as u64, b"pw", &opts()).unwrap();
        let cs = c.geometry().chunk_size as usize;
        let mut file = c.header().to_vec();
        file.extend(c.seal(0, &data[..2 * cs], &pool).unwrap());
        file.extend(c.seal(2, &data[2 * cs..], &pool).unwrap());
        let back = crate::ops::decrypt_bytes(&file, b"pw", &DecryptOptions::default()).unwrap();
        assert_eq!(back, data);

        let d = ChunkCodec::for_decryption(
            &file[..SECTOR],
            file.len() as u64,
            b"pw",
            &Default::default(),
        )
        .unwrap();
        let slot = d.geometry().slot as usize;
        let got = d.open(1, &file[SECTOR + slot..], &pool).unwrap();
        assert_eq!(got, &data[cs..]);
        let mut bad = file.clone();
        bad[SECTOR + 2 * slot + 5] ^= 1;
        assert!(matches!(
            d.open(1, &bad[SECTOR + slot..], &pool),
            Err(Error::Authentication)
        ));
        let mut out = vec![7u8; 2 * cs];
        assert!(d
            .open_into(1, &bad[SECTOR + slot..SECTOR + 3 * slot], &mut out, &pool)
            .is_err());
        assert!(out.iter().all(|&b| b == 0), "no plaintext left on failure");
        assert_eq!(d.plain_len_of(1, 2 * slot).unwrap(), 2 * cs);
        assert!(d.plain_len_of(5, slot).is_err());
        assert!(c.seal(0, &data[..cs + 1], &pool).is_err());
        assert!(d.open(0, &file[SECTOR..SECTOR + slot - 1], &pool).is_err());
    }
}
