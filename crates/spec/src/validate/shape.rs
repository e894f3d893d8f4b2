//! Reads checked against the record's known shape: a template or path that reads a field the
//! flow's records cannot have is reported where it is, instead of failing every record at run
//! time.
//!
//! The shapes known before any record is read:
//!
//! - **HubSpot** (a `hubspot` trigger or source): every record is `{id, createdAt, updatedAt,
//!   archived, properties}` (the engine's own form of HubSpot's `SimplePublicObject`), and
//!   `properties` holds what is fetched: the listed `properties:` plus what the runtime always
//!   asks for — a trigger `hs_object_id`, `createdate` and the timestamp it watches (`createdate`
//!   for new records; `lastmodifieddate` for contacts and `hs_lastmodifieddate` for companies for
//!   changes); a source the object's last-modified property (`lastmodifieddate` for contacts,
//!   `hs_lastmodifieddate` otherwise) and, when incremental, `hs_object_id` and `createdate`.
//! - **Files** that exist when `validate` runs and are named without a glob: a CSV file's
//!   header row (its first line, read bounded) or the keys of a JSON Lines file's first record.
//!   JSON array files are not opened (their first record may be anywhere in a large file), and
//!   HTTP sources declare no sample to check against.
//!
//! Severities — one rule each, so a flow reads the same wherever it runs:
//!
//! - a top-level field a HubSpot record never has (`record.propertes.email`, `record.email`) is
//!   an **error** (`unknown_record_field`): the engine builds every record with exactly those
//!   five fields, so the read can never succeed and every record would fail (or the field
//!   would silently be left out);
//! - a property the trigger or source does not fetch is a **warning** (`unfetched_property`):
//!   the record will almost surely lack it, but a trigger shares its search with the other flows
//!   polling the same connection, object and event, so one of them may fetch it — a dependency
//!   to make explicit, not a certainty to refuse;
//! - a column or key a file does not have is a **warning** (`unknown_column`): the file may
//!   change before the flow runs.
//!
//! Checked: the flow's `mapping` (not `line_items.mapping`, whose record is an element of a
//! list), a `hubspot` action's `id` and an `http` action's `path` template. A `when:` condition
//! is checked the same way: [`condition_reads`] gives its reads (located at the key path of
//! its string), and [`check_reads`] checks them against [`shape_of`] the flow.

use super::Checker;
use crate::connectors::hubspot::{self, canonical_object};
use crate::diagnostic::{Pos, did_you_mean};
use crate::model::{
    Action, FileFormat, FileSource, Flow, HubSpotSource, HubSpotTrigger, MappingSpec, Source,
    Trigger,
};
use crate::yaml::{Node, Step};
use indexmap::IndexMap;
use rivulet_mapping::{FieldSpec, Mapping, RecordRead};
use std::io::Read;
use std::path::Path;

/// The top-level fields of every HubSpot record a mapping sees.
pub const HUBSPOT_FIELDS: [&str; 5] = ["id", "createdAt", "updatedAt", "archived", "properties"];

/// How much of a data file is read for its header row or first record.
const MAX_HEAD_BYTES: u64 = 64 * 1024;

/// How many columns or properties a hint lists.
const LIST_IN_HINT: usize = 12;

/// What the records of a flow look like, as far as is known before reading any.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// HubSpot records.
    HubSpot {
        /// `trigger` or `source`.
        origin: &'static str,
        /// The properties fetched, listed ones first.
        fetched: Vec<String>,
        /// Where `properties:` is (or the block, when it is not written).
        list: Vec<Step>,
        /// Whether `properties:` is written.
        listed: bool,
    },
    /// Flat records of a file: its columns (CSV) or its first record's keys (JSON Lines).
    Columns {
        /// The file as the flow names it.
        file: String,
        /// `column` or `key`.
        what: &'static str,
        names: Vec<String>,
    },
}

/// One read of the record, with where its template or path is in the flow file.
#[derive(Debug, Clone)]
pub(crate) struct ReadAt {
    /// What holds it, for messages: ``mapping `email` ``, ```id` of action 0``, `` `when` ``.
    pub label: String,
    /// The key path of the string holding the template or path, from the flow's root.
    pub at: Vec<Step>,
    /// The read; its offsets are bytes into that string.
    pub read: RecordRead,
}

