//! `zerocast-bench`: zerocast against the seed it replaces (nginx-rtmp fed by `ffmpeg -f alsa`),
//! in one run, on one marker signal, with the same players. See docs/benchmarks.md; run through
//! `ci/run.sh bench`, which builds what this needs and passes the paths.
//!
//! Order of a run: a private PulseAudio with a null sink `radio`, the marker signal played into
//! it (pacat `--latency-msec=20`); the source's own floor (parec on `radio.monitor`, alone);
//! then per server (seed, zerocast pcm, zerocast adpcm), each capturing `radio.monitor` through
//! ALSA `pulse`: a low-delay ffmpeg player that stays for the whole phase (marker latency),
//! default-settings ffmpeg players (time to first decoded audio), and the fan-out levels
//! (zerocast-load with N players; server CPU from /proc/PID/stat over a window, memory at its
//! end). Then HTTP listeners (issue 12) the same way: zerocast's `.mp3` and `.aac` mounts, and
//! Icecast2 fed by DarkIce (capturing the same `radio.monitor` through ALSA `pulse`), the marker
//! player and the load players on `http://…/live/audio.mp3`. Last, instruction counts of the
//! static armv6 zerocast under qemu-arm (qemu-insn).
//! Nothing here asserts a number: goals are compared and reported.

mod marker;
mod procs;
mod report;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

use marker::{Detector, Generator};
use procs::{spawn, Memory, Proc, Stdio3};

const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Command line (ci/bench.sh passes all of it).
#[derive(Clone, Debug)]
struct Opts {
    quick: bool,
    out: PathBuf,
    zerocast: String,
    load: String,
    musl: Option<String>,
    plugin: Option<String>,
    /// The fake ALSA card's plugin (linux-host/tests/alsa_fake/zcfake.c, built by ci/bench.sh).
    fake_card: Option<String>,
    /// Only these servers (their labels, e.g. `zerocast-adpcm`) and parts ([`INSN_PART`]), for
    /// measurements by hand such as the send-interval table in docs/benchmarks.md; empty: all of
    /// the plan's. Without a server's label the PulseAudio source is not started at all.
    only: Vec<String>,
    /// The codecs the static armv6 binary was built with, in [`INSN_CODECS`] order: the qemu
    /// runs measure each.
    musl_codecs: Vec<&'static str>,
}

impl Opts {
    /// Whether `--only` leaves the server or part `label` in.
    fn wanted(&self, label: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|l| l == label)
    }
}

/// The `--only` name of the qemu-insn part.
const INSN_PART: &str = "qemu-insn";
/// Every codec zerocast has, in the order the qemu-insn table lists them.
const INSN_CODECS: [&str; 4] = ["pcm", "adpcm", "aac", "mp3"];

/// How long each part runs.
#[derive(Clone, Debug)]
struct Plan {
    floor: Duration,
    /// Marker player's warm-up before its latencies count.
    marker_warm_up: Duration,
    default_runs: usize,
    /// Only the marker player, before the fan-out levels.
    latency_window: Duration,
    levels: Vec<usize>,
    settle: Duration,
    window: Duration,
    /// The two lengths (s) of every qemu run: their difference removes start-up costs.
    insn_secs: (u64, u64),
    /// Load players of the qemu runs.
    insn_players: Vec<usize>,
    /// The servers measured, in order.
    servers: Vec<Kind>,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                floor: Duration::from_secs(8),
                marker_warm_up: Duration::from_secs(2),
                default_runs: 1,
                latency_window: Duration::from_secs(6),
                levels: vec![1, 10, 100, 1000],
                settle: Duration::from_secs(1),
                window: Duration::from_secs(6),
                insn_secs: (3, 6),
                insn_players: vec![1, 10, 100],
                servers: servers(false),
            }
        } else {
            Plan {
                floor: Duration::from_secs(16),
                marker_warm_up: Duration::from_secs(2),
                default_runs: 3,
                latency_window: Duration::from_secs(20),
                levels: vec![1, 10, 100, 1000],
                settle: Duration::from_secs(2),
                window: Duration::from_secs(20),
                insn_secs: (5, 15),
                insn_players: vec![1, 10, 100],
                servers: servers(true),
            }
        }
    }
}

/// The servers of a run: the seed, zerocast capturing through `pulse` (PCM only in the full
/// run), the AAC slot, the fake card and the tone; then the HTTP listeners of zerocast's MP3 and
/// AAC mounts and of Icecast2 + DarkIce.
fn servers(with_pcm: bool) -> Vec<Kind> {
    let pcm = with_pcm.then_some(Kind::Zerocast("pcm"));
    [Kind::Seed]
        .into_iter()
        .chain(pcm)
        .chain([
            Kind::Zerocast("adpcm"),
            Kind::Zerocast("aac"),
            Kind::ZerocastFake("adpcm"),
            Kind::ZerocastTone("adpcm"),
            Kind::Floor,
            Kind::ZerocastHttp("mp3"),
            Kind::ZerocastHttp("aac"),
            Kind::Icecast,
        ])
        .collect()
}

