//! `rivulet test`: the mapping tests that live beside the flows.
//!
//! A flow `flows/NAME.yaml` (or `.yml`) is tested by `flows/NAME.test.yaml` (or `.test.yml`):
//!
//! ```yaml
//! # flows/new-contacts-to-file.test.yaml
//! tests:
//!   - name: maps a full contact
//!     input: { id: "101", properties: { email: ada@example.com, firstname: Ada, lastname: Lovelace } }
//!     expect: { email: ada@example.com, full_name: Ada Lovelace }   # these fields, others ignored
//!     exact: false          # true: the output has exactly the fields in `expect`
//!     mode: native          # wire | native; default: wire when the flow has a hubspot action
//!     now: 2026-01-01T00:00:00Z   # `now` and `run.started_at` (the default)
//!   - name: rejects a bad employee count
//!     input: { employees: abc }
//!     expect_error: numberofemployees   # a substring of one of the record's field errors
//! ```
//!
//! Each test maps `input` (the source record) with the flow's mapping and a fixed context (the
//! flow's name, run id `test`, `now` 2026-01-01T00:00:00Z unless the test sets `now:`), then
//! compares: `expect` lists fields and their values (numbers compare by value; in wire mode
//! every value is a string); `expect_error` passes when mapping fails with a field error
//! containing the text. The flow is validated first, with the connections file beside it; a
//! flow with errors fails all its tests with its diagnostics.
//!
//! `rivulet test [PATHS…]` (default `flows`) runs every `*.test.yaml` / `*.test.yml` under the
//! directories given (recursively, hidden entries skipped), the test files given, and the test
//! file of each flow file given. Exit codes: 0 every test passed; 1 a test failed or a test file
//! is malformed (located errors, `file:line:column`); 2 usage or I/O error, including no test
//! file at all under the paths given.
//!
//! `--format json` prints one document (`version` 1; fields are only ever added):
//! `{"version":1,"passed":N,"failed":M,"results":[{"file","name","line","status","diff","errors"}]}`,
//! `status` being `passed` or `failed`, `diff` a list of `{"field","kind","expected","got"}`
//! (`kind`: `changed`, `missing` or `unexpected`) and `errors` a list of messages. A test file
//! that cannot be read as tests at all is one failed result with `name: null`.

