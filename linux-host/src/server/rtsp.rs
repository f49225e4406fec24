//! The server's RTSP side: the listener and its UDP sockets, and what an RTSP player's requests
//! mean for the stream table — which stream a URL names (`rtsp://HOST:PORT/APP/NAME`, with the
//! renditions of `NAME` as the HTTP mounts have them), who may play it (the RTMP players' rules
//! and play key, `?key=` in the URL), its SDP, its session and where its reader starts.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use log::{info, warn};
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};
use zerocast_core::rtsp::{parse_transport, uri_path, Method, Transport};
use zerocast_core::time::Instant;

use super::http::of_mount;
use super::{Conn, Kind, Server};
use crate::conn::{Close, Granted};
use crate::egress::{join, Egress};
use crate::formats::Format;
use crate::hub::{Denied, StreamId};
use crate::logging::Escaped;
use crate::rtsp::track::{RtpOut, Track};
use crate::rtsp::{
    Described, Request, Route, RtspConn, Session, Status, UdpPair, METHODS, SESSION_TIMEOUT_S,
};

/// The RTSP listener's token: outside the connections' range whatever their number.
const LISTENER_TOKEN: Token = Token(usize::MAX - 2);

/// The RTSP listener and what the server keeps for it.
pub(super) struct RtspSide {
    listener: TcpListener,
    max_clients: usize,
    /// The sockets of UDP sessions; `None` when they could not be bound (TCP only then).
    udp: Option<Rc<UdpPair>>,
}

impl RtspSide {
    pub(super) fn listener(&self) -> &TcpListener {
        &self.listener
    }

    pub(super) fn max_clients(&self) -> usize {
        self.max_clients
    }
}

/// Binds the pair of UDP sockets sessions send from, on `ip`.
fn bind_udp(ip: std::net::IpAddr) -> io::Result<UdpPair> {
    let pair = UdpPair {
        rtp: UdpSocket::bind((ip, 0))?,
        rtcp: UdpSocket::bind((ip, 0))?,
    };
    // A full send buffer drops the datagram instead of stopping the loop.
    pair.rtp.set_nonblocking(true)?;
    pair.rtcp.set_nonblocking(true)?;
    Ok(pair)
}

