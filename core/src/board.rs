//! Serving players on a board: the core's sessions and ring driven over `embedded-io` byte streams.
//!
//! The Linux host drives the core from a `mio` loop; a board has a network stack (smoltcp,
//! embassy-net, lwIP) whose sockets implement `embedded-io`. This module is the small driver a
//! board port starts from: one live stream, a table of players, every buffer the caller's.
//!
//! ```text
//!  audio source ──> Stream::pace / push_with ──> codec ──> chunk-encoded once ──> Ring (caller's)
//!                                                                                   │ one Cursor each
//!  transport (embedded-io) <──> Player::poll: handshake, session replies, first message +
//!                                onMetaData (fast start), then ring bytes ──────────┘
//! ```
//!
//! # The transport
//! A player's connection is anything that implements [`embedded_io`]'s `Read`, `Write`,
//! `ReadReady` and `WriteReady` (the [`Transport`] bound). `Read` and `Write` block by contract;
//! [`Player::poll`] calls `read` only after `read_ready()` and `write` only after `write_ready()`
//! said they would not block, so one loop serves every player, the network stack and the audio
//! source without ever waiting on one slow peer. (`embedded-io`'s docs: the `*Ready` traits allow
//! "using a `Read` in a nonblocking fashion".)
//!
//! # The loop a board runs
//! 1. On a new connection: [`Player::open`] with the time and 32 bytes of entropy.
//! 2. Every turn: [`Stream::pace`] (or [`Stream::push_with`] from a capture interrupt's buffer),
//!    then [`Player::poll`] for each open player with its transport. An `Err` means: close that
//!    connection (the player is already free again).
//! 3. Sleep until the earliest of [`Stream::next_due`], every [`Player::poll_timeout`] and the
//!    network stack's own deadline, or until a packet arrives.
//!
//! # What a player is sent
//! The same bytes, in the same order, as the Linux host sends (`linux-host/src/conn.rs`, framed by
//! [`encode_media`]): the session's own output (handshake, connect and play replies), then the
//! first audio message at the join point followed by `onMetaData` stamped with its time and with
//! an empty `videocodecid` (ffmpeg then stops probing for video: protocol-notes §6), then the ring
//! from there on. The session's output never goes in
//! the middle of a ring message. A player that falls behind is moved forward in the ring (it
//! hears a gap); one whose unfinished message was overwritten is closed, since no copy of it is
//! kept ([`PlayerError::Lagged`]): that keeps a player at its fixed size.

use core::fmt;

use embedded_io::{ErrorKind, Read, ReadReady, Write, WriteReady};

use crate::chunk::ChunkError;
use crate::codec::{BlockEncoder, CodecError};
use crate::command::stream_name_base;
use crate::flv::{self, AudioTagHeader, FlvError, Metadata};
use crate::ring::{Cursor, PushError, Ring};
use crate::session::{
    encode_media, media_len, Event, Media, Refusal, ServerConfig, ServerSession, SessionError,
};
use crate::time::Instant;

/// What a player's connection must implement: blocking `embedded-io` reads and writes, and the
/// readiness checks that let one loop avoid blocking on them (see the [module docs](self)).
pub trait Transport: Read + Write + ReadReady + WriteReady {}

impl<T: Read + Write + ReadReady + WriteReady + ?Sized> Transport for T {}

/// Room for `onMetaData`, its body and the body framed as a message: the body is under 200 bytes,
/// the header 12 bytes (16 with an extended timestamp), a continuation 1 to 5 bytes when the chunk
/// size is smaller than the body. [`Stream::new`] checks that the longest framing fits.
pub const METADATA_CAPACITY: usize = 256;

/// The smallest receive buffer a [`Player`] may have: a partial chunk header (at most 18 bytes)
/// is all the session ever leaves unconsumed, so this never fills up.
pub const MIN_RX: usize = 64;

/// What the stream serves and how.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamConfig<'a> {
    /// Application name players connect to (`live`).
    pub app: &'a str,
    /// Stream name they play (`audio`); a query string after it is ignored.
    pub name: &'a str,
    /// Sample rate of the audio source, in Hz (one the codec can signal in FLV).
    pub rate: u32,
    /// Channels of the audio source (1 or 2).
    pub channels: u8,
    /// Milliseconds of recent audio a joining player is sent at once (the join buffer).
    pub join_ms: u64,
    /// The players' sessions; its `chunk_size` is also the one the ring is encoded with.
    pub session: ServerConfig,
}

