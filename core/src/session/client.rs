//! The client side: connects, then plays or publishes one stream. zerocast uses it to push to a
//! bigger RTMP server; the tests use it to drive the server session.

use crate::command::{self, Command, Data};
use crate::handshake::ClientHandshake;
use crate::message::{self, Control, UserControl};
use crate::time::Instant;

use super::link::{Link, CHUNK_STREAMS};
use super::{store_name, SessionError, MAX_NAME};
use crate::chunk::ChunkReader;

/// Chunk stream for connect / createStream (ffmpeg uses 3).
const CSID_COMMAND: u32 = 3;
/// Chunk stream for outgoing media and metadata (ffmpeg uses 4).
const CSID_MEDIA: u32 = 4;
/// Chunk stream for play / publish / deleteStream (ffmpeg uses 8).
const CSID_STREAM: u32 = 8;

/// Transaction ids of the requests the client tracks.
const TID_CONNECT: f64 = 1.0;
const TID_CREATE_STREAM: f64 = 4.0;

/// What the client does once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClientRole {
    /// Play the stream.
    Play,
    /// Publish to the stream.
    Publish,
}

/// Settings of a client session.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig<'a> {
    /// Application to connect to (`live`).
    pub app: &'a str,
    /// `tcUrl` sent in connect (`rtmp://host/live`).
    pub tc_url: &'a str,
    /// Stream name to play or publish.
    pub stream: &'a str,
    /// Play or publish.
    pub role: ClientRole,
    /// Send a digest (FP9) C1 like ffmpeg, and check the server's S1 digest.
    pub digest: bool,
    /// Chunk size for the client's own output, announced after connect (ffmpeg and OBS: 4096).
    pub chunk_size: u32,
    /// Largest message accepted from the server.
    pub max_message: u32,
}

/// What one [`ClientSession::receive`] call did.
#[derive(Debug)]
pub struct ClientReceived<'a> {
    /// How many bytes of the input were used.
    pub consumed: usize,
    /// At most one event.
    pub event: Option<ClientEvent<'a>>,
}

/// What the client learned from the server.
#[derive(Debug, PartialEq)]
pub enum ClientEvent<'a> {
    /// The server accepted `connect`.
    Connected,
    /// `NetStream.Play.Start`: media follows.
    Playing,
    /// `NetStream.Publish.Start`: [`send_audio`](ClientSession::send_audio) may be called.
    Publishing,
    /// An audio message (FLV audio tag body).
    Audio {
        /// Message timestamp in milliseconds.
        timestamp: u32,
        /// The FLV audio tag body.
        payload: &'a [u8],
    },
    /// `onMetaData` from the server: the AMF0 body from the string `onMetaData` on.
    Metadata {
        /// `"onMetaData"` and its object / ECMA array.
        body: &'a [u8],
    },
    /// The server ended the stream (`NetStream.Play.Stop`, `UnpublishNotify`, StreamEOF).
    EndOfStream,
}

#[derive(Clone, Copy)]
enum Found {
    Connected,
    Playing,
    Publishing,
    Audio { timestamp: u32 },
    Metadata { skip: usize },
    EndOfStream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    Starting,
    Streaming,
}

/// A client connection, sans-IO like [`ServerSession`](super::ServerSession).
pub struct ClientSession<const ARENA: usize, const TX: usize> {
    reader: ChunkReader<CHUNK_STREAMS, ARENA>,
    inner: Client<TX>,
}

/// Everything of a client session but its chunk reader.
struct Client<const TX: usize> {
    handshake: Option<ClientHandshake>,
    link: Link<TX>,
    state: State,
    role: ClientRole,
    chunk_size: u32,
    app: heapless::String<MAX_NAME>,
    tc_url: heapless::String<MAX_NAME>,
    stream: heapless::String<MAX_NAME>,
    stream_id: u32,
}

impl<const ARENA: usize, const TX: usize> ClientSession<ARENA, TX> {
    /// A client that starts its handshake at `now`; C0+C1 are ready in `transmit()` at once.
    pub fn new(
        now: Instant,
        entropy: [u8; 32],
        config: &ClientConfig<'_>,
    ) -> Result<Self, SessionError> {
        let mut client = Client {
            handshake: Some(ClientHandshake::new(
                now.as_millis() as u32,
                entropy,
                config.digest,
            )),
            link: Link::new(now),
            state: State::Handshake,
            role: config.role,
            chunk_size: config.chunk_size,
            app: heapless::String::new(),
            tc_url: heapless::String::new(),
            stream: heapless::String::new(),
            stream_id: 0,
        };
        store_name(&mut client.app, config.app)?;
        store_name(&mut client.tc_url, config.tc_url)?;
        store_name(&mut client.stream, config.stream)?;
        Ok(Self {
            reader: ChunkReader::new(config.max_message),
            inner: client,
        })
    }

