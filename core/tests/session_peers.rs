//! The core's sessions against real peers over TCP on 127.0.0.1.
//!
//! A small test host runs `ServerSession<16384, 8192>` the way the Linux host will: it accepts
//! every play and publish, and sends a player 20 ms PCM messages of a 440 Hz tone at real time,
//! chunk-encoded once with `encode_standalone` (as the ring stores them), with `onMetaData`
//! (`videocodecid` = empty object) right after the first audio message (protocol-notes §6).
//! - ffmpeg 5.1 and rtmpdump 2.4 play from it; ffmpeg publishes PCM, AAC and SWF ADPCM to it.
//! - `ClientSession` publishes to and plays from Debian's nginx-rtmp, with ffmpeg on the other side.
//! - Captured client bytes of real exchanges replay to the same events in any split, on a
//!   virtual clock (`vectors/session/`).
//!
//! A missing tool skips a test with a message, except under `CI`: then it fails. Every wait is
//! bounded and every child process is killed when its test ends.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use support::{
    analyse, collect, decode, entropy, require, scratch_dir, write_flv, Conn, Nginx, PacedTone,
    Peer, FRAME_BYTES, PCM_TAG, RATE,
};
use zerocast_core::chunk::{encode_standalone, standalone_len, MessageHeader};
use zerocast_core::session::{
    self, ClientConfig, ClientEvent, ClientRole, ClientSession, Event, ServerConfig, ServerSession,
};
use zerocast_core::{flv, message, time};

type Server = ServerSession<16384, 8192>;
type Client = ClientSession<16384, 8192>;

/// The stream every test plays or publishes.
const APP: &str = "live";
const STREAM: &str = "audio";

/// The `onMetaData` body the host sends: PCM 44.1 kHz 16-bit stereo, no video.
fn on_metadata() -> Vec<u8> {
    let meta = flv::Metadata {
        audiocodecid: 3,
        audiosamplerate: 44_100,
        audiosamplesize: 16,
        stereo: true,
        audiodatarate_kbps: 1411.2,
    };
    let mut buf = [0u8; 512];
    let n = flv::encode_on_metadata(&mut buf, &meta, true).unwrap();
    buf[..n].to_vec()
}

/// One message as the Linux host writes it beside the session: standalone chunks at the
/// session's chunk size, on message stream 1.
fn standalone(csid: u32, type_id: u8, timestamp: u32, body: &[u8]) -> Vec<u8> {
    let chunk_size = ServerConfig::default().chunk_size;
    let header = MessageHeader {
        csid,
        timestamp,
        length: u32::try_from(body.len()).unwrap(),
        type_id,
        stream_id: session::MEDIA_STREAM_ID,
    };
    let mut buf = vec![0u8; standalone_len(chunk_size, &header)];
    let n = encode_standalone(&mut buf, chunk_size, &header, body).unwrap();
    buf.truncate(n);
    buf
}

/// A session clock: milliseconds since `origin`.
fn clock(origin: Instant, now: Instant) -> time::Instant {
    time::Instant::from_millis(u64::try_from(now.duration_since(origin).as_millis()).unwrap())
}

/// What the test host does with its peer.
#[derive(Clone, Copy)]
enum Serve {
    /// Accept the play and stream the tone; `metadata_first` sends onMetaData before the first
    /// audio message instead of after it (the slow-start variant).
    Play { metadata_first: bool },
    /// Accept the publish and record what arrives.
    Publish,
}

/// What a session reported, one line per event: the format of the `.events` files.
#[derive(Default)]
struct Observed {
    events: Vec<String>,
    audio: Vec<(u32, Vec<u8>)>,
    metadata: Vec<Vec<u8>>,
}

/// The samples of PCM audio messages: each payload without its FLV audio tag header byte.
fn pcm_of(audio: &[(u32, Vec<u8>)]) -> Vec<u8> {
    audio
        .iter()
        .flat_map(|(_, p)| p[1..].iter().copied())
        .collect()
}

