//! Connection settings. One [`ClientConfig`] describes one HubSpot connection; every flow that
//! uses the connection shares its budget through one [`crate::Client`].

use std::time::Duration;

use rivulet_http::{DEFAULT_MAX_BODY_BYTES, SharedClock};
pub use rivulet_http::{RetryPolicy, Throttle};
use secrecy::SecretString;

/// HubSpot's API host, the same for every account.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
/// HubSpot's OAuth v1 token endpoint; configurable because v1 is deprecated in favour of v3.
pub const DEFAULT_TOKEN_URL: &str = "https://api.hubapi.com/oauth/v1/token";
/// Where a person grants an app access to an account (the start of the authorization-code flow).
pub const DEFAULT_AUTHORIZE_URL: &str = "https://app.hubspot.com/oauth/authorize";

/// Which of HubSpot's two path families the client calls. The request and answer shapes are the
/// same; only the paths differ (see [`crate::paths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ApiVersion {
    /// The numbered paths: `/crm/v3/objects/…`, `/crm/v3/properties/…` and associations on
    /// `/crm/v4/…`. HubSpot stops supporting v4 on 30 March 2027 and v1–v3 in September 2027.
    #[default]
    V3,
    /// The date-versioned paths, generally available since 30 March 2026:
    /// `/crm/objects/2026-03/…`, `/crm/properties/2026-03/…`, `/crm/associations/2026-03/…`.
    V2026_03,
}

impl ApiVersion {
    /// As written in a connections file: `v3` or `2026-03`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V3 => "v3",
            ApiVersion::V2026_03 => "2026-03",
        }
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s.trim() {
            "v3" | "V3" => Ok(ApiVersion::V3),
            "2026-03" => Ok(ApiVersion::V2026_03),
            other => Err(crate::Error::Config(format!(
                "unknown HubSpot API version {other:?}: use `v3` or `2026-03`"
            ))),
        }
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of one HubSpot connection.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API root, `https://api.hubapi.com` unless testing against the sandbox.
    pub base_url: String,
    /// The path family every call uses: [`ApiVersion::V3`] unless chosen.
    pub api_version: ApiVersion,
    /// Credentials.
    pub auth: Auth,
    /// The general request budget (everything but search).
    pub throttle: Throttle,
    /// Search requests per second; HubSpot counts search separately (5/s per account).
    pub search_per_second: u32,
    /// Requests in flight at once.
    pub concurrent_connections: usize,
    /// Batch calls in flight at once.
    pub concurrent_batches: usize,
    /// Time allowed for one HTTP request, from send to the last byte of the answer.
    pub timeout: Duration,
    /// Retries of transient failures, and the cap on any wait HubSpot asks for
    /// (`retry.max_retry_after`).
    pub retry: RetryPolicy,
    /// Largest answer body read (64 MiB by default); a larger one fails the call.
    pub max_response_bytes: u64,
    /// Wall time (the daily reset, `Retry-After` dates); the system clock unless testing.
    pub clock: SharedClock,
    /// Send an `objectWriteTraceId` with every batch input, which makes HubSpot answer 207 with
    /// an error per bad input instead of refusing the whole batch. Off, a refused batch is
    /// bisected until the bad inputs stand alone (more calls, same outcomes).
    pub multi_status: bool,
}

impl ClientConfig {
    /// Settings with HubSpot's defaults for a bearer token (private app or service key).
    pub fn with_token(token: impl Into<String>) -> Self {
        Self::new(Auth::Token(SecretString::from(token.into())))
    }

    /// Settings with HubSpot's defaults for the given credentials.
    pub fn new(auth: Auth) -> Self {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_version: ApiVersion::default(),
            auth,
            throttle: Throttle::default(),
            search_per_second: 5,
            concurrent_connections: 5,
            concurrent_batches: 5,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_response_bytes: DEFAULT_MAX_BODY_BYTES,
            clock: rivulet_http::clock::system(),
            multi_status: true,
        }
    }

    /// Same settings against another API root (the sandbox, a proxy).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Same settings on another path family.
    pub fn api_version(mut self, version: ApiVersion) -> Self {
        self.api_version = version;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_string()));
        if self.throttle.limit == 0 || self.throttle.per.is_zero() {
            return bad("throttle.limit and throttle.per must be positive");
        }
        if self.search_per_second == 0 {
            return bad("search_per_second must be positive");
        }
        if self.concurrent_connections == 0 || self.concurrent_batches == 0 {
            return bad("concurrent_connections and concurrent_batches must be positive");
        }
        if self.retry.max_attempts == 0 || self.retry.max_rate_limited_attempts == 0 {
            return bad(
                "retry.max_attempts and retry.max_rate_limited_attempts must be at least 1",
            );
        }
        if self.max_response_bytes == 0 {
            return bad("max_response_bytes must be positive");
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return bad("base_url must start with http:// or https://");
        }
        Ok(())
    }
}

/// How the connection authenticates. Secrets never appear in `Debug` output.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A static bearer token (private app access token or service key).
    Token(SecretString),
    /// OAuth 2.0 refresh-token grant; access tokens are fetched and refreshed by the client.
    OAuth {
        /// The app's client id.
        client_id: String,
        /// The app's client secret.
        client_secret: SecretString,
        /// The long-lived refresh token of the installation.
        refresh_token: SecretString,
        /// Token endpoint, [`DEFAULT_TOKEN_URL`] by default.
        token_url: String,
    },
}
