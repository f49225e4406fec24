//! Plumbing for tests against real peers: child processes that die with the test, TCP on
//! 127.0.0.1 with short read timeouts, a private nginx-rtmp, a paced 440 Hz PCM source, and a
//! zero-crossing and silence check of decoded audio.
//!
//! Every wait here is bounded; a missing tool skips a test, except under `CI`, where it fails.
//!
//! Each test crate that declares `mod support;` compiles all of this and uses a subset, hence the
//! `dead_code` allowance (the pattern of the Rust book's "Submodules in Integration Tests").
#![allow(dead_code)]

use std::f64::consts::PI;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zerocast_core::flv;

/// Sample rate of every stream in these tests.
pub const RATE: u64 = 44_100;
/// Bytes per stereo s16le frame.
pub const FRAME_BYTES: usize = 4;
/// The test tone.
pub const TONE_HZ: f64 = 440.0;
/// Frames per audio message the test hosts send: 20 ms at 44.1 kHz.
pub const MESSAGE_FRAMES: u64 = 882;
/// FLV audio tag header byte for PCM little-endian, 44 kHz, 16-bit, stereo (FLV spec v10.1
/// E.4.2.1: SoundFormat 3 << 4 | SoundRate 3 << 2 | SoundSize 1 << 1 | SoundType 1).
pub const PCM_TAG: u8 = 0x3F;
/// Peak of the generated sine: a quarter of full scale (−12 dBFS).
const AMPLITUDE: f64 = 8192.0;

/// `present`, or else: fails under `CI` saying `missing`, and returns false (skip the test)
/// otherwise.
pub fn available(present: bool, missing: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{missing}: required when CI is set"
        );
        eprintln!("skipping: {missing}");
    }
    present
}

/// Whether `program` can be run; like [`available`] otherwise.
pub fn require(program: &str, probe_arg: &str) -> bool {
    let found = Command::new(program)
        .arg(probe_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    available(found, &format!("{program} not found (apt-get install it)"))
}

/// nginx's RTMP module as Debian's libnginx-mod-rtmp installs it.
const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Whether nginx and its RTMP module are installed; like [`require`] otherwise.
pub fn require_nginx_rtmp() -> bool {
    if !require("nginx", "-v") {
        return false;
    }
    available(
        Path::new(NGINX_RTMP_MODULE).exists(),
        &format!("{NGINX_RTMP_MODULE} not found (apt-get install libnginx-mod-rtmp)"),
    )
}

/// A fresh directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zerocast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Seed bytes for a session's handshake randomness (tests need no cryptographic quality).
pub fn entropy() -> [u8; 32] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&nanos.to_le_bytes());
    out[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    out
}

/// A child process that is killed and reaped when dropped, its stderr kept in a log file.
pub struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    /// Starts `program` with `args`; stdout goes to `stdout`, stderr to `dir/<tag>.log`.
    pub fn spawn(dir: &Path, tag: &str, program: &str, args: &[&str], stdout: Stdio) -> Self {
        let log = dir.join(format!("{tag}.log"));
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Self { child, log }
    }

    /// The child's piped stdout (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for the child to exit, killing it when `limit` passes first.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("still running after {limit:?}; killed"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGINT (what Ctrl-C does), the way rtmpdump's live dumps are meant to be stopped.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -INT failed");
    }

    /// What the child has logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a child wrote to its stdout, and when the first byte came.
pub struct Output {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// When the first byte was read.
    pub first: Option<Instant>,
}

/// Collects `stdout` on a thread, noting when its first byte arrives. The thread ends at EOF,
/// which comes at the latest when the child is killed.
pub fn collect(mut stdout: ChildStdout) -> JoinHandle<Output> {
    thread::spawn(move || {
        let mut out = Output {
            bytes: Vec::new(),
            first: None,
        };
        let mut buf = [0u8; 16384];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            out.first.get_or_insert_with(Instant::now);
            out.bytes.extend_from_slice(&buf[..n]);
        }
        out
    })
}

/// A port on 127.0.0.1 that was free a moment ago (for servers that bind it themselves).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for one connection on `listener` until `deadline`.
pub fn accept(listener: &TcpListener, deadline: Instant) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).unwrap();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return Ok(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("no connection: {e}")),
        }
    }
}

/// One TCP connection as a sans-IO session's host sees it: received bytes not yet consumed, a
/// record of everything received, and blocking writes.
pub struct Conn {
    stream: TcpStream,
    /// Received bytes the session has not consumed yet.
    pub pending: Vec<u8>,
    /// Every byte received, in order (the capture).
    pub rx: Vec<u8>,
    closed: bool,
}

impl Conn {
    /// Wraps `stream` with a 2 ms read timeout, so one loop turn never blocks long.
    pub fn new(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            pending: Vec::new(),
            rx: Vec::new(),
            closed: false,
        }
    }

    /// Reads what arrives within the read timeout; false once the peer has closed.
    pub fn fill(&mut self) -> Result<bool, String> {
        if self.closed {
            return Ok(false);
        }
        let mut buf = [0u8; 16384];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.rx.extend_from_slice(&buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => self.closed = true,
            Err(e) => return Err(format!("read: {e}")),
        }
        Ok(!self.closed)
    }

    /// Writes all of `bytes`; a peer that has gone away only marks the connection closed.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.closed {
            return Ok(());
        }
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(format!("write: {e}")),
        }
    }
}

