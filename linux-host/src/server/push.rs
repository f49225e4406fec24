//! The server's push side: which pushes the configuration asks for, their attempts (the host
//! resolved by the worker, never on the loop), their connections, and their end.
//!
//! A push is [`State::Waiting`] while its stream does not exist (nothing to send and no timer,
//! so a push configured before its publisher costs nothing), [`State::Due`] between attempts,
//! [`State::Resolving`] while the worker looks its host up, and [`State::Connected`] while a
//! connection carries it.

use log::{debug, info};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use zerocast_core::session::{ClientConfig, ClientEvent, ClientRole};
use zerocast_core::time::Instant;

use super::{Conn, Kind, Server};
use crate::conn::{Close, RelaySession, RtmpReader, Upstream};
use crate::formats::Format;
use crate::hub::StreamId;
use crate::icecast::{self, SourceClient};
use crate::relay::{self, Relay, State, DEAD_MS, RESOLVE_TIMEOUT_MS};
use crate::stream::{Publisher, CHUNK_SIZE};
use crate::worker::{Done, Job};

impl Server {
    /// Creates the relays the configuration asks for that do not exist yet: a push with a
    /// name pushes `--stream`; one without pushes every stream that has a publisher.
    pub(super) fn add_relays(&mut self, now: Instant) {
        let app = self.options.access.app.clone();
        for push in self.options.pushes.clone() {
            let target = push.target;
            let per_publish = push.stream.is_none() && !target.one_stream();
            let names: Vec<String> = match (push.stream, target.one_stream()) {
                (Some(local), _) => vec![local],
                (None, true) => vec![self.options.default_stream.clone()],
                (None, false) => self
                    .hub
                    .iter()
                    .filter(|(_, s)| s.publisher() != Publisher::None)
                    .map(|(_, s)| s.name().to_owned())
                    .collect(),
            };
            for name in names {
                let mut target = target.clone();
                if !target.icecast {
                    target.name.get_or_insert_with(|| name.clone());
                }
                let exists = self
                    .relays
                    .iter()
                    .any(|(_, r)| r.target == target && r.name == name);
                if !exists {
                    let relay = Relay::new(target, &app, &name, per_publish, now);
                    self.relays.insert(relay);
                }
            }
        }
    }

    /// Starts the attempts that are due: a push whose stream does not exist waits for it
    /// (no timer), a literal address connects at once, a host name goes to the worker.
    pub(super) fn connect_relays(&mut self, registry: &Registry, now: Instant) {
        let due: Vec<usize> = self
            .relays
            .iter()
            .filter(|(_, r)| matches!(r.state, State::Due(at) if at <= now))
            .map(|(r, _)| r)
            .collect();
        for r in due {
            let Some(exists) = self
                .relays
                .get(r)
                .map(|relay| self.pushed_stream(relay).is_some())
            else {
                continue;
            };
            let Some(relay) = self.relays.get_mut(r) else {
                continue;
            };
            if !exists {
                relay.state = State::Waiting;
                continue;
            }
            if let Some(addr) = relay.literal_address() {
                self.connect_relay(registry, r, addr, now);
                continue;
            }
            let deadline = now.saturating_add_millis(RESOLVE_TIMEOUT_MS);
            // An earlier lookup still in the worker is waited for, not queued again behind a
            // resolver that does not answer.
            let job = match relay.in_flight {
                Some(job) => Ok(job),
                None => {
                    let job = self.relays.next_job();
                    let Some(relay) = self.relays.get_mut(r) else {
                        continue;
                    };
                    let submitted = match &self.worker {
                        Some(worker) => worker.submit(Job::Resolve {
                            id: job,
                            host: relay.target.host.clone(),
                            port: relay.target.port,
                        }),
                        None => Err(crate::worker::SubmitError::Gone),
                    };
                    submitted.map(|()| {
                        relay.in_flight = Some(job);
                        job
                    })
                }
            };
            match job {
                Ok(job) => {
                    if let Some(relay) = self.relays.get_mut(r) {
                        relay.state = State::Resolving { job, deadline };
                    }
                }
                Err(e) => self.relay_failed(r, &format!("resolving: {e}"), now),
            }
        }
    }

