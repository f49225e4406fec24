//! 48 kHz to 44.1 kHz, for the FLV formats that cannot say 48 kHz (PCM, ADPCM, MP3).
//!
//! A polyphase windowed-sinc filter. 44100 / 48000 = 147 / 160: output frame `n` lies at input
//! time `n * 160 / 147`, whose fractional part is one of 147 phases; each phase has its own row
//! of 32 Q15 coefficients, so one output sample is one 32-tap dot
//! product over the last 32 input frames, and nothing is computed per sample but that.
//!
//! The kernel is `sinc` with its -6 dB point at 21 kHz under a Kaiser window (β = 5.65, about 60
//! dB of stopband): flat to about 18 kHz, 60 dB down from about 24 kHz. That stopband is what
//! matters: a 1 kHz tone's first image, at 47 kHz, would come back at 2.9 kHz, and a 20 kHz
//! tone's, at 28 kHz, at 16.1 kHz. Input between 22.05 and ~24 kHz (inaudible, and rarely
//! captured) is attenuated less and folds to above 20 kHz. The tests measure all of that; the
//! cost on the Pi Zero's ARM1176 is in docs/benchmarks.md: 2.8 M multiply-accumulates per
//! second of stereo audio, 18 M instructions measured under qemu-arm (about 2 % of the CPU),
//! against 47 M for AAC and 67 M for MP3.
//!
//! Timing is exact: the first output frame is input time 0 (the filter's 16-frame delay is
//! spent before the first output), so output frame `n` is input time `n * 160 / 147` and stream
//! time `n / 44100` s for ever, without drift; [`Resampler::flush`] gives out the last frames.

use super::CodecError;
use crate::flv::{FlvError, SoundFormat};

mod taps;

/// Taps per phase.
const TAPS: usize = 32;
/// Phases: the output rate's share of the common rate 7.056 MHz (44100 = 147 × 300).
const PHASES: usize = 147;
/// Input frames per `PHASES` output frames (48000 = 160 × 300).
const STEP: usize = 160;
/// Input frames the filter looks ahead: output time `t` needs input up to `t + DELAY`.
const DELAY: usize = TAPS / 2;

/// A streaming 48 kHz to 44.1 kHz resampler for one or two interleaved channels, in a few
/// hundred bytes of state.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Resampler {
    /// Per channel, the last 32 input samples written twice (at `at` and `at + TAPS`), so
    /// the window `at + 1 ..= at + TAPS` is always one contiguous slice, oldest first.
    history: [[i16; 2 * TAPS]; 2],
    /// Where the newest sample was written.
    at: usize,
    channels: usize,
    /// Input frames still to take before the first output (the filter's delay).
    warmup: usize,
    /// Phase of the next output frame, in 1/147 of an input frame past the window's centre.
    next: usize,
    flushed: bool,
}

impl Resampler {
    /// The input rate, Hz.
    pub const INPUT_RATE: u32 = 48_000;
    /// The output rate, Hz.
    pub const OUTPUT_RATE: u32 = 44_100;

    /// A resampler for `channels` (1 or 2) interleaved channels.
    pub fn new(channels: u8) -> Result<Self, CodecError> {
        if !(1..=2).contains(&channels) {
            return Err(CodecError::Flv(FlvError::UnsupportedChannels {
                format: SoundFormat::PcmLe,
                channels,
            }));
        }
        Ok(Self {
            history: [[0; 2 * TAPS]; 2],
            at: 0,
            channels: usize::from(channels),
            warmup: DELAY,
            next: 0,
            flushed: false,
        })
    }

    /// The most output frames `input_frames` more input frames can make: size the output
    /// buffer with this.
    pub const fn max_output_frames(input_frames: usize) -> usize {
        input_frames * PHASES / STEP + 1
    }

