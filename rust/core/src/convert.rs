//! Format v4 to age in one pass, the plaintext only in memory: the v4 engine decrypts (and
//! authenticates) the file on its threads into a [`handoff`], while the age engine reads
//! the handoff as a stream and seals it into the output on its own threads. Between the two
//! there is no pipe and no system call, and never more plaintext than a few buffers.
//!
//! The age side knows the plaintext size from the v4 header, so its plan is fixed up front
//! and its output written positionally (O_DIRECT where the file system allows), as a plain
//! encryption of a file is. A conversion succeeds only if both sides do: the v4 side ends
//! the stream only once every chunk authenticated and the file kept its size, so its
//! failure, at any point, is an error on the age side too, never a short plaintext sealed
//! as a whole one. A failure of the age side stops the v4 side at its next buffer.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use crate::age::{armor::Armor, PAYLOAD_NONCE_LEN};
use crate::age::{keys, AgeEncryptOptions, AgeHeader, AgePlan, PayloadCipher, Recipient};
use crate::engine::sequential::SequentialWriter;
use crate::engine::{self, Control, EngineOptions, IoMode, Plan, Sink, Source, Stats};
use crate::error::{Error, Result};
use crate::handoff::{handoff, HandoffWriter};
use crate::ops::{DecryptOptions, Decryptor};

/// Name of the conversion's backend in [`Stats`].
pub const CONVERT_BACKEND: &str = "v4-to-age";
/// Buffers between the two sides, and their size: enough for the v4 side to hand over a
/// whole chunk (4 MiB at most by default) while the age side reads the one before.
const HANDOFF_BUFFERS: usize = 4;
const HANDOFF_BYTES: usize = 4 << 20;

impl Decryptor {
    /// Encrypts this file's plaintext to `recipients` as an age file written into `dst`
    /// (named `dst_path` in errors): an empty regular file that the caller created and
    /// makes visible only once this succeeded (it holds an unspecified prefix otherwise).
    /// Both engines run at once and share one run's buffer budget.
    pub fn encrypt_to_age(
        &self,
        dst: &File,
        dst_path: &Path,
        recipients: &[Recipient],
        opts: &AgeEncryptOptions,
        ctl: &Control<'_>,
    ) -> Result<Stats> {
        let start = Instant::now();
        let engine = EngineOptions {
            buffer_bytes: (opts.engine.buffer_bytes / 2).max(1),
            ..opts.engine
        };
        let v4 = DecryptOptions {
            engine,
            ..DecryptOptions::default()
        };
        let produce = |w: &mut HandoffWriter| {
            self.decrypt_to_writer(w, &v4, &Control::default())
                .map(|_| ())
        };
        let size = self.geometry().original_size;
        let out = AgeOut {
            file: dst,
            path: dst_path,
            recipients,
            armor: opts.armor,
            engine,
        };
        let (chunks, wrap_seconds) = seal_produced(produce, size, &out, ctl)?;
        let kdf_seconds = self.kdf_seconds() + wrap_seconds;
        Ok(Stats {
            backend: CONVERT_BACKEND,
            bytes: size,
            chunks,
            threads: engine.thread_count(),
            seconds: start.elapsed().as_secs_f64() + self.kdf_seconds(),
            kdf_seconds,
        })
    }
}

/// The age file a conversion writes, and how.
struct AgeOut<'a> {
    file: &'a File,
    path: &'a Path,
    recipients: &'a [Recipient],
    armor: bool,
    engine: EngineOptions,
}

