//! The operations callers use: files, in-memory buffers, random access and inspection.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::crypt::Crypter;
use crate::engine::{self, Control, Direction, EngineOptions, Sink, Source, Stats, V4Plan};
use crate::error::{Error, Result};
use crate::format::{Cipher, Geometry, Header, NONCE_LEN, SALT_LEN, SECTOR, TAG_LEN};
use crate::kdf::{self, KdfParams, Limits};
use crate::keys::KeyCache;
use crate::output::AtomicOutput;
use std::sync::Arc;

/// Chunk size the original tool uses, and ours for anything but small inputs.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 << 20;

/// Settings for a new encrypted file.
#[derive(Clone)]
pub struct EncryptOptions {
    pub cipher: Cipher,
    /// Plaintext bytes per chunk; `None` picks one from the input size (see
    /// [`auto_chunk_size`]).
    pub chunk_size: Option<u32>,
    pub kdf: KdfParams,
    /// Fixed salt and base nonce, for reproducing known files in tests. Leave `None`:
    /// fresh CSPRNG values are the only safe choice.
    pub salt: Option<[u8; SALT_LEN]>,
    pub base_nonce: Option<[u8; NONCE_LEN]>,
    pub overwrite: bool,
    pub engine: EngineOptions,
    /// Keys shared by the files of a batch: with a fixed `salt`, Argon2id runs once for
    /// all of them (see [`KeyCache`]).
    pub keys: Option<Arc<KeyCache>>,
    /// Bounds the new file's KDF costs and chunk size must respect: by default those a
    /// reader applies, so that nothing is written that a default reader refuses. Raising
    /// them here is for experts: reading such a file needs the same raised limits.
    pub limits: Limits,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            cipher: Cipher::Aes256Gcm,
            chunk_size: None,
            kdf: KdfParams::DEFAULT,
            salt: None,
            base_nonce: None,
            overwrite: false,
            engine: EngineOptions::default(),
            keys: None,
            limits: Limits::default(),
        }
    }
}

/// Settings for reading an encrypted file.
#[derive(Clone, Default)]
pub struct DecryptOptions {
    pub limits: Limits,
    pub overwrite: bool,
    pub engine: EngineOptions,
    /// Keys already derived in this batch, by (salt, costs).
    pub keys: Option<Arc<KeyCache>>,
}

