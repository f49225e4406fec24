//! End to end, zerocast as an nginx-rtmp `live` server: real publishers in (ffmpeg with every
//! codec the seed's users have, GStreamer's `rtmp2sink` and `rtmpsink`), many streams at once,
//! a publisher lost and replaced while its players stay, who may publish, and the push relay to
//! Debian's nginx-rtmp. Every check is by content: the publisher's tone frequency at the
//! player, no gap, timestamps that never go back.
//!
//! Needs ffmpeg, rtmpdump, gst-launch-1.0 and nginx with libnginx-mod-rtmp (`ci/run.sh setup`);
//! a missing tool skips a test, or fails it when `CI` is set.

mod common;

use std::path::Path;
use std::thread;
use std::time::Duration;

use common::check::check_tone;
use common::flv;
use common::live::{ffmpeg_wav, publish_once, record, rtmpdump_flv, Zerocast};
use common::process::{self, Spawned};
use common::server::{start_nginx_live, NGINX_RTMP_MODULE};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};
use nix::sys::signal::Signal;

/// How long a publisher may take to be publishing, a player to finish, a push to come back.
const LIMIT: Duration = Duration::from_secs(20);
/// How long each player records.
const RECORD: Duration = Duration::from_secs(3);

/// A publisher the seed's users have, as a command line for `url` sending a tone of `hz`.
#[derive(Clone, Copy, Debug)]
enum Publisher {
    /// `ffmpeg -re -f lavfi -i sine -c:a CODEC -ar RATE -f flv URL`.
    Ffmpeg { codec: &'static str, rate: u32 },
    /// GStreamer's own RTMP client, AAC from avenc_aac.
    GstRtmp2sink,
    /// GStreamer's librtmp sink (the OBS library family), MP3 from lamemp3enc.
    GstRtmpsink,
    /// librtmp itself through python-librtmp (`tests/tools/librtmp_publish.py`), publishing an
    /// AAC FLV that ffmpeg made, paced by its timestamps.
    Librtmp,
}

impl Publisher {
    fn tools(self) -> &'static [&'static str] {
        match self {
            Self::Ffmpeg { .. } => &["ffmpeg"],
            Self::GstRtmp2sink | Self::GstRtmpsink => &["gst-launch-1.0"],
            Self::Librtmp => &["ffmpeg", "python3"],
        }
    }

    fn start(self, url: &str, hz: u32, dir: &Path, label: &str) -> Result<Spawned, HarnessError> {
        let log = dir.join(format!("publisher-{label}.log"));
        match self {
            Self::Ffmpeg { codec, rate } => {
                let source = format!("sine=f={hz}:r={rate}");
                let rate = rate.to_string();
                let args = [
                    "-nostdin", "-re", "-f", "lavfi", "-i", &source, "-ac", "2", "-ar", &rate,
                    "-c:a", codec, "-f", "flv", url,
                ];
                process::spawn("ffmpeg", &args, &[], &log)
            }
            Self::Librtmp => {
                let flv = dir.join(format!("{label}.flv"));
                let source = format!("sine=f={hz}:d=30");
                let flv_arg = flv.display().to_string();
                let args = [
                    "-nostdin", "-y", "-f", "lavfi", "-i", &source, "-ac", "2", "-ar", "44100",
                    "-c:a", "aac", "-f", "flv", &flv_arg,
                ];
                let mut make = process::spawn("ffmpeg", &args, &[], &dir.join("make-flv.log"))?;
                if !make.wait_timeout(LIMIT)?.success() {
                    return Err(make.failed("making the FLV for librtmp".to_owned()));
                }
                let script = concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/tools/librtmp_publish.py"
                );
                process::spawn("python3", &[script, &flv_arg, url], &[], &log)
            }
            Self::GstRtmp2sink | Self::GstRtmpsink => {
                let freq = format!("freq={hz}");
                let (encoder, sink, location): (&[&str], &str, String) = match self {
                    Self::GstRtmp2sink => (
                        &["avenc_aac", "!", "aacparse"],
                        "rtmp2sink",
                        format!("location={url}"),
                    ),
                    _ => (
                        &[
                            "lamemp3enc",
                            "target=bitrate",
                            "bitrate=128",
                            "!",
                            "mpegaudioparse",
                        ],
                        "rtmpsink",
                        format!("location={url} live=1"),
                    ),
                };
                let mut args = vec![
                    "-e",
                    "audiotestsrc",
                    "is-live=true",
                    "wave=sine",
                    &freq,
                    "!",
                ];
                args.extend([
                    "audioconvert",
                    "!",
                    "audioresample",
                    "!",
                    "audio/x-raw,rate=44100,channels=2",
                    "!",
                ]);
                args.extend(encoder);
                args.extend(["!", "flvmux", "streamable=true", "!", sink, &location]);
                process::spawn("gst-launch-1.0", &args, &[], &log)
            }
        }
    }
}

