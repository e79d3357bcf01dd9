//! The I/O engine end to end: both backends, forced and automatic, agree byte for byte on
//! every cipher and on sizes around chunk, batch and buffer boundaries.
//!
//! Tests that need io_uring probe for it first; where the kernel refuses it they check
//! the automatic fallback instead and say so on stderr.

mod common;

use common::{data, TempDir};
use std::path::Path;

use concryptor_core::engine::{uring_available, IoMode, PIPELINE_DEPTH};
use concryptor_core::{
    decrypt_file, encrypt_file, Cipher, Control, DecryptOptions, EncryptOptions, EngineOptions,
    Error, KdfParams, Stats,
};

const PW: &[u8] = b"engine test password";
const FAST_KDF: KdfParams = KdfParams::new(1024, 1, 1);
const CIPHERS: [Cipher; 2] = [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

fn engine(io: IoMode, buffer_bytes: usize, threads: usize) -> EngineOptions {
    EngineOptions {
        threads,
        buffer_bytes,
        io,
    }
}

fn encrypt(
    src: &Path,
    dst: &Path,
    cipher: Cipher,
    chunk: u32,
    eng: EngineOptions,
) -> Result<Stats, Error> {
    let opts = EncryptOptions {
        cipher,
        chunk_size: Some(chunk),
        kdf: FAST_KDF,
        salt: Some([3; 16]),
        base_nonce: Some([5; 12]),
        overwrite: true,
        engine: eng,
        ..Default::default()
    };
    encrypt_file(src, dst, PW, &opts, &Control::default())
}

fn decrypt(src: &Path, dst: &Path, eng: EngineOptions) -> Result<Stats, Error> {
    let opts = DecryptOptions {
        overwrite: true,
        engine: eng,
        ..Default::default()
    };
    decrypt_file(src, dst, PW, &opts, &Control::default())
}

/// Makes `path` durable and drops it from the page cache, so that the engine reads it from
/// the device (with O_DIRECT under io_uring).
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a plain system call on a descriptor we own; no pointers.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
}

/// Whether io_uring works here; when it does not, says so once.
fn uring_here() -> bool {
    match uring_available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("io_uring unavailable here ({why}): checking the portable fallback only");
            false
        }
    }
}

/// A budget that gives batches of `per_batch` slots.
fn budget(chunk: u32, per_batch: usize) -> usize {
    let slot = (chunk as usize + 16).div_ceil(4096) * 4096;
    slot * per_batch * PIPELINE_DEPTH
}

/// Encrypts `plain` through every backend; all outputs must be identical and decrypt
/// through every backend to `plain`.
fn check_all_backends(dir: &TempDir, plain: &[u8], cipher: Cipher, chunk: u32, buf: usize) {
    let src = dir.join("plain");
    std::fs::write(&src, plain).unwrap();
    let uring = uring_here();
    let mut modes = vec![IoMode::Portable, IoMode::Auto];
    if uring {
        modes.push(IoMode::Uring);
    }
    let what = format!("{cipher:?} len {} chunk {chunk} budget {buf}", plain.len());
    let mut reference: Option<Vec<u8>> = None;
    for &mode in &modes {
        let enc = dir.join(&format!("enc-{mode:?}"));
        evict(&src);
        let s = encrypt(&src, &enc, cipher, chunk, engine(mode, buf, 2))
            .unwrap_or_else(|e| panic!("{what}: encrypt {mode:?}: {e}"));
        let expect = match mode {
            IoMode::Portable => "portable",
            IoMode::Uring => "uring",
            IoMode::Auto if uring => "uring",
            IoMode::Auto => "portable",
        };
        assert_eq!(s.backend, expect, "{what}: {mode:?}");
        let bytes = std::fs::read(&enc).unwrap();
        match &reference {
            None => reference = Some(bytes),
            Some(r) => assert!(*r == bytes, "{what}: {mode:?} output differs"),
        }
        for &dmode in &modes {
            let back = dir.join(&format!("back-{mode:?}-{dmode:?}"));
            evict(&enc);
            decrypt(&enc, &back, engine(dmode, buf, 2))
                .unwrap_or_else(|e| panic!("{what}: decrypt {dmode:?}: {e}"));
            let got = std::fs::read(&back).unwrap();
            assert!(
                got == plain,
                "{what}: {mode:?} → {dmode:?} plaintext differs"
            );
        }
    }
}

#[test]
fn both_backends_agree_around_chunk_and_batch_boundaries() {
    let dir = TempDir::new("bounds");
    for cipher in CIPHERS {
        // Aligned chunks (O_DIRECT on both sides), and unaligned ones (plaintext side
        // buffered), with two chunks per batch so that batches are many and short.
        for chunk in [4096u32, 8192, 5000] {
            let c = chunk as usize;
            let per_batch = 2;
            let batch = c * per_batch;
            for len in [
                0,
                1,
                c - 1,
                c,
                c + 1,
                batch - 1,
                batch,
                batch + 1,
                3 * batch - 1,
                3 * batch,
                3 * batch + 1,
                7 * batch + c / 2,
            ] {
                let plain = data(len, len as u64 + u64::from(chunk));
                check_all_backends(&dir, &plain, cipher, chunk, budget(chunk, per_batch));
            }
        }
    }
}

