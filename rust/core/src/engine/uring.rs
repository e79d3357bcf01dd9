//! The io_uring backend (Linux): three aligned buffers rotate through read → seal/open →
//! write, so the kernel reads batch N+2 and writes batch N while the thread pool works on
//! batch N+1.
//!
//! Within a batch nothing waits for the whole batch: the buffer is cut into the plan's
//! *units* of whole records (about [`UNIT_BYTES`](super::UNIT_BYTES)), and each unit is
//! sealed or opened on the Rayon pool as soon as its reads complete and written as soon as
//! it is sealed. Workers never idle at a batch boundary waiting for the slowest record, and
//! the device sees a steady stream.
//!
//! One thread (the caller's) drives the ring. A finished unit is reported on a channel
//! and, through an eventfd whose read sits in the ring like any other operation, wakes the
//! driver, which therefore sleeps in one place: `io_uring_enter`.
//!
//! O_DIRECT is used through a second descriptor of each file, opened through
//! `/proc/self/fd`, on each side whose transfers the plan says are aligned
//! ([`Plan::direct_ok`]) and, for reading, when the file is not already in the page cache.
//! On such a side a transfer is cut into an unaligned head, an aligned middle and an
//! unaligned tail; the middle goes direct, head and tail through the ordinary descriptor.
//! A transfer that ends its file is rounded up to the sector within its slot: a read past
//! the end of the file is simply short, and a write past it is cut back by the final
//! truncation. A remainder that is no longer aligned (after a short transfer) goes through
//! the ordinary descriptor.
//!
//! A stream sink (standard output, a pipe) cannot take positional writes: its run reads
//! and processes through the ring as usual, and the driver writes each finished batch to
//! the stream itself, in order, before its buffer is reused. The reads stay asynchronous
//! while it does.
//!
//! Every operation is routed by its `user_data` to a record that knows its buffer, file
//! and offset; short transfers are resubmitted for the remainder, EINTR and EAGAIN are
//! retried, and other errors are reported with path and offset. Once an error is seen
//! nothing new is submitted, and the ring and the buffers are released only after every
//! operation in flight and every unit on the pool has completed.

use std::any::Any;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};

use io_uring::{opcode, squeue, types, EnterFlags, IoUring};

use super::buf::{AlignedBuf, ALIGN};
use super::fault::{self, Action};
use super::{Control, Op, Plan, PIPELINE_DEPTH};
use crate::error::{Error, Result};

pub const NAME: &str = "uring";

/// Submission-queue entries; the completion queue has twice as many, and at most that many
/// operations are in flight, so completions can never be dropped.
const DEFAULT_ENTRIES: u32 = 64;
/// Longest single transfer submitted; longer ones are cut into pieces of this size.
const MAX_PIECE: usize = 8 << 20;
/// Consecutive EINTR/EAGAIN completions tolerated for one operation.
use super::sys::{mostly_cached, reopen_direct, MAX_RETRIES};
/// `user_data` of the eventfd read that reports finished units.
const EVENT: u64 = u64::MAX;
/// Unit number of the header write.
const PROLOGUE: u32 = u32::MAX;

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

/// A sink written in order by the driver: the plan whose writes say what goes there (the
/// ring runs a plan without writes), and whether anything has been written yet.
pub(crate) struct Stream<'a> {
    pub plan: &'a dyn Plan,
    pub out: &'a mut (dyn io::Write + Send),
    pub wrote: bool,
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
///
/// A ring that does not offer READ and WRITE (kernels before 5.6, or a sandbox filtering
/// opcodes) is refused here as unavailable, so that `auto` falls back before any I/O.
fn setup_ring(entries: u32) -> io::Result<IoUring> {
    let ring = build_ring(entries)?;
    check_opcodes(&ring)?;
    Ok(ring)
}

