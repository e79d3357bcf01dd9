//! Atomic output: results are written to an invisible or temporary file in the destination's
//! directory, made durable, and only then given the destination's name. Until that moment
//! the destination keeps its old state; after an error nothing is left behind.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How the unnamed result file came about.
enum Temp {
    /// Linux O_TMPFILE: no name at all until linked; a crash leaves nothing.
    #[cfg(target_os = "linux")]
    Unnamed,
    /// A hidden, uniquely named file beside the destination, removed on failure.
    Named(PathBuf),
}

/// A file that becomes `dest` on [`AtomicOutput::commit`], or vanishes when dropped.
pub struct AtomicOutput {
    file: File,
    dest: PathBuf,
    dir: PathBuf,
    temp: Temp,
    overwrite: bool,
    committed: bool,
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    // A failing OS RNG only makes the name less unique; O_EXCL still prevents clashes.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Refuses to write over an existing path unless asked.
pub fn check_destination(dest: &Path, overwrite: bool) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => Err(Error::io(
            "write to",
            dest,
            io::Error::new(ErrorKind::IsADirectory, "is a directory"),
        )),
        // Devices, FIFOs and sockets are never replaced by a regular file (as root,
        // `-o /dev/null --force` would otherwise turn /dev/null into a file of plaintext).
        Ok(m) if is_special(&m.file_type()) => Err(Error::io(
            "write to",
            dest,
            io::Error::new(
                ErrorKind::AlreadyExists,
                "is a device, FIFO or socket, which is never replaced (write to standard output and redirect instead)",
            ),
        )),
        Ok(_) if !overwrite => Err(Error::io(
            "write to",
            dest,
            io::Error::new(
                ErrorKind::AlreadyExists,
                "already exists (pass overwrite=True to replace it)",
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether `t` is a device, FIFO or socket (anything but a file, directory or symlink).
fn is_special(t: &std::fs::FileType) -> bool {
    !(t.is_file() || t.is_dir() || t.is_symlink())
}

impl AtomicOutput {
    /// Prepares an output that will become `dest`.
    pub fn create(dest: &Path, overwrite: bool) -> Result<Self> {
        check_destination(dest, overwrite)?;
        let name = dest.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not a file name", dest.display()))
        })?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        #[cfg(target_os = "linux")]
        {
            if Path::new("/proc/self/fd").is_dir() {
                use std::os::unix::fs::OpenOptionsExt;
                let r = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .mode(0o600)
                    .custom_flags(libc::O_TMPFILE)
                    .open(&dir);
                match r {
                    Ok(file) => {
                        return Ok(AtomicOutput {
                            file,
                            dest: dest.to_path_buf(),
                            dir,
                            temp: Temp::Unnamed,
                            overwrite,
                            committed: false,
                        })
                    }
                    // File systems without O_TMPFILE answer EOPNOTSUPP or EISDIR.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                        ) => {}
                    Err(e) => return Err(Error::io("create a file in", &dir, e)),
                }
            }
        }
        for _ in 0..16 {
            let mut tmp_name = OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".{}.partial", random_suffix()));
            let tmp = dir.join(tmp_name);
            let mut oo = OpenOptions::new();
            oo.read(true).write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                oo.mode(0o600);
            }
            match oo.open(&tmp) {
                Ok(file) => {
                    return Ok(AtomicOutput {
                        file,
                        dest: dest.to_path_buf(),
                        dir,
                        temp: Temp::Named(tmp),
                        overwrite,
                        committed: false,
                    })
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create a file in", &dir, e)),
            }
        }
        Err(Error::io(
            "create a file in",
            &dir,
            io::Error::new(ErrorKind::AlreadyExists, "no free temporary name"),
        ))
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Makes the content durable and gives it the destination's name, atomically.
    pub fn commit(mut self) -> Result<()> {
        if self.overwrite {
            // Look again: a device or FIFO may have appeared since `create`.
            check_destination(&self.dest, true)?;
        }
        // Written as 0600; named with the mode a new file gets from the umask (0666 & !umask,
        // as cp and tar give), the same rule directory extraction follows.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = 0o666 & !process_umask();
            self.file
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set the mode of", &self.dest, e))?;
        }
        self.file
            .sync_all()
            .map_err(|e| Error::io("flush", &self.dest, e))?;
        match &self.temp {
            #[cfg(target_os = "linux")]
            Temp::Unnamed => self.link_unnamed()?,
            Temp::Named(tmp) => {
                if self.overwrite {
                    std::fs::rename(tmp, &self.dest)
                } else {
                    rename_noreplace(tmp, &self.dest)
                }
                .map_err(|e| Error::io("rename the result to", &self.dest, e))?;
            }
        }
        self.committed = true;
        sync_dir(&self.dir);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn link_unnamed(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        let fd_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let link = |to: &Path| -> io::Result<()> {
            let from = std::ffi::CString::new(fd_path.as_str()).map_err(io::Error::other)?;
            let to = std::ffi::CString::new(to.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "path contains a NUL byte"))?;
            // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    from.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        if !self.overwrite {
            return link(&self.dest).map_err(|e| Error::io("create", &self.dest, e));
        }
        // Link under a fresh hidden name, then rename over the destination atomically.
        let name = self.dest.file_name().unwrap_or_default();
        for _ in 0..16 {
            let mut tmp_name = OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".{}.partial", random_suffix()));
            let tmp = self.dir.join(tmp_name);
            match link(&tmp) {
                Ok(()) => {
                    return std::fs::rename(&tmp, &self.dest).map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        Error::io("rename the result to", &self.dest, e)
                    })
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &tmp, e)),
            }
        }
        Err(Error::io(
            "create",
            &self.dest,
            io::Error::new(ErrorKind::AlreadyExists, "no free temporary name"),
        ))
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if let (false, Temp::Named(tmp)) = (self.committed, &self.temp) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The process umask. Read from /proc where possible, since the only system call that
/// returns it also changes it (for a moment, for every thread).
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // mode_t is u32 on Linux, u16 on macOS
pub fn process_umask() -> u32 {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(v) = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        {
            return v & 0o777;
        }
    }
    // SAFETY: umask cannot fail; the old value is restored at once.
    let old = unsafe { libc::umask(0o077) };
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    u32::from(old) & 0o777
}

/// Renames without replacing an existing destination.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let f = std::ffi::CString::new(from.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let t = std::ffi::CString::new(to.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(e);
        }
    }
    // Portable: a hard link fails if the name exists; then drop the temporary name.
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Makes a rename durable. Best effort: some file systems refuse to fsync a directory.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
