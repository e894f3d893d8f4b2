//! What templates and JSONPaths read from the source record, and where in their text: the
//! validator checks these reads against the record's known shape (a HubSpot record's fields, a
//! CSV file's header) and points at the offending one.

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, PathSeg, Template};
use serde_json::Value;

use crate::helpers::find_spec;
use crate::scan::Token;

/// One read of the source record by a template or a JSONPath, e.g. `record.properties.email`
/// in `"{{lowercase record.properties.email}}"`, or the whole of `$.properties.email`.
///
/// Listed by [`Mapping::reads`](crate::Mapping::reads) and
/// [`Condition::reads`](crate::Condition::reads). What counts as a read:
///
/// - in a template, a variable rooted at the record: `record.a.b`, `record.[a b]`,
///   `record/a/b`, `this.record.a` and `@root.record.a`; inside `{{#each}}` and `{{#with}}`
///   (whose body sees another context) only `@root.record.…` and `../record.…` that climb back
///   to the top are reads, while `this`, block parameters and plain names are not. Helper
///   arguments and subexpressions count like any variable, and so does a literal JSONPath given
///   to `jsonpath` without a value (`{{jsonpath "$.a.b"}}`: it reads the record);
/// - a JSONPath (`path:`, or a condition starting with `$`), read from `$` up to its first
///   selector that is not a plain member name or index: `$.lines[*].sku` reads `lines`
///   (`complete` is then false), and filter expressions, wildcards, slices, unions and
///   descendant segments (`..`) are never guessed through. A path that reads nothing of the
///   record by name (`$`, `$..email`, `$[*]`) is not a read;
/// - in a condition's root filter (`$[?@.properties.stage == 'won']`, which tests the record
///   itself), each `@.a.b` of the filter's own level.
///
/// `flow`, `run.*` and `now` are not record reads, nor is `{{record}}` on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRead {
    /// The target field whose spec reads it (`when` for a [`Condition`](crate::Condition)).
    pub field: String,
    /// Which part of the spec holds it: `template` or `path` (as in
    /// [`CompileError::part`](crate::CompileError::part)).
    pub part: &'static str,
    /// The reference as written: `record.properties.email`, `@root.record.a`,
    /// `$.properties.email`.
    pub text: String,
    /// Where `text` starts, in bytes from the start of the template or path.
    pub offset: usize,
    /// The members read, outermost first (`properties`, `email`), each with its byte offset in
    /// the template or path; list indexes are their decimal text (`0`, `-1`).
    pub segments: Vec<ReadSegment>,
    /// Whether `segments` cover the whole reference, rather than stopping before a wildcard,
    /// filter, slice, union or descendant segment.
    pub complete: bool,
}

/// One member name (or list index) of a [`RecordRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSegment {
    /// The member name as the record spells it (without brackets or quotes).
    pub name: String,
    /// Where the name starts, in bytes from the start of the template or path.
    pub offset: usize,
}

impl RecordRead {
    /// The members read, dotted: `properties.email`; a name that is not a plain word is
    /// bracketed (`[odd key].x`).
    pub fn dotted(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            let plain = !s.name.is_empty()
                && s.name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$');
            if plain {
                out.push_str(&s.name);
            } else {
                out.push('[');
                out.push_str(&s.name);
                out.push(']');
            }
        }
        out
    }
}

/// A read whose value, when `null`, counts as absent for the field's `default` and
/// `required` (see the crate docs): a placeholder at the top of a template, or an argument of
/// one of this crate's helpers other than `default` (which handles nulls itself).
#[derive(Debug, Clone)]
pub(crate) enum ValueRead {
    /// A record variable: its members and text.
    Record { segs: Vec<String>, raw: String },
    /// A literal JSONPath given to `jsonpath` (compiled into the mapping's path cache).
    Path { path: String },
}

/// The reads of a parsed template (`src` its text, `tokens` its words from
/// [`crate::scan::template_tokens`]), and its value reads.
pub(crate) fn template_reads(
    field: &str,
    src: &str,
    tokens: &[Token],
    tpl: &Template,
) -> (Vec<RecordRead>, Vec<ValueRead>) {
    let mut w = Walk {
        field,
        src,
        tokens,
        used: vec![false; tokens.len()],
        reads: Vec::new(),
        values: Vec::new(),
    };
    w.template(tpl, 0, false);
    let mut reads = w.reads;
    reads.sort_by_key(|r| r.offset);
    (reads, w.values)
}

