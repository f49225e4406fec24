//! The connection limits against addresses that take all they can (issue 19): clients bound to
//! 127.0.0.2, 127.0.0.3, … (Linux routes all of 127.0.0.0/8 to lo, so each is an address of
//! its own to zerocast), judged by what a later client hears.
//!
//! - Two addresses that open every HTTP listener they can leave a reserve: a third address is
//!   served a stream (curl, decoded and checked for the tone); the same on the RTMP side
//!   (ffmpeg).
//! - Incomplete requests (slowloris) from several addresses fill the table: a new client takes
//!   the slot of the oldest of them, which is closed.
//! - Wrong admin passwords lock their address out (the right one is then refused too), not
//!   another address; so do wrong RTMP publish keys (ffmpeg).
//! - Out of descriptors (zerocast under `prlimit --nofile=64:64`, 1100 connections): zerocast
//!   warns at start, keeps draining its backlog, and serves a new player once the connections
//!   are gone.
//!
//! Needs ffmpeg and curl (missing: skipped, or failed when `CI` is set). Run with
//! `--nocapture` to see the counts.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::check::{check_tone, decode};
use common::live::{ffmpeg_wav, publish_once, Zerocast};
use common::process::{self, Spawned};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

/// Upper bound of every wait (a bound against a hang, not a timing check).
const LIMIT: Duration = Duration::from_secs(20);
/// HTTP (and RTMP) slots in the first test: a reserve of 2.
const HTTP_SLOTS: usize = 16;
/// The admin password of the HTTP test.
const PASSWORD: &str = "limits-admin";
/// Its publish key.
const PUBLISH_KEY: &str = "limits-publish";

/// A connection to 127.0.0.1:`port` from `from`, reads bounded by [`LIMIT`].
fn connect_from(from: Ipv4Addr, port: u16) -> Result<TcpStream, HarnessError> {
    let stream = common::rtmp_client::connect_raw_from(port, from)?;
    stream
        .set_read_timeout(Some(LIMIT))
        .map_err(|e| HarnessError::io("read timeout", e))?;
    Ok(stream)
}

/// Whether zerocast gave `stream` a slot: it logs either `ADDR: connected` (debug) or
/// `ADDR: refused`.
fn admitted(z: &mut Zerocast, stream: &TcpStream) -> Result<bool, HarnessError> {
    let local = stream
        .local_addr()
        .map_err(|e| HarnessError::io("local address", e))?;
    let (connected, refused) = (format!("{local}: connected"), format!("{local}: refused"));
    process::wait_until(
        &format!("zerocast to admit or refuse {local}"),
        LIMIT,
        || Ok(z.log_count(&connected) + z.log_count(&refused) > 0),
    )?;
    Ok(z.log_count(&connected) > 0)
}

/// Opens connections from `from`, each sending `request`, until zerocast refuses one; returns
/// those it admitted.
fn take_all(
    z: &mut Zerocast,
    from: Ipv4Addr,
    port: u16,
    request: &[u8],
) -> Result<Vec<TcpStream>, HarnessError> {
    let mut held = Vec::new();
    for _ in 0..=HTTP_SLOTS {
        let mut s = connect_from(from, port)?;
        // A refused connection may be closed before the request is written.
        let _ = s.write_all(request);
        if !admitted(z, &s)? {
            return Ok(held);
        }
        held.push(s);
    }
    Err(HarnessError::Failed {
        what: format!("{from}"),
        detail: format!("more than {HTTP_SLOTS} connections admitted"),
    })
}

