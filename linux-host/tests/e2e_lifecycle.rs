//! The zerocast binary's life around its players:
//! - SIGTERM and SIGINT with ffmpeg and rtmpdump playing: zerocast exits 0 within 2 s, and both
//!   players see a clean end of stream (they exit by themselves, ffmpeg with 0 long before its
//!   `-t`, holding the tone it heard);
//! - players that drop their socket mid-stream, 20 in a row, never kill it (SIGPIPE is ignored)
//!   and leave no gap in another player's audio;
//! - a player joining a server that has run for 5 s gets its start messages, the metadata and
//!   the join buffer at once; ffmpeg with default settings decodes soon after connecting;
//! - `zerocast devices` lists the PCMs alsa-lib knows, and a port in use is a clear error;
//! - the status line counts the playing listeners and the bytes sent to them.
//!
//! Needs ffmpeg, rtmpdump, arecord (alsa-utils) and libasound2-plugins; a missing one skips the
//! test, or fails it when `CI` is set. Run with `--nocapture` for the numbers.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::analysis::{analyze_tone, ToneParams};
use common::live::{
    ffmpeg_raw, ffmpeg_wav, make_fifo, rtmpdump_flv, run_to_exit, FifoReader, Zerocast,
};
use common::rtmp_player::{Received, RtmpPlayer};
use common::wav::Wav;
use common::{flv, process, pulse, tools_available, HarnessError, TempDir};

/// The tone every test here serves.
const TONE_HZ: f64 = 440.0;
/// zerocast's defaults: 20 ms periods, a 500 ms join buffer.
const PERIOD_MS: u32 = 20;
const JOIN_MS: u32 = 500;
/// How long zerocast may take to exit after SIGTERM / SIGINT before the test gives up: a bound
/// against a hang (the exit time is printed, and measured by the benchmark).
const EXIT_LIMIT: Duration = Duration::from_secs(10);
/// How long a player may take to notice the end of the stream and exit.
const PLAYER_EXIT_LIMIT: Duration = Duration::from_secs(5);
/// How long the late joiner may take to receive its join buffer before the test gives up.
const JOIN_LIMIT: Duration = Duration::from_secs(10);

fn fail(what: &str, detail: String) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail,
    }
}

/// Waits until zerocast has logged `n` accepted plays.
fn wait_plays(zc: &mut Zerocast, n: usize) -> Result<(), HarnessError> {
    process::wait_until("players to play", Duration::from_secs(10), || {
        Ok(zc.log_count("play live/audio") >= n)
    })
    .map_err(|e| zc.process.failed(e.to_string()))
}

/// Checks a recording of the tone: 440 Hz, no gap longer than a period, no phase jump, and a
/// length within 5 % of `expected_s`.
fn check_tone(who: &str, wav: &Wav, expected_s: f64) -> Result<(), HarnessError> {
    let report = analyze_tone(wav, &ToneParams::default())
        .map_err(|e| fail(who, format!("no tone: {e}")))?;
    eprintln!("{who}: {report} (expected {expected_s:.3} s)");
    let mut problems = Vec::new();
    if (report.frequency_hz - TONE_HZ).abs() > 0.02 * TONE_HZ {
        problems.push(format!("{:.2} Hz", report.frequency_hz));
    }
    if report.longest_gap_ms > f64::from(PERIOD_MS) {
        problems.push(format!("gap of {:.1} ms", report.longest_gap_ms));
    }
    if report.discontinuities > 0 {
        problems.push(format!("{} phase jumps", report.discontinuities));
    }
    if (report.duration_s - expected_s).abs() > 0.05 * expected_s {
        problems.push(format!("{:.3} s of audio", report.duration_s));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(who, problems.join("; ")))
    }
}

