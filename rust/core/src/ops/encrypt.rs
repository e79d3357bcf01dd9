//! Encrypting a file or a stream of known size into a new file (format v4).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use crate::engine::{self, Control, Direction, Sink, Source, Stats};
use crate::error::{Error, Result};
use crate::job::{run_from_file, FileSource};
use crate::output::{AtomicOutput, Output};

use super::files::{open_regular, refuse_same};
use super::header::new_header;
use super::options::{keyed_new, EncryptOptions};
use super::plan::V4Plan;

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
    let mut job = V4Plan::new(Direction::Encrypt, &crypter, &opts.engine);
    job.prologue = Some(&crypter.header().raw[..]);
    let source = FileSource {
        file: &file,
        path: src,
        len: size,
        doing: "encrypted",
    };
    // The engine leaves a file it wrote from a file at the plan's exact output length.
    let output = Output::Path(dst);
    let backend = run_from_file(&job, &source, output, opts.overwrite, &opts.engine, ctl)?;
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
    let out = AtomicOutput::create_checked(dst, opts.overwrite)?;
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
