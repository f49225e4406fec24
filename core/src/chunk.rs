//! The RTMP chunk stream (RTMP spec §5.3): splitting messages into chunks and back.
//!
//! A chunk is a basic header (1–3 bytes: `fmt` and the chunk stream id, spec §5.3.1.1), a
//! message header of 11, 7, 3 or 0 bytes (fmt 0–3, §5.3.1.2), an optional 4-byte extended
//! timestamp (§5.3.1.3) and up to "chunk size" payload bytes. Headers are compressed per chunk
//! stream: fmt 1–3 leave out what repeats from the previous chunk on the same csid.
//!
//! - [`ChunkReader`] reassembles messages from peer bytes in any split, into one fixed arena.
//! - [`ChunkWriter`] compresses headers per csid for the connection's own messages.
//! - [`encode_standalone`] writes self-contained messages (fmt 0 + fmt 3 continuations) for the
//!   broadcast ring, so any player can start at any message.
//!
//! Timestamp rules, and where readers in the wild disagree, are in `protocol-notes.md` §2.

mod reader;
mod writer;

pub use reader::{ChunkReader, ChunkReaderIn};
pub use writer::{encode_standalone, standalone_len, ChunkWriter};

use crate::message::MessageError;
use core::fmt;

/// Chunk size both directions start with (spec §5.4.1: "The maximum chunk size defaults to
/// 128 bytes").
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest valid chunk size: spec §5.4.1 requires bit 31 of Set Chunk Size to be zero.
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Smallest chunk stream id (0 and 1 are basic header escape values, spec §5.3.1.1).
pub const MIN_CSID: u32 = 2;
/// Largest chunk stream id: the 3-byte basic header form carries csid − 64 in 16 bits.
pub const MAX_CSID: u32 = 65_599;
/// Largest message length the 3-byte length field of fmt 0/1 headers can carry.
pub const MAX_MESSAGE_LEN: u32 = 0xFF_FFFF;
/// Message types [`ChunkReader`] skips by default: video (type 9), which an audio server never
/// needs, so a publisher's video costs neither arena space nor a size check (design.md).
pub const DEFAULT_SKIP_MASK: u32 = 1 << crate::message::VIDEO;

/// The timestamp field value that announces a 4-byte extended timestamp (spec §5.3.1.3).
const EXTENDED: u32 = 0xFF_FFFF;
/// Message header length by fmt (spec §5.3.1.2.1–4).
const MESSAGE_HEADER_LEN: [usize; 4] = [11, 7, 3, 0];

/// The header of one RTMP message (spec §5.1), as seen after reassembly or given to a writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MessageHeader {
    /// The chunk stream the message travels on (2..=65599).
    pub csid: u32,
    /// Absolute message timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// Payload length in bytes (at most [`MAX_MESSAGE_LEN`]).
    pub length: u32,
    /// Message type id, see [`crate::message`].
    pub type_id: u8,
    /// Message stream id (0 for the NetConnection, 1.. for streams from createStream).
    pub stream_id: u32,
}

/// A complete message: its header and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message<'a> {
    /// The message header; `header.length == payload.len()`.
    pub header: MessageHeader,
    /// The payload, borrowed from the reader's arena (or the caller) for as long as `'a`.
    pub payload: &'a [u8],
}