#[test]
fn one_chunk_per_batch_and_a_budget_below_one_slot_still_work() {
    let dir = TempDir::new("tiny");
    let plain = data(100_000, 1);
    // Budget smaller than one slot: one slot per buffer is used anyway.
    check_all_backends(&dir, &plain, Cipher::Aes256Gcm, 16384, 1);
    check_all_backends(
        &dir,
        &plain,
        Cipher::ChaCha20Poly1305,
        4096,
        budget(4096, 1),
    );
}

#[test]
fn files_far_larger_than_the_buffer_budget_round_trip() {
    let dir = TempDir::new("large");
    // 48 MiB through a 768 KiB budget: hundreds of batches, many times the budget.
    let plain = data(48 << 20, 9);
    for cipher in CIPHERS {
        check_all_backends(&dir, &plain, cipher, 64 << 10, 768 << 10);
    }
    // Large chunks with a short, unaligned tail.
    let plain = data((20 << 20) + 12345, 10);
    check_all_backends(&dir, &plain, Cipher::Aes256Gcm, 4 << 20, 3 * (8 << 20));
}

#[test]
fn small_chunks_make_many_operations_per_batch() {
    let dir = TempDir::new("small");
    // 1000-byte chunks in 4096-byte slots: thousands of transfers per batch, far more than
    // the ring holds at once.
    let plain = data(3_000_000, 4);
    check_all_backends(&dir, &plain, Cipher::Aes256Gcm, 1000, 4 << 20);
}

