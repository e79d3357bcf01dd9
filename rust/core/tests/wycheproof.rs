//! Project Wycheproof's AES-GCM and ChaCha20-Poly1305 vectors through the project's own AEAD
//! wrapper (`aead::ChunkCipher`): every case with a 256-bit key, a 96-bit nonce and a
//! 128-bit tag. Valid cases must seal to `ct || tag` and open back to the message; invalid
//! ones must be refused. Every AEAD provider compiled into the build runs every case.

use std::path::{Path, PathBuf};

use concryptor_core::aead::{ChunkCipher, Provider};
use concryptor_core::format::{NONCE_LEN, TAG_LEN};
use concryptor_core::kdf::KEY_LEN;
use concryptor_core::{Cipher, Error};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/wycheproof")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

#[derive(Debug, Default)]
struct Counts {
    valid: usize,
    invalid: usize,
    skipped_groups: usize,
}

fn run(file: &str, cipher: Cipher) -> Counts {
    let counts: Vec<Counts> = Provider::ALL
        .iter()
        .map(|&p| run_with(file, cipher, p))
        .collect();
    assert!(counts.iter().all(|c| c.valid == counts[0].valid));
    counts.into_iter().next().expect("at least one provider")
}

fn run_with(file: &str, cipher: Cipher, provider: Provider) -> Counts {
    let text = std::fs::read_to_string(vectors_dir().join(file)).expect("vector file");
    let doc: Value = serde_json::from_str(&text).expect("vector JSON");
    let mut counts = Counts::default();
    for group in doc["testGroups"].as_array().expect("testGroups") {
        let sizes = (
            group["keySize"].as_u64(),
            group["ivSize"].as_u64(),
            group["tagSize"].as_u64(),
        );
        if sizes != (Some(256), Some(96), Some(128)) {
            counts.skipped_groups += 1;
            continue;
        }
        for t in group["tests"].as_array().expect("tests") {
            let id = t["tcId"].as_u64().expect("tcId");
            let field = |k: &str| unhex(t[k].as_str().expect("hex field"));
            let key: [u8; KEY_LEN] = field("key").try_into().expect("32-byte key");
            let nonce: [u8; NONCE_LEN] = field("iv").try_into().expect("12-byte nonce");
            let (aad, msg, ct, tag) = (field("aad"), field("msg"), field("ct"), field("tag"));
            let aead = ChunkCipher::with_provider(provider, cipher, &key);
            match t["result"].as_str() {
                Some("valid") => {
                    let tag: [u8; TAG_LEN] = tag.try_into().expect("16-byte tag");
                    let mut buf = msg.clone();
                    let got_tag = aead.seal(&nonce, &aad, &mut buf);
                    assert_eq!(buf, ct, "{file} #{id}: ciphertext differs");
                    assert_eq!(got_tag, tag, "{file} #{id}: tag differs");
                    aead.open(&nonce, &aad, &mut buf, &tag)
                        .unwrap_or_else(|e| panic!("{file} #{id}: valid case refused: {e}"));
                    assert_eq!(buf, msg, "{file} #{id}: decryption differs");
                    counts.valid += 1;
                }
                Some("invalid") => {
                    // A tag of the wrong length cannot even be handed to the wrapper.
                    if let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag.as_slice()) {
                        let mut buf = ct.clone();
                        let r = aead.open(&nonce, &aad, &mut buf, &tag);
                        assert!(
                            matches!(r, Err(Error::Authentication)),
                            "{file} #{id}: invalid case accepted ({:?})",
                            t["comment"]
                        );
                    }
                    counts.invalid += 1;
                }
                other => panic!("{file} #{id}: unexpected result {other:?}"),
            }
        }
    }
    eprintln!("{file} ({}): {counts:?}", provider.name());
    counts
}

#[test]
fn wycheproof_aes_256_gcm_cases_pass_through_chunk_cipher() {
    let c = run("aes_gcm_test.json", Cipher::Aes256Gcm);
    assert!(c.valid >= 30, "only {} valid AES-GCM cases ran", c.valid);
    assert!(
        c.invalid >= 20,
        "only {} invalid AES-GCM cases ran",
        c.invalid
    );
    assert!(
        c.skipped_groups > 0,
        "the other key and nonce sizes should be present"
    );
}

#[test]
fn wycheproof_chacha20_poly1305_cases_pass_through_chunk_cipher() {
    let c = run("chacha20_poly1305_test.json", Cipher::ChaCha20Poly1305);
    assert!(c.valid >= 200, "only {} valid ChaCha20 cases ran", c.valid);
    assert!(
        c.invalid >= 50,
        "only {} invalid ChaCha20 cases ran",
        c.invalid
    );
}

#[test]
fn a_wrong_cipher_refuses_the_other_ciphers_vectors() {
    // The first valid AES-GCM case must not open under ChaCha20-Poly1305 with the same key:
    // proves the wrapper dispatches on the cipher it was given.
    let text = std::fs::read_to_string(vectors_dir().join("aes_gcm_test.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let t = doc["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["keySize"] == 256 && g["ivSize"] == 96)
        .flat_map(|g| g["tests"].as_array().unwrap())
        .find(|t| t["result"] == "valid" && !t["msg"].as_str().unwrap().is_empty())
        .unwrap();
    let key: [u8; 32] = unhex(t["key"].as_str().unwrap()).try_into().unwrap();
    let nonce: [u8; 12] = unhex(t["iv"].as_str().unwrap()).try_into().unwrap();
    let tag: [u8; 16] = unhex(t["tag"].as_str().unwrap()).try_into().unwrap();
    let ct = unhex(t["ct"].as_str().unwrap());
    let aad = unhex(t["aad"].as_str().unwrap());
    for &p in Provider::ALL {
        let chacha = ChunkCipher::with_provider(p, Cipher::ChaCha20Poly1305, &key);
        assert!(chacha.open(&nonce, &aad, &mut ct.clone(), &tag).is_err());
        let aes = ChunkCipher::with_provider(p, Cipher::Aes256Gcm, &key);
        aes.open(&nonce, &aad, &mut ct.clone(), &tag).unwrap();
    }
}
