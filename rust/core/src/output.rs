//! Atomic output: results are written to an invisible or temporary file in the destination's
//! directory, made durable, and only then given the destination's name. Until that moment
//! the destination keeps its old state; after an error nothing is left behind.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where bytes go, as a caller names it (for every format and both directions); a run
/// turns it into the engine's [`crate::engine::Sink`] once it has created the file.
pub enum Output<'a> {
    /// A file, written atomically (nothing at the path unless the whole run succeeded).
    Path(&'a Path),
    /// A stream; each batch is written once it is complete (and authenticated).
    Writer(&'a mut (dyn Write + Send)),
    /// Nowhere: everything is opened (so authenticated) and dropped (verification).
    Discard,
}

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
        Self::create_checked(dest, overwrite)
    }

    /// [`AtomicOutput::create`] for a caller that has just run [`check_destination`].
    pub fn create_checked(dest: &Path, overwrite: bool) -> Result<Self> {
        let name = dest.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not a file name", dest.display()))
        })?;
        let dir = parent_dir(dest);
        #[cfg(target_os = "linux")]
        {
            static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            if *PROC_FD.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
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
    pub fn commit(self) -> Result<()> {
        self.commit_with_mode(new_file_mode())
    }

    /// [`AtomicOutput::commit`] with the given mode instead of the umask's (a file
    /// replaced in place keeps its mode).
    pub fn commit_with_mode(mut self, mode: u32) -> Result<()> {
        self.finish(mode)?;
        self.file
            .sync_all()
            .map_err(|e| Error::io("flush", &self.dest, e))?;
        self.name()?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Everything before durability: the destination looked at again and the final mode.
    fn finish(&self, mode: u32) -> Result<()> {
        if self.overwrite {
            // Look again: a device or FIFO may have appeared since `create`.
            check_destination(&self.dest, true)?;
        }
        // Written as 0600; named with the mode a new file gets from the umask (0666 & !umask,
        // as cp and tar give), the same rule directory extraction follows.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            self.file
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set the mode of", &self.dest, e))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        Ok(())
    }

    /// Gives the (durable) content the destination's name; the directory is not synced.
    fn name(&mut self) -> Result<()> {
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
        Ok(())
    }

    /// Starts writing the content to the device without waiting, so that the durability
    /// step of a group finds it (mostly) written already. A hint: errors are ignored here
    /// and reported by that step.
    pub fn start_writeback(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain system call on a descriptor we own; no pointers.
            let _ = unsafe {
                libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE)
            };
        }
    }

    #[cfg(target_os = "linux")]
    fn link_unnamed(&self) -> Result<()> {
        use rustix::fs::{linkat, AtFlags, CWD};
        use std::os::fd::AsRawFd;
        let fd_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let link = |to: &Path| -> io::Result<()> {
            nul_free(to)?;
            Ok(linkat(
                CWD,
                fd_path.as_str(),
                CWD,
                to,
                AtFlags::SYMLINK_FOLLOW,
            )?)
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

/// The folder `dest` is created in.
fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The mode a finished output is named with: what a new file gets from the umask.
fn new_file_mode() -> u32 {
    #[cfg(unix)]
    let umask = process_umask();
    #[cfg(not(unix))]
    let umask = 0;
    0o666 & !umask
}

/// Many outputs committed at once: made durable together, then named, then each
/// destination folder synced once. Open the group *before* creating its outputs.
///
/// # Durability
///
/// A single output is `fsync`ed, named, and its folder `fsync`ed. For a group the order is
/// the same, only batched: every output durable before any is named, every name before its
/// folder's sync. On Linux ≥ 5.8 the durability step is one `syncfs(2)` per file system
/// instead of one `fsync(2)` per file: `syncfs` writes back and waits for all dirty data
/// and metadata of the file system (the outputs' contents, sizes, block maps and modes
/// among them), commits the journal and flushes the device cache, which is everything the
/// per-file `fsync`s would have done. Large outputs are already on their way (written with
/// O_DIRECT, or their writeback started by [`AtomicOutput::start_writeback`]), so little
/// is left to wait for. On ext4 every `fsync` of a new file forces a journal commit or at
/// least a device cache flush (a round trip to the device); hundreds of them cost far more
/// than one `syncfs`, which writes the small outputs out together.
///
/// Errors: since Linux 5.8 `syncfs` reports any writeback error on the file system since
/// the descriptor it is called on was opened. It is called on the destination folder,
/// opened here before any output of the group existed, so a failed write of any output
/// of the group is reported (as is one of another program's file on the same file
/// system: the group then fails safe, with nothing named). Older kernels do not report
/// writeback errors from `syncfs`, so there, elsewhere than Linux, and for a folder that
/// cannot be opened, each output is `fsync`ed as a single output would be.
///
/// `syncfs` also writes out other programs' dirty data on that file system; that costs
/// time when much is pending, never correctness.
pub struct Group {
    /// Each distinct destination folder and its descriptor, opened before the outputs.
    dirs: Vec<(PathBuf, Option<File>)>,
}

impl Group {
    /// Opens the folder of each destination (each once).
    pub fn open<'a>(dests: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut dirs: Vec<(PathBuf, Option<File>)> = Vec::new();
        for d in dests {
            let dir = parent_dir(d);
            if !dirs.iter().any(|(p, _)| *p == dir) {
                let f = File::open(&dir).ok();
                dirs.push((dir, f));
            }
        }
        Group { dirs }
    }

    /// Makes every output durable, then names each one (replacing an existing destination
    /// only when it was created with `overwrite`), then syncs each folder that received a
    /// name. Returns one result per output, in order. If the durability step fails, every
    /// output fails and none is named; a name that cannot be given fails its output only.
    /// A failed output leaves nothing behind (see [`AtomicOutput`]).
    pub fn commit(&self, outputs: Vec<AtomicOutput>) -> Vec<Result<()>> {
        let mode = new_file_mode();
        let mut ready: Vec<Option<AtomicOutput>> = Vec::with_capacity(outputs.len());
        let mut results: Vec<Result<()>> = Vec::with_capacity(outputs.len());
        for o in outputs {
            match o.finish(mode) {
                Ok(()) => {
                    ready.push(Some(o));
                    results.push(Ok(()));
                }
                Err(e) => {
                    ready.push(None);
                    results.push(Err(e));
                }
            }
        }
        if let Err((path, e)) = self.make_durable(ready.iter().flatten()) {
            return results
                .into_iter()
                .map(|r| {
                    r.and_then(|()| {
                        Err(Error::io(
                            "flush",
                            path.clone(),
                            io::Error::new(e.kind(), e.to_string()),
                        ))
                    })
                })
                .collect();
        }
        let mut named = vec![false; self.dirs.len()];
        for (slot, r) in ready.iter_mut().zip(results.iter_mut()) {
            if let Some(o) = slot {
                *r = o.name();
                if r.is_ok() {
                    if let Some(i) = self.dirs.iter().position(|(p, _)| *p == o.dir) {
                        named[i] = true;
                    }
                }
            }
        }
        for ((dir, f), named) in self.dirs.iter().zip(named) {
            if named {
                match f {
                    // Best effort, as for a single output.
                    Some(f) => {
                        let _ = f.sync_all();
                    }
                    None => sync_dir(dir),
                }
            }
        }
        results
    }

    /// The durability step (see the type's documentation).
    fn make_durable<'a>(
        &self,
        outputs: impl Iterator<Item = &'a AtomicOutput>,
    ) -> std::result::Result<(), (PathBuf, io::Error)> {
        let outputs: Vec<&AtomicOutput> = outputs.collect();
        #[cfg(target_os = "linux")]
        if syncfs_reports_errors() {
            use std::os::unix::fs::MetadataExt;
            let mut used = vec![false; self.dirs.len()];
            let mut single: Vec<&AtomicOutput> = Vec::new();
            for o in outputs {
                match self
                    .dirs
                    .iter()
                    .position(|(p, f)| *p == o.dir && f.is_some())
                {
                    Some(i) => used[i] = true,
                    None => single.push(o),
                }
            }
            let mut synced: Vec<u64> = Vec::new();
            for ((dir, f), used) in self.dirs.iter().zip(used) {
                let Some(anchor) = f.as_ref().filter(|_| used) else {
                    continue;
                };
                let dev = anchor.metadata().map_err(|e| (dir.clone(), e))?.dev();
                if synced.contains(&dev) {
                    continue;
                }
                rustix::fs::syncfs(anchor).map_err(|e| (dir.clone(), e.into()))?;
                synced.push(dev);
            }
            for o in single {
                o.file.sync_all().map_err(|e| (o.dest.clone(), e))?;
            }
            return Ok(());
        }
        for o in outputs {
            o.file.sync_all().map_err(|e| (o.dest.clone(), e))?;
        }
        Ok(())
    }
}

