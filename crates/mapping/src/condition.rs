//! Conditions (`when:`): whether a source record is for a flow (or an action) at all.

use indexmap::IndexMap;
use serde_json::Value;

use crate::convert::quote;
use crate::error::{CompileError, FieldError};
use crate::limits::{MAX_MESSAGE_BYTES, MAX_SOURCE_BYTES, cut};
use crate::mapping::Mapping;
use crate::path::{CompiledPath, Found};
use crate::reads::{RecordRead, chain, path_read};
use crate::spec::FieldSpec;
use crate::{Context, OutputMode};

/// The field name a condition's errors and reads carry.
pub const CONDITION_FIELD: &str = "when";

/// A compiled condition over a source record: a JSONPath predicate or a template that renders
/// `true` or `false`.
///
/// [`Condition::compile`] takes the text of a `when:`:
///
/// - **Text starting with `$`** is a JSONPath (RFC 9535) predicate, evaluated against the
///   record: the condition holds when the path selects at least one value that is neither
///   `null` nor `false` (an empty string, `0` and `[]` count as selected). `$.properties.email`
///   holds when the record has an email that is not null; `$.lines[?@.qty > 10]` when some line
///   has a quantity above 10.
///
///   One addition to RFC 9535: a filter right after `$` (`$[?…]`) tests **the record itself**
///   (RFC 9535 would test each of its members), so `$[?@.properties.lifecyclestage ==
///   'customer']` holds for a customer and `$[?@.status == 'active' && @.country == 'DE']` works
///   on a flat CSV row. Inside such a path `@` is the record and `$` may not be used again (it
///   would not be the record); anything after the filter applies to the record
///   (`$[?@.a == 1].b` selects `b`). Note that `$.properties[?@.lifecyclestage == 'customer']`
///   selects nothing: that filter tests the *members* of `properties`, which are strings.
/// - **Anything else** is a Handlebars template with the same variables (`record`, `flow`,
///   `run.id`, `run.started_at`, `now`), helpers, strictness and limits as a mapping's
///   templates; it must render, after trimming whitespace, to exactly `true` or `false`, e.g.
///   `{{eq record.properties.lifecyclestage "customer"}}` or
///   `{{#if record.email}}true{{else}}false{{/if}}`. Any other text (including the empty text a
///   `null` renders as) fails that record with a [`FieldError`] quoting the text, and so does a
///   missing variable (strict mode, as in mappings).
///
/// Compile errors and per-record errors name the field [`CONDITION_FIELD`] (`when`).
///
/// ```
/// use rivulet_mapping::{Condition, Context};
/// use serde_json::json;
///
/// let ctx = Context::new("flow", "run-1", chrono::Utc::now());
/// let customer = json!({"properties": {"lifecyclestage": "customer", "email": null}});
/// let when = Condition::compile("$[?@.properties.lifecyclestage == 'customer']").unwrap();
/// assert!(when.eval(&customer, &ctx).unwrap());
/// assert!(!Condition::compile("$.properties.email").unwrap().eval(&customer, &ctx).unwrap());
/// let when = Condition::compile(r#"{{eq record.properties.lifecyclestage "lead"}}"#).unwrap();
/// assert!(!when.eval(&customer, &ctx).unwrap());
/// let err = Condition::compile("{{record.properties.lifecyclestage}}").unwrap()
///     .eval(&customer, &ctx).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"field when: the condition rendered "customer", not true or false (from {{record.properties.lifecyclestage}})"#
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    kind: Kind,
    reads: Vec<RecordRead>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A one-field mapping holding the template.
    Template(Mapping),
    /// A JSONPath; `root_filter`: it starts with `$[?` and is evaluated against `[record]`.
    Path {
        path: CompiledPath,
        root_filter: bool,
    },
}

impl Condition {
    /// Compiles a condition; pure. A bad template or path gives every problem found, each
    /// naming the field `when`, with a byte offset where known.
    pub fn compile(text: &str) -> Result<Condition, Vec<CompileError>> {
        if text.trim().is_empty() {
            return Err(vec![
                CompileError::new(CONDITION_FIELD, "template", "the condition is empty").hint(
                    Some(
                        "write a JSONPath (`$.properties.email`) or a template that renders \
                         true or false"
                            .into(),
                    ),
                ),
            ]);
        }
        if text.starts_with('$') {
            return Condition::compile_path(text);
        }
        let mut fields = IndexMap::with_capacity(1);
        fields.insert(CONDITION_FIELD.to_owned(), FieldSpec::template(text));
        let mapping = Mapping::compile(&fields)?;
        Ok(Condition {
            text: text.to_owned(),
            reads: mapping.reads(),
            kind: Kind::Template(mapping),
        })
    }

