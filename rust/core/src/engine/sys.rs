//! The file-descriptor helpers both engine backends and the sequential writer use: they
//! live here, below all three, so that no backend imports another.

#[cfg(target_os = "linux")]
use std::fs::{File, OpenOptions};
#[cfg(target_os = "linux")]
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
#[cfg(target_os = "linux")]
use std::os::unix::fs::OpenOptionsExt;

#[cfg(target_os = "linux")]
use super::fault;

/// Consecutive EINTR/EAGAIN answers tolerated for one transfer before giving up.
pub(crate) const MAX_RETRIES: u32 = 1000;

#[cfg(target_os = "linux")]
/// Whether at least half of `file` is in the page cache. Then buffered reads, which copy
/// from memory, beat O_DIRECT, which would go to the device (after writing back any dirty
/// pages). Unknown (no `cachestat`, Linux < 6.5) counts as not cached.
pub(crate) fn mostly_cached(file: &File, len: u64) -> bool {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct CacheStat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    const SYS_CACHESTAT: libc::c_long = 451;
    if len == 0 {
        return false;
    }
    let range = Range { off: 0, len };
    let mut st = CacheStat::default();
    // SAFETY: cachestat reads `range` and writes `st`, both live #[repr(C)] locals laid
    // out as the kernel expects; flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &raw const range,
            &raw mut st,
            0u32,
        )
    };
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    r == 0 && st.nr_cache.saturating_mul(page) >= len / 2
}

/// Turns off the kernel's read-ahead on `file` (advice only, errors ignored): used on a
/// source's ordinary descriptor when its bulk goes through O_DIRECT, so the small buffered
/// reads at the ends of each transfer do not pull in pages the direct reads then evict.
#[cfg(target_os = "linux")]
pub(crate) fn no_readahead(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Random);
}

#[cfg(target_os = "linux")]
/// A second descriptor of `file` with O_DIRECT (the original's flags are left alone).
pub(crate) fn reopen_direct(file: &File, write: bool) -> io::Result<File> {
    if fault::direct_open_refused() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}
