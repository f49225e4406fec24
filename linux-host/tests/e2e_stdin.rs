//! End to end from standard input: 3 s of deterministic pseudo-random 16-bit stereo PCM, piped
//! into the zerocast binary at real time (`--source stdin --codec pcm`), must reach rtmpdump and
//! ffmpeg bit-exact: what a player recorded is exactly the input's last samples, from at most one
//! period after its start to its very end, and the RTMP timestamps are the input positions.
//! At the end of the input zerocast exits 0 and both players see the end of the stream.
//!
//! Needs ffmpeg and rtmpdump; a missing one skips the test, or fails it when `CI` is set.
//! Run with `--nocapture` for the numbers.

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::live::{ffmpeg_raw, make_fifo, open_fifo_writer, rtmpdump_flv, Zerocast};
use common::{flv, process, tools_available, HarnessError, TempDir};

const RATE: u32 = 44_100;
const CHANNELS: usize = 2;
/// zerocast's default period: 20 ms.
const PERIOD_FRAMES: usize = 882;
/// 3 s and a partial period, so the end of input falls inside a period.
const INPUT_FRAMES: usize = 3 * RATE as usize + 123;
/// FLV audio tag header byte of 44.1 kHz 16-bit stereo little-endian PCM: SoundFormat 3,
/// SoundRate 3, SoundSize 1, SoundType 1 (FLV spec v10.1 E.4.2.1).
const PCM_TAG_HEADER: u8 = 0x3F;
/// Bytes the writer offers at a time, cycled: not frame-aligned, so frames and samples are split
/// across writes.
const WRITES: [usize; 5] = [1000, 3001, 4410, 17, 2205];
/// zerocast must exit this soon after its input ends.
const EXIT_LIMIT: Duration = Duration::from_secs(2);

/// The input: xorshift64* noise, every sample value likely, none repeating in a pattern.
fn input() -> Vec<i16> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..INPUT_FRAMES * CHANNELS)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 48) as u16 as i16
        })
        .collect()
}

#[test]
fn stdin_pcm_arrives_bit_exact_and_ends_the_stream() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "rtmpdump"])? {
        return Ok(());
    }
    TempDir::run("stdin", |dir| {
        let samples = input();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let fifo = make_fifo(&dir.join("stdin.fifo"))?;
        let (go, wait_go) = mpsc::channel::<()>();
        let writer = {
            let fifo = fifo.clone();
            thread::spawn(move || -> Result<Instant, HarnessError> {
                let mut file = open_fifo_writer(&fifo, Duration::from_secs(10))?;
                wait_go.recv_timeout(Duration::from_secs(30)).map_err(|_| {
                    HarnessError::Failed {
                        what: "stdin writer".to_owned(),
                        detail: "never told to start".to_owned(),
                    }
                })?;
                write_paced(&mut file, &bytes)?;
                Ok(Instant::now())
            })
        };
        let args = [
            "--source",
            "stdin",
            "--codec",
            "pcm",
            "--rate",
            "44100",
            "--channels",
            "2",
        ];
        let mut zc = Zerocast::start(&args, &[], Some(&fifo), dir)?;

        let recording = dir.join("rtmpdump.flv");
        let raw = dir.join("ffmpeg.s16");
        let mut rtmpdump = rtmpdump_flv(&zc.url, &recording, &dir.join("rtmpdump.log"))?;
        let mut ffmpeg = ffmpeg_raw(&zc.url, &raw, &dir.join("ffmpeg.log"))?;
        // Both players are playing before the first byte of input.
        process::wait_until("both players to play", Duration::from_secs(10), || {
            Ok(zc.log_count("play live/audio") == 2)
        })
        .map_err(|e| zc.process.failed(e.to_string()))?;
        let _ = go.send(());
        let ended = writer.join().map_err(|_| HarnessError::Failed {
            what: "stdin writer".to_owned(),
            detail: "panicked".to_owned(),
        })??;

        let status = zc.process.wait_timeout(EXIT_LIMIT)?;
        let exited = ended.elapsed();
        if !status.success() {
            return Err(zc
                .process
                .failed(format!("exited with {status} at end of input")));
        }
        let player_limit = Duration::from_secs(5);
        let dump_status = rtmpdump.wait_timeout(player_limit)?;
        let dump_after = ended.elapsed();
        let ffmpeg_status = ffmpeg.wait_timeout(player_limit)?;
        let ffmpeg_after = ended.elapsed();
        eprintln!(
            "end of input → zerocast exit 0 after {:.0} ms; rtmpdump exited ({dump_status}) \
             after {:.0} ms, ffmpeg ({ffmpeg_status}) after {:.0} ms",
            exited.as_secs_f64() * 1000.0,
            dump_after.as_secs_f64() * 1000.0,
            ffmpeg_after.as_secs_f64() * 1000.0,
        );
        if !ffmpeg_status.success() {
            return Err(ffmpeg.failed(format!("exited with {ffmpeg_status}")));
        }

        let tags = flv::read(&recording)?;
        let dumped = check_flv(&tags, &samples)?;
        let decoded = std::fs::read(&raw)
            .map_err(|e| HarnessError::io(format!("read {}", raw.display()), e))?;
        let decoded: Vec<i16> = decoded
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let from = check_tail("ffmpeg", &decoded, &samples)?;
        eprintln!(
            "rtmpdump: {} audio messages, bit-exact from frame {dumped}; ffmpeg: {} frames, \
             bit-exact from frame {from}; input {INPUT_FRAMES} frames",
            flv::audio_timestamps(&tags).len(),
            decoded.len() / CHANNELS
        );
        Ok(())
    })
}