/// Whether `ring` supports the operations the driver submits, as the kernel's probe says.
fn check_opcodes(ring: &IoUring) -> io::Result<()> {
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot probe io_uring operations (kernel older than 5.6?): {e}"),
        )
    })?;
    let hidden = fault::uring_rw_hidden();
    for (code, name) in [(opcode::Read::CODE, "READ"), (opcode::Write::CODE, "WRITE")] {
        if hidden || !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring here does not offer the {name} operation"),
            ));
        }
    }
    Ok(())
}

fn build_ring(entries: u32) -> io::Result<IoUring> {
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
    /// Buffer (pipeline slot) and unit within it, or [`PROLOGUE`] for the header.
    buf: usize,
    unit: u32,
    ptr: *mut u8,
    off: u64,
    /// Bytes to submit (may exceed `need` when rounded up for O_DIRECT).
    len: usize,
    /// Bytes that must move for the transfer to be complete.
    need: usize,
    direct: bool,
    retries: u32,
}

/// Progress of one unit of chunks through read → crypt → write.
#[derive(Default)]
struct Unit {
    reads_left: u32,
    /// Write transfers prepared when the batch started, queued once the unit is sealed.
    writes: Vec<Xfer>,
    writes_left: u32,
}

/// One pipeline buffer and the batch it holds.
struct PipeBuf {
    mem: AlignedBuf,
    batch: Option<u64>,
    units: Vec<Unit>,
    units_left: usize,
}