/// Feeds `pending` to the server session until it consumes nothing, noting each event and
/// answering requests as the Linux host will (accept what `serve` expects, refuse the rest).
fn pump_server(
    server: &mut Server,
    now: time::Instant,
    pending: &mut Vec<u8>,
    seen: &mut Observed,
    serve: Serve,
) -> Result<(), String> {
    loop {
        let received = server
            .receive(now, pending)
            .map_err(|e| format!("server session: {e}"))?;
        let consumed = received.consumed;
        let event = received.event;
        let had_event = event.is_some();
        let (mut play, mut publish) = (false, false);
        if let Some(event) = event {
            seen.events.push(match event {
                Event::Connected { app, .. } => format!("Connected {app}"),
                Event::PlayRequested { app, name } => {
                    play = true;
                    format!("PlayRequested {app} {name}")
                }
                Event::PublishRequested { app, name } => {
                    publish = true;
                    format!("PublishRequested {app} {name}")
                }
                Event::Audio { timestamp, payload } => {
                    seen.audio.push((timestamp, payload.to_vec()));
                    format!("Audio {timestamp} {}", payload.len())
                }
                Event::Metadata { body } => {
                    seen.metadata.push(body.to_vec());
                    format!("Metadata {}", body.len())
                }
                Event::PlayStopped => "PlayStopped".into(),
                Event::Unpublished => "Unpublished".into(),
            });
        }
        pending.drain(..consumed);
        let result = match serve {
            Serve::Play { .. } if play => server.accept_play(),
            Serve::Publish if publish => server.accept_publish(),
            _ if play => server.refuse_play(session::Refusal::Denied),
            _ if publish => server.refuse_publish(session::Refusal::Denied),
            _ => Ok(()),
        };
        result.map_err(|e| format!("decision: {e}"))?;
        if consumed == 0 && !had_event {
            return Ok(());
        }
    }
}

/// What the test host saw of its one connection.
#[derive(Default)]
struct HostLog {
    seen: Observed,
    /// When the TCP connection was accepted.
    accepted: Option<Instant>,
    /// When the play was accepted (media starts).
    play_started: Option<Instant>,
    /// Audio messages sent to a player.
    sent: u64,
    /// Every byte the peer sent.
    rx: Vec<u8>,
    /// Why the host stopped: "peer closed", "time limit" or an error.
    end: String,
}

/// Runs the test host for one connection on `listener`, for at most `limit`.
fn host(listener: TcpListener, serve: Serve, limit: Duration) -> HostLog {
    let mut log = HostLog::default();
    let mut conn = None;
    log.end = match host_loop(&listener, serve, limit, &mut log, &mut conn) {
        Ok(end) => end.into(),
        Err(e) => e,
    };
    log.rx = conn.map(|c| c.rx).unwrap_or_default();
    log
}

fn host_loop(
    listener: &TcpListener,
    serve: Serve,
    limit: Duration,
    log: &mut HostLog,
    conn_slot: &mut Option<Conn>,
) -> Result<&'static str, String> {
    let deadline = Instant::now() + limit;
    let origin = Instant::now();
    let conn = conn_slot.insert(Conn::new(support::accept(listener, deadline)?));
    log.accepted = Some(Instant::now());
    let mut server = Server::new(clock(origin, origin), entropy(), &ServerConfig::default());
    let metadata = standalone(session::CSID_DATA, message::DATA_AMF0, 0, &on_metadata());
    let mut tone: Option<PacedTone> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok("time limit");
        }
        let open = conn.fill()?;
        let t = clock(origin, now);
        pump_server(&mut server, t, &mut conn.pending, &mut log.seen, serve)?;
        if server.poll_timeout().is_some_and(|at| at <= t) {
            server
                .handle_timeout(t)
                .map_err(|e| format!("timeout: {e}"))?;
        }
        // The session's own bytes (replies, StreamBegin, Play.Start) go before any media.
        let n = server.transmit().len();
        conn.send(server.transmit())?;
        server.advance(n);
        if let (Serve::Play { metadata_first }, true) = (serve, server.is_playing()) {
            let source = tone.get_or_insert_with(|| {
                log.play_started = Some(now);
                PacedTone::new(now)
            });
            while let Some((timestamp, body)) = source.next_due(now) {
                let first = log.sent == 0;
                if first && metadata_first {
                    conn.send(&metadata)?;
                }
                let audio = standalone(session::CSID_AUDIO, message::AUDIO, timestamp, &body);
                conn.send(&audio)?;
                if first && !metadata_first {
                    conn.send(&metadata)?;
                }
                log.sent += 1;
            }
        }
        if !open {
            return Ok("peer closed");
        }
    }
}

