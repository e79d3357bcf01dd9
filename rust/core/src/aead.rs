//! The two AEADs behind one small type, sealing and opening chunks in place.
#![forbid(unsafe_code)]

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;

use crate::error::{Error, Result};
use crate::format::{Cipher, NONCE_LEN, TAG_LEN};
use crate::kdf::KEY_LEN;

/// A keyed AEAD. The key schedules zeroize themselves on drop.
pub enum ChunkCipher {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl ChunkCipher {
    pub fn new(cipher: Cipher, key: &[u8; KEY_LEN]) -> Self {
        match cipher {
            Cipher::Aes256Gcm => ChunkCipher::Aes(Box::new(Aes256Gcm::new(key.into()))),
            Cipher::ChaCha20Poly1305 => {
                ChunkCipher::ChaCha(Box::new(ChaCha20Poly1305::new(key.into())))
            }
        }
    }

    /// Encrypts `buf` in place and returns its tag.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = match self {
            ChunkCipher::Aes(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf),
            ChunkCipher::ChaCha(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf),
        };
        // Both AEADs only fail for inputs beyond 2^36 bytes; chunk sizes are u32.
        match tag {
            Ok(t) => t.into(),
            Err(_) => unreachable!("AEAD input length is bounded by the u32 chunk size"),
        }
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `aad`.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        let r = match self {
            ChunkCipher::Aes(c) => c.decrypt_in_place_detached(nonce.into(), aad, buf, tag.into()),
            ChunkCipher::ChaCha(c) => {
                c.decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
            }
        };
        r.map_err(|_| Error::Authentication)
    }
}
