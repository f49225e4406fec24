//! FLV audio framing: the audio tag header byte, the AAC packet type, `onMetaData`, and FLV
//! file header / tag header for writing `.flv` files or HTTP-FLV. Source: Adobe "Video File
//! Format Specification" v10.1 (§E.2 header, §E.4.1 tag, §E.4.2.1 AUDIODATA, §E.5 onMetaData),
//! checked against ffmpeg 5.1 `flvenc.c` / `flvdec.c` (protocol-notes §3 and §6).

use core::fmt;

use crate::amf0::{Amf0Error, Encoder};

/// FLV tag type of audio (§E.4.1).
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video (§E.4.1).
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data, e.g. `onMetaData` (§E.4.1).
pub const TAG_SCRIPT_DATA: u8 = 18;
/// Size of the FLV file header (§E.2) plus PreviousTagSize0.
pub const FILE_HEADER_LEN: usize = 13;
/// Size of an FLV tag header (§E.4.1).
pub const TAG_HEADER_LEN: usize = 11;
/// Largest tag body the 24-bit DataSize field can describe.
pub const MAX_TAG_DATA_SIZE: u32 = 0x00FF_FFFF;

/// SoundFormat, the high nibble of the audio tag header (§E.4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum SoundFormat {
    /// Linear PCM, platform endian: ffmpeg reads it as little-endian on x86/ARM but writes
    /// big-endian into it, which plays as noise (protocol-notes §3) — prefer [`Self::PcmLe`].
    PcmPlatform = 0,
    /// SWF ADPCM.
    Adpcm = 1,
    /// MP3.
    Mp3 = 2,
    /// Linear PCM, little-endian.
    PcmLe = 3,
    /// Nellymoser 16 kHz mono.
    Nellymoser16k = 4,
    /// Nellymoser 8 kHz mono.
    Nellymoser8k = 5,
    /// Nellymoser at the rate in the rate bits.
    Nellymoser = 6,
    /// G.711 A-law (8 kHz).
    G711ALaw = 7,
    /// G.711 µ-law (8 kHz).
    G711MuLaw = 8,
    /// AAC; the tag header is followed by an [`AacPacketType`] byte.
    Aac = 10,
    /// Speex (16 kHz mono).
    Speex = 11,
}

impl SoundFormat {
    /// The format for a SoundFormat nibble; 9 (reserved, E-RTMP ExHeader), 12, 13, 14 (MP3
    /// 8 kHz) and 15 (device specific) are not supported.
    pub fn from_id(id: u8) -> Result<Self, FlvError> {
        Ok(match id {
            0 => SoundFormat::PcmPlatform,
            1 => SoundFormat::Adpcm,
            2 => SoundFormat::Mp3,
            3 => SoundFormat::PcmLe,
            4 => SoundFormat::Nellymoser16k,
            5 => SoundFormat::Nellymoser8k,
            6 => SoundFormat::Nellymoser,
            7 => SoundFormat::G711ALaw,
            8 => SoundFormat::G711MuLaw,
            10 => SoundFormat::Aac,
            11 => SoundFormat::Speex,
            _ => return Err(FlvError::UnsupportedSoundFormat { id }),
        })
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            SoundFormat::PcmPlatform => "PCM (platform endian)",
            SoundFormat::Adpcm => "ADPCM",
            SoundFormat::Mp3 => "MP3",
            SoundFormat::PcmLe => "PCM little-endian",
            SoundFormat::Nellymoser16k => "Nellymoser 16 kHz",
            SoundFormat::Nellymoser8k => "Nellymoser 8 kHz",
            SoundFormat::Nellymoser => "Nellymoser",
            SoundFormat::G711ALaw => "G.711 A-law",
            SoundFormat::G711MuLaw => "G.711 mu-law",
            SoundFormat::Aac => "AAC",
            SoundFormat::Speex => "Speex",
        }
    }

    /// Sample rates FLV can carry this format at, for error messages.
    fn allowed_rates(self) -> &'static str {
        match self {
            SoundFormat::Aac => "any AAC rate",
            SoundFormat::Mp3 => "11025, 22050, 44100 or 48000 Hz",
            SoundFormat::Speex | SoundFormat::Nellymoser16k => "16000 Hz mono",
            SoundFormat::Nellymoser8k => "8000 Hz mono",
            SoundFormat::G711ALaw | SoundFormat::G711MuLaw => "8000 Hz",
            SoundFormat::PcmPlatform
            | SoundFormat::PcmLe
            | SoundFormat::Adpcm
            | SoundFormat::Nellymoser => {
                "5512, 11025, 22050 or 44100 Hz (resample or capture at 44100)"
            }
        }
    }
}

