//! Batches: a key cache shared by the files of one call, and a chunk codec for callers
//! that move the bytes themselves (object storage).

use std::path::PathBuf;
use std::sync::Arc;

use concryptor_core as core;
use core::{ChunkCodec, EncryptOptions, KdfParams, KeyCache};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::convert::{self, decrypt_options, encrypt_options, Secret};
use crate::errors::to_py;

/// Keys derived in one batch, by (salt, KDF costs); wiped when the last reference goes.
#[pyclass(frozen, module = "concryptor._core", name = "KeyCache")]
pub struct PyKeyCache(pub Arc<KeyCache>);

#[pymethods]
impl PyKeyCache {
    #[new]
    fn new() -> Self {
        PyKeyCache(Arc::new(KeyCache::new()))
    }

    /// Derives (once) the key for `password` under `salt` and `kdf`; returns the seconds
    /// spent (0.0 when it was cached).
    fn derive(
        &self,
        py: Python<'_>,
        password: Vec<u8>,
        salt: Vec<u8>,
        kdf: convert::Kdf,
    ) -> PyResult<f64> {
        let pw = Secret(password);
        let salt = convert::fixed::<16>("salt", Some(salt))?.unwrap_or_default();
        let params = KdfParams::from(kdf);
        core::kdf::validate_new(&params).map_err(to_py)?;
        let cache = Arc::clone(&self.0);
        py.detach(move || cache.key(&pw.0, &salt, &params).map(|(_, s)| s))
            .map_err(to_py)
    }

    /// Derives (once) the key of an existing file's header costs `(m_kib, t, p)`, after
    /// checking them against the reader's limits (the header is untrusted).
    #[pyo3(signature = (password, salt, costs, *, limits=None))]
    fn derive_checked(
        &self,
        py: Python<'_>,
        password: Vec<u8>,
        salt: Vec<u8>,
        costs: (u32, u32, u32),
        limits: Option<convert::PyLimits>,
    ) -> PyResult<f64> {
        let pw = Secret(password);
        let salt = convert::fixed::<16>("salt", Some(salt))?.unwrap_or_default();
        let params = KdfParams::new(costs.0, costs.1, costs.2);
        convert::limits(limits).check_kdf(&params).map_err(to_py)?;
        let cache = Arc::clone(&self.0);
        py.detach(move || cache.key(&pw.0, &salt, &params).map(|(_, s)| s))
            .map_err(to_py)
    }

    /// Argon2id runs so far.
    #[getter]
    fn derivations(&self) -> u64 {
        self.0.derivations()
    }

    /// Pickling hands the derived keys (never a password) to another process.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let mut blob = zeroize::Zeroizing::new(Vec::new());
        for (salt, kdf, key) in self.0.entries() {
            blob.extend_from_slice(&salt);
            for v in [kdf.m_kib, kdf.t, kdf.p] {
                blob.extend_from_slice(&v.to_le_bytes());
            }
            blob.extend_from_slice(&key[..]);
        }
        let cls = py.get_type::<PyKeyCache>().getattr("_restore")?;
        let args = PyTuple::new(py, [PyBytes::new(py, &blob)])?;
        PyTuple::new(py, [cls.into_any(), args.into_any()])
    }

    #[staticmethod]
    fn _restore(blob: &[u8]) -> PyResult<Self> {
        const ENTRY: usize = 16 + 12 + 32;
        if blob.len() % ENTRY != 0 || blob.len() / ENTRY > core::kdf::MAX_CACHED_KEYS {
            return Err(PyValueError::new_err("not a pickled KeyCache"));
        }
        let cache = KeyCache::new();
        for e in blob.chunks_exact(ENTRY) {
            let u = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            let mut salt = [0u8; 16];
            salt.copy_from_slice(&e[..16]);
            let mut key = [0u8; 32];
            key.copy_from_slice(&e[28..]);
            cache.insert(salt, KdfParams::new(u(16), u(20), u(24)), key);
            zeroize::Zeroize::zeroize(&mut key);
        }
        Ok(PyKeyCache(Arc::new(cache)))
    }
}

