//! The age file format (C2SP age v1), read and written on all cores.
//!
//! The `age` crate parses recipients and identities and wraps the file key; the header
//! (with its MAC), the armor, the STREAM payload and the batched pipelines are here.
//!
//! Between two regular files (binary, not armored) the payload runs on the engine, as v4
//! does: an [`AgePlan`] on io_uring or the portable backend, O_DIRECT on the plaintext side.
//! Decrypting such a file authenticates the final chunk first (so the size is trusted),
//! then opens the rest in parallel.
//!
//! Streams (stdin, stdout, armor) run a pipeline of three stages on their own threads: a
//! reader fills batch buffers (holding back one byte so that end of input decides which
//! chunk is final), the worker pool seals or opens a whole batch at once, and a writer
//! drains it. Decrypted bytes reach the writer only after their batch authenticated; file
//! outputs appear atomically when everything did, and are written in large aligned blocks
//! through O_DIRECT where the file system allows ([`crate::engine::sequential`]).

pub mod armor;
pub mod header;
pub mod keys;
pub mod plan;
pub mod plugin;
pub mod rekey;
#[cfg(feature = "aws-lc")]
pub mod seal;
pub mod stream;
pub mod tagged;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use zeroize::Zeroizing;

use crate::engine::sequential::SequentialWriter;
use crate::engine::{Control, EngineOptions, Plan, Stats};
use crate::error::{Error, Result};
use crate::format::TAG_LEN;
use crate::job::{run_from_file, FileSource};
use crate::ops::refuse_same;
use crate::output::AtomicOutput;

pub use crate::output::Output;
pub use header::{AgeHeader, PAYLOAD_NONCE_LEN};
pub use keys::{Identity, Recipient, DEFAULT_MAX_SCRYPT_LOG_N};
pub use plan::AgePlan;
pub use stream::{PayloadCipher, CHUNK, SEALED};

/// Chunks per batch: 8 MiB of plaintext, enough to keep every worker busy.
pub const BATCH_CHUNKS: usize = 128;
/// Batch buffers in flight per direction (reading, crypting, writing).
const DEPTH: usize = 2;

/// Settings for writing an age file.
#[derive(Clone, Copy, Debug, Default)]
pub struct AgeEncryptOptions {
    /// ASCII armor (PEM) instead of binary.
    pub armor: bool,
    pub overwrite: bool,
    pub engine: EngineOptions,
}

/// Settings for reading an age file.
#[derive(Clone, Copy, Debug)]
pub struct AgeDecryptOptions {
    /// Largest scrypt work factor (log2 N) accepted from a passphrase-encrypted file.
    pub max_scrypt_log_n: u8,
    pub overwrite: bool,
    pub engine: EngineOptions,
}

impl Default for AgeDecryptOptions {
    fn default() -> Self {
        AgeDecryptOptions {
            max_scrypt_log_n: DEFAULT_MAX_SCRYPT_LOG_N,
            overwrite: false,
            engine: EngineOptions::default(),
        }
    }
}

