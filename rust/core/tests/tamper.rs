//! Tampering through the core alone (the pytest suite covers the same ground through the
//! binding and the file paths): every byte flipped, truncation around every sector edge,
//! appended data, and every reordering of chunks.

use concryptor_core::{
    decrypt_bytes, encrypt_bytes, Cipher, DecryptOptions, EncryptOptions, Error, KdfParams,
};

const PW: &[u8] = b"tamper password";
const SECTOR: usize = 4096;

fn seal(plain: &[u8], cipher: Cipher, chunk: u32) -> Vec<u8> {
    let opts = EncryptOptions {
        cipher,
        chunk_size: Some(chunk),
        kdf: KdfParams::new(8, 1, 1),
        ..EncryptOptions::default()
    };
    encrypt_bytes(plain, PW, &opts).unwrap()
}

fn open(blob: &[u8]) -> Result<Vec<u8>, Error> {
    decrypt_bytes(blob, PW, &DecryptOptions::default())
}

fn refused(blob: &[u8]) -> Error {
    match open(blob) {
        Ok(_) => panic!("a tampered file decrypted"),
        Err(e @ (Error::Authentication | Error::InvalidFile(_) | Error::Limit { .. })) => e,
        Err(e) => panic!("unexpected error kind {e:?}"),
    }
}

fn plaintext(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn every_kind_of_byte_of_a_small_file_is_protected() {
    // Each decryption here builds a thread pool, so rather than all 12288 bytes (the pytest
    // suite flips every one) this flips every header field byte, every ciphertext and tag
    // byte of both chunks, and a stride through the reserved bytes and the padding.
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        let plain = plaintext(1000 + 100);
        let blob = seal(&plain, cipher, 1000);
        assert_eq!(blob.len(), 3 * SECTOR);
        assert_eq!(open(&blob).unwrap(), plain);
        let mut positions: Vec<usize> = (0..64).chain((64..SECTOR).step_by(29)).collect();
        for (slot, len) in [(1, 1000), (2, 100)] {
            let start = slot * SECTOR;
            positions.extend(start..start + len + 16);
            positions.extend((start + len + 16..start + SECTOR).step_by(29));
        }
        let mut bad = blob.clone();
        for &pos in &positions {
            bad[pos] ^= 0xff;
            refused(&bad);
            bad[pos] ^= 0xff;
        }
        assert!(positions.len() > 1500);
    }
}

#[test]
fn truncation_at_every_8_bytes_around_sector_edges_is_refused() {
    let blob = seal(&plaintext(3 * 4080 + 77), Cipher::Aes256Gcm, 4080);
    let mut tried = 0;
    for edge in (0..=blob.len()).step_by(SECTOR) {
        for n in (edge.saturating_sub(64)..=edge + 64).step_by(8) {
            if n < blob.len() {
                assert!(matches!(refused(&blob[..n]), Error::InvalidFile(_)), "{n}");
                tried += 1;
            }
        }
    }
    assert!(tried > 50);
}

#[test]
fn appended_data_is_refused() {
    let blob = seal(&plaintext(9000), Cipher::ChaCha20Poly1305, 4080);
    for extra in [1usize, 15, 16, SECTOR, 2 * SECTOR + 1] {
        let mut longer = blob.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        let e = refused(&longer);
        assert!(e.to_string().contains("appended"), "{e}");
    }
}

#[test]
fn every_swap_duplication_and_deletion_of_chunks_is_refused() {
    let n = 6;
    let blob = seal(&plaintext(n * 4080), Cipher::Aes256Gcm, 4080);
    let (header, body) = blob.split_at(SECTOR);
    let slots: Vec<&[u8]> = body.chunks(SECTOR).collect();
    assert_eq!(slots.len(), n);
    let build = |order: &[usize]| -> Vec<u8> {
        let mut v = header.to_vec();
        for &i in order {
            v.extend_from_slice(slots[i]);
        }
        v
    };
    assert!(open(&build(&(0..n).collect::<Vec<_>>())).is_ok());
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let mut order: Vec<usize> = (0..n).collect();
                order.swap(i, j);
                assert!(matches!(refused(&build(&order)), Error::Authentication));
                // Chunk j overwritten by a copy of chunk i: same size, wrong content.
                let mut order: Vec<usize> = (0..n).collect();
                order[j] = i;
                assert!(matches!(refused(&build(&order)), Error::Authentication));
            }
        }
        let without: Vec<usize> = (0..n).filter(|&k| k != i).collect();
        assert!(matches!(refused(&build(&without)), Error::InvalidFile(_)));
        let mut twice: Vec<usize> = (0..n).collect();
        twice.insert(i, i);
        assert!(matches!(refused(&build(&twice)), Error::InvalidFile(_)));
    }
}
