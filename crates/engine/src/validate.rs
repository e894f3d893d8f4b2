//! Validation: every file, every problem, each with its position — and nothing else. It reads
//! files but never the network, and never a secret's value (only whether a variable is set).
//!
//! Order per file: YAML → structure (against the generated schema) → typed model → the rules a
//! schema cannot say (exactly one of, connections exist and are of the right kind, HubSpot's
//! required properties, templates and paths compile). Then across files: duplicate names and
//! the daily API budget of each connection.

use crate::diagnostic::{Diagnostic, Pos, Severity, did_you_mean};
use crate::env;
use crate::load::{self, FileKind, LoadError, SourceFile};
use crate::model::{
    Action, Connection, ConnectionKind, ConnectionsFile, Duration, Flow, HubSpotAction, Operation,
    TriggerEvent, TriggerObject,
};
use crate::schedule::{self, MIN_INTERVAL};
use crate::schema;
use crate::structure;
use crate::yaml::{Node, Step};
use indexmap::IndexMap;
use rivulet_mapping::{FieldSpec, FieldType, Mapping};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How strict to be.
#[derive(Clone)]
pub struct Options {
    /// Unset environment variables and missing secret files are errors, not warnings.
    pub strict: bool,
    /// Whether an environment variable is set (the process environment by default; tests
    /// substitute their own).
    pub env_is_set: fn(&str) -> bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strict: false,
            env_is_set: |name| std::env::var_os(name).is_some(),
        }
    }
}

/// A flow that parsed into the model, with what validation learned about it.
#[derive(Debug, Clone)]
pub struct CheckedFlow {
    /// The file it came from.
    pub file: PathBuf,
    /// The flow.
    pub flow: Flow,
    /// Its compiled mapping, when it compiled.
    pub mapping: Option<Mapping>,
    /// Search calls per day its trigger costs on its own, for triggers.
    pub calls_per_day: Option<u64>,
}

/// A connection that parsed into the model.
#[derive(Debug, Clone)]
pub struct CheckedConnection {
    /// The file it came from.
    pub file: PathBuf,
    /// Where its name is.
    pub pos: Pos,
    /// The connection.
    pub connection: Connection,
}

/// The outcome of validating a set of paths.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Every file read, in order.
    pub files: Vec<SourceFile>,
    /// Flows that parsed (they may still have errors).
    pub flows: Vec<CheckedFlow>,
    /// Connections by name.
    pub connections: IndexMap<String, CheckedConnection>,
    /// Every finding, errors first within each file, files in order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Validation {
    /// How many diagnostics of `severity` there are.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// Whether the flows may run: no errors (and no warnings when `deny_warnings`).
    pub fn is_valid(&self, deny_warnings: bool) -> bool {
        self.count(Severity::Error) == 0 && (!deny_warnings || self.count(Severity::Warning) == 0)
    }

    /// The source text of `file`, for rendering snippets.
    pub fn source(&self, file: &Path) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == file)
            .map(|f| f.text.as_str())
    }
}