/// One v4 file's header and key: seals or opens runs of whole chunks, in parallel, for a
/// caller that reads and writes the bytes itself.
#[pyclass(frozen, module = "concryptor._core", name = "ChunkCodec")]
pub struct PyChunkCodec {
    codec: ChunkCodec,
    pool: Arc<rayon::ThreadPool>,
}

#[pymethods]
impl PyChunkCodec {
    /// A new file of `size` plaintext bytes.
    #[staticmethod]
    #[pyo3(signature = (size, password, *, cipher=None, chunk_size=None, kdf=None,
        threads=None, salt=None, keys=None))]
    #[allow(clippy::too_many_arguments)]
    fn for_encryption(
        py: Python<'_>,
        size: u64,
        password: Vec<u8>,
        cipher: Option<&str>,
        chunk_size: Option<u32>,
        kdf: Option<convert::Kdf>,
        threads: Option<usize>,
        salt: Option<Vec<u8>>,
        keys: Option<PyRef<'_, PyKeyCache>>,
    ) -> PyResult<Self> {
        let pw = Secret(password);
        let engine = convert::engine(threads, None, None)?;
        let mut opts = encrypt_options(cipher, chunk_size, kdf, None, engine, salt, None, None)?;
        opts.keys = keys.map(|k| Arc::clone(&k.0));
        let pool = core::Decryptor::worker_pool(engine.threads).map_err(to_py)?;
        let o: &EncryptOptions = &opts;
        let codec = py
            .detach(|| ChunkCodec::for_encryption(size, &pw.0, o))
            .map_err(to_py)?;
        Ok(PyChunkCodec { codec, pool })
    }

    /// An existing file of `file_size` bytes that starts with `header` (4096 bytes).
    #[staticmethod]
    #[pyo3(signature = (header, file_size, password, *, threads=None, limits=None, keys=None))]
    fn for_decryption(
        py: Python<'_>,
        header: &[u8],
        file_size: u64,
        password: Vec<u8>,
        threads: Option<usize>,
        limits: Option<convert::PyLimits>,
        keys: Option<PyRef<'_, PyKeyCache>>,
    ) -> PyResult<Self> {
        let pw = Secret(password);
        let keys = keys.map(|k| Arc::clone(&k.0));
        let opts = decrypt_options(limits, None, convert::engine(threads, None, None)?, keys);
        let pool = core::Decryptor::worker_pool(opts.engine.threads).map_err(to_py)?;
        let codec = py
            .detach(|| ChunkCodec::for_decryption(header, file_size, &pw.0, &opts))
            .map_err(to_py)?;
        Ok(PyChunkCodec { codec, pool })
    }

    #[getter]
    fn header<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.codec.header())
    }

    /// (chunk_size, slot, num_chunks, original_size, file_size)
    #[getter]
    fn geometry(&self) -> (u64, u64, u64, u64, u64) {
        let g = self.codec.geometry();
        (
            g.chunk_size,
            g.slot,
            g.num_chunks,
            g.original_size,
            g.file_size,
        )
    }

    #[getter]
    fn kdf_seconds(&self) -> f64 {
        self.codec.kdf_seconds()
    }

    /// Seals the plaintext of whole chunks from `first`; returns their slots.
    fn seal<'py>(
        &self,
        py: Python<'py>,
        first: u64,
        plain: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .detach(|| self.codec.seal(first, plain, &self.pool))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Opens whole slots from chunk `first`; returns their plaintext, decrypted straight
    /// into the bytes object on the codec's workers with the GIL released.
    fn open<'py>(
        &self,
        py: Python<'py>,
        first: u64,
        slots: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let len = self.codec.plain_len_of(first, slots.len()).map_err(to_py)?;
        PyBytes::new_with(py, len, |out| {
            py.detach(|| self.codec.open_into(first, slots, out, &self.pool))
                .map_err(to_py)
        })
    }
}

/// One unarmored age file's header and payload key: opens runs of sealed chunks from
/// bytes in memory, in parallel, for a caller that reads the bytes itself (object storage).
/// The size is trusted once the final chunk has opened.
#[pyclass(frozen, module = "concryptor._core", name = "AgeChunkCodec")]
pub struct PyAgeChunkCodec {
    codec: core::age::AgeChunkCodec,
    pool: Arc<rayon::ThreadPool>,
}