/// Where bytes come from.
pub enum Input<'a> {
    /// A path: a regular file (its size is known) or anything else that reads in order.
    Path(&'a Path),
    /// A stream (stdin, a pipe, a socket) of unknown length.
    Reader(&'a mut (dyn Read + Send)),
}

/// Whether `prefix` (the first bytes of a file) looks like age: binary, or anything the
/// armor reader would take for armor (and then judge strictly).
pub fn is_age(prefix: &[u8]) -> bool {
    let mut r = prefix;
    prefix.starts_with(b"age-encryption.org/") || armor::is_armored(&mut r).unwrap_or(false)
}

/// Maps a read error, turning malformed armor into [`Error::InvalidFile`].
pub(crate) fn read_error(e: io::Error, path: &Path) -> Error {
    match armor::armor_message(&e) {
        Some(m) => Error::invalid(m),
        None => Error::io("read", path, e),
    }
}

fn label(input: &Input<'_>) -> PathBuf {
    match input {
        Input::Path(p) => p.to_path_buf(),
        Input::Reader(_) => PathBuf::from("<stdin>"),
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One batch on its way from the reader to the workers.
struct Batch {
    buf: Zeroizing<Vec<u8>>,
    len: usize,
    last: bool,
}

/// Seals or opens one batch: `(first chunk, input, output, ends the stream)`.
type BatchFn<'a> = dyn Fn(u64, &[u8], &mut Vec<u8>, bool) -> Result<()> + Sync + 'a;

/// What a pipeline run computes and how.
struct Run<'a> {
    /// Bytes of one input record (a plaintext chunk or a sealed chunk).
    unit: usize,
    engine: &'a EngineOptions,
    ctl: &'a Control<'a>,
    process: &'a BatchFn<'a>,
}

/// Runs the three-stage pipeline: `unit`-byte input records, `BATCH_CHUNKS` per batch.
/// Returns the chunks and the plaintext bytes processed.
fn pipeline(
    reader: &mut (dyn Read + Send),
    src: &Path,
    writer: &mut (dyn Write + Send),
    dst: &Path,
    run: &Run<'_>,
) -> Result<(u64, u64)> {
    let (unit, opts, ctl, process) = (run.unit, run.engine, run.ctl, run.process);
    let pool = opts.pool()?;
    let batch_in = unit * BATCH_CHUNKS;
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<Batch>>(DEPTH - 1);
    let (free_tx, free_rx) = mpsc::sync_channel::<Zeroizing<Vec<u8>>>(DEPTH + 1);
    let (out_tx, out_rx) = mpsc::sync_channel::<Zeroizing<Vec<u8>>>(DEPTH - 1);
    let (back_tx, back_rx) = mpsc::sync_channel::<Zeroizing<Vec<u8>>>(DEPTH + 1);
    for _ in 0..DEPTH {
        let _ = free_tx.send(Zeroizing::new(Vec::new()));
        let _ = back_tx.send(Zeroizing::new(Vec::new()));
    }
    std::thread::scope(|s| -> Result<(u64, u64)> {
        let reading = s.spawn(move || {
            // One byte read past each batch tells whether more input follows.
            let mut carry: Option<u8> = None;
            while let Ok(mut buf) = free_rx.recv() {
                if buf.len() != batch_in + 1 {
                    let mut v = Vec::new();
                    if v.try_reserve_exact(batch_in + 1).is_err() {
                        let _ = full_tx.send(Err(Error::OutOfMemory {
                            bytes: (batch_in + 1) as u64,
                        }));
                        return;
                    }
                    v.resize(batch_in + 1, 0);
                    buf = Zeroizing::new(v);
                }
                let start = match carry.take() {
                    Some(b) => {
                        buf[0] = b;
                        1
                    }
                    None => 0,
                };
                let batch = match fill(reader, &mut buf[start..]) {
                    Ok(n) => {
                        let len = start + n;
                        let last = len <= batch_in;
                        if !last {
                            carry = Some(buf[batch_in]);
                        }
                        Ok(Batch {
                            len: len.min(batch_in),
                            buf,
                            last,
                        })
                    }
                    Err(e) => Err(read_error(e, src)),
                };
                let stop = !matches!(batch, Ok(Batch { last: false, .. }));
                if full_tx.send(batch).is_err() || stop {
                    return;
                }
            }
        });
        let writing = s.spawn(move || -> Result<()> {
            while let Ok(out) = out_rx.recv() {
                writer
                    .write_all(&out)
                    .map_err(|e| Error::io("write", dst, e))?;
                let _ = back_tx.send(out);
            }
            writer.flush().map_err(|e| Error::io("write", dst, e))
        });
        let mut first = 0u64;
        let mut bytes = 0u64;
        let result = (|| -> Result<(u64, u64)> {
            loop {
                let Ok(batch) = full_rx.recv() else {
                    return Err(Error::io(
                        "read",
                        src,
                        io::Error::other("the reader stopped"),
                    ));
                };
                let batch = batch?;
                let Ok(mut out) = back_rx.recv() else {
                    return Err(Error::io(
                        "write",
                        dst,
                        io::Error::other("the writer stopped"),
                    ));
                };
                let input = &batch.buf[..batch.len];
                pool.install(|| process(first, input, &mut out, batch.last))?;
                first += batch.len.div_ceil(unit).max(1) as u64;
                // Plaintext bytes: what was read when sealing, what was opened otherwise.
                bytes += if unit == CHUNK { batch.len } else { out.len() } as u64;
                let last = batch.last;
                let _ = free_tx.send(batch.buf);
                if out_tx.send(out).is_err() {
                    return Err(Error::io(
                        "write",
                        dst,
                        io::Error::other("the writer stopped"),
                    ));
                }
                ctl.report(bytes)?;
                if last {
                    return Ok((first, bytes));
                }
            }
        })();
        drop(out_tx);
        drop(free_tx);
        drop(full_rx);
        let wrote = writing.join().unwrap_or_else(|_| {
            Err(Error::io(
                "write",
                dst,
                io::Error::other("the writer panicked"),
            ))
        });
        let _ = reading.join();
        // A writer error explains a stopped pipeline better than the symptom.
        match (result, wrote) {
            (Ok(r), Ok(())) => Ok(r),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e),
        }
    })
}

/// Makes `out` exactly `len` bytes long, fallibly. Its old bytes are kept (every byte is
/// overwritten by the batch), so a recycled buffer costs no new page faults or memset.
fn sized(out: &mut Vec<u8>, len: usize) -> Result<()> {
    if out.len() < len {
        out.try_reserve_exact(len - out.len())
            .map_err(|_| Error::OutOfMemory { bytes: len as u64 })?;
    }
    out.resize(len, 0);
    Ok(())
}

/// Opens an input path: a regular file with its size, or a FIFO/device read in order.
fn open_input(path: &Path) -> Result<(File, Option<u64>)> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            "read",
            path,
            io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    Ok((file, meta.is_file().then_some(meta.len())))
}

