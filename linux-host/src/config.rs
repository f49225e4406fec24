//! Command line and configuration file.
//!
//! Precedence, lowest first: built-in defaults (chosen to work on a Pi Zero with a USB card),
//! the TOML file named by `--config`, then flags. An unknown key, an unknown flag or a bad value is
//! an error that names it, because a silently ignored typo in a service's config is found only
//! when nobody can hear it.
//!
//! Each setting is declared once: a field of [`Settings`] or of one of its sections ([`Access`],
//! [`Http`], [`StreamConfig`], [`PushTarget`]) with its doc, its default in the section's
//! `Default`, and its checks in its type's `Deserialize` (or a `deserialize_with` helper that
//! carries its range). A flag is one row of `FLAGS`: the key path it sets in that same tree. The
//! command line becomes a TOML overlay merged over the file's table and the whole is deserialized
//! once, with `deny_unknown_fields` everywhere, so flags and file share one parser and one set of
//! checks, and a flag cannot land in another setting. Checks that involve several settings (a
//! codec against the rate, stream names against the application) run after, in
//! `Settings::validate`.
//!
//! The file is also deserialized on its own first, straight from its text, so that a file error
//! (syntax, unknown key, wrong type, value out of range) names its line and column; each flag is
//! also deserialized alone over the defaults, so that a bad value is blamed on its flag.
//! [`Settings::reload`] does it all again with the same flags (SIGHUP).
//!
//! File keys are the flags' names with `_` for `-`, in the section the flag's key path names
//! (`--allow-publish` is `[access] allow_publish`), except `capture_stream` (`--stream`: the key
//! `stream` is the `[[stream]]` tables), `[http] listen` (`--http`) and `[http] max_clients`
//! (`--http-max-clients`).
//!
//! `ConfigError` holds owned strings, unlike the `Copy` error enums elsewhere: its whole job is
//! to quote back the flag, key or value the user wrote, which a `Copy` type cannot carry.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use log::LevelFilter;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::{Table, Value};

use crate::hooks::HookUrl;
use crate::names;

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
    /// No capture (`--source none`): a pure server, every stream comes from a publisher.
    None,
}

impl SourceSpec {
    /// The default test tone frequency (concert A).
    pub const DEFAULT_TONE_HZ: u32 = 440;

    /// Parses `alsa:DEVICE`, `stdin`, `tone[:HZ]` or `none`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(device) = s.strip_prefix("alsa:") {
            if device.is_empty() || device.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err("an ALSA device name such as alsa:hw:1,0 or alsa:default".into());
            }
            return Ok(Self::Alsa(device.to_owned()));
        }
        match s {
            "stdin" => Ok(Self::Stdin),
            "none" => Ok(Self::None),
            "tone" => Ok(Self::Tone {
                hz: Self::DEFAULT_TONE_HZ,
            }),
            _ => match s.strip_prefix("tone:").map(str::parse::<u32>) {
                Some(Ok(hz)) if (1..=20_000).contains(&hz) => Ok(Self::Tone { hz }),
                Some(_) => Err("tone:HZ with HZ a whole number from 1 to 20000".into()),
                None => Err("alsa:DEVICE, stdin, tone[:HZ] or none".into()),
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
            Self::None => f.write_str("none"),
        }
    }
}

/// An audio codec a stream is served in (`--codec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// FLV SoundFormat 3, 16-bit little-endian PCM: 1411 kbit/s at 44.1 kHz stereo.
    Pcm,
    /// FLV SoundFormat 1, SWF ADPCM at 4 bits: ~353 kbit/s at 44.1 kHz stereo, a quarter of PCM,
    /// for about 6 M instructions per second on the Pi Zero — the default, because Wi-Fi on a Pi
    /// Zero is the scarce resource, not the CPU.
    Adpcm,
    /// FLV SoundFormat 10, AAC-LC at `--bitrate`: carries its own sample rate, 48 kHz included.
    Aac,
    /// FLV SoundFormat 2, MP3 at `--bitrate`.
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

    /// The capture rates zerocast serves in this codec. FLV's legacy 2-bit rate field only has
    /// 5512/11025/22050/44100 (FLV spec v10.1 E.4.2.1; ffmpeg flvdec `44100 << idx >> 3`), and
    /// ffmpeg's adpcm_swf encoder refuses 5512 (shared/protocol-notes.md section 3); a 48 kHz
    /// capture is resampled to 44.1 kHz for PCM, ADPCM and MP3 (`encode::Rendition`), never sent
    /// mislabelled. AAC signals its rate in its AudioSpecificConfig (ISO 14496-3 1.6.3.4: the
    /// standard rates from 8 to 48 kHz).
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

    const fn new(addr: IpAddr, prefix: u8) -> Self {
        Self { addr, prefix }
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
        match s.split_once('/') {
            Some((app, name)) if names::is_valid(app) && names::is_valid(name) => Ok(Self {
                app: app.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!(
                "APP/NAME, each 1 to {} letters, digits, '_', '-' or '.', not starting with '.'",
                names::MAX_LEN
            )),
        }
    }

    /// Not given (a serde default; never valid, so never the value of a setting).
    fn unset() -> Self {
        Self {
            app: String::new(),
            name: String::new(),
        }
    }

    /// Where the further codecs of a `--codec` list are served: `NAME_CODEC` under the same
    /// application (`live/audio_pcm` beside `live/audio`).
    pub fn rendition(&self, codec: Codec) -> StreamPath {
        StreamPath {
            app: self.app.clone(),
            name: format!("{}_{codec}", self.name),
        }
    }

    /// The inverse of [`StreamPath::rendition`]: the stream `name` is a rendition of
    /// (`audio` for `audio_mp3`), if it is `NAME_CODEC` for one of zerocast's codecs. Exact, so a
    /// stream `audio_x` is nobody's rendition.
    pub fn rendition_base(name: &str) -> Option<&str> {
        let (base, codec) = name.rsplit_once('_')?;
        Codec::parse(codec).ok().map(|_| base)
    }
}

impl fmt::Display for StreamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// An upstream to push to: `rtmp://HOST[:PORT]/APP[/NAME][?QUERY]` or `rtmps://…`, or an
/// Icecast server as its source: `icecast://[USER[:PASSWORD]@]HOST[:PORT]/MOUNT` (ffmpeg's
/// scheme) or `icecasts://…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushUrl {
    /// `rtmps://` or `icecasts://`: over TLS.
    pub tls: bool,
    /// `icecast://`: an Icecast source (HTTP `PUT`, or `SOURCE` for old servers); `app` is
    /// then the mount without its `/`.
    pub icecast: bool,
    /// The source user (`source` when the URL names none) of an Icecast push.
    pub user: Option<String>,
    /// The source password of an Icecast push.
    pub password: Option<String>,
    /// Host name or address, without the brackets of an IPv6 address.
    pub host: String,
    /// TCP port (default 1935, 443 for `rtmps://`).
    pub port: u16,
    /// The application, what `connect` names.
    pub app: String,
    /// The stream name to publish as; `None` pushes every stream under its own name. May
    /// contain `/` (platform keys, Wowza's `app/instance`).
    pub name: Option<String>,
    /// What followed `?` (`key=…`): sent after the stream name in `publish`, or after the
    /// application in `connect` when the URL has no name.
    pub query: Option<String>,
}

impl PushUrl {
    /// Parses `rtmp://HOST[:PORT]/APP[/NAME][?QUERY]`, `rtmps://…`, and
    /// `icecast://[USER[:PASSWORD]@]HOST[:PORT]/MOUNT`, `icecasts://…`; IPv6 hosts in brackets.
    pub fn parse(s: &str) -> Result<Self, String> {
        const SHAPE: &str = "rtmp://HOST[:PORT]/APP[/NAME], rtmps://…, or \
                             icecast://source:PASSWORD@HOST[:PORT]/MOUNT";
        let schemes = [
            ("rtmp://", false, false),
            ("rtmps://", true, false),
            ("icecast://", false, true),
            ("icecasts://", true, true),
        ];
        let Some((rest, tls, icecast)) = schemes
            .iter()
            .find_map(|(p, tls, ice)| Some((s.strip_prefix(p)?, *tls, *ice)))
        else {
            return Err(SHAPE.into());
        };
        if icecast {
            return Self::parse_icecast(rest, tls);
        }
        if rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{SHAPE}, without spaces"));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((_, "")) => return Err("a query after '?', such as ?key=KEY".into()),
            Some((r, q)) => (r, Some(q.to_owned())),
            None => (rest, None),
        };
        let Some((authority, path)) = rest.split_once('/') else {
            return Err(format!("an application after the host: {SHAPE}"));
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err("an IPv6 address in brackets, like rtmp://[::1]/live".into());
            };
            if host.parse::<Ipv6Addr>().is_err() {
                return Err("an IPv6 address in brackets, like rtmp://[::1]/live".into());
            }
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err("':PORT' after the bracketed address".into()),
                },
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let host_ok = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
        };
        if !host_ok(host) {
            return Err(format!("a host name or address: {SHAPE}"));
        }
        let port = match port.map(str::parse::<u16>) {
            None => {
                if tls {
                    443
                } else {
                    1935
                }
            }
            Some(Ok(p)) if p > 0 => p,
            Some(_) => return Err("a port from 1 to 65535".into()),
        };
        let (app, name) = match path.split_once('/') {
            Some((app, name)) => (app, Some(name.trim_end_matches('/'))),
            None => (path, None),
        };
        if app.is_empty() {
            return Err(format!("an application after the host: {SHAPE}"));
        }
        Ok(Self {
            tls,
            icecast: false,
            user: None,
            password: None,
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            name: name.filter(|n| !n.is_empty()).map(str::to_owned),
            query,
        })
    }

    /// The part of an `icecast://` URL after the scheme.
    fn parse_icecast(rest: &str, tls: bool) -> Result<Self, String> {
        const SHAPE: &str = "icecast://source:PASSWORD@HOST[:PORT]/MOUNT";
        if rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{SHAPE}, without spaces"));
        }
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((c, r)) => (Some(c), r),
            None => (None, rest),
        };
        let (user, password) = match credentials.map(|c| c.split_once(':').unwrap_or((c, ""))) {
            Some((user, password)) => (
                Some(user).filter(|u| !u.is_empty()).map(str::to_owned),
                Some(password).filter(|p| !p.is_empty()).map(str::to_owned),
            ),
            None => (None, None),
        };
        // The authority and the mount parse as an RTMP URL's host and application would.
        let as_rtmp = Self::parse(&format!("rtmp://{rest}")).map_err(|_| SHAPE.to_owned())?;
        if as_rtmp.query.is_some() {
            return Err(format!("{SHAPE}, without a query"));
        }
        let mount = match &as_rtmp.name {
            Some(name) => format!("{}/{name}", as_rtmp.app),
            None => as_rtmp.app.clone(),
        };
        // Icecast's port when the URL gives none (RTMP's would be 1935).
        let authority = rest.split('/').next().unwrap_or_default();
        let explicit = match authority.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => authority.contains(':'),
        };
        let port = if explicit { as_rtmp.port } else { 8000 };
        Ok(Self {
            tls,
            icecast: true,
            user,
            password,
            host: as_rtmp.host,
            port,
            app: mount,
            name: None,
            query: None,
        })
    }

    /// Whether the push carries one stream (a name, or an Icecast mount): else it pushes every
    /// published stream under its own name.
    pub fn one_stream(&self) -> bool {
        self.icecast || self.name.is_some()
    }
}

/// How a push is shown everywhere outside the process (logs, reports, metrics): the scheme,
/// host, port and application, and `/…` for whatever follows. Platforms put the stream key in
/// the name (YouTube, Facebook, Twitch) or the query, so neither is ever printed; the full URL
/// exists only in the configuration and in what `connect`/`publish` send upstream.
impl fmt::Display for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.icecast, self.tls) {
            (false, false) => "rtmp",
            (false, true) => "rtmps",
            (true, false) => "icecast",
            (true, true) => "icecasts",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}/{}", self.host, self.port, self.app)?;
        } else {
            write!(f, "{scheme}://{}:{}/{}", self.host, self.port, self.app)?;
        }
        if self.name.is_some() || self.query.is_some() {
            f.write_str("/…")?;
        }
        Ok(())
    }
}

