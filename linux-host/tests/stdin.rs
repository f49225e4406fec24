//! `stdin`: raw S16_LE through a pipe, written in uneven pieces, comes out as exact periods with
//! exact positions, and end of input ends the loop.

use std::io::Write;
use std::time::{Duration, Instant};

use zerocast::capture::stdin::StdinSource;
use zerocast::capture::{Format, Sink, Source};
use zerocast::event_loop::{EventLoop, Exit, Options};

#[derive(Default)]
struct Collect {
    positions: Vec<(u64, usize)>,
    samples: Vec<i16>,
}

impl zerocast::event_loop::Service for Collect {}

impl Sink for Collect {
    fn period(&mut self, pcm: &[i16], position_frames: u64) {
        self.positions.push((position_frames, pcm.len() / 2));
        self.samples.extend_from_slice(pcm);
    }
}

#[test]
fn pipe_to_periods_exactly() {
    let format = Format {
        rate: 44_100,
        channels: 2,
        period_frames: 882,
        wake_periods: 1,
    };
    // 3 full periods and 100 frames, then an odd trailing byte that must be dropped.
    let frames = 3 * 882 + 100;
    let samples: Vec<i16> = (0..frames * 2)
        .map(|i| (i as i16).wrapping_mul(7919))
        .collect();
    let mut bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    bytes.push(0xAB);

    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::File::from(write_end);
        let mut rest = &bytes[..];
        // Uneven pieces: sample and frame boundaries fall inside writes.
        for piece in [1usize, 3, 1000, 7, 4096, 2].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*piece).min(rest.len());
            w.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut el = EventLoop::with_source(
        "stdin".into(),
        44_100,
        Collect::default(),
        Options::default(),
        |registry, _now| {
            Ok(Source::Stdin(StdinSource::from_fd(
                read_end, format, registry,
            )?))
        },
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        assert!(Instant::now() < deadline, "stdin did not end");
        if let Some(exit) = el.turn(Some(Duration::from_millis(100))).unwrap() {
            break exit;
        }
    };
    writer.join().unwrap();
    assert_eq!(exit, Exit::SourceEnded);
    let got = el.sink();
    assert_eq!(
        got.positions,
        [(0, 882), (882, 882), (1764, 882), (2646, 100)]
    );
    assert_eq!(got.samples, samples);
}