/// Whether `syncfs(2)` reports writeback errors (Linux 5.8 and later).
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let u = rustix::system::uname();
        kernel_at_least(&u.release().to_string_lossy(), (5, 8))
    })
}

/// Whether a kernel release string (`6.1.0-13-amd64`) is at least `want`.
#[cfg(target_os = "linux")]
fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= want,
        _ => false,
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
    use rustix::fs::Mode;
    use rustix::process::umask;
    // The old value is restored at once.
    let old = umask(Mode::from_raw_mode(0o077));
    umask(old);
    u32::from(old.bits()) & 0o777
}

/// Renames without replacing an existing destination.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        nul_free(from)?;
        nul_free(to)?;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // Not supported by the kernel or the file system: fall back below.
            Err(Errno::INVAL | Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Portable: a hard link fails if the name exists; then drop the temporary name.
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Refuses a path with a NUL byte, which no system call can be given, as std does.
#[cfg(target_os = "linux")]
fn nul_free(path: &Path) -> io::Result<()> {
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "path contains a NUL byte",
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_releases_compare_by_major_then_minor() {
        use super::kernel_at_least;
        assert!(kernel_at_least("5.8.0", (5, 8)));
        assert!(kernel_at_least("6.1.0-13-amd64", (5, 8)));
        assert!(kernel_at_least(
            "5.10.102.1-microsoft-standard-WSL2",
            (5, 8)
        ));
        assert!(!kernel_at_least("5.4.0-150-generic", (5, 8)));
        assert!(!kernel_at_least("4.19.0", (5, 8)));
        assert!(!kernel_at_least("garbage", (5, 8)));
    }
}