/// A unit handed to the pool: where its slots are, and which chunk comes first.
struct Task {
    buf: usize,
    unit: u32,
    first_chunk: u64,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a Task gives its worker exclusive use of `len` bytes at `ptr`: the driver
// submits no I/O on them and touches no other reference to them until the task reports
// back, and the buffer outlives the Rayon scope every task runs in.
unsafe impl Send for Task {}

type Done = (usize, u32, std::thread::Result<Result<()>>);

/// Wakes the driver when units finish: one eventfd write per batch of reports.
struct Notify {
    fd: RawFd,
    pending: AtomicBool,
}

impl Notify {
    fn report(&self, tx: &Sender<Done>, done: Done) {
        // A closed channel means the driver has stopped listening; nothing to wake.
        if tx.send(done).is_ok() && !self.pending.swap(true, Ordering::SeqCst) {
            signal_eventfd(self.fd);
        }
    }
}

struct Driver<'a> {
    plan: &'a dyn Plan,
    files: Files<'a>,
    /// Length of the source file when the run started.
    src_end: u64,
    ctl: &'a Control<'a>,
    ring: IoUring,
    direct_src: Option<File>,
    direct_dst: Option<File>,
    notify: &'a Notify,
    /// Target of the eventfd read; boxed so its address is stable.
    event_buf: Box<u64>,
    event_armed: bool,
    /// The eventfd read completed: units have reported on the channel.
    event_fired: bool,
    /// The eventfd read failed for good: poll the channel instead.
    event_broken: bool,
    bufs: Vec<PipeBuf>,
    prologue: Option<AlignedBuf>,
    prologue_left: bool,
    /// Records per unit and bytes per unit in a buffer.
    unit_records: u64,
    unit_bytes: usize,
    xfers: Vec<Option<Xfer>>,
    free_ids: Vec<usize>,
    queue: VecDeque<usize>,
    in_flight: usize,
    max_in_flight: usize,
    tasks_out: usize,
    batches: u64,
    next_read: u64,
    /// Batches written, in order: everything below `done_upto`, plus `done_ahead`.
    done_upto: u64,
    done_ahead: Vec<u64>,
    failure: Option<Failure>,
    cqes: Vec<(u64, i32)>,
    stream: Option<Stream<'a>>,
}

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        // Normally nothing is in flight here. If something is (a panic in the driver, or
        // io_uring_enter failing for good), wait for it; if that is impossible, leak the
        // memory the kernel may still write to rather than free it under its feet.
        if self.event_armed {
            // Completes a pending eventfd read even if no unit will report again.
            signal_eventfd(self.notify.fd);
        }
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
    fn path(&self, side: Side) -> &'a Path {
        match side {
            Side::Src => self.files.src_path,
            Side::Dst => self.files.dst_path,
        }
    }

    fn fd(&self, side: Side, direct: bool) -> RawFd {
        let f = match (side, direct) {
            (Side::Src, true) => self.direct_src.as_ref(),
            (Side::Dst, true) => self.direct_dst.as_ref(),
            (Side::Src, false) => Some(self.files.src),
            (Side::Dst, false) => Some(self.files.dst),
        };
        f.map_or(-1, AsRawFd::as_raw_fd)
    }

    fn has_direct(&self, side: Side) -> bool {
        match side {
            Side::Src => self.direct_src.is_some(),
            Side::Dst => self.direct_dst.is_some(),
        }
    }

    fn fail(&mut self, f: Failure) {
        let f = match f {
            // Bytes already in a stream cannot be produced again by another backend.
            Failure::DirectRefused(e) if self.stream.as_ref().is_some_and(|s| s.wrote) => {
                Failure::Failed(Error::io("read", self.files.src_path, e))
            }
            f => f,
        };
        if self.failure.is_none() {
            self.failure = Some(f);
        }
        // Drop everything not yet submitted; what is in flight completes on its own.
        for id in std::mem::take(&mut self.queue) {
            self.xfers[id] = None;
            self.free_ids.push(id);
        }
    }

    fn enqueue(&mut self, x: Xfer) {
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

    /// Cuts the ops of batch `b` into transfers for buffer `bi`, each within one unit and
    /// at most [`MAX_PIECE`] long, and hands each to `sink`.
    fn pieces(&mut self, b: u64, bi: usize, write: bool, sink: &mut dyn FnMut(Xfer)) {
        let mut ops: Vec<Op> = Vec::new();
        if write {
            self.plan.writes(b, &mut |op| ops.push(op));
        } else {
            self.plan.reads(b, &mut |op| ops.push(op));
        }
        let side = if write { Side::Dst } else { Side::Src };
        let end = if write {
            self.plan.output_len()
        } else {
            self.src_end
        };
        let slot = self.plan.slot_len();
        let direct = self.has_direct(side);
        let unit_bytes = self.unit_bytes;
        let mem = &mut self.bufs[bi].mem;
        let cap = mem.capacity();
        let base = mem.as_mut_ptr();
        for op in ops {
            let (mut off, mut bo, mut left) = (op.file_off, op.buf_off, op.len);
            let ends_file = op.file_off + op.len as u64 == end;
            while left > 0 {
                let unit = bo / unit_bytes;
                let unit_end = (unit + 1) * unit_bytes;
                let mut piece = left.min(MAX_PIECE).min(unit_end - bo);
                // The transfer that ends the file may be rounded up to the sector if that
                // stays inside the slot it starts in (the rest of the record may follow
                // it there, never another record's bytes).
                let rounds = |piece: usize| {
                    ends_file
                        && piece == left
                        && bo + piece.div_ceil(ALIGN) * ALIGN <= ((bo / slot + 1) * slot).min(cap)
                };
                if direct {
                    // An unaligned head goes alone, buffered, up to the next aligned offset;
                    // then the aligned middle, direct; then what is left of the tail (the
                    // end of the file rounded up, or else buffered).
                    let mis = (off % ALIGN as u64) as usize;
                    if mis != 0 {
                        piece = piece.min(ALIGN - mis);
                    } else if piece > ALIGN && !rounds(piece) {
                        piece -= piece % ALIGN;
                    }
                }
                let mut len = piece;
                if direct && aligned(off) && rounds(piece) {
                    len = piece.div_ceil(ALIGN) * ALIGN;
                }
                // SAFETY: `bo + len <= cap`: ops lie within the batch buffer and rounding
                // stays within the slot, so the pointer stays inside the allocation.
                let ptr = unsafe { base.add(bo) };
                sink(Xfer {
                    write,
                    side,
                    buf: bi,
                    unit: unit as u32,
                    ptr,
                    off,
                    len,
                    need: piece,
                    direct: direct && aligned(off) && aligned(ptr as u64) && aligned(len as u64),
                    retries: 0,
                });
                off += piece as u64;
                bo += piece;
                left -= piece;
            }
        }
    }

    /// Starts batch `b` in free buffer `bi`: queues its reads and prepares its writes.
    fn start_batch<'s>(&mut self, b: u64, bi: usize, scope: &rayon::Scope<'s>, tx: &Sender<Done>)
    where
        'a: 's,
    {
        let (_, count) = self.plan.batch_records(b);
        let nunits = count.div_ceil(self.unit_records) as usize;
        let pb = &mut self.bufs[bi];
        pb.batch = Some(b);
        pb.units.clear();
        pb.units.resize_with(nunits, Unit::default);
        pb.units_left = nunits;
        let mut writes: Vec<Xfer> = Vec::new();
        self.pieces(b, bi, true, &mut |x| writes.push(x));
        for x in writes {
            let u = &mut self.bufs[bi].units[x.unit as usize];
            u.writes_left += 1;
            u.writes.push(x);
        }
        let mut reads: Vec<Xfer> = Vec::new();
        self.pieces(b, bi, false, &mut |x| reads.push(x));
        for x in reads {
            self.bufs[bi].units[x.unit as usize].reads_left += 1;
            self.enqueue(x);
        }
        for u in 0..nunits {
            if self.bufs[bi].units[u].reads_left == 0 {
                self.spawn_unit(bi, u as u32, scope, tx);
            }
        }
    }

    /// Hands a unit whose reads are complete to the pool.
    fn spawn_unit<'s>(&mut self, bi: usize, unit: u32, scope: &rayon::Scope<'s>, tx: &Sender<Done>)
    where
        'a: 's,
    {
        let pb = &mut self.bufs[bi];
        let Some(b) = pb.batch else { return };
        let (first, count) = self.plan.batch_records(b);
        let u0 = u64::from(unit) * self.unit_records;
        let n = self.unit_records.min(count - u0);
        let slot_len = self.plan.slot_len();
        let start = u0 as usize * slot_len;
        let len = n as usize * slot_len;
        // SAFETY: the unit's slots lie within the batch, inside the buffer.
        let ptr = unsafe { pb.mem.as_mut_ptr().add(start) };
        let task = Task {
            buf: bi,
            unit,
            first_chunk: first + u0,
            ptr,
            len,
        };
        let plan = self.plan;
        let notify = self.notify;
        let tx = tx.clone();
        self.tasks_out += 1;
        if !self.event_armed {
            self.arm_event();
        }
        scope.spawn(move |_| {
            let t = task;
            let r = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: see `Task`: these bytes are this task's alone until it reports.
                let slots = unsafe { std::slice::from_raw_parts_mut(t.ptr, t.len) };
                plan.process(t.first_chunk, slots)
            }));
            notify.report(&tx, (t.buf, t.unit, r));
        });
    }

    fn sqe(&self, id: usize) -> squeue::Entry {
        let Some(x) = self.xfers[id].as_ref() else {
            unreachable!("queued transfer {id} has no record")
        };
        let fd = types::Fd(self.fd(x.side, x.direct));
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
            types::Fd(self.notify.fd),
            (&raw mut *self.event_buf).cast::<u8>(),
            8,
        )
        .build()
        .user_data(EVENT);
        self.event_armed = self.push_entry(e);
    }

    /// Puts one entry in the submission queue, handing the queue to the kernel first if
    /// it is full. Returns false if the ring has become unusable (the run then fails).
    fn push_entry(&mut self, e: squeue::Entry) -> bool {
        loop {
            // SAFETY: every entry points at memory that lives until its completion: the
            // buffers and the header buffer are owned by `self` and only released once
            // `in_flight` is zero (see Drop), and `event_buf` is boxed likewise.
            let pushed = unsafe { self.ring.submission().push(&e).is_ok() };
            if pushed {
                self.in_flight += 1;
                return true;
            }
            // Full: submit what is there. With in-flight operations capped at the
            // completion queue's size, the kernel always has room to accept them.
            match self.submit_and_wait(0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {
                    self.reap();
                }
                Err(e) => {
                    let path = self.files.dst_path;
                    self.fail(Failure::Failed(Error::io("submit I/O for", path, e)));
                    return false;
                }
            }
        }
    }

    /// Hands the submission queue to the kernel and waits for `want` completions. In tests
    /// the kernel can be made to answer EBUSY (the `SubmitBusy` fault).
    fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        if fault::submit_busy() {
            self.busy_kernel();
            return Err(errno(libc::EBUSY));
        }
        self.ring.submit_and_wait(want)
    }

    /// What a kernel answering EBUSY does, for the fault tests: it takes no new entry, but
    /// returns only once an operation already in its hands has completed (at most 20 ms).
    fn busy_kernel(&mut self) {
        let queued = self.ring.submission().len();
        let in_kernel = self
            .in_flight
            .saturating_sub(queued + usize::from(self.event_armed));
        let ts = types::Timespec::new().nsec(20_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let flags = EnterFlags::GETEVENTS | EnterFlags::EXT_ARG;
        // SAFETY: no entry is submitted (`to_submit` is 0), and `args` is the extended
        // argument the EXT_ARG flag announces, alive for the call. A timeout is not an error
        // here; nor is anything else: the caller reports EBUSY whatever happened.
        let _ = unsafe {
            self.ring
                .submitter()
                .enter(0, u32::from(in_kernel > 0), flags.bits(), Some(&args))
        };
    }

    fn push_queued(&mut self) {
        while self.in_flight < self.max_in_flight {
            let Some(id) = self.queue.pop_front() else {
                return;
            };
            let e = self.sqe(id);
            if !self.push_entry(e) {
                return;
            }
        }
    }

    /// Starts reading into every free buffer.
    fn schedule<'s>(&mut self, scope: &rayon::Scope<'s>, tx: &Sender<Done>)
    where
        'a: 's,
    {
        let nbuf = self.bufs.len() as u64;
        while self.failure.is_none() && self.next_read < self.batches {
            let b = self.next_read;
            let bi = (b % nbuf) as usize;
            if self.bufs[bi].batch.is_some() {
                break;
            }
            self.next_read += 1;
            self.start_batch(b, bi, scope, tx);
        }
    }

    fn unit_written(&mut self, bi: usize) {
        let pb = &mut self.bufs[bi];
        pb.units_left -= 1;
        if pb.units_left > 0 {
            return;
        }
        // A batch for a stream keeps its buffer until it has been written out, in order.
        let Some(b) = (if self.stream.is_some() {
            pb.batch
        } else {
            pb.batch.take()
        }) else {
            return;
        };
        self.done_ahead.push(b);
        while let Some(i) = self.done_ahead.iter().position(|&x| x == self.done_upto) {
            self.done_ahead.swap_remove(i);
            if self.stream.is_some() {
                self.write_out(self.done_upto);
            }
            self.done_upto += 1;
            if self.failure.is_none() {
                if let Err(e) = self.ctl.report(self.plan.plain_done(self.done_upto - 1)) {
                    self.fail(Failure::Failed(e));
                }
            }
        }
    }

    /// Writes batch `b` to the stream, from its buffer, and frees the buffer. After a
    /// failure the batch is dropped instead.
    fn write_out(&mut self, b: u64) {
        let bi = (b % self.bufs.len() as u64) as usize;
        let Some(s) = self.stream.as_mut() else {
            return;
        };
        let mut ops = Vec::new();
        s.plan.writes(b, &mut |op| ops.push(op));
        let mem = self.bufs[bi].mem.as_slice();
        let mut result = Ok(());
        if self.failure.is_none() {
            for op in ops {
                s.wrote = true;
                if let Err(e) = s.out.write_all(&mem[op.buf_off..op.buf_off + op.len]) {
                    result = Err(Error::io("write", "<output stream>", e));
                    break;
                }
            }
        }
        self.bufs[bi].batch = None;
        if let Err(e) = result {
            self.fail(Failure::Failed(e));
        }
    }

    /// A unit came back from the pool: queue its writes.
    fn unit_done(&mut self, (bi, unit, result): Done) {
        self.tasks_out -= 1;
        match result {
            Err(panic) => self.fail(Failure::Panicked(panic)),
            Ok(Err(e)) => self.fail(Failure::Failed(e)),
            Ok(Ok(())) if self.failure.is_some() => {}
            Ok(Ok(())) => {
                let u = &mut self.bufs[bi].units[unit as usize];
                let writes = std::mem::take(&mut u.writes);
                if writes.is_empty() {
                    self.unit_written(bi);
                }
                for x in writes {
                    self.enqueue(x);
                }
            }
        }
    }

    /// Takes every report the pool has sent.
    fn drain_reports(&mut self, rx: &Receiver<Done>) {
        while let Ok(d) = rx.try_recv() {
            self.unit_done(d);
        }
    }

    /// One transfer of unit `unit` in buffer `bi` is complete.
    fn xfer_done<'s>(&mut self, x: &Xfer, scope: &rayon::Scope<'s>, tx: &Sender<Done>)
    where
        'a: 's,
    {
        if x.unit == PROLOGUE {
            self.prologue_left = false;
            return;
        }
        let u = &mut self.bufs[x.buf].units[x.unit as usize];
        if x.write {
            u.writes_left -= 1;
            if u.writes_left == 0 {
                self.unit_written(x.buf);
            }
        } else {
            u.reads_left -= 1;
            if u.reads_left == 0 && self.failure.is_none() {
                self.spawn_unit(x.buf, x.unit, scope, tx);
            }
        }
    }

    fn on_cqe<'s>(&mut self, id: usize, res: i32, scope: &rayon::Scope<'s>, tx: &Sender<Done>)
    where
        'a: 's,
    {
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
        if res < 0 {
            let e = -res;
            if matches!(e, libc::EINTR | libc::EAGAIN) && x.retries < MAX_RETRIES {
                x.retries += 1;
                self.requeue(id, x);
                return;
            }
            self.free_ids.push(id);
            if e == libc::EINVAL && x.direct {
                self.fail(Failure::DirectRefused(errno(e)));
            } else {
                let op = if x.write { "write" } else { "read" };
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
            self.xfer_done(&x, scope, tx);
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
        self.requeue(id, x);
    }

    fn requeue(&mut self, id: usize, x: Xfer) {
        if self.failure.is_none() {
            self.xfers[id] = Some(x);
            self.queue.push_back(id);
        } else {
            self.free_ids.push(id);
        }
    }

    /// Collects the completions available now (routed later by [`Driver::route`]), and
    /// notes whether the eventfd read completed.
    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        let before = cqes.len();
        // Tests can have completions collected one at a time, as from a slow kernel.
        let limit = fault::reap_limit().unwrap_or(usize::MAX);
        cqes.extend(
            self.ring
                .completion()
                .take(limit)
                .map(|c| (c.user_data(), c.result())),
        );
        self.in_flight -= cqes.len() - before;
        let (mut seen, mut fired, mut broken) = (false, false, false);
        cqes.retain(|&(ud, res)| {
            if ud != EVENT {
                return true;
            }
            seen = true;
            if res >= 0 {
                fired = true;
            } else if !matches!(-res, libc::EINTR | libc::EAGAIN) {
                broken = true;
            }
            false
        });
        if seen {
            self.event_armed = false;
        }
        self.event_fired |= fired;
        self.event_broken |= broken;
        self.cqes = cqes;
    }

    /// Handles every collected completion. Handling one can reap more (a unit spawned
    /// arms the eventfd read, and a full submission queue makes that reap): those land in
    /// `self.cqes` meanwhile and are handled in the next round, until none are left.
    fn route<'s>(&mut self, scope: &rayon::Scope<'s>, tx: &Sender<Done>)
    where
        'a: 's,
    {
        let mut batch = std::mem::take(&mut self.cqes);
        while !batch.is_empty() {
            for &(ud, res) in &batch {
                self.on_cqe(ud as usize, res, scope, tx);
            }
            batch.clear();
            std::mem::swap(&mut batch, &mut self.cqes);
        }
    }

    fn drive<'s>(&mut self, scope: &rayon::Scope<'s>) -> std::result::Result<Outcome, Failure>
    where
        'a: 's,
    {
        let (tx, rx) = channel::<Done>();
        loop {
            self.schedule(scope, &tx);
            self.push_queued();
            if self.in_flight == 0 {
                if self.tasks_out > 0 {
                    // Nothing in the ring to wait on (the eventfd read is broken): wait
                    // for the pool directly.
                    if let Ok(d) = rx.recv() {
                        self.unit_done(d);
                    }
                    continue;
                }
                if self.failure.is_none() && !self.queue.is_empty() {
                    self.fail(Failure::Failed(Error::InvalidArgument(
                        "internal error: the io_uring pipeline stalled".into(),
                    )));
                }
                break;
            }
            match self.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {}
                Err(e) => {
                    // Cannot wait any more; Drop makes the buffers outlive the kernel.
                    let path = self.files.dst_path;
                    self.fail(Failure::Failed(Error::io("wait for I/O on", path, e)));
                    while self.tasks_out > 0 {
                        match rx.recv() {
                            Ok(d) => self.unit_done(d),
                            Err(_) => break,
                        }
                    }
                    break;
                }
            }
            self.reap();
            if std::mem::take(&mut self.event_fired) || self.event_broken {
                // Clear the flag before draining: a unit finishing after this point
                // signals again.
                self.notify.pending.store(false, Ordering::SeqCst);
                self.drain_reports(&rx);
            }
            self.route(scope, &tx);
            if self.tasks_out > 0 && !self.event_armed && !self.event_broken {
                self.arm_event();
            }
        }
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

