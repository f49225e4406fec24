//! The event loop: one thread, one `mio::Poll`, everything else driven from it.
//!
//! Readiness sources, by token: the signalfd ([`SIGNAL_TOKEN`]) for SIGINT/SIGTERM (stop) and
//! SIGHUP (reload), the capture
//! source ([`SOURCE_TOKENS`]), and — from [`FIRST_FREE_TOKEN`] on — what the RTMP side adds
//! (listener, connections). Timers are a small fixed list of deadlines ([`Deadlines`]); the
//! nearest one is the poll timeout, so the loop sleeps exactly until something is due.
//!
//! Every period the source delivers goes to the [`Sink`] (the RTMP fan-out later) through a
//! meter that keeps the peak level for the status line. Counters the RTMP side maintains
//! (listeners, bytes sent) come from the [`Service`] for the status line.
//!
//! Under systemd ([`crate::systemd`]) the loop sends `READY=1` once the service's listener is
//! registered, `STATUS=` with each status line, `RELOADING=1` … `READY=1` around a SIGHUP
//! reload, and `WATCHDOG=1` from a timer of its own, so a loop that hangs stops feeding the
//! watchdog.

use std::fmt;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::capture::drift::DriftMeter;
pub use crate::capture::Sink;
use crate::capture::{
    CaptureError, CaptureStatus, Flow, Format, Source, SourceState, SOURCE_TOKENS,
};
use crate::config::SourceSpec;
use crate::systemd::Notifier;

/// Token of the signalfd.
pub const SIGNAL_TOKEN: Token = Token(0);
/// The first token not used by the loop itself or the source: the RTMP listener and
/// connections take theirs from here.
pub const FIRST_FREE_TOKEN: usize = SOURCE_TOKENS.end;

/// Counters reported on the status line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Players connected now (kept by the RTMP side).
    pub listeners: u32,
    /// Bytes written to players since start (kept by the RTMP side).
    pub bytes_sent: u64,
    /// Capture overruns since start (copied from the source).
    pub overruns: u64,
    /// Largest absolute sample since the last status line, 0..=32768.
    pub peak: u16,
}

/// Formats a peak sample magnitude as dBFS (full scale = 32768), `-inf` for digital silence.
pub struct Dbfs(pub u16);

impl fmt::Display for Dbfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("-inf dBFS");
        }
        write!(
            f,
            "{:.1} dBFS",
            20.0 * (f64::from(self.0) / 32768.0).log10()
        )
    }
}

/// The loop's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Time for the status line.
    Status,
    /// The source has timed work (tone, silence, device retry, watchdog).
    Source,
    /// Time to tell systemd's watchdog the loop is alive.
    Watchdog,
}

/// A fixed list of at most `N` deadlines, one per timer; linear scans, as `N` is small.
#[derive(Clone, Debug)]
pub struct Deadlines<const N: usize> {
    slots: [Option<(Timer, Instant)>; N],
}

/// [`Deadlines::set`] found no free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadlinesFull;

impl<const N: usize> Default for Deadlines<N> {
    fn default() -> Self {
        Self { slots: [None; N] }
    }
}

impl<const N: usize> Deadlines<N> {
    /// Sets (or moves) `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: Instant) -> Result<(), DeadlinesFull> {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|(t, _)| t == timer))
        {
            *slot = Some((timer, at));
            return Ok(());
        }
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(DeadlinesFull)?;
        *slot = Some((timer, at));
        Ok(())
    }

    /// Removes `timer` if set.
    pub fn cancel(&mut self, timer: Timer) {
        for slot in &mut self.slots {
            if slot.is_some_and(|(t, _)| t == timer) {
                *slot = None;
            }
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|(_, at)| *at).min()
    }

    /// Removes and returns one timer whose deadline is at or before `now`, earliest first.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let slot = self
            .slots
            .iter_mut()
            .filter(|s| s.is_some_and(|(_, at)| at <= now))
            .min_by_key(|s| s.map(|(_, at)| at))?;
        slot.take().map(|(t, _)| t)
    }
}

/// How the loop ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGINT or SIGTERM arrived.
    Signal(Signal),
    /// The source's input ended (stdin EOF).
    SourceEnded,
}