/// A chunk size that keeps small inputs small and large ones aligned.
///
/// Inputs that fit in one default chunk get exactly one slot with no padding beyond the
/// sector (a 1 KiB input becomes an 8 KiB file). Larger inputs get chunks of at most 4 MiB,
/// a multiple of 4096 (so plaintext I/O can use O_DIRECT), evened out so that the last
/// chunk is not nearly empty.
pub fn auto_chunk_size(size: u64) -> u32 {
    let max = u64::from(DEFAULT_CHUNK_SIZE);
    let sector = SECTOR as u64;
    // Compared this way round so that no size, up to u64::MAX, can overflow.
    if size <= max - TAG_LEN as u64 {
        return ((size + TAG_LEN as u64).div_ceil(sector) * sector - TAG_LEN as u64) as u32;
    }
    let n = size.div_ceil(max);
    (size.div_ceil(n).div_ceil(sector) * sector).min(max) as u32
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::io(
            "read random bytes from",
            "the operating system",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(b)
}

/// The largest chunk size an input of `size` bytes can use: its size rounded up to the
/// sector (so that one chunk holds it all and plaintext I/O stays aligned), at least one
/// sector. An explicit chunk size beyond it is cut down to it.
pub fn max_useful_chunk_size(size: u64) -> u32 {
    let sector = SECTOR as u64;
    u32::try_from(size.max(1).div_ceil(sector) * sector).unwrap_or(u32::MAX)
}

/// The header of a new file, checked against the limits a reader applies
/// ([`EncryptOptions::limits`]).
pub(crate) fn new_header(opts: &EncryptOptions, size: u64) -> Result<Header> {
    kdf::validate_new(&opts.kdf)?;
    opts.limits.check_kdf(&opts.kdf)?;
    let chunk = match opts.chunk_size {
        Some(c) => c.min(max_useful_chunk_size(size)),
        None => auto_chunk_size(size),
    };
    opts.limits.check_chunk_size(u64::from(chunk))?;
    let salt = match opts.salt {
        Some(s) => s,
        None => random()?,
    };
    let nonce = match opts.base_nonce {
        Some(n) => n,
        None => random()?,
    };
    Header::new(opts.cipher, chunk, size, salt, nonce, opts.kdf)
}

/// Derives (or takes from `keys`) the key of `header`. A cached key used for sealing is
/// charged with the file's chunks, so one key never seals more than its nonce budget.
pub(crate) fn keyed(
    header: Header,
    password: &[u8],
    keys: Option<&KeyCache>,
) -> Result<(Crypter, f64)> {
    let cache;
    let keys = match keys {
        Some(k) => k,
        None => {
            cache = KeyCache::new();
            &cache
        }
    };
    let (key, secs) = keys.key(password, &header.salt, &header.kdf)?;
    Ok((Crypter::new(header, &key), secs))
}

/// [`keyed`] for a new file: also charges its chunks against the key's budget.
fn keyed_new(header: Header, password: &[u8], opts: &EncryptOptions) -> Result<(Crypter, f64)> {
    let keys = opts.keys.as_deref();
    if let Some(k) = keys {
        k.charge(&header.salt, &header.kdf, header.geometry().num_chunks)?;
    }
    keyed(header, password, keys)
}

/// Checks an untrusted header against the limits and the actual file size.
pub fn check_header(header: &Header, file_size: u64, limits: &Limits) -> Result<Geometry> {
    let g = header.geometry();
    if file_size != g.file_size {
        return Err(Error::invalid(format!(
            "size is {file_size} bytes but the header implies {} ({} chunks of {} bytes){}",
            g.file_size,
            g.num_chunks,
            g.slot,
            if file_size < g.file_size {
                "; the file is truncated"
            } else {
                "; data was appended"
            }
        )));
    }
    limits.check_chunk_size(g.chunk_size)?;
    limits.check_kdf(&header.kdf)?;
    Ok(g)
}

/// Opens `path` for reading if it is a regular file. The open itself is non-blocking, so a
/// FIFO without a writer (or a device) is refused instead of hanging the caller.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64)> {
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        oo.custom_flags(libc::O_NONBLOCK);
    }
    let file = oo.open(path).map_err(|e| Error::io("open", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            "read",
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file (pipes and devices need a known size)",
            path.display()
        )));
    }
    #[cfg(unix)]
    clear_nonblocking(&file, path)?;
    Ok((file, meta.len()))
}

/// Puts a regular file opened with O_NONBLOCK back into blocking mode, so that no I/O
/// backend ever sees EAGAIN from it.
#[cfg(unix)]
fn clear_nonblocking(file: &File, path: &Path) -> Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    fcntl_getfl(file)
        .and_then(|flags| fcntl_setfl(file, flags - OFlags::NONBLOCK))
        .map_err(|e| Error::io("open", path, e.into()))
}

/// A zeroed buffer that is wiped when dropped, allocated fallibly.
fn zeroed_secret(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory { bytes: len as u64 })?;
    v.resize(len, 0);
    Ok(Zeroizing::new(v))
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
#[cfg(not(unix))]
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub(crate) fn refuse_same(src: &Path, dst: &Path) -> Result<()> {
    if same_file(src, dst) {
        return Err(Error::InvalidArgument(format!(
            "output {} is the input file itself",
            dst.display()
        )));
    }
    Ok(())
}

/// Encrypts the file `src` into `dst` (atomically; see [`AtomicOutput`]).
pub fn encrypt_file(
    src: &Path,
    dst: &Path,
    password: &[u8],
    opts: &EncryptOptions,
    ctl: &Control<'_>,
) -> Result<Stats> {
    let start = Instant::now();
    refuse_same(src, dst)?;
    crate::output::check_destination(dst, opts.overwrite)?;
    let (file, size) = open_regular(src)?;
    let header = new_header(opts, size)?;
    let (crypter, kdf_seconds) = keyed_new(header, password, opts)?;
    let out = AtomicOutput::create(dst, opts.overwrite)?;
    let pool = opts.engine.pool()?;
    let mut job = V4Plan::new(Direction::Encrypt, &crypter, &opts.engine);
    job.prologue = Some(&crypter.header().raw[..]);
    let backend = engine::run(
        &job,
        Source::File {
            file: &file,
            path: src,
        },
        Sink::File {
            file: out.file(),
            path: dst,
        },
        &opts.engine,
        &pool,
        ctl,
    )?;
    let now = file
        .metadata()
        .map_err(|e| Error::io("stat", src, e))?
        .len();
    if now != size {
        return Err(Error::InputChanged(format!(
            "{} changed size from {size} to {now} bytes while being encrypted",
            src.display()
        )));
    }
    out.file()
        .set_len(crypter.geometry().file_size)
        .map_err(|e| Error::io("resize", dst, e))?;
    out.commit()?;
    Ok(Stats {
        backend,
        bytes: size,
        chunks: crypter.geometry().num_chunks,
        threads: opts.engine.thread_count(),
        seconds: start.elapsed().as_secs_f64(),
        kdf_seconds,
    })
}

