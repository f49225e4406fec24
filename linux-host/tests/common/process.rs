//! Child processes and sockets for tests, every wait bounded in time.
//!
//! Each child runs in its own process group (`setpgid(0, 0)` via `Command::process_group`), so
//! a signal reaches the whole tree it starts (`runuser` → `cvlc`). Signals are only ever sent
//! while the group leader has not been reaped: an unreaped child keeps its pid (and so the group
//! id) reserved, so the signal cannot hit an unrelated process that reused the number.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::HarnessError;

/// How long [`Spawned`]'s `Drop` waits after SIGTERM before SIGKILL.
pub const DROP_GRACE: Duration = Duration::from_secs(3);
/// Poll interval of the bounded waits: short against the 20 ms audio period, long enough to
/// cost nothing on a shared 2-core machine.
const POLL: Duration = Duration::from_millis(5);
/// How much of a child's output log goes into error messages.
const LOG_TAIL: u64 = 2000;

/// A running child process, terminated (SIGTERM, then SIGKILL) when dropped.
pub struct Spawned {
    child: Child,
    program: String,
    log_path: PathBuf,
    started: Instant,
    status: Option<ExitStatus>,
}

/// Environment variable naming the command that runs the zerocast under test, as words
/// separated by spaces: `ci/run.sh cross` sets it to `qemu-arm -cpu arm1176 …/zerocast` to run
/// these tests against the Pi build under emulation. Unset: the binary cargo built for the host.
pub const ZEROCAST_COMMAND_ENV: &str = "ZEROCAST_E2E_COMMAND";

/// The program and leading arguments that run zerocast (see [`ZEROCAST_COMMAND_ENV`]).
pub fn zerocast_argv() -> Vec<String> {
    match std::env::var(ZEROCAST_COMMAND_ENV) {
        Ok(words) if !words.trim().is_empty() => {
            words.split_whitespace().map(str::to_owned).collect()
        }
        _ => vec![env!("CARGO_BIN_EXE_zerocast").to_owned()],
    }
}

/// A [`Command`] that runs zerocast (see [`zerocast_argv`]); the caller adds its arguments.
pub fn zerocast_command() -> Command {
    let argv = zerocast_argv();
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

/// Starts `program` with `args` and extra `env`, stdin closed, and stdout and stderr both written
/// to `log_path` (gst-launch reports its pipeline state on stdout).
pub fn spawn<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    env: &[(&str, &str)],
    log_path: &Path,
) -> Result<Spawned, HarnessError> {
    let stderr = File::create(log_path)
        .map_err(|e| HarnessError::io(format!("create {}", log_path.display()), e))?;
    let stdout = stderr
        .try_clone()
        .map_err(|e| HarnessError::io(format!("dup {}", log_path.display()), e))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .spawn()
        .map_err(|e| HarnessError::io(format!("start {program}"), e))?;
    Ok(Spawned {
        child,
        program: program.to_owned(),
        log_path: log_path.to_owned(),
        started: Instant::now(),
        status: None,
    })
}

impl Spawned {
    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When it was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Sends `signal` to the child's process group. Fails once the child has been reaped.
    pub fn signal(&mut self, signal: Signal) -> Result<(), HarnessError> {
        if self.status.is_some() {
            return Err(self.failed(format!("cannot send {signal}: already exited")));
        }
        let pid = i32::try_from(self.child.id())
            .map_err(|_| self.failed("pid out of range".to_owned()))?;
        killpg(Pid::from_raw(pid), signal)
            .map_err(|e| HarnessError::io(format!("send {signal} to {}", self.program), e.into()))
    }

