//! The HTTP/1.1 side: Icecast-style audio, HTTP-FLV, audio-only HLS, fragmented MP4 for the
//! page, `/stat`, `/api/v1/streams`, `/metrics` and the page itself, all from the streams'
//! rings in the same mio loop as RTMP.
//!
//! ```text
//!  request bytes ──> Client::receive ── request (httparse, bounded) ──> route ──> handle(Site)
//!                                                                    │
//!        ┌───────────────────────────────────────────────────────────┴─────────────┐
//!        v                                                                         v
//!  Reply: head + body (stat, metrics, page, playlist, segment, errors), close   Stream: head +
//!                                                                    sticky bytes, then the
//!  stream's audio ──> framer (once per format) ──> format ring ──> Client::next  mount's ring
//!                                                          (body: ICY blocks / chunks)
//! ```
//!
//! The host owns sockets, clocks and rings; this module turns requests into answers and frames
//! ring bytes, so wiring it into the loop is: accept, feed [`Client::receive`], write what
//! [`Client::next`] gives (the ring's slices as its body), [`Client::advance`] by what was
//! written, close when [`Client::done`] or past [`Client::deadline`].

pub mod body;
pub mod listener;
pub mod page;
pub mod request;
pub mod response;
pub mod route;
pub mod stat;

use crate::formats::Format;
use body::{Body, Framing};
use request::{Method, Request};
use route::{Mount, Route};
use stat::StatSnapshot;

/// Audio a new listener of `.mp3`, `.aac` or `.flv` is sent at once. Chromium's `<audio>`
/// starts an endless MP3 (128 kbit/s) once it holds about 2.1 s of it; measured time from
/// `play()` to `playing` in headless Chromium 156 (two runs each, `ZEROCAST_HTTP_BURST_MS`):
///
/// | burst (ms) | 0 | 250 | 500 | 1000 | 1500 | 1750 | 2000 | 3000 |
/// |---|---|---|---|---|---|---|---|---|
/// | start (ms) | 2083, 2076 | 1856, 1857 | 1662, 1605 | 1098, 1088 | 562, 648 | 423, 325 | 195, 133 | 121, 227 |
///
/// Such a player ends up about 2 s behind live either way (it waits for that much without a
/// burst), so a 2 s burst makes it start at once at no cost in delay. (Icecast sends 64 KiB,
/// about 4 s at 128 kbit/s.) A format ring holds less than 2 s of PCM: its listeners get what
/// the ring has.
pub const HTTP_BURST_MS: u64 = 2000;
/// Environment variable overriding [`HTTP_BURST_MS`] (for measuring what the burst buys).
pub const HTTP_BURST_ENV: &str = "ZEROCAST_HTTP_BURST_MS";
/// The same for `.mp4`: the page's player keeps itself near the live edge.
pub const MP4_BURST_MS: u64 = 300;

/// Icecast's metadata interval (its default `icy-metaint`).
pub const ICY_METAINT: usize = 16_000;

/// Settings of the HTTP side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// `icy-name` of every mount.
    pub name: String,
    /// Password for `/admin/metadata` (users `admin` or `source`); none refuses every update.
    pub admin_password: Option<String>,
    /// Time a client has to send its request head.
    pub header_timeout_ms: u64,
}

/// What a listener of a mount starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Bitrate for `icy-br`, kbit/s.
    pub bitrate_kbps: u32,
    /// The current title.
    pub title: String,
    /// Bytes before the ring's: FLV header and sequence tags, the fMP4 init segment.
    pub sticky: Vec<u8>,
}

