//! End to end through real ALSA: a 1 kHz tone played into a private PulseAudio's null sink
//! `radio`, captured by the zerocast binary from `alsa:pulse` (`PULSE_SOURCE=radio.monitor`),
//! served as PCM and as AAC, played by ffmpeg and rtmpdump. Mid-stream the sink is unloaded for a
//! few seconds and loaded again: the players must stay connected and hear tone → digital silence
//! for as long as the sink was gone → tone, with RTMP timestamps that never go back or jump.
//! AAC needs the binary built with the `aac` feature (a default one).
//!
//! Needs pulseaudio, pulseaudio-utils (pacat, pactl), libasound2-plugins, ffmpeg and rtmpdump;
//! a missing one skips the test, or fails it when `CI` is set. Run with `--nocapture` for the
//! numbers; `ZEROCAST_E2E_KEEP=1` keeps the recordings and logs.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::analysis::{analyze_tone, ToneParams, ToneReport};
use common::live::{ffmpeg_wav, rtmpdump_flv, Zerocast};
use common::pulse::{PulseServer, RATE};
use common::server::Codec;
use common::wav::Wav;
use common::{flv, process, pulse, tools_available, HarnessError, TempDir};

/// The fed tone: 1 kHz at half scale.
const TONE_HZ: f64 = 1000.0;
const TONE_AMPLITUDE: f64 = 16384.0;
/// What ffmpeg records (`-t`).
const RECORD: Duration = Duration::from_secs(12);
/// Tone before the sink goes, counted from ffmpeg's connection.
const BEFORE: Duration = Duration::from_secs(4);
/// How long the sink stays unloaded. zerocast retries the device every 2 s
/// (`capture::alsa::RETRY_INTERVAL`), so the silence lasts until the first retry after the sink
/// is back: 3.5 s puts that retry (at 4 s) half a second after it, in the middle of the allowed
/// ± 1 s.
const UNLOADED: Duration = Duration::from_millis(3500);
/// zerocast's capture period (`--period-ms` default).
const PERIOD_MS: u32 = 20;
/// Allowed difference between the silence heard and the time the sink was gone.
const SILENCE_TOLERANCE: f64 = 1.0;
/// The capture module's log lines for the two transitions (`capture/alsa.rs`).
const LOST_LINE: &str = "capture lost";
const BACK_LINE: &str = "device back after";

/// What the checks need to know of the codec the stream is served in.
#[derive(Clone, Copy)]
struct Served {
    codec: Codec,
    /// Capture frames per RTMP audio message: a period for PCM, an AAC-LC frame for AAC.
    frames_per_message: u32,
    /// Audio next to each edge of the silence left out of the tone checks: a transform codec
    /// smears the cut over its frame and window overlap (AAC-LC: 1024 + 1024 frames, 46 ms), so
    /// the tone decays into the silence and builds up out of it instead of stopping at a sample.
    edge_ms: f64,
}

impl Served {
    /// How far apart consecutive messages' timestamps are, in ms.
    fn message_ms(self) -> f64 {
        f64::from(self.frames_per_message) * 1000.0 / f64::from(RATE)
    }
}

#[test]
fn alsa_pulse_source_vanishing_and_returning_pcm() -> Result<(), HarnessError> {
    vanishing_and_returning(Served {
        codec: Codec::Pcm,
        frames_per_message: RATE * PERIOD_MS / 1000,
        edge_ms: 0.0,
    })
}

#[test]
fn alsa_pulse_source_vanishing_and_returning_aac() -> Result<(), HarnessError> {
    vanishing_and_returning(Served {
        codec: Codec::Aac,
        frames_per_message: 1024,
        edge_ms: 50.0,
    })
}

