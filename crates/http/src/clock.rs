//! Wall time, injected. Code that needs the date (a `Retry-After` given as an HTTP date, "until
//! midnight UTC") asks a [`Clock`] instead of calling `Utc::now()`, so tests can pin or move it.
//!
//! The split: **wall time** (what day and hour it is) comes from a [`Clock`]; **monotonic
//! waits** (the throttle's window, backoff sleeps, pauses after a 429) use `tokio::time`, which
//! tests pause and advance with `#[tokio::test(start_paused = true)]`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;

/// A source of wall time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by everything that needs wall time.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock, as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system's clock (`Utc::now()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock set and moved by hand, for tests that need no runtime.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(at),
        }
    }

    /// Shows `at` from now on.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock() = at;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now = add(*now, by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}

/// `at + by`, saturating at the latest representable instant.
fn add(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_by_hand() {
        let start = Utc.with_ymd_and_hms(2025, 3, 1, 23, 0, 0).unwrap();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now(), start + TimeDelta::seconds(90));
        c.advance(Duration::MAX);
        assert_eq!(c.now(), DateTime::<Utc>::MAX_UTC);
        c.set(start);
        assert_eq!(c.now(), start);
    }
}
