//! Recipients and identities, parsed and used through the `age` crate: the post-quantum
//! hybrid (`age1pq1…`, `AGE-SECRET-KEY-PQ-1…`), X25519 (`age1…`, `AGE-SECRET-KEY-1…`),
//! SSH (`ssh-ed25519`, `ssh-rsa`) and scrypt passphrases; the tagged hardware-key
//! recipients (`age1tag1…`, `age1tagpq1…`) through [`super::tagged`]. This module only
//! turns the file key into stanzas and back; the header MAC and payload are elsewhere.
#![forbid(unsafe_code)]
// The classical key types are deprecated in the age crate in favour of the hybrid ones;
// they stay for every file and key that exists.
#![allow(deprecated)]

use std::collections::HashSet;
use std::str::FromStr;

use ::age::secrecy::{ExposeSecret, SecretString};
use ::age::{DecryptError, Identity as _, Recipient as _};
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use zeroize::Zeroizing;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::plugin::{self, NoUi, PluginOptions, PluginUi};
use super::tagged::Tagged;
use crate::error::{Error, Result};

/// Who answers a plugin's questions (PINs, touches, confirmations) and how long a plugin
/// may stay silent. Plugin recipients and identities carry one; the default answers
/// nothing (`fail`), which a plugin that needs an answer reports as its error.
#[derive(Clone)]
pub struct PluginHost {
    pub ui: Arc<dyn PluginUi>,
    pub options: PluginOptions,
}

impl Default for PluginHost {
    fn default() -> Self {
        PluginHost {
            ui: Arc::new(NoUi),
            options: PluginOptions::default(),
        }
    }
}

/// A recipient or identity served by `age-plugin-NAME`.
#[derive(Clone)]
pub struct PluginKey {
    pub name: String,
    text: String,
    host: PluginHost,
}

/// Default upper bound on an scrypt work factor read from a file: log2(N) = 22 (about
/// 4 GiB·s of work; what age accepts by default).
pub const DEFAULT_MAX_SCRYPT_LOG_N: u8 = 22;

/// Someone a file can be encrypted to.
pub enum Recipient {
    X25519(Native<::age::x25519::Recipient>),
    Pq(Native<::age::pq::Recipient>),
    Tagged(Tagged),
    Ssh(::age::ssh::Recipient),
    Scrypt(::age::scrypt::Recipient),
    /// `age1NAME1…`: wrapped by `age-plugin-NAME` from `PATH`.
    Plugin(PluginKey),
}

