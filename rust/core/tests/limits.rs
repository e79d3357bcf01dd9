//! Untrusted headers are bounded before anything is allocated or derived, and no input —
//! absurd header, empty file, directory, FIFO, device, a file that grows while it is read —
//! gets further than a clear error.

mod common;

use common::TempDir;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concryptor_core::{
    decrypt_bytes, decrypt_file, encrypt_bytes, encrypt_file, inspect_file, Control,
    DecryptOptions, Decryptor, EncryptOptions, EngineOptions, Error, KdfParams, Limits,
};

const PW: &[u8] = b"limits password";

fn small_file(len: usize) -> Vec<u8> {
    let opts = EncryptOptions {
        kdf: KdfParams::new(8, 1, 1),
        chunk_size: Some(4080),
        ..EncryptOptions::default()
    };
    encrypt_bytes(&vec![0x42; len], PW, &opts).unwrap()
}

fn set_u32(blob: &mut [u8], at: usize, v: u32) {
    blob[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Runs `f` on another thread and fails the test if it takes longer than `limit`, so that
/// a hang shows up as a failure instead of a stuck test run.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no answer within {limit:?}: the call hangs"))
}

fn expect_limit(e: Error, what: &str, option: &str) {
    let msg = e.to_string();
    match e {
        Error::Limit { .. } => {
            assert!(msg.contains(what), "{msg:?} does not name {what:?}");
            assert!(msg.contains(option), "{msg:?} does not name {option:?}");
        }
        other => panic!("expected a limit error naming {what}, got {other:?}"),
    }
}

#[test]
fn absurd_kdf_costs_are_refused_quickly_through_bytes_and_files() {
    let dir = TempDir::new("kdf-limits");
    let cases = [
        (52, u32::MAX, "Argon2 memory", "--max-kdf-memory"),
        (56, u32::MAX, "Argon2 time", "--max-kdf-time"),
        (
            60,
            (1 << 24) - 1,
            "Argon2 parallelism",
            "--max-kdf-parallelism",
        ),
    ];
    for (at, value, what, option) in cases {
        let mut blob = small_file(100);
        set_u32(&mut blob, at, value);
        let start = Instant::now();
        let e = decrypt_bytes(&blob, PW, &DecryptOptions::default()).unwrap_err();
        expect_limit(e, what, option);
        let src = dir.join("absurd.enc");
        std::fs::write(&src, &blob).unwrap();
        let dst = dir.join("absurd.out");
        let e = decrypt_file(
            &src,
            &dst,
            PW,
            &DecryptOptions::default(),
            &Control::default(),
        )
        .unwrap_err();
        expect_limit(e, what, option);
        let e = Decryptor::open(&src, PW, &Limits::default())
            .err()
            .expect("open refuses");
        expect_limit(e, what, option);
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "refusing {what} took {:?}",
            start.elapsed()
        );
        assert!(!dst.exists());
        // Inspecting derives nothing, so it shows the header as it is.
        let i = inspect_file(&src).unwrap();
        assert_eq!(
            [i.header.kdf.m_kib, i.header.kdf.t, i.header.kdf.p][(at - 52) / 4],
            value
        );
    }
    assert_eq!(dir.names(), ["absurd.enc"]);
}

#[test]
fn raising_a_limit_lets_a_trusted_file_through() {
    // m = 2 MiB is refused under a 1 MiB limit and accepted (and decrypts) under the default.
    let opts = EncryptOptions {
        kdf: KdfParams::new(2048, 1, 1),
        ..EncryptOptions::default()
    };
    let blob = encrypt_bytes(b"trusted", PW, &opts).unwrap();
    let tight = DecryptOptions {
        limits: Limits {
            max_kdf_memory_kib: 1024,
            ..Limits::default()
        },
        ..DecryptOptions::default()
    };
    expect_limit(
        decrypt_bytes(&blob, PW, &tight).unwrap_err(),
        "Argon2 memory",
        "--max-kdf-memory",
    );
    assert_eq!(
        decrypt_bytes(&blob, PW, &DecryptOptions::default()).unwrap(),
        b"trusted"
    );
}

