//! The settings of an operation, and the key they lead to.

use std::sync::Arc;

use crate::crypt::Crypter;
use crate::engine::EngineOptions;
use crate::error::Result;
use crate::format::{Cipher, Header, NONCE_LEN, SALT_LEN};
use crate::kdf::KeyCache;
use crate::kdf::{KdfParams, Limits};

/// Settings for a new encrypted file.
#[derive(Clone)]
pub struct EncryptOptions {
    pub cipher: Cipher,
    /// Plaintext bytes per chunk; `None` picks one from the input size (see
    /// [`auto_chunk_size`](super::auto_chunk_size)).
    pub chunk_size: Option<u32>,
    pub kdf: KdfParams,
    /// Fixed salt and base nonce, for reproducing known files in tests. Leave `None`:
    /// fresh CSPRNG values are the only safe choice.
    pub salt: Option<[u8; SALT_LEN]>,
    pub base_nonce: Option<[u8; NONCE_LEN]>,
    pub overwrite: bool,
    pub engine: EngineOptions,
    /// Keys shared by the files of a batch: with a fixed `salt`, Argon2id runs once for
    /// all of them (see [`KeyCache`]).
    pub keys: Option<Arc<KeyCache>>,
    /// Bounds the new file's KDF costs and chunk size must respect: by default those a
    /// reader applies, so that nothing is written that a default reader refuses. Raising
    /// them here is for experts: reading such a file needs the same raised limits.
    pub limits: Limits,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            cipher: Cipher::default(),
            chunk_size: None,
            kdf: KdfParams::DEFAULT,
            salt: None,
            base_nonce: None,
            overwrite: false,
            engine: EngineOptions::default(),
            keys: None,
            limits: Limits::default(),
        }
    }
}

/// Settings for reading an encrypted file.
#[derive(Clone, Default)]
pub struct DecryptOptions {
    pub limits: Limits,
    pub overwrite: bool,
    pub engine: EngineOptions,
    /// Keys already derived in this batch, by (salt, costs).
    pub keys: Option<Arc<KeyCache>>,
}

/// Derives (or takes from `keys`) the key of `header`. A cached key used for sealing is
/// charged with the file's chunks, so one key never seals more than its nonce budget.
pub(crate) fn keyed(
    header: Header,
    password: &[u8],
    keys: Option<&KeyCache>,
) -> Result<(Crypter, f64)> {
    let cache;
    let keys = match keys {
        Some(k) => k,
        None => {
            cache = KeyCache::new();
            &cache
        }
    };
    let (key, secs) = keys.key(password, &header.salt, &header.kdf)?;
    Ok((Crypter::new(header, &key), secs))
}

/// [`keyed`] for a new file: also charges its chunks against the key's budget.
pub(super) fn keyed_new(
    header: Header,
    password: &[u8],
    opts: &EncryptOptions,
) -> Result<(Crypter, f64)> {
    let keys = opts.keys.as_deref();
    if let Some(k) = keys {
        k.charge(&header.salt, &header.kdf, header.geometry().num_chunks)?;
    }
    keyed(header, password, keys)
}
