//! The server side of one RTMP connection: a player or a publisher.

use core::borrow::BorrowMut;

use crate::command::{self, Command, Data};
use crate::handshake::ServerHandshake;
use crate::message::{self, Control, UserControl};
use crate::time::Instant;

use super::link::{Link, CHUNK_STREAMS};
use super::{store_name, SessionError, MAX_NAME, MEDIA_STREAM_ID};
use crate::chunk::{ChunkReader, ChunkReaderIn};

/// Chunk stream for command results (nginx-rtmp uses 3).
const CSID_RESULT: u32 = 3;
/// Chunk stream for NetStream status and data messages (nginx-rtmp uses 5).
const CSID_STATUS: u32 = 5;

/// Settings of a server session. `Default` gives what nginx-rtmp sends.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServerConfig {
    /// Window Acknowledgement Size announced on connect (nginx: 5 000 000).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth announced on connect, with limit type dynamic (nginx: 5 000 000).
    pub peer_bandwidth: u32,
    /// Outgoing chunk size, announced before the connect result. The host's ring must be
    /// encoded with the same size.
    pub chunk_size: u32,
    /// The whole handshake must finish within this many milliseconds.
    pub handshake_timeout_ms: u64,
    /// A peer that sends nothing for half of this is pinged, and closed when the other half
    /// passes without a byte (nginx-rtmp: `ping 60s`, `ping_timeout 30s`).
    pub idle_timeout_ms: u64,
    /// Largest message accepted from the peer (commands, and audio from a publisher).
    pub max_message: u32,
    /// How many `createStream` calls one connection may make (protocol-notes #18).
    pub max_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            window_ack_size: 5_000_000,
            peer_bandwidth: 5_000_000,
            chunk_size: 4096,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_message: 64 * 1024,
            max_streams: 4,
        }
    }
}

/// Why the host refuses a play or publish request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Refusal {
    /// No such stream (play) — `NetStream.Play.StreamNotFound`.
    NotFound,
    /// The name is already published — `NetStream.Publish.BadName`, as nginx-rtmp answers.
    BadName,
    /// Not allowed (publishing from a remote address, too many players) —
    /// `NetStream.Play.Failed` / `NetStream.Publish.Denied`.
    Denied,
}

/// What one `receive` call did.
#[derive(Debug)]
pub struct Received<'a> {
    /// How many bytes of the input were used; pass the rest again (with more bytes appended).
    pub consumed: usize,
    /// At most one event.
    pub event: Option<Event<'a>>,
}

/// Something the host must know about or decide.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// `connect` was answered; the peer is in application `app`.
    Connected {
        /// The application name (`live`).
        app: &'a str,
        /// The `tcUrl` it sent (empty without one).
        tc_url: &'a str,
        /// The `flashVer` it sent (empty without one).
        flash_ver: &'a str,
    },
    /// The peer wants to play `app/name`: answer with `accept_play` or `refuse_play`.
    PlayRequested {
        /// The application name.
        app: &'a str,
        /// The stream name as sent, query string included.
        name: &'a str,
    },
    /// The peer wants to publish `app/name`: answer with `accept_publish` or `refuse_publish`.
    PublishRequested {
        /// The application name.
        app: &'a str,
        /// The stream name as sent, query string included.
        name: &'a str,
    },
    /// An audio message from the publisher: an FLV audio tag body.
    Audio {
        /// The message timestamp, in milliseconds on the publisher's timeline.
        timestamp: u32,
        /// The FLV audio tag body (format byte first).
        payload: &'a [u8],
    },
    /// Metadata from the publisher (`@setDataFrame` or `onMetaData`): the AMF0 body starting at
    /// the string `onMetaData`, ready to relay to players as a data message.
    Metadata {
        /// `"onMetaData"` and its object / ECMA array, as AMF0.
        body: &'a [u8],
    },
    /// The player deleted or closed its stream: stop sending media.
    PlayStopped,
    /// The publisher unpublished (deleteStream / FCUnpublish / closeStream).
    Unpublished,
}