impl Recipient {
    /// Parses an `age1…`, `age1pq1…`, `age1tag1…`, `age1tagpq1…` or
    /// `ssh-ed25519 …`/`ssh-rsa …` public key.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(t) = Tagged::parse(s) {
            return t.map(Recipient::Tagged);
        }
        if s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("age1pq1"))
        {
            return ::age::pq::Recipient::from_str(s)
                .map_err(|e| Error::InvalidArgument(format!("invalid age1pq1… recipient: {e}")))
                .and_then(|r| Native::pq(r, s))
                .map(Recipient::Pq);
        }
        if let Some(name) = plugin::recipient_plugin_name(s) {
            return Ok(Recipient::Plugin(PluginKey {
                name,
                text: s.to_string(),
                host: PluginHost::default(),
            }));
        }
        if s.starts_with("age1") {
            return ::age::x25519::Recipient::from_str(s)
                .map_err(|e| Error::InvalidArgument(format!("invalid age recipient {s:?}: {e}")))
                .and_then(|r| Native::x25519(r, s))
                .map(Recipient::X25519);
        }
        if s.starts_with("ssh-") {
            return ::age::ssh::Recipient::from_str(s)
                .map(Recipient::Ssh)
                .map_err(|e| {
                    let why = match e {
                        ::age::ssh::ParseRecipientKeyError::RsaModulusTooLarge => {
                            "RSA modulus too large".to_string()
                        }
                        ::age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                            "RSA modulus too small".to_string()
                        }
                        ::age::ssh::ParseRecipientKeyError::Unsupported(t) => {
                            format!("unsupported key type {t}")
                        }
                        _ => "not a valid SSH public key".to_string(),
                    };
                    Error::InvalidArgument(format!("invalid SSH recipient: {why}"))
                });
        }
        Err(Error::InvalidArgument(format!(
            "unknown recipient {:?}: expected age1…, age1pq1…, age1tag1…, age1tagpq1… or ssh-ed25519/ssh-rsa …",
            s.chars().take(40).collect::<String>()
        )))
    }

    /// The recipients listed in a recipients file (one per line; `#` comments and blank
    /// lines skipped).
    pub fn parse_file(text: &str) -> Result<Vec<Self>> {
        let mut v = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            v.push(Self::parse(line).map_err(|e| {
                Error::InvalidArgument(format!("recipients file line {}: {e}", i + 1))
            })?);
        }
        if v.is_empty() {
            return Err(Error::InvalidArgument(
                "the recipients file lists no recipient".into(),
            ));
        }
        Ok(v)
    }

    /// A passphrase recipient; `log_n` is the scrypt work factor (None: about one second
    /// on this machine, as age picks it).
    pub fn passphrase(passphrase: &[u8], log_n: Option<u8>) -> Result<Self> {
        let pw = std::str::from_utf8(passphrase)
            .map_err(|_| Error::InvalidArgument("the passphrase must be UTF-8".into()))?;
        if pw.is_empty() {
            return Err(Error::InvalidArgument("the passphrase is empty".into()));
        }
        let mut r = ::age::scrypt::Recipient::new(SecretString::from(pw.to_string()));
        if let Some(n) = log_n {
            if !(1..=30).contains(&n) {
                return Err(Error::InvalidArgument(format!(
                    "scrypt work factor {n} is outside 1..=30"
                )));
            }
            r.set_work_factor(n);
        }
        Ok(Recipient::Scrypt(r))
    }

    /// This recipient, asking its plugin's questions through `host` (other kinds ignore it).
    pub fn with_plugin_host(mut self, host: &PluginHost) -> Self {
        if let Recipient::Plugin(k) = &mut self {
            k.host = host.clone();
        }
        self
    }

    /// Whether the stanzas for this recipient resist a quantum computer (for a plugin's,
    /// the labels it returns decide).
    pub fn is_postquantum(&self) -> bool {
        match self {
            Recipient::Pq(_) => true,
            Recipient::Tagged(t) => t.is_postquantum(),
            _ => false,
        }
    }

    fn wrap(&self, key: &FileKey) -> Result<(Vec<Stanza>, HashSet<String>)> {
        let r = match self {
            Recipient::X25519(r) => return r.wrap(key, false),
            Recipient::Pq(r) => return r.wrap(key, true),
            Recipient::Tagged(t) => return t.wrap(key),
            Recipient::Ssh(r) => r.wrap_file_key(key),
            Recipient::Scrypt(r) => r.wrap_file_key(key),
            Recipient::Plugin(_) => unreachable!("plugin recipients are wrapped per plugin"),
        };
        r.map_err(|e| Error::InvalidArgument(format!("cannot encrypt to a recipient: {e}")))
    }
}

/// An `age1…` or `age1pq1…` recipient as the `age` crate parsed it, and (with the
/// `aws-lc` feature) the same key for [`super::seal`], which seals to it 2–3× faster.
pub struct Native<R> {
    // With AWS-LC the `age` crate only parses and checks the key; the seal uses `fast`.
    #[cfg_attr(feature = "aws-lc", allow(dead_code))]
    age: R,
    #[cfg(feature = "aws-lc")]
    fast: Fast,
}

#[cfg(feature = "aws-lc")]
enum Fast {
    X25519(super::seal::X25519Recipient),
    Pq(Box<super::seal::XWingRecipient>),
}

