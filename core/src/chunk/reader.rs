//! Chunk stream reader: parses chunk headers and reassembles messages into one fixed arena.

use super::{
    validate_chunk_size, ChunkError, Message, MessageHeader, DEFAULT_CHUNK_SIZE, DEFAULT_SKIP_MASK,
    EXTENDED, MAX_CHUNK_SIZE, MESSAGE_HEADER_LEN,
};
use crate::message::{self, Control};

/// Message types the reader must see because it applies them itself: they can not be skipped.
const UNSKIPPABLE: u32 = (1 << message::SET_CHUNK_SIZE) | (1 << message::ABORT);

/// Where the message in flight on a chunk stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Partial {
    /// No message in flight: the next chunk starts one.
    Idle,
    /// Payload goes to the arena region `start..start + header.length`; `received` bytes so far.
    Buffering { start: usize, received: u32 },
    /// A message of a skipped type: `received` payload bytes discarded so far.
    Skipping { received: u32 },
}

impl Partial {
    fn received(self) -> u32 {
        match self {
            Partial::Idle => 0,
            Partial::Buffering { received, .. } | Partial::Skipping { received } => received,
        }
    }
}

/// Per chunk stream state: the last header (for fmt 1–3 decompression) and the message in flight.
#[derive(Clone, Copy, Debug)]
struct Stream {
    /// The header of the current (or last) message; `csid == 0` marks a free slot.
    header: MessageHeader,
    /// The last timestamp field: a fmt 1/2 delta, or the fmt 0 absolute timestamp. A new message
    /// on fmt 3 adds it again — ffmpeg's `ts_field` in `rtmppkt.c` (protocol notes §2).
    delta: u32,
    /// The last fmt 0/1/2 header carried an extended timestamp (equal to `delta`), so fmt 3
    /// chunks may repeat it (Flash, ffmpeg, nginx) or not (spec-strict writers).
    extended: bool,
    partial: Partial,
}

impl Stream {
    const FREE: Stream = Stream {
        header: MessageHeader {
            csid: 0,
            timestamp: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
        },
        delta: 0,
        extended: false,
        partial: Partial::Idle,
    };
}

/// A chunk header parsed from input but not yet applied.
struct Header {
    /// Bytes it takes, including a consumed extended timestamp.
    len: usize,
    fmt: u8,
    csid: u32,
    /// Timestamp field (the extended value when the 3-byte field was 0xFFFFFF); fmt 0–2 only.
    timestamp: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Reads big-endian bytes into a u32 (at most 4 of them).
fn be(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b))
}

/// Reassembles RTMP messages from chunks, with all state in fixed tables.
///
/// `STREAMS` is the number of chunk streams the peer may use (a new csid beyond that is
/// [`ChunkError::TooManyChunkStreams`]); the arena `A` — storage the caller hands in, `[u8; N]`
/// in [`ChunkReader`] — is the byte budget shared by every message in flight, so messages
/// interleaved across chunk streams reassemble side by side. A host can start a connection
/// with a small arena and [`replace_arena`](Self::replace_arena) it with a larger one when the
/// peer turns out to need it (a publisher), so players do not carry a publisher's budget.
///
/// Call [`read`](Self::read) with the unconsumed input until it returns `Ok((0, None))`, drop
/// the consumed bytes, and call again when more arrive. A fmt 3 chunk after an extended-timestamp
/// header is only decided once the 4 bytes after its basic header are in (they may be a
/// repeated timestamp or payload), so such a chunk waits for 4 bytes even if less is due. Each call does bounded work: at most
/// one chunk header and one copy, plus at most one arena compaction of `O(STREAMS²)` steps.
pub struct ChunkReaderIn<const STREAMS: usize, A> {
    arena: A,
    streams: [Stream; STREAMS],
    /// Slot and payload bytes still to come of the chunk whose header was consumed.
    current: Option<(usize, u32)>,
    chunk_size: u32,
    max_chunk_size: u32,
    max_message: u32,
    skip_mask: u32,
    bytes_received: u64,
    /// Messages skipped by type since the start.
    skipped: u64,
    /// Arena region (start, length) of the message the last `read` completed, if any.
    last: (usize, u32),
}

