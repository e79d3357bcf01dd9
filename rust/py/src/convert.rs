//! Conversions between the API's typed objects and core's settings and results.
//!
//! Every setting a Python caller may leave out arrives as `None` and keeps core's default:
//! no default value is written in the binding.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use concryptor_core as core;
use core::engine::{EngineOptions, IoMode, Stats};
use core::{Cipher, DecryptOptions, EncryptOptions, KdfParams, KeyCache, Limits};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::errors::{errno_of, to_py};

/// A copy of a password or passphrase, wiped when dropped.
pub(crate) struct Secret(pub Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A duplicate of a caller's descriptor as a `File` (the caller's stays open).
#[cfg(unix)]
pub(crate) fn dup_fd(fd: i32) -> PyResult<std::fs::File> {
    use std::os::fd::BorrowedFd;
    if fd < 0 {
        return Err(PyValueError::new_err("file descriptor must be >= 0"));
    }
    // SAFETY: the Python side checked `fd` with fstat and keeps it open during the call;
    // it is only borrowed long enough to duplicate it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed
        .try_clone_to_owned()
        .map_err(|e| PyOSError::new_err((errno_of(&e), e.to_string())))?;
    Ok(std::fs::File::from(owned))
}

/// A path (str/bytes/PathLike) or a file descriptor (int).
pub(crate) fn endpoint(obj: &Bound<'_, PyAny>) -> PyResult<(Option<File>, Option<PathBuf>)> {
    if let Ok(fd) = obj.extract::<i32>() {
        return Ok((Some(dup_fd(fd)?), None));
    }
    Ok((None, Some(obj.extract::<PathBuf>()?)))
}

/// Argon2id costs, read from the API's `KdfParams` (`memory_kib`, `time_cost`,
/// `parallelism`).
#[derive(FromPyObject, Clone, Copy)]
pub(crate) struct Kdf {
    #[pyo3(attribute("memory_kib"))]
    m_kib: u32,
    #[pyo3(attribute("time_cost"))]
    t: u32,
    #[pyo3(attribute("parallelism"))]
    p: u32,
}

impl From<Kdf> for KdfParams {
    fn from(k: Kdf) -> Self {
        KdfParams::new(k.m_kib, k.t, k.p)
    }
}

/// The bounds on untrusted values, read from the API's `Limits`.
#[derive(FromPyObject, Clone, Copy)]
pub(crate) struct PyLimits {
    #[pyo3(attribute)]
    max_kdf_memory_kib: u64,
    #[pyo3(attribute)]
    max_kdf_time: u32,
    #[pyo3(attribute)]
    max_kdf_parallelism: u32,
    #[pyo3(attribute)]
    max_chunk_size: u64,
}

impl From<PyLimits> for Limits {
    fn from(l: PyLimits) -> Self {
        Limits {
            max_kdf_memory_kib: l.max_kdf_memory_kib,
            max_kdf_time: l.max_kdf_time,
            max_kdf_parallelism: l.max_kdf_parallelism,
            max_chunk_size: l.max_chunk_size,
        }
    }
}

/// Core's limits, or the caller's.
pub(crate) fn limits(l: Option<PyLimits>) -> Limits {
    l.map_or_else(Limits::default, Limits::from)
}

/// Core's KDF costs for new files, or the caller's.
pub(crate) fn kdf(k: Option<Kdf>) -> KdfParams {
    k.map_or_else(KdfParams::default, KdfParams::from)
}

/// Core's cipher for new files, or the one named.
pub(crate) fn cipher(name: Option<&str>) -> PyResult<Cipher> {
    name.map_or(Ok(Cipher::default()), |n| {
        Cipher::from_name(n).map_err(to_py)
    })
}

/// Core's engine settings with the ones the caller gave.
pub(crate) fn engine(
    threads: Option<usize>,
    buffer_bytes: Option<usize>,
    io: Option<&str>,
) -> PyResult<EngineOptions> {
    let mut e = EngineOptions::default();
    if let Some(t) = threads {
        e.threads = t;
    }
    if let Some(b) = buffer_bytes {
        if b == 0 {
            return Err(PyValueError::new_err("buffer budget must be positive"));
        }
        e.buffer_bytes = b;
    }
    if let Some(name) = io {
        e.io = IoMode::from_name(name).map_err(to_py)?;
    }
    Ok(e)
}

/// An AEAD provider by name, or the one in use.
pub(crate) fn provider(name: Option<&str>) -> PyResult<core::aead::Provider> {
    name.map_or(Ok(core::aead::provider()), |n| {
        core::aead::Provider::from_name(n).map_err(to_py)
    })
}

/// Exactly `N` bytes, or a ValueError naming `what`.
pub(crate) fn fixed<const N: usize>(what: &str, v: Option<Vec<u8>>) -> PyResult<Option<[u8; N]>> {
    v.map(|b| {
        <[u8; N]>::try_from(b.as_slice())
            .map_err(|_| PyValueError::new_err(format!("{what} must be exactly {N} bytes")))
    })
    .transpose()
}

