//! RTMP sessions: the server side a player or publisher talks to, and a client (to push to other
//! servers and to test the server against).
//!
//! Both are sans-IO state machines in the quinn-proto style. The caller:
//! 1. passes every received byte to `receive(now, input)`, again with the unconsumed rest until it
//!    consumes nothing (one call yields at most one [`Event`], so no queue is needed);
//! 2. writes `transmit()` to the socket and reports what went out with `advance(n)`;
//! 3. answers decision events (`PlayRequested`, `PublishRequested`) with `accept_*` / `refuse_*`;
//! 4. sleeps until `poll_timeout()` and then calls `handle_timeout(now)`.
//!
//! An `Err` from any of these means the peer broke the protocol or went silent: log it and close
//! that one connection. Media to players does not pass through the session: the host sends it
//! from the broadcast [`ring`](crate::ring), chunk-encoded once for all players.

mod client;
mod link;
mod server;

pub use client::{ClientConfig, ClientEvent, ClientReceived, ClientRole, ClientSession};
pub use server::{Event, Received, Refusal, ServerConfig, ServerSession, ServerSessionIn};

use core::fmt;

use crate::chunk::{encode_standalone, standalone_len, ChunkError, MessageHeader};
use crate::command::CommandError;
use crate::handshake::HandshakeError;
use crate::message::MessageError;

/// Chunk stream id on which the server sends audio (and the host writes ring messages): nginx-rtmp
/// uses 6 for audio too.
pub const CSID_AUDIO: u32 = 6;

/// Chunk stream id the host uses for messages it writes beside the ring (metadata, the cached AAC
/// sequence header), always as standalone fmt-0 messages, so it never disturbs the header
/// compression state the session keeps for its own chunk streams.
pub const CSID_DATA: u32 = 7;

/// The message stream id of the one media stream a connection plays or publishes. Ring messages
/// are encoded once for every player, so they all carry this id.
pub const MEDIA_STREAM_ID: u32 = 1;

/// What a media message sent from the host (not through a session's transmit buffer) carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Media {
    /// An FLV audio tag body, on [`CSID_AUDIO`].
    Audio,
    /// An AMF0 data message (`onMetaData`), on [`CSID_DATA`].
    Data,
}

impl Media {
    fn header(self, timestamp: u32, length: usize) -> MessageHeader {
        let (csid, type_id) = match self {
            Self::Audio => (CSID_AUDIO, crate::message::AUDIO),
            Self::Data => (CSID_DATA, crate::message::DATA_AMF0),
        };
        MessageHeader {
            csid,
            timestamp,
            // Longer bodies are refused by `encode_media` (length field overflow).
            length: u32::try_from(length).unwrap_or(u32::MAX),
            type_id,
            stream_id: MEDIA_STREAM_ID,
        }
    }
}

/// The framing contract between the sessions and the host's rings, in one place: a media
/// message as a player (or a relay's upstream) receives it from the host — chunk stream
/// [`CSID_AUDIO`] or [`CSID_DATA`], message stream [`MEDIA_STREAM_ID`], a fmt-0 header with the
/// absolute `timestamp` and continuations every `chunk_size` bytes (the size the session
/// announced). Standalone, so a player can start at any message. Returns the bytes written,
/// which equal [`media_len`].
pub fn encode_media(
    buf: &mut [u8],
    chunk_size: u32,
    media: Media,
    timestamp: u32,
    body: &[u8],
) -> Result<usize, ChunkError> {
    encode_standalone(buf, chunk_size, &media.header(timestamp, body.len()), body)
}

/// The bytes [`encode_media`] writes for a body of `body_len` bytes.
pub fn media_len(chunk_size: u32, media: Media, timestamp: u32, body_len: usize) -> usize {
    standalone_len(chunk_size, &media.header(timestamp, body_len))
}

/// Longest application or stream name a session keeps (longer ones close the session).
pub const MAX_NAME: usize = 128;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionError {
    /// The handshake was malformed.
    Handshake(HandshakeError),
    /// The chunk stream was malformed.
    Chunk(ChunkError),
    /// A protocol control message was malformed.
    Message(MessageError),
    /// A command or data message was malformed.
    Command(CommandError),
    /// The handshake did not finish in time (slowloris defence: one deadline for all of it).
    HandshakeTimeout {
        /// The deadline, in milliseconds after the session started.
        millis: u64,
    },
    /// The peer sent nothing, not even an answer to a ping, for this long.
    IdleTimeout {
        /// Milliseconds since the last byte from the peer.
        millis: u64,
    },
    /// A second `connect` on the same connection (nginx-rtmp closes too).
    DuplicateConnect,
    /// An application or stream name longer than [`MAX_NAME`].
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// The peer does not read what it asks for: the session's transmit buffer is full.
    TransmitBufferFull {
        /// The buffer's capacity.
        capacity: usize,
    },
    /// The server refused the request (client side: an `_error` or an error status).
    Refused,
    /// A method was called in a state where it makes no sense (e.g. `accept_play` with no play
    /// request pending). The session itself is unharmed.
    InvalidState,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handshake(e) => write!(f, "handshake: {e}"),
            Self::Chunk(e) => write!(f, "chunk stream: {e}"),
            Self::Message(e) => write!(f, "control message: {e}"),
            Self::Command(e) => write!(f, "command: {e}"),
            Self::HandshakeTimeout { millis } => {
                write!(f, "handshake not finished within {millis} ms")
            }
            Self::IdleTimeout { millis } => write!(f, "peer silent for {millis} ms"),
            Self::DuplicateConnect => f.write_str("second connect on one connection"),
            Self::NameTooLong { len } => {
                write!(f, "name of {len} bytes is longer than {MAX_NAME}")
            }
            Self::TransmitBufferFull { capacity } => {
                write!(
                    f,
                    "peer does not read its replies ({capacity}-byte buffer full)"
                )
            }
            Self::Refused => f.write_str("refused by the server"),
            Self::InvalidState => f.write_str("call not allowed in the session's state"),
        }
    }
}

impl From<HandshakeError> for SessionError {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

impl From<ChunkError> for SessionError {
    fn from(e: ChunkError) -> Self {
        Self::Chunk(e)
    }
}

impl From<CommandError> for SessionError {
    fn from(e: CommandError) -> Self {
        Self::Command(e)
    }
}

/// Copies a peer-supplied name into fixed storage.
fn store_name(dst: &mut heapless::String<MAX_NAME>, name: &str) -> Result<(), SessionError> {
    dst.clear();
    dst.push_str(name)
        .map_err(|()| SessionError::NameTooLong { len: name.len() })
}

#[cfg(test)]
mod tests;