/// (a) `signal` while ffmpeg (`-t 30`) and rtmpdump play for 3 s.
fn stops_cleanly_on(signal: Signal) -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "rtmpdump"])? {
        return Ok(());
    }
    TempDir::run(&format!("{signal}").to_lowercase(), |dir| {
        let mut zc = Zerocast::start(&["--source", "tone:440"], &[], None, dir)?;
        let wav = dir.join("ffmpeg.wav");
        let recording = dir.join("rtmpdump.flv");
        let record = Duration::from_secs(30);
        let mut ffmpeg = ffmpeg_wav(&zc.url, record, &wav, &dir.join("ffmpeg.log"))?;
        let mut rtmpdump = rtmpdump_flv(&zc.url, &recording, &dir.join("rtmpdump.log"))?;
        let connected = process::wait_connected(ffmpeg.pid(), zc.port, Duration::from_secs(10))?;
        wait_plays(&mut zc, 2)?;
        thread::sleep(
            (connected + Duration::from_secs(3)).saturating_duration_since(Instant::now()),
        );

        let signalled = Instant::now();
        zc.process.signal(signal)?;
        let status = zc.process.wait_timeout(EXIT_LIMIT)?;
        let exit_ms = signalled.elapsed().as_secs_f64() * 1000.0;
        if !status.success() {
            return Err(zc
                .process
                .failed(format!("exited with {status} on {signal}")));
        }
        let ffmpeg_status = ffmpeg.wait_timeout(PLAYER_EXIT_LIMIT)?;
        let ffmpeg_ms = signalled.elapsed().as_secs_f64() * 1000.0;
        let dump_status = rtmpdump.wait_timeout(PLAYER_EXIT_LIMIT)?;
        let dump_ms = signalled.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "{signal}: zerocast exit 0 after {exit_ms:.0} ms; ffmpeg exited ({ffmpeg_status}) \
             after {ffmpeg_ms:.0} ms, rtmpdump ({dump_status}) after {dump_ms:.0} ms"
        );
        if !ffmpeg_status.success() {
            return Err(ffmpeg.failed(format!("exited with {ffmpeg_status}")));
        }
        let n = zc.log_count(&format!("{signal} received; shutting down"));
        if n != 1 {
            return Err(zc
                .process
                .failed(format!("{n} shutdown lines for {signal}")));
        }
        // ffmpeg heard from its connection to the signal, plus the join buffer: as much of it
        // as the server had, which started just before.
        let backlog = (connected - zc.process.started())
            .as_secs_f64()
            .min(f64::from(JOIN_MS) / 1000.0);
        let played = (signalled - connected).as_secs_f64() + backlog;
        check_tone("ffmpeg", &Wav::read(&wav)?, played)?;
        let timestamps = flv::audio_timestamps(&flv::read(&recording)?);
        let largest = flv::check_timestamps(&timestamps, PERIOD_MS)?;
        eprintln!(
            "rtmpdump: {} audio messages, largest step {largest} ms",
            timestamps.len()
        );
        if timestamps.len() < 100 {
            return Err(fail(
                "rtmpdump",
                format!("only {} audio messages", timestamps.len()),
            ));
        }
        Ok(())
    })
}

#[test]
fn sigterm_ends_every_players_stream_cleanly() -> Result<(), HarnessError> {
    stops_cleanly_on(Signal::SIGTERM)
}

#[test]
fn sigint_ends_every_players_stream_cleanly() -> Result<(), HarnessError> {
    stops_cleanly_on(Signal::SIGINT)
}

/// Whether `pid` ignores SIGPIPE: bit 13 − 1 of `SigIgn` in `/proc/PID/status` (proc(5)).
fn ignores_sigpipe(pid: u32) -> Result<bool, HarnessError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| HarnessError::io(format!("read /proc/{pid}/status"), e))?;
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| fail("proc status", "no SigIgn line".to_owned()))?;
    Ok(mask & (1 << (Signal::SIGPIPE as u32 - 1)) != 0)
}

