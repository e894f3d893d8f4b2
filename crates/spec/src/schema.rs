//! JSON Schema (draft 2020-12) of flow and connections files, generated from the model types.
//!
//! The same schemas drive the structural check in [`crate::structure`], so what an editor
//! underlines and what `rivulet validate` reports cannot drift apart.

use crate::model::{ConnectionsFile, Flow};
use crate::testfile::TestFile;
use schemars::Schema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Where the published schemas live, relative to the repository root.
pub const FLOW_SCHEMA_FILE: &str = "schemas/flow.schema.json";
/// Where the published connections schema lives, relative to the repository root.
pub const CONNECTIONS_SCHEMA_FILE: &str = "schemas/connections.schema.json";
/// Where the published mapping-test schema lives, relative to the repository root.
pub const TEST_SCHEMA_FILE: &str = "schemas/test.schema.json";

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

/// The schema of a mapping test file (`NAME.test.yaml`).
pub fn test_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(generate::<TestFile>)
}

/// Turns the `oneOf` that schemars emits for an externally tagged enum (one branch per
/// variant, each an object with its one key) into a single object whose properties are the
/// variants, exactly one of them allowed. That is how the format reads (`{hubspot: {…}}`), what
/// editors complete best, and what the structural check explains in the author's terms
/// ("needs exactly one of: hubspot, file, http").
pub(crate) fn one_key_object(schema: &mut Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let Some(Value::Array(branches)) = obj.remove("oneOf") else {
        return;
    };
    let mut properties = Map::new();
    for branch in branches {
        let Some(props) = branch.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (key, sub) in props {
            let mut sub = sub.clone();
            if let (Some(doc), Some(o)) = (branch.get("description"), sub.as_object_mut()) {
                o.insert("description".into(), doc.clone());
            }
            properties.insert(key.clone(), sub);
        }
    }
    let keys: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
    let mut out = Map::new();
    out.insert("type".into(), "object".into());
    out.insert("additionalProperties".into(), false.into());
    out.insert("properties".into(), Value::Object(properties));
    if keys.len() == 1 {
        out.insert("required".into(), Value::Array(keys.clone()));
    }
    out.extend(std::mem::take(obj));
    if keys.len() > 1 {
        out.insert("minProperties".into(), 1.into());
        out.insert("maxProperties".into(), 1.into());
    }
    *obj = out;
}

/// A schema as the pretty JSON checked into `schemas/` (with a trailing newline).
pub fn to_pretty(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
