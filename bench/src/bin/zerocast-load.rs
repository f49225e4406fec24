//! `zerocast-load`: N RTMP players in one process, one thread, one `mio::Poll`, for benchmarks
//! and load tests against zerocast or any RTMP server (nginx-rtmp) — or N HTTP listeners: HTTP-FLV
//! (`--url http://HOST:PORT/APP/NAME.flv`), whose tags are counted the same way, or Icecast-style
//! MP3 and ADTS bodies (`….mp3`, `….aac`, from zerocast or Icecast), counted frame by frame.
//!
//! Each player is the core's sans-IO [`ClientSession`] over a nonblocking socket, driven in the
//! session's documented order (write `transmit()` and `advance`, feed received bytes to
//! `receive` until it consumes nothing). It decodes no audio: it only counts audio messages,
//! bytes and stream time (from the FLV tag: PCM, SWF ADPCM, MP3, AAC), and checks
//! - **gaps**: a timestamp more than half a message (and more than [`GAP_SLACK_MS`]) away from
//!   the previous one plus the previous message's duration: audio the player never got, or time
//!   that jumped (smaller differences are counted as timestamp **jitter**: ffmpeg stamps what
//!   it captures with the wall clock). An MP3 or ADTS body has no timestamps: there, bytes that
//!   are not a whole frame between two frames count as a gap;
//! - **stalls**: more than `--stall-ms` of wall time between two audio messages (or from the
//!   last one to the end of the run), after the first one.
//!
//! It prints one `ready …` line once every player receives audio (or the ramp timed out), and one
//! `summary …` line of `key=value` pairs at the end, for scripts; `--check` makes the exit
//! status say whether every player received continuous audio (0 yes, 1 no). Problems of
//! individual players go to stderr.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use nix::sys::resource::rlim_t;
use zerocast_core::adts::AdtsHeader;
use zerocast_core::session::{ClientConfig, ClientEvent, ClientRole, ClientSession};
use zerocast_core::time::Instant as CoreInstant;

/// Reassembly arena per player: a zerocast message is at most one period (20 ms of 44.1 kHz
/// stereo PCM is 3529 B), nginx-rtmp's MP3 messages are ~420 B.
const ARENA: usize = 16 * 1024;
/// The player's own output: connect, createStream, play, acknowledgements, pongs.
const TX: usize = 4096;
type Session = ClientSession<ARENA, TX>;

/// Timestamps are whole milliseconds (zerocast floors the exact stream time, ffmpeg rounds), so
/// one step may differ from the exact duration by up to 1 ms; 2 ms leaves room for both.
const GAP_SLACK_MS: f64 = 2.0;
/// Socket reads go through one buffer shared by all players.
const READ_BUFFER: usize = 64 * 1024;
/// How long the `ready` line waits for every player to receive audio after the ramp.
const READY_LIMIT: Duration = Duration::from_secs(15);

const USAGE: &str = "\
zerocast-load: N RTMP players in one process; counts audio messages, bytes, gaps and stalls

Usage: zerocast-load --url rtmp://HOST:PORT/APP/NAME [OPTIONS]
       zerocast-load --url http://HOST:PORT/PATH.flv|.mp3|.aac [OPTIONS]

Options:
  --url URL          stream to play (host must be an address or resolvable name);
                     http:// for HTTP listeners (FLV, MP3 or ADTS by the extension)
  --players N        players                                  [default: 1]
  --duration SECS    run time from the start (decimal)        [default: 10]
  --ramp-ms N        spread the connects over this long       [default: N ms]
  --stall-ms N       a longer wait between audio messages is a stall [default: 500]
  --until-ended      exit early once every player's stream has ended or closed
  --stop-on-eof      end the run when standard input reaches end of file
  --check            exit 1 unless every player played with no gap and no stall
  --help
";

/// Command line.
#[derive(Clone, Debug)]
struct Args {
    addr: SocketAddr,
    /// HTTP: the request path; `None` for RTMP.
    http_path: Option<String>,
    app: String,
    name: String,
    tc_url: String,
    players: usize,
    duration: Duration,
    ramp: Duration,
    stall: Duration,
    until_ended: bool,
    stop_on_eof: bool,
    check: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut url = None;
    let mut players = 1usize;
    let mut duration = 10.0f64;
    let mut ramp_ms = None;
    let mut stall_ms = 500u64;
    let (mut until_ended, mut stop_on_eof, mut check) = (false, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value("--url")?),
            "--players" => players = number(&value("--players")?, "--players")?,
            "--duration" => duration = number(&value("--duration")?, "--duration")?,
            "--ramp-ms" => ramp_ms = Some(number(&value("--ramp-ms")?, "--ramp-ms")?),
            "--stall-ms" => stall_ms = number(&value("--stall-ms")?, "--stall-ms")?,
            "--until-ended" => until_ended = true,
            "--stop-on-eof" => stop_on_eof = true,
            "--check" => check = true,
            "--help" | "-h" => return Ok(None),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let (rest, default_port, http) =
        match (url.strip_prefix("rtmp://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (rest, 1935, false),
            (None, Some(rest)) => (rest, 80, true),
            _ => return Err("the URL must start with rtmp:// or http://".into()),
        };
    let (host, path) = rest.split_once('/').ok_or("the URL needs a path")?;
    // An HTTP path is sent as it is (an Icecast mount is often one segment: /live.mp3).
    let (app, name) = match path.split_once('/') {
        Some(app_name) => app_name,
        None if http => ("", path),
        None => return Err("the URL needs /APP/NAME".into()),
    };
    let host_port = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{host_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host_port}: no address"))?;
    if !(duration.is_finite() && duration > 0.0) || players == 0 {
        return Err("--players and --duration must be positive".into());
    }
    Ok(Some(Args {
        addr,
        http_path: http.then(|| format!("/{path}")),
        tc_url: format!("rtmp://{host}/{app}"),
        app: app.to_owned(),
        name: name.to_owned(),
        players,
        duration: Duration::from_secs_f64(duration),
        ramp: Duration::from_millis(ramp_ms.unwrap_or(players as u64)),
        stall: Duration::from_millis(stall_ms),
        until_ended,
        stop_on_eof,
        check,
    }))
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: not a number: {s:?}"))
}

/// How a player's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// Still running at the end of the run.
    Running,
    /// The server ended the stream (Play.Stop, StreamEOF).
    StreamEnded,
    /// The server closed the connection.
    Closed,
    /// A socket error (connect refused, reset).
    Io(io::ErrorKind),
    /// The session could not parse what the server sent, or gave up (idle).
    Protocol(String),
}

