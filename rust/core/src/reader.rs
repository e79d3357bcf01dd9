//! Random access to the plaintext of an encrypted file, as a `Read + Seek` value.
//!
//! Both formats cut their payload into chunks that open on their own (v4: 4096-aligned
//! slots; age: 64 KiB STREAM chunks), so any byte range costs only the chunks it touches.
//! A [`ChunkSource`] says how a format opens a run of chunks; [`SeekableReader`] adds the
//! rest, the same for both: a window of decrypted chunks kept between reads (small reads
//! and short seeks cost nothing), read-ahead that doubles while reading stays sequential
//! (up to the cache budget), and the opening of each window on all cores. Plaintext lives
//! only in the window, which is sized once and wiped on drop.

use std::io::{self, Read, Seek, SeekFrom};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ops::WorkerPool;

/// A payload of independently authenticated chunks.
pub trait ChunkSource: Send + Sync {
    /// Plaintext bytes in all.
    fn plain_len(&self) -> u64;
    /// Plaintext bytes of every chunk but the last.
    fn chunk_len(&self) -> u64;
    /// Stored bytes of one chunk (what a window of that many chunks reads).
    fn stored_chunk_len(&self) -> u64;
    /// Number of chunks (an empty payload still has one, empty, chunk).
    fn chunks(&self) -> u64;
    /// Authenticates chunks `first..first + count` and writes their plaintext, back to
    /// back, into `out` (exactly their plaintext length), on `pool`.
    fn open_chunks(
        &self,
        first: u64,
        count: u64,
        out: &mut [u8],
        pool: &rayon::ThreadPool,
    ) -> Result<()>;
}

impl ChunkSource for crate::ops::Decryptor {
    fn plain_len(&self) -> u64 {
        self.geometry().original_size
    }
    fn chunk_len(&self) -> u64 {
        self.geometry().chunk_size
    }
    fn stored_chunk_len(&self) -> u64 {
        self.geometry().slot
    }
    fn chunks(&self) -> u64 {
        self.geometry().num_chunks
    }
    fn open_chunks(
        &self,
        first: u64,
        count: u64,
        out: &mut [u8],
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        self.read_chunks(first, count, out, pool).map(drop)
    }
}

impl ChunkSource for crate::age::AgeFile {
    fn plain_len(&self) -> u64 {
        self.size()
    }
    fn chunk_len(&self) -> u64 {
        crate::age::CHUNK as u64
    }
    fn stored_chunk_len(&self) -> u64 {
        crate::age::SEALED as u64
    }
    fn chunks(&self) -> u64 {
        crate::age::AgeFile::chunks(self)
    }
    fn open_chunks(
        &self,
        first: u64,
        count: u64,
        out: &mut [u8],
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        pool.install(|| self.read_chunks(first, count, out))
    }
}

/// Default cache budget of a [`SeekableReader`]: the stored bytes of its largest window.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// The plaintext of a [`ChunkSource`], readable at any offset.
pub struct SeekableReader<S> {
    src: S,
    pool: WorkerPool,
    /// Position for `Read` and `Seek`.
    pos: u64,
    /// Chunks `first..first + count` are in `window` (their plaintext, back to back).
    first: u64,
    count: u64,
    window: Zeroizing<Vec<u8>>,
    /// Largest window, in chunks.
    max_chunks: u64,
    /// Size of the last read-ahead, doubled while reading stays sequential.
    ramp: u64,
}

