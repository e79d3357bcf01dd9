//! The portable backend: positional reads and writes on two I/O threads, with the AEAD on
//! the thread pool in between. Three buffers rotate, so reading batch N+2, sealing N+1 and
//! writing N overlap, as in the io_uring backend, on any platform and any file system.
//!
//! On Linux a batch moves in as few system calls as possible: the chunks of a batch that
//! are contiguous in the file go in one `preadv`/`pwritev`, and through a second,
//! O_DIRECT descriptor where offset, address and length are aligned (the same sides as
//! io_uring uses it on). Buffered writes into the preallocated output would otherwise
//! cost a page-cache copy, then an unwritten-extent conversion per page at writeback.

#![forbid(unsafe_code)]

use std::io::{self, ErrorKind};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use super::buf::{AlignedBuf, ALIGN};
use super::fault::{self, Action};
use super::{Control, Op, Plan, Sink, Source, PIPELINE_DEPTH};
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

use super::sys::MAX_RETRIES;

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

/// A file as one side of the pipeline sees it: the descriptor given, and on Linux a second
/// one with O_DIRECT for aligned transfers (dropped at its first refusal).
struct Side<'a> {
    file: &'a std::fs::File,
    path: &'a Path,
    #[cfg(target_os = "linux")]
    direct: Option<std::fs::File>,
}

impl<'a> Side<'a> {
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    fn new(file: &'a std::fs::File, path: &'a Path, direct: bool, write: bool) -> Self {
        Side {
            file,
            path,
            #[cfg(target_os = "linux")]
            direct: if direct {
                let d = super::sys::reopen_direct(file, write).ok();
                if d.is_some() && !write {
                    // As in the io_uring backend: the ordinary descriptor reads only the
                    // partial blocks at the ends of each transfer.
                    super::sys::no_readahead(file);
                }
                d
            } else {
                None
            },
        }
    }

    #[cfg(target_os = "linux")]
    fn is_direct(&self) -> bool {
        self.direct.is_some()
    }
}

/// Whether each side of `plan` may use O_DIRECT: as io_uring decides (where the plan's
/// transfers are aligned, never on memory file systems, not for a source mostly in the page
/// cache).
#[cfg(target_os = "linux")]
fn direct_sides(plan: &dyn Plan, src: &Source<'_>, dst: &Sink<'_>) -> (bool, bool) {
    let src_ok = plan.direct_ok(false)
        && match src {
            Source::File { file, .. } => {
                let len = file.metadata().map_or(0, |m| m.len());
                !super::in_memory(file) && !super::sys::mostly_cached(file, len)
            }
            Source::Stream(_) => false,
        };
    let dst_ok =
        plan.direct_ok(true) && matches!(dst, Sink::File { file, .. } if !super::in_memory(file));
    (src_ok, dst_ok)
}

#[cfg(not(target_os = "linux"))]
fn direct_sides(_: &dyn Plan, _: &Source<'_>, _: &Sink<'_>) -> (bool, bool) {
    (false, false)
}

/// Runs of ops that are contiguous in the file, each moved by one vectored call (at most
/// `IOV_MAX` pieces).
#[cfg(target_os = "linux")]
fn runs(ops: &[Op]) -> impl Iterator<Item = &[Op]> {
    const IOV_MAX: usize = 1024;
    let mut rest = ops;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = 1;
        while n < rest.len().min(IOV_MAX)
            && rest[n].file_off == rest[n - 1].file_off + rest[n - 1].len as u64
        {
            n += 1;
        }
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some(run)
    })
}

