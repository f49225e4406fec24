//! The client state machine and `handle` against a fake stream table.

use super::*;
use crate::http::stat::{ClientStat, Protocol, StreamStat};

/// One stream, `live/audio`, AAC: served as .aac, .flv, .mp4, .m3u8.
struct FakeSite {
    title: String,
    sticky: Vec<u8>,
    sees_addresses: bool,
    /// `live/audio` is published but has no MP3 yet: its `.mp3` listeners wait.
    mp3: Option<bool>,
    /// Locked out from the third on.
    wrong_passwords: u32,
    /// Every listener slot is taken.
    full: bool,
}

impl FakeSite {
    fn new() -> Self {
        Self {
            title: "First".into(),
            sticky: b"FLV-HEADER".to_vec(),
            sees_addresses: true,
            mp3: None,
            wrong_passwords: 0,
            full: false,
        }
    }
}

impl Site for FakeSite {
    fn snapshot(&self) -> StatSnapshot {
        StatSnapshot {
            device_state: "running",
            streams: vec![StreamStat {
                app: "live".into(),
                name: "audio".into(),
                codec: "AAC",
                clients: vec![ClientStat {
                    id: 3,
                    protocol: Protocol::Http(Format::Aac),
                    addr: "127.0.0.1:5000".into(),
                    seconds: 2,
                    bytes: 100,
                    dropped: 0,
                }],
                formats: vec![Format::Aac, Format::Flv],
                ..StreamStat::default()
            }],
            ..StatSnapshot::default()
        }
    }

    fn mount(&self, mount: &Mount) -> Option<MountInfo> {
        let served = mount.format != Format::Mp3 || self.mp3 == Some(true);
        (mount.app == "live" && mount.name == "audio" && served).then(|| MountInfo {
            bitrate_kbps: 128,
            title: self.title.clone(),
            sticky: if mount.format == Format::Flv {
                self.sticky.clone()
            } else {
                Vec::new()
            },
        })
    }

    fn playlist(&self, app: &str, name: &str) -> Option<String> {
        (app == "live" && name == "audio").then(|| "#EXTM3U\n".into())
    }

    fn segment(&self, _app: &str, _name: &str, sequence: u64) -> Option<Vec<u8>> {
        (sequence == 7).then(|| b"ID3segment".to_vec())
    }

    fn may_play(&mut self, _app: &str, name: &str, query: &str) -> bool {
        name != "private" || query == "key=k"
    }

    fn may_fetch_segment(&mut self, app: &str, name: &str, query: &str) -> bool {
        query == "token=t" || self.may_play(app, name, query)
    }

    fn awaits_audio(&self, mount: &Mount) -> bool {
        mount.name == "audio" && self.mp3.is_some()
    }

    fn admit_listener(&mut self, _mount: &Mount, _req: &Request) -> Result<(), &'static str> {
        if self.full {
            Err("max listeners reached")
        } else {
            Ok(())
        }
    }

    fn listeners(&self, mount: &Mount) -> Option<Vec<stat::ListenerInfo>> {
        (mount.name == "audio").then(|| {
            vec![stat::ListenerInfo {
                id: 3,
                ip: "127.0.0.1".into(),
                agent: Some("VLC <3>".into()),
                referer: None,
                connected_s: 42,
            }]
        })
    }

    fn may_see_addresses(&self) -> bool {
        self.sees_addresses
    }

    fn locked_out(&self) -> bool {
        self.wrong_passwords >= 3
    }

    fn wrong_password(&mut self) {
        self.wrong_passwords += 1;
    }

    fn set_title(&mut self, mount: &Mount, title: &str) -> bool {
        let found = mount.app == "live" && mount.name == "audio";
        if found {
            self.title = title.into();
        }
        found
    }
}

fn config() -> HttpConfig {
    HttpConfig {
        name: "Pi radio".into(),
        admin_password: Some("hackme".into()),
        header_timeout_ms: 5000,
    }
}

