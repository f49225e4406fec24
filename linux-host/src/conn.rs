//! A connection: a socket, what it is (an RTMP peer — player or publisher —, a push relay to
//! an upstream server, an HTTP connection or an RTSP connection), and for a player or relay its reader of the
//! stream's ring ([`RtmpReader`], on the one [`Egress`]). One write call per flush: the tail,
//! the session's own bytes and the ring's slices go out in one `writev`.
//!
//! The HTTP and RTSP sides depend on this module, not the other way: an HTTP or RTSP connection
//! is any [`HttpPart`], which the server fixes to its listeners' types.

use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;

use mio::net::TcpStream;
use zerocast_core::handshake::ServerHandshake;
use zerocast_core::ring::{Cursor, Slices};
use zerocast_core::session::{ClientSession, ServerConfig, ServerSessionIn, SessionError};
use zerocast_core::time::Instant;

use crate::egress::{join, write, Counters, Egress};
use crate::formats::{Format, HttpRing};
use crate::hub::{Hub, StreamId};
use crate::icecast::SourceClient;

/// Reassembly budget of a connection until it plays or publishes: it sends only commands,
/// < 1 KiB (ffmpeg's connect is 197 bytes, OBS's about 300).
pub const ARENA: usize = 2 * 1024;
/// Reassembly budget of a player once it plays: all it still sends are acknowledgements, pongs
/// and short stream commands (pause, closeStream, deleteStream: < 100 bytes each).
pub const PLAYER_ARENA: usize = 512;
/// Socket read buffer of a player once it plays (the session consumes every complete chunk
/// header, so what stays unconsumed is less than one header).
pub const PLAYER_RX: usize = 512;
/// Reassembly budget of a publisher: room for its audio messages (a 4096-frame PCM message is
/// 16 KiB + 1) and its metadata.
pub const PUBLISHER_ARENA: usize = 16 * 1024;
/// A peer session's own output: control messages and command replies (the connect reply, the
/// largest, is under 300 B; a player that stops reading only adds a ping per half
/// idle timeout and at most ten pongs a second before it is closed as stalled).
pub const PEER_TX: usize = 2 * 1024;
/// A relay session's own output: its commands and control messages.
pub const TX: usize = 4 * 1024;
/// Socket read buffer of a connection until it plays or publishes.
pub const RX: usize = 2 * 1024;
/// Socket read buffer of a publisher (fewer reads per second of audio).
pub const PUBLISHER_RX: usize = 8 * 1024;
/// Bytes one connection reads per turn of the loop: a publisher sending faster than it is
/// read (or a flood) yields to the others after this much, and is read again next turn. 64
/// KiB is over a second of 44.1 kHz stereo PCM, several of the largest messages, so a
/// publisher that keeps pace is always drained in one turn.
pub const READ_BUDGET: usize = 64 * 1024;
/// How [`Conn::read_input`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The socket had no more.
    Drained,
    /// The budget was spent; more may wait.
    Budget,
}
/// A relay's reassembly budget: it only reads the upstream's replies.
pub const RELAY_ARENA: usize = 4 * 1024;

/// The server side of a peer's session, its arena sized by what the peer does and its
/// handshake boxed, so it is freed once the handshake is done.
pub type PeerSession = ServerSessionIn<Box<[u8]>, PEER_TX, Box<ServerHandshake>>;
/// The client side of a relay's session.
pub type RelaySession = ClientSession<RELAY_ARENA, TX>;

/// A push's link to its upstream: an RTMP publish, or an Icecast source.
pub enum Upstream {
    /// RTMP: the core's client session, then the stream's RTMP ring.
    Rtmp(Box<RelaySession>),
    /// Icecast: the source request, then the stream's MP3 or ADTS ring, raw.
    Icecast(Box<SourceClient>),
}

