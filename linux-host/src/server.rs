//! The RTMP server the event loop drives: the listener, the connection slab, the stream
//! [`Hub`] with its [`Access`] rules, the local capture as one publisher among others, and the
//! push relays. Decisions (who may play or publish what, takeovers, silence) are made here; the
//! bytes are moved by [`Conn`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant as StdInstant;

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};
use zerocast_core::flv::{self, Metadata};
use zerocast_core::session::{Event, Refusal, ServerConfig};
use zerocast_core::time::Instant;

use crate::audience::{AccessLog, Audience};
use crate::capture::{CaptureStatus, Sink};
use crate::config::{Settings, SourceSpec};
use crate::conn::{Close, Granted, ReadEnd, Role, RtmpReader, Upstream};
use crate::egress::Counters;
use crate::encode::Rendition;
use crate::event_loop::Service;
use crate::http::listener::HttpConn;
use crate::hub::{Access, Denied, Hub, Request, StreamId};
use crate::limits::Group;
use crate::logging::Escaped;
use crate::relay::{Relays, Target};
use crate::rtsp::RtspConn;
use crate::stream::{Publisher, CHUNK_SIZE};
use crate::worker::{Worker, WORKER_TOKEN};

mod accept;
mod hooks;
mod http;
pub mod listeners;
mod push;
mod reload;
mod rtsp;
pub use http::HttpOptions;

/// A connection of the server, RTMP, HTTP or RTSP: the HTTP and RTSP connection states are
/// their listeners' (the connection layer knows neither side).
pub type Conn = crate::conn::Conn<HttpConn, RtspConn>;
/// What a connection of the server is.
pub type Kind = crate::conn::Kind<HttpConn, RtspConn>;

/// What the server needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Who may publish and play.
    pub access: Access,
    /// The capture's stream name (in `access.app`), if there is a capture.
    pub capture: Option<String>,
    /// The stream a push URL with a name pushes (`--stream`).
    pub default_stream: String,
    /// Milliseconds of audio a joining player is sent at once.
    pub join_ms: u64,
    /// Connection slots for peers.
    pub max_clients: usize,
    /// Connections one address may hold.
    pub max_per_addr: usize,
    /// Streams the table holds.
    pub max_streams: usize,
    /// Handshake deadline.
    pub handshake_timeout_ms: u64,
    /// A silent peer, or a player whose socket stays full, is dropped after this.
    pub idle_timeout_ms: u64,
    /// A publisher that sends no audio this long is dropped (its players stay).
    pub publish_timeout_ms: u64,
    /// Push targets.
    pub pushes: Vec<Push>,
    /// How much audio is gathered before it is written to readers (`--send-ms`).
    pub send_interval_ms: u64,
    /// Writes to readers per second before the send interval grows (`--max-sends-per-s`).
    pub max_sends_per_s: u64,
    /// Which streams are recorded.
    pub recording: crate::hub::Recording,
    /// The listener caps.
    pub listeners: listeners::ListenerLimits,
}

impl Options {
    /// The server's part of the settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let mut pushes: Vec<Push> = settings
            .pushes
            .iter()
            .map(|p| Push {
                target: p.url.clone(),
                stream: p.stream.as_ref().map(|s| s.name.clone()),
            })
            .collect();
        for stream in &settings.streams {
            pushes.extend(stream.push.iter().map(|url| Push {
                target: url.clone(),
                stream: Some(stream.name.name.clone()),
            }));
        }
        if let Some(push) = pushes.iter().find(|p| p.target.tls) {
            return Err(format!(
                "push to {}: TLS (rtmps://, icecasts://) is not built into this zerocast; use \
                 rtmp:// or icecast://",
                push.target
            ));
        }
        let access = &settings.access;
        Ok(Self {
            access: Access {
                app: settings.app.clone(),
                allow_publish: access.allow_publish.clone(),
                publish_key: access.publish_key.clone(),
                stream_keys: settings
                    .streams
                    .iter()
                    .filter_map(|s| Some((s.name.name.clone(), s.key.clone()?)))
                    .collect(),
                allow_play: access.allow_play.clone(),
                deny_play: access.deny_play.clone(),
                play_key: access.play_key.clone(),
            },
            capture: (settings.source != SourceSpec::None).then(|| settings.stream.name.clone()),
            default_stream: settings.stream.name.clone(),
            join_ms: u64::from(settings.join_ms),
            max_clients: settings.max_clients as usize,
            max_per_addr: settings.max_per_addr,
            max_streams: settings.max_streams,
            handshake_timeout_ms: u64::from(settings.handshake_timeout_ms),
            idle_timeout_ms: u64::from(settings.idle_timeout_ms),
            publish_timeout_ms: u64::from(settings.publish_timeout_ms),
            pushes,
            send_interval_ms: u64::from(settings.send_interval_ms),
            max_sends_per_s: u64::from(settings.max_sends_per_s),
            recording: crate::hub::Recording {
                all: settings.record.clone(),
                streams: settings
                    .streams
                    .iter()
                    .filter_map(|s| Some((s.name.name.clone(), s.record.clone()?)))
                    .collect(),
                settings: Some(crate::record::Settings {
                    interval_s: settings.record_interval_s,
                    max_mb: settings.record_max_mb,
                    keep_mb: settings.record_keep_mb,
                    raw: true,
                }),
            },
            listeners: listeners::ListenerLimits::from_settings(settings),
        })
    }
}

/// One configured push.
#[derive(Clone, Debug)]
pub struct Push {
    /// The upstream; without a name, each stream is pushed under its own name.
    pub target: Target,
    /// The local stream pushed; `None`: `--stream`'s when the URL has a name, every published
    /// stream when it has none.
    pub stream: Option<String>,
}

/// Counters for the status line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Players currently receiving audio.
    pub listeners: usize,
    /// Publishers (peers) now.
    pub publishers: usize,
    /// Streams in the table.
    pub streams: usize,
    /// Bytes written to all sockets since start.
    pub bytes_sent: u64,
    /// Messages skipped because players fell behind the ring.
    pub skipped_messages: u64,
}

