//! Response heads. Every response but a report with addresses allows any origin (the page, and
//! players on other hosts, read the streams with `fetch`) and says `Cache-Control: no-cache`. A complete response keeps the
//! connection open for the next request when the request allows it (`keep_alive`); an endless
//! one closes it at its end.

use std::fmt::Write;

/// Headers every response carries; `keep_alive`: the connection stays open after it.
fn common(head: &mut String, keep_alive: bool) {
    common_cors(head, keep_alive, true);
}

/// [`common`], with the wildcard `Access-Control-Allow-Origin` only when `cors`.
fn common_cors(head: &mut String, keep_alive: bool, cors: bool) {
    let _ = write!(
        head,
        "Server: zerocast/{}\r\n\
         Cache-Control: no-cache, no-store\r\n\
         {}Connection: {}\r\n",
        env!("CARGO_PKG_VERSION"),
        if cors {
            "Access-Control-Allow-Origin: *\r\n"
        } else {
            ""
        },
        if keep_alive { "keep-alive" } else { "close" }
    );
}

/// The head of a complete response of `len` bytes; readable by pages of any origin if `cors`.
pub fn complete(
    status: &str,
    content_type: &str,
    len: usize,
    keep_alive: bool,
    cors: bool,
) -> String {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    common_cors(&mut head, keep_alive, cors);
    let _ = write!(
        head,
        "Content-Type: {content_type}\r\nContent-Length: {len}\r\n\r\n"
    );
    head
}

/// The whole 401 response asking for the admin credentials (Icecast's realm).
pub fn unauthorized(keep_alive: bool) -> String {
    let body = "admin credentials needed\n";
    let mut head = "HTTP/1.1 401 Unauthorized\r\n\
        WWW-Authenticate: Basic realm=\"Icecast2 Server\"\r\n"
        .to_owned();
    common(&mut head, keep_alive);
    let _ = write!(
        head,
        "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    head
}

/// The answer to a CORS preflight: players may send `Icy-MetaData`.
pub fn preflight(keep_alive: bool) -> String {
    let mut head = "HTTP/1.1 204 No Content\r\n".to_owned();
    common(&mut head, keep_alive);
    head.push_str(
        "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n\
         Access-Control-Allow-Headers: Icy-MetaData, Range\r\n\
         Access-Control-Max-Age: 86400\r\n\
         Content-Length: 0\r\n\r\n",
    );
    head
}

/// Icecast's headers for an audio mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icy<'a> {
    /// `icy-name`: the stream's name.
    pub name: &'a str,
    /// `icy-br`: kbit/s.
    pub bitrate_kbps: u32,
    /// `icy-metaint`, when the listener asked for metadata.
    pub metaint: Option<usize>,
}

/// The head of an endless body: `HTTP/1.1 200` (not `ICY 200 OK`, which HTML5 players refuse),
/// Icecast's `icy-*` headers for audio mounts, chunked transfer for HTTP-FLV.
pub fn endless(content_type: &str, icy: Option<&Icy<'_>>, chunked: bool) -> String {
    let mut head = "HTTP/1.1 200 OK\r\n".to_owned();
    common(&mut head, false);
    let _ = write!(head, "Content-Type: {content_type}\r\n");
    if let Some(icy) = icy {
        let name: String = icy.name.chars().filter(|c| !c.is_control()).collect();
        let _ = write!(
            head,
            "icy-name: {name}\r\nicy-br: {}\r\nicy-pub: 0\r\n\
             Access-Control-Expose-Headers: icy-metaint, icy-name, icy-br\r\n",
            icy.bitrate_kbps
        );
        if let Some(metaint) = icy.metaint {
            let _ = write!(head, "icy-metaint: {metaint}\r\n");
        }
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    head.push_str("\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut headers);
        let n = res.parse(head.as_bytes()).unwrap();
        assert!(n.is_complete(), "{head}");
        let pairs = res
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        (res.code.unwrap(), pairs)
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn icecast_mount_head() {
        let icy = Icy {
            name: "Pi radio\r\nX-Evil: 1",
            bitrate_kbps: 128,
            metaint: Some(16000),
        };
        let (code, h) = parse_head(&endless("audio/mpeg", Some(&icy), false));
        assert_eq!(code, 200);
        assert_eq!(get(&h, "content-type"), Some("audio/mpeg"));
        assert_eq!(get(&h, "icy-name"), Some("Pi radioX-Evil: 1"));
        assert_eq!(get(&h, "icy-br"), Some("128"));
        assert_eq!(get(&h, "icy-metaint"), Some("16000"));
        assert_eq!(get(&h, "cache-control"), Some("no-cache, no-store"));
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert!(get(&h, "access-control-expose-headers")
            .unwrap()
            .contains("icy-metaint"));
        assert_eq!(get(&h, "transfer-encoding"), None);
        assert_eq!(get(&h, "content-length"), None);
    }

    #[test]
    fn flv_is_chunked_without_icy() {
        let (_, h) = parse_head(&endless("video/x-flv", None, true));
        assert_eq!(get(&h, "transfer-encoding"), Some("chunked"));
        assert_eq!(get(&h, "icy-name"), None);
        let icy = Icy {
            name: "x",
            bitrate_kbps: 0,
            metaint: None,
        };
        let (_, h) = parse_head(&endless("audio/aac", Some(&icy), false));
        assert_eq!(get(&h, "icy-metaint"), None);
    }

    #[test]
    fn fixed_heads() {
        let (code, h) = parse_head(&complete("404 Not Found", "text/plain", 12, false, true));
        assert_eq!((code, get(&h, "content-length")), (404, Some("12")));
        assert_eq!(get(&h, "connection"), Some("close"));
        let (code, h) = parse_head(&unauthorized(false));
        assert_eq!(code, 401);
        assert!(get(&h, "www-authenticate").unwrap().starts_with("Basic"));
        let (code, h) = parse_head(&preflight(true));
        assert_eq!((code, get(&h, "connection")), (204, Some("keep-alive")));
        assert!(get(&h, "access-control-allow-headers")
            .unwrap()
            .contains("Icy-MetaData"));
    }
}
