//! zerocast as a `Type=notify` systemd service, with the test as the service manager: the test
//! binds the notification socket, starts zerocast with `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
//! `JOURNAL_STREAM` set as systemd would, and reads what it is told.
//! - `READY=1` (with a `STATUS=`) once zerocast listens, `STATUS=` lines with the listeners,
//!   `WATCHDOG=1` at half the watchdog timeout, `RELOADING=1` then `READY=1` on SIGHUP,
//!   `STOPPING=1` on SIGTERM;
//! - a stopped process (SIGSTOP: a hung event loop as systemd sees it) sends no `WATCHDOG=1` for
//!   more than two intervals (systemd would now restart it), and sends again after SIGCONT;
//! - the log written to "the journal" has syslog priority prefixes and no timestamps of its own;
//! - an abstract socket name (`@name`) works as well.

mod common;

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::live::Zerocast;
use common::{process, HarnessError, TempDir};

/// `WATCHDOG_USEC` given to zerocast: it must ping every 200 ms.
const WATCHDOG_USEC: u64 = 400_000;
const INTERVAL: Duration = Duration::from_micros(WATCHDOG_USEC / 2);
/// How long any expected notification may take (a shared 2-core machine, or qemu-arm).
const LIMIT: Duration = Duration::from_secs(10);

fn fail(what: &str, detail: String) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail,
    }
}

/// The service manager's end: every datagram received, in order.
struct Manager {
    socket: UnixDatagram,
    received: Vec<String>,
}

impl Manager {
    fn new(socket: UnixDatagram) -> Manager {
        Manager {
            socket,
            received: Vec::new(),
        }
    }

    /// Receives datagrams until one has a line for which `wanted` is true, or `limit` passes
    /// (`None` then); returns that datagram.
    fn wait_for(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, HarnessError> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|e| HarnessError::io("set_read_timeout", e))?;
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.received.push(text.clone());
                    if text.lines().any(&wanted) {
                        return Ok(Some(text));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(HarnessError::io("recv on the notify socket", e)),
            }
        }
    }

    /// Like [`Self::wait_for`], failing with everything received when nothing matched.
    fn expect(
        &mut self,
        what: &str,
        wanted: impl Fn(&str) -> bool,
        zc: &Zerocast,
    ) -> Result<String, HarnessError> {
        self.wait_for(LIMIT, wanted)?.ok_or_else(|| {
            zc.process.failed(format!(
                "no {what} within {LIMIT:?}; received: {:?}",
                self.received
            ))
        })
    }

    /// Reads every datagram already queued, without waiting.
    fn drain(&mut self) -> Result<usize, HarnessError> {
        self.socket
            .set_nonblocking(true)
            .map_err(|e| HarnessError::io("set_nonblocking", e))?;
        let mut buf = [0u8; 4096];
        let mut n = 0;
        while self.socket.recv(&mut buf).is_ok() {
            n += 1;
        }
        self.socket
            .set_nonblocking(false)
            .map_err(|e| HarnessError::io("set_nonblocking", e))?;
        Ok(n)
    }
}

/// The state letter of process `pid` (`R`, `S`, `T` for stopped, …), from /proc/PID/stat.
fn process_state(pid: u32) -> Result<char, HarnessError> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| HarnessError::io(format!("read /proc/{pid}/stat"), e))?;
    // "pid (comm) S ...": comm may hold spaces and parentheses, so split after the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .ok_or_else(|| fail("/proc stat", stat.clone()))
}

/// `DEVICE:INODE` of a file, as systemd writes `JOURNAL_STREAM`.
fn dev_ino(path: &Path) -> Result<String, HarnessError> {
    let m =
        fs::metadata(path).map_err(|e| HarnessError::io(format!("stat {}", path.display()), e))?;
    Ok(format!("{}:{}", m.dev(), m.ino()))
}

