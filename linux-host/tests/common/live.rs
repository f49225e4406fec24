//! The zerocast binary with any source and flags, and players the test drives itself: started,
//! signalled and waited for separately, so a test can stop the server under them, or read their
//! output while they play. (`server`/`players` run the tone source and stop players themselves.)
//!
//! Pipes between the test and a child are named FIFOs (mkfifo(3)) given to the child as a path:
//! every child then stays a [`Spawned`] — own process group, bounded waits, stopped on drop — and
//! the test opens its end without ever blocking unboundedly ([`open_fifo_writer`],
//! [`FifoReader`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;

use super::process::{self, Spawned};
use super::HarnessError;

/// How long zerocast may take to listen.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// Poll step of the FIFO waits: far below one 20 ms audio period.
const FIFO_POLL: Duration = Duration::from_millis(1);

/// A running zerocast, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Zerocast {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The players' URL for the default stream `live/audio`.
    pub url: String,
    /// The process (a `sh` that `exec`ed zerocast when stdin comes from a FIFO: same pid).
    pub process: Spawned,
}

impl Zerocast {
    /// Starts the binary with `--listen 127.0.0.1:<free port>`, `args` and extra `env`, its log
    /// (info level, zerocast's default) in `dir/zerocast.log`, and returns once it accepts
    /// connections.
    ///
    /// With `stdin` set, standard input is that FIFO: the shell opens it before `exec`, which
    /// blocks until a writer opens it ([`open_fifo_writer`] in another thread), so the port
    /// only opens after that.
    pub fn start(
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&Path>,
        dir: &Path,
    ) -> Result<Zerocast, HarnessError> {
        Self::start_under(&[], args, env, stdin, dir)
    }

    /// [`Self::start`] with `wrapper` (`strace …`) in front of the binary: the process is the
    /// wrapper's, zerocast its child in the same process group.
    pub fn start_under(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&Path>,
        dir: &Path,
    ) -> Result<Zerocast, HarnessError> {
        let port = process::free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut argv: Vec<String> = wrapper.iter().map(|w| (*w).to_owned()).collect();
        argv.extend(process::zerocast_argv());
        argv.extend(["--listen".to_owned(), listen]);
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        // RTMP only unless asked: HTTP's default port may be taken on a shared machine.
        if !args.contains(&"--http") {
            argv.extend(["--http".to_owned(), "off".to_owned()]);
        }
        let log = dir.join("zerocast.log");
        let mut process = match stdin {
            None => process::spawn(&argv[0], &argv[1..], env, &log)?,
            Some(fifo) => {
                // `sh -c 'exec "$@" < "$0"' FIFO zerocast ARGS…`: the redirection is the only
                // shell code; the path and arguments travel as parameters, never parsed.
                let mut sh_args = vec![
                    "-c".to_owned(),
                    "exec \"$@\" < \"$0\"".to_owned(),
                    fifo.display().to_string(),
                ];
                sh_args.extend(argv);
                process::spawn("sh", &sh_args, env, &log)?
            }
        };
        process::wait_for_port(port, STARTUP_LIMIT, &mut process)?;
        Ok(Zerocast {
            port,
            url: format!("rtmp://127.0.0.1:{port}/live/audio"),
            process,
        })
    }

    /// Stops zerocast with SIGTERM and fails (with its log) unless it exits 0 within
    /// [`process::DROP_GRACE`]: what a clean shutdown must look like.
    pub fn stop_cleanly(&mut self) -> Result<(), HarnessError> {
        let status = self.process.terminate(process::DROP_GRACE)?;
        if !status.success() {
            return Err(self
                .process
                .failed(format!("exited with {status} on SIGTERM")));
        }
        Ok(())
    }

    /// Counts the log lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.process
            .log()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits up to `limit` for a log line containing `needle`; fails (with the log) if zerocast
    /// exits or the time passes.
    pub fn wait_log(&mut self, needle: &str, limit: Duration) -> Result<Instant, HarnessError> {
        let waited = process::wait_until(&format!("zerocast to log {needle:?}"), limit, || {
            if !self.process.is_running()? {
                return Err(self.process.failed("exited".to_owned()));
            }
            Ok(self.log_count(needle) > 0)
        });
        waited
            .map(|()| Instant::now())
            .map_err(|e| self.process.failed(e.to_string()))
    }
}

