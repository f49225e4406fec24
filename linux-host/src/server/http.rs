//! The server's HTTP side: the listener, accepting, requests answered from the stream table
//! (the [`Site`] the sans-IO [`crate::http`] pieces ask), listeners started on a format's ring,
//! the reports' snapshot, and silence detection on the capture.

use std::io;
use std::net::SocketAddr;

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};
use zerocast_core::flv::SoundFormat;
use zerocast_core::time::Instant;

use super::listeners::{self, ListenerLimits};
use super::Server;
use super::{Conn, Kind};
use crate::audience::{unix_now, Audience, Listening};
use crate::capture::{CaptureStatus, SourceState};
use crate::config::{Settings, SourceSpec, StreamPath};
use crate::conn::{Close, Granted, HttpPart, Role};
use crate::formats::framer::mse_type;
use crate::formats::Format;
use crate::guesses::Guesses;
use crate::http::listener::HttpConn;
use crate::http::request::Request;
use crate::http::route::Mount;
use crate::http::stat::ListenerInfo;
use crate::http::stat::{ClientStat, Protocol, PublisherStat, RelayStat, StatSnapshot, StreamStat};
use crate::http::{
    HttpConfig, MountInfo, Received, SendClass, Site, HTTP_BURST_ENV, HTTP_BURST_MS, MP4_BURST_MS,
};
use crate::hub::{Denied, Hub, StreamId};
use crate::limits::Group;
use crate::logging::Escaped;
use crate::silence::{SilenceDetector, SilenceEvent};
use crate::stream::Publisher;

/// The HTTP side's settings.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Request handling.
    pub config: HttpConfig,
    /// HTTP connections served at once.
    pub max_clients: usize,
    /// Audio a new listener of an Icecast mount or HTTP-FLV gets at once: it makes `<audio>`
    /// start without waiting, and is how far behind live such a listener stays.
    pub burst_ms: u64,
    /// The same for `.mp4` (the page's MSE player, which keeps itself near the live edge).
    pub mp4_burst_ms: u64,
    /// The first title of every stream (`http.title`).
    pub title: Option<String>,
    /// Streams' own first titles (`[[stream]] title`), by `(app, name)`.
    pub stream_titles: Vec<(String, String, String)>,
    /// `icy-br` of AAC and MP3 mounts.
    pub bitrate_kbps: u32,
    /// Silence threshold of the capture's input, in dBFS.
    pub silence_db: f64,
    /// Hold time of the silence detector.
    pub silence_s: f64,
    /// The capture's rate and channels (for the silence detector).
    pub capture_format: Option<(u32, u8)>,
    /// The capture source, as shown in the reports.
    pub source: String,
    /// Who sees addresses in the reports.
    pub stats_allow: Vec<crate::config::Cidr>,
    /// Wireless interfaces found with power saving on at start (for the reports).
    pub wifi_power_save: Vec<String>,
    /// The streams the configuration names (`APP`, `NAME`): their listeners wait for audio.
    pub configured: Vec<(String, String)>,
}

