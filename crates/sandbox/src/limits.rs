//! Run-time knobs (limits and faults), rolling windows, and issued OAuth tokens. Windows,
//! the daily limit's day and token expiries are epoch ms on the sandbox's clock.

use crate::{RateLimit, SandboxConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Added latency at most (`latency`): one minute.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);
/// Search lag at most (`search_lag`): one day.
pub const MAX_SEARCH_LAG: Duration = Duration::from_secs(86_400);
/// Requests per window at most (`rate_limit`, `search_per_second`).
pub const MAX_RATE: u64 = 1_000_000;
/// Rate window at most (`rate_limit`): one day.
pub const MAX_RATE_WINDOW: Duration = Duration::from_secs(86_400);
/// Daily limit at most.
pub const MAX_DAILY_LIMIT: u64 = 1_000_000_000_000;

/// What search does once a query has handed out HubSpot's 10,000 results. HubSpot has been
/// seen to do both; a client that narrows its window from `total` works with either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SearchCap {
    /// A request for a page starting at or past 10,000 is refused with a 400 (the default).
    #[default]
    Error400,
    /// Paging simply ends: no `paging.next.after` once 10,000 results were handed out, and no
    /// page reaches past the 10,000th result (no error).
    EndPaging,
}

impl SearchCap {
    /// `error_400` or `end_paging` (the control API's names).
    pub fn as_str(self) -> &'static str {
        match self {
            SearchCap::Error400 => "error_400",
            SearchCap::EndPaging => "end_paging",
        }
    }
}

impl std::str::FromStr for SearchCap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "error_400" | "error400" | "400" => Ok(SearchCap::Error400),
            "end_paging" | "endpaging" => Ok(SearchCap::EndPaging),
            other => Err(format!(
                "search_cap must be \"error_400\" or \"end_paging\", not {other:?}"
            )),
        }
    }
}

/// The limit and fault knobs that can change at run time (`PUT /_sandbox/faults`).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Rolling limit for non-search requests.
    pub rate_limit: Option<RateLimit>,
    /// Search requests per second.
    pub search_per_second: Option<u32>,
    /// Requests per UTC day.
    pub daily_limit: Option<u64>,
    /// Send `Retry-After` on 429.
    pub retry_after: bool,
    /// Probability of an injected 502/503.
    pub fault_rate: f64,
    /// Probability of a dropped connection.
    pub drop_rate: f64,
    /// Added latency per API request.
    pub latency: Duration,
    /// Search index lag for writes.
    pub search_lag: Duration,
    /// What search does past 10,000 results.
    pub search_cap: SearchCap,
}

impl Faults {
    /// The knobs of a start configuration.
    pub fn from_config(c: &SandboxConfig) -> Self {
        Faults {
            rate_limit: c.rate_limit,
            search_per_second: c.search_per_second,
            daily_limit: c.daily_limit,
            retry_after: c.retry_after,
            fault_rate: c.fault_rate,
            drop_rate: c.drop_rate,
            latency: c.latency,
            search_lag: c.search_lag,
            search_cap: c.search_cap,
        }
    }

    /// Refuses values beyond the bounds ([`MAX_LATENCY`], [`MAX_SEARCH_LAG`], [`MAX_RATE`],
    /// [`MAX_RATE_WINDOW`], [`MAX_DAILY_LIMIT`]; rates within 0..=1), with a message naming
    /// the knob, so that no value can hang, overflow or starve the server.
    pub fn validate(&self) -> Result<(), String> {
        let ms = |d: Duration| d.as_millis();
        if let Some(r) = self.rate_limit {
            if r.limit == 0 || u64::from(r.limit) > MAX_RATE {
                return Err(format!(
                    "rate_limit: the limit must be between 1 and {MAX_RATE} requests, not {}",
                    r.limit
                ));
            }
            if r.per.is_zero() || r.per > MAX_RATE_WINDOW {
                return Err(format!(
                    "rate_limit: the window must be between 1 ms and {} ms, not {} ms",
                    ms(MAX_RATE_WINDOW),
                    ms(r.per)
                ));
            }
        }
        if let Some(n) = self.search_per_second
            && (n == 0 || u64::from(n) > MAX_RATE)
        {
            return Err(format!(
                "search_per_second must be between 1 and {MAX_RATE} (or null for no limit), not {n}"
            ));
        }
        if let Some(d) = self.daily_limit
            && d > MAX_DAILY_LIMIT
        {
            return Err(format!(
                "daily_limit must be at most {MAX_DAILY_LIMIT} (or null for no limit), not {d}"
            ));
        }
        for (k, r) in [
            ("fault_rate", self.fault_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{k} must be a number between 0 and 1, not {r}"));
            }
        }
        if self.latency > MAX_LATENCY {
            return Err(format!(
                "latency must be at most {} ms, not {} ms",
                ms(MAX_LATENCY),
                ms(self.latency)
            ));
        }
        if self.search_lag > MAX_SEARCH_LAG {
            return Err(format!(
                "search_lag must be at most {} ms, not {} ms",
                ms(MAX_SEARCH_LAG),
                ms(self.search_lag)
            ));
        }
        Ok(())
    }

