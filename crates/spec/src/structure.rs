//! The structural check: a YAML tree against the generated JSON Schema, reporting *every*
//! problem with its position — unknown keys (with a did-you-mean), wrong types, missing keys,
//! values outside their enumeration or range, malformed durations.
//!
//! It interprets the subset of JSON Schema that `schemars` emits for our types. Keeping the
//! interpreter here (rather than a general validator) lets messages speak the author's
//! language: "unknown key `pol_every` in `trigger.hubspot`; did you mean `poll_every`?".

use crate::diagnostic::{Pos, did_you_mean};
use crate::model::Duration;
use crate::yaml::{Node, Step, Value, path_to_string};
use serde_json::{Map, Value as Json};

/// A structural problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// A stable code (`unknown_key`, `wrong_type`, `missing_key`, `invalid_value`, …).
    pub code: &'static str,
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// Where in the tree (`tests[2].mode`), for callers that report by part.
    pub path: Vec<Step>,
}

/// Checks `node` against `schema` (a root schema with `$defs`).
pub fn check(node: &Node, schema: &Json) -> Vec<Issue> {
    let mut checker = Checker {
        root: schema,
        issues: Vec::new(),
        path: Vec::new(),
    };
    checker.check(node, schema, node.pos);
    checker.issues
}

struct Checker<'s> {
    root: &'s Json,
    issues: Vec<Issue>,
    path: Vec<Step>,
}

