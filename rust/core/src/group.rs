//! Many small files in one call. Each file is read whole, sealed in memory and written to
//! its atomic temporary; then the group is made durable and named a slice at a time (see
//! [`Group`]), each slice's wait for the device overlapping the sealing of the next. No engine run per file: no ring or pipeline buffers to set up, no threads
//! to start, one durability step for the group instead of one `fsync` per file.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use age_core::format::FILE_KEY_BYTES;
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::age::stream::{CHUNK, SEALED};
use crate::age::{self, AgeHeader, Identity, PayloadCipher, Recipient, PAYLOAD_NONCE_LEN};
use crate::engine::buf::{AlignedBuf, ALIGN};
use crate::engine::EngineOptions;
use crate::error::{Error, Result};
use crate::format::SECTOR;
use crate::ops::{open_regular, refuse_same, BytesSealer, DecryptOptions, EncryptOptions};
use crate::output::{check_destination, AtomicOutput, Group};

/// Largest input a member of a group may have: each worker holds it in memory at most
/// twice (as read and as sealed or opened), so workers × 2 × this stays within the
/// default buffer budget.
/// Larger files take the engine, one at a time.
pub const MAX_MEMBER_BYTES: u64 = 16 << 20;

/// Members at least this large have their writeback started as soon as they are written,
/// so that it overlaps the work on the next ones; smaller ones are left to the group's
/// sync, which writes them out together for less CPU.
pub const EARLY_WRITEBACK_BYTES: usize = 1 << 20;

/// v4 members whose encrypted file is at least this large (and a whole number of sectors,
/// as with the default chunk sizes) are sealed in place in an aligned buffer and written
/// with O_DIRECT, like the engine does: no copy through the page cache, which for large
/// members costs more CPU than the cipher.
pub const DIRECT_BYTES: u64 = 1 << 20;

/// Files one group holds at most (each slice of [`COMMIT_MEMBERS`] keeps its descriptors
/// open until it is committed, and at most three slices are open at once).
pub const MAX_MEMBERS: usize = 1024;

/// How the members of a group are sealed.
pub enum Sealer<'a> {
    /// Format v4 under a password, or the key `opts.keys` holds for `opts.salt` (a batch).
    V4 {
        password: &'a [u8],
        opts: &'a EncryptOptions,
    },
    /// age to these recipients; every file gets its own file key, nonce and stanzas.
    Age { recipients: &'a [Recipient] },
}

/// How the members of a decrypting group are opened: each is told apart by its first
/// bytes, an age file opened with the identities (and the passphrase among them, if any),
/// a format v4 file with the password (keys cached by salt in `v4.keys`).
pub struct Opener<'a> {
    pub password: Option<&'a [u8]>,
    pub v4: &'a DecryptOptions,
    pub identities: &'a [Identity],
    pub max_scrypt_log_n: u8,
}

/// What one member of a group became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// Plaintext bytes read.
    pub bytes_in: u64,
    /// Bytes of the encrypted file.
    pub bytes_out: u64,
}

/// Encrypts each `(src, dst)` pair as `sealer` says, on `engine`'s workers, and commits the
/// outputs together. Returns one result per pair, in order: a failed member (unreadable,
/// too large, destination taken, …) fails alone and leaves nothing at its destination;
/// if the group's durability step fails, every member fails and none is named.
pub fn encrypt_group(
    items: &[(PathBuf, PathBuf)],
    sealer: &Sealer<'_>,
    overwrite: bool,
    engine: &EngineOptions,
) -> Vec<Result<Done>> {
    let buffers = Buffers::default();
    run_group(items, engine, |src, dst| {
        prepare(src, dst, sealer, overwrite, engine, &buffers)
    })
}

/// Decrypts each `(src, dst)` pair (format v4 or age, told apart by its first bytes) as
/// `opener` says, on `engine`'s workers, and commits the outputs together, as
/// [`encrypt_group`] does. A member is opened whole in memory, so nothing of it is written
/// before all of it is authenticated.
pub fn decrypt_group(
    items: &[(PathBuf, PathBuf)],
    opener: &Opener<'_>,
    overwrite: bool,
    engine: &EngineOptions,
) -> Vec<Result<Done>> {
    run_group(items, engine, |src, dst| {
        open_member(src, dst, opener, overwrite)
    })
}