/// What was wrong with the chunk stream, a message or an output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChunkError {
    /// A new chunk stream `csid` appeared while all slots of the per-csid table are in use
    /// (protocol notes §5 #8: refuse new slots).
    TooManyChunkStreams {
        /// The chunk stream id that found no slot.
        csid: u32,
    },
    /// The first chunk seen on `csid` has fmt 1, 2 or 3, which leave out fields no earlier
    /// header supplied (spec §5.3.1.2.1: fmt 0 "MUST be used at the start of a chunk stream").
    NoPreviousHeader {
        /// The chunk stream id.
        csid: u32,
        /// The chunk's fmt.
        fmt: u8,
    },
    /// A message of `len` bytes exceeds the `limit` (reader: its maximum message size, checked
    /// when the header arrives, before anything is buffered; writer: the 3-byte length field).
    MessageTooLarge {
        /// The announced message length.
        len: u32,
        /// The limit it exceeds.
        limit: u32,
    },
    /// The partial messages in flight on all chunk streams together need more than the
    /// reassembly arena: `needed` bytes for the new message, `available` left after compaction.
    ReassemblyBudgetExceeded {
        /// Bytes the new message needs.
        needed: u32,
        /// Bytes left in the arena.
        available: u32,
    },
    /// A fmt 0/1 header on `csid` changed the length or type of a message that was half read
    /// (ffmpeg `rtmppkt.c`: "RTMP packet size mismatch").
    HeaderChangedMidMessage {
        /// The chunk stream id.
        csid: u32,
    },
    /// A chunk size of 0, with bit 31 set, or above the configured cap (spec §5.4.1).
    InvalidChunkSize {
        /// The rejected size.
        size: u32,
    },
    /// A Set Chunk Size or Abort message whose payload could not be parsed.
    Control(MessageError),
    /// A chunk stream id outside 2..=65599 was given to a writer.
    InvalidCsid {
        /// The rejected id.
        csid: u32,
    },
    /// A writer was given a payload whose length differs from `header.length`.
    PayloadLength {
        /// The header's length field.
        header: u32,
        /// The payload's length.
        payload: usize,
    },
    /// The output buffer has `available` bytes, the chunks need `needed`.
    BufferFull {
        /// Bytes the chunks take.
        needed: usize,
        /// Bytes the caller's buffer has.
        available: usize,
    },
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChunkError::TooManyChunkStreams { csid } => {
                write!(f, "chunk stream {} exceeds the chunk stream table", csid)
            }
            ChunkError::NoPreviousHeader { csid, fmt } => write!(
                f,
                "fmt {} chunk on chunk stream {} without a previous header",
                fmt, csid
            ),
            ChunkError::MessageTooLarge { len, limit } => {
                write!(f, "message of {} bytes exceeds the limit of {}", len, limit)
            }
            ChunkError::ReassemblyBudgetExceeded { needed, available } => write!(
                f,
                "reassembly budget exceeded: {} bytes needed, {} available",
                needed, available
            ),
            ChunkError::HeaderChangedMidMessage { csid } => write!(
                f,
                "header changed a half-read message on chunk stream {}",
                csid
            ),
            ChunkError::InvalidChunkSize { size } => write!(f, "invalid chunk size {}", size),
            ChunkError::Control(e) => write!(f, "bad control message: {}", e),
            ChunkError::InvalidCsid { csid } => write!(f, "invalid chunk stream id {}", csid),
            ChunkError::PayloadLength { header, payload } => write!(
                f,
                "header length {} differs from payload length {}",
                header, payload
            ),
            ChunkError::BufferFull { needed, available } => write!(
                f,
                "output buffer too small: {} bytes needed, {} available",
                needed, available
            ),
        }
    }
}

impl From<MessageError> for ChunkError {
    fn from(e: MessageError) -> Self {
        ChunkError::Control(e)
    }
}

/// Checks a chunk size against spec §5.4.1 (1..=0x7FFFFFFF) and a cap.
fn validate_chunk_size(size: u32, cap: u32) -> Result<u32, ChunkError> {
    if size == 0 || size > MAX_CHUNK_SIZE || size > cap {
        Err(ChunkError::InvalidChunkSize { size })
    } else {
        Ok(size)
    }
}

/// Length of the basic header for `csid` (spec §5.3.1.1): 1 byte for 2..=63, 2 bytes for
/// 64..=319, 3 bytes above.
fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

/// Encodes the basic header of a chunk with `fmt` on `csid` (2..=65599, checked by callers).
fn basic_header(fmt: u8, csid: u32) -> ([u8; 3], usize) {
    let top = fmt << 6;
    // The 2- and 3-byte forms carry csid − 64, low byte first (spec §5.3.1.1).
    let [lo, hi, ..] = csid.wrapping_sub(64).to_le_bytes();
    match basic_header_len(csid) {
        1 => ([top | (csid as u8 & 0x3F), 0, 0], 1),
        2 => ([top, lo, 0], 2),
        _ => ([top | 1, lo, hi], 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_forms() {
        assert_eq!(basic_header(0, 2), ([0x02, 0, 0], 1));
        assert_eq!(basic_header(3, 63), ([0xFF, 0, 0], 1));
        assert_eq!(basic_header(1, 64), ([0x40, 0, 0], 2));
        assert_eq!(basic_header(2, 319), ([0x80, 0xFF, 0], 2));
        assert_eq!(basic_header(0, 320), ([0x01, 0x00, 0x01], 3));
        assert_eq!(basic_header(3, 65_599), ([0xC1, 0xFF, 0xFF], 3));
    }

    #[test]
    fn chunk_size_validation() {
        assert_eq!(validate_chunk_size(1, MAX_CHUNK_SIZE), Ok(1));
        assert_eq!(
            validate_chunk_size(MAX_CHUNK_SIZE, MAX_CHUNK_SIZE),
            Ok(MAX_CHUNK_SIZE)
        );
        for size in [0, 0x8000_0000, u32::MAX] {
            assert_eq!(
                validate_chunk_size(size, MAX_CHUNK_SIZE),
                Err(ChunkError::InvalidChunkSize { size })
            );
        }
        assert_eq!(
            validate_chunk_size(65_537, 65_536),
            Err(ChunkError::InvalidChunkSize { size: 65_537 })
        );
    }
}
