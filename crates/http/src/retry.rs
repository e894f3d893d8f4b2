//! What to retry and how long to wait, decided in one place and testable without a server:
//! the [`RetryPolicy`] (attempts, backoff, the cap on any wait a server asks for), the
//! classification of answers ([`classify_status`]) and of failures ([`TransportKind`]), and
//! [`parse_retry_after`].
//!
//! Backoff delays come from `backon`'s exponential builder; the send loop that uses all this is
//! [`crate::Policy`].

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::StatusCode;

/// Retries of transient failures (5xx, timeouts, connection errors) and of 429s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends of one request at most (first try included) for 5xx, timeouts and connection errors.
    pub max_attempts: u32,
    /// First backoff delay; doubled per attempt, with jitter.
    pub base_delay: Duration,
    /// Cap of one backoff delay.
    pub max_delay: Duration,
    /// Sends of one request at most while the server answers 429 (each after the advised wait).
    pub max_rate_limited_attempts: u32,
    /// The longest wait a server may impose (`Retry-After`, or a rate-limit hook's decision);
    /// longer requests are cut to this, with a warning.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_rate_limited_attempts: 8,
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The backoff delays of one request, first retry first: capped exponential with "equal
    /// jitter" — half of each delay fixed, half random — so that many requests failing together
    /// do not come back together. Delay `n` lies in `[d/2, d)` with `d = min(base·2ⁿ⁻¹, max)`.
    /// The sequence never ends; the caller counts attempts.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        // backon adds a jitter in [0, current) to each delay: halving the bounds gives
        // [d/2, d), the same as equal jitter.
        let max = self.max_delay / 2;
        ExponentialBuilder::new()
            .with_min_delay((self.base_delay / 2).min(max))
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The delay before retry number `attempt` (1 = the first retry), drawn afresh.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.delays()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay)
    }

    /// How long to wait when the server asked for `asked`: at most [`Self::max_retry_after`].
    /// Every server-imposed wait passes here, so the cap and its log line live in one place.
    pub fn server_wait(&self, asked: Duration) -> Duration {
        if asked > self.max_retry_after {
            tracing::warn!(
                asked_s = asked.as_secs_f64(),
                waiting_s = self.max_retry_after.as_secs_f64(),
                "server asked to wait longer than max_retry_after; waiting only the cap"
            );
            self.max_retry_after
        } else {
            tracing::debug!(
                waiting_ms = u64::try_from(asked.as_millis()).unwrap_or(u64::MAX),
                "waiting as the server asked"
            );
            asked
        }
    }
}