/// What the HTTP side asks of the stream table.
pub trait Site {
    /// The reports' snapshot.
    fn snapshot(&self) -> StatSnapshot;
    /// The mount, if its stream exists and is served in its format (HLS: the playlist).
    fn mount(&self, mount: &Mount) -> Option<MountInfo>;
    /// The HLS playlist of `APP/NAME`, once it has a segment; with a play key, its segment URLs
    /// carry a token that [`Site::may_fetch_segment`] takes in place of the key.
    fn playlist(&self, app: &str, name: &str) -> Option<String>;
    /// HLS segment `sequence` of `APP/NAME`, while it is kept.
    fn segment(&self, app: &str, name: &str, sequence: u64) -> Option<Vec<u8>>;
    /// Sets the title of the stream of `mount` (every format of it); false if there is none.
    fn set_title(&mut self, mount: &Mount, title: &str) -> bool;
    /// Whether this client may listen to `APP/NAME` (the RTMP play rules: addresses, and the
    /// play key as `?key=` in `query`; a wrong key counts toward a lockout, see
    /// [`crate::guesses`]).
    fn may_play(&mut self, app: &str, name: &str, query: &str) -> bool;
    /// Whether this client may fetch an HLS segment of `APP/NAME`: the play rules, with the
    /// playlist's `?token=` in `query` standing in for the key.
    fn may_fetch_segment(&mut self, app: &str, name: &str, query: &str) -> bool;
    /// Whether this client's address gave too many wrong keys or passwords lately: its
    /// password is then not looked at ([`crate::guesses`]).
    fn locked_out(&self) -> bool;
    /// This client gave a wrong password.
    fn wrong_password(&mut self);
    /// Whether this client may see other clients' addresses in the reports (`stats_allow`).
    fn may_see_addresses(&self) -> bool;
    /// Whether a listener of `mount`, which has no audio in its format yet, should wait for
    /// it: the stream is being published or is configured (Icecast lets a listener wait on a
    /// mount with a fallback; a 404 would make players give up).
    fn awaits_audio(&self, mount: &Mount) -> bool;
    /// Lets this client in as a listener of `mount` (asked for with `req`), within the
    /// listener caps; else the reason, Icecast's words where it has them.
    fn admit_listener(&mut self, mount: &Mount, req: &Request) -> Result<(), &'static str>;
    /// The listeners of the stream of `mount` (every format and protocol), if it exists.
    fn listeners(&self, mount: &Mount) -> Option<Vec<stat::ListenerInfo>>;
}

/// How long a listener may wait for the first audio of its stream before it is closed.
pub const WAIT_MS: u64 = 30_000;

/// How long a bulk listener's audio may wait: Icecast writes its listeners in blocks of about
/// this much (its 4 KiB blocks at 128 kbit/s), and the apps and speakers that take its URLs
/// buffer seconds anyway. 12 writes a second instead of 50 per listener is where the fan-out
/// CPU goes (docs/benchmarks.md, "HTTP fan-out by send class").
pub const BULK_MS: u64 = 250;

/// How often a listener is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendClass {
    /// On the short send interval, as RTMP players: the page's MSE player, any browser, and
    /// whoever asks `?latency=low`.
    LowDelay,
    /// In blocks of [`BULK_MS`]: Icecast-style bodies (`.mp3`, `.aac`) and HTTP-FLV to apps,
    /// players and smart speakers.
    Bulk,
}

impl SendClass {
    /// The class of a listener of `format` that sent `req`.
    pub fn of(req: &Request, format: Format) -> Self {
        let asks_low = req
            .query
            .split('&')
            .any(|p| p.eq_ignore_ascii_case("latency=low"));
        match format {
            Format::Mp3 | Format::Aac | Format::Flv if !asks_low && !req.browser => Self::Bulk,
            _ => Self::LowDelay,
        }
    }
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Hold the listener until the mount has audio ([`Site::awaits_audio`]).
    Wait(Mount),
    /// Write these bytes, then close, or wait for the next request if `keep_alive`.
    Reply {
        /// The whole response.
        bytes: Vec<u8>,
        /// The connection stays open for another request (the head says so).
        keep_alive: bool,
    },
    /// Write the head (and sticky bytes, framed), then the mount's ring, framed.
    Stream {
        /// The mount whose ring to send.
        mount: Mount,
        /// How often it is written.
        class: SendClass,
        /// The head and the sticky bytes, ready to write.
        start: Vec<u8>,
        /// The framing of the ring's bytes.
        body: Body,
    },
}

/// How a complete response is sent: its head only (HEAD), and whether the connection stays.
#[derive(Clone, Copy, Debug)]
struct Answer {
    head_only: bool,
    keep_alive: bool,
}

impl Answer {
    fn reply(self, status: &str, content_type: &str, body: &[u8]) -> Action {
        self.reply_cors(status, content_type, body, true)
    }

    /// A report: with addresses for those allowed to see them, and then without the wildcard
    /// CORS header (a page of another origin in their browser cannot read it); with counts
    /// only, and readable from anywhere, for everyone else.
    fn report(
        self,
        site: &dyn Site,
        content_type: &str,
        render: fn(&StatSnapshot) -> String,
    ) -> Action {
        let private = site.may_see_addresses();
        let snapshot = site.snapshot();
        let snapshot = if private {
            snapshot
        } else {
            snapshot.without_addresses()
        };
        self.reply_cors(
            "200 OK",
            content_type,
            render(&snapshot).as_bytes(),
            !private,
        )
    }

