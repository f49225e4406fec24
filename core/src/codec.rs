//! Audio encoders that need no heap: 16-bit PCM little-endian passthrough and SWF ADPCM, the
//! push-PCM / pull-packets shape every zerocast encoder has, and a 48 kHz to 44.1 kHz resampler.
//!
//! Two traits, two levels:
//! - [`BlockEncoder`]: whole frames in, one FLV audio tag body out (the bytes after the tag
//!   header byte). [`PcmS16Le`] and [`AdpcmSwf`] are block encoders: any frame count makes one
//!   packet (ADPCM: any count [`AdpcmSwf::fit_frames`] allows).
//! - [`Encoder`]: the shape real codecs have. PCM goes in in any amount ([`Encoder::push`]);
//!   packets of a fixed frame length come out ([`Encoder::pull`]), each with the stream position
//!   of its first decoded frame, the encoder's delay already taken off (AAC and MP3 decoders
//!   output priming samples first, so their first packets have negative positions). An encoder
//!   may have a sequence header that every player must get before its first packet (AAC's
//!   AudioSpecificConfig). [`Framed`] gives a block encoder that shape from a buffer the caller
//!   hands in; the Linux host's AAC (FDK) and MP3 (LAME) encoders implement [`Encoder`] directly.
//!
//! The host stamps each packet with `position * 1000 / rate` ms: stream time comes from the sample
//! count, never from a clock, so it cannot drift.
//!
//! Only the legacy FLV sample rates can be signalled in the tag header of PCM and ADPCM (5512,
//! 11025, 22050, 44100 Hz: FLV spec v10.1 §E.4.2.1; ffmpeg's flvdec maps the 2-bit field to
//! `44100 << n >> 3`), and only mono or stereo, so the constructors refuse anything else: the
//! header and those checks are [`AudioTagHeader::for_rate`]'s. [`Resampler`] takes 48 kHz
//! capture to 44.1 kHz for them.

use core::fmt;

use crate::flv::{AudioTagHeader, FlvError};

mod adpcm;
mod pcm;
mod resample;

pub use adpcm::AdpcmSwf;
pub use pcm::PcmS16Le;
pub use resample::Resampler;

/// What an encoder could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CodecError {
    /// The FLV audio tag header cannot signal this rate or channel count for the format
    /// ([`AudioTagHeader::for_rate`]).
    Flv(FlvError),
    /// SWF ADPCM codes are 2 to 5 bits wide.
    UnsupportedBits {
        /// The code size asked for.
        bits: u8,
    },
    /// The input is not a whole number of frames.
    PartialFrame {
        /// Samples given.
        samples: usize,
        /// Samples per frame.
        channels: u8,
    },
    /// The output buffer cannot hold the encoded message.
    OutputTooSmall {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// For this frame count the last byte of an SWF ADPCM packet would have padding bits that
    /// decoders read as one more sample (see [`AdpcmSwf::fit_frames`]).
    InexactFrameCount {
        /// Frames given.
        frames: usize,
        /// The largest frame count not above `frames` that decodes exactly.
        fit: usize,
    },
    /// A packet length of no frames (for ADPCM: none left after [`AdpcmSwf::fit_frames`]).
    EmptyFrameLength,
    /// An encoder built on a codec library (the Linux host's AAC and MP3) failed.
    EncoderFailed {
        /// The library's error code.
        code: i32,
    },
    /// The buffer handed to [`Framed::new`] cannot hold one packet's samples.
    FrameBufferTooSmall {
        /// Samples one packet needs.
        needed: usize,
        /// Samples the buffer has.
        available: usize,
    },
}

impl From<FlvError> for CodecError {
    fn from(e: FlvError) -> Self {
        CodecError::Flv(e)
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flv(e) => write!(f, "{e}"),
            Self::UnsupportedBits { bits } => {
                write!(f, "{bits}-bit codes: SWF ADPCM has 2 to 5 bits per code")
            }
            Self::PartialFrame { samples, channels } => write!(
                f,
                "{samples} samples are not a whole number of {channels}-channel frames"
            ),
            Self::OutputTooSmall { needed, available } => write!(
                f,
                "output buffer of {available} bytes is too small for {needed} bytes"
            ),
            Self::InexactFrameCount { frames, fit } => write!(
                f,
                "{frames} frames would leave padding decoded as an extra sample; use {fit}"
            ),
            Self::EncoderFailed { code } => {
                write!(f, "the encoder library failed with code {code}")
            }
            Self::EmptyFrameLength => write!(f, "a packet must hold at least one frame"),
            Self::FrameBufferTooSmall { needed, available } => write!(
                f,
                "frame buffer of {available} samples is too small for a packet of {needed}"
            ),
        }
    }
}