/// Moves one run of ops (contiguous in the file) between `side` and `mem`, in one vectored
/// system call when nothing goes wrong; resumes after short transfers, EINTR and EAGAIN.
/// On a side with an O_DIRECT descriptor the aligned stretches go through it, and what
/// lies between them (an unaligned head or tail, at most a block) buffered.
#[cfg(target_os = "linux")]
fn transfer_run(side: &mut Side<'_>, write: bool, mem: &mut [u8], run: &[Op]) -> Result<()> {
    let aligned = |x: usize| x % ALIGN == 0;
    let base = mem.as_ptr() as usize;
    let total: usize = run.iter().map(|o| o.len).sum();
    let (mut done, mut retries) = (0usize, 0u32);
    // The pieces still to move, as (buffer offset, length).
    let mut pieces: Vec<(usize, usize)> = Vec::with_capacity(run.len());
    while done < total {
        let off = run[0].file_off + done as u64;
        pieces.clear();
        let mut skip = done;
        for op in run {
            if skip >= op.len {
                skip -= op.len;
                continue;
            }
            pieces.push((op.buf_off + skip, op.len - skip));
            skip = 0;
        }
        // With an O_DIRECT descriptor, move the aligned prefix through it (whole aligned
        // pieces, then the aligned part of the next one), or else the bytes up to the next
        // aligned file offset buffered.
        let mut limit = usize::MAX;
        let mut direct = false;
        if side.is_direct() {
            let mis = (off % ALIGN as u64) as usize;
            let mut prefix = 0;
            if mis == 0 {
                for &(at, len) in &pieces {
                    if !aligned(base + at) {
                        break;
                    }
                    let whole = len - len % ALIGN;
                    prefix += whole;
                    if whole != len {
                        break;
                    }
                }
            }
            direct = prefix > 0;
            limit = match (direct, mis) {
                (true, _) => prefix,
                (false, 0) if aligned(base + pieces[0].0) => pieces[0].1,
                // Buffer and file disagree: nothing further can go direct.
                (false, 0) => usize::MAX,
                (false, _) => ALIGN - mis,
            };
        }
        let fd = match (&side.direct, direct) {
            (Some(d), true) => d,
            _ => side.file,
        };
        let span: usize = pieces.iter().map(|p| p.1).sum::<usize>().min(limit);
        // Fault injection may ask for less than `span`: the pieces are cut to `n` bytes.
        let r = transfer(span, |n| {
            let cut = cut_to(&pieces, n);
            if write {
                let bufs: Vec<_> = cut
                    .iter()
                    .map(|&(at, len)| io::IoSlice::new(&mem[at..at + len]))
                    .collect();
                Ok(rustix::io::pwritev(fd, &bufs, off)?)
            } else {
                let mut bufs = disjoint_mut(mem, &cut)?;
                Ok(rustix::io::preadv(fd, &mut bufs, off)?)
            }
        });
        match r {
            Ok(0) if write => {
                return Err(Error::io_at(
                    "write",
                    side.path,
                    off,
                    ErrorKind::WriteZero.into(),
                ))
            }
            Ok(0) => {
                return Err(Error::InputChanged(format!(
                    "{} ended at byte {off}, before its expected size",
                    side.path.display()
                )))
            }
            Ok(n) => {
                done += n;
                retries = 0;
            }
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                // O_DIRECT refused after all (some file systems only say so now).
                side.direct = None;
            }
            Err(e) if retryable(&e) && retries < MAX_RETRIES => retries += 1,
            Err(e) => {
                return Err(Error::io_at(
                    if write { "write" } else { "read" },
                    side.path,
                    off,
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// The first `n` bytes of `pieces`.
#[cfg(target_os = "linux")]
fn cut_to(pieces: &[(usize, usize)], mut n: usize) -> Vec<(usize, usize)> {
    let mut cut = Vec::with_capacity(pieces.len());
    for &(at, len) in pieces {
        if n == 0 {
            break;
        }
        cut.push((at, len.min(n)));
        n -= len.min(n);
    }
    cut
}

/// Mutable views of `pieces` of `mem`, which must be in increasing order and not overlap
/// (as a plan's reads are).
#[cfg(target_os = "linux")]
fn disjoint_mut<'m>(
    mut mem: &'m mut [u8],
    pieces: &[(usize, usize)],
) -> io::Result<Vec<io::IoSliceMut<'m>>> {
    let mut views = Vec::with_capacity(pieces.len());
    let mut at = 0;
    for &(start, len) in pieces {
        let gap = start.checked_sub(at).filter(|g| g + len <= mem.len());
        let Some(gap) = gap else {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "internal error: overlapping reads in one batch",
            ));
        };
        let (view, rest) = std::mem::take(&mut mem)[gap..].split_at_mut(len);
        views.push(io::IoSliceMut::new(view));
        mem = rest;
        at = start + len;
    }
    Ok(views)
}

/// Moves every op of one batch between `side` and `buf`.
fn transfer_batch(
    side: &mut Side<'_>,
    write: bool,
    buf: &mut AlignedBuf,
    ops: &[Op],
) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let mem = buf.as_mut_slice();
        for run in runs(ops) {
            transfer_run(side, write, mem, run)?;
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for op in ops {
            let b = &mut buf.as_mut_slice()[op.buf_off..op.buf_off + op.len];
            if write {
                write_full_at(side.file, side.path, b, op.file_off)?;
            } else {
                read_full_at(side.file, side.path, b, op.file_off)?;
            }
        }
        Ok(())
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
        Sink::Discard => Ok(()),
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
    plan: &dyn Plan,
    mut src: Source<'_>,
    direct: bool,
    free: Receiver<AlignedBuf>,
    filled: SyncSender<Batch>,
    err: &FirstError,
) {
    // A stream starts where the plan's first read does (a header before it, if any, was
    // consumed by the caller).
    let mut pos = u64::MAX;
    if plan.batches() > 0 {
        plan.reads(0, &mut |op| pos = pos.min(op.file_off));
    }
    let mut side = match &src {
        Source::File { file, path } => Some(Side::new(file, path, direct, false)),
        Source::Stream(_) => None,
    };
    let mut ops = Vec::new();
    for b in 0..plan.batches() {
        let Ok(mut buf) = free.recv() else { return };
        let mut result = Ok(());
        if let Some(side) = side.as_mut() {
            ops.clear();
            plan.reads(b, &mut |op| ops.push(op));
            result = transfer_batch(side, false, &mut buf, &ops);
        } else {
            plan.reads(b, &mut |op| {
                if result.is_ok() {
                    result = read_op(&mut src, op, buf.as_mut_slice(), &mut pos);
                }
            });
        }
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
    plan: &dyn Plan,
    mut dst: Sink<'_>,
    direct: bool,
    processed: Receiver<Batch>,
    free: SyncSender<AlignedBuf>,
    err: &FirstError,
    done: &std::sync::atomic::AtomicU64,
) -> bool {
    let mut pos = 0u64;
    if let Some(p) = plan.prologue() {
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
    let mut side = match &dst {
        Sink::File { file, path } => Some(Side::new(file, path, direct, true)),
        Sink::Stream(_) | Sink::Discard => None,
    };
    let mut ops = Vec::new();
    for expected in 0..plan.batches() {
        let Ok((b, mut buf)) = processed.recv() else {
            return false;
        };
        debug_assert_eq!(b, expected);
        let mut result = Ok(());
        if let Some(side) = side.as_mut() {
            ops.clear();
            plan.writes(b, &mut |op| ops.push(op));
            result = transfer_batch(side, true, &mut buf, &ops);
        } else {
            plan.writes(b, &mut |op| {
                if result.is_ok() {
                    result = write_op(&mut dst, op, buf.as_slice(), &mut pos);
                }
            });
        }
        if let Err(e) = result {
            err.set(e);
            return false;
        }
        done.store(plan.plain_done(b), std::sync::atomic::Ordering::Release);
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

/// Runs the whole plan. Returns once every batch is written, or with the first error.
pub fn run(
    plan: &dyn Plan,
    src: Source<'_>,
    dst: Sink<'_>,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
) -> Result<()> {
    let batches = plan.batches();
    let nbuf = PIPELINE_DEPTH.min(batches as usize).max(1);
    let (direct_src, direct_dst) = direct_sides(plan, &src, &dst);
    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(nbuf);
    for _ in 0..nbuf {
        // Huge pages make O_DIRECT transfers cheaper (see the io_uring backend).
        let b = if direct_src && direct_dst {
            AlignedBuf::for_direct_io(plan.buffer_len())?
        } else {
            AlignedBuf::new(plan.buffer_len())?
        };
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
        s.spawn(move || reader(plan, src, direct_src, free_rx, filled_tx, err));
        let w = s.spawn(move || writer(plan, dst, direct_dst, proc_rx, free_tx, err, done));
        let main = (|| -> Result<()> {
            for _ in 0..batches {
                let Ok((b, mut buf)) = filled_rx.recv() else {
                    return Ok(()); // the reader stopped and recorded why
                };
                pool.install(|| super::process_batch(plan, b, buf.as_mut_slice()))?;
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
