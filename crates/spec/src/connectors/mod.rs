//! One module per connector: its settings (the types flows and connections files are read
//! into, whose `///` comments become the schema) and its validation rules. The model joins
//! them in enums with one variant per connector ([`crate::model::Trigger`],
//! [`crate::model::Source`], [`crate::model::Action`], [`crate::model::Connection`]).
//!
//! Adding a connector: a module here with its types and `check_*` functions, a variant in each
//! enum it takes part in, and one arm in each `match` the compiler then points at (see
//! `docs/connectors.md`).

pub mod file;
pub mod http;
pub mod hubspot;

pub(crate) use crate::model::ConnectionKind;
pub(crate) use crate::validate::{CheckedFlow, Checker};

/// What `Debug` shows in place of a credential.
pub(crate) const REDACTED: &str = "[REDACTED]";
