//! From a stream's audio messages (FLV audio tag bodies with their time, as publishers and the
//! encoders produce them) to the bytes of each HTTP wire format. A stream runs one framer per
//! format it serves, once per message whatever the number of listeners; each output is one
//! message of that format's ring, so a listener joining at any ring message starts on a frame
//! (MP3/ADTS), tag (FLV) or fragment (fMP4) boundary.
//!
//! | codec of the stream | formats |
//! |---|---|
//! | AAC | `.aac` (ADTS), `.flv`, `.mp4` (AAC in fMP4), `.m3u8` ([`super::hls`]) |
//! | MP3 | `.mp3`, `.flv` |
//! | PCM s16le | `.flv`, `.mp4` (FLAC verbatim frames in fMP4) |
//! | SWF ADPCM | `.flv` (browsers have no ADPCM decoder) |

use std::fmt;

use zerocast_core::adts::{AdtsError, AdtsHeader};
use zerocast_core::flac::{FlacError, FlacStream, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};
use zerocast_core::flv::{self, AudioTagHeader, SoundFormat};
use zerocast_core::mp4::{self, Codec, Mp4Error, Sample, Track};

use super::Format;

/// fMP4 fragments hold at least this much audio: shorter ones cost ~110 bytes of boxes each
/// (at 23 ms AAC frames, one per fragment would add ~37 kbit/s), longer ones add delay.
pub const FRAGMENT_MS: u32 = 60;

/// Samples per AAC-LC frame.
const AAC_FRAME: u32 = 1024;

/// What a framer could not do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramerError {
    /// The message is not an audio tag body of the stream's codec.
    NotThisCodec,
    /// An AAC frame came before the sequence header.
    NoSequenceHeader,
    /// ADTS framing.
    Adts(AdtsError),
    /// FLAC framing.
    Flac(FlacError),
    /// MP4 boxes.
    Mp4(Mp4Error),
}

impl fmt::Display for FramerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramerError::NotThisCodec => f.write_str("audio message of another codec"),
            FramerError::NoSequenceHeader => f.write_str("AAC frame before the sequence header"),
            FramerError::Adts(e) => write!(f, "ADTS: {e}"),
            FramerError::Flac(e) => write!(f, "FLAC: {e}"),
            FramerError::Mp4(e) => write!(f, "MP4: {e}"),
        }
    }
}

/// The formats a stream of `codec` is served in.
pub fn formats_for(codec: SoundFormat) -> &'static [Format] {
    match codec {
        SoundFormat::Aac => &[Format::Aac, Format::Flv, Format::Mp4, Format::Hls],
        SoundFormat::Mp3 => &[Format::Mp3, Format::Flv],
        SoundFormat::PcmLe => &[Format::Flv, Format::Mp4],
        _ => &[Format::Flv],
    }
}

/// The MSE type of a stream's `.mp4`, for the page (`MediaSource.isTypeSupported`).
pub fn mse_type(codec: SoundFormat) -> Option<&'static str> {
    match codec {
        SoundFormat::Aac => Some("audio/mp4; codecs=\"mp4a.40.2\""),
        SoundFormat::PcmLe => Some("audio/mp4; codecs=\"flac\""),
        _ => None,
    }
}

/// One format's framer for one stream.
#[derive(Debug)]
pub struct Framer {
    format: Format,
    codec: SoundFormat,
    rate: u32,
    channels: u8,
    /// What every listener gets before ring messages: FLV header, metadata and sequence header
    /// tags; the fMP4 init segment.
    sticky: Vec<u8>,
    metadata: Vec<u8>,
    config: Vec<u8>,
    adts: Option<AdtsHeader>,
    fmp4: Fmp4State,
}

/// Where the fMP4 output stands.
#[derive(Debug, Default)]
struct Fmp4State {
    /// Sample position of the next sample.
    clock: SampleClock,
    /// Fragment sequence number.
    sequence: u32,
    /// FLAC frames so far, and the stream (block size fixed by the first message).
    flac: Option<(FlacStream, u32)>,
    /// Samples waiting for the fragment to reach [`FRAGMENT_MS`]: (position, duration, bytes).
    pending: Vec<(u64, u32, Vec<u8>)>,
}

impl Framer {
    /// A framer of `format` for a stream of `codec` at `rate` Hz (the true rate, which the FLV
    /// tag header may not be able to say) and `channels`.
    pub fn new(format: Format, codec: SoundFormat, rate: u32, channels: u8) -> Self {
        let mut framer = Self {
            format,
            codec,
            rate,
            channels,
            sticky: Vec::new(),
            metadata: Vec::new(),
            config: Vec::new(),
            adts: None,
            fmp4: Fmp4State::default(),
        };
        framer.rebuild_sticky();
        framer
    }

    /// The bytes a listener gets first, before the ring's (may be empty).
    pub fn sticky(&self) -> &[u8] {
        &self.sticky
    }

