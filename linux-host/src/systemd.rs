//! systemd integration without libsystemd: the notify protocol (sd_notify(3)) for `Type=notify`
//! units, the service watchdog, and telling whether stderr goes to the journal.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the `AF_UNIX` socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`). zerocast sends
//! `READY=1` once it listens, `STATUS=…` with every status line, `WATCHDOG=1` from a timer of
//! its event loop (so a loop that hangs stops sending it and systemd restarts the service) and
//! `STOPPING=1` on its way out. Outside systemd (`$NOTIFY_SOCKET` unset) nothing is sent.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Environment variable naming the notification socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// Environment variable holding the watchdog timeout in microseconds (`WatchdogSec=`).
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// Environment variable naming the process the watchdog is meant for.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";
/// Environment variable systemd sets when stderr (or stdout) is connected to the journal.
pub const JOURNAL_STREAM_ENV: &str = "JOURNAL_STREAM";

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
    failures: u64,
}

impl Notifier {
    /// The notifier the environment describes, or `None` when not started by a service manager
    /// that listens (`$NOTIFY_SOCKET` unset or empty). Fails when the variable names no usable
    /// socket address or no datagram socket can be created.
    pub fn from_env() -> io::Result<Option<Self>> {
        let Some(name) = std::env::var_os(NOTIFY_SOCKET_ENV).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let name = name.to_str().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is not UTF-8")
        })?;
        let addr = socket_addr(name)?;
        let watchdog = watchdog_interval(
            std::env::var(WATCHDOG_USEC_ENV).ok().as_deref(),
            std::env::var(WATCHDOG_PID_ENV).ok().as_deref(),
            std::process::id(),
        );
        Ok(Some(Self {
            socket: UnixDatagram::unbound()?,
            addr,
            watchdog,
            failures: 0,
        }))
    }

    /// How often to send `WATCHDOG=1`: half the manager's timeout, or `None` when no watchdog
    /// is asked of this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one notification (newline-separated `KEY=VALUE` assignments). The first failure
    /// is logged as a warning (under systemd it means the service will be seen as hung), later
    /// ones at debug level, so a manager that went away does not flood the log.
    pub fn send(&mut self, state: &str) {
        if let Err(e) = self.notify(state) {
            self.failures += 1;
            let first = self.failures == 1;
            let level = if first {
                log::Level::Warn
            } else {
                log::Level::Debug
            };
            log::log!(
                level,
                "systemd notification to {NOTIFY_SOCKET_ENV} failed: {e}"
            );
        }
    }

    fn notify(&self, state: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification datagram truncated",
            ));
        }
        Ok(())
    }
}

/// The address `NOTIFY_SOCKET` names: `@name` is an abstract socket, anything else a path.
fn socket_addr(name: &str) -> io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())
        }
        None if name.starts_with('/') => SocketAddr::from_pathname(name),
        // systemd also passes `vsock:` addresses (to VMs); zerocast has no use for them.
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET {name:?} is neither a path nor an abstract name"),
        )),
    }
}

/// Half of `WATCHDOG_USEC` (sd_watchdog_enabled(3) advises pinging at half the timeout), when
/// it is a positive number and `WATCHDOG_PID` is unset or names `own_pid`.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec = usec?.trim().parse::<u64>().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

/// Whether stderr is the journal: `JOURNAL_STREAM` (`DEVICE:INODE`) names the file stderr is
/// open on (systemd.exec(5) recommends comparing, since the variable is inherited by children
/// whose stderr may have been redirected).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os(JOURNAL_STREAM_ENV) else {
        return false;
    };
    // fstat(2) of fd 2 through /proc: std has no safe fstat on a raw descriptor.
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|m| value.to_str() == Some(&format!("{}:{}", m.dev(), m.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_this_process() {
        let half = Some(Duration::from_millis(1500));
        assert_eq!(watchdog_interval(Some("3000000"), None, 42), half);
        assert_eq!(watchdog_interval(Some("3000000"), Some("42"), 42), half);
        // Meant for another process (a parent that exec'd us with its environment).
        assert_eq!(watchdog_interval(Some("3000000"), Some("41"), 42), None);
        assert_eq!(watchdog_interval(Some("3000000"), Some("x"), 42), None);
        assert_eq!(watchdog_interval(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 42), None);
        assert_eq!(watchdog_interval(None, Some("42"), 42), None);
    }

    #[test]
    fn notify_socket_names() {
        use std::os::linux::net::SocketAddrExt;
        let abstract_addr = socket_addr("@zerocast/notify").unwrap();
        assert_eq!(
            abstract_addr.as_abstract_name(),
            Some(&b"zerocast/notify"[..])
        );
        let path = socket_addr("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(socket_addr("vsock:2:1234").is_err());
    }

    #[test]
    fn a_notification_is_one_datagram() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("zerocast-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let mut notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            addr: socket_addr(&format!("@{name}")).unwrap(),
            watchdog: None,
            failures: 0,
        };
        notifier.send("READY=1\nSTATUS=listening");
        assert_eq!(notifier.failures, 0);
        let mut buf = [0; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=listening");
        drop(server);
        notifier.send("WATCHDOG=1");
        notifier.send("WATCHDOG=1");
        assert_eq!(notifier.failures, 2);
    }
}
