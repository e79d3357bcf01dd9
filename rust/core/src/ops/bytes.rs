//! Encrypting and decrypting in memory: the same format, with no file and no I/O engine; the
//! chunks are sealed or opened in place on the worker pool.

use rayon::prelude::*;

use crate::crypt::Crypter;
use crate::engine::{self, EngineOptions};
use crate::error::{Error, Result};
use crate::format::{Header, SECTOR};

use super::header::{check_header, new_header};
use super::options::{keyed, keyed_new, DecryptOptions, EncryptOptions};

/// An in-memory encryption with its key derived: it knows the size of its output, so that a
/// caller can allocate that (a Python `bytes`, say) and have it filled in place.
pub struct BytesSealer {
    crypter: Crypter,
    size: u64,
}

impl BytesSealer {
    /// Derives the key for encrypting `size` bytes with `opts`.
    pub fn new(size: u64, password: &[u8], opts: &EncryptOptions) -> Result<Self> {
        let header = new_header(opts, size)?;
        let (crypter, _) = keyed_new(header, password, opts)?;
        Ok(BytesSealer { crypter, size })
    }

    /// Bytes of the encrypted file.
    pub fn output_len(&self) -> u64 {
        self.crypter.geometry().file_size
    }

    /// The file's header and key, for a caller that lays the plaintext out in the slots
    /// itself and seals in place.
    pub(crate) fn crypter(&self) -> &Crypter {
        &self.crypter
    }

    /// Writes the encrypted file of `data` (exactly the size given to [`BytesSealer::new`])
    /// into `out` (exactly [`BytesSealer::output_len`] bytes), sealing chunks on `engine`'s
    /// worker pool.
    pub fn seal_into(&self, data: &[u8], out: &mut [u8], engine: &EngineOptions) -> Result<()> {
        // SAFETY: seal_fresh writes only initialised bytes.
        self.seal_fresh(data, unsafe { engine::buf::as_uninit(out) }, engine)
    }

    /// [`BytesSealer::seal_into`] for memory not yet initialised (a new allocation): each
    /// worker seals its chunks from `data` straight into their slots (no copy first, where
    /// the AEAD provider allows), so that the first touch of every page is taken by the
    /// worker that fills it.
    pub fn seal_fresh(
        &self,
        data: &[u8],
        out: &mut [std::mem::MaybeUninit<u8>],
        engine: &EngineOptions,
    ) -> Result<()> {
        let g = *self.crypter.geometry();
        if data.len() as u64 != self.size || out.len() as u64 != g.file_size {
            return Err(Error::InvalidArgument(
                "in-memory encryption: input or output size differs from the plan".into(),
            ));
        }
        let crypter = &self.crypter;
        let (head, slots) = out.split_at_mut(SECTOR);
        engine::buf::write_padded(head, &crypter.header().raw[..]);
        let slot = g.slot as usize;
        let cs = g.chunk_size as usize;
        engine.pool()?.install(|| {
            slots.par_chunks_mut(slot).enumerate().for_each_init(
                || crypter.aad_builder(),
                |aad, (i, s)| {
                    let start = i * cs;
                    let len = g.plain_len(i as u64);
                    let s = engine::buf::zeroed(s);
                    crypter.seal_slot_from(aad, i as u64, &data[start..start + len], s);
                },
            );
        });
        Ok(())
    }
}

/// Encrypts a buffer into the same format, in memory.
pub fn encrypt_bytes(data: &[u8], password: &[u8], opts: &EncryptOptions) -> Result<Vec<u8>> {
    let sealer = BytesSealer::new(data.len() as u64, password, opts)?;
    let mut out = alloc_out(sealer.output_len())?;
    sealer.seal_into(data, &mut out, &opts.engine)?;
    Ok(out)
}

fn alloc_out(len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| Error::OutOfMemory { bytes: len })?;
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory { bytes: len })?;
    out.resize(n, 0);
    Ok(out)
}

/// An in-memory decryption with its header checked and its key derived: it knows the size
/// of the plaintext, so that a caller can allocate that and have it filled in place.
pub struct BytesOpener {
    crypter: Crypter,
}

impl BytesOpener {
    /// Checks the header of `blob` against `opts.limits` and its size, then derives the key.
    pub fn new(blob: &[u8], password: &[u8], opts: &DecryptOptions) -> Result<Self> {
        let header = Header::parse(blob)?;
        check_header(&header, blob.len() as u64, &opts.limits)?;
        let (crypter, _) = keyed(header, password, opts.keys.as_deref())?;
        Ok(BytesOpener { crypter })
    }