/// What one player saw.
#[derive(Debug)]
struct Stats {
    connected_at: Option<Duration>,
    playing_at: Option<Duration>,
    first_audio_at: Option<Duration>,
    last_audio_at: Option<Duration>,
    messages: u64,
    bytes: u64,
    /// Stream time of the audio received, from the tags (ms).
    audio_ms: f64,
    /// Messages whose duration the tag does not tell (unknown codec).
    unknown_duration: u64,
    gaps: u64,
    /// Largest |timestamp jump| of a gap (ms).
    worst_gap_ms: f64,
    stalls: u64,
    longest_stall: Duration,
    /// Where the next message should start: previous timestamp + its duration, and that
    /// duration (ms).
    expected_ms: Option<(f64, f64)>,
    /// The first audio message's timestamp (ms).
    first_timestamp: Option<f64>,
    /// Timestamps off by more than [`GAP_SLACK_MS`] but less than half a message.
    jitter: u64,
    worst_jitter_ms: f64,
    end: End,
}

impl Stats {
    fn new() -> Self {
        Stats {
            connected_at: None,
            playing_at: None,
            first_audio_at: None,
            last_audio_at: None,
            messages: 0,
            bytes: 0,
            audio_ms: 0.0,
            unknown_duration: 0,
            gaps: 0,
            worst_gap_ms: 0.0,
            stalls: 0,
            longest_stall: Duration::ZERO,
            expected_ms: None,
            first_timestamp: None,
            jitter: 0,
            worst_jitter_ms: 0.0,
            end: End::Running,
        }
    }

    fn audio(&mut self, at: Duration, stall: Duration, timestamp: u32, payload: &[u8]) {
        let Some(duration_ms) = duration_ms(payload) else {
            self.unknown_duration += 1;
            return;
        };
        // An AAC sequence header carries no audio.
        if duration_ms == 0.0 {
            return;
        }
        self.message(at, stall, f64::from(timestamp), duration_ms, payload.len());
    }

    /// One audio message of `len` bytes and `duration_ms` at stream time `timestamp` (ms).
    fn message(
        &mut self,
        at: Duration,
        stall: Duration,
        timestamp: f64,
        duration_ms: f64,
        len: usize,
    ) {
        self.messages += 1;
        self.bytes += len as u64;
        self.audio_ms += duration_ms;
        if let Some(last) = self.last_audio_at {
            self.note_wait(at.saturating_sub(last), stall);
        }
        self.first_audio_at.get_or_insert(at);
        self.last_audio_at = Some(at);
        let first = *self.first_timestamp.get_or_insert(timestamp);
        if let Some((expected, previous)) = self.expected_ms {
            // An encoder's priming packets (AAC, MP3) at the stream's start: zerocast stamps
            // those that begin before the stream like its first audio (0), so the next one
            // starts before the previous one ends. An overlap, not audio that went missing.
            let after_priming = (expected - previous - first).abs() < 1e-6 && timestamp < expected;
            let jump = if after_priming {
                0.0
            } else {
                (timestamp - expected).abs()
            };
            // Less than half a message off is timestamp jitter (ffmpeg stamps captured audio
            // with the wall clock), not audio that went missing.
            if jump > GAP_SLACK_MS.max(previous / 2.0) {
                self.gaps += 1;
                self.worst_gap_ms = self.worst_gap_ms.max(jump);
            } else if jump > GAP_SLACK_MS {
                self.jitter += 1;
                self.worst_jitter_ms = self.worst_jitter_ms.max(jump);
            }
        }
        self.expected_ms = Some((timestamp + duration_ms, duration_ms));
    }

    fn note_wait(&mut self, wait: Duration, stall: Duration) {
        if wait > stall {
            self.stalls += 1;
        }
        self.longest_stall = self.longest_stall.max(wait);
    }

    /// Played audio with no gap and no stall, and was still receiving at the end (or the
    /// server ended the stream in order).
    fn continuous(&self) -> bool {
        self.first_audio_at.is_some()
            && self.gaps == 0
            && self.stalls == 0
            && matches!(self.end, End::Running | End::StreamEnded)
    }
}

