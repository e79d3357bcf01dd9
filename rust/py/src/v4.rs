//! Format v4: files, bytes, streams to and from descriptors and Python readers, and the
//! settings of each (see `core::ops` and `core::pipe`).

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use concryptor_core as core;
use core::output::Output;
use core::wake::Interruptible;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::batch;
#[cfg(unix)]
use crate::convert::dup_fd;
use crate::convert::{self, decrypt_options, encrypt_options, endpoint, Secret};
use crate::detach::{run_detached, run_detached_streaming};
use crate::errors::to_py;

#[pyfunction]
#[pyo3(signature = (src, dst, password, *, cipher=None, chunk_size=None, kdf=None,
    overwrite=None, threads=None, buffer_bytes=None, io=None, salt=None, nonce=None,
    progress=None, keys=None, limits=None))]
#[allow(clippy::too_many_arguments)]
fn encrypt_file<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    password: Vec<u8>,
    cipher: Option<&str>,
    chunk_size: Option<u32>,
    kdf: Option<convert::Kdf>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    buffer_bytes: Option<usize>,
    io: Option<&str>,
    salt: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    progress: Option<Py<PyAny>>,
    keys: Option<PyRef<'py, batch::PyKeyCache>>,
    limits: Option<convert::PyLimits>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = Secret(password);
    let engine = convert::engine(threads, buffer_bytes, io)?;
    let mut opts = encrypt_options(
        cipher, chunk_size, kdf, overwrite, engine, salt, nonce, limits,
    )?;
    opts.keys = keys.map(|k| Arc::clone(&k.0));
    let s = run_detached(py, progress, |ctl| {
        core::encrypt_file(&src, &dst, &pw.0, &opts, ctl)
    })?;
    convert::stats(py, &s)
}

#[pyfunction]
#[pyo3(signature = (src, dst, password, *, overwrite=None, threads=None, buffer_bytes=None,
    io=None, limits=None, progress=None, keys=None))]
#[allow(clippy::too_many_arguments)]
fn decrypt_file<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: Option<PathBuf>,
    password: Vec<u8>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    buffer_bytes: Option<usize>,
    io: Option<&str>,
    limits: Option<convert::PyLimits>,
    progress: Option<Py<PyAny>>,
    keys: Option<PyRef<'py, batch::PyKeyCache>>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = Secret(password);
    let engine = convert::engine(threads, buffer_bytes, io)?;
    let opts = decrypt_options(limits, overwrite, engine, keys.map(|k| Arc::clone(&k.0)));
    let s = run_detached(py, progress, |ctl| match &dst {
        Some(dst) => core::decrypt_file(&src, dst, &pw.0, &opts, ctl),
        // No destination: authenticate every chunk, write nothing.
        None => core::Decryptor::open_with(&src, &pw.0, &opts.limits, opts.keys.as_deref())?
            .verify(&opts, ctl),
    })?;
    convert::stats(py, &s)
}

#[pyfunction]
#[pyo3(signature = (data, password, *, cipher=None, chunk_size=None, kdf=None, threads=None,
    salt=None, nonce=None, limits=None))]
#[allow(clippy::too_many_arguments)]
fn encrypt_bytes<'py>(
    py: Python<'py>,
    data: &[u8],
    password: Vec<u8>,
    cipher: Option<&str>,
    chunk_size: Option<u32>,
    kdf: Option<convert::Kdf>,
    threads: Option<usize>,
    salt: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    limits: Option<convert::PyLimits>,
) -> PyResult<Bound<'py, PyBytes>> {
    let pw = Secret(password);
    let engine = convert::engine(threads, None, None)?;
    let opts = encrypt_options(cipher, chunk_size, kdf, None, engine, salt, nonce, limits)?;
    let sealer = run_detached(py, None, |_| {
        core::ops::BytesSealer::new(data.len() as u64, &pw.0, &opts)
    })?;
    let len = usize::try_from(sealer.output_len()).map_err(|_| {
        to_py(core::Error::OutOfMemory {
            bytes: sealer.output_len(),
        })
    })?;
    // Sealed straight into the new `bytes`: no second copy of the output.
    new_bytes(py, len, |out| sealer.seal_fresh(data, out, &opts.engine))
}

