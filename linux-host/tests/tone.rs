//! `tone`: paced by the clock without drift, at the right frequency and level.

mod common;

use std::time::{Duration, Instant};

use common::capture::{dbfs, frequency, peak, Recorder};
use zerocast::capture::{Format, SourceState};
use zerocast::config::SourceSpec;
use zerocast::event_loop::{EventLoop, Options};

#[test]
fn tone_is_paced_by_the_clock_and_in_tune() {
    let format = Format {
        rate: 44_100,
        channels: 2,
        period_frames: 882,
        wake_periods: 1,
    };
    let before = Instant::now();
    let mut el = EventLoop::new(
        &SourceSpec::Tone { hz: 1000 },
        format,
        Recorder::new(2),
        Options::default(),
    )
    .unwrap();
    let mut worst = 0f64;
    loop {
        assert_eq!(el.turn(Some(Duration::from_millis(50))).unwrap(), None);
        let elapsed = before.elapsed();
        // After every turn the frames produced match elapsed time within one period
        // (plus 2 ms of scheduling slack for the time between two clock readings).
        let due = elapsed.as_secs_f64() * 44_100.0;
        let lag = due - el.sink().frames() as f64;
        worst = worst.max(lag.abs());
        assert!(lag.abs() <= 882.0 + 88.2, "lag {lag} frames at {elapsed:?}");
        if elapsed >= Duration::from_secs(2) {
            break;
        }
    }
    let rec = el.sink();
    assert!(rec.frames() >= 87_318, "{} frames in 2 s", rec.frames()); // 2 s minus one period
    assert!(rec.periods.iter().all(|p| p.pcm.len() == 882 * 2));
    assert!(rec
        .periods
        .iter()
        .all(|p| p.pcm.chunks(2).all(|f| f[0] == f[1])));
    let f = frequency(&rec.periods, 2, 44_100);
    assert!((f - 1000.0).abs() < 1.0, "frequency {f}");
    let level = dbfs(peak(&rec.periods));
    assert!((level + 12.0).abs() < 0.05, "level {level} dBFS");
    assert_eq!(el.source_state(), SourceState::Capturing);
    let status = el.status_line();
    assert!(status.contains("peak=-12.0 dBFS"), "{status}");
    assert!(
        status.contains("source=tone:1000 state=capturing"),
        "{status}"
    );
    eprintln!("worst lag {worst:.0} frames");
}
