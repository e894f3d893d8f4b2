//! The JSONPath compiler (`Mapping::compile` with a `path` field), and mapping records with
//! what compiles; the same text is also given to the `jsonpath` helper at run time.
#![no_main]

#[path = "common.rs"]
mod common;

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use rivulet_mapping::{FieldSpec, FieldType, Mapping};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = IndexMap::new();
    fields.insert(
        "p".to_owned(),
        FieldSpec::path(path, FieldType::MultiEnumeration),
    );
    fields.insert("s".to_owned(), FieldSpec::path(path, FieldType::String));
    if let Ok(m) = Mapping::compile(&fields) {
        common::apply_all(&m, path);
    }
    // A path that comes from the record is compiled when the record is mapped.
    let mut fields = IndexMap::new();
    fields.insert(
        "h".to_owned(),
        FieldSpec::template("{{jsonpath record record.p}}"),
    );
    let m = Mapping::compile(&fields).expect("a fixed template");
    let _ = m.apply(&json!({ "p": path, "a": [1, {"b": 2}] }), &common::ctx(), Default::default());
});