/// The read of a JSONPath (`path:` of a field), if it reads the record by name.
pub(crate) fn path_read(
    field: &str,
    part: &'static str,
    src: &str,
    base: usize,
) -> Option<RecordRead> {
    let (segments, complete) = path_segments(src, base);
    if segments.is_empty() {
        return None;
    }
    Some(RecordRead {
        field: field.to_owned(),
        part,
        text: src.to_owned(),
        offset: base,
        segments,
        complete,
    })
}

struct Walk<'a> {
    field: &'a str,
    src: &'a str,
    tokens: &'a [Token],
    used: Vec<bool>,
    reads: Vec<RecordRead>,
    values: Vec<ValueRead>,
}

impl Walk<'_> {
    /// `depth`: blocks around that changed the context (`each`, `with`, ...); `in_block`:
    /// inside any block's body (whose values are Handlebars' business, not value reads).
    fn template(&mut self, t: &Template, depth: usize, in_block: bool) {
        for el in &t.elements {
            match el {
                TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                    self.helper(ht, depth, !in_block);
                }
                TemplateElement::HelperBlock(ht) => {
                    self.helper(ht, depth, false);
                    let name = match &ht.name {
                        Parameter::Name(n) => n.as_str(),
                        Parameter::Path(p) => path_raw(p),
                        _ => "",
                    };
                    let keeps = matches!(name, "if" | "unless") && ht.block_param.is_none();
                    let inner_depth = if keeps { depth } else { depth + 1 };
                    for inner in [&ht.template, &ht.inverse].into_iter().flatten() {
                        self.template(inner, inner_depth, true);
                    }
                }
                _ => {}
            }
        }
    }

    /// `value`: whether the expression's value is written out (or handed to one of this
    /// crate's helpers) at the top of the template.
    fn helper(&mut self, ht: &HelperTemplate, depth: usize, value: bool) {
        let is_call = !ht.params.is_empty() || !ht.hash.is_empty() || ht.block;
        if !is_call {
            match &ht.name {
                Parameter::Path(p) => self.path(p, depth, value),
                Parameter::Subexpression(s) => self.subexpression(s.as_element(), depth, value),
                _ => {}
            }
            return;
        }
        let name = match &ht.name {
            Parameter::Name(n) => n.as_str(),
            Parameter::Path(p) => path_raw(p),
            _ => "",
        };
        if name == "jsonpath" {
            if let [Parameter::Literal(Value::String(p))] = ht.params.as_slice() {
                self.jsonpath(p, value);
            }
        }
        let args_value = value && find_spec(name).is_some_and(|s| s.name != "default");
        let mut hash: Vec<_> = ht.hash.iter().collect();
        hash.sort_by_key(|(k, _)| k.as_str());
        for p in ht.params.iter().chain(hash.into_iter().map(|(_, p)| p)) {
            match p {
                Parameter::Path(path) => self.path(path, depth, args_value),
                Parameter::Subexpression(s) => {
                    self.subexpression(s.as_element(), depth, args_value);
                }
                _ => {}
            }
        }
    }

    fn subexpression(&mut self, el: &TemplateElement, depth: usize, value: bool) {
        if let TemplateElement::Expression(ht) = el {
            self.helper(ht, depth, value);
        }
    }

    /// The next unused word token spelled `text`, marked used.
    fn take(&mut self, text: &str, string: bool) -> Option<usize> {
        let src = self.src;
        let found = self.tokens.iter().enumerate().position(|(i, t)| {
            !self.used[i]
                && t.string == string
                && src.get(t.start..t.end).is_some_and(|s| {
                    if string {
                        s.get(1..s.len().saturating_sub(1)) == Some(text)
                    } else {
                        s == text
                    }
                })
        })?;
        self.used[found] = true;
        Some(self.tokens[found].start + usize::from(string))
    }

    fn path(&mut self, p: &Path, depth: usize, value: bool) {
        let Path::Relative((segs, raw)) = p else {
            return;
        };
        let mut ups = 0;
        let mut at_root = false;
        let mut names: Vec<&str> = Vec::new();
        for s in segs {
            match s {
                PathSeg::Named(n) => names.push(n),
                // Handlebars' grammar rules are private: told apart by name.
                PathSeg::Ruled(rule) if names.is_empty() => match format!("{rule:?}").as_str() {
                    "path_up" => ups += 1,
                    "path_root" => at_root = true,
                    _ => return,
                },
                // Anything else (`..` after a name, ...) is not a plain reference.
                _ => return,
            }
        }
        let rooted = at_root || ups >= depth;
        let Some((first, rest)) = names.split_first() else {
            return;
        };
        if !rooted || *first != "record" || rest.is_empty() {
            return;
        }
        let offset = self
            .take(raw, false)
            .or_else(|| self.src.find(raw.as_str()))
            .unwrap_or(0);
        let segments = name_offsets(raw, &names, offset)
            .into_iter()
            .skip(1)
            .collect::<Vec<_>>();
        if value && depth == 0 {
            self.values.push(ValueRead::Record {
                segs: rest.iter().map(|s| (*s).to_owned()).collect(),
                raw: raw.clone(),
            });
        }
        self.reads.push(RecordRead {
            field: self.field.to_owned(),
            part: "template",
            text: raw.clone(),
            offset,
            segments,
            complete: true,
        });
    }

    fn jsonpath(&mut self, p: &str, value: bool) {
        let offset = self.take(p, true).or_else(|| self.src.find(p)).unwrap_or(0);
        if value {
            self.values.push(ValueRead::Path { path: p.to_owned() });
        }
        if let Some(r) = path_read(self.field, "template", p, offset) {
            self.reads.push(r);
        }
    }
}

