//! RTMP message type ids and the protocol control / user control messages.
//!
//! Protocol control messages (types 1–6) are defined in RTMP spec §5.4; user control messages
//! (type 4) and their events in §6.2 and §7.1.7. Only the payload is handled here: the chunk
//! header around it is [`crate::chunk`]'s business. All multi-byte fields are big-endian
//! (spec §4).

use core::fmt;

/// Set Chunk Size (spec §5.4.1): 4 bytes, the new maximum chunk payload size of the sender.
pub const SET_CHUNK_SIZE: u8 = 1;
/// Abort Message (spec §5.4.2): 4 bytes, the chunk stream id whose partial message to drop.
pub const ABORT: u8 = 2;
/// Acknowledgement (spec §5.4.3): 4 bytes, the number of bytes received so far.
pub const ACKNOWLEDGEMENT: u8 = 3;
/// User Control Message (spec §6.2): 2-byte event type followed by event data.
pub const USER_CONTROL: u8 = 4;
/// Window Acknowledgement Size (spec §5.4.4): 4 bytes.
pub const WINDOW_ACK_SIZE: u8 = 5;
/// Set Peer Bandwidth (spec §5.4.5): 4-byte window size and a 1-byte limit type.
pub const SET_PEER_BANDWIDTH: u8 = 6;
/// Audio data (spec §7.1.4): one FLV audio tag body.
pub const AUDIO: u8 = 8;
/// Video data (spec §7.1.5): one FLV video tag body.
pub const VIDEO: u8 = 9;
/// Data message encoded in AMF3 (spec §7.1.2).
pub const DATA_AMF3: u8 = 15;
/// Shared object message encoded in AMF3 (spec §7.1.3).
pub const SHARED_OBJECT_AMF3: u8 = 16;
/// Command message encoded in AMF3 (spec §7.1.1).
pub const COMMAND_AMF3: u8 = 17;
/// Data message encoded in AMF0, e.g. `@setDataFrame` / `onMetaData` (spec §7.1.2).
pub const DATA_AMF0: u8 = 18;
/// Shared object message encoded in AMF0 (spec §7.1.3).
pub const SHARED_OBJECT_AMF0: u8 = 19;
/// Command message encoded in AMF0, e.g. `connect`, `publish` (spec §7.1.1).
pub const COMMAND_AMF0: u8 = 20;
/// Aggregate message: a sequence of FLV-tag-like sub-messages (spec §7.1.6).
pub const AGGREGATE: u8 = 22;

/// Set Peer Bandwidth limit type "Hard": the peer should limit its output to the window size.
pub const LIMIT_HARD: u8 = 0;
/// Set Peer Bandwidth limit type "Soft": limit to this window or the one in effect, the smaller.
pub const LIMIT_SOFT: u8 = 1;
/// Set Peer Bandwidth limit type "Dynamic": hard if the previous limit was hard, else ignored.
/// nginx-rtmp sends this one (protocol notes §2).
pub const LIMIT_DYNAMIC: u8 = 2;

/// What was wrong with a control message payload or an output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageError {
    /// The payload of message type `type_id` (for user control: of that event) is `len` bytes,
    /// fewer than the `needed` bytes its fields take.
    ShortPayload {
        /// Message type id (for user control messages: [`USER_CONTROL`]).
        type_id: u8,
        /// Bytes present.
        len: usize,
        /// Bytes the message needs.
        needed: usize,
    },
    /// The output buffer has `available` bytes, the message needs `needed`.
    BufferFull {
        /// Bytes the encoded message takes.
        needed: usize,
        /// Bytes the caller's buffer has.
        available: usize,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MessageError::ShortPayload {
                type_id,
                len,
                needed,
            } => write!(
                f,
                "message type {} has {} payload bytes, needs {}",
                type_id, len, needed
            ),
            MessageError::BufferFull { needed, available } => write!(
                f,
                "output buffer too small: {} bytes needed, {} available",
                needed, available
            ),
        }
    }
}