/// Why a [`Stream`] could not be set up or take audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StreamError {
    /// The rate or channel count of the configuration is not the encoder's.
    Format {
        /// The configured rate, in Hz.
        rate: u32,
        /// The configured channel count.
        channels: u8,
    },
    /// The PCM buffer is empty or not a whole number of frames.
    PcmBuffer {
        /// Samples in the buffer.
        samples: usize,
        /// Samples per frame.
        channels: u8,
    },
    /// The body buffer cannot hold one encoded message of the PCM buffer's frames.
    BodyBuffer {
        /// Bytes one message needs (tag header byte + encoded audio).
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// `onMetaData` could not be encoded (into [`METADATA_CAPACITY`] bytes).
    Metadata(FlvError),
    /// The session's chunk size is invalid, or `onMetaData` does not fit
    /// [`METADATA_CAPACITY`] bytes once chunk-encoded.
    Chunk(ChunkError),
    /// The encoder refused the audio.
    Codec(CodecError),
    /// A message is larger than the ring.
    Ring(PushError),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format { rate, channels } => write!(
                f,
                "{rate} Hz with {channels} channels is not what the encoder was made for"
            ),
            Self::PcmBuffer { samples, channels } => write!(
                f,
                "PCM buffer of {samples} samples is not one or more whole {channels}-channel frames"
            ),
            Self::BodyBuffer { needed, available } => write!(
                f,
                "body buffer of {available} bytes is too small for a {needed}-byte message"
            ),
            Self::Metadata(e) => write!(f, "onMetaData: {e}"),
            Self::Chunk(e) => write!(f, "onMetaData message: {e}"),
            Self::Codec(e) => write!(f, "encoder: {e}"),
            Self::Ring(e) => write!(f, "ring: {e}"),
        }
    }
}

/// One live stream: an audio source encoded once per message into the caller's ring.
///
/// `pcm` holds one message of interleaved samples (its length sets the frames per message; for
/// SWF ADPCM use a count from `AdpcmSwf::fit_frames`), `body` one encoded message
/// (`1 + encoder.max_encoded_len(frames)` bytes). Stream time comes from the sample count.
pub struct Stream<'a, E: BlockEncoder, const BYTES: usize, const SLOTS: usize> {
    config: StreamConfig<'a>,
    encoder: E,
    header_byte: u8,
    ring: &'a mut Ring<BYTES, SLOTS>,
    pcm: &'a mut [i16],
    body: &'a mut [u8],
    metadata: [u8; METADATA_CAPACITY],
    metadata_len: usize,
    /// Frames pushed so far: the stream position.
    frames: u64,
    /// When [`Stream::pace`] started the clock.
    origin: Option<Instant>,
}

impl<'a, E: BlockEncoder, const BYTES: usize, const SLOTS: usize> Stream<'a, E, BYTES, SLOTS> {
    /// A stream of `encoder`'s audio into `ring`, with `pcm` and `body` as its scratch buffers.
    pub fn new(
        config: StreamConfig<'a>,
        encoder: E,
        ring: &'a mut Ring<BYTES, SLOTS>,
        pcm: &'a mut [i16],
        body: &'a mut [u8],
    ) -> Result<Self, StreamError> {
        let header = encoder.tag_header();
        if AudioTagHeader::for_rate(header.format, config.rate, config.channels) != Ok(header) {
            return Err(StreamError::Format {
                rate: config.rate,
                channels: config.channels,
            });
        }
        let channels = usize::from(config.channels);
        let frames = pcm.len().checked_div(channels).unwrap_or(0);
        if frames == 0 || pcm.len() % channels != 0 {
            return Err(StreamError::PcmBuffer {
                samples: pcm.len(),
                channels: config.channels,
            });
        }
        let needed = 1 + encoder.max_encoded_len(frames);
        if body.len() < needed {
            return Err(StreamError::BodyBuffer {
                needed,
                available: body.len(),
            });
        }
        let bits = needed.saturating_sub(1) as f64 * 8.0 / frames as f64;
        let meta = Metadata {
            audiocodecid: header.format as u8,
            audiosamplerate: config.rate,
            audiosamplesize: 16,
            stereo: config.channels == 2,
            audiodatarate_kbps: bits * f64::from(config.rate) / 1000.0,
        };
        let mut metadata = [0u8; METADATA_CAPACITY];
        let metadata_len =
            flv::encode_on_metadata(&mut metadata, &meta, true).map_err(StreamError::Metadata)?;
        // Framed once here at the largest timestamp (the longest header), so that framing it
        // for a player, at its first message's time, cannot fail.
        let mut framed = [0u8; METADATA_CAPACITY];
        encode_media(
            &mut framed,
            config.session.chunk_size,
            Media::Data,
            u32::MAX,
            metadata.get(..metadata_len).unwrap_or_default(),
        )
        .map_err(StreamError::Chunk)?;
        Ok(Self {
            config,
            header_byte: header.to_byte(),
            encoder,
            ring,
            pcm,
            body,
            metadata,
            metadata_len,
            frames: 0,
            origin: None,
        })
    }

