//! A private PulseAudio server with a null sink, and a 1 kHz tone played into it, for driving
//! zerocast's real ALSA capture (`alsa:pulse`, alsa-lib's pulse plugin from libasound2-plugins)
//! with known audio.
//!
//! As in `tests/pulse.rs`: the server is a child process (not `-D`, so it is stopped exactly,
//! also when the test fails: [`Spawned`]'s drop), with its own `XDG_RUNTIME_DIR` and `HOME`
//! so it never meets a desktop's server; as root it only warns. `module-native-protocol-unix
//! auth-anonymous=1` lets clients in without a cookie; they find it through `PULSE_SERVER`
//! (libpulse reads it, also inside alsa-lib's plugin) and record from `PULSE_SOURCE`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::live::{make_fifo, open_fifo_writer};
use super::process::{self, Spawned};
use super::{make_dir, tools_available, HarnessError};

/// Programs the tests need besides the plugin.
pub const TOOLS: [&str; 3] = ["pulseaudio", "pacat", "pactl"];
/// Sample rate of the tone and of zerocast's capture, unless a test asks for another.
pub const RATE: u32 = 44_100;
/// How far ahead of real time the feeder keeps pacat's input: more than pacat's 200 ms target
/// latency, so the sink never runs dry, and the pipe's 64 KiB (370 ms at 44.1 kHz, 341 ms at
/// 48 kHz) holds the rest.
const LEAD: Duration = Duration::from_millis(300);
/// Chunks the feeder writes per second (10 ms each).
const CHUNKS_PER_SECOND: u32 = 100;
/// How long pactl and the server's start may take.
const LIMIT: Duration = Duration::from_secs(10);

/// Path of libasound2-plugins' pulse PCM, if installed (Debian keeps it in the multiarch dir).
pub fn alsa_plugin() -> Option<PathBuf> {
    let multiarch = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("alsa-lib"));
    multiarch
        .chain([PathBuf::from("/usr/lib/alsa-lib")])
        .map(|d| d.join("libasound_module_pcm_pulse.so"))
        .find(|p| p.is_file())
}

/// Whether pulseaudio, its tools and the ALSA plugin are installed; as
/// [`tools_available`]: a failure when `CI` is set, a skip otherwise.
pub fn available() -> Result<bool, HarnessError> {
    if !tools_available(&TOOLS)? {
        return Ok(false);
    }
    match alsa_plugin() {
        Some(_) => Ok(true),
        // Reported through the same rule, under the name of its package.
        None => tools_available(&["/usr/lib/alsa-lib/libasound_module_pcm_pulse.so"]),
    }
}

/// The running server; stopped when dropped.
pub struct PulseServer {
    process: Spawned,
    dir: PathBuf,
}

