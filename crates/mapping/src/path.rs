//! JSONPath (RFC 9535) compiled once, with a direct lookup for plain member/index chains.

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use serde_json::Value;

use crate::scan;

/// A JSONPath compiled at load time.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPath {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `$.a.b[0]['c d']`: a chain of single selectors, looked up directly (no allocation).
    Simple(Vec<Seg>),
    /// Anything else, evaluated by `jsonpath-rust`.
    Full(JpQuery),
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Name(String),
    Index(i64),
}

/// What a path found in a value.
#[derive(Debug, PartialEq)]
pub(crate) enum Found<'a> {
    /// No match.
    Nothing,
    /// Exactly one match.
    One(&'a Value),
    /// Several matches, in document order.
    Many(Vec<&'a Value>),
}

/// A path that does not parse: a message and a byte offset when the parser gives one.
#[derive(Debug)]
pub(crate) struct PathError {
    pub message: String,
    pub offset: Option<usize>,
    pub hint: Option<String>,
}

impl CompiledPath {
    /// Parses and validates `src`; pure. Its size and shape are checked first, by a linear
    /// scan ([`scan::path`]): the parser and the evaluator recurse once per level of nesting.
    pub(crate) fn compile(src: &str) -> Result<CompiledPath, PathError> {
        scan::path(src).map_err(|e| PathError {
            message: e.message,
            offset: Some(e.offset),
            hint: e.hint,
        })?;
        let full = parse_json_path(src).map_err(|e| path_error(src, e))?;
        let kind = match parse_simple(src) {
            Some(segs) => Kind::Simple(segs),
            None => Kind::Full(full),
        };
        Ok(CompiledPath { kind })
    }

    /// Whether the path is evaluated by direct lookup.
    pub(crate) fn is_simple(&self) -> bool {
        matches!(self.kind, Kind::Simple(_))
    }

    /// Evaluates the path against `root`.
    pub(crate) fn find<'a>(&self, root: &'a Value) -> Found<'a> {
        match &self.kind {
            Kind::Simple(segs) => {
                let mut cur = root;
                for seg in segs {
                    let next = match (seg, cur) {
                        (Seg::Name(n), Value::Object(m)) => m.get(n),
                        (Seg::Index(i), Value::Array(a)) => {
                            let idx = if *i < 0 {
                                usize::try_from(i.unsigned_abs())
                                    .ok()
                                    .and_then(|back| a.len().checked_sub(back))
                            } else {
                                usize::try_from(*i).ok()
                            };
                            idx.and_then(|i| a.get(i))
                        }
                        _ => None,
                    };
                    match next {
                        Some(v) => cur = v,
                        None => return Found::Nothing,
                    }
                }
                Found::One(cur)
            }
            Kind::Full(q) => match jsonpath_rust::query::js_path_process(q, root) {
                Ok(refs) => {
                    let mut vals: Vec<&Value> = refs.into_iter().map(|r| r.val).collect();
                    match vals.len() {
                        0 => Found::Nothing,
                        1 => Found::One(vals.remove(0)),
                        _ => Found::Many(vals),
                    }
                }
                // Only reachable for queries that produce computed values, which RFC 9535
                // queries do not; treat as no match.
                Err(_) => Found::Nothing,
            },
        }
    }
}

fn path_error(src: &str, e: jsonpath_rust::parser::errors::JsonPathError) -> PathError {
    use jsonpath_rust::parser::errors::JsonPathError as E;
    let (message, offset) = match &e {
        E::PestError(pe) => {
            let offset = match pe.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((s, _)) => s,
            };
            let what = match &pe.variant {
                pest::error::ErrorVariant::ParsingError { .. } => {
                    "not a valid JSONPath (RFC 9535)".to_owned()
                }
                pest::error::ErrorVariant::CustomError { message } => message.clone(),
            };
            (what, Some(offset))
        }
        other => (other.to_string(), None),
    };
    let trimmed = src.trim_start();
    let hint = if trimmed.starts_with("{{") {
        Some("this looks like a template: use `template:` instead of `path:`".to_owned())
    } else if !trimmed.starts_with('$') {
        Some(format!(
            "a JSONPath starts with `$`, e.g. `$.{}`",
            trimmed.trim_start_matches('.')
        ))
    } else {
        None
    };
    PathError {
        message,
        offset,
        hint,
    }
}

fn is_name_first(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (c as u32) >= 0x80
}

fn is_name_char(c: char) -> bool {
    is_name_first(c) || c.is_ascii_digit()
}

