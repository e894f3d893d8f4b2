//! Property tests of nulls counting as absent, of [`Mapping::reads`] and of conditions, through
//! the public API. Kept to 200 cases each so the suite runs in well under a second.

use chrono::{TimeZone, Utc};
use indexmap::IndexMap;
use proptest::prelude::*;
use rivulet_mapping::{
    Condition, Context, FieldDetail, FieldSpec, FieldType, Mapping, OutputMode, RecordRead,
};
use serde_json::{Value, json};

fn ctx() -> Context {
    Context::new(
        "props",
        "run",
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    )
}

/// The ways a field can read `record.v`.
const SOURCES: [&str; 5] = [
    "path",
    "{{record.v}}",
    "{{trim record.v}}",
    "{{record.v}}{{!-- through Handlebars --}}",
    "{{jsonpath \"$.v\"}}",
];

fn field(source: &str, ty: FieldType, default: Option<Value>, required: bool) -> Mapping {
    let mut d = FieldDetail {
        r#type: ty,
        default,
        required,
        ..FieldDetail::default()
    };
    if source == "path" {
        d.path = Some("$.v".into());
    } else {
        d.template = Some(source.into());
    }
    let mut fields = IndexMap::new();
    fields.insert("f".to_owned(), FieldSpec::Detailed(d));
    Mapping::compile(&fields).unwrap()
}

fn run(m: &Mapping, record: &Value, mode: OutputMode) -> Result<Option<Value>, String> {
    m.apply(record, &ctx(), mode)
        .map(|mut out| out.swap_remove("f"))
        .map_err(|e| e[0].message.clone())
}

/// A type and a value of it (as its text), a valid default.
fn typed_value() -> impl Strategy<Value = (FieldType, Value)> {
    prop_oneof![
        "[a-zA-Z ]{1,8}".prop_map(|s| (FieldType::String, json!(s))),
        (-1000i64..1000).prop_map(|i| (FieldType::Integer, json!(i))),
        (-1000i64..1000).prop_map(|i| (FieldType::Number, json!(format!("{i}.5")))),
        any::<bool>().prop_map(|b| (FieldType::Bool, json!(b))),
        (0u32..3650).prop_map(|d| {
            let day = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()
                + chrono::Duration::days(i64::from(d));
            (FieldType::Date, json!(day.format("%Y-%m-%d").to_string()))
        }),
    ]
}

fn segment_is_at(text: &str, r: &RecordRead) -> bool {
    r.segments.iter().all(|s| {
        text.get(s.offset..)
            .is_some_and(|rest| rest.starts_with(&s.name))
    }) && text
        .get(r.offset..)
        .is_some_and(|rest| rest.starts_with(&r.text))
}

/// Template text made of Handlebars syntax, record paths and helpers.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(vec![
            "{{", "}}", "{{{", "}}}", "(", ")", "[", "]", "\"", "'", " ", "\n", "=", ".", "/",
            "{{#if ", "{{/if}}", "{{else}}", "{{#each ", "{{/each}}", "{{#with ", "{{/with}}",
            "as |x|", "@root.", "../", "this.", "record", "record.a", "record.b.c", "record.[a b]",
            "record/d", "flow", "now", "lowercase ", "default ", "concat ", "jsonpath ",
            "lookup_map ", "eq ", "x=", "\"$.p.q\"", "\"$['r s'][0]\"", "\"$..a\"", "record.a ",
            "{{record.a}}", "{{record.a.b}}", "{{lowercase record.e}}",
        ]).prop_map(str::to_owned),
        1 => ".{0,3}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// With a `default`, a null value and a missing one give the default; with `required`, both
    /// fail; with neither, null is the empty value (the same as `""`).
    #[test]
    fn null_is_absent_for_default_and_required(
        source in prop::sample::select(SOURCES.to_vec()),
        (ty, default) in typed_value(),
        native in any::<bool>(),
    ) {
        let mode = if native { OutputMode::Native } else { OutputMode::Wire };
        let null = json!({ "v": null });
        let missing = json!({});
        let with_default = field(source, ty, Some(default.clone()), false);
        let want = run(&with_default, &missing, mode).unwrap();
        prop_assert!(want.is_some());
        prop_assert_eq!(run(&with_default, &null, mode).unwrap(), want.clone());
        let both = field(source, ty, Some(default), true);
        prop_assert_eq!(run(&both, &null, mode).unwrap(), want);

        let required = field(source, ty, None, true);
        let e = run(&required, &null, mode).unwrap_err();
        prop_assert!(e.starts_with("is required but ") && e.ends_with(" is null"), "{}", e);
        prop_assert!(run(&required, &missing, mode).is_err());

        let plain = field(source, ty, None, false);
        prop_assert_eq!(
            run(&plain, &null, mode).unwrap(),
            run(&plain, &json!({ "v": "" }), mode).unwrap()
        );
    }

    /// Reads point at their text, whatever the template.
    #[test]
    fn template_reads_point_at_their_text(t in template_text()) {
        let mut fields = IndexMap::new();
        fields.insert("f".to_owned(), FieldSpec::template(t.clone()));
        if let Ok(m) = Mapping::compile(&fields) {
            for r in m.reads() {
                prop_assert!(segment_is_at(&t, &r), "{:?} in {:?}", r, t);
                prop_assert!(!r.segments.is_empty());
            }
        }
        if let Ok(c) = Condition::compile(&t) {
            for r in c.reads() {
                prop_assert!(segment_is_at(&t, r), "{:?} in {:?}", r, t);
            }
        }
    }

    /// And so do the reads of paths and path conditions.
    #[test]
    fn path_reads_point_at_their_text(
        p in prop_oneof![
            "\\$(\\.[a-z]{1,3}|\\['[a-z ]{0,3}'\\]|\\[-?[0-9]{1,2}\\]|\\[\\*\\]|\\.\\.|\\[\\?@\\.[a-z]{1,2} ?== ?'[a-z$@]{0,2}'\\]){0,5}",
            "\\$\\[\\?[@.\\[\\]?a-z'$ =&()]{0,20}\\][.a-z]{0,6}",
        ],
        rec in prop::sample::select(vec![json!({}), json!({ "a": { "b": [1, null] }, "c": "x" })]),
    ) {
        if let Some(r) = field_reads_of_path(&p) {
            for r in r {
                prop_assert!(segment_is_at(&p, &r), "{:?} in {:?}", r, p);
            }
        }
        if let Ok(c) = Condition::compile(&p) {
            for r in c.reads() {
                prop_assert!(segment_is_at(&p, r), "{:?} in {:?}", r, p);
            }
            prop_assert!(c.eval(&rec, &ctx()).is_ok());
        }
    }
}

fn field_reads_of_path(p: &str) -> Option<Vec<RecordRead>> {
    let mut fields = IndexMap::new();
    fields.insert("f".to_owned(), FieldSpec::path(p, FieldType::String));
    Mapping::compile(&fields).ok().map(|m| m.reads())
}
