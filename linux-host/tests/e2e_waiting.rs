//! End to end: an HTTP listener of a stream that is configured but not published yet waits for
//! its first audio instead of getting a 404 (issue 22), and hears the publisher's tone once it
//! starts; a stream that is neither is still a 404 at once.
//!
//! Needs ffmpeg and curl (a missing tool skips the test, or fails it when `CI` is set).

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::check::check_tone;
use common::live::{ffmpeg_wav, publish_tone, Zerocast};
use common::process;
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_listener_before_the_publisher_hears_it_from_the_first_second() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl"])? {
        return Ok(());
    }
    TempDir::run("http-waiting", |dir| {
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        let config = dir.join("zerocast.toml");
        fs::write(
            &config,
            "source = \"none\"\n[[stream]]\nname = \"live/show\"\n",
        )
        .map_err(|e| HarnessError::io("write config", e))?;
        let config_arg = config.display().to_string();
        let mut server =
            Zerocast::start(&["--config", &config_arg, "--http", &http], &[], None, dir)?;
        let status = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .arg(format!("http://{http}/live/nobody.aac"))
            .output()
            .map_err(|e| HarnessError::io("curl", e))?;
        let code = String::from_utf8_lossy(&status.stdout).into_owned();
        if code != "404" {
            return Err(server
                .process
                .failed(format!("an unknown stream answered {code}")));
        }
        let wav = dir.join("early.wav");
        let url = format!("http://{http}/live/show.aac");
        let mut early = ffmpeg_wav(&url, Duration::from_secs(3), &wav, &dir.join("early.log"))?;
        server.wait_log("waits for its first audio", LIMIT)?;
        let started = Instant::now();
        let _publisher = publish_tone(&server, "show", "aac", 440, None, dir, "show")?;
        let status = early.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(early.failed(format!("the early listener exited with {status}")));
        }
        println!(
            "early listener: 3 s of audio {:.1} s after the publisher started",
            started.elapsed().as_secs_f64()
        );
        check_tone(
            &Wav::read(&wav)?,
            440.0,
            2.5,
            100.0,
            "listener connected before the publisher",
        )?;
        server.stop_cleanly()
    })
}