/// Which server a phase measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// nginx-rtmp + `ffmpeg -f alsa -ac 2 -i pulse -ar 44100 -f flv` (MP3 128k).
    Seed,
    /// `zerocast --source alsa:pulse --codec CODEC`.
    Zerocast(&'static str),
    /// `zerocast --source tone --codec CODEC`: zerocast without the capture path (no
    /// PulseAudio client library in the process), for what zerocast itself costs. No markers.
    ZerocastTone(&'static str),
    /// `zerocast --source alsa:fake --codec CODEC`: the capture path through alsa-lib with the
    /// test suite's fake card (an ioplug plugin that does not load libpulse), as a Pi with a
    /// USB card would run it. One player only: the capture's cost. No markers.
    ZerocastFake(&'static str),
    /// `zerocast --source alsa:pulse --codec CODEC --http …`: the players are HTTP listeners of
    /// `/live/audio.CODEC` (Icecast-style endless body); the RTMP side has none.
    ZerocastHttp(&'static str),
    /// `zerocast-floor`: no server at all, a loop that wakes every 20 ms and writes one listener
    /// 40 kB/s: the machine's floor under the tone source's one-player figure. One player only.
    Floor,
    /// Icecast2 with DarkIce capturing through ALSA `pulse` (MP3 128k CBR, as the seed), the
    /// players on its mount `/live/audio.mp3`.
    Icecast,
}

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::Seed => "seed".to_owned(),
            Kind::Zerocast(c) => format!("zerocast-{c}"),
            Kind::ZerocastTone(c) => format!("zerocast-{c}-tone"),
            Kind::ZerocastFake(c) => format!("zerocast-{c}-fake"),
            Kind::ZerocastHttp(c) => format!("zerocast-http-{c}"),
            Kind::Icecast => "icecast-darkice".to_owned(),
            Kind::Floor => report::IDLE_FLOOR.to_owned(),
        }
    }

    /// Whether the marker player and the default players run against it.
    fn markers(self) -> bool {
        matches!(
            self,
            Kind::Seed | Kind::Zerocast(_) | Kind::ZerocastHttp(_) | Kind::Icecast
        )
    }

    /// The fan-out levels it is measured at: HTTP listeners up to 100 (the issue's levels).
    fn levels(self, plan: &Plan) -> Vec<usize> {
        match self {
            Kind::ZerocastFake(_) | Kind::Floor => vec![1],
            Kind::ZerocastHttp(_) | Kind::Icecast => {
                plan.levels.iter().copied().filter(|&n| n <= 100).collect()
            }
            _ => plan.levels.clone(),
        }
    }
}

/// One fan-out level of one server.
#[derive(Clone, Debug, Default)]
pub struct Level {
    /// Load players (the marker player comes on top).
    pub players: usize,
    /// Server-side CPU seconds per minute of audio, by process group (seed: nginx, ffmpeg).
    pub cpu_per_min: BTreeMap<String, f64>,
    /// The part of it spent in the kernel (stime), all groups together.
    pub kernel_per_min: f64,
    /// Memory of the server side at the end of the window.
    pub memory: Memory,
    /// zerocast-load's summary (`key=value`).
    pub load: BTreeMap<String, f64>,
    /// Marker latencies in the window (ms, sorted) and bursts lost.
    pub latency: Vec<f64>,
    /// Bursts emitted in the window that never arrived.
    pub lost: usize,
    /// How busy the whole machine was over the window.
    pub busy: f64,
    /// Context switches of the server side per second over the window.
    pub switches_per_s: f64,
}

impl Level {
    /// Total server-side CPU per minute of audio.
    pub fn cpu_total(&self) -> f64 {
        self.cpu_per_min.values().sum()
    }
}

/// Everything measured of one server.
#[derive(Clone, Debug, Default)]
pub struct ServerResult {
    /// `seed`, `zerocast-pcm`, ...
    pub label: String,
    /// Low-delay player latencies from its warm-up to the end of the 1-player window (ms).
    pub latency: Vec<f64>,
    /// Bursts lost in that time.
    pub lost: usize,
    /// Default ffmpeg player: seconds from start to first decoded audio (None: timed out).
    pub first_audio: Vec<Option<f64>>,
    /// Fan-out levels.
    pub levels: Vec<Level>,
}

/// Instruction counts of one qemu configuration.
#[derive(Clone, Debug)]
pub struct Insn {
    /// One of [`INSN_CODECS`].
    pub codec: &'static str,
    /// Load players.
    pub players: usize,
    /// (seconds of audio, total instructions) of the two runs.
    pub runs: Vec<(u64, u64)>,
    /// Players continuous in the longer run / players.
    pub continuous: f64,
}

/// The whole run.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// parec on the monitor: the source's own latency (ms, sorted) and lost bursts.
    pub floor: Vec<f64>,
    /// Bursts lost by parec.
    pub floor_lost: usize,
    /// Per server.
    pub servers: Vec<ServerResult>,
    /// qemu-insn figures (empty when not run).
    pub insn: Vec<Insn>,
    /// Why the qemu part did not run, if it did not.
    pub insn_note: Option<String>,
    /// Servers that could not be measured (zerocast without an AAC encoder): label, why.
    pub unavailable: Vec<(String, String)>,
    /// Machine and run facts for the report.
    pub facts: Vec<(String, String)>,
    /// Blocks the generator dropped (pipe full).
    pub dropped_blocks: u64,
}

/// A private PulseAudio server with the null sink `radio`; stopped when dropped.
struct Pulse {
    _server: Proc,
    env: Vec<(String, String)>,
}

