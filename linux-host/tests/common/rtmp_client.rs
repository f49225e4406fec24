//! A test player built on the core's sans-IO client session, and raw-socket helpers for hostile
//! clients.
//!
//! [`play`] drives `zerocast_core::session::ClientSession` over a blocking `std::net::TcpStream`
//! (read timeout, so every wait is bounded) and records each audio message's arrival time,
//! timestamp and size — what the real players in [`super::players`] hide behind their decoders.
//! [`Continuity`] then checks the stream time of a PCM stream without decoding it: every message
//! must start where the previous one ended.
//!
//! The raw helpers ([`connect_raw`], [`handshake`], [`standalone_message`], [`wait_closed`]) let
//! a test send bytes no well-behaved client would and time how fast the server hangs up.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use zerocast_core::chunk::{encode_standalone, standalone_len, MessageHeader};
use zerocast_core::handshake::ClientHandshake;
use zerocast_core::session::{ClientConfig, ClientEvent, ClientRole, ClientSession};
use zerocast_core::time::Instant as CoreInstant;

use super::process::{self, Spawned};
use super::server::{Codec, STREAM};
use super::wav::Wav;
use super::HarnessError;

/// Reassembly arena of the test player: one 20 ms PCM message is 3529 B, one 4096-frame one 16 KiB.
const ARENA: usize = 16384;
/// The player's own output (handshake is separate; connect, acks and pongs are small).
const TX: usize = 8192;
/// The session type the test player drives.
type Session = ClientSession<ARENA, TX>;

/// Socket read size; also bounds how much unparsed input is kept.
const READ_BUFFER: usize = 64 * 1024;
/// Read timeout: how often the player loop wakes up to check its plan and timers.
const READ_POLL: Duration = Duration::from_millis(50);
/// Chunk size the test player announces for its own output (what ffmpeg and OBS use).
const CLIENT_CHUNK_SIZE: u32 = 4096;
/// Largest message the test player accepts (far above zerocast's 16 KiB messages).
const CLIENT_MAX_MESSAGE: u32 = 65536;
/// The player's own idle timeout (nginx-rtmp's `ping 60s`).
const CLIENT_IDLE_TIMEOUT_MS: u64 = 60_000;

/// FLV audio tag header byte of zerocast's PCM: SoundFormat 3 (PCM little-endian), 44 kHz,
/// 16-bit, stereo (FLV spec v10.1 §E.4.2.1).
pub const PCM_TAG: u8 = 0x3F;
/// Bytes per PCM frame: two 16-bit samples.
const PCM_FRAME_BYTES: usize = 4;
/// The PCM sample rate.
pub const PCM_RATE: f64 = 44_100.0;
/// Timestamps are whole milliseconds (floor of the exact stream time, `broadcast.rs`), so one
/// step may differ from the exact message duration by up to 1 ms.
const TIMESTAMP_SLACK_MS: f64 = 1.0;

/// What the test player does, and for how long.
#[derive(Clone, Debug)]
pub struct PlayPlan {
    /// Server port on 127.0.0.1.
    pub port: u16,
    /// Wall time from the TCP connect until the player hangs up.
    pub duration: Duration,
    /// Stop reading for a while (a player whose buffer is full or whose network stalls).
    pub pause: Option<Pause>,
    /// Raw bytes written straight to the socket once, this long after `NetStream.Play.Start`,
    /// bypassing the session (for floods the session itself would never send).
    pub inject: Option<(Duration, Vec<u8>)>,
    /// Keep every payload (for decoding); otherwise only sizes and tag bytes are kept, so 100
    /// players do not hold 350 MB.
    pub keep_payload: bool,
}

impl PlayPlan {
    /// A player that just plays for `duration`.
    pub fn new(port: u16, duration: Duration) -> Self {
        PlayPlan {
            port,
            duration,
            pause: None,
            inject: None,
            keep_payload: false,
        }
    }
}

