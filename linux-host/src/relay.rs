//! Push relays: zerocast publishing one of its streams to an upstream RTMP server (nginx-rtmp,
//! SRS, a streaming platform) — how one Pi scales out. The connection itself is a
//! [`Conn`](crate::conn::Conn) of kind `Relay` that reads the stream's ring like a player; this
//! module keeps what outlives a connection: the target, the backoff, the outage log.

use std::net::{IpAddr, SocketAddr};

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

/// The first retry comes after this, doubling per failure...
const FIRST_RETRY_MS: u64 = 500;
/// ...up to this.
const MAX_RETRY_MS: u64 = 8000;
/// A push that stayed up this long counts as healthy again: the next outage starts the
/// backoff from the beginning.
const HEALTHY_MS: u64 = 10_000;
/// A push whose upstream sends nothing this long (the session pings it after half of it) or
/// takes none of its bytes this long is dead: closed and retried with the backoff. Shorter than
/// a player's idle timeout: a frozen upstream (a stopped process, a link that went away without
/// a reset) must be noticed while its listeners still care, and an upstream more than this
/// behind real time serves nobody live anyway.
pub const DEAD_MS: u64 = 10_000;
/// How long a resolution may take before the attempt counts as failed. glibc gives up on a
/// silent server after `timeout:5` × `attempts:2`; the push backs off and tries again either way.
pub const RESOLVE_TIMEOUT_MS: u64 = 10_000;

/// Where a push stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Its stream does not exist yet: nothing to push and nothing scheduled until a publisher
    /// (or the capture) creates it.
    Waiting,
    /// The next attempt is due then.
    Due(Instant),
    /// The worker resolves the host for job `job`; the attempt fails at `deadline`.
    Resolving {
        /// The worker job.
        job: u64,
        /// When the attempt gives up on the answer.
        deadline: Instant,
    },
    /// A connection carries it, by index.
    Connected(usize),
}

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
    /// Made for a push of every stream: it ends with its stream's publisher, as nginx-rtmp's
    /// `push` does, instead of pushing silence for a name nobody publishes any more.
    pub per_publish: bool,
    /// Where it stands.
    pub state: State,
    /// A resolution submitted and not answered yet: a new attempt waits for it instead of
    /// queueing another behind a resolver that hangs.
    pub in_flight: Option<u64>,
    failures: u32,
    /// When the push last reached the publishing state.
    up_since: Option<Instant>,
    /// The outage has been logged (each outage once).
    outage_logged: bool,
    /// Connections that reached the publishing state after the first.
    pub reconnects: u64,
    /// What ended the last attempt (no secrets: errors name the host at most).
    pub last_error: Option<String>,
    /// Bytes sent upstream by the connections that have ended.
    pub bytes_sent: u64,
    /// The stream title generation last sent to an Icecast server (0: none yet).
    pub title_generation: u64,
    /// A title update the worker is sending.
    pub title_job: Option<u64>,
    /// The source method an Icecast push uses: `PUT`, or `SOURCE` once the server said it
    /// has no `PUT`.
    pub method: crate::icecast::Method,
}

impl Relay {
    /// Whether the push is connected and has published (for the HTTP reports), and the
    /// failures since it was last healthy.
    pub fn status(&self) -> (bool, u32) {
        (
            matches!(self.state, State::Connected(_)) && self.up_since.is_some(),
            self.failures,
        )
    }

    /// When the push came up, if it is up.
    pub fn up_since(&self) -> Option<Instant> {
        self.up_since
    }

    /// A relay of local `app/name` to `target`, due at once.
    pub fn new(target: Target, app: &str, name: &str, per_publish: bool, now: Instant) -> Self {
        Self {
            target,
            app: app.to_owned(),
            name: name.to_owned(),
            per_publish,
            state: State::Due(now),
            in_flight: None,
            failures: 0,
            up_since: None,
            outage_logged: false,
            reconnects: 0,
            last_error: None,
            bytes_sent: 0,
            method: crate::icecast::Method::Put,
            title_generation: 0,
            title_job: None,
        }
    }

