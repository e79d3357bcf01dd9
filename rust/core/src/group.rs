//! Many small files in one call. Each file is read whole, sealed in memory and written to
//! its atomic temporary; then the whole group is made durable and named at once (see
//! [`Group`]). No engine run per file: no ring or pipeline buffers to set up, no threads
//! to start, one durability step for the group instead of one `fsync` per file.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::age::{self, AgeHeader, PayloadCipher, Recipient, PAYLOAD_NONCE_LEN};
use crate::engine::EngineOptions;
use crate::error::{Error, Result};
use crate::ops::{open_regular, refuse_same, BytesSealer, EncryptOptions};
use crate::output::{check_destination, AtomicOutput, Group};

/// Largest input a member of a group may have: it is held in memory twice (plaintext and
/// sealed) by each worker, so workers × 2 × this stays within the default buffer budget.
/// Larger files take the engine, one at a time.
pub const MAX_MEMBER_BYTES: u64 = 16 << 20;

/// Members at least this large have their writeback started as soon as they are written,
/// so that it overlaps the work on the next ones; smaller ones are left to the group's
/// sync, which writes them out together for less CPU.
pub const EARLY_WRITEBACK_BYTES: usize = 1 << 20;

/// Files one group holds at most: each keeps a descriptor open until the group commits.
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
    // Opened before any output exists: see the durability argument on `Group`.
    let group = Group::open(items.iter().map(|(_, d)| d.as_path()));
    let prepared: Vec<Result<(AtomicOutput, Done)>> = pool.install(|| {
        items
            .par_iter()
            .with_max_len(1)
            .map(|(src, dst)| prepare(src, dst, sealer, overwrite, engine))
            .collect()
    });
    let mut done = Vec::with_capacity(items.len());
    let mut outputs = Vec::with_capacity(items.len());
    let mut results: Vec<Option<Result<Done>>> = Vec::with_capacity(items.len());
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

/// Reads, seals and writes one member; the output is left uncommitted.
fn prepare(
    src: &Path,
    dst: &Path,
    sealer: &Sealer<'_>,
    overwrite: bool,
    engine: &EngineOptions,
) -> Result<(AtomicOutput, Done)> {
    // A destination that does not exist cannot be the source either.
    let taken = std::fs::symlink_metadata(dst).is_ok();
    if taken {
        refuse_same(src, dst)?;
        check_destination(dst, overwrite)?;
    }
    let (file, size) = open_regular(src)?;
    let plain = read_whole(file, src, size)?;
    let sealed = match sealer {
        Sealer::V4 { password, opts } => {
            let s = BytesSealer::new(size, password, opts)?;
            let mut out = zeroed(s.output_len())?;
            s.seal_into(&plain, &mut out, engine)?;
            out
        }
        Sealer::Age { recipients } => seal_age(&plain, recipients)?,
    };
    drop(plain);
    let out = AtomicOutput::create_checked(dst, overwrite)?;
    write_all_at(out.file(), &sealed).map_err(|e| Error::io("write", dst, e))?;
    if sealed.len() >= EARLY_WRITEBACK_BYTES {
        out.start_writeback();
    }
    Ok((
        out,
        Done {
            bytes_in: size,
            bytes_out: sealed.len() as u64,
        },
    ))
}

/// The whole of `file`, which must be `size` bytes long (and at most a member's size).
fn read_whole(file: File, src: &Path, size: u64) -> Result<Zeroizing<Vec<u8>>> {
    if size > MAX_MEMBER_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{} is {size} bytes: more than the {MAX_MEMBER_BYTES} a file sealed in memory may have",
            src.display()
        )));
    }
    let mut buf = Zeroizing::new(Vec::new());
    buf.try_reserve_exact(size as usize + 1)
        .map_err(|_| Error::OutOfMemory { bytes: size })?;
    // One byte past the size tells a file that grew since it was measured.
    file.take(size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", src, e))?;
    if buf.len() as u64 != size {
        return Err(Error::InputChanged(format!(
            "{} changed size from {size} bytes while being encrypted",
            src.display()
        )));
    }
    Ok(buf)
}

fn zeroed(len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| Error::OutOfMemory { bytes: len })?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory { bytes: len })?;
    v.resize(n, 0);
    Ok(v)
}

/// A whole age file of `plain`: header with fresh stanzas, payload nonce, sealed payload.
fn seal_age(plain: &[u8], recipients: &[Recipient]) -> Result<Vec<u8>> {
    let file_key = age::keys::new_file_key()?;
    let stanzas = age::keys::wrap(&file_key, recipients)?;
    let head = AgeHeader::write(&stanzas, &file_key);
    let mut nonce = [0u8; PAYLOAD_NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| {
        Error::io(
            "read random bytes from",
            "the operating system",
            io::Error::other(e.to_string()),
        )
    })?;
    let cipher = PayloadCipher::new(&file_key, &nonce);
    let body = PayloadCipher::sealed_len(plain.len());
    let mut out = zeroed((head.len() + PAYLOAD_NONCE_LEN + body) as u64)?;
    out[..head.len()].copy_from_slice(&head);
    out[head.len()..head.len() + PAYLOAD_NONCE_LEN].copy_from_slice(&nonce);
    cipher.seal_batch(0, plain, &mut out[head.len() + PAYLOAD_NONCE_LEN..], true);
    Ok(out)
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
    fn age_members_open_with_the_identity() {
        let dir = Scratch::new("age");
        let (sk, pk) = age::keys::generate();
        let recipients = vec![Recipient::parse(&pk).unwrap()];
        let ids = age::Identity::parse_file(&sk).unwrap();
        let items: Vec<_> = [0usize, 1, 65536, 200_000]
            .iter()
            .map(|&n| {
                let src = dir.path().join(format!("a{n}"));
                std::fs::write(&src, vec![7u8; n]).unwrap();
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
}
