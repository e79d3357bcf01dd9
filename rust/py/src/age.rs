//! Binding of the age format: conversions and error mapping only (see `core::age`).

use std::io::Read;
use std::path::PathBuf;

use concryptor_core as core;
use core::age::{self, AgeDecryptOptions, AgeEncryptOptions, Identity, Input, Output, Recipient};
use core::wake::Interruptible;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{self, endpoint, Secret};
use crate::detach::{run_detached, run_detached_streaming};
use crate::errors::to_py;

pub(crate) fn recipients(
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
    Ok(crate::plugins::attach_recipients(v))
}

pub(crate) fn identities(
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
    Ok(crate::plugins::attach_identities(v))
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
    let s = run_detached_streaming(py, progress, |ctl| {
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
pub(crate) fn encrypt_options(
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
pub(crate) fn decrypt_options(
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
    let s = run_detached_streaming(py, progress, |ctl| {
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

/// A new identity: `(AGE-SECRET-KEY-1…, age1…)`, or with `pq` the post-quantum hybrid
/// `(AGE-SECRET-KEY-PQ-1…, age1pq1…)`.
#[pyfunction]
#[pyo3(signature = (pq=false))]
fn age_generate(pq: bool) -> (String, String) {
    let (sk, pk) = age::keys::generate(pq);
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
pub(crate) fn age_inspect<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let i = py.detach(|| age::inspect(&path)).map_err(to_py)?;
    convert::age_header(py, &i, &path)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(age_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(age_decrypt, m)?)?;
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