impl Pulse {
    fn start(dir: &Path) -> Result<Pulse, String> {
        for sub in ["run", "home"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
            let _ = fs::set_permissions(
                dir.join(sub),
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            );
        }
        let run = dir.join("run").display().to_string();
        let home = dir.join("home").display().to_string();
        let base = vec![
            ("XDG_RUNTIME_DIR".to_owned(), run.clone()),
            ("HOME".to_owned(), home),
        ];
        let server = spawn(
            "pulseaudio",
            &args(&[
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-native-protocol-unix auth-anonymous=1",
            ]),
            &base,
            &dir.join("pulseaudio.log"),
            Stdio3::LOG,
        )?;
        let mut env = base;
        env.push((
            "PULSE_SERVER".to_owned(),
            format!("unix:{run}/pulse/native"),
        ));
        let pactl = |a: &[&str], log: &str| -> bool {
            spawn("pactl", &args(a), &env, &dir.join(log), Stdio3::LOG)
                .map(|mut p| p.succeeded(Duration::from_secs(10)))
                .unwrap_or(false)
        };
        if !procs::wait_until(Duration::from_secs(10), || {
            pactl(&["info"], "pactl-info.log")
        }) {
            return Err(server.failed("did not answer pactl info within 10 s"));
        }
        let sink = [
            "load-module",
            "module-null-sink",
            "sink_name=radio",
            "rate=44100",
            "channels=2",
            "format=s16le",
        ];
        if !pactl(&sink, "pactl-sink.log") {
            return Err(server.failed("could not load module-null-sink"));
        }
        Ok(Pulse {
            _server: server,
            env,
        })
    }

    /// The environment of a capture client: its server and `PULSE_SOURCE=radio.monitor`.
    fn capture_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("PULSE_SOURCE".to_owned(), "radio.monitor".to_owned()));
        env
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// pacat / parec arguments: `first`, then raw 44.1 kHz stereo S16LE with a 20 ms latency target
/// (measuring.md: `--latency-msec=20` keeps pacat's own share at ~15 ms).
fn pa_stream_args(first: &[&str]) -> Vec<String> {
    let mut a = args(first);
    a.extend(args(&[
        "--latency-msec=20",
        "--format=s16le",
        "--rate=44100",
        "--channels=2",
        "--raw",
    ]));
    a
}

fn say(msg: &str) {
    eprintln!("==> {msg}");
}

/// An ffmpeg player of `url` with `input` options, writing 44.1 kHz stereo S16LE to stdout,
/// each packet flushed to the pipe (measuring.md: `-flush_packets 1` for a player on a pipe).
fn player(url: &str, input: &[&str]) -> Vec<String> {
    let mut a = args(&["-nostdin", "-hide_banner", "-loglevel", "error"]);
    a.extend(args(input));
    a.extend(args(&[
        "-i",
        url,
        "-f",
        "s16le",
        "-ac",
        "2",
        "-ar",
        "44100",
        "-flush_packets",
        "1",
        "-",
    ]));
    a
}

/// The low-delay player of measuring.md.
fn low_delay_player(url: &str) -> Vec<String> {
    player(
        url,
        &[
            "-fflags",
            "nobuffer",
            "-flags",
            "low_delay",
            "-probesize",
            "32",
            "-analyzeduration",
            "0",
        ],
    )
}

/// A default-settings player.
fn default_player(url: &str) -> Vec<String> {
    player(url, &[])
}

/// The server processes of one phase: (group label, process).
struct Server {
    url: String,
    procs: Vec<(String, Proc)>,
}

impl Server {
    fn roots(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|(l, p)| (l.clone(), p.pid()))
            .collect()
    }

    fn alive(&mut self) -> Result<(), String> {
        for (_, p) in &mut self.procs {
            if !p.running() {
                return Err(p.failed("exited during the benchmark"));
            }
        }
        Ok(())
    }

    fn stop(mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        // Publisher first (seed), then the server.
        while let Some((label, mut p)) = self.procs.pop() {
            if !p.stop() {
                unclean.push(label);
            }
        }
        unclean
    }
}