/// A protocol control message (types 1–6), parsed from or encoded to its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Control {
    /// Set Chunk Size (spec §5.4.1). The raw value: validating it (1..=0x7FFFFFFF) is the chunk
    /// reader's job, which applies it.
    SetChunkSize(u32),
    /// Abort Message (spec §5.4.2): drop the partial message on chunk stream `csid`.
    Abort {
        /// The chunk stream whose partial message is discarded.
        csid: u32,
    },
    /// Acknowledgement (spec §5.4.3): the sender has received `sequence` bytes in total.
    Acknowledgement {
        /// Bytes received so far (wraps at 2^32).
        sequence: u32,
    },
    /// Window Acknowledgement Size (spec §5.4.4): send an Acknowledgement every this many bytes.
    WindowAckSize(u32),
    /// Set Peer Bandwidth (spec §5.4.5).
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// Limit type: [`LIMIT_HARD`], [`LIMIT_SOFT`], [`LIMIT_DYNAMIC`] (other values kept raw).
        limit: u8,
    },
    /// User Control Message (spec §6.2, events §7.1.7).
    User(UserControl),
}

/// A user control event (message type 4, spec §7.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UserControl {
    /// Event 0: the stream with this id became functional (sent before play data).
    StreamBegin(u32),
    /// Event 1: playback on this stream ended.
    StreamEof(u32),
    /// Event 2: no more data on this stream for now.
    StreamDry(u32),
    /// Event 3: the client's buffer length for a stream (10-byte payload: event, id, millis).
    SetBufferLength {
        /// The message stream id the buffer is for (0 before createStream, librtmp sends that).
        stream_id: u32,
        /// Buffer length in milliseconds.
        millis: u32,
    },
    /// Event 4: the stream is a recorded stream.
    StreamIsRecorded(u32),
    /// Event 6: ping request carrying the sender's timestamp, to be echoed in a response.
    PingRequest(u32),
    /// Event 7: ping response echoing the request's timestamp.
    PingResponse(u32),
    /// Any other event (e.g. 0x1A SWF verification, 0x1F/0x20 buffer empty/ready of FMS): its
    /// data is not interpreted. Encoded as the bare 2-byte event type.
    Unknown {
        /// The event type.
        event: u16,
    },
}

// User control event types, spec §7.1.7.
const EVENT_STREAM_BEGIN: u16 = 0;
const EVENT_STREAM_EOF: u16 = 1;
const EVENT_STREAM_DRY: u16 = 2;
const EVENT_SET_BUFFER_LENGTH: u16 = 3;
const EVENT_STREAM_IS_RECORDED: u16 = 4;
const EVENT_PING_REQUEST: u16 = 6;
const EVENT_PING_RESPONSE: u16 = 7;

/// Reads the big-endian u32 at `at`, or reports the payload as too short for `needed` bytes.
fn be_u32(payload: &[u8], at: usize, type_id: u8, needed: usize) -> Result<u32, MessageError> {
    match payload.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(MessageError::ShortPayload {
            type_id,
            len: payload.len(),
            needed,
        }),
    }
}

/// Parses the payload of a message of type `type_id`.
///
/// Returns `Ok(None)` when `type_id` is not a control type (1–6), so a caller can feed every
/// message through it. Bytes beyond the fields are ignored, as ffmpeg (`rtmpproto.c`) and
/// nginx-rtmp do; fewer bytes than the fields need are [`MessageError::ShortPayload`].
pub fn parse_control(type_id: u8, payload: &[u8]) -> Result<Option<Control>, MessageError> {
    let word = |needed| be_u32(payload, 0, type_id, needed);
    let control = match type_id {
        SET_CHUNK_SIZE => Control::SetChunkSize(word(4)?),
        ABORT => Control::Abort { csid: word(4)? },
        ACKNOWLEDGEMENT => Control::Acknowledgement { sequence: word(4)? },
        WINDOW_ACK_SIZE => Control::WindowAckSize(word(4)?),
        SET_PEER_BANDWIDTH => {
            let size = word(5)?;
            let limit = *payload.get(4).ok_or(MessageError::ShortPayload {
                type_id,
                len: payload.len(),
                needed: 5,
            })?;
            Control::SetPeerBandwidth { size, limit }
        }
        USER_CONTROL => Control::User(UserControl::parse(payload)?),
        _ => return Ok(None),
    };
    Ok(Some(control))
}

