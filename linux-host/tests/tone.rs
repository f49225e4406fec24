//! `tone`: paced by the clock without drift, at the right frequency and level.
//!
//! The pacing is checked on a virtual clock (the source takes `now` from its caller), so the
//! test asserts exact frame counts and no wall-clock bound; the loop part waits for the frames it
//! needs.

mod common;

use std::time::{Duration, Instant};

use common::capture::{dbfs, frequency, peak, Recorder};
use zerocast::capture::tone::ToneSource;
use zerocast::capture::{Format, SourceState};
use zerocast::config::SourceSpec;
use zerocast::event_loop::{EventLoop, Options};

const FORMAT: Format = Format {
    rate: 44_100,
    channels: 2,
    period_frames: 882,
    wake_periods: 1,
};

#[test]
fn tone_is_paced_by_the_clock_and_in_tune() {
    let t0 = Instant::now();
    let mut tone = ToneSource::new(1000, FORMAT, t0);
    let mut rec = Recorder::new(2);
    // Uneven wake-ups over 2 s, some late by several periods: after each, exactly the whole
    // periods due by then have been produced.
    let mut ms = 0u64;
    for step in [3u64, 17, 20, 21, 1, 95, 7].iter().cycle() {
        ms += step;
        if ms > 2000 {
            break;
        }
        tone.pump(t0 + Duration::from_millis(ms), &mut rec);
        assert_eq!(rec.frames(), ms / 20 * 882, "at {ms} ms");
        assert_eq!(tone.position(), rec.frames());
    }
    assert!(rec.periods.iter().all(|p| p.pcm.len() == 882 * 2));
    assert!(rec
        .periods
        .iter()
        .all(|p| p.pcm.chunks(2).all(|f| f[0] == f[1])));
    let f = frequency(&rec.periods, 2, 44_100);
    assert!((f - 1000.0).abs() < 1.0, "frequency {f}");
    let level = dbfs(peak(&rec.periods));
    assert!((level + 12.0).abs() < 0.05, "level {level} dBFS");
}

#[test]
fn the_loop_reports_the_tone_on_its_status_line() {
    let mut el = EventLoop::new(
        &SourceSpec::Tone { hz: 1000 },
        FORMAT,
        Recorder::new(2),
        Options::default(),
    )
    .unwrap();
    // Waits for a tenth of a second of tone, however long the machine takes to deliver it.
    while el.sink().frames() < 4410 {
        assert_eq!(el.turn(Some(Duration::from_secs(1))).unwrap(), None);
    }
    assert_eq!(el.source_state(), SourceState::Capturing);
    let status = el.status_line();
    assert!(status.contains("peak=-12.0 dBFS"), "{status}");
    assert!(
        status.contains("source=tone:1000 state=capturing"),
        "{status}"
    );
}
