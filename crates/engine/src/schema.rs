//! JSON Schema (draft 2020-12) of flow and connections files, generated from the model types.
//!
//! The same schemas drive the structural check in [`crate::structure`], so what an editor
//! underlines and what `rivulet validate` reports cannot drift apart.

use crate::model::{ConnectionsFile, Flow};
use schemars::generate::SchemaSettings;
use serde_json::Value;
use std::sync::OnceLock;

/// Where the published schemas live, relative to the repository root.
pub const FLOW_SCHEMA_FILE: &str = "schemas/flow.schema.json";
/// Where the published connections schema lives, relative to the repository root.
pub const CONNECTIONS_SCHEMA_FILE: &str = "schemas/connections.schema.json";

fn generate<T: schemars::JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<T>();
    schema.to_value()
}

/// The schema of a flow file.
pub fn flow_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(generate::<Flow>)
}

/// The schema of a connections file.
pub fn connections_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(generate::<ConnectionsFile>)
}

/// A schema as the pretty JSON checked into `schemas/` (with a trailing newline).
pub fn to_pretty(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
