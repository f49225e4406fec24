//! Listeners across a publisher's codec change (issue 19): an HTTP-FLV listener follows the
//! stream into the new codec on the same connection (new metadata and sequence header tags,
//! then the new tags), while fMP4 and ADTS listeners are closed cleanly so that their players
//! start over. Judged by content: the FLV body's tags of each codec are decoded by ffmpeg and
//! must be the tone of the publisher of that codec.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::check::{check_tone, decode};
use common::flv::{self, Tag};
use common::live::{publish_tone, Zerocast};
use common::process;
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

/// Upper bound of every wait.
const LIMIT: Duration = Duration::from_secs(20);
/// Seconds of tone each publisher sends before it ends by itself.
const TONE_S: f64 = 3.0;

/// What one HTTP listener received.
struct Heard {
    /// The response head.
    head: String,
    /// The body as sent (chunked framing included).
    body: Vec<u8>,
    /// The server ended the body (EOF) before the listener stopped.
    ended: bool,
}

/// A listener of `base``path` on its own connection, reading until the server closes, `stop`
/// is set, or [`LIMIT`] passes.
fn listen(base: &str, path: &str, stop: Arc<AtomicBool>) -> JoinHandle<Result<Heard, String>> {
    let host = base.strip_prefix("http://").unwrap_or(base).to_owned();
    let path = path.to_owned();
    thread::spawn(move || {
        let mut s = TcpStream::connect(&host).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
        let deadline = Instant::now() + LIMIT;
        let (mut all, mut buf, mut ended) = (Vec::new(), [0u8; 16384], false);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let split = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no response head")?;
        Ok(Heard {
            head: String::from_utf8_lossy(&all[..split]).into_owned(),
            body: all[split + 4..].to_vec(),
            ended,
        })
    })
}

/// The status line of `HEAD path` on `host` (empty when there is no answer).
fn head_status(host: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(host) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(LIMIT));
    let _ = write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    text.lines().next().unwrap_or("").to_owned()
}

/// The data of a chunked body (a last chunk cut short by the listener's stop is kept as far as
/// it came).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line])
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .unwrap_or(0);
        let data = &body[line + 2..];
        out.extend_from_slice(&data[..size.min(data.len())]);
        if size == 0 || data.len() < size + 2 {
            break;
        }
        body = &data[size + 2..];
    }
    out
}

/// An FLV file of `tags` (audio only), their times from 0.
fn flv_file(tags: &[&Tag]) -> Vec<u8> {
    let mut out = b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    let first = tags.first().map_or(0, |t| t.timestamp);
    for t in tags {
        let size = t.data.len() as u32;
        let ts = t.timestamp - first;
        out.push(t.kind);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&t.data);
        out.extend_from_slice(&(size + 11).to_be_bytes());
    }
    out
}

/// Decodes `bytes` (anything ffmpeg reads), saved as `file`.
fn decode_bytes(bytes: &[u8], file: &Path) -> Result<Wav, HarnessError> {
    std::fs::write(file, bytes).map_err(|e| HarnessError::io("write", e))?;
    decode(file)
}

fn failed(what: &str, detail: impl Into<String>) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail: detail.into(),
    }
}

fn joined(h: JoinHandle<Result<Heard, String>>, what: &str) -> Result<Heard, HarnessError> {
    h.join()
        .map_err(|_| failed(what, "listener thread panicked"))?
        .map_err(|e| failed(what, e))
}

#[test]
fn http_listeners_follow_or_end_cleanly_across_a_codec_change() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("egress-codec-change", |dir| {
        let port = process::free_port()?;
        let http = format!("127.0.0.1:{port}");
        let mut z = Zerocast::start(&["--source", "none", "--http", &http], &[], None, dir)?;
        let base = format!("http://{http}");
        let _aac = publish_tone(&z, "x", "aac", 440, Some(TONE_S), dir, "aac")?;
        z.wait_log("publish live/x", LIMIT)?;
        // The mounts exist from the stream's first audio on.
        process::wait_until("the .mp4 mount", LIMIT, || {
            Ok(head_status(&http, "/live/x.mp4").starts_with("HTTP/1.1 200"))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flv_listener = listen(&base, "/live/x.flv", stop.clone());
        let mp4_listener = listen(&base, "/live/x.mp4", stop.clone());
        let aac_listener = listen(&base, "/live/x.aac", stop.clone());
        z.wait_log("publisher gone", LIMIT)?;
        let changed = Instant::now();
        let _pcm = publish_tone(&z, "x", "pcm_s16le", 880, Some(TONE_S), dir, "pcm")?;
        process::wait_until("the PCM publisher to end", LIMIT, || {
            Ok(z.log_count("publisher gone") >= 2)
        })?;
        // The stream goes on with silence; what the listeners have is judged now.
        stop.store(true, Ordering::SeqCst);
        let (flv_heard, mp4_heard, aac_heard) = (
            joined(flv_listener, "flv")?,
            joined(mp4_listener, "mp4")?,
            joined(aac_listener, "aac")?,
        );
        println!(
            "after the change: fMP4 ended: {}, ADTS ended: {}, FLV still open: {} ({} ms of the second publisher)",
            mp4_heard.ended,
            aac_heard.ended,
            !flv_heard.ended,
            changed.elapsed().as_millis()
        );
        for (heard, what) in [
            (&flv_heard, "flv"),
            (&mp4_heard, "mp4"),
            (&aac_heard, "aac"),
        ] {
            if !heard.head.starts_with("HTTP/1.1 200") {
                return Err(failed(what, heard.head.clone()));
            }
        }

        // HTTP-FLV: both codecs' tags in the one body, each decoding to its publisher's tone.
        let tags =
            flv::parse(&dechunk(&flv_heard.body)).map_err(|e| failed("flv", e.to_string()))?;
        let of_codec = |codec: u8| -> Vec<&Tag> {
            tags.iter()
                .filter(|t| {
                    t.kind == flv::TAG_AUDIO && t.data.first().map(|b| b >> 4) == Some(codec)
                })
                .collect()
        };
        // FLV sound formats: 10 AAC, 3 PCM little-endian.
        let (aac, pcm) = (of_codec(10), of_codec(3));
        println!(
            "FLV listener: {} tags, {} AAC, {} PCM",
            tags.len(),
            aac.len(),
            pcm.len()
        );
        if flv_heard.ended || pcm.is_empty() {
            return Err(failed(
                "HTTP-FLV listener",
                format!(
                    "ended: {}, {} PCM tags after the codec change",
                    flv_heard.ended,
                    pcm.len()
                ),
            ));
        }
        for (tags, hz, what, file) in [
            (&aac, 440.0, "FLV, AAC before the change", "flv-aac.flv"),
            (&pcm, 880.0, "FLV, PCM after the change", "flv-pcm.flv"),
        ] {
            let wav = decode_bytes(&flv_file(tags), &dir.join(file))?;
            check_tone(&wav.head(2.0), hz, 1.9, 25.0, what)?;
        }

        // fMP4 and ADTS: the first tone, then the end of the body (not a silent open socket).
        for (heard, what, file) in [
            (&mp4_heard, "fMP4 listener", "mp4-aac.mp4"),
            (&aac_heard, "ADTS listener", "adts.aac"),
        ] {
            if !heard.ended {
                return Err(failed(what, "still connected after the codec change"));
            }
            let wav = decode_bytes(&heard.body, &dir.join(file))?;
            check_tone(&wav.head(2.0), 440.0, 1.9, 25.0, what)?;
        }
        z.stop_cleanly()
    })
}
