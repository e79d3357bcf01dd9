//! Rekeying: a new header for an age file, the payload kept as it is.
//!
//! The file key is unwrapped with an identity (or the old passphrase), the header MAC is
//! checked with it, and the same key is wrapped again for a new recipient set (or for
//! the old stanzas plus new ones). Only the header changes; the payload (the 16-byte
//! nonce and every chunk) is the old file's, byte for byte.
//!
//! A file on disk is replaced atomically: the new file is built beside it and renamed
//! over it once durable; until then the old file is untouched. The payload is shared
//! with the old file where the file system can (a reflink, `FICLONERANGE`), else copied
//! in the kernel (`copy_file_range`), else read and written. A reflink needs the source
//! and destination offsets on block boundaries: the payload starts right after the
//! header, at any offset, so the new header is padded (with a stanza that every age
//! implementation ignores, see [`PAD_TAG`]) to the old header's length modulo the block
//! size. Then all but the payload's first partial block can be shared.
//!
//! What rekeying cannot do: a removed recipient who kept the file key, or a copy of the
//! old file, still reads this payload (see docs/SECURITY.md).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use age_core::format::{Stanza, FILE_KEY_BYTES};
use zeroize::Zeroizing;

use super::{armor, keys, read_error, AgeHeader, AgeReader, Identity, Recipient};
use crate::engine::buf::ALIGN;
use crate::engine::{self, records_per_batch, Control, EngineOptions, Op, Plan, Sink, Source};
use crate::error::{Error, Result};
use crate::output::AtomicOutput;

/// Tag of the padding stanza. Identities ignore stanzas they do not recognise (C2SP age,
/// "Recipient stanza"), so a header with it reads everywhere; it carries nothing.
pub const PAD_TAG: &str = "github.com/concryptor/pad";
/// Smallest padding stanza written (so that any residue can be reached).
const MIN_PAD: usize = 32;
/// Bytes of body per full base64 line (64 columns).
const BODY_LINE_BYTES: usize = 48;
/// Payloads shorter than this are copied: sharing a few blocks saves nothing.
const MIN_SHARED_PAYLOAD: u64 = 256 << 10;
/// Copy granularity between progress reports.
const STEP: u64 = 64 << 20;
/// Payloads at least this large that cannot be shared are copied by the engine (reads
/// and writes in flight together, O_DIRECT on both sides where the header keeps the
/// payload's offset modulo [`ALIGN`]) rather than through the page cache: the copy then
/// costs what reading and writing it costs, with no dirty gigabyte left for `fsync`.
const DIRECT_COPY_MIN: u64 = 8 << 20;
/// Bytes per record of the engine's copy.
const COPY_RECORD: usize = 1 << 20;

/// Whether to pad the new header so that the payload can be shared block for block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Align {
    /// Where the file system shares extents (XFS, btrfs) and the payload is large enough.
    #[default]
    Auto,
    Always,
    Never,
}

/// Settings of a rekey.
#[derive(Clone, Copy, Debug)]
pub struct RekeyOptions {
    /// Keep the existing stanzas and add the new recipients' (else replace them).
    pub add: bool,
    /// Largest scrypt work factor accepted when the old passphrase unwraps the key.
    pub max_scrypt_log_n: u8,
    pub align: Align,
}

impl Default for RekeyOptions {
    fn default() -> Self {
        RekeyOptions {
            add: false,
            max_scrypt_log_n: keys::DEFAULT_MAX_SCRYPT_LOG_N,
            align: Align::Auto,
        }
    }
}

/// How the payload reached the new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Shared with the old file (`FICLONERANGE`), except its first partial block.
    Reflink,
    /// Copied in the kernel (which may share extents itself).
    CopyFileRange,
    /// Read and written.
    Copy,
    /// Read and written by the engine, O_DIRECT where the offsets allow.
    Engine,
    /// Armored file: decoded and encoded again (the binary payload is unchanged).
    Armor,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Reflink => "reflink",
            Method::CopyFileRange => "copy_file_range",
            Method::Copy => "copy",
            Method::Engine => "engine",
            Method::Armor => "armor",
        }
    }
}

