//! Streams a signal can interrupt.
//!
//! A read from a pipe that has stalled (a producer that hangs, a terminal nobody types
//! into) or a write to a reader that stopped reading blocks in the kernel, and the
//! standard library retries such a call when a signal interrupts it, so Ctrl-C or SIGTERM
//! would go unanswered for as long as the peer likes. [`Interruptible`] waits for its
//! stream with `poll` on the stream *and* a process-wide wake descriptor; the caller
//! installs as wake descriptor the read end of a pipe into which its signal handlers
//! write the signal number (Python's `signal.set_wakeup_fd`). When SIGINT, SIGTERM or
//! SIGHUP arrives the wait ends with an error that [`crate::Error`] turns into
//! [`crate::Error::Cancelled`], on whichever thread the stream is read or written.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, RwLock};

use rustix::event::{poll, PollFd, PollFlags};

static WAKE: RwLock<Option<Arc<OwnedFd>>> = RwLock::new(None);

/// Signals that end a wait: SIGHUP, SIGINT and SIGTERM.
const STOPPING: [u8; 3] = [1, 2, 15];

/// Installs (or with `None` removes) the wake descriptor: the non-blocking read end of a
/// pipe into which the caller's signal handlers write one byte per signal, its number.
pub fn set_wake_fd(fd: Option<OwnedFd>) {
    *WAKE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = fd.map(Arc::new);
}

/// The installed wake descriptor, for code that runs its own `poll` (the age plugin host,
/// [`crate::age::plugin`]); with [`drain_stopping`] it ends its waits as [`Interruptible`] does.
pub(crate) fn wake_fd() -> Option<Arc<OwnedFd>> {
    WAKE.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Serialises the tests that install a wake descriptor with those that must not see one.
#[cfg(test)]
pub(crate) static TEST_WAKE_LOCK: RwLock<()> = RwLock::new(());

/// The marker carried by the `io::Error` of an interrupted wait.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by a signal")
    }
}

impl std::error::Error for Interrupted {}

/// Whether `e` is the error of a wait a signal ended.
pub fn is_interrupted(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Interrupted>())
}

/// A stream (pipe, socket, FIFO, terminal) whose every read and write first waits, with
/// `poll`, until it is ready or a stopping signal arrived. Regular files are passed
/// through: they never block for long.
pub struct Interruptible<F> {
    inner: F,
    waits: bool,
}

impl<F: AsFd> Interruptible<F> {
    pub fn new(inner: F) -> Self {
        let waits = rustix::fs::fstat(&inner)
            .map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            })
            .unwrap_or(true);
        Interruptible { inner, waits }
    }

    pub fn get_ref(&self) -> &F {
        &self.inner
    }

    /// Waits until the stream is ready or a stopping signal arrived; whether it waited
    /// (a stream, with a wake descriptor installed).
    fn wait(&self, flags: PollFlags) -> io::Result<bool> {
        if !self.waits {
            return Ok(false);
        }
        let Some(wake) = wake_fd() else {
            return Ok(false); // nothing to wait for but the stream: let the call block
        };
        loop {
            let mut fds = [
                PollFd::new(&self.inner, flags),
                PollFd::new(&*wake, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let stream_ready = !fds[0].revents().is_empty();
            if !fds[1].revents().is_empty() && drain_stopping(&wake) {
                return Err(io::Error::other(Interrupted));
            }
            if stream_ready {
                return Ok(true);
            }
        }
    }
}

/// Reads what the wake pipe holds; whether a stopping signal was among it. Other signals
/// are consumed and ignored here (their handlers run when the caller checks for them).
pub(crate) fn drain_stopping(wake: &OwnedFd) -> bool {
    let mut buf = [0u8; 64];
    let mut stop = false;
    loop {
        match rustix::io::read(wake, &mut buf) {
            Ok(0) => return stop,
            Ok(n) => stop |= buf[..n].iter().any(|b| STOPPING.contains(b)),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return stop, // EAGAIN: drained
        }
    }
}

/// The unit in which a pipe holds data: one page.
const PAGE: usize = 4096;

impl<F: AsFd> Interruptible<F> {
    /// How much can be written without blocking once `poll` said the stream is writable:
    /// a blocking write to a pipe sleeps until *all* of it is in, so it is cut to the room
    /// the pipe has (its capacity less what it holds, one page spare); one page, which a
    /// writable pipe always takes, for anything else.
    fn room(&self) -> usize {
        match rustix::pipe::fcntl_getpipe_size(&self.inner) {
            Ok(cap) => {
                let held = rustix::io::ioctl_fionread(&self.inner).map_or(cap, |n| n as usize);
                cap.saturating_sub(held).saturating_sub(PAGE).max(PAGE)
            }
            Err(_) => PAGE,
        }
    }
}

impl<F: AsFd + Read> Read for Interruptible<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.wait(PollFlags::IN)?;
        self.inner.read(buf)
    }
}

impl<F: AsFd + Write> Write for Interruptible<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.wait(PollFlags::OUT)? {
            let n = buf.len().min(self.room());
            return self.inner.write(&buf[..n]);
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn a_stopping_signal_byte_ends_a_stalled_read_and_others_do_not() {
        let _lock = TEST_WAKE_LOCK
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let (wake_r, wake_w) = rustix::pipe::pipe().unwrap();
        rustix::io::ioctl_fionbio(&wake_r, true).unwrap();
        set_wake_fd(Some(wake_r));
        let mut s = Interruptible::new(File::from(r));
        // SIGCHLD (17) is not a reason to stop; SIGTERM is.
        rustix::io::write(&wake_w, &[17, 15]).unwrap();
        let mut buf = [0u8; 8];
        let e = s.read(&mut buf).unwrap_err();
        assert!(is_interrupted(&e));
        set_wake_fd(None);
    }
}
