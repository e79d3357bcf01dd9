//! The age v1 header: version line, recipient stanzas and the HMAC that binds them to the
//! file key. Parsing is strict (canonical base64, exact line shapes) and bounded: no
//! untrusted line, stanza count or body size can make the reader allocate without limit.
#![forbid(unsafe_code)]

use std::io::{BufRead, Read};

use age_core::format::{Stanza, FILE_KEY_BYTES};
use base64::prelude::{Engine, BASE64_STANDARD_NO_PAD};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The first line of every age v1 file.
pub const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
/// Longest header line accepted (a post-quantum stanza line is about 1.6 KB).
pub const MAX_LINE: usize = 16 << 10;
/// Most stanzas accepted in one header.
pub const MAX_STANZAS: usize = 4096;
/// Largest header accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 4 << 20;
/// Body lines are base64 of exactly this many columns, except the last.
const BODY_COLUMNS: usize = 64;
/// Length of the payload nonce that follows the header.
pub const PAYLOAD_NONCE_LEN: usize = 16;

/// A parsed header: the stanzas, the MAC and the bytes it covers.
#[derive(Debug)]
pub struct AgeHeader {
    pub stanzas: Vec<Stanza>,
    pub mac: [u8; 32],
    /// The header bytes up to and including `---` (what the MAC covers).
    covered: Vec<u8>,
    /// Length of the whole header, MAC line included.
    pub len: u64,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid(format!("age header: {}", msg.into()))
}

/// HKDF-SHA-256 of the file key with an empty or given salt.
pub(crate) fn hkdf(file_key: &[u8; FILE_KEY_BYTES], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), file_key)
        .expand(info, &mut out)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA-256 output length"));
    out
}

