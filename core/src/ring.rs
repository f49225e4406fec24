//! The broadcast ring: one writer, many readers, fixed memory, overwrite-oldest.
//!
//! Audio messages are chunk-encoded once (see `chunk::encode_standalone`) and stored here; every
//! player is then sent the very same bytes with `writev`, straight from the ring. The ring is a
//! byte arena of `BYTES` bytes plus an index of `SLOTS` slots (arena offset, length, stream time),
//! and messages are numbered with `u64` sequence numbers that never wrap in practice.
//!
//! - The writer never blocks: [`Ring::push_with`] evicts the oldest messages until there is a
//!   free slot and the new message's bytes no longer overlap a retained message.
//! - A message never straddles the end of the arena: when it does not fit before the end, the
//!   writer wraps to offset 0 (the tail end of the arena stays unused for that lap). So a message
//!   is always one contiguous slice, and a run of messages is at most two slices.
//! - Readers are plain [`Cursor`] values (next sequence number + byte offset within that message)
//!   kept by the caller, e.g. in a connection inside a mio slab. A cursor does not borrow the ring,
//!   so a slow player cannot hold the writer back: it finds out with [`Lagged`] instead, the way
//!   embassy's pub/sub tells a subscriber `Lagged(n)` (`embassy-sync/src/pubsub/mod.rs`).
//!
//! Eviction rule, stated on "virtual" byte positions (a position that keeps counting across laps,
//! lap `k` covering `k * BYTES .. (k + 1) * BYTES`): a new message of `len` bytes starts at the
//! write position, or at the start of the next lap when it would cross the lap end; then the
//! oldest messages are evicted while the index is full or while the oldest one starts more than
//! `BYTES` bytes before the new message's end. What is retained therefore always lies within the
//! last `BYTES` virtual bytes, which is at most two laps: one boundary, so at most two slices.
//!
//! # Memory
//! The ring is `BYTES + 24 * SLOTS + 32` bytes, all inline (no heap): a slot holds a `u64`
//! position, a length and a `u64` stream time (24 bytes with padding on 32-bit ARM too), and four
//! counters follow. [`Pcm2sRing`], two seconds of 44.1 kHz stereo PCM in ~23 ms messages, is
//! 365,488 bytes; `cargo test -p zerocast-core --test ring_model -- --nocapture` prints it.
//!
//! ```
//! use zerocast_core::ring::{Ring, Slices};
//!
//! let mut ring: Ring<64, 4> = Ring::new();
//! let mut player = ring.cursor_at_head();
//! ring.push(0, b"first ").unwrap();
//! ring.push_with(23, 6, |dst| dst.copy_from_slice(b"second")).unwrap();
//! let Slices { first, second } = ring.read(&player).unwrap();
//! assert_eq!((first, second), (&b"first second"[..], &b""[..]));
//! ring.advance(&mut player, 8); // e.g. what one `writev` managed to send
//! assert_eq!(ring.read(&player).unwrap().first, b"cond");
//! ```

use core::fmt;

/// Bytes one PCM message takes in the ring: 1024 frames of 16-bit stereo (4096 bytes, ~23.2 ms at
/// 44.1 kHz) + the FLV audio tag header byte = 4097 bytes of payload, chunk-encoded at chunk size
/// 4096: 12 bytes of fmt 0 header, one fmt 3 continuation byte, and 4 + 4 bytes of extended
/// timestamp once stream time reaches 0xFFFFFF ms (RTMP spec 5.3.1).
pub const PCM_MESSAGE_BYTES: usize = 4097 + 12 + 1 + 8;

/// Messages of [`PCM_MESSAGE_BYTES`] in two seconds of 44.1 kHz audio at 1024 frames each
/// (88200 / 1024 = 86.1, rounded up), plus one message of room lost to the unused arena end at a
/// wrap.
pub const PCM_2S_MESSAGES: usize = 87 + 1;

/// A ring sized for the join buffer of a 44.1 kHz stereo PCM stream: two seconds of ~23 ms
/// messages ([`PCM_2S_MESSAGES`] × [`PCM_MESSAGE_BYTES`] = 362,384 bytes of arena). 128 slots
/// leave the byte arena, not the index, as the limit for this stream, and leave room for smaller
/// messages such as onMetaData. 365,488 bytes in all: put it in a `static` or a `Box`, not on a
/// small stack.
pub type Pcm2sRing = Ring<{ PCM_2S_MESSAGES * PCM_MESSAGE_BYTES }, 128>;