impl HttpOptions {
    /// The HTTP side's part of the settings.
    pub fn from_settings(settings: &Settings) -> Self {
        let http = &settings.http;
        Self {
            config: HttpConfig {
                name: http.title.clone().unwrap_or_else(|| "zerocast".to_owned()),
                admin_password: http.admin_password.clone(),
                header_timeout_ms: u64::from(settings.handshake_timeout_ms),
            },
            max_clients: http.max_clients as usize,
            burst_ms: std::env::var(HTTP_BURST_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(HTTP_BURST_MS),
            mp4_burst_ms: MP4_BURST_MS,
            title: http.title.clone(),
            stream_titles: settings
                .streams
                .iter()
                .filter_map(|s| {
                    let t = s.title.clone()?;
                    Some((s.name.app.clone(), s.name.name.clone(), t))
                })
                .collect(),
            bitrate_kbps: settings.bitrate_kbps,
            silence_db: f64::from(http.silence_db),
            silence_s: f64::from(http.silence_s),
            capture_format: (settings.source != SourceSpec::None)
                .then_some((settings.rate, settings.channels)),
            source: settings.source.to_string(),
            stats_allow: http.stats_allow.clone(),
            wifi_power_save: Vec::new(),
            configured: settings
                .streams
                .iter()
                .map(|s| (s.name.app.clone(), s.name.name.clone()))
                .collect(),
        }
    }
}

impl HttpOptions {
    /// The title of `app/name` until the admin URL sets one: its `[[stream]]` title (also for
    /// its renditions `NAME_CODEC`), else `http.title`, else none.
    fn first_title(&self, app: &str, name: &str) -> String {
        self.stream_titles
            .iter()
            .find(|(a, n, _)| a == app && of_mount(name, n))
            .map(|(_, _, t)| t.clone())
            .or_else(|| self.title.clone())
            .unwrap_or_default()
    }
}

/// The title `stream` shows: the one set at run time, else its first one.
fn title_of(stream: &crate::stream::Stream, options: Option<&HttpOptions>) -> String {
    match (stream.title(), options) {
        ("", Some(o)) => o.first_title(stream.app(), stream.name()),
        (title, _) => title.to_owned(),
    }
}

/// The HTTP listener and what the server keeps for it.
pub(super) struct HttpSide {
    listener: TcpListener,
    token: Token,
    options: HttpOptions,
    silence: Option<SilenceDetector>,
    /// What HLS segment URLs carry in place of the play key (`?token=`): a keyed player's
    /// segments need a credential, and the key itself is kept out of every page. Random, made
    /// anew when a reload changes the play key (the old one ends with it; players fetch a new
    /// playlist every second or so).
    segment_token: String,
}

/// A new [`HttpSide::segment_token`] from 16 random bytes.
fn segment_token(random: [u8; 16]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

impl HttpSide {
    pub(super) fn listener(&self) -> &TcpListener {
        &self.listener
    }

    pub(super) fn max_clients(&self) -> usize {
        self.options.max_clients
    }

    /// A new connection's state.
    pub(super) fn connection(&self, now: Instant) -> Kind {
        Kind::Http(Box::new(HttpConn::new(now, &self.options.config)))
    }
}

impl Server {
    /// Listens for HTTP on `addr` as well; returns the address bound. Call before the loop
    /// registers the server.
    pub fn listen_http(
        &mut self,
        addr: SocketAddr,
        options: HttpOptions,
    ) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let bound = listener.local_addr()?;
        self.hub.enable_http();
        let slots = self.conns.len() + options.max_clients;
        self.conns.resize_with(slots, || None);
        let silence = options
            .capture_format
            .map(|(rate, _)| SilenceDetector::new(options.silence_db, options.silence_s, rate));
        self.http = Some(HttpSide {
            listener,
            token: Token(self.token_base + 1 + slots),
            options,
            silence,
            segment_token: segment_token(self.entropy()),
        });
        Ok(bound)
    }

    /// SIGHUP: the title, the admin password and the silence thresholds take the reloaded
    /// settings' values, a new play key a new segment token; the listener and its connection
    /// limit stay (they take a restart). Called before `self.settings` is replaced.
    pub(super) fn reload_http(&mut self, settings: &Settings) {
        let rotated = self.settings.access.play_key != settings.access.play_key;
        let token = rotated.then(|| segment_token(self.entropy()));
        let Some(side) = self.http.as_mut() else {
            return;
        };
        if let Some(token) = token {
            side.segment_token = token;
        }
        let new = HttpOptions {
            max_clients: side.options.max_clients,
            wifi_power_save: side.options.wifi_power_save.clone(),
            ..HttpOptions::from_settings(settings)
        };
        if (new.silence_db, new.silence_s) != (side.options.silence_db, side.options.silence_s) {
            side.silence = new
                .capture_format
                .map(|(rate, _)| SilenceDetector::new(new.silence_db, new.silence_s, rate));
        }
        side.options = new;
    }

    pub(super) fn register_http(&mut self, registry: &Registry) -> io::Result<()> {
        match &mut self.http {
            Some(h) => registry.register(&mut h.listener, h.token, Interest::READABLE),
            None => Ok(()),
        }
    }

    pub(super) fn is_http_listener(&self, token: Token) -> bool {
        self.http.as_ref().is_some_and(|h| h.token == token)
    }

    /// Feeds request bytes to an HTTP connection (taken out of the slab); starts a listener on
    /// its format's ring when it asks for a stream. Consumes everything.
    pub(super) fn http_input(
        &mut self,
        http: &mut HttpConn,
        peer: SocketAddr,
        index: usize,
        input: &[u8],
    ) -> Option<Admitted> {
        let side = self.http.as_ref()?;
        let (config, burst, mp4_burst) = (
            side.options.config.clone(),
            side.options.burst_ms,
            side.options.mp4_burst_ms,
        );
        let now = self.core_time(std::time::Instant::now());
        let report = Report {
            conns: &self.conns,
            relays: &self.relays,
            capture_status: self.capture_status,
            capture: self.capture.first().map(|(id, _)| *id),
            side: Some(side),
            accepted: self.accepted,
            audience: &self.audience,
            now,
        };
        let mut site = HubSite {
            hub: &mut self.hub,
            report,
            access: &self.options.access,
            stats_allow: &side.options.stats_allow,
            segment_token: &side.segment_token,
            peer: peer.ip(),
            granted: None,
            guesses: &mut self.guesses,
            now,
            limits: &self.options.listeners,
            listening: None,
        };
        let received = http
            .client
            .receive(input, now.as_millis(), &mut site, &config);
        let granted = site.granted.take();
        let listening = site.listening.take();
        match received {
            Received::Stream(mount, class) => {
                let id = find_mount(&self.hub, &mount)?;
                let burst = if mount.format == Format::Mp4 {
                    mp4_burst
                } else {
                    burst
                };
                http.listen(&self.hub, id, mount.format, burst, class);
                if class == SendClass::Bulk {
                    self.bulk_readers += 1;
                }
                if let Some(s) = self.hub.get_mut(id) {
                    s.add_reader(index);
                }
                info!(
                    "{peer}: HTTP listener of /{}/{}.{}",
                    Escaped(&mount.app),
                    Escaped(&mount.name),
                    mount.format.extension()
                );
                Some(Admitted {
                    granted,
                    listening: listening?,
                })
            }
            Received::Reply => {
                debug!("{peer}: HTTP answered");
                None
            }
            Received::Wait(mount) => {
                info!(
                    "{peer}: HTTP listener of /{}/{}.{} waits for its first audio",
                    Escaped(&mount.app),
                    Escaped(&mount.name),
                    mount.format.extension()
                );
                self.http_waiting.push((index, mount));
                None
            }
            Received::More | Received::Nothing => None,
        }
    }

    /// Listeners waiting for a mount that has audio now start on it.
    pub(super) fn start_waiting_listeners(&mut self) {
        let ready: Vec<usize> = self
            .http_waiting
            .iter()
            .filter(|(_, mount)| find_mount(&self.hub, mount).is_some())
            .map(|(index, _)| *index)
            .collect();
        if ready.is_empty() {
            return;
        }
        self.http_waiting.retain(|(i, _)| !ready.contains(i));
        for index in ready {
            let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) else {
                continue;
            };
            let peer = conn.peer;
            if let Kind::Http(http) = &mut conn.kind {
                if http.client.waiting() {
                    if let Some(admitted) = self.http_input(http, peer, index, &[]) {
                        self.http_admitted(&mut conn, admitted);
                    }
                }
            }
            self.conns[index] = Some(conn);
        }
    }

