//! Shared by the capture tests: a sink that records periods and checks that their positions
//! are continuous, and measurements of what it recorded.

use zerocast::capture::Sink;

/// One recorded period.
/// One recorded period (its position is checked on arrival).
pub struct Period {
    pub pcm: Vec<i16>,
}

/// Records every period; panics at once if a position does not follow the previous period.
pub struct Recorder {
    pub channels: usize,
    pub periods: Vec<Period>,
}

impl Recorder {
    pub fn new(channels: usize) -> Self {
        Self {
            channels,
            periods: Vec::new(),
        }
    }

    /// Frames recorded in total.
    pub fn frames(&self) -> u64 {
        self.periods
            .iter()
            .map(|p| (p.pcm.len() / self.channels) as u64)
            .sum()
    }
}

impl Sink for Recorder {
    fn period(&mut self, pcm: &[i16], position_frames: u64) {
        assert_eq!(pcm.len() % self.channels, 0, "whole frames");
        assert_eq!(position_frames, self.frames(), "positions are continuous");
        self.periods.push(Period { pcm: pcm.to_vec() });
    }
}

/// Largest absolute sample.
pub fn peak(periods: &[Period]) -> u16 {
    periods
        .iter()
        .flat_map(|p| p.pcm.iter())
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap_or(0)
}

/// Frequency of channel 0 from its rising zero crossings (with a little hysteresis so noise
/// around zero does not count).
pub fn frequency(periods: &[Period], channels: usize, rate: u32) -> f64 {
    let samples: Vec<i16> = periods
        .iter()
        .flat_map(|p| p.pcm.iter().step_by(channels).copied())
        .collect();
    let mut rising = Vec::new();
    let mut below = false;
    for (i, &s) in samples.iter().enumerate() {
        if s < -64 {
            below = true;
        } else if s > 64 && below {
            below = false;
            rising.push(i);
        }
    }
    match (rising.first(), rising.last()) {
        (Some(&a), Some(&b)) if rising.len() > 2 => {
            (rising.len() - 1) as f64 * f64::from(rate) / (b - a) as f64
        }
        _ => 0.0,
    }
}

/// dBFS of a sample magnitude.
pub fn dbfs(peak: u16) -> f64 {
    20.0 * (f64::from(peak) / 32768.0).log10()
}
