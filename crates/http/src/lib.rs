//! Rivulet's HTTP policy, one for every client: a connection's requests pass its throttle and
//! in-flight limit, are retried by one set of rules, wait (capped) when a server says so, and
//! read bounded answers. Clients (HubSpot, generic HTTP) add what is theirs through [`Hooks`].
//!
//! - [`clock`]: injected wall time ([`Clock`]); monotonic waits stay on `tokio::time`.
//! - [`throttle`]: the rolling-window budget ([`RollingWindow`], [`Slot`]) and the in-flight
//!   limit ([`InFlight`]).
//! - [`retry`]: what is retried and how long to wait: [`RetryPolicy`], backoff, the cap on
//!   server-imposed waits, [`parse_retry_after`], status and transport classification.
//! - [`request`]: the [`Request`] description and the [`Response`].
//! - [`policy`]: the one send loop ([`Policy`]), its [`Hooks`], settings and counters.
//! - [`error`]: the typed [`Error`] a send ends with.
//! - [`secrets`]: every secret value registered once and scrubbed (with its encoded forms) from
//!   whatever is logged, printed or stored.

pub mod clock;
pub mod error;
pub mod policy;
pub mod request;
pub mod retry;
pub mod secrets;
pub mod throttle;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{Error, StopReason};
pub use policy::{
    DEFAULT_MAX_BODY_BYTES, Hooks, Policy, PolicyConfig, RateLimitAction, Stats, count_calls,
    counted, with_patience,
};
pub use request::{Request, Response};
pub use reqwest::{Method, StatusCode, Url, header};
pub use retry::{Class, RetryPolicy, TransportKind, classify_status, parse_retry_after};
pub use throttle::{InFlight, RollingWindow, Slot, Throttle};
