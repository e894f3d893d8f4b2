//! When to try again and how long to wait. The send loop lives in `transport`; this module holds
//! the decisions so they can be tested without a server.

use std::time::Duration;

use rand::Rng;

use crate::RetryPolicy;

/// Capped exponential backoff with "equal jitter": half the delay fixed, half random, so that
/// many requests failing together do not come back together.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let capped = exp.min(policy.max_delay);
    let half = capped / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// What a 429 asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RateLimitAction {
    /// Wait this long (the whole connection pauses), then retry.
    Wait(Duration),
    /// The daily budget is gone: stop writes until the reset.
    Daily(Duration),
}

/// Decides a 429: `Retry-After` when HubSpot sends it, else by `policyName`.
pub(crate) fn on_rate_limited(
    retry_after: Option<Duration>,
    policy_name: Option<&str>,
    window: Duration,
    now_utc: chrono::DateTime<chrono::Utc>,
) -> RateLimitAction {
    if policy_name == Some("DAILY") {
        return RateLimitAction::Daily(retry_after.unwrap_or_else(|| until_utc_midnight(now_utc)));
    }
    if let Some(wait) = retry_after {
        return RateLimitAction::Wait(wait);
    }
    match policy_name {
        Some("SECONDLY") => RateLimitAction::Wait(Duration::from_secs(1)),
        // TEN_SECONDLY_ROLLING and anything unknown: wait out a whole window.
        _ => RateLimitAction::Wait(window.max(Duration::from_secs(1))),
    }
}

/// HubSpot resets the daily limit at midnight in the account's time zone, which the API does not
/// tell us; the next UTC midnight is the best guess available.
fn until_utc_midnight(now: chrono::DateTime<chrono::Utc>) -> Duration {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    let midnight = tomorrow.and_hms_opt(0, 0, 0).expect("valid time").and_utc();
    (midnight - now).to_std().unwrap_or(Duration::from_secs(60))
}

/// Parses `Retry-After` given in seconds (HubSpot's form); HTTP dates are ignored.
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_rate_limited_attempts: 3,
        };
        for _ in 0..50 {
            let d1 = backoff(&p, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = backoff(&p, 3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = backoff(&p, 9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_secs(1));
        }
    }

    #[test]
    fn rate_limit_decisions() {
        let now = chrono::Utc.with_ymd_and_hms(2025, 3, 1, 23, 0, 0).unwrap();
        let w = Duration::from_secs(10);
        assert_eq!(
            on_rate_limited(
                Some(Duration::from_secs(3)),
                Some("TEN_SECONDLY_ROLLING"),
                w,
                now
            ),
            RateLimitAction::Wait(Duration::from_secs(3))
        );
        assert_eq!(
            on_rate_limited(None, Some("TEN_SECONDLY_ROLLING"), w, now),
            RateLimitAction::Wait(w)
        );
        assert_eq!(
            on_rate_limited(None, Some("SECONDLY"), w, now),
            RateLimitAction::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            on_rate_limited(None, Some("DAILY"), w, now),
            RateLimitAction::Daily(Duration::from_secs(3600))
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(Some("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