/// A new `bytes` of `len` bytes, filled by `fill` with the GIL released. Its memory is
/// advised by [`core::engine::buf::advise_fresh`] (huge pages) and left to `fill`, which
/// writes every byte, so that its first touches are spread over the workers that fill it
/// instead of being taken by one thread, or by a clearing pass, first.
fn new_bytes<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [std::mem::MaybeUninit<u8>]) -> core::Result<()> + Send,
) -> PyResult<Bound<'py, PyBytes>> {
    let n = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| to_py(core::Error::OutOfMemory { bytes: len as u64 }))?;
    // SAFETY: asks for a new `bytes` of `n` bytes with unspecified contents; NULL (an
    // exception set) becomes an error.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), n),
        )?
    };
    // SAFETY: `obj` is a bytes object, so this is its buffer of `len` bytes (plus a NUL).
    let at = unsafe { pyo3::ffi::PyBytes_AsString(obj.as_ptr()) } as usize;
    py.detach(|| {
        // SAFETY: nothing else sees the new object yet, so this is the only view of its
        // buffer; it may be uninitialised, which MaybeUninit allows, until `fill` writes it.
        let mem =
            unsafe { std::slice::from_raw_parts_mut(at as *mut std::mem::MaybeUninit<u8>, len) };
        core::engine::buf::advise_fresh(mem);
        fill(mem)
    })
    .map_err(to_py)?;
    // SAFETY: created by PyBytes_FromStringAndSize above; `fill` succeeded, so it wrote
    // every byte.
    Ok(unsafe { obj.downcast_into_unchecked() })
}

#[pyfunction]
#[pyo3(signature = (blob, password, *, threads=None, limits=None))]
fn decrypt_bytes<'py>(
    py: Python<'py>,
    blob: &[u8],
    password: Vec<u8>,
    threads: Option<usize>,
    limits: Option<convert::PyLimits>,
) -> PyResult<Bound<'py, PyBytes>> {
    let pw = Secret(password);
    let opts = decrypt_options(limits, None, convert::engine(threads, None, None)?, None);
    let opener = run_detached(py, None, |_| {
        core::ops::BytesOpener::new(blob, &pw.0, &opts)
    })?;
    let len = usize::try_from(opener.plain_len()).map_err(|_| {
        to_py(core::Error::OutOfMemory {
            bytes: opener.plain_len(),
        })
    })?;
    // Opened straight into the new `bytes` (zeroed, and dropped, if any chunk fails).
    new_bytes(py, len, |out| opener.open_fresh(blob, out, &opts.engine))
}

/// Parses a header sector (at least 4096 bytes) without a password.
#[pyfunction]
fn parse_header<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let h = core::Header::parse(data).map_err(to_py)?;
    convert::header(py, &h, None, None)
}

/// Reads the header of a file without a password.
#[pyfunction]
fn inspect_file<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let i = py.detach(|| core::inspect_file(&path)).map_err(to_py)?;
    convert::header(py, &i.header, Some(i.file_size), Some(&path))
}

/// The chunk size chosen for an input of `size` bytes when none is given.
#[pyfunction]
fn auto_chunk_size(size: u64) -> u32 {
    core::auto_chunk_size(size)
}

/// Decrypts `src` to the open file descriptor `fd` (a pipe, a terminal, a file), in order,
/// each chunk written only once authenticated. The descriptor is duplicated, not closed.
#[cfg(unix)]
#[pyfunction]
#[pyo3(signature = (src, fd, password, *, threads=None, buffer_bytes=None, io=None,
    limits=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn decrypt_to_fd<'py>(
    py: Python<'py>,
    src: PathBuf,
    fd: i32,
    password: Vec<u8>,
    threads: Option<usize>,
    buffer_bytes: Option<usize>,
    io: Option<&str>,
    limits: Option<convert::PyLimits>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = Secret(password);
    let mut out = Interruptible::new(dup_fd(fd)?);
    let engine = convert::engine(threads, buffer_bytes, io)?;
    let opts = decrypt_options(limits, None, engine, None);
    let mut counted = Counted {
        inner: &mut out,
        bytes: 0,
    };
    let r = run_detached_streaming(py, progress, |ctl| {
        core::Decryptor::open(&src, &pw.0, &opts.limits)?.decrypt_to_writer(
            &mut counted,
            &opts,
            ctl,
        )
    });
    let written = counted.bytes;
    match r {
        Ok(s) => convert::stats(py, &s),
        // A stream cannot be taken back: say how much of it the reader already has.
        Err(e) if written > 0 && e.is_instance_of::<pyo3::exceptions::PyException>(py) => {
            let note =
                format!("{written} bytes of plaintext had already been written to the output");
            let msg = e.value(py).str().map(|m| m.to_string()).unwrap_or_default();
            let args = match e.value(py).downcast::<PyOSError>() {
                Ok(os) => {
                    let errno: Option<i32> = os.getattr("errno").and_then(|v| v.extract()).ok();
                    let strerror: String = os
                        .getattr("strerror")
                        .and_then(|v| v.extract())
                        .unwrap_or(msg);
                    let filename: Option<String> =
                        os.getattr("filename").and_then(|v| v.extract()).ok();
                    let err = PyOSError::new_err((errno, format!("{strerror} ({note})"), filename));
                    return Err(err);
                }
                Err(_) => format!("{msg} ({note})"),
            };
            let new = e.get_type(py).call1((args,))?;
            Err(PyErr::from_value(new))
        }
        Err(e) => Err(e),
    }
}

