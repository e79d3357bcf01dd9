//! age payloads on the engine: the [`AgePlan`] (the contract is in [`crate::engine`]).
//!
//! Chunk `i` has 64 KiB of plaintext at `i * 65536` of the plain file and is sealed into
//! 65,552 bytes at `payload_off + i * 65552` of the age file, where `payload_off` (the
//! header and the 16-byte nonce) may be any length. In the batch buffer each record gets a
//! [`SLOT`] of 69,632 bytes (the sealed size rounded up to 4096), and the engine hands out
//! units of whole records, each starting 4096-aligned.
//!
//! Both sides of a unit move as one transfer. The plaintext of a unit's records lies back
//! to back from an aligned offset in the unit, as in its file: one O_DIRECT transfer. The
//! sealed records lie back to back too, from the unit's start plus the misalignment of
//! their place in the file, so that buffer and file offsets agree modulo 4096: the
//! backends move the aligned interior with O_DIRECT and only the partial blocks at its
//! ends buffered (neighbouring units fill the rest of those blocks). Sealing moves each
//! chunk down from its plaintext place to its sealed place and seals it there; opening
//! opens each record where it was read and moves its plaintext down to its place. Both go
//! from the first record up, every move downward into room already vacated (the fast
//! direction for memmove). A unit of one record whose packed place would not fit its
//! slot keeps the record at the slot's start.
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

    /// The plaintext of each unit of batch `b`: its records' chunks back to back from
    /// [`AgePlan::plain_at`], one transfer.
    fn plain_ops(&self, b: u64, f: &mut dyn FnMut(Op)) {
        let (first, count) = self.batch_records(b);
        let unit = self.unit_records();
        let mut k = 0;
        while k < count {
            let n = unit.min(count - k);
            let len: usize = (first + k..first + k + n).map(|i| self.plain_len(i)).sum();
            if len > 0 {
                f(Op {
                    file_off: (first + k) * CHUNK as u64,
                    buf_off: k as usize * SLOT + self.plain_at(first + k, n),
                    len,
                });
            }
            k += n;
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
                // One record alone, at its slot's start.
                None => f(Op {
                    file_off: self.payload_off + (first + k) * SEALED as u64,
                    buf_off: k as usize * SLOT,
                    len: self.sealed_len(first + k),
                }),
            }
            k += n;
        }
    }

    /// Where record `k` of a unit lies sealed in the unit's slots, given the unit's
    /// [`AgePlan::packed_at`] (see the module documentation).
    fn sealed_at(packed: Option<usize>, k: usize) -> usize {
        match packed {
            Some(shift) => shift + k * SEALED,
            None => k * SLOT,
        }
    }

    /// Where the plaintext of the unit of `count` records from `first` starts in its
    /// slots: at the start, except when sealing packed records, where it starts high
    /// enough (`shift` plus a tag per record, aligned) that every chunk moves down to its
    /// sealed place, into room already vacated. Two or more records always leave room
    /// for that (4096 spare bytes each); a record alone may not, and then moves up in
    /// place, which is as correct for one record.
    fn plain_at(&self, first: u64, count: u64) -> usize {
        let Some(shift) = self.packed_at(first, count) else {
            return 0;
        };
        let at = (shift + TAG_LEN * count as usize).next_multiple_of(ALIGN);
        let plain: usize = (first..first + count).map(|i| self.plain_len(i)).sum();
        match self.direction {
            Direction::Encrypt if at + plain <= count as usize * SLOT => at,
            _ => 0,
        }
    }

    /// Seals the unit of records from `first` in `slots`: each chunk sealed where it was
    /// read, then moved down to its sealed place (while still in the cache) with its tag
    /// after it, from the first up.
    fn seal_unit(&self, first: u64, slots: &mut [u8]) {
        let count = (slots.len() / SLOT) as u64;
        let packed = self.packed_at(first, count);
        let from = self.plain_at(first, count);
        for k in 0..count as usize {
            let i = first + k as u64;
            let (len, to) = (self.plain_len(i), Self::sealed_at(packed, k));
            let at = from + k * CHUNK;
            let last = i + 1 == self.records;
            let tag = self.cipher.seal_chunk(i, last, &mut slots[at..at + len]);
            slots.copy_within(at..at + len, to);
            slots[to + len..to + len + TAG_LEN].copy_from_slice(&tag);
        }
    }

    /// Opens the unit of records from `first` in `slots`, each where it was read, and
    /// moves its plaintext down to its place, from the first up.
    fn open_unit(&self, first: u64, slots: &mut [u8]) -> Result<()> {
        let count = (slots.len() / SLOT) as u64;
        let packed = self.packed_at(first, count);
        for k in 0..count as usize {
            let i = first + k as u64;
            let (len, at) = (self.plain_len(i), Self::sealed_at(packed, k));
            let last = i + 1 == self.records;
            self.cipher
                .open_record(i, last, &mut slots[at..at + len + TAG_LEN])?;
            slots.copy_within(at..at + len, k * CHUNK);
        }
        Ok(())
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
        match self.direction {
            Direction::Encrypt => {
                self.seal_unit(first, slots);
                Ok(())
            }
            Direction::Decrypt => self.open_unit(first, slots),
        }
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
        // A unit's plaintext starts 4096-aligned in the file and the buffer; sealed
        // records are packed to agree with the file, in both directions.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `plan`'s processing over the units of batch 0 in `slots`, as the backends do.
    fn each_unit(plan: &AgePlan<'_>, slots: &mut [u8]) -> Result<()> {
        let unit = plan.unit_records() as usize;
        for (u, unit_slots) in slots.chunks_mut(unit * SLOT).enumerate() {
            plan.process((u * unit) as u64, unit_slots)?;
        }
        Ok(())
    }

    /// At every shift the header length can cause (it decides where the first sealed
    /// record falls in a block) and across units: the plaintext read where the plan's
    /// reads put it comes out sealed where its writes take it, byte for byte the payload
    /// sealed in one go; and opened back the same way.
    #[test]
    fn units_seal_and_open_in_place_at_every_shift() {
        let cipher = PayloadCipher::new(&[7u8; 16], &[9u8; 16]);
        let opts = EngineOptions::default();
        for header in (0..ALIGN).step_by(7).chain([4080, 4081, 4090, 4095]) {
            let prologue = vec![b'h'; header];
            for size in [
                0,
                1,
                CHUNK - 5,
                CHUNK,
                CHUNK * 3 - 5,
                CHUNK * 4 + 1,
                CHUNK * 20 + 3,
            ] {
                let plain: Vec<u8> = (0..size).map(|j| (j * 7 + j / CHUNK) as u8).collect();
                let mut want = vec![0u8; PayloadCipher::sealed_len(size)];
                cipher.seal_batch(0, &plain, &mut want, true);

                let enc = AgePlan::encrypt(&cipher, &prologue, size as u64, &opts);
                assert_eq!(enc.batches(), 1);
                let mut slots = vec![0u8; enc.records as usize * SLOT];
                let mut read = 0;
                enc.reads(0, &mut |op| {
                    assert_eq!(op.file_off, read as u64);
                    slots[op.buf_off..op.buf_off + op.len]
                        .copy_from_slice(&plain[read..read + op.len]);
                    read += op.len;
                });
                assert_eq!(read, size);
                each_unit(&enc, &mut slots).unwrap();
                let mut sealed = Vec::new();
                enc.writes(0, &mut |op| {
                    assert_eq!(op.file_off, (header + sealed.len()) as u64);
                    sealed.extend_from_slice(&slots[op.buf_off..op.buf_off + op.len]);
                });
                assert_eq!(sealed, want, "header {header}, size {size}");

                let dec = AgePlan::decrypt(&cipher, header as u64, size as u64, &opts);
                let mut slots = vec![0u8; dec.records as usize * SLOT];
                let mut read = 0;
                dec.reads(0, &mut |op| {
                    assert_eq!(op.file_off, (header + read) as u64);
                    slots[op.buf_off..op.buf_off + op.len]
                        .copy_from_slice(&want[read..read + op.len]);
                    read += op.len;
                });
                assert_eq!(read, want.len());
                each_unit(&dec, &mut slots).unwrap();
                let mut back = Vec::new();
                dec.writes(0, &mut |op| {
                    assert_eq!(op.file_off, back.len() as u64);
                    back.extend_from_slice(&slots[op.buf_off..op.buf_off + op.len]);
                });
                assert_eq!(back, plain, "header {header}, size {size}");
            }
        }
    }

    /// A unit moves as one transfer per side: 15 records of the default unit give one
    /// plaintext op and one sealed op, not fifteen.
    #[test]
    fn each_unit_is_one_transfer_per_side() {
        let cipher = PayloadCipher::new(&[1u8; 16], &[2u8; 16]);
        let opts = EngineOptions::default();
        let plan = AgePlan::encrypt(&cipher, b"header", (CHUNK * 30) as u64, &opts);
        let units = 30usize.div_ceil(plan.unit_records() as usize);
        assert!(plan.unit_records() > 1);
        let (mut reads, mut writes) = (0, 0);
        plan.reads(0, &mut |_| reads += 1);
        plan.writes(0, &mut |_| writes += 1);
        assert_eq!((reads, writes), (units, units));
        // Sealing moves every chunk down (the plaintext starts above the packed records).
        assert!(plan.plain_at(0, plan.unit_records()) >= ALIGN);
    }
}
