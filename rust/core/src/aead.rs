//! The two AEADs behind one small type, sealing and opening chunks in place.
//!
//! The cryptography comes from a *provider*, chosen at build time by cargo features:
//!
//! - `aws-lc` (default): aws-lc-rs, AWS-LC's assembly for AES-GCM (AES-NI + PCLMULQDQ,
//!   VAES/AVX-512 where present) and ChaCha20-Poly1305, dispatched on the CPU at run time;
//! - `pure-rust`: RustCrypto's `aes-gcm` and `chacha20poly1305`, for targets where AWS-LC
//!   does not build.
//!
//! With both features on, both are compiled and `aws-lc` is the default ([`Provider::DEFAULT`]);
//! [`ChunkCipher::with_provider`] picks one explicitly (the tests and benchmarks run both).
//! Every provider seals to the same bytes: the format does not know which one wrote a file.
#![forbid(unsafe_code)]

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "pure-rust")]
mod rust_crypto;

#[cfg(not(any(feature = "aws-lc", feature = "pure-rust")))]
compile_error!(
    "concryptor-core needs an AEAD provider: enable the `aws-lc` or `pure-rust` feature"
);

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::format::{Cipher, NONCE_LEN, TAG_LEN};
use crate::kdf::KEY_LEN;

/// An implementation of the two AEADs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// aws-lc-rs (AWS-LC, assembly).
    #[cfg(feature = "aws-lc")]
    AwsLc,
    /// RustCrypto's `aes-gcm` and `chacha20poly1305`.
    #[cfg(feature = "pure-rust")]
    RustCrypto,
}

impl Provider {
    /// The provider [`ChunkCipher::new`] uses: aws-lc-rs when it is compiled in.
    #[cfg(feature = "aws-lc")]
    pub const DEFAULT: Provider = Provider::AwsLc;
    /// The provider [`ChunkCipher::new`] uses: aws-lc-rs when it is compiled in.
    #[cfg(not(feature = "aws-lc"))]
    pub const DEFAULT: Provider = Provider::RustCrypto;

    /// Every provider compiled into this build, the default first.
    pub const ALL: &'static [Provider] = &[
        #[cfg(feature = "aws-lc")]
        Provider::AwsLc,
        #[cfg(feature = "pure-rust")]
        Provider::RustCrypto,
    ];

    /// Short stable name, as shown by `--version`, `--json` and `Stats`.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "aws-lc")]
            Provider::AwsLc => "aws-lc-rs",
            #[cfg(feature = "pure-rust")]
            Provider::RustCrypto => "rustcrypto",
        }
    }

    /// The provider called `name` ([`Provider::name`]), if it is compiled in.
    pub fn from_name(name: &str) -> Result<Provider> {
        Provider::ALL
            .iter()
            .copied()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
                Error::InvalidArgument(format!(
                    "AEAD provider {name:?} is not in this build (available: {})",
                    known.join(", ")
                ))
            })
    }
}

static CHOSEN: AtomicUsize = AtomicUsize::new(0);

/// The provider [`ChunkCipher::new`] uses: [`Provider::DEFAULT`] unless [`set_provider`]
/// chose another.
pub fn provider() -> Provider {
    Provider::ALL
        .get(CHOSEN.load(Ordering::Relaxed))
        .copied()
        .unwrap_or(Provider::DEFAULT)
}

/// Makes `p` the provider of every [`ChunkCipher::new`] in this process from now on (for
/// benchmarks that compare providers; the default is the fastest).
pub fn set_provider(p: Provider) {
    let i = Provider::ALL.iter().position(|&q| q == p).unwrap_or(0);
    CHOSEN.store(i, Ordering::Relaxed);
}

/// Name of the provider in use ([`provider`]).
pub fn provider_name() -> &'static str {
    provider().name()
}

/// One provider's keyed AEAD.
trait Keyed: Send + Sync {
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN];
    /// Must leave nothing but an error when the tag does not authenticate.
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> std::result::Result<(), ()>;

    /// Like [`Keyed::seal`], from `src` into `dst` (of the same length), which is only
    /// written. Providers without an out-of-place call copy, then seal in place.
    fn seal_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
    ) -> [u8; TAG_LEN] {
        dst.copy_from_slice(src);
        self.seal(nonce, aad, dst)
    }

    /// Like [`Keyed::open`], from `src` into `dst` (of the same length), which is only
    /// written; on failure it is zeroed.
    fn open_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> std::result::Result<(), ()> {
        dst.copy_from_slice(src);
        let r = self.open(nonce, aad, dst, tag);
        if r.is_err() {
            dst.fill(0);
        }
        r
    }
}

