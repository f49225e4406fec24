//! ALSA capture through a private PulseAudio server, including the server's source vanishing
//! and coming back: periods never stop and positions never jump.
//!
//! Running PulseAudio here: the test starts its own server as a child process (not `-D`, so the
//! child handle kills exactly it, also when the test fails: [`Pulse`]'s `Drop`), with its own
//! `XDG_RUNTIME_DIR` and `HOME` in a temp directory so it never meets a desktop's server. As
//! root it only warns ("not intended to be run as root"); no `--system` is needed. The native
//! protocol module gets `auth-anonymous=1` so clients need no cookie; this process reaches it
//! through `PULSE_SERVER` (read by libpulse inside alsa-lib's pulse plugin) and records from
//! `PULSE_SOURCE=radio.monitor`. Needs pulseaudio, pulseaudio-utils (pacat, pactl) and
//! libasound2-plugins (the `pulse` PCM); without them the test skips, or fails when `CI` is set.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::capture::{dbfs, frequency, peak, Recorder};
use zerocast::capture::{Format, SourceState};
use zerocast::config::SourceSpec;
use zerocast::event_loop::{EventLoop, Options};

const RATE: u32 = 44_100;
const PERIOD: usize = 882;
/// The fed tone: 1 kHz at half scale (−6.02 dBFS).
const TONE_HZ: f64 = 1000.0;
const TONE_AMPLITUDE: f64 = 16384.0;

/// The private server; killed and its directory removed on drop.
struct Pulse {
    child: Child,
    dir: PathBuf,
}