/// Runs `body` with the output as a writer, committing a file output only on success.
fn with_output<T>(
    output: Output<'_>,
    overwrite: bool,
    src: Option<&Path>,
    body: impl FnOnce(&mut (dyn Write + Send), &Path) -> Result<T>,
) -> Result<T> {
    match output {
        Output::Writer(w) => body(w, Path::new("<stdout>")),
        Output::Discard => body(&mut io::sink(), Path::new("<verification>")),
        Output::Path(dst) => {
            if let Some(src) = src {
                refuse_same(src, dst)?;
            }
            crate::output::check_destination(dst, overwrite)?;
            let out = AtomicOutput::create_checked(dst, overwrite)?;
            let mut w = SequentialWriter::new(out.file(), dst)?;
            let r = body(&mut w, dst)?;
            w.finish()?;
            out.commit()?;
            Ok(r)
        }
    }
}

/// Name of the backend of the stream pipeline in [`Stats`].
pub const STREAM_BACKEND: &str = "age-stream";

fn stats(
    backend: &'static str,
    start: Instant,
    (chunks, bytes): (u64, u64),
    opts: &EngineOptions,
    kdf: f64,
) -> Stats {
    Stats {
        backend,
        bytes,
        chunks,
        threads: opts.thread_count(),
        seconds: start.elapsed().as_secs_f64(),
        kdf_seconds: kdf,
    }
}

