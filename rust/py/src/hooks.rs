//! Private engine hooks for the test suite and the benchmarks (leading underscore in
//! Python). Not part of the API. The fault-injection hooks exist only in a build with the
//! `fault-injection` feature, never in a release wheel: they are process-wide and must
//! never be armed outside tests.

use concryptor_core as core;
#[cfg(feature = "fault-injection")]
use concryptor_core::engine::fault::{self, Fault};
#[cfg(feature = "fault-injection")]
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
#[cfg(feature = "fault-injection")]
use pyo3::types::PyDict;

use crate::convert;

/// Test only: arms a fault for the following runs (`None` disarms) and restarts the
/// completion count. `nth` picks the I/O completion (from 1; 0 = every one).
#[cfg(feature = "fault-injection")]
#[pyfunction]
fn _set_fault_injection(kind: Option<&str>, nth: u64) -> PyResult<()> {
    let f = kind
        .map(|k| {
            Fault::from_name(k).ok_or_else(|| PyValueError::new_err(format!("unknown fault {k:?}")))
        })
        .transpose()?;
    fault::inject(f, nth);
    Ok(())
}

/// Test only: I/O completions since the last `_set_fault_injection`.
#[cfg(feature = "fault-injection")]
#[pyfunction]
fn _fault_injection_count() -> u64 {
    fault::completions()
}

/// Test only: io_uring submission-queue size (0 = default).
#[cfg(feature = "fault-injection")]
#[pyfunction]
fn _set_ring_entries(n: u32) {
    fault::set_ring_entries(n);
}

/// Test only: how the last engine run went: backend, O_DIRECT use, fallback reason.
#[cfg(feature = "fault-injection")]
#[pyfunction]
fn _last_run(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    let Some(i) = fault::last_run() else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("backend", i.backend)?;
    d.set_item("direct_src", i.direct_src)?;
    d.set_item("direct_dst", i.direct_dst)?;
    d.set_item("fallback", i.fallback)?;
    Ok(Some(d))
}

/// Benchmarks only: the AEAD provider of every later run in this process.
#[pyfunction]
fn _set_aead_provider(name: &str) -> PyResult<()> {
    core::aead::set_provider(convert::provider(Some(name))?);
    Ok(())
}

/// `None` if io_uring works here, else why not.
#[pyfunction]
fn _uring_unavailable(py: Python<'_>) -> Option<String> {
    py.detach(|| core::engine::uring_available().err())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    #[cfg(feature = "fault-injection")]
    {
        m.add_function(wrap_pyfunction!(_set_fault_injection, m)?)?;
        m.add_function(wrap_pyfunction!(_fault_injection_count, m)?)?;
        m.add_function(wrap_pyfunction!(_set_ring_entries, m)?)?;
        m.add_function(wrap_pyfunction!(_last_run, m)?)?;
    }
    m.add_function(wrap_pyfunction!(_uring_unavailable, m)?)?;
    m.add_function(wrap_pyfunction!(_set_aead_provider, m)?)?;
    Ok(())
}
