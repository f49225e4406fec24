//! Silence detection (`--silence-db`, `--silence-s`): the input's level over short windows, and
//! one event when the input has stayed below the threshold for the hold time — a radio that went
//! quiet is the most common failure nobody notices — and one when sound is back.
//!
//! A window is silent when its **peak** stays below the threshold: a single click or word
//! breaks the silence, so the event means "nothing at all", not "quiet passage". The level of
//! the last complete window (peak and RMS in dBFS) is kept for the page's meter and `/metrics`.

/// Length of one measuring window.
pub const WINDOW_MS: u32 = 100;

/// Level of one window in dBFS (full scale = 32768); `-inf` for digital silence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    /// Largest sample magnitude.
    pub peak_dbfs: f64,
    /// Root mean square over all channels.
    pub rms_dbfs: f64,
}

impl Level {
    /// The level of nothing at all.
    pub const SILENT: Level = Level {
        peak_dbfs: f64::NEG_INFINITY,
        rms_dbfs: f64::NEG_INFINITY,
    };
}

/// A change the detector reports, once each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SilenceEvent {
    /// The input has been silent for the hold time (log it once).
    Started {
        /// Seconds of silence so far.
        seconds: f64,
    },
    /// Sound is back after a reported silence.
    Ended {
        /// How long the silence lasted.
        seconds: f64,
    },
}

/// Peak/RMS over [`WINDOW_MS`] windows against a threshold and a hold time.
#[derive(Clone, Debug)]
pub struct SilenceDetector {
    threshold: f64,
    hold_frames: u64,
    rate: u32,
    window_frames: u32,
    // The window being measured.
    frames: u32,
    peak: u16,
    /// Exact: a window of 100 ms of 32 channels at 384 kHz is far from overflowing it.
    sum_squares: u64,
    samples: u64,
    // Results.
    level: Level,
    silent_frames: u64,
    reported: bool,
}

fn dbfs(amplitude: f64) -> f64 {
    20.0 * (amplitude / 32768.0).log10()
}

impl SilenceDetector {
    /// A detector for audio at `rate` Hz: silent below `threshold_db` dBFS (peak) for `hold_s`
    /// seconds.
    pub fn new(threshold_db: f64, hold_s: f64, rate: u32) -> Self {
        Self {
            threshold: 32768.0 * 10f64.powf(threshold_db / 20.0),
            hold_frames: (hold_s.max(0.0) * f64::from(rate)).round() as u64,
            rate,
            window_frames: (rate * WINDOW_MS / 1000).max(1),
            frames: 0,
            peak: 0,
            sum_squares: 0,
            samples: 0,
            level: Level::SILENT,
            silent_frames: 0,
            reported: false,
        }
    }

    /// Measures interleaved samples of `channels` channels; returns an event when a window
    /// completed in them changed the state (at most one per call: the latest).
    pub fn feed(&mut self, pcm: &[i16], channels: u8) -> Option<SilenceEvent> {
        let channels = usize::from(channels.max(1));
        let mut event = None;
        // Whole frames, measured a window's rest at a time: the inner loops carry no
        // per-frame bookkeeping, so they compile to vector code (this runs on every sample).
        let mut rest = &pcm[..pcm.len() - pcm.len() % channels];
        while !rest.is_empty() {
            let left = (self.window_frames - self.frames) as usize;
            let (run, after) = rest.split_at((left * channels).min(rest.len()));
            self.peak = run.iter().fold(self.peak, |p, s| p.max(s.unsigned_abs()));
            self.sum_squares += run
                .iter()
                .map(|&s| u64::from(s.unsigned_abs()) * u64::from(s.unsigned_abs()))
                .sum::<u64>();
            self.samples += run.len() as u64;
            self.frames += (run.len() / channels) as u32;
            if self.frames == self.window_frames {
                event = self.end_window().or(event);
            }
            rest = after;
        }
        event
    }