/// A phase-continuous 440 Hz sine, stereo s16le, at −12 dBFS.
#[derive(Default)]
pub struct Tone {
    frames: u64,
}

impl Tone {
    /// Frames rendered so far: the stream clock.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next frame's sample (both channels carry it).
    fn next_sample(&mut self) -> i16 {
        let phase = 2.0 * PI * TONE_HZ * self.frames as f64 / RATE as f64;
        self.frames += 1;
        (AMPLITUDE * phase.sin()).round() as i16
    }

    /// Appends `n` frames to `out`.
    pub fn render(&mut self, n: u64, out: &mut Vec<u8>) {
        for _ in 0..n {
            let sample = self.next_sample().to_le_bytes();
            out.extend_from_slice(&sample);
            out.extend_from_slice(&sample);
        }
    }

    /// Fills interleaved stereo samples (an audio source callback of `zerocast_core::board`).
    pub fn fill(&mut self, pcm: &mut [i16]) {
        for frame in pcm.chunks_exact_mut(2) {
            frame.fill(self.next_sample());
        }
    }
}

/// The tone cut into 20 ms FLV audio tag bodies (PCM flag byte + samples), each due at real time
/// from `start`, timestamps from the sample count (never from the wall clock, as the host does).
pub struct PacedTone {
    tone: Tone,
    start: Instant,
}

impl PacedTone {
    /// A source whose first message is due at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            tone: Tone::default(),
            start,
        }
    }

    /// Milliseconds of audio handed out so far.
    pub fn millis(&self) -> u64 {
        self.tone.frames() * 1000 / RATE
    }

    /// The next message `(timestamp, body)` if its time has come at `now`.
    pub fn next_due(&mut self, now: Instant) -> Option<(u32, Vec<u8>)> {
        if now < self.start + Duration::from_millis(self.millis()) {
            return None;
        }
        let timestamp = u32::try_from(self.millis()).unwrap();
        let mut body = vec![PCM_TAG];
        self.tone.render(MESSAGE_FRAMES, &mut body);
        Some((timestamp, body))
    }
}

/// What [`analyse`] measured.
#[derive(Debug)]
pub struct ToneStats {
    /// Stereo frames.
    pub frames: usize,
    /// Frequency from the rising zero crossings of the left channel.
    pub hz: f64,
    /// Level of the left channel in dBFS (RMS).
    pub rms_dbfs: f64,
    /// The longest run of samples below −40 dBFS after the first one above it, in ms: silence a
    /// player inserted for audio that did not come (a tone passes through that band only for a
    /// couple of samples around each zero crossing).
    pub longest_gap_ms: f64,
    /// Periods (between rising crossings) off the tone's by more than 5 %: audio lost without
    /// silence in its place is a phase jump, which lengthens or shortens one period.
    pub jumps: usize,
}

impl ToneStats {
    /// Seconds of audio at 44.1 kHz.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / RATE as f64
    }

    /// Panics unless this is the test tone: 440 Hz within 1 %, at a level well above silence.
    pub fn assert_tone(&self, what: &str) {
        assert!(
            (self.hz - TONE_HZ).abs() / TONE_HZ < 0.01,
            "{what}: {:.2} Hz is not 440 Hz ± 1 % ({self:?})",
            self.hz
        );
        assert!(self.rms_dbfs > -30.0, "{what}: too quiet ({self:?})");
    }

    /// Prints the measurement, then panics unless it is the test tone ([`Self::assert_tone`])
    /// without a gap: no silence longer than 5 ms once it started (a lost 20 ms message played
    /// as silence is four times that).
    pub fn assert_clean_tone(&self, what: &str) {
        println!("{what}: {self}");
        self.assert_tone(what);
        assert!(
            self.longest_gap_ms <= 5.0,
            "{what}: {:.1} ms of silence in the tone ({self:?})",
            self.longest_gap_ms
        );
        assert_eq!(self.jumps, 0, "{what}: the tone's phase jumped ({self:?})");
    }
}

impl std::fmt::Display for ToneStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} Hz, {:.3} s, {:.1} dBFS, longest gap {:.1} ms, {} phase jumps",
            self.hz,
            self.seconds(),
            self.rms_dbfs,
            self.longest_gap_ms,
            self.jumps
        )
    }
}

/// Magnitude below which a sample counts as silence: −40 dBFS.
const SILENCE: f64 = 328.0;