    /// When the relay needs the loop next, if ever without an event.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Due(at) => Some(at),
            State::Resolving { deadline, .. } => Some(deadline),
            State::Waiting | State::Connected(_) => None,
        }
    }

    /// The connection carrying it, if any.
    pub fn conn(&self) -> Option<usize> {
        match self.state {
            State::Connected(index) => Some(index),
            _ => None,
        }
    }

    /// The upstream's address when the URL names one: no resolution needed.
    pub fn literal_address(&self) -> Option<SocketAddr> {
        self.target
            .host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.target.port))
    }

    /// The upstream accepted the publish.
    pub fn up(&mut self, now: Instant) {
        if self.outage_logged {
            log::info!("push {} to {}: back up", self.name, self.target);
        }
        if self.last_error.is_some() {
            self.reconnects += 1;
        }
        self.up_since = Some(now);
        self.outage_logged = false;
        // A new source connection has no title on the server yet.
        self.title_generation = 0;
    }

    /// The attempt or connection failed or closed: schedule the next attempt with capped
    /// exponential backoff and jitter (`entropy` picks a point in the upper half of the delay,
    /// so many Pis restarted by one power cut do not retry in step). Logs the outage once.
    pub fn down(&mut self, now: Instant, why: &str, entropy: u64) {
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
        self.state = State::Due(now.saturating_add_millis(jittered));
        self.last_error = Some(why.to_owned());
        if self.outage_logged {
            log::debug!(
                "push {} to {}: {why}; retrying in {jittered} ms",
                self.name,
                self.target
            );
        } else {
            log::warn!(
                "push {} to {}: {why}; retrying (backoff up to {MAX_RETRY_MS} ms)",
                self.name,
                self.target
            );
            self.outage_logged = true;
        }
    }
}

/// The pushes running, in slots that are reused: a push removed by a reload, or one that
/// ended with its stream's publisher, leaves nothing behind.
#[derive(Debug, Default)]
pub struct Relays {
    slots: Vec<Option<Relay>>,
    next_job: u64,
}

impl Relays {
    /// The pushes, with their slot numbers.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Relay)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(r, slot)| Some((r, slot.as_ref()?)))
    }

    /// The push in slot `r`.
    pub fn get(&self, r: usize) -> Option<&Relay> {
        self.slots.get(r).and_then(Option::as_ref)
    }

    /// The push in slot `r`, to change.
    pub fn get_mut(&mut self, r: usize) -> Option<&mut Relay> {
        self.slots.get_mut(r).and_then(Option::as_mut)
    }

    /// Adds a push in a free slot; returns the slot.
    pub fn insert(&mut self, relay: Relay) -> usize {
        match self.slots.iter().position(Option::is_none) {
            Some(r) => {
                self.slots[r] = Some(relay);
                r
            }
            None => {
                self.slots.push(Some(relay));
                self.slots.len() - 1
            }
        }
    }

    /// Removes the push in slot `r`.
    pub fn remove(&mut self, r: usize) -> Option<Relay> {
        self.slots.get_mut(r).and_then(Option::take)
    }

    /// A fresh id for a worker job.
    pub fn next_job(&mut self) -> u64 {
        self.next_job += 1;
        self.next_job
    }

    /// The slot whose resolution or title update `job` is.
    pub fn by_job(&self, job: u64) -> Option<usize> {
        self.iter()
            .find(|(_, r)| r.in_flight == Some(job) || r.title_job == Some(job))
            .map(|(r, _)| r)
    }

    /// The earliest deadline of any push.
    pub fn deadline(&self) -> Option<Instant> {
        self.iter().filter_map(|(_, r)| r.deadline()).min()
    }

    /// Pushes of `app/name` that wait for their stream become due now.
    pub fn stream_ready(&mut self, app: &str, name: &str, now: Instant) {
        for slot in self.slots.iter_mut().flatten() {
            if slot.state == State::Waiting && slot.app == app && slot.name == name {
                slot.state = State::Due(now);
            }
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
        assert_eq!(t.to_string(), "rtmp://example.org:1935/live/…");
        let t = PushUrl::parse("rtmp://[::1]:1936/live?key=k").unwrap();
        assert_eq!(tc_url(&t), "rtmp://[::1]:1936/live?key=k");
    }

    #[test]
    fn backoff_is_capped_with_jitter() {
        let t = PushUrl::parse("rtmp://h/live/x").unwrap();
        let mut r = Relay::new(t, "live", "x", false, Instant::from_millis(0));
        let now = Instant::from_millis(1000);
        let mut delays = Vec::new();
        for i in 0..8 {
            r.down(now, "refused", i * 7919);
            delays.push(r.deadline().unwrap().as_millis() - 1000);
        }
        assert!(delays[0] <= 1000, "first retry within a second: {delays:?}");
        assert!(delays.iter().all(|&d| d <= MAX_RETRY_MS), "{delays:?}");
        assert!(delays[5] >= MAX_RETRY_MS / 2, "{delays:?}");
        // A push that stayed up for a while starts over.
        r.up(now);
        r.down(Instant::from_millis(1000 + HEALTHY_MS), "closed", 0);
        assert!(r.deadline().unwrap().as_millis() - (1000 + HEALTHY_MS) <= 1000);
    }
}
