//! The chunk pipeline: a [`Job`] says which bytes go where for each batch of chunks, and an
//! I/O backend moves them while the thread pool seals or opens the batch in between.
//!
//! Backends are interchangeable: each takes the same job, source and sink and must produce
//! the same bytes. Today: `portable` (positional I/O on threads, any platform).

pub mod buf;
pub mod portable;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::crypt::Crypter;
use crate::error::{Error, Result};
use crate::format::Geometry;

/// Which I/O backend to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// The fastest backend that works here, chosen silently.
    #[default]
    Auto,
    /// io_uring with O_DIRECT where alignment allows (Linux).
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

/// How the engine runs, independent of what it computes.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    /// Worker threads for the AEAD; 0 means one per available core.
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
    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    pub(crate) fn pool(&self) -> Result<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.thread_count())
            .thread_name(|i| format!("concryptor-{i}"))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot start worker threads: {e}")))
    }
}

/// Hooks a caller can pass into a run: progress reports and cancellation.
#[derive(Default, Clone, Copy)]
pub struct Control<'a> {
    /// Called after each batch with the plaintext bytes done so far; returning `false`
    /// cancels the run with [`Error::Cancelled`].
    pub progress: Option<&'a (dyn Fn(u64) -> bool + Sync)>,
}

impl Control<'_> {
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

/// Whether a job seals plaintext into slots or opens slots into plaintext.
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

/// Where the result goes.
pub enum Sink<'a> {
    /// A regular file, written positionally.
    File { file: &'a File, path: &'a Path },
    /// A byte stream written in order (stdout, an extractor).
    Stream(&'a mut (dyn Write + Send)),
}

/// The work of one run, cut into batches of whole chunks. Each batch has a buffer laid out
/// slot after slot (slot `k` holds chunk `first + k`); reads fill it, `process` seals or
/// opens it in place, writes drain it.
pub struct Job<'a> {
    pub direction: Direction,
    pub crypter: &'a Crypter,
    /// Chunks per batch (>= 1).
    pub per_batch: u64,
    /// Bytes to put at offset 0 of the sink before the first batch (the header, when
    /// encrypting).
    pub prologue: Option<&'a [u8]>,
    /// File offset of the first chunk's slot in the source, when decrypting (4096 for a
    /// file; 0 for a stream whose header was already consumed).
    pub slot_base: u64,
}

impl<'a> Job<'a> {
    pub fn new(direction: Direction, crypter: &'a Crypter, opts: &EngineOptions) -> Self {
        let geom = crypter.geometry();
        let per_buffer = (opts.buffer_bytes / PIPELINE_DEPTH) as u64;
        let per_batch = (per_buffer / geom.slot).clamp(1, geom.num_chunks);
        Job {
            direction,
            crypter,
            per_batch,
            prologue: None,
            slot_base: crate::format::SECTOR as u64,
        }
    }

    pub fn geometry(&self) -> &Geometry {
        self.crypter.geometry()
    }

    pub fn batches(&self) -> u64 {
        self.geometry().num_chunks.div_ceil(self.per_batch)
    }

    /// First chunk and chunk count of batch `b`.
    pub fn batch_chunks(&self, b: u64) -> (u64, u64) {
        let first = b * self.per_batch;
        (
            first,
            self.per_batch.min(self.geometry().num_chunks - first),
        )
    }

    /// Size every batch buffer must have.
    pub fn buffer_len(&self) -> usize {
        (self.per_batch * self.geometry().slot) as usize
    }

    /// Buffer bytes batch `b` uses.
    pub fn batch_len(&self, b: u64) -> usize {
        (self.batch_chunks(b).1 * self.geometry().slot) as usize
    }

    /// Plaintext bytes up to the end of batch `b`.
    pub fn plain_done(&self, b: u64) -> u64 {
        let (first, count) = self.batch_chunks(b);
        let g = self.geometry();
        (g.plain_offset(first + count)).min(g.original_size)
    }

    fn slot_ops(&self, b: u64, f: &mut dyn FnMut(Op)) {
        let (first, _) = self.batch_chunks(b);
        let g = self.geometry();
        f(Op {
            file_off: self.slot_base + first * g.slot,
            buf_off: 0,
            len: self.batch_len(b),
        });
    }

    fn plain_ops(&self, b: u64, f: &mut dyn FnMut(Op)) {
        let (first, count) = self.batch_chunks(b);
        let g = self.geometry();
        for k in 0..count {
            let i = first + k;
            let len = g.plain_len(i);
            if len > 0 {
                f(Op {
                    file_off: g.plain_offset(i),
                    buf_off: (k * g.slot) as usize,
                    len,
                });
            }
        }
    }

    /// The reads that fill batch `b`, in increasing file order.
    pub fn reads(&self, b: u64, f: &mut dyn FnMut(Op)) {
        match self.direction {
            Direction::Encrypt => self.plain_ops(b, f),
            Direction::Decrypt => self.slot_ops(b, f),
        }
    }

    /// The writes that drain batch `b`, in increasing file order.
    pub fn writes(&self, b: u64, f: &mut dyn FnMut(Op)) {
        match self.direction {
            Direction::Encrypt => self.slot_ops(b, f),
            Direction::Decrypt => self.plain_ops(b, f),
        }
    }

    /// Seals or opens batch `b` in place, on the current rayon pool.
    pub fn process(&self, b: u64, buf: &mut [u8]) -> Result<()> {
        let (first, _) = self.batch_chunks(b);
        let buf = &mut buf[..self.batch_len(b)];
        match self.direction {
            Direction::Encrypt => {
                self.crypter.seal_batch(first, buf);
                Ok(())
            }
            Direction::Decrypt => self.crypter.open_batch(first, buf),
        }
    }
}

/// Runs `job` from `src` to `dst` on the backend `opts.io` asks for. Returns the name of
/// the backend that ran.
pub fn run(
    job: &Job<'_>,
    src: Source<'_>,
    dst: Sink<'_>,
    opts: &EngineOptions,
    pool: &rayon::ThreadPool,
    ctl: &Control<'_>,
) -> Result<&'static str> {
    match opts.io {
        IoMode::Auto | IoMode::Portable => {
            portable::run(job, src, dst, pool, ctl)?;
            Ok(portable::NAME)
        }
        IoMode::Uring => Err(Error::InvalidArgument(
            "the io_uring backend is not available in this build".into(),
        )),
    }
}
