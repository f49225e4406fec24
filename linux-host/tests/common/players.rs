//! Real RTMP players, run headless, each leaving its decoded audio as a 16-bit WAV file.
//!
//! Command lines are those measured in protocol-notes §4 ("Headless commands that worked").
//! Two ways of timing a recording (see [`Timing`]) make "the decoded duration matches the time
//! played" checkable for every player; [`Recording::expected_duration`] holds the rule.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::process::{self, Spawned};
use super::server::Server;
use super::{make_dir, tools_available, HarnessError};

/// How long a player may take to connect after it was started (VLC and GStreamer load plugins
/// first).
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// How long a player may take to finish after SIGINT before it is killed. GStreamer drains on
/// EOS in milliseconds, but `rtmpsrc` sometimes never gets the forced EOS through (seen here in
/// about one run in three when two pipelines run at once: stuck after "Forcing EOS on the
/// pipeline"); what it wrote is still there (the filesink is unbuffered, so only what sits in
/// the pipeline's queue is lost), so the recording is used, marked as killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Extra time a self-timed player may take beyond what it records: libavformat-based players
/// probe an audio-only RTMP stream for ~5 s before the first output (protocol-notes §6).
const SELF_TIMED_SLACK: Duration = Duration::from_secs(20);

/// A player program and how it is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Player {
    /// `ffmpeg -i URL -t SECS -f wav`: default probing, stops itself after SECS of output.
    Ffmpeg,
    /// ffmpeg with `-fflags nobuffer -probesize 32 -analyzeduration 0`, stopped by SIGINT.
    FfmpegLowDelay,
    /// `rtmpdump -v` (librtmp) to FLV, stopped by SIGINT, then decoded to WAV by ffmpeg.
    Rtmpdump,
    /// VLC 3 (`cvlc`, libavformat's RTMP) to the `afile` audio output; run as `nobody` when
    /// the tests run as root because VLC refuses root.
    Vlc,
    /// [`Player::Vlc`] with `--network-caching=2000`, the setting docs/architecture.md ("VLC 3
    /// and low bit rates") gives VLC users of 128 kbit/s renditions: its 32 KiB blocking reads
    /// take ~2 s to fill at that rate, more than its default 1 s cache.
    VlcCache2s,
    /// GStreamer `rtmpsrc` (librtmp) → flvdemux → decodebin → wavenc, stopped by SIGINT (`-e`).
    GstRtmpsrc,
    /// GStreamer `rtmp2src` (GStreamer's own RTMP client), otherwise as [`Player::GstRtmpsrc`].
    GstRtmp2src,
}

/// How a player's recording length is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// The player stops itself after recording the requested duration of audio (ffmpeg `-t`,
    /// VLC `--run-time`, which counts from the start of playback). Its WAV must hold that much;
    /// the wall time it took shows the audio did not arrive faster than real time.
    SelfTimed,
    /// The harness stops the player with SIGINT a fixed wall time after its TCP connection to
    /// the server was established (seen in `/proc`, so player start-up is not counted). The WAV
    /// must hold that wall time of audio plus the server's join backlog.
    Wall,
}

impl Player {
    /// Short name for file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Player::Ffmpeg => "ffmpeg",
            Player::FfmpegLowDelay => "ffmpeg-lowdelay",
            Player::Rtmpdump => "rtmpdump",
            Player::Vlc => "vlc",
            Player::VlcCache2s => "vlc-cache2s",
            Player::GstRtmpsrc => "gst-rtmpsrc",
            Player::GstRtmp2src => "gst-rtmp2src",
        }
    }

    /// How the recording length is set.
    pub fn timing(self) -> Timing {
        match self {
            Player::Ffmpeg | Player::Vlc | Player::VlcCache2s => Timing::SelfTimed,
            Player::FfmpegLowDelay
            | Player::Rtmpdump
            | Player::GstRtmpsrc
            | Player::GstRtmp2src => Timing::Wall,
        }
    }

    /// Programs it needs (rtmpdump's FLV is decoded by ffmpeg).
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Player::Ffmpeg | Player::FfmpegLowDelay => &["ffmpeg"],
            Player::Rtmpdump => &["rtmpdump", "ffmpeg"],
            Player::Vlc | Player::VlcCache2s => &["cvlc", "runuser"],
            Player::GstRtmpsrc | Player::GstRtmp2src => &["gst-launch-1.0"],
        }
    }
}

