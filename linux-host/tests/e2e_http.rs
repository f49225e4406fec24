//! zerocast's HTTP listeners against real clients on 127.0.0.1: curl, ffmpeg and VLC on the
//! Icecast-style mounts (`.mp3`, `.aac`), HTTP-FLV, fMP4 and HLS, judged by content (frequency,
//! duration, gaps, phase jumps); an ICY client that sees a title changed through Icecast's
//! admin URL; `/stat` (an XML parser) and `/metrics` (Prometheus' parser) counting the players;
//! headless Chromium playing the page near the live edge (MSE with FLAC and AAC, `<audio src>`
//! for MP3), its screenshot kept in target/tmp; a listener staying through a publisher's loss;
//! the play rules; silence reported; the capture clock's drift in `/metrics` (a tone, stdin fed
//! fast and slow); and hostile clients (floods, malformed and oversized requests, listeners that
//! never read, the connection limit, where an idle client gives way to one that asks) leaving an
//! RTMP player's audio whole and memory flat.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::check::{check_tone, decode};
use common::http::get;
use common::live::{ffmpeg_wav, publish_tone, Zerocast};
use common::players::{play_url, Player};
use common::process::{self, Spawned};
use common::wav::Wav;
use common::{python, tools_available, HarnessError, TempDir};
use zerocast_core::adts::AdtsHeader;

/// Upper bound of every wait.
const LIMIT: Duration = Duration::from_secs(20);
/// How long each client listens.
const LISTEN: Duration = Duration::from_secs(3);

/// zerocast with an HTTP listener on a free port; returns it and the HTTP base URL.
fn zerocast(args: &[&str], dir: &Path) -> Result<(Zerocast, String), HarnessError> {
    let port = process::free_port()?;
    let http = format!("127.0.0.1:{port}");
    let mut all = vec![
        "--http",
        &http,
        "--title",
        "Pi radio",
        "--admin-password",
        "hackme-please",
    ];
    all.extend(args);
    let mut z = Zerocast::start(&all, &[], None, dir)?;
    process::wait_for_port(port, LIMIT, &mut z.process)?;
    Ok((z, format!("http://{http}")))
}

/// ffmpeg publishing a `hz` sine with `codec` to `live/NAME` of `z`.
fn publish(
    z: &Zerocast,
    name: &str,
    codec: &str,
    hz: u32,
    dir: &Path,
) -> Result<Spawned, HarnessError> {
    publish_tone(z, name, codec, hz, None, dir, name)
}

/// Waits until `base` serves `path` (a stream's mounts exist from its first audio on).
fn wait_mount(base: &str, path: &str) -> Result<(), HarnessError> {
    let host = base.strip_prefix("http://").unwrap();
    let head = format!("HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    process::wait_until(&format!("{base}{path}"), LIMIT, || {
        Ok(first_line(host, head.as_bytes()).starts_with("HTTP/1.1 200"))
    })
}

/// `curl` saving `url` for `secs` (it ends with "timeout", exit 28, as an endless body does).
fn curl(
    url: &str,
    secs: Duration,
    out: &Path,
    dir: &Path,
    label: &str,
) -> Result<Spawned, HarnessError> {
    let max = format!("{:.1}", secs.as_secs_f64());
    let out = out.display().to_string();
    let args = ["-s", "--max-time", &max, "-o", &out, url];
    process::spawn("curl", &args, &[], &dir.join(format!("curl-{label}.log")))
}

/// The 440 Hz tone for at least `secs` − 0.5 s, no gap over 25 ms, no phase jump.
fn check_heard(wav: &Wav, secs: f64, what: &str) -> Result<(), HarnessError> {
    let report = check_tone(wav, 440.0, secs - 0.5, 25.0, what)?;
    if report.discontinuities > 0 {
        return Err(HarnessError::Failed {
            what: what.to_owned(),
            detail: format!("{} phase jumps", report.discontinuities),
        });
    }
    Ok(())
}

/// Waits for a bounded child and fails with its log unless it ended as curl's `--max-time`
/// (28) or normally.
fn finish(mut p: Spawned, what: &str) -> Result<(), HarnessError> {
    let status = p.wait_timeout(LIMIT)?;
    match status.code() {
        Some(0 | 28) => Ok(()),
        _ => Err(p.failed(format!("{what} exited with {status}"))),
    }
}

/// The players `/stat` lists for `live/NAME` (nclients), read with Python's XML parser.
fn stat_nclients(base: &str, name: &str) -> Result<String, HarnessError> {
    let (_, xml) = get(&format!("{base}/stat"), None)?;
    let script = format!(
        "import sys, xml.etree.ElementTree as ET\n\
         r = ET.fromstring(sys.stdin.buffer.read())\n\
         s = [s for s in r.findall('server/application/live/stream') if s.findtext('name') == '{name}']\n\
         print(s[0].findtext('nclients') if s else 'none', sorted(c.findtext('flashver') for c in (s[0].findall('client') if s else [])))"
    );
    Ok(python(&script, &xml)?.trim().to_owned())
}