    /// Resamples whole frames of `input` into `output` until one of them runs out; returns the
    /// samples taken and the samples written (both whole frames).
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> (usize, usize) {
        let channels = self.channels;
        let (mut taken, mut written) = (0, 0);
        for frame in input.chunks_exact(channels) {
            // Each input frame makes at most one output frame (147 < 160).
            let Some(out) = output.get_mut(written..written + channels) else {
                break;
            };
            if self.write(frame, out) {
                written += channels;
            }
            taken += channels;
        }
        (taken, written)
    }

    /// At the end of the input: writes the last output frames (those within the filter's
    /// delay of the end) into `output` (room for 32 frames is always enough); returns the
    /// samples written. Only the first call writes anything.
    pub fn flush(&mut self, output: &mut [i16]) -> usize {
        if self.flushed {
            return 0;
        }
        self.flushed = true;
        let silence = [0i16; 2];
        let mut written = 0;
        for _ in 0..DELAY {
            let Some(out) = output.get_mut(written..written + self.channels) else {
                break;
            };
            if self.write(&silence[..self.channels], out) {
                written += self.channels;
            }
        }
        written
    }

    /// Takes one input frame; writes one output frame into `out` and returns true when one is
    /// due.
    fn write(&mut self, frame: &[i16], out: &mut [i16]) -> bool {
        self.at = (self.at + 1) % TAPS;
        for (history, &sample) in self.history.iter_mut().zip(frame) {
            history[self.at] = sample;
            history[self.at + TAPS] = sample;
        }
        if self.warmup > 0 {
            self.warmup -= 1;
            return false;
        }
        if self.next >= PHASES {
            self.next -= PHASES;
            return false;
        }
        let taps = &taps::PHASES[self.next];
        for (history, dst) in self.history.iter().zip(out.iter_mut()) {
            let Some(window) = history.get(self.at + 1..=self.at + TAPS) else {
                continue;
            };
            *dst = dot(window, taps);
        }
        self.next += STEP - PHASES;
        true
    }
}

