//! zerocast, the Linux host: one thread, one mio loop.
//!
//! ```text
//!  data in, one path                          data out, one path
//!  capture (ALSA/stdin/tone) ─ broadcast ─┐                    ┌─> RTMP players   (conn)
//!                         (CaptureEncoder)├─> stream::Stream ──┤
//!  RTMP publishers (conn, session) ───────┘   ring + sticky    └─> push relays    (conn, relay)
//!                                             in hub::Hub
//! ```
//!
//! [`server::Server`] owns the listener, the connection slab and the [`hub::Hub`] (the stream
//! table with the access rules); [`event_loop`] drives it, the capture [`capture::Source`],
//! signals and timers.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audience;
pub mod capture;
pub mod config;
pub mod conn;
pub mod constant_time;
pub mod egress;
pub mod encode;
pub mod event_loop;
pub mod fdlimit;
pub mod formats;
pub mod guesses;
pub mod hooks;
pub mod http;
pub mod hub;
pub mod icecast;
pub mod limits;
pub mod logging;
pub mod names;
pub mod pi_checks;
pub mod record;
pub mod relay;
pub mod rtsp;
pub mod server;
pub mod silence;
pub mod stream;
pub mod systemd;
pub mod waiting;
pub mod worker;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use config::{Invocation, Settings, SourceSpec};
use encode::Rendition;
use event_loop::{EventLoop, Exit, LoopError, Options};
use server::Server;

/// Environment variable overriding the status line interval, in seconds (for tests).
pub const STATUS_SECS_ENV: &str = "ZEROCAST_STATUS_SECS";

/// Runs the program with `args` (without the program name): exit 0 on a signal or end of input,
/// 1 on a runtime error, 2 on a bad command line or config file.
pub fn main_with_args<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let settings = match config::parse_args(args) {
        Ok(Invocation::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("zerocast {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Devices(s)) => {
            let _ = logging::init(s.log_level);
            return match capture::alsa::list_devices(&mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            };
        }
        Ok(Invocation::Run(s)) => s,
        Err(e) => {
            eprintln!("zerocast: {e}");
            return ExitCode::from(2);
        }
    };
    // Only fails if a logger exists already, in which case that one is used.
    let _ = logging::init(settings.log_level);
    for flag in settings.secrets_on_command_line() {
        log::warn!(
            "--{flag} on the command line is visible to every user in `ps`: give it as \
             --{flag} file:PATH or env:NAME, or in the config file"
        );
    }
    match serve(&settings) {
        Ok(Exit::Signal(_) | Exit::SourceEnded) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    log::error!("{e}");
    ExitCode::FAILURE
}

/// Opens the source and runs the loop until a signal or the end of the input.
fn serve(settings: &Settings) -> Result<Exit, String> {
    let options = Options {
        status_interval: std::env::var(STATUS_SECS_ENV)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(Options::default().status_interval, Duration::from_secs),
    };
    let format = capture::Format {
        rate: settings.rate,
        channels: settings.channels,
        period_frames: settings.period_frames(),
        // The capture need not wake the loop more often than players are written to.
        wake_periods: (settings.send_interval_ms / settings.period_ms.max(1)).max(1) as usize,
    };
    // One capture, several renditions: the first codec at the capture stream's name, each
    // other at NAME_CODEC, each encoded once per period whatever the number of listeners.
    let codecs = settings.capture_codecs();
    let codec = codecs.first().copied().ok_or("no codec")?;
    let capture = match settings.source {
        SourceSpec::None => Vec::new(),
        _ => codecs
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let path = if i == 0 {
                    settings.stream.clone()
                } else {
                    settings.stream.rendition(c)
                };
                Rendition::new(
                    c,
                    settings.rate,
                    settings.channels,
                    settings.bitrate_kbps,
                    settings.period_frames(),
                )
                .map(|r| (path.name, r))
                .map_err(|e| format!("codec {c}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    // Checked once, before the listeners (so that they are bound together): `iw` answers in
    // milliseconds (and is killed after 2 s).
    let wifi_power_save = pi_checks::power_saving_interfaces();
    let record_dirs = settings
        .record
        .iter()
        .chain(settings.streams.iter().filter_map(|s| s.record.as_ref()));
    for dir in record_dirs {
        if pi_checks::records_on_the_sd_card(dir) {
            log::warn!(
                "recording into {} on the SD card that holds the system wears it out: record \
                 to a USB stick or disk (docs/deploy-pi.md)",
                dir.display()
            );
        }
    }
    let server_options = server::Options::from_settings(settings)?;
    let mut server = Server::bind(
        settings.listen,
        server_options,
        capture,
        settings.clone(),
        event_loop::FIRST_FREE_TOKEN,
    )
    .map_err(|e| listen_error("--listen", settings.listen, &e))?;
    // Before HTTP: the HTTP listener's token follows the connection slots RTSP adds to.
    if let Some(addr) = settings.rtsp.listen {
        let bound = server
            .listen_rtsp(addr, settings.rtsp.max_clients as usize)
            .map_err(|e| listen_error("--rtsp", addr, &e))?;
        log::info!("serving rtsp://{bound}/APP/NAME (AAC, MP3 and PCM streams)");
    }
    if let Some(addr) = settings.http.listen {
        let options = server::HttpOptions {
            wifi_power_save,
            ..server::HttpOptions::from_settings(settings)
        };
        match server.listen_http(addr, options) {
            Ok(bound) => {
                log::info!("serving http://{bound}/ (streams at /APP/NAME.EXT, the page at /)")
            }
            // The default port taken (another zerocast, an Icecast) must not stop RTMP.
            Err(e) if Some(addr) == config::Http::default().listen => log::warn!(
                "no HTTP listeners: {}",
                listen_error("--http ADDR:PORT, or --http off", addr, &e)
            ),
            Err(e) => return Err(listen_error("--http", addr, &e)),
        }
    }
    fdlimit::raise_nofile(server.descriptors_needed());
    log::info!(
        "zerocast {} serving rtmp://{}/{} source={} rate={} channels={} period={} ms codec={}",
        env!("CARGO_PKG_VERSION"),
        settings.listen,
        settings.stream,
        settings.source,
        settings.rate,
        settings.channels,
        settings.period_ms,
        codec,
    );
    let loop_error = |e: LoopError| match e {
        LoopError::Capture(e) => format!("source {}: {e}", settings.source),
        e => e.to_string(),
    };
    EventLoop::new(&settings.source, format, server, options)
        .map_err(loop_error)?
        .run()
        .map_err(loop_error)
}

/// What a user can do about a listen error.
fn listen_error(flag: &str, addr: std::net::SocketAddr, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => &format!(
            " (port in use: is another zerocast, nginx-rtmp or Icecast running? pick another \
             with {flag})"
        ),
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (no such local address)",
        _ => "",
    };
    format!("cannot listen on {addr}: {e}{hint}")
}
