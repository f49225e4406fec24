//! What one codec setting costs: encodes SECONDS of a music-like test signal (two tones, a sweep
//! and noise, stereo) through `zerocast::encode::Rendition` in 20 ms capture periods and prints
//! the bytes it made. Run it under `qemu-arm -cpu arm1176` with the qemu-insn plugin
//! (bench/qemu-insn) and subtract the `none` run (the same signal, not encoded) to get
//! the encoder's instructions; docs/benchmarks.md, "Encoders on the ARM1176", has the recipe and
//! the numbers.
//!
//! ```text
//! encode_cost none|pcm|adpcm|aac|aac-afterburner|mp3-qN RATE SECONDS
//! ```

use std::process::ExitCode;

use zerocast::config::Codec;
use zerocast::encode::{Rendition, Tuning};

/// One second of the test signal at `rate`, interleaved stereo: computed once, then looped, so
/// the signal costs the same in every run and almost nothing per second.
fn signal(rate: u32) -> Vec<i16> {
    let mut noise = 0x2545_F491u32;
    (0..rate)
        .flat_map(|i| {
            let t = f64::from(i) / f64::from(rate);
            let tau = 2.0 * std::f64::consts::PI;
            // A 220 Hz and a 3 kHz tone, a 100 Hz..10 kHz sweep, and white noise at -30 dBFS.
            let sweep = (tau * (100.0 * t + 4950.0 * t * t)).sin();
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let white = f64::from(noise as i32) / f64::from(i32::MAX);
            let left = 0.3 * (tau * 220.0 * t).sin() + 0.2 * sweep + 0.03 * white;
            let right = 0.3 * (tau * 3000.0 * t).sin() + 0.2 * sweep - 0.03 * white;
            [(left * 32767.0) as i16, (right * 32767.0) as i16]
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [setting, rate, seconds] = &args[..] else {
        eprintln!("usage: encode_cost none|pcm|adpcm|aac|aac-afterburner|mp3-qN RATE SECONDS");
        return ExitCode::from(2);
    };
    let (Ok(rate), Ok(seconds)) = (rate.parse::<u32>(), seconds.parse::<u64>()) else {
        eprintln!("RATE and SECONDS are numbers");
        return ExitCode::from(2);
    };
    let mut tuning = Tuning::default();
    let codec = match setting.as_str() {
        "none" => None,
        "pcm" => Some(Codec::Pcm),
        "adpcm" => Some(Codec::Adpcm),
        "aac" => {
            tuning.aac_afterburner = false;
            Some(Codec::Aac)
        }
        "aac-afterburner" => {
            tuning.aac_afterburner = true;
            Some(Codec::Aac)
        }
        mp3 => match mp3.strip_prefix("mp3-q").and_then(|q| q.parse().ok()) {
            Some(quality) => {
                tuning.mp3_quality = quality;
                Some(Codec::Mp3)
            }
            None => {
                eprintln!("unknown setting {mp3}");
                return ExitCode::from(2);
            }
        },
    };
    let period = rate as usize / 50;
    let second = signal(rate);
    let mut rendition = match codec
        .map(|codec| Rendition::with_tuning(codec, rate, 2, 128, period, tuning))
        .transpose()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{setting}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut bytes, mut packets, mut position, mut checksum) = (0usize, 0usize, 0u64, 0u32);
    let mut sink = |_: u32, body: &[u8]| {
        bytes += body.len();
        packets += 1;
    };
    for _ in 0..seconds {
        for chunk in second.chunks(2 * period) {
            match rendition.as_mut() {
                Some(r) => {
                    if let Err(e) = r.push(chunk, position, &mut sink) {
                        eprintln!("{setting}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                // The same walk over the signal, so `none` costs what the others do besides
                // encoding.
                None => {
                    checksum = chunk
                        .iter()
                        .fold(checksum, |c, &s| c.rotate_left(1) ^ s as u32)
                }
            }
            position += (chunk.len() / 2) as u64;
        }
    }
    if let Some(r) = rendition.as_mut() {
        if let Err(e) = r.finish(&mut sink) {
            eprintln!("{setting}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{setting} at {rate} Hz: {seconds} s, {packets} packets, {bytes} bytes ({:.1} kbit/s), checksum {checksum}",
        bytes as f64 * 8.0 / seconds as f64 / 1000.0
    );
    ExitCode::SUCCESS
}
