//! `PcmS16Le` / `AdpcmSwf` over arbitrary samples, fed in random frame counts per packet.
//!
//! Input: byte 0 seeds the packet sizes, byte 1 picks the encoder (format, channels, rate, code
//! size, or a configuration FLV cannot signal), the rest is interleaved S16LE samples. Per packet:
//! - a count that is not whole frames is `PartialFrame`, a buffer one byte short of
//!   `max_encoded_len` is `OutputTooSmall`, and on every error the buffer is left untouched;
//! - ADPCM refuses exactly the counts `fit_frames` changes, and the fitted count is accepted;
//! - the length written is `max_encoded_len(frames)`; PCM is the samples' little-endian bytes;
//!   an ADPCM packet has the code size field, the exact first sample of every 4096-frame block
//!   where the SWF layout puts it, and decodes (by ffmpeg's sample count, `get_nb_samples` in
//!   libavcodec/adpcm.c) to exactly the frames given.
//!
//! Then the push/pull shape: the same samples pushed into a [`Framed`] encoder in random pieces
//! come out as the block encoder's packets of `frame_len` frames (the last one shorter), at
//! positions that count frames; and the 48 kHz resampler gives the same output in any pieces
//! and through any output room, exactly `ceil(frames * 147 / 160)` frames in all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::codec::{
    AdpcmSwf, BlockEncoder, CodecError, Encoder, Framed, PcmS16Le, Resampler,
};
use zerocast_core_fuzz::{seed_and_rest, Rng};

const RATES: [u32; 4] = [5512, 11_025, 22_050, 44_100];
const SENTINEL: u8 = 0xA5;

/// `n` bits at bit offset `at`, big-endian (the SWF ADPCM bit order).
fn bits(buf: &[u8], at: usize, n: usize) -> u32 {
    (at..at + n).fold(0, |v, i| {
        (v << 1) | u32::from(buf[i / 8] >> (7 - i % 8) & 1)
    })
}

/// Checks an ADPCM packet made from `pcm` (whole frames of `channels` samples).
fn check_adpcm(packet: &[u8], pcm: &[i16], channels: usize, code_bits: usize) {
    let frames = pcm.len() / channels;
    assert_eq!(
        bits(packet, 0, 2) as usize + 2,
        code_bits,
        "code size field"
    );
    let header = 22 * channels;
    let block = header + code_bits * channels * 4095;
    for (b, first) in pcm.chunks(4096 * channels).enumerate() {
        for (c, &sample) in first.iter().take(channels).enumerate() {
            let at = 2 + b * block + c * 22;
            assert_eq!(
                bits(packet, at, 16) as u16 as i16,
                sample,
                "block {b} ch {c}"
            );
        }
    }
    // ffmpeg's get_nb_samples for AV_CODEC_ID_ADPCM_SWF.
    let buf_bits = packet.len() * 8 - 2;
    let left = buf_bits % block;
    let partial = if left >= header {
        1 + (left - header) / (code_bits * channels)
    } else {
        0
    };
    assert_eq!(
        buf_bits / block * 4096 + partial,
        frames,
        "decoded frame count"
    );
}

/// The encoder under test.
enum Codec {
    Pcm(PcmS16Le),
    Adpcm(AdpcmSwf, usize),
}

impl Codec {
    fn encoder(&mut self) -> &mut dyn BlockEncoder {
        match self {
            Codec::Pcm(e) => e,
            Codec::Adpcm(e, _) => e,
        }
    }

    fn fit(&self, frames: usize) -> usize {
        match self {
            Codec::Pcm(_) => frames,
            Codec::Adpcm(e, _) => e.fit_frames(frames),
        }
    }

    /// Encodes `pcm` into a buffer of `room` bytes; an error must leave the buffer untouched.
    fn encode(&mut self, pcm: &[i16], room: usize) -> (Result<usize, CodecError>, Vec<u8>) {
        let mut out = vec![SENTINEL; room];
        let result = self.encoder().encode(pcm, &mut out);
        if result.is_err() {
            assert!(
                out.iter().all(|&b| b == SENTINEL),
                "{result:?} wrote output"
            );
        }
        (result, out)
    }
}

/// Builds the encoder byte `config` asks for, or checks the refusal of what FLV cannot signal.
fn codec(config: u8) -> Option<(Codec, usize)> {
    let rate = RATES[usize::from(config >> 2) & 3];
    let channels = 1 + (config >> 1 & 1);
    let code_bits = 2 + (config >> 4 & 3);
    // Top bits 01 / 10: a channel count or rate FLV cannot signal.
    let invalid = matches!(config >> 6, 1 | 2);
    let (rate, channels) = match config >> 6 {
        1 => (rate, [0, 3][usize::from(channels - 1)]),
        2 => (48_000, channels),
        _ => (rate, channels),
    };
    let made = if config & 1 == 0 {
        PcmS16Le::new(rate, channels).map(Codec::Pcm)
    } else {
        AdpcmSwf::new(rate, channels, code_bits).map(|e| Codec::Adpcm(e, usize::from(code_bits)))
    };
    match made {
        Ok(mut codec) => {
            assert!(!invalid, "accepted {rate} Hz, {channels} channels");
            let header = codec.encoder().tag_header();
            assert_eq!(header.rate.hz(), rate);
            assert_eq!(header.stereo, channels == 2);
            Some((codec, usize::from(channels)))
        }
        Err(e) => {
            assert!(invalid && matches!(e, CodecError::Flv(_)), "{e}");
            None
        }
    }
}

