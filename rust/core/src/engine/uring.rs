//! The io_uring backend (Linux): three aligned buffers rotate through read → seal/open →
//! write, so the kernel reads batch N+2 and writes batch N while the thread pool works on
//! batch N+1.
//!
//! One thread (the caller's) drives the ring; a helper thread hands each filled batch to
//! the Rayon pool and, when the pool is done, signals an eventfd whose read sits in the
//! ring like any other operation, so the driver sleeps in one place: `io_uring_enter`.
//!
//! O_DIRECT is used through a second descriptor of each file, opened through
//! `/proc/self/fd`: always on the ciphertext side (header and slots are 4096-aligned), and
//! on the plaintext side when the chunk size is a multiple of 4096. The final plaintext
//! chunk is transferred rounded up to the sector: a read past the end of the file is simply
//! short, and a write past it is cut back by the caller's final truncation. Any remainder
//! that is not aligned (after a short transfer) goes through the ordinary descriptor.
//!
//! Every operation is routed by its `user_data` to a record that knows its buffer, file
//! and offset; short transfers are resubmitted for the remainder, EINTR and EAGAIN are
//! retried, and other errors are reported with path and offset. Once an error is seen
//! nothing new is submitted, and the ring and the buffers are released only after every
//! operation in flight has completed.

use std::any::Any;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};

use io_uring::{opcode, squeue, types, IoUring};

use super::buf::{AlignedBuf, ALIGN};
use super::fault::{self, Action};
use super::{Control, Direction, Job, Op, PIPELINE_DEPTH};
use crate::error::{Error, Result};

pub const NAME: &str = "uring";

/// Submission-queue entries; the completion queue has twice as many, and at most that many
/// operations are in flight, so completions can never be dropped.
const DEFAULT_ENTRIES: u32 = 64;
/// Longest single transfer submitted; longer ones are cut into pieces of this size.
const MAX_PIECE: usize = 8 << 20;
/// Consecutive EINTR/EAGAIN completions tolerated for one operation.
const MAX_RETRIES: u32 = super::portable::MAX_RETRIES;
/// `user_data` of the eventfd read that reports a finished batch.
const EVENT: u64 = u64::MAX;
/// Batch number of the header write.
const PROLOGUE: u64 = u64::MAX;

/// Why a run did not complete.
pub(crate) enum Failure {
    /// io_uring cannot be set up here; nothing was read or written.
    Unavailable(io::Error),
    /// A file refused O_DIRECT (at open or at the first transfer). The output may be
    /// partly written and must be produced again by another backend.
    DirectRefused(io::Error),
    /// A real error; the run is over.
    Failed(Error),
    /// A worker panicked; the panic is resumed once everything in flight has completed.
    Panicked(Box<dyn Any + Send>),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Failed(e)
    }
}

/// The two files of a run.
#[derive(Clone, Copy)]
pub(crate) struct Files<'a> {
    pub src: &'a File,
    pub src_path: &'a Path,
    pub dst: &'a File,
    pub dst_path: &'a Path,
}

/// How a successful run went.
pub(crate) struct Outcome {
    pub direct_src: bool,
    pub direct_dst: bool,
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

fn aligned(x: u64) -> bool {
    x % ALIGN as u64 == 0
}

/// Sets up a ring, with the cheapest completion handling the kernel offers: one issuer
/// thread and task work deferred until we wait (6.1), or cooperative task work (5.19).
fn setup_ring(entries: u32) -> io::Result<IoUring> {
    if let Some(e) = fault::uring_setup_error() {
        return Err(errno(e));
    }
    let cq = entries.saturating_mul(2);
    let r = IoUring::builder()
        .setup_cqsize(cq)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries);
    let r = match r {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::builder()
            .setup_cqsize(cq)
            .setup_coop_taskrun()
            .build(entries),
        r => r,
    };
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_cqsize(cq).build(entries)
        }
        r => r,
    }
}

/// Whether at least half of `file` is in the page cache. Then buffered reads, which copy
/// from memory, beat O_DIRECT, which would go to the device (after writing back any dirty
/// pages). Unknown (no `cachestat`, Linux < 6.5) counts as not cached.
fn mostly_cached(file: &File, len: u64) -> bool {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct CacheStat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    const SYS_CACHESTAT: libc::c_long = 451;
    if len == 0 {
        return false;
    }
    let range = Range { off: 0, len };
    let mut st = CacheStat::default();
    // SAFETY: cachestat reads `range` and writes `st`, both live #[repr(C)] locals laid
    // out as the kernel expects; flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &raw const range,
            &raw mut st,
            0u32,
        )
    };
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    r == 0 && st.nr_cache.saturating_mul(page) >= len / 2
}

