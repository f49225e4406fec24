//! What the server reports about itself, as one plain snapshot the hub fills in, rendered three
//! ways: nginx-rtmp's `/stat` XML (so existing `stat.xsl` dashboards read it), `/api/v1/streams`
//! JSON for the page, and `/metrics` in the Prometheus text format (0.0.4).

use std::fmt::Write;

use crate::formats::Format;

/// Everything the reports say, at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatSnapshot {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Connections accepted since start (RTMP and HTTP).
    pub accepted: u64,
    /// The streams.
    pub streams: Vec<StreamStat>,
    /// Push relays.
    pub relays: Vec<RelayStat>,
    /// Capture overruns since start.
    pub overruns: u64,
    /// The capture device: `running`, `missing` (unplugged, silence is sent), `none` (no capture).
    pub device_state: &'static str,
    /// The sound card's clock against the system clock, in ppm, once measured.
    pub drift_ppm: Option<f64>,
    /// Wireless interfaces with power saving on (found at start).
    pub wifi_power_save: Vec<String>,
    /// The day's listeners.
    pub audience: crate::audience::AudienceStat,
}

/// Who feeds a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct PublisherStat {
    /// `capture` or `rtmp`.
    pub kind: &'static str,
    /// The peer's address (`ADDR:PORT`), or the capture source.
    pub addr: String,
    /// Seconds it has been publishing.
    pub seconds: u64,
    /// Connection id, for an RTMP publisher.
    pub id: Option<u64>,
}

/// One stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamStat {
    /// Application, e.g. `live`.
    pub app: String,
    /// Name, e.g. `audio`.
    pub name: String,
    /// Codec name as nginx-rtmp writes it: `AAC`, `MP3`, `LinearPCM`, `ADPCM`.
    pub codec: &'static str,
    /// AAC profile (`LC`), empty otherwise.
    pub profile: &'static str,
    /// Sample rate in Hz.
    pub rate: u32,
    /// Channels.
    pub channels: u8,
    /// Bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Milliseconds the stream has existed.
    pub time_ms: u64,
    /// Its publisher, if any.
    pub publisher: Option<PublisherStat>,
    /// Its listeners of every protocol.
    pub clients: Vec<ClientStat>,
    /// Bytes received from the publisher, and sent to all listeners.
    pub bytes_in: u64,
    /// Bytes sent to listeners.
    pub bytes_out: u64,
    /// Bits per second in and out, over the last few seconds.
    pub bw_in: u64,
    /// Bits per second out.
    pub bw_out: u64,
    /// Input level of the last window, dBFS (`-inf` for digital silence).
    pub peak_dbfs: f64,
    /// RMS level of the last window, dBFS.
    pub rms_dbfs: f64,
    /// Seconds of silence so far (0 while there is sound).
    pub silence_s: f64,
    /// Silent for longer than `--silence-s`.
    pub silent: bool,
    /// The ICY title.
    pub title: String,
    /// HTTP formats it is served in.
    pub formats: Vec<Format>,
    /// The MSE type of its `.mp4`, when the page can play it that way.
    pub mse_type: Option<&'static str>,
}

/// A listener's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP player.
    Rtmp,
    /// HTTP in a format.
    Http(Format),
    /// RTSP player (RTP over TCP or UDP).
    Rtsp,
}

impl Protocol {
    /// Label value in metrics and JSON: `rtmp`, `mp3`, `aac`, `flv`, `mp4`, `hls`, `rtsp`.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Rtsp => "rtsp",
            Protocol::Http(Format::Hls) => "hls",
            Protocol::Http(f) => f.extension(),
        }
    }
}

/// One listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientStat {
    /// Connection id.
    pub id: u64,
    /// Its protocol.
    pub protocol: Protocol,
    /// `ADDR:PORT`.
    pub addr: String,
    /// Seconds connected.
    pub seconds: u64,
    /// Bytes sent to it.
    pub bytes: u64,
    /// Messages it missed by lagging in the ring.
    pub dropped: u64,
}

/// A push relay.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayStat {
    /// `APP/NAME` of the stream pushed.
    pub stream: String,
    /// Upstream URL.
    pub target: String,
    /// Publishing upstream now.
    pub up: bool,
    /// Failed connection attempts since it was last healthy (its backoff step).
    pub failures: u64,
    /// Bytes sent upstream over every connection.
    pub bytes: u64,
    /// Times it came back up after a failure.
    pub reconnects: u64,
    /// What ended its last attempt or connection (never a key: hosts and errors only).
    pub last_error: Option<String>,
    /// Seconds since it came up, while it is up.
    pub up_s: Option<u64>,
}

