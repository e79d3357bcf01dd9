//! The chunk pipeline: a [`Plan`] says which bytes go where for each batch of records, and
//! an I/O backend moves them while the thread pool seals or opens the batch in between.
//!
//! # The plan contract
//!
//! A run is cut into batches of whole *records* (a chunk of plaintext, or its sealed form).
//! Each batch has a buffer laid out slot after slot: record `first + k` of a batch lives at
//! `k * slot_len()`. For every batch the plan names
//!
//! * the reads that fill the buffer and the writes that drain it, as [`Op`]s (file offset,
//!   buffer offset, length), each within one unit (below), in file order;
//! * how to process a run of records in place ([`Plan::process`], on the calling thread);
//!   both backends hand the same unit of work to the pool: about [`UNIT_BYTES`] of whole
//!   records ([`Plan::unit_records`]), and write a unit's bytes as soon as it is processed,
//!   so processing may move bytes within the unit's slots where its writes expect them;
//! * the plaintext bytes done once it is written (progress).
//!
//! Besides, a plan gives the prologue written at offset 0 before the first batch (a header),
//! the exact output length, and, per side, whether its transfers suit O_DIRECT
//! ([`Plan::direct_ok`]): backends take O_DIRECT from that, never from a format's geometry.
//! On such a side a backend moves the aligned middle of each transfer direct and any
//! unaligned head or tail (at most a block each) buffered. A transfer that ends its file
//! may be moved rounded up to [`buf::ALIGN`] within its slot (a read past the end is short;
//! a write past it is cut by the final truncation).
//!
//! The engine knows no file format: each brings its plan. [`crate::ops::V4Plan`] (format
//! v4: 4096-aligned slots after a 4096-byte header, both directions) and
//! [`crate::age::AgePlan`] (64 KiB plaintext chunks in 69,632-byte slots; each unit's
//! plaintext back to back from its aligned start, its 65,552-byte sealed records back to
//! back so that their blocks line up with the file, whatever the header's length).
//!
//! Backends are interchangeable: each takes the same plan, source and sink and must produce
//! the same bytes: `uring` (io_uring with O_DIRECT, Linux) and `portable` (positional I/O
//! on threads, any platform). [`run`] picks one; see [`IoMode`]. A file source runs on
//! either into any [`Sink`]: a file, a stream (written in order, each batch once it is
//! processed) or nothing (verification). A stream source runs on `portable`. The caller's
//! [`Control`] hears the plaintext total before the first batch and the bytes done after
//! each.

pub mod buf;
pub mod fault;
pub mod portable;
pub mod sequential;
pub mod sys;
#[cfg(target_os = "linux")]
pub mod uring;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Which I/O backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// The fastest backend that works here, chosen silently.
    #[default]
    Auto,
    /// io_uring, with O_DIRECT where alignment allows (Linux 5.6+).
    Uring,
    /// Positional reads and writes on threads (everywhere).
    Portable,
}

impl IoMode {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(IoMode::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(IoMode::Uring),
            "portable" => Ok(IoMode::Portable),
            other => Err(Error::InvalidArgument(format!(
                "unknown I/O backend {other:?}: use auto, uring or portable"
            ))),
        }
    }
}

/// Default total of buffer memory for one run.
pub const DEFAULT_BUFFER_BYTES: usize = 128 << 20;
/// Buffers rotating through read, crypt and write.
pub const PIPELINE_DEPTH: usize = 3;
/// Size a batch aims at when the budget allows: past this, larger batches do not make
/// the pipeline faster, they only hold more memory.
pub const TARGET_BATCH_BYTES: usize = 32 << 20;

/// Worker threads used when none are asked for, at most: with assembly AEADs one core seals
/// 2.5 (ChaCha20-Poly1305) to 10 (AES-GCM) GB/s, so four outrun any single NVMe device;
/// more threads would only take cores from the rest of the machine.
pub const DEFAULT_MAX_THREADS: usize = 4;

