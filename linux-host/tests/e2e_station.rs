//! Running a station (issue 21), on one zerocast: listeners seen and capped. A stream's
//! `max_listeners` refuses the next HTTP listener with Icecast's `403 max listeners reached` (and
//! the next RTMP player), `max_listeners_per_addr` the next one from the same address;
//! `/admin/listclients` lists the listeners in Icecast's XML behind the admin password;
//! `max_listener_duration` ends a listener (which heard the tone until then); each listener
//! leaves one line of Icecast's access log (combined format + seconds connected), read back by a
//! strict parser of that format with the seconds within 1 s of the time measured here; the day's
//! counts (peak, unique addresses, time listened) in the JSON API and the metrics.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use common::check::check_tone;
use common::http::get;
use common::live::Zerocast;
use common::process::{self, Spawned};
use common::rtmp_client;
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

/// Upper bound of every wait.
const LIMIT: Duration = Duration::from_secs(20);
/// `max_listener_duration` of the stream, seconds.
const MAX_DURATION_S: u64 = 4;
/// base64("admin:hackme").
const ADMIN: &str = "YWRtaW46aGFja21l";
/// The User-Agent the ffmpeg listener sends.
const AGENT: &str = "station-test/1.0 (\"quoted\")";

fn failed(what: &str, detail: impl Into<String>) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail: detail.into(),
    }
}

/// An HTTP listener from `from` on a raw socket: sends the request, returns the socket and the
/// status line's code with the head's rest of what was read.
fn listen_from(
    port: u16,
    from: Ipv4Addr,
    path: &str,
) -> Result<(TcpStream, u16, String), HarnessError> {
    let mut s = rtmp_client::connect_raw_from(port, from)?;
    s.set_read_timeout(Some(LIMIT))
        .map_err(|e| HarnessError::io("set read timeout", e))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: raw/{from}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| HarnessError::io("write request", e))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((s, code, text))
}

