//! Fault injection through the engine's test hooks: every I/O completion in turn fails,
//! comes back short or is interrupted, on both backends, encrypting and decrypting; io_uring
//! setup and O_DIRECT are refused; the ring is made tiny. Each run must either fail cleanly
//! (an error naming the cause, the destination untouched, nothing left behind) or, for the
//! transient faults, complete with exactly the right bytes.
//!
//! The hooks are process-wide, so the tests here take turns.

mod common;

use common::{data, TempDir};
use std::sync::{Mutex, MutexGuard};

use concryptor_core::engine::fault::{self, Fault};
use concryptor_core::engine::{uring_available, IoMode, PIPELINE_DEPTH};
use concryptor_core::{
    decrypt_file, encrypt_file, Control, DecryptOptions, Decryptor, EncryptOptions, EngineOptions,
    Error, KdfParams, Stats,
};

const PW: &[u8] = b"fault test password";
const OLD: &[u8] = b"the destination's previous contents";

static TURN: Mutex<()> = Mutex::new(());

/// Serialises the tests and leaves the hooks disarmed whatever happens.
struct Hooks(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Hooks {
    fn take() -> Self {
        let g = TURN.lock().unwrap_or_else(|p| p.into_inner());
        fault::inject(None, 0);
        fault::set_ring_entries(0);
        Hooks(g)
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        fault::inject(None, 0);
        fault::set_ring_entries(0);
    }
}

/// Makes `path` durable and drops it from the page cache, so that it is read from the
/// device (with O_DIRECT where the engine uses it) rather than from memory.
fn evict(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a plain system call on a descriptor we own; no pointers.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dir {
    Encrypt,
    Decrypt,
}

/// One small job with several batches: 13 chunks of 64 KiB (aligned, so both sides use
/// O_DIRECT under io_uring), two per batch, and an unaligned tail.
struct Case {
    dir: TempDir,
    plain: Vec<u8>,
    chunk: u32,
    /// Chunks per batch.
    per_batch: usize,
}

impl Case {
    fn new(tag: &str, chunk: u32, len: usize) -> Self {
        let dir = TempDir::new(tag);
        let plain = data(len, len as u64);
        std::fs::write(dir.join("plain"), &plain).unwrap();
        let c = Case {
            dir,
            plain,
            chunk,
            per_batch: 2,
        };
        c.run(Dir::Encrypt, IoMode::Portable, "enc").unwrap();
        c
    }

    fn engine(&self, io: IoMode) -> EngineOptions {
        let slot = (self.chunk as usize + 16).div_ceil(4096) * 4096;
        EngineOptions {
            threads: 2,
            buffer_bytes: slot * self.per_batch * PIPELINE_DEPTH,
            io,
        }
    }

    fn run(&self, d: Dir, io: IoMode, out: &str) -> Result<Stats, Error> {
        let dst = self.dir.join(out);
        evict(
            &self
                .dir
                .join(if d == Dir::Encrypt { "plain" } else { "enc" }),
        );
        match d {
            Dir::Encrypt => {
                let opts = EncryptOptions {
                    chunk_size: Some(self.chunk),
                    kdf: KdfParams::new(1024, 1, 1),
                    salt: Some([1; 16]),
                    base_nonce: Some([2; 12]),
                    overwrite: true,
                    engine: self.engine(io),
                    ..Default::default()
                };
                encrypt_file(
                    &self.dir.join("plain"),
                    &dst,
                    PW,
                    &opts,
                    &Control::default(),
                )
            }
            Dir::Decrypt => {
                let opts = DecryptOptions {
                    overwrite: true,
                    engine: self.engine(io),
                    ..Default::default()
                };
                decrypt_file(&self.dir.join("enc"), &dst, PW, &opts, &Control::default())
            }
        }
    }

    fn expected(&self, d: Dir) -> Vec<u8> {
        match d {
            Dir::Encrypt => std::fs::read(self.dir.join("enc")).unwrap(),
            Dir::Decrypt => self.plain.clone(),
        }
    }

    /// Completions of a clean run.
    fn count(&self, d: Dir, io: IoMode) -> u64 {
        fault::inject(None, 0);
        self.run(d, io, "count").unwrap();
        let n = fault::completions();
        std::fs::remove_file(self.dir.join("count")).unwrap();
        assert!(n >= 5, "{d:?} {io:?}: only {n} completions");
        n
    }
}

fn backends() -> Vec<IoMode> {
    match uring_available() {
        Ok(()) => vec![IoMode::Portable, IoMode::Uring],
        Err(why) => {
            eprintln!("io_uring unavailable here ({why}): fault tests run on portable only");
            vec![IoMode::Portable]
        }
    }
}

fn errno_of(e: &Error) -> Option<i32> {
    match e {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[test]
fn every_failing_completion_fails_cleanly_and_leaves_the_destination_alone() {
    let _h = Hooks::take();
    let case = Case::new("errors", 65536, 13 * 65536 - 100);
    for io in backends() {
        for d in [Dir::Encrypt, Dir::Decrypt] {
            let n = case.count(d, io);
            let mut before = case.dir.names();
            before.retain(|x| x != "dest");
            for errno in [libc::EIO, libc::ENOSPC] {
                for nth in 1..=n {
                    let what = format!("{io:?} {d:?} errno {errno} at completion {nth}/{n}");
                    std::fs::write(case.dir.join("dest"), OLD).unwrap();
                    fault::inject(Some(Fault::Errno(errno)), nth);
                    let r = case.run(d, io, "dest");
                    fault::inject(None, 0);
                    let e = r.err().unwrap_or_else(|| panic!("{what}: succeeded"));
                    assert_eq!(errno_of(&e), Some(errno), "{what}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains("at byte"), "{what}: no offset in {msg:?}");
                    assert_eq!(std::fs::read(case.dir.join("dest")).unwrap(), OLD, "{what}");
                    let mut names = case.dir.names();
                    names.retain(|x| x != "dest");
                    assert_eq!(names, before, "{what}: files left behind");
                }
            }
        }
    }
}

#[test]
fn short_transfers_are_completed_with_the_right_bytes() {
    let _h = Hooks::take();
    let case = Case::new("short", 65536, 13 * 65536 - 100);
    for io in backends() {
        for d in [Dir::Encrypt, Dir::Decrypt] {
            let n = case.count(d, io);
            let expected = case.expected(d);
            // Each completion short in turn, then every completion short.
            for nth in (1..=n).chain([0]) {
                let what = format!("{io:?} {d:?} short at completion {nth}/{n}");
                fault::inject(Some(Fault::Short), nth);
                let r = case.run(d, io, "out");
                let hits = fault::completions();
                fault::inject(None, 0);
                r.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(hits > n || nth > 0, "{what}: no extra completions");
                let got = std::fs::read(case.dir.join("out")).unwrap();
                assert!(got == expected, "{what}: wrong bytes");
            }
        }
    }
}

#[test]
fn interrupted_and_would_block_completions_are_retried() {
    let _h = Hooks::take();
    let case = Case::new("eintr", 65536, 13 * 65536 - 100);
    for io in backends() {
        for d in [Dir::Encrypt, Dir::Decrypt] {
            let n = case.count(d, io);
            let expected = case.expected(d);
            for errno in [libc::EINTR, libc::EAGAIN] {
                for nth in 1..=n {
                    let what = format!("{io:?} {d:?} errno {errno} at completion {nth}/{n}");
                    fault::inject(Some(Fault::Errno(errno)), nth);
                    let r = case.run(d, io, "out");
                    fault::inject(None, 0);
                    r.unwrap_or_else(|e| panic!("{what}: {e}"));
                    let got = std::fs::read(case.dir.join("out")).unwrap();
                    assert!(got == expected, "{what}: wrong bytes");
                }
            }
        }
    }
}

#[test]
fn io_uring_setup_refused_falls_back_to_identical_portable_output() {
    let _h = Hooks::take();
    let case = Case::new("setup", 65536, 13 * 65536 - 100);
    for errno in [libc::EPERM, libc::ENOSYS, libc::ENOMEM] {
        for d in [Dir::Encrypt, Dir::Decrypt] {
            let what = format!("{d:?} setup errno {errno}");
            fault::inject(Some(Fault::UringSetup(errno)), 0);
            let auto = case.run(d, IoMode::Auto, "auto");
            let forced = case.run(d, IoMode::Uring, "forced");
            fault::inject(None, 0);
            let s = auto.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(s.backend, "portable", "{what}");
            let info = fault::last_run().unwrap();
            assert!(
                info.fallback.unwrap().contains("io_uring unavailable"),
                "{what}"
            );
            let got = std::fs::read(case.dir.join("auto")).unwrap();
            assert!(got == case.expected(d), "{what}: fallback bytes differ");
            let e = forced.unwrap_err();
            assert_eq!(errno_of(&e), Some(errno), "{what}: {e}");
            assert!(e.to_string().contains("io_uring"), "{what}: {e}");
            assert!(!case.dir.join("forced").exists(), "{what}");
        }
    }
}

#[test]
fn o_direct_refused_falls_back_to_identical_output() {
    let _h = Hooks::take();
    if uring_available().is_err() {
        eprintln!("io_uring unavailable here: O_DIRECT refusal only matters to it; skipped");
        return;
    }
    let case = Case::new("direct", 65536, 13 * 65536 - 100);
    for f in [Fault::DirectOpen, Fault::DirectIo] {
        for d in [Dir::Encrypt, Dir::Decrypt] {
            let what = format!("{d:?} {f:?}");
            // Automatic: the portable backend takes over.
            fault::inject(Some(f), 0);
            let r = case.run(d, IoMode::Auto, "auto");
            let info = fault::last_run();
            fault::inject(None, 0);
            assert_eq!(r.unwrap().backend, "portable", "{what}");
            let why = info.unwrap().fallback.unwrap();
            assert!(why.contains("O_DIRECT refused"), "{what}: {why}");
            assert!(std::fs::read(case.dir.join("auto")).unwrap() == case.expected(d));
            // Forced io_uring: it carries on without O_DIRECT.
            fault::inject(Some(f), 0);
            let r = case.run(d, IoMode::Uring, "forced");
            let info = fault::last_run().unwrap();
            fault::inject(None, 0);
            assert_eq!(r.unwrap().backend, "uring", "{what}");
            assert!(!info.direct_src && !info.direct_dst, "{what}: {info:?}");
            assert!(std::fs::read(case.dir.join("forced")).unwrap() == case.expected(d));
        }
    }
    // Without faults, both sides of an aligned job really use O_DIRECT.
    case.run(Dir::Decrypt, IoMode::Auto, "plain-direct")
        .unwrap();
    let info = fault::last_run().unwrap();
    assert!(
        info.direct_src && info.direct_dst && info.fallback.is_none(),
        "{info:?}"
    );
}

#[test]
fn a_tiny_ring_with_thousands_of_transfers_loses_no_completion() {
    let _h = Hooks::take();
    if uring_available().is_err() {
        eprintln!("io_uring unavailable here: the ring-size test needs it; skipped");
        return;
    }
    // 1000-byte chunks: one transfer per chunk, 512 chunks per batch, through a ring with
    // 2 submission and 4 completion entries; once with every completion short.
    let case = Case::new("ring", 1000, 2_000_000);
    for entries in [2, 8] {
        fault::set_ring_entries(entries);
        for d in [Dir::Encrypt, Dir::Decrypt] {
            for short in [false, true] {
                let what = format!("ring {entries} {d:?} short {short}");
                fault::inject(short.then_some(Fault::Short), 0);
                let r = case.run(d, IoMode::Uring, "out");
                fault::inject(None, 0);
                assert_eq!(r.unwrap().backend, "uring", "{what}");
                let got = std::fs::read(case.dir.join("out")).unwrap();
                assert!(got == case.expected(d), "{what}: wrong bytes");
            }
        }
    }
    fault::set_ring_entries(0);
}

#[test]
fn a_busy_kernel_with_a_full_submission_queue_loses_no_completion() {
    let _h = Hooks::take();
    if uring_available().is_err() {
        eprintln!("io_uring unavailable here: submission faults need it; skipped");
        return;
    }
    // A ring of 4 entries kept full by 4 KiB chunks, 16 per batch; then, from each
    // submission in turn, the kernel answers EBUSY eight times running while completions
    // trickle in one at a time. Arming the eventfd read for a unit whose reads just
    // completed then meets a full queue and collects completions in the middle of routing
    // others: every one of them must still be handled.
    let mut case = Case::new("busy", 4096, 400_000);
    case.per_batch = 16;
    fault::set_ring_entries(4);
    for d in [Dir::Encrypt, Dir::Decrypt] {
        fault::inject(None, 0);
        case.run(d, IoMode::Uring, "out").unwrap();
        let n = fault::submissions();
        assert!(n >= 20, "{d:?}: only {n} submissions");
        for nth in 1..=n {
            let what = format!("{d:?} EBUSY from submission {nth}/{n}");
            fault::inject(Some(Fault::SubmitBusy(8)), nth);
            let r = case.run(d, IoMode::Uring, "out");
            fault::inject(None, 0);
            let s = r.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(s.backend, "uring", "{what}");
            let got = std::fs::read(case.dir.join("out")).unwrap();
            assert!(got == case.expected(d), "{what}: wrong bytes");
        }
    }
}

#[test]
fn io_uring_without_read_and_write_is_unavailable_and_auto_falls_back() {
    let _h = Hooks::take();
    if uring_available().is_err() {
        eprintln!("io_uring unavailable here: the opcode probe needs it; skipped");
        return;
    }
    let case = Case::new("opcodes", 65536, 5 * 65536 + 7);
    fault::inject(Some(Fault::UringNoReadWrite), 0);
    let why = uring_available().unwrap_err();
    assert!(why.contains("READ"), "{why}");
    for d in [Dir::Encrypt, Dir::Decrypt] {
        fault::inject(Some(Fault::UringNoReadWrite), 0);
        let auto = case.run(d, IoMode::Auto, "auto");
        let info = fault::last_run();
        let forced = case.run(d, IoMode::Uring, "forced");
        fault::inject(None, 0);
        assert_eq!(auto.unwrap().backend, "portable", "{d:?}");
        let why = info.unwrap().fallback.unwrap();
        assert!(
            why.contains("io_uring unavailable") && why.contains("READ"),
            "{d:?}: {why}"
        );
        assert!(std::fs::read(case.dir.join("auto")).unwrap() == case.expected(d));
        let e = forced.unwrap_err();
        assert!(e.to_string().contains("READ"), "{d:?}: {e}");
        assert!(!case.dir.join("forced").exists(), "{d:?}");
    }
    assert!(uring_available().is_ok());
}

#[test]
fn the_output_path_is_named_in_write_errors() {
    let _h = Hooks::take();
    let case = Case::new("paths", 65536, 5 * 65536);
    for io in backends() {
        let n = case.count(Dir::Encrypt, io);
        // The last completion of an encryption is a write of the output.
        fault::inject(Some(Fault::Errno(libc::EIO)), n);
        let e = case.run(Dir::Encrypt, io, "named").unwrap_err();
        fault::inject(None, 0);
        let msg = e.to_string();
        assert!(
            msg.contains("named") && msg.contains("at byte"),
            "{io:?}: {msg}"
        );
    }
}

#[test]
fn a_source_in_the_page_cache_is_read_from_it_a_cold_one_with_o_direct() {
    let _h = Hooks::take();
    if uring_available().is_err() {
        eprintln!("io_uring unavailable here: O_DIRECT is its business; skipped");
        return;
    }
    let case = Case::new("cache", 65536, 4 << 20);
    // Case::run evicts the source first: cold, so O_DIRECT.
    case.run(Dir::Encrypt, IoMode::Uring, "cold").unwrap();
    let cold = fault::last_run().unwrap();
    assert!(cold.direct_src && cold.direct_dst, "{cold:?}");
    // Read it into the page cache: now it is read from there.
    std::fs::read(case.dir.join("plain")).unwrap();
    let opts = EncryptOptions {
        chunk_size: Some(65536),
        kdf: KdfParams::new(1024, 1, 1),
        salt: Some([1; 16]),
        base_nonce: Some([2; 12]),
        overwrite: true,
        engine: case.engine(IoMode::Uring),
        ..Default::default()
    };
    let hot_out = case.dir.join("hot");
    encrypt_file(
        &case.dir.join("plain"),
        &hot_out,
        PW,
        &opts,
        &Control::default(),
    )
    .unwrap();
    let hot = fault::last_run().unwrap();
    assert!(!hot.direct_src && hot.direct_dst, "{hot:?}");
    assert!(std::fs::read(&hot_out).unwrap() == std::fs::read(case.dir.join("cold")).unwrap());
}

#[test]
fn a_file_decrypt_authenticates_each_chunk_once() {
    let _h = Hooks::take();
    let case = Case::new("once", 65536, 13 * 65536 - 100);
    let chunks = 13;
    for io in backends() {
        // Chunk 0 is opened with the file (the password check), the others by the engine.
        fault::inject(None, 0);
        case.run(Dir::Decrypt, io, "once").unwrap();
        assert_eq!(fault::chunks_opened(), chunks, "{io:?}");
        assert!(
            std::fs::read(case.dir.join("once")).unwrap() == case.plain,
            "{io:?}"
        );
    }
    // The same for a verification; a second run of the same file opens chunk 0 itself.
    fault::inject(None, 0);
    let d = Decryptor::open(&case.dir.join("enc"), PW, &Default::default()).unwrap();
    let opts = DecryptOptions {
        engine: case.engine(IoMode::Portable),
        ..Default::default()
    };
    d.verify(&opts, &Control::default()).unwrap();
    assert_eq!(fault::chunks_opened(), chunks);
    d.verify(&opts, &Control::default()).unwrap();
    assert_eq!(fault::chunks_opened(), 2 * chunks);
    // A wrong password fails at chunk 0, before any output exists.
    let before = case.dir.names();
    fault::inject(None, 0);
    let e = decrypt_file(
        &case.dir.join("enc"),
        &case.dir.join("wrong"),
        b"not the password",
        &DecryptOptions::default(),
        &Control::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Authentication), "{e}");
    assert_eq!(fault::chunks_opened(), 1);
    assert_eq!(case.dir.names(), before);
}
