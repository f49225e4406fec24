//! The ALSA capture paths that need a misbehaving card, through the real alsa-lib: a card that
//! refuses the rate or the channel count, one whose open fails with EBUSY or EACCES, and one
//! that overruns mid-stream.
//!
//! This machine (like CI) has no sound hardware and no snd-aloop, so the card is a fake:
//! `tests/alsa_fake/zcfake.c`, an alsa-lib external I/O ("ioplug") plugin that each test
//! compiles with gcc and loads through an `asound.conf` that first includes the system
//! configuration and then defines `pcm.fake_*` devices of `type zcfake` with the options under
//! test. zerocast gets it through `ALSA_CONFIG_PATH` and opens it like any card (nonblocking, hw
//! params, poll descriptors), so these tests prove what zerocast makes of alsa-lib's real
//! answers: the error messages the user reads, the exit code, and overrun recovery with its
//! status-line count.
//!
//! Needs gcc, libasound2-dev (`alsa/pcm_external.h`) and, for the overrun test, ffmpeg; a missing
//! one skips the tests, or fails them when `CI` is set. `ZEROCAST_E2E_KEEP=1` keeps the logs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::analysis::{analyze_tone, ToneParams};
use common::live::{ffmpeg_wav, run_to_exit_env, Zerocast};
use common::wav::Wav;
use common::{process, tools_available, HarnessError, TempDir};
use nix::errno::Errno;

/// The plugin's source.
const PLUGIN_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/alsa_fake/zcfake.c");
/// The header only libasound2-dev provides.
const IOPLUG_HEADER: &str = "/usr/include/alsa/pcm_external.h";
/// The fake card's tone (zcfake.c).
const TONE_HZ: f64 = 440.0;
/// When the overrun card reports its overrun, after its first start.
const XRUN_AFTER_MS: u64 = 1500;
/// How long a zerocast that fails at start-up may take to exit.
const EXIT_LIMIT: Duration = Duration::from_secs(15);
/// What the player records in the overrun test.
const RECORD: Duration = Duration::from_secs(4);

/// The fake devices, as `asound.conf` PCM definitions (`type zcfake` plus options).
fn devices() -> Vec<(&'static str, String)> {
    vec![
        ("fake_48k", r#"rates "48000""#.to_owned()),
        ("fake_mono", "channels_min 1 channels_max 1".to_owned()),
        ("fake_busy", format!("open_errno {}", Errno::EBUSY as i32)),
        (
            "fake_denied",
            format!("open_errno {}", Errno::EACCES as i32),
        ),
        (
            "fake_xrun",
            format!(r#"rates "44100" xrun_after_ms {XRUN_AFTER_MS}"#),
        ),
    ]
}

/// Builds the plugin into `dir` and writes `dir/asound.conf`; returns its path, or `None` when
/// the tests are skipped for a missing tool.
fn fake_card(dir: &Path) -> Result<Option<PathBuf>, HarnessError> {
    if !tools_available(&["gcc", IOPLUG_HEADER])? {
        return Ok(None);
    }
    let lib = dir.join("libasound_module_pcm_zcfake.so");
    let lib_s = lib.display().to_string();
    let args = [
        "-shared",
        "-fPIC",
        "-O2",
        "-Wall",
        "-o",
        &lib_s,
        PLUGIN_SOURCE,
        "-lm",
        // Versioned symbols: unlinked, snd_pcm_sw_params_get_avail_min binds to its ALSA 0.9
        // form, which returns the value instead of storing it.
        "-lasound",
    ];
    let mut gcc = process::spawn("gcc", &args, &[], &dir.join("gcc.log"))?;
    if !gcc.wait_timeout(Duration::from_secs(60))?.success() {
        return Err(gcc.failed("could not build the fake ALSA plugin".to_owned()));
    }
    let mut conf = format!(
        "</usr/share/alsa/alsa.conf>\npcm_type.zcfake {{ lib \"{}\" }}\n",
        lib.display()
    );
    for (name, options) in devices() {
        conf.push_str(&format!("pcm.{name} {{ type zcfake {options} }}\n"));
    }
    let path = dir.join("asound.conf");
    fs::write(&path, conf).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
    Ok(Some(path))
}

fn fail(what: &str, detail: String) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail,
    }
}

/// Builds the fake card in a fresh directory, runs zerocast on `device` with `extra` arguments
/// until it exits, and fails unless it exited with code 1 and its stderr contains every one of
/// `needles` (each of these cards must be refused at start-up).
fn refused(device: &str, extra: &[&str], needles: &[&str]) -> Result<(), HarnessError> {
    TempDir::run(&format!("alsafake-{device}"), |dir| {
        let Some(conf) = fake_card(dir)? else {
            return Ok(());
        };
        let listen = format!("127.0.0.1:{}", process::free_port()?);
        let source = format!("alsa:{device}");
        let mut args = vec!["--listen", &listen, "--source", &source];
        args.extend_from_slice(extra);
        let conf = conf.display().to_string();
        let run = run_to_exit_env(
            &args,
            &[("ALSA_CONFIG_PATH", &conf)],
            device,
            dir,
            EXIT_LIMIT,
        )?;
        eprintln!("{device}: {} / {}", run.status, run.stderr.trim());
        let missing: Vec<_> = needles
            .iter()
            .filter(|n| !run.stderr.contains(**n))
            .collect();
        if run.status.code() != Some(1) || !missing.is_empty() {
            return Err(fail(
                device,
                format!(
                    "expected exit code 1 and {missing:?} in stderr; got {}:\n{}",
                    run.status, run.stderr
                ),
            ));
        }
        Ok(())
    })
}

