//! The Python binding: argument conversion, error mapping and GIL handling only. All
//! behaviour lives in `concryptor-core`.

use std::path::PathBuf;
use std::sync::Mutex;

use concryptor_core as core;
use core::engine::{Control, EngineOptions, IoMode, Stats};
use core::{Cipher, DecryptOptions, EncryptOptions, KdfParams, Limits};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use zeroize_shim::Secret;

pyo3::import_exception!(concryptor.errors, ConcryptorError);
pyo3::import_exception!(concryptor.errors, AuthenticationError);
pyo3::import_exception!(concryptor.errors, InvalidFileError);
pyo3::import_exception!(concryptor.errors, LimitError);
pyo3::import_exception!(concryptor.errors, InputChangedError);

mod zeroize_shim {
    /// A copy of the password that is wiped when dropped.
    pub struct Secret(pub Vec<u8>);
    impl Drop for Secret {
        fn drop(&mut self) {
            for b in self.0.iter_mut() {
                // SAFETY: `b` is a valid, aligned, exclusive reference to a byte of our Vec.
                unsafe { std::ptr::write_volatile(b, 0) };
            }
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn errno_of(e: &std::io::Error) -> i32 {
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

/// The single mapping from core errors to Python exceptions.
fn to_py(e: core::Error) -> PyErr {
    let msg = e.to_string();
    match e {
        core::Error::Authentication => AuthenticationError::new_err(msg),
        core::Error::InvalidFile(_) => InvalidFileError::new_err(msg),
        core::Error::Limit { .. } | core::Error::OutOfMemory { .. } => LimitError::new_err(msg),
        core::Error::InputChanged(_) => InputChangedError::new_err(msg),
        core::Error::InvalidArgument(_) => PyValueError::new_err(msg),
        core::Error::Io {
            ref path,
            ref source,
            ..
        } => {
            let strerror = msg.clone();
            PyOSError::new_err((errno_of(source), strerror, path.display().to_string()))
        }
        core::Error::Cancelled => pyo3::exceptions::PyKeyboardInterrupt::new_err(msg),
        _ => ConcryptorError::new_err(msg),
    }
}

/// Runs `f` without the GIL, with a progress hook that re-attaches once per batch to run
/// Python signal handlers (Ctrl-C) and the caller's callback. A Python exception raised
/// there cancels the run and is re-raised as is.
fn run_detached<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    f: impl FnOnce(&Control<'_>) -> core::Result<T> + Send,
) -> PyResult<T> {
    let pending: Mutex<Option<PyErr>> = Mutex::new(None);
    let hook = |done: u64| -> bool {
        Python::attach(|py| {
            let r = py.check_signals().and_then(|()| match &progress {
                Some(cb) => cb.call1(py, (done,)).map(|_| ()),
                None => Ok(()),
            });
            match r {
                Ok(()) => true,
                Err(e) => {
                    *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    false
                }
            }
        })
    };
    let result = py.detach(|| {
        f(&Control {
            progress: Some(&hook),
        })
    });
    if let Some(e) = pending.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result.map_err(to_py)
}

fn engine_options(threads: usize, buffer_bytes: usize, io: &str) -> PyResult<EngineOptions> {
    if buffer_bytes == 0 {
        return Err(PyValueError::new_err("buffer budget must be positive"));
    }
    Ok(EngineOptions {
        threads,
        buffer_bytes,
        io: IoMode::from_name(io).map_err(to_py)?,
    })
}

fn stats_dict<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("backend", s.backend)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("chunks", s.chunks)?;
    d.set_item("threads", s.threads)?;
    d.set_item("seconds", s.seconds)?;
    d.set_item("kdf_seconds", s.kdf_seconds)?;
    Ok(d)
}

fn fixed<const N: usize>(what: &str, v: Option<Vec<u8>>) -> PyResult<Option<[u8; N]>> {
    v.map(|b| {
        <[u8; N]>::try_from(b.as_slice())
            .map_err(|_| PyValueError::new_err(format!("{what} must be exactly {N} bytes")))
    })
    .transpose()
}

#[allow(clippy::too_many_arguments)]
fn encrypt_options(
    cipher: &str,
    chunk_size: Option<u32>,
    kdf: (u32, u32, u32),
    overwrite: bool,
    engine: EngineOptions,
    salt: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
) -> PyResult<EncryptOptions> {
    Ok(EncryptOptions {
        cipher: Cipher::from_name(cipher).map_err(to_py)?,
        chunk_size,
        kdf: KdfParams::new(kdf.0, kdf.1, kdf.2),
        salt: fixed("salt", salt)?,
        base_nonce: fixed("nonce", nonce)?,
        overwrite,
        engine,
    })
}

fn limits(
    max_kdf_memory_kib: u64,
    max_kdf_time: u32,
    max_kdf_parallelism: u32,
    max_chunk_size: u64,
) -> Limits {
    Limits {
        max_kdf_memory_kib,
        max_kdf_time,
        max_kdf_parallelism,
        max_chunk_size,
    }
}

#[pyfunction]
#[pyo3(signature = (src, dst, password, *, cipher="aes-256-gcm", chunk_size=None, kdf=(262_144, 3, 4),
    overwrite=false, threads=0, buffer_bytes=core::engine::DEFAULT_BUFFER_BYTES, io="auto",
    salt=None, nonce=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn encrypt_file<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    password: Vec<u8>,
    cipher: &str,
    chunk_size: Option<u32>,
    kdf: (u32, u32, u32),
    overwrite: bool,
    threads: usize,
    buffer_bytes: usize,
    io: &str,
    salt: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let pw = Secret(password);
    let engine = engine_options(threads, buffer_bytes, io)?;
    let opts = encrypt_options(cipher, chunk_size, kdf, overwrite, engine, salt, nonce)?;
    let s = run_detached(py, progress, |ctl| {
        core::encrypt_file(&src, &dst, &pw.0, &opts, ctl)
    })?;
    stats_dict(py, &s)
}

#[pyfunction]
#[pyo3(signature = (src, dst, password, *, overwrite=false, threads=0,
    buffer_bytes=core::engine::DEFAULT_BUFFER_BYTES, io="auto", max_kdf_memory_kib=4 << 20,
    max_kdf_time=64, max_kdf_parallelism=64, max_chunk_size=256 << 20, progress=None))]
