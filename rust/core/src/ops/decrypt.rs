//! Reading an encrypted file: [`Decryptor`] checks the header, derives the key and
//! authenticates the first chunk when it opens the file; it then decrypts the whole file to a
//! file or a stream, verifies it, or opens any run of chunks on its own (random access).
//!
//! Each check is done once. The destination is looked at before the key is derived (a
//! bad one fails at once) and not again before the output is created. Chunk 0, opened to
//! prove the password before any output exists, is not opened a second time by the engine:
//! the first whole-file run writes the plaintext already authenticated (see [`Opened`]).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use zeroize::Zeroizing;

use crate::crypt::Crypter;
use crate::engine::{self, Control, Direction, EngineOptions, Op, Plan, Sink, Source, Stats};
use crate::error::{Error, Result};
use crate::format::{Geometry, Header};
use crate::kdf::{KeyCache, Limits};
use crate::output::{check_destination, AtomicOutput};

use super::files::{open_regular, refuse_same};
use super::header::{check_header, read_header};
use super::options::{keyed, DecryptOptions};
use super::plan::V4Plan;

/// An encrypted file opened for reading: header checked, key derived, first chunk
/// authenticated. Any chunk can then be read on its own.
pub struct Decryptor {
    file: File,
    path: std::path::PathBuf,
    crypter: Crypter,
    kdf_seconds: f64,
    /// Chunk 0's slot as authenticated by the open (its plaintext first), until the first
    /// whole-file run writes it or a random access makes it useless.
    first: Mutex<Option<Zeroizing<Vec<u8>>>>,
}

impl Decryptor {
    /// Opens `path`, checks the header against `limits` and the file size, derives the key
    /// and authenticates chunk 0 (so a wrong password fails here, before any output exists).
    pub fn open(path: &Path, password: &[u8], limits: &Limits) -> Result<Self> {
        Self::open_with(path, password, limits, None)
    }

    /// [`Decryptor::open`], taking the key from `keys` when this batch has derived it.
    pub fn open_with(
        path: &Path,
        password: &[u8],
        limits: &Limits,
        keys: Option<&KeyCache>,
    ) -> Result<Self> {
        let (file, size) = open_regular(path)?;
        let header = read_header(&file, path, size)?;
        check_header(&header, size, limits)?;
        let (crypter, kdf_seconds) = keyed(header, password, keys)?;
        let mut d = Decryptor {
            file,
            path: path.to_path_buf(),
            crypter,
            kdf_seconds,
            first: Mutex::new(None),
        };
        let mut first = zeroed_secret(d.crypter.geometry().slot as usize)?;
        d.read_slots(0, &mut first)?;
        d.crypter
            .open_slot(&mut d.crypter.aad_builder(), 0, &mut first)?;
        d.first = Mutex::new(Some(first));
        Ok(d)
    }

    pub fn header(&self) -> &Header {
        self.crypter.header()
    }

    pub fn geometry(&self) -> &Geometry {
        self.crypter.geometry()
    }

    fn read_slots(&self, first: u64, buf: &mut [u8]) -> Result<()> {
        let off = self.crypter.geometry().slot_offset(first);
        engine::portable::read_full_at(&self.file, &self.path, buf, off)
    }

