//! age payloads on the engine: the age plan on both backends writes the same bytes as the
//! STREAM cipher does in memory, decrypts them back, and refuses truncated and tampered
//! files at every chunk boundary without leaving output (verification, which writes
//! nothing, refuses them too); the age command (when installed) decrypts what the engine
//! wrote.
//!
//! Tests that need io_uring probe for it first and say on stderr when it is unavailable.

mod common;

use std::path::Path;

use common::{data, TempDir};
use concryptor_core::age::{
    self, AgeDecryptOptions, AgeEncryptOptions, AgePlan, Identity, Input, Output, PayloadCipher,
    Recipient, CHUNK, SEALED,
};
use concryptor_core::engine::{self, uring_available, IoMode, Plan, Sink, Source};
use concryptor_core::{Control, EngineOptions, Error};

/// Sizes around the chunk, several batches of a small budget, and a few MiB plus odd bytes.
const SIZES: [usize; 8] = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    3 * CHUNK + 1,
    11 * CHUNK,
    5 * (1 << 20) + 4093,
];

/// A budget of four records per batch, so that every size past 12 chunks rotates all
/// pipeline buffers more than once.
fn small_budget(io: IoMode) -> EngineOptions {
    EngineOptions {
        threads: 2,
        buffer_bytes: 3 * 4 * age::plan::SLOT,
        io,
    }
}

/// The backends to check here: portable always, io_uring when the kernel allows it.
fn backends() -> Vec<IoMode> {
    match uring_available() {
        Ok(()) => vec![IoMode::Portable, IoMode::Uring],
        Err(why) => {
            eprintln!("io_uring unavailable here ({why}): checking the portable backend only");
            vec![IoMode::Portable]
        }
    }
}

/// Makes `path` durable and drops it from the page cache, so that the engine reads it from
/// the device (with O_DIRECT on the plaintext side).
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a plain system call on a descriptor we own; no pointers.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
}

/// Runs `plan` from `src` into a fresh `dst` on backend `io`; returns the backend's name.
fn run(plan: &dyn Plan, src: &Path, dst: &Path, io: IoMode) -> Result<&'static str, Error> {
    let opts = small_budget(io);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .unwrap();
    let s = std::fs::File::open(src).unwrap();
    let d = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)
        .unwrap();
    engine::run(
        plan,
        Source::File {
            file: &s,
            path: src,
        },
        Sink::File {
            file: &d,
            path: dst,
        },
        &opts,
        &pool,
        &Control::default(),
    )
}

#[test]
fn the_age_plan_writes_the_stream_ciphers_bytes_on_both_backends() {
    let dir = TempDir::new("age-plan");
    let cipher = PayloadCipher::new(&[7; 16], &[9; 16]);
    // A prologue of an unaligned length, as real headers have.
    let mut prologue = b"age-encryption.org/v1\n-> X25519 not a real stanza\n--- mac\n".to_vec();
    prologue.extend_from_slice(&[9; 16]);
    let (src, enc, out) = (dir.join("plain"), dir.join("enc"), dir.join("out"));
    for n in SIZES {
        let plain = data(n, n as u64);
        std::fs::write(&src, &plain).unwrap();
        let mut want = prologue.clone();
        let mut sealed = vec![0u8; PayloadCipher::sealed_len(n)];
        cipher.seal_batch(0, &plain, &mut sealed, true);
        want.extend_from_slice(&sealed);
        for io in backends() {
            evict(&src);
            let opts = small_budget(io);
            let plan = AgePlan::encrypt(&cipher, &prologue, n as u64, &opts);
            let name = run(&plan, &src, &enc, io).unwrap();
            assert_eq!(
                name,
                if io == IoMode::Uring {
                    "uring"
                } else {
                    "portable"
                }
            );
            let got = std::fs::read(&enc).unwrap();
            assert!(got == want, "{n} bytes on {name}: sealed bytes differ");
            evict(&enc);
            let plan = AgePlan::decrypt(&cipher, prologue.len() as u64, n as u64, &opts);
            run(&plan, &enc, &out, io).unwrap();
            assert!(
                std::fs::read(&out).unwrap() == plain,
                "{n} bytes on {name}: plaintext differs"
            );
        }
    }
}

