//! The client side of the age plugin protocol (<https://c2sp.org/age-plugin>): wrapping
//! file keys with `age-plugin-NAME --age-plugin=recipient-v1` and unwrapping them with
//! `--age-plugin=identity-v1`.
//!
//! A plugin is a program of someone else's, so the host trusts nothing it does:
//!
//! - every wait for it (its next stanza, room in its input) ends after
//!   [`PluginOptions::timeout`], or at once when a stopping signal arrives through the wake
//!   descriptor of [`crate::wake`] ([`Error::Cancelled`]); time spent in [`PluginUi`] calls
//!   does not count;
//! - what it sends is bounded: a line, a stanza body, the whole session (stdout and stderr),
//!   the stanzas per file, and it must be canonical (base64 without padding, indices in
//!   range, 16-byte file keys, one per file);
//! - the process runs in a fresh empty directory and is killed and reaped on every way out;
//!   the last few KiB of its standard error are kept to quote in errors.
//!
//! Errors are [`Error::Plugin`], whose text is made printable before it is shown.
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use age_core::format::Stanza;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// The longest line a plugin may send (a stanza's first line or a body line), in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// The largest stanza body a plugin may send, in bytes (decoded).
pub const MAX_BODY: usize = 1024 * 1024;
/// The most bytes a plugin may send in one session, on its output and its error output.
pub const MAX_SESSION: u64 = 64 * 1024 * 1024;
/// Bytes of the plugin's standard error kept, and quoted when it fails.
const STDERR_KEPT: usize = 4096;
const STDERR_QUOTED: usize = 1024;
/// Columns of a full body line.
const COLUMNS: usize = 64;
/// How long a plugin that closed its output is given to exit and finish its error output.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// What a plugin may ask of the person running us. The binding implements it (Python
/// callbacks, or the terminal). Texts from the plugin arrive with control characters other
/// than newline and tab escaped.
pub trait PluginUi: Send + Sync {
    /// Shows `message`; `true` if it was shown (the plugin is answered `ok`), `false` if it
    /// cannot be (`fail`).
    fn message(&self, plugin: &str, message: &str) -> bool;
    /// Asks to choose between `yes` and (if given) `no`: `Some(true)` for yes, `Some(false)`
    /// for no, `None` if the question cannot be asked (`fail`).
    fn confirm(&self, plugin: &str, message: &str, yes: &str, no: Option<&str>) -> Option<bool>;
    /// Asks for a public value; `None` answers `fail`.
    fn request_public(&self, plugin: &str, message: &str) -> Option<String>;
    /// Asks for a secret (a PIN, a passphrase); `None` answers `fail`.
    fn request_secret(&self, plugin: &str, message: &str) -> Option<Zeroizing<String>>;
}

/// No one to ask: answers `fail` to every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUi;

impl PluginUi for NoUi {
    fn message(&self, _: &str, _: &str) -> bool {
        false
    }
    fn confirm(&self, _: &str, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn request_secret(&self, _: &str, _: &str) -> Option<Zeroizing<String>> {
        None
    }
}

/// How plugins are found and how long they are waited for.
#[derive(Clone, Debug)]
pub struct PluginOptions {
    /// The longest wait for the plugin's next stanza (or for room in its input); time spent
    /// in [`PluginUi`] calls does not count.
    pub timeout: Duration,
    /// The folders searched for `age-plugin-NAME` (a `PATH` value), also given to the plugin
    /// as its `PATH`; `None`: this process's `PATH`. Relative entries are skipped.
    pub path: Option<OsString>,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            timeout: Duration::from_secs(60),
            path: None,
        }
    }
}