/// Pushes `samples` (whole frames of `channels`) into a [`Framed`] `block` in random pieces and
/// checks every packet against what a copy of `block` makes of the same frames.
fn check_framed<B: BlockEncoder + Clone>(
    block: B,
    rng: &mut Rng,
    samples: &[i16],
    channels: usize,
) {
    let mut reference = block.clone();
    let frame_len = 1 + rng.below(2048);
    if block.fit_frames(frame_len) == 0 {
        return;
    }
    let mut framed = Framed::new(block, frame_len, vec![0i16; frame_len * channels]).unwrap();
    let fitted = framed.frame_len();
    let samples = &samples[..samples.len() / channels * channels];
    let mut out = vec![0u8; framed.max_packet_len()];
    let mut expected_position = 0usize;
    let mut check = |framed: &mut Framed<B, Vec<i16>>, last: bool| {
        while let Some(packet) = framed.pull(&mut out).unwrap() {
            assert_eq!(packet.position, expected_position as i64);
            assert!(packet.frames == fitted || (last && packet.frames < fitted));
            let pcm = &samples[expected_position * channels..][..packet.frames * channels];
            let mut block_out = vec![0u8; reference.max_encoded_len(packet.frames)];
            let n = reference.encode(pcm, &mut block_out).unwrap();
            assert_eq!(&out[..packet.len], &block_out[..n]);
            expected_position += packet.frames;
        }
    };
    let mut rest = samples;
    while !rest.is_empty() {
        let piece = (1 + rng.below(3000)).min(rest.len() / channels) * channels;
        let taken = framed.push(&rest[..piece]).unwrap();
        rest = &rest[taken..];
        check(&mut framed, false);
    }
    framed.finish();
    check(&mut framed, true);
    // Only ADPCM's last packet may drop frames it cannot pad (fewer than 8).
    assert!(samples.len() / channels - expected_position < 8);
}

/// The resampler over `samples`: whole, and in random pieces through random output room.
fn check_resampler(rng: &mut Rng, samples: &[i16], channels: u8) {
    let run = |rng: &mut Rng, random: bool| {
        let mut r = Resampler::new(channels).unwrap();
        let mut produced = Vec::new();
        let mut buf = vec![0i16; samples.len() + 2];
        let mut rest = &samples[..samples.len() / usize::from(channels) * usize::from(channels)];
        while !rest.is_empty() {
            let room = if random {
                (usize::from(channels) * (1 + rng.below(300))).min(buf.len())
            } else {
                buf.len()
            };
            let piece = if random {
                rest.len().min(usize::from(channels) * (1 + rng.below(500)))
            } else {
                rest.len()
            };
            let (taken, written) = r.process(&rest[..piece], &mut buf[..room]);
            produced.extend_from_slice(&buf[..written]);
            rest = &rest[taken..];
        }
        let mut tail = [0i16; 64];
        let n = r.flush(&mut tail);
        produced.extend_from_slice(&tail[..n]);
        produced
    };
    let whole = run(rng, false);
    let frames = samples.len() / usize::from(channels);
    assert_eq!(
        whole.len() / usize::from(channels),
        (frames * 147).div_ceil(160)
    );
    assert_eq!(run(rng, true), whole);
}

fuzz_target!(|data: &[u8]| {
    let Some((mut rng, rest)) = seed_and_rest(data) else {
        return;
    };
    let Some((&config, rest)) = rest.split_first() else {
        return;
    };
    let samples: Vec<i16> = rest
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let Some((mut codec, channels)) = codec(config) else {
        return;
    };
    if samples.is_empty() {
        return;
    }
    // The signal is the input's samples repeated, so packets can be longer than the input and
    // span several 4096-frame ADPCM blocks.
    let mut position = 0;
    for _ in 0..6 {
        // Tiny, typical (up to the 2048 frames of a large ALSA period) and multi-block counts.
        let frames = match rng.below(4) {
            0 => rng.below(9000),
            1 => 1 + rng.below(8),
            _ => 1 + rng.below(2048),
        };
        let pcm: Vec<i16> = (position..position + frames * channels)
            .map(|k| samples[k % samples.len()])
            .collect();
        let max = codec.encoder().max_encoded_len(frames);
        if channels == 2 && !pcm.is_empty() && rng.below(8) == 0 {
            let (result, _) = codec.encode(&pcm[1..], max);
            let partial = CodecError::PartialFrame {
                samples: pcm.len() - 1,
                channels: 2,
            };
            assert_eq!(result, Err(partial));
        }
        let fit = codec.fit(frames);
        assert!(
            fit <= frames && frames - fit < 8,
            "fit_frames({frames}) = {fit}"
        );
        if fit != frames {
            let (result, _) = codec.encode(&pcm, max);
            assert_eq!(result, Err(CodecError::InexactFrameCount { frames, fit }));
        }
        let pcm = &pcm[..fit * channels];
        let needed = codec.encoder().max_encoded_len(fit);
        if needed > 0 && rng.below(8) == 0 {
            let (result, _) = codec.encode(pcm, needed - 1);
            let available = needed - 1;
            assert_eq!(
                result,
                Err(CodecError::OutputTooSmall { needed, available })
            );
        }
        let (result, out) = codec.encode(pcm, needed + rng.below(4));
        assert_eq!(result, Ok(needed), "{fit} frames");
        let packet = &out[..needed];
        match codec {
            Codec::Pcm(_) => {
                let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
                assert_eq!(packet, &bytes[..]);
            }
            Codec::Adpcm(_, code_bits) => check_adpcm(packet, pcm, channels, code_bits),
        }
        position += frames.max(1) * channels;
    }
    match codec {
        Codec::Pcm(block) => check_framed(block, &mut rng, &samples, channels),
        Codec::Adpcm(block, _) => check_framed(block, &mut rng, &samples, channels),
    }
    check_resampler(&mut rng, &samples, channels as u8);
});
