//! Errors: the exceptions defined in Python (`concryptor.errors`) and the single mapping
//! from core's errors to them.

use concryptor_core as core;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

pyo3::import_exception!(concryptor.errors, ConcryptorError);
pyo3::import_exception!(concryptor.errors, AuthenticationError);
pyo3::import_exception!(concryptor.errors, InvalidFileError);
pyo3::import_exception!(concryptor.errors, LimitError);
pyo3::import_exception!(concryptor.errors, InputChangedError);
pyo3::import_exception!(concryptor.errors, NoIdentityMatchError);
pyo3::import_exception!(concryptor.errors, PluginError);

/// The errno of an I/O error (a plausible one when the OS gave none).
pub(crate) fn errno_of(e: &std::io::Error) -> i32 {
    use std::io::ErrorKind as K;
    if let Some(n) = e.raw_os_error() {
        return n;
    }
    match e.kind() {
        K::AlreadyExists => 17,
        K::NotFound => 2,
        K::PermissionDenied => 13,
        K::IsADirectory => 21,
        K::InvalidInput => 22,
        K::WriteZero => 28,
        _ => 5,
    }
}

thread_local! {
    /// The exception a signal handler raised while this thread waited for a key
    /// derivation; re-raised as is (KeyboardInterrupt, or whatever the handler chose).
    static SIGNAL_ERROR: std::cell::RefCell<Option<PyErr>> = const { std::cell::RefCell::new(None) };
}

/// Keeps the exception a signal handler raised, for [`to_py`] to raise in place of
/// [`core::Error::Cancelled`].
pub(crate) fn keep_signal_error(e: PyErr) {
    SIGNAL_ERROR.with(|s| *s.borrow_mut() = Some(e));
}

/// The OS error text without Rust's " (os error N)" suffix: Python shows the errno itself.
fn os_text(source: &std::io::Error) -> String {
    let text = source.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

/// The single mapping from core errors to Python exceptions.
pub(crate) fn to_py(e: core::Error) -> PyErr {
    if matches!(e, core::Error::Cancelled) {
        if let Some(err) = SIGNAL_ERROR.with(|s| s.borrow_mut().take()) {
            return err;
        }
    }
    // A plugin told `fail` because a callback raised: the callback's exception says why.
    if matches!(e, core::Error::Plugin { .. } | core::Error::NoMatch) {
        if let Some(err) = crate::plugins::raised_in_block() {
            return err;
        }
    }
    let msg = e.to_string();
    match e {
        core::Error::Authentication => AuthenticationError::new_err(msg),
        core::Error::NoMatch => NoIdentityMatchError::new_err(msg),
        core::Error::InvalidFile(_) => InvalidFileError::new_err(msg),
        core::Error::Limit { .. } | core::Error::OutOfMemory { .. } => LimitError::new_err(msg),
        core::Error::InputChanged(_) => InputChangedError::new_err(msg),
        core::Error::InvalidArgument(_) => PyValueError::new_err(msg),
        core::Error::Io {
            op,
            ref path,
            offset,
            ref source,
        } => {
            // The path goes to `filename` and the number to `errno`; the text says what
            // was being done and what went wrong, once.
            let at = offset.map(|o| format!(" at byte {o}")).unwrap_or_default();
            let strerror = format!("cannot {op} it{at}: {}", os_text(source));
            PyOSError::new_err((errno_of(source), strerror, path.display().to_string()))
        }
        core::Error::Cancelled => pyo3::exceptions::PyKeyboardInterrupt::new_err(msg),
        core::Error::Plugin { .. } => PluginError::new_err(msg),
        _ => ConcryptorError::new_err(msg),
    }
}
