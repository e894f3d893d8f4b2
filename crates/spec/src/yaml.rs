//! The one way Rivulet reads YAML: [`parse`] turns text into a [`Node`] tree that remembers
//! where every key and value came from, so every later check can point at a line and column.
//!
//! Parsing is done by `serde-saphyr` (safe Rust, caps alias expansion and nesting) with YAML 1.2
//! booleans (`yes`/`no`/`on`/`off` stay strings: the "Norway problem" is not ours to have) and
//! duplicate keys rejected.

use crate::diagnostic::Pos;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Inputs larger than this are refused before parsing: no flow needs it, and it keeps a stray
/// data file from eating memory.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Nesting deeper than this is refused; flows are shallow and this protects the stack.
pub const MAX_DEPTH: usize = 48;

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts.
    pub pos: Pos,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing at all.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order. Keys are always strings here (numbers and booleans used as
    /// keys are kept as their text), with their own positions.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// One step into a tree: a key of a mapping or an index of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Key(k) => f.write_str(k),
            Step::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a path such as `actions[0].hubspot.operation`.
pub fn path_to_string(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Why a text is not acceptable YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What is wrong.
    pub message: String,
    /// Where, if known.
    pub pos: Pos,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Node {
    /// A short name of this value's type, for messages ("a string", "a list").
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value of `key` if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key and value of `key` if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Follows `path` as far as it goes; returns the deepest node reached and whether the whole
    /// path was found. For a key step, the position reported is the key's own (that is where an
    /// author looks for "this setting").
    pub fn locate(&self, path: &[Step]) -> Pos {
        let mut node = self;
        let mut pos = self.pos;
        for step in path {
            match (step, &node.value) {
                (Step::Key(k), Value::Map(entries)) => {
                    match entries.iter().find(|(key, _)| &key.name == k) {
                        Some((key, value)) => {
                            pos = key.pos;
                            node = value;
                        }
                        None => return pos,
                    }
                }
                (Step::Index(i), Value::Seq(items)) => match items.get(*i) {
                    Some(item) => {
                        pos = item.pos;
                        node = item;
                    }
                    None => return pos,
                },
                _ => return pos,
            }
        }
        pos
    }

    /// The node at `path`, if it exists.
    pub fn at(&self, path: &[Step]) -> Option<&Node> {
        let mut node = self;
        for step in path {
            node = match (step, &node.value) {
                (Step::Key(k), Value::Map(_)) => node.get(k)?,
                (Step::Index(i), Value::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Converts to JSON for typed deserialization (positions are dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses one YAML document. An empty document (or only comments) is `Value::Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(YamlError {
            message: format!(
                "file is {} bytes; flow and connection files are limited to {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
            pos: Pos::default(),
            hint: Some("is this a data file in the flows directory? Move it elsewhere".into()),
        });
    }
    if let Some(offset) = text.find('\0') {
        return Err(YamlError {
            message: "file contains a NUL byte: this looks like a binary file, not YAML".into(),
            pos: pos_of_offset(text, offset),
            hint: None,
        });
    }
    let mut options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    // `1e400` reaches the tree as an infinite number, so the structural check reports it where
    // it is — and every other problem of the file too — instead of failing the whole parse.
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    options.budget = serde_saphyr::budget! { max_depth: MAX_DEPTH };
    let spanned: Spanned<Raw> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| yaml_error(&e))?;
    Ok(Raw::into_node(spanned))
}

fn yaml_error(err: &serde_saphyr::Error) -> YamlError {
    let pos = err
        .location()
        .map(|l| Pos::new(l.line() as u32, l.column() as u32))
        .unwrap_or_default();
    let mut message = err.to_string();
    // The library prefixes "error: line L column C: "; we print positions ourselves.
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_string();
    }
    if let Some(idx) = message.find(": ")
        && message[..idx].starts_with("line ")
    {
        message = message[idx + 2..].to_string();
    }
    let mut message = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    // Positions are printed by the caller; drop the library's repeat of them.
    if let Some(idx) = message.rfind(" at line ") {
        message.truncate(idx);
    }
    let (message, hint) = if message.contains("multiple YAML documents") {
        (
            "the file holds more than one YAML document (a `---` line starts another)".to_string(),
            Some(
                "a flow or connections file is one document: split it into one file per flow"
                    .to_string(),
            ),
        )
    } else if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set ").next().unwrap_or(key);
        (
            format!("duplicate key `{key}`"),
            Some("each key may appear once in a mapping; remove or rename one of them".to_string()),
        )
    } else if message.contains("Depth") {
        (
            format!("nesting is deeper than {MAX_DEPTH} levels"),
            Some("flows are shallow; is this file generated by mistake?".to_string()),
        )
    } else if message.contains("budget") {
        (
            "the document expands beyond the parser's limits (too many aliases, nodes or documents)".to_string(),
            Some("YAML aliases are capped to stop \"billion laughs\" expansion".to_string()),
        )
    } else {
        (message, None)
    };
    YamlError { message, pos, hint }
}

fn pos_of_offset(text: &str, offset: usize) -> Pos {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos::new(line as u32, column as u32)
}

/// The parser's view of a value, before positions are flattened into [`Node`].
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<RawKey>, Spanned<Raw>)>),
}

impl Raw {
    fn into_node(spanned: Spanned<Raw>) -> Node {
        let pos = location_pos(&spanned.referenced);
        let value = match spanned.value {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Int(i) => Value::Int(i),
            Raw::Float(f) => Value::Float(f),
            Raw::Str(s) => Value::Str(s),
            Raw::Seq(items) => Value::Seq(items.into_iter().map(Raw::into_node).collect()),
            Raw::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        let key = Key {
                            pos: location_pos(&k.referenced),
                            name: k.value.0,
                        };
                        (key, Raw::into_node(v))
                    })
                    .collect(),
            ),
        };
        Node { value, pos }
    }
}

fn location_pos(loc: &serde_saphyr::Location) -> Pos {
    Pos::new(loc.line() as u32, loc.column() as u32)
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawKey>>()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

/// A mapping key: scalars of any type are accepted and kept as text (`200: ok` is fine in a
/// lookup table); a list or mapping as a key is an error.
struct RawKey(String);

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = RawKey;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain key (a list or mapping cannot be a key)")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<RawKey, E> {
        Err(E::custom(
            "a key cannot be empty or null (`~`); write the key's name",
        ))
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawKey, E> {
        Ok(RawKey(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawKey, E> {
        Ok(RawKey(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawKey, E> {
        Ok(RawKey(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawKey, E> {
        Ok(RawKey(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawKey, E> {
        Ok(RawKey(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawKey, E> {
        Ok(RawKey(v))
    }
}

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawKey, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let node = parse("name: x\ntrigger:\n  hubspot:\n    poll_every: 15s\n").unwrap();
        let path = [
            Step::Key("trigger".into()),
            Step::Key("hubspot".into()),
            Step::Key("poll_every".into()),
        ];
        assert_eq!(node.locate(&path), Pos::new(4, 5));
        assert_eq!(node.at(&path).unwrap().pos, Pos::new(4, 17));
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let node = parse("a: yes\nb: no\nc: true\n").unwrap();
        assert_eq!(node.get("a").unwrap().as_str(), Some("yes"));
        assert_eq!(node.get("c").unwrap().value, Value::Bool(true));
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.message, "duplicate key `a`");
        assert_eq!(err.pos.line, 3);
    }

    #[test]
    fn empty_and_comment_only_documents_are_null() {
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(parse("# nothing\n").unwrap().value, Value::Null);
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        assert!(parse("a: [1\n").is_err());
        assert!(parse("a: \0").is_err());
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        assert!(parse(&deep).is_err());
        let deep_block: String = (0..200)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        assert!(parse(&deep_block).is_err());
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
        assert!(parse(bomb).is_err());
        assert!(parse(&"x".repeat(MAX_FILE_BYTES + 1)).is_err());
    }

    #[test]
    fn edge_cases_get_rivulet_s_own_messages() {
        let several = parse("name: a\n---\nname: b\n").unwrap_err();
        assert!(
            several.message.contains("more than one YAML document"),
            "{}",
            several.message
        );
        let null_key = parse("mapping:\n  ~: x\n").unwrap_err();
        assert!(
            null_key.message.contains("cannot be empty or null"),
            "{}",
            null_key.message
        );
        let huge = parse("timeout: 1e400\n").unwrap();
        assert!(matches!(huge.get("timeout").unwrap().value, Value::Float(f) if f.is_infinite()));
    }
}