    /// The stream's settings.
    pub fn config(&self) -> &StreamConfig<'a> {
        &self.config
    }

    /// The ring every player reads.
    pub fn ring(&self) -> &Ring<BYTES, SLOTS> {
        self.ring
    }

    /// The `onMetaData` body (AMF0) each player is sent right after its first audio message.
    pub fn metadata(&self) -> &[u8] {
        self.metadata.get(..self.metadata_len).unwrap_or_default()
    }

    /// Frames per message (the PCM buffer's length in frames).
    pub fn frames_per_message(&self) -> usize {
        self.pcm.len() / usize::from(self.config.channels)
    }

    /// Milliseconds of audio pushed so far (stream time, from the sample count).
    pub fn millis(&self) -> u64 {
        // `new` checked the rate against the encoder's, so it is not 0.
        (self.frames * 1000)
            .checked_div(u64::from(self.config.rate))
            .unwrap_or(0)
    }

    /// Lets `fill` write one message of interleaved samples into the PCM buffer, encodes it and
    /// stores it in the ring, stamped with the stream time. For sources that deliver audio
    /// themselves (a DMA buffer filled by I2S or an ADC): call it once per buffer.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [i16])) -> Result<(), StreamError> {
        fill(self.pcm);
        let (first, rest) = self.body.split_at_mut(1);
        if let Some(byte) = first.first_mut() {
            *byte = self.header_byte;
        }
        let n = self
            .encoder
            .encode(self.pcm, rest)
            .map_err(StreamError::Codec)?;
        let body = self.body.get(..1 + n).unwrap_or_default();
        let time_ms = self.millis();
        // RTMP timestamps are 32-bit milliseconds and wrap after 49.7 days (players cope).
        let timestamp = time_ms as u32;
        let chunk_size = self.config.session.chunk_size;
        let len = media_len(chunk_size, Media::Audio, timestamp, body.len());
        self.ring
            .push_with(time_ms, len, |dst| {
                // `len` was computed for exactly this message.
                let _ = encode_media(dst, chunk_size, Media::Audio, timestamp, body);
            })
            .map_err(StreamError::Ring)?;
        self.frames += self.frames_per_message() as u64;
        Ok(())
    }

    /// Pushes every message that is due at `now` by the clock, each filled by `fill`: for
    /// sources that can be read at any time (a generator, an ADC sampled on demand). The first
    /// call starts the stream's clock. Returns when the next message is due.
    pub fn pace(
        &mut self,
        now: Instant,
        mut fill: impl FnMut(&mut [i16]),
    ) -> Result<Instant, StreamError> {
        let origin = *self.origin.get_or_insert(now);
        loop {
            let due = origin.saturating_add_millis(self.millis());
            if due > now {
                return Ok(due);
            }
            self.push_with(&mut fill)?;
        }
    }

    /// When [`Stream::pace`] must be called next (`None` before its first call).
    pub fn next_due(&self) -> Option<Instant> {
        self.origin
            .map(|origin| origin.saturating_add_millis(self.millis()))
    }

    /// Where a joining player starts: `join_ms` behind the newest message.
    fn join_cursor(&self) -> Cursor {
        match self.ring.latest_time() {
            Some(latest) => self
                .ring
                .cursor_since(latest.saturating_sub(self.config.join_ms)),
            None => self.ring.cursor_at_head(),
        }
    }
}