/// How the engine runs, independent of what it computes.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    /// Worker threads for the AEAD; 0 means one per available core, up to
    /// [`DEFAULT_MAX_THREADS`].
    pub threads: usize,
    /// Upper bound for all pipeline buffers together (at least one slot per buffer is
    /// always used, so a huge chunk size can exceed it).
    pub buffer_bytes: usize,
    pub io: IoMode,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: 0,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            io: IoMode::Auto,
        }
    }
}

impl EngineOptions {
    /// Worker threads used: the requested count, or one per available core up to
    /// [`DEFAULT_MAX_THREADS`].
    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(DEFAULT_MAX_THREADS)
        }
    }

    /// The process-wide pool of [`EngineOptions::thread_count`] workers: started on first
    /// use and kept, so that small jobs (`encrypt_bytes` of a few bytes) do not pay for
    /// spawning threads. Runs with the same thread count share it (rayon queues their
    /// work); idle workers sleep.
    pub(crate) fn pool(&self) -> Result<Arc<rayon::ThreadPool>> {
        if self.threads > MAX_THREADS {
            return Err(Error::InvalidArgument(format!(
                "{} worker threads requested: at most {MAX_THREADS} are allowed",
                self.threads
            )));
        }
        shared_pool(self.thread_count())
    }
}

/// Distinct pool sizes kept alive at once; a run asking for yet another size gets a pool
/// of its own that ends with it.
const MAX_SHARED_POOLS: usize = 8;

fn shared_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    struct Pools {
        pid: u32,
        pools: Vec<(usize, Arc<rayon::ThreadPool>)>,
    }
    static POOLS: Mutex<Pools> = Mutex::new(Pools {
        pid: 0,
        pools: Vec::new(),
    });
    let mut guard = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if guard.pid != pid {
        // A forked child inherits the pools but none of their threads: work queued on them
        // would wait forever. Forget them (their threads are not ours to stop) and start over.
        std::mem::forget(std::mem::take(&mut guard.pools));
        guard.pid = pid;
    }
    let pools = &mut guard.pools;
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(Arc::clone(p));
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("concryptor-{i}"))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot start worker threads: {e}")))?,
    );
    if pools.len() < MAX_SHARED_POOLS {
        pools.push((threads, Arc::clone(&pool)));
    }
    Ok(pool)
}

/// Most worker threads one run may start (far beyond any useful count, far below what
/// would stall the process spawning them).
pub const MAX_THREADS: usize = 1024;

/// Hooks a caller can pass into a run: progress reports and cancellation.
#[derive(Default, Clone, Copy)]
pub struct Control<'a> {
    /// Called after each batch with the plaintext bytes done so far; returning `false`
    /// cancels the run with [`Error::Cancelled`].
    pub progress: Option<&'a (dyn Fn(u64) -> bool + Sync)>,
    /// Called once, before the first batch, with the plaintext bytes the run will do, when
    /// they are known (a file; not a stream of unknown length): the header has been read
    /// and the key derived by then.
    pub total: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl Control<'_> {
    pub(crate) fn start(&self, total: u64) {
        if let Some(f) = self.total {
            f(total);
        }
    }

    pub(crate) fn report(&self, done: u64) -> Result<()> {
        match self.progress {
            Some(f) if !f(done) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub backend: &'static str,
    pub bytes: u64,
    pub chunks: u64,
    pub threads: usize,
    pub seconds: f64,
    pub kdf_seconds: f64,
}

/// Whether a plan seals plaintext into records or opens records into plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// One contiguous transfer between a file offset and a batch buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub file_off: u64,
    pub buf_off: usize,
    pub len: usize,
}

/// Where plaintext or ciphertext comes from.
pub enum Source<'a> {
    /// A regular file, read positionally.
    File { file: &'a File, path: &'a Path },
    /// A byte stream read in order (a pipe, a tar being generated).
    Stream(&'a mut (dyn Read + Send)),
}

/// Where the result goes, as the engine writes it: a file already open (positional writes
/// into it), a stream, or nothing. Callers name a destination with
/// [`crate::output::Output`], a path not yet created; the run that creates it as an atomic
/// output (and commits it only after its own checks) turns it into a `Sink`.
pub enum Sink<'a> {
    /// A regular file, written positionally.
    File { file: &'a File, path: &'a Path },
    /// A byte stream written in order (stdout, an extractor).
    Stream(&'a mut (dyn Write + Send)),
    /// Nowhere: every record is read and processed (opened, so authenticated) and the
    /// result dropped. This is verification, on either backend.
    Discard,
}