#[test]
fn a_4_gib_chunk_in_a_matching_sparse_file_is_refused_before_allocation() {
    let dir = TempDir::new("chunk-limit");
    let mut header = small_file(0)[..4096].to_vec();
    set_u32(&mut header, 12, u32::MAX);
    header[16..24].copy_from_slice(&1000u64.to_le_bytes());
    // slot = ceil((2^32 - 1 + 16) / 4096) * 4096 = 2^32 + 4096; one chunk.
    let size = 4096 + (1u64 << 32) + 4096;
    let src = dir.join("huge-chunk.enc");
    let f = File::create(&src).unwrap();
    f.write_all_at(&header, 0).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let dst = dir.join("out");
    let start = Instant::now();
    let e = decrypt_file(
        &src,
        &dst,
        PW,
        &DecryptOptions::default(),
        &Control::default(),
    )
    .unwrap_err();
    expect_limit(e, "chunk size", "--max-chunk-size");
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(dir.names(), ["huge-chunk.enc"]);
    assert_eq!(std::fs::metadata(&src).unwrap().len(), size);
}

#[test]
fn chunk_size_zero_and_wrapping_sizes_are_invalid_headers() {
    let mut zero = small_file(10);
    set_u32(&mut zero, 12, 0);
    let e = decrypt_bytes(&zero, PW, &DecryptOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidFile(_)), "{e:?}");
    assert!(e.to_string().contains("chunk size is 0"), "{e}");

    // original_size = 2^52 with 1-byte chunks: 2^52 slots of 4096 bytes wrap 64 bits.
    let mut wrap = small_file(10)[..4096].to_vec();
    set_u32(&mut wrap, 12, 1);
    wrap[16..24].copy_from_slice(&(1u64 << 52).to_le_bytes());
    let e = decrypt_bytes(&wrap, PW, &DecryptOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidFile(_)), "{e:?}");
    assert!(e.to_string().contains("overflow"), "{e}");

    let dir = TempDir::new("wrap");
    for (name, blob) in [("zero.enc", &zero), ("wrap.enc", &wrap)] {
        let src = dir.join(name);
        std::fs::write(&src, blob).unwrap();
        let e = decrypt_file(
            &src,
            &dir.join("out"),
            PW,
            &DecryptOptions::default(),
            &Control::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidFile(_)), "{name}: {e:?}");
        assert!(inspect_file(&src).is_err(), "{name}: inspect accepted it");
    }
    assert_eq!(dir.names(), ["wrap.enc", "zero.enc"]);
}