/// SoundRate, bits 3..2 of the audio tag header: the only rates the field can express.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum SoundRate {
    /// 5.5 kHz (5512 Hz; ffmpeg flvdec: `44100 << 0 >> 3`).
    Khz5_5 = 0,
    /// 11 kHz (11025 Hz).
    Khz11 = 1,
    /// 22 kHz (22050 Hz).
    Khz22 = 2,
    /// 44 kHz (44100 Hz).
    Khz44 = 3,
}

impl SoundRate {
    /// The rate in Hz a demuxer derives from these bits.
    pub fn hz(self) -> u32 {
        44_100 << (self as u8) >> 3
    }

    /// The rate bits for one of the four legacy rates.
    fn for_hz(hz: u32) -> Option<Self> {
        match hz {
            5_512 => Some(SoundRate::Khz5_5),
            11_025 => Some(SoundRate::Khz11),
            22_050 => Some(SoundRate::Khz22),
            44_100 => Some(SoundRate::Khz44),
            _ => None,
        }
    }
}

/// The first byte of every FLV audio tag body / RTMP audio message (§E.4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AudioTagHeader {
    /// SoundFormat.
    pub format: SoundFormat,
    /// SoundRate.
    pub rate: SoundRate,
    /// SoundSize: 16-bit samples (always set for compressed formats).
    pub sixteen_bit: bool,
    /// SoundType: stereo.
    pub stereo: bool,
}

impl AudioTagHeader {
    /// The header byte: format << 4 | rate << 2 | size << 1 | type.
    pub fn to_byte(self) -> u8 {
        (self.format as u8) << 4
            | (self.rate as u8) << 2
            | u8::from(self.sixteen_bit) << 1
            | u8::from(self.stereo)
    }

    /// Parses a header byte.
    pub fn from_byte(b: u8) -> Result<Self, FlvError> {
        let rate = match (b >> 2) & 3 {
            0 => SoundRate::Khz5_5,
            1 => SoundRate::Khz11,
            2 => SoundRate::Khz22,
            _ => SoundRate::Khz44,
        };
        Ok(Self {
            format: SoundFormat::from_id(b >> 4)?,
            rate,
            sixteen_bit: b & 2 != 0,
            stereo: b & 1 != 0,
        })
    }