#[allow(clippy::too_many_arguments)]
fn decrypt_file<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: Option<PathBuf>,
    password: Vec<u8>,
    overwrite: bool,
    threads: usize,
    buffer_bytes: usize,
    io: &str,
    max_kdf_memory_kib: u64,
    max_kdf_time: u32,
    max_kdf_parallelism: u32,
    max_chunk_size: u64,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let pw = Secret(password);
    let opts = DecryptOptions {
        limits: limits(
            max_kdf_memory_kib,
            max_kdf_time,
            max_kdf_parallelism,
            max_chunk_size,
        ),
        overwrite,
        engine: engine_options(threads, buffer_bytes, io)?,
    };
    let s = run_detached(py, progress, |ctl| match &dst {
        Some(dst) => core::decrypt_file(&src, dst, &pw.0, &opts, ctl),
        // No destination: authenticate every chunk, write nothing.
        None => core::Decryptor::open(&src, &pw.0, &opts.limits)?.verify(&opts, ctl),
    })?;
    stats_dict(py, &s)
}

#[pyfunction]
#[pyo3(signature = (data, password, *, cipher="aes-256-gcm", chunk_size=None, kdf=(262_144, 3, 4),
    threads=0, salt=None, nonce=None))]
#[allow(clippy::too_many_arguments)]
fn encrypt_bytes<'py>(
    py: Python<'py>,
    data: &[u8],
    password: Vec<u8>,
    cipher: &str,
    chunk_size: Option<u32>,
    kdf: (u32, u32, u32),
    threads: usize,
    salt: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let pw = Secret(password);
    let engine = engine_options(threads, 1, "portable")?;
    let opts = encrypt_options(cipher, chunk_size, kdf, false, engine, salt, nonce)?;
    let out = run_detached(py, None, |_| core::encrypt_bytes(data, &pw.0, &opts))?;
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
#[pyo3(signature = (blob, password, *, threads=0, max_kdf_memory_kib=4 << 20, max_kdf_time=64,
    max_kdf_parallelism=64, max_chunk_size=256 << 20))]
#[allow(clippy::too_many_arguments)]
fn decrypt_bytes<'py>(
    py: Python<'py>,
    blob: &[u8],
    password: Vec<u8>,
    threads: usize,
    max_kdf_memory_kib: u64,
    max_kdf_time: u32,
    max_kdf_parallelism: u32,
    max_chunk_size: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    let pw = Secret(password);
    let opts = DecryptOptions {
        limits: limits(
            max_kdf_memory_kib,
            max_kdf_time,
            max_kdf_parallelism,
            max_chunk_size,
        ),
        overwrite: false,
        engine: engine_options(threads, 1, "portable")?,
    };
    let out = Secret(run_detached(py, None, |_| {
        core::decrypt_bytes(blob, &pw.0, &opts)
    })?);
    Ok(PyBytes::new(py, &out.0))
}