/// `curl --interface FROM` saving `secs` of `url` into `out`, then decoded and checked for the
/// 440 Hz tone.
fn hear_from(from: Ipv4Addr, url: &str, secs: u64, dir: &Path) -> Result<(), HarnessError> {
    let label = from.to_string();
    let flv = dir.join(format!("{label}.flv"));
    let (max, iface, out) = (secs.to_string(), label.clone(), flv.display().to_string());
    let args = [
        "-s",
        "--interface",
        &iface,
        "--max-time",
        &max,
        "-o",
        &out,
        url,
    ];
    let log = dir.join(format!("curl-{label}.log"));
    let mut curl = process::spawn("curl", &args, &[], &log)?;
    let status = curl.wait_timeout(LIMIT)?;
    // 28: --max-time, as an endless body ends.
    if !matches!(status.code(), Some(0 | 28)) {
        return Err(curl.failed(format!("curl from {from} exited with {status}")));
    }
    let report = check_tone(&decode(&flv)?, 440.0, secs as f64 - 0.5, 25.0, &label)?;
    if report.discontinuities > 0 {
        return Err(HarnessError::Failed {
            what: label,
            detail: format!("{} phase jumps", report.discontinuities),
        });
    }
    Ok(())
}

/// Sockets zerocast holds (`/proc/PID/fd`).
fn sockets(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// Closes `held` and waits until zerocast holds only its two listeners.
fn release(held: Vec<TcpStream>, pid: u32) -> Result<(), HarnessError> {
    drop(held);
    process::wait_until("zerocast to close the released connections", LIMIT, || {
        Ok(sockets(pid) == 2)
    })
}

/// The status line of one request from `from`.
fn status_from(from: Ipv4Addr, port: u16, request: &str) -> Result<String, HarnessError> {
    let mut s = connect_from(from, port)?;
    s.write_all(request.as_bytes())
        .map_err(|e| HarnessError::io("write", e))?;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    Ok(text.lines().next().unwrap_or("closed").to_owned())
}

/// Standard base64 (for a basic-auth header).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn http_slots_keep_a_reserve_evict_slowloris_and_lock_out_guessers() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl"])? {
        return Ok(());
    }
    TempDir::run("limits-http", |dir| {
        let port = process::free_port()?;
        let http = format!("127.0.0.1:{port}");
        let slots = HTTP_SLOTS.to_string();
        let mut z = Zerocast::start(
            &[
                "--http",
                &http,
                "--source",
                "tone:440",
                "--codec",
                "pcm",
                "--http-max-clients",
                &slots,
                "--max-clients",
                &slots,
                // Incomplete requests stay for the whole test.
                "--handshake-timeout-ms",
                "60000",
                "--admin-password",
                PASSWORD,
                "--publish-key",
                PUBLISH_KEY,
                "--log-level",
                "debug",
            ],
            &[],
            None,
            dir,
        )?;
        process::wait_for_port(port, LIMIT, &mut z.process)?;
        let pid = z.process.pid();
        let url = format!("http://{http}/live/audio.flv");
        let head = "HEAD /live/audio.flv HTTP/1.1\r\nConnection: close\r\n\r\n";
        process::wait_until("the .flv mount", LIMIT, || {
            Ok(status_from(Ipv4Addr::LOCALHOST, port, head)? == "HTTP/1.1 200 OK")
        })?;
        release(Vec::new(), pid)?;

        // 1. Two addresses open every listener they can; a third is still served.
        let listen = b"GET /live/audio.flv HTTP/1.1\r\n\r\n";
        let a = take_all(&mut z, Ipv4Addr::new(127, 0, 0, 2), port, listen)?;
        let b = take_all(&mut z, Ipv4Addr::new(127, 0, 0, 3), port, listen)?;
        println!(
            "of {HTTP_SLOTS} slots, 127.0.0.2 took {}, 127.0.0.3 took {}",
            a.len(),
            b.len()
        );
        hear_from(Ipv4Addr::new(127, 0, 0, 4), &url, 3, dir)?;
        release(a.into_iter().chain(b).collect(), pid)?;

        // 1b. The same rule on the RTMP side: silent connections (handshake never started)
        // from two addresses, then a player from a third (127.0.0.1) hears the tone.
        let rtmp_port = z.port;
        let a = take_all(&mut z, Ipv4Addr::new(127, 0, 0, 2), rtmp_port, b"")?;
        let b = take_all(&mut z, Ipv4Addr::new(127, 0, 0, 3), rtmp_port, b"")?;
        println!(
            "of {HTTP_SLOTS} RTMP slots, 127.0.0.2 took {}, 127.0.0.3 took {}",
            a.len(),
            b.len()
        );
        let wav = dir.join("rtmp-player.wav");
        let rtmp = format!("rtmp://127.0.0.1:{rtmp_port}/live/audio");
        let mut player = ffmpeg_wav(&rtmp, Duration::from_secs(2), &wav, &dir.join("rtmp.log"))?;
        let status = player.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(player.failed(format!("the RTMP player exited with {status}")));
        }
        let report = check_tone(&Wav::read(&wav)?, 440.0, 1.5, 25.0, "RTMP player")?;
        assert_eq!(report.discontinuities, 0);
        release(a.into_iter().chain(b).collect(), pid)?;

        // 2. Incomplete requests from three addresses fill the table; a new client takes the
        // slot of the oldest of them.
        let slow = b"GET /stat HTTP/1.1\r\nX-Slow: ";
        let mut d = take_all(&mut z, Ipv4Addr::new(127, 0, 0, 5), port, slow)?;
        let e = take_all(&mut z, Ipv4Addr::new(127, 0, 0, 6), port, slow)?;
        let f = take_all(&mut z, Ipv4Addr::new(127, 0, 0, 7), port, slow)?;
        println!(
            "incomplete requests: {} + {} + {} of {HTTP_SLOTS} slots",
            d.len(),
            e.len(),
            f.len()
        );
        assert_eq!(d.len() + e.len() + f.len(), HTTP_SLOTS, "the table is full");
        hear_from(Ipv4Addr::new(127, 0, 0, 8), &url, 2, dir)?;
        let mut oldest = d.remove(0);
        let mut rest = Vec::new();
        let n = oldest.read_to_end(&mut rest).unwrap_or(0);
        assert_eq!(n, 0, "the evicted client got an answer");
        z.wait_log("evicted: no complete request yet", LIMIT)?;
        release(d.into_iter().chain(e).chain(f).collect(), pid)?;

        // 3. Five wrong admin passwords lock 127.0.0.9 out, the right one included; 127.0.0.10
        // is not.
        let update = |password: &str| {
            let auth = base64(format!("admin:{password}").as_bytes());
            format!(
                "GET /admin/metadata?mount=/live/audio.flv&mode=updinfo&song=x HTTP/1.1\r\n\
                 Authorization: Basic {auth}\r\nConnection: close\r\n\r\n"
            )
        };
        let guesser = Ipv4Addr::new(127, 0, 0, 9);
        let mut answers = Vec::new();
        for i in 0..5 {
            answers.push(status_from(
                guesser,
                port,
                &update(&format!("guess-{i}-x")),
            )?);
        }
        let right = status_from(guesser, port, &update(PASSWORD))?;
        let other = status_from(Ipv4Addr::new(127, 0, 0, 10), port, &update(PASSWORD))?;
        println!(
            "guesses: {answers:?}, then the right password: {right:?}; another address: {other:?}"
        );
        assert!(answers.iter().all(|a| a == "HTTP/1.1 401 Unauthorized"));
        assert_eq!(right, "HTTP/1.1 429 Too Many Requests");
        assert_eq!(other, "HTTP/1.1 200 OK");
        assert_eq!(z.log_count("127.0.0.9: 5 wrong keys or passwords"), 1);

        // 4. The same for RTMP publish keys (ffmpeg, from 127.0.0.1): five wrong ones, then the
        // right one is refused unchecked.
        let mut wrong = 0;
        for i in 0..5 {
            let name = format!("guessed?key=guess-{i}-xyz");
            wrong += usize::from(!publish_once(z.port, &name, dir, &format!("wrong-{i}"))?);
        }
        let name = format!("guessed?key={PUBLISH_KEY}");
        let right = publish_once(z.port, &name, dir, "right")?;
        println!("RTMP: {wrong} of 5 wrong keys refused, then the right key accepted: {right}");
        assert_eq!(wrong, 5);
        assert!(!right, "the right key was checked while locked out");
        z.wait_log("publish live/guessed refused: too many wrong keys", LIMIT)?;
        assert_eq!(z.log_count("127.0.0.1: 5 wrong keys or passwords"), 1);
        for secret in [PASSWORD, PUBLISH_KEY] {
            assert_eq!(z.log_count(secret), 0, "a secret is in the log");
        }
        z.stop_cleanly()
    })
}