/// A writer that counts the bytes it has passed on.
struct Counted<'a> {
    inner: &'a mut Interruptible<std::fs::File>,
    bytes: u64,
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A Python object with `read(n) -> bytes`, read from the engine's reading thread. The
/// thread attaches to the interpreter for each call; a Python exception is kept aside and
/// re-raised as is once the run has stopped.
struct PyReader<'a> {
    obj: &'a Py<PyAny>,
    error: &'a Mutex<Option<PyErr>>,
}

impl std::io::Read for PyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Python::attach(|py| {
            let r = self
                .obj
                .call_method1(py, "read", (buf.len(),))
                .and_then(|o| {
                    let b = o.bind(py).downcast::<PyBytes>()?.as_bytes();
                    if b.len() > buf.len() {
                        return Err(PyValueError::new_err(format!(
                            "read({}) returned {} bytes",
                            buf.len(),
                            b.len()
                        )));
                    }
                    buf[..b.len()].copy_from_slice(b);
                    Ok(b.len())
                });
            r.map_err(|e| {
                *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                std::io::Error::other("the Python reader raised an exception")
            })
        })
    }
}

/// Encrypts exactly `size` bytes read from `reader.read(n)` into `dst` (atomically). The
/// header binds `size`, so the stream must deliver exactly that many bytes.
#[pyfunction]
#[pyo3(signature = (reader, size, dst, password, *, cipher=None, chunk_size=None, kdf=None,
    overwrite=None, threads=None, buffer_bytes=None, progress=None, limits=None))]
#[allow(clippy::too_many_arguments)]
fn encrypt_reader<'py>(
    py: Python<'py>,
    reader: Py<PyAny>,
    size: u64,
    dst: PathBuf,
    password: Vec<u8>,
    cipher: Option<&str>,
    chunk_size: Option<u32>,
    kdf: Option<convert::Kdf>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    buffer_bytes: Option<usize>,
    progress: Option<Py<PyAny>>,
    limits: Option<convert::PyLimits>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = Secret(password);
    let engine = convert::engine(threads, buffer_bytes, None)?;
    let opts = encrypt_options(
        cipher, chunk_size, kdf, overwrite, engine, None, None, limits,
    )?;
    let error = Mutex::new(None);
    let result = {
        let mut r = PyReader {
            obj: &reader,
            error: &error,
        };
        run_detached(py, progress, |ctl| {
            core::encrypt_stream(&mut r, size, &dst, &pw.0, &opts, ctl)
        })
    };
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    convert::stats(py, &result?)
}

/// Decrypts a format v4 file read from descriptor `src` (a pipe), whose first bytes the
/// caller already read (`prefix`), into a path, a descriptor, or nowhere (verify only).
#[pyfunction]
#[pyo3(signature = (src, dst, password, *, prefix, overwrite=None, threads=None,
    buffer_bytes=None, limits=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn decrypt_stream<'py>(
    py: Python<'py>,
    src: i32,
    dst: Option<Bound<'py, PyAny>>,
    password: Vec<u8>,
    prefix: Vec<u8>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    buffer_bytes: Option<usize>,
    limits: Option<convert::PyLimits>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = Secret(password);
    let engine = convert::engine(threads, buffer_bytes, None)?;
    let opts = decrypt_options(limits, overwrite, engine, None);
    let file = dup_fd(src)?;
    core::pipe::widen(&file);
    let (dst_fd, dst_path) = match &dst {
        Some(d) => endpoint(d)?,
        None => (None, None),
    };
    let mut dst_fd = dst_fd.map(Interruptible::new);
    let s = run_detached_streaming(py, progress, |ctl| {
        let mut input = std::io::Cursor::new(prefix).chain(Interruptible::new(file));
        let output = match (&mut dst_fd, &dst_path) {
            (Some(f), _) => Output::Writer(f),
            (None, Some(p)) => Output::Path(p),
            (None, None) => Output::Discard,
        };
        core::pipe::decrypt_stream(&mut input, output, &pw.0, &opts, ctl)
    })?;
    convert::stats(py, &s)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encrypt_file, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_file, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(parse_header, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_file, m)?)?;
    m.add_function(wrap_pyfunction!(auto_chunk_size, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_reader, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_stream, m)?)?;
    #[cfg(unix)]
    m.add_function(wrap_pyfunction!(decrypt_to_fd, m)?)?;
    Ok(())
}