/// Starts the test host on a free port, in a thread.
fn spawn_host(serve: Serve, limit: Duration) -> (u16, thread::JoinHandle<HostLog>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, thread::spawn(move || host(listener, serve, limit)))
}

fn url(port: u16) -> String {
    format!("rtmp://127.0.0.1:{port}/{APP}/{STREAM}")
}

/// One ffmpeg player run against the test host.
struct FfmpegPlay {
    host: HostLog,
    pcm: Vec<u8>,
    /// From TCP accept to ffmpeg's first decoded byte on stdout.
    start_latency: Duration,
}

/// `ffmpeg -i rtmp://… -t secs -f s16le -` against the test host; stdout is flushed per packet so
/// the first byte marks the first decoded audio.
fn ffmpeg_play(dir: &Path, metadata_first: bool, secs: u32) -> FfmpegPlay {
    let (port, host) = spawn_host(Serve::Play { metadata_first }, Duration::from_secs(50));
    let (url, t) = (url(port), secs.to_string());
    let args = [
        "-nostdin",
        "-i",
        &url,
        "-t",
        &t,
        "-flush_packets",
        "1",
        "-f",
        "s16le",
        "-ac",
        "2",
        "-ar",
        "44100",
        "-",
    ];
    let tag = format!("ffmpeg-play-{metadata_first}");
    let mut ffmpeg = Peer::spawn(dir, &tag, "ffmpeg", &args, Stdio::piped());
    let output = collect(ffmpeg.take_stdout().unwrap());
    let status = ffmpeg.wait(Duration::from_secs(45));
    let host = host.join().unwrap();
    let output = output.join().unwrap();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "ffmpeg play: {status:?}; host: {} {:?} {} sent\n{}",
        host.end,
        host.seen.events,
        host.sent,
        ffmpeg.log()
    );
    let start_latency = output
        .first
        .zip(host.accepted)
        .map(|(first, accepted)| first.duration_since(accepted))
        .expect("ffmpeg output no audio");
    FfmpegPlay {
        host,
        pcm: output.bytes,
        start_latency,
    }
}

#[test]
fn ffmpeg_plays_the_tone_and_starts_fast() {
    if !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("session-ffmpeg-play");
    let fast = ffmpeg_play(&dir, false, 3);
    let stats = analyse(&fast.pcm);
    stats.assert_tone("ffmpeg play");
    assert!(
        (stats.seconds() - 3.0).abs() < 0.05,
        "expected 3 s, got {stats:?}"
    );
    assert_eq!(
        fast.host.seen.events[..2],
        ["Connected live", "PlayRequested live audio"]
    );
    let slow = ffmpeg_play(&dir, true, 3);
    analyse(&slow.pcm).assert_tone("ffmpeg play, metadata first");
    println!(
        "ffmpeg play: {:.2} Hz, {:.3} s, {:.1} dBFS; first audio {} ms after connect with \
         onMetaData after the first audio, {} ms with onMetaData first ({} / {} messages sent)",
        stats.hz,
        stats.seconds(),
        stats.rms_dbfs,
        fast.start_latency.as_millis(),
        slow.start_latency.as_millis(),
        fast.host.sent,
        slow.host.sent,
    );
    assert!(
        fast.start_latency < Duration::from_secs(1),
        "fast start took {:?}",
        fast.start_latency
    );
    assert!(
        slow.start_latency > fast.start_latency + Duration::from_secs(1),
        "the metadata placement made no difference: {:?} vs {:?}",
        fast.start_latency,
        slow.start_latency
    );
}