/// Why a player's connection must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PlayerError {
    /// The transport failed.
    Io(ErrorKind),
    /// The peer broke the protocol or went silent.
    Session(SessionError),
    /// The peer closed the connection.
    PeerClosed,
    /// The request was refused (a publish, or another stream) and the answer was sent.
    Refused,
    /// The ring overwrote the message the player was in the middle of.
    Lagged {
        /// Messages the player lost.
        skipped: u64,
    },
    /// The transport did not take a byte for this long (the session's idle timeout).
    Stalled {
        /// Milliseconds since the last write.
        millis: u64,
    },
    /// The receive buffer filled up without the session consuming a byte (it is smaller than
    /// [`MIN_RX`]).
    InputFull {
        /// The buffer's size.
        capacity: usize,
    },
}

impl fmt::Display for PlayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(kind) => write!(f, "transport error: {kind:?}"),
            Self::Session(e) => write!(f, "{e}"),
            Self::PeerClosed => f.write_str("closed by the peer"),
            Self::Refused => f.write_str("request refused"),
            Self::Lagged { skipped } => write!(
                f,
                "fell {skipped} messages behind in the middle of a message"
            ),
            Self::Stalled { millis } => write!(f, "not reading for {millis} ms"),
            Self::InputFull { capacity } => {
                write!(f, "receive buffer of {capacity} bytes full")
            }
        }
    }
}

impl From<SessionError> for PlayerError {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

/// Where a player is in the stream.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Not playing.
    Off,
    /// Accepted: the first message at `cursor` goes out next (or is going out).
    First { cursor: Cursor },
    /// `onMetaData` goes out from the player's `start` buffer: `sent` of `len` bytes are out.
    Metadata {
        cursor: Cursor,
        sent: usize,
        len: usize,
    },
    /// Ring bytes from `cursor` on.
    Live { cursor: Cursor },
    /// The player stopped: finish the message under way, then send no more media.
    Stopping { cursor: Cursor },
}

/// What a piece of output came from.
#[derive(Clone, Copy)]
enum Piece {
    Ring,
    Metadata,
    Session,
}

/// One connection slot: a server session, a receive buffer of `RX` bytes and a ring cursor. Its
/// size is fixed by the three capacities (`ServerSession<ARENA, TX>`), whatever the peer does;
/// keep the table of players in a `static` or in `main`'s frame.
pub struct Player<const ARENA: usize, const TX: usize, const RX: usize> {
    session: Option<ServerSession<ARENA, TX>>,
    rx: [u8; RX],
    rx_len: usize,
    phase: Phase,
    /// `onMetaData` framed at the time of the player's first message, as the Linux host does.
    start: [u8; METADATA_CAPACITY],
    /// Close once the session's output is written.
    refused: bool,
    /// Since when output has been waiting for the transport.
    blocked_since: Option<Instant>,
    stall_ms: u64,
}

impl<const ARENA: usize, const TX: usize, const RX: usize> Default for Player<ARENA, TX, RX> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const ARENA: usize, const TX: usize, const RX: usize> Player<ARENA, TX, RX> {
    /// A free slot. `RX` must be at least [`MIN_RX`] (checked at compile time).
    pub const fn new() -> Self {
        const { assert!(RX >= MIN_RX, "a player's receive buffer needs MIN_RX bytes") };
        Self {
            session: None,
            rx: [0; RX],
            rx_len: 0,
            phase: Phase::Off,
            start: [0; METADATA_CAPACITY],
            refused: false,
            blocked_since: None,
            stall_ms: 0,
        }
    }

    /// Starts serving a connection accepted at `now`; `entropy` seeds the handshake. Whatever the
    /// slot served before is forgotten.
    pub fn open(&mut self, now: Instant, entropy: [u8; 32], config: &ServerConfig) {
        self.session = Some(ServerSession::new(now, entropy, config));
        self.rx_len = 0;
        self.phase = Phase::Off;
        self.refused = false;
        self.blocked_since = None;
        self.stall_ms = config.idle_timeout_ms;
    }

    /// Frees the slot (the connection was closed outside the driver).
    pub fn close(&mut self) {
        self.session = None;
        self.phase = Phase::Off;
    }

    /// Whether the slot serves a connection.
    pub fn is_open(&self) -> bool {
        self.session.is_some()
    }

