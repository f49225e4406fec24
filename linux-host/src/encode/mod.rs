//! One rendition of a stream: captured PCM in, FLV audio tag bodies with their timestamps out.
//!
//! ```text
//!  PCM period (S16, capture rate) ──> [Resampler 48 → 44.1 kHz: PCM, ADPCM, MP3 only]
//!        ──> Encoder (core: PCM, ADPCM through Framed; here: AAC via FDK, MP3 via LAME)
//!        ──> packets, each with its stream position ──> (timestamp ms, FLV audio tag body)
//! ```
//!
//! Every encoder has the core's push-PCM / pull-packets shape ([`zerocast_core::codec::Encoder`]),
//! so a [`Rendition`] treats them all alike: it adds the tag header byte (and AAC's packet type
//! byte), turns sample positions into milliseconds, and keeps the sequence header and the
//! metadata a new player must get first.
//!
//! Rates. AAC carries its rate in the AudioSpecificConfig, so it serves the capture rate as is.
//! FLV's legacy rate field cannot say 48 kHz for PCM, ADPCM or MP3, so a 48 kHz capture is
//! resampled to 44.1 kHz for them ([`zerocast_core::codec::Resampler`]): the header byte says
//! 44.1 kHz and so does the audio. `onMetaData` states the rate that is sent.
//!
//! Timestamps come from sample counts, never from a clock: a packet at position `p` (frames at
//! the rate sent, the encoder delay already taken off) of a capture that started at input frame
//! `origin` is at `origin / capture rate + p / sent rate` seconds, computed exactly from the two
//! integers each time, so hours of audio do not drift by a millisecond. Positions before the
//! start (an encoder's priming output) are stamped 0.

use std::fmt;

use zerocast_core::codec::{AdpcmSwf, CodecError, Encoder, Framed, Packet, PcmS16Le, Resampler};
use zerocast_core::flv::{AacPacketType, Metadata, SoundFormat};

use crate::config::Codec;

#[cfg(feature = "aac")]
mod aac;
#[cfg(feature = "mp3")]
mod mp3;

/// `--bitrate` when none is given, kbit/s (AAC and MP3).
pub const DEFAULT_BITRATE_KBPS: u32 = 128;

/// Encoder settings chosen by measured cost on the Pi Zero's ARM1176 (docs/benchmarks.md,
/// "Encoders on the ARM1176").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// FDK's afterburner (better quality per bit for about 2.4× the instructions): off.
    pub aac_afterburner: bool,
    /// LAME's `-q` (0 best and slowest, 9 fastest): 7.
    pub mp3_quality: u8,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            aac_afterburner: false,
            mp3_quality: 7,
        }
    }
}

/// Why a rendition could not be made or could not encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The core encoder refused its parameters or input.
    Codec(CodecError),
    /// This binary was built without the cargo feature the codec needs.
    FeatureMissing {
        /// The codec asked for.
        codec: Codec,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// The codec cannot be served at this capture rate.
    UnsupportedRate {
        /// The codec asked for.
        codec: Codec,
        /// The capture rate, Hz.
        rate: u32,
    },
    /// Only mono and stereo are served.
    UnsupportedChannels {
        /// Channels asked for.
        channels: u8,
    },
    /// The encoder library refused a bit rate.
    UnsupportedBitrate {
        /// The codec asked for.
        codec: Codec,
        /// The bit rate, kbit/s.
        kbps: u32,
    },
    /// The encoder library failed.
    Library {
        /// `fdk-aac` or `lame`.
        library: &'static str,
        /// The call that failed.
        call: &'static str,
        /// Its error code.
        code: i64,
    },
    /// The encoder gave bytes that are not MPEG audio frames.
    BadMp3Frame,
}

