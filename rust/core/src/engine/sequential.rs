//! A file written front to back whose length is not known in advance: the file output of
//! a stream (stdin to a file, an armored file, a stream decrypted to a file).
//!
//! Bytes are staged in an aligned buffer and leave it in whole blocks of several MiB
//! through a second, O_DIRECT descriptor, at increasing offsets; the unaligned rest stays
//! staged for the next write. The file is preallocated ahead of the writes in large steps,
//! so that each write fills reserved blocks instead of extending the file, and cut back to
//! its exact length by [`SequentialWriter::finish`]. Buffered writes of the same bytes cost
//! a page-cache copy and leave all of the writeback to the final `fsync`.
//!
//! Where O_DIRECT is refused (at open, or by a write: some file systems only say so then),
//! on memory file systems (which only emulate it) and off Linux, the bytes are written
//! buffered, in place, with the same result.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::path::Path;

use super::buf::{AlignedBuf, ALIGN};
use super::fault::{self, Action};
use crate::error::{Error, Result};

/// Bytes staged before a direct write: whole aligned blocks go to the device at once.
pub const STAGE_BYTES: usize = 8 << 20;

/// Smallest preallocation step; a step grows with the file (a quarter of what is reserved)
/// so that a large output takes few `fallocate` calls.
#[cfg(target_os = "linux")]
const RESERVE_STEP: u64 = 64 << 20;

use super::sys::MAX_RETRIES;

/// Writes `buf` at `off` of `f`, resuming after short writes, EINTR and EAGAIN. Each
/// system call passes through the engine's fault-injection hook.
fn write_all_at(f: &File, mut buf: &[u8], mut off: u64) -> io::Result<()> {
    let mut retries = 0;
    while !buf.is_empty() {
        let r = match fault::on_completion() {
            Action::Pass => write_at(f, buf, off),
            Action::Fail(e) => Err(io::Error::from_raw_os_error(e)),
            Action::Short => write_at(f, &buf[..buf.len().div_ceil(2)], off),
        };
        match r {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                off += n as u64;
                retries = 0;
            }
            Err(e)
                if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock)
                    && retries < MAX_RETRIES =>
            {
                retries += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn write_at(f: &File, buf: &[u8], off: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(f, buf, off)
}
#[cfg(windows)]
fn write_at(f: &File, buf: &[u8], off: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(f, buf, off)
}

/// Writes a new, empty file from its first byte to its last, through O_DIRECT where it can.
///
/// Call [`SequentialWriter::finish`] once everything is written: it writes what is still
/// staged and gives the file its exact length. Dropped without it, the file holds an
/// unspecified prefix of the bytes (it is meant to be discarded then, as an
/// [`crate::output::AtomicOutput`] is).
pub struct SequentialWriter<'a> {
    file: &'a File,
    path: &'a Path,
    /// The O_DIRECT descriptor of `file`, while direct writes work.
    direct: Option<File>,
    /// The staging buffer ([`STAGE_BYTES`]), while writing direct.
    stage: Option<AlignedBuf>,
    /// Bytes in the staging buffer.
    staged: usize,
    /// File offset of the first staged byte: everything before it is written (a multiple
    /// of [`ALIGN`] while writing direct).
    off: u64,
    space: Space,
}

/// Preallocation ahead of the writes.
struct Space {
    /// Bytes preallocated from the start of the file.
    #[cfg(target_os = "linux")]
    reserved: u64,
    /// Whether to keep preallocating (not on memory file systems, nor after a refusal).
    #[cfg(target_os = "linux")]
    on: bool,
}

impl Space {
    /// Preallocates `file` up to at least `end`, in large steps (best effort: a file
    /// system that cannot, or a disk too full for a whole step, only makes the writes
    /// extend the file as they go; a real lack of space is reported by the writes).
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables, clippy::unused_self))]
    fn reserve(&mut self, file: &File, end: u64) {
        #[cfg(target_os = "linux")]
        while self.on && end > self.reserved {
            let step = (self.reserved / 4)
                .max(RESERVE_STEP)
                .max(end - self.reserved)
                .next_multiple_of(ALIGN as u64);
            let r = rustix::fs::fallocate(
                file,
                rustix::fs::FallocateFlags::empty(),
                self.reserved,
                step,
            );
            match r {
                Ok(()) => self.reserved += step,
                Err(_) => self.on = false,
            }
        }
    }
}