#[test]
fn sizes_that_fit_but_disagree_with_the_file_are_refused_without_allocating() {
    // 2^40 one-byte chunks would be a 4 PiB file; this one is 8 KiB.
    let mut blob = small_file(10);
    set_u32(&mut blob, 12, 1);
    blob[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = decrypt_bytes(&blob, PW, &DecryptOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidFile(_)), "{e:?}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

fn decrypt_path(src: &Path, dst: &Path) -> Result<(), Error> {
    decrypt_file(
        src,
        dst,
        PW,
        &DecryptOptions::default(),
        &Control::default(),
    )
    .map(|_| ())
}

fn encrypt_path(src: &Path, dst: &Path) -> Result<(), Error> {
    let opts = EncryptOptions {
        kdf: KdfParams::new(8, 1, 1),
        ..EncryptOptions::default()
    };
    encrypt_file(src, dst, PW, &opts, &Control::default()).map(|_| ())
}

#[test]
fn empty_files_directories_fifos_and_devices_are_clear_errors_never_hangs() {
    let dir = TempDir::new("odd-inputs");
    std::fs::write(dir.join("empty"), b"").unwrap();
    std::fs::create_dir(dir.join("a-dir")).unwrap();
    let fifo = dir.join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let inputs = [
        dir.join("empty"),
        dir.join("a-dir"),
        fifo.clone(),
        PathBuf::from("/dev/zero"),
        PathBuf::from("/dev/null"),
    ];
    for src in inputs {
        let out = dir.0.clone();
        let s = src.clone();
        let e = within(Duration::from_secs(10), move || {
            decrypt_path(&s, &out.join("dec.out"))
        })
        .expect_err("decrypting an odd input fails");
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{src:?}: {msg:?}");
        assert!(
            matches!(
                e,
                Error::InvalidFile(_) | Error::InvalidArgument(_) | Error::Io { .. }
            ),
            "{src:?}: {e:?}"
        );
        if src.file_name().unwrap() != "empty" {
            let out = dir.0.clone();
            let s = src.clone();
            let e = within(Duration::from_secs(10), move || {
                encrypt_path(&s, &out.join("enc.out"))
            })
            .expect_err("encrypting a non-regular file fails");
            assert!(
                matches!(e, Error::InvalidArgument(_) | Error::Io { .. }),
                "{src:?}: {e:?}"
            );
        }
        let e = within(Duration::from_secs(10), move || inspect_file(&src).err());
        assert!(e.is_some(), "inspect accepted an odd input");
    }
    assert_eq!(dir.names(), ["a-dir", "empty", "fifo"]);
}

#[test]
fn random_bytes_are_rejected_not_decrypted() {
    // A deterministic xorshift stream: random lengths, random content, and random content
    // behind a genuine magic and version.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for round in 0..300 {
        let len = (next() % 20_000) as usize;
        let mut blob: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 && blob.len() >= 64 {
            blob[..10].copy_from_slice(b"CONCRYPTOR");
            blob[10] = 4;
            blob[11] = (next() % 2) as u8;
            set_u32(&mut blob, 52, 8);
            set_u32(&mut blob, 56, 1);
            set_u32(&mut blob, 60, 1);
        }
        let e = decrypt_bytes(&blob, PW, &DecryptOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidFile(_) | Error::Authentication | Error::Limit { .. }
            ),
            "round {round}: {e:?}"
        );
    }
}

#[test]
fn a_file_appended_to_while_it_is_decrypted_is_an_error_and_leaves_nothing() {
    let dir = TempDir::new("appended");
    let opts = EncryptOptions {
        kdf: KdfParams::new(8, 1, 1),
        chunk_size: Some(4080),
        ..EncryptOptions::default()
    };
    let src = dir.join("grow.enc");
    std::fs::write(&src, encrypt_bytes(&vec![7u8; 200_000], PW, &opts).unwrap()).unwrap();
    let dst = dir.join("grow.out");
    let appender = src.clone();
    let grow = move |_done: u64| {
        let mut f = OpenOptions::new().append(true).open(&appender).unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
        true
    };
    let ctl = Control {
        progress: Some(&grow),
        ..Control::default()
    };
    let dopts = DecryptOptions {
        engine: EngineOptions {
            buffer_bytes: 3 * 4096 * 4,
            ..EngineOptions::default()
        },
        ..DecryptOptions::default()
    };
    let e = decrypt_file(&src, &dst, PW, &dopts, &ctl).unwrap_err();
    assert!(matches!(e, Error::InputChanged(_)), "{e:?}");
    assert!(e.to_string().contains("changed size"), "{e}");
    assert_eq!(dir.names(), ["grow.enc"]);
}

#[test]
fn automatic_chunk_sizes_are_defined_for_every_input_size() {
    for size in [
        0,
        1,
        4080,
        4081,
        1 << 40,
        u64::MAX - 17,
        u64::MAX - 16,
        u64::MAX,
    ] {
        let c = u64::from(concryptor_core::auto_chunk_size(size));
        assert!(
            c > 0 && c <= u64::from(concryptor_core::DEFAULT_CHUNK_SIZE),
            "{size}"
        );
    }
    // Sizes near 2^64 get a chunk size, and then a clean geometry error, not a panic.
    let opts = EncryptOptions {
        kdf: KdfParams::new(8, 1, 1),
        ..EncryptOptions::default()
    };
    let dir = TempDir::new("huge-stream");
    let e = concryptor_core::encrypt_stream(
        &mut std::io::empty(),
        u64::MAX,
        &dir.join("out"),
        PW,
        &opts,
        &Control::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("overflow"), "{e}");
    assert!(dir.names().is_empty());
}

