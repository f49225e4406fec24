//! An Icecast source client, sans-IO: the request that makes zerocast a mount's source on an
//! Icecast or AzuraCast server (DarkIce's, BUTT's, Liquidsoap's and ffmpeg's `icecast://` job),
//! and the server's answer. The audio that follows is the stream's MP3 or ADTS ring, raw, read
//! by the connection's reader like an HTTP listener's; this only says when it may start.
//!
//! Icecast ≥ 2.4 and AzuraCast take HTTP `PUT` with `Expect: 100-continue` and answer
//! `100 Continue` (or `200 OK`); older servers answer `PUT` with an error, and the next attempt
//! uses the legacy `SOURCE` method, which they answer `200 OK`.

use std::fmt;

use zerocast_core::time::Instant;

use crate::config::PushUrl;

/// How long the server may take to answer the request.
const ANSWER_MS: u64 = 10_000;
/// The longest answer head read; a longer one is not a source answer.
const MAX_ANSWER: usize = 4096;

/// What the mount is called and described as (`ice-*` headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `ice-name`.
    pub name: String,
    /// `ice-description`.
    pub description: String,
    /// `ice-genre`.
    pub genre: String,
    /// `ice-url`.
    pub url: String,
    /// `ice-public`: listed in directories.
    pub public: bool,
}

/// Why the server did not take the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The answer was not HTTP, or too long.
    BadAnswer,
    /// The server answered this status: 401 (wrong password), 403 (mount in use, or a
    /// content type it refuses), 405/501 (no `PUT`: the next attempt uses `SOURCE`).
    Refused(u16, String),
    /// No answer in time.
    NoAnswer,
    /// The server closed the connection.
    Closed,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAnswer => f.write_str("the server's answer is not HTTP"),
            Self::Refused(401, _) => f.write_str("refused: 401, wrong source user or password"),
            Self::Refused(code, reason) => write!(f, "refused: {code} {reason}"),
            Self::NoAnswer => write!(f, "no answer to the source request in {ANSWER_MS} ms"),
            Self::Closed => f.write_str("closed by the server"),
        }
    }
}

/// The method a source request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// HTTP `PUT` (Icecast ≥ 2.4, AzuraCast).
    Put,
    /// The legacy `SOURCE` method (Icecast < 2.4, Shoutcast-era servers).
    Source,
}

impl Method {
    /// The method to try after `error`: `SOURCE` once the server said it has no `PUT`.
    pub fn after(self, error: &SourceError) -> Self {
        match error {
            SourceError::Refused(400 | 405 | 501, _) => Method::Source,
            _ => self,
        }
    }
}

/// One source connection's request and answer.
#[derive(Debug)]
pub struct SourceClient {
    request: Vec<u8>,
    sent: usize,
    answer: Vec<u8>,
    deadline: Instant,
    streaming: bool,
}

impl SourceClient {
    /// The request for `target`'s mount with `method`, the audio's `content_type` and `meta`,
    /// sent from `now`.
    pub fn new(
        target: &PushUrl,
        method: Method,
        content_type: &str,
        meta: &Meta,
        now: Instant,
    ) -> Self {
        Self {
            request: request(target, method, content_type, meta).into_bytes(),
            sent: 0,
            answer: Vec::new(),
            deadline: now.saturating_add_millis(ANSWER_MS),
            streaming: false,
        }
    }

    /// The request's bytes not yet written.
    pub fn transmit(&self) -> &[u8] {
        self.request.get(self.sent..).unwrap_or(&[])
    }

    /// `n` bytes of [`Self::transmit`] were written.
    pub fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.request.len());
    }

    /// Whether the server took the source: the audio may follow.
    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// Reads the server's answer; `Ok(true)` the moment it takes the source. Whatever the
    /// server sends afterwards (Icecast sends nothing) is ignored.
    pub fn receive(&mut self, input: &[u8]) -> Result<bool, SourceError> {
        if self.streaming {
            return Ok(false);
        }
        self.answer.extend_from_slice(input);
        let Some(end) = self.answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.answer.len() > MAX_ANSWER {
                return Err(SourceError::BadAnswer);
            }
            return Ok(false);
        };
        let head = String::from_utf8_lossy(&self.answer[..end]).into_owned();
        let status = head.lines().next().unwrap_or_default();
        let mut words = status.splitn(3, ' ');
        let (version, code, reason) = (words.next(), words.next(), words.next());
        if !version.is_some_and(|v| v.starts_with("HTTP/") || v == "ICY") {
            return Err(SourceError::BadAnswer);
        }
        let code: u16 = code
            .and_then(|c| c.parse().ok())
            .ok_or(SourceError::BadAnswer)?;
        match code {
            100 | 200 => {
                self.streaming = true;
                self.answer = Vec::new();
                Ok(true)
            }
            // A reason is the server's text: kept short and printable for the log and reports.
            _ => Err(SourceError::Refused(
                code,
                reason
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(80)
                    .collect(),
            )),
        }
    }

    /// When the answer is due, while it has not come.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.streaming).then_some(self.deadline)
    }

    /// Fails a source whose answer is late.
    pub fn handle_timeout(&self, now: Instant) -> Result<(), SourceError> {
        match self.deadline() {
            Some(at) if now >= at => Err(SourceError::NoAnswer),
            _ => Ok(()),
        }
    }
}

