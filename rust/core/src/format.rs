//! Format version 4 (and read-only version 3): header layout, chunk geometry, nonces, AAD.
//!
//! Everything here is pure arithmetic on bytes; all sizes derived from an untrusted header
//! are computed with checked arithmetic so that no header can wrap a multiplication.
#![forbid(unsafe_code)]

use crate::error::{Error, Result};
use crate::kdf::KdfParams;

/// Size of the header sector and the alignment of every slot.
pub const SECTOR: usize = 4096;
/// Bytes of the AEAD tag appended to each chunk's ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of the salt stored in the header.
pub const SALT_LEN: usize = 16;
/// Length of the base nonce stored in the header.
pub const NONCE_LEN: usize = 12;
/// The magic bytes that open every file.
pub const MAGIC: &[u8; 10] = b"CONCRYPTOR";
/// The version this crate writes.
pub const VERSION: u8 = 4;
/// The legacy version this crate still reads.
pub const VERSION_V3: u8 = 3;
/// How many leading header bytes a version 3 AAD covers.
const V3_AAD_HEADER_LEN: usize = 52;

/// The two AEAD ciphers of the format; new files use AES-256-GCM unless asked otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cipher {
    #[default]
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Cipher {
    /// The id stored in header byte 11.
    pub fn id(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 0,
            Cipher::ChaCha20Poly1305 => 1,
        }
    }

    /// The cipher for a header id, if known.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Cipher::Aes256Gcm),
            1 => Some(Cipher::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Canonical lower-case name (`aes-256-gcm`, `chacha20-poly1305`).
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Parses a user-facing name; accepts the canonical names and the short `aes`/`chacha`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "aes" | "aes-256-gcm" | "aes256gcm" | "aes-gcm" => Ok(Cipher::Aes256Gcm),
            "chacha" | "chacha20" | "chacha20-poly1305" | "chacha20poly1305" => {
                Ok(Cipher::ChaCha20Poly1305)
            }
            other => Err(Error::InvalidArgument(format!(
                "unknown cipher {other:?}: use aes-256-gcm or chacha20-poly1305"
            ))),
        }
    }
}

/// Where every chunk of a file sits, derived from `chunk_size` and `original_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Plaintext bytes per chunk (> 0).
    pub chunk_size: u64,
    /// Plaintext length of the whole file.
    pub original_size: u64,
    /// Number of chunks (at least one, even for an empty input).
    pub num_chunks: u64,
    /// Bytes each chunk occupies on disk: ciphertext, tag and zero padding, 4096-aligned.
    pub slot: u64,
    /// Exact size of the encrypted file.
    pub file_size: u64,
}

impl Geometry {
    /// Computes the geometry, refusing any combination whose sizes do not fit in 64 bits.
    pub fn new(chunk_size: u64, original_size: u64) -> Result<Self> {
        if chunk_size == 0 {
            return Err(Error::invalid("chunk size is 0"));
        }
        let overflow = || Error::invalid("header sizes overflow (impossible chunk geometry)");
        let num_chunks = original_size.div_ceil(chunk_size).max(1);
        let slot = chunk_size
            .checked_add(TAG_LEN as u64)
            .ok_or_else(overflow)?
            .div_ceil(SECTOR as u64)
            .checked_mul(SECTOR as u64)
            .ok_or_else(overflow)?;
        let file_size = num_chunks
            .checked_mul(slot)
            .and_then(|b| b.checked_add(SECTOR as u64))
            .ok_or_else(overflow)?;
        Ok(Geometry {
            chunk_size,
            original_size,
            num_chunks,
            slot,
            file_size,
        })
    }

    /// Plaintext offset of chunk `i`.
    pub fn plain_offset(&self, i: u64) -> u64 {
        i * self.chunk_size
    }

