//! Mapping test files (`NAME.test.yaml` beside `NAME.yaml`): the format as types — their `///`
//! comments become `schemas/test.schema.json` — and reading one with located errors.
//!
//! A file is checked like a flow (YAML, then the schema, then the rules a schema cannot say),
//! but case by case: a broken case fails on its own and the others still run.

use crate::diagnostic::{Diagnostic, Pos};
use crate::load::SourceFile;
use crate::schema;
use crate::structure;
use crate::validate::typed;
use crate::yaml::{Node, Step, Value as Yaml};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A file of mapping tests for the flow beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Rivulet mapping tests")]
pub struct TestFile {
    /// The tests, run in order. Each maps `input` with the flow's mapping and compares.
    #[schemars(length(min = 1))]
    pub tests: Vec<TestCase>,
}

/// One test: a source record and what mapping it must give (`expect`) or how it must fail
/// (`expect_error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the test shows, in a few words (it names the test in reports).
    pub name: String,
    /// The source record, as a trigger or source would hand it to the mapping.
    pub input: Map<String, Value>,
    /// Fields the mapped record must have, with their values (numbers compare by value; in
    /// `wire` mode every value is a string). Other fields are ignored unless `exact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Map<String, Value>>,
    /// Mapping must fail with a field error containing this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<String>,
    /// The flow's `when:` must keep this record out (`true`), or let it through (`false`, what
    /// `expect` and `expect_error` imply anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_filtered: Option<bool>,
    /// The mapped record has exactly the fields in `expect`, no others.
    #[serde(default)]
    pub exact: bool,
    /// `wire` (HubSpot's format: every value a string) or `native` (JSON types, as file and
    /// HTTP actions receive them); by default `wire` when the flow has a HubSpot action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TestMode>,
    /// The instant templates see as `now` and `run.started_at` (RFC 3339; default
    /// `2026-01-01T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
}

/// The form mapped values take in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestMode {
    /// HubSpot's wire format: every value a string.
    Wire,
    /// Native JSON types.
    Native,
}

/// `now` and `run.started_at` of a test that sets no `now:`.
pub const DEFAULT_NOW: &str = "2026-01-01T00:00:00Z";

/// What a test checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// These fields with these values.
    Fields(Map<String, Value>),
    /// A field error containing this text.
    Error(String),
    /// The flow's `when:` keeps the record out.
    Filtered,
}

/// A test ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// Where it starts in the file.
    pub pos: Pos,
    /// The source record.
    pub input: Value,
    /// What it checks.
    pub check: Check,
    /// Whether `expect` lists every field.
    pub exact: bool,
    /// The output form, when set.
    pub mode: Option<TestMode>,
    /// `now`, when set.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

/// A test that cannot run, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Which test of the file it is (from 1), to name one without a name.
    pub number: usize,
    /// Where it starts.
    pub pos: Pos,
    /// Its problems, with positions.
    pub problems: Vec<Diagnostic>,
}

/// Reads the tests of `file`: each case ready to run or broken on its own, or the problems
/// that keep the file from being read as tests at all.
pub fn read(file: &SourceFile) -> Result<Vec<Result<Case, Broken>>, Vec<Diagnostic>> {
    let path = &file.path;
    let root = match &file.parsed {
        Ok(root) => root,
        Err(e) => {
            let mut d = Diagnostic::error("yaml_syntax", path, e.pos, e.message.clone());
            d.hint = e.hint.clone();
            return Err(vec![d]);
        }
    };
    let items = match (&root.value, root.get("tests").map(|t| &t.value)) {
        (Yaml::Map(_), tests) => {
            let found = structure::check(root, schema::test_schema());
            // Problems inside a test belong to that test, which fails alone; the rest keep the
            // file from being read at all.
            let (file_level, in_cases): (Vec<_>, Vec<_>) = found
                .into_iter()
                .partition(|i| case_index(&i.path).is_none());
            if !file_level.is_empty() {
                return Err(issues(path, file_level));
            }
            let Some(Yaml::Seq(items)) = tests else {
                return Err(Vec::new());
            };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let mine = in_cases
                        .iter()
                        .filter(|issue| case_index(&issue.path) == Some(i))
                        .cloned()
                        .collect();
                    (item, issues(path, mine))
                })
                .collect::<Vec<_>>()
        }
        _ => {
            return Err(vec![
                Diagnostic::error(
                    if matches!(root.value, Yaml::Null) {
                        "missing_key"
                    } else {
                        "wrong_type"
                    },
                    path,
                    root.pos,
                    format!("expected a mapping with `tests`, found {}", root.kind()),
                )
                .with_hint("a test file is a mapping with a `tests` list"),
            ]);
        }
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, (item, problems))| read_case(path, i, item, problems))
        .collect())
}