/// Checks every read of `flow` (its mapping, compiled as `mapping`, its actions' templates and
/// `more`, its conditions' reads) against the shape of its records, when that is known.
pub(crate) fn check_flow(
    c: &mut Checker<'_>,
    flow: &Flow,
    mapping: Option<&Mapping>,
    mut reads: Vec<ReadAt>,
) {
    let Some(shape) = shape_of(c, flow) else {
        return;
    };
    if let Some(m) = mapping {
        reads.extend(mapping_reads(m, &flow.mapping));
    }
    reads.extend(action_reads(flow));
    check_reads(c, &shape, &reads);
}

/// The reads of a compiled mapping of `spec`, at `mapping.<field>` (a plain template) or
/// `mapping.<field>.<template|path>`.
pub(crate) fn mapping_reads(mapping: &Mapping, spec: &MappingSpec) -> Vec<ReadAt> {
    mapping
        .reads()
        .into_iter()
        .map(|read| {
            let mut at = vec![Step::Key("mapping".into()), Step::Key(read.field.clone())];
            if matches!(spec.get(&read.field), Some(FieldSpec::Detailed(_))) {
                at.push(Step::Key(read.part.into()));
            }
            ReadAt {
                label: format!("mapping `{}`", read.field),
                at,
                read,
            }
        })
        .collect()
}

/// The reads of a compiled `when:` condition whose string is at `at` (from the flow's root,
/// e.g. `[when]` or `[actions, 2, hubspot, when]`), for [`check_reads`]; `label` names it in
/// messages (`` `when` ``, ``` `when` of action 2 ```).
pub(crate) fn condition_reads(
    label: &str,
    at: Vec<Step>,
    condition: &rivulet_mapping::Condition,
) -> Vec<ReadAt> {
    condition
        .reads()
        .iter()
        .map(|read| ReadAt {
            label: label.to_owned(),
            at: at.clone(),
            read: read.clone(),
        })
        .collect()
}

/// The reads of the actions' templates that render against the source record: a `hubspot`
/// action's `id` and an `http` action's `path`.
fn action_reads(flow: &Flow) -> Vec<ReadAt> {
    let mut out = Vec::new();
    for (i, action) in flow.actions.iter().enumerate() {
        let (kind, key, template) = match action {
            Action::Hubspot(a) => match &a.id {
                Some(id) => ("hubspot", "id", id),
                None => continue,
            },
            Action::Http(a) if a.path.contains("{{") => ("http", "path", &a.path),
            _ => continue,
        };
        let mut fields = IndexMap::new();
        fields.insert(key.to_owned(), FieldSpec::template(template.clone()));
        // One that does not compile is reported by the action's own rules.
        let Ok(m) = Mapping::compile(&fields) else {
            continue;
        };
        for read in m.reads() {
            out.push(ReadAt {
                label: format!("`{key}` of {}", flow.action_label(i)),
                at: vec![
                    Step::Key("actions".into()),
                    Step::Index(i),
                    Step::Key(kind.into()),
                    Step::Key(key.into()),
                ],
                read,
            });
        }
    }
    out
}

/// The shape of `flow`'s records, when it is known.
pub(crate) fn shape_of(c: &Checker<'_>, flow: &Flow) -> Option<Shape> {
    if let Some(Trigger::Hubspot(t)) = &flow.trigger {
        return Some(trigger_shape(t));
    }
    match &flow.source {
        Some(Source::Hubspot(s)) => Some(source_shape(s)),
        Some(Source::File(f)) => file_shape(&c.base_dir(), f),
        Some(Source::Http(_)) | None => None,
    }
}

fn with_listed(listed: &[String], always: &[&str]) -> Vec<String> {
    let mut fetched: Vec<String> = listed.to_vec();
    for p in always {
        if !fetched.iter().any(|q| q == p) {
            fetched.push((*p).to_owned());
        }
    }
    fetched
}

fn trigger_shape(t: &HubSpotTrigger) -> Shape {
    Shape::HubSpot {
        origin: "trigger",
        fetched: hubspot::trigger_properties(
            &t.properties,
            hubspot::watched_property(t.object, t.on),
        ),
        list: block_list("trigger"),
        listed: !t.properties.is_empty(),
    }
}

fn source_shape(s: &HubSpotSource) -> Shape {
    // As in the runtime's source: a list asks for the last-modified property, an incremental
    // read goes through the trigger's scan, which adds `hs_object_id` and `createdate`.
    let modified = if canonical_object(&s.object) == Some("contact") {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    };
    let always: &[&str] = if s.incremental {
        &["hs_object_id", "createdate", modified]
    } else {
        &[modified]
    };
    Shape::HubSpot {
        origin: "source",
        fetched: with_listed(&s.properties, always),
        list: block_list("source"),
        listed: !s.properties.is_empty(),
    }
}