/// The value types read from a text: their `Deserialize` is their `parse`, and a bad value's
/// message says what would be valid.
macro_rules! deserialize_by_parse {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$t>::parse(&text).map_err(|e| de::Error::custom(format!("expected {e}")))
            }
        }
    )*};
}
deserialize_by_parse!(SourceSpec, Codec, Cidr, StreamPath, PushUrl, HookUrl);

/// Every setting, after defaults, file and flags are merged and validated. File keys are the
/// field names unless a `rename` says otherwise; the flags are in `FLAGS` (and `--help`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the RTMP server listens on.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Where the capture's audio comes from; [`SourceSpec::None`] for no capture.
    pub source: SourceSpec,
    /// The capture's stream (`APP/NAME`, default `live/audio`; `APP/audio` with `--app APP`).
    /// File key `capture_stream`: `stream` is the `[[stream]]` tables.
    #[serde(rename = "capture_stream", default = "StreamPath::unset")]
    pub stream: StreamPath,
    /// The application publishers and players use (default `live`; the capture stream's
    /// application when only `--stream` is given).
    #[serde(default = "String::new", deserialize_with = "app_name")]
    pub app: String,
    /// The capture's codecs: the first is served at [`Self::stream`], each further one at its
    /// [`StreamPath::rendition`]. Non-empty, no duplicates. File key `codec`, a list or a
    /// comma-separated string.
    #[serde(rename = "codec", deserialize_with = "codec_list")]
    pub codecs: Vec<Codec>,
    /// AAC and MP3 bitrate in kbit/s, 32 to 320 (`128` or `"128k"`). File key `bitrate`.
    #[serde(rename = "bitrate", deserialize_with = "bitrate")]
    pub bitrate_kbps: u32,
    /// How much already-sent audio a new player is given at once so it starts without waiting.
    #[serde(deserialize_with = "Range::<0, 60_000>::u32")]
    pub join_ms: u32,
    /// Sample rate in Hz, asked of the capture device exactly; every codec of
    /// [`Self::codecs`] must carry it ([`Codec::rates`]).
    #[serde(deserialize_with = "Range::<5512, 48_000>::u32")]
    pub rate: u32,
    /// 1 or 2.
    #[serde(deserialize_with = "Range::<1, 2>::u8")]
    pub channels: u8,
    /// Capture period: one period is one audio message.
    #[serde(deserialize_with = "Range::<5, 1000>::u32")]
    pub period_ms: u32,
    /// RTMP connections beyond this are refused.
    #[serde(deserialize_with = "Range::<1, 10_000>::u32")]
    pub max_clients: u32,
    /// Streams served at once (the capture's, published ones); more publishers are refused.
    #[serde(deserialize_with = "Range::<1, 256>::usize")]
    pub max_streams: usize,
    /// Connections one client address (an IPv6 /64) holds on each side, RTMP and HTTP; more
    /// are refused, as is one that would take the side's reserve ([`crate::limits::Quota`]).
    #[serde(deserialize_with = "Range::<1, 10_000>::usize")]
    pub max_per_addr: usize,
    /// Listeners of one stream (HTTP and RTMP, all its formats) at once; the next one is
    /// refused, HTTP with Icecast's `403 max listeners reached`. 0: no limit. A `[[stream]]`
    /// table may set its own.
    #[serde(deserialize_with = "Range::<0, 100_000>::u32")]
    pub max_listeners: u32,
    /// Seconds a listener may stay; it is disconnected then (Icecast's
    /// `max-listener-duration`). 0: no limit. A `[[stream]]` table may set its own.
    #[serde(deserialize_with = "Range::<0, 31_536_000>::u32")]
    pub max_listener_duration: u32,
    /// Listeners from one address at once, all streams together; more are refused. 0: no
    /// limit.
    #[serde(deserialize_with = "Range::<0, 10_000>::u32")]
    pub max_listeners_per_addr: u32,
    /// A publisher that sends no audio for this long is dropped (its players stay).
    #[serde(deserialize_with = "Range::<100, 600_000>::u32")]
    pub publish_timeout_ms: u32,
    /// How long audio may wait before it is written to players (fewer, larger writes). File
    /// key `send_ms`.
    #[serde(rename = "send_ms", deserialize_with = "Range::<0, 500>::u32")]
    pub send_interval_ms: u32,
    /// Writes to players per second, all players together, before the send interval grows
    /// past `send_ms` (up to 100 ms): bounds the CPU a crowd costs. 0: no bound.
    #[serde(deserialize_with = "Range::<0, 1_000_000>::u32")]
    pub max_sends_per_s: u32,
    /// Log level on stderr.
    #[serde(deserialize_with = "log_level")]
    pub log_level: LevelFilter,
    /// A connection that has not finished the RTMP handshake by then is closed.
    #[serde(deserialize_with = "Range::<100, 600_000>::u32")]
    pub handshake_timeout_ms: u32,
    /// A connection that sends nothing and accepts no data for this long is closed.
    #[serde(deserialize_with = "Range::<1000, 86_400_000>::u32")]
    pub idle_timeout_ms: u32,
    /// Who may publish and play: section `[access]`.
    pub access: Access,
    /// Streams with settings of their own: `[[stream]]` tables.
    #[serde(rename = "stream", deserialize_with = "stream_tables")]
    pub streams: Vec<StreamConfig>,
    /// Push relays: `[[push]]` tables and `--push`.
    #[serde(rename = "push")]
    pub pushes: Vec<PushTarget>,
    /// Extra CA certificates (PEM) trusted for `rtmps://` pushes, beside the system's.
    #[serde(deserialize_with = "opt_path")]
    pub tls_ca: Option<PathBuf>,
    /// The HTTP listener: section `[http]`.
    pub http: Http,
    /// nginx-rtmp's notifications: section `[hooks]`.
    pub hooks: Hooks,
    /// The RTSP listener: section `[rtsp]`.
    pub rtsp: Rtsp,
    /// Record every stream into this directory (a `[[stream]]` may name its own).
    #[serde(deserialize_with = "opt_path")]
    pub record: Option<PathBuf>,
    /// A recording file is closed and a new one started after this many seconds. File key
    /// `record_interval`.
    #[serde(
        rename = "record_interval",
        deserialize_with = "Range::<10, 604_800>::u32"
    )]
    pub record_interval_s: u32,
    /// A recording file is closed and a new one started at this size, in MiB.
    #[serde(deserialize_with = "Range::<1, 4096>::u32")]
    pub record_max_mb: u32,
    /// The oldest recordings in a recording directory (every stream's, see
    /// [`crate::record::Settings::keep_mb`]) are deleted when all of them together pass this,
    /// in MiB.
    #[serde(deserialize_with = "Range::<1, 1_000_000>::u32")]
    pub record_keep_mb: u32,
    /// The file given to `--config`, if any: what [`Self::reload`] reads again.
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The flags given, in order, re-applied over the file by [`Self::reload`].
    #[serde(skip)]
    flags: Vec<FlagValue>,
}

/// Who may do what: section `[access]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Access {
    /// Addresses allowed to publish (a list, or a comma-separated string).
    #[serde(deserialize_with = "cidr_list")]
    pub allow_publish: Vec<Cidr>,
    /// Publishers must present this key (`NAME?key=KEY` or `APP?key=KEY`); a `[[stream]]`
    /// key applies to its stream instead.
    #[serde(deserialize_with = "opt_key")]
    pub publish_key: Option<String>,
    /// Addresses allowed to play.
    #[serde(deserialize_with = "cidr_list")]
    pub allow_play: Vec<Cidr>,
    /// Addresses refused playing even when [`Self::allow_play`] has them.
    #[serde(deserialize_with = "cidr_list")]
    pub deny_play: Vec<Cidr>,
    /// Players must present this key (`NAME?key=KEY`).
    #[serde(deserialize_with = "opt_key")]
    pub play_key: Option<String>,
}

/// The HTTP listener: section `[http]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Where HTTP listeners connect; `None` (`"off"`) for no HTTP.
    #[serde(deserialize_with = "http_listen")]
    pub listen: Option<SocketAddr>,
    /// The stream title (Icecast `icy-name`, `StreamTitle`) until the admin URL changes it.
    #[serde(deserialize_with = "opt_text")]
    pub title: Option<String>,
    /// Password of Icecast's `/admin/` URLs, at least [`MIN_SECRET_LEN`] characters; `None`
    /// leaves them closed.
    #[serde(deserialize_with = "opt_password")]
    pub admin_password: Option<String>,
    /// HTTP connections beyond this are refused.
    #[serde(deserialize_with = "Range::<1, 10_000>::u32")]
    pub max_clients: u32,
    /// Audio below this level (dBFS) counts as silence.
    #[serde(deserialize_with = "silence_db")]
    pub silence_db: f32,
    /// Silence this long (seconds) is reported.
    #[serde(deserialize_with = "Range::<1, 86_400>::u32")]
    pub silence_s: u32,
    /// Who sees listeners' and publishers' addresses in `/stat`, `/api/v1/streams` and
    /// `/metrics`; everyone else sees the same reports with counts and no addresses.
    #[serde(deserialize_with = "cidr_list")]
    pub stats_allow: Vec<Cidr>,
    /// The access log (Icecast's combined format, a line per listener when it leaves) goes to
    /// this file; unset: to the log (the journal under systemd), target `access`.
    #[serde(deserialize_with = "opt_path")]
    pub access_log: Option<PathBuf>,
}

/// nginx-rtmp's `on_*` notifications (section `[hooks]`): each an `http://` URL POSTed
/// nginx-rtmp's form when it happens ([`crate::hooks`]). `on_play` and `on_publish` decide
/// (2xx allows, 3xx with `Location` renames, anything else refuses); `on_connect` refusing
/// closes the connection; the others only tell.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hooks {
    /// A peer sent `connect`.
    pub on_connect: Option<HookUrl>,
    /// A peer asks to play (held until the answer).
    pub on_play: Option<HookUrl>,
    /// A peer asks to publish (held until the answer).
    pub on_publish: Option<HookUrl>,
    /// A player stopped or left.
    pub on_play_done: Option<HookUrl>,
    /// A publisher stopped or left.
    pub on_publish_done: Option<HookUrl>,
    /// After `on_play_done` or `on_publish_done`.
    pub on_done: Option<HookUrl>,
    /// Instead of `on_publish`, for a machine without a web server: a command run with `sh -c`,
    /// the request in `ZEROCAST_*` environment variables; exit status 0 allows.
    #[serde(deserialize_with = "opt_text")]
    pub run_on_publish: Option<String>,
    /// A hook that has not answered in this long refuses (milliseconds).
    #[serde(deserialize_with = "Range::<100, 60_000>::u32")]
    pub timeout_ms: u32,
}

/// The RTSP listener: section `[rtsp]`. Off unless asked for: it is a third port (and, for
/// players that ask for UDP, a pair of UDP ports) open to the network, and only the
/// home-automation world (Home Assistant, go2rtc, Frigate) needs it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rtsp {
    /// Where RTSP players connect (RTSP's port is 8554 by convention); `None` (`"off"`, the
    /// default) for no RTSP.
    #[serde(deserialize_with = "rtsp_listen")]
    pub listen: Option<SocketAddr>,
    /// RTSP connections beyond this are refused.
    #[serde(deserialize_with = "Range::<1, 10_000>::u32")]
    pub max_clients: u32,
}

impl Default for Rtsp {
    fn default() -> Self {
        Self {
            listen: None,
            max_clients: 32,
        }
    }
}

/// One `[[stream]]` table: a stream with settings of its own.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// `APP/NAME`, under [`Settings::app`]; may be the capture stream.
    pub name: StreamPath,
    /// Publishers of this stream must present this key (instead of `access.publish_key`).
    #[serde(default, deserialize_with = "opt_key")]
    pub key: Option<String>,
    /// Codecs this stream is served in (file key `codec`, like the top level's).
    #[serde(default, rename = "codec", deserialize_with = "opt_codec_list")]
    pub codecs: Option<Vec<Codec>>,
    /// The stream's title (instead of `http.title`).
    #[serde(default, deserialize_with = "opt_text")]
    pub title: Option<String>,
    /// Record this stream into this directory (instead of `record`).
    #[serde(default, deserialize_with = "opt_path")]
    pub record: Option<PathBuf>,
    /// Upstreams this stream is pushed to; a URL without a name pushes it under its own name.
    #[serde(default, deserialize_with = "push_url_list")]
    pub push: Vec<PushUrl>,
    /// Its listeners at once (instead of `max_listeners`; 0: no limit).
    #[serde(default, deserialize_with = "Range::<0, 100_000>::opt_u32")]
    pub max_listeners: Option<u32>,
    /// Seconds its listeners may stay (instead of `max_listener_duration`; 0: no limit).
    #[serde(default, deserialize_with = "Range::<0, 31_536_000>::opt_u32")]
    pub max_listener_duration: Option<u32>,
}

