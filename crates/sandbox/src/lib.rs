//! `rivulet-sandbox`: an in-memory HubSpot CRM emulator served over real HTTP on 127.0.0.1.
//!
//! It speaks the CRM objects API on both of HubSpot's path families, `v3` (associations `v4`)
//! and the date-versioned `2026-03` (single, batch, search, merge, properties, associations and
//! batch associations), OAuth (the authorization page, the token endpoint's code and refresh
//! grants, token descriptions, scopes), HubSpot's error bodies and rate-limit behaviour, and adds
//! a control API under `/_sandbox/` for tests (seed, touch, request log, stats, faults, clock,
//! write rules, property definitions, token scopes, reset). It merges records as HubSpot does, enforces portal write rules, and bounds
//! every hostile input (sizes, numbers, slow or idle connections).
//! It keeps its own [`Clock`] (the system's time plus an adjustable offset) for every timestamp,
//! search lag, token expiry and rate window, so tests can move time instead of waiting.
//! It shares no code with the HubSpot client crate: its types are written from HubSpot's docs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rivulet_sandbox::SandboxError> {
//! use rivulet_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! println!("HubSpot emulator at {}", sandbox.url());
//! sandbox.store().seed(rivulet_sandbox::SeedSpec::generated("contacts", 10))?;
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod assoc;
mod clock;
mod control;
mod error;
mod handle;
mod limits;
mod model;
mod net;
mod oauth;
mod props;
mod search;
mod seed;
mod server;
mod store;

pub use assoc::MAX_ASSOCIATION_BATCH;
pub use clock::{Clock, MAX_CLOCK_OFFSET_MS};
pub use error::{ApiError, ApiErrorData, correlation_id};
pub use handle::{RequestLogEntry, Stats, Store};
pub use limits::{
    Faults, MAX_DAILY_LIMIT, MAX_LATENCY, MAX_RATE, MAX_RATE_WINDOW, MAX_SEARCH_LAG, SearchCap,
};
pub use model::{ObjectType, fmt_ms, parse_ts};
pub use oauth::{APP_ID, CODE_LIFETIME_MS, HUB_ID, MAX_OAUTH_ENTRIES, all_scopes};
pub use props::{PropertyDef, PropertyOption};
pub use seed::{MAX_SEED_COUNT, SeedSpec, demo_seed, seed_from_file, seed_from_json};
pub use store::{RequiredWhen, WriteRules};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Errors of the sandbox library API.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Binding the socket or reading a seed file failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A seed file or body was not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The object type is not one the sandbox serves.
    #[error(
        "unknown object type: {0} (expected companies, contacts, deals, products or line_items)"
    )]
    UnknownObjectType(String),
    /// The operation was refused as the HTTP API would refuse it.
    #[error("{category} ({status}): {message}")]
    Api {
        /// HTTP status the API would answer.
        status: u16,
        /// HubSpot error category.
        category: String,
        /// HubSpot error message.
        message: String,
    },
    /// A rate limit string did not parse.
    #[error("invalid rate limit {0:?}: expected LIMIT/DURATION such as 100/10s")]
    RateLimit(String),
    /// A clock offset or step was out of range (more than 10 years either way).
    #[error("invalid clock change: {0}")]
    Clock(String),
}

impl From<ApiError> for SandboxError {
    fn from(e: ApiError) -> Self {
        let e = e.into_data();
        SandboxError::Api {
            status: e.status.as_u16(),
            category: e.category,
            message: e.message,
        }
    }
}

/// A rolling request limit: at most `limit` requests in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length.
    pub per: Duration,
}

impl RateLimit {
    /// `limit` requests per `per`.
    pub fn new(limit: u32, per: Duration) -> Self {
        RateLimit { limit, per }
    }
}

impl FromStr for RateLimit {
    type Err = SandboxError;