/// A borrow-free note of the event found while parsing; turned into an [`Event`] at the end of
/// `receive`, when the borrow of the chunk reader is over.
#[derive(Clone, Copy)]
enum Found {
    Connected,
    PlayRequested,
    PublishRequested,
    Audio { timestamp: u32 },
    Metadata { skip: usize },
    PlayStopped,
    Unpublished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Handshake done, waiting for `connect`.
    Handshaken,
    /// `connect` answered.
    Connected,
    /// `play` asked; waiting for the host's decision.
    PlayPending,
    /// Media flows to the peer.
    Playing,
    /// `publish` asked; waiting for the host's decision.
    PublishPending,
    /// Media flows from the peer.
    Publishing,
}

/// The server side of one connection. The arena `A` (storage the caller hands in) bounds
/// message reassembly and so the largest message; `TX` the session's own output (control
/// messages and command replies). The call order is in the [module docs](super).
///
/// `H` holds the handshake (~3 KiB) while it runs; the session drops it once the handshake is
/// complete and its reply sent. Inline by default (the session's size stays fixed); a host with
/// a heap passes `Box<ServerHandshake>`, so an established connection no longer carries it.
pub struct ServerSessionIn<A, const TX: usize, H = ServerHandshake> {
    reader: ChunkReaderIn<CHUNK_STREAMS, A>,
    inner: Server<TX, H>,
}

/// A [`ServerSessionIn`] with its arena and handshake inline: `ARENA` bytes.
pub type ServerSession<const ARENA: usize, const TX: usize> = ServerSessionIn<[u8; ARENA], TX>;

/// Everything of a server session but its chunk reader.
struct Server<const TX: usize, H> {
    config: ServerConfig,
    handshake: Option<H>,
    handshake_deadline: Instant,
    link: Link<TX>,
    state: State,
    app: heapless::String<MAX_NAME>,
    name: heapless::String<MAX_NAME>,
    streams_created: u32,
    /// The message stream the current play/publish was asked on.
    media_stream: u32,
}

impl<const ARENA: usize, const TX: usize> ServerSession<ARENA, TX> {
    /// A session for a connection accepted at `now`. `entropy` seeds the handshake's random
    /// bytes.
    pub fn new(now: Instant, entropy: [u8; 32], config: &ServerConfig) -> Self {
        Self::with_reader(ChunkReader::new(config.max_message), now, entropy, config)
    }
}

