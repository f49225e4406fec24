//! The hooks on the loop's side: a play or publish the access rules let through is held (its
//! session's answer deferred, the peer waiting) while the hook worker asks `on_play` /
//! `on_publish`; the answer, or its deadline, decides. `on_connect` is asked in the same way and
//! closes the connection when it refuses (a play or publish asked for meanwhile is parked until
//! it answers); the `*_done` calls are sent and their answers ignored. The loop never waits: it
//! serves everyone else meanwhile.

use std::net::SocketAddr;
use std::time::Duration;

use log::{info, warn};
use mio::Registry;
use zerocast_core::time::Instant;

use super::{Conn, Decision, Kind, Server};
use crate::conn::{Close, Role};
use crate::hooks::{env, form, Call, HookJob, HookState, HookUrl, PeerInfo, Pending, Verdict};
use crate::hub::{Denied, Request};
use crate::logging::Escaped;
use crate::worker::Job;

impl Server {
    /// The URL of hook `call`, if configured.
    fn hook_url(&self, call: Call) -> Option<&HookUrl> {
        let h = &self.settings.hooks;
        match call {
            Call::Connect => h.on_connect.as_ref(),
            Call::Play => h.on_play.as_ref(),
            Call::Publish => h.on_publish.as_ref(),
            Call::PlayDone => h.on_play_done.as_ref(),
            Call::PublishDone => h.on_publish_done.as_ref(),
            Call::Done => h.on_done.as_ref(),
        }
    }

    /// Whether any hook is configured.
    pub(super) fn hooks_on(&self) -> bool {
        self.settings.hooks.run_on_publish.is_some()
            || [
                Call::Connect,
                Call::Play,
                Call::Publish,
                Call::PlayDone,
                Call::PublishDone,
                Call::Done,
            ]
            .into_iter()
            .any(|c| self.hook_url(c).is_some())
    }

    /// Hook `call` for a peer, if one is configured: its URL's POST, or `run_on_publish`.
    fn hook_job(
        &self,
        call: Call,
        app: &str,
        name: &str,
        peer: &PeerInfo,
        addr: SocketAddr,
        index: usize,
    ) -> Option<HookJob> {
        if let (Call::Publish, Some(command)) = (call, &self.settings.hooks.run_on_publish) {
            return Some(HookJob::Exec {
                command: command.clone(),
                env: env(call, app, name, peer, addr.ip(), index as u64),
            });
        }
        Some(HookJob::Post {
            url: self.hook_url(call)?.clone(),
            body: form(call, app, name, peer, addr.ip(), index as u64),
        })
    }

    /// Queues hook `call` about `app`/`name` for the peer `addr` (connection `index`); the
    /// job's id, or `None` if the hook is not configured or the worker is busy.
    fn submit_hook(
        &mut self,
        call: Call,
        app: &str,
        name: &str,
        peer: &PeerInfo,
        addr: SocketAddr,
        index: usize,
    ) -> Option<u64> {
        let job = self.hook_job(call, app, name, peer, addr, index)?;
        let timeout = Duration::from_millis(u64::from(self.settings.hooks.timeout_ms));
        self.hook_jobs += 1;
        let id = self.hook_jobs;
        let job = Job::Hook {
            id,
            job,
            timeout,
            deadline: std::time::Instant::now() + timeout,
        };
        match self.worker.as_ref().map(|w| w.submit(job)) {
            Some(Ok(())) => Some(id),
            Some(Err(e)) => {
                warn!("{addr}: hook on_{} not called: {e}", call.name());
                None
            }
            None => None,
        }
    }

    /// The peer of `conn` connected: what it said is kept for its hooks, and `on_connect` asked.
    pub(super) fn hook_connected(
        &mut self,
        conn: &mut Conn,
        index: usize,
        app: &str,
        peer: PeerInfo,
    ) {
        let job = self.submit_hook(Call::Connect, app, "", &peer, conn.peer, index);
        if self.hook_url(Call::Connect).is_some() && job.is_none() {
            self.pending_close
                .push((index, Close::HookRefused("not called".into())));
        }
        conn.hooks = Some(Box::new(HookState {
            peer,
            connect_job: job,
            pending: None,
        }));
    }

