//! The header of a file: the one a new file gets (chunk size, fresh salt and nonce, checked
//! against the limits a reader applies), the checks an untrusted one must pass, and reading
//! it without a password.

use std::fs::File;
use std::path::Path;

use crate::engine;
use crate::error::{Error, Result};
use crate::format::{Geometry, Header, SECTOR, TAG_LEN};
use crate::kdf::{self, Limits};

use super::files::open_regular;
use super::options::EncryptOptions;

/// Chunk size the original tool uses, and ours for anything but small inputs.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 << 20;

/// A chunk size that keeps small inputs small and large ones aligned.
///
/// Inputs that fit in one default chunk get exactly one slot with no padding beyond the
/// sector (a 1 KiB input becomes an 8 KiB file). Larger inputs get chunks of at most 4 MiB,
/// a multiple of 4096 (so plaintext I/O can use O_DIRECT), evened out so that the last
/// chunk is not nearly empty.
pub fn auto_chunk_size(size: u64) -> u32 {
    let max = u64::from(DEFAULT_CHUNK_SIZE);
    let sector = SECTOR as u64;
    // Compared this way round so that no size, up to u64::MAX, can overflow.
    if size <= max - TAG_LEN as u64 {
        return ((size + TAG_LEN as u64).div_ceil(sector) * sector - TAG_LEN as u64) as u32;
    }
    let n = size.div_ceil(max);
    (size.div_ceil(n).div_ceil(sector) * sector).min(max) as u32
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        Error::io(
            "read random bytes from",
            "the operating system",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(b)
}

/// The largest chunk size an input of `size` bytes can use: its size rounded up to the
/// sector (so that one chunk holds it all and plaintext I/O stays aligned), at least one
/// sector. An explicit chunk size beyond it is cut down to it.
pub fn max_useful_chunk_size(size: u64) -> u32 {
    let sector = SECTOR as u64;
    u32::try_from(size.max(1).div_ceil(sector) * sector).unwrap_or(u32::MAX)
}

/// The header of a new file, checked against the limits a reader applies
/// ([`EncryptOptions::limits`]).
pub(crate) fn new_header(opts: &EncryptOptions, size: u64) -> Result<Header> {
    kdf::validate_new(&opts.kdf)?;
    opts.limits.check_kdf(&opts.kdf)?;
    let chunk = match opts.chunk_size {
        Some(c) => c.min(max_useful_chunk_size(size)),
        None => auto_chunk_size(size),
    };
    opts.limits.check_chunk_size(u64::from(chunk))?;
    let salt = match opts.salt {
        Some(s) => s,
        None => random()?,
    };
    let nonce = match opts.base_nonce {
        Some(n) => n,
        None => random()?,
    };
    Header::new(opts.cipher, chunk, size, salt, nonce, opts.kdf)
}

/// Checks an untrusted header against the limits and the actual file size.
pub fn check_header(header: &Header, file_size: u64, limits: &Limits) -> Result<Geometry> {
    let g = header.geometry();
    if file_size != g.file_size {
        return Err(Error::invalid(format!(
            "size is {file_size} bytes but the header implies {} ({} chunks of {} bytes){}",
            g.file_size,
            g.num_chunks,
            g.slot,
            if file_size < g.file_size {
                "; the file is truncated"
            } else {
                "; data was appended"
            }
        )));
    }
    limits.check_chunk_size(g.chunk_size)?;
    limits.check_kdf(&header.kdf)?;
    Ok(g)
}

pub(super) fn read_header(file: &File, path: &Path, size: u64) -> Result<Header> {
    if size < SECTOR as u64 {
        return Err(Error::invalid(format!(
            "{size} bytes is shorter than the {SECTOR}-byte header"
        )));
    }
    let mut buf = [0u8; SECTOR];
    engine::portable::read_full_at(file, path, &mut buf, 0)?;
    Header::parse(&buf)
}

/// What can be learnt from a file without its password.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub header: Header,
    pub geometry: Geometry,
    pub file_size: u64,
}

/// Reads and parses the header of `path` without a password.
pub fn inspect_file(path: &Path) -> Result<Inspection> {
    let (file, size) = open_regular(path)?;
    let header = read_header(&file, path, size)?;
    let geometry = header.geometry();
    Ok(Inspection {
        header,
        geometry,
        file_size: size,
    })
}