/// The request head.
fn request(target: &PushUrl, method: Method, content_type: &str, meta: &Meta) -> String {
    let user = target.user.as_deref().unwrap_or("source");
    let password = target.password.as_deref().unwrap_or_default();
    let credentials = crate::http::base64_encode(format!("{user}:{password}").as_bytes());
    let host = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let (line, expect) = match method {
        Method::Put => (
            format!("PUT /{} HTTP/1.1", target.app),
            "Expect: 100-continue\r\n",
        ),
        Method::Source => (format!("SOURCE /{} HTTP/1.0", target.app), ""),
    };
    // Header values are the operator's settings; a line break in one would end the head.
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let mut head = format!(
        "{line}\r\nHost: {host}\r\nAuthorization: Basic {credentials}\r\n\
         User-Agent: zerocast/{}\r\nContent-Type: {content_type}\r\n\
         Ice-Public: {}\r\n{expect}",
        env!("CARGO_PKG_VERSION"),
        u8::from(meta.public),
    );
    for (header, value) in [
        ("Ice-Name", &meta.name),
        ("Ice-Description", &meta.description),
        ("Ice-Genre", &meta.genre),
        ("Ice-Url", &meta.url),
    ] {
        if !value.is_empty() {
            head.push_str(&format!("{header}: {}\r\n", clean(value)));
        }
    }
    head.push_str("\r\n");
    head
}

/// The request that sets the mount's title on the server (Icecast's admin URL, which takes the
/// source's own credentials for its own mount).
pub fn title_request(target: &PushUrl, title: &str) -> Vec<u8> {
    let user = target.user.as_deref().unwrap_or("source");
    let password = target.password.as_deref().unwrap_or_default();
    let credentials = crate::http::base64_encode(format!("{user}:{password}").as_bytes());
    let mut song = String::new();
    for b in title.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            song.push(char::from(b));
        } else {
            song.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "GET /admin/metadata?mount=/{}&mode=updinfo&song={song} HTTP/1.0\r\n\
         Host: {}:{}\r\nAuthorization: Basic {credentials}\r\nUser-Agent: zerocast/{}\r\n\r\n",
        target.app,
        target.host,
        target.port,
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> PushUrl {
        PushUrl::parse("icecast://source:hackme@ice.example:8000/radio.mp3").unwrap()
    }

    #[test]
    fn put_with_credentials_and_ice_headers_then_100_continue() {
        let meta = Meta {
            name: "Pi radio\r\nX-Evil: 1".into(),
            public: false,
            ..Meta::default()
        };
        let mut c = SourceClient::new(
            &target(),
            Method::Put,
            "audio/mpeg",
            &meta,
            Instant::from_millis(0),
        );
        let head = String::from_utf8(c.transmit().to_vec()).unwrap();
        assert!(head.starts_with("PUT /radio.mp3 HTTP/1.1\r\n"), "{head}");
        // base64("source:hackme")
        assert!(head.contains("Authorization: Basic c291cmNlOmhhY2ttZQ==\r\n"));
        assert!(head.contains("Content-Type: audio/mpeg\r\nIce-Public: 0\r\n"));
        assert!(head.contains("Ice-Name: Pi radioX-Evil: 1\r\n"), "{head}");
        assert!(head.contains("Expect: 100-continue\r\n") && head.ends_with("\r\n\r\n"));
        c.advance(head.len());
        assert!(c.transmit().is_empty());
        assert_eq!(c.receive(b"HTTP/1.1 100 Con"), Ok(false));
        assert_eq!(c.receive(b"tinue\r\n\r\n"), Ok(true));
        assert!(c.streaming() && c.deadline().is_none());
    }

    #[test]
    fn refusals_say_why_and_an_old_server_gets_source_next() {
        let mut c = SourceClient::new(
            &target(),
            Method::Put,
            "audio/aac",
            &Meta::default(),
            Instant::from_millis(0),
        );
        let e = c
            .receive(b"HTTP/1.1 401 Authentication Required\r\n\r\n")
            .unwrap_err();
        assert_eq!(e.to_string(), "refused: 401, wrong source user or password");
        assert_eq!(Method::Put.after(&e), Method::Put);
        let e = SourceError::Refused(405, "Method Not Allowed".into());
        assert_eq!(Method::Put.after(&e), Method::Source);
        let c = SourceClient::new(
            &target(),
            Method::Source,
            "audio/aac",
            &Meta::default(),
            Instant::from_millis(0),
        );
        assert!(c.transmit().starts_with(b"SOURCE /radio.mp3 HTTP/1.0\r\n"));
        assert_eq!(
            c.handle_timeout(Instant::from_millis(ANSWER_MS)),
            Err(SourceError::NoAnswer)
        );
        let mut c = SourceClient::new(
            &target(),
            Method::Put,
            "audio/aac",
            &Meta::default(),
            Instant::from_millis(0),
        );
        assert_eq!(
            c.receive(&[b'x'; MAX_ANSWER + 1]),
            Err(SourceError::BadAnswer)
        );
    }

    #[test]
    fn titles_are_percent_encoded() {
        let r = String::from_utf8(title_request(&target(), "Don't Stop €")).unwrap();
        assert!(
            r.starts_with(
                "GET /admin/metadata?mount=/radio.mp3&mode=updinfo&song=Don%27t%20Stop%20%E2%82%AC "
            ),
            "{r}"
        );
    }
}