    fn reply_cors(self, status: &str, content_type: &str, body: &[u8], cors: bool) -> Action {
        let head = response::complete(status, content_type, body.len(), self.keep_alive, cors);
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(body);
        }
        Action::Reply {
            bytes,
            keep_alive: self.keep_alive,
        }
    }

    /// An error, its text as a plain-text body.
    fn error(self, status: &str, why: &str) -> Action {
        self.reply(
            status,
            "text/plain; charset=utf-8",
            format!("{why}\n").as_bytes(),
        )
    }

    /// A response made whole elsewhere (its head says `keep_alive`).
    fn whole(self, bytes: String) -> Action {
        Action::Reply {
            bytes: bytes.into_bytes(),
            keep_alive: self.keep_alive,
        }
    }
}

/// The answer to a request that could not be parsed: the connection closes after it.
const CLOSE: Answer = Answer {
    head_only: false,
    keep_alive: false,
};

/// Answers `req`: everything but the stream's ring bytes.
pub fn handle(req: &Request, site: &mut dyn Site, config: &HttpConfig) -> Action {
    let answer = Answer {
        head_only: req.method == Method::Head,
        keep_alive: req.keep_alive,
    };
    let route = route::route(req);
    if matches!(route, Route::SetTitle { .. } | Route::ListClients(_)) {
        if let Some(refused) = admin_refusal(req, site, config, answer) {
            return refused;
        }
    }
    match route {
        Route::Page => answer.reply("200 OK", "text/html; charset=utf-8", page::HTML.as_bytes()),
        Route::Stat => answer.report(site, "text/xml", stat::render_xml),
        Route::Streams => answer.report(site, "application/json", stat::render_json),
        Route::Metrics => answer.report(
            site,
            "text/plain; version=0.0.4; charset=utf-8",
            stat::render_metrics,
        ),
        Route::Preflight => answer.whole(response::preflight(answer.keep_alive)),
        Route::Error(status, why) => answer.error(status, why),
        Route::ListClients(mount) => match site.listeners(&mount) {
            Some(listeners) => {
                let path = format!("/{}/{}.{}", mount.app, mount.name, mount.format.extension());
                let body = stat::render_listclients(&path, &listeners);
                answer.reply_cors("200 OK", "text/xml", body.as_bytes(), false)
            }
            None => answer.error("404 Not Found", "no such mount"),
        },
        Route::SetTitle { mount, song } => {
            if site.set_title(&mount, &song) {
                // Icecast answers updinfo with a small XML document.
                let body = "<?xml version=\"1.0\"?>\n<iceresponse><message>Metadata update successful</message><return>1</return></iceresponse>\n";
                answer.reply("200 OK", "text/xml", body.as_bytes())
            } else {
                answer.error("404 Not Found", "no such mount")
            }
        }
        Route::Segment { app, name, .. } if !site.may_fetch_segment(&app, &name, &req.query) => {
            answer.error("403 Forbidden", "not allowed to play this stream")
        }
        Route::Stream(Mount { app, name, .. }) if !site.may_play(&app, &name, &req.query) => {
            answer.error("403 Forbidden", "not allowed to play this stream")
        }
        Route::Segment {
            app,
            name,
            sequence,
        } => match site.segment(&app, &name, sequence) {
            Some(bytes) => answer.reply("200 OK", Format::Aac.content_type(), &bytes),
            None => answer.error("404 Not Found", "no such segment (expired?)"),
        },
        Route::Stream(mount) if mount.format == Format::Hls => {
            match site.playlist(&mount.app, &mount.name) {
                Some(p) => answer.reply("200 OK", Format::Hls.content_type(), p.as_bytes()),
                None => answer.error("404 Not Found", "no such stream in HLS, or no segment yet"),
            }
        }
        Route::Stream(mount) => {
            let Some(info) = site.mount(&mount) else {
                if !answer.head_only && site.awaits_audio(&mount) {
                    return Action::Wait(mount);
                }
                return answer.error("404 Not Found", "no such stream in this format");
            };
            // HEAD asks what a listener would get; it is not one.
            if !answer.head_only {
                if let Err(why) = site.admit_listener(&mount, req) {
                    return answer.error("403 Forbidden", why);
                }
            }
            let metaint = (req.icy_metadata && mount.format.has_icy()).then_some(ICY_METAINT);
            let icy = response::Icy {
                name: &config.name,
                bitrate_kbps: info.bitrate_kbps,
                metaint,
            };
            let chunked = mount.format == Format::Flv;
            let head = response::endless(
                mount.format.content_type(),
                mount.format.has_icy().then_some(&icy),
                chunked,
            );
            // The head of an endless body says `Connection: close`.
            if answer.head_only {
                return CLOSE.whole(head);
            }
            let framing = match (metaint, chunked) {
                (Some(metaint), _) => Framing::Icy { metaint },
                (None, true) => Framing::Chunked,
                (None, false) => Framing::Plain,
            };
            let mut body = Body::new(framing);
            body.set_title(&info.title);
            let mut start = head.into_bytes();
            body.frame_into(&info.sticky, &mut start);
            let class = SendClass::of(req, mount.format);
            Action::Stream {
                mount,
                class,
                start,
                body,
            }
        }
    }
}

