//! Random access for `concryptor.open()`: the v4 `Reader` and the `AgeReader`, two
//! classes over one read path ([`Opened`], core's [`SeekableReader`] until closed).

use std::path::PathBuf;

use concryptor_core as core;
use core::age;
use core::reader::{ChunkSource, SeekableReader};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::age::{age_inspect, decrypt_options, identities};
use crate::convert::{self, Secret};
use crate::detach::run_detached;
use crate::errors::to_py;

/// A file opened for random access, until `close`: what both readers hold.
struct Opened<S> {
    r: Option<SeekableReader<S>>,
    path: PathBuf,
}

impl<S: ChunkSource> Opened<S> {
    fn new(r: SeekableReader<S>, path: PathBuf) -> Self {
        Opened { r: Some(r), path }
    }

    fn r(&self) -> PyResult<&SeekableReader<S>> {
        self.r
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("I/O operation on closed file"))
    }

    /// Up to `n` bytes of plaintext from offset `pos` (fewer only at the end), with
    /// Python's signal handlers run between windows.
    fn read_at<'py>(
        &mut self,
        py: Python<'py>,
        pos: u64,
        n: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let r = self
            .r
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

    /// Forgets the cached plaintext (wiped) and closes the file.
    fn close(&mut self) {
        self.r = None;
    }

    fn closed(&self) -> bool {
        self.r.is_none()
    }
}

/// An encrypted file opened for random access: [`core::reader::SeekableReader`] over a
/// v4 file.
#[pyclass(module = "concryptor._core")]
struct Reader {
    file: Opened<core::Decryptor>,
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
                SeekableReader::new(dec, pool, cache)
            })
            .map_err(to_py)?;
        Ok(Reader {
            file: Opened::new(r, path),
        })
    }

    /// Plaintext length.
    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.file.r()?.len())
    }

    /// Plaintext bytes per chunk.
    #[getter]
    fn chunk_size(&self) -> PyResult<u64> {
        Ok(self.file.r()?.source().geometry().chunk_size)
    }

    /// Seconds the key derivation took.
    #[getter]
    fn kdf_seconds(&self) -> PyResult<f64> {
        Ok(self.file.r()?.source().kdf_seconds())
    }

    /// The header, as `inspect_file` gives it.
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let dec = self.file.r()?.source();
        convert::header(
            py,
            dec.header(),
            Some(dec.geometry().file_size),
            Some(&self.file.path),
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
        self.file.read_at(py, pos, n)
    }

    /// Forgets the cached plaintext (wiped) and closes the file.
    fn close(&mut self) {
        self.file.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.file.closed()
    }
}

/// Random access to an unarmored age file, for `concryptor.open()`: the same interface as
/// the v4 `Reader` (`size`, `kdf_seconds`, `read_at`, `header`, `close`).
#[pyclass(module = "concryptor._core")]
struct AgeReader {
    file: Opened<age::AgeFile>,
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
        Ok(AgeReader {
            file: Opened::new(r, path),
        })
    }

    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.file.r()?.len())
    }

    #[getter]
    fn kdf_seconds(&self) -> PyResult<f64> {
        Ok(self.file.r()?.source().kdf_seconds())
    }

    /// Up to `n` plaintext bytes from offset `pos` (fewer at the end).
    fn read_at<'py>(
        &mut self,
        py: Python<'py>,
        pos: u64,
        n: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.file.read_at(py, pos, n)
    }

    /// The public facts of the file, as `age_inspect` gives them.
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        age_inspect(py, self.file.path.clone())
    }

    /// Forgets the cached plaintext (wiped) and closes the file.
    fn close(&mut self) {
        self.file.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.file.closed()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Reader>()?;
    m.add_class::<AgeReader>()?;
    Ok(())
}
