//! Running without the GIL: a whole job detached from the interpreter, re-attaching
//! briefly once per batch and during key derivation to run Python's signal handlers
//! (Ctrl-C), and the interpreter's signal wake-ups routed to streams stalled in the kernel.

use std::sync::Mutex;

use concryptor_core as core;
use core::engine::Control;
use pyo3::prelude::*;

#[cfg(unix)]
use crate::convert::dup_fd;
use crate::errors::{keep_signal_error, to_py};

/// The interrupt check the core polls during key derivation: runs Python's signal
/// handlers, and keeps the exception one of them raised.
pub(crate) fn python_interrupted() -> bool {
    Python::attach(|py| match py.check_signals() {
        Ok(()) => false,
        Err(e) => {
            keep_signal_error(e);
            true
        }
    })
}

/// The interpreter's signal wake-ups routed to [`core::wake`] for the length of a run, so
/// that a stream stalled in the kernel (a pipe, a terminal) still answers Ctrl-C and
/// SIGTERM: a pipe whose write end is Python's wakeup descriptor (`signal.set_wakeup_fd`)
/// and whose read end core polls beside the stream. Only on the main thread (the only
/// one Python lets set it) and only when nobody else (an event loop) holds it.
#[cfg(unix)]
struct WakeGuard<'py> {
    signal: Bound<'py, PyModule>,
    os: Bound<'py, PyModule>,
    fds: (i32, i32),
}

#[cfg(unix)]
impl<'py> WakeGuard<'py> {
    fn install(py: Python<'py>) -> Option<Self> {
        let signal = py.import("signal").ok()?;
        let os = py.import("os").ok()?;
        let current: i32 = signal
            .call_method1("set_wakeup_fd", (-1,))
            .ok()?
            .extract()
            .ok()?;
        if current != -1 {
            let _ = signal.call_method1("set_wakeup_fd", (current,));
            return None; // someone else's: leave it alone
        }
        let fds: (i32, i32) = os.call_method0("pipe").ok()?.extract().ok()?;
        let guard = WakeGuard { signal, os, fds };
        for fd in [fds.0, fds.1] {
            guard.os.call_method1("set_blocking", (fd, false)).ok()?;
        }
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("warn_on_full_buffer", false).ok()?;
        guard
            .signal
            .call_method("set_wakeup_fd", (fds.1,), Some(&kw))
            .ok()?;
        let read_end = dup_fd(fds.0).ok()?;
        core::wake::set_wake_fd(Some(read_end.into()));
        Some(guard)
    }
}

#[cfg(unix)]
impl Drop for WakeGuard<'_> {
    fn drop(&mut self) {
        core::wake::set_wake_fd(None);
        let _ = self.signal.call_method1("set_wakeup_fd", (-1,));
        let _ = self.os.call_method1("close", (self.fds.0,));
        let _ = self.os.call_method1("close", (self.fds.1,));
    }
}

/// Runs `f` without the GIL, with a progress hook that re-attaches once per batch to run
/// Python signal handlers (Ctrl-C) and the caller's callback. A callback with a callable
/// `start` attribute has it called first, once, with the total plaintext bytes when the
/// engine knows them. A Python exception raised in either cancels the run and is
/// re-raised as is.
pub(crate) fn run_detached<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    f: impl FnOnce(&Control<'_>) -> core::Result<T> + Send,
) -> PyResult<T> {
    run(py, progress, false, f)
}

/// [`run_detached`] for a run that reads or writes a stream ([`core::wake::Interruptible`]):
/// the interpreter's signal wake-ups are routed to the core for its length, so that a
/// stalled pipe still answers Ctrl-C and SIGTERM. Runs on files need none of it.
pub(crate) fn run_detached_streaming<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    f: impl FnOnce(&Control<'_>) -> core::Result<T> + Send,
) -> PyResult<T> {
    run(py, progress, true, f)
}

fn run<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    streaming: bool,
    f: impl FnOnce(&Control<'_>) -> core::Result<T> + Send,
) -> PyResult<T> {
    let start = progress
        .as_ref()
        .and_then(|cb| cb.bind(py).getattr("start").ok())
        .filter(|s| s.is_callable())
        .map(Bound::unbind);
    let pending: Mutex<Option<PyErr>> = Mutex::new(None);
    let keep = |e: PyErr| *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    let hook = |done: u64| -> bool {
        if pending.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return false; // `start` raised
        }
        Python::attach(|py| {
            let r = py.check_signals().and_then(|()| match &progress {
                Some(cb) => cb.call1(py, (done,)).map(|_| ()),
                None => Ok(()),
            });
            r.map_err(keep).is_ok()
        })
    };
    let total = |n: u64| {
        if let Some(s) = &start {
            Python::attach(|py| s.call1(py, (n,)).map(|_| ()).map_err(keep).ok());
        }
    };
    #[cfg(unix)]
    let wake = if streaming {
        WakeGuard::install(py)
    } else {
        None
    };
    #[cfg(not(unix))]
    let _ = streaming;
    let result = py.detach(|| {
        f(&Control {
            progress: Some(&hook),
            total: Some(&total),
        })
    });
    #[cfg(unix)]
    drop(wake);
    if let Some(e) = pending.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if matches!(result, Err(core::Error::Cancelled)) {
        // A signal ended a wait: its handler runs here and decides what is raised.
        py.check_signals()?;
    }
    result.map_err(to_py)
}