    /// Whether the player has been accepted and is sent audio.
    pub fn is_playing(&self) -> bool {
        !matches!(self.phase, Phase::Off)
    }

    /// The next instant [`Player::poll`] must be called even if the transport stays quiet: a
    /// session deadline (handshake, ping) or the stall limit of a blocked transport.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.session.as_ref()?.poll_timeout();
        let stall = self
            .blocked_since
            .map(|since| since.saturating_add_millis(self.stall_ms));
        match (session, stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads what `io` has, answers it, and writes what the player is due: the session's output,
    /// then audio from `stream`'s ring, until `io` would block or nothing is left. Does nothing
    /// on a free slot. On `Err` the slot is free again and the caller closes the connection.
    pub fn poll<T, E, const BYTES: usize, const SLOTS: usize>(
        &mut self,
        io: &mut T,
        stream: &Stream<'_, E, BYTES, SLOTS>,
        now: Instant,
    ) -> Result<(), PlayerError>
    where
        T: Transport + ?Sized,
        E: BlockEncoder,
    {
        if self.session.is_none() {
            return Ok(());
        }
        let result = self.serve(io, stream, now);
        if let Err(e) = &result {
            debug!("player closed: {:?}", e);
            self.close();
        }
        result
    }

    fn serve<T, E, const BYTES: usize, const SLOTS: usize>(
        &mut self,
        io: &mut T,
        stream: &Stream<'_, E, BYTES, SLOTS>,
        now: Instant,
    ) -> Result<(), PlayerError>
    where
        T: Transport + ?Sized,
        E: BlockEncoder,
    {
        while io.read_ready().map_err(io_error)? {
            let free = self.rx.get_mut(self.rx_len..).unwrap_or_default();
            if free.is_empty() {
                return Err(PlayerError::InputFull { capacity: RX });
            }
            let n = io.read(free).map_err(io_error)?;
            if n == 0 {
                return Err(PlayerError::PeerClosed);
            }
            self.rx_len += n;
            self.receive(stream, now)?;
        }
        if let Some(session) = self.session.as_mut() {
            if session.poll_timeout().is_some_and(|at| at <= now) {
                session.handle_timeout(now)?;
            }
        }
        if let Some(since) = self.blocked_since {
            let millis = now.saturating_millis_since(since);
            if millis >= self.stall_ms {
                return Err(PlayerError::Stalled { millis });
            }
        }
        // Write until the transport would block or nothing is due.
        loop {
            let Some((piece, out)) = self.next_output(stream)? else {
                self.blocked_since = None;
                return Ok(());
            };
            if !io.write_ready().map_err(io_error)? {
                self.blocked_since.get_or_insert(now);
                return Ok(());
            }
            let n = io.write(out).map_err(io_error)?;
            self.blocked_since = None;
            self.sent(piece, n, stream);
        }
    }

    /// Feeds the received bytes to the session and answers its events.
    fn receive<E: BlockEncoder, const BYTES: usize, const SLOTS: usize>(
        &mut self,
        stream: &Stream<'_, E, BYTES, SLOTS>,
        now: Instant,
    ) -> Result<(), PlayerError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let config = stream.config();
        let mut start = 0;
        loop {
            let input = self.rx.get(start..self.rx_len).unwrap_or_default();
            let received = session.receive(now, input)?;
            start += received.consumed;
            match received.event {
                None if received.consumed == 0 => break,
                Some(Event::PlayRequested { app, name }) => {
                    if app == config.app && stream_name_base(name) == config.name {
                        session.accept_play()?;
                        self.phase = Phase::First {
                            cursor: stream.join_cursor(),
                        };
                    } else {
                        session.refuse_play(Refusal::NotFound)?;
                        self.refused = true;
                    }
                }
                Some(Event::PublishRequested { .. }) => {
                    session.refuse_publish(Refusal::Denied)?;
                    self.refused = true;
                }
                Some(Event::PlayStopped) => {
                    self.phase = match self.phase {
                        Phase::First { cursor }
                        | Phase::Metadata { cursor, .. }
                        | Phase::Live { cursor }
                        | Phase::Stopping { cursor } => Phase::Stopping { cursor },
                        Phase::Off => Phase::Off,
                    };
                }
                _ => {}
            }
        }
        self.rx.copy_within(start..self.rx_len, 0);
        self.rx_len -= start;
        Ok(())
    }

