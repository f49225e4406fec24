//! The one way a ring goes out to a socket, for RTMP players, push relays and HTTP listeners
//! alike: a cursor in the ring, the tail (bytes copied aside: the rest of a message a write ended
//! inside, or bytes queued before the ring's), and what happens when the reader falls behind the
//! ring (it skips to the oldest message kept). The cursor stays on message boundaries — a cut
//! message is finished from the tail — so a skip never cuts an RTMP chunk, FLV tag, MP3 frame
//! or fMP4 fragment in half. Also the vectored write every connection makes, and the counters
//! it adds to.
//!
//! The ring's bytes are written from the ring itself (no copy per reader); only a cut message's
//! rest is copied, and the tail's buffer is freed once sent, so an idle reader holds none.

use std::io::{self, IoSlice, Write};

use mio::net::TcpStream;
use zerocast_core::ring::{Cursor, Ring, Slices};

/// Counters kept across connections.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Bytes written to all sockets since start.
    pub bytes_sent: u64,
    /// Messages skipped because readers fell behind the ring.
    pub skipped_messages: u64,
}

/// One reader of a ring: its cursor and its tail.
#[derive(Debug)]
pub struct Egress {
    cursor: Cursor,
    tail: Vec<u8>,
    tail_sent: usize,
}

impl Egress {
    /// A reader starting at `cursor`.
    pub fn new(cursor: Cursor) -> Self {
        Self {
            cursor,
            tail: Vec::new(),
            tail_sent: 0,
        }
    }

    /// The tail's bytes not yet written: they go before anything else.
    pub fn tail(&self) -> &[u8] {
        self.tail.get(self.tail_sent..).unwrap_or(&[])
    }

    /// Bytes of the tail's buffer held now (for the memory figures of the tests).
    #[cfg(test)]
    pub fn tail_capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// Skips ahead to the oldest message `ring` keeps if the reader fell behind it; returns how
    /// many messages were lost (also added to `counters`).
    pub fn catch_up<const B: usize, const S: usize>(
        &mut self,
        ring: &Ring<B, S>,
        counters: &mut Counters,
    ) -> u64 {
        let skipped = ring.skip_lagged(&mut self.cursor);
        counters.skipped_messages += skipped;
        skipped
    }

    /// The ring's bytes due now (both slices, in order): none while the tail has bytes.
    pub fn ring_bytes<'a, const B: usize, const S: usize>(
        &self,
        ring: &'a Ring<B, S>,
    ) -> Slices<'a> {
        match ring.read(&self.cursor) {
            Ok(slices) if self.tail().is_empty() => slices,
            _ => Slices {
                first: &[],
                second: &[],
            },
        }
    }

    /// `n` bytes of [`tail`](Self::tail) were written.
    pub fn tail_written(&mut self, n: usize) {
        self.tail_sent += n;
        if self.tail_sent >= self.tail.len() {
            // Freed, not kept: the tail holds bytes only now and then (a write that ended
            // mid-message), and an idle reader should not carry its buffer.
            self.tail = Vec::new();
            self.tail_sent = 0;
        }
    }

    /// `n` bytes of [`ring_bytes`](Self::ring_bytes) were written: the cursor moves on, and the
    /// rest of a message the write ended inside is copied to the tail.
    pub fn ring_written<const B: usize, const S: usize>(&mut self, ring: &Ring<B, S>, n: usize) {
        ring.advance(&mut self.cursor, n);
        if !self.cursor.at_boundary() {
            if let Ok(rest) = ring.current_message(&self.cursor) {
                self.tail.clear();
                self.tail.extend_from_slice(rest);
                self.tail_sent = 0;
                let len = rest.len();
                ring.advance(&mut self.cursor, len);
            }
        }
    }

    /// `n` bytes were written of what was due: the tail's first, else the ring's (`ring`,
    /// `None` when it is gone: then only the tail can have been written).
    pub fn written<const B: usize, const S: usize>(&mut self, ring: Option<&Ring<B, S>>, n: usize) {
        match ring {
            _ if !self.tail().is_empty() => self.tail_written(n),
            Some(ring) => self.ring_written(ring, n),
            None => {}
        }
    }

    /// Takes the cursor's message out of the ring into the tail, wrapped by `wrap` (given the
    /// message, its stream time and the tail to append to): how a reader starts (the RTMP start
    /// bytes). Returns false, changing nothing, while the ring has no message for it.
    pub fn wrap_message<const B: usize, const S: usize>(
        &mut self,
        ring: &Ring<B, S>,
        wrap: impl FnOnce(&[u8], u64, &mut Vec<u8>),
    ) -> bool {
        let message = match ring.current_message(&self.cursor) {
            Ok(message) if !message.is_empty() => message,
            _ => return false,
        };
        let time = ring.time_at(&self.cursor).unwrap_or(0);
        wrap(message, time, &mut self.tail);
        let len = message.len();
        ring.advance(&mut self.cursor, len);
        true
    }

    /// Moves the reader to `cursor` of another ring, with `first` queued before its bytes (a
    /// stream whose codec changed). Only once the tail is written: the tail's message is the
    /// old ring's, and goes out whole first.
    pub fn move_to(&mut self, cursor: Cursor, first: &[u8]) {
        self.tail.clear();
        self.tail.extend_from_slice(first);
        self.tail_sent = 0;
        self.cursor = cursor;
    }
}