/// Runs one request through a client; returns what it received and everything it wrote with
/// `ring` as the stream body.
fn exchange(request: &[u8], site: &mut FakeSite, ring: &[u8]) -> (Received, Vec<u8>) {
    let cfg = config();
    let mut client = Client::new(0, &cfg);
    let mut received = Received::More;
    for byte in request.chunks(3) {
        received = client.receive(byte, 0, site, &cfg);
    }
    let mut out = Vec::new();
    let mut body = ring;
    loop {
        let parts = client.next(body);
        let all: Vec<u8> = parts.concat();
        if all.is_empty() {
            break;
        }
        let n = all.len().min(1000); // a socket taking part of each writev
        out.extend_from_slice(&all[..n]);
        body = &body[client.advance(n)..];
    }
    assert!(body.is_empty() || matches!(received, Received::Reply));
    (received, out)
}

fn split_head(out: &[u8]) -> (String, &[u8]) {
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (String::from_utf8(out[..at].to_vec()).unwrap(), &out[at..])
}

#[test]
fn icy_listener_gets_head_then_audio_with_title_blocks() {
    let mut site = FakeSite::new();
    let ring: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let req = b"GET /live/audio.aac HTTP/1.1\r\nIcy-MetaData: 1\r\n\r\n";
    let (received, out) = exchange(req, &mut site, &ring);
    assert_eq!(
        received,
        Received::Stream(
            Mount {
                app: "live".into(),
                name: "audio".into(),
                format: Format::Aac
            },
            SendClass::Bulk
        )
    );
    let (head, body) = split_head(&out);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("icy-metaint: 16000\r\n") && head.contains("icy-br: 128\r\n"));
    assert_eq!(&body[..ICY_METAINT], &ring[..ICY_METAINT]);
    let len = usize::from(body[ICY_METAINT]) * 16;
    let block = &body[ICY_METAINT + 1..ICY_METAINT + 1 + len];
    assert!(block.starts_with(b"StreamTitle='First';"));
    // The second block: unchanged.
    let second = ICY_METAINT + 1 + len + ICY_METAINT;
    assert_eq!(body[second], 0);
    assert_eq!(body.len(), 40_000 + 1 + len + 1);
}

#[test]
fn flv_listener_gets_chunked_sticky_then_ring() {
    let mut site = FakeSite::new();
    let (_, out) = exchange(b"GET /live/audio.flv HTTP/1.0\r\n\r\n", &mut site, b"TAGS");
    let (head, body) = split_head(&out);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"));
    assert!(!head.contains("icy-"));
    assert_eq!(body, b"a\r\nFLV-HEADER\r\n4\r\nTAGS\r\n");
}

#[test]
fn plain_audio_without_metadata_request() {
    let mut site = FakeSite::new();
    let (_, out) = exchange(b"GET /live/audio.aac HTTP/1.1\r\n\r\n", &mut site, b"ADTS");
    let (head, body) = split_head(&out);
    assert!(!head.contains("\r\nicy-metaint:") && head.contains("icy-name: Pi radio\r\n"));
    assert_eq!(body, b"ADTS");
}