/// rtmpdump plays from the test host until the FLV holds `secs` of audio, then gets SIGINT.
fn rtmpdump_play(dir: &Path, secs: u64) -> (HostLog, PathBuf) {
    let (port, host) = spawn_host(
        Serve::Play {
            metadata_first: false,
        },
        Duration::from_secs(30),
    );
    let flv = dir.join("rtmpdump.flv");
    let url = url(port);
    let args = ["-r", &url, "-v", "-o", flv.to_str().unwrap()];
    let mut rtmpdump = Peer::spawn(dir, "rtmpdump", "rtmpdump", &args, Stdio::null());
    let want = secs * RATE * FRAME_BYTES as u64;
    let deadline = Instant::now() + Duration::from_secs(secs + 10);
    while std::fs::metadata(&flv).map_or(0, |m| m.len()) < want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    rtmpdump.interrupt();
    let status = rtmpdump.wait(Duration::from_secs(10));
    let host = host.join().unwrap();
    // rtmpdump exits 2 ("incomplete") when interrupted on a live stream, 0 if it saw the end.
    assert!(
        status
            .as_ref()
            .is_ok_and(|s| matches!(s.code(), Some(0 | 2))),
        "rtmpdump: {status:?}; host: {}\n{}",
        host.end,
        rtmpdump.log()
    );
    (host, flv)
}

#[test]
fn rtmpdump_records_the_tone() {
    if !require("rtmpdump", "-h") || !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("session-rtmpdump");
    let (host, flv) = rtmpdump_play(&dir, 3);
    let stats = analyse(&decode(&flv).unwrap());
    println!(
        "rtmpdump: {:.2} Hz, {:.3} s, {:.1} dBFS ({} messages sent, host: {})",
        stats.hz,
        stats.seconds(),
        stats.rms_dbfs,
        host.sent,
        host.end
    );
    stats.assert_tone("rtmpdump");
    assert!(
        (2.9..3.5).contains(&stats.seconds()),
        "expected ~3 s, got {stats:?}"
    );
    assert_eq!(
        host.seen.events[..2],
        ["Connected live", "PlayRequested live audio"]
    );
}

/// ffmpeg publishes `secs` of the tone encoded with `codec` to the test host; `extra` are more
/// output options.
fn ffmpeg_publish(dir: &Path, codec: &str, secs: f64, extra: &[&str]) -> HostLog {
    let (port, host) = spawn_host(Serve::Publish, Duration::from_secs(30));
    let url = url(port);
    let source = format!("sine=f=440:d={secs}");
    let input = [
        "-nostdin", "-re", "-f", "lavfi", "-i", &source, "-ac", "2", "-ar", "44100", "-c:a", codec,
    ];
    let args = [&input[..], extra, &["-f", "flv", &url]].concat();
    let mut ffmpeg = Peer::spawn(
        dir,
        &format!("ffmpeg-publish-{codec}"),
        "ffmpeg",
        &args,
        Stdio::null(),
    );
    let status = ffmpeg.wait(Duration::from_secs(25));
    let host = host.join().unwrap();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "ffmpeg publish {codec}: {status:?}; host: {}\n{}",
        host.end,
        ffmpeg.log()
    );
    assert_eq!(host.end, "peer closed");
    let seen = &host.seen;
    assert_eq!(
        seen.events[..2],
        ["Connected live", "PublishRequested live audio"]
    );
    assert_eq!(seen.events.last().map(String::as_str), Some("Unpublished"));
    assert_eq!(seen.metadata.len(), 1, "{:?}", seen.events);
    assert!(seen.metadata[0].starts_with(b"\x02\x00\x0aonMetaData"));
    assert!(
        seen.audio.windows(2).all(|w| w[0].0 <= w[1].0),
        "timestamps not monotonic"
    );
    host
}

/// Checks a publish run by decoding the received messages with ffmpeg (through an FLV file).
fn check_published(dir: &Path, codec: &str, host: &HostLog, first_bytes: &[u8], slack: f64) {
    let seen = &host.seen;
    assert!(
        seen.audio[0].1.starts_with(first_bytes),
        "{codec}: first payload"
    );
    let flv = dir.join(format!("published-{codec}.flv"));
    write_flv(&flv, seen.metadata.first().map(Vec::as_slice), &seen.audio);
    let stats = analyse(&decode(&flv).unwrap());
    println!(
        "ffmpeg publish {codec}: {} audio messages, last timestamp {} ms, decoded {:.2} Hz, \
         {:.4} s, {:.1} dBFS",
        seen.audio.len(),
        seen.audio.last().unwrap().0,
        stats.hz,
        stats.seconds(),
        stats.rms_dbfs
    );
    stats.assert_tone(codec);
    assert!(
        (stats.seconds() - 3.0).abs() <= slack / RATE as f64,
        "{codec}: {:.4} s decoded",
        stats.seconds()
    );
}

