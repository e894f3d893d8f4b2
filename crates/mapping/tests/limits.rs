//! Hostile templates, paths and records: every limit of `rivulet_mapping::limits` is enforced
//! with a clear error, and nothing at or under a limit crashes (each case runs on a thread with
//! the 2 MiB stack of a Tokio worker).

use std::time::Duration;

use chrono::{TimeZone, Utc};
use indexmap::IndexMap;
use rivulet_mapping::limits::{
    MAX_FIELD_BYTES, MAX_PATH_DEPTH, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH,
    MAX_TEMPLATE_PLACEHOLDERS,
};
use rivulet_mapping::{CompileError, Context, FieldError, FieldSpec, Mapping, OutputMode};
use serde_json::{Value, json};

const STACK: usize = 2 * 1024 * 1024;

/// Runs `f` on a thread with a 2 MiB stack and waits at most `secs` for it.
fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("did not finish in time (or panicked)")
}

fn ctx() -> Context {
    Context::new(
        "limits",
        "run",
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    )
}

fn compile(template: &str) -> Result<Mapping, Vec<CompileError>> {
    let mut fields = IndexMap::new();
    fields.insert("x".to_owned(), FieldSpec::template(template));
    Mapping::compile(&fields)
}

fn refused(template: &str) -> CompileError {
    let mut errs = compile(template).expect_err("should be refused");
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.remove(0)
}

fn apply(m: &Mapping, record: Value) -> Result<IndexMap<String, Value>, Vec<FieldError>> {
    m.apply(&record, &ctx(), OutputMode::Wire)
}

/// `{{lowercase (lowercase ... record.a)}}` with `n` nested subexpressions.
fn subexpressions(n: usize) -> String {
    format!(
        "{{{{lowercase {}record.a{}}}}}",
        "(lowercase ".repeat(n),
        ")".repeat(n)
    )
}

fn blocks(n: usize) -> String {
    format!(
        "{}{{{{record.a}}}}{}",
        "{{#if record.a}}".repeat(n),
        "{{/if}}".repeat(n)
    )
}

#[test]
fn nesting_at_the_limit_compiles_and_renders() {
    let d = MAX_TEMPLATE_DEPTH;
    let cases = [
        // The direct evaluator.
        subexpressions(d),
        // Handlebars: blocks, subexpressions inside a block, each, else-if chains.
        blocks(d),
        format!("{{{{#if true}}}}{}{{{{/if}}}}", &subexpressions(d - 1)),
        format!(
            "{}{{{{this}}}}{}",
            "{{#each @root.record.l}}".repeat(d),
            "{{/each}}".repeat(d)
        ),
        format!(
            "{{{{#if record.no}}}}n{}{{{{else}}}}{{{{record.a}}}}{{{{/if}}}}",
            "{{else if record.no}}n".repeat(d - 1)
        ),
    ];
    for t in cases {
        let out = bounded(30, move || {
            let m = compile(&t).unwrap_or_else(|e| panic!("{t}: {e:?}"));
            apply(&m, json!({ "a": "A", "no": false, "l": [1] }))
        });
        assert!(out.is_ok(), "{out:?}");
    }
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    // A few thousand levels (the adversarial ~42 KB template) and just over the limit.
    let compact = format!("{{{{x {}y{}}}}}", "(x ".repeat(3_000), ")".repeat(3_000));
    for (t, deep) in [
        (compact, 3_000),
        (
            subexpressions(MAX_TEMPLATE_DEPTH + 1),
            MAX_TEMPLATE_DEPTH + 1,
        ),
        ("{{#a}}".repeat(1_000), 1_000),
        (blocks(MAX_TEMPLATE_DEPTH + 1), MAX_TEMPLATE_DEPTH + 1),
    ] {
        let e = bounded(10, move || refused(&t));
        assert_eq!(e.part, "template");
        assert!(
            e.message.contains("nests deeper than 64 levels"),
            "{deep}: {e}"
        );
        assert!(e.offset.is_some() && e.hint.is_some(), "{e:?}");
    }
    // The adversarial ~42 KB template and 10,000 nested `{{#if}}` are refused by their length
    // alone.
    for t in [subexpressions(3_500), blocks(10_000)] {
        let e = bounded(10, move || refused(&t));
        assert!(e.message.contains("the limit is 16 KiB"), "{e}");
    }
    // Unclosed: the scan still counts.
    let e = bounded(10, || {
        refused(&format!("{{{{lowercase {}", "(lowercase ".repeat(1_000)))
    });
    assert!(e.message.contains("nests deeper"), "{e}");
    let e = bounded(10, || refused(&format!("{{{{x {}}}}}", "(".repeat(10_000))));
    assert!(e.message.contains("nests deeper"), "{e}");
}