/// Samples per frame of audio described by `header`.
fn channels(header: AudioTagHeader) -> u8 {
    1 + u8::from(header.stereo)
}

/// Number of whole frames of audio described by `header` in `pcm`, or `PartialFrame`.
fn whole_frames(header: AudioTagHeader, pcm: &[i16]) -> Result<usize, CodecError> {
    let channels = channels(header);
    if pcm.len() % usize::from(channels) != 0 {
        return Err(CodecError::PartialFrame {
            samples: pcm.len(),
            channels,
        });
    }
    Ok(pcm.len() / usize::from(channels))
}

/// Checks that `out` can take `needed` bytes and returns exactly that much of it.
fn output(out: &mut [u8], needed: usize) -> Result<&mut [u8], CodecError> {
    let available = out.len();
    out.get_mut(..needed)
        .ok_or(CodecError::OutputTooSmall { needed, available })
}

/// A block encoder: whole frames in, one FLV audio tag body out, no state a packet length
/// depends on. The building block of [`Framed`].
pub trait BlockEncoder {
    /// The FLV audio tag header byte that goes before every body this encoder produces.
    fn tag_header(&self) -> AudioTagHeader;

    /// Encodes interleaved S16 samples (whole frames) into `out` (one FLV audio tag body, without
    /// the tag header byte); returns the length written. Nothing is written on error.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// The most bytes [`BlockEncoder::encode`] writes for `frames` frames: size `out` with this.
    fn max_encoded_len(&self, frames: usize) -> usize;

    /// The largest frame count not above `frames` that one packet can hold exactly (every count,
    /// unless the format says otherwise).
    fn fit_frames(&self, frames: usize) -> usize {
        frames
    }
}

/// A packet pulled from an [`Encoder`]: `len` bytes of FLV audio tag body in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Packet {
    /// Bytes written.
    pub len: usize,
    /// Stream position, in frames at the encoder's rate, of the first frame a decoder outputs
    /// for this packet, counted from the first frame pushed: the encoder delay is already
    /// taken off, so the first packets of a codec with priming samples are negative.
    pub position: i64,
    /// Frames the packet decodes to.
    pub frames: usize,
}

/// An audio encoder in the shape real codecs have: push PCM in any amount, pull packets of a
/// fixed frame length, each with its stream position.
///
/// Call order: [`Encoder::push`] what the capture gave, then [`Encoder::pull`] until it returns
/// `Ok(None)` (push again with what `push` did not take); at the end of the input
/// [`Encoder::finish`] once, then pull until `Ok(None)`.
pub trait Encoder {
    /// The FLV audio tag header byte that goes before every body.
    fn tag_header(&self) -> AudioTagHeader;

    /// Frames per packet (1024 for AAC-LC, 1152 for MPEG-1 layer III); the last packet after
    /// [`Encoder::finish`] may be shorter.
    fn frame_len(&self) -> usize;

    /// Frames a decoder outputs before the first pushed frame (priming): what
    /// [`Packet::position`] has taken off. Zero for PCM and ADPCM.
    fn delay(&self) -> usize;

    /// The sequence header body (after the tag header byte and, for AAC, the packet type byte)
    /// every player must get before its first packet, if the codec has one.
    fn sequence_header(&self) -> Option<&[u8]> {
        None
    }

    /// The most bytes one [`Encoder::pull`] writes: size its buffer with this.
    fn max_packet_len(&self) -> usize;

    /// Takes interleaved S16 samples (whole frames); returns how many samples it took, fewer
    /// than given when its buffer is full (pull, then push the rest).
    fn push(&mut self, pcm: &[i16]) -> Result<usize, CodecError>;

    /// Writes the next packet into `out`, or returns `Ok(None)` when more input is needed (or,
    /// after [`Encoder::finish`], when everything is out). Nothing is taken on error.
    fn pull(&mut self, out: &mut [u8]) -> Result<Option<Packet>, CodecError>;

    /// The end of the input: what is buffered comes out with the next pulls.
    fn finish(&mut self);
}

/// A [`BlockEncoder`] in the [`Encoder`] shape: pushed samples collect in `storage` (the
/// caller's, e.g. `[i16; N]` or a boxed slice) until a packet of `frame_len` frames is full.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Framed<B, S> {
    block: B,
    storage: S,
    /// Samples (not frames) per packet.
    packet_samples: usize,
    /// Samples collected.
    filled: usize,
    /// Frames pulled so far.
    position: u64,
    finishing: bool,
}