/// The server.
pub struct Server {
    listener: TcpListener,
    conns: Vec<Option<Box<Conn>>>,
    hub: Hub,
    options: Options,
    session_config: ServerConfig,
    urandom: File,
    token_base: usize,
    counters: Counters,
    /// Connection deadlines, lazily invalidated: an entry counts only while it equals the
    /// connection's `scheduled` (so a turn costs O(log n) per change, not O(connections)).
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The capture's renditions, each feeding its own stream.
    capture: Vec<(StreamId, Rendition)>,
    encode_failed: bool,
    /// Streams with audio not yet sent to their readers (the send schedule).
    dirty: Vec<Unsent>,
    /// Reused by `flush_dirty` for the list of a stream's readers.
    readers_scratch: Vec<usize>,
    relays: Relays,
    /// Takes the blocking calls (name resolution) off the loop; started with the loop.
    worker: Option<Worker>,
    /// Connections to close once the one being handled is back in the slab (a publisher
    /// replaced by a new one).
    pending_close: Vec<(usize, Close)>,
    /// The settings running now, which SIGHUP re-reads.
    settings: Settings,
    /// The core's clock is milliseconds since this instant.
    epoch: StdInstant,
    /// The HTTP listener, when there is one ([`Server::listen_http`]).
    http: Option<http::HttpSide>,
    /// The RTSP listener, when there is one ([`Server::listen_rtsp`]).
    rtsp: Option<rtsp::RtspSide>,
    /// Connections accepted since start, RTMP, HTTP and RTSP.
    accepted: u64,
    /// The capture's state, overruns and drift, as the loop last reported them.
    capture_status: Option<CaptureStatus>,
    /// HTTP listeners of the bulk send class now (for the send budget).
    bulk_readers: usize,
    /// HTTP listeners waiting for the first audio of a mount, by connection.
    http_waiting: Vec<(usize, crate::http::route::Mount)>,
    /// Accepting is paused until then (after `accept` failed: out of descriptors).
    accept_paused: Option<Instant>,
    /// When a failed accept was last logged (at most once a minute).
    accept_warned: Option<Instant>,
    /// The descriptor given up when the others run out.
    reserve: crate::fdlimit::Reserve,
    /// Connections that stopped reading at their budget with input left: read again next turn.
    readable: Vec<usize>,
    /// Recent wrong keys and passwords, per address group.
    guesses: crate::guesses::Guesses,
    /// The day's listeners.
    audience: Audience,
    /// Where a listener's line goes when it leaves.
    access_log: AccessLog,
    /// Hook calls made since start (each call's id).
    hook_jobs: u64,
}

impl Server {
    /// Binds `addr`; the listener will be token `token_base`, connections the tokens after it.
    /// `capture` holds the local capture's renditions, each with the name of its stream.
    pub fn bind(
        addr: SocketAddr,
        options: Options,
        capture: Vec<(String, Rendition)>,
        settings: Settings,
        token_base: usize,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let session_config = ServerConfig {
            chunk_size: CHUNK_SIZE,
            handshake_timeout_ms: options.handshake_timeout_ms,
            idle_timeout_ms: options.idle_timeout_ms,
            ..ServerConfig::default()
        };
        let mut hub = Hub::new(options.max_streams.max(1));
        hub.recording = options.recording.clone();
        // An Icecast push reads a stream's MP3 or ADTS ring, which exist with HTTP on.
        if options.pushes.iter().any(|p| p.target.icecast) {
            hub.enable_http();
        }
        let mut renditions = Vec::with_capacity(capture.len());
        for (name, rendition) in capture {
            let id = hub
                .find_or_create(&options.access.app, &name)
                .map_err(|e| io::Error::other(e.to_string()))?;
            if let Some(stream) = hub.get_mut(id) {
                stream.set_publisher(Publisher::Capture);
                let mut body = [0u8; 512];
                // The empty `videocodecid` object tells ffmpeg's flvdec no video will come, so
                // players start at once instead of probing for ~5 s (protocol-notes section 6).
                if let Ok(len) = flv::encode_on_metadata(&mut body, &rendition.metadata(), true) {
                    stream.set_metadata(&body[..len]);
                }
                if let Some(header) = rendition.sequence_header() {
                    stream.push_audio(0, header);
                }
            }
            renditions.push((id, rendition));
        }
        let capture = renditions;
        let settings_access_log = settings.http.access_log.clone();
        let slots = options.max_clients + options.pushes.len() * options.max_streams.max(1);
        let mut conns = Vec::with_capacity(slots);
        conns.resize_with(slots, || None);
        let epoch = StdInstant::now();
        let mut server = Self {
            listener,
            conns,
            hub,
            options,
            session_config,
            urandom: File::open("/dev/urandom")?,
            token_base,
            counters: Counters::default(),
            timers: BinaryHeap::new(),
            capture,
            encode_failed: false,
            dirty: Vec::new(),
            readers_scratch: Vec::new(),
            relays: Relays::default(),
            worker: None,
            pending_close: Vec::new(),
            settings,
            epoch,
            http: None,
            rtsp: None,
            accepted: 0,
            capture_status: None,
            bulk_readers: 0,
            http_waiting: Vec::new(),
            accept_paused: None,
            accept_warned: None,
            reserve: crate::fdlimit::Reserve::open(),
            readable: Vec::new(),
            guesses: crate::guesses::Guesses::default(),
            audience: Audience::default(),
            access_log: AccessLog::new(settings_access_log),
            hook_jobs: 0,
        };
        server.add_relays(Instant::from_millis(0));
        Ok(server)
    }

