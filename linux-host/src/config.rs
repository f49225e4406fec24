//! Command line and configuration file.
//!
//! Precedence, lowest first: built-in defaults (chosen to work on a Pi Zero with a USB card),
//! the TOML file named by `--config`, then flags. The file uses the flag names with `_` for `-`
//! (`join_ms = 500`); an unknown key, an unknown flag or a bad value is an error that names it,
//! because a silently ignored typo in a service's config is found only when nobody can hear it.
//!
//! `ConfigError` holds owned strings, unlike the `Copy` error enums elsewhere: its whole job is
//! to quote back the flag, key or value the user wrote, which a `Copy` type cannot carry.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use log::LevelFilter;
use serde::Deserialize;

/// Where the PCM comes from (`--source`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// An ALSA capture PCM by name: `hw:1,0`, `plughw:CARD=Device,DEV=0`, `default`, `pulse`.
    Alsa(String),
    /// Raw interleaved S16_LE on standard input, paced by whoever writes it.
    Stdin,
    /// A sine test tone at `hz`, paced by the monotonic clock.
    Tone {
        /// Frequency in hertz.
        hz: u32,
    },
}

impl SourceSpec {
    /// The default test tone frequency (concert A).
    pub const DEFAULT_TONE_HZ: u32 = 440;

    /// Parses `alsa:DEVICE`, `stdin` or `tone[:HZ]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(device) = s.strip_prefix("alsa:") {
            if device.is_empty() || device.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err("an ALSA device name such as alsa:hw:1,0 or alsa:default".into());
            }
            return Ok(Self::Alsa(device.to_owned()));
        }
        match s {
            "stdin" => Ok(Self::Stdin),
            "tone" => Ok(Self::Tone {
                hz: Self::DEFAULT_TONE_HZ,
            }),
            _ => match s.strip_prefix("tone:").map(str::parse::<u32>) {
                Some(Ok(hz)) if (1..=20_000).contains(&hz) => Ok(Self::Tone { hz }),
                Some(_) => Err("tone:HZ with HZ a whole number from 1 to 20000".into()),
                None => Err("alsa:DEVICE, stdin or tone[:HZ]".into()),
            },
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Alsa(device) => write!(f, "alsa:{device}"),
            Self::Stdin => f.write_str("stdin"),
            Self::Tone { hz } => write!(f, "tone:{hz}"),
        }
    }
}

/// The audio codec sent to players (`--codec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// FLV SoundFormat 3, 16-bit little-endian PCM: 1411 kbit/s at 44.1 kHz stereo.
    Pcm,
    /// FLV SoundFormat 1, SWF ADPCM at 4 bits: ~353 kbit/s at 44.1 kHz stereo, a quarter of PCM,
    /// for about 6 M instructions per second on the Pi Zero — the default, because Wi-Fi on a Pi
    /// Zero is the scarce resource, not the CPU.
    Adpcm,
    /// FLV SoundFormat 10, AAC-LC through FDK (cargo feature `aac`), any capture rate FDK takes.
    Aac,
    /// FLV SoundFormat 2, MP3 through LAME (cargo feature `mp3`).
    Mp3,
}

impl Codec {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "pcm" => Ok(Self::Pcm),
            "adpcm" => Ok(Self::Adpcm),
            "aac" => Ok(Self::Aac),
            "mp3" => Ok(Self::Mp3),
            _ => Err("pcm, adpcm, aac or mp3".into()),
        }
    }

    /// The capture rates this codec can be served from. FLV's legacy 2-bit rate field only has
    /// 5512/11025/22050/44100 (FLV spec v10.1 E.4.2.1; ffmpeg flvdec `44100 << idx >> 3`), and
    /// ffmpeg's adpcm_swf encoder refuses 5512 (shared/protocol-notes.md section 3); 48000 is
    /// resampled to 44100 for PCM, ADPCM and MP3 (`encode::Rendition`). AAC carries its rate in
    /// the AudioSpecificConfig: the rates FDK's AAC-LC encoder takes.
    pub fn rates(self) -> &'static [u32] {
        match self {
            Self::Pcm => &[5512, 11025, 22050, 44100, 48000],
            Self::Adpcm => &[11025, 22050, 44100, 48000],
            Self::Aac => &[8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000],
            Self::Mp3 => &[44100, 48000],
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pcm => "pcm",
            Self::Adpcm => "adpcm",
            Self::Aac => "aac",
            Self::Mp3 => "mp3",
        })
    }
}