    /// The next bytes to write, in the order the module docs give; `Err` to close.
    fn next_output<'s, E: BlockEncoder, const BYTES: usize, const SLOTS: usize>(
        &'s mut self,
        stream: &'s Stream<'_, E, BYTES, SLOTS>,
    ) -> Result<Option<(Piece, &'s [u8])>, PlayerError> {
        let ring = stream.ring();
        // A message under way goes first: anything else would land inside its chunks.
        match &mut self.phase {
            Phase::First { cursor } | Phase::Live { cursor } | Phase::Stopping { cursor }
                if !cursor.at_boundary() =>
            {
                let rest = ring
                    .current_message(cursor)
                    .map_err(|lagged| PlayerError::Lagged {
                        skipped: lagged.skipped,
                    })?;
                return Ok(Some((Piece::Ring, rest)));
            }
            Phase::Metadata { sent, len, .. } => {
                let rest = self.start.get(*sent..*len).unwrap_or_default();
                return Ok(Some((Piece::Metadata, rest)));
            }
            _ => {}
        }
        if let Some(out) = self.session.as_ref().map(|s| s.transmit()) {
            if !out.is_empty() {
                return Ok(Some((Piece::Session, out)));
            }
        }
        if self.refused {
            return Err(PlayerError::Refused);
        }
        match &mut self.phase {
            Phase::Off | Phase::Metadata { .. } => Ok(None),
            Phase::Stopping { .. } => {
                self.phase = Phase::Off;
                Ok(None)
            }
            Phase::First { cursor } => {
                if ring.skip_lagged(cursor) > 0 {
                    debug!("player: join point left the ring before it was sent");
                }
                let first = ring.current_message(cursor).unwrap_or_default();
                Ok((!first.is_empty()).then_some((Piece::Ring, first)))
            }
            Phase::Live { cursor } => {
                let skipped = ring.skip_lagged(cursor);
                if skipped > 0 {
                    debug!("player: fell behind, skipped {} messages", skipped);
                }
                // Not lagged after the skip; `first` is empty only at the live edge.
                let run = ring.read(cursor).map(|s| s.first).unwrap_or_default();
                Ok((!run.is_empty()).then_some((Piece::Ring, run)))
            }
        }
    }

    /// Accounts for `n` bytes of `piece` written.
    fn sent<E: BlockEncoder, const BYTES: usize, const SLOTS: usize>(
        &mut self,
        piece: Piece,
        n: usize,
        stream: &Stream<'_, E, BYTES, SLOTS>,
    ) {
        let ring = stream.ring();
        match (piece, &mut self.phase) {
            (Piece::Session, _) => {
                if let Some(session) = self.session.as_mut() {
                    session.advance(n);
                }
            }
            (Piece::Metadata, Phase::Metadata { cursor, sent, len }) => {
                *sent += n;
                if *sent >= *len {
                    self.phase = Phase::Live { cursor: *cursor };
                }
            }
            (Piece::Ring, Phase::First { cursor }) => {
                let (before, time) = (cursor.sequence(), ring.time_at(cursor));
                ring.advance(cursor, n);
                // The first message is out: onMetaData follows it, stamped with its time
                // (protocol-notes §6). `Stream::new` framed it once at the longest header.
                if cursor.sequence() != before {
                    let len = encode_media(
                        &mut self.start,
                        stream.config.session.chunk_size,
                        Media::Data,
                        time.unwrap_or(0) as u32,
                        stream.metadata(),
                    )
                    .unwrap_or(0);
                    self.phase = Phase::Metadata {
                        cursor: *cursor,
                        sent: 0,
                        len,
                    };
                }
            }
            (Piece::Ring, Phase::Live { cursor } | Phase::Stopping { cursor }) => {
                ring.advance(cursor, n);
            }
            _ => {}
        }
    }
}