/// Starts zerocast with `args` (a pure server unless they name a source).
fn zerocast(args: &[&str], dir: &Path) -> Result<Zerocast, HarnessError> {
    let mut all = vec!["--source", "none", "--join-ms", "0"];
    all.extend(args);
    Zerocast::start(&all, &[("ZEROCAST_STATUS_SECS", "1")], None, dir)
}

/// Records `secs` of `url` with ffmpeg into `dir/NAME.wav`, waiting for it to finish.

#[test]
fn every_publisher_is_heard_on_its_own_stream() -> Result<(), HarnessError> {
    let publishers = [
        (
            "aac",
            Publisher::Ffmpeg {
                codec: "aac",
                rate: 44_100,
            },
        ),
        (
            "mp3",
            Publisher::Ffmpeg {
                codec: "libmp3lame",
                rate: 44_100,
            },
        ),
        (
            "pcm",
            Publisher::Ffmpeg {
                codec: "pcm_s16le",
                rate: 44_100,
            },
        ),
        (
            "adpcm",
            Publisher::Ffmpeg {
                codec: "adpcm_swf",
                rate: 44_100,
            },
        ),
        (
            "aac48",
            Publisher::Ffmpeg {
                codec: "aac",
                rate: 48_000,
            },
        ),
        ("gst2", Publisher::GstRtmp2sink),
        ("gstlibrtmp", Publisher::GstRtmpsink),
        ("librtmp", Publisher::Librtmp),
    ];
    let tools: Vec<&str> = publishers
        .iter()
        .flat_map(|(_, p)| p.tools())
        .copied()
        .collect();
    if !tools_available(&tools)? {
        return Ok(());
    }
    TempDir::run("live-publishers", |dir| {
        let mut server = zerocast(&[], dir)?;
        // All publishers at once: every stream is live at the same time as the others.
        let mut running = Vec::new();
        for (i, (label, publisher)) in publishers.iter().enumerate() {
            let hz = 300 + 100 * i as u32;
            let url = format!("rtmp://127.0.0.1:{}/live/{label}", server.port);
            running.push((
                label,
                hz,
                url.clone(),
                publisher.start(&url, hz, dir, label)?,
            ));
        }
        for (label, _, _, _) in &running {
            server.wait_log(&format!("publish live/{label}"), LIMIT)?;
        }
        let mut failures = Vec::new();
        let players: Vec<_> = running
            .iter()
            .map(|(label, _, url, _)| {
                let wav = dir.join(format!("{label}.wav"));
                ffmpeg_wav(url, RECORD, &wav, &dir.join(format!("player-{label}.log")))
                    .map(|p| (wav, p))
            })
            .collect::<Result<_, _>>()?;
        for ((label, hz, _, _), (wav, mut player)) in running.iter().zip(players) {
            let status = player.wait_timeout(LIMIT)?;
            let result = if status.success() {
                Wav::read(&wav).and_then(|w| check_tone(&w, f64::from(*hz), 1.0, 60.0, label))
            } else {
                Err(player.failed(format!("player of {label} exited with {status}")))
            };
            if let Err(e) = result {
                failures.push(format!("{label}: {e}"));
            }
        }
        server.stop_cleanly()?;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(HarnessError::Failed {
                what: "publishers".to_owned(),
                detail: failures.join("\n"),
            })
        }
    })
}

