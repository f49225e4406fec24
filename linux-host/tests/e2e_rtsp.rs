//! RTSP listeners (issue 22): ffmpeg (as Home Assistant's stream component and go2rtc run it)
//! and GStreamer's `rtspsrc` play `rtsp://HOST:PORT/live/audio_CODEC` over TCP (interleaved)
//! and UDP for the AAC, MP3 and PCM renditions of one capture, all at once, each judged by
//! content (the tone's frequency, its duration, no gaps). Meanwhile three hostile clients —
//! an absurd `Content-Length`, an interleaved flood, one that plays and never reads — are each
//! dealt with on their own connection, and the players' recordings show the rest stayed whole.
//! The play key is RTMP's (`?key=` in the URL, wrong ones locking the address out), an RTMP
//! publisher's 48 kHz AAC plays at its true rate, and a codec change ends the session.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::check::check_tone;
use common::live::Zerocast;
use common::process::{self, Spawned};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};
use nix::sys::signal::Signal;

/// Upper bound of every wait.
const LIMIT: Duration = Duration::from_secs(30);
/// Seconds of audio each player records.
const PLAY_S: f64 = 3.0;
/// The capture's tone.
const HZ: f64 = 440.0;
/// The play key (in every player's URL, `?key=`).
const KEY: &str = "s3cret-play";
/// What the flooding client sends: far beyond any player's RTCP, and bounded to spare the
/// machine's other work (it takes the loop about a second to read).
const FLOOD_BYTES: u64 = 512 << 20;
/// Bytes per second of the decoded audio (44.1 kHz stereo s16).
const BYTES_PER_S: f64 = 44_100.0 * 4.0;

fn failed(what: &str, detail: impl Into<String>) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail: detail.into(),
    }
}

/// One player of one rendition over one transport.
struct Player {
    label: String,
    raw: std::path::PathBuf,
    process: Spawned,
    /// GStreamer records until stopped; ffmpeg stops itself after [`PLAY_S`].
    stopped_by_us: bool,
}

/// Starts `program` (`ffmpeg` or `gst`) on `url` over `transport`, writing raw s16le stereo.
fn player(program: &str, url: &str, transport: &str, dir: &Path) -> Result<Player, HarnessError> {
    let codec = url.rsplit('_').next().and_then(|c| c.split('?').next());
    let codec = codec.unwrap_or("");
    let label = format!("{program}-{codec}-{transport}");
    let raw = dir.join(format!("{label}.raw"));
    let log = dir.join(format!("{label}.log"));
    let out = raw.display().to_string();
    let t = format!("{PLAY_S}");
    let process = if program == "ffmpeg" {
        let args = [
            "-nostdin",
            "-y",
            "-rtsp_transport",
            transport,
            "-i",
            url,
            "-t",
            &t,
            "-f",
            "s16le",
            "-ac",
            "2",
            "-ar",
            "44100",
            &out,
        ];
        process::spawn("ffmpeg", &args, &[], &log)?
    } else {
        let pipeline = format!(
            "rtspsrc location={url} protocols={transport} ! decodebin ! audioconvert ! \
             audioresample ! audio/x-raw,format=S16LE,layout=interleaved,rate=44100,channels=2 ! \
             filesink location={out}"
        );
        let args: Vec<&str> = ["-e", "-q"]
            .into_iter()
            .chain(pipeline.split(' '))
            .collect();
        process::spawn("gst-launch-1.0", &args, &[], &log)?
    };
    Ok(Player {
        label,
        raw,
        process,
        stopped_by_us: program != "ffmpeg",
    })
}

/// Waits for a player's recording: ffmpeg's exit, or GStreamer's file holding a little more
/// than [`PLAY_S`] (then SIGINT: `-e` ends the pipeline with EOS). Returns its audio.
fn recording(p: &mut Player) -> Result<Wav, HarnessError> {
    if p.stopped_by_us {
        let enough = ((PLAY_S + 0.3) * BYTES_PER_S) as u64;
        process::wait_until(&format!("{} to record", p.label), LIMIT, || {
            Ok(std::fs::metadata(&p.raw).map_or(0, |m| m.len()) >= enough)
        })
        .map_err(|e| p.process.failed(e.to_string()))?;
        p.process.stop(Signal::SIGINT, Duration::from_secs(3))?;
    } else {
        let status = p.process.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(p.process.failed(format!("exited with {status}")));
        }
    }
    let bytes = std::fs::read(&p.raw).map_err(|e| HarnessError::io("read recording", e))?;
    let samples = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    Ok(Wav {
        sample_rate: 44_100,
        channels: 2,
        samples,
    })
}