/// ffmpeg publishing a `hz` sine with `codec` to `live/NAME` of `z`, endless or for `secs`
/// (then it ends by itself, and zerocast logs the publisher gone); its log is
/// `dir/publisher-LABEL.log`.
pub fn publish_tone(
    z: &Zerocast,
    name: &str,
    codec: &str,
    hz: u32,
    secs: Option<f64>,
    dir: &Path,
    label: &str,
) -> Result<Spawned, HarnessError> {
    let url = format!("rtmp://127.0.0.1:{}/live/{name}", z.port);
    let duration = secs.map_or(String::new(), |s| format!(":d={s}"));
    let source = format!("sine=f={hz}:r=44100{duration}");
    let log = dir.join(format!("publisher-{label}.log"));
    let args = [
        "-nostdin", "-re", "-f", "lavfi", "-i", &source, "-ac", "2", "-c:a", codec, "-f", "flv",
        &url,
    ];
    process::spawn("ffmpeg", &args, &[], &log)
}

/// Records `secs` of `url` with [`ffmpeg_wav`] into `dir/NAME.wav` (its log beside it) and reads
/// it back; fails if ffmpeg does not end well within 30 s.
pub fn record(
    url: &str,
    secs: Duration,
    dir: &Path,
    name: &str,
) -> Result<super::wav::Wav, HarnessError> {
    let wav = dir.join(format!("{name}.wav"));
    let mut player = ffmpeg_wav(url, secs, &wav, &dir.join(format!("{name}.log")))?;
    let status = player.wait_timeout(secs + Duration::from_secs(30))?;
    if !status.success() {
        return Err(player.failed(format!("player {name} exited with {status}")));
    }
    super::wav::Wav::read(&wav)
}

/// `ffmpeg -i URL -t SECS -f wav WAV` with default probing: stops itself after `secs` of
/// output, or at the end of the stream (the harness's [`super::players::Player::Ffmpeg`]).
pub fn ffmpeg_wav(
    url: &str,
    secs: Duration,
    wav: &Path,
    log: &Path,
) -> Result<Spawned, HarnessError> {
    let t = format!("{:.3}", secs.as_secs_f64());
    let wav = wav.display().to_string();
    let args = ["-nostdin", "-y", "-i", url, "-t", &t, "-f", "wav", &wav];
    process::spawn("ffmpeg", &args, &[], log)
}

/// `ffmpeg -i URL -f s16le OUT` with default settings: decoded samples, raw.
pub fn ffmpeg_raw(url: &str, out: &Path, log: &Path) -> Result<Spawned, HarnessError> {
    let out = out.display().to_string();
    let args = ["-nostdin", "-y", "-i", url, "-f", "s16le", &out];
    process::spawn("ffmpeg", &args, &[], log)
}

/// `rtmpdump -r URL -v -o FLV` (librtmp, live): the messages as received, in an FLV file.
pub fn rtmpdump_flv(url: &str, flv: &Path, log: &Path) -> Result<Spawned, HarnessError> {
    let flv = flv.display().to_string();
    process::spawn("rtmpdump", &["-r", url, "-v", "-o", &flv], &[], log)
}

/// Creates a FIFO at `path` (mode 0600).
pub fn make_fifo(path: &Path) -> Result<PathBuf, HarnessError> {
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|e| HarnessError::io(format!("mkfifo {}", path.display()), e.into()))?;
    Ok(path.to_owned())
}

/// Opens the FIFO at `path` for writing once a reader has it open, waiting at most `limit`;
/// the returned file blocks on write.
///
/// A nonblocking open for writing fails with ENXIO while there is no reader (fifo(7)), so this
/// polls instead of blocking forever on a reader that never comes.
pub fn open_fifo_writer(path: &Path, limit: Duration) -> Result<File, HarnessError> {
    let deadline = Instant::now() + limit;
    let file = loop {
        match open_nonblocking(path, false) {
            Ok(file) => break file,
            Err(e)
                if e.raw_os_error() == Some(Errno::ENXIO as i32) && Instant::now() < deadline =>
            {
                thread::sleep(FIFO_POLL)
            }
            Err(e) if e.raw_os_error() == Some(Errno::ENXIO as i32) => {
                return Err(HarnessError::Timeout {
                    what: format!("a reader of {}", path.display()),
                    after: limit,
                })
            }
            Err(e) => return Err(HarnessError::io(format!("open {}", path.display()), e)),
        }
    };
    fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty()))
        .map_err(|e| HarnessError::io(format!("fcntl {}", path.display()), e.into()))?;
    Ok(file)
}