    fn compile_path(text: &str) -> Result<Condition, Vec<CompileError>> {
        let path = CompiledPath::compile(text).map_err(|e| {
            let hint = e.hint.or_else(|| {
                text.contains("{{").then(|| {
                    "a condition starting with `$` is a JSONPath; a template must not start \
                     with `$`"
                        .to_owned()
                })
            });
            vec![
                CompileError::new(CONDITION_FIELD, "path", e.message)
                    .at(e.offset)
                    .hint(hint),
            ]
        })?;
        let root_filter = filter_start(text).is_some();
        let reads = if root_filter {
            root_filter_reads(text)?
        } else {
            path_read(CONDITION_FIELD, "path", text, 0)
                .into_iter()
                .collect()
        };
        Ok(Condition {
            text: text.to_owned(),
            kind: Kind::Path { path, root_filter },
            reads,
        })
    }

    /// Whether `record` meets the condition. A template that renders anything but `true` or
    /// `false`, or fails (a missing variable, a helper error, a limit), is an error for this
    /// record; a JSONPath never fails.
    pub fn eval(&self, record: &Value, ctx: &Context) -> Result<bool, FieldError> {
        match &self.kind {
            Kind::Path { path, root_filter } => {
                let holds = |found: Found<'_>| match found {
                    Found::Nothing => false,
                    Found::One(v) => truthy(v),
                    Found::Many(vs) => vs.into_iter().any(truthy),
                };
                Ok(if *root_filter {
                    let wrapped = Value::Array(vec![record.clone()]);
                    holds(path.find(&wrapped))
                } else {
                    holds(path.find(record))
                })
            }
            Kind::Template(mapping) => {
                let mut out = mapping
                    .apply(record, ctx, OutputMode::Wire)
                    .map_err(|mut errors| errors.swap_remove(0))?;
                let text = match out.swap_remove(CONDITION_FIELD) {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                match text.trim() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    other => Err(FieldError {
                        field: CONDITION_FIELD.to_owned(),
                        message: cut(
                            &format!("the condition rendered {}, not true or false", quote(other)),
                            MAX_MESSAGE_BYTES,
                        )
                        .into_owned(),
                        source: Some(cut(&self.text, MAX_SOURCE_BYTES).into_owned()),
                    }),
                }
            }
        }
    }

    /// What the condition reads from the record (see [`RecordRead`]), each naming the field
    /// `when`.
    pub fn reads(&self) -> &[RecordRead] {
        &self.reads
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether it is a JSONPath predicate (rather than a template).
    pub fn is_path(&self) -> bool {
        matches!(self.kind, Kind::Path { .. })
    }
}

/// Selected, for a JSONPath condition: neither `null` nor `false`.
fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

/// Where the `?` of a filter right after `$` is (`$[?…]`, blanks allowed), if there is one.
fn filter_start(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let skip = |mut i: usize| {
        while b
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            i += 1;
        }
        i
    };
    let open = skip(1);
    if b.get(open) != Some(&b'[') {
        return None;
    }
    let q = skip(open + 1);
    (b.get(q) == Some(&b'?')).then_some(q)
}

