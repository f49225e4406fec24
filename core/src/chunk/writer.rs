//! Chunk stream writer: header compression per chunk stream, and self-contained messages.

use super::{
    basic_header, basic_header_len, validate_chunk_size, ChunkError, MessageHeader,
    DEFAULT_CHUNK_SIZE, EXTENDED, MAX_CHUNK_SIZE, MAX_CSID, MAX_MESSAGE_LEN, MESSAGE_HEADER_LEN,
    MIN_CSID,
};

/// How the first chunk of a message is written: its fmt and its timestamp field value
/// (absolute for fmt 0, the delta for fmt 1/2/3), before the 0xFFFFFF escape.
#[derive(Clone, Copy)]
struct Plan {
    fmt: u8,
    field: u32,
}

impl Plan {
    /// The field does not fit 3 bytes: 0xFFFFFF and a 4-byte extended timestamp (spec §5.3.1.3).
    fn extended(self) -> bool {
        self.field >= EXTENDED
    }
}

/// The last message written on one chunk stream.
#[derive(Clone, Copy)]
struct Last {
    /// Its header; `csid == 0` marks a free slot.
    header: MessageHeader,
    /// The delta a fmt 3 header would repeat. `None` after fmt 0: readers disagree on what a new
    /// message on fmt 3 adds after a fmt 0 header (ffmpeg `rtmppkt.c` adds the fmt 0 timestamp
    /// again, nginx-rtmp `ngx_rtmp_handler.c` adds 0), so that case is written as fmt 2.
    delta: Option<u32>,
}

impl Last {
    const FREE: Last = Last {
        header: MessageHeader {
            csid: 0,
            timestamp: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
        },
        delta: None,
    };
}

/// Writes messages as chunks, compressing headers per chunk stream (spec §5.3.1.2).
///
/// fmt 0 on a chunk stream's first message, when the message stream id changes or the timestamp
/// goes backwards (also after the 2^32 wrap); fmt 1 when length or type changes; fmt 2 when only
/// the delta changes; fmt 3 when length, type and delta all repeat. `STREAMS` bounds the chunk
/// streams it remembers ([`ChunkError::TooManyChunkStreams`] beyond that).
pub struct ChunkWriter<const STREAMS: usize> {
    streams: [Last; STREAMS],
    chunk_size: u32,
}

impl<const STREAMS: usize> Default for ChunkWriter<STREAMS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const STREAMS: usize> ChunkWriter<STREAMS> {
    /// A writer at the spec's initial chunk size of 128 bytes (spec §5.4.1).
    pub const fn new() -> Self {
        Self {
            streams: [Last::FREE; STREAMS],
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// The chunk size messages are split at.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Switches to `size` (1..=0x7FFFFFFF, spec §5.4.1) for the following messages. Call it
    /// after writing the Set Chunk Size message that announces it: the peer applies the new
    /// size from the next chunk on.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        self.chunk_size = validate_chunk_size(size, MAX_CHUNK_SIZE)?;
        Ok(())
    }

    /// Writes `payload` as the message `header` into `buf`; returns the bytes written.
    ///
    /// On error nothing is remembered, so the next message is compressed against the last one
    /// actually written.
    pub fn write(
        &mut self,
        buf: &mut [u8],
        header: &MessageHeader,
        payload: &[u8],
    ) -> Result<usize, ChunkError> {
        check(header, payload)?;
        let slot = self
            .slot_of(header.csid)
            .or_else(|| self.slot_of(0))
            .ok_or(ChunkError::TooManyChunkStreams { csid: header.csid })?;
        let last = self.streams.get(slot).copied().unwrap_or(Last::FREE);
        let plan = if last.header.csid == 0
            || last.header.stream_id != header.stream_id
            || header.timestamp < last.header.timestamp
        {
            Plan {
                fmt: 0,
                field: header.timestamp,
            }
        } else {
            let delta = header.timestamp - last.header.timestamp;
            let fmt =
                if last.header.length != header.length || last.header.type_id != header.type_id {
                    1
                } else if last.delta == Some(delta) {
                    3
                } else {
                    2
                };
            Plan { fmt, field: delta }
        };
        let written = emit(buf, plan, header, payload, self.chunk_size)?;
        if let Some(s) = self.streams.get_mut(slot) {
            *s = Last {
                header: *header,
                delta: (plan.fmt != 0).then_some(plan.field),
            };
        }
        Ok(written)
    }

    /// The slot that holds `csid` (0: a free slot), if any.
    fn slot_of(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.header.csid == csid)
    }
}