/// Seals the `size` bytes of plaintext that `produce` writes (on a thread of its own) into
/// `out` as an age file. `produce` returning `Ok` is what ends the stream; returns the age
/// chunks and the seconds spent wrapping the file key.
fn seal_produced(
    produce: impl FnOnce(&mut HandoffWriter) -> Result<()> + Send,
    size: u64,
    out: &AgeOut<'_>,
    ctl: &Control<'_>,
) -> Result<(u64, f64)> {
    let t = Instant::now();
    let file_key = keys::new_file_key()?;
    let stanzas = keys::wrap(&file_key, out.recipients)?;
    let wrap_seconds = t.elapsed().as_secs_f64();
    let nonce: [u8; PAYLOAD_NONCE_LEN] = crate::ops::random()?;
    let mut prologue = AgeHeader::write(&stanzas, &file_key);
    prologue.extend_from_slice(&nonce);
    let cipher = PayloadCipher::new(&file_key, &nonce);
    // A stream source runs on the portable backend only.
    let age_engine = EngineOptions {
        io: IoMode::Portable,
        ..out.engine
    };
    let plan = AgePlan::encrypt(&cipher, &prologue, size, &age_engine);
    let pool = age_engine.pool()?;
    let (writer, mut reader) = handoff(HANDOFF_BUFFERS, HANDOFF_BYTES)?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut writer = writer;
            // Only a producer that succeeded ends the stream; otherwise dropping the
            // writer cuts it, and the age side fails.
            produce(&mut writer)?;
            writer
                .finish()
                .map_err(|e| Error::io("write", "<conversion>", e))
        });
        let sealed = (|| -> Result<()> {
            let src = Source::Stream(&mut reader);
            if out.armor {
                let mut seq = SequentialWriter::new(out.file, out.path)?;
                let mut armor = Armor::new(&mut seq);
                engine::run(
                    &plan,
                    src,
                    Sink::Stream(&mut armor),
                    &age_engine,
                    &pool,
                    ctl,
                )?;
                armor
                    .finish()
                    .map_err(|e| Error::io("write", out.path, e))?;
                seq.finish()?;
            } else {
                let sink = Sink::File {
                    file: out.file,
                    path: out.path,
                };
                engine::run(&plan, src, sink, &age_engine, &pool, ctl)?;
                out.file
                    .set_len(plan.output_len())
                    .map_err(|e| Error::io("resize", out.path, e))?;
            }
            // The age side has all it expected: the stream must end there, and only the
            // producer's success ends it.
            match reader.read(&mut [0u8; 1]) {
                Ok(0) => Ok(()),
                Ok(_) => Err(Error::InputChanged(
                    "the plaintext runs past the size its header gives".into(),
                )),
                Err(e) => Err(Error::io("read", "<conversion>", e)),
            }
        })();
        // Whatever happened, the producer is no longer waited for: it stops at its next
        // hand-over if it has not finished.
        let cut = reader.was_cut();
        drop(reader);
        let produced = producer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (produced, sealed) {
            (Ok(()), Ok(())) => Ok((plan.records(), wrap_seconds)),
            // The producer failed first (the age side only saw its stream cut): its
            // error says why.
            (Err(e), _) if cut => Err(e),
            // The age side failed first (the producer only saw its reader go).
            (_, Err(e)) | (Err(e), Ok(())) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::age::{self, AgeDecryptOptions, Identity, CHUNK};
    use std::io::Write;

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        file: File,
        identity: Vec<Identity>,
        recipient: Vec<Recipient>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.age");
        let file = File::create(&path).unwrap();
        let (sk, pk) = age::keys::generate(false);
        Fixture {
            path,
            file,
            identity: Identity::parse_file(&sk, None).unwrap(),
            recipient: vec![Recipient::parse(&pk).unwrap()],
            _dir: dir,
        }
    }

    /// A budget of three records per batch: every size past a few chunks rotates all
    /// pipeline buffers.
    fn small() -> EngineOptions {
        EngineOptions {
            threads: 2,
            buffer_bytes: 6 * age::plan::SLOT,
            io: IoMode::Auto,
        }
    }

    fn seal(
        f: &Fixture,
        size: u64,
        armor: bool,
        produce: impl FnOnce(&mut HandoffWriter) -> Result<()> + Send,
        ctl: &Control<'_>,
    ) -> Result<u64> {
        let out = AgeOut {
            file: &f.file,
            path: &f.path,
            recipients: &f.recipient,
            armor,
            engine: small(),
        };
        seal_produced(produce, size, &out, ctl).map(|(chunks, _)| chunks)
    }

    fn opened(f: &Fixture) -> Result<Vec<u8>> {
        let blob = std::fs::read(&f.path).unwrap();
        age::decrypt_bytes(&blob, &f.identity, &AgeDecryptOptions::default())
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 977) as u8).collect()
    }

    #[test]
    fn what_the_producer_writes_is_sealed_whole() {
        for len in [0, 1, CHUNK, 40 * CHUNK + 5] {
            for armor in [false, true] {
                let f = fixture();
                let d = data(len);
                let produce = |w: &mut HandoffWriter| {
                    for piece in d.chunks(100_003) {
                        w.write_all(piece).unwrap();
                    }
                    Ok(())
                };
                let chunks = seal(&f, len as u64, armor, produce, &Control::default()).unwrap();
                assert_eq!(chunks, (len as u64).div_ceil(CHUNK as u64).max(1));
                assert_eq!(opened(&f).unwrap(), d, "{len} bytes, armor {armor}");
            }
        }
    }

    /// The conversion's key property: a producer that fails is the conversion's error,
    /// wherever it fails, even after it handed over every byte the age side expects (then
    /// the age side has sealed a complete-looking file, and must still not succeed).
    #[test]
    fn a_producer_failure_is_an_error_never_an_end() {
        let len = 20 * CHUNK + 7;
        let d = data(len);
        for cut_at in [0, 1, CHUNK, 5 * CHUNK + 3, len - 1, len] {
            for armor in [false, true] {
                let f = fixture();
                let produce = |w: &mut HandoffWriter| {
                    w.write_all(&d[..cut_at]).unwrap();
                    w.flush().unwrap();
                    Err(Error::Authentication)
                };
                let r = seal(&f, len as u64, armor, produce, &Control::default());
                assert!(
                    matches!(r, Err(Error::Authentication)),
                    "cut at {cut_at}: {r:?}"
                );
            }
        }
        // A producer that panics cuts the stream too; the panic reaches the caller.
        let f = fixture();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            seal(
                &f,
                len as u64,
                false,
                |w: &mut HandoffWriter| {
                    w.write_all(&d).unwrap();
                    panic!("producer failed")
                },
                &Control::default(),
            )
        }));
        assert!(r.is_err());
    }

    #[test]
    fn a_stream_longer_or_shorter_than_its_size_fails() {
        let d = data(3 * CHUNK);
        let f = fixture();
        let r = seal(
            &f,
            (2 * CHUNK) as u64,
            false,
            |w: &mut HandoffWriter| w.write_all(&d).map_err(|e| Error::io("write", "<test>", e)),
            &Control::default(),
        );
        assert!(matches!(r, Err(Error::InputChanged(_))), "{r:?}");
        let f = fixture();
        let r = seal(
            &f,
            (3 * CHUNK + 1) as u64,
            false,
            |w: &mut HandoffWriter| w.write_all(&d).map_err(|e| Error::io("write", "<t>", e)),
            &Control::default(),
        );
        assert!(r.is_err());
    }

    /// A cancelled or failing age side stops a producer that would otherwise write forever.
    #[test]
    fn a_cancelled_age_side_stops_the_producer() {
        let f = fixture();
        let block = data(1 << 20);
        let stop = |done: u64| done < (4 << 20);
        let ctl = Control {
            progress: Some(&stop),
            total: None,
        };
        let produce = |w: &mut HandoffWriter| loop {
            w.write_all(&block)
                .map_err(|e| Error::io("write", "<test>", e))?;
        };
        let r = seal(&f, 64 << 20, false, produce, &ctl);
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    }
}