    /// Parses `100/10s`, `5/1s`, `5/s`, `500/1m`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SandboxError::RateLimit(s.to_string());
        let (n, d) = s.trim().split_once('/').ok_or_else(err)?;
        let limit: u32 = n.trim().parse().map_err(|_| err())?;
        let d = d.trim();
        let d = if d.starts_with(|c: char| c.is_ascii_alphabetic()) {
            format!("1{d}")
        } else {
            d.to_string()
        };
        let per = humantime::parse_duration(&d).map_err(|_| err())?;
        if limit == 0 || per.is_zero() {
            return Err(err());
        }
        Ok(RateLimit { limit, per })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.limit, humantime::format_duration(self.per))
    }
}

/// The OAuth client the token endpoint accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// Accepted `client_id`.
    pub client_id: String,
    /// Accepted `client_secret`.
    pub client_secret: String,
    /// Accepted `refresh_token` (also returned by the token endpoint).
    pub refresh_token: String,
    /// Lifetime of issued access tokens (`expires_in`).
    pub access_token_lifetime: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            client_id: "sandbox-client-id".into(),
            client_secret: "sandbox-client-secret".into(),
            refresh_token: "sandbox-refresh-token".into(),
            access_token_lifetime: Duration::from_secs(30 * 60),
        }
    }
}

/// How to start a sandbox. Every knob is a public field; `Default` has limits off, no faults
/// and an ephemeral port.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Port on 127.0.0.1; 0 = ephemeral.
    pub port: u16,
    /// Accepted static bearer tokens; if empty, any non-empty token is accepted (except an
    /// expired token issued by the OAuth endpoint).
    pub tokens: Vec<String>,
    /// Rolling limit for non-search API requests (HubSpot's `TEN_SECONDLY_ROLLING`).
    pub rate_limit: Option<RateLimit>,
    /// Search requests per second (HubSpot: 5; policy `SECONDLY`).
    pub search_per_second: Option<u32>,
    /// Requests per UTC day (policy `DAILY`).
    pub daily_limit: Option<u64>,
    /// Send `Retry-After` (seconds) on 429 responses.
    pub retry_after: bool,
    /// Probability of answering an API request with an injected 502/503.
    pub fault_rate: f64,
    /// Probability of closing the connection without a response.
    pub drop_rate: f64,
    /// Latency added to every API request.
    pub latency: Duration,
    /// Writes stay invisible to search for this long.
    pub search_lag: Duration,
    /// The OAuth client the token endpoint accepts.
    pub oauth: OAuthConfig,
    /// Seed for the fault RNG (`None`: from the OS), for reproducible fault sequences.
    pub fault_seed: Option<u64>,
    /// Entries kept in the request log ring buffer.
    pub request_log_capacity: usize,
    /// Load the demo data set (~50 companies, ~100 contacts) at start.
    pub demo_data: bool,
    /// Seed from this JSON file at start (`{"companies":[{…}],"contacts":[…]}`).
    pub seed_file: Option<PathBuf>,
    /// Start the sandbox's [`Clock`] this many ms ahead of the system clock (negative: behind;
    /// at most ±10 years). With `-10_000` every record it stamps is already 10 s old to a
    /// client reading the system clock.
    pub clock_offset_ms: i64,
    /// What search does once a query has handed out 10,000 results (HubSpot has been seen
    /// both to refuse the next page with a 400 and to simply stop paging).
    pub search_cap: SearchCap,
    /// Time a client has from the first byte of a request to the end of its head (headers);
    /// a connection that takes longer is closed (slowloris). 30 s by default.
    pub header_read_timeout: Duration,
    /// Time an open connection may wait for its next request (keep-alive); then it is closed.
    /// 120 s by default.
    pub idle_timeout: Duration,
    /// Time a client has to send a request's whole body once its head arrived; a slower one
    /// gets a 408 and the connection is closed. 30 s by default.
    pub body_read_timeout: Duration,
    /// Largest request body accepted (413 beyond it). 16 MiB by default.
    pub max_body_bytes: usize,
}

