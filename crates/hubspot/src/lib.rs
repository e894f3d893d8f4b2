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

mod auth;
pub mod batch;
mod client;
pub mod config;
pub mod error;
pub mod lookup;
pub mod objects;
mod policy;
pub mod search;
pub mod values;

pub use batch::{BATCH_SIZE, WriteOutcome};
pub use client::{Client, ClientStats};
pub use config::{Auth, ClientConfig, DEFAULT_BASE_URL, DEFAULT_TOKEN_URL, RetryPolicy, Throttle};
pub use error::{ApiError, Error, RecordError, TransportKind};
pub use lookup::{IN_FILTER_MAX_BYTES, IN_FILTER_MAX_VALUES};
pub use objects::{
    Association, AssociationType, ListRequest, Object, ObjectType, Page, WriteInput,
};
pub use search::{Direction, Filter, FilterGroup, Operator, SearchPage, SearchRequest, Sort};
pub use secrecy::{ExposeSecret, SecretString};