fn block_list(block: &str) -> Vec<Step> {
    vec![
        Step::Key(block.into()),
        Step::Key("hubspot".into()),
        Step::Key("properties".into()),
    ]
}

/// The columns of a CSV file or the first record's keys of a JSON Lines file, when the file is
/// named without a glob, exists and its head can be read.
fn file_shape(base: &Path, f: &FileSource) -> Option<Shape> {
    if f.path.contains(['*', '?', '[', '{']) {
        return None;
    }
    let format = f.format.or_else(|| FileFormat::from_path(&f.path))?;
    let head = read_head(&base.join(&f.path))?;
    let (what, names) = match format {
        FileFormat::Csv => {
            let delimiter = match &f.delimiter {
                Some(d) => {
                    let mut chars = d.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if c.is_ascii() => c as u8,
                        _ => return None,
                    }
                }
                None if f.path.to_ascii_lowercase().ends_with(".tsv") => b'\t',
                None => b',',
            };
            ("column", csv_header(&head, delimiter)?)
        }
        FileFormat::Jsonl => ("key", first_keys(&head)?),
        FileFormat::Json => return None,
    };
    Some(Shape::Columns {
        file: f.path.clone(),
        what,
        names,
    })
}

/// The first bytes of a regular file (at most [`MAX_HEAD_BYTES`]), and whether that is all of
/// it. Like [`crate::load::read_regular_file`], anything but a regular file is refused before
/// it is opened (opening a FIFO would block); unlike it, a large file is not refused but read
/// only so far.
fn read_head(path: &Path) -> Option<(Vec<u8>, bool)> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_HEAD_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    let whole = (bytes.len() as u64) < MAX_HEAD_BYTES;
    Some((bytes, whole))
}

/// The header row of CSV text (RFC 4180 quoting; names trimmed as the runtime trims them).
fn csv_header((bytes, whole): &(Vec<u8>, bool), delimiter: u8) -> Option<Vec<String>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut names = Vec::new();
    let mut field = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    let mut ended = false;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(b);
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == delimiter {
            names.push(std::mem::take(&mut field));
        } else if b == b'\n' || b == b'\r' {
            ended = true;
            break;
        } else {
            field.push(b);
        }
        i += 1;
    }
    if !ended && (!whole || quoted) {
        return None;
    }
    names.push(field);
    let names: Vec<String> = names
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).trim().to_owned())
        .collect();
    (names.len() > 1 || names.first().is_some_and(|n| !n.is_empty())).then_some(names)
}

/// The keys of the first record of JSON Lines text.
fn first_keys((bytes, whole): &(Vec<u8>, bool)) -> Option<Vec<String>> {
    let mut rest: &[u8] = bytes;
    loop {
        let (line, next, complete) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, &rest[rest.len()..], *whole),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            if !complete || next.is_empty() {
                return None;
            }
            rest = next;
            continue;
        }
        if !complete {
            return None;
        }
        return match serde_json::from_slice::<serde_json::Value>(line).ok()? {
            serde_json::Value::Object(m) => Some(m.keys().cloned().collect()),
            _ => None,
        };
    }
}

