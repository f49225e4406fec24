//! Failed key and password attempts, per address group ([`Group`]): after [`MAX_FAILURES`]
//! wrong keys or passwords within [`WINDOW_MS`], the group's attempts are refused unchecked for
//! [`LOCKOUT_MS`], so a key cannot be guessed faster than a few tries a minute per address.
//! The table is small and fixed ([`TABLE`] groups): the group seen longest ago makes room (a
//! locked-out one last), so memory stays bounded however many addresses try.

use zerocast_core::time::Instant;

use crate::limits::Group;

/// Wrong attempts one group may make within [`WINDOW_MS`].
pub const MAX_FAILURES: u32 = 5;
/// The window the failures are counted in.
pub const WINDOW_MS: u64 = 60_000;
/// How long a group that made too many is refused.
pub const LOCKOUT_MS: u64 = 60_000;
/// Groups remembered at once.
pub const TABLE: usize = 32;

#[derive(Clone, Copy, Debug)]
struct Entry {
    group: Group,
    /// Failures since `since`.
    failures: u32,
    /// The first failure of the window.
    since: Instant,
    /// Refused until then.
    locked_until: Option<Instant>,
    /// The last failure (which entry makes room).
    last: Instant,
}

/// The table of recent failures.
#[derive(Clone, Debug, Default)]
pub struct Guesses {
    entries: Vec<Entry>,
}

/// What [`Guesses::failed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// Counted.
    Counted,
    /// This failure locked the group out.
    LockedOut,
}

impl Guesses {
    /// Whether `group` is refused without its key being looked at.
    pub fn locked(&self, group: Group, now: Instant) -> bool {
        self.entries
            .iter()
            .any(|e| e.group == group && e.locked_until.is_some_and(|t| now < t))
    }

    /// `group` gave a wrong key or password at `now`; the failure that locks it out is logged
    /// (once per lockout).
    pub fn failed(&mut self, group: Group, now: Instant) -> Failed {
        let index = match self.entries.iter().position(|e| e.group == group) {
            Some(i) => i,
            None => {
                let entry = Entry {
                    group,
                    failures: 0,
                    since: now,
                    locked_until: None,
                    last: now,
                };
                if self.entries.len() < TABLE {
                    self.entries.push(entry);
                    self.entries.len() - 1
                } else {
                    // The group heard from longest ago makes room, a locked one last (so many
                    // addresses cannot wash a lockout out of the table).
                    let oldest = self
                        .entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| (e.locked_until.is_some_and(|t| now < t), e.last))
                        .map_or(0, |(i, _)| i);
                    self.entries[oldest] = entry;
                    oldest
                }
            }
        };
        let e = &mut self.entries[index];
        if now.saturating_millis_since(e.since) >= WINDOW_MS {
            e.failures = 0;
            e.since = now;
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= MAX_FAILURES && e.locked_until.map_or(true, |t| now >= t) {
            e.locked_until = Some(now.saturating_add_millis(LOCKOUT_MS));
            e.failures = 0;
            e.since = now;
            log::warn!(
                "{group}: {MAX_FAILURES} wrong keys or passwords within {} s; its attempts are \
                 refused unchecked for {} s",
                WINDOW_MS / 1000,
                LOCKOUT_MS / 1000
            );
            return Failed::LockedOut;
        }
        Failed::Counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn five_failures_lock_a_group_out_for_a_minute() {
        let mut g = Guesses::default();
        let a = Group::of("192.0.2.1".parse().unwrap());
        let b = Group::of("2001:db8::1".parse().unwrap());
        for i in 0..MAX_FAILURES - 1 {
            assert_eq!(g.failed(a, at(u64::from(i) * 1000)), Failed::Counted);
            assert!(!g.locked(a, at(u64::from(i) * 1000)));
        }
        assert_eq!(g.failed(a, at(5000)), Failed::LockedOut);
        assert!(g.locked(a, at(5000)));
        assert!(g.locked(a, at(5000 + LOCKOUT_MS - 1)));
        assert!(!g.locked(a, at(5000 + LOCKOUT_MS)));
        assert!(!g.locked(b, at(5000)));
        // Failures spread wider than the window never lock.
        for i in 0..20 {
            assert_eq!(g.failed(b, at(i * WINDOW_MS / 2)), Failed::Counted);
        }
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_a_lockout() {
        let mut g = Guesses::default();
        let locked = Group::V4(1);
        for _ in 0..MAX_FAILURES {
            g.failed(locked, at(0));
        }
        assert!(g.locked(locked, at(1)));
        for i in 0..1000u32 {
            g.failed(Group::V4(1000 + i), at(10 + u64::from(i)));
        }
        assert_eq!(g.entries.len(), TABLE);
        assert!(g.locked(locked, at(2000)));
        assert!(!g.locked(locked, at(LOCKOUT_MS)));
    }
}