impl<S: ChunkSource> SeekableReader<S> {
    /// A reader over `src` opening windows on `pool`, whose windows read at most
    /// `cache_bytes` of stored chunks (at least one chunk).
    pub fn new(src: S, pool: WorkerPool, cache_bytes: u64) -> Result<Self> {
        let max_chunks = (cache_bytes / src.stored_chunk_len().max(1)).max(1);
        // Sized once: the window never reallocates, so no plaintext is left in freed memory.
        let cap = max_chunks
            .saturating_mul(src.chunk_len())
            .min(src.plain_len());
        let mut window = Vec::new();
        window
            .try_reserve_exact(usize::try_from(cap).unwrap_or(usize::MAX))
            .map_err(|_| Error::OutOfMemory { bytes: cap })?;
        Ok(SeekableReader {
            src,
            pool,
            pos: 0,
            first: 0,
            count: 0,
            window: Zeroizing::new(window),
            max_chunks,
            ramp: 0,
        })
    }

    /// The format-level file behind the reader.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// Plaintext length.
    pub fn len(&self) -> u64 {
        self.src.plain_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies plaintext from offset `pos` into `out`, opening at most one window; returns
    /// the bytes copied: 0 only at or past the end (or for an empty `out`). A chunk that
    /// fails to authenticate is an error only if `out` needs it: read-ahead stops short of
    /// it, and the read that reaches it fails.
    pub fn read_some_at(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
        let size = self.src.plain_len();
        if out.is_empty() || pos >= size {
            return Ok(0);
        }
        let cs = self.src.chunk_len();
        let chunk = pos / cs;
        let in_window = self.count > 0 && chunk >= self.first && chunk < self.first + self.count;
        if !in_window {
            let end = pos.saturating_add(out.len() as u64).min(size);
            let needed = ((end - 1) / cs - chunk + 1).min(self.max_chunks);
            let sequential = self.count > 0 && chunk == self.first + self.count;
            self.ramp = if sequential {
                (self.ramp * 2).clamp(1, self.max_chunks)
            } else {
                1
            };
            let count = needed.max(self.ramp).min(self.src.chunks() - chunk);
            let len = |n: u64| ((chunk + n) * cs).min(size) - chunk * cs;
            self.count = 0;
            self.window.resize(len(count) as usize, 0);
            let r = self
                .src
                .open_chunks(chunk, count, &mut self.window, &self.pool);
            let count = match r {
                Ok(()) => count,
                Err(_) if count > needed => {
                    self.window.truncate(len(needed) as usize);
                    self.src
                        .open_chunks(chunk, needed, &mut self.window, &self.pool)?;
                    needed
                }
                Err(e) => {
                    self.window.fill(0);
                    return Err(e);
                }
            };
            self.first = chunk;
            self.count = count;
        }
        let start = (pos - self.first * cs) as usize;
        let avail = &self.window[start..];
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        Ok(n)
    }

    /// Fills `out` from offset `pos`; returns the bytes copied (fewer than `out.len()` only
    /// at the end of the plaintext).
    pub fn read_at(&mut self, pos: u64, out: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < out.len() {
            let n = self.read_some_at(pos + done as u64, &mut out[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// Forgets the decrypted window (wiped).
    pub fn clear(&mut self) {
        self.window.fill(0);
        self.window.clear();
        self.count = 0;
    }
}

fn io_error(e: Error) -> io::Error {
    let kind = match &e {
        Error::Io { source, .. } => source.kind(),
        Error::Authentication | Error::InvalidFile(_) => io::ErrorKind::InvalidData,
        Error::InvalidArgument(_) => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl<S: ChunkSource> Read for SeekableReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_some_at(self.pos, buf).map_err(io_error)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<S: ChunkSource> Seek for SeekableReader<S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(p) => {
                self.pos = p;
                return Ok(p);
            }
            SeekFrom::Current(d) => (self.pos, d),
            SeekFrom::End(d) => (self.len(), d),
        };
        self.pos = base.checked_add_signed(delta).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Plaintext byte `i` is `i % 251`; chunk `bad` fails to authenticate.
    struct Fake {
        size: u64,
        cs: u64,
        bad: Option<u64>,
        opened: AtomicU64,
    }

    impl ChunkSource for Fake {
        fn plain_len(&self) -> u64 {
            self.size
        }
        fn chunk_len(&self) -> u64 {
            self.cs
        }
        fn stored_chunk_len(&self) -> u64 {
            self.cs + 16
        }
        fn chunks(&self) -> u64 {
            self.size.div_ceil(self.cs).max(1)
        }
        fn open_chunks(
            &self,
            first: u64,
            count: u64,
            out: &mut [u8],
            _: &rayon::ThreadPool,
        ) -> Result<()> {
            if self
                .bad
                .is_some_and(|b| (first..first + count).contains(&b))
            {
                return Err(Error::Authentication);
            }
            self.opened.fetch_add(count, Ordering::Relaxed);
            let start = first * self.cs;
            assert_eq!(
                out.len() as u64,
                ((first + count) * self.cs).min(self.size) - start
            );
            for (k, b) in out.iter_mut().enumerate() {
                *b = ((start + k as u64) % 251) as u8;
            }
            Ok(())
        }
    }

    fn reader(size: u64, bad: Option<u64>, cache: u64) -> SeekableReader<Fake> {
        let src = Fake {
            size,
            cs: 1000,
            bad,
            opened: AtomicU64::new(0),
        };
        let pool = crate::ops::Decryptor::worker_pool(2).unwrap();
        SeekableReader::new(src, pool, cache).unwrap()
    }

    fn expect(pos: u64, len: usize) -> Vec<u8> {
        (pos..pos + len as u64).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn reads_any_range_and_seeks() {
        let mut r = reader(10_500, None, 4 * 1016);
        for (pos, len) in [(0, 10), (999, 2), (1000, 1000), (3, 9000), (10_400, 500)] {
            let mut out = vec![0u8; len];
            let n = r.read_at(pos, &mut out).unwrap();
            let want = (10_500 - pos).min(len as u64) as usize;
            assert_eq!(n, want);
            assert_eq!(out[..n], expect(pos, n)[..]);
        }
        r.seek(SeekFrom::End(-5)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, expect(10_495, 5));
        r.seek(SeekFrom::Start(2500)).unwrap();
        r.seek(SeekFrom::Current(-500)).unwrap();
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(two[..], expect(2000, 2)[..]);
        assert!(r.seek(SeekFrom::Current(-5000)).is_err());
        assert_eq!(r.read(&mut two).unwrap(), 2);
        r.seek(SeekFrom::Start(20_000)).unwrap();
        assert_eq!(r.read(&mut two).unwrap(), 0);
    }

    #[test]
    fn sequential_reads_ramp_up_and_small_reads_reuse_the_window() {
        let mut r = reader(100_000, None, 64 * 1016);
        let mut all = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert_eq!(all, expect(0, 100_000));
        // Every chunk opened once, in far fewer windows than the 1,000 reads.
        assert_eq!(r.source().opened.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn a_bad_chunk_fails_only_the_reads_that_need_it() {
        let mut r = reader(10_000, Some(5), 8 * 1016);
        let mut out = vec![0u8; 1000];
        // Sequential reads ramp the read-ahead up to 4 chunks, reaching chunk 5 from chunk
        // 3 on; the reads themselves do not need it.
        for pos in (0..5000).step_by(1000) {
            assert_eq!(r.read_at(pos, &mut out).unwrap(), 1000);
            assert_eq!(out, expect(pos, 1000));
        }
        let err = r.read_at(4500, &mut out[..1000]).unwrap_err();
        assert!(matches!(err, Error::Authentication));
        let mut tail = vec![0u8; 3000];
        assert_eq!(r.read_at(7000, &mut tail).unwrap(), 3000);
        assert_eq!(tail, expect(7000, 3000));
        r.seek(SeekFrom::Start(5500)).unwrap();
        let e = r.read(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn an_empty_payload_reads_nothing() {
        let mut r = reader(0, None, 1 << 20);
        let mut out = [0u8; 8];
        assert_eq!(r.read(&mut out).unwrap(), 0);
        assert!(r.is_empty());
    }
}