impl<A, const TX: usize, H> ServerSessionIn<A, TX, H>
where
    A: AsRef<[u8]> + AsMut<[u8]>,
    H: BorrowMut<ServerHandshake> + From<ServerHandshake>,
{
    /// Like [`ServerSession::new`], reassembling into the caller's `arena`.
    pub fn with_arena(arena: A, now: Instant, entropy: [u8; 32], config: &ServerConfig) -> Self {
        let reader = ChunkReaderIn::with_arena(arena, config.max_message);
        Self::with_reader(reader, now, entropy, config)
    }

    /// Moves reassembly into `arena` (a publisher needs room for its audio messages, a player
    /// only for its commands); returns the old arena, or `Err(arena)` if it is too small for
    /// what is in flight. Call between `receive` calls.
    pub fn replace_arena(&mut self, arena: A) -> Result<A, A> {
        self.reader
            .replace_arena(arena, self.inner.config.max_message)
    }

    /// Messages the peer sent that were skipped unread (video, for an audio-only server).
    pub fn messages_skipped(&self) -> u64 {
        self.reader.messages_skipped()
    }

    /// The reassembly arena's size in bytes.
    pub fn arena_len(&self) -> usize {
        self.reader.arena_len()
    }

    /// Whether the handshake's storage is still held (until the handshake is complete and its
    /// reply sent).
    pub fn holds_handshake(&self) -> bool {
        self.inner.handshake.is_some()
    }

    fn with_reader(
        reader: ChunkReaderIn<CHUNK_STREAMS, A>,
        now: Instant,
        entropy: [u8; 32],
        config: &ServerConfig,
    ) -> Self {
        Self {
            reader,
            inner: Server {
                config: *config,
                handshake: Some(H::from(ServerHandshake::new(
                    now.as_millis() as u32,
                    entropy,
                ))),
                handshake_deadline: now.saturating_add_millis(config.handshake_timeout_ms),
                link: Link::new(now, config.idle_timeout_ms),
                state: State::Handshaken,
                app: heapless::String::new(),
                name: heapless::String::new(),
                streams_created: 0,
                media_stream: MEDIA_STREAM_ID,
            },
        }
    }

    /// The application name from `connect` (empty before it).
    pub fn app(&self) -> &str {
        &self.inner.app
    }

    /// The stream name of the current play or publish request, as sent.
    pub fn stream_name(&self) -> &str {
        &self.inner.name
    }

    /// Whether media should flow to this peer (an accepted player).
    pub fn is_playing(&self) -> bool {
        self.inner.state == State::Playing
    }

    /// Whether this peer is an accepted publisher.
    pub fn is_publishing(&self) -> bool {
        self.inner.state == State::Publishing
    }

    /// Parses received bytes. See the [module docs](super) for the calling convention.
    pub fn receive(&mut self, now: Instant, input: &[u8]) -> Result<Received<'_>, SessionError> {
        if !input.is_empty() {
            self.inner.link.note_rx(now);
        }
        let mut consumed = 0;
        let found = loop {
            let rest = input.get(consumed..).unwrap_or(&[]);
            let handshake = self.inner.handshake.as_mut().map(BorrowMut::borrow_mut);
            if let Some(handshake) = handshake.filter(|h| !h.is_complete()) {
                consumed += handshake.receive(rest)?;
                if handshake.is_complete() {
                    continue;
                }
                break None;
            }
            let (n, found) = self.step(now, rest)?;
            consumed += n;
            if found.is_some() || n == 0 {
                break found;
            }
        };
        self.inner.release_handshake();
        let event = found.map(|found| self.event(found));
        Ok(Received { consumed, event })
    }

    /// Reads at most one chunk and handles the message it completes.
    fn step(&mut self, now: Instant, input: &[u8]) -> Result<(usize, Option<Found>), SessionError> {
        let (n, message) = self.reader.read(input)?;
        let Some(message) = message else {
            self.inner.link.acknowledge(self.reader.bytes_received())?;
            return Ok((n, None));
        };
        let header = message.header;
        let payload = message.payload;
        let found = if let Some(control) =
            message::parse_control(header.type_id, payload).map_err(SessionError::Message)?
        {
            self.inner.link.handle_control(now, control)?;
            None
        } else {
            match header.type_id {
                message::COMMAND_AMF0 => self.inner.command(header.stream_id, payload)?,
                // An AMF3 command is a format byte (0) and then AMF0 (RTMP spec 7.1.1).
                message::COMMAND_AMF3 => match payload.split_first() {
                    Some((0, rest)) => self.inner.command(header.stream_id, rest)?,
                    _ => None,
                },
                message::DATA_AMF0 => self.inner.data(payload)?,
                message::AUDIO if self.inner.state == State::Publishing => Some(Found::Audio {
                    timestamp: header.timestamp,
                }),
                // Media before publish, shared objects, aggregates, unknown types: ignored
                // (protocol-notes #17, #23).
                _ => None,
            }
        };
        self.inner.link.acknowledge(self.reader.bytes_received())?;
        Ok((n, found))
    }

    fn event(&self, found: Found) -> Event<'_> {
        match found {
            Found::Connected => {
                // Read again from the connect message itself (still in the reader), so the
                // session keeps no copy of what only the host's hooks want.
                let payload = self.reader.last_payload();
                let connect = command::parse_command(payload)
                    .or_else(|_| command::parse_command(payload.get(1..).unwrap_or_default()));
                let (tc_url, flash_ver) = match connect {
                    Ok(Command::Connect {
                        tc_url, flash_ver, ..
                    }) => (tc_url.unwrap_or_default(), flash_ver.unwrap_or_default()),
                    _ => ("", ""),
                };
                Event::Connected {
                    app: &self.inner.app,
                    tc_url,
                    flash_ver,
                }
            }
            Found::PlayRequested => Event::PlayRequested {
                app: &self.inner.app,
                name: &self.inner.name,
            },
            Found::PublishRequested => Event::PublishRequested {
                app: &self.inner.app,
                name: &self.inner.name,
            },
            Found::Audio { timestamp } => Event::Audio {
                timestamp,
                payload: self.reader.last_payload(),
            },
            Found::Metadata { skip } => Event::Metadata {
                body: self.reader.last_payload().get(skip..).unwrap_or(&[]),
            },
            Found::PlayStopped => Event::PlayStopped,
            Found::Unpublished => Event::Unpublished,
        }
    }

    /// Accepts the pending play: sends StreamBegin, `NetStream.Play.Reset`, `NetStream.Play.Start`
    /// and `|RtmpSampleAccess`. Metadata and audio then come from the host (the ring), on
    /// message stream [`MEDIA_STREAM_ID`].
    pub fn accept_play(&mut self) -> Result<(), SessionError> {
        self.inner.accept_play()
    }

    /// Refuses the pending play with an error status; the connection stays usable.
    pub fn refuse_play(&mut self, reason: Refusal) -> Result<(), SessionError> {
        self.inner.refuse_play(reason)
    }

    /// Accepts the pending publish: sends `NetStream.Publish.Start` (ffmpeg and OBS wait for it).
    pub fn accept_publish(&mut self) -> Result<(), SessionError> {
        self.inner.accept_publish()
    }

    /// Refuses the pending publish (`BadName` as nginx-rtmp does for a name in use).
    pub fn refuse_publish(&mut self, reason: Refusal) -> Result<(), SessionError> {
        self.inner.refuse_publish(reason)
    }

    /// Ends the stream for a player (server shutdown, publisher gone): StreamEOF and
    /// `NetStream.Play.UnpublishNotify` + `NetStream.Play.Stop`, which ffmpeg takes as end of file.
    pub fn end_play(&mut self) -> Result<(), SessionError> {
        self.inner.end_play()
    }

    /// Tells a player that a new publisher took over its stream (`NetStream.Play.PublishNotify`);
    /// the player keeps playing. Does nothing for a peer that is not playing.
    ///
    /// There is deliberately no "unpublish notify" for a live player: ffmpeg (and so ffplay and
    /// VLC) ends the stream on `NetStream.Play.UnpublishNotify` (`rtmpproto.c` sets
    /// `STATE_STOPPED`), while zerocast keeps a stream going with silence when its publisher is
    /// lost; [`end_play`](Self::end_play) sends it when the stream really ends.
    pub fn notify_published(&mut self) -> Result<(), SessionError> {
        if self.inner.state != State::Playing {
            return Ok(());
        }
        self.inner.status(
            "status",
            "NetStream.Play.PublishNotify",
            "Publishing started",
        )
    }

    /// Bytes the session wants sent, in order (handshake reply first).
    pub fn transmit(&self) -> &[u8] {
        self.inner.transmit()
    }

    /// The sequence number of the peer's latest Acknowledgement (bytes it has received).
    pub fn peer_acknowledged(&self) -> u32 {
        self.inner.peer_acknowledged()
    }

    /// Reports that the first `n` bytes of [`transmit`](Self::transmit) were sent.
    pub fn advance(&mut self, n: usize) {
        self.inner.advance(n)
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    /// Enforces the handshake deadline and pings a silent peer; `Err` = close the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        self.inner.handle_timeout(now)
    }
}