impl Upstream {
    /// The link's own bytes to send (handshake and commands, or the source request).
    pub fn transmit(&self) -> &[u8] {
        match self {
            Upstream::Rtmp(s) => s.transmit(),
            Upstream::Icecast(s) => s.transmit(),
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Upstream::Rtmp(s) => s.advance(n),
            Upstream::Icecast(s) => s.advance(n),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Upstream::Rtmp(s) => s.poll_timeout(),
            Upstream::Icecast(s) => s.deadline(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Close> {
        match self {
            Upstream::Rtmp(s) => s.handle_timeout(now).map_err(Close::from),
            Upstream::Icecast(s) => s.handle_timeout(now).map_err(Close::Source),
        }
    }
}

/// What a peer connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connected, neither playing nor publishing (yet).
    Idle,
    /// Plays a stream.
    Player(StreamId),
    /// Was told its play started, of a name nobody publishes yet: it waits in the hub's
    /// [`crate::waiting::Waiting`] list, outside the stream table, until a publisher arrives.
    Waiting,
    /// Publishes a stream; `last_audio` is when its last audio arrived.
    Publisher {
        /// The stream.
        stream: StreamId,
        /// When its last audio (or the publish itself) arrived.
        last_audio: Instant,
    },
}

/// What the connection layer needs of an HTTP or RTSP connection (`H` and `R` of [`Kind`] and
/// [`Conn`]): both write their own output and have at most one deadline.
pub trait HttpPart {
    /// Writes what is due until all is out or the socket is full (`blocked_since` set then);
    /// `counters` count the bytes written.
    fn flush(
        &mut self,
        socket: &mut TcpStream,
        now: Instant,
        hub: &Hub,
        counters: &mut Counters,
        blocked_since: &mut Option<Instant>,
    ) -> Result<(), Close>;

    /// The deadline of the request head, while it is incomplete.
    fn deadline(&self) -> Option<Instant>;
}

/// What a connection is; `H` is an HTTP connection, `R` an RTSP one.
pub enum Kind<H, R> {
    /// A player or publisher that connected to us.
    Peer {
        /// Its session.
        session: Box<PeerSession>,
        /// What it does.
        role: Role,
    },
    /// A push relay we opened to an upstream server.
    Relay {
        /// Its link.
        session: Upstream,
        /// Index into the server's relay list.
        relay: usize,
        /// The stream it pushes.
        stream: StreamId,
    },
    /// An HTTP request or listener.
    Http(Box<H>),
    /// An RTSP player.
    Rtsp(Box<R>),
}

impl<H, R> Kind<H, R> {
    /// A peer that connected at `now`, in its handshake, with the buffers of a connection that
    /// has not said yet what it does.
    pub fn peer(now: Instant, entropy: [u8; 32], config: &ServerConfig) -> Self {
        Kind::Peer {
            session: Box::new(PeerSession::with_arena(
                vec![0; ARENA].into_boxed_slice(),
                now,
                entropy,
                config,
            )),
            role: Role::Idle,
        }
    }
}

/// A player's or relay's reader of a stream's RTMP ring: the stream's start bytes first (their
/// tail holds the sequence header, the first message and the metadata), then the ring.
pub struct RtmpReader {
    /// The stream.
    pub stream: StreamId,
    /// Read the stream's ring of this HTTP format (raw MP3 or ADTS: an Icecast source) instead
    /// of its RTMP ring, in the renditions of this generation.
    http: Option<(Format, u64)>,
    egress: Egress,
    /// The start bytes have not been queued yet.
    needs_start: bool,
    /// The reader stopped: send the rest of the tail, then nothing.
    stopping: bool,
}

impl RtmpReader {
    /// A reader of `stream` starting at `cursor`.
    pub fn new(stream: StreamId, cursor: Cursor) -> Self {
        Self {
            stream,
            http: None,
            egress: Egress::new(cursor),
            needs_start: true,
            stopping: false,
        }
    }

    /// A reader of `stream`'s `format` ring from its newest message on: the raw audio an
    /// Icecast source sends (it needs no start bytes: MP3 and ADTS frames stand alone).
    pub fn of_format(stream: StreamId, hub: &Hub, format: Format) -> Option<Self> {
        let http = hub.get(stream)?.http()?;
        let ring = &http.rendition(format)?.ring;
        Some(Self {
            stream,
            http: Some((format, http.generation())),
            egress: Egress::new(join(ring, 0)),
            needs_start: false,
            stopping: false,
        })
    }

    /// The HTTP ring it reads, if it reads one: `Err` once the stream's codec changed (a
    /// source's mount cannot change its content type; the push starts over).
    fn http_ring<'a>(&self, hub: &'a Hub) -> Option<Result<&'a HttpRing, Close>> {
        let (format, generation) = self.http?;
        let http = hub.get(self.stream).and_then(|s| s.http());
        Some(match http {
            Some(h) if h.generation() == generation => h
                .rendition(format)
                .map(|r| &*r.ring)
                .ok_or(Close::StreamGone),
            _ => Err(Close::StreamGone),
        })
    }