/// The listeners `/metrics` counts for `live/NAME`, per protocol, read with prometheus_client.
fn metrics_listeners(base: &str, name: &str) -> Result<String, HarnessError> {
    let (_, text) = get(&format!("{base}/metrics"), None)?;
    let script = format!(
        "import sys\n\
         from prometheus_client.parser import text_string_to_metric_families\n\
         n = {{}}\n\
         for f in text_string_to_metric_families(sys.stdin.read()):\n\
         \x20   for s in f.samples:\n\
         \x20       if s.name == 'zerocast_listeners' and s.labels['name'] == '{name}' and s.value:\n\
         \x20           n[s.labels['protocol']] = int(s.value)\n\
         print(sorted(n.items()))"
    );
    Ok(python(&script, &text)?.trim().to_owned())
}

#[test]
fn capture_is_heard_over_http_flv_and_fmp4_and_counted() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl", "python3"])? {
        return Ok(());
    }
    TempDir::run("http-capture", |dir| {
        let (mut z, base) = zerocast(&["--source", "tone:440", "--codec", "pcm"], dir)?;
        wait_mount(&base, "/live/audio.flv")?;
        let flv = dir.join("curl.flv");
        let long = curl(
            &format!("{base}/live/audio.flv"),
            LISTEN * 3,
            &flv,
            dir,
            "long",
        )?;
        let mp4 = ffmpeg_wav(
            &format!("{base}/live/audio.mp4"),
            LISTEN,
            &dir.join("mp4.wav"),
            &dir.join("mp4.log"),
        )?;
        let flv_player = ffmpeg_wav(
            &format!("{base}/live/audio.flv"),
            LISTEN,
            &dir.join("flv.wav"),
            &dir.join("flv.log"),
        )?;
        let rtmp = ffmpeg_wav(&z.url, LISTEN, &dir.join("rtmp.wav"), &dir.join("rtmp.log"))?;
        // All four connected: /stat and /metrics count them, each by its protocol.
        let mut stat = String::new();
        process::wait_until("/stat to count 4 players", LIMIT, || {
            stat = stat_nclients(&base, "audio")?;
            Ok(stat.starts_with("4 "))
        })?;
        assert_eq!(stat, "4 ['http flv', 'http flv', 'http mp4', 'rtmp']");
        let metrics = metrics_listeners(&base, "audio")?;
        assert_eq!(metrics, "[('flv', 2), ('mp4', 1), ('rtmp', 1)]");
        for (p, what) in [
            (mp4, "ffmpeg .mp4"),
            (flv_player, "ffmpeg .flv"),
            (rtmp, "ffmpeg rtmp"),
        ] {
            finish(p, what)?;
        }
        check_heard(
            &Wav::read(&dir.join("mp4.wav"))?,
            LISTEN.as_secs_f64(),
            "ffmpeg .mp4 (FLAC)",
        )?;
        check_heard(
            &Wav::read(&dir.join("flv.wav"))?,
            LISTEN.as_secs_f64(),
            "ffmpeg .flv (PCM)",
        )?;
        finish(long, "curl .flv")?;
        // curl's file: the burst (what the ring holds, up to 2 s) and 9 s of live audio.
        check_heard(&decode(&flv)?, 9.0, "curl .flv")?;
        z.stop_cleanly()
    })
}

#[test]
fn published_aac_and_mp3_play_as_icecast_mounts_flv_fmp4_and_hls() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl"])? {
        return Ok(());
    }
    TempDir::run("http-mounts", |dir| {
        let (mut z, base) = zerocast(&["--source", "none"], dir)?;
        let _aac = publish(&z, "radio", "aac", 440, dir)?;
        // The MP3 rendition of the same stream, as `--codec aac,mp3` names it.
        let _mp3 = publish(&z, "radio_mp3", "libmp3lame", 440, dir)?;
        wait_mount(&base, "/live/radio.mp3")?;
        // HLS needs segments: wait for a playlist listing three.
        process::wait_until("an HLS playlist of 3 segments", LIMIT, || {
            let (code, body) = get(&format!("{base}/live/radio.m3u8"), None)?;
            Ok(code == 200 && body.matches("#EXTINF").count() >= 3)
        })?;
        let mut jobs = Vec::new();
        for ext in ["aac", "mp3"] {
            let file = dir.join(format!("curl.{ext}"));
            jobs.push((
                curl(&format!("{base}/live/radio.{ext}"), LISTEN, &file, dir, ext)?,
                file,
            ));
        }
        for ext in ["flv", "mp4", "m3u8"] {
            let wav = dir.join(format!("{ext}.wav"));
            let p = ffmpeg_wav(
                &format!("{base}/live/radio.{ext}"),
                LISTEN,
                &wav,
                &dir.join(format!("{ext}.log")),
            )?;
            jobs.push((p, wav));
        }
        for (p, out) in jobs {
            let what = out.file_name().unwrap().to_string_lossy().into_owned();
            finish(p, &what)?;
            let wav = if what.starts_with("curl") {
                decode(&out)?
            } else {
                Wav::read(&out)?
            };
            // At least LISTEN − 0.5 s: curl gets the burst too, players stop after LISTEN.
            check_heard(&wav, LISTEN.as_secs_f64(), &what)?;
        }
        z.stop_cleanly()
    })
}

