//! Judging a recording of a pure test tone by its content.
//!
//! Everything here works on rising zero crossings and sample levels of one channel:
//! - frequency: the mean interval between rising crossings (linearly interpolated between the
//!   two samples around zero, which for a sine sampled at ≥ 20 points per period is accurate to a
//!   tiny fraction of a sample), after dropping intervals far from the median so that gaps and
//!   jumps do not bias it;
//! - gaps: the longest run of samples below a silence threshold (−40 dBFS by default). A tone at
//!   normal level passes through that band only for a couple of samples around each zero crossing
//!   (< 0.1 ms at 440 Hz), so any longer run is silence a player inserted or audio that was not
//!   there;
//! - discontinuities: crossing intervals that differ from the period by more than a tolerance.
//!   Audio lost without silence in its place shows up as a phase jump, which lengthens or
//!   shortens exactly one interval. A loss of a whole number of periods is invisible in a pure
//!   tone — no method can see it — so this complements, not replaces, the duration check.
//!
//! Levels are dBFS relative to full-scale 16-bit (32768), so a full-scale sine has an RMS of −3 dBFS.

use std::fmt;
use std::time::Duration;

use super::wav::Wav;

/// How to analyse a recording.
#[derive(Clone, Copy, Debug)]
pub struct ToneParams {
    /// Channel to analyse (0-based).
    pub channel: usize,
    /// Samples whose magnitude is below this level count as silence.
    pub silence_dbfs: f64,
    /// Time skipped after the first non-silent sample before the steady part begins: players
    /// ramp up or pad the start.
    pub lead_in: Duration,
    /// A crossing interval that differs from the period by more than this fraction of the
    /// period is a discontinuity.
    pub interval_tolerance: f64,
}

impl Default for ToneParams {
    fn default() -> Self {
        ToneParams {
            channel: 0,
            silence_dbfs: -40.0,
            lead_in: Duration::from_millis(100),
            // 5 % of a period (18°); clean 16-bit and SWF ADPCM tones stay far below it.
            interval_tolerance: 0.05,
        }
    }
}

/// Why a recording could not be analysed as a tone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisError {
    /// The requested channel does not exist.
    NoSuchChannel {
        /// Requested channel.
        channel: usize,
        /// Channels present.
        channels: u16,
    },
    /// No sample rises above the silence threshold.
    NoSignal,
    /// The steady part holds too few periods to measure.
    TooShort {
        /// Rising zero crossings found in the steady part.
        crossings: usize,
    },
}

impl fmt::Display for AnalysisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnalysisError::NoSuchChannel { channel, channels } => {
                write!(f, "channel {channel} requested, the file has {channels}")
            }
            AnalysisError::NoSignal => write!(f, "only silence"),
            AnalysisError::TooShort { crossings } => {
                write!(f, "only {crossings} zero crossings after the lead-in")
            }
        }
    }
}

/// What a recording of a tone contains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToneReport {
    /// Length of the whole recording in seconds.
    pub duration_s: f64,
    /// Silence before the first non-silent sample, in milliseconds.
    pub leading_silence_ms: f64,
    /// Frequency of the tone in the steady part, in Hz.
    pub frequency_hz: f64,
    /// RMS level of the steady part in dBFS.
    pub rms_dbfs: f64,
    /// Longest run of silence in the steady part (to the end of the file), in milliseconds.
    pub longest_gap_ms: f64,
    /// Crossing intervals in the steady part off the period by more than the tolerance (a phase
    /// jump makes one, or two when it lands between a negative and a positive sample).
    pub discontinuities: usize,
    /// The largest deviation of a crossing interval from the period, as a fraction of it.
    pub worst_interval_error: f64,
}

impl fmt::Display for ToneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:7.2} Hz {:6.3} s rms {:6.1} dBFS lead {:5.0} ms gap {:6.2} ms jumps {} (worst {:.1} %)",
            self.frequency_hz,
            self.duration_s,
            self.rms_dbfs,
            self.leading_silence_ms,
            self.longest_gap_ms,
            self.discontinuities,
            self.worst_interval_error * 100.0
        )
    }
}

