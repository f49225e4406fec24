//! A forgiving reader for the 16-bit PCM WAV files players write.
//!
//! Players are stopped with a signal, so headers are not always finalized: GStreamer's `wavenc`
//! behind `rtmpsrc` sometimes leaves the RIFF and `data` sizes at their placeholders
//! (protocol-notes section 4). The reader therefore walks the RIFF chunks, takes the `fmt ` chunk
//! it needs, and for `data` takes what is actually in the file: a size of 0 or 0xFFFFFFFF, or one
//! running past the end of the file, means "up to the end of the file"; a trailing partial frame
//! is dropped. Layout per the Microsoft RIFF/WAVE format (`WAVEFORMATEX`, `WAVE_FORMAT_EXTENSIBLE`).

use std::fmt;
use std::path::Path;

use super::HarnessError;

/// `wFormatTag` of plain PCM.
const FORMAT_PCM: u16 = 1;
/// `wFormatTag` of `WAVE_FORMAT_EXTENSIBLE`; the sub-format GUID then says PCM.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Placeholder sizes writers leave in a header they never finalized.
const UNFINALIZED_SIZES: [u32; 2] = [0, u32::MAX];

/// What makes a file unusable as 16-bit PCM WAV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavError {
    /// The file does not start with `RIFF....WAVE`.
    NotRiffWave,
    /// No complete `fmt ` chunk precedes the `data` chunk.
    MissingFormat,
    /// The format is not PCM (the `wFormatTag`).
    NotPcm {
        /// The format tag found.
        format_tag: u16,
    },
    /// Samples are not 16-bit.
    NotSixteenBit {
        /// Bits per sample found.
        bits: u16,
    },
    /// Channel count or sample rate is zero.
    EmptyFormat,
    /// There is no `data` chunk.
    MissingData,
}

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WavError::NotRiffWave => write!(f, "not a RIFF/WAVE file"),
            WavError::MissingFormat => write!(f, "no complete fmt chunk before the data"),
            WavError::NotPcm { format_tag } => write!(f, "format tag {format_tag:#06x} is not PCM"),
            WavError::NotSixteenBit { bits } => write!(f, "{bits}-bit samples, expected 16"),
            WavError::EmptyFormat => write!(f, "zero channels or zero sample rate"),
            WavError::MissingData => write!(f, "no data chunk"),
        }
    }
}

/// Decoded 16-bit audio.
#[derive(Clone, Debug, PartialEq)]
pub struct Wav {
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels per frame.
    pub channels: u16,
    /// Interleaved samples; always a whole number of frames.
    pub samples: Vec<i16>,
}

impl Wav {
    /// The last `secs` of the recording.
    pub fn tail(&self, secs: f64) -> Wav {
        let frames = (secs * f64::from(self.sample_rate)) as usize;
        let keep = frames.min(self.frames()) * usize::from(self.channels);
        Wav {
            sample_rate: self.sample_rate,
            channels: self.channels,
            samples: self.samples[self.samples.len() - keep..].to_vec(),
        }
    }

    /// The first `secs` of the recording after its leading silence (samples within ±300).
    pub fn head(&self, secs: f64) -> Wav {
        let ch = usize::from(self.channels);
        let start = self
            .samples
            .iter()
            .position(|s| s.unsigned_abs() > 300)
            .unwrap_or(0)
            / ch
            * ch;
        let n =
            ((secs * f64::from(self.sample_rate)) as usize * ch).min(self.samples.len() - start);
        Wav {
            sample_rate: self.sample_rate,
            channels: self.channels,
            samples: self.samples[start..start + n].to_vec(),
        }
    }

    /// Reads and parses a WAV file.
    pub fn read(path: &Path) -> Result<Wav, HarnessError> {
        let bytes = std::fs::read(path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        Wav::parse(&bytes).map_err(|error| HarnessError::Wav {
            path: path.to_owned(),
            error,
        })
    }

    /// Parses WAV bytes, tolerating unfinalized or lying sizes (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
        if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err(WavError::NotRiffWave);
        }
        let mut rest = bytes.get(12..).unwrap_or_default();
        let mut format: Option<(u32, u16)> = None;
        while let (Some(id), Some(size)) = (rest.get(0..4), rest.get(4..8).and_then(le_u32)) {
            let body = rest.get(8..).unwrap_or_default();
            if id == b"data" {
                let (sample_rate, channels) = format.ok_or(WavError::MissingFormat)?;
                let len = usize::try_from(size).unwrap_or(usize::MAX);
                let data = if UNFINALIZED_SIZES.contains(&size) || len > body.len() {
                    body
                } else {
                    body.get(..len).unwrap_or(body)
                };
                return Ok(Wav::from_s16le(data, sample_rate, channels));
            }
            let len = usize::try_from(size).unwrap_or(usize::MAX);
            let chunk = body.get(..len).ok_or(if id == b"fmt " {
                WavError::MissingFormat
            } else {
                WavError::MissingData
            })?;
            if id == b"fmt " {
                format = Some(parse_format(chunk)?);
            }
            // RIFF chunks are padded to an even length.
            rest = body.get(len.saturating_add(len & 1)..).unwrap_or_default();
        }
        Err(WavError::MissingData)
    }

    /// Builds from raw interleaved s16le bytes, dropping a trailing partial frame.
    fn from_s16le(data: &[u8], sample_rate: u32, channels: u16) -> Wav {
        let frame_bytes = 2 * usize::from(channels);
        let whole = data.len() - data.len() % frame_bytes;
        let samples = data
            .get(..whole)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        Wav {
            sample_rate,
            channels,
            samples,
        }
    }

    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels)
    }

    /// Length of the audio in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate)
    }

    /// The samples of one channel (0-based), or `None` if there is no such channel.
    pub fn channel(&self, index: usize) -> Option<Vec<i16>> {
        let channels = usize::from(self.channels);
        (index < channels).then(|| {
            self.samples
                .iter()
                .skip(index)
                .step_by(channels)
                .copied()
                .collect()
        })
    }
}