/// Finds, reads and validates everything under `paths`.
pub fn validate_paths(paths: &[PathBuf], options: &Options) -> Result<Validation, LoadError> {
    let files = load::discover(paths)?
        .iter()
        .map(|p| SourceFile::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(validate_files(files, options))
}

/// Validates files already read.
pub fn validate_files(files: Vec<SourceFile>, options: &Options) -> Validation {
    let mut v = Validation::default();
    let mut nodes: HashMap<PathBuf, Node> = HashMap::new();
    let mut flows: Vec<(CheckedFlow, Pos)> = Vec::new();

    // Connections first: flows are checked against them.
    for file in files.iter().filter(|f| f.kind() == FileKind::Connections) {
        let Some(node) = parse_structure(file, schema::connections_schema(), &mut v.diagnostics)
        else {
            continue;
        };
        if let Some(parsed) = typed::<ConnectionsFile>(file, &node, &mut v.diagnostics) {
            for (name, connection) in parsed.connections {
                let path = [Step::Key("connections".into()), Step::Key(name.clone())];
                let pos = node.locate(&path);
                check_connection(file, &node, &name, &connection, options, &mut v.diagnostics);
                if let Some(first) = v.connections.get(&name) {
                    v.diagnostics.push(
                        Diagnostic::error(
                            "duplicate_connection",
                            &file.path,
                            pos,
                            format!("connection `{name}` is defined twice"),
                        )
                        .with_hint(format!(
                            "it is also defined at {}:{}",
                            first.file.display(),
                            first.pos.line
                        )),
                    );
                    continue;
                }
                v.connections.insert(
                    name,
                    CheckedConnection {
                        file: file.path.clone(),
                        pos,
                        connection,
                    },
                );
            }
        }
        nodes.insert(file.path.clone(), node);
    }

    for file in files.iter().filter(|f| f.kind() == FileKind::Flow) {
        let Some(node) = parse_structure(file, schema::flow_schema(), &mut v.diagnostics) else {
            continue;
        };
        if let Some(flow) = typed::<Flow>(file, &node, &mut v.diagnostics) {
            let checked = check_flow(file, &node, flow, &v.connections, &mut v.diagnostics);
            flows.push((checked, node.locate(&[Step::Key("name".into())])));
        }
        nodes.insert(file.path.clone(), node);
    }

    // Duplicate flow names across the directory.
    let mut seen: HashMap<&str, (&Path, Pos)> = HashMap::new();
    for (flow, pos) in &flows {
        match seen.get(flow.flow.name.as_str()) {
            Some((other, other_pos)) => v.diagnostics.push(
                Diagnostic::error(
                    "duplicate_flow_name",
                    &flow.file,
                    *pos,
                    format!("flow name `{}` is already used", flow.flow.name),
                )
                .with_hint(format!(
                    "by {}:{}; flow names must be unique because state is kept per name",
                    other.display(),
                    other_pos.line
                )),
            ),
            None => {
                seen.insert(&flow.flow.name, (&flow.file, *pos));
            }
        }
    }

    check_daily_budgets(&flows, &v.connections, &mut v.diagnostics);

    v.flows = flows.into_iter().map(|(f, _)| f).collect();
    v.files = files;
    // Stable order: by file, then position, errors before warnings at the same place.
    let order: HashMap<PathBuf, usize> = v
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    v.diagnostics.sort_by(|a, b| {
        (order.get(&a.file), a.pos, a.severity).cmp(&(order.get(&b.file), b.pos, b.severity))
    });
    v
}

/// YAML and structure; the tree when the file is structurally sound enough to go on.
fn parse_structure(
    file: &SourceFile,
    schema: &serde_json::Value,
    out: &mut Vec<Diagnostic>,
) -> Option<Node> {
    let node = match &file.parsed {
        Ok(node) => node.clone(),
        Err(e) => {
            let mut d = Diagnostic::error("yaml_syntax", &file.path, e.pos, e.message.clone());
            d.hint = e.hint.clone();
            out.push(d);
            return None;
        }
    };
    match &node.value {
        crate::yaml::Value::Null => {
            out.push(
                Diagnostic::error("empty_file", &file.path, Pos::new(1, 1), "file is empty")
                    .with_hint("a flow needs at least `name`, a `trigger` or `source`, and `actions`; see `rivulet init`"),
            );
            return None;
        }
        crate::yaml::Value::Map(_) => {}
        _ => {
            out.push(Diagnostic::error(
                "not_a_mapping",
                &file.path,
                node.pos,
                format!(
                    "a flow or connections file must be a mapping of keys to values, found {}",
                    node.kind()
                ),
            ));
            return None;
        }
    }
    let issues = structure::check(&node, schema);
    let ok = issues.is_empty();
    out.extend(issues.into_iter().map(|i| {
        let mut d = Diagnostic::error(i.code, &file.path, i.pos, i.message);
        d.hint = i.hint;
        d
    }));
    ok.then_some(node)
}

/// The typed model of a structurally sound file.
fn typed<T: serde::de::DeserializeOwned>(
    file: &SourceFile,
    node: &Node,
    out: &mut Vec<Diagnostic>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(node.to_json()) {
        Ok(value) => Some(value),
        Err(err) => {
            let steps: Vec<Step> = err
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                    _ => None,
                })
                .collect();
            let pos = node
                .at(&steps)
                .map_or_else(|| node.locate(&steps), |n| n.pos);
            out.push(Diagnostic::error(
                "invalid_value",
                &file.path,
                pos,
                err.into_inner().to_string(),
            ));
            None
        }
    }
}

/// Collects diagnostics for one file; positions come from its tree.
struct FileCheck<'a> {
    file: &'a Path,
    node: &'a Node,
    out: &'a mut Vec<Diagnostic>,
}

