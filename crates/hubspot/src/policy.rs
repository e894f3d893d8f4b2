//! HubSpot's side of the shared HTTP policy (`rivulet-http`, which holds the throttle, the
//! retries, backoff and `Retry-After`): the connection's budgets (general, and search at 5/s),
//! the limit on batch calls in flight, the DAILY pause of writes, and the hooks of one call —
//! a bearer token per attempt (refreshed once after a 401), `X-HubSpot-RateLimit-*` headers
//! read into the budget, and what a 429's `policyName` means.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rivulet_http::header::HeaderMap;
use rivulet_http::{
    Hooks, InFlight, RateLimitAction, Response, RollingWindow, Slot, StatusCode, StopReason,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::client::{Budget, Call, Inner, RateLimitHeadroom};
use crate::error::{Error, parse_error_body};

/// A daily limit never lasts longer than a day, whatever a header says.
const DAY: Duration = Duration::from_secs(86_400);

/// The limits of one connection that are HubSpot's own.
#[derive(Debug)]
pub(crate) struct Limits {
    pub general: Arc<RollingWindow>,
    pub search: Arc<RollingWindow>,
    batches: InFlight,
    /// Writes are refused until this instant after a DAILY 429.
    daily_paused_until: Mutex<Option<Instant>>,
}

impl Limits {
    pub(crate) fn new(config: &crate::ClientConfig) -> Self {
        Limits {
            general: RollingWindow::from_throttle(config.throttle),
            search: RollingWindow::new(config.search_per_second, Duration::from_secs(1)),
            batches: InFlight::new(config.concurrent_batches),
            daily_paused_until: Mutex::new(None),
        }
    }

    pub(crate) fn window(&self, budget: Budget) -> &Arc<RollingWindow> {
        match budget {
            Budget::General => &self.general,
            Budget::Search => &self.search,
        }
    }

    pub(crate) async fn batch(&self) -> OwnedSemaphorePermit {
        self.batches.acquire().await
    }

    pub(crate) fn pause_daily(&self, wait: Duration) {
        let now = Instant::now();
        *self.daily_paused_until.lock() = Some(now.checked_add(wait.min(DAY)).unwrap_or(now));
    }

    /// Time left in a DAILY pause, if one is in force.
    pub(crate) fn daily_pause_left(&self) -> Option<Duration> {
        let until = (*self.daily_paused_until.lock())?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

/// What a 429 asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RateLimitDecision {
    /// Wait this long (the whole budget pauses), then retry.
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
) -> RateLimitDecision {
    if policy_name == Some("DAILY") {
        let wait = retry_after.unwrap_or_else(|| until_utc_midnight(now_utc));
        return RateLimitDecision::Daily(wait.min(DAY));
    }
    if let Some(wait) = retry_after {
        return RateLimitDecision::Wait(wait);
    }
    match policy_name {
        Some("SECONDLY") => RateLimitDecision::Wait(Duration::from_secs(1)),
        // TEN_SECONDLY_ROLLING and anything unknown: wait out a whole window.
        _ => RateLimitDecision::Wait(window.max(Duration::from_secs(1))),
    }
}

/// HubSpot resets the daily limit at midnight in the account's time zone, which the API does not
/// tell us; the next UTC midnight is the best guess available.
fn until_utc_midnight(now: chrono::DateTime<chrono::Utc>) -> Duration {
    let today = now.date_naive();
    let midnight = today
        .succ_opt()
        .unwrap_or(today)
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    (midnight - now).to_std().unwrap_or(Duration::from_secs(60))
}

/// Reads HubSpot's `X-HubSpot-RateLimit-*` headers into the request's slot, and returns them
/// for the client's headroom report when any is present.
fn observe_headers(
    headers: &HeaderMap,
    slot: &Slot,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<RateLimitHeadroom> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let seen = RateLimitHeadroom {
        max: header("x-hubspot-ratelimit-max"),
        remaining: header("x-hubspot-ratelimit-remaining"),
        interval: header("x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis),
        daily: header("x-hubspot-ratelimit-daily"),
        daily_remaining: header("x-hubspot-ratelimit-daily-remaining"),
        seen_at: now,
    };
    slot.observe(
        seen.max.map(small),
        seen.remaining.map(small),
        seen.interval,
    );
    let any = seen.max.is_some()
        || seen.remaining.is_some()
        || seen.interval.is_some()
        || seen.daily.is_some()
        || seen.daily_remaining.is_some();
    any.then_some(seen)
}

fn stop(e: Error) -> StopReason {
    Box::new(e)
}

/// The hooks of one API call.
pub(crate) struct CallHooks<'a> {
    inner: &'a Inner,
    call: &'a Call,
    /// The token of the last attempt (the one a 401 rejected).
    sent: Option<SecretString>,
    /// A token fetched after a 401, for the next attempt.
    fresh: Option<SecretString>,
}

impl<'a> CallHooks<'a> {
    pub(crate) fn new(inner: &'a Inner, call: &'a Call) -> Self {
        CallHooks {
            inner,
            call,
            sent: None,
            fresh: None,
        }
    }
}

impl Hooks for CallHooks<'_> {
    fn admit(&mut self) -> Result<(), StopReason> {
        match self.inner.limits.daily_pause_left() {
            Some(left) if self.call.write => Err(stop(Error::DailyLimit { resume_in: left })),
            _ => Ok(()),
        }
    }

    async fn authorize(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, StopReason> {
        let token = match self.fresh.take() {
            Some(t) => t,
            None => {
                let t = self.inner.tokens.token().await.map_err(stop)?;
                if t.refreshed {
                    self.inner.stats.token_refreshed();
                }
                t.value
            }
        };
        if self.call.write {
            self.inner.stats.write_sent();
        }
        let request = request.bearer_auth(token.expose_secret());
        self.sent = Some(token);
        Ok(request)
    }

    fn observe(&mut self, _status: StatusCode, headers: &HeaderMap, slot: &Slot) {
        if self.call.budget == Budget::General
            && let Some(seen) = observe_headers(headers, slot, self.inner.config.clock.now())
        {
            *self.inner.headroom.lock() = Some(seen);
        }
    }

    fn on_rate_limited(
        &mut self,
        answer: &Response,
        retry_after: Option<Duration>,
        _suggested: Duration,
    ) -> RateLimitAction {
        let api = parse_error_body(answer.status.as_u16(), &answer.body);
        let inner = self.inner;
        let window = inner.limits.window(self.call.budget).per();
        let now = inner.config.clock.now();
        match on_rate_limited(retry_after, api.policy_name.as_deref(), window, now) {
            RateLimitDecision::Daily(wait) => {
                tracing::warn!(resume_in_s = wait.as_secs(), "HubSpot daily limit reached");
                inner.limits.pause_daily(wait);
                RateLimitAction::Stop(stop(Error::DailyLimit { resume_in: wait }))
            }
            RateLimitDecision::Wait(wait) => RateLimitAction::Wait(wait),
        }
    }

    async fn on_unauthorized(&mut self, _answer: &Response) -> Result<bool, StopReason> {
        let (Some(rejected), true) = (&self.sent, self.inner.tokens.can_refresh()) else {
            return Ok(false);
        };
        let fresh = self
            .inner
            .tokens
            .after_unauthorized(rejected)
            .await
            .map_err(stop)?;
        if fresh.refreshed {
            self.inner.stats.token_refreshed();
        }
        self.fresh = Some(fresh.value);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
            RateLimitDecision::Wait(Duration::from_secs(3))
        );
        assert_eq!(
            on_rate_limited(None, Some("TEN_SECONDLY_ROLLING"), w, now),
            RateLimitDecision::Wait(w)
        );
        assert_eq!(
            on_rate_limited(None, Some("SECONDLY"), w, now),
            RateLimitDecision::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            on_rate_limited(None, Some("DAILY"), w, now),
            RateLimitDecision::Daily(Duration::from_secs(3600))
        );
        assert_eq!(
            on_rate_limited(Some(Duration::MAX), Some("DAILY"), w, now),
            RateLimitDecision::Daily(DAY)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn daily_pause_is_bounded() {
        let limits = Limits::new(&crate::ClientConfig::with_token("t"));
        limits.pause_daily(Duration::MAX);
        assert_eq!(limits.daily_pause_left(), Some(DAY));
    }
}
