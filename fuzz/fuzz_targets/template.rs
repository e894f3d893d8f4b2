//! The template compiler (`Mapping::compile` with a template field), and mapping records with
//! what compiles. The first byte picks the field's type.
#![no_main]

#[path = "common.rs"]
mod common;

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use rivulet_mapping::{FieldDetail, FieldSpec, FieldType, Mapping};

const TYPES: [FieldType; 8] = [
    FieldType::String,
    FieldType::Number,
    FieldType::Integer,
    FieldType::Bool,
    FieldType::Date,
    FieldType::Datetime,
    FieldType::Enumeration,
    FieldType::MultiEnumeration,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let Ok(template) = std::str::from_utf8(text) else {
        return;
    };
    let mut fields = IndexMap::new();
    fields.insert(
        "f".to_owned(),
        FieldSpec::Detailed(FieldDetail {
            template: Some(template.to_owned()),
            r#type: TYPES[usize::from(pick) % TYPES.len()],
            trim: pick & 0x40 != 0,
            ..FieldDetail::default()
        }),
    );
    if let Ok(m) = Mapping::compile(&fields) {
        common::apply_all(&m, template);
    }
});