/// Reads an ICY body from `s` until a metadata block holds `StreamTitle='want';`, returning
/// every title seen (bounded by [`LIMIT`]).
fn read_titles_until(
    s: &mut TcpStream,
    metaint: usize,
    pending: &mut Vec<u8>,
    want: &str,
) -> Result<Vec<String>, HarnessError> {
    let deadline = Instant::now() + LIMIT;
    let mut titles = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        while pending.len() > metaint
            && pending.len() >= metaint + 1 + usize::from(pending[metaint]) * 16
        {
            let len = usize::from(pending[metaint]) * 16;
            let block =
                String::from_utf8_lossy(&pending[metaint + 1..metaint + 1 + len]).into_owned();
            pending.drain(..metaint + 1 + len);
            if let Some(title) = block
                .strip_prefix("StreamTitle='")
                .and_then(|t| t.split("';").next())
            {
                titles.push(title.to_owned());
                if title == want {
                    return Ok(titles);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(HarnessError::Timeout {
                what: format!("title {want:?} (seen {titles:?})"),
                after: LIMIT,
            });
        }
        let n = s
            .read(&mut buf)
            .map_err(|e| HarnessError::io("read icy", e))?;
        if n == 0 {
            return Err(HarnessError::Failed {
                what: "icy listener".into(),
                detail: "closed".into(),
            });
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn icy_listener_sees_the_title_set_through_the_admin_url() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("http-icy", |dir| {
        let (mut z, base) = zerocast(&["--source", "none"], dir)?;
        let _p = publish(&z, "radio", "aac", 440, dir)?;
        z.wait_log("publish live/radio", LIMIT)?;
        let host = base.strip_prefix("http://").unwrap();
        // The mount exists once the first audio made the stream's renditions.
        let mut s = None;
        process::wait_until("the .aac mount", LIMIT, || {
            let mut c = TcpStream::connect(host).map_err(|e| HarnessError::io("connect", e))?;
            c.set_read_timeout(Some(LIMIT)).unwrap();
            write!(
                c,
                "GET /live/radio.aac HTTP/1.1\r\nHost: {host}\r\nIcy-MetaData: 1\r\n\r\n"
            )
            .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") {
                c.read_exact(&mut byte)
                    .map_err(|e| HarnessError::io("read head", e))?;
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            if head.starts_with("HTTP/1.1 200") {
                s = Some((c, head));
            }
            Ok(s.is_some())
        })?;
        let (mut s, head) = s.unwrap();
        println!("{head}");
        let metaint: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("icy-metaint: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("icy-metaint header");
        assert!(
            head.contains("icy-name: Pi radio\r\n") && head.contains("Content-Type: audio/aac\r\n")
        );
        let mut pending = Vec::new();
        let first = read_titles_until(&mut s, metaint, &mut pending, "Pi radio")?;
        assert_eq!(first, ["Pi radio"]);
        // Icecast's admin URL: refused with a wrong password, accepted with the right one.
        let update = format!(
            "{base}/admin/metadata?mount=/live/radio.aac&mode=updinfo&song=Don%27t+Stop+%E2%82%AC"
        );
        let (code, _) = get(&update, Some("YWRtaW46d3Jvbmc="))?; // admin:wrong
        assert_eq!(code, 401);
        let (code, body) = get(&update, Some("YWRtaW46aGFja21lLXBsZWFzZQ=="))?; // admin:hackme-please
        assert_eq!(code, 200, "{body}");
        let seen = read_titles_until(&mut s, metaint, &mut pending, "Don't Stop €")?;
        assert_eq!(
            seen,
            ["Don't Stop €"],
            "the new title comes once, at the next block"
        );
        // The audio between the blocks is the stream's ADTS: it decodes to the tone.
        let mut audio = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while audio.len() < 3 * metaint {
            let n = s.read(&mut buf).map_err(|e| HarnessError::io("read", e))?;
            pending.extend_from_slice(&buf[..n]);
            while pending.len() > metaint
                && pending.len() >= metaint + 1 + usize::from(pending[metaint]) * 16
            {
                let len = usize::from(pending[metaint]) * 16;
                audio.extend_from_slice(&pending[..metaint]);
                pending.drain(..metaint + 1 + len);
            }
        }
        // It starts where the title block left it, inside a frame: from the first ADTS header
        // that another one follows.
        let start = (0..audio.len())
            .find(|&i| {
                AdtsHeader::parse(&audio[i..]).is_ok_and(|(_, len)| {
                    AdtsHeader::parse(audio.get(i + len..).unwrap_or(&[])).is_ok()
                })
            })
            .expect("an ADTS frame");
        // Frame after frame to the end: the metadata blocks were cut out exactly.
        let mut end = start;
        while let Ok((_, len)) = AdtsHeader::parse(&audio[end..]) {
            if end + len > audio.len() {
                break;
            }
            end += len;
        }
        assert!(
            audio.len() - end < 2048,
            "ADTS frames stop at {end} of {}",
            audio.len()
        );
        let file = dir.join("icy.aac");
        std::fs::write(&file, &audio[start..end]).unwrap();
        check_heard(&decode(&file)?, 1.0, "ICY .aac audio")?;
        z.stop_cleanly()
    })
}

/// What one player of the page did, from `http_page.py`'s polls.
#[derive(Debug)]
struct PagePlayer {
    /// Polls in which it was playing, of all polls.
    playing: usize,
    /// Media seconds its `currentTime` advanced while playing.
    advanced: f64,
    /// The largest delay behind the live edge it reported in the second half of its playing
    /// polls (MSE only).
    worst_delay: Option<f64>,
    /// What it plays: its `<audio>`'s source URL.
    src: String,
    /// Its status text.
    info: String,
}

/// Opens the page at `base/?QUERY` in headless Chromium for `secs`, keeps a screenshot at
/// `shot`, and returns what each player did.
fn play_page(
    base: &str,
    query: &str,
    secs: u32,
    shot: &Path,
    dir: &Path,
) -> Result<Vec<PagePlayer>, HarnessError> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http_page.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(format!("{base}/?{query}"))
        .arg(shot)
        .arg(secs.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::io("http_page.py", e))?;
    if !out.status.success() {
        return Err(HarnessError::Failed {
            what: "http_page.py".into(),
            detail: String::from_utf8_lossy(&out.stderr).into(),
        });
    }
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(dir.join(format!("page-{query}.json")), &report).unwrap();
    // One line per player: playing polls, media time advanced, worst late delay, src, info.
    let lines = python(
        "import sys, json\n\
         polls = json.load(sys.stdin)['polls']\n\
         for i in range(max(len(p['players']) for p in polls)):\n\
         \x20   ps = [p['players'][i] for p in polls if len(p['players']) > i and p['players'][i]['state'] == 'playing']\n\
         \x20   late = [p['delay'] for p in ps[len(ps) // 2:] if p['delay'] is not None]\n\
         \x20   print(len(ps), round(ps[-1]['time'] - ps[0]['time'], 2) if ps else 0, max(late) if late else 'none',\n\
         \x20         ps[-1]['src'] if ps else '-', ps[-1]['info'] if ps else '-', sep='\\t')",
        &report,
    )?;
    println!("page ?{query}: playing polls, media s advanced, worst delay s, src, info:\n{lines}");
    Ok(lines
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            PagePlayer {
                playing: f[0].parse().unwrap_or(0),
                advanced: f[1].parse().unwrap_or(0.0),
                worst_delay: f[2].parse().ok(),
                src: f[3].to_owned(),
                info: f[4].to_owned(),
            }
        })
        .collect())
}

#[test]
fn chromium_plays_the_page_near_the_live_edge() -> Result<(), HarnessError> {
    if !tools_available(&["chromium", "python3"])? {
        return Ok(());
    }
    TempDir::run("http-page", |dir| {
        let (mut z, base) = zerocast(&["--source", "tone:440", "--codec", "pcm"], dir)?;
        // Kept as an artifact of the run: target/tmp/zerocast-page.png.
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zerocast-page.png");
        let players = play_page(&base, "autoplay", 8, &shot, dir)?;
        let [p] = &players[..] else {
            panic!("one stream, one player: {players:?}");
        };
        assert!(p.playing >= 16, "{p:?}");
        assert!(p.advanced >= 3.0, "{p:?}");
        let delay = p.worst_delay.expect("an MSE player reports its delay");
        assert!(delay <= 1.0, "{delay} s behind the live edge: {p:?}");
        assert!(
            p.info.starts_with("MSE, flac") && p.src.starts_with("blob:"),
            "{p:?}"
        );
        println!("screenshot: {}", shot.display());
        z.stop_cleanly()
    })
}

#[test]
fn chromium_plays_aac_by_mse_and_mp3_by_audio_src() -> Result<(), HarnessError> {
    if !tools_available(&["chromium", "python3", "ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("http-page-codecs", |dir| {
        let (mut z, base) = zerocast(&["--source", "none"], dir)?;
        let _aac = publish(&z, "radio", "aac", 440, dir)?;
        let _mp3 = publish(&z, "music", "libmp3lame", 440, dir)?;
        wait_mount(&base, "/live/music.mp3")?;
        wait_mount(&base, "/live/radio.mp4")?;
        let shot = dir.join("page-codecs.png");
        let players = play_page(&base, "autoplay", 8, &shot, dir)?;
        assert_eq!(players.len(), 2, "{players:?}");
        for p in &players {
            assert!(p.playing >= 8 && p.advanced >= 2.0, "{p:?}");
        }
        let mse = players
            .iter()
            .find(|p| p.info.starts_with("MSE, mp4a.40.2"));
        let mse = mse.unwrap_or_else(|| panic!("no AAC MSE player: {players:?}"));
        assert!(mse.worst_delay.is_some_and(|d| d <= 1.0), "{mse:?}");
        assert!(
            players.iter().any(|p| p.src.ends_with("/live/music.mp3")),
            "the MP3 stream plays by <audio src>: {players:?}"
        );
        // Without MSE (?nomse, as on iOS before 17.1) the MP3 stream still plays.
        let players = play_page(&base, "autoplay&nomse", 6, &shot, dir)?;
        let mp3 = players.iter().find(|p| p.src.ends_with("/live/music.mp3"));
        assert!(
            mp3.is_some_and(|p| p.playing >= 4 && p.advanced >= 1.0),
            "{players:?}"
        );
        z.stop_cleanly()
    })
}

/// Sends `request` on a new connection and returns the first line of the answer, or what
/// ended the connection (refused connections are closed at once).
fn first_line(host: &str, request: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(host) else {
        return "connect failed".into();
    };
    s.set_read_timeout(Some(LIMIT)).unwrap();
    if s.write_all(request).is_err() {
        return "reset".into();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.contains(&b'\n') {
                    break;
                }
            }
            Err(_) => return "reset".into(),
        }
    }
    if answer.is_empty() {
        return "closed".into();
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn hostile_http_clients_leave_rtmp_players_untouched() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("http-hostile", |dir| {
        let (mut z, base) = zerocast(
            &[
                "--source",
                "tone:440",
                "--codec",
                "pcm",
                "--http-max-clients",
                "8",
                "--handshake-timeout-ms",
                "2000",
            ],
            dir,
        )?;
        let host = base.strip_prefix("http://").unwrap().to_owned();
        wait_mount(&base, "/live/audio.flv")?;
        let pid = z.process.pid();
        let wav = dir.join("rtmp.wav");
        let mut player = ffmpeg_wav(&z.url, Duration::from_secs(8), &wav, &dir.join("rtmp.log"))?;
        z.wait_log("play live/audio", LIMIT)?;
        let rss_before = process::rss_kib(pid);
        // Six listeners that never read: their sockets fill, the ring skips them ahead.
        let mut slow = Vec::new();
        for _ in 0..6 {
            let mut s = TcpStream::connect(&host).map_err(|e| HarnessError::io("connect", e))?;
            s.write_all(b"GET /live/audio.flv HTTP/1.1\r\n\r\n")
                .unwrap();
            slow.push(s);
        }
        // A head that never ends: closed at the header deadline.
        let mut lingering =
            TcpStream::connect(&host).map_err(|e| HarnessError::io("connect", e))?;
        lingering
            .write_all(b"GET /stat HTTP/1.1\r\nX-Slow: ")
            .unwrap();
        lingering.set_read_timeout(Some(LIMIT)).unwrap();
        // A flood of malformed, oversized and excess requests.
        let mut answers = std::collections::BTreeMap::<String, usize>::new();
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        for i in 0..150 {
            let request: &[u8] = match i % 3 {
                0 => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                1 => huge.as_bytes(),
                _ => b"DELETE /live/audio.flv HTTP/1.1\r\n\r\n",
            };
            *answers.entry(first_line(&host, request)).or_default() += 1;
        }
        println!("flood answers: {answers:?}");
        for status in [
            "400 Bad Request",
            "431 Request Header Fields Too Large",
            "405 Method Not Allowed",
        ] {
            assert!(
                answers.keys().any(|k| k.contains(status)),
                "no {status} in {answers:?}"
            );
        }
        let mut rest = Vec::new();
        let n = lingering.read_to_end(&mut rest).unwrap_or(0);
        assert_eq!(n, 0, "the unfinished head got an answer: {rest:?}");
        z.wait_log("no complete request head in time", LIMIT)?;
        // Past the limit of 8: with the slow six and two idle ones holding slots (for the 2 s
        // their heads may take), a ninth takes the slot of the one that has waited longest
        // for a request (slowloris gives way to a client that asks).
        let _seventh = TcpStream::connect(&host).map_err(|e| HarnessError::io("connect", e))?;
        let _eighth = TcpStream::connect(&host).map_err(|e| HarnessError::io("connect", e))?;
        let ninth = first_line(&host, b"GET /stat HTTP/1.1\r\n\r\n");
        assert_eq!(
            ninth, "HTTP/1.1 200 OK",
            "the ninth HTTP connection was not served"
        );
        z.wait_log("evicted: no complete request yet", LIMIT)?;
        let status = player.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(player.failed(format!("RTMP player exited with {status}")));
        }
        check_heard(&Wav::read(&wav)?, 8.0, "RTMP player during the HTTP flood")?;
        let rss_after = process::rss_kib(pid);
        println!("RSS {rss_before} KiB before, {rss_after} KiB after");
        assert!(
            rss_after < rss_before + 8 * 1024,
            "memory grew from {rss_before} to {rss_after} KiB"
        );
        drop(slow);
        z.stop_cleanly()
    })
}

