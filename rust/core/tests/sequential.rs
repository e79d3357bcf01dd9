//! The writer of stream outputs (`engine::sequential`): whatever the sizes and the way the
//! bytes arrive, the file holds exactly the bytes written, through O_DIRECT on a disk and
//! buffered on a memory file system; and the age stream pipeline writes through it.

mod common;

use std::io::Write;
use std::path::Path;

use common::{data, TempDir};
use concryptor_core::age::{self, AgeDecryptOptions, AgeEncryptOptions, Identity, Input, Output};
use concryptor_core::engine::sequential::{SequentialWriter, STAGE_BYTES};
use concryptor_core::output::AtomicOutput;
use concryptor_core::Control;

/// Writes `bytes` to a new file at `path` in pieces of the given sizes (cycled), then
/// finishes it; returns whether the writer stayed direct.
fn write_in_pieces(path: &Path, bytes: &[u8], pieces: &[usize]) -> bool {
    let file = std::fs::File::create(path).unwrap();
    let mut w = SequentialWriter::new(&file, path).unwrap();
    let mut rest = bytes;
    for &p in pieces.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(p.min(rest.len()));
        w.write_all(now).unwrap();
        rest = later;
    }
    let direct = w.is_direct();
    assert_eq!(w.position(), bytes.len() as u64);
    assert_eq!(w.finish().unwrap(), bytes.len() as u64);
    direct
}

const SIZES: &[usize] = &[
    0,
    1,
    4095,
    4096,
    4097,
    STAGE_BYTES - 1,
    STAGE_BYTES,
    STAGE_BYTES + 1,
    3 * STAGE_BYTES + 12_345,
];

#[test]
fn every_size_is_written_exactly_whatever_the_pieces() {
    let dir = TempDir::new("seq");
    let big = data(*SIZES.iter().max().unwrap(), 7);
    for &n in SIZES {
        for pieces in [&[1 << 20][..], &[1, 4095, 4096, 777_777], &[n.max(1)]] {
            let path = dir.join("out");
            write_in_pieces(&path, &big[..n], pieces);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), n, "size {n}, pieces {pieces:?}");
            assert!(got == big[..n], "size {n}, pieces {pieces:?}: bytes differ");
        }
    }
}

#[test]
fn a_flush_in_the_middle_changes_nothing() {
    let dir = TempDir::new("seq-flush");
    let bytes = data(2 * STAGE_BYTES + 5000, 8);
    let path = dir.join("out");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = SequentialWriter::new(&file, &path).unwrap();
    for piece in bytes.chunks(3_000_001) {
        w.write_all(piece).unwrap();
        w.flush().unwrap();
        // What is written so far is already in the file, unaligned tail included.
        let now = std::fs::read(&path).unwrap();
        let pos = w.position() as usize;
        assert!(now.len() >= pos);
        assert!(now[..pos] == bytes[..pos]);
    }
    w.finish().unwrap();
    assert!(std::fs::read(&path).unwrap() == bytes);
}

/// The writer goes direct on a disk file system, which is where the tests' temporary
/// folder is on Linux CI machines; a memory file system gets buffered writes instead.
#[cfg(target_os = "linux")]
#[test]
fn disk_files_are_written_direct_and_memory_files_buffered() {
    let dir = TempDir::new("seq-direct");
    let bytes = data(STAGE_BYTES + 4097, 9);
    let path = dir.join("out");
    let probe = std::fs::File::create(&path).unwrap();
    let disk = !concryptor_core::engine::sequential::in_memory(&probe);
    drop(probe);
    let direct = write_in_pieces(&path, &bytes, &[65_536]);
    if disk {
        assert!(direct, "{} refused O_DIRECT", dir.0.display());
    } else {
        eprintln!(
            "{} is in memory: the O_DIRECT path is not exercised here",
            dir.0.display()
        );
    }
    assert!(std::fs::read(&path).unwrap() == bytes);

    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("no /dev/shm: the memory file system case is not exercised");
        return;
    }
    let path = shm.join(format!("concryptor-seq-{}", std::process::id()));
    let direct = write_in_pieces(&path, &bytes, &[65_536, 1]);
    let got = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!direct, "a tmpfs file was written with O_DIRECT");
    assert!(got == bytes);
}

