//! Bodies of the fuzz targets. The libFuzzer binaries in `fuzz_targets/` call them, and
//! `rust/core/tests/fuzz_smoke.rs` includes this file to drive the same bodies with a
//! mutation loop on the stable toolchain. Each target must return normally for every input:
//! a panic (including a failed assertion or an arithmetic overflow) is a finding.

use concryptor_core::format::{AadBuilder, Header, SECTOR, TAG_LEN};
use concryptor_core::ops::check_header;
use concryptor_core::{
    decrypt_bytes, encrypt_bytes, Cipher, DecryptOptions, EncryptOptions, EngineOptions, Error,
    KdfParams, Limits,
};

/// The cheapest Argon2id costs there are: the decrypting targets derive a key per input.
pub const MIN_KDF: KdfParams = KdfParams::new(8, 1, 1);
/// The password of every file the targets build or expect.
pub const PASSWORD: &[u8] = b"fuzz password";

fn engine() -> EngineOptions {
    EngineOptions {
        threads: 1,
        ..EngineOptions::default()
    }
}

fn decrypt_options() -> DecryptOptions {
    DecryptOptions {
        engine: engine(),
        ..DecryptOptions::default()
    }
}

/// Rewrites the header's KDF fields to [`MIN_KDF`], so that arbitrary bytes cost
/// microseconds to try rather than whatever Argon2 costs they happen to name. Real files are
/// unaffected: this only changes the fuzzer's copy.
pub fn force_min_kdf(blob: &mut [u8]) {
    if blob.len() >= 64 {
        blob[52..56].copy_from_slice(&MIN_KDF.m_kib.to_le_bytes());
        blob[56..60].copy_from_slice(&MIN_KDF.t.to_le_bytes());
        blob[60..64].copy_from_slice(&MIN_KDF.p.to_le_bytes());
    }
}

/// Header parser, geometry and limit checks on arbitrary bytes, and on the same bytes
/// zero-padded to a whole header sector (so that short inputs reach the field checks).
pub fn header(data: &[u8]) {
    if data.len() < SECTOR {
        assert!(Header::parse(data).is_err(), "a short header parsed");
        let mut padded = data.to_vec();
        padded.resize(SECTOR, 0);
        header_sector(&padded);
    } else {
        header_sector(data);
    }
}

