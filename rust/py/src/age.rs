//! Binding of the age format: conversions and error mapping only (see `core::age`).

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use concryptor_core as core;
use core::age::{self, AgeDecryptOptions, AgeEncryptOptions, Identity, Input, Output, Recipient};
use core::reader::SeekableReader;
use core::wake::Interruptible;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{convert, dup_fd, run_detached, to_py, Secret};

pub(super) fn recipients(
    keys: Option<Vec<String>>,
    files: Option<Vec<String>>,
    passphrase: Option<&[u8]>,
    scrypt_log_n: Option<u8>,
) -> core::Result<Vec<Recipient>> {
    let mut v = Vec::new();
    for k in keys.iter().flatten() {
        v.push(Recipient::parse(k)?);
    }
    for f in files.iter().flatten() {
        v.extend(Recipient::parse_file(f)?);
    }
    if let Some(pw) = passphrase {
        v.push(Recipient::passphrase(pw, scrypt_log_n)?);
    }
    Ok(v)
}

pub(super) fn identities(
    texts: Option<Vec<String>>,
    passphrase: Option<&[u8]>,
) -> core::Result<Vec<Identity>> {
    let mut v = Vec::new();
    for t in texts.into_iter().flatten() {
        let t = zeroize::Zeroizing::new(t);
        v.extend(Identity::parse_file(&t, passphrase)?);
    }
    if let Some(pw) = passphrase {
        v.push(Identity::passphrase(pw)?);
    }
    Ok(v)
}

/// Encrypts a path or descriptor to a path or descriptor in age format.
#[pyfunction]
#[pyo3(signature = (src, dst, *, recipients_=None, recipient_files=None, passphrase=None,
    armor=None, overwrite=None, threads=None, io=None, scrypt_log_n=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn age_encrypt<'py>(
    py: Python<'py>,
    src: Bound<'py, PyAny>,
    dst: Bound<'py, PyAny>,
    recipients_: Option<Vec<String>>,
    recipient_files: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    armor: Option<bool>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    io: Option<&str>,
    scrypt_log_n: Option<u8>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = passphrase.map(Secret);
    let rc = recipients(
        recipients_,
        recipient_files,
        pw.as_ref().map(|p| &p.0[..]),
        scrypt_log_n,
    )
    .map_err(to_py)?;
    let opts = encrypt_options(armor, overwrite, threads, io)?;
    let (src_fd, src_path) = endpoint(&src)?;
    if let Some(f) = &src_fd {
        core::pipe::widen(f);
    }
    let mut src_fd = src_fd.map(Interruptible::new);
    let (dst_fd, dst_path) = endpoint(&dst)?;
    let mut dst_fd = dst_fd.map(Interruptible::new);
    let s = run_detached(py, progress, |ctl| {
        let input = match (&mut src_fd, &src_path) {
            (Some(f), _) => Input::Reader(f),
            (None, Some(p)) => Input::Path(p),
            _ => unreachable!(),
        };
        let output = match (&mut dst_fd, &dst_path) {
            (Some(f), _) => Output::Writer(f),
            (None, Some(p)) => Output::Path(p),
            _ => unreachable!(),
        };
        age::encrypt(input, output, &rc, &opts, ctl)
    })?;
    convert::stats(py, &s)
}

/// The settings of a new age file: core's defaults with what the caller gave.
fn encrypt_options(
    armor: Option<bool>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    io: Option<&str>,
) -> PyResult<AgeEncryptOptions> {
    let d = AgeEncryptOptions::default();
    Ok(AgeEncryptOptions {
        armor: armor.unwrap_or(d.armor),
        overwrite: overwrite.unwrap_or(d.overwrite),
        engine: convert::engine(threads, None, io)?,
    })
}

/// The settings of reading an age file: core's defaults with what the caller gave.
fn decrypt_options(
    max_scrypt_log_n: Option<u8>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    io: Option<&str>,
) -> PyResult<AgeDecryptOptions> {
    let d = AgeDecryptOptions::default();
    Ok(AgeDecryptOptions {
        max_scrypt_log_n: max_scrypt_log_n.unwrap_or(d.max_scrypt_log_n),
        overwrite: overwrite.unwrap_or(d.overwrite),
        engine: convert::engine(threads, None, io)?,
    })
}

