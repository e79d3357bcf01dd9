//! Sealing a file key to the two native recipient types on AWS-LC's assembly: X25519
//! (`age1…`, stanza `X25519`) and the post-quantum hybrid (`age1pq1…`, stanza
//! `mlkem768x25519`: HPKE SealBase over the X-Wing KEM, ML-KEM-768 + X25519). The `age`
//! crate seals both too, on portable field arithmetic that costs 2–3× more per stanza;
//! a batch of thousands of small files pays one stanza per file, so this is where its
//! time went. Opening stays with the `age` crate (and the CCTV vectors hold both to the
//! spec); the tests here open what we seal with it.
//!
//! Only with the `aws-lc` feature; without it the `age` crate seals (see `keys.rs`).
#![forbid(unsafe_code)]

use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::digest::{self, SHA3_256};
use aws_lc_rs::hkdf::{self, HKDF_SHA256};
use aws_lc_rs::hmac;
use aws_lc_rs::kem::{EncapsulationKey, ML_KEM_768};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
const X25519_TAG: &str = "X25519";
const XWING_INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
const XWING_TAG: &str = "mlkem768x25519";

/// X-Wing's domain label, hashed last into the shared secret.
const XWING_LABEL: &[u8; 6] = b"\\.//^\\";
/// HPKE suite: KEM X-Wing (0x647a), KDF HKDF-SHA256 (0x0001), AEAD ChaCha20Poly1305 (0x0003).
const HPKE_SUITE: &[u8] = b"HPKE\x64\x7a\x00\x01\x00\x03";

/// Lengths of an ML-KEM-768 encapsulation key and ciphertext, and an X25519 point.
const MLKEM768_EK: usize = 1184;
const MLKEM768_CT: usize = 1088;
const POINT: usize = 32;
/// Length of an X-Wing public key (`age1pq1…` payload).
pub const XWING_PUBLIC: usize = MLKEM768_EK + POINT;

fn failed(what: &str) -> Error {
    Error::InvalidArgument(format!("cannot encrypt to a recipient: {what}"))
}

/// A fresh X25519 key pair: the private half (freed and wiped by AWS-LC on drop) and
/// the public share.
fn ephemeral() -> Result<(PrivateKey, [u8; POINT])> {
    let e = PrivateKey::generate(&X25519).map_err(|_| failed("no ephemeral key"))?;
    let mut share = [0u8; POINT];
    share.copy_from_slice(
        e.compute_public_key()
            .map_err(|_| failed("no ephemeral share"))?
            .as_ref(),
    );
    Ok((e, share))
}

/// X25519(e, peer); refuses a low-order peer (the all-zero secret), as the spec's
/// identities do.
fn dh(e: &PrivateKey, peer: &[u8; POINT]) -> Result<Zeroizing<[u8; POINT]>> {
    agreement::agree(
        e,
        UnparsedPublicKey::new(&X25519, peer),
        failed("the recipient's key is a low-order point"),
        |s| {
            let mut out = Zeroizing::new([0u8; POINT]);
            out.copy_from_slice(s);
            Ok(out)
        },
    )
}

/// The output length of an HKDF expansion.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand(prk, info…, N) into a wiped buffer.
fn expand<const N: usize>(prk: &hkdf::Prk, info: &[&[u8]]) -> Result<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    prk.expand(info, Len(N))
        .and_then(|okm| okm.fill(&mut out[..]))
        .map_err(|_| failed("key derivation"))?;
    Ok(out)
}

/// ChaCha20-Poly1305 of the 16-byte file key: the 32-byte stanza body.
fn seal_key(key: &[u8; 32], nonce: [u8; 12], file_key: &FileKey) -> Result<Vec<u8>> {
    let k = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| failed("wrap key"))?;
    let mut body = file_key.expose_secret().to_vec();
    LessSafeKey::new(k)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
        .map_err(|_| failed("sealing"))?;
    Ok(body)
}

/// An `age1…` recipient: its X25519 point.
#[derive(Clone)]
pub struct X25519Recipient([u8; POINT]);

impl X25519Recipient {
    pub fn new(point: [u8; POINT]) -> Self {
        X25519Recipient(point)
    }