/// The reads of a path starting with a root filter: each `@.a.b` at the root filter's own
/// level (not inside a nested filter), then the selectors after the filter. A `$` other than
/// the first is refused: evaluated against `[record]`, it would not be the record.
fn root_filter_reads(text: &str) -> Result<Vec<RecordRead>, Vec<CompileError>> {
    let b = text.as_bytes();
    let Some(q) = filter_start(text) else {
        return Ok(Vec::new());
    };
    let mut reads = Vec::new();
    // Brackets open inside the root filter: whether each opens a (nested) filter.
    let mut brackets: Vec<bool> = Vec::new();
    // Where the root filter ends, once it has.
    let mut closed: Option<usize> = None;
    let mut i = q + 1;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let quote = b[i];
                i += 1;
                while i < b.len() && b[i] != quote {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'[' => {
                let mut k = i + 1;
                while b.get(k).is_some_and(u8::is_ascii_whitespace) {
                    k += 1;
                }
                brackets.push(b.get(k) == Some(&b'?'));
                i += 1;
            }
            b']' => {
                if brackets.pop().is_none() && closed.is_none() {
                    closed = Some(i + 1);
                    let (segments, end) = chain(text, i + 1, 0);
                    if !segments.is_empty() {
                        reads.push(RecordRead {
                            field: CONDITION_FIELD.to_owned(),
                            part: "path",
                            text: text[i + 1..end].to_owned(),
                            offset: i + 1,
                            complete: end == text.len(),
                            segments,
                        });
                    }
                    i = end.max(i + 1);
                } else {
                    i += 1;
                }
            }
            b'$' => {
                return Err(vec![
                    CompileError::new(
                        CONDITION_FIELD,
                        "path",
                        "in a condition starting with `$[?`, the record is `@`: `$` may not be \
                         used again",
                    )
                    .at(Some(i))
                    .hint(Some("write `@.…` for the record's members".into())),
                ]);
            }
            b'@' if closed.is_none() && !brackets.contains(&true) => {
                let (segments, end) = chain(text, i + 1, 0);
                if !segments.is_empty() {
                    reads.push(RecordRead {
                        field: CONDITION_FIELD.to_owned(),
                        part: "path",
                        text: text[i..end].to_owned(),
                        offset: i,
                        complete: !matches!(b.get(end), Some(b'.' | b'[')),
                        segments,
                    });
                }
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    Ok(reads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn ctx() -> Context {
        Context::new(
            "flow-a",
            "run-1",
            chrono::Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
        )
    }

    fn holds(text: &str, record: Value) -> Result<bool, String> {
        Condition::compile(text)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .eval(&record, &ctx())
            .map_err(|e| e.to_string())
    }

    fn compile_err(text: &str) -> CompileError {
        let mut errs = Condition::compile(text).unwrap_err();
        errs.remove(0)
    }

    #[test]
    fn paths_hold_when_they_select_something_not_null_or_false() {
        let r = json!({
            "s": "x", "empty": "", "zero": 0, "list": [], "t": true, "f": false, "n": null,
            "lines": [{ "qty": 3, "sku": null }, { "qty": 20, "sku": "B" }],
            "nulls": [null, null]
        });
        for (p, want) in [
            ("$.s", true),
            ("$.empty", true),
            ("$.zero", true),
            ("$.list", true),
            ("$.t", true),
            ("$.f", false),
            ("$.n", false),
            ("$.missing", false),
            ("$.lines[?@.qty > 10]", true),
            ("$.lines[?@.qty > 100]", false),
            ("$.lines[*].sku", true),
            ("$.nulls[*]", false),
            ("$.lines[0].sku", false),
        ] {
            assert_eq!(holds(p, r.clone()), Ok(want), "{p}");
        }
    }

    #[test]
    fn a_root_filter_tests_the_record_itself() {
        let customer = json!({ "id": "1", "properties": { "lifecyclestage": "customer" } });
        let lead = json!({ "id": "2", "properties": { "lifecyclestage": "lead" } });
        let p = "$[?@.properties.lifecyclestage == 'customer']";
        assert_eq!(holds(p, customer.clone()), Ok(true));
        assert_eq!(holds(p, lead.clone()), Ok(false));
        assert_eq!(holds("$ [ ?@.id == '2']", lead.clone()), Ok(true));
        // What follows the filter applies to the record.
        assert_eq!(
            holds("$[?@.id == '1'].properties", customer.clone()),
            Ok(true)
        );
        assert_eq!(holds("$[?@.id == '1'].nope", customer.clone()), Ok(false));
        // Flat rows (CSV) compare their own columns.
        let row = json!({ "status": "active", "country": "DE" });
        assert_eq!(
            holds("$[?@.status == 'active' && @.country == 'DE']", row.clone()),
            Ok(true)
        );
        assert_eq!(holds("$[?@.status == 'gone']", row), Ok(false));
        // A filter further in is RFC 9535's: it tests the members of `properties`.
        assert_eq!(
            holds("$.properties[?(@.lifecyclestage == 'customer')]", customer),
            Ok(false)
        );
    }

    #[test]
    fn root_filters_refuse_a_second_dollar() {
        let e = compile_err("$[?@.a == $.b]");
        assert_eq!(
            (e.field.as_str(), e.part, e.offset),
            ("when", "path", Some(10))
        );
        assert!(e.message.contains("`$` may not be used again"), "{e}");
        let e = compile_err("$[?@.a][?@.b == $.c]");
        assert_eq!(e.offset, Some(16));
        // Inside a string it is text.
        assert_eq!(
            holds("$[?@.price == '$5']", json!({ "price": "$5" })),
            Ok(true)
        );
    }

    #[test]
    fn templates_render_true_or_false() {
        let r = json!({ "stage": "customer", "n": 3, "yes": true, "nothing": null });
        assert_eq!(
            holds("{{eq record.stage \"customer\"}}", r.clone()),
            Ok(true)
        );
        assert_eq!(
            holds(" \n{{eq record.stage \"lead\"}}  ", r.clone()),
            Ok(false)
        );
        assert_eq!(holds("{{record.yes}}", r.clone()), Ok(true));
        assert_eq!(
            holds("{{#if record.nothing}}true{{else}}false{{/if}}", r.clone()),
            Ok(false)
        );
        assert_eq!(
            holds("{{#if record.absent}}true{{else}}false{{/if}}", r.clone()),
            Ok(false)
        );
        assert_eq!(holds("{{eq flow \"flow-a\"}}", r.clone()), Ok(true));
        assert_eq!(holds("{{gt record.n 2}}", r.clone()), Ok(true));
        assert_eq!(
            holds("{{record.stage}}", r.clone()),
            Err("field when: the condition rendered \"customer\", not true or false (from {{record.stage}})".into())
        );
        assert_eq!(
            holds("{{record.nothing}}", r.clone()),
            Err("field when: the condition rendered \"\", not true or false (from {{record.nothing}})".into())
        );
        assert_eq!(
            holds("TRUE", r.clone()),
            Err(
                "field when: the condition rendered \"TRUE\", not true or false (from TRUE)".into()
            )
        );
        assert_eq!(
            holds("{{eq record.missing \"x\"}}", r.clone()).unwrap_err(),
            "field when: eq: argument 1 is missing (from {{eq record.missing \"x\"}})"
        );
        assert_eq!(
            holds("{{number_format record.stage 2}}", r).unwrap_err(),
            "field when: number_format: \"customer\" is not a number (from {{number_format record.stage 2}})"
        );
    }

    #[test]
    fn compile_errors_name_when() {
        let e = compile_err("  ");
        assert_eq!((e.field.as_str(), e.part), ("when", "template"));
        let e = compile_err("{{eq record.a \"x\"");
        assert_eq!((e.field.as_str(), e.part), ("when", "template"));
        assert!(e.offset.is_some());
        let e = compile_err("{{lowercse record.a}}");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"lowercase\"?"));
        let e = compile_err("{{eq email \"x\"}}");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"record.email\"?"));
        let e = compile_err("$.a[");
        assert_eq!((e.part, e.offset), ("path", Some(4)));
        let e = compile_err("${{record.amount}}");
        assert!(
            e.hint
                .unwrap()
                .contains("a template must not start with `$`")
        );
        // The mapping limits hold.
        let e = compile_err(&format!("{{{{eq record.a \"{}\"}}}}", "x".repeat(20_000)));
        assert!(e.message.contains("16 KiB"), "{e}");
        let e = compile_err(&format!("$.{}", "a".repeat(5_000)));
        assert!(e.message.contains("4 KiB"), "{e}");
    }

    #[test]
    fn reads_of_conditions() {
        let c = Condition::compile("{{eq record.properties.stage \"won\"}}").unwrap();
        assert!(!c.is_path());
        let r = &c.reads()[0];
        assert_eq!(
            (r.field.as_str(), r.part, r.offset),
            ("when", "template", 5)
        );
        assert_eq!(r.dotted(), "properties.stage");

        let c = Condition::compile("$.properties.email").unwrap();
        assert!(c.is_path() && c.text() == "$.properties.email");
        assert_eq!(c.reads()[0].dotted(), "properties.email");

        let text = "$[?@.properties.stage == 'won' && length(@.lines[?@.qty > 1]) > 0 && @['odd key'] != '@.x'].id";
        let c = Condition::compile(text).unwrap();
        let got: Vec<(String, usize, bool)> = c
            .reads()
            .iter()
            .map(|r| (r.dotted(), r.offset, r.complete))
            .collect();
        assert_eq!(
            got,
            [
                ("properties.stage".to_owned(), 3, true),
                ("lines".to_owned(), 41, false),
                ("[odd key]".to_owned(), 69, true),
                ("id".to_owned(), text.len() - 3, true),
            ]
        );
        let stage = &c.reads()[0].segments[1];
        assert_eq!(&text[stage.offset..stage.offset + 5], "stage");
    }

    #[test]
    fn hostile_conditions_do_not_panic() {
        for text in [
            "$[?",
            "$[?'",
            "$[?@.a == '\\",
            "$[?@[",
            "$[?@.é == 'ü']",
            "$[?@]]]]",
            "${{x}}",
            "$[?@.a][",
            "{{",
            "}}",
            "$$",
        ] {
            if let Ok(c) = Condition::compile(text) {
                let _ = c.eval(&json!({ "a": 1, "é": "ü" }), &ctx());
                let _ = c.reads();
            }
        }
        assert_eq!(holds("$[?@.é == 'ü']", json!({ "é": "ü" })), Ok(true));
    }
}