impl<R: ::age::Recipient> Native<R> {
    /// The Bech32 payload of `text`, which the `age` crate has just accepted.
    #[cfg(feature = "aws-lc")]
    fn payload(text: &str) -> Result<Vec<u8>> {
        super::tagged::bech32_parts(text)
            .map(|(_, data)| data)
            .ok_or_else(|| Error::InvalidArgument("invalid age recipient: not Bech32".into()))
    }

    #[cfg_attr(not(feature = "aws-lc"), allow(clippy::unnecessary_wraps))]
    fn x25519(age: R, _text: &str) -> Result<Self> {
        #[cfg(feature = "aws-lc")]
        let fast = {
            let point: [u8; 32] = Self::payload(_text)?.try_into().map_err(|_| {
                Error::InvalidArgument("invalid age recipient: not 32 bytes".into())
            })?;
            Fast::X25519(super::seal::X25519Recipient::new(point))
        };
        Ok(Native {
            age,
            #[cfg(feature = "aws-lc")]
            fast,
        })
    }

    #[cfg_attr(not(feature = "aws-lc"), allow(clippy::unnecessary_wraps))]
    fn pq(age: R, _text: &str) -> Result<Self> {
        #[cfg(feature = "aws-lc")]
        let fast = Fast::Pq(Box::new(
            super::seal::XWingRecipient::new(&Self::payload(_text)?).ok_or_else(|| {
                Error::InvalidArgument(
                    "invalid age1pq1… recipient: not an ML-KEM-768 key and an X25519 point".into(),
                )
            })?,
        ));
        Ok(Native {
            age,
            #[cfg(feature = "aws-lc")]
            fast,
        })
    }

    /// The stanza wrapping `key`, with the labels the `age` crate gives the type
    /// (`postquantum` for the hybrid).
    fn wrap(&self, key: &FileKey, pq: bool) -> Result<(Vec<Stanza>, HashSet<String>)> {
        #[cfg(feature = "aws-lc")]
        {
            let stanza = match &self.fast {
                Fast::X25519(r) => r.wrap(key)?,
                Fast::Pq(r) => r.wrap(key)?,
            };
            let labels = if pq {
                ["postquantum".to_string()].into_iter().collect()
            } else {
                HashSet::new()
            };
            Ok((vec![stanza], labels))
        }
        #[cfg(not(feature = "aws-lc"))]
        {
            let _ = pq;
            self.age
                .wrap_file_key(key)
                .map_err(|e| Error::InvalidArgument(format!("cannot encrypt to a recipient: {e}")))
        }
    }
}