/// Connections opened while zerocast is out of descriptors: more than its limit and its listen
/// backlog (1024) together.
const FLOOD: usize = 1100;

#[test]
fn out_of_descriptors_the_backlog_drains_and_a_new_player_is_served() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "prlimit"])? {
        return Ok(());
    }
    TempDir::run("limits-emfile", |dir| {
        let port = process::free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut argv = vec!["--nofile=64:64".to_owned()];
        argv.extend(process::zerocast_argv());
        argv.extend(
            [
                "--listen",
                &listen,
                "--http",
                "off",
                "--source",
                "tone:440",
                "--codec",
                "pcm",
                "--max-clients",
                "2000",
                "--max-per-addr",
                "2000",
            ]
            .map(str::to_owned),
        );
        let log = dir.join("zerocast.log");
        let mut z = process::spawn("prlimit", &argv, &[], &log)?;
        process::wait_for_port(port, LIMIT, &mut z)?;
        let logged = |z: &Spawned, needle: &str| z.log().contains(needle);
        process::wait_until("the warning at start", LIMIT, || {
            Ok(logged(&z, "open-file limit (RLIMIT_NOFILE) is 64"))
        })?;
        let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut held = Vec::new();
        let mut failed = 0;
        for _ in 0..FLOOD {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => held.push(s),
                Err(_) => failed += 1,
            }
        }
        process::wait_until("zerocast to run out of descriptors", LIMIT, || {
            Ok(logged(&z, "accept failed: Too many open files"))
        })?;
        println!(
            "{FLOOD} connections: {} connected, {failed} timed out; zerocast holds {} sockets",
            held.len(),
            sockets(z.pid())
        );
        drop(held);
        process::wait_until("zerocast to close the connections", LIMIT, || {
            Ok(sockets(z.pid()) == 1)
        })?;
        let wav = dir.join("after.wav");
        let url = format!("rtmp://{listen}/live/audio");
        let mut player = ffmpeg_wav(&url, Duration::from_secs(3), &wav, &dir.join("after.log"))?;
        let status = player.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(player.failed(format!("the player afterwards exited with {status}")));
        }
        let report = check_tone(&Wav::read(&wav)?, 440.0, 2.5, 25.0, "player afterwards")?;
        assert_eq!(report.discontinuities, 0);
        // Logged once (at most once a minute), not once per refused connection.
        let warnings = z.log().matches("accept failed").count();
        println!("accept failures logged: {warnings}");
        assert_eq!(warnings, 1);
        z.terminate(process::DROP_GRACE)?;
        Ok(())
    })
}

