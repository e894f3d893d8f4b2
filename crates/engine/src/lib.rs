//! Rivulet's engine: the flow model and its validation.
//!
//! Data flows one way — load → validate → plan → trigger/source → map → act → record — and this
//! crate holds the first steps:
//!
//! - [`yaml`]: the one YAML entry point, a tree that remembers positions;
//! - [`model`]: flow and connection files as Rust types (the format's single source of truth);
//! - [`schema`]: the JSON Schema generated from the model;
//! - [`structure`]: the schema applied to a YAML tree, reporting every problem with its place;
//! - [`load`]: finding and reading files; [`validate`]: all the rules, pure (no network, no
//!   secret values);
//! - [`env`]: `${VAR}` interpolation for connections; [`schedule`]: cron and intervals;
//! - [`diagnostic`]: what validation reports.

pub mod diagnostic;
pub mod env;
pub mod load;
pub mod model;
pub mod runtime;
pub mod schedule;
pub mod schema;
pub mod structure;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Pos, Severity};
pub use validate::{Options, Validation, validate_files, validate_paths};