/// Why a message could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PushError {
    /// The message is larger than the whole buffer, so no eviction can make room for it.
    TooLarge {
        /// Length of the rejected message.
        len: usize,
        /// Capacity of the buffer, in bytes.
        capacity: usize,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, capacity } => write!(
                f,
                "message of {len} bytes is larger than the buffer ({capacity} bytes)"
            ),
        }
    }
}

/// The message a cursor points at was evicted before the reader got to it.
///
/// `skipped` counts the messages lost, including a partly sent one. If the cursor was in the
/// middle of a message ([`Cursor::at_boundary`] is false), part of that message has already gone
/// out on the wire, and the rest of it can no longer be sent: the connection's byte stream is
/// broken and the caller should close it rather than [`Ring::skip_lagged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lagged {
    /// How many messages the reader lost.
    pub skipped: u64,
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reader fell behind the ring by {} messages",
            self.skipped
        )
    }
}

/// A reader's position: the next message to send and how much of it is already sent.
///
/// A plain `Copy` value with no borrow of the ring: keep one per player. Only a [`Ring`] makes
/// cursors; using a cursor with another ring gives empty reads or [`Lagged`], never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cursor {
    sequence: u64,
    offset: usize,
}

impl Cursor {
    /// True when nothing of the current message has been sent yet, so a player may start, stop or
    /// switch here without breaking the chunk stream.
    pub fn at_boundary(&self) -> bool {
        self.offset == 0
    }

    /// Sequence number of the message the cursor is in (or will read next).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// A contiguous run of bytes in the ring, in arena order: `first` up to the arena's end (or the
/// newest message), `second` the continuation from offset 0 when the run wraps. Pass both to
/// `writev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Slices<'a> {
    /// Bytes from the cursor up to the end of the run or of the arena's used part.
    pub first: &'a [u8],
    /// The rest of the run, from the start of the arena; empty when the run does not wrap.
    pub second: &'a [u8],
}

impl Slices<'_> {
    /// Total bytes in both slices.
    pub fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    /// True when the cursor is at the live edge: nothing to send.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty() && self.second.is_empty()
    }
}

/// One index entry: where a message starts (virtual position, see the module docs), its length
/// and its stream time.
#[derive(Clone, Copy, Debug)]
struct Slot {
    start: u64,
    len: usize,
    time_ms: u64,
}

impl Slot {
    const EMPTY: Self = Self {
        start: 0,
        len: 0,
        time_ms: 0,
    };
}

/// The broadcast ring: a `BYTES`-byte arena and a `SLOTS`-entry index with one writer and any
/// number of [`Cursor`]s. See the module docs for the eviction rule.
pub struct Ring<const BYTES: usize, const SLOTS: usize> {
    arena: [u8; BYTES],
    slots: [Slot; SLOTS],
    /// Sequence number of the oldest retained message.
    tail: u64,
    /// Sequence number the next pushed message gets.
    head: u64,
    /// Virtual position just past the newest message: where the next one is written.
    write: u64,
    /// Arena offset where the data of the previous lap ends (the unused end of the arena starts
    /// there); meaningful while a message of the previous lap is retained.
    lap_end: usize,
}

impl<const BYTES: usize, const SLOTS: usize> Default for Ring<BYTES, SLOTS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const BYTES: usize, const SLOTS: usize> Ring<BYTES, SLOTS> {
    /// An empty ring. `BYTES` and `SLOTS` must be non-zero (checked at compile time).
    pub const fn new() -> Self {
        const { assert!(BYTES > 0 && SLOTS > 0, "a ring needs bytes and slots") };
        Self {
            arena: [0; BYTES],
            slots: [Slot::EMPTY; SLOTS],
            tail: 0,
            head: 0,
            write: 0,
            lap_end: BYTES,
        }
    }

    /// Capacity of the arena, in bytes: the largest message the ring accepts.
    pub const fn capacity(&self) -> usize {
        BYTES
    }

    /// `BYTES` as a virtual-position quantity.
    const LAP: u64 = BYTES as u64;

    /// Arena offset of a virtual position.
    fn offset(position: u64) -> usize {
        // The remainder is below BYTES, which is a usize.
        (position % Self::LAP) as usize
    }

