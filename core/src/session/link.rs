//! What server and client sessions share once the handshake is done: the chunk reader and writer,
//! the transmit buffer, acknowledgements and ping liveness.

use crate::chunk::{ChunkWriter, MessageHeader};
use crate::message::{Control, UserControl};
use crate::time::Instant;

use super::SessionError;

/// Chunk stream for protocol control and user control messages (RTMP spec 5.4, 7.1.7).
pub(super) const CSID_PROTOCOL: u32 = 2;

/// Per-direction chunk stream slots a session keeps. Real clients use at most five (ffmpeg: 2, 3,
/// 4, 8; nginx: 2, 3, 5, 6); a few spare ones tolerate OBS and others.
pub(super) const CHUNK_STREAMS: usize = 8;

/// The largest AMF0 body a session writes itself (commands and status replies, ~250 B).
pub(super) const SCRATCH: usize = 512;

/// A fixed transmit buffer: appended at the end, drained from the start, compacted when needed.
pub(super) struct TxBuffer<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
}

impl<const N: usize> TxBuffer<N> {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; N],
            start: 0,
            end: 0,
        }
    }

    pub(super) fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    pub(super) fn advance(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The free tail of the buffer after moving pending bytes to the front.
    fn free(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or(&mut [])
    }

    /// Appends what `write` puts into the free tail; a full buffer is the peer's fault (it does
    /// not read what it asks for) and ends the session.
    pub(super) fn append<E>(
        &mut self,
        write: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<(), SessionError> {
        let free = self.free();
        let room = free.len();
        let n = write(free).map_err(|_| SessionError::TransmitBufferFull { capacity: N })?;
        self.end += n.min(room);
        Ok(())
    }
}

/// Sends a PingRequest after this long without a byte from the peer (nginx-rtmp `ping 60s`, but
/// shorter: a dead player should free its slot on a Pi quickly).
const PING_AFTER_MS: u64 = 30_000;

/// Closes the session when no byte arrives this long after a PingRequest (nginx `ping_timeout`).
const PING_TIMEOUT_MS: u64 = 15_000;

/// The minimum time between two PingResponses: a ping flood costs O(1) and sends little.
const PONG_INTERVAL_MS: u64 = 100;

/// The output side of an established session and its liveness state, for both roles (the
/// chunk reader lives beside it, so a received payload can be borrowed while this is updated).
pub(super) struct Link<const TX: usize> {
    pub(super) writer: ChunkWriter<CHUNK_STREAMS>,
    pub(super) tx: TxBuffer<TX>,
    /// The sequence number of the peer's latest Acknowledgement.
    peer_acked: u32,
    /// The peer asked to be acknowledged every this many bytes (0 = never).
    peer_window: u32,
    /// `reader.bytes_received()` when the last Acknowledgement was sent.
    acked: u64,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    next_pong: Instant,
}

impl<const TX: usize> Link<TX> {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            writer: ChunkWriter::new(),
            tx: TxBuffer::new(),
            peer_acked: 0,
            peer_window: 0,
            acked: 0,
            last_rx: now,
            ping_sent: None,
            next_pong: now,
        }
    }

    /// The sequence number of the peer's latest Acknowledgement.
    pub(super) fn peer_acknowledged(&self) -> u32 {
        self.peer_acked
    }

    /// Any byte from the peer proves it alive.
    pub(super) fn note_rx(&mut self, now: Instant) {
        self.last_rx = now;
        self.ping_sent = None;
    }

    /// Writes one message on `csid` / `stream_id` through the compressing chunk writer.
    pub(super) fn send(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        body: &[u8],
    ) -> Result<(), SessionError> {
        let header = MessageHeader {
            csid,
            timestamp,
            length: u32::try_from(body.len()).unwrap_or(u32::MAX),
            type_id,
            stream_id,
        };
        let writer = &mut self.writer;
        self.tx.append(|buf| writer.write(buf, &header, body))
    }

    /// Writes a protocol control or user control message on chunk stream 2.
    pub(super) fn send_control(&mut self, control: Control) -> Result<(), SessionError> {
        let mut body = [0u8; 16];
        let n = control.encode(&mut body).map_err(SessionError::Message)?;
        self.send(
            CSID_PROTOCOL,
            control.type_id(),
            0,
            0,
            body.get(..n).unwrap_or(&[]),
        )
    }

    /// Writes an AMF0 body produced by `encode` as a message of `type_id`.
    pub(super) fn send_amf<E>(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<(), SessionError> {
        let mut body = [0u8; SCRATCH];
        let n = encode(&mut body)
            .map_err(|_| SessionError::TransmitBufferFull { capacity: SCRATCH })?;
        self.send(csid, type_id, stream_id, 0, body.get(..n).unwrap_or(&[]))
    }

    /// Acknowledges received bytes once the peer's window is reached (RTMP spec 5.4.3): at most one
    /// Acknowledgement per call, however small the window, so a window of 1 cannot flood.
    pub(super) fn acknowledge(&mut self, received: u64) -> Result<(), SessionError> {
        if self.peer_window > 0 && received - self.acked >= u64::from(self.peer_window) {
            self.acked = received;
            // The sequence number is the byte count modulo 2^32 (it wraps, as in ffmpeg/nginx).
            self.send_control(Control::Acknowledgement {
                sequence: received as u32,
            })?;
        }
        Ok(())
    }

    /// Handles a protocol or user control message the same way in both roles.
    pub(super) fn handle_control(
        &mut self,
        now: Instant,
        control: Control,
    ) -> Result<(), SessionError> {
        match control {
            // Applied by the chunk reader itself; Acknowledgements are information only: output
            // is never blocked on a peer's acks (nginx ignores them too).
            Control::SetChunkSize(size) => debug!("peer chunk size {}", size),
            Control::Abort { .. } => {}
            Control::Acknowledgement { sequence } => self.peer_acked = sequence,
            Control::WindowAckSize(size) => self.peer_window = size,
            // Never throttle output on the peer's say-so (protocol-notes #21).
            Control::SetPeerBandwidth { .. } => {}
            Control::User(UserControl::PingRequest(stamp)) => {
                if now >= self.next_pong {
                    self.next_pong = now.saturating_add_millis(PONG_INTERVAL_MS);
                    self.send_control(Control::User(UserControl::PingResponse(stamp)))?;
                }
            }
            Control::User(_) => {}
        }
        Ok(())
    }

    /// The next liveness deadline: when to ping, or when an unanswered ping times out.
    pub(super) fn poll_timeout(&self) -> Instant {
        match self.ping_sent {
            Some(sent) => sent.saturating_add_millis(PING_TIMEOUT_MS),
            None => self.last_rx.saturating_add_millis(PING_AFTER_MS),
        }
    }

    /// Pings a quiet peer, and gives up on one that stays quiet.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.ping_sent {
            Some(sent) if now.saturating_millis_since(sent) >= PING_TIMEOUT_MS => {
                Err(SessionError::IdleTimeout {
                    millis: now.saturating_millis_since(self.last_rx),
                })
            }
            None if now.saturating_millis_since(self.last_rx) >= PING_AFTER_MS => {
                self.ping_sent = Some(now);
                self.send_control(Control::User(UserControl::PingRequest(
                    now.as_millis() as u32
                )))
            }
            _ => Ok(()),
        }
    }
}