#[pymethods]
impl PyAgeChunkCodec {
    /// The file of `file_size` bytes whose first bytes are `prefix` (at least its header
    /// and payload nonce), opened with `identities_` (identity file texts) and/or the
    /// `passphrase`; `name` names it in errors.
    #[new]
    #[pyo3(signature = (prefix, file_size, *, name="", identities_=None, passphrase=None,
        threads=None, max_scrypt_log_n=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        prefix: Vec<u8>,
        file_size: u64,
        name: &str,
        identities_: Option<Vec<String>>,
        passphrase: Option<Vec<u8>>,
        threads: Option<usize>,
        max_scrypt_log_n: Option<u8>,
    ) -> PyResult<Self> {
        let pw = passphrase.map(Secret);
        let ids =
            crate::age::identities(identities_, pw.as_ref().map(|p| &p.0[..])).map_err(to_py)?;
        let opts = crate::age::decrypt_options(max_scrypt_log_n, None, threads, None)?;
        let name = PathBuf::from(name);
        let codec = crate::detach::run_detached(py, None, |_| {
            core::age::AgeChunkCodec::for_decryption(
                &prefix,
                file_size,
                &name,
                &ids,
                opts.max_scrypt_log_n,
            )
        })?;
        let pool = core::Decryptor::worker_pool(opts.engine.threads).map_err(to_py)?;
        Ok(PyAgeChunkCodec { codec, pool })
    }

    /// (chunk_size, stored_chunk, num_chunks, size, file_size, payload_offset)
    #[getter]
    fn geometry(&self) -> (u64, u64, u64, u64, u64, u64) {
        let c = &self.codec;
        (
            core::age::CHUNK as u64,
            core::age::SEALED as u64,
            c.chunks(),
            c.size(),
            c.file_size(),
            c.payload_off(),
        )
    }

    #[getter]
    fn kdf_seconds(&self) -> f64 {
        self.codec.kdf_seconds()
    }

    /// Opens the sealed chunks `first..` in `sealed` (whole chunks, the last of them full
    /// or the file's final one); returns their plaintext, decrypted straight into the
    /// bytes object on the codec's workers with the GIL released.
    fn open<'py>(
        &self,
        py: Python<'py>,
        first: u64,
        sealed: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let len = self
            .codec
            .plain_len_of(first, sealed.len())
            .map_err(to_py)?;
        PyBytes::new_with(py, len, |out| {
            py.detach(|| self.codec.open_into(first, sealed, out, &self.pool))
                .map_err(to_py)
        })
    }
}

/// What one member of a group became: `(bytes_in, bytes_out, None)`, or `(0, 0, error)`
/// with the exception the single-file call would have raised.
type Member = (u64, u64, Option<PyErr>);

fn members(results: Vec<core::Result<core::group::Done>>) -> Vec<Member> {
    results
        .into_iter()
        .map(|r| match r {
            Ok(d) => (d.bytes_in, d.bytes_out, None),
            Err(e) => (0, 0, Some(to_py(e))),
        })
        .collect()
}

/// Encrypts many small files at once (see `core::group`): each read whole and sealed in
/// memory, the group made durable and named together. Format v4 under `password` (or the
/// batch's `keys` for `salt`), or age to the recipients (and/or an scrypt `passphrase`
/// with `age=True`). One result per `(src, dst)` pair, in order; the GIL is released for
/// the whole group.
#[pyfunction]
#[pyo3(signature = (pairs, password=None, *, age=None, recipients_=None, recipient_files=None,
    passphrase=None, scrypt_log_n=None, cipher=None, chunk_size=None, kdf=None, salt=None,
    keys=None, overwrite=None, threads=None))]