fn path_raw(p: &Path) -> &str {
    match p {
        Path::Relative((_, raw)) => raw,
        Path::Local((_, _, raw)) => raw,
    }
}

/// Each of `names` (the named segments of the Handlebars path `raw`, in order) with its
/// offset: `raw` starts at `base`. A name not found where expected gets the path's offset.
fn name_offsets(raw: &str, names: &[&str], base: usize) -> Vec<ReadSegment> {
    // Skip the prefixes that name no member: `@root`, `..`, `this`, `.` and separators.
    let mut cursor = 0;
    loop {
        let rest = &raw[cursor..];
        let skip = if rest.starts_with("@root") {
            5
        } else if rest.starts_with("..") {
            2
        } else if rest.starts_with("this")
            && rest[4..]
                .chars()
                .next()
                .is_none_or(|c| c == '.' || c == '/')
        {
            4
        } else if rest.starts_with('.') || rest.starts_with('/') {
            1
        } else {
            0
        };
        if skip == 0 {
            break;
        }
        cursor += skip;
    }
    names
        .iter()
        .map(|n| {
            let at = raw
                .get(cursor..)
                .and_then(|r| r.find(n))
                .map(|i| cursor + i);
            if let Some(i) = at {
                cursor = i + n.len();
            }
            ReadSegment {
                name: (*n).to_owned(),
                offset: base + at.unwrap_or(0),
            }
        })
        .collect()
}

fn is_name_first(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (c as u32) >= 0x80
}

fn is_name_char(c: char) -> bool {
    is_name_first(c) || c.is_ascii_digit()
}

/// The member names and indexes of a JSONPath from `$` up to its first other selector, with
/// their offsets (`src` starts at `base`), and whether they are the whole path.
pub(crate) fn path_segments(src: &str, base: usize) -> (Vec<ReadSegment>, bool) {
    if !src.starts_with('$') {
        return (Vec::new(), false);
    }
    let (segments, end) = chain(src, 1, base);
    (segments, end == src.len())
}

