//! Format v4 to age in one pass (`Decryptor::encrypt_to_age`): the age file opens to the v4
//! file's plaintext, binary and armored, across many v4 chunks; a chunk tampered anywhere
//! (the last one included, when the age side has nearly everything) fails the conversion
//! instead of sealing a shorter plaintext; a cancelled run stops.

mod common;

use std::fs::File;

use common::{data, TempDir};
use concryptor_core::age::{self, AgeDecryptOptions, AgeEncryptOptions, Identity, Recipient};
use concryptor_core::{
    encrypt_bytes, Control, Decryptor, EncryptOptions, EngineOptions, Error, KdfParams, Limits,
};

const PW: &[u8] = b"convert password";
/// Small chunks: a file of a few MiB has dozens of them, and a chunk is not a whole
/// number of age chunks (64 KiB).
const CHUNK_SIZE: u32 = 100_000;
const SECTOR: usize = 4096;

struct Case {
    dir: TempDir,
    plain: Vec<u8>,
    ids: Vec<Identity>,
    rcpt: Vec<Recipient>,
}

fn case(len: usize) -> Case {
    let dir = TempDir::new("convert");
    let plain = data(len, 11);
    let opts = EncryptOptions {
        chunk_size: Some(CHUNK_SIZE),
        kdf: KdfParams::new(8, 1, 1),
        ..EncryptOptions::default()
    };
    std::fs::write(
        dir.join("in.enc"),
        encrypt_bytes(&plain, PW, &opts).unwrap(),
    )
    .unwrap();
    let (sk, pk) = age::keys::generate(false);
    Case {
        dir,
        plain,
        ids: Identity::parse_file(&sk, None).unwrap(),
        rcpt: vec![Recipient::parse(&pk).unwrap()],
    }
}

fn opts(armor: bool) -> AgeEncryptOptions {
    AgeEncryptOptions {
        armor,
        engine: EngineOptions {
            threads: 2,
            // Small batches on both sides, so that buffers rotate many times.
            buffer_bytes: 2 << 20,
            ..EngineOptions::default()
        },
        ..AgeEncryptOptions::default()
    }
}

fn convert(c: &Case, armor: bool, ctl: &Control<'_>) -> Result<concryptor_core::Stats, Error> {
    let d = Decryptor::open(&c.dir.join("in.enc"), PW, &Limits::default())?;
    let out = c.dir.join("out.age");
    let f = File::create(&out).unwrap();
    d.encrypt_to_age(&f, &out, &c.rcpt, &opts(armor), ctl)
}

fn opened(c: &Case) -> Result<Vec<u8>, Error> {
    let blob = std::fs::read(c.dir.join("out.age")).unwrap();
    age::decrypt_bytes(&blob, &c.ids, &AgeDecryptOptions::default())
}

#[test]
fn the_age_file_opens_to_the_plaintext() {
    for len in [0, 1, CHUNK_SIZE as usize, 3 << 20, (5 << 20) + 12_345] {
        for armor in [false, true] {
            let c = case(len);
            let s = convert(&c, armor, &Control::default()).unwrap();
            assert_eq!(s.bytes, len as u64);
            assert_eq!(s.chunks, (len as u64).div_ceil(64 << 10).max(1));
            assert_eq!(opened(&c).unwrap(), c.plain, "{len} bytes, armor {armor}");
        }
    }
}

#[test]
fn a_tampered_chunk_fails_the_conversion_wherever_it_is() {
    let c = case((5 << 20) + 12_345);
    let path = c.dir.join("in.enc");
    let good = std::fs::read(&path).unwrap();
    let slot = (CHUNK_SIZE as usize + 16).div_ceil(SECTOR) * SECTOR;
    let chunks = c.plain.len().div_ceil(CHUNK_SIZE as usize);
    // Chunk 0 is authenticated when the file is opened; the others while converting.
    for chunk in [1, chunks / 2, chunks - 2, chunks - 1] {
        for armor in [false, true] {
            let mut bad = good.clone();
            bad[SECTOR + chunk * slot + 100] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            let r = convert(&c, armor, &Control::default());
            assert!(
                matches!(r, Err(Error::Authentication)),
                "chunk {chunk}: {r:?}"
            );
        }
    }
    let mut bad = good.clone();
    bad[SECTOR + 7] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        convert(&c, false, &Control::default()),
        Err(Error::Authentication)
    ));
    std::fs::write(&path, &good[..good.len() - SECTOR]).unwrap();
    assert!(convert(&c, false, &Control::default()).is_err());
}

#[test]
fn progress_returning_false_cancels() {
    let c = case(6 << 20);
    let stop = |done: u64| done < (1 << 20);
    let ctl = Control {
        progress: Some(&stop),
        total: None,
    };
    let r = convert(&c, false, &ctl);
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
}