impl FileCheck<'_> {
    fn key_pos(&self, path: &[Step]) -> Pos {
        self.node.locate(path)
    }

    fn value_pos(&self, path: &[Step]) -> Pos {
        self.node
            .at(path)
            .map_or_else(|| self.node.locate(path), |n| n.pos)
    }

    fn error(
        &mut self,
        code: &'static str,
        pos: Pos,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.out
            .push(Diagnostic::error(code, self.file, pos, message));
        self.out.last_mut().expect("just pushed")
    }

    fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }
}

fn keys(path: &[&str]) -> Vec<Step> {
    path.iter().map(|k| Step::Key((*k).to_string())).collect()
}

fn check_connection(
    file: &SourceFile,
    node: &Node,
    name: &str,
    connection: &Connection,
    options: &Options,
    out: &mut Vec<Diagnostic>,
) {
    let mut c = FileCheck {
        file: &file.path,
        node,
        out,
    };
    let base = keys(&["connections", name]);
    let at = |rest: &[&str]| -> Vec<Step> {
        base.iter()
            .cloned()
            .chain(rest.iter().map(|k| Step::Key((*k).into())))
            .collect()
    };
    let mut strings: Vec<(Vec<Step>, &str)> = Vec::new();
    if let Some(hs) = &connection.hubspot {
        let credentials = [
            hs.token.is_some(),
            hs.token_file.is_some(),
            hs.oauth.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        let pos = c.key_pos(&at(&["hubspot"]));
        if credentials == 0 {
            c.error(
                "missing_credentials",
                pos,
                format!("connection `{name}` has no credentials"),
            )
            .hint = Some(
                "add `token: ${HUBSPOT_TOKEN}`, `token_file: PATH` or an `oauth` block".into(),
            );
        } else if credentials > 1 {
            c.error(
                "conflicting_credentials",
                pos,
                format!(
                    "connection `{name}` has more than one of `token`, `token_file` and `oauth`"
                ),
            )
            .hint = Some("keep exactly one way to authenticate".into());
        }
        if let Some(token) = &hs.token {
            check_secret(&mut c, &at(&["hubspot", "token"]), "token", token);
            strings.push((at(&["hubspot", "token"]), token));
        }
        if let Some(token_file) = &hs.token_file {
            strings.push((at(&["hubspot", "token_file"]), token_file));
            if env::references(token_file).is_ok_and(|r| r.is_empty()) {
                let resolved = file
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(token_file);
                if !resolved.is_file() {
                    let d = missing_at_runtime(
                        options,
                        "missing_secret_file",
                        c.file,
                        c.value_pos(&at(&["hubspot", "token_file"])),
                        format!("token file `{}` does not exist (yet)", resolved.display()),
                    );
                    c.push(d.with_hint("it must exist when the flows run"));
                }
            }
        }
        if let Some(oauth) = &hs.oauth {
            check_secret(
                &mut c,
                &at(&["hubspot", "oauth", "client_secret"]),
                "client_secret",
                &oauth.client_secret,
            );
            check_secret(
                &mut c,
                &at(&["hubspot", "oauth", "refresh_token"]),
                "refresh_token",
                &oauth.refresh_token,
            );
            strings.push((at(&["hubspot", "oauth", "client_id"]), &oauth.client_id));
            strings.push((
                at(&["hubspot", "oauth", "client_secret"]),
                &oauth.client_secret,
            ));
            strings.push((
                at(&["hubspot", "oauth", "refresh_token"]),
                &oauth.refresh_token,
            ));
            strings.push((at(&["hubspot", "oauth", "token_url"]), &oauth.token_url));
            check_url(
                &mut c,
                &at(&["hubspot", "oauth", "token_url"]),
                &oauth.token_url,
            );
        }
        strings.push((at(&["hubspot", "base_url"]), &hs.base_url));
        check_url(&mut c, &at(&["hubspot", "base_url"]), &hs.base_url);
        if let Some(display) = &hs.display_name {
            strings.push((at(&["hubspot", "display_name"]), display));
        }
        if hs.throttle.per.get() < MIN_INTERVAL.get() {
            let pos = c.value_pos(&at(&["hubspot", "throttle", "per"]));
            c.error("invalid_value", pos, "`throttle.per` must be at least 1s");
        }
    }
    if let Some(http) = &connection.http {
        strings.push((at(&["http", "base_url"]), &http.base_url));
        check_url(&mut c, &at(&["http", "base_url"]), &http.base_url);
        for (header, value) in &http.headers {
            strings.push((at(&["http", "headers", header]), value));
        }
        if let Some(display) = &http.display_name {
            strings.push((at(&["http", "display_name"]), display));
        }
    }
    for (path, text) in strings {
        match env::references(text) {
            Err(e) => {
                let pos = c.value_pos(&path);
                c.error("invalid_interpolation", pos, e.to_string()).hint =
                    Some("write `${NAME}` or `${NAME:-default}`; `$${` for a literal `${`".into());
            }
            Ok(refs) => {
                for var in refs
                    .into_iter()
                    .filter(|r| r.default.is_none() && !(options.env_is_set)(&r.name))
                {
                    let pos = c.value_pos(&path);
                    let d = missing_at_runtime(
                        options,
                        "unset_env",
                        c.file,
                        pos,
                        format!("environment variable `{}` is not set", var.name),
                    );
                    c.push(d.with_hint(format!("connection `{name}` needs it when the flows run")));
                }
            }
        }
    }
}

/// Something the flows need only when they run (a variable, a secret file): a warning, or an
/// error under `--strict`, since CI may validate without the production environment.
fn missing_at_runtime(
    options: &Options,
    code: &'static str,
    file: &Path,
    pos: Pos,
    message: String,
) -> Diagnostic {
    let d = Diagnostic::warning(code, file, pos, message);
    if options.strict {
        Diagnostic {
            severity: Severity::Error,
            ..d
        }
    } else {
        d
    }
}

/// Secrets come from the environment only: a literal here would end up in version control.
fn check_secret(c: &mut FileCheck<'_>, path: &[Step], what: &str, value: &str) {
    if !env::is_single_reference(value) {
        let pos = c.value_pos(path);
        // Never echo the value, not even in a snippet: it may be a real secret pasted by mistake.
        let d = Diagnostic::error(
            "literal_secret",
            c.file,
            pos,
            format!("`{what}` must come from the environment, not be written in the file"),
        )
        .with_hint(format!(
            "write `{what}: ${{HUBSPOT_{}}}` and set that variable (or use `token_file`)",
            what.to_uppercase()
        ))
        .redacted();
        c.push(d);
    }
}

fn check_url(c: &mut FileCheck<'_>, path: &[Step], url: &str) {
    if url.contains("${") {
        return; // Known only when the connection is built.
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() <= "https://".len()
    {
        let pos = c.value_pos(path);
        c.error("invalid_url", pos, format!("`{url}` is not an http(s) URL"));
    }
}

fn check_flow(
    file: &SourceFile,
    node: &Node,
    flow: Flow,
    connections: &IndexMap<String, CheckedConnection>,
    out: &mut Vec<Diagnostic>,
) -> CheckedFlow {
    let mut c = FileCheck {
        file: &file.path,
        node,
        out,
    };
    let name_ok = !flow.name.is_empty()
        && flow.name.len() <= 100
        && flow
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        && flow
            .name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphanumeric());
    if !name_ok {
        let pos = c.value_pos(&keys(&["name"]));
        c.error(
            "invalid_name",
            pos,
            format!("flow name `{}` is not allowed", flow.name),
        )
        .hint = Some(
            "use letters, digits, `-`, `_` and `.`, starting with a letter or digit (at most 100)"
                .into(),
        );
    }

    // Trigger xor schedule; a schedule needs a source.
    let mut calls_per_day = None;
    match (&flow.trigger, &flow.schedule, &flow.source) {
        (Some(_), Some(_), _) => {
            let pos = c.key_pos(&keys(&["schedule"]));
            c.error(
                "trigger_and_schedule",
                pos,
                "a flow has a `trigger` or a `schedule`, not both",
            )
            .hint = Some("a trigger polls on its own `poll_every`; remove `schedule`".into());
        }
        (Some(_), None, Some(_)) => {
            let pos = c.key_pos(&keys(&["source"]));
            c.error("trigger_and_source", pos, "a triggered flow gets its records from the trigger; `source` is for scheduled flows")
                .hint = Some("remove `source`, or replace `trigger` with a `schedule`".into());
        }
        (None, Some(_), None) => {
            let pos = c.key_pos(&keys(&["schedule"]));
            c.error(
                "schedule_without_source",
                pos,
                "a schedule needs a `source` to read from",
            )
            .hint = Some("add `source:` with `file`, `http` or `hubspot`".into());
        }
        (None, None, None) => {
            let pos = c.key_pos(&keys(&["name"]));
            c.error(
                "no_trigger",
                pos,
                "the flow has no `trigger` and no `source`, so nothing starts it",
            )
            .hint = Some(
                "add `trigger: {hubspot: …}`, or a `source` (with an optional `schedule`)".into(),
            );
        }
        _ => {}
    }

    if let Some(trigger) = &flow.trigger {
        let t = &trigger.hubspot;
        let base = keys(&["trigger", "hubspot"]);
        let at =
            |k: &str| -> Vec<Step> { base.iter().cloned().chain([Step::Key(k.into())]).collect() };
        check_connection_ref(
            &mut c,
            connections,
            &at("connection"),
            &t.connection,
            ConnectionKind::HubSpot,
        );
        if t.poll_every < MIN_INTERVAL {
            let pos = c.value_pos(&at("poll_every"));
            c.error(
                "poll_too_fast",
                pos,
                format!(
                    "`poll_every: {}` is too short; the shortest is 1s",
                    t.poll_every
                ),
            )
            .hint = Some(
                "HubSpot allows 5 searches per second per account, shared by every integration"
                    .into(),
            );
        } else {
            let per_day = calls_per_day_for(t.poll_every);
            calls_per_day = Some(per_day);
        }
        if !matches!(t.start_from.as_str(), "now" | "beginning")
            && chrono::DateTime::parse_from_rfc3339(&t.start_from).is_err()
        {
            let pos = c.value_pos(&at("start_from"));
            c.error(
                "invalid_start_from",
                pos,
                format!(
                    "`start_from: {}` is not `now`, `beginning` or an RFC 3339 instant",
                    t.start_from
                ),
            )
            .hint = Some("for example `2026-01-01T00:00:00Z`".into());
        }
    }

    match schedule::timing(flow.schedule.as_ref()) {
        Ok(_) => {}
        Err(err) => {
            let (code, pos) = match &err {
                schedule::ScheduleError::Cron(_) => {
                    ("invalid_cron", c.value_pos(&keys(&["schedule", "cron"])))
                }
                schedule::ScheduleError::TooShort(_) => (
                    "invalid_schedule",
                    c.value_pos(&keys(&["schedule", "every"])),
                ),
                _ => ("invalid_schedule", c.key_pos(&keys(&["schedule"]))),
            };
            c.error(code, pos, err.to_string());
        }
    }

    if let Some(source) = &flow.source {
        check_source(&mut c, connections, source);
    }

    // Mapping: compile every template and path, pointing into the YAML on failure.
    let mapping = match Mapping::compile(&flow.mapping) {
        Ok(m) => Some(m),
        Err(errors) => {
            for e in errors {
                let field_path = keys(&["mapping", &e.field]);
                let pos = match c.node.at(&field_path) {
                    Some(field_node) if field_node.as_str().is_some() => {
                        offset_pos(&file.text, field_node, e.offset)
                    }
                    Some(_) => {
                        let part_path: Vec<Step> = field_path
                            .iter()
                            .cloned()
                            .chain([Step::Key(e.part.to_string())])
                            .collect();
                        match c.node.at(&part_path) {
                            Some(part) if part.as_str().is_some() => {
                                offset_pos(&file.text, part, e.offset)
                            }
                            Some(part) => part.pos,
                            None => c.key_pos(&field_path),
                        }
                    }
                    None => c.key_pos(&field_path),
                };
                let d = c.error(
                    "invalid_mapping",
                    pos,
                    format!("mapping `{}`: {}", e.field, e.message),
                );
                d.hint = e.hint;
            }
            None
        }
    };

    for (i, action) in flow.actions.iter().enumerate() {
        check_action(&mut c, connections, &flow, i, action);
    }

    CheckedFlow {
        file: file.path.clone(),
        flow,
        mapping,
        calls_per_day,
    }
}

/// Search calls a day that polling every `every` costs.
pub fn calls_per_day_for(every: Duration) -> u64 {
    let millis = every.get().as_millis().max(1);
    (86_400_000u128).div_ceil(millis) as u64
}

/// Where, in the file, byte `offset` of the string at `node` is — exact for strings on one
/// line (plain or quoted); the start of the string otherwise.
fn offset_pos(text: &str, node: &Node, offset: Option<usize>) -> Pos {
    let Some(offset) = offset else {
        return node.pos;
    };
    let Some(value) = node.as_str() else {
        return node.pos;
    };
    let line = text
        .lines()
        .nth(node.pos.line.saturating_sub(1) as usize)
        .unwrap_or_default();
    let start: String = line
        .chars()
        .skip(node.pos.column.saturating_sub(1) as usize)
        .collect();
    let quoted = start.starts_with('"') || start.starts_with('\'');
    let body = if quoted { &start[1..] } else { start.as_str() };
    let prefix = value.get(..offset.min(value.len())).unwrap_or(value);
    if value.contains('\n') || !body.starts_with(prefix) {
        return node.pos;
    }
    Pos::new(
        node.pos.line,
        node.pos.column + u32::from(quoted) + prefix.chars().count() as u32,
    )
}

fn check_connection_ref(
    c: &mut FileCheck<'_>,
    connections: &IndexMap<String, CheckedConnection>,
    path: &[Step],
    name: &str,
    kind: ConnectionKind,
) {
    let pos = c.value_pos(path);
    match connections.get(name) {
        None => {
            let hint = did_you_mean(name, connections.keys().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    if connections.is_empty() {
                        "no connections are defined; add a connections.yaml beside the flows".into()
                    } else {
                        format!(
                            "defined connections: {}",
                            connections.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                });
            c.error(
                "unknown_connection",
                pos,
                format!("there is no connection named `{name}`"),
            )
            .hint = Some(hint);
        }
        Some(found) => {
            if let Some(actual) = found.connection.kind()
                && actual != kind
            {
                c.error(
                    "wrong_connection_kind",
                    pos,
                    format!(
                        "connection `{name}` is an `{}` connection; this needs a `{}` connection",
                        actual.key(),
                        kind.key()
                    ),
                )
                .hint = Some(format!(
                    "defined at {}:{}",
                    found.file.display(),
                    found.pos.line
                ));
            }
        }
    }
}

fn check_source(
    c: &mut FileCheck<'_>,
    connections: &IndexMap<String, CheckedConnection>,
    source: &crate::model::Source,
) {
    if let Some(fs) = &source.file {
        let base = |k: &str| keys(&["source", "file", k]);
        if fs.path.trim().is_empty() {
            let pos = c.value_pos(&base("path"));
            c.error("invalid_value", pos, "`path` is empty");
        }
        if fs.format.is_none() && crate::model::FileFormat::from_path(&fs.path).is_none() {
            let pos = c.value_pos(&base("path"));
            c.error(
                "unknown_format",
                pos,
                format!("cannot tell the format of `{}` from its extension", fs.path),
            )
            .hint = Some("add `format: csv`, `jsonl` or `json`".into());
        }
        if let Some(d) = &fs.delimiter
            && d.chars().count() != 1
        {
            let pos = c.value_pos(&base("delimiter"));
            c.error(
                "invalid_value",
                pos,
                format!("`delimiter` must be one character, not `{d}`"),
            );
        }
        match (fs.after_read, &fs.move_to) {
            (crate::model::AfterRead::Move, None) => {
                let pos = c.key_pos(&base("after_read"));
                c.error(
                    "missing_move_to",
                    pos,
                    "`after_read: move` needs `move_to`, the folder to move files to",
                );
            }
            (a, Some(_)) if a != crate::model::AfterRead::Move => {
                let pos = c.key_pos(&base("move_to"));
                c.push(Diagnostic::warning(
                    "unused_key",
                    c.file,
                    pos,
                    "`move_to` is only used with `after_read: move`",
                ));
            }
            _ => {}
        }
    }
    if let Some(http) = &source.http {
        let base = |k: &[&str]| -> Vec<Step> {
            keys(&["source", "http"])
                .into_iter()
                .chain(k.iter().map(|s| Step::Key((*s).into())))
                .collect()
        };
        check_connection_ref(
            c,
            connections,
            &base(&["connection"]),
            &http.connection,
            ConnectionKind::Http,
        );
        check_path(c, &base(&["records"]), &http.records);
        if let Some(p) = &http.pagination {
            if let Some(link) = &p.next_link {
                check_path(c, &base(&["pagination", "next_link"]), link);
            }
            if let Some(cursor) = &p.cursor {
                check_path(c, &base(&["pagination", "cursor", "path"]), &cursor.path);
            }
        }
        if let Some(inc) = &http.incremental {
            check_path(c, &base(&["incremental", "field"]), &inc.field);
        }
    }
    if let Some(hs) = &source.hubspot {
        check_connection_ref(
            c,
            connections,
            &keys(&["source", "hubspot", "connection"]),
            &hs.connection,
            ConnectionKind::HubSpot,
        );
        check_object(c, &keys(&["source", "hubspot", "object"]), &hs.object);
    }
}

/// A JSONPath compiles.
fn check_path(c: &mut FileCheck<'_>, path: &[Step], expr: &str) {
    let mut fields = IndexMap::new();
    fields.insert("path".to_string(), FieldSpec::path(expr, FieldType::String));
    if let Err(errors) = Mapping::compile(&fields) {
        for e in errors {
            let pos = c.node.at(path).map_or_else(|| c.key_pos(path), |n| n.pos);
            let d = c.error("invalid_path", pos, e.message);
            d.hint = e.hint;
        }
    }
}

/// A template compiles.
fn check_template(c: &mut FileCheck<'_>, text: &str, path: &[Step], what: &str) {
    let mut fields = IndexMap::new();
    fields.insert(what.to_string(), FieldSpec::template(text));
    if let Err(errors) = Mapping::compile(&fields) {
        for e in errors {
            let pos = c.node.at(path).map_or_else(|| c.key_pos(path), |n| n.pos);
            let d = c.error("invalid_template", pos, format!("`{what}`: {}", e.message));
            d.hint = e.hint;
        }
    }
}

/// HubSpot object names the engine knows, and their canonical (singular) form.
pub fn canonical_object(name: &str) -> Option<&'static str> {
    Some(match name {
        "company" | "companies" => "company",
        "contact" | "contacts" => "contact",
        "deal" | "deals" => "deal",
        "product" | "products" => "product",
        "line_item" | "line_items" => "line_item",
        "ticket" | "tickets" => "ticket",
        _ => return None,
    })
}

fn is_custom_object(name: &str) -> bool {
    name.strip_prefix("2-")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
        || name.starts_with("p_")
}

fn check_object(c: &mut FileCheck<'_>, path: &[Step], object: &str) {
    if canonical_object(object).is_none() && !is_custom_object(object) {
        let pos = c.value_pos(path);
        let known = [
            "company",
            "contact",
            "deal",
            "product",
            "line_item",
            "ticket",
        ];
        let hint = did_you_mean(object, known)
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "use company, contact, deal, product, line_item, ticket or a custom object id like `2-1234567`".into());
        c.error(
            "unknown_object",
            pos,
            format!("`{object}` is not a HubSpot object type"),
        )
        .hint = Some(hint);
    }
}

