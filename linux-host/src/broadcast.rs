//! The local capture as a publisher: PCM periods in, FLV audio tag bodies out, each with its
//! stream time taken from the sample count (never the wall clock). The bodies take the same path
//! into a [`Stream`](crate::stream::Stream) as a peer's audio.

use zerocast_core::codec::{AdpcmSwf, CodecError, Encoder, PcmS16Le};
use zerocast_core::flv::{self, FlvError, Metadata, SoundFormat};

use crate::config::Codec;

/// The capture's encoder and what a stream needs to know of it.
pub struct CaptureEncoder {
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
    /// `onMetaData` as an AMF0 body.
    metadata: Vec<u8>,
    /// Frames per message the encoder is fed.
    frames_per_message: usize,
}

impl CaptureEncoder {
    /// An encoder of `codec` at `rate` Hz and `channels`, one message per `frames_per_message`.
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
        let max_body = 1 + encoder.max_encoded_len(frames_per_message * 2);
        Ok(Self {
            header_byte: header.to_byte(),
            encoder,
            rate,
            channels: usize::from(channels),
            pending: Vec::with_capacity(frames_per_message * usize::from(channels) * 2),
            pending_position: 0,
            body: vec![0; max_body],
            metadata: body[..len].to_vec(),
            frames_per_message,
        })
    }

    /// `onMetaData` as an AMF0 body.
    pub fn metadata(&self) -> &[u8] {
        &self.metadata
    }

    /// Feeds one capture period; `position` is the stream position of its first frame. Every
    /// whole message goes to `out` with its stream time in milliseconds.
    pub fn period(
        &mut self,
        pcm: &[i16],
        position: u64,
        out: &mut dyn FnMut(u32, &[u8]),
    ) -> Result<(), CodecError> {
        if self.pending.is_empty() {
            self.pending_position = position;
        }
        self.pending.extend_from_slice(pcm);
        loop {
            let frames = self.pending.len() / self.channels;
            if frames < self.frames_per_message {
                return Ok(());
            }
            self.encode(self.frames_per_message, out)?;
        }
    }

    /// Encodes what [`Self::period`] holds back for want of a whole message: at the end of the
    /// input (stdin EOF delivers a last, shorter period) that is the end of the stream, which
    /// players must get before the end-of-stream message. (An ADPCM count that does not fit
    /// its padding may decode to one extra frame at the very end.)
    pub fn finish(&mut self, out: &mut dyn FnMut(u32, &[u8])) -> Result<(), CodecError> {
        match self.pending.len() / self.channels {
            0 => Ok(()),
            frames => self.encode(frames, out),
        }
    }

    fn encode(&mut self, frames: usize, out: &mut dyn FnMut(u32, &[u8])) -> Result<(), CodecError> {
        let samples = frames * self.channels;
        let (first, rest) = self.body.split_at_mut(1);
        first[0] = self.header_byte;
        let n = self.encoder.encode(&self.pending[..samples], rest)?;
        let time_ms = self.pending_position * 1000 / u64::from(self.rate);
        // RTMP timestamps are 32-bit milliseconds and wrap after 49.7 days (players handle it).
        out(time_ms as u32, &self.body[..1 + n]);
        self.pending.drain(..samples);
        self.pending_position += frames as u64;
        Ok(())
    }
}

/// The error for a codec whose encoder is not in this build.
fn not_built(format: SoundFormat) -> CodecError {
    CodecError::Flv(FlvError::UnsupportedSoundFormat { id: format as u8 })
}