fn start_server(kind: Kind, opts: &Opts, pulse: &Pulse, dir: &Path) -> Result<Server, String> {
    let port = procs::free_port()?;
    let url = format!("rtmp://127.0.0.1:{port}/live/audio");
    let env = pulse.capture_env();
    match kind {
        Kind::Seed => {
            let prefix = dir.join("nginx");
            fs::create_dir_all(prefix.join("logs")).map_err(|e| format!("mkdir: {e}"))?;
            let p = prefix.display();
            // The seed's config (live on; record off; chunk_size 4096), one worker (needed for
            // live streaming, measuring.md), enough connections for 1000 players.
            let conf = format!(
                "load_module {NGINX_RTMP_MODULE};\ndaemon off;\nworker_processes 1;\n\
                 worker_rlimit_nofile 8192;\nerror_log {p}/error.log;\npid {p}/nginx.pid;\n\
                 events {{ worker_connections 4096; }}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
                 application live {{ live on; record off; }} }} }}\n"
            );
            let conf_path = prefix.join("nginx.conf");
            fs::write(&conf_path, conf).map_err(|e| format!("write nginx.conf: {e}"))?;
            let mut nginx = spawn(
                "nginx",
                &[
                    "-p".to_owned(),
                    p.to_string(),
                    "-c".to_owned(),
                    conf_path.display().to_string(),
                ],
                &[],
                &dir.join("nginx.log"),
                Stdio3::LOG,
            )?;
            procs::wait_port(port, Duration::from_secs(10), &mut nginx)?;
            // The seed's command, verbatim but for the URL.
            let publisher = spawn(
                "ffmpeg",
                &args(&[
                    "-nostdin",
                    "-hide_banner",
                    "-f",
                    "alsa",
                    "-ac",
                    "2",
                    "-i",
                    "pulse",
                    "-ar",
                    "44100",
                    "-f",
                    "flv",
                    &url,
                ]),
                &env,
                &dir.join("seed-ffmpeg.log"),
                Stdio3::LOG,
            )?;
            let mut server = Server {
                url,
                procs: vec![
                    ("nginx".to_owned(), nginx),
                    ("ffmpeg".to_owned(), publisher),
                ],
            };
            if !procs::wait_until(Duration::from_secs(15), || {
                server.procs[1].1.log().contains("time=")
            }) {
                server.alive()?;
                return Err(server.procs[1].1.failed("sent no audio within 15 s"));
            }
            Ok(server)
        }
        Kind::Icecast => start_icecast(port, &env, dir),
        Kind::Floor => {
            // Beside zerocast-load, from the same build.
            let bin = Path::new(&opts.load).with_file_name("zerocast-floor");
            let mut floor = spawn(
                &bin.display().to_string(),
                &args(&["--listen", &format!("127.0.0.1:{port}")]),
                &[],
                &dir.join("floor.log"),
                Stdio3::LOG,
            )?;
            procs::wait_port(port, Duration::from_secs(10), &mut floor)?;
            Ok(Server {
                url: format!("http://127.0.0.1:{port}/floor.mp3"),
                procs: vec![("floor".to_owned(), floor)],
            })
        }
        Kind::Zerocast(codec)
        | Kind::ZerocastTone(codec)
        | Kind::ZerocastFake(codec)
        | Kind::ZerocastHttp(codec) => {
            let listen = format!("127.0.0.1:{port}");
            let (source, env) = match kind {
                Kind::ZerocastTone(_) => ("tone", env),
                Kind::ZerocastFake(_) => ("alsa:fake", vec![fake_card_conf(opts, dir)?]),
                _ => ("alsa:pulse", env),
            };
            let http_port = match kind {
                Kind::ZerocastHttp(_) => Some(procs::free_port()?),
                _ => None,
            };
            let http = http_port.map_or("off".to_owned(), |p| format!("127.0.0.1:{p}"));
            let mut zc = spawn(
                &opts.zerocast,
                &args(&[
                    "--listen",
                    &listen,
                    "--source",
                    source,
                    "--codec",
                    codec,
                    "--http",
                    &http,
                    "--http-max-clients",
                    "1100",
                    "--max-clients",
                    "1100",
                    // Every load player comes from 127.0.0.1.
                    "--max-per-addr",
                    "1100",
                    "--log-level",
                    "warn",
                ]),
                &env,
                &dir.join("zerocast.log"),
                Stdio3::LOG,
            )?;
            procs::wait_port(port, Duration::from_secs(10), &mut zc)?;
            let url = match http_port {
                Some(p) => {
                    let path = format!("/live/audio.{codec}");
                    wait_mount(p, &path, &mut zc)?;
                    format!("http://127.0.0.1:{p}{path}")
                }
                None => url,
            };
            Ok(Server {
                url,
                procs: vec![("zerocast".to_owned(), zc)],
            })
        }
    }
}

/// Waits until `GET path` on 127.0.0.1:`port` answers 200 (a mount has audio once its source
/// sends some): at most 20 s, and no longer than `owner` runs.
fn wait_mount(port: u16, path: &str, owner: &mut Proc) -> Result<(), String> {
    use std::io::{Read, Write};
    let answers = || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut head = [0u8; 16];
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .and_then(|()| s.read_exact(&mut head))
            .is_ok()
            && String::from_utf8_lossy(&head).contains(" 200 ")
    };
    if procs::wait_until(Duration::from_secs(20), || answers() || !owner.running())
        && owner.running()
    {
        Ok(())
    } else {
        Err(owner.failed(&format!("{path} did not answer 200 within 20 s")))
    }
}

/// Icecast2 on 127.0.0.1:`port` and DarkIce feeding it `/live/audio.mp3` from ALSA `pulse`
/// (`env`: the capture environment), each with a configuration written into `dir`. Icecast
/// refuses to run as root: as root, `<changeowner>` makes it drop to the Debian package's
/// `icecast2` user once its socket is bound (its log directory is that user's).
fn start_icecast(port: u16, env: &[(String, String)], dir: &Path) -> Result<Server, String> {
    use std::os::unix::fs::MetadataExt;
    let logs = dir.join("icecast-logs");
    fs::create_dir_all(&logs).map_err(|e| format!("mkdir: {e}"))?;
    let root = fs::metadata("/proc/self")
        .map_err(|e| format!("/proc/self: {e}"))?
        .uid()
        == 0;
    let owner = if root {
        let chown = std::process::Command::new("chown")
            .args(["icecast2:icecast", &logs.display().to_string()])
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !chown.success() {
            return Err(format!(
                "chown icecast2:icecast {} failed: no icecast2 user (package icecast2)?",
                logs.display()
            ));
        }
        "<changeowner><user>icecast2</user><group>icecast</group></changeowner>"
    } else {
        ""
    };
    let share = "/usr/share/icecast2";
    // Debian's icecast.xml limits and burst (64 KiB burst-on-connect), room for the players.
    let conf = format!(
        "<icecast>\n<location>bench</location><admin>bench@localhost</admin>\n\
         <limits><clients>1100</clients><sources>2</sources><queue-size>524288</queue-size>\
         <client-timeout>30</client-timeout><header-timeout>15</header-timeout>\
         <source-timeout>10</source-timeout><burst-on-connect>1</burst-on-connect>\
         <burst-size>65535</burst-size></limits>\n\
         <authentication><source-password>bench</source-password>\
         <relay-password>bench</relay-password><admin-user>admin</admin-user>\
         <admin-password>bench</admin-password></authentication>\n\
         <hostname>127.0.0.1</hostname>\n\
         <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>\n\
         <fileserve>1</fileserve>\n\
         <paths><basedir>{share}</basedir><logdir>{logs}</logdir><webroot>{share}/web</webroot>\
         <adminroot>{share}/admin</adminroot></paths>\n\
         <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog>\
         <loglevel>3</loglevel></logging>\n\
         <security><chroot>0</chroot>{owner}</security>\n</icecast>\n",
        logs = logs.display()
    );
    let conf_path = dir.join("icecast.xml");
    fs::write(&conf_path, conf).map_err(|e| format!("write icecast.xml: {e}"))?;
    let mut icecast = spawn(
        "icecast2",
        &args(&["-c", &conf_path.display().to_string()]),
        &[],
        &dir.join("icecast.log"),
        Stdio3::LOG,
    )?;
    procs::wait_port(port, Duration::from_secs(10), &mut icecast)?;
    // DarkIce with the seed's encoding (MP3 128k CBR, 44.1 kHz stereo) and a 1 s buffer
    // (measuring.md's reference); `device = pulse` is ALSA's pulse plugin, as the seed's ffmpeg.
    let darkice_conf = format!(
        "[general]\nduration = 0\nbufferSecs = 1\nreconnect = yes\n\n\
         [input]\ndevice = pulse\nsampleRate = 44100\nbitsPerSample = 16\nchannel = 2\n\n\
         [icecast2-0]\nbitrateMode = cbr\nformat = mp3\nbitrate = 128\nserver = 127.0.0.1\n\
         port = {port}\npassword = bench\nmountPoint = live/audio.mp3\nname = bench\n"
    );
    let darkice_path = dir.join("darkice.cfg");
    fs::write(&darkice_path, darkice_conf).map_err(|e| format!("write darkice.cfg: {e}"))?;
    let darkice = spawn(
        "darkice",
        &args(&["-c", &darkice_path.display().to_string()]),
        env,
        &dir.join("darkice.log"),
        Stdio3::LOG,
    )?;
    let mut server = Server {
        url: format!("http://127.0.0.1:{port}/live/audio.mp3"),
        procs: vec![
            ("icecast".to_owned(), icecast),
            ("darkice".to_owned(), darkice),
        ],
    };
    if let Err(e) = wait_mount(port, "/live/audio.mp3", &mut server.procs[1].1) {
        server.alive()?;
        return Err(e);
    }
    Ok(server)
}