/// Writes a self-contained message: a fmt 0 header with the absolute timestamp, then a fmt 3
/// continuation header every `chunk_size` bytes. When the timestamp is 0xFFFFFF or more, each
/// continuation repeats the extended timestamp, as Flash, ffmpeg and nginx-rtmp write and
/// expect (protocol notes §2). This is what the broadcast ring stores, so a player can join at
/// any message. Returns the bytes written, which equal [`standalone_len`].
pub fn encode_standalone(
    buf: &mut [u8],
    chunk_size: u32,
    header: &MessageHeader,
    payload: &[u8],
) -> Result<usize, ChunkError> {
    let chunk_size = validate_chunk_size(chunk_size, MAX_CHUNK_SIZE)?;
    check(header, payload)?;
    emit(buf, standalone_plan(header), header, payload, chunk_size)
}

/// The bytes [`encode_standalone`] writes for `header` at `chunk_size` (a chunk size of 0, which
/// `encode_standalone` rejects, is counted as 1).
pub fn standalone_len(chunk_size: u32, header: &MessageHeader) -> usize {
    encoded_len(standalone_plan(header), header, chunk_size)
}

fn standalone_plan(header: &MessageHeader) -> Plan {
    Plan {
        fmt: 0,
        field: header.timestamp,
    }
}

/// Checks what a writer is given: a valid csid and a payload that matches the header and fits
/// the 3-byte length field.
fn check(header: &MessageHeader, payload: &[u8]) -> Result<(), ChunkError> {
    if !(MIN_CSID..=MAX_CSID).contains(&header.csid) {
        return Err(ChunkError::InvalidCsid { csid: header.csid });
    }
    if payload.len() != header.length as usize {
        return Err(ChunkError::PayloadLength {
            header: header.length,
            payload: payload.len(),
        });
    }
    if header.length > MAX_MESSAGE_LEN {
        return Err(ChunkError::MessageTooLarge {
            len: header.length,
            limit: MAX_MESSAGE_LEN,
        });
    }
    Ok(())
}

/// Bytes taken by a message written with `plan`: first header, payload, and a continuation
/// header (plus repeated extended timestamp) before every further chunk.
fn encoded_len(plan: Plan, header: &MessageHeader, chunk_size: u32) -> usize {
    let chunk_size = chunk_size.max(1) as usize;
    let length = header.length as usize;
    let chunks = length.div_ceil(chunk_size).max(1);
    let basic = basic_header_len(header.csid);
    let ext = if plan.extended() { 4 } else { 0 };
    let fields = MESSAGE_HEADER_LEN
        .get(usize::from(plan.fmt))
        .copied()
        .unwrap_or(0);
    basic + fields + ext + (chunks - 1) * (basic + ext) + length
}

/// A cursor over the output that never writes out of bounds.
struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), ChunkError> {
        let available = self.buf.len();
        let end = self.pos + bytes.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(ChunkError::BufferFull {
                needed: end,
                available,
            })?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

/// Writes the chunks of one message (the checks are the caller's).
fn emit(
    buf: &mut [u8],
    plan: Plan,
    header: &MessageHeader,
    payload: &[u8],
    chunk_size: u32,
) -> Result<usize, ChunkError> {
    let needed = encoded_len(plan, header, chunk_size);
    let available = buf.len();
    let buf = buf
        .get_mut(..needed)
        .ok_or(ChunkError::BufferFull { needed, available })?;
    let mut out = Out { buf, pos: 0 };
    let (basic, basic_len) = basic_header(plan.fmt, header.csid);
    out.put(basic.get(..basic_len).unwrap_or_default())?;
    let [_, t2, t1, t0] = plan.field.min(EXTENDED).to_be_bytes();
    let [_, l2, l1, l0] = header.length.to_be_bytes();
    // Spec §5.3.1.2.1: timestamp (3, BE), length (3, BE), type (1), stream id (4, LE).
    let [s0, s1, s2, s3] = header.stream_id.to_le_bytes();
    let fields = [t2, t1, t0, l2, l1, l0, header.type_id, s0, s1, s2, s3];
    let fields_len = MESSAGE_HEADER_LEN
        .get(usize::from(plan.fmt))
        .copied()
        .unwrap_or(0);
    out.put(fields.get(..fields_len).unwrap_or_default())?;
    let ext = plan.field.to_be_bytes();
    let ext = if plan.extended() { &ext[..] } else { &[] };
    out.put(ext)?;
    let (continuation, continuation_len) = basic_header(3, header.csid);
    let continuation = continuation.get(..continuation_len).unwrap_or_default();
    for (i, chunk) in payload.chunks(chunk_size.max(1) as usize).enumerate() {
        if i > 0 {
            out.put(continuation)?;
            out.put(ext)?;
        }
        out.put(chunk)?;
    }
    Ok(out.pos)
}