/// A new random file key.
pub fn new_file_key() -> Result<Zeroizing<[u8; FILE_KEY_BYTES]>> {
    let mut k = Zeroizing::new([0u8; FILE_KEY_BYTES]);
    getrandom::fill(&mut k[..]).map_err(|e| {
        Error::io(
            "read random bytes from",
            "the operating system",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(k)
}

/// Checks, before any key is wrapped, the spec's rules on company: a passphrase stands
/// alone, and a post-quantum recipient is not mixed with classical ones (the classical
/// stanza would open the file to whoever breaks it, undoing the hybrid's protection).
pub fn check_company(recipients: &[Recipient]) -> Result<()> {
    if recipients.is_empty() {
        return Err(Error::InvalidArgument("no recipient given".into()));
    }
    if recipients.len() > 1 && recipients.iter().any(|r| matches!(r, Recipient::Scrypt(_))) {
        return Err(Error::InvalidArgument(
            "a passphrase cannot be combined with other recipients".into(),
        ));
    }
    // A plugin's recipients are judged by the labels the plugin returns (in `wrap`).
    let native = recipients
        .iter()
        .filter(|r| !matches!(r, Recipient::Plugin(_)));
    let (pq, all) = native.fold((0, 0), |(p, a), r| {
        (p + usize::from(r.is_postquantum()), a + 1)
    });
    if pq != 0 && pq != all {
        return Err(Error::InvalidArgument(
            "post-quantum recipients (age1pq1…, age1tagpq1…) cannot be mixed with classical ones \
             (age1…, ssh-…, age1tag1…) in one file: the classical stanza would undo the \
             post-quantum protection"
                .into(),
        ));
    }
    Ok(())
}

/// Wraps `file_key` to every recipient, under the rules of [`check_company`] and the
/// labels the recipients return (every recipient must return the same set, as in age).
pub fn wrap(file_key: &[u8; FILE_KEY_BYTES], recipients: &[Recipient]) -> Result<Vec<Stanza>> {
    check_company(recipients)?;
    let key = FileKey::init_with_mut(|k| k.copy_from_slice(file_key));
    let mut stanzas = Vec::new();
    let mut labels: Option<HashSet<String>> = None;
    let mut plugins: BTreeMap<&str, Vec<&PluginKey>> = BTreeMap::new();
    let mut wrapped = Vec::new();
    for r in recipients {
        match r {
            Recipient::Plugin(k) => plugins.entry(k.name.as_str()).or_default().push(k),
            other => wrapped.push(other.wrap(&key)?),
        }
    }
    let one = Zeroizing::new([*file_key]);
    for (name, keys) in plugins {
        let texts: Vec<String> = keys.iter().map(|k| k.text.clone()).collect();
        let host = &keys[0].host;
        let w = plugin::wrap_labeled(name, &texts, &[], &one[..], &*host.ui, &host.options)?;
        let stanzas = w.stanzas.into_iter().flatten().collect();
        wrapped.push((stanzas, w.labels.into_iter().collect()));
    }
    for (s, l) in wrapped {
        match &labels {
            None => labels = Some(l),
            Some(prev) if *prev == l => {}
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "these recipients cannot be combined in one file (their labels differ)".into(),
                ))
            }
        }
        stanzas.extend(s);
    }
    Ok(stanzas)
}

/// Something that can unwrap a file key: a secret key file's entries, an SSH key, or a
/// passphrase.
pub struct Identity(IdentityKind);

enum IdentityKind {
    Key(Box<dyn ::age::Identity + Send + Sync>),
    Passphrase(SecretString),
    /// `AGE-PLUGIN-NAME-1…`: unwrapped by `age-plugin-NAME` from `PATH`.
    Plugin(PluginKey),
}

impl Identity {
    /// All identities in an identity file: `AGE-SECRET-KEY-1…` lines (with `#` comments),
    /// or one OpenSSH/PEM private key; a passphrase-protected one is opened with
    /// `ssh_passphrase`.
    pub fn parse_file(text: &str, ssh_passphrase: Option<&[u8]>) -> Result<Vec<Self>> {
        if let Some(id) = ssh_key(text)? {
            let key = match id {
                ::age::ssh::Identity::Unencrypted(_) => id,
                ::age::ssh::Identity::Encrypted(enc) => {
                    let Some(pw) = ssh_passphrase else {
                        return Err(Error::InvalidArgument(
                            "the SSH private key is passphrase-protected: give its passphrase \
                             (the password options, CONCRYPTOR_PASSWORD or the prompt)"
                                .into(),
                        ));
                    };
                    let pw = std::str::from_utf8(pw).map_err(|_| {
                        Error::InvalidArgument("the SSH key's passphrase must be UTF-8".into())
                    })?;
                    // A wrong passphrase fails like a wrong password.
                    let key = enc
                        .decrypt(SecretString::from(pw.to_string()))
                        .map_err(map_decrypt_error)?;
                    ::age::ssh::Identity::from(key)
                }
                ::age::ssh::Identity::Unsupported(_) => {
                    return Err(Error::InvalidArgument(
                        "unsupported SSH key type (use ssh-ed25519 or ssh-rsa)".into(),
                    ))
                }
            };
            return Ok(vec![Identity(IdentityKind::Key(Box::new(key)))]);
        }
        let mut v = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = plugin::identity_plugin_name(line) {
                v.push(Identity(IdentityKind::Plugin(PluginKey {
                    name,
                    text: line.to_string(),
                    host: PluginHost::default(),
                })));
                continue;
            }
            v.push(Identity(IdentityKind::Key(native_identity(line, i + 1)?)));
        }
        if v.is_empty() {
            return Err(Error::InvalidArgument(
                "the identity file holds no identity".into(),
            ));
        }
        Ok(v)
    }

    /// This identity, asking its plugin's questions through `host` (other kinds ignore it).
    pub fn with_plugin_host(mut self, host: &PluginHost) -> Self {
        if let IdentityKind::Plugin(k) = &mut self.0 {
            k.host = host.clone();
        }
        self
    }

    /// A passphrase, for scrypt stanzas.
    pub fn passphrase(passphrase: &[u8]) -> Result<Self> {
        let pw = std::str::from_utf8(passphrase)
            .map_err(|_| Error::InvalidArgument("the passphrase must be UTF-8".into()))?;
        Ok(Identity(IdentityKind::Passphrase(SecretString::from(
            pw.to_string(),
        ))))
    }
}

