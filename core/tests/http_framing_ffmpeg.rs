//! The HTTP framings against a real decoder: FLAC verbatim frames in fragmented MP4, AAC frames
//! (from ffmpeg's own AAC encoder, parsed out of its FLV output) as ADTS and in fragmented MP4,
//! written by the core into files that ffmpeg decodes and ffprobe reads.
//!
//! Needs `ffmpeg` and `ffprobe` on PATH; without them the tests are skipped, unless `CI` is set.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{analyse, decode, require, scratch_dir, Tone, FRAME_BYTES, RATE};
use zerocast_core::adts::AdtsHeader;
use zerocast_core::flac::FlacStream;
use zerocast_core::mp4::{self, Codec, Sample, Track};

const SECONDS: u64 = 5;
/// FLAC block: 20 ms at 44.1 kHz, the capture period's size.
const BLOCK: u16 = 882;

fn tone_pcm(seconds: u64) -> Vec<u8> {
    let mut pcm = Vec::new();
    Tone::default().render(seconds * RATE, &mut pcm);
    pcm
}

/// Init segment, then fragments of `per_fragment` samples each, decode times from `start`.
fn fmp4(track: &Track<'_>, frames: &[(u32, Vec<u8>)], per_fragment: usize, start: u64) -> Vec<u8> {
    let mut file = vec![0u8; 1024];
    let n = mp4::emit_init(track, &mut file).unwrap();
    file.truncate(n);
    let mut time = start;
    for (seq, group) in frames.chunks(per_fragment).enumerate() {
        let samples: Vec<Sample<'_>> = group
            .iter()
            .map(|(duration, data)| Sample {
                duration: *duration,
                data,
            })
            .collect();
        let mut out = vec![0u8; mp4::fragment_len(&samples)];
        let n = mp4::emit_fragment(seq as u32 + 1, time, &samples, &mut out).unwrap();
        assert_eq!(n, out.len());
        file.extend_from_slice(&out);
        time += group.iter().map(|(d, _)| u64::from(*d)).sum::<u64>();
    }
    file
}

#[test]
fn flac_verbatim_in_fmp4_decodes_bit_exact() {
    if !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("flac_fmp4");
    let pcm = tone_pcm(SECONDS);
    let stream = FlacStream::new(RATE as u32, 2, BLOCK).unwrap();
    let block_bytes = usize::from(BLOCK) * FRAME_BYTES;
    let frames: Vec<(u32, Vec<u8>)> = pcm
        .chunks(block_bytes)
        .enumerate()
        .map(|(i, chunk)| {
            let mut out = vec![0u8; stream.max_frame_len()];
            let n = stream.emit_frame(i as u32, chunk, &mut out).unwrap();
            out.truncate(n);
            ((chunk.len() / FRAME_BYTES) as u32, out)
        })
        .collect();
    let info = stream.streaminfo();
    let track = Track {
        rate: RATE as u32,
        channels: 2,
        codec: Codec::Flac { streaminfo: &info },
    };
    let path = dir.join("tone.mp4");
    std::fs::write(&path, fmp4(&track, &frames, 5, 0)).unwrap();
    let decoded = decode(&path).unwrap();
    let stats = analyse(&decoded);
    stats.assert_tone("FLAC in fMP4");
    assert_eq!(stats.frames as u64, SECONDS * RATE, "{stats:?}");
    assert!(decoded == pcm, "FLAC verbatim must be lossless");
}

/// Encodes `pcm` with ffmpeg's AAC encoder into FLV and returns the AudioSpecificConfig and the
/// raw AAC frames of its audio tags.
fn ffmpeg_aac_frames(dir: &Path, pcm: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let raw = dir.join("tone.raw");
    let flv = dir.join("aac.flv");
    std::fs::write(&raw, pcm).unwrap();
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "s16le",
            "-ar",
            "44100",
            "-ac",
            "2",
        ])
        .arg("-i")
        .arg(&raw)
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(&flv)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg aac encode: {status}");
    let bytes = std::fs::read(&flv).unwrap();
    let mut at = usize::from(bytes[8]) + 4; // header size field, then PreviousTagSize0
    let (mut config, mut frames) = (Vec::new(), Vec::new());
    while at + 11 <= bytes.len() {
        let kind = bytes[at];
        let size = u32::from_be_bytes([0, bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let body = &bytes[at + 11..at + 11 + size];
        if kind == 8 && body[0] >> 4 == 10 {
            match body[1] {
                0 => config = body[2..].to_vec(),
                _ => frames.push(body[2..].to_vec()),
            }
        }
        at += 11 + size + 4;
    }
    assert!(
        !config.is_empty() && !frames.is_empty(),
        "no AAC in ffmpeg's FLV"
    );
    (config, frames)
}

#[test]
fn aac_frames_as_adts_and_in_fmp4_decode_to_the_tone() {
    if !require("ffmpeg", "-version") || !require("ffprobe", "-version") {
        return;
    }
    let dir = scratch_dir("aac_framing");
    let (config, frames) = ffmpeg_aac_frames(&dir, &tone_pcm(SECONDS));

    let header = AdtsHeader::from_audio_specific_config(&config).unwrap();
    assert_eq!(header.sample_rate(), RATE as u32);
    let mut adts = Vec::new();
    for frame in &frames {
        let mut h = [0u8; 7];
        header.emit(frame.len(), &mut h).unwrap();
        adts.extend_from_slice(&h);
        adts.extend_from_slice(frame);
    }
    let path = dir.join("tone.aac");
    std::fs::write(&path, &adts).unwrap();
    let stats = analyse(&decode(&path).unwrap());
    stats.assert_tone("ADTS");
    assert!((stats.seconds() - SECONDS as f64).abs() < 0.1, "{stats:?}");

    let track = Track {
        rate: RATE as u32,
        channels: 2,
        codec: Codec::Aac { config: &config },
    };
    let timed: Vec<(u32, Vec<u8>)> = frames.iter().map(|f| (1024, f.clone())).collect();
    let path = dir.join("tone_aac.mp4");
    std::fs::write(&path, fmp4(&track, &timed, 2, 0)).unwrap();
    let stats = analyse(&decode(&path).unwrap());
    stats.assert_tone("AAC in fMP4");
    assert!((stats.seconds() - SECONDS as f64).abs() < 0.1, "{stats:?}");

    // A listener joining an hour into the stream: its first fragment's tfdt is the sample
    // position, and that is the time the demuxer gives the first packet.
    let hour = 3600 * RATE;
    let path = dir.join("joined_late.mp4");
    std::fs::write(&path, fmp4(&track, &timed[..20], 2, hour)).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "packet=pts",
        ])
        .args(["-of", "csv=p=0", "-read_intervals", "%+#1"])
        .arg(&path)
        .output()
        .unwrap();
    let pts: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(pts, hour);
}