/// The answer to an admin request without valid credentials (`None`: they are valid): no
/// password configured, an address locked out after wrong passwords, or wrong or missing
/// credentials (a wrong one counts towards the lockout; none is how a browser asks for the
/// prompt).
fn admin_refusal(
    req: &Request,
    site: &mut dyn Site,
    config: &HttpConfig,
    answer: Answer,
) -> Option<Action> {
    let Some(password) = &config.admin_password else {
        return Some(answer.error("403 Forbidden", "no admin password is configured"));
    };
    if site.locked_out() {
        return Some(answer.error(
            "429 Too Many Requests",
            "too many wrong passwords from this address; try again in a minute",
        ));
    }
    if basic_auth_matches(req.authorization.as_deref(), password) {
        return None;
    }
    if req.authorization.is_some() {
        site.wrong_password();
    }
    Some(answer.whole(response::unauthorized(answer.keep_alive)))
}

/// Whether `authorization` is `Basic` with user `admin` or `source` and `password`, compared
/// in constant time.
fn basic_auth_matches(authorization: Option<&str>, password: &str) -> bool {
    let Some(encoded) = authorization
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, v)| v.trim())
    else {
        return false;
    };
    let Some(decoded) = base64_decode(encoded) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, given) = (&decoded[..colon], &decoded[colon + 1..]);
    (user == b"admin" || user == b"source") & crate::constant_time::eq(given, password.as_bytes())
}

/// The standard base64 alphabet (RFC 4648 §4).
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as HTTP basic auth uses (the Icecast source's credentials).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let mut acc = [0u8; 4];
        acc[1..=group.len()].copy_from_slice(group);
        let n = u32::from_be_bytes(acc);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4), as HTTP basic auth uses.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 || bytes.len() > 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for group in bytes.chunks(4) {
        let mut acc = 0u32;
        for &c in group {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * (4 - group.len() as u32);
        out.extend_from_slice(&acc.to_be_bytes()[1..group.len()]);
    }
    Some(out)
}

/// Where a client stands.
#[derive(Debug)]
enum State {
    /// Reading the request head.
    Request,
    /// Writing a complete response, then closing, or reading the next request if
    /// `keep_alive`.
    Reply {
        /// The connection stays open after the response.
        keep_alive: bool,
    },
    /// Sending a mount's ring.
    Stream(Body),
    /// Holding a listener of a stream that is published (or configured) but has no audio in
    /// its format yet: the request head is kept and handled again when audio comes.
    Waiting,
}

/// One HTTP connection, sans IO: request bytes in, bytes to write out. See the module doc.
#[derive(Debug)]
pub struct Client {
    state: State,
    request: Vec<u8>,
    deadline_ms: u64,
    /// Own bytes to write before anything else (head, sticky, a reply), and how far.
    pending: Vec<u8>,
    written: usize,
}

/// What [`Client::receive`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// The head is incomplete: read more (until the deadline).
    More,
    /// A reply is ready: write it, then close, or wait for the next request on the same
    /// connection ([`Client::done`] says which).
    Reply,
    /// The listener wants this mount: send its ring (from the join point) through
    /// [`Client::next`], as often as its class says.
    Stream(Mount, SendClass),
    /// Nothing new (bytes after a request while its reply is written are kept for the
    /// next one, bytes after a stream's request are ignored).
    Nothing,
    /// The listener waits for the first audio of this mount (at most [`WAIT_MS`]): call
    /// [`Client::receive`] with no bytes once the mount has audio.
    Wait(Mount),
}

impl Client {
    /// A client accepted at `now_ms`, with `config.header_timeout_ms` to send its head.
    pub fn new(now_ms: u64, config: &HttpConfig) -> Self {
        Self {
            state: State::Request,
            request: Vec::new(),
            deadline_ms: now_ms + config.header_timeout_ms,
            pending: Vec::new(),
            written: 0,
        }
    }

