//! A test tone in integer arithmetic: Cortex-M0 has no FPU and `core` has no `sin`.
//!
//! A 32-bit phase accumulator (one turn = 2^32) drives a parabolic sine with one correction
//! step (the classic `y = P·(y·|y| − y) + y` refinement, P = 0.225), within about 0.1 % of a
//! true sine. Its zero crossings are exactly those of the sine, so its frequency measures exact.

/// Peak level: a quarter of full scale (−12 dBFS), as the host's tone source.
const AMPLITUDE: i32 = 8192;

/// A phase-continuous tone, the same sample on every channel.
#[derive(Clone, Copy, Debug)]
pub struct Tone {
    phase: u32,
    step: u32,
    channels: usize,
}

impl Tone {
    /// A tone of `hz` at `rate` Hz with `channels` interleaved channels.
    pub const fn new(hz: u32, rate: u32, channels: u8) -> Self {
        Self {
            phase: 0,
            // hz / rate of a turn, in 2^32 units of a turn.
            step: ((hz as u64) << 32).div_ceil(rate as u64) as u32,
            channels: channels as usize,
        }
    }

    /// Fills interleaved frames: the audio source callback of `Stream::pace`.
    pub fn fill(&mut self, pcm: &mut [i16]) {
        for frame in pcm.chunks_mut(self.channels.max(1)) {
            frame.fill(sine(self.phase));
            self.phase = self.phase.wrapping_add(self.step);
        }
    }
}

/// `AMPLITUDE · sin(2π · phase / 2^32)`, approximately.
fn sine(phase: u32) -> i16 {
    // The phase as a signed turn: −2^15 .. 2^15 stands for −π .. π.
    let x = (phase as i32) >> 16;
    // Parabola through 0, ±π/2 (peak 2^15) and ±π: 4x(1 − |x|/π) in Q15.
    let y = (x * (32768 - x.abs())) >> 13;
    // Refinement: y + 0.225 (y·|y| − y), 0.225 ≈ 7373 / 2^15.
    let y = y + (((y * y.abs()) >> 15) - y) * 7373 / 32768;
    (y * AMPLITUDE / 32768) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_hits_its_landmarks() {
        assert_eq!(sine(0), 0);
        assert_eq!(sine(1 << 31), 0);
        assert_eq!(sine(1 << 30), AMPLITUDE as i16);
        assert_eq!(sine(3 << 30), -AMPLITUDE as i16);
        // 30°: sin = 0.5, within 0.2 % of the peak.
        let s = i32::from(sine(((1u64 << 32) / 12) as u32));
        assert!((s - AMPLITUDE / 2).abs() < AMPLITUDE / 500, "{s}");
    }

    #[test]
    fn stereo_frames_carry_the_same_sample_and_the_phase_runs_on() {
        let mut tone = Tone::new(441, 44_100, 2);
        let mut pcm = [0i16; 200];
        tone.fill(&mut pcm);
        assert!(pcm.chunks(2).all(|f| f[0] == f[1]));
        // 100 frames of 441 Hz at 44.1 kHz: exactly one period, so it starts over at 0.
        let mut next = [0i16; 2];
        tone.fill(&mut next);
        assert!(next[0].abs() <= 1, "{next:?}");
        assert!(pcm[50] > 8000, "{}", pcm[50]);
    }
}
