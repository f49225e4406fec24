//! One live stream: PCM periods in, FLV audio messages chunk-encoded once into the broadcast ring,
//! read by every player's cursor.

use zerocast_core::chunk::{encode_standalone, standalone_len, MessageHeader};
use zerocast_core::codec::{AdpcmSwf, CodecError, Encoder, PcmS16Le};
use zerocast_core::flv::{self, FlvError, Metadata, SoundFormat};
use zerocast_core::message;
use zerocast_core::ring::{Cursor, Ring};
use zerocast_core::session::{CSID_AUDIO, CSID_DATA, MEDIA_STREAM_ID};

use crate::config::Codec;

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

/// A live stream: encoder, ring and the metadata every new player is sent.
pub struct Broadcast {
    ring: Box<AudioRing>,
    encoder: Box<dyn Encoder>,
    header_byte: u8,
    rate: u32,
    channels: usize,
    /// PCM not yet encoded (ADPCM packets need certain frame counts), and the stream position
    /// of its first frame.
    pending: Vec<i16>,
    pending_position: u64,
    /// Scratch for one encoded tag body.
    body: Vec<u8>,
    /// `onMetaData`, chunk-encoded standalone on [`CSID_DATA`].
    metadata: Vec<u8>,
    /// Frames per message the encoder is fed.
    frames_per_message: usize,
}

impl Broadcast {
    /// A stream of `codec` at `rate` Hz and `channels`, one message per `frames_per_message`.
    pub fn new(
        codec: Codec,
        rate: u32,
        channels: u8,
        frames_per_message: usize,
    ) -> Result<Self, CodecError> {
        let (encoder, frames_per_message, bits_per_frame): (Box<dyn Encoder>, usize, u32) =
            match codec {
                Codec::Pcm => (
                    Box::new(PcmS16Le::new(rate, channels)?),
                    frames_per_message,
                    16 * u32::from(channels),
                ),
                Codec::Adpcm => {
                    let adpcm = AdpcmSwf::new(rate, channels, 4)?;
                    // Some counts leave padding bits decoders would read as an extra sample.
                    let fit = adpcm.fit_frames(frames_per_message);
                    (Box::new(adpcm), fit, 4 * u32::from(channels))
                }
                // The AAC and MP3 encoders are not built yet.
                Codec::Aac => return Err(not_built(SoundFormat::Aac)),
                Codec::Mp3 => return Err(not_built(SoundFormat::Mp3)),
            };
        let header = encoder.tag_header();
        let meta = Metadata {
            audiocodecid: header.format as u8,
            audiosamplerate: rate,
            audiosamplesize: 16,
            stereo: channels == 2,
            audiodatarate_kbps: f64::from(rate * bits_per_frame) / 1000.0,
        };
        let mut body = [0u8; 512];
        // The empty `videocodecid` object tells ffmpeg's flvdec no video will come, so players
        // start at once instead of probing for ~5 s (protocol-notes section 6).
        let len = flv::encode_on_metadata(&mut body, &meta, true)?;
        let metadata = standalone(CSID_DATA, message::DATA_AMF0, 0, &body[..len]);
        let max_body = 1 + encoder.max_encoded_len(frames_per_message * 2);
        Ok(Self {
            ring: new_ring(),
            header_byte: header.to_byte(),
            encoder,
            rate,
            channels: usize::from(channels),
            pending: Vec::with_capacity(frames_per_message * usize::from(channels) * 2),
            pending_position: 0,
            body: vec![0; max_body],
            metadata,
            frames_per_message,
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
    pub fn period(&mut self, pcm: &[i16], position: u64) -> Result<(), CodecError> {
        if self.pending.is_empty() {
            self.pending_position = position;
        }
        self.pending.extend_from_slice(pcm);
        loop {
            let frames = self.pending.len() / self.channels;
            if frames < self.frames_per_message {
                return Ok(());
            }
            self.encode(self.frames_per_message)?;
        }
    }

    /// Encodes what [`Self::period`] holds back for want of a whole message: at the end of the
    /// input (stdin EOF delivers a last, shorter period) that is the end of the stream, which
    /// players must get before the end-of-stream message. (An ADPCM count that does not fit
    /// its padding may decode to one extra frame at the very end.)
    pub fn finish(&mut self) -> Result<(), CodecError> {
        match self.pending.len() / self.channels {
            0 => Ok(()),
            frames => self.encode(frames),
        }
    }

    fn encode(&mut self, frames: usize) -> Result<(), CodecError> {
        let samples = frames * self.channels;
        let (first, rest) = self.body.split_at_mut(1);
        first[0] = self.header_byte;
        let n = self.encoder.encode(&self.pending[..samples], rest)?;
        let time_ms = self.pending_position * 1000 / u64::from(self.rate);
        let header = MessageHeader {
            csid: CSID_AUDIO,
            // RTMP timestamps are 32-bit milliseconds and wrap after 49.7 days (players handle it).
            timestamp: time_ms as u32,
            length: (1 + n) as u32,
            type_id: message::AUDIO,
            stream_id: MEDIA_STREAM_ID,
        };
        let body = &self.body[..1 + n];
        let len = standalone_len(CHUNK_SIZE, &header);
        self.ring
            .push_with(time_ms, len, |buf| {
                // The length was computed for exactly this header and body.
                let _ = encode_standalone(buf, CHUNK_SIZE, &header, body);
            })
            .map_err(|_| CodecError::OutputTooSmall {
                needed: len,
                available: RING_BYTES,
            })?;
        self.pending.drain(..samples);
        self.pending_position += frames as u64;
        Ok(())
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

/// The error for a codec whose encoder is not in this build.
fn not_built(format: SoundFormat) -> CodecError {
    CodecError::Flv(FlvError::UnsupportedSoundFormat { id: format as u8 })
}