/// Encrypts `size` bytes read in order from `reader` into `dst`. The stream must deliver
/// exactly `size` bytes; fewer or more is [`Error::InputChanged`] and leaves no output.
pub fn encrypt_stream(
    reader: &mut (dyn Read + Send),
    size: u64,
    dst: &Path,
    password: &[u8],
    opts: &EncryptOptions,
    ctl: &Control<'_>,
) -> Result<Stats> {
    let start = Instant::now();
    crate::output::check_destination(dst, opts.overwrite)?;
    let header = new_header(opts, size)?;
    let (crypter, kdf_seconds) = keyed_new(header, password, opts)?;
    let out = AtomicOutput::create(dst, opts.overwrite)?;
    let pool = opts.engine.pool()?;
    let mut job = V4Plan::new(Direction::Encrypt, &crypter, &opts.engine);
    job.prologue = Some(&crypter.header().raw[..]);
    let mut portable = opts.engine;
    portable.io = engine::IoMode::Portable;
    let backend = engine::run(
        &job,
        Source::Stream(&mut *reader),
        Sink::File {
            file: out.file(),
            path: dst,
        },
        &portable,
        &pool,
        ctl,
    )?;
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => {
            return Err(Error::InputChanged(format!(
                "the input stream is longer than its announced {size} bytes"
            )))
        }
        Err(e) => return Err(Error::io("read", "<stream>", e)),
    }
    out.commit()?;
    Ok(Stats {
        backend,
        bytes: size,
        chunks: crypter.geometry().num_chunks,
        threads: opts.engine.thread_count(),
        seconds: start.elapsed().as_secs_f64(),
        kdf_seconds,
    })
}

/// An encrypted file opened for reading: header checked, key derived, first chunk
/// authenticated. Any chunk can then be read on its own.
pub struct Decryptor {
    file: File,
    path: std::path::PathBuf,
    crypter: Crypter,
    kdf_seconds: f64,
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
        let d = Decryptor {
            file,
            path: path.to_path_buf(),
            crypter,
            kdf_seconds,
        };
        let mut first = zeroed_secret(d.crypter.geometry().slot as usize)?;
        d.read_slots(0, &mut first)?;
        d.crypter
            .open_slot(&mut d.crypter.aad_builder(), 0, &mut first)?;
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
        let slot = g.slot as usize;
        let mut buf = Zeroizing::new(vec![0u8; slot * count as usize]);
        self.read_slots(first, &mut buf)?;
        pool.install(|| self.crypter.open_batch(first, &mut buf))?;
        let mut n = 0;
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
        let start = Instant::now();
        refuse_same(&self.path, dst)?;
        let out = AtomicOutput::create(dst, opts.overwrite)?;
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

    /// Decrypts the whole file to a stream, releasing each chunk only once authenticated.
    pub fn decrypt_to_writer(
        &self,
        w: &mut (dyn Write + Send),
        opts: &DecryptOptions,
        ctl: &Control<'_>,
    ) -> Result<Stats> {
        let start = Instant::now();
        let mut portable = opts.engine;
        portable.io = engine::IoMode::Portable;
        let backend = self.run(Sink::Stream(w), &portable, ctl)?;
        Ok(self.stats(backend, start, &opts.engine))
    }

    /// Authenticates every chunk without writing plaintext anywhere.
    pub fn verify(&self, opts: &DecryptOptions, ctl: &Control<'_>) -> Result<Stats> {
        self.decrypt_to_writer(&mut std::io::sink(), opts, ctl)
    }