impl From<CodecError> for EncodeError {
    fn from(e: CodecError) -> Self {
        Self::Codec(e)
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Codec(e) => write!(f, "{e}"),
            Self::FeatureMissing { codec, feature } => write!(
                f,
                "--codec {codec} needs the `{feature}` cargo feature, which this zerocast was \
                 built without (cargo build --release --features {feature})"
            ),
            Self::UnsupportedRate { codec, rate } => write!(
                f,
                "codec {codec} cannot be served from {rate} Hz capture (use 44100, or 48000, \
                 which is resampled to 44100)"
            ),
            Self::UnsupportedChannels { channels } => {
                write!(f, "{channels} channels: only mono and stereo are served")
            }
            Self::UnsupportedBitrate { codec, kbps } => {
                write!(f, "codec {codec} cannot encode at {kbps} kbit/s")
            }
            Self::Library {
                library,
                call,
                code,
            } => write!(f, "{library}: {call} failed with code {code}"),
            Self::BadMp3Frame => {
                write!(f, "lame: output is not a stream of MPEG-1 layer III frames")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// PCM a library encoder was pushed and has not taken yet: at most two of its frames, so memory
/// stays bounded however much is pushed at once.
#[cfg(any(feature = "aac", feature = "mp3"))]
struct Pending {
    samples: Vec<i16>,
    channels: usize,
    limit: usize,
}

#[cfg(any(feature = "aac", feature = "mp3"))]
impl Pending {
    fn new(channels: usize, frame_len: usize) -> Self {
        let limit = 2 * frame_len * channels;
        Self {
            samples: Vec::with_capacity(limit),
            channels,
            limit,
        }
    }

    /// [`Encoder::push`]: whole frames only; returns the samples taken.
    fn push(&mut self, pcm: &[i16]) -> Result<usize, CodecError> {
        if pcm.len() % self.channels != 0 {
            return Err(CodecError::PartialFrame {
                samples: pcm.len(),
                channels: self.channels as u8,
            });
        }
        let take = pcm.len().min(self.limit.saturating_sub(self.samples.len()));
        self.samples.extend_from_slice(&pcm[..take]);
        Ok(take)
    }
}

/// One codec's rendition of a captured stream.
pub struct Rendition {
    codec: Codec,
    encoder: Box<dyn Encoder>,
    /// 48 kHz capture for a format that cannot say 48 kHz.
    resampler: Option<Resampler>,
    /// The capture rate and the rate sent, Hz.
    capture_rate: u32,
    rate: u32,
    channels: usize,
    /// The bytes before every packet: tag header byte, and AAC's packet type.
    prefix: Vec<u8>,
    /// The whole FLV audio tag body of the sequence header (`AF 00` + AudioSpecificConfig).
    sequence_header: Option<Vec<u8>>,
    metadata: Metadata,
    /// Capture position (frames at the capture rate) of the first frame pushed, or rather of
    /// where the pushed frames would have started had there been no jump.
    origin: Option<u64>,
    /// Capture frames pushed so far.
    pushed: u64,
    /// Resampled samples on their way to the encoder.
    resampled: Vec<i16>,
    /// One FLV audio tag body being built.
    body: Vec<u8>,
}

impl Rendition {
    /// A rendition of `codec` for capture at `rate` Hz with `channels`, `bitrate_kbps` for AAC
    /// and MP3 (ignored by PCM and ADPCM), one PCM or ADPCM packet per `frames_per_period`
    /// capture frames (AAC and MP3 have their own frame lengths), with the default [`Tuning`].
    pub fn new(
        codec: Codec,
        rate: u32,
        channels: u8,
        bitrate_kbps: u32,
        frames_per_period: usize,
    ) -> Result<Self, EncodeError> {
        Self::with_tuning(
            codec,
            rate,
            channels,
            bitrate_kbps,
            frames_per_period,
            Tuning::default(),
        )
    }

    /// [`Rendition::new`] with encoder settings of the caller's (the benchmark measures them).
    pub fn with_tuning(
        codec: Codec,
        rate: u32,
        channels: u8,
        bitrate_kbps: u32,
        frames_per_period: usize,
        tuning: Tuning,
    ) -> Result<Self, EncodeError> {
        if !(1..=2).contains(&channels) {
            return Err(EncodeError::UnsupportedChannels { channels });
        }
        if !codec.rates().contains(&rate) {
            return Err(EncodeError::UnsupportedRate { codec, rate });
        }
        let resample = rate == Resampler::INPUT_RATE && codec != Codec::Aac;
        let sent_rate = if resample {
            Resampler::OUTPUT_RATE
        } else {
            rate
        };
        let period = if resample {
            Resampler::max_output_frames(frames_per_period)
        } else {
            frames_per_period
        };
        let encoder = encoder(codec, sent_rate, channels, bitrate_kbps, period, tuning)?;
        let header = encoder.tag_header();
        let mut prefix = vec![header.to_byte()];
        let sequence_header = match header.format {
            SoundFormat::Aac => {
                prefix.push(AacPacketType::Raw as u8);
                encoder.sequence_header().map(|asc| {
                    let mut body = vec![header.to_byte(), AacPacketType::SequenceHeader as u8];
                    body.extend_from_slice(asc);
                    body
                })
            }
            _ => None,
        };
        let bits_per_frame = match codec {
            Codec::Pcm => Some(16),
            Codec::Adpcm => Some(4),
            Codec::Aac | Codec::Mp3 => None,
        };
        let metadata = Metadata {
            audiocodecid: header.format as u8,
            audiosamplerate: sent_rate,
            audiosamplesize: 16,
            stereo: channels == 2,
            audiodatarate_kbps: match bits_per_frame {
                Some(bits) => f64::from(sent_rate * bits * u32::from(channels)) / 1000.0,
                None => f64::from(bitrate_kbps),
            },
        };
        let body = Vec::with_capacity(prefix.len() + encoder.max_packet_len());
        Ok(Self {
            codec,
            resampler: if resample {
                Some(Resampler::new(channels)?)
            } else {
                None
            },
            capture_rate: rate,
            rate: sent_rate,
            channels: usize::from(channels),
            prefix,
            sequence_header,
            metadata,
            origin: None,
            pushed: 0,
            resampled: Vec::with_capacity(2 * period * usize::from(channels)),
            body,
            encoder,
        })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The rate sent, Hz (44100 for a 48 kHz capture in PCM, ADPCM or MP3).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The sequence header as a whole FLV audio tag body (`AF 00` + AudioSpecificConfig for
    /// AAC), which every player must get before the first packet; `None` for the other codecs.
    pub fn sequence_header(&self) -> Option<&[u8]> {
        self.sequence_header.as_deref()
    }

    /// `onMetaData`'s audio fields: the codec id, the rate actually sent, the bit rate.
    pub fn metadata(&self) -> Metadata {
        self.metadata
    }

    /// Encodes interleaved S16 capture samples (whole frames) whose first frame is at capture
    /// position `position_frames`; calls `out(timestamp_ms, tag_body)` for every packet that
    /// is complete. Positions should follow on from the last push; a jump moves the timestamps
    /// of everything pushed after it.
    pub fn push(
        &mut self,
        pcm: &[i16],
        position_frames: u64,
        out: &mut impl FnMut(u32, &[u8]),
    ) -> Result<(), EncodeError> {
        if pcm.len() % self.channels != 0 {
            return Err(CodecError::PartialFrame {
                samples: pcm.len(),
                channels: self.channels as u8,
            }
            .into());
        }
        let origin = position_frames.saturating_sub(self.pushed);
        if self.origin.is_some_and(|o| o != origin) {
            log::debug!(
                "{}: capture position jumped to {position_frames}, timestamps follow",
                self.codec
            );
        }
        self.origin = Some(origin);
        self.pushed += (pcm.len() / self.channels) as u64;
        let Some(mut resampler) = self.resampler.take() else {
            return self.encode(pcm, out);
        };
        let result = self.resample(&mut resampler, pcm, out);
        self.resampler = Some(resampler);
        result
    }

    /// Resamples `pcm` to the rate sent, encoding as it goes.
    fn resample(
        &mut self,
        resampler: &mut Resampler,
        pcm: &[i16],
        out: &mut impl FnMut(u32, &[u8]),
    ) -> Result<(), EncodeError> {
        let mut resampled = std::mem::take(&mut self.resampled);
        let room = resampled.capacity();
        resampled.resize(room, 0);
        let mut rest = pcm;
        let mut result = Ok(());
        while !rest.is_empty() && result.is_ok() {
            let (taken, written) = resampler.process(rest, &mut resampled);
            rest = &rest[taken..];
            result = self.encode(&resampled[..written], out);
        }
        self.resampled = resampled;
        result
    }

    /// The end of the input: encodes and sends what the resampler and the encoder still hold.
    pub fn finish(&mut self, out: &mut impl FnMut(u32, &[u8])) -> Result<(), EncodeError> {
        let mut tail = [0i16; 64];
        let n = self.resampler.as_mut().map_or(0, |r| r.flush(&mut tail));
        self.encode(&tail[..n], out)?;
        self.encoder.finish();
        self.drain(out)
    }

    /// Pushes `pcm` (at the rate sent) into the encoder, sending every packet that comes out.
    fn encode(&mut self, pcm: &[i16], out: &mut impl FnMut(u32, &[u8])) -> Result<(), EncodeError> {
        let mut rest = pcm;
        while !rest.is_empty() {
            let taken = self.encoder.push(rest)?;
            rest = &rest[taken..];
            self.drain(out)?;
        }
        Ok(())
    }

    /// Pulls every packet the encoder has and sends it.
    fn drain(&mut self, out: &mut impl FnMut(u32, &[u8])) -> Result<(), EncodeError> {
        let prefix = self.prefix.len();
        loop {
            self.body.clear();
            self.body.extend_from_slice(&self.prefix);
            self.body.resize(prefix + self.encoder.max_packet_len(), 0);
            let Some(Packet { len, position, .. }) = self.encoder.pull(&mut self.body[prefix..])?
            else {
                return Ok(());
            };
            let time = self.timestamp_ms(position);
            out(time, &self.body[..prefix + len]);
        }
    }

    /// Milliseconds of stream time at `position` (frames at the rate sent, from the first
    /// frame pushed): exact integer arithmetic from the sample counts, 0 before the start.
    fn timestamp_ms(&self, position: i64) -> u32 {
        let origin = i128::from(self.origin.unwrap_or(0));
        let (capture, sent) = (i128::from(self.capture_rate), i128::from(self.rate));
        let ms = (origin * sent + i128::from(position) * capture) * 1000 / (capture * sent);
        // RTMP timestamps are 32-bit milliseconds and wrap after 49.7 days (players handle it).
        ms.max(0) as u64 as u32
    }
}

/// The encoder for `codec` at `rate` (the rate sent).
#[cfg_attr(not(all(feature = "aac", feature = "mp3")), allow(unused_variables))]
fn encoder(
    codec: Codec,
    rate: u32,
    channels: u8,
    bitrate_kbps: u32,
    period: usize,
    tuning: Tuning,
) -> Result<Box<dyn Encoder>, EncodeError> {
    let storage = || vec![0i16; period * usize::from(channels)];
    Ok(match codec {
        Codec::Pcm => Box::new(Framed::new(
            PcmS16Le::new(rate, channels)?,
            period,
            storage(),
        )?),
        Codec::Adpcm => Box::new(Framed::new(
            AdpcmSwf::new(rate, channels, 4)?,
            period,
            storage(),
        )?),
        #[cfg(feature = "aac")]
        Codec::Aac => Box::new(aac::FdkAac::new(
            rate,
            channels,
            bitrate_kbps,
            tuning.aac_afterburner,
        )?),
        #[cfg(not(feature = "aac"))]
        Codec::Aac => {
            return Err(EncodeError::FeatureMissing {
                codec,
                feature: "aac",
            })
        }
        #[cfg(feature = "mp3")]
        Codec::Mp3 => Box::new(mp3::Lame::new(
            rate,
            channels,
            bitrate_kbps,
            tuning.mp3_quality,
        )?),
        #[cfg(not(feature = "mp3"))]
        Codec::Mp3 => {
            return Err(EncodeError::FeatureMissing {
                codec,
                feature: "mp3",
            })
        }
    })
}

#[cfg(test)]
mod tests;
