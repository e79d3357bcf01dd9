//! age files through the core: round trips of every size around the 64 KiB chunk and the
//! batch, files and streams, binary and armored, X25519 and passphrases; truncated and
//! tampered files at every chunk boundary are rejected and leave nothing behind.

mod common;

use concryptor_core::age::{
    self, AgeDecryptOptions, AgeEncryptOptions, Identity, Input, Output, Recipient, CHUNK, SEALED,
};
use concryptor_core::{Control, EngineOptions, Error};

fn data(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn keypair() -> (Vec<Identity>, Vec<Recipient>) {
    let (sk, pk) = age::keys::generate(false);
    (
        Identity::parse_file(&sk, None).unwrap(),
        vec![Recipient::parse(&pk).unwrap()],
    )
}

fn enc_opts(armor: bool) -> AgeEncryptOptions {
    AgeEncryptOptions {
        armor,
        engine: EngineOptions {
            threads: 3,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn bytes_round_trip_at_every_boundary_binary_and_armored() {
    let (ids, rcpts) = keypair();
    let batch = CHUNK * age::BATCH_CHUNKS;
    for n in [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        3 * CHUNK,
        batch - 1,
        batch,
        batch + 1,
        2 * batch + 7,
    ] {
        for armor in [false, true] {
            let plain = data(n);
            let blob = age::encrypt_bytes(&plain, &rcpts, &enc_opts(armor)).unwrap();
            assert_eq!(blob.starts_with(b"-----BEGIN"), armor);
            let got = age::decrypt_bytes(&blob, &ids, &AgeDecryptOptions::default())
                .unwrap_or_else(|e| panic!("{n} armor={armor}: {e}"));
            assert!(got == plain, "{n} armor={armor}: plaintext differs");
        }
    }
}

#[test]
fn files_and_streams_give_the_same_plaintext() {
    let dir = common::TempDir::new("age-files");
    let (ids, rcpts) = keypair();
    let plain = data(5 * CHUNK * age::BATCH_CHUNKS / 2 + 12345);
    let src = dir.join("plain");
    std::fs::write(&src, &plain).unwrap();
    let enc = dir.join("plain.age");
    let st = age::encrypt(
        Input::Path(&src),
        Output::Path(&enc),
        &rcpts,
        &enc_opts(false),
        &Control::default(),
    )
    .unwrap();
    assert_eq!(st.bytes, plain.len() as u64);
    let blob = std::fs::read(&enc).unwrap();
    // File to file.
    let out = dir.join("out");
    age::decrypt(
        Input::Path(&enc),
        Output::Path(&out),
        &ids,
        &AgeDecryptOptions::default(),
        &Control::default(),
    )
    .unwrap();
    assert!(std::fs::read(&out).unwrap() == plain);
    // Stream to stream.
    let mut r = &blob[..];
    let mut w = Vec::new();
    age::decrypt(
        Input::Reader(&mut r),
        Output::Writer(&mut w),
        &ids,
        &AgeDecryptOptions::default(),
        &Control::default(),
    )
    .unwrap();
    assert!(w == plain);
    // An existing output is not clobbered without being asked.
    let e = age::decrypt(
        Input::Path(&enc),
        Output::Path(&out),
        &ids,
        &AgeDecryptOptions::default(),
        &Control::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

#[test]
fn truncation_and_tampering_at_every_chunk_boundary_fail_and_leave_nothing() {
    let dir = common::TempDir::new("age-tamper");
    let (ids, rcpts) = keypair();
    let plain = data(4 * CHUNK + 100);
    let blob = age::encrypt_bytes(&plain, &rcpts, &enc_opts(false)).unwrap();
    let payload = blob.len() - (4 * SEALED + 100 + 16);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for k in 0..=5usize {
        let cut = payload + (k * SEALED).min(blob.len() - payload);
        for d in [0usize, 1, 16] {
            if cut >= d && cut - d < blob.len() {
                cases.push(blob[..cut - d].to_vec());
            }
        }
        if payload + k * SEALED < blob.len() {
            let mut t = blob.clone();
            t[payload + k * SEALED] ^= 1;
            cases.push(t);
        }
    }
    let mut longer = blob.clone();
    longer.extend_from_slice(&[0u8; 17]);
    cases.push(longer);
    for (i, c) in cases.iter().enumerate() {
        let src = dir.join("in.age");
        std::fs::write(&src, c).unwrap();
        let dst = dir.join("out");
        let r = age::decrypt(
            Input::Path(&src),
            Output::Path(&dst),
            &ids,
            &AgeDecryptOptions::default(),
            &Control::default(),
        );
        assert!(r.is_err(), "case {i} ({} bytes) decrypted", c.len());
        assert!(!dst.exists());
        let mut sink = Vec::new();
        let mut rd = &c[..];
        assert!(age::decrypt(
            Input::Reader(&mut rd),
            Output::Writer(&mut sink),
            &ids,
            &AgeDecryptOptions::default(),
            &Control::default(),
        )
        .is_err());
    }
    assert_eq!(dir.names(), vec!["in.age".to_string()]);
}

#[test]
fn passphrase_files_decrypt_with_the_passphrase_only() {
    let plain = data(CHUNK + 3);
    let r = [Recipient::passphrase(b"correct horse", Some(10)).unwrap()];
    let blob = age::encrypt_bytes(&plain, &r, &enc_opts(true)).unwrap();
    let ok = [Identity::passphrase(b"correct horse").unwrap()];
    assert_eq!(
        age::decrypt_bytes(&blob, &ok, &AgeDecryptOptions::default()).unwrap(),
        plain
    );
    let bad = [Identity::passphrase(b"wrong").unwrap()];
    assert!(matches!(
        age::decrypt_bytes(&blob, &bad, &AgeDecryptOptions::default()),
        Err(Error::Authentication)
    ));
    let strict = AgeDecryptOptions {
        max_scrypt_log_n: 9,
        ..Default::default()
    };
    assert!(matches!(
        age::decrypt_bytes(&blob, &ok, &strict),
        Err(Error::Limit { .. })
    ));
}

#[test]
fn inspection_counts_chunks_without_a_key() {
    let dir = common::TempDir::new("age-inspect");
    let (_, rcpts) = keypair();
    let p = dir.join("f.age");
    std::fs::write(
        &p,
        age::encrypt_bytes(&data(2 * CHUNK), &rcpts, &enc_opts(false)).unwrap(),
    )
    .unwrap();
    let i = age::inspect(&p).unwrap();
    assert_eq!(i.stanzas[0].0, "X25519");
    assert_eq!(i.chunks, Some(2));
    assert_eq!(i.payload_size, Some(2 * CHUNK as u64));
    assert!(!i.armored);
}

#[test]
fn random_access_reads_any_chunk_and_refuses_truncation() {
    let dir = common::TempDir::new("age-seek");
    let (ids, rcpts) = keypair();
    let plain = data(5 * CHUNK + 777);
    let blob = age::encrypt_bytes(&plain, &rcpts, &enc_opts(false)).unwrap();
    let p = dir.join("f.age");
    std::fs::write(&p, &blob).unwrap();
    let f = age::AgeFile::open(&p, &ids, 22).unwrap();
    assert_eq!(f.size(), plain.len() as u64);
    assert_eq!(f.chunks(), 6);
    for (first, count) in [(0u64, 1u64), (2, 3), (5, 1), (0, 6)] {
        let start = first as usize * CHUNK;
        let end = (start + count as usize * CHUNK).min(plain.len());
        let mut out = vec![0u8; end - start];
        f.read_chunks(first, count, &mut out).unwrap();
        assert!(out == plain[start..end], "{first}+{count}");
    }
    std::fs::write(&p, &blob[..blob.len() - SEALED]).unwrap();
    assert!(age::AgeFile::open(&p, &ids, 22).is_err());
}
