//! What an RTSP player is told about a stream's audio (its SDP) and how each of the stream's
//! messages becomes RTP packets for one player (its sequence numbers, timestamps and sender
//! reports), from the messages of the stream's `.flv` rendition: every codec has one, and its
//! tags carry the raw frames with their stream time.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use zerocast_core::flv::{SoundFormat, TAG_AUDIO, TAG_HEADER_LEN};
use zerocast_core::rtp::{
    self, l16_pieces, Payload, RtpHeader, SenderReport, MPA_CLOCK, PT_DYNAMIC, PT_MPA,
    SENDER_REPORT_LEN,
};

use crate::formats::framer::SampleClock;

/// Samples per AAC-LC frame.
const AAC_FRAME: u32 = 1024;
/// Stream time between two sender reports: RFC 3550's 5 s minimum interval.
const REPORT_MS: u64 = 5000;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX: u64 = 2_208_988_800;

/// A stream's audio as an RTSP player sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// How frames are carried.
    pub payload: Payload,
    /// Sampling rate.
    pub rate: u32,
    /// Channels.
    pub channels: u8,
    /// The AudioSpecificConfig (AAC only).
    pub config: Vec<u8>,
}

impl Track {
    /// The track of a stream of `codec` at `rate` Hz with `channels`, `None` for a codec RTP
    /// players have no payload format for here (SWF ADPCM, Speex, …).
    pub fn new(codec: SoundFormat, rate: u32, channels: u8, config: &[u8]) -> Option<Self> {
        let payload = match codec {
            SoundFormat::Aac if !config.is_empty() => Payload::AacHbr,
            SoundFormat::Mp3 => Payload::Mpa,
            SoundFormat::PcmLe => Payload::L16,
            _ => return None,
        };
        Some(Self {
            payload,
            rate,
            channels: channels.max(1),
            config: config.to_vec(),
        })
    }

    /// The payload type in the SDP and the packets.
    pub fn payload_type(&self) -> u8 {
        match self.payload {
            Payload::Mpa => PT_MPA,
            Payload::AacHbr | Payload::L16 => PT_DYNAMIC,
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        match self.payload {
            Payload::Mpa => MPA_CLOCK,
            Payload::AacHbr | Payload::L16 => self.rate,
        }
    }

    /// The session description of the stream, titled `title`, its one track at `control`.
    pub fn sdp(&self, title: &str, session_id: u64, control: &str) -> String {
        let pt = self.payload_type();
        let mut sdp = String::new();
        // Titles are the publisher's or admin's text: one line, no control characters.
        let title: String = title.chars().filter(|c| !c.is_control()).collect();
        let title = if title.is_empty() { "zerocast" } else { &title };
        let _ = write!(
            sdp,
            "v=0\r\no=- {session_id} 1 IN IP4 0.0.0.0\r\ns={title}\r\nc=IN IP4 0.0.0.0\r\n\
             t=0 0\r\na=tool:zerocast\r\na=control:*\r\nm=audio 0 RTP/AVP {pt}\r\n"
        );
        let _ = match self.payload {
            Payload::AacHbr => {
                let config: String = self.config.iter().map(|b| format!("{b:02x}")).collect();
                write!(
                    sdp,
                    "a=rtpmap:{pt} mpeg4-generic/{}/{}\r\na=fmtp:{pt} streamtype=5;\
                     profile-level-id=15;mode=AAC-hbr;config={config};sizelength=13;\
                     indexlength=3;indexdeltalength=3\r\n",
                    self.rate, self.channels
                )
            }
            Payload::Mpa => write!(sdp, "a=rtpmap:{pt} MPA/{MPA_CLOCK}\r\n"),
            Payload::L16 => write!(sdp, "a=rtpmap:{pt} L16/{}/{}\r\n", self.rate, self.channels),
        };
        let _ = write!(sdp, "a=control:{control}\r\n");
        sdp
    }
}

/// Which of a session's two channels a packet goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// RTP.
    Rtp,
    /// RTCP.
    Rtcp,
}

/// One player's RTP state.
#[derive(Debug)]
pub struct RtpOut {
    track: Track,
    ssrc: u32,
    sequence: u16,
    /// Added to every timestamp (random, RFC 3550 §5.1).
    base: u32,
    clock: SampleClock,
    packets: u32,
    octets: u32,
    /// Stream time of the last sender report.
    reported: Option<u64>,
    scratch: Vec<u8>,
}