    /// Parses bytes from the server; same convention as the server session.
    pub fn receive(
        &mut self,
        now: Instant,
        input: &[u8],
    ) -> Result<ClientReceived<'_>, SessionError> {
        if !input.is_empty() {
            self.inner.link.note_rx(now);
        }
        let mut consumed = 0;
        let found = loop {
            let rest = input.get(consumed..).unwrap_or(&[]);
            if self.inner.state == State::Handshake {
                let Some(handshake) = self.inner.handshake.as_mut() else {
                    break None;
                };
                consumed += handshake.receive(rest)?;
                if !handshake.is_complete() {
                    break None;
                }
                self.inner.state = State::Connecting;
                self.inner.send_connect()?;
                continue;
            }
            let (n, found) = self.step(now, rest)?;
            consumed += n;
            if found.is_some() || n == 0 {
                break found;
            }
        };
        let event = found.map(|found| match found {
            Found::Connected => ClientEvent::Connected,
            Found::Playing => ClientEvent::Playing,
            Found::Publishing => ClientEvent::Publishing,
            Found::Audio { timestamp } => ClientEvent::Audio {
                timestamp,
                payload: self.reader.last_payload(),
            },
            Found::Metadata { skip } => ClientEvent::Metadata {
                body: self.reader.last_payload().get(skip..).unwrap_or(&[]),
            },
            Found::EndOfStream => ClientEvent::EndOfStream,
        });
        Ok(ClientReceived { consumed, event })
    }

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
            let eof = matches!(control, Control::User(UserControl::StreamEof(_)));
            self.inner.link.handle_control(now, control)?;
            (eof && self.inner.state == State::Streaming).then_some(Found::EndOfStream)
        } else {
            match header.type_id {
                message::COMMAND_AMF0 => self.inner.command(payload)?,
                message::AUDIO if self.inner.state == State::Streaming => Some(Found::Audio {
                    timestamp: header.timestamp,
                }),
                message::DATA_AMF0 => match command::parse_data(payload)? {
                    Data::SetDataFrame { body } | Data::OnMetaData { body } => {
                        Some(Found::Metadata {
                            skip: payload.len() - body.len(),
                        })
                    }
                    Data::Other { .. } => None,
                },
                _ => None,
            }
        };
        self.inner.link.acknowledge(self.reader.bytes_received())?;
        Ok((n, found))
    }

    /// Whether the stream is playing or publishing.
    pub fn is_streaming(&self) -> bool {
        self.inner.is_streaming()
    }

    /// Sends one audio message (FLV audio tag body) while publishing.
    pub fn send_audio(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), SessionError> {
        self.inner.send_audio(timestamp, payload)
    }

    /// Sends `@setDataFrame` with `on_metadata` (`"onMetaData"` + object, as AMF0) while publishing.
    pub fn send_metadata(&mut self, on_metadata: &[u8]) -> Result<(), SessionError> {
        self.inner.send_metadata(on_metadata)
    }

    /// Changes the client's outgoing chunk size mid-stream (sends Set Chunk Size first).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), SessionError> {
        self.inner.set_chunk_size(size)
    }

    /// Ends publishing the way ffmpeg does: FCUnpublish + deleteStream.
    pub fn unpublish(&mut self) -> Result<(), SessionError> {
        self.inner.unpublish()
    }

    /// Bytes to send, in order (handshake first).
    pub fn transmit(&self) -> &[u8] {
        self.inner.transmit()
    }

    /// Reports that the first `n` bytes of [`transmit`](Self::transmit) were sent.
    pub fn advance(&mut self, n: usize) {
        self.inner.advance(n)
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    /// Pings a silent server and gives up on one that stays silent.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        self.inner.handle_timeout(now)
    }
}

impl<const TX: usize> Client<TX> {
    fn send_connect(&mut self) -> Result<(), SessionError> {
        let (app, tc_url) = (&self.app, &self.tc_url);
        // The connect objects ffmpeg sends, so servers treat zerocast as they treat ffmpeg.
        self.link
            .send_amf(CSID_COMMAND, message::COMMAND_AMF0, 0, |buf| {
                match self.role {
                    ClientRole::Play => command::encode_connect_player(
                        buf,
                        TID_CONNECT,
                        app,
                        tc_url,
                        "LNX 9,0,124,2",
                    ),
                    ClientRole::Publish => command::encode_connect(
                        buf,
                        TID_CONNECT,
                        app,
                        tc_url,
                        "FMLE/3.0 (compatible; zerocast)",
                    ),
                }
            })
    }

    fn command(&mut self, payload: &[u8]) -> Result<Option<Found>, SessionError> {
        match command::parse_command(payload)? {
            Command::Result { transaction_id, .. }
                if transaction_id == TID_CONNECT && self.state == State::Connecting =>
            {
                self.after_connect()?;
                Ok(Some(Found::Connected))
            }
            Command::Result {
                transaction_id,
                number: Some(id),
                ..
            } if transaction_id == TID_CREATE_STREAM && self.state == State::CreatingStream => {
                self.stream_id = id as u32;
                self.start()?;
                Ok(None)
            }
            Command::Error { transaction_id, .. }
                if transaction_id == TID_CONNECT || transaction_id == TID_CREATE_STREAM =>
            {
                Err(SessionError::Refused)
            }
            Command::OnStatus { level, code, .. } => {
                if level == "error" {
                    return Err(SessionError::Refused);
                }
                Ok(match code {
                    "NetStream.Play.Start" if self.state == State::Starting => {
                        self.state = State::Streaming;
                        Some(Found::Playing)
                    }
                    "NetStream.Publish.Start" if self.state == State::Starting => {
                        self.state = State::Streaming;
                        Some(Found::Publishing)
                    }
                    "NetStream.Play.Stop" | "NetStream.Play.UnpublishNotify"
                        if self.state == State::Streaming =>
                    {
                        Some(Found::EndOfStream)
                    }
                    _ => None,
                })
            }
            _ => Ok(None),
        }
    }