impl<const TX: usize, H: BorrowMut<ServerHandshake>> Server<TX, H> {
    /// The handshake, while it is kept.
    fn handshake(&self) -> Option<&ServerHandshake> {
        self.handshake.as_ref().map(|h| h.borrow())
    }

    fn command(&mut self, stream_id: u32, payload: &[u8]) -> Result<Option<Found>, SessionError> {
        let command = command::parse_command(payload)?;
        if self.state == State::Handshaken && !matches!(command, Command::Connect { .. }) {
            // Commands before connect (protocol-notes #17): nothing to do with them.
            return Ok(None);
        }
        match command {
            Command::Connect {
                transaction_id,
                app,
                object_encoding,
                ..
            } => {
                if self.state != State::Handshaken {
                    return Err(SessionError::DuplicateConnect);
                }
                store_name(&mut self.app, app)?;
                self.connect_reply(transaction_id, object_encoding)?;
                self.state = State::Connected;
                Ok(Some(Found::Connected))
            }
            Command::CreateStream { transaction_id } => {
                if self.streams_created >= self.config.max_streams {
                    self.call_failed(transaction_id, "too many streams")?;
                } else {
                    self.streams_created += 1;
                    // Always stream 1, as nginx-rtmp answers: the host sends every player's
                    // audio from the ring on MEDIA_STREAM_ID, so the stream the peer plays or
                    // publishes on must be that one whatever its count of createStream calls.
                    self.link
                        .send_amf(CSID_RESULT, message::COMMAND_AMF0, 0, |buf| {
                            command::encode_create_stream_result(
                                buf,
                                transaction_id,
                                MEDIA_STREAM_ID,
                            )
                        })?;
                }
                Ok(None)
            }
            Command::Play { stream_name, .. } => self.request(
                stream_id,
                stream_name,
                State::PlayPending,
                Found::PlayRequested,
            ),
            Command::Publish { stream_name, .. } => self.request(
                stream_id,
                stream_name,
                State::PublishPending,
                Found::PublishRequested,
            ),
            Command::DeleteStream { .. } | Command::CloseStream { .. } => Ok(self.stop()),
            Command::FcUnpublish { .. } if self.state == State::Publishing => Ok(self.stop()),
            // nginx-rtmp answers none of these in live mode; clients do not wait for them.
            // getStreamLength stays unanswered on purpose: ffmpeg takes a positive answer as a
            // duration and would treat the live stream as a file (protocol-notes section 2).
            Command::ReleaseStream { .. }
            | Command::FcPublish { .. }
            | Command::FcUnpublish { .. }
            | Command::FcSubscribe { .. }
            | Command::GetStreamLength { .. }
            | Command::CheckBw { .. }
            | Command::Pause { .. }
            | Command::Result { .. }
            | Command::Error { .. }
            | Command::OnStatus { .. }
            | Command::OnBwDone => Ok(None),
            Command::Other { transaction_id, .. } => {
                self.call_failed(transaction_id, "method not found")?;
                Ok(None)
            }
        }
    }