/// A [`ChunkReaderIn`] with its arena inline: `ARENA` bytes.
pub type ChunkReader<const STREAMS: usize, const ARENA: usize> =
    ChunkReaderIn<STREAMS, [u8; ARENA]>;

/// The largest message an arena of `len` bytes can take, at most `max_message`.
const fn clamp_message(max_message: u32, len: usize) -> u32 {
    let limit = if len > u32::MAX as usize {
        u32::MAX
    } else {
        len as u32
    };
    if max_message < limit {
        max_message
    } else {
        limit
    }
}

impl<const STREAMS: usize, const ARENA: usize> ChunkReaderIn<STREAMS, [u8; ARENA]> {
    /// A reader at the spec's initial chunk size (128) that refuses messages longer than
    /// `max_message` bytes (clamped to `ARENA`) and skips [`DEFAULT_SKIP_MASK`] (video).
    pub const fn new(max_message: u32) -> Self {
        Self::build([0; ARENA], ARENA, max_message)
    }
}

impl<const STREAMS: usize, A> ChunkReaderIn<STREAMS, A> {
    const fn build(arena: A, len: usize, max_message: u32) -> Self {
        Self {
            arena,
            streams: [Stream::FREE; STREAMS],
            current: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_chunk_size: MAX_CHUNK_SIZE,
            max_message: clamp_message(max_message, len),
            skip_mask: DEFAULT_SKIP_MASK,
            bytes_received: 0,
            skipped: 0,
            last: (0, 0),
        }
    }
}

impl<const STREAMS: usize, A: AsRef<[u8]> + AsMut<[u8]>> ChunkReaderIn<STREAMS, A> {
    /// Like [`ChunkReader::new`], with the caller's arena.
    pub fn with_arena(arena: A, max_message: u32) -> Self {
        let len = arena.as_ref().len();
        Self::build(arena, len, max_message)
    }

    /// Moves the messages in flight into `arena` and keeps it from now on, with a new message
    /// limit (clamped to its size); returns the old arena. `Err` gives `arena` back when it is
    /// too small for what is in flight. The payload of the last completed message is gone.
    pub fn replace_arena(&mut self, mut arena: A, max_message: u32) -> Result<A, A> {
        let used = self.compact();
        let (Some(dst), Some(src)) = (
            arena.as_mut().get_mut(..used),
            self.arena.as_ref().get(..used),
        ) else {
            return Err(arena);
        };
        dst.copy_from_slice(src);
        self.max_message = clamp_message(max_message, arena.as_ref().len());
        self.last = (0, 0);
        Ok(core::mem::replace(&mut self.arena, arena))
    }

    /// Messages skipped by type (video, by default) since the start.
    pub fn messages_skipped(&self) -> u64 {
        self.skipped
    }

    /// The arena's size in bytes.
    pub fn arena_len(&self) -> usize {
        self.arena.as_ref().len()
    }

    /// All bytes consumed so far (headers and payload, skipped messages too), for the
    /// Acknowledgement the session sends every window (spec §5.4.3). Handshake bytes are not
    /// included: the reader never sees them.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// The peer's current chunk size (changed by the Set Chunk Size messages it sends).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bit `n` set = messages of type `n` are skipped chunk by chunk: they take no arena space,
    /// are not size-checked and are never returned. Set Chunk Size and Abort are always read,
    /// since the reader applies them to stay in step with the peer.
    pub fn set_skip_mask(&mut self, mask: u32) {
        self.skip_mask = mask & !UNSKIPPABLE;
    }

    /// Caps the chunk size the peer may set (default and maximum 0x7FFFFFFF, spec §5.4.1).
    /// Chunks are streamed into the arena, so a large chunk size costs no memory; a cap only
    /// makes a peer that asks for more fail with [`ChunkError::InvalidChunkSize`].
    pub fn set_max_chunk_size(&mut self, cap: u32) {
        self.max_chunk_size = cap;
    }