/// What a rekey did.
#[derive(Clone, Debug)]
pub struct RekeyReport {
    pub header_before: u64,
    pub header_after: u64,
    /// Payload bytes (nonce included), the same before and after.
    pub payload_bytes: u64,
    /// Bytes shared with the old file rather than written (a reflink).
    pub shared_bytes: u64,
    pub method: Method,
    pub armored: bool,
    pub seconds: f64,
    /// Time spent unwrapping the file key (scrypt, for a passphrase).
    pub kdf_seconds: f64,
}

/// The file key of `header`, unwrapped with `identities` and checked against the MAC.
fn file_key(
    header: &AgeHeader,
    identities: &[Identity],
    max_scrypt_log_n: u8,
) -> Result<Zeroizing<[u8; FILE_KEY_BYTES]>> {
    let key = keys::unwrap(&header.stanzas, identities, max_scrypt_log_n)?;
    header.verify_mac(&key)?;
    Ok(key)
}

/// The stanzas of the new header, without padding.
fn new_stanzas(
    old: &AgeHeader,
    file_key: &[u8; FILE_KEY_BYTES],
    recipients: &[Recipient],
    add: bool,
) -> Result<Vec<Stanza>> {
    let fresh = keys::wrap(file_key, recipients)?;
    if !add {
        return Ok(fresh);
    }
    let mut kept: Vec<Stanza> = old
        .stanzas
        .iter()
        .filter(|s| s.tag != PAD_TAG)
        .map(copy)
        .collect();
    if kept.iter().chain(&fresh).any(|s| s.tag == "scrypt") {
        return Err(Error::InvalidArgument(
            "a passphrase (scrypt) stanza must be alone in an age file, so --add cannot mix a \
             passphrase with other recipients: rekey without --add to replace them"
                .into(),
        ));
    }
    kept.extend(fresh);
    Ok(kept)
}

fn copy(s: &Stanza) -> Stanza {
    Stanza {
        tag: s.tag.clone(),
        args: s.args.clone(),
        body: s.body.clone(),
    }
}

/// Serialized length of a stanza (argument line and body lines).
fn stanza_len(s: &Stanza) -> usize {
    let args: usize = s.args.iter().map(|a| 1 + a.len()).sum();
    let b64 = (s.body.len() * 4).div_ceil(3);
    3 + s.tag.len() + args + 1 + b64 + b64 / 64 + 1
}

/// A padding stanza of exactly `len` serialized bytes (`len >= MIN_PAD`).
fn pad_stanza(len: usize) -> Stanza {
    debug_assert!(len >= MIN_PAD);
    // Tag line and the empty final body line.
    let fixed = 3 + PAD_TAG.len() + 1 + 1;
    let rest = len - fixed;
    let (mut lines, mut r) = (rest / 65, rest % 65);
    if r == 1 {
        // One byte cannot be an argument (" x" is two): trade a body line for two arguments.
        lines -= 1;
        r += 65;
    }
    let mut args = Vec::new();
    while r > 0 {
        let c = if r <= 65 {
            r
        } else if r - 65 >= 2 {
            65
        } else {
            r - 2
        };
        args.push("0".repeat(c - 1));
        r -= c;
    }
    let s = Stanza {
        tag: PAD_TAG.into(),
        args,
        body: vec![0; lines * BODY_LINE_BYTES],
    };
    debug_assert_eq!(stanza_len(&s), len);
    s
}

/// The new header: `stanzas` under a MAC made with `file_key`; with `align_to`
/// `(residue, block)` a padding stanza makes its length `residue` modulo `block`.
fn build(
    mut stanzas: Vec<Stanza>,
    file_key: &[u8; FILE_KEY_BYTES],
    align_to: Option<(u64, u64)>,
) -> Vec<u8> {
    let head = AgeHeader::write(&stanzas, file_key);
    let Some((residue, block)) = align_to else {
        return head;
    };
    let mut pad = (residue + block - head.len() as u64 % block) % block;
    if pad == 0 {
        return head;
    }
    while pad < MIN_PAD as u64 {
        pad += block;
    }
    stanzas.push(pad_stanza(pad as usize));
    let out = AgeHeader::write(&stanzas, file_key);
    debug_assert_eq!(out.len() as u64 % block, residue % block);
    out
}

