//! The verdict on one recording: did the player hear the server's tone, for as long as it
//! played, without gaps?

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::analysis::{analyze_tone, ToneParams, ToneReport};
use super::players::{Recording, Timing};
use super::server::{Server, PERIOD_MS, TONE_HZ};
use super::wav::Wav;
use super::HarnessError;

/// Allowed relative frequency error.
pub const FREQUENCY_TOLERANCE: f64 = 0.02;
/// Allowed relative difference between decoded and expected duration.
pub const DURATION_TOLERANCE: f64 = 0.05;

/// A recording with what was measured in it and what it was expected to hold.
#[derive(Clone, Debug)]
pub struct Measured {
    /// The recording.
    pub recording: Recording,
    /// Its content.
    pub report: ToneReport,
    /// The duration it should have ([`Recording::expected_duration`]).
    pub expected: Duration,
    /// The server's join backlog.
    pub join: Duration,
}

/// Decodes `file` (anything ffmpeg reads: a saved HTTP body, an FLV) to a WAV beside it.
pub fn decode(file: &Path) -> Result<Wav, HarnessError> {
    let wav = file.with_extension("wav");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-loglevel", "error", "-i"])
        .arg(file)
        .args(["-f", "wav"])
        .arg(&wav)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| HarnessError::io("ffmpeg decode", e))?;
    if !status.success() {
        return Err(HarnessError::Failed {
            what: format!("decode {}", file.display()),
            detail: status.to_string(),
        });
    }
    Wav::read(&wav)
}

/// Reads the WAV file at `path` and analyses it as a tone with the default parameters.
pub fn analyze_file(path: &Path) -> Result<(Wav, ToneReport), HarnessError> {
    let wav = Wav::read(path)?;
    let report =
        analyze_tone(&wav, &ToneParams::default()).map_err(|error| HarnessError::Analysis {
            path: path.to_owned(),
            error,
        })?;
    Ok((wav, report))
}

/// Reads and analyses a recording made against `server`.
pub fn measure(recording: Recording, server: &Server) -> Result<Measured, HarnessError> {
    let (_, report) = analyze_file(&recording.wav)?;
    Ok(Measured {
        expected: recording.expected_duration(server.join),
        join: server.join,
        recording,
        report,
    })
}

impl Measured {
    /// Every way the recording falls short; empty when it passes:
    /// - frequency within [`FREQUENCY_TOLERANCE`] of the tone;
    /// - decoded duration within [`DURATION_TOLERANCE`] of the expected one;
    /// - for self-timed players, the audio took at least (1 − tolerance) × duration − join of
    ///   wall time to arrive (a server may send its join backlog at once, never more);
    /// - no silence longer than one capture period and no phase jump in the steady part.
    pub fn problems(&self) -> Vec<String> {
        let r = &self.report;
        let mut problems = Vec::new();
        if (r.frequency_hz - TONE_HZ).abs() > FREQUENCY_TOLERANCE * TONE_HZ {
            problems.push(format!(
                "frequency {:.2} Hz, expected {TONE_HZ} Hz",
                r.frequency_hz
            ));
        }
        let expected = self.expected.as_secs_f64();
        if (r.duration_s - expected).abs() > DURATION_TOLERANCE * expected {
            problems.push(format!(
                "decoded {:.3} s, expected {expected:.3} s",
                r.duration_s
            ));
        }
        if self.recording.player.timing() == Timing::SelfTimed {
            let least = (1.0 - DURATION_TOLERANCE) * self.recording.played.as_secs_f64()
                - self.join.as_secs_f64();
            let took = self.recording.elapsed.as_secs_f64();
            if took < least {
                problems.push(format!("{expected:.3} s of audio arrived in {took:.3} s"));
            }
        }
        if r.longest_gap_ms > PERIOD_MS as f64 {
            problems.push(format!("gap of {:.1} ms", r.longest_gap_ms));
        }
        if r.discontinuities > 0 {
            problems.push(format!(
                "{} phase jumps (worst {:.0} % of a period)",
                r.discontinuities,
                r.worst_interval_error * 100.0
            ));
        }
        problems
    }
}

impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:16} {} | expected {:.3} s (played {:.3} s, ran {:.3} s){}",
            self.recording.player.name(),
            self.report,
            self.expected.as_secs_f64(),
            self.recording.played.as_secs_f64(),
            self.recording.elapsed.as_secs_f64(),
            if self.recording.killed {
                ", killed after ignoring SIGINT"
            } else {
                ""
            }
        )
    }
}

/// Measures every recording, prints one line each, and fails listing every problem of every
/// recording (so one run shows the whole picture).
pub fn check_all(
    label: &str,
    recordings: Vec<Recording>,
    server: &Server,
) -> Result<(), HarnessError> {
    let mut failures = Vec::new();
    for recording in recordings {
        let name = recording.player.name();
        match measure(recording, server) {
            Ok(measured) => {
                eprintln!("{label}: {measured}");
                let problems = measured.problems();
                if !problems.is_empty() {
                    failures.push(format!("{name}: {}", problems.join("; ")));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(HarnessError::Failed {
            what: label.to_owned(),
            detail: failures.join("\n"),
        })
    }
}

/// The tone in `wav` must be `hz` (within [`FREQUENCY_TOLERANCE`]), last at least `min_s`, and
/// have no gap longer than `max_gap_ms`; prints what was measured.
pub fn check_tone(
    wav: &Wav,
    hz: f64,
    min_s: f64,
    max_gap_ms: f64,
    what: &str,
) -> Result<ToneReport, HarnessError> {
    let report = analyze_tone(wav, &ToneParams::default()).map_err(|e| HarnessError::Failed {
        what: what.to_owned(),
        detail: e.to_string(),
    })?;
    println!("{what}: {report}");
    let mut problems = Vec::new();
    if (report.frequency_hz - hz).abs() > FREQUENCY_TOLERANCE * hz {
        problems.push(format!(
            "frequency {:.1} Hz, expected {hz}",
            report.frequency_hz
        ));
    }
    if report.longest_gap_ms > max_gap_ms {
        problems.push(format!("gap of {:.1} ms", report.longest_gap_ms));
    }
    if report.duration_s < min_s {
        problems.push(format!(
            "only {:.2} s, expected {min_s} s",
            report.duration_s
        ));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(HarnessError::Failed {
            what: what.to_owned(),
            detail: problems.join("; "),
        })
    }
}
