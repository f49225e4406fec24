//! RTP packets of a stream's audio frames and the RTCP sender reports beside them, for RTSP
//! listeners: AAC as `mpeg4-generic` AAC-hbr (RFC 3640), MP3 as `MPA` (RFC 2250, static
//! payload type 14), PCM as `L16` (RFC 3551, big-endian samples). Also the 4-byte header that
//! frames a packet inside an RTSP connection (RFC 2326 §10.12, "interleaved").
//!
//! One frame (or one piece of PCM) is one packet: the caller chooses the header's sequence
//! number and timestamp, and splits PCM with [`l16_pieces`] so no packet outgrows a datagram.

use core::fmt;

/// Length of the fixed RTP header (no CSRC, no extension).
pub const HEADER_LEN: usize = 12;
/// Largest payload a packet is given: a datagram under a 1500-byte Ethernet MTU with its IP
/// and UDP headers, and room for the payload headers.
pub const MAX_PAYLOAD: usize = 1400;
/// The static payload type of MPEG audio (RFC 3551 table 4).
pub const PT_MPA: u8 = 14;
/// The dynamic payload type given to AAC and PCM in the SDP.
pub const PT_DYNAMIC: u8 = 96;
/// RTP clock rate of `MPA`, whatever the audio's sampling rate (RFC 2250 §3.5).
pub const MPA_CLOCK: u32 = 90_000;
/// Length of the interleaved frame header (`$`, channel, length).
pub const INTERLEAVED_LEN: usize = 4;
/// Largest AAC frame an AAC-hbr AU header can size (13 bits).
pub const MAX_AAC_FRAME: usize = 0x1FFF;
/// Length of the sender report plus the SDES chunk [`emit_sender_report`] writes.
pub const SENDER_REPORT_LEN: usize = 28 + 20;

/// How a frame is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Payload {
    /// One raw AAC frame after an AU-headers section of one 16-bit AU header (RFC 3640 §3.3.6).
    AacHbr,
    /// MPEG audio frames after a 4-byte header of zero fragment offset (RFC 2250 §3.5).
    Mpa,
    /// 16-bit PCM, little-endian in, big-endian out.
    L16,
}

impl Payload {
    /// Bytes before the frame in the payload.
    pub const fn header_len(self) -> usize {
        match self {
            Payload::AacHbr | Payload::Mpa => 4,
            Payload::L16 => 0,
        }
    }
}

/// What could not be packetised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RtpError {
    /// The output buffer is shorter than the packet.
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
    },
    /// An AAC frame longer than an AU header can say.
    FrameTooLong {
        /// Its length.
        len: usize,
    },
    /// PCM of an odd number of bytes.
    OddPcm,
    /// A packet longer than an interleaved frame's 16-bit length.
    PacketTooLong,
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtpError::BufferTooSmall { needed } => {
                write!(f, "an RTP packet of {needed} bytes does not fit")
            }
            RtpError::FrameTooLong { len } => {
                write!(f, "an AAC frame of {len} bytes is too long for AAC-hbr")
            }
            RtpError::OddPcm => f.write_str("16-bit PCM of an odd number of bytes"),
            RtpError::PacketTooLong => f.write_str("a packet too long for an interleaved frame"),
        }
    }
}