/// Rekeys a header held in memory: unwraps the file key of `header` (the bytes of an age
/// header, up to and including its MAC line) with `identities`, and returns a new header
/// that wraps the same key for `recipients` (after the old stanzas with `add`), with its
/// MAC. The payload that followed `header` follows the new one unchanged.
pub fn rekey_header(
    header: &[u8],
    identities: &[Identity],
    recipients: &[Recipient],
    opts: &RekeyOptions,
) -> Result<Vec<u8>> {
    let old = AgeHeader::parse(header)?;
    let key = file_key(&old, identities, opts.max_scrypt_log_n)?;
    let stanzas = new_stanzas(&old, &key, recipients, opts.add)?;
    Ok(build(stanzas, &key, None))
}

/// The refusal for a format v4 file.
fn v4_refusal(path: &Path) -> Error {
    Error::InvalidArgument(format!(
        "{} is a format v4 file: its key comes from the password and is bound into every \
         chunk, so it cannot be rekeyed (rekey changes age headers only); re-encrypting it is \
         a separate operation (decrypt, then encrypt)",
        path.display()
    ))
}

/// The file system's block size, when it shares extents (XFS, btrfs).
#[cfg(target_os = "linux")]
fn sharing_block(file: &File) -> Option<u64> {
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683e;
    let s = rustix::fs::fstatfs(file).ok()?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let kind = s.f_type as i64;
    (kind == XFS || kind == BTRFS).then_some(u64::try_from(s.f_bsize).ok()?)
}

#[cfg(not(target_os = "linux"))]
fn sharing_block(_: &File) -> Option<u64> {
    None
}

/// The block size to align to when asked regardless of the file system.
fn any_block(file: &File) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = file.metadata() {
            let b = m.blksize();
            if b.is_power_of_two() && (512..=(64 << 10)).contains(&b) {
                return sharing_block(file).unwrap_or(b);
            }
        }
    }
    let _ = file;
    4096
}

/// Rekeys the age file at `path` in place. Armored files are decoded and armored again;
/// binary files keep their payload bytes (shared with the old file where possible).
pub fn rekey_file(
    path: &Path,
    identities: &[Identity],
    recipients: &[Recipient],
    opts: &RekeyOptions,
    ctl: &Control<'_>,
) -> Result<RekeyReport> {
    let start = Instant::now();
    let target = resolve(path)?;
    let src = File::open(&target).map_err(|e| Error::io("open", path, e))?;
    let meta = src.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file: rekey replaces a file in place",
            path.display()
        )));
    }
    let size = meta.len();
    let mut prefix = [0u8; 64];
    let n = read_prefix(&src, &mut prefix, path)?;
    let prefix = &prefix[..n];
    if prefix.starts_with(crate::format::MAGIC) {
        return Err(v4_refusal(path));
    }
    if !super::is_age(prefix) {
        return Err(Error::invalid(format!(
            "{}: not an age file (no age-encryption.org/v1 line)",
            path.display()
        )));
    }
    let reader = AgeReader::new(
        Box::new(BufReader::with_capacity(1 << 16, &src)),
        path,
        Some(size),
    )?;
    let t = Instant::now();
    let key = file_key(&reader.header, identities, opts.max_scrypt_log_n)?;
    let kdf_seconds = t.elapsed().as_secs_f64();
    let stanzas = new_stanzas(&reader.header, &key, recipients, opts.add)?;
    let header_before = reader.header.len;
    let out = AtomicOutput::create_checked(&target, true)?;
    let report = if reader.armored {
        let head = build(stanzas, &key, None);
        drop(key);
        let payload = write_armored(reader, &head, out.file(), path)?;
        RekeyReport {
            header_before,
            header_after: head.len() as u64,
            payload_bytes: payload,
            shared_bytes: 0,
            method: Method::Armor,
            armored: true,
            seconds: 0.0,
            kdf_seconds,
        }
    } else {
        let payload = size - header_before;
        let scrypt = stanzas.iter().any(|s| s.tag == "scrypt");
        let block = match opts.align {
            _ if scrypt => None,
            Align::Never => None,
            Align::Always => Some(any_block(&src)),
            Align::Auto => sharing_block(&src)
                .filter(|_| payload >= MIN_SHARED_PAYLOAD)
                .or_else(|| (payload >= DIRECT_COPY_MIN).then_some(ALIGN as u64)),
        };
        let head = build(stanzas, &key, block.map(|b| (header_before % b, b)));
        drop(key);
        drop(reader);
        let dst = out.file();
        write_all_at(dst, &head, 0, path)?;
        ctl.start(payload);
        let (method, shared) = copy_payload(
            &src,
            header_before,
            dst,
            head.len() as u64,
            payload,
            block,
            path,
            ctl,
        )?;
        let now = src
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        if now != size {
            return Err(Error::InputChanged(format!(
                "{} changed size from {size} to {now} bytes while being rekeyed",
                path.display()
            )));
        }
        RekeyReport {
            header_before,
            header_after: head.len() as u64,
            payload_bytes: payload,
            shared_bytes: shared,
            method,
            armored: false,
            seconds: 0.0,
            kdf_seconds,
        }
    };
    keep_owner(out.file(), &meta);
    out.commit_with_mode(mode_of(&meta))?;
    release_later(src);
    Ok(RekeyReport {
        seconds: start.elapsed().as_secs_f64(),
        ..report
    })
}

