//! Who may hold how many connection slots: one rule for the RTMP and the HTTP side.
//!
//! Addresses are counted in groups, as one person is likely to hold them: an IPv4 address, or
//! an IPv6 /64 (a home network or a single host gets a whole /64 from its provider, so counting
//! per /128 would give one machine millions of "addresses"). An IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`, what a dual-stack listener sees) is its IPv4 address.
//!
//! A group may hold at most `--max-per-addr` slots of a side, and may not take a slot that would
//! leave fewer than a reserve free ([`Quota::reserve`]): the reserve is for groups that hold
//! none, so two (or ten) addresses that open all they can still leave a third one served.

use std::fmt;
use std::net::IpAddr;

/// The unit connections are counted in: an IPv4 address or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// An IPv4 address (also when it came IPv4-mapped).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl Group {
    /// The group `ip` belongs to.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }

    /// The host's own loopback address (127.0.0.1 or ::1): a local reverse proxy or monitor,
    /// which carries many clients behind one address and limits them itself. It is held to
    /// `--max-per-addr` like anyone, but not to the reserve. (The rest of 127.0.0.0/8 is
    /// counted like any other address; tests use it as distinct addresses.)
    pub fn is_host(self) -> bool {
        match self {
            Self::V4(v4) => v4 == u32::from(std::net::Ipv4Addr::LOCALHOST),
            // ::1 is in the /64 ::/64, where no other reachable address lives.
            Self::V6(prefix) => prefix == 0,
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::V4(v4) => write!(f, "{}", std::net::Ipv4Addr::from(v4)),
            Self::V6(prefix) => {
                let addr = std::net::Ipv6Addr::from(u128::from(prefix) << 64);
                write!(f, "{addr}/64")
            }
        }
    }
}

/// Why a connection was not given a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// Its group holds `--max-per-addr` slots of this side already.
    Group,
    /// Every slot is taken.
    Slots,
    /// Its group holds slots, and taking one more would eat into the reserve.
    Reserve,
}

/// The slots of one side (RTMP or HTTP) and how one group may hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Connections the side serves at once.
    pub slots: usize,
    /// Most one group may hold (`--max-per-addr`).
    pub per_group: usize,
    /// Slots a group that holds some may not take: [`Quota::reserve_for`].
    pub reserve: usize,
}

impl Quota {
    /// The quota of a side of `slots` connections, `per_group` of them for one group.
    pub fn new(slots: usize, per_group: usize) -> Self {
        Self {
            slots,
            per_group,
            reserve: Self::reserve_for(slots),
        }
    }

    /// The reserve of a side of `slots` slots: an eighth of them, and at least 2. An eighth
    /// keeps 7/8 of the slots for whoever comes first (a full house of listeners from a few
    /// networks is normal), while the reserve of 8 of 64 HTTP slots (12 of the 100 RTMP ones)
    /// still serves several newcomers while others hold the rest; 2 at the least, so that with
    /// a handful of slots one squatter cannot take all but the last, and the one newcomer it
    /// leaves room for is not the attacker's second address.
    pub fn reserve_for(slots: usize) -> usize {
        (slots / 8).max(2).min(slots)
    }

    /// Whether a connection from a group that holds `held` slots may take one while `used`
    /// slots of the side are taken; `host` for the host's own loopback ([`Group::is_host`]).
    pub fn admit(&self, held: usize, used: usize, host: bool) -> Result<(), Over> {
        if held >= self.per_group {
            return Err(Over::Group);
        }
        if used >= self.slots {
            return Err(Over::Slots);
        }
        let free_after = self.slots - used - 1;
        if held > 0 && !host && free_after < self.reserve {
            return Err(Over::Reserve);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(
            Group::of(ip("192.0.2.1")),
            Group::of(ip("::ffff:192.0.2.1"))
        );
        assert_ne!(Group::of(ip("192.0.2.1")), Group::of(ip("192.0.2.2")));
        assert_eq!(
            Group::of(ip("2001:db8:1:2::1")),
            Group::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            Group::of(ip("2001:db8:1:2::1")),
            Group::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Group::of(ip("2001:db8:1:2::7")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert!(Group::of(ip("127.0.0.1")).is_host());
        assert!(Group::of(ip("::1")).is_host());
        assert!(Group::of(ip("::ffff:127.0.0.1")).is_host());
        assert!(!Group::of(ip("127.0.0.2")).is_host());
        assert!(!Group::of(ip("2001:db8::1")).is_host());
    }

    /// Two groups opening all they can leave the reserve to a third, whatever the cap.
    #[test]
    fn two_groups_cannot_take_the_reserve() {
        for (slots, per_group) in [(64, 32), (64, 64), (8, 32), (5, 100), (3, 2), (100, 32)] {
            let quota = Quota::new(slots, per_group);
            let mut used = 0;
            let take = |used: &mut usize| {
                let mut held = 0;
                while quota.admit(held, *used, false).is_ok() {
                    held += 1;
                    *used += 1;
                }
                held
            };
            let (a, b) = (take(&mut used), take(&mut used));
            assert!(a >= 1 && b >= 1, "{slots}/{per_group}: {a} {b}");
            assert_eq!(quota.admit(0, used, false), Ok(()), "{slots}/{per_group}");
            println!(
                "{slots} slots, {per_group} per group: {a} + {b}, {} free",
                slots - used
            );
        }
        // The old rule, 32 per address with 64 slots, let two addresses take all 64.
        let quota = Quota::new(64, 32);
        assert_eq!(quota.reserve, 8);
        assert_eq!(quota.admit(31, 55, false), Ok(()));
        assert_eq!(quota.admit(31, 56, false), Err(Over::Reserve));
        assert_eq!(quota.admit(32, 0, false), Err(Over::Group));
        assert_eq!(quota.admit(0, 64, false), Err(Over::Slots));
        // The host's own address is held to the cap only.
        assert_eq!(quota.admit(31, 62, true), Ok(()));
    }
}
