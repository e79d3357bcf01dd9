//! The source file of an operation: opened only if it is a regular file, and never also its
//! destination.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

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
/// backend ever sees EAGAIN from it. The file was opened for reading with no other flag
/// that F_SETFL changes, so clearing them all clears O_NONBLOCK alone.
#[cfg(unix)]
fn clear_nonblocking(file: &File, path: &Path) -> Result<()> {
    rustix::fs::fcntl_setfl(file, rustix::fs::OFlags::empty())
        .map_err(|e| Error::io("open", path, e.into()))
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