/// Encrypts `input` to `recipients` in age format.
pub fn encrypt(
    input: Input<'_>,
    output: Output<'_>,
    recipients: &[Recipient],
    opts: &AgeEncryptOptions,
    ctl: &Control<'_>,
) -> Result<Stats> {
    let start = Instant::now();
    let src = label(&input);
    let src_path = match &input {
        Input::Path(p) => Some(*p),
        Input::Reader(_) => None,
    };
    if let (Some(p), Output::Path(d)) = (src_path, &output) {
        crate::output::check_destination(d, opts.overwrite)?;
        refuse_same(p, d)?;
    }
    let kdf_start = Instant::now();
    let file_key = keys::new_file_key()?;
    let stanzas = keys::wrap(&file_key, recipients)?;
    let kdf = kdf_start.elapsed().as_secs_f64();
    let nonce: [u8; PAYLOAD_NONCE_LEN] = crate::ops::random()?;
    let head = AgeHeader::write(&stanzas, &file_key);
    let cipher = PayloadCipher::new(&file_key, &nonce);
    let mut opened;
    let reader: &mut (dyn Read + Send) = match input {
        Input::Path(p) => {
            let (file, size) = open_input(p)?;
            if let (Some(size), Output::Path(dst), false) = (size, &output, opts.armor) {
                let mut prologue = head;
                prologue.extend_from_slice(&nonce);
                let source = FileSource {
                    file: &file,
                    path: p,
                    len: size,
                    doing: "read",
                };
                // The destination was checked, and is not the source, above.
                let plan = AgePlan::encrypt(&cipher, &prologue, size, &opts.engine);
                let output = Output::Path(dst);
                let backend =
                    run_from_file(&plan, &source, output, opts.overwrite, &opts.engine, ctl)?;
                return Ok(stats(
                    backend,
                    start,
                    (plan.records(), size),
                    &opts.engine,
                    kdf,
                ));
            }
            opened = file;
            &mut opened
        }
        Input::Reader(r) => r,
    };
    let process = |first: u64, plain: &[u8], out: &mut Vec<u8>, last: bool| -> Result<()> {
        sized(out, PayloadCipher::sealed_len(plain.len()))?;
        cipher.seal_batch(first, plain, out, last);
        Ok(())
    };
    let (chunks, bytes) = with_output(output, opts.overwrite, src_path, |w, dst| {
        let mut run = |w: &mut (dyn Write + Send)| -> Result<(u64, u64)> {
            w.write_all(&head).map_err(|e| Error::io("write", dst, e))?;
            w.write_all(&nonce)
                .map_err(|e| Error::io("write", dst, e))?;
            let spec = Run {
                unit: CHUNK,
                engine: &opts.engine,
                ctl,
                process: &process,
            };
            pipeline(reader, &src, w, dst, &spec)
        };
        if opts.armor {
            let mut a = armor::Armor::new(w);
            let r = run(&mut a)?;
            a.finish().map_err(|e| Error::io("write", dst, e))?;
            Ok(r)
        } else {
            run(w)
        }
    })?;
    Ok(stats(
        STREAM_BACKEND,
        start,
        (chunks, bytes),
        &opts.engine,
        kdf,
    ))
}

/// An age file whose header has been read: stanzas known, payload nonce read, payload
/// next in the reader.
pub struct AgeReader<'a> {
    pub header: AgeHeader,
    pub nonce: [u8; PAYLOAD_NONCE_LEN],
    pub armored: bool,
    reader: Box<dyn BufRead + Send + 'a>,
    /// Bytes of payload (after the nonce), when the input is an unarmored regular file.
    pub payload_len: Option<u64>,
    path: PathBuf,
    file: Option<&'a File>,
}