/// Stream time of one FLV audio tag body in milliseconds, from its header byte (FLV spec
/// v10.1 §E.4.2.1); `Some(0.0)` for an AAC sequence header, `None` for codecs it cannot tell.
fn duration_ms(payload: &[u8]) -> Option<f64> {
    let (&tag, body) = payload.split_first()?;
    let rate = [5512.5, 11025.0, 22050.0, 44100.0][usize::from((tag >> 2) & 3)];
    let channels = if tag & 1 == 1 { 2 } else { 1 };
    let frames = match tag >> 4 {
        // PCM, platform-endian / little-endian; 8 or 16 bit.
        0 | 3 => {
            let bytes = if tag & 2 == 2 { 2 } else { 1 };
            body.len() / (bytes * channels)
        }
        1 => adpcm_frames(body, channels)?,
        2 => return mp3_duration_ms(body),
        10 => {
            return match body.first() {
                Some(0) => Some(0.0),
                // One raw AAC-LC frame: 1024 samples; the tag's rate says 44.1 kHz (FLV AAC
                // always sets it; the real rate is in the sequence header, protocol-notes §3).
                Some(_) => Some(1024.0 * 1000.0 / 44100.0),
                None => None,
            };
        }
        _ => return None,
    };
    Some(frames as f64 * 1000.0 / rate)
}

/// Frames of a SWF ADPCM packet the way ffmpeg's decoder counts them (`get_nb_samples` in
/// libavcodec/adpcm.c): 2 bits of code size, then blocks of 4096 frames, each a 22-bit header
/// per channel and 4095 codes per channel; padding in the last byte counts as codes.
fn adpcm_frames(body: &[u8], channels: usize) -> Option<usize> {
    let bits_per_code = usize::from(body.first()? >> 6) + 2;
    let header = 22 * channels;
    let frame = bits_per_code * channels;
    let block = header + frame * 4095;
    let bits = (body.len() * 8).checked_sub(2)?;
    let rest = bits % block;
    let partial = if rest >= header {
        1 + (rest - header) / frame
    } else {
        0
    };
    Some(bits / block * 4096 + partial)
}

/// Duration of the MPEG audio frame(s) an FLV MP3 tag starts with (ffmpeg's flv muxer puts one
/// frame in each tag): samples per frame and rate from the frame header (ISO 11172-3 §2.4.2.3).
fn mp3_duration_ms(body: &[u8]) -> Option<f64> {
    let (h, rate) = mp3_header(body)?;
    let (version, layer) = ((h[1] >> 3) & 3, (h[1] >> 1) & 3);
    let samples = match (layer, version) {
        (3, _) => 384.0,
        (2, _) | (1, 3) => 1152.0,
        (1, _) => 576.0,
        _ => return None,
    };
    Some(samples * 1000.0 / f64::from(rate))
}

/// The 4-byte MPEG audio frame header `body` starts with and its sample rate, if it starts with
/// one. Version (h\[1\] bits 4–3): 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5; layer (bits 2–1):
/// 3 = I, 2 = II, 1 = III.
fn mp3_header(body: &[u8]) -> Option<(&[u8], u32)> {
    let h = body.get(..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let base = *[44100, 48000, 32000].get(usize::from((h[2] >> 2) & 3))?;
    let rate = match (h[1] >> 3) & 3 {
        3 => base,
        2 => base / 2,
        0 => base / 4,
        _ => return None,
    };
    Some((h, rate))
}

/// Length in bytes of the MPEG audio layer III frame `body` starts with: 144 (MPEG-1) or 72
/// (MPEG-2 and 2.5) × bitrate / rate, plus the padding slot (ISO 11172-3 §2.4.3.1,
/// ISO 13818-3 §2.4.3.1); `None` for other layers and for free-format or invalid bitrates.
fn mp3_frame_len(body: &[u8]) -> Option<usize> {
    let (h, rate) = mp3_header(body)?;
    if (h[1] >> 1) & 3 != 1 {
        return None;
    }
    let mpeg1 = (h[1] >> 3) & 3 == 3;
    let kbps: [u32; 15] = if mpeg1 {
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ]
    } else {
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
    };
    let bitrate = *kbps.get(usize::from(h[2] >> 4))? * 1000;
    if bitrate == 0 {
        return None;
    }
    let slots = if mpeg1 { 144 } else { 72 };
    usize::try_from(slots * bitrate / rate + u32::from((h[2] >> 1) & 1)).ok()
}

/// Length and duration (ms) of the MP3 or ADTS frame `bytes` starts with, if it starts with one.
fn elementary_frame(body: Body, bytes: &[u8]) -> Option<(usize, f64)> {
    let (len, ms) = match body {
        Body::Mp3 => (mp3_frame_len(bytes)?, mp3_duration_ms(bytes)?),
        Body::Adts => {
            let (header, len) = AdtsHeader::parse(bytes).ok()?;
            // 1024 samples in each of the frame's raw data blocks (ISO 14496-3 §1.A.2.2).
            let blocks = f64::from(bytes.get(6)? & 3) + 1.0;
            (
                len,
                blocks * 1024.0 * 1000.0 / f64::from(header.sample_rate()),
            )
        }
        Body::Flv => return None,
    };
    (len >= ELEMENTARY_HEADER).then_some((len, ms))
}

/// Bytes enough for an MP3 (4) or ADTS (7) frame header.
const ELEMENTARY_HEADER: usize = 7;

/// How a player talks to the server.
enum Wire {
    /// An RTMP client session.
    Rtmp(Box<Session>),
    /// An HTTP request and the response being read.
    Http(Box<Http>),
}

/// What an HTTP response body carries, from the request path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// `.flv`: an FLV file header, then tags.
    Flv,
    /// `.mp3`: MPEG audio frames, Icecast-style.
    Mp3,
    /// `.aac`: ADTS frames.
    Adts,
}

