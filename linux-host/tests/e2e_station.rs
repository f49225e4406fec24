//! Running a station (issue 21), on one zerocast: listeners seen and capped. A stream's
//! `max_listeners` refuses the next HTTP listener with Icecast's `403 max listeners reached` (and
//! the next RTMP player), `max_listeners_per_addr` the next one from the same address;
//! `/admin/listclients` lists the listeners in Icecast's XML behind the admin password;
//! `max_listener_duration` ends a listener (which heard the tone until then); each listener
//! leaves one line of Icecast's access log (combined format + seconds connected), read back by a
//! strict parser of that format with the seconds within 1 s of the time measured here, and by
//! goaccess; the day's counts (peak, unique addresses, time listened) in the JSON API and the
//! metrics. And hooks, nginx-rtmp's: allowed, refused, renamed, timed out (refused, while a
//! player of the capture stream plays on without a gap), `run_on_publish` by exit status, and
//! the form of every call field by field against what nginx-rtmp sends to the same hook server.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::check::check_tone;
use common::http::get;
use common::live::Zerocast;
use common::process::{self, Spawned};
use common::rtmp_client::{self, pcm_to_wav, play, Continuity, PlayPlan};
use common::server::{start_nginx_with, NGINX_RTMP_MODULE};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

/// Upper bound of every wait.
const LIMIT: Duration = Duration::from_secs(20);
/// `max_listener_duration` of the stream, seconds.
const MAX_DURATION_S: u64 = 4;
/// The admin password, and base64("admin:station-pw").
const PASSWORD: &str = "station-pw";
const ADMIN: &str = "YWRtaW46c3RhdGlvbi1wdw==";
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

/// goaccess parses the access log as the combined format with Icecast's seconds as the time
/// served: no line fails, and the seconds it sums are the log's.
fn goaccess_reads(log: &Path, lines: &[Line], dir: &Path) -> Result<(), HarnessError> {
    if !tools_available(&["goaccess", "python3"])? {
        return Ok(());
    }
    let json = dir.join("goaccess.json");
    let status = std::process::Command::new("goaccess")
        .arg(log)
        .args([
            "--no-global-config",
            "--log-format",
            r#"%h %^[%d:%t %^] "%r" %s %b "%R" "%u" %T"#,
            "--date-format",
            "%d/%b/%Y",
            "--time-format",
            "%T",
            "-o",
        ])
        .arg(&json)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| HarnessError::io("run goaccess", e))?;
    let summary = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys; d=json.load(open(sys.argv[1])); g=d['general']; \
             print(g['valid_requests'], g['failed_requests'], \
             sum(r['cumts'] for r in d['requests']['data']) // 1000000)",
        ])
        .arg(&json)
        .output()
        .map_err(|e| HarnessError::io("read goaccess's report", e))?;
    let summary = String::from_utf8_lossy(&summary.stdout).trim().to_owned();
    let logged: u64 = lines.iter().map(|l| l.seconds).sum();
    println!(
        "goaccess ({status}): valid, failed, seconds = {summary} (the log: {} lines, {logged} s)",
        lines.len()
    );
    if summary != format!("{} 0 {logged}", lines.len()) {
        return Err(failed("goaccess's reading of the access log", summary));
    }
    Ok(())
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
            PASSWORD,
            // The exec form of on_publish: only `allowed` may be published.
            "--run-on-publish",
            r#"test "$ZEROCAST_NAME/$ZEROCAST_ADDR" = allowed/127.0.0.1"#,
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

        // A real log tool reads it too: goaccess, told the format (combined + seconds as the
        // time served), takes every line and sums the same seconds.
        goaccess_reads(&log_path, &lines, dir)?;

        // run_on_publish: its exit status decides.
        let (_allowed, allowed) = rtmp_client::request(z.port, "allowed", true)?;
        let (_other, other) = rtmp_client::request(z.port, "other", true)?;
        println!("run_on_publish: allowed {allowed}, other {other}");
        if !allowed || other {
            return Err(failed("run_on_publish", format!("{allowed} {other}")));
        }
        z.wait_log(
            "refused by the on_publish hook: the command exit status: 1",
            LIMIT,
        )?;

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

/// One call a hook server received: its path and form fields, in order.
#[derive(Clone, Debug)]
struct Call {
    path: String,
    fields: Vec<(String, String)>,
}