/// One finished playback.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Who played.
    pub player: Player,
    /// The decoded audio.
    pub wav: PathBuf,
    /// For [`Timing::SelfTimed`] the requested duration; for [`Timing::Wall`] the wall time
    /// from the player's connection to the stop signal.
    pub played: Duration,
    /// Wall time from start to exit of the player process.
    pub elapsed: Duration,
    /// The player ignored SIGINT and was killed, so its file may be unfinalized.
    pub killed: bool,
}

impl Recording {
    /// The duration the WAV should have, given the server's join backlog (see [`Timing`]).
    pub fn expected_duration(&self, join: Duration) -> Duration {
        match self.player.timing() {
            Timing::SelfTimed => self.played,
            Timing::Wall => self.played + join,
        }
    }
}

/// Plays `server`'s stream with `player` for `secs` and returns the recording, written under
/// `dir` (created if needed). `Ok(None)`: a needed tool is missing and `CI` is unset.
pub fn play(
    player: Player,
    server: &Server,
    secs: Duration,
    dir: &Path,
) -> Result<Option<Recording>, HarnessError> {
    play_url(player, &server.url, server.port, secs, dir)
}

/// Plays `url` (served on 127.0.0.1:`port`) with `player` for `secs`, like [`play`]: for
/// streams other than the server's RTMP one (HTTP mounts).
pub fn play_url(
    player: Player,
    url: &str,
    port: u16,
    secs: Duration,
    dir: &Path,
) -> Result<Option<Recording>, HarnessError> {
    if !tools_available(player.tools())? {
        return Ok(None);
    }
    make_dir(dir, 0o755)?;
    let name = player.name();
    let log = dir.join(format!("{name}.log"));
    let flv = dir.join(format!("{name}.flv"));
    let wav = if matches!(player, Player::Vlc | Player::VlcCache2s) {
        // VLC may run as `nobody`; it needs a directory that user can write.
        let out = dir.join("vlc-out");
        make_dir(&out, 0o777)?;
        out.join(format!("{name}.wav"))
    } else {
        dir.join(format!("{name}.wav"))
    };
    let command = command_line(player, url, secs, &wav, &flv)?;
    let (program, args) = command.split_first().ok_or_else(|| HarnessError::Failed {
        what: name.to_owned(),
        detail: "empty command line".to_owned(),
    })?;
    let child = process::spawn(program, args, &[], &log)?;
    let recording = match player.timing() {
        Timing::SelfTimed => self_timed(player, child, secs, &wav)?,
        Timing::Wall => wall_timed(player, child, port, secs, &wav)?,
    };
    if player == Player::Rtmpdump {
        flv_to_wav(&flv, &wav, &dir.join(format!("{name}-decode.log")))?;
    }
    Ok(Some(recording))
}