/// An HTTP listener: its request, then the response head, then the body (chunked or not): FLV
/// tags, or MP3 or ADTS frames.
struct Http {
    request: Vec<u8>,
    sent: usize,
    head_done: bool,
    chunked: bool,
    /// Where the chunked framing stands.
    chunk: Chunk,
    body: Body,
    /// Body bytes not parsed yet; FLV: whether the 13-byte file header is behind; MP3 and
    /// ADTS: whether the parse stands at a frame boundary (found by two frames in a row).
    data: Vec<u8>,
    header_skipped: bool,
    synced: bool,
}

/// The chunked transfer coding (RFC 9112 §7.1): what comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// A size line.
    Size,
    /// This many data bytes.
    Data(usize),
    /// The CRLF after a chunk's data.
    Crlf,
}

/// Longest response head accepted.
const MAX_HTTP_HEAD: usize = 16 * 1024;

impl Http {
    fn new(path: &str, host: SocketAddr) -> Self {
        let body = if path.ends_with(".mp3") {
            Body::Mp3
        } else if path.ends_with(".aac") {
            Body::Adts
        } else {
            Body::Flv
        };
        Self {
            request: format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            sent: 0,
            head_done: false,
            chunked: false,
            chunk: Chunk::Size,
            body,
            data: Vec::new(),
            header_skipped: false,
            synced: false,
        }
    }

