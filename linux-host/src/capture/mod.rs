//! Audio sources. Each delivers whole periods of interleaved S16 samples to a [`Sink`] together
//! with the stream position of the period's first frame.
//!
//! The position counts frames delivered since the start, so stream time is `position / rate` —
//! never the wall clock (design.md, "Time"): the card's crystal is the clock players follow, and
//! when the ALSA device disappears the source fills in silence paced by the monotonic clock so
//! that position keeps advancing and players stay connected.
//!
//! Sources are driven by the event loop: they register their file descriptors under the tokens
//! in [`SOURCE_TOKENS`], report a [`Source::deadline`] for timer-driven work (tone, silence,
//! retries), and do their work in [`Source::pump`] whenever one of their tokens was ready or the
//! deadline passed.

#[cfg(feature = "alsa")]
pub mod alsa;
#[cfg(not(feature = "alsa"))]
#[path = "no_alsa.rs"]
pub mod alsa;
pub mod drift;
pub mod stdin;
pub mod tone;

use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};

use mio::{Registry, Token};

use crate::config::SourceSpec;

/// Receives every period a source produces.
pub trait Sink {
    /// One period: `pcm` holds whole interleaved frames (a full period, except possibly the very
    /// last one before end of input), `position_frames` is the stream position of its first frame.
    fn period(&mut self, pcm: &[i16], position_frames: u64);
}

/// Tokens reserved for a source's file descriptors (ALSA may have several poll descriptors).
pub const SOURCE_TOKENS: Range<usize> = 1..9;

/// What the source is doing, for the status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// Real audio is coming in.
    Capturing,
    /// The device is gone: silence is generated while it is retried.
    Silence,
}

impl fmt::Display for SourceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Capturing => "capturing",
            Self::Silence => "silence",
        })
    }
}

/// What the loop reports about the capture after each pump (the HTTP reports show it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CaptureStatus {
    /// Capturing or generating silence.
    pub state: SourceState,
    /// Capture overruns since start.
    pub overruns: u64,
    /// The sample clock against the monotonic clock ([`drift::DriftMeter`]), once measured.
    pub drift_ppm: Option<f64>,
}

/// Whether the stream goes on after a [`Source::pump`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// More is coming.
    Continue,
    /// The input ended (stdin EOF): the stream is over and the process should exit cleanly.
    Ended,
}

/// The process holding a device, from `/proc/PID/comm` (at most 15 bytes, TASK_COMM_LEN - 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    comm: [u8; 16],
    comm_len: u8,
}

impl Holder {
    /// A holder with process name `comm` (truncated to 16 bytes).
    pub fn new(pid: u32, comm: &str) -> Self {
        let mut buf = [0u8; 16];
        let bytes = comm.as_bytes();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Self {
            pid,
            comm: buf,
            comm_len: n as u8,
        }
    }

    /// The process name.
    pub fn comm(&self) -> &str {
        let bytes = &self.comm[..usize::from(self.comm_len).min(self.comm.len())];
        // `new` copied at most 16 bytes of a str; a cut inside a UTF-8 sequence shows the valid part.
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

/// Sample rates an error lists when the device refuses the requested one.
pub const STANDARD_RATES: [u32; 12] = [
    5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000,
];

/// A subset of [`STANDARD_RATES`], as a bit mask (bit i = `STANDARD_RATES[i]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateSet(pub u16);

impl fmt::Display for RateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (i, rate) in STANDARD_RATES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                write!(f, "{}{rate}", if first { "" } else { ", " })?;
                first = false;
            }
        }
        if first {
            f.write_str("none of the standard rates")?;
        }
        Ok(())
    }
}