    /// A play or publish the rules allow, held for its hook when one is configured.
    /// Also with only `on_connect`: a request that comes before its answer waits for it.
    pub(super) fn hold_for_hook(&self, request: &Request<'_>, publish: bool) -> Option<Decision> {
        if !self.decides(publish) && self.hook_url(Call::Connect).is_none() {
            return None;
        }
        // A peer the rules refuse is refused at once, without bothering the hook.
        let access = &self.options.access;
        let allowed = if publish {
            access.may_publish(request)
        } else {
            access.may_play(request)
        };
        allowed.ok()?;
        Some(Decision::Hold {
            app: request.app.to_owned(),
            name: request.name.to_owned(),
            publish,
        })
    }

    /// Whether a hook decides plays (publishes with `publish`).
    fn decides(&self, publish: bool) -> bool {
        if publish {
            self.settings.hooks.run_on_publish.is_some() || self.hook_url(Call::Publish).is_some()
        } else {
            self.hook_url(Call::Play).is_some()
        }
    }

    /// A held play or publish: parked while `on_connect` has not answered, asked of its hook
    /// when it has one (refused if the hook cannot be asked), else decided now.
    pub(super) fn ask_hook(
        &mut self,
        conn: &mut Conn,
        index: usize,
        app: String,
        name: String,
        publish: bool,
        now: Instant,
    ) -> Option<Decision> {
        let timeout = u64::from(self.settings.hooks.timeout_ms);
        let deadline = now.saturating_add_millis(timeout);
        if let Some(hooks) = conn.hooks.as_mut() {
            if let Some(job) = hooks.connect_job {
                hooks.pending = Some(Pending {
                    job,
                    app,
                    name,
                    publish,
                    deadline,
                });
                return None;
            }
        }
        if !self.decides(publish) {
            let request = Request {
                peer: conn.peer.ip(),
                app: &app,
                name: &name,
            };
            return Some(self.route(conn.peer, &request, publish, now));
        }
        let call = if publish { Call::Publish } else { Call::Play };
        let peer = conn
            .hooks
            .as_ref()
            .map(|h| h.peer.clone())
            .unwrap_or_default();
        let Some(job) = self.submit_hook(call, &app, &name, &peer, conn.peer, index) else {
            return Some(refusal(publish));
        };
        info!(
            "{}: {} {}/{}: asking the on_{} hook",
            conn.peer,
            call.name(),
            Escaped(crate::hub::split_query(&app).0),
            Escaped(crate::hub::split_query(&name).0),
            call.name()
        );
        conn.hooks.get_or_insert_with(Box::default).pending = Some(Pending {
            job,
            app,
            name,
            publish,
            deadline,
        });
        None
    }