/// One push relay: a `[[push]]` table or a `--push URL`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTarget {
    /// Where to push.
    pub url: PushUrl,
    /// Which stream; `None`: the capture stream when the URL has a name, every stream (each
    /// under its own name) when it has none.
    #[serde(default)]
    pub stream: Option<StreamPath>,
}

impl Settings {
    /// Frames in one capture period (whole frames; `rate * period_ms / 1000`, rounded down).
    pub fn period_frames(&self) -> usize {
        usize::try_from(u64::from(self.rate) * u64::from(self.period_ms) / 1000).unwrap_or(0)
    }

    /// The codecs the capture is served in: its `[[stream]]` table's `codec` when it has one,
    /// else [`Self::codecs`].
    pub fn capture_codecs(&self) -> &[Codec] {
        self.streams
            .iter()
            .find(|s| s.name == self.stream)
            .and_then(|s| s.codecs.as_deref())
            .unwrap_or(&self.codecs)
    }

    /// Reads [`Self::config`] again and applies the same flags over it (SIGHUP): the settings
    /// the process would start with now, or why the file cannot be used.
    pub fn reload(&self) -> Result<Settings, ConfigError> {
        Self::load(self.config.clone(), self.flags.clone())
    }

    /// Defaults, then the file, then `flags`, then the checks across settings.
    fn load(config: Option<PathBuf>, flags: Vec<FlagValue>) -> Result<Settings, ConfigError> {
        let mut table = match &config {
            Some(path) => load_file(path)?,
            None => Table::new(),
        };
        let mut appended: Vec<&str> = Vec::new();
        for f in &flags {
            if let Kind::Append(_) = f.flag.kind {
                if !appended.contains(&f.flag.key) {
                    // The flags replace the file's list, like every other flag replaces a key.
                    remove(&mut table, f.flag.key);
                    appended.push(f.flag.key);
                }
            }
            f.flag.apply(&mut table, &f.value)?;
        }
        // The file and each flag were checked on their own, so only a combination can fail.
        let mut s: Settings = table.try_into().map_err(|e| ConfigError::ParseFile {
            path: config.clone().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        s.config = config;
        s.flags = flags;
        s.validate()?;
        Ok(s)
    }

    /// The secret flags given their value itself on the command line (not `file:` or `env:`):
    /// visible to every user in `ps`, so the server warns about each at start.
    pub fn secrets_on_command_line(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .flags
            .iter()
            .filter(|f| SECRET_FLAGS.contains(&f.flag.name))
            .filter(|f| !f.value.starts_with("file:") && !f.value.starts_with("env:"))
            .map(|f| f.flag.name)
            .collect();
        names.dedup();
        names
    }

    /// The checks that involve more than one setting.
    fn validate(&mut self) -> Result<(), ConfigError> {
        // `app` and the capture stream each default to the other when only one is given.
        let default = Settings::default();
        match (self.app.is_empty(), self.stream == StreamPath::unset()) {
            (true, true) => (self.app, self.stream) = (default.app, default.stream),
            (true, false) => self.app = self.stream.app.clone(),
            (false, true) => {
                self.stream = StreamPath {
                    app: self.app.clone(),
                    name: default.stream.name,
                }
            }
            (false, false) => {}
        }
        let app = self.app.clone();
        let under_app = |setting: &str, path: &StreamPath| {
            if path.app == app {
                return Ok(());
            }
            Err(bad(
                setting,
                path,
                format!("expected a stream under the application '{app}' (--app)"),
            ))
        };
        under_app("stream", &self.stream)?;
        let capture = self.source != SourceSpec::None;
        let mut names: Vec<&StreamPath> = Vec::new();
        for s in &self.streams {
            under_app("[[stream]] name", &s.name)?;
            if names.contains(&&s.name) {
                return Err(bad(
                    "[[stream]] name",
                    &s.name,
                    "expected each name in one [[stream]] table only, not in two".into(),
                ));
            }
            if s.codecs.is_some() && !(capture && s.name == self.stream) {
                return Err(bad(
                    "[[stream]] codec",
                    &s.name,
                    format!(
                        "expected codec only in the capture stream's table ({}{}): a \
                         publisher's audio is served as it comes",
                        self.stream,
                        if capture {
                            ""
                        } else {
                            ", and --source is none"
                        }
                    ),
                ));
            }
            names.push(&s.name);
        }
        if capture {
            let codecs = self.capture_codecs();
            check_rate(self.rate, codecs, "rate")?;
            for codec in codecs.iter().skip(1) {
                let rendition = self.stream.rendition(*codec);
                if names.contains(&&rendition) {
                    return Err(bad(
                        "[[stream]] name",
                        &rendition,
                        format!(
                            "expected another name: the capture's {codec} rendition is served \
                             there (--codec)"
                        ),
                    ));
                }
            }
            if !names.contains(&&self.stream) {
                names.push(&self.stream);
            }
        }
        if names.len() > self.max_streams {
            return Err(bad(
                "max-streams",
                self.max_streams,
                format!(
                    "expected at least {}: the capture and the [[stream]] tables name that many \
                     streams",
                    names.len()
                ),
            ));
        }
        for push in &self.pushes {
            match &push.stream {
                Some(path) => under_app("[[push]] stream", path)?,
                None if push.url.one_stream() && !capture => {
                    return Err(bad(
                        "push",
                        &push.url,
                        "expected a stream to push ([[push]] stream = \"APP/NAME\"): with --source none \
                         there is no capture stream, and a URL without a name pushes every \
                         stream"
                            .into(),
                    ))
                }
                None => {}
            }
        }
        if let Some(http) = self.http.listen {
            let clash = |a: IpAddr, b: IpAddr| a == b || a.is_unspecified() || b.is_unspecified();
            if http.port() != 0
                && http.port() == self.listen.port()
                && clash(http.ip(), self.listen.ip())
            {
                return Err(bad(
                    "http",
                    http,
                    format!(
                        "expected another port than the RTMP listener's {}",
                        self.listen
                    ),
                ));
            }
        }
        if let (Some(url), Some(_)) = (&self.hooks.on_publish, &self.hooks.run_on_publish) {
            return Err(bad(
                "run-on-publish",
                url,
                "expected either on_publish or run_on_publish, not both".into(),
            ));
        }
        if let Some(rtsp) = self.rtsp.listen {
            let clash = |a: IpAddr, b: IpAddr| a == b || a.is_unspecified() || b.is_unspecified();
            let taken = [Some(self.listen), self.http.listen]
                .into_iter()
                .flatten()
                .find(|other| {
                    rtsp.port() != 0 && rtsp.port() == other.port() && clash(rtsp.ip(), other.ip())
                });
            if let Some(other) = taken {
                return Err(bad(
                    "rtsp",
                    rtsp,
                    format!("expected another port than the RTMP or HTTP listener's {other}"),
                ));
            }
        }
        if self.record_keep_mb < self.record_max_mb {
            return Err(bad(
                "record-keep-mb",
                self.record_keep_mb,
                format!(
                    "expected at least record-max-mb ({}), or the file being written would be \
                     deleted",
                    self.record_max_mb
                ),
            ));
        }
        Ok(())
    }
}

/// Every codec of `codecs` must be able to carry `rate`; the error names the first that cannot.
fn check_rate(rate: u32, codecs: &[Codec], setting: &str) -> Result<(), ConfigError> {
    match codecs.iter().find(|c| !c.rates().contains(&rate)) {
        None => Ok(()),
        Some(codec) => Err(bad(
            setting,
            rate,
            format!(
                "expected one of {:?} for codec {codec} (FLV cannot signal other rates for it; aac \
                 serves 48000, mp3 resamples it, or capture with alsa:plughw:... to resample \
                 a 48 kHz card)",
                codec.rates()
            ),
        )),
    }
}

fn bad(setting: &str, value: impl fmt::Display, reason: String) -> ConfigError {
    // An error goes to the terminal or the journal: a secret's value is never in it.
    let value = if SECRET_FLAGS.contains(&setting) {
        "(hidden)".to_owned()
    } else {
        value.to_string()
    };
    ConfigError::BadValue {
        setting: setting.to_owned(),
        value,
        reason,
    }
}

/// Flags whose value is a secret: keys, the admin password, push URLs (platforms put the
/// stream key in them). Each takes `file:PATH` (the file's first line: systemd's
/// `LoadCredential=`, a file only root can read) or `env:NAME` instead of the value itself,
/// which every user of the machine can read in `ps`.
const SECRET_FLAGS: [&str; 4] = ["publish-key", "play-key", "admin-password", "push"];

/// The value of a secret flag's text: the first line of `file:PATH`, the variable of `env:NAME`,
/// or the text itself. Read at every load, so a reload picks up a rotated key file.
fn reveal(flag: &str, text: &str) -> Result<String, ConfigError> {
    if let Some(path) = text.strip_prefix("file:") {
        let content = std::fs::read_to_string(path).map_err(|e| ConfigError::BadValue {
            setting: flag.to_owned(),
            value: text.to_owned(),
            reason: format!("cannot read the secret's file: {e}"),
        })?;
        return Ok(content.lines().next().unwrap_or_default().trim().to_owned());
    }
    if let Some(name) = text.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| ConfigError::BadValue {
            setting: flag.to_owned(),
            value: text.to_owned(),
            reason: "no such environment variable (or not UTF-8)".into(),
        });
    }
    Ok(text.to_owned())
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
            app: "live".into(),
            codecs: if cfg!(feature = "aac") {
                vec![Codec::Adpcm, Codec::Aac]
            } else {
                vec![Codec::Adpcm]
            },
            bitrate_kbps: 128,
            join_ms: 500,
            rate: 44_100,
            channels: 2,
            period_ms: 20,
            max_clients: 100,
            max_streams: 16,
            max_per_addr: 32,
            max_listeners: 0,
            max_listener_duration: 0,
            max_listeners_per_addr: 0,
            publish_timeout_ms: 5000,
            send_interval_ms: 20,
            max_sends_per_s: 1500,
            log_level: LevelFilter::Info,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            access: Access::default(),
            streams: Vec::new(),
            pushes: Vec::new(),
            tls_ca: None,
            http: Http::default(),
            hooks: Hooks::default(),
            rtsp: Rtsp::default(),
            record: None,
            record_interval_s: 3600,
            record_max_mb: 64,
            record_keep_mb: 1024,
            config: None,
            flags: Vec::new(),
        }
    }
}

impl Default for Access {
    fn default() -> Self {
        Self {
            allow_publish: vec![
                Cidr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                Cidr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ],
            publish_key: None,
            allow_play: vec![
                Cidr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                Cidr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            ],
            deny_play: Vec::new(),
            play_key: None,
        }
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            on_connect: None,
            on_play: None,
            on_publish: None,
            on_play_done: None,
            on_publish_done: None,
            on_done: None,
            run_on_publish: None,
            timeout_ms: 5000,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8000)),
            title: None,
            admin_password: None,
            max_clients: 64,
            silence_db: -50.0,
            silence_s: 10,
            stats_allow: vec![
                Cidr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                Cidr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ],
            access_log: None,
        }
    }
}

/// Integer settings with their range: `deserialize_with = "Range::<MIN, MAX>::u32"`.
struct Range<const MIN: i64, const MAX: i64>;

impl<const MIN: i64, const MAX: i64> Range<MIN, MAX> {
    fn get<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_i64(Self)
    }

    fn u8<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        u8::try_from(Self::get(d)?).map_err(de::Error::custom)
    }

    fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        u32::try_from(Self::get(d)?).map_err(de::Error::custom)
    }

    fn usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        usize::try_from(Self::get(d)?).map_err(de::Error::custom)
    }

    fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Self::u32(d).map(Some)
    }
}

