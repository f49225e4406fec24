//! The service the event loop drives in the real program: captured periods go into the
//! [`Broadcast`], and the [`RtmpServer`] sends them to every player.

use std::time::Instant as StdInstant;

use mio::{Registry, Token};
use zerocast_core::time::Instant;

use crate::broadcast::Broadcast;
use crate::capture::Sink;
use crate::event_loop::Service;
use crate::rtmp::RtmpServer;

/// Broadcast + RTMP server, on the loop's clock.
pub struct Streamer {
    broadcast: Broadcast,
    rtmp: RtmpServer,
    /// The core's clock is milliseconds since this instant.
    epoch: StdInstant,
    /// Periods have been pushed since the last flush.
    pushed: bool,
    /// An encoder error is logged once, not per period.
    encode_failed: bool,
}

impl Streamer {
    /// Joins a broadcast and a bound server.
    pub fn new(broadcast: Broadcast, rtmp: RtmpServer) -> Self {
        Self {
            broadcast,
            rtmp,
            epoch: StdInstant::now(),
            pushed: false,
            encode_failed: false,
        }
    }

    fn core_time(&self, now: StdInstant) -> Instant {
        Instant::from_millis(now.saturating_duration_since(self.epoch).as_millis() as u64)
    }

    /// The first std instant at which the core's clock reads `at` or later (the core counts
    /// whole milliseconds, so round up, or the loop would wake a moment early and spin).
    fn std_time(&self, at: Instant) -> StdInstant {
        self.epoch + std::time::Duration::from_millis(at.as_millis() + 1)
    }
}

impl Sink for Streamer {
    fn period(&mut self, pcm: &[i16], position_frames: u64) {
        match self.broadcast.period(pcm, position_frames) {
            Ok(()) => self.pushed = true,
            Err(e) if !self.encode_failed => {
                log::error!("encoding a period failed: {e}");
                self.encode_failed = true;
            }
            Err(_) => {}
        }
    }
}

impl Service for Streamer {
    fn register(&mut self, registry: &Registry) -> std::io::Result<()> {
        self.rtmp.register(registry)
    }

    fn ready(&mut self, registry: &Registry, token: Token, now: StdInstant) {
        if self.rtmp.owns(token) {
            let now = self.core_time(now);
            self.rtmp.ready(registry, token, now, &self.broadcast);
        }
    }

    fn flush(&mut self, registry: &Registry, now: StdInstant) {
        if std::mem::take(&mut self.pushed) {
            let now = self.core_time(now);
            self.rtmp.audio_pushed(registry, now, &self.broadcast);
        }
    }

    fn deadline(&self) -> Option<StdInstant> {
        self.rtmp.next_deadline().map(|at| self.std_time(at))
    }

    fn timeout(&mut self, registry: &Registry, now: StdInstant) {
        let now = self.core_time(now);
        self.rtmp.handle_timeouts(registry, now, &self.broadcast);
    }

    fn shutdown(&mut self, registry: &Registry, now: StdInstant) {
        // The input's last frames, short of a whole message, go out before the end of stream.
        if let Err(e) = self.broadcast.finish() {
            log::error!("encoding the last frames failed: {e}");
        }
        let now = self.core_time(now);
        self.rtmp.shutdown(registry, now, &self.broadcast);
    }

    fn counters(&self) -> (usize, u64) {
        let stats = self.rtmp.stats();
        (stats.listeners, stats.bytes_sent)
    }
}
