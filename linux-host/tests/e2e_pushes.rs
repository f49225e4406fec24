//! End to end: pushes under the faults a Pi meets unattended, and the secrets they carry
//! (issue 19).
//!
//! - A push configured before its stream is published waits without a timer: the process
//!   spends (almost) no CPU while it waits, and the push starts with the publisher; an
//!   nginx-rtmp player of the upstream hears the tone. The push's key (planted in the URL's
//!   name and query) appears in no log line, report or metric.
//! - A push to a host whose resolver never answers (a UDP socket on 127.0.0.77:53 that reads
//!   nothing, named by the `resolv.conf` of a mount namespace zerocast runs in): zerocast's own
//!   player hears the tone without a gap while the lookups hang, `/stat` keeps answering, and
//!   the push logs the failure once and keeps retrying.
//! - Every secret planted (config file, key file, environment, push URLs) and used by real
//!   clients is in none of `ps`, the log, the page, the reports and the HLS playlist.
//!
//! Needs ffmpeg, nginx with the RTMP module, `unshare` and root for the namespace (a missing
//! tool skips the test, or fails it when `CI` is set).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common::check::check_tone;
use common::live::{ffmpeg_wav, record, Zerocast};
use common::process::{self, Spawned};
use common::server::{start_nginx_live, NGINX_RTMP_MODULE};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

/// Bound on every wait: against a hang, not a timing check.
const LIMIT: Duration = Duration::from_secs(30);
/// A key planted in push URLs: it must never leave the process.
const SECRET: &str = "pl4nted-K3Y-zc";

/// CPU seconds (user + system) the process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Result<f64, HarnessError> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| HarnessError::io("read /proc/PID/stat", e))?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name, in
    // USER_HZ ticks, which Linux fixes at 100 for /proc whatever the kernel's own tick.
    Ok((ticks(11) + ticks(12)) as f64 / 100.0)
}

/// GET `path` from `addr` on its own connection: status code and body.
fn get(addr: &str, path: &str) -> Result<(u16, String), HarnessError> {
    let mut s = TcpStream::connect(addr).map_err(|e| HarnessError::io("connect", e))?;
    s.set_read_timeout(Some(LIMIT))
        .map_err(|e| HarnessError::io("timeout", e))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| HarnessError::io("write", e))?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .map_err(|e| HarnessError::io("read", e))?;
    let text = String::from_utf8_lossy(&all).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, text))
}