    /// The header ffmpeg's flvenc (`get_audio_flags`) writes for 16-bit `format` audio at
    /// `sample_rate` with `channels`, or why FLV cannot carry it:
    /// - PCM / ADPCM / Nellymoser: only the four legacy rates (48 kHz is refused, as flvenc
    ///   does: "FLV does not support sample rate 48000").
    /// - AAC: always `AF` (44 kHz, 16-bit, stereo): the rate comes from the AudioSpecificConfig.
    /// - MP3: 48 kHz is flagged 44 kHz (the decoder reads the rate from the frame headers).
    /// - G.711: 8 kHz only, rate bits 0; Speex: 16 kHz mono, rate bits 11 kHz as flvenc writes;
    ///   Nellymoser 16k / 8k: mono at that rate, rate bits 0.
    ///
    /// SoundSize is always 16-bit (the codecs here take S16 input); build an 8-bit PCM header
    /// by hand.
    pub fn for_rate(format: SoundFormat, sample_rate: u32, channels: u8) -> Result<Self, FlvError> {
        if !(1..=2).contains(&channels) {
            return Err(FlvError::UnsupportedChannels { format, channels });
        }
        let unsupported_rate = FlvError::UnsupportedRate {
            format,
            sample_rate,
        };
        let mono_only = matches!(
            format,
            SoundFormat::Speex | SoundFormat::Nellymoser16k | SoundFormat::Nellymoser8k
        );
        if mono_only && channels != 1 {
            return Err(FlvError::UnsupportedChannels { format, channels });
        }
        let rate = match (format, sample_rate) {
            (SoundFormat::Aac, 0) => return Err(unsupported_rate),
            (SoundFormat::Aac, _) => {
                return Ok(Self {
                    format,
                    rate: SoundRate::Khz44,
                    sixteen_bit: true,
                    stereo: true,
                })
            }
            (SoundFormat::Mp3, 48_000 | 44_100) => SoundRate::Khz44,
            (SoundFormat::Mp3, 22_050) => SoundRate::Khz22,
            (SoundFormat::Mp3, 11_025) => SoundRate::Khz11,
            (SoundFormat::Speex, 16_000) => SoundRate::Khz11,
            (SoundFormat::Nellymoser16k, 16_000)
            | (SoundFormat::Nellymoser8k | SoundFormat::G711ALaw | SoundFormat::G711MuLaw, 8_000) => {
                SoundRate::Khz5_5
            }
            (
                SoundFormat::PcmPlatform
                | SoundFormat::PcmLe
                | SoundFormat::Adpcm
                | SoundFormat::Nellymoser,
                hz,
            ) => SoundRate::for_hz(hz).ok_or(unsupported_rate)?,
            _ => return Err(unsupported_rate),
        };
        Ok(Self {
            format,
            rate,
            sixteen_bit: true,
            stereo: channels == 2,
        })
    }
}

/// AACPacketType, the byte after an AAC audio tag header (§E.4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum AacPacketType {
    /// AudioSpecificConfig (ISO 14496-3); servers cache it for every new player.
    SequenceHeader = 0,
    /// One raw AAC frame, no ADTS header.
    Raw = 1,
}

/// What was wrong with FLV input or parameters, or why encoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlvError {
    /// A SoundFormat nibble this crate does not handle.
    UnsupportedSoundFormat {
        /// The nibble.
        id: u8,
    },
    /// FLV cannot express this sample rate for this format.
    UnsupportedRate {
        /// The format.
        format: SoundFormat,
        /// The rate asked for, in Hz.
        sample_rate: u32,
    },
    /// FLV cannot carry this channel count for this format.
    UnsupportedChannels {
        /// The format.
        format: SoundFormat,
        /// The channel count asked for.
        channels: u8,
    },
    /// An AAC packet type must be given for AAC and only for AAC.
    AacPacketTypeMismatch {
        /// The format of the header.
        format: SoundFormat,
    },
    /// A tag body larger than the 24-bit DataSize field.
    TagTooLarge {
        /// The body size.
        size: u32,
    },
    /// The output buffer is too small.
    BufferFull {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Encoding the AMF0 of `onMetaData` failed (buffer full).
    Amf0(Amf0Error),
}

impl From<Amf0Error> for FlvError {
    fn from(e: Amf0Error) -> Self {
        FlvError::Amf0(e)
    }
}

impl fmt::Display for FlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FlvError::UnsupportedSoundFormat { id } => {
                write!(f, "FLV SoundFormat {id} is not supported")
            }
            FlvError::UnsupportedRate {
                format,
                sample_rate,
            } => write!(
                f,
                "FLV cannot express {sample_rate} Hz for {}: it allows {}",
                format.name(),
                format.allowed_rates()
            ),
            FlvError::UnsupportedChannels { format, channels } => write!(
                f,
                "FLV cannot carry {channels} channels of {} (1 or 2; Speex and Nellymoser 8k/16k are mono)",
                format.name()
            ),
            FlvError::AacPacketTypeMismatch { format } => write!(
                f,
                "an AAC packet type goes with AAC only (header format: {})",
                format.name()
            ),
            FlvError::TagTooLarge { size } => write!(
                f,
                "FLV tag body of {size} bytes exceeds the 24-bit size field"
            ),
            FlvError::BufferFull { needed, available } => write!(
                f,
                "FLV encode buffer full: need {needed} bytes, {available} available"
            ),
            FlvError::Amf0(e) => write!(f, "FLV metadata: {e}"),
        }
    }
}

