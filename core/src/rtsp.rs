//! RTSP 1.0 requests (RFC 2326) as a player sends them, and the interleaved frames it may send
//! on the same connection (RTCP receiver reports over TCP, §10.12). Sans-IO and stateless: the
//! caller keeps the received bytes, asks [`parse`] what they start with, and drops that many.
//!
//! Bounded: a head longer than [`MAX_HEAD`] or a body announced longer than [`MAX_BODY`] is an
//! error at once, before the bytes arrive, so a peer cannot make the caller buffer more.

use core::fmt;

/// Longest request head (request line and headers, with the blank line). ffmpeg's and
/// GStreamer's are under 400 bytes.
pub const MAX_HEAD: usize = 4096;
/// Longest request body (players send none, or a few `GET_PARAMETER` names).
pub const MAX_BODY: usize = 4096;

/// The request's method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Method {
    /// `OPTIONS`.
    Options,
    /// `DESCRIBE`.
    Describe,
    /// `SETUP`.
    Setup,
    /// `PLAY`.
    Play,
    /// `PAUSE`.
    Pause,
    /// `TEARDOWN`.
    Teardown,
    /// `GET_PARAMETER` (keep-alive).
    GetParameter,
    /// `SET_PARAMETER`.
    SetParameter,
    /// Anything else (`ANNOUNCE`, `RECORD`, …).
    Other,
}

impl Method {
    fn from_name(name: &str) -> Self {
        match name {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            _ => Method::Other,
        }
    }
}

/// One parsed request; its strings borrow the caller's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The request URI as sent (`rtsp://host:8554/live/audio/trackID=0`, or `*`).
    pub uri: &'a str,
    /// `CSeq`, echoed in the reply.
    pub cseq: Option<u32>,
    /// `Session`, without its parameters.
    pub session: Option<&'a str>,
    /// `Transport`, as sent.
    pub transport: Option<&'a str>,
    /// Length of the request, head and body: what the caller drops once it is handled.
    pub len: usize,
}

/// What the received bytes start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Not enough bytes yet to say.
    Partial,
    /// A whole request.
    Request(Request<'a>),
    /// An interleaved frame (`$`, channel, length) of `len` bytes in all, header included: the
    /// caller drops them (whether or not they have all arrived yet).
    Interleaved {
        /// Its channel.
        channel: u8,
        /// Its length with the 4-byte header.
        len: usize,
    },
}

/// What is wrong with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RtspError {
    /// No end of head within [`MAX_HEAD`] bytes.
    HeadTooLong,
    /// A `Content-Length` above [`MAX_BODY`].
    BodyTooLong,
    /// The head is not text, or its request line is not `METHOD URI RTSP/1.0`.
    BadRequestLine,
    /// A header line without a colon, or a `CSeq` or `Content-Length` that is not a number.
    BadHeader,
}

impl fmt::Display for RtspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RtspError::HeadTooLong => "RTSP request head too long",
            RtspError::BodyTooLong => "RTSP request body too long",
            RtspError::BadRequestLine => "malformed RTSP request line",
            RtspError::BadHeader => "malformed RTSP header",
        })
    }
}

/// What `buf` starts with: an interleaved frame, a whole request, or not enough bytes yet.
pub fn parse(buf: &[u8]) -> Result<Input<'_>, RtspError> {
    if let Some(&b'$') = buf.first() {
        return Ok(match buf.get(1..4) {
            Some(&[channel, hi, lo]) => Input::Interleaved {
                channel,
                len: 4 + usize::from(u16::from_be_bytes([hi, lo])),
            },
            _ => Input::Partial,
        });
    }
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Err(RtspError::HeadTooLong)
        } else {
            Ok(Input::Partial)
        };
    };
    let head_len = end + 4;
    let head = core::str::from_utf8(&buf[..end]).map_err(|_| RtspError::BadRequestLine)?;
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(uri), Some("RTSP/1.0"), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(RtspError::BadRequestLine);
    };
    if method.is_empty() || uri.is_empty() {
        return Err(RtspError::BadRequestLine);
    }
    let mut request = Request {
        method: Method::from_name(method),
        uri,
        cseq: None,
        session: None,
        transport: None,
        len: head_len,
    };
    let mut body = 0;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(RtspError::BadHeader)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("CSeq") {
            request.cseq = Some(value.parse().map_err(|_| RtspError::BadHeader)?);
        } else if name.eq_ignore_ascii_case("Session") {
            request.session = value.split(';').next().map(str::trim);
        } else if name.eq_ignore_ascii_case("Transport") {
            request.transport = Some(value);
        } else if name.eq_ignore_ascii_case("Content-Length") {
            // Digits only, and no more of them than the limit has: "99999999999999999999" is
            // too long, not a parse error of a number that does not fit.
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RtspError::BadHeader);
            }
            body = value.parse().unwrap_or(usize::MAX);
            if body > MAX_BODY {
                return Err(RtspError::BodyTooLong);
            }
        }
    }
    if buf.len() < head_len + body {
        return Ok(Input::Partial);
    }
    request.len = head_len + body;
    Ok(Input::Request(request))
}

