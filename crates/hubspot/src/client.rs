//! The connection handle and its one send loop: every request passes the throttle, gets a token,
//! and is retried here according to what the answer (or its absence) means.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::ClientConfig;
use crate::auth::TokenSource;
use crate::error::{Error, TransportKind, parse_error_body};
use crate::retry::{self, RateLimitAction};
use crate::throttle::Limits;

/// A HubSpot connection. Cheap to clone; clones share the throttle, the tokens and the
/// statistics, so every flow using the connection shares its budget.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    base_url: String,
    tokens: TokenSource,
    limits: Limits,
    pub(crate) config: ClientConfig,
    stats: Stats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// Counters since the client was made (shared by clones), for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent to the API (token requests excluded).
    pub requests: u64,
    /// Of those, requests that write (create, update, upsert, archive; single or batch).
    pub write_requests: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Requests sent again after a failure (429, 5xx, timeout, connection error, 401).
    pub retries: u64,
    /// OAuth access tokens fetched.
    pub token_refreshes: u64,
    /// 5xx answers received.
    pub server_errors: u64,
    /// Requests that got no answer in time.
    pub timeouts: u64,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    write_requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    token_refreshes: AtomicU64,
    server_errors: AtomicU64,
    timeouts: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Which request budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    General,
    Search,
}

/// One API call, described so that it can be sent again.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: reqwest::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub budget: Budget,
    /// Counts against `concurrent_batches`.
    pub batch: bool,
    /// Stopped by a DAILY pause; counted in `write_requests`.
    pub write: bool,
    /// Safe to send again when the first answer was lost (everything but creates).
    pub idempotent: bool,
}

impl Call {
    pub(crate) fn get(path: String, query: Vec<(String, String)>) -> Self {
        Call {
            method: reqwest::Method::GET,
            path,
            query,
            body: None,
            budget: Budget::General,
            batch: false,
            write: false,
            idempotent: true,
        }
    }

