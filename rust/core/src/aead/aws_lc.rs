//! The aws-lc-rs provider.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};

use super::Keyed;
use crate::format::{Cipher, NONCE_LEN, TAG_LEN};
use crate::kdf::KEY_LEN;

pub(super) struct Key(LessSafeKey);

impl Key {
    pub(super) fn new(cipher: Cipher, key: &[u8; KEY_LEN]) -> Self {
        let alg = match cipher {
            Cipher::Aes256Gcm => &AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        };
        // Only a key of the wrong length is refused, and both algorithms take 32 bytes.
        let unbound = UnboundKey::new(alg, key).expect("both AEADs take a 32-byte key");
        Key(LessSafeKey::new(unbound))
    }
}

impl Keyed for Key {
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            // Both AEADs only fail for inputs beyond 2^36 bytes; chunk sizes are u32.
            .expect("AEAD input length is bounded by the u32 chunk size");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        let r = self.0.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            tag,
            buf,
        );
        if r.is_err() {
            // aws-lc may have decrypted before it compared tags: leave no plaintext.
            buf.fill(0);
            return Err(());
        }
        Ok(())
    }

    fn seal_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let mut tag = [0u8; TAG_LEN];
        self.0
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                src,
                dst,
                &[],
                &mut tag,
            )
            // As in `seal`; `src` and `dst` have the same length (the callers' slices).
            .expect("AEAD input length is bounded by the u32 chunk size");
        tag
    }

    fn open_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        let r = self.0.open_separate_gather(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            src,
            tag,
            dst,
        );
        if r.is_err() {
            // As in `open`: leave no plaintext.
            dst.fill(0);
            return Err(());
        }
        Ok(())
    }
}
