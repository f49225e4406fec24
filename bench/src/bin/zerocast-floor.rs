//! `zerocast-floor`: the least a live server can do for one listener, to measure the machine's
//! floor under the benchmark's "tone + one player" figure (issue 11's idle cost).
//!
//! It wakes every `--send-ms` (20 ms, zerocast's default send interval) from an `epoll_wait` with
//! a timeout (the wait of any event-loop server, which costs more here than a plain `nanosleep`:
//! the wake-up and the listener's preemptions differ), accepts listeners, and
//! writes each one the bytes due since its last write, taken from an endless body of
//! MP3 frames (MPEG-1 layer III, 320 kb/s, 44.1 kHz: 40 kB/s, near the 44 kB/s zerocast sends one
//! ADPCM player) behind an Icecast-style HTTP answer, so that `zerocast-load` reads it like any
//! `.mp3` mount and checks that nothing was lost. It encodes nothing, parses nothing (the request
//! is never read) and keeps no state but a byte count per listener: what it costs is the wake-up,
//! the write and the loopback path the sender pays for — what any server pays at that interval on
//! this machine, which zerocast's own figure can be read against.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The answer before the body.
const HEAD: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\n\r\n";
/// One MPEG-1 layer III frame header: 320 kb/s, 44.1 kHz, no padding, joint stereo.
const FRAME_HEADER: [u8; 4] = [0xFF, 0xFB, 0xE0, 0x64];
/// Its length: 144 × 320 000 / 44 100, rounded down (no padding bit).
const FRAME_LEN: usize = 1044;
/// Body bytes per second: 38.28 frames a second of 1152 samples at 44.1 kHz.
const BYTES_PER_S: f64 = FRAME_LEN as f64 * 44_100.0 / 1152.0;

const USAGE: &str = "\
zerocast-floor: wakes every SEND_MS, writes each HTTP listener the MP3 bytes due (40 kB/s)

Usage: zerocast-floor --listen ADDR:PORT [--send-ms N]   [default: 20]";

/// One listener: its socket and the body bytes it has been sent.
struct Listener {
    socket: TcpStream,
    joined: Instant,
    sent: usize,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerocast-floor: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut listen = None;
    let mut send_ms = 20u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(value()?),
            "--send-ms" => {
                send_ms = value()?
                    .parse()
                    .map_err(|_| "--send-ms: not a number".to_owned())?;
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let server = TcpListener::bind(&listen).map_err(|e| format!("{listen}: {e}"))?;
    server
        .set_nonblocking(true)
        .map_err(|e| format!("{listen}: {e}"))?;
    let mut body = vec![0u8; FRAME_LEN];
    body[..4].copy_from_slice(&FRAME_HEADER);
    let interval = Duration::from_millis(send_ms.max(1));
    let mut listeners: Vec<Listener> = Vec::new();
    // The bytes of one write, reused.
    let mut chunk = Vec::new();
    let mut next = Instant::now() + interval;
    let mut poll = mio::Poll::new().map_err(|e| e.to_string())?;
    let mut events = mio::Events::with_capacity(4);
    loop {
        // Nothing is registered: the poll is only the timed wait.
        let _ = poll.poll(
            &mut events,
            Some(next.saturating_duration_since(Instant::now())),
        );
        next += interval;
        let now = Instant::now();
        while let Ok((socket, _)) = server.accept() {
            if let Some(l) = join(socket, now) {
                listeners.push(l);
            }
        }
        // A listener that fails a write is gone; one that would block waits for the next tick.
        listeners.retain_mut(|l| send_due(l, &body, &mut chunk, now));
    }
}

/// A new listener, answered at once; `None` if it is already gone.
fn join(mut socket: TcpStream, now: Instant) -> Option<Listener> {
    socket.set_nodelay(true).ok()?;
    socket.write_all(HEAD).ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(Listener {
        socket,
        joined: now,
        sent: 0,
    })
}

/// Writes `l` the body bytes due at `now` in one call; false when the listener is gone.
fn send_due(l: &mut Listener, frame: &[u8], chunk: &mut Vec<u8>, now: Instant) -> bool {
    let due = ((now - l.joined).as_secs_f64() * BYTES_PER_S) as usize;
    chunk.clear();
    let mut at = l.sent;
    while at < due {
        let offset = at % frame.len();
        let take = (frame.len() - offset).min(due - at);
        chunk.extend_from_slice(&frame[offset..offset + take]);
        at += take;
    }
    if chunk.is_empty() {
        return true;
    }
    match l.socket.write(chunk) {
        Ok(n) => {
            l.sent += n;
            true
        }
        Err(e) => e.kind() == ErrorKind::WouldBlock,
    }
}