/// The fixed header of one RTP packet (version 2, no padding, extension or CSRC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RtpHeader {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// The marker bit (set on every audio packet: each is a whole access unit).
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in the payload's clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the header into `out[..HEADER_LEN]`.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        let out = out
            .get_mut(..HEADER_LEN)
            .ok_or(RtpError::BufferTooSmall { needed: HEADER_LEN })?;
        out[0] = 0x80;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Ok(HEADER_LEN)
    }

    /// Reads a header written by [`emit`](Self::emit) (for tests and the fuzzer); `None` for
    /// anything else.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..HEADER_LEN)?;
        if b[0] != 0x80 {
            return None;
        }
        Some(Self {
            payload_type: b[1] & 0x7F,
            marker: b[1] & 0x80 != 0,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

/// The length of the packet of `frame` in `payload`.
pub const fn packet_len(payload: Payload, frame_len: usize) -> usize {
    HEADER_LEN + payload.header_len() + frame_len
}

/// Writes one RTP packet of `frame` into `out`; returns its length
/// ([`packet_len`]). Nothing is written on an error.
pub fn emit_packet(
    payload: Payload,
    header: &RtpHeader,
    frame: &[u8],
    out: &mut [u8],
) -> Result<usize, RtpError> {
    let len = packet_len(payload, frame.len());
    match payload {
        Payload::AacHbr if frame.len() > MAX_AAC_FRAME => {
            return Err(RtpError::FrameTooLong { len: frame.len() })
        }
        Payload::L16 if frame.len() % 2 != 0 => return Err(RtpError::OddPcm),
        _ => {}
    }
    let out = out
        .get_mut(..len)
        .ok_or(RtpError::BufferTooSmall { needed: len })?;
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    header.emit(head)?;
    let (payload_head, body) = rest.split_at_mut(payload.header_len());
    match payload {
        Payload::AacHbr => {
            // AU-headers-length in bits (one 16-bit header), then AU-size (13) | AU-index (3).
            payload_head[..2].copy_from_slice(&16u16.to_be_bytes());
            payload_head[2..4].copy_from_slice(&((frame.len() as u16) << 3).to_be_bytes());
            body.copy_from_slice(frame);
        }
        Payload::Mpa => {
            // MBZ and a fragment offset of 0: whole frames only.
            payload_head.fill(0);
            body.copy_from_slice(frame);
        }
        Payload::L16 => {
            for (o, i) in body.chunks_exact_mut(2).zip(frame.chunks_exact(2)) {
                o[0] = i[1];
                o[1] = i[0];
            }
        }
    }
    Ok(len)
}

/// Splits interleaved s16le PCM of `channels` channels into pieces of whole sample frames,
/// each at most [`MAX_PAYLOAD`] bytes (a trailing partial frame is left out).
pub fn l16_pieces(pcm: &[u8], channels: u8) -> impl Iterator<Item = &[u8]> {
    let frame = 2 * usize::from(channels.max(1));
    let whole = pcm.len() - pcm.len() % frame;
    pcm[..whole].chunks(MAX_PAYLOAD / frame * frame)
}

/// Writes the interleaved frame header of a `len`-byte packet on `channel` into `out`.
pub fn emit_interleaved(channel: u8, len: usize, out: &mut [u8]) -> Result<usize, RtpError> {
    let len = u16::try_from(len).map_err(|_| RtpError::PacketTooLong)?;
    let out = out
        .get_mut(..INTERLEAVED_LEN)
        .ok_or(RtpError::BufferTooSmall {
            needed: INTERLEAVED_LEN,
        })?;
    out[0] = b'$';
    out[1] = channel;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    Ok(INTERLEAVED_LEN)
}

/// What a sender report says (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SenderReport {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// Wall-clock time now, NTP format (seconds since 1900 in the high 32 bits).
    pub ntp: u64,
    /// The RTP timestamp that corresponds to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent so far.
    pub packets: u32,
    /// Payload bytes sent so far.
    pub octets: u32,
}

/// The CNAME in the report's SDES chunk (RFC 3550 §6.5: a compound packet carries one).
const CNAME: &[u8; 8] = b"zerocast";

/// Writes a compound RTCP packet into `out`: the sender report, then an SDES chunk with the
/// CNAME. Returns [`SENDER_REPORT_LEN`].
pub fn emit_sender_report(report: &SenderReport, out: &mut [u8]) -> Result<usize, RtpError> {
    let out = out
        .get_mut(..SENDER_REPORT_LEN)
        .ok_or(RtpError::BufferTooSmall {
            needed: SENDER_REPORT_LEN,
        })?;
    let (sr, sdes) = out.split_at_mut(28);
    // V=2, no reception report blocks, PT 200, length 6 (in 32-bit words minus one).
    sr[..4].copy_from_slice(&[0x80, 200, 0, 6]);
    sr[4..8].copy_from_slice(&report.ssrc.to_be_bytes());
    sr[8..16].copy_from_slice(&report.ntp.to_be_bytes());
    sr[16..20].copy_from_slice(&report.rtp_timestamp.to_be_bytes());
    sr[20..24].copy_from_slice(&report.packets.to_be_bytes());
    sr[24..28].copy_from_slice(&report.octets.to_be_bytes());
    // V=2, one chunk, PT 202, length 4: SSRC, CNAME item (type 1, length 8), end and padding.
    sdes[..4].copy_from_slice(&[0x81, 202, 0, 4]);
    sdes[4..8].copy_from_slice(&report.ssrc.to_be_bytes());
    sdes[8] = 1;
    sdes[9] = CNAME.len() as u8;
    sdes[10..18].copy_from_slice(CNAME);
    sdes[18..20].fill(0);
    Ok(SENDER_REPORT_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: RtpHeader = RtpHeader {
        payload_type: PT_DYNAMIC,
        marker: true,
        sequence: 0xBEEF,
        timestamp: 0x0102_0304,
        ssrc: 0xCAFE_F00D,
    };

    #[test]
    fn aac_hbr_has_one_au_header_with_the_frame_size() {
        let mut out = [0u8; 64];
        let n = emit_packet(Payload::AacHbr, &HEADER, &[7; 10], &mut out).unwrap();
        assert_eq!(n, 12 + 4 + 10);
        assert_eq!(RtpHeader::parse(&out), Some(HEADER));
        assert_eq!(&out[12..16], &[0, 16, 0, 10 << 3]);
        assert_eq!(&out[16..n], &[7; 10]);
        assert_eq!(
            emit_packet(Payload::AacHbr, &HEADER, &[0; 8192], &mut [0; 9000]),
            Err(RtpError::FrameTooLong { len: 8192 })
        );
    }

    #[test]
    fn mpa_and_l16_payloads() {
        let mut out = [0u8; 64];
        let n = emit_packet(Payload::Mpa, &HEADER, &[0xFF, 0xFB, 1], &mut out).unwrap();
        assert_eq!(&out[12..n], &[0, 0, 0, 0, 0xFF, 0xFB, 1]);
        let n = emit_packet(Payload::L16, &HEADER, &[1, 2, 3, 4], &mut out).unwrap();
        assert_eq!(&out[12..n], &[2, 1, 4, 3]);
        assert_eq!(
            emit_packet(Payload::L16, &HEADER, &[1, 2, 3], &mut out),
            Err(RtpError::OddPcm)
        );
        assert_eq!(
            emit_packet(Payload::Mpa, &HEADER, &[0; 60], &mut out),
            Err(RtpError::BufferTooSmall { needed: 76 })
        );
    }

    #[test]
    fn pcm_splits_into_whole_frames_under_the_payload_limit() {
        let pcm = [0u8; 4096 * 4 + 3];
        assert!(l16_pieces(&pcm, 2).all(|p| p.len() <= MAX_PAYLOAD && p.len() % 4 == 0));
        assert_eq!(
            l16_pieces(&pcm, 2).map(<[u8]>::len).sum::<usize>(),
            4096 * 4
        );
    }

    #[test]
    fn sender_report_and_interleaved_header() {
        let mut out = [0u8; SENDER_REPORT_LEN];
        let report = SenderReport {
            ssrc: 1,
            ntp: 0x1122_3344_5566_7788,
            rtp_timestamp: 9,
            packets: 3,
            octets: 300,
        };
        assert_eq!(emit_sender_report(&report, &mut out), Ok(48));
        assert_eq!(&out[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&out[8..12], &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(&out[28..32], &[0x81, 202, 0, 4]);
        let mut head = [0u8; 4];
        assert_eq!(emit_interleaved(1, 300, &mut head), Ok(4));
        assert_eq!(head, [b'$', 1, 1, 44]);
        assert_eq!(
            emit_interleaved(0, 70_000, &mut head),
            Err(RtpError::PacketTooLong)
        );
    }
}