    /// `conn` (out of the slab) was let in as an HTTP listener: what it was granted is kept for
    /// a reload's check, and its listening starts.
    pub(super) fn http_admitted(&mut self, conn: &mut Conn, admitted: Admitted) {
        if admitted.granted.is_some() {
            conn.granted = admitted.granted;
        }
        self.listener_joined(conn, admitted.listening);
    }

    /// Closes an HTTP connection whose request head is late.
    pub(super) fn http_expired(conn: &Conn, now: Instant) -> Option<Close> {
        match &conn.kind {
            Kind::Http(http) => http.deadline().filter(|d| now >= *d).map(|_| {
                if http.client.waiting() {
                    Close::NoAudio
                } else {
                    Close::HeaderTimeout
                }
            }),
            _ => None,
        }
    }

    /// An HTTP connection is gone: its stream loses a reader.
    pub(super) fn http_closed(&mut self, http: &HttpConn, index: usize) {
        self.http_waiting.retain(|(i, _)| *i != index);
        if let Some(r) = &http.reader {
            if r.class == SendClass::Bulk {
                self.bulk_readers = self.bulk_readers.saturating_sub(1);
            }
            if let Some(s) = self.hub.get_mut(r.stream) {
                s.remove_reader(index);
            }
            self.hub.release_if_idle(r.stream);
        }
    }

