//! Listeners, seen and capped: the caps a new listener must fit (per stream, per address), its
//! session ([`Listening`]) started with its time limit, and, when it ends, the access-log line
//! and the day's counts.

use std::net::IpAddr;

use zerocast_core::time::Instant;

use super::http::of_mount;
use super::{Conn, Server};
use crate::audience::{access_line, kept, unix_now, Listening};
use crate::config::Settings;
use crate::http::stat::ListenerInfo;

/// The listener caps, from the settings.
#[derive(Clone, Debug, Default)]
pub struct ListenerLimits {
    /// Listeners of one stream at once (0: no limit).
    pub max: u32,
    /// Seconds a listener may stay (0: no limit).
    pub max_duration_s: u32,
    /// Listeners from one address at once (0: no limit).
    pub per_addr: u32,
    /// `[[stream]]` tables' own caps.
    pub streams: Vec<StreamLimits>,
}

/// A `[[stream]]` table's own caps.
#[derive(Clone, Debug)]
pub struct StreamLimits {
    /// The application.
    pub app: String,
    /// The stream (its renditions share its caps).
    pub name: String,
    /// Its `max_listeners`.
    pub max: Option<u32>,
    /// Its `max_listener_duration`.
    pub max_duration_s: Option<u32>,
}

/// Why a listener is not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The stream has its `max_listeners`.
    Stream,
    /// The address has its `max_listeners_per_addr`.
    Address,
}

impl Full {
    /// What an HTTP listener is told: Icecast 2.4's words for a full mount (`auth.c`).
    pub fn message(self) -> &'static str {
        match self {
            Full::Stream => "max listeners reached",
            Full::Address => "too many listeners from this address",
        }
    }
}

impl ListenerLimits {
    /// The caps of the settings.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max: settings.max_listeners,
            max_duration_s: settings.max_listener_duration,
            per_addr: settings.max_listeners_per_addr,
            streams: settings
                .streams
                .iter()
                .map(|s| StreamLimits {
                    app: s.name.app.clone(),
                    name: s.name.name.clone(),
                    max: s.max_listeners,
                    max_duration_s: s.max_listener_duration,
                })
                .collect(),
        }
    }

    /// The `[[stream]]` table `app/name` belongs to (itself or one of its renditions).
    fn table(&self, app: &str, name: &str) -> Option<&StreamLimits> {
        self.streams
            .iter()
            .find(|t| t.app == app && of_mount(name, &t.name))
    }

    /// Whether one more listener of `app/name` from `addr` fits, beside `listening` (every
    /// listener now, with its address). A stream's listeners are those of its table's name and
    /// its renditions, or, without a table, of the name itself and its renditions.
    pub fn admits<'a>(
        &self,
        listening: impl Iterator<Item = (IpAddr, &'a Listening)> + Clone,
        addr: IpAddr,
        app: &str,
        name: &str,
    ) -> Result<(), Full> {
        let table = self.table(app, name);
        let max = table.and_then(|t| t.max).unwrap_or(self.max);
        let base = table.map_or(name, |t| t.name.as_str());
        let of_stream = listening
            .clone()
            .filter(|(_, l)| l.app == app && of_mount(&l.name, base))
            .count();
        if max > 0 && of_stream >= max as usize {
            return Err(Full::Stream);
        }
        let of_addr = listening.filter(|(ip, _)| *ip == addr).count();
        if self.per_addr > 0 && of_addr >= self.per_addr as usize {
            return Err(Full::Address);
        }
        Ok(())
    }

    /// Seconds a listener of `app/name` may stay, if limited.
    fn duration_s(&self, app: &str, name: &str) -> Option<u32> {
        let s = self
            .table(app, name)
            .and_then(|t| t.max_duration_s)
            .unwrap_or(self.max_duration_s);
        (s > 0).then_some(s)
    }

    /// A listener's session from `now`, with its time limit.
    pub fn start(
        &self,
        now: Instant,
        app: &str,
        name: &str,
        request: String,
        referer: Option<&str>,
        agent: Option<&str>,
    ) -> Listening {
        Listening {
            since: now,
            until: self
                .duration_s(app, name)
                .map(|s| now.saturating_add_millis(u64::from(s) * 1000)),
            app: app.to_owned(),
            name: name.to_owned(),
            request,
            referer: referer.map(kept),
            agent: agent.map(kept),
        }
    }
}

