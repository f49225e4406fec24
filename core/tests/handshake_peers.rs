//! The handshake against real peers over TCP on 127.0.0.1:
//! - `ServerHandshake` against ffmpeg 5.1 playing (digest C1; it validates S1's digest and S2's
//!   signature) and rtmpdump 2.4 (plain C1): each passes only when the client goes on to send its
//!   `connect` command chunk right after C2.
//! - `ClientHandshake` against nginx-rtmp (digest and plain): the client must find nginx's S1 digest
//!   and S2 signature valid, and nginx must answer a `connect` sent after C2.
//!
//! A missing tool skips a test with a message, except when `CI` is set: then it fails.
//! Every wait is bounded; child processes are killed when a test ends, however it ends.

mod support;

use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{accept, entropy, require, require_nginx_rtmp, scratch_dir, Conn, Nginx, Peer};
use zerocast_core::handshake::{ClientHandshake, DigestScheme, HandshakeKind, ServerHandshake};

/// Bound on a whole exchange with a peer.
const DEADLINE: Duration = Duration::from_secs(15);

/// Reads until `conn.pending` has grown or the deadline passes.
fn read_more(conn: &mut Conn, deadline: Instant) -> Result<(), String> {
    let before = conn.pending.len();
    while conn.pending.len() == before {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for more than {before} bytes"));
        }
        if !conn.fill()? {
            return Err(format!("peer closed after {before} bytes"));
        }
    }
    Ok(())
}

/// The first chunk in `bytes`, when complete: (type id, chunk body). Only fmt 0 is expected here,
/// since a first chunk on a chunk stream must carry a full header (RTMP spec 5.3.1.2).
fn first_chunk(bytes: &[u8]) -> Option<Result<(u8, &[u8]), String>> {
    let first = *bytes.first()?;
    if first >> 6 != 0 {
        return Some(Err(format!("first chunk has fmt {}", first >> 6)));
    }
    let basic = match first & 0x3F {
        0 => 2,
        1 => 3,
        _ => 1,
    };
    let header = bytes.get(basic..basic + 11)?;
    let length = u32::from_be_bytes([0, header[3], header[4], header[5]]) as usize;
    let body_len = length.min(128); // chunk size is 128 until a Set Chunk Size (spec 5.4.1)
    let body = bytes.get(basic + 11..basic + 11 + body_len)?;
    Some(Ok((header[6], body)))
}

/// The AMF0 encoding of the string "connect" (AMF0 spec 2.4: marker 2, u16 length, bytes).
const AMF0_CONNECT: &[u8] = b"\x02\x00\x07connect";

/// Serves one RTMP handshake to the client started by `program args` (with `{url}` replaced) and
/// returns the handshake's kind once the client's `connect` chunk has arrived after C2.
fn serve_client(program: &str, args: &[&str]) -> HandshakeKind {
    let dir = scratch_dir(program);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtmp://{}/live/a", listener.local_addr().unwrap());
    let args: Vec<String> = args.iter().map(|a| a.replace("{url}", &url)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let peer = Peer::spawn(&dir, program, program, &args, Stdio::null());
    let result = exchange_with_client(&listener);
    let log = peer.log();
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap_or_else(|e| panic!("{program}: {e}\n--- {program} log ---\n{log}"))
}

fn exchange_with_client(listener: &TcpListener) -> Result<HandshakeKind, String> {
    let deadline = Instant::now() + DEADLINE;
    let mut conn = Conn::new(accept(listener, deadline)?);
    let mut server = ServerHandshake::new(0x0000_1000, entropy());
    while !(server.is_complete() && server.transmit().is_empty()) {
        if Instant::now() >= deadline {
            return Err("handshake timed out".into());
        }
        if !server.transmit().is_empty() {
            conn.send(server.transmit())?;
            server.advance(server.transmit().len());
        }
        if !conn.fill()? {
            return Err("client closed during the handshake".into());
        }
        let used = server
            .receive(&conn.pending)
            .map_err(|e| format!("handshake: {e}"))?;
        conn.pending.drain(..used);
    }
    // Whatever follows C2 must be the client's first chunk: its `connect` command.
    loop {
        match first_chunk(&conn.pending) {
            Some(Ok((type_id, body))) => {
                if type_id != 20 || !body.starts_with(AMF0_CONNECT) {
                    return Err(format!("not a connect: type {type_id}, body {body:02x?}"));
                }
                return Ok(server.kind());
            }
            Some(Err(e)) => return Err(e),
            None => read_more(&mut conn, deadline)?,
        }
    }
}

#[test]
fn ffmpeg_player_accepts_the_digest_reply_and_connects() {
    if !require("ffmpeg", "-version") {
        return;
    }
    let kind = serve_client(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            "{url}",
            "-t",
            "1",
            "-f",
            "null",
            "-",
        ],
    );
    assert_eq!(
        kind,
        HandshakeKind::Digest {
            scheme: DigestScheme::Zero
        }
    );
}