    /// The ring's bytes due now, of whichever ring it reads.
    fn ring_bytes<'a>(&self, hub: &'a Hub) -> Option<Slices<'a>> {
        match self.http_ring(hub) {
            Some(ring) => ring.ok().map(|ring| self.egress.ring_bytes(ring)),
            None => hub
                .get(self.stream)
                .map(|s| self.egress.ring_bytes(s.ring())),
        }
    }

    /// `n` of the ring's bytes were written.
    fn ring_written(&mut self, hub: &Hub, n: usize) {
        match self.http_ring(hub) {
            Some(Ok(ring)) => self.egress.ring_written(ring, n),
            Some(Err(_)) => {}
            None => {
                if let Some(s) = hub.get(self.stream) {
                    self.egress.ring_written(s.ring(), n);
                }
            }
        }
    }

    /// Stop after what is already queued.
    pub fn stop(&mut self) {
        self.stopping = true;
    }
}

/// Why a connection is closed.
pub enum Close {
    /// The socket failed.
    Io(io::Error),
    /// The peer broke the protocol or went silent.
    Session(SessionError),
    /// The peer closed.
    PeerClosed,
    /// A player whose socket stayed full this many milliseconds.
    Stalled(u64),
    /// A refused request was answered.
    Refused,
    /// A publisher that sent no audio this many milliseconds.
    PublisherSilent(u64),
    /// Another publisher took the stream over.
    Replaced,
    /// The server stops.
    Shutdown,
    /// An HTTP reply was written in full.
    Answered,
    /// An HTTP client did not send its request head in time.
    HeaderTimeout,
    /// The stream a relay or HTTP listener read is gone, or the listener's format cannot
    /// follow its new codec (another publisher).
    StreamGone,
    /// A reload's rules no longer let it play or publish (a rotated key, a narrowed address
    /// list).
    Revoked(crate::hub::Denied),
    /// An Icecast server did not take the source.
    Source(crate::icecast::SourceError),
    /// An HTTP listener's stream had no audio in its format within the wait.
    NoAudio,
    /// An HTTP client without a complete request gave its slot to a new one (slots full).
    Evicted,
    /// A listener reached `max_listener_duration` (this many seconds).
    ListenedLongEnough(u64),
    /// The `on_connect` hook refused the peer (why).
    HookRefused(String),
    /// An RTSP request that could not be read (malformed, or longer than allowed).
    RtspRequest(zerocast_core::rtsp::RtspError),
    /// An RTSP player sent no request within its session timeout, or queued more replies than
    /// it read.
    RtspIdle,
    /// An RTSP player ended its session (`TEARDOWN`).
    Teardown,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Io(e) => write!(f, "socket error: {e}"),
            Close::Session(e) => write!(f, "{e}"),
            Close::PeerClosed => f.write_str("closed by peer"),
            Close::Stalled(ms) => write!(f, "not reading for {ms} ms"),
            Close::Refused => f.write_str("request refused"),
            Close::PublisherSilent(ms) => write!(f, "publisher sent no audio for {ms} ms"),
            Close::Replaced => f.write_str("replaced by a new publisher of the stream"),
            Close::Shutdown => f.write_str("server shutting down"),
            Close::Answered => f.write_str("answered"),
            Close::HeaderTimeout => f.write_str("no complete request head in time"),
            Close::StreamGone => f.write_str("the stream or its format is gone"),
            Close::Revoked(why) => write!(f, "no longer allowed after the reload: {why}"),
            Close::Source(why) => write!(f, "{why}"),
            Close::NoAudio => write!(
                f,
                "no audio in its format within {} s",
                crate::http::WAIT_MS / 1000
            ),
            Close::Evicted => {
                f.write_str("evicted: no complete request yet, and a new client needed the slot")
            }
            Close::HookRefused(why) => write!(f, "refused by the on_connect hook: {why}"),
            Close::ListenedLongEnough(s) => {
                write!(
                    f,
                    "listened {s} s, the longest allowed (max_listener_duration)"
                )
            }
            Close::RtspRequest(e) => write!(f, "{e}"),
            Close::RtspIdle => f.write_str("RTSP session timed out"),
            Close::Teardown => f.write_str("RTSP session torn down"),
        }
    }
}