fn check_action(
    c: &mut FileCheck<'_>,
    connections: &IndexMap<String, CheckedConnection>,
    flow: &Flow,
    index: usize,
    action: &Action,
) {
    let base = |k: &[&str]| -> Vec<Step> {
        [Step::Key("actions".into()), Step::Index(index)]
            .into_iter()
            .chain(k.iter().map(|s| Step::Key((*s).into())))
            .collect()
    };
    if let Some(hs) = &action.hubspot {
        check_connection_ref(
            c,
            connections,
            &base(&["hubspot", "connection"]),
            &hs.connection,
            ConnectionKind::HubSpot,
        );
        check_object(c, &base(&["hubspot", "object"]), &hs.object);
        check_hubspot_rules(c, flow, hs, &base(&["hubspot"]));
        if let Some(id) = &hs.id {
            check_template(c, id, &base(&["hubspot", "id"]), "id");
        }
    }
    if let Some(fs) = &action.file
        && fs.path.trim().is_empty()
    {
        let pos = c.value_pos(&base(&["file", "path"]));
        c.error("invalid_value", pos, "`path` is empty");
    }
    if let Some(http) = &action.http {
        check_connection_ref(
            c,
            connections,
            &base(&["http", "connection"]),
            &http.connection,
            ConnectionKind::Http,
        );
        check_template(c, &http.path, &base(&["http", "path"]), "path");
    }
}