/// Writes an alsa-lib configuration defining `pcm.fake` as the fake card; returns the
/// `ALSA_CONFIG_PATH` setting that selects it.
fn fake_card_conf(opts: &Opts, dir: &Path) -> Result<(String, String), String> {
    let lib = opts
        .fake_card
        .as_ref()
        .ok_or("no --fake-card plugin given")?;
    let path = dir.join("asound.conf");
    let conf = format!(
        "</usr/share/alsa/alsa.conf>\npcm_type.zcfake {{ lib \"{lib}\" }}\n\
         pcm.fake {{ type zcfake }}\n"
    );
    fs::write(&path, conf).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(("ALSA_CONFIG_PATH".to_owned(), path.display().to_string()))
}

/// Seconds from starting a default-settings ffmpeg player to its first decoded byte.
fn first_audio(url: &str, dir: &Path, n: usize) -> Result<Option<f64>, String> {
    let mut player = spawn(
        "ffmpeg",
        &default_player(url),
        &[],
        &dir.join(format!("default-player-{n}.log")),
        Stdio3 {
            stdin_piped: false,
            stdout_piped: true,
        },
    )?;
    let started = Instant::now();
    let mut out = player.take_stdout().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        use std::io::Read;
        let mut b = [0u8; 4096];
        if matches!(out.read(&mut b), Ok(n) if n > 0) {
            let _ = tx.send(Instant::now());
        }
        // Keep draining so the player never blocks on a full pipe until it is stopped.
        while matches!(out.read(&mut b), Ok(n) if n > 0) {}
    });
    let got = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(at) => Some((at - started).as_secs_f64()),
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
    };
    player.stop();
    Ok(got)
}

/// Runs zerocast-load with `players` until its stdin closes; returns it, its stdin and lines.
struct LoadRun {
    proc: Proc,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

fn start_load(
    opts: &Opts,
    url: &str,
    players: usize,
    max_secs: u64,
    extra: &[&str],
    log: &Path,
) -> Result<LoadRun, String> {
    let mut a = args(&[
        "--url",
        url,
        "--players",
        &players.to_string(),
        "--duration",
        &max_secs.to_string(),
        "--stop-on-eof",
    ]);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut proc = spawn(
        &opts.load,
        &a,
        &[],
        log,
        Stdio3 {
            stdin_piped: true,
            stdout_piped: true,
        },
    )?;
    let stdin = proc.take_stdin();
    let lines = procs::line_reader(proc.take_stdout().ok_or("no stdout")?);
    Ok(LoadRun { proc, stdin, lines })
}

impl LoadRun {
    /// Waits for the `ready` line.
    fn ready(&mut self, limit: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(limit) {
            Ok(line) if line.starts_with("ready") => Ok(line),
            Ok(line) => Err(format!("zerocast-load said {line:?} instead of ready")),
            Err(_) => Err(self.proc.failed("was not ready in time")),
        }
    }

    /// Ends the run (closes its stdin) and parses the summary.
    fn finish(mut self, limit: Duration) -> Result<BTreeMap<String, f64>, String> {
        self.stdin.take();
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("summary ") => {
                    self.proc.wait(Duration::from_secs(5));
                    return Ok(parse_summary(&line));
                }
                Ok(_) => {}
                Err(_) => return Err(self.proc.failed("printed no summary")),
            }
        }
    }
}