    /// Measures the capture's input for the level meter and the silence warning.
    pub(super) fn measure_capture(&mut self, pcm: &[i16]) {
        let Some(http) = self.http.as_mut() else {
            return;
        };
        let (Some(detector), Some((_, channels))) =
            (&mut http.silence, http.options.capture_format)
        else {
            return;
        };
        match detector.feed(pcm, channels) {
            Some(SilenceEvent::Started { seconds }) => warn!(
                "the input has been silent for {seconds:.0} s (below {} dBFS)",
                http.options.silence_db
            ),
            Some(SilenceEvent::Ended { seconds }) => {
                info!("sound is back after {seconds:.0} s of silence")
            }
            None => {}
        }
    }

    /// What the reports say now.
    pub fn snapshot(&self) -> StatSnapshot {
        Report {
            conns: &self.conns,
            relays: &self.relays,
            capture_status: self.capture_status,
            capture: self.capture.first().map(|(id, _)| *id),
            side: self.http.as_ref(),
            accepted: self.accepted,
            audience: &self.audience,
            now: self.core_time(std::time::Instant::now()),
        }
        .snapshot(&self.hub)
    }
}

/// What the reports are made of, besides the stream table.
struct Report<'a> {
    conns: &'a [Option<Box<Conn>>],
    relays: &'a crate::relay::Relays,
    capture_status: Option<CaptureStatus>,
    capture: Option<StreamId>,
    side: Option<&'a HttpSide>,
    accepted: u64,
    audience: &'a Audience,
    now: Instant,
}

/// An HTTP client let in as a listener: what it was granted and its session.
pub(super) struct Admitted {
    /// The request it was let in with (for a reload's check).
    pub(super) granted: Option<Granted>,
    /// Its session as a listener.
    pub(super) listening: Listening,
}

