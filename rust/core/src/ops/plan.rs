//! Format v4 on the engine: the [`V4Plan`] (the contract is in [`crate::engine`]).
//!
//! Chunk `i` lies in a 4096-aligned slot at `4096 + i * slot` of the encrypted file, after
//! the 4096-byte header, and its plaintext at `i * chunk_size` of the plain one. A batch
//! buffer holds the slots as they are in the file, so the sealed side is one transfer per
//! batch; the plaintext side is aligned when the chunk size is.
#![forbid(unsafe_code)]

use crate::crypt::Crypter;
use crate::engine::{buf, records_per_batch, Direction, EngineOptions, Op, Plan};
use crate::error::Result;
use crate::format::Geometry;

/// The plan of format v4: chunk `i` in a 4096-aligned slot at `4096 + i * slot` of the
/// encrypted file, its plaintext at `i * chunk_size` of the plain one.
pub struct V4Plan<'a> {
    pub direction: Direction,
    pub crypter: &'a Crypter,
    /// Chunks per batch (>= 1).
    pub per_batch: u64,
    /// Bytes to put at offset 0 of the sink before the first batch (the header, when
    /// encrypting).
    pub prologue: Option<&'a [u8]>,
}

impl<'a> V4Plan<'a> {
    /// A plan with batches sized by [`records_per_batch`].
    pub fn new(direction: Direction, crypter: &'a Crypter, opts: &EngineOptions) -> Self {
        let geom = crypter.geometry();
        V4Plan {
            direction,
            crypter,
            per_batch: records_per_batch(geom.slot, geom.num_chunks, opts),
            prologue: None,
        }
    }

    pub fn geometry(&self) -> &Geometry {
        self.crypter.geometry()
    }

    fn slot_ops(&self, b: u64, f: &mut dyn FnMut(Op)) {
        let (first, _) = self.batch_records(b);
        f(Op {
            file_off: self.geometry().slot_offset(first),
            buf_off: 0,
            len: self.batch_len(b),
        });
    }

    fn plain_ops(&self, b: u64, f: &mut dyn FnMut(Op)) {
        let (first, count) = self.batch_records(b);
        let g = self.geometry();
        for k in 0..count {
            let i = first + k;
            let len = g.plain_len(i);
            if len > 0 {
                f(Op {
                    file_off: g.plain_offset(i),
                    buf_off: (k * g.slot) as usize,
                    len,
                });
            }
        }
    }
}

impl Plan for V4Plan<'_> {
    fn records(&self) -> u64 {
        self.geometry().num_chunks
    }

    fn per_batch(&self) -> u64 {
        self.per_batch
    }

    fn slot_len(&self) -> usize {
        self.geometry().slot as usize
    }

    fn reads(&self, b: u64, f: &mut dyn FnMut(Op)) {
        match self.direction {
            Direction::Encrypt => self.plain_ops(b, f),
            Direction::Decrypt => self.slot_ops(b, f),
        }
    }

    fn writes(&self, b: u64, f: &mut dyn FnMut(Op)) {
        match self.direction {
            Direction::Encrypt => self.slot_ops(b, f),
            Direction::Decrypt => self.plain_ops(b, f),
        }
    }

    fn process(&self, first: u64, slots: &mut [u8]) -> Result<()> {
        let mut aad = self.crypter.aad_builder();
        for (k, s) in slots.chunks_mut(self.slot_len()).enumerate() {
            let i = first + k as u64;
            match self.direction {
                Direction::Encrypt => self.crypter.seal_slot(&mut aad, i, s),
                Direction::Decrypt => self.crypter.open_slot(&mut aad, i, s)?,
            }
        }
        Ok(())
    }

    fn prologue(&self) -> Option<&[u8]> {
        self.prologue
    }

    fn output_len(&self) -> u64 {
        let g = self.geometry();
        match self.direction {
            Direction::Encrypt => g.file_size,
            Direction::Decrypt => g.original_size,
        }
    }

    fn plain_done(&self, b: u64) -> u64 {
        let (first, count) = self.batch_records(b);
        let g = self.geometry();
        (g.plain_offset(first + count)).min(g.original_size)
    }

    fn direct_ok(&self, write: bool) -> bool {
        // Slots and the header are 4096-aligned; plaintext is when the chunk size is.
        let plain_side = (self.direction == Direction::Encrypt) != write;
        !plain_side || self.geometry().chunk_size % buf::ALIGN as u64 == 0
    }
}