impl<const MIN: i64, const MAX: i64> Visitor<'_> for Range<MIN, MAX> {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number from {MIN} to {MAX}")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        if (MIN..=MAX).contains(&v) {
            Ok(v)
        } else {
            Err(E::custom(format!("expected {MIN} to {MAX}")))
        }
    }
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(|_| de::Error::custom("expected ADDR:PORT such as 0.0.0.0:1935 or [::]:1935"))
}

fn http_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        de::Error::custom("expected ADDR:PORT such as 0.0.0.0:8000 or [::]:8000, or off")
    })
}

fn rtsp_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        de::Error::custom("expected ADDR:PORT such as 0.0.0.0:8554 or [::]:8554, or off")
    })
}

fn app_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if names::is_valid(&text) {
        Ok(text)
    } else {
        Err(de::Error::custom(
            "expected an application name of letters, digits, '_', '-' or '.', not starting \
             with '.'",
        ))
    }
}

fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<LevelFilter, D::Error> {
    match String::deserialize(d)?.as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err(de::Error::custom(
            "expected error, warn, info, debug or trace",
        )),
    }
}

/// `128` or `"128k"`, in kbit/s.
fn bitrate<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct Kbps;
    impl Visitor<'_> for Kbps {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("kbit/s from 32 to 320, such as 128 or \"128k\"")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.strip_suffix('k')
                .unwrap_or(v)
                .parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    let v = d.deserialize_any(Kbps)?;
    match u32::try_from(v) {
        Ok(kbps) if (32..=320).contains(&kbps) => Ok(kbps),
        _ => Err(de::Error::custom(
            "expected kbit/s from 32 to 320, such as 128 or 128k",
        )),
    }
}

/// dBFS, an integer or a float, from -120 to 0.
fn silence_db<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    struct Db;
    impl Visitor<'_> for Db {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a level in dBFS from -120 to 0")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
    }
    let v = d.deserialize_any(Db)?;
    if (-120.0..=0.0).contains(&v) {
        Ok(v as f32)
    } else {
        Err(de::Error::custom("expected a level in dBFS from -120 to 0"))
    }
}

/// A list setting: a TOML array of strings, or one string of comma-separated items (what a
/// flag gives). Empty items are skipped, so `""` is the empty list.
fn list<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, D::Error> {
    struct Items<T>(fn(&str) -> Result<T, String>);
    impl<T> Items<T> {
        fn item<E: de::Error>(&self, s: &str) -> Result<T, E> {
            (self.0)(s.trim()).map_err(|e| E::custom(format!("expected {e}, not '{s}'")))
        }
    }
    impl<'de, T> Visitor<'de> for Items<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list, or a comma-separated string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            v.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| self.item(s))
                .collect()
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(self.item(&s)?);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Items(parse))
}

fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    list(d, Cidr::parse)
}

fn push_url_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PushUrl>, D::Error> {
    list(d, PushUrl::parse)
}

fn codec_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Codec>, D::Error> {
    let codecs = list(d, Codec::parse)?;
    if codecs.is_empty() {
        return Err(de::Error::custom("expected at least one codec"));
    }
    for (i, c) in codecs.iter().enumerate() {
        if codecs[..i].contains(c) {
            return Err(de::Error::custom(format!(
                "expected each codec once, not {c} twice"
            )));
        }
    }
    Ok(codecs)
}

fn opt_codec_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Codec>>, D::Error> {
    codec_list(d).map(Some)
}

/// The `[[stream]]` tables; a plain string gets told where the capture stream's path went.
fn stream_tables<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<StreamConfig>, D::Error> {
    struct Tables;
    impl<'de> Visitor<'de> for Tables {
        type Value = Vec<StreamConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("[[stream]] tables")
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom(
                "expected [[stream]] tables: the capture's stream path is set with \
                 capture_stream = \"APP/NAME\"",
            ))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Tables)
}

/// A stream or play key: what follows `?key=` in a URL, so URL-safe characters only.
/// The shortest key or admin password accepted: with [`crate::guesses`] allowing five wrong
/// tries a minute per address, 8 characters of the 66 a key may use are out of any guesser's
/// reach, while 1 to 4 are not.
pub const MIN_SECRET_LEN: usize = 8;

fn opt_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let key = String::deserialize(d)?;
    let url_safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if (MIN_SECRET_LEN..=256).contains(&key.len()) && key.bytes().all(url_safe) {
        Ok(Some(key))
    } else {
        Err(de::Error::custom(format!(
            "expected {MIN_SECRET_LEN} to 256 letters, digits, '-', '.', '_' or '~' (a shorter \
             key is easily guessed)"
        )))
    }
}

fn opt_password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if text.chars().count() >= MIN_SECRET_LEN && !text.contains(char::is_control) {
        Ok(Some(text))
    } else {
        Err(de::Error::custom(format!(
            "expected at least {MIN_SECRET_LEN} characters, none of them control characters (a \
             shorter password is easily guessed)"
        )))
    }
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if !text.is_empty() && !text.contains(char::is_control) {
        Ok(Some(text))
    } else {
        Err(de::Error::custom(
            "expected a non-empty text without control characters",
        ))
    }
}

fn opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        Err(de::Error::custom("expected a path"))
    } else {
        Ok(Some(PathBuf::from(text)))
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
        /// The setting, as its flag names it (`rate`), or its file key where it has no flag
        /// (`[[stream]] name`).
        setting: String,
        /// The value given.
        value: String,
        /// What would be valid.
        reason: String,
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
    /// The config file is not valid TOML for these settings (syntax, unknown key, wrong type,
    /// value out of range).
    ParseFile {
        /// The path given to `--config`.
        path: PathBuf,
        /// The TOML parser's message: line, column, the line quoted and what was wrong.
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
                reason,
            } => write!(f, "bad value '{value}' for {setting}: {reason}"),
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

/// How a flag's text becomes a TOML value.
#[derive(Debug, PartialEq)]
enum Kind {
    /// A string; the setting's `Deserialize` parses it.
    Text,
    /// A whole number.
    Number,
    /// A number with or without a fraction.
    Float,
    /// Repeatable: each use appends a table `{ FIELD = "text" }` to the array at the key; the
    /// first use on the command line empties the file's array.
    Append(&'static str),
}

/// A valued flag: `--NAME VALUE` or `--NAME=VALUE` sets `key` (dotted path) in the tree.
#[derive(Debug, PartialEq)]
struct Flag {
    name: &'static str,
    key: &'static str,
    kind: Kind,
    /// The default as the flag would spell it (checked against [`Settings::default`] and
    /// `--help` by tests); `None` where unset is the default.
    default: Option<&'static str>,
}

impl Flag {
    const fn new(name: &'static str, key: &'static str, kind: Kind, default: &'static str) -> Self {
        Self {
            name,
            key,
            kind,
            default: Some(default),
        }
    }

    const fn unset(name: &'static str, key: &'static str, kind: Kind) -> Self {
        Self {
            name,
            key,
            kind,
            default: None,
        }
    }

    /// Sets this flag's key in `table` from its command-line text.
    fn apply(&self, table: &mut Table, text: &str) -> Result<(), ConfigError> {
        let revealed;
        let text = if SECRET_FLAGS.contains(&self.name) {
            revealed = reveal(self.name, text)?;
            revealed.as_str()
        } else {
            text
        };
        let invalid = |reason: &str| bad(self.name, text, reason.into());
        let value = match self.kind {
            Kind::Text => Value::String(text.to_owned()),
            Kind::Number => text
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| invalid("expected a whole number"))?,
            Kind::Float => text
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| invalid("expected a number"))?,
            Kind::Append(field) => {
                let mut item = Table::new();
                item.insert(field.to_owned(), Value::String(text.to_owned()));
                Value::Table(item)
            }
        };
        set(table, self.key, value, matches!(self.kind, Kind::Append(_)));
        Ok(())
    }

    /// Checks `text` alone over the defaults, with the same deserialization as the file, so a
    /// bad value is blamed on this flag.
    fn check(&self, text: &str) -> Result<(), ConfigError> {
        let mut table = Table::new();
        self.apply(&mut table, text)?;
        table
            .try_into::<Settings>()
            .map(drop)
            .map_err(|e| bad(self.name, text, e.message().trim_end().to_owned()))
    }
}

/// The capture's codecs by default (docs/architecture.md, "The default codec"): ADPCM at
/// `APP/NAME` for RTMP players at the lowest delay, and AAC at `APP/NAME_aac` for browsers,
/// phones, relays and Wi-Fi listeners, when the build has the encoder.
const DEFAULT_CODECS: &str = if cfg!(feature = "aac") {
    "adpcm,aac"
} else {
    "adpcm"
};

/// Every valued flag (except `--config`) and the key it sets.
const FLAGS: &[Flag] = &[
    Flag::new("listen", "listen", Kind::Text, "0.0.0.0:1935"),
    Flag::new("source", "source", Kind::Text, "alsa:default"),
    Flag::new("stream", "capture_stream", Kind::Text, "live/audio"),
    Flag::new("app", "app", Kind::Text, "live"),
    Flag::new("codec", "codec", Kind::Text, DEFAULT_CODECS),
    Flag::new("bitrate", "bitrate", Kind::Text, "128"),
    Flag::new("join-ms", "join_ms", Kind::Number, "500"),
    Flag::new("rate", "rate", Kind::Number, "44100"),
    Flag::new("channels", "channels", Kind::Number, "2"),
    Flag::new("period-ms", "period_ms", Kind::Number, "20"),
    Flag::new("max-clients", "max_clients", Kind::Number, "100"),
    Flag::new("max-streams", "max_streams", Kind::Number, "16"),
    Flag::new("max-per-addr", "max_per_addr", Kind::Number, "32"),
    Flag::new("max-listeners", "max_listeners", Kind::Number, "0"),
    Flag::new(
        "max-listener-duration",
        "max_listener_duration",
        Kind::Number,
        "0",
    ),
    Flag::new(
        "max-listeners-per-addr",
        "max_listeners_per_addr",
        Kind::Number,
        "0",
    ),
    Flag::new(
        "publish-timeout-ms",
        "publish_timeout_ms",
        Kind::Number,
        "5000",
    ),
    Flag::new("send-ms", "send_ms", Kind::Number, "20"),
    Flag::new("max-sends-per-s", "max_sends_per_s", Kind::Number, "1500"),
    Flag::new("log-level", "log_level", Kind::Text, "info"),
    Flag::new(
        "handshake-timeout-ms",
        "handshake_timeout_ms",
        Kind::Number,
        "10000",
    ),
    Flag::new("idle-timeout-ms", "idle_timeout_ms", Kind::Number, "60000"),
    Flag::new(
        "allow-publish",
        "access.allow_publish",
        Kind::Text,
        "127.0.0.0/8,::1",
    ),
    Flag::unset("publish-key", "access.publish_key", Kind::Text),
    Flag::new(
        "allow-play",
        "access.allow_play",
        Kind::Text,
        "0.0.0.0/0,::/0",
    ),
    Flag::new("deny-play", "access.deny_play", Kind::Text, ""),
    Flag::unset("play-key", "access.play_key", Kind::Text),
    Flag::new(
        "stats-allow",
        "http.stats_allow",
        Kind::Text,
        "127.0.0.0/8,::1",
    ),
    Flag::unset("push", "push", Kind::Append("url")),
    Flag::unset("tls-ca", "tls_ca", Kind::Text),
    Flag::new("http", "http.listen", Kind::Text, "0.0.0.0:8000"),
    Flag::unset("title", "http.title", Kind::Text),
    Flag::unset("admin-password", "http.admin_password", Kind::Text),
    Flag::new("http-max-clients", "http.max_clients", Kind::Number, "64"),
    Flag::new("silence-db", "http.silence_db", Kind::Float, "-50"),
    Flag::new("silence-s", "http.silence_s", Kind::Number, "10"),
    Flag::unset("access-log", "http.access_log", Kind::Text),
    Flag::unset("on-connect", "hooks.on_connect", Kind::Text),
    Flag::unset("on-play", "hooks.on_play", Kind::Text),
    Flag::unset("on-publish", "hooks.on_publish", Kind::Text),
    Flag::unset("on-play-done", "hooks.on_play_done", Kind::Text),
    Flag::unset("on-publish-done", "hooks.on_publish_done", Kind::Text),
    Flag::unset("on-done", "hooks.on_done", Kind::Text),
    Flag::unset("run-on-publish", "hooks.run_on_publish", Kind::Text),
    Flag::new("hook-timeout-ms", "hooks.timeout_ms", Kind::Number, "5000"),
    Flag::new("rtsp", "rtsp.listen", Kind::Text, "off"),
    Flag::new("rtsp-max-clients", "rtsp.max_clients", Kind::Number, "32"),
    Flag::unset("record", "record", Kind::Text),
    Flag::new("record-interval", "record_interval", Kind::Number, "3600"),
    Flag::new("record-max-mb", "record_max_mb", Kind::Number, "64"),
    Flag::new("record-keep-mb", "record_keep_mb", Kind::Number, "1024"),
];