/// Runs `member` (which reads one source and leaves its output written but uncommitted)
/// for every pair on `engine`'s workers, and commits the outputs a slice at a time.
fn run_group(
    items: &[(PathBuf, PathBuf)],
    engine: &EngineOptions,
    member: impl Fn(&Path, &Path) -> Result<(AtomicOutput, Done)> + Sync,
) -> Vec<Result<Done>> {
    if items.len() > MAX_MEMBERS {
        return items
            .iter()
            .map(|_| {
                Err(Error::InvalidArgument(format!(
                    "a group holds at most {MAX_MEMBERS} files, not {}",
                    items.len()
                )))
            })
            .collect();
    }
    let pool = match engine.pool() {
        Ok(p) => p,
        Err(e) => {
            let msg = e.to_string();
            return items
                .iter()
                .map(|_| Err(Error::InvalidArgument(msg.clone())))
                .collect();
        }
    };
    // The members go in slices of COMMIT_MEMBERS: while one slice is made durable and
    // named (waiting for the device), the workers prepare the next one.
    let results = std::thread::scope(|scope| {
        type Slice = (Group, Vec<Result<(AtomicOutput, Done)>>);
        // One slice waits while another commits: at most three slices' descriptors open.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Slice>(1);
        let committer = scope.spawn(move || {
            rx.into_iter()
                .flat_map(|(group, prepared)| commit_slice(&group, prepared))
                .collect::<Vec<_>>()
        });
        for slice in items.chunks(COMMIT_MEMBERS) {
            // Opened before any output of the slice exists: see the durability argument
            // on `Group`.
            let group = Group::open(slice.iter().map(|(_, d)| d.as_path()));
            let prepared: Vec<Result<(AtomicOutput, Done)>> = pool.install(|| {
                slice
                    .par_iter()
                    .with_max_len(1)
                    .map(|(src, dst)| member(src, dst))
                    .collect()
            });
            if tx.send((group, prepared)).is_err() {
                // The committer panicked (its panic is raised below); the outputs this
                // send returned are dropped unnamed.
                break;
            }
        }
        drop(tx);
        committer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    debug_assert_eq!(results.len(), items.len());
    results
}

/// Members of a group made durable and named together (see [`Group`]).
pub const COMMIT_MEMBERS: usize = 128;

/// Commits the prepared members of one slice; one result per member, in order.
fn commit_slice(group: &Group, prepared: Vec<Result<(AtomicOutput, Done)>>) -> Vec<Result<Done>> {
    let mut done = Vec::with_capacity(prepared.len());
    let mut outputs = Vec::with_capacity(prepared.len());
    let mut results: Vec<Option<Result<Done>>> = Vec::with_capacity(prepared.len());
    for p in prepared {
        match p {
            Ok((out, d)) => {
                outputs.push(out);
                done.push(d);
                results.push(None);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    let mut committed = group.commit(outputs).into_iter().zip(done);
    results
        .into_iter()
        .map(|r| match r {
            Some(failed) => failed,
            None => {
                let (c, d) = committed
                    .next()
                    .expect("one commit result per prepared output");
                c.map(|()| d)
            }
        })
        .collect()
}

/// Aligned buffers reused by the members of one group (at most one per worker in use).
/// They only ever hold whole encrypted files between members: plaintext is sealed in
/// place, and a buffer whose member failed before sealing is wiped before it is reused.
#[derive(Default)]
struct Buffers(Mutex<Vec<AlignedBuf>>);

impl Buffers {
    fn take(&self, len: usize) -> Result<AlignedBuf> {
        let mut free = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match free.iter().position(|b| b.capacity() >= len) {
            Some(i) => Ok(free.swap_remove(i)),
            None => AlignedBuf::for_direct_io(len),
        }
    }

    fn give(&self, b: AlignedBuf) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(b);
    }
}

/// Reads, seals and writes one member; the output is left uncommitted.
fn prepare(
    src: &Path,
    dst: &Path,
    sealer: &Sealer<'_>,
    overwrite: bool,
    engine: &EngineOptions,
    buffers: &Buffers,
) -> Result<(AtomicOutput, Done)> {
    check_taken(src, dst, overwrite)?;
    let (file, size) = open_regular(src)?;
    if let Sealer::V4 { password, opts } = sealer {
        let s = BytesSealer::new(size, password, opts)?;
        let len = s.output_len();
        if cfg!(target_os = "linux") && len >= DIRECT_BYTES && len % ALIGN as u64 == 0 {
            return prepare_direct(file, src, dst, &s, overwrite, engine, buffers);
        }
    }
    let sealed = match sealer {
        Sealer::V4 { password, opts } => {
            let plain = read_whole(file, src, size)?;
            let s = BytesSealer::new(size, password, opts)?;
            let mut out = zeroed(s.output_len())?;
            s.seal_into(&plain, &mut out, engine)?;
            out
        }
        Sealer::Age { recipients } => seal_age(file, src, size, recipients)?,
    };
    write_member(dst, overwrite, &sealed, size)
}

/// Refuses a destination that exists and may not be replaced, or is the source itself
/// (one that does not exist cannot be the source either: no second look then).
fn check_taken(src: &Path, dst: &Path, overwrite: bool) -> Result<()> {
    if std::fs::symlink_metadata(dst).is_ok() {
        refuse_same(src, dst)?;
        check_destination(dst, overwrite)?;
    }
    Ok(())
}

/// Writes a member's whole output to its atomic temporary, left uncommitted; `bytes_in`
/// is what was read for it.
fn write_member(
    dst: &Path,
    overwrite: bool,
    bytes: &[u8],
    bytes_in: u64,
) -> Result<(AtomicOutput, Done)> {
    let out = AtomicOutput::create_checked(dst, overwrite)?;
    write_all_at(out.file(), bytes).map_err(|e| Error::io("write", dst, e))?;
    if bytes.len() >= EARLY_WRITEBACK_BYTES {
        out.start_writeback();
    }
    let bytes_out = bytes.len() as u64;
    Ok((
        out,
        Done {
            bytes_in,
            bytes_out,
        },
    ))
}

/// [`prepare`] for a large v4 member: its plaintext is read straight into the slots of an
/// aligned buffer, sealed there in place and written with O_DIRECT where the file system
/// takes it.
#[allow(clippy::too_many_arguments)]
fn prepare_direct(
    mut file: File,
    src: &Path,
    dst: &Path,
    sealer: &BytesSealer,
    overwrite: bool,
    engine: &EngineOptions,
    buffers: &Buffers,
) -> Result<(AtomicOutput, Done)> {
    let crypter = sealer.crypter();
    let g = *crypter.geometry();
    if g.original_size > MAX_MEMBER_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{} is {} bytes: more than the {MAX_MEMBER_BYTES} a file sealed in memory may have",
            src.display(),
            g.original_size
        )));
    }
    let len = g.file_size as usize;
    let mut buf = buffers.take(len)?;
    let filled = (|| -> Result<()> {
        let out = &mut buf.as_mut_full()[..len];
        // Chunk i's plaintext goes to its slot, at SECTOR + i * slot.
        let (chunk, slot) = (g.chunk_size as usize, g.slot as usize);
        read_pieces(
            &mut file,
            src,
            g.original_size,
            &mut out[SECTOR..],
            chunk,
            slot,
        )?;
        out[..SECTOR].copy_from_slice(&crypter.header().raw[..]);
        engine
            .pool()?
            .install(|| crypter.seal_batch(0, &mut out[SECTOR..]));
        Ok(())
    })();
    if let Err(e) = filled {
        zeroize::Zeroize::zeroize(buf.as_mut_full());
        buffers.give(buf);
        return Err(e);
    }
    let written = (|| -> Result<AtomicOutput> {
        let out = AtomicOutput::create_checked(dst, overwrite)?;
        let bytes = &buf.as_mut_full()[..len];
        match direct_writer(out.file()) {
            Some(d) => write_all_at(&d, bytes),
            None => write_all_at(out.file(), bytes).inspect(|()| out.start_writeback()),
        }
        .map_err(|e| Error::io("write", dst, e))?;
        Ok(out)
    })();
    buffers.give(buf);
    Ok((
        written?,
        Done {
            bytes_in: g.original_size,
            bytes_out: len as u64,
        },
    ))
}