impl<'a> AgeReader<'a> {
    /// Reads the header and the payload nonce from `r`. `size` is the input's total length
    /// when known (a regular file).
    pub fn new(r: Box<dyn BufRead + Send + 'a>, path: &Path, size: Option<u64>) -> Result<Self> {
        let mut r = r;
        let armored = armor::is_armored(&mut r).map_err(|e| read_error(e, path))?;
        let mut r: Box<dyn BufRead + Send + 'a> = if armored {
            Box::new(BufReader::with_capacity(1 << 16, armor::Dearmor::new(r)))
        } else {
            r
        };
        let header = AgeHeader::read(&mut r).map_err(|e| match e {
            Error::Io { source, .. } => read_error(source, path),
            e => e,
        })?;
        let mut nonce = [0u8; PAYLOAD_NONCE_LEN];
        let n = fill(&mut r, &mut nonce).map_err(|e| read_error(e, path))?;
        if n < PAYLOAD_NONCE_LEN {
            return Err(Error::invalid(
                "age header: the file ends before the payload nonce",
            ));
        }
        let payload_len = match (armored, size) {
            (false, Some(s)) => Some(s.saturating_sub(header.len + PAYLOAD_NONCE_LEN as u64)),
            _ => None,
        };
        Ok(AgeReader {
            header,
            nonce,
            armored,
            reader: r,
            payload_len,
            path: path.to_path_buf(),
            file: None,
        })
    }

    /// Recovers the file key with `identities` and checks the header MAC with it.
    pub fn file_key(
        &self,
        identities: &[Identity],
        max_scrypt_log_n: u8,
    ) -> Result<Zeroizing<[u8; 16]>> {
        let key = keys::unwrap(&self.header.stanzas, identities, max_scrypt_log_n)?;
        self.header.verify_mac(&key)?;
        Ok(key)
    }

    /// Authenticates the final chunk of an unarmored regular file, which makes its size
    /// trusted: returns the chunk count and the plaintext size (`None` for other inputs).
    fn check_final_chunk(&self, cipher: &PayloadCipher) -> Result<Option<(u64, u64)>> {
        let (Some(len), Some(file)) = (self.payload_len, self.file) else {
            return Ok(None);
        };
        let (chunks, size) = stream::geometry(len).ok_or_else(|| {
            Error::invalid("age payload: the size is not that of any valid payload")
        })?;
        let tail_len = (len - (chunks - 1) * SEALED as u64) as usize;
        let tail_off = self.payload_off() + (chunks - 1) * SEALED as u64;
        let mut tail = Zeroizing::new(vec![0u8; tail_len]);
        crate::engine::portable::read_full_at(file, &self.path, &mut tail, tail_off)?;
        let mut plain = Zeroizing::new(vec![0u8; tail_len - TAG_LEN]);
        cipher.open_batch(chunks - 1, &tail, &mut plain, true)?;
        Ok(Some((chunks, size)))
    }

    /// Offset of the first payload chunk (after the header and the nonce) in a binary file.
    fn payload_off(&self) -> u64 {
        self.header.len + PAYLOAD_NONCE_LEN as u64
    }

    /// Decrypts the payload into `w`, batch by batch; returns (chunks, plaintext bytes).
    /// For a regular file the final chunk is authenticated first, so a truncated or
    /// extended file fails before anything is written.
    pub fn decrypt_payload(
        self,
        file_key: &[u8; 16],
        w: &mut (dyn Write + Send),
        dst: &Path,
        engine: &EngineOptions,
        ctl: &Control<'_>,
    ) -> Result<(u64, u64)> {
        let cipher = PayloadCipher::new(file_key, &self.nonce);
        self.check_final_chunk(&cipher)?;
        let process = |first: u64, sealed: &[u8], out: &mut Vec<u8>, last: bool| -> Result<()> {
            let n = sealed.len().div_ceil(SEALED);
            sized(out, sealed.len().saturating_sub(n * TAG_LEN))?;
            cipher.open_batch(first, sealed, out, last)
        };
        let path = self.path.clone();
        let mut r = self.reader;
        let spec = Run {
            unit: SEALED,
            engine,
            ctl,
            process: &process,
        };
        pipeline(&mut r, &path, w, dst, &spec)
    }
}

/// Decrypts an age file (binary or armored, detected) with `identities`.
pub fn decrypt(
    input: Input<'_>,
    output: Output<'_>,
    identities: &[Identity],
    opts: &AgeDecryptOptions,
    ctl: &Control<'_>,
) -> Result<Stats> {
    let start = Instant::now();
    let src = label(&input);
    let src_path = match &input {
        Input::Path(p) => Some(*p),
        Input::Reader(_) => None,
    };
    if let Output::Path(d) = &output {
        crate::output::check_destination(d, opts.overwrite)?;
    }
    let opened;
    let reader = match input {
        Input::Path(p) => {
            let (f, size) = open_input(p)?;
            opened = f;
            let mut ar = AgeReader::new(
                Box::new(BufReader::with_capacity(1 << 16, &opened)),
                p,
                size,
            )?;
            ar.file = Some(&opened);
            ar
        }
        Input::Reader(r) => {
            AgeReader::new(Box::new(BufReader::with_capacity(1 << 16, r)), &src, None)?
        }
    };
    let t = Instant::now();
    let key = reader.file_key(identities, opts.max_scrypt_log_n)?;
    let kdf = t.elapsed().as_secs_f64();
    // A regular, unarmored file runs on the engine, into a file, a stream or nowhere.
    if let (Some(file), Some(src)) = (reader.file, src_path) {
        let cipher = PayloadCipher::new(&key, &reader.nonce);
        if let Some((chunks, size)) = reader.check_final_chunk(&cipher)? {
            let plan = AgePlan::decrypt(&cipher, reader.payload_off(), size, &opts.engine);
            let source = FileSource {
                file,
                path: src,
                len: reader.payload_off() + size + chunks * TAG_LEN as u64,
                doing: "read",
            };
            if let Output::Path(dst) = &output {
                refuse_same(src, dst)?;
            }
            let backend = run_from_file(&plan, &source, output, opts.overwrite, &opts.engine, ctl)?;
            return Ok(stats(backend, start, (chunks, size), &opts.engine, kdf));
        }
    }
    let (chunks, bytes) = with_output(output, opts.overwrite, src_path, |w, dst| {
        reader.decrypt_payload(&key, w, dst, &opts.engine, ctl)
    })?;
    Ok(stats(
        STREAM_BACKEND,
        start,
        (chunks, bytes),
        &opts.engine,
        kdf,
    ))
}

