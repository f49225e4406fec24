//! Accepting: who gets a connection slot ([`Quota`], per address group, with a reserve), the
//! HTTP client that has not finished its request giving way when the HTTP slots are full, and
//! what happens when the process runs out of descriptors ([`crate::fdlimit`]).

use std::io;
use std::net::SocketAddr;

use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry};
use zerocast_core::time::Instant;

use super::{Server, Side};
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
    /// Accepts what the listener of `side` has waiting, each connection within its side's
    /// [`Quota`]. While accepting is paused, nothing: the pause's timer accepts what waited
    /// ([`Server::resume_accepting`]).
    pub(super) fn accept(&mut self, registry: &Registry, now: Instant, side: Side) {
        if self.accept_paused.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listener_of(side) else {
                return;
            };
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.accept_failed(now, side, &e);
                    return;
                }
            };
            self.admit(registry, now, side, socket, peer);
        }
    }

    /// The listener of `side`, if the server listens there.
    fn listener_of(&self, side: Side) -> Option<&mio::net::TcpListener> {
        match side {
            Side::Rtmp => Some(&self.listener),
            Side::Http => self.http.as_ref().map(|h| h.listener()),
            Side::Rtsp => self.rtsp.as_ref().map(|r| r.listener()),
        }
    }

    /// `accept` failed with `e`. Out of descriptors: the reserve is given up to take and close
    /// what waits in the backlog, then taken back. Either way accepting pauses for
    /// [`ACCEPT_PAUSE_MS`] (the listener stays readable, and an edge-triggered poll would not
    /// say so again), logged at most once per [`ACCEPT_WARN_MS`].
    fn accept_failed(&mut self, now: Instant, side: Side, e: &io::Error) {
        let mut closed = 0;
        if fdlimit::out_of_descriptors(e) {
            self.reserve.release();
            if let Some(listener) = self.listener_of(side) {
                while closed < DRAIN_PER_PAUSE && listener.accept().is_ok() {
                    closed += 1;
                }
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
                 ulimit -n, or lower --max-clients / --http-max-clients / --rtsp-max-clients)"
            );
        }
        self.accept_paused = Some(now.saturating_add_millis(ACCEPT_PAUSE_MS));
    }

    /// The pause is over: accept what waits on every listener.
    pub(super) fn resume_accepting(&mut self, registry: &Registry, now: Instant) {
        if self.accept_paused.is_some_and(|at| at <= now) {
            self.accept_paused = None;
            for side in [Side::Rtmp, Side::Http, Side::Rtsp] {
                self.accept(registry, now, side);
            }
        }
    }

    /// The quota of one side.
    fn quota(&self, side: Side) -> (Quota, &'static str) {
        let (slots, flag) = match (side, &self.http, &self.rtsp) {
            (Side::Http, Some(http), _) => (http.max_clients(), "--http-max-clients"),
            (Side::Rtsp, _, Some(rtsp)) => (rtsp.max_clients(), "--rtsp-max-clients"),
            _ => (self.options.max_clients, "--max-clients"),
        };
        (Quota::new(slots, self.options.max_per_addr), flag)
    }

    /// Slots of one side `group` holds, and slots of that side taken.
    fn held(&self, side: Side, group: Group) -> (usize, usize) {
        // Pushes have slots of their own (no side).
        let same = self
            .conns
            .iter()
            .flatten()
            .filter(|c| Side::of(&c.kind) == Some(side));
        same.fold((0, 0), |(held, used), c| {
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
        side: Side,
        mut socket: TcpStream,
        peer: SocketAddr,
    ) {
        let group = Group::of(peer.ip());
        let (quota, flag) = self.quota(side);
        let (held, used) = self.held(side, group);
        let mut verdict = quota.admit(held, used, group.is_host());
        if side == Side::Http && verdict == Err(Over::Slots) {
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
        let kind = match (side, &self.http) {
            (Side::Http, Some(http)) => http.connection(now),
            (Side::Rtsp, _) => self.rtsp_connection(now),
            _ => Kind::peer(now, self.entropy(), &self.session_config),
        };
        self.conns[index] = Some(Box::new(Conn::new(socket, peer, kind, now)));
        self.reschedule(index);
    }
}