    /// Reads the response in `input`: returns the bytes used and, once the head is read,
    /// counts every audio tag or frame in `stats`.
    fn parse(
        &mut self,
        input: &[u8],
        stats: &mut Stats,
        now: Duration,
        stall: Duration,
    ) -> (usize, Option<End>) {
        let mut used = 0;
        if !self.head_done {
            let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
                return if input.len() > MAX_HTTP_HEAD {
                    (0, Some(End::Protocol("response head too long".into())))
                } else {
                    (0, None)
                };
            };
            let head = String::from_utf8_lossy(&input[..end]).to_ascii_lowercase();
            let status = head.lines().next().unwrap_or_default().to_owned();
            if !["http/1.1 200", "http/1.0 200", "icy 200"]
                .iter()
                .any(|ok| status.starts_with(ok))
            {
                return (0, Some(End::Protocol(format!("HTTP answer {status:?}"))));
            }
            self.chunked = head.contains("\r\ntransfer-encoding: chunked");
            self.head_done = true;
            stats.playing_at.get_or_insert(now);
            used = end + 4;
        }
        let mut ended = None;
        while used < input.len() {
            let rest = &input[used..];
            if !self.chunked {
                self.data.extend_from_slice(rest);
                used = input.len();
                break;
            }
            match self.chunk {
                Chunk::Size => {
                    let Some(line) = rest.windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    let text = String::from_utf8_lossy(&rest[..line]);
                    let hex = text.split(';').next().unwrap_or_default().trim();
                    let Ok(size) = usize::from_str_radix(hex, 16) else {
                        return (used, Some(End::Protocol(format!("chunk size {text:?}"))));
                    };
                    used += line + 2;
                    if size == 0 {
                        ended = Some(End::StreamEnded);
                        break;
                    }
                    self.chunk = Chunk::Data(size);
                }
                Chunk::Data(left) => {
                    let take = left.min(rest.len());
                    self.data.extend_from_slice(&rest[..take]);
                    used += take;
                    self.chunk = if take == left {
                        Chunk::Crlf
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::Crlf => {
                    if rest.len() < 2 {
                        break;
                    }
                    used += 2;
                    self.chunk = Chunk::Size;
                }
            }
        }
        match self.body {
            Body::Flv => self.tags(stats, now, stall),
            Body::Mp3 | Body::Adts => self.frames(stats, now, stall),
        }
        (used, ended)
    }

    /// Counts the complete MP3 or ADTS frames buffered so far. The body has no timestamps: each
    /// frame starts where the previous one ended, and bytes that are not a frame between two
    /// frames (sync lost) are a gap. Before the first frame (a burst may start mid-frame), a
    /// frame counts once the next one follows it.
    fn frames(&mut self, stats: &mut Stats, now: Duration, stall: Duration) {
        let mut at = 0;
        while let Some(rest) = self.data.get(at..).filter(|r| r.len() >= ELEMENTARY_HEADER) {
            match elementary_frame(self.body, rest) {
                Some((len, ms)) if self.synced => {
                    if rest.len() < len {
                        break;
                    }
                    let timestamp = stats.expected_ms.map_or(0.0, |(next, _)| next);
                    stats.message(now, stall, timestamp, ms, len);
                    at += len;
                }
                Some((len, _)) => match rest.get(len..) {
                    Some(next) if next.len() >= ELEMENTARY_HEADER => {
                        if elementary_frame(self.body, next).is_some() {
                            self.synced = true;
                        } else {
                            at += 1;
                        }
                    }
                    _ => break,
                },
                None => {
                    if self.synced && stats.messages > 0 {
                        stats.gaps += 1;
                    }
                    self.synced = false;
                    at += 1;
                }
            }
        }
        self.data.drain(..at);
    }

    /// Counts the complete FLV tags buffered so far.
    fn tags(&mut self, stats: &mut Stats, now: Duration, stall: Duration) {
        let mut at = 0;
        if !self.header_skipped {
            if self.data.len() < 13 {
                return;
            }
            self.header_skipped = true;
            at = 13;
        }
        while let Some(header) = self.data.get(at..at + 11) {
            let size =
                usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
            let Some(body) = self.data.get(at + 11..at + 11 + size) else {
                break;
            };
            if self.data.len() < at + 11 + size + 4 {
                break;
            }
            if header[0] == 8 {
                let ts = u32::from(header[4]) << 16
                    | u32::from(header[5]) << 8
                    | u32::from(header[6])
                    | u32::from(header[7]) << 24;
                stats.audio(now, stall, ts, body);
            }
            at += 11 + size + 4;
        }
        self.data.drain(..at);
    }

    /// Writes the request, as far as the socket takes it.
    fn send(&mut self, stream: &mut TcpStream) -> Result<(), io::ErrorKind> {
        while self.sent < self.request.len() {
            match stream.write(&self.request[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.kind()),
            }
        }
        Ok(())
    }
}

/// One player.
struct Player {
    stream: Option<TcpStream>,
    wire: Wire,
    /// Input the session has not consumed yet.
    pending: Vec<u8>,
    stats: Stats,
}

/// All players, the poll and the clock.
struct Load {
    args: Args,
    poll: Poll,
    players: Vec<Player>,
    start: Instant,
    buffer: Vec<u8>,
}

impl Load {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn core_now(&self) -> CoreInstant {
        CoreInstant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    /// Opens player `i`'s connection (nonblocking connect; completion shows as writable).
    fn connect(&mut self, i: usize) -> Result<(), String> {
        let config = ClientConfig {
            app: &self.args.app,
            tc_url: &self.args.tc_url,
            stream: &self.args.name,
            role: ClientRole::Play,
            // Like ffmpeg: an FP9 C1, and the server's S1 digest checked.
            digest: true,
            chunk_size: 4096,
            max_message: ARENA as u32,
            idle_timeout_ms: 60_000,
        };
        let mut entropy = [0u8; 32];
        entropy[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let wire = match &self.args.http_path {
            Some(path) => Wire::Http(Box::new(Http::new(path, self.args.addr))),
            None => Wire::Rtmp(Box::new(
                Session::new(self.core_now(), entropy, &config)
                    .map_err(|e| format!("client session: {e}"))?,
            )),
        };
        let mut player = Player {
            stream: None,
            wire,
            pending: Vec::new(),
            stats: Stats::new(),
        };
        match TcpStream::connect(self.args.addr) {
            Ok(mut stream) => {
                let _ = stream.set_nodelay(true);
                self.poll
                    .registry()
                    .register(
                        &mut stream,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map_err(|e| format!("register: {e}"))?;
                player.stream = Some(stream);
            }
            Err(e) => player.stats.end = End::Io(e.kind()),
        }
        self.players.push(player);
        Ok(())
    }

    /// Handles readiness of player `i`: finishes the connect, writes, reads and parses until
    /// the socket would block.
    fn ready(&mut self, i: usize) {
        let now = self.now();
        let core_now = self.core_now();
        let stall = self.args.stall;
        let Some(player) = self.players.get_mut(i) else {
            return;
        };
        let end = player.pump(now, core_now, stall, &mut self.buffer);
        if let Some(end) = end {
            player.finish(end, &self.poll, now, stall);
        }
    }

    fn running(&self) -> usize {
        self.players
            .iter()
            .filter(|p| p.stats.end == End::Running)
            .count()
    }

    fn playing(&self) -> usize {
        self.players
            .iter()
            .filter(|p| p.stats.playing_at.is_some() && p.stats.end == End::Running)
            .count()
    }

    /// Players still running that have received audio.
    fn receiving(&self) -> usize {
        self.players
            .iter()
            .filter(|p| p.stats.first_audio_at.is_some() && p.stats.end == End::Running)
            .count()
    }

    /// Runs the idle timers of every session (pings to a silent server).
    fn timers(&mut self) {
        let now = self.now();
        let core_now = self.core_now();
        let stall = self.args.stall;
        for player in &mut self.players {
            if player.stats.end != End::Running {
                continue;
            }
            let Wire::Rtmp(session) = &mut player.wire else {
                continue;
            };
            if session.poll_timeout().is_some_and(|at| at <= core_now) {
                if let Err(e) = session.handle_timeout(core_now) {
                    player.finish(End::Protocol(e.to_string()), &self.poll, now, stall);
                    continue;
                }
                if let Err(kind) = player.send() {
                    player.finish(End::Io(kind), &self.poll, now, stall);
                }
            }
        }
    }
}

impl Player {
    /// Does everything the socket allows now; `Some` when this player is done.
    fn pump(
        &mut self,
        now: Duration,
        core_now: CoreInstant,
        stall: Duration,
        buffer: &mut [u8],
    ) -> Option<End> {
        let stream = self.stream.as_mut()?;
        if self.stats.connected_at.is_none() {
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => return Some(End::Io(e.kind())),
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => self.stats.connected_at = Some(now),
                // Still connecting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(e) => return Some(End::Io(e.kind())),
            }
        }
        loop {
            if let Err(kind) = self.send() {
                return Some(End::Io(kind));
            }
            let stream = self.stream.as_mut()?;
            let n = match stream.read(buffer) {
                Ok(0) => return Some(End::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(End::Io(e.kind())),
            };
            let input = buffer.get(..n).unwrap_or_default();
            let result = if self.pending.is_empty() {
                let (used, end) = self.parse(now, core_now, stall, input);
                if let Some(rest) = input.get(used..) {
                    self.pending.extend_from_slice(rest);
                }
                end
            } else {
                self.pending.extend_from_slice(input);
                let pending = std::mem::take(&mut self.pending);
                let (used, end) = self.parse(now, core_now, stall, &pending);
                self.pending = pending;
                self.pending.drain(..used.min(self.pending.len()));
                end
            };
            if let Some(end) = result {
                return Some(end);
            }
        }
    }

    /// Feeds `input` to the session until it consumes nothing; returns the bytes it used.
    fn parse(
        &mut self,
        now: Duration,
        core_now: CoreInstant,
        stall: Duration,
        input: &[u8],
    ) -> (usize, Option<End>) {
        let session = match &mut self.wire {
            Wire::Rtmp(session) => session,
            Wire::Http(http) => return http.parse(input, &mut self.stats, now, stall),
        };
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let received = match session.receive(core_now, rest) {
                Ok(received) => received,
                Err(e) => return (used, Some(End::Protocol(e.to_string()))),
            };
            used += received.consumed;
            match received.event {
                Some(ClientEvent::Playing) => {
                    self.stats.playing_at.get_or_insert(now);
                }
                Some(ClientEvent::Audio { timestamp, payload }) => {
                    self.stats.audio(now, stall, timestamp, payload);
                }
                Some(ClientEvent::EndOfStream) => return (used, Some(End::StreamEnded)),
                Some(ClientEvent::Publishing) => {
                    return (
                        used,
                        Some(End::Protocol("Publish.Start on a player".into())),
                    )
                }
                Some(ClientEvent::Connected | ClientEvent::Metadata { .. }) => {}
                None if received.consumed == 0 => return (used, None),
                None => {}
            }
        }
    }

    /// Writes what the session has queued, as far as the socket takes it.
    fn send(&mut self) -> Result<(), io::ErrorKind> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let session = match &mut self.wire {
            Wire::Rtmp(session) => session,
            Wire::Http(http) => return http.send(stream),
        };
        loop {
            let out = session.transmit();
            if out.is_empty() {
                return Ok(());
            }
            match stream.write(out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero),
                Ok(n) => session.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.kind()),
            }
        }
    }

