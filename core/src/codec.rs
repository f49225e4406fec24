//! Audio encoders that need no heap: 16-bit PCM little-endian passthrough and SWF ADPCM.
//!
//! Each encoder turns interleaved S16 frames into one FLV audio tag body (the bytes after the
//! tag header byte) and describes that header byte with [`TagFormat`]. The host calls
//! [`Encoder::encode`] once per message (e.g. 1024 frames, ~23 ms at 44.1 kHz), writes the header
//! byte and the body into the ring through the chunk encoder, and stamps the message with the
//! stream time it derives from the sample count.
//!
//! Only the legacy FLV sample rates can be signalled in the tag header (5512, 11025, 22050,
//! 44100 Hz: FLV spec v10.1 §E.4.2.1; ffmpeg's flvdec maps the 2-bit field to `44100 << n >> 3`),
//! and only mono or stereo, so the constructors refuse anything else.

use core::fmt;

mod adpcm;
mod pcm;

pub use adpcm::AdpcmSwf;
pub use pcm::PcmS16Le;

/// What an encoder could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CodecError {
    /// The FLV tag header can only signal 5512, 11025, 22050 or 44100 Hz for these formats.
    UnsupportedRate {
        /// The rate asked for.
        rate: u32,
    },
    /// FLV signals mono or stereo only.
    UnsupportedChannels {
        /// The channel count asked for.
        channels: u8,
    },
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

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedRate { rate } => write!(
                f,
                "sample rate {rate} Hz cannot be signalled in FLV (5512, 11025, 22050, 44100)"
            ),
            Self::UnsupportedChannels { channels } => {
                write!(f, "{channels} channels: FLV carries mono or stereo only")
            }
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

/// The FLV audio tag header byte an encoder's output needs (FLV spec v10.1 §E.4.2.1), as raw
/// field values: `SoundFormat(4) | SoundRate(2) | SoundSize(1) | SoundType(1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TagFormat {
    /// SoundFormat: 1 = ADPCM, 3 = PCM little-endian.
    pub sound_format: u8,
    /// SoundRate field: 0 = 5.5 kHz, 1 = 11 kHz, 2 = 22 kHz, 3 = 44 kHz.
    pub rate_bits: u8,
    /// SoundSize: 16-bit samples. The spec says compressed formats always decode to 16 bits, and
    /// ffmpeg's flvenc sets it for ADPCM too.
    pub sixteen_bit: bool,
    /// SoundType: stereo.
    pub stereo: bool,
}

impl TagFormat {
    /// The header byte. Fields are masked to their widths.
    pub fn to_byte(self) -> u8 {
        ((self.sound_format & 0x0F) << 4)
            | ((self.rate_bits & 0x03) << 2)
            | (u8::from(self.sixteen_bit) << 1)
            | u8::from(self.stereo)
    }

    /// Checks a rate and channel count against what FLV can signal.
    fn new(sound_format: u8, sample_rate: u32, channels: u8) -> Result<Self, CodecError> {
        let rate_bits = match sample_rate {
            5512 => 0,
            11_025 => 1,
            22_050 => 2,
            44_100 => 3,
            rate => return Err(CodecError::UnsupportedRate { rate }),
        };
        if !(1..=2).contains(&channels) {
            return Err(CodecError::UnsupportedChannels { channels });
        }
        Ok(Self {
            sound_format,
            rate_bits,
            sixteen_bit: true,
            stereo: channels == 2,
        })
    }

    /// Samples per frame.
    fn channels(self) -> u8 {
        1 + u8::from(self.stereo)
    }

    /// Number of whole frames in `pcm`, or `PartialFrame`.
    fn frames(self, pcm: &[i16]) -> Result<usize, CodecError> {
        let channels = self.channels();
        if pcm.len() % usize::from(channels) != 0 {
            return Err(CodecError::PartialFrame {
                samples: pcm.len(),
                channels,
            });
        }
        Ok(pcm.len() / usize::from(channels))
    }
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
    fn tag_header(&self) -> TagFormat;

    /// Encodes interleaved S16 samples (whole frames) into `out` (one FLV audio tag body, without
    /// the tag header byte); returns the length written. Nothing is written on error.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// The most bytes [`Encoder::encode`] writes for `frames` frames: size `out` with this.
    fn max_encoded_len(&self, frames: usize) -> usize;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_format_bytes_match_ffmpeg_flvenc() {
        // ffmpeg 5.1 `-c:a pcm_s16le -ar 44100 -ac 2 -f flv` writes 0x3F; adpcm_swf 44.1k stereo 0x1F.
        assert_eq!(TagFormat::new(3, 44_100, 2).unwrap().to_byte(), 0x3F);
        assert_eq!(TagFormat::new(1, 44_100, 2).unwrap().to_byte(), 0x1F);
        assert_eq!(TagFormat::new(1, 22_050, 1).unwrap().to_byte(), 0x1A);
        assert_eq!(TagFormat::new(3, 5512, 1).unwrap().to_byte(), 0x32);
    }

    #[test]
    fn tag_format_refuses_what_flv_cannot_signal() {
        assert_eq!(
            TagFormat::new(3, 48_000, 2),
            Err(CodecError::UnsupportedRate { rate: 48_000 })
        );
        assert_eq!(
            TagFormat::new(3, 44_100, 0),
            Err(CodecError::UnsupportedChannels { channels: 0 })
        );
        assert_eq!(
            TagFormat::new(3, 44_100, 3),
            Err(CodecError::UnsupportedChannels { channels: 3 })
        );
    }
}