#[test]
fn large_templates_are_refused_or_compile() {
    // The largest allowed: every placeholder, every byte.
    let one = "{{record.a}} ";
    let pad = "x".repeat(MAX_TEMPLATE_BYTES - one.len() * MAX_TEMPLATE_PLACEHOLDERS);
    let big = format!("{pad}{}", one.repeat(MAX_TEMPLATE_PLACEHOLDERS));
    assert_eq!(big.len(), MAX_TEMPLATE_BYTES);
    let out = bounded(30, move || {
        let m = compile(&big).unwrap();
        apply(&m, json!({ "a": "A" })).unwrap()
    });
    assert_eq!(
        out["x"].as_str().unwrap().len(),
        MAX_TEMPLATE_BYTES - 11 * MAX_TEMPLATE_PLACEHOLDERS
    );
    // One too many of either.
    let e = refused(&one.repeat(MAX_TEMPLATE_PLACEHOLDERS + 1));
    assert!(e.message.contains("more than 256 placeholders"), "{e}");
    assert_eq!(e.offset, Some(one.len() * MAX_TEMPLATE_PLACEHOLDERS));
    let e = refused(&"y".repeat(MAX_TEMPLATE_BYTES + 1));
    assert!(e.to_string().contains("the limit is 16 KiB"), "{e}");
    // The adversarial sizes: 16,000 and 100,000 placeholders, 10,000 nested ifs.
    for n in [16_000, 100_000] {
        let t = one.repeat(n);
        let e = bounded(10, move || refused(&t));
        assert!(e.message.contains("the template is"), "{e}");
    }
}

#[test]
fn many_errors_are_capped() {
    let t = "{{nope}} ".repeat(200);
    let errs = compile(&t).unwrap_err();
    assert_eq!(errs.len(), 11, "{errs:?}");
    assert!(errs[10].message.contains("190 more"), "{}", errs[10]);
    // No hint is computed for names too long to compare.
    let long = format!("{{{{{}}}}}", "q".repeat(5_000));
    let e = refused(&long);
    assert_eq!(e.hint.as_deref().map(|h| h.len() > 5_000), Some(true));
}

#[test]
fn deep_paths_are_refused() {
    let mut fields = IndexMap::new();
    let deep = format!(
        "$[?{}@.a == 1{}]",
        "(".repeat(MAX_PATH_DEPTH * 10),
        ")".repeat(MAX_PATH_DEPTH * 10)
    );
    fields.insert(
        "p".to_owned(),
        FieldSpec::path(deep.clone(), Default::default()),
    );
    fields.insert(
        "t".to_owned(),
        FieldSpec::template(format!("{{{{jsonpath \"{deep}\"}}}}")),
    );
    let errs = bounded(10, move || Mapping::compile(&fields).unwrap_err());
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().all(|e| e.message.contains("nests deeper")));
    assert_eq!(errs[0].part, "path");
    // A path read from the record at run time is checked the same way.
    let m = compile("{{jsonpath record record.p}}").unwrap();
    let p = format!("$[?{}@{}]", "(".repeat(100_000), ")".repeat(100_000));
    let errs = bounded(10, move || apply(&m, json!({ "p": p })).unwrap_err());
    assert!(errs[0].message.contains("not a valid JSONPath"), "{errs:?}");
}