/// A stretch of time the player does not read its socket.
#[derive(Clone, Copy, Debug)]
pub struct Pause {
    /// How long after the first audio message the pause begins.
    pub after: Duration,
    /// How long it lasts.
    pub length: Duration,
}

/// One audio message as received.
#[derive(Clone, Debug)]
pub struct AudioMessage {
    /// When it was parsed, from the TCP connect.
    pub arrival: Duration,
    /// Its RTMP timestamp in milliseconds.
    pub timestamp: u32,
    /// Length of the FLV audio tag body.
    pub len: usize,
    /// The FLV audio tag header byte (0 for an empty body).
    pub tag: u8,
    /// The body, when [`PlayPlan::keep_payload`] is set.
    pub payload: Vec<u8>,
}

impl AudioMessage {
    /// The stream time it covers in milliseconds, for zerocast's PCM; `None` for anything else.
    pub fn pcm_duration_ms(&self) -> Option<f64> {
        (self.tag == PCM_TAG).then(|| {
            let frames = self.len.saturating_sub(1) / PCM_FRAME_BYTES;
            frames as f64 * 1000.0 / PCM_RATE
        })
    }
}

/// How a playback ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The plan's duration passed; the player hung up.
    Deadline,
    /// The server closed the connection (read returned 0).
    Closed,
    /// The connection failed (reset by the server, usually).
    Reset(io::ErrorKind),
    /// The server ended the stream (`NetStream.Play.Stop` or StreamEOF).
    StreamEnded,
    /// The session could not parse what the server sent.
    Protocol(String),
}

/// Everything one test player saw.
#[derive(Clone, Debug)]
pub struct PlayLog {
    /// Audio messages in arrival order.
    pub messages: Vec<AudioMessage>,
    /// When `NetStream.Play.Start` arrived, from the TCP connect.
    pub playing_at: Option<Duration>,
    /// When the pause ended (reading resumed), if there was one.
    pub resumed_at: Option<Duration>,
    /// When the injected bytes were written.
    pub injected_at: Option<Duration>,
    /// How it ended, and when.
    pub end: End,
    /// When it ended, from the TCP connect.
    pub ended_at: Duration,
}

/// Plays `live/audio` from 127.0.0.1:`plan.port` with the core's client session until the plan
/// ends or the server hangs up. Fails only when it cannot connect or its own output fails
/// before it is playing; everything after that is recorded in [`PlayLog::end`].
pub fn play(plan: &PlayPlan) -> Result<PlayLog, HarnessError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, plan.port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| HarnessError::io(format!("connect to {addr}"), e))?;
    let start = Instant::now();
    stream
        .set_read_timeout(Some(READ_POLL))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| HarnessError::io("set socket options", e))?;
    let tc_url = format!("rtmp://127.0.0.1:{}/live", plan.port);
    let (app, name) = STREAM.split_once('/').unwrap_or((STREAM, ""));
    let config = ClientConfig {
        app,
        tc_url: &tc_url,
        stream: name,
        role: ClientRole::Play,
        digest: false,
        chunk_size: CLIENT_CHUNK_SIZE,
        max_message: CLIENT_MAX_MESSAGE,
        idle_timeout_ms: CLIENT_IDLE_TIMEOUT_MS,
    };
    let mut session = Box::new(
        Session::new(core_now(start), entropy(), &config).map_err(|e| HarnessError::Failed {
            what: "client session".to_owned(),
            detail: e.to_string(),
        })?,
    );
    let mut player = Player {
        stream,
        start,
        plan,
        buffer: vec![0; READ_BUFFER],
        filled: 0,
        log: PlayLog {
            messages: Vec::new(),
            playing_at: None,
            resumed_at: None,
            injected_at: None,
            end: End::Deadline,
            ended_at: Duration::ZERO,
        },
    };
    let end = player.run(&mut session);
    player.log.end = end;
    player.log.ended_at = start.elapsed();
    Ok(player.log)
}