/// Longest `header_read_timeout`, `idle_timeout` or `body_read_timeout` accepted: one day.
pub const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(86_400);

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            port: 0,
            tokens: vec![],
            rate_limit: None,
            search_per_second: None,
            daily_limit: None,
            retry_after: false,
            fault_rate: 0.0,
            drop_rate: 0.0,
            latency: Duration::ZERO,
            search_lag: Duration::ZERO,
            oauth: OAuthConfig::default(),
            fault_seed: None,
            request_log_capacity: 10_000,
            demo_data: false,
            seed_file: None,
            clock_offset_ms: 0,
            search_cap: SearchCap::Error400,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            body_read_timeout: Duration::from_secs(30),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

impl SandboxConfig {
    /// Checks every bound: the fault knobs' ([`Faults::validate`]), connection timeouts between
    /// 1 ms and [`MAX_CONNECTION_TIMEOUT`], a positive body limit, the clock offset.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |message: String| SandboxError::Api {
            status: 400,
            category: "VALIDATION_ERROR".into(),
            message,
        };
        Faults::from_config(self).validate().map_err(bad)?;
        for (name, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ] {
            if d.is_zero() || d > MAX_CONNECTION_TIMEOUT {
                return Err(bad(format!(
                    "{name} must be between 1 ms and {} s, not {d:?}",
                    MAX_CONNECTION_TIMEOUT.as_secs()
                )));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(bad("max_body_bytes must be positive".into()));
        }
        Clock::default().set_offset_ms(self.clock_offset_ms)?;
        Ok(())
    }

    /// HubSpot-like limits: 100 requests per 10 s rolling, 5 searches per second,
    /// 250,000 requests a day, `Retry-After` off.
    pub fn hubspot_limits() -> Self {
        SandboxConfig {
            rate_limit: Some(RateLimit::new(100, Duration::from_secs(10))),
            search_per_second: Some(5),
            daily_limit: Some(250_000),
            ..SandboxConfig::default()
        }
    }
}

/// A running sandbox server.
pub struct Sandbox {
    addr: SocketAddr,
    store: Store,
    shutdown_tx: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish()
    }
}

impl Sandbox {
    /// Binds 127.0.0.1:`config.port`, seeds (demo data / seed file) and serves in a
    /// background task on the current tokio runtime.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let store = Store::new(config.clone());
        if config.demo_data {
            demo_seed(&store);
        }
        if let Some(path) = &config.seed_file {
            seed_from_file(&store, path)?;
        }
        let app = server::router(store.clone());
        let timeouts = net::ConnTimeouts {
            header_read: config.header_read_timeout,
            idle: config.idle_timeout,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                net::KillableListener::new(listener, timeouts),
                app.into_make_service_with_connect_info::<net::ConnHandle>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("sandbox server failed: {e}");
            }
        });
        tracing::info!("HubSpot sandbox listening on http://{addr}");
        Ok(Sandbox {
            addr,
            store,
            shutdown_tx: Some(tx),
            task: Some(task),
        })
    }

    /// Base URL, `http://127.0.0.1:PORT` (use it as the HubSpot API base URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to seed, touch and read records and counters directly.
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The sandbox's clock: read it, advance it, or set its offset from the system clock.
    pub fn clock(&self) -> Clock {
        self.store.clock()
    }

    /// Stops serving: graceful for up to 2 s, then aborted.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_parses() {
        let r: RateLimit = "100/10s".parse().unwrap();
        assert_eq!(r, RateLimit::new(100, Duration::from_secs(10)));
        let r: RateLimit = "5/s".parse().unwrap();
        assert_eq!(r.per, Duration::from_secs(1));
        assert_eq!(r.to_string(), "5/1s");
        assert!("x/10s".parse::<RateLimit>().is_err());
        assert!("10".parse::<RateLimit>().is_err());
    }
}
