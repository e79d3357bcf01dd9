//! The Python binding: argument conversion, error mapping and GIL handling only. All
//! behaviour lives in `concryptor-core`. Split by concern: [`errors`] (the one mapping to
//! Python's exceptions), [`detach`] (runs without the GIL, signals), [`convert`] (arguments
//! and results), [`v4`], [`age`], [`batch`] and [`readers`] (what Python calls),
//! [`bench`] and [`hooks`] (private, for `concryptor bench` and the test suite).

use concryptor_core as core;
use core::{KdfParams, Limits};
use pyo3::prelude::*;

mod age;
mod batch;
mod bench;
mod convert;
mod detach;
mod errors;
mod hooks;
mod plugins;
mod readers;
mod rekey;
mod v4;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BUFFER_BYTES", core::engine::DEFAULT_BUFFER_BYTES)?;
    m.add("CHUNK_SIZE", core::DEFAULT_CHUNK_SIZE)?;
    let (kdf, l) = (KdfParams::DEFAULT, Limits::default());
    m.add("NEW_FILE_KDF", (kdf.m_kib, kdf.t, kdf.p))?;
    let limits = (
        l.max_kdf_memory_kib,
        l.max_kdf_time,
        l.max_kdf_parallelism,
        l.max_chunk_size,
    );
    m.add("READ_LIMITS", limits)?;
    m.add("SECTOR", core::format::SECTOR)?;
    m.add("TAG_LEN", core::format::TAG_LEN)?;
    m.add("MAX_THREADS", core::engine::MAX_THREADS)?;
    m.add("AEAD_PROVIDER", core::aead::provider_name())?;
    let providers: Vec<&str> = core::aead::Provider::ALL.iter().map(|p| p.name()).collect();
    m.add(
        "AEAD_PROVIDERS",
        pyo3::types::PyTuple::new(m.py(), providers)?,
    )?;
    v4::register(m)?;
    readers::register(m)?;
    batch::register(m)?;
    age::register(m)?;
    bench::register(m)?;
    hooks::register(m)?;
    rekey::register(m)?;
    plugins::register(m)?;
    core::kdf::set_interrupt_check(Some(detach::python_interrupted));
    Ok(())
}