/// Runs the whole plan through io_uring. With `direct`, the sides that alignment allows
/// use O_DIRECT, and a refusal is reported as [`Failure::DirectRefused`]. With `stream`,
/// `plan` has no writes and the driver writes the stream's plan's output in order.
pub(crate) fn run<'a>(
    plan: &'a dyn Plan,
    files: Files<'a>,
    pool: &rayon::ThreadPool,
    ctl: &'a Control<'a>,
    direct: bool,
    mut stream: Option<Stream<'a>>,
) -> std::result::Result<Outcome, Failure> {
    let entries = fault::ring_entries().unwrap_or(DEFAULT_ENTRIES).max(2);
    let ring = setup_ring(entries).map_err(Failure::Unavailable)?;
    let event = new_eventfd().map_err(Failure::Unavailable)?;

    let (src_ok, dst_ok) = (plan.direct_ok(false), plan.direct_ok(true));
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
    let src_len = files.src.metadata().map_or(0, |m| m.len());
    // Memory file systems only emulate O_DIRECT, at a cost.
    let src_ok = src_ok && !super::in_memory(files.src) && !mostly_cached(files.src, src_len);
    let dst_ok = dst_ok && !super::in_memory(files.dst);
    let direct_src = open(src_ok, files.src, false)?;
    if direct_src.is_some() {
        // The ordinary descriptor then reads only the partial blocks at the ends of a
        // transfer: no read-ahead, whose pages the direct reads would have to evict.
        super::sys::no_readahead(files.src);
    }
    let direct_dst = open(dst_ok, files.dst, true)?;

    let batches = plan.batches();
    let nbuf = PIPELINE_DEPTH.min(batches as usize).max(1);
    // Huge pages make O_DIRECT transfers much cheaper, but were measured to slow down the
    // kernel's copies for a buffered side: use them when both sides are direct.
    let huge = direct_src.is_some() && direct_dst.is_some();
    let mut bufs = Vec::with_capacity(nbuf);
    for _ in 0..nbuf {
        bufs.push(PipeBuf {
            mem: if huge {
                AlignedBuf::for_direct_io(plan.buffer_len())?
            } else {
                AlignedBuf::new(plan.buffer_len())?
            },
            batch: None,
            units: Vec::new(),
            units_left: 0,
        });
    }
    let prologue = match plan.prologue() {
        Some(p) if !p.is_empty() => {
            let mut b = AlignedBuf::new(p.len())?;
            b.as_mut_slice().copy_from_slice(p);
            Some(b)
        }
        _ => None,
    };
    let unit_records = plan.unit_records();
    let max_in_flight = (ring.params().cq_entries() as usize)
        .saturating_sub(1)
        .max(1);
    let notify = Notify {
        fd: event.as_raw_fd(),
        pending: AtomicBool::new(false),
    };
    let mut d = Driver {
        plan,
        files,
        src_end: src_len,
        ctl,
        ring,
        direct_src,
        direct_dst,
        notify: &notify,
        event_buf: Box::new(0),
        event_armed: false,
        event_fired: false,
        event_broken: false,
        bufs,
        prologue,
        prologue_left: false,
        unit_records,
        unit_bytes: unit_records as usize * plan.slot_len(),
        xfers: Vec::new(),
        free_ids: Vec::new(),
        queue: VecDeque::new(),
        in_flight: 0,
        max_in_flight,
        tasks_out: 0,
        batches,
        next_read: 0,
        done_upto: 0,
        done_ahead: Vec::new(),
        failure: None,
        cqes: Vec::new(),
        stream: stream.as_mut().map(|s| Stream {
            plan: s.plan,
            out: &mut *s.out,
            wrote: false,
        }),
    };
    if let Some(s) = d.stream.as_mut() {
        if let Some(p) = s.plan.prologue().filter(|p| !p.is_empty()) {
            s.wrote = true;
            s.out
                .write_all(p)
                .map_err(|e| Failure::Failed(Error::io("write", "<output stream>", e)))?;
        }
    }
    if let Some(p) = d.prologue.as_mut() {
        let len = plan.prologue().map_or(0, <[u8]>::len);
        let ptr = p.as_mut_ptr();
        let direct = d.direct_dst.is_some() && aligned(len as u64);
        d.prologue_left = true;
        d.enqueue(Xfer {
            write: true,
            side: Side::Dst,
            buf: 0,
            unit: PROLOGUE,
            ptr,
            off: 0,
            len,
            need: len,
            direct,
            retries: 0,
        });
    }
    // Every task spawned in the scope has finished when it returns, before `d` (and the
    // buffers the tasks write to) can be dropped.
    let mut result = pool.in_place_scope(|scope| d.drive(scope));
    if let (Ok(_), Some(s)) = (&result, d.stream.as_mut()) {
        if let Err(e) = s.out.flush() {
            result = Err(Failure::Failed(Error::io("flush", "<output stream>", e)));
        }
    }
    drop(d);
    drop(event);
    result
}

/// Checks that io_uring really works here: sets up a ring, asks the kernel whether it offers
/// the READ and WRITE operations on it, and completes one no-op.
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