/// The plain member and index selectors of `src` from byte `from` on (`.name`, `['name']`,
/// `["name"]`, `[0]`), with their offsets (`src` starts at `base`), and where they stop.
pub(crate) fn chain(src: &str, from: usize, base: usize) -> (Vec<ReadSegment>, usize) {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut j = from;
    while j < b.len() {
        match b[j] {
            b'.' => {
                let tail = &src[j + 1..];
                if !tail.chars().next().is_some_and(is_name_first) {
                    break;
                }
                let end = tail
                    .char_indices()
                    .find(|&(_, c)| !is_name_char(c))
                    .map_or(tail.len(), |(k, _)| k);
                out.push(ReadSegment {
                    name: tail[..end].to_owned(),
                    offset: base + j + 1,
                });
                j += 1 + end;
            }
            b'[' => {
                let tail = &src[j + 1..];
                let Some(close) = tail.find(']') else {
                    break;
                };
                let inner = &tail[..close];
                let segment = match inner.chars().next() {
                    Some(q @ ('\'' | '"')) => {
                        match inner.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
                            Some(body)
                                if !body.contains(q)
                                    && !body.contains('\\')
                                    && !body.chars().any(|c| c < ' ') =>
                            {
                                ReadSegment {
                                    name: body.to_owned(),
                                    offset: base + j + 2,
                                }
                            }
                            _ => break,
                        }
                    }
                    _ => {
                        let digits = inner.strip_prefix('-').unwrap_or(inner);
                        let index = !digits.is_empty()
                            && digits.bytes().all(|c| c.is_ascii_digit())
                            && (digits == "0" || !digits.starts_with('0'))
                            && inner != "-0";
                        if !index {
                            break;
                        }
                        ReadSegment {
                            name: inner.to_owned(),
                            offset: base + j + 1,
                        }
                    }
                };
                out.push(segment);
                j += 1 + close + 1;
            }
            _ => break,
        }
    }
    (out, j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldSpec, Mapping};
    use indexmap::IndexMap;

    fn reads_of(spec: FieldSpec) -> Vec<RecordRead> {
        let mut fields = IndexMap::new();
        fields.insert("f".to_owned(), spec);
        Mapping::compile(&fields)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .reads()
    }

    /// Each read as (text, offset, dotted, complete).
    fn summary(template: &str) -> Vec<(String, usize, String, bool)> {
        reads_of(FieldSpec::template(template))
            .into_iter()
            .map(|r| (r.text.clone(), r.offset, r.dotted(), r.complete))
            .collect()
    }

    fn s(text: &str, offset: usize, dotted: &str) -> (String, usize, String, bool) {
        (text.to_owned(), offset, dotted.to_owned(), true)
    }

    #[test]
    fn template_variables_with_offsets() {
        let src = "{{lowercase record.properties.email}}";
        let reads = reads_of(FieldSpec::template(src));
        assert_eq!(reads.len(), 1);
        let r = &reads[0];
        assert_eq!((r.field.as_str(), r.part), ("f", "template"));
        assert_eq!(
            &src[r.offset..r.offset + r.text.len()],
            "record.properties.email"
        );
        let names: Vec<(&str, usize)> = r
            .segments
            .iter()
            .map(|s| (s.name.as_str(), s.offset))
            .collect();
        assert_eq!(names, [("properties", 19), ("email", 30)]);
        assert_eq!(&src[30..35], "email");

        assert_eq!(
            summary("{{record.[odd key].x}} {{record/a/b}} {{{record.c}}}"),
            [
                s("record.[odd key].x", 2, "[odd key].x"),
                s("record/a/b", 25, "a.b"),
                s("record.c", 41, "c")
            ]
        );
        let r = &reads_of(FieldSpec::template("{{record.[odd key].x}}"))[0];
        assert_eq!((r.segments[0].offset, r.segments[1].offset), (10, 19));
        // `this.` and `@root.` at the top are the record too.
        assert_eq!(
            summary("{{this.record.a}}{{@root.record.b}}"),
            [s("this.record.a", 2, "a"), s("@root.record.b", 19, "b")]
        );
        let r = &reads_of(FieldSpec::template("{{@root.record.root}}"))[0];
        assert_eq!(r.segments[0].offset, 15);
    }

    #[test]
    fn context_variables_and_the_whole_record_are_not_reads() {
        assert!(summary("{{flow}} {{run.id}} {{run.started_at}} {{now}} {{record}}").is_empty());
        assert!(summary("{{date_format now \"%Y\"}}").is_empty());
    }

    #[test]
    fn repeated_and_quoted_paths_get_their_own_offsets() {
        assert_eq!(
            summary("{{record.a}}-{{record.a}}"),
            [s("record.a", 2, "a"), s("record.a", 15, "a")]
        );
        // Raw text and string literals that spell a path are not reads.
        assert_eq!(
            summary("record.a {{concat \"record.a\" record.a}}"),
            [s("record.a", 29, "a")]
        );
    }

    #[test]
    fn helper_arguments_subexpressions_and_hashes() {
        assert_eq!(
            summary("{{lookup_map record.code A=record.x B=\"b\"}}"),
            [s("record.code", 13, "code"), s("record.x", 27, "x")]
        );
        assert_eq!(
            summary("{{first (split record.name \" \")}} {{default record.nick record.name}}"),
            [
                s("record.name", 15, "name"),
                s("record.nick", 44, "nick"),
                s("record.name", 56, "name")
            ]
        );
    }

    #[test]
    fn block_scopes() {
        // `each` and `with` change the context: only reads climbing back to the top count.
        assert_eq!(
            summary(
                "{{#each record.items}}{{this.sku}}{{sku}}{{record.z}}{{@root.record.x}}\
                 {{../record.y}}{{/each}}"
            ),
            [
                s("record.items", 8, "items"),
                s("@root.record.x", 55, "x"),
                s("../record.y", 73, "y")
            ]
        );
        assert_eq!(
            summary("{{#each record.items as |item|}}{{item.sku}}{{/each}}"),
            [s("record.items", 8, "items")]
        );
        assert_eq!(
            summary("{{#with record.address}}{{city}}{{../record.name}}{{/with}}"),
            [
                s("record.address", 8, "address"),
                s("../record.name", 34, "name")
            ]
        );
        // `if` and `unless` keep it.
        assert_eq!(
            summary("{{#if record.a}}{{record.b}}{{else}}{{record.c}}{{/if}}"),
            [
                s("record.a", 6, "a"),
                s("record.b", 18, "b"),
                s("record.c", 38, "c")
            ]
        );
    }

    #[test]
    fn jsonpaths_in_templates() {
        let src = "{{jsonpath \"$.properties.email\"}}";
        let r = &reads_of(FieldSpec::template(src))[0];
        assert_eq!((r.text.as_str(), r.offset), ("$.properties.email", 12));
        assert_eq!(r.dotted(), "properties.email");
        assert_eq!(&src[r.segments[1].offset..][..5], "email");
        assert_eq!(
            summary("{{join (jsonpath \"$.lines[*].sku\") \";\"}}"),
            [("$.lines[*].sku".to_owned(), 18, "lines".to_owned(), false)]
        );
        // A path relative to a value is not guessed: the value is the read.
        assert_eq!(
            summary("{{jsonpath record.lines \"$[0].sku\"}}"),
            [s("record.lines", 11, "lines")]
        );
    }

    #[test]
    fn path_specs() {
        let read = |p: &str| reads_of(FieldSpec::path(p, crate::FieldType::String));
        let r = &read("$.properties.email")[0];
        assert_eq!(
            (r.part, r.offset, r.dotted().as_str()),
            ("path", 0, "properties.email")
        );
        let offsets: Vec<usize> = r.segments.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, [2, 13]);
        let r = &read("$['odd key'][0][\"x\"]")[0];
        let names: Vec<(&str, usize)> = r
            .segments
            .iter()
            .map(|s| (s.name.as_str(), s.offset))
            .collect();
        assert_eq!(names, [("odd key", 3), ("0", 13), ("x", 17)]);
        assert!(r.complete);
        assert_eq!(r.dotted(), "[odd key].0.x");
        for (p, dotted) in [
            ("$.lines[*].sku", "lines"),
            ("$.lines[?@.qty > 1].sku", "lines"),
            ("$.a.b[0:2]", "a.b"),
            ("$.a['b','c']", "a"),
            ("$.a..b", "a"),
            ("$.a.*", "a"),
        ] {
            let r = &read(p)[0];
            assert_eq!((r.dotted().as_str(), r.complete), (dotted, false), "{p}");
        }
        for p in ["$", "$..email", "$[*]", "$[?@.a]"] {
            assert!(read(p).is_empty(), "{p}");
        }
        assert!(
            reads_of(FieldSpec::Detailed(crate::FieldDetail {
                value: Some(serde_json::json!("x")),
                ..Default::default()
            }))
            .is_empty()
        );
    }

    #[test]
    fn fields_in_order() {
        let fields: IndexMap<String, FieldSpec> = serde_json::from_value(serde_json::json!({
            "b": "{{record.y}} {{record.x}}",
            "a": { "path": "$.z" },
        }))
        .unwrap();
        let reads = Mapping::compile(&fields).unwrap().reads();
        let got: Vec<(&str, String)> = reads
            .iter()
            .map(|r| (r.field.as_str(), r.dotted()))
            .collect();
        assert_eq!(
            got,
            [("b", "y".into()), ("b", "x".into()), ("a", "z".into())]
        );
    }
}