/// A flag as given on the command line, kept so [`Settings::reload`] can apply it again.
#[derive(Clone, Debug, PartialEq)]
struct FlagValue {
    flag: &'static Flag,
    value: String,
}

/// Sets `path` (`a.b.c`) in `table` to `value`, or appends `value` to the array there.
fn set(table: &mut Table, path: &str, value: Value, append: bool) {
    match path.split_once('.') {
        Some((head, rest)) => {
            let inner = table
                .entry(head)
                .or_insert_with(|| Value::Table(Table::new()));
            if !inner.is_table() {
                *inner = Value::Table(Table::new());
            }
            if let Value::Table(inner) = inner {
                set(inner, rest, value, append);
            }
        }
        None if append => match table.get_mut(path) {
            Some(Value::Array(items)) => items.push(value),
            _ => {
                table.insert(path.to_owned(), Value::Array(vec![value]));
            }
        },
        None => {
            table.insert(path.to_owned(), value);
        }
    }
}

/// Removes `path` (`a.b.c`) from `table` if it is there.
fn remove(table: &mut Table, path: &str) {
    match path.split_once('.') {
        Some((head, rest)) => {
            if let Some(Value::Table(inner)) = table.get_mut(head) {
                remove(inner, rest);
            }
        }
        None => {
            table.remove(path);
        }
    }
}

/// The `--help` text: every flag with its default and, where it differs from the flag's name,
/// its key in the config file (a test checks it against `FLAGS`).
pub const HELP: &str = "\
zerocast: live audio from a sound card or RTMP publishers to RTMP and HTTP listeners

Usage:
  zerocast [OPTIONS]            capture and serve rtmp://HOST/APP/NAME
  zerocast devices              list ALSA capture devices to pass to --source
  zerocast --version | --help

Each option is also a key of the --config file: the option's name with '_' for '-', in the
section a heading names; flags override the file.
  --config FILE                 TOML file with these settings; flags override it

Capture:
  --source SPEC                 alsa:DEVICE | stdin | tone[:HZ] | none [default: alsa:default]
                                  alsa:hw:1,0, alsa:plughw:CARD=Device,DEV=0, alsa:pulse, ...
                                  stdin: raw interleaved S16_LE at --rate/--channels
                                  tone: sine at HZ (default 440) at -12 dBFS
                                  none: no capture, only publishers' streams
  --stream APP/NAME             the capture's stream (file: capture_stream)
                                  [default: live/audio] (APP/audio with --app APP)
  --codec LIST                  pcm|adpcm|aac|mp3, comma-separated: the first is served at
                                  APP/NAME, each other at APP/NAME_CODEC [default: adpcm,aac]
                                  (adpcm alone in a build without the aac feature)
                                  adpcm: 4x smaller than pcm (~353 kbit/s at 44.1 kHz
                                  stereo) for ~9 M instructions/s on a Pi Zero;
                                  aac, mp3: ~47 / ~67 M instructions/s at 128k
  --bitrate KBPS                aac and mp3 bitrate, 32..=320 (128 or 128k) [default: 128]
  --rate HZ                     sample rate (pcm: 5512/11025/22050/44100,
                                  adpcm: 11025/22050/44100, mp3: 44100, aac: 8000
                                  to 48000; 48000 for all: AAC keeps it, the others
                                  are resampled to 44100)      [default: 44100]
  --channels 1|2                channels                       [default: 2]
  --period-ms N                 capture period, 5..=1000       [default: 20]

RTMP:
  --listen ADDR:PORT            RTMP listen address            [default: 0.0.0.0:1935]
  --app NAME                    application players and publishers use
                                  [default: live] (or the APP of --stream)
  --join-ms N                   audio a new player gets at once [default: 500]
  --max-clients N               simultaneous RTMP connections  [default: 100]
  --max-streams N               streams served at once, 1..=256 [default: 16]
  --max-per-addr N              connections from one address (an IPv6 /64 is
                                  one), RTMP and HTTP each; one address never takes
                                  the last 1/8 of the slots    [default: 32]
  --max-listeners N             listeners of one stream, HTTP and RTMP; 0: no limit
                                  ([[stream]] tables set their own) [default: 0]
  --max-listener-duration S     disconnect a listener after S seconds; 0: never
                                  ([[stream]] tables set their own) [default: 0]
  --max-listeners-per-addr N    listeners from one address; 0: no limit [default: 0]
  --publish-timeout-ms N        drop a publisher silent so long [default: 5000]
  --send-ms N                   audio may wait so long before it is written
                                  to players, 0..=500          [default: 20]
  --max-sends-per-s N           writes to all players per second before the
                                  send interval grows (to at most 100 ms);
                                  0: no bound                  [default: 1500]
  --handshake-timeout-ms N      close peers slower than this   [default: 10000]
  --idle-timeout-ms N           close silent peers after this  [default: 60000]

Access (file section [access]):
  --allow-publish LIST          comma-separated addresses or CIDR blocks allowed
                                  to publish                   [default: 127.0.0.0/8,::1]
  --publish-key KEY             publishers must give NAME?key=KEY or APP?key=KEY
                                  (8+ characters; 5 wrong a minute lock an address out)
                                  ([[stream]] tables in the file set keys per stream)
  --allow-play LIST             addresses allowed to play      [default: 0.0.0.0/0,::/0]
  --deny-play LIST              addresses refused playing      [default: none]
  --play-key KEY                players must give NAME?key=KEY (8+ characters)

Push relay:
  --push URL                    rtmp[s]://HOST[:PORT]/APP[/NAME][?QUERY]: push the capture
                                  stream there, or every stream (each under its name)
                                  when the URL has no NAME; or
                                  icecast://USER:PASSWORD@HOST[:PORT]/MOUNT: be that
                                  mount's source (MP3 or AAC); repeatable, replaces the
                                  file's [[push]] tables
  --tls-ca FILE                 CA certificates (PEM) trusted for rtmps:// beside the system's

HTTP (file section [http]):
  --http ADDR:PORT|off          HTTP listen address (file: listen) [default: 0.0.0.0:8000]
  --title TEXT                  stream title for HTTP listeners
  --admin-password TEXT         password of the Icecast /admin/ URLs, 8+ characters
                                  (unset: closed)
  --http-max-clients N          simultaneous HTTP connections (file: max_clients)
                                                               [default: 64]
  --silence-db DB               audio below this many dBFS is silence [default: -50]
  --silence-s N                 report silence after N seconds [default: 10]
  --stats-allow LIST            addresses shown listeners' and publishers' addresses
                                  in the reports (file: stats_allow)
                                                               [default: 127.0.0.0/8,::1]
  --access-log FILE             Icecast's access log (combined format + seconds
                                  connected), a line per listener as it leaves, HTTP
                                  and RTMP (unset: to the log, target access)

Hooks (file section [hooks]): http:// URLs POSTed nginx-rtmp's on_* form
                                  (call, addr, clientid, app, name, the name's query, ...)
  --on-connect URL              a peer connected; a refusal closes it
  --on-play URL                 a peer asks to play: 2xx allows, 3xx with Location renames,
                                  anything else (or no answer) refuses
  --on-publish URL              the same for publishing
  --on-play-done URL            a player stopped
  --on-publish-done URL         a publisher stopped
  --on-done URL                 after either
  --run-on-publish CMD          instead of --on-publish: run CMD with sh -c, the request
                                  in ZEROCAST_CALL/APP/NAME/QUERY/ADDR/... variables;
                                  exit status 0 allows
  --hook-timeout-ms N           a hook silent this long refuses (file: timeout_ms)
                                                               [default: 5000]

RTSP (file section [rtsp]; rtsp://HOST:PORT/APP/NAME, AAC, MP3 and PCM streams):
  --rtsp ADDR:PORT|off          RTSP listen address, such as 0.0.0.0:8554 (file: listen)
                                                               [default: off]
  --rtsp-max-clients N          simultaneous RTSP connections (file: max_clients)
                                                               [default: 32]

  Secrets (--publish-key, --play-key, --admin-password, --push) may be given as
  file:PATH (the file's first line) or env:NAME instead of the value, which `ps` shows.

Recording:
  --record DIR                  record every stream into DIR
  --record-interval N           start a new file every N seconds [default: 3600]
  --record-max-mb N             or when a file reaches N MiB   [default: 64]
  --record-keep-mb N            delete DIR's oldest recordings past N MiB [default: 1024]

  --log-level LEVEL             error|warn|info|debug|trace    [default: info]
  --version                     print the version
  --help                        print this help
";

/// Parses the command line (without the program name), reading the `--config` file if given.
/// Flags take their value as `--flag VALUE` or `--flag=VALUE`; a later flag overrides an earlier
/// one, except `--push`, which adds.
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Invocation, ConfigError> {
    let mut flags: Vec<FlagValue> = Vec::new();
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
                let Some(flag) = FLAGS.iter().find(|f| f.name == name) else {
                    return Err(ConfigError::UnknownFlag(arg));
                };
                let value = value_of(flag.name, inline, &mut args)?;
                flags.push(FlagValue { flag, value });
            }
        }
    }
    // After the loop, so that `--help` and `--version` win over a bad value before them.
    for f in &flags {
        f.flag.check(&f.value)?;
    }
    let settings = Settings::load(config_file, flags)?;
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
    v.into_string()
        .map_err(|v| bad(flag, v.to_string_lossy(), "expected UTF-8 text".into()))
}

/// Reads a config file and checks it on its own; the file may set any subset of the settings.
fn load_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    parse_file_text(&text).map_err(|reason| ConfigError::ParseFile {
        path: path.to_owned(),
        reason,
    })
}

/// The file's table, after deserializing the text itself into [`Settings`] so that an error
/// carries the line and column it is at.
fn parse_file_text(text: &str) -> Result<Table, String> {
    toml::from_str::<Settings>(text).map_err(|e| toml_error(text, &e))?;
    text.parse::<Table>().map_err(|e| toml_error(text, &e))
}

