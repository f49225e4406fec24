//! The board driver (`zerocast_core::board`) over `embedded-io-adapters`' std wrapper around a
//! `TcpStream`, against real players on 127.0.0.1.
//!
//! A one-thread server runs the driver the way a board does: a table of `Player`s, one `Stream`
//! paced by the clock with a 440 Hz tone, SWF ADPCM into a ring of the test's own. Two ffmpeg
//! players play at the same time (fan-out from one ring) and are checked by content; a play of
//! another stream is refused. `ci/run.sh test` runs this on x86, `ci/run.sh cross` on the
//! emulated ARM1176 (`qemu-arm -cpu arm1176`, static musl), where the players stay native.
//!
//! std cannot say whether a socket write would block, so the transport's `WriteReady` says yes
//! and a write blocks until the kernel takes it; the socket buffer on loopback holds seconds of
//! this stream, so the loop never waits in practice (a board's stack answers from its TX buffer).

mod support;

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use embedded_io::{ErrorType, Read, ReadReady, Write, WriteReady};
use embedded_io_adapters::std::FromStd;
use support::{analyse, collect, entropy, require, scratch_dir, Peer, Tone, RATE};
use zerocast_core::board::{Player, PlayerError, Stream, StreamConfig};
use zerocast_core::codec::{AdpcmSwf, BlockEncoder};
use zerocast_core::ring::Ring;
use zerocast_core::session::ServerConfig;
use zerocast_core::time;

/// Player slots of the test server.
const SLOTS: usize = 4;
/// One player: a 2 KiB reassembly arena (players send only commands), 1 KiB for the session's
/// replies, 512 bytes of receive buffer.
type TestPlayer = Player<2048, 1024, 512>;
/// 1024-frame ADPCM messages of 44.1 kHz stereo are 1 + 4 + 2048 bytes (+ 12 of header): 256 KiB
/// hold about 6 s, so a server thread descheduled for a while on a loaded machine (or under
/// qemu) does not make its players lag.
type TestRing = Ring<{ 256 * 1024 }, 256>;
const FRAMES: usize = 1024;

/// `FromStd<TcpStream>` plus the readiness the driver asks for; reads and writes go through the
/// adapter unchanged.
struct StdTransport(FromStd<TcpStream>);

impl ErrorType for StdTransport {
    type Error = std::io::Error;
}

impl Read for StdTransport {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf)
    }
}

