//! `tone[:HZ]`: a sine test signal at about −12 dBFS, paced by the monotonic clock.
//!
//! Frames due are always `elapsed * rate` from the start (see [`super::Pacer`]), so a late wake-up
//! produces the missed periods at once and the tone never drifts from real time.

use std::time::Instant;

use super::{Format, Pacer, Periods, Sink};

/// Peak amplitude: 10^(−12/20) × 32767 ≈ 8231, leaving headroom so a test tone is never the
/// loudest thing on the stream.
pub const AMPLITUDE: f64 = 8231.0;

/// A sine generator.
#[derive(Debug)]
pub struct ToneSource {
    phase: f64,
    step: f64,
    pacer: Pacer,
    periods: Periods,
    channels: usize,
}

impl ToneSource {
    /// A tone at `hz`, frame 0 due at `now`.
    pub fn new(hz: u32, format: Format, now: Instant) -> Self {
        Self {
            phase: 0.0,
            step: std::f64::consts::TAU * f64::from(hz) / f64::from(format.rate.max(1)),
            pacer: Pacer::new(now, format.rate),
            periods: Periods::new(format.period_frames, usize::from(format.channels)),
            channels: usize::from(format.channels.max(1)),
        }
    }

    /// Generates every period due at `now`.
    pub fn pump(&mut self, now: Instant, sink: &mut dyn Sink) {
        let (frames, restarted) = self.pacer.take_due(now, self.periods.frames() as u64);
        if restarted {
            log::warn!("tone: more than 2 s late (process stopped?); clock restarted");
        }
        for _ in 0..frames / self.periods.frames() as u64 {
            let free = self.periods.free();
            let n = free.len();
            for frame in free.chunks_exact_mut(self.channels) {
                // Rounded, then clamped by the `as` cast (saturating): AMPLITUDE keeps it in range.
                frame.fill((self.phase.sin() * AMPLITUDE).round() as i16);
                self.phase = (self.phase + self.step) % std::f64::consts::TAU;
            }
            self.periods.commit(n, sink);
        }
    }

    /// When the next period is due.
    pub fn deadline(&self) -> Instant {
        self.pacer.next_due(self.periods.frames() as u64)
    }

    /// Frames produced so far.
    pub fn position(&self) -> u64 {
        self.periods.position()
    }
}