/// `curl` GET of `path` from the local address `from` (all of 127.0.0.0/8 reaches the
/// loopback): the head and the body.
fn get_from(from: &str, addr: &str, path: &str) -> Result<String, HarnessError> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--interface", from])
        .arg(format!("http://{addr}{path}"))
        .output()
        .map_err(|e| HarnessError::io("curl", e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The reports a stranger can fetch.
const REPORTS: [&str; 3] = ["/stat", "/metrics", "/api/v1/streams"];

/// Fails if the planted key is anywhere in zerocast's log or its reports.
fn check_secret_kept(server: &Spawned, http: &str) -> Result<(), HarnessError> {
    let mut places = vec![("log", server.log())];
    for path in REPORTS {
        places.push((path, get(http, path)?.1));
    }
    for (place, text) in places {
        if text.contains(SECRET) {
            return Err(server.failed(format!("the push key is in the {place}")));
        }
    }
    Ok(())
}

/// `ffmpeg -re` publishing the 440 Hz tone in AAC to `url`.
fn publish_tone(url: &str, dir: &Path) -> Result<Spawned, HarnessError> {
    process::spawn(
        "ffmpeg",
        &[
            "-nostdin",
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440",
            "-ac",
            "2",
            "-ar",
            "44100",
            "-c:a",
            "aac",
            "-f",
            "flv",
            url,
        ],
        &[],
        &dir.join("publisher.log"),
    )
}

#[test]
fn a_push_waiting_for_its_publisher_costs_nothing_and_starts_with_it() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl", "nginx", NGINX_RTMP_MODULE])? {
        return Ok(());
    }
    TempDir::run("push-waits", |dir| {
        let nginx_port = process::free_port()?;
        let _nginx = start_nginx_live(nginx_port, dir)?;
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        // The key in the name's query and the name as a platform would have it.
        let config = dir.join("zerocast.toml");
        fs::write(
            &config,
            format!(
                "[[push]]\nurl = \"rtmp://127.0.0.1:{nginx_port}/live/radio?key={SECRET}\"\n\
                 stream = \"live/radio\"\n"
            ),
        )
        .map_err(|e| HarnessError::io("write config", e))?;
        let config = config.display().to_string();
        let mut server = Zerocast::start(
            &[
                "--source",
                "none",
                "--config",
                &config,
                "--http",
                &http,
                "--stats-allow",
                "127.0.0.1",
            ],
            &[],
            None,
            dir,
        )?;
        // Nothing is published: the push has nothing to do, and must not spin.
        let pid = server.process.pid();
        let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
        process::wait_until("3 s to pass", LIMIT, || {
            Ok(t0.elapsed() >= Duration::from_secs(3))
        })?;
        let cpu = cpu_seconds(pid)? - cpu0;
        let wall = t0.elapsed().as_secs_f64();
        println!("waiting push: {cpu:.2} CPU-s in {wall:.1} s");
        // A spinning loop spends the whole wall time; a waiting one a few milliseconds.
        if cpu > 0.25 * wall {
            return Err(server
                .process
                .failed(format!("{cpu:.2} CPU-s in {wall:.1} s while waiting")));
        }
        let local = format!("rtmp://127.0.0.1:{}/live/radio", server.port);
        let _publisher = publish_tone(&local, dir)?;
        server.wait_log("publishing", LIMIT)?;
        let upstream = format!("rtmp://127.0.0.1:{nginx_port}/live/radio");
        let heard = record(&upstream, Duration::from_secs(3), dir, "upstream")?;
        check_tone(&heard, 440.0, 2.0, 100.0, "nginx player of the push")?;
        check_secret_kept(&server.process, &http)?;
        // The publisher's address: for --stats-allow, not for a stranger (127.0.0.2 here).
        for path in ["/stat", "/api/v1/streams"] {
            let (_, mine) = get(&http, path)?;
            let stranger = get_from("127.0.0.2", &http, path)?;
            let shown = |t: &str| t.contains("<address>127.") || t.contains("\"addr\":\"127.");
            let cors = |t: &str| t.contains("Access-Control-Allow-Origin: *");
            if !shown(&mine) || cors(&mine) || shown(&stranger) || !cors(&stranger) {
                return Err(server.process.failed(format!(
                    "{path}: addresses for --stats-allow only, wildcard CORS for the rest:\n\
                     {mine}\n---\n{stranger}"
                )));
            }
        }
        let (_, metrics) = get(&http, "/metrics")?;
        let shown = format!("rtmp://127.0.0.1:{nginx_port}/live/…");
        if !metrics.contains(&shown) {
            return Err(server
                .process
                .failed(format!("/metrics does not show the push as {shown}")));
        }
        server.stop_cleanly()
    })
}