impl PulseServer {
    /// Starts a server with its files in `dir` and waits until `pactl info` answers.
    pub fn start(dir: &Path) -> Result<PulseServer, HarnessError> {
        for sub in ["run", "home"] {
            make_dir(&dir.join(sub), 0o700)?;
        }
        let run = dir.join("run").display().to_string();
        let home = dir.join("home").display().to_string();
        let process = process::spawn(
            "pulseaudio",
            &[
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-native-protocol-unix auth-anonymous=1",
            ],
            &[("XDG_RUNTIME_DIR", &run), ("HOME", &home)],
            &dir.join("pulseaudio.log"),
        )?;
        let mut server = PulseServer {
            process,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + LIMIT;
        while server.pactl(&["info"]).is_err() {
            if !server.process.is_running()? || Instant::now() >= deadline {
                return Err(server.process.failed("did not come up".to_owned()));
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// `PULSE_SERVER`, `HOME` and `XDG_RUNTIME_DIR` for its clients.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "PULSE_SERVER",
                format!("unix:{}", self.dir.join("run/pulse/native").display()),
            ),
            ("HOME", self.dir.join("home").display().to_string()),
            (
                "XDG_RUNTIME_DIR",
                self.dir.join("run").display().to_string(),
            ),
        ]
    }

    /// Runs `pactl ARGS` against this server; its output on success.
    pub fn pactl(&self, args: &[&str]) -> Result<String, HarnessError> {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut pactl = process::spawn("pactl", args, &env, &self.dir.join("pactl.log"))?;
        let status = pactl.wait_timeout(LIMIT)?;
        if status.success() {
            Ok(pactl.log())
        } else {
            Err(pactl.failed(format!("{} exited with {status}", args.join(" "))))
        }
    }

    /// Loads `module-null-sink sink_name=NAME rate=RATE` (its monitor source is `NAME.monitor`,
    /// at the same rate); returns the module index `pactl unload-module` takes.
    pub fn load_null_sink(&self, name: &str, rate: u32) -> Result<u32, HarnessError> {
        let sink = format!("sink_name={name}");
        let rate = format!("rate={rate}");
        let out = self.pactl(&["load-module", "module-null-sink", &sink, &rate])?;
        out.trim().parse().map_err(|_| HarnessError::Failed {
            what: "pactl load-module".to_owned(),
            detail: format!("no module index in {out:?}"),
        })
    }

    /// Unloads module `index`: its sink, monitor source and their streams go away.
    pub fn unload_module(&self, index: u32) -> Result<(), HarnessError> {
        self.pactl(&["unload-module", &index.to_string()]).map(drop)
    }

    /// Plays a sine of `hz` at `amplitude` (stereo, both channels alike, sampled at `rate`) into
    /// `sink` with `pacat`, the samples written by the test at real time (see [`Tone`]). `name`
    /// labels the FIFO and log.
    pub fn play_tone(
        &self,
        sink: &str,
        rate: u32,
        hz: f64,
        amplitude: f64,
        name: &str,
    ) -> Result<Tone, HarnessError> {
        let fifo = self.dir.join(format!("{name}.fifo"));
        if !fifo.exists() {
            make_fifo(&fifo)?;
        }
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let device = format!("--device={sink}");
        let fifo_arg = fifo.display().to_string();
        let rate_arg = format!("--rate={rate}");
        let pacat = process::spawn(
            "pacat",
            &[
                "--playback",
                &device,
                "--latency-msec=200",
                "--format=s16le",
                &rate_arg,
                "--channels=2",
                "--raw",
                &fifo_arg,
            ],
            &env,
            &self.dir.join(format!("{name}.log")),
        )?;
        let file = open_fifo_writer(&fifo, LIMIT).map_err(|e| pacat.failed(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = {
            let stop = stop.clone();
            thread::spawn(move || feed(file, rate, hz, amplitude, &stop))
        };
        Ok(Tone {
            pacat,
            stop,
            feeder: Some(feeder),
        })
    }
}

/// Writes the sine to `file` at real time plus [`LEAD`] until `stop` or a write fails (pacat
/// exited: its sink was unloaded).
fn feed(mut file: File, rate: u32, hz: f64, amplitude: f64, stop: &AtomicBool) {
    let start = Instant::now();
    let chunk_frames = u64::from(rate / CHUNKS_PER_SECOND);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = Duration::from_secs_f64(n as f64 / f64::from(rate));
        let ahead = start + due;
        let now = Instant::now();
        if ahead > now + LEAD {
            thread::sleep((ahead - now - LEAD).min(Duration::from_millis(10)));
            continue;
        }
        let chunk: Vec<u8> = (n..n + chunk_frames)
            .flat_map(|i| {
                let t = i as f64 / f64::from(rate);
                let s = (amplitude * (std::f64::consts::TAU * hz * t).sin()).round() as i16;
                let [a, b] = s.to_le_bytes();
                [a, b, a, b]
            })
            .collect();
        if file.write_all(&chunk).is_err() {
            break;
        }
        n += chunk_frames;
    }
}

/// A `pacat` playing a tone, and the thread writing it; both stopped when dropped.
pub struct Tone {
    pacat: Spawned,
    stop: Arc<AtomicBool>,
    feeder: Option<JoinHandle<()>>,
}

impl Tone {
    /// Waits up to `limit` for pacat to exit by itself (its sink went away).
    pub fn wait_exit(mut self, limit: Duration) -> Result<(), HarnessError> {
        self.pacat.wait_timeout(limit).map(drop)
    }
}

impl Drop for Tone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(e) = self.pacat.terminate(process::DROP_GRACE) {
            eprintln!("could not stop pacat: {e}");
        }
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
    }
}