    /// What a listener already inside the body of an earlier framer of this format gets before
    /// this one's ring, when the stream's codec changed (a publisher of another codec took
    /// over); `None` when the format cannot go on in the same body, and the listener is closed.
    pub fn continuation(&self) -> Option<&[u8]> {
        match self.format {
            // FLV tags say their codec each: a body may change codec between two tags, as an
            // RTMP stream does for a new publisher (ffmpeg's flvdec opens a new audio stream).
            // The new metadata and sequence header tags go first; a second file header would
            // not parse.
            Format::Flv => self.sticky.get(flv::FILE_HEADER_LEN..),
            // fMP4 goes to a browser's MSE SourceBuffer, made for one codec by the type given to
            // `addSourceBuffer`: an init segment of another codec is an append error there
            // unless the page calls `changeType()`, which older browsers and Safari's
            // ManagedMediaSource lack. Ending the body is what every MSE player handles: the
            // page's player makes itself anew with a new SourceBuffer when /api/v1/streams shows
            // another codec. MP3 and ADTS bodies are one codec by their content type (an
            // Icecast client reconnects and reads the new head); HLS has no body here.
            Format::Mp4 | Format::Mp3 | Format::Aac | Format::Hls => None,
        }
    }

    /// The stream's `onMetaData` (an AMF0 script data body) for FLV listeners.
    pub fn set_metadata(&mut self, body: &[u8]) {
        self.metadata = body.to_vec();
        self.rebuild_sticky();
    }