    /// Closes the connection and records how it ended.
    fn finish(&mut self, end: End, poll: &Poll, now: Duration, stall: Duration) {
        if let Some(mut stream) = self.stream.take() {
            let _ = poll.registry().deregister(&mut stream);
        }
        if end != End::StreamEnded && end != End::Running {
            // Audio stopping because the connection failed is a stall too.
            if let Some(last) = self.stats.last_audio_at {
                self.stats.note_wait(now.saturating_sub(last), stall);
            }
        }
        if self.stats.end == End::Running {
            self.stats.end = end;
        }
    }
}

/// Raises the soft limit of open files to the hard limit: 1000 players need 1000 sockets.
/// (`rlim_t` is 32 bits on 32-bit glibc, the Pi's, and 64 bits elsewhere.)
fn raise_nofile_limit() -> rlim_t {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn run(args: Args) -> Result<bool, String> {
    // `rlim_t` differs by target, hence the cast (u32 and u64 both fit).
    let limit = raise_nofile_limit() as u64;
    if limit != 0 && (args.players as u64) + 16 > limit {
        return Err(format!(
            "{} players need more open files than RLIMIT_NOFILE allows ({limit}); raise the \
             hard limit (ulimit -Hn)",
            args.players
        ));
    }
    let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut load = Load {
        poll,
        players: Vec::with_capacity(args.players),
        start: Instant::now(),
        buffer: vec![0; READ_BUFFER],
        args,
    };
    let mut events = Events::with_capacity(1024);
    let n = load.args.players;
    let mut ready_printed = false;
    let mut next_timers = Duration::ZERO;
    let eof = Arc::new(AtomicBool::new(false));
    if load.args.stop_on_eof {
        let eof = eof.clone();
        std::thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            eof.store(true, Ordering::Relaxed);
        });
    }
    loop {
        let now = load.now();
        if now >= load.args.duration || eof.load(Ordering::Relaxed) {
            break;
        }
        // Connect the players due by now on the ramp.
        let due = if load.args.ramp.is_zero() {
            n
        } else {
            ((now.as_secs_f64() / load.args.ramp.as_secs_f64() * n as f64) as usize + 1).min(n)
        };
        while load.players.len() < due {
            load.connect(load.players.len())?;
        }
        if !ready_printed
            && load.players.len() == n
            && (load.receiving() == n || now > load.args.ramp + READY_LIMIT)
        {
            ready_printed = true;
            println!(
                "ready players={n} playing={} receiving={} t_ms={}",
                load.playing(),
                load.receiving(),
                now.as_millis()
            );
        }
        if now >= next_timers {
            load.timers();
            next_timers = now + Duration::from_millis(100);
        }
        if load.args.until_ended && load.players.len() == n && load.running() == 0 {
            break;
        }
        let wait = if load.players.len() < n {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        };
        match load.poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        }
        for event in events.iter() {
            load.ready(event.token().0);
        }
    }
    let end = load.now();
    let stall = load.args.stall;
    for player in &mut load.players {
        if player.stats.end == End::Running {
            if let Some(last) = player.stats.last_audio_at {
                player.stats.note_wait(end.saturating_sub(last), stall);
            }
        }
    }
    Ok(report(&load, end))
}

