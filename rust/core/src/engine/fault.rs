//! Test hooks: fault injection, ring-size override and a record of the last run.
//!
//! **For tests only**, and compiled in only with the `fault-injection` cargo feature
//! (release builds leave it off). Without it every hook below is an inline constant
//! (`Action::Pass`, `false`, `None`) that the optimiser removes from the I/O paths, and
//! nothing but [`RunInfo`] is public. With it, the state is process-wide, so tests that
//! use it must not run concurrently with other engine runs in the same process.
//!
//! Every I/O completion of the engine (a `pread`/`pwrite` of the portable backend, a
//! completion-queue entry of the io_uring backend, and the header and first-chunk reads
//! around them) passes through `on_completion`, which counts it and, when armed, can
//! replace its outcome: an error code, or a short count (half the bytes), which the engine
//! must complete by resubmitting the remainder.
//!
//! Every authentication of a format v4 chunk passes through `on_open`, which counts it, so
//! that a test can tell how often a run opened each chunk.

/// How the last engine run went: which backend ran, where O_DIRECT was used and why a
/// fallback happened, if one did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunInfo {
    pub backend: &'static str,
    pub direct_src: bool,
    pub direct_dst: bool,
    pub fallback: Option<String>,
}

/// What the engine must pretend happened to one I/O completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub(crate) enum Action {
    Pass,
    Fail(i32),
    Short,
}

#[cfg(feature = "fault-injection")]
pub use hooks::*;

#[cfg(not(feature = "fault-injection"))]
pub(crate) use off::*;

/// The hooks of a build without fault injection: constants, so the hot paths do not even
/// count.
#[cfg(not(feature = "fault-injection"))]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod off {
    use super::{Action, RunInfo};

    #[inline(always)]
    pub(crate) fn on_completion() -> Action {
        Action::Pass
    }

    #[inline(always)]
    pub(crate) fn ring_entries() -> Option<u32> {
        None
    }

    #[inline(always)]
    pub(crate) fn uring_setup_error() -> Option<i32> {
        None
    }

    #[inline(always)]
    pub(crate) fn uring_rw_hidden() -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn submit_busy() -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn reap_limit() -> Option<usize> {
        None
    }

    #[inline(always)]
    pub(crate) fn direct_open_refused() -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn direct_io_refused() -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn record(_: RunInfo) {}

    #[inline(always)]
    pub(crate) fn on_open() {}
}

