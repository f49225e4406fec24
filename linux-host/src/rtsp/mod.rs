//! An RTSP connection in the server's slab: its requests (read with the core's
//! [`zerocast_core::rtsp`] parser, bounded), its replies, and once it plays, its reader of the
//! stream's `.flv` rendition on the one [`Egress`], each message made into RTP packets for this
//! player ([`track`]) and written interleaved on the connection or sent as UDP datagrams.
//!
//! What the requests mean (which stream, who may play it) is the server's
//! (`server/rtsp.rs`); this holds the connection's state and writes its output.

pub mod track;

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use mio::net::TcpStream;
use zerocast_core::rtp::emit_interleaved;
use zerocast_core::rtsp::{self, Input, Method, MAX_BODY, MAX_HEAD};
use zerocast_core::time::Instant;

use crate::conn::{Close, Granted, HttpPart};
use crate::egress::{write, Counters, Egress};
use crate::formats::Format;
use crate::http::BULK_MS;
use crate::hub::{Hub, StreamId};
use track::{Channel, RtpOut, Track};

/// How long a session lives without a request while its packets go over UDP (the `timeout`
/// of its `Session` header; players send a keep-alive every half of it).
pub const SESSION_TIMEOUT_S: u64 = 60;
/// Replies a player may leave unread before it is closed: a few dozen replies. A player that
/// sends requests and never reads would otherwise grow them without end.
const MAX_UNREAD_REPLIES: usize = 16 * 1024;
/// Packets queued for one write over TCP: a send interval's worth for any codec (20 ms of
/// 48 kHz stereo PCM is under 4 KiB), and the most a player holds beside the ring.
const TCP_BATCH: usize = 16 * 1024;
/// What the server answers `OPTIONS` with.
pub const METHODS: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";

/// The UDP sockets every UDP session sends from (one pair for the server, ports chosen by the
/// system; incoming datagrams are never read: the kernel drops them once its buffer is full).
#[derive(Debug)]
pub struct UdpPair {
    /// RTP.
    pub rtp: UdpSocket,
    /// RTCP.
    pub rtcp: UdpSocket,
}

/// Where a session's packets go.
#[derive(Debug)]
pub enum Route {
    /// Interleaved on the RTSP connection, on these channels.
    Tcp {
        /// RTP's channel.
        rtp: u8,
        /// RTCP's channel.
        rtcp: u8,
    },
    /// UDP datagrams to the player's ports.
    Udp {
        /// The server's sockets.
        sockets: Rc<UdpPair>,
        /// The player's RTP address.
        rtp: SocketAddr,
        /// The player's RTCP address.
        rtcp: SocketAddr,
    },
}

/// A stream a player asked about (`DESCRIBE`), with what it was let in with.
#[derive(Debug)]
pub struct Described {
    /// The stream.
    pub stream: StreamId,
    /// Its renditions' generation (a codec change ends the session: the SDP cannot change).
    pub generation: u64,
    /// Its audio.
    pub track: Track,
    /// The request it was granted for.
    pub granted: Granted,
}

/// A player's session (after `SETUP`).
#[derive(Debug)]
pub struct Session {
    /// Its id, as the `Session` header says it.
    pub id: String,
    /// What it plays.
    pub described: Described,
    /// Where its packets go.
    pub route: Route,
    /// Its RTP state.
    pub out: RtpOut,
    /// Its reader of the ring, while it plays.
    pub reader: Option<Egress>,
    /// Ring messages skipped because it fell behind.
    pub dropped: u64,
    /// When its packets were last written or sent (for the send schedule).
    last_write: Option<Instant>,
}

impl Session {
    /// A session `id` of `described` over `route`, not playing yet.
    pub fn new(id: String, described: Described, route: Route, out: RtpOut) -> Self {
        Self {
            id,
            described,
            route,
            out,
            reader: None,
            dropped: 0,
            last_write: None,
        }
    }
}

/// A request as the server handles it: the parser's, owned.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// URI.
    pub uri: String,
    /// `CSeq`.
    pub cseq: Option<u32>,
    /// `Session`.
    pub session: Option<String>,
    /// `Transport`.
    pub transport: Option<String>,
}

/// The status of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 400.
    BadRequest,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 454.
    SessionNotFound,
    /// 459: one track, one `SETUP`.
    AggregateNotAllowed,
    /// 461.
    UnsupportedTransport,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::SessionNotFound => "454 Session Not Found",
            Status::AggregateNotAllowed => "459 Aggregate Operation Not Allowed",
            Status::UnsupportedTransport => "461 Unsupported Transport",
        }
    }
}