impl RtpOut {
    /// The state of a player of `track`, its SSRC, first sequence number and timestamp base
    /// drawn from `random`.
    pub fn new(track: Track, random: [u8; 10]) -> Self {
        let [a, b, c, d, e, f, g, h, i, j] = random;
        Self {
            track,
            ssrc: u32::from_be_bytes([a, b, c, d]),
            sequence: u16::from_be_bytes([e, f]),
            base: u32::from_be_bytes([g, h, i, j]),
            clock: SampleClock::default(),
            packets: 0,
            octets: 0,
            reported: None,
            scratch: Vec::new(),
        }
    }

    /// The SSRC, for the `Transport` reply.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The next packet's sequence number, for `RTP-Info`.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp a message at stream time `time_ms` will have, for `RTP-Info` (without
    /// moving the clock).
    pub fn timestamp_at(&self, time_ms: u64) -> u32 {
        let mut clock = self.clock;
        self.timestamp(&mut clock, time_ms).0
    }

    /// The timestamp of a message at `time_ms` and its position in samples.
    fn timestamp(&self, clock: &mut SampleClock, time_ms: u64) -> (u32, u64) {
        match self.track.payload {
            // 90 kHz whatever the rate: from the time (whole milliseconds are 90 ticks each).
            Payload::Mpa => ((time_ms * 90) as u32, 0),
            Payload::AacHbr | Payload::L16 => {
                let (position, _) = clock.position(time_ms as u32, self.track.rate);
                (position as u32, position)
            }
        }
    }

    /// Makes the packets of one message of the `.flv` rendition (an FLV tag) at stream time
    /// `time_ms`, each handed to `send` with its channel; a sender report first when one is
    /// due. Tags that are not audio frames (an AAC sequence header) make none.
    pub fn message(&mut self, tag: &[u8], time_ms: u64, mut send: impl FnMut(Channel, &[u8])) {
        let Some(body) = audio_body(tag) else {
            return;
        };
        let frames = match self.track.payload {
            // FLV AAC: header byte, AACPacketType (1: a raw frame).
            Payload::AacHbr => match body.get(1) {
                Some(1) => &body[2..],
                _ => return,
            },
            Payload::Mpa | Payload::L16 => body.get(1..).unwrap_or(&[]),
        };
        if frames.is_empty() {
            return;
        }
        let mut clock = self.clock;
        let (timestamp, position) = self.timestamp(&mut clock, time_ms);
        if self.reported.map_or(true, |t| {
            time_ms.saturating_sub(t) >= REPORT_MS || time_ms < t
        }) {
            self.reported = Some(time_ms);
            self.report(timestamp, &mut send);
        }
        let samples = match self.track.payload {
            Payload::AacHbr => {
                self.packet(frames, timestamp, &mut send);
                AAC_FRAME
            }
            Payload::Mpa => {
                self.packet(frames, timestamp, &mut send);
                0
            }
            Payload::L16 => {
                let frame = 2 * u32::from(self.track.channels);
                let mut offset = 0;
                for piece in l16_pieces(frames, self.track.channels) {
                    self.packet(piece, timestamp.wrapping_add(offset), &mut send);
                    offset += piece.len() as u32 / frame;
                }
                offset
            }
        };
        clock.advance_to(position + u64::from(samples));
        self.clock = clock;
    }

    fn packet(&mut self, frame: &[u8], timestamp: u32, send: &mut impl FnMut(Channel, &[u8])) {
        let header = RtpHeader {
            payload_type: self.track.payload_type(),
            marker: true,
            sequence: self.sequence,
            timestamp: self.base.wrapping_add(timestamp),
            ssrc: self.ssrc,
        };
        let needed = rtp::packet_len(self.track.payload, frame.len());
        if self.scratch.len() < needed {
            // As long as the longest packet so far: a PCM piece (under 1.5 KiB), an AAC or MP3
            // frame (about 400 bytes at 128k).
            self.scratch.resize(needed, 0);
        }
        if let Ok(n) = rtp::emit_packet(self.track.payload, &header, frame, &mut self.scratch) {
            self.sequence = self.sequence.wrapping_add(1);
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(frame.len() as u32);
            send(Channel::Rtp, &self.scratch[..n]);
        }
    }

    fn report(&mut self, timestamp: u32, send: &mut impl FnMut(Channel, &[u8])) {
        let mut out = [0u8; SENDER_REPORT_LEN];
        let report = SenderReport {
            ssrc: self.ssrc,
            ntp: ntp_now(),
            rtp_timestamp: self.base.wrapping_add(timestamp),
            packets: self.packets,
            octets: self.octets,
        };
        if let Ok(n) = rtp::emit_sender_report(&report, &mut out) {
            send(Channel::Rtcp, &out[..n]);
        }
    }
}