impl<B: BlockEncoder, S: AsRef<[i16]> + AsMut<[i16]>> Framed<B, S> {
    /// Packets of `frame_len` frames (for ADPCM, [`BlockEncoder::fit_frames`] of it) collected in
    /// `storage`, which must hold one packet's samples.
    pub fn new(block: B, frame_len: usize, storage: S) -> Result<Self, CodecError> {
        let frames = block.fit_frames(frame_len);
        if frames == 0 {
            return Err(CodecError::EmptyFrameLength);
        }
        let packet_samples = frames * usize::from(channels(block.tag_header()));
        let available = storage.as_ref().len();
        if available < packet_samples {
            return Err(CodecError::FrameBufferTooSmall {
                needed: packet_samples,
                available,
            });
        }
        Ok(Self {
            block,
            storage,
            packet_samples,
            filled: 0,
            position: 0,
            finishing: false,
        })
    }

    fn channels(&self) -> usize {
        usize::from(channels(self.block.tag_header()))
    }
}

impl<B: BlockEncoder, S: AsRef<[i16]> + AsMut<[i16]>> Encoder for Framed<B, S> {
    fn tag_header(&self) -> AudioTagHeader {
        self.block.tag_header()
    }

    fn frame_len(&self) -> usize {
        self.packet_samples / self.channels()
    }

    fn delay(&self) -> usize {
        0
    }

    fn max_packet_len(&self) -> usize {
        self.block.max_encoded_len(self.frame_len())
    }

    fn push(&mut self, pcm: &[i16]) -> Result<usize, CodecError> {
        whole_frames(self.block.tag_header(), pcm)?;
        let take = pcm.len().min(self.packet_samples - self.filled);
        let dst = self
            .storage
            .as_mut()
            .get_mut(self.filled..self.filled + take);
        let (Some(dst), Some(src)) = (dst, pcm.get(..take)) else {
            return Ok(0);
        };
        dst.copy_from_slice(src);
        self.filled += take;
        Ok(take)
    }

    fn pull(&mut self, out: &mut [u8]) -> Result<Option<Packet>, CodecError> {
        let frames = match self.filled / self.channels() {
            0 => return Ok(None),
            // At the end a last, shorter packet; ADPCM drops the under-8 frames it cannot pad.
            f if self.finishing => self.block.fit_frames(f),
            f if f * self.channels() == self.packet_samples => f,
            _ => return Ok(None),
        };
        if frames == 0 {
            self.filled = 0;
            return Ok(None);
        }
        let samples = frames * self.channels();
        let pcm = self.storage.as_ref().get(..samples).unwrap_or(&[]);
        let len = self.block.encode(pcm, out)?;
        let position = self.position as i64;
        self.position += frames as u64;
        self.filled = 0;
        Ok(Some(Packet {
            len,
            position,
            frames,
        }))
    }

