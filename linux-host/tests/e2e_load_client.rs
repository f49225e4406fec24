//! The benchmark's load client (`zerocast-load`, the second binary of this package) against a
//! zerocast tone server: every player must get continuous audio, and the client must notice
//! when they do not.
//!
//! The checks are on counts (players receiving, timestamp gaps, stalls over 500 ms, stream time
//! received), never on CPU or latency figures: the machine is shared.

mod common;

use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::process::Spawned;
use common::rtmp_client;
use common::server::Codec;
use common::{HarnessError, TempDir};

/// Players per run, and how long they play.
const PLAYERS: usize = 20;
const PLAY_SECS: f64 = 4.0;
/// Each player must receive at least this much stream time: the run less a second for connects
/// on a loaded machine (zerocast's join backlog comes on top).
const MIN_AUDIO_S: f64 = PLAY_SECS - 1.0;
/// How long the client may take beyond its own duration (start-up, summary) before it counts
/// as hung.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Runs `zerocast-load` with `args`, bounded in time; its output.
fn load_client(args: &[&str], limit: Duration) -> Result<Output, HarnessError> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zerocast-load"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::io("start zerocast-load", e))?;
    let deadline = Instant::now() + limit;
    while child
        .try_wait()
        .map_err(|e| HarnessError::io("wait for zerocast-load", e))?
        .is_none()
    {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::Timeout {
                what: "zerocast-load to exit".to_owned(),
                after: limit,
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
    child
        .wait_with_output()
        .map_err(|e| HarnessError::io("read zerocast-load output", e))
}

/// The value of `key=` in the client's `summary` line.
fn summary_value(stdout: &str, key: &str) -> Option<f64> {
    let line = stdout.lines().find(|l| l.starts_with("summary "))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

fn failed(what: &str, output: &Output) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail: format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Plays `codec` from a zerocast tone server with [`PLAYERS`] players — RTMP, or HTTP-FLV
/// listeners with `http` — and checks the summary.
fn continuous_for(codec: Codec, http: bool) -> Result<(), HarnessError> {
    let label = format!(
        "load-client-{}{}",
        codec.zerocast_flag(),
        if http { "-http" } else { "" }
    );
    TempDir::run(&label, |dir| {
        let http_addr = format!("127.0.0.1:{}", common::process::free_port()?);
        let extra: &[&str] = if http { &["--http", &http_addr] } else { &[] };
        let (mut server, port) = rtmp_client::start_zerocast(codec, extra, dir)?;
        let url = if http {
            // The stream's HTTP formats exist from its first audio on.
            let head = b"HEAD /live/audio.flv HTTP/1.1\r\n\r\n";
            common::process::wait_until("the .flv mount", EXIT_GRACE, || {
                let mut answer = [0u8; 12];
                let ok = std::net::TcpStream::connect(&http_addr).and_then(|mut s| {
                    std::io::Write::write_all(&mut s, head)?;
                    std::io::Read::read_exact(&mut s, &mut answer)
                });
                Ok(ok.is_ok() && &answer == b"HTTP/1.1 200")
            })?;
            format!("http://{http_addr}/live/audio.flv")
        } else {
            format!("rtmp://127.0.0.1:{port}/live/audio")
        };
        let players = PLAYERS.to_string();
        let duration = PLAY_SECS.to_string();
        let output = load_client(
            &[
                "--url",
                &url,
                "--players",
                &players,
                "--duration",
                &duration,
                "--check",
            ],
            Duration::from_secs_f64(PLAY_SECS) + EXIT_GRACE,
        )?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        println!("{}: {stdout}", codec.zerocast_flag());
        stop(&mut server)?;
        if !output.status.success() {
            return Err(failed("zerocast-load --check", &output));
        }
        let value = |key| summary_value(&stdout, key).ok_or_else(|| failed(key, &output));
        let checks = [
            ("receiving", value("receiving")? == PLAYERS as f64),
            ("continuous", value("continuous")? == PLAYERS as f64),
            ("gaps", value("gaps")? == 0.0),
            ("stalls", value("stalls")? == 0.0),
            ("min_audio_s", value("min_audio_s")? >= MIN_AUDIO_S),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some((key, _)) => Err(failed(&format!("summary: {key}"), &output)),
            None => Ok(()),
        }
    })
}

fn stop(server: &mut Spawned) -> Result<(), HarnessError> {
    server.terminate(common::process::DROP_GRACE).map(drop)
}

#[test]
fn every_player_receives_continuous_pcm() -> Result<(), HarnessError> {
    continuous_for(Codec::Pcm, false)
}

#[test]
fn every_http_flv_listener_receives_continuous_pcm() -> Result<(), HarnessError> {
    continuous_for(Codec::Pcm, true)
}

#[test]
fn every_player_receives_continuous_adpcm() -> Result<(), HarnessError> {
    continuous_for(Codec::Adpcm, false)
}

/// The check can fail: the server is stopped (SIGSTOP) for longer than the stall limit in the
/// middle of the run, so every player sees a stall and `--check` must exit 1.
#[test]
fn a_frozen_server_is_reported_as_stalls() -> Result<(), HarnessError> {
    TempDir::run("load-client-frozen", |dir| {
        let (mut server, port) = rtmp_client::start_zerocast(Codec::Pcm, &[], dir)?;
        let url = format!("rtmp://127.0.0.1:{port}/live/audio");
        let output = thread::scope(|scope| {
            let client = scope.spawn(|| {
                load_client(
                    &[
                        "--url",
                        &url,
                        "--players",
                        "5",
                        "--duration",
                        "4",
                        "--check",
                    ],
                    Duration::from_secs(4) + EXIT_GRACE,
                )
            });
            thread::sleep(Duration::from_millis(1500));
            let frozen = server.signal(nix::sys::signal::Signal::SIGSTOP);
            thread::sleep(Duration::from_millis(1200));
            let resumed = server.signal(nix::sys::signal::Signal::SIGCONT);
            let output = client.join().map_err(|_| HarnessError::Failed {
                what: "load client thread".to_owned(),
                detail: "panicked".to_owned(),
            })?;
            frozen.and(resumed).and(output)
        })?;
        stop(&mut server)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        println!("frozen: {stdout}");
        if output.status.code() != Some(1) {
            return Err(failed("zerocast-load --check should exit 1", &output));
        }
        match summary_value(&stdout, "stalls") {
            Some(n) if n >= 5.0 => Ok(()),
            _ => Err(failed("summary: stalls for 5 players", &output)),
        }
    })
}