/// A TOML error as "line L, column C: what was wrong", without the quoted line the parser's own
/// message carries: that line may hold a key or a password, and the message goes to the
/// journal and to systemd's `STATUS=`.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    // One line: the message goes into a log line and `STATUS=`.
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let Some(span) = e.span() else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {message}")
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

    /// The settings without what records where they came from, to compare values only.
    fn values(mut s: Settings) -> Settings {
        s.flags.clear();
        s.config = None;
        s
    }

    /// The setting a bad command line is blamed on.
    fn blamed(list: &[&str]) -> String {
        match run(list) {
            Err(ConfigError::BadValue { setting, .. }) => setting,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    /// A config file with `text`, in a directory of its own, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, text: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("zerocast-cfg-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("z.toml");
            std::fs::write(&path, text).unwrap();
            Self(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    fn cidrs(list: &[Cidr]) -> Vec<String> {
        list.iter().map(Cidr::to_string).collect()
    }

    #[test]
    fn defaults_are_documented_ones() {
        let s = run(&[]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.listen, "0.0.0.0:1935".parse().unwrap());
        assert_eq!(s.source, SourceSpec::Alsa("default".into()));
        assert_eq!(
            (s.stream.to_string(), s.app.as_str()),
            ("live/audio".into(), "live")
        );
        let codecs: &[Codec] = if cfg!(feature = "aac") {
            &[Codec::Adpcm, Codec::Aac]
        } else {
            &[Codec::Adpcm]
        };
        assert_eq!((s.codecs.as_slice(), s.bitrate_kbps), (codecs, 128));
        assert_eq!(
            (s.join_ms, s.rate, s.channels, s.period_ms, s.max_clients),
            (500, 44100, 2, 20, 100)
        );
        assert_eq!(
            (
                s.max_streams,
                s.max_per_addr,
                s.publish_timeout_ms,
                s.send_interval_ms,
                s.max_sends_per_s
            ),
            (16, 32, 5000, 20, 1500)
        );
        assert_eq!(s.log_level, LevelFilter::Info);
        assert_eq!(s.period_frames(), 882);
        assert_eq!(cidrs(&s.access.allow_publish), ["127.0.0.0/8", "::1/128"]);
        assert_eq!(cidrs(&s.access.allow_play), ["0.0.0.0/0", "::/0"]);
        assert!(s.access.deny_play.is_empty());
        assert_eq!((&s.access.publish_key, &s.access.play_key), (&None, &None));
        assert!(s.streams.is_empty() && s.pushes.is_empty() && s.tls_ca.is_none());
        assert_eq!(s.http.listen, Some("0.0.0.0:8000".parse().unwrap()));
        assert_eq!((&s.http.title, &s.http.admin_password), (&None, &None));
        assert_eq!(
            (s.http.max_clients, s.http.silence_db, s.http.silence_s),
            (64, -50.0, 10)
        );
        assert_eq!(
            (
                &s.record,
                s.record_interval_s,
                s.record_max_mb,
                s.record_keep_mb
            ),
            (&None, 3600, 64, 1024)
        );
        assert_eq!(s.config, None);
    }

    /// Each flag with a value other than its default, and where that value must land.
    type Case = (&'static str, &'static str, fn(&Settings) -> bool);

    const CASES: &[Case] = &[
        ("listen", "127.0.0.1:19350", |s| {
            s.listen == "127.0.0.1:19350".parse().unwrap()
        }),
        ("source", "alsa:plughw:CARD=Device,DEV=0", |s| {
            s.source == SourceSpec::Alsa("plughw:CARD=Device,DEV=0".into())
        }),
        ("stream", "radio/main", |s| {
            s.stream.to_string() == "radio/main"
        }),
        ("app", "radio", |s| s.app == "radio"),
        ("codec", "aac,pcm", |s| s.codecs == [Codec::Aac, Codec::Pcm]),
        ("bitrate", "96k", |s| s.bitrate_kbps == 96),
        ("join-ms", "0", |s| s.join_ms == 0),
        ("rate", "22050", |s| s.rate == 22050),
        ("channels", "1", |s| s.channels == 1),
        ("period-ms", "40", |s| s.period_ms == 40),
        ("max-clients", "7", |s| s.max_clients == 7),
        ("max-streams", "3", |s| s.max_streams == 3),
        ("max-per-addr", "4", |s| s.max_per_addr == 4),
        ("max-listeners", "3", |s| s.max_listeners == 3),
        ("max-listener-duration", "3600", |s| {
            s.max_listener_duration == 3600
        }),
        ("max-listeners-per-addr", "2", |s| {
            s.max_listeners_per_addr == 2
        }),
        ("publish-timeout-ms", "2500", |s| {
            s.publish_timeout_ms == 2500
        }),
        ("send-ms", "0", |s| s.send_interval_ms == 0),
        ("max-sends-per-s", "0", |s| s.max_sends_per_s == 0),
        ("log-level", "trace", |s| s.log_level == LevelFilter::Trace),
        ("handshake-timeout-ms", "2000", |s| {
            s.handshake_timeout_ms == 2000
        }),
        ("idle-timeout-ms", "5000", |s| s.idle_timeout_ms == 5000),
        ("allow-publish", "10.0.0.0/8, 192.168.1.7", |s| {
            cidrs(&s.access.allow_publish) == ["10.0.0.0/8", "192.168.1.7/32"]
        }),
        ("publish-key", "s3cret-key", |s| {
            s.access.publish_key.as_deref() == Some("s3cret-key")
        }),
        ("allow-play", "192.168.0.0/16", |s| {
            cidrs(&s.access.allow_play) == ["192.168.0.0/16"]
        }),
        ("deny-play", "192.168.0.9,fd00::/8", |s| {
            cidrs(&s.access.deny_play) == ["192.168.0.9/32", "fd00::/8"]
        }),
        ("play-key", "k-1-player", |s| {
            s.access.play_key.as_deref() == Some("k-1-player")
        }),
        ("stats-allow", "192.168.1.0/24", |s| {
            cidrs(&s.http.stats_allow) == ["192.168.1.0/24"]
        }),
        ("push", "rtmp://up.example:1936/live/pi", |s| {
            s.pushes.len() == 1
                && s.pushes[0].stream.is_none()
                && PushUrl::parse("rtmp://up.example:1936/live/pi")
                    .is_ok_and(|u| s.pushes[0].url == u)
        }),
        ("tls-ca", "/etc/ca.pem", |s| {
            s.tls_ca == Some("/etc/ca.pem".into())
        }),
        ("http", "off", |s| s.http.listen.is_none()),
        ("title", "Pi radio", |s| {
            s.http.title.as_deref() == Some("Pi radio")
        }),
        ("admin-password", "hackme-please", |s| {
            s.http.admin_password.as_deref() == Some("hackme-please")
        }),
        ("http-max-clients", "5", |s| s.http.max_clients == 5),
        ("silence-db", "-40.5", |s| s.http.silence_db == -40.5),
        ("silence-s", "30", |s| s.http.silence_s == 30),
        ("on-connect", "http://127.0.0.1:8080/c", |s| {
            s.hooks.on_connect.as_ref().is_some_and(|u| u.path == "/c")
        }),
        ("on-play", "http://127.0.0.1:8080/p", |s| {
            s.hooks.on_play.as_ref().is_some_and(|u| u.port == 8080)
        }),
        ("on-publish", "http://hooks.lan/publish", |s| {
            s.hooks
                .on_publish
                .as_ref()
                .is_some_and(|u| u.host == "hooks.lan")
        }),
        ("on-play-done", "http://h/pd", |s| {
            s.hooks
                .on_play_done
                .as_ref()
                .is_some_and(|u| u.path == "/pd")
        }),
        ("on-publish-done", "http://h/ud", |s| {
            s.hooks
                .on_publish_done
                .as_ref()
                .is_some_and(|u| u.path == "/ud")
        }),
        ("on-done", "http://h/d", |s| {
            s.hooks.on_done.as_ref().is_some_and(|u| u.path == "/d")
        }),
        ("hook-timeout-ms", "2000", |s| s.hooks.timeout_ms == 2000),
        ("run-on-publish", "/usr/local/bin/check-key", |s| {
            s.hooks.run_on_publish.as_deref() == Some("/usr/local/bin/check-key")
        }),
        ("access-log", "/var/log/zerocast/access.log", |s| {
            s.http.access_log == Some("/var/log/zerocast/access.log".into())
        }),
        ("rtsp", "127.0.0.1:8554", |s| {
            s.rtsp.listen == Some("127.0.0.1:8554".parse().unwrap())
        }),
        ("rtsp-max-clients", "5", |s| s.rtsp.max_clients == 5),
        ("record", "/var/lib/zerocast", |s| {
            s.record == Some("/var/lib/zerocast".into())
        }),
        ("record-interval", "600", |s| s.record_interval_s == 600),
        ("record-max-mb", "8", |s| s.record_max_mb == 8),
        ("record-keep-mb", "100", |s| s.record_keep_mb == 100),
    ];

    #[test]
    fn every_flag_in_both_spellings() {
        for flag in FLAGS {
            assert!(
                CASES.iter().any(|(name, ..)| *name == flag.name),
                "--{} has no case here",
                flag.name
            );
        }
        for (name, value, check) in CASES {
            let joined = format!("--{name}={value}");
            let flag = format!("--{name}");
            for list in [&[joined.as_str()][..], &[flag.as_str(), value]] {
                let s = run(list).unwrap_or_else(|e| panic!("{list:?}: {e}"));
                assert!(check(&s), "{list:?}: {s:#?}");
                assert!(
                    !check(&Settings::default()),
                    "{name}: the case is the default"
                );
            }
        }
        // All at once, too: no flag disturbs another.
        let mut all: Vec<String> = CASES.iter().map(|(n, v, _)| format!("--{n}={v}")).collect();
        // Recording with --record-max-mb 8 and --record-keep-mb 100 is consistent; the 22050 Hz
        // rate needs a codec that carries it; --run-on-publish replaces --on-publish.
        let apart = ["codec", "run-on-publish"];
        all.retain(|a| !apart.iter().any(|n| a.starts_with(&format!("--{n}="))));
        let s = run(&all.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        for (name, _, check) in CASES.iter().filter(|(n, ..)| !apart.contains(n)) {
            assert!(check(&s), "{name}");
        }
    }

    #[test]
    fn a_publish_hook_is_a_url_or_a_command() {
        let both = ["--on-publish", "http://h/p", "--run-on-publish", "true"];
        assert_eq!(blamed(&both), "run-on-publish");
    }

    #[test]
    fn every_flag_default_is_the_default() {
        for flag in FLAGS {
            if let Some(default) = flag.default {
                let s = run(&[&format!("--{}={default}", flag.name)]).unwrap();
                assert_eq!(values(s), Settings::default(), "--{}", flag.name);
            }
        }
    }

    /// The lines of `HELP` about `--flag`: its own and the indented ones after it.
    fn help_paragraph(flag: &str) -> String {
        let mut lines = HELP
            .lines()
            .skip_while(|l| !l.starts_with(&format!("  --{flag} ")));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("--{flag} is not in HELP"));
        let rest = lines.take_while(|l| l.starts_with("    "));
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn help_lists_every_flag_with_its_default_and_file_key() {
        for flag in FLAGS {
            let text = help_paragraph(flag.name);
            match flag.default {
                Some("") => assert!(text.contains("[default: none]"), "{text}"),
                Some(d) => assert!(text.contains(&format!("[default: {d}]")), "{text}"),
                None => assert!(!text.contains("[default:"), "{text}"),
            }
            let leaf = flag.key.rsplit('.').next().unwrap();
            if leaf != flag.name.replace('-', "_") {
                assert!(text.contains(&format!("file: {leaf}")), "{text}");
            }
            if let Some((section, _)) = flag.key.split_once('.') {
                let heading = HELP[..HELP.find(&text).unwrap()]
                    .lines()
                    .rfind(|l| !l.starts_with(' ') && !l.is_empty())
                    .unwrap();
                assert!(heading.contains(&format!("[{section}]")), "--{}", flag.name);
            }
        }
        for word in HELP.split_whitespace().filter(|w| w.starts_with("--")) {
            let name = word.trim_start_matches('-');
            let name = name
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .next()
                .unwrap();
            assert!(
                FLAGS.iter().any(|f| f.name == name)
                    || ["config", "version", "help"].contains(&name),
                "HELP names --{name}, which is no flag"
            );
        }
        for flag in ["config", "version", "help"] {
            help_paragraph(flag);
        }
    }

    #[test]
    fn sources() {
        assert_eq!(SourceSpec::parse("stdin"), Ok(SourceSpec::Stdin));
        assert_eq!(SourceSpec::parse("none"), Ok(SourceSpec::None));
        assert_eq!(SourceSpec::parse("tone"), Ok(SourceSpec::Tone { hz: 440 }));
        assert_eq!(
            SourceSpec::parse("tone:1000"),
            Ok(SourceSpec::Tone { hz: 1000 })
        );
        assert_eq!(
            SourceSpec::parse("alsa:hw:1,0"),
            Ok(SourceSpec::Alsa("hw:1,0".into()))
        );
        for bad in [
            "tone:0", "tone:x", "tone:", "alsa:", "hw:1,0", "pulse", "", "None",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
        for spec in ["alsa:hw:1,0", "stdin", "tone:440", "none"] {
            assert_eq!(SourceSpec::parse(spec).unwrap().to_string(), spec);
        }
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases: &[(&[&str], &str)] = &[
            (&["--rate", "32000"], "rate"),
            (&["--codec", "adpcm", "--rate", "5512"], "rate"),
            (&["--channels", "3"], "channels"),
            (&["--period-ms", "4"], "period-ms"),
            (&["--codec", "flac"], "codec"),
            (&["--codec", "aac,pcm,aac"], "codec"),
            (&["--codec", ","], "codec"),
            (&["--listen", "1935"], "listen"),
            (&["--log-level", "loud"], "log-level"),
            (&["--stream", "live"], "stream"),
            (&["--app", "a/b"], "app"),
            (&["--app", "radio", "--stream", "live/audio"], "stream"),
            (&["--allow-publish", "10.0.0.0/33"], "allow-publish"),
            (&["--allow-play", "everyone"], "allow-play"),
            (&["--deny-play", "::1/129"], "deny-play"),
            (&["--publish-key", ""], "publish-key"),
            (&["--play-key", "a&b"], "play-key"),
            (&["--join-ms", "-1"], "join-ms"),
            (&["--join-ms", "99999999999"], "join-ms"),
            (&["--join-ms", "1.5"], "join-ms"),
            (&["--rate", "96000"], "rate"),
            (&["--bitrate", "16"], "bitrate"),
            (&["--bitrate", "fast"], "bitrate"),
            (&["--max-streams", "0"], "max-streams"),
            (&["--max-streams", "257"], "max-streams"),
            (&["--max-per-addr", "0"], "max-per-addr"),
            (&["--max-clients", "0"], "max-clients"),
            (&["--publish-timeout-ms", "10"], "publish-timeout-ms"),
            (&["--send-ms", "501"], "send-ms"),
            (&["--handshake-timeout-ms", "1"], "handshake-timeout-ms"),
            (&["--idle-timeout-ms", "1"], "idle-timeout-ms"),
            (&["--push", "http://example/live"], "push"),
            (&["--source", "none", "--push", "rtmp://h/live/x"], "push"),
            (&["--tls-ca", ""], "tls-ca"),
            (&["--http", "8000"], "http"),
            (&["--http", "0.0.0.0:1935"], "http"),
            (
                &["--listen", "127.0.0.1:9000", "--http", "[::]:9000"],
                "http",
            ),
            (&["--title", "a\nb"], "title"),
            (&["--admin-password", ""], "admin-password"),
            (&["--admin-password", "short"], "admin-password"),
            (&["--publish-key", "1234567"], "publish-key"),
            (&["--play-key", "k"], "play-key"),
            (&["--http-max-clients", "0"], "http-max-clients"),
            (&["--silence-db", "3"], "silence-db"),
            (&["--silence-db", "quiet"], "silence-db"),
            (&["--silence-s", "0"], "silence-s"),
            (&["--record", ""], "record"),
            (&["--record-interval", "1"], "record-interval"),
            (&["--record-max-mb", "0"], "record-max-mb"),
            (&["--record-keep-mb", "10"], "record-keep-mb"),
            (&["--source", "mic"], "source"),
        ];
        for (list, setting) in cases {
            assert_eq!(blamed(list), *setting, "{list:?}");
        }
        let msg = run(&["--rate", "32000"]).unwrap_err().to_string();
        assert!(
            msg.contains("plughw") && msg.contains("codec adpcm"),
            "{msg}"
        );
        let msg = run(&["--max-streams", "99999999999"])
            .unwrap_err()
            .to_string();
        assert!(msg.ends_with("expected 1 to 256"), "{msg}");
        let msg = run(&["--join-ms", "soon"]).unwrap_err().to_string();
        assert!(msg.ends_with("expected a whole number"), "{msg}");
        let msg = run(&["--period-ms", "4"]).unwrap_err().to_string();
        assert_eq!(msg, "bad value '4' for period-ms: expected 5 to 1000");
        let msg = run(&["--source", "mic"]).unwrap_err().to_string();
        assert!(
            msg.contains("bad value 'mic' for source: expected alsa:DEVICE"),
            "{msg}"
        );
    }

    #[test]
    fn codec_lists_and_rates() {
        // PCM may use 5512 where ADPCM may not.
        assert_eq!(
            run(&["--codec", "pcm", "--rate", "5512"]).unwrap().rate,
            5512
        );
        // AAC carries 48 kHz itself; PCM, ADPCM and MP3 are resampled to 44.1 kHz.
        for codec in ["aac", "mp3", "mp3,aac", "pcm", "adpcm"] {
            assert_eq!(
                run(&["--codec", codec, "--rate", "48000"]).unwrap().rate,
                48000
            );
        }
        assert_eq!(
            run(&["--codec", "aac", "--rate", "8000"]).unwrap().rate,
            8000
        );
        assert_eq!(blamed(&["--codec", "aac", "--rate", "44000"]), "rate");
        // A rendition that cannot carry the rate is named, wherever it stands in the list.
        let msg = run(&["--codec", "aac,pcm", "--rate", "32000"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("for codec pcm"), "{msg}");
        let msg = run(&["--codec", "mp3", "--rate", "22050"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("for codec mp3"), "{msg}");
        let s = run(&["--codec", " aac , mp3 ,pcm"]).unwrap();
        assert_eq!(s.codecs, [Codec::Aac, Codec::Mp3, Codec::Pcm]);
        assert_eq!(s.stream.rendition(Codec::Mp3).to_string(), "live/audio_mp3");
        let msg = run(&["--codec", "pcm,pcm"]).unwrap_err().to_string();
        assert!(msg.contains("not pcm twice"), "{msg}");
        for (codec, name) in [(Codec::Aac, "aac"), (Codec::Mp3, "mp3")] {
            assert_eq!(codec.to_string(), name);
            assert_eq!(Codec::parse(name), Ok(codec));
        }
        assert_eq!(run(&["--bitrate", "320"]).unwrap().bitrate_kbps, 320);
        assert_eq!(run(&["--bitrate=32k"]).unwrap().bitrate_kbps, 32);
    }

    #[test]
    fn icecast_push_urls() {
        let u = PushUrl::parse("icecast://source:hackme@ice.example/radio.mp3").unwrap();
        assert!(u.icecast && !u.tls && u.one_stream());
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str()),
            ("ice.example", 8000, "radio.mp3")
        );
        assert_eq!(
            (u.user.as_deref(), u.password.as_deref()),
            (Some("source"), Some("hackme"))
        );
        // Shown without the credentials.
        assert_eq!(u.to_string(), "icecast://ice.example:8000/radio.mp3");
        let u = PushUrl::parse("icecast://:p@[::1]:8010/live/radio").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str(), u.user.as_deref()),
            ("::1", 8010, "live/radio", None)
        );
        assert!(PushUrl::parse("icecasts://s:p@h/m").unwrap().tls);
        for bad in ["icecast://h", "icecast://s:p@/m", "icecast://h/m?x=1"] {
            assert!(PushUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn push_urls() {
        let url = |s: &str| PushUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let u = url("rtmp://example.com/live/pi");
        assert_eq!(
            (
                u.tls,
                u.host.as_str(),
                u.port,
                u.app.as_str(),
                u.name.as_deref(),
                u.query
            ),
            (false, "example.com", 1935, "live", Some("pi"), None)
        );
        let u = url("rtmps://live-api-s.facebook.com/rtmp/FB-123-0-Ab?s_bl=1");
        assert_eq!((u.tls, u.port, u.app.as_str()), (true, 443, "rtmp"));
        assert_eq!(
            (u.name.as_deref(), u.query.as_deref()),
            (Some("FB-123-0-Ab"), Some("s_bl=1"))
        );
        let u = url("rtmp://[::1]:19350/live");
        assert_eq!((u.host.as_str(), u.port, &u.name), ("::1", 19350, &None));
        assert_eq!(u.to_string(), "rtmp://[::1]:19350/live");
        let u = url("rtmp://10.0.0.2:1936/app/inst/name?key=k");
        assert_eq!(
            (u.host.as_str(), u.name.as_deref()),
            ("10.0.0.2", Some("inst/name"))
        );
        // Shown without what may be a key: the name and the query.
        assert_eq!(u.to_string(), "rtmp://10.0.0.2:1936/app/…");
        assert_eq!(url("rtmp://h/live/").name, None);
        assert_eq!(url("rtmp://h/live?key=k").query.as_deref(), Some("key=k"));
        for (bad, says) in [
            ("http://h/live", "rtmp://"),
            ("rtmp://h", "application"),
            ("rtmp://h/", "application"),
            ("rtmp:///live", "host"),
            ("rtmp://h:0/live", "port"),
            ("rtmp://h:70000/live", "port"),
            ("rtmp://h:x/live", "port"),
            ("rtmp://[::1/live", "IPv6"),
            ("rtmp://[zz]/live", "IPv6"),
            ("rtmp://[::1]x/live", "PORT"),
            ("rtmp://h/live/a b", "spaces"),
            ("rtmp://h/live/a?", "query"),
            ("rtmp://h_h/live", "host"),
        ] {
            let e = PushUrl::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    const FULL: &str = r#"
listen = "127.0.0.1:2000"
source = "tone:1000"
capture_stream = "radio/main"
codec = ["aac", "mp3"]
bitrate = "96k"
rate = 48000
join_ms = 250
tls_ca = "/etc/zerocast/ca.pem"
record = "/var/lib/zerocast"
record_interval = 900

[access]
allow_publish = ["10.1.0.0/16"]
publish_key = "general-key"
deny_play = "192.168.1.66"

[http]
listen = "off"
title = "Pi radio"
admin_password = "hackme-please"
silence_db = -45

[[stream]]
name = "radio/main"
key = "main-key-1"
codec = "aac"
title = "Main"
push = "rtmp://up.example/live/main"
max_listeners = 50
max_listener_duration = 7200

[[stream]]
name = "radio/guest"
key = "guest-key-1"
record = "/srv/guest"
push = ["rtmp://a/live", "rtmps://b/live/g"]

[[push]]
url = "rtmp://up.example/live"

[[push]]
url = "rtmp://other.example/app/x"
stream = "radio/guest"
"#;

    #[test]
    fn a_file_with_every_section() {
        let file = TempFile::new("full", FULL);
        let s = run(&["--config", file.arg()]).unwrap();
        assert_eq!(s.config.as_deref(), Some(file.0.as_path()));
        assert_eq!(s.listen, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(s.source, SourceSpec::Tone { hz: 1000 });
        assert_eq!(
            (s.stream.to_string(), s.app.as_str()),
            ("radio/main".into(), "radio")
        );
        assert_eq!(
            (s.codecs.as_slice(), s.bitrate_kbps, s.rate),
            (&[Codec::Aac, Codec::Mp3][..], 96, 48000)
        );
        assert_eq!(s.join_ms, 250);
        assert_eq!(s.tls_ca, Some("/etc/zerocast/ca.pem".into()));
        assert_eq!(
            (s.record.clone(), s.record_interval_s),
            (Some("/var/lib/zerocast".into()), 900)
        );
        assert_eq!(cidrs(&s.access.allow_publish), ["10.1.0.0/16"]);
        assert_eq!(s.access.publish_key.as_deref(), Some("general-key"));
        assert_eq!(cidrs(&s.access.deny_play), ["192.168.1.66/32"]);
        assert_eq!(cidrs(&s.access.allow_play), ["0.0.0.0/0", "::/0"]);
        assert_eq!(s.http.listen, None);
        assert_eq!(
            (s.http.title.as_deref(), s.http.admin_password.as_deref()),
            (Some("Pi radio"), Some("hackme-please"))
        );
        assert_eq!((s.http.silence_db, s.http.max_clients), (-45.0, 64));
        let [main, guest] = s.streams.as_slice() else {
            panic!("{:?}", s.streams)
        };
        assert_eq!(
            (
                main.name.to_string(),
                main.key.as_deref(),
                main.title.as_deref()
            ),
            ("radio/main".into(), Some("main-key-1"), Some("Main"))
        );
        assert_eq!(
            (main.codecs.as_deref(), &main.record),
            (Some(&[Codec::Aac][..]), &None)
        );
        assert_eq!(s.capture_codecs(), [Codec::Aac]);
        assert_eq!(
            (main.max_listeners, main.max_listener_duration),
            (Some(50), Some(7200))
        );
        assert_eq!(
            (guest.max_listeners, guest.max_listener_duration),
            (None, None)
        );
        assert_eq!(
            main.push,
            [PushUrl::parse("rtmp://up.example/live/main").unwrap()]
        );
        assert_eq!(
            (&guest.codecs, guest.record.as_deref()),
            (&None, Some(Path::new("/srv/guest")))
        );
        assert_eq!(
            guest
                .push
                .iter()
                .map(|u| u.name.as_deref())
                .collect::<Vec<_>>(),
            [None, Some("g")]
        );
        let [all, one] = s.pushes.as_slice() else {
            panic!("{:?}", s.pushes)
        };
        assert_eq!((all.url.name.as_deref(), &all.stream), (None, &None));
        assert_eq!(
            one.stream.as_ref().map(ToString::to_string).as_deref(),
            Some("radio/guest")
        );
    }

    #[test]
    fn flags_override_the_file_wherever_they_stand() {
        let file = TempFile::new("over", FULL);
        let s = run(&[
            "--join-ms",
            "100",
            "--config",
            file.arg(),
            "--source=stdin",
            "--allow-publish",
            "127.0.0.1",
            "--http",
            "127.0.0.1:8001",
            "--push",
            "rtmp://x/live/a",
            "--push=rtmp://y/live",
        ])
        .unwrap();
        assert_eq!((s.join_ms, &s.source), (100, &SourceSpec::Stdin));
        assert_eq!(s.listen, "127.0.0.1:2000".parse().unwrap());
        // A flag replaces one key of a section; the file's other keys there stay.
        assert_eq!(cidrs(&s.access.allow_publish), ["127.0.0.1/32"]);
        assert_eq!(s.access.publish_key.as_deref(), Some("general-key"));
        assert_eq!(s.http.listen, Some("127.0.0.1:8001".parse().unwrap()));
        assert_eq!(s.http.title.as_deref(), Some("Pi radio"));
        // --push replaces the file's [[push]] tables, and each use adds one.
        let urls: Vec<(&str, Option<&str>)> = s
            .pushes
            .iter()
            .map(|p| (p.url.host.as_str(), p.url.name.as_deref()))
            .collect();
        assert_eq!(urls, [("x", Some("a")), ("y", None)]);
        assert_eq!(s.streams.len(), 2);
        // A later flag wins over an earlier one.
        assert_eq!(
            run(&["--rate", "11025", "--rate=22050"]).unwrap().rate,
            22050
        );
    }

    #[test]
    fn file_errors_name_line_and_column() {
        let cases = [
            (
                "join-ms = 5\n",
                "unknown field `join-ms`",
                "line 1, column 1",
            ),
            (
                "join_ms = \"soon\"\n",
                "expected a whole number from 0 to 60000",
                "line 1, column 11",
            ),
            ("rate = 44100\nrate = 22050\n", "duplicate", "line 2"),
            // The line itself is not quoted: it may hold a secret.
            (
                "[access]\npublish_key = 5 # s3cret-in-a-comment\n",
                "invalid type",
                "line 2",
            ),
            ("channels = 6\n", "expected 1 to 2", "line 1, column 12"),
            (
                "[access]\nallow_publish = [\"10.0.0.0/33\"]\n",
                "prefix length",
                "line 2",
            ),
            (
                "[access]\nallow_pubish = []\n",
                "unknown field `allow_pubish`",
                "line 2",
            ),
            (
                "allow_publish = []\n",
                "unknown field `allow_publish`",
                "line 1",
            ),
            (
                "stream = \"live/audio\"\n",
                "capture_stream = \"APP/NAME\"",
                "line 1",
            ),
            (
                "[[stream]]\nkey = \"kkkkkkkk\"\n",
                "missing field `name`",
                "line 1",
            ),
            (
                "[[stream]]\nname = \"live/a\"\nkye = \"k\"\n",
                "unknown field `kye`",
                "line 3",
            ),
            ("[[push]]\nurl = \"rtmp://h\"\n", "application", "line 2"),
            ("[http]\nlisten = \"on\"\n", "or off", "line 2"),
            ("codec = []\n", "at least one codec", "line 1"),
            ("listen = \n", "", "line 1"),
        ];
        for (text, says, at) in cases {
            let e = parse_file_text(text).unwrap_err();
            assert!(e.contains(says) && e.contains(at), "{text:?}: {e}");
            assert!(!e.contains("s3cret"), "{text:?}: {e}");
        }
        let missing = PathBuf::from("/nonexistent/zerocast.toml");
        let e = parse_args(args(&["--config", "/nonexistent/zerocast.toml"])).unwrap_err();
        assert!(
            matches!(&e, ConfigError::ReadFile { path, .. } if *path == missing),
            "{e}"
        );
        let file = TempFile::new("bad", "listen = \"0.0.0.0:1935\"\nsorce = \"tone\"\n");
        let e = run(&["--config", file.arg()]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::ParseFile { path, .. } if *path == file.0),
            "{e}"
        );
        let e = e.to_string();
        assert!(
            e.contains("unknown field `sorce`") && e.contains("line 2, column 1"),
            "{e}"
        );
    }

    #[test]
    fn checks_across_settings() {
        let file_error = |tag: &str, text: &str, extra: &[&str]| {
            let file = TempFile::new(tag, text);
            let mut list = vec!["--config", file.arg()];
            list.extend_from_slice(extra);
            match run(&list) {
                Err(ConfigError::BadValue { setting, value, .. }) => (setting, value),
                other => panic!("{text}: {other:?}"),
            }
        };
        // The capture stream may have a [[stream]] table, with a key; a name twice is an error.
        let ok = TempFile::new(
            "capkey",
            "[[stream]]\nname = \"live/audio\"\nkey = \"capture-key\"\n",
        );
        assert_eq!(
            run(&["--config", ok.arg()]).unwrap().streams[0]
                .key
                .as_deref(),
            Some("capture-key")
        );
        let twice = "[[stream]]\nname = \"live/a\"\n[[stream]]\nname = \"live/b\"\n[[stream]]\nname = \"live/a\"\n";
        assert_eq!(
            file_error("twice", twice, &[]),
            ("[[stream]] name".into(), "live/a".into())
        );
        // Every stream is under the one application.
        let other_app = "[[stream]]\nname = \"radio/a\"\n";
        assert_eq!(
            file_error("app", other_app, &[]),
            ("[[stream]] name".into(), "radio/a".into())
        );
        let push_app = "[[push]]\nurl = \"rtmp://h/live\"\nstream = \"radio/a\"\n";
        assert_eq!(file_error("papp", push_app, &[]).0, "[[push]] stream");
        // The application follows --stream unless given.
        assert_eq!(run(&["--stream", "radio/main"]).unwrap().app, "radio");
        assert_eq!(
            run(&["--app", "radio", "--stream", "radio/main"])
                .unwrap()
                .app,
            "radio"
        );
        // A rendition's name is taken.
        let taken = "codec = \"aac,pcm\"\n[[stream]]\nname = \"live/audio_pcm\"\n";
        assert_eq!(
            file_error("taken", taken, &[]),
            ("[[stream]] name".into(), "live/audio_pcm".into())
        );
        // ... unless there is no capture.
        let t = TempFile::new("taken-none", taken);
        assert!(run(&["--config", t.arg(), "--source", "none"]).is_ok());
        // The capture stream's table may set its codecs, which replace --codec and are checked
        // against the rate; other streams' audio is served as it comes.
        let own = "[[stream]]\nname = \"live/audio\"\ncodec = \"adpcm\"\n";
        let (setting, value) = file_error("rate", own, &["--codec", "aac", "--rate", "32000"]);
        assert_eq!((setting.as_str(), value.as_str()), ("rate", "32000"));
        let t = TempFile::new("own", own);
        let s = run(&["--config", t.arg(), "--codec", "aac"]).unwrap();
        assert_eq!(
            (s.capture_codecs(), s.codecs.as_slice()),
            (&[Codec::Adpcm][..], &[Codec::Aac][..])
        );
        assert_eq!(
            run(&["--codec", "mp3"]).unwrap().capture_codecs(),
            [Codec::Mp3]
        );
        assert_eq!(
            file_error("own-none", own, &["--source", "none"]).0,
            "[[stream]] codec"
        );
        let other = "[[stream]]\nname = \"live/b\"\ncodec = \"aac\"\n";
        assert_eq!(
            file_error("other", other, &[]),
            ("[[stream]] codec".into(), "live/b".into())
        );
        // Without a capture, its codecs and rate do not matter.
        assert!(run(&["--source", "none", "--rate", "48000"]).is_ok());
        let taken = "[[stream]]\nname = \"live/audio\"\ncodec = \"aac,mp3\"\n[[stream]]\nname = \"live/audio_mp3\"\n";
        assert_eq!(file_error("taken2", taken, &[]).1, "live/audio_mp3");
        // More configured streams than --max-streams.
        let three = "[[stream]]\nname = \"live/a\"\n[[stream]]\nname = \"live/b\"\n";
        assert_eq!(
            file_error("max", three, &["--max-streams", "2"]).0,
            "max-streams"
        );
        let t = TempFile::new("max-none", three);
        assert!(run(&[
            "--config",
            t.arg(),
            "--max-streams",
            "2",
            "--source",
            "none"
        ])
        .is_ok());
        // A push of "the capture stream" without a capture; with a stream named it is fine.
        let t = TempFile::new(
            "push-none",
            "[[push]]\nurl = \"rtmp://h/live/x\"\nstream = \"live/a\"\n",
        );
        assert!(run(&["--config", t.arg(), "--source", "none"]).is_ok());
        assert!(run(&["--source", "none", "--push", "rtmp://h/live"]).is_ok());
        // Ephemeral ports never clash.
        assert!(run(&["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]).is_ok());
        assert!(run(&["--listen", "127.0.0.1:1935", "--http", "127.0.0.2:1935"]).is_ok());
        assert!(run(&["--record-max-mb", "100", "--record-keep-mb", "100"]).is_ok());
    }

    #[test]
    fn reload_reads_the_file_again_under_the_same_flags() {
        let file = TempFile::new("reload", "join_ms = 250\nrate = 22050\n");
        let s = run(&["--config", file.arg(), "--rate", "11025"]).unwrap();
        assert_eq!((s.join_ms, s.rate), (250, 11025));
        assert_eq!(s.reload().unwrap(), s);
        std::fs::write(
            &file.0,
            "join_ms = 750\nrate = 22050\n[http]\ntitle = \"new\"\n",
        )
        .unwrap();
        let new = s.reload().unwrap();
        assert_eq!(
            (new.join_ms, new.rate, new.http.title.as_deref()),
            (750, 11025, Some("new"))
        );
        assert_ne!(new, s);
        std::fs::write(&file.0, "join_ms = 750\n[http\n").unwrap();
        let e = s.reload().unwrap_err().to_string();
        assert!(e.contains("line 2, column 6"), "{e}");
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
            parse_args(args(&["--push"])),
            Err(ConfigError::MissingValue("push"))
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
    fn packaged_config_is_the_defaults() {
        let text = include_str!("../../packaging/zerocast.toml");
        let table = parse_file_text(text).unwrap();
        let mut s: Settings = table.try_into().unwrap();
        s.validate().unwrap();
        assert_eq!(s, Settings::default());
        // Every flag's key is in it (a [[push]] only as an example, commented out).
        for flag in FLAGS.iter().filter(|f| f.default.is_some()) {
            let leaf = flag.key.rsplit('.').next().unwrap();
            assert!(text.contains(&format!("\n{leaf} = ")), "{}", flag.key);
        }
        for example in ["#[[stream]]", "#[[push]]", "#publish_key = ", "#title = "] {
            assert!(text.contains(example), "{example}");
        }
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

    #[test]
    fn secrets_come_from_a_file_or_the_environment_and_never_show_in_errors() {
        let dir = std::env::temp_dir().join(format!("zerocast-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "from-the-file-123\nignored\n").unwrap();
        std::env::set_var("ZEROCAST_TEST_PLAY_KEY", "from-the-env-456");
        let key_arg = format!("--publish-key=file:{}", file.display());
        let Ok(Invocation::Run(s)) = parse_args(
            [key_arg.as_str(), "--play-key", "env:ZEROCAST_TEST_PLAY_KEY"].map(OsString::from),
        ) else {
            panic!("not parsed");
        };
        assert_eq!(s.access.publish_key.as_deref(), Some("from-the-file-123"));
        assert_eq!(s.access.play_key.as_deref(), Some("from-the-env-456"));
        assert!(s.secrets_on_command_line().is_empty());
        let Ok(Invocation::Run(s)) =
            parse_args(["--admin-password", "literal-secret"].map(OsString::from))
        else {
            panic!("not parsed");
        };
        assert_eq!(s.secrets_on_command_line(), ["admin-password"]);
        // A bad push URL with a key in it: the error names the flag, not the key.
        let e = parse_args(["--push", "rtmp://h:99999/live/KEY-123"].map(OsString::from))
            .unwrap_err()
            .to_string();
        assert!(e.contains("push") && !e.contains("KEY-123"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