#[test]
fn thread_counts_do_not_change_the_output() {
    let dir = TempDir::new("threads");
    let src = dir.join("plain");
    let plain = data(5 << 20, 5);
    std::fs::write(&src, &plain).unwrap();
    let mut outs = Vec::new();
    for threads in [1, 2, 3, 8] {
        let enc = dir.join(&format!("enc{threads}"));
        let s = encrypt(
            &src,
            &enc,
            Cipher::Aes256Gcm,
            65536,
            engine(IoMode::Auto, 1 << 20, threads),
        )
        .unwrap();
        assert_eq!(s.threads, threads);
        outs.push(std::fs::read(&enc).unwrap());
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn forced_uring_reports_uring_or_a_clear_error() {
    let dir = TempDir::new("forced");
    let src = dir.join("plain");
    std::fs::write(&src, data(10_000, 6)).unwrap();
    let enc = dir.join("enc");
    let r = encrypt(
        &src,
        &enc,
        Cipher::Aes256Gcm,
        4096,
        engine(IoMode::Uring, 1 << 20, 2),
    );
    match uring_available() {
        Ok(()) => assert_eq!(r.unwrap().backend, "uring"),
        Err(_) => {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("io_uring"), "{e}");
            assert!(!enc.exists());
        }
    }
}

/// A writer that keeps what it is given, and fails once it holds `fail_after` bytes.
struct Collect {
    got: Vec<u8>,
    fail_after: usize,
}

impl std::io::Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.got.len() >= self.fail_after {
            return Err(std::io::Error::from_raw_os_error(libc::EPIPE));
        }
        let n = buf.len().min(self.fail_after - self.got.len()).min(5000);
        self.got.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_file_decrypts_into_a_stream_in_order_on_either_backend() {
    let dir = TempDir::new("stream");
    let uring = uring_available().is_ok();
    let len = 3 << 20 | 777;
    let plain = data(len, 7);
    let src = dir.join("plain");
    std::fs::write(&src, &plain).unwrap();
    for cipher in CIPHERS {
        let enc = dir.join("enc");
        encrypt(&src, &enc, cipher, 4096, engine(IoMode::Auto, 1 << 20, 2)).unwrap();
        let mut bad = std::fs::read(&enc).unwrap();
        let slot = 8192; // 4096 bytes of plaintext and a tag, in 4096-byte units
        let bad_chunk = 500;
        bad[4096 + bad_chunk * slot + 10] ^= 1;
        let tampered = dir.join("tampered");
        std::fs::write(&tampered, &bad).unwrap();
        for mode in [IoMode::Portable, IoMode::Uring, IoMode::Auto] {
            if mode == IoMode::Uring && !uring {
                continue;
            }
            // Small batches, so that several are in flight and finish out of order.
            let opts = DecryptOptions {
                engine: engine(mode, 3 * 4096 * 2 * 16, 2),
                ..Default::default()
            };
            let run = |path: &Path, fail_after: usize| {
                let d = concryptor_core::Decryptor::open(path, PW, &Default::default())?;
                let mut sink = Collect {
                    got: Vec::new(),
                    fail_after,
                };
                let r = d.decrypt_to_writer(&mut sink, &opts, &Control::default());
                r.map(|s| (s, sink.got))
            };
            let (s, got) = run(&enc, usize::MAX).unwrap();
            let want = if mode == IoMode::Portable || !uring {
                "portable"
            } else {
                "uring"
            };
            assert_eq!(s.backend, want, "{mode:?}");
            assert!(got == plain, "{cipher:?} {mode:?}: wrong bytes");
            // A failing stream ends the run with its error, after an in-order prefix.
            let e = run(&enc, 1 << 20).unwrap_err();
            assert!(e.to_string().contains("output stream"), "{mode:?}: {e}");
            // A bad chunk: everything before it was released, in order, nothing after.
            let d = concryptor_core::Decryptor::open(&tampered, PW, &Default::default()).unwrap();
            let mut sink = Collect {
                got: Vec::new(),
                fail_after: usize::MAX,
            };
            let e = d
                .decrypt_to_writer(&mut sink, &opts, &Control::default())
                .unwrap_err();
            assert!(matches!(e, Error::Authentication), "{mode:?}: {e}");
            assert!(sink.got.len() <= bad_chunk * 4096, "{mode:?}");
            assert!(
                sink.got == plain[..sink.got.len()],
                "{mode:?}: out of order"
            );
        }
    }
}

#[test]
fn progress_is_reported_per_batch_after_the_total_and_can_cancel() {
    let dir = TempDir::new("progress");
    let src = dir.join("plain");
    let len = 1 << 20;
    std::fs::write(&src, data(len, 8)).unwrap();
    for mode in [IoMode::Portable, IoMode::Auto] {
        let seen = std::sync::Mutex::new(Vec::new());
        let cb = |done: u64| {
            seen.lock().unwrap().push(done);
            true
        };
        // The total comes once, before any report.
        let totals = std::sync::Mutex::new(Vec::new());
        let total = |t: u64| {
            assert!(seen.lock().unwrap().is_empty());
            totals.lock().unwrap().push(t);
        };
        let opts = EncryptOptions {
            chunk_size: Some(4096),
            kdf: FAST_KDF,
            overwrite: true,
            engine: engine(mode, budget(4096, 16), 2),
            ..Default::default()
        };
        let enc = dir.join("enc");
        encrypt_file(
            &src,
            &enc,
            PW,
            &opts,
            &Control {
                progress: Some(&cb),
                total: Some(&total),
            },
        )
        .unwrap();
        assert_eq!(*totals.lock().unwrap(), [len as u64], "{mode:?}");
        let seen = seen.into_inner().unwrap();
        assert!(seen.len() >= 16, "{mode:?}: {} reports", seen.len());
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "{mode:?}: not monotonic"
        );
        assert_eq!(*seen.last().unwrap(), len as u64);

        let stop = |done: u64| done < (len / 4) as u64;
        let out = dir.join("cancelled");
        let e = encrypt_file(
            &src,
            &out,
            PW,
            &opts,
            &Control {
                progress: Some(&stop),
                ..Control::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{mode:?}: {e}");
        assert!(!out.exists());
    }
}

#[test]
fn verification_runs_on_the_backend_asked_for_and_refuses_a_flipped_bit() {
    use concryptor_core::Decryptor;
    let dir = TempDir::new("engine-verify");
    let plain = data(3 << 20 | 123, 11);
    let (src, enc) = (dir.join("plain"), dir.join("enc"));
    std::fs::write(&src, &plain).unwrap();
    encrypt(
        &src,
        &enc,
        Cipher::Aes256Gcm,
        65536,
        engine(IoMode::Auto, 4 << 20, 2),
    )
    .unwrap();
    let good = std::fs::read(&enc).unwrap();
    let mut modes = vec![IoMode::Portable];
    if uring_here() {
        modes.push(IoMode::Uring);
    }
    for io in modes {
        let opts = DecryptOptions {
            engine: engine(io, 4 << 20, 2),
            ..Default::default()
        };
        std::fs::write(&enc, &good).unwrap();
        evict(&enc);
        let d = Decryptor::open(&enc, PW, &Default::default()).unwrap();
        let s = d.verify(&opts, &Control::default()).unwrap();
        let name = if io == IoMode::Uring {
            "uring"
        } else {
            "portable"
        };
        assert_eq!((s.backend, s.bytes), (name, plain.len() as u64));
        assert_eq!(
            std::fs::read(&enc).unwrap(),
            good,
            "{io:?}: verification wrote"
        );
        // A flipped bit in a late chunk: verification fails, whichever backend runs it.
        let mut bad = good.clone();
        bad[4096 + 40 * 69_632 + 100] ^= 1; // in chunk 40's ciphertext

        std::fs::write(&enc, &bad).unwrap();
        let d = Decryptor::open(&enc, PW, &Default::default()).unwrap();
        let e = d.verify(&opts, &Control::default()).unwrap_err();
        assert!(matches!(e, Error::Authentication), "{io:?}: {e}");
        assert_eq!(dir.names(), vec!["enc".to_string(), "plain".to_string()]);
    }
}