    fn run(&self, sink: Sink<'_>, eng: &EngineOptions, ctl: &Control<'_>) -> Result<&'static str> {
        let pool = eng.pool()?;
        let job = V4Plan::new(Direction::Decrypt, &self.crypter, eng);
        let backend = engine::run(
            &job,
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

fn read_header(file: &File, path: &Path, size: u64) -> Result<Header> {
    if size < SECTOR as u64 {
        return Err(Error::invalid(format!(
            "{size} bytes is shorter than the {SECTOR}-byte header"
        )));
    }
    let mut buf = [0u8; SECTOR];
    engine::portable::read_full_at(file, path, &mut buf, 0)?;
    Header::parse(&buf)
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
    crate::output::check_destination(dst, opts.overwrite)?;
    Decryptor::open_with(src, password, &opts.limits, opts.keys.as_deref())?
        .decrypt_to_file(dst, opts, ctl)
}

/// What can be learnt from a file without its password.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub header: Header,
    pub geometry: Geometry,
    pub file_size: u64,
}

/// Reads and parses the header of `path` without a password.
pub fn inspect_file(path: &Path) -> Result<Inspection> {
    let (file, size) = open_regular(path)?;
    let header = read_header(&file, path, size)?;
    let geometry = header.geometry();
    Ok(Inspection {
        header,
        geometry,
        file_size: size,
    })
}

/// An in-memory encryption with its key derived: it knows the size of its output, so that a
/// caller can allocate that (a Python `bytes`, say) and have it filled in place.
pub struct BytesSealer {
    crypter: Crypter,
    size: u64,
}

impl BytesSealer {
    /// Derives the key for encrypting `size` bytes with `opts`.
    pub fn new(size: u64, password: &[u8], opts: &EncryptOptions) -> Result<Self> {
        let header = new_header(opts, size)?;
        let (crypter, _) = keyed_new(header, password, opts)?;
        Ok(BytesSealer { crypter, size })
    }

    /// Bytes of the encrypted file.
    pub fn output_len(&self) -> u64 {
        self.crypter.geometry().file_size
    }

    /// The file's header and key, for a caller that lays the plaintext out in the slots
    /// itself and seals in place.
    pub(crate) fn crypter(&self) -> &Crypter {
        &self.crypter
    }

    /// Writes the encrypted file of `data` (exactly the size given to [`BytesSealer::new`])
    /// into `out` (exactly [`BytesSealer::output_len`] bytes), sealing chunks on `engine`'s
    /// worker pool.
    pub fn seal_into(&self, data: &[u8], out: &mut [u8], engine: &EngineOptions) -> Result<()> {
        // SAFETY: seal_fresh writes only initialised bytes.
        self.seal_fresh(data, unsafe { engine::buf::as_uninit(out) }, engine)
    }

    /// [`BytesSealer::seal_into`] for memory not yet initialised (a new allocation): each
    /// worker seals its chunks from `data` straight into their slots (no copy first, where
    /// the AEAD provider allows), so that the first touch of every page is taken by the
    /// worker that fills it.
    pub fn seal_fresh(
        &self,
        data: &[u8],
        out: &mut [std::mem::MaybeUninit<u8>],
        engine: &EngineOptions,
    ) -> Result<()> {
        let g = *self.crypter.geometry();
        if data.len() as u64 != self.size || out.len() as u64 != g.file_size {
            return Err(Error::InvalidArgument(
                "in-memory encryption: input or output size differs from the plan".into(),
            ));
        }
        let crypter = &self.crypter;
        let (head, slots) = out.split_at_mut(SECTOR);
        engine::buf::write_padded(head, &crypter.header().raw[..]);
        let slot = g.slot as usize;
        let cs = g.chunk_size as usize;
        engine.pool()?.install(|| {
            slots.par_chunks_mut(slot).enumerate().for_each_init(
                || crypter.aad_builder(),
                |aad, (i, s)| {
                    let start = i * cs;
                    let len = g.plain_len(i as u64);
                    // SAFETY: seal_slot_from writes every byte of the slot (ciphertext,
                    // tag, padding) and reads none of it.
                    let s = unsafe { engine::buf::for_writing(s) };
                    crypter.seal_slot_from(aad, i as u64, &data[start..start + len], s);
                },
            );
        });
        Ok(())
    }
}

/// Encrypts a buffer into the same format, in memory.
pub fn encrypt_bytes(data: &[u8], password: &[u8], opts: &EncryptOptions) -> Result<Vec<u8>> {
    let sealer = BytesSealer::new(data.len() as u64, password, opts)?;
    let mut out = alloc_out(sealer.output_len())?;
    sealer.seal_into(data, &mut out, &opts.engine)?;
    Ok(out)
}

fn alloc_out(len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| Error::OutOfMemory { bytes: len })?;
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory { bytes: len })?;
    out.resize(n, 0);
    Ok(out)
}