    /// Descriptors the configured limits need: every connection slot (RTMP, HTTP, pushes), a
    /// recording per stream, and [`crate::fdlimit::MARGIN`].
    pub fn descriptors_needed(&self) -> u64 {
        (self.conns.len() + self.options.max_streams) as u64 + crate::fdlimit::MARGIN
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn core_time(&self, now: StdInstant) -> Instant {
        Instant::from_millis(now.saturating_duration_since(self.epoch).as_millis() as u64)
    }

    /// The first std instant at which the core's clock reads `at` or later (the core counts
    /// whole milliseconds, so round up, or the loop would wake a moment early and spin).
    fn std_time(&self, at: Instant) -> StdInstant {
        self.epoch + std::time::Duration::from_millis(at.as_millis() + 1)
    }

    /// Counters for the status line.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            bytes_sent: self.counters.bytes_sent,
            skipped_messages: self.counters.skipped_messages,
            ..Stats::default()
        };
        for conn in self.conns.iter().flatten() {
            match conn.kind {
                Kind::Peer {
                    role: Role::Player(_),
                    ..
                } => stats.listeners += 1,
                Kind::Peer {
                    role: Role::Publisher { .. },
                    ..
                } => stats.publishers += 1,
                Kind::Http(ref h) if h.reader.is_some() => stats.listeners += 1,
                Kind::Rtsp(ref r) if r.playing().is_some() => stats.listeners += 1,
                _ => {}
            }
        }
        stats.streams = self.hub.iter().count();
        stats
    }

    fn entropy<const N: usize>(&mut self) -> [u8; N] {
        let mut bytes = [0u8; N];
        if let Err(e) = self.urandom.read_exact(&mut bytes) {
            warn!("reading /dev/urandom: {e}");
        }
        bytes
    }

    fn token(&self, index: usize) -> Token {
        Token(self.token_base + 1 + index)
    }

    /// Feeds what a connection received to its session and acts on the events.
    fn read(&mut self, index: usize, now: Instant) -> Result<(), Close> {
        let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) else {
            return Ok(());
        };
        let result = conn.read_input(crate::conn::READ_BUDGET, |conn, len| {
            self.process(conn, index, len, now)
        });
        if matches!(result, Ok(ReadEnd::Budget)) && !self.readable.contains(&index) {
            self.readable.push(index);
        }
        if let Kind::Peer { session, .. } = &conn.kind {
            if session.messages_skipped() > 0 && !conn.skip_logged {
                conn.skip_logged = true;
                info!(
                    "{}: sends video too; zerocast serves its audio and skips the video unread",
                    conn.peer
                );
            }
        }
        self.conns[index] = Some(conn);
        result.map(|_| ())
    }

    /// Runs the session over `len` received bytes; returns how many it consumed.
    fn process(
        &mut self,
        conn: &mut Conn,
        index: usize,
        len: usize,
        now: Instant,
    ) -> Result<usize, Close> {
        let mut start = 0;
        loop {
            let peer = conn.peer;
            let (input, kind, reader) = conn.split(len);
            let rest = &input[start..];
            let (consumed, decision) = match kind {
                Kind::Peer { session, role } => {
                    let received = session.receive(now, rest)?;
                    let consumed = received.consumed;
                    let decision = match received.event {
                        None => None,
                        Some(event) => self.peer_event(index, peer, role, event, now),
                    };
                    (consumed, decision)
                }
                Kind::Relay {
                    session,
                    relay,
                    stream,
                } => {
                    let link = (*relay, *stream);
                    let consumed = self.relay_input(index, session, link, reader, rest, now)?;
                    (consumed, None)
                }
                Kind::Http(http) => {
                    let admitted = self.http_input(http, peer, index, rest);
                    let consumed = rest.len();
                    if let Some(admitted) = admitted {
                        self.http_admitted(conn, admitted);
                    }
                    (consumed, None)
                }
                Kind::Rtsp(rtsp) => {
                    let granted = self.rtsp_input(rtsp, peer, index, rest, now)?;
                    let consumed = rest.len();
                    if granted.is_some() {
                        conn.granted = granted;
                    }
                    (consumed, None)
                }
            };
            start += consumed;
            if let Some(decision) = decision {
                self.decide(conn, index, decision, now)?;
            }
            if consumed == 0 {
                return Ok(start);
            }
        }
    }

    /// The access rules' answer to `request` from `peer`, RTMP's and RTSP's alike: an address
    /// locked out after wrong keys ([`crate::guesses`]) is refused unchecked where a key is
    /// needed, and a wrong key counts towards its lockout.
    fn check_access(
        &mut self,
        peer: SocketAddr,
        request: &Request<'_>,
        publish: bool,
        now: Instant,
    ) -> Result<(), Denied> {
        let access = &self.options.access;
        let group = Group::of(peer.ip());
        let allowed = if access.takes_key(request, publish) && self.guesses.locked(group, now) {
            Err(Denied::LockedOut)
        } else if publish {
            access.may_publish(request)
        } else {
            access.may_play(request)
        };
        if allowed == Err(Denied::WrongKey) {
            self.guesses.failed(group, now);
        }
        allowed
    }

    /// Who may play or publish what, and which stream it is: the access rules, then the table.
    /// A stream the local capture feeds (its own or one of its renditions) takes no publisher.
    /// A player of a name not in the table waits outside it ([`crate::waiting`]): only
    /// publishers (and the capture) create streams. An address locked out after wrong keys
    /// ([`crate::guesses`]) is refused unchecked where a key is needed. Every answer is logged
    /// once with the peer's address.
    fn route(
        &mut self,
        peer: SocketAddr,
        request: &Request<'_>,
        publish: bool,
        now: Instant,
    ) -> Decision {
        let (app, name) = (request.app_base(), request.name_base());
        // What the peer is let in with, kept for a reload to check again.
        let granted = || Granted {
            app: request.app.to_owned(),
            name: request.name.to_owned(),
            publish,
        };
        let allowed = self.check_access(peer, request, publish, now);
        let decision = if publish {
            let verdict = allowed.and_then(|()| {
                let captured = self
                    .hub
                    .find(app, name)
                    .and_then(|id| self.hub.get(id))
                    .is_some_and(|s| s.publisher() == Publisher::Capture);
                if captured {
                    Err(Denied::CaptureStream)
                } else {
                    self.hub.find_or_create(app, name)
                }
            });
            verdict.map_or_else(Decision::RefusePublish, |id| {
                Decision::Publish(id, granted())
            })
        } else {
            let verdict = allowed.and_then(|()| {
                let others = listeners::listening(&self.conns);
                self.options
                    .listeners
                    .admits(others, peer.ip(), app, name)
                    .map_err(|full| match full {
                        listeners::Full::Stream => Denied::TooManyListeners,
                        listeners::Full::Address => Denied::TooManyListenersFromAddress,
                    })?;
                match self.hub.find(app, name) {
                    Some(id) => Ok(Decision::Play(id, granted())),
                    None => (self.hub.waiting)
                        .admits(name, peer.ip())
                        .map(|()| Decision::Wait(name.to_owned(), granted())),
                }
            });
            verdict.unwrap_or_else(Decision::RefusePlay)
        };
        let verb = if publish { "publish" } else { "play" };
        // The names are the peer's own text, shown escaped.
        let (app, name) = (Escaped(app), Escaped(name));
        match &decision {
            Decision::Wait(..) => info!("{peer}: {verb} {app}/{name}: waiting for its publisher"),
            // The peer is closed right after a refusal, so this is once per attempt.
            Decision::RefusePlay(why) | Decision::RefusePublish(why) => {
                warn!("{peer}: {verb} {app}/{name} refused: {why}")
            }
            _ => info!("{peer}: {verb} {app}/{name}"),
        }
        decision
    }

    /// Handles a peer's event; returns a decision to apply to its session.
    fn peer_event(
        &mut self,
        index: usize,
        peer: SocketAddr,
        role: &mut Role,
        event: Event<'_>,
        now: Instant,
    ) -> Option<Decision> {
        if let Event::PlayRequested { app, name } | Event::PublishRequested { app, name } = event {
            let publish = matches!(event, Event::PublishRequested { .. });
            let request = Request {
                peer: peer.ip(),
                app,
                name,
            };
            if let Some(held) = self.hold_for_hook(&request, publish) {
                return Some(held);
            }
            return Some(self.route(peer, &request, publish, now));
        }
        match event {
            Event::Audio { timestamp, payload } => {
                if let Role::Publisher { stream, last_audio } = role {
                    *last_audio = now;
                    let id = *stream;
                    if let Some(s) = self.hub.get_mut(id) {
                        if s.publisher() == Publisher::Peer(index) {
                            let header = s.last_header();
                            s.push_audio(timestamp, payload);
                            if s.last_header() != header {
                                describe(s);
                            }
                            self.mark_dirty(id);
                        }
                    }
                }
                None
            }
            Event::Metadata { body } => {
                // The publisher's own metadata describes its video too; players get the
                // audio-only metadata zerocast builds from the audio (see `describe`).
                debug!("{peer}: metadata of {} bytes", body.len());
                None
            }
            Event::PlayStopped => Some(Decision::StopPlay),
            Event::Unpublished => Some(Decision::StopPublish),
            Event::Connected {
                app,
                tc_url,
                flash_ver,
            } if self.hooks_on() => Some(Decision::Connected {
                app: app.to_owned(),
                peer: crate::hooks::PeerInfo {
                    flashver: crate::audience::kept(flash_ver),
                    tcurl: crate::audience::kept(tc_url),
                },
            }),
            Event::Connected { .. }
            | Event::PlayRequested { .. }
            | Event::PublishRequested { .. } => None,
        }
    }

    fn decide(
        &mut self,
        conn: &mut Conn,
        index: usize,
        decision: Decision,
        now: Instant,
    ) -> Result<(), Close> {
        if matches!(decision, Decision::StopPlay | Decision::StopPublish) {
            self.hooks_done(conn, index);
            // A stop while its hook is asked: the answer, when it comes, finds nobody.
            if let Some(h) = conn.hooks.as_mut() {
                h.pending = None;
            }
        }
        let Kind::Peer { session, role } = &mut conn.kind else {
            return Ok(());
        };
        match decision {
            Decision::Connected { app, peer } => self.hook_connected(conn, index, &app, peer),
            Decision::Hold { app, name, publish } => {
                if let Some(refused) = self.ask_hook(conn, index, app, name, publish, now) {
                    return self.decide(conn, index, refused, now);
                }
            }
            Decision::Play(id, granted) => {
                session.accept_play()?;
                let listening = self.rtmp_listening(&granted, now);
                conn.granted = Some(granted);
                self.join(conn, index, id);
                self.listener_joined(conn, listening);
            }
            Decision::Wait(name, granted) => {
                // nginx-rtmp's answer too: the play started; the audio comes with a publisher.
                session.accept_play()?;
                let listening = self.rtmp_listening(&granted, now);
                conn.granted = Some(granted);
                *role = Role::Waiting;
                conn.shrink_for_player();
                self.hub.waiting.add(index, &name, conn.peer.ip());
                self.listener_joined(conn, listening);
            }
            Decision::RefusePlay(why) => {
                session.refuse_play(match why {
                    Denied::TooManyStreams
                    | Denied::UnknownApp
                    | Denied::BadName
                    | Denied::TooManyWaiting => Refusal::NotFound,
                    _ => Refusal::Denied,
                })?;
                conn.close_after_flush = true;
            }
            Decision::Publish(id, granted) => {
                session.accept_publish()?;
                conn.granted = Some(granted);
                *role = Role::Publisher {
                    stream: id,
                    last_audio: now,
                };
                conn.grow_for_publisher();
                let old = self
                    .hub
                    .get_mut(id)
                    .map_or(Publisher::None, |s| s.set_publisher(Publisher::Peer(index)));
                if let Publisher::Peer(old) = old {
                    // A new publisher with valid credentials takes over at once, even while
                    // the old connection is open but silent (a Wi-Fi drop): nginx-rtmp answers
                    // "Already publishing" until its timeout instead.
                    info!("{}: takes over from the previous publisher", conn.peer);
                    self.pending_close.push((old, Close::Replaced));
                }
                self.join_waiting(id);
                self.notify_readers(id);
                self.relays_stream_ready(now);
            }
            Decision::RefusePublish(why) => {
                session.refuse_publish(match why {
                    Denied::CaptureStream => Refusal::BadName,
                    _ => Refusal::Denied,
                })?;
                conn.close_after_flush = true;
            }
            Decision::StopPlay => {
                match *role {
                    Role::Player(id) => {
                        if let Some(s) = self.hub.get_mut(id) {
                            s.remove_reader(index);
                        }
                        self.hub.release_if_idle(id);
                    }
                    Role::Waiting => self.hub.waiting.remove(index),
                    Role::Idle | Role::Publisher { .. } => {}
                }
                *role = Role::Idle;
                if let Some(r) = conn.reader.as_mut() {
                    r.stop();
                }
                self.listener_left(conn, now);
            }
            Decision::StopPublish => {
                if let Role::Publisher { stream, .. } = *role {
                    self.unpublish(stream, index, now);
                }
                *role = Role::Idle;
            }
        }
        Ok(())
    }
}