    /// Frames one audio message (an FLV audio tag body, `time_ms` its stream time) and appends
    /// the output, if any, to `out`: one ring message of this format. An AAC sequence header
    /// updates the sticky bytes instead.
    pub fn push(
        &mut self,
        time_ms: u32,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FramerError> {
        let header = body
            .first()
            .and_then(|b| AudioTagHeader::from_byte(*b).ok())
            .ok_or(FramerError::NotThisCodec)?;
        if header.format != self.codec {
            return Err(FramerError::NotThisCodec);
        }
        if self.codec == SoundFormat::Aac {
            match body.get(1) {
                Some(0) => return self.set_config(time_ms, body, out),
                Some(1) => {}
                _ => return Err(FramerError::NotThisCodec),
            }
        }
        match self.format {
            Format::Flv => {
                flv_tag(flv::TAG_AUDIO, time_ms, body, out);
                Ok(())
            }
            Format::Mp3 => {
                out.extend_from_slice(&body[1..]);
                Ok(())
            }
            Format::Aac | Format::Hls => {
                let adts = self.adts.ok_or(FramerError::NoSequenceHeader)?;
                let frame = &body[2..];
                let mut head = [0u8; zerocast_core::adts::HEADER_LEN];
                adts.emit(frame.len(), &mut head)
                    .map_err(FramerError::Adts)?;
                out.extend_from_slice(&head);
                out.extend_from_slice(frame);
                Ok(())
            }
            Format::Mp4 => self.push_mp4(time_ms, body, out),
        }
    }

    /// A new AAC sequence header: the sticky bytes change, and listeners already in the stream
    /// get it in the ring too (FLV: the tag; fMP4: a new init segment, which MSE accepts between
    /// fragments).
    fn set_config(
        &mut self,
        time_ms: u32,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FramerError> {
        let config = &body[2..];
        if config == self.config {
            return Ok(());
        }
        self.adts =
            Some(AdtsHeader::from_audio_specific_config(config).map_err(FramerError::Adts)?);
        let first = self.config.is_empty();
        self.config = config.to_vec();
        self.rebuild_sticky();
        if !first {
            match self.format {
                Format::Flv => flv_tag(flv::TAG_AUDIO, time_ms, body, out),
                Format::Mp4 => {
                    self.flush_fragment(out)?;
                    out.extend_from_slice(&self.sticky);
                }
                Format::Mp3 | Format::Aac | Format::Hls => {}
            }
        }
        Ok(())
    }

    fn rebuild_sticky(&mut self) {
        self.sticky.clear();
        match self.format {
            Format::Flv => {
                let mut header = [0u8; flv::FILE_HEADER_LEN];
                if let Ok(n) = flv::encode_file_header(&mut header, true, false) {
                    self.sticky.extend_from_slice(&header[..n]);
                }
                if !self.metadata.is_empty() {
                    flv_tag(flv::TAG_SCRIPT_DATA, 0, &self.metadata, &mut self.sticky);
                }
                if !self.config.is_empty() {
                    let mut body = vec![0xAF, 0];
                    body.extend_from_slice(&self.config);
                    flv_tag(flv::TAG_AUDIO, 0, &body, &mut self.sticky);
                }
            }
            Format::Mp4 => {
                let streaminfo = self.fmp4.flac.map(|(s, _)| s.streaminfo());
                let codec = match (self.codec, &streaminfo) {
                    (SoundFormat::Aac, _) if !self.config.is_empty() => Codec::Aac {
                        config: &self.config,
                    },
                    (SoundFormat::PcmLe, Some(info)) => Codec::Flac { streaminfo: info },
                    _ => return,
                };
                let track = Track {
                    rate: self.rate,
                    channels: self.channels,
                    codec,
                };
                let mut init = vec![0u8; 1024];
                if let Ok(n) = mp4::emit_init(&track, &mut init) {
                    self.sticky.extend_from_slice(&init[..n]);
                }
            }
            Format::Mp3 | Format::Aac | Format::Hls => {}
        }
    }

    fn push_mp4(
        &mut self,
        time_ms: u32,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FramerError> {
        let (mut position, jumped) = self.fmp4.clock.position(time_ms, self.rate);
        if jumped {
            self.flush_fragment(out)?;
        }
        match self.codec {
            SoundFormat::Aac => {
                if self.config.is_empty() {
                    return Err(FramerError::NoSequenceHeader);
                }
                self.fmp4
                    .pending
                    .push((position, AAC_FRAME, body[2..].to_vec()));
                position += u64::from(AAC_FRAME);
            }
            SoundFormat::PcmLe => {
                let pcm = &body[1..];
                let frame_bytes = 2 * usize::from(self.channels);
                let frames = pcm.len() / frame_bytes;
                if self.fmp4.flac.is_none() {
                    let block =
                        frames.clamp(usize::from(MIN_BLOCK_SIZE), usize::from(MAX_BLOCK_SIZE));
                    let stream = FlacStream::new(self.rate, self.channels, block as u16)
                        .map_err(FramerError::Flac)?;
                    self.fmp4.flac = Some((stream, 0));
                    self.rebuild_sticky();
                }
                let Some((stream, number)) = self.fmp4.flac.as_mut() else {
                    return Err(FramerError::NotThisCodec);
                };
                let block_bytes = usize::from(stream.block_size()) * frame_bytes;
                for piece in pcm[..frames * frame_bytes].chunks(block_bytes) {
                    let mut frame = vec![0u8; stream.max_frame_len()];
                    let n = stream
                        .emit_frame(*number, piece, &mut frame)
                        .map_err(FramerError::Flac)?;
                    frame.truncate(n);
                    *number = number.wrapping_add(1);
                    let duration = (piece.len() / frame_bytes) as u32;
                    self.fmp4.pending.push((position, duration, frame));
                    position += u64::from(duration);
                }
            }
            _ => return Err(FramerError::NotThisCodec),
        }
        self.fmp4.clock.advance_to(position);
        let pending: u64 = self
            .fmp4
            .pending
            .iter()
            .map(|(_, d, _)| u64::from(*d))
            .sum();
        if pending * 1000 >= u64::from(FRAGMENT_MS) * u64::from(self.rate) {
            self.flush_fragment(out)?;
        }
        Ok(())
    }

    fn flush_fragment(&mut self, out: &mut Vec<u8>) -> Result<(), FramerError> {
        let Some(&(start, _, _)) = self.fmp4.pending.first() else {
            return Ok(());
        };
        let samples: Vec<Sample<'_>> = self
            .fmp4
            .pending
            .iter()
            .map(|(_, duration, data)| Sample {
                duration: *duration,
                data,
            })
            .collect();
        self.fmp4.sequence = self.fmp4.sequence.wrapping_add(1);
        let at = out.len();
        out.resize(at + mp4::fragment_len(&samples), 0);
        let n = mp4::emit_fragment(self.fmp4.sequence, start, &samples, &mut out[at..])
            .map_err(FramerError::Mp4)?;
        out.truncate(at + n);
        self.fmp4.pending.clear();
        Ok(())
    }
}

/// A stream's position in samples, following the sample count of what was framed and jumping
/// to the message time only when that is more than 100 ms away (a new publisher, a gap), so
/// fragments and segments stay contiguous although message times are whole milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct SampleClock {
    next: Option<u64>,
}

impl SampleClock {
    /// The position of a message at `time_ms`, and whether that is a jump.
    pub fn position(&mut self, time_ms: u32, rate: u32) -> (u64, bool) {
        let at_time = u64::from(time_ms) * u64::from(rate) / 1000;
        match self.next {
            Some(p) if p.abs_diff(at_time) <= u64::from(rate / 10) => (p, false),
            Some(_) => (at_time, true),
            None => (at_time, false),
        }
    }

    /// The next message starts at `position`.
    pub fn advance_to(&mut self, position: u64) {
        self.next = Some(position);
    }
}

/// Appends one FLV tag (header, body, PreviousTagSize) to `out`.
pub fn flv_tag(kind: u8, time_ms: u32, body: &[u8], out: &mut Vec<u8>) {
    let size = body.len().min(flv::MAX_TAG_DATA_SIZE as usize) as u32;
    let mut header = [0u8; flv::TAG_HEADER_LEN];
    let mut trailer = [0u8; 4];
    if let (Ok(h), Ok(t)) = (
        flv::encode_tag_header(&mut header, kind, size, time_ms),
        flv::encode_previous_tag_size(&mut trailer, size),
    ) {
        out.extend_from_slice(&header[..h]);
        out.extend_from_slice(&body[..size as usize]);
        out.extend_from_slice(&trailer[..t]);
    }
}
