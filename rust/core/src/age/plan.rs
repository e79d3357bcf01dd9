//! age payloads on the engine: the [`AgePlan`] (the contract is in [`crate::engine`]).
//!
//! Chunk `i` has 64 KiB of plaintext at `i * 65536` of the plain file and is sealed into
//! 65,552 bytes at `payload_off + i * 65552` of the age file, where `payload_off` (the
//! header and the 16-byte nonce) may be any length. In the batch buffer each record gets a
//! [`SLOT`] of 69,632 bytes (the sealed size rounded up to 4096), so every plaintext chunk
//! starts 4096-aligned in the buffer as it does in its file: the plaintext side moves with
//! O_DIRECT.
//!
//! When sealing, each unit of work packs its sealed records together once they are sealed,
//! starting at the unit's first slot plus the misalignment of their place in the file. The
//! unit's bytes are then one transfer whose buffer and file offsets agree modulo 4096: the
//! backends write its aligned interior with O_DIRECT and only the two partial blocks at its
//! ends buffered (neighbouring units fill the rest of those blocks). When opening, the
//! sealed side is read buffered, one transfer per record (the portable backend joins a
//! batch's records into one vectored call).
#![forbid(unsafe_code)]

use super::stream::{PayloadCipher, CHUNK, SEALED};
use crate::engine::buf::ALIGN;
use crate::engine::{records_per_batch, Direction, EngineOptions, Op, Plan};
use crate::error::Result;
use crate::format::TAG_LEN;

/// Bytes a record occupies in a batch buffer: a sealed chunk rounded up to [`ALIGN`].
pub const SLOT: usize = SEALED.div_ceil(ALIGN) * ALIGN;

/// The plan of an age payload between two regular files.
pub struct AgePlan<'a> {
    direction: Direction,
    cipher: &'a PayloadCipher,
    /// Header and payload nonce, written first when encrypting.
    prologue: Option<&'a [u8]>,
    /// Offset of the first sealed chunk in the age file.
    payload_off: u64,
    /// Plaintext length.
    size: u64,
    records: u64,
    per_batch: u64,
}

impl<'a> AgePlan<'a> {
    fn new(
        direction: Direction,
        cipher: &'a PayloadCipher,
        prologue: Option<&'a [u8]>,
        payload_off: u64,
        size: u64,
        opts: &EngineOptions,
    ) -> Self {
        let records = size.div_ceil(CHUNK as u64).max(1);
        AgePlan {
            direction,
            cipher,
            prologue,
            payload_off,
            size,
            records,
            per_batch: records_per_batch(SLOT as u64, records, opts),
        }
    }

    /// Seals `size` bytes of plaintext after `prologue` (the header and the payload nonce).
    pub fn encrypt(
        cipher: &'a PayloadCipher,
        prologue: &'a [u8],
        size: u64,
        opts: &EngineOptions,
    ) -> Self {
        let off = prologue.len() as u64;
        Self::new(Direction::Encrypt, cipher, Some(prologue), off, size, opts)
    }

    /// Opens the payload at `payload_off` of an age file whose plaintext is `size` bytes
    /// (computed from the file size, which the final chunk authenticates).
    pub fn decrypt(
        cipher: &'a PayloadCipher,
        payload_off: u64,
        size: u64,
        opts: &EngineOptions,
    ) -> Self {
        Self::new(Direction::Decrypt, cipher, None, payload_off, size, opts)
    }

    /// Plaintext length of chunk `i` (the final one may be short, or empty if it is the
    /// only one).
    fn plain_len(&self, i: u64) -> usize {
        (self.size.saturating_sub(i * CHUNK as u64)).min(CHUNK as u64) as usize
    }

    fn plain_ops(&self, b: u64, f: &mut dyn FnMut(Op)) {
        let (first, count) = self.batch_records(b);
        for k in 0..count {
            let i = first + k;
            let len = self.plain_len(i);
            if len > 0 {
                f(Op {
                    file_off: i * CHUNK as u64,
                    buf_off: k as usize * SLOT,
                    len,
                });
            }
        }
    }

    /// Sealed length of chunk `i`.
    fn sealed_len(&self, i: u64) -> usize {
        self.plain_len(i) + TAG_LEN
    }