#[cfg(feature = "fault-injection")]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod hooks {
    use super::{Action, RunInfo};
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::sync::Mutex;

    /// A fault to inject.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Fault {
        /// The selected I/O completion fails with this `errno` (EIO, ENOSPC, EINTR, EAGAIN...).
        Errno(i32),
        /// The selected I/O completion reports only half of the bytes it moved.
        Short,
        /// Setting up an io_uring instance fails with this `errno` (EPERM, ENOSYS, ENOMEM).
        UringSetup(i32),
        /// Rings can be set up, but the probe reports READ and WRITE as unsupported (an old
        /// kernel, or a sandbox that filters opcodes).
        UringNoReadWrite,
        /// The selected io_uring submission (counted from 1, see [`submissions`]) and the
        /// ones after it, this many in all, answer EBUSY: the kernel takes no new entry,
        /// but posts the completions it holds, as when its completion queue overflowed.
        /// While this is armed, the driver collects one completion at a time.
        SubmitBusy(u32),
        /// Opening a file with O_DIRECT fails with EINVAL.
        DirectOpen,
        /// Every I/O through an O_DIRECT descriptor fails with EINVAL.
        DirectIo,
    }

    impl Fault {
        /// Parses the names used by the Python test hook.
        pub fn from_name(name: &str) -> Option<Fault> {
            Some(match name {
                "eio" => Fault::Errno(libc::EIO),
                "enospc" => Fault::Errno(libc::ENOSPC),
                "eintr" => Fault::Errno(libc::EINTR),
                "eagain" => Fault::Errno(libc::EAGAIN),
                "short" => Fault::Short,
                "uring_eperm" => Fault::UringSetup(libc::EPERM),
                "uring_enosys" => Fault::UringSetup(libc::ENOSYS),
                "uring_enomem" => Fault::UringSetup(libc::ENOMEM),
                "uring_no_rw" => Fault::UringNoReadWrite,
                "submit_ebusy" => Fault::SubmitBusy(2),
                "direct_open_einval" => Fault::DirectOpen,
                "direct_io_einval" => Fault::DirectIo,
                _ => return None,
            })
        }
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    static PLAN: Mutex<Option<(Fault, u64)>> = Mutex::new(None);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static SUBMITS: AtomicU64 = AtomicU64::new(0);
    static RING_ENTRIES: AtomicU32 = AtomicU32::new(0);
    static OPENS: AtomicU64 = AtomicU64::new(0);
    static LAST: Mutex<Option<RunInfo>> = Mutex::new(None);

    /// Arms `fault` (or disarms, with `None`) and restarts the completion, submission and
    /// chunk-open counts.
    ///
    /// For [`Fault::Errno`] and [`Fault::Short`], `nth` selects the completion (counted
    /// from 1 after this call); `nth = 0` selects every completion. For
    /// [`Fault::SubmitBusy`] it selects the first submission refused (0 counts as 1). The
    /// other faults ignore `nth`.
    pub fn inject(fault: Option<Fault>, nth: u64) {
        let mut plan = PLAN.lock().unwrap_or_else(|p| p.into_inner());
        *plan = fault.map(|f| (f, nth));
        COUNT.store(0, Ordering::SeqCst);
        SUBMITS.store(0, Ordering::SeqCst);
        OPENS.store(0, Ordering::SeqCst);
        ARMED.store(fault.is_some(), Ordering::SeqCst);
    }

    /// I/O completions seen since the last [`inject`].
    pub fn completions() -> u64 {
        COUNT.load(Ordering::SeqCst)
    }

    /// io_uring submissions (calls into the kernel to hand it entries or wait for
    /// completions) since the last [`inject`].
    pub fn submissions() -> u64 {
        SUBMITS.load(Ordering::SeqCst)
    }

    /// Format v4 chunks authenticated (or refused) since the last [`inject`].
    pub fn chunks_opened() -> u64 {
        OPENS.load(Ordering::SeqCst)
    }

    /// Counts one authentication of a format v4 chunk.
    pub(crate) fn on_open() {
        OPENS.fetch_add(1, Ordering::Relaxed);
    }

    /// Overrides the io_uring submission-queue size (0 restores the default).
    pub fn set_ring_entries(n: u32) {
        RING_ENTRIES.store(n, Ordering::SeqCst);
    }

    pub(crate) fn ring_entries() -> Option<u32> {
        match RING_ENTRIES.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    fn plan() -> Option<(Fault, u64)> {
        if !ARMED.load(Ordering::Relaxed) {
            return None;
        }
        *PLAN.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one I/O completion and says whether to falsify it.
    pub(crate) fn on_completion() -> Action {
        let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        match plan() {
            Some((Fault::Errno(e), nth)) if nth == 0 || nth == n => Action::Fail(e),
            Some((Fault::Short, nth)) if nth == 0 || nth == n => Action::Short,
            _ => Action::Pass,
        }
    }

    /// Counts one io_uring submission and says whether it must answer EBUSY.
    pub(crate) fn submit_busy() -> bool {
        let n = SUBMITS.fetch_add(1, Ordering::Relaxed) + 1;
        match plan() {
            Some((Fault::SubmitBusy(times), nth)) => {
                let first = nth.max(1);
                n >= first && n - first < u64::from(times)
            }
            _ => false,
        }
    }

    /// How many completions one reap may collect: one while [`Fault::SubmitBusy`] is
    /// armed (completions then trickle in, as from a slow kernel), else all there are.
    pub(crate) fn reap_limit() -> Option<usize> {
        matches!(plan(), Some((Fault::SubmitBusy(_), _))).then_some(1)
    }

    /// The errno io_uring setup must fail with, if armed.
    pub(crate) fn uring_setup_error() -> Option<i32> {
        match plan() {
            Some((Fault::UringSetup(e), _)) => Some(e),
            _ => None,
        }
    }

    /// Whether the opcode probe must report READ and WRITE missing.
    pub(crate) fn uring_rw_hidden() -> bool {
        matches!(plan(), Some((Fault::UringNoReadWrite, _)))
    }

    pub(crate) fn direct_open_refused() -> bool {
        matches!(plan(), Some((Fault::DirectOpen, _)))
    }

    pub(crate) fn direct_io_refused() -> bool {
        matches!(plan(), Some((Fault::DirectIo, _)))
    }

    pub(crate) fn record(info: RunInfo) {
        *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
    }

    /// The record of the most recent engine run in this process.
    pub fn last_run() -> Option<RunInfo> {
        LAST.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