/// The program and arguments that make `player` play `url` into `wav` (rtmpdump: into `flv`).
fn command_line(
    player: Player,
    url: &str,
    secs: Duration,
    wav: &Path,
    flv: &Path,
) -> Result<Vec<String>, HarnessError> {
    // Command lines are written as text and split at spaces, so no word may contain one.
    let (wav, flv) = (wav.display().to_string(), flv.display().to_string());
    if [url, &wav, &flv]
        .iter()
        .any(|word| word.contains(char::is_whitespace))
    {
        return Err(HarnessError::Failed {
            what: format!("{} command line", player.name()),
            detail: format!("whitespace in {url}, {wav} or {flv} (set TMPDIR without spaces)"),
        });
    }
    let seconds = format!("{:.3}", secs.as_secs_f64());
    let words = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
    Ok(match player {
        Player::Ffmpeg => words(&format!(
            "ffmpeg -nostdin -y -i {url} -t {seconds} -f wav {wav}"
        )),
        Player::FfmpegLowDelay => words(&format!(
            "ffmpeg -nostdin -y -fflags nobuffer -probesize 32 -analyzeduration 0 -i {url} \
             -f wav {wav}"
        )),
        Player::Rtmpdump => words(&format!("rtmpdump -r {url} -v -o {flv}")),
        Player::Vlc | Player::VlcCache2s => {
            let mut vlc = words(&format!(
                "cvlc --play-and-exit --run-time {seconds} --aout afile --audiofile-file {wav} \
                 --audiofile-format s16 {url} vlc://quit"
            ));
            if player == Player::VlcCache2s {
                vlc.insert(1, "--network-caching=2000".to_owned());
            }
            if running_as_root()? {
                let mut runuser = words("runuser -u nobody --");
                runuser.extend(vlc);
                runuser
            } else {
                vlc
            }
        }
        Player::GstRtmpsrc | Player::GstRtmp2src => {
            // The location is one argv element: gst-launch escapes its space, so " live=1"
            // stays part of it (librtmp's URL option syntax).
            let source = if player == Player::GstRtmpsrc {
                ["rtmpsrc".to_owned(), format!("location={url} live=1")]
            } else {
                ["rtmp2src".to_owned(), format!("location={url}")]
            };
            let mut line = words("gst-launch-1.0 -e");
            line.extend(source);
            line.extend(words(&format!(
                "! flvdemux name=d d.audio ! queue ! decodebin ! audioconvert \
                 ! audio/x-raw,format=S16LE ! wavenc \
                 ! filesink buffer-mode=unbuffered location={wav}"
            )));
            line
        }
    })
}

/// VLC refuses to run as root (protocol-notes §4), so as root it runs as `nobody`.
fn running_as_root() -> Result<bool, HarnessError> {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .map_err(|e| HarnessError::io("stat /proc/self", e))
}

/// Runs `n` instances of `player` at once against `server`, each in `dir/<i>/`.
/// `Ok(None)`: a needed tool is missing and `CI` is unset.
pub fn play_concurrently(
    player: Player,
    server: &Server,
    secs: Duration,
    n: usize,
    dir: &Path,
) -> Result<Option<Vec<Recording>>, HarnessError> {
    let results: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let dir = dir.join(i.to_string());
                scope.spawn(move || play(player, server, secs, &dir))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(HarnessError::Failed {
                        what: format!("{} player thread", player.name()),
                        detail: "panicked".to_owned(),
                    })
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

fn self_timed(
    player: Player,
    mut child: Spawned,
    secs: Duration,
    wav: &Path,
) -> Result<Recording, HarnessError> {
    let status = child.wait_timeout(secs + SELF_TIMED_SLACK)?;
    if !status.success() {
        return Err(child.failed(format!("exited with {status}")));
    }
    Ok(Recording {
        player,
        wav: wav.to_owned(),
        played: secs,
        elapsed: child.started().elapsed(),
        killed: false,
    })
}

fn wall_timed(
    player: Player,
    mut child: Spawned,
    port: u16,
    secs: Duration,
    wav: &Path,
) -> Result<Recording, HarnessError> {
    let connected = process::wait_connected(child.pid(), port, CONNECT_LIMIT)
        .map_err(|e| child.failed(e.to_string()))?;
    thread::sleep((connected + secs).saturating_duration_since(Instant::now()));
    if !child.is_running()? {
        return Err(child.failed("exited before it was stopped".to_owned()));
    }
    let stopped = Instant::now();
    // SIGINT is the stop every one of them handles by finishing its file: ffmpeg writes the
    // trailer, rtmpdump closes the FLV, gst-launch -e sends EOS so wavenc fixes its header.
    let (_, clean) = child.stop(Signal::SIGINT, STOP_GRACE)?;
    Ok(Recording {
        player,
        wav: wav.to_owned(),
        played: stopped - connected,
        elapsed: child.started().elapsed(),
        killed: !clean,
    })
}

fn flv_to_wav(flv: &Path, wav: &Path, log: &Path) -> Result<(), HarnessError> {
    let flv_arg = flv.display().to_string();
    let wav_arg = wav.display().to_string();
    let args = ["-nostdin", "-y", "-i", &flv_arg, "-f", "wav", &wav_arg];
    let mut decoder = process::spawn("ffmpeg", &args, &[], log)?;
    let status = decoder.wait_timeout(Duration::from_secs(30))?;
    if status.success() {
        Ok(())
    } else {
        Err(decoder.failed(format!("decoding {flv_arg} exited with {status}")))
    }
}