/// (b) 20 players drop their sockets mid-stream while ffmpeg records 8 s.
#[test]
fn players_dropping_their_sockets_never_hurt_the_server() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("sigpipe", |dir| {
        let mut zc = Zerocast::start(&["--source", "tone:440", "--codec", "pcm"], &[], None, dir)?;
        if !ignores_sigpipe(zc.process.pid())? {
            return Err(zc.process.failed("does not ignore SIGPIPE".to_owned()));
        }
        let wav = dir.join("ffmpeg.wav");
        let record = Duration::from_secs(8);
        let mut ffmpeg = ffmpeg_wav(&zc.url, record, &wav, &dir.join("ffmpeg.log"))?;
        wait_plays(&mut zc, 1)?;
        let started = Instant::now();
        for i in 0..20 {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut player = RtmpPlayer::connect(zc.port, "live", "audio")?;
            player.until(deadline, |e| *e == Received::Playing)?;
            // Leave after 1 to 4 messages; with the next ones unread in the socket, closing it
            // sends a reset (RFC 2525 2.17), so zerocast's next write or read fails.
            let mut audio = 0;
            player.until(deadline, |e| {
                audio += usize::from(matches!(e, Received::Audio { .. }));
                audio == 1 + i % 4
            })?;
            thread::sleep(Duration::from_millis(u64::from(PERIOD_MS) + 10));
            drop(player);
            if !zc.process.is_running()? {
                return Err(zc.process.failed(format!("died after player {i} left")));
            }
        }
        let dropping = started.elapsed();
        let status = ffmpeg.wait_timeout(record + Duration::from_secs(15))?;
        if !status.success() {
            return Err(ffmpeg.failed(format!("exited with {status}")));
        }
        if !zc.process.is_running()? {
            return Err(zc.process.failed("exited".to_owned()));
        }
        let resets = zc.log_count("closed: socket error");
        let closes = zc.log_count(": disconnected") + resets;
        eprintln!(
            "20 players dropped in {:.2} s: {resets} resets seen, {closes} closes logged",
            dropping.as_secs_f64()
        );
        // The start-up check's probe connection, the 20 dropped players and ffmpeg, each once.
        if closes != 22 {
            return Err(zc
                .process
                .failed(format!("{closes} closes logged, expected 22")));
        }
        check_tone("ffmpeg", &Wav::read(&wav)?, record.as_secs_f64())?;
        zc.stop_cleanly()
    })
}