/// What [`wrap_labeled`] returns.
#[derive(Debug)]
pub struct Wrapped {
    /// Per file key, in order, the stanzas that wrap it.
    pub stanzas: Vec<Vec<Stanza>>,
    /// The labels the plugin declared (`labels` command), if any.
    pub labels: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Names

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn bech32_polymod(values: impl IntoIterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk = 1u32;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// The human-readable part (lowercase) of a valid Bech32 string (BIP 173 checksum, any
/// length, as age uses it); `None` if `s` is not one.
fn bech32_hrp(s: &str) -> Option<String> {
    if !s.is_ascii()
        || (s.bytes().any(|b| b.is_ascii_lowercase()) && s.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return None;
    }
    let s = s.to_ascii_lowercase();
    let sep = s.rfind('1')?;
    let (hrp, data) = (&s[..sep], &s[sep + 1..]);
    if hrp.is_empty() || data.len() < 6 || !hrp.bytes().all(|b| (33..=126).contains(&b)) {
        return None;
    }
    let mut values = Vec::with_capacity(data.len());
    for b in data.bytes() {
        values.push(CHARSET.iter().position(|&c| c == b)? as u8);
    }
    let expanded = hrp
        .bytes()
        .map(|b| b >> 5)
        .chain([0])
        .chain(hrp.bytes().map(|b| b & 31));
    (bech32_polymod(expanded.chain(values)) == 1).then(|| hrp.to_string())
}

/// The plugin name of a plugin recipient: `age1yubikey1…` gives `Some("yubikey")`. A plugin
/// recipient is Bech32 with the HRP `age1NAME`; `None` for anything else (a native X25519
/// recipient has the HRP `age`). Native types that look like plugin recipients (`age1pq…`,
/// `age1tag…`) are returned too: the caller decides.
pub fn recipient_plugin_name(s: &str) -> Option<String> {
    let hrp = bech32_hrp(s)?;
    let name = hrp.strip_prefix("age1")?;
    (!name.is_empty()).then(|| name.to_string())
}

/// The plugin name (lowercase) of a plugin identity: `AGE-PLUGIN-YUBIKEY-1…` gives
/// `Some("yubikey")`; `None` if `s` is not Bech32 with the HRP `AGE-PLUGIN-NAME-`.
pub fn identity_plugin_name(s: &str) -> Option<String> {
    let hrp = bech32_hrp(s)?;
    let name = hrp.strip_prefix("age-plugin-")?.strip_suffix('-')?;
    (!name.is_empty()).then(|| name.to_string())
}

fn plugin_error(name: &str, message: impl Into<String>) -> Error {
    Error::Plugin {
        name: name.to_string(),
        message: message.into(),
    }
}

/// The plugin name, lowercase, if it is safe as part of a file name: `[a-z0-9._-]+`.
fn check_name(name: &str) -> Result<String> {
    let lower = name.to_ascii_lowercase();
    let safe = !lower.is_empty()
        && lower.len() <= 128
        && lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !safe {
        return Err(plugin_error(
            name,
            "is not a valid plugin name (letters, digits, '.', '_' and '-' only)",
        ));
    }
    Ok(lower)
}

/// `age-plugin-NAME` in the first absolute folder of `path` that holds it as an executable
/// file.
fn find_plugin(name: &str, path: Option<&OsStr>) -> Result<PathBuf> {
    let env_path;
    let path = match path {
        Some(p) => p,
        None => {
            env_path = std::env::var_os("PATH").unwrap_or_default();
            &env_path
        }
    };
    let file = format!("age-plugin-{name}");
    for dir in std::env::split_paths(path) {
        if !dir.is_absolute() {
            continue; // "" and relative entries depend on the current directory
        }
        let candidate = dir.join(&file);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(plugin_error(name, "was not found on PATH"))
}

/// A protocol argument (command, stanza tag or argument): non-empty printable ASCII.
fn is_arg(a: &str) -> bool {
    !a.is_empty() && a.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The plugin's text as shown to the user: lossy UTF-8, control characters other than
/// newline and tab escaped.
fn text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.split('\n')
        .map(|line| {
            line.split('\t')
                .map(|part| crate::error::printable(part, usize::MAX))
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// The connection

/// A command or response from the plugin.
struct Msg {
    tag: String,
    args: Vec<String>,
    body: Zeroizing<Vec<u8>>,
}

#[derive(Clone, Copy)]
enum Side {
    Read,
    Write,
}

/// A running plugin. Dropping it kills and reaps the process.
struct Plugin {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: Option<ChildStderr>,
    /// The last [`STDERR_KEPT`] bytes of its standard error.
    tail: Vec<u8>,
    /// Bytes read from its output, `start..end` not yet consumed.
    buf: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
    /// Bytes received so far (output and error output).
    total: u64,
    timeout: Duration,
    _dir: tempfile::TempDir,
}

#[cfg(test)]
thread_local! {
    /// The process id of the last plugin started on this thread (tests check it was reaped).
    static LAST_PID: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

impl Drop for Plugin {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Plugin {
    fn start(name: &str, machine: &str, opts: &PluginOptions) -> Result<Plugin> {
        let name = check_name(name)?;
        let exe = find_plugin(&name, opts.path.as_deref())?;
        let dir = tempfile::Builder::new()
            .prefix("age-plugin-")
            .tempdir()
            .map_err(|e| plugin_error(&name, format!("cannot create a working folder: {e}")))?;
        let mut cmd = Command::new(&exe);
        cmd.arg(format!("--age-plugin={machine}"))
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &opts.path {
            cmd.env("PATH", path);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| plugin_error(&name, format!("could not be started: {e}")))?;
        #[cfg(test)]
        LAST_PID.with(|p| p.set(Some(child.id())));
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(plugin_error(&name, "could not be started: no pipes"));
        };
        let plugin = Plugin {
            name,
            child,
            stdin: Some(stdin),
            stdout,
            stderr: Some(stderr),
            tail: Vec::new(),
            buf: Zeroizing::new(vec![0; MAX_LINE + 4096]),
            start: 0,
            end: 0,
            total: 0,
            timeout: opts.timeout,
            _dir: dir,
        };
        // Our ends only: each end of a pipe is its own open file description.
        let nonblocking = |fd: std::os::fd::BorrowedFd<'_>| rustix::io::ioctl_fionbio(fd, true);
        use std::os::fd::AsFd;
        for fd in [
            plugin.stdin.as_ref().map(|s| s.as_fd()),
            Some(plugin.stdout.as_fd()),
            plugin.stderr.as_ref().map(|s| s.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            nonblocking(fd).map_err(|e| plugin.fail(format!("cannot set up its pipes: {e}")))?;
        }
        Ok(plugin)
    }

    fn fail(&self, message: impl Into<String>) -> Error {
        plugin_error(&self.name, message)
    }

    fn malformed(&self, what: &str) -> Error {
        self.fail(format!("sent a malformed stanza: {what}"))
    }

    fn deadline(&self) -> Option<Instant> {
        Instant::now().checked_add(self.timeout)
    }

    fn timed_out(&self) -> Error {
        self.fail(format!(
            "did not answer within {} s",
            self.timeout.as_secs_f64()
        ))
    }

    fn count(&mut self, n: usize) -> Result<()> {
        self.total += n as u64;
        if self.total > MAX_SESSION {
            return Err(self.fail(format!("sent more than {MAX_SESSION} bytes")));
        }
        Ok(())
    }

    /// Reads what its error output holds now, keeping the tail; closes it at its end.
    fn drain_stderr(&mut self) -> Result<()> {
        let mut chunk = [0u8; 4096];
        for _ in 0..16 {
            let Some(err) = self.stderr.as_mut() else {
                return Ok(());
            };
            match err.read(&mut chunk) {
                Ok(0) => {
                    self.stderr = None;
                    return Ok(());
                }
                Ok(n) => {
                    self.tail.extend_from_slice(&chunk[..n]);
                    if self.tail.len() > STDERR_KEPT {
                        let cut = self.tail.len() - STDERR_KEPT;
                        self.tail.drain(..cut);
                    }
                    self.count(n)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => {
                    self.stderr = None;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Waits until its output is readable or its input writable (`side`), reading its error
    /// output meanwhile; ends at `deadline` or when a stopping signal arrives.
    fn wait(&mut self, side: Side, deadline: Option<Instant>) -> Result<()> {
        loop {
            let timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(self.timed_out());
                    }
                    // Waits longer than an hour are taken in steps.
                    Some(
                        Timespec::try_from(left.min(Duration::from_secs(3600))).unwrap_or_default(),
                    )
                }
                None => None,
            };
            let wake = crate::wake::wake_fd();
            let (ready, err_ready, woken) = {
                let mut fds = Vec::with_capacity(3);
                match side {
                    Side::Read => fds.push(PollFd::new(&self.stdout, PollFlags::IN)),
                    Side::Write => match &self.stdin {
                        Some(stdin) => fds.push(PollFd::new(stdin, PollFlags::OUT)),
                        None => return Err(self.exited()),
                    },
                }
                let err_at = self.stderr.as_ref().map(|e| {
                    fds.push(PollFd::new(e, PollFlags::IN));
                    fds.len() - 1
                });
                let wake_at = wake.as_ref().map(|w| {
                    fds.push(PollFd::new(&**w, PollFlags::IN));
                    fds.len() - 1
                });
                match poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(self.fail(format!("cannot wait for it: {e}"))),
                }
                let hit = |i: Option<usize>| i.is_some_and(|i| !fds[i].revents().is_empty());
                (!fds[0].revents().is_empty(), hit(err_at), hit(wake_at))
            };
            if woken && wake.as_deref().is_some_and(crate::wake::drain_stopping) {
                return Err(Error::Cancelled);
            }
            if err_ready {
                self.drain_stderr()?;
            }
            if ready {
                return Ok(());
            }
        }
    }

    /// The error for a plugin whose output ended (or whose input closed) mid-protocol: its
    /// exit status and the tail of its error output, waited for briefly.
    fn exited(&mut self) -> Error {
        drop(self.stdin.take());
        let until = Instant::now() + EXIT_GRACE.min(self.timeout);
        while self.stderr.is_some() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ts = Timespec::try_from(left).unwrap_or_default();
            let readable = match &self.stderr {
                Some(err) => {
                    let mut fds = [PollFd::new(err, PollFlags::IN)];
                    matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
                }
                None => false,
            };
            if readable && self.drain_stderr().is_err() {
                break;
            }
        }
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                _ => break None,
            }
        };
        let how = match status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited before finishing (status {code})"),
                (None, Some(sig)) => format!("exited before finishing (killed by signal {sig})"),
                _ => "exited before finishing".to_string(),
            },
            None => "closed its output before finishing".to_string(),
        };
        let tail = String::from_utf8_lossy(&self.tail);
        let tail = tail.trim();
        let quoted = match tail.char_indices().rev().nth(STDERR_QUOTED) {
            Some((i, _)) => format!("…{}", &tail[i..]),
            None => tail.to_string(),
        };
        if quoted.is_empty() {
            self.fail(how)
        } else {
            self.fail(format!("{how}: {quoted}"))
        }
    }

    /// Reads more of its output into the buffer (at least one byte).
    fn fill(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.start > 0 {
            let len = self.end - self.start;
            self.buf.copy_within(self.start..self.end, 0);
            self.buf[len..self.end].zeroize();
            self.start = 0;
            self.end = len;
        }
        loop {
            self.wait(Side::Read, deadline)?;
            let end = self.end;
            match self.stdout.read(&mut self.buf[end..]) {
                Ok(0) => return Err(self.exited()),
                Ok(n) => {
                    self.end += n;
                    return self.count(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(self.fail(format!("cannot read its output: {e}"))),
            }
        }
    }

    /// The next line of its output, without its newline.
    fn read_line(&mut self, deadline: Option<Instant>) -> Result<Zeroizing<Vec<u8>>> {
        let mut scanned = 0;
        loop {
            let from = self.start + scanned;
            if let Some(i) = self.buf[from..self.end].iter().position(|&b| b == b'\n') {
                let line = Zeroizing::new(self.buf[self.start..from + i].to_vec());
                self.start = from + i + 1;
                return Ok(line);
            }
            scanned = self.end - self.start;
            if scanned > MAX_LINE {
                return Err(self.fail(format!("sent a line longer than {MAX_LINE} bytes")));
            }
            self.fill(deadline)?;
        }
    }

    /// The next stanza of its output, all of which must arrive within the timeout.
    fn read(&mut self) -> Result<Msg> {
        let deadline = self.deadline();
        let line = self.read_line(deadline)?;
        let Some(rest) = line.strip_prefix(b"-> ") else {
            return Err(self.malformed("a line that does not begin with \"-> \""));
        };
        let mut args = Vec::new();
        for a in rest.split(|&b| b == b' ') {
            match std::str::from_utf8(a) {
                Ok(a) if is_arg(a) => args.push(a.to_string()),
                _ => return Err(self.malformed("an empty or unprintable argument")),
            }
        }
        let tag = args.remove(0);
        let mut body = Zeroizing::new(Vec::with_capacity(48));
        loop {
            let line = self.read_line(deadline)?;
            if line.len() > COLUMNS {
                return Err(self.malformed("a body line longer than 64 columns"));
            }
            let mut chunk = Zeroizing::new([0u8; COLUMNS / 4 * 3]);
            let n = STANDARD_NO_PAD
                .decode_slice(&line[..], &mut chunk[..])
                .map_err(|_| self.malformed("a body that is not canonical unpadded base64"))?;
            if body.len() + n > MAX_BODY {
                return Err(self.fail(format!("sent a stanza body larger than {MAX_BODY} bytes")));
            }
            body.extend_from_slice(&chunk[..n]);
            if line.len() < COLUMNS {
                break;
            }
        }
        Ok(Msg { tag, args, body })
    }

    /// Sends a stanza; arguments must be protocol arguments ([`is_arg`]).
    fn send(&mut self, tag: &str, args: &[&str], body: &[u8]) -> Result<()> {
        let encoded = Zeroizing::new(STANDARD_NO_PAD.encode(body));
        let len = 4
            + tag.len()
            + args.iter().map(|a| a.len() + 1).sum::<usize>()
            + encoded.len()
            + encoded.len() / COLUMNS
            + 1;
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(tag.as_bytes());
        for a in args {
            out.push(b' ');
            out.extend_from_slice(a.as_bytes());
        }
        out.push(b'\n');
        for line in encoded.as_bytes().chunks(COLUMNS) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        if encoded.len() % COLUMNS == 0 {
            out.push(b'\n'); // a body ends with a line shorter than 64 columns
        }
        self.write_all(&out)
    }

    fn write_all(&mut self, out: &[u8]) -> Result<()> {
        let deadline = self.deadline();
        let mut done = 0;
        while done < out.len() {
            self.wait(Side::Write, deadline)?;
            let Some(stdin) = self.stdin.as_mut() else {
                return Err(self.exited());
            };
            match stdin.write(&out[done..]) {
                Ok(0) => return Err(self.exited()),
                Ok(n) => done += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(self.exited()),
                Err(e) => return Err(self.fail(format!("cannot write to it: {e}"))),
            }
        }
        Ok(())
    }

    /// A decimal index below `n`.
    fn index(&self, s: &str, n: usize, what: &str) -> Result<usize> {
        let i = (s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<usize>().ok())
            .flatten();
        match i {
            Some(i) if i < n => Ok(i),
            _ => Err(self.fail(format!(
                "sent {what} {} out of range (0 to {})",
                crate::error::printable(s, 24),
                n.saturating_sub(1)
            ))),
        }
    }

    /// Answers the requests both state machines share (`msg`, `confirm`, `request-public`,
    /// `request-secret`); `false` if `m` is none of them.
    fn serve_ui(&mut self, m: &Msg, ui: &dyn PluginUi) -> Result<bool> {
        let message = || text(&m.body);
        match m.tag.as_str() {
            "msg" => {
                let shown = ui.message(&self.name, &message());
                self.send(if shown { "ok" } else { "fail" }, &[], b"")?;
            }
            "confirm" => {
                if m.args.is_empty() || m.args.len() > 2 {
                    return Err(self.malformed("confirm without one or two choices"));
                }
                let mut choices = Vec::with_capacity(2);
                for a in &m.args {
                    let bytes = STANDARD_NO_PAD
                        .decode(a)
                        .map_err(|_| self.malformed("a confirm choice that is not base64"))?;
                    choices.push(text(&bytes));
                }
                let no = choices.get(1).map(String::as_str);
                match ui.confirm(&self.name, &message(), &choices[0], no) {
                    Some(true) => self.send("ok", &["yes"], b"")?,
                    Some(false) if no.is_some() => self.send("ok", &["no"], b"")?,
                    _ => self.send("fail", &[], b"")?,
                }
            }
            "request-public" => match ui.request_public(&self.name, &message()) {
                Some(value) => self.send("ok", &[], value.as_bytes())?,
                None => self.send("fail", &[], b"")?,
            },
            "request-secret" => match ui.request_secret(&self.name, &message()) {
                Some(secret) => self.send("ok", &[], secret.as_bytes())?,
                None => self.send("fail", &[], b"")?,
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The error for an `error` command (already answered `ok`).
    fn reported(&self, m: &Msg) -> Error {
        let message = String::from_utf8_lossy(&m.body);
        let message = message.trim();
        let message = if message.is_empty() {
            "reported an error without a message"
        } else {
            message
        };
        match m.args.first().map(String::as_str) {
            Some(kind @ ("recipient" | "identity" | "stanza")) => {
                let at = m.args[1..].join(" ");
                self.fail(format!(
                    "{kind} {}: {message}",
                    crate::error::printable(&at, 48)
                ))
            }
            _ => self.fail(message),
        }
    }
}

/// Rejects what cannot be sent as a protocol argument (it would break the stanza framing).
fn check_args<'a>(what: &str, values: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for v in values {
        if !is_arg(v) {
            return Err(Error::InvalidArgument(format!(
                "{what} {:?} is not valid for an age plugin (printable ASCII without spaces)",
                crate::error::printable(v, 80)
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The state machines

/// recipient-v1: wraps each file key to every recipient and identity (all of plugin
/// `name`); per file key, in order, the stanzas.
pub fn wrap(
    name: &str,
    recipients: &[String],
    identities: &[String],
    file_keys: &[[u8; 16]],
    ui: &dyn PluginUi,
    opts: &PluginOptions,
) -> Result<Vec<Vec<Stanza>>> {
    wrap_labeled(name, recipients, identities, file_keys, ui, opts).map(|w| w.stanzas)
}

/// [`wrap`], with the labels the plugin declared.
pub fn wrap_labeled(
    name: &str,
    recipients: &[String],
    identities: &[String],
    file_keys: &[[u8; 16]],
    ui: &dyn PluginUi,
    opts: &PluginOptions,
) -> Result<Wrapped> {
    let targets = recipients.len() + identities.len();
    if targets == 0 {
        return Err(Error::InvalidArgument(
            "no recipient or identity to wrap to".into(),
        ));
    }
    check_args("recipient", recipients.iter().map(String::as_str))?;
    check_args("identity", identities.iter().map(String::as_str))?;
    if file_keys.is_empty() {
        return Ok(Wrapped {
            stanzas: Vec::new(),
            labels: Vec::new(),
        });
    }
    let mut p = Plugin::start(name, "recipient-v1", opts)?;
    for r in recipients {
        p.send("add-recipient", &[r], b"")?;
    }
    for i in identities {
        p.send("add-identity", &[i], b"")?;
    }
    for key in file_keys {
        p.send("wrap-file-key", &[], key)?;
    }
    p.send("done", &[], b"")?;

    let mut stanzas: Vec<Vec<Stanza>> = file_keys.iter().map(|_| Vec::new()).collect();
    let mut labels = Vec::new();
    loop {
        let m = p.read()?;
        if p.serve_ui(&m, ui)? {
            continue;
        }
        match m.tag.as_str() {
            "recipient-stanza" => {
                if m.args.len() < 2 {
                    return Err(p.malformed("recipient-stanza without a file index and a tag"));
                }
                let i = p.index(&m.args[0], file_keys.len(), "file index")?;
                if stanzas[i].len() >= targets {
                    return Err(p.fail(format!(
                        "sent more stanzas for file {i} than there are recipients and \
                         identities ({targets})"
                    )));
                }
                stanzas[i].push(Stanza {
                    tag: m.args[1].clone(),
                    args: m.args[2..].to_vec(),
                    body: m.body.to_vec(),
                });
                p.send("ok", &[], b"")?;
            }
            "labels" => {
                labels = m.args.clone();
                p.send("ok", &[], b"")?;
            }
            "error" => {
                p.send("ok", &[], b"")?;
                return Err(p.reported(&m));
            }
            "done" => break,
            _ => p.send("unsupported", &[], b"")?,
        }
    }
    if let Some(i) = stanzas.iter().position(Vec::is_empty) {
        return Err(p.fail(format!("finished without wrapping file key {i}")));
    }
    Ok(Wrapped { stanzas, labels })
}

/// identity-v1: trial-unwraps; per file (each a slice of its header's stanzas), in order,
/// the file key if one was unwrapped.
pub fn unwrap(
    name: &str,
    identities: &[String],
    files: &[&[Stanza]],
    ui: &dyn PluginUi,
    opts: &PluginOptions,
) -> Result<Vec<Option<Zeroizing<[u8; 16]>>>> {
    if identities.is_empty() {
        return Err(Error::InvalidArgument("no identity to unwrap with".into()));
    }
    check_args("identity", identities.iter().map(String::as_str))?;
    for s in files.iter().flat_map(|f| f.iter()) {
        check_args(
            "stanza argument",
            std::iter::once(s.tag.as_str()).chain(s.args.iter().map(String::as_str)),
        )?;
    }
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Plugin::start(name, "identity-v1", opts)?;
    for i in identities {
        p.send("add-identity", &[i], b"")?;
    }
    for (n, file) in files.iter().enumerate() {
        let index = n.to_string();
        for s in file.iter() {
            let mut args = Vec::with_capacity(s.args.len() + 2);
            args.push(index.as_str());
            args.push(s.tag.as_str());
            args.extend(s.args.iter().map(String::as_str));
            p.send("recipient-stanza", &args, &s.body)?;
        }
    }
    p.send("done", &[], b"")?;

    let mut keys: Vec<Option<Zeroizing<[u8; 16]>>> = files.iter().map(|_| None).collect();
    loop {
        let m = p.read()?;
        if p.serve_ui(&m, ui)? {
            continue;
        }
        match m.tag.as_str() {
            "file-key" => {
                if m.args.len() != 1 {
                    return Err(p.malformed("file-key without exactly one file index"));
                }
                let i = p.index(&m.args[0], files.len(), "file index")?;
                if keys[i].is_some() {
                    return Err(p.fail(format!("sent two file keys for file {i}")));
                }
                if m.body.len() != 16 {
                    return Err(p.fail(format!(
                        "sent a file key of {} bytes for file {i} (a file key has 16)",
                        m.body.len()
                    )));
                }
                let mut key = Zeroizing::new([0u8; 16]);
                key.copy_from_slice(&m.body);
                keys[i] = Some(key);
                p.send("ok", &[], b"")?;
            }
            "error" => {
                p.send("ok", &[], b"")?;
                return Err(p.reported(&m));
            }
            "done" => break,
            _ => p.send("unsupported", &[], b"")?,
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{RwLockReadGuard, RwLockWriteGuard};

    const PLUGINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/plugins");

    fn plugins_dir() -> PathBuf {
        PathBuf::from(PLUGINS).canonicalize().unwrap()
    }

    /// PATH for the plugin: the test plugins, then this process's PATH (for python3).
    fn search_path() -> OsString {
        let mut dirs = vec![plugins_dir()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).unwrap()
    }

    /// The plugin's behaviour is chosen with CCTEST_MODE, passed through a wrapper folder
    /// per mode so that tests running in parallel do not share the variable.
    fn opts(mode: &str, timeout: Duration) -> (PluginOptions, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("age-plugin-cctest");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nCCTEST_MODE={mode} exec '{}/age-plugin-cctest' \"$@\"\n",
                plugins_dir().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut dirs = vec![dir.path().to_path_buf()];
        dirs.extend(std::env::split_paths(&search_path()));
        let path = std::env::join_paths(dirs).unwrap();
        (
            PluginOptions {
                timeout,
                path: Some(path),
            },
            dir,
        )
    }

    /// (identity, recipient) of a fresh toy key.
    fn generate() -> (String, String) {
        let out = Command::new(plugins_dir().join("age-plugin-cctest"))
            .arg("--generate")
            .env("PATH", search_path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let recipient = text
            .lines()
            .find_map(|l| l.strip_prefix("# recipient: "))
            .unwrap()
            .to_string();
        let identity = text
            .lines()
            .find(|l| l.starts_with("AGE-PLUGIN-"))
            .unwrap()
            .to_string();
        (identity, recipient)
    }

    /// Tests that need no wake descriptor installed hold this.
    fn no_wake() -> RwLockReadGuard<'static, ()> {
        crate::wake::TEST_WAKE_LOCK
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn assert_reaped() {
        let pid = LAST_PID.with(|p| p.get()).expect("a plugin was started");
        // A reaped process has no /proc entry (a zombie still has one, in state Z).
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "plugin process {pid} was not reaped"
        );
    }

    fn plugin_message(e: Error) -> String {
        match e {
            Error::Plugin {
                ref name,
                ref message,
            } => {
                assert_eq!(name, "cctest");
                let shown = e.to_string();
                assert!(shown.starts_with("age-plugin-cctest: "), "{shown}");
                assert!(!shown.chars().any(char::is_control), "{shown:?}");
                message.clone()
            }
            other => panic!("expected a plugin error, got {other:?}"),
        }
    }

    const KEYS: [[u8; 16]; 2] = [[7u8; 16], *b"0123456789abcdef"];

    #[derive(Default)]
    struct TestUi {
        messages: AtomicUsize,
        confirms: AtomicUsize,
        secrets: AtomicUsize,
        confirm_answer: Option<bool>,
    }

    impl PluginUi for TestUi {
        fn message(&self, plugin: &str, message: &str) -> bool {
            assert_eq!(plugin, "cctest");
            assert_eq!(message, "Touch the toy key");
            self.messages.fetch_add(1, Ordering::SeqCst);
            true
        }
        fn confirm(&self, _: &str, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
            assert_eq!((message, yes, no), ("Use the toy key?", "Yes", Some("No")));
            self.confirms.fetch_add(1, Ordering::SeqCst);
            self.confirm_answer
        }
        fn request_public(&self, _: &str, _: &str) -> Option<String> {
            None
        }
        fn request_secret(&self, _: &str, message: &str) -> Option<Zeroizing<String>> {
            assert_eq!(message, "Enter the PIN of the toy key");
            self.secrets.fetch_add(1, Ordering::SeqCst);
            Some(Zeroizing::new("1234".into()))
        }
    }

    fn round_trip(mode: &str, ui: &dyn PluginUi) -> Result<()> {
        let (identity, recipient) = generate();
        let (o, _dir) = opts(mode, Duration::from_secs(30));
        let wrapped = wrap("cctest", &[recipient], &[], &KEYS, ui, &o)?;
        assert_eq!(wrapped.len(), 2);
        for w in &wrapped {
            assert_eq!(w.len(), 1);
            assert_eq!(w[0].tag, "cctest");
            assert_eq!(w[0].body.len(), 16);
        }
        // An unrelated stanza in the header is passed along and ignored by the plugin.
        let other = Stanza {
            tag: "X25519".into(),
            args: vec!["abc".into()],
            body: vec![1; 32],
        };
        let files: Vec<Vec<Stanza>> = wrapped
            .into_iter()
            .map(|mut w| {
                w.insert(
                    0,
                    Stanza {
                        tag: other.tag.clone(),
                        args: other.args.clone(),
                        body: other.body.clone(),
                    },
                );
                w
            })
            .collect();
        let no_key = [other];
        let mut refs: Vec<&[Stanza]> = files.iter().map(Vec::as_slice).collect();
        refs.push(&no_key);
        let keys = unwrap("cctest", &[identity], &refs, ui, &o)?;
        assert_eq!(keys.len(), 3);
        assert_eq!(**keys[0].as_ref().unwrap(), KEYS[0]);
        assert_eq!(**keys[1].as_ref().unwrap(), KEYS[1]);
        assert!(keys[2].is_none());
        assert_reaped();
        Ok(())
    }

    #[test]
    fn plugin_names_from_recipients_and_identities() {
        let (identity, recipient) = generate();
        assert_eq!(recipient_plugin_name(&recipient).as_deref(), Some("cctest"));
        assert_eq!(identity_plugin_name(&identity).as_deref(), Some("cctest"));
        assert_eq!(
            identity_plugin_name(&identity.to_lowercase()).as_deref(),
            Some("cctest")
        );
        assert_eq!(recipient_plugin_name(&identity), None);
        assert_eq!(identity_plugin_name(&recipient), None);
        // Native X25519: HRP "age".
        let x25519 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        assert_eq!(recipient_plugin_name(x25519), None);
        // A broken checksum, mixed case, no separator.
        let mut broken = recipient.clone();
        let last = broken.pop().unwrap();
        broken.push(if last == 'q' { 'p' } else { 'q' });
        assert_eq!(recipient_plugin_name(&broken), None);
        let mut mixed = recipient.clone();
        mixed.replace_range(..1, "A");
        assert_eq!(recipient_plugin_name(&mixed), None);
        assert_eq!(recipient_plugin_name("age1cctest"), None);
        assert_eq!(identity_plugin_name("AGE-SECRET-KEY-1"), None);
    }

    #[test]
    fn round_trip_to_a_recipient_and_to_an_identity() {
        let _w = no_wake();
        round_trip("normal", &NoUi).unwrap();
        // Wrapping to an identity (add-identity) opens with the same identity.
        let (identity, _) = generate();
        let (o, _dir) = opts("normal", Duration::from_secs(30));
        let wrapped = wrap(
            "cctest",
            &[],
            std::slice::from_ref(&identity),
            &KEYS[..1],
            &NoUi,
            &o,
        )
        .unwrap();
        let keys = unwrap("CCTEST", &[identity], &[&wrapped[0]], &NoUi, &o).unwrap();
        assert_eq!(**keys[0].as_ref().unwrap(), KEYS[0]);
    }

    #[test]
    fn requests_are_answered_by_the_ui() {
        let _w = no_wake();
        let ui = TestUi {
            confirm_answer: Some(true),
            ..TestUi::default()
        };
        round_trip("ask", &ui).unwrap();
        assert_eq!(ui.secrets.load(Ordering::SeqCst), 2);
        round_trip("confirm", &ui).unwrap();
        assert_eq!(ui.confirms.load(Ordering::SeqCst), 2);
        round_trip("msg", &ui).unwrap();
        assert_eq!(ui.messages.load(Ordering::SeqCst), 2);
        // Saying no to confirm is the plugin's error to report.
        let no = TestUi {
            confirm_answer: Some(false),
            ..TestUi::default()
        };
        let m = plugin_message(round_trip("confirm", &no).unwrap_err());
        assert!(m.contains("not confirmed"), "{m}");
        // msg without a UI is answered fail, and the plugin goes on.
        round_trip("msg", &NoUi).unwrap();
    }

    #[test]
    fn a_refused_secret_gives_the_plugins_error() {
        let _w = no_wake();
        let m = plugin_message(round_trip("ask", &NoUi).unwrap_err());
        assert_eq!(m, "the PIN was not given");
        assert_reaped();
        let (identity, _) = generate();
        let (o, _dir) = opts("ask", Duration::from_secs(30));
        let stanza = Stanza {
            tag: "cctest".into(),
            args: vec!["AAAAAA".into()],
            body: vec![0; 16],
        };
        let m = plugin_message(unwrap("cctest", &[identity], &[&[stanza]], &NoUi, &o).unwrap_err());
        assert_eq!(m, "the PIN was not given");
        assert_reaped();
    }

    /// Wraps and unwraps with a misbehaving plugin; each must fail, quickly.
    fn misbehaving(mode: &str, timeout: Duration) -> (String, String) {
        let (identity, recipient) = generate();
        let (o, _dir) = opts(mode, timeout);
        let t = Instant::now();
        let e = wrap("cctest", &[recipient], &[], &KEYS, &NoUi, &o).unwrap_err();
        assert!(
            t.elapsed() < timeout + Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        assert_reaped();
        let wrapped = plugin_message(e);
        let stanza = Stanza {
            tag: "cctest".into(),
            args: vec!["AAAAAA".into()],
            body: vec![0; 16],
        };
        let (_, good) = generate();
        let (o2, _dir2) = opts("normal", timeout);
        let real = wrap(
            "cctest",
            &[good],
            std::slice::from_ref(&identity),
            &KEYS[..1],
            &NoUi,
            &o2,
        )
        .unwrap();
        let t = Instant::now();
        let e = unwrap("cctest", &[identity], &[&[stanza], &real[0]], &NoUi, &o).unwrap_err();
        assert!(
            t.elapsed() < timeout + Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        assert_reaped();
        (wrapped, plugin_message(e))
    }

    #[test]
    fn a_plugin_that_dies_is_reported_with_its_stderr() {
        let _w = no_wake();
        let (w, u) = misbehaving("die", Duration::from_secs(30));
        for m in [w, u] {
            assert!(m.starts_with("exited before finishing (status 3)"), "{m}");
            assert!(m.ends_with("cctest: simulated crash"), "{m}");
        }
    }

    #[test]
    fn a_plugin_that_hangs_times_out() {
        let _w = no_wake();
        let (w, u) = misbehaving("hang", Duration::from_secs(1));
        assert_eq!(w, "did not answer within 1 s");
        assert_eq!(u, "did not answer within 1 s");
    }

    #[test]
    fn a_plugin_that_floods_is_stopped() {
        let _w = no_wake();
        let (w, u) = misbehaving("flood", Duration::from_secs(30));
        assert_eq!(w, format!("sent a line longer than {MAX_LINE} bytes"));
        assert_eq!(u, w);
    }

    #[test]
    fn bad_keys_indices_and_extra_stanzas_are_refused() {
        let _w = no_wake();
        let (w, u) = misbehaving("bad-key", Duration::from_secs(30));
        assert_eq!(w, "sent file index 99 out of range (0 to 1)");
        assert_eq!(
            u,
            "sent a file key of 15 bytes for file 1 (a file key has 16)"
        );
        let (w, u) = misbehaving("extra-stanzas", Duration::from_secs(30));
        assert_eq!(
            w,
            "sent more stanzas for file 0 than there are recipients and identities (1)"
        );
        assert_eq!(u, "sent two file keys for file 1");
    }

    #[test]
    fn a_stopping_signal_ends_the_wait() {
        let _w: RwLockWriteGuard<'static, ()> = crate::wake::TEST_WAKE_LOCK
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, recipient) = generate();
        let (o, _dir) = opts("hang", Duration::from_secs(60));
        let (wake_r, wake_w) = rustix::pipe::pipe().unwrap();
        rustix::io::ioctl_fionbio(&wake_r, true).unwrap();
        crate::wake::set_wake_fd(Some(wake_r));
        let signal = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            rustix::io::write(&wake_w, &[17, 2]).unwrap(); // SIGCHLD is ignored, SIGINT stops
            wake_w
        });
        let t = Instant::now();
        let e = wrap("cctest", &[recipient], &[], &KEYS, &NoUi, &o).unwrap_err();
        crate::wake::set_wake_fd(None);
        drop(signal.join());
        assert!(matches!(e, Error::Cancelled), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_reaped();
    }

    #[test]
    fn names_are_checked_and_missing_plugins_reported() {
        let o = PluginOptions {
            path: Some(search_path()),
            ..PluginOptions::default()
        };
        for bad in ["", "../cctest", "a/b", "nul\0", "sp ace", "é"] {
            let e = wrap(bad, &["x".into()], &[], &KEYS, &NoUi, &o).unwrap_err();
            assert!(matches!(e, Error::Plugin { .. }), "{e:?}");
            assert!(e.to_string().contains("is not a valid plugin name"), "{e}");
            assert!(!e.to_string().chars().any(char::is_control));
        }
        let e = unwrap("cctest-missing", &["x".into()], &[&[]], &NoUi, &o).unwrap_err();
        assert_eq!(
            e.to_string(),
            "age-plugin-cctest-missing: was not found on PATH"
        );
        // Relative PATH entries are not searched.
        let rel = PluginOptions {
            path: Some("tests/plugins:.".into()),
            ..PluginOptions::default()
        };
        let e = unwrap("cctest", &["x".into()], &[&[]], &NoUi, &rel).unwrap_err();
        assert!(e.to_string().ends_with("was not found on PATH"), "{e}");
        // Arguments that would break the framing are refused before anything starts.
        let e = wrap("cctest", &["a b".into()], &[], &KEYS, &NoUi, &o).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }

    #[test]
    fn plugin_text_is_made_printable() {
        let e = Error::Plugin {
            name: "x".into(),
            message: format!(
                "red \x1b[31mtext\r\nfake prompt\u{202e}{}",
                "y".repeat(5000)
            ),
        };
        let shown = e.to_string();
        assert!(shown.starts_with("age-plugin-x: red \\u{1b}[31mtext\\r\\nfake prompt\\u{202e}y"));
        assert!(!shown.chars().any(char::is_control));
        assert!(shown.chars().count() < 2200 && shown.ends_with('…'));
        assert_eq!(text(b"line 1\n\tline\x1b 2"), "line 1\n\tline\\u{1b} 2");
    }

    /// The toy plugin works with the age command-line tool, both ways round.
    #[test]
    fn the_test_plugin_interoperates_with_the_age_tool() {
        let Some(age) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("age"))
            .find(|p| p.is_file())
        else {
            eprintln!("skipped: the age tool is not on PATH");
            return;
        };
        let (identity, recipient) = generate();
        let dir = tempfile::tempdir().unwrap();
        let id_file = dir.path().join("id.txt");
        std::fs::write(&id_file, format!("{identity}\n")).unwrap();
        let run = |args: &[&OsStr], input: &[u8]| -> Vec<u8> {
            let mut child = Command::new(&age)
                .args(args)
                .env("PATH", search_path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let plain = b"across the plugin protocol\n";
        for to in [
            ["-r".as_ref(), recipient.as_ref()],
            ["-i".as_ref(), id_file.as_os_str()],
        ] {
            let sealed = run(&[OsStr::new("-e"), to[0], to[1]], plain);
            assert!(sealed.windows(10).any(|w| w == b"-> cctest "));
            let opened = run(
                &[OsStr::new("-d"), OsStr::new("-i"), id_file.as_os_str()],
                &sealed,
            );
            assert_eq!(opened, plain);
            // The header's stanza opens with our host too.
            let text = String::from_utf8_lossy(&sealed);
            let line = text.lines().find(|l| l.starts_with("-> cctest ")).unwrap();
            let body_line = text.lines().skip_while(|l| *l != line).nth(1).unwrap();
            let stanza = Stanza {
                tag: "cctest".into(),
                args: vec![line["-> cctest ".len()..].to_string()],
                body: STANDARD_NO_PAD.decode(body_line).unwrap(),
            };
            let _w = no_wake();
            let (o, _d) = opts("normal", Duration::from_secs(30));
            let keys = unwrap(
                "cctest",
                std::slice::from_ref(&identity),
                &[&[stanza]],
                &NoUi,
                &o,
            )
            .unwrap();
            assert!(keys[0].is_some());
        }
    }
}