impl StatSnapshot {
    /// The same report for a client not in `stats_allow`: every count, no address.
    pub fn without_addresses(mut self) -> Self {
        for stream in &mut self.streams {
            if let Some(p) = &mut stream.publisher {
                if p.kind != "capture" {
                    p.addr.clear();
                }
            }
            for c in &mut stream.clients {
                c.addr.clear();
            }
        }
        self
    }
}

/// The address without its port, as nginx-rtmp writes `<address>`.
fn host_of(addr: &str) -> String {
    addr.parse::<std::net::SocketAddr>()
        .map_or_else(|_| addr.to_owned(), |a| a.ip().to_string())
}

/// One listener as Icecast's `/admin/listclients` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerInfo {
    /// The connection id (as `/stat` shows it).
    pub id: u64,
    /// The address, without the port.
    pub ip: String,
    /// Its `User-Agent` (RTMP: none).
    pub agent: Option<String>,
    /// Its `Referer`.
    pub referer: Option<String>,
    /// Seconds listened so far.
    pub connected_s: u64,
}

/// Icecast's `listclients` answer (`admin.c`, the XML form): the mount, its listener count and
/// each listener.
pub fn render_listclients(mount: &str, listeners: &[ListenerInfo]) -> String {
    let mut o = format!(
        "<?xml version=\"1.0\"?>\n<icestats><source mount=\"{}\"><Listeners>{}</Listeners>",
        xml(mount),
        listeners.len()
    );
    for l in listeners {
        let _ = write!(o, "<listener><IP>{}</IP>", xml(&l.ip));
        if let Some(agent) = &l.agent {
            let _ = write!(o, "<UserAgent>{}</UserAgent>", xml(agent));
        }
        if let Some(referer) = &l.referer {
            let _ = write!(o, "<Referer>{}</Referer>", xml(referer));
        }
        let _ = write!(
            o,
            "<Connected>{}</Connected><ID>{}</ID></listener>",
            l.connected_s, l.id
        );
    }
    o.push_str("</source></icestats>\n");
    o
}