impl From<io::Error> for Close {
    fn from(e: io::Error) -> Self {
        Close::Io(e)
    }
}

impl From<SessionError> for Close {
    fn from(e: SessionError) -> Self {
        Close::Session(e)
    }
}

/// What a peer was let in with: its request as it made it, keys included, which a reload
/// checks against the new rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    /// The application as requested, with its query.
    pub app: String,
    /// The stream name as requested, with its query.
    pub name: String,
    /// Publishing (else playing).
    pub publish: bool,
}

/// One connection; `H` is an HTTP connection, `R` an RTSP one.
pub struct Conn<H, R> {
    /// The socket.
    pub socket: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// What it is.
    pub kind: Kind<H, R>,
    rx: Box<[u8]>,
    rx_len: usize,
    /// Its reader of a stream, if it plays or relays one.
    pub reader: Option<RtmpReader>,
    /// Since when output has been waiting for the socket.
    pub blocked_since: Option<Instant>,
    /// Close once the session's output is written (after a refusal).
    pub close_after_flush: bool,
    /// The deadline this connection is filed under in the server's timer heap.
    pub scheduled: Option<Instant>,
    /// The peer's skipped video has been logged (once per connection).
    pub skip_logged: bool,
    /// When it was opened (for the reports).
    pub opened: Instant,
    /// Bytes written to the socket.
    pub bytes_sent: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// What it plays or publishes was granted for this request.
    pub granted: Option<Granted>,
    /// Its session as a listener, while it is one (boxed: most connections never are).
    pub listening: Option<Box<crate::audience::Listening>>,
    /// What its hooks need and wait for (boxed, and only with hooks configured).
    pub hooks: Option<Box<crate::hooks::HookState>>,
}

impl<H: HttpPart, R: HttpPart> Conn<H, R> {
    /// A connection of `kind` on `socket`, opened at `now`.
    pub fn new(socket: TcpStream, peer: SocketAddr, kind: Kind<H, R>, now: Instant) -> Self {
        Self {
            socket,
            peer,
            kind,
            rx: vec![0; RX].into_boxed_slice(),
            rx_len: 0,
            reader: None,
            blocked_since: None,
            close_after_flush: false,
            scheduled: None,
            skip_logged: false,
            opened: now,
            bytes_sent: 0,
            bytes_received: 0,
            granted: None,
            listening: None,
            hooks: None,
        }
    }

