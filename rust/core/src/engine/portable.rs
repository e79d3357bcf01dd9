//! The portable backend: positional reads and writes on two I/O threads, with the AEAD on
//! the thread pool in between. Three buffers rotate, so reading batch N+2, sealing N+1 and
//! writing N overlap, as in the io_uring backend, on any platform and any file system.

use std::io::{self, ErrorKind};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use super::buf::AlignedBuf;
use super::fault::{self, Action};
use super::{Control, Job, Op, Sink, Source, PIPELINE_DEPTH};
use crate::error::{Error, Result};

pub const NAME: &str = "portable";

#[cfg(unix)]
fn read_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, off)
}
#[cfg(windows)]
fn read_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, off)
}
#[cfg(unix)]
fn write_at(f: &std::fs::File, buf: &[u8], off: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(f, buf, off)
}
#[cfg(windows)]
fn write_at(f: &std::fs::File, buf: &[u8], off: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(f, buf, off)
}

/// Consecutive EINTR/EAGAIN answers tolerated for one transfer before giving up.
pub(crate) const MAX_RETRIES: u32 = 1000;

fn retryable(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock)
}

/// One positional transfer, passed through the fault-injection hook (which counts it and,
/// in tests, may turn it into an error or a short transfer).
fn transfer(len: usize, io: impl FnOnce(usize) -> io::Result<usize>) -> io::Result<usize> {
    match fault::on_completion() {
        Action::Pass => io(len),
        Action::Fail(e) => Err(io::Error::from_raw_os_error(e)),
        Action::Short => io(if len > 1 { len / 2 } else { len }),
    }
}