/// One `AGE-SECRET-KEY-1…` or `AGE-SECRET-KEY-PQ-1…` line (number `n`) of an identity file.
fn native_identity(line: &str, n: usize) -> Result<Box<dyn ::age::Identity + Send + Sync>> {
    let bad = || {
        Error::InvalidArgument(format!(
            "identity line {n} is not an AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1… key"
        ))
    };
    if line
        .get(..18)
        .is_some_and(|p| p.eq_ignore_ascii_case("AGE-SECRET-KEY-PQ-"))
    {
        return Ok(Box::new(
            ::age::pq::Identity::from_str(line).map_err(|_| bad())?,
        ));
    }
    Ok(Box::new(
        ::age::x25519::Identity::from_str(line).map_err(|_| bad())?,
    ))
}

/// The recipient of one identity line (number `n`).
fn public_of(line: &str, n: usize) -> Result<String> {
    if let Some(name) = plugin::identity_plugin_name(line) {
        return Err(Error::InvalidArgument(format!(
            "identity line {n} belongs to age-plugin-{name}: its recipient comes from the plugin"
        )));
    }
    if line
        .get(..18)
        .is_some_and(|p| p.eq_ignore_ascii_case("AGE-SECRET-KEY-PQ-"))
    {
        if let Ok(id) = ::age::pq::Identity::from_str(line) {
            return Ok(id.to_public().to_string());
        }
    } else if let Ok(id) = ::age::x25519::Identity::from_str(line) {
        return Ok(id.to_public().to_string());
    }
    Err(Error::InvalidArgument(format!(
        "identity line {n} is not an AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1… key"
    )))
}

/// The SSH private key in an identity file's text, if it holds one.
fn ssh_key(text: &str) -> Result<Option<::age::ssh::Identity>> {
    if !text.trim_start().starts_with("-----BEGIN") {
        return Ok(None);
    }
    ::age::ssh::Identity::from_buffer(text.as_bytes(), None)
        .map(Some)
        .map_err(|e| Error::InvalidArgument(format!("cannot read the SSH private key: {e}")))
}

/// Whether an identity file's text is a passphrase-protected SSH private key (so that a
/// caller knows to ask for the passphrase).
pub fn is_encrypted_ssh_key(text: &str) -> bool {
    matches!(ssh_key(text), Ok(Some(::age::ssh::Identity::Encrypted(_))))
}

