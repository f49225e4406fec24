//! The binary as a user runs it: help, errors, the tone with status lines and a clean SIGTERM,
//! stdin from a pipe and from a file ending the process with exit 0.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod common;

fn zerocast() -> Command {
    common::process::zerocast_command()
}

/// The binary listening on a free loopback port and without HTTP, so tests running at once
/// never collide on 1935 or 8000.
fn serving() -> Command {
    let mut cmd = zerocast();
    cmd.args(["--listen", "127.0.0.1:0", "--http", "off"]);
    cmd
}

/// Waits for `child` at most `limit`, killing it (and failing) when it takes longer.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("zerocast did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn help_version_and_bad_arguments() {
    let out = zerocast().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen ADDR:PORT",
        "--source SPEC",
        "--codec LIST",
        "--period-ms N",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
    let out = zerocast().arg("--version").output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "zerocast 0.1.0\n");

    let out = zerocast().args(["--source", "mic"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad value 'mic' for source"), "{err}");

    let dir = std::env::temp_dir().join(format!("zerocast-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "listen = \"0.0.0.0:1935\"\nsorce = \"tone\"\n").unwrap();
    let out = zerocast().arg("--config").arg(&cfg).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("unknown field `sorce`") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn missing_alsa_device_is_a_clear_fatal_error() {
    let out = serving()
        .args(["--source", "alsa:hw:9,0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("source alsa:hw:9,0: no such capture device"),
        "{err}"
    );
}

#[test]
fn tone_logs_status_and_stops_cleanly_on_sigterm() {
    let mut child = serving()
        .args(["--source", "tone:1000"])
        .env("ZEROCAST_STATUS_SECS", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two status lines, then SIGTERM: waits for the lines, not for the time they take.
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut err = Vec::new();
    while err
        .iter()
        .filter(|l: &&String| l.contains("listeners="))
        .count()
        < 2
    {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => err.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no two status lines: {err:?}");
            }
        }
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = wait_bounded(child, Duration::from_secs(10));
    reader.join().unwrap();
    err.extend(lines.try_iter());
    let err = err.join("\n");
    assert!(out.status.success(), "{:?}\n{err}", out.status);
    let status: Vec<&str> = err.lines().filter(|l| l.contains("listeners=")).collect();
    assert_eq!(status.len(), 2, "{err}");
    for line in &status {
        assert!(
            line.contains("listeners=0 bytes_sent=0 overruns=0 peak=-12.0 dBFS source=tone:1000 state=capturing"),
            "{line}"
        );
    }
    // The stream time moves on with the tone between the lines (by how much is the clock's).
    let stream_time = |line: &str| -> f64 {
        let value = line.split("stream_time=").nth(1).unwrap();
        value.trim_end_matches('s').parse().unwrap()
    };
    assert!(
        stream_time(status[1]) > stream_time(status[0]),
        "{status:?}"
    );
    assert!(err.contains("SIGTERM received; shutting down"), "{err}");
}

/// 1 s of mono 22.05 kHz plus 3 frames, as raw S16_LE.
fn one_second_mono() -> Vec<u8> {
    (0..22_053u32)
        .flat_map(|i| (i as i16).to_le_bytes())
        .collect()
}

#[test]
fn stdin_pipe_ends_the_process_cleanly() {
    let mut child = serving()
        .args(["--source", "stdin", "--rate", "22050", "--channels", "1"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = one_second_mono();
    for chunk in data.chunks(4001) {
        stdin.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(stdin);
    let out = wait_bounded(child, Duration::from_secs(10));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("stdin: end of input after 22053 frames; stopping"),
        "{err}"
    );
}

#[test]
fn stdin_regular_file_is_read_to_its_end() {
    let path = std::env::temp_dir().join(format!("zerocast-stdin-{}.raw", std::process::id()));
    std::fs::write(&path, one_second_mono()).unwrap();
    let child = serving()
        .args([
            "--source",
            "stdin",
            "--rate",
            "22050",
            "--channels",
            "1",
            "--codec",
            "pcm",
        ])
        .stdin(std::fs::File::open(&path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(10));
    std::fs::remove_file(&path).unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("stdin: end of input after 22053 frames; stopping"),
        "{err}"
    );
}