/// Escapes text for XML content.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// nginx-rtmp's `/stat` (`rtmp_stat all`), in the shape Debian 12's libnginx-mod-rtmp
/// (nginx_rtmp_version 1.1.4) writes it for an audio-only stream, `<meta><video>` of zeros
/// included: streams grouped by application under one `<server>`; every connection is a
/// `<client>` (HTTP listeners too, with their protocol in `flashver`); `nclients` counts the
/// connections like nginx-rtmp does, an RTMP publisher included, a capture not (it is no
/// connection).
pub fn render_xml(s: &StatSnapshot) -> String {
    let mut o = String::with_capacity(1024 + 512 * s.streams.len());
    let bytes_in: u64 = s.streams.iter().map(|x| x.bytes_in).sum();
    let bytes_out: u64 = s.streams.iter().map(|x| x.bytes_out).sum();
    let bw_in: u64 = s.streams.iter().map(|x| x.bw_in).sum();
    let bw_out: u64 = s.streams.iter().map(|x| x.bw_out).sum();
    let _ = write!(
        o,
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n\
         <rtmp>\r\n\
         <nginx_version>zerocast</nginx_version>\r\n\
         <nginx_rtmp_version>{}</nginx_rtmp_version>\r\n\
         <built>zerocast {}</built>\r\n<pid>{}</pid>\r\n\
         <uptime>{}</uptime>\r\n<naccepted>{}</naccepted>\r\n\
         <bw_in>{bw_in}</bw_in>\r\n<bytes_in>{bytes_in}</bytes_in>\r\n\
         <bw_out>{bw_out}</bw_out>\r\n<bytes_out>{bytes_out}</bytes_out>\r\n<server>\r\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        s.uptime_s,
        s.accepted
    );
    let mut apps: Vec<&str> = s.streams.iter().map(|x| x.app.as_str()).collect();
    apps.sort_unstable();
    apps.dedup();
    for app in apps {
        let _ = write!(
            o,
            "<application>\r\n<name>{}</name>\r\n<live>\r\n",
            xml(app)
        );
        let mut total = 0;
        for st in s.streams.iter().filter(|x| x.app == app) {
            let n = st.clients.len()
                + usize::from(st.publisher.as_ref().is_some_and(|p| p.id.is_some()));
            total += n;
            let _ = write!(
                o,
                "<stream>\r\n<name>{}</name>\r\n<time>{}</time>\
                 <bw_in>{}</bw_in><bytes_in>{}</bytes_in><bw_out>{}</bw_out>\
                 <bytes_out>{}</bytes_out><bw_audio>{}</bw_audio><bw_video>0</bw_video>\r\n",
                xml(&st.name),
                st.time_ms,
                st.bw_in,
                st.bytes_in,
                st.bw_out,
                st.bytes_out,
                st.bw_in
            );
            if let Some(p) = st.publisher.as_ref().filter(|p| p.id.is_some()) {
                let _ = write!(
                    o,
                    "<client><id>{}</id><address>{}</address><time>{}</time>\
                     <flashver>rtmp publisher</flashver><dropped>0</dropped><avsync>0</avsync>\
                     <timestamp>{}</timestamp><publishing/><active/></client>\r\n",
                    p.id.unwrap_or(0),
                    xml(&host_of(&p.addr)),
                    p.seconds * 1000,
                    st.time_ms
                );
            }
            for c in &st.clients {
                let _ = write!(
                    o,
                    "<client><id>{}</id><address>{}</address><time>{}</time>\
                     <flashver>{}</flashver><dropped>{}</dropped><avsync>0</avsync>\
                     <timestamp>{}</timestamp><active/></client>\r\n",
                    c.id,
                    xml(&host_of(&c.addr)),
                    c.seconds * 1000,
                    match c.protocol {
                        Protocol::Rtmp | Protocol::Rtsp => c.protocol.label().to_owned(),
                        p => format!("http {}", p.label()),
                    },
                    c.dropped,
                    st.time_ms
                );
            }
            let _ = write!(
                o,
                "<meta><video><width>0</width><height>0</height><frame_rate>0</frame_rate></video>\
                 <audio><codec>{}</codec>{}<channels>{}</channels>\
                 <sample_rate>{}</sample_rate></audio></meta>\r\n<nclients>{n}</nclients>\r\n",
                xml(st.codec),
                if st.profile.is_empty() {
                    String::new()
                } else {
                    format!("<profile>{}</profile>", xml(st.profile))
                },
                st.channels,
                st.rate
            );
            if st.publisher.is_some() {
                o.push_str("<publishing/>\r\n");
            }
            o.push_str("<active/>\r\n</stream>\r\n");
        }
        let _ = write!(
            o,
            "<nclients>{total}</nclients>\r\n</live>\r\n</application>\r\n"
        );
    }
    o.push_str("</server>\r\n");
    // zerocast's own: nginx-rtmp's stat.xsl skips elements it does not know.
    o.push_str("<pushes>\r\n");
    for r in &s.relays {
        let _ = write!(
            o,
            "<push><stream>{}</stream><target>{}</target><up>{}</up><uptime>{}</uptime>\
             <bytes>{}</bytes><reconnects>{}</reconnects><failures>{}</failures>\
             <last_error>{}</last_error></push>\r\n",
            xml(&r.stream),
            xml(&r.target),
            u8::from(r.up),
            r.up_s.unwrap_or(0),
            r.bytes,
            r.reconnects,
            r.failures,
            xml(r.last_error.as_deref().unwrap_or_default())
        );
    }
    o.push_str("</pushes>\r\n</rtmp>\r\n");
    o
}

/// Escapes text for a JSON string.
fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '<' => out.push_str("\\u003c"), // harmless inside a <script> too
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number; `null` for infinities and NaN (no JSON for them).
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}", v)
    } else {
        "null".to_owned()
    }
}

