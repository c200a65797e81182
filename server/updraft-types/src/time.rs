//! [`Timestamp`]: a point in time as every table stores it, microseconds since the Unix epoch
//! (UTC), so that a time is never confused with a duration, a count or an id.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time: microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The time `us` microseconds after the Unix epoch.
    pub const fn from_micros(us: i64) -> Timestamp {
        Timestamp(us)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The current time (not in the browser, which has no system clock this way).
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    pub fn now() -> Timestamp {
        let us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(us)
    }

    /// `self` plus `d` (saturating: a huge duration is "never").
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// `self` minus `d` (saturating).
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    /// Microseconds since the epoch (what is stored); format dates where they are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_micros(1_000_000);
        assert_eq!(t.saturating_add(Duration::from_secs(1)).as_micros(), 2_000_000);
        assert_eq!(t.saturating_sub(Duration::from_millis(500)).as_micros(), 500_000);
        assert_eq!(Timestamp::from_micros(i64::MAX).saturating_add(Duration::MAX).as_micros(), i64::MAX);
        assert_eq!(t.since(Timestamp::EPOCH), Duration::from_secs(1));
        assert_eq!(Timestamp::EPOCH.since(t), Duration::ZERO);
        assert!(Timestamp::now() > t);
    }
}