/// Connects to 127.0.0.1:`port` and asks, with the core's client session, to play (or, with
/// `publish`, to publish) `live/NAME`; returns the socket, still open, and whether the server
/// started the play (`NetStream.Play.Start`) or the publish. A refusal or a close is `false`. The
/// socket stays connected until dropped: a player waiting for a publisher, a squatter.
pub fn request(port: u16, name: &str, publish: bool) -> Result<(TcpStream, bool), HarnessError> {
    request_on(connect_raw(port)?, port, name, publish)
}

/// [`request`] on a connection the caller made (from another address: [`connect_raw_from`]).
pub fn request_on(
    mut stream: TcpStream,
    port: u16,
    name: &str,
    publish: bool,
) -> Result<(TcpStream, bool), HarnessError> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(READ_POLL))
        .map_err(|e| HarnessError::io("set read timeout", e))?;
    let tc_url = format!("rtmp://127.0.0.1:{port}/live");
    let config = ClientConfig {
        app: "live",
        tc_url: &tc_url,
        stream: name,
        role: if publish {
            ClientRole::Publish
        } else {
            ClientRole::Play
        },
        digest: false,
        chunk_size: CLIENT_CHUNK_SIZE,
        max_message: CLIENT_MAX_MESSAGE,
        idle_timeout_ms: CLIENT_IDLE_TIMEOUT_MS,
    };
    let failed = |detail: String| HarnessError::Failed {
        what: format!("request live/{name:?}"),
        detail,
    };
    let mut session = Box::new(
        Session::new(core_now(start), entropy(), &config).map_err(|e| failed(e.to_string()))?,
    );
    let mut buffer = vec![0; READ_BUFFER];
    let mut filled = 0;
    loop {
        loop {
            let out = session.transmit();
            if out.is_empty() {
                break;
            }
            let n = stream
                .write(out)
                .map_err(|e| HarnessError::io("write request", e))?;
            session.advance(n);
        }
        if start.elapsed() > Duration::from_secs(5) {
            return Err(failed("no answer within 5 s".to_owned()));
        }
        let free = buffer.get_mut(filled..).unwrap_or_default();
        match stream.read(free) {
            Ok(0) => return Ok((stream, false)),
            Ok(n) => filled += n,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok((stream, false)),
        }
        let mut used = 0;
        while used < filled {
            let input = buffer.get(used..filled).unwrap_or_default();
            let received = match session.receive(core_now(start), input) {
                Ok(received) => received,
                // The core's client reports a refusal (`_error`, an error status) this way.
                Err(_) => return Ok((stream, false)),
            };
            used += received.consumed;
            match received.event {
                Some(ClientEvent::Playing | ClientEvent::Publishing) => return Ok((stream, true)),
                None if received.consumed == 0 => break,
                _ => {}
            }
        }
        buffer.copy_within(used..filled, 0);
        filled -= used;
    }
}

/// The state of one running test player.
struct Player<'a> {
    stream: TcpStream,
    start: Instant,
    plan: &'a PlayPlan,
    buffer: Vec<u8>,
    filled: usize,
    log: PlayLog,
}

