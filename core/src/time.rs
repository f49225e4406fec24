//! The caller's clock. The core never reads a clock: every deadline is computed from an
//! [`Instant`] passed in, so tests can drive sessions on a virtual clock.

/// A point in time, in milliseconds since an epoch chosen by the caller (e.g. process start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    millis: u64,
}

impl Instant {
    /// The instant `millis` milliseconds after the caller's epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    /// Milliseconds since the caller's epoch.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// `self + millis`, saturating instead of overflowing.
    pub const fn saturating_add_millis(self, millis: u64) -> Self {
        Self {
            millis: self.millis.saturating_add(millis),
        }
    }

    /// Milliseconds from `earlier` to `self`, or 0 when `earlier` is later.
    pub const fn saturating_millis_since(self, earlier: Instant) -> u64 {
        self.millis.saturating_sub(earlier.millis)
    }
}