/// The body after a refusal's head (it is short and the server closes after it).
fn rest(mut s: TcpStream) -> String {
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// One line of Icecast's access log, parsed strictly:
/// `ADDR - USER [DD/Mon/YYYY:HH:MM:SS ZONE] "REQUEST" STATUS BYTES "REFERER" "AGENT" SECONDS`.
#[derive(Debug)]
struct Line {
    addr: String,
    request: String,
    status: u16,
    bytes: u64,
    referer: String,
    agent: String,
    seconds: u64,
}

fn parse_line(line: &str) -> Result<Line, String> {
    let bad = |why: &str| format!("{why}: {line}");
    let (addr, rest) = line.split_once(" - ").ok_or_else(|| bad("no ' - '"))?;
    addr.parse::<std::net::IpAddr>()
        .map_err(|_| bad("address"))?;
    let (user, rest) = rest.split_once(" [").ok_or_else(|| bad("no date"))?;
    if user.is_empty() || user.contains(' ') {
        return Err(bad("user"));
    }
    let (date, rest) = rest.split_once("] ").ok_or_else(|| bad("date end"))?;
    let (day_time, zone) = date.split_once(' ').ok_or_else(|| bad("zone"))?;
    let parts: Vec<&str> = day_time.split(['/', ':']).collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let numeric = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    let date_ok = parts.len() == 6
        && numeric(parts[0], 2)
        && months.contains(&parts[1])
        && numeric(parts[2], 4)
        && numeric(parts[3], 2)
        && numeric(parts[4], 2)
        && numeric(parts[5], 2)
        && zone.len() == 5
        && (zone.starts_with('+') || zone.starts_with('-'))
        && numeric(&zone[1..], 4);
    if !date_ok {
        return Err(bad("date format"));
    }
    let (request, rest) = quoted(rest).ok_or_else(|| bad("request"))?;
    let rest = rest.strip_prefix(' ').ok_or_else(|| bad("after request"))?;
    let (status, rest) = rest.split_once(' ').ok_or_else(|| bad("status"))?;
    let (bytes, rest) = rest.split_once(' ').ok_or_else(|| bad("bytes"))?;
    let (referer, rest) = quoted(rest).ok_or_else(|| bad("referer"))?;
    let rest = rest.strip_prefix(' ').ok_or_else(|| bad("after referer"))?;
    let (agent, rest) = quoted(rest).ok_or_else(|| bad("agent"))?;
    let seconds = rest.strip_prefix(' ').ok_or_else(|| bad("seconds"))?;
    Ok(Line {
        addr: addr.to_owned(),
        request,
        status: status.parse().map_err(|_| bad("status number"))?,
        bytes: bytes.parse().map_err(|_| bad("bytes number"))?,
        referer,
        agent,
        seconds: seconds.parse().map_err(|_| bad("seconds number"))?,
    })
}

/// A `"..."` field at the start of `s` with Apache's escapes (`\"`, `\\`, `\xHH`); the field
/// unescaped and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some((String::from_utf8(out).ok()?, &body[i + 1..])),
            b'\\' => {
                match *bytes.get(i + 1)? {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'x' => {
                        let hex = body.get(i + 2..i + 4)?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
                i += 2;
            }
            b if (0x20..0x7f).contains(&b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    None
}

/// A number after `"key":` in a JSON text (flat search: the keys used are unique).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let end = json[at..].find([',', '}'])? + at;
    json[at..end].parse().ok()
}

#[test]
fn listeners_are_capped_listed_timed_and_logged() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("station-listeners", |dir| {
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        let log_path = dir.join("access.log");
        let config = dir.join("zerocast.toml");
        std::fs::write(
            &config,
            format!(
                "max_listeners_per_addr = 1\nmax_listener_duration = {MAX_DURATION_S}\n\n\
                 [http]\naccess_log = \"{}\"\n\n\
                 [[stream]]\nname = \"live/audio\"\nmax_listeners = 2\n",
                log_path.display()
            ),
        )
        .map_err(|e| HarnessError::io("write config", e))?;
        let args = [
            "--config",
            config.to_str().unwrap_or_default(),
            "--source",
            "tone:440",
            "--codec",
            "aac",
            "--http",
            &http,
            "--admin-password",
            "hackme",
        ];
        let mut z = Zerocast::start(&args, &[], None, dir)?;
        process::wait_for_port(http_port, LIMIT, &mut z.process)?;
        let base = format!("http://{http}");
        let mount = "/live/audio.aac";

        // Listener A: ffmpeg from 127.0.0.1, with a User-Agent that needs escaping.
        let wav = dir.join("a.wav");
        let a_started = Instant::now();
        let mut a: Spawned = process::spawn(
            "ffmpeg",
            &[
                "-nostdin",
                "-y",
                "-user_agent",
                AGENT,
                "-i",
                &format!("{base}{mount}"),
                "-t",
                "15",
                "-f",
                "wav",
                &wav.display().to_string(),
            ],
            &[],
            &dir.join("a.log"),
        )?;
        z.wait_log("HTTP listener of /live/audio.aac", LIMIT)?;

        // B, from the same address: refused by the per-address cap.
        let (b, code, _) = listen_from(http_port, Ipv4Addr::LOCALHOST, mount)?;
        let body = rest(b);
        println!("B (127.0.0.1 again): {code} {}", body.trim());
        if code != 403 || body.trim() != "too many listeners from this address" {
            return Err(failed("the per-address cap", format!("{code} {body}")));
        }

        // C, from another address: the stream's second listener.
        let c_from = Ipv4Addr::new(127, 0, 0, 2);
        let (mut c, code, _) = listen_from(http_port, c_from, mount)?;
        let c_started = Instant::now();
        if code != 200 {
            return Err(failed("the second listener", code.to_string()));
        }

        // D, from a third address: the stream is full, Icecast's answer.
        let (d, code, head) = listen_from(http_port, Ipv4Addr::new(127, 0, 0, 3), mount)?;
        let body = rest(d);
        println!(
            "D (third listener): {}",
            head.lines().next().unwrap_or_default()
        );
        if code != 403 || body.trim() != "max listeners reached" {
            return Err(failed("max_listeners over HTTP", format!("{code} {body}")));
        }
        // An RTMP player from a fourth address is refused as well.
        let socket = rtmp_client::connect_raw_from(z.port, Ipv4Addr::new(127, 0, 0, 4))?;
        let (_refused, started) = rtmp_client::request_on(socket, z.port, "audio", false)?;
        if started {
            return Err(failed("max_listeners over RTMP", "the play started"));
        }
        z.wait_log("max listeners reached (max_listeners)", LIMIT)?;

        // The admin lists both listeners, Icecast's way; without the password, 401.
        let list = format!("{base}/admin/listclients?mount={mount}");
        let (code, _) = get(&list, None)?;
        if code != 401 {
            return Err(failed("listclients without the password", code.to_string()));
        }
        let (code, xml) = get(&list, Some(ADMIN))?;
        println!("listclients: {code} {xml}");
        let expected = [
            "<icestats><source mount=\"/live/audio.aac\"><Listeners>2</Listeners>",
            "<IP>127.0.0.1</IP><UserAgent>station-test/1.0 (&quot;quoted&quot;)</UserAgent>",
            "<IP>127.0.0.2</IP><UserAgent>raw/127.0.0.2</UserAgent>",
            "<Connected>",
        ];
        if code != 200 || expected.iter().any(|e| !xml.contains(e)) {
            return Err(failed("listclients", xml));
        }

        // Both are ended at max_listener_duration; A heard the tone until then.
        let mut sink = [0u8; 4096];
        let mut c_bytes = 0usize;
        loop {
            match c.read(&mut sink) {
                Ok(0) => break,
                Ok(n) => c_bytes += n,
                Err(e) => return Err(HarnessError::io("read C", e)),
            }
        }
        let c_seconds = c_started.elapsed().as_secs_f64();
        a.wait_timeout(LIMIT)?;
        let a_seconds = a_started.elapsed().as_secs_f64();
        println!("C ended by the server after {c_seconds:.2} s ({c_bytes} bytes); A after {a_seconds:.2} s");
        let tone = check_tone(
            &Wav::read(&wav)?,
            440.0,
            MAX_DURATION_S as f64 - 1.5,
            100.0,
            "A",
        )?;
        println!("A heard: {tone:?}");

        // An RTMP player, now that there is room: it stays a moment and leaves.
        let (player, started) = rtmp_client::request(z.port, "audio", false)?;
        let r_started = Instant::now();
        if !started {
            return Err(failed("an RTMP player after the others left", "refused"));
        }
        std::thread::sleep(Duration::from_millis(1500));
        drop(player);
        let r_seconds = r_started.elapsed().as_secs_f64();
        process::wait_until("three access-log lines", LIMIT, || {
            Ok(std::fs::read_to_string(&log_path).is_ok_and(|t| t.lines().count() >= 3))
        })?;

        // The access log: one strict line per listener, refusals not being listeners.
        let text = std::fs::read_to_string(&log_path)
            .map_err(|e| HarnessError::io("read the access log", e))?;
        println!("access log:\n{text}");
        let lines: Vec<Line> = text
            .lines()
            .map(parse_line)
            .collect::<Result<_, _>>()
            .map_err(|e| failed("an access-log line", e))?;
        if lines.len() != 3 {
            return Err(failed("access-log lines", text.clone()));
        }
        let find = |addr: &str, agent: &str| {
            lines
                .iter()
                .find(|l| l.addr == addr && l.agent == agent)
                .ok_or_else(|| failed("an access-log line", format!("{addr} {agent}: {text}")))
        };
        let la = find("127.0.0.1", AGENT)?;
        let lc = find("127.0.0.2", "raw/127.0.0.2")?;
        let lr = find("127.0.0.1", "-")?;
        for (l, request, measured) in [
            (la, "GET /live/audio.aac HTTP/1.1", MAX_DURATION_S as f64),
            (lc, "GET /live/audio.aac HTTP/1.1", c_seconds),
            (lr, "PLAY /live/audio RTMP", r_seconds),
        ] {
            println!(
                "{} {:?}: logged {} s, measured {measured:.2} s, {} bytes",
                l.addr, l.request, l.seconds, l.bytes
            );
            if l.request != request
                || l.status != 200
                || l.bytes == 0
                || l.referer != "-"
                || (l.seconds as f64 - measured).abs() > 1.0
            {
                return Err(failed(
                    "an access-log line",
                    format!("{l:?}, measured {measured:.2} s"),
                ));
            }
        }

        // The day's counts: two at once at most, two addresses, the time of all three.
        let (_, json) = get(&format!("{base}/api/v1/streams"), None)?;
        let audience = &json[json.find("\"audience\"").unwrap_or(0)..];
        println!("audience: {audience}");
        let total = json_number(audience, "listening_seconds_total").unwrap_or(-1.0);
        let logged: u64 = lines.iter().map(|l| l.seconds).sum();
        if json_number(audience, "peak") != Some(2.0)
            || json_number(audience, "unique_addresses") != Some(2.0)
            || (total - logged as f64).abs() > 2.0
        {
            return Err(failed("the day's counts", audience.to_owned()));
        }
        let (_, metrics) = get(&format!("{base}/metrics"), None)?;
        for sample in [
            "zerocast_listeners_peak_today 2",
            "zerocast_listener_addresses_today 2",
        ] {
            if !metrics.lines().any(|l| l == sample) {
                return Err(failed("metrics", format!("no {sample}")));
            }
        }
        z.stop_cleanly()
    })
}

/// The strict parser rejects what is not the format (so it cannot pass anything).
#[test]
fn the_parser_is_strict() {
    let good = "10.0.0.1 - - [07/Dec/2026:13:39:42 +0000] \"GET /a.mp3 HTTP/1.1\" 200 5 \"-\" \"x\\\"y\\x0a\" 3";
    let l = parse_line(good).unwrap();
    assert_eq!((l.agent.as_str(), l.seconds), ("x\"y\n", 3));
    for bad in [
        "10.0.0.1 - - [07/Dec/2026:13:39:42 +0000] \"GET /a.mp3 HTTP/1.1\" 200 5 \"-\" \"x\"",
        "10.0.0.1 - - [7/Dec/2026:13:39:42 +0000] \"GET /a.mp3 HTTP/1.1\" 200 5 \"-\" \"x\" 3",
        "10.0.0.1 - - [07/Dec/2026:13:39:42] \"GET /a.mp3 HTTP/1.1\" 200 5 \"-\" \"x\" 3",
        "10.0.0.1 - - [07/Dec/2026:13:39:42 +0000] \"GET \"a\" HTTP/1.1\" 200 5 \"-\" \"x\" 3",
        "host - - [07/Dec/2026:13:39:42 +0000] \"GET /a.mp3 HTTP/1.1\" 200 5 \"-\" \"x\" 3",
    ] {
        assert!(parse_line(bad).is_err(), "{bad}");
    }
}