impl Player<'_> {
    fn run(&mut self, session: &mut Session) -> End {
        loop {
            let elapsed = self.start.elapsed();
            if elapsed >= self.plan.duration {
                return End::Deadline;
            }
            self.pause_if_due();
            if let Err(end) = self.inject_if_due() {
                return end;
            }
            if let Err(end) = self.send(session) {
                return end;
            }
            let now = core_now(self.start);
            if session.poll_timeout().is_some_and(|at| at <= now) {
                if let Err(e) = session.handle_timeout(now) {
                    return End::Protocol(e.to_string());
                }
            }
            let free = self.buffer.get_mut(self.filled..).unwrap_or_default();
            match self.stream.read(free) {
                Ok(0) => return End::Closed,
                Ok(n) => self.filled += n,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return End::Reset(e.kind()),
            }
            if let Some(end) = self.parse(session) {
                return end;
            }
        }
    }

    /// Sleeps through the plan's pause once the first audio has arrived and its time is due.
    fn pause_if_due(&mut self) {
        let (Some(pause), None, Some(first)) = (
            self.plan.pause,
            self.log.resumed_at,
            self.log.messages.first(),
        ) else {
            return;
        };
        let begin = first.arrival + pause.after;
        if self.start.elapsed() < begin {
            return;
        }
        thread::sleep(pause.length);
        self.log.resumed_at = Some(self.start.elapsed());
    }

    fn inject_if_due(&mut self) -> Result<(), End> {
        let (Some((after, bytes)), Some(playing), None) = (
            self.plan.inject.as_ref(),
            self.log.playing_at,
            self.log.injected_at,
        ) else {
            return Ok(());
        };
        if self.start.elapsed() < playing + *after {
            return Ok(());
        }
        self.log.injected_at = Some(self.start.elapsed());
        self.stream
            .write_all(bytes)
            .map_err(|e| End::Reset(e.kind()))
    }

    /// Writes everything the session has queued.
    fn send(&mut self, session: &mut Session) -> Result<(), End> {
        loop {
            let out = session.transmit();
            if out.is_empty() {
                return Ok(());
            }
            match self.stream.write(out) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => session.advance(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Reset(e.kind())),
            }
        }
    }

    /// Feeds the buffered input to the session; `Some` when the stream is over.
    fn parse(&mut self, session: &mut Session) -> Option<End> {
        let now = core_now(self.start);
        let mut used = 0;
        while used < self.filled {
            let input = self.buffer.get(used..self.filled).unwrap_or_default();
            let received = match session.receive(now, input) {
                Ok(received) => received,
                Err(e) => return Some(End::Protocol(e.to_string())),
            };
            used += received.consumed;
            match received.event {
                Some(ClientEvent::Playing) => {
                    self.log.playing_at.get_or_insert(self.start.elapsed());
                }
                Some(ClientEvent::Audio { timestamp, payload }) => {
                    self.log.messages.push(AudioMessage {
                        arrival: self.start.elapsed(),
                        timestamp,
                        len: payload.len(),
                        tag: payload.first().copied().unwrap_or(0),
                        payload: if self.plan.keep_payload {
                            payload.to_vec()
                        } else {
                            Vec::new()
                        },
                    });
                }
                Some(ClientEvent::EndOfStream) => return Some(End::StreamEnded),
                Some(
                    ClientEvent::Connected | ClientEvent::Publishing | ClientEvent::Metadata { .. },
                ) => {}
                None if received.consumed == 0 => break,
                None => {}
            }
        }
        self.buffer.copy_within(used..self.filled, 0);
        self.filled -= used;
        None
    }
}

/// The core's clock for a player: milliseconds since its connect.
fn core_now(start: Instant) -> CoreInstant {
    CoreInstant::from_millis(start.elapsed().as_millis() as u64)
}

/// Handshake randomness: it only has to differ between connections, not be secret.
fn entropy() -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = COUNTER.fetch_add(1, Ordering::Relaxed)
        ^ u64::from(std::process::id()) << 32
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = XorShift::new(seed);
    let mut out = [0u8; 32];
    rng.fill(&mut out);
    out
}

/// A read timed out (Linux reports `EAGAIN` as `WouldBlock` for `SO_RCVTIMEO`).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A timestamp that does not continue the stream where the previous message ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// Index of the message with the unexpected timestamp.
    pub index: usize,
    /// The previous timestamp plus the previous message's duration.
    pub expected_ms: f64,
    /// The timestamp it had.
    pub got_ms: u32,
}

impl Gap {
    /// How far the stream jumped (negative: backwards).
    pub fn jump_ms(&self) -> f64 {
        f64::from(self.got_ms) - self.expected_ms
    }
}