impl Report<'_> {
    fn snapshot(&self, hub: &Hub) -> StatSnapshot {
        let now = self.now;
        let capture_id = self.capture;
        let silence = self.side.and_then(|h| h.silence.as_ref());
        let options = self.side.map(|h| &h.options);
        let source = options.map_or(String::new(), |o| o.source.clone());
        let bitrate = options.map_or(0, |o| o.bitrate_kbps);
        let streams = hub
            .iter()
            .map(|(id, s)| {
                let header = s.last_header();
                let codec = header.map(|h| h.format);
                let mut clients = Vec::new();
                for (index, conn) in self.conns.iter().enumerate() {
                    let Some(conn) = conn else { continue };
                    let protocol = match &conn.kind {
                        Kind::Peer {
                            role: Role::Player(p),
                            ..
                        } if *p == id => Protocol::Rtmp,
                        Kind::Http(h) => match &h.reader {
                            Some(r) if r.stream == id => Protocol::Http(r.format),
                            _ => continue,
                        },
                        Kind::Rtsp(r) if r.playing() == Some(id) => Protocol::Rtsp,
                        _ => continue,
                    };
                    let dropped = match &conn.kind {
                        Kind::Http(h) => h.reader.as_ref().map_or(0, |r| r.dropped),
                        Kind::Rtsp(r) => r.session.as_ref().map_or(0, |s| s.dropped),
                        _ => 0,
                    };
                    clients.push(ClientStat {
                        id: index as u64,
                        protocol,
                        addr: conn.peer.to_string(),
                        seconds: now.saturating_millis_since(conn.opened) / 1000,
                        bytes: conn.bytes_sent,
                        dropped,
                    });
                }
                let publisher = match s.publisher() {
                    Publisher::None => None,
                    Publisher::Capture => Some(PublisherStat {
                        kind: "capture",
                        addr: source.clone(),
                        seconds: now.as_millis() / 1000,
                        id: None,
                    }),
                    Publisher::Peer(i) => {
                        let conn = self.conns.get(i).and_then(Option::as_ref);
                        Some(PublisherStat {
                            kind: "rtmp",
                            addr: conn.map_or(String::new(), |c| c.peer.to_string()),
                            seconds: conn
                                .map_or(0, |c| now.saturating_millis_since(c.opened) / 1000),
                            id: Some(i as u64),
                        })
                    }
                };
                let bytes_in = match s.publisher() {
                    Publisher::Peer(i) => self
                        .conns
                        .get(i)
                        .and_then(Option::as_ref)
                        .map_or(0, |c| c.bytes_received),
                    _ => 0,
                };
                let level = silence.filter(|_| Some(id) == capture_id);
                let (peak, rms) = level.map_or((f64::NAN, f64::NAN), |d| {
                    (d.level().peak_dbfs, d.level().rms_dbfs)
                });
                let bytes_out = clients.iter().map(|c| c.bytes).sum();
                // Bandwidth as each connection's average since it opened (nginx-rtmp averages
                // over 10 s; no history is kept here).
                let bits_per_s = |bytes: u64, seconds: u64| bytes * 8 / seconds.max(1);
                let bw_out = clients.iter().map(|c| bits_per_s(c.bytes, c.seconds)).sum();
                let bw_in = publisher
                    .as_ref()
                    .filter(|p| p.id.is_some())
                    .map_or(0, |p| bits_per_s(bytes_in, p.seconds));
                StreamStat {
                    app: s.app().to_owned(),
                    name: s.name().to_owned(),
                    codec: codec.map_or("", codec_name),
                    profile: if codec == Some(SoundFormat::Aac) {
                        "LC"
                    } else {
                        ""
                    },
                    rate: s
                        .http()
                        .map(|h| h.rate())
                        .or(s.true_rate())
                        .or(header.map(|h| h.rate.hz()))
                        .unwrap_or(0),
                    channels: s
                        .http()
                        .map(|h| h.channels())
                        .or(header.map(|h| 1 + u8::from(h.stereo)))
                        .unwrap_or(0),
                    bitrate_kbps: match codec {
                        Some(SoundFormat::Aac | SoundFormat::Mp3) => bitrate,
                        _ => 0,
                    },
                    time_ms: s.ring().latest_time().unwrap_or(0),
                    publisher,
                    clients,
                    bytes_in,
                    bytes_out,
                    bw_in,
                    bw_out,
                    peak_dbfs: peak,
                    rms_dbfs: rms,
                    silence_s: level.map_or(0.0, SilenceDetector::silent_seconds),
                    silent: level.is_some_and(SilenceDetector::is_silent),
                    title: title_of(s, options),
                    formats: s.http().map_or(Vec::new(), |h| h.formats().to_vec()),
                    mse_type: codec.and_then(mse_type),
                }
            })
            .collect();
        StatSnapshot {
            uptime_s: now.as_millis() / 1000,
            accepted: self.accepted,
            streams,
            relays: self
                .relays
                .iter()
                .map(|(_, r)| {
                    let (up, failures) = r.status();
                    let live = r
                        .conn()
                        .and_then(|i| self.conns.get(i)?.as_ref())
                        .map_or(0, |c| c.bytes_sent);
                    RelayStat {
                        stream: format!("{}/{}", r.app, r.name),
                        target: r.target.to_string(),
                        up,
                        failures: u64::from(failures),
                        bytes: r.bytes_sent + live,
                        reconnects: r.reconnects,
                        last_error: r.last_error.clone(),
                        up_s: r
                            .up_since()
                            .filter(|_| up)
                            .map(|t| now.saturating_millis_since(t) / 1000),
                    }
                })
                .collect(),
            overruns: self.capture_status.map_or(0, |c| c.overruns),
            device_state: match (capture_id, self.capture_status) {
                (None, _) => "none",
                (Some(_), Some(c)) if c.state == SourceState::Silence => "missing",
                (Some(_), _) => "running",
            },
            drift_ppm: capture_id
                .and(self.capture_status)
                .and_then(|c| c.drift_ppm),
            wifi_power_save: self
                .side
                .map_or(Vec::new(), |s| s.options.wifi_power_save.clone()),
            audience: self
                .audience
                .stat(Server::live_listening_ms(self.conns, now), unix_now()),
        }
    }
}