/// What the server keeps for one RTSP connection.
#[derive(Debug)]
pub struct RtspConn {
    /// Received bytes not yet a whole request (at most a head and a body).
    input: Vec<u8>,
    /// Bytes of an interleaved frame still to drop.
    skip: usize,
    replies: Vec<u8>,
    replies_sent: usize,
    last_request: Instant,
    header_timeout_ms: u64,
    /// The stream of the last `DESCRIBE`.
    pub described: Option<Described>,
    /// The session, after `SETUP`.
    pub session: Option<Session>,
    /// `TEARDOWN`: close once the replies are out.
    teardown: bool,
}

impl RtspConn {
    /// A connection accepted at `now`, whose requests must each arrive within
    /// `header_timeout_ms`.
    pub fn new(now: Instant, header_timeout_ms: u64) -> Self {
        Self {
            input: Vec::new(),
            skip: 0,
            replies: Vec::new(),
            replies_sent: 0,
            last_request: now,
            header_timeout_ms,
            described: None,
            session: None,
            teardown: false,
        }
    }

    /// Whether its next block of packets is not due yet at `now`: RTSP players (cameras'
    /// world: Home Assistant, go2rtc) buffer a second or more, so they are written in blocks of
    /// [`BULK_MS`] like Icecast-style HTTP listeners, not every send interval.
    pub fn holds_back(&self, now: Instant) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.last_write)
            .is_some_and(|t| now.saturating_millis_since(t) < BULK_MS)
    }

    /// The stream it plays, if it plays.
    pub fn playing(&self) -> Option<StreamId> {
        let session = self.session.as_ref()?;
        session.reader.as_ref().map(|_| session.described.stream)
    }

    /// Takes received bytes; returns the whole requests among them, in order. Interleaved
    /// frames (a player's RTCP reports) are dropped unread.
    pub fn receive(&mut self, mut input: &[u8], now: Instant) -> Result<Vec<Request>, Close> {
        let mut requests = Vec::new();
        loop {
            let skipped = self.skip.min(input.len());
            self.skip -= skipped;
            input = &input[skipped..];
            // Never more than a head and a body: the parser refuses longer before that.
            let room = (MAX_HEAD + MAX_BODY).saturating_sub(self.input.len());
            let take = room.min(input.len());
            self.input.extend_from_slice(&input[..take]);
            input = &input[take..];
            let used = match rtsp::parse(&self.input).map_err(Close::RtspRequest)? {
                Input::Partial if input.is_empty() => return Ok(requests),
                Input::Partial => return Err(Close::RtspRequest(rtsp::RtspError::HeadTooLong)),
                Input::Interleaved { len, .. } => len,
                Input::Request(r) => {
                    self.last_request = now;
                    requests.push(Request {
                        method: r.method,
                        uri: r.uri.to_owned(),
                        cseq: r.cseq,
                        session: r.session.map(str::to_owned),
                        transport: r.transport.map(str::to_owned),
                    });
                    r.len
                }
            };
            let dropped = used.min(self.input.len());
            self.skip = used - dropped;
            self.input.drain(..dropped);
            if self.input.is_empty() && input.is_empty() {
                // Freed: a playing player's connection holds no buffer between requests.
                self.input = Vec::new();
                return Ok(requests);
            }
        }
    }

    /// Queues a reply to a request with `cseq`: `headers` (whole lines) and `body`, typed
    /// `content_type`.
    pub fn reply(
        &mut self,
        cseq: Option<u32>,
        status: Status,
        headers: &str,
        body: Option<(&str, &str)>,
    ) -> Result<(), Close> {
        use std::fmt::Write as _;
        let mut text = format!("RTSP/1.0 {}\r\n", status.line());
        if let Some(cseq) = cseq {
            let _ = write!(text, "CSeq: {cseq}\r\n");
        }
        text.push_str("Server: zerocast\r\n");
        text.push_str(headers);
        match body {
            Some((content_type, body)) => {
                let _ = write!(
                    text,
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            None => text.push_str("\r\n"),
        }
        if self.replies.len() - self.replies_sent + text.len() > MAX_UNREAD_REPLIES {
            return Err(Close::RtspIdle);
        }
        self.replies.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// Ends the connection once its replies are out.
    pub fn tear_down(&mut self) {
        self.teardown = true;
    }

    /// Queues the packets of the next ring message (TCP), or sends those of every message due
    /// (UDP); returns whether there may be more to write.
    fn next_message(
        &mut self,
        hub: &Hub,
        now: Instant,
        counters: &mut Counters,
    ) -> Result<bool, Close> {
        let Some(session) = self.session.as_mut() else {
            return Ok(false);
        };
        let Some(egress) = session.reader.as_mut() else {
            return Ok(false);
        };
        let stream = hub.get(session.described.stream).ok_or(Close::StreamGone)?;
        let http = stream.http().ok_or(Close::StreamGone)?;
        if http.generation() != session.described.generation {
            return Err(Close::StreamGone);
        }
        let ring = &http.rendition(Format::Flv).ok_or(Close::StreamGone)?.ring;
        session.dropped += egress.catch_up(ring, counters);
        let out = &mut session.out;
        match &session.route {
            Route::Tcp { rtp, rtcp } => {
                // The packets of every message due, up to a batch: one write for them all, as
                // an HTTP listener's ring bytes go out in one.
                let mut queued = false;
                while egress.tail().len() < TCP_BATCH
                    && egress.wrap_message(ring, |tag, time, tail| {
                        out.message(tag, time, |channel, packet| {
                            let id = match channel {
                                Channel::Rtp => *rtp,
                                Channel::Rtcp => *rtcp,
                            };
                            let mut head = [0u8; 4];
                            if emit_interleaved(id, packet.len(), &mut head).is_ok() {
                                tail.extend_from_slice(&head);
                                tail.extend_from_slice(packet);
                            }
                        });
                    })
                {
                    queued = true;
                }
                if queued {
                    session.last_write = Some(now);
                }
                Ok(queued)
            }
            Route::Udp { sockets, rtp, rtcp } => {
                // Datagrams are sent or lost, never queued: a slow UDP player loses packets,
                // and the server keeps nothing for it.
                let mut sent = 0;
                while egress.wrap_message(ring, |tag, time, _| {
                    out.message(tag, time, |channel, packet| {
                        let (socket, to) = match channel {
                            Channel::Rtp => (&sockets.rtp, rtp),
                            Channel::Rtcp => (&sockets.rtcp, rtcp),
                        };
                        if socket.send_to(packet, to).is_ok() {
                            sent += packet.len() as u64;
                        }
                    });
                }) {}
                if sent > 0 {
                    session.last_write = Some(now);
                }
                counters.bytes_sent += sent;
                Ok(false)
            }
        }
    }
}

impl HttpPart for RtspConn {
    /// Writes the rest of a message's packets, then the replies, then the next messages'
    /// packets, until all is out or the socket is full (`blocked_since` set then).
    fn flush(
        &mut self,
        socket: &mut TcpStream,
        now: Instant,
        hub: &Hub,
        counters: &mut Counters,
        blocked_since: &mut Option<Instant>,
    ) -> Result<(), Close> {
        loop {
            let tail = self
                .session
                .as_ref()
                .and_then(|s| s.reader.as_ref())
                .map_or(&[][..], Egress::tail);
            let from_tail = !tail.is_empty();
            let due = if from_tail {
                tail
            } else {
                &self.replies[self.replies_sent..]
            };
            if due.is_empty() {
                if self.teardown {
                    return Err(Close::Teardown);
                }
                if self.next_message(hub, now, counters)? {
                    continue;
                }
                *blocked_since = None;
                return Ok(());
            }
            let Some(n) = write(socket, &[IoSlice::new(due)])? else {
                blocked_since.get_or_insert(now);
                return Ok(());
            };
            counters.bytes_sent += n as u64;
            if from_tail {
                if let Some(e) = self.session.as_mut().and_then(|s| s.reader.as_mut()) {
                    e.tail_written(n);
                }
            } else {
                self.replies_sent += n;
                if self.replies_sent == self.replies.len() {
                    self.replies = Vec::new();
                    self.replies_sent = 0;
                }
            }
        }
    }

    /// A request due within the header timeout, except while it plays: over TCP its socket's
    /// stall is what ends it, over UDP a keep-alive is due within the session timeout.
    fn deadline(&self) -> Option<Instant> {
        let timeout = match self.session.as_ref().filter(|s| s.reader.is_some()) {
            Some(Session {
                route: Route::Tcp { .. },
                ..
            }) => return None,
            Some(_) => SESSION_TIMEOUT_S * 1000,
            None => self.header_timeout_ms,
        };
        Some(self.last_request.saturating_add_millis(timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_any_pieces_with_interleaved_frames_between() {
        let mut bytes = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n".to_vec();
        bytes.extend_from_slice(b"$\x01\x00\x08");
        bytes.extend_from_slice(&[0x81; 8]);
        bytes.extend_from_slice(
            b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nab\n",
        );
        for step in [1, 5, 13, bytes.len()] {
            let mut conn = RtspConn::new(Instant::from_millis(0), 1000);
            let mut got = Vec::new();
            for piece in bytes.chunks(step) {
                got.extend(conn.receive(piece, Instant::from_millis(0)).ok().unwrap());
            }
            let cseqs: Vec<_> = got.iter().map(|r| (r.method, r.cseq)).collect();
            assert_eq!(
                cseqs,
                [(Method::Options, Some(1)), (Method::GetParameter, Some(2))],
                "step {step}"
            );
            assert!(conn.input.is_empty() && conn.skip == 0);
        }
    }

    #[test]
    fn an_absurd_content_length_or_endless_head_closes() {
        let mut conn = RtspConn::new(Instant::from_millis(0), 1000);
        let absurd = b"OPTIONS * RTSP/1.0\r\nContent-Length: 4294967296\r\n\r\n";
        assert!(matches!(
            conn.receive(absurd, Instant::from_millis(0)),
            Err(Close::RtspRequest(rtsp::RtspError::BodyTooLong))
        ));
        let mut conn = RtspConn::new(Instant::from_millis(0), 1000);
        let endless = vec![b'A'; 3 * MAX_HEAD];
        assert!(matches!(
            conn.receive(&endless, Instant::from_millis(0)),
            Err(Close::RtspRequest(rtsp::RtspError::HeadTooLong))
        ));
    }

    /// A session over `route`, with a reader when `playing`.
    fn session(route: Route, playing: bool) -> Session {
        let track = Track::new(zerocast_core::flv::SoundFormat::Mp3, 44_100, 2, &[]).unwrap();
        let ring = crate::formats::HttpRing::new();
        Session {
            id: "s".into(),
            described: Described {
                stream: crate::hub::Hub::new(1).find_or_create("live", "a").unwrap(),
                generation: 0,
                track: track.clone(),
                granted: Granted {
                    app: "live".into(),
                    name: "a".into(),
                    publish: false,
                },
            },
            route,
            out: RtpOut::new(track, [0; 10]),
            reader: playing.then(|| Egress::new(ring.cursor_at_head())),
            dropped: 0,
            last_write: None,
        }
    }

    /// A request is due within the header timeout until the player plays; then none over TCP
    /// (a stalled socket ends it) and a keep-alive within the session timeout over UDP, counted
    /// from its last request.
    #[test]
    fn deadlines_follow_what_the_player_does() {
        let at = Instant::from_millis;
        let mut conn = RtspConn::new(at(0), 1000);
        assert_eq!(conn.deadline(), Some(at(1000)));
        conn.session = Some(session(Route::Tcp { rtp: 0, rtcp: 1 }, false));
        assert_eq!(conn.deadline(), Some(at(1000)));
        conn.session = Some(session(Route::Tcp { rtp: 0, rtcp: 1 }, true));
        assert_eq!(conn.deadline(), None);
        let udp = || UdpSocket::bind("127.0.0.1:0").unwrap();
        let sockets = Rc::new(UdpPair {
            rtp: udp(),
            rtcp: udp(),
        });
        let to = "127.0.0.1:9".parse().unwrap();
        let route = Route::Udp {
            sockets,
            rtp: to,
            rtcp: to,
        };
        conn.session = Some(session(route, true));
        assert_eq!(conn.deadline(), Some(at(SESSION_TIMEOUT_S * 1000)));
        let keep_alive = b"GET_PARAMETER * RTSP/1.0\r\nCSeq: 9\r\nSession: s\r\n\r\n";
        assert_eq!(conn.receive(keep_alive, at(30_000)).ok().unwrap().len(), 1);
        assert_eq!(conn.deadline(), Some(at(30_000 + SESSION_TIMEOUT_S * 1000)));
    }

    /// A player is written a block at a time: after a write, not again for [`BULK_MS`].
    #[test]
    fn players_are_written_in_blocks() {
        let at = Instant::from_millis;
        let mut conn = RtspConn::new(at(0), 1000);
        assert!(!conn.holds_back(at(0)));
        let mut playing = session(Route::Tcp { rtp: 0, rtcp: 1 }, true);
        playing.last_write = Some(at(1000));
        conn.session = Some(playing);
        assert!(conn.holds_back(at(1000 + BULK_MS - 1)));
        assert!(!conn.holds_back(at(1000 + BULK_MS)));
    }

    /// What an RTSP player costs beside its socket, for docs/architecture.md.
    #[test]
    fn memory_of_a_player_is_printed() {
        let size = std::mem::size_of::<RtspConn>();
        println!("RTSP player state beside the socket: {size} bytes (RtspConn) + its packets");
        assert!(size < 1024);
    }

    #[test]
    fn unread_replies_are_bounded() {
        let mut conn = RtspConn::new(Instant::from_millis(0), 1000);
        let mut result = Ok(());
        for _ in 0..1000 {
            result = conn.reply(Some(1), Status::Ok, "", None);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(Close::RtspIdle)));
        assert!(conn.replies.len() <= MAX_UNREAD_REPLIES);
    }
}