#[test]
fn ffmpeg_publishes_pcm() {
    if !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("session-publish-pcm");
    let host = ffmpeg_publish(&dir, "pcm_s16le", 3.0, &[]);
    assert!(host.seen.audio.iter().all(|(_, p)| p[0] == PCM_TAG));
    let stats = analyse(&pcm_of(&host.seen.audio));
    println!(
        "ffmpeg publish pcm_s16le: {} messages, {} frames, {:.2} Hz, {:.1} dBFS",
        host.seen.audio.len(),
        stats.frames,
        stats.hz,
        stats.rms_dbfs
    );
    stats.assert_tone("pcm_s16le");
    assert!(
        stats.frames.abs_diff(3 * RATE as usize) <= 1024,
        "{} frames",
        stats.frames
    );
    check_published(&dir, "pcm_s16le", &host, &[PCM_TAG], 1024.0);
}

#[test]
fn ffmpeg_publishes_with_extended_timestamps() {
    if !require("ffmpeg", "-version") {
        return;
    }
    // Timestamps from 16 800 000 ms on are above 0xFFFFFF: ffmpeg writes the 4-byte extended
    // timestamp (a delta in fmt 1) and repeats it in every fmt-3 chunk, including the
    // continuation of each 4097-byte PCM message over the 4096-byte chunk size
    // (protocol-notes §2).
    let dir = scratch_dir("session-publish-ext");
    let host = ffmpeg_publish(&dir, "pcm_s16le", 3.0, &["-output_ts_offset", "16800"]);
    let audio = &host.seen.audio;
    let (first, last) = (audio[0].0, audio[audio.len() - 1].0);
    println!(
        "ffmpeg publish with extended timestamps: {} messages, {first} ms .. {last} ms",
        audio.len()
    );
    assert_eq!(first, 16_800_000, "-output_ts_offset 16800 s");
    // The last of 130 messages starts at frame 129 × 1024: 2995.3 ms after the first.
    assert!((last - first).abs_diff(2995) <= 1, "{first} .. {last}");
    let stats = analyse(&pcm_of(&host.seen.audio));
    stats.assert_tone("pcm_s16le with extended timestamps");
    assert!(
        stats.frames.abs_diff(3 * RATE as usize) <= 1024,
        "{stats:?}"
    );
}

#[test]
fn ffmpeg_publishes_aac() {
    if !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("session-publish-aac");
    let host = ffmpeg_publish(&dir, "aac", 3.0, &[]);
    // The AudioSpecificConfig first (FLV spec E.4.2.1: AACPacketType 0), then raw frames.
    assert!(host.seen.audio[1..]
        .iter()
        .all(|(_, p)| p.starts_with(&[0xAF, 0x01])));
    // Without an edit list the decoder keeps the encoder's 1024-frame priming.
    check_published(&dir, "aac", &host, &[0xAF, 0x00], 2048.0);
}

#[test]
fn ffmpeg_publishes_adpcm() {
    if !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("session-publish-adpcm");
    let host = ffmpeg_publish(&dir, "adpcm_swf", 3.0, &[]);
    // SoundFormat 1 (ADPCM), 44 kHz, 16-bit, stereo.
    check_published(&dir, "adpcm_swf", &host, &[0x1F], 4096.0);
}

/// What the core's client saw of a server.
#[derive(Default)]
struct ClientLog {
    events: Vec<String>,
    audio: Vec<(u32, Vec<u8>)>,
    /// Audio messages published.
    sent: u64,
    /// Why the client stopped.
    end: String,
}