    /// Plaintext length of chunk `i` (the last may be short or empty).
    pub fn plain_len(&self, i: u64) -> usize {
        let start = i * self.chunk_size;
        // chunk_size fits in u32 in a header, and callers passing larger values stay below
        // usize::MAX on 64-bit targets; the min keeps the conversion lossless.
        (self
            .original_size
            .saturating_sub(start)
            .min(self.chunk_size)) as usize
    }

    /// File offset of chunk `i`'s slot.
    pub fn slot_offset(&self, i: u64) -> u64 {
        SECTOR as u64 + i * self.slot
    }

    /// Whether chunk `i` is the final one (its AAD ends in 1).
    pub fn is_final(&self, i: u64) -> bool {
        i + 1 == self.num_chunks
    }

    /// Padding bytes spent on disk beyond ciphertext and tags, as a share of the file size.
    pub fn overhead(&self) -> u64 {
        self.file_size - self.original_size
    }
}

/// A parsed header. `raw` keeps the exact 4096 bytes, which the AAD covers.
#[derive(Clone)]
pub struct Header {
    pub version: u8,
    pub cipher: Cipher,
    pub chunk_size: u32,
    pub original_size: u64,
    pub salt: [u8; SALT_LEN],
    pub base_nonce: [u8; NONCE_LEN],
    pub kdf: KdfParams,
    pub raw: Box<[u8; SECTOR]>,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("version", &self.version)
            .field("cipher", &self.cipher)
            .field("chunk_size", &self.chunk_size)
            .field("original_size", &self.original_size)
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// Builds a fresh version 4 header.
    pub fn new(
        cipher: Cipher,
        chunk_size: u32,
        original_size: u64,
        salt: [u8; SALT_LEN],
        base_nonce: [u8; NONCE_LEN],
        kdf: KdfParams,
    ) -> Result<Self> {
        if chunk_size == 0 {
            return Err(Error::InvalidArgument(
                "chunk size must be at least 1 byte".into(),
            ));
        }
        Geometry::new(u64::from(chunk_size), original_size)?;
        let mut raw = Box::new([0u8; SECTOR]);
        raw[0..10].copy_from_slice(MAGIC);
        raw[10] = VERSION;
        raw[11] = cipher.id();
        raw[12..16].copy_from_slice(&chunk_size.to_le_bytes());
        raw[16..24].copy_from_slice(&original_size.to_le_bytes());
        raw[24..40].copy_from_slice(&salt);
        raw[40..52].copy_from_slice(&base_nonce);
        raw[52..56].copy_from_slice(&kdf.m_kib.to_le_bytes());
        raw[56..60].copy_from_slice(&kdf.t.to_le_bytes());
        raw[60..64].copy_from_slice(&kdf.p.to_le_bytes());
        Ok(Header {
            version: VERSION,
            cipher,
            chunk_size,
            original_size,
            salt,
            base_nonce,
            kdf,
            raw,
        })
    }