    pub(crate) fn post(path: String, body: serde_json::Value) -> Self {
        Call {
            method: reqwest::Method::POST,
            path,
            query: Vec::new(),
            body: Some(body),
            budget: Budget::General,
            batch: false,
            write: false,
            idempotent: true,
        }
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    /// Makes a client for one connection. No request is sent yet.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.concurrent_connections)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url.trim_end_matches('/').to_string(),
                tokens: TokenSource::new(&config.auth),
                limits: Limits::new(&config),
                config,
                stats: Stats::default(),
            }),
        })
    }

    /// The connection's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Counters since the client was made.
    pub fn stats(&self) -> ClientStats {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: get(&s.requests),
            write_requests: get(&s.write_requests),
            rate_limited: get(&s.rate_limited),
            retries: get(&s.retries),
            token_refreshes: get(&s.token_refreshes),
            server_errors: get(&s.server_errors),
            timeouts: get(&s.timeouts),
        }
    }

    /// Sends `call`, retrying what may be retried, and returns the 2xx answer or a typed error.
    pub(crate) async fn send(&self, call: &Call) -> Result<Answer, Error> {
        let inner = &*self.inner;
        let policy = inner.config.retry;
        let _batch_permit = if call.batch {
            Some(inner.limits.batch().await)
        } else {
            None
        };
        let window = match call.budget {
            Budget::General => &inner.limits.general,
            Budget::Search => &inner.limits.search,
        };
        let url = format!("{}{}", inner.base_url, call.path);
        let mut transient_failures = 0u32;
        let mut rate_limited = 0u32;
        let mut sends = 0u32;
        let mut reauthorized = false;
        let mut token_override = None;
        loop {
            if call.write
                && let Some(left) = inner.limits.daily_pause_left()
            {
                return Err(Error::DailyLimit { resume_in: left });
            }
            let slot = window.acquire().await;
            let permit = inner.limits.connection().await;
            let token = match token_override.take() {
                Some(t) => t,
                None => {
                    let t = inner.tokens.token(&inner.http).await?;
                    if t.refreshed {
                        bump(&inner.stats.token_refreshes);
                    }
                    t.value
                }
            };
            sends += 1;
            if sends > 1 {
                bump(&inner.stats.retries);
            }
            bump(&inner.stats.requests);
            if call.write {
                bump(&inner.stats.write_requests);
            }
            let mut req = inner
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(token.expose_secret());
            if !call.query.is_empty() {
                req = req.query(&call.query);
            }
            if let Some(body) = &call.body {
                req = req.json(body);
            }
            let result = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    resp.bytes().await.map(|b| (status, headers, b.to_vec()))
                }
                Err(e) => Err(e),
            };
            drop(permit);
            let (status, headers, body) = match result {
                Ok(r) => r,
                Err(e) => {
                    drop(slot);
                    let kind = if e.is_connect() {
                        TransportKind::Connect
                    } else if e.is_timeout() {
                        bump(&inner.stats.timeouts);
                        TransportKind::Timeout
                    } else {
                        TransportKind::Other
                    };
                    transient_failures += 1;
                    // A request that never connected was never seen, so even a create may go again.
                    let resend = call.idempotent || kind == TransportKind::Connect;
                    if resend && transient_failures < policy.max_attempts {
                        tracing::debug!(path = %call.path, %kind, "HubSpot request failed; retrying");
                        tokio::time::sleep(retry::backoff(&policy, transient_failures)).await;
                        continue;
                    }
                    return Err(Error::Transport {
                        kind,
                        message: e.to_string(),
                    });
                }
            };
            if call.budget == Budget::General {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                };
                slot.observe(
                    header("x-hubspot-ratelimit-max").map(|v| v as u32),
                    header("x-hubspot-ratelimit-remaining").map(|v| v as u32),
                    header("x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis),
                );
            }
            drop(slot);
            match status {
                200..=299 => return Ok(Answer { status, body }),
                401 if inner.tokens.can_refresh() && !reauthorized => {
                    reauthorized = true;
                    let fresh = inner.tokens.after_unauthorized(&inner.http, &token).await?;
                    if fresh.refreshed {
                        bump(&inner.stats.token_refreshes);
                    }
                    token_override = Some(fresh.value);
                    continue;
                }
                429 => {
                    bump(&inner.stats.rate_limited);
                    let api = parse_error_body(status, &body);
                    let retry_after = retry::parse_retry_after(
                        headers
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok()),
                    );
                    let per = match call.budget {
                        Budget::General => inner.config.throttle.per,
                        Budget::Search => Duration::from_secs(1),
                    };
                    let action = retry::on_rate_limited(
                        retry_after,
                        api.policy_name.as_deref(),
                        per,
                        chrono::Utc::now(),
                    );
                    match action {
                        RateLimitAction::Daily(wait) => {
                            tracing::warn!(
                                resume_in_s = wait.as_secs(),
                                "HubSpot daily limit reached"
                            );
                            inner.limits.pause_daily(wait);
                            return Err(Error::DailyLimit { resume_in: wait });
                        }
                        RateLimitAction::Wait(wait) => {
                            rate_limited += 1;
                            if rate_limited >= policy.max_rate_limited_attempts {
                                return Err(Error::RateLimited {
                                    policy: api.policy_name.unwrap_or_else(|| "unknown".into()),
                                    attempts: sends,
                                });
                            }
                            tracing::debug!(path = %call.path, wait_ms = wait.as_millis() as u64, "HubSpot 429; pausing the connection");
                            // Everyone waits, not just this request: the budget is shared.
                            window.pause(wait);
                            continue;
                        }
                    }
                }
                500..=599 => {
                    bump(&inner.stats.server_errors);
                    transient_failures += 1;
                    if call.idempotent && transient_failures < policy.max_attempts {
                        tokio::time::sleep(retry::backoff(&policy, transient_failures)).await;
                        continue;
                    }
                    return Err(self.api_error(status, &body).await);
                }
                _ => return Err(self.api_error(status, &body).await),
            }
        }
    }

    async fn api_error(&self, status: u16, body: &[u8]) -> Error {
        let mut e = parse_error_body(status, body);
        e.message = self.inner.tokens.scrub(e.message).await;
        Error::Api(Box::new(e))
    }

    /// Sends `call` and reads the answer as `T`.
    pub(crate) async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        call: &Call,
    ) -> Result<T, Error> {
        let answer = self.send(call).await?;
        decode(&call.path, &answer.body)
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// True when a create may have happened although no success came back.
pub(crate) fn is_ambiguous(e: &Error) -> bool {
    match e {
        Error::Transport { kind, .. } => *kind != TransportKind::Connect,
        Error::Api(api) => api.status >= 500,
        _ => false,
    }
}