#[test]
fn rtmpdump_accepts_the_plain_reply_and_connects() {
    if !require("rtmpdump", "-h") {
        return;
    }
    let kind = serve_client("rtmpdump", &["-q", "-r", "{url}", "-o", "/dev/null"]);
    assert_eq!(kind, HandshakeKind::Plain);
}

/// A `connect('live')` command message in one fmt-0 chunk on csid 3 (what ffmpeg sends, trimmed):
/// AMF0 "connect", transaction 1, { app: "live" }.
fn connect_chunk() -> Vec<u8> {
    let mut body = AMF0_CONNECT.to_vec();
    body.extend_from_slice(&[0x00]);
    body.extend_from_slice(&1f64.to_be_bytes());
    body.extend_from_slice(b"\x03\x00\x03app\x02\x00\x04live\x00\x00\x09");
    let len = body.len() as u32;
    let mut chunk = vec![0x03, 0, 0, 0];
    chunk.extend_from_slice(&len.to_be_bytes()[1..]);
    chunk.extend_from_slice(&[20, 0, 0, 0, 0]);
    chunk.extend_from_slice(&body);
    chunk
}

/// Runs a `ClientHandshake` against nginx-rtmp, then sends `connect` and waits for nginx's first
/// chunk in reply. Returns the finished handshake.
fn handshake_with_nginx(digest: bool) -> Option<ClientHandshake> {
    if !require_nginx_rtmp() {
        return None;
    }
    let dir = scratch_dir(if digest {
        "nginx-digest"
    } else {
        "nginx-plain"
    });
    let nginx = Nginx::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    let result = exchange_with_nginx(nginx.port, digest);
    let log = nginx.log();
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
    Some(result.unwrap_or_else(|e| panic!("nginx: {e}\n--- nginx log ---\n{log}")))
}

fn exchange_with_nginx(port: u16, digest: bool) -> Result<ClientHandshake, String> {
    let deadline = Instant::now() + DEADLINE;
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let mut conn = Conn::new(stream);
    let mut client = ClientHandshake::new(0, entropy(), digest);
    while !(client.is_complete() && client.transmit().is_empty()) {
        if Instant::now() >= deadline {
            return Err("handshake timed out".into());
        }
        if !client.transmit().is_empty() {
            conn.send(client.transmit())?;
            client.advance(client.transmit().len());
            continue;
        }
        if !conn.fill()? {
            return Err("nginx closed during the handshake".into());
        }
        let used = client
            .receive(&conn.pending)
            .map_err(|e| format!("handshake: {e}"))?;
        conn.pending.drain(..used);
    }
    if !conn.pending.is_empty() {
        return Err(format!(
            "{} bytes after S2 before connect",
            conn.pending.len()
        ));
    }
    conn.send(&connect_chunk())?;
    // nginx answers connect with Window Acknowledgement Size (type 5) first
    // (ngx_rtmp_cmd_module.c / protocol-notes.md §2).
    loop {
        match first_chunk(&conn.pending) {
            Some(Ok((5, _))) => return Ok(client),
            Some(Ok((type_id, _))) => return Err(format!("nginx answered type {type_id}")),
            Some(Err(e)) => return Err(e),
            None => read_more(&mut conn, deadline)?,
        }
    }
}

#[test]
fn digest_client_validates_nginx_rtmp_and_is_served() {
    let Some(client) = handshake_with_nginx(true) else {
        return;
    };
    assert_eq!(client.server_digest_ok(), Some(true));
    assert_eq!(client.server_signature_ok(), Some(true));
    assert_eq!(
        client.kind(),
        HandshakeKind::Digest {
            scheme: DigestScheme::Zero
        }
    );
}

#[test]
fn plain_client_is_served_by_nginx_rtmp() {
    let Some(client) = handshake_with_nginx(false) else {
        return;
    };
    assert_eq!(client.server_digest_ok(), None);
    assert_eq!(client.kind(), HandshakeKind::Plain);
}