/// Reports each read the shape rules out (see the module docs for the severities).
pub(crate) fn check_reads(c: &mut Checker<'_>, shape: &Shape, reads: &[ReadAt]) {
    for r in reads {
        let Some(top) = r.read.segments.first() else {
            continue;
        };
        match shape {
            Shape::HubSpot {
                origin,
                fetched,
                list,
                listed,
            } => {
                if !HUBSPOT_FIELDS.contains(&top.name.as_str()) {
                    let pos = read_pos(c, &r.at, top.offset);
                    let hint = field_hint(&r.read, fetched);
                    c.error(
                        "unknown_record_field",
                        pos,
                        format!(
                            "{}: `{}` reads `{}`, which HubSpot records do not have (they have \
                             `id`, `createdAt`, `updatedAt`, `archived` and `properties`)",
                            r.label, r.read.text, top.name
                        ),
                    )
                    .hint = Some(hint);
                    continue;
                }
                let Some(property) = r.read.segments.get(1).filter(|_| top.name == "properties")
                else {
                    continue;
                };
                if fetched.contains(&property.name) {
                    continue;
                }
                let pos = read_pos(c, &r.at, property.offset);
                let add = if *listed {
                    let path: Vec<Step> = c.base.iter().chain(list).cloned().collect();
                    let at = c.node.locate(&path);
                    format!(
                        "add `{}` to the {origin}'s `properties:` (line {})",
                        property.name, at.line
                    )
                } else {
                    format!(
                        "add `properties: [{}]` to the {origin} (it fetches only {})",
                        property.name,
                        listing(fetched)
                    )
                };
                let hint = match close(&property.name, fetched.iter().map(String::as_str)) {
                    Some(close) => format!("did you mean `{close}`? If not, {add}"),
                    None => add,
                };
                c.warning(
                    "unfetched_property",
                    pos,
                    format!(
                        "{}: `{}` reads the property `{}`, which the {origin} does not fetch",
                        r.label, r.read.text, property.name
                    ),
                )
                .hint = Some(hint);
            }
            Shape::Columns { file, what, names } => {
                if names.contains(&top.name) {
                    continue;
                }
                let pos = read_pos(c, &r.at, top.offset);
                let whose = if *what == "column" {
                    format!("`{file}` does not have")
                } else {
                    format!("the first record of `{file}` does not have")
                };
                let all = format!("its {what}s: {}", listing(names));
                let hint = match close(&top.name, names.iter().map(String::as_str)) {
                    Some(close) => format!("did you mean `{close}`? ({all})"),
                    None => all,
                };
                c.warning(
                    "unknown_column",
                    pos,
                    format!(
                        "{}: `{}` reads the {what} `{}`, which {whose}",
                        r.label, r.read.text, top.name
                    ),
                )
                .hint = Some(hint);
            }
        }
    }
}

/// The candidate `word` is a plausible typo of: similar ([`did_you_mean`]) and a few edits
/// away (`lastname` is not a typo of `firstname`).
fn close<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let found = did_you_mean(word, candidates)?;
    let edits = strsim::osa_distance(&word.to_lowercase(), &found.to_lowercase());
    (edits <= (word.chars().count() / 3).max(1)).then_some(found)
}

/// `a`, `b`, … as a short list.
fn listing(names: &[String]) -> String {
    let mut out = names
        .iter()
        .take(LIST_IN_HINT)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIST_IN_HINT {
        out.push_str(&format!(", … ({} in all)", names.len()));
    }
    out
}

/// The hint for a top-level field a HubSpot record does not have: a close field name, or the
/// same read under `properties`.
fn field_hint(read: &RecordRead, fetched: &[String]) -> String {
    let top = &read.segments[0];
    // Where the segment is in the read's own text.
    let at = top.offset.checked_sub(read.offset).filter(|i| {
        read.text
            .get(*i..)
            .is_some_and(|rest| rest.starts_with(&top.name))
    });
    let rewrite = |with: &str| {
        at.map(|i| {
            format!(
                "{}{with}{}",
                &read.text[..i],
                &read.text[i + top.name.len()..]
            )
        })
    };
    if let Some(field) = close(&top.name, HUBSPOT_FIELDS) {
        return match rewrite(field) {
            Some(text) => format!("did you mean `{text}`?"),
            None => format!("did you mean `{field}`?"),
        };
    }
    // `record.email`: the values are under `properties`.
    let separator = at
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| read.text.as_bytes().get(i).copied())
        .filter(|b| matches!(b, b'.' | b'/'));
    let under = match separator {
        Some(sep) => rewrite(&format!("properties{}{}", sep as char, top.name)),
        None => None,
    }
    .unwrap_or_else(|| format!("properties.{}", top.name));
    let fetched_note = if fetched.contains(&top.name) {
        ""
    } else {
        " (and fetch the property: add it to `properties:`)"
    };
    format!("HubSpot records keep their values under `properties`: write `{under}`{fetched_note}")
}

/// Where byte `offset` of the string at `at` (a template or path) is in the file.
fn read_pos(c: &Checker<'_>, at: &[Step], offset: usize) -> Pos {
    let path: Vec<Step> = c.base.iter().chain(at).cloned().collect();
    match c.node.at(&path) {
        Some(node) => scalar_pos(&c.file.text, node, offset),
        None => c.node.locate(&path),
    }
}