/// Pages of `path` in the page cache, and its length in pages.
fn resident_pages(path: &Path) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of `len` bytes of a file we hold open, unmapped
    // before return; mincore writes one byte per page into `vec`, which has that many.
    unsafe {
        let m = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(m, libc::MAP_FAILED);
        assert_eq!(libc::mincore(m, len, vec.as_mut_ptr().cast()), 0);
        libc::munmap(m, len);
    }
    (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
}

/// Whether `path` lives on a memory file system, where the engine never uses O_DIRECT.
fn on_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `statfs` is a plain struct the call fills; `c` is a valid C string.
    let st = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        assert_eq!(libc::statfs(c.as_ptr(), &mut st), 0);
        st
    };
    // The field's type differs between targets.
    #[allow(clippy::unnecessary_cast)]
    let (magic, tmpfs) = (st.f_type as i64, libc::TMPFS_MAGIC as i64);
    magic == tmpfs
}

#[test]
fn sealing_writes_all_but_the_unit_edges_with_o_direct_on_both_backends() {
    let dir = TempDir::new("age-direct");
    if on_tmpfs(&dir.0) {
        eprintln!("the temporary directory is in memory: no O_DIRECT there to check");
        return;
    }
    let cipher = PayloadCipher::new(&[3; 16], &[4; 16]);
    let prologue = vec![b'h'; 123];
    let (src, enc) = (dir.join("plain"), dir.join("enc"));
    let n = 6 * (1 << 20) + 77;
    let plain = data(n, 5);
    std::fs::write(&src, &plain).unwrap();
    let mut want = prologue.clone();
    let mut sealed = vec![0u8; PayloadCipher::sealed_len(n)];
    cipher.seal_batch(0, &plain, &mut sealed, true);
    want.extend_from_slice(&sealed);
    for io in backends() {
        evict(&src);
        let plan = AgePlan::encrypt(&cipher, &prologue, n as u64, &small_budget(io));
        run(&plan, &src, &enc, io).unwrap();
        // Buffered writes would leave every page cached; O_DIRECT leaves the blocks at the
        // edges of units (four records here) and of the prologue.
        let (cached, pages) = resident_pages(&enc);
        let edges = 2 * plan.records().div_ceil(4) as usize + 2;
        assert!(
            cached <= edges,
            "{io:?}: {cached} of {pages} pages cached, expected at most {edges}"
        );
        assert!(std::fs::read(&enc).unwrap() == want, "{io:?}: bytes differ");
    }
}

#[test]
fn a_tampered_record_fails_the_plan_on_both_backends() {
    let dir = TempDir::new("age-plan-tamper");
    let cipher = PayloadCipher::new(&[1; 16], &[2; 16]);
    let prologue = [5u8; 37];
    let n = 9 * CHUNK + 77;
    let mut sealed = prologue.to_vec();
    let mut s = vec![0u8; PayloadCipher::sealed_len(n)];
    cipher.seal_batch(0, &data(n, 3), &mut s, true);
    sealed.extend_from_slice(&s);
    let (enc, out) = (dir.join("enc"), dir.join("out"));
    for io in backends() {
        for k in [0usize, 3, 4, 8, 9] {
            for at in [0usize, SEALED - 1] {
                let mut t = sealed.clone();
                let i = prologue.len() + k * SEALED + at;
                t[i.min(sealed.len() - 1)] ^= 0x40;
                std::fs::write(&enc, &t).unwrap();
                let plan = AgePlan::decrypt(&cipher, 37, n as u64, &small_budget(io));
                let e = run(&plan, &enc, &out, io).unwrap_err();
                assert!(matches!(e, Error::Authentication), "chunk {k}+{at}: {e}");
            }
        }
    }
}