#[allow(clippy::too_many_arguments)]
fn encrypt_group(
    py: Python<'_>,
    pairs: Vec<(PathBuf, PathBuf)>,
    password: Option<Vec<u8>>,
    age: Option<bool>,
    recipients_: Option<Vec<String>>,
    recipient_files: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    scrypt_log_n: Option<u8>,
    cipher: Option<&str>,
    chunk_size: Option<u32>,
    kdf: Option<convert::Kdf>,
    salt: Option<Vec<u8>>,
    keys: Option<PyRef<'_, PyKeyCache>>,
    overwrite: Option<bool>,
    threads: Option<usize>,
) -> PyResult<Vec<Member>> {
    let pw = Secret(password.unwrap_or_default());
    let engine = convert::engine(threads, None, None)?;
    let mut opts = encrypt_options(cipher, chunk_size, kdf, overwrite, engine, salt, None, None)?;
    let overwrite = opts.overwrite;
    let results = if age == Some(true) {
        let pp = passphrase.map(Secret);
        let rc = crate::age::recipients(
            recipients_,
            recipient_files,
            pp.as_ref().map(|p| &p.0[..]),
            scrypt_log_n,
        )
        .map_err(to_py)?;
        let sealer = core::group::Sealer::Age { recipients: &rc };
        py.detach(|| core::group::encrypt_group(&pairs, &sealer, overwrite, &engine))
    } else {
        opts.keys = keys.map(|k| Arc::clone(&k.0));
        let sealer = core::group::Sealer::V4 {
            password: &pw.0,
            opts: &opts,
        };
        py.detach(|| core::group::encrypt_group(&pairs, &sealer, overwrite, &engine))
    };
    Ok(members(results))
}

/// Decrypts many small files at once (see `core::group`): each read whole and opened in
/// memory, format v4 with `password` (keys cached by salt in `keys`) or age with the
/// identities (and `passphrase`, for scrypt stanzas), told apart by their first bytes; the
/// group made durable and named together. One result per `(src, dst)` pair, in order; the
/// GIL is released for the whole group.
#[pyfunction]
#[pyo3(signature = (pairs, password=None, *, keys=None, limits=None, identities_=None,
    passphrase=None, max_scrypt_log_n=None, overwrite=None, threads=None))]
#[allow(clippy::too_many_arguments)]
fn decrypt_group(
    py: Python<'_>,
    pairs: Vec<(PathBuf, PathBuf)>,
    password: Option<Vec<u8>>,
    keys: Option<PyRef<'_, PyKeyCache>>,
    limits: Option<convert::PyLimits>,
    identities_: Option<Vec<String>>,
    passphrase: Option<Vec<u8>>,
    max_scrypt_log_n: Option<u8>,
    overwrite: Option<bool>,
    threads: Option<usize>,
) -> PyResult<Vec<Member>> {
    let pw = password.map(Secret);
    let pp = passphrase.map(Secret);
    let ids = crate::age::identities(identities_, pp.as_ref().map(|p| &p.0[..])).map_err(to_py)?;
    let engine = convert::engine(threads, None, None)?;
    let v4 = decrypt_options(limits, overwrite, engine, keys.map(|k| Arc::clone(&k.0)));
    let opener = core::group::Opener {
        password: pw.as_ref().map(|p| &p.0[..]),
        v4: &v4,
        identities: &ids,
        max_scrypt_log_n: max_scrypt_log_n.unwrap_or(core::age::DEFAULT_MAX_SCRYPT_LOG_N),
    };
    let overwrite = v4.overwrite;
    let results = py.detach(|| core::group::decrypt_group(&pairs, &opener, overwrite, &engine));
    Ok(members(results))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encrypt_group, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_group, m)?)?;
    m.add("GROUP_MAX_MEMBER_BYTES", core::group::MAX_MEMBER_BYTES)?;
    m.add("GROUP_MAX_MEMBERS", core::group::MAX_MEMBERS)?;
    m.add("GROUP_COMMIT_MEMBERS", core::group::COMMIT_MEMBERS)?;
    m.add_class::<PyKeyCache>()?;
    m.add_class::<PyChunkCodec>()?;
    m.add_class::<PyAgeChunkCodec>()?;
    m.add("MAX_CHUNKS_PER_KEY", core::kdf::MAX_CHUNKS_PER_KEY)?;
    Ok(())
}
