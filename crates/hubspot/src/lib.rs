//! Rivulet's HubSpot CRM client.
//!
//! One [`Client`] per HubSpot connection, shared (it is `Clone`) by every flow that uses the
//! connection, so they share its request budget. Every write answers with one [`WriteOutcome`]
//! per input record.
//!
//! - [`config`]: connection settings — base URL, auth, throttle, concurrency, retries.
//! - [`auth`](crate::Auth): bearer token or OAuth refresh, secrets kept out of logs and errors.
//! - `client`: the connection handle; every request goes through the shared HTTP policy
//!   (`rivulet-http`: throttle, in-flight limit, retries, backoff, capped `Retry-After`).
//! - `policy`: HubSpot's side of that policy — search budget, batch limit, DAILY pause of
//!   writes, `X-HubSpot-RateLimit-*` headers, `policyName` decisions, token refresh on 401.
//! - [`error`]: typed errors an operator can act on.
//! - [`objects`]: object types and single-record calls.
//! - [`batch`]: chunked, bisected batch writes with per-record outcomes; upserts.
//! - [`search`]: CRM search.
//! - [`lookup`]: finding many records by natural keys at once (unique or not).
//! - [`values`]: property values in HubSpot's formats.
//! - [`paths`]: every path, for both API versions ([`ApiVersion`]: `v3` and `2026-03`).
//! - [`properties`]: property definitions; dropdown options by value or label.
//! - [`associations`]: associations between records, created in batches and listed.
//! - [`commerce`]: products by SKU, created when missing, for deals with line items.
//! - [`oauth`]: the authorization-code flow and what a token may do.
//!
//! Rate-limit headroom: [`Client::rate_limit_headroom`] is what HubSpot's
//! `X-HubSpot-RateLimit-*` headers said last.

pub mod associations;
mod auth;
pub mod batch;
mod client;
pub mod commerce;
pub mod config;
pub mod error;
pub mod lookup;
pub mod oauth;
pub mod objects;
pub mod paths;
mod policy;
pub mod properties;
pub mod search;
pub mod values;

pub use associations::{AssociatedRecord, AssociationInput, AssociationOutcome};
pub use batch::{BATCH_SIZE, WriteOutcome};
pub use client::{Client, ClientStats, RateLimitHeadroom};
pub use commerce::{ProductInput, ProductOutcome, SkuMemory};
pub use config::{
    ApiVersion, Auth, ClientConfig, DEFAULT_AUTHORIZE_URL, DEFAULT_BASE_URL, DEFAULT_TOKEN_URL,
    RetryPolicy, Throttle,
};
pub use error::{ApiError, Error, RecordError, TransportKind};
pub use lookup::{IN_FILTER_MAX_BYTES, IN_FILTER_MAX_VALUES};
pub use oauth::{OAuthApp, TokenGrant, TokenInfo, authorize_url, exchange_code};
pub use objects::{
    Association, AssociationType, ListRequest, Object, ObjectType, Page, WriteInput,
};
pub use properties::{NotAnOption, PropertyDefinition, PropertyOption};
pub use search::{Direction, Filter, FilterGroup, Operator, SearchPage, SearchRequest, Sort};
pub use secrecy::{ExposeSecret, SecretString};