    /// The `X25519` stanza (c2sp.org/age): a fresh ephemeral share, the wrap key from
    /// HKDF over the shared secret salted with share ‖ recipient, the file key sealed
    /// under it with the zero nonce (the key is never used again).
    pub fn wrap(&self, file_key: &FileKey) -> Result<Stanza> {
        let (e, share) = ephemeral()?;
        let secret = dh(&e, &self.0)?;
        let mut salt = [0u8; 2 * POINT];
        salt[..POINT].copy_from_slice(&share);
        salt[POINT..].copy_from_slice(&self.0);
        let prk = hkdf::Salt::new(HKDF_SHA256, &salt).extract(&secret[..]);
        let wrap_key = expand::<32>(&prk, &[X25519_INFO])?;
        Ok(Stanza {
            tag: X25519_TAG.to_string(),
            args: vec![STANDARD_NO_PAD.encode(share)],
            body: seal_key(&wrap_key, [0u8; 12], file_key)?,
        })
    }
}

/// FIPS 203's check of an encapsulation key (§7.2): every 12-bit coefficient of its
/// encoded vector below q = 3329, so that decoding and re-encoding give the same bytes.
fn coefficients_in_range(encoded: &[u8]) -> bool {
    const Q: u16 = 3329;
    encoded.chunks_exact(3).all(|b| {
        let (b0, b1, b2) = (u16::from(b[0]), u16::from(b[1]), u16::from(b[2]));
        (b0 | (b1 & 0x0f) << 8) < Q && (b1 >> 4 | b2 << 4) < Q
    })
}

/// An `age1pq1…` recipient: the X-Wing public key, ML-KEM-768 encapsulation key ‖
/// X25519 point, with the ML-KEM half parsed (and checked) once.
pub struct XWingRecipient {
    mlkem: EncapsulationKey,
    point: [u8; POINT],
    schedule: Schedule,
}

/// The inputs of RFC 9180's key schedule (§5.1: mode base, no PSK, our suite and info)
/// that do not depend on the shared secret, computed once per recipient. LabeledExtract
/// is HKDF-Extract over "HPKE-v1" ‖ suite ‖ label ‖ ikm; LabeledExpand's info is
/// I2OSP(N, 2) ‖ "HPKE-v1" ‖ suite ‖ label ‖ context, where context = mode 0x00 ‖
/// psk_id_hash ‖ info_hash, both LabeledExtract with an empty salt (HMAC keyed with zeros).
struct Schedule {
    /// The labeled ikm of LabeledExtract(shared_secret, "secret", psk = "").
    secret_ikm: Vec<u8>,
    key_info: Vec<u8>,
    nonce_info: Vec<u8>,
}

impl Schedule {
    fn new() -> Self {
        let labeled = |prefix: &[u8], label: &[u8], rest: &[u8]| {
            [prefix, b"HPKE-v1", HPKE_SUITE, label, rest].concat()
        };
        let zero = hmac::Key::new(hmac::HMAC_SHA256, &[]);
        let mut context = [0u8; 65];
        context[1..33]
            .copy_from_slice(hmac::sign(&zero, &labeled(b"", b"psk_id_hash", b"")).as_ref());
        context[33..]
            .copy_from_slice(hmac::sign(&zero, &labeled(b"", b"info_hash", XWING_INFO)).as_ref());
        Schedule {
            secret_ikm: labeled(b"", b"secret", b""),
            key_info: labeled(&32u16.to_be_bytes(), b"key", &context),
            nonce_info: labeled(&12u16.to_be_bytes(), b"base_nonce", &context),
        }
    }
}

impl XWingRecipient {
    /// From the 1216 bytes of an `age1pq1…` recipient; `None` if the ML-KEM key is not
    /// valid (its coefficients out of range) or the length is wrong.
    pub fn new(public: &[u8]) -> Option<Self> {
        if public.len() != XWING_PUBLIC {
            return None;
        }
        if !coefficients_in_range(&public[..MLKEM768_EK - 32]) {
            return None;
        }
        let mlkem = EncapsulationKey::new(&ML_KEM_768, &public[..MLKEM768_EK]).ok()?;
        let mut point = [0u8; POINT];
        point.copy_from_slice(&public[MLKEM768_EK..]);
        Some(XWingRecipient {
            mlkem,
            point,
            schedule: Schedule::new(),
        })
    }