#[test]
fn replies_and_errors_are_whole_and_keep_the_connection_unless_told() {
    let mut site = FakeSite::new();
    let cases = [
        ("GET /stat", "200 OK"),
        ("GET /metrics", "200 OK"),
        ("GET /api/v1/streams", "200 OK"),
        ("GET /", "200 OK"),
        ("GET /live/audio.m3u8", "200 OK"),
        ("GET /live/audio/7.aac", "200 OK"),
        ("GET /live/audio/8.aac", "404 Not Found"),
        ("GET /live/audio.mp3", "404 Not Found"),
        ("BREW /pot", "405 Method Not Allowed"),
    ];
    for ((line, status), close) in cases.iter().flat_map(|c| [(c, false), (c, true)]) {
        let req = format!(
            "{line} HTTP/1.1\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        );
        // A method other than GET, HEAD and OPTIONS may have a body: its connection closes.
        let kept = !close && !line.starts_with("BREW");
        let cfg = config();
        let mut client = Client::new(0, &cfg);
        assert_eq!(
            client.receive(req.as_bytes(), 100, &mut site, &cfg),
            Received::Reply
        );
        assert_eq!(client.deadline(), None);
        let out = client.next(b"ignored")[0].to_vec();
        assert!(
            out.starts_with(format!("HTTP/1.1 {status}\r\n").as_bytes()),
            "{out:?}"
        );
        let (head, body) = split_head(&out);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), len);
        let connection = if kept { "keep-alive" } else { "close" };
        assert!(
            head.contains(&format!("\r\nConnection: {connection}\r\n")),
            "{head}"
        );
        assert!(!client.done());
        assert_eq!(client.advance(out.len()), 0);
        assert_eq!(client.done(), !kept, "{line} close={close}");
        // A kept connection waits for its next head, the header timeout from this request.
        assert_eq!(client.deadline(), kept.then_some(5100));
    }
}

/// Writes everything `client` has to send (a reply), in pieces of 7 bytes.
fn drain(client: &mut Client) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let own = client.next(b"")[0].to_vec();
        if own.is_empty() {
            return out;
        }
        let n = own.len().min(7);
        out.extend_from_slice(&own[..n]);
        client.advance(n);
    }
}

#[test]
fn a_kept_connection_answers_request_after_request() {
    let cfg = config();
    let mut site = FakeSite::new();
    let mut client = Client::new(0, &cfg);
    for (i, req) in [
        &b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"HEAD /stat HTTP/1.1\r\n\r\n",
        b"GET /live/audio/7.aac HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        // The head in two pieces, the second one at the start of the next round.
        let (a, b) = req.split_at(10);
        assert_eq!(client.receive(a, 0, &mut site, &cfg), Received::More);
        assert_eq!(client.receive(b, 0, &mut site, &cfg), Received::Reply);
        let out = drain(&mut client);
        let (head, body) = split_head(&out);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{i}: {head}");
        // HEAD: a head only, whatever Content-Length says, or the next answer would be misread.
        assert_eq!(body.is_empty(), i == 1, "{i}");
        assert!(!client.done(), "{i}");
    }
    // HTTP/1.0 closes unless asked; a stream ends the request/reply rounds.
    assert_eq!(
        client.receive(b"GET /stat HTTP/1.0\r\n\r\n", 0, &mut site, &cfg),
        Received::Reply
    );
    drain(&mut client);
    assert!(client.done());
    // A request pipelined behind another is not answered: the connection closes after the
    // first reply, and the client (RFC 9112 §9.3.2) sends it again on a new one.
    let mut client = Client::new(0, &cfg);
    let two = b"GET /stat HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n";
    assert_eq!(client.receive(two, 0, &mut site, &cfg), Received::Reply);
    let out = drain(&mut client);
    assert_eq!(split_head(&out).0.matches("HTTP/1.1 200").count(), 1);
    assert!(client.done());
}

#[test]
fn head_requests_get_no_body() {
    let mut site = FakeSite::new();
    let (received, out) = exchange(b"HEAD /live/audio.aac HTTP/1.1\r\n\r\n", &mut site, b"x");
    assert_eq!(received, Received::Reply);
    let (head, body) = split_head(&out);
    assert!(head.contains("icy-br") && body.is_empty());
}

