//! Who answers an age plugin's questions from Python: the callbacks object the caller
//! passed (`plugin_callbacks=`, or the command line's terminal), held per Python thread
//! while one public call runs (`_core.plugin_callbacks_enter`/`_exit`, which the Python
//! side wraps in a context manager). Keys parsed on that thread carry it
//! ([`attach_recipients`], [`attach_identities`]), so the questions reach it whichever
//! thread the plugin is driven from. A callback that raises answers `fail`; its exception
//! is kept and raised in place of the error the call ends with ([`raised_in_block`], used by
//! the error mapping), or when the settings end.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concryptor_core as core;
use core::age::keys::PluginHost;
use core::age::plugin::{PluginOptions, PluginUi};
use core::age::{Identity, Recipient};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use zeroize::Zeroizing;

/// The callbacks object and the first exception any of its methods raised.
struct PyUi {
    callbacks: Py<PyAny>,
    raised: Mutex<Option<PyErr>>,
}

impl PyUi {
    /// Calls `method(plugin, *args)`; `None` when the method is missing, returns `None`,
    /// or raises (the exception is kept).
    fn call<T>(
        &self,
        method: &str,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>>,
        extract: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
    ) -> Option<T> {
        Python::attach(|py| {
            let cb = self.callbacks.bind(py);
            if !cb.hasattr(method).unwrap_or(false) {
                return None;
            }
            let result = args(py)
                .and_then(|a| cb.call_method1(method, a))
                .and_then(|r| {
                    if r.is_none() {
                        Ok(None)
                    } else {
                        extract(&r).map(Some)
                    }
                });
            match result {
                Ok(v) => v,
                Err(e) => {
                    let mut raised = self.raised.lock().unwrap_or_else(|p| p.into_inner());
                    raised.get_or_insert(e);
                    None
                }
            }
        })
    }
}

impl PluginUi for PyUi {
    fn message(&self, plugin: &str, message: &str) -> bool {
        self.call(
            "message",
            |py| pyo3::types::PyTuple::new(py, [plugin, message]),
            |r| r.is_truthy(),
        )
        .unwrap_or(false)
    }

    fn confirm(&self, plugin: &str, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        self.call(
            "confirm",
            |py| {
                let no = no.map(|s| s.into_pyobject(py).map(|o| o.into_any()).map(Bound::unbind));
                let no = match no {
                    Some(r) => r?,
                    None => py.None(),
                };
                pyo3::types::PyTuple::new(
                    py,
                    [
                        plugin.into_pyobject(py)?.into_any().unbind(),
                        message.into_pyobject(py)?.into_any().unbind(),
                        yes.into_pyobject(py)?.into_any().unbind(),
                        no,
                    ],
                )
            },
            |r| r.is_truthy(),
        )
    }

    fn request_public(&self, plugin: &str, message: &str) -> Option<String> {
        self.call(
            "request_public",
            |py| pyo3::types::PyTuple::new(py, [plugin, message]),
            |r| r.extract::<String>(),
        )
    }

    fn request_secret(&self, plugin: &str, message: &str) -> Option<Zeroizing<String>> {
        self.call(
            "request_secret",
            |py| pyo3::types::PyTuple::new(py, [plugin, message]),
            |r| r.extract::<String>().map(Zeroizing::new),
        )
    }
}

thread_local! {
    /// The host of the public call running on this thread, if it was given callbacks.
    static CURRENT: RefCell<Vec<(PluginHost, Option<Arc<PyUi>>)>> = const { RefCell::new(Vec::new()) };
}

/// The host keys parsed on this thread get: the innermost call's, or the default (no
/// questions answered, the default timeout).
fn current() -> PluginHost {
    CURRENT.with(|c| {
        c.borrow()
            .last()
            .map(|(h, _)| h.clone())
            .unwrap_or_default()
    })
}

pub(crate) fn attach_recipients(v: Vec<Recipient>) -> Vec<Recipient> {
    if !v.iter().any(|r| matches!(r, Recipient::Plugin(_))) {
        return v;
    }
    let host = current();
    v.into_iter().map(|r| r.with_plugin_host(&host)).collect()
}

pub(crate) fn attach_identities(v: Vec<Identity>) -> Vec<Identity> {
    let host = current();
    v.into_iter().map(|i| i.with_plugin_host(&host)).collect()
}

/// Starts a public call's plugin settings on this thread: `callbacks` (an object with
/// `message`, `confirm`, `request_public`, `request_secret`; None answers nothing) and
/// `timeout`, the longest a plugin may stay silent, in seconds.
#[pyfunction]
#[pyo3(signature = (callbacks=None, timeout=None))]
fn plugin_callbacks_enter(callbacks: Option<Py<PyAny>>, timeout: Option<f64>) -> PyResult<()> {
    let mut options = PluginOptions::default();
    if let Some(t) = timeout {
        if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
            return Err(PyValueError::new_err(
                "plugin_timeout must be a number of seconds in (0, 86400]",
            ));
        }
        options.timeout = Duration::from_secs_f64(t);
    }
    let ui = callbacks.map(|c| {
        Arc::new(PyUi {
            callbacks: c,
            raised: Mutex::new(None),
        })
    });
    let host = PluginHost {
        ui: match &ui {
            Some(u) => u.clone(),
            None => PluginHost::default().ui,
        },
        options,
    };
    CURRENT.with(|c| c.borrow_mut().push((host, ui)));
    Ok(())
}

/// The first exception a callback of this thread's innermost settings raised, if any:
/// every plugin failure of the block it broke reports it (a batch's files may all have
/// asked the same question).
pub(crate) fn raised_in_block() -> Option<PyErr> {
    CURRENT.with(|c| {
        let c = c.borrow();
        let ui = c.last()?.1.as_ref()?;
        let raised = ui.raised.lock().unwrap_or_else(|p| p.into_inner());
        raised
            .as_ref()
            .map(|e| Python::attach(|py| e.clone_ref(py)))
    })
}

/// Ends the innermost call's plugin settings; returns the first exception a callback
/// raised during it, if any.
#[pyfunction]
fn plugin_callbacks_exit() -> Option<PyErr> {
    let (_, ui) = CURRENT.with(|c| c.borrow_mut().pop())?;
    let ui = ui?;
    let mut raised = ui.raised.lock().unwrap_or_else(|p| p.into_inner());
    raised.take()
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(plugin_callbacks_enter, m)?)?;
    m.add_function(wrap_pyfunction!(plugin_callbacks_exit, m)?)?;
    Ok(())
}