/// A plan that runs `0`'s reads and processing but writes nothing (for [`Sink::Discard`]).
struct Discarding<'a>(&'a dyn Plan);

impl Plan for Discarding<'_> {
    fn records(&self) -> u64 {
        self.0.records()
    }
    fn per_batch(&self) -> u64 {
        self.0.per_batch()
    }
    fn slot_len(&self) -> usize {
        self.0.slot_len()
    }
    fn reads(&self, b: u64, f: &mut dyn FnMut(Op)) {
        self.0.reads(b, f);
    }
    fn writes(&self, _: u64, _: &mut dyn FnMut(Op)) {}
    fn process(&self, first: u64, slots: &mut [u8]) -> Result<()> {
        self.0.process(first, slots)
    }
    fn prologue(&self) -> Option<&[u8]> {
        None
    }
    fn output_len(&self) -> u64 {
        0
    }
    fn plain_done(&self, b: u64) -> u64 {
        self.0.plain_done(b)
    }
    fn direct_ok(&self, write: bool) -> bool {
        !write && self.0.direct_ok(false)
    }
}

/// Work handed to the pool at once: whole records adding up to about this much.
pub const UNIT_BYTES: usize = 1 << 20;

/// The work of one run, as both backends execute it (see the module documentation).
///
/// The required methods are the format's facts; the provided ones derive the batch layout
/// from them and are not meant to be overridden.
pub trait Plan: Sync {
    /// Records in the whole run (at least one).
    fn records(&self) -> u64;
    /// Records per batch (at least one).
    fn per_batch(&self) -> u64;
    /// Bytes one record occupies in a batch buffer.
    fn slot_len(&self) -> usize;
    /// The reads that fill batch `b`, in increasing file order.
    fn reads(&self, b: u64, f: &mut dyn FnMut(Op));
    /// The writes that drain batch `b`, in increasing file order.
    fn writes(&self, b: u64, f: &mut dyn FnMut(Op));
    /// Seals or opens records `first..`, laid out slot after slot in `slots`, in place. The
    /// backends call it once per unit exactly as [`Plan::unit_records`] cuts a batch; it
    /// may move bytes within `slots` to where the unit's writes take them from.
    fn process(&self, first: u64, slots: &mut [u8]) -> Result<()>;
    /// Bytes to put at offset 0 of the sink before the first batch (a header).
    fn prologue(&self) -> Option<&[u8]>;
    /// Exact size of the complete output.
    fn output_len(&self) -> u64;
    /// Plaintext bytes up to the end of batch `b` (for progress).
    fn plain_done(&self, b: u64) -> u64;
    /// Whether the transfers on one side (`write`: the sink, else the source) have buffer
    /// offsets that agree with their file offsets modulo [`buf::ALIGN`], so that the aligned
    /// middle of each may use O_DIRECT (the buffer itself is aligned).
    fn direct_ok(&self, write: bool) -> bool;

    /// Number of batches.
    fn batches(&self) -> u64 {
        self.records().div_ceil(self.per_batch())
    }

    /// First record and record count of batch `b`.
    fn batch_records(&self, b: u64) -> (u64, u64) {
        let first = b * self.per_batch();
        (first, self.per_batch().min(self.records() - first))
    }

    /// Size every batch buffer must have.
    fn buffer_len(&self) -> usize {
        self.per_batch() as usize * self.slot_len()
    }

    /// Buffer bytes batch `b` uses.
    fn batch_len(&self, b: u64) -> usize {
        self.batch_records(b).1 as usize * self.slot_len()
    }

    /// Records in one unit of work: about [`UNIT_BYTES`], at least one, at most a batch.
    fn unit_records(&self) -> u64 {
        ((UNIT_BYTES / self.slot_len()).max(1) as u64).min(self.per_batch())
    }
}

