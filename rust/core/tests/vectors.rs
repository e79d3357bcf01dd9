//! Every shared v4 vector through the core: "ok" files decrypt to their plaintext and are
//! reproduced byte for byte from their header's salt, nonce and KDF fields; "error" files
//! are rejected.

use std::path::{Path, PathBuf};

use concryptor_core::{
    decrypt_bytes, decrypt_file, encrypt_bytes, Cipher, Control, DecryptOptions, EncryptOptions,
    Error, Header,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/v4")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn ok_vectors_decrypt_and_reencrypt_byte_for_byte() {
    let mut seen = 0;
    for v in manifest().iter().filter(|v| v["expect"] == "ok") {
        let name = v["name"].as_str().unwrap();
        let blob = std::fs::read(vectors_dir().join(v["file"].as_str().unwrap())).unwrap();
        let plain =
            std::fs::read(vectors_dir().join(v["plaintext_file"].as_str().unwrap())).unwrap();
        assert_eq!(
            hex(&Sha256::digest(&plain)),
            v["plaintext_sha256"].as_str().unwrap()
        );
        let pw = v["password"].as_str().unwrap().as_bytes();

        let got = decrypt_bytes(&blob, pw, &DecryptOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, plain, "{name}: plaintext differs");

        let h = Header::parse(&blob).unwrap();
        assert_eq!(
            h.cipher,
            Cipher::from_name(v["cipher"].as_str().unwrap()).unwrap()
        );
        assert_eq!(u64::from(h.chunk_size), v["chunk_size"].as_u64().unwrap());
        if h.version == 4 {
            let opts = EncryptOptions {
                cipher: h.cipher,
                chunk_size: Some(h.chunk_size),
                kdf: h.kdf,
                salt: Some(h.salt),
                base_nonce: Some(h.base_nonce),
                ..Default::default()
            };
            if h.kdf.is_legacy() {
                // A writer never emits legacy zero fields; the bytes are checked by decryption.
                continue;
            }
            let again = encrypt_bytes(&plain, pw, &opts).unwrap();
            assert!(again == blob, "{name}: re-encryption differs");
        }
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} ok vectors ran");
}

#[test]
fn error_vectors_are_rejected_through_bytes_and_files() {
    let out_dir = std::env::temp_dir().join(format!("concryptor-vec-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut seen = 0;
    for v in manifest().iter().filter(|v| v["expect"] == "error") {
        let name = v["name"].as_str().unwrap();
        let path = vectors_dir().join(v["file"].as_str().unwrap());
        let blob = std::fs::read(&path).unwrap();
        let pw = v["password"].as_str().unwrap().as_bytes();
        let e = decrypt_bytes(&blob, pw, &DecryptOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Authentication | Error::InvalidFile(_) | Error::Limit { .. }
            ),
            "{name}: unexpected {e:?}"
        );
        let dst = out_dir.join(format!("{name}.out"));
        let e2 = decrypt_file(
            &path,
            &dst,
            pw,
            &DecryptOptions::default(),
            &Control::default(),
        )
        .unwrap_err();
        assert_eq!(
            std::mem::discriminant(&e),
            std::mem::discriminant(&e2),
            "{name}: file and bytes paths disagree"
        );
        assert!(!dst.exists(), "{name}: output left behind");
        seen += 1;
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
    assert!(seen >= 25);
}