fn parse_summary(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Per process group: CPU seconds (schedstat, exact) and the (utime, stime) ticks in seconds,
/// which only give the kernel's share.
fn cpu_by_group(roots: &[(String, u32)], ticks: f64) -> BTreeMap<String, (f64, (f64, f64))> {
    roots
        .iter()
        .map(|(l, pid)| {
            (
                l.clone(),
                (
                    procs::cpu_time_exact(&[*pid]),
                    procs::cpu_seconds(&[*pid], ticks),
                ),
            )
        })
        .collect()
}

fn measure_server(
    kind: Kind,
    opts: &Opts,
    plan: &Plan,
    pulse: &Pulse,
    generator: &Generator,
    dir: &Path,
) -> Result<ServerResult, String> {
    let label = kind.label();
    let dir = dir.join(&label);
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir: {e}"))?;
    say(&format!("{label}: starting"));
    let mut server = start_server(kind, opts, pulse, &dir)?;
    let ticks = procs::clock_ticks();
    let mut result = ServerResult {
        label: label.clone(),
        ..ServerResult::default()
    };
    let markers = kind.markers();
    // The marker player stays for the whole phase.
    let mut marker_player = None;
    let mut detector = None;
    if markers {
        let mut player = spawn(
            "ffmpeg",
            &low_delay_player(&server.url),
            &[],
            &dir.join("marker-player.log"),
            Stdio3 {
                stdin_piped: false,
                stdout_piped: true,
            },
        )?;
        detector = Some(Detector::start(player.take_stdout().ok_or("no stdout")?));
        marker_player = Some(player);
        thread::sleep(plan.marker_warm_up);
    }
    let marker_from = Instant::now();
    for n in 0..if markers { plan.default_runs } else { 0 } {
        let t = first_audio(&server.url, &dir, n)?;
        say(&format!(
            "{label}: default ffmpeg player, first audio after {}",
            t.map_or("> 15 s".to_owned(), |t| format!("{t:.2} s"))
        ));
        result.first_audio.push(t);
    }
    if markers {
        say(&format!(
            "{label}: marker player alone for {:?}",
            plan.latency_window
        ));
        thread::sleep(plan.latency_window);
    }
    let mut windows = Vec::new();
    for players in kind.levels(plan) {
        server.alive()?;
        let max = 60 + plan.window.as_secs() * 2;
        let mut load = start_load(
            opts,
            &server.url,
            players,
            max,
            &[],
            &dir.join(format!("load-{players}.log")),
        )?;
        let ready = load.ready(Duration::from_secs(40))?;
        thread::sleep(plan.settle);
        let roots = server.roots();
        let cpu0 = cpu_by_group(&roots, ticks);
        let pids: Vec<u32> = roots.iter().map(|(_, p)| *p).collect();
        let switches0 = procs::context_switches(&pids);
        let busy0 = procs::machine_jiffies();
        let t0 = Instant::now();
        thread::sleep(plan.window);
        let cpu1 = cpu_by_group(&roots, ticks);
        let busy1 = procs::machine_jiffies();
        let switches1 = procs::context_switches(&pids);
        let t1 = Instant::now();
        let memory = procs::memory(&pids);
        let secs = (t1 - t0).as_secs_f64();
        let summary = load.finish(Duration::from_secs(30))?;
        let level = Level {
            players,
            cpu_per_min: cpu1
                .iter()
                .map(|(l, (t, _))| {
                    let t0 = cpu0.get(l).map_or(0.0, |c| c.0);
                    (l.clone(), (t - t0) / secs * 60.0)
                })
                .collect(),
            // The ticks' kernel share of the exact time.
            kernel_per_min: cpu1
                .iter()
                .map(|(l, (t, (u, k)))| {
                    let (t0, (u0, k0)) = cpu0.get(l).copied().unwrap_or_default();
                    let ticks = u + k - u0 - k0;
                    let share = if ticks > 0.0 { (k - k0) / ticks } else { 0.0 };
                    (t - t0) * share
                })
                .sum::<f64>()
                / secs
                * 60.0,
            memory,
            load: summary,
            busy: procs::busy_fraction(busy0, busy1),
            switches_per_s: switches1.saturating_sub(switches0) as f64 / secs,
            ..Level::default()
        };
        say(&format!(
            "{label}: {players} players ({ready}): cpu {:.3} s/min, rss {} KiB, pss {} KiB, continuous {}/{players}",
            level.cpu_total(),
            level.memory.rss_kib,
            level.memory.pss_kib,
            level.load.get("continuous").copied().unwrap_or(0.0)
        ));
        windows.push((t0, t1));
        result.levels.push(level);
    }
    server.alive()?;
    if let Some(mut player) = marker_player {
        player.stop();
    }
    let Some(detector) = detector else {
        server.stop();
        return Ok(result);
    };
    let (arrivals, _) = detector.finish();
    let emissions = generator.emissions();
    let first_window_end = windows.first().map_or_else(Instant::now, |w| w.1);
    let (lat, lost) = marker::latencies(&emissions, &arrivals, marker_from, first_window_end);
    result.latency = lat;
    result.lost = lost;
    for (level, (t0, t1)) in result.levels.iter_mut().zip(windows) {
        let (lat, lost) = marker::latencies(&emissions, &arrivals, t0, t1);
        level.latency = lat;
        level.lost = lost;
    }
    say(&format!(
        "{label}: low-delay player latency median {:.0} ms, p95 {:.0} ms ({} bursts, {} lost)",
        marker::percentile(&result.latency, 50.0),
        marker::percentile(&result.latency, 95.0),
        result.latency.len(),
        result.lost
    ));
    let unclean = server.stop();
    if !unclean.is_empty() {
        say(&format!("{label}: needed SIGKILL: {unclean:?}"));
    }
    Ok(result)
}

/// The source's own floor: parec on the monitor, the only reader.
fn measure_floor(
    plan: &Plan,
    pulse: &Pulse,
    generator: &Generator,
    dir: &Path,
) -> Result<(Vec<f64>, usize), String> {
    say("source floor: parec on radio.monitor");
    let mut parec = spawn(
        "parec",
        &pa_stream_args(&["--device=radio.monitor"]),
        &pulse.env,
        &dir.join("parec.log"),
        Stdio3 {
            stdin_piped: false,
            stdout_piped: true,
        },
    )?;
    let detector = Detector::start(parec.take_stdout().ok_or("no stdout")?);
    let from = Instant::now() + Duration::from_secs(1);
    thread::sleep(plan.floor);
    let to = Instant::now();
    parec.stop();
    let (arrivals, _) = detector.finish();
    let (lat, lost) = marker::latencies(&generator.emissions(), &arrivals, from, to);
    say(&format!(
        "source floor: median {:.0} ms, p95 {:.0} ms ({} bursts, {lost} lost)",
        marker::percentile(&lat, 50.0),
        marker::percentile(&lat, 95.0),
        lat.len()
    ));
    Ok((lat, lost))
}

/// Instructions of the static armv6 zerocast under `qemu-arm -cpu arm1176` with qemu-insn,
/// serving its 440 Hz tone to `players` load players for `secs` seconds from the moment all of
/// them play; then SIGTERM (zerocast ends every stream and exits normally, and the plugin
/// prints its count).
fn insn_run(
    opts: &Opts,
    musl: &str,
    plugin: &str,
    codec: &'static str,
    players: usize,
    secs: u64,
    dir: &Path,
) -> Result<(u64, f64), String> {
    let port = procs::free_port()?;
    let tag = format!("{codec}-{players}p-{secs}s");
    let insn_log = dir.join(format!("insn-{tag}.txt"));
    let listen = format!("127.0.0.1:{port}");
    let mut qemu = spawn(
        "qemu-arm",
        &args(&[
            "-cpu",
            "arm1176",
            "-plugin",
            plugin,
            "-d",
            "plugin",
            "-D",
            &insn_log.display().to_string(),
            musl,
            "--listen",
            &listen,
            "--source",
            "tone:440",
            "--codec",
            codec,
            "--http",
            "off",
            "--max-clients",
            "200",
            "--max-per-addr",
            "200",
            "--log-level",
            "warn",
        ]),
        &[],
        &dir.join(format!("qemu-{tag}.log")),
        Stdio3::LOG,
    )?;
    procs::wait_port(port, Duration::from_secs(30), &mut qemu)?;
    let url = format!("rtmp://{listen}/live/audio");
    let mut load = start_load(
        opts,
        &url,
        players,
        secs + 60,
        &["--until-ended"],
        &dir.join(format!("load-{tag}.log")),
    )?;
    load.ready(Duration::from_secs(60))?;
    thread::sleep(Duration::from_secs(secs));
    qemu.signal(nix::sys::signal::Signal::SIGTERM);
    if !qemu.wait(Duration::from_secs(30)) {
        return Err(qemu.failed("did not exit on SIGTERM"));
    }
    let summary = load.finish(Duration::from_secs(30))?;
    let text = fs::read_to_string(&insn_log).unwrap_or_default();
    let total = text
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("total=")?.parse::<u64>().ok())
        .ok_or_else(|| qemu.failed(&format!("no total= in {}", insn_log.display())))?;
    let continuous = summary.get("continuous").copied().unwrap_or(0.0) / players as f64;
    say(&format!(
        "qemu-insn {tag}: {total} instructions ({:.2} M/s of audio), continuous {:.0}%",
        total as f64 / secs as f64 / 1e6,
        continuous * 100.0
    ));
    Ok((total, continuous))
}