/// A player of `live/x` records with rtmpdump while the publisher is killed and, 2 s later,
/// replaced (or frozen with SIGSTOP and replaced at once): the player stays connected, its
/// timestamps never go back, and it hears the new publisher's tone.
fn replaced_publisher(
    stop: Signal,
    outage: Duration,
    codec: &'static str,
    label: &str,
) -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "rtmpdump"])? {
        return Ok(());
    }
    TempDir::run(label, |dir| {
        let mut server = zerocast(&[], dir)?;
        let url = format!("rtmp://127.0.0.1:{}/live/x", server.port);
        let pcm = Publisher::Ffmpeg {
            codec,
            rate: 44_100,
        };
        let mut first = pcm.start(&url, 440, dir, "first")?;
        server.wait_log("publish live/x", LIMIT)?;
        let flv_path = dir.join("player.flv");
        let mut player = rtmpdump_flv(&url, &flv_path, &dir.join("player.log"))?;
        server.wait_log("play live/x", LIMIT)?;
        thread::sleep(Duration::from_secs(2)); // the first tone plays a while
        first.signal(stop)?;
        if stop == Signal::SIGKILL {
            server.wait_log("publisher gone", LIMIT)?;
        }
        thread::sleep(outage);
        let mut second = pcm.start(&url, 880, dir, "second")?;
        if stop == Signal::SIGSTOP {
            server.wait_log("takes over", LIMIT)?;
        }
        process::wait_until("two publishes", LIMIT, || {
            Ok(server.log_count("publish live/x") >= 2)
        })?;
        thread::sleep(Duration::from_secs(4)); // the second tone plays a while
        if !player.is_running()? {
            return Err(player.failed("the player disconnected".to_owned()));
        }
        player.signal(Signal::SIGINT)?;
        player.wait_timeout(LIMIT)?;
        let _ = second.signal(Signal::SIGKILL);
        let _ = first.signal(Signal::SIGKILL);
        let tags = flv::read(&flv_path)?;
        let timestamps = flv::audio_timestamps(&tags);
        let largest = flv::check_timestamps(&timestamps, 200)?;
        println!(
            "{label}: {} audio tags, largest step {largest} ms",
            timestamps.len()
        );
        let wav_path = dir.join("player.wav");
        let mut decode = process::spawn(
            "ffmpeg",
            &[
                "-nostdin",
                "-y",
                "-i",
                &flv_path.display().to_string(),
                "-f",
                "wav",
                &wav_path.display().to_string(),
            ],
            &[],
            &dir.join("decode.log"),
        )?;
        decode.wait_timeout(LIMIT)?;
        // The silence the stream made while it had no publisher decodes cleanly too.
        if decode.log().contains("Error while decoding") {
            return Err(decode.failed("the recording does not decode cleanly".to_owned()));
        }
        let wav = Wav::read(&wav_path)?;
        check_tone(
            &wav.head(1.5),
            440.0,
            1.0,
            30.0,
            &format!("{label}: before"),
        )?;
        // The new publisher is heard: the end of the recording is its tone, continuous.
        check_tone(&wav.tail(2.5), 880.0, 1.0, 30.0, &format!("{label}: after"))?;
        server.stop_cleanly()
    })
}

#[test]
fn killed_publisher_is_replaced_and_the_player_stays() -> Result<(), HarnessError> {
    replaced_publisher(
        Signal::SIGKILL,
        Duration::from_secs(2),
        "pcm_s16le",
        "live-killed",
    )
}

#[test]
fn killed_aac_publisher_leaves_aac_silence_and_is_replaced() -> Result<(), HarnessError> {
    replaced_publisher(
        Signal::SIGKILL,
        Duration::from_secs(2),
        "aac",
        "live-killed-aac",
    )
}

#[test]
fn frozen_publisher_is_taken_over_at_once() -> Result<(), HarnessError> {
    replaced_publisher(Signal::SIGSTOP, Duration::ZERO, "pcm_s16le", "live-frozen")
}