#[test]
fn silence_is_reported_once_in_the_log_the_api_and_the_metrics() -> Result<(), HarnessError> {
    use common::live::{make_fifo, open_fifo_writer};
    use std::sync::mpsc;
    if !tools_available(&["python3"])? {
        return Ok(());
    }
    TempDir::run("http-silence", |dir| {
        // 1 s of a 440 Hz tone, 3 s of digital silence, 2 s of tone, paced in 20 ms writes.
        let rate = 44_100usize;
        let mut pcm = Vec::new();
        for n in 0..rate * 6 {
            let sounding = !(rate..rate * 4).contains(&n);
            let v = if sounding {
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / rate as f64).sin())
                    as i16
            } else {
                0
            };
            pcm.extend(v.to_le_bytes());
            pcm.extend(v.to_le_bytes());
        }
        let fifo = make_fifo(&dir.join("stdin.fifo"))?;
        let (go, wait_go) = mpsc::channel::<()>();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || -> Result<(), HarnessError> {
                let mut file = open_fifo_writer(&fifo, LIMIT)?;
                let _ = wait_go.recv_timeout(LIMIT);
                let start = Instant::now();
                for (i, piece) in pcm.chunks(882 * 4).enumerate() {
                    let due = start + Duration::from_millis(20 * i as u64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    file.write_all(piece)
                        .map_err(|e| HarnessError::io("write stdin", e))?;
                }
                Ok(())
            })
        };
        let port = process::free_port()?;
        let http = format!("127.0.0.1:{port}");
        let args = [
            "--source",
            "stdin",
            "--codec",
            "pcm",
            "--http",
            &http,
            "--silence-s",
            "1",
            "--silence-db",
            "-50",
        ];
        let mut z = Zerocast::start(&args, &[], Some(&fifo), dir)?;
        process::wait_for_port(port, LIMIT, &mut z.process)?;
        go.send(()).ok();
        let base = format!("http://{http}");
        z.wait_log("the input has been silent for 1 s", LIMIT)?;
        let api = |field: &str| -> Result<String, HarnessError> {
            let (_, json) = get(&format!("{base}/api/v1/streams"), None)?;
            let script = format!(
                "import sys, json\ns = json.load(sys.stdin)['streams'][0]\nprint(s['{field}'])"
            );
            Ok(python(&script, &json)?.trim().to_owned())
        };
        assert_eq!(api("silent")?, "True");
        let (_, metrics) = get(&format!("{base}/metrics"), None)?;
        let silence: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("zerocast_silence_seconds{app=\"live\",name=\"audio\"} "))
            .and_then(|v| v.parse().ok())
            .expect("zerocast_silence_seconds");
        assert!(silence >= 1.0, "{metrics}");
        assert!(metrics.contains("zerocast_input_peak_dbfs{app=\"live\",name=\"audio\"} -Inf"));
        z.wait_log("sound is back after 3 s of silence", LIMIT)?;
        assert_eq!(api("silent")?, "False");
        writer.join().unwrap()?;
        assert_eq!(z.log_count("has been silent"), 1);
        assert_eq!(z.log_count("sound is back"), 1);
        Ok(())
    })
}