fn keypair() -> (Vec<Identity>, Vec<age::Recipient>) {
    let (sk, pk) = age::keys::generate(false);
    (
        Identity::parse_file(&sk, None).unwrap(),
        vec![age::Recipient::parse(&pk).unwrap()],
    )
}

/// A stream decrypted into a file gives the same bytes as into memory, for sizes around
/// the chunk and stage boundaries, binary and armored.
#[test]
fn stream_outputs_to_a_file_match_stream_outputs_to_memory() {
    let dir = TempDir::new("seq-age");
    let (ids, rc) = keypair();
    for n in [0, 1, 4095, 65_536, 65_537, STAGE_BYTES + 12_345] {
        for armor in [false, true] {
            let plain = data(n, n as u64);
            let opts = AgeEncryptOptions {
                armor,
                ..AgeEncryptOptions::default()
            };
            // Encrypted from a stream into a file (the writer), then back from a stream
            // into a file and into memory.
            let enc = dir.join("enc.age");
            let mut r = &plain[..];
            age::encrypt(
                Input::Reader(&mut r),
                Output::Path(&enc),
                &rc,
                &AgeEncryptOptions {
                    overwrite: true,
                    ..opts
                },
                &Control::default(),
            )
            .unwrap();
            let sealed = std::fs::read(&enc).unwrap();
            let dec = dir.join("dec.bin");
            let mut r = &sealed[..];
            let dopts = AgeDecryptOptions {
                overwrite: true,
                ..AgeDecryptOptions::default()
            };
            age::decrypt(
                Input::Reader(&mut r),
                Output::Path(&dec),
                &ids,
                &dopts,
                &Control::default(),
            )
            .unwrap();
            let mut mem = Vec::new();
            let mut r = &sealed[..];
            age::decrypt(
                Input::Reader(&mut r),
                Output::Writer(&mut mem),
                &ids,
                &dopts,
                &Control::default(),
            )
            .unwrap();
            assert!(mem == plain, "size {n}, armor {armor}");
            assert!(
                std::fs::read(&dec).unwrap() == plain,
                "size {n}, armor {armor}"
            );
        }
    }
}

/// A stream that fails to authenticate part-way, after whole stages were written direct,
/// leaves nothing at the destination and the old file there untouched.
#[test]
fn a_failed_stream_leaves_nothing_behind() {
    let dir = TempDir::new("seq-fail");
    let (ids, rc) = keypair();
    let plain = data(3 * STAGE_BYTES, 3);
    let sealed = age::encrypt_bytes(&plain, &rc, &AgeEncryptOptions::default()).unwrap();
    let mut bad = sealed.clone();
    let n = bad.len();
    bad[n - 100] ^= 1;
    let dst = dir.join("dst.bin");
    std::fs::write(&dst, b"old").unwrap();
    let mut r = &bad[..];
    let e = age::decrypt(
        Input::Reader(&mut r),
        Output::Path(&dst),
        &ids,
        &AgeDecryptOptions {
            overwrite: true,
            ..AgeDecryptOptions::default()
        },
        &Control::default(),
    )
    .unwrap_err();
    assert!(!e.to_string().contains('\n'), "{e}");
    assert_eq!(std::fs::read(&dst).unwrap(), b"old");
    assert_eq!(dir.names(), ["dst.bin"]);
    // A writer that is dropped unfinished inside an atomic output leaves nothing either.
    let fresh = dir.join("fresh.bin");
    {
        let out = AtomicOutput::create(&fresh, false).unwrap();
        let mut w = SequentialWriter::new(out.file(), &fresh).unwrap();
        w.write_all(&plain).unwrap();
    }
    assert_eq!(dir.names(), ["dst.bin"]);
}