/// Sends `request` on a new connection and returns what the server sent until it closed or
/// [`LIMIT`] passed, and whether it closed.
fn absurd_request(host: &str, request: &[u8]) -> Result<(String, bool), HarnessError> {
    let mut s = TcpStream::connect(host).map_err(|e| HarnessError::io("connect", e))?;
    s.set_read_timeout(Some(LIMIT))
        .map_err(|e| HarnessError::io("timeout", e))?;
    s.write_all(request)
        .map_err(|e| HarnessError::io("write", e))?;
    let mut all = Vec::new();
    let closed = match s.read_to_end(&mut all) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(_) => false,
    };
    Ok((String::from_utf8_lossy(&all).into_owned(), closed))
}

/// The status line `DESCRIBE url` is answered with (a stream answers 404 until its first
/// audio).
fn describe(host: &str, url: &str) -> Result<String, HarnessError> {
    let s = TcpStream::connect(host).map_err(|e| HarnessError::io("connect", e))?;
    describe_on(s, url)
}

/// The whole reply to `DESCRIBE url` (head and SDP), read until the server closes or
/// [`LIMIT`] passes.
fn describe_sdp(host: &str, url: &str) -> Result<String, HarnessError> {
    let mut s = TcpStream::connect(host).map_err(|e| HarnessError::io("connect", e))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| HarnessError::io("timeout", e))?;
    let request =
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\nTEARDOWN * RTSP/1.0\r\nCSeq: 2\r\n\r\n");
    s.write_all(request.as_bytes())
        .map_err(|e| HarnessError::io("write", e))?;
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    Ok(String::from_utf8_lossy(&all).into_owned())
}