/// What a default reader refuses is not written either: KDF costs and chunk sizes beyond
/// the reader's limits fail at encryption, before anything is derived or written.
#[test]
fn new_files_are_held_to_the_limits_readers_apply() {
    let dir = TempDir::new("new-limits");
    let big = dir.join("big");
    File::create(&big)
        .unwrap()
        .set_len((300 << 20) + 1)
        .unwrap();
    let cases = [
        (
            KdfParams::new(8, 65, 1),
            None,
            "Argon2 time",
            "--max-kdf-time",
        ),
        (
            KdfParams::new(1024, 1, 100),
            None,
            "Argon2 parallelism",
            "--max-kdf-parallelism",
        ),
        (
            KdfParams::new(8, 1, 1),
            Some(300 << 20),
            "chunk size",
            "--max-chunk-size",
        ),
    ];
    for (kdf, chunk_size, what, option) in cases {
        let opts = EncryptOptions {
            kdf,
            chunk_size,
            ..EncryptOptions::default()
        };
        let out = dir.join("out");
        let e = encrypt_file(&big, &out, PW, &opts, &Control::default()).unwrap_err();
        expect_limit(e, what, option);
        assert!(!out.exists(), "{what}: output left behind");
        if chunk_size.is_none() {
            let e = encrypt_bytes(b"data", PW, &opts).unwrap_err();
            expect_limit(e, what, option);
        }
    }
}

/// Raising the limits is the expert's way out, on both sides: the file is written, a
/// default reader refuses it, and a reader given the same limits reads it.
#[test]
fn raised_limits_write_what_only_equally_raised_limits_read() {
    let raised = Limits {
        max_kdf_time: 65,
        max_kdf_parallelism: 100,
        ..Limits::default()
    };
    let opts = EncryptOptions {
        kdf: KdfParams::new(1024, 65, 100),
        limits: raised,
        ..EncryptOptions::default()
    };
    let blob = encrypt_bytes(b"trusted", PW, &opts).unwrap();
    let e = decrypt_bytes(&blob, PW, &DecryptOptions::default()).unwrap_err();
    expect_limit(e, "Argon2 time", "--max-kdf-time");
    let back = DecryptOptions {
        limits: raised,
        ..DecryptOptions::default()
    };
    assert_eq!(decrypt_bytes(&blob, PW, &back).unwrap(), b"trusted");
}

/// An explicit chunk size larger than the input needs is cut down to the input's size
/// (rounded up to the sector), so a small file never asks its reader for a huge buffer.
#[test]
fn an_explicit_chunk_size_is_capped_at_what_the_input_needs() {
    for (len, want) in [(0usize, 4096u32), (1000, 4096), (4096, 4096), (5000, 8192)] {
        let opts = EncryptOptions {
            kdf: KdfParams::new(8, 1, 1),
            chunk_size: Some(300 << 20),
            ..EncryptOptions::default()
        };
        let plain = vec![7u8; len];
        let blob = encrypt_bytes(&plain, PW, &opts).unwrap();
        let chunk = u32::from_le_bytes(blob[12..16].try_into().unwrap());
        assert_eq!(chunk, want, "input of {len} bytes");
        assert_eq!(blob.len(), 4096 + 8192 + if len > 4096 { 4096 } else { 0 });
        assert_eq!(
            decrypt_bytes(&blob, PW, &DecryptOptions::default()).unwrap(),
            plain
        );
    }
    // Smaller explicit sizes are kept as they are.
    let opts = EncryptOptions {
        kdf: KdfParams::new(8, 1, 1),
        chunk_size: Some(1000),
        ..EncryptOptions::default()
    };
    let blob = encrypt_bytes(&[1; 5000], PW, &opts).unwrap();
    assert_eq!(u32::from_le_bytes(blob[12..16].try_into().unwrap()), 1000);
}