/// HubSpot's rules for each operation, checked against what the mapping provides.
fn check_hubspot_rules(c: &mut FileCheck<'_>, flow: &Flow, hs: &HubSpotAction, at: &[Step]) {
    let mapped = |field: &str| flow.mapping.contains_key(field);
    let object = canonical_object(&hs.object);
    let key = |k: &str| -> Vec<Step> { at.iter().cloned().chain([Step::Key(k.into())]).collect() };
    let op_pos = c.value_pos(&key("operation"));
    match (hs.operation, object) {
        (Operation::Create, Some("company")) if !mapped("name") && !mapped("domain") => {
            c.error(
                "missing_required_property",
                op_pos,
                "creating a company needs `name` or `domain` in the mapping",
            )
            .hint = Some(
                "HubSpot recommends `domain`: it is how HubSpot avoids duplicate companies".into(),
            );
        }
        (Operation::Create, Some("contact"))
            if !mapped("email") && !mapped("firstname") && !mapped("lastname") =>
        {
            c.error(
                "missing_required_property",
                op_pos,
                "creating a contact needs `email`, `firstname` or `lastname` in the mapping",
            )
            .hint = Some(
                "HubSpot recommends `email`: it is how HubSpot avoids duplicate contacts".into(),
            );
        }
        (Operation::Update, _) if hs.id.is_none() => {
            c.error("missing_id", op_pos, "`update` needs `id`, the HubSpot ID of the record to update").hint =
                Some("for example `id: \"{{record.hubspot_id}}\"`; to create missing records use `operation: upsert`".into());
        }
        (Operation::Upsert, Some("contact")) if hs.match_on.is_none() => {
            c.error(
                "missing_match_on",
                op_pos,
                "upserting contacts needs `match_on`, the unique property to match them by",
            )
            .hint = Some("usually `match_on: email` (and `email` in the mapping)".into());
        }
        (Operation::Upsert, _) if hs.match_on.is_none() && hs.id.is_none() => {
            c.error("missing_match_on", op_pos, "`upsert` needs `id` (the HubSpot ID) or `match_on` (a unique property)").hint =
                Some("companies: `id: \"{{record.hubspot_id}}\"`, or `match_on` a custom unique property".into());
        }
        _ => {}
    }
    if let Some(match_on) = &hs.match_on {
        let pos = c.value_pos(&key("match_on"));
        if hs.operation != Operation::Upsert {
            c.push(Diagnostic::warning(
                "unused_key",
                c.file,
                pos,
                format!(
                    "`match_on` is only used by `upsert`, not `{}`",
                    op_name(hs.operation)
                ),
            ));
        } else if !mapped(match_on) {
            c.error("unmapped_match_on", pos, format!("`match_on: {match_on}` is not in the mapping, so records have nothing to match by"))
                .hint = Some(format!("add `{match_on}:` to `mapping`"));
        }
        if object == Some("company") && match_on == "domain" {
            c.push(
                Diagnostic::warning("non_unique_match_on", c.file, pos, "HubSpot does not treat `domain` as a unique property, so it cannot be used to upsert")
                    .with_hint("upsert companies by `id`, or by a custom property created with unique values"),
            );
        }
    }
    if hs.operation == Operation::Create && hs.id.is_some() {
        let pos = c.key_pos(&key("id"));
        c.push(Diagnostic::warning(
            "unused_key",
            c.file,
            pos,
            "`id` is ignored by `create`: HubSpot assigns the ID",
        ));
    }
    if hs.create_if_missing && !(hs.operation == Operation::Upsert && hs.id.is_some()) {
        let pos = c.key_pos(&key("create_if_missing"));
        c.push(Diagnostic::warning(
            "unused_key",
            c.file,
            pos,
            "`create_if_missing` only applies to upserts by `id`",
        ));
    }
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Upsert => "upsert",
    }
}

