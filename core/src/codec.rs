//! Audio encoders that need no heap: 16-bit PCM little-endian passthrough and SWF ADPCM.
//!
//! Each encoder turns interleaved S16 frames into one FLV audio tag body (the bytes after the
//! tag header byte) and describes that header byte with an [`AudioTagHeader`]. The host calls
//! [`Encoder::encode`] once per message (e.g. 1024 frames, ~23 ms at 44.1 kHz), writes the header
//! byte and the body into the ring through the chunk encoder, and stamps the message with the
//! stream time it derives from the sample count.
//!
//! Only the legacy FLV sample rates can be signalled in the tag header (5512, 11025, 22050,
//! 44100 Hz: FLV spec v10.1 §E.4.2.1; ffmpeg's flvdec maps the 2-bit field to `44100 << n >> 3`),
//! and only mono or stereo, so the constructors refuse anything else: the header and those checks
//! are [`AudioTagHeader::for_rate`]'s.

use core::fmt;

use crate::flv::{AudioTagHeader, FlvError};

mod adpcm;
mod pcm;

pub use adpcm::AdpcmSwf;
pub use pcm::PcmS16Le;

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

/// An audio encoder producing FLV audio tag bodies.
pub trait Encoder {
    /// The FLV audio tag header byte that goes before every body this encoder produces.
    fn tag_header(&self) -> AudioTagHeader;

    /// Encodes interleaved S16 samples (whole frames) into `out` (one FLV audio tag body, without
    /// the tag header byte); returns the length written. Nothing is written on error.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// The most bytes [`Encoder::encode`] writes for `frames` frames: size `out` with this.
    fn max_encoded_len(&self, frames: usize) -> usize;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{SoundFormat, SoundRate};

    #[test]
    fn tag_header_bytes_match_ffmpeg_flvenc() {
        // ffmpeg 5.1 `-c:a pcm_s16le -ar 44100 -ac 2 -f flv` writes 0x3F; adpcm_swf 44.1k stereo 0x1F.
        let byte = |enc: &dyn Encoder| enc.tag_header().to_byte();
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
}