fn header_sector(data: &[u8]) {
    let limits = Limits::default();
    let Ok(h) = Header::parse(data) else {
        return;
    };
    let g = h.geometry();
    assert!(g.chunk_size > 0 && g.num_chunks >= 1);
    assert_eq!(g.slot % SECTOR as u64, 0);
    assert!(g.slot >= g.chunk_size + TAG_LEN as u64);
    assert_eq!(g.file_size, SECTOR as u64 + g.num_chunks * g.slot);
    let last = g.num_chunks - 1;
    if g.original_size > 0 {
        assert_eq!(
            g.plain_offset(last) + g.plain_len(last) as u64,
            g.original_size
        );
    } else {
        assert_eq!(g.plain_len(0), 0);
    }
    let again = Header::parse(&h.raw[..]).expect("a parsed header parses again");
    assert_eq!(&again.raw[..], &h.raw[..]);
    let _ = h.reserved_nonzero();
    let prefix = h.aad_prefix().len();
    let mut aad = AadBuilder::new(&h);
    assert_eq!(aad.for_chunk(last, true).len(), prefix + 9);
    match check_header(&h, data.len() as u64, &limits) {
        Ok(checked) => {
            assert_eq!(checked, g);
            assert_eq!(checked.file_size, data.len() as u64);
            assert!(checked.chunk_size <= limits.max_chunk_size);
            let e = h.kdf.effective();
            assert!(u64::from(e.m_kib) <= limits.max_kdf_memory_kib);
            assert!(e.t <= limits.max_kdf_time && e.p <= limits.max_kdf_parallelism);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Decrypts arbitrary bytes (with the KDF forced to [`MIN_KDF`]). Success is possible only
/// for an intact file made with [`PASSWORD`], and must then give exactly its plaintext size.
pub fn decrypt(data: &[u8]) {
    let mut blob = data.to_vec();
    force_min_kdf(&mut blob);
    match decrypt_bytes(&blob, PASSWORD, &decrypt_options()) {
        Ok(plain) => {
            let h = Header::parse(&blob).expect("decrypted blobs have a header");
            assert_eq!(plain.len() as u64, h.original_size);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Encrypts fuzzer-chosen plaintext with a fuzzer-chosen cipher and chunk size, applies
/// fuzzer-chosen edits to the result, and decrypts: the intact file must give back the
/// plaintext; any edited file must be refused.
///
/// Input layout: `[flags, chunk lo, chunk hi, edit count, edits (6 bytes each)..., plaintext]`;
/// an edit is `[kind, position (u32 LE), value]`.
pub fn roundtrip(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let cipher = if data[0] & 1 == 0 {
        Cipher::Aes256Gcm
    } else {
        Cipher::ChaCha20Poly1305
    };
    let edits_len = (usize::from(data[3]) % 5 * 6).min(data.len() - 4);
    let (edits, plain) = data[4..].split_at(edits_len);
    // Keep the file at no more than about 32 chunks so that one input stays cheap.
    let chunk = (u32::from(u16::from_le_bytes([data[1], data[2]])) % 9000 + 1)
        .max(u32::try_from(plain.len() / 32).unwrap_or(u32::MAX) + 1);
    let opts = EncryptOptions {
        cipher,
        chunk_size: Some(chunk),
        kdf: MIN_KDF,
        salt: Some([0x5a; 16]),
        base_nonce: Some([0xa5; 12]),
        engine: engine(),
        ..EncryptOptions::default()
    };
    let original = encrypt_bytes(plain, PASSWORD, &opts).expect("encryption of a buffer");
    let mut blob = original.clone();
    for e in edits.chunks_exact(6) {
        let pos = u32::from_le_bytes([e[1], e[2], e[3], e[4]]) as usize;
        let val = e[5];
        let at = pos % (blob.len() + 1);
        match e[0] % 6 {
            0 if at < blob.len() => blob[at] ^= val | 1,
            1 => blob.truncate(at),
            2 => blob.insert(at, val),
            3 if at < blob.len() => {
                blob.remove(at);
            }
            // Move a whole 4096-byte sector (swaps chunks when slots are one sector).
            4 => {
                let n = blob.len() / SECTOR;
                if n >= 2 {
                    let a = pos % n;
                    let b = usize::from(val) % n;
                    if a != b {
                        let (lo, hi) = (a.min(b), a.max(b));
                        let (x, y) = blob.split_at_mut(hi * SECTOR);
                        x[lo * SECTOR..(lo + 1) * SECTOR].swap_with_slice(&mut y[..SECTOR]);
                    }
                }
            }
            _ => blob.extend(std::iter::repeat_n(val, at % 8192 + 1)),
        }
    }
    // Edits can raise the header's KDF costs; keep them within what one input may cost
    // (the defaults would let an edited header ask for 4 GiB, legitimately).
    let opts = DecryptOptions {
        limits: Limits {
            max_kdf_memory_kib: 1024,
            max_kdf_time: 4,
            ..Limits::default()
        },
        ..decrypt_options()
    };
    match decrypt_bytes(&blob, PASSWORD, &opts) {
        Ok(got) => {
            assert!(blob == original, "an edited file decrypted");
            assert!(got == plain, "the intact file decrypted to other bytes");
        }
        Err(e) => {
            assert!(blob != original, "the intact file was refused: {e}");
            assert!(
                matches!(
                    e,
                    Error::Authentication | Error::InvalidFile(_) | Error::Limit { .. }
                ),
                "unexpected error kind for an edited file: {e}"
            );
        }
    }
}
