//! The runtime of an `http` connection: one client per connection, shared by every flow that
//! uses it (and so sharing its throttle), with the same retry rules as the HubSpot client.
//!
//! - `429` honours `Retry-After` (seconds or an HTTP date) and pauses the whole connection,
//!   else backs off; `5xx`, timeouts and connection errors retry with capped exponential
//!   backoff and jitter; other `4xx` never retry.
//! - Header values come from the environment (`${VAR}`); errors name the variable, never its
//!   value, and never print a full URL (its query may carry a key).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::time::Instant;

use crate::env::{EnvError, interpolate_env};
use crate::model::HttpConnection;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff delay; doubled per attempt, with jitter.
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest wait a `Retry-After` may impose.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// What went wrong talking to an HTTP API. Carries no header values and no query strings.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A connection setting uses an environment variable that cannot be read.
    #[error("connection setting `{setting}`: {source}")]
    Env {
        /// Which setting (`base_url`, `header Authorization`).
        setting: String,
        /// The interpolation error (names the variable only).
        source: EnvError,
    },
    /// A connection setting is unusable (bad base URL, bad header name or value).
    #[error("{0}")]
    Config(String),
    /// A path or link does not form a URL.
    #[error("`{path}` does not form a URL: {message}")]
    Url {
        /// The path or link as given.
        path: String,
        /// Why.
        message: String,
    },
    /// The server answered with a status that is not a success (after any retries).
    #[error("HTTP {status} from {method} {path}{after}: {snippet}", after = attempts_text(*attempts))]
    Status {
        /// The HTTP status.
        status: u16,
        /// The method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The start of the body (at most 200 characters).
        snippet: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A success response is not JSON.
    #[error("HTTP {status} from {method} {path} is not JSON ({message}); body starts: {snippet}")]
    NotJson {
        /// The HTTP status.
        status: u16,
        /// The method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The parse error.
        message: String,
        /// The start of the body (at most 200 characters).
        snippet: String,
    },
    /// No answer: a timeout or a connection error (after any retries).
    #[error("{method} {path}{after}: {message}", after = attempts_text(*attempts))]
    Transport {
        /// The method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// What happened (without the URL).
        message: String,
        /// Whether the request may have reached the server (a timeout) rather than surely not
        /// (a refused connection).
        maybe_sent: bool,
        /// Attempts made.
        attempts: u32,
    },
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// Counters of one client, for tests and run summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Requests sent (each attempt counts).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// `429` answers.
    pub rate_limited: u64,
    /// Times a request waited for the throttle.
    pub throttle_waits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    throttle_waits: AtomicU64,
}

/// A rolling-window budget: at most `limit` admissions in any window of length `per`.
#[derive(Debug)]
struct Window {
    limit: usize,
    per: Duration,
    state: Mutex<WindowState>,
}

#[derive(Debug, Default)]
struct WindowState {
    admitted: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Window {
    /// Waits for a place; returns whether it had to wait.
    async fn acquire(&self) -> bool {
        let mut waited = false;
        loop {
            let wake = {
                let now = Instant::now();
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                while st
                    .admitted
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.per)
                {
                    st.admitted.pop_front();
                }
                match st.paused_until {
                    Some(until) if until > now => until,
                    _ if st.admitted.len() < self.limit => {
                        st.admitted.push_back(now);
                        return waited;
                    }
                    _ => match st.admitted.front() {
                        Some(first) => *first + self.per,
                        None => now,
                    },
                }
            };
            waited = true;
            tokio::time::sleep_until(wake).await;
        }
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.paused_until.is_none_or(|p| p < until) {
            st.paused_until = Some(until);
        }
    }
}

/// A client for one `http` connection. Cheap to clone; clones share the throttle and counters.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// The base URL, without a trailing `/`.
    base: String,
    window: Option<Window>,
    policy: RetryPolicy,
    counters: Counters,
}

/// A JSON answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonResponse {
    /// The status (a success).
    pub status: StatusCode,
    /// The final URL of the request (to resolve relative links against).
    pub url: Url,
    /// The body; `null` when it was empty.
    pub body: Value,
}