/// Why the loop could not go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopError {
    /// Setting up signals or the poll failed.
    Setup {
        /// What was being done.
        op: &'static str,
        /// The errno.
        errno: i32,
    },
    /// `epoll_wait` failed with something other than EINTR.
    Poll {
        /// The errno.
        errno: i32,
    },
    /// The source failed (at start-up, or stdin read error).
    Capture(CaptureError),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Setup { op, errno } => write!(f, "{op}: {}", Errno::from_raw(errno).desc()),
            Self::Poll { errno } => write!(f, "poll: {}", Errno::from_raw(errno).desc()),
            Self::Capture(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LoopError {}

impl From<CaptureError> for LoopError {
    fn from(e: CaptureError) -> Self {
        Self::Capture(e)
    }
}

fn setup(op: &'static str) -> impl Fn(Errno) -> LoopError {
    move |e| LoopError::Setup {
        op,
        errno: e as i32,
    }
}

/// Loop settings that are not part of the user's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Time between status lines (60 s; `ZEROCAST_STATUS_SECS` in the binary, for tests).
    pub status_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            status_interval: Duration::from_secs(60),
        }
    }
}

/// Forwards periods to the real sink, noting the peak level on the way.
struct Meter<'a, S> {
    sink: &'a mut S,
    peak: &'a mut u16,
}

impl<S: Sink> Sink for Meter<'_, S> {
    fn period(&mut self, pcm: &[i16], position_frames: u64) {
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        *self.peak = (*self.peak).max(peak);
        self.sink.period(pcm, position_frames);
    }
}

/// What the loop drives besides the source: the RTMP side. Every method has a do-nothing
/// default, so a plain [`Sink`] (a test recorder, [`Discard`]) is a service with no sockets.
pub trait Service: Sink {
    /// Registers the service's own event sources (tokens from [`FIRST_FREE_TOKEN`] on).
    fn register(&mut self, _registry: &mio::Registry) -> std::io::Result<()> {
        Ok(())
    }
    /// Readiness of one of the service's tokens.
    fn ready(&mut self, _registry: &mio::Registry, _token: Token, _now: Instant) {}
    /// Called after the source delivered periods: send them on.
    fn flush(&mut self, _registry: &mio::Registry, _now: Instant) {}
    /// The service's next deadline.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Called when the deadline has passed.
    fn timeout(&mut self, _registry: &mio::Registry, _now: Instant) {}
    /// SIGHUP: re-read the configuration and apply what changed; `Err` says why the file was
    /// refused (the running configuration stays).
    fn reload(&mut self, _registry: &mio::Registry, _now: Instant) -> Result<(), String> {
        Ok(())
    }
    /// The process is stopping: end streams cleanly.
    fn shutdown(&mut self, _registry: &mio::Registry, _now: Instant) {}
    /// Listeners now and bytes sent so far, for the status line.
    fn counters(&self) -> (usize, u64) {
        (0, 0)
    }
    /// The capture's state, overruns and clock drift after each pump, for the HTTP reports.
    fn source_status(&mut self, _status: CaptureStatus) {}
}

/// A sink that drops every period (the loop still meters them): `zerocast` without players.
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl Sink for Discard {
    fn period(&mut self, _pcm: &[i16], _position_frames: u64) {}
}

impl Service for Discard {}

/// The loop and everything it owns.
pub struct EventLoop<S> {
    poll: Poll,
    events: Events,
    signals: SignalFd,
    source: Source,
    source_name: String,
    rate: u32,
    sink: S,
    stats: Stats,
    /// The capture's clock against the monotonic clock.
    drift: DriftMeter,
    timers: Deadlines<4>,
    options: Options,
    /// When the last poll returned: the loop's one clock reading per turn.
    now: Instant,
    notifier: Option<Notifier>,
}

impl<S: Service> EventLoop<S> {
    /// Sets up signals (SIGINT/SIGTERM through a signalfd, SIGPIPE ignored) and opens the source
    /// `spec` names.
    pub fn new(
        spec: &SourceSpec,
        format: Format,
        sink: S,
        options: Options,
    ) -> Result<Self, LoopError> {
        Self::with_source(
            spec.to_string(),
            format.rate,
            sink,
            options,
            |registry, now| Source::open(spec, format, registry, now),
        )
    }

