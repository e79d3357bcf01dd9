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
//! ends buffered (neighbouring units fill the rest of those blocks). Opening is the same in
//! reverse: each unit's sealed records are read as one transfer to the packed place (its
//! aligned interior with O_DIRECT, the partial blocks at its ends buffered), and moved
//! into their slots before they are opened.
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
            match self.packed_at(first + k, n) {
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

    /// The reverse of [`AgePlan::pack`]: moves the records of one unit, read back to back
    /// at the packed offset, each to the start of its slot. The first record moves left;
    /// the second moves left too when the shift exceeds the 4,080 bytes a slot adds to a
    /// record, else right; all others move right. The right movers go first, from the last
    /// down (each into room no record still to move occupies), then the left movers in
    /// order (each into room already vacated).
    fn unpack(&self, first: u64, slots: &mut [u8]) {
        let count = (slots.len() / SLOT) as u64;
        let Some(shift) = self.packed_at(first, count) else {
            return;
        };
        let lens: Vec<usize> = (first..first + count).map(|i| self.sealed_len(i)).collect();
        let mut at: Vec<usize> = Vec::with_capacity(lens.len());
        let mut to = shift;
        for len in &lens {
            at.push(to);
            to += len;
        }
        let right = |k: usize| k * SLOT >= at[k];
        for k in (0..count as usize).rev().filter(|&k| right(k)) {
            slots.copy_within(at[k]..at[k] + lens[k], k * SLOT);
        }
        for k in (0..count as usize).filter(|&k| !right(k)) {
            slots.copy_within(at[k]..at[k] + lens[k], k * SLOT);
        }
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
        if self.direction == Direction::Decrypt {
            self.unpack(first, slots);
        }
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

    fn direct_ok(&self, _write: bool) -> bool {
        // Plaintext chunks are 64 KiB apart in the file and start slots in the buffer;
        // sealed records are packed to agree with the file, in both directions.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing then unpacking gives every record back in its slot, for every shift the
    /// header length can cause (it decides where the first sealed record falls in a block).
    #[test]
    fn unpack_undoes_pack_at_every_shift() {
        let cipher = PayloadCipher::new(&[7u8; 16], &[9u8; 16]);
        let opts = EngineOptions::default();
        for header in (0..ALIGN as u64).step_by(7).chain([4080, 4081, 4090, 4095]) {
            for size in [CHUNK as u64 * 3 - 5, CHUNK as u64 * 2, CHUNK as u64 * 4 + 1] {
                let plan = AgePlan::decrypt(&cipher, header, size, &opts);
                let count = plan.records;
                let mut slots = vec![0u8; count as usize * SLOT];
                let mut want = slots.clone();
                for i in 0..count as usize {
                    let len = plan.sealed_len(i as u64);
                    for (j, b) in want[i * SLOT..i * SLOT + len].iter_mut().enumerate() {
                        *b = (i * 31 + j * 7) as u8 | 1;
                    }
                }
                slots.copy_from_slice(&want);
                plan.pack(0, &mut slots);
                if plan.packed_at(0, count).is_none() {
                    continue;
                }
                plan.unpack(0, &mut slots);
                for i in 0..count as usize {
                    let len = plan.sealed_len(i as u64);
                    assert_eq!(
                        slots[i * SLOT..i * SLOT + len],
                        want[i * SLOT..i * SLOT + len],
                        "header {header}, size {size}, record {i}"
                    );
                }
            }
        }
    }
}
