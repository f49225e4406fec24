//! The request head, parsed with `httparse` and bounded: at most [`MAX_HEAD_LEN`] bytes and
//! [`MAX_HEADERS`] headers. A head that does not complete within the header deadline is the
//! caller's to enforce ([`super::Client::deadline`]).

use std::fmt;

/// Longest request head accepted (request line and headers).
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Most headers accepted.
pub const MAX_HEADERS: usize = 32;

/// The request method, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the same head as `GET`, no body.
    Head,
    /// `OPTIONS`: a CORS preflight.
    Options,
    /// Anything else.
    Other,
}

/// What routing and the response need from a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, before `?`, still percent-encoded.
    pub path: String,
    /// The query string after `?` (empty without one), still encoded.
    pub query: String,
    /// The listener asked for ICY metadata (`Icy-MetaData: 1`).
    pub icy_metadata: bool,
    /// A browser sent it (`Sec-Fetch-Mode` or `Origin`, or a `Mozilla/` user agent): a page's
    /// player, which shows how far behind live it is.
    pub browser: bool,
    /// The `Authorization` header's value.
    pub authorization: Option<String>,
    /// The `User-Agent` header's value (for the access log and `/admin/listclients`).
    pub user_agent: Option<String>,
    /// The `Referer` header's value (for the access log).
    pub referer: Option<String>,
    /// `HTTP/1.0` or `HTTP/1.1`, as the request line says.
    pub version: &'static str,
    /// Length of the head in the bytes parsed (the rest is a body or a pipelined request).
    pub head_len: usize,
    /// The connection may stay open for another request after the answer: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive` (RFC 9112 §9.3), for a
    /// method whose request has no body (GET, HEAD, OPTIONS) and none announced.
    pub keep_alive: bool,
}

/// Why a request was refused before routing; each closes the connection after a 4xx answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The head grew past [`MAX_HEAD_LEN`] without ending.
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] headers.
    TooManyHeaders,
    /// Not HTTP/1.x (httparse's reason).
    Malformed(httparse::Error),
    /// The request target is not UTF-8.
    TargetNotUtf8,
}

impl RequestError {
    /// The status line the client gets for this error.
    pub fn status(&self) -> &'static str {
        match self {
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => {
                "431 Request Header Fields Too Large"
            }
            RequestError::Malformed(_) | RequestError::TargetNotUtf8 => "400 Bad Request",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::HeadTooLarge => {
                write!(f, "request head longer than {MAX_HEAD_LEN} bytes")
            }
            RequestError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} request headers"),
            RequestError::Malformed(why) => write!(f, "malformed request: {why}"),
            RequestError::TargetNotUtf8 => f.write_str("request target is not UTF-8"),
        }
    }
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_LEN => {
            return Err(RequestError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(e) => return Err(RequestError::Malformed(e)),
    };
    if head_len > MAX_HEAD_LEN {
        return Err(RequestError::HeadTooLarge);
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("OPTIONS") => Method::Options,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let icy_metadata = header("icy-metadata").is_some_and(|v| v.trim_ascii() == b"1");
    let browser = header("sec-fetch-mode").is_some()
        || header("origin").is_some()
        || header("user-agent").is_some_and(|v| v.starts_with(b"Mozilla/"));
    let connection_has = |token: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    let persistent = match req.version {
        Some(1) => !connection_has("close"),
        _ => connection_has("keep-alive"),
    };
    let body = header("transfer-encoding").is_some()
        || header("content-length").is_some_and(|v| v.trim_ascii() != b"0");
    let keep_alive = persistent && method != Method::Other && !body;
    let text = |name: &str| {
        header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .filter(|v| !v.is_empty())
    };
    let authorization = text("authorization");
    Ok(Some(Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        icy_metadata,
        browser,
        authorization,
        user_agent: text("user-agent"),
        referer: text("referer"),
        version: if req.version == Some(0) {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        },
        head_len,
        keep_alive,
    }))
}

/// Decodes `%XX` escapes, and `+` as a space when `plus_is_space` (query strings); invalid
/// escapes are kept as they are, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|b| hex(*b));
                if let (Some(h), Some(l)) = (digit(i + 1), digit(i + 2)) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a query string (`a=1&b=2`), decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true) == key).then(|| percent_decode(v, true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icecast_listener_request() {
        let head = b"GET /live/audio.mp3?x=1 HTTP/1.1\r\nHost: pi\r\nicy-metadata: 1\r\n\r\nrest";
        let req = parse(head).unwrap().unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(
            (req.path.as_str(), req.query.as_str()),
            ("/live/audio.mp3", "x=1")
        );
        assert!(req.icy_metadata);
        assert_eq!(req.authorization, None);
        assert_eq!(&head[req.head_len..], b"rest");
        assert_eq!(
            (req.user_agent, req.referer, req.version),
            (None, None, "HTTP/1.1")
        );
        let head = b"GET /a.mp3 HTTP/1.0\r\nUser-Agent: VLC/3.0\r\nReferer: http://x/\r\n\r\n";
        let req = parse(head).unwrap().unwrap();
        assert_eq!(req.user_agent.as_deref(), Some("VLC/3.0"));
        assert_eq!(
            (req.referer.as_deref(), req.version),
            (Some("http://x/"), "HTTP/1.0")
        );
    }

    #[test]
    fn partial_heads_wait_and_bounds_hold() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD_LEN, b'a');
        assert_eq!(parse(&long), Err(RequestError::HeadTooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(RequestError::TooManyHeaders));
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00"),
            Err(RequestError::Malformed(_))
        ));
        let icy_off = parse(b"HEAD /a HTTP/1.0\r\nIcy-MetaData: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (icy_off.method, icy_off.icy_metadata),
            (Method::Head, false)
        );
    }

    #[test]
    fn query_parameters_decode() {
        let q = "mount=%2Flive%2Faudio.mp3&mode=updinfo&song=Don%27t+Stop%20%E2%82%AC&bad=%zz%4";
        assert_eq!(query_param(q, "mount").as_deref(), Some("/live/audio.mp3"));
        assert_eq!(query_param(q, "song").as_deref(), Some("Don't Stop €"));
        assert_eq!(query_param(q, "bad").as_deref(), Some("%zz%4"));
        assert_eq!(query_param(q, "none"), None);
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
