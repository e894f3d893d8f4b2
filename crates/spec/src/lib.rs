//! Rivulet's formats: flows, connections and mapping tests — their model, their JSON Schema,
//! reading them with positions, and validating them. Pure: no network, no runtime, no secret
//! values, so `rivulet validate` in CI needs nothing but the files.
//!
//! Data flows one way — load → validate → plan → trigger/source → map → act → record — and this
//! crate holds the first steps:
//!
//! - [`yaml`]: the one YAML entry point, a tree that remembers positions;
//! - [`load`]: finding and reading files (regular files only, bounded);
//! - [`model`]: flow and connection files as Rust types (the format's single source of truth),
//!   with [`Duration`](model::Duration) for human durations;
//! - [`connectors`]: one module per connector (`hubspot`, `file`, `http`) with its settings and
//!   its validation rules;
//! - [`testfile`]: mapping test files (`NAME.test.yaml`) as types, read case by case;
//! - [`schema`]: the JSON Schemas generated from the types; [`structure`]: a schema applied to
//!   a YAML tree, reporting every problem with its place;
//! - [`validate`]: all the rules, file by file and across files;
//! - [`env`]: `${VAR}` interpolation for connections; [`schedule`]: cron and intervals;
//! - [`diagnostic`]: what validation reports.

pub mod connectors;
pub mod diagnostic;
pub mod env;
pub mod load;
pub mod model;
pub mod schedule;
pub mod schema;
pub mod structure;
pub mod testfile;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Pos, Severity};
pub use validate::{Options, Validation, validate_files, validate_paths};