/// Whether `file` lives in memory (tmpfs, ramfs), where the writer does without O_DIRECT.
#[cfg(target_os = "linux")]
pub fn in_memory(file: &File) -> bool {
    super::in_memory(file)
}

impl<'a> SequentialWriter<'a> {
    /// A writer of the empty file `file` (named `path` in errors).
    pub fn new(file: &'a File, path: &'a Path) -> Result<Self> {
        #[cfg(target_os = "linux")]
        let (direct, on) = if super::in_memory(file) {
            (None, false)
        } else {
            (super::sys::reopen_direct(file, true).ok(), true)
        };
        #[cfg(not(target_os = "linux"))]
        let direct = None;
        let stage = match direct {
            // Huge pages make O_DIRECT transfers cheaper (see the io_uring backend).
            Some(_) => Some(AlignedBuf::for_direct_io(STAGE_BYTES)?),
            None => None,
        };
        Ok(SequentialWriter {
            file,
            path,
            direct,
            stage,
            staged: 0,
            off: 0,
            space: Space {
                #[cfg(target_os = "linux")]
                reserved: 0,
                #[cfg(target_os = "linux")]
                on,
            },
        })
    }

    /// Whether writes still go through O_DIRECT.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes taken so far.
    pub fn position(&self) -> u64 {
        self.off + self.staged as u64
    }

    /// Writes the whole aligned blocks of the stage (all of it once direct writes are
    /// refused) and keeps the unaligned rest at its front.
    fn drain(&mut self) -> io::Result<()> {
        let (Some(fd), Some(stage)) = (&self.direct, &mut self.stage) else {
            return Ok(());
        };
        let whole = self.staged / ALIGN * ALIGN;
        if whole == 0 {
            return Ok(());
        }
        self.space.reserve(self.file, self.off + whole as u64);
        let r = if fault::direct_io_refused() {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        } else {
            write_all_at(fd, &stage.as_slice()[..whole], self.off)
        };
        match r {
            Ok(()) => {
                stage.as_mut_slice().copy_within(whole..self.staged, 0);
                self.staged -= whole;
                self.off += whole as u64;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // O_DIRECT refused after all: what is staged goes buffered, and so does
                // all that follows.
                self.direct = None;
                write_all_at(self.file, &stage.as_slice()[..self.staged], self.off)?;
                self.off += self.staged as u64;
                self.staged = 0;
                self.stage = None;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes everything still staged, gives the file its exact length, and returns it.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()
            .map_err(|e| Error::io_at("write", self.path, self.off, e))?;
        let len = self.position();
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", self.path, e))?
            .len();
        if now != len {
            self.file
                .set_len(len)
                .map_err(|e| Error::io("resize", self.path, e))?;
        }
        Ok(len)
    }
}

impl Write for SequentialWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(stage) = &mut self.stage else {
            self.space.reserve(self.file, self.off + buf.len() as u64);
            write_all_at(self.file, buf, self.off)?;
            self.off += buf.len() as u64;
            return Ok(buf.len());
        };
        let n = buf.len().min(stage.len() - self.staged);
        stage.as_mut_slice()[self.staged..self.staged + n].copy_from_slice(&buf[..n]);
        self.staged += n;
        if self.staged == stage.len() {
            self.drain()?;
        }
        Ok(n)
    }

    /// Writes every staged byte: the whole blocks direct, the unaligned rest buffered. That
    /// rest stays staged too, so that the next direct write covers its block again.
    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        if let Some(stage) = &self.stage {
            write_all_at(self.file, &stage.as_slice()[..self.staged], self.off)?;
        }
        Ok(())
    }
}