/// Feeds `pending` to the client session until it consumes nothing; true at end of stream.
fn pump_client(
    client: &mut Client,
    now: time::Instant,
    pending: &mut Vec<u8>,
    log: &mut ClientLog,
) -> Result<bool, String> {
    let mut ended = false;
    loop {
        let received = client
            .receive(now, pending)
            .map_err(|e| format!("client session: {e}"))?;
        let consumed = received.consumed;
        let had_event = received.event.is_some();
        if let Some(event) = received.event {
            log.events.push(match event {
                ClientEvent::Audio { timestamp, payload } => {
                    log.audio.push((timestamp, payload.to_vec()));
                    format!("Audio {timestamp} {}", payload.len())
                }
                ClientEvent::Metadata { body } => format!("Metadata {}", body.len()),
                ClientEvent::EndOfStream => {
                    ended = true;
                    "EndOfStream".into()
                }
                other => format!("{other:?}"),
            });
        }
        pending.drain(..consumed);
        if consumed == 0 && !had_event {
            return Ok(ended);
        }
    }
}

/// Runs a `ClientSession` against the server on `port` for at most `limit`: as a publisher it
/// sends `publish_ms` of the paced tone (first audio, then metadata, like the host) and then
/// unpublishes; as a player it records audio until the end of the stream.
fn run_client(
    port: u16,
    role: ClientRole,
    digest: bool,
    publish_ms: u64,
    limit: Duration,
) -> ClientLog {
    let mut log = ClientLog::default();
    log.end = match client_loop(port, role, digest, publish_ms, limit, &mut log) {
        Ok(end) => end.into(),
        Err(e) => e,
    };
    log
}

fn client_loop(
    port: u16,
    role: ClientRole,
    digest: bool,
    publish_ms: u64,
    limit: Duration,
    log: &mut ClientLog,
) -> Result<&'static str, String> {
    let origin = Instant::now();
    let deadline = origin + limit;
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let mut conn = Conn::new(stream);
    let tc_url = format!("rtmp://127.0.0.1:{port}/{APP}");
    let config = ClientConfig {
        app: APP,
        tc_url: &tc_url,
        stream: STREAM,
        role,
        digest,
        chunk_size: 4096,
        max_message: 16384,
        idle_timeout_ms: 60_000,
    };
    let mut client = Client::new(clock(origin, origin), entropy(), &config)
        .map_err(|e| format!("client: {e}"))?;
    let metadata = on_metadata();
    let mut tone: Option<PacedTone> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok("time limit");
        }
        let t = clock(origin, now);
        if client.poll_timeout().is_some_and(|at| at <= t) {
            client
                .handle_timeout(t)
                .map_err(|e| format!("timeout: {e}"))?;
        }
        let n = client.transmit().len();
        conn.send(client.transmit())?;
        client.advance(n);
        let open = conn.fill()?;
        if pump_client(&mut client, t, &mut conn.pending, log)? {
            return Ok("end of stream");
        }
        if role == ClientRole::Publish && client.is_streaming() {
            let source = tone.get_or_insert_with(|| PacedTone::new(now));
            while let Some((timestamp, body)) = source.next_due(now) {
                let send = client.send_audio(timestamp, &body);
                send.map_err(|e| format!("send_audio: {e}"))?;
                if log.sent == 0 {
                    let meta = client.send_metadata(&metadata);
                    meta.map_err(|e| format!("send_metadata: {e}"))?;
                }
                log.sent += 1;
                let n = client.transmit().len();
                conn.send(client.transmit())?;
                client.advance(n);
            }
            if source.millis() >= publish_ms {
                client.unpublish().map_err(|e| format!("unpublish: {e}"))?;
                let n = client.transmit().len();
                conn.send(client.transmit())?;
                client.advance(n);
                return Ok("published");
            }
        }
        if !open {
            return Ok("peer closed");
        }
    }
}