impl<'s> Checker<'s> {
    fn resolve(&self, mut schema: &'s Json) -> &'s Json {
        // Bounded: schemars never emits ref cycles without a structural step in between.
        for _ in 0..16 {
            match schema.get("$ref").and_then(Json::as_str) {
                Some(r) => match r
                    .strip_prefix("#/$defs/")
                    .and_then(|name| self.root.get("$defs")?.get(name))
                {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    fn issue(&mut self, code: &'static str, pos: Pos, message: String, hint: Option<String>) {
        self.issues.push(Issue {
            code,
            pos,
            message,
            hint,
            path: self.path.clone(),
        });
    }

    /// Where the current value lives, for messages: "`trigger.hubspot.on`" or "the file".
    fn here(&self) -> String {
        if self.path.is_empty() {
            "the file".to_string()
        } else {
            format!("`{}`", path_to_string(&self.path))
        }
    }

    /// `at` is the position to blame for this value as a whole (its key, when it has one).
    fn check(&mut self, node: &Node, schema: &'s Json, at: Pos) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            self.check_alternatives(node, branches, at);
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Json::as_array) {
            self.check_enum(node, allowed, at);
            return;
        }
        if let Some(constant) = schema.get("const") {
            self.check_enum(node, std::slice::from_ref(constant), at);
            return;
        }
        if !self.check_type(node, schema, at) {
            return;
        }
        match &node.value {
            Value::Map(entries) => self.check_object(node, entries, schema, at),
            Value::Seq(items) => self.check_array(items, schema, at),
            Value::Int(_) | Value::Float(_) => self.check_number(node, schema),
            Value::Str(s) => {
                if schema.get("format").and_then(Json::as_str) == Some("duration")
                    && let Err(message) = Duration::parse(s)
                {
                    let here = self.here();
                    self.issue(
                        "invalid_duration",
                        node.pos,
                        format!("{here}: {message}"),
                        None,
                    );
                }
            }
            _ => {}
        }
    }

    fn check_alternatives(&mut self, node: &Node, branches: &'s [Json], at: Pos) {
        let resolved: Vec<&'s Json> = branches.iter().map(|b| self.resolve(b)).collect();
        // A set of constants (a documented enum) reads best as one "one of" message.
        let constants: Option<Vec<Json>> = resolved
            .iter()
            .map(|b| {
                b.get("const").cloned().or_else(|| {
                    b.get("enum")
                        .and_then(Json::as_array)
                        .filter(|values| values.len() == 1)
                        .map(|values| values[0].clone())
                })
            })
            .collect();
        if let Some(constants) = constants {
            self.check_enum(node, &constants, at);
            return;
        }
        let fitting: Vec<&'s Json> = resolved
            .iter()
            .copied()
            .filter(|b| type_fits(node, b))
            .collect();
        match fitting.as_slice() {
            [] => {
                let expected: Vec<String> =
                    resolved.iter().filter_map(|b| describe_type(b)).collect();
                let here = self.here();
                self.issue(
                    "wrong_type",
                    value_pos(node, at),
                    format!(
                        "{here} must be {}, found {}",
                        join_or(&expected),
                        node.kind()
                    ),
                    None,
                );
            }
            [only] => self.check(node, only, at),
            several => {
                // Take the alternative the value fits best: the one with the fewest issues.
                let mut best: Option<Vec<Issue>> = None;
                for branch in several {
                    let saved = std::mem::take(&mut self.issues);
                    self.check(node, branch, at);
                    let found = std::mem::replace(&mut self.issues, saved);
                    if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                        let done = found.is_empty();
                        best = Some(found);
                        if done {
                            break;
                        }
                    }
                }
                self.issues.extend(best.unwrap_or_default());
            }
        }
    }

    fn check_enum(&mut self, node: &Node, allowed: &[Json], at: Pos) {
        let json = node.to_json();
        if allowed.contains(&json) {
            return;
        }
        let names: Vec<String> = allowed
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        let here = self.here();
        let shown = match &node.value {
            Value::Str(s) => format!("`{s}`"),
            _ => node.kind().to_string(),
        };
        let hint = node
            .as_str()
            .and_then(|s| did_you_mean(s, names.iter().map(String::as_str)))
            .map(|s| format!("did you mean `{s}`?"));
        self.issue(
            "invalid_value",
            value_pos(node, at),
            format!(
                "{here} is {shown}, which is not one of: {}",
                names.join(", ")
            ),
            hint,
        );
    }

    fn check_type(&mut self, node: &Node, schema: &Json, at: Pos) -> bool {
        if schema.get("type").is_none() || type_fits(node, schema) {
            return true;
        }
        let expected = describe_type(schema).unwrap_or_else(|| "something else".into());
        let here = self.here();
        let hint = match (&node.value, expected.as_str()) {
            (Value::Int(_) | Value::Float(_) | Value::Bool(_), e) if e.starts_with("a string") => {
                Some("quote the value to make it a string".to_string())
            }
            (Value::Null, _) => Some("the value is missing after the colon".to_string()),
            _ => None,
        };
        self.issue(
            "wrong_type",
            value_pos(node, at),
            format!("{here} must be {expected}, found {}", node.kind()),
            hint,
        );
        false
    }

    fn check_object(
        &mut self,
        node: &Node,
        entries: &[(crate::yaml::Key, Node)],
        schema: &'s Json,
        at: Pos,
    ) {
        static EMPTY: std::sync::LazyLock<Map<String, Json>> = std::sync::LazyLock::new(Map::new);
        let properties = schema
            .get("properties")
            .and_then(Json::as_object)
            .unwrap_or(&EMPTY);
        let additional = schema.get("additionalProperties");
        for (key, value) in entries {
            self.path.push(Step::Key(key.name.clone()));
            match properties.get(&key.name) {
                Some(sub) => self.check(value, sub, key.pos),
                None => match additional {
                    Some(Json::Bool(false)) => {
                        let parent = if self.path.len() > 1 {
                            format!(
                                " in `{}`",
                                path_to_string(&self.path[..self.path.len() - 1])
                            )
                        } else {
                            String::new()
                        };
                        let hint = did_you_mean(&key.name, properties.keys().map(String::as_str))
                            .map(|s| format!("did you mean `{s}`?"))
                            .or_else(|| {
                                let keys: Vec<&str> =
                                    properties.keys().map(String::as_str).collect();
                                (!keys.is_empty())
                                    .then(|| format!("expected one of: {}", keys.join(", ")))
                            });
                        self.issue(
                            "unknown_key",
                            key.pos,
                            format!("unknown key `{}`{parent}", key.name),
                            hint,
                        );
                    }
                    Some(sub @ Json::Object(_)) => self.check(value, sub, key.pos),
                    _ => {}
                },
            }
            self.path.pop();
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for name in required.iter().filter_map(Json::as_str) {
                if node.get(name).is_none() {
                    let here = self.here();
                    let what = properties
                        .get(name)
                        .and_then(|p| {
                            p.get("description")
                                .or_else(|| self.resolve(p).get("description"))
                        })
                        .and_then(Json::as_str)
                        .map(first_sentence);
                    self.issue(
                        "missing_key",
                        at,
                        format!("{here} is missing the required key `{name}`"),
                        what.map(|w| format!("`{name}`: {w}")),
                    );
                }
            }
        }
        let min = schema.get("minProperties").and_then(Json::as_u64);
        let max = schema.get("maxProperties").and_then(Json::as_u64);
        let count = entries.len() as u64;
        if (min == Some(1) && max == Some(1)) && count != 1 {
            let keys: Vec<&str> = properties.keys().map(String::as_str).collect();
            let here = self.here();
            let message = if count == 0 {
                format!(
                    "{here} is empty; it needs exactly one of: {}",
                    keys.join(", ")
                )
            } else {
                let given: Vec<&str> = entries.iter().map(|(k, _)| k.name.as_str()).collect();
                format!(
                    "{here} has {}; it takes exactly one of them",
                    given.join(" and ")
                )
            };
            self.issue("exactly_one", at, message, None);
        } else if min.is_some_and(|m| count < m) {
            let here = self.here();
            self.issue(
                "too_few",
                at,
                format!("{here} needs at least {} entries", min.unwrap_or(0)),
                None,
            );
        }
    }

    fn check_array(&mut self, items: &[Node], schema: &'s Json, at: Pos) {
        if let Some(min) = schema.get("minItems").and_then(Json::as_u64)
            && (items.len() as u64) < min
        {
            let here = self.here();
            self.issue(
                "too_few",
                at,
                format!(
                    "{here} needs at least {min} item{}",
                    if min == 1 { "" } else { "s" }
                ),
                None,
            );
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.path.push(Step::Index(i));
                self.check(item, item_schema, item.pos);
                self.path.pop();
            }
        }
    }

    fn check_number(&mut self, node: &Node, schema: &Json) {
        let value = match node.value {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
            _ => return,
        };
        let here = self.here();
        if !value.is_finite() {
            self.issue(
                "out_of_range",
                node.pos,
                format!("{here} is not a finite number"),
                None,
            );
            return;
        }
        if let Some(min) = schema.get("minimum").and_then(Json::as_f64)
            && value < min
        {
            self.issue(
                "out_of_range",
                node.pos,
                format!("{here} is {value}; it must be at least {min}"),
                None,
            );
        }
        if let Some(max) = schema.get("maximum").and_then(Json::as_f64)
            && value > max
        {
            self.issue(
                "out_of_range",
                node.pos,
                format!("{here} is {value}; it must be at most {max}"),
                None,
            );
        }
    }
}

/// Blame the key for a missing value, the value itself otherwise.
fn value_pos(node: &Node, at: Pos) -> Pos {
    if matches!(node.value, Value::Null) {
        at
    } else {
        node.pos
    }
}

fn type_fits(node: &Node, schema: &Json) -> bool {
    let types: Vec<&str> = match schema.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
        // No type: constants and enums decide for themselves.
        _ => {
            if let Some(c) = schema.get("const") {
                return json_type(&node.to_json()) == json_type(c);
            }
            return true;
        }
    };
    types.iter().any(|t| match (*t, &node.value) {
        ("null", Value::Null) => true,
        ("boolean", Value::Bool(_)) => true,
        ("integer", Value::Int(_)) => true,
        ("integer", Value::Float(f)) => f.fract() == 0.0,
        ("number", Value::Int(_) | Value::Float(_)) => true,
        ("string", Value::Str(_)) => true,
        ("array", Value::Seq(_)) => true,
        ("object", Value::Map(_)) => true,
        _ => false,
    })
}

fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn describe_type(schema: &Json) -> Option<String> {
    let one = |t: &str| match t {
        "null" => "nothing".to_string(),
        "boolean" => "true or false".to_string(),
        "integer" => "a whole number".to_string(),
        "number" => "a number".to_string(),
        "string" if schema.get("format").and_then(Json::as_str) == Some("duration") => {
            "a string (a duration such as `15s`)".to_string()
        }
        "string" => "a string".to_string(),
        "array" => "a list".to_string(),
        "object" => "a mapping".to_string(),
        other => other.to_string(),
    };
    match schema.get("type")? {
        Json::String(t) => Some(one(t)),
        Json::Array(ts) => {
            let names: Vec<String> = ts
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .map(one)
                .collect();
            Some(join_or(&names))
        }
        _ => None,
    }
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => "something else".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn first_sentence(text: &str) -> String {
    let text = text.replace('\n', " ");
    match text.find(". ") {
        Some(i) => text[..=i].to_string(),
        None => text,
    }
}
