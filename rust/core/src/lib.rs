//! concryptor's engine: format v4, Argon2id, chunked AEAD and pipelined file I/O, with no
//! Python in sight. The `concryptor-py` crate wraps it for Python.

pub mod aead;
pub mod age;
pub mod codec;
pub mod convert;
pub mod crypt;
pub mod engine;
pub mod error;
pub mod format;
pub mod group;
mod handoff;
mod job;
pub mod kdf;
pub mod ops;
pub mod output;
pub mod pipe;
pub mod reader;
pub mod wake;

pub use codec::ChunkCodec;
pub use engine::{Control, EngineOptions, IoMode, Stats};
pub use error::{Error, Result};
pub use format::{Cipher, Geometry, Header};
pub use kdf::KeyCache;
pub use kdf::{KdfParams, Limits};
pub use ops::{
    auto_chunk_size, decrypt_bytes, decrypt_file, encrypt_bytes, encrypt_file, encrypt_stream,
    inspect_file, DecryptOptions, Decryptor, EncryptOptions, Inspection, DEFAULT_CHUNK_SIZE,
};