    fn end_window(&mut self) -> Option<SilenceEvent> {
        let rms = (self.sum_squares as f64 / self.samples.max(1) as f64).sqrt();
        self.level = Level {
            peak_dbfs: dbfs(f64::from(self.peak)),
            rms_dbfs: dbfs(rms),
        };
        let silent = f64::from(self.peak) < self.threshold;
        let window = u64::from(self.frames);
        (self.frames, self.peak, self.sum_squares, self.samples) = (0, 0, 0, 0);
        if silent {
            self.silent_frames += window;
            if !self.reported && self.silent_frames >= self.hold_frames {
                self.reported = true;
                return Some(SilenceEvent::Started {
                    seconds: self.silent_seconds(),
                });
            }
            return None;
        }
        let seconds = self.silent_seconds();
        self.silent_frames = 0;
        if std::mem::take(&mut self.reported) {
            return Some(SilenceEvent::Ended { seconds });
        }
        None
    }

    /// The level of the last complete window.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Seconds the input has been silent without a break (0 while there is sound).
    pub fn silent_seconds(&self) -> f64 {
        self.silent_frames as f64 / f64::from(self.rate)
    }

    /// Whether the silence has lasted the hold time (the state the page and metrics show).
    pub fn is_silent(&self) -> bool {
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 44_100;

    fn tone(frames: usize, amplitude: f64) -> Vec<i16> {
        (0..frames)
            .flat_map(|n| {
                let v = (amplitude * (n as f64 * 0.0627).sin()) as i16;
                [v, v]
            })
            .collect()
    }

    #[test]
    fn silence_is_reported_once_after_the_hold_time_and_its_end_once() {
        let mut d = SilenceDetector::new(-50.0, 2.0, RATE);
        // 1 s of tone at -12 dBFS: level measured, nothing reported.
        assert_eq!(d.feed(&tone(RATE as usize, 8192.0), 2), None);
        assert!((d.level().peak_dbfs + 12.04).abs() < 0.1, "{:?}", d.level());
        assert!((d.level().rms_dbfs + 15.05).abs() < 0.2, "{:?}", d.level());
        // Noise at -60 dBFS peak for 1.9 s: still within the hold time.
        let quiet = tone(RATE as usize / 10, 32.0);
        let mut events = Vec::new();
        for _ in 0..19 {
            events.extend(d.feed(&quiet, 2));
        }
        assert!(events.is_empty() && !d.is_silent());
        assert!((d.silent_seconds() - 1.9).abs() < 1e-9);
        // The 20th window crosses 2 s: one Started; later windows add nothing.
        events.extend(d.feed(&quiet, 2));
        assert_eq!(events, [SilenceEvent::Started { seconds: 2.0 }]);
        for _ in 0..30 {
            assert_eq!(d.feed(&quiet, 2), None);
        }
        assert!(d.is_silent() && (d.silent_seconds() - 5.0).abs() < 1e-9);
        // Sound is back: one Ended with the length, counters reset.
        assert_eq!(
            d.feed(&tone(RATE as usize / 10, 8192.0), 2),
            Some(SilenceEvent::Ended { seconds: 5.0 })
        );
        assert!(!d.is_silent() && d.silent_seconds() == 0.0);
    }

    #[test]
    fn a_click_breaks_the_silence_and_digital_zero_is_minus_infinity() {
        let mut d = SilenceDetector::new(-50.0, 1.0, RATE);
        let mut zeros = vec![0i16; RATE as usize / 10 * 2];
        for _ in 0..9 {
            assert_eq!(d.feed(&zeros, 2), None);
        }
        assert_eq!(d.level(), Level::SILENT);
        zeros[100] = 1000; // one sample at -30 dBFS
        assert_eq!(d.feed(&zeros, 2), None);
        assert_eq!(d.silent_seconds(), 0.0);
    }

    #[test]
    fn windows_span_calls_of_any_size() {
        let mut d = SilenceDetector::new(-50.0, 0.5, RATE);
        let quiet = vec![0i16; 2 * 37];
        let mut started = 0;
        for _ in 0..(RATE as usize / 37) {
            if let Some(SilenceEvent::Started { .. }) = d.feed(&quiet, 2) {
                started += 1;
            }
        }
        assert_eq!(started, 1);
        assert!(
            (d.silent_seconds() - 0.9).abs() < 1e-9,
            "{}",
            d.silent_seconds()
        );
    }
}