impl Server {
    /// An RTMP player's session as a listener, from its request.
    fn rtmp_listening(&self, granted: &Granted, now: Instant) -> crate::audience::Listening {
        let (app, name) = (
            crate::hub::split_query(&granted.app).0,
            crate::hub::split_query(&granted.name).0,
        );
        self.options.listeners.start(
            now,
            app,
            name,
            listeners::rtmp_request(app, name),
            None,
            None,
        )
    }

    /// Makes the player `conn` (connection `index`) a reader of stream `id`, from its join point.
    fn join(&mut self, conn: &mut Conn, index: usize, id: StreamId) {
        if let Kind::Peer { role, .. } = &mut conn.kind {
            *role = Role::Player(id);
        }
        conn.shrink_for_player();
        if let Some(stream) = self.hub.get_mut(id) {
            stream.add_reader(index);
            let cursor = stream.join_cursor(self.options.join_ms);
            conn.reader = Some(RtmpReader::new(id, cursor));
        }
    }

    /// The players waiting for the name of `id` join it: its publisher arrived.
    fn join_waiting(&mut self, id: StreamId) {
        let Some((app, name)) = self
            .hub
            .get(id)
            .map(|s| (s.app().to_owned(), s.name().to_owned()))
        else {
            return;
        };
        let waiting = self.hub.waiting.take(&name);
        if !waiting.is_empty() {
            info!("{app}/{name}: {} waiting player(s) join", waiting.len());
        }
        for index in waiting {
            let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) else {
                continue;
            };
            self.join(&mut conn, index, id);
            self.conns[index] = Some(conn);
        }
    }

    /// The publisher `index` of stream `id` left: the stream keeps its players and its clock.
    fn unpublish(&mut self, id: StreamId, index: usize, now: Instant) {
        if let Some(s) = self.hub.get_mut(id) {
            if s.publisher() == Publisher::Peer(index) {
                info!(
                    "{}/{}: publisher gone; players stay, silence follows",
                    s.app(),
                    s.name()
                );
                s.orphan(now);
                let (app, name) = (s.app().to_owned(), s.name().to_owned());
                self.end_per_publish_relays(&app, &name);
            }
        }
        self.hub.release_if_idle(id);
    }

    /// Tells the players of `id` that a publisher started (`NetStream.Play.PublishNotify`).
    fn notify_readers(&mut self, id: StreamId) {
        let readers = self
            .hub
            .get(id)
            .map(|s| s.readers().to_vec())
            .unwrap_or_default();
        for index in readers {
            if let Some(Some(conn)) = self.conns.get_mut(index) {
                if let Kind::Peer { session, .. } = &mut conn.kind {
                    let _ = session.notify_published();
                }
            }
        }
    }

    /// Handles readiness of the listener or a connection.
    fn handle_ready(&mut self, registry: &Registry, token: Token, now: Instant) {
        if token == WORKER_TOKEN {
            self.worker_ready(registry, now);
            self.close_pending(registry, now);
            return;
        }
        let listener = if token.0 == self.token_base {
            Some(Side::Rtmp)
        } else if self.is_http_listener(token) {
            Some(Side::Http)
        } else if self.is_rtsp_listener(token) {
            Some(Side::Rtsp)
        } else {
            None
        };
        if let Some(side) = listener {
            self.accept(registry, now, side);
            return;
        }
        let Some(index) = token.0.checked_sub(self.token_base + 1) else {
            return;
        };
        self.serve(registry, index, now);
        self.flush_dirty(registry, now);
    }

    /// Reads what connection `index` has (up to its budget) and writes what it is due.
    fn serve(&mut self, registry: &Registry, index: usize, now: Instant) {
        if !matches!(self.conns.get(index), Some(Some(_))) {
            return;
        }
        let result = self
            .read(index, now)
            .and_then(|()| self.flush_one(index, now));
        if let Err(why) = result {
            self.close(registry, index, why, now);
        }
        self.close_pending(registry, now);
        self.reschedule(index);
        self.forward_titles();
    }

    /// Reads again from the connections that stopped at their read budget last turn (the
    /// poll is edge-triggered: it will not report their input again).
    fn serve_readable(&mut self, registry: &Registry, now: Instant) {
        for index in std::mem::take(&mut self.readable) {
            self.serve(registry, index, now);
        }
    }

    fn close_pending(&mut self, registry: &Registry, now: Instant) {
        while let Some((index, why)) = self.pending_close.pop() {
            self.close(registry, index, why, now);
        }
    }

    fn flush_one(&mut self, index: usize, now: Instant) -> Result<(), Close> {
        match self.conns.get_mut(index) {
            Some(Some(conn)) => conn.flush(now, &self.hub, &mut self.counters),
            _ => Ok(()),
        }
    }

    /// Notes that `id` has audio its readers have not been sent.
    fn mark_dirty(&mut self, id: StreamId) {
        if self.dirty.iter().any(|u| u.stream == id) {
            return;
        }
        self.wake_relays_with_audio();
        if !self.http_waiting.is_empty() {
            self.start_waiting_listeners();
        }
        let first = self
            .hub
            .get(id)
            .and_then(|s| s.ring().latest_time())
            .unwrap_or(0);
        self.dirty.push(Unsent {
            stream: id,
            first,
            since: None,
        });
    }

    /// The send interval now: `--send-ms`, or longer when the readers of all streams would be
    /// written more than `--max-sends-per-s` times a second at it, up to [`SEND_CEILING_MS`].
    /// Each write costs a system call and a packet whatever it carries, so a crowd is served
    /// in fewer, larger writes and its CPU stays bounded, while a few players keep the lowest
    /// delay (docs/benchmarks.md, "The send schedule").
    fn send_interval(&self) -> u64 {
        let readers: usize = self.hub.iter().map(|(_, s)| s.readers().len()).sum();
        // A bulk listener is written once per block, not once per interval: it counts as the
        // share of the budget it takes.
        let bulk = self.bulk_readers.min(readers);
        let send_ms = self.options.send_interval_ms.max(1) as usize;
        let weighted = readers - bulk + (bulk * send_ms).div_ceil(crate::http::BULK_MS as usize);
        send_interval(
            self.options.send_interval_ms,
            self.options.max_sends_per_s,
            weighted,
        )
    }

    /// Sends new audio to the readers of the streams whose unsent audio is due (see [`Unsent`]);
    /// readers whose socket is full are left alone until it says writable.
    fn flush_dirty(&mut self, registry: &Registry, now: Instant) {
        let interval = self.send_interval();
        let mut i = 0;
        while i < self.dirty.len() {
            let unsent = &mut self.dirty[i];
            let since = *unsent.since.get_or_insert(now);
            let span = self.hub.get(unsent.stream).map_or(u64::MAX, |s| {
                unsent_span(s.ring().latest_time(), s.step_ms(), unsent.first)
            });
            let due = span >= interval || now.saturating_millis_since(since) >= interval;
            if !due {
                i += 1;
                continue;
            }
            let id = self.dirty.swap_remove(i).stream;
            // Copied aside (closing a reader changes the stream's list) into a buffer kept
            // across flushes: no allocation per period.
            let mut readers = std::mem::take(&mut self.readers_scratch);
            readers.clear();
            if let Some(s) = self.hub.get(id) {
                readers.extend_from_slice(s.readers());
            }
            for &index in &readers {
                let result = match self.conns.get_mut(index) {
                    Some(Some(conn)) if !conn.is_blocked() && !holds_back(conn, now) => {
                        conn.flush(now, &self.hub, &mut self.counters)
                    }
                    _ => continue,
                };
                match result {
                    Err(why) => self.close(registry, index, why, now),
                    Ok(()) => self.reschedule(index),
                }
            }
            self.readers_scratch = readers;
        }
    }

    fn close(&mut self, registry: &Registry, index: usize, why: Close, now: Instant) {
        let Some(Some(mut conn)) = self.conns.get_mut(index).map(Option::take) else {
            return;
        };
        self.listener_left(&mut conn, now);
        self.hooks_done(&conn, index);
        let _ = registry.deregister(&mut conn.socket);
        match &why {
            Close::PeerClosed => info!("{}: disconnected", conn.peer),
            Close::Answered => debug!("{}: answered", conn.peer),
            _ => info!("{}: closed: {why}", conn.peer),
        }
        match conn.kind {
            Kind::Peer { role, .. } => match role {
                Role::Player(id) => {
                    if let Some(s) = self.hub.get_mut(id) {
                        s.remove_reader(index);
                    }
                    self.hub.release_if_idle(id);
                }
                Role::Publisher { stream, .. } => self.unpublish(stream, index, now),
                Role::Waiting => self.hub.waiting.remove(index),
                Role::Idle => {}
            },
            Kind::Relay { relay, stream, .. } => {
                if let Some(s) = self.hub.get_mut(stream) {
                    s.remove_reader(index);
                }
                if self.relays.get(relay).and_then(|r| r.conn()) == Some(index) {
                    self.relay_closed(relay, &why, conn.bytes_sent, now);
                }
                self.hub.release_if_idle(stream);
            }
            Kind::Http(http) => self.http_closed(&http, index),
            Kind::Rtsp(rtsp) => self.rtsp_closed(&rtsp, index),
        }
    }

    /// Files the connection's next deadline in the heap if it is earlier than the one filed.
    fn reschedule(&mut self, index: usize) {
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        let stall_ms = stall_limit(&conn.kind, self.options.idle_timeout_ms);
        let stall = conn
            .blocked_since
            .map(|t| t.saturating_add_millis(stall_ms));
        let silent = match conn.kind {
            Kind::Peer {
                role: Role::Publisher { last_audio, .. },
                ..
            } => Some(last_audio.saturating_add_millis(self.options.publish_timeout_ms)),
            _ => None,
        };
        let limit = conn.listening.as_ref().and_then(|l| l.until);
        let hook = Self::hook_deadline(conn);
        let Some(at) = [conn.session_deadline(), stall, silent, limit, hook]
            .into_iter()
            .flatten()
            .min()
        else {
            return;
        };
        if conn.scheduled.map_or(true, |s| at < s) {
            conn.scheduled = Some(at);
            self.timers.push(Reverse((at, index)));
        }
    }

    /// Runs one connection's timers.
    fn expire(&mut self, registry: &Registry, index: usize, now: Instant) {
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        if let Some(why) = Self::http_expired(conn, now).or_else(|| Self::rtsp_expired(conn, now)) {
            self.close(registry, index, why, now);
            return;
        }
        if self.hook_expired(registry, index, now) {
            return;
        }
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        if let Some(l) = conn
            .listening
            .as_ref()
            .filter(|l| l.until.is_some_and(|u| now >= u))
        {
            let seconds = now.saturating_millis_since(l.since) / 1000;
            self.close(registry, index, Close::ListenedLongEnough(seconds), now);
            return;
        }
        let idle = stall_limit(&conn.kind, self.options.idle_timeout_ms);
        let result = match (conn.blocked_since, &conn.kind) {
            (Some(since), _) if now.saturating_millis_since(since) >= idle => {
                Err(Close::Stalled(now.saturating_millis_since(since)))
            }
            (
                _,
                Kind::Peer {
                    role: Role::Publisher { last_audio, .. },
                    ..
                },
            ) if now.saturating_millis_since(*last_audio) >= self.options.publish_timeout_ms => {
                Err(Close::PublisherSilent(
                    now.saturating_millis_since(*last_audio),
                ))
            }
            _ => conn
                .session_timeout(now)
                .and_then(|()| conn.flush(now, &self.hub, &mut self.counters)),
        };
        match result {
            Err(why) => self.close(registry, index, why, now),
            Ok(()) => self.reschedule(index),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conn = self.timers.peek().map(|Reverse((at, _))| *at);
        let silence = self
            .hub
            .iter()
            .filter_map(|(_, s)| s.silence_deadline())
            .min();
        let relay = self.relays.deadline();
        let send = self
            .dirty
            .iter()
            .filter_map(|u| u.since)
            .map(|t| t.saturating_add_millis(self.send_interval()))
            .min();
        // Input left at a read budget is due at once (poll without waiting).
        let readable = (!self.readable.is_empty()).then_some(Instant::from_millis(0));
        [conn, silence, relay, send, self.accept_paused, readable]
            .into_iter()
            .flatten()
            .min()
    }

    fn run_timers(&mut self, registry: &Registry, now: Instant) {
        self.serve_readable(registry, now);
        self.resume_accepting(registry, now);
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let current = matches!(self.conns.get(index), Some(Some(c)) if c.scheduled == Some(at));
            if current {
                if let Some(Some(conn)) = self.conns.get_mut(index) {
                    conn.scheduled = None;
                }
                self.expire(registry, index, now);
            }
        }
        let orphans: Vec<StreamId> = self
            .hub
            .iter_mut()
            .filter_map(|(id, s)| s.fill_silence(now).then_some(id))
            .collect();
        for id in orphans {
            self.mark_dirty(id);
        }
        self.expire_relays(now);
        self.add_relays(now);
        self.connect_relays(registry, now);
        self.close_pending(registry, now);
        self.flush_dirty(registry, now);
    }
}