/// Analyses one channel of a recording of a pure tone (see the module docs for the method).
pub fn analyze_tone(wav: &Wav, params: &ToneParams) -> Result<ToneReport, AnalysisError> {
    let samples = wav
        .channel(params.channel)
        .ok_or(AnalysisError::NoSuchChannel {
            channel: params.channel,
            channels: wav.channels,
        })?;
    let rate = f64::from(wav.sample_rate);
    let threshold = dbfs_to_amplitude(params.silence_dbfs);
    let first_loud = samples
        .iter()
        .position(|s| i32::from(*s).abs() >= i32::from(threshold))
        .ok_or(AnalysisError::NoSignal)?;
    let lead_in = (params.lead_in.as_secs_f64() * rate).round() as usize;
    let steady = samples
        .get(first_loud.saturating_add(lead_in)..)
        .unwrap_or_default();

    let crossings = rising_zero_crossings(steady, threshold);
    let intervals: Vec<f64> = crossings.windows(2).map(|w| w[1] - w[0]).collect();
    let period =
        typical_interval(&intervals, params.interval_tolerance).ok_or(AnalysisError::TooShort {
            crossings: crossings.len(),
        })?;
    let errors = intervals.iter().map(|iv| (iv - period).abs() / period);
    let discontinuities = errors
        .clone()
        .filter(|e| *e > params.interval_tolerance)
        .count();
    let worst_interval_error = errors.fold(0.0, f64::max);

    Ok(ToneReport {
        duration_s: wav.duration_secs(),
        leading_silence_ms: first_loud as f64 * 1000.0 / rate,
        frequency_hz: rate / period,
        rms_dbfs: rms_dbfs(steady),
        longest_gap_ms: longest_quiet_run(steady, threshold) as f64 * 1000.0 / rate,
        discontinuities,
        worst_interval_error,
    })
}

/// The 16-bit amplitude of a level in dBFS, at least 1.
pub fn dbfs_to_amplitude(dbfs: f64) -> i16 {
    (32768.0 * 10f64.powf(dbfs / 20.0))
        .round()
        .clamp(1.0, 32767.0) as i16
}

/// RMS level in dBFS (−∞ for no samples or digital silence).
pub fn rms_dbfs(samples: &[i16]) -> f64 {
    let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    let rms = (energy / samples.len().max(1) as f64).sqrt();
    20.0 * (rms / 32768.0).log10()
}

/// Length in samples of the longest run whose magnitudes are all below `threshold`.
pub fn longest_quiet_run(samples: &[i16], threshold: i16) -> usize {
    let limit = i32::from(threshold);
    let mut longest = 0;
    let mut run = 0;
    for s in samples {
        run = if i32::from(*s).abs() < limit {
            run + 1
        } else {
            0
        };
        longest = longest.max(run);
    }
    longest
}

/// Positions (in fractional samples) where the signal rises through zero. A crossing only counts
/// after the signal has been below `-hysteresis`, so noise around zero in silence adds none.
pub fn rising_zero_crossings(samples: &[i16], hysteresis: i16) -> Vec<f64> {
    let arm_below = -i32::from(hysteresis);
    let mut armed = false;
    let mut crossings = Vec::new();
    for (i, pair) in samples.windows(2).enumerate() {
        let (a, b) = (i32::from(pair[0]), i32::from(pair[1]));
        if a < arm_below {
            armed = true;
        }
        if armed && a < 0 && b >= 0 {
            crossings.push(i as f64 + f64::from(a) / f64::from(a - b));
            armed = false;
        }
    }
    crossings
}