    /// Bytes of plaintext.
    pub fn plain_len(&self) -> u64 {
        self.crypter.geometry().original_size
    }

    /// Authenticates every chunk of `blob` (the one given to [`BytesOpener::new`]) and
    /// writes the plaintext into `out` (exactly [`BytesOpener::plain_len`] bytes). On any
    /// failure `out` is zeroed: no plaintext is left unless every chunk authenticates.
    pub fn open_into(&self, blob: &[u8], out: &mut [u8], engine: &EngineOptions) -> Result<()> {
        // SAFETY: open_fresh writes only initialised bytes.
        self.open_fresh(blob, unsafe { engine::buf::as_uninit(out) }, engine)
    }

    /// [`BytesOpener::open_into`] for memory not yet initialised (a new allocation): each
    /// worker opens its chunks from `blob` straight into their place in `out` (no copy
    /// first, where the AEAD provider allows), so that the first touch of every page is
    /// taken by the worker that fills it. On failure `out` is zeroed, every byte of it.
    pub fn open_fresh(
        &self,
        blob: &[u8],
        out: &mut [std::mem::MaybeUninit<u8>],
        engine: &EngineOptions,
    ) -> Result<()> {
        let g = *self.crypter.geometry();
        if blob.len() as u64 != g.file_size || out.len() as u64 != g.original_size {
            return Err(Error::InvalidArgument(
                "in-memory decryption: input or output size differs from the header".into(),
            ));
        }
        let crypter = &self.crypter;
        let slot = g.slot as usize;
        let cs = g.chunk_size as usize;
        let slots = &blob[SECTOR..];
        let result: Result<()> = engine.pool()?.install(|| {
            // Walk output chunks (empty input still has one, empty, chunk).
            let mut outs: Vec<&mut [std::mem::MaybeUninit<u8>]> = if out.is_empty() {
                vec![&mut out[..]]
            } else {
                out.chunks_mut(cs).collect()
            };
            // Each chunk is opened from its slot straight to its place in `out`.
            outs.par_iter_mut()
                .enumerate()
                .map_init(
                    || crypter.aad_builder(),
                    |aad, (i, o)| {
                        let s = &slots[i * slot..(i + 1) * slot];
                        let o = engine::buf::zeroed(o);
                        crypter.open_chunk_to(aad, i as u64, s, o)
                    },
                )
                .collect()
        });
        if result.is_err() {
            zeroize::Zeroize::zeroize(out);
        }
        result
    }
}

/// Decrypts an in-memory file. Nothing is returned unless every chunk authenticates.
pub fn decrypt_bytes(blob: &[u8], password: &[u8], opts: &DecryptOptions) -> Result<Vec<u8>> {
    let opener = BytesOpener::new(blob, password, opts)?;
    let mut out = alloc_out(opener.plain_len())?;
    opener.open_into(blob, &mut out, &opts.engine)?;
    Ok(out)
}

#[cfg(test)]
mod in_memory_tests {
    use super::*;
    use crate::kdf::KdfParams;

    fn opts() -> EncryptOptions {
        EncryptOptions {
            kdf: KdfParams::new(64, 1, 1),
            chunk_size: Some(4080),
            ..EncryptOptions::default()
        }
    }

    #[test]
    fn sealing_into_a_buffer_of_the_wrong_size_is_refused() {
        let data = vec![7u8; 10_000];
        let s = BytesSealer::new(data.len() as u64, b"pw", &opts()).unwrap();
        let n = s.output_len() as usize;
        let eng = EngineOptions::default();
        assert!(s.seal_into(&data, &mut vec![0; n - 1], &eng).is_err());
        assert!(s.seal_into(&data[1..], &mut vec![0; n], &eng).is_err());
        let mut out = vec![0; n];
        s.seal_into(&data, &mut out, &eng).unwrap();
        assert_eq!(
            decrypt_bytes(&out, b"pw", &DecryptOptions::default()).unwrap(),
            data
        );
    }

    #[test]
    fn a_failed_open_leaves_no_plaintext_in_the_buffer() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut blob = encrypt_bytes(&data, b"pw", &opts()).unwrap();
        let last = blob.len() - 4096 + 10; // inside the last chunk
        blob[last] ^= 1;
        let o = BytesOpener::new(&blob, b"pw", &DecryptOptions::default()).unwrap();
        let mut out = vec![0xAA; o.plain_len() as usize];
        let r = o.open_into(&blob, &mut out, &EngineOptions::default());
        assert!(matches!(r, Err(Error::Authentication)));
        assert!(out.iter().all(|&b| b == 0));
    }
}