/// An address block in CIDR notation (`192.168.1.0/24`, `::1/128`, or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare `ADDR` (a single host).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "an address or CIDR block like 127.0.0.0/8 or ::1".to_owned())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix.map(str::parse::<u8>) {
            None => max,
            Some(Ok(p)) if p <= max => p,
            Some(_) => return Err(format!("a prefix length from 0 to {max}")),
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in this block. An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, what a
    /// dual-stack socket reports) is compared as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(net.to_bits(), ip.to_bits(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Compares the top `prefix` bits of two `width`-bit numbers held in a `u128`.
fn prefix_match(a: u128, b: u128, prefix: u8, width: u32) -> bool {
    let shift = width.saturating_sub(u32::from(prefix));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The RTMP path players and publishers use: `rtmp://host/APP/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamPath {
    /// The application (`live`): what `connect` names.
    pub app: String,
    /// The stream name (`audio`): what `play` / `publish` name.
    pub name: String,
}

impl StreamPath {
    fn parse(s: &str) -> Result<Self, String> {
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        match s.split_once('/') {
            Some((app, name)) if valid(app) && valid(name) => Ok(Self {
                app: app.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err("APP/NAME, each of letters, digits, '_', '-' or '.'".into()),
        }
    }
}

impl fmt::Display for StreamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// Every setting, after defaults, file and flags are merged and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Address the RTMP server listens on.
    pub listen: SocketAddr,
    /// Where the audio comes from.
    pub source: SourceSpec,
    /// The stream's `APP/NAME`.
    pub stream: StreamPath,
    /// Codec sent to players.
    pub codec: Codec,
    /// How much already-sent audio a new player is given at once so it starts without waiting.
    pub join_ms: u32,
    /// Sample rate in Hz, asked of the capture device exactly.
    pub rate: u32,
    /// 1 or 2.
    pub channels: u8,
    /// Capture period: one period is one audio message.
    pub period_ms: u32,
    /// Connections beyond this are refused.
    pub max_clients: u32,
    /// Log level on stderr.
    pub log_level: LevelFilter,
    /// A connection that has not finished the RTMP handshake by then is closed.
    pub handshake_timeout_ms: u32,
    /// A connection that sends nothing and accepts no data for this long is closed.
    pub idle_timeout_ms: u32,
    /// Peers allowed to publish; playing is open to all.
    pub allow_publish: Vec<Cidr>,
}

impl Settings {
    /// Frames in one capture period (whole frames; `rate * period_ms / 1000`, rounded down).
    pub fn period_frames(&self) -> usize {
        usize::try_from(u64::from(self.rate) * u64::from(self.period_ms) / 1000).unwrap_or(0)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1935),
            source: SourceSpec::Alsa("default".into()),
            stream: StreamPath {
                app: "live".into(),
                name: "audio".into(),
            },
            codec: Codec::Adpcm,
            join_ms: 500,
            rate: 44_100,
            channels: 2,
            period_ms: 20,
            max_clients: 100,
            log_level: LevelFilter::Info,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            allow_publish: vec![
                Cidr {
                    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix: 8,
                },
                Cidr {
                    addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// Run the server.
    Run(Settings),
    /// `zerocast devices`: list ALSA capture devices (log level from the settings).
    Devices(Settings),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// A command line or configuration file the program cannot use, quoting what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A flag that does not exist.
    UnknownFlag(String),
    /// A flag given without its value.
    MissingValue(&'static str),
    /// A value that is not valid for its setting.
    BadValue {
        /// The setting, as the flag names it.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// A positional argument other than the `devices` subcommand.
    UnexpectedArgument(String),
    /// The config file could not be read.
    ReadFile {
        /// The path given to `--config`.
        path: PathBuf,
        /// Why, from the OS.
        reason: String,
    },
    /// The config file is not valid TOML for these settings (syntax, unknown key, wrong type).
    ParseFile {
        /// The path given to `--config`.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFlag(flag) => write!(f, "unknown option '{flag}' (see --help)"),
            Self::MissingValue(flag) => write!(f, "option '--{flag}' needs a value"),
            Self::BadValue {
                setting,
                value,
                expected,
            } => write!(f, "bad value '{value}' for {setting}: expected {expected}"),
            Self::UnexpectedArgument(arg) => {
                write!(
                    f,
                    "unexpected argument '{arg}' (the only subcommand is 'devices')"
                )
            }
            Self::ReadFile { path, reason } => {
                write!(f, "cannot read config file {}: {reason}", path.display())
            }
            Self::ParseFile { path, reason } => {
                write!(f, "config file {}: {}", path.display(), reason.trim_end())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The `--help` text: every setting with its default.
pub const HELP: &str = "\
zerocast: live audio from an ALSA capture device to RTMP players, in one small binary

Usage:
  zerocast [OPTIONS]            capture and serve rtmp://HOST/APP/NAME
  zerocast devices              list ALSA capture devices to pass to --source
  zerocast --version | --help

Options (each can also be set in the --config file, with '_' for '-'):
  --config FILE                 TOML file with these settings; flags override it
  --listen ADDR:PORT            RTMP listen address            [default: 0.0.0.0:1935]
  --source SPEC                 alsa:DEVICE | stdin | tone[:HZ] [default: alsa:default]
                                  alsa:hw:1,0, alsa:plughw:CARD=Device,DEV=0, alsa:pulse, ...
                                  stdin: raw interleaved S16_LE at --rate/--channels
                                  tone: sine at HZ (default 440) at -12 dBFS
  --stream APP/NAME             stream path                    [default: live/audio]
  --codec pcm|adpcm|aac|mp3     codec sent to players          [default: adpcm]
                                  adpcm: 4x smaller than pcm (~353 kbit/s at 44.1 kHz
                                  stereo) for ~9 M instructions/s on a Pi Zero;
                                  aac, mp3: 128 kbit/s, ~47 / ~67 M instructions/s
  --join-ms N                   audio a new player gets at once [default: 500]
  --rate HZ                     sample rate (pcm: 5512/11025/22050/44100,
                                  adpcm: 11025/22050/44100; mp3: 44100; aac:
                                  8000..48000; 48000 for all: AAC keeps it, the
                                  others are resampled to 44100) [default: 44100]
  --channels 1|2                channels                       [default: 2]
  --period-ms N                 capture period, 5..=1000       [default: 20]
  --max-clients N               simultaneous connections       [default: 100]
  --log-level LEVEL             error|warn|info|debug|trace    [default: info]
  --handshake-timeout-ms N      close peers slower than this   [default: 10000]
  --idle-timeout-ms N           close silent peers after this  [default: 60000]
  --allow-publish LIST          comma-separated addresses or CIDR blocks allowed
                                  to publish                   [default: 127.0.0.0/8,::1]
  --version                     print the version
  --help                        print this help
";

/// Every setting as it may appear in the file or on the command line, unvalidated.
/// `deny_unknown_fields` turns a misspelt key into an error naming it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partial {
    listen: Option<String>,
    source: Option<String>,
    stream: Option<String>,
    codec: Option<String>,
    join_ms: Option<u32>,
    rate: Option<u32>,
    channels: Option<u8>,
    period_ms: Option<u32>,
    max_clients: Option<u32>,
    log_level: Option<String>,
    handshake_timeout_ms: Option<u32>,
    idle_timeout_ms: Option<u32>,
    allow_publish: Option<Vec<String>>,
}

impl Partial {
    /// Sets the field `flag` names from its command-line text.
    fn set_flag(&mut self, flag: &'static str, value: String) -> Result<(), ConfigError> {
        match flag {
            "listen" => self.listen = Some(value),
            "source" => self.source = Some(value),
            "stream" => self.stream = Some(value),
            "codec" => self.codec = Some(value),
            "log-level" => self.log_level = Some(value),
            "join-ms" => self.join_ms = Some(number(flag, &value)?),
            "rate" => self.rate = Some(number(flag, &value)?),
            "channels" => self.channels = Some(number(flag, &value)?),
            "period-ms" => self.period_ms = Some(number(flag, &value)?),
            "max-clients" => self.max_clients = Some(number(flag, &value)?),
            "handshake-timeout-ms" => self.handshake_timeout_ms = Some(number(flag, &value)?),
            "idle-timeout-ms" => self.idle_timeout_ms = Some(number(flag, &value)?),
            // `flag` is one of VALUED_FLAGS, all handled above; "allow-publish" is the last.
            _ => self.allow_publish = Some(value.split(',').map(|s| s.trim().to_owned()).collect()),
        }
        Ok(())
    }

    /// `other`'s fields win where present.
    fn overlay(self, other: Partial) -> Partial {
        Partial {
            listen: other.listen.or(self.listen),
            source: other.source.or(self.source),
            stream: other.stream.or(self.stream),
            codec: other.codec.or(self.codec),
            join_ms: other.join_ms.or(self.join_ms),
            rate: other.rate.or(self.rate),
            channels: other.channels.or(self.channels),
            period_ms: other.period_ms.or(self.period_ms),
            max_clients: other.max_clients.or(self.max_clients),
            log_level: other.log_level.or(self.log_level),
            handshake_timeout_ms: other.handshake_timeout_ms.or(self.handshake_timeout_ms),
            idle_timeout_ms: other.idle_timeout_ms.or(self.idle_timeout_ms),
            allow_publish: other.allow_publish.or(self.allow_publish),
        }
    }

    /// Applies the present fields over the defaults and checks every value.
    fn resolve(self) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let s = Settings {
            listen: parse_with("listen", self.listen, d.listen, |v| {
                v.parse()
                    .map_err(|_| "ADDR:PORT such as 0.0.0.0:1935 or [::]:1935".to_owned())
            })?,
            source: parse_with("source", self.source, d.source, SourceSpec::parse)?,
            stream: parse_with("stream", self.stream, d.stream, StreamPath::parse)?,
            codec: parse_with("codec", self.codec, d.codec, Codec::parse)?,
            log_level: parse_with("log-level", self.log_level, d.log_level, parse_level)?,
            join_ms: ranged("join-ms", self.join_ms, d.join_ms, 0, 60_000)?,
            rate: self.rate.unwrap_or(d.rate),
            channels: ranged("channels", self.channels, d.channels, 1, 2)?,
            period_ms: ranged("period-ms", self.period_ms, d.period_ms, 5, 1000)?,
            max_clients: ranged("max-clients", self.max_clients, d.max_clients, 1, 10_000)?,
            handshake_timeout_ms: ranged(
                "handshake-timeout-ms",
                self.handshake_timeout_ms,
                d.handshake_timeout_ms,
                100,
                600_000,
            )?,
            idle_timeout_ms: ranged(
                "idle-timeout-ms",
                self.idle_timeout_ms,
                d.idle_timeout_ms,
                1000,
                86_400_000,
            )?,
            allow_publish: match self.allow_publish {
                None => d.allow_publish,
                Some(list) => list
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        Cidr::parse(s).map_err(|expected| ConfigError::BadValue {
                            setting: "allow-publish",
                            value: s.clone(),
                            expected,
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
        };
        if !s.codec.rates().contains(&s.rate) {
            return Err(ConfigError::BadValue {
                setting: "rate",
                value: s.rate.to_string(),
                expected: format!(
                    "one of {:?} for codec {} (FLV cannot signal other rates; capture with \
                     alsa:plughw:... to have ALSA resample a card's other rates)",
                    s.codec.rates(),
                    s.codec
                ),
            });
        }
        Ok(s)
    }
}

fn number<T: std::str::FromStr>(flag: &'static str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadValue {
        setting: flag,
        value: value.to_owned(),
        expected: "a whole number".into(),
    })
}

fn parse_with<T>(
    setting: &'static str,
    value: Option<String>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => parse(&v).map_err(|expected| ConfigError::BadValue {
            setting,
            value: v,
            expected,
        }),
    }
}

fn ranged<T: PartialOrd + fmt::Display + Copy>(
    setting: &'static str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError::BadValue {
            setting,
            value: v.to_string(),
            expected: format!("{min} to {max}"),
        });
    }
    Ok(v)
}

fn parse_level(s: &str) -> Result<LevelFilter, String> {
    match s {
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err("error, warn, info, debug or trace".into()),
    }
}

/// Flags that take a value (without `--`), except `config`, which is handled apart.
const VALUED_FLAGS: [&str; 13] = [
    "listen",
    "source",
    "stream",
    "codec",
    "join-ms",
    "rate",
    "channels",
    "period-ms",
    "max-clients",
    "log-level",
    "handshake-timeout-ms",
    "idle-timeout-ms",
    "allow-publish",
];

/// Parses the command line (without the program name), reading the `--config` file if given.
/// Flags take their value as `--flag VALUE` or `--flag=VALUE`; a later flag overrides an earlier one.
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Invocation, ConfigError> {
    let mut flags = Partial::default();
    let mut config_file: Option<PathBuf> = None;
    let mut devices = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| ConfigError::UnexpectedArgument(a.to_string_lossy().into_owned()))?;
        let Some(flag) = arg.strip_prefix("--") else {
            if arg == "devices" && !devices {
                devices = true;
                continue;
            }
            return Err(ConfigError::UnexpectedArgument(arg));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        match name {
            "help" if inline.is_none() => return Ok(Invocation::Help),
            "version" if inline.is_none() => return Ok(Invocation::Version),
            "config" => {
                let v = value_of("config", inline, &mut args)?;
                config_file = Some(PathBuf::from(v));
            }
            _ => {
                let Some(&flag) = VALUED_FLAGS.iter().find(|f| **f == name) else {
                    return Err(ConfigError::UnknownFlag(arg));
                };
                let v = value_of(flag, inline, &mut args)?;
                flags.set_flag(flag, v)?;
            }
        }
    }
    let file = match config_file {
        Some(path) => load_file(&path)?,
        None => Partial::default(),
    };
    let settings = file.overlay(flags).resolve()?;
    Ok(if devices {
        Invocation::Devices(settings)
    } else {
        Invocation::Run(settings)
    })
}

fn value_of(
    flag: &'static str,
    inline: Option<String>,
    args: &mut impl Iterator<Item = OsString>,
) -> Result<String, ConfigError> {
    if let Some(v) = inline {
        return Ok(v);
    }
    let v = args.next().ok_or(ConfigError::MissingValue(flag))?;
    v.into_string().map_err(|v| ConfigError::BadValue {
        setting: flag,
        value: v.to_string_lossy().into_owned(),
        expected: "UTF-8 text".into(),
    })
}

/// Reads and parses a config file; the file may set any subset of the settings.
fn load_file(path: &std::path::Path) -> Result<Partial, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    parse_file_text(&text).map_err(|reason| ConfigError::ParseFile {
        path: path.to_owned(),
        reason,
    })
}

fn parse_file_text(text: &str) -> Result<Partial, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run(list: &[&str]) -> Result<Settings, ConfigError> {
        match parse_args(args(list))? {
            Invocation::Run(s) => Ok(s),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_documented_ones() {
        let s = run(&[]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:1935".parse().unwrap());
        assert_eq!(s.source, SourceSpec::Alsa("default".into()));
        assert_eq!(s.stream.to_string(), "live/audio");
        assert_eq!(s.codec, Codec::Adpcm);
        assert_eq!(
            (s.join_ms, s.rate, s.channels, s.period_ms, s.max_clients),
            (500, 44100, 2, 20, 100)
        );
        assert_eq!(s.log_level, LevelFilter::Info);
        assert_eq!(s.period_frames(), 882);
        let allowed: Vec<String> = s.allow_publish.iter().map(|c| c.to_string()).collect();
        assert_eq!(allowed, ["127.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn every_flag_in_both_spellings() {
        let s = run(&[
            "--listen=127.0.0.1:19350",
            "--source",
            "alsa:plughw:CARD=Device,DEV=0",
            "--stream=radio/main",
            "--codec",
            "pcm",
            "--join-ms=0",
            "--rate",
            "22050",
            "--channels=1",
            "--period-ms",
            "40",
            "--max-clients=7",
            "--log-level",
            "trace",
            "--handshake-timeout-ms=2000",
            "--idle-timeout-ms",
            "5000",
            "--allow-publish=10.0.0.0/8, 192.168.1.7",
        ])
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:19350".parse().unwrap());
        assert_eq!(
            s.source,
            SourceSpec::Alsa("plughw:CARD=Device,DEV=0".into())
        );
        assert_eq!(
            (s.stream.app.as_str(), s.stream.name.as_str()),
            ("radio", "main")
        );
        assert_eq!(s.codec, Codec::Pcm);
        assert_eq!(
            (s.join_ms, s.rate, s.channels, s.period_ms),
            (0, 22050, 1, 40)
        );
        assert_eq!(s.period_frames(), 882);
        assert_eq!(
            (s.max_clients, s.handshake_timeout_ms, s.idle_timeout_ms),
            (7, 2000, 5000)
        );
        assert_eq!(s.log_level, LevelFilter::Trace);
        let allowed: Vec<String> = s.allow_publish.iter().map(|c| c.to_string()).collect();
        assert_eq!(allowed, ["10.0.0.0/8", "192.168.1.7/32"]);
    }

    #[test]
    fn sources() {
        assert_eq!(SourceSpec::parse("stdin"), Ok(SourceSpec::Stdin));
        assert_eq!(SourceSpec::parse("tone"), Ok(SourceSpec::Tone { hz: 440 }));
        assert_eq!(
            SourceSpec::parse("tone:1000"),
            Ok(SourceSpec::Tone { hz: 1000 })
        );
        assert_eq!(
            SourceSpec::parse("alsa:hw:1,0"),
            Ok(SourceSpec::Alsa("hw:1,0".into()))
        );
        for bad in ["tone:0", "tone:x", "tone:", "alsa:", "hw:1,0", "pulse", ""] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases: [(&[&str], &str); 10] = [
            (&["--rate", "96000"], "rate"),
            (&["--codec", "adpcm", "--rate", "5512"], "rate"),
            (&["--channels", "3"], "channels"),
            (&["--period-ms", "4"], "period-ms"),
            (&["--codec", "opus"], "codec"),
            (&["--listen", "1935"], "listen"),
            (&["--log-level", "loud"], "log-level"),
            (&["--stream", "live"], "stream"),
            (&["--allow-publish", "10.0.0.0/33"], "allow-publish"),
            (&["--join-ms", "-1"], "join-ms"),
        ];
        for (list, setting) in cases {
            match run(list) {
                Err(ConfigError::BadValue { setting: s, .. }) => assert_eq!(s, setting, "{list:?}"),
                other => panic!("{list:?}: {other:?}"),
            }
        }
        // PCM may use 5512 where ADPCM may not.
        assert_eq!(
            run(&["--codec", "pcm", "--rate", "5512"]).unwrap().rate,
            5512
        );
        let msg = run(&["--rate", "96000"]).unwrap_err().to_string();
        assert!(msg.contains("plughw"), "{msg}");
        // 48 kHz is served by every codec (resampled to 44.1 kHz but for AAC), not refused.
        for codec in ["pcm", "adpcm", "aac", "mp3"] {
            assert_eq!(
                run(&["--codec", codec, "--rate", "48000"]).unwrap().rate,
                48_000
            );
        }
        assert_eq!(
            run(&["--codec", "aac", "--rate", "8000"]).unwrap().rate,
            8000
        );
    }

    #[test]
    fn argument_errors() {
        assert_eq!(
            parse_args(args(&["--lisen", "x"])),
            Err(ConfigError::UnknownFlag("--lisen".into()))
        );
        assert_eq!(
            parse_args(args(&["--rate"])),
            Err(ConfigError::MissingValue("rate"))
        );
        assert_eq!(
            parse_args(args(&["play"])),
            Err(ConfigError::UnexpectedArgument("play".into()))
        );
        assert_eq!(parse_args(args(&["--help"])), Ok(Invocation::Help));
        assert_eq!(
            parse_args(args(&["--rate=1", "--version"])),
            Ok(Invocation::Version)
        );
        assert!(matches!(
            parse_args(args(&["devices", "--log-level", "debug"])),
            Ok(Invocation::Devices(s)) if s.log_level == LevelFilter::Debug
        ));
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        for flag in VALUED_FLAGS.iter().chain(&["config", "version", "help"]) {
            assert!(HELP.contains(&format!("--{flag} ")), "{flag}");
        }
        for default in [
            "0.0.0.0:1935",
            "alsa:default",
            "live/audio",
            "[default: adpcm]",
            "500",
        ] {
            assert!(HELP.contains(default), "{default}");
        }
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("zerocast-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("z.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:2000\"\nsource = \"tone:1000\"\njoin_ms = 250\n\
             allow_publish = [\"10.1.0.0/16\"]\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = run(&["--config", p]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(s.source, SourceSpec::Tone { hz: 1000 });
        assert_eq!(s.join_ms, 250);
        assert_eq!(s.allow_publish, [Cidr::parse("10.1.0.0/16").unwrap()]);
        // A flag wins over the file wherever it stands on the line.
        let s = run(&["--join-ms", "100", "--config", p, "--source=stdin"]).unwrap();
        assert_eq!((s.join_ms, s.source), (100, SourceSpec::Stdin));
        assert_eq!(s.listen, "127.0.0.1:2000".parse().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_errors() {
        let e = parse_file_text("join-ms = 5\n").unwrap_err();
        assert!(e.contains("unknown field `join-ms`"), "{e}");
        let e = parse_file_text("join_ms = \"soon\"\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = parse_file_text("rate = 44100\nrate = 22050\n").unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
        // A value of the right type but wrong range is caught by the same checks as a flag.
        let bad = parse_file_text("channels = 6\n").unwrap().resolve();
        assert!(matches!(
            bad,
            Err(ConfigError::BadValue {
                setting: "channels",
                ..
            })
        ));
        let missing = PathBuf::from("/nonexistent/zerocast.toml");
        let e = parse_args(args(&["--config", "/nonexistent/zerocast.toml"])).unwrap_err();
        assert!(
            matches!(&e, ConfigError::ReadFile { path, .. } if *path == missing),
            "{e}"
        );
    }

    #[test]
    fn packaged_config_is_the_defaults() {
        let text = include_str!("../../packaging/zerocast.toml");
        let s = parse_file_text(text).unwrap().resolve().unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn cidr_membership() {
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("128.0.0.1".parse().unwrap()));
        assert!(!lo.contains("::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fdaa::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4/").is_err());
    }
}
