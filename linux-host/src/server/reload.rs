//! SIGHUP: the configuration read again and applied without dropping a player, publisher or
//! push the change does not concern. Every changed setting is either applied or named as
//! needing a restart; connected peers are checked against the new rules (a rotated key ends the
//! old key's publisher, as a narrowed address list ends its players); pushes no longer
//! configured end. A file that does not parse is refused, the running settings stay, and the
//! caller tells systemd so in `STATUS=`.

use mio::Registry;
use zerocast_core::time::Instant;

use super::Kind;
use super::{Options, Server};
use crate::config::Settings;
use crate::conn::{Close, Role};
use crate::hub::{Access, Request};

/// Settings a running server cannot change: they take a restart.
fn needs_restart(old: &Settings, new: &Settings) -> Vec<&'static str> {
    [
        ("listen", old.listen != new.listen),
        ("source", old.source != new.source),
        ("codec", old.capture_codecs() != new.capture_codecs()),
        ("bitrate", old.bitrate_kbps != new.bitrate_kbps),
        ("rate", old.rate != new.rate),
        ("channels", old.channels != new.channels),
        ("period_ms", old.period_ms != new.period_ms),
        ("capture_stream", old.stream != new.stream),
        ("app", old.app != new.app),
        ("max_clients", old.max_clients != new.max_clients),
        ("max_streams", old.max_streams != new.max_streams),
        ("http.listen", old.http.listen != new.http.listen),
        (
            "http.max_clients",
            old.http.max_clients != new.http.max_clients,
        ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Settings applied at once (timeouts to connections opened from now on).
fn applied(old: &Settings, new: &Settings) -> Vec<&'static str> {
    [
        ("log_level", old.log_level != new.log_level),
        (
            "handshake_timeout_ms",
            old.handshake_timeout_ms != new.handshake_timeout_ms,
        ),
        (
            "idle_timeout_ms",
            old.idle_timeout_ms != new.idle_timeout_ms,
        ),
        (
            "publish_timeout_ms",
            old.publish_timeout_ms != new.publish_timeout_ms,
        ),
        ("join_ms", old.join_ms != new.join_ms),
        ("max_per_addr", old.max_per_addr != new.max_per_addr),
        (
            "send_interval_ms",
            old.send_interval_ms != new.send_interval_ms,
        ),
        (
            "max_sends_per_s",
            old.max_sends_per_s != new.max_sends_per_s,
        ),
        ("access", old.access != new.access),
        ("stream", old.streams != new.streams),
        ("push", old.pushes != new.pushes),
        ("tls_ca", old.tls_ca != new.tls_ca),
        (
            "record",
            (
                old.record.as_ref(),
                old.record_interval_s,
                old.record_max_mb,
            ) != (
                new.record.as_ref(),
                new.record_interval_s,
                new.record_max_mb,
            ) || old.record_keep_mb != new.record_keep_mb,
        ),
        ("http.title", old.http.title != new.http.title),
        (
            "http.admin_password",
            old.http.admin_password != new.http.admin_password,
        ),
        (
            "http.silence",
            (old.http.silence_db, old.http.silence_s) != (new.http.silence_db, new.http.silence_s),
        ),
        (
            "http.stats_allow",
            old.http.stats_allow != new.http.stats_allow,
        ),
        (
            "max_listeners",
            (old.max_listeners, old.max_listeners_per_addr)
                != (new.max_listeners, new.max_listeners_per_addr),
        ),
        (
            "max_listener_duration",
            old.max_listener_duration != new.max_listener_duration,
        ),
        (
            "http.access_log",
            old.http.access_log != new.http.access_log,
        ),
        ("hooks", old.hooks != new.hooks),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

impl Server {
    /// SIGHUP: reads the configuration again and applies it; `Err` says why the file was
    /// refused (the running settings stay).
    pub(super) fn reload(&mut self, registry: &Registry, now: Instant) -> Result<(), String> {
        let refused = |e: String| {
            log::error!("configuration not reloaded, the running one stays: {e}");
            e
        };
        let new = self.settings.reload().map_err(|e| refused(e.to_string()))?;
        let options = Options::from_settings(&new).map_err(refused)?;
        let restart = needs_restart(&self.settings, &new);
        if !restart.is_empty() {
            log::warn!(
                "reload: {} changed; that takes a restart, the running value stays",
                restart.join(", ")
            );
        }
        let applied = applied(&self.settings, &new);
        // What can change at run time does; what cannot keeps its running value.
        let kept = &self.options;
        let options = Options {
            capture: kept.capture.clone(),
            default_stream: kept.default_stream.clone(),
            max_clients: kept.max_clients,
            max_streams: kept.max_streams,
            access: Access {
                app: kept.access.app.clone(),
                ..options.access
            },
            ..options
        };
        log::set_max_level(new.log_level);
        self.session_config.handshake_timeout_ms = options.handshake_timeout_ms;
        self.session_config.idle_timeout_ms = options.idle_timeout_ms;
        // Recording changes apply to streams created from now on.
        self.hub.recording = options.recording.clone();
        self.options = options;
        self.reload_http(&new);
        if new.http.access_log != self.settings.http.access_log {
            self.access_log = crate::audience::AccessLog::new(new.http.access_log.clone());
        }
        self.settings = new;
        self.recheck_peers(registry, now);
        // Pushes no longer configured end; new ones start.
        self.retire_relays(registry, now);
        self.add_relays(now);
        self.connect_relays(registry, now);
        if applied.is_empty() {
            log::info!("configuration reloaded: nothing changed that applies at run time");
        } else {
            log::info!("configuration reloaded: applied {}", applied.join(", "));
        }
        Ok(())
    }

    /// Ends the players and publishers the new rules would refuse, as if they asked now.
    fn recheck_peers(&mut self, registry: &Registry, now: Instant) {
        let access = &self.options.access;
        let revoked: Vec<(usize, Close)> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(index, conn)| {
                let conn = conn.as_ref()?;
                let granted = conn.granted.as_ref()?;
                let active = match &conn.kind {
                    Kind::Peer { role, .. } => !matches!(role, Role::Idle),
                    Kind::Http(http) => http.reader.is_some(),
                    Kind::Rtsp(rtsp) => rtsp.playing().is_some(),
                    Kind::Relay { .. } => false,
                };
                if !active {
                    return None;
                }
                let request = Request {
                    peer: conn.peer.ip(),
                    app: &granted.app,
                    name: &granted.name,
                };
                let verdict = if granted.publish {
                    access.may_publish(&request)
                } else {
                    access.may_play(&request)
                };
                verdict.err().map(|why| (index, Close::Revoked(why)))
            })
            .collect();
        for (index, why) in revoked {
            self.close(registry, index, why, now);
        }
    }
}