/// Why a source could not start or went on no further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureError {
    /// The device is in use (EBUSY), by `holder` when it could be found.
    Busy {
        /// The process holding the device node, if found in /proc.
        holder: Option<Holder>,
    },
    /// No device of that name (ENOENT/ENODEV/ENXIO at open).
    NoSuchDevice,
    /// The device node is not accessible (EACCES/EPERM).
    PermissionDenied,
    /// The device cannot deliver S16_LE interleaved.
    FormatUnsupported,
    /// The device refuses the exact rate.
    RateUnsupported {
        /// What was asked for.
        requested: u32,
        /// The lowest rate the hardware parameters allow.
        min: u32,
        /// The highest.
        max: u32,
        /// Which of the standard rates it accepts.
        offered: RateSet,
    },
    /// The device refuses the channel count.
    ChannelsUnsupported {
        /// What was asked for.
        requested: u32,
        /// The fewest channels it allows.
        min: u32,
        /// The most.
        max: u32,
    },
    /// Another ALSA call failed.
    Alsa {
        /// The alsa-lib function.
        call: &'static str,
        /// The positive errno it returned.
        errno: i32,
    },
    /// A system call failed (stdin read, fcntl, poll registration).
    Io {
        /// What was being done.
        op: &'static str,
        /// The positive errno.
        errno: i32,
    },
    /// The device delivered nothing for `secs` seconds without reporting an error
    /// ([`alsa::STALL_TIMEOUT`], or [`alsa::START_TIMEOUT`] right after opening).
    Stalled {
        /// How long it was silent.
        secs: u8,
    },
    /// The device has more poll descriptors than [`SOURCE_TOKENS`] can hold.
    TooManyPollDescriptors {
        /// How many it has.
        count: usize,
    },
    /// An `alsa:` source was asked of a build without the `alsa` feature (the static build).
    #[cfg(not(feature = "alsa"))]
    AlsaNotBuilt,
}