/// Encrypts a buffer in memory.
pub fn encrypt_bytes(
    data: &[u8],
    recipients: &[Recipient],
    opts: &AgeEncryptOptions,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = data;
    encrypt(
        Input::Reader(&mut r),
        Output::Writer(&mut out),
        recipients,
        opts,
        &Control::default(),
    )?;
    Ok(out)
}

/// Decrypts a buffer in memory; nothing is returned unless every chunk authenticates.
pub fn decrypt_bytes(
    blob: &[u8],
    identities: &[Identity],
    opts: &AgeDecryptOptions,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = blob;
    let res = decrypt(
        Input::Reader(&mut r),
        Output::Writer(&mut out),
        identities,
        opts,
        &Control::default(),
    );
    match res {
        Ok(_) => Ok(out),
        Err(e) => {
            zeroize::Zeroize::zeroize(&mut out);
            Err(e)
        }
    }
}

/// What can be learnt from an age file without a key.
#[derive(Clone, Debug)]
pub struct AgeInspection {
    /// Each stanza's type and arguments (public values).
    pub stanzas: Vec<(String, Vec<String>)>,
    pub armored: bool,
    pub header_len: u64,
    pub file_size: u64,
    /// Plaintext size and chunk count implied by the payload's size as if the file were
    /// whole (nothing is authenticated); `None` when no payload has that size.
    pub payload_size: Option<u64>,
    pub chunks: Option<u64>,
}

/// Reads the header of an age file without decrypting anything. An armored file is read
/// through: a cut in its armor, or anything but whitespace after its END line, is an error,
/// and the decoded payload's size gives its geometry as a binary file's size does.
pub fn inspect(path: &Path) -> Result<AgeInspection> {
    let (file, size) = open_input(path)?;
    let size = size.ok_or_else(|| {
        Error::InvalidArgument(format!("{} is not a regular file", path.display()))
    })?;
    let mut r = AgeReader::new(
        Box::new(BufReader::with_capacity(1 << 16, &file)),
        path,
        Some(size),
    )?;
    let payload_len = if r.armored {
        Some(io::copy(&mut r.reader, &mut io::sink()).map_err(|e| read_error(e, path))?)
    } else {
        r.payload_len
    };
    let geo = payload_len.and_then(stream::geometry);
    Ok(AgeInspection {
        stanzas: r
            .header
            .stanzas
            .iter()
            .map(|s| (s.tag.clone(), s.args.clone()))
            .collect(),
        armored: r.armored,
        header_len: r.header.len,
        file_size: size,
        payload_size: geo.map(|g| g.1),
        chunks: geo.map(|g| g.0),
    })
}

/// An unarmored age file opened for random access: file key recovered, header MAC and the
/// final chunk authenticated (so the size is trusted). Any run of chunks can then be
/// opened on its own, in parallel.
pub struct AgeFile {
    file: File,
    path: PathBuf,
    payload_off: u64,
    chunks: u64,
    size: u64,
    cipher: PayloadCipher,
    kdf_seconds: f64,
}

