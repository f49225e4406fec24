//! Plain HTTP requests for the end-to-end tests, over a bare `TcpStream` (no client library,
//! so nothing is hidden or retried).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::HarnessError;

/// The longest a request waits for its whole answer.
const LIMIT: Duration = Duration::from_secs(20);

/// GET `url` over plain TCP (no client library), one request on its own connection: status
/// code and body.
pub fn get(url: &str, auth: Option<&str>) -> Result<(u16, String), HarnessError> {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = TcpStream::connect(host).map_err(|e| HarnessError::io("connect", e))?;
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: Basic {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .map_err(|e| HarnessError::io("read", e))?;
    let text = String::from_utf8_lossy(&all).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((code, body))
}

/// The status code of `HEAD url` (a stream's head ends its answer, so this never waits for a
/// body); 0 when the connection fails.
pub fn head_status(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let Ok(mut s) = TcpStream::connect(host) else {
        return 0;
    };
    s.set_read_timeout(Some(LIMIT)).unwrap();
    if write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return 0;
    }
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all)
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