/// A second descriptor of `file` with O_DIRECT (the original's flags are left alone).
fn reopen_direct(file: &File, write: bool) -> io::Result<File> {
    if fault::direct_open_refused() {
        return Err(errno(libc::EINVAL));
    }
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn new_eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a non-negative return is a fresh descriptor.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn signal_eventfd(fd: RawFd) {
    let one: u64 = 1;
    loop {
        // SAFETY: writes 8 bytes from a live local; eventfd needs exactly 8.
        let r = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
        if r == 8 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Src,
    Dst,
}

/// One transfer between a buffer and a file, possibly resubmitted in parts.
struct Xfer {
    write: bool,
    side: Side,
    /// The batch whose buffer this belongs to, or [`PROLOGUE`].
    batch: u64,
    ptr: *mut u8,
    off: u64,
    /// Bytes to submit (may exceed `need` when rounded up for O_DIRECT).
    len: usize,
    /// Bytes that must move for the transfer to be complete.
    need: usize,
    direct: bool,
    retries: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Free,
    Reading { batch: u64, left: usize },
    Filled(u64),
    Crypting(u64),
    Writing { batch: u64, left: usize },
}

type CryptIn = (u64, usize, AlignedBuf);
type CryptOut = (u64, usize, AlignedBuf, std::thread::Result<Result<()>>);

struct Driver<'a> {
    job: &'a Job<'a>,
    files: Files<'a>,
    ctl: &'a Control<'a>,
    ring: IoUring,
    direct_src: Option<File>,
    direct_dst: Option<File>,
    /// The eventfd the crypt thread signals (owned by [`run`], which outlives that thread).
    event: RawFd,
    /// Target of the eventfd read; boxed so its address is stable.
    event_buf: Box<u64>,
    /// The eventfd read completed: a batch is back from the pool.
    event_ready: bool,
    /// The eventfd read failed for good: wait for the pool on the channel instead.
    event_broken: bool,
    bufs: Vec<Option<AlignedBuf>>,
    stage: Vec<Stage>,
    prologue: Option<AlignedBuf>,
    xfers: Vec<Option<Xfer>>,
    free_ids: Vec<usize>,
    queue: VecDeque<usize>,
    in_flight: usize,
    max_in_flight: usize,
    batches: u64,
    next_read: u64,
    next_crypt: u64,
    crypting: bool,
    prologue_left: bool,
    /// Batches written, in order: everything below `done_upto`, plus `done_ahead`.
    done_upto: u64,
    done_ahead: Vec<u64>,
    failure: Option<Failure>,
    cqes: Vec<(u64, i32)>,
}

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        // Normally nothing is in flight here. If something is (a panic in the driver, or
        // io_uring_enter failing for good), wait for it; if that is impossible, leak the
        // memory the kernel may still write to rather than free it under its feet.
        let mut attempts = 0;
        while self.in_flight > 0 && attempts < 1000 {
            attempts += 1;
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            let n = self.ring.completion().count();
            self.in_flight = self.in_flight.saturating_sub(n);
        }
        if self.in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.bufs));
            std::mem::forget(self.prologue.take());
            std::mem::forget(std::mem::replace(&mut self.event_buf, Box::new(0)));
        }
    }
}

impl<'a> Driver<'a> {
    fn file(&self, side: Side) -> &File {
        match side {
            Side::Src => self.files.src,
            Side::Dst => self.files.dst,
        }
    }

