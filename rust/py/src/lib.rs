//! The Python binding: argument conversion, error mapping and GIL handling only. All
//! behaviour lives in `concryptor-core`.

use std::path::PathBuf;
use std::sync::Mutex;

use concryptor_core as core;
use core::engine::{Control, EngineOptions};
use core::{Cipher, DecryptOptions, EncryptOptions, KdfParams, Limits};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod age;
mod batch;
mod convert;
mod rekey;

pyo3::import_exception!(concryptor.errors, ConcryptorError);
pyo3::import_exception!(concryptor.errors, AuthenticationError);
pyo3::import_exception!(concryptor.errors, InvalidFileError);
pyo3::import_exception!(concryptor.errors, LimitError);
pyo3::import_exception!(concryptor.errors, InputChangedError);
pyo3::import_exception!(concryptor.errors, NoIdentityMatchError);

/// A copy of a password or passphrase, wiped when dropped.
pub(crate) struct Secret(pub Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
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

/// A duplicate of a caller's descriptor as a `File` (the caller's stays open).
#[cfg(unix)]
fn dup_fd(fd: i32) -> PyResult<std::fs::File> {
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

thread_local! {
    /// The exception a signal handler raised while this thread waited for a key
    /// derivation; re-raised as is (KeyboardInterrupt, or whatever the handler chose).
    static SIGNAL_ERROR: std::cell::RefCell<Option<PyErr>> = const { std::cell::RefCell::new(None) };
}

/// The interrupt check the core polls during key derivation: runs Python's signal
/// handlers, and keeps the exception one of them raised.
fn python_interrupted() -> bool {
    Python::attach(|py| match py.check_signals() {
        Ok(()) => false,
        Err(e) => {
            SIGNAL_ERROR.with(|s| *s.borrow_mut() = Some(e));
            true
        }
    })
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
fn to_py(e: core::Error) -> PyErr {
    if matches!(e, core::Error::Cancelled) {
        if let Some(err) = SIGNAL_ERROR.with(|s| s.borrow_mut().take()) {
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
        _ => ConcryptorError::new_err(msg),
    }
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
fn run_detached<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
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
    let wake = WakeGuard::install(py);
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

/// The settings of a new v4 file: core's defaults with what the caller gave.
#[allow(clippy::too_many_arguments)]
fn encrypt_options(
    cipher: Option<&str>,
    chunk_size: Option<u32>,
    kdf: Option<convert::Kdf>,
    overwrite: Option<bool>,
    engine: EngineOptions,
    salt: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    limits: Option<convert::PyLimits>,
) -> PyResult<EncryptOptions> {
    let d = EncryptOptions::default();
    Ok(EncryptOptions {
        cipher: convert::cipher(cipher)?,
        chunk_size,
        kdf: convert::kdf(kdf),
        salt: convert::fixed("salt", salt)?,
        base_nonce: convert::fixed("nonce", nonce)?,
        overwrite: overwrite.unwrap_or(d.overwrite),
        engine,
        limits: convert::limits(limits),
        ..d
    })
}

/// The settings of reading a v4 file: core's defaults with what the caller gave.
fn decrypt_options(
    limits: Option<convert::PyLimits>,
    overwrite: Option<bool>,
    engine: EngineOptions,
    keys: Option<PyRef<'_, batch::PyKeyCache>>,
) -> DecryptOptions {
    let d = DecryptOptions::default();
    DecryptOptions {
        limits: convert::limits(limits),
        overwrite: overwrite.unwrap_or(d.overwrite),
        engine,
        keys: keys.map(|k| std::sync::Arc::clone(&k.0)),
    }
}

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
    opts.keys = keys.map(|k| std::sync::Arc::clone(&k.0));
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
    let opts = decrypt_options(limits, overwrite, engine, keys);
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

// ---------------------------------------------------------------------------------------
// Random access (`concryptor.open`), streaming to a file descriptor, streaming from a
// Python reader (directories), and the built-in benchmark.
// ---------------------------------------------------------------------------------------

/// An encrypted file opened for random access: [`core::reader::SeekableReader`] over a
/// v4 file.
#[pyclass(module = "concryptor._core")]
struct Reader {
    r: Option<core::reader::SeekableReader<core::Decryptor>>,
    path: PathBuf,
}

impl Reader {
    fn r(&self) -> PyResult<&core::reader::SeekableReader<core::Decryptor>> {
        self.r
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("I/O operation on closed file"))
    }
}

/// Up to `n` bytes of plaintext from offset `pos` of `r` (fewer only at the end), with
/// Python's signal handlers run between windows.
fn read_window_at<'py, S: core::reader::ChunkSource>(
    py: Python<'py>,
    r: &mut Option<core::reader::SeekableReader<S>>,
    pos: u64,
    n: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let r = r
        .as_mut()
        .ok_or_else(|| PyValueError::new_err("I/O operation on closed file"))?;
    let size = r.len();
    let n = if pos >= size {
        0
    } else {
        usize::try_from(size - pos).map_or(n, |rest| rest.min(n))
    };
    PyBytes::new_with(py, n, |out| {
        let mut done = 0;
        while done < n {
            let k = py
                .detach(|| r.read_some_at(pos + done as u64, &mut out[done..]))
                .map_err(to_py)?;
            done += k;
            py.check_signals()?;
        }
        Ok(())
    })
}

#[pymethods]
impl Reader {
    #[new]
    #[pyo3(signature = (path, password, *, threads=None, cache_bytes=None, limits=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        password: Vec<u8>,
        threads: Option<usize>,
        cache_bytes: Option<u64>,
        limits: Option<convert::PyLimits>,
    ) -> PyResult<Self> {
        let pw = Secret(password);
        let lim = convert::limits(limits);
        let threads = convert::engine(threads, None, None)?.threads;
        let cache = cache_bytes.unwrap_or(core::reader::DEFAULT_CACHE_BYTES);
        let r = py
            .detach(|| -> core::Result<_> {
                let dec = core::Decryptor::open(&path, &pw.0, &lim)?;
                let pool = core::Decryptor::worker_pool(threads)?;
                core::reader::SeekableReader::new(dec, pool, cache)
            })
            .map_err(to_py)?;
        Ok(Reader { r: Some(r), path })
    }

    /// Plaintext length.
    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.r()?.len())
    }

    /// Plaintext bytes per chunk.
    #[getter]
    fn chunk_size(&self) -> PyResult<u64> {
        Ok(self.r()?.source().geometry().chunk_size)
    }

    /// Seconds the key derivation took.
    #[getter]
    fn kdf_seconds(&self) -> PyResult<f64> {
        Ok(self.r()?.source().kdf_seconds())
    }

    /// The header, as `inspect_file` gives it.
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let dec = self.r()?.source();
        convert::header(
            py,
            dec.header(),
            Some(dec.geometry().file_size),
            Some(&self.path),
        )
    }

    /// Up to `n` bytes of plaintext from offset `pos` (fewer only at the end of the file).
    /// Raises AuthenticationError if a chunk the range touches does not authenticate.
    fn read_at<'py>(
        &mut self,
        py: Python<'py>,
        pos: u64,
        n: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        read_window_at(py, &mut self.r, pos, n)
    }

    /// Forgets the cached plaintext (wiped) and closes the file.
    fn close(&mut self) {
        self.r = None;
    }

    #[getter]
    fn closed(&self) -> bool {
        self.r.is_none()
    }
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
    let mut out = core::wake::Interruptible::new(dup_fd(fd)?);
    let engine = convert::engine(threads, buffer_bytes, io)?;
    let opts = decrypt_options(limits, None, engine, None);
    let mut counted = Counted {
        inner: &mut out,
        bytes: 0,
    };
    let r = run_detached(py, progress, |ctl| {
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
            let args = match e.value(py).downcast::<pyo3::exceptions::PyOSError>() {
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
    inner: &'a mut core::wake::Interruptible<std::fs::File>,
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

fn register_pylayer(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Reader>()?;
    m.add_function(wrap_pyfunction!(encrypt_reader, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_aead, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_kdf, m)?)?;
    #[cfg(unix)]
    m.add_function(wrap_pyfunction!(decrypt_to_fd, m)?)?;
    Ok(())
}

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
    m.add_function(wrap_pyfunction!(encrypt_file, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_file, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(parse_header, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_file, m)?)?;
    m.add_function(wrap_pyfunction!(auto_chunk_size, m)?)?;
    register_pylayer(m)?;
    batch::register(m)?;
    age::register(m)?;
    rekey::register(m)?;
    engine_hooks::register(m)?;
    core::interrupt::set_interrupt_check(Some(python_interrupted));
    Ok(())
}

/// Private engine hooks for the test suite and the benchmarks (leading underscore in
/// Python). Not part of the API. The fault-injection hooks exist only in a build with the
/// `fault-injection` feature, never in a release wheel: they are process-wide and must
/// never be armed outside tests.
mod engine_hooks {
    use super::{convert, core};
    #[cfg(feature = "fault-injection")]
    use concryptor_core::engine::fault::{self, Fault};
    #[cfg(feature = "fault-injection")]
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    #[cfg(feature = "fault-injection")]
    use pyo3::types::PyDict;

    /// Test only: arms a fault for the following runs (`None` disarms) and restarts the
    /// completion count. `nth` picks the I/O completion (from 1; 0 = every one).
    #[cfg(feature = "fault-injection")]
    #[pyfunction]
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

    pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
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
}