    fn slot(&self, sequence: u64) -> Option<&Slot> {
        if sequence < self.tail || sequence >= self.head {
            return None;
        }
        self.slots.get(Self::index(sequence))
    }

    /// Index slot of a sequence number.
    fn index(sequence: u64) -> usize {
        // The remainder is below SLOTS, which is a usize.
        (sequence % SLOTS as u64) as usize
    }

    /// Reserves `len` bytes for one message stamped `time_ms` (stream time), lets `fill` write the
    /// message in place, and returns its sequence number. Evicts the oldest messages as needed;
    /// never blocks and fails only when `len` exceeds the arena.
    ///
    /// `fill` gets exactly `len` bytes that still hold old data: it must write all of them.
    pub fn push_with(
        &mut self,
        time_ms: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64, PushError> {
        let too_large = PushError::TooLarge {
            len,
            capacity: BYTES,
        };
        if len > BYTES {
            return Err(too_large);
        }
        let len64 = len as u64;
        let offset = Self::offset(self.write);
        // Wrap to the next lap rather than straddle the arena end. A write position exactly at a
        // lap boundary (offset 0) is both the end of one lap and the start of the next.
        let (start, offset) = if offset != 0 && offset + len > BYTES {
            (self.write.saturating_add(Self::LAP - offset as u64), 0)
        } else {
            (self.write, offset)
        };
        let Some(dst) = self.arena.get_mut(offset..offset + len) else {
            return Err(too_large);
        };
        if len > 0 && offset == 0 && start > 0 {
            // The message opens a new lap: remember where the previous lap's data ends, so a read
            // that spans the boundary skips the unused end of the arena.
            self.lap_end = match Self::offset(self.write) {
                0 => BYTES,
                end => end,
            };
        }
        let end = start.saturating_add(len64);
        let mut evicted = 0u64;
        while self.tail < self.head {
            let full = self.head - self.tail >= SLOTS as u64;
            // `self.slots` directly: `dst` borrows `self.arena`.
            let overlaps = self
                .slots
                .get(Self::index(self.tail))
                .is_some_and(|oldest| oldest.start.saturating_add(Self::LAP) < end);
            if !(full || overlaps) {
                break;
            }
            self.tail += 1;
            evicted += 1;
        }
        if evicted > 0 {
            trace!("ring: evicted {} messages", evicted);
        }
        fill(dst);
        let sequence = self.head;
        if let Some(slot) = self.slots.get_mut(Self::index(sequence)) {
            *slot = Slot {
                start,
                len,
                time_ms,
            };
        }
        self.head += 1;
        self.write = end;
        Ok(sequence)
    }

    /// Copies `bytes` in as one message stamped `time_ms`; see [`Ring::push_with`].
    pub fn push(&mut self, time_ms: u64, bytes: &[u8]) -> Result<u64, PushError> {
        self.push_with(time_ms, bytes.len(), |dst| dst.copy_from_slice(bytes))
    }

    /// A cursor at the live edge: it will read the next message pushed.
    pub fn cursor_at_head(&self) -> Cursor {
        Cursor {
            sequence: self.head,
            offset: 0,
        }
    }

    /// A cursor at the oldest retained message stamped `time_ms` or later (the live edge when
    /// there is none): a new player joins this far back to fill its buffer at once. A linear scan
    /// of at most `SLOTS` entries, so stream time need not be monotonic.
    pub fn cursor_since(&self, time_ms: u64) -> Cursor {
        let sequence = (self.tail..self.head)
            .find(|&s| self.slot(s).is_some_and(|slot| slot.time_ms >= time_ms))
            .unwrap_or(self.head);
        Cursor {
            sequence,
            offset: 0,
        }
    }

    /// The bytes from `cursor` to the end of the newest message, as at most two slices in arena
    /// order; empty at the live edge. `Err(Lagged)` when the cursor's message was evicted.
    pub fn read(&self, cursor: &Cursor) -> Result<Slices<'_>, Lagged> {
        const NONE: Slices<'static> = Slices {
            first: &[],
            second: &[],
        };
        if cursor.sequence < self.tail {
            return Err(Lagged {
                skipped: self.tail - cursor.sequence,
            });
        }
        let Some(slot) = self.slot(cursor.sequence) else {
            return Ok(NONE);
        };
        if cursor.offset > slot.len {
            return Ok(NONE);
        }
        let from = slot.start.saturating_add(cursor.offset as u64);
        if from >= self.write {
            return Ok(NONE);
        }
        let first = Self::offset(from);
        let last = self.write - 1;
        // Retained messages span at most two laps (module docs), so the run crosses at most one
        // lap boundary: the one the newest lap started at.
        let slices = if from / Self::LAP == last / Self::LAP {
            Slices {
                first: self.arena.get(first..=Self::offset(last)).unwrap_or(&[]),
                second: &[],
            }
        } else if first >= self.lap_end {
            // The cursor is on an empty message written at the previous lap's data end: nothing
            // of the run lies before the boundary, so it is one slice from offset 0 (an empty
            // `first` with a non-empty `second` would look like "nothing to send" to a caller
            // that checks `first`).
            Slices {
                first: self.arena.get(..=Self::offset(last)).unwrap_or(&[]),
                second: &[],
            }
        } else {
            Slices {
                first: self.arena.get(first..self.lap_end).unwrap_or(&[]),
                second: self.arena.get(..=Self::offset(last)).unwrap_or(&[]),
            }
        };
        Ok(slices)
    }

    /// The rest of the cursor's current message alone: from the cursor to the end of that one
    /// message (empty at the live edge). A host copies it aside when a write ends mid-message, so
    /// its cursor stays on message boundaries and can always skip forward when it lags.
    pub fn current_message(&self, cursor: &Cursor) -> Result<&[u8], Lagged> {
        let slices = self.read(cursor)?;
        let Some(slot) = self.slot(cursor.sequence) else {
            return Ok(&[]);
        };
        let rest = slot.len.saturating_sub(cursor.offset);
        // A message never straddles the arena end, so it lies within `first`.
        Ok(slices.first.get(..rest).unwrap_or(slices.first))
    }

    /// Moves `cursor` forward by `n` bytes (at most what [`Ring::read`] returned), across message
    /// boundaries; it lands on the next non-empty message when a message is finished. Does nothing
    /// to a lagged cursor. Stops at the live edge if `n` is larger than what is there.
    pub fn advance(&self, cursor: &mut Cursor, n: usize) {
        let mut n = n;
        while let Some(slot) = self.slot(cursor.sequence) {
            let rest = slot.len.saturating_sub(cursor.offset);
            if n < rest {
                cursor.offset += n;
                return;
            }
            n -= rest;
            cursor.sequence += 1;
            cursor.offset = 0;
        }
    }

    /// Moves a lagged cursor to the oldest retained message and returns how many messages it
    /// skipped (0, and no change, when the cursor is not lagged). See [`Lagged`] for a cursor that
    /// lagged in the middle of a message.
    pub fn skip_lagged(&self, cursor: &mut Cursor) -> u64 {
        if cursor.sequence >= self.tail {
            return 0;
        }
        let skipped = self.tail - cursor.sequence;
        debug!("ring: reader lagged, skipped {} messages", skipped);
        *cursor = Cursor {
            sequence: self.tail,
            offset: 0,
        };
        skipped
    }

    /// Stream time of the cursor's current message, if it is retained (not lagged, not at the
    /// live edge).
    pub fn time_at(&self, cursor: &Cursor) -> Option<u64> {
        self.slot(cursor.sequence).map(|slot| slot.time_ms)
    }

    /// Stream time of the newest message, if any is retained.
    pub fn latest_time(&self) -> Option<u64> {
        self.slot(self.head.wrapping_sub(1))
            .map(|slot| slot.time_ms)
    }

    /// Number of messages retained.
    pub fn len(&self) -> usize {
        // At most SLOTS, which is a usize.
        (self.head - self.tail) as usize
    }

    /// True when no message is retained.
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Sequence number of the oldest retained message (equal to [`Ring::next_sequence`] when
    /// empty).
    pub fn oldest_sequence(&self) -> u64 {
        self.tail
    }

    /// Sequence number the next pushed message will get.
    pub fn next_sequence(&self) -> u64 {
        self.head
    }
}

