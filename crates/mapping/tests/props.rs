//! Property tests of the typed conversions, through the public API.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use indexmap::IndexMap;
use proptest::prelude::*;
use rivulet_mapping::{Context, FieldDetail, FieldSpec, FieldType, Mapping, OutputMode};
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

fn ctx() -> Context {
    Context::new(
        "props",
        "run",
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    )
}

fn one(spec: FieldSpec) -> Mapping {
    let mut fields = IndexMap::new();
    fields.insert("f".to_owned(), spec);
    Mapping::compile(&fields).unwrap()
}

fn typed(ty: FieldType) -> Mapping {
    one(FieldSpec::path("$.v", ty))
}

fn detail(d: FieldDetail) -> Mapping {
    one(FieldSpec::Detailed(d))
}

fn run(m: &Mapping, v: Value, mode: OutputMode) -> Result<Value, String> {
    m.apply(&json!({ "v": v }), &ctx(), mode)
        .map(|mut out| out.swap_remove("f").unwrap())
        .map_err(|e| e[0].to_string())
}

/// Days from 1900-01-01 to 2200-01-01.
fn any_day() -> impl Strategy<Value = NaiveDate> {
    (0i64..109_573)
        .prop_map(|d| NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(d))
}

fn midnight_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis()
}

proptest! {
    #[test]
    fn numbers_roundtrip(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let m = typed(FieldType::Number);
        let wire = run(&m, json!(x), OutputMode::Wire).unwrap();
        let s = wire.as_str().unwrap();
        prop_assert!(!s.contains(['e', 'E', '+']), "{}", s);
        prop_assert_eq!(s.parse::<f64>().unwrap(), x);
        // The wire text read back gives the same text; native gives the same number.
        prop_assert_eq!(run(&m, json!(s), OutputMode::Wire).unwrap(), wire.clone());
        let native = run(&m, json!(s), OutputMode::Native).unwrap();
        prop_assert_eq!(native.as_f64().unwrap(), x);
    }

    #[test]
    fn integers_roundtrip(i in any::<i64>()) {
        let m = typed(FieldType::Integer);
        prop_assert_eq!(run(&m, json!(i), OutputMode::Wire).unwrap(), json!(i.to_string()));
        prop_assert_eq!(run(&m, json!(i.to_string()), OutputMode::Native).unwrap(), json!(i));
    }

    #[test]
    fn integers_reject_fractions(i in -1_000_000i64..1_000_000, f in 1u32..1000) {
        let m = typed(FieldType::Integer);
        let v = format!("{i}.{f:03}");
        prop_assume!(!v.ends_with("000"));
        let e = run(&m, json!(v), OutputMode::Wire).unwrap_err();
        prop_assert!(e.contains("is not an integer"), "{}", e);
    }

    #[test]
    fn bools_any_case(word in prop::sample::select(vec!["true", "false", "yes", "no", "1", "0", "on", "off"]),
                      upper in prop::collection::vec(any::<bool>(), 5)) {
        let m = typed(FieldType::Bool);
        let input: String = word.chars().zip(upper.iter().cycle())
            .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c }).collect();
        let want = matches!(word, "true" | "yes" | "1" | "on");
        prop_assert_eq!(run(&m, json!(input), OutputMode::Wire).unwrap(), json!(want.to_string()));
        prop_assert_eq!(run(&m, json!(input), OutputMode::Native).unwrap(), json!(want));
    }

    #[test]
    fn bools_reject_other_words(s in "[a-z]{2,6}") {
        prop_assume!(!["yes", "no", "on", "off", "true", "false"].contains(&s.as_str()));
        prop_assert!(run(&typed(FieldType::Bool), json!(s), OutputMode::Wire).is_err());
    }

    #[test]
    fn dates_at_midnight(day in any_day()) {
        let m = typed(FieldType::Date);
        let ms = midnight_ms(day);
        let want = json!(ms.to_string());
        prop_assert_eq!(ms % DAY_MS, 0);
        for input in [
            json!(day.format("%Y-%m-%d").to_string()),
            json!(ms),
            json!(ms.to_string()),
            json!(format!("{}T00:00:00Z", day.format("%Y-%m-%d"))),
            json!(format!("{}T00:00:00.000+00:00", day.format("%Y-%m-%d"))),
        ] {
            prop_assert_eq!(run(&m, input.clone(), OutputMode::Wire).unwrap(), want.clone(), "{}", input);
            prop_assert_eq!(
                run(&m, input, OutputMode::Native).unwrap(),
                json!(day.format("%Y-%m-%d").to_string())
            );
        }
    }

    #[test]
    fn dates_off_midnight_need_truncate(day in any_day(), offset in 1i64..DAY_MS) {
        let ms = midnight_ms(day) + offset;
        let strict = typed(FieldType::Date);
        let e = run(&strict, json!(ms), OutputMode::Wire).unwrap_err();
        prop_assert!(e.contains("not midnight UTC"), "{}", e);
        let lenient = detail(FieldDetail {
            path: Some("$.v".into()),
            r#type: FieldType::Date,
            truncate: true,
            ..FieldDetail::default()
        });
        prop_assert_eq!(run(&lenient, json!(ms), OutputMode::Wire).unwrap(), json!(midnight_ms(day).to_string()));
    }

    #[test]
    fn datetimes_are_epoch_ms(ms in -2_208_988_800_000i64..7_258_118_400_000) {
        let m = typed(FieldType::Datetime);
        let t: DateTime<Utc> = DateTime::from_timestamp_millis(ms).unwrap();
        let want = json!(ms.to_string());
        prop_assert_eq!(run(&m, json!(ms), OutputMode::Wire).unwrap(), want.clone());
        let rfc = t.to_rfc3339_opts(SecondsFormat::Millis, true);
        prop_assert_eq!(run(&m, json!(rfc), OutputMode::Wire).unwrap(), want.clone());
        let offset = t.with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap())
            .to_rfc3339_opts(SecondsFormat::Millis, false);
        prop_assert_eq!(run(&m, json!(offset), OutputMode::Wire).unwrap(), want);
        let native = run(&m, json!(ms), OutputMode::Native).unwrap();
        prop_assert_eq!(DateTime::parse_from_rfc3339(native.as_str().unwrap()).unwrap().timestamp_millis(), ms);
    }

    #[test]
    fn multi_enumerations_join(items in prop::collection::vec("[a-z_][a-z0-9_]{0,8}", 0..6)) {
        let m = typed(FieldType::MultiEnumeration);
        let want = json!(items.join(";"));
        prop_assert_eq!(run(&m, json!(items), OutputMode::Wire).unwrap(), want.clone());
        prop_assert_eq!(run(&m, json!(items.join(";")), OutputMode::Wire).unwrap(), want);
        prop_assert_eq!(run(&m, json!(items.join(";")), OutputMode::Native).unwrap(), json!(items));
        // Through a template that builds the `;` list.
        let t = detail(FieldDetail {
            template: Some("{{join record.v \";\"}}".into()),
            r#type: FieldType::MultiEnumeration,
            ..FieldDetail::default()
        });
        prop_assert_eq!(run(&t, json!(items), OutputMode::Native).unwrap(), json!(items));
    }

    #[test]
    fn fast_path_equals_template_engine(
        v in prop_oneof![
            any::<String>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ],
        ty in prop::sample::select(vec![
            FieldType::String, FieldType::Number, FieldType::Integer, FieldType::Bool,
            FieldType::Date, FieldType::Datetime, FieldType::Enumeration, FieldType::MultiEnumeration,
        ]),
    ) {
        let spec = |t: &str| detail(FieldDetail { template: Some(t.into()), r#type: ty, ..FieldDetail::default() });
        // One record path (direct lookup), the evaluator (the comment keeps it out of the
        // one-path form) and Handlebars (a block helper).
        let fast = spec("{{record.v}}");
        let evaluated = spec("{{record.v}}{{!-- x --}}");
        let engine = spec("{{#if true}}{{record.v}}{{/if}}");
        for mode in [OutputMode::Wire, OutputMode::Native] {
            let norm = |r: Result<Value, String>| {
                r.map_err(|e| e.replace("{{record.v}}{{!-- x --}}", "{{record.v}}")
                    .replace("{{#if true}}{{record.v}}{{/if}}", "{{record.v}}"))
            };
            let a = norm(run(&fast, v.clone(), mode));
            prop_assert_eq!(&a, &norm(run(&evaluated, v.clone(), mode)));
            prop_assert_eq!(&a, &norm(run(&engine, v.clone(), mode)));
        }
    }
}

// Hostile input: whatever the template, path or record, compiling and mapping return (`Ok` or
// `Err`) and never panic. Case counts are modest; the fuzz targets (fuzz/) go further.

/// Arbitrary JSON a few levels deep, with number-like and date-like text among the strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "[-+0-9.eE]{1,40}".prop_map(Value::from),
        "(1e400|-1e-400|NaN|inf|9{30}|0\\.0{50}1|[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:]{8}Z)?)"
            .prop_map(Value::from),
        "(%[a-zA-Z%.:#+0-9-]{1,3}){0,4}".prop_map(Value::from),
        "\\$[.\\[\\]?@*a-z0-9'(),= ]{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,2}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Text made of pieces of Handlebars syntax, helper names, paths and noise.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(vec![
            "{{", "}}", "{{{", "}}}", "{{{{raw}}}}", "{{{{/raw}}}}", "(", ")", "[", "]", "{", "}",
            "\"", "'", "\\", "~", " ", "\n", "=", "|", ",", ".", "/", "@", "#", "^", "!", "--",
            "{{#if ", "{{/if}}", "{{else}}", "{{else if ", "{{#each ", "{{/each}}", "{{#with ",
            "{{/with}}", "{{^", "{{!", "{{!--", "--}}", "{{>", "{{*", "as |x|", "@root.", "../",
            "this", "record", "record.a", "record.l", "record.[a b]", "flow", "now", "run.id",
            "lowercase ", "uppercase ", "trim ", "default ", "concat ", "replace ", "split ",
            "first ", "last ", "nth ", "join ", "date_format ", "date_parse ", "number_format ",
            "jsonpath ", "lookup_map ", "lookup ", "eq ", "len ", "x=", "1", "-2.5E3", "null",
            "true", "\"$..a\"", "\"$[?@.a]\"", "\"%Y\"", "\"epoch_ms\"", "[1,[2]]", "{\"k\":1}",
        ]).prop_map(str::to_owned),
        1 => ".{0,3}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn compile_one(spec: FieldSpec) -> Option<Mapping> {
    let mut fields = IndexMap::new();
    fields.insert("f".to_owned(), spec);
    Mapping::compile(&fields).ok()
}

