//! An HTTP connection in the server's slab: the sans-IO [`Client`] plus, once it listens, its
//! reader of one format's ring (on the one [`Egress`] RTMP players use too), which follows the
//! stream across a codec change where the format can.

use std::io::IoSlice;

use mio::net::TcpStream;
use zerocast_core::time::Instant;

use super::{Client, HttpConfig, SendClass, BULK_MS};
use crate::conn::{Close, HttpPart};
use crate::egress::{join, write, Counters, Egress};
use crate::formats::{Format, HttpRing};
use crate::hub::{Hub, StreamId};
use crate::stream::Stream;

/// A listener's reader of a stream's format ring.
#[derive(Debug)]
pub struct Reader {
    /// The stream.
    pub stream: StreamId,
    /// The format read.
    pub format: Format,
    egress: Egress,
    /// The title generation last handed to the client.
    title_generation: u64,
    /// The generation of the stream's renditions the cursor belongs to.
    generation: u64,
    /// Ring messages skipped because the listener fell behind.
    pub dropped: u64,
    /// How often it is written.
    pub class: SendClass,
    /// When its last bytes went out.
    last_write: Option<Instant>,
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

    /// Starts reading `format` of `stream` `burst_ms` behind its newest message, written as
    /// `class` says.
    pub fn listen(
        &mut self,
        hub: &Hub,
        stream: StreamId,
        format: Format,
        burst_ms: u64,
        class: SendClass,
    ) {
        let Some(s) = hub.get(stream) else {
            return;
        };
        let Some(http) = s.http() else {
            return;
        };
        let Some(ring) = http.rendition(format).map(|r| &*r.ring) else {
            return;
        };
        self.reader = Some(Reader {
            stream,
            format,
            egress: Egress::new(join(ring, burst_ms)),
            title_generation: s.title_generation(),
            generation: http.generation(),
            dropped: 0,
            class,
            last_write: None,
        });
    }

    /// Whether a bulk listener's next block is not due yet at `now` (the send schedule skips
    /// it; its audio waits in the ring).
    pub fn holds_back(&self, now: Instant) -> bool {
        self.reader.as_ref().is_some_and(|r| {
            r.class == SendClass::Bulk
                && r.last_write
                    .is_some_and(|t| now.saturating_millis_since(t) < BULK_MS)
        })
    }

    /// Catches a new title, follows a codec change, and skips the reader ahead if it fell
    /// behind the ring.
    fn prepare(&mut self, hub: &Hub, counters: &mut Counters) -> Result<(), Close> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(());
        };
        let stream = hub.get(r.stream).ok_or(Close::StreamGone)?;
        if stream.title_generation() != r.title_generation {
            r.title_generation = stream.title_generation();
            self.client.set_title(stream.title());
        }
        if !r.egress.tail().is_empty() {
            // The rest of a cut message goes out before anything else.
            return Ok(());
        }
        let http = stream.http().ok_or(Close::StreamGone)?;
        let rendition = http.rendition(r.format).ok_or(Close::StreamGone)?;
        if http.generation() != r.generation {
            // The codec changed: the cursor belongs to the old rings. A format that can go on
            // in the same body continues at the new ring's oldest message, after the bytes that
            // announce the new codec; any other ends here, on a whole message.
            let continuation = rendition.continuation().ok_or(Close::StreamGone)?;
            r.egress
                .move_to(rendition.ring.cursor_since(0), continuation);
            r.generation = http.generation();
            return Ok(());
        }
        r.dropped += r.egress.catch_up(&rendition.ring, counters);
        Ok(())
    }
}

impl HttpPart for HttpConn {
    /// Writes what is due — the reply, or the head, sticky bytes and the ring's new bytes with
    /// their framing — until all is out or the socket is full (`blocked_since` set then).
    fn flush(
        &mut self,
        socket: &mut TcpStream,
        now: Instant,
        hub: &Hub,
        counters: &mut Counters,
        blocked_since: &mut Option<Instant>,
    ) -> Result<(), Close> {
        loop {
            self.prepare(hub, counters)?;
            let reader = self.reader.as_ref();
            let ring = reader.and_then(|r| ring_of(hub, r));
            let body = match (reader, ring) {
                (Some(r), _) if !r.egress.tail().is_empty() => r.egress.tail(),
                (Some(r), Some(ring)) => r.egress.ring_bytes(ring).first,
                _ => &[],
            };
            let parts = self.client.next(body);
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
            if let Some(r) = self.reader.as_mut() {
                let ring = ring_of(hub, r);
                r.egress.written(ring, consumed);
                // A block is audio: the head alone does not start the wait for the next one.
                if consumed > 0 {
                    r.last_write = Some(now);
                }
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.client.deadline().map(Instant::from_millis)
    }
}

/// The ring `reader` reads.
fn ring_of<'a>(hub: &'a Hub, reader: &Reader) -> Option<&'a HttpRing> {
    hub.get(reader.stream)
        .and_then(Stream::http)
        .and_then(|h| h.rendition(reader.format))
        .map(|r| &*r.ring)
}

#[cfg(test)]
mod tests {
    /// What an HTTP listener costs beside its socket, for docs/architecture.md.
    #[test]
    fn memory_of_a_listener_is_printed() {
        let size = std::mem::size_of::<super::HttpConn>();
        println!("HTTP listener state beside the socket: {size} bytes (HttpConn) + its tail");
        assert!(size < 1024);
    }
}