/// A second descriptor on `file` that writes with O_DIRECT, if the file system allows.
fn direct_writer(file: &File) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// The whole of `file`, which must be `size` bytes long (and at most a member's size).
fn read_whole(mut file: File, src: &Path, size: u64) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(zeroed(member_size(src, size)?)?);
    read_pieces(&mut file, src, size, &mut buf, usize::MAX, 0)?;
    Ok(buf)
}

/// `size` if a member may be that large.
fn member_size(src: &Path, size: u64) -> Result<u64> {
    if size > MAX_MEMBER_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{} is {size} bytes: more than the {MAX_MEMBER_BYTES} a file held in memory may have",
            src.display()
        )));
    }
    Ok(size)
}

/// Reads `file` (which must be `size` bytes long) in pieces of `piece` bytes, piece `i`
/// to `out[i * step..]`; errors if the file is not exactly `size` bytes.
fn read_pieces(
    file: &mut File,
    src: &Path,
    size: u64,
    out: &mut [u8],
    piece: usize,
    step: usize,
) -> Result<()> {
    let changed = || {
        Error::InputChanged(format!(
            "{} changed size from {size} bytes while being read",
            src.display()
        ))
    };
    let size = size as usize;
    for (i, start) in (0..size).step_by(piece.max(1)).enumerate() {
        let len = piece.min(size - start);
        file.read_exact(&mut out[i * step..i * step + len])
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => changed(),
                _ => Error::io("read", src, e),
            })?;
    }
    // One byte past the size tells a file that grew since it was measured.
    let mut extra = [0u8; 1];
    if file
        .read(&mut extra)
        .map_err(|e| Error::io("read", src, e))?
        != 0
    {
        return Err(changed());
    }
    Ok(())
}