/// Which test an issue's path is inside (`tests[i]…`).
fn case_index(path: &[Step]) -> Option<usize> {
    match path {
        [Step::Key(k), Step::Index(i), ..] if k == "tests" => Some(*i),
        _ => None,
    }
}

fn issues(path: &std::path::Path, found: Vec<structure::Issue>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = found
        .into_iter()
        .map(|i| {
            let mut d = Diagnostic::error(i.code, path, i.pos, i.message);
            d.hint = i.hint;
            d
        })
        .collect();
    out.sort_by_key(|d| d.pos);
    out
}

fn read_case(
    path: &std::path::Path,
    index: usize,
    item: &Node,
    mut problems: Vec<Diagnostic>,
) -> Result<Case, Broken> {
    let name = item
        .get("name")
        .and_then(Node::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string);
    let broken = |problems: Vec<Diagnostic>| Broken {
        name: name.clone(),
        number: index + 1,
        pos: item.pos,
        problems,
    };
    if !problems.is_empty() {
        return Err(broken(problems));
    }
    let Some(case) = typed::<TestCase>(path, item, &mut problems) else {
        return Err(broken(problems));
    };
    let at = |key: &str| {
        item.entry(key).map_or(item.pos, |(k, v)| {
            if matches!(v.value, Yaml::Null) {
                k.pos
            } else {
                v.pos
            }
        })
    };
    let mut error = |pos: Pos, code: &'static str, message: &str, hint: Option<&str>| {
        let mut d = Diagnostic::error(code, path, pos, message);
        d.hint = hint.map(str::to_string);
        problems.push(d);
    };
    if case.name.trim().is_empty() {
        error(
            at("name"),
            "invalid_value",
            "`name` is empty",
            Some("name the test: it is how reports refer to it"),
        );
    }
    let filtered = case.expect_filtered == Some(true);
    if filtered && (case.expect.is_some() || case.expect_error.is_some()) {
        error(
            item.locate(&[Step::Key("expect_filtered".into())]),
            "invalid_value",
            "`expect_filtered: true` excludes `expect` and `expect_error`",
            Some("a filtered record is never mapped"),
        );
    }
    let check = match (case.expect, case.expect_error) {
        _ if filtered => Some(Check::Filtered),
        (Some(fields), None) => Some(Check::Fields(fields)),
        (None, Some(text)) if text.trim().is_empty() => {
            error(
                at("expect_error"),
                "invalid_value",
                "`expect_error` is empty, so any error would pass",
                Some("write part of the error message, e.g. the field's name"),
            );
            None
        }
        (None, Some(text)) => {
            if case.exact {
                error(
                    at("exact"),
                    "invalid_value",
                    "`exact` applies to `expect`, not to `expect_error`",
                    None,
                );
            }
            Some(Check::Error(text))
        }
        (Some(_), Some(_)) => {
            error(
                item.locate(&[Step::Key("expect_error".into())]),
                "invalid_value",
                "`expect` and `expect_error` exclude each other",
                Some("a record either maps or fails"),
            );
            None
        }
        (None, None) => {
            error(
                item.pos,
                "missing_key",
                "a test needs `expect`, `expect_error` or `expect_filtered: true`",
                None,
            );
            None
        }
    };
    let now = match &case.now {
        None => None,
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                error(
                    at("now"),
                    "invalid_value",
                    "`now` must be an RFC 3339 instant",
                    Some(&format!("e.g. `now: {DEFAULT_NOW}`")),
                );
                None
            }
        },
    };
    problems.sort_by_key(|d| d.pos);
    match check {
        Some(check) if problems.is_empty() => Ok(Case {
            name: case.name,
            pos: item.pos,
            input: Value::Object(case.input),
            check,
            exact: case.exact,
            mode: case.mode,
            now,
        }),
        _ => Err(broken(problems)),
    }
}