    /// Whether the child is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> Result<bool, HarnessError> {
        Ok(self.try_status()?.is_none())
    }

    fn try_status(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(|e| HarnessError::io(format!("wait for {}", self.program), e))?;
        }
        Ok(self.status)
    }

    /// Waits up to `limit` for the child to exit by itself.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<ExitStatus, HarnessError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("{} to exit", self.program),
                    after: limit,
                });
            }
            thread::sleep(POLL);
        }
    }

    /// Sends `signal` and waits up to `grace` for the child to exit; if it does not, SIGKILL.
    /// Returns the exit status and whether the signal alone was enough.
    pub fn stop(
        &mut self,
        signal: Signal,
        grace: Duration,
    ) -> Result<(ExitStatus, bool), HarnessError> {
        if let Some(status) = self.try_status()? {
            return Ok((status, true));
        }
        self.signal(signal)?;
        match self.wait_timeout(grace) {
            Ok(status) => Ok((status, true)),
            Err(HarnessError::Timeout { .. }) => {
                self.signal(Signal::SIGKILL)?;
                // SIGKILL cannot be caught; a bounded wait still guards against a stuck kernel.
                Ok((self.wait_timeout(grace)?, false))
            }
            Err(e) => Err(e),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, HarnessError> {
        self.stop(Signal::SIGTERM, grace).map(|(status, _)| status)
    }

    /// The last part of the child's output log, for error messages.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path, LOG_TAIL)
    }

    /// The whole output log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// A [`HarnessError::Failed`] about this child, carrying its log tail.
    pub fn failed(&self, what: String) -> HarnessError {
        HarnessError::Failed {
            what: format!("{}: {what}", self.program),
            detail: format!("log ({}):\n{}", self.log_path.display(), self.log_tail()),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Err(e) = self.terminate(DROP_GRACE) {
            eprintln!("could not stop {}: {e}", self.program);
        }
    }
}

fn read_tail(path: &Path, max: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // Progress lines end in '\r'; show them as lines.
        Ok(String::from_utf8_lossy(&bytes).replace('\r', "\n"))
    };
    read().unwrap_or_else(|e| format!("<{e}>"))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> Result<u16, HarnessError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| HarnessError::io("bind 127.0.0.1:0", e))
}

/// Polls `ready` every few milliseconds until it returns true or `limit` passes.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> Result<bool, HarnessError>,
) -> Result<(), HarnessError> {
    let deadline = Instant::now() + limit;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                after: limit,
            });
        }
        thread::sleep(POLL);
    }
}

/// Waits until a TCP connection to 127.0.0.1:`port` succeeds (the probe connection is closed
/// at once). Fails after `limit`, or at once if `owner` — the process that should listen —
/// exits first; both errors carry its log.
pub fn wait_for_port(port: u16, limit: Duration, owner: &mut Spawned) -> Result<(), HarnessError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut exited = false;
    let waited = wait_until(&format!("127.0.0.1:{port} to accept"), limit, || {
        exited = !owner.is_running()?;
        Ok(exited || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
    });
    match waited {
        Ok(()) if exited => Err(owner.failed("exited before it listened".to_owned())),
        Ok(()) => Ok(()),
        Err(e) => Err(owner.failed(e.to_string())),
    }
}

/// Waits until process `pid` holds an established TCP connection to 127.0.0.1:`port` and
/// returns when it was first seen (within a few milliseconds).
///
/// Reads `/proc/<pid>/fd` for the process's socket inodes and `/proc/net/tcp` for established
/// sockets whose remote end is the port (proc(5)): this tells when a player actually connected,
/// separately from its start-up time, without touching the connection.
pub fn wait_connected(pid: u32, port: u16, limit: Duration) -> Result<Instant, HarnessError> {
    let mut seen = None;
    wait_until(
        &format!("pid {pid} to connect to 127.0.0.1:{port}"),
        limit,
        || {
            let inodes = socket_inodes(pid);
            let connected =
                !inodes.is_empty() && established_inodes(port).any(|i| inodes.contains(&i));
            if connected {
                seen = Some(Instant::now());
            }
            Ok(connected)
        },
    )?;
    seen.ok_or_else(|| HarnessError::Failed {
        what: format!("pid {pid} connection"),
        detail: "not observed".to_owned(),
    })
}

/// Inodes of the sockets process `pid` has open (`/proc/<pid>/fd/*` → `socket:[inode]`).
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Inodes of established IPv4 TCP sockets whose remote end is 127.0.0.1:`port`.
///
/// `/proc/net/tcp` columns: `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout
/// inode`; addresses are hex `IP:PORT` with the IP in host byte order, state 01 = ESTABLISHED.
fn established_inodes(port: u16) -> impl Iterator<Item = u64> {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    let inodes: Vec<u64> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let matches = fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01");
            matches.then(|| fields.get(9)?.parse().ok()).flatten()
        })
        .collect();
    inodes.into_iter()
}

/// Resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status, proc(5)); 0 if it is
/// gone.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