/// nginx-rtmp's codec names (`ngx_rtmp_get_audio_codec_name`).
fn codec_name(codec: SoundFormat) -> &'static str {
    match codec {
        SoundFormat::Aac => "AAC",
        SoundFormat::Mp3 => "MP3",
        SoundFormat::PcmLe | SoundFormat::PcmPlatform => "LinearPCM",
        SoundFormat::Adpcm => "ADPCM",
        other => other.name(),
    }
}

/// The mount matcher: whether stream `stream` belongs to the mount name `mount`, being
/// `mount` itself or one of its renditions `mount_CODEC` (`--codec aac,mp3` serves
/// `/live/audio.mp3` from `live/audio_mp3`). Exact: `audio_x` is not `audio`'s.
pub(super) fn of_mount(stream: &str, mount: &str) -> bool {
    stream == mount || StreamPath::rendition_base(stream) == Some(mount)
}

/// The stream serving `mount`: `APP/NAME` itself when it serves the format, else the first of
/// its renditions that does.
fn find_mount(hub: &Hub, mount: &Mount) -> Option<StreamId> {
    let serves = |s: &crate::stream::Stream| {
        s.http().is_some_and(|h| match mount.format {
            Format::Hls => h.hls().is_some(),
            f => h.rendition(f).is_some(),
        })
    };
    hub.find(&mount.app, &mount.name)
        .filter(|id| hub.get(*id).is_some_and(serves))
        .or_else(|| {
            hub.iter()
                .find(|(_, s)| s.app() == mount.app && of_mount(s.name(), &mount.name) && serves(s))
                .map(|(id, _)| id)
        })
}

/// The stream table as the HTTP pieces see it.
struct HubSite<'a> {
    hub: &'a mut Hub,
    report: Report<'a>,
    access: &'a crate::hub::Access,
    stats_allow: &'a [crate::config::Cidr],
    segment_token: &'a str,
    peer: std::net::IpAddr,
    /// The request a listener was let in with (for a reload's check).
    granted: Option<Granted>,
    guesses: &'a mut Guesses,
    now: Instant,
    limits: &'a ListenerLimits,
    /// The session of a listener let in.
    listening: Option<Listening>,
}