impl Write for StdTransport {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

impl ReadReady for StdTransport {
    /// Data or end of stream waiting: a nonblocking peek says so without taking anything.
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        let socket = self.0.inner();
        socket.set_nonblocking(true)?;
        let peeked = socket.peek(&mut [0u8; 1]);
        socket.set_nonblocking(false)?;
        match peeked {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl WriteReady for StdTransport {
    /// std has no way to ask; see the module docs.
    fn write_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// What the server did.
#[derive(Default, Debug)]
struct ServerLog {
    /// Connections accepted.
    accepted: usize,
    /// Most players served audio at one time.
    most_playing: usize,
    /// Why each connection ended.
    closed: Vec<String>,
}

/// The board loop of the module docs, on std: accepts into free slots, paces the tone, polls
/// every player, until `stop` is set.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) -> ServerLog {
    let session = ServerConfig::default();
    let config = StreamConfig {
        app: "live",
        name: "audio",
        rate: RATE as u32,
        channels: 2,
        join_ms: 500,
        session,
    };
    let encoder = AdpcmSwf::new(config.rate, 2, 4).unwrap();
    assert_eq!(encoder.fit_frames(FRAMES), FRAMES);
    let mut body = vec![0u8; 1 + encoder.max_encoded_len(FRAMES)];
    let mut pcm = vec![0i16; FRAMES * 2];
    let mut ring = Box::new(TestRing::new());
    let mut stream = Stream::new(config, encoder, &mut ring, &mut pcm, &mut body).unwrap();
    let mut players: Vec<TestPlayer> = (0..SLOTS).map(|_| TestPlayer::new()).collect();
    let mut conns: Vec<Option<StdTransport>> = (0..SLOTS).map(|_| None).collect();
    let mut tone = Tone::default();
    let mut log = ServerLog::default();
    let origin = Instant::now();
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let now = time::Instant::from_millis(origin.elapsed().as_millis() as u64);
        while let Ok((socket, _)) = listener.accept() {
            socket.set_nonblocking(false).unwrap();
            socket.set_nodelay(true).unwrap();
            socket
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            log.accepted += 1;
            match players.iter().position(|p| !p.is_open()) {
                Some(i) => {
                    players[i].open(now, entropy(), &session);
                    conns[i] = Some(StdTransport(FromStd::new(socket)));
                }
                None => log.closed.push("no free slot".into()),
            }
        }
        stream.pace(now, |pcm| tone.fill(pcm)).unwrap();
        for (player, conn) in players.iter_mut().zip(conns.iter_mut()) {
            let Some(io) = conn.as_mut() else { continue };
            if let Err(e) = player.poll(io, &stream, now) {
                log.closed.push(describe(e));
                *conn = None;
            }
        }
        let playing = players.iter().filter(|p| p.is_playing()).count();
        log.most_playing = log.most_playing.max(playing);
        // The loop's own tick: a board would sleep until the next deadline or packet.
        thread::sleep(Duration::from_millis(2));
    }
    log
}

fn describe(e: PlayerError) -> String {
    match e {
        PlayerError::PeerClosed => "peer closed".into(),
        other => other.to_string(),
    }
}

/// `ffmpeg -i URL -t secs` to s16le on stdout.
fn ffmpeg(dir: &Path, tag: &str, url: &str, secs: u32) -> Peer {
    let t = secs.to_string();
    let args = [
        "-nostdin", "-i", url, "-t", &t, "-f", "s16le", "-ac", "2", "-ar", "44100", "-",
    ];
    Peer::spawn(dir, tag, "ffmpeg", &args, Stdio::piped())
}

#[test]
fn two_ffmpeg_players_play_the_tone_over_the_std_adapter() {
    if !require("ffmpeg", "-version") {
        return;
    }
    let dir = scratch_dir("board-std");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        thread::spawn(move || serve(listener, stop))
    };
    let url = format!("rtmp://127.0.0.1:{port}/live/audio");
    let mut players: Vec<Peer> = (0..2)
        .map(|i| ffmpeg(&dir, &format!("ffmpeg-{i}"), &url, 3))
        .collect();
    let outputs: Vec<_> = players
        .iter_mut()
        .map(|p| collect(p.take_stdout().unwrap()))
        .collect();
    let statuses: Vec<_> = players
        .iter_mut()
        .map(|p| p.wait(Duration::from_secs(60)))
        .collect();
    let mut refused = ffmpeg(&dir, "ffmpeg-refused", &format!("{url}-other"), 1);
    let refused_status = refused.wait(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let log = server.join().unwrap();
    println!("board over FromStd<TcpStream>: {log:?}");
    for ((i, status), output) in statuses.iter().enumerate().zip(outputs) {
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "ffmpeg {i}: {status:?}; server {log:?}\n{}",
            players[i].log()
        );
        let stats = analyse(&output.join().unwrap().bytes);
        stats.assert_clean_tone(&format!("player {i}"));
        assert!(
            (stats.seconds() - 3.0).abs() < 0.05,
            "player {i}: expected 3 s, got {stats:?}"
        );
    }
    assert!(
        refused_status.as_ref().is_ok_and(|s| !s.success()),
        "a play of another stream was not refused: {refused_status:?}"
    );
    assert_eq!(log.most_playing, 2, "{log:?}");
    assert_eq!(log.accepted, 3, "{log:?}");
    assert!(log.closed.iter().any(|c| c == "request refused"), "{log:?}");
}

#[test]
fn memory_of_the_board_driver_is_printed() {
    // The numbers docs/porting.md tabulates: on x86_64 here, on 32-bit ARM under `cross`.
    let sizes = [
        (
            "Player<2048, 1024, 512>",
            size_of::<Player<2048, 1024, 512>>(),
        ),
        (
            "Player<4096, 2048, 1024>",
            size_of::<Player<4096, 2048, 1024>>(),
        ),
        (
            "Stream<AdpcmSwf, _, _> (without its ring and buffers)",
            size_of::<Stream<'static, AdpcmSwf, 16384, 32>>(),
        ),
        ("Ring<16384, 32>", size_of::<Ring<16384, 32>>()),
        ("Ring<65536, 64>", size_of::<Ring<65536, 64>>()),
    ];
    for (what, bytes) in sizes {
        println!("{what}: {bytes} bytes");
    }
    // Arena + TX + handshake (3 KiB) + RX + small state.
    assert!(size_of::<Player<2048, 1024, 512>>() < 2048 + 1024 + 512 + 4096 + 1024);
}