#[test]
fn ready_status_and_a_watchdog_that_stops_with_the_loop() -> Result<(), HarnessError> {
    TempDir::run("systemd", |dir| {
        let socket_path = dir.join("notify");
        let socket = UnixDatagram::bind(&socket_path)
            .map_err(|e| HarnessError::io(format!("bind {}", socket_path.display()), e))?;
        let mut manager = Manager::new(socket);
        // zerocast's stderr is this file (Zerocast::start truncates it, same inode): "the journal".
        let log = dir.join("zerocast.log");
        fs::write(&log, b"").map_err(|e| HarnessError::io("create the log", e))?;
        let journal = dev_ino(&log)?;
        let usec = WATCHDOG_USEC.to_string();
        let notify = socket_path.display().to_string();
        let config = dir.join("zerocast.toml");
        fs::write(&config, "source = \"tone:440\"\n")
            .map_err(|e| HarnessError::io("write config", e))?;
        let config_arg = config.display().to_string();
        let mut zc = Zerocast::start(
            &["--config", &config_arg],
            &[
                ("NOTIFY_SOCKET", &notify),
                ("WATCHDOG_USEC", &usec),
                ("JOURNAL_STREAM", &journal),
                (zerocast::STATUS_SECS_ENV, "1"),
            ],
            None,
            dir,
        )?;

        let ready = manager.expect("READY=1", |l| l == "READY=1", &zc)?;
        if !ready.lines().any(|l| l.starts_with("STATUS=listeners=0 ")) {
            return Err(fail("READY datagram", format!("no STATUS line: {ready:?}")));
        }
        // Nothing but READY may come first: the manager must not see a ping before READY.
        if manager.received.len() != 1 {
            return Err(fail("first datagram", format!("{:?}", manager.received)));
        }
        manager.expect("WATCHDOG=1", |l| l == "WATCHDOG=1", &zc)?;
        let status =
            manager.expect("a status line", |l| l.starts_with("STATUS=listeners="), &zc)?;
        println!("systemd: READY, WATCHDOG and {status:?} received");

        // Stopped: a hung loop as the manager sees it. Once the kernel reports it stopped,
        // nothing more can be sent; what was sent before is drained.
        zc.process.signal(Signal::SIGSTOP)?;
        let pid = zc.process.pid();
        process::wait_until("zerocast to be stopped", LIMIT, || {
            Ok(process_state(pid)? == 'T')
        })?;
        manager.drain()?;
        let silent = 3 * INTERVAL;
        if let Some(ping) = manager.wait_for(silent, |l| l == "WATCHDOG=1")? {
            return Err(fail(
                "stopped zerocast",
                format!("sent {ping:?} within {silent:?} while stopped"),
            ));
        }
        println!("systemd: no WATCHDOG=1 for {silent:?} while stopped (interval {INTERVAL:?})");
        zc.process.signal(Signal::SIGCONT)?;
        manager.expect("WATCHDOG=1 after SIGCONT", |l| l == "WATCHDOG=1", &zc)?;

        // `systemctl reload`: RELOADING=1, then READY=1 once the configuration is applied.
        zc.process.signal(Signal::SIGHUP)?;
        manager.expect("RELOADING=1", |l| l == "RELOADING=1", &zc)?;
        manager.expect("READY=1 after the reload", |l| l == "READY=1", &zc)?;
        // A file that does not parse: READY=1 again (the running configuration serves), and
        // STATUS= says the file was refused, for `systemctl status`.
        fs::write(&config, "source = = \"tone\"\n")
            .map_err(|e| HarnessError::io("write config", e))?;
        zc.process.signal(Signal::SIGHUP)?;
        manager.expect("RELOADING=1", |l| l == "RELOADING=1", &zc)?;
        let refused = manager.expect(
            "STATUS= of a refused file",
            |l| l.starts_with("STATUS=configuration not reloaded"),
            &zc,
        )?;
        if !refused.lines().any(|l| l == "READY=1") {
            return Err(fail("refused reload", format!("no READY=1: {refused:?}")));
        }
        println!("systemd: a refused file: {refused:?}");

        zc.stop_cleanly()?;
        manager.expect("STOPPING=1", |l| l == "STOPPING=1", &zc)?;

        // The journal's view: priority prefixes, no "[   12.345]" timestamps.
        let text = zc.process.log();
        let lines: Vec<&str> = text.lines().collect();
        let bad: Vec<&&str> = lines
            .iter()
            .filter(|l| !(l.starts_with('<') && l.as_bytes().get(2) == Some(&b'>')))
            .collect();
        if lines.is_empty() || !bad.is_empty() {
            return Err(fail(
                "journal log format",
                format!("lines without a priority: {bad:?}"),
            ));
        }
        if !lines
            .iter()
            .any(|l| l.starts_with("<6>zerocast") && l.contains("listeners="))
        {
            return Err(fail(
                "journal log",
                format!("no info status line in {text}"),
            ));
        }
        Ok(())
    })
}

#[test]
fn abstract_notify_socket_and_no_watchdog_when_not_asked() -> Result<(), HarnessError> {
    TempDir::run("systemd-abstract", |dir| {
        let name = format!("zerocast-e2e-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| HarnessError::io("abstract address", e))?;
        let socket =
            UnixDatagram::bind_addr(&addr).map_err(|e| HarnessError::io("bind @name", e))?;
        let mut manager = Manager::new(socket);
        let notify = format!("@{name}");
        // WATCHDOG_PID names another process: the watchdog is not meant for zerocast.
        let mut zc = Zerocast::start(
            &["--source", "tone:440"],
            &[
                ("NOTIFY_SOCKET", &notify),
                ("WATCHDOG_USEC", "200000"),
                ("WATCHDOG_PID", "1"),
                (zerocast::STATUS_SECS_ENV, "1"),
            ],
            None,
            dir,
        )?;
        manager.expect("READY=1", |l| l == "READY=1", &zc)?;
        // The first status line comes a second later: ten watchdog intervals had it been asked.
        manager.expect("a status line", |l| l.starts_with("STATUS=listeners="), &zc)?;
        zc.stop_cleanly()?;
        manager.expect("STOPPING=1", |l| l == "STOPPING=1", &zc)?;
        let pings = manager
            .received
            .iter()
            .filter(|d| d.contains("WATCHDOG=1"))
            .count();
        if pings != 0 {
            return Err(fail(
                "WATCHDOG_PID=1",
                format!("{pings} pings: {:?}", manager.received),
            ));
        }
        // Not the journal (JOURNAL_STREAM unset): timestamps as usual.
        if !zc.process.log().starts_with('[') {
            return Err(fail("plain log", zc.process.log()));
        }
        Ok(())
    })
}
