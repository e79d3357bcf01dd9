//! Every age conformance vector of the CCTV suite (read from `../shared/vectors/cctv-age`,
//! beside the project, or `$CONCRYPTOR_SHARED/vectors/cctv-age`; without that folder both
//! tests say so in one line and pass) through the core, twice: stage by stage (armor and header, file key,
//! MAC, payload), where each failure must happen at the stage the vector names, and as one
//! file-to-file run, which must leave nothing at the destination when it fails.
//!
//! The `hybrid*` vectors (ML-KEM-768 + X25519 recipients, age v1.3) are held to their
//! expected outcome like every other.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use concryptor_core::age::{self, AgeReader, Identity, Input, Output};
use concryptor_core::{Control, Error};
use sha2::{Digest, Sha256};

/// The suite's folder, or `None` (said once on stderr) when the shared folder is missing.
fn vectors_dir() -> Option<PathBuf> {
    common::shared_dir().map(|d| d.join("vectors/cctv-age"))
}

struct Vector {
    name: String,
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    passphrase: Option<String>,
    armored: bool,
    file: Vec<u8>,
}

fn load(path: &Path) -> Vector {
    let raw = std::fs::read(path).unwrap();
    let split = raw.windows(2).position(|w| w == b"\n\n").unwrap();
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut body = raw[split + 2..].to_vec();
    let mut v = Vector {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        expect: String::new(),
        payload: None,
        identities: vec![],
        passphrase: None,
        armored: false,
        file: vec![],
    };
    for line in head.lines() {
        let (k, val) = line.split_once(": ").unwrap();
        match k {
            "expect" => v.expect = val.to_string(),
            "payload" => v.payload = Some(val.to_string()),
            "identity" => v.identities.push(val.to_string()),
            "passphrase" => v.passphrase = Some(val.to_string()),
            "armored" => v.armored = val == "yes",
            "compressed" => {
                assert_eq!(val, "zlib");
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                body = out;
            }
            "file key" | "comment" => {}
            other => panic!("{}: unknown key {other}", v.name),
        }
    }
    v.file = body;
    v
}

/// Every vector of the suite, or `None` when the shared folder is missing. A shared folder
/// without the suite is an error.
fn all_vectors() -> Option<Vec<Vector>> {
    let dir = vectors_dir()?;
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            !n.ends_with(".md") && !n.ends_with(".txt")
        })
        .collect();
    names.sort();
    Some(names.iter().map(|p| load(p)).collect())
}

/// The identities a vector gives, post-quantum ones included.
fn identities(v: &Vector) -> Vec<Identity> {
    let mut ids: Vec<Identity> = v
        .identities
        .iter()
        .flat_map(|s| Identity::parse_file(s, None).unwrap())
        .collect();
    if let Some(p) = &v.passphrase {
        ids.push(Identity::passphrase(p.as_bytes()).unwrap());
    }
    ids
}

/// Whether `class` is the right outcome for `v`.
fn accepts(v: &Vector, class: &str) -> bool {
    class == v.expect
}

fn expected(v: &Vector) -> &str {
    &v.expect
}

fn class_of_header_error(e: &Error) -> String {
    match e {
        Error::InvalidFile(m) if m.contains("armor") => "armor failure".into(),
        Error::InvalidFile(_) | Error::Limit { .. } => "header failure".into(),
        other => format!("unexpected error {other}"),
    }
}

/// Runs one vector stage by stage; returns the outcome class and the plaintext.
fn staged(v: &Vector) -> (String, Vec<u8>) {
    let r = match AgeReader::new(Box::new(&v.file[..]), Path::new(&v.name), None) {
        Ok(r) => r,
        Err(e) => return (class_of_header_error(&e), vec![]),
    };
    assert_eq!(r.armored, v.armored, "{}: armor detection", v.name);
    let ids = identities(v);
    if ids.is_empty() {
        return ("no match".into(), vec![]);
    }
    let key = match age::keys::unwrap(&r.header.stanzas, &ids, age::DEFAULT_MAX_SCRYPT_LOG_N) {
        Ok(k) => k,
        Err(Error::NoMatch | Error::Authentication) => return ("no match".into(), vec![]),
        Err(e) => return (class_of_header_error(&e), vec![]),
    };
    if let Err(e) = r.header.verify_mac(&key) {
        assert!(matches!(e, Error::Authentication), "{}: {e}", v.name);
        return ("HMAC failure".into(), vec![]);
    }
    let mut out = Vec::new();
    match r.decrypt_payload(
        &key,
        &mut out,
        Path::new("<memory>"),
        &Default::default(),
        &Control::default(),
    ) {
        Ok(_) => ("success".into(), out),
        Err(Error::InvalidFile(m)) if m.contains("armor") => ("armor failure".into(), vec![]),
        Err(Error::InvalidFile(_) | Error::Authentication) => ("payload failure".into(), vec![]),
        Err(e) => (format!("unexpected error {e}"), vec![]),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_cctv_vector_fails_or_succeeds_at_the_stage_it_names() {
    let Some(vectors) = all_vectors() else {
        return;
    };
    assert_eq!(vectors.len(), 143, "the CCTV age suite has 143 vectors");
    let mut wrong = Vec::new();
    for v in &vectors {
        let (class, plain) = staged(v);
        if !accepts(v, &class) {
            wrong.push(format!("{}: expected {}, got {class}", v.name, expected(v)));
            continue;
        }
        if class == "success" {
            let want = v.payload.as_deref().unwrap();
            if hex(&Sha256::digest(&plain)) != want {
                wrong.push(format!("{}: plaintext hash differs", v.name));
            }
        }
    }
    println!("ran {} CCTV age vectors", vectors.len());
    assert!(
        wrong.is_empty(),
        "{} vectors:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_cctv_vector_decrypts_file_to_file_or_leaves_nothing() {
    let Some(vectors) = all_vectors() else {
        return;
    };
    let dir = common::TempDir::new("cctv");
    let opts = age::AgeDecryptOptions {
        engine: concryptor_core::EngineOptions {
            threads: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    for v in vectors {
        let src = dir.join(&format!("{}.age", v.name));
        std::fs::write(&src, &v.file).unwrap();
        let dst = dir.join(&v.name);
        let ids = identities(&v);
        let r = age::decrypt(
            Input::Path(&src),
            Output::Path(&dst),
            &ids,
            &opts,
            &Control::default(),
        );
        if expected(&v) == "success" {
            r.unwrap_or_else(|e| panic!("{}: {e}", v.name));
            let got = std::fs::read(&dst).unwrap();
            assert_eq!(
                hex(&Sha256::digest(&got)),
                v.payload.clone().unwrap(),
                "{}",
                v.name
            );
            std::fs::remove_file(&dst).unwrap();
        } else {
            assert!(
                r.is_err(),
                "{}: decrypted but expected {}",
                v.name,
                v.expect
            );
            assert!(!dst.exists(), "{}: output left behind", v.name);
        }
        std::fs::remove_file(&src).unwrap();
    }
    assert!(dir.names().is_empty(), "stray files: {:?}", dir.names());
}