/// The core's client publishes 3 s of the tone to nginx while ffmpeg plays it from nginx.
fn client_publishes_to_nginx(digest: bool) {
    if !support::require_nginx_rtmp() || !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir(&format!("session-nginx-publish-{digest}"));
    let nginx = Nginx::start(&dir).unwrap();
    let url = url(nginx.port);
    // nginx-rtmp (`meta on`) sends its own onMetaData before the first audio, so libavformat
    // would probe up to its 5 MB probesize (28 s of PCM, measured in the play test above) before
    // decoding anything; a small probesize lets this 3 s stream through.
    let args = [
        "-nostdin",
        "-probesize",
        "65536",
        "-i",
        &url,
        "-t",
        "2",
        "-f",
        "s16le",
        "-ac",
        "2",
        "-ar",
        "44100",
        "-",
    ];
    let mut ffmpeg = Peer::spawn(&dir, "ffmpeg-play", "ffmpeg", &args, Stdio::piped());
    let output = collect(ffmpeg.take_stdout().unwrap());
    // Let the player subscribe first, so it receives the stream from its start.
    thread::sleep(Duration::from_millis(500));
    let log = run_client(
        nginx.port,
        ClientRole::Publish,
        digest,
        3000,
        Duration::from_secs(15),
    );
    let status = ffmpeg.wait(Duration::from_secs(20));
    let pcm = output.join().unwrap().bytes;
    assert_eq!(log.end, "published", "{:?}\n{}", log.events, nginx.log());
    assert_eq!(log.events, ["Connected", "Publishing"]);
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "ffmpeg: {status:?}\n{}\n{}",
        ffmpeg.log(),
        nginx.log()
    );
    let stats = analyse(&pcm);
    println!(
        "ClientSession (digest {digest}) → nginx → ffmpeg: {} messages published; ffmpeg decoded \
         {:.2} Hz, {:.3} s, {:.1} dBFS",
        log.sent,
        stats.hz,
        stats.seconds(),
        stats.rms_dbfs
    );
    stats.assert_tone("nginx relay of the client's stream");
    assert!((stats.seconds() - 2.0).abs() < 0.05, "{stats:?}");
}

#[test]
fn client_publishes_to_nginx_with_digest() {
    client_publishes_to_nginx(true);
}

#[test]
fn client_publishes_to_nginx_plain() {
    client_publishes_to_nginx(false);
}

#[test]
fn client_plays_from_nginx() {
    if !support::require_nginx_rtmp() || !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("session-nginx-play");
    let nginx = Nginx::start(&dir).unwrap();
    let port = nginx.port;
    let player =
        thread::spawn(move || run_client(port, ClientRole::Play, true, 0, Duration::from_secs(20)));
    // The player subscribes before the publisher starts, so it sees the whole stream.
    thread::sleep(Duration::from_millis(500));
    let url = url(port);
    let args = [
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=3",
        "-ac",
        "2",
        "-ar",
        "44100",
        "-c:a",
        "pcm_s16le",
        "-f",
        "flv",
        &url,
    ];
    let mut ffmpeg = Peer::spawn(&dir, "ffmpeg-publish", "ffmpeg", &args, Stdio::null());
    let status = ffmpeg.wait(Duration::from_secs(20));
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "ffmpeg: {status:?}\n{}\n{}",
        ffmpeg.log(),
        nginx.log()
    );
    let log = player.join().unwrap();
    assert_eq!(
        log.end,
        "end of stream",
        "{:?}\n{}",
        log.events,
        nginx.log()
    );
    assert_eq!(log.events[..2], ["Connected", "Playing"]);
    assert!(log.audio.iter().all(|(_, p)| p[0] == PCM_TAG));
    assert!(log.audio.windows(2).all(|w| w[0].0 <= w[1].0));
    let stats = analyse(&pcm_of(&log.audio));
    println!(
        "ffmpeg → nginx → ClientSession: {} audio messages, {:.2} Hz, {:.3} s, {:.1} dBFS; \
         other events {:?}",
        log.audio.len(),
        stats.hz,
        stats.seconds(),
        stats.rms_dbfs,
        log.events
            .iter()
            .filter(|e| !e.starts_with("Audio"))
            .collect::<Vec<_>>()
    );
    stats.assert_tone("client playing from nginx");
    assert!(
        stats.frames.abs_diff(3 * RATE as usize) <= 1024,
        "{stats:?}"
    );
}

/// Captured client → server bytes of real exchanges with the test host, and the events the host
/// saw live, one per line (`<name>.bin`, `<name>.events`; see the README there).
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/session");