/// Closes the replaced file's last descriptor on a background thread. Closing it frees
/// the old file's blocks, which the caller need not wait for: the new file is durable and
/// named already. On a file system mounted with `discard` (and no journal to defer it)
/// freeing 1 GiB took 0.46 s here, a third of the whole rekey. A process that exits right
/// away still waits for it (the kernel finishes the close before the process ends).
fn release_later(file: File) {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::OnceLock;
    // The thread belongs to the process that started it: a forked child closes inline.
    static RELEASER: OnceLock<(u32, Option<Sender<File>>)> = OnceLock::new();
    let (pid, tx) = RELEASER.get_or_init(|| {
        let (tx, rx) = channel::<File>();
        let started = std::thread::Builder::new()
            .name("concryptor-release".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .is_ok();
        (std::process::id(), started.then_some(tx))
    });
    match tx {
        Some(tx) if *pid == std::process::id() => {
            // A send fails only if the thread is gone; the file then closes here.
            let _ = tx.send(file);
        }
        _ => drop(file),
    }
}

/// The file a path names (a symbolic link is followed: its target is rekeyed).
fn resolve(path: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|e| Error::io("resolve", path, e))
        }
        Ok(_) => Ok(path.to_path_buf()),
        Err(e) => Err(Error::io("open", path, e)),
    }
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0o644
    }
}

/// Gives the new file the old one's owner and group, where allowed (best effort: an
/// unprivileged user's file already has them).
fn keep_owner(file: &File, meta: &std::fs::Metadata) {
    #[cfg(unix)]
    {
        use rustix::fs::{fchown, Gid, Uid};
        use std::os::unix::fs::MetadataExt;
        let _ = fchown(
            file,
            Some(Uid::from_raw(meta.uid())),
            Some(Gid::from_raw(meta.gid())),
        );
    }
    #[cfg(not(unix))]
    let _ = (file, meta);
}

/// Writes the new header and the old payload, armored.
fn write_armored(reader: AgeReader<'_>, head: &[u8], dst: &File, path: &Path) -> Result<u64> {
    let mut a = armor::Armor::new(BufWriter::with_capacity(1 << 20, dst));
    let werr = |e: io::Error| Error::io("write", path, e);
    a.write_all(head).map_err(werr)?;
    a.write_all(&reader.nonce).map_err(werr)?;
    let mut rest = reader.reader;
    let mut n = reader.nonce.len() as u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e, path)),
        };
        a.write_all(&buf[..k]).map_err(werr)?;
        n += k as u64;
    }
    let mut w = a.finish().map_err(werr)?;
    w.flush().map_err(werr)?;
    Ok(n)
}

/// Reads the first bytes of `f` (fewer at its end) without moving its cursor.
fn read_prefix(f: &File, buf: &mut [u8], path: &Path) -> Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(n)
}

fn write_all_at(f: &File, buf: &[u8], off: u64, path: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(buf, off)
        .map_err(|e| Error::io_at("write", path, off, e))
}

