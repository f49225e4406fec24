//! HTTP hooks, nginx-rtmp's `on_*` notifications so existing scripts work unchanged: what each
//! call sends (an `application/x-www-form-urlencoded` POST with nginx-rtmp's fields, in its
//! order), the blocking call itself (made on the worker, never on the loop), and what an answer
//! means (2xx allows, 3xx with `Location` renames, anything else refuses).
//!
//! nginx-rtmp (`ngx_rtmp_notify_module.c`, `ngx_rtmp_netcall_module.c`) sends, for every call
//! but `connect`, the session's fields `app`, `flashver`, `swfurl`, `tcurl`, `pageurl`, `addr`,
//! `clientid`, then the call's own: `call=publish&name=N&type=live`, `call=play&name=N&start=S&
//! duration=D&reset=R`, `call=publish_done|play_done|done&name=N`, and then the query string of
//! the stream name as it came (`&key=…`); `connect` sends `app`, `flashver`, `swfurl`, `tcurl`,
//! `pageurl`, `addr`, `epoch`, `call=connect`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest hook answer head read (the body is not read).
const MAX_ANSWER: usize = 8 * 1024;

/// A hook's address: `http://HOST[:PORT]/PATH[?QUERY]` (no TLS: a hook runs on the same
/// machine or LAN, as nginx-rtmp's do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookUrl {
    /// Host name or address (no brackets for IPv6).
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path and query, from the `/`.
    pub path: String,
}

impl HookUrl {
    /// Parses `http://HOST[:PORT][/PATH]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        const SHAPE: &str = "http://HOST[:PORT]/PATH";
        let rest = s.strip_prefix("http://").ok_or(SHAPE)?;
        if rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{SHAPE}, without spaces"));
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or(SHAPE)?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'));
        if !host_ok {
            return Err(format!("a host name or address: {SHAPE}"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("a port from 1 to 65535: {SHAPE}"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

impl std::fmt::Display for HookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// The hooks, by nginx-rtmp's directive names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `on_connect`: the peer sent `connect`.
    Connect,
    /// `on_play`: it asks to play (decides).
    Play,
    /// `on_publish`: it asks to publish (decides).
    Publish,
    /// `on_play_done`: a player stopped.
    PlayDone,
    /// `on_publish_done`: a publisher stopped.
    PublishDone,
    /// `on_done`: after either.
    Done,
}

impl Call {
    /// The `call` field.
    pub fn name(self) -> &'static str {
        match self {
            Call::Connect => "connect",
            Call::Play => "play",
            Call::Publish => "publish",
            Call::PlayDone => "play_done",
            Call::PublishDone => "publish_done",
            Call::Done => "done",
        }
    }
}

/// One hook call for the worker: an HTTP POST, or a command (`run_on_publish`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookJob {
    /// POST `body` to `url`.
    Post {
        /// Where.
        url: HookUrl,
        /// The form ([`form`]).
        body: String,
    },
    /// Run `command` with `sh -c`, the request in its environment ([`env`]).
    Exec {
        /// The command line.
        command: String,
        /// `ZEROCAST_*` variables.
        env: Vec<(&'static str, String)>,
    },
}

impl HookJob {
    /// Makes the call, blocking (the worker's side), within `timeout`.
    pub fn call(&self, timeout: Duration) -> Verdict {
        match self {
            HookJob::Post { url, body } => post(url, body, timeout),
            HookJob::Exec { command, env } => exec(command, env, timeout),
        }
    }
}

/// What a peer said of itself in `connect`, kept for its hooks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// `flashVer`.
    pub flashver: String,
    /// `tcUrl`.
    pub tcurl: String,
}

/// What a connection keeps for its hooks (only with hooks configured).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookState {
    /// What it said of itself in `connect`.
    pub peer: PeerInfo,
    /// The id of its `on_connect` call, while unanswered.
    pub connect_job: Option<u64>,
    /// Its play or publish held for the answer of `on_play` / `on_publish`.
    pub pending: Option<Pending>,
}

/// A play or publish held for its hook's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The call's id.
    pub job: u64,
    /// The application as requested, query included.
    pub app: String,
    /// The stream name as requested, query included.
    pub name: String,
    /// Publishing (else playing).
    pub publish: bool,
    /// Past this, no answer refuses.
    pub deadline: zerocast_core::time::Instant,
}