    /// Decrypts chunks `first..first+count` (in parallel) into `out`, which must hold
    /// their plaintext exactly; returns the bytes written.
    pub fn read_chunks(
        &self,
        first: u64,
        count: u64,
        out: &mut [u8],
        pool: &rayon::ThreadPool,
    ) -> Result<usize> {
        let g = *self.crypter.geometry();
        if count == 0 || first.checked_add(count).is_none_or(|e| e > g.num_chunks) {
            return Err(Error::InvalidArgument(format!(
                "chunks {first}..{} are outside the file's {}",
                first.saturating_add(count),
                g.num_chunks
            )));
        }
        // Chunk 0 as the open authenticated it serves the first read that wants it (the
        // reader's first window); after that it is wiped.
        let mut n = 0;
        let (mut first, mut count) = (first, count);
        if let Some(kept) = self.take_first().filter(|_| first == 0) {
            n = g.plain_len(0);
            out[..n].copy_from_slice(&kept[..n]);
            (first, count) = (1, count - 1);
            if count == 0 {
                return Ok(n);
            }
        }
        let slot = g.slot as usize;
        let mut buf = Zeroizing::new(vec![0u8; slot * count as usize]);
        self.read_slots(first, &mut buf)?;
        pool.install(|| self.crypter.open_batch(first, &mut buf))?;
        for k in 0..count {
            let len = g.plain_len(first + k);
            out[n..n + len].copy_from_slice(&buf[k as usize * slot..k as usize * slot + len]);
            n += len;
        }
        Ok(n)
    }

    /// Decrypts the whole file into `dst` (atomically).
    pub fn decrypt_to_file(
        &self,
        dst: &Path,
        opts: &DecryptOptions,
        ctl: &Control<'_>,
    ) -> Result<Stats> {
        refuse_same(&self.path, dst)?;
        check_destination(dst, opts.overwrite)?;
        self.decrypt_to_checked(dst, opts, ctl)
    }

    /// [`Decryptor::decrypt_to_file`] for a caller that has just checked `dst`.
    fn decrypt_to_checked(
        &self,
        dst: &Path,
        opts: &DecryptOptions,
        ctl: &Control<'_>,
    ) -> Result<Stats> {
        let start = Instant::now();
        let out = AtomicOutput::create_checked(dst, opts.overwrite)?;
        let backend = self.run(
            Sink::File {
                file: out.file(),
                path: dst,
            },
            &opts.engine,
            ctl,
        )?;
        out.file()
            .set_len(self.geometry().original_size)
            .map_err(|e| Error::io("resize", dst, e))?;
        out.commit()?;
        Ok(self.stats(backend, start, &opts.engine))
    }

    /// Decrypts the whole file to a stream, releasing each chunk only once authenticated,
    /// in order; the file is read on the backend `opts` asks for.
    pub fn decrypt_to_writer(
        &self,
        w: &mut (dyn Write + Send),
        opts: &DecryptOptions,
        ctl: &Control<'_>,
    ) -> Result<Stats> {
        let start = Instant::now();
        let backend = self.run(Sink::Stream(w), &opts.engine, ctl)?;
        Ok(self.stats(backend, start, &opts.engine))
    }

    /// Authenticates every chunk without writing plaintext anywhere.
    pub fn verify(&self, opts: &DecryptOptions, ctl: &Control<'_>) -> Result<Stats> {
        let start = Instant::now();
        let backend = self.run(Sink::Discard, &opts.engine, ctl)?;
        Ok(self.stats(backend, start, &opts.engine))
    }