/// Prints the summary line and each failed player's story; true when every player was
/// continuous.
fn report(load: &Load, end: Duration) -> bool {
    let players = &load.players;
    let count = |f: &dyn Fn(&Stats) -> bool| players.iter().filter(|p| f(&p.stats)).count();
    let sum = |f: &dyn Fn(&Stats) -> u64| players.iter().map(|p| f(&p.stats)).sum::<u64>();
    let mut first_audio: Vec<f64> = players
        .iter()
        .filter_map(|p| {
            let (connected, first) = (p.stats.connected_at?, p.stats.first_audio_at?);
            Some(first.saturating_sub(connected).as_secs_f64() * 1000.0)
        })
        .collect();
    first_audio.sort_by(f64::total_cmp);
    let audio_s: Vec<f64> = players.iter().map(|p| p.stats.audio_ms / 1000.0).collect();
    let min_audio = audio_s.iter().copied().fold(f64::INFINITY, f64::min);
    let longest_stall = players
        .iter()
        .map(|p| p.stats.longest_stall)
        .max()
        .unwrap_or_default();
    let worst_gap = players
        .iter()
        .map(|p| p.stats.worst_gap_ms)
        .fold(0.0, f64::max);
    let continuous = count(&|s| s.continuous());
    println!(
        "summary players={} connected={} playing={} receiving={} continuous={} \
         messages={} bytes={} audio_s={:.2} min_audio_s={:.2} gaps={} worst_gap_ms={:.0} \
         jitter={} worst_jitter_ms={:.0} stalls={} longest_stall_ms={} first_audio_ms_median={:.0} first_audio_ms_max={:.0} \
         unknown_duration={} closed={} ended={} errors={} wall_s={:.2}",
        players.len(),
        count(&|s| s.connected_at.is_some()),
        count(&|s| s.playing_at.is_some()),
        count(&|s| s.first_audio_at.is_some()),
        continuous,
        sum(&|s| s.messages),
        sum(&|s| s.bytes),
        audio_s.iter().sum::<f64>(),
        if min_audio.is_finite() {
            min_audio
        } else {
            0.0
        },
        sum(&|s| s.gaps),
        worst_gap,
        sum(&|s| s.jitter),
        players
            .iter()
            .map(|p| p.stats.worst_jitter_ms)
            .fold(0.0, f64::max),
        sum(&|s| s.stalls),
        longest_stall.as_millis(),
        percentile(&first_audio, 50.0),
        percentile(&first_audio, 100.0),
        sum(&|s| s.unknown_duration),
        count(&|s| s.end == End::Closed),
        count(&|s| s.end == End::StreamEnded),
        count(&|s| matches!(s.end, End::Io(_) | End::Protocol(_))),
        end.as_secs_f64(),
    );
    let mut shown = 0;
    for (i, p) in players.iter().enumerate() {
        let s = &p.stats;
        if s.continuous() {
            continue;
        }
        shown += 1;
        if shown > 10 {
            eprintln!(
                "… and {} more players not continuous",
                players.len() - continuous - 10
            );
            break;
        }
        eprintln!(
            "player {i}: end={:?} connected={:?} playing={:?} first_audio={:?} messages={} \
             audio_s={:.2} gaps={} (worst {:.0} ms) stalls={} (longest {} ms)",
            s.end,
            s.connected_at,
            s.playing_at,
            s.first_audio_at,
            s.messages,
            s.audio_ms / 1000.0,
            s.gaps,
            s.worst_gap_ms,
            s.stalls,
            s.longest_stall.as_millis()
        );
    }
    continuous == players.len()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("zerocast-load: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let check = args.check;
    match run(args) {
        Ok(all) if all || !check => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("zerocast-load: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_the_codecs_seen() {
        // zerocast PCM: 882 frames of stereo 16-bit = 20 ms.
        let pcm = [&[0x3F][..], &[0u8; 882 * 4]].concat();
        assert_eq!(duration_ms(&pcm), Some(20.0));
        // zerocast ADPCM, 4-bit stereo, 882 frames: 2 + 44 + 881 * 8 bits = 7094 → 887 bytes.
        let adpcm = [&[0x1F, 0b1000_0000][..], &[0u8; 886]].concat();
        assert_eq!(adpcm_frames(&adpcm[1..], 2), Some(882));
        // An MPEG-1 layer III frame at 44.1 kHz: 1152 samples.
        let mp3 = [0x2F, 0xFF, 0xFB, 0x90, 0x64];
        let ms = duration_ms(&mp3).unwrap();
        assert!((ms - 26.122).abs() < 0.01, "{ms}");
        assert_eq!(duration_ms(&[0xAF, 0x00, 0x12, 0x10]), Some(0.0));
        assert_eq!(duration_ms(&[0x9F, 0x00]), None);
        assert_eq!(duration_ms(&[]), None);
    }

    #[test]
    fn a_timestamp_jump_is_a_gap_and_a_long_wait_a_stall() {
        let mut s = Stats::new();
        let pcm = [&[0x3F][..], &[0u8; 882 * 4]].concat();
        let stall = Duration::from_millis(500);
        let ms = Duration::from_millis;
        s.audio(ms(0), stall, 0, &pcm);
        s.audio(ms(20), stall, 20, &pcm);
        assert_eq!((s.gaps, s.stalls), (0, 0));
        s.audio(ms(40), stall, 45, &pcm);
        assert_eq!((s.gaps, s.jitter), (0, 1));
        s.audio(ms(60), stall, 85, &pcm);
        assert_eq!(s.gaps, 1);
        s.audio(ms(700), stall, 105, &pcm);
        assert_eq!(s.stalls, 1);
        assert!(!s.continuous());
    }

    #[test]
    fn priming_packets_stamped_like_the_first_are_no_gap() {
        let mut s = Stats::new();
        let mp3 = [0x2F, 0xFF, 0xFB, 0x90, 0x64];
        let stall = Duration::from_millis(500);
        let ms = Duration::from_millis;
        // LAME's first packet begins 25 ms before the stream (stamped 0), FDK's first two
        // (both stamped 0, like the third).
        for (at, timestamp) in [(0, 0), (1, 1), (2, 27), (28, 53)] {
            s.audio(ms(at), stall, timestamp, &mp3);
        }
        let aac = [0xAF, 0x01];
        let mut t = Stats::new();
        for (at, timestamp) in [(0, 0), (1, 0), (2, 0), (3, 23)] {
            t.audio(ms(at), stall, timestamp, &aac);
        }
        assert_eq!((s.gaps, s.jitter, t.gaps, t.jitter), (0, 0, 0, 0));
        // Later, going back is audio that went back.
        s.audio(ms(54), stall, 53, &mp3);
        assert_eq!(s.gaps, 1);
    }

    /// An HTTP-FLV player of `bytes` (see [`http_player`]).
    fn http_flv(bytes: &[u8], step: usize) -> (Stats, Option<End>) {
        http_player("/live/audio.flv", bytes, step)
    }

    /// Feeds `bytes` to an HTTP player of `path` in pieces of `step`, keeping what it does not
    /// use for the next piece, as `pump` does.
    fn http_player(path: &str, bytes: &[u8], step: usize) -> (Stats, Option<End>) {
        let addr: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let mut player = Http::new(path, addr);
        let mut stats = Stats::new();
        let mut pending = Vec::new();
        let stall = Duration::from_millis(500);
        for (i, piece) in bytes.chunks(step).enumerate() {
            pending.extend_from_slice(piece);
            let now = Duration::from_millis(i as u64);
            let (used, end) = player.parse(&pending, &mut stats, now, stall);
            pending.drain(..used);
            if end.is_some() {
                return (stats, end);
            }
        }
        (stats, None)
    }

    #[test]
    fn http_flv_listener_counts_the_tags_of_a_chunked_body() {
        use zerocast::formats::framer::flv_tag;
        use zerocast::http::body::{Body, Framing};
        let pcm = [&[0x3F][..], &[0u8; 882 * 4]].concat();
        let mut body = b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let mut framing = Body::new(Framing::Chunked);
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        framing.frame_into(&body, &mut wire);
        for t in 0..50u32 {
            body.clear();
            flv_tag(8, t * 20, &pcm, &mut body);
            framing.frame_into(&body, &mut wire);
        }
        for step in [1, 7, 1000, wire.len()] {
            let (stats, end) = http_flv(&wire, step);
            assert_eq!(
                (stats.messages, stats.gaps, end),
                (50, 0, None),
                "step {step}"
            );
            assert!((stats.audio_ms - 1000.0).abs() < 1e-9);
            assert!(stats.playing_at.is_some());
        }
        // The last chunk ends the stream; a refusal is a protocol end.
        wire.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(http_flv(&wire, 64).1, Some(End::StreamEnded));
        let (_, end) = http_flv(b"HTTP/1.1 404 Not Found\r\n\r\n", 5);
        assert!(matches!(end, Some(End::Protocol(_))), "{end:?}");
    }

    /// `frames` MP3 (MPEG-1 layer III, 128 kb/s, 44.1 kHz, 417 bytes) or ADTS (AAC-LC 44.1 kHz
    /// stereo, 371 bytes) frames.
    fn elementary(body: Body, frames: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..frames {
            let mut frame = match body {
                Body::Mp3 => [&[0xFF, 0xFB, 0x90, 0x64][..], &[0x55; 413]].concat(),
                _ => {
                    let h = AdtsHeader::from_audio_specific_config(&[0x12, 0x10]).unwrap();
                    let mut f = vec![0u8; 371];
                    h.emit(364, &mut f).unwrap();
                    f
                }
            };
            // Payload bytes that look like a sync word must not confuse the parse.
            frame[100 + i % 7] = 0xFF;
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn mp3_and_adts_listeners_count_frames_from_mid_frame_and_see_lost_sync() {
        for (path, body, frame_ms) in [
            ("/live/audio.mp3", Body::Mp3, 1152.0 * 1000.0 / 44100.0),
            ("/live.aac", Body::Adts, 1024.0 * 1000.0 / 44100.0),
        ] {
            let frames = elementary(body, 40);
            // Icecast's status line, and a burst that starts inside a frame.
            let mut wire = b"ICY 200 OK\r\nContent-Type: audio/mpeg\r\n\r\n".to_vec();
            wire.extend_from_slice(&frames[frames.len() / 40 * 39 + 50..]);
            wire.extend_from_slice(&frames);
            for step in [1, 13, 1000, wire.len()] {
                let (stats, end) = http_player(path, &wire, step);
                assert_eq!(
                    (stats.messages, stats.gaps, end),
                    (40, 0, None),
                    "{path} {step}"
                );
                assert!((stats.audio_ms - 40.0 * frame_ms).abs() < 1e-6, "{path}");
            }
            // Bytes that are no frame between two frames: sync lost, a gap.
            let mut cut = frames.clone();
            cut.splice(20 * 100..20 * 100, [0u8; 30]);
            let (stats, _) = http_player(path, &[&wire[..40], &cut].concat(), 64);
            assert_eq!(stats.gaps, 1, "{path}");
        }
    }
}
