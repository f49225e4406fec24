//! 16-bit PCM, little-endian: SoundFormat 3. The samples go out unchanged.
//!
//! SoundFormat 3 rather than 0 ("platform endian"): ffmpeg's flvenc writes big-endian samples
//! under 0 while its flvdec reads 0 as little-endian, so 0 plays as noise in the clients measured
//! (protocol-notes §3); 3 is little-endian everywhere.

use super::{channels, output, whole_frames, BlockEncoder, CodecError};
use crate::flv::{AudioTagHeader, SoundFormat};

/// The PCM passthrough encoder: interleaved `i16` samples to little-endian bytes.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PcmS16Le {
    header: AudioTagHeader,
}

impl PcmS16Le {
    /// An encoder for `channels` (1 or 2) channels at `sample_rate` (5512, 11025, 22050 or
    /// 44100 Hz).
    pub fn new(sample_rate: u32, channels: u8) -> Result<Self, CodecError> {
        Ok(Self {
            header: AudioTagHeader::for_rate(SoundFormat::PcmLe, sample_rate, channels)?,
        })
    }
}

impl BlockEncoder for PcmS16Le {
    fn tag_header(&self) -> AudioTagHeader {
        self.header
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        whole_frames(self.header, pcm)?;
        let out = output(out, pcm.len().saturating_mul(2))?;
        for (dst, sample) in out.chunks_exact_mut(2).zip(pcm) {
            dst.copy_from_slice(&sample.to_le_bytes());
        }
        Ok(out.len())
    }

    fn max_encoded_len(&self, frames: usize) -> usize {
        frames.saturating_mul(2 * usize::from(channels(self.header)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_bytes() {
        let mut enc = PcmS16Le::new(44_100, 2).unwrap();
        let mut out = [0u8; 8];
        let n = enc.encode(&[1, -2, 0x1234, i16::MIN], &mut out).unwrap();
        assert_eq!(&out[..n], &[0x01, 0x00, 0xFE, 0xFF, 0x34, 0x12, 0x00, 0x80]);
        assert_eq!(enc.max_encoded_len(2), 8);
        assert_eq!(enc.tag_header().to_byte(), 0x3F);
    }

    #[test]
    fn refuses_partial_frames_and_small_buffers() {
        let mut enc = PcmS16Le::new(22_050, 2).unwrap();
        let mut out = [0u8; 8];
        assert_eq!(
            enc.encode(&[1, 2, 3], &mut out),
            Err(CodecError::PartialFrame {
                samples: 3,
                channels: 2
            })
        );
        assert_eq!(
            enc.encode(&[0; 6], &mut out),
            Err(CodecError::OutputTooSmall {
                needed: 12,
                available: 8
            })
        );
        assert_eq!(out, [0; 8]);
    }
}
