//! The connection handle. Every request goes through the connection's HTTP policy
//! (`rivulet-http`: throttle, in-flight limit, retries, waits, size cap) with HubSpot's hooks
//! ([`crate::policy`]); here a call is described, sent, and its failure read HubSpot's way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rivulet_http::{Policy, PolicyConfig, Request, Url};

use crate::ClientConfig;
use crate::auth::TokenSource;
use crate::error::{Error, TransportKind, parse_error_body};
use crate::policy::{CallHooks, Limits};

/// A HubSpot connection. Cheap to clone; clones share the throttle, the tokens and the
/// statistics, so every flow using the connection shares its budget.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The shared HTTP policy: throttle slots, in-flight limit, retries, waits, size cap.
    policy: Policy,
    base_url: String,
    pub(crate) tokens: TokenSource,
    pub(crate) limits: Limits,
    pub(crate) config: ClientConfig,
    pub(crate) stats: Stats,
    /// The rate-limit headers of the last answer that had them.
    pub(crate) headroom: Mutex<Option<RateLimitHeadroom>>,
    /// Product ids by SKU, as this client found or created them (see
    /// [`Client::ensure_products`]): search shows new products only after a while.
    pub(crate) skus: Mutex<crate::commerce::SkuMemory>,
}

/// What HubSpot's `X-HubSpot-RateLimit-*` headers said on the last answer that carried them
/// (search answers carry none, and OAuth calls no daily pair). Headers HubSpot left out are
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeadroom {
    /// `X-HubSpot-RateLimit-Max`: requests allowed per interval (the burst limit).
    pub max: Option<u64>,
    /// `X-HubSpot-RateLimit-Remaining`: requests left in the current interval.
    pub remaining: Option<u64>,
    /// `X-HubSpot-RateLimit-Interval-Milliseconds`: the interval.
    pub interval: Option<std::time::Duration>,
    /// `X-HubSpot-RateLimit-Daily`: requests allowed per day (private apps).
    pub daily: Option<u64>,
    /// `X-HubSpot-RateLimit-Daily-Remaining`: requests left today.
    pub daily_remaining: Option<u64>,
    /// When the answer came, on the connection's clock.
    pub seen_at: DateTime<Utc>,
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

/// HubSpot's own counters; the rest are the HTTP policy's.
#[derive(Default)]
pub(crate) struct Stats {
    write_requests: AtomicU64,
    token_refreshes: AtomicU64,
}

impl Stats {
    pub(crate) fn write_sent(&self) {
        self.write_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn token_refreshed(&self) {
        self.token_refreshes.fetch_add(1, Ordering::Relaxed);
    }
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
        let policy = Policy::new(PolicyConfig {
            label: "hubspot".into(),
            retry: config.retry,
            timeout: config.timeout,
            max_in_flight: config.concurrent_connections,
            max_body_bytes: config.max_response_bytes,
            // Each call names its budget (general or search).
            throttle: None,
            default_headers: Default::default(),
            clock: config.clock.clone(),
        })
        .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                policy,
                base_url: config.base_url.trim_end_matches('/').to_string(),
                tokens: TokenSource::new(&config)?,
                limits: Limits::new(&config),
                config,
                stats: Stats::default(),
                headroom: Mutex::new(None),
                skus: Mutex::new(crate::commerce::SkuMemory::default()),
            }),
        })
    }

    /// The connection's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The paths of the connection's API version.
    pub fn paths(&self) -> crate::paths::Paths {
        crate::paths::Paths::new(self.inner.config.api_version)
    }

    /// HubSpot's rate-limit headers as the last answer that carried them said; `None` before
    /// any did (a client that has only searched, or a server that sends none).
    pub fn rate_limit_headroom(&self) -> Option<RateLimitHeadroom> {
        self.inner.headroom.lock().clone()
    }

    /// Counters since the client was made.
    pub fn stats(&self) -> ClientStats {
        let s = &self.inner.stats;
        let http = self.inner.policy.stats();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: http.requests,
            write_requests: get(&s.write_requests),
            rate_limited: http.rate_limited,
            retries: http.retries,
            token_refreshes: get(&s.token_refreshes),
            server_errors: http.server_errors,
            timeouts: http.timeouts,
        }
    }

    /// The HTTP policy's counters (throttle waits and their total time included).
    pub fn http_stats(&self) -> rivulet_http::Stats {
        self.inner.policy.stats()
    }

    /// Keeps to a `1/runners` part of the configured burst and search limits: runners that
    /// share one account (and so HubSpot's limits) together stay within them.
    pub fn share_budget(&self, runners: usize) {
        let n = u32::try_from(runners.max(1)).unwrap_or(u32::MAX);
        let config = &self.inner.config;
        self.inner
            .limits
            .general
            .set_limit(config.throttle.limit / n);
        self.inner
            .limits
            .search
            .set_limit(config.search_per_second / n);
    }

    /// Sends `call` through the connection's HTTP policy (which retries what may be retried)
    /// and returns the 2xx answer or a typed error.
    pub(crate) async fn send(&self, call: &Call) -> Result<Answer, Error> {
        let inner = &*self.inner;
        let _batch_permit = if call.batch {
            Some(inner.limits.batch().await)
        } else {
            None
        };
        let request = self.request(call)?;
        let mut hooks = CallHooks::new(inner, call);
        match inner.policy.send_with(&request, &mut hooks).await {
            Ok(r) => Ok(Answer {
                status: r.status.as_u16(),
                body: r.body,
            }),
            Err(e) => Err(self.error(e).await),
        }
    }

    /// The policy's description of `call`.
    fn request(&self, call: &Call) -> Result<Request, Error> {
        let mut url = Url::parse(&format!("{}{}", self.inner.base_url, call.path))
            .map_err(|e| Error::Config(format!("`{}` does not form a URL: {e}", call.path)))?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        let mut request = Request::new(call.method.clone(), url)
            .idempotent(call.idempotent)
            .budget(self.inner.limits.window(call.budget).clone());
        if let Some(body) = &call.body {
            let json = serde_json::to_vec(body).map_err(|e| Error::Config(e.to_string()))?;
            request = request.json(json);
        }
        Ok(request)
    }

    /// HubSpot's reading of a failed send.
    async fn error(&self, e: rivulet_http::Error) -> Error {
        use rivulet_http::Error as Http;
        match e {
            Http::Stopped { reason, .. } => match reason.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Error::Unknown(other.to_string()),
            },
            Http::Transport { kind, message, .. } => Error::Transport {
                kind,
                message: rivulet_http::secrets::scrub_owned(message),
            },
            // The answer came (a create happened) but was not read: as ambiguous as a lost one.
            Http::TooLarge { limit, .. } => Error::Transport {
                kind: TransportKind::Other,
                message: format!(
                    "the answer is larger than max_response_bytes ({limit} bytes); not read"
                ),
            },
            Http::Status { status, body, .. } => self.api_error(status.as_u16(), &body).await,
            Http::RateLimited { attempts, body, .. } => Error::RateLimited {
                policy: parse_error_body(429, &body)
                    .policy_name
                    .unwrap_or_else(|| "unknown".into()),
                attempts,
            },
            Http::Config(m) => Error::Config(m),
        }
    }

    async fn api_error(&self, status: u16, body: &[u8]) -> Error {
        let mut e = parse_error_body(status, body);
        e.message = rivulet_http::secrets::scrub_owned(e.message);
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
