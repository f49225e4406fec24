//! An HTTP connection in the server's slab: the sans-IO [`Client`] plus, once it listens, its
//! reader of one format's ring (cursor and the rest of a message a write ended inside, so a
//! listener that falls behind is skipped to a frame, tag or fragment boundary).

use std::io::IoSlice;

use zerocast_core::ring::Cursor;
use zerocast_core::time::Instant;

use super::out::HttpRing;
use super::route::Format;
use super::{Client, HttpConfig};
use crate::conn::{write, Close, Counters};
use crate::hub::{Hub, StreamId};

/// A listener's reader of a stream's format ring.
#[derive(Debug)]
pub struct Reader {
    /// The stream.
    pub stream: StreamId,
    /// The format read.
    pub format: Format,
    cursor: Cursor,
    tail: Vec<u8>,
    tail_sent: usize,
    /// The title generation last handed to the client.
    title_generation: u64,
    /// The generation of the stream's renditions the cursor belongs to.
    generation: u64,
    /// Ring messages skipped because the listener fell behind.
    pub dropped: u64,
}

/// What the server keeps for one HTTP connection.
#[derive(Debug)]
pub struct HttpConn {
    /// The request and response state.
    pub client: Client,
    /// Its reader, once it listens to a stream.
    pub reader: Option<Reader>,
}

impl HttpConn {
    /// A connection accepted at `now`.
    pub fn new(now: Instant, config: &HttpConfig) -> Self {
        Self {
            client: Client::new(now.as_millis(), config),
            reader: None,
        }
    }

    /// Starts reading `format` of `stream` `burst_ms` behind its newest message. The title the
    /// client started with is generation `title_generation`.
    pub fn listen(&mut self, hub: &Hub, stream: StreamId, format: Format, burst_ms: u64) {
        let Some(s) = hub.get(stream) else {
            return;
        };
        let Some(http) = s.http() else {
            return;
        };
        let Some(ring) = http.rendition(format).map(|r| &*r.ring) else {
            return;
        };
        let cursor = match ring.latest_time() {
            Some(latest) => ring.cursor_since(latest.saturating_sub(burst_ms)),
            None => ring.cursor_at_head(),
        };
        self.reader = Some(Reader {
            stream,
            format,
            cursor,
            tail: Vec::new(),
            tail_sent: 0,
            title_generation: s.title_generation(),
            generation: http.generation(),
            dropped: 0,
        });
    }

    /// The deadline of the request head, while it is incomplete.
    pub fn deadline(&self) -> Option<Instant> {
        self.client.deadline().map(Instant::from_millis)
    }

    /// Writes what is due — the reply, or the head, sticky bytes and the ring's new bytes with
    /// their framing — until all is out or the socket is full (`blocked_since` set then).
    pub fn flush(
        &mut self,
        socket: &mut mio::net::TcpStream,
        now: Instant,
        hub: &Hub,
        counters: &mut Counters,
        blocked_since: &mut Option<Instant>,
    ) -> Result<(), Close> {
        loop {
            self.prepare(hub, counters)?;
            let parts = self.client.next(body(self.reader.as_ref(), hub));
            let total: usize = parts.iter().map(|p| p.len()).sum();
            if total == 0 {
                if self.client.done() {
                    return Err(Close::Answered);
                }
                *blocked_since = None;
                return Ok(());
            }
            let bufs = parts.map(IoSlice::new);
            let Some(n) = write(socket, &bufs)? else {
                blocked_since.get_or_insert(now);
                return Ok(());
            };
            counters.bytes_sent += n as u64;
            let consumed = self.client.advance(n);
            self.body_written(hub, consumed);
        }
    }

    /// Catches a new title and skips the reader ahead if it fell behind the ring.
    fn prepare(&mut self, hub: &Hub, counters: &mut Counters) -> Result<(), Close> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(());
        };
        let stream = hub.get(r.stream).ok_or(Close::StreamGone)?;
        if stream.title_generation() != r.title_generation {
            r.title_generation = stream.title_generation();
            self.client.set_title(stream.title());
        }
        if r.tail_sent < r.tail.len() {
            // The rest of a cut message goes out before anything else.
            return Ok(());
        }
        let http = stream.http().ok_or(Close::StreamGone)?;
        let rendition = http.rendition(r.format);
        if http.generation() != r.generation {
            // The codec changed: the cursor belongs to the old rings. A format that can go on
            // in the same body continues at the new ring's oldest message, after the bytes that
            // announce the new codec; any other ends here, on a whole message.
            let rendition = rendition.ok_or(Close::StreamGone)?;
            let continuation = rendition.continuation().ok_or(Close::StreamGone)?;
            r.tail.clear();
            r.tail.extend_from_slice(continuation);
            r.tail_sent = 0;
            r.cursor = rendition.ring.cursor_since(0);
            r.generation = http.generation();
            return Ok(());
        }
        let ring = &rendition.ok_or(Close::StreamGone)?.ring;
        if let Err(lagged) = ring.read(&r.cursor) {
            counters.skipped_messages += lagged.skipped;
            r.dropped += lagged.skipped;
            ring.skip_lagged(&mut r.cursor);
        }
        Ok(())
    }

    /// `n` body bytes went out: from the tail, or from the ring (then the rest of a message cut
    /// by the write is copied aside).
    fn body_written(&mut self, hub: &Hub, n: usize) {
        let Some(r) = self.reader.as_mut() else {
            return;
        };
        if r.tail_sent < r.tail.len() {
            r.tail_sent += n;
            if r.tail_sent == r.tail.len() {
                r.tail.clear();
                r.tail_sent = 0;
            }
            return;
        }
        let Some(ring) = ring_of(hub, r) else {
            return;
        };
        ring.advance(&mut r.cursor, n);
        if !r.cursor.at_boundary() {
            if let Ok(rest) = ring.current_message(&r.cursor) {
                r.tail.clear();
                r.tail.extend_from_slice(rest);
                let len = rest.len();
                ring.advance(&mut r.cursor, len);
            }
        }
    }
}

/// The ring `reader` reads.
fn ring_of<'a>(hub: &'a Hub, reader: &Reader) -> Option<&'a HttpRing> {
    hub.get(reader.stream)?
        .http()?
        .rendition(reader.format)
        .map(|r| &*r.ring)
}

/// The next body bytes: the rest of a cut message, else the ring's next slice.
fn body<'a>(reader: Option<&'a Reader>, hub: &'a Hub) -> &'a [u8] {
    let Some(r) = reader else {
        return &[];
    };
    if r.tail_sent < r.tail.len() {
        return &r.tail[r.tail_sent..];
    }
    ring_of(hub, r)
        .and_then(|ring| ring.read(&r.cursor).ok())
        .map_or(&[], |s| s.first)
}
