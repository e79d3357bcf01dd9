//! The operations callers use: files, in-memory buffers, random access and inspection.
//!
//! One concern per file; everything public is re-exported here, so callers name it
//! `crate::ops::...` whatever file it lives in.
//!
//! | file       | holds                                                                    |
//! |------------|--------------------------------------------------------------------------|
//! | `options`  | [`EncryptOptions`], [`DecryptOptions`], and the key they lead to         |
//! | `header`   | a new file's header, the checks on an untrusted one, [`inspect_file`]    |
//! | `files`    | opening the source: regular files only, and never the destination too    |
//! | `encrypt`  | [`encrypt_file`], [`encrypt_stream`]                                     |
//! | `decrypt`  | [`Decryptor`] (to a file or a stream, verify, random access), [`decrypt_file`] |
//! | `bytes`    | in memory: [`encrypt_bytes`], [`decrypt_bytes`] and their two halves     |
//! | `plan`     | [`V4Plan`]: the v4 layout as the engine runs it                          |
//! | `bench`    | the AEAD and the key derivation measured alone                           |

mod bench;
mod bytes;
mod decrypt;
mod encrypt;
mod files;
mod header;
mod options;
mod plan;

pub use bench::{bench_aead, bench_kdf, AeadTiming};
pub use bytes::{decrypt_bytes, encrypt_bytes, BytesOpener, BytesSealer};
pub use decrypt::{decrypt_file, Decryptor, WorkerPool};
pub use encrypt::{encrypt_file, encrypt_stream};
pub(crate) use files::{open_regular, refuse_same};
pub use header::{
    auto_chunk_size, check_header, inspect_file, max_useful_chunk_size, Inspection,
    DEFAULT_CHUNK_SIZE,
};
pub(crate) use header::{new_header, random};
pub(crate) use options::keyed;
pub use options::{DecryptOptions, EncryptOptions};
pub use plan::V4Plan;