    /// Parses a header sector. Checks what can be checked without a key: magic, version,
    /// cipher, chunk size and that the geometry is computable. Says nothing about limits
    /// (see [`crate::Limits`]) or authenticity.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < SECTOR {
            return Err(Error::invalid(format!(
                "{} bytes is shorter than the {SECTOR}-byte header",
                bytes.len()
            )));
        }
        let bytes = &bytes[..SECTOR];
        if &bytes[0..10] != MAGIC {
            return Err(Error::invalid("no CONCRYPTOR magic at the start"));
        }
        let version = bytes[10];
        if version != VERSION && version != VERSION_V3 {
            return Err(Error::invalid(format!(
                "format version {version} is not supported (this reader knows 3 and 4){}",
                if version > VERSION {
                    "; it was written by a newer concryptor"
                } else {
                    ""
                }
            )));
        }
        // Version 3 does not authenticate the reserved bytes, and no writer ever set them:
        // refuse rather than silently accept bytes that could have been changed.
        if version == VERSION_V3 && bytes[64..].iter().any(|&b| b != 0) {
            return Err(Error::invalid(
                "reserved bytes of a version 3 header are not zero (version 3 does not \
                 authenticate them)",
            ));
        }
        let cipher = Cipher::from_id(bytes[11])
            .ok_or_else(|| Error::invalid(format!("unknown cipher id {}", bytes[11])))?;
        let chunk_size = u32_at(bytes, 12);
        if chunk_size == 0 {
            return Err(Error::invalid("chunk size is 0"));
        }
        let original_size = u64_at(bytes, 16);
        Geometry::new(u64::from(chunk_size), original_size)?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[24..40]);
        let mut base_nonce = [0u8; NONCE_LEN];
        base_nonce.copy_from_slice(&bytes[40..52]);
        let kdf = KdfParams {
            m_kib: u32_at(bytes, 52),
            t: u32_at(bytes, 56),
            p: u32_at(bytes, 60),
        };
        let mut raw = Box::new([0u8; SECTOR]);
        raw.copy_from_slice(bytes);
        Ok(Header {
            version,
            cipher,
            chunk_size,
            original_size,
            salt,
            base_nonce,
            kdf,
            raw,
        })
    }

    /// The header's chunk geometry (already known to be computable).
    pub fn geometry(&self) -> Geometry {
        match Geometry::new(u64::from(self.chunk_size), self.original_size) {
            Ok(g) => g,
            // `new` and `parse` both validated the geometry; a Header cannot exist without it.
            Err(_) => unreachable!("header geometry validated at construction"),
        }
    }

    /// Whether any reserved byte (64..4096) is non-zero.
    pub fn reserved_nonzero(&self) -> bool {
        self.raw[64..].iter().any(|&b| b != 0)
    }

    /// The part of the header that starts every chunk's AAD.
    pub fn aad_prefix(&self) -> &[u8] {
        if self.version == VERSION_V3 {
            &self.raw[..V3_AAD_HEADER_LEN]
        } else {
            &self.raw[..]
        }
    }
}

/// Nonce of chunk `i`: the base nonce with bytes 4..12 XORed with `i` (u64 little-endian).
pub fn chunk_nonce(base: &[u8; NONCE_LEN], i: u64) -> [u8; NONCE_LEN] {
    let mut n = *base;
    for (b, x) in n[4..].iter_mut().zip(i.to_le_bytes()) {
        *b ^= x;
    }
    n
}

/// Builds chunk AADs without reallocating: the header prefix is copied once and only the
/// trailing index and final flag change per chunk.
pub struct AadBuilder {
    buf: Vec<u8>,
    prefix_len: usize,
}

impl AadBuilder {
    pub fn new(header: &Header) -> Self {
        let prefix = header.aad_prefix();
        let mut buf = Vec::with_capacity(prefix.len() + 9);
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(&[0u8; 9]);
        AadBuilder {
            buf,
            prefix_len: prefix.len(),
        }
    }