fn io_error(e: impl embedded_io::Error) -> PlayerError {
    PlayerError::Io(e.kind())
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;
    use crate::codec::PcmS16Le;
    use crate::session::{ClientConfig, ClientEvent, ClientRole, ClientSession};

    /// An in-memory connection. What the client sent waits in `input`; the player's writes land
    /// in `output`, at most `window` bytes per call and `room` bytes per turn (then `write_ready`
    /// is false), so messages are cut at odd places.
    struct Wire {
        input: Vec<u8>,
        output: Vec<u8>,
        window: usize,
        room: usize,
    }

    #[derive(Debug)]
    struct Never;

    impl embedded_io::Error for Never {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    impl embedded_io::ErrorType for Wire {
        type Error = Never;
    }

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Never> {
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
    }

    impl ReadReady for Wire {
        fn read_ready(&mut self) -> Result<bool, Never> {
            Ok(!self.input.is_empty())
        }
    }

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Never> {
            let n = buf.len().min(self.window).min(self.room);
            self.output.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> Result<(), Never> {
            Ok(())
        }
    }

    impl WriteReady for Wire {
        fn write_ready(&mut self) -> Result<bool, Never> {
            Ok(self.room > 0)
        }
    }

    /// 20 ms messages of 22.05 kHz mono PCM, sample value = message number.
    const FRAMES: usize = 441;

    fn config(join_ms: u64) -> StreamConfig<'static> {
        StreamConfig {
            app: "live",
            name: "audio",
            rate: 22_050,
            channels: 1,
            join_ms,
            session: ServerConfig::default(),
        }
    }

    /// What a client playing `name` saw, event by event, in `turns` turns of the loop a board
    /// runs; once it plays, a message is pushed every third turn.
    fn play(name: &str, turns: usize) -> (Vec<std::string::String>, Result<(), PlayerError>) {
        let mut ring: Ring<16384, 32> = Ring::new();
        let mut pcm = [0i16; FRAMES];
        let mut body = [0u8; 1 + 2 * FRAMES];
        let encoder = PcmS16Le::new(22_050, 1).unwrap();
        let mut stream = Stream::new(config(20), encoder, &mut ring, &mut pcm, &mut body).unwrap();
        let mut pushed = 0i16;
        let mut push = |stream: &mut Stream<'_, PcmS16Le, 16384, 32>| {
            stream.push_with(|pcm| pcm.fill(pushed)).unwrap();
            pushed += 1;
        };
        for _ in 0..5 {
            push(&mut stream);
        }
        let now = Instant::from_millis(0);
        let mut player: Player<2048, 1024, 64> = Player::new();
        player.open(now, [1; 32], &stream.config().session);
        let client_config = ClientConfig {
            app: "live",
            tc_url: "rtmp://board/live",
            stream: name,
            role: ClientRole::Play,
            digest: false,
            chunk_size: 4096,
            max_message: 16384,
            idle_timeout_ms: 60_000,
        };
        let mut client: ClientSession<16384, 4096> =
            ClientSession::new(now, [2; 32], &client_config).unwrap();
        let mut wire = Wire {
            input: Vec::new(),
            output: Vec::new(),
            window: 13,
            room: 0,
        };
        let mut seen = Vec::new();
        let mut result = Ok(());
        for turn in 0..turns {
            if turn % 3 == 2 && seen.iter().any(|e| e == "Playing") {
                push(&mut stream);
            }
            wire.input.extend_from_slice(client.transmit());
            client.advance(client.transmit().len());
            wire.room = 401;
            result = player.poll(&mut wire, &stream, now);
            loop {
                let received = match client.receive(now, &wire.output) {
                    Ok(received) => received,
                    Err(e) => {
                        seen.push(std::format!("client error {e:?}"));
                        break;
                    }
                };
                wire.output.drain(..received.consumed);
                match received.event {
                    Some(ClientEvent::Audio { timestamp, payload }) => {
                        seen.push(std::format!("audio {timestamp} {}", payload[1]));
                    }
                    Some(ClientEvent::Metadata { .. }) => seen.push("metadata".into()),
                    Some(event) => seen.push(std::format!("{event:?}")),
                    None if received.consumed == 0 => break,
                    None => {}
                }
            }
            if result.is_err() {
                break;
            }
        }
        (seen, result)
    }

    #[test]
    fn a_player_gets_the_join_point_then_metadata_then_every_message_in_order() {
        let (seen, result) = play("audio?token=1", 400);
        assert_eq!(result, Ok(()));
        // Five messages (0..80 ms) were there at the play; 20 ms of join buffer start it at 60.
        assert_eq!(
            seen[..5],
            [
                "Connected",
                "Playing",
                "audio 60 3",
                "metadata",
                "audio 80 4"
            ]
        );
        let audio: Vec<&std::string::String> =
            seen.iter().filter(|e| e.starts_with("audio")).collect();
        assert!(audio.len() > 100, "{seen:?}");
        for (i, event) in audio.iter().enumerate() {
            let n = i + 3;
            assert_eq!(**event, std::format!("audio {} {n}", n * 20), "{seen:?}");
        }
        assert_eq!(seen.iter().filter(|e| *e == "metadata").count(), 1);
    }

    #[test]
    fn another_stream_is_refused_and_the_connection_closed_after_the_answer() {
        let (seen, result) = play("other", 50);
        assert_eq!(result, Err(PlayerError::Refused));
        assert_eq!(seen, ["Connected", "client error Refused"], "no Play.Start");
    }

    #[test]
    fn a_player_that_stops_reading_is_skipped_forward_then_closed_when_cut_off() {
        let mut ring: Ring<2048, 8> = Ring::new();
        let mut pcm = [0i16; FRAMES];
        let mut body = [0u8; 1 + 2 * FRAMES];
        let encoder = PcmS16Le::new(22_050, 1).unwrap();
        let mut stream = Stream::new(config(0), encoder, &mut ring, &mut pcm, &mut body).unwrap();
        let mut player: Player<2048, 1024, 64> = Player::new();
        let now = Instant::from_millis(0);
        player.open(now, [1; 32], &stream.config().session);
        // Playing from the live edge, set by hand: the media path alone, no session bytes.
        player.phase = Phase::Live {
            cursor: stream.ring().cursor_at_head(),
        };
        player.session = None;
        let mut wire = Wire {
            input: Vec::new(),
            output: Vec::new(),
            window: 100,
            room: 100,
        };
        stream.push_with(|pcm| pcm.fill(1)).unwrap();
        // `serve` directly: `poll` leaves a slot without a session alone.
        assert_eq!(player.serve(&mut wire, &stream, now), Ok(()));
        assert_eq!(wire.output.len(), 100);
        // Mid-message, and the ring overwrites it: closed.
        for _ in 0..10 {
            stream.push_with(|pcm| pcm.fill(2)).unwrap();
        }
        wire.room = 100;
        assert!(matches!(
            player.serve(&mut wire, &stream, now),
            Err(PlayerError::Lagged { skipped: 1.. })
        ));
        // At a boundary a lagging player is moved to the oldest message instead.
        player.phase = Phase::Live {
            cursor: stream.ring().cursor_since(0),
        };
        for _ in 0..10 {
            stream.push_with(|pcm| pcm.fill(3)).unwrap();
        }
        wire.room = 10_000;
        wire.output.clear();
        assert_eq!(player.serve(&mut wire, &stream, now), Ok(()));
        assert_eq!(
            wire.output.len(),
            stream.ring().len() * (12 + 1 + 2 * FRAMES)
        );
    }

    #[test]
    fn stream_refuses_buffers_that_do_not_fit() {
        let mut ring: Ring<1024, 8> = Ring::new();
        let encoder = PcmS16Le::new(22_050, 2).unwrap();
        let stereo = StreamConfig {
            channels: 2,
            ..config(0)
        };
        let mono = PcmS16Le::new(22_050, 1).unwrap();
        let result = Stream::new(stereo, mono, &mut ring, &mut [0; 4], &mut [0; 64]).err();
        assert_eq!(
            result,
            Some(StreamError::Format {
                rate: 22_050,
                channels: 2
            })
        );
        let zero = StreamConfig { rate: 0, ..stereo };
        let result = Stream::new(zero, encoder, &mut ring, &mut [0; 4], &mut [0; 64]).err();
        assert!(matches!(result, Some(StreamError::Format { rate: 0, .. })));
        let result = Stream::new(stereo, encoder, &mut ring, &mut [0; 3], &mut [0; 64]).err();
        assert_eq!(
            result,
            Some(StreamError::PcmBuffer {
                samples: 3,
                channels: 2
            })
        );
        let result = Stream::new(stereo, encoder, &mut ring, &mut [0; 20], &mut [0; 40]).err();
        assert_eq!(
            result,
            Some(StreamError::BodyBuffer {
                needed: 41,
                available: 40
            })
        );
    }
}