/// (c) A player joining after 5 s: start messages, metadata and the join buffer at once; and
/// ffmpeg's time from connecting to its first decoded audio.
#[test]
fn late_joiner_starts_at_once() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("late-joiner", |dir| {
        let mut zc = Zerocast::start(&["--source", "tone:440"], &[], None, dir)?;
        thread::sleep(
            (zc.process.started() + Duration::from_secs(5))
                .saturating_duration_since(Instant::now()),
        );
        let connect = Instant::now();
        let mut player = RtmpPlayer::connect(zc.port, "live", "audio")?;
        let start = player.until(connect + Duration::from_secs(5), |e| {
            *e == Received::Playing
        })?;
        let playing = Instant::now();
        if start.first() != Some(&Received::Connected) {
            return Err(fail("late joiner", format!("before Play.Start: {start:?}")));
        }
        let first = player.next(playing + JOIN_LIMIT)?;
        let first_audio = playing.elapsed();
        let Received::Audio { timestamp, .. } = first else {
            return Err(fail(
                "late joiner",
                format!("first after Play.Start: {first:?}"),
            ));
        };
        let second = player.next(playing + JOIN_LIMIT)?;
        if second != Received::Metadata {
            return Err(fail(
                "late joiner",
                format!("second after Play.Start: {second:?}"),
            ));
        }
        // The join buffer comes at once: the audio received runs ahead of the time spent
        // receiving it by the join buffer less the delivery's delay; without a join buffer live
        // audio only keeps pace with that time (ahead by a period or two). Half the join buffer
        // tells the two apart on a loaded machine. Waits for that event, not for a time window.
        let mut timestamps = vec![timestamp];
        let ahead_ms = |timestamps: &[u32]| {
            let span = timestamps.last().copied().unwrap_or(0) - timestamps[0] + PERIOD_MS;
            f64::from(span) - playing.elapsed().as_secs_f64() * 1000.0
        };
        while ahead_ms(&timestamps) < f64::from(JOIN_MS / 2) {
            match player.next(playing + JOIN_LIMIT) {
                Ok(Received::Audio { timestamp, .. }) => timestamps.push(timestamp),
                Ok(other) => return Err(fail("late joiner", format!("then {other:?}"))),
                Err(HarnessError::Timeout { .. }) => {
                    return Err(fail(
                        "late joiner",
                        format!(
                            "{} messages in {:?}, never half the {JOIN_MS} ms join buffer ahead of the \
                             time taken: no join buffer",
                            timestamps.len(),
                            playing.elapsed()
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        flv::check_timestamps(&timestamps, PERIOD_MS)?;
        eprintln!(
            "late joiner: play → first audio {:.1} ms (ts {timestamp} ms, connect → play {:.1} \
             ms); join buffer: {} messages, {:.0} ms of audio ahead of the time taken",
            first_audio.as_secs_f64() * 1000.0,
            (playing - connect).as_secs_f64() * 1000.0,
            timestamps.len(),
            ahead_ms(&timestamps)
        );
        // The stream position matches the server's age: 5 s of periods are behind it.
        if timestamp < 4000 {
            return Err(fail(
                "late joiner",
                format!("first timestamp {timestamp} ms"),
            ));
        }
        drop(player);

        // ffmpeg with default settings, its decoded samples read as they come.
        let fifo = make_fifo(&dir.join("ffmpeg.fifo"))?;
        let mut reader = FifoReader::open(&fifo)?;
        let ffmpeg = ffmpeg_raw(&zc.url, &fifo, &dir.join("ffmpeg.log"))?;
        let connected = process::wait_connected(ffmpeg.pid(), zc.port, Duration::from_secs(10))?;
        let mut buf = [0u8; 4096];
        let n = reader.read_some(&mut buf, connected + Duration::from_secs(3))?;
        let decoded = connected.elapsed();
        if n == 0 {
            return Err(ffmpeg.failed("no decoded audio within 3 s of connecting".to_owned()));
        }
        eprintln!(
            "ffmpeg (default settings): TCP connect → first decoded audio {:.0} ms",
            decoded.as_secs_f64() * 1000.0
        );
        // Closing the read end first lets ffmpeg fail its next write and exit at once.
        drop(reader);
        drop(ffmpeg);
        zc.stop_cleanly()
    })
}

/// (d) `zerocast devices` lists what `arecord -L` lists, `pulse` among them.
#[test]
fn devices_lists_the_pcms_alsa_knows() -> Result<(), HarnessError> {
    if !tools_available(&["arecord"])? || !pulse::available()? {
        return Ok(());
    }
    TempDir::run("devices", |dir| {
        let limit = Duration::from_secs(10);
        let devices = run_to_exit(&["devices"], "devices", dir, limit)?;
        if !devices.status.success() {
            return Err(fail(
                "zerocast devices",
                format!("{}: {}", devices.status, devices.stderr),
            ));
        }
        // alsa-utils' arecord -L: one name a line, its description indented below.
        let mut arecord = process::spawn("arecord", &["-L"], &[], &dir.join("arecord.log"))?;
        if !arecord.wait_timeout(limit)?.success() {
            return Err(arecord.failed("failed".to_owned()));
        }
        let log = arecord.log();
        let names: Vec<&str> = log
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
            .collect();
        let missing: Vec<&&str> = names
            .iter()
            .filter(|n| {
                !devices
                    .stdout
                    .lines()
                    .any(|l| l.trim() == format!("alsa:{n}"))
            })
            .collect();
        eprintln!("arecord -L: {names:?}; missing from zerocast devices: {missing:?}");
        if !names.contains(&"pulse") || !missing.is_empty() {
            return Err(fail(
                "zerocast devices",
                format!(
                    "arecord lists {names:?}, zerocast lacks {missing:?}:\n{}",
                    devices.stdout
                ),
            ));
        }
        Ok(())
    })
}

/// (d) A port in use: a non-zero exit saying so.
#[test]
fn port_in_use_is_a_clear_error() -> Result<(), HarnessError> {
    TempDir::run("port-in-use", |dir| {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| HarnessError::io("bind 127.0.0.1:0", e))?;
        let port = taken
            .local_addr()
            .map_err(|e| HarnessError::io("local address", e))?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let args = ["--listen", &listen, "--source", "tone"];
        let run = run_to_exit(&args, "zerocast", dir, Duration::from_secs(10))?;
        eprintln!("port in use: {} / {}", run.status, run.stderr.trim());
        if run.status.success() || !run.stderr.contains("port in use") {
            return Err(fail(
                "port in use",
                format!("{}: {}", run.status, run.stderr),
            ));
        }
        Ok(())
    })
}

/// PCM stream bytes per second: 44.1 kHz × 2 channels × 2 bytes (the tone's format).
const PCM_BYTES_PER_SECOND: f64 = 176_400.0;

/// `listeners`, `bytes_sent` and the whole line of every status line logged so far.
fn status_lines(zc: &Zerocast) -> Vec<(u64, u64, String)> {
    let field = |line: &str, key: &str| -> Option<u64> {
        let start = line.find(key)? + key.len();
        let digits: String = line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    zc.process
        .log()
        .lines()
        .filter_map(|line| {
            let listeners = field(line, "listeners=")?;
            let sent = field(line, "bytes_sent=")?;
            Some((listeners, sent, line.to_owned()))
        })
        .collect()
}

/// (e) The status line (every second here, `ZEROCAST_STATUS_SECS`) counts two playing
/// listeners, bytes sent at the stream's rate for both, no overruns and the tone's −12 dBFS
/// peak; once the players are gone it counts none.
#[test]
fn status_line_counts_listeners_and_bytes() -> Result<(), HarnessError> {
    TempDir::run("status-line", |dir| {
        let mut zc = Zerocast::start(
            &["--source", "tone:440", "--codec", "pcm"],
            &[(zerocast::STATUS_SECS_ENV, "1")],
            None,
            dir,
        )?;
        let port = zc.port;
        let read_for = Duration::from_millis(4500);
        let players: Vec<_> = (0..2)
            .map(|_| {
                thread::spawn(move || -> Result<usize, HarnessError> {
                    let mut player = RtmpPlayer::connect(port, "live", "audio")?;
                    let end = Instant::now() + read_for;
                    let mut audio = 0;
                    loop {
                        match player.next(end) {
                            Ok(Received::Audio { .. }) => audio += 1,
                            Ok(Received::Closed | Received::EndOfStream) => return Ok(audio),
                            Ok(_) => {}
                            Err(HarnessError::Timeout { .. }) => return Ok(audio),
                            Err(e) => return Err(e),
                        }
                    }
                })
            })
            .collect();
        for player in players {
            let audio = player.join().expect("player thread")?;
            if audio < 100 {
                return Err(fail(
                    "status line",
                    format!("a player got {audio} messages"),
                ));
            }
        }
        // Both players closed their sockets: the next status lines count no listener.
        process::wait_until(
            "a status line with listeners=0",
            Duration::from_secs(5),
            || Ok(status_lines(&zc).last().is_some_and(|(n, _, _)| *n == 0)),
        )?;

        let lines = status_lines(&zc);
        for (_, _, line) in &lines {
            eprintln!("{line}");
        }
        let both: Vec<&(u64, u64, String)> = lines.iter().filter(|(n, _, _)| *n == 2).collect();
        let mut problems = Vec::new();
        if both.len() < 3 {
            problems.push(format!("{} status lines with listeners=2", both.len()));
        }
        // Between two lines a second apart, both players got a second of stream (plus chunk
        // headers; minus scheduling jitter).
        for pair in both.windows(2) {
            let rate = (pair[1].1 - pair[0].1) as f64 / 2.0;
            if !(0.8 * PCM_BYTES_PER_SECOND..1.3 * PCM_BYTES_PER_SECOND).contains(&rate) {
                problems.push(format!("{rate:.0} bytes/s per listener: {}", pair[1].2));
            }
        }
        for (_, _, line) in &lines {
            if !line.contains("overruns=0 peak=-12.0 dBFS") {
                problems.push(format!("overruns or peak: {line}"));
            }
        }
        let status = zc.process.terminate(process::DROP_GRACE)?;
        if !status.success() {
            problems.push(format!("exited with {status} on SIGTERM"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(fail("status line", problems.join("\n")))
        }
    })
}