/// How long the player beside the flooding publisher plays.
const FLOOD_PLAY: Duration = Duration::from_secs(4);
/// Audio messages the flooding publisher queues per write.
const FLOOD_BATCH: usize = 64;

/// Publishes `live/flood` from 127.0.0.1:`port` as fast as the socket takes it (PCM messages
/// of 4 KiB, 64 to a write) until `stop`; returns the bytes sent.
fn flood_publisher(port: u16, stop: &std::sync::atomic::AtomicBool) -> Result<u64, HarnessError> {
    use std::sync::atomic::Ordering;
    use zerocast_core::session::{ClientConfig, ClientRole, ClientSession};
    use zerocast_core::time::Instant as CoreInstant;
    let failed = |what: &str, e: String| HarnessError::Failed {
        what: format!("flooding publisher: {what}"),
        detail: e,
    };
    let mut socket = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| HarnessError::io("connect", e))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(10)))
        .map_err(|e| HarnessError::io("read timeout", e))?;
    let tc_url = format!("rtmp://127.0.0.1:{port}/live");
    let config = ClientConfig {
        app: "live",
        tc_url: &tc_url,
        stream: "flood",
        role: ClientRole::Publish,
        digest: false,
        chunk_size: 4096,
        max_message: 16 * 1024,
        idle_timeout_ms: 60_000,
    };
    let now = CoreInstant::from_millis(0);
    let mut session = Box::new(
        ClientSession::<4096, { 512 * 1024 }>::new(now, [5; 32], &config)
            .map_err(|e| failed("session", e.to_string()))?,
    );
    let mut input = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + LIMIT;
    while !session.is_streaming() {
        if std::time::Instant::now() > deadline {
            return Err(failed("publish", "never started".into()));
        }
        socket
            .write_all(session.transmit())
            .map_err(|e| HarnessError::io("write", e))?;
        let sent = session.transmit().len();
        session.advance(sent);
        match socket.read(&mut buf) {
            Ok(0) => return Err(failed("publish", "closed".into())),
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
        loop {
            let received = session
                .receive(now, &input)
                .map_err(|e| failed("receive", e.to_string()))?;
            input.drain(..received.consumed);
            if received.consumed == 0 {
                break;
            }
        }
    }
    // 44.1 kHz stereo 16-bit little-endian PCM (FLV sound format 3, tag 0x3f): 1023 frames of a
    // quiet square wave per message, 23 ms each.
    let mut payload = vec![0x3fu8];
    payload.extend((0..1023 * 2).flat_map(|i: u32| {
        let sample: i16 = if i / 100 % 2 == 0 { 1000 } else { -1000 };
        sample.to_le_bytes()
    }));
    let (mut timestamp, mut sent) = (0u32, 0u64);
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..FLOOD_BATCH {
            session
                .send_audio(timestamp, &payload)
                .map_err(|e| failed("send", e.to_string()))?;
            timestamp += 23;
        }
        let out = session.transmit();
        if socket.write_all(out).is_err() {
            break;
        }
        sent += out.len() as u64;
        let len = out.len();
        session.advance(len);
    }
    Ok(sent)
}

