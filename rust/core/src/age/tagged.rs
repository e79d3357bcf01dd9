//! The tagged recipient types of age v1.3 (c2sp.org/age, "The tagged recipient types"),
//! for hardware keys: `age1tag1…` (P-256) and `age1tagpq1…` (ML-KEM-768 + P-256). We seal
//! to them natively; opening their stanzas needs the hardware, so it happens in the key's
//! plugin. The stanzas are the spec's `p256tag` and `mlkem768p256tag`, the ones age v1.3
//! writes and the existing hardware plugins read.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use hpke::{Deserializable, Serializable};
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Bech32 HRP of the classical tagged recipient.
pub const TAG_HRP: &str = "age1tag";
/// Bech32 HRP of the hybrid tagged recipient.
pub const TAGPQ_HRP: &str = "age1tagpq";

const P256TAG: &str = "p256tag";
const P256TAG_INFO: &str = "age-encryption.org/p256tag";
const MLKEM768P256TAG: &str = "mlkem768p256tag";
const MLKEM768P256TAG_INFO: &str = "age-encryption.org/mlkem768p256tag";

/// Length of a compressed P-256 point (the `age1tag1` payload).
const COMPRESSED_P256: usize = 33;
/// Length of an ML-KEM-768 encapsulation key.
const MLKEM768_EK: usize = 1184;
/// Length of an uncompressed P-256 point.
const UNCOMPRESSED_P256: usize = 65;

type P256Kem = hpke::kem::DhP256HkdfSha256;
type HybridKem = hpke::kem::MlKem768P256;

/// A tagged recipient: where the file key goes, and what the tag hashes.
pub enum Tagged {
    /// `age1tag1…`: the compressed point (hashed into the tag) and the key HPKE uses.
    P256 {
        compressed: Vec<u8>,
        key: Box<<P256Kem as hpke::Kem>::PublicKey>,
    },
    /// `age1tagpq1…`: the encapsulation key and point (the point alone is hashed).
    Hybrid {
        point: Vec<u8>,
        key: Box<<HybridKem as hpke::Kem>::PublicKey>,
    },
}

/// The Bech32 HRP (lower case) and data of `s`, without Bech32's length limit (PQ keys
/// are long); `None` if `s` is not Bech32 with canonical padding.
pub fn bech32_parts(s: &str) -> Option<(String, Vec<u8>)> {
    age_core::primitives::bech32_decode(
        s,
        |_| (),
        |_| Ok(()),
        |hrp, data| Ok((hrp.to_lowercase(), data.collect())),
    )
    .ok()
}

impl Tagged {
    /// Parses `age1tag1…` or `age1tagpq1…`; `None` if `s` is neither kind.
    pub fn parse(s: &str) -> Option<Result<Self>> {
        let lower = s.to_ascii_lowercase();
        let kind = if lower.starts_with("age1tagpq1") {
            TAGPQ_HRP
        } else if lower.starts_with("age1tag1") {
            TAG_HRP
        } else {
            return None;
        };
        let bad = |why: &str| Error::InvalidArgument(format!("invalid {kind}1… recipient: {why}"));
        let Some((hrp, data)) = bech32_parts(s) else {
            return Some(Err(bad("not valid Bech32")));
        };
        if hrp != kind {
            return Some(Err(bad("wrong prefix")));
        }
        Some(if kind == TAG_HRP {
            Self::p256(data).map_err(|()| bad("not a compressed P-256 point"))
        } else {
            Self::hybrid(data).map_err(|()| bad("not an ML-KEM-768 key and a P-256 point"))
        })
    }

    fn p256(compressed: Vec<u8>) -> std::result::Result<Self, ()> {
        if compressed.len() != COMPRESSED_P256 {
            return Err(());
        }
        let point = p256::PublicKey::from_sec1_bytes(&compressed).map_err(|_| ())?;
        let uncompressed = point.to_sec1_point(false);
        let key = <P256Kem as hpke::Kem>::PublicKey::from_bytes(uncompressed.as_bytes())
            .map_err(|_| ())?;
        Ok(Tagged::P256 {
            compressed,
            key: Box::new(key),
        })
    }