fn measure_insn(opts: &Opts, plan: &Plan, dir: &Path) -> Result<Vec<Insn>, String> {
    let (Some(musl), Some(plugin)) = (&opts.musl, &opts.plugin) else {
        return Ok(Vec::new());
    };
    let dir = dir.join("qemu-insn");
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir: {e}"))?;
    let mut out = Vec::new();
    for &codec in &opts.musl_codecs {
        for &players in &plan.insn_players {
            let mut insn = Insn {
                codec,
                players,
                runs: Vec::new(),
                continuous: 0.0,
            };
            for secs in [plan.insn_secs.0, plan.insn_secs.1] {
                let (total, continuous) = insn_run(opts, musl, plugin, codec, players, secs, &dir)?;
                insn.runs.push((secs, total));
                insn.continuous = continuous;
            }
            out.push(insn);
        }
    }
    Ok(out)
}

fn facts(opts: &Opts) -> Vec<(String, String)> {
    let cmd = |p: &str, a: &[&str]| {
        std::process::Command::new(p)
            .args(a)
            .output()
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr);
                s.lines().next().unwrap_or_default().trim().to_owned()
            })
            .unwrap_or_default()
    };
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    vec![
        ("cpu".into(), format!("{model}, {cores} cores")),
        (
            "memory".into(),
            mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        ),
        ("kernel".into(), cmd("uname", &["-r"])),
        ("ffmpeg".into(), cmd("ffmpeg", &["-version"])),
        ("nginx".into(), cmd("nginx", &["-v"])),
        ("icecast2".into(), cmd("icecast2", &["-v"])),
        ("darkice".into(), cmd("darkice", &["-h"])),
        ("pulseaudio".into(), cmd("pulseaudio", &["--version"])),
        ("qemu".into(), cmd("qemu-arm", &["--version"])),
        ("load average at start".into(), load.trim().to_owned()),
        (
            "mode".into(),
            if opts.quick {
                "quick (BENCH_QUICK=1)".into()
            } else {
                "full".into()
            },
        ),
    ]
}