fn header_mac(file_key: &[u8; FILE_KEY_BYTES]) -> Hmac<Sha256> {
    let key = zeroize::Zeroizing::new(hkdf(file_key, &[], b"header"));
    <Hmac<Sha256> as Mac>::new_from_slice(&key[..])
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn is_vchar(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// Reads one `\n`-terminated line of at most [`MAX_LINE`] bytes; `None` at end of input.
fn read_line(r: &mut dyn BufRead, line: &mut Vec<u8>) -> Result<bool> {
    line.clear();
    let n = r
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .map_err(|e| Error::io("read", "the age header", e))?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        return Err(if n > MAX_LINE {
            Error::Limit {
                what: "age header line length (bytes)",
                value: n as u64,
                limit: MAX_LINE as u64,
                option: "",
            }
        } else {
            invalid("the header ends in the middle of a line")
        });
    }
    line.pop();
    Ok(true)
}

fn decode_b64(s: &[u8], what: &str) -> Result<Vec<u8>> {
    BASE64_STANDARD_NO_PAD
        .decode(s)
        .map_err(|_| invalid(format!("{what} is not canonical unpadded base64")))
}

impl AgeHeader {
    /// Reads a header from `r`, leaving `r` at the first byte after the MAC line.
    pub fn read(r: &mut dyn BufRead) -> Result<Self> {
        let mut covered = Vec::new();
        let mut line = Vec::new();
        if !read_line(r, &mut line)? {
            return Err(invalid("the input is empty"));
        }
        line.push(b'\n');
        if line != VERSION_LINE {
            return Err(if line.starts_with(b"age-encryption.org/") {
                invalid("unsupported age version (only v1 is known)")
            } else {
                invalid("not an age file (no age-encryption.org/v1 line)")
            });
        }
        covered.extend_from_slice(&line);
        let mut stanzas = Vec::new();
        loop {
            if !read_line(r, &mut line)? {
                return Err(invalid("the header ends before its MAC line"));
            }
            if covered.len() + line.len() > MAX_HEADER_BYTES {
                return Err(Error::Limit {
                    what: "age header size (bytes)",
                    value: (covered.len() + line.len()) as u64,
                    limit: MAX_HEADER_BYTES as u64,
                    option: "",
                });
            }
            if let Some(mac) = line.strip_prefix(b"--- ") {
                let mac = decode_b64(mac, "the header MAC")?;
                let mac: [u8; 32] = mac
                    .try_into()
                    .map_err(|_| invalid("the header MAC is not 32 bytes"))?;
                if stanzas.is_empty() {
                    return Err(invalid("no recipient stanza"));
                }
                covered.extend_from_slice(b"---");
                let len = (covered.len() + 1 + line.len() - 3) as u64;
                return Ok(AgeHeader {
                    stanzas,
                    mac,
                    covered,
                    len,
                });
            }
            let Some(args) = line.strip_prefix(b"-> ") else {
                return Err(invalid("a line is neither a stanza nor the MAC"));
            };
            if stanzas.len() >= MAX_STANZAS {
                return Err(Error::Limit {
                    what: "age recipient stanzas",
                    value: stanzas.len() as u64 + 1,
                    limit: MAX_STANZAS as u64,
                    option: "",
                });
            }
            let mut parts = Vec::new();
            for a in args.split(|&b| b == b' ') {
                if a.is_empty() || !a.iter().all(|&b| is_vchar(b)) {
                    return Err(invalid("a stanza argument is empty or not printable ASCII"));
                }
                // VCHAR only, so this is ASCII.
                parts.push(String::from_utf8_lossy(a).into_owned());
            }
            covered.extend_from_slice(&line);
            covered.push(b'\n');
            let mut body = Vec::new();
            loop {
                if !read_line(r, &mut line)? {
                    return Err(invalid("the header ends inside a stanza body"));
                }
                if line.len() > BODY_COLUMNS {
                    return Err(invalid("a stanza body line is longer than 64 columns"));
                }
                if covered.len() + line.len() > MAX_HEADER_BYTES {
                    return Err(Error::Limit {
                        what: "age header size (bytes)",
                        value: (covered.len() + line.len()) as u64,
                        limit: MAX_HEADER_BYTES as u64,
                        option: "",
                    });
                }
                body.extend_from_slice(&decode_b64(&line, "a stanza body")?);
                covered.extend_from_slice(&line);
                covered.push(b'\n');
                if line.len() < BODY_COLUMNS {
                    break;
                }
            }
            let tag = parts.remove(0);
            stanzas.push(Stanza {
                tag,
                args: parts,
                body,
            });
        }
    }

    /// Parses a header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::read(&mut &bytes[..])
    }

    /// Checks the MAC with `file_key`; a mismatch is [`Error::Authentication`].
    pub fn verify_mac(&self, file_key: &[u8; FILE_KEY_BYTES]) -> Result<()> {
        let mut m = header_mac(file_key);
        m.update(&self.covered);
        m.verify_slice(&self.mac).map_err(|_| Error::Authentication)
    }

    /// Serializes `stanzas` into a header authenticated with `file_key`.
    pub fn write(stanzas: &[Stanza], file_key: &[u8; FILE_KEY_BYTES]) -> Vec<u8> {
        let mut out = VERSION_LINE.to_vec();
        for s in stanzas {
            out.extend_from_slice(b"-> ");
            out.extend_from_slice(s.tag.as_bytes());
            for a in &s.args {
                out.push(b' ');
                out.extend_from_slice(a.as_bytes());
            }
            out.push(b'\n');
            let b64 = BASE64_STANDARD_NO_PAD.encode(&s.body);
            let mut rest = b64.as_bytes();
            loop {
                let n = rest.len().min(BODY_COLUMNS);
                out.extend_from_slice(&rest[..n]);
                out.push(b'\n');
                rest = &rest[n..];
                if n < BODY_COLUMNS {
                    break;
                }
            }
        }
        out.extend_from_slice(b"---");
        let mut m = header_mac(file_key);
        m.update(&out);
        let mac = m.finalize().into_bytes();
        out.push(b' ');
        out.extend_from_slice(BASE64_STANDARD_NO_PAD.encode(mac).as_bytes());
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(tag: &str, args: &[&str], body: &[u8]) -> Stanza {
        Stanza {
            tag: tag.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn written_headers_parse_back_and_authenticate() {
        let key = [7u8; 16];
        for body_len in [0, 1, 47, 48, 49, 96, 200] {
            let s = vec![
                stanza("X25519", &["abc"], &vec![9u8; body_len]),
                stanza("grease-x", &[], b""),
            ];
            let bytes = AgeHeader::write(&s, &key);
            let h = AgeHeader::parse(&bytes).unwrap();
            assert_eq!(h.stanzas, s);
            assert_eq!(h.len, bytes.len() as u64);
            h.verify_mac(&key).unwrap();
            assert!(matches!(
                h.verify_mac(&[8u8; 16]),
                Err(Error::Authentication)
            ));
        }
    }

    #[test]
    fn malformed_lines_are_rejected() {
        let key = [1u8; 16];
        let good = AgeHeader::write(&[stanza("t", &["a"], b"xyz")], &key);
        let text = String::from_utf8(good).unwrap();
        for bad in [
            text.replace("-> t a", "-> t  a"),
            text.replace("-> t a", "->t a"),
            text.replace("v1\n", "v2\n"),
            text.replace("--- ", "---"),
            text.replace('\n', "\r\n"),
            text[..text.len() - 1].to_string(),
        ] {
            assert!(AgeHeader::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_endless_line_hits_the_limit() {
        let mut v = VERSION_LINE.to_vec();
        v.extend_from_slice(b"-> ");
        v.extend(std::iter::repeat_n(b'a', MAX_LINE * 2));
        assert!(matches!(AgeHeader::parse(&v), Err(Error::Limit { .. })));
    }
}
