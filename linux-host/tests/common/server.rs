//! The RTMP server under test, chosen by [`start_server`]: the zerocast binary, or the
//! nginx-rtmp + ffmpeg pair it replaces (the baseline the harness is validated against).

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::process::{self, Spawned};
use super::{tools_available, HarnessError};

/// Path of the nginx-rtmp dynamic module as installed by Debian's `libnginx-mod-rtmp`.
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
/// Stream path every server publishes (zerocast's default, `live/audio`).
pub const STREAM: &str = "live/audio";
/// Frequency of the test tone every server sends.
pub const TONE_HZ: f64 = 440.0;
/// zerocast's `--period-ms`: one capture period, the largest gap a player may see.
pub const PERIOD_MS: u64 = 20;
/// zerocast's `--join-ms`: audio a new player gets at once from the server's ring.
pub const ZEROCAST_JOIN_MS: u64 = 300;

/// How long a server may take to listen, and nginx's publisher to get audio flowing.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// The audio codec carried in FLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// 16-bit little-endian PCM (FLV SoundFormat 3).
    Pcm,
    /// SWF ADPCM (FLV SoundFormat 1).
    Adpcm,
    /// AAC-LC (FLV SoundFormat 10).
    Aac,
    /// MP3 (FLV SoundFormat 2).
    Mp3,
}

impl Codec {
    /// The ffmpeg encoder name (44.1 kHz is the only rate FLV allows both at, protocol-notes §3).
    fn ffmpeg_encoder(self) -> &'static str {
        match self {
            Codec::Pcm => "pcm_s16le",
            Codec::Adpcm => "adpcm_swf",
            Codec::Aac => "aac",
            Codec::Mp3 => "libmp3lame",
        }
    }

    /// The value of zerocast's `--codec`.
    pub fn zerocast_flag(self) -> &'static str {
        match self {
            Codec::Pcm => "pcm",
            Codec::Adpcm => "adpcm",
            Codec::Aac => "aac",
            Codec::Mp3 => "mp3",
        }
    }
}

/// Which server plays the 440 Hz tone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// nginx with libnginx-mod-rtmp, fed by `ffmpeg -re -f lavfi -i sine=f=440` over RTMP.
    Nginx {
        /// What the publisher encodes.
        codec: Codec,
    },
    /// The zerocast binary with its built-in tone source.
    Zerocast {
        /// What zerocast encodes.
        codec: Codec,
    },
}

/// A running server; stops its processes when dropped.
pub struct Server {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The players' URL.
    pub url: String,
    /// Audio a player receives at once on joining, before the live edge: a player recording
    /// for a wall-clock time gets this much more than that time.
    pub join: Duration,
    /// Server first, then helpers (nginx's publisher).
    processes: Vec<Spawned>,
}

/// Starts the server `kind` on a free port, with its config and logs in `dir`, and returns once
/// it accepts connections and (for nginx) its publisher is sending audio.
///
/// Returns `Ok(None)` when a needed tool is missing and `CI` is unset (the test is skipped).
pub fn start_server(kind: ServerKind, dir: &Path) -> Result<Option<Server>, HarnessError> {
    let port = process::free_port()?;
    let url = format!("rtmp://127.0.0.1:{port}/{STREAM}");
    let (processes, join) = match kind {
        ServerKind::Nginx { codec } => {
            if !tools_available(&["nginx", "ffmpeg", NGINX_RTMP_MODULE])? {
                return Ok(None);
            }
            // nginx-rtmp's live application sends each player the stream from the next
            // message on: no backlog.
            (start_nginx(codec, port, &url, dir)?, Duration::ZERO)
        }
        ServerKind::Zerocast { codec } => (
            vec![start_zerocast(codec, port, &[], dir)?],
            Duration::from_millis(ZEROCAST_JOIN_MS),
        ),
    };
    Ok(Some(Server {
        port,
        url,
        join,
        processes,
    }))
}

impl Server {
    /// Fails if any of the server's processes has exited: a crash during the test.
    pub fn check_alive(&mut self) -> Result<(), HarnessError> {
        for process in &mut self.processes {
            if !process.is_running()? {
                return Err(process.failed("exited while players were connected".to_owned()));
            }
        }
        Ok(())
    }

    /// Stops every process with SIGTERM (SIGKILL after a grace time) and fails if the server
    /// needed SIGKILL: it must shut down cleanly on SIGTERM.
    pub fn stop(mut self) -> Result<(), HarnessError> {
        let mut result = Ok(());
        for process in self.processes.iter_mut().rev() {
            let (_, clean) =
                process.stop(nix::sys::signal::Signal::SIGTERM, process::DROP_GRACE)?;
            if !clean && result.is_ok() {
                result = Err(process.failed("ignored SIGTERM".to_owned()));
            }
        }
        result
    }
}

