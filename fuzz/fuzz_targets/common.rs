//! What the mapping targets share: a context and records to map.
#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use rivulet_mapping::{Context, Mapping, OutputMode};
use serde_json::{Value, json};

pub fn ctx() -> Context {
    Context::new(
        "fuzz",
        "run-1",
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
    )
}

/// Records with text, numbers, dates, lists and objects, and one built from the input.
pub fn records(input: &str) -> [Value; 3] {
    [
        json!({
            "a": "Ada Lovelace", "b": "  x  ", "n": 12.5, "i": -3, "t": true, "z": null,
            "d": "2024-05-01", "at": "2024-05-01T10:30:00Z", "ms": 1714559400123i64,
            "l": ["a", "b", 1, null, {"k": "v"}], "o": {"k": "v", "l": [1, 2]},
            "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
            "big": "y".repeat(4096),
        }),
        json!({}),
        json!({ "a": input, "l": input.split(' ').collect::<Vec<_>>(), "o": { "k": input } }),
    ]
}

/// Maps every record both ways; results are not checked, only that mapping returns.
pub fn apply_all(m: &Mapping, input: &str) {
    let ctx = ctx();
    for r in records(input) {
        for mode in [OutputMode::Wire, OutputMode::Native] {
            let _ = m.apply(&r, &ctx, mode);
        }
    }
}