impl CaptureError {
    /// An `Io` error from a `std::io::Error`.
    pub fn io(op: &'static str, e: &std::io::Error) -> Self {
        Self::Io {
            op,
            errno: e.raw_os_error().unwrap_or(0),
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Busy { holder: Some(h) } => write!(
                f,
                "device busy: process {} ({}) has it open; stop it or capture through \
                 dsnoop/pulse so several programs can share the card",
                h.pid,
                h.comm()
            ),
            Self::Busy { holder: None } => f.write_str(
                "device busy: another program has it open (check with `fuser -v /dev/snd/*`)",
            ),
            Self::NoSuchDevice => {
                f.write_str("no such capture device; `zerocast devices` lists the names to use")
            }
            Self::PermissionDenied => f.write_str(
                "permission denied opening the sound device: run as a user in the `audio` group \
                 (sudo usermod -aG audio USER, then log in again)",
            ),
            Self::FormatUnsupported => f.write_str(
                "the device cannot capture 16-bit little-endian (S16_LE) samples; use its \
                 plughw: form so alsa-lib converts",
            ),
            Self::RateUnsupported {
                requested,
                min,
                max,
                offered,
            } => write!(
                f,
                "the device refuses {requested} Hz; it allows {min}..={max} Hz, of the standard \
                 rates: {offered}. Use its plughw: form (e.g. alsa:plughw:1,0 instead of \
                 alsa:hw:1,0) so alsa-lib resamples"
            ),
            Self::ChannelsUnsupported {
                requested,
                min,
                max,
            } => write!(
                f,
                "the device refuses {requested} channel(s); it allows {min}..={max}. Use \
                 --channels within that or its plughw: form so alsa-lib converts"
            ),
            Self::Alsa { call, errno } => {
                write!(
                    f,
                    "{call} failed: {}",
                    nix::errno::Errno::from_raw(errno).desc()
                )
            }
            Self::Io { op, errno } => {
                write!(
                    f,
                    "{op} failed: {}",
                    nix::errno::Errno::from_raw(errno).desc()
                )
            }
            Self::Stalled { secs } => write!(f, "no audio from the device for {secs} s"),
            Self::TooManyPollDescriptors { count } => write!(
                f,
                "the device has {count} poll descriptors, more than the {} this build handles",
                SOURCE_TOKENS.len()
            ),
            #[cfg(not(feature = "alsa"))]
            Self::AlsaNotBuilt => f.write_str(
                "this zerocast is the static build, without ALSA: capture with arecord and pipe \
                 the audio in, e.g. `arecord -q -D hw:1,0 -f S16_LE -r 44100 -c 2 -t raw | \
                 zerocast --source stdin`, or install the package built for Raspberry Pi OS",
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

/// Cuts samples into periods and numbers them: the one place positions are counted.
///
/// The buffer may hold several periods ([`Self::with_room`]), so that a reader can take all a
/// device has in one call: every whole period in it is delivered, the rest waits for more.
#[derive(Debug)]
pub struct Periods {
    buf: Vec<i16>,
    /// Samples in a full period.
    period: usize,
    fill: usize,
    channels: usize,
    position: u64,
}

impl Periods {
    /// Periods of `frames` frames of `channels` channels (both at least 1), room for one.
    pub fn new(frames: usize, channels: usize) -> Self {
        Self::with_room(frames, channels, 1)
    }

    /// As [`Self::new`] with room for `periods` periods (at least 1) before any is delivered.
    pub fn with_room(frames: usize, channels: usize, periods: usize) -> Self {
        let channels = channels.max(1);
        let period = frames.max(1) * channels;
        Self {
            buf: vec![0; period * periods.max(1)],
            period,
            fill: 0,
            channels,
            position: 0,
        }
    }

    /// Frames in a full period.
    pub fn frames(&self) -> usize {
        self.period / self.channels
    }

    /// Samples per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames delivered so far: the position of the next period.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The unfilled rest of the buffer, for a reader to write samples into.
    pub fn free(&mut self) -> &mut [i16] {
        let fill = self.fill;
        self.buf.get_mut(fill..).unwrap_or_default()
    }

    /// The unfilled rest of the current period only.
    pub fn free_in_period(&mut self) -> &mut [i16] {
        let (fill, end) = (self.fill, self.period.min(self.buf.len()));
        self.buf.get_mut(fill..end).unwrap_or_default()
    }

    /// Records that `samples` more samples were written into [`Self::free`], delivering every
    /// period that is full; a partial period moves to the front of the buffer.
    pub fn commit(&mut self, samples: usize, sink: &mut dyn Sink) {
        self.fill = (self.fill + samples).min(self.buf.len());
        let mut start = 0;
        while self.fill - start >= self.period {
            self.deliver(start, self.period, sink);
            start += self.period;
        }
        if start > 0 {
            self.buf.copy_within(start..self.fill, 0);
            self.fill -= start;
        }
    }

    /// Appends `frames` frames of silence, delivering every period that fills.
    pub fn push_silence(&mut self, mut frames: u64, sink: &mut dyn Sink) {
        let channels = self.channels;
        while frames > 0 {
            let free = self.free_in_period();
            let n = free.len() / channels;
            let take = usize::try_from(frames).map_or(n, |f| f.min(n));
            free[..take * channels].fill(0);
            frames -= take as u64;
            self.commit(take * channels, sink);
        }
    }

    /// Delivers what has been collected as a last, short period (whole frames only).
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        self.fill -= self.fill % self.channels;
        if self.fill > 0 {
            self.deliver(0, self.fill, sink);
            self.fill = 0;
        }
    }

    fn deliver(&mut self, start: usize, len: usize, sink: &mut dyn Sink) {
        sink.period(&self.buf[start..start + len], self.position);
        self.position += (len / self.channels) as u64;
    }
}

/// Whole periods due after `elapsed` at `rate`: `floor(elapsed * rate / period)`, computed in
/// nanoseconds so that a clock-paced source never drifts (the count is recomputed from the
/// start, not accumulated per period).
pub fn frames_due(elapsed: Duration, rate: u32) -> u64 {
    let frames = elapsed.as_nanos() * u128::from(rate) / 1_000_000_000;
    u64::try_from(frames).unwrap_or(u64::MAX)
}

/// When frame number `frames` falls due, counted from `start` at `rate`.
pub fn due_at(start: Instant, frames: u64, rate: u32) -> Instant {
    let nanos = u128::from(frames) * 1_000_000_000 / u128::from(rate.max(1));
    start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// How far a clock-paced source may fall behind (the process was stopped, the machine
/// suspended) before it stops catching up and restarts its clock instead: a player would rather
/// miss that audio than receive it all at once.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(2);

/// Paces generated audio by the monotonic clock: how many frames are due, without drift.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start: Instant,
    produced: u64,
    rate: u32,
}

impl Pacer {
    /// A pacer whose frame 0 is due at `start`.
    pub fn new(start: Instant, rate: u32) -> Self {
        Self {
            start,
            produced: 0,
            rate,
        }
    }

    /// Whole periods of `period` frames due at `now` and not yet produced; marks them produced.
    /// Returns the count in frames. After a stall longer than [`MAX_CATCH_UP`] the clock is
    /// restarted at `now` (logged by the caller when the returned flag is set).
    pub fn take_due(&mut self, now: Instant, period: u64) -> (u64, bool) {
        let period = period.max(1);
        let due = frames_due(now.saturating_duration_since(self.start), self.rate);
        let behind = due.saturating_sub(self.produced);
        if behind > frames_due(MAX_CATCH_UP, self.rate) {
            *self = Self::new(now, self.rate);
            return (0, true);
        }
        let frames = behind / period * period;
        self.produced += frames;
        (frames, false)
    }

    /// When the next period of `period` frames falls due.
    pub fn next_due(&self, period: u64) -> Instant {
        due_at(self.start, self.produced + period.max(1), self.rate)
    }
}

/// One of the three kinds of source.
#[derive(Debug)]
pub enum Source {
    /// An ALSA capture device.
    Alsa(alsa::AlsaSource),
    /// Raw PCM on standard input.
    Stdin(stdin::StdinSource),
    /// A generated sine.
    Tone(tone::ToneSource),
    /// No capture (`--source none`): zerocast is a pure server of what peers publish.
    None,
}

/// What every source is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Frames per second.
    pub rate: u32,
    /// Samples per frame.
    pub channels: u8,
    /// Frames per period.
    pub period_frames: usize,
    /// The source wakes the loop at most once every this many periods (at least 1) and
    /// delivers what is due then: ALSA's `avail_min`, the tone's and the silence's pacing.
    /// Audio is written to players no more often than it arrives, so a wake-up per send
    /// interval is all the capture needs.
    pub wake_periods: usize,
}

impl Format {
    /// Frames the source collects between two wake-ups.
    pub fn wake_frames(&self) -> u64 {
        (self.period_frames.max(1) * self.wake_periods.max(1)) as u64
    }
}

impl Source {
    /// Opens the source `spec` names and registers its descriptors with `registry`.
    pub fn open(
        spec: &SourceSpec,
        format: Format,
        registry: &Registry,
        now: Instant,
    ) -> Result<Self, CaptureError> {
        Ok(match spec {
            SourceSpec::Alsa(device) => {
                Self::Alsa(alsa::AlsaSource::open(device, format, registry, now)?)
            }
            SourceSpec::Stdin => Self::Stdin(stdin::StdinSource::stdin(format, registry)?),
            SourceSpec::Tone { hz } => Self::Tone(tone::ToneSource::new(*hz, format, now)),
            SourceSpec::None => Self::None,
        })
    }

    /// Does the source's work: reads what is ready, generates what is due, retries a lost
    /// device; delivers every completed period to `sink`. Bounded: a source that could go on
    /// returns and asks to be called again via [`Self::deadline`].
    pub fn pump(
        &mut self,
        registry: &Registry,
        now: Instant,
        sink: &mut dyn Sink,
    ) -> Result<Flow, CaptureError> {
        match self {
            Self::Alsa(s) => {
                s.pump(registry, now, sink);
                Ok(Flow::Continue)
            }
            Self::Stdin(s) => s.pump(sink),
            Self::Tone(s) => {
                s.pump(now, sink);
                Ok(Flow::Continue)
            }
            Self::None => Ok(Flow::Continue),
        }
    }

    /// When [`Self::pump`] should next be called even if no descriptor is ready.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Self::Alsa(s) => Some(s.deadline()),
            Self::Stdin(s) => s.deadline(),
            Self::Tone(s) => Some(s.deadline()),
            Self::None => None,
        }
    }

