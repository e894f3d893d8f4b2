//! Connections: named, reusable settings for talking to a system, kept apart from flows so
//! that many flows share one connection and therefore one rate budget.
//!
//! Secrets are never written in these files: tokens come from the environment (`${VAR}`) or
//! from a secret file (`token_file`).

use super::Duration;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A connections file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Rivulet connections")]
pub struct ConnectionsFile {
    /// Connections by name; flows refer to them by this name. Strings may use `${VAR}` or
    /// `${VAR:-default}` to read the environment.
    pub connections: IndexMap<String, Connection>,
}

/// One connection: exactly one of `hubspot` or `http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Connection {
    /// A HubSpot account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot: Option<HubSpotConnection>,
    /// A JSON HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpConnection>,
}

/// The kinds of connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// HubSpot.
    HubSpot,
    /// HTTP.
    Http,
}

impl ConnectionKind {
    /// The key that declares this kind in a connections file.
    pub fn key(self) -> &'static str {
        match self {
            ConnectionKind::HubSpot => "hubspot",
            ConnectionKind::Http => "http",
        }
    }
}

impl Connection {
    /// The kind of this connection, if exactly one is declared.
    pub fn kind(&self) -> Option<ConnectionKind> {
        match (&self.hubspot, &self.http) {
            (Some(_), None) => Some(ConnectionKind::HubSpot),
            (None, Some(_)) => Some(ConnectionKind::Http),
            _ => None,
        }
    }
}

/// A HubSpot account: credentials, where to reach it and how hard to use it. Exactly one of
/// `token`, `token_file` or `oauth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotConnection {
    /// A name to recognise the connection by in logs and run history (e.g. `HubSpot – Release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A private app or service key access token, from the environment: `${HUBSPOT_TOKEN}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the access token (e.g. a mounted secret), relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// OAuth 2.0: access tokens obtained and refreshed with a refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuth>,
    /// API base URL; `https://api.hubapi.com` for every HubSpot account.
    #[serde(default = "default_hubspot_base_url")]
    pub base_url: String,
    /// At most `limit` requests per `per` window (HubSpot's burst limit; 100 per 10 s on
    /// Free/Starter, 190 on Professional/Enterprise). Shared by every flow on this connection.
    #[serde(default)]
    pub throttle: Throttle,
    /// At most this many search requests per second (HubSpot allows 5 per account).
    #[serde(default = "default_search_per_second")]
    #[schemars(range(min = 1))]
    pub search_per_second: u32,
    /// At most this many requests in flight at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrent_connections: u32,
    /// At most this many batch calls in flight at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrent_batches: u32,
    /// Requests per day this account may make (250,000 on Free/Starter, 650,000 on
    /// Professional); `validate` warns when polling alone would exceed it.
    #[serde(default = "default_daily_limit")]
    #[schemars(range(min = 1))]
    pub daily_limit: u64,
    /// Give up on a request after this long (it is then retried).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn default_hubspot_base_url() -> String {
    "https://api.hubapi.com".into()
}

fn default_search_per_second() -> u32 {
    5
}

fn default_concurrency() -> u32 {
    5
}

fn default_daily_limit() -> u64 {
    250_000
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// OAuth 2.0 refresh-token credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret, from the environment: `${HUBSPOT_CLIENT_SECRET}`.
    pub client_secret: String,
    /// The refresh token, from the environment: `${HUBSPOT_REFRESH_TOKEN}`.
    pub refresh_token: String,
    /// The token endpoint.
    #[serde(default = "default_token_url")]
    pub token_url: String,
}

fn default_token_url() -> String {
    "https://api.hubapi.com/oauth/v1/token".into()
}

/// A request budget: at most `limit` requests in any `per` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Requests allowed per window.
    #[schemars(range(min = 1))]
    pub limit: u32,
    /// The window (`10s` for HubSpot's burst limit).
    pub per: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            limit: 100,
            per: Duration::from_secs(10),
        }
    }
}

/// A JSON HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConnection {
    /// A name to recognise the connection by in logs and run history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Base URL every path is joined to, e.g. `https://erp.example.com/api`.
    pub base_url: String,
    /// Headers sent with every request; put secrets in the environment:
    /// `Authorization: "Bearer ${ERP_TOKEN}"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// At most `limit` requests per `per` window; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Give up on a request after this long (it is then retried).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}