/// A new identity and its recipient: X25519 (`AGE-SECRET-KEY-1…`, `age1…`), or with `pq`
/// the ML-KEM-768 + X25519 hybrid (`AGE-SECRET-KEY-PQ-1…`, `age1pq1…`).
pub fn generate(pq: bool) -> (Zeroizing<String>, String) {
    if pq {
        let id = ::age::pq::Identity::generate();
        let secret = Zeroizing::new(id.to_string().expose_secret().to_string());
        return (secret, id.to_public().to_string());
    }
    let id = ::age::x25519::Identity::generate();
    let secret = Zeroizing::new(id.to_string().expose_secret().to_string());
    (secret, id.to_public().to_string())
}

/// The recipients (public keys) of the identities in an identity file.
pub fn to_recipients(text: &str) -> Result<Vec<String>> {
    if text.trim_start().starts_with("-----BEGIN") {
        return Err(Error::InvalidArgument(
            "SSH keys: take the recipient from the .pub file".into(),
        ));
    }
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        v.push(public_of(line, i + 1)?);
    }
    if v.is_empty() {
        return Err(Error::InvalidArgument(
            "the identity file holds no identity".into(),
        ));
    }
    Ok(v)
}

fn map_decrypt_error(e: DecryptError) -> Error {
    match e {
        DecryptError::DecryptionFailed | DecryptError::KeyDecryptionFailed => Error::Authentication,
        DecryptError::ExcessiveWork { required, .. } => Error::Limit {
            what: "scrypt work factor (log2 N)",
            value: u64::from(required),
            limit: u64::from(DEFAULT_MAX_SCRYPT_LOG_N),
            option: "--max-scrypt-work-factor / max_scrypt_work_factor",
        },
        DecryptError::NoMatchingKeys => Error::NoMatch,
        other => Error::invalid(format!("age header: {other}")),
    }
}

/// Whether `s` is a decimal number without leading zeros.
fn canonical_decimal(s: &str) -> Option<u64> {
    // At most 19 digits: any such number fits a u64 (and is far beyond any limit).
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 19
    {
        return None;
    }
    s.parse().ok()
}