/// The capture's clock drift `/metrics` reports, read with prometheus_client, once it does.
fn metrics_drift_ppm(base: &str) -> Result<f64, HarnessError> {
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in f.samples:\n\
        \x20       if s.name == 'zerocast_clock_drift_ppm':\n\
        \x20           print(s.value)\n";
    let mut ppm = None;
    process::wait_until("zerocast_clock_drift_ppm in /metrics", LIMIT, || {
        let (_, text) = get(&format!("{base}/metrics"), None)?;
        ppm = python(script, &text)?.trim().parse().ok();
        Ok(ppm.is_some())
    })?;
    Ok(ppm.unwrap())
}

/// zerocast reading a 440 Hz tone on stdin written `speed` times as fast as real time, in
/// 20 ms blocks paced by the clock; returns the drift `/metrics` reports.
fn stdin_drift_at(speed: f64, dir: &Path) -> Result<f64, HarnessError> {
    use common::live::{make_fifo, open_fifo_writer};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let fifo = make_fifo(&dir.join(format!("stdin-{speed}.fifo")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (fifo, stop) = (fifo.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(), HarnessError> {
            let mut file = open_fifo_writer(&fifo, LIMIT)?;
            let start = Instant::now();
            let mut block = Vec::with_capacity(882 * 4);
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) || start.elapsed() > LIMIT * 2 {
                    return Ok(());
                }
                block.clear();
                for n in i * 882..(i + 1) * 882 {
                    let v = (8000.0
                        * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / 44_100.0).sin())
                        as i16;
                    block.extend(v.to_le_bytes());
                    block.extend(v.to_le_bytes());
                }
                let due = start + Duration::from_secs_f64(0.020 * i as f64 / speed);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                file.write_all(&block)
                    .map_err(|e| HarnessError::io("write stdin", e))?;
            }
            Ok(())
        })
    };
    let port = process::free_port()?;
    let http = format!("127.0.0.1:{port}");
    let args = ["--source", "stdin", "--codec", "pcm", "--http", &http];
    let mut z = Zerocast::start(&args, &[], Some(&fifo), dir)?;
    process::wait_for_port(port, LIMIT, &mut z.process)?;
    let ppm = metrics_drift_ppm(&format!("http://{http}"));
    // End of input ends zerocast.
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap()?;
    ppm
}