/// The stream-time continuity of a PCM playback.
#[derive(Clone, Debug)]
pub struct Continuity {
    /// Messages checked.
    pub messages: usize,
    /// Messages that are not zerocast's PCM.
    pub not_pcm: usize,
    /// Stream time received, in seconds (sum of message durations).
    pub audio_s: f64,
    /// Every timestamp that is not the previous one plus its duration (± 1 ms).
    pub gaps: Vec<Gap>,
    /// The longest time between two arrivals.
    pub longest_stall: Duration,
}

impl Continuity {
    /// Checks `messages`: for PCM (tag [`PCM_TAG`]) a message lasts (len − 1) / 4 frames at
    /// 44.1 kHz, so each timestamp must equal the previous one plus the previous duration.
    pub fn of(messages: &[AudioMessage]) -> Self {
        let not_pcm = messages.iter().filter(|m| m.tag != PCM_TAG).count();
        let audio_s = messages
            .iter()
            .filter_map(AudioMessage::pcm_duration_ms)
            .sum::<f64>()
            / 1000.0;
        let gaps = messages
            .windows(2)
            .enumerate()
            .filter_map(|(i, pair)| {
                let (prev, next) = (&pair[0], &pair[1]);
                let expected_ms = f64::from(prev.timestamp) + prev.pcm_duration_ms()?;
                let gap = Gap {
                    index: i + 1,
                    expected_ms,
                    got_ms: next.timestamp,
                };
                (gap.jump_ms().abs() > TIMESTAMP_SLACK_MS).then_some(gap)
            })
            .collect();
        let longest_stall = messages
            .windows(2)
            .map(|pair| pair[1].arrival.saturating_sub(pair[0].arrival))
            .max()
            .unwrap_or_default();
        Continuity {
            messages: messages.len(),
            not_pcm,
            audio_s,
            gaps,
            longest_stall,
        }
    }

    /// The first few gaps, for messages.
    pub fn describe_gaps(&self) -> String {
        let shown: Vec<String> = self
            .gaps
            .iter()
            .take(5)
            .map(|g| {
                format!(
                    "#{}: {} ms, expected {:.1}",
                    g.index, g.got_ms, g.expected_ms
                )
            })
            .collect();
        format!("{} gaps [{}]", self.gaps.len(), shown.join(", "))
    }
}

/// The kept PCM payloads as one stereo [`Wav`], for the tone analysis; messages that are not
/// PCM are left out.
pub fn pcm_to_wav(messages: &[AudioMessage]) -> Wav {
    let samples = messages
        .iter()
        .filter(|m| m.tag == PCM_TAG)
        .flat_map(|m| {
            let body = m.payload.get(1..).unwrap_or_default();
            body.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect::<Vec<_>>()
        })
        .collect();
    Wav {
        sample_rate: PCM_RATE as u32,
        channels: 2,
        samples,
    }
}

/// Connects a raw socket to 127.0.0.1:`port` with TCP_NODELAY and a 5 s write timeout.
pub fn connect_raw(port: u16) -> Result<TcpStream, HarnessError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| HarnessError::io(format!("connect to {addr}"), e))?;
    socket_options(stream)
}

/// [`connect_raw`] from the loopback address `source` (any of 127.0.0.0/8): one host acting as
/// many clients, each its own address to the server.
pub fn connect_raw_from(port: u16, source: Ipv4Addr) -> Result<TcpStream, HarnessError> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let failed =
        |what: &str, e: nix::Error| HarnessError::io(format!("{what} from {source}"), e.into());
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| failed("socket", e))?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )
    .map_err(|e| failed("bind", e))?;
    let addr = std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    connect(fd.as_raw_fd(), &SockaddrIn::from(addr)).map_err(|e| failed("connect", e))?;
    socket_options(TcpStream::from(fd))
}