/// Where a reader joining `ring` starts: `behind_ms` of stream time before its newest message
/// (the burst or join buffer, so that a player buffering before it starts starts at once), or
/// the live edge of an empty ring.
pub fn join<const B: usize, const S: usize>(ring: &Ring<B, S>, behind_ms: u64) -> Cursor {
    match ring.latest_time() {
        Some(latest) => ring.cursor_since(latest.saturating_sub(behind_ms)),
        None => ring.cursor_at_head(),
    }
}

/// One vectored write: `Some(n)` bytes written, `None` when the socket is full.
pub fn write(stream: &mut TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
    loop {
        match stream.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestRing = Ring<256, 16>;

    /// Writes what is due in steps of at most `step` bytes; returns what went out.
    fn drain(e: &mut Egress, ring: &TestRing, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let tail = e.tail().to_vec();
            let due = if tail.is_empty() {
                let s = e.ring_bytes(ring);
                [s.first, s.second].concat()
            } else {
                tail
            };
            if due.is_empty() {
                return out;
            }
            let n = due.len().min(step);
            out.extend_from_slice(&due[..n]);
            e.written(Some(ring), n);
        }
    }

    #[test]
    fn writes_cut_anywhere_give_the_messages_whole_and_in_order() {
        for step in [1, 3, 7, 64, usize::MAX] {
            let mut ring = TestRing::new();
            let mut e = Egress::new(ring.cursor_at_head());
            let mut expected = Vec::new();
            for i in 0..10u8 {
                let message = vec![i; 10 + usize::from(i)];
                ring.push(u64::from(i), &message).unwrap();
                expected.extend_from_slice(&message);
            }
            assert_eq!(drain(&mut e, &ring, step), expected, "step {step}");
            assert_eq!(e.tail_capacity(), 0, "the tail is freed once written");
        }
    }

    #[test]
    fn a_reader_behind_the_ring_skips_to_a_whole_message_after_its_cut_one() {
        let mut ring = TestRing::new();
        let mut e = Egress::new(ring.cursor_at_head());
        let mut counters = Counters::default();
        ring.push(0, &[1; 100]).unwrap();
        // A write ends inside the first message: its rest is kept aside.
        e.written(Some(&ring), 40);
        assert_eq!(e.tail(), &[1; 60][..]);
        for i in 0..20u8 {
            ring.push(u64::from(i) + 1, &[i + 2; 50]).unwrap();
        }
        assert!(e.catch_up(&ring, &mut counters) > 0);
        assert_eq!(counters.skipped_messages, ring.oldest_sequence() - 1);
        let out = drain(&mut e, &ring, 17);
        // The cut message's rest, then whole messages from the oldest kept.
        assert_eq!(&out[..60], &[1; 60][..]);
        assert_eq!(out.len() - 60, ring.len() * 50);
    }

    #[test]
    fn start_and_move_queue_bytes_before_the_ring() {
        let mut ring = TestRing::new();
        let mut e = Egress::new(ring.cursor_at_head());
        assert!(!e.wrap_message(&ring, |_, _, _| unreachable!()));
        ring.push(7, b"first").unwrap();
        ring.push(8, b"second").unwrap();
        assert!(e.wrap_message(&ring, |m, time, tail| {
            tail.extend_from_slice(format!("<{time}>").as_bytes());
            tail.extend_from_slice(m);
        }));
        assert_eq!(drain(&mut e, &ring, 4), b"<7>firstsecond");
        let mut other = TestRing::new();
        other.push(0, b"new").unwrap();
        e.move_to(other.cursor_since(0), b"|");
        assert_eq!(drain(&mut e, &other, 2), b"|new");
    }
}