/// The body of an FLV audio tag (header, body, previous tag size), `None` for other tags.
fn audio_body(tag: &[u8]) -> Option<&[u8]> {
    if *tag.first()? != TAG_AUDIO {
        return None;
    }
    let size = u32::from_be_bytes([0, *tag.get(1)?, *tag.get(2)?, *tag.get(3)?]) as usize;
    tag.get(TAG_HEADER_LEN..TAG_HEADER_LEN + size)
}

/// Wall-clock time now in NTP format.
fn ntp_now() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let fraction = (u64::from(now.subsec_nanos()) << 32) / 1_000_000_000;
    ((now.as_secs() + NTP_UNIX) << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::framer::flv_tag;

    fn packets(out: &mut RtpOut, body: &[u8], time: u32) -> Vec<(Channel, Vec<u8>)> {
        let mut tag = Vec::new();
        flv_tag(TAG_AUDIO, time, body, &mut tag);
        let mut sent = Vec::new();
        out.message(&tag, u64::from(time), |c, p| sent.push((c, p.to_vec())));
        sent
    }

    /// AAC frames go one per packet, 1024 ticks apart whatever the milliseconds say, with a
    /// sender report first; a sequence header makes nothing.
    #[test]
    fn aac_packets_follow_the_sample_clock() {
        let track = Track::new(SoundFormat::Aac, 44_100, 2, &[0x12, 0x10]).unwrap();
        let mut out = RtpOut::new(track, [0; 10]);
        assert!(packets(&mut out, &[0xAF, 0, 0x12, 0x10], 0).is_empty());
        let first = packets(&mut out, &[0xAF, 1, 1, 2, 3], 1000);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].0, Channel::Rtcp);
        let a = RtpHeader::parse(&first[1].1).unwrap();
        assert_eq!(out.timestamp_at(1023), a.timestamp + 1024);
        let second = packets(&mut out, &[0xAF, 1, 4, 5], 1023);
        let b = RtpHeader::parse(&second[0].1).unwrap();
        assert_eq!(
            (b.timestamp - a.timestamp, b.sequence),
            (1024, a.sequence + 1)
        );
        assert_eq!(&second[0].1[12..], &[0, 16, 0, 2 << 3, 4, 5]);
    }

    /// PCM splits into whole frames, each packet's timestamp its first sample's.
    #[test]
    fn pcm_pieces_carry_their_own_timestamps() {
        let track = Track::new(SoundFormat::PcmLe, 48_000, 2, &[]).unwrap();
        let mut out = RtpOut::new(track, [0; 10]);
        let mut body = vec![0x3F];
        body.extend((0..4096u32).map(|i| i as u8));
        let sent = packets(&mut out, &body, 0);
        let rtp: Vec<RtpHeader> = sent
            .iter()
            .filter(|(c, _)| *c == Channel::Rtp)
            .map(|(_, p)| RtpHeader::parse(p).unwrap())
            .collect();
        assert_eq!(rtp.len(), 3);
        assert_eq!(rtp[1].timestamp - rtp[0].timestamp, 1400 / 4);
        assert_eq!(out.timestamp_at(21), 1024);
    }

    #[test]
    fn sdp_names_each_payload() {
        let aac = Track::new(SoundFormat::Aac, 48_000, 2, &[0x11, 0x90]).unwrap();
        let sdp = aac.sdp("Pi\nradio", 1, "trackID=0");
        assert!(sdp.contains("a=rtpmap:96 mpeg4-generic/48000/2\r\n"));
        assert!(sdp.contains("mode=AAC-hbr;config=1190;sizelength=13"));
        assert!(sdp.contains("s=Piradio\r\n"));
        let mp3 = Track::new(SoundFormat::Mp3, 44_100, 2, &[]).unwrap();
        assert!(mp3
            .sdp("", 1, "trackID=0")
            .contains("m=audio 0 RTP/AVP 14\r\na=rtpmap:14 MPA/90000\r\n"));
        let pcm = Track::new(SoundFormat::PcmLe, 44_100, 1, &[]).unwrap();
        assert!(pcm
            .sdp("", 1, "trackID=0")
            .contains("a=rtpmap:96 L16/44100/1\r\n"));
        assert!(Track::new(SoundFormat::Adpcm, 44_100, 1, &[]).is_none());
    }
}