/// Measures stereo s16le audio. A rising crossing counts once the signal was below −1 % of full
/// scale since the last one (hysteresis against noise near zero), at the interpolated instant it
/// passes 0; frequency = crossings between the first and the last / the time between them, so
/// leading or trailing silence (AAC priming) does not bias it.
pub fn analyse(pcm: &[u8]) -> ToneStats {
    let left: Vec<f64> = pcm
        .chunks_exact(FRAME_BYTES)
        .map(|f| f64::from(i16::from_le_bytes([f[0], f[1]])))
        .collect();
    let mut crossings = Vec::new();
    let mut armed = false;
    for (i, pair) in left.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if a < -SILENCE {
            armed = true;
        }
        if armed && a < 0.0 && b >= 0.0 {
            crossings.push(i as f64 + a / (a - b));
            armed = false;
        }
    }
    let hz = match (crossings.first(), crossings.last()) {
        (Some(first), Some(last)) if last > first => {
            (crossings.len() - 1) as f64 * RATE as f64 / (last - first)
        }
        _ => 0.0,
    };
    let power = left.iter().map(|s| s * s).sum::<f64>() / left.len().max(1) as f64;
    let start = left
        .iter()
        .position(|s| s.abs() >= SILENCE)
        .unwrap_or(left.len());
    let (mut run, mut longest) = (0usize, 0usize);
    for s in &left[start..] {
        run = if s.abs() < SILENCE { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let period = RATE as f64 / TONE_HZ;
    let jumps = crossings
        .windows(2)
        .filter(|w| ((w[1] - w[0]) - period).abs() > 0.05 * period)
        .count();
    ToneStats {
        frames: left.len(),
        hz,
        rms_dbfs: 10.0 * (power / (32768.0 * 32768.0)).log10(),
        longest_gap_ms: longest as f64 * 1000.0 / RATE as f64,
        jumps,
    }
}

/// Decodes any file ffmpeg reads into stereo s16le at 44.1 kHz.
pub fn decode(input: &Path) -> Result<Vec<u8>, String> {
    let dir = input.parent().unwrap();
    let out = input.with_extension("decoded.raw");
    let input_arg = input.to_str().unwrap();
    let out_arg = out.to_str().unwrap();
    let args = [
        "-nostdin", "-y", "-i", input_arg, "-f", "s16le", "-ac", "2", "-ar", "44100", out_arg,
    ];
    let mut peer = Peer::spawn(dir, "ffmpeg-decode", "ffmpeg", &args, Stdio::null());
    let status = peer.wait(Duration::from_secs(30))?;
    if !status.success() {
        return Err(format!("ffmpeg decode failed: {status}\n{}", peer.log()));
    }
    std::fs::read(&out).map_err(|e| e.to_string())
}

/// Writes what a publisher sent as an FLV file (the core's own framing), so ffmpeg can decode
/// codecs the tests cannot: a script tag with the metadata, then one audio tag per message.
pub fn write_flv(path: &Path, metadata: Option<&[u8]>, audio: &[(u32, Vec<u8>)]) {
    let mut file = Vec::new();
    let mut header = [0u8; flv::FILE_HEADER_LEN];
    let n = flv::encode_file_header(&mut header, true, false).unwrap();
    file.extend_from_slice(&header[..n]);
    let tags = metadata
        .map(|body| (flv::TAG_SCRIPT_DATA, 0, body))
        .into_iter()
        .chain(
            audio
                .iter()
                .map(|(t, body)| (flv::TAG_AUDIO, *t, &body[..])),
        );
    for (kind, timestamp, body) in tags {
        let size = u32::try_from(body.len()).unwrap();
        let mut tag = [0u8; flv::TAG_HEADER_LEN];
        let n = flv::encode_tag_header(&mut tag, kind, size, timestamp).unwrap();
        file.extend_from_slice(&tag[..n]);
        file.extend_from_slice(body);
        let mut trailer = [0u8; 4];
        let n = flv::encode_previous_tag_size(&mut trailer, size).unwrap();
        file.extend_from_slice(&trailer[..n]);
    }
    std::fs::write(path, file).unwrap();
}

/// A private nginx with the RTMP module (Debian's libnginx-mod-rtmp) on a free port, killed on
/// drop. `master_process off` keeps it one process, so killing the child stops all of it.
pub struct Nginx {
    /// Its RTMP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    _peer: Peer,
}

impl Nginx {
    /// Starts nginx in `dir` and waits (bounded) until it accepts connections.
    pub fn start(dir: &Path) -> Result<Self, String> {
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "load_module {NGINX_RTMP_MODULE};\n\
             daemon off; master_process off; worker_processes 1;\n\
             error_log {d}/error.log info; pid {d}/nginx.pid;\n\
             events {{}}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
             application live {{ live on; record off; }} }} }}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let error_log = dir.join("error.log");
        let args = [
            "-p",
            dir.to_str().unwrap(),
            "-c",
            conf_path.to_str().unwrap(),
            "-e",
            error_log.to_str().unwrap(),
        ];
        let mut peer = Peer::spawn(dir, "nginx", "nginx", &args, Stdio::null());
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() >= deadline || peer.child.try_wait().ok().flatten().is_some() {
                return Err(format!(
                    "nginx did not listen on {port}\n{}\n{}",
                    peer.log(),
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            port,
            dir: dir.to_path_buf(),
            _peer: peer,
        })
    }

    /// nginx's error log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}