    /// The four replies nginx-rtmp sends to `connect`, plus onBWDone (FMS and SRS send it; ffmpeg
    /// answers it with `_checkbw`, which is ignored).
    fn connect_reply(
        &mut self,
        transaction_id: f64,
        object_encoding: f64,
    ) -> Result<(), SessionError> {
        let link = &mut self.link;
        link.send_control(Control::WindowAckSize(self.config.window_ack_size))?;
        link.send_control(Control::SetPeerBandwidth {
            size: self.config.peer_bandwidth,
            limit: 2,
        })?;
        link.send_control(Control::SetChunkSize(self.config.chunk_size))?;
        link.writer.set_chunk_size(self.config.chunk_size)?;
        link.send_amf(CSID_RESULT, message::COMMAND_AMF0, 0, |buf| {
            command::encode_connect_result(buf, transaction_id, object_encoding)
        })?;
        link.send_amf(
            CSID_RESULT,
            message::COMMAND_AMF0,
            0,
            command::encode_on_bw_done,
        )
    }

    fn request(
        &mut self,
        stream_id: u32,
        name: &str,
        pending: State,
        found: Found,
    ) -> Result<Option<Found>, SessionError> {
        if self.state != State::Connected {
            // A second play/publish on a busy connection: refuse it, keep the first.
            warn!("play/publish while not idle ignored");
            return Ok(None);
        }
        store_name(&mut self.name, name)?;
        self.media_stream = if stream_id == 0 {
            MEDIA_STREAM_ID
        } else {
            stream_id
        };
        self.state = pending;
        Ok(Some(found))
    }

    fn stop(&mut self) -> Option<Found> {
        let found = match self.state {
            State::Playing | State::PlayPending => Found::PlayStopped,
            State::Publishing | State::PublishPending => Found::Unpublished,
            _ => return None,
        };
        self.state = State::Connected;
        Some(found)
    }

    fn call_failed(&mut self, transaction_id: f64, description: &str) -> Result<(), SessionError> {
        self.link
            .send_amf(CSID_RESULT, message::COMMAND_AMF0, 0, |buf| {
                command::encode_error(
                    buf,
                    transaction_id,
                    "NetConnection.Call.Failed",
                    description,
                )
            })
    }

    fn data(&mut self, payload: &[u8]) -> Result<Option<Found>, SessionError> {
        if self.state != State::Publishing {
            return Ok(None);
        }
        Ok(match command::parse_data(payload)? {
            Data::SetDataFrame { body } | Data::OnMetaData { body } => Some(Found::Metadata {
                skip: payload.len() - body.len(),
            }),
            Data::Other { .. } => None,
        })
    }

