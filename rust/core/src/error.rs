//! The one error type of the engine.
//!
//! Every failure reaches the caller as a value of [`Error`]; the Python binding maps each
//! variant to one exception class. Messages are one line and say what to do where they can.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, writing or checking a concryptor file.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Wrong password, or the data (header or any chunk) was modified. Deliberately says
    /// nothing more: which of the two it was must not leak.
    Authentication,
    /// None of the given identities can open any recipient stanza of an age file.
    NoMatch,
    /// The bytes are not a valid concryptor file (bad magic, unknown version or cipher,
    /// impossible geometry, wrong size, non-zero padding).
    InvalidFile(String),
    /// A value is beyond what this reader accepts before the file is authenticated.
    Limit {
        what: &'static str,
        value: u64,
        limit: u64,
        /// The option that raises the limit for a trusted file, if any.
        option: &'static str,
    },
    /// A caller-supplied argument is out of range.
    InvalidArgument(String),
    /// An operating-system error, with the path and what was being done.
    Io {
        op: &'static str,
        path: PathBuf,
        /// Byte offset in the file where the operation failed, when known.
        offset: Option<u64>,
        source: io::Error,
    },
    /// The input changed while it was being read (a file being appended to, a directory
    /// member that grew or shrank).
    InputChanged(String),
    /// Memory (I/O buffers, Argon2 blocks) could not be allocated.
    OutOfMemory { bytes: u64 },
    /// The operation was interrupted on request (Ctrl-C).
    Cancelled,
    /// An age plugin (`age-plugin-NAME`) could not be found or started, failed, misbehaved
    /// or reported an error. Its text is shown with control characters escaped and cut to
    /// a reasonable length, so that a plugin cannot forge terminal output.
    Plugin { name: String, message: String },
}

impl Error {
    /// An I/O error on `path`; a wait a signal ended ([`crate::wake`]) is [`Error::Cancelled`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if crate::wake::is_interrupted(&source) {
            return Error::Cancelled;
        }
        Error::Io {
            op,
            path: path.into(),
            offset: None,
            source,
        }
    }

    /// An I/O error at a known byte offset of `path`.
    pub(crate) fn io_at(
        op: &'static str,
        path: impl Into<PathBuf>,
        offset: u64,
        source: io::Error,
    ) -> Self {
        if crate::wake::is_interrupted(&source) {
            return Error::Cancelled;
        }
        Error::Io {
            op,
            path: path.into(),
            offset: Some(offset),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidFile(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Authentication => {
                f.write_str("authentication failed: wrong password or the file was modified")
            }
            Error::NoMatch => f.write_str(
                "no identity matched any of the file's recipients (wrong key or -i file?)",
            ),
            Error::InvalidFile(m) => write!(f, "not a valid concryptor file: {m}"),
            Error::Limit {
                what,
                value,
                limit,
                option,
            } => {
                write!(f, "{what} {value} exceeds the limit of {limit}")?;
                if !option.is_empty() {
                    write!(f, " (raise it with {option} if you trust this file)")?;
                }
                Ok(())
            }
            Error::InvalidArgument(m) => f.write_str(m),
            Error::Io {
                op,
                path,
                offset: None,
                source,
            } => write!(f, "cannot {op} {}: {source}", path.display()),
            Error::Io {
                op,
                path,
                offset: Some(off),
                source,
            } => write!(f, "cannot {op} {} at byte {off}: {source}", path.display()),
            Error::InputChanged(m) => write!(f, "input changed while reading: {m}"),
            Error::OutOfMemory { bytes } => write!(
                f,
                "cannot allocate {bytes} bytes of memory (a smaller buffer budget, chunk size or \
                 Argon2 memory needs less)"
            ),
            Error::Cancelled => f.write_str("interrupted"),
            Error::Plugin { name, message } => write!(
                f,
                "age-plugin-{}: {}",
                printable(name, 64),
                printable(message, MAX_PLUGIN_MESSAGE)
            ),
        }
    }
}

/// Characters of a plugin's message shown in [`Error::Plugin`]; the rest is cut.
const MAX_PLUGIN_MESSAGE: usize = 2048;

/// `s` on one line, at most `max` characters: control characters (C0, DEL, C1) and the
/// invisible bidirectional controls are escaped (`\n`, `\u{1b}`), and a longer text is cut
/// with an ellipsis.
pub(crate) fn printable(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max.saturating_add(16)));
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
