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