impl Server {
    /// Listens for RTSP on `addr` as well, at most `max_clients` connections; returns the
    /// address bound. Call before the loop registers the server, and before
    /// [`Server::listen_http`] (whose token follows the connection slots).
    pub fn listen_rtsp(&mut self, addr: SocketAddr, max_clients: usize) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let bound = listener.local_addr()?;
        let udp = match bind_udp(bound.ip()) {
            Ok(pair) => {
                if let (Ok(rtp), Ok(rtcp)) = (pair.rtp.local_addr(), pair.rtcp.local_addr()) {
                    info!("RTSP over UDP from ports {}-{}", rtp.port(), rtcp.port());
                }
                Some(Rc::new(pair))
            }
            Err(e) => {
                warn!("RTSP over UDP unavailable, TCP only: {e}");
                None
            }
        };
        // The renditions are what RTSP players read (the `.flv` one), HTTP or not.
        self.hub.enable_http();
        let slots = self.conns.len() + max_clients;
        self.conns.resize_with(slots, || None);
        self.rtsp = Some(RtspSide {
            listener,
            max_clients,
            udp,
        });
        Ok(bound)
    }

    pub(super) fn register_rtsp(&mut self, registry: &Registry) -> io::Result<()> {
        match &mut self.rtsp {
            Some(r) => registry.register(&mut r.listener, LISTENER_TOKEN, Interest::READABLE),
            None => Ok(()),
        }
    }

    pub(super) fn is_rtsp_listener(&self, token: Token) -> bool {
        self.rtsp.is_some() && token == LISTENER_TOKEN
    }

    /// A new connection's state.
    pub(super) fn rtsp_connection(&self, now: Instant) -> Kind {
        let timeout = u64::from(self.settings.handshake_timeout_ms);
        Kind::Rtsp(Box::new(RtspConn::new(now, timeout)))
    }

    /// Feeds request bytes to an RTSP connection (taken out of the slab) and answers its
    /// requests; returns what it was let play with, when it starts playing.
    pub(super) fn rtsp_input(
        &mut self,
        rtsp: &mut RtspConn,
        peer: SocketAddr,
        index: usize,
        input: &[u8],
        now: Instant,
    ) -> Result<Option<Granted>, Close> {
        let mut granted = None;
        for request in rtsp.receive(input, now)? {
            if let Some(g) = self.rtsp_request(rtsp, peer, index, &request, now)? {
                granted = Some(g);
            }
        }
        Ok(granted)
    }

    fn rtsp_request(
        &mut self,
        rtsp: &mut RtspConn,
        peer: SocketAddr,
        index: usize,
        request: &Request,
        now: Instant,
    ) -> Result<Option<Granted>, Close> {
        let cseq = request.cseq;
        let session_header =
            |s: &Session| format!("Session: {};timeout={SESSION_TIMEOUT_S}\r\n", s.id);
        // Requests of a session must name it; requests outside one may not name any.
        let wrong_session = match (&rtsp.session, &request.session) {
            (Some(s), Some(given)) => *given != s.id,
            (None, Some(_)) => true,
            _ => false,
        };
        if wrong_session {
            rtsp.reply(cseq, Status::SessionNotFound, "", None)?;
            return Ok(None);
        }
        match request.method {
            Method::Options => {
                rtsp.reply(cseq, Status::Ok, &format!("Public: {METHODS}\r\n"), None)?;
            }
            Method::Describe => match self.rtsp_resolve(peer, &request.uri, now) {
                Ok((described, title)) => {
                    let base = match request.uri.ends_with('/') {
                        true => request.uri.clone(),
                        false => format!("{}/", request.uri),
                    };
                    let id = u64::from_be_bytes(self.entropy());
                    let sdp = described.track.sdp(&title, id >> 1, "trackID=0");
                    rtsp.reply(
                        cseq,
                        Status::Ok,
                        &format!("Content-Base: {base}\r\n"),
                        Some(("application/sdp", &sdp)),
                    )?;
                    rtsp.described = Some(described);
                }
                Err(status) => rtsp.reply(cseq, status, "", None)?,
            },
            Method::Setup => self.rtsp_setup(rtsp, peer, request, now)?,
            Method::Play => {
                let Some(session) = rtsp.session.as_mut() else {
                    rtsp.reply(cseq, Status::SessionNotFound, "", None)?;
                    return Ok(None);
                };
                let mut granted = None;
                let mut info = String::new();
                if session.reader.is_none() {
                    let Some((egress, time)) = self.rtsp_join(session.described.stream, index)
                    else {
                        rtsp.reply(cseq, Status::NotFound, "", None)?;
                        return Ok(None);
                    };
                    session.reader = Some(egress);
                    if let Some(time) = time {
                        info = format!(
                            "RTP-Info: url={};seq={};rtptime={}\r\n",
                            request.uri,
                            session.out.sequence(),
                            session.out.timestamp_at(time)
                        );
                    }
                    let g = &session.described.granted;
                    info!(
                        "{peer}: RTSP listener of /{}/{} over {}",
                        Escaped(&g.app),
                        Escaped(g.name.split('?').next().unwrap_or("")),
                        match session.route {
                            Route::Tcp { .. } => "TCP",
                            Route::Udp { .. } => "UDP",
                        }
                    );
                    granted = Some(g.clone());
                }
                let headers = format!("{}Range: npt=0.000-\r\n{info}", session_header(session));
                rtsp.reply(cseq, Status::Ok, &headers, None)?;
                return Ok(granted);
            }
            Method::Pause => {
                let Some(session) = rtsp.session.as_mut() else {
                    rtsp.reply(cseq, Status::SessionNotFound, "", None)?;
                    return Ok(None);
                };
                if session.reader.take().is_some() {
                    self.rtsp_leave(session.described.stream, index);
                }
                let headers = session_header(session);
                rtsp.reply(cseq, Status::Ok, &headers, None)?;
            }
            Method::Teardown => {
                rtsp.reply(cseq, Status::Ok, "", None)?;
                rtsp.tear_down();
            }
            Method::GetParameter | Method::SetParameter => {
                let headers = rtsp
                    .session
                    .as_ref()
                    .map(session_header)
                    .unwrap_or_default();
                rtsp.reply(cseq, Status::Ok, &headers, None)?;
            }
            Method::Other => {
                rtsp.reply(
                    cseq,
                    Status::MethodNotAllowed,
                    &format!("Allow: {METHODS}\r\n"),
                    None,
                )?;
            }
        }
        Ok(None)
    }

    /// `SETUP`: the stream described on this connection (or named by the URL), over the
    /// transport asked for.
    fn rtsp_setup(
        &mut self,
        rtsp: &mut RtspConn,
        peer: SocketAddr,
        request: &Request,
        now: Instant,
    ) -> Result<(), Close> {
        let cseq = request.cseq;
        if rtsp.session.is_some() {
            return rtsp.reply(cseq, Status::AggregateNotAllowed, "", None);
        }
        let transport = request.transport.as_deref().and_then(parse_transport);
        let udp = self.rtsp.as_ref().and_then(|r| r.udp.clone());
        let (route, reply) = match (transport, udp) {
            (Some(Transport::Interleaved(a, b)), _) => (
                Route::Tcp { rtp: a, rtcp: b },
                format!("RTP/AVP/TCP;unicast;interleaved={a}-{b}"),
            ),
            (Some(Transport::Udp(a, b)), Some(sockets)) => {
                let ports = (sockets.rtp.local_addr(), sockets.rtcp.local_addr());
                let (Ok(rtp), Ok(rtcp)) = ports else {
                    return rtsp.reply(cseq, Status::UnsupportedTransport, "", None);
                };
                let reply = format!(
                    "RTP/AVP;unicast;client_port={a}-{b};server_port={}-{}",
                    rtp.port(),
                    rtcp.port()
                );
                // Only ever to the player's own address: a request cannot aim the packets
                // at a third party.
                let route = Route::Udp {
                    sockets,
                    rtp: SocketAddr::new(peer.ip(), a),
                    rtcp: SocketAddr::new(peer.ip(), b),
                };
                (route, reply)
            }
            _ => return rtsp.reply(cseq, Status::UnsupportedTransport, "", None),
        };
        let described = match rtsp.described.take() {
            Some(d) => d,
            None => match self.rtsp_resolve(peer, &request.uri, now) {
                Ok((d, _)) => d,
                Err(status) => return rtsp.reply(cseq, status, "", None),
            },
        };
        let out = RtpOut::new(described.track.clone(), self.entropy());
        let id: String = self
            .entropy::<8>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let headers = format!(
            "Transport: {reply};ssrc={:08X}\r\nSession: {id};timeout={SESSION_TIMEOUT_S}\r\n",
            out.ssrc()
        );
        rtsp.session = Some(Session::new(id, described, route, out));
        rtsp.reply(cseq, Status::Ok, &headers, None)
    }

    /// The stream a request URI names and its title, if `peer` may play it.
    fn rtsp_resolve(
        &mut self,
        peer: SocketAddr,
        uri: &str,
        now: Instant,
    ) -> Result<(Described, String), Status> {
        let path = uri_path(uri).ok_or(Status::BadRequest)?;
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        // A player's track URL is the content base and the control (`…/trackID=0`), after the
        // query when there is one.
        let query = query.split('/').next().unwrap_or("");
        let path = path.trim_end_matches('/');
        let path = match path.rsplit_once('/') {
            Some((rest, last)) if last.starts_with("trackID=") => rest,
            _ => path,
        };
        let (app, name) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .ok_or(Status::NotFound)?;
        let requested = if query.is_empty() {
            name.to_owned()
        } else {
            format!("{name}?{query}")
        };
        let request = crate::hub::Request {
            peer: peer.ip(),
            app,
            name: &requested,
        };
        if let Err(why) = self.check_access(peer, &request, false, now) {
            warn!(
                "{peer}: RTSP play {}/{} refused: {why}",
                Escaped(app),
                Escaped(name)
            );
            return Err(match why {
                Denied::UnknownApp | Denied::BadName => Status::NotFound,
                _ => Status::Forbidden,
            });
        }
        let (stream, track) = self.rtsp_find(app, name).ok_or(Status::NotFound)?;
        let s = self.hub.get(stream).ok_or(Status::NotFound)?;
        let described = Described {
            stream,
            generation: s.http().map_or(0, |h| h.generation()),
            track,
            granted: Granted {
                app: app.to_owned(),
                name: requested,
                publish: false,
            },
        };
        Ok((described, s.title().to_owned()))
    }

    /// The stream `app/name` if RTP can carry its codec, else the first of its renditions
    /// (`NAME_CODEC`) that it can (`/live/audio` finds `audio_aac` when `audio` is ADPCM).
    fn rtsp_find(&self, app: &str, name: &str) -> Option<(StreamId, Track)> {
        let track_of = |id: StreamId| {
            let s = self.hub.get(id)?;
            let http = s.http()?;
            Track::new(http.codec(), http.rate(), http.channels(), s.aac_config())
        };
        let exact = self.hub.find(app, name);
        exact.and_then(|id| Some((id, track_of(id)?))).or_else(|| {
            self.hub
                .iter()
                .filter(|(_, s)| s.app() == app && of_mount(s.name(), name))
                .find_map(|(id, _)| Some((id, track_of(id)?)))
        })
    }

    /// Starts a reader of `stream`'s `.flv` rendition for connection `index`, the join buffer
    /// behind its newest message; returns it with the stream time it starts at.
    fn rtsp_join(&mut self, stream: StreamId, index: usize) -> Option<(Egress, Option<u64>)> {
        let join_ms = self.options.join_ms;
        let s = self.hub.get_mut(stream)?;
        let ring = &s.http()?.rendition(Format::Flv)?.ring;
        let cursor = join(ring, join_ms);
        let time = ring.time_at(&cursor);
        s.add_reader(index);
        // Written in blocks (RtspConn::holds_back): counted as such by the send schedule.
        self.bulk_readers += 1;
        Some((Egress::new(cursor), time))
    }

    /// Connection `index` stops reading `stream`.
    fn rtsp_leave(&mut self, stream: StreamId, index: usize) {
        self.bulk_readers = self.bulk_readers.saturating_sub(1);
        if let Some(s) = self.hub.get_mut(stream) {
            s.remove_reader(index);
        }
        self.hub.release_if_idle(stream);
    }

    /// An RTSP connection is gone: its stream loses a reader.
    pub(super) fn rtsp_closed(&mut self, rtsp: &RtspConn, index: usize) {
        if let Some(stream) = rtsp.playing() {
            self.rtsp_leave(stream, index);
        }
    }

    /// Closes an RTSP connection whose request or keep-alive is late.
    pub(super) fn rtsp_expired(conn: &Conn, now: Instant) -> Option<Close> {
        match &conn.kind {
            Kind::Rtsp(rtsp) => crate::conn::HttpPart::deadline(&**rtsp)
                .filter(|d| now >= *d)
                .map(|_| Close::RtspIdle),
            _ => None,
        }
    }
}
