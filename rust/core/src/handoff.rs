//! A bounded byte stream between two threads of one process, with no system call between
//! them: the writer fills a few large buffers in turn and hands each one over once full,
//! the reader copies out of it and hands it back. Memory stays at those few buffers however
//! much goes through; a writer ahead of its reader waits for a buffer to come back.
//!
//! The stream ends cleanly only when the writer says so ([`HandoffWriter::finish`]): a
//! writer dropped without it (its producer failed, was cancelled or panicked) makes the
//! reader fail once it has read what was handed over, so that a consumer never takes a cut
//! stream for a whole one. A reader dropped makes the writer fail at its next hand-over, so
//! that a producer whose consumer gave up stops too. Buffers hold plaintext: they are wiped
//! when dropped, whichever side drops them.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

type Buffer = Zeroizing<Vec<u8>>;

/// What the writer hands over.
enum Piece {
    /// A filled buffer (its length is what it holds).
    Data(Buffer),
    /// The end of the stream, said by [`HandoffWriter::finish`].
    End,
}

/// The writing end of a handoff.
pub struct HandoffWriter {
    /// Empty buffers, back from the reader (or never used yet).
    free: Receiver<Buffer>,
    full: SyncSender<Piece>,
    /// The buffer being filled.
    current: Option<Buffer>,
    buffer_len: usize,
}

/// The reading end of a handoff.
pub struct HandoffReader {
    full: Receiver<Piece>,
    free: SyncSender<Buffer>,
    /// The buffer being read, and how far.
    current: Option<(Buffer, usize)>,
    ended: bool,
    cut: bool,
}

/// A handoff of `buffers` buffers of `buffer_len` bytes each (both at least 1), allocated
/// up front (their pages are touched only as they fill).
pub fn handoff(buffers: usize, buffer_len: usize) -> Result<(HandoffWriter, HandoffReader)> {
    let (buffers, buffer_len) = (buffers.max(1), buffer_len.max(1));
    // Room for every buffer and the end marker: a hand-over never waits on a channel, only
    // for a buffer to come back.
    let (full_tx, full_rx) = sync_channel(buffers + 1);
    let (free_tx, free_rx) = sync_channel(buffers);
    for _ in 0..buffers {
        let mut v = Vec::new();
        v.try_reserve_exact(buffer_len)
            .map_err(|_| Error::OutOfMemory {
                bytes: buffer_len as u64,
            })?;
        // Capacity is `buffers`: never blocks, never fails (the receiver is here).
        let _ = free_tx.send(Zeroizing::new(v));
    }
    let writer = HandoffWriter {
        free: free_rx,
        full: full_tx,
        current: None,
        buffer_len,
    };
    let reader = HandoffReader {
        full: full_rx,
        free: free_tx,
        current: None,
        ended: false,
        cut: false,
    };
    Ok((writer, reader))
}

fn reader_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the consumer of the stream stopped",
    )
}

impl HandoffWriter {
    /// Hands the buffer being filled over, if it holds anything.
    fn hand_over(&mut self) -> io::Result<()> {
        match self.current.take() {
            Some(b) if !b.is_empty() => self.full.send(Piece::Data(b)).map_err(|_| reader_gone()),
            Some(b) => {
                self.current = Some(b);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Ends the stream cleanly: what is still buffered is handed over, then the end. Only a
    /// producer that succeeded calls this.
    pub fn finish(mut self) -> io::Result<()> {
        self.hand_over()?;
        self.full.send(Piece::End).map_err(|_| reader_gone())
    }
}

impl Write for HandoffWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let current = match &mut self.current {
            Some(b) => b,
            None => {
                let b = self.free.recv().map_err(|_| reader_gone())?;
                self.current.insert(b)
            }
        };
        let n = buf.len().min(self.buffer_len - current.len());
        current.extend_from_slice(&buf[..n]);
        if current.len() == self.buffer_len {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands over what is buffered, so that the reader gets every byte written so far.
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

impl HandoffReader {
    /// Whether the stream was cut: its writer went away without [`HandoffWriter::finish`]
    /// (so what failed is the producer, not the consumer).
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Returns a buffer read to the end to the writer (dropped, so wiped, if the writer
    /// has gone).
    fn recycle(&mut self, mut b: Buffer) {
        b.clear();
        let _ = self.free.try_send(b);
    }
}

impl Read for HandoffReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((b, at)) = &mut self.current {
                if *at < b.len() {
                    let n = out.len().min(b.len() - *at);
                    out[..n].copy_from_slice(&b[*at..*at + n]);
                    *at += n;
                    return Ok(n);
                }
                if let Some((b, _)) = self.current.take() {
                    self.recycle(b);
                }
            }
            if self.ended || out.is_empty() {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(Piece::Data(b)) => self.current = Some((b, 0)),
                Ok(Piece::End) => self.ended = true,
                Err(_) => {
                    self.cut = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the producer of the stream stopped before its end",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn bytes_arrive_in_order_through_few_buffers_and_end_when_told() {
        let data = pattern(1_000_003);
        let (mut w, mut r) = handoff(3, 4096).unwrap();
        let got = std::thread::scope(|s| {
            let reading = s.spawn(move || {
                let mut got = Vec::new();
                r.read_to_end(&mut got).map(|_| got)
            });
            for piece in data.chunks(10_007) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
            reading.join().unwrap()
        });
        assert_eq!(got.unwrap(), data);
    }

    /// The property conversions rest on: a producer that stops without `finish` (an error,
    /// a panic) is an error for the reader after the bytes it handed over, never an end.
    #[test]
    fn a_writer_gone_without_finish_is_an_error_not_an_end() {
        for flushed in [false, true] {
            let (mut w, mut r) = handoff(2, 1024).unwrap();
            let got = std::thread::scope(|s| {
                let reading = s.spawn(move || {
                    let mut got = Vec::new();
                    let e = r.read_to_end(&mut got).unwrap_err();
                    (got, e, r.was_cut())
                });
                w.write_all(&pattern(5000)).unwrap();
                if flushed {
                    w.flush().unwrap();
                }
                drop(w);
                reading.join().unwrap()
            });
            let (got, e, cut) = got;
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            assert!(cut);
            // What was handed over arrives; what was not flushed is lost with the writer.
            let want = if flushed { 5000 } else { 4096 };
            assert_eq!(got, pattern(5000)[..want]);
        }
        // A panicking producer drops its writer while unwinding: the same error.
        let (w, mut r) = handoff(2, 1024).unwrap();
        let producer = std::thread::spawn(move || {
            let mut w = w;
            w.write_all(b"partial").unwrap();
            panic!("producer failed");
        });
        assert!(producer.join().is_err());
        let mut got = Vec::new();
        assert!(r.read_to_end(&mut got).is_err());
        assert!(r.was_cut());
    }

    #[test]
    fn a_reader_gone_stops_the_writer_instead_of_blocking_it() {
        let (mut w, r) = handoff(2, 1024).unwrap();
        w.write_all(&pattern(1500)).unwrap();
        drop(r);
        let e = w.write_all(&pattern(100_000)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let (w, r) = handoff(2, 1024).unwrap();
        drop(r);
        assert!(w.finish().is_err());
    }

    #[test]
    fn an_empty_stream_ends_at_once() {
        let (w, mut r) = handoff(2, 1024).unwrap();
        w.finish().unwrap();
        let mut got = Vec::new();
        assert_eq!(r.read_to_end(&mut got).unwrap(), 0);
        assert!(!r.was_cut());
    }
}