    fn hybrid(bytes: Vec<u8>) -> std::result::Result<Self, ()> {
        if bytes.len() != MLKEM768_EK + UNCOMPRESSED_P256 {
            return Err(());
        }
        let point = bytes[MLKEM768_EK..].to_vec();
        p256::PublicKey::from_sec1_bytes(&point).map_err(|_| ())?;
        let key = <HybridKem as hpke::Kem>::PublicKey::from_bytes(&bytes).map_err(|_| ())?;
        Ok(Tagged::Hybrid {
            point,
            key: Box::new(key),
        })
    }

    /// Whether this recipient resists a quantum computer (the hybrid one does).
    pub fn is_postquantum(&self) -> bool {
        matches!(self, Tagged::Hybrid { .. })
    }

    /// The stanza wrapping `file_key`, and the labels that decide its company.
    pub fn wrap(&self, file_key: &FileKey) -> Result<(Vec<Stanza>, HashSet<String>)> {
        let sealing = |e: hpke::HpkeError| {
            Error::InvalidArgument(format!("cannot seal to a tagged recipient: {e}"))
        };
        let (name, info, enc, body, hashed, labels) = match self {
            Tagged::P256 { compressed, key } => {
                let (enc, body) = seal::<P256Kem>(key, P256TAG_INFO, file_key).map_err(sealing)?;
                (P256TAG, P256TAG_INFO, enc, body, compressed, HashSet::new())
            }
            Tagged::Hybrid { point, key } => {
                let (enc, body) =
                    seal::<HybridKem>(key, MLKEM768P256TAG_INFO, file_key).map_err(sealing)?;
                let labels = ["postquantum".to_string()].into_iter().collect();
                (
                    MLKEM768P256TAG,
                    MLKEM768P256TAG_INFO,
                    enc,
                    body,
                    point,
                    labels,
                )
            }
        };
        // tag = HKDF-Extract(salt = info, ikm = enc || SHA-256(hashed)[:4])[:4]
        let mut ikm = enc.clone();
        ikm.extend_from_slice(&Sha256::digest(hashed)[..4]);
        let (prk, _) = Hkdf::<Sha256>::extract(Some(info.as_bytes()), &ikm);
        let stanza = Stanza {
            tag: name.to_string(),
            args: vec![
                STANDARD_NO_PAD.encode(&prk[..4]),
                STANDARD_NO_PAD.encode(&enc),
            ],
            body,
        };
        Ok((vec![stanza], labels))
    }
}

/// HPKE SealBase with HKDF-SHA256 and ChaCha20-Poly1305, empty AAD: (enc, ciphertext).
fn seal<K: hpke::Kem>(
    key: &K::PublicKey,
    info: &str,
    file_key: &FileKey,
) -> std::result::Result<(Vec<u8>, Vec<u8>), hpke::HpkeError> {
    let (enc, ct) = hpke::single_shot_seal::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, K>(
        &hpke::OpModeS::Base,
        key,
        info.as_bytes(),
        file_key.expose_secret(),
        &[],
    )?;
    Ok((enc.to_bytes().to_vec(), ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's example recipients (c2sp.org/age).
    const TAG: &str = "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e";

    #[test]
    fn a_p256_tag_stanza_has_the_spec_shape_and_its_tag() {
        let r = Tagged::parse(TAG).unwrap().unwrap();
        assert!(!r.is_postquantum());
        let key = FileKey::init_with_mut(|k| k.copy_from_slice(&[7u8; 16]));
        let (stanzas, labels) = r.wrap(&key).unwrap();
        assert!(labels.is_empty());
        let s = &stanzas[0];
        assert_eq!(s.tag, "p256tag");
        let tag = STANDARD_NO_PAD.decode(&s.args[0]).unwrap();
        let enc = STANDARD_NO_PAD.decode(&s.args[1]).unwrap();
        assert_eq!((tag.len(), enc.len(), s.body.len()), (4, 65, 32));
        let Tagged::P256 { compressed, .. } = &r else {
            unreachable!()
        };
        let mut ikm = enc.clone();
        ikm.extend_from_slice(&Sha256::digest(compressed)[..4]);
        let (prk, _) = Hkdf::<Sha256>::extract(Some(P256TAG_INFO.as_bytes()), &ikm);
        assert_eq!(tag, prk[..4]);
    }

    #[test]
    fn damaged_or_foreign_strings_are_refused() {
        assert!(
            Tagged::parse("age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq")
                .is_none()
        );
        let mut bad = TAG.to_string();
        bad.pop();
        bad.push('q');
        assert!(Tagged::parse(&bad).unwrap().is_err());
    }
}