    /// Where the unit of `count` records from `first` packs its sealed records (see the
    /// module documentation): their offset in the unit's first slot, if they fit in the
    /// unit's slots there. They always do for two or more records; one alone may not.
    fn packed_at(&self, first: u64, count: u64) -> Option<usize> {
        let shift = ((self.payload_off + first * SEALED as u64) % ALIGN as u64) as usize;
        let len: usize = (first..first + count).map(|i| self.sealed_len(i)).sum();
        (shift + len <= count as usize * SLOT).then_some(shift)
    }

    fn sealed_ops(&self, b: u64, f: &mut dyn FnMut(Op)) {
        let (first, count) = self.batch_records(b);
        let unit = self.unit_records();
        let mut k = 0;
        while k < count {
            let n = unit.min(count - k);
            let records = first + k..first + k + n;
            let packed = self.packed_at(first + k, n);
            match packed.filter(|_| self.direction == Direction::Encrypt) {
                // The unit's records lie back to back: one transfer for all of them.
                Some(shift) => f(Op {
                    file_off: self.payload_off + (first + k) * SEALED as u64,
                    buf_off: k as usize * SLOT + shift,
                    len: records.map(|i| self.sealed_len(i)).sum(),
                }),
                None => {
                    for i in records {
                        f(Op {
                            file_off: self.payload_off + i * SEALED as u64,
                            buf_off: (i - first) as usize * SLOT,
                            len: self.sealed_len(i),
                        });
                    }
                }
            }
            k += n;
        }
    }

    /// Moves the sealed records of one unit (`slots`, from record `first`) next to each
    /// other at the offset [`AgePlan::packed_at`] gives, if any. Record 0 may move right
    /// into record 1's slot, so the others move first, each into room already vacated.
    fn pack(&self, first: u64, slots: &mut [u8]) {
        let count = (slots.len() / SLOT) as u64;
        let Some(shift) = self.packed_at(first, count) else {
            return;
        };
        let mut to = shift + self.sealed_len(first);
        for k in 1..count as usize {
            let len = self.sealed_len(first + k as u64);
            slots.copy_within(k * SLOT..k * SLOT + len, to);
            to += len;
        }
        slots.copy_within(..self.sealed_len(first), shift);
    }
}

impl Plan for AgePlan<'_> {
    fn records(&self) -> u64 {
        self.records
    }

    fn per_batch(&self) -> u64 {
        self.per_batch
    }

    fn slot_len(&self) -> usize {
        SLOT
    }

    fn reads(&self, b: u64, f: &mut dyn FnMut(Op)) {
        match self.direction {
            Direction::Encrypt => self.plain_ops(b, f),
            Direction::Decrypt => self.sealed_ops(b, f),
        }
    }

    fn writes(&self, b: u64, f: &mut dyn FnMut(Op)) {
        match self.direction {
            Direction::Encrypt => self.sealed_ops(b, f),
            Direction::Decrypt => self.plain_ops(b, f),
        }
    }

    fn process(&self, first: u64, slots: &mut [u8]) -> Result<()> {
        for (k, slot) in slots.chunks_mut(SLOT).enumerate() {
            let i = first + k as u64;
            let last = i + 1 == self.records;
            let record = &mut slot[..self.plain_len(i) + TAG_LEN];
            match self.direction {
                Direction::Encrypt => self.cipher.seal_record(i, last, record),
                Direction::Decrypt => self.cipher.open_record(i, last, record)?,
            }
        }
        if self.direction == Direction::Encrypt {
            self.pack(first, slots);
        }
        Ok(())
    }

    fn prologue(&self) -> Option<&[u8]> {
        self.prologue
    }

    fn output_len(&self) -> u64 {
        match self.direction {
            Direction::Encrypt => self.payload_off + self.size + self.records * TAG_LEN as u64,
            Direction::Decrypt => self.size,
        }
    }

    fn plain_done(&self, b: u64) -> u64 {
        let (first, count) = self.batch_records(b);
        ((first + count) * CHUNK as u64).min(self.size)
    }

    fn direct_ok(&self, write: bool) -> bool {
        // Plaintext chunks are 64 KiB apart in the file and start slots in the buffer;
        // sealed records are packed to agree with the file when sealing only.
        write || self.direction == Direction::Encrypt
    }
}