/// Copies `bytes` to the start of `buf`, or reports how much room was missing.
fn put(buf: &mut [u8], bytes: &[u8]) -> Result<usize, FlvError> {
    let available = buf.len();
    let out = buf.get_mut(..bytes.len()).ok_or(FlvError::BufferFull {
        needed: bytes.len(),
        available,
    })?;
    out.copy_from_slice(bytes);
    Ok(bytes.len())
}

/// Writes the audio tag header byte, plus the AACPacketType byte for AAC; returns 1 or 2.
pub fn encode_audio_tag_header(
    buf: &mut [u8],
    header: AudioTagHeader,
    aac: Option<AacPacketType>,
) -> Result<usize, FlvError> {
    match (header.format, aac) {
        (SoundFormat::Aac, Some(packet)) => put(buf, &[header.to_byte(), packet as u8]),
        (SoundFormat::Aac, None) | (_, Some(_)) => Err(FlvError::AacPacketTypeMismatch {
            format: header.format,
        }),
        (_, None) => put(buf, &[header.to_byte()]),
    }
}

/// What `onMetaData` announces about the audio (§E.5).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Metadata {
    /// SoundFormat id.
    pub audiocodecid: u8,
    /// Sample rate in Hz (the real one, e.g. 48000 for AAC).
    pub audiosamplerate: u32,
    /// Bits per sample (16).
    pub audiosamplesize: u8,
    /// Two channels.
    pub stereo: bool,
    /// Bit rate in kbit/s (ffmpeg writes kbit/s here too).
    pub audiodatarate_kbps: f64,
}

/// `"onMetaData"` + an ECMA array: duration 0 (live), audiocodecid, audiosamplerate,
/// audiosamplesize, stereo, audiodatarate, encoder "zerocast"; with `no_video`, `videocodecid`
/// as an empty object (`03 00 00 09`). ffmpeg 5.1's flvdec takes that as "no video will come"
/// and stops probing, so players start ~70 ms after the first audio instead of ~5 s later
/// (protocol-notes §6; it must be sent after the first audio message to take effect).
/// Returns the length written; the body goes out as a type-18 message / script tag as is.
pub fn encode_on_metadata(
    buf: &mut [u8],
    meta: &Metadata,
    no_video: bool,
) -> Result<usize, FlvError> {
    let mut e = Encoder::new(buf);
    e.string("onMetaData")?;
    e.ecma_array_start(if no_video { 8 } else { 7 })?;
    e.property_number("duration", 0.0)?;
    e.property_number("audiocodecid", f64::from(meta.audiocodecid))?;
    e.property_number("audiosamplerate", f64::from(meta.audiosamplerate))?;
    e.property_number("audiosamplesize", f64::from(meta.audiosamplesize))?;
    e.property_bool("stereo", meta.stereo)?;
    e.property_number("audiodatarate", meta.audiodatarate_kbps)?;
    e.property_string("encoder", "zerocast")?;
    if no_video {
        e.key("videocodecid")?;
        e.object_start()?;
        e.object_end()?;
    }
    e.object_end()?;
    Ok(e.len())
}

/// The FLV file header (§E.2: `FLV`, version 1, flags audio 0x04 / video 0x01, header size 9)
/// followed by PreviousTagSize0 = 0; returns [`FILE_HEADER_LEN`].
pub fn encode_file_header(
    buf: &mut [u8],
    has_audio: bool,
    has_video: bool,
) -> Result<usize, FlvError> {
    let flags = u8::from(has_audio) << 2 | u8::from(has_video);
    put(buf, &[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0])
}