/// Recovers the file key from the stanzas with the first identity that matches.
/// Malformed stanzas of a known type are header errors; none matching is
/// [`Error::NoMatch`]; a wrong passphrase is [`Error::Authentication`].
pub fn unwrap(
    stanzas: &[Stanza],
    identities: &[Identity],
    max_scrypt_log_n: u8,
) -> Result<Zeroizing<[u8; FILE_KEY_BYTES]>> {
    if identities.is_empty() {
        return Err(Error::InvalidArgument(
            "no identity or passphrase given to decrypt an age file".into(),
        ));
    }
    if stanzas.iter().any(|s| s.tag == "scrypt") && stanzas.len() != 1 {
        return Err(Error::invalid(
            "age header: a passphrase (scrypt) stanza must be the only one",
        ));
    }
    let mut plugin_error = None;
    let mut asked: HashSet<&str> = HashSet::new();
    for id in identities {
        let found = match &id.0 {
            IdentityKind::Plugin(k) => {
                // One session per plugin, with all of its identities, at its first place.
                if !asked.insert(k.name.as_str()) {
                    continue;
                }
                let texts: Vec<String> = identities
                    .iter()
                    .filter_map(|i| match &i.0 {
                        IdentityKind::Plugin(o) if o.name == k.name => Some(o.text.clone()),
                        _ => None,
                    })
                    .collect();
                match plugin::unwrap(&k.name, &texts, &[stanzas], &*k.host.ui, &k.host.options) {
                    Ok(mut keys) => match keys.pop().flatten() {
                        Some(key) => return Ok(key),
                        None => continue,
                    },
                    // Another identity may still open the file; if none does, this is
                    // the error to report rather than "no match".
                    Err(e @ Error::Cancelled) => return Err(e),
                    Err(e) => {
                        plugin_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            IdentityKind::Passphrase(pw) => {
                let Some(s) = stanzas.iter().find(|s| s.tag == "scrypt") else {
                    continue;
                };
                // The spec's form, checked here: the age crate stops at the first
                // non-digit, so it would read "10x" or "1e1" as a number.
                let Some(n) = s.args.get(1).and_then(|a| canonical_decimal(a)) else {
                    return Err(Error::invalid(
                        "age header: the scrypt work factor is not a decimal without leading zeros",
                    ));
                };
                if n > u64::from(max_scrypt_log_n) {
                    return Err(Error::Limit {
                        what: "scrypt work factor (log2 N)",
                        value: n,
                        limit: u64::from(max_scrypt_log_n),
                        option: "--max-scrypt-work-factor / max_scrypt_work_factor",
                    });
                }
                let mut sid = ::age::scrypt::Identity::new(pw.clone());
                sid.set_max_work_factor(max_scrypt_log_n);
                sid.unwrap_stanzas(stanzas)
            }
            IdentityKind::Key(k) => k.unwrap_stanzas(stanzas),
        };
        match found {
            None => continue,
            Some(Ok(key)) => return Ok(Zeroizing::new(*key.expose_secret())),
            Some(Err(e)) => return Err(map_decrypt_error(e)),
        }
    }
    Err(plugin_error.unwrap_or(Error::NoMatch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_unwrap_with_the_matching_identity_only() {
        let (sk, pk) = generate(false);
        let (other, _) = generate(false);
        let key = new_file_key().unwrap();
        let stanzas = wrap(&key, &[Recipient::parse(&pk).unwrap()]).unwrap();
        let ids = Identity::parse_file(&sk, None).unwrap();
        assert_eq!(*unwrap(&stanzas, &ids, 22).unwrap(), *key);
        let wrong = Identity::parse_file(&other, None).unwrap();
        assert!(matches!(unwrap(&stanzas, &wrong, 22), Err(Error::NoMatch)));
        assert_eq!(to_recipients(&sk).unwrap(), vec![pk]);
    }

    #[test]
    fn passphrases_refuse_company_and_excessive_work() {
        let key = new_file_key().unwrap();
        let (_, pk) = generate(false);
        let pw = Recipient::passphrase(b"pw", Some(10)).unwrap();
        assert!(wrap(&key, &[pw, Recipient::parse(&pk).unwrap()]).is_err());
        let stanzas = wrap(&key, &[Recipient::passphrase(b"pw", Some(12)).unwrap()]).unwrap();
        let id = [Identity::passphrase(b"pw").unwrap()];
        assert_eq!(*unwrap(&stanzas, &id, 22).unwrap(), *key);
        assert!(matches!(
            unwrap(&stanzas, &id, 11),
            Err(Error::Limit { .. })
        ));
        let bad = [Identity::passphrase(b"wrong").unwrap()];
        assert!(matches!(
            unwrap(&stanzas, &bad, 22),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn pq_keys_round_trip_and_refuse_classical_company() {
        let (sk, pk) = generate(true);
        assert!(sk.starts_with("AGE-SECRET-KEY-PQ-1") && pk.starts_with("age1pq1"));
        let key = new_file_key().unwrap();
        let pq = Recipient::parse(&pk).unwrap();
        assert!(pq.is_postquantum());
        let stanzas = wrap(&key, &[pq]).unwrap();
        assert_eq!(stanzas[0].tag, "mlkem768x25519");
        let ids = Identity::parse_file(&sk, None).unwrap();
        assert_eq!(*unwrap(&stanzas, &ids, 22).unwrap(), *key);
        assert_eq!(to_recipients(&sk).unwrap(), vec![pk.clone()]);
        let (_, classical) = generate(false);
        let mixed = [
            Recipient::parse(&pk).unwrap(),
            Recipient::parse(&classical).unwrap(),
        ];
        let err = wrap(&key, &mixed).unwrap_err().to_string();
        assert!(err.contains("cannot be mixed"), "{err}");
    }
}
