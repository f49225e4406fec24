//! The handshake against real peers over TCP on 127.0.0.1:
//! - `ServerHandshake` against ffmpeg 5.1 playing (digest C1; it validates S1's digest and S2's
//!   signature) and rtmpdump 2.4 (plain C1): each passes only when the client goes on to send its
//!   `connect` command chunk right after C2.
//! - `ClientHandshake` against nginx-rtmp (digest and plain): the client must find nginx's S1 digest
//!   and S2 signature valid, and nginx must answer a `connect` sent after C2.
//!
//! A missing tool skips a test with a message, except when `CI` is set: then it fails.
//! Every wait is bounded; child processes are killed when a test ends, however it ends.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zerocast_core::handshake::{ClientHandshake, DigestScheme, HandshakeKind, ServerHandshake};

/// Bound on a whole exchange with a peer.
const DEADLINE: Duration = Duration::from_secs(15);

/// Whether `program` can be run; when not, fails under `CI` and skips (returns false) otherwise.
fn require(program: &str, probe_arg: &str) -> bool {
    let found = Command::new(program)
        .arg(probe_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required when CI is set (apt-get install it)"
        );
        eprintln!("skipping: {program} not found");
    }
    found
}

/// A child process that is killed and reaped when dropped.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    /// Starts `program` with `args`, its stderr going to a fresh log file under `dir`.
    fn spawn(dir: &Path, program: &str, args: &[&str]) -> Self {
        let log = dir.join(format!("{program}.log"));
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Self { child, log }
    }

    /// What the peer has logged so far, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory for one test's files.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zerocast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entropy() -> [u8; 32] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&nanos.to_le_bytes());
    out[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    out
}

/// Waits for one connection on `listener` until `deadline`.
fn accept(listener: &TcpListener, deadline: Instant) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).unwrap();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return Ok(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("no connection: {e}")),
        }
    }
}

/// Reads what is there (up to a short timeout) and appends it to `pending`; false on EOF.
fn read_some(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Result<bool, String> {
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => Ok(false),
        Ok(n) => {
            pending.extend_from_slice(&buf[..n]);
            Ok(true)
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(true),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Reads until `pending` has grown or the deadline passes.
fn read_more(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), String> {
    let before = pending.len();
    while pending.len() == before {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for more than {before} bytes"));
        }
        if !read_some(stream, pending)? {
            return Err(format!("peer closed after {before} bytes"));
        }
    }
    Ok(())
}

fn connect_stream(stream: &TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
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
    let peer = Peer::spawn(&dir, program, &args);
    let result = exchange_with_client(&listener);
    let log = peer.log();
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap_or_else(|e| panic!("{program}: {e}\n--- {program} log ---\n{log}"))
}

fn exchange_with_client(listener: &TcpListener) -> Result<HandshakeKind, String> {
    let deadline = Instant::now() + DEADLINE;
    let mut stream = accept(listener, deadline)?;
    connect_stream(&stream);
    let mut server = ServerHandshake::new(0x0000_1000, entropy());
    let mut pending = Vec::new();
    while !(server.is_complete() && server.transmit().is_empty()) {
        if Instant::now() >= deadline {
            return Err("handshake timed out".into());
        }
        if !server.transmit().is_empty() {
            let n = stream
                .write(server.transmit())
                .map_err(|e| format!("write: {e}"))?;
            server.advance(n);
        }
        if !read_some(&mut stream, &mut pending)? {
            return Err("client closed during the handshake".into());
        }
        let used = server
            .receive(&pending)
            .map_err(|e| format!("handshake: {e}"))?;
        pending.drain(..used);
    }
    // Whatever follows C2 must be the client's first chunk: its `connect` command.
    loop {
        match first_chunk(&pending) {
            Some(Ok((type_id, body))) => {
                if type_id != 20 || !body.starts_with(AMF0_CONNECT) {
                    return Err(format!("not a connect: type {type_id}, body {body:02x?}"));
                }
                return Ok(server.kind());
            }
            Some(Err(e)) => return Err(e),
            None => read_more(&mut stream, &mut pending, deadline)?,
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

const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Runs a `ClientHandshake` against nginx-rtmp, then sends `connect` and waits for nginx's first
/// chunk in reply. Returns the finished handshake.
fn handshake_with_nginx(digest: bool) -> Option<ClientHandshake> {
    if !require("nginx", "-v") {
        return None;
    }
    assert!(
        Path::new(NGINX_RTMP_MODULE).exists() || std::env::var_os("CI").is_none(),
        "{NGINX_RTMP_MODULE} is required when CI is set (libnginx-mod-rtmp)"
    );
    if !Path::new(NGINX_RTMP_MODULE).exists() {
        eprintln!("skipping: {NGINX_RTMP_MODULE} not found");
        return None;
    }
    let dir = scratch_dir(if digest {
        "nginx-digest"
    } else {
        "nginx-plain"
    });
    // A free port: nginx binds it itself a moment later.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "load_module {NGINX_RTMP_MODULE};\n\
         daemon off; master_process off; worker_processes 1;\n\
         pid {dir}/nginx.pid; error_log {dir}/error.log info;\n\
         events {{ worker_connections 16; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let conf_path = dir.join("nginx.conf");
    let args = [
        "-p",
        dir.to_str().unwrap(),
        "-e",
        "stderr",
        "-c",
        conf_path.to_str().unwrap(),
    ];
    let peer = Peer::spawn(&dir, "nginx", &args);
    let result = exchange_with_nginx(port, digest);
    let log = peer.log() + &std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
    Some(result.unwrap_or_else(|e| panic!("nginx: {e}\n--- nginx log ---\n{log}")))
}

fn exchange_with_nginx(port: u16, digest: bool) -> Result<ClientHandshake, String> {
    let deadline = Instant::now() + DEADLINE;
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot connect: {e}")),
        }
    };
    connect_stream(&stream);
    let mut client = ClientHandshake::new(0, entropy(), digest);
    let mut pending = Vec::new();
    while !(client.is_complete() && client.transmit().is_empty()) {
        if Instant::now() >= deadline {
            return Err("handshake timed out".into());
        }
        if !client.transmit().is_empty() {
            let n = stream
                .write(client.transmit())
                .map_err(|e| format!("write: {e}"))?;
            client.advance(n);
            continue;
        }
        if !read_some(&mut stream, &mut pending)? {
            return Err("nginx closed during the handshake".into());
        }
        let used = client
            .receive(&pending)
            .map_err(|e| format!("handshake: {e}"))?;
        pending.drain(..used);
    }
    if !pending.is_empty() {
        return Err(format!("{} bytes after S2 before connect", pending.len()));
    }
    stream
        .write_all(&connect_chunk())
        .map_err(|e| format!("write connect: {e}"))?;
    // nginx answers connect with Window Acknowledgement Size (type 5) first
    // (ngx_rtmp_cmd_module.c / protocol-notes.md §2).
    loop {
        match first_chunk(&pending) {
            Some(Ok((5, _))) => return Ok(client),
            Some(Ok((type_id, _))) => return Err(format!("nginx answered type {type_id}")),
            Some(Err(e)) => return Err(e),
            None => read_more(&mut stream, &mut pending, deadline)?,
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
