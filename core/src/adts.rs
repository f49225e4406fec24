//! ADTS framing for raw AAC frames: the 7-byte header (no CRC) that turns the frames an RTMP
//! publisher or the AAC encoder sends (FLV `AACPacketType` 1) into a self-describing `audio/aac`
//! stream, as served to Icecast-style HTTP listeners and put into HLS packed-audio segments.
//!
//! Sources: ISO/IEC 14496-3 §1.6.2.1 (AudioSpecificConfig) and §1.A.2.2 (`adts_fixed_header`,
//! `adts_variable_header`); ffmpeg 5.1 `adts_header.c` reads the same fields.

use core::fmt;

/// Length of an ADTS header without CRC (`protection_absent` = 1).
pub const HEADER_LEN: usize = 7;
/// Largest ADTS frame (13-bit `aac_frame_length`, header included).
pub const MAX_FRAME_LEN: usize = 0x1FFF;

/// What was wrong with an AudioSpecificConfig or an ADTS header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AdtsError {
    /// The AudioSpecificConfig ended before its channel configuration.
    ConfigTooShort {
        /// Bytes given.
        len: usize,
    },
    /// ADTS can carry only the object types 1–4 (Main, LC, SSR, LTP) in its 2-bit profile.
    ObjectTypeNotInAdts {
        /// The audio object type of the config.
        object_type: u8,
    },
    /// The sampling frequency is not one of the 13 indexed ones ADTS can signal.
    FrequencyNotIndexed {
        /// The frequency index, or 15 for an explicit frequency.
        index: u8,
    },
    /// Channel configuration 0 (a program config element in the stream) or above 7.
    ChannelConfigNotInAdts {
        /// The channel configuration.
        config: u8,
    },
    /// The frame does not fit the 13-bit length field.
    FrameTooLong {
        /// Payload length asked for.
        payload: usize,
    },
    /// The output buffer is shorter than [`HEADER_LEN`].
    BufferTooSmall,
    /// The bytes do not start with the ADTS sync word and layer 0.
    NoSync,
}

impl fmt::Display for AdtsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdtsError::ConfigTooShort { len } => {
                write!(f, "AudioSpecificConfig of {len} bytes is too short")
            }
            AdtsError::ObjectTypeNotInAdts { object_type } => {
                write!(f, "audio object type {object_type} cannot be sent in ADTS")
            }
            AdtsError::FrequencyNotIndexed { index } => {
                write!(f, "sampling frequency index {index} cannot be sent in ADTS")
            }
            AdtsError::ChannelConfigNotInAdts { config } => {
                write!(f, "channel configuration {config} cannot be sent in ADTS")
            }
            AdtsError::FrameTooLong { payload } => {
                write!(f, "AAC frame of {payload} bytes exceeds ADTS's 8191")
            }
            AdtsError::BufferTooSmall => f.write_str("buffer too small for an ADTS header"),
            AdtsError::NoSync => f.write_str("no ADTS sync word"),
        }
    }
}

/// The sampling frequencies by index (ISO/IEC 14496-3 Table 1.18).
const FREQUENCIES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// The fields of an AAC stream that ADTS repeats in every frame, read from an
/// AudioSpecificConfig (the FLV AAC sequence header's payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AdtsHeader {
    /// Audio object type (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling frequency index (4 = 44.1 kHz, 3 = 48 kHz).
    pub frequency_index: u8,
    /// Channel configuration (1 = mono, 2 = stereo).
    pub channel_config: u8,
}

impl AdtsHeader {
    /// Reads the object type, frequency index and channel configuration of an
    /// AudioSpecificConfig, and checks that ADTS can carry them.
    pub fn from_audio_specific_config(asc: &[u8]) -> Result<Self, AdtsError> {
        if asc.len() < 2 {
            return Err(AdtsError::ConfigTooShort { len: asc.len() });
        }
        let object_type = asc[0] >> 3;
        if !(1..=4).contains(&object_type) {
            // 31 escapes to a 6-bit type above 31: none of those is in ADTS either.
            return Err(AdtsError::ObjectTypeNotInAdts { object_type });
        }
        let frequency_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
        if usize::from(frequency_index) >= FREQUENCIES.len() {
            return Err(AdtsError::FrequencyNotIndexed {
                index: frequency_index,
            });
        }
        let channel_config = (asc[1] >> 3) & 0x0F;
        Self::new(object_type, frequency_index, channel_config)
    }

    fn new(object_type: u8, frequency_index: u8, channel_config: u8) -> Result<Self, AdtsError> {
        if !(1..=7).contains(&channel_config) {
            return Err(AdtsError::ChannelConfigNotInAdts {
                config: channel_config,
            });
        }
        Ok(Self {
            object_type,
            frequency_index,
            channel_config,
        })
    }

    /// The sampling frequency in Hz.
    pub fn sample_rate(&self) -> u32 {
        FREQUENCIES
            .get(usize::from(self.frequency_index))
            .copied()
            .unwrap_or(0)
    }