#[test]
fn publishing_needs_an_allowed_address_and_the_key() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("live-access", |dir| {
        let mut server = zerocast(&["--allow-publish", "127.0.0.2/32"], dir)?;
        if publish_once(server.port, "k", dir, "outside")? {
            return Err(server
                .process
                .failed("a publisher outside --allow-publish was taken".into()));
        }
        server.wait_log("refused: address not allowed", LIMIT)?;
        server.stop_cleanly()?;
        let mut server = zerocast(&["--publish-key", "s3cret-key"], dir)?;
        for (name, label, refusal) in [
            ("k", "nokey", "no key given"),
            ("k?key=wrong", "wrongkey", "wrong key"),
        ] {
            if publish_once(server.port, name, dir, label)? {
                return Err(server
                    .process
                    .failed(format!("publisher with {label} was taken")));
            }
            server.wait_log(refusal, LIMIT)?;
        }
        if !publish_once(server.port, "k?key=s3cret-key", dir, "rightkey")? {
            return Err(server.process.failed("the right key was refused".into()));
        }
        server.wait_log("publish live/k", LIMIT)?;
        server.stop_cleanly()?;
        // With a capture, its stream is not for publishers.
        let mut server = Zerocast::start(&["--source", "tone"], &[], None, dir)?;
        if publish_once(server.port, "audio", dir, "capture")? {
            return Err(server
                .process
                .failed("a publisher took the capture's stream".into()));
        }
        server.wait_log("the stream is the local capture's", LIMIT)?;
        server.stop_cleanly()
    })
}

#[test]
fn push_relay_to_nginx_survives_an_upstream_restart() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "rtmpdump", "nginx", NGINX_RTMP_MODULE])? {
        return Ok(());
    }
    TempDir::run("live-push", |dir| {
        let nginx_port = process::free_port()?;
        let mut nginx = start_nginx_live(nginx_port, dir)?;
        let push = format!("rtmp://127.0.0.1:{nginx_port}/live/radio");
        let mut server = Zerocast::start(&["--source", "tone", "--push", &push], &[], None, dir)?;
        server.wait_log("publishing", LIMIT)?;
        // zerocast's own player, through the whole outage.
        let own_flv = dir.join("own.flv");
        let mut own = rtmpdump_flv(&server.url, &own_flv, &dir.join("own.log"))?;
        let upstream = format!("rtmp://127.0.0.1:{nginx_port}/live/radio");
        let before = record(&upstream, RECORD, dir, "nginx-before")?;
        check_tone(&before, 440.0, 1.0, 30.0, "nginx player before the restart")?;
        nginx.signal(Signal::SIGKILL)?;
        nginx.wait_timeout(LIMIT)?;
        server.wait_log("retrying", LIMIT)?;
        thread::sleep(Duration::from_secs(5)); // the upstream's outage
        let _nginx = start_nginx_live(nginx_port, dir)?;
        process::wait_until("the push back up", Duration::from_secs(10), || {
            Ok(server.log_count("back up") >= 1)
        })
        .map_err(|e| server.process.failed(e.to_string()))?;
        let after = record(&upstream, RECORD, dir, "nginx-after")?;
        check_tone(&after, 440.0, 1.0, 30.0, "nginx player after the restart")?;
        if !own.is_running()? {
            return Err(own.failed("zerocast's own player disconnected".to_owned()));
        }
        own.signal(Signal::SIGINT)?;
        own.wait_timeout(LIMIT)?;
        let timestamps = flv::audio_timestamps(&flv::read(&own_flv)?);
        let largest = flv::check_timestamps(&timestamps, 100)?;
        println!(
            "own player: {} tags, largest step {largest} ms",
            timestamps.len()
        );
        server.stop_cleanly()
    })
}

/// A hand-driven publisher: handshake, connect, createStream, publish `name`, then whatever the
/// test sends (chunk size 64 KiB, message stream 1). A thread drains what the server sends.
struct RawPublisher {
    socket: std::net::TcpStream,
}

impl RawPublisher {
    const CHUNK: u32 = 65_536;