#[test]
fn the_capture_clock_drift_is_measured_in_ppm() -> Result<(), HarnessError> {
    if !tools_available(&["python3"])? {
        return Ok(());
    }
    TempDir::run("http-drift", |dir| {
        // The tone is paced by the monotonic clock itself: no drift, but for the loop's jitter.
        let (_z, base) = zerocast(&["--source", "tone", "--codec", "pcm"], dir)?;
        let tone = metrics_drift_ppm(&base)?;
        println!("tone: {tone:.1} ppm");
        assert!(tone.abs() < 5_000.0, "tone: {tone} ppm");
        // A producer 25 % fast and 20 % slow: a card whose clock is far off, either way.
        let fast = stdin_drift_at(1.25, dir)?;
        let slow = stdin_drift_at(0.8, dir)?;
        println!("stdin 1.25x: {fast:.0} ppm, 0.8x: {slow:.0} ppm");
        assert!((150_000.0..350_000.0).contains(&fast), "1.25x: {fast} ppm");
        assert!((-300_000.0..-100_000.0).contains(&slow), "0.8x: {slow} ppm");
        Ok(())
    })
}

#[test]
fn curl_asks_for_two_reports_on_one_kept_connection() -> Result<(), HarnessError> {
    if !tools_available(&["curl"])? {
        return Ok(());
    }
    TempDir::run("http-keep-alive", |dir| {
        let (mut z, base) = zerocast(&["--source", "tone", "--codec", "mp3"], dir)?;
        wait_mount(&base, "/live/audio.mp3")?;
        let out = Command::new("curl")
            .args([
                "-sv",
                "--max-time",
                "10",
                "-w",
                "%{http_code} %{num_connects}\\n",
            ])
            .args([format!("{base}/metrics"), format!("{base}/stat")])
            .args(["-o", "/dev/null", "-o", "/dev/null"])
            .output()
            .map_err(|e| HarnessError::io("curl", e))?;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // Both answered, the second on the first one's connection.
        assert_eq!(stdout, "200 1\n200 0\n", "{stderr}");
        assert!(stderr.contains("< Connection: keep-alive"), "{stderr}");
        // An endless body still ends its connection: curl's last request after the audio.
        let out = Command::new("curl")
            .args(["-sv", "--max-time", "2", "-o", "/dev/null"])
            .arg(format!("{base}/live/audio.mp3"))
            .output()
            .map_err(|e| HarnessError::io("curl", e))?;
        assert!(String::from_utf8_lossy(&out.stderr).contains("< Connection: close"));
        z.stop_cleanly()
    })
}