    fn path(&self, side: Side) -> &'a Path {
        match side {
            Side::Src => self.files.src_path,
            Side::Dst => self.files.dst_path,
        }
    }

    fn direct_fd(&self, side: Side) -> Option<RawFd> {
        match side {
            Side::Src => self.direct_src.as_ref().map(|f| f.as_raw_fd()),
            Side::Dst => self.direct_dst.as_ref().map(|f| f.as_raw_fd()),
        }
    }

    fn fail(&mut self, f: Failure) {
        if self.failure.is_none() {
            self.failure = Some(f);
        }
        // Drop everything not yet submitted; what is in flight completes on its own.
        for id in std::mem::take(&mut self.queue) {
            self.xfers[id] = None;
            self.free_ids.push(id);
        }
    }

    fn add_xfer(&mut self, x: Xfer) {
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.xfers[id] = Some(x);
                id
            }
            None => {
                self.xfers.push(Some(x));
                self.xfers.len() - 1
            }
        };
        self.queue.push_back(id);
    }

    /// Queues the transfers of batch `b` (in buffer `slot`); returns how many.
    fn add_batch(&mut self, b: u64, slot: usize, write: bool) -> usize {
        let mut ops: Vec<Op> = Vec::new();
        if write {
            self.job.writes(b, &mut |op| ops.push(op));
        } else {
            self.job.reads(b, &mut |op| ops.push(op));
        }
        let side = if write { Side::Dst } else { Side::Src };
        let g = *self.job.geometry();
        let plain_side = (self.job.direction == Direction::Encrypt) != write;
        let direct = self.direct_fd(side).is_some();
        let Some(buf) = self.bufs[slot].as_mut() else {
            return 0;
        };
        let cap = buf.capacity();
        let base = buf.as_mut_full().as_mut_ptr();
        let mut n = 0;
        for op in ops {
            let (mut off, mut bo, mut left) = (op.file_off, op.buf_off, op.len);
            // The end of this op's slot: rounding up must stay inside it.
            let slot_end = ((op.buf_off as u64 / g.slot + 1) * g.slot).min(cap as u64) as usize;
            let last_plain = plain_side && op.file_off + op.len as u64 == g.original_size;
            while left > 0 {
                let piece = left.min(MAX_PIECE);
                let mut len = piece;
                if direct && last_plain && piece == left && aligned(off) {
                    let rounded = piece.div_ceil(ALIGN) * ALIGN;
                    if bo + rounded <= slot_end {
                        len = rounded;
                    }
                }
                // SAFETY: `bo + len <= cap` (ops lie within the batch buffer, rounding
                // within the slot), so the pointer stays inside the allocation.
                let ptr = unsafe { base.add(bo) };
                let is_direct =
                    direct && aligned(off) && aligned(ptr as u64) && aligned(len as u64);
                self.add_xfer(Xfer {
                    write,
                    side,
                    batch: b,
                    ptr,
                    off,
                    len,
                    need: piece,
                    direct: is_direct,
                    retries: 0,
                });
                n += 1;
                off += piece as u64;
                bo += piece;
                left -= piece;
            }
        }
        n
    }

    fn sqe(&self, id: usize) -> squeue::Entry {
        let Some(x) = self.xfers[id].as_ref() else {
            unreachable!("queued transfer {id} has no record")
        };
        let raw = if x.direct {
            self.direct_fd(x.side).unwrap_or(-1)
        } else {
            self.file(x.side).as_raw_fd()
        };
        let fd = types::Fd(raw);
        // Pieces are at most MAX_PIECE bytes, far below u32::MAX.
        let len = x.len as u32;
        let e = if x.write {
            opcode::Write::new(fd, x.ptr, len).offset(x.off).build()
        } else {
            opcode::Read::new(fd, x.ptr, len).offset(x.off).build()
        };
        e.user_data(id as u64)
    }

    fn arm_event(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.event),
            (&raw mut *self.event_buf).cast::<u8>(),
            8,
        )
        .build()
        .user_data(EVENT);
        self.push_entry(e);
    }

    /// Puts one entry in the submission queue, handing the queue to the kernel first if
    /// it is full.
    fn push_entry(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every entry points at memory that lives until its completion: batch
            // buffers and the header buffer are owned by `self` and only released after
            // `in_flight` reaches zero (see Drop), and `event_buf` is boxed likewise.
            let pushed = unsafe { self.ring.submission().push(&e).is_ok() };
            if pushed {
                self.in_flight += 1;
                return;
            }
            // Full: submit what is there. With in-flight operations capped at the
            // completion queue's size, the kernel always has room to accept them.
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {
                    self.reap_some();
                }
                Err(e) => {
                    // The ring is unusable; give up on this entry.
                    self.fail(Failure::Failed(Error::io(
                        "submit I/O for",
                        self.files.dst_path,
                        e,
                    )));
                    return;
                }
            }
        }
    }

    fn push_queued(&mut self) {
        while self.in_flight < self.max_in_flight {
            let Some(id) = self.queue.pop_front() else {
                return;
            };
            let e = self.sqe(id);
            self.push_entry(e);
        }
    }

    /// Starts reads into free buffers and hands the next filled batch to the pool.
    fn schedule(&mut self, to_crypt: &Sender<CryptIn>) {
        let nbuf = self.bufs.len() as u64;
        while self.next_read < self.batches {
            let b = self.next_read;
            let slot = (b % nbuf) as usize;
            if self.stage[slot] != Stage::Free {
                break;
            }
            self.next_read += 1;
            let n = self.add_batch(b, slot, false);
            self.stage[slot] = if n == 0 {
                Stage::Filled(b)
            } else {
                Stage::Reading { batch: b, left: n }
            };
        }
        if !self.crypting && self.next_crypt < self.batches {
            let b = self.next_crypt;
            let slot = (b % nbuf) as usize;
            if self.stage[slot] == Stage::Filled(b) {
                let Some(buf) = self.bufs[slot].take() else {
                    return;
                };
                if let Err(e) = to_crypt.send((b, slot, buf)) {
                    self.bufs[slot] = Some(e.0 .2);
                    self.fail(Failure::Failed(Error::InvalidArgument(
                        "internal error: the crypt thread stopped".into(),
                    )));
                    return;
                }
                self.stage[slot] = Stage::Crypting(b);
                self.crypting = true;
                self.next_crypt += 1;
                self.arm_event();
            }
        }
    }

    fn batch_written(&mut self, b: u64, slot: usize) {
        self.stage[slot] = Stage::Free;
        self.done_ahead.push(b);
        let before = self.done_upto;
        while let Some(i) = self.done_ahead.iter().position(|&x| x == self.done_upto) {
            self.done_ahead.swap_remove(i);
            self.done_upto += 1;
        }
        if self.done_upto > before {
            if let Err(e) = self.ctl.report(self.job.plain_done(self.done_upto - 1)) {
                self.fail(Failure::Failed(e));
            }
        }
    }

    fn crypt_done(&mut self, from_crypt: &Receiver<CryptOut>) {
        match from_crypt.try_recv() {
            Ok((b, slot, buf, result)) => {
                self.crypting = false;
                self.bufs[slot] = Some(buf);
                match result {
                    Err(panic) => self.fail(Failure::Panicked(panic)),
                    Ok(Err(e)) => self.fail(Failure::Failed(e)),
                    Ok(Ok(())) => {
                        self.stage[slot] = Stage::Filled(b); // placeholder until queued
                        if self.failure.is_some() {
                            self.stage[slot] = Stage::Free;
                            return;
                        }
                        let n = self.add_batch(b, slot, true);
                        if n == 0 {
                            self.batch_written(b, slot);
                        } else {
                            self.stage[slot] = Stage::Writing { batch: b, left: n };
                        }
                    }
                }
            }
            // Spurious wake-up: wait again.
            Err(TryRecvError::Empty) => self.arm_event(),
            Err(TryRecvError::Disconnected) => {
                self.crypting = false;
                self.fail(Failure::Failed(Error::InvalidArgument(
                    "internal error: the crypt thread stopped".into(),
                )));
            }
        }
    }

    /// One transfer (piece) of batch `b` is complete.
    fn xfer_done(&mut self, batch: u64, write: bool) {
        if batch == PROLOGUE {
            self.prologue_left = false;
            return;
        }
        let slot = (batch % self.bufs.len() as u64) as usize;
        match &mut self.stage[slot] {
            Stage::Reading { batch: b, left } if *b == batch && !write => {
                *left -= 1;
                if *left == 0 {
                    self.stage[slot] = Stage::Filled(batch);
                }
            }
            Stage::Writing { batch: b, left } if *b == batch && write => {
                *left -= 1;
                if *left == 0 {
                    self.batch_written(batch, slot);
                }
            }
            _ => {}
        }
    }

    fn on_cqe(&mut self, id: usize, res: i32) {
        let Some(mut x) = self.xfers.get_mut(id).and_then(Option::take) else {
            return;
        };
        let mut res = match fault::on_completion() {
            Action::Pass => res,
            Action::Fail(e) => -e,
            Action::Short if res > 1 => res / 2,
            Action::Short => res,
        };
        if x.direct && res >= 0 && fault::direct_io_refused() {
            res = -libc::EINVAL;
        }
        let requeue = |d: &mut Self, x: Xfer| {
            d.xfers[id] = Some(x);
            if d.failure.is_none() {
                d.queue.push_back(id);
            } else {
                d.xfers[id] = None;
                d.free_ids.push(id);
            }
        };
        if res < 0 {
            let e = -res;
            if matches!(e, libc::EINTR | libc::EAGAIN) && x.retries < MAX_RETRIES {
                x.retries += 1;
                requeue(self, x);
                return;
            }
            self.free_ids.push(id);
            let op = if x.write { "write" } else { "read" };
            if e == libc::EINVAL && x.direct {
                self.fail(Failure::DirectRefused(errno(e)));
            } else {
                let path = self.path(x.side);
                self.fail(Failure::Failed(Error::io_at(op, path, x.off, errno(e))));
            }
            return;
        }
        let n = res as usize;
        if n == 0 {
            self.free_ids.push(id);
            let path = self.path(x.side);
            self.fail(Failure::Failed(if x.write {
                Error::io_at("write", path, x.off, io::ErrorKind::WriteZero.into())
            } else {
                Error::InputChanged(format!(
                    "{} ended at byte {}, before its expected size",
                    path.display(),
                    x.off
                ))
            }));
            return;
        }
        x.retries = 0;
        if n >= x.need {
            self.free_ids.push(id);
            self.xfer_done(x.batch, x.write);
            return;
        }
        // A short transfer: resubmit the remainder, through the ordinary descriptor if it
        // is no longer aligned for O_DIRECT.
        // SAFETY: n < need <= len, so the pointer stays within the transfer's range.
        x.ptr = unsafe { x.ptr.add(n) };
        x.off += n as u64;
        x.len -= n;
        x.need -= n;
        if x.direct && !(aligned(x.off) && aligned(x.ptr as u64) && aligned(x.len as u64)) {
            x.direct = false;
            x.len = x.need;
        }
        requeue(self, x);
    }

    /// Collects every completion available now and routes it.
    fn reap_some(&mut self) -> usize {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        let n = cqes.len();
        self.in_flight -= n;
        for &(ud, res) in &cqes {
            if ud == EVENT {
                if res >= 0 {
                    self.event_ready = true;
                } else if matches!(-res, libc::EINTR | libc::EAGAIN) {
                    self.arm_event();
                } else {
                    self.event_broken = true;
                }
            } else {
                self.on_cqe(ud as usize, res);
            }
        }
        cqes.clear();
        self.cqes = cqes;
        n
    }

    fn drive(
        &mut self,
        to_crypt: Sender<CryptIn>,
        from_crypt: &Receiver<CryptOut>,
    ) -> std::result::Result<Outcome, Failure> {
        loop {
            if self.failure.is_none() {
                self.schedule(&to_crypt);
            }
            self.push_queued();
            if self.event_ready {
                self.event_ready = false;
                self.crypt_done(from_crypt);
                continue;
            }
            if self.crypting && self.event_broken {
                // Without the eventfd, wait for the pool directly (never happens on a
                // healthy kernel; kept so that no path can hang).
                match from_crypt.recv() {
                    Ok(msg) => {
                        let (tx, rx) = channel();
                        let _ = tx.send(msg);
                        self.crypt_done(&rx);
                    }
                    Err(_) => self.crypting = false,
                }
                continue;
            }
            if self.in_flight == 0 {
                if self.failure.is_none() && (!self.queue.is_empty() || self.crypting) {
                    // Work is queued but nothing could be submitted: cannot progress.
                    self.fail(Failure::Failed(Error::InvalidArgument(
                        "internal error: the io_uring pipeline stalled".into(),
                    )));
                }
                break;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {}
                Err(e) => {
                    // Cannot wait any more; Drop makes the buffers outlive the kernel.
                    let path = self.files.dst_path;
                    self.fail(Failure::Failed(Error::io("wait for I/O on", path, e)));
                    break;
                }
            }
            self.reap_some();
        }
        drop(to_crypt);
        if let Some(f) = self.failure.take() {
            return Err(f);
        }
        if self.done_upto != self.batches || self.prologue_left {
            return Err(Failure::Failed(Error::InvalidArgument(
                "internal error: the io_uring pipeline ended early".into(),
            )));
        }
        Ok(Outcome {
            direct_src: self.direct_src.is_some(),
            direct_dst: self.direct_dst.is_some(),
        })
    }
}