/// `/api/v1/streams`: the streams with their listeners, levels and warnings, for the page.
pub fn render_json(s: &StatSnapshot) -> String {
    let mut o = format!(
        "{{\"uptime_s\":{},\"device_state\":{},\"overruns\":{},\"drift_ppm\":{},\
         \"wifi_power_save\":[{}],\"streams\":[",
        s.uptime_s,
        json(s.device_state),
        s.overruns,
        s.drift_ppm.map_or("null".to_owned(), number),
        s.wifi_power_save
            .iter()
            .map(|i| json(i))
            .collect::<Vec<_>>()
            .join(",")
    );
    for (i, st) in s.streams.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let formats: Vec<String> = st.formats.iter().map(|f| json(f.extension())).collect();
        let _ = write!(
            o,
            "{{\"app\":{},\"name\":{},\"codec\":{},\"rate\":{},\"channels\":{},\
             \"bitrate_kbps\":{},\"title\":{},\"formats\":[{}],\"mse_type\":{},\
             \"publisher\":{},\"peak_dbfs\":{},\"rms_dbfs\":{},\"silence_s\":{},\
             \"silent\":{},\"listeners\":{},\"clients\":[",
            json(&st.app),
            json(&st.name),
            json(st.codec),
            st.rate,
            st.channels,
            st.bitrate_kbps,
            json(&st.title),
            formats.join(","),
            st.mse_type.map_or("null".to_owned(), json),
            st.publisher.as_ref().map_or("null".to_owned(), |p| format!(
                "{{\"kind\":{},\"addr\":{},\"seconds\":{}}}",
                json(p.kind),
                json(&p.addr),
                p.seconds
            )),
            number(st.peak_dbfs),
            number(st.rms_dbfs),
            number(st.silence_s),
            st.silent,
            st.clients.len()
        );
        for (j, c) in st.clients.iter().enumerate() {
            let _ = write!(
                o,
                "{}{{\"protocol\":{},\"addr\":{},\"seconds\":{},\"bytes\":{}}}",
                if j > 0 { "," } else { "" },
                json(c.protocol.label()),
                json(&c.addr),
                c.seconds,
                c.bytes
            );
        }
        o.push_str("]}");
    }
    o.push_str("],\"pushes\":[");
    for (i, r) in s.relays.iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"stream\":{},\"target\":{},\"up\":{},\"up_s\":{},\"bytes\":{},\
             \"reconnects\":{},\"failures\":{},\"last_error\":{}}}",
            if i > 0 { "," } else { "" },
            json(&r.stream),
            json(&r.target),
            r.up,
            r.up_s.map_or("null".to_owned(), |s| s.to_string()),
            r.bytes,
            r.reconnects,
            r.failures,
            r.last_error.as_deref().map_or("null".to_owned(), json)
        );
    }
    let a = &s.audience;
    let day = |day: &str, peak: usize, unique: u64, hours: f64| {
        format!(
            "\"day\":{},\"peak\":{peak},\"unique_addresses\":{unique},\
             \"listening_hours\":{hours:.4}",
            json(day)
        )
    };
    let past: Vec<String> = a
        .past_days
        .iter()
        .map(|d| {
            let fields = day(&d.day, d.peak, d.unique_addresses, d.listening_hours);
            format!("{{{fields}}}")
        })
        .collect();
    let _ = writeln!(
        o,
        "],\"audience\":{{{},\"listening_seconds_total\":{},\"past_days\":[{}]}}}}",
        day(&a.day, a.peak, a.unique_addresses, a.listening_hours),
        a.listening_seconds_total,
        past.join(",")
    );
    o
}