/// An FLV tag header (§E.4.1): type, 24-bit DataSize, timestamp as 24 low bits + 8 high bits
/// (TimestampExtended), StreamID 0; returns [`TAG_HEADER_LEN`].
pub fn encode_tag_header(
    buf: &mut [u8],
    tag_type: u8,
    data_size: u32,
    timestamp: u32,
) -> Result<usize, FlvError> {
    if data_size > MAX_TAG_DATA_SIZE {
        return Err(FlvError::TagTooLarge { size: data_size });
    }
    let [_, s1, s2, s3] = data_size.to_be_bytes();
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    put(buf, &[tag_type, s1, s2, s3, t1, t2, t3, t0, 0, 0, 0])
}

/// The PreviousTagSize that follows a tag with a `data_size` body: header + body (§E.3).
pub fn previous_tag_size(data_size: u32) -> u32 {
    data_size.saturating_add(TAG_HEADER_LEN as u32)
}

/// Writes the 4-byte PreviousTagSize for a tag with a `data_size` body; returns 4.
pub fn encode_previous_tag_size(buf: &mut [u8], data_size: u32) -> Result<usize, FlvError> {
    if data_size > MAX_TAG_DATA_SIZE {
        return Err(FlvError::TagTooLarge { size: data_size });
    }
    put(buf, &previous_tag_size(data_size).to_be_bytes())
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::string::String;
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    #[test]
    fn header_bytes_for_each_format() {
        let cases = [
            // (format, rate, channels, byte) — bytes worked out from §E.4.2.1 and checked
            // against what ffmpeg 5.1 flvenc writes for the same parameters.
            (SoundFormat::PcmLe, 44_100, 2, 0x3F),
            (SoundFormat::PcmLe, 5_512, 1, 0x32),
            (SoundFormat::PcmPlatform, 22_050, 1, 0x0A),
            (SoundFormat::Adpcm, 44_100, 2, 0x1F),
            (SoundFormat::Adpcm, 11_025, 1, 0x16),
            (SoundFormat::Mp3, 48_000, 2, 0x2F),
            (SoundFormat::Mp3, 22_050, 1, 0x2A),
            (SoundFormat::Aac, 48_000, 1, 0xAF),
            (SoundFormat::Aac, 22_050, 2, 0xAF),
            (SoundFormat::Nellymoser16k, 16_000, 1, 0x42),
            (SoundFormat::Nellymoser8k, 8_000, 1, 0x52),
            (SoundFormat::Nellymoser, 22_050, 1, 0x6A),
            (SoundFormat::G711ALaw, 8_000, 1, 0x72),
            (SoundFormat::G711MuLaw, 8_000, 2, 0x83),
            (SoundFormat::Speex, 16_000, 1, 0xB6),
        ];
        for (format, rate, channels, byte) in cases {
            let h = AudioTagHeader::for_rate(format, rate, channels).unwrap();
            assert_eq!(h.to_byte(), byte, "{format:?} {rate} {channels}");
            assert_eq!(AudioTagHeader::from_byte(byte), Ok(h));
        }
        assert_eq!(SoundRate::Khz5_5.hz(), 5_512);
        assert_eq!(SoundRate::Khz11.hz(), 11_025);
        assert_eq!(SoundRate::Khz22.hz(), 22_050);
        assert_eq!(SoundRate::Khz44.hz(), 44_100);
    }

    #[test]
    fn from_byte_round_trips_or_names_the_format() {
        for b in 0..=255u8 {
            match AudioTagHeader::from_byte(b) {
                Ok(h) => assert_eq!(h.to_byte(), b),
                Err(e) => {
                    assert_eq!(e, FlvError::UnsupportedSoundFormat { id: b >> 4 });
                    assert!(matches!(b >> 4, 9 | 12..=15));
                }
            }
        }
    }

    #[test]
    fn rates_flv_cannot_express_are_refused() {
        for format in [
            SoundFormat::PcmLe,
            SoundFormat::Adpcm,
            SoundFormat::PcmPlatform,
        ] {
            assert_eq!(
                AudioTagHeader::for_rate(format, 48_000, 2),
                Err(FlvError::UnsupportedRate {
                    format,
                    sample_rate: 48_000
                })
            );
        }
        let mut text = String::new();
        core::fmt::write(
            &mut text,
            format_args!(
                "{}",
                AudioTagHeader::for_rate(SoundFormat::PcmLe, 48_000, 2).unwrap_err()
            ),
        )
        .unwrap();
        assert_eq!(
            text,
            "FLV cannot express 48000 Hz for PCM little-endian: it allows 5512, 11025, 22050 \
             or 44100 Hz (resample or capture at 44100)"
        );
        let refused = [
            (SoundFormat::Mp3, 8_000, 1),
            (SoundFormat::Mp3, 32_000, 2),
            (SoundFormat::G711ALaw, 16_000, 1),
            (SoundFormat::Speex, 8_000, 1),
            (SoundFormat::Nellymoser16k, 8_000, 1),
            (SoundFormat::Aac, 0, 2),
        ];
        for (format, sample_rate, channels) in refused {
            assert_eq!(
                AudioTagHeader::for_rate(format, sample_rate, channels),
                Err(FlvError::UnsupportedRate {
                    format,
                    sample_rate
                })
            );
        }
        for (format, channels) in [
            (SoundFormat::PcmLe, 0),
            (SoundFormat::PcmLe, 3),
            (SoundFormat::Speex, 2),
            (SoundFormat::Nellymoser8k, 2),
        ] {
            let rate = if format == SoundFormat::Speex {
                16_000
            } else {
                8_000
            };
            assert_eq!(
                AudioTagHeader::for_rate(format, rate, channels),
                Err(FlvError::UnsupportedChannels { format, channels })
            );
        }
    }

    #[test]
    fn audio_tag_header_and_aac_packet_type() {
        let aac = AudioTagHeader::for_rate(SoundFormat::Aac, 44_100, 2).unwrap();
        let pcm = AudioTagHeader::for_rate(SoundFormat::PcmLe, 44_100, 2).unwrap();
        let mut buf = [0u8; 2];
        assert_eq!(
            encode_audio_tag_header(&mut buf, aac, Some(AacPacketType::SequenceHeader)),
            Ok(2)
        );
        assert_eq!(buf, [0xAF, 0x00]);
        assert_eq!(
            encode_audio_tag_header(&mut buf, aac, Some(AacPacketType::Raw)),
            Ok(2)
        );
        assert_eq!(buf, [0xAF, 0x01]);
        assert_eq!(encode_audio_tag_header(&mut buf, pcm, None), Ok(1));
        assert_eq!(buf[0], 0x3F);
        assert_eq!(
            encode_audio_tag_header(&mut buf, aac, None),
            Err(FlvError::AacPacketTypeMismatch {
                format: SoundFormat::Aac
            })
        );
        assert_eq!(
            encode_audio_tag_header(&mut buf, pcm, Some(AacPacketType::Raw)),
            Err(FlvError::AacPacketTypeMismatch {
                format: SoundFormat::PcmLe
            })
        );
        assert_eq!(
            encode_audio_tag_header(&mut buf[..1], aac, Some(AacPacketType::Raw)),
            Err(FlvError::BufferFull {
                needed: 2,
                available: 1
            })
        );
    }

    const META: Metadata = Metadata {
        audiocodecid: 3,
        audiosamplerate: 44_100,
        audiosamplesize: 16,
        stereo: true,
        audiodatarate_kbps: 1411.2,
    };

    /// `onMetaData` for [`META`], written by hand from AMF0 §2.4, §2.10, §2.2, §2.3, §2.5.
    fn expected_metadata(no_video: bool) -> Vec<u8> {
        let parts: [&[u8]; 10] = [
            b"\x02\x00\x0aonMetaData",
            if no_video {
                b"\x08\x00\x00\x00\x08"
            } else {
                b"\x08\x00\x00\x00\x07"
            },
            b"\x00\x08duration\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\x00\x0caudiocodecid\x00\x40\x08\x00\x00\x00\x00\x00\x00",
            b"\x00\x0faudiosamplerate\x00\x40\xe5\x88\x80\x00\x00\x00\x00",
            b"\x00\x0faudiosamplesize\x00\x40\x30\x00\x00\x00\x00\x00\x00",
            b"\x00\x06stereo\x01\x01",
            b"\x00\x0daudiodatarate\x00\x40\x96\x0c\xcc\xcc\xcc\xcc\xcd",
            b"\x00\x07encoder\x02\x00\x08zerocast",
            if no_video {
                b"\x00\x0cvideocodecid\x03\x00\x00\x09"
            } else {
                b""
            },
        ];
        let mut v = parts.concat();
        v.extend_from_slice(&[0x00, 0x00, 0x09]);
        v
    }

    #[test]
    fn on_metadata_bytes() {
        for no_video in [false, true] {
            let mut buf = [0u8; 256];
            let n = encode_on_metadata(&mut buf, &META, no_video).unwrap();
            assert_eq!(buf[..n], expected_metadata(no_video));
            assert_eq!(
                crate::command::parse_data(&buf[..n]),
                Ok(crate::command::Data::OnMetaData { body: &buf[..n] })
            );
            for size in 0..n {
                assert!(matches!(
                    encode_on_metadata(&mut buf[..size], &META, no_video),
                    Err(FlvError::Amf0(Amf0Error::BufferFull { .. }))
                ));
            }
        }
    }

    #[test]
    fn file_and_tag_headers() {
        let mut buf = [0u8; 13];
        assert_eq!(
            encode_file_header(&mut buf, true, false),
            Ok(FILE_HEADER_LEN)
        );
        assert_eq!(buf, *b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00");
        encode_file_header(&mut buf, true, true).unwrap();
        assert_eq!(buf[4], 0x05);
        assert!(matches!(
            encode_file_header(&mut buf[..12], true, false),
            Err(FlvError::BufferFull {
                needed: 13,
                available: 12
            })
        ));
        let mut tag = [0u8; 11];
        assert_eq!(
            encode_tag_header(&mut tag, TAG_AUDIO, 0x01_0203, 0x1234_5678),
            Ok(TAG_HEADER_LEN)
        );
        assert_eq!(
            tag,
            [0x08, 0x01, 0x02, 0x03, 0x34, 0x56, 0x78, 0x12, 0x00, 0x00, 0x00]
        );
        assert_eq!(
            encode_tag_header(&mut tag, TAG_AUDIO, 0x0100_0000, 0),
            Err(FlvError::TagTooLarge { size: 0x0100_0000 })
        );
        let mut size = [0u8; 4];
        assert_eq!(encode_previous_tag_size(&mut size, 1765), Ok(4));
        assert_eq!(size, 1776u32.to_be_bytes());
        assert_eq!(previous_tag_size(MAX_TAG_DATA_SIZE), 0x0100_000A);
    }

    /// Appends one FLV tag (header, body, PreviousTagSize) to `file`.
    fn push_tag(file: &mut Vec<u8>, tag_type: u8, timestamp: u32, body: &[u8]) {
        let size = u32::try_from(body.len()).unwrap();
        let mut header = [0u8; TAG_HEADER_LEN];
        encode_tag_header(&mut header, tag_type, size, timestamp).unwrap();
        file.extend_from_slice(&header);
        file.extend_from_slice(body);
        let mut prev = [0u8; 4];
        encode_previous_tag_size(&mut prev, size).unwrap();
        file.extend_from_slice(&prev);
    }

    /// Runs an external tool with stdout to `stdout_path`, at most 30 s. `None` when the tool is
    /// not installed outside CI; in CI (`CI` set) a missing tool fails the test.
    fn run_tool(program: &str, args: &[&str], stdout_path: &Path) -> Option<()> {
        let stdout = std::fs::File::create(stdout_path).unwrap();
        let mut child = match Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{program} is required in CI"
                );
                std::eprintln!("skipping: {program} not installed");
                return None;
            }
            Err(e) => panic!("{program}: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{program} {args:?}: {status}");
                return Some(());
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{program} timed out");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn ffmpeg_decodes_a_written_flv_file() {
        const RATE: u32 = 44_100;
        const FRAMES_PER_TAG: u32 = 441; // 10 ms
        const TAGS: u32 = 100; // 1 s
        let mut file = std::vec![0u8; FILE_HEADER_LEN];
        encode_file_header(&mut file, true, false).unwrap();
        let mut meta = [0u8; 256];
        let n = encode_on_metadata(&mut meta, &META, true).unwrap();
        push_tag(&mut file, TAG_SCRIPT_DATA, 0, &meta[..n]);
        let header = AudioTagHeader::for_rate(SoundFormat::PcmLe, RATE, 2).unwrap();
        for t in 0..TAGS {
            let mut body = std::vec![0u8; 1];
            encode_audio_tag_header(&mut body, header, None).unwrap();
            for i in 0..FRAMES_PER_TAG {
                let k = f64::from(t * FRAMES_PER_TAG + i);
                let phase = 2.0 * core::f64::consts::PI * 440.0 * k / f64::from(RATE);
                let s = (phase.sin() * 16_000.0) as i16;
                body.extend_from_slice(&s.to_le_bytes()); // left
                body.extend_from_slice(&s.to_le_bytes()); // right
            }
            push_tag(&mut file, TAG_AUDIO, t * 10, &body);
        }
        let dir = std::env::temp_dir().join(std::format!("zerocast-flv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flv = dir.join("tone.flv");
        std::fs::write(&flv, &file).unwrap();
        let flv_arg = flv.to_str().unwrap();

        let probe_out = dir.join("probe.txt");
        let probe_args = [
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate,channels:format=duration:format_tags=encoder",
            "-of",
            "default=nw=1",
            flv_arg,
        ];
        if run_tool("ffprobe", &probe_args, &probe_out).is_none() {
            return;
        }
        let probe = std::fs::read_to_string(&probe_out).unwrap();
        let lines: Vec<&str> = probe.lines().collect();
        assert!(lines.contains(&"codec_name=pcm_s16le"), "{probe}");
        assert!(lines.contains(&"sample_rate=44100"), "{probe}");
        assert!(lines.contains(&"channels=2"), "{probe}");
        assert!(lines.contains(&"TAG:encoder=zerocast"), "{probe}");
        // The empty-object videocodecid must not make a video stream appear.
        assert_eq!(probe.matches("codec_name=").count(), 1, "{probe}");
        let duration: f64 = lines
            .iter()
            .find_map(|l| l.strip_prefix("duration="))
            .unwrap()
            .parse()
            .unwrap();
        assert!((duration - 1.0).abs() < 0.02, "{duration}");

        let raw = dir.join("tone.raw");
        let decode_args = [
            "-v",
            "error",
            "-y",
            "-i",
            flv_arg,
            "-f",
            "s16le",
            "-acodec",
            "pcm_s16le",
            raw.to_str().unwrap(),
        ];
        if run_tool("ffmpeg", &decode_args, &dir.join("ffmpeg.txt")).is_none() {
            return;
        }
        let pcm = std::fs::read(&raw).unwrap();
        assert_eq!(pcm.len(), 44_100 * 4);
        let left: Vec<i16> = pcm
            .chunks_exact(4)
            .map(|f| i16::from_le_bytes([f[0], f[1]]))
            .collect();
        let rising = left.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!((439..=441).contains(&rising), "{rising} cycles in 1 s");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
