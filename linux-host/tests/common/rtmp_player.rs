//! A blocking RTMP player for tests that need to see individual messages and when they arrive,
//! or to misbehave at a chosen moment: the core's sans-IO [`ClientSession`] over a
//! [`std::net::TcpStream`].
//!
//! Driving it is the session's documented call order: write `transmit()` and `advance`, feed
//! received bytes to `receive` until it consumes nothing, which yields at most one event a call.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use zerocast_core::session::{ClientConfig, ClientEvent, ClientRole, ClientSession};
use zerocast_core::time::Instant as CoreInstant;

use super::HarnessError;

/// Reassembly budget: a zerocast message is at most one period (20 ms of 44.1 kHz stereo PCM is
/// 3529 bytes), its onMetaData well under 1 KiB.
const ARENA: usize = 16 * 1024;
/// The client's own output: handshake, connect, createStream, play, acknowledgements.
const TX: usize = 8 * 1024;

type Session = ClientSession<ARENA, TX>;

/// What the server sent, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// `connect` was accepted.
    Connected,
    /// `NetStream.Play.Start`.
    Playing,
    /// An audio message.
    Audio {
        /// Message timestamp, ms.
        timestamp: u32,
        /// FLV audio tag body.
        payload: Vec<u8>,
    },
    /// onMetaData.
    Metadata,
    /// The server ended the stream.
    EndOfStream,
    /// The server closed the connection.
    Closed,
}

/// One connection playing `live/audio` (or another path).
pub struct RtmpPlayer {
    stream: TcpStream,
    session: Box<Session>,
    epoch: Instant,
    pending: Vec<u8>,
}

impl RtmpPlayer {
    /// Connects to 127.0.0.1:`port` and starts the handshake; `connect`, `createStream` and
    /// `play` of `app`/`name` follow as the server answers (while [`Self::next`] runs).
    pub fn connect(port: u16, app: &str, name: &str) -> Result<RtmpPlayer, HarnessError> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| HarnessError::io(format!("connect 127.0.0.1:{port}"), e))?;
        let _ = stream.set_nodelay(true);
        let tc_url = format!("rtmp://127.0.0.1:{port}/{app}");
        let config = ClientConfig {
            app,
            tc_url: &tc_url,
            stream: name,
            role: ClientRole::Play,
            digest: true,
            chunk_size: 4096,
            max_message: ARENA as u32,
            idle_timeout_ms: 60_000,
        };
        // The entropy only fills the handshake's random bytes.
        let session = Session::new(CoreInstant::from_millis(0), [0x5A; 32], &config)
            .map_err(|e| failed("client session", e))?;
        Ok(RtmpPlayer {
            stream,
            session: Box::new(session),
            epoch: Instant::now(),
            pending: Vec::new(),
        })
    }

    fn now(&self) -> CoreInstant {
        CoreInstant::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    /// Sends what the session has to send, then returns the next event; waits for bytes from
    /// the server at most until `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Result<Received, HarnessError> {
        loop {
            // The handshake's bytes and the chunk stream's are two buffers: write until both
            // are empty.
            loop {
                let out = self.session.transmit();
                if out.is_empty() {
                    break;
                }
                self.stream
                    .write_all(out)
                    .map_err(|e| HarnessError::io("write to zerocast", e))?;
                let n = out.len();
                self.session.advance(n);
            }
            let now = self.now();
            let received = self
                .session
                .receive(now, &self.pending)
                .map_err(|e| failed("receive", e))?;
            let consumed = received.consumed;
            let event = match received.event {
                None => None,
                Some(ClientEvent::Connected) => Some(Received::Connected),
                Some(ClientEvent::Playing) => Some(Received::Playing),
                Some(ClientEvent::Audio { timestamp, payload }) => Some(Received::Audio {
                    timestamp,
                    payload: payload.to_vec(),
                }),
                Some(ClientEvent::Metadata { .. }) => Some(Received::Metadata),
                Some(ClientEvent::EndOfStream) => Some(Received::EndOfStream),
                Some(ClientEvent::Publishing) => {
                    return Err(failed("receive", "Publish.Start on a play session"))
                }
            };
            self.pending.drain(..consumed);
            if let Some(event) = event {
                return Ok(event);
            }
            if consumed > 0 {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HarnessError::Timeout {
                    what: "a message from zerocast".to_owned(),
                    after: Duration::ZERO,
                });
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| HarnessError::io("set read timeout", e))?;
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(Received::Closed),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HarnessError::io("read from zerocast", e)),
            }
        }
    }

    /// Reads events until one satisfies `want`, returning it and everything before it.
    pub fn until(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(&Received) -> bool,
    ) -> Result<Vec<Received>, HarnessError> {
        let mut seen = Vec::new();
        loop {
            let event = self.next(deadline)?;
            let done = want(&event) || event == Received::Closed;
            seen.push(event);
            if done {
                return Ok(seen);
            }
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Failed {
        what: format!("rtmp client: {what}"),
        detail: e.to_string(),
    }
}