    /// JSON form used by `GET/PUT /_sandbox/faults`.
    pub fn to_json(&self) -> Value {
        json!({
            "rate_limit": self.rate_limit.map(|r| format!("{}/{}ms", r.limit, r.per.as_millis())),
            "search_per_second": self.search_per_second,
            "daily_limit": self.daily_limit,
            "retry_after": self.retry_after,
            "fault_rate": self.fault_rate,
            "drop_rate": self.drop_rate,
            "latency_ms": self.latency.as_millis() as u64,
            "search_lag_ms": self.search_lag.as_millis() as u64,
            "search_cap": self.search_cap.as_str(),
        })
    }

    /// Applies the fields present in a JSON patch (`null` turns a limit off); values out of
    /// bounds (see [`Faults::validate`]) are refused and leave the knobs unchanged.
    pub fn apply_json(&mut self, v: &Value) -> Result<(), String> {
        let mut next = self.clone();
        next.apply_fields(v)?;
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn apply_fields(&mut self, v: &Value) -> Result<(), String> {
        let obj = v.as_object().ok_or("faults body must be a JSON object")?;
        for (k, v) in obj {
            match k.as_str() {
                "rate_limit" => {
                    self.rate_limit = match v {
                        Value::Null => None,
                        Value::String(s) => {
                            Some(s.parse().map_err(|e| format!("rate_limit: {e}"))?)
                        }
                        Value::Object(o) => {
                            let limit = o
                                .get("limit")
                                .and_then(Value::as_u64)
                                .ok_or("rate_limit.limit must be a positive integer")?;
                            let per = o
                                .get("per_ms")
                                .and_then(Value::as_u64)
                                .ok_or("rate_limit.per_ms must be a positive integer")?;
                            let limit = u32::try_from(limit)
                                .ok()
                                .filter(|l| u64::from(*l) <= MAX_RATE)
                                .ok_or_else(|| {
                                    format!(
                                        "rate_limit.limit must be between 1 and {MAX_RATE}, not {limit}"
                                    )
                                })?;
                            Some(RateLimit::new(limit, Duration::from_millis(per)))
                        }
                        _ => {
                            return Err(
                                "rate_limit must be \"100/10s\", {limit, per_ms} or null".into()
                            );
                        }
                    }
                }
                "search_per_second" => {
                    self.search_per_second = opt_u64(v, k)?
                        .map(|n| {
                            u32::try_from(n).map_err(|_| {
                                format!("search_per_second must be at most {MAX_RATE}, not {n}")
                            })
                        })
                        .transpose()?
                }
                "daily_limit" => self.daily_limit = opt_u64(v, k)?,
                "retry_after" => {
                    self.retry_after = v.as_bool().ok_or("retry_after must be a bool")?
                }
                "fault_rate" => self.fault_rate = rate(v, k)?,
                "drop_rate" => self.drop_rate = rate(v, k)?,
                "latency_ms" => self.latency = Duration::from_millis(opt_u64(v, k)?.unwrap_or(0)),
                "search_lag_ms" => {
                    self.search_lag = Duration::from_millis(opt_u64(v, k)?.unwrap_or(0))
                }
                "search_cap" => {
                    self.search_cap = match v {
                        Value::Null => SearchCap::default(),
                        Value::String(s) => s.parse()?,
                        _ => {
                            return Err("search_cap must be \"error_400\" or \"end_paging\"".into());
                        }
                    }
                }
                "latency" | "search_lag" => {
                    let d = match v {
                        Value::String(s) => {
                            humantime::parse_duration(s).map_err(|e| format!("{k}: {e}"))?
                        }
                        Value::Null => Duration::ZERO,
                        _ => return Err(format!("{k} must be a duration string like \"2s\"")),
                    };
                    if k == "latency" {
                        self.latency = d
                    } else {
                        self.search_lag = d
                    }
                }
                other => return Err(format!("unknown fault knob: {other}")),
            }
        }
        Ok(())
    }
}

fn opt_u64(v: &Value, k: &str) -> Result<Option<u64>, String> {
    match v {
        Value::Null => Ok(None),
        _ => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{k} must be a non-negative integer or null")),
    }
}

fn rate(v: &Value, k: &str) -> Result<f64, String> {
    v.as_f64()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{k} must be a number between 0 and 1"))
}

/// Why a request was refused with 429.
#[derive(Debug, Clone)]
pub(crate) struct Limited {
    pub policy: &'static str,
    pub message: &'static str,
    pub retry_after: Duration,
}

/// Rate-limit header values for a successful non-search request.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateHeaders {
    pub window: Option<(u32, u32, u64)>,
    pub daily: Option<(u64, u64)>,
}