/// [`describe`] on the connection `s`.
fn describe_on(mut s: TcpStream, url: &str) -> Result<String, HarnessError> {
    let request = format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    s.set_read_timeout(Some(LIMIT))
        .map_err(|e| HarnessError::io("timeout", e))?;
    s.write_all(request.as_bytes())
        .map_err(|e| HarnessError::io("write", e))?;
    let mut reply = [0u8; 64];
    let n = s
        .read(&mut reply)
        .map_err(|e| HarnessError::io("read", e))?;
    let text = String::from_utf8_lossy(&reply[..n]);
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// Starts playing `url` over TCP on `s` (DESCRIBE, SETUP, PLAY), reading only the replies
/// before PLAY's.
fn play_tcp(s: &mut TcpStream, url: &str) -> Result<(), String> {
    let requests = format!(
        "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n\
         SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    );
    s.write_all(requests.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    s.set_read_timeout(Some(LIMIT)).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    let session = loop {
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before SETUP's reply".to_owned());
        }
        all.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&all);
        if let Some(line) = text.lines().find(|l| l.starts_with("Session: ")) {
            break line["Session: ".len()..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_owned();
        }
    };
    let play = format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n");
    s.write_all(play.as_bytes())
        .map_err(|e| format!("write: {e}"))
}

/// A player of `url` over TCP that floods interleaved frames (64 KiB each, where a player's
/// RTCP reports are ~100 bytes), [`FLOOD_BYTES`] in all, then asks `OPTIONS` on the same
/// connection, and goes on playing (reading all it is sent) until `stop`; returns the bytes
/// flooded and whether `OPTIONS` was answered.
fn flood(host: String, url: String, stop: Receiver<()>) -> JoinHandle<Result<(u64, bool), String>> {
    thread::spawn(move || {
        let mut s = TcpStream::connect(&host).map_err(|e| format!("connect: {e}"))?;
        play_tcp(&mut s, &url)?;
        let mut reader = s.try_clone().map_err(|e| e.to_string())?;
        let drain = thread::spawn(move || {
            let (mut tail, mut buf, mut replied) = (Vec::new(), [0u8; 16384], false);
            let needle = b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n";
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                replied |= tail.windows(needle.len()).any(|w| w == needle);
                // Keep only what a reply could straddle.
                let keep = tail.len().saturating_sub(needle.len());
                tail.drain(..keep);
            }
            replied
        });
        let mut frame = vec![0u8; 4 + 0xFFFF];
        frame[..4].copy_from_slice(&[b'$', 1, 0xFF, 0xFF]);
        let mut sent = 0u64;
        while sent < FLOOD_BYTES {
            s.write_all(&frame).map_err(|e| format!("flood: {e}"))?;
            sent += frame.len() as u64;
        }
        s.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 7\r\n\r\n")
            .map_err(|e| format!("options: {e}"))?;
        let _ = stop.recv_timeout(LIMIT);
        let _ = s.shutdown(Shutdown::Both);
        let replied = drain.join().map_err(|_| "drain panicked".to_owned())?;
        Ok((sent, replied))
    })
}

/// Plays `url` over TCP with a 4 KiB receive buffer and never reads after PLAY; the
/// connection is returned so that it stays open until the test drops it.
fn never_reads(host: &str, url: &str) -> Result<TcpStream, HarnessError> {
    let mut s = TcpStream::connect(host).map_err(|e| HarnessError::io("connect", e))?;
    nix::sys::socket::setsockopt(&s.as_fd(), nix::sys::socket::sockopt::RcvBuf, &4096)
        .map_err(|e| HarnessError::io("SO_RCVBUF", e.into()))?;
    play_tcp(&mut s, url).map_err(|e| failed("never-reading client", e))?;
    Ok(s)
}

#[test]
fn ffmpeg_and_gstreamer_play_rtsp_over_tcp_and_udp_beside_hostile_clients(
) -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "gst-launch-1.0"])? {
        return Ok(());
    }
    TempDir::run("rtsp", |dir| {
        let rtsp_port = process::free_port()?;
        let rtsp = format!("127.0.0.1:{rtsp_port}");
        let http = format!("127.0.0.1:{}", process::free_port()?);
        let mut z = Zerocast::start(
            &[
                "--source",
                "tone:440",
                "--codec",
                "adpcm,aac,mp3,pcm",
                "--rtsp",
                &rtsp,
                "--http",
                &http,
                "--play-key",
                KEY,
                "--idle-timeout-ms",
                "2000",
            ],
            &[],
            None,
            dir,
        )?;
        process::wait_for_port(rtsp_port, LIMIT, &mut z.process)?;
        let base = format!("rtsp://{rtsp}/live/audio");
        for codec in ["aac", "mp3", "pcm"] {
            let url = format!("{base}_{codec}?key={KEY}");
            process::wait_until(&format!("{url} to have audio"), LIMIT, || {
                Ok(describe(&rtsp, &url)? == "RTSP/1.0 200 OK")
            })?;
        }
        // RTMP's play key: none or a wrong one is refused.
        for url in [format!("{base}_aac"), format!("{base}_aac?key=wrong")] {
            let status = describe(&rtsp, &url)?;
            println!("{url}: {status}");
            if status != "RTSP/1.0 403 Forbidden" {
                return Err(failed("play key", format!("{url} answered {status}")));
            }
        }
        // Five wrong keys from one address lock it out, as over RTMP and HTTP: the right key
        // is then refused unchecked from there, and still taken from elsewhere.
        let guesser = Ipv4Addr::new(127, 0, 0, 9);
        let mut answers = Vec::new();
        for i in 0..5 {
            let s = common::rtmp_client::connect_raw_from(rtsp_port, guesser)?;
            answers.push(describe_on(s, &format!("{base}_aac?key=guess-{i}-xyz"))?);
        }
        let s = common::rtmp_client::connect_raw_from(rtsp_port, guesser)?;
        let right = describe_on(s, &format!("{base}_aac?key={KEY}"))?;
        let elsewhere = describe(&rtsp, &format!("{base}_aac?key={KEY}"))?;
        println!("guesses: {answers:?}, then the right key: {right:?}, elsewhere: {elsewhere:?}");
        if right != "RTSP/1.0 403 Forbidden" || elsewhere != "RTSP/1.0 200 OK" {
            return Err(failed(
                "wrong keys",
                "the guessing address was not locked out alone",
            ));
        }

        // Hostile first: an absurd body is refused before any of it is read.
        let started = Instant::now();
        let (reply, closed) = absurd_request(
            &rtsp,
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999999999\r\n\r\n",
        )?;
        println!(
            "absurd Content-Length: closed {closed} after {:?}, reply {reply:?}",
            started.elapsed()
        );
        if !closed || !reply.is_empty() {
            return Err(failed(
                "absurd Content-Length",
                "the connection was not closed",
            ));
        }
        let (stop, stopped) = channel();
        let flooder = flood(rtsp.clone(), format!("{base}_aac?key={KEY}"), stopped);
        let _silent = never_reads(&rtsp, &format!("{base}_pcm?key={KEY}"))?;

        let mut players = Vec::new();
        for codec in ["aac", "mp3", "pcm"] {
            for transport in ["tcp", "udp"] {
                for program in ["ffmpeg", "gst"] {
                    let url = format!("{base}_{codec}?key={KEY}");
                    players.push(player(program, &url, transport, dir)?);
                }
            }
        }
        let mut problems = Vec::new();
        for p in &mut players {
            let checked = recording(p).and_then(|wav| check_tone(&wav, HZ, PLAY_S, 25.0, &p.label));
            if let Err(e) = checked {
                problems.push(format!("{}: {e}", p.label));
            }
        }
        // The flooding player still plays: the reports count it.
        let (_, metrics) = common::http::get(&format!("http://{http}/metrics"), None)?;
        let line = "zerocast_listeners{app=\"live\",name=\"audio_aac\",protocol=\"rtsp\"}";
        let count = metrics.lines().find_map(|l| l.strip_prefix(line));
        println!("metrics: {line}{count:?}");
        if count != Some(" 1") {
            problems.push(format!("/metrics: {line}{count:?}, expected 1"));
        }
        let _ = stop.send(());
        let flooded = flooder
            .join()
            .map_err(|_| failed("flood", "thread panicked"))?
            .map_err(|e| failed("flood", e))?;
        println!(
            "interleaved flood: {} MiB, OPTIONS answered after it: {}",
            flooded.0 >> 20,
            flooded.1
        );
        if !flooded.1 {
            problems.push("flood: no reply to OPTIONS after it".to_owned());
        }
        let stalled = z.wait_log("closed: not reading for", LIMIT);
        println!("never-reading client: {stalled:?}");
        if stalled.is_err() {
            problems.push("the client that never reads was not closed".to_owned());
        }
        if z.log_count(KEY) != 0 {
            problems.push("the play key is in the log".to_owned());
        }
        if z.log_count("RTSP request body too long") != 1 {
            problems.push("the absurd Content-Length was not logged once".to_owned());
        }
        z.stop_cleanly()?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(failed("RTSP players", problems.join("\n")))
        }
    })
}

