//! End to end: a Pi that lasts (issue 21). zerocast under a read-only root file system (a mount
//! namespace whose `/` is remounted read-only, as Raspberry Pi OS's overlay root or the unit's
//! `ProtectSystem=strict` leave it) with only its recording directory writable: it serves an HTTP
//! listener the tone and records it.
//!
//! Needs root (mount namespaces; CI runs as root), `unshare`, `mount` and ffmpeg (a missing tool
//! skips the test, or fails it when `CI` is set).

mod common;

use std::fs;
use std::time::Duration;

use common::check::check_tone;
use common::live::ffmpeg_wav;
use common::process;
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn serves_and_records_under_a_read_only_root() -> Result<(), HarnessError> {
    if !tools_available(&["unshare", "mount", "ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("pi-readonly", |dir| {
        let rec = dir.join("rec");
        fs::create_dir_all(&rec).map_err(|e| HarnessError::io("mkdir", e))?;
        let port = process::free_port()?;
        let http_port = process::free_port()?;
        // The recording directory is bound onto itself (a mount of its own, writable), then `/`
        // is made read-only in this namespace only; zerocast starts only if a write to `/`
        // really fails.
        let script = "mount --make-rprivate / && mount --bind \"$0\" \"$0\" && \
                      mount -o remount,bind,ro / && \
                      if touch /zerocast-read-only-probe 2>/dev/null; then \
                      rm -f /zerocast-read-only-probe; echo 'root is writable'; exit 3; fi && \
                      exec \"$@\"";
        let mut argv = vec![
            "-m".to_owned(),
            "sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
            rec.display().to_string(),
        ];
        argv.extend(process::zerocast_argv());
        argv.extend(
            [
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--source",
                "tone:440",
                "--codec",
                "aac",
                "--http",
                &format!("127.0.0.1:{http_port}"),
                "--record",
                &rec.display().to_string(),
                "--record-max-mb",
                "1",
                "--record-keep-mb",
                "2",
            ]
            .map(str::to_owned),
        );
        let mut server = process::spawn(
            "unshare",
            &argv,
            &[("RUST_LOG", "info")],
            &dir.join("zerocast.log"),
        )?;
        process::wait_for_port(port, LIMIT, &mut server)?;
        let wav = dir.join("listener.wav");
        let url = format!("http://127.0.0.1:{http_port}/live/audio.aac");
        let mut listener = ffmpeg_wav(&url, Duration::from_secs(3), &wav, &dir.join("l.log"))?;
        if !listener.wait_timeout(LIMIT)?.success() {
            return Err(listener.failed("the HTTP listener failed".into()));
        }
        check_tone(
            &Wav::read(&wav)?,
            440.0,
            2.5,
            100.0,
            "HTTP listener, read-only root",
        )?;
        // The recorder writes whole blocks: wait for the first to land.
        let recorded = || -> Option<std::path::PathBuf> {
            fs::read_dir(&rec)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| fs::metadata(p).is_ok_and(|m| m.len() > 64 * 1024))
        };
        process::wait_until("a recording in the writable directory", LIMIT, || {
            Ok(recorded().is_some())
        })
        .map_err(|e| server.failed(e.to_string()))?;
        let file = recorded().ok_or_else(|| server.failed("the recording vanished".into()))?;
        let decoded = dir.join("recorded.wav");
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(&file)
            .args(["-f", "wav"])
            .arg(&decoded)
            .status()
            .map_err(|e| HarnessError::io("ffmpeg", e))?;
        if !status.success() {
            return Err(server.failed(format!("ffmpeg cannot read {}", file.display())));
        }
        check_tone(
            &Wav::read(&decoded)?,
            440.0,
            1.0,
            100.0,
            "recording, read-only root",
        )?;
        if server.log().contains("Read-only file system") {
            return Err(server.failed("zerocast tried to write outside its directory".into()));
        }
        let status = server.terminate(process::DROP_GRACE)?;
        if !status.success() {
            return Err(server.failed(format!("exited with {status} on SIGTERM")));
        }
        Ok(())
    })
}