/// The mean of the intervals within `tolerance` of their median, if there are at least 8
/// (a handful of periods is the least that makes a frequency estimate worth reporting).
fn typical_interval(intervals: &[f64], tolerance: f64) -> Option<f64> {
    let mut sorted = intervals.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = *sorted.get(sorted.len() / 2)?;
    let near: Vec<f64> = sorted
        .into_iter()
        .filter(|iv| (iv - median).abs() <= tolerance * median)
        .collect();
    (near.len() >= 8).then(|| near.iter().sum::<f64>() / near.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 44_100;
    /// −18 dBFS peak, the level of ffmpeg's `sine` source (amplitude 1/8).
    const AMPLITUDE: f64 = 4096.0;

    fn sine(freq: f64, rate: u32, secs: f64, phase: f64) -> Vec<f64> {
        let n = (secs * f64::from(rate)).round() as usize;
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate) + phase).sin())
            .collect()
    }

    fn stereo(mono: &[f64], rate: u32) -> Wav {
        let samples = mono
            .iter()
            .flat_map(|x| {
                let s = (x * AMPLITUDE).round() as i16;
                [s, s]
            })
            .collect();
        Wav {
            sample_rate: rate,
            channels: 2,
            samples,
        }
    }

    fn analyze(wav: &Wav) -> ToneReport {
        analyze_tone(wav, &ToneParams::default()).unwrap()
    }

    #[test]
    fn clean_tone_has_exact_frequency_level_and_no_gap() {
        for (freq, rate) in [
            (440.0, RATE),
            (100.0, 48_000),
            (1000.0, RATE),
            (5000.0, 48_000),
        ] {
            let report = analyze(&stereo(&sine(freq, rate, 2.0, 0.3), rate));
            let error = (report.frequency_hz - freq).abs() / freq;
            assert!(error < 0.01, "{freq} Hz measured {report}");
            assert_eq!(report.discontinuities, 0, "{freq} Hz: {report}");
            assert!(report.longest_gap_ms < 1.0, "{freq} Hz: {report}");
            assert!((report.duration_s - 2.0).abs() < 1e-4);
            // A sine of amplitude 1/8 has RMS 1/(8·√2): −21.07 dBFS.
            assert!((report.rms_dbfs + 21.07).abs() < 0.05, "{report}");
            assert_eq!(report.leading_silence_ms, 0.0);
        }
    }

    #[test]
    fn inserted_silence_of_50_ms_is_a_gap() {
        let mut signal = sine(440.0, RATE, 1.0, 0.0);
        let at = signal.len() / 2;
        signal.splice(at..at, vec![0.0; 2205]);
        let report = analyze(&stereo(&signal, RATE));
        assert!((report.longest_gap_ms - 50.0).abs() < 1.0, "{report}");
        assert!(report.discontinuities >= 1, "{report}");
        assert!((report.frequency_hz - 440.0).abs() < 0.44, "{report}");
    }

    #[test]
    fn dropped_20_ms_is_a_phase_jump_not_a_gap() {
        // 20 ms of 440 Hz is 8.8 periods: the tone resumes 0.2 period early. Cut at ten points
        // spread over a period, so the jump lands in every part of the waveform.
        for offset in (0..100).step_by(10) {
            let mut signal = sine(440.0, RATE, 1.0, 0.0);
            let at = 20_000 + offset;
            signal.drain(at..at + 882);
            let report = analyze(&stereo(&signal, RATE));
            assert!(
                (1..=2).contains(&report.discontinuities),
                "cut at {at}: {report}"
            );
            assert!(report.worst_interval_error > 0.15, "cut at {at}: {report}");
            assert!(report.longest_gap_ms < 1.0, "cut at {at}: {report}");
        }
    }

    #[test]
    fn leading_silence_is_measured_and_skipped() {
        let mut signal = vec![0.0; 13_230]; // 300 ms
        signal.extend(sine(440.0, RATE, 1.0, 0.0));
        let report = analyze(&stereo(&signal, RATE));
        assert!((report.leading_silence_ms - 300.0).abs() < 0.1, "{report}");
        assert!(report.longest_gap_ms < 1.0, "{report}");
        assert_eq!(report.discontinuities, 0);
    }

    #[test]
    fn quiet_noise_is_silence_not_a_tone() {
        // ±100 LSB (−50 dBFS) alternating: below the −40 dBFS threshold everywhere.
        let noise: Vec<i16> = (0..44_100)
            .map(|i| if i % 3 == 0 { 100 } else { -100 })
            .collect();
        let wav = Wav {
            sample_rate: RATE,
            channels: 1,
            samples: noise,
        };
        assert_eq!(
            analyze_tone(&wav, &ToneParams::default()),
            Err(AnalysisError::NoSignal)
        );
        let params = ToneParams {
            channel: 1,
            ..ToneParams::default()
        };
        assert_eq!(
            analyze_tone(&wav, &params),
            Err(AnalysisError::NoSuchChannel {
                channel: 1,
                channels: 1
            })
        );
    }

    #[test]
    fn a_blip_is_too_short_to_measure() {
        let report = analyze_tone(
            &stereo(&sine(440.0, RATE, 0.12, 0.0), RATE),
            &ToneParams::default(),
        );
        assert!(
            matches!(report, Err(AnalysisError::TooShort { .. })),
            "{report:?}"
        );
    }

    #[test]
    fn level_conversions() {
        assert_eq!(dbfs_to_amplitude(-40.0), 328);
        assert_eq!(dbfs_to_amplitude(0.0), 32767);
        assert_eq!(longest_quiet_run(&[0, 5, 400, 1, 2, 3, -500], 328), 3);
        assert!(rms_dbfs(&[0, 0]).is_infinite());
    }
}
