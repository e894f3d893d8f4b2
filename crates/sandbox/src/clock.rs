//! The sandbox's own clock: the system's time shifted by an offset that can change at run time.
//!
//! Every time the sandbox hands out or compares comes from it: record timestamps (create,
//! update, touch, archive, seeding "now"), the search-index lag, OAuth token expiry, the rolling
//! rate-limit windows and the daily limit's day, and the request log's times. So a test can
//! start the sandbox behind the system clock (its records look old to a client reading the
//! system clock) or advance it to end a search lag, expire a token or roll a rate window without
//! waiting.

use crate::SandboxError;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The largest offset (either way) and the largest single step: ten years, in milliseconds.
pub const MAX_CLOCK_OFFSET_MS: i64 = 3_653 * 86_400_000;

/// A cheap, cloneable handle on the sandbox's clock; clones share the offset.
#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("offset_ms", &self.offset_ms())
            .finish()
    }
}

fn system_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn out_of_range(what: &str, ms: i128) -> SandboxError {
    SandboxError::Clock(format!(
        "{what} {ms} ms is out of range: at most ±{MAX_CLOCK_OFFSET_MS} ms (10 years)"
    ))
}

fn check(what: &str, ms: i128) -> Result<i64, SandboxError> {
    if ms.abs() > i128::from(MAX_CLOCK_OFFSET_MS) {
        Err(out_of_range(what, ms))
    } else {
        Ok(ms as i64)
    }
}

impl Clock {
    /// A clock `offset_ms` ahead of the system clock (negative: behind), clamped to
    /// ±[`MAX_CLOCK_OFFSET_MS`].
    pub fn new(offset_ms: i64) -> Clock {
        Clock {
            offset_ms: Arc::new(AtomicI64::new(
                offset_ms.clamp(-MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS),
            )),
        }
    }

    /// Milliseconds since the Unix epoch on this clock: the system's time plus the offset.
    pub fn now_ms(&self) -> i64 {
        system_ms().saturating_add(self.offset_ms())
    }

    /// How far this clock is ahead of the system clock, in ms (negative: behind).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }

    /// Sets the offset from the system clock; refused beyond ±10 years.
    pub fn set_offset_ms(&self, offset_ms: i64) -> Result<(), SandboxError> {
        let ms = check("offset", i128::from(offset_ms))?;
        self.offset_ms.store(ms, Ordering::SeqCst);
        Ok(())
    }

    /// Moves the clock forward by `by` (ends search lags, expires tokens, rolls rate windows);
    /// returns the new offset. Refused when the step or the resulting offset exceeds 10 years.
    pub fn advance(&self, by: Duration) -> Result<i64, SandboxError> {
        let ms = i128::try_from(by.as_millis()).unwrap_or(i128::MAX);
        self.shift_ms(check("step", ms)?)
    }

    /// Moves the clock by `ms` (negative: back); returns the new offset.
    pub(crate) fn shift_ms(&self, ms: i64) -> Result<i64, SandboxError> {
        check("step", i128::from(ms))?;
        let mut err = None;
        let result = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                match check("offset", i128::from(cur) + i128::from(ms)) {
                    Ok(next) => Some(next),
                    Err(e) => {
                        err = Some(e);
                        None
                    }
                }
            });
        match result {
            Ok(prev) => Ok(prev + ms),
            Err(_) => Err(err.unwrap_or_else(|| out_of_range("offset", i128::from(ms)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_shifts_now_and_is_bounded() {
        let c = Clock::new(-10_000);
        let sys = system_ms();
        let now = c.now_ms();
        assert!(
            (sys - 10_000 - 50..=sys - 10_000 + 1_000).contains(&now),
            "{sys} {now}"
        );
        assert_eq!(c.advance(Duration::from_secs(3)).unwrap(), -7_000);
        assert_eq!(c.clone().offset_ms(), -7_000, "clones share the offset");
        c.set_offset_ms(MAX_CLOCK_OFFSET_MS).unwrap();
        assert!(c.advance(Duration::from_millis(1)).is_err());
        assert_eq!(
            c.offset_ms(),
            MAX_CLOCK_OFFSET_MS,
            "a refused step changes nothing"
        );
        assert!(c.set_offset_ms(i64::MIN).is_err());
        assert!(c.set_offset_ms(-MAX_CLOCK_OFFSET_MS - 1).is_err());
        assert!(c.advance(Duration::MAX).is_err());
        assert!(c.shift_ms(i64::MIN).is_err());
        assert_eq!(c.shift_ms(-MAX_CLOCK_OFFSET_MS).unwrap(), 0);
        assert_eq!(Clock::new(i64::MAX).offset_ms(), MAX_CLOCK_OFFSET_MS);
    }
}
