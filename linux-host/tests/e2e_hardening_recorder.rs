//! A slow or full disk must cost recordings, never players (issue 19): zerocast records the PCM
//! tone while two players listen to it — ffmpeg (its decoded WAV judged by the tone analysis)
//! and the test's RTMP player (the longest time between two audio messages' arrivals) — and
//! the disk misbehaves for real:
//! - a full filesystem (a 2 MiB tmpfs, mostly taken by a filler file): the recording loses
//!   audio with one log line; the filler deleted, it resumes by itself in a new file that grows
//!   and holds the tone;
//! - a card whose `fdatasync` takes 2 s (zerocast under `strace --inject`): publishers come and
//!   go, so recorders end, which once joined their writer thread on the event loop.
//!
//! Needs root (mount), ffmpeg and strace; skips without them (fails with `CI` set).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::analysis::{analyze_tone, ToneParams, ToneReport};
use common::live::{ffmpeg_wav, publish_once, Zerocast};
use common::process::{self, Spawned};
use common::rtmp_client::{self, Continuity, PlayLog, PlayPlan};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

const LIMIT: Duration = Duration::from_secs(30);
/// The longest a player may go without audio while the disk misbehaves.
const MAX_GAP_MS: f64 = 500.0;

fn failed(what: &str, detail: String) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail,
    }
}

/// Whether the tools are here and this process may mount (root); without, a note (or an error
/// with `CI` set).
fn can_run(tools: &[&str]) -> Result<bool, HarnessError> {
    let root = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if tools_available(tools)? && root {
        return Ok(true);
    }
    if std::env::var_os("CI").is_some() {
        return Err(failed("tools", format!("{tools:?} and root needed")));
    }
    eprintln!("skipping: needs root and {tools:?}");
    Ok(false)
}

/// The two players of `live/audio` for `secs`: ffmpeg writing `dir/player.wav`, and the test's
/// RTMP player on its own thread.
struct Players {
    ffmpeg: Spawned,
    wav: PathBuf,
    rtmp: thread::JoinHandle<Result<PlayLog, HarnessError>>,
}

impl Players {
    fn start(server: &Zerocast, secs: Duration, dir: &Path) -> Result<Players, HarnessError> {
        let wav = dir.join("player.wav");
        let ffmpeg = ffmpeg_wav(&server.url, secs, &wav, &dir.join("player.log"))?;
        let mut plan = PlayPlan::new(server.port, secs);
        plan.keep_payload = true;
        let rtmp = thread::spawn(move || rtmp_client::play(&plan));
        process::wait_connected(ffmpeg.pid(), server.port, LIMIT)?;
        Ok(Players { ffmpeg, wav, rtmp })
    }

    /// Waits for both and judges what they got: the tone, and no gap over [`MAX_GAP_MS`].
    fn judge(mut self, what: &str) -> Result<(), HarnessError> {
        if !self.ffmpeg.wait_timeout(LIMIT * 2)?.success() {
            return Err(self.ffmpeg.failed("the player failed".into()));
        }
        let log = self
            .rtmp
            .join()
            .map_err(|_| failed("the RTMP player", "panicked".into()))??;
        let ffmpeg = tone(&Wav::read(&self.wav)?, "ffmpeg")?;
        let continuity = Continuity::of(&log.messages);
        let rtmp = tone(&rtmp_client::pcm_to_wav(&log.messages), "RTMP player")?;
        let stall_ms = continuity.longest_stall.as_secs_f64() * 1000.0;
        println!(
            "{what}: ffmpeg {ffmpeg}; RTMP player {rtmp}, longest stall {stall_ms:.0} ms, {}",
            continuity.describe_gaps()
        );
        if ffmpeg.longest_gap_ms > MAX_GAP_MS
            || rtmp.longest_gap_ms > MAX_GAP_MS
            || stall_ms > MAX_GAP_MS
            || !continuity.gaps.is_empty()
        {
            return Err(failed(
                what,
                format!("ffmpeg {ffmpeg}; RTMP {rtmp}, stall {stall_ms:.0} ms"),
            ));
        }
        Ok(())
    }
}

/// The tone analysis of a player's audio: 440 Hz or an error.
fn tone(wav: &Wav, who: &str) -> Result<ToneReport, HarnessError> {
    let report = analyze_tone(wav, &ToneParams::default())
        .map_err(|e| failed(who, format!("no tone: {e}")))?;
    if (report.frequency_hz - 440.0).abs() > 5.0 {
        return Err(failed(who, format!("not the tone: {report}")));
    }
    Ok(report)
}