/// nginx with libnginx-mod-rtmp in the foreground on 127.0.0.1:`port`, `application live { live
/// on; }` (the minimal config of the brief: one worker, its files under `dir/nginx`), once it
/// accepts connections. Also the upstream of zerocast's push relay in the tests.
pub fn start_nginx_live(port: u16, dir: &Path) -> Result<Spawned, HarnessError> {
    start_nginx_with(port, dir, "", "")
}

/// [`start_nginx_live`] with `server` directives in its `server` block and `app` directives in
/// `application live` (the hooks' `on_connect`, `on_publish`, ...).
pub fn start_nginx_with(
    port: u16,
    dir: &Path,
    server: &str,
    app: &str,
) -> Result<Spawned, HarnessError> {
    let prefix = dir.join("nginx");
    super::make_dir(&prefix, 0o755)?;
    let p = prefix.display();
    let conf = format!(
        "load_module {NGINX_RTMP_MODULE};\n\
         daemon off;\nmaster_process off;\nworker_processes 1;\n\
         error_log {p}/error.log;\npid {p}/nginx.pid;\n\
         events {{}}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; {server}\n\
         application live {{ live on; record off; {app} }} }} }}\n"
    );
    let conf_path = prefix.join("nginx.conf");
    fs::write(&conf_path, conf)
        .map_err(|e| HarnessError::io(format!("write {}", conf_path.display()), e))?;
    let mut nginx = process::spawn(
        "nginx",
        &[
            "-p".as_ref(),
            prefix.as_os_str(),
            "-c".as_ref(),
            conf_path.as_os_str(),
        ],
        &[],
        &prefix.join("nginx.log"),
    )?;
    process::wait_for_port(port, STARTUP_LIMIT, &mut nginx)?;
    Ok(nginx)
}

fn start_nginx(
    codec: Codec,
    port: u16,
    url: &str,
    dir: &Path,
) -> Result<Vec<Spawned>, HarnessError> {
    let nginx = start_nginx_live(port, dir)?;

    // protocol-notes §4: the publisher that stands in for the capture side.
    let publisher = process::spawn(
        "ffmpeg",
        &[
            "-nostdin",
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            &format!("sine=f={TONE_HZ}"),
            "-ac",
            "2",
            "-ar",
            "44100",
            "-c:a",
            codec.ffmpeg_encoder(),
            "-f",
            "flv",
            url,
        ],
        &[],
        &dir.join("publisher.log"),
    )?;
    // ffmpeg prints its first progress line ("size= … time=") once it has muxed audio, i.e.
    // after nginx answered publish with NetStream.Publish.Start.
    process::wait_until("the publisher to send audio", STARTUP_LIMIT, || {
        Ok(publisher.log().contains("time="))
    })
    .map_err(|e| publisher.failed(e.to_string()))?;
    Ok(vec![nginx, publisher])
}

/// Starts zerocast on `port` with its 440 Hz tone, `codec`, [`ZEROCAST_JOIN_MS`], [`PERIOD_MS`]
/// and `extra` flags, log in `dir`; returns once it accepts connections.
pub fn start_zerocast(
    codec: Codec,
    port: u16,
    extra: &[&str],
    dir: &Path,
) -> Result<Spawned, HarnessError> {
    let listen = format!("127.0.0.1:{port}");
    let join = ZEROCAST_JOIN_MS.to_string();
    let period = PERIOD_MS.to_string();
    let tone = format!("tone:{TONE_HZ}");
    let mut argv = process::zerocast_argv();
    argv.extend(
        [
            "--listen",
            &listen,
            "--source",
            &tone,
            "--stream",
            STREAM,
            "--codec",
            codec.zerocast_flag(),
            "--join-ms",
            &join,
            "--period-ms",
            &period,
        ]
        .map(str::to_owned),
    );
    argv.extend(extra.iter().map(|a| (*a).to_owned()));
    // RTMP only unless asked: HTTP's default port may be taken on a shared machine.
    if !extra.contains(&"--http") {
        argv.extend(["--http".to_owned(), "off".to_owned()]);
    }
    let mut server = process::spawn(
        &argv[0],
        &argv[1..],
        &[("RUST_LOG", "info")],
        &dir.join("zerocast.log"),
    )?;
    process::wait_for_port(port, STARTUP_LIMIT, &mut server)?;
    Ok(server)
}