/// Where byte `offset` of the string at `node` is in `text`: exact for plain, single- and
/// double-quoted scalars on one line and for literal (`|`) and simply folded (`>`) block
/// scalars; the start of the string when its source cannot be matched with its value.
pub(crate) fn scalar_pos(text: &str, node: &Node, offset: usize) -> Pos {
    let Some(value) = node.as_str() else {
        return node.pos;
    };
    decode(text, node.pos, value)
        .and_then(|map| map.get(offset).or(map.last()).copied())
        .unwrap_or(node.pos)
}

/// Appends `ch`, which comes from `pos` in the source.
fn push(out: &mut String, map: &mut Vec<Pos>, ch: char, pos: Pos) {
    out.push(ch);
    map.extend(std::iter::repeat_n(pos, ch.len_utf8()));
}

/// For each byte of `value` (and one past its end), where it comes from in the source
/// starting at `at`, if the source there decodes to exactly `value`.
fn decode(text: &str, at: Pos, value: &str) -> Option<Vec<Pos>> {
    let lines: Vec<&str> = text.split('\n').collect();
    let line_idx = (at.line as usize).checked_sub(1)?;
    let line = lines.get(line_idx)?.trim_end_matches('\r');
    let col0 = (at.column as usize).checked_sub(1)?;
    let start: usize = line.char_indices().nth(col0).map(|(i, _)| i)?;
    let src = &line[start..];
    let mut out = String::new();
    let mut map: Vec<Pos> = Vec::new();
    let pos_at = |col: usize| Pos::new(at.line, (col + 1) as u32);
    let mut chars = src.chars().peekable();
    let first = *chars.peek()?;
    match first {
        '"' | '\'' => {
            chars.next();
            let mut col = col0 + 1;
            let mut closed = false;
            while let Some(ch) = chars.next() {
                let here = pos_at(col);
                col += 1;
                if ch == first {
                    if first == '\'' && chars.peek() == Some(&'\'') {
                        chars.next();
                        col += 1;
                        push(&mut out, &mut map, '\'', here);
                        continue;
                    }
                    closed = true;
                    map.push(here);
                    break;
                }
                if first == '"' && ch == '\\' {
                    let e = chars.next()?;
                    col += 1;
                    let decoded = match e {
                        '0' => '\0',
                        'a' => '\u{7}',
                        'b' => '\u{8}',
                        't' | '\t' => '\t',
                        'n' => '\n',
                        'v' => '\u{b}',
                        'f' => '\u{c}',
                        'r' => '\r',
                        'e' => '\u{1b}',
                        ' ' => ' ',
                        '"' => '"',
                        '/' => '/',
                        '\\' => '\\',
                        'N' => '\u{85}',
                        '_' => '\u{a0}',
                        'L' => '\u{2028}',
                        'P' => '\u{2029}',
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                            col += hex.chars().count();
                            char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                        }
                        _ => return None,
                    };
                    push(&mut out, &mut map, decoded, here);
                    continue;
                }
                push(&mut out, &mut map, ch, here);
            }
            if !closed {
                return None;
            }
        }
        '|' | '>' => {
            let header: String = chars.collect();
            let header = header.split('#').next().unwrap_or("").trim();
            if header.chars().skip(1).any(|c| c.is_ascii_digit()) {
                return None;
            }
            return block(&lines, line_idx + 1, first == '>', value, at);
        }
        _ => {
            // Plain: the value as it stands in the source.
            if !src.starts_with(value) {
                // The parser places a block scalar (`key: |`) at its first line of content.
                let header = lines[..line_idx]
                    .iter()
                    .rev()
                    .map(|l| l.split(" #").next().unwrap_or("").trim_end())
                    .find(|l| !l.trim().is_empty())?;
                let indicator = header.rsplit(' ').next()?;
                let mut ind = indicator.chars();
                let style = ind.next().filter(|c| matches!(c, '|' | '>'))?;
                if !ind.all(|c| matches!(c, '+' | '-')) || !line[..start].chars().all(|c| c == ' ')
                {
                    return None;
                }
                return block(&lines, line_idx, style == '>', value, at);
            }
            for (k, ch) in value.chars().enumerate() {
                push(&mut out, &mut map, ch, pos_at(col0 + k));
            }
            map.push(pos_at(col0 + value.chars().count()));
            return Some(map);
        }
    }
    (out == value).then_some(map)
}

