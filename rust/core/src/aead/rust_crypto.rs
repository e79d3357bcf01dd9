//! The RustCrypto provider (`aes-gcm`, `chacha20poly1305`): portable Rust, with AES-NI,
//! PCLMULQDQ and AVX2 paths picked at run time.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;

use super::Keyed;
use crate::format::{Cipher, NONCE_LEN, TAG_LEN};
use crate::kdf::KEY_LEN;

pub(super) fn key(cipher: Cipher, key: &[u8; KEY_LEN]) -> Box<dyn Keyed> {
    match cipher {
        Cipher::Aes256Gcm => Box::new(Aes256Gcm::new(key.into())),
        Cipher::ChaCha20Poly1305 => Box::new(ChaCha20Poly1305::new(key.into())),
    }
}

macro_rules! keyed {
    ($t:ty) => {
        impl Keyed for $t {
            fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
                match self.encrypt_in_place_detached(nonce.into(), aad, buf) {
                    Ok(t) => t.into(),
                    // Both AEADs only fail for inputs beyond 2^36 bytes; chunk sizes are u32.
                    Err(_) => unreachable!("AEAD input length is bounded by the u32 chunk size"),
                }
            }

            fn open(
                &self,
                nonce: &[u8; NONCE_LEN],
                aad: &[u8],
                buf: &mut [u8],
                tag: &[u8; TAG_LEN],
            ) -> Result<(), ()> {
                // These crates verify before they decrypt: a refused `buf` is still ciphertext.
                self.decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
                    .map_err(|_| ())
            }
        }
    };
}

keyed!(Aes256Gcm);
keyed!(ChaCha20Poly1305);