    fn finish(&mut self) {
        self.finishing = true;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::flv::{SoundFormat, SoundRate};
    use std::{vec, vec::Vec};

    #[test]
    fn tag_header_bytes_match_ffmpeg_flvenc() {
        // ffmpeg 5.1 `-c:a pcm_s16le -ar 44100 -ac 2 -f flv` writes 0x3F; adpcm_swf 44.1k stereo 0x1F.
        let byte = |enc: &dyn BlockEncoder| enc.tag_header().to_byte();
        assert_eq!(byte(&PcmS16Le::new(44_100, 2).unwrap()), 0x3F);
        assert_eq!(byte(&AdpcmSwf::new(44_100, 2, 4).unwrap()), 0x1F);
        assert_eq!(byte(&AdpcmSwf::new(22_050, 1, 4).unwrap()), 0x1A);
        assert_eq!(byte(&PcmS16Le::new(5512, 1).unwrap()), 0x32);
        assert_eq!(
            AdpcmSwf::new(11_025, 1, 2).unwrap().tag_header(),
            AudioTagHeader {
                format: SoundFormat::Adpcm,
                rate: SoundRate::Khz11,
                sixteen_bit: true,
                stereo: false,
            }
        );
    }

    #[test]
    fn encoders_refuse_what_flv_cannot_signal() {
        assert_eq!(
            PcmS16Le::new(48_000, 2).map(|_| ()),
            Err(CodecError::Flv(FlvError::UnsupportedRate {
                format: SoundFormat::PcmLe,
                sample_rate: 48_000
            }))
        );
        assert_eq!(
            AdpcmSwf::new(44_100, 0, 4).map(|_| ()),
            Err(CodecError::Flv(FlvError::UnsupportedChannels {
                format: SoundFormat::Adpcm,
                channels: 0
            }))
        );
        assert_eq!(
            PcmS16Le::new(44_100, 3).map(|_| ()),
            Err(CodecError::Flv(FlvError::UnsupportedChannels {
                format: SoundFormat::PcmLe,
                channels: 3
            }))
        );
    }

    /// Pushes `pcm` in pieces of `piece` samples, pulls after every push, finishes; returns the
    /// packets and their positions.
    fn push_pull(enc: &mut dyn Encoder, pcm: &[i16], piece: usize) -> Vec<(i64, usize, Vec<u8>)> {
        let mut packets = Vec::new();
        let mut out = vec![0u8; enc.max_packet_len()];
        let mut drain = |enc: &mut dyn Encoder, packets: &mut Vec<_>| {
            while let Some(p) = enc.pull(&mut out).unwrap() {
                packets.push((p.position, p.frames, out[..p.len].to_vec()));
            }
        };
        for chunk in pcm.chunks(piece) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = enc.push(rest).unwrap();
                rest = &rest[n..];
                drain(enc, &mut packets);
            }
        }
        enc.finish();
        drain(enc, &mut packets);
        packets
    }

    #[test]
    fn framed_packets_are_the_blocks_whatever_the_pushes() {
        let pcm: Vec<i16> = (0..2 * 5000)
            .map(|i| (i * 7919 % 65536 - 32768) as i16)
            .collect();
        for piece in [2, 64, 882 * 2, 5000] {
            let mut enc =
                Framed::new(PcmS16Le::new(44_100, 2).unwrap(), 1024, vec![0; 2048]).unwrap();
            assert_eq!(
                (enc.frame_len(), enc.delay(), enc.max_packet_len()),
                (1024, 0, 4096)
            );
            assert_eq!(enc.sequence_header(), None);
            let packets = push_pull(&mut enc, &pcm, piece);
            // 4 whole packets and the last 904 frames.
            let frames: Vec<_> = packets.iter().map(|p| (p.0, p.1)).collect();
            assert_eq!(
                frames,
                [
                    (0, 1024),
                    (1024, 1024),
                    (2048, 1024),
                    (3072, 1024),
                    (4096, 904)
                ]
            );
            let bytes: Vec<u8> = packets.iter().flat_map(|p| p.2.clone()).collect();
            let expected: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
            assert_eq!(bytes, expected, "pieces of {piece}");
        }
        // ADPCM mono: packets of fit_frames(1024) = 1023, the last one fitted too (frames it
        // cannot pad are dropped at the very end).
        let mut enc =
            Framed::new(AdpcmSwf::new(44_100, 1, 4).unwrap(), 1024, [0i16; 1024]).unwrap();
        assert_eq!(enc.frame_len(), 1023);
        let packets = push_pull(&mut enc, &pcm[..2050], 100);
        let frames: Vec<_> = packets.iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(frames, [(0, 1023), (1023, 1023), (2046, 3)]);
        let mut block = AdpcmSwf::new(44_100, 1, 4).unwrap();
        let mut out = [0u8; 600];
        let n = block.encode(&pcm[..1023], &mut out).unwrap();
        assert_eq!(packets[0].2, &out[..n]);
    }

    #[test]
    fn framed_refuses_bad_lengths_partial_frames_and_small_outputs() {
        let pcm = PcmS16Le::new(44_100, 2).unwrap();
        assert_eq!(
            Framed::new(pcm, 1024, [0i16; 2047]).map(|_| ()),
            Err(CodecError::FrameBufferTooSmall {
                needed: 2048,
                available: 2047
            })
        );
        assert_eq!(
            Framed::new(pcm, 0, [0i16; 4]).map(|_| ()),
            Err(CodecError::EmptyFrameLength)
        );
        let mut enc = Framed::new(pcm, 2, [0i16; 4]).unwrap();
        assert_eq!(
            enc.push(&[1, 2, 3]),
            Err(CodecError::PartialFrame {
                samples: 3,
                channels: 2
            })
        );
        assert_eq!(enc.push(&[1, 2, 3, 4, 5, 6]), Ok(4));
        assert_eq!(enc.push(&[5, 6]), Ok(0));
        let mut small = [0u8; 7];
        assert_eq!(
            enc.pull(&mut small),
            Err(CodecError::OutputTooSmall {
                needed: 8,
                available: 7
            })
        );
        // Nothing was taken: the packet is still there.
        let mut out = [0u8; 8];
        assert_eq!(
            enc.pull(&mut out),
            Ok(Some(Packet {
                len: 8,
                position: 0,
                frames: 2
            }))
        );
        assert_eq!(enc.pull(&mut out), Ok(None));
    }
}