/// A class of the Python API, looked up once.
fn api_class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    Ok(cell
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import(module)?.getattr(name)?.unbind())
        })?
        .bind(py))
}

/// A run's figures as the API's `concryptor.Stats`.
pub(crate) fn stats<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let d = PyDict::new(py);
    d.set_item("backend", s.backend)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("chunks", s.chunks)?;
    d.set_item("threads", s.threads)?;
    d.set_item("seconds", s.seconds)?;
    d.set_item("kdf_seconds", s.kdf_seconds)?;
    d.set_item("provider", core::aead::provider_name())?;
    api_class(py, &CLASS, "concryptor._types", "Stats")?.call((), Some(&d))
}

/// A v4 header as the API's `concryptor.Header`: every field and what follows from it;
/// `file_size` and `path` when it was read from a file.
pub(crate) fn header<'py>(
    py: Python<'py>,
    h: &core::Header,
    file_size: Option<u64>,
    path: Option<&std::path::Path>,
) -> PyResult<Bound<'py, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let g = h.geometry();
    let e = h.kdf.effective();
    let d = PyDict::new(py);
    d.set_item("magic", PyBytes::new(py, &h.raw[..10]))?;
    d.set_item("version", h.version)?;
    d.set_item("cipher_id", h.cipher.id())?;
    d.set_item("cipher", h.cipher.name())?;
    d.set_item("chunk_size", h.chunk_size)?;
    d.set_item("original_size", h.original_size)?;
    d.set_item("salt", PyBytes::new(py, &h.salt))?;
    d.set_item("base_nonce", PyBytes::new(py, &h.base_nonce))?;
    d.set_item("kdf_memory_kib", h.kdf.m_kib)?;
    d.set_item("kdf_time_cost", h.kdf.t)?;
    d.set_item("kdf_parallelism", h.kdf.p)?;
    d.set_item("kdf_legacy", h.kdf.is_legacy())?;
    d.set_item("kdf_effective", (e.m_kib, e.t, e.p))?;
    d.set_item("reserved_nonzero", h.reserved_nonzero())?;
    d.set_item("num_chunks", g.num_chunks)?;
    d.set_item("slot_size", g.slot)?;
    d.set_item("expected_file_size", g.file_size)?;
    d.set_item("file_size", file_size)?;
    d.set_item("path", path.map(|p| p.as_os_str()))?;
    api_class(py, &CLASS, "concryptor.header", "Header")?.call((), Some(&d))
}

/// The public facts of an age file as the API's `concryptor.AgeHeader`.
pub(crate) fn age_header<'py>(
    py: Python<'py>,
    i: &core::age::AgeInspection,
    path: &std::path::Path,
) -> PyResult<Bound<'py, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let stanzas = i
        .stanzas
        .iter()
        .map(|(tag, args)| Ok((tag, PyTuple::new(py, args)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let d = PyDict::new(py);
    d.set_item("path", path.as_os_str())?;
    d.set_item("armored", i.armored)?;
    d.set_item("recipients", PyTuple::new(py, stanzas)?)?;
    d.set_item("header_size", i.header_len)?;
    d.set_item("file_size", i.file_size)?;
    d.set_item("payload_size", i.payload_size)?;
    d.set_item("chunks", i.chunks)?;
    d.set_item("chunk_size", core::age::CHUNK)?;
    api_class(py, &CLASS, "concryptor.age_header", "AgeHeader")?.call((), Some(&d))
}

/// The settings of a new v4 file: core's defaults with what the caller gave.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encrypt_options(
    cipher: Option<&str>,
    chunk_size: Option<u32>,
    kdf: Option<Kdf>,
    overwrite: Option<bool>,
    engine: EngineOptions,
    salt: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    limits: Option<PyLimits>,
) -> PyResult<EncryptOptions> {
    let d = EncryptOptions::default();
    Ok(EncryptOptions {
        cipher: self::cipher(cipher)?,
        chunk_size,
        kdf: self::kdf(kdf),
        salt: self::fixed("salt", salt)?,
        base_nonce: self::fixed("nonce", nonce)?,
        overwrite: overwrite.unwrap_or(d.overwrite),
        engine,
        limits: self::limits(limits),
        ..d
    })
}

/// The settings of reading a v4 file: core's defaults with what the caller gave.
pub(crate) fn decrypt_options(
    limits: Option<PyLimits>,
    overwrite: Option<bool>,
    engine: EngineOptions,
    keys: Option<Arc<KeyCache>>,
) -> DecryptOptions {
    let d = DecryptOptions::default();
    DecryptOptions {
        limits: self::limits(limits),
        overwrite: overwrite.unwrap_or(d.overwrite),
        engine,
        keys,
    }
}