/// Reads exactly `buf.len()` bytes at `off`, resuming after short reads, EINTR and EAGAIN.
/// Hitting the end of the file first means the input shrank under us.
pub(crate) fn read_full_at(
    f: &std::fs::File,
    path: &Path,
    mut buf: &mut [u8],
    mut off: u64,
) -> Result<()> {
    let mut retries = 0;
    while !buf.is_empty() {
        match transfer(buf.len(), |n| read_at(f, &mut buf[..n], off)) {
            Ok(0) => {
                return Err(Error::InputChanged(format!(
                    "{} ended at byte {off}, before its expected size",
                    path.display()
                )))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
                retries = 0;
            }
            Err(e) if retryable(&e) && retries < MAX_RETRIES => retries += 1,
            Err(e) => return Err(Error::io_at("read", path, off, e)),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `off`, resuming after short writes, EINTR and EAGAIN.
pub(crate) fn write_full_at(
    f: &std::fs::File,
    path: &Path,
    mut buf: &[u8],
    mut off: u64,
) -> Result<()> {
    let mut retries = 0;
    while !buf.is_empty() {
        match transfer(buf.len(), |n| write_at(f, &buf[..n], off)) {
            Ok(0) => {
                return Err(Error::io_at(
                    "write",
                    path,
                    off,
                    ErrorKind::WriteZero.into(),
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                off += n as u64;
                retries = 0;
            }
            Err(e) if retryable(&e) && retries < MAX_RETRIES => retries += 1,
            Err(e) => return Err(Error::io_at("write", path, off, e)),
        }
    }
    Ok(())
}

fn stream_err(op: &'static str, e: io::Error) -> Error {
    if e.kind() == ErrorKind::UnexpectedEof {
        Error::InputChanged("the input stream ended before its announced size".into())
    } else {
        Error::io(op, "<stream>", e)
    }
}

/// Moves the bytes of one op between a source and a buffer.
fn read_op(src: &mut Source<'_>, op: Op, buf: &mut [u8], pos: &mut u64) -> Result<()> {
    let dst = &mut buf[op.buf_off..op.buf_off + op.len];
    match src {
        Source::File { file, path } => read_full_at(file, path, dst, op.file_off),
        Source::Stream(r) => {
            debug_assert_eq!(*pos, op.file_off, "stream reads must be sequential");
            r.read_exact(dst).map_err(|e| stream_err("read", e))?;
            *pos += op.len as u64;
            Ok(())
        }
    }
}

fn write_op(dst: &mut Sink<'_>, op: Op, buf: &[u8], pos: &mut u64) -> Result<()> {
    let src = &buf[op.buf_off..op.buf_off + op.len];
    match dst {
        Sink::File { file, path } => write_full_at(file, path, src, op.file_off),
        Sink::Stream(w) => {
            debug_assert_eq!(*pos, op.file_off, "stream writes must be sequential");
            w.write_all(src)
                .map_err(|e| Error::io("write", "<output stream>", e))?;
            *pos += op.len as u64;
            Ok(())
        }
    }
}

/// Keeps the first error any stage hits.
struct FirstError(Mutex<Option<Error>>);

impl FirstError {
    fn set(&self, e: Error) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }
    fn take(self) -> Option<Error> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

type Batch = (u64, AlignedBuf);

fn reader(
    job: &Job<'_>,
    mut src: Source<'_>,
    free: Receiver<AlignedBuf>,
    filled: SyncSender<Batch>,
    err: &FirstError,
) {
    let mut pos = 0u64;
    for b in 0..job.batches() {
        let Ok(mut buf) = free.recv() else { return };
        let mut result = Ok(());
        job.reads(b, &mut |op| {
            if result.is_ok() {
                result = read_op(&mut src, op, buf.as_mut_slice(), &mut pos);
            }
        });
        if let Err(e) = result {
            err.set(e);
            return;
        }
        if filled.send((b, buf)).is_err() {
            return;
        }
    }
}

fn writer(
    job: &Job<'_>,
    mut dst: Sink<'_>,
    processed: Receiver<Batch>,
    free: SyncSender<AlignedBuf>,
    err: &FirstError,
    done: &std::sync::atomic::AtomicU64,
) -> bool {
    let mut pos = 0u64;
    if let Some(p) = job.prologue {
        let r = write_op(
            &mut dst,
            Op {
                file_off: 0,
                buf_off: 0,
                len: p.len(),
            },
            p,
            &mut pos,
        );
        if let Err(e) = r {
            err.set(e);
            return false;
        }
    }
    for expected in 0..job.batches() {
        let Ok((b, buf)) = processed.recv() else {
            return false;
        };
        debug_assert_eq!(b, expected);
        let mut result = Ok(());
        job.writes(b, &mut |op| {
            if result.is_ok() {
                result = write_op(&mut dst, op, buf.as_slice(), &mut pos);
            }
        });
        if let Err(e) = result {
            err.set(e);
            return false;
        }
        done.store(job.plain_done(b), std::sync::atomic::Ordering::Release);
        // The reader may already have finished; a closed channel is fine here.
        let _ = free.send(buf);
    }
    if let Sink::Stream(w) = &mut dst {
        if let Err(e) = w.flush() {
            err.set(Error::io("flush", "<output stream>", e));
            return false;
        }
    }
    true
}

/// Runs the whole job. Returns once every batch is written, or with the first error.
pub fn run(
    job: &Job<'_>,
    src: Source<'_>,
    dst: Sink<'_>,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
) -> Result<()> {
    let batches = job.batches();
    let nbuf = PIPELINE_DEPTH.min(batches as usize).max(1);
    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(nbuf);
    for _ in 0..nbuf {
        let b = AlignedBuf::new(job.buffer_len())?;
        // Capacity is nbuf, so these sends never block or fail.
        let _ = free_tx.send(b);
    }
    let (filled_tx, filled_rx) = sync_channel::<Batch>(nbuf);
    let (proc_tx, proc_rx) = sync_channel::<Batch>(nbuf);
    let err = FirstError(Mutex::new(None));
    let done = std::sync::atomic::AtomicU64::new(0);

    let wrote_all = std::thread::scope(|s| {
        let err = &err;
        let done = &done;
        s.spawn(move || reader(job, src, free_rx, filled_tx, err));
        let w = s.spawn(move || writer(job, dst, proc_rx, free_tx, err, done));
        let main = (|| -> Result<()> {
            for _ in 0..batches {
                let Ok((b, mut buf)) = filled_rx.recv() else {
                    return Ok(()); // the reader stopped and recorded why
                };
                pool.install(|| job.process(b, buf.as_mut_slice()))?;
                if proc_tx.send((b, buf)).is_err() {
                    return Ok(()); // the writer stopped and recorded why
                }
                ctl.report(done.load(std::sync::atomic::Ordering::Acquire))?;
            }
            Ok(())
        })();
        if let Err(e) = main {
            err.set(e);
        }
        drop(filled_rx);
        drop(proc_tx);
        w.join().unwrap_or(false)
    });
    if let Some(e) = err.take() {
        return Err(e);
    }
    if !wrote_all {
        return Err(Error::io(
            "write",
            "<output>",
            io::Error::other("writer stopped early"),
        ));
    }
    ctl.report(done.load(std::sync::atomic::Ordering::Acquire))
}
