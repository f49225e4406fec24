//! The RTMP side of the event loop: the listener and the player connections, each a core
//! [`ServerSession`] plus a socket, an input buffer and a cursor into the broadcast ring.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use zerocast_core::command::stream_name_base;
use zerocast_core::ring::Cursor;
use zerocast_core::session::{Event, Refusal, ServerConfig, ServerSession, SessionError};
use zerocast_core::time::Instant;

use crate::broadcast::{Broadcast, CHUNK_SIZE};

/// Reassembly budget per connection: commands from players are < 1 KiB; 16 KiB leaves room for
/// publishers' audio messages (a 4096-frame PCM message is 16 KiB + 1).
const ARENA: usize = 16 * 1024;
/// The session's own output: control messages and command replies (~1 KiB at most at once).
const TX: usize = 4 * 1024;
/// Socket read buffer per connection.
const RX: usize = 4 * 1024;

type Session = ServerSession<ARENA, TX>;

/// What the RTMP side needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct RtmpConfig {
    /// Application name players connect to (`live`).
    pub app: String,
    /// Stream name they play (`audio`).
    pub name: String,
    /// Milliseconds of audio a joining player is sent at once.
    pub join_ms: u64,
    /// Connection slots; further connections are closed at once.
    pub max_clients: usize,
    /// Handshake deadline.
    pub handshake_timeout_ms: u64,
    /// A peer silent this long (no answer to a ping either) is dropped, and so is a player
    /// whose socket stays full this long.
    pub idle_timeout_ms: u64,
}

/// Counters for the status line.
#[derive(Clone, Copy, Debug, Default)]
pub struct RtmpStats {
    /// Players currently receiving audio.
    pub listeners: usize,
    /// Bytes written to all sockets since start.
    pub bytes_sent: u64,
    /// Messages skipped because players fell behind the ring.
    pub skipped_messages: u64,
}

struct Player {
    cursor: Cursor,
    /// Bytes copied aside: the rest of a message a write ended in the middle of, or the first
    /// message followed by the metadata.
    tail: Vec<u8>,
    tail_sent: usize,
    /// The first audio message and the metadata have not been queued yet.
    needs_start: bool,
    /// The player stopped its stream: send the rest of the tail, then nothing.
    stopping: bool,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    session: Session,
    rx: Box<[u8; RX]>,
    rx_len: usize,
    player: Option<Player>,
    /// Since when output has been waiting for the socket.
    blocked_since: Option<Instant>,
    /// Close once the session's output is written (after a refusal).
    close_after_flush: bool,
}

/// Why a connection is closed.
enum Close {
    Io(io::Error),
    Session(SessionError),
    PeerClosed,
    Stalled(u64),
    Refused,
    Shutdown,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Io(e) => write!(f, "socket error: {e}"),
            Close::Session(e) => write!(f, "{e}"),
            Close::PeerClosed => f.write_str("closed by peer"),
            Close::Stalled(ms) => write!(f, "not reading for {ms} ms"),
            Close::Refused => f.write_str("request refused"),
            Close::Shutdown => f.write_str("server shutting down"),
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

/// The listener and its connections, in a fixed-capacity slab.
pub struct RtmpServer {
    listener: TcpListener,
    conns: Vec<Option<Box<Conn>>>,
    config: RtmpConfig,
    session_config: ServerConfig,
    urandom: File,
    token_base: usize,
    stats: RtmpStats,
}

impl RtmpServer {
    /// Binds `addr`; the listener will be token `token_base`, connections the tokens after it.
    pub fn bind(addr: SocketAddr, config: RtmpConfig, token_base: usize) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let session_config = ServerConfig {
            chunk_size: CHUNK_SIZE,
            handshake_timeout_ms: config.handshake_timeout_ms,
            idle_timeout_ms: config.idle_timeout_ms,
            ..ServerConfig::default()
        };
        let mut conns = Vec::with_capacity(config.max_clients);
        conns.resize_with(config.max_clients, || None);
        Ok(Self {
            listener,
            conns,
            config,
            session_config,
            urandom: File::open("/dev/urandom")?,
            token_base,
            stats: RtmpStats::default(),
        })
    }