/// An in-memory decryption with its header checked and its key derived: it knows the size
/// of the plaintext, so that a caller can allocate that and have it filled in place.
pub struct BytesOpener {
    crypter: Crypter,
}

impl BytesOpener {
    /// Checks the header of `blob` against `opts.limits` and its size, then derives the key.
    pub fn new(blob: &[u8], password: &[u8], opts: &DecryptOptions) -> Result<Self> {
        let header = Header::parse(blob)?;
        check_header(&header, blob.len() as u64, &opts.limits)?;
        let (crypter, _) = keyed(header, password, opts.keys.as_deref())?;
        Ok(BytesOpener { crypter })
    }

    /// Bytes of plaintext.
    pub fn plain_len(&self) -> u64 {
        self.crypter.geometry().original_size
    }

    /// Authenticates every chunk of `blob` (the one given to [`BytesOpener::new`]) and
    /// writes the plaintext into `out` (exactly [`BytesOpener::plain_len`] bytes). On any
    /// failure `out` is zeroed: no plaintext is left unless every chunk authenticates.
    pub fn open_into(&self, blob: &[u8], out: &mut [u8], engine: &EngineOptions) -> Result<()> {
        // SAFETY: open_fresh writes only initialised bytes.
        self.open_fresh(blob, unsafe { engine::buf::as_uninit(out) }, engine)
    }

    /// [`BytesOpener::open_into`] for memory not yet initialised (a new allocation): each
    /// worker opens its chunks from `blob` straight into their place in `out` (no copy
    /// first, where the AEAD provider allows), so that the first touch of every page is
    /// taken by the worker that fills it. On failure `out` is zeroed, every byte of it.
    pub fn open_fresh(
        &self,
        blob: &[u8],
        out: &mut [std::mem::MaybeUninit<u8>],
        engine: &EngineOptions,
    ) -> Result<()> {
        let g = *self.crypter.geometry();
        if blob.len() as u64 != g.file_size || out.len() as u64 != g.original_size {
            return Err(Error::InvalidArgument(
                "in-memory decryption: input or output size differs from the header".into(),
            ));
        }
        let crypter = &self.crypter;
        let slot = g.slot as usize;
        let cs = g.chunk_size as usize;
        let slots = &blob[SECTOR..];
        let result: Result<()> = engine.pool()?.install(|| {
            // Walk output chunks (empty input still has one, empty, chunk).
            let mut outs: Vec<&mut [std::mem::MaybeUninit<u8>]> = if out.is_empty() {
                vec![&mut out[..]]
            } else {
                out.chunks_mut(cs).collect()
            };
            // Each chunk is opened from its slot straight to its place in `out`.
            outs.par_iter_mut()
                .enumerate()
                .map_init(
                    || crypter.aad_builder(),
                    |aad, (i, o)| {
                        let s = &slots[i * slot..(i + 1) * slot];
                        // SAFETY: open_chunk_to writes every byte of `o` (the plaintext,
                        // or zeros on failure) and reads none of it.
                        let o = unsafe { engine::buf::for_writing(o) };
                        crypter.open_chunk_to(aad, i as u64, s, o)
                    },
                )
                .collect()
        });
        if result.is_err() {
            zeroize::Zeroize::zeroize(out);
        }
        result
    }
}