/// TCP_NODELAY and a 5 s write timeout on a raw test connection.
fn socket_options(stream: TcpStream) -> Result<TcpStream, HarnessError> {
    stream
        .set_nodelay(true)
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| HarnessError::io("set socket options", e))?;
    Ok(stream)
}

/// Runs a plain (librtmp-style) client handshake on `stream`: C0+C1, S0+S1+S2, C2, within 5 s.
pub fn handshake(stream: &mut TcpStream) -> Result<(), HarnessError> {
    let mut hs = ClientHandshake::new(0, entropy(), false);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(READ_POLL))
        .map_err(|e| HarnessError::io("set read timeout", e))?;
    let failed = |detail: String| HarnessError::Failed {
        what: "handshake".to_owned(),
        detail,
    };
    loop {
        let out = hs.transmit();
        if !out.is_empty() {
            stream
                .write_all(out)
                .map_err(|e| HarnessError::io("send handshake", e))?;
            let n = out.len();
            hs.advance(n);
            if hs.is_complete() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(failed("no S0+S1+S2 within 5 s".to_owned()));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(failed("server closed".to_owned())),
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(HarnessError::io("read handshake", e)),
        };
        // The server sends nothing after S2 before C2 and connect, so all of it is handshake.
        let used = hs
            .receive(buf.get(..n).unwrap_or_default())
            .map_err(|e| failed(e.to_string()))?;
        if used != n {
            return Err(failed(format!("{} bytes after S2", n - used)));
        }
    }
}

/// One message as a self-contained run of chunks (fmt 0, then fmt 3 every `chunk_size` bytes)
/// on message stream 0.
pub fn standalone_message(csid: u32, type_id: u8, payload: &[u8], chunk_size: u32) -> Vec<u8> {
    let header = MessageHeader {
        csid,
        timestamp: 0,
        length: payload.len() as u32,
        type_id,
        stream_id: 0,
    };
    let mut out = vec![0; standalone_len(chunk_size, &header)];
    let n = encode_standalone(&mut out, chunk_size, &header, payload).unwrap_or(0);
    out.truncate(n);
    out
}

/// How a raw connection ended.
#[derive(Clone, Copy, Debug)]
pub struct Closed {
    /// Time from `since` until the server closed it.
    pub after: Duration,
    /// Bytes received in the meantime.
    pub received: usize,
    /// `None`: orderly close (read returned 0); otherwise the error the read failed with.
    pub error: Option<io::ErrorKind>,
}

/// Reads and discards until the server closes `stream`; fails if that takes longer than `limit`
/// from `since`.
pub fn wait_closed(
    stream: &mut TcpStream,
    since: Instant,
    limit: Duration,
    what: &str,
) -> Result<Closed, HarnessError> {
    let mut buf = [0u8; 4096];
    let mut received = 0;
    stream
        .set_read_timeout(Some(READ_POLL))
        .map_err(|e| HarnessError::io("set read timeout", e))?;
    loop {
        let error = match stream.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                received += n;
                continue;
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                if since.elapsed() > limit {
                    return Err(HarnessError::Timeout {
                        what: format!("zerocast to close the {what} connection"),
                        after: limit,
                    });
                }
                continue;
            }
            Err(e) => Some(e.kind()),
        };
        return Ok(Closed {
            after: since.elapsed(),
            received,
            error,
        });
    }
}

/// A small deterministic generator (xorshift64*, Vigna 2016) for hostile random bytes.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced: xorshift stays 0 forever from 0).
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
        }
    }
}

/// Starts the zerocast binary on a free port with its 440 Hz tone ([`super::server::start_zerocast`])
/// and `extra` flags; returns it and its port once it accepts connections.
pub fn start_zerocast(
    codec: Codec,
    extra: &[&str],
    dir: &Path,
) -> Result<(Spawned, u16), HarnessError> {
    let port = process::free_port()?;
    Ok((
        super::server::start_zerocast(codec, port, extra, dir)?,
        port,
    ))
}