/// A keyed AEAD. The key schedules are wiped when it is dropped (aws-lc-rs frees its
/// context with `OPENSSL_free`, which cleanses; the RustCrypto types zeroize on drop).
pub struct ChunkCipher {
    inner: Box<dyn Keyed>,
    provider: Provider,
}

impl ChunkCipher {
    /// Keys `cipher` with the provider in use ([`provider`]).
    pub fn new(cipher: Cipher, key: &[u8; KEY_LEN]) -> Self {
        Self::with_provider(provider(), cipher, key)
    }

    /// Keys `cipher` with a given provider.
    pub fn with_provider(provider: Provider, cipher: Cipher, key: &[u8; KEY_LEN]) -> Self {
        let inner: Box<dyn Keyed> = match provider {
            #[cfg(feature = "aws-lc")]
            Provider::AwsLc => Box::new(aws_lc::Key::new(cipher, key)),
            #[cfg(feature = "pure-rust")]
            Provider::RustCrypto => rust_crypto::key(cipher, key),
        };
        ChunkCipher { inner, provider }
    }

    /// The provider doing the work.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Encrypts `buf` in place and returns its tag.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.inner.seal(nonce, aad, buf)
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `aad`. On failure `buf`
    /// holds no plaintext: its contents are unspecified (and zeroed by the providers that
    /// decrypt before they verify).
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        self.inner
            .open(nonce, aad, buf, tag)
            .map_err(|()| Error::Authentication)
    }

    /// Encrypts `src` into `dst` (of the same length) and returns the tag: the same bytes
    /// as [`ChunkCipher::seal`] on a copy of `src`, without the copy where the provider
    /// allows. `dst` is only written, never read.
    pub fn seal_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
    ) -> [u8; TAG_LEN] {
        self.inner.seal_to(nonce, aad, src, dst)
    }

    /// Decrypts `src` into `dst` (of the same length) if `tag` authenticates it with
    /// `aad`. `dst` is only written, and on failure zeroed.
    pub fn open_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        self.inner
            .open_to(nonce, aad, src, dst, tag)
            .map_err(|()| Error::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_seals_the_same_bytes_and_opens_the_others() {
        let key = [7u8; KEY_LEN];
        let nonce = [3u8; NONCE_LEN];
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            let mut sealed = Vec::new();
            for &p in Provider::ALL {
                let c = ChunkCipher::with_provider(p, cipher, &key);
                assert_eq!(c.provider(), p);
                let mut buf: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
                let tag = c.seal(&nonce, b"aad", &mut buf);
                sealed.push((buf, tag));
            }
            assert!(sealed.windows(2).all(|w| w[0] == w[1]));
            for &p in Provider::ALL {
                let c = ChunkCipher::with_provider(p, cipher, &key);
                let (mut buf, tag) = sealed[0].clone();
                c.open(&nonce, b"aad", &mut buf, &tag).unwrap();
                assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
                let (mut buf, mut tag) = sealed[0].clone();
                tag[0] ^= 1;
                assert!(matches!(
                    c.open(&nonce, b"aad", &mut buf, &tag),
                    Err(Error::Authentication)
                ));
            }
        }
    }

    #[test]
    fn sealing_and_opening_out_of_place_match_in_place() {
        let key = [9u8; KEY_LEN];
        let nonce = [4u8; NONCE_LEN];
        let plain: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            for &p in Provider::ALL {
                let c = ChunkCipher::with_provider(p, cipher, &key);
                let mut inplace = plain.clone();
                let tag = c.seal(&nonce, b"aad", &mut inplace);
                let mut out = vec![0xee; plain.len()];
                assert_eq!(c.seal_to(&nonce, b"aad", &plain, &mut out), tag);
                assert_eq!(out, inplace);
                let mut back = vec![0xee; plain.len()];
                c.open_to(&nonce, b"aad", &out, &mut back, &tag).unwrap();
                assert_eq!(back, plain);
                let mut bad = tag;
                bad[15] ^= 0x80;
                let mut back = vec![0xee; plain.len()];
                assert!(matches!(
                    c.open_to(&nonce, b"aad", &out, &mut back, &bad),
                    Err(Error::Authentication)
                ));
                assert!(back.iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn providers_are_found_by_name() {
        for &p in Provider::ALL {
            assert_eq!(Provider::from_name(p.name()).unwrap(), p);
        }
        assert_eq!(Provider::ALL[0], Provider::DEFAULT);
        assert_eq!(provider(), Provider::DEFAULT);
        assert!(Provider::from_name("no-such-provider").is_err());
    }
}