/// [`decode`] for the lines of a block scalar from `first` on (`folded`: `>`, else `|`).
fn block(lines: &[&str], first: usize, folded: bool, value: &str, at: Pos) -> Option<Vec<Pos>> {
    let mut out = String::new();
    let mut map: Vec<Pos> = Vec::new();
    let spaces = |l: &str| l.chars().take_while(|c| *c == ' ').count();
    let mut body: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .skip(first)
        .map(|(i, l)| (i, l.trim_end_matches('\r')))
        .take_while(|(_, l)| l.trim().is_empty() || spaces(l) > 0)
        .collect();
    // Blank lines at the end only matter to chomping.
    while body.last().is_some_and(|(_, l)| l.trim().is_empty()) {
        body.pop();
    }
    let indent = body
        .iter()
        .find(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| spaces(l))?;
    for (i, l) in &body {
        let line = *i as u32 + 1;
        if l.trim().is_empty() {
            if folded {
                return None;
            }
            push(&mut out, &mut map, '\n', Pos::new(line, 1));
            continue;
        }
        if spaces(l) < indent {
            break;
        }
        for (col, ch) in l.chars().enumerate().skip(indent) {
            push(&mut out, &mut map, ch, Pos::new(line, col as u32 + 1));
        }
        let end = Pos::new(line, l.chars().count() as u32 + 1);
        push(&mut out, &mut map, if folded { ' ' } else { '\n' }, end);
    }
    // Chomping: compare without the final line breaks, which the value may or may not keep.
    let kept = out.trim_end_matches(['\n', ' ']);
    if value.trim_end_matches('\n') != kept {
        return None;
    }
    map.truncate(value.len());
    map.push(map.last().copied().unwrap_or(at));
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::{Diagnostic, Severity};
    use crate::load::SourceFile;
    use crate::validate::{Options, validate_files};
    use std::path::PathBuf;

    const CONNECTIONS: &str = "connections:\n  hubspot:\n    hubspot:\n      token: ${T}\n      api_version: \"2026-03\"\n";

    /// The shape diagnostics (and errors) of a flow file at `dir/flow.yaml`, as `(severity,
    /// line:word at the position, code, message, hint)`.
    fn check_in(dir: &Path, flow: &str) -> Vec<(Severity, String, &'static str, String, String)> {
        let options = Options {
            strict: false,
            env_is_set: |_| true,
        };
        let files = vec![
            SourceFile::from_bytes(&dir.join("connections.yaml"), CONNECTIONS.into()),
            SourceFile::from_bytes(&dir.join("flow.yaml"), flow.as_bytes().to_vec()),
        ];
        let v = validate_files(files, &options);
        let at = |d: &Diagnostic| {
            let line = flow.split('\n').nth(d.pos.line as usize - 1).unwrap_or("");
            let rest: String = line.chars().skip(d.pos.column as usize - 1).collect();
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            format!("{}:{word}", d.pos.line)
        };
        v.diagnostics
            .iter()
            .filter(|d: &&Diagnostic| {
                matches!(
                    d.code,
                    "unknown_record_field" | "unfetched_property" | "unknown_column"
                ) || d.severity == Severity::Error
            })
            .map(|d| {
                (
                    d.severity,
                    at(d),
                    d.code,
                    d.message.clone(),
                    d.hint.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn check(flow: &str) -> Vec<(Severity, String, &'static str, String, String)> {
        check_in(&PathBuf::from("flows"), flow)
    }

    fn trigger(on: &str, object: &str, properties: &str, rest: &str) -> String {
        format!(
            "name: a\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: {on}\n    object: {object}\n    poll_every: 15s\n{properties}{rest}actions:\n  - file: {{ path: out.jsonl }}\n"
        )
    }

    #[test]
    fn a_misspelled_top_level_field_is_an_error_with_a_did_you_mean() {
        let flow = trigger(
            "new_record",
            "contact",
            "    properties: [email]\n",
            "mapping:\n  email: \"{{record.propertes.email}}\"\n  created: { path: \"$.createdat\" }\n  ok: \"{{record.id}} {{record.createdAt}} {{record.updatedAt}} {{record.archived}} {{record.properties}}\"\n",
        );
        let got = check(&flow);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(
            got[0],
            (
                Severity::Error,
                "10:propertes".into(),
                "unknown_record_field",
                "mapping `email`: `record.propertes.email` reads `propertes`, which HubSpot records do not have (they have `id`, `createdAt`, `updatedAt`, `archived` and `properties`)".into(),
                "did you mean `record.properties.email`?".into(),
            )
        );
        assert_eq!(
            (got[1].1.as_str(), got[1].4.as_str()),
            ("11:createdat", "did you mean `$.createdAt`?")
        );
    }

    #[test]
    fn a_property_at_the_top_is_an_error_pointing_under_properties() {
        let flow = trigger(
            "new_record",
            "contact",
            "    properties: [email]\n",
            "mapping:\n  email: \"{{lowercase record.email}}\"\n  phone: { path: \"$['phone']\" }\n",
        );
        let got = check(&flow);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!((got[0].0, got[0].1.as_str()), (Severity::Error, "10:email"));
        assert_eq!(
            got[0].4,
            "HubSpot records keep their values under `properties`: write `record.properties.email`"
        );
        assert_eq!(
            got[1].4,
            "HubSpot records keep their values under `properties`: write `properties.phone` (and fetch the property: add it to `properties:`)"
        );
    }

    #[test]
    fn an_unfetched_property_is_a_warning_with_a_hint() {
        let flow = trigger(
            "new_or_updated_record",
            "company",
            "    properties: [name, domain]\n",
            "mapping:\n  name: '{{record.properties.nme}}'\n  phone: { template: \"{{record.properties.phone}}\" }\n  always: \"{{record.properties.hs_object_id}}{{record.properties.createdate}}{{record.properties.hs_lastmodifieddate}}{{record.properties.domain}}\"\n",
        );
        let got = check(&flow);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(
            got[0],
            (
                Severity::Warning,
                "10:nme".into(),
                "unfetched_property",
                "mapping `name`: `record.properties.nme` reads the property `nme`, which the trigger does not fetch".into(),
                "did you mean `name`? If not, add `nme` to the trigger's `properties:` (line 8)".into(),
            )
        );
        assert_eq!(got[1].1, "11:phone");
        assert_eq!(
            got[1].4,
            "add `phone` to the trigger's `properties:` (line 8)"
        );
        // Contacts watch `lastmodifieddate`; without `properties:` only the needed ones come.
        let flow = trigger(
            "new_or_updated_record",
            "contact",
            "",
            "mapping:\n  a: \"{{record.properties.lastmodifieddate}}\"\n  b: \"{{record.properties.email}}\"\n",
        );
        let got = check(&flow);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(
            got[0].4,
            "add `properties: [email]` to the trigger (it fetches only `hs_object_id`, `createdate`, `lastmodifieddate`)"
        );
    }

    #[test]
    fn scopes_line_items_and_action_templates() {
        let flow = "name: a\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 15s\n    properties: [email]\nmapping:\n  each: \"{{#each record.properties.email}}{{this.sku}}{{sku}}{{@root.record.nope}}{{/each}}\"\nactions:\n  - hubspot: { connection: hubspot, operation: update, object: contact, id: \"{{record.hs_id}}\" }\n";
        let got = check(flow);
        let codes: Vec<(&str, &str)> = got.iter().map(|d| (d.1.as_str(), d.2)).collect();
        assert_eq!(
            codes,
            [
                ("10:nope", "unknown_record_field"),
                ("12:hs_id", "unknown_record_field")
            ],
            "{got:#?}"
        );
        assert!(
            got[1]
                .3
                .starts_with("`id` of action 0 (hubspot): `record.hs_id` reads `hs_id`")
        );
    }

    #[test]
    fn hubspot_sources_fetch_their_modified_property() {
        let flow = |incremental: bool| {
            format!(
                "name: a\nsource:\n  hubspot:\n    connection: hubspot\n    object: deals\n    properties: [dealname]\n    incremental: {incremental}\nmapping:\n  a: \"{{{{record.properties.dealname}}}}{{{{record.properties.hs_lastmodifieddate}}}}\"\n  b: \"{{{{record.properties.createdate}}}}\"\nactions:\n  - file: {{ path: out.jsonl }}\n"
            )
        };
        let got = check(&flow(false));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(
            (got[0].1.as_str(), got[0].2),
            ("10:createdate", "unfetched_property")
        );
        assert!(
            got[0].3.ends_with("which the source does not fetch"),
            "{got:#?}"
        );
        assert!(check(&flow(true)).is_empty());
    }

    #[test]
    fn file_columns_are_checked_as_warnings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("in.csv"),
            "\u{feff}email, name ,\"odd, key\"\r\nx,y,z\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("in.tsv"), "a\tb\n").unwrap();
        std::fs::write(
            dir.path().join("in.jsonl"),
            "\n{\"id\": 1, \"email\": \"x\"}\n",
        )
        .unwrap();
        let flow = |path: &str, mapping: &str| {
            format!(
                "name: a\nsource:\n  file: {{ path: {path} }}\nmapping:\n{mapping}actions:\n  - file: {{ path: out.jsonl }}\n"
            )
        };
        let got = check_in(
            dir.path(),
            &flow(
                "in.csv",
                "  a: \"{{record.emial}} {{record.name}} {{record.[odd, key]}}\"\n  b: { path: $.phone }\n",
            ),
        );
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(
            got[0],
            (
                Severity::Warning,
                "5:emial".into(),
                "unknown_column",
                "mapping `a`: `record.emial` reads the column `emial`, which `in.csv` does not have".into(),
                "did you mean `email`? (its columns: `email`, `name`, `odd, key`)".into(),
            )
        );
        assert_eq!(
            (got[1].1.as_str(), got[1].4.as_str()),
            ("6:phone", "its columns: `email`, `name`, `odd, key`")
        );
        let got = check_in(
            dir.path(),
            &flow("in.tsv", "  a: \"{{record.a}}{{record.c}}\"\n"),
        );
        assert_eq!(got.len(), 1, "{got:#?}");
        let got = check_in(
            dir.path(),
            &flow("in.jsonl", "  a: \"{{record.id}}{{record.mail}}\"\n"),
        );
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(
            got[0].3,
            "mapping `a`: `record.mail` reads the key `mail`, which the first record of `in.jsonl` does not have"
        );
        // Missing files, globs and JSON arrays are not checked.
        for path in ["missing.csv", "'*.csv'", "in.json"] {
            std::fs::write(dir.path().join("in.json"), "[{\"a\": 1}]").unwrap();
            let got = check_in(dir.path(), &flow(path, "  a: \"{{record.zzz}}\"\n"));
            assert!(got.is_empty(), "{path}: {got:#?}");
        }
    }

    #[test]
    fn headers_and_first_records() {
        let whole = |s: &str| (s.as_bytes().to_vec(), true);
        assert_eq!(
            csv_header(&whole("a,\"b \"\"q\"\"\",c"), b','),
            Some(vec!["a".into(), "b \"q\"".into(), "c".into()])
        );
        assert_eq!(csv_header(&whole(""), b','), None);
        // A header longer than what was read, or an open quote, tells nothing.
        assert_eq!(csv_header(&(b"a,b".to_vec(), false), b','), None);
        assert_eq!(
            csv_header(&whole("a,\"b\nc\"\nx,y"), b','),
            Some(vec!["a".into(), "b\nc".into()])
        );
        assert_eq!(csv_header(&whole("a,\"b"), b','), None);
        assert_eq!(first_keys(&whole("  \n[1]\n")), None);
        assert_eq!(first_keys(&whole("{\"a\":1}")), Some(vec!["a".into()]));
        assert_eq!(first_keys(&(b"{\"a\":1}".to_vec(), false)), None);
        assert_eq!(first_keys(&whole("\n\n")), None);
    }

    #[test]
    fn positions_inside_strings() {
        let cases = [
            ("k: plain {{record.x}}\n", 10),
            ("k: 'it''s {{record.x}}'\n", 11),
            ("k: \"a\\\"b\\u00e9 {{record.x}}\"\n", 16),
            ("k: |\n  line one\n  {{record.x}}\n", 0),
            ("k: |-\n  line one\n\n  {{record.x}}\n", 0),
            ("k: >\n  line one\n  {{record.x}}\n", 0),
            ("k: { a: 1, t: \"é{{record.x}}\" }\n", 17),
        ];
        for (yaml, col_of_brace) in cases {
            let node = crate::yaml::parse(yaml).unwrap();
            let k = node.get("k").unwrap();
            let k = k.get("t").unwrap_or(k);
            let value = k.as_str().unwrap();
            let offset = value.find("{{").unwrap();
            let pos = scalar_pos(yaml, k, offset);
            let line = yaml.split('\n').nth(pos.line as usize - 1).unwrap();
            let at: String = line.chars().skip(pos.column as usize - 1).take(2).collect();
            assert_eq!(at, "{{", "{yaml:?} → {pos:?}");
            if pos.line == 1 {
                assert_eq!(pos.column, col_of_brace, "{yaml:?}");
            }
        }
        // A string over several lines that is not a block scalar: its start.
        let yaml = "k: \"a\n  {{record.x}}\"\n";
        let node = crate::yaml::parse(yaml).unwrap();
        let k = node.get("k").unwrap();
        assert_eq!(scalar_pos(yaml, k, 3), k.pos);
    }
}