#[test]
fn a_resolver_that_never_answers_stalls_nobody() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "unshare", "mount"])? {
        return Ok(());
    }
    TempDir::run("push-dns", |dir| {
        // The resolver: it takes every query and answers none.
        let resolver = match UdpSocket::bind("127.0.0.77:53") {
            Ok(socket) => socket,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                println!("skipped: port 53 and a mount namespace need root");
                return Ok(());
            }
            Err(e) => return Err(HarnessError::io("bind 127.0.0.77:53", e)),
        };
        let resolv = dir.join("resolv.conf");
        fs::write(&resolv, "nameserver 127.0.0.77\n")
            .map_err(|e| HarnessError::io("write resolv.conf", e))?;
        let port = process::free_port()?;
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        let push = format!("rtmp://upstream.zerocast.test:1935/live/{SECRET}");
        let mut argv = vec![
            "-m".to_owned(),
            "sh".to_owned(),
            "-c".to_owned(),
            "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"".to_owned(),
            resolv.display().to_string(),
        ];
        argv.extend(process::zerocast_argv());
        argv.extend(
            [
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--source",
                "tone:440",
                "--http",
                &http,
                "--push",
                "env:ZC_PUSH",
            ]
            .map(str::to_owned),
        );
        let mut server = process::spawn(
            "unshare",
            &argv,
            &[("RUST_LOG", "info"), ("ZC_PUSH", &push)],
            &dir.join("zerocast.log"),
        )?;
        process::wait_for_port(port, LIMIT, &mut server)?;
        process::wait_for_port(http_port, LIMIT, &mut server)?;
        // The player records across the first lookup's whole timeout (10 s) and its retry.
        let url = format!("rtmp://127.0.0.1:{port}/live/audio");
        let wav = dir.join("player.wav");
        let mut player = ffmpeg_wav(&url, Duration::from_secs(14), &wav, &dir.join("player.log"))?;
        let mut slowest = Duration::ZERO;
        let mut answers = 0;
        while player.is_running()? {
            let asked = Instant::now();
            let (code, _) = get(&http, "/stat")?;
            if code != 200 {
                return Err(server.failed(format!("/stat answered {code}")));
            }
            slowest = slowest.max(asked.elapsed());
            answers += 1;
            process::wait_until("the next /stat", LIMIT, || {
                Ok(asked.elapsed() >= Duration::from_millis(250) || !player.is_running()?)
            })?;
        }
        let status = player.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(player.failed(format!("player exited with {status}")));
        }
        println!("/stat: {answers} answers while the resolver hung, slowest {slowest:?}");
        let report = check_tone(
            &Wav::read(&wav)?,
            440.0,
            13.0,
            500.0,
            "player during hung DNS",
        )?;
        println!(
            "longest player gap while DNS hangs: {:.1} ms",
            report.longest_gap_ms
        );
        let failed = "resolving upstream.zerocast.test: no answer";
        process::wait_until("the lookup to time out", LIMIT, || {
            Ok(server.log().contains(failed))
        })
        .map_err(|e| server.failed(e.to_string()))?;
        let warnings = server
            .log()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("push"))
            .count();
        if warnings != 1 {
            return Err(server.failed(format!("{warnings} push warnings, expected the one")));
        }
        check_secret_kept(&server, &http)?;
        drop(resolver);
        let status = server.terminate(process::DROP_GRACE)?;
        if !status.success() {
            return Err(server.failed(format!("exited with {status} on SIGTERM")));
        }
        Ok(())
    })
}