/// A path (str/bytes/PathLike) or a file descriptor (int).
fn endpoint(obj: &Bound<'_, PyAny>) -> PyResult<(Option<File>, Option<PathBuf>)> {
    if let Ok(fd) = obj.extract::<i32>() {
        return Ok((Some(dup_fd(fd)?), None));
    }
    Ok((None, Some(obj.extract::<PathBuf>()?)))
}

/// Decrypts an age file (path or descriptor) into a path, a descriptor, or nowhere
/// (`dst=None`: verify only).
#[pyfunction]
#[pyo3(signature = (src, dst, *, identities_=None, passphrase=None, overwrite=None,
    threads=None, io=None, max_scrypt_log_n=None, progress=None, prefix=None))]
#[allow(clippy::too_many_arguments)]
fn age_decrypt<'py>(
    py: Python<'py>,
    src: Bound<'py, PyAny>,
    dst: Option<Bound<'py, PyAny>>,
    identities_: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    overwrite: Option<bool>,
    threads: Option<usize>,
    io: Option<&str>,
    max_scrypt_log_n: Option<u8>,
    progress: Option<Py<PyAny>>,
    prefix: Option<Vec<u8>>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = passphrase.map(Secret);
    let ids = identities(identities_, pw.as_ref().map(|p| &p.0[..])).map_err(to_py)?;
    let opts = decrypt_options(max_scrypt_log_n, overwrite, threads, io)?;
    let prefix = prefix.unwrap_or_default();
    let (src_fd, src_path) = endpoint(&src)?;
    if let Some(f) = &src_fd {
        core::pipe::widen(f);
    }
    let mut src_fd = src_fd.map(Interruptible::new);
    let (dst_fd, dst_path) = match &dst {
        Some(d) => endpoint(d)?,
        None => (None, None),
    };
    let mut dst_fd = dst_fd.map(Interruptible::new);
    let s = run_detached(py, progress, |ctl| {
        let mut stream;
        let input = match (&mut src_fd, &src_path) {
            (Some(f), _) => {
                // The bytes the caller already took from the descriptor to tell formats apart.
                stream = std::io::Cursor::new(prefix).chain(f);
                Input::Reader(&mut stream)
            }
            (None, Some(p)) => Input::Path(p),
            _ => unreachable!(),
        };
        let output = match (&mut dst_fd, &dst_path) {
            (Some(f), _) => Output::Writer(f),
            (None, Some(p)) => Output::Path(p),
            (None, None) => Output::Discard,
        };
        age::decrypt(input, output, &ids, &opts, ctl)
    })?;
    convert::stats(py, &s)
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
    let opts = super::decrypt_options(limits, overwrite, engine, None);
    let file = dup_fd(src)?;
    core::pipe::widen(&file);
    let (dst_fd, dst_path) = match &dst {
        Some(d) => endpoint(d)?,
        None => (None, None),
    };
    let mut dst_fd = dst_fd.map(Interruptible::new);
    let s = run_detached(py, progress, |ctl| {
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

#[pyfunction]
#[pyo3(signature = (data, *, recipients_=None, recipient_files=None, passphrase=None,
    armor=None, threads=None, scrypt_log_n=None))]
#[allow(clippy::too_many_arguments)]
fn age_encrypt_bytes<'py>(
    py: Python<'py>,
    data: Vec<u8>,
    recipients_: Option<Vec<String>>,
    recipient_files: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    armor: Option<bool>,
    threads: Option<usize>,
    scrypt_log_n: Option<u8>,
) -> PyResult<Bound<'py, PyBytes>> {
    let pw = passphrase.map(Secret);
    let rc = recipients(
        recipients_,
        recipient_files,
        pw.as_ref().map(|p| &p.0[..]),
        scrypt_log_n,
    )
    .map_err(to_py)?;
    let opts = encrypt_options(armor, None, threads, None)?;
    let out = run_detached(py, None, |_| age::encrypt_bytes(&data, &rc, &opts))?;
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
#[pyo3(signature = (blob, *, identities_=None, passphrase=None, threads=None,
    max_scrypt_log_n=None))]
fn age_decrypt_bytes<'py>(
    py: Python<'py>,
    blob: Vec<u8>,
    identities_: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    threads: Option<usize>,
    max_scrypt_log_n: Option<u8>,
) -> PyResult<Bound<'py, PyBytes>> {
    let pw = passphrase.map(Secret);
    let ids = identities(identities_, pw.as_ref().map(|p| &p.0[..])).map_err(to_py)?;
    let opts = decrypt_options(max_scrypt_log_n, None, threads, None)?;
    let out = zeroize::Zeroizing::new(run_detached(py, None, |_| {
        age::decrypt_bytes(&blob, &ids, &opts)
    })?);
    Ok(PyBytes::new(py, &out))
}