    /// The instant (ms) by which the head must be complete, or a waiting listener's audio
    /// must have come; past it, close.
    pub fn deadline(&self) -> Option<u64> {
        matches!(self.state, State::Request | State::Waiting).then_some(self.deadline_ms)
    }

    /// Whether it waits for its stream's first audio.
    pub fn waiting(&self) -> bool {
        matches!(self.state, State::Waiting)
    }

    /// Takes bytes read from the socket at `now_ms`.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        site: &mut dyn Site,
        config: &HttpConfig,
    ) -> Received {
        if matches!(self.state, State::Stream(_)) {
            return Received::Nothing;
        }
        if matches!(self.state, State::Waiting) {
            if !bytes.is_empty() {
                // A waiting listener sends nothing more a server needs.
                return Received::Nothing;
            }
            // Poked: the mount may have audio now; the kept head is handled again.
            self.state = State::Request;
            let deadline = self.deadline_ms;
            let received = self.receive(&[], now_ms, site, config);
            if matches!(received, Received::Wait(_)) {
                // Still waiting: the first deadline stands.
                self.deadline_ms = deadline;
            }
            return received;
        }
        let room = request::MAX_HEAD_LEN - self.request.len().min(request::MAX_HEAD_LEN);
        self.request
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        if !matches!(self.state, State::Request) {
            // A pipelined request: it waits for the reply to go out (see `done`).
            return Received::Nothing;
        }
        let action = match request::parse(&self.request) {
            // A head cut at MAX_HEAD_LEN fails to parse as HeadTooLarge, never waits.
            Ok(None) => return Received::More,
            Ok(Some(req)) => {
                let action = handle(&req, site, config);
                // What came after this head waits for its reply (a GET has no body); a waiting
                // listener's head stays, to be handled again when the audio comes.
                if !matches!(action, Action::Wait(_)) {
                    self.request.drain(..req.head_len.min(self.request.len()));
                }
                action
            }
            Err(e) => {
                self.request = Vec::new();
                CLOSE.error(e.status(), &e.to_string())
            }
        };
        // A connection kept open has the header timeout again for its next request, counted
        // from this one; a waiting listener has the wait's.
        self.deadline_ms = now_ms
            + match action {
                Action::Wait(_) => WAIT_MS,
                _ => config.header_timeout_ms,
            };
        match action {
            Action::Wait(mount) => {
                self.state = State::Waiting;
                Received::Wait(mount)
            }
            Action::Reply { bytes, keep_alive } => {
                self.pending = bytes;
                self.state = State::Reply { keep_alive };
                Received::Reply
            }
            Action::Stream {
                mount,
                class,
                start,
                body,
            } => {
                self.pending = start;
                self.request = Vec::new();
                self.state = State::Stream(body);
                Received::Stream(mount, class)
            }
        }
    }

    /// Announces a new title to an ICY listener at its next metadata boundary.
    pub fn set_title(&mut self, title: &str) {
        if let State::Stream(body) = &mut self.state {
            body.set_title(title);
        }
    }

    /// What to write now: own bytes, framing bytes, then a prefix of `body` (the ring's next
    /// slice; empty for a reply). Write them in this order, with one `writev`.
    pub fn next<'a>(&'a mut self, body: &'a [u8]) -> [&'a [u8]; 3] {
        let own = &self.pending[self.written..];
        match &mut self.state {
            State::Stream(framing) if own.is_empty() => {
                let [framing, part] = framing.next(body);
                [own, framing, part]
            }
            _ => [own, &[], &[]],
        }
    }

    /// Takes `n`, the bytes written of what [`Self::next`] returned; returns how many of them
    /// were `body` bytes (advance the ring cursor by that much).
    pub fn advance(&mut self, n: usize) -> usize {
        let own = n.min(self.pending.len() - self.written);
        self.written += own;
        if self.written == self.pending.len() && !self.pending.is_empty() {
            self.pending = Vec::new();
            self.written = 0;
            // The reply is out: a kept connection reads its next request (one that came while
            // the reply was written closes it instead: no pipelining, see `done`).
            if matches!(self.state, State::Reply { keep_alive: true }) && self.request.is_empty() {
                self.state = State::Request;
            }
        }
        match &mut self.state {
            State::Stream(body) => body.advance(n - own),
            _ => 0,
        }
    }

    /// The reply is written and the connection is not kept (or a pipelined request came
    /// while it was written, which HTTP/1.1 lets the client send again): close it.
    pub fn done(&self) -> bool {
        matches!(self.state, State::Reply { .. }) && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests;