    /// After `connect`: like ffmpeg, announce our chunk size and window, then (publisher)
    /// releaseStream + FCPublish, and createStream.
    fn after_connect(&mut self) -> Result<(), SessionError> {
        let link = &mut self.link;
        link.send_control(Control::WindowAckSize(5_000_000))?;
        link.send_control(Control::SetChunkSize(self.chunk_size))?;
        link.writer.set_chunk_size(self.chunk_size)?;
        let stream = &self.stream;
        if self.role == ClientRole::Publish {
            link.send_amf(CSID_COMMAND, message::COMMAND_AMF0, 0, |buf| {
                command::encode_release_stream(buf, 2.0, stream)
            })?;
            link.send_amf(CSID_COMMAND, message::COMMAND_AMF0, 0, |buf| {
                command::encode_fc_publish(buf, 3.0, stream)
            })?;
        }
        link.send_amf(CSID_COMMAND, message::COMMAND_AMF0, 0, |buf| {
            command::encode_create_stream(buf, TID_CREATE_STREAM)
        })?;
        self.state = State::CreatingStream;
        Ok(())
    }

    fn start(&mut self) -> Result<(), SessionError> {
        let (link, stream, id) = (&mut self.link, &self.stream, self.stream_id);
        match self.role {
            ClientRole::Play => {
                link.send_amf(CSID_STREAM, message::COMMAND_AMF0, id, |buf| {
                    command::encode_play(buf, 5.0, stream, -2000.0)
                })?;
                link.send_control(Control::User(UserControl::SetBufferLength {
                    stream_id: id,
                    millis: 3000,
                }))?;
            }
            ClientRole::Publish => {
                link.send_amf(CSID_STREAM, message::COMMAND_AMF0, id, |buf| {
                    command::encode_publish(buf, 5.0, stream, "live")
                })?;
            }
        }
        self.state = State::Starting;
        Ok(())
    }

    fn is_streaming(&self) -> bool {
        self.state == State::Streaming
    }

    fn send_audio(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), SessionError> {
        self.send_media(message::AUDIO, timestamp, payload)
    }

    fn send_metadata(&mut self, on_metadata: &[u8]) -> Result<(), SessionError> {
        if self.state != State::Streaming || self.role != ClientRole::Publish {
            return Err(SessionError::InvalidState);
        }
        let id = self.stream_id;
        self.link
            .send_amf(CSID_MEDIA, message::DATA_AMF0, id, |buf| {
                command::encode_set_data_frame(buf, on_metadata)
            })
    }

    fn send_media(
        &mut self,
        type_id: u8,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), SessionError> {
        if self.state != State::Streaming || self.role != ClientRole::Publish {
            return Err(SessionError::InvalidState);
        }
        self.link
            .send(CSID_MEDIA, type_id, self.stream_id, timestamp, payload)
    }

    fn set_chunk_size(&mut self, size: u32) -> Result<(), SessionError> {
        self.link.send_control(Control::SetChunkSize(size))?;
        self.link.writer.set_chunk_size(size)?;
        Ok(())
    }

    fn unpublish(&mut self) -> Result<(), SessionError> {
        if self.state != State::Streaming || self.role != ClientRole::Publish {
            return Err(SessionError::InvalidState);
        }
        let (link, stream, id) = (&mut self.link, &self.stream, self.stream_id);
        link.send_amf(CSID_COMMAND, message::COMMAND_AMF0, 0, |buf| {
            command::encode_fc_unpublish(buf, 6.0, stream)
        })?;
        link.send_amf(CSID_STREAM, message::COMMAND_AMF0, 0, |buf| {
            command::encode_delete_stream(buf, 7.0, id)
        })?;
        self.state = State::Connecting;
        Ok(())
    }

    fn transmit(&self) -> &[u8] {
        match &self.handshake {
            Some(h) if !h.transmit().is_empty() => h.transmit(),
            _ => self.link.tx.pending(),
        }
    }

    fn advance(&mut self, n: usize) {
        match &mut self.handshake {
            Some(h) if !h.transmit().is_empty() => {
                h.advance(n);
                if h.is_complete() && h.transmit().is_empty() {
                    self.handshake = None;
                }
            }
            _ => self.link.tx.advance(n),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Handshake).then(|| self.link.poll_timeout())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.state == State::Handshake {
            return Ok(());
        }
        self.link.handle_timeout(now)
    }
}