/// The filter output for one phase: `window` (32 samples, oldest first) against its taps, in
/// Q15, rounded and clamped to 16 bits.
fn dot(window: &[i16], taps: &[i16; TAPS]) -> i16 {
    // Four taps per step over fixed-size arrays: no bounds checks, and the ARM1176 spends about
    // 3.5 instructions a tap (two halfword loads and a multiply-accumulate, one loop test per
    // four). Cannot overflow: every row's absolute sum is below 65536 (tested), so
    // |sum| < 32768 * 65536 = 2^31.
    let Ok(window) = <&[i16; TAPS]>::try_from(window) else {
        return 0;
    };
    let mut sum = 0i32;
    for (x, h) in window.chunks_exact(4).zip(taps.chunks_exact(4)) {
        sum += i32::from(x[0]) * i32::from(h[0])
            + i32::from(x[1]) * i32::from(h[1])
            + i32::from(x[2]) * i32::from(h[2])
            + i32::from(x[3]) * i32::from(h[3]);
    }
    ((sum + (1 << 14)) >> 15).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{format, string::String, vec, vec::Vec};

    use core::f64::consts::PI;

    /// Modified Bessel function of the first kind, order 0 (its power series).
    fn bessel_i0(x: f64) -> f64 {
        let (mut sum, mut term) = (1.0, 1.0);
        for k in 1..50 {
            term *= (x / 2.0 / k as f64).powi(2);
            sum += term;
        }
        sum
    }

    /// The taps by their design: row `p` holds the kernel at `TAPS/2 - 1 - k + p/147` input
    /// frames, `k` = 0 for the oldest input, each row scaled to sum to exactly 1.0 in Q15 (so
    /// DC passes unchanged at every phase).
    fn design() -> Vec<[i16; TAPS]> {
        let (cutoff, beta) = (21_000.0 / f64::from(Resampler::INPUT_RATE), 5.65);
        (0..PHASES)
            .map(|p| {
                let kernel: Vec<f64> = (0..TAPS)
                    .map(|k| {
                        let x = (TAPS / 2) as f64 - 1.0 - k as f64 + p as f64 / PHASES as f64;
                        let arg = PI * 2.0 * cutoff * x;
                        let sinc = if x == 0.0 { 1.0 } else { arg.sin() / arg };
                        let r = x / (TAPS / 2) as f64;
                        let window =
                            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta);
                        2.0 * cutoff * sinc * window
                    })
                    .collect();
                let total: f64 = kernel.iter().sum();
                let mut row = [0i16; TAPS];
                for (dst, h) in row.iter_mut().zip(&kernel) {
                    *dst = (h / total * 32768.0).round() as i16;
                }
                // Rounding error goes to the largest tap, so the row sums to 32768.
                let error = 32768 - row.iter().map(|&h| i32::from(h)).sum::<i32>();
                let largest = (0..TAPS).max_by_key(|&k| row[k]).unwrap();
                row[largest] += error as i16;
                row
            })
            .collect()
    }

    #[test]
    fn taps_are_the_design() {
        let expected = design();
        for row in &expected {
            assert!(row.iter().map(|&h| i32::from(h).abs()).sum::<i32>() < 65_536);
        }
        if expected[..] != taps::PHASES[..] {
            let mut text = String::from("pub(super) const PHASES: [[i16; super::TAPS]; 147] = [\n");
            for row in &expected {
                text += &format!("    {row:?},\n");
            }
            text += "];\n";
            panic!(
                "core/src/codec/resample/taps.rs is not the design; the table should be:\n{text}"
            );
        }
    }

    /// `seconds` of a sine of `hz` at `rate`, amplitude `amp`, on `channels` channels (the
    /// second one inverted, so channel mix-ups show).
    fn sine(hz: f64, rate: u32, seconds: f64, amp: f64, channels: usize) -> Vec<i16> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n)
            .flat_map(|i| {
                let v = amp * (2.0 * PI * hz * i as f64 / f64::from(rate)).sin();
                [v.round() as i16, -v.round() as i16]
                    .into_iter()
                    .take(channels)
            })
            .collect()
    }

    /// Resamples `input` in pieces of `piece` samples (and through a small output buffer), then
    /// flushes.
    fn run(input: &[i16], channels: u8, piece: usize) -> Vec<i16> {
        let mut r = Resampler::new(channels).unwrap();
        let mut out = Vec::new();
        let mut buf = [0i16; 64];
        for chunk in input.chunks(piece) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let (taken, written) = r.process(rest, &mut buf);
                out.extend_from_slice(&buf[..written]);
                rest = &rest[taken..];
            }
        }
        let mut tail = [0i16; 2 * TAPS];
        let n = r.flush(&mut tail);
        out.extend_from_slice(&tail[..n]);
        assert_eq!(r.flush(&mut tail), 0);
        out
    }

    /// Power of `hz` in `x` (one channel), by least squares against sine and cosine: the
    /// amplitude of that component.
    fn amplitude(x: &[f64], hz: f64, rate: f64) -> f64 {
        let (mut s, mut c) = (0.0, 0.0);
        for (i, v) in x.iter().enumerate() {
            let w = 2.0 * PI * hz * i as f64 / rate;
            s += v * w.sin();
            c += v * w.cos();
        }
        2.0 * (s * s + c * c).sqrt() / x.len() as f64
    }

    fn channel(x: &[i16], channels: usize, c: usize) -> Vec<f64> {
        x.iter()
            .skip(c)
            .step_by(channels)
            .map(|&v| f64::from(v))
            .collect()
    }

    #[test]
    fn frame_counts_are_exact_and_pieces_do_not_matter() {
        let input = sine(1000.0, Resampler::INPUT_RATE, 1.0, 10_000.0, 2);
        let whole = run(&input, 2, input.len());
        // One second in, one second out: 44100 frames exactly.
        assert_eq!(whole.len(), 2 * 44_100);
        for piece in [2, 6, 882, 1922] {
            assert_eq!(run(&input, 2, piece), whole, "pieces of {piece}");
        }
        let mono = run(&channel_i16(&input, 2, 0), 1, 960);
        assert_eq!(mono, channel_i16(&whole, 2, 0));
    }

    fn channel_i16(x: &[i16], channels: usize, c: usize) -> Vec<i16> {
        x.iter().skip(c).step_by(channels).copied().collect()
    }

    #[test]
    fn a_tone_keeps_its_frequency_phase_and_level_with_high_snr() {
        for hz in [1000.0, 6000.0, 15_000.0] {
            let input = sine(hz, Resampler::INPUT_RATE, 0.5, 16_000.0, 2);
            let out = run(&input, 2, 960);
            let ideal = sine(hz, Resampler::OUTPUT_RATE, 0.5, 16_000.0, 2);
            // Skip the edges, where the input starts and ends abruptly.
            let range = 2 * 200..out.len() - 2 * 200;
            let (mut signal, mut noise) = (0.0, 0.0);
            for i in range {
                let (o, e) = (f64::from(out[i]), f64::from(ideal[i]));
                signal += e * e;
                noise += (o - e) * (o - e);
            }
            let snr = 10.0 * (signal / noise).log10();
            std::println!("resampler: {hz} Hz, SNR against the ideal 44.1 kHz sine {snr:.1} dB");
            assert!(snr > 60.0, "{hz} Hz: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn images_and_aliases_are_attenuated() {
        // A tone's images (48k - f and the like) fold back into the audible band at
        // 44.1k - (48k - f): attenuated by the stopband.
        for (hz, folded, limit_db) in [
            (1000.0, 2900.0, -60.0),
            (12_000.0, 8100.0, -60.0),
            (20_000.0, 16_100.0, -60.0),
            // Content above 22.05 kHz folds to above 20 kHz, within the transition band.
            (23_000.0, 21_100.0, -20.0),
        ] {
            let input = sine(hz, Resampler::INPUT_RATE, 0.5, 16_000.0, 1);
            let out = run(&input, 1, 960);
            let x = channel(&out, 1, 0);
            let x = &x[500..x.len() - 500];
            let level = amplitude(x, folded, f64::from(Resampler::OUTPUT_RATE)) / 16_000.0;
            let db = 20.0 * level.log10();
            std::println!("resampler: {hz} Hz in, {folded} Hz out at {db:.1} dB");
            assert!(db < limit_db, "{hz} Hz: {folded} Hz at {db:.1} dB");
        }
    }

    #[test]
    fn full_scale_clamps_instead_of_wrapping() {
        // A full-scale 1 kHz square wave: the filter overshoots next to each edge (Gibbs), and
        // those samples must clamp; a wrapped one would have the wrong sign on a plateau.
        let square: Vec<i16> = (0..9600)
            .map(|i| if i / 24 % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let out = run(&square, 1, 960);
        for (n, &y) in out.iter().enumerate() {
            let phase = (n * STEP) as f64 / PHASES as f64 % 48.0;
            if (4.0..20.0).contains(&phase) {
                assert!(y > 25_000, "output {n} at {phase:.1}: {y}");
            } else if (28.0..44.0).contains(&phase) {
                assert!(y < -25_000, "output {n} at {phase:.1}: {y}");
            }
        }
        assert!(out.contains(&i16::MAX) && out.contains(&i16::MIN));
    }

    #[test]
    fn refuses_more_than_two_channels() {
        assert_eq!(
            Resampler::new(3).map(|_| ()),
            Err(CodecError::Flv(FlvError::UnsupportedChannels {
                format: SoundFormat::PcmLe,
                channels: 3
            }))
        );
        assert!(Resampler::new(0).is_err());
        // Flush before any input: the silence the filter holds, nothing more.
        let mut r = Resampler::new(1).unwrap();
        let mut out = vec![0i16; TAPS];
        assert_eq!(r.flush(&mut out), 0);
    }
}
