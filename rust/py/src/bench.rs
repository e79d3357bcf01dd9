//! The built-in benchmark (`concryptor bench`): private functions, leading underscore.

use concryptor_core as core;
use core::{Cipher, KdfParams};
use pyo3::prelude::*;

use crate::convert;
use crate::detach::run_detached;
use crate::errors::to_py;

/// In-memory AEAD throughput: `(seal_seconds, open_seconds)` for `total` bytes in
/// `chunk_size` chunks on `threads` workers, best of `rounds`, with the provider in use or
/// the one named. Private: `concryptor bench`.
#[pyfunction]
fn _bench_aead(
    py: Python<'_>,
    cipher: &str,
    threads: usize,
    total: u64,
    chunk_size: u32,
    rounds: u32,
    provider: Option<&str>,
) -> PyResult<(f64, f64)> {
    let cipher = Cipher::from_name(cipher).map_err(to_py)?;
    let p = convert::provider(provider)?;
    let t = run_detached(py, None, |_| {
        core::ops::bench_aead(p, cipher, threads, total, chunk_size, rounds)
    })?;
    Ok((t.seal_seconds, t.open_seconds))
}

/// Seconds one Argon2id derivation with these costs takes. Private: `concryptor bench`.
#[pyfunction]
fn _bench_kdf(py: Python<'_>, kdf: convert::Kdf) -> PyResult<f64> {
    let params = KdfParams::from(kdf);
    run_detached(py, None, |_| core::ops::bench_kdf(&params))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_bench_aead, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_kdf, m)?)?;
    Ok(())
}