    /// Answers from the worker: a resolved push connects, a failed one backs off.
    pub(super) fn worker_ready(&mut self, registry: &Registry, now: Instant) {
        while let Some(done) = self.worker.as_ref().and_then(|w| w.next()) {
            let (id, result) = match done {
                Done::Resolved { id, result } => (id, result),
                Done::Http { id, result } => {
                    self.title_sent(id, result);
                    continue;
                }
                Done::Hooked { id, verdict } => {
                    self.hook_answered(registry, id, verdict, now);
                    continue;
                }
            };
            let Some(r) = self.relays.by_job(id) else {
                continue;
            };
            let Some(relay) = self.relays.get_mut(r) else {
                continue;
            };
            relay.in_flight = None;
            // An answer after the attempt gave up is dropped; the next attempt asks again.
            if !matches!(relay.state, State::Resolving { job, .. } if job == id) {
                continue;
            }
            match result {
                Ok(addr) => self.connect_relay(registry, r, addr, now),
                Err(why) => self.relay_failed(r, &why, now),
            }
        }
        self.flush_dirty(registry, now);
    }

    /// Sends the title of each Icecast push's stream to its server when it changed (through
    /// the worker: Icecast takes titles on its admin URL, another connection).
    pub(super) fn forward_titles(&mut self) {
        let due: Vec<(usize, u64, std::net::SocketAddr, Vec<u8>)> = self
            .relays
            .iter()
            .filter(|(_, r)| r.target.icecast && r.title_job.is_none() && r.status().0)
            .filter_map(|(i, r)| {
                let (id, _) = self.pushed_stream(r)?;
                let stream = self.hub.get(id)?;
                let generation = stream.title_generation();
                if generation == r.title_generation || stream.title().is_empty() {
                    return None;
                }
                let addr = self.conns.get(r.conn()?)?.as_ref()?.peer;
                let request = icecast::title_request(&r.target, stream.title());
                Some((i, generation, addr, request))
            })
            .collect();
        for (r, generation, addr, request) in due {
            let id = self.relays.next_job();
            let sent = self
                .worker
                .as_ref()
                .is_some_and(|w| w.submit(Job::Http { id, addr, request }).is_ok());
            if let Some(relay) = self.relays.get_mut(r) {
                relay.title_generation = generation;
                relay.title_job = sent.then_some(id);
            }
        }
    }

    /// The answer to a title update.
    fn title_sent(&mut self, id: u64, result: Result<u16, String>) {
        let Some(r) = self.relays.by_job(id) else {
            return;
        };
        let Some(relay) = self.relays.get_mut(r) else {
            return;
        };
        relay.title_job = None;
        match result {
            Ok(200) => debug!("push {} to {}: title sent", relay.name, relay.target),
            Ok(code) => log::warn!(
                "push {} to {}: title refused: {code}",
                relay.name,
                relay.target
            ),
            Err(e) => log::warn!(
                "push {} to {}: title not sent: {e}",
                relay.name,
                relay.target
            ),
        }
    }

    /// Attempts whose resolution outlived its deadline fail.
    pub(super) fn expire_relays(&mut self, now: Instant) {
        let late: Vec<(usize, String)> = self
            .relays
            .iter()
            .filter(
                |(_, r)| matches!(r.state, State::Resolving { deadline, .. } if deadline <= now),
            )
            .map(|(r, relay)| (r, relay.target.host.clone()))
            .collect();
        for (r, host) in late {
            let why = format!("resolving {host}: no answer in {RESOLVE_TIMEOUT_MS} ms");
            self.relay_failed(r, &why, now);
        }
    }

    fn relay_failed(&mut self, r: usize, why: &str, now: Instant) {
        let entropy = u64::from_le_bytes(self.entropy());
        if let Some(relay) = self.relays.get_mut(r) {
            relay.down(now, why, entropy);
        }
    }

    fn connect_relay(
        &mut self,
        registry: &Registry,
        r: usize,
        addr: std::net::SocketAddr,
        now: Instant,
    ) {
        let stream = self
            .relays
            .get(r)
            .and_then(|relay| self.pushed_stream(relay));
        let result = match stream {
            Some((stream, format)) => self.open_relay(registry, r, stream, format, addr, now),
            None => Err("its stream is gone, or has no MP3 or AAC for Icecast".to_owned()),
        };
        if let Err(why) = result {
            self.relay_failed(r, &why, now);
        }
    }

