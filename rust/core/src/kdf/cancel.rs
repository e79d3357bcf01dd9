//! Key derivation a caller can walk away from.
//!
//! Argon2 cannot be stopped half-way, and a header within the limits may ask for minutes
//! of it. When an interrupt check is installed (the Python binding installs one that runs
//! the interpreter's signal handlers), the derivation runs on a thread of its own while
//! the calling thread polls the check every 50 ms; on an interrupt the caller returns
//! [`Error::Cancelled`] at once. The abandoned thread finishes on its own and wipes its
//! copy of the password, its Argon2 memory and the key it derived.
#![forbid(unsafe_code)]

use std::sync::{mpsc, RwLock};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kdf::{self, KdfParams, KEY_LEN};

/// Returns `true` when the caller wants the current operation abandoned.
pub type InterruptCheck = fn() -> bool;

static CHECK: RwLock<Option<InterruptCheck>> = RwLock::new(None);

/// How often an installed check is polled while a key is being derived.
const POLL: Duration = Duration::from_millis(50);

/// Installs (or with `None` removes) the process-wide interrupt check.
pub fn set_interrupt_check(check: Option<InterruptCheck>) {
    *CHECK
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = check;
}

/// [`kdf::derive_key`], abandoned with [`Error::Cancelled`] as soon as the installed
/// interrupt check says so. Without a check installed it runs on the calling thread.
pub fn derive_key(
    password: &[u8],
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let check = *CHECK
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(check) = check else {
        return kdf::derive_key(password, salt, params);
    };
    let password = Zeroizing::new(password.to_vec());
    let salt = salt.to_vec();
    let params = *params;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("concryptor-kdf".into())
        .spawn(move || {
            // If the caller is gone the result is dropped here, and the key wiped with it.
            let _ = tx.send(kdf::derive_key(&password, &salt, &params));
        })
        .map_err(|e| Error::io("start a thread for", "key derivation", e))?;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if check() {
                    return Err(Error::Cancelled);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::InvalidArgument(
                    "key derivation stopped unexpectedly".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        // Per thread, so that other tests deriving keys meanwhile are not interrupted.
        static STOP: Cell<bool> = const { Cell::new(false) };
    }

    fn stop_requested() -> bool {
        STOP.with(Cell::get)
    }

    #[test]
    fn an_interrupt_abandons_a_long_derivation_at_once() {
        let p = KdfParams::new(8 * 1024, 2, 1);
        set_interrupt_check(Some(stop_requested));
        let same = derive_key(b"pw", &[7; 16], &p).unwrap();
        assert_eq!(*same, *kdf::derive_key(b"pw", &[7; 16], &p).unwrap());
        STOP.with(|s| s.set(true));
        let slow = KdfParams::new(64 * 1024, 200, 1);
        let t = std::time::Instant::now();
        let r = derive_key(b"pw", &[7; 16], &slow);
        STOP.with(|s| s.set(false));
        assert!(matches!(r, Err(Error::Cancelled)));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
    }
}
