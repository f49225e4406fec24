//! The benchmark's load client (`zerocast-load`) against a zerocast tone server run in this test
//! process (`zerocast::main_with_args` on a thread of its own): every player must get
//! continuous audio — over RTMP, HTTP-FLV and the Icecast-style `.mp3` and `.aac` mounts — and
//! the client must notice when they do not.
//!
//! The checks are on counts (players receiving, timestamp gaps, stalls over 500 ms, stream time
//! received), never on CPU or latency figures: the machine is shared.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self, Pthread};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

/// Players per run, and how long they play.
const PLAYERS: usize = 20;
const PLAY_SECS: f64 = 4.0;
/// Each player must receive at least this much stream time: the run less a second for connects
/// on a loaded machine (zerocast's join backlog comes on top).
const MIN_AUDIO_S: f64 = PLAY_SECS - 1.0;
/// How long the client may take beyond its own duration (start-up, summary) before it counts
/// as hung.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long the frozen client is stopped: well over the 500 ms stall limit.
const FREEZE: Duration = Duration::from_millis(1200);

type Failure = String;

/// zerocast serving a tone on a free port from a thread of this process; stopped with SIGTERM
/// to that thread (its signalfd takes it) when dropped.
struct Server {
    addr: SocketAddr,
    /// Where HTTP listeners connect, and the mount's extension, if asked for.
    http: Option<(SocketAddr, &'static str)>,
    thread: Pthread,
    handle: Option<thread::JoinHandle<std::process::ExitCode>>,
}

fn free_addr() -> Result<SocketAddr, Failure> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("free port: {e}"))
}

impl Server {
    /// RTMP only, or RTMP and HTTP with `http`, the mount listeners play (`flv`, `mp3`, `aac`).
    fn start(codec: &str, http: Option<&'static str>) -> Result<Server, Failure> {
        let addr = free_addr()?;
        let http = match http {
            Some(ext) => Some((free_addr()?, ext)),
            None => None,
        };
        let http_arg = http.map_or("off".to_owned(), |(a, _)| a.to_string());
        let args: Vec<std::ffi::OsString> = [
            "--listen",
            &addr.to_string(),
            "--source",
            "tone:440",
            "--codec",
            codec,
            "--http",
            &http_arg,
            "--log-level",
            "warn",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let (tx, rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            // Blocked before zerocast blocks it itself, so a SIGTERM sent early cannot end the
            // whole test process.
            let mut mask = SigSet::empty();
            mask.add(Signal::SIGTERM);
            let _ = mask.thread_block();
            let _ = tx.send(pthread_self());
            zerocast::main_with_args(args)
        });
        let thread = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the server thread did not start".to_owned())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || handle.is_finished() {
                return Err(format!("zerocast did not listen on {addr}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
        let server = Server {
            addr,
            http,
            thread,
            handle: Some(handle),
        };
        if let Some((http, ext)) = http {
            // The stream's HTTP formats exist from its first audio on.
            while !mount_answers(http, ext) {
                if Instant::now() > deadline {
                    return Err(format!("no .{ext} mount at {http}"));
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(server)
    }

    /// The stream's URL: its HTTP mount when the server listens for HTTP, else RTMP.
    fn url(&self) -> String {
        match self.http {
            Some((http, ext)) => format!("http://{http}/live/audio.{ext}"),
            None => format!("rtmp://{}/live/audio", self.addr),
        }
    }
}

/// Whether `HEAD /live/audio.EXT` is answered 200.
fn mount_answers(http: SocketAddr, ext: &str) -> bool {
    let mut answer = [0u8; 12];
    TcpStream::connect(http)
        .and_then(|mut s| {
            s.write_all(format!("HEAD /live/audio.{ext} HTTP/1.1\r\n\r\n").as_bytes())?;
            s.read_exact(&mut answer)
        })
        .is_ok()
        && &answer == b"HTTP/1.1 200"
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = pthread_kill(self.thread, Signal::SIGTERM);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A running `zerocast-load` and its standard output, line by line.
struct Client {
    child: Child,
    lines: Receiver<String>,
    out: Vec<String>,
}

impl Client {
    fn start(args: &[&str]) -> Result<Client, Failure> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zerocast-load"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start zerocast-load: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Client {
            child,
            lines,
            out: Vec::new(),
        })
    }

    /// Waits for a line starting with `prefix` (bounded by `limit`).
    fn line(&mut self, prefix: &str, limit: Duration) -> Result<String, Failure> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.out.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    return Err(format!(
                        "zerocast-load printed no {prefix:?} line; stdout:\n{}",
                        self.out.join("\n")
                    ));
                }
            }
        }
    }

    /// The summary line and the exit status.
    fn finish(mut self, limit: Duration) -> Result<(String, ExitStatus), Failure> {
        let summary = self.line("summary ", limit)?;
        let status = self
            .child
            .wait()
            .map_err(|e| format!("wait for zerocast-load: {e}"))?;
        Ok((summary, status))
    }
}