#[test]
fn admin_metadata_needs_the_password_and_changes_the_title() {
    let mut site = FakeSite::new();
    let path = "/admin/metadata?mount=/live/audio.mp3&mode=updinfo&song=Second+Song";
    let request = |auth: Option<&str>| {
        let auth = auth.map_or(String::new(), |a| format!("Authorization: Basic {a}\r\n"));
        format!("GET {path} HTTP/1.1\r\n{auth}\r\n").into_bytes()
    };
    // base64("admin:wrong"), and none at all: 401 with the Basic realm.
    for auth in [Some("YWRtaW46d3Jvbmc="), None, Some("!!!")] {
        let (_, out) = exchange(&request(auth), &mut site, b"");
        assert!(
            out.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"),
            "{auth:?}: {}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(site.title, "First");
    }
    // base64("source:hackme"), as source clients send it.
    let (_, out) = exchange(&request(Some("c291cmNlOmhhY2ttZQ==")), &mut site, b"");
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(site.title, "Second Song");
    // The request without credentials did not count; a third wrong one locks the address out,
    // and then even the right password is not looked at.
    assert_eq!(site.wrong_passwords, 2);
    exchange(&request(Some("YWRtaW46d3Jvbmc=")), &mut site, b"");
    let (_, out) = exchange(&request(Some("c291cmNlOmhhY2ttZQ==")), &mut site, b"");
    assert!(
        out.starts_with(b"HTTP/1.1 429 Too Many Requests\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    site.wrong_passwords = 0;
    // No password configured: refused whatever is sent.
    let cfg = HttpConfig {
        admin_password: None,
        ..config()
    };
    let mut client = Client::new(0, &cfg);
    client.receive(&request(Some("YWRtaW46")), 0, &mut site, &cfg);
    assert!(client.next(b"")[0].starts_with(b"HTTP/1.1 403 Forbidden"));
}

#[test]
fn listclients_needs_the_password_and_lists_icecasts_way() {
    let mut site = FakeSite::new();
    let request = |mount: &str, auth: &str| {
        format!("GET /admin/listclients?mount={mount} HTTP/1.1\r\n{auth}\r\n").into_bytes()
    };
    let (_, out) = exchange(&request("/live/audio.mp3", ""), &mut site, b"");
    assert!(out.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"));
    // base64("admin:hackme").
    let admin = "Authorization: Basic YWRtaW46aGFja21l\r\n";
    let (_, out) = exchange(&request("/live/audio.mp3", admin), &mut site, b"");
    let (head, body) = split_head(&out);
    assert!(
        head.starts_with("HTTP/1.1 200 OK") && head.contains("text/xml"),
        "{head}"
    );
    assert_eq!(
        String::from_utf8_lossy(body),
        "<?xml version=\"1.0\"?>\n<icestats><source mount=\"/live/audio.mp3\">\
         <Listeners>1</Listeners><listener><IP>127.0.0.1</IP><UserAgent>VLC &lt;3&gt;</UserAgent>\
         <Connected>42</Connected><ID>3</ID></listener></source></icestats>\n"
    );
    let (_, out) = exchange(&request("/live/other.mp3", admin), &mut site, b"");
    assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
}

/// A full mount answers as Icecast 2.4 does (`auth.c`: `client_send_403 (client, "max listeners
/// reached")`); a HEAD is no listener and is answered anyway.
#[test]
fn a_full_mount_refuses_the_next_listener_with_icecasts_403() {
    let mut site = FakeSite::new();
    site.full = true;
    let (received, out) = exchange(b"GET /live/audio.aac HTTP/1.1\r\n\r\n", &mut site, b"");
    assert_eq!(received, Received::Reply);
    let (head, body) = split_head(&out);
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
    assert_eq!(String::from_utf8_lossy(body), "max listeners reached\n");
    let (_, out) = exchange(b"HEAD /live/audio.aac HTTP/1.1\r\n\r\n", &mut site, b"");
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn titles_reach_listeners_at_the_next_boundary() {
    let cfg = config();
    let mut site = FakeSite::new();
    let mut client = Client::new(0, &cfg);
    client.receive(
        b"GET /live/audio.aac HTTP/1.1\r\nIcy-MetaData: 1\r\n\r\n",
        0,
        &mut site,
        &cfg,
    );
    let ring = vec![0u8; 3 * ICY_METAINT];
    let mut out = Vec::new();
    let mut body = &ring[..];
    let mut titled = false;
    loop {
        let all = client.next(body).concat();
        if all.is_empty() {
            break;
        }
        out.extend_from_slice(&all);
        body = &body[client.advance(all.len())..];
        if !titled && body.len() < 2 * ICY_METAINT {
            client.set_title("Now");
            titled = true;
        }
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("StreamTitle='First';").count(), 1);
    assert_eq!(text.matches("StreamTitle='Now';").count(), 1);
}

#[test]
fn slow_or_hostile_requests_are_bounded() {
    let cfg = config();
    let mut site = FakeSite::new();
    let mut client = Client::new(1000, &cfg);
    assert_eq!(
        client.receive(b"GET /stat HTTP/1.1\r\n", 0, &mut site, &cfg),
        Received::More
    );
    assert_eq!(client.deadline(), Some(6000));
    let flood = vec![b'a'; 64 * 1024];
    let mut client = Client::new(0, &cfg);
    client.receive(b"GET / HTTP/1.1\r\nX: ", 0, &mut site, &cfg);
    assert_eq!(client.receive(&flood, 0, &mut site, &cfg), Received::Reply);
    assert!(client.next(b"")[0].starts_with(b"HTTP/1.1 431 "));
    // Bytes after the request are ignored.
    assert_eq!(
        client.receive(b"more", 0, &mut site, &cfg),
        Received::Nothing
    );
    let mut client = Client::new(0, &cfg);
    assert_eq!(
        client.receive(b"\x16\x03\x01 tls", 0, &mut site, &cfg),
        Received::Reply
    );
    assert!(client.next(b"")[0].starts_with(b"HTTP/1.1 400 "));
}

#[test]
fn base64_and_basic_auth() {
    assert_eq!(base64_decode("YWRtaW46aGFja21l").unwrap(), b"admin:hackme");
    assert_eq!(base64_decode("YQ==").unwrap(), b"a");
    assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
    assert!(base64_decode("Y").is_none() && base64_decode("Y$==").is_none());
    for text in [
        &b""[..],
        b"a",
        b"ab",
        b"abc",
        b"source:hackme",
        &[0xff, 0, 0xfe, 1],
    ] {
        assert_eq!(base64_decode(&base64_encode(text)).unwrap(), text);
    }
    assert_eq!(base64_encode(b"admin:hackme"), "YWRtaW46aGFja21l");
    assert!(basic_auth_matches(Some("basic YWRtaW46aGFja21l"), "hackme"));
    assert!(!basic_auth_matches(
        Some("Basic dXNlcjpoYWNrbWU="),
        "hackme"
    )); // user:hackme
    assert!(!basic_auth_matches(
        Some("Bearer YWRtaW46aGFja21l"),
        "hackme"
    ));
}

#[test]
fn streams_follow_the_play_rules() {
    let mut site = FakeSite::new();
    for (line, status) in [
        ("GET /live/private.aac", "403 Forbidden"),
        ("GET /live/private.m3u8", "403 Forbidden"),
        ("GET /live/private/7.aac", "403 Forbidden"),
        ("GET /live/private/7.aac?token=x", "403 Forbidden"),
        ("GET /live/private/7.aac?token=t", "200 OK"),
        ("GET /live/private.aac?token=t", "403 Forbidden"),
        ("GET /live/private.aac?key=k", "404 Not Found"),
    ] {
        let (_, out) = exchange(
            format!("{line} HTTP/1.1\r\n\r\n").as_bytes(),
            &mut site,
            b"",
        );
        assert!(
            out.starts_with(format!("HTTP/1.1 {status}").as_bytes()),
            "{line}"
        );
    }
}

/// Addresses only for `stats_allow`, and then without the wildcard CORS header; counts for
/// everyone, readable from any origin.
#[test]
fn reports_show_addresses_only_to_those_allowed() {
    for path in ["/stat", "/api/v1/streams", "/metrics"] {
        for allowed in [true, false] {
            let mut site = FakeSite::new();
            site.sees_addresses = allowed;
            let request = format!("GET {path} HTTP/1.1\r\n\r\n");
            let (_, out) = exchange(request.as_bytes(), &mut site, &[]);
            let text = String::from_utf8(out).unwrap();
            let cors = text.contains("Access-Control-Allow-Origin: *");
            let (_, body) = text.split_once("\r\n\r\n").unwrap();
            if path != "/metrics" {
                assert_eq!(body.contains("127.0.0.1"), allowed, "{path}: {body}");
            }
            assert!(allowed || !body.contains("5000"), "{path}: {body}");
            assert_eq!(cors, !allowed, "{path} allowed={allowed}: {text}");
        }
    }
}

/// Apps and speakers get Icecast-style blocks; browsers, the page's fMP4 and whoever asks for
/// it are written on the short interval.
#[test]
fn listeners_are_classed_by_what_they_asked_for() {
    let class = |head: &str, format| {
        let req = request::parse(head.as_bytes()).unwrap().unwrap();
        SendClass::of(&req, format)
    };
    let plain = "GET /live/audio.mp3 HTTP/1.1\r\nUser-Agent: VLC/3.0.18 LibVLC/3.0.18\r\n\r\n";
    assert_eq!(class(plain, Format::Mp3), SendClass::Bulk);
    assert_eq!(class(plain, Format::Aac), SendClass::Bulk);
    assert_eq!(class(plain, Format::Flv), SendClass::Bulk);
    assert_eq!(class(plain, Format::Mp4), SendClass::LowDelay);
    let low = "GET /live/audio.mp3?x=1&latency=low HTTP/1.1\r\n\r\n";
    assert_eq!(class(low, Format::Mp3), SendClass::LowDelay);
    let page = "GET /live/audio.mp3 HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux)\r\n\r\n";
    assert_eq!(class(page, Format::Mp3), SendClass::LowDelay);
    let fetch = "GET /live/audio.flv HTTP/1.1\r\nSec-Fetch-Mode: cors\r\n\r\n";
    assert_eq!(class(fetch, Format::Flv), SendClass::LowDelay);
}

/// A listener of a published stream with no audio in its format yet waits (bounded) instead
/// of a 404, and starts when a poke finds the audio; a stream nobody publishes is a 404.
#[test]
fn a_listener_waits_for_the_first_audio() {
    let cfg = config();
    let mut site = FakeSite::new();
    site.mp3 = Some(false);
    let mut client = Client::new(0, &cfg);
    let req = b"GET /live/audio.mp3 HTTP/1.1\r\nIcy-MetaData: 1\r\n\r\n";
    assert!(matches!(
        client.receive(req, 0, &mut site, &cfg),
        Received::Wait(Mount {
            format: Format::Mp3,
            ..
        })
    ));
    assert!(client.waiting());
    assert_eq!(client.deadline(), Some(WAIT_MS));
    // Poked before the audio: still waiting, same deadline; bytes while waiting are ignored.
    assert!(matches!(
        client.receive(&[], 1000, &mut site, &cfg),
        Received::Wait(_)
    ));
    assert!(matches!(
        client.receive(b"junk", 1000, &mut site, &cfg),
        Received::Nothing
    ));
    assert_eq!(client.deadline(), Some(WAIT_MS));
    site.mp3 = Some(true);
    assert!(matches!(
        client.receive(&[], 2000, &mut site, &cfg),
        Received::Stream(
            Mount {
                format: Format::Mp3,
                ..
            },
            _
        )
    ));
    let (head, _) = split_head(&drain(&mut client));
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("icy-metaint"),
        "{head}"
    );
    // Nothing published: 404 at once.
    let mut site = FakeSite::new();
    let (received, out) = exchange(b"GET /live/audio.mp3 HTTP/1.1\r\n\r\n", &mut site, &[]);
    assert_eq!(received, Received::Reply);
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 404"));
}