impl Sink for Server {
    fn period(&mut self, pcm: &[i16], position_frames: u64) {
        self.measure_capture(pcm);
        for i in 0..self.capture.len() {
            let (id, rendition) = &mut self.capture[i];
            let id = *id;
            let Some(stream) = self.hub.get_mut(id) else {
                continue;
            };
            let result = rendition.push(pcm, position_frames, &mut |ts, body| {
                stream.push_audio(ts, body)
            });
            match result {
                Ok(()) => self.mark_dirty(id),
                Err(e) if !self.encode_failed => {
                    log::error!("encoding a period failed: {e}");
                    self.encode_failed = true;
                }
                Err(_) => {}
            }
        }
    }
}

impl Service for Server {
    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        self.worker = Some(Worker::start(registry)?);
        registry.register(
            &mut self.listener,
            Token(self.token_base),
            Interest::READABLE,
        )?;
        self.register_rtsp(registry)?;
        self.register_http(registry)
    }

    fn ready(&mut self, registry: &Registry, token: Token, now: StdInstant) {
        let now = self.core_time(now);
        self.handle_ready(registry, token, now);
    }

    fn flush(&mut self, registry: &Registry, now: StdInstant) {
        let now = self.core_time(now);
        self.flush_dirty(registry, now);
    }

    fn deadline(&self) -> Option<StdInstant> {
        self.next_deadline().map(|at| self.std_time(at))
    }

    fn timeout(&mut self, registry: &Registry, now: StdInstant) {
        let now = self.core_time(now);
        self.run_timers(registry, now);
    }

    fn shutdown(&mut self, registry: &Registry, now: StdInstant) {
        let now = self.core_time(now);
        // The input's last frames, short of a whole message, go out before the end of stream.
        for (id, rendition) in &mut self.capture {
            if let Some(stream) = self.hub.get_mut(*id) {
                if let Err(e) = rendition.finish(&mut |ts, body| stream.push_audio(ts, body)) {
                    log::error!("encoding the last frames failed: {e}");
                }
            }
        }
        for index in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            // Whatever is already queued for the player goes first, then the end of stream.
            let _ = conn.flush(now, &self.hub, &mut self.counters);
            conn.reader = None;
            let ended = match &mut conn.kind {
                Kind::Peer { session, .. } => session.end_play().is_ok(),
                Kind::Relay { session, .. } => match session {
                    Upstream::Rtmp(session) => session.unpublish().is_ok(),
                    Upstream::Icecast(_) => false,
                },
                Kind::Http(_) | Kind::Rtsp(_) => false,
            };
            if ended {
                let _ = conn.flush(now, &self.hub, &mut self.counters);
            }
            let _ = conn.socket.shutdown(std::net::Shutdown::Write);
            self.close(registry, index, Close::Shutdown, now);
        }
    }

    fn reload(&mut self, registry: &Registry, now: StdInstant) -> Result<(), String> {
        let now = self.core_time(now);
        Server::reload(self, registry, now)
    }

    fn counters(&self) -> (usize, u64) {
        let stats = self.stats();
        (stats.listeners, stats.bytes_sent)
    }

    fn source_status(&mut self, status: CaptureStatus) {
        self.capture_status = Some(status);
    }
}