    /// Capturing or generating silence.
    pub fn state(&self) -> SourceState {
        match self {
            Self::Alsa(s) => s.state(),
            Self::Stdin(_) | Self::Tone(_) | Self::None => SourceState::Capturing,
        }
    }

    /// Capture overruns so far (ALSA only).
    pub fn overruns(&self) -> u64 {
        match self {
            Self::Alsa(s) => s.overruns(),
            Self::Stdin(_) | Self::Tone(_) | Self::None => 0,
        }
    }

    /// Frames delivered so far.
    pub fn position(&self) -> u64 {
        match self {
            Self::Alsa(s) => s.position(),
            Self::Stdin(s) => s.position(),
            Self::Tone(s) => s.position(),
            Self::None => 0,
        }
    }

    /// Deregisters the source's descriptors.
    pub fn close(&mut self, registry: &Registry) {
        match self {
            Self::Alsa(s) => s.close(registry),
            Self::Stdin(s) => s.close(registry),
            Self::Tone(_) | Self::None => {}
        }
    }
}

/// The token for the `i`-th descriptor of a source.
pub(crate) fn source_token(i: usize) -> Token {
    Token(SOURCE_TOKENS.start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Vec<(Vec<i16>, u64)>);

    impl Sink for Record {
        fn period(&mut self, pcm: &[i16], position_frames: u64) {
            self.0.push((pcm.to_vec(), position_frames));
        }
    }

    #[test]
    fn periods_cut_and_number() {
        let mut p = Periods::new(3, 2);
        let mut rec = Record::default();
        let input: Vec<i16> = (1..=16).collect();
        let mut rest = &input[..];
        // Feed in uneven pieces, as a nonblocking read returns them.
        for piece in [5usize, 1, 7, 3] {
            let (now, later) = rest.split_at(piece);
            let mut now = now;
            while !now.is_empty() {
                let free = p.free();
                let n = free.len().min(now.len());
                free[..n].copy_from_slice(&now[..n]);
                now = &now[n..];
                p.commit(n, &mut rec);
            }
            rest = later;
        }
        p.finish(&mut rec);
        let positions: Vec<u64> = rec.0.iter().map(|r| r.1).collect();
        assert_eq!(positions, [0, 3, 6]);
        assert_eq!(rec.0[0].0, [1, 2, 3, 4, 5, 6]);
        assert_eq!(rec.0[2].0, [13, 14, 15, 16]); // short last period, whole frames
        assert_eq!(p.position(), 8);
    }

    #[test]
    fn a_read_of_several_periods_delivers_each() {
        let mut p = Periods::with_room(3, 2, 4);
        let mut rec = Record::default();
        // 2.5 periods in one read, then the rest of the third in another.
        let free = p.free();
        assert_eq!(free.len(), 24);
        for (i, s) in free[..15].iter_mut().enumerate() {
            *s = i as i16;
        }
        p.commit(15, &mut rec);
        assert_eq!(rec.0.len(), 2);
        assert_eq!(rec.0[1], (vec![6, 7, 8, 9, 10, 11], 3));
        assert_eq!(p.free().len(), 21); // the partial period moved to the front
        assert_eq!(p.free_in_period().len(), 3);
        p.free()[..3].copy_from_slice(&[15, 16, 17]);
        p.commit(3, &mut rec);
        assert_eq!(rec.0[2], (vec![12, 13, 14, 15, 16, 17], 6));
        assert_eq!(p.position(), 9);
    }

    #[test]
    fn silence_continues_positions() {
        let mut p = Periods::new(4, 1);
        let mut rec = Record::default();
        p.free()[..2].copy_from_slice(&[7, 7]);
        p.commit(2, &mut rec);
        p.push_silence(10, &mut rec);
        assert_eq!(rec.0.len(), 3);
        assert_eq!(rec.0[0], (vec![7, 7, 0, 0], 0));
        assert_eq!(rec.0[2], (vec![0; 4], 8));
    }

    #[test]
    fn pacing_has_no_drift() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, 44_100);
        // 882-frame periods (20 ms) at uneven wake-ups: the total stays floor(elapsed / 20 ms).
        let mut total = 0;
        for ms in [5u64, 19, 20, 21, 59, 60, 999, 1000, 1001, 1500] {
            let (frames, reset) = pacer.take_due(t0 + Duration::from_millis(ms), 882);
            assert!(!reset);
            total += frames;
            assert_eq!(total, ms / 20 * 882, "at {ms} ms");
        }
        assert_eq!(pacer.next_due(882), t0 + Duration::from_millis(1520));
        let (frames, reset) = pacer.take_due(t0 + Duration::from_secs(10), 882);
        assert_eq!((frames, reset), (0, true));
    }

    #[test]
    fn error_texts() {
        let busy = CaptureError::Busy {
            holder: Some(Holder::new(42, "arecord")),
        };
        assert!(busy.to_string().contains("process 42 (arecord)"));
        let rate = CaptureError::RateUnsupported {
            requested: 44100,
            min: 48000,
            max: 48000,
            offered: RateSet(1 << 7),
        };
        let text = rate.to_string();
        assert!(text.contains("refuses 44100 Hz") && text.contains("standard rates: 48000"));
        assert!(text.contains("plughw:"), "{text}");
        assert_eq!(
            Holder::new(1, "a-very-long-process-name").comm(),
            "a-very-long-proc"
        );
    }
}