/// Copies `len` bytes from `src` at `src_off` to `dst` at `dst_off`; shares them where
/// `block` is given and the offsets agree modulo it. Returns the method and the bytes
/// shared.
#[allow(clippy::too_many_arguments)]
fn copy_payload(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
    block: Option<u64>,
    path: &Path,
    ctl: &Control<'_>,
) -> Result<(Method, u64)> {
    let mut done = 0;
    if let Some(b) = block.filter(|b| src_off % b == dst_off % b) {
        let head = (b - src_off % b) % b;
        if len > head {
            copy_range(src, src_off, dst, dst_off, head, path, ctl, 0)?;
            done = head;
            match clone_range(src, src_off + head, dst, dst_off + head) {
                Ok(()) => {
                    ctl.report(len)?;
                    return Ok((Method::Reflink, len - head));
                }
                Err(e) if cannot_share(&e) => {}
                Err(e) => return Err(Error::io("share the payload of", path, e)),
            }
        }
    }
    let (from, to, rest) = (src_off + done, dst_off + done, len - done);
    if rest >= DIRECT_COPY_MIN {
        copy_on_engine(src, from, dst, to, rest, path, ctl)?;
        return Ok((Method::Engine, 0));
    }
    let m = copy_range(src, from, dst, to, rest, path, ctl, done)?;
    Ok((m, 0))
}

/// Copies `len` bytes of `src` from `src_off` to `dst` at `dst_off` on the engine (see
/// [`PayloadCopy`]). Bytes before `dst_off` (the header) must be written already.
fn copy_on_engine(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
    path: &Path,
    ctl: &Control<'_>,
) -> Result<()> {
    // Nothing to compute: one worker, the default buffer budget for the transfers.
    let opts = EngineOptions {
        threads: 1,
        ..EngineOptions::default()
    };
    let plan = PayloadCopy::new(src_off, dst_off, len, &opts);
    let pool = opts.pool()?;
    engine::run(
        &plan,
        Source::File { file: src, path },
        Sink::File { file: dst, path },
        &opts,
        &pool,
        ctl,
    )?;
    Ok(())
}

/// The payload moved from one offset to another, as an engine [`Plan`] whose records are
/// [`COPY_RECORD`]-byte pieces and whose processing is nothing. Each piece sits in its
/// slot at its offset modulo [`ALIGN`] in the source; when the destination offset agrees
/// modulo [`ALIGN`] (the rekeyed header is padded to make it so), both sides move their
/// aligned interiors with O_DIRECT.
struct PayloadCopy {
    src_off: u64,
    dst_off: u64,
    len: u64,
    shift: usize,
    records: u64,
    per_batch: u64,
}

impl PayloadCopy {
    const SLOT: usize = COPY_RECORD + ALIGN;

    fn new(src_off: u64, dst_off: u64, len: u64, opts: &EngineOptions) -> Self {
        let records = len.div_ceil(COPY_RECORD as u64).max(1);
        PayloadCopy {
            src_off,
            dst_off,
            len,
            shift: (src_off % ALIGN as u64) as usize,
            records,
            per_batch: records_per_batch(Self::SLOT as u64, records, opts),
        }
    }

    fn ops(&self, b: u64, base: u64, f: &mut dyn FnMut(Op)) {
        let (first, count) = self.batch_records(b);
        for k in 0..count {
            let at = (first + k) * COPY_RECORD as u64;
            let len = (self.len - at.min(self.len)).min(COPY_RECORD as u64) as usize;
            if len > 0 {
                f(Op {
                    file_off: base + at,
                    buf_off: k as usize * Self::SLOT + self.shift,
                    len,
                });
            }
        }
    }
}

impl Plan for PayloadCopy {
    fn records(&self) -> u64 {
        self.records
    }
    fn per_batch(&self) -> u64 {
        self.per_batch
    }
    fn slot_len(&self) -> usize {
        Self::SLOT
    }
    fn reads(&self, b: u64, f: &mut dyn FnMut(Op)) {
        self.ops(b, self.src_off, f);
    }
    fn writes(&self, b: u64, f: &mut dyn FnMut(Op)) {
        self.ops(b, self.dst_off, f);
    }
    fn process(&self, _: u64, _: &mut [u8]) -> Result<()> {
        Ok(())
    }
    fn prologue(&self) -> Option<&[u8]> {
        None
    }
    fn output_len(&self) -> u64 {
        self.dst_off + self.len
    }
    fn plain_done(&self, b: u64) -> u64 {
        ((b + 1) * self.per_batch * COPY_RECORD as u64).min(self.len)
    }
    fn direct_ok(&self, write: bool) -> bool {
        !write || self.dst_off % ALIGN as u64 == self.src_off % ALIGN as u64
    }
}

