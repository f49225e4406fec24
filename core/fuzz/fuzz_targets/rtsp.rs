//! RTSP listeners' input and output over arbitrary bytes: `rtsp` and `rtp`.
//!
//! Input: byte 0 seeds the choices, the rest is what a player sends.
//! - `parse` never asks for more than it may buffer: a request is at most `MAX_HEAD + MAX_BODY`
//!   bytes and no longer than the input, an interleaved frame at most 4 + 65535; `Partial` only
//!   while the input is shorter than those limits; the input consumed request by request (and
//!   frame by frame) ends in `Partial` or an error, never a loop;
//! - every `Transport` header seen parses or is refused; every request URI gives `/` or a path
//!   that is a suffix of it;
//! - the same bytes as an AAC frame, MP3 frame or PCM make packets of `packet_len` bytes whose
//!   RTP header reads back, or a typed error with nothing written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::rtp::{self, Payload, RtpHeader};
use zerocast_core::rtsp::{self, Input, MAX_BODY, MAX_HEAD};
use zerocast_core_fuzz::{seed_and_rest, Rng};

const SENTINEL: u8 = 0xA5;

fn requests(mut rest: &[u8]) {
    loop {
        match rtsp::parse(rest) {
            Ok(Input::Partial) | Err(_) => return,
            Ok(Input::Interleaved { len, .. }) => {
                assert!((4..=4 + 65535).contains(&len));
                rest = rest.get(len..).unwrap_or(&[]);
            }
            Ok(Input::Request(r)) => {
                assert!(r.len > 0 && r.len <= rest.len() && r.len <= MAX_HEAD + MAX_BODY);
                if let Some(t) = r.transport {
                    let _ = rtsp::parse_transport(t);
                }
                if let Some(path) = rtsp::uri_path(r.uri) {
                    assert!(path == "/" || r.uri.ends_with(path));
                }
                rest = &rest[r.len..];
            }
        }
    }
}

fn packets(rng: &mut Rng, frame: &[u8]) {
    let header = RtpHeader {
        payload_type: (rng.next_u32() & 0x7F) as u8,
        marker: rng.next_u32() & 1 == 1,
        sequence: rng.next_u32() as u16,
        timestamp: rng.next_u32(),
        ssrc: rng.next_u32(),
    };
    for payload in [Payload::AacHbr, Payload::Mpa, Payload::L16] {
        let len = rtp::packet_len(payload, frame.len());
        let mut out = vec![SENTINEL; len + rng.below(3)];
        let size = rng.below(out.len() + 1);
        match rtp::emit_packet(payload, &header, frame, &mut out[..size]) {
            Ok(n) => {
                assert_eq!(n, len);
                assert_eq!(RtpHeader::parse(&out), Some(header));
            }
            Err(_) => assert!(out.iter().all(|&b| b == SENTINEL), "an error wrote output"),
        }
    }
    let channels = 1 + rng.below(8) as u8;
    let total: usize = rtp::l16_pieces(frame, channels).map(<[u8]>::len).sum();
    assert!(frame.len() - total < 2 * usize::from(channels));
}

fuzz_target!(|data: &[u8]| {
    let Some((mut rng, rest)) = seed_and_rest(data) else {
        return;
    };
    requests(rest);
    packets(&mut rng, rest);
});