#[test]
fn nested_replace_fails_the_field_quickly() {
    let t = "{{replace (replace (replace record.x \"a\" record.x) \"a\" record.x) \"a\" record.x}}";
    let m = compile(t).unwrap();
    let x = "a".repeat(1024);
    let (errs, fine) = bounded(10, move || {
        let errs = apply(&m, json!({ "x": x })).unwrap_err();
        (errs, apply(&m, json!({ "x": "ab" })))
    });
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "x");
    assert!(
        errs[0]
            .message
            .contains("replace: the result would exceed 1 MiB"),
        "{}",
        errs[0]
    );
    assert!(errs[0].to_string().len() < 400, "{}", errs[0]);
    assert!(fine.is_ok(), "{fine:?}");
}

/// The test above again, in a process that may not use more than 1 GiB of address space:
/// before the limits, the second `replace` alone asked for 1 GiB and the process aborted.
#[test]
fn nested_replace_under_a_memory_limit() {
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" --exact nested_replace_fails_the_field_quickly")
        .arg(&exe)
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) => assert!(s.success(), "{s}"),
        Err(e) => eprintln!("skipped: no sh ({e})"),
    }
}

#[test]
fn output_limits_cover_every_way_to_grow() {
    let big = "b".repeat(300 * 1024);
    let cases = [
        // Text around values, repeated by Handlebars.
        "{{record.x}}{{record.x}}{{record.x}}{{record.x}}",
        "{{#each record.l}}{{../record.x}}{{/each}}",
        "{{concat record.x record.x record.x record.x}}",
        "{{join record.l record.x}}",
        "{{lowercase (concat record.x record.x record.x record.x)}}",
        "{{#if true}}{{concat record.x record.x record.x record.x}}{{/if}}",
        "{{split (concat record.x record.x record.x) \"b\"}}",
        "{{#each record.l}}{{#each ../record.l}}{{#each ../../record.l}}{{#each ../../../record.l}}{{/each}}{{/each}}{{/each}}{{/each}}",
    ];
    for t in cases {
        let m = compile(t).unwrap_or_else(|e| panic!("{t}: {e:?}"));
        let rec = json!({ "x": big.clone(), "l": (0..200).collect::<Vec<_>>() });
        let errs = bounded(20, move || apply(&m, rec).unwrap_err());
        assert!(
            errs[0].message.contains("exceed") || errs[0].message.contains("loops more than"),
            "{t}: {errs:?}"
        );
    }
    // A path selecting a large list, and a record whose fields together are too large.
    let mut fields = IndexMap::new();
    fields.insert(
        "m".to_owned(),
        FieldSpec::path("$.l[*]", rivulet_mapping::FieldType::MultiEnumeration),
    );
    let m = Mapping::compile(&fields).unwrap();
    let l: Vec<String> = (0..20_000).map(|i| format!("item-{i:060}")).collect();
    let errs = apply(&m, json!({ "l": l })).unwrap_err();
    assert!(errs[0].message.contains("exceed 1 MiB"), "{errs:?}");
    let mut fields = IndexMap::new();
    for i in 0..5 {
        fields.insert(format!("f{i}"), FieldSpec::template("{{record.x}}"));
    }
    let m = Mapping::compile(&fields).unwrap();
    let x = "c".repeat(MAX_FIELD_BYTES - 1);
    let errs = apply(&m, json!({ "x": x })).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, "f4");
    assert!(errs[0].message.contains("would exceed 4 MiB"), "{errs:?}");
}

#[test]
fn slow_builtin_helpers_in_loops_hit_the_deadline() {
    // Under the iteration limit (300 × 300), but each iteration compares two 1 MiB values.
    let t = "{{#each record.l}}{{#each @root.record.l}}\
             {{#if (eq @root.record.x @root.record.y)}}{{/if}}\
             {{#if (eq @root.record.x @root.record.y)}}{{/if}}\
             {{/each}}{{/each}}";
    let m = compile(t).unwrap();
    let x = "z".repeat(MAX_FIELD_BYTES - 10);
    let rec = json!({ "x": x.clone(), "y": x, "l": (0..300).collect::<Vec<_>>() });
    let errs = bounded(30, move || apply(&m, rec).unwrap_err());
    assert!(
        errs[0].message.contains("rendering took longer than 1 s"),
        "{errs:?}"
    );
}