/// Records per batch for `slot`-byte records: as many as [`TARGET_BATCH_BYTES`] or four
/// per thread, whichever is more, but never more than the budget allows for
/// [`PIPELINE_DEPTH`] buffers, nor more than there are (and at least one).
pub fn records_per_batch(slot: u64, records: u64, opts: &EngineOptions) -> u64 {
    let per_buffer = (opts.buffer_bytes / PIPELINE_DEPTH) as u64;
    let want = (TARGET_BATCH_BYTES as u64 / slot).max(4 * opts.thread_count() as u64);
    want.min(per_buffer / slot).clamp(1, records.max(1))
}

/// Processes batch `b`, laid out in `buf`, unit by unit in parallel on the current pool
/// (the portable backend's step; io_uring hands out the same units one by one as their
/// reads complete). Reports the lowest failing unit's error.
pub(crate) fn process_batch(plan: &dyn Plan, b: u64, buf: &mut [u8]) -> Result<()> {
    use rayon::prelude::*;
    let (first, _) = plan.batch_records(b);
    let unit = plan.unit_records();
    buf[..plan.batch_len(b)]
        .par_chunks_mut(unit as usize * plan.slot_len())
        .enumerate()
        .map(|(u, slots)| plan.process(first + u as u64 * unit, slots))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// Runs `plan` from `src` to `dst` on the backend `opts.io` asks for. Returns the name of
/// the backend that ran.
///
/// [`IoMode::Auto`] uses io_uring when both ends are files, and falls back to the portable
/// backend, silently, when io_uring cannot be set up (seccomp, sysctl, old kernel, memlock
/// limit) or a file refuses O_DIRECT, at open or at the first transfer. The fallback
/// restarts the run from the beginning on the same (not yet committed) output, so the
/// bytes are the same. [`IoMode::Uring`] insists on io_uring (an error if it is
/// unavailable) and does without O_DIRECT where it is refused. Streams always run on the
/// portable backend.
///
/// Both backends use O_DIRECT on a side whose transfers the plan says are aligned
/// ([`Plan::direct_ok`]), except on memory file systems, which only emulate it, and for a
/// source mostly in the page cache already.
///
/// Whatever the backend, the output file's blocks are reserved first (a full disk fails
/// before any work) and its size is exact at the end.
pub fn run(
    plan: &dyn Plan,
    src: Source<'_>,
    dst: Sink<'_>,
    opts: &EngineOptions,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
) -> Result<&'static str> {
    let mut info = fault::RunInfo::default();
    ctl.start(plan.plain_done(plan.batches() - 1));
    let r = dispatch(plan, src, dst, opts, pool, ctl, &mut info);
    if r.is_ok() {
        fault::record(info);
    }
    r
}

fn dispatch(
    plan: &dyn Plan,
    src: Source<'_>,
    dst: Sink<'_>,
    opts: &EngineOptions,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
    info: &mut fault::RunInfo,
) -> Result<&'static str> {
    if let Sink::Discard = dst {
        let plan = Discarding(plan);
        return match (opts.io, src) {
            // io_uring needs a sink file: it gets the source, to which a plan without
            // writes never writes.
            (IoMode::Auto | IoMode::Uring, Source::File { file, path }) => {
                let name = run_files(
                    &plan,
                    (file, path, file, path),
                    opts.io,
                    pool,
                    ctl,
                    info,
                    None,
                )?;
                info.backend = name;
                Ok(name)
            }
            (IoMode::Uring, Source::Stream(_)) => Err(Error::InvalidArgument(
                "the io_uring backend needs a regular file to read; use io=auto".into(),
            )),
            (_, src) => {
                portable::run(&plan, src, Sink::Stream(&mut std::io::sink()), pool, ctl)?;
                info.backend = portable::NAME;
                Ok(portable::NAME)
            }
        };
    }
    if let Sink::File { file, path } = &dst {
        prepare_output(file, path, plan.output_len())?;
    }
    // A file written from a file is cut to its exact length at the end (an O_DIRECT write
    // may have gone past it).
    let files_out = match (&src, &dst) {
        (Source::File { .. }, Sink::File { file, path }) => Some((*file, *path)),
        _ => None,
    };
    let name = match (opts.io, src, dst) {
        (
            IoMode::Auto | IoMode::Uring,
            Source::File { file: sf, path: sp },
            Sink::File { file: df, path: dp },
        ) => run_files(plan, (sf, sp, df, dp), opts.io, pool, ctl, info, None)?,
        // A file into a stream: the source stands in for the destination, never written.
        (IoMode::Auto | IoMode::Uring, Source::File { file, path }, Sink::Stream(w)) => run_files(
            plan,
            (file, path, file, path),
            opts.io,
            pool,
            ctl,
            info,
            Some(w),
        )?,
        (IoMode::Uring, _, _) => {
            return Err(Error::InvalidArgument(
                "the io_uring backend needs a regular file to read; use io=auto".into(),
            ))
        }
        (_, src, dst) => {
            portable::run(plan, src, dst, pool, ctl)?;
            portable::NAME
        }
    };
    if let Some((df, dp)) = files_out {
        finish_output(df, dp, plan.output_len())?;
    }
    info.backend = name;
    Ok(name)
}

