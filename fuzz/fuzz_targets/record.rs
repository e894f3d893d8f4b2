//! Mapping a hostile record (any JSON) with every helper and type, formats, paths, tables and
//! indexes taken from the record itself.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use rivulet_mapping::{FieldSpec, Mapping, OutputMode};
use serde_json::{Value, json};

fn mapping() -> &'static Mapping {
    static M: OnceLock<Mapping> = OnceLock::new();
    M.get_or_init(|| {
        let spec = json!({
            "s": { "path": "$.v" },
            "n": { "path": "$.v", "type": "number" },
            "i": { "path": "$.v", "type": "integer" },
            "b": { "path": "$.v", "type": "bool" },
            "d": { "path": "$.v", "type": "date" },
            "dt": { "path": "$.v", "type": "datetime" },
            "t": { "path": "$.v", "type": "date", "truncate": true },
            "e": { "path": "$.v", "type": "enumeration", "map": { "A": "a" } },
            "m": { "path": "$..*", "type": "multi_enumeration" },
            "whole": "{{record.v}}",
            "case": "{{lowercase record.v}}{{uppercase record.w}}{{trim record.v}}",
            "text": "{{concat record.v record.w}}{{replace record.v record.w record.v}}",
            "lists": "{{join (split record.v record.w) record.w}}{{first record.v}}{{last record.w}}",
            "nth": "{{nth record.v record.w}}",
            "dates": "{{date_format record.v record.w}}{{date_parse record.v record.w}}",
            "dates2": "{{date_format record.v \"%Y\" record.w}}{{date_format record.v \"%c\"}}",
            "num": { "template": "{{number_format record.v record.w}}", "type": "number" },
            "jp": "{{jsonpath record.v}}{{jsonpath record record.w}}",
            "map": "{{lookup_map record.v record.w \"?\"}}{{lookup_map record.w a=record.v}}",
            "dflt": { "template": "{{default record.x record.v}}", "type": "integer", "default": 0 },
            "hb": "{{#each record.v}}{{@index}}{{this}}{{else}}-{{/each}}{{#if record.w}}{{lookup record.v 0}}{{/if}}",
            "hb2": "{{#with record.v}}{{len this}}{{/with}}{{eq record.v record.w}}",
        });
        let fields: IndexMap<String, FieldSpec> = serde_json::from_value(spec).unwrap();
        Mapping::compile(&fields).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(record) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ctx = common::ctx();
    for mode in [OutputMode::Wire, OutputMode::Native] {
        let _ = mapping().apply(&record, &ctx, mode);
        if let Value::Array(items) = &record {
            let v = items.first().cloned().unwrap_or_default();
            let w = items.get(1).cloned().unwrap_or_default();
            let _ = mapping().apply(&json!({ "v": v, "w": w }), &ctx, mode);
        }
    }
});