/// Every secret zerocast holds, planted where a user would put it (the config file, a key file
/// named on the command line, an environment variable) and used by real clients (a publisher
/// and players with their keys, the admin URL with its password, a push whose key is in its
/// name and query): none is in `ps` (the command line), the log, the page or any report.
#[test]
fn planted_secrets_appear_nowhere() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "curl", "nginx", NGINX_RTMP_MODULE])? {
        return Ok(());
    }
    TempDir::run("secrets", |dir| {
        let nginx_port = process::free_port()?;
        let _nginx = start_nginx_live(nginx_port, dir)?;
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        let secrets = [
            "publish-9f1c-secret",
            "play-77ab-secret",
            "admin-3e3e-secret",
            "stream-5d2a-secret",
            "push-name-c0de-secret",
            "push-query-beef-secret",
        ];
        let [publish, play, admin, stream_key, push_name, push_query] = secrets;
        let config = dir.join("zerocast.toml");
        fs::write(
            &config,
            format!(
                "source = \"tone\"\n[access]\nplay_key = \"{play}\"\n\
                 [[stream]]\nname = \"live/studio\"\nkey = \"{stream_key}\"\n\
                 push = [\"rtmp://127.0.0.1:{nginx_port}/live/{push_name}?k={push_query}\"]\n"
            ),
        )
        .map_err(|e| HarnessError::io("write config", e))?;
        let key_file = dir.join("publish.key");
        fs::write(&key_file, format!("{publish}\n"))
            .map_err(|e| HarnessError::io("write key", e))?;
        let config_arg = config.display().to_string();
        let key_arg = format!("file:{}", key_file.display());
        let mut server = Zerocast::start(
            &[
                "--config",
                &config_arg,
                "--publish-key",
                &key_arg,
                "--admin-password",
                "env:ZC_ADMIN",
                "--http",
                &http,
            ],
            &[("ZC_ADMIN", admin)],
            None,
            dir,
        )?;
        let port = server.port;
        // The stream's own key publishes live/studio, which is pushed on.
        let studio = format!("rtmp://127.0.0.1:{port}/live/studio?key={stream_key}");
        let _studio = publish_tone(&studio, dir)?;
        server.wait_log("publishing", LIMIT)?;
        // The general key, a player with the play key, an HTTP listener with it, the admin.
        let other = format!("rtmp://127.0.0.1:{port}/live/other?key={publish}");
        let _other = process::spawn(
            "ffmpeg",
            &[
                "-nostdin",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=f=660",
                "-c:a",
                "aac",
                "-f",
                "flv",
                &other,
            ],
            &[],
            &dir.join("other.log"),
        )?;
        server.wait_log("publish live/other", LIMIT)?;
        let heard = record(
            &format!("rtmp://127.0.0.1:{port}/live/audio?key={play}"),
            Duration::from_secs(2),
            dir,
            "player",
        )?;
        check_tone(&heard, 440.0, 1.5, 100.0, "player with the play key")?;
        let admin_url = format!(
            "http://{http}/admin/metadata?mount=/live/studio.aac&mode=updinfo&song=Planted"
        );
        let answer = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-u"])
            .arg(format!("admin:{admin}"))
            .arg(&admin_url)
            .output()
            .map_err(|e| HarnessError::io("curl", e))?;
        if !String::from_utf8_lossy(&answer.stdout).contains("Metadata update successful") {
            return Err(server
                .process
                .failed("the admin password was refused".into()));
        }
        let listener = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "2"])
            .arg(format!("http://{http}/live/studio.aac?key={play}"))
            .status()
            .map_err(|e| HarnessError::io("curl", e))?;
        println!("HTTP listener with the play key: curl {listener}");
        let cmdline = fs::read(format!("/proc/{}/cmdline", server.process.pid()))
            .map_err(|e| HarnessError::io("cmdline", e))?;
        let mut places = vec![
            ("ps", String::from_utf8_lossy(&cmdline).replace('\0', " ")),
            ("page", get(&http, "/")?.1),
            ("log", server.process.log()),
        ];
        for path in REPORTS {
            places.push((path, get(&http, path)?.1));
        }
        places.push((
            "HLS playlist",
            get(&http, &format!("/live/studio.m3u8?key={play}"))?.1,
        ));
        for (place, text) in &places {
            for secret in secrets {
                if text.contains(secret) {
                    return Err(server.process.failed(format!("{secret} is in the {place}")));
                }
            }
        }
        println!(
            "{} places searched for {} secrets: none found",
            places.len(),
            secrets.len()
        );
        server.stop_cleanly()
    })
}