/// Whether the send schedule leaves the connection for later: a bulk HTTP listener or an RTSP
/// player between its blocks.
fn holds_back(conn: &Conn, now: Instant) -> bool {
    match &conn.kind {
        Kind::Http(http) => http.holds_back(now),
        Kind::Rtsp(rtsp) => rtsp.holds_back(now),
        _ => false,
    }
}

/// Which listener a connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Rtmp,
    Http,
    Rtsp,
}

impl Side {
    /// The listener of a connection of `kind`; `None` for a push relay (which we opened).
    fn of(kind: &Kind) -> Option<Self> {
        match kind {
            Kind::Peer { .. } => Some(Side::Rtmp),
            Kind::Http(_) => Some(Side::Http),
            Kind::Rtsp(_) => Some(Side::Rtsp),
            Kind::Relay { .. } => None,
        }
    }
}

/// How long a connection's output may wait for its socket before it is closed: a push's
/// upstream is dead sooner than a player ([`crate::relay::DEAD_MS`]).
fn stall_limit(kind: &Kind, idle_timeout_ms: u64) -> u64 {
    match kind {
        Kind::Relay { .. } => idle_timeout_ms.min(crate::relay::DEAD_MS),
        _ => idle_timeout_ms,
    }
}

/// The longest the send interval grows under load: a player 100 ms behind is still ahead of
/// the seed's ~130 ms, and the join buffer and the ring are far longer.
const SEND_CEILING_MS: u64 = 100;