#[test]
fn a_card_refusing_the_rate_names_the_rates_it_allows() -> Result<(), HarnessError> {
    // zerocast's default rate is 44100 Hz; the card only allows 48000.
    refused(
        "fake_48k",
        &[],
        &[
            "refuses 44100 Hz",
            "48000..=48000 Hz",
            "rates: 48000",
            "plughw:",
        ],
    )
}

#[test]
fn a_card_refusing_the_channel_count_says_what_it_allows() -> Result<(), HarnessError> {
    refused(
        "fake_mono",
        &["--channels", "2"],
        &["refuses 2 channel(s); it allows 1..=1", "--channels"],
    )
}

#[test]
fn a_busy_card_says_device_busy() -> Result<(), HarnessError> {
    refused("fake_busy", &[], &["device busy"])
}

#[test]
fn a_card_without_permission_points_to_the_audio_group() -> Result<(), HarnessError> {
    refused("fake_denied", &[], &["permission denied", "`audio` group"])
}

/// One status line's fields of interest.
#[derive(Debug)]
struct Status {
    overruns: u64,
    state: String,
    stream_time: f64,
}

/// The status lines in `log`, in order.
fn status_lines(log: &str) -> Vec<Status> {
    let field = |line: &str, key: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_owned)
    };
    log.lines()
        .filter_map(|line| {
            Some(Status {
                overruns: field(line, "overruns=")?.parse().ok()?,
                state: field(line, "state=")?,
                stream_time: field(line, "stream_time=")?
                    .trim_end_matches('s')
                    .parse()
                    .ok()?,
            })
        })
        .collect()
}

#[test]
fn an_overrun_is_recovered_counted_and_logged_once() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("alsafake-xrun", |dir| {
        let Some(conf) = fake_card(dir)? else {
            return Ok(());
        };
        let conf = conf.display().to_string();
        let env = [
            ("ALSA_CONFIG_PATH", conf.as_str()),
            ("ZEROCAST_STATUS_SECS", "1"),
        ];
        let mut zc = Zerocast::start(
            &["--source", "alsa:fake_xrun", "--codec", "pcm"],
            &env,
            None,
            dir,
        )?;
        // The player connects before the overrun (1.5 s after the card started) and records
        // across it.
        let wav_path = dir.join("ffmpeg.wav");
        let mut ffmpeg = ffmpeg_wav(&zc.url, RECORD, &wav_path, &dir.join("ffmpeg.log"))?;
        // The first status line that counts an overrun and two more after it: capture goes on.
        process::wait_until(
            "a status line counting the overrun and two more",
            Duration::from_secs(12),
            || {
                if !zc.process.is_running()? {
                    return Err(zc.process.failed("exited".to_owned()));
                }
                let lines = status_lines(&zc.process.log());
                let first = lines.iter().position(|s| s.overruns > 0);
                Ok(first.is_some_and(|i| lines.len() >= i + 3))
            },
        )
        .map_err(|e| zc.process.failed(e.to_string()))?;
        let status = ffmpeg.wait_timeout(RECORD + Duration::from_secs(20))?;
        if !status.success() {
            return Err(ffmpeg.failed(format!("exited with {status}")));
        }
        let log = zc.process.log();
        let lines = status_lines(&log);
        for s in &lines {
            eprintln!("{s:?}");
        }
        let first = lines.iter().position(|s| s.overruns > 0).unwrap_or(0);
        let after = &lines[first..];
        let advancing = after
            .windows(2)
            .all(|w| w[1].stream_time > w[0].stream_time);
        if after
            .iter()
            .any(|s| s.overruns != 1 || s.state != "capturing")
            || !advancing
        {
            return Err(zc.process.failed(format!(
                "after the overrun every status line must say overruns=1 state=capturing with \
                 stream_time advancing: {after:?}"
            )));
        }
        let warned = zc.log_count("capture overrun");
        let lost = zc.log_count("capture lost");
        if warned != 1 || lost != 0 {
            return Err(zc.process.failed(format!(
                "expected one \"capture overrun\" line and no \"capture lost\", got {warned} and \
                 {lost}"
            )));
        }
        let wav = Wav::read(&wav_path)?;
        let report =
            analyze_tone(&wav, &ToneParams::default()).map_err(|error| HarnessError::Analysis {
                path: wav_path.clone(),
                error,
            })?;
        eprintln!("ffmpeg: {report}");
        if (report.frequency_hz - TONE_HZ).abs() > 2.0
            || report.duration_s < RECORD.as_secs_f64() - 0.5
            || report.longest_gap_ms > 100.0
        {
            return Err(fail(
                "the recording across the overrun",
                format!("want {TONE_HZ} Hz for {RECORD:?} without gaps, got {report}"),
            ));
        }
        zc.stop_cleanly()
    })
}