    fn start(port: u16, name: &str) -> Result<Self, HarnessError> {
        use zerocast_core::command;
        let mut socket = common::rtmp_client::connect_raw(port)?;
        common::rtmp_client::handshake(&mut socket)?;
        let mut drain = socket
            .try_clone()
            .map_err(|e| HarnessError::io("clone", e))?;
        thread::spawn(move || std::io::copy(&mut drain, &mut std::io::sink()));
        let mut p = RawPublisher { socket };
        let tc_url = format!("rtmp://127.0.0.1:{port}/live");
        let mut buf = [0u8; 1024];
        let n = command::encode_connect(&mut buf, 1.0, "live", &tc_url, "FMLE/3.0").unwrap_or(0);
        p.send(
            3,
            zerocast_core::message::COMMAND_AMF0,
            0,
            0,
            &buf[..n],
            128,
        )?;
        p.send(2, 1, 0, 0, &Self::CHUNK.to_be_bytes(), 128)?; // Set Chunk Size
        let n = command::encode_create_stream(&mut buf, 2.0).unwrap_or(0);
        p.send(
            3,
            zerocast_core::message::COMMAND_AMF0,
            0,
            0,
            &buf[..n],
            Self::CHUNK,
        )?;
        let n = command::encode_publish(&mut buf, 3.0, name, "live").unwrap_or(0);
        p.send(
            8,
            zerocast_core::message::COMMAND_AMF0,
            1,
            0,
            &buf[..n],
            Self::CHUNK,
        )?;
        Ok(p)
    }

    fn send(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        body: &[u8],
        chunk: u32,
    ) -> Result<(), HarnessError> {
        use std::io::Write;
        use zerocast_core::chunk::{encode_standalone, standalone_len, MessageHeader};
        let header = MessageHeader {
            csid,
            timestamp,
            length: body.len() as u32,
            type_id,
            stream_id,
        };
        let mut out = vec![0; standalone_len(chunk, &header)];
        let n = encode_standalone(&mut out, chunk, &header, body).unwrap_or(0);
        self.socket
            .write_all(&out[..n])
            .map_err(|e| HarnessError::io("send to zerocast", e))
    }

    /// 20 ms of a 1 kHz PCM tone (44.1 kHz stereo) at `timestamp`.
    fn audio(&mut self, timestamp: u32, phase: &mut f64) -> Result<(), HarnessError> {
        let mut body = vec![0x3F];
        for _ in 0..882 {
            let s = ((*phase).sin() * 8000.0) as i16;
            *phase += 2.0 * std::f64::consts::PI * 1000.0 / 44_100.0;
            body.extend(s.to_le_bytes());
            body.extend(s.to_le_bytes());
        }
        self.send(
            6,
            zerocast_core::message::AUDIO,
            1,
            timestamp,
            &body,
            Self::CHUNK,
        )
    }
}

