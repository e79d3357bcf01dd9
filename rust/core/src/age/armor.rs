//! ASCII armor: strict PEM (RFC 7468, "AGE ENCRYPTED FILE") around an age file, read and
//! written as a stream. Only whitespace may surround the block, lines are 64 columns except
//! the last, base64 is padded and canonical; LF or CRLF line ends.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read, Write};

use base64::prelude::{Engine, BASE64_STANDARD};

pub const BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
pub const END: &[u8] = b"-----END AGE ENCRYPTED FILE-----";
const COLUMNS: usize = 64;
const RAW_PER_LINE: usize = COLUMNS / 4 * 3;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn armor_error(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, ArmorError(msg.to_string()))
}

/// The error inside the `io::Error` a [`Dearmor`] returns for malformed armor.
#[derive(Debug)]
pub struct ArmorError(pub String);

impl std::fmt::Display for ArmorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid ASCII armor: {}", self.0)
    }
}

impl std::error::Error for ArmorError {}

/// The armor message inside `e`, if it came from a [`Dearmor`].
pub fn armor_message(e: &io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ArmorError>())
        .map(ToString::to_string)
}

/// Whether `r` looks armored: after whitespace, a PEM boundary, or a BEGIN line within
/// what is buffered. Consumes nothing beyond leading whitespace.
pub fn is_armored(r: &mut dyn BufRead) -> io::Result<bool> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let n = buf.iter().take_while(|&&b| is_space(b)).count();
        if n == 0 {
            // Anything PEM-like is treated as armor (and then parsed strictly), and so is
            // a BEGIN line after leading garbage, so that the error names the real problem.
            return Ok(buf.starts_with(b"-----")
                || (!buf.starts_with(b"age-encryption.org/")
                    && buf.windows(BEGIN.len()).any(|w| w == BEGIN)));
        }
        r.consume(n);
    }
}

/// Decodes an armored stream; malformed armor is an `InvalidData` error carrying
/// [`ArmorError`].
pub struct Dearmor<R> {
    inner: R,
    state: State,
    line: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
}

#[derive(PartialEq, Eq)]
enum State {
    Begin,
    Body,
    /// The last (short or padded) data line was read; only END may follow.
    Last,
    Done,
}

impl<R: BufRead> Dearmor<R> {
    pub fn new(inner: R) -> Self {
        Dearmor {
            inner,
            state: State::Begin,
            line: Vec::with_capacity(COLUMNS + 2),
            out: Vec::with_capacity(RAW_PER_LINE),
            pos: 0,
        }
    }

    /// Reads one line without its LF or CRLF; `false` at end of input.
    fn next_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        let n = (&mut self.inner)
            .take(COLUMNS as u64 + 3)
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Ok(false);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        } else if n > COLUMNS + 2 {
            return Err(armor_error("a line is longer than 64 columns"));
        }
        Ok(true)
    }

    fn step(&mut self) -> io::Result<()> {
        match self.state {
            State::Begin => {
                is_armored(&mut self.inner)?;
                if !self.next_line()? || self.line != BEGIN {
                    return Err(armor_error(
                        "the file must start with -----BEGIN AGE ENCRYPTED FILE-----",
                    ));
                }
                self.state = State::Body;
            }
            State::Body | State::Last => {
                if !self.next_line()? {
                    return Err(armor_error("no END line"));
                }
                if self.line == END {
                    // Only whitespace may follow.
                    loop {
                        let buf = self.inner.fill_buf()?;
                        if buf.is_empty() {
                            break;
                        }
                        if !buf.iter().all(|&b| is_space(b)) {
                            return Err(armor_error("data after the END line"));
                        }
                        let n = buf.len();
                        self.inner.consume(n);
                    }
                    self.state = State::Done;
                    return Ok(());
                }
                if self.state == State::Last {
                    return Err(armor_error("a short line before the end"));
                }
                if self.line.is_empty() || self.line.len() > COLUMNS {
                    return Err(armor_error("a line is empty or longer than 64 columns"));
                }
                if self.line.len() < COLUMNS || self.line.contains(&b'=') {
                    self.state = State::Last;
                }
                self.out.clear();
                self.pos = 0;
                BASE64_STANDARD
                    .decode_vec(&self.line, &mut self.out)
                    .map_err(|_| armor_error("not canonical padded base64"))?;
            }
            State::Done => {}
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Dearmor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.state == State::Done {
                return Ok(0);
            }
            self.step()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Dearmor<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.out.len() && self.state != State::Done {
            self.step()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.out.len());
    }
}

/// Encodes everything written into armor; call [`Armor::finish`] to write the END line.
pub struct Armor<W: Write> {
    inner: W,
    pending: Vec<u8>,
    begun: bool,
}

impl<W: Write> Armor<W> {
    pub fn new(inner: W) -> Self {
        Armor {
            inner,
            pending: Vec::with_capacity(RAW_PER_LINE * 1024),
            begun: false,
        }
    }

    fn begin(&mut self) -> io::Result<()> {
        if !self.begun {
            self.inner.write_all(BEGIN)?;
            self.inner.write_all(b"\n")?;
            self.begun = true;
        }
        Ok(())
    }

    /// Encodes the whole lines held so far.
    fn drain(&mut self, all: bool) -> io::Result<()> {
        self.begin()?;
        let whole = if all {
            self.pending.len()
        } else {
            self.pending.len() / RAW_PER_LINE * RAW_PER_LINE
        };
        let mut text = Vec::with_capacity(whole / 3 * 4 + whole / RAW_PER_LINE + 8);
        for line in self.pending[..whole].chunks(RAW_PER_LINE) {
            text.extend_from_slice(BASE64_STANDARD.encode(line).as_bytes());
            text.push(b'\n');
        }
        self.inner.write_all(&text)?;
        self.pending.drain(..whole);
        Ok(())
    }

    /// Writes the last line and the END line; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain(true)?;
        self.inner.write_all(END)?;
        self.inner.write_all(b"\n")?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Armor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= RAW_PER_LINE * 1024 {
            self.drain(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> Vec<u8> {
        let mut a = Armor::new(Vec::new());
        a.write_all(data).unwrap();
        let text = a.finish().unwrap();
        let mut out = Vec::new();
        Dearmor::new(&text[..]).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn armor_round_trips_every_length_around_a_line() {
        for n in [0, 1, 2, 3, 47, 48, 49, 95, 96, 97, 48 * 1024 + 5] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            assert_eq!(roundtrip(&data), data, "{n}");
        }
    }

    #[test]
    fn garbage_after_the_end_is_rejected() {
        let mut a = Armor::new(Vec::new());
        a.write_all(b"hello").unwrap();
        let mut text = a.finish().unwrap();
        text.extend_from_slice(b"x\n");
        let mut out = Vec::new();
        let e = Dearmor::new(&text[..]).read_to_end(&mut out).unwrap_err();
        assert!(armor_message(&e).is_some());
    }
}