    fn status(&mut self, level: &str, code: &str, description: &str) -> Result<(), SessionError> {
        let stream = self.media_stream;
        self.link
            .send_amf(CSID_STATUS, message::COMMAND_AMF0, stream, |buf| {
                command::encode_on_status(buf, level, code, description)
            })
    }

    fn accept_play(&mut self) -> Result<(), SessionError> {
        if self.state != State::PlayPending {
            return Err(SessionError::InvalidState);
        }
        let stream = self.media_stream;
        self.link
            .send_control(Control::User(UserControl::StreamBegin(stream)))?;
        self.status(
            "status",
            "NetStream.Play.Reset",
            "Playing and resetting stream.",
        )?;
        self.status("status", "NetStream.Play.Start", "Start live")?;
        self.link.send_amf(
            CSID_STATUS,
            message::DATA_AMF0,
            stream,
            command::encode_sample_access,
        )?;
        self.state = State::Playing;
        Ok(())
    }

    fn refuse_play(&mut self, reason: Refusal) -> Result<(), SessionError> {
        if self.state != State::PlayPending {
            return Err(SessionError::InvalidState);
        }
        let (code, description) = match reason {
            Refusal::NotFound | Refusal::BadName => {
                ("NetStream.Play.StreamNotFound", "No such stream")
            }
            Refusal::Denied => ("NetStream.Play.Failed", "Play refused"),
        };
        self.status("error", code, description)?;
        self.state = State::Connected;
        Ok(())
    }

    fn accept_publish(&mut self) -> Result<(), SessionError> {
        if self.state != State::PublishPending {
            return Err(SessionError::InvalidState);
        }
        self.status("status", "NetStream.Publish.Start", "Start publishing")?;
        self.state = State::Publishing;
        Ok(())
    }

    fn refuse_publish(&mut self, reason: Refusal) -> Result<(), SessionError> {
        if self.state != State::PublishPending {
            return Err(SessionError::InvalidState);
        }
        let (code, description) = match reason {
            Refusal::BadName => ("NetStream.Publish.BadName", "Already publishing"),
            Refusal::NotFound | Refusal::Denied => ("NetStream.Publish.Denied", "Publish refused"),
        };
        self.status("error", code, description)?;
        self.state = State::Connected;
        Ok(())
    }

    fn end_play(&mut self) -> Result<(), SessionError> {
        if self.state != State::Playing {
            return Ok(());
        }
        self.status("status", "NetStream.Play.UnpublishNotify", "Stream ended")?;
        self.status("status", "NetStream.Play.Stop", "Stopped playing")?;
        let stream = self.media_stream;
        self.link
            .send_control(Control::User(UserControl::StreamEof(stream)))?;
        self.state = State::Connected;
        Ok(())
    }

    fn transmit(&self) -> &[u8] {
        match self.handshake() {
            Some(h) if !h.transmit().is_empty() => h.transmit(),
            _ => self.link.tx.pending(),
        }
    }

    /// Reports that the first `n` bytes of [`transmit`](Self::transmit) were sent.
    fn advance(&mut self, n: usize) {
        match self.handshake.as_mut().map(BorrowMut::borrow_mut) {
            Some(h) if !h.transmit().is_empty() => h.advance(n),
            _ => self.link.tx.advance(n),
        }
        self.release_handshake();
    }

    /// Frees the handshake's buffer once it is complete and its reply sent.
    fn release_handshake(&mut self) {
        if self
            .handshake()
            .is_some_and(|h| h.is_complete() && h.transmit().is_empty())
        {
            self.handshake = None;
        }
    }

    fn peer_acknowledged(&self) -> u32 {
        self.link.peer_acknowledged()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.handshake().is_some_and(|h| !h.is_complete()) {
            return Some(self.handshake_deadline);
        }
        Some(self.link.poll_timeout())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.handshake().is_some_and(|h| !h.is_complete()) {
            if now >= self.handshake_deadline {
                return Err(SessionError::HandshakeTimeout {
                    millis: self.config.handshake_timeout_ms,
                });
            }
            return Ok(());
        }
        self.link.handle_timeout(now)
    }
}