impl UserControl {
    /// Parses a user control message payload (2-byte event type + event data).
    pub fn parse(payload: &[u8]) -> Result<Self, MessageError> {
        let event = match payload.get(0..2) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => {
                return Err(MessageError::ShortPayload {
                    type_id: USER_CONTROL,
                    len: payload.len(),
                    needed: 2,
                })
            }
        };
        let word = |at| be_u32(payload, at, USER_CONTROL, at + 4);
        Ok(match event {
            EVENT_STREAM_BEGIN => UserControl::StreamBegin(word(2)?),
            EVENT_STREAM_EOF => UserControl::StreamEof(word(2)?),
            EVENT_STREAM_DRY => UserControl::StreamDry(word(2)?),
            EVENT_SET_BUFFER_LENGTH => {
                // Check the full 10 bytes first so the error names the whole event's size.
                let millis = word(6)?;
                UserControl::SetBufferLength {
                    stream_id: word(2)?,
                    millis,
                }
            }
            EVENT_STREAM_IS_RECORDED => UserControl::StreamIsRecorded(word(2)?),
            EVENT_PING_REQUEST => UserControl::PingRequest(word(2)?),
            EVENT_PING_RESPONSE => UserControl::PingResponse(word(2)?),
            event => UserControl::Unknown { event },
        })
    }

    /// The event type, the event's 4-byte data words and how many of them it has.
    fn fields(&self) -> (u16, [u32; 2], usize) {
        match *self {
            UserControl::StreamBegin(v) => (EVENT_STREAM_BEGIN, [v, 0], 1),
            UserControl::StreamEof(v) => (EVENT_STREAM_EOF, [v, 0], 1),
            UserControl::StreamDry(v) => (EVENT_STREAM_DRY, [v, 0], 1),
            UserControl::SetBufferLength { stream_id, millis } => {
                (EVENT_SET_BUFFER_LENGTH, [stream_id, millis], 2)
            }
            UserControl::StreamIsRecorded(v) => (EVENT_STREAM_IS_RECORDED, [v, 0], 1),
            UserControl::PingRequest(v) => (EVENT_PING_REQUEST, [v, 0], 1),
            UserControl::PingResponse(v) => (EVENT_PING_RESPONSE, [v, 0], 1),
            UserControl::Unknown { event } => (event, [0, 0], 0),
        }
    }

    /// Writes this event's payload into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, MessageError> {
        let (event, words, count) = self.fields();
        let needed = 2 + 4 * count;
        let out = sized(buf, needed)?;
        let (head, tail) = out.split_at_mut(2);
        head.copy_from_slice(&event.to_be_bytes());
        for (dst, word) in tail.chunks_exact_mut(4).zip(words) {
            dst.copy_from_slice(&word.to_be_bytes());
        }
        Ok(needed)
    }
}

/// The first `needed` bytes of `buf`, or [`MessageError::BufferFull`].
fn sized(buf: &mut [u8], needed: usize) -> Result<&mut [u8], MessageError> {
    let available = buf.len();
    buf.get_mut(..needed)
        .ok_or(MessageError::BufferFull { needed, available })
}

impl Control {
    /// The RTMP message type id this control message is sent as.
    pub fn type_id(&self) -> u8 {
        match self {
            Control::SetChunkSize(_) => SET_CHUNK_SIZE,
            Control::Abort { .. } => ABORT,
            Control::Acknowledgement { .. } => ACKNOWLEDGEMENT,
            Control::WindowAckSize(_) => WINDOW_ACK_SIZE,
            Control::SetPeerBandwidth { .. } => SET_PEER_BANDWIDTH,
            Control::User(_) => USER_CONTROL,
        }
    }