/// One hook's request body. `app` and `name` are as the peer sent them (query included): the
/// query becomes the trailing arguments, as nginx-rtmp appends them.
pub fn form(
    call: Call,
    app: &str,
    name: &str,
    peer: &PeerInfo,
    addr: std::net::IpAddr,
    clientid: u64,
) -> String {
    let (app_base, app_args) = crate::hub::split_query(app);
    let (name_base, name_args) = crate::hub::split_query(name);
    let mut o = String::with_capacity(256);
    let _ = write!(
        o,
        "app={}&flashver={}&swfurl=&tcurl={}&pageurl=&addr={}",
        escape(app_base),
        escape(&peer.flashver),
        escape(&peer.tcurl),
        escape(&addr.to_string())
    );
    if call == Call::Connect {
        // nginx-rtmp's epoch is its session's clock origin; zerocast's is the connection's.
        o.push_str("&epoch=0&call=connect");
        push_args(&mut o, app_args);
        return o;
    }
    let _ = write!(o, "&clientid={clientid}&call={}", call.name());
    if !name_base.is_empty() {
        let _ = write!(o, "&name={}", escape(name_base));
    }
    match call {
        Call::Publish => o.push_str("&type=live"),
        // zerocast does not keep the play's start and duration: a live stream has neither.
        Call::Play => o.push_str("&start=0&duration=0&reset=0"),
        _ => {}
    }
    push_args(&mut o, name_args);
    o
}

/// The environment of a `run_on_*` command, MediaMTX-style: `ZEROCAST_CALL`, `ZEROCAST_APP`,
/// `ZEROCAST_NAME` (without the query), `ZEROCAST_QUERY` (the name's query, key included, for the
/// command to check), `ZEROCAST_ADDR`, `ZEROCAST_CLIENTID`, `ZEROCAST_TCURL`,
/// `ZEROCAST_FLASHVER`.
pub fn env(
    call: Call,
    app: &str,
    name: &str,
    peer: &PeerInfo,
    addr: IpAddr,
    clientid: u64,
) -> Vec<(&'static str, String)> {
    let (name_base, query) = crate::hub::split_query(name);
    vec![
        ("ZEROCAST_CALL", call.name().to_owned()),
        ("ZEROCAST_APP", crate::hub::split_query(app).0.to_owned()),
        ("ZEROCAST_NAME", name_base.to_owned()),
        ("ZEROCAST_QUERY", query.to_owned()),
        ("ZEROCAST_ADDR", addr.to_string()),
        ("ZEROCAST_CLIENTID", clientid.to_string()),
        ("ZEROCAST_TCURL", peer.tcurl.clone()),
        ("ZEROCAST_FLASHVER", peer.flashver.clone()),
    ]
}

/// Runs `command` with `sh -c` and `env`, standard input empty and output to zerocast's own
/// (the journal); exit status 0 allows, any other or still running after `timeout` (then
/// killed) refuses.
pub fn exec(command: &str, env: &[(&'static str, String)], timeout: Duration) -> Verdict {
    let deadline = Instant::now() + timeout;
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Verdict::Refuse(format!("cannot run the command: {e}")),
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Verdict::Allow,
            Ok(Some(status)) => return Verdict::Refuse(format!("the command {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Verdict::Refuse(format!(
                    "the command still ran after {} ms (killed)",
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Verdict::Refuse(format!("waiting for the command: {e}")),
        }
    }
}

/// The stream name's query, appended as it came (nginx-rtmp copies it unescaped), minus
/// anything that would break the form.
fn push_args(o: &mut String, args: &str) {
    if !args.is_empty() && !args.contains(|c: char| c.is_whitespace() || c.is_control()) {
        o.push('&');
        o.push_str(args);
    }
}

/// `ngx_escape_uri(…, NGX_ESCAPE_ARGS)`: space, `#`, `%`, `&`, `+`, `;`, `?`, control and
/// non-ASCII bytes percent-encoded (upper-case hex), the rest as it is.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b <= b' ' || b >= 0x7f || matches!(b, b'#' | b'%' | b'&' | b'+' | b';' | b'?') {
            let _ = write!(o, "%{b:02X}");
        } else {
            o.push(char::from(b));
        }
    }
    o
}

/// What a hook answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: go on.
    Allow,
    /// 3xx with a `Location` that is a name: go on under this name (nginx-rtmp renames the
    /// stream; an `rtmp://` location, its relay form, is refused here).
    Rename(String),
    /// Anything else, a timeout, or no answer.
    Refuse(String),
}

/// Reads a hook's answer head: its status and `Location`.
pub fn verdict(head: &[u8]) -> Verdict {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let code = match response.parse(head) {
        Ok(_) => response.code,
        Err(e) => return Verdict::Refuse(format!("malformed answer: {e}")),
    };
    match code {
        Some(200..=299) => Verdict::Allow,
        Some(code @ 300..=399) => {
            let location = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("location"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim)
                .unwrap_or_default();
            if location.is_empty() || location.to_ascii_lowercase().starts_with("rtmp://") {
                Verdict::Refuse(format!("{code} without a name in Location"))
            } else {
                Verdict::Rename(location.to_owned())
            }
        }
        Some(code) => Verdict::Refuse(format!("answered {code}")),
        None => Verdict::Refuse("no complete answer".into()),
    }
}

