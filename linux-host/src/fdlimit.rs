//! File descriptors: the process limit checked against what the configured limits need, and
//! the one descriptor kept in reserve for the moment they run out anyway.
//!
//! Every connection, push, recording and listener is a descriptor; past `RLIMIT_NOFILE`,
//! `accept` fails with EMFILE and leaves the connection in the listen backlog. Left there, the
//! backlog fills, no new connection arrives to wake the (edge-triggered) listener, and the
//! server never accepts again. So the server closes its [`Reserve`], accepts and at once closes
//! what waits (the backlog drains; those peers see their connection closed), opens the reserve
//! again, and pauses accepting for a moment (see the server's accept).

use std::fs::File;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors beyond the connections and recordings: listeners, epoll, signalfd,
/// `/dev/urandom`, the reserve, the log, the capture device, a recorder's directory scan.
pub const MARGIN: u64 = 32;

/// What [`raise_nofile`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoFile {
    /// The soft limit was enough.
    Enough(u64),
    /// The soft limit was raised from the first to the second (enough now).
    Raised(u64, u64),
    /// Even the hard limit (second) is below the need (first); the soft limit is at it now.
    Short(u64, u64),
}

/// Raises the soft `RLIMIT_NOFILE` toward the hard one when it is below `need`, and logs what
/// it did (a warning when the hard limit is short too: connections beyond it are refused).
// The conversions are no-ops on x86_64 and needed on 32-bit ARM (`rlim_t` is u32 there).
#[allow(clippy::useless_conversion)]
pub fn raise_nofile(need: u64) -> NoFile {
    // `rlim_t` is 32 bits on the Pi's 32-bit ARM and 64 on x86_64: computed in u64, set back
    // in the platform's width (a value that does not fit is the hard limit, which does).
    let (soft_raw, hard_raw) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            log::warn!("cannot read RLIMIT_NOFILE: {e}");
            return NoFile::Enough(0);
        }
    };
    let (soft, hard) = (u64::from(soft_raw), u64::from(hard_raw));
    let outcome = decide(soft, hard, need);
    let new_soft = match outcome {
        NoFile::Enough(_) => return outcome,
        NoFile::Raised(_, to) => to,
        NoFile::Short(_, hard) => hard,
    };
    if new_soft > soft {
        let new_raw = new_soft.try_into().unwrap_or(hard_raw);
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, new_raw, hard_raw) {
            log::warn!("cannot raise RLIMIT_NOFILE from {soft} to {new_soft}: {e}");
        }
    }
    match outcome {
        NoFile::Raised(from, to) => {
            log::info!(
                "open-file limit raised from {from} to {to} (the configured limits need {need})"
            )
        }
        NoFile::Short(..) => log::warn!(
            "open-file limit (RLIMIT_NOFILE) is {hard}, the configured limits need {need} \
             (--max-clients, --http-max-clients, pushes, recordings): past it new \
             connections are closed at once; raise LimitNOFILE= or ulimit -n, or lower the limits"
        ),
        NoFile::Enough(_) => {}
    }
    outcome
}

/// What to do with limits `soft`/`hard` and a need of `need`.
fn decide(soft: u64, hard: u64, need: u64) -> NoFile {
    if soft >= need {
        NoFile::Enough(soft)
    } else if hard >= need {
        NoFile::Raised(soft, need)
    } else {
        NoFile::Short(need, hard)
    }
}

/// One descriptor held open (on `/dev/null`) to be given up when the others run out.
#[derive(Debug)]
pub struct Reserve(Option<File>);

impl Reserve {
    /// Opens the reserve.
    pub fn open() -> Self {
        Self(File::open("/dev/null").ok())
    }

    /// Frees the reserve's descriptor for one `accept`.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// Takes the descriptor back (when one is free again).
    pub fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }
}

/// Whether `e` says the process or the system is out of descriptors (EMFILE, ENFILE).
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_toward_the_hard_one() {
        assert_eq!(decide(1024, 4096, 300), NoFile::Enough(1024));
        assert_eq!(decide(256, 4096, 300), NoFile::Raised(256, 300));
        assert_eq!(decide(64, 128, 300), NoFile::Short(300, 128));
    }
}