/// An upstream frozen (SIGSTOP of nginx-rtmp, master and workers) for 20 s: zerocast's own
/// player never notices, the push is declared dead (its pings go unanswered) and retried, and
/// it is back up after SIGCONT; the JSON API counts the reconnection.
#[test]
fn a_frozen_upstream_is_declared_dead_and_the_push_comes_back() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "nginx", NGINX_RTMP_MODULE])? {
        return Ok(());
    }
    TempDir::run("push-frozen", |dir| {
        let nginx_port = process::free_port()?;
        let mut nginx = start_nginx_live(nginx_port, dir)?;
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        let push = format!("rtmp://127.0.0.1:{nginx_port}/live/radio");
        let mut server = Zerocast::start(
            &["--source", "tone", "--push", "env:ZC_PUSH", "--http", &http],
            &[("ZC_PUSH", &push)],
            None,
            dir,
        )?;
        server.wait_log("publishing", LIMIT)?;
        let wav = dir.join("own.wav");
        let mut own = ffmpeg_wav(
            &server.url,
            Duration::from_secs(36),
            &wav,
            &dir.join("own.log"),
        )?;
        server.wait_log("play live/audio", LIMIT)?;
        nginx.signal(nix::sys::signal::Signal::SIGSTOP)?;
        let stopped = Instant::now();
        server.wait_log("retrying", LIMIT)?;
        println!(
            "push declared dead {:.1} s after the upstream froze",
            stopped.elapsed().as_secs_f64()
        );
        process::wait_until("20 s of a frozen upstream", LIMIT, || {
            Ok(stopped.elapsed() >= Duration::from_secs(20))
        })?;
        nginx.signal(nix::sys::signal::Signal::SIGCONT)?;
        let resumed = Instant::now();
        server.wait_log("back up", LIMIT)?;
        println!(
            "push back up {:.1} s after SIGCONT",
            resumed.elapsed().as_secs_f64()
        );
        let (_, api) = get(&http, "/api/v1/streams")?;
        if !api.contains("\"up\":true") || !api.contains("\"reconnects\":1") {
            return Err(server.process.failed(format!(
                "the API does not show the push back up once: {api}"
            )));
        }
        let status = own.wait_timeout(LIMIT)?;
        if !status.success() {
            return Err(own.failed(format!("zerocast's own player exited with {status}")));
        }
        check_tone(
            &Wav::read(&wav)?,
            440.0,
            30.0,
            100.0,
            "own player while the upstream froze",
        )?;
        server.stop_cleanly()
    })
}

/// A push without a stream name pushes each published stream for as long as it is published,
/// as nginx-rtmp's `push` does: when the publisher leaves, its push ends and the stream is
/// released, instead of being kept alive (pushing silence) by its push forever.
#[test]
fn a_nameless_push_ends_with_its_publisher() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "nginx", NGINX_RTMP_MODULE])? {
        return Ok(());
    }
    TempDir::run("push-nameless", |dir| {
        let nginx_port = process::free_port()?;
        let _nginx = start_nginx_live(nginx_port, dir)?;
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        let push = format!("rtmp://127.0.0.1:{nginx_port}/live");
        let mut server = Zerocast::start(
            &["--source", "none", "--push", "env:ZC_PUSH", "--http", &http],
            &[("ZC_PUSH", &push)],
            None,
            dir,
        )?;
        process::wait_for_port(http_port, LIMIT, &mut server.process)?;
        let local = format!("rtmp://127.0.0.1:{}/live/p", server.port);
        let mut publisher = process::spawn(
            "ffmpeg",
            &[
                "-nostdin",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=f=440:d=4",
                "-c:a",
                "aac",
                "-f",
                "flv",
                &local,
            ],
            &[],
            &dir.join("publisher.log"),
        )?;
        server.wait_log("publishing", LIMIT)?;
        let listed = |api: &str| api.contains("\"name\":\"p\"");
        if !listed(&get(&http, "/api/v1/streams")?.1) {
            return Err(server
                .process
                .failed("live/p is not listed while published".into()));
        }
        publisher.wait_timeout(LIMIT)?;
        server.wait_log("publisher gone", LIMIT)?;
        process::wait_until("live/p released", LIMIT, || {
            Ok(!listed(&get(&http, "/api/v1/streams")?.1))
        })
        .map_err(|e| server.process.failed(e.to_string()))?;
        let (_, api) = get(&http, "/api/v1/streams")?;
        if !api.contains("\"pushes\":[]") {
            return Err(server
                .process
                .failed(format!("the push of live/p outlived its publisher: {api}")));
        }
        server.stop_cleanly()
    })
}