    /// Consumes at most one chunk from `input`: its header only when complete, then its payload
    /// bytes as far as they go.
    ///
    /// Returns how many bytes were used and, when a message is complete, the message; its
    /// payload borrows the arena until the next call. `Ok((0, None))` asks for more input.
    /// Set Chunk Size and Abort are applied here when they complete, and still returned.
    /// After an error the stream is out of step: the connection has to be closed.
    pub fn read<'a>(
        &'a mut self,
        input: &[u8],
    ) -> Result<(usize, Option<Message<'a>>), ChunkError> {
        self.last = (0, 0);
        let (header_len, slot, left) = match self.current {
            Some((slot, left)) => (0, slot, left),
            None => match self.parse_header(input)? {
                Some(header) => {
                    let len = header.len;
                    let (slot, left) = self.apply_header(header)?;
                    (len, slot, left)
                }
                None => return Ok((0, None)),
            },
        };
        let available = input.get(header_len..).unwrap_or_default();
        let take = available.len().min(left as usize);
        let chunk = available.get(..take).unwrap_or_default();
        self.store(slot, chunk)?;
        let used = header_len + take;
        self.bytes_received += used as u64;
        // `take <= left`, which is a u32.
        let left = left - take as u32;
        self.current = (left > 0).then_some((slot, left));
        if left > 0 {
            return Ok((used, None));
        }
        let message = self.complete(slot)?;
        Ok((used, message))
    }

    /// Parses one chunk header from the front of `input`; `None` until all of it is there.
    fn parse_header(&self, input: &[u8]) -> Result<Option<Header>, ChunkError> {
        let Some(&first) = input.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        // Basic header (spec §5.3.1.1): low 6 bits 0 → 2-byte form, 1 → 3-byte form.
        let (csid, mut len) = match first & 0x3F {
            0 => match input.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match input.get(1..3) {
                Some(&[lo, hi]) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let slot = self.slot_of(csid);
        let previous = match slot {
            Some(i) => self.streams.get(i).copied(),
            None => None,
        };
        if previous.is_none() && fmt != 0 {
            return Err(ChunkError::NoPreviousHeader { csid, fmt });
        }
        let fields_len = MESSAGE_HEADER_LEN
            .get(usize::from(fmt))
            .copied()
            .unwrap_or(0);
        let Some(fields) = input.get(len..len + fields_len) else {
            return Ok(None);
        };
        len += fields_len;
        let mut header = Header {
            len,
            fmt,
            csid,
            timestamp: be(fields.get(0..3).unwrap_or_default()),
            extended: false,
            length: be(fields.get(3..6).unwrap_or_default()),
            type_id: fields.get(6).copied().unwrap_or(0),
            // The message stream id alone is little-endian (spec §5.3.1.2.1).
            stream_id: be(fields.get(7..11).unwrap_or_default()).swap_bytes(),
        };
        if fmt < 3 && header.timestamp == EXTENDED {
            // Spec §5.3.1.3: the real value (for fmt 1/2 the delta) follows in 4 bytes.
            let Some(ext) = input.get(len..len + 4) else {
                return Ok(None);
            };
            header.timestamp = be(ext);
            header.extended = true;
            header.len += 4;
        } else if let Some(stream) = previous.filter(|s| fmt == 3 && s.extended) {
            // A fmt 3 chunk after an extended header: Flash, ffmpeg and nginx repeat the 4 bytes,
            // the spec says they must not be there. Peek and consume them only when they equal
            // the stored value (SRS does the same; protocol notes §2 and §5 #13).
            let Some(peek) = input.get(len..len + 4) else {
                return Ok(None);
            };
            if be(peek) == stream.delta {
                header.len += 4;
            }
        }
        Ok(Some(header))
    }

    /// The slot that holds `csid`, if any.
    fn slot_of(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.header.csid == csid)
    }

    /// Updates the chunk stream's state with a parsed header; returns the slot and how many
    /// payload bytes the chunk carries.
    fn apply_header(&mut self, h: Header) -> Result<(usize, u32), ChunkError> {
        let slot = match self.slot_of(h.csid) {
            Some(slot) => slot,
            None => self
                .slot_of(0)
                .ok_or(ChunkError::TooManyChunkStreams { csid: h.csid })?,
        };
        let mut stream = self.streams.get(slot).copied().unwrap_or(Stream::FREE);
        let in_flight = stream.partial != Partial::Idle;
        let previous = stream.header;
        stream.header.csid = h.csid;
        if h.fmt < 3 {
            stream.delta = h.timestamp;
            stream.extended = h.extended;
        }
        match h.fmt {
            0 => {
                stream.header.timestamp = h.timestamp;
                stream.header.stream_id = h.stream_id;
            }
            // fmt 1/2: the field is a delta (also when extended: SRS bug #4356).
            1 | 2 => stream.header.timestamp = previous.timestamp.wrapping_add(h.timestamp),
            // fmt 3 starting a new message repeats the previous delta (spec §5.3.1.2.4); a
            // continuation keeps the message's timestamp.
            _ if !in_flight => {
                stream.header.timestamp = previous.timestamp.wrapping_add(stream.delta)
            }
            _ => {}
        }
        if h.fmt < 2 {
            stream.header.length = h.length;
            stream.header.type_id = h.type_id;
        }
        if in_flight
            && (stream.header.length != previous.length
                || stream.header.type_id != previous.type_id)
        {
            return Err(ChunkError::HeaderChangedMidMessage { csid: h.csid });
        }
        if !in_flight {
            stream.partial = self.start_message(&stream.header)?;
        }
        let left = stream
            .header
            .length
            .saturating_sub(stream.partial.received())
            .min(self.chunk_size);
        if let Some(s) = self.streams.get_mut(slot) {
            *s = stream;
        }
        Ok((slot, left))
    }

    /// Decides how a new message is received: skipped, or buffered in a fresh arena region.
    fn start_message(&mut self, header: &MessageHeader) -> Result<Partial, ChunkError> {
        let skip = 1u32
            .checked_shl(u32::from(header.type_id))
            .is_some_and(|bit| self.skip_mask & bit != 0);
        if skip {
            self.skipped += 1;
            return Ok(Partial::Skipping { received: 0 });
        }
        // Checked before buffering anything (protocol notes §5 #7).
        if header.length > self.max_message {
            return Err(ChunkError::MessageTooLarge {
                len: header.length,
                limit: self.max_message,
            });
        }
        let start = self.allocate(header.length as usize)?;
        Ok(Partial::Buffering { start, received: 0 })
    }

    /// Finds `len` free bytes at the end of the arena, compacting the regions of the messages
    /// in flight first when the end is too short.
    fn allocate(&mut self, len: usize) -> Result<usize, ChunkError> {
        let top = self
            .regions()
            .map(|(_, start, region_len, _)| start + region_len)
            .max()
            .unwrap_or(0);
        let size = self.arena_len();
        if size.saturating_sub(top) >= len {
            return Ok(top);
        }
        let used = self.compact();
        let available = size.saturating_sub(used);
        if available >= len {
            Ok(used)
        } else {
            Err(ChunkError::ReassemblyBudgetExceeded {
                needed: len as u32,
                available: available as u32,
            })
        }
    }

    /// The arena regions of messages in flight: (slot, start, reserved length, received).
    fn regions(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        self.streams
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| match s.partial {
                Partial::Buffering { start, received } => {
                    Some((slot, start, s.header.length as usize, received as usize))
                }
                _ => None,
            })
    }

    /// Moves the regions in flight to the front of the arena, in address order so each move
    /// goes down and never over a region not yet moved. Returns the end of the last region.
    fn compact(&mut self) -> usize {
        let mut moved = [false; STREAMS];
        let mut end = 0;
        for _ in 0..STREAMS {
            let lowest = self
                .regions()
                .filter(|&(slot, ..)| !moved.get(slot).copied().unwrap_or(true))
                .min_by_key(|&(_, start, ..)| start);
            let Some((slot, start, len, received)) = lowest else {
                break;
            };
            // Only the bytes received so far are worth copying; `end <= start` always, so the
            // span from `end` holds both the source and the destination.
            if let Some(span) = self.arena.as_mut().get_mut(end..start + received) {
                span.copy_within(start.saturating_sub(end).., 0);
            }
            if let Some(s) = self.streams.get_mut(slot) {
                s.partial = Partial::Buffering {
                    start: end,
                    received: received as u32,
                };
            }
            if let Some(m) = moved.get_mut(slot) {
                *m = true;
            }
            end += len;
        }
        trace!("chunk arena compacted to {} bytes", end);
        end
    }

    /// Appends payload bytes of the current chunk to the message of `slot`.
    fn store(&mut self, slot: usize, chunk: &[u8]) -> Result<(), ChunkError> {
        let Some(stream) = self.streams.get_mut(slot) else {
            return Ok(());
        };
        let added = chunk.len() as u32;
        match &mut stream.partial {
            Partial::Idle => {}
            Partial::Skipping { received } => *received += added,
            Partial::Buffering { start, received } => {
                let at = *start + *received as usize;
                // The region was sized for the whole message, and chunks never exceed it.
                let dst = self.arena.as_mut().get_mut(at..at + chunk.len()).ok_or(
                    ChunkError::ReassemblyBudgetExceeded {
                        needed: added,
                        available: 0,
                    },
                )?;
                dst.copy_from_slice(chunk);
                *received += added;
            }
        }
        Ok(())
    }

    /// Finishes the message of `slot` if all its bytes are in: frees its region for the next
    /// call, applies Set Chunk Size / Abort, and returns it unless its type is skipped.
    fn complete(&mut self, slot: usize) -> Result<Option<Message<'_>>, ChunkError> {
        let Some(stream) = self.streams.get_mut(slot) else {
            return Ok(None);
        };
        let header = stream.header;
        if stream.partial.received() < header.length {
            return Ok(None);
        }
        let partial = core::mem::replace(&mut stream.partial, Partial::Idle);
        let Partial::Buffering { start, .. } = partial else {
            return Ok(None);
        };
        match message::parse_control(header.type_id, self.region(start, header.length))? {
            Some(Control::SetChunkSize(size)) => {
                self.chunk_size = validate_chunk_size(size, self.max_chunk_size)?;
                debug!("peer chunk size {}", size);
            }
            Some(Control::Abort { csid }) => self.abort(csid),
            _ => {}
        }
        self.last = (start, header.length);
        Ok(Some(Message {
            header,
            payload: self.region(start, header.length),
        }))
    }

    /// The payload of the message the latest [`read`](Self::read) returned (empty when it
    /// returned none). Lets a caller that dropped the borrow (to update its own state first)
    /// look at the payload again without copying it.
    pub fn last_payload(&self) -> &[u8] {
        self.region(self.last.0, self.last.1)
    }

    /// The payload of a completed message.
    fn region(&self, start: usize, length: u32) -> &[u8] {
        self.arena
            .as_ref()
            .get(start..start + length as usize)
            .unwrap_or_default()
    }

    /// Drops the partial message of `csid` (spec §5.4.2); an idle or unknown csid is ignored
    /// (protocol notes §5 #23).
    fn abort(&mut self, csid: u32) {
        let Some(slot) = self.slot_of(csid) else {
            return;
        };
        // Only called when a message completes, so no chunk of `csid` is half read.
        if let Some(stream) = self.streams.get_mut(slot) {
            stream.partial = Partial::Idle;
        }
        debug!("abort on chunk stream {}", csid);
    }
}
