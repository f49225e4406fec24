//! The HTTP listeners' framings over arbitrary input: `adts`, `flac`, `mp4` and `icy`.
//!
//! Input: byte 0 seeds the choices, byte 1 picks the framing, the rest is its input.
//! - ADTS: any bytes as an AudioSpecificConfig and as a header either fail with a typed error or
//!   give a header that emits and parses back to itself;
//! - FLAC: any rate, channel count and block size is accepted or refused; any PCM either fails
//!   without writing or gives a frame no longer than `max_frame_len` that starts with the sync;
//! - MP4: any AudioSpecificConfig makes an init segment or `ConfigTooLong`; the boxes of an init
//!   segment and of a fragment of random samples tile exactly the length written;
//! - ICY: any text gives a block of `block_len` bytes, 1 + 16·L, whose title has no control
//!   characters and is a prefix of the text's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::adts::{AdtsHeader, HEADER_LEN};
use zerocast_core::flac::FlacStream;
use zerocast_core::icy;
use zerocast_core::mp4::{self, Codec, Mp4Error, Sample, Track};
use zerocast_core_fuzz::{seed_and_rest, Bytes, Rng};

const SENTINEL: u8 = 0xA5;

/// The box sizes of `bytes` add up to its length.
fn boxes_tile(bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && at + size <= bytes.len(),
            "box at {at} of size {size}"
        );
        at += size;
    }
}

fn adts(data: &[u8]) {
    if let Ok(h) = AdtsHeader::from_audio_specific_config(data) {
        let mut out = [0u8; HEADER_LEN];
        let payload = data.len() * 37 % 8200;
        match h.emit(payload, &mut out) {
            Ok(n) => assert_eq!(AdtsHeader::parse(&out[..n]), Ok((h, payload + HEADER_LEN))),
            Err(_) => assert!(payload + HEADER_LEN > 0x1FFF),
        }
    }
    if let Ok((h, len)) = AdtsHeader::parse(data) {
        let mut out = [0u8; HEADER_LEN];
        if len >= HEADER_LEN {
            h.emit(len - HEADER_LEN, &mut out).unwrap();
            assert_eq!(AdtsHeader::parse(&out), Ok((h, len)));
        }
    }
}

fn flac(rng: &mut Rng, data: &[u8]) {
    let mut b = Bytes(data);
    let (Some(rate), Some(channels), Some(block)) = (b.u32(), b.u8(), b.u16()) else {
        return;
    };
    let Ok(stream) = FlacStream::new(rate % (1 << 21), channels % 10, block) else {
        return;
    };
    let pcm = b.0;
    let mut out = vec![SENTINEL; stream.max_frame_len() + rng.below(3)];
    match stream.emit_frame(rng.next_u32(), pcm, &mut out) {
        Ok(n) => {
            assert!(n <= stream.max_frame_len());
            assert_eq!(&out[..2], &[0xFF, 0xF8]);
        }
        Err(_) => assert!(out.iter().all(|&x| x == SENTINEL), "an error wrote output"),
    }
    assert_eq!(stream.streaminfo().len(), 34);
}

fn mp4(rng: &mut Rng, data: &[u8]) {
    let split = rng.below(data.len() + 1);
    let (config, payload) = data.split_at(split);
    let track = Track {
        rate: 1 + rng.next_u32() % 200_000,
        channels: 1 + rng.below(8) as u8,
        codec: Codec::Aac { config },
    };
    let mut init = vec![0u8; 2048];
    match mp4::emit_init(&track, &mut init) {
        Ok(n) => boxes_tile(&init[..n]),
        Err(e) => assert_eq!(e, Mp4Error::ConfigTooLong { len: config.len() }),
    }
    let mut samples = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() && samples.len() < 64 {
        let (data, tail) = rest.split_at(rng.below(rest.len() + 1));
        samples.push(Sample {
            duration: rng.next_u32(),
            data,
        });
        rest = tail;
    }
    let mut out = vec![0u8; mp4::fragment_len(&samples)];
    match mp4::emit_fragment(
        rng.next_u32(),
        u64::from(rng.next_u32()) << 20,
        &samples,
        &mut out,
    ) {
        Ok(n) => {
            assert_eq!(n, out.len());
            boxes_tile(&out);
        }
        Err(e) => assert!(samples.is_empty() && e == Mp4Error::NoSamples),
    }
}

fn icy_title(data: &[u8]) {
    let title = String::from_utf8_lossy(data);
    let mut out = vec![0u8; icy::MAX_BLOCK_LEN];
    let n = icy::emit_title(&title, &mut out).unwrap();
    assert_eq!(n, icy::block_len(&title));
    assert_eq!(n, 1 + 16 * usize::from(out[0]));
    let text = std::str::from_utf8(&out[1..n])
        .unwrap()
        .trim_end_matches('\0');
    let inner = text
        .strip_prefix("StreamTitle='")
        .and_then(|t| t.strip_suffix("';"))
        .unwrap();
    assert!(!inner.chars().any(char::is_control));
    let kept: String = title.chars().filter(|c| !c.is_control()).collect();
    assert!(kept.starts_with(inner));
}

fuzz_target!(|data: &[u8]| {
    let Some((mut rng, rest)) = seed_and_rest(data) else {
        return;
    };
    let Some((&pick, rest)) = rest.split_first() else {
        return;
    };
    match pick % 4 {
        0 => adts(rest),
        1 => flac(&mut rng, rest),
        2 => mp4(&mut rng, rest),
        _ => icy_title(rest),
    }
});