fn le_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn le_u16(b: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes(b.try_into().ok()?))
}

/// Parses `WAVEFORMATEX` (16 bytes needed): tag, channels, rate, byte rate, block align, bits.
/// The sub-format of `WAVE_FORMAT_EXTENSIBLE` is trusted to be PCM when the bit depth is 16:
/// no player here writes float in 16 bits.
fn parse_format(chunk: &[u8]) -> Result<(u32, u16), WavError> {
    let field16 = |at: usize| chunk.get(at..at + 2).and_then(le_u16);
    let (Some(tag), Some(channels), Some(rate), Some(bits)) = (
        field16(0),
        field16(2),
        chunk.get(4..8).and_then(le_u32),
        field16(14),
    ) else {
        return Err(WavError::MissingFormat);
    };
    if tag != FORMAT_PCM && tag != FORMAT_EXTENSIBLE {
        return Err(WavError::NotPcm { format_tag: tag });
    }
    if bits != 16 {
        return Err(WavError::NotSixteenBit { bits });
    }
    if channels == 0 || rate == 0 {
        return Err(WavError::EmptyFormat);
    }
    Ok((rate, channels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canonical 44-byte-header WAV; `riff_size`/`data_size` override the honest sizes.
    fn wav_bytes(
        tag: u16,
        bits: u16,
        channels: u16,
        rate: u32,
        extra_chunk: bool,
        data: &[u8],
        data_size: Option<u32>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        out.extend_from_slice(&(channels * 2).to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        if extra_chunk {
            // An odd-sized LIST chunk exercises the pad byte.
            out.extend_from_slice(b"LIST");
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(b"abc\0");
        }
        out.extend_from_slice(b"data");
        let size = data_size.unwrap_or(data.len() as u32);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(data);
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        out
    }

    /// Stereo frames (1, -2), (300, -32768) as bytes.
    const DATA: [u8; 8] = [1, 0, 0xFE, 0xFF, 0x2C, 0x01, 0x00, 0x80];

    #[test]
    fn parses_a_finalized_stereo_file() {
        let wav = Wav::parse(&wav_bytes(1, 16, 2, 44_100, false, &DATA, None)).unwrap();
        assert_eq!(wav.sample_rate, 44_100);
        assert_eq!(wav.channels, 2);
        assert_eq!(wav.samples, vec![1, -2, 300, -32768]);
        assert_eq!(wav.frames(), 2);
        assert_eq!(wav.channel(1), Some(vec![-2, -32768]));
        assert_eq!(wav.channel(2), None);
    }

    #[test]
    fn skips_other_chunks_with_their_pad_byte() {
        let wav = Wav::parse(&wav_bytes(0xFFFE, 16, 2, 48_000, true, &DATA, None)).unwrap();
        assert_eq!((wav.sample_rate, wav.samples.len()), (48_000, 4));
    }

    #[test]
    fn unfinalized_or_lying_data_size_takes_what_is_there() {
        for size in [0, u32::MAX, 1_000_000] {
            let wav = Wav::parse(&wav_bytes(1, 16, 2, 44_100, false, &DATA, Some(size))).unwrap();
            assert_eq!(wav.samples, vec![1, -2, 300, -32768], "data size {size}");
        }
        // An honest size shorter than the file wins over the bytes after it.
        let wav = Wav::parse(&wav_bytes(1, 16, 2, 44_100, false, &DATA, Some(4))).unwrap();
        assert_eq!(wav.samples, vec![1, -2]);
    }

    #[test]
    fn drops_a_trailing_partial_frame() {
        let wav = Wav::parse(&wav_bytes(1, 16, 2, 44_100, false, &DATA[..7], None)).unwrap();
        assert_eq!(wav.samples, vec![1, -2]);
        assert!((wav.duration_secs() - 1.0 / 44_100.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let ok = wav_bytes(1, 16, 2, 44_100, false, &DATA, None);
        assert_eq!(Wav::parse(b"RIFX"), Err(WavError::NotRiffWave));
        assert_eq!(Wav::parse(&ok[..30]), Err(WavError::MissingFormat));
        assert_eq!(Wav::parse(&ok[..36]), Err(WavError::MissingData));
        let float = wav_bytes(3, 32, 2, 44_100, false, &DATA, None);
        assert_eq!(Wav::parse(&float), Err(WavError::NotPcm { format_tag: 3 }));
        let eight = wav_bytes(1, 8, 2, 44_100, false, &DATA, None);
        assert_eq!(Wav::parse(&eight), Err(WavError::NotSixteenBit { bits: 8 }));
        let silent = wav_bytes(1, 16, 0, 44_100, false, &DATA, None);
        assert_eq!(Wav::parse(&silent), Err(WavError::EmptyFormat));
        // data before fmt
        let mut swapped = b"RIFF\0\0\0\0WAVEdata\x04\0\0\0\x01\0\x02\0".to_vec();
        swapped.extend_from_slice(&ok[12..36]);
        assert_eq!(Wav::parse(&swapped), Err(WavError::MissingFormat));
    }
}