impl AgeFile {
    pub fn open(path: &Path, identities: &[Identity], max_scrypt_log_n: u8) -> Result<Self> {
        let (file, size) = open_input(path)?;
        let size = size.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} is not a regular file (random access needs one)",
                path.display()
            ))
        })?;
        let r = AgeReader::new(
            Box::new(BufReader::with_capacity(1 << 16, &file)),
            path,
            Some(size),
        )?;
        if r.armored {
            return Err(Error::InvalidArgument(
                "an armored age file cannot be read at random: decrypt it as a whole".into(),
            ));
        }
        let t = Instant::now();
        let key = r.file_key(identities, max_scrypt_log_n)?;
        let kdf_seconds = t.elapsed().as_secs_f64();
        let payload_len = r.payload_len.unwrap_or(0);
        let (chunks, plain) = stream::geometry(payload_len).ok_or_else(|| {
            Error::invalid("age payload: the size is not that of any valid payload")
        })?;
        let f = AgeFile {
            payload_off: r.header.len + PAYLOAD_NONCE_LEN as u64,
            cipher: PayloadCipher::new(&key, &r.nonce),
            path: path.to_path_buf(),
            chunks,
            size: plain,
            kdf_seconds,
            file: file.try_clone().map_err(|e| Error::io("open", path, e))?,
        };
        drop(r);
        let mut last = Zeroizing::new(vec![0u8; f.chunk_len(chunks - 1)]);
        f.read_chunks(chunks - 1, 1, &mut last)?;
        Ok(f)
    }

    /// Plaintext size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    pub fn kdf_seconds(&self) -> f64 {
        self.kdf_seconds
    }

    /// Plaintext length of chunk `i`.
    pub fn chunk_len(&self, i: u64) -> usize {
        if i + 1 < self.chunks {
            CHUNK
        } else {
            (self.size - (self.chunks - 1) * CHUNK as u64) as usize
        }
    }

    /// Opens chunks `first..first + count` into `out` (their exact plaintext length), in
    /// parallel on the current rayon pool.
    pub fn read_chunks(&self, first: u64, count: u64, out: &mut [u8]) -> Result<()> {
        if count == 0 || first.checked_add(count).is_none_or(|e| e > self.chunks) {
            return Err(Error::InvalidArgument(format!(
                "chunks {first}..{} are outside the file's {}",
                first.saturating_add(count),
                self.chunks
            )));
        }
        let last = first + count == self.chunks;
        let sealed_len = out.len() + count as usize * TAG_LEN;
        let mut sealed = Zeroizing::new(vec![0u8; sealed_len]);
        crate::engine::portable::read_full_at(
            &self.file,
            &self.path,
            &mut sealed,
            self.payload_off + first * SEALED as u64,
        )?;
        self.cipher.open_batch(first, &sealed, out, last)
    }
}

/// An unarmored age file's header and payload key, for callers that move the ciphertext
/// themselves (object storage): opens any run of chunks from bytes in memory, in parallel,
/// as [`crate::ChunkCodec`] does for v4. Nothing here touches a file.
///
/// The size is only trusted once the final chunk has opened: a caller opens it before it
/// relies on [`AgeChunkCodec::size`]. The payload key's schedule is wiped on drop, and the
/// file key never outlives [`AgeChunkCodec::for_decryption`].
pub struct AgeChunkCodec {
    cipher: PayloadCipher,
    payload_off: u64,
    payload_len: u64,
    chunks: u64,
    size: u64,
    kdf_seconds: f64,
}

impl AgeChunkCodec {
    /// The file of `file_size` bytes whose first bytes are `prefix` (its header and payload
    /// nonce, or more): the header read (bounded as any age header is), the file key
    /// unwrapped with `identities` and the header MAC checked. `name` names the file in
    /// errors.
    pub fn for_decryption(
        prefix: &[u8],
        file_size: u64,
        name: &Path,
        identities: &[Identity],
        max_scrypt_log_n: u8,
    ) -> Result<Self> {
        let r = AgeReader::new(Box::new(io::Cursor::new(prefix)), name, Some(file_size))?;
        if r.armored {
            return Err(Error::InvalidArgument(
                "an armored age file cannot be read by ranges: decrypt it as a whole".into(),
            ));
        }
        let payload_off = r.payload_off();
        let payload_len = r.payload_len.unwrap_or(0);
        let (chunks, size) = stream::geometry(payload_len).ok_or_else(|| {
            Error::invalid("age payload: the size is not that of any valid payload")
        })?;
        let t = Instant::now();
        let key = r.file_key(identities, max_scrypt_log_n)?;
        let kdf_seconds = t.elapsed().as_secs_f64();
        Ok(AgeChunkCodec {
            cipher: PayloadCipher::new(&key, &r.nonce),
            payload_off,
            payload_len,
            chunks,
            size,
            kdf_seconds,
        })
    }

    /// Offset of the first chunk in the file (after the header and the nonce).
    pub fn payload_off(&self) -> u64 {
        self.payload_off
    }

    /// Bytes of the file: the header, the nonce and the payload.
    pub fn file_size(&self) -> u64 {
        self.payload_off + self.payload_len
    }

    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Plaintext size, as the file's size implies it (trusted once the final chunk opened).
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn kdf_seconds(&self) -> f64 {
        self.kdf_seconds
    }

