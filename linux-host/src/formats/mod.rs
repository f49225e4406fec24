//! A stream's HTTP renditions: one framer and one ring per format its codec is served in, and
//! the HLS segment store. The stream feeds every audio message in once ([`HttpOut::push`]);
//! each format's bytes are made once and read by all of its listeners. Below both the stream
//! (which feeds it) and the HTTP side (which serves it): it knows neither.

pub mod format;
pub mod framer;
pub mod hls;

use zerocast_core::adts::AdtsHeader;
use zerocast_core::flv::{AudioTagHeader, SoundFormat};
use zerocast_core::ring::Ring;

pub use format::Format;
use framer::{formats_for, Framer, SampleClock};
use hls::{Hls, Numbering};

/// Bytes each format's ring keeps: 1.5 s of PCM as FLAC or FLV, 16 s of AAC 128k — the burst a
/// new listener starts with and how far a slow one may fall behind before it is skipped ahead.
pub const HTTP_RING_BYTES: usize = 256 * 1024;
/// Messages each format's ring indexes.
pub const HTTP_RING_SLOTS: usize = 512;

/// The ring type of an HTTP format.
pub type HttpRing = Ring<HTTP_RING_BYTES, HTTP_RING_SLOTS>;

/// One format of a stream: its framer and its ring.
pub struct Rendition {
    /// The format.
    pub format: Format,
    framer: Framer,
    /// What listeners read.
    pub ring: Box<HttpRing>,
}

impl Rendition {
    /// What a listener gets before the ring's bytes.
    pub fn sticky(&self) -> &[u8] {
        self.framer.sticky()
    }

    /// What a listener of the previous renditions' ring gets before this ring's bytes, if it
    /// can go on in the same body (see [`Framer::continuation`]).
    pub fn continuation(&self) -> Option<&[u8]> {
        self.framer.continuation()
    }
}

/// The HTTP side of one stream.
pub struct HttpOut {
    codec: SoundFormat,
    rate: u32,
    channels: u8,
    renditions: Vec<Rendition>,
    hls: Option<(Hls, SampleClock)>,
    scratch: Vec<u8>,
    /// Framing errors seen (logged once).
    failed: bool,
    /// How many renditions the stream had before these (one more at each codec change): a
    /// listener's cursor is only valid in the rings of the generation it was made in.
    generation: u64,
    /// The HLS numbering of the renditions before these, kept on through codecs without HLS.
    hls_after: Option<Numbering>,
}

impl HttpOut {
    /// The renditions for audio whose first message has header byte `header` (and, for AAC,
    /// the AudioSpecificConfig `config`, which holds the true rate and channels), following the
    /// stream's `previous` renditions (of another codec) if it had any.
    pub fn new(header: AudioTagHeader, config: Option<&[u8]>, previous: Option<&Self>) -> Self {
        let adts = config.and_then(|c| AdtsHeader::from_audio_specific_config(c).ok());
        let (rate, channels) = match adts {
            Some(h) => (h.sample_rate(), h.channel_config),
            None => (header.rate.hz(), 1 + u8::from(header.stereo)),
        };
        let codec = header.format;
        let hls_after = previous.and_then(|p| p.hls().map(Hls::numbering).or(p.hls_after));
        let renditions = formats_for(codec)
            .iter()
            .filter(|f| **f != Format::Hls)
            .map(|&format| Rendition {
                format,
                framer: Framer::new(format, codec, rate, channels),
                ring: Box::new(HttpRing::new()),
            })
            .collect();
        let hls = formats_for(codec)
            .contains(&Format::Hls)
            .then(|| (Hls::new(rate, hls_after), SampleClock::default()));
        Self {
            codec,
            rate,
            channels,
            renditions,
            hls,
            scratch: Vec::new(),
            failed: false,
            generation: previous.map_or(0, |p| p.generation + 1),
            hls_after,
        }
    }