/// The newest recording of `audio` in `dir` and its size.
fn newest_recording(dir: &Path) -> Result<Option<(PathBuf, u64)>, HarnessError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| HarnessError::io(format!("list {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("audio@"))
        })
        .collect();
    files.sort();
    Ok(files.pop().map(|p| {
        let size = fs::metadata(&p).map_or(0, |m| m.len());
        (p, size)
    }))
}

#[test]
fn a_full_disk_costs_the_recording_not_the_players_and_recording_resumes(
) -> Result<(), HarnessError> {
    if !can_run(&["ffmpeg", "mount", "umount"])? {
        return Ok(());
    }
    TempDir::run("hardening-recorder-full", |dir| {
        let rec = dir.join("rec");
        fs::create_dir_all(&rec).map_err(|e| HarnessError::io("mkdir", e))?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&rec)
            .status()
            .map_err(|e| HarnessError::io("mount", e))?;
        if !mounted.success() {
            return Err(failed("mount a tmpfs", mounted.to_string()));
        }
        let result = (|| {
            // Most of the disk is taken, so that the tone (176 KB/s) fills the rest in seconds.
            let filler = rec.join("filler");
            fs::write(&filler, vec![0u8; 1536 * 1024]).map_err(|e| HarnessError::io("fill", e))?;
            let rec_arg = rec.display().to_string();
            let args = ["--source", "tone", "--codec", "pcm", "--record", &rec_arg];
            let mut server = Zerocast::start(&args, &[], None, dir)?;
            let players = Players::start(&server, Duration::from_secs(12), dir)?;
            let t0 = Instant::now();
            server.wait_log("No space left on device", LIMIT)?;
            let full = t0.elapsed();
            fs::remove_file(&filler).map_err(|e| HarnessError::io("free space", e))?;
            server.wait_log("resumed", LIMIT)?;
            let resumed = t0.elapsed();
            // The new file grows: two blocks written after the one that resumed.
            let mut newest = None;
            process::wait_until("the new file to grow", LIMIT, || {
                newest = newest_recording(&rec)?;
                Ok(newest.as_ref().is_some_and(|(_, size)| *size > 600 * 1024))
            })?;
            let grown = t0.elapsed();
            let (file, size) = newest.unwrap_or_default();
            let wav = dir.join("recording.wav");
            let decoded = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y", "-i"])
                .arg(&file)
                .arg(&wav)
                .status()
                .map_err(|e| HarnessError::io("run ffmpeg", e))?;
            if !decoded.success() {
                return Err(failed("decode the new file", decoded.to_string()));
            }
            let recorded = tone(&Wav::read(&wav)?, "the new file")?;
            println!(
                "full at {:.1} s, freed; resumed at {:.1} s, {} is {size} B at {:.1} s: {recorded}",
                full.as_secs_f64(),
                resumed.as_secs_f64(),
                file.display(),
                grown.as_secs_f64()
            );
            players.judge("players while the disk was full")?;
            if server.log_count("No space left") != 1 {
                return Err(server
                    .process
                    .failed("the full disk was not logged once".into()));
            }
            server.stop_cleanly()
        })();
        let _ = Command::new("umount").arg(&rec).status();
        result
    })
}

#[test]
fn a_slow_fdatasync_never_stalls_players_when_recordings_end() -> Result<(), HarnessError> {
    if !can_run(&["ffmpeg", "strace"])? {
        return Ok(());
    }
    TempDir::run("hardening-recorder-slow", |dir| {
        let rec = dir.join("rec").display().to_string();
        // Only fdatasync stops the tracee (seccomp-bpf), and every one takes 2 s more.
        let strace = [
            "strace",
            "-f",
            "-qq",
            "--seccomp-bpf",
            "-o",
            "/dev/null",
            "-e",
            "trace=fdatasync",
            "-e",
            "inject=fdatasync:delay_enter=2000000",
        ];
        let args = ["--source", "tone", "--codec", "pcm", "--record", &rec];
        let server = Zerocast::start_under(&strace, &args, &[], None, dir)?;
        let players = Players::start(&server, Duration::from_secs(8), dir)?;
        // Publishers of other streams come and go: each end drops a recorder with a block
        // to write and sync.
        for round in 0..3 {
            let name = format!("guest{round}");
            if !publish_once(server.port, &name, dir, &name)? {
                return Err(server.process.failed(format!("{name} was refused")));
            }
        }
        let published = server.log_count("publisher gone");
        players.judge("players while recorders ended on a slow card")?;
        println!("{published} publishers gone");
        Ok(())
    })
}
