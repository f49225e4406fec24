//! What the board tests share: a network namespace with a TAP device in it, and two players
//! (ffmpeg and rtmpdump, at once) of a board serving in that namespace, checked by content.
//!
//! The namespace is the board's LAN: the kernel's end of `tap0` is 192.0.2.1/24, the board
//! (smoltcp, behind the TAP device directly or behind an emulated MAC) is 192.0.2.2 and answers
//! ARP, TCP and RTMP itself. Nothing leaves the namespace, and dropping it removes the device.
//! Needs root (`ip netns`, `ip tuntap`): without it the tests skip, except under `CI`, where they
//! fail.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{analyse, available, collect, decode, require, Peer};

/// The kernel's end of the TAP link, and the board's stream (the board is 192.0.2.2/24).
const KERNEL: &str = "192.0.2.1/24";
const URL: &str = "rtmp://192.0.2.2/live/audio";

/// A network namespace with `tap0` up in it, deleted (with the device) on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes the namespace, named after `tag` and this process.
    pub fn create(tag: &str) -> Result<Self, String> {
        let ns = Self {
            name: format!("zc-{tag}-{}", std::process::id()),
        };
        let name = ns.name.as_str();
        ip(&["netns", "add", name])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ip(&["-n", name, "tuntap", "add", "dev", "tap0", "mode", "tap"])?;
        ip(&["-n", name, "addr", "add", KERNEL, "dev", "tap0"])?;
        ip(&["-n", name, "link", "set", "tap0", "up"])?;
        Ok(ns)
    }

    /// Starts `program` inside the namespace (`ip netns exec` execs it: same pid, so dropping
    /// the [`Peer`] stops the program itself).
    pub fn spawn(&self, dir: &Path, tag: &str, program: &str, args: &[&str], out: Stdio) -> Peer {
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

/// Whether this test can run: root (for network namespaces), `ip`, ffmpeg and rtmpdump; like
/// `require` otherwise.
pub fn require_namespace_and_players() -> bool {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    available(
        uid.is_ok_and(|u| u.trim_ascii() == b"0"),
        "root (for ip netns and ip tuntap)",
    ) && require("ip", "-V")
        && require("ffmpeg", "-version")
        && require("rtmpdump", "-h")
}

/// Waits for `board` (started in `ns`, its stdout piped) to print `serving ...`, then plays it
/// with rtmpdump and ffmpeg at once, ffmpeg for `seconds`, and checks both by content: the
/// 440 Hz tone, the duration, no gap. `boot` bounds the wait for `serving`. Returns the board,
/// still running (dropping it stops it).
pub fn play_both(ns: &Netns, dir: &Path, mut board: Peer, boot: Duration, seconds: u32) -> Peer {
    // The board's status lines, as they come.
    let (lines_tx, lines) = mpsc::channel();
    let stdout = board.take_stdout().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let started = Instant::now();
    let serving = loop {
        match lines.recv_timeout(boot.saturating_sub(started.elapsed())) {
            Ok(line) if line.starts_with("serving") => break Ok(line),
            Ok(_) => continue,
            Err(e) => break Err(e),
        }
    };
    assert!(
        serving.is_ok(),
        "board did not start: {serving:?}\n{}",
        board.log()
    );
    println!("board serving after {:?}", started.elapsed());

    let flv = dir.join("rtmpdump.flv");
    let flv_arg = flv.to_str().unwrap();
    let mut rtmpdump = ns.spawn(
        dir,
        "rtmpdump",
        "rtmpdump",
        &["-r", URL, "-v", "-o", flv_arg],
        Stdio::null(),
    );
    let t = seconds.to_string();
    let args = [
        "-nostdin", "-i", URL, "-t", &t, "-f", "s16le", "-ac", "2", "-ar", "44100", "-",
    ];
    let mut ffmpeg = ns.spawn(dir, "ffmpeg", "ffmpeg", &args, Stdio::piped());
    let output = collect(ffmpeg.take_stdout().unwrap());
    let status = ffmpeg.wait(Duration::from_secs(60));
    rtmpdump.interrupt();
    let dump_status = rtmpdump.wait(Duration::from_secs(10));
    let pcm = output.join().unwrap().bytes;
    let status_lines: Vec<String> = lines.try_iter().collect();
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

    let seconds = f64::from(seconds);
    let stats = analyse(&pcm);
    stats.assert_clean_tone("ffmpeg");
    assert!(
        (stats.seconds() - seconds).abs() < 0.05,
        "ffmpeg: expected {seconds} s, got {stats:?}"
    );

    let dumped = analyse(&decode(&flv).unwrap());
    dumped.assert_clean_tone("rtmpdump");
    // It ran from before ffmpeg started until after it ended; the join buffer adds up to 0.5 s.
    assert!(
        (seconds - 0.5..seconds + 7.0).contains(&dumped.seconds()),
        "rtmpdump: expected about {seconds} s or more, got {dumped:?}"
    );
    board
}