impl HttpClient {
    /// Builds the client of a connection, reading `${VAR}`s from the environment.
    pub fn new(conn: &HttpConnection) -> Result<HttpClient, HttpError> {
        HttpClient::with_policy(conn, RetryPolicy::default())
    }

    /// [`HttpClient::new`] with a retry policy (tests use short delays).
    pub fn with_policy(
        conn: &HttpConnection,
        policy: RetryPolicy,
    ) -> Result<HttpClient, HttpError> {
        let base = interpolate_env(&conn.base_url).map_err(|source| HttpError::Env {
            setting: "base_url".into(),
            source,
        })?;
        let base = base.trim_end_matches('/').to_string();
        let parsed = Url::parse(&base)
            .map_err(|e| HttpError::Config(format!("base_url is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(HttpError::Config(
                "base_url must start with http:// or https://".into(),
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &conn.headers {
            let setting = format!("header {name}");
            let value = interpolate_env(value).map_err(|source| HttpError::Env {
                setting: setting.clone(),
                source,
            })?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::Config(format!("`{name}` is not a valid header name")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                HttpError::Config(format!("{setting}: the value is not valid in a header"))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let timeout = conn.timeout.get();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .default_headers(headers)
            .build()
            .map_err(|e| HttpError::Config(format!("HTTP client: {e}")))?;
        let window = conn.throttle.map(|t| Window {
            limit: t.limit.max(1) as usize,
            per: t.per.get(),
            state: Mutex::new(WindowState::default()),
        });
        Ok(HttpClient {
            inner: Arc::new(Inner {
                http,
                base,
                window,
                policy,
                counters: Counters::default(),
            }),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> HttpStats {
        let c = &self.inner.counters;
        HttpStats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            throttle_waits: c.throttle_waits.load(Ordering::Relaxed),
        }
    }

    /// The URL of a path below the base URL (`/customers` → `{base}/customers`), or an
    /// absolute `http(s)://` URL as is.
    pub fn url(&self, path_or_url: &str) -> Result<Url, HttpError> {
        let text = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else if path_or_url.is_empty() {
            self.inner.base.clone()
        } else {
            format!(
                "{}/{}",
                self.inner.base,
                path_or_url.trim_start_matches('/')
            )
        };
        Url::parse(&text).map_err(|e| HttpError::Url {
            path: path_or_url.to_string(),
            message: e.to_string(),
        })
    }

    /// `GET` a path (or URL) with query parameters, expecting JSON.
    pub async fn get_json(
        &self,
        path_or_url: &str,
        query: &[(String, String)],
    ) -> Result<JsonResponse, HttpError> {
        self.send_json(Method::GET, path_or_url, query, None, &[])
            .await
    }

    /// Sends a request (with a JSON body if given, and extra headers) and parses the JSON
    /// answer, retrying by the rules above. A success with an empty body is `null`; any other
    /// non-JSON success is [`HttpError::NotJson`]; a failure status is [`HttpError::Status`].
    pub async fn send_json(
        &self,
        method: Method,
        path_or_url: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<JsonResponse, HttpError> {
        let mut url = self.url(path_or_url)?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let path = url.path().to_string();
        let body_bytes = match body {
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| HttpError::Config(e.to_string()))?),
            None => None,
        };
        let policy = self.inner.policy;
        let counters = &self.inner.counters;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(w) = &self.inner.window {
                if w.acquire().await {
                    counters.throttle_waits.fetch_add(1, Ordering::Relaxed);
                }
            }
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self.inner.http.request(method.clone(), url.clone());
            for (name, value) in headers {
                req = req.header(*name, value.as_str());
            }
            if let Some(b) = &body_bytes {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            req = req.header(reqwest::header::ACCEPT, "application/json");
            let last = attempt >= policy.max_attempts.max(1);
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let maybe_sent = !e.is_connect();
                    if !last {
                        tokio::time::sleep(backoff(&policy, attempt)).await;
                        continue;
                    }
                    return Err(HttpError::Transport {
                        method: method.to_string(),
                        path,
                        message: transport_message(e),
                        maybe_sent,
                        attempts: attempt,
                    });
                }
            };
            let status = resp.status();
            let final_url = resp.url().clone();
            if status == StatusCode::TOO_MANY_REQUESTS {
                counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                let wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
                    .map(|d| d.min(policy.max_retry_after));
                if !last {
                    let wait = wait.unwrap_or_else(|| backoff(&policy, attempt));
                    if let Some(w) = &self.inner.window {
                        w.pause(wait);
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            } else if status.is_server_error() && !last {
                tokio::time::sleep(backoff(&policy, attempt)).await;
                continue;
            }
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    if !last {
                        tokio::time::sleep(backoff(&policy, attempt)).await;
                        continue;
                    }
                    return Err(HttpError::Transport {
                        method: method.to_string(),
                        path,
                        message: transport_message(e),
                        maybe_sent: true,
                        attempts: attempt,
                    });
                }
            };
            if !status.is_success() {
                return Err(HttpError::Status {
                    status: status.as_u16(),
                    method: method.to_string(),
                    path,
                    snippet: snippet(&bytes),
                    attempts: attempt,
                });
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(JsonResponse {
                    status,
                    url: final_url,
                    body: Value::Null,
                });
            }
            return match serde_json::from_slice(&bytes) {
                Ok(body) => Ok(JsonResponse {
                    status,
                    url: final_url,
                    body,
                }),
                Err(e) => Err(HttpError::NotJson {
                    status: status.as_u16(),
                    method: method.to_string(),
                    path,
                    message: e.to_string(),
                    snippet: snippet(&bytes),
                }),
            };
        }
    }
}

fn transport_message(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if msg.len() > 300 {
        let mut cut = 300;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    msg
}

/// At most 200 characters of a body, on one line.
pub fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(800)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out.trim().to_string()
}

/// Capped exponential backoff with equal jitter.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let capped = exp.min(policy.max_delay);
    let half = capped / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// A `Retry-After` value: seconds, or an HTTP date (a date in the past is zero).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Some(secs) = v.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0) {
        return Some(Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (at.with_timezone(&chrono::Utc) - now)
        .num_milliseconds()
        .max(0);
    Some(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 28, 0)
            .unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn snippets_are_short_and_single_line() {
        let long = "x".repeat(1000);
        assert!(snippet(long.as_bytes()).chars().count() <= 201);
        assert_eq!(snippet(b"<html>\n<b>oops</b>"), "<html> <b>oops</b>");
    }

    #[test]
    fn urls_join_below_the_base() {
        let conn = HttpConnection {
            display_name: None,
            base_url: "http://127.0.0.1:1/api/".into(),
            headers: Default::default(),
            throttle: None,
            timeout: crate::model::Duration::from_secs(1),
        };
        let c = HttpClient::new(&conn).unwrap();
        assert_eq!(
            c.url("/customers").unwrap().as_str(),
            "http://127.0.0.1:1/api/customers"
        );
        assert_eq!(
            c.url("customers").unwrap().as_str(),
            "http://127.0.0.1:1/api/customers"
        );
        assert_eq!(
            c.url("https://x.test/a?b=1").unwrap().as_str(),
            "https://x.test/a?b=1"
        );
    }

    #[test]
    fn env_errors_name_the_variable_only() {
        let mut headers = indexmap::IndexMap::new();
        headers.insert(
            "Authorization".to_string(),
            "Bearer ${RIVULET_TEST_UNSET_TOKEN_VAR}".to_string(),
        );
        let conn = HttpConnection {
            display_name: None,
            base_url: "http://127.0.0.1:1".into(),
            headers,
            throttle: None,
            timeout: crate::model::Duration::from_secs(1),
        };
        let e = HttpClient::new(&conn).unwrap_err().to_string();
        assert!(e.contains("RIVULET_TEST_UNSET_TOKEN_VAR"), "{e}");
        assert!(e.contains("header Authorization"), "{e}");
    }
}