impl Call {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// A small HTTP hook server on 127.0.0.1: records every POST; for paths not under `/nginx`,
/// answers `play`/`publish` by the stream name: `no` 403, `moved` 302 to `moved_here`, `slow`
/// 200 after 5 s, anything else 200 (as every other call but `connect` from 127.0.0.5: 403).
struct HookServer {
    port: u16,
    calls: std::sync::Arc<std::sync::Mutex<Vec<Call>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HookServer {
    fn start() -> Result<Self, HarnessError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| HarnessError::io("bind the hook server", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| HarnessError::io("hook server address", e))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| HarnessError::io("nonblocking", e))?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&calls), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        let c = Arc::clone(&c);
                        std::thread::spawn(move || answer(socket, &c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self { port, calls, stop })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Waits for a call to `path` with `call` and `name`, from a peer that sent `flashver`
    /// (any when empty).
    fn wait(&self, path_prefix: &str, call: &str, name: &str) -> Result<Call, HarnessError> {
        self.wait_from(path_prefix, call, name, "")
    }

    fn wait_from(
        &self,
        path_prefix: &str,
        call: &str,
        name: &str,
        flashver: &str,
    ) -> Result<Call, HarnessError> {
        let found = || {
            self.calls().into_iter().find(|c| {
                c.path.starts_with(path_prefix)
                    && c.get("call") == Some(call)
                    && (name.is_empty() || c.get("name") == Some(name))
                    && (flashver.is_empty() || c.get("flashver") == Some(flashver))
            })
        };
        process::wait_until(&format!("{path_prefix} {call} {name}"), LIMIT, || {
            Ok(found().is_some())
        })?;
        found().ok_or_else(|| failed("a hook call", call))
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads one POST, records it, answers it.
fn answer(mut socket: TcpStream, calls: &std::sync::Mutex<Vec<Call>>) {
    let _ = socket.set_nonblocking(false);
    let _ = socket.set_read_timeout(Some(LIMIT));
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
        if let Some(at) = all.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&all[..at]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (at + 4, length);
        }
    };
    while all.len() < head_end + length {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let body = String::from_utf8_lossy(&all[head_end..]).into_owned();
    let fields: Vec<(String, String)> = body
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let call = Call { path, fields };
    let deciding =
        !call.path.starts_with("/nginx") && matches!(call.get("call"), Some("play" | "publish"));
    let refused_peer = call.get("call") == Some("connect") && call.get("addr") == Some("127.0.0.5");
    let reply = match (deciding, call.get("name")) {
        _ if refused_peer => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        (true, Some("no")) => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        (true, Some("moved")) => {
            "HTTP/1.1 302 Found\r\nLocation: moved_here\r\nContent-Length: 0\r\n\r\n"
        }
        (true, Some("slow")) => {
            std::thread::sleep(Duration::from_secs(5));
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        }
        _ => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    };
    if let Ok(mut c) = calls.lock() {
        c.push(call);
    }
    let _ = socket.write_all(reply.as_bytes());
}

/// Waits for a line of zerocast's log that ends with `end`.
fn wait_line_ending(z: &Zerocast, end: &str) -> Result<(), HarnessError> {
    process::wait_until(&format!("a log line ending with {end:?}"), LIMIT, || {
        Ok(z.process.log().lines().any(|l| l.ends_with(end)))
    })
}

#[test]
fn hooks_decide_and_speak_nginx_rtmps_form() -> Result<(), HarnessError> {
    if !tools_available(&["nginx"])? || !Path::new(NGINX_RTMP_MODULE).exists() {
        return Ok(());
    }
    TempDir::run("station-hooks", |dir| {
        let hooks = HookServer::start()?;
        let mut args: Vec<String> = ["--source", "tone:440", "--codec", "pcm", "--http", "off"]
            .map(String::from)
            .to_vec();
        for call in [
            "connect",
            "play",
            "publish",
            "play-done",
            "publish-done",
            "done",
        ] {
            args.push(format!("--on-{call}"));
            args.push(hooks.url(&format!("/zc/{}", call.replace('-', "_"))));
        }
        args.extend(["--hook-timeout-ms".to_owned(), "3000".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut z = Zerocast::start(&args, &[], None, dir)?;
        let port = z.port;

        // A player of the capture stream, allowed by its hook; it plays through every case.
        let player = std::thread::spawn(move || {
            let mut plan = PlayPlan::new(port, Duration::from_secs(10));
            plan.keep_payload = true;
            play(&plan)
        });
        wait_line_ending(&z, "play live/audio")?;

        let (_ok, started) = rtmp_client::request(port, "ok", true)?;
        println!("publish ok (hook 200): started={started}");
        let (_no, refused) = rtmp_client::request(port, "no", true)?;
        println!("publish no (hook 403): started={refused}");
        let (_moved, renamed) = rtmp_client::request(port, "moved?key=x", true)?;
        println!("publish moved (hook 302 moved_here): started={renamed}");
        wait_line_ending(&z, "publish live/moved_here")?;
        let t0 = Instant::now();
        let (_slow, slow_started) = rtmp_client::request(port, "slow", false)?;
        println!(
            "play slow (hook hangs 5 s, timeout 3 s): started={slow_started} after {:.2} s",
            t0.elapsed().as_secs_f64()
        );
        // on_connect refusing: the connection is closed before it plays.
        let socket = rtmp_client::connect_raw_from(port, Ipv4Addr::new(127, 0, 0, 5))?;
        let (_closed, connect_refused_played) = rtmp_client::request_on(socket, port, "ok", false)?;
        z.wait_log("refused by the on_connect hook: answered 403", LIMIT)?;
        println!("play from 127.0.0.5 (on_connect 403): started={connect_refused_played}");
        if !started || refused || !renamed || slow_started || connect_refused_played {
            return Err(failed(
                "hook verdicts",
                format!("ok {started}, no {refused}, moved {renamed}, slow {slow_started}"),
            ));
        }
        z.wait_log("refused by the on_publish hook: answered 403", LIMIT)?;
        z.wait_log(
            "refused by the on_play hook: no answer within 3000 ms",
            LIMIT,
        )?;

        // The loop served the player all along.
        let log = player
            .join()
            .map_err(|_| failed("the player thread", "panicked"))??;
        let continuity = Continuity::of(&log.messages);
        println!(
            "player of live/audio: {:.2} s of audio, longest wait between messages {} ms, {}",
            continuity.audio_s,
            continuity.longest_stall.as_millis(),
            continuity.describe_gaps()
        );
        check_tone(&pcm_to_wav(&log.messages), 440.0, 6.0, 100.0, "the player")?;
        if continuity.longest_stall > Duration::from_millis(1000) || !continuity.gaps.is_empty() {
            return Err(failed(
                "the player while a hook hung",
                continuity.describe_gaps(),
            ));
        }

        // The done calls, as the publisher and the player are gone.
        drop(_ok);
        hooks.wait("/zc/publish_done", "publish_done", "ok")?;
        hooks.wait("/zc/done", "done", "ok")?;
        hooks.wait("/zc/play_done", "play_done", "audio")?;

        // nginx-rtmp, with the same hooks, and the same requests: the same fields in the same
        // order for every call.
        let nginx_port = process::free_port()?;
        let on = |call: &str| format!("on_{call} {};", hooks.url(&format!("/nginx/{call}")));
        let app: String = ["play", "publish", "play_done", "publish_done", "done"]
            .map(on)
            .join(" ");
        let _nginx = start_nginx_with(nginx_port, dir, &on("connect"), &app)?;
        for port in [nginx_port, z.port] {
            let (publisher, started) = rtmp_client::request(port, "cmp?key=k", true)?;
            let (player, playing) = rtmp_client::request(port, "cmp?key=k", false)?;
            if !started || !playing {
                return Err(failed("publish and play cmp", format!("port {port}")));
            }
            drop(player);
            drop(publisher);
        }
        for call in [
            "connect",
            "play",
            "publish",
            "play_done",
            "publish_done",
            "done",
        ] {
            let name = if call == "connect" { "" } else { "cmp" };
            let theirs = hooks.wait(&format!("/nginx/{call}"), call, name)?;
            // The same client (the same flashVer) on both servers.
            let flashver = theirs.get("flashver").unwrap_or_default();
            let ours = hooks.wait_from(&format!("/zc/{call}"), call, name, flashver)?;
            println!(
                "{call}:\n  nginx-rtmp {:?}\n  zerocast   {:?}",
                theirs.fields, ours.fields
            );
            if ours.keys() != theirs.keys() {
                return Err(failed(
                    &format!("the fields of {call}"),
                    format!("nginx-rtmp {:?}, zerocast {:?}", theirs.keys(), ours.keys()),
                ));
            }
            for same in ["app", "name", "key", "call", "addr", "flashver", "type"] {
                if ours.get(same) != theirs.get(same) {
                    return Err(failed(
                        &format!("{call} {same}"),
                        format!("{ours:?} {theirs:?}"),
                    ));
                }
            }
        }
        z.stop_cleanly()
    })
}
