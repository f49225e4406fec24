//! End to end, recording through the binary: `--record DIR` writes each stream as FLV files that
//! ffprobe opens with the right duration after rotation, and a file cut by SIGKILL still opens.
//! (A full or slow disk: `e2e_hardening_recorder.rs`.)
//!
//! Needs ffmpeg/ffprobe.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::analysis::{analyze_tone, ToneParams};
use common::live::Zerocast;
use common::process;
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(30);

/// The FLV files in `dir`, oldest first (their names sort by sequence number).
fn flv_files(dir: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| HarnessError::io(format!("list {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flv"))
        .collect();
    files.sort();
    Ok(files)
}

/// ffprobe's duration of `file`, in seconds.
fn duration(file: &Path) -> Result<f64, HarnessError> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .map_err(|e| HarnessError::io("run ffprobe", e))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| HarnessError::Failed {
            what: format!("ffprobe {}", file.display()),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
}

#[test]
fn recordings_rotate_and_survive_a_kill() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "ffprobe"])? {
        return Ok(());
    }
    TempDir::run("record", |dir| {
        let rec = dir.join("rec");
        let rec_arg = rec.display().to_string();
        let args = [
            "--source",
            "tone",
            "--record",
            &rec_arg,
            "--record-interval",
            "10",
        ];
        let mut server = Zerocast::start(&args, &[], None, dir)?;
        // The second file starts after 10 s of stream time; let it grow a while, then kill.
        server.wait_log("recording audio to", LIMIT)?;
        process::wait_until("the second file", LIMIT, || {
            Ok(server.log_count("recording audio to") >= 2)
        })?;
        process::wait_until("audio in the second file", LIMIT, || {
            Ok(flv_files(&rec)?
                .get(1)
                .and_then(|f| fs::metadata(f).ok())
                .is_some_and(|m| m.len() > 1000))
        })?;
        server.process.signal(Signal::SIGKILL)?;
        server.process.wait_timeout(LIMIT)?;
        let files = flv_files(&rec)?;
        let first = duration(&files[0])?;
        println!("first file {:.3} s, {} files", first, files.len());
        // One rotation at 10 s of stream time, to within one 20 ms period.
        if (first - 10.0).abs() > 0.04 {
            return Err(HarnessError::Failed {
                what: "rotation".into(),
                detail: format!("first file lasts {first} s, not 10 s"),
            });
        }
        // The file the kill cut still opens and decodes to the tone.
        let cut = &files[1];
        let wav = dir.join("cut.wav");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(cut)
            .arg(&wav)
            .status()
            .map_err(|e| HarnessError::io("run ffmpeg", e))?;
        let report = analyze_tone(&Wav::read(&wav)?, &ToneParams::default()).map_err(|e| {
            HarnessError::Failed {
                what: "the cut file".into(),
                detail: e.to_string(),
            }
        })?;
        println!("cut file: {report}");
        if !status.success() || (report.frequency_hz - 440.0).abs() > 5.0 {
            return Err(HarnessError::Failed {
                what: "the cut file".into(),
                detail: format!("ffmpeg {status}, {report}"),
            });
        }
        Ok(())
    })
}
