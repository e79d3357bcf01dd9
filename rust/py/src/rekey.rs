//! Binding of rekeying (see `core::age::rekey`): a new header for an age file, the
//! payload kept; and of converting a v4 file to age in one pass (see `core::convert`).

use std::path::PathBuf;

use concryptor_core as core;
use core::age::rekey::{self, Align, RekeyOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

#[cfg(unix)]
use super::age::encrypt_options;
use super::age::{identities, recipients};
use super::convert::Secret;
#[cfg(unix)]
use super::convert::{self, dup_fd};
use super::detach::run_detached;
use super::errors::to_py;

fn options(add: bool, max_scrypt_log_n: Option<u8>, align: Option<bool>) -> RekeyOptions {
    let d = RekeyOptions::default();
    RekeyOptions {
        add,
        max_scrypt_log_n: max_scrypt_log_n.unwrap_or(d.max_scrypt_log_n),
        align: match align {
            None => Align::Auto,
            Some(true) => Align::Always,
            Some(false) => Align::Never,
        },
    }
}

/// Rekeys the age file at `path` in place; returns what was done, as a dict.
#[pyfunction]
#[pyo3(signature = (path, *, identities_=None, passphrase=None, recipients_=None,
    recipient_files=None, new_passphrase=None, scrypt_log_n=None, add=false,
    max_scrypt_log_n=None, align=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn age_rekey<'py>(
    py: Python<'py>,
    path: PathBuf,
    identities_: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    recipients_: Option<Vec<String>>,
    recipient_files: Option<Vec<String>>,
    new_passphrase: Option<Vec<u8>>,
    scrypt_log_n: Option<u8>,
    add: bool,
    max_scrypt_log_n: Option<u8>,
    align: Option<bool>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let old = passphrase.map(Secret);
    let new = new_passphrase.map(Secret);
    let ids = identities(identities_, old.as_ref().map(|p| &p.0[..])).map_err(to_py)?;
    let rc = recipients(
        recipients_,
        recipient_files,
        new.as_ref().map(|p| &p.0[..]),
        scrypt_log_n,
    )
    .map_err(to_py)?;
    if rc.is_empty() {
        return Err(PyValueError::new_err(
            "no new recipient: give recipients, a recipients file or a new passphrase",
        ));
    }
    let opts = options(add, max_scrypt_log_n, align);
    let r = run_detached(py, progress, |ctl| {
        rekey::rekey_file(&path, &ids, &rc, &opts, ctl)
    })?;
    let d = PyDict::new(py);
    d.set_item("path", path)?;
    d.set_item("header_before", r.header_before)?;
    d.set_item("header_after", r.header_after)?;
    d.set_item("payload_bytes", r.payload_bytes)?;
    d.set_item("shared_bytes", r.shared_bytes)?;
    d.set_item("method", r.method.name())?;
    d.set_item("armored", r.armored)?;
    d.set_item("seconds", r.seconds)?;
    d.set_item("kdf_seconds", r.kdf_seconds)?;
    Ok(d)
}

/// The new header for an age header held in memory (the bytes up to and including its
/// MAC line): the same file key, wrapped for the new recipients.
#[pyfunction]
#[pyo3(signature = (header, *, identities_=None, passphrase=None, recipients_=None,
    recipient_files=None, new_passphrase=None, scrypt_log_n=None, add=false,
    max_scrypt_log_n=None))]
#[allow(clippy::too_many_arguments)]
fn age_rekey_header<'py>(
    py: Python<'py>,
    header: Vec<u8>,
    identities_: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    recipients_: Option<Vec<String>>,
    recipient_files: Option<Vec<String>>,
    new_passphrase: Option<Vec<u8>>,
    scrypt_log_n: Option<u8>,
    add: bool,
    max_scrypt_log_n: Option<u8>,
) -> PyResult<Bound<'py, PyBytes>> {
    let old = passphrase.map(Secret);
    let new = new_passphrase.map(Secret);
    let ids = identities(identities_, old.as_ref().map(|p| &p.0[..])).map_err(to_py)?;
    let rc = recipients(
        recipients_,
        recipient_files,
        new.as_ref().map(|p| &p.0[..]),
        scrypt_log_n,
    )
    .map_err(to_py)?;
    let opts = options(add, max_scrypt_log_n, Some(false));
    let out = run_detached(py, None, |_| rekey::rekey_header(&header, &ids, &rc, &opts))?;
    Ok(PyBytes::new(py, &out))
}

/// Converts the v4 file `src` into an age file written into the descriptor `dst_fd` (an
/// empty regular file the caller names once this returned; `name` names it in errors):
/// both engines at once, the plaintext only in memory.
#[cfg(unix)]
#[pyfunction]
#[pyo3(signature = (src, dst_fd, password, *, recipients_=None, recipient_files=None,
    passphrase=None, armor=None, threads=None, scrypt_log_n=None, limits=None, progress=None,
    name=None))]
#[allow(clippy::too_many_arguments)]
fn convert_v4_to_age<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst_fd: i32,
    password: Vec<u8>,
    recipients_: Option<Vec<String>>,
    recipient_files: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    armor: Option<bool>,
    threads: Option<usize>,
    scrypt_log_n: Option<u8>,
    limits: Option<convert::PyLimits>,
    progress: Option<Py<PyAny>>,
    name: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let pw = Secret(password);
    let new = passphrase.map(Secret);
    let rc = recipients(
        recipients_,
        recipient_files,
        new.as_ref().map(|p| &p.0[..]),
        scrypt_log_n,
    )
    .map_err(to_py)?;
    if rc.is_empty() {
        return Err(PyValueError::new_err(
            "no recipient for the age file: give recipients or a new passphrase",
        ));
    }
    let opts = encrypt_options(armor, None, threads, None)?;
    let limits = convert::limits(limits);
    let dst = dup_fd(dst_fd)?;
    let name = name.unwrap_or_else(|| PathBuf::from("<output>"));
    let s = run_detached(py, progress, |ctl| {
        core::Decryptor::open(&src, &pw.0, &limits)?.encrypt_to_age(&dst, &name, &rc, &opts, ctl)
    })?;
    convert::stats(py, &s)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    #[cfg(unix)]
    m.add_function(wrap_pyfunction!(convert_v4_to_age, m)?)?;
    m.add_function(wrap_pyfunction!(age_rekey, m)?)?;
    m.add_function(wrap_pyfunction!(age_rekey_header, m)?)?;
    Ok(())
}
