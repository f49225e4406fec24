//! The board example over smoltcp on a TAP device, played by ffmpeg and rtmpdump at the same time.
//!
//! The test makes a network namespace of its own with a TAP device in it (192.0.2.1/24, the
//! kernel's side), starts `zerocast-board-tap` there as 192.0.2.2 (smoltcp's side: it answers ARP,
//! TCP and RTMP itself), and runs the players in the namespace against it. Nothing leaves the
//! namespace, and dropping it removes the device. Needs root (`ip netns`, `ip tuntap`): without it
//! the test skips, except under `CI`, where it fails.
//!
//! Checked by content: 440 Hz, the duration asked for, no silence in the tone.

#[path = "../../core/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::{analyse, available, collect, decode, require, scratch_dir, Peer};

/// The kernel's end of the TAP link and the board's address.
const KERNEL: &str = "192.0.2.1/24";
const BOARD: &str = "192.0.2.2/24";
const URL: &str = "rtmp://192.0.2.2/live/audio";

/// A network namespace with `tap0` up in it, deleted (with the device) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Result<Self, String> {
        let ns = Self {
            name: format!("zc-board-{}", std::process::id()),
        };
        let name = ns.name.as_str();
        ip(&["netns", "add", name])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ip(&["-n", name, "tuntap", "add", "dev", "tap0", "mode", "tap"])?;
        ip(&["-n", name, "addr", "add", KERNEL, "dev", "tap0"])?;
        ip(&["-n", name, "link", "set", "tap0", "up"])?;
        Ok(ns)
    }

    /// Starts `program` inside the namespace (`ip netns exec` execs it: same pid).
    fn spawn(&self, dir: &Path, tag: &str, program: &str, args: &[&str], out: Stdio) -> Peer {
        let exec = [&["netns", "exec", &self.name, program], args].concat();
        Peer::spawn(dir, tag, "ip", &exec, out)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Root is needed for network namespaces; like `require` otherwise.
fn require_root() -> bool {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    available(
        uid.is_ok_and(|u| u.trim_ascii() == b"0"),
        "root (for ip netns and ip tuntap)",
    )
}

#[test]
fn ffmpeg_and_rtmpdump_play_the_tone_from_smoltcp_on_a_tap_device() {
    if !require_root()
        || !require("ip", "-V")
        || !require("ffmpeg", "-version")
        || !require("rtmpdump", "-h")
    {
        return;
    }
    let dir = scratch_dir("board-tap");
    let ns = Netns::create().unwrap();
    let mut board = ns.spawn(
        &dir,
        "board",
        env!("CARGO_BIN_EXE_zerocast-board-tap"),
        &["tap0", BOARD, "60"],
        Stdio::piped(),
    );
    // The board's status lines, as they come.
    let (lines_tx, lines) = mpsc::channel();
    let stdout = board.take_stdout().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(10));
    assert!(
        first.as_deref().is_ok_and(|l| l.starts_with("serving")),
        "board did not start: {first:?}\n{}",
        board.log()
    );

    let flv = dir.join("rtmpdump.flv");
    let flv_arg = flv.to_str().unwrap();
    let mut rtmpdump = ns.spawn(
        &dir,
        "rtmpdump",
        "rtmpdump",
        &["-r", URL, "-v", "-o", flv_arg],
        Stdio::null(),
    );
    let args = [
        "-nostdin", "-i", URL, "-t", "3", "-f", "s16le", "-ac", "2", "-ar", "44100", "-",
    ];
    let mut ffmpeg = ns.spawn(&dir, "ffmpeg", "ffmpeg", &args, Stdio::piped());
    let output = collect(ffmpeg.take_stdout().unwrap());
    let status = ffmpeg.wait(Duration::from_secs(60));
    rtmpdump.interrupt();
    let dump_status = rtmpdump.wait(Duration::from_secs(10));
    let pcm = output.join().unwrap().bytes;
    // Every status line so far, then stop the board.
    let status_lines: Vec<String> = lines.try_iter().collect();
    drop(board);
    println!("board: {status_lines:?}");

    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "ffmpeg: {status:?}\n{}",
        ffmpeg.log()
    );
    // rtmpdump exits 2 ("incomplete") when interrupted on a live stream.
    assert!(
        dump_status
            .as_ref()
            .is_ok_and(|s| matches!(s.code(), Some(0 | 2))),
        "rtmpdump: {dump_status:?}\n{}",
        rtmpdump.log()
    );
    assert!(
        status_lines.iter().any(|l| l == "playing 2"),
        "the two players never played at the same time: {status_lines:?}"
    );

    let stats = analyse(&pcm);
    stats.assert_clean_tone("ffmpeg over smoltcp/TAP");
    assert!(
        (stats.seconds() - 3.0).abs() < 0.05,
        "ffmpeg: expected 3 s, got {stats:?}"
    );

    let dumped = analyse(&decode(&flv).unwrap());
    dumped.assert_clean_tone("rtmpdump over smoltcp/TAP");
    // It ran from before ffmpeg started until after it ended; the join buffer adds up to 0.5 s.
    assert!(
        (2.5..10.0).contains(&dumped.seconds()),
        "rtmpdump: expected about 3 s or more, got {dumped:?}"
    );
}