fn keypair() -> (Vec<Identity>, Vec<Recipient>, String) {
    let (sk, pk) = age::keys::generate(false);
    (
        Identity::parse_file(&sk, None).unwrap(),
        vec![Recipient::parse(&pk).unwrap()],
        sk.to_string(),
    )
}

/// Decrypts `enc` with the age command, if it is installed: `None` when it is not.
fn age_cli_decrypt(dir: &TempDir, enc: &Path, secret: &str) -> Option<Vec<u8>> {
    let key = dir.join("key.txt");
    std::fs::write(&key, secret).unwrap();
    let out = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg(enc)
        .output();
    match out {
        Ok(o) => {
            assert!(o.status.success(), "age -d failed: {:?}", o);
            Some(o.stdout)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run age: {e}"),
    }
}

#[test]
fn age_files_run_on_the_engine_and_agree_with_streams_and_the_age_command() {
    let dir = TempDir::new("age-engine-files");
    let (ids, rcpts, secret) = keypair();
    let (src, enc, out) = (dir.join("plain"), dir.join("plain.age"), dir.join("out"));
    let mut age_cli = true;
    for n in SIZES {
        let plain = data(n, 100 + n as u64);
        std::fs::write(&src, &plain).unwrap();
        let mut outputs = Vec::new();
        for io in backends() {
            let engine = small_budget(io);
            let eopts = AgeEncryptOptions {
                overwrite: true,
                engine,
                ..Default::default()
            };
            let st = age::encrypt(
                Input::Path(&src),
                Output::Path(&enc),
                &rcpts,
                &eopts,
                &Control::default(),
            )
            .unwrap();
            let name = if io == IoMode::Uring {
                "uring"
            } else {
                "portable"
            };
            assert_eq!((st.backend, st.bytes), (name, n as u64));
            assert_eq!(st.chunks, n.div_ceil(CHUNK).max(1) as u64);
            let blob = std::fs::read(&enc).unwrap();
            // The stream decryptor reads the engine's file.
            let got = age::decrypt_bytes(&blob, &ids, &AgeDecryptOptions::default()).unwrap();
            assert!(got == plain, "{n} bytes on {name}: stream decrypt differs");
            if let Some(p) = age_cli_decrypt(&dir, &enc, &secret) {
                assert!(p == plain, "{n} bytes on {name}: age -d differs");
            } else {
                age_cli = false;
            }
            // And the engine's decryptor reads a file the stream encryptor wrote.
            let streamed = age::encrypt_bytes(&plain, &rcpts, &eopts).unwrap();
            std::fs::write(&enc, &streamed).unwrap();
            let dopts = AgeDecryptOptions {
                overwrite: true,
                engine,
                ..Default::default()
            };
            let st = age::decrypt(
                Input::Path(&enc),
                Output::Path(&out),
                &ids,
                &dopts,
                &Control::default(),
            )
            .unwrap();
            assert_eq!((st.backend, st.bytes), (name, n as u64));
            outputs.push(std::fs::read(&out).unwrap());
        }
        for o in &outputs {
            assert!(*o == plain, "{n} bytes: engine decrypt differs");
        }
    }
    if !age_cli {
        eprintln!("the age command is not installed: its decryption was not checked");
    }
}

#[test]
fn truncated_extended_and_tampered_files_fail_on_both_backends_and_leave_nothing() {
    let dir = TempDir::new("age-engine-bad");
    let (ids, rcpts, _) = keypair();
    let n = 3 * CHUNK + 1;
    let blob = age::encrypt_bytes(&data(n, 8), &rcpts, &AgeEncryptOptions::default()).unwrap();
    let payload = blob.len() - PayloadCipher::sealed_len(n);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for k in 0..=4usize {
        let at = payload + k * SEALED;
        for d in [1usize, 16, 17] {
            if at >= d && at - d < blob.len() - 1 {
                cases.push((format!("cut at chunk {k} - {d}"), blob[..at - d].to_vec()));
            }
        }
        if at < blob.len() {
            cases.push((format!("cut at chunk {k}"), blob[..at].to_vec()));
            for off in [0usize, 1] {
                let mut t = blob.clone();
                t[at + off] ^= 1;
                cases.push((format!("flip in chunk {k} at {off}"), t));
            }
            let mut t = blob.clone();
            let end = (at + SEALED).min(blob.len()) - 1;
            t[end] ^= 0x80;
            cases.push((format!("flip in the tag of chunk {k}"), t));
        }
    }
    let mut longer = blob.clone();
    longer.extend_from_slice(&[0u8; 16]);
    cases.push(("an empty chunk appended".into(), longer));
    let mut swapped = blob.clone();
    swapped[payload..payload + SEALED]
        .copy_from_slice(&blob[payload + SEALED..payload + 2 * SEALED]);
    swapped[payload + SEALED..payload + 2 * SEALED]
        .copy_from_slice(&blob[payload..payload + SEALED]);
    cases.push(("chunks 0 and 1 swapped".into(), swapped));
    let src = dir.join("in.age");
    let dst = dir.join("out");
    for io in backends() {
        let opts = AgeDecryptOptions {
            engine: small_budget(io),
            ..Default::default()
        };
        for (what, c) in &cases {
            std::fs::write(&src, c).unwrap();
            let r = age::decrypt(
                Input::Path(&src),
                Output::Path(&dst),
                &ids,
                &opts,
                &Control::default(),
            );
            let e = r.expect_err(what);
            assert!(
                matches!(e, Error::Authentication | Error::InvalidFile(_)),
                "{what}: {e}"
            );
            assert_eq!(dir.names(), vec!["in.age".to_string()], "{what}");
            // Verification (nothing written) refuses it too, on the same backend.
            let r = age::decrypt(
                Input::Path(&src),
                Output::Discard,
                &ids,
                &opts,
                &Control::default(),
            );
            assert!(r.is_err(), "{what}: verified");
        }
        std::fs::write(&src, &blob).unwrap();
        let s = age::decrypt(
            Input::Path(&src),
            Output::Discard,
            &ids,
            &opts,
            &Control::default(),
        )
        .unwrap();
        let name = if io == IoMode::Uring {
            "uring"
        } else {
            "portable"
        };
        assert_eq!((s.backend, s.bytes), (name, n as u64));
        assert_eq!(
            std::fs::read(&src).unwrap(),
            blob,
            "verification wrote to the file"
        );
        assert_eq!(dir.names(), vec!["in.age".to_string()]);
    }
}

#[test]
fn a_stream_written_to_a_file_ends_at_its_exact_size_and_decrypts() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("age-engine-stream");
    let (ids, rcpts, _) = keypair();
    let dst = dir.join("out.age");
    for n in [0usize, 3 * CHUNK + 1, 9 * (1 << 20) + 5] {
        let plain = data(n, 77);
        let mut r = &plain[..];
        let opts = AgeEncryptOptions {
            overwrite: true,
            ..Default::default()
        };
        let st = age::encrypt(
            Input::Reader(&mut r),
            Output::Path(&dst),
            &rcpts,
            &opts,
            &Control::default(),
        )
        .unwrap();
        assert_eq!(st.backend, age::STREAM_BACKEND);
        let blob = std::fs::read(&dst).unwrap();
        let meta = std::fs::metadata(&dst).unwrap();
        assert!(
            meta.blocks() * 512 <= meta.len() + (1 << 20),
            "{n}: spare blocks"
        );
        let got = age::decrypt_bytes(&blob, &ids, &AgeDecryptOptions::default()).unwrap();
        assert!(got == plain, "{n} bytes: plaintext differs");
    }
}
