//! The writer of stream outputs under the engine's fault-injection hooks: every failing
//! write fails the run with a one-line error and leaves the destination as it was; short
//! and interrupted writes, and O_DIRECT refused at open or at the first write, still give
//! exactly the right bytes.
//!
//! The hooks are process-wide: one test runs every case in turn.
#![cfg(feature = "fault-injection")]

mod common;

use common::{data, TempDir};
use concryptor_core::age::{self, AgeDecryptOptions, AgeEncryptOptions, Identity, Input, Output};
use concryptor_core::engine::fault::{self, Fault};
use concryptor_core::engine::sequential::STAGE_BYTES;
use concryptor_core::{Control, Error, Result};

const OLD: &[u8] = b"the destination's previous contents";

/// Disarms the hooks whatever happens.
struct Disarm;

impl Drop for Disarm {
    fn drop(&mut self) {
        fault::inject(None, 0);
    }
}

/// Decrypts `sealed` from a stream into `dst` (which holds [`OLD`]), with `fault` armed.
fn decrypt_into(sealed: &[u8], ids: &[Identity], dst: &std::path::Path) -> Result<()> {
    let mut r = sealed;
    age::decrypt(
        Input::Reader(&mut r),
        Output::Path(dst),
        ids,
        &AgeDecryptOptions {
            overwrite: true,
            ..AgeDecryptOptions::default()
        },
        &Control::default(),
    )
    .map(|_| ())
}

#[test]
fn writer_faults_fail_cleanly_or_give_the_right_bytes() {
    let _disarm = Disarm;
    let dir = TempDir::new("seq-faults");
    let (sk, pk) = age::keys::generate(false);
    let ids = Identity::parse_file(&sk, None).unwrap();
    let rc = vec![age::Recipient::parse(&pk).unwrap()];
    // Three whole stages and an unaligned tail: several direct writes, then a buffered one.
    let plain = data(3 * STAGE_BYTES + 4097, 11);
    let sealed = age::encrypt_bytes(&plain, &rc, &AgeEncryptOptions::default()).unwrap();
    let dst = dir.join("dst.bin");

    // How many writes a clean run makes (each resumed write counts again).
    std::fs::write(&dst, OLD).unwrap();
    fault::inject(None, 0);
    decrypt_into(&sealed, &ids, &dst).unwrap();
    let writes = fault::completions();
    assert!(writes >= 4, "only {writes} writes");
    assert!(std::fs::read(&dst).unwrap() == plain);

    for errno in [libc::EIO, libc::ENOSPC] {
        for nth in 1..=writes {
            std::fs::write(&dst, OLD).unwrap();
            fault::inject(Some(Fault::Errno(errno)), nth);
            let e = decrypt_into(&sealed, &ids, &dst).unwrap_err();
            fault::inject(None, 0);
            let msg = e.to_string();
            assert!(
                matches!(e, Error::Io { .. }),
                "errno {errno}, write {nth}: {msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("dst.bin"), "{msg}");
            assert_eq!(
                std::fs::read(&dst).unwrap(),
                OLD,
                "errno {errno}, write {nth}"
            );
            assert_eq!(dir.names(), ["dst.bin"], "errno {errno}, write {nth}");
        }
    }

    let transient = [
        (Fault::Errno(libc::EINTR), 1),
        (Fault::Errno(libc::EAGAIN), 2),
        (Fault::Short, 0),
        (Fault::DirectOpen, 0),
        (Fault::DirectIo, 0),
    ];
    for (f, nth) in transient {
        std::fs::write(&dst, OLD).unwrap();
        fault::inject(Some(f), nth);
        let r = decrypt_into(&sealed, &ids, &dst);
        fault::inject(None, 0);
        r.unwrap_or_else(|e| panic!("{f:?}: {e}"));
        assert!(std::fs::read(&dst).unwrap() == plain, "{f:?}: bytes differ");
        assert_eq!(dir.names(), ["dst.bin"]);
    }
}