/// Escapes a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A Prometheus sample value (`+Inf`, `-Inf`, `NaN` spelled its way).
fn sample(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// `/metrics` in the Prometheus text format 0.0.4.
pub fn render_metrics(s: &StatSnapshot) -> String {
    let mut o = String::with_capacity(2048);
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = write!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    };
    let stream_labels =
        |st: &StreamStat| format!("app=\"{}\",name=\"{}\"", label(&st.app), label(&st.name));

    family(
        &mut o,
        "zerocast_uptime_seconds",
        "gauge",
        "Seconds since start.",
    );
    let _ = writeln!(o, "zerocast_uptime_seconds {}", s.uptime_s);
    family(
        &mut o,
        "zerocast_connections_accepted_total",
        "counter",
        "Connections accepted.",
    );
    let _ = writeln!(o, "zerocast_connections_accepted_total {}", s.accepted);

    family(
        &mut o,
        "zerocast_listeners",
        "gauge",
        "Listeners connected, per stream and protocol.",
    );
    for st in &s.streams {
        let mut protocols = vec![Protocol::Rtmp];
        protocols.extend(st.formats.iter().map(|f| Protocol::Http(*f)));
        protocols.push(Protocol::Rtsp);
        for p in protocols {
            let n = st.clients.iter().filter(|c| c.protocol == p).count();
            let _ = writeln!(
                o,
                "zerocast_listeners{{{},protocol=\"{}\"}} {n}",
                stream_labels(st),
                p.label()
            );
        }
    }
    // One sample per stream: (name, type, help, value).
    type PerStream = (
        &'static str,
        &'static str,
        &'static str,
        fn(&StreamStat) -> f64,
    );
    let per_stream: [PerStream; 6] = [
        (
            "zerocast_sent_bytes_total",
            "counter",
            "Bytes sent to listeners, per stream.",
            |st| st.bytes_out as f64,
        ),
        (
            "zerocast_received_bytes_total",
            "counter",
            "Bytes received from publishers, per stream.",
            |st| st.bytes_in as f64,
        ),
        (
            "zerocast_publishers",
            "gauge",
            "Whether the stream has a publisher (capture or RTMP).",
            |st| f64::from(u8::from(st.publisher.is_some())),
        ),
        (
            "zerocast_input_peak_dbfs",
            "gauge",
            "Input peak level over the last 100 ms.",
            |st| st.peak_dbfs,
        ),
        (
            "zerocast_input_rms_dbfs",
            "gauge",
            "Input RMS level over the last 100 ms.",
            |st| st.rms_dbfs,
        ),
        (
            "zerocast_silence_seconds",
            "gauge",
            "Seconds the input has been silent.",
            |st| st.silence_s,
        ),
    ];
    for (name, kind, help, value) in per_stream {
        family(&mut o, name, kind, help);
        for st in &s.streams {
            let _ = writeln!(o, "{name}{{{}}} {}", stream_labels(st), sample(value(st)));
        }
    }
    family(
        &mut o,
        "zerocast_relay_up",
        "gauge",
        "Whether a push relay is publishing upstream.",
    );
    for r in &s.relays {
        let _ = writeln!(
            o,
            "zerocast_relay_up{{stream=\"{}\",target=\"{}\"}} {}",
            label(&r.stream),
            label(&r.target),
            u8::from(r.up)
        );
    }
    family(
        &mut o,
        "zerocast_relay_failures",
        "gauge",
        "Failed connection attempts since the push relay was last healthy.",
    );
    for r in &s.relays {
        let _ = writeln!(
            o,
            "zerocast_relay_failures{{stream=\"{}\",target=\"{}\"}} {}",
            label(&r.stream),
            label(&r.target),
            r.failures
        );
    }
    type Sample = fn(&RelayStat) -> u64;
    let counters: [(&str, &str, &str, Sample); 3] = [
        (
            "zerocast_relay_sent_bytes_total",
            "counter",
            "Bytes a push relay sent upstream.",
            |r| r.bytes,
        ),
        (
            "zerocast_relay_reconnects_total",
            "counter",
            "Times a push relay came back up after a failure.",
            |r| r.reconnects,
        ),
        (
            "zerocast_relay_up_seconds",
            "gauge",
            "Seconds since a push relay came up (0 while it is down).",
            |r| r.up_s.unwrap_or(0),
        ),
    ];
    for (name, kind, help, value) in counters {
        family(&mut o, name, kind, help);
        for r in &s.relays {
            let _ = writeln!(
                o,
                "{name}{{stream=\"{}\",target=\"{}\"}} {}",
                label(&r.stream),
                label(&r.target),
                value(r)
            );
        }
    }
    family(
        &mut o,
        "zerocast_capture_overruns_total",
        "counter",
        "Capture overruns.",
    );
    let _ = writeln!(o, "zerocast_capture_overruns_total {}", s.overruns);
    family(
        &mut o,
        "zerocast_device_state",
        "gauge",
        "The capture device's state (1 for the current one).",
    );
    for state in ["running", "missing", "none"] {
        let _ = writeln!(
            o,
            "zerocast_device_state{{state=\"{state}\"}} {}",
            u8::from(s.device_state == state)
        );
    }
    if !s.wifi_power_save.is_empty() {
        family(
            &mut o,
            "zerocast_wifi_power_save",
            "gauge",
            "Wireless interfaces with power saving on (delays of up to seconds).",
        );
        for iface in &s.wifi_power_save {
            let _ = writeln!(
                o,
                "zerocast_wifi_power_save{{interface=\"{}\"}} 1",
                label(iface)
            );
        }
    }
    if let Some(ppm) = s.drift_ppm {
        family(
            &mut o,
            "zerocast_clock_drift_ppm",
            "gauge",
            "Sound card clock against the system clock.",
        );
        let _ = writeln!(o, "zerocast_clock_drift_ppm {}", sample(ppm));
    }
    let a = &s.audience;
    for (name, kind, help, value) in [
        (
            "zerocast_listeners_peak_today",
            "gauge",
            "The most listeners at once today (UTC).",
            a.peak.to_string(),
        ),
        (
            "zerocast_listener_addresses_today",
            "gauge",
            "Distinct listener addresses today (UTC; a HyperLogLog estimate, exact when few).",
            a.unique_addresses.to_string(),
        ),
        (
            "zerocast_listening_hours_today",
            "gauge",
            "Hours listened today (UTC), all listeners together.",
            sample(a.listening_hours),
        ),
        (
            "zerocast_listening_seconds_total",
            "counter",
            "Seconds listened since start, all listeners together.",
            a.listening_seconds_total.to_string(),
        ),
    ] {
        family(&mut o, name, kind, help);
        let _ = writeln!(o, "{name} {value}");
    }
    o
}