    /// Like [`Self::new`] with a source the caller opens (registering with the loop's registry):
    /// `name` is how the status line calls it, `rate` its sample rate.
    pub fn with_source(
        name: String,
        rate: u32,
        sink: S,
        options: Options,
        open: impl FnOnce(&mio::Registry, Instant) -> Result<Source, CaptureError>,
    ) -> Result<Self, LoopError> {
        // A write to a player that hung up must come back as EPIPE, not kill the server.
        // SAFETY: installing SIG_IGN runs no Rust code in signal context.
        #[allow(unsafe_code)]
        unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
            .map_err(setup("ignoring SIGPIPE"))?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGHUP);
        // Blocked, so they are only delivered through the signalfd (signalfd(2)).
        mask.thread_block()
            .map_err(setup("blocking SIGINT/SIGTERM/SIGHUP"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(setup("signalfd"))?;
        let poll = Poll::new().map_err(|e| LoopError::Setup {
            op: "epoll_create",
            errno: e.raw_os_error().unwrap_or(0),
        })?;
        poll.registry()
            .register(
                &mut SourceFd(&signals.as_raw_fd()),
                SIGNAL_TOKEN,
                Interest::READABLE,
            )
            .map_err(|e| LoopError::Setup {
                op: "registering the signalfd",
                errno: e.raw_os_error().unwrap_or(0),
            })?;
        let now = Instant::now();
        let source = open(poll.registry(), now)?;
        let mut sink = sink;
        sink.register(poll.registry())
            .map_err(|e| LoopError::Setup {
                op: "registering the listener",
                errno: e.raw_os_error().unwrap_or(0),
            })?;
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            log::warn!("not notifying systemd: {e}");
            None
        });
        let mut timers = Deadlines::default();
        // Three timers in four slots: cannot be full.
        let _ = timers.set(Timer::Status, now + options.status_interval);
        if let Some(interval) = notifier.as_ref().and_then(Notifier::watchdog_interval) {
            let _ = timers.set(Timer::Watchdog, now + interval);
        }
        let mut event_loop = Self {
            poll,
            events: Events::with_capacity(64),
            signals,
            source,
            source_name: name,
            rate,
            sink,
            stats: Stats::default(),
            drift: DriftMeter::new(rate),
            timers,
            options,
            now,
            notifier,
        };
        if event_loop.notifier.is_some() {
            let status = event_loop.status_line();
            event_loop.notify(&format!("READY=1\nSTATUS={status}"));
        }
        Ok(event_loop)
    }

    /// Sends `state` to systemd when running under it.
    fn notify(&mut self, state: &str) {
        if let Some(notifier) = &mut self.notifier {
            notifier.send(state);
        }
    }

    /// Runs until a signal, the end of the input, or a fatal error.
    pub fn run(&mut self) -> Result<Exit, LoopError> {
        loop {
            if let Some(exit) = self.turn(None)? {
                return Ok(exit);
            }
        }
    }

    /// One iteration: waits for readiness or the next deadline (at most `max_wait`), then handles
    /// what is ready. Returns `Some` when the loop is over.
    ///
    /// The clock is read once a turn, when the poll returns (`clock_gettime` is a real system
    /// call on the Pi Zero's ARM1176, which has no vDSO clock). The wait is computed from that
    /// reading of the previous turn, so a deadline fires late by at most the time the previous
    /// turn took, never early.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> Result<Option<Exit>, LoopError> {
        match self.source.deadline() {
            Some(at) => {
                let _ = self.timers.set(Timer::Source, at);
            }
            None => self.timers.cancel(Timer::Source),
        }
        let now = self.now;
        let next = match (self.timers.next(), self.sink.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let until_deadline = next.map(|at| at.saturating_duration_since(now));
        let timeout = match (until_deadline, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let polled = self.poll.poll(&mut self.events, timeout);
        let now = Instant::now();
        self.now = now;
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => {
                return Err(LoopError::Poll {
                    errno: e.raw_os_error().unwrap_or(0),
                })
            }
        }
        let mut source_due = false;
        let mut signalled = false;
        for event in self.events.iter() {
            match event.token() {
                SIGNAL_TOKEN => signalled = true,
                Token(t) if SOURCE_TOKENS.contains(&t) => source_due = true,
                // FIRST_FREE_TOKEN..: the RTMP listener and connections.
                token => self.sink.ready(self.poll.registry(), token, now),
            }
        }
        let (stop, hangup) = if signalled {
            self.read_signals()
        } else {
            (None, false)
        };
        if hangup {
            log::info!("SIGHUP received; reloading the configuration");
            // systemd shows the unit as reloading until READY=1 (sd_notify(3)).
            self.notify("RELOADING=1");
            match self.sink.reload(self.poll.registry(), now) {
                Ok(()) => self.notify("READY=1"),
                // `systemctl status` shows it until the next status line.
                Err(why) => self.notify(&format!(
                    "READY=1\nSTATUS=configuration not reloaded, the running one stays: {}",
                    why.replace('\n', " ")
                )),
            }
        }
        if let Some(sig) = stop {
            log::info!("{sig} received; shutting down");
            self.notify("STOPPING=1");
            self.sink.shutdown(self.poll.registry(), now);
            self.source.close(self.poll.registry());
            return Ok(Some(Exit::Signal(sig)));
        }
        if self.sink.deadline().is_some_and(|at| at <= now) {
            self.sink.timeout(self.poll.registry(), now);
        }
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Status => {
                    self.log_status();
                    let _ = self
                        .timers
                        .set(Timer::Status, now + self.options.status_interval);
                }
                Timer::Source => source_due = true,
                Timer::Watchdog => {
                    self.notify("WATCHDOG=1");
                    if let Some(interval) =
                        self.notifier.as_ref().and_then(|n| n.watchdog_interval())
                    {
                        let _ = self.timers.set(Timer::Watchdog, now + interval);
                    }
                }
            }
        }
        if source_due {
            let mut meter = Meter {
                sink: &mut self.sink,
                peak: &mut self.stats.peak,
            };
            let flow = self.source.pump(self.poll.registry(), now, &mut meter)?;
            let overruns = self.source.overruns();
            let state = self.source.state();
            // Frames lost to an overrun, silence for a missing device and no capture at all
            // are no measure of the card's clock.
            let measured = state == SourceState::Capturing
                && overruns == self.stats.overruns
                && !matches!(self.source, Source::None);
            self.drift.observe(now, self.source.position(), measured);
            self.stats.overruns = overruns;
            self.sink.source_status(CaptureStatus {
                state,
                overruns,
                drift_ppm: self.drift.ppm(),
            });
            self.sink.flush(self.poll.registry(), now);
            if flow == Flow::Ended {
                self.notify("STOPPING=1");
                self.sink.shutdown(self.poll.registry(), now);
                self.source.close(self.poll.registry());
                return Ok(Some(Exit::SourceEnded));
            }
        }
        Ok(None)
    }

    /// Drains the signalfd (mio is edge-triggered): the first stop signal, and whether a
    /// SIGHUP came.
    fn read_signals(&mut self) -> (Option<Signal>, bool) {
        let (mut stop, mut hangup) = (None, false);
        while let Ok(Some(info)) = self.signals.read_signal() {
            let sig = i32::try_from(info.ssi_signo)
                .ok()
                .and_then(|n| Signal::try_from(n).ok());
            match sig {
                Some(Signal::SIGHUP) => hangup = true,
                other => stop = stop.or(other),
            }
        }
        (stop, hangup)
    }

    /// The status line's text, resetting the peak.
    pub fn status_line(&mut self) -> String {
        let (listeners, bytes_sent) = self.sink.counters();
        self.stats.listeners = u32::try_from(listeners).unwrap_or(u32::MAX);
        self.stats.bytes_sent = bytes_sent;
        let line = format!(
            "listeners={} bytes_sent={} overruns={} peak={} source={} state={} stream_time={:.1}s",
            self.stats.listeners,
            self.stats.bytes_sent,
            self.stats.overruns,
            Dbfs(self.stats.peak),
            self.source_name,
            self.source.state(),
            self.source.position() as f64 / f64::from(self.rate.max(1)),
        );
        self.stats.peak = 0;
        line
    }

    fn log_status(&mut self) {
        let line = self.status_line();
        log::info!("{line}");
        self.notify(&format!("STATUS={line}"));
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, mutably.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Capturing or sending silence.
    pub fn source_state(&self) -> SourceState {
        self.source.state()
    }

    /// The mio registry, for registering more event sources (tokens from [`FIRST_FREE_TOKEN`]).
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        let t = Instant::now();
        let mut d = Deadlines::<2>::default();
        assert_eq!(d.next(), None);
        d.set(Timer::Status, t + Duration::from_secs(5)).unwrap();
        d.set(Timer::Source, t + Duration::from_secs(1)).unwrap();
        d.set(Timer::Status, t + Duration::from_secs(3)).unwrap(); // moved, not added
        assert_eq!(d.next(), Some(t + Duration::from_secs(1)));
        assert_eq!(d.pop_expired(t), None);
        assert_eq!(
            d.pop_expired(t + Duration::from_secs(4)),
            Some(Timer::Source)
        );
        assert_eq!(
            d.pop_expired(t + Duration::from_secs(4)),
            Some(Timer::Status)
        );
        assert_eq!(d.pop_expired(t + Duration::from_secs(4)), None);
        d.set(Timer::Source, t).unwrap();
        d.cancel(Timer::Source);
        assert_eq!(d.next(), None);
        let mut one = Deadlines::<1>::default();
        one.set(Timer::Status, t).unwrap();
        assert_eq!(one.set(Timer::Source, t), Err(DeadlinesFull));
    }

    #[test]
    fn dbfs() {
        assert_eq!(Dbfs(32768).to_string(), "0.0 dBFS");
        assert_eq!(Dbfs(8231).to_string(), "-12.0 dBFS");
        assert_eq!(Dbfs(0).to_string(), "-inf dBFS");
    }
}
