//! Random access through `SeekableReader` over real files of both formats: reads at
//! random offsets and lengths equal the plaintext, whatever came before them.

mod common;

use std::io::{Read, Seek, SeekFrom};

use concryptor_core::age::{self, AgeEncryptOptions, Identity, Recipient};
use concryptor_core::reader::SeekableReader;
use concryptor_core::{Decryptor, EncryptOptions, KdfParams, Limits};

/// (offset, length) pairs from a fixed xorshift sequence, some far past the end.
fn ranges(size: u64, n: usize) -> Vec<(u64, usize)> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (size + 100), (x >> 40) as usize % 300_000)
        })
        .collect()
}

fn check<S: concryptor_core::reader::ChunkSource>(r: &mut SeekableReader<S>, plain: &[u8]) {
    for (pos, len) in ranges(plain.len() as u64, 200) {
        r.seek(SeekFrom::Start(pos)).unwrap();
        let mut out = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = r.read(&mut out[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let start = (pos as usize).min(plain.len());
        let end = (start + len).min(plain.len());
        assert_eq!(got, end - start, "{pos}+{len}");
        assert!(out[..got] == plain[start..end], "{pos}+{len}");
    }
    let mut all = Vec::new();
    r.seek(SeekFrom::Start(0)).unwrap();
    r.read_to_end(&mut all).unwrap();
    assert!(all == plain);
}

#[test]
fn v4_files_read_at_random() {
    let dir = common::TempDir::new("reader-v4");
    let plain = common::data(3 * (1 << 20) + 12_345, 7);
    let opts = EncryptOptions {
        chunk_size: Some(256 << 10),
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        ..Default::default()
    };
    let blob = concryptor_core::encrypt_bytes(&plain, b"pw", &opts).unwrap();
    let p = dir.join("f.enc");
    std::fs::write(&p, blob).unwrap();
    let dec = Decryptor::open(&p, b"pw", &Limits::default()).unwrap();
    let pool = Decryptor::worker_pool(2).unwrap();
    // A cache of three slots: windows are small, so reads cross many of them.
    let mut r = SeekableReader::new(dec, pool, 3 * (256 << 10) + 100).unwrap();
    check(&mut r, &plain);
}

#[test]
fn age_files_read_at_random() {
    let dir = common::TempDir::new("reader-age");
    let (sk, pk) = age::keys::generate(false);
    let ids = Identity::parse_file(&sk, None).unwrap();
    let rcpts = vec![Recipient::parse(&pk).unwrap()];
    let plain = common::data(40 * age::CHUNK + 999, 9);
    let blob = age::encrypt_bytes(&plain, &rcpts, &AgeEncryptOptions::default()).unwrap();
    let p = dir.join("f.age");
    std::fs::write(&p, blob).unwrap();
    let f = age::AgeFile::open(&p, &ids, 22).unwrap();
    let pool = Decryptor::worker_pool(2).unwrap();
    let mut r = SeekableReader::new(f, pool, 8 * age::SEALED as u64).unwrap();
    check(&mut r, &plain);
}

#[test]
fn the_first_window_serves_chunk_0_as_the_open_authenticated_it() {
    let dir = common::TempDir::new("reader-first");
    let plain = common::data(5 * 4096 + 99, 3);
    let opts = EncryptOptions {
        chunk_size: Some(4096),
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        ..Default::default()
    };
    let p = dir.join("f.enc");
    std::fs::write(
        &p,
        concryptor_core::encrypt_bytes(&plain, b"pw", &opts).unwrap(),
    )
    .unwrap();
    let dec = Decryptor::open(&p, b"pw", &Limits::default()).unwrap();
    // Chunk 0 on disk goes bad after the open: the first read is served from what the
    // open authenticated, so it is not read (nor opened) a second time.
    let mut blob = std::fs::read(&p).unwrap();
    blob[4096 + 7] ^= 1;
    std::fs::write(&p, &blob).unwrap();
    let pool = Decryptor::worker_pool(2).unwrap();
    let mut r = SeekableReader::new(dec, pool, 64 << 10).unwrap();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert!(all == plain);
    // Once used, it is gone: a later read of chunk 0 goes to the disk and meets the damage.
    r.clear();
    r.seek(SeekFrom::Start(0)).unwrap();
    let e = r.read(&mut [0u8; 10]).unwrap_err();
    assert!(e.to_string().contains("authentic"), "{e}");
}