#[test]
fn hostile_publishers_leave_the_server_serving() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "rtmpdump"])? {
        return Ok(());
    }
    TempDir::run("live-hostile", |dir| {
        let mut server =
            Zerocast::start(&["--source", "tone", "--max-streams", "6"], &[], None, dir)?;
        let port = server.port;
        let rss_before = process::rss_kib(server.process.pid());
        let wav = dir.join("tone.wav");
        let mut player = ffmpeg_wav(
            &server.url,
            Duration::from_secs(8),
            &wav,
            &dir.join("tone.log"),
        )?;
        server.wait_log("play live/audio", LIMIT)?;
        // A video flood: 300 frames of 60 kB, as fast as the socket takes them.
        let mut flood = RawPublisher::start(port, "v")?;
        server.wait_log("publish live/v", LIMIT)?;
        let frame = vec![0x17u8; 60_000];
        for i in 0..300 {
            flood.send(
                4,
                zerocast_core::message::VIDEO,
                1,
                i * 33,
                &frame,
                RawPublisher::CHUNK,
            )?;
        }
        // Metadata at the message-size limit (64 KiB).
        let mut meta = RawPublisher::start(port, "m")?;
        server.wait_log("publish live/m", LIMIT)?;
        let mut body = Vec::new();
        body.extend([0x02, 0x00, 0x0D]);
        body.extend(b"@setDataFrame");
        body.extend([0x02, 0x00, 0x0A]);
        body.extend(b"onMetaData");
        body.extend([0x02, 0xFF, 0x00]);
        body.resize(64 * 1024 - 16, b'x');
        meta.send(
            4,
            zerocast_core::message::DATA_AMF0,
            1,
            0,
            &body,
            RawPublisher::CHUNK,
        )?;
        // Timestamps jumping back and far ahead, with a player of that stream.
        let mut jumpy = RawPublisher::start(port, "t")?;
        server.wait_log("publish live/t", LIMIT)?;
        let t_flv = dir.join("t.flv");
        let mut t_player = rtmpdump_flv(
            &format!("rtmp://127.0.0.1:{port}/live/t"),
            &t_flv,
            &dir.join("t.log"),
        )?;
        let mut phase = 0.0;
        let mut stamps: Vec<u32> = (0..50).map(|i| i * 20).collect();
        stamps.extend((0..50).map(|i| 100 + i * 20)); // back
        stamps.extend((0..50).map(|i| 10_000_000 + i * 20)); // far ahead
        stamps.extend((0..50).map(|i: u32| (u32::MAX - 500).wrapping_add(i * 20))); // wrapping
        server.wait_log("play live/t", LIMIT)?;
        for ts in stamps {
            jumpy.audio(ts, &mut phase)?;
            thread::sleep(Duration::from_millis(20)); // paced like a live publisher
        }
        // A publisher that publishes and then sends nothing is dropped after the timeout.
        let _silent = RawPublisher::start(port, "q")?;
        server.wait_log("publish live/q", LIMIT)?;
        server.wait_log("publisher sent no audio", LIMIT)?;
        let status = player.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(player.failed(format!("tone player exited with {status}")));
        }
        check_tone(
            &Wav::read(&wav)?,
            440.0,
            1.0,
            30.0,
            "tone player during the attacks",
        )?;
        t_player.signal(Signal::SIGINT)?;
        t_player.wait_timeout(LIMIT)?;
        let stamps = flv::audio_timestamps(&flv::read(&t_flv)?);
        let largest = flv::check_timestamps(&stamps, 100)?;
        println!(
            "jumping publisher's player: {} tags, largest step {largest} ms",
            stamps.len()
        );
        let rss_after = process::rss_kib(server.process.pid());
        println!("zerocast RSS: {rss_before} KiB before, {rss_after} KiB after");
        // Four streams of 512 KiB rings and the connections' buffers; a flood kept in memory
        // would be 18 MB.
        if rss_after > rss_before + 8 * 1024 {
            return Err(server
                .process
                .failed(format!("RSS grew from {rss_before} to {rss_after} KiB")));
        }
        drop((flood, meta, jumpy));
        server.stop_cleanly()?;
        // More streams than --max-streams: the capture's (one codec) and one more, then a
        // refusal.
        let mut small = Zerocast::start(
            &["--source", "tone", "--codec", "adpcm", "--max-streams", "2"],
            &[],
            None,
            dir,
        )?;
        let mut one = RawPublisher::start(small.port, "s1")?;
        small.wait_log("publish live/s1", LIMIT)?;
        one.audio(0, &mut phase)?;
        if publish_once(small.port, "s2", dir, "s2")? {
            return Err(small
                .process
                .failed("a stream beyond --max-streams was taken".into()));
        }
        small.wait_log("too many streams", LIMIT)?;
        small.stop_cleanly()
    })
}

#[test]
fn play_rules_and_the_per_address_limit() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("live-play-rules", |dir| {
        // Playing from a denied address is refused with a status, and logged.
        let mut server = Zerocast::start(
            &["--source", "tone", "--deny-play", "127.0.0.0/8"],
            &[],
            None,
            dir,
        )?;
        let wav = dir.join("denied.wav");
        let mut player = ffmpeg_wav(
            &server.url,
            Duration::from_secs(1),
            &wav,
            &dir.join("denied.log"),
        )?;
        if player.wait_timeout(LIMIT)?.success() {
            return Err(player.failed("a denied address played".into()));
        }
        server.wait_log("play live/audio refused: address not allowed", LIMIT)?;
        server.stop_cleanly()?;
        // The third connection from one address is closed at once.
        let mut server =
            Zerocast::start(&["--source", "tone", "--max-per-addr", "2"], &[], None, dir)?;
        let _first = common::rtmp_client::connect_raw(server.port)?;
        let _second = common::rtmp_client::connect_raw(server.port)?;
        let mut third = common::rtmp_client::connect_raw(server.port)?;
        server.wait_log("connections from this address", LIMIT)?;
        let closed = common::rtmp_client::wait_closed(
            &mut third,
            std::time::Instant::now(),
            LIMIT,
            "the third connection",
        )?;
        println!("third connection closed after {:?}", closed.after);
        server.stop_cleanly()
    })
}