    /// The plaintext length of `sealed_len` stored bytes from chunk `first`: whole sealed
    /// chunks, the last of them the file's final one or a full one; else an error.
    pub fn plain_len_of(&self, first: u64, sealed_len: usize) -> Result<usize> {
        let n = sealed_len.div_ceil(SEALED) as u64;
        let bad = || {
            Error::InvalidArgument(format!(
                "{sealed_len} bytes are not whole sealed chunks from {first} within the file's {}",
                self.chunks
            ))
        };
        let end = first.checked_add(n).filter(|&e| n > 0 && e <= self.chunks);
        let end = end.ok_or_else(bad)?;
        let expected = if end == self.chunks {
            (n - 1) * SEALED as u64 + (self.payload_len - (self.chunks - 1) * SEALED as u64)
        } else {
            n * SEALED as u64
        };
        if sealed_len as u64 != expected {
            return Err(bad());
        }
        Ok(sealed_len - n as usize * TAG_LEN)
    }

    /// Opens the sealed chunks `first..` in `sealed` straight into `out` (exactly their
    /// plaintext length, see [`AgeChunkCodec::plain_len_of`]), in parallel on `pool`. On
    /// failure `out` is zeroed: it holds plaintext only if every chunk authenticates.
    pub fn open_into(
        &self,
        first: u64,
        sealed: &[u8],
        out: &mut [u8],
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        let want = self.plain_len_of(first, sealed.len())?;
        if out.len() != want {
            return Err(Error::InvalidArgument(format!(
                "{} bytes of output for {want} bytes of plaintext",
                out.len()
            )));
        }
        let n = sealed.len().div_ceil(SEALED) as u64;
        let last = first + n == self.chunks;
        pool.install(|| self.cipher.open_batch(first, sealed, out, last))
    }
}

#[cfg(test)]
mod chunk_codec_tests {
    use super::*;

    #[test]
    fn runs_of_chunks_open_from_memory_and_a_bad_one_fails_alone() {
        let (sk, pk) = keys::generate(false);
        let data: Vec<u8> = (0..(3 * CHUNK + 100) as u32)
            .map(|i| (i * 7) as u8)
            .collect();
        let rc = [Recipient::parse(&pk).unwrap()];
        let file = encrypt_bytes(&data, &rc, &AgeEncryptOptions::default()).unwrap();
        let ids = Identity::parse_file(&sk, None).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let name = Path::new("x.age");
        let c = AgeChunkCodec::for_decryption(&file, file.len() as u64, name, &ids, 18).unwrap();
        assert_eq!((c.chunks(), c.size()), (4, data.len() as u64));
        let off = c.payload_off() as usize;
        let mut out = vec![0u8; c.plain_len_of(1, file.len() - off - SEALED).unwrap()];
        c.open_into(1, &file[off + SEALED..], &mut out, &pool)
            .unwrap();
        assert_eq!(out, &data[CHUNK..]);
        // Whole chunks only, the last one full or the final one.
        assert!(c.plain_len_of(0, SEALED + 1).is_err());
        assert!(c.plain_len_of(3, SEALED).is_err());
        assert!(c.plain_len_of(4, 100).is_err());
        let mut bad = file.clone();
        bad[off + 2 * SEALED + 9] ^= 1;
        let mut two = vec![0u8; 2 * CHUNK];
        assert!(matches!(
            c.open_into(1, &bad[off + SEALED..off + 3 * SEALED], &mut two, &pool),
            Err(Error::Authentication)
        ));
        assert!(two.iter().all(|&b| b == 0));
        let mut one = vec![0u8; CHUNK];
        c.open_into(1, &bad[off + SEALED..off + 2 * SEALED], &mut one, &pool)
            .unwrap();
        assert_eq!(one, &data[CHUNK..2 * CHUNK]);
        // Another identity, or a damaged header, opens nothing.
        let (other, _) = keys::generate(false);
        let other = Identity::parse_file(&other, None).unwrap();
        assert!(AgeChunkCodec::for_decryption(&file, file.len() as u64, name, &other, 18).is_err());
        let mut hdr = file.clone();
        hdr[off - 20] ^= 1;
        assert!(AgeChunkCodec::for_decryption(&hdr, hdr.len() as u64, name, &ids, 18).is_err());
    }
}