/// The lower transport a player asked for in `SETUP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Transport {
    /// RTP and RTCP interleaved on the RTSP connection, on these two channels.
    Interleaved(u8, u8),
    /// Unicast UDP to these two client ports (RTP, RTCP).
    Udp(u16, u16),
}

/// The first transport of a `Transport` header's alternatives that is RTP/AVP over TCP with
/// interleaved channels or unicast UDP with client ports (`None` when none is).
pub fn parse_transport(header: &str) -> Option<Transport> {
    header.split(',').find_map(|spec| {
        let mut parts = spec.trim().split(';');
        let tcp = match parts.next()? {
            "RTP/AVP" | "RTP/AVP/UDP" => false,
            "RTP/AVP/TCP" => true,
            _ => return None,
        };
        let mut found = None;
        for part in parts {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match key.trim() {
                "multicast" => return None,
                "interleaved" if tcp => found = pair(value),
                "client_port" if !tcp => found = pair(value),
                _ => {}
            }
        }
        let (a, b) = found?;
        if tcp {
            Some(Transport::Interleaved(
                u8::try_from(a).ok()?,
                u8::try_from(b).ok()?,
            ))
        } else if a != 0 && b != 0 {
            Some(Transport::Udp(a, b))
        } else {
            None
        }
    })
}

/// `A-B` (or `A` alone, meaning `A-(A+1)`) as two numbers.
fn pair(value: &str) -> Option<(u16, u16)> {
    let (a, b) = match value.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let a: u16 = value.trim().parse().ok()?;
            (a, a.checked_add(1)?)
        }
    };
    Some((a, b))
}

/// The path of a request URI (`rtsp://host:port/live/audio?key=1` gives `/live/audio?key=1`),
/// `None` for a URI that is not `rtsp://` absolute or a bare path.
pub fn uri_path(uri: &str) -> Option<&str> {
    let rest = match uri.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("rtsp://") => &uri[7..],
        _ => return uri.starts_with('/').then_some(uri),
    };
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_requests_parse() {
        let describe = b"DESCRIBE rtsp://127.0.0.1:8554/live/audio RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\nUser-Agent: Lavf59.27.100\r\n\r\n";
        let Ok(Input::Request(r)) = parse(describe) else {
            panic!()
        };
        assert_eq!(
            (r.method, r.cseq, r.len),
            (Method::Describe, Some(2), describe.len())
        );
        assert_eq!(uri_path(r.uri), Some("/live/audio"));
        assert_eq!(parse(&describe[..describe.len() - 1]), Ok(Input::Partial));
        let setup = b"SETUP rtsp://h/live/audio/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\nSession: abc;timeout=60\r\n\r\n";
        let Ok(Input::Request(r)) = parse(setup) else {
            panic!()
        };
        assert_eq!(r.session, Some("abc"));
        assert_eq!(
            parse_transport(r.transport.unwrap()),
            Some(Transport::Interleaved(0, 1))
        );
    }

    #[test]
    fn transports() {
        assert_eq!(
            parse_transport("RTP/AVP/UDP;unicast;client_port=5000-5001"),
            Some(Transport::Udp(5000, 5001))
        );
        assert_eq!(
            parse_transport("RTP/AVP;multicast;port=5000-5001,RTP/AVP;unicast;client_port=6000"),
            Some(Transport::Udp(6000, 6001))
        );
        assert_eq!(parse_transport("RTP/SAVP;unicast;client_port=1-2"), None);
        assert_eq!(parse_transport("RTP/AVP/TCP;interleaved=300-301"), None);
    }

    #[test]
    fn bodies_and_interleaved_frames() {
        let with_body = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nab";
        assert_eq!(parse(with_body), Ok(Input::Partial));
        let whole = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nabcd$";
        let Ok(Input::Request(r)) = parse(whole) else {
            panic!()
        };
        assert_eq!(r.len, whole.len() - 1);
        assert_eq!(
            parse(b"$\x01\x00\x20"),
            Ok(Input::Interleaved {
                channel: 1,
                len: 36
            })
        );
        assert_eq!(parse(b"$\x01"), Ok(Input::Partial));
    }

    #[test]
    fn hostile_heads_are_refused_early() {
        let absurd = b"OPTIONS * RTSP/1.0\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(parse(absurd), Err(RtspError::BodyTooLong));
        let minus = b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse(minus), Err(RtspError::BadHeader));
        assert_eq!(parse(&[b'A'; MAX_HEAD]), Err(RtspError::HeadTooLong));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(RtspError::BadRequestLine)
        );
    }
}
