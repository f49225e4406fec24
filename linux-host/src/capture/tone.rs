//! `tone[:HZ]`: a sine test signal at about −12 dBFS, paced by the monotonic clock.
//!
//! Frames due are always `elapsed * rate` from the start (see [`super::Pacer`]), so a late wake-up
//! produces the missed periods at once and the tone never drifts from real time.
//!
//! No `sin` per frame: each period starts from its exact phase, `2π · (position · hz mod rate) /
//! rate` (integer arithmetic, one `sin_cos` per period), and the frames within it come from
//! rotating that phasor by one step's angle: four multiplications a frame. The frequency is
//! therefore exactly `hz`, and the rounding error of the rotation (about 1e-13 after a period)
//! never accumulates across periods.

use std::time::Instant;

use super::{Format, Pacer, Periods, Sink};

/// Peak amplitude: 10^(−12/20) × 32767 ≈ 8231, leaving headroom so a test tone is never the
/// loudest thing on the stream.
pub const AMPLITUDE: f64 = 8231.0;

/// A sine generator.
#[derive(Debug)]
pub struct ToneSource {
    hz: u64,
    rate: u64,
    /// cos and sin of one frame's phase step.
    step: (f64, f64),
    pacer: Pacer,
    periods: Periods,
    channels: usize,
    wake_frames: u64,
}

impl ToneSource {
    /// A tone at `hz`, frame 0 due at `now`.
    pub fn new(hz: u32, format: Format, now: Instant) -> Self {
        let rate = u64::from(format.rate.max(1));
        let (sin, cos) = (std::f64::consts::TAU * f64::from(hz) / rate as f64).sin_cos();
        Self {
            hz: u64::from(hz),
            rate,
            step: (cos, sin),
            pacer: Pacer::new(now, format.rate),
            periods: Periods::new(format.period_frames, usize::from(format.channels)),
            channels: usize::from(format.channels.max(1)),
            wake_frames: format.wake_frames(),
        }
    }

    /// Generates every period due at `now`.
    pub fn pump(&mut self, now: Instant, sink: &mut dyn Sink) {
        let (frames, restarted) = self.pacer.take_due(now, self.periods.frames() as u64);
        if restarted {
            log::warn!("tone: more than 2 s late (process stopped?); clock restarted");
        }
        let (step_cos, step_sin) = self.step;
        for _ in 0..frames / self.periods.frames() as u64 {
            // The exact phase of the period's first frame, as a fraction of a turn.
            let turn = (self.periods.position() % self.rate) * self.hz % self.rate;
            let (mut sin, mut cos) =
                (std::f64::consts::TAU * turn as f64 / self.rate as f64).sin_cos();
            let free = self.periods.free_in_period();
            let n = free.len();
            for frame in free.chunks_exact_mut(self.channels) {
                // Round half up without a call to `round`: the sum is positive, so the
                // truncating (and saturating) cast is a floor. AMPLITUDE keeps it in range.
                let sample = (sin * AMPLITUDE + 32768.5) as i32 - 32768;
                frame.fill(sample as i16);
                (cos, sin) = (
                    cos * step_cos - sin * step_sin,
                    sin * step_cos + cos * step_sin,
                );
            }
            self.periods.commit(n, sink);
        }
    }

    /// When the next wake-up's periods are due.
    pub fn deadline(&self) -> Instant {
        self.pacer.next_due(self.wake_frames)
    }

    /// Frames produced so far.
    pub fn position(&self) -> u64 {
        self.periods.position()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Collect(Vec<i16>);

    /// 44.1 kHz in 20 ms periods.
    fn format(channels: u8, wake_periods: usize) -> Format {
        Format {
            rate: 44_100,
            channels,
            period_frames: 882,
            wake_periods,
        }
    }

    impl Sink for Collect {
        fn period(&mut self, pcm: &[i16], _position_frames: u64) {
            self.0.extend_from_slice(pcm);
        }
    }

    /// Every sample is the rounded exact sine of its frame number, however many periods in.
    #[test]
    fn samples_are_the_exact_sine() {
        let t0 = Instant::now();
        let mut tone = ToneSource::new(440, format(1, 1), t0);
        let mut out = Collect(Vec::new());
        tone.pump(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(out.0.len(), 44_100);
        for (n, s) in out.0.iter().enumerate() {
            let exact = (std::f64::consts::TAU * 440.0 * n as f64 / 44_100.0).sin() * AMPLITUDE;
            assert!(
                (f64::from(*s) - exact).abs() <= 0.5 + 1e-6,
                "frame {n}: {s} vs {exact}"
            );
        }
    }

    /// With `wake_periods` the deadline is that many periods on, and a wake-up then delivers
    /// them all.
    #[test]
    fn wakes_once_per_wake_interval() {
        let t0 = Instant::now();
        let mut tone = ToneSource::new(1000, format(2, 3), t0);
        assert_eq!(tone.deadline(), t0 + Duration::from_millis(60));
        let mut out = Collect(Vec::new());
        tone.pump(tone.deadline(), &mut out);
        assert_eq!(out.0.len(), 3 * 882 * 2);
        assert_eq!(tone.deadline(), t0 + Duration::from_millis(120));
    }
}