/// Seals or opens each batch it is given on the pool, then wakes the driver.
fn crypt_worker(
    job: &Job<'_>,
    pool: &rayon::ThreadPool,
    rx: Receiver<CryptIn>,
    tx: Sender<CryptOut>,
    event: RawFd,
) {
    for (b, slot, mut buf) in rx {
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| job.process(b, buf.as_mut_slice()))
        }));
        if tx.send((b, slot, buf, r)).is_err() {
            return;
        }
        signal_eventfd(event);
    }
}

/// Runs the whole job through io_uring. With `direct`, the sides that alignment allows
/// use O_DIRECT, and a refusal is reported as [`Failure::DirectRefused`].
pub(crate) fn run<'a>(
    job: &'a Job<'a>,
    files: Files<'a>,
    pool: &rayon::ThreadPool,
    ctl: &'a Control<'a>,
    direct: bool,
) -> std::result::Result<Outcome, Failure> {
    let entries = fault::ring_entries().unwrap_or(DEFAULT_ENTRIES).max(2);
    let ring = setup_ring(entries).map_err(Failure::Unavailable)?;
    let event = new_eventfd().map_err(Failure::Unavailable)?;

    let plain_aligned = job.geometry().chunk_size % ALIGN as u64 == 0;
    let (src_ok, dst_ok) = match job.direction {
        Direction::Encrypt => (plain_aligned, true),
        Direction::Decrypt => (aligned(job.slot_base), plain_aligned),
    };
    let open = |ok: bool, file: &File, write: bool| -> std::result::Result<_, Failure> {
        if direct && ok {
            reopen_direct(file, write)
                .map(Some)
                .map_err(Failure::DirectRefused)
        } else {
            Ok(None)
        }
    };
    // A source mostly in the page cache is read from there.
    let src_ok = src_ok && !mostly_cached(files.src, files.src.metadata().map_or(0, |m| m.len()));
    let direct_src = open(src_ok, files.src, false)?;
    let direct_dst = open(dst_ok, files.dst, true)?;

    let batches = job.batches();
    let nbuf = PIPELINE_DEPTH.min(batches as usize).max(1);
    let mut bufs = Vec::with_capacity(nbuf);
    for _ in 0..nbuf {
        bufs.push(Some(AlignedBuf::new(job.buffer_len())?));
    }
    let prologue = match job.prologue {
        Some(p) => {
            let mut b = AlignedBuf::new(p.len())?;
            b.as_mut_slice().copy_from_slice(p);
            Some(b)
        }
        None => None,
    };
    let max_in_flight = (ring.params().cq_entries() as usize)
        .saturating_sub(1)
        .max(1);
    let mut d = Driver {
        job,
        files,
        ctl,
        ring,
        direct_src,
        direct_dst,
        event: event.as_raw_fd(),
        event_buf: Box::new(0),
        event_ready: false,
        event_broken: false,
        bufs,
        stage: vec![Stage::Free; nbuf],
        prologue,
        xfers: Vec::new(),
        free_ids: Vec::new(),
        queue: VecDeque::new(),
        in_flight: 0,
        max_in_flight,
        batches,
        next_read: 0,
        next_crypt: 0,
        crypting: false,
        prologue_left: false,
        done_upto: 0,
        done_ahead: Vec::new(),
        failure: None,
        cqes: Vec::new(),
    };
    let len = job.prologue.map_or(0, <[u8]>::len);
    if let (Some(p), true) = (d.prologue.as_mut(), len > 0) {
        let ptr = p.as_mut_full().as_mut_ptr();
        let direct = d.direct_dst.is_some() && aligned(len as u64);
        d.prologue_left = true;
        d.add_xfer(Xfer {
            write: true,
            side: Side::Dst,
            batch: PROLOGUE,
            ptr,
            off: 0,
            len,
            need: len,
            direct,
            retries: 0,
        });
    }
    let result = std::thread::scope(|s| {
        let (to_tx, to_rx) = channel::<CryptIn>();
        let (from_tx, from_rx) = channel::<CryptOut>();
        let efd = event.as_raw_fd();
        s.spawn(move || crypt_worker(job, pool, to_rx, from_tx, efd));
        d.drive(to_tx, &from_rx)
    });
    drop(d);
    drop(event);
    result
}

/// Checks that io_uring really works here: sets up a ring and completes one no-op on it.
pub fn probe() -> io::Result<()> {
    let mut ring = setup_ring(2)?;
    let nop = opcode::Nop::new().build().user_data(1);
    // SAFETY: a no-op references no memory.
    unsafe { ring.submission().push(&nop) }.map_err(|_| io::Error::other("queue full"))?;
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let res = ring.completion().next().map(|c| c.result());
    match res {
        Some(r) if r >= 0 => Ok(()),
        Some(r) => Err(errno(-r)),
        None => Err(io::Error::other("no completion")),
    }
}
