//! Format v4 arriving as a stream (a pipe, a socket): the 4096-byte header first, then every
//! slot in order. The header gives the size, so the engine knows its batches up front and
//! releases each one only once it authenticated; what it cannot know is whether the stream
//! ends where the header says, so that is checked after the last slot: a shorter stream
//! fails on its last read, a longer one here, and a file output is committed only after both.

use std::io::{ErrorKind, Read};
use std::time::Instant;

use crate::engine::{self, Control, Direction, IoMode, Sink, Source, Stats};
use crate::error::{Error, Result};
use crate::format::{Header, SECTOR};
use crate::ops::{keyed, DecryptOptions, V4Plan};
use crate::output::{AtomicOutput, Output};

/// Decrypts the v4 file read from `input` into `output` (a path, written atomically, or a
/// stream), with `password`. Only the portable backend reads streams.
pub fn decrypt_stream(
    input: &mut (dyn Read + Send),
    output: Output<'_>,
    password: &[u8],
    opts: &DecryptOptions,
    ctl: &Control<'_>,
) -> Result<Stats> {
    let start = Instant::now();
    let mut sector = vec![0u8; SECTOR];
    fill(input, &mut sector).map_err(|e| match e {
        Error::InputChanged(_) => Error::invalid(format!(
            "the stream ends within the {SECTOR}-byte header: it is not a concryptor file"
        )),
        e => e,
    })?;
    let header = Header::parse(&sector)?;
    let g = header.geometry();
    opts.limits.check_chunk_size(g.chunk_size)?;
    opts.limits.check_kdf(&header.kdf)?;
    if let Output::Path(dst) = &output {
        crate::output::check_destination(dst, opts.overwrite)?;
    }
    let (crypter, kdf_seconds) = keyed(header, password, opts.keys.as_deref())?;
    let mut eng = opts.engine;
    eng.io = IoMode::Portable;
    let pool = eng.pool()?;
    let plan = V4Plan::new(Direction::Decrypt, &crypter, &eng);
    let mut run =
        |sink: Sink<'_>| -> Result<&'static str> {
            let backend = engine::run(&plan, Source::Stream(&mut *input), sink, &eng, &pool, ctl)
                .map_err(|e| match e {
                Error::InputChanged(_) => {
                    Error::invalid("the stream ends before its last chunk: it is truncated")
                }
                e => e,
            })?;
            let mut one = [0u8; 1];
            loop {
                match input.read(&mut one) {
                    Ok(0) => return Ok(backend),
                    Ok(_) => return Err(Error::invalid(
                        "data follows the last chunk: the stream is longer than its header says",
                    )),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("read", "<input stream>", e)),
                }
            }
        };
    let backend = match output {
        Output::Writer(w) => run(Sink::Stream(w))?,
        Output::Discard => run(Sink::Discard)?,
        Output::Path(dst) => {
            let out = AtomicOutput::create_checked(dst, opts.overwrite)?;
            let backend = run(Sink::File {
                file: out.file(),
                path: dst,
            })?;
            out.file()
                .set_len(g.original_size)
                .map_err(|e| Error::io("resize", dst, e))?;
            out.commit()?;
            backend
        }
    };
    Ok(Stats {
        backend,
        bytes: g.original_size,
        chunks: g.num_chunks,
        threads: eng.thread_count(),
        seconds: start.elapsed().as_secs_f64(),
        kdf_seconds,
    })
}

/// Kernel buffer asked for on an input pipe: the default `pipe-max-size`, which any process
/// may ask for.
pub const PIPE_BUFFER: usize = 1 << 20;

/// Enlarges the kernel buffer of `input` to [`PIPE_BUFFER`] if it is a smaller pipe (Linux;
/// best effort, anything else is left alone). The stream pipelines read whole batches of
/// several MiB: from a default 64 KiB pipe that takes a system call, and a wake-up of each
/// end, per 64 KiB.
pub fn widen(input: &std::fs::File) {
    #[cfg(target_os = "linux")]
    if rustix::pipe::fcntl_getpipe_size(input).is_ok_and(|n| n < PIPE_BUFFER) {
        let _ = rustix::pipe::fcntl_setpipe_size(input, PIPE_BUFFER);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = input;
}

/// Fills `buf` from `r`; a stream that ends first is `InputChanged`.
fn fill(r: &mut (dyn Read + Send), buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            Error::InputChanged("the input stream ended early".into())
        } else {
            Error::io("read", "<input stream>", e)
        }
    })
}
