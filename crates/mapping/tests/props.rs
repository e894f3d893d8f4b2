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