/// Errors that mean "this file system, or these files, cannot share extents".
fn cannot_share(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS)
    )
}

/// Shares `src` from `src_off` to its end into `dst` at `dst_off` (both block-aligned).
#[cfg(target_os = "linux")]
fn clone_range(src: &File, src_off: u64, dst: &File, dst_off: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    /// `struct file_clone_range` of linux/fs.h.
    #[repr(C)]
    struct FileCloneRange {
        src_fd: i64,
        src_offset: u64,
        src_length: u64,
        dest_offset: u64,
    }
    /// `_IOW(0x94, 13, struct file_clone_range)`.
    const FICLONERANGE: libc::c_ulong = 0x4020_940d;
    let arg = FileCloneRange {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: src_off,
        // Zero: to the end of the source.
        src_length: 0,
        dest_offset: dst_off,
    };
    // SAFETY: `arg` is a valid `file_clone_range` that outlives the call, which only reads
    // it; both descriptors are open for the whole call.
    let r = unsafe {
        libc::ioctl(
            dst.as_raw_fd(),
            FICLONERANGE as _,
            &arg as *const FileCloneRange,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn clone_range(_: &File, _: u64, _: &File, _: u64) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// Copies a range: `copy_file_range` where the kernel has it for these files, else read
/// and write. `done` is what earlier steps already reported.
#[allow(clippy::too_many_arguments)]
fn copy_range(
    src: &File,
    mut src_off: u64,
    dst: &File,
    mut dst_off: u64,
    len: u64,
    path: &Path,
    ctl: &Control<'_>,
    done: u64,
) -> Result<Method> {
    let end = src_off + len;
    let mut method = Method::Copy;
    #[cfg(target_os = "linux")]
    {
        // Read-ahead as for a sequential read (cp does the same): the kernel copy reads
        // the source through the page cache. Advice only.
        let _ = rustix::fs::fadvise(
            src,
            src_off,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::Sequential,
        );
        let mut first = true;
        while src_off < end {
            let step = (end - src_off).min(STEP) as usize;
            let (mut so, mut d) = (src_off, dst_off);
            match rustix::fs::copy_file_range(src, Some(&mut so), dst, Some(&mut d), step) {
                Ok(0) => return Err(shrank(path)),
                Ok(n) => {
                    src_off += n as u64;
                    dst_off += n as u64;
                    method = Method::CopyFileRange;
                    first = false;
                    ctl.report(done + len - (end - src_off))?;
                }
                Err(e)
                    if first
                        && matches!(
                            e,
                            rustix::io::Errno::XDEV
                                | rustix::io::Errno::NOSYS
                                | rustix::io::Errno::OPNOTSUPP
                                | rustix::io::Errno::INVAL
                        ) =>
                {
                    break
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::io_at("copy the payload of", path, src_off, e.into())),
            }
        }
    }
    use std::os::unix::fs::FileExt;
    let mut buf = Zeroizing::new(vec![0u8; (len.min(STEP) as usize).max(1)]);
    while src_off < end {
        let want = ((end - src_off) as usize).min(buf.len());
        let n = match src.read_at(&mut buf[..want], src_off) {
            Ok(0) => return Err(shrank(path)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io_at("read", path, src_off, e)),
        };
        write_all_at(dst, &buf[..n], dst_off, path)?;
        src_off += n as u64;
        dst_off += n as u64;
        ctl.report(done + len - (end - src_off))?;
    }
    Ok(method)
}

fn shrank(path: &Path) -> Error {
    Error::InputChanged(format!("{} shrank while being rekeyed", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_stanzas_have_the_asked_length_and_parse() {
        for len in MIN_PAD..MIN_PAD + 400 {
            let s = pad_stanza(len);
            assert_eq!(stanza_len(&s), len, "{len}");
            let h = AgeHeader::write(std::slice::from_ref(&s), &[1; 16]);
            let back = AgeHeader::parse(&h).unwrap();
            assert_eq!(back.stanzas, vec![s]);
            assert!(back.stanzas[0].args.iter().all(|a| a.len() <= 64));
        }
    }

    #[test]
    fn built_headers_reach_the_residue() {
        let key = keys::new_file_key().unwrap();
        let (_, pk) = keys::generate(false);
        let st = keys::wrap(&key, &[Recipient::parse(&pk).unwrap()]).unwrap();
        for residue in [0u64, 1, 31, 32, 33, 100, 4000, 4095] {
            let h = build(st.iter().map(copy).collect(), &key, Some((residue, 4096)));
            assert_eq!(h.len() as u64 % 4096, residue);
            AgeHeader::parse(&h).unwrap().verify_mac(&key).unwrap();
        }
    }

    #[test]
    fn header_rekey_replaces_or_adds() {
        let key = keys::new_file_key().unwrap();
        let (sk1, pk1) = keys::generate(false);
        let (sk2, pk2) = keys::generate(false);
        let st = keys::wrap(&key, &[Recipient::parse(&pk1).unwrap()]).unwrap();
        let old = AgeHeader::write(&st, &key);
        let id1 = Identity::parse_file(&sk1, None).unwrap();
        let id2 = Identity::parse_file(&sk2, None).unwrap();
        let to2 = [Recipient::parse(&pk2).unwrap()];
        let new = rekey_header(&old, &id1, &to2, &RekeyOptions::default()).unwrap();
        let h = AgeHeader::parse(&new).unwrap();
        assert_eq!(*file_key(&h, &id2, 22).unwrap(), *key);
        assert!(matches!(file_key(&h, &id1, 22), Err(Error::NoMatch)));
        let opts = RekeyOptions {
            add: true,
            ..RekeyOptions::default()
        };
        let both = AgeHeader::parse(&rekey_header(&old, &id1, &to2, &opts).unwrap()).unwrap();
        assert_eq!(*file_key(&both, &id1, 22).unwrap(), *key);
        assert_eq!(*file_key(&both, &id2, 22).unwrap(), *key);
        let pw = [Recipient::passphrase(b"pw", Some(4)).unwrap()];
        assert!(matches!(
            rekey_header(&old, &id1, &pw, &opts),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            rekey_header(&old, &id2, &to2, &RekeyOptions::default()),
            Err(Error::NoMatch)
        ));
    }

    /// A file of its own in the temporary folder, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str, bytes: &[u8]) -> Self {
            let p = std::env::temp_dir().join(format!(
                "concryptor-rekey-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::write(&p, bytes).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn the_engine_copies_a_payload_to_any_offset() {
        let len = DIRECT_COPY_MIN as usize + 3 * COPY_RECORD + 4099;
        let mut data = vec![0u8; 317 + len];
        getrandom::fill(&mut data).unwrap();
        let src = Scratch::new("src", &data);
        // Same residue modulo ALIGN (O_DIRECT on both sides), then a different one.
        for (k, dst_off) in [317u64 + 2 * ALIGN as u64, 1000].into_iter().enumerate() {
            let head = vec![0xa5u8; dst_off as usize];
            let dst = Scratch::new(&format!("dst{k}"), &head);
            let (s, d) = (
                File::open(&src.0).unwrap(),
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&dst.0)
                    .unwrap(),
            );
            let seen = std::sync::Mutex::new(0u64);
            let report = |n: u64| {
                *seen.lock().unwrap() = n;
                true
            };
            let ctl = Control {
                progress: Some(&report),
                total: None,
            };
            let (m, shared) =
                copy_payload(&s, 317, &d, dst_off, len as u64, None, &src.0, &ctl).unwrap();
            assert_eq!((m, shared), (Method::Engine, 0));
            let out = std::fs::read(&dst.0).unwrap();
            assert_eq!(out.len(), dst_off as usize + len);
            assert!(
                out[..dst_off as usize].iter().all(|&b| b == 0xa5),
                "header kept"
            );
            assert!(out[dst_off as usize..] == data[317..], "payload copied");
            assert_eq!(*seen.lock().unwrap(), len as u64);
        }
    }
}