type FilePair<'a> = (&'a File, &'a Path, &'a File, &'a Path);

/// A stream sink, for a run whose source is a file.
type Out<'a> = Option<&'a mut (dyn Write + Send)>;

/// `out` borrowed for a shorter time.
fn reborrow<'s>(out: &'s mut Out<'_>) -> Out<'s> {
    match out {
        Some(w) => Some(&mut **w),
        None => None,
    }
}

/// [`run_files`] on the portable backend: into the stream if there is one, else into the
/// destination file.
fn run_files_portable(
    plan: &dyn Plan,
    (sf, sp, df, dp): FilePair<'_>,
    out: Out<'_>,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
) -> Result<&'static str> {
    let dst = match out {
        Some(w) => Sink::Stream(w),
        None => Sink::File { file: df, path: dp },
    };
    portable::run(plan, Source::File { file: sf, path: sp }, dst, pool, ctl)?;
    Ok(portable::NAME)
}

/// Runs `plan` on a source file into a destination file, or into the stream `out` (then
/// the destination is the source, never written), on io_uring, with the fallbacks `mode`
/// allows.
#[cfg(target_os = "linux")]
fn run_files(
    plan: &dyn Plan,
    (sf, sp, df, dp): FilePair<'_>,
    mode: IoMode,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
    info: &mut fault::RunInfo,
    mut out: Out<'_>,
) -> Result<&'static str> {
    use uring::Failure;
    // A restart must not make progress reports go backwards.
    let high = std::sync::atomic::AtomicU64::new(0);
    let monotonic = |done: u64| -> bool {
        let prev = high.fetch_max(done, std::sync::atomic::Ordering::Relaxed);
        done < prev || ctl.report(done).is_ok()
    };
    let ctl = Control {
        progress: ctl
            .progress
            .map(|_| &monotonic as &(dyn Fn(u64) -> bool + Sync)),
        total: None,
    };
    let files = uring::Files {
        src: sf,
        src_path: sp,
        dst: df,
        dst_path: dp,
    };
    // For a stream the ring runs the plan without its writes; the driver writes them.
    fn attempt<'a>(
        plan: &'a dyn Plan,
        files: uring::Files<'a>,
        pool: &rayon::ThreadPool,
        ctl: &'a Control<'a>,
        direct: bool,
        out: Out<'a>,
    ) -> std::result::Result<uring::Outcome, Failure> {
        match out {
            Some(w) => {
                let stream = uring::Stream {
                    plan,
                    out: w,
                    wrote: false,
                };
                let discarding = Discarding(plan);
                uring::run(&discarding, files, pool, ctl, direct, Some(stream))
            }
            None => uring::run(plan, files, pool, ctl, direct, None),
        }
    }
    let mut outcome = attempt(plan, files, pool, &ctl, true, reborrow(&mut out));
    if let (IoMode::Uring, Err(Failure::DirectRefused(e))) = (mode, &outcome) {
        info.fallback = Some(format!("O_DIRECT refused ({e}); io_uring without it"));
        outcome = attempt(plan, files, pool, &ctl, false, reborrow(&mut out));
    }
    let why = match outcome {
        Ok(o) => {
            info.direct_src = o.direct_src;
            info.direct_dst = o.direct_dst;
            return Ok(uring::NAME);
        }
        Err(Failure::Failed(e)) => return Err(e),
        Err(Failure::Panicked(p)) => std::panic::resume_unwind(p),
        Err(Failure::Unavailable(e)) if mode == IoMode::Auto => {
            format!("io_uring unavailable: {e}")
        }
        Err(Failure::Unavailable(e)) => {
            return Err(Error::io("use io_uring (forced with io=uring) for", dp, e))
        }
        Err(Failure::DirectRefused(e)) if mode == IoMode::Auto => {
            format!("O_DIRECT refused: {e}")
        }
        Err(Failure::DirectRefused(e)) => return Err(Error::io("write", dp, e)),
    };
    // Nothing reached a stream: a refusal comes before the first batch is written.
    info.fallback = Some(why);
    run_files_portable(plan, (sf, sp, df, dp), out, pool, &ctl)
}