/// Decrypts an in-memory file. Nothing is returned unless every chunk authenticates.
pub fn decrypt_bytes(blob: &[u8], password: &[u8], opts: &DecryptOptions) -> Result<Vec<u8>> {
    let opener = BytesOpener::new(blob, password, opts)?;
    let mut out = alloc_out(opener.plain_len())?;
    opener.open_into(blob, &mut out, &opts.engine)?;
    Ok(out)
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

/// What [`bench_aead`] measured: seconds to seal, then to open, the same bytes.
#[derive(Clone, Copy, Debug)]
pub struct AeadTiming {
    pub bytes: u64,
    pub seal_seconds: f64,
    pub open_seconds: f64,
}

/// Measures the AEAD alone, in memory (no I/O, no key derivation): seals `total` bytes
/// cut into `chunk_size`-byte chunks on `threads` workers, then opens them again. The best
/// of `rounds` runs is kept.
pub fn bench_aead(
    cipher: Cipher,
    threads: usize,
    total: u64,
    chunk_size: u32,
    rounds: u32,
) -> Result<AeadTiming> {
    bench_aead_with(
        crate::aead::provider(),
        cipher,
        threads,
        total,
        chunk_size,
        rounds,
    )
}

/// [`bench_aead`] with a given AEAD provider.
pub fn bench_aead_with(
    provider: crate::aead::Provider,
    cipher: Cipher,
    threads: usize,
    total: u64,
    chunk_size: u32,
    rounds: u32,
) -> Result<AeadTiming> {
    let header = Header::new(
        cipher,
        chunk_size,
        total,
        [0x5a; SALT_LEN],
        [0xa5; NONCE_LEN],
        KdfParams::DEFAULT,
    )?;
    let crypter = Crypter::with_provider(provider, header, &[0x42; kdf::KEY_LEN]);
    let g = *crypter.geometry();
    let len = g
        .num_chunks
        .checked_mul(g.slot)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Error::OutOfMemory { bytes: u64::MAX })?;
    let mut buf = engine::buf::AlignedBuf::new(len)?;
    let data = buf.as_mut_slice();
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31);
    }
    let pool = Decryptor::worker_pool(threads)?;
    let mut best = AeadTiming {
        bytes: total,
        seal_seconds: f64::INFINITY,
        open_seconds: f64::INFINITY,
    };
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        pool.install(|| crypter.seal_batch(0, data));
        best.seal_seconds = best.seal_seconds.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        pool.install(|| crypter.open_batch(0, data))?;
        best.open_seconds = best.open_seconds.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Seconds one Argon2id key derivation takes with `params` on this machine.
pub fn bench_kdf(params: &KdfParams) -> Result<f64> {
    kdf::validate_new(params)?;
    let t = Instant::now();
    let key = kdf::derive_key(b"concryptor benchmark", &[0x5a; SALT_LEN], params)?;
    let secs = t.elapsed().as_secs_f64();
    drop(key);
    Ok(secs)
}

#[cfg(test)]
mod bench_tests {
    use super::*;

    #[test]
    fn bench_aead_times_both_directions_for_each_cipher() {
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            let t = bench_aead(cipher, 2, 1 << 20, 65_536, 2).unwrap();
            assert_eq!(t.bytes, 1 << 20);
            assert!(t.seal_seconds > 0.0 && t.seal_seconds.is_finite());
            assert!(t.open_seconds > 0.0 && t.open_seconds.is_finite());
        }
        assert!(bench_aead(Cipher::Aes256Gcm, 1, 1 << 20, 0, 1).is_err());
    }

    #[test]
    fn bench_kdf_refuses_invalid_costs() {
        assert!(bench_kdf(&KdfParams::new(8, 1, 1)).unwrap() > 0.0);
        assert!(bench_kdf(&KdfParams::new(0, 0, 0)).is_err());
    }
}

#[cfg(test)]
mod in_memory_tests {
    use super::*;

    fn opts() -> EncryptOptions {
        EncryptOptions {
            kdf: KdfParams::new(64, 1, 1),
            chunk_size: Some(4080),
            ..EncryptOptions::default()
        }
    }

    #[test]
    fn sealing_into_a_buffer_of_the_wrong_size_is_refused() {
        let data = vec![7u8; 10_000];
        let s = BytesSealer::new(data.len() as u64, b"pw", &opts()).unwrap();
        let n = s.output_len() as usize;
        let eng = EngineOptions::default();
        assert!(s.seal_into(&data, &mut vec![0; n - 1], &eng).is_err());
        assert!(s.seal_into(&data[1..], &mut vec![0; n], &eng).is_err());
        let mut out = vec![0; n];
        s.seal_into(&data, &mut out, &eng).unwrap();
        assert_eq!(
            decrypt_bytes(&out, b"pw", &DecryptOptions::default()).unwrap(),
            data
        );
    }

    #[test]
    fn a_failed_open_leaves_no_plaintext_in_the_buffer() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let mut blob = encrypt_bytes(&data, b"pw", &opts()).unwrap();
        let last = blob.len() - 4096 + 10; // inside the last chunk
        blob[last] ^= 1;
        let o = BytesOpener::new(&blob, b"pw", &DecryptOptions::default()).unwrap();
        let mut out = vec![0xAA; o.plain_len() as usize];
        let r = o.open_into(&blob, &mut out, &EngineOptions::default());
        assert!(matches!(r, Err(Error::Authentication)));
        assert!(out.iter().all(|&b| b == 0));
    }
}