    /// Writes the header of a frame carrying `payload_len` bytes of raw AAC into `out`.
    /// Returns [`HEADER_LEN`].
    pub fn emit(&self, payload_len: usize, out: &mut [u8]) -> Result<usize, AdtsError> {
        let len = payload_len + HEADER_LEN;
        if len > MAX_FRAME_LEN {
            return Err(AdtsError::FrameTooLong {
                payload: payload_len,
            });
        }
        let out = out.get_mut(..HEADER_LEN).ok_or(AdtsError::BufferTooSmall)?;
        let profile = self.object_type - 1;
        let cc = self.channel_config;
        out[0] = 0xFF;
        // syncword low nibble, ID 0 (MPEG-4), layer 00, protection_absent 1
        out[1] = 0xF1;
        out[2] = (profile << 6) | (self.frequency_index << 2) | (cc >> 2);
        // 13-bit frame length; buffer fullness 0x7FF (VBR); one raw data block.
        out[3] = ((cc & 3) << 6) | (len >> 11) as u8;
        out[4] = (len >> 3) as u8;
        out[5] = (((len & 7) as u8) << 5) | 0x1F;
        out[6] = 0xFC;
        Ok(HEADER_LEN)
    }

    /// Reads an ADTS header (with or without CRC): the stream fields and the whole frame's
    /// length, header included.
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), AdtsError> {
        let b = bytes.get(..HEADER_LEN).ok_or(AdtsError::BufferTooSmall)?;
        if b[0] != 0xFF || b[1] & 0xF6 != 0xF0 {
            return Err(AdtsError::NoSync);
        }
        let frequency_index = (b[2] >> 2) & 0x0F;
        if usize::from(frequency_index) >= FREQUENCIES.len() {
            return Err(AdtsError::FrequencyNotIndexed {
                index: frequency_index,
            });
        }
        let channel_config = ((b[2] & 1) << 2) | (b[3] >> 6);
        let header = Self::new((b[2] >> 6) + 1, frequency_index, channel_config)?;
        let len = (usize::from(b[3] & 3) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
        Ok((header, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_44100_stereo_header_bytes() {
        // Worked by hand from §1.A.2.2: profile 1 (LC), index 4, channels 2, length 371,
        // fullness 0x7FF. The ffmpeg round trip is in tests/http_framing_ffmpeg.rs.
        let h = AdtsHeader::from_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(h.sample_rate(), 44_100);
        let mut out = [0u8; 7];
        assert_eq!(h.emit(364, &mut out), Ok(7));
        assert_eq!(out, [0xFF, 0xF1, 0x50, 0x80, 0x2E, 0x7F, 0xFC]);
        assert_eq!(AdtsHeader::parse(&out), Ok((h, 371)));
    }

    #[test]
    fn round_trip_every_indexed_rate_and_channel_config() {
        for object_type in 1..=4u8 {
            for fi in 0..13u8 {
                for cc in 1..=7u8 {
                    let asc = [(object_type << 3) | (fi >> 1), (fi << 7) | (cc << 3)];
                    let h = AdtsHeader::from_audio_specific_config(&asc).unwrap();
                    let mut out = [0u8; 7];
                    h.emit(MAX_FRAME_LEN - HEADER_LEN, &mut out).unwrap();
                    assert_eq!(AdtsHeader::parse(&out), Ok((h, MAX_FRAME_LEN)));
                }
            }
        }
    }

    #[test]
    fn configs_adts_cannot_carry_are_refused() {
        let he_aac = [0x2B, 0x92]; // object type 5 (SBR)
        assert_eq!(
            AdtsHeader::from_audio_specific_config(&he_aac),
            Err(AdtsError::ObjectTypeNotInAdts { object_type: 5 })
        );
        let explicit_rate = [0x17, 0x80, 0, 0, 0];
        assert_eq!(
            AdtsHeader::from_audio_specific_config(&explicit_rate),
            Err(AdtsError::FrequencyNotIndexed { index: 15 })
        );
        assert_eq!(
            AdtsHeader::from_audio_specific_config(&[0x12, 0x00]),
            Err(AdtsError::ChannelConfigNotInAdts { config: 0 })
        );
        assert_eq!(
            AdtsHeader::from_audio_specific_config(&[0x12]),
            Err(AdtsError::ConfigTooShort { len: 1 })
        );
        let h = AdtsHeader::from_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(
            h.emit(MAX_FRAME_LEN, &mut [0u8; 7]),
            Err(AdtsError::FrameTooLong {
                payload: MAX_FRAME_LEN
            })
        );
        assert_eq!(h.emit(1, &mut [0u8; 6]), Err(AdtsError::BufferTooSmall));
        assert_eq!(
            AdtsHeader::parse(&[0xFF, 0xFB, 0, 0, 0, 0, 0]),
            Err(AdtsError::NoSync)
        );
    }
}