    /// Which renditions of the stream these are (see the field).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether these renditions fit audio with this header byte (else the stream makes new ones).
    pub fn fits(&self, header: AudioTagHeader) -> bool {
        header.format == self.codec
    }

    /// The codec.
    pub fn codec(&self) -> SoundFormat {
        self.codec
    }

    /// Sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// The formats served.
    pub fn formats(&self) -> &'static [Format] {
        formats_for(self.codec)
    }

    /// The rendition of `format`.
    pub fn rendition(&self, format: Format) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.format == format)
    }

    /// The HLS segment store.
    pub fn hls(&self) -> Option<&Hls> {
        self.hls.as_ref().map(|(h, _)| h)
    }

    /// The stream's `onMetaData`, for FLV listeners.
    pub fn set_metadata(&mut self, body: &[u8]) {
        for r in &mut self.renditions {
            r.framer.set_metadata(body);
        }
    }

    /// One audio message (FLV audio tag body) at stream time `time_ms`.
    pub fn push(&mut self, time_ms: u64, body: &[u8]) {
        let ts = time_ms as u32;
        for r in &mut self.renditions {
            self.scratch.clear();
            match r.framer.push(ts, body, &mut self.scratch) {
                Ok(()) if !self.scratch.is_empty() => {
                    let _ = r.ring.push(time_ms, &self.scratch);
                    if r.format == Format::Aac {
                        if let Some((hls, clock)) = &mut self.hls {
                            let (position, _) = clock.position(ts, self.rate);
                            hls.push(position, 1024, &self.scratch);
                            clock.advance_to(position + 1024);
                        }
                    }
                }
                Ok(()) => {}
                Err(e) if !self.failed => {
                    log::warn!("HTTP {}: {e}", r.format.extension());
                    self.failed = true;
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_core::flv::SoundRate;

    fn header(format: SoundFormat) -> AudioTagHeader {
        AudioTagHeader {
            format,
            rate: SoundRate::Khz44,
            sixteen_bit: true,
            stereo: true,
        }
    }

    /// Renditions made at a codec change are a generation later, and HLS numbering goes on
    /// through a codec without HLS (AAC, then MP3, then AAC again).
    #[test]
    fn renditions_after_a_codec_change_carry_generation_and_hls_numbering() {
        let config = [0x12, 0x10];
        let mut aac = HttpOut::new(header(SoundFormat::Aac), Some(&config), None);
        aac.push(0, &[0xAF, 0, 0x12, 0x10]);
        for i in 0..100 {
            aac.push(i * 23, &[0xAF, 1, 0x21, 0x10, 0x04]);
        }
        let numbering = aac.hls().map(Hls::numbering);
        let fresh = Hls::new(44_100, None).numbering();
        assert!(numbering.is_some_and(|n| n != fresh), "segments were made");
        let mp3 = HttpOut::new(header(SoundFormat::Mp3), None, Some(&aac));
        assert_eq!((mp3.generation(), mp3.hls().is_none()), (1, true));
        let again = HttpOut::new(header(SoundFormat::Aac), Some(&config), Some(&mp3));
        assert_eq!(again.generation(), 2);
        assert_eq!(again.hls().map(Hls::numbering), numbering);
    }

    /// What a stream's HTTP side costs, for docs/architecture.md.
    #[test]
    fn memory_of_the_renditions_is_printed() {
        for codec in [SoundFormat::Aac, SoundFormat::Mp3, SoundFormat::PcmLe] {
            let out = HttpOut::new(header(codec), Some(&[0x12, 0x10]), None);
            let rings = out.renditions.len() * std::mem::size_of::<HttpRing>();
            println!(
                "{}: {} rings, {rings} bytes{}",
                codec.name(),
                out.renditions.len(),
                if out.hls().is_some() {
                    format!(" + HLS up to {} KiB", hls::SEGMENTS * 256)
                } else {
                    String::new()
                }
            );
            assert_eq!(
                out.formats().len(),
                out.renditions.len() + usize::from(out.hls().is_some())
            );
        }
    }
}