/// Each capture and how the host served it.
const CAPTURES: [(&str, Serve); 3] = [
    (
        "ffmpeg_play",
        Serve::Play {
            metadata_first: false,
        },
    ),
    (
        "rtmpdump_play",
        Serve::Play {
            metadata_first: false,
        },
    ),
    ("ffmpeg_publish_pcm", Serve::Publish),
];

fn save_capture(name: &str, host: &HostLog) {
    assert!(
        host.rx.len() < 200 * 1024,
        "{name}: {} bytes",
        host.rx.len()
    );
    let dir = Path::new(VECTORS);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.bin")), &host.rx).unwrap();
    let events = host.seen.events.join("\n") + "\n";
    std::fs::write(dir.join(format!("{name}.events")), events).unwrap();
    println!(
        "{name}: {} bytes, {} events",
        host.rx.len(),
        host.seen.events.len()
    );
}

#[test]
#[ignore = "rewrites tests/vectors/session from live runs of ffmpeg and rtmpdump"]
fn record_session_captures() {
    assert!(require("ffmpeg", "-version") && require("rtmpdump", "-h"));
    let dir = scratch_dir("session-record");
    save_capture("ffmpeg_play", &ffmpeg_play(&dir, false, 1).host);
    save_capture("rtmpdump_play", &rtmpdump_play(&dir, 1).0);
    save_capture(
        "ffmpeg_publish_pcm",
        &ffmpeg_publish(&dir, "pcm_s16le", 0.5, &[]),
    );
}

/// xorshift64: deterministic split sizes.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Feeds a capture to a fresh server session in random pieces of 1..=`max_piece` bytes, one
/// virtual millisecond apart, discarding what the session transmits; returns what it reported.
fn replay(capture: &[u8], serve: Serve, seed: u64, max_piece: u64) -> Observed {
    let mut state = seed;
    let mut server = Server::new(
        time::Instant::from_millis(0),
        [seed as u8; 32],
        &ServerConfig::default(),
    );
    let mut seen = Observed::default();
    let mut pending = Vec::new();
    let (mut offset, mut millis) = (0, 0);
    while offset < capture.len() {
        let piece = 1 + next_random(&mut state) % max_piece;
        let end = capture.len().min(offset + usize::try_from(piece).unwrap());
        pending.extend_from_slice(&capture[offset..end]);
        offset = end;
        millis += 1;
        let now = time::Instant::from_millis(millis);
        pump_server(&mut server, now, &mut pending, &mut seen, serve).unwrap();
        if server.poll_timeout().is_some_and(|at| at <= now) {
            server.handle_timeout(now).unwrap();
        }
        let n = server.transmit().len();
        server.advance(n);
    }
    assert!(
        pending.is_empty(),
        "{} bytes left unconsumed",
        pending.len()
    );
    seen
}

#[test]
fn captures_replay_to_the_same_events_in_any_split() {
    for (name, serve) in CAPTURES {
        let dir = Path::new(VECTORS);
        let capture = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let expected: Vec<String> = std::fs::read_to_string(dir.join(format!("{name}.events")))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let request = match serve {
            Serve::Play { .. } => "PlayRequested live audio",
            Serve::Publish => "PublishRequested live audio",
        };
        assert_eq!(expected[..2], ["Connected live", request], "{name}");
        for (seed, max_piece) in [(1, 1), (2, 7), (3, 200), (4, 1500), (5, 20_000)] {
            let seen = replay(&capture, serve, seed, max_piece);
            assert_eq!(seen.events, expected, "{name}, pieces of 1..={max_piece}");
        }
        let whole = replay(&capture, serve, 6, capture.len() as u64);
        assert_eq!(whole.events, expected, "{name} in one piece");
        if let Serve::Publish = serve {
            // Recorded from `sine=f=440:d=0.5`: 22050 frames in 1024-frame messages (the last
            // one short), every one PCM s16le stereo 44.1 kHz, and still the tone.
            assert_eq!(whole.audio.len(), 22);
            assert!(whole.audio.iter().all(|(_, p)| p[0] == PCM_TAG));
            let stats = analyse(&pcm_of(&whole.audio));
            assert_eq!(stats.frames, 22_050);
            stats.assert_tone(name);
        }
    }
}
