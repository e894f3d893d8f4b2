//! Rivulet's runtime: what runs a validated flow. Data flows one way — trigger/source → map →
//! act → record — and each step has its place:
//!
//! - [`connector`]: the interfaces every connector implements (trigger groups, sources,
//!   actions and how their retries stay safe);
//! - [`connectors`]: one folder per connector (`hubspot`, `file`, `http`) and the registry that
//!   builds them from a flow's settings;
//! - [`record`]: what moves through a flow: records in, outcomes out;
//! - [`executor`]: one page through one flow — map, act, and record it in one commit;
//! - [`runner`]: every flow, concurrently: shared trigger polls, schedules, stopping;
//! - [`lease`]: one owner per piece of work (the state, with a shared backend each trigger
//!   group and schedule), with fencing tokens;
//! - [`ops`]: what operators do to the state: replay failed records, move cursors;
//! - [`metrics`]: what a runner counts and how it is doing (`/metrics`, `/readyz`), updated only
//!   through typed events (`events`) that write the log line and the metric together;
//! - [`state`]: the durable state behind it all (a backend-neutral trait; SQLite).
//!
//! Wall time comes from an injected [`rivulet_http::Clock`]; waits use `tokio::time`.

pub mod connector;
pub mod connectors;
pub mod events;
pub mod executor;
pub mod lease;
pub mod metrics;
pub mod ops;
pub mod record;
pub mod runner;
pub mod state;

pub use record::{ActionOutcome, Item, Prepared, Record};