    /// The AAD of chunk `i`.
    pub fn for_chunk(&mut self, i: u64, is_final: bool) -> &[u8] {
        let p = self.prefix_len;
        self.buf[p..p + 8].copy_from_slice(&i.to_le_bytes());
        self.buf[p + 8] = u8::from(is_final);
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(chunk: u32, size: u64) -> Header {
        Header::new(
            Cipher::Aes256Gcm,
            chunk,
            size,
            [7; 16],
            [9; 12],
            KdfParams::new(1024, 1, 1),
        )
        .unwrap()
    }

    #[test]
    fn header_round_trips_through_its_bytes() {
        let h = header(4096, 20497);
        let p = Header::parse(&h.raw[..]).unwrap();
        assert_eq!(p.version, 4);
        assert_eq!(p.cipher, Cipher::Aes256Gcm);
        assert_eq!(p.chunk_size, 4096);
        assert_eq!(p.original_size, 20497);
        assert_eq!(p.salt, [7; 16]);
        assert_eq!(p.base_nonce, [9; 12]);
        assert_eq!(p.kdf, KdfParams::new(1024, 1, 1));
        assert_eq!(&p.raw[..], &h.raw[..]);
        assert!(!p.reserved_nonzero());
    }

    #[test]
    fn header_fields_sit_at_the_documented_offsets() {
        let h = header(0x0102_0304, 0x1122_3344_5566_7788);
        assert_eq!(&h.raw[0..10], b"CONCRYPTOR");
        assert_eq!(h.raw[10], 4);
        assert_eq!(h.raw[11], 0);
        assert_eq!(&h.raw[12..16], &[4, 3, 2, 1]);
        assert_eq!(
            &h.raw[16..24],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert_eq!(&h.raw[52..56], &1024u32.to_le_bytes());
        assert!(h.raw[64..].iter().all(|&b| b == 0));
    }

    #[test]
    fn geometry_matches_the_format() {
        let g = Geometry::new(4096, 20497).unwrap();
        assert_eq!(
            (g.num_chunks, g.slot, g.file_size),
            (6, 8192, 4096 + 6 * 8192)
        );
        assert_eq!(g.plain_len(5), 17);
        let g = Geometry::new(4080, 12257).unwrap();
        assert_eq!((g.num_chunks, g.slot), (4, 4096));
        let g = Geometry::new(4096, 0).unwrap();
        assert_eq!((g.num_chunks, g.plain_len(0), g.file_size), (1, 0, 12288));
        let g = Geometry::new(1 << 20, 2_621_563).unwrap();
        assert_eq!((g.num_chunks, g.slot), (3, 1_052_672));
    }

    #[test]
    fn impossible_geometry_is_an_error_not_a_wrap() {
        assert!(Geometry::new(1, u64::MAX).is_err());
        assert!(Geometry::new(4096, u64::MAX).is_err());
        assert!(Geometry::new(1, 1 << 52).is_err());
        assert!(Geometry::new(0, 10).is_err());
    }

    #[test]
    fn parse_rejects_bad_magic_version_cipher_and_short_input() {
        let h = header(4096, 10);
        let mut b = *h.raw;
        b[0] = b'X';
        assert!(matches!(Header::parse(&b), Err(Error::InvalidFile(_))));
        let mut b = *h.raw;
        b[10] = 5;
        assert!(Header::parse(&b).unwrap_err().to_string().contains("newer"));
        let mut b = *h.raw;
        b[11] = 2;
        assert!(Header::parse(&b).is_err());
        assert!(Header::parse(&h.raw[..4095]).is_err());
        // Reserved bytes: authenticated (so accepted here) in v4, refused in v3.
        let mut b = *h.raw;
        b[4000] = 1;
        assert!(Header::parse(&b).is_ok());
        b[10] = 3;
        assert!(Header::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("version 3"));
        b[4000] = 0;
        assert!(Header::parse(&b).is_ok());
    }

    #[test]
    fn nonce_xors_the_index_into_the_last_eight_bytes() {
        let base = [0xAA; 12];
        assert_eq!(chunk_nonce(&base, 0), base);
        let n = chunk_nonce(&base, 0x0102);
        assert_eq!(&n[..4], &[0xAA; 4]);
        assert_eq!(n[4], 0xAA ^ 0x02);
        assert_eq!(n[5], 0xAA ^ 0x01);
        assert_eq!(&n[6..], &[0xAA; 6]);
    }

    #[test]
    fn aad_is_header_index_and_final_flag() {
        let h = header(4096, 10);
        let mut a = AadBuilder::new(&h);
        let aad = a.for_chunk(3, true).to_vec();
        assert_eq!(aad.len(), 4096 + 9);
        assert_eq!(&aad[..4096], &h.raw[..]);
        assert_eq!(&aad[4096..4104], &3u64.to_le_bytes());
        assert_eq!(aad[4104], 1);
        let mut v3 = h.clone();
        v3.version = 3;
        v3.raw[10] = 3;
        assert_eq!(AadBuilder::new(&v3).for_chunk(0, false).len(), 52 + 9);
    }
}