    /// Writes the message payload (not the chunk header) into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, MessageError> {
        let (word, limit) = match *self {
            Control::SetChunkSize(v)
            | Control::Abort { csid: v }
            | Control::Acknowledgement { sequence: v }
            | Control::WindowAckSize(v) => (v, None),
            Control::SetPeerBandwidth { size, limit } => (size, Some(limit)),
            Control::User(user) => return user.encode(buf),
        };
        let [a, b, c, d] = word.to_be_bytes();
        let bytes = [a, b, c, d, limit.unwrap_or(0)];
        let len = if limit.is_some() { 5 } else { 4 };
        sized(buf, len)?.copy_from_slice(&bytes[..len]);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every control message with its payload bytes, written by hand from spec §5.4 / §7.1.7.
    const VECTORS: &[(Control, u8, &[u8])] = &[
        (Control::SetChunkSize(4096), 1, &[0, 0, 0x10, 0]),
        (Control::Abort { csid: 4 }, 2, &[0, 0, 0, 4]),
        (
            Control::Acknowledgement {
                sequence: 0x0102_0304,
            },
            3,
            &[1, 2, 3, 4],
        ),
        (
            Control::WindowAckSize(5_000_000),
            5,
            &[0x00, 0x4C, 0x4B, 0x40],
        ),
        (
            Control::SetPeerBandwidth {
                size: 5_000_000,
                limit: LIMIT_DYNAMIC,
            },
            6,
            &[0x00, 0x4C, 0x4B, 0x40, 2],
        ),
        (
            Control::User(UserControl::StreamBegin(1)),
            4,
            &[0, 0, 0, 0, 0, 1],
        ),
        (
            Control::User(UserControl::StreamEof(1)),
            4,
            &[0, 1, 0, 0, 0, 1],
        ),
        (
            Control::User(UserControl::StreamDry(2)),
            4,
            &[0, 2, 0, 0, 0, 2],
        ),
        // ffmpeg player, protocol notes §2: SetBufferLength(stream 1, 3000 ms).
        (
            Control::User(UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000,
            }),
            4,
            &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
        ),
        (
            Control::User(UserControl::StreamIsRecorded(1)),
            4,
            &[0, 4, 0, 0, 0, 1],
        ),
        (
            Control::User(UserControl::PingRequest(0xDEAD_BEEF)),
            4,
            &[0, 6, 0xDE, 0xAD, 0xBE, 0xEF],
        ),
        (
            Control::User(UserControl::PingResponse(0xDEAD_BEEF)),
            4,
            &[0, 7, 0xDE, 0xAD, 0xBE, 0xEF],
        ),
        (
            Control::User(UserControl::Unknown { event: 0x1F }),
            4,
            &[0, 0x1F],
        ),
    ];

    #[test]
    fn vectors_parse_and_encode_byte_exact() {
        for &(control, type_id, bytes) in VECTORS {
            assert_eq!(control.type_id(), type_id, "{:?}", control);
            assert_eq!(parse_control(type_id, bytes), Ok(Some(control)));
            let mut buf = [0xAAu8; 16];
            let n = control.encode(&mut buf).unwrap();
            assert_eq!(&buf[..n], bytes, "{:?}", control);
            // One byte short of room: typed error, nothing claimed written.
            assert_eq!(
                control.encode(&mut buf[..n - 1]),
                Err(MessageError::BufferFull {
                    needed: n,
                    available: n - 1
                })
            );
        }
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        for &(control, type_id, bytes) in VECTORS {
            if let Control::User(UserControl::Unknown { .. }) = control {
                continue; // covered below: an unknown event only needs its 2 type bytes
            }
            for len in 0..bytes.len() {
                assert_eq!(
                    parse_control(type_id, &bytes[..len]),
                    Err(MessageError::ShortPayload {
                        type_id,
                        len,
                        // A user control message first needs its 2-byte event type.
                        needed: if type_id == USER_CONTROL && len < 2 {
                            2
                        } else {
                            bytes.len()
                        },
                    }),
                    "{:?} cut to {}",
                    control,
                    len
                );
            }
        }
    }

    #[test]
    fn unknown_user_events_keep_their_number() {
        // 0x1A = SWF verification request (librtmp), 5 is unassigned; data is not interpreted.
        assert_eq!(
            parse_control(4, &[0, 0x1A, 0, 1, 2]),
            Ok(Some(Control::User(UserControl::Unknown { event: 0x1A })))
        );
        assert_eq!(
            parse_control(4, &[0, 5]),
            Ok(Some(Control::User(UserControl::Unknown { event: 5 })))
        );
        assert_eq!(
            parse_control(4, &[0]),
            Err(MessageError::ShortPayload {
                type_id: 4,
                len: 1,
                needed: 2
            })
        );
    }

    #[test]
    fn trailing_bytes_are_ignored_and_non_control_types_are_none() {
        assert_eq!(
            parse_control(1, &[0, 0, 0, 128, 9, 9]),
            Ok(Some(Control::SetChunkSize(128)))
        );
        for type_id in [
            0u8,
            7,
            AUDIO,
            VIDEO,
            DATA_AMF0,
            COMMAND_AMF0,
            AGGREGATE,
            0xFF,
        ] {
            assert_eq!(parse_control(type_id, &[0; 16]), Ok(None));
        }
    }

    #[test]
    fn display_names_the_problem() {
        use core::fmt::Write;
        let mut s = heapless::String::<96>::new();
        write!(
            s,
            "{}",
            MessageError::ShortPayload {
                type_id: 6,
                len: 4,
                needed: 5
            }
        )
        .unwrap();
        assert_eq!(s.as_str(), "message type 6 has 4 payload bytes, needs 5");
    }
}