    /// Reads what the socket has, up to `budget` bytes ([`READ_BUDGET`]); `handle` gets the unconsumed
    /// input and returns how much of it it used (it feeds the session). Returns when the
    /// socket has no more, or at the budget with input perhaps left ([`ReadEnd::Budget`]: read
    /// again next turn, as an edge-triggered poll will not say so again).
    pub fn read_input(
        &mut self,
        budget: usize,
        mut handle: impl FnMut(&mut Self, usize) -> Result<usize, Close>,
    ) -> Result<ReadEnd, Close> {
        let mut read = 0;
        loop {
            if read >= budget {
                return Ok(ReadEnd::Budget);
            }
            if self.rx_len == self.rx.len() {
                // The session consumes every complete chunk header, so a full buffer cannot
                // stay full; this is a peer that floods faster than one pass handles.
                self.consume(&mut handle)?;
                continue;
            }
            let free = &mut self.rx[self.rx_len..];
            match self.socket.read(free) {
                Ok(0) => return Err(Close::PeerClosed),
                Ok(n) => {
                    read += n;
                    self.rx_len += n;
                    self.bytes_received += n as u64;
                    self.consume(&mut handle)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadEnd::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn consume(
        &mut self,
        handle: &mut impl FnMut(&mut Self, usize) -> Result<usize, Close>,
    ) -> Result<(), Close> {
        let used = handle(self, self.rx_len)?;
        self.rx.copy_within(used..self.rx_len, 0);
        self.rx_len -= used;
        Ok(())
    }

    /// Gives a publisher its larger read buffer and reassembly arena.
    pub fn grow_for_publisher(&mut self) {
        self.resize_buffers(PUBLISHER_ARENA, PUBLISHER_RX);
    }

    /// Gives a player that starts playing its small read buffer and arena (each kept as it is
    /// when what is in flight would not fit).
    pub fn shrink_for_player(&mut self) {
        self.resize_buffers(PLAYER_ARENA, PLAYER_RX);
    }

    fn resize_buffers(&mut self, arena: usize, rx: usize) {
        if let Kind::Peer { session, .. } = &mut self.kind {
            if session.arena_len() != arena {
                // Err gives the new arena back when it is too small for what is in flight:
                // the old one stays.
                let _ = session.replace_arena(vec![0; arena].into_boxed_slice());
            }
        }
        if self.rx.len() != rx && self.rx_len <= rx {
            let mut new = vec![0; rx].into_boxed_slice();
            new[..self.rx_len].copy_from_slice(&self.rx[..self.rx_len]);
            self.rx = new;
        }
    }

    /// The first `len` received bytes not yet consumed, beside the parts a session event
    /// changes: what the connection is, and its reader.
    pub fn split(&mut self, len: usize) -> (&[u8], &mut Kind<H, R>, &mut Option<RtmpReader>) {
        (&self.rx[..len], &mut self.kind, &mut self.reader)
    }

    fn advance(&mut self, n: usize) {
        match &mut self.kind {
            Kind::Peer { session, .. } => session.advance(n),
            Kind::Relay { session, .. } => session.advance(n),
            Kind::Http(_) | Kind::Rtsp(_) => {}
        }
    }

    /// The session's next deadline.
    pub fn session_deadline(&self) -> Option<Instant> {
        match &self.kind {
            Kind::Peer { session, .. } => session.poll_timeout(),
            Kind::Relay { session, .. } => session.poll_timeout(),
            Kind::Http(http) => http.deadline(),
            Kind::Rtsp(rtsp) => rtsp.deadline(),
        }
    }

    /// Runs the session's timers.
    pub fn session_timeout(&mut self, now: Instant) -> Result<(), Close> {
        match &mut self.kind {
            Kind::Peer { session, .. } => session.handle_timeout(now).map_err(Close::from),
            Kind::Relay { session, .. } => session.handle_timeout(now),
            // Its one deadline, the request head's, is the server's to act on.
            Kind::Http(_) | Kind::Rtsp(_) => Ok(()),
        }
    }

    /// Writes the tail, the session's output and the ring's new bytes, one write call per
    /// round, until everything is out or the socket is full.
    pub fn flush(&mut self, now: Instant, hub: &Hub, counters: &mut Counters) -> Result<(), Close> {
        let part: Option<&mut dyn HttpPart> = match &mut self.kind {
            Kind::Http(http) => Some(&mut **http),
            Kind::Rtsp(rtsp) => Some(&mut **rtsp),
            _ => None,
        };
        if let Some(part) = part {
            let before = counters.bytes_sent;
            let result = part.flush(
                &mut self.socket,
                now,
                hub,
                counters,
                &mut self.blocked_since,
            );
            self.bytes_sent += counters.bytes_sent - before;
            return result;
        }
        loop {
            let tx_pending = !transmit(&self.kind).is_empty();
            self.prepare(hub, counters, tx_pending)?;
            let tail = self.reader.as_ref().map_or(&[][..], |r| r.egress.tail());
            let tx = transmit(&self.kind);
            // Ring bytes only when nothing else is pending before them: a partial message is
            // always finished from the tail before anything else goes out.
            let ring = match &self.reader {
                Some(r) if !r.needs_start && !r.stopping => r.ring_bytes(hub),
                _ => None,
            };
            let (first, second) = ring.map_or((&[][..], &[][..]), |s| (s.first, s.second));
            let total = tail.len() + tx.len() + first.len() + second.len();
            if total == 0 {
                if self.close_after_flush {
                    return Err(Close::Refused);
                }
                self.blocked_since = None;
                return Ok(());
            }
            let (tail_len, tx_len) = (tail.len(), tx.len());
            let bufs = [
                IoSlice::new(tail),
                IoSlice::new(tx),
                IoSlice::new(first),
                IoSlice::new(second),
            ];
            let Some(mut n) = write(&mut self.socket, &bufs)? else {
                self.blocked_since.get_or_insert(now);
                return Ok(());
            };
            counters.bytes_sent += n as u64;
            self.bytes_sent += n as u64;
            let from_tail = n.min(tail_len);
            n -= from_tail;
            let from_tx = n.min(tx_len);
            self.advance(from_tx);
            n -= from_tx;
            if let Some(r) = self.reader.as_mut() {
                r.egress.tail_written(from_tail);
                if n > 0 {
                    r.ring_written(hub, n);
                }
            }
        }
    }

    /// Queues the start bytes (once the session's own replies, Play.Start among them, are out:
    /// players drop media that comes before it), drops a stopped reader, and skips a reader
    /// that fell behind.
    fn prepare(
        &mut self,
        hub: &Hub,
        counters: &mut Counters,
        tx_pending: bool,
    ) -> Result<(), Close> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(());
        };
        if r.stopping {
            if r.egress.tail().is_empty() {
                self.reader = None;
            }
            return Ok(());
        }
        if let Some(ring) = r.http_ring(hub) {
            r.egress.catch_up(ring?, counters);
            return Ok(());
        }
        let Some(stream) = hub.get(r.stream) else {
            self.reader = None;
            return Ok(());
        };
        let ring = stream.ring();
        let skipped = r.egress.catch_up(ring, counters);
        if skipped > 0 {
            log::debug!("{}: fell behind, skipped {skipped} messages", self.peer);
        }
        if r.needs_start && r.egress.tail().is_empty() && !tx_pending {
            // The first message goes out with the sequence header before it and the metadata
            // after it (Stream::start_bytes).
            r.needs_start = !r.egress.wrap_message(ring, |message, time, tail| {
                stream.start_bytes(message, time, tail);
            });
        }
        Ok(())
    }

    /// Whether the socket is waiting to become writable (do not retry before it is).
    pub fn is_blocked(&self) -> bool {
        self.blocked_since.is_some()
    }
}

/// The session's pending output.
fn transmit<H, R>(kind: &Kind<H, R>) -> &[u8] {
    match kind {
        Kind::Peer { session, .. } => session.transmit(),
        Kind::Relay { session, .. } => session.transmit(),
        Kind::Http(_) | Kind::Rtsp(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_core::session::{ClientConfig, ClientEvent, ClientRole, Event};

    /// No HTTP connection: these tests make RTMP peers only.
    enum NoHttp {}

    impl HttpPart for NoHttp {
        fn flush(
            &mut self,
            _: &mut TcpStream,
            _: Instant,
            _: &Hub,
            _: &mut Counters,
            _: &mut Option<Instant>,
        ) -> Result<(), Close> {
            match *self {}
        }

        fn deadline(&self) -> Option<Instant> {
            match *self {}
        }
    }

    /// The goal of issue 11: an idle player costs at most this much.
    const PLAYER_GOAL: usize = 8 * 1024;

    /// A connection on a real loopback socket, its peer session driven by the core's client
    /// through handshake, connect, createStream and play, the way the server decides on it.
    /// Also returns the most the session had queued at once after the handshake.
    fn connection(role: ClientRole) -> (Conn<NoHttp, NoHttp>, usize) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, peer) = listener.accept().unwrap();
        let now = Instant::from_millis(0);
        let config = ServerConfig::default();
        let mut conn = Conn::new(
            TcpStream::from_std(socket),
            peer,
            Kind::peer(now, [3; 32], &config),
            now,
        );
        assert_eq!(
            footprint(&conn) - size_of_peer_conn(),
            ARENA + RX + handshake()
        );
        let client_config = ClientConfig {
            app: "live",
            tc_url: "rtmp://127.0.0.1/live",
            stream: "audio",
            role,
            digest: true,
            chunk_size: 4096,
            max_message: 16 * 1024,
            idle_timeout_ms: 60_000,
        };
        let mut client = ClientSession::<4096, 4096>::new(now, [4; 32], &client_config).unwrap();
        let mut queued = 0;
        for _ in 0..100 {
            let Kind::Peer { session, .. } = &mut conn.kind else {
                unreachable!()
            };
            let mut input = client.transmit().to_vec();
            client.advance(input.len());
            let mut decided = false;
            while !input.is_empty() {
                let received = session.receive(now, &input).unwrap();
                let consumed = received.consumed;
                match received.event {
                    Some(Event::PlayRequested { .. }) => {
                        session.accept_play().unwrap();
                        decided = true;
                    }
                    Some(Event::PublishRequested { .. }) => {
                        session.accept_publish().unwrap();
                        decided = true;
                    }
                    _ => {}
                }
                input.drain(..consumed);
                if decided {
                    match role {
                        ClientRole::Play => conn.shrink_for_player(),
                        ClientRole::Publish => conn.grow_for_publisher(),
                    }
                    break;
                }
                if consumed == 0 {
                    break;
                }
            }
            let Kind::Peer { session, .. } = &mut conn.kind else {
                unreachable!()
            };
            let mut output = session.transmit().to_vec();
            if !session.holds_handshake() {
                queued = queued.max(output.len());
            }
            session.advance(output.len());
            while !output.is_empty() {
                let received = client.receive(now, &output).unwrap();
                if matches!(received.event, Some(ClientEvent::EndOfStream)) {
                    panic!("refused");
                }
                output.drain(..received.consumed);
                if received.consumed == 0 {
                    break;
                }
            }
            if client.is_streaming() && input.is_empty() {
                return (conn, queued);
            }
        }
        panic!("the session never got to streaming");
    }

    /// Bytes `conn` holds in memory: the structures and every buffer it owns now (allocator
    /// overhead not counted).
    fn footprint(conn: &Conn<NoHttp, NoHttp>) -> usize {
        let Kind::Peer { session, .. } = &conn.kind else {
            unreachable!()
        };
        let handshake = if session.holds_handshake() {
            handshake()
        } else {
            0
        };
        let tail = conn.reader.as_ref().map_or(0, |r| r.egress.tail_capacity());
        size_of_peer_conn() + session.arena_len() + handshake + conn.rx.len() + tail
    }

    fn size_of_peer_conn() -> usize {
        std::mem::size_of::<Conn<NoHttp, NoHttp>>() + std::mem::size_of::<PeerSession>()
    }

    fn handshake() -> usize {
        std::mem::size_of::<ServerHandshake>()
    }

    /// A peer that sends far more than one turn's budget is read a budget at a time: the
    /// read stops at the budget saying more may wait, and the next reads get the rest. (A
    /// small budget here: loopback's receive window holds about 64 KiB, [`READ_BUDGET`].)
    #[test]
    fn one_read_takes_at_most_the_budget() {
        use std::io::Write as _;
        const BUDGET: usize = 8 * 1024;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, peer) = listener.accept().unwrap();
        let sent = 4 * BUDGET;
        client.write_all(&vec![7; sent]).unwrap();
        // Until all of it waits in the socket.
        let mut peeked = vec![0; sent];
        while socket.peek(&mut peeked).unwrap() < sent {
            std::thread::yield_now();
        }
        socket.set_nonblocking(true).unwrap();
        let now = Instant::from_millis(0);
        // What the handle below does with the bytes does not matter: it takes them all.
        let kind = Kind::<NoHttp, NoHttp>::peer(now, [3; 32], &ServerConfig::default());
        let mut conn = Conn::new(TcpStream::from_std(socket), peer, kind, now);
        let mut turns = Vec::new();
        loop {
            let mut read = 0;
            let end = conn
                .read_input(BUDGET, |_, len| {
                    read += len;
                    Ok(len)
                })
                .unwrap_or_else(|_| panic!("closed"));
            turns.push((read, end));
            if end == ReadEnd::Drained {
                break;
            }
        }
        println!("{sent} bytes waiting, read in turns of {turns:?}");
        // RX is 2 KiB: each turn reads exactly the budget until the socket is empty.
        assert_eq!(
            turns,
            [
                (BUDGET, ReadEnd::Budget),
                (BUDGET, ReadEnd::Budget),
                (BUDGET, ReadEnd::Budget),
                (BUDGET, ReadEnd::Budget),
                (0, ReadEnd::Drained)
            ]
        );
        drop(client);
    }

    /// Fails when a playing connection grows past the goal: its handshake must be gone and its
    /// buffers at a player's size (it has no egress here, so no tail: that one is freed once
    /// sent, which the RSS figures of docs/benchmarks.md show).
    #[test]
    fn an_idle_player_fits_the_goal_and_a_publisher_gets_room() {
        let (player, queued) = connection(ClientRole::Play);
        println!(
            "player: Conn {} + session {} + arena {} + rx {} = {} bytes (handshake {} while it runs)",
            std::mem::size_of::<Conn<NoHttp, NoHttp>>(),
            std::mem::size_of::<PeerSession>(),
            PLAYER_ARENA,
            PLAYER_RX,
            footprint(&player),
            handshake(),
        );
        assert_eq!(
            footprint(&player),
            size_of_peer_conn() + PLAYER_ARENA + PLAYER_RX
        );
        assert!(footprint(&player) <= PLAYER_GOAL, "{}", footprint(&player));
        // The session's replies leave room in its transmit buffer for a peer that is slow.
        println!("most queued at once: {queued} of {PEER_TX} bytes");
        assert!(queued > 0 && queued <= PEER_TX / 2, "{queued}");

        let (publisher, _) = connection(ClientRole::Publish);
        println!("publisher: {} bytes", footprint(&publisher));
        assert_eq!(
            footprint(&publisher),
            size_of_peer_conn() + PUBLISHER_ARENA + PUBLISHER_RX
        );
    }
}