/// A publisher sending as fast as its socket takes (minutes of audio a second) is read at most
/// a budget per turn, so a player of the capture's stream keeps its audio: all of it, without a
/// timestamp gap, the clean tone. The longest wait between two messages is printed.
#[test]
fn a_flooding_publisher_does_not_starve_a_player() -> Result<(), HarnessError> {
    use common::rtmp_client::{self, Continuity, End, PlayPlan};
    use std::sync::atomic::{AtomicBool, Ordering};
    TempDir::run("limits-flood", |dir| {
        let mut z = Zerocast::start(&["--source", "tone:440", "--codec", "pcm"], &[], None, dir)?;
        let (stop, port) = (AtomicBool::new(false), z.port);
        let (sent, played) = std::thread::scope(|scope| {
            // The session's 512 KiB transmit buffer is built on the stack before it is boxed.
            let flood = std::thread::Builder::new()
                .stack_size(8 << 20)
                .spawn_scoped(scope, || flood_publisher(port, &stop))
                .map_err(|e| HarnessError::io("spawn", e))?;
            let played = z.wait_log("publish live/flood", LIMIT).and_then(|_| {
                let mut plan = PlayPlan::new(port, FLOOD_PLAY);
                plan.keep_payload = true;
                rtmp_client::play(&plan)
            });
            stop.store(true, Ordering::Relaxed);
            let sent = flood.join().unwrap_or_else(|_| {
                Err(HarnessError::Failed {
                    what: "flooding publisher".into(),
                    detail: "panicked".into(),
                })
            });
            Ok::<_, HarnessError>((sent, played))
        })?;
        let (sent, log) = (sent?, played?);
        let c = Continuity::of(&log.messages);
        println!(
            "the flood sent {} MiB; the player beside it: {:.3} s of audio, {}, longest wait \
             {} ms",
            sent >> 20,
            c.audio_s,
            c.describe_gaps(),
            c.longest_stall.as_millis()
        );
        assert_eq!(log.end, End::Deadline);
        assert!(c.gaps.is_empty(), "{}", c.describe_gaps());
        let least = FLOOD_PLAY.as_secs_f64() - 1.0;
        assert!(c.audio_s >= least, "{:.3} s of audio", c.audio_s);
        let wav = rtmp_client::pcm_to_wav(&log.messages);
        let report = check_tone(&wav, 440.0, least, 25.0, "player beside the flood")?;
        assert_eq!(report.discontinuities, 0);
        z.stop_cleanly()
    })
}