/// Opens `path` with `O_NONBLOCK`, for reading or writing.
fn open_nonblocking(path: &Path, read: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(read)
        .write(!read)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
}

/// The read end of a FIFO, opened without waiting for a writer; reads poll until a deadline.
pub struct FifoReader {
    file: File,
    path: PathBuf,
}

impl FifoReader {
    /// Opens `path` for reading, nonblocking (succeeds with no writer yet, fifo(7)).
    pub fn open(path: &Path) -> Result<FifoReader, HarnessError> {
        let file = open_nonblocking(path, true)
            .map_err(|e| HarnessError::io(format!("open {}", path.display()), e))?;
        Ok(FifoReader {
            file,
            path: path.to_owned(),
        })
    }

    /// Reads some bytes into `buf`, polling every millisecond until there are some or
    /// `deadline` passes. A read of 0 means no writer (yet, or any more); that is waited out
    /// too, so this returns `Ok(0)` only at the deadline.
    pub fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, HarnessError> {
        loop {
            match self.file.read(buf) {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(HarnessError::io(format!("read {}", self.path.display()), e)),
            }
            if Instant::now() >= deadline {
                return Ok(0);
            }
            thread::sleep(FIFO_POLL);
        }
    }
}

/// How a short-lived zerocast run ended.
pub struct Finished {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr (the log).
    pub stderr: String,
}

/// Runs the zerocast binary with `args` to its end, stdout and stderr kept apart in
/// `dir/NAME.out` and `dir/NAME.err`; killed and an error after `limit`.
pub fn run_to_exit(
    args: &[&str],
    name: &str,
    dir: &Path,
    limit: Duration,
) -> Result<Finished, HarnessError> {
    run_to_exit_env(args, &[], name, dir, limit)
}

/// [`run_to_exit`] with extra environment variables.
pub fn run_to_exit_env(
    args: &[&str],
    env: &[(&str, &str)],
    name: &str,
    dir: &Path,
    limit: Duration,
) -> Result<Finished, HarnessError> {
    let create = |ext: &str| {
        let path = dir.join(format!("{name}.{ext}"));
        File::create(&path)
            .map(|f| (f, path.clone()))
            .map_err(|e| HarnessError::io(format!("create {}", path.display()), e))
    };
    let ((out, out_path), (err, err_path)) = (create("out")?, create("err")?);
    let mut child = process::zerocast_command()
        // No HTTP listener on the fixed default port unless `args` ask for one.
        .args(["--http", "off"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| HarnessError::io("start zerocast", e))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        let exited = child
            .try_wait()
            .map_err(|e| HarnessError::io("wait for zerocast", e))?;
        if let Some(status) = exited {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::Timeout {
                what: format!("zerocast {} to exit", args.join(" ")),
                after: limit,
            });
        }
        thread::sleep(Duration::from_millis(5));
    };
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))
    };
    Ok(Finished {
        status,
        stdout: read(&out_path)?,
        stderr: read(&err_path)?,
    })
}

/// Publishes 1 s of a 440 Hz PCM tone to `live/NAME` on 127.0.0.1:`port` with ffmpeg (its log in
/// `dir/publish-LABEL.log`) and returns whether ffmpeg succeeded: a refused publisher fails.
pub fn publish_once(port: u16, name: &str, dir: &Path, label: &str) -> Result<bool, HarnessError> {
    let url = format!("rtmp://127.0.0.1:{port}/live/{name}");
    let args = [
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=1",
        "-c:a",
        "pcm_s16le",
        "-ar",
        "44100",
        "-f",
        "flv",
        &url,
    ];
    let log = dir.join(format!("publish-{label}.log"));
    let mut publisher = process::spawn("ffmpeg", &args, &[], &log)?;
    Ok(publisher.wait_timeout(Duration::from_secs(20))?.success())
}