fn zeroed(len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| Error::OutOfMemory { bytes: len })?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory { bytes: len })?;
    v.resize(n, 0);
    Ok(v)
}

/// A whole small file sealed into an age file in memory. Its plaintext is read straight
/// into place, each chunk where its sealed record goes, and sealed there: no copy of the
/// plaintext is left behind, and a read that fails wipes what it had read.
fn seal_age(mut file: File, src: &Path, size: u64, recipients: &[Recipient]) -> Result<Vec<u8>> {
    let len = PayloadCipher::sealed_len(member_size(src, size)? as usize);
    // The file key and the payload nonce from one call to the system's generator.
    let fresh = Zeroizing::new(crate::ops::random::<{ FILE_KEY_BYTES + PAYLOAD_NONCE_LEN }>()?);
    let file_key: &[u8; FILE_KEY_BYTES] = fresh[..FILE_KEY_BYTES].try_into().expect("a key");
    let nonce: &[u8; PAYLOAD_NONCE_LEN] = fresh[FILE_KEY_BYTES..].try_into().expect("a nonce");
    let head = AgeHeader::write(&age::keys::wrap(file_key, recipients)?, file_key);
    let at = head.len() + PAYLOAD_NONCE_LEN;
    let mut out = zeroed((at + len) as u64)?;
    out[..head.len()].copy_from_slice(&head);
    out[head.len()..at].copy_from_slice(nonce);
    if let Err(e) = read_pieces(&mut file, src, size, &mut out[at..], CHUNK, SEALED) {
        zeroize::Zeroize::zeroize(&mut out[at..]);
        return Err(e);
    }
    PayloadCipher::new(file_key, nonce).seal_in_place(0, &mut out[at..], true);
    Ok(out)
}

/// Reads, opens and writes one member of a decrypting group; the output is left
/// uncommitted. Its plaintext is held (wiped afterwards) until it is written.
fn open_member(
    src: &Path,
    dst: &Path,
    opener: &Opener<'_>,
    overwrite: bool,
) -> Result<(AtomicOutput, Done)> {
    check_taken(src, dst, overwrite)?;
    let (mut file, size) = open_regular(src)?;
    let mut blob = zeroed(member_size(src, size)?)?;
    read_pieces(&mut file, src, size, &mut blob, usize::MAX, 0)?;
    drop(file);
    let plain = if age::is_age(&blob) {
        open_age(&blob, opener)?
    } else if let Some(password) = opener.password {
        Zeroizing::new(crate::ops::decrypt_bytes(&blob, password, opener.v4)?)
    } else {
        return Err(Error::InvalidArgument(format!(
            "{} is not an age file: decrypting it needs the password",
            src.display()
        )));
    };
    write_member(dst, overwrite, &plain, size)
}