/// The polls of all flows on one connection must fit its daily limit. Flows watching the same
/// object and event share one search per poll (at the fastest `poll_every` among them), so a
/// group costs what its fastest member costs.
fn check_daily_budgets(
    flows: &[(CheckedFlow, Pos)],
    connections: &IndexMap<String, CheckedConnection>,
    out: &mut Vec<Diagnostic>,
) {
    let mut groups: IndexMap<(&str, TriggerObject, TriggerEvent), (Duration, Vec<&str>)> =
        IndexMap::new();
    for (flow, _) in flows {
        let Some(trigger) = &flow.flow.trigger else {
            continue;
        };
        let t = &trigger.hubspot;
        if t.poll_every < MIN_INTERVAL {
            continue;
        }
        let entry = groups
            .entry((t.connection.as_str(), t.object, t.on))
            .or_insert((t.poll_every, Vec::new()));
        entry.0 = entry.0.min(t.poll_every);
        entry.1.push(&flow.flow.name);
    }
    let mut per_connection: IndexMap<&str, u64> = IndexMap::new();
    for ((connection, _, _), (every, _)) in &groups {
        *per_connection.entry(connection).or_default() += calls_per_day_for(*every);
    }
    for (name, calls) in per_connection {
        let Some(conn) = connections.get(name) else {
            continue;
        };
        let Some(hs) = &conn.connection.hubspot else {
            continue;
        };
        if calls > hs.daily_limit {
            out.push(
                Diagnostic::warning(
                    "daily_limit_exceeded",
                    &conn.file,
                    conn.pos,
                    format!(
                        "the triggers on connection `{name}` poll {} times a day, more than its daily_limit of {}",
                        thousands(calls),
                        thousands(hs.daily_limit)
                    ),
                )
                .with_hint("poll less often, or raise `daily_limit` if your HubSpot tier allows more (Professional: 650,000)"),
            );
        }
    }
}

/// `5760` → `5,760`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
