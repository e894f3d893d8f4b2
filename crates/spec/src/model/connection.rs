//! Connections: named, reusable settings for talking to a system, kept apart from flows so
//! that many flows share one connection and therefore one rate budget.
//!
//! Secrets are never written in these files: tokens come from the environment (`${VAR}`) or
//! from a secret file (`token_file`). Each connector's settings live in
//! [`crate::connectors`]; [`Connection`] joins them, one key per connector.

use super::Duration;
use crate::connectors::{http, hubspot};
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
#[serde(rename_all = "snake_case")]
#[schemars(transform = crate::schema::one_key_object)]
pub enum Connection {
    /// A HubSpot account.
    Hubspot(hubspot::HubSpotConnection),
    /// A JSON HTTP API.
    Http(http::HttpConnection),
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
    /// The kind of this connection.
    pub fn kind(&self) -> ConnectionKind {
        match self {
            Connection::Hubspot(_) => ConnectionKind::HubSpot,
            Connection::Http(_) => ConnectionKind::Http,
        }
    }

    /// The name to show for it in logs and history, when it has one.
    pub fn display_name(&self) -> Option<&str> {
        match self {
            Connection::Hubspot(c) => c.display_name.as_deref(),
            Connection::Http(c) => c.display_name.as_deref(),
        }
    }
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

/// Give up on a request after this long (it is then retried) — the default of every connection.
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