impl Site for HubSite<'_> {
    fn snapshot(&self) -> StatSnapshot {
        self.report.snapshot(self.hub)
    }

    fn mount(&self, mount: &Mount) -> Option<MountInfo> {
        let stream = self.hub.get(find_mount(self.hub, mount)?)?;
        let rendition = stream.http()?.rendition(mount.format)?;
        Some(MountInfo {
            bitrate_kbps: match stream.http()?.codec() {
                SoundFormat::Aac | SoundFormat::Mp3 => {
                    self.report.side.map_or(0, |h| h.options.bitrate_kbps)
                }
                _ => 0,
            },
            title: title_of(stream, self.report.side.map(|h| &h.options)),
            sticky: rendition.sticky().to_vec(),
        })
    }

    fn playlist(&self, app: &str, name: &str) -> Option<String> {
        let mount = Mount {
            app: app.to_owned(),
            name: name.to_owned(),
            format: Format::Hls,
        };
        let stream = self.hub.get(find_mount(self.hub, &mount)?)?;
        // Only a request with the right key gets here; its segments carry the token instead.
        let token = match self.access.play_key {
            Some(_) => format!("?token={}", self.segment_token),
            None => String::new(),
        };
        stream.http()?.hls()?.playlist(name, &token)
    }

    fn segment(&self, app: &str, name: &str, sequence: u64) -> Option<Vec<u8>> {
        let mount = Mount {
            app: app.to_owned(),
            name: name.to_owned(),
            format: Format::Hls,
        };
        let stream = self.hub.get(find_mount(self.hub, &mount)?)?;
        Some(stream.http()?.hls()?.segment(sequence)?.bytes.clone())
    }

    fn may_play(&mut self, app: &str, name: &str, query: &str) -> bool {
        let name = if query.is_empty() {
            name.to_owned()
        } else {
            format!("{name}?{query}")
        };
        let request = crate::hub::Request {
            peer: self.peer,
            app,
            name: &name,
        };
        if self.access.takes_key(&request, false) && self.locked_out() {
            return false;
        }
        match self.access.may_play(&request) {
            Ok(()) => {
                self.granted = Some(Granted {
                    app: app.to_owned(),
                    name,
                    publish: false,
                });
                true
            }
            Err(why) => {
                if why == Denied::WrongKey {
                    self.wrong_password();
                }
                false
            }
        }
    }

    fn may_fetch_segment(&mut self, app: &str, name: &str, query: &str) -> bool {
        let token = crate::http::request::query_param(query, "token");
        if !token
            .is_some_and(|t| crate::constant_time::eq(t.as_bytes(), self.segment_token.as_bytes()))
        {
            return self.may_play(app, name, query);
        }
        let request = crate::hub::Request {
            peer: self.peer,
            app,
            name,
        };
        self.access.may_play_keyless(&request).is_ok()
    }

    fn awaits_audio(&self, mount: &Mount) -> bool {
        let published = self
            .hub
            .iter()
            .any(|(_, s)| s.app() == mount.app && of_mount(s.name(), &mount.name));
        let configured = self.report.side.is_some_and(|h| {
            h.options
                .configured
                .iter()
                .any(|(a, n)| *a == mount.app && of_mount(n, &mount.name))
        });
        published || configured
    }

    fn may_see_addresses(&self) -> bool {
        self.stats_allow.iter().any(|c| c.contains(self.peer))
    }

    fn locked_out(&self) -> bool {
        self.guesses.locked(Group::of(self.peer), self.now)
    }

    fn wrong_password(&mut self) {
        self.guesses.failed(Group::of(self.peer), self.now);
    }

    fn admit_listener(&mut self, mount: &Mount, req: &Request) -> Result<(), &'static str> {
        let others = listeners::listening(self.report.conns);
        self.limits
            .admits(others, self.peer, &mount.app, &mount.name)
            .map_err(listeners::Full::message)?;
        self.listening = Some(self.limits.start(
            self.report.now,
            &mount.app,
            &mount.name,
            // A HEAD is answered without being let in: a listener's request is a GET.
            listeners::http_request("GET", &req.path, req.version),
            req.referer.as_deref(),
            req.user_agent.as_deref(),
        ));
        Ok(())
    }

    fn listeners(&self, mount: &Mount) -> Option<Vec<ListenerInfo>> {
        find_mount(self.hub, mount)?;
        Some(listeners::listeners_of(
            self.report.conns,
            &mount.app,
            &mount.name,
            self.report.now,
        ))
    }

    fn set_title(&mut self, mount: &Mount, title: &str) -> bool {
        // Every rendition of the stream shows the same title.
        let mut found = false;
        for (_, s) in self.hub.iter_mut() {
            if s.app() == mount.app && of_mount(s.name(), &mount.name) {
                s.set_title(title);
                found = true;
            }
        }
        if found {
            info!(
                "title of {}/{}: {}",
                Escaped(&mount.app),
                Escaped(&mount.name),
                Escaped(title)
            );
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_titles_come_from_the_stream_then_http_title() {
        let settings = crate::config::Settings::default();
        let mut options = HttpOptions::from_settings(&settings);
        assert_eq!(options.first_title("live", "audio"), "");
        options.title = Some("Station".into());
        options.stream_titles = vec![("live".into(), "audio".into(), "Morning".into())];
        assert_eq!(options.first_title("live", "audio"), "Morning");
        assert_eq!(options.first_title("live", "audio_mp3"), "Morning");
        assert_eq!(options.first_title("live", "audiobook"), "Station");
        assert_eq!(options.first_title("live", "audio_x"), "Station");
        assert_eq!(options.first_title("other", "audio"), "Station");
    }

    /// A mount is its stream and that stream's codec renditions, nothing else.
    #[test]
    fn the_mount_matcher_is_exact() {
        for rendition in [
            "audio",
            "audio_mp3",
            "audio_aac",
            "audio_pcm",
            "audio_adpcm",
        ] {
            assert!(of_mount(rendition, "audio"), "{rendition}");
        }
        for other in [
            "audio_x",
            "audio_",
            "audiobook",
            "audio_mp3_x",
            "radio_mp3",
            "audio.mp3",
        ] {
            assert!(!of_mount(other, "audio"), "{other}");
        }
        assert!(of_mount("a_b_mp3", "a_b"));
        assert!(!of_mount("a_b_mp3", "a"));
    }
}
