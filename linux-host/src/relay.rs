//! Push relays: zerocast publishing one of its streams to an upstream RTMP server (nginx-rtmp,
//! SRS, a streaming platform) — how one Pi scales out. The connection itself is a
//! [`Conn`](crate::conn::Conn) of kind `Relay` that reads the stream's ring like a player; this
//! module keeps what outlives a connection: the target, the backoff, the outage log.

use std::net::{SocketAddr, ToSocketAddrs};

use zerocast_core::time::Instant;

use crate::config::PushUrl;

/// Where to push: the upstream URL with the stream name resolved.
pub type Target = PushUrl;

/// `tcUrl` for connect: the application, with the URL's query when the URL has no name (a
/// platform's key on the application).
pub fn tc_url(target: &Target) -> String {
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    format!("rtmp://{host}:{}/{}", target.port, connect_app(target))
}

/// The application `connect` names.
pub fn connect_app(target: &Target) -> String {
    match (&target.name, &target.query) {
        (None, Some(q)) => format!("{}?{q}", target.app),
        _ => target.app.clone(),
    }
}

/// The name `publish` names: the stream name with the URL's query.
pub fn publish_name(target: &Target) -> String {
    let name = target.name.clone().unwrap_or_default();
    match (&target.name, &target.query) {
        (Some(_), Some(q)) => format!("{name}?{q}"),
        _ => name,
    }
}

/// Whether `configured` (a push as written, its name possibly missing) names the upstream of
/// `running` (the same with the name resolved).
pub fn same_upstream(configured: &Target, running: &Target) -> bool {
    configured.tls == running.tls
        && configured.host == running.host
        && configured.port == running.port
        && configured.app == running.app
        && configured.query == running.query
        && configured
            .name
            .as_ref()
            .map_or(true, |n| Some(n) == running.name.as_ref())
}

/// How a push is logged: the URL without its query (keys stay out of logs).
pub struct Shown<'a>(pub &'a Target);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(f, "rtmp://{}:{}/{}", t.host, t.port, t.app)?;
        match &t.name {
            Some(name) => write!(f, "/{name}"),
            None => Ok(()),
        }
    }
}

/// The first retry comes after this, doubling per failure...
const FIRST_RETRY_MS: u64 = 500;
/// ...up to this.
const MAX_RETRY_MS: u64 = 8000;
/// A push that stayed up this long counts as healthy again: the next outage starts the
/// backoff from the beginning.
const HEALTHY_MS: u64 = 10_000;

/// One push of one local stream to one upstream.
#[derive(Debug)]
pub struct Relay {
    /// Upstream, with the name resolved (the local stream's own name for a push of every
    /// stream).
    pub target: Target,
    /// The local stream pushed (`APP/NAME`).
    pub app: String,
    /// The local stream's name.
    pub name: String,
    /// The connection carrying it now, by index.
    pub conn: Option<usize>,
    /// When to try again while there is no connection.
    pub retry_at: Option<Instant>,
    failures: u32,
    /// When the push last reached the publishing state.
    up_since: Option<Instant>,
    /// The outage has been logged (each outage once).
    outage_logged: bool,
    /// Removed by a reload: never connects again.
    pub retired: bool,
}

impl Relay {
    /// Whether the push is connected and has published (for the HTTP reports), and the
    /// failures since it was last healthy.
    pub fn status(&self) -> (bool, u32) {
        (
            self.conn.is_some() && self.up_since.is_some(),
            self.failures,
        )
    }

    /// A relay of local `app/name` to `target`, due at once.
    pub fn new(target: Target, app: &str, name: &str, now: Instant) -> Self {
        Self {
            target,
            app: app.to_owned(),
            name: name.to_owned(),
            conn: None,
            retry_at: Some(now),
            failures: 0,
            up_since: None,
            outage_logged: false,
            retired: false,
        }
    }

    /// Resolves the upstream's address (blocking DNS for a name: once per attempt).
    pub fn address(&self) -> Result<SocketAddr, String> {
        (self.target.host.as_str(), self.target.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {}: {e}", self.target.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.target.host))
    }

    /// The upstream accepted the publish.
    pub fn up(&mut self, now: Instant) {
        if self.outage_logged {
            log::info!("push {}: back up", Shown(&self.target));
        }
        self.up_since = Some(now);
        self.outage_logged = false;
    }

    /// The connection failed or closed: schedule the next attempt with capped exponential
    /// backoff and jitter (`entropy` picks a point in the upper half of the delay, so many Pis
    /// restarted by one power cut do not retry in step). Logs the outage once.
    pub fn down(&mut self, now: Instant, why: &str, entropy: u64) {
        self.conn = None;
        if self
            .up_since
            .is_some_and(|t| now.saturating_millis_since(t) >= HEALTHY_MS)
        {
            self.failures = 0;
        }
        self.up_since = None;
        let delay = (FIRST_RETRY_MS << self.failures.min(8)).min(MAX_RETRY_MS);
        let jittered = delay / 2 + entropy % (delay / 2 + 1);
        self.failures += 1;
        self.retry_at = Some(now.saturating_add_millis(jittered));
        if self.outage_logged {
            log::debug!(
                "push {}: {why}; retrying in {jittered} ms",
                Shown(&self.target)
            );
        } else {
            log::warn!(
                "push {}: {why}; retrying (backoff up to {MAX_RETRY_MS} ms)",
                self.target
            );
            self.outage_logged = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_publish_names_carry_the_query() {
        let t = PushUrl::parse("rtmp://example.org/live/radio?key=k").unwrap();
        assert_eq!(tc_url(&t), "rtmp://example.org:1935/live");
        assert_eq!(publish_name(&t), "radio?key=k");
        assert_eq!(Shown(&t).to_string(), "rtmp://example.org:1935/live/radio");
        let t = PushUrl::parse("rtmp://[::1]:1936/live?key=k").unwrap();
        assert_eq!(tc_url(&t), "rtmp://[::1]:1936/live?key=k");
    }

    #[test]
    fn backoff_is_capped_with_jitter() {
        let t = PushUrl::parse("rtmp://h/live/x").unwrap();
        let mut r = Relay::new(t, "live", "x", Instant::from_millis(0));
        let now = Instant::from_millis(1000);
        let mut delays = Vec::new();
        for i in 0..8 {
            r.down(now, "refused", i * 7919);
            delays.push(r.retry_at.unwrap().as_millis() - 1000);
        }
        assert!(delays[0] <= 1000, "first retry within a second: {delays:?}");
        assert!(delays.iter().all(|&d| d <= MAX_RETRY_MS), "{delays:?}");
        assert!(delays[5] >= MAX_RETRY_MS / 2, "{delays:?}");
        // A push that stayed up for a while starts over.
        r.up(now);
        r.down(Instant::from_millis(1000 + HEALTHY_MS), "closed", 0);
        assert!(r.retry_at.unwrap().as_millis() - (1000 + HEALTHY_MS) <= 1000);
    }
}
