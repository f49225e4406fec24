//! Child processes (each in its own process group, stopped when dropped, every wait bounded)
//! and what `/proc` says about them: CPU time and memory of a whole process tree, and how busy
//! the machine was.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a child gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

/// A running child, stopped (SIGTERM to its group, then SIGKILL) when dropped.
pub struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
    status: Option<std::process::ExitStatus>,
}

/// What a child's standard streams are connected to.
pub struct Stdio3 {
    /// A pipe the caller writes (pacat's input, zerocast's stdin source).
    pub stdin_piped: bool,
    /// A pipe the caller reads (a player's decoded PCM, the load client's report).
    pub stdout_piped: bool,
}

impl Stdio3 {
    /// Everything to the log file, stdin closed.
    pub const LOG: Stdio3 = Stdio3 {
        stdin_piped: false,
        stdout_piped: false,
    };
}

/// Starts `program args` with `env` added, stderr (and stdout unless piped) into `log`.
pub fn spawn(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
    stdio: Stdio3,
) -> Result<Proc, String> {
    let err = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let out = if stdio.stdout_piped {
        Stdio::piped()
    } else {
        Stdio::from(
            err.try_clone()
                .map_err(|e| format!("dup {}: {e}", log.display()))?,
        )
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdio.stdin_piped {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .spawn()
        .map_err(|e| format!("start {program}: {e}"))?;
    Ok(Proc {
        child,
        name: program.rsplit('/').next().unwrap_or(program).to_owned(),
        log: log.to_owned(),
        status: None,
    })
}

impl Proc {
    /// Process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin pipe, once.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's stdout pipe, once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Whether it still runs (reaps it otherwise).
    pub fn running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            Err(_) => false,
        }
    }

    /// Waits up to `limit` for it to exit; whether it exited with status 0.
    pub fn succeeded(&mut self, limit: Duration) -> bool {
        self.wait(limit) && self.status.is_some_and(|s| s.success())
    }

    /// Waits up to `limit` for it to exit by itself; whether it did.
    pub fn wait(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.running() {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// SIGTERM to the group, SIGKILL after [`GRACE`]; whether SIGTERM was enough.
    pub fn stop(&mut self) -> bool {
        if !self.running() {
            return true;
        }
        self.signal(Signal::SIGTERM);
        if self.wait(GRACE) {
            return true;
        }
        self.signal(Signal::SIGKILL);
        self.wait(GRACE);
        false
    }

    /// Sends `signal` to the group while the leader is unreaped (so the id is still ours).
    pub fn signal(&mut self, signal: Signal) {
        if self.running() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = killpg(Pid::from_raw(pid), signal);
            }
        }
    }

    /// The whole log.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// An error about this process with the end of its log.
    pub fn failed(&self, what: &str) -> String {
        let log = self.log();
        let tail: String = log
            .chars()
            .rev()
            .take(1500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "{} {what}; log {}:\n{}",
            self.name,
            self.log.display(),
            tail.replace('\r', "\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A 127.0.0.1 port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))
}

/// Waits until 127.0.0.1:`port` accepts, failing when `owner` exits or `limit` passes.
pub fn wait_port(port: u16, limit: Duration, owner: &mut Proc) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if !owner.running() {
            return Err(owner.failed("exited before it listened"));
        }
        if Instant::now() >= deadline {
            return Err(owner.failed(&format!("did not listen on {port} within {limit:?}")));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `ready` until true or `limit` passes.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !ready() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields of `/proc/PID/stat` after the `(comm)` (which may contain spaces): field 3 of
/// proc(5) is index 0 here.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// `roots` and all their descendants, from the ppid field of every `/proc/PID/stat`.
pub fn tree(roots: &[u32]) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut all: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for &(pid, ppid) in &parents {
            if ppid == parent && !all.contains(&pid) {
                all.push(pid);
            }
        }
        i += 1;
    }
    all
}

/// (utime, stime) of every process of the tree, in seconds (all threads included).
pub fn cpu_seconds(roots: &[u32], ticks: f64) -> (f64, f64) {
    tree(roots)
        .iter()
        .filter_map(|&pid| {
            let f = stat_fields(pid)?;
            // proc(5): utime is field 14, stime 15 → indexes 11, 12 here.
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime / ticks, stime / ticks))
        })
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// CPU time of every thread of the tree, in seconds, from `/proc/PID/task/TID/schedstat` (its
/// first field: nanoseconds on a CPU). Unlike utime + stime it is not counted in clock ticks,
/// so a 6 s window resolves far below the 0.1 CPU-s per minute a tick is there.
pub fn cpu_time_exact(roots: &[u32]) -> f64 {
    let mut ns = 0u64;
    for pid in tree(roots) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            ns += fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// Context switches (voluntary + involuntary) of every thread of the tree: how often it slept
/// and woke, the cost a period-driven server pays even with nothing to send.
pub fn context_switches(roots: &[u32]) -> u64 {
    let mut n = 0;
    for pid in tree(roots) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
            n += kib_field(&status, "voluntary_ctxt_switches:")
                + kib_field(&status, "nonvoluntary_ctxt_switches:");
        }
    }
    n
}

/// Memory of a process tree, summed over its processes (KiB).
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// VmRSS: resident now (counts shared library pages in every process).
    pub rss_kib: u64,
    /// VmHWM: the peak resident size.
    pub hwm_kib: u64,
    /// PSS from smaps_rollup: shared pages divided among the processes sharing them.
    pub pss_kib: u64,
    /// Processes counted.
    pub processes: usize,
}

/// The number after `key` on its line of a `/proc` status-like file (0 when absent).
fn kib_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Memory of `roots` and their descendants now.
pub fn memory(roots: &[u32]) -> Memory {
    let mut m = Memory::default();
    for pid in tree(roots) {
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        m.rss_kib += kib_field(&status, "VmRSS:");
        m.hwm_kib += kib_field(&status, "VmHWM:");
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        m.pss_kib += kib_field(&rollup, "Pss:");
        m.processes += 1;
    }
    m
}

/// Busy and total jiffies of all CPUs (`/proc/stat` first line; idle + iowait are not busy).
pub fn machine_jiffies() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Fraction of the machine that was busy between two [`machine_jiffies`] readings.
pub fn busy_fraction(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total > 0.0 {
        busy / total
    } else {
        0.0
    }
}

/// Whether `program` is on PATH (or is a path to a file).
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Reads lines from a child's stdout in a thread, so waits on them can be bounded.
pub fn line_reader(stdout: ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        use io::BufRead;
        for line in io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