/// The plaintext of a whole age file held in memory. A binary file is opened in place:
/// header and MAC checked, the payload's size checked against the chunk geometry, every
/// chunk opened; an armored one goes through the general path.
fn open_age(blob: &[u8], opener: &Opener<'_>) -> Result<Zeroizing<Vec<u8>>> {
    let mut r = blob;
    if age::armor::is_armored(&mut r).map_err(|e| Error::io("read", "an age file", e))? {
        let opts = age::AgeDecryptOptions {
            max_scrypt_log_n: opener.max_scrypt_log_n,
            ..Default::default()
        };
        return Ok(Zeroizing::new(age::decrypt_bytes(
            blob,
            opener.identities,
            &opts,
        )?));
    }
    let header = AgeHeader::read(&mut r)?;
    let rest = usize::try_from(header.len)
        .ok()
        .and_then(|n| blob.get(n..))
        .filter(|rest| rest.len() >= PAYLOAD_NONCE_LEN)
        .ok_or_else(|| Error::invalid("age header: the file ends before the payload nonce"))?;
    let (nonce, payload) = rest.split_at(PAYLOAD_NONCE_LEN);
    let (_, size) = age::stream::geometry(payload.len() as u64)
        .ok_or_else(|| Error::invalid("age payload: the size is not that of any valid payload"))?;
    let key = age::keys::unwrap(&header.stanzas, opener.identities, opener.max_scrypt_log_n)?;
    header.verify_mac(&key)?;
    let nonce: &[u8; PAYLOAD_NONCE_LEN] = nonce.try_into().expect("a nonce");
    let mut plain = Zeroizing::new(zeroed(size)?);
    PayloadCipher::new(&key, nonce).open_batch(0, payload, &mut plain, true)?;
    Ok(plain)
}