/// The call itself, blocking, for the worker: `POST` `body` to `url` (HTTP/1.0, closed after,
/// as nginx-rtmp's netcall), everything within `timeout`; the answer's verdict.
pub fn post(url: &HookUrl, body: &str, timeout: Duration) -> Verdict {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let addr = match (url.host.as_str(), url.port).to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => a,
            None => return Verdict::Refuse(format!("{} has no address", url.host)),
        },
        Err(e) => return Verdict::Refuse(format!("resolving {}: {e}", url.host)),
    };
    let attempt = || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, left().max(Duration::from_millis(1)))?;
        s.set_write_timeout(Some(left().max(Duration::from_millis(1))))?;
        let host = if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        write!(
            s,
            "POST {} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Connection: Close\r\nContent-Length: {}\r\n\r\n{body}",
            url.path,
            body.len()
        )?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_ANSWER {
            let wait = left();
            if wait.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            s.set_read_timeout(Some(wait))?;
            match s.read(&mut buf)? {
                0 => break,
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        Ok(head)
    };
    match attempt() {
        Ok(head) => verdict(&head),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            Verdict::Refuse(format!("no answer within {} ms", timeout.as_millis()))
        }
        Err(e) => Verdict::Refuse(format!("{url}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HookUrl::parse("http://127.0.0.1:8080/on_publish?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/on_publish?x=1")
        );
        let u = HookUrl::parse("http://hooks.lan").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = HookUrl::parse("http://[::1]:81/h").unwrap();
        assert_eq!(
            (u.host.as_str(), u.to_string()),
            ("::1", "http://[::1]:81/h".into())
        );
        for bad in [
            "https://x/h",
            "http://",
            "http://x:0/",
            "http://x y/",
            "rtmp://x/live",
        ] {
            assert!(HookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// The fields and their order as nginx-rtmp sends them.
    #[test]
    fn forms_are_nginx_rtmps() {
        let peer = PeerInfo {
            flashver: "FMLE/3.0 (compatible; FMSc/1.0)".into(),
            tcurl: "rtmp://127.0.0.1:1935/live".into(),
        };
        let addr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            form(Call::Publish, "live", "studio?key=k1&x=a b", &peer, addr, 7),
            "app=live&flashver=FMLE/3.0%20(compatible%3B%20FMSc/1.0)&swfurl=\
             &tcurl=rtmp://127.0.0.1:1935/live&pageurl=&addr=127.0.0.1&clientid=7&call=publish\
             &name=studio&type=live"
        );
        assert!(form(Call::Play, "live", "a?key=k", &peer, addr, 1)
            .ends_with("&call=play&name=a&start=0&duration=0&reset=0&key=k"));
        assert!(
            form(Call::Done, "live", "a", &peer, addr, 1).ends_with("&clientid=1&call=done&name=a")
        );
        assert!(form(Call::Connect, "live?t=1", "", &peer, addr, 1)
            .ends_with("&addr=127.0.0.1&epoch=0&call=connect&t=1"));
    }

    #[test]
    fn commands_decide_by_their_exit_status() {
        let peer = PeerInfo::default();
        let env = env(
            Call::Publish,
            "live",
            "studio?key=k1",
            &peer,
            [10, 0, 0, 7].into(),
            3,
        );
        let limit = Duration::from_secs(5);
        let check = r#"test "$ZEROCAST_CALL $ZEROCAST_APP $ZEROCAST_NAME $ZEROCAST_QUERY $ZEROCAST_ADDR" = "publish live studio key=k1 10.0.0.7""#;
        assert_eq!(exec(check, &env, limit), Verdict::Allow);
        assert!(matches!(exec("exit 3", &env, limit), Verdict::Refuse(_)));
        let started = Instant::now();
        let slow = exec("sleep 5", &env, Duration::from_millis(200));
        assert!(
            matches!(slow, Verdict::Refuse(ref why) if why.contains("killed")),
            "{slow:?}"
        );
        println!("a hung command refused after {:?}", started.elapsed());
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(b"HTTP/1.1 200 OK\r\n\r\n"), Verdict::Allow);
        assert_eq!(verdict(b"HTTP/1.0 204 No Content\r\n\r\n"), Verdict::Allow);
        assert_eq!(
            verdict(b"HTTP/1.1 302 Found\r\nLocation: other\r\n\r\n"),
            Verdict::Rename("other".into())
        );
        for refused in [
            &b"HTTP/1.1 403 Forbidden\r\n\r\n"[..],
            b"HTTP/1.1 302 Found\r\n\r\n",
            b"HTTP/1.1 302 Found\r\nLocation: rtmp://x/live/a\r\n\r\n",
            b"HTTP/1.1 500 Oops\r\n\r\n",
            b"",
            b"garbage\r\n\r\n",
        ] {
            assert!(
                matches!(verdict(refused), Verdict::Refuse(_)),
                "{refused:?}"
            );
        }
    }
}