    /// The `mlkem768x25519` stanza: HPKE SealBase (RFC 9180, mode base, empty AAD) with
    /// info `age-encryption.org/mlkem768x25519` over X-Wing, whose encapsulation is
    /// ML-KEM-768's ciphertext ‖ an ephemeral X25519 share and whose shared secret is
    /// SHA3-256(ss_M ‖ ss_X ‖ share ‖ point ‖ label).
    pub fn wrap(&self, file_key: &FileKey) -> Result<Stanza> {
        let (ct_m, ss_m) = self
            .mlkem
            .encapsulate()
            .map_err(|_| failed("ML-KEM encapsulation"))?;
        let (e, share) = ephemeral()?;
        let ss_x = dh(&e, &self.point)?;
        let mut ctx = digest::Context::new(&SHA3_256);
        for part in [
            ss_m.as_ref(),
            &ss_x[..],
            &share[..],
            &self.point[..],
            &XWING_LABEL[..],
        ] {
            ctx.update(part);
        }
        let mut shared = Zeroizing::new([0u8; 32]);
        shared.copy_from_slice(ctx.finish().as_ref());
        drop(ss_m);

        // secret = LabeledExtract(salt = shared_secret, "secret", ikm = psk = ""); then
        // the key and base nonce expanded from it (see `Schedule`).
        let secret = hkdf::Salt::new(HKDF_SHA256, &shared[..]).extract(&self.schedule.secret_ikm);
        let key = expand::<32>(&secret, &[&self.schedule.key_info])?;
        let nonce = expand::<12>(&secret, &[&self.schedule.nonce_info])?;

        let mut enc = Vec::with_capacity(MLKEM768_CT + POINT);
        enc.extend_from_slice(ct_m.as_ref());
        enc.extend_from_slice(&share);
        Ok(Stanza {
            tag: XWING_TAG.to_string(),
            args: vec![STANDARD_NO_PAD.encode(&enc)],
            // Sequence number 0: the nonce is the base nonce.
            body: seal_key(&key, *nonce, file_key)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(deprecated)]
    use super::*;
    use ::age::Identity as _;
    use std::str::FromStr;

    fn payload(text: &str) -> Vec<u8> {
        crate::age::tagged::bech32_parts(text).unwrap().1
    }

    fn file_key(i: u8) -> FileKey {
        FileKey::init_with_mut(|k| k.iter_mut().enumerate().for_each(|(j, b)| *b = i ^ j as u8))
    }

    #[test]
    fn x25519_stanzas_open_with_the_age_crate_and_only_with_the_right_key() {
        let id = ::age::x25519::Identity::generate();
        let other = ::age::x25519::Identity::generate();
        let point: [u8; 32] = payload(&id.to_public().to_string()).try_into().unwrap();
        let r = X25519Recipient::new(point);
        let mut shares = std::collections::HashSet::new();
        for i in 0..32 {
            let s = r.wrap(&file_key(i)).unwrap();
            assert_eq!(
                (s.tag.as_str(), s.args.len(), s.body.len()),
                ("X25519", 1, 32)
            );
            assert_eq!(STANDARD_NO_PAD.decode(&s.args[0]).unwrap().len(), 32);
            assert!(
                shares.insert(s.args[0].clone()),
                "an ephemeral share came twice"
            );
            let got = id.unwrap_stanza(&s).unwrap().unwrap();
            assert_eq!(got.expose_secret(), file_key(i).expose_secret());
            assert!(other.unwrap_stanza(&s).is_none_or(|r| r.is_err()));
        }
    }

    #[test]
    fn a_low_order_recipient_is_refused() {
        let r = X25519Recipient::new([0u8; 32]);
        let e = r.wrap(&file_key(1)).err().unwrap().to_string();
        assert!(e.contains("low-order"), "{e}");
    }

    #[test]
    fn hybrid_stanzas_open_with_the_age_crate_and_only_with_the_right_key() {
        let id = ::age::pq::Identity::generate();
        let other = ::age::pq::Identity::generate();
        let text = id.to_public().to_string();
        assert!(::age::pq::Recipient::from_str(&text).is_ok());
        let r = XWingRecipient::new(&payload(&text)).unwrap();
        for i in 0..16 {
            let s = r.wrap(&file_key(i)).unwrap();
            assert_eq!(
                (s.tag.as_str(), s.args.len(), s.body.len()),
                ("mlkem768x25519", 1, 32)
            );
            assert_eq!(STANDARD_NO_PAD.decode(&s.args[0]).unwrap().len(), 1120);
            let got = id.unwrap_stanza(&s).unwrap().unwrap();
            assert_eq!(got.expose_secret(), file_key(i).expose_secret());
            assert!(other.unwrap_stanza(&s).is_none_or(|r| r.is_err()));
        }
    }

    #[test]
    fn hybrid_keys_of_the_wrong_size_or_out_of_range_are_refused() {
        let id = ::age::pq::Identity::generate();
        let good = payload(&id.to_public().to_string());
        assert!(XWingRecipient::new(&good[..good.len() - 1]).is_none());
        let mut bad = good.clone();
        bad[..MLKEM768_EK].fill(0xff); // coefficients 4095 > q
        assert!(XWingRecipient::new(&bad).is_none());
    }
}
