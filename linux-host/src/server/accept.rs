//! Accepting: who gets a connection slot ([`Quota`], per address group, with a reserve), the
//! HTTP client that has not finished its request giving way when the HTTP slots are full, and
//! what happens when the process runs out of descriptors ([`crate::fdlimit`]).

use std::io;
use std::net::SocketAddr;

use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use zerocast_core::time::Instant;

use super::Server;
use crate::conn::{Close, Conn, HttpPart, Kind};
use crate::fdlimit;
use crate::limits::{Group, Over, Quota};

/// How long accepting pauses after the descriptors ran out (or `accept` failed otherwise):
/// long enough not to spin on a listener that stays readable, short enough that a freed
/// descriptor serves the next player at once.
const ACCEPT_PAUSE_MS: u64 = 100;
/// A failed accept is logged at most once in this long (a siege lasts, the log must not grow
/// with it).
const ACCEPT_WARN_MS: u64 = 60_000;
/// Connections taken and closed at once per pause when the descriptors ran out.
const DRAIN_PER_PAUSE: usize = 256;

impl Server {
    /// Accepts what the RTMP listener (or, with `http`, the HTTP listener) has waiting, each
    /// connection within its side's [`Quota`]. While accepting is paused, nothing: the pause's
    /// timer accepts what waited ([`Server::resume_accepting`]).
    pub(super) fn accept(&mut self, registry: &Registry, now: Instant, http: bool) {
        if self.accept_paused.is_some() {
            return;
        }
        loop {
            let listener = match (http, &self.http) {
                (false, _) => &self.listener,
                (true, Some(side)) => side.listener(),
                (true, None) => return,
            };
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.accept_failed(now, http, &e);
                    return;
                }
            };
            self.admit(registry, now, http, socket, peer);
        }
    }

    /// `accept` failed with `e`. Out of descriptors: the reserve is given up to take and close
    /// what waits in the backlog, then taken back. Either way accepting pauses for
    /// [`ACCEPT_PAUSE_MS`] (the listener stays readable, and an edge-triggered poll would not
    /// say so again), logged at most once per [`ACCEPT_WARN_MS`].
    fn accept_failed(&mut self, now: Instant, http: bool, e: &io::Error) {
        let mut closed = 0;
        if fdlimit::out_of_descriptors(e) {
            self.reserve.release();
            let listener = match (http, &self.http) {
                (true, Some(side)) => side.listener(),
                _ => &self.listener,
            };
            while closed < DRAIN_PER_PAUSE && listener.accept().is_ok() {
                closed += 1;
            }
            self.reserve.restore();
        }
        let quiet = self
            .accept_warned
            .is_some_and(|at| now.saturating_millis_since(at) < ACCEPT_WARN_MS);
        if !quiet {
            self.accept_warned = Some(now);
            warn!(
                "accept failed: {e}; {closed} waiting connections closed; accepting again every \
                 {ACCEPT_PAUSE_MS} ms until it works (out of descriptors: raise LimitNOFILE= or \
                 ulimit -n, or lower --max-clients / --http-max-clients)"
            );
        }
        self.accept_paused = Some(now.saturating_add_millis(ACCEPT_PAUSE_MS));
    }

    /// The pause is over: accept what waits on both listeners.
    pub(super) fn resume_accepting(&mut self, registry: &Registry, now: Instant) {
        if self.accept_paused.is_some_and(|at| at <= now) {
            self.accept_paused = None;
            self.accept(registry, now, false);
            self.accept(registry, now, true);
        }
    }

    /// The quota of one side.
    fn quota(&self, http: bool) -> (Quota, &'static str) {
        match &self.http {
            Some(side) if http => (
                Quota::new(side.max_clients(), self.options.max_per_addr),
                "--http-max-clients",
            ),
            _ => (
                Quota::new(self.options.max_clients, self.options.max_per_addr),
                "--max-clients",
            ),
        }
    }

    /// Slots of one side `group` holds, and slots of that side taken.
    fn held(&self, http: bool, group: Group) -> (usize, usize) {
        let side = self.conns.iter().flatten().filter(|c| match c.kind {
            Kind::Http(_) => http,
            Kind::Peer { .. } => !http,
            // Pushes have slots of their own.
            Kind::Relay { .. } => false,
        });
        side.fold((0, 0), |(held, used), c| {
            (
                held + usize::from(Group::of(c.peer.ip()) == group),
                used + 1,
            )
        })
    }

    /// The HTTP connection that has waited longest for a complete request head (a new one,
    /// or a kept-alive one between requests): the one to give way when the slots are full. A
    /// listener waiting for its stream's first audio has sent its request: it stays.
    fn oldest_incomplete_http(&self) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.as_deref().map(|c| (&c.kind, c.peer)) {
                Some((Kind::Http(h), _)) if h.client.waiting() => None,
                Some((Kind::Http(h), peer)) => Some((h.deadline()?, i, peer)),
                _ => None,
            })
            .min_by_key(|(deadline, _, _)| *deadline)
            .map(|(_, i, _)| i)
    }

    /// Gives `socket` a slot if its side's quota lets it, else closes it (closing is the
    /// answer). An HTTP client arriving at a full table takes the slot of the oldest one that
    /// has not sent a complete request (slowloris).
    fn admit(
        &mut self,
        registry: &Registry,
        now: Instant,
        http: bool,
        mut socket: TcpStream,
        peer: SocketAddr,
    ) {
        let group = Group::of(peer.ip());
        let (quota, flag) = self.quota(http);
        let (held, used) = self.held(http, group);
        let mut verdict = quota.admit(held, used, group.is_host());
        if http && verdict == Err(Over::Slots) {
            if let Some(victim) = self.oldest_incomplete_http() {
                let same = self.conns[victim]
                    .as_ref()
                    .is_some_and(|c| Group::of(c.peer.ip()) == group);
                let held = held - usize::from(same);
                if quota.admit(held, used - 1, group.is_host()).is_ok() {
                    self.close(registry, victim, Close::Evicted, now);
                    verdict = Ok(());
                }
            }
        }
        let free = self.conns.iter().position(Option::is_none);
        let index = match (verdict, free) {
            (Ok(()), Some(index)) => index,
            (Err(Over::Group), _) => {
                warn!(
                    "{peer}: refused, {held} connections from this address (--max-per-addr; an \
                     IPv6 /64 counts as one address)"
                );
                return;
            }
            (Err(Over::Reserve), _) => {
                warn!(
                    "{peer}: refused, {held} connections from this address and only {} of {} \
                     slots ({flag}) free: they are kept for other addresses",
                    quota.slots - used,
                    quota.slots
                );
                return;
            }
            (Err(Over::Slots), _) | (Ok(()), None) => {
                warn!(
                    "{peer}: refused, all {} connection slots busy ({flag})",
                    quota.slots
                );
                return;
            }
        };
        // Small writes (replies, 20 ms periods) must not wait for Nagle + delayed ACK
        // (protocol-notes section 2: ~45 ms steps otherwise).
        let _ = socket.set_nodelay(true);
        if let Err(e) = registry.register(
            &mut socket,
            self.token(index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("{peer}: cannot register: {e}");
            return;
        }
        debug!("{peer}: connected");
        self.accepted += 1;
        let kind = match &self.http {
            Some(side) if http => side.connection(now),
            _ => Kind::peer(now, self.entropy(), &self.session_config),
        };
        self.conns[index] = Some(Box::new(Conn::new(socket, peer, kind, now)));
        self.reschedule(index);
    }
}