/// Every helper and type, fed from the record (formats, paths, tables and indexes included).
fn hostile_mapping() -> Mapping {
    let spec = json!({
        "s": { "path": "$.v" },
        "n": { "path": "$.v", "type": "number" },
        "i": { "path": "$.v", "type": "integer" },
        "b": { "path": "$.v", "type": "bool" },
        "d": { "path": "$.v", "type": "date" },
        "dt": { "path": "$.v", "type": "datetime" },
        "t": { "path": "$.v", "type": "date", "truncate": true },
        "e": { "path": "$.v", "type": "enumeration", "options": ["a", "b"] },
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
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_template_compiles_or_fails(t in prop_oneof![template_text(), any::<String>()], rec in any_json()) {
        if let Some(m) = compile_one(FieldSpec::template(t)) {
            for mode in [OutputMode::Wire, OutputMode::Native] {
                let _ = m.apply(&json!({ "a": rec.clone(), "l": [rec.clone(), 1] }), &ctx(), mode);
                let _ = m.apply(&rec, &ctx(), mode);
            }
        }
    }

    #[test]
    fn any_path_compiles_or_fails(
        p in prop_oneof![
            "\\$[.\\[\\]?@*a-z0-9'\"(),=<>!&| :-]{0,24}",
            "[$@.\\[\\]()?*]{0,24}",
            any::<String>(),
        ],
        rec in any_json(),
    ) {
        if let Some(m) = compile_one(FieldSpec::path(p, FieldType::MultiEnumeration)) {
            let _ = m.apply(&rec, &ctx(), OutputMode::Native);
        }
    }

    #[test]
    fn any_record_maps_or_fails(v in any_json(), w in any_json()) {
        let m = hostile_mapping();
        for mode in [OutputMode::Wire, OutputMode::Native] {
            let _ = m.apply(&json!({ "v": v.clone(), "w": w.clone() }), &ctx(), mode);
            let _ = m.apply(&v, &ctx(), mode);
        }
    }
}
