//! One live stream: PCM periods in, FLV audio messages chunk-encoded once into the broadcast ring,
//! read by every player's cursor.

use zerocast_core::chunk::{encode_standalone, standalone_len, MessageHeader};
use zerocast_core::flv;
use zerocast_core::message;
use zerocast_core::ring::{Cursor, Ring};
use zerocast_core::session::{CSID_AUDIO, CSID_DATA, MEDIA_STREAM_ID};

use crate::config::Codec;
use crate::encode::{EncodeError, Rendition};

/// Bytes of pre-chunked audio the ring keeps: about 3 s of 44.1 kHz stereo PCM (176 kB/s),
/// far more of ADPCM. Bounds both the join buffer and how far a slow player may fall behind.
pub const RING_BYTES: usize = 512 * 1024;
/// Messages the ring indexes: 3 s of 5 ms periods.
pub const RING_SLOTS: usize = 600;

/// The ring type every player reads.
pub type AudioRing = Ring<RING_BYTES, RING_SLOTS>;

/// The outgoing chunk size, announced to every player at connect (nginx-rtmp's `chunk_size
/// 4096`): a 20 ms PCM period (3529 B) fits one chunk.
pub const CHUNK_SIZE: u32 = 4096;

/// A live stream: its rendition (encoder), ring, and what every new player is sent first.
pub struct Broadcast {
    ring: Box<AudioRing>,
    rendition: Rendition,
    /// `onMetaData`, chunk-encoded standalone on [`CSID_DATA`].
    metadata: Vec<u8>,
    /// The codec's sequence header (AAC), chunk-encoded standalone on [`CSID_AUDIO`]; empty
    /// when the codec has none.
    sequence_header: Vec<u8>,
}

impl Broadcast {
    /// A stream of `codec` at `rate` Hz and `channels` (AAC and MP3 at `bitrate_kbps`), PCM and
    /// ADPCM in one message per `frames_per_message`.
    pub fn new(
        codec: Codec,
        rate: u32,
        channels: u8,
        bitrate_kbps: u32,
        frames_per_message: usize,
    ) -> Result<Self, EncodeError> {
        let rendition = Rendition::new(codec, rate, channels, bitrate_kbps, frames_per_message)?;
        let mut body = [0u8; 512];
        // The empty `videocodecid` object tells ffmpeg's flvdec no video will come, so players
        // start at once instead of probing for ~5 s (protocol-notes section 6).
        let len = flv::encode_on_metadata(&mut body, &rendition.metadata(), true)
            .map_err(|e| EncodeError::Codec(e.into()))?;
        let metadata = standalone(CSID_DATA, message::DATA_AMF0, 0, &body[..len]);
        let sequence_header = rendition
            .sequence_header()
            .map(|body| standalone(CSID_AUDIO, message::AUDIO, 0, body))
            .unwrap_or_default();
        Ok(Self {
            ring: new_ring(),
            rendition,
            metadata,
            sequence_header,
        })
    }

    /// The ring players read.
    pub fn ring(&self) -> &AudioRing {
        &self.ring
    }

    /// `onMetaData` as a ready-to-send standalone message.
    pub fn metadata(&self) -> &[u8] {
        &self.metadata
    }

    /// The sequence header (AAC) as a ready-to-send standalone message, which a player must get
    /// before its first audio message; empty for codecs without one.
    pub fn sequence_header(&self) -> &[u8] {
        &self.sequence_header
    }

    /// Where a joining player starts: `join_ms` behind the newest message (the join buffer), so
    /// players that buffer before they start (VLC, PotPlayer) start at once.
    pub fn join_cursor(&self, join_ms: u64) -> Cursor {
        match self.ring.latest_time() {
            Some(latest) => self.ring.cursor_since(latest.saturating_sub(join_ms)),
            None => self.ring.cursor_at_head(),
        }
    }

    /// Feeds one capture period; `position` is the stream position of its first frame. Stream
    /// time comes from the sample count, never from the wall clock.
    pub fn period(&mut self, pcm: &[i16], position: u64) -> Result<(), EncodeError> {
        let ring = &mut self.ring;
        self.rendition.push(pcm, position, &mut |time, body| {
            push_audio(ring, time, body)
        })
    }

    /// Encodes what the rendition holds back (a partial message, the encoder's look-ahead): at
    /// the end of the input that is the end of the stream, which players must get before the
    /// end-of-stream message.
    pub fn finish(&mut self) -> Result<(), EncodeError> {
        let ring = &mut self.ring;
        self.rendition
            .finish(&mut |time, body| push_audio(ring, time, body))
    }
}

/// Chunk-encodes one audio tag body into the ring at `time_ms`.
fn push_audio(ring: &mut AudioRing, time_ms: u32, body: &[u8]) {
    let header = MessageHeader {
        csid: CSID_AUDIO,
        timestamp: time_ms,
        length: body.len() as u32,
        type_id: message::AUDIO,
        stream_id: MEDIA_STREAM_ID,
    };
    let len = standalone_len(CHUNK_SIZE, &header);
    let pushed = ring.push_with(u64::from(time_ms), len, |buf| {
        // The length was computed for exactly this header and body.
        let _ = encode_standalone(buf, CHUNK_SIZE, &header, body);
    });
    if pushed.is_err() {
        // A message larger than the whole ring: not possible for a period of audio.
        log::error!("an audio message of {len} bytes does not fit the ring of {RING_BYTES}");
    }
}

/// The ring on the heap (half a MiB; the 8 MiB main stack holds the temporary).
fn new_ring() -> Box<AudioRing> {
    Box::new(AudioRing::new())
}

/// A message chunk-encoded standalone (fmt 0 + continuations at [`CHUNK_SIZE`]).
pub fn standalone(csid: u32, type_id: u8, timestamp: u32, body: &[u8]) -> Vec<u8> {
    let header = MessageHeader {
        csid,
        timestamp,
        length: body.len() as u32,
        type_id,
        stream_id: MEDIA_STREAM_ID,
    };
    let mut out = vec![0; standalone_len(CHUNK_SIZE, &header)];
    let n = encode_standalone(&mut out, CHUNK_SIZE, &header, body).unwrap_or(0);
    out.truncate(n);
    out
}