/// [`Server::send_interval`] for `readers` readers.
fn send_interval(send_ms: u64, max_sends_per_s: u64, readers: usize) -> u64 {
    if max_sends_per_s == 0 {
        return send_ms;
    }
    let needed = (readers as u64 * 1000).div_ceil(max_sends_per_s);
    send_ms.max(needed.min(SEND_CEILING_MS))
}

/// A stream with audio its readers have not been sent. Readers are written when the unsent
/// audio spans the send interval (`--send-ms`), or when its oldest message has waited that
/// long on the clock (a publisher that slowed down): with the interval at or below the capture
/// period every message goes out at once; above it, several periods go out in one write and one
/// TCP segment per player, fewer wake-ups and packets for a few tens of milliseconds of delay.
struct Unsent {
    stream: StreamId,
    /// Stream time of the first unsent message.
    first: u64,
    /// When the first unsent message was seen by the send schedule.
    since: Option<Instant>,
}

/// How much audio of a stream is unsent: from `first`, the stream time of its first unsent
/// message, to the end of its newest (stream time `latest`, `step` long). Zero, not a wrapped
/// huge span, when the newest is before `first` — a ring with nothing yet, or made anew — so
/// such an entry waits for the send interval on the clock rather than counting as due.
fn unsent_span(latest: Option<u64>, step: u64, first: u64) -> u64 {
    latest
        .unwrap_or(0)
        .saturating_add(step)
        .saturating_sub(first)
}