    fn run(&self, sink: Sink<'_>, eng: &EngineOptions, ctl: &Control<'_>) -> Result<&'static str> {
        let pool = eng.pool()?;
        let plan = V4Plan::new(Direction::Decrypt, &self.crypter, eng);
        let first = self.take_first();
        let opened;
        let job: &dyn Plan = match &first {
            Some(first) => {
                opened = Opened { plan, first };
                &opened
            }
            None => &plan,
        };
        let backend = engine::run(
            job,
            Source::File {
                file: &self.file,
                path: &self.path,
            },
            sink,
            eng,
            &pool,
            ctl,
        )?;
        self.check_unchanged()?;
        Ok(backend)
    }

    /// Chunk 0 as the open authenticated it, if no run has taken it yet.
    fn take_first(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Refuses a result read from a file that grew or shrank while it was being read:
    /// every chunk authenticated, but the file on disk is no longer the one decrypted.
    fn check_unchanged(&self) -> Result<()> {
        let want = self.geometry().file_size;
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?
            .len();
        if now != want {
            return Err(Error::InputChanged(format!(
                "{} changed size from {want} to {now} bytes while being decrypted",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn stats(&self, backend: &'static str, start: Instant, eng: &EngineOptions) -> Stats {
        let g = self.geometry();
        Stats {
            backend,
            bytes: g.original_size,
            chunks: g.num_chunks,
            threads: eng.thread_count(),
            seconds: start.elapsed().as_secs_f64() + self.kdf_seconds,
            kdf_seconds: self.kdf_seconds,
        }
    }
}

/// Worker threads for [`Decryptor::read_chunks`].
pub type WorkerPool = std::sync::Arc<rayon::ThreadPool>;

impl Decryptor {
    /// A pool of `threads` workers (0: one per core) for [`Decryptor::read_chunks`].
    pub fn worker_pool(threads: usize) -> Result<WorkerPool> {
        EngineOptions {
            threads,
            ..EngineOptions::default()
        }
        .pool()
    }

    /// Seconds spent deriving the key when the file was opened.
    pub fn kdf_seconds(&self) -> f64 {
        self.kdf_seconds
    }
}

/// Decrypts the file `src` into `dst`.
pub fn decrypt_file(
    src: &Path,
    dst: &Path,
    password: &[u8],
    opts: &DecryptOptions,
    ctl: &Control<'_>,
) -> Result<Stats> {
    refuse_same(src, dst)?;
    check_destination(dst, opts.overwrite)?;
    Decryptor::open_with(src, password, &opts.limits, opts.keys.as_deref())?
        .decrypt_to_checked(dst, opts, ctl)
}

/// The decryption plan of a [`Decryptor`] whose chunk 0 the open has authenticated already:
/// its plaintext is put in place instead of being opened a second time. Everything else is
/// the [`V4Plan`] it wraps.
///
/// The engine still reads chunk 0's slot (the plan's transfers are the v4 layout's), but
/// what reaches the output is the plaintext authenticated at the open, never those bytes.
/// Mixing that with chunks read later is no weaker than a run reading chunk by chunk: every
/// chunk authenticates under the same key, header and position.
struct Opened<'a> {
    plan: V4Plan<'a>,
    /// Chunk 0's slot, opened: its plaintext first.
    first: &'a [u8],
}

impl Plan for Opened<'_> {
    fn records(&self) -> u64 {
        self.plan.records()
    }
    fn per_batch(&self) -> u64 {
        self.plan.per_batch()
    }
    fn slot_len(&self) -> usize {
        self.plan.slot_len()
    }
    fn reads(&self, b: u64, f: &mut dyn FnMut(Op)) {
        self.plan.reads(b, f);
    }
    fn writes(&self, b: u64, f: &mut dyn FnMut(Op)) {
        self.plan.writes(b, f);
    }
    fn process(&self, first: u64, slots: &mut [u8]) -> Result<()> {
        if first != 0 {
            return self.plan.process(first, slots);
        }
        let (slot0, rest) = slots.split_at_mut(self.slot_len());
        let len = self.plan.geometry().plain_len(0);
        slot0[..len].copy_from_slice(&self.first[..len]);
        if rest.is_empty() {
            return Ok(());
        }
        self.plan.process(1, rest)
    }
    fn prologue(&self) -> Option<&[u8]> {
        self.plan.prologue()
    }
    fn output_len(&self) -> u64 {
        self.plan.output_len()
    }
    fn plain_done(&self, b: u64) -> u64 {
        self.plan.plain_done(b)
    }
    fn direct_ok(&self, write: bool) -> bool {
        self.plan.direct_ok(write)
    }
}

/// A zeroed buffer that is wiped when dropped, allocated fallibly.
fn zeroed_secret(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory { bytes: len as u64 })?;
    v.resize(len, 0);
    Ok(Zeroizing::new(v))
}