/// Writes `bytes` in [`WRITES`]-sized pieces, each when real time reaches its position.
fn write_paced(file: &mut std::fs::File, bytes: &[u8]) -> Result<(), HarnessError> {
    let bytes_per_sec = f64::from(RATE) * (CHANNELS * 2) as f64;
    let start = Instant::now();
    let mut at = 0;
    for size in WRITES.iter().cycle() {
        if at == bytes.len() {
            break;
        }
        let due = start + Duration::from_secs_f64(at as f64 / bytes_per_sec);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let end = (at + size).min(bytes.len());
        file.write_all(&bytes[at..end])
            .map_err(|e| HarnessError::io("write zerocast's stdin", e))?;
        at = end;
    }
    Ok(())
}

/// Checks that `recorded` is exactly the end of `input`, starting at most one period into it;
/// returns the frame it starts at.
fn check_tail(who: &str, recorded: &[i16], input: &[i16]) -> Result<usize, HarnessError> {
    let fail = |detail: String| HarnessError::Failed {
        what: format!("{who}'s samples"),
        detail,
    };
    // 16 samples of noise occur once in the input: they place the recording.
    let key = recorded
        .get(..16)
        .ok_or_else(|| fail(format!("only {} samples", recorded.len())))?;
    let start = input
        .windows(key.len())
        .position(|w| w == key)
        .ok_or_else(|| fail("its first samples are nowhere in the input".to_owned()))?;
    if start > PERIOD_FRAMES * CHANNELS || start % CHANNELS != 0 {
        return Err(fail(format!(
            "starts at input sample {start}, more than one period in"
        )));
    }
    let expected = &input[start..];
    if let Some(i) = (0..recorded.len().min(expected.len())).find(|&i| recorded[i] != expected[i]) {
        return Err(fail(format!(
            "sample {i} differs from the input's sample {} (recording starts at input sample \
             {start})",
            start + i
        )));
    }
    if recorded.len() != expected.len() {
        return Err(fail(format!(
            "{} samples from input sample {start}: {} of the input's {} {}",
            recorded.len(),
            recorded.len().abs_diff(expected.len()),
            input.len(),
            if recorded.len() < expected.len() {
                "samples at its end are missing"
            } else {
                "samples too many at the end"
            }
        )));
    }
    Ok(start / CHANNELS)
}

/// rtmpdump's FLV: every audio tag PCM, their bodies the input's end bit-exact, and each tag's
/// timestamp its first frame's position in milliseconds. Returns the first frame.
fn check_flv(tags: &[flv::Tag], input: &[i16]) -> Result<usize, HarnessError> {
    let audio: Vec<&flv::Tag> = tags.iter().filter(|t| t.kind == flv::TAG_AUDIO).collect();
    let fail = |detail: String| HarnessError::Failed {
        what: "rtmpdump's FLV".to_owned(),
        detail,
    };
    if let Some(t) = audio
        .iter()
        .find(|t| t.data.first() != Some(&PCM_TAG_HEADER))
    {
        return Err(fail(format!(
            "audio tag at {} ms is not 44.1 kHz stereo PCM",
            t.timestamp
        )));
    }
    let samples: Vec<i16> = audio
        .iter()
        .flat_map(|t| {
            t.data[1..]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
        })
        .collect();
    let first = check_tail("rtmpdump", &samples, input)?;
    let mut position = first as u64;
    for tag in &audio {
        let expected = position * 1000 / u64::from(RATE);
        if u64::from(tag.timestamp) != expected {
            return Err(fail(format!(
                "tag of frame {position} has timestamp {} ms, expected {expected} ms",
                tag.timestamp
            )));
        }
        position += ((tag.data.len() - 1) / (2 * CHANNELS)) as u64;
    }
    Ok(first)
}