    fn open_relay(
        &mut self,
        registry: &Registry,
        r: usize,
        stream: StreamId,
        format: Option<Format>,
        addr: std::net::SocketAddr,
        now: Instant,
    ) -> Result<(), String> {
        let index = self
            .conns
            .iter()
            .position(Option::is_none)
            .ok_or("no free connection slot")?;
        let entropy = self.entropy();
        let idle_timeout_ms = self.options.idle_timeout_ms.min(DEAD_MS);
        let token = self.token(index);
        let relay = self.relays.get_mut(r).ok_or("removed")?;
        let target = relay.target.clone();
        if target.tls {
            return Err(
                "TLS is not built into zerocast yet (use rtmp:// or icecast://)".to_owned(),
            );
        }
        let mut socket = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let _ = socket.set_nodelay(true);
        registry
            .register(&mut socket, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("register: {e}"))?;
        let session = match format {
            Some(format) => {
                let meta = icecast::Meta {
                    name: self
                        .hub
                        .get(stream)
                        .map_or(String::new(), |s| s.title().to_owned()),
                    description: format!("zerocast {}/{}", relay.app, relay.name),
                    ..icecast::Meta::default()
                };
                let method = relay.method;
                Upstream::Icecast(Box::new(SourceClient::new(
                    &target,
                    method,
                    format.content_type(),
                    &meta,
                    now,
                )))
            }
            None => {
                let tc_url = relay::tc_url(&target);
                let app = relay::connect_app(&target);
                let name = relay::publish_name(&target);
                let config = ClientConfig {
                    app: &app,
                    tc_url: &tc_url,
                    stream: &name,
                    role: ClientRole::Publish,
                    digest: false,
                    chunk_size: CHUNK_SIZE,
                    max_message: 64 * 1024,
                    idle_timeout_ms,
                };
                Upstream::Rtmp(Box::new(
                    RelaySession::new(now, entropy, &config)
                        .map_err(|e| format!("session: {e}"))?,
                ))
            }
        };
        debug!("push {} to {target}: connecting to {addr}", relay.name);
        relay.state = State::Connected(index);
        self.conns[index] = Some(Box::new(Conn::new(
            socket,
            addr,
            Kind::Relay {
                session,
                relay: r,
                stream,
            },
            now,
        )));
        self.reschedule(index);
        Ok(())
    }

    /// The stream a push sends, and for an Icecast push the format it sends: the stream itself
    /// if it is MP3 or AAC, else its `_aac` or `_mp3` rendition (a capture's default first
    /// codec is ADPCM, which Icecast cannot serve).
    pub(super) fn pushed_stream(&self, relay: &Relay) -> Option<(StreamId, Option<Format>)> {
        if !relay.target.icecast {
            return Some((self.hub.find(&relay.app, &relay.name)?, None));
        }
        let names = [
            relay.name.clone(),
            format!("{}_aac", relay.name),
            format!("{}_mp3", relay.name),
        ];
        names.iter().find_map(|name| {
            let id = self.hub.find(&relay.app, name)?;
            let http = self.hub.get(id)?.http()?;
            [Format::Mp3, Format::Aac]
                .into_iter()
                .find(|f| http.rendition(*f).is_some())
                .map(|f| (id, Some(f)))
        })
    }