/// Parses a `Retry-After` value: delta-seconds (an integer, or leniently a decimal) or an HTTP
/// date (IMF-fixdate, RFC 850 or asctime; a date in the past is zero). Never panics: a number
/// too large for a `Duration` is `Duration::MAX` (the caller caps it with
/// [`RetryPolicy::server_wait`]); negative, `NaN`, infinite and unreadable values are `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: beyond u64 it is simply "very long".
        return Some(v.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let at = http_date(v)?;
    Some(
        at.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The three date formats HTTP allows (RFC 9110 §5.6.7).
fn http_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc2822(v) {
        return Some(d.with_timezone(&Utc));
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
        .map(|d| d.and_utc())
}

/// What an answer's status means for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx: done.
    Success,
    /// 429: wait (the whole budget pauses), then send again.
    RateLimited,
    /// 5xx: the server failed; an idempotent request may be sent again after a backoff.
    Transient,
    /// Any other status: sending again would get the same answer.
    Permanent,
}

/// Classifies an answer's status.
pub fn classify_status(status: StatusCode) -> Class {
    match status.as_u16() {
        200..=299 => Class::Success,
        429 => Class::RateLimited,
        500..=599 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// Coarse transport failure kinds; all are transient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No answer within the configured timeout; the request may have been processed.
    Timeout,
    /// The connection could not be made; the request was not sent.
    Connect,
    /// The connection broke or the body could not be read; the request may have been processed.
    Other,
}

impl TransportKind {
    /// Classifies a `reqwest` failure. A connect timeout is [`TransportKind::Connect`]: nothing
    /// was sent.
    pub fn of(e: &reqwest::Error) -> Self {
        if e.is_connect() {
            TransportKind::Connect
        } else if e.is_timeout() {
            TransportKind::Timeout
        } else {
            TransportKind::Other
        }
    }

    /// Whether the server may have received (and acted on) the request. Only a request that
    /// surely was not received may be sent again when it is not idempotent.
    pub fn maybe_sent(self) -> bool {
        self != TransportKind::Connect
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Timeout => "timeout",
            TransportKind::Connect => "connection refused or unreachable",
            TransportKind::Other => "connection error",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy();
        let ms = Duration::from_millis;
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= ms(50) && d1 <= ms(100), "{d1:?}");
            let d3 = p.backoff(3);
            assert!(d3 >= ms(200) && d3 <= ms(400), "{d3:?}");
            let d9 = p.backoff(9);
            assert!(d9 >= ms(500) && d9 <= ms(1000), "{d9:?}");
        }
        // One request's sequence never runs out.
        assert_eq!(p.delays().take(100).count(), 100);
        // Degenerate settings neither panic nor exceed the cap.
        let odd = RetryPolicy {
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(1),
            ..policy()
        };
        assert!(odd.backoff(1) <= Duration::from_secs(1));
        let huge = RetryPolicy {
            base_delay: Duration::MAX,
            max_delay: Duration::MAX,
            ..policy()
        };
        let _ = huge.delays().take(70).count();
    }

    #[test]
    fn server_waits_are_capped() {
        let p = RetryPolicy {
            max_retry_after: Duration::from_secs(5),
            ..policy()
        };
        assert_eq!(
            p.server_wait(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(p.server_wait(Duration::MAX), Duration::from_secs(5));
    }

    #[test]
    fn retry_after_forms() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        let p = |v| parse_retry_after(v, now);
        assert_eq!(p("2"), Some(Duration::from_secs(2)));
        assert_eq!(p(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(p("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            p("Wed, 21 Oct 2015 07:28:10 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            p("Wednesday, 21-Oct-15 07:28:20 GMT"),
            Some(Duration::from_secs(20))
        );
        assert_eq!(p("Wed Oct 21 07:28:30 2015"), Some(Duration::from_secs(30)));
        assert_eq!(p("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO));
        assert_eq!(p("soon"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn hostile_retry_after_values_never_panic() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        let p = |v| parse_retry_after(v, now);
        assert_eq!(
            p("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(p("99999999999999999999999999999"), Some(Duration::MAX));
        assert_eq!(p("1e300"), Some(Duration::MAX));
        assert_eq!(p("1e-300"), Some(Duration::ZERO));
        for none in [
            "NaN", "nan", "-1", "-0.5", "inf", "-inf", "infinity", "1e", "--1",
        ] {
            assert_eq!(p(none), None, "{none}");
        }
        assert!(p("Fri, 31 Dec 9999 23:59:59 GMT").is_some_and(|d| d > Duration::ZERO));
        assert_eq!(p("Mon, 01 Jan 0001 00:00:00 GMT"), Some(Duration::ZERO));
        let far = p("Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
        assert_eq!(policy().server_wait(far), policy().max_retry_after);
        // Far-future and far-past clocks too.
        for now in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            let _ = parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now);
            let _ = parse_retry_after("Wed Oct 21 07:28:30 262142", now);
        }
    }

    #[test]
    fn classification() {
        assert_eq!(classify_status(StatusCode::OK), Class::Success);
        assert_eq!(classify_status(StatusCode::CREATED), Class::Success);
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS),
            Class::RateLimited
        );
        assert_eq!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE),
            Class::Transient
        );
        assert_eq!(classify_status(StatusCode::BAD_REQUEST), Class::Permanent);
        assert_eq!(classify_status(StatusCode::UNAUTHORIZED), Class::Permanent);
        assert!(!TransportKind::Connect.maybe_sent());
        assert!(TransportKind::Timeout.maybe_sent());
        assert!(TransportKind::Other.maybe_sent());
    }
}