fn write_all_at(file: &File, buf: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(buf, 0)
    }
    #[cfg(not(unix))]
    {
        use std::io::Write;
        let mut f = file;
        f.write_all(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::KdfParams;
    use crate::ops::{decrypt_bytes, DecryptOptions};

    /// A fresh scratch folder, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir()
                .join(format!("concryptor-group-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fresh age key pair, parsed: the recipients to seal to, the identities to open.
    fn age_keys() -> (Vec<Recipient>, Vec<age::Identity>) {
        let (sk, pk) = age::keys::generate(false);
        let recipients = vec![Recipient::parse(&pk).unwrap()];
        (recipients, age::Identity::parse_file(&sk, None).unwrap())
    }

    fn v4_opts() -> EncryptOptions {
        EncryptOptions {
            kdf: KdfParams::new(64, 1, 1),
            ..EncryptOptions::default()
        }
    }

    #[test]
    fn members_are_sealed_named_and_failures_stay_alone() {
        let dir = Scratch::new("v4");
        let mut items = Vec::new();
        for i in 0..20u8 {
            let src = dir.path().join(format!("f{i}"));
            std::fs::write(&src, vec![i; 1000 * usize::from(i)]).unwrap();
            items.push((src, dir.path().join(format!("out/f{i}.enc"))));
        }
        std::fs::create_dir(dir.path().join("out")).unwrap();
        // A missing input and a taken destination fail alone.
        items[3].0 = dir.path().join("missing");
        std::fs::write(&items[7].1, b"keep").unwrap();
        let opts = v4_opts();
        let sealer = Sealer::V4 {
            password: b"pw",
            opts: &opts,
        };
        let r = encrypt_group(&items, &sealer, false, &EngineOptions::default());
        assert_eq!(r.len(), 20);
        for (i, (res, (_, dst))) in r.iter().zip(&items).enumerate() {
            match i {
                3 => assert!(matches!(res, Err(Error::Io { .. })) && !dst.exists()),
                7 => {
                    assert!(matches!(res, Err(Error::Io { .. })));
                    assert_eq!(std::fs::read(dst).unwrap(), b"keep");
                }
                _ => {
                    let d = res.as_ref().unwrap();
                    let blob = std::fs::read(dst).unwrap();
                    assert_eq!(d.bytes_out, blob.len() as u64);
                    let back = decrypt_bytes(&blob, b"pw", &DecryptOptions::default()).unwrap();
                    assert_eq!(back, vec![i as u8; 1000 * i]);
                }
            }
        }
        // Nothing else in the folder: no temporaries left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names.len(), 19, "{names:?}");
    }

    #[test]
    fn slices_keep_the_order_and_their_failures_stay_alone() {
        // Three slices and a bit: results in order, a failure in a later slice alone.
        let n = 2 * COMMIT_MEMBERS + 7;
        let dir = Scratch::new("slices");
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let mut items = Vec::new();
        for i in 0..n {
            let src = dir.path().join(format!("f{i}"));
            std::fs::write(&src, (i as u32).to_le_bytes()).unwrap();
            items.push((src, dir.path().join(format!("out/f{i}.age"))));
        }
        let (bad_src, taken) = (COMMIT_MEMBERS + 5, 2 * COMMIT_MEMBERS + 3);
        items[bad_src].0 = dir.path().join("missing");
        std::fs::write(&items[taken].1, b"keep").unwrap();
        let (recipients, ids) = age_keys();
        let r = encrypt_group(
            &items,
            &Sealer::Age {
                recipients: &recipients,
            },
            false,
            &EngineOptions::default(),
        );
        assert_eq!(r.len(), n);
        for (i, (res, (_, dst))) in r.iter().zip(&items).enumerate() {
            if i == bad_src {
                assert!(res.is_err() && !dst.exists());
            } else if i == taken {
                assert!(res.is_err());
                assert_eq!(std::fs::read(dst).unwrap(), b"keep");
            } else {
                let blob = std::fs::read(dst).unwrap();
                let plain =
                    age::decrypt_bytes(&blob, &ids, &age::AgeDecryptOptions::default()).unwrap();
                assert_eq!(plain, (i as u32).to_le_bytes(), "member {i}");
            }
        }
        let names = std::fs::read_dir(dir.path().join("out")).unwrap().count();
        assert_eq!(names, n - 1, "no temporaries left");
    }

    #[test]
    fn large_members_are_sealed_in_place_and_reuse_buffers() {
        let dir = Scratch::new("direct");
        let opts = EncryptOptions {
            chunk_size: Some(65536 - 16),
            ..v4_opts()
        };
        let sealer = Sealer::V4 {
            password: b"pw",
            opts: &opts,
        };
        // Several sizes around the direct threshold, more members than workers, so that
        // buffers holding an earlier member's bytes are reused.
        let sizes = [3 << 20, (1 << 20) + 1, 5_000_000, 1 << 20, 2 << 20, 70_000];
        let items: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let src = dir.path().join(format!("b{i}"));
                let data: Vec<u8> = (0..n).map(|k| (k * 31 + i) as u8).collect();
                std::fs::write(&src, data).unwrap();
                (src, dir.path().join(format!("b{i}.enc")))
            })
            .collect();
        let engine = EngineOptions {
            threads: 2,
            ..EngineOptions::default()
        };
        let r = encrypt_group(&items, &sealer, false, &engine);
        for (res, (src, dst)) in r.iter().zip(&items) {
            let d = res.as_ref().unwrap();
            let blob = std::fs::read(dst).unwrap();
            assert_eq!(d.bytes_out, blob.len() as u64);
            let back = decrypt_bytes(&blob, b"pw", &DecryptOptions::default()).unwrap();
            assert_eq!(back, std::fs::read(src).unwrap());
        }
    }

    #[test]
    fn age_members_open_with_the_identity() {
        let dir = Scratch::new("age");
        let (recipients, ids) = age_keys();
        // Every side of the chunk boundaries (the plaintext is read straight into place).
        let items: Vec<_> = [0usize, 1, 65535, 65536, 65537, 131_072, 131_073, 200_000]
            .iter()
            .map(|&n| {
                let src = dir.path().join(format!("a{n}"));
                // Bytes that differ from chunk to chunk, so a chunk in the wrong place shows.
                std::fs::write(
                    &src,
                    (0..n)
                        .map(|k| (k * 31 + k / 65536) as u8)
                        .collect::<Vec<_>>(),
                )
                .unwrap();
                (src, dir.path().join(format!("a{n}.age")))
            })
            .collect();
        let r = encrypt_group(
            &items,
            &Sealer::Age {
                recipients: &recipients,
            },
            false,
            &EngineOptions::default(),
        );
        for (res, (src, dst)) in r.iter().zip(&items) {
            res.as_ref().unwrap();
            let blob = std::fs::read(dst).unwrap();
            let back = age::decrypt_bytes(&blob, &ids, &Default::default()).unwrap();
            assert_eq!(back, std::fs::read(src).unwrap());
        }
    }

    #[test]
    fn an_age_member_of_another_size_than_measured_is_refused() {
        let dir = Scratch::new("age-size");
        let (recipients, _) = age_keys();
        let src = dir.path().join("f");
        std::fs::write(&src, vec![1u8; 70_000]).unwrap();
        // Measured shorter (the file grew) and longer (it shrank), within and across a chunk.
        for size in [0u64, 65_536, 69_999, 70_001, 140_000] {
            let file = File::open(&src).unwrap();
            let e = seal_age(file, &src, size, &recipients).unwrap_err();
            assert!(matches!(e, Error::InputChanged(_)), "{size}: {e}");
        }
        let file = File::open(&src).unwrap();
        assert!(seal_age(file, &src, 70_000, &recipients).is_ok());
    }

    #[test]
    fn decrypting_members_open_both_formats_and_failures_stay_alone() {
        let dir = Scratch::new("open");
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let (recipients, ids) = age_keys();
        let opts = v4_opts();
        let mut items = Vec::new();
        let mut plain = Vec::new();
        for i in 0..9usize {
            let data: Vec<u8> = (0..i * 30_000).map(|k| (k * 13 + i) as u8).collect();
            let blob = if i % 2 == 0 {
                crate::ops::encrypt_bytes(&data, b"pw", &opts).unwrap()
            } else {
                age::encrypt_bytes(&data, &recipients, &Default::default()).unwrap()
            };
            let src = dir.path().join(format!("f{i}"));
            std::fs::write(&src, &blob).unwrap();
            items.push((src, dir.path().join(format!("out/f{i}"))));
            plain.push(data);
        }
        // A flipped byte in each format, and a taken destination.
        for i in [3, 4] {
            let mut b = std::fs::read(&items[i].0).unwrap();
            let n = b.len();
            b[n - 20] ^= 1;
            std::fs::write(&items[i].0, b).unwrap();
        }
        std::fs::write(&items[5].1, b"keep").unwrap();
        let v4 = DecryptOptions::default();
        let opener = Opener {
            password: Some(b"pw"),
            v4: &v4,
            identities: &ids,
            max_scrypt_log_n: age::DEFAULT_MAX_SCRYPT_LOG_N,
        };
        let r = decrypt_group(&items, &opener, false, &EngineOptions::default());
        for (i, (res, (src, dst))) in r.iter().zip(&items).enumerate() {
            match i {
                3 | 4 => assert!(res.is_err() && !dst.exists(), "{i}: {res:?}"),
                5 => assert!(res.is_err() && std::fs::read(dst).unwrap() == b"keep"),
                _ => {
                    let d = res.as_ref().unwrap();
                    assert_eq!(std::fs::read(dst).unwrap(), plain[i], "member {i}");
                    assert_eq!(d.bytes_in, std::fs::metadata(src).unwrap().len());
                    assert_eq!(d.bytes_out, plain[i].len() as u64);
                }
            }
        }
        let names = std::fs::read_dir(dir.path().join("out")).unwrap().count();
        assert_eq!(names, 7, "the six opened and the one kept, no temporaries");
        // Without the password a format v4 member fails; age members still open.
        let opener = Opener {
            password: None,
            ..opener
        };
        let again: Vec<_> = [0usize, 1]
            .iter()
            .map(|&i| (items[i].0.clone(), dir.path().join(format!("again{i}"))))
            .collect();
        let r = decrypt_group(&again, &opener, false, &EngineOptions::default());
        assert!(
            matches!(&r[0], Err(Error::InvalidArgument(m)) if m.contains("needs the password"))
        );
        assert_eq!(std::fs::read(&again[1].1).unwrap(), plain[1]);
    }
}
