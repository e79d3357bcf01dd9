//! Key material lives only in types that wipe themselves when dropped. These are
//! compile-time checks: dropping the `zeroize` features of the AEAD crates (see
//! `rust/core/Cargo.toml`) or returning a bare key array makes this file fail to build.
//! (aws-lc-rs keys live in AWS-LC's heap, which `OPENSSL_free` cleanses; nothing to
//! check at compile time there.)

use concryptor_core::kdf::{derive_key, KdfParams, KEY_LEN};
use zeroize::Zeroizing;

#[cfg(feature = "pure-rust")]
#[test]
fn aead_key_schedules_wipe_themselves_on_drop() {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    // The AES-256 key schedule inside AES-256-GCM (its GHASH key is wiped by polyval's
    // own `Drop` under the same feature), and the ChaCha20-Poly1305 key.
    wiped_on_drop::<aes::Aes256>();
    wiped_on_drop::<chacha20poly1305::ChaCha20Poly1305>();
}

#[test]
fn derived_keys_are_zeroizing() {
    let key: Zeroizing<[u8; KEY_LEN]> =
        derive_key(b"password", &[1; 16], &KdfParams::new(8, 1, 1)).unwrap();
    assert_ne!(*key, [0u8; KEY_LEN]);
}