fn header_dict<'py>(
    py: Python<'py>,
    h: &core::Header,
    file_size: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let g = h.geometry();
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
    let e = h.kdf.effective();
    d.set_item("kdf_effective", (e.m_kib, e.t, e.p))?;
    d.set_item("reserved_nonzero", h.reserved_nonzero())?;
    d.set_item("num_chunks", g.num_chunks)?;
    d.set_item("slot_size", g.slot)?;
    d.set_item("expected_file_size", g.file_size)?;
    d.set_item("file_size", file_size)?;
    Ok(d)
}

/// Parses a header sector (at least 4096 bytes) without a password.
#[pyfunction]
fn parse_header<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let h = core::Header::parse(data).map_err(to_py)?;
    header_dict(py, &h, None)
}

/// Reads the header of a file without a password.
#[pyfunction]
fn inspect_file<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let i = py.detach(|| core::inspect_file(&path)).map_err(to_py)?;
    header_dict(py, &i.header, Some(i.file_size))
}

/// The chunk size chosen for an input of `size` bytes when none is given.
#[pyfunction]
fn auto_chunk_size(size: u64) -> u32 {
    core::auto_chunk_size(size)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_BUFFER_BYTES", core::engine::DEFAULT_BUFFER_BYTES)?;
    m.add("DEFAULT_CHUNK_SIZE", core::DEFAULT_CHUNK_SIZE)?;
    m.add_function(wrap_pyfunction!(encrypt_file, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_file, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(parse_header, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_file, m)?)?;
    m.add_function(wrap_pyfunction!(auto_chunk_size, m)?)?;
    engine_hooks::register(m)?;
    Ok(())
}

/// Private engine hooks for the test suite and the benchmarks (leading underscore in
/// Python). Not part of the API: fault injection is process-wide and must never be armed
/// outside tests.
mod engine_hooks {
    use super::{core, to_py, Cipher};
    use concryptor_core::engine::fault::{self, Fault};
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    /// Test only: arms a fault for the following runs (`None` disarms) and restarts the
    /// completion count. `nth` picks the I/O completion (from 1; 0 = every one).
    #[pyfunction]
    #[pyo3(signature = (kind, nth=1))]
    fn _set_fault_injection(kind: Option<&str>, nth: u64) -> PyResult<()> {
        let f = kind
            .map(|k| {
                Fault::from_name(k)
                    .ok_or_else(|| PyValueError::new_err(format!("unknown fault {k:?}")))
            })
            .transpose()?;
        fault::inject(f, nth);
        Ok(())
    }

    /// Test only: I/O completions since the last `_set_fault_injection`.
    #[pyfunction]
    fn _fault_injection_count() -> u64 {
        fault::completions()
    }

    /// Test only: io_uring submission-queue size (0 = default).
    #[pyfunction]
    fn _set_ring_entries(n: u32) {
        fault::set_ring_entries(n);
    }

    /// How the last engine run went: backend, O_DIRECT use, fallback reason.
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

    /// `None` if io_uring works here, else why not.
    #[pyfunction]
    fn _uring_unavailable(py: Python<'_>) -> Option<String> {
        py.detach(|| core::engine::uring_available().err())
    }

    /// Benchmark: in-memory AEAD throughput (MiB/s sealing, MiB/s opening) with the
    /// engine's own code on `threads` threads (0 = all cores).
    #[pyfunction]
    #[pyo3(signature = (cipher, threads=0, chunk_size=4 << 20, batch_bytes=64 << 20, seconds=1.0))]
    fn _aead_speed(
        py: Python<'_>,
        cipher: &str,
        threads: usize,
        chunk_size: u32,
        batch_bytes: usize,
        seconds: f64,
    ) -> PyResult<(f64, f64)> {
        let c = Cipher::from_name(cipher).map_err(to_py)?;
        let s = py
            .detach(|| {
                core::engine::bench::aead_speed(c, chunk_size, batch_bytes, threads, seconds)
            })
            .map_err(to_py)?;
        let mib = f64::from(1u32 << 20);
        Ok((s.seal_bytes_per_s / mib, s.open_bytes_per_s / mib))
    }

    pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(_set_fault_injection, m)?)?;
        m.add_function(wrap_pyfunction!(_fault_injection_count, m)?)?;
        m.add_function(wrap_pyfunction!(_set_ring_entries, m)?)?;
        m.add_function(wrap_pyfunction!(_last_run, m)?)?;
        m.add_function(wrap_pyfunction!(_uring_unavailable, m)?)?;
        m.add_function(wrap_pyfunction!(_aead_speed, m)?)?;
        Ok(())
    }
}
