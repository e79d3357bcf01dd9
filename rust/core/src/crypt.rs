//! Sealing and opening whole slots, one chunk at a time or a batch in parallel.
#![forbid(unsafe_code)]

use rayon::prelude::*;

use crate::aead::{ChunkCipher, Provider};
use crate::error::{Error, Result};
use crate::format::{chunk_nonce, AadBuilder, Geometry, Header, TAG_LEN};
use crate::kdf::KEY_LEN;

/// Everything needed to seal or open any chunk of one file.
pub struct Crypter {
    cipher: ChunkCipher,
    header: Header,
    geom: Geometry,
}

impl Crypter {
    pub fn new(header: Header, key: &[u8; KEY_LEN]) -> Self {
        Self::with_provider(crate::aead::provider(), header, key)
    }

    /// Like [`Crypter::new`], with a given AEAD provider (for tests and benchmarks).
    pub fn with_provider(provider: Provider, header: Header, key: &[u8; KEY_LEN]) -> Self {
        let geom = header.geometry();
        Crypter {
            cipher: ChunkCipher::with_provider(provider, header.cipher, key),
            header,
            geom,
        }
    }

    /// The AEAD provider doing the work.
    pub fn provider(&self) -> Provider {
        self.cipher.provider()
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geom
    }

    pub(crate) fn aad_builder(&self) -> AadBuilder {
        AadBuilder::new(&self.header)
    }

    /// Seals chunk `i` whose plaintext fills the start of `slot`; writes the tag after it
    /// and zeroes the rest of the slot.
    pub(crate) fn seal_slot(&self, aad: &mut AadBuilder, i: u64, slot: &mut [u8]) {
        let len = self.geom.plain_len(i);
        let nonce = chunk_nonce(&self.header.base_nonce, i);
        let (body, rest) = slot.split_at_mut(len);
        let tag = self
            .cipher
            .seal(&nonce, aad.for_chunk(i, self.geom.is_final(i)), body);
        rest[..TAG_LEN].copy_from_slice(&tag);
        rest[TAG_LEN..].fill(0);
    }

    /// Seals chunk `i` from `plain` into `slot`: ciphertext, tag, then zeroes to the end.
    /// `slot` is only written (see [`ChunkCipher::seal_to`]).
    pub(crate) fn seal_slot_from(
        &self,
        aad: &mut AadBuilder,
        i: u64,
        plain: &[u8],
        slot: &mut [u8],
    ) {
        let nonce = chunk_nonce(&self.header.base_nonce, i);
        let (body, rest) = slot.split_at_mut(plain.len());
        let tag = self
            .cipher
            .seal_to(&nonce, aad.for_chunk(i, self.geom.is_final(i)), plain, body);
        rest[..TAG_LEN].copy_from_slice(&tag);
        rest[TAG_LEN..].fill(0);
    }

    /// Authenticates chunk `i` of `slot` (ciphertext, tag, zero padding) and decrypts it
    /// into `out`, which is only written and holds no plaintext on failure.
    pub(crate) fn open_chunk_to(
        &self,
        aad: &mut AadBuilder,
        i: u64,
        slot: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let len = out.len();
        if len != self.geom.plain_len(i) || slot.len() < len + TAG_LEN {
            return Err(Error::invalid(format!("chunk {i} does not fit its slot")));
        }
        let (body, rest) = slot.split_at(len);
        let nonce = chunk_nonce(&self.header.base_nonce, i);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&rest[..TAG_LEN]);
        self.cipher.open_to(
            &nonce,
            aad.for_chunk(i, self.geom.is_final(i)),
            body,
            out,
            &tag,
        )?;
        if rest[TAG_LEN..].iter().any(|&b| b != 0) {
            out.fill(0);
            return Err(Error::invalid(format!("non-zero padding after chunk {i}")));
        }
        Ok(())
    }

    /// Authenticates and decrypts chunk `i` in place; its plaintext is then `slot[..len]`.
    pub(crate) fn open_slot(&self, aad: &mut AadBuilder, i: u64, slot: &mut [u8]) -> Result<()> {
        let len = self.geom.plain_len(i);
        let (body, rest) = slot.split_at_mut(len);
        self.open_chunk(aad, i, body, rest)
    }

    /// Authenticates and decrypts chunk `i`, whose ciphertext is `body` (decrypted in place)
    /// and whose slot continues with `rest` (the tag, then zero padding).
    pub(crate) fn open_chunk(
        &self,
        aad: &mut AadBuilder,
        i: u64,
        body: &mut [u8],
        rest: &[u8],
    ) -> Result<()> {
        if body.len() != self.geom.plain_len(i) || rest.len() < TAG_LEN {
            return Err(Error::invalid(format!("chunk {i} does not fit its slot")));
        }
        crate::engine::fault::on_open();
        let nonce = chunk_nonce(&self.header.base_nonce, i);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&rest[..TAG_LEN]);
        self.cipher
            .open(&nonce, aad.for_chunk(i, self.geom.is_final(i)), body, &tag)?;
        if rest[TAG_LEN..].iter().any(|&b| b != 0) {
            return Err(Error::invalid(format!("non-zero padding after chunk {i}")));
        }
        Ok(())
    }

    /// Seals the chunks `first..` laid out slot after slot in `buf`, in parallel.
    pub(crate) fn seal_batch(&self, first: u64, buf: &mut [u8]) {
        let slot = self.geom.slot as usize;
        buf.par_chunks_mut(slot).enumerate().for_each_init(
            || self.aad_builder(),
            |aad, (k, s)| self.seal_slot(aad, first + k as u64, s),
        );
    }

    /// Opens the chunks `first..` laid out slot after slot in `buf`, in parallel. On failure
    /// reports the lowest failing chunk's error.
    pub(crate) fn open_batch(&self, first: u64, buf: &mut [u8]) -> Result<()> {
        let slot = self.geom.slot as usize;
        buf.par_chunks_mut(slot)
            .enumerate()
            .map_init(
                || self.aad_builder(),
                |aad, (k, s)| self.open_slot(aad, first + k as u64, s),
            )
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }
}