impl Pulse {
    fn start() -> Pulse {
        let dir = std::env::temp_dir().join(format!("zerocast-pulse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["run", "home"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let log = std::fs::File::create(dir.join("pulse.log")).unwrap();
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-null-sink sink_name=radio",
                "--load=module-native-protocol-unix auth-anonymous=1",
            ])
            .env("XDG_RUNTIME_DIR", dir.join("run"))
            .env("HOME", dir.join("home"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pulse = Pulse { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pulse.pactl(&["info"]) {
            assert!(
                Instant::now() < deadline,
                "pulseaudio did not come up: {}",
                pulse.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pulse
    }

    /// The server address for clients (`PULSE_SERVER`).
    fn server(&self) -> String {
        format!("unix:{}", self.dir.join("run/pulse/native").display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pulse.log")).unwrap_or_default()
    }

    fn pactl(&self, args: &[&str]) -> bool {
        Command::new("pactl")
            .args(args)
            .env("PULSE_SERVER", self.server())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `pacat` playing a paced 1 kHz tone into sink `radio` until it dies or `stop` is set.
    fn play_tone(&self, stop: Arc<AtomicBool>) -> Player {
        let mut child = Command::new("pacat")
            .args([
                "--playback",
                "--device=radio",
                "--latency-msec=200",
                "--format=s16le",
                "--rate=44100",
                "--channels=2",
                "--raw",
            ])
            .env("PULSE_SERVER", self.server())
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // 20 ms at a time; pacat reads only as fast as the sink plays, which paces this.
                let chunk: Vec<u8> = (0..PERIOD)
                    .flat_map(|_| {
                        let t = n as f64 / f64::from(RATE);
                        n += 1;
                        let s = (TONE_AMPLITUDE * (std::f64::consts::TAU * TONE_HZ * t).sin())
                            .round() as i16;
                        [s.to_le_bytes(), s.to_le_bytes()].concat()
                    })
                    .collect();
                if stdin.write_all(&chunk).is_err() {
                    break; // pacat died with its sink
                }
            }
        });
        Player {
            child,
            feeder: Some(feeder),
        }
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `pacat` and its feeder thread; killed on drop.
struct Player {
    child: Child,
    feeder: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
    }
}

fn tools_present() -> bool {
    let found = ["pulseaudio", "pacat", "pactl"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }) && pulse_plugin_installed();
    if !found && std::env::var_os("CI").is_some() {
        panic!(
            "pulseaudio, pacat, pactl or the ALSA pulse plugin missing \
             (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"
        );
    }
    found
}

/// Whether libasound2-plugins' pulse PCM is installed (Debian keeps it in the multiarch dir).
fn pulse_plugin_installed() -> bool {
    let dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("alsa-lib"))
        .chain([PathBuf::from("/usr/lib/alsa-lib")]);
    dirs.into_iter()
        .any(|d| d.join("libasound_module_pcm_pulse.so").exists())
}

/// Turns the loop until `done` says so; panics after `limit`.
fn run_until(
    el: &mut EventLoop<Recorder>,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&EventLoop<Recorder>) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(el) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        assert_eq!(el.turn(Some(Duration::from_millis(100))).unwrap(), None);
    }
}

/// Index of the first period at or after `from` whose peak exceeds a quarter of the tone's.
fn first_loud(rec: &Recorder, from: usize) -> Option<usize> {
    (from..rec.periods.len()).find(|&i| peak(&rec.periods[i..=i]) > (TONE_AMPLITUDE / 4.0) as u16)
}

/// Checks one second of tone starting 200 ms after the first loud period at or after `from`.
fn assert_tone(rec: &Recorder, from: usize, phase: &str) {
    let start = first_loud(rec, from).expect("tone present") + 10;
    let second = &rec.periods[start..start + 50];
    let f = frequency(second, 2, RATE);
    assert!(
        (f - TONE_HZ).abs() < TONE_HZ * 0.02,
        "{phase}: frequency {f} Hz"
    );
    let level = dbfs(peak(second));
    assert!(
        (level - dbfs(TONE_AMPLITUDE as u16)).abs() < 0.5,
        "{phase}: level {level} dBFS"
    );
}

#[test]
fn pulse_capture_survives_its_source_vanishing() {
    if !tools_present() {
        eprintln!("SKIPPED: pulseaudio tools not installed");
        return;
    }
    // The transitions are logged once each, at warn / info; alsa-lib's messages at debug.
    zerocast::logging::init(log::LevelFilter::Debug).unwrap();
    let pulse = Pulse::start();
    // This test binary has this one test, so nothing else reads the environment concurrently.
    std::env::set_var("PULSE_SERVER", pulse.server());
    std::env::set_var("PULSE_SOURCE", "radio.monitor");
    std::env::set_var("HOME", pulse.dir.join("home"));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let format = Format {
        rate: RATE,
        channels: 2,
        period_frames: PERIOD,
        wake_periods: 1,
    };
    let mut el = EventLoop::new(
        &SourceSpec::Alsa("pulse".into()),
        format,
        Recorder::new(2),
        Options::default(),
    )
    .unwrap();

    let mark = |el: &EventLoop<Recorder>, what: &str| {
        log::info!(
            "test: {what}: stream {:.2} s, real {:.2} s",
            el.sink().frames() as f64 / f64::from(RATE),
            started.elapsed().as_secs_f64()
        )
    };
    // Phase 1: the tone arrives.
    run_until(&mut el, Duration::from_secs(5), "a first period", |el| {
        !el.sink().periods.is_empty()
    });
    mark(&el, "first period");
    let player = pulse.play_tone(stop.clone());
    run_until(&mut el, Duration::from_secs(10), "the tone", |el| {
        first_loud(el.sink(), 0).is_some_and(|i| el.sink().periods.len() >= i + 60)
    });
    mark(&el, "tone heard");
    assert_tone(el.sink(), 0, "before");
    assert_eq!(el.source_state(), SourceState::Capturing);

    // Phase 2: the sink (and its monitor source) goes away; pacat dies with it.
    assert!(pulse.pactl(&["unload-module", "module-null-sink"]));
    run_until(&mut el, Duration::from_secs(5), "silence mode", |el| {
        el.source_state() == SourceState::Silence
    });
    mark(&el, "silence mode");
    let silence_from = el.sink().periods.len();
    let silence_started = Instant::now();
    run_until(&mut el, Duration::from_secs(5), "1 s of silence", |el| {
        el.sink().periods.len() >= silence_from + 50
    });
    let rec = el.sink();
    // The first period after the loss may start with the last captured frames (the partial
    // period is completed with silence); every later one is pure silence.
    assert!(rec.periods[silence_from + 1..]
        .iter()
        .all(|p| p.pcm.iter().all(|&s| s == 0)));
    // Silence is paced by the clock: 50 periods took about a second.
    let took = silence_started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "50 silent periods in {took:?}"
    );
    drop(player);

    // Phase 3: the sink comes back; the source reopens within its 2 s retry and the tone returns.
    assert!(pulse.pactl(&["load-module", "module-null-sink", "sink_name=radio"]));
    let _player = pulse.play_tone(stop.clone());
    mark(&el, "sink back");
    let resumed_from = el.sink().periods.len();
    run_until(&mut el, Duration::from_secs(10), "the tone again", |el| {
        el.source_state() == SourceState::Capturing
            && first_loud(el.sink(), resumed_from)
                .is_some_and(|i| el.sink().periods.len() >= i + 60)
    });
    mark(&el, "tone heard again");
    assert_tone(el.sink(), resumed_from, "after");

    // Over all three phases: every period full, positions continuous (checked on arrival by
    // the recorder), and the stream never ran ahead of real time. (It may lag: the server starts
    // a new record stream only once its source has rendered a first block.)
    let rec = el.sink();
    assert!(rec.periods.iter().all(|p| p.pcm.len() == PERIOD * 2));
    let stream_secs = rec.frames() as f64 / f64::from(RATE);
    let real_secs = started.elapsed().as_secs_f64();
    assert!(
        stream_secs <= real_secs,
        "stream {stream_secs:.2} s vs real {real_secs:.2} s"
    );
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "{} periods, {stream_secs:.2} s of stream in {real_secs:.2} s; silence from period {silence_from}, \
         capture again after period {resumed_from}",
        rec.periods.len()
    );
}