/// Parses `$` followed by `.name`, `['name']`, `["name"]` and `[int]` selectors (no whitespace,
/// no escapes); `None` for anything else.
fn parse_simple(src: &str) -> Option<Vec<Seg>> {
    let rest = src.strip_prefix('$')?;
    let mut segs = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let tail = &rest[i + 1..];
                let mut chars = tail.char_indices();
                let (_, c0) = chars.next()?;
                if !is_name_first(c0) {
                    return None;
                }
                let end = chars
                    .find(|&(_, c)| !is_name_char(c))
                    .map(|(j, _)| j)
                    .unwrap_or(tail.len());
                segs.push(Seg::Name(tail[..end].to_owned()));
                i += 1 + end;
            }
            b'[' => {
                let tail = &rest[i + 1..];
                let close = tail.find(']')?;
                let inner = &tail[..close];
                let seg = if let Some(q) = inner.chars().next().filter(|c| *c == '\'' || *c == '"')
                {
                    let body = inner.strip_prefix(q)?.strip_suffix(q)?;
                    if body.contains(q) || body.contains('\\') || body.chars().any(|c| c < ' ') {
                        return None;
                    }
                    Seg::Name(body.to_owned())
                } else {
                    let digits = inner.strip_prefix('-').unwrap_or(inner);
                    let valid = !digits.is_empty()
                        && digits.bytes().all(|c| c.is_ascii_digit())
                        && (digits == "0" || !digits.starts_with('0'))
                        && inner != "-0";
                    if !valid {
                        return None;
                    }
                    Seg::Index(inner.parse().ok()?)
                };
                segs.push(seg);
                i += 1 + close + 1;
            }
            _ => return None,
        }
    }
    Some(segs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "a": {"b": 1, "c d": "x", "é": 2},
            "list": [10, 20, 30],
            "items": [{"sku": "A"}, {"sku": "B"}],
            "tags": ["t1", "t2"]
        })
    }

    #[test]
    fn simple_paths_are_detected() {
        for p in [
            "$",
            "$.a.b",
            "$['a']['c d']",
            "$.list[0]",
            "$.list[-1]",
            "$.a.é",
            "$[\"a\"]",
        ] {
            assert!(CompiledPath::compile(p).unwrap().is_simple(), "{p}");
        }
        for p in [
            "$.items[*].sku",
            "$..sku",
            "$.list[0:2]",
            "$.items[?@.sku=='A']",
            "$[ 0 ]",
        ] {
            assert!(!CompiledPath::compile(p).unwrap().is_simple(), "{p}");
        }
    }

    #[test]
    fn simple_lookup() {
        let d = doc();
        let f = |p: &str| CompiledPath::compile(p).unwrap().find(&d);
        assert_eq!(f("$.a.b"), Found::One(&json!(1)));
        assert_eq!(f("$['a']['c d']"), Found::One(&json!("x")));
        assert_eq!(f("$.list[-1]"), Found::One(&json!(30)));
        assert_eq!(f("$.list[5]"), Found::Nothing);
        assert_eq!(f("$.list[-4]"), Found::Nothing);
        assert_eq!(f("$.a.missing"), Found::Nothing);
        assert_eq!(f("$.list.a"), Found::Nothing);
        assert_eq!(f("$.tags"), Found::One(&json!(["t1", "t2"])));
    }

    #[test]
    fn full_lookup() {
        let d = doc();
        let f = |p: &str| CompiledPath::compile(p).unwrap().find(&d);
        assert_eq!(
            f("$.items[*].sku"),
            Found::Many(vec![&json!("A"), &json!("B")])
        );
        assert_eq!(f("$.items[?@.sku=='B'].sku"), Found::One(&json!("B")));
        assert_eq!(f("$.items[?@.sku=='C'].sku"), Found::Nothing);
    }

    #[test]
    fn simple_matches_full_engine() {
        let d = doc();
        for p in [
            "$.a.b",
            "$['a']['c d']",
            "$.list[0]",
            "$.list[-1]",
            "$.list[3]",
            "$.a.x",
            "$.list.a",
            "$.a[0]",
            "$",
            "$.a.é",
        ] {
            let q = parse_json_path(p).unwrap();
            let full: Vec<&Value> = jsonpath_rust::query::js_path_process(&q, &d)
                .unwrap()
                .into_iter()
                .map(|r| r.val)
                .collect();
            let ours = match CompiledPath::compile(p).unwrap().find(&d) {
                Found::Nothing => vec![],
                Found::One(v) => vec![v],
                Found::Many(v) => v,
            };
            assert_eq!(ours, full, "{p}");
        }
    }

    #[test]
    fn errors_have_offsets_and_hints() {
        let e = CompiledPath::compile("$.a[").unwrap_err();
        assert_eq!(e.offset, Some(4), "{e:?}");
        let e = CompiledPath::compile("employees").unwrap_err();
        assert_eq!(e.offset, Some(0));
        assert_eq!(
            e.hint.as_deref(),
            Some("a JSONPath starts with `$`, e.g. `$.employees`")
        );
        let e = CompiledPath::compile("{{record.x}}").unwrap_err();
        assert!(e.hint.unwrap().contains("template"));
    }
}