/// One message kept beside the ring and sent first to every new player: the AAC sequence header
/// or the latest onMetaData (nginx-rtmp keeps both in `ngx_rtmp_codec_module.c` and sends them
/// from `ngx_rtmp_live_module.c` before any media).
pub struct Sticky<const N: usize> {
    buf: [u8; N],
    len: usize,
    generation: u32,
}

impl<const N: usize> Default for Sticky<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sticky<N> {
    /// An empty sticky message (generation 0).
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            generation: 0,
        }
    }

    /// Replaces the message. A message longer than `N` is refused, leaving the old one in place:
    /// a truncated sequence header would be worse than none.
    pub fn set(&mut self, bytes: &[u8]) -> Result<(), PushError> {
        let dst = self.buf.get_mut(..bytes.len()).ok_or(PushError::TooLarge {
            len: bytes.len(),
            capacity: N,
        })?;
        dst.copy_from_slice(bytes);
        self.len = bytes.len();
        self.generation = self.generation.wrapping_add(1);
        Ok(())
    }

    /// The message; empty when none is set.
    pub fn get(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Forgets the message (e.g. when the publisher leaves).
    pub fn clear(&mut self) {
        self.len = 0;
        self.generation = self.generation.wrapping_add(1);
    }

    /// Changes on every [`Sticky::set`] and [`Sticky::clear`]: a reader remembers the generation
    /// it sent and resends when it differs.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(ring: &Ring<16, 4>, cursor: &Cursor) -> ([u8; 16], usize, usize) {
        let s = ring.read(cursor).unwrap();
        let mut out = [0u8; 16];
        out[..s.first.len()].copy_from_slice(s.first);
        out[s.first.len()..s.len()].copy_from_slice(s.second);
        (out, s.first.len(), s.second.len())
    }

    #[test]
    fn current_message_is_one_message_from_the_cursor() {
        let mut ring: Ring<16, 4> = Ring::new();
        let mut c = ring.cursor_at_head();
        assert_eq!(ring.current_message(&c), Ok(&[][..]));
        ring.push(1, b"abcde").unwrap();
        ring.push(2, b"xyz").unwrap();
        assert_eq!(ring.current_message(&c), Ok(&b"abcde"[..]));
        ring.advance(&mut c, 2);
        assert_eq!(ring.current_message(&c), Ok(&b"cde"[..]));
        ring.advance(&mut c, 3);
        assert_eq!(ring.current_message(&c), Ok(&b"xyz"[..]));
        // Wraps: "xyz" stays, the new message starts at offset 0 and evicts "abcde".
        ring.push(3, &[9; 8]).unwrap();
        assert_eq!(ring.current_message(&c), Ok(&b"xyz"[..]));
        ring.advance(&mut c, 3);
        assert_eq!(ring.current_message(&c), Ok(&[9u8; 8][..]));
        ring.push(4, &[1; 16]).unwrap();
        assert_eq!(ring.current_message(&c), Err(Lagged { skipped: 1 }));
    }

    #[test]
    fn message_exactly_arena_size_evicts_everything_else() {
        let mut ring: Ring<16, 4> = Ring::new();
        let c = ring.cursor_at_head();
        ring.push(1, b"abc").unwrap();
        ring.push(2, &[7; 16]).unwrap();
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.read(&c), Err(Lagged { skipped: 1 }));
        let c = ring.cursor_since(0);
        assert_eq!(bytes(&ring, &c), ([7; 16], 16, 0));
        // And the next message wraps and evicts it.
        ring.push(3, b"x").unwrap();
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.read(&c), Err(Lagged { skipped: 1 }));
    }

    #[test]
    fn empty_message_at_lap_end_reads_as_one_slice() {
        // Found by the `ring` fuzz target: a cursor on an empty message at the end of the old
        // lap's data, with the next message wrapped to offset 0, got `first` empty and the
        // bytes in `second`.
        let mut ring: Ring<16, 4> = Ring::new();
        ring.push(1, &[1; 10]).unwrap();
        let c = ring.cursor_at_head();
        ring.push(2, &[]).unwrap();
        ring.push(3, &[3; 10]).unwrap();
        let mut want = [0; 16];
        want[..10].copy_from_slice(&[3; 10]);
        assert_eq!(bytes(&ring, &c), (want, 10, 0));
    }

    #[test]
    fn too_large_is_refused_without_eviction() {
        let mut ring: Ring<16, 4> = Ring::new();
        ring.push(1, b"keep").unwrap();
        assert_eq!(
            ring.push(2, &[0; 17]),
            Err(PushError::TooLarge {
                len: 17,
                capacity: 16
            })
        );
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.next_sequence(), 1);
    }

    #[test]
    fn zero_length_messages_are_retained_and_skipped_by_advance() {
        let mut ring: Ring<16, 4> = Ring::new();
        let mut c = ring.cursor_at_head();
        ring.push(1, b"ab").unwrap();
        ring.push(2, b"").unwrap();
        ring.push(3, b"cd").unwrap();
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.read(&c).unwrap().first, b"abcd");
        ring.advance(&mut c, 2);
        // Past "ab" and past the empty message, straight onto "cd".
        assert_eq!(c.sequence(), 2);
        assert!(c.at_boundary());
        assert_eq!(ring.cursor_since(2).sequence(), 1);
        assert_eq!(ring.read(&ring.cursor_since(2)).unwrap().first, b"cd");
    }

    #[test]
    fn wrap_gives_two_slices_and_skips_the_unused_end() {
        let mut ring: Ring<16, 8> = Ring::new();
        let mut c = ring.cursor_at_head();
        ring.push(1, b"0123456").unwrap(); // 0..7
        ring.push(2, b"789ab").unwrap(); // 7..12
        ring.advance(&mut c, 7);
        // 6 bytes do not fit in 12..16: wrap to 0, evicting "0123456" (0..7) only.
        ring.push(3, b"CDEFGH").unwrap();
        assert_eq!(ring.oldest_sequence(), 1);
        let s = ring.read(&c).unwrap();
        assert_eq!((s.first, s.second), (&b"789ab"[..], &b"CDEFGH"[..]));
        // Mid-message in the first slice, then the second message alone.
        ring.advance(&mut c, 3);
        let s = ring.read(&c).unwrap();
        assert_eq!((s.first, s.second), (&b"ab"[..], &b"CDEFGH"[..]));
        ring.advance(&mut c, 4);
        let s = ring.read(&c).unwrap();
        assert_eq!((s.first, s.second), (&b"EFGH"[..], &b""[..]));
    }

    #[test]
    fn slot_index_full_before_bytes() {
        let mut ring: Ring<64, 3> = Ring::new();
        let c = ring.cursor_at_head();
        for (t, m) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            ring.push(t as u64, *m).unwrap();
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.read(&c), Err(Lagged { skipped: 1 }));
        let mut c2 = c;
        assert_eq!(ring.skip_lagged(&mut c2), 1);
        assert_eq!(ring.read(&c2).unwrap().first, b"bcd");
        assert_eq!(ring.skip_lagged(&mut c2), 0);
        assert_eq!(ring.latest_time(), Some(3));
    }

    #[test]
    fn message_ending_at_arena_end_then_next_lap() {
        let mut ring: Ring<16, 8> = Ring::new();
        ring.push(1, b"01234567").unwrap();
        ring.push(2, b"89abcdef").unwrap(); // ends exactly at 16
        let c = ring.cursor_since(2);
        ring.push(3, b"").unwrap(); // at the boundary, belongs to no lap's bytes
        ring.push(4, b"XY").unwrap(); // next lap, evicts "01234567"
        assert_eq!(ring.oldest_sequence(), 1);
        let s = ring.read(&c).unwrap();
        assert_eq!((s.first, s.second), (&b"89abcdef"[..], &b"XY"[..]));
    }

    #[test]
    fn cursor_since_and_latest_time_on_empty_ring() {
        let ring: Ring<16, 4> = Ring::default();
        assert!(ring.is_empty());
        assert_eq!(ring.latest_time(), None);
        assert_eq!(ring.cursor_since(0), ring.cursor_at_head());
        assert!(ring.read(&ring.cursor_at_head()).unwrap().is_empty());
    }

    #[test]
    fn sticky_refuses_oversize_and_counts_generations() {
        let mut s: Sticky<4> = Sticky::new();
        assert_eq!(s.get(), b"");
        s.set(b"\xaf\x00\x12\x10").unwrap();
        assert_eq!(s.generation(), 1);
        assert_eq!(
            s.set(b"12345"),
            Err(PushError::TooLarge {
                len: 5,
                capacity: 4
            })
        );
        assert_eq!(s.get(), b"\xaf\x00\x12\x10");
        assert_eq!(s.generation(), 1);
        s.clear();
        assert_eq!((s.get(), s.generation()), (&b""[..], 2));
    }
}