/// The value of `key=` in a `summary` line.
fn summary_value(summary: &str, key: &str) -> Option<f64> {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Plays `codec` from a zerocast tone server with [`PLAYERS`] players — RTMP, or HTTP
/// listeners of the mount `http` — and checks the summary.
fn continuous_for(codec: &str, http: Option<&'static str>) -> Result<(), Failure> {
    let server = Server::start(codec, http)?;
    let url = server.url();
    let players = PLAYERS.to_string();
    let duration = PLAY_SECS.to_string();
    let client = Client::start(&[
        "--url",
        &url,
        "--players",
        &players,
        "--duration",
        &duration,
        "--check",
    ])?;
    let (summary, status) = client.finish(Duration::from_secs_f64(PLAY_SECS) + EXIT_GRACE)?;
    println!("{codec}: {summary}");
    drop(server);
    if !status.success() {
        return Err(format!("zerocast-load --check: {status}; {summary}"));
    }
    let value = |key| summary_value(&summary, key).ok_or_else(|| format!("no {key}: {summary}"));
    let checks = [
        ("receiving", value("receiving")? == PLAYERS as f64),
        ("continuous", value("continuous")? == PLAYERS as f64),
        ("gaps", value("gaps")? == 0.0),
        ("stalls", value("stalls")? == 0.0),
        ("min_audio_s", value("min_audio_s")? >= MIN_AUDIO_S),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        Some((key, _)) => Err(format!("summary: {key}: {summary}")),
        None => Ok(()),
    }
}

#[test]
fn every_player_receives_continuous_pcm() -> Result<(), Failure> {
    continuous_for("pcm", None)
}

#[test]
fn every_http_flv_listener_receives_continuous_pcm() -> Result<(), Failure> {
    continuous_for("pcm", Some("flv"))
}

#[test]
fn every_icecast_style_listener_receives_continuous_mp3_and_aac() -> Result<(), Failure> {
    continuous_for("mp3", Some("mp3"))?;
    continuous_for("aac", Some("aac"))
}

#[test]
fn every_player_receives_continuous_adpcm() -> Result<(), Failure> {
    continuous_for("adpcm", None)
}

/// The check can fail: once every player plays, the client itself is stopped (SIGSTOP) for
/// [`FREEZE`], so no audio message reaches any player for longer than the stall limit, and
/// `--check` must exit 1 with a stall for every player. (The server is in this process, so it
/// is the client that is frozen; the client measures stalls by its wall clock, which runs on
/// while it is stopped, exactly as when the server stops sending.)
#[test]
fn a_frozen_stream_is_reported_as_stalls() -> Result<(), Failure> {
    let server = Server::start("pcm", None)?;
    let url = server.url();
    let mut client = Client::start(&[
        "--url",
        &url,
        "--players",
        "5",
        "--duration",
        "4",
        "--check",
    ])?;
    client.line("ready", Duration::from_secs(4) + EXIT_GRACE)?;
    let pid = Pid::from_raw(i32::try_from(client.child.id()).map_err(|e| e.to_string())?);
    kill(pid, Signal::SIGSTOP).map_err(|e| format!("SIGSTOP: {e}"))?;
    thread::sleep(FREEZE);
    kill(pid, Signal::SIGCONT).map_err(|e| format!("SIGCONT: {e}"))?;
    let (summary, status) = client.finish(Duration::from_secs(4) + EXIT_GRACE)?;
    println!("frozen: {summary}");
    drop(server);
    if status.code() != Some(1) {
        return Err(format!(
            "zerocast-load --check should exit 1, got {status}: {summary}"
        ));
    }
    match summary_value(&summary, "stalls") {
        Some(n) if n >= 5.0 => Ok(()),
        _ => Err(format!("summary: stalls for 5 players: {summary}")),
    }
}
