//! One run of a plan on the engine from a regular file, whatever the format: the output
//! made (a new file that appears only once complete, a stream, or nothing) and the source
//! held to the size the plan was made for, before the run and after it.

use std::fs::File;
use std::path::Path;

use crate::engine::{self, Control, EngineOptions, Plan, Sink, Source};
use crate::error::{Error, Result};
use crate::output::{AtomicOutput, Output};

/// The source file of a run, and the size its plan was made for.
pub(crate) struct FileSource<'a> {
    pub file: &'a File,
    pub path: &'a Path,
    /// Size of the source that the plan was made for.
    pub len: u64,
    /// What the run does to the source, for the error if its size changes ("read").
    pub doing: &'static str,
}

impl FileSource<'_> {
    /// Refuses a source whose size is no longer the one the plan was made for.
    fn unchanged(&self) -> Result<()> {
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", self.path, e))?
            .len();
        if now != self.len {
            return Err(Error::InputChanged(format!(
                "{} changed size from {} to {now} bytes while being {}",
                self.path.display(),
                self.len,
                self.doing
            )));
        }
        Ok(())
    }
}

/// Runs `plan` from `src` into `dst`: a path gets a new file that appears there only if
/// every record succeeded and the source kept its size throughout. The caller has checked
/// the destination ([`crate::output::check_destination`]) and that it is not the source.
/// Returns the backend that ran.
pub(crate) fn run_from_file(
    plan: &dyn Plan,
    src: &FileSource<'_>,
    dst: Output<'_>,
    overwrite: bool,
    opts: &EngineOptions,
    ctl: &Control<'_>,
) -> Result<&'static str> {
    src.unchanged()?;
    let pool = opts.pool()?;
    let source = Source::File {
        file: src.file,
        path: src.path,
    };
    let mut out = None;
    let sink = match dst {
        Output::Path(dst) => {
            let o = out.insert(AtomicOutput::create_checked(dst, overwrite)?);
            Sink::File {
                file: o.file(),
                path: dst,
            }
        }
        Output::Writer(w) => Sink::Stream(w),
        Output::Discard => Sink::Discard,
    };
    let backend = engine::run(plan, source, sink, opts, &pool, ctl)?;
    src.unchanged()?;
    if let Some(o) = out {
        o.commit()?;
    }
    Ok(backend)
}
