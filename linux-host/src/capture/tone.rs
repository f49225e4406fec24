//! `tone[:HZ]`: a sine test signal at about −12 dBFS, paced by the monotonic clock.
//!
//! Frames due are always `elapsed * rate` from the start (see [`super::Pacer`]), so a late wake-up
//! produces the missed periods at once and the tone never drifts from real time.
//!
//! A sine at `hz` sampled at `rate` repeats exactly after `rate / gcd(hz, rate)` frames (2205 for
//! 440 Hz at 44.1 kHz, 441 for 1 kHz): that one cycle is computed once, each sample the rounded
//! exact `sin` of its frame number, and the stream is that table played in a loop. Generating a
//! period is then a copy, the cheapest a test source can be, so that what "tone + one player"
//! measures is the server and not the signal (issue 11's idle cost). The table is at most one
//! second of mono samples (88 KiB at 44.1 kHz, for a frequency that shares no factor with the
//! rate), and 4.4 KiB for the default 440 Hz.

use std::time::Instant;

use super::{Format, Pacer, Periods, Sink};

/// Peak amplitude: 10^(−12/20) × 32767 ≈ 8231, leaving headroom so a test tone is never the
/// loudest thing on the stream.
pub const AMPLITUDE: f64 = 8231.0;

/// A sine generator.
#[derive(Debug)]
pub struct ToneSource {
    /// One whole cycle of the sampled sine, mono.
    cycle: Vec<i16>,
    /// Where in `cycle` the next frame is.
    at: usize,
    pacer: Pacer,
    periods: Periods,
    channels: usize,
    wake_frames: u64,
}

/// The sampled sine's repeat length in frames: `rate / gcd(hz, rate)`.
fn cycle_frames(hz: u64, rate: u64) -> u64 {
    let (mut a, mut b) = (hz % rate, rate);
    while a != 0 {
        (a, b) = (b % a, a);
    }
    rate / b
}

impl ToneSource {
    /// A tone at `hz`, frame 0 due at `now`.
    pub fn new(hz: u32, format: Format, now: Instant) -> Self {
        let rate = u64::from(format.rate.max(1));
        let hz = u64::from(hz);
        let cycle = (0..cycle_frames(hz, rate))
            .map(|n| {
                // The phase as an exact fraction of a turn, so every sample is the sine of its
                // own frame number with no accumulated error.
                let turn = (n * hz % rate) as f64 / rate as f64;
                let sample = (std::f64::consts::TAU * turn).sin() * AMPLITUDE;
                sample.round() as i16
            })
            .collect();
        Self {
            cycle,
            at: 0,
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
        for _ in 0..frames / self.periods.frames() as u64 {
            let free = self.periods.free_in_period();
            let n = free.len();
            let mut frames = free.chunks_exact_mut(self.channels);
            // Whole runs of the table until the period is full: each run starts where the last
            // one stopped and wraps to the table's start.
            while frames.len() > 0 {
                let run = self.cycle.get(self.at..).unwrap_or_default();
                let taken = run.len().min(frames.len());
                // The table first: `zip` asks it before the frames, so a frame is never taken
                // and dropped when the run ends.
                for (&sample, frame) in run.iter().zip(frames.by_ref()) {
                    frame.fill(sample);
                }
                self.at = (self.at + taken) % self.cycle.len().max(1);
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

    /// Every sample of every channel is the rounded exact sine of its frame number, however
    /// many periods and table cycles in: for a frequency whose cycle divides the rate evenly
    /// (440 Hz: 2205 frames, 20 cycles a second), one that shares no factor with it (997 Hz:
    /// the whole second is one cycle, so the run wraps once), and one above half the rate.
    #[test]
    fn samples_are_the_exact_sine() {
        for (hz, channels) in [(440, 1), (997, 2), (1000, 2), (30_000, 1)] {
            let t0 = Instant::now();
            let mut tone = ToneSource::new(hz, format(channels, 1), t0);
            let mut out = Collect(Vec::new());
            // Two wake-ups (a source more than 2 s late restarts its clock).
            tone.pump(t0 + Duration::from_millis(1_500), &mut out);
            tone.pump(t0 + Duration::from_millis(3_000), &mut out);
            let channels = usize::from(channels);
            assert_eq!(out.0.len(), 132_300 * channels);
            for (n, frame) in out.0.chunks_exact(channels).enumerate() {
                let exact =
                    (std::f64::consts::TAU * f64::from(hz) * n as f64 / 44_100.0).sin() * AMPLITUDE;
                for s in frame {
                    assert!(
                        (f64::from(*s) - exact).abs() <= 0.5 + 1e-6,
                        "{hz} Hz, frame {n}: {s} vs {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_cycle_is_rate_over_the_common_factor() {
        assert_eq!(cycle_frames(440, 44_100), 2205);
        assert_eq!(cycle_frames(1000, 48_000), 48);
        assert_eq!(cycle_frames(997, 44_100), 44_100);
        assert_eq!(cycle_frames(44_100, 44_100), 1);
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