use crate::cmd::map::{LoadedFlow, load_flow, parse_instant};
use anyhow::{Context as _, bail};
use rivulet_mapping::{Context, OutputMode};
use rivulet_spec::diagnostic::{Diagnostic, Pos, Severity};
use rivulet_spec::load::{SourceFile, is_test_file};
use rivulet_spec::testfile::{self, Check, DEFAULT_NOW, TestMode};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Output formats of `rivulet test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    /// One line per test, a diff under each failure, and a summary.
    Human,
    /// One JSON document (stable, versioned).
    Json,
}

/// Arguments of `rivulet test`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet test\n  rivulet test flows/orders.yaml --format json\n\nExit codes: 0 every test passed, 1 a test failed or a test file is malformed, 2 usage or I/O error (no test file found)."
)]
pub struct Args {
    /// Test files (`NAME.test.yaml`), flow files (their tests are run) or directories (searched
    /// recursively for *.test.yaml and *.test.yml).
    #[arg(default_value = "flows")]
    paths: Vec<PathBuf>,
    /// Output: `human` or `json`.
    #[arg(long, value_enum, default_value = "human")]
    format: TestFormat,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = find_test_files(&args.paths)?;
    let mut outcomes = Vec::new();
    for file in &files {
        outcomes.extend(run_file(file)?);
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        TestFormat::Human => human(&mut stdout, &outcomes)?,
        TestFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &json_report(&outcomes))?;
            writeln!(stdout)?;
        }
    }
    Ok(if outcomes.iter().all(|o| o.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// ---------------------------------------------------------------------------------------------
// Finding test files

fn find_test_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut found)?;
        } else if is_test_file(path) {
            found.push(path.clone());
        } else if let Some(test) = test_file_of(path) {
            found.push(test);
        } else {
            bail!(
                "{}: not a test file (NAME.test.yaml), and no test file beside it",
                path.display()
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())));
    if found.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "no mapping tests found in {} (a flow's tests live beside it: NAME.test.yaml next to NAME.yaml)",
            shown.join(", ")
        );
    }
    Ok(found)
}

/// The test file beside a flow file, if there is one.
fn test_file_of(flow: &Path) -> Option<PathBuf> {
    let stem = flow.file_stem()?.to_str()?;
    ["test.yaml", "test.yml"]
        .iter()
        .map(|ext| flow.with_file_name(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// The flow file a test file belongs to, if it exists.
fn flow_file_of(test: &Path) -> (PathBuf, bool) {
    let name = test.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = name
        .strip_suffix(".test.yaml")
        .or_else(|| name.strip_suffix(".test.yml"))
        .unwrap_or(name);
    let yaml = test.with_file_name(format!("{stem}.yaml"));
    if yaml.is_file() {
        return (yaml, true);
    }
    let yml = test.with_file_name(format!("{stem}.yml"));
    if yml.is_file() {
        return (yml, true);
    }
    (yaml, false)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .and_then(|rd| rd.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{}", dir.display()))?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        let file_type = entry
            .file_type()
            .with_context(|| format!("{}", path.display()))?;
        if file_type.is_dir() {
            walk(&path, found)?;
        } else if is_test_file(&path) {
            found.push(path);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running

/// One difference between the expected and the mapped fields.
#[derive(Debug)]
enum Diff {
    Changed {
        field: String,
        expected: Value,
        got: Value,
    },
    Missing {
        field: String,
        expected: Value,
    },
    Unexpected {
        field: String,
        got: Value,
    },
}

/// The result of one test (or of a test file that could not be read).
#[derive(Debug)]
struct Outcome {
    file: PathBuf,
    name: Option<String>,
    pos: Pos,
    passed: bool,
    diff: Vec<Diff>,
    errors: Vec<String>,
    /// The mapped fields, shown under a failure.
    output: Option<Value>,
    /// The errors are the flow's validation diagnostics (shown once per file).
    flow_invalid: bool,
    /// Wire mode compared a non-string expectation (a hint is shown).
    wire: bool,
    /// Which test of the file, for a test without a name.
    number: Option<usize>,
}

impl Outcome {
    fn new(file: &Path, name: Option<String>, pos: Pos) -> Outcome {
        Outcome {
            file: file.to_path_buf(),
            name,
            pos,
            passed: false,
            diff: Vec::new(),
            errors: Vec::new(),
            output: None,
            flow_invalid: false,
            wire: false,
            number: None,
        }
    }
}

fn run_file(file: &Path) -> anyhow::Result<Vec<Outcome>> {
    let source = SourceFile::read(file)?;
    let file_failure = |problems: Vec<Diagnostic>| {
        let mut o = Outcome::new(
            file,
            None,
            problems.first().map(|d| d.pos).unwrap_or_default(),
        );
        o.errors = problems.iter().map(ToString::to_string).collect();
        vec![o]
    };
    let entries = match testfile::read(&source) {
        Ok(entries) => entries,
        Err(problems) => return Ok(file_failure(problems)),
    };

    let (flow_path, exists) = flow_file_of(file);
    let flow: Result<LoadedFlow, Vec<String>> = if exists {
        load_flow(&flow_path)?.map_err(|validation| {
            validation
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(ToString::to_string)
                .collect()
        })
    } else {
        Err(vec![
            Diagnostic::error(
                "missing_flow",
                file,
                Pos::default(),
                format!("no flow {} beside this test file", flow_path.display()),
            )
            .with_hint("a test file NAME.test.yaml tests the flow NAME.yaml in the same folder")
            .to_string(),
        ])
    };

    let default_now = parse_instant(DEFAULT_NOW).map_err(anyhow::Error::msg)?;
    let mut outcomes = Vec::new();
    for entry in entries {
        let case = match entry {
            Ok(case) => case,
            Err(broken) => {
                let mut o = Outcome::new(file, broken.name, broken.pos);
                o.number = Some(broken.number);
                o.errors = broken.problems.iter().map(ToString::to_string).collect();
                outcomes.push(o);
                continue;
            }
        };
        let mut o = Outcome::new(file, Some(case.name.clone()), case.pos);
        let flow = match &flow {
            Ok(flow) => flow,
            Err(errors) => {
                o.errors = errors.clone();
                o.flow_invalid = exists;
                outcomes.push(o);
                continue;
            }
        };
        let mode = match case.mode {
            Some(TestMode::Wire) => OutputMode::Wire,
            Some(TestMode::Native) => OutputMode::Native,
            None => flow.default_mode,
        };
        let now = case.now.unwrap_or(default_now);
        let ctx = Context::new(&flow.name, "test", now);
        // The flow's `when:` first, as a run applies it.
        let kept = match &flow.when {
            None => Ok(true),
            Some(when) => when.eval(&case.input, &ctx),
        };
        match (&kept, &case.check) {
            (Ok(false), Check::Filtered) => {
                o.passed = true;
                outcomes.push(o);
                continue;
            }
            (Ok(true), Check::Filtered) => {
                o.errors.push(
                    "expected the flow's `when:` to filter the record out, but it lets it through"
                        .into(),
                );
                outcomes.push(o);
                continue;
            }
            (Ok(false), _) => {
                o.errors.push(format!(
                    "the flow's `when:` filters this record out (it would never be mapped): {}",
                    flow.when.as_ref().map(|w| w.text()).unwrap_or_default()
                ));
                outcomes.push(o);
                continue;
            }
            (Err(e), _) => {
                o.errors
                    .push(format!("the flow's `when:` fails on this record: {e}"));
                outcomes.push(o);
                continue;
            }
            (Ok(true), _) => {}
        }
        match (flow.mapping.apply(&case.input, &ctx, mode), &case.check) {
            (Ok(fields), Check::Fields(expected)) => {
                let got: serde_json::Map<String, Value> = fields.into_iter().collect();
                o.diff = compare(expected, &got, case.exact);
                o.passed = o.diff.is_empty();
                o.wire = mode == OutputMode::Wire
                    && o.diff.iter().any(|d| {
                        matches!(d, Diff::Changed { expected, got: Value::String(_), .. }
                            if !expected.is_string())
                    });
                o.output = Some(Value::Object(got));
            }
            (Ok(fields), Check::Error(text)) => {
                o.errors.push(format!(
                    "expected an error containing {}, but the record mapped",
                    json!(text)
                ));
                o.output = Some(Value::Object(fields.into_iter().collect()));
            }
            (Err(errors), Check::Error(text)) => {
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                if messages.iter().any(|m| m.contains(text.as_str())) {
                    o.passed = true;
                } else {
                    o.errors.push(format!(
                        "expected an error containing {}, but the errors were:",
                        json!(text)
                    ));
                    o.errors.extend(messages);
                }
            }
            (Err(errors), Check::Fields(_)) => {
                o.errors.push("the record failed to map:".into());
                o.errors.extend(errors.iter().map(ToString::to_string));
            }
            // Decided before mapping.
            (_, Check::Filtered) => {}
        }
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// The differences between the expected fields and the mapped ones, in expected order (then
/// the unexpected fields, in output order).
fn compare(
    expected: &serde_json::Map<String, Value>,
    got: &serde_json::Map<String, Value>,
    exact: bool,
) -> Vec<Diff> {
    let mut diff = Vec::new();
    for (field, want) in expected {
        match got.get(field) {
            None => diff.push(Diff::Missing {
                field: field.clone(),
                expected: want.clone(),
            }),
            Some(have) if !same(want, have) => diff.push(Diff::Changed {
                field: field.clone(),
                expected: want.clone(),
                got: have.clone(),
            }),
            Some(_) => {}
        }
    }
    if exact {
        for (field, have) in got {
            if !expected.contains_key(field) {
                diff.push(Diff::Unexpected {
                    field: field.clone(),
                    got: have.clone(),
                });
            }
        }
    }
    diff
}

/// JSON equality with numbers compared by value (`120` equals `120.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_i64(), y.as_i64()) {
                    (Some(i), Some(j)) => i == j,
                    _ => x.as_f64() == y.as_f64(),
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Output

fn json_report(outcomes: &[Outcome]) -> Value {
    let passed = outcomes.iter().filter(|o| o.passed).count();
    json!({
        "version": crate::render::JSON_VERSION,
        "passed": passed,
        "failed": outcomes.len() - passed,
        "results": outcomes.iter().map(|o| json!({
            "file": o.file,
            "name": o.name,
            "line": o.pos.line,
            "status": if o.passed { "passed" } else { "failed" },
            "diff": o.diff.iter().map(|d| match d {
                Diff::Changed { field, expected, got } =>
                    json!({"field": field, "kind": "changed", "expected": expected, "got": got}),
                Diff::Missing { field, expected } =>
                    json!({"field": field, "kind": "missing", "expected": expected}),
                Diff::Unexpected { field, got } =>
                    json!({"field": field, "kind": "unexpected", "got": got}),
            }).collect::<Vec<_>>(),
            "errors": o.errors,
        })).collect::<Vec<_>>(),
    })
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn human(out: &mut impl Write, outcomes: &[Outcome]) -> std::io::Result<()> {
    let style = Style {
        on: std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let mut invalid_shown: Option<&Path> = None;
    for o in outcomes {
        let unnamed;
        let name = match (&o.name, o.number) {
            (Some(name), _) => name.as_str(),
            (None, Some(n)) => {
                unnamed = format!("(test {n}, without a name)");
                &unnamed
            }
            (None, None) => "(the test file)",
        };
        if o.passed {
            writeln!(
                out,
                "{}   {}: {name}",
                style.paint("32", "ok"),
                o.file.display()
            )?;
            continue;
        }
        let at = if o.pos.is_known() {
            format!("{}:{}", o.file.display(), o.pos.line)
        } else {
            o.file.display().to_string()
        };
        writeln!(out, "{} {at}: {name}", style.paint("1;31", "FAIL"))?;
        if o.flow_invalid {
            if invalid_shown == Some(&o.file) {
                writeln!(out, "    the flow is invalid (see above)")?;
                continue;
            }
            invalid_shown = Some(&o.file);
            writeln!(out, "    the flow is invalid:")?;
        }
        for e in &o.errors {
            writeln!(out, "    {}", crate::render::printable(e))?;
        }
        for d in &o.diff {
            match d {
                Diff::Changed {
                    field,
                    expected,
                    got,
                } => {
                    writeln!(out, "    {field}:")?;
                    writeln!(out, "      {} {expected}", style.paint("32", "expected:"))?;
                    writeln!(out, "      {} {got}", style.paint("31", "got:     "))?;
                }
                Diff::Missing { field, expected } => writeln!(
                    out,
                    "    {field}: {} (expected {expected})",
                    style.paint("31", "missing from the output")
                )?,
                Diff::Unexpected { field, got } => writeln!(
                    out,
                    "    {field}: {} (got {got}; `exact: true` lists every field)",
                    style.paint("31", "not expected")
                )?,
            }
        }
        if o.wire {
            writeln!(
                out,
                "    {} in wire mode every value is a string: quote the expected value, or set `mode: native`",
                style.paint("36", "hint:")
            )?;
        }
        if let Some(output) = &o.output {
            writeln!(out, "    mapped: {output}")?;
        }
    }
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let failed = outcomes.len() - passed;
    writeln!(out)?;
    let text = format!("{passed} passed, {failed} failed");
    writeln!(
        out,
        "{}",
        style.paint(if failed == 0 { "1;32" } else { "1;31" }, &text)
    )
}