#[test]
fn vlc_plays_the_mp3_mount() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "cvlc", "runuser"])? {
        return Ok(());
    }
    TempDir::run("http-vlc", |dir| {
        let (mut z, base) = zerocast(&["--source", "none"], dir)?;
        let _mp3 = publish(&z, "music", "libmp3lame", 440, dir)?;
        wait_mount(&base, "/live/music.mp3")?;
        let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
        let url = format!("{base}/live/music.mp3");
        let recording = play_url(Player::Vlc, &url, port, LISTEN, dir)?
            .expect("the tools were there a moment ago");
        check_heard(
            &Wav::read(&recording.wav)?,
            LISTEN.as_secs_f64(),
            "VLC .mp3",
        )?;
        z.stop_cleanly()
    })
}

#[test]
fn http_listeners_follow_the_play_rules() -> Result<(), HarnessError> {
    TempDir::run("http-access", |dir| {
        let (mut z, base) = zerocast(
            &[
                "--source",
                "tone:440",
                "--codec",
                "pcm",
                "--play-key",
                "play-key-1",
            ],
            dir,
        )?;
        let host = base.strip_prefix("http://").unwrap();
        // With the key, once the stream's first audio made its formats.
        let keyed = b"HEAD /live/audio.mp4?key=play-key-1 HTTP/1.1\r\n\r\n";
        process::wait_until("the keyed .mp4 mount", LIMIT, || {
            Ok(first_line(host, keyed) == "HTTP/1.1 200 OK")
        })?;
        for (path, status) in [
            ("/live/audio.flv", "HTTP/1.1 403 Forbidden"),
            ("/live/audio.flv?key=wrong", "HTTP/1.1 403 Forbidden"),
            ("/live/audio.mp4?key=play-key-1", "HTTP/1.1 200 OK"),
            ("/stat", "HTTP/1.1 200 OK"),
        ] {
            let line = first_line(host, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
            assert_eq!(line, status, "{path}");
        }
        z.stop_cleanly()
    })
}

#[test]
fn icecast_listener_stays_through_a_publisher_loss_and_hears_the_next_one(
) -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl"])? {
        return Ok(());
    }
    TempDir::run("http-takeover", |dir| {
        let (mut z, base) = zerocast(&["--source", "none"], dir)?;
        let mut first = publish(&z, "x", "aac", 440, dir)?;
        wait_mount(&base, "/live/x.aac")?;
        let file = dir.join("listener.aac");
        let listener = curl(
            &format!("{base}/live/x.aac"),
            Duration::from_secs(9),
            &file,
            dir,
            "x",
        )?;
        std::thread::sleep(Duration::from_secs(2)); // the first tone plays a while
        first.signal(nix::sys::signal::Signal::SIGKILL)?;
        z.wait_log("publisher gone", LIMIT)?;
        std::thread::sleep(Duration::from_secs(1)); // an outage: the stream makes silence
        let _second = publish(&z, "x", "aac", 880, dir)?;
        process::wait_until("the second publish", LIMIT, || {
            Ok(z.log_count("publish live/x") >= 2)
        })?;
        // curl ends at its --max-time, not before: the listener was never dropped.
        let mut listener = listener;
        let status = listener.wait_timeout(LIMIT)?;
        assert_eq!(status.code(), Some(28), "curl ended early: {status}");
        let wav = decode(&file)?;
        check_tone(&wav.head(1.5), 440.0, 1.4, 25.0, "before the loss")?;
        check_tone(&wav.tail(2.0), 880.0, 1.9, 25.0, "after the takeover")?;
        z.stop_cleanly()
    })
}

#[test]
fn captured_aac_and_mp3_renditions_play_on_their_mounts() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl"])? {
        return Ok(());
    }
    TempDir::run("http-renditions", |dir| {
        // `--codec aac,mp3`: live/audio is AAC, live/audio_mp3 its MP3 rendition, and both
        // mounts of live/audio exist.
        let (mut z, base) = zerocast(&["--source", "tone:440", "--codec", "aac,mp3"], dir)?;
        wait_mount(&base, "/live/audio.aac")?;
        wait_mount(&base, "/live/audio.mp3")?;
        let mut jobs = Vec::new();
        for ext in ["aac", "mp3"] {
            let file = dir.join(format!("capture.{ext}"));
            let p = curl(&format!("{base}/live/audio.{ext}"), LISTEN, &file, dir, ext)?;
            jobs.push((p, file));
        }
        for (p, file) in jobs {
            let what = file.display().to_string();
            finish(p, &what)?;
            check_heard(&decode(&file)?, LISTEN.as_secs_f64(), &what)?;
        }
        z.stop_cleanly()
    })
}