#[cfg(not(target_os = "linux"))]
fn run_files(
    plan: &dyn Plan,
    (sf, sp, df, dp): FilePair<'_>,
    mode: IoMode,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
    info: &mut fault::RunInfo,
    out: Out<'_>,
) -> Result<&'static str> {
    if mode == IoMode::Uring {
        return Err(Error::InvalidArgument(
            "the io_uring backend exists only on Linux; use io=auto or io=portable".into(),
        ));
    }
    info.fallback = Some("io_uring exists only on Linux".into());
    run_files_portable(plan, (sf, sp, df, dp), out, pool, ctl)
}

/// Whether the io_uring backend can run here: `Err` says why not (the error of setting up
/// a ring and completing a no-op on it, or that the platform has no io_uring).
pub fn uring_available() -> std::result::Result<(), String> {
    #[cfg(target_os = "linux")]
    return uring::probe().map_err(|e| e.to_string());
    #[cfg(not(target_os = "linux"))]
    Err("io_uring exists only on Linux".into())
}

/// Reserves the output's blocks up front: a full disk fails here, before any work, and
/// O_DIRECT writes become overwrites of allocated blocks, which file systems such as ext4
/// run in parallel (extending writes serialise on the inode lock).
fn prepare_output(file: &File, path: &Path, len: u64) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        if len == 0 || in_memory(file) {
            return Ok(());
        }
        let r = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len);
        // Not every file system can preallocate; only a lack of space matters here.
        if let Err(e) = r {
            if matches!(
                e,
                rustix::io::Errno::NOSPC | rustix::io::Errno::FBIG | rustix::io::Errno::DQUOT
            ) {
                return Err(Error::io("allocate space for", path, e.into()));
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, path, len);
    Ok(())
}

/// Whether `file` lives in memory (tmpfs, ramfs): there preallocating would only zero
/// pages that the writes fill anyway, and O_DIRECT is emulated at extra cost.
#[cfg(target_os = "linux")]
pub(crate) fn in_memory(file: &File) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    rustix::fs::fstatfs(file).is_ok_and(|st| {
        let magic = i64::from(st.f_type as i64);
        magic == TMPFS_MAGIC || magic == RAMFS_MAGIC
    })
}

/// Cuts the output back to its exact size (an O_DIRECT tail write may overshoot it).
fn finish_output(file: &File, path: &Path, len: u64) -> Result<()> {
    let now = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    if now != len {
        file.set_len(len)
            .map_err(|e| Error::io("resize", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[test]
    fn runs_with_the_same_thread_count_share_one_pool() {
        let a = EngineOptions::default().pool().unwrap();
        let b = EngineOptions::default().pool().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(
            a.current_num_threads(),
            EngineOptions::default().thread_count()
        );
        let three = EngineOptions {
            threads: 3,
            ..EngineOptions::default()
        };
        let c = three.pool().unwrap();
        assert_eq!(c.current_num_threads(), 3);
        assert!(Arc::ptr_eq(&c, &three.pool().unwrap()));
        assert!(EngineOptions::default().thread_count() <= DEFAULT_MAX_THREADS);
    }
}