/// Mutable run-time state.
pub(crate) struct Runtime {
    pub faults: Faults,
    pub rng: StdRng,
    window: VecDeque<i64>,
    search_window: VecDeque<i64>,
    daily_count: u64,
    daily_day: i64,
    /// Issued OAuth access tokens → expiry (epoch ms on the sandbox's clock).
    pub tokens: HashMap<String, i64>,
}

fn utc_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(86_400_000)
}

fn until_midnight(now_ms: i64) -> Duration {
    Duration::from_millis((86_400_000 - now_ms.rem_euclid(86_400_000)) as u64)
}

/// Time from `since` to `now` (zero if the clock was set back before `since`).
fn elapsed(now: i64, since: i64) -> Duration {
    Duration::from_millis(u64::try_from(now.saturating_sub(since)).unwrap_or(0))
}

fn slide(w: &mut VecDeque<i64>, now: i64, per: Duration) {
    while let Some(front) = w.front() {
        if elapsed(now, *front) >= per {
            w.pop_front();
        } else {
            break;
        }
    }
}

impl Runtime {
    /// Fresh knobs, windows and tokens; `now_ms` (sandbox clock) fixes the daily limit's day.
    pub fn new(config: &SandboxConfig, now_ms: i64) -> Self {
        Runtime {
            faults: Faults::from_config(config),
            rng: match config.fault_seed {
                Some(s) => StdRng::seed_from_u64(s),
                None => StdRng::from_os_rng(),
            },
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            daily_count: 0,
            daily_day: utc_day(now_ms),
            tokens: HashMap::new(),
        }
    }

    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.rng.random::<f64>() < p)
    }

    /// Counts a request against the limits, or says which limit refused it; `now` is epoch ms
    /// on the sandbox's clock.
    pub fn admit(&mut self, search: bool, now: i64) -> Result<RateHeaders, Limited> {
        let day = utc_day(now);
        if day != self.daily_day {
            self.daily_day = day;
            self.daily_count = 0;
        }
        if let Some(d) = self.faults.daily_limit
            && self.daily_count >= d
        {
            return Err(Limited {
                policy: "DAILY",
                message: "You have reached your daily limit.",
                retry_after: until_midnight(now),
            });
        }
        let mut headers = RateHeaders::default();
        if search {
            if let Some(n) = self.faults.search_per_second {
                let per = Duration::from_secs(1);
                slide(&mut self.search_window, now, per);
                if self.search_window.len() >= n as usize {
                    let front = self.search_window.front().copied().unwrap_or(now);
                    return Err(Limited {
                        policy: "SECONDLY",
                        message: "You have reached your secondly limit.",
                        retry_after: per.saturating_sub(elapsed(now, front)),
                    });
                }
                self.search_window.push_back(now);
            }
        } else if let Some(r) = self.faults.rate_limit {
            slide(&mut self.window, now, r.per);
            if self.window.len() >= r.limit as usize {
                let front = self.window.front().copied().unwrap_or(now);
                let (policy, message) = if r.per <= Duration::from_secs(1) {
                    ("SECONDLY", "You have reached your secondly limit.")
                } else {
                    (
                        "TEN_SECONDLY_ROLLING",
                        "You have reached your ten_secondly_rolling limit.",
                    )
                };
                return Err(Limited {
                    policy,
                    message,
                    retry_after: r.per.saturating_sub(elapsed(now, front)),
                });
            }
            self.window.push_back(now);
            headers.window = Some((
                r.limit,
                r.limit - self.window.len() as u32,
                r.per.as_millis() as u64,
            ));
        }
        self.daily_count += 1;
        if let Some(d) = self.faults.daily_limit {
            headers.daily = Some((d, d - self.daily_count));
        }
        Ok(headers)
    }
}