/// A stream an RTMP publisher feeds (AAC at 48 kHz, a rate the FLV header byte cannot say) is
/// served over RTSP at its true rate: the SDP's clock and config come from the publisher's
/// AudioSpecificConfig. When a publisher of another codec takes the name over, the RTSP session
/// ends (its SDP no longer holds) and the next `DESCRIBE` describes the new codec.
#[test]
fn a_published_48k_aac_stream_plays_over_rtsp() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("rtsp-published", |dir| {
        let rtsp_port = process::free_port()?;
        let rtsp = format!("127.0.0.1:{rtsp_port}");
        let mut z = Zerocast::start(&["--source", "none", "--rtsp", &rtsp], &[], None, dir)?;
        process::wait_for_port(rtsp_port, LIMIT, &mut z.process)?;
        let publish = format!("rtmp://127.0.0.1:{}/live/radio", z.port);
        let args = [
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=f=1000:r=48000",
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-f",
            "flv",
            &publish,
        ];
        let _publisher = process::spawn("ffmpeg", &args, &[], &dir.join("publisher.log"))?;
        let url = format!("rtsp://{rtsp}/live/radio");
        process::wait_until(&format!("{url} to have audio"), LIMIT, || {
            Ok(describe(&rtsp, &url)? == "RTSP/1.0 200 OK")
        })?;
        let wav = dir.join("player.wav");
        let out = wav.display().to_string();
        let t = format!("{PLAY_S}");
        let args = [
            "-nostdin",
            "-y",
            "-rtsp_transport",
            "tcp",
            "-i",
            &url,
            "-t",
            &t,
            "-f",
            "wav",
            &out,
        ];
        let mut player = process::spawn("ffmpeg", &args, &[], &dir.join("player.log"))?;
        let status = player.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(player.failed(format!("exited with {status}")));
        }
        let wav = Wav::read(&wav)?;
        println!("published AAC over RTSP: {} Hz", wav.sample_rate);
        if wav.sample_rate != 48_000 {
            return Err(failed("published AAC", format!("{} Hz", wav.sample_rate)));
        }
        check_tone(&wav, 1000.0, PLAY_S, 25.0, "published AAC 48 kHz over RTSP")?;

        // A publisher of another codec takes the name over: the AAC session cannot go on (its
        // SDP said AAC), so it ends, and the player's next DESCRIBE describes MP3.
        let mut player = TcpStream::connect(&rtsp).map_err(|e| HarnessError::io("connect", e))?;
        play_tcp(&mut player, &url).map_err(|e| failed("AAC player", e))?;
        let args = [
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=f=500:r=44100",
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-f",
            "flv",
            &publish,
        ];
        let _mp3 = process::spawn("ffmpeg", &args, &[], &dir.join("publisher-mp3.log"))?;
        let started = Instant::now();
        let mut sink = Vec::new();
        let ended = player.read_to_end(&mut sink).is_ok();
        println!(
            "codec change: the AAC session ended {ended} after {:?} ({} bytes)",
            started.elapsed(),
            sink.len()
        );
        z.wait_log("closed: the stream or its format is gone", LIMIT)?;
        let mut sdp = String::new();
        process::wait_until("the stream to describe MP3", LIMIT, || {
            sdp = describe_sdp(&rtsp, &url)?;
            Ok(sdp.contains("a=rtpmap:14 MPA/90000"))
        })?;
        z.stop_cleanly()
    })
}