fn run(opts: &Opts) -> Result<Results, String> {
    let plan = Plan::new(opts.quick);
    for tool in [
        "pulseaudio",
        "pactl",
        "pacat",
        "parec",
        "ffmpeg",
        "nginx",
        NGINX_RTMP_MODULE,
    ] {
        if !procs::have(tool) {
            return Err(format!(
                "{tool} is not installed (ci/run.sh setup installs it)"
            ));
        }
    }
    let dir = opts.out.join("run");
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("clean {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let mut results = Results {
        facts: facts(opts),
        ..Results::default()
    };
    let started = Instant::now();
    let servers: Vec<Kind> = plan
        .servers
        .iter()
        .copied()
        .filter(|kind| opts.wanted(&kind.label()))
        .collect();
    if !servers.is_empty() {
        say("PulseAudio with a null sink, marker signal through pacat --latency-msec=20");
        let pulse = Pulse::start(&dir.join("pulse"))?;
        let mut pacat = spawn(
            "pacat",
            &pa_stream_args(&["--playback", "--device=radio"]),
            &pulse.env,
            &dir.join("pacat.log"),
            Stdio3 {
                stdin_piped: true,
                stdout_piped: false,
            },
        )?;
        let generator = Generator::start(pacat.take_stdin().ok_or("no pacat stdin")?)?;
        // pacat stalls ~1.5 s at start; the first burst comes at 3 s.
        thread::sleep(Duration::from_secs(4));
        let (floor, floor_lost) = measure_floor(&plan, &pulse, &generator, &dir)?;
        results.floor = floor;
        results.floor_lost = floor_lost;
        for &kind in &servers {
            if matches!(kind, Kind::ZerocastFake(_)) && opts.fake_card.is_none() {
                results
                    .unavailable
                    .push((kind.label(), "no --fake-card plugin given".to_owned()));
                continue;
            }
            if let Some(tool) = (kind == Kind::Icecast)
                .then(|| {
                    ["icecast2", "darkice"]
                        .into_iter()
                        .find(|t| !procs::have(t))
                })
                .flatten()
            {
                // Outside CI a skip with a note; in CI every number must be measured.
                let why = format!("{tool} is not installed (ci/run.sh setup installs it)");
                if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
                    return Err(why);
                }
                say(&format!("{}: skipped: {why}", kind.label()));
                results.unavailable.push((kind.label(), why));
                continue;
            }
            match measure_server(kind, opts, &plan, &pulse, &generator, &dir) {
                Ok(r) => results.servers.push(r),
                // The AAC slot: measured once zerocast has the encoder, reported until then.
                Err(e) if kind == Kind::Zerocast("aac") => {
                    say(&format!("{}: not measured: {e}", kind.label()));
                    results.unavailable.push((kind.label(), e));
                }
                Err(e) => return Err(e),
            }
        }
        results.dropped_blocks = generator.dropped();
        drop(generator);
        pacat.stop();
    }
    match (&opts.musl, &opts.plugin) {
        _ if !opts.wanted(INSN_PART) => {
            results.insn_note = Some(format!("not run: not in --only (add {INSN_PART})"))
        }
        (Some(_), Some(_)) => {
            say("qemu-insn: static armv6 zerocast under qemu-arm -cpu arm1176");
            results.insn = measure_insn(opts, &plan, &dir)?;
        }
        _ => {
            results.insn_note =
                Some("not run: no static armv6 binary or qemu-insn plugin given".to_owned())
        }
    }
    results.facts.push((
        "run time".into(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    ));
    Ok(results)
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        quick: std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"),
        out: PathBuf::from("target/bench"),
        zerocast: "target/release/zerocast".into(),
        load: "target/release/zerocast-load".into(),
        musl: None,
        plugin: None,
        fake_card: None,
        only: Vec::new(),
        musl_codecs: vec!["pcm", "adpcm"],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--out" => o.out = PathBuf::from(v()?),
            "--zerocast" => o.zerocast = v()?,
            "--load" => o.load = v()?,
            "--musl" => o.musl = Some(v()?),
            "--plugin" => o.plugin = Some(v()?),
            "--fake-card" => o.fake_card = Some(v()?),
            "--only" => o.only = v()?.split(',').map(str::to_owned).collect(),
            "--musl-codecs" => {
                let list = v()?;
                let asked: Vec<&str> = list.split(',').collect();
                if let Some(bad) = asked.iter().find(|c| !INSN_CODECS.contains(c)) {
                    return Err(format!(
                        "--musl-codecs: {bad} is not one of {INSN_CODECS:?}"
                    ));
                }
                o.musl_codecs = INSN_CODECS
                    .into_iter()
                    .filter(|c| asked.contains(c))
                    .collect();
            }
            _ => {
                return Err(format!(
                    "unknown argument {a}; usage: zerocast-bench [--quick] [--out DIR] \
                     [--zerocast BIN] [--load BIN] [--musl ARMV6_BIN --plugin LIBINSN_SO \
                     [--musl-codecs pcm,adpcm,aac,mp3]] [--fake-card LIBZCFAKE_SO] \
                     [--only LABEL,...|{INSN_PART}]"
                ))
            }
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("zerocast-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(results) => {
            let text = report::markdown(&results);
            println!("{text}");
            let path = opts.out.join("results.md");
            if let Err(e) = fs::write(&path, &text) {
                eprintln!("zerocast-bench: write {}: {e}", path.display());
            } else {
                eprintln!("==> written to {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zerocast-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