    /// Registers the listener with the loop.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(
            &mut self.listener,
            Token(self.token_base),
            Interest::READABLE,
        )
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` belongs to this server.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.token_base && token.0 <= self.token_base + self.conns.len()
    }

    /// Counters for the status line.
    pub fn stats(&self) -> RtmpStats {
        let mut stats = self.stats;
        stats.listeners = self
            .conns
            .iter()
            .flatten()
            .filter(|c| c.session.is_playing())
            .count();
        stats
    }

    /// Handles readiness of the listener or a connection.
    pub fn ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        broadcast: &Broadcast,
    ) {
        if token.0 == self.token_base {
            self.accept(registry, now);
            return;
        }
        let index = token.0 - self.token_base - 1;
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        let result = conn
            .read_input(now, &self.config, broadcast)
            .and_then(|()| conn.flush(now, broadcast, &mut self.stats));
        if let Err(why) = result {
            self.close(registry, index, &why);
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: log and try again at the next readiness.
                    warn!("accept failed: {e}");
                    return;
                }
            };
            let Some(index) = self.conns.iter().position(Option::is_none) else {
                // Excess connections are refused at once: closing the socket is the answer.
                warn!(
                    "{peer}: refused, all {} connection slots busy",
                    self.conns.len()
                );
                continue;
            };
            // Small writes (replies, 20 ms periods) must not wait for Nagle + delayed ACK
            // (protocol-notes section 2: ~45 ms steps otherwise).
            let _ = stream.set_nodelay(true);
            let token = Token(self.token_base + 1 + index);
            if let Err(e) =
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            {
                warn!("{peer}: cannot register: {e}");
                continue;
            }
            let mut entropy = [0u8; 32];
            if let Err(e) = self.urandom.read_exact(&mut entropy) {
                warn!("reading /dev/urandom: {e}");
            }
            debug!("{peer}: connected");
            self.conns[index] = Some(Box::new(Conn {
                stream,
                peer,
                session: Session::new(now, entropy, &self.session_config),
                rx: Box::new([0; RX]),
                rx_len: 0,
                player: None,
                blocked_since: None,
                close_after_flush: false,
            }));
        }
    }

    fn close(&mut self, registry: &Registry, index: usize, why: &Close) {
        if let Some(Some(mut conn)) = self.conns.get_mut(index).map(Option::take) {
            let _ = registry.deregister(&mut conn.stream);
            match why {
                Close::PeerClosed => info!("{}: disconnected", conn.peer),
                _ => info!("{}: closed: {why}", conn.peer),
            }
        }
    }

    /// Sends newly pushed audio to every player.
    pub fn audio_pushed(&mut self, registry: &Registry, now: Instant, broadcast: &Broadcast) {
        for index in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            if conn.player.is_none() {
                continue;
            }
            if let Err(why) = conn.flush(now, broadcast, &mut self.stats) {
                self.close(registry, index, &why);
            }
        }
    }

    /// The earliest deadline of any connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        let write_timeout = self.config.idle_timeout_ms;
        self.conns
            .iter()
            .flatten()
            .flat_map(|c| {
                let stall = c
                    .blocked_since
                    .map(|t| t.saturating_add_millis(write_timeout));
                [c.session.poll_timeout(), stall]
            })
            .flatten()
            .min()
    }

    /// Runs session timers and drops stalled players.
    pub fn handle_timeouts(&mut self, registry: &Registry, now: Instant, broadcast: &Broadcast) {
        for index in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            let result = match conn.blocked_since {
                Some(since)
                    if now.saturating_millis_since(since) >= self.config.idle_timeout_ms =>
                {
                    Err(Close::Stalled(now.saturating_millis_since(since)))
                }
                _ => conn
                    .session
                    .handle_timeout(now)
                    .map_err(Close::from)
                    .and_then(|()| conn.flush(now, broadcast, &mut self.stats)),
            };
            if let Err(why) = result {
                self.close(registry, index, &why);
            }
        }
    }

    /// Ends every player's stream cleanly (Play.Stop, StreamEOF) and closes all connections.
    pub fn shutdown(&mut self, registry: &Registry, now: Instant, broadcast: &Broadcast) {
        for index in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            // Whatever is already queued for the player goes first, then the end of stream.
            let _ = conn.flush(now, broadcast, &mut self.stats);
            conn.player = None;
            if conn.session.end_play().is_ok() {
                let _ = conn.flush(now, broadcast, &mut self.stats);
            }
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
            self.close(registry, index, &Close::Shutdown);
        }
    }
}

impl Conn {
    /// Reads what the socket has and feeds it to the session.
    fn read_input(
        &mut self,
        now: Instant,
        config: &RtmpConfig,
        broadcast: &Broadcast,
    ) -> Result<(), Close> {
        loop {
            let free = &mut self.rx[self.rx_len..];
            if free.is_empty() {
                // The session consumes every complete chunk header, so a full buffer cannot
                // stay full; this is a peer that floods faster than one pass handles.
                self.process(now, config, broadcast)?;
                continue;
            }
            match self.stream.read(free) {
                Ok(0) => return Err(Close::PeerClosed),
                Ok(n) => {
                    self.rx_len += n;
                    self.process(now, config, broadcast)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn process(
        &mut self,
        now: Instant,
        config: &RtmpConfig,
        broadcast: &Broadcast,
    ) -> Result<(), Close> {
        let mut start = 0;
        loop {
            let received = self.session.receive(now, &self.rx[start..self.rx_len])?;
            start += received.consumed;
            let decision = match received.event {
                None if received.consumed == 0 => break,
                None => continue,
                Some(Event::PlayRequested { app, name }) => {
                    let found = app == config.app && stream_name_base(name) == config.name;
                    info!(
                        "{}: play {app}/{name}{}",
                        self.peer,
                        if found { "" } else { ": no such stream" }
                    );
                    Some(found)
                }
                Some(Event::PublishRequested { app, name }) => {
                    info!(
                        "{}: publish {app}/{name} refused: zerocast publishes its own capture",
                        self.peer
                    );
                    None
                }
                Some(Event::PlayStopped) => {
                    // A message cut in the middle is finished first (flush), then nothing more.
                    if let Some(player) = self.player.as_mut() {
                        player.stopping = true;
                    }
                    continue;
                }
                Some(
                    Event::Connected { .. }
                    | Event::Audio { .. }
                    | Event::Metadata { .. }
                    | Event::Unpublished,
                ) => continue,
            };
            match decision {
                Some(true) => {
                    self.session.accept_play()?;
                    self.player = Some(Player {
                        cursor: broadcast.join_cursor(config.join_ms),
                        tail: Vec::new(),
                        tail_sent: 0,
                        needs_start: true,
                        stopping: false,
                    });
                }
                Some(false) => {
                    self.session.refuse_play(Refusal::NotFound)?;
                    self.close_after_flush = true;
                }
                None => {
                    self.session.refuse_publish(Refusal::Denied)?;
                    self.close_after_flush = true;
                }
            }
        }
        self.rx.copy_within(start..self.rx_len, 0);
        self.rx_len -= start;
        Ok(())
    }

    /// Writes the session's output, then audio from the ring, until done or the socket is full.
    fn flush(
        &mut self,
        now: Instant,
        broadcast: &Broadcast,
        stats: &mut RtmpStats,
    ) -> Result<(), Close> {
        let ring = broadcast.ring();
        loop {
            // The rest of a message the socket took only part of goes first: anything else
            // written now would land inside its chunk. (A PingRequest the session queued while a
            // player was not reading did exactly that and corrupted its stream.)
            if let Some(player) = self.player.as_mut().filter(|p| p.tail_sent < p.tail.len()) {
                let Some(n) = write(
                    &mut self.stream,
                    &[IoSlice::new(&player.tail[player.tail_sent..])],
                )?
                else {
                    self.blocked_since.get_or_insert(now);
                    return Ok(());
                };
                player.tail_sent += n;
                stats.bytes_sent += n as u64;
                continue;
            }
            let out = self.session.transmit();
            if !out.is_empty() {
                let Some(n) = write(&mut self.stream, &[IoSlice::new(out)])? else {
                    self.blocked_since.get_or_insert(now);
                    return Ok(());
                };
                self.session.advance(n);
                stats.bytes_sent += n as u64;
                continue;
            }
            if self.close_after_flush {
                return Err(Close::Refused);
            }
            if self.player.as_ref().is_some_and(|p| p.stopping) {
                self.player = None;
            }
            let Some(player) = self.player.as_mut() else {
                self.blocked_since = None;
                return Ok(());
            };
            if player.needs_start {
                // ffmpeg's flvdec stops probing on metadata that comes after the first audio
                // tag (protocol-notes section 6): the sequence header (AAC: the decoder needs
                // it first), the first message, then onMetaData.
                match ring.current_message(&player.cursor) {
                    Ok([]) => {
                        self.blocked_since = None;
                        return Ok(());
                    }
                    Ok(message) => {
                        player.tail.clear();
                        player.tail.extend_from_slice(broadcast.sequence_header());
                        player.tail.extend_from_slice(message);
                        player.tail.extend_from_slice(broadcast.metadata());
                        player.tail_sent = 0;
                        let len = message.len();
                        ring.advance(&mut player.cursor, len);
                        player.needs_start = false;
                    }
                    Err(_) => {
                        ring.skip_lagged(&mut player.cursor);
                    }
                }
                continue;
            }
            let slices = match ring.read(&player.cursor) {
                Ok(slices) => slices,
                Err(lagged) => {
                    stats.skipped_messages += lagged.skipped;
                    ring.skip_lagged(&mut player.cursor);
                    debug!(
                        "{}: fell behind, skipped {} messages",
                        self.peer, lagged.skipped
                    );
                    continue;
                }
            };
            if slices.is_empty() {
                self.blocked_since = None;
                return Ok(());
            }
            let Some(n) = write(
                &mut self.stream,
                &[IoSlice::new(slices.first), IoSlice::new(slices.second)],
            )?
            else {
                self.blocked_since.get_or_insert(now);
                return Ok(());
            };
            stats.bytes_sent += n as u64;
            ring.advance(&mut player.cursor, n);
            if !player.cursor.at_boundary() {
                // Keep the rest of this message aside, so the cursor can skip forward if the
                // player falls behind without cutting a chunk in half.
                if let Ok(rest) = ring.current_message(&player.cursor) {
                    player.tail.clear();
                    player.tail.extend_from_slice(rest);
                    player.tail_sent = 0;
                    let len = rest.len();
                    ring.advance(&mut player.cursor, len);
                }
            }
        }
    }
}

/// One vectored write: `Some(n)` bytes written, `None` when the socket is full.
fn write(stream: &mut TcpStream, bufs: &[IoSlice<'_>]) -> Result<Option<usize>, Close> {
    loop {
        match stream.write_vectored(bufs) {
            Ok(0) => return Err(Close::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}