/// The sink's unplug and return, with the stream served as `served`.
fn vanishing_and_returning(served: Served) -> Result<(), HarnessError> {
    if !pulse::available()? || !tools_available(&["ffmpeg", "rtmpdump"])? {
        return Ok(());
    }
    TempDir::run(&format!("alsa-{}", served.codec.zerocast_flag()), |dir| {
        let pulse = PulseServer::start(&dir.join("pulse"))?;
        let sink = pulse.load_null_sink("radio", RATE)?;
        let tone = pulse.play_tone("radio", RATE, TONE_HZ, TONE_AMPLITUDE, "tone1")?;

        let mut env = pulse.env();
        env.push(("PULSE_SOURCE", "radio.monitor".to_owned()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut zc = Zerocast::start(
            &[
                "--source",
                "alsa:pulse",
                "--codec",
                served.codec.zerocast_flag(),
            ],
            &env,
            None,
            dir,
        )?;

        let wav = dir.join("ffmpeg.wav");
        let recording = dir.join("rtmpdump.flv");
        let mut ffmpeg = ffmpeg_wav(&zc.url, RECORD, &wav, &dir.join("ffmpeg.log"))?;
        let mut rtmpdump = rtmpdump_flv(&zc.url, &recording, &dir.join("rtmpdump.log"))?;
        let limit = Duration::from_secs(10);
        let connected = process::wait_connected(ffmpeg.pid(), zc.port, limit)?;
        process::wait_connected(rtmpdump.pid(), zc.port, limit)?;

        thread::sleep((connected + BEFORE).saturating_duration_since(Instant::now()));
        let unloaded = Instant::now();
        pulse.unload_module(sink)?;
        // pacat's stream dies with its sink.
        tone.wait_exit(Duration::from_secs(5))?;
        let lost = zc.wait_log(LOST_LINE, Duration::from_secs(3))?;
        thread::sleep((unloaded + UNLOADED).saturating_duration_since(Instant::now()));
        pulse.load_null_sink("radio", RATE)?;
        let reloaded = Instant::now();
        let _tone = pulse.play_tone("radio", RATE, TONE_HZ, TONE_AMPLITUDE, "tone2")?;
        let back = zc.wait_log(BACK_LINE, Duration::from_secs(5))?;
        eprintln!(
            "unloaded {:.2} s after ffmpeg connected; loss logged after {:.0} ms; reloaded after \
             {:.2} s; capture back after {:.2} s",
            (unloaded - connected).as_secs_f64(),
            (lost - unloaded).as_secs_f64() * 1000.0,
            (reloaded - unloaded).as_secs_f64(),
            (back - unloaded).as_secs_f64(),
        );

        // ffmpeg must record all of its -t without losing the connection.
        let status = ffmpeg.wait_timeout(RECORD + Duration::from_secs(15))?;
        if !status.success() {
            return Err(ffmpeg.failed(format!("exited with {status}")));
        }
        let ran = ffmpeg.started().elapsed();
        let (_, clean) = rtmpdump.stop(nix::sys::signal::Signal::SIGINT, Duration::from_secs(3))?;
        if !zc.process.is_running()? {
            return Err(zc.process.failed("exited during the test".to_owned()));
        }
        eprintln!(
            "ffmpeg ran {:.2} s; rtmpdump stopped cleanly: {clean}",
            ran.as_secs_f64()
        );

        check_recording(
            &Wav::read(&wav)?,
            (reloaded - unloaded).as_secs_f64(),
            served,
        )?;
        check_timestamps(&flv::read(&recording)?, served)?;
        for line in [LOST_LINE, BACK_LINE] {
            let n = zc.log_count(line);
            if n != 1 {
                return Err(zc
                    .process
                    .failed(format!("{n} log lines with {line:?}, expected 1")));
            }
        }
        zc.stop_cleanly()
    })
}

/// Tone, then digital silence for `unloaded_s` ± [`SILENCE_TOLERANCE`], then tone again; the
/// tone parts (less `served.edge_ms` next to the silence) at 1 kHz without gaps or phase jumps,
/// and all of `RECORD` recorded.
fn check_recording(wav: &Wav, unloaded_s: f64, served: Served) -> Result<(), HarnessError> {
    let fail = |detail: String| HarnessError::Failed {
        what: "ffmpeg's recording".to_owned(),
        detail,
    };
    let rate = f64::from(wav.sample_rate);
    let channels = usize::from(wav.channels);
    let frames: Vec<&[i16]> = wav.samples.chunks_exact(channels).collect();
    let (silence_start, silence_len) = longest_zero_run(&frames);
    let silence_s = silence_len as f64 / rate;
    let edge = (served.edge_ms * rate / 1000.0).round() as usize;
    let silence_end = silence_start + silence_len;
    let before = Wav {
        samples: wav.samples[..silence_start.saturating_sub(edge) * channels].to_vec(),
        ..wav.clone()
    };
    let after = Wav {
        samples: wav.samples[(silence_end + edge).min(frames.len()) * channels..].to_vec(),
        ..wav.clone()
    };
    let part = |name: &str, part: &Wav| -> Result<ToneReport, HarnessError> {
        let report = analyze_tone(part, &ToneParams::default())
            .map_err(|e| fail(format!("{name} the silence: {e}")))?;
        eprintln!(
            "  {name:6} silence: {:.3} s of audio: {report}",
            part.duration_secs()
        );
        Ok(report)
    };
    eprintln!(
        "recording {:.3} s: silence of {silence_s:.3} s at {:.3} s (sink gone {unloaded_s:.3} s)",
        wav.duration_secs(),
        silence_start as f64 / rate
    );
    let reports = [part("before", &before)?, part("after", &after)?];
    let mut problems = Vec::new();
    if (silence_s - unloaded_s).abs() > SILENCE_TOLERANCE {
        problems.push(format!(
            "silence {silence_s:.3} s, sink gone {unloaded_s:.3} s"
        ));
    }
    let expected = RECORD.as_secs_f64();
    if (wav.duration_secs() - expected).abs() > 0.05 * expected {
        problems.push(format!(
            "{:.3} s recorded, expected {expected:.3} s",
            wav.duration_secs()
        ));
    }
    for (name, part, r) in [
        ("before", &before, &reports[0]),
        ("after", &after, &reports[1]),
    ] {
        if (r.frequency_hz - TONE_HZ).abs() > 0.02 * TONE_HZ {
            problems.push(format!("{name}: {:.1} Hz", r.frequency_hz));
        }
        if r.longest_gap_ms > f64::from(PERIOD_MS) {
            problems.push(format!("{name}: gap of {:.1} ms", r.longest_gap_ms));
        }
        if r.discontinuities > 0 {
            problems.push(format!("{name}: {} phase jumps", r.discontinuities));
        }
        if part.duration_secs() < 2.0 {
            problems.push(format!(
                "{name}: only {:.3} s of tone",
                part.duration_secs()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(problems.join("; ")))
    }
}

/// Start and length (in frames) of the longest run of all-zero frames.
fn longest_zero_run(frames: &[&[i16]]) -> (usize, usize) {
    let mut best = (0, 0);
    let mut start = 0;
    for (i, frame) in frames.iter().enumerate() {
        if frame.iter().any(|s| *s != 0) {
            start = i + 1;
        } else if i + 1 - start > best.1 {
            best = (start, i + 1 - start);
        }
    }
    best
}

/// rtmpdump's audio timestamps (the AAC sequence header's aside) never go back and never step
/// by more than two messages — also across the silence — and span what it recorded.
fn check_timestamps(tags: &[flv::Tag], served: Served) -> Result<(), HarnessError> {
    let timestamps: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == flv::TAG_AUDIO && !is_aac_sequence_header(t))
        .map(|t| t.timestamp)
        .collect();
    let message_ms = served.message_ms();
    let largest = flv::check_timestamps(&timestamps, (2.0 * message_ms).ceil() as u32)?;
    let first = timestamps.first().copied().unwrap_or(0);
    let last = timestamps.last().copied().unwrap_or(0);
    eprintln!(
        "rtmpdump: {} audio messages, {first} → {last} ms, largest step {largest} ms",
        timestamps.len()
    );
    // Every message is as long as the last: the timestamps advance by exactly that on average,
    // counted from the last message stamped `first`: the AAC encoder's priming packets (its
    // delay, before the stream's start) are all stamped 0.
    let from = timestamps.iter().rposition(|t| *t == first).unwrap_or(0);
    let span = f64::from(last - first);
    let messages = (timestamps.len() - from).saturating_sub(1) as f64;
    if (span - messages * message_ms).abs() > message_ms {
        return Err(HarnessError::Failed {
            what: "rtmpdump's timestamps".to_owned(),
            detail: format!("{messages} messages of {message_ms:.2} ms span {span} ms"),
        });
    }
    Ok(())
}

/// An AAC sequence header audio tag (SoundFormat 10, AACPacketType 0): stamped when sent, not with
/// the stream position of audio.
fn is_aac_sequence_header(tag: &flv::Tag) -> bool {
    tag.data.first().map(|b| b >> 4) == Some(10) && tag.data.get(1) == Some(&0)
}