/// What the server decided about a peer's request.
enum Decision {
    Play(StreamId, Granted),
    /// Play a name nobody publishes yet: wait for its publisher outside the table.
    Wait(String, Granted),
    RefusePlay(Denied),
    Publish(StreamId, Granted),
    RefusePublish(Denied),
    StopPlay,
    StopPublish,
    /// Ask the play or publish hook, and decide on its answer.
    Hold {
        app: String,
        name: String,
        publish: bool,
    },
    /// The peer connected (with hooks configured): keep what it said, ask `on_connect`.
    Connected {
        app: String,
        peer: crate::hooks::PeerInfo,
    },
}

/// Builds the stream's audio-only `onMetaData` from its audio: codec, true rate (from the AAC
/// configuration when there is one), channels; `videocodecid` as an empty object so ffmpeg
/// players start at once (protocol-notes section 6).
fn describe(stream: &mut crate::stream::Stream) {
    let Some(header) = stream.last_header() else {
        return;
    };
    let rate = stream.true_rate().unwrap_or(header.rate.hz());
    let stereo = stream.true_channels().map_or(header.stereo, |c| c == 2);
    let meta = Metadata {
        audiocodecid: header.format as u8,
        audiosamplerate: rate,
        audiosamplesize: if header.sixteen_bit { 16 } else { 8 },
        stereo,
        audiodatarate_kbps: 0.0,
    };
    let mut body = [0u8; 512];
    if let Ok(len) = flv::encode_on_metadata(&mut body, &meta, true) {
        stream.set_metadata(&body[..len]);
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::Conn;
    use crate::conn::{
        PeerSession, RelaySession, PLAYER_ARENA, PLAYER_RX, PUBLISHER_ARENA, PUBLISHER_RX, RX,
    };
    use crate::stream::{AudioRing, Stream};

    /// The unsent span is the audio from the first unsent message to the end of the newest, and
    /// never wraps below zero.
    #[test]
    fn unsent_span_is_saturating() {
        use super::unsent_span;
        assert_eq!(unsent_span(Some(1000), 20, 1000), 20);
        assert_eq!(unsent_span(Some(1060), 20, 1000), 80);
        assert_eq!(unsent_span(None, 20, 1000), 0, "an empty ring");
        assert_eq!(unsent_span(Some(40), 20, 1000), 0, "a ring made anew");
        assert_eq!(unsent_span(Some(u64::MAX), 20, 0), u64::MAX);
    }

    /// The interval stays `--send-ms` while the writes fit the budget, grows with the readers
    /// past it, and stops at the ceiling; 0 turns the budget off.
    #[test]
    fn send_interval_grows_with_the_readers_past_the_budget() {
        use super::send_interval;
        assert_eq!(send_interval(20, 1500, 1), 20);
        assert_eq!(send_interval(20, 1500, 30), 20);
        assert_eq!(send_interval(20, 1500, 31), 21);
        assert_eq!(send_interval(20, 1500, 100), 67);
        assert_eq!(send_interval(20, 1500, 1000), 100);
        assert_eq!(send_interval(200, 1500, 1000), 200);
        assert_eq!(send_interval(20, 0, 1000), 20);
    }

    /// What a stream, a publisher (or player) and a relay cost, for docs/architecture.md.
    #[test]
    fn memory_of_a_stream_and_a_connection_is_printed() {
        let stream = size_of::<Stream>() + size_of::<AudioRing>();
        let player = size_of::<Conn>() + size_of::<PeerSession>() + PLAYER_ARENA + PLAYER_RX;
        let publisher =
            size_of::<Conn>() + size_of::<PeerSession>() + PUBLISHER_ARENA + PUBLISHER_RX;
        let relay = size_of::<Conn>() + size_of::<RelaySession>() + RX;
        println!("stream (table entry + ring): {stream} bytes");
        println!("player connection: {player} bytes + its tail while one is pending");
        println!("publisher connection: {publisher} bytes");
        println!("push relay connection: {relay} bytes + its tail");
        assert!(stream > size_of::<AudioRing>() && publisher > player);
    }
}