/// Every listener in `conns`, with its address.
pub fn listening(
    conns: &[Option<Box<Conn>>],
) -> impl Iterator<Item = (IpAddr, &Listening)> + Clone {
    conns
        .iter()
        .flatten()
        .filter_map(|c| Some((c.peer.ip(), c.listening.as_deref()?)))
}

/// The listeners of the stream `app/name` (and its renditions), as `listclients` shows them.
pub fn listeners_of(
    conns: &[Option<Box<Conn>>],
    app: &str,
    name: &str,
    now: Instant,
) -> Vec<ListenerInfo> {
    conns
        .iter()
        .enumerate()
        .filter_map(|(index, c)| {
            let c = c.as_ref()?;
            let l = c.listening.as_deref()?;
            (l.app == app && of_mount(&l.name, name)).then(|| ListenerInfo {
                id: index as u64,
                ip: c.peer.ip().to_string(),
                agent: l.agent.clone(),
                referer: l.referer.clone(),
                connected_s: now.saturating_millis_since(l.since) / 1000,
            })
        })
        .collect()
}

impl Server {
    /// `conn` (out of the slab) starts listening: it is counted for the day.
    pub(super) fn listener_joined(&mut self, conn: &mut Conn, session: Listening) {
        let others = listening(&self.conns).count();
        self.audience.joined(conn.peer.ip(), others + 1, unix_now());
        conn.listening = Some(Box::new(session));
    }

    /// `conn`'s listening ended (it left, or stopped playing): its access-log line and the
    /// day's time listened.
    pub(super) fn listener_left(&mut self, conn: &mut Conn, now: Instant) {
        let Some(l) = conn.listening.take() else {
            return;
        };
        let ms = now.saturating_millis_since(l.since);
        let unix = unix_now();
        self.audience.left(ms, unix);
        let line = access_line(conn.peer.ip(), unix, &l, 200, conn.bytes_sent, ms / 1000);
        self.access_log.write(&line);
    }

    /// Milliseconds listened so far by the listeners still on.
    pub(super) fn live_listening_ms(conns: &[Option<Box<Conn>>], now: Instant) -> u64 {
        listening(conns)
            .map(|(_, l)| now.saturating_millis_since(l.since))
            .sum()
    }
}

/// The request an RTMP player's access-log line shows (its query left out: it may hold a key).
pub fn rtmp_request(app: &str, name: &str) -> String {
    format!("PLAY /{app}/{name} RTMP")
}

/// An HTTP listener's request line (without the query).
pub fn http_request(method: &str, path: &str, version: &str) -> String {
    format!("{method} {path} {version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str) -> Listening {
        ListenerLimits::default().start(
            Instant::from_millis(0),
            "live",
            name,
            http_request("GET", "/live/x.mp3", "HTTP/1.1"),
            None,
            None,
        )
    }

    /// A table's cap counts its stream and its renditions; a stream without one has the
    /// default; the per-address cap counts every stream.
    #[test]
    fn caps_count_the_stream_its_renditions_and_the_address() {
        let limits = ListenerLimits {
            max: 3,
            max_duration_s: 60,
            per_addr: 2,
            streams: vec![StreamLimits {
                app: "live".into(),
                name: "audio".into(),
                max: Some(2),
                max_duration_s: Some(0),
            }],
        };
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let c: IpAddr = [10, 0, 0, 3].into();
        let on = [(a, session("audio")), (b, session("audio_mp3"))];
        let iter = || on.iter().map(|(ip, l)| (*ip, l));
        assert_eq!(limits.admits(iter(), c, "live", "audio"), Err(Full::Stream));
        assert_eq!(
            limits.admits(iter(), c, "live", "audio_aac"),
            Err(Full::Stream)
        );
        assert_eq!(limits.admits(iter(), c, "live", "other"), Ok(()));
        assert_eq!(limits.admits(iter(), c, "live", "audiobook"), Ok(()));
        let on = [(a, session("x")), (a, session("y"))];
        let iter = || on.iter().map(|(ip, l)| (*ip, l));
        assert_eq!(limits.admits(iter(), a, "live", "z"), Err(Full::Address));
        assert_eq!(limits.admits(iter(), b, "live", "x"), Ok(()));
        // The table's 0 lifts the default duration for its stream only.
        assert_eq!(limits.duration_s("live", "audio_mp3"), None);
        assert_eq!(limits.duration_s("live", "other"), Some(60));
        let unlimited = ListenerLimits::default();
        assert_eq!(unlimited.admits(iter(), a, "live", "x"), Ok(()));
    }
}