    /// A hook answered job `id` (an answer nobody waits for any more is dropped).
    pub(super) fn hook_answered(
        &mut self,
        registry: &Registry,
        id: u64,
        verdict: Verdict,
        now: Instant,
    ) {
        let found = self.conns.iter().position(|c| {
            c.as_ref().and_then(|c| c.hooks.as_ref()).is_some_and(|h| {
                h.connect_job == Some(id) || h.pending.as_ref().is_some_and(|p| p.job == id)
            })
        });
        let Some(index) = found else {
            return;
        };
        let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) else {
            return;
        };
        let result = self.apply_verdict(&mut conn, index, id, verdict, now);
        self.conns[index] = Some(conn);
        let result = result.and_then(|()| self.flush_one(index, now));
        match result {
            Err(why) => self.close(registry, index, why, now),
            Ok(()) => self.reschedule(index),
        }
    }

    fn apply_verdict(
        &mut self,
        conn: &mut Conn,
        index: usize,
        id: u64,
        verdict: Verdict,
        now: Instant,
    ) -> Result<(), Close> {
        let Some(hooks) = conn.hooks.as_mut() else {
            return Ok(());
        };
        if hooks.connect_job == Some(id) {
            hooks.connect_job = None;
            if let Verdict::Refuse(why) = verdict {
                warn!("{}: refused by the on_connect hook: {why}", conn.peer);
                return Err(Close::HookRefused(why));
            }
            // A play or publish parked behind the connect goes on.
            let Some(p) = hooks.pending.take_if(|p| p.job == id) else {
                return Ok(());
            };
            return match self.ask_hook(conn, index, p.app, p.name, p.publish, now) {
                Some(decision) => self.decide(conn, index, decision, now),
                None => Ok(()),
            };
        }
        let Some(p) = hooks.pending.take_if(|p| p.job == id) else {
            return Ok(());
        };
        let verb = if p.publish { "publish" } else { "play" };
        let name = match verdict {
            Verdict::Allow => p.name,
            Verdict::Rename(to) => {
                let query = crate::hub::split_query(&p.name).1;
                info!(
                    "{}: {verb} {}: renamed {} by the on_{verb} hook",
                    conn.peer,
                    Escaped(crate::hub::split_query(&p.name).0),
                    Escaped(&to)
                );
                if query.is_empty() {
                    to
                } else {
                    format!("{to}?{query}")
                }
            }
            Verdict::Refuse(why) => {
                warn!(
                    "{}: {verb} {}/{} refused by the on_{verb} hook: {why}",
                    conn.peer,
                    Escaped(crate::hub::split_query(&p.app).0),
                    Escaped(crate::hub::split_query(&p.name).0)
                );
                return self.decide(conn, index, refusal(p.publish), now);
            }
        };
        let request = Request {
            peer: conn.peer.ip(),
            app: &p.app,
            name: &name,
        };
        let decision = self.route(conn.peer, &request, p.publish, now);
        self.decide(conn, index, decision, now)
    }

    /// The deadline of the hook `conn` waits for, if any.
    pub(super) fn hook_deadline(conn: &Conn) -> Option<Instant> {
        conn.hooks
            .as_ref()
            .and_then(|h| h.pending.as_ref())
            .map(|p| p.deadline)
    }

    /// A held play or publish whose hook did not answer in time is refused.
    pub(super) fn hook_expired(&mut self, registry: &Registry, index: usize, now: Instant) -> bool {
        let late = match self.conns.get(index) {
            Some(Some(conn)) => Self::hook_deadline(conn).filter(|d| now >= *d),
            _ => None,
        };
        let Some(job) = late.and_then(|_| {
            let conn = self.conns.get(index)?.as_ref()?;
            Some(conn.hooks.as_ref()?.pending.as_ref()?.job)
        }) else {
            return false;
        };
        let why = format!("no answer within {} ms", self.settings.hooks.timeout_ms);
        self.hook_answered(registry, job, Verdict::Refuse(why), now);
        true
    }

    /// The peer of `conn` stopped playing or publishing (or left): `on_play_done` or
    /// `on_publish_done`, then `on_done`, are told.
    pub(super) fn hooks_done(&mut self, conn: &Conn, index: usize) {
        let publish = match &conn.kind {
            Kind::Peer {
                role: Role::Publisher { .. },
                ..
            } => true,
            Kind::Peer {
                role: Role::Player(_) | Role::Waiting,
                ..
            } => false,
            _ => return,
        };
        let (Some(hooks), Some(granted)) = (conn.hooks.as_ref(), conn.granted.as_ref()) else {
            return;
        };
        let (peer, app, name) = (
            hooks.peer.clone(),
            granted.app.clone(),
            granted.name.clone(),
        );
        let call = if publish {
            Call::PublishDone
        } else {
            Call::PlayDone
        };
        for call in [call, Call::Done] {
            // Nobody waits for these answers: their ids match no held request.
            let _ = self.submit_hook(call, &app, &name, &peer, conn.peer, index);
        }
    }
}

/// The refusal of a held play or publish.
fn refusal(publish: bool) -> Decision {
    if publish {
        Decision::RefusePublish(Denied::Hook)
    } else {
        Decision::RefusePlay(Denied::Hook)
    }
}