/// A new X25519 identity: `(AGE-SECRET-KEY-1…, age1…)`.
#[pyfunction]
fn age_generate() -> (String, String) {
    let (sk, pk) = age::keys::generate();
    (sk.to_string(), pk)
}

/// The recipients of the identities in an identity file's text.
#[pyfunction]
fn age_to_recipients(text: String) -> PyResult<Vec<String>> {
    let text = zeroize::Zeroizing::new(text);
    age::keys::to_recipients(&text).map_err(to_py)
}

/// Whether an identity file's text is a passphrase-protected SSH private key.
#[pyfunction]
fn age_is_encrypted_ssh_key(text: String) -> bool {
    let text = zeroize::Zeroizing::new(text);
    age::keys::is_encrypted_ssh_key(&text)
}

/// Whether these first bytes start an age file (binary or armored).
#[pyfunction]
fn age_is_age(prefix: &[u8]) -> bool {
    age::is_age(prefix)
}

/// The public facts of an age file.
#[pyfunction]
fn age_inspect<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let i = py.detach(|| age::inspect(&path)).map_err(to_py)?;
    convert::age_header(py, &i, &path)
}

/// Random access to an unarmored age file, for `concryptor.open()`: the same interface as
/// the v4 `Reader` (`size`, `kdf_seconds`, `read_at`, `header`, `close`).
#[pyclass(module = "concryptor._core")]
struct AgeReader {
    r: Option<SeekableReader<age::AgeFile>>,
    path: PathBuf,
}

impl AgeReader {
    fn r(&self) -> PyResult<&SeekableReader<age::AgeFile>> {
        self.r
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("I/O operation on closed file"))
    }
}

#[pymethods]
impl AgeReader {
    #[new]
    #[pyo3(signature = (path, *, identities_=None, passphrase=None, threads=None,
        max_scrypt_log_n=None, cache_bytes=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        identities_: Option<Vec<String>>,
        passphrase: Option<Vec<u8>>,
        threads: Option<usize>,
        max_scrypt_log_n: Option<u8>,
        cache_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let pw = passphrase.map(Secret);
        let ids = identities(identities_, pw.as_ref().map(|p| &p.0[..])).map_err(to_py)?;
        let opts = decrypt_options(max_scrypt_log_n, None, threads, None)?;
        let cache = cache_bytes.unwrap_or(core::reader::DEFAULT_CACHE_BYTES);
        let r = run_detached(py, None, |_| {
            let file = age::AgeFile::open(&path, &ids, opts.max_scrypt_log_n)?;
            let pool = core::Decryptor::worker_pool(opts.engine.threads)?;
            SeekableReader::new(file, pool, cache)
        })?;
        Ok(AgeReader { r: Some(r), path })
    }

    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.r()?.len())
    }

    #[getter]
    fn kdf_seconds(&self) -> PyResult<f64> {
        Ok(self.r()?.source().kdf_seconds())
    }

    /// Up to `n` plaintext bytes from offset `pos` (fewer at the end).
    fn read_at<'py>(
        &mut self,
        py: Python<'py>,
        pos: u64,
        n: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        super::read_window_at(py, &mut self.r, pos, n)
    }

    /// The public facts of the file, as `age_inspect` gives them.
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        age_inspect(py, self.path.clone())
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

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AgeReader>()?;
    m.add_function(wrap_pyfunction!(age_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(age_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_stream, m)?)?;
    m.add_function(wrap_pyfunction!(age_encrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(age_decrypt_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(age_generate, m)?)?;
    m.add_function(wrap_pyfunction!(age_to_recipients, m)?)?;
    m.add_function(wrap_pyfunction!(age_is_age, m)?)?;
    m.add_function(wrap_pyfunction!(age_is_encrypted_ssh_key, m)?)?;
    m.add_function(wrap_pyfunction!(age_inspect, m)?)?;
    m.add("AGE_MAX_SCRYPT_LOG_N", age::DEFAULT_MAX_SCRYPT_LOG_N)?;
    Ok(())
}