    /// Upstream input on push connection `index` (`reader` is its reader of the stream):
    /// the push publishes once the upstream takes it. Returns the bytes consumed.
    pub(super) fn relay_input(
        &mut self,
        index: usize,
        session: &mut Upstream,
        (relay, stream): (usize, StreamId),
        reader: &mut Option<RtmpReader>,
        input: &[u8],
        now: Instant,
    ) -> Result<usize, Close> {
        let (consumed, publishing) = match session {
            Upstream::Rtmp(session) => {
                let received = session.receive(now, input)?;
                match received.event {
                    Some(ClientEvent::Publishing) => (received.consumed, true),
                    Some(ClientEvent::EndOfStream) => return Err(Close::PeerClosed),
                    _ => (received.consumed, false),
                }
            }
            Upstream::Icecast(source) => {
                (input.len(), source.receive(input).map_err(Close::Source)?)
            }
        };
        if !publishing {
            return Ok(consumed);
        }
        let Some(r) = self.relays.get_mut(relay) else {
            return Err(Close::StreamGone);
        };
        r.up(now);
        info!("push {} to {}: publishing", r.name, r.target);
        // The stream the relay was made for may be gone since (its id then finds nothing): the
        // relay ends, and starts anew for the name.
        let started = match session {
            Upstream::Rtmp(_) => self
                .hub
                .get(stream)
                .map(|s| RtmpReader::new(stream, s.join_cursor(0))),
            Upstream::Icecast(_) => {
                let format = self.relays.get(relay).and_then(|r| self.pushed_stream(r));
                format
                    .and_then(|(_, f)| f)
                    .and_then(|f| RtmpReader::of_format(stream, &self.hub, f))
            }
        };
        *reader = Some(started.ok_or(Close::StreamGone)?);
        if let Some(s) = self.hub.get_mut(stream) {
            s.add_reader(index);
        }
        Ok(consumed)
    }

    /// The connection of push `r` closed for `why` after sending `bytes`.
    pub(super) fn relay_closed(&mut self, r: usize, why: &Close, bytes: u64, now: Instant) {
        if let Some(relay) = self.relays.get_mut(r) {
            relay.bytes_sent += bytes;
            if let Close::Source(e) = why {
                relay.method = relay.method.after(e);
            }
        }
        self.relay_failed(r, &why.to_string(), now);
    }

    /// A publisher made a stream exist: the pushes waiting for it are due (the loop's next
    /// turn connects them), and a push of every stream gets one for it.
    pub(super) fn relays_stream_ready(&mut self, now: Instant) {
        self.add_relays(now);
        let ready: Vec<(String, String)> = self
            .hub
            .iter()
            .map(|(_, s)| (s.app().to_owned(), s.name().to_owned()))
            .collect();
        for (app, name) in ready {
            self.relays.stream_ready(&app, &name, now);
        }
    }

    /// Pushes waiting for audio they can send get it: an Icecast push waits for its stream's
    /// first MP3 or AAC (the HTTP renditions are made from the first audio message). Costs a
    /// look at the waiting pushes when new audio is first marked for sending.
    pub(super) fn wake_relays_with_audio(&mut self) {
        let ready: Vec<usize> = self
            .relays
            .iter()
            .filter(|(_, r)| r.state == State::Waiting && self.pushed_stream(r).is_some())
            .map(|(r, _)| r)
            .collect();
        for r in ready {
            if let Some(relay) = self.relays.get_mut(r) {
                relay.state = State::Due(Instant::from_millis(0));
            }
        }
    }

    /// `app/name` lost its publisher: a push made for it by a push of every stream ends, as
    /// nginx-rtmp's `push` ends with the publish (the stream may then be released).
    pub(super) fn end_per_publish_relays(&mut self, app: &str, name: &str) {
        let ended: Vec<usize> = self
            .relays
            .iter()
            .filter(|(_, r)| r.per_publish && r.app == app && r.name == name)
            .map(|(r, _)| r)
            .collect();
        for r in ended {
            if let Some(relay) = self.relays.remove(r) {
                debug!(
                    "push {} to {}: ends with its publisher",
                    relay.name, relay.target
                );
                if let Some(index) = relay.conn() {
                    self.pending_close.push((index, Close::Shutdown));
                }
            }
        }
    }

    /// Reload: pushes no longer configured end and leave nothing behind.
    pub(super) fn retire_relays(&mut self, registry: &Registry, now: Instant) {
        let unwanted: Vec<usize> = self
            .relays
            .iter()
            .filter(|(_, relay)| {
                !self.options.pushes.iter().any(|p| {
                    relay::same_upstream(&p.target, &relay.target)
                        && p.stream.as_ref().map_or(true, |s| *s == relay.name)
                })
            })
            .map(|(r, _)| r)
            .collect();
        for r in unwanted {
            if let Some(relay) = self.relays.remove(r) {
                log::info!("reload: push {} to {} removed", relay.name, relay.target);
                if let Some(index) = relay.conn() {
                    self.close(registry, index, Close::Shutdown, now);
                }
            }
        }
    }
}
