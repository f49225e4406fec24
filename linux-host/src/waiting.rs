//! Players waiting for a stream nobody publishes yet, held apart from the stream table.
//!
//! nginx-rtmp lets a player ask for a name before its publisher starts and sends it the audio
//! once it does; zerocast does the same. Kept in the stream table, such players let strangers
//! fill it with made-up names (14 of them took the 16 slots and every publisher was refused), so
//! they wait here instead, never in a publisher's slot, and join the stream when its publisher
//! arrives. The list is bounded by the names waited for, not by the players: a crowd waiting
//! for one show is one entry, a stranger inventing names is refused after a few.

use std::net::IpAddr;

use crate::hub::Denied;
use crate::limits::Group;

/// Different names waited for at once, from everybody.
pub const MAX_NAMES: usize = 64;
/// Different names one address group (an IPv4 address, an IPv6 /64) waits for at once.
pub const NAMES_PER_GROUP: usize = 4;

/// The players waiting for a publisher, by connection.
#[derive(Debug, Default)]
pub struct Waiting {
    waiters: Vec<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    /// The player's connection.
    index: usize,
    /// The stream name it waits for (within the one application).
    name: String,
    group: Group,
}

impl Waiting {
    /// Whether a player from `peer` may wait for `name`: always when others wait for it already,
    /// else when the name is within [`MAX_NAMES`] and its group's [`NAMES_PER_GROUP`].
    pub fn admits(&self, name: &str, peer: IpAddr) -> Result<(), Denied> {
        if self.waiters.iter().any(|w| w.name == name) {
            return Ok(());
        }
        let group = Group::of(peer);
        let (mut names, mut own): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        for w in &self.waiters {
            if !names.contains(&w.name.as_str()) {
                names.push(&w.name);
            }
            if w.group == group && !own.contains(&w.name.as_str()) {
                own.push(&w.name);
            }
        }
        if names.len() >= MAX_NAMES || own.len() >= NAMES_PER_GROUP {
            return Err(Denied::TooManyWaiting);
        }
        Ok(())
    }

    /// Files connection `index` from `peer` as waiting for `name` (after [`Waiting::admits`]).
    pub fn add(&mut self, index: usize, name: &str, peer: IpAddr) {
        self.remove(index);
        self.waiters.push(Waiter {
            index,
            name: name.to_owned(),
            group: Group::of(peer),
        });
    }

    /// Connection `index` stops waiting (it left, or stopped playing).
    pub fn remove(&mut self, index: usize) {
        self.waiters.retain(|w| w.index != index);
    }

    /// Takes the players waiting for `name` off the list: its publisher arrived.
    pub fn take(&mut self, name: &str) -> Vec<usize> {
        let mut taken = Vec::new();
        self.waiters.retain(|w| {
            let wanted = w.name == name;
            if wanted {
                taken.push(w.index);
            }
            !wanted
        });
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_group_waits_for_a_few_names_and_a_crowd_for_one() {
        let mut w = Waiting::default();
        for i in 0..NAMES_PER_GROUP {
            let name = format!("made-up-{i}");
            assert_eq!(w.admits(&name, ip("192.0.2.1")), Ok(()));
            w.add(i, &name, ip("192.0.2.1"));
        }
        assert_eq!(
            w.admits("one-more", ip("192.0.2.1")),
            Err(Denied::TooManyWaiting)
        );
        // The same /64, another address in it, and the IPv4-mapped form of the address.
        w.add(10, "v6-0", ip("2001:db8::1"));
        w.add(11, "v6-1", ip("2001:db8::2"));
        w.add(12, "v6-2", ip("2001:db8::ffff:1"));
        w.add(13, "v6-3", ip("2001:db8::3"));
        assert_eq!(
            w.admits("v6-4", ip("2001:db8::abcd")),
            Err(Denied::TooManyWaiting)
        );
        assert_eq!(w.admits("v6-4", ip("2001:db8:0:1::1")), Ok(()));
        assert_eq!(
            w.admits("one-more", ip("::ffff:192.0.2.1")),
            Err(Denied::TooManyWaiting)
        );
        // Another address is not crowded out, and a name others wait for is always open.
        assert_eq!(w.admits("one-more", ip("192.0.2.2")), Ok(()));
        assert_eq!(w.admits("made-up-0", ip("192.0.2.1")), Ok(()));
        for i in 0..100 {
            w.add(100 + i, "show", ip("198.51.100.7"));
        }
        assert_eq!(w.admits("show", ip("198.51.100.8")), Ok(()));
        assert_eq!(w.take("show").len(), 100);
        assert_eq!(w.take("show").len(), 0);
        w.remove(0);
        assert_eq!(w.admits("one-more", ip("192.0.2.1")), Ok(()));
    }

    #[test]
    fn the_names_waited_for_are_bounded_in_all() {
        let mut w = Waiting::default();
        for i in 0..MAX_NAMES {
            let peer = IpAddr::from([10, 0, (i / 256) as u8, i as u8]);
            let name = format!("n{i}");
            assert_eq!(w.admits(&name, peer), Ok(()));
            w.add(i, &name, peer);
        }
        assert_eq!(
            w.admits("late", ip("10.9.9.9")),
            Err(Denied::TooManyWaiting)
        );
    }
}
