//! The capture's sample clock against the monotonic clock, in parts per million: a sound card
//! whose crystal runs 100 ppm fast delivers 44 104.4 frames per second instead of 44 100.
//!
//! Every pump adds a point (seconds since the first point, seconds of audio delivered since
//! then); the drift is the slope of the least-squares line through all points, less one. The
//! sums are kept, not the points, so the window grows from the device's opening for as long as
//! it stays open, in constant memory: a delivery that comes late by a few milliseconds (a busy
//! machine, the loop's wake-up interval) moves the slope less and less as the window grows.
//! Time the source spends generating silence (the device is gone) is no capture: the fit
//! starts again when real audio comes back, as it does when the device is reopened.

use std::time::{Duration, Instant};

/// The fit spans at least this long before it is reported: a shorter one says more about
/// the loop's wake-ups than about the card.
pub const MIN_WINDOW: Duration = Duration::from_secs(4);

/// Least-squares slope of audio time against elapsed time since the capture (re)started.
#[derive(Clone, Debug)]
pub struct DriftMeter {
    rate: f64,
    /// The first point: when, and the stream position then.
    start: Option<(Instant, u64)>,
    /// Seconds elapsed at the last point.
    span: f64,
    /// n, Σt, Σa, Σt², Σt·a (t: elapsed seconds, a: seconds of audio).
    sums: [f64; 5],
}

impl DriftMeter {
    /// A meter for a capture at `rate` frames per second.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            start: None,
            span: 0.0,
            sums: [0.0; 5],
        }
    }

    /// Adds the point (`now`, `position` frames delivered so far) when `capturing`; forgets the
    /// fit otherwise (silence stands in for a missing device), or when the position went back.
    pub fn observe(&mut self, now: Instant, position: u64, capturing: bool) {
        let start = match self.start {
            Some((at, from)) if capturing && position >= from => (at, from),
            _ if capturing => {
                self.restart(Some((now, position)));
                (now, position)
            }
            _ => {
                self.restart(None);
                return;
            }
        };
        let t = now.saturating_duration_since(start.0).as_secs_f64();
        let a = (position - start.1) as f64 / self.rate;
        let [n, st, sa, stt, sta] = &mut self.sums;
        *n += 1.0;
        *st += t;
        *sa += a;
        *stt += t * t;
        *sta += t * a;
        self.span = t;
    }

    fn restart(&mut self, start: Option<(Instant, u64)>) {
        self.start = start;
        self.span = 0.0;
        self.sums = [0.0; 5];
    }

    /// The drift in ppm (positive: the card delivers more frames than its nominal rate), once
    /// the fit spans [`MIN_WINDOW`].
    pub fn ppm(&self) -> Option<f64> {
        if self.span < MIN_WINDOW.as_secs_f64() {
            return None;
        }
        let [n, st, sa, stt, sta] = self.sums;
        let denominator = n * stt - st * st;
        (denominator > 0.0).then(|| ((n * sta - st * sa) / denominator - 1.0) * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a capture whose clock runs `ppm` off for `secs`, delivered every `wake_ms`, each
    /// delivery late by a pseudo-random 0..`jitter_ms`.
    fn run(meter: &mut DriftMeter, t0: Instant, secs: u64, ppm: f64, wake_ms: u64, jitter_ms: u64) {
        let rate = 44_100.0 * (1.0 + ppm / 1e6);
        let mut seed = 12_345u64;
        for i in 0..secs * 1000 / wake_ms {
            let due = Duration::from_millis(i * wake_ms);
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let late = Duration::from_micros((seed >> 33) % (jitter_ms * 1000 + 1));
            meter.observe(t0 + due + late, (due.as_secs_f64() * rate) as u64, true);
        }
    }

    #[test]
    fn a_fast_or_slow_clock_is_measured_through_jitter() {
        for ppm in [-250.0, 0.0, 80.0, 50_000.0] {
            let mut meter = DriftMeter::new(44_100);
            let t0 = Instant::now();
            run(&mut meter, t0, 3, ppm, 20, 15);
            assert_eq!(meter.ppm(), None, "too short a window");
            let mut meter = DriftMeter::new(44_100);
            run(&mut meter, t0, 600, ppm, 20, 15);
            let got = meter.ppm().unwrap();
            assert!((got - ppm).abs() < 5.0, "{ppm} ppm measured as {got}");
        }
    }

    #[test]
    fn silence_and_a_position_going_back_restart_the_fit() {
        let mut meter = DriftMeter::new(44_100);
        let t0 = Instant::now();
        run(&mut meter, t0, 10, 1000.0, 20, 0);
        assert!(meter.ppm().is_some());
        // The device is gone: silence is paced by the clock, not measured.
        meter.observe(t0 + Duration::from_secs(11), 500_000, false);
        assert_eq!(meter.ppm(), None);
        // Back: a new fit from the first point on; nothing before it counts.
        let t1 = t0 + Duration::from_secs(20);
        for i in 0..=250u64 {
            let at = t1 + Duration::from_millis(20 * i);
            meter.observe(at, 600_000 + 882 * i, true);
        }
        let got = meter.ppm().unwrap();
        assert!(got.abs() < 1.0, "{got}");
        meter.observe(t1 + Duration::from_secs(6), 10, true);
        assert_eq!(meter.ppm(), None);
    }
}
