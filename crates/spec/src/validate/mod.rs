//! Validation: every file, every problem, each with its position — and nothing else. It reads
//! files but never the network, and never a secret's value (only whether a variable is set).
//!
//! Order per file: YAML → structure (against the generated schema) → typed model → the rules a
//! schema cannot say. The rules common to every flow live here (names, trigger xor schedule,
//! schedules, mappings); each connector's own rules live beside its settings in
//! [`crate::connectors`] and use the [`Checker`] to report with positions. Then across files:
//! duplicate names and the daily API budget of each connection.

mod shape;

use crate::connectors;
use crate::diagnostic::{Diagnostic, Pos, Severity, did_you_mean};
use crate::env;
use crate::load::{self, FileKind, LoadError, SourceFile};
use crate::model::{
    Action, ActionRef, Connection, ConnectionKind, ConnectionsFile, Duration, Flow, Source, Trigger,
};
use crate::schedule::{self, MIN_INTERVAL};
use crate::schema;
use crate::structure;
use crate::yaml::{Node, Step};
use indexmap::IndexMap;
use rivulet_mapping::{Condition, FieldSpec, FieldType, Mapping};
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
    /// Its compiled `when:`, when it has one and it compiled.
    pub when: Option<Condition>,
    /// Each action's compiled `when:`, by index (`None`: none, or it did not compile).
    pub action_when: Vec<Option<Condition>>,
    /// Search calls per day its trigger costs on its own, for triggers.
    pub calls_per_day: Option<u64>,
}

impl CheckedFlow {
    /// The folder relative paths in the flow start from.
    pub fn base_dir(&self) -> PathBuf {
        load::base_dir(&self.file)
    }
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
    let mut flows: Vec<(CheckedFlow, Pos)> = Vec::new();

    // Connections first: flows are checked against them.
    for file in files.iter().filter(|f| f.kind() == FileKind::Connections) {
        let Some(node) = parse_structure(file, schema::connections_schema(), &mut v.diagnostics)
        else {
            continue;
        };
        let Some(parsed) = typed::<ConnectionsFile>(&file.path, &node, &mut v.diagnostics) else {
            continue;
        };
        for (name, connection) in parsed.connections {
            let base = vec![Step::Key("connections".into()), Step::Key(name.clone())];
            let pos = node.locate(&base);
            let mut c = Checker::new(file, &node, options, &v.connections, &mut v.diagnostics);
            check_connection(&mut c.scoped(&base), &name, &connection);
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

    for file in files.iter().filter(|f| f.kind() == FileKind::Flow) {
        let Some(node) = parse_structure(file, schema::flow_schema(), &mut v.diagnostics) else {
            continue;
        };
        if let Some(flow) = typed::<Flow>(&file.path, &node, &mut v.diagnostics) {
            let mut c = Checker::new(file, &node, options, &v.connections, &mut v.diagnostics);
            let checked = check_flow(&mut c, flow);
            flows.push((checked, node.locate(&[Step::Key("name".into())])));
        }
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

    let checked: Vec<&CheckedFlow> = flows.iter().map(|(f, _)| f).collect();
    connectors::hubspot::check_daily_budgets(&checked, &v.connections, &mut v.diagnostics);

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
pub(crate) fn parse_structure(
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

/// The typed model of a structurally sound tree.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    file: &Path,
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
                file,
                pos,
                err.into_inner().to_string(),
            ));
            None
        }
    }
}

/// Reports problems of one file with positions taken from its tree, relative to a block (the
/// `base` path: `actions[0].hubspot`, `connections.crm.hubspot`). Connector rules get one
/// scoped to their own block and name keys relative to it.
pub struct Checker<'a> {
    file: &'a SourceFile,
    node: &'a Node,
    options: &'a Options,
    connections: &'a IndexMap<String, CheckedConnection>,
    out: &'a mut Vec<Diagnostic>,
    base: Vec<Step>,
}

impl<'a> Checker<'a> {
    fn new(
        file: &'a SourceFile,
        node: &'a Node,
        options: &'a Options,
        connections: &'a IndexMap<String, CheckedConnection>,
        out: &'a mut Vec<Diagnostic>,
    ) -> Checker<'a> {
        Checker {
            file,
            node,
            options,
            connections,
            out,
            base: Vec::new(),
        }
    }

    /// A checker for the block at `steps` below this one.
    pub fn scoped(&mut self, steps: &[Step]) -> Checker<'_> {
        Checker {
            file: self.file,
            node: self.node,
            options: self.options,
            connections: self.connections,
            out: self.out,
            base: self.base.iter().chain(steps).cloned().collect(),
        }
    }

    /// A checker for the block at the key path `keys` below this one.
    pub fn block(&mut self, keys: &[&str]) -> Checker<'_> {
        self.scoped(&key_steps(keys))
    }

    /// The file being checked.
    pub fn file(&self) -> &Path {
        &self.file.path
    }

    /// The folder relative paths in this file start from.
    pub fn base_dir(&self) -> PathBuf {
        load::base_dir(&self.file.path)
    }

    /// The full path of `keys` below this block.
    fn path(&self, keys: &[&str]) -> Vec<Step> {
        self.base.iter().cloned().chain(key_steps(keys)).collect()
    }

    /// Where the key `keys` (below this block) is; the block itself for `&[]`.
    pub fn key_pos(&self, keys: &[&str]) -> Pos {
        self.node.locate(&self.path(keys))
    }

    /// Where the value of `keys` is (its key when there is no value).
    pub fn value_pos(&self, keys: &[&str]) -> Pos {
        let path = self.path(keys);
        self.node
            .at(&path)
            .map_or_else(|| self.node.locate(&path), |n| n.pos)
    }

    /// An error; returns it to add a hint.
    pub fn error(
        &mut self,
        code: &'static str,
        pos: Pos,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::error(code, &self.file.path, pos, message);
        self.push(d)
    }

    /// A warning; returns it to add a hint.
    pub fn warning(
        &mut self,
        code: &'static str,
        pos: Pos,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::warning(code, &self.file.path, pos, message);
        self.push(d)
    }

    /// Something the flows need only when they run (a variable, a secret file): a warning, or an
    /// error under `--strict`, since CI may validate without the production environment.
    pub fn missing_at_runtime(
        &mut self,
        code: &'static str,
        pos: Pos,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = if self.options.strict {
            Diagnostic::error(code, &self.file.path, pos, message)
        } else {
            Diagnostic::warning(code, &self.file.path, pos, message)
        };
        self.push(d)
    }

    fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.out.push(d);
        self.out.last_mut().expect("just pushed")
    }

    /// `name` is a connection of `kind`.
    pub fn connection_ref(&mut self, key: &str, name: &str, kind: ConnectionKind) {
        let pos = self.value_pos(&[key]);
        let connections = self.connections;
        match connections.get(name) {
            None => {
                let hint = did_you_mean(name, connections.keys().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        if connections.is_empty() {
                            "no connections are defined; add a connections.yaml beside the flows"
                                .into()
                        } else {
                            format!(
                                "defined connections: {}",
                                connections.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        }
                    });
                self.error(
                    "unknown_connection",
                    pos,
                    format!("there is no connection named `{name}`"),
                )
                .hint = Some(hint);
            }
            Some(found) => {
                let actual = found.connection.kind();
                if actual != kind {
                    self.error(
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

    /// The JSONPath at `key` compiles.
    pub fn json_path(&mut self, keys: &[&str], expr: &str) {
        let mut fields = IndexMap::new();
        fields.insert("path".to_string(), FieldSpec::path(expr, FieldType::String));
        if let Err(errors) = Mapping::compile(&fields) {
            for e in errors {
                let pos = self.value_pos(keys);
                self.error("invalid_path", pos, e.message).hint = e.hint;
            }
        }
    }

    /// The template at `key` compiles.
    pub fn template(&mut self, key: &str, text: &str) {
        let mut fields = IndexMap::new();
        fields.insert(key.to_string(), FieldSpec::template(text));
        if let Err(errors) = Mapping::compile(&fields) {
            for e in errors {
                let pos = self.value_pos(&[key]);
                self.error("invalid_template", pos, format!("`{key}`: {}", e.message))
                    .hint = e.hint;
            }
        }
    }

    /// Secrets come from the environment only: a literal here would end up in version control.
    /// `what` names the setting; `hint` says how to write it instead.
    pub fn secret(&mut self, keys: &[&str], what: &str, hint: String, value: &str) {
        if env::is_single_reference(value) {
            return;
        }
        let pos = self.value_pos(keys);
        // Never echo the value, not even in a snippet: it may be a real secret pasted by mistake.
        let d = Diagnostic::error(
            "literal_secret",
            &self.file.path,
            pos,
            format!("`{what}` must come from the environment, not be written in the file"),
        )
        .with_hint(hint)
        .redacted();
        self.push(d);
    }

    /// An http(s) URL (or one only known once `${VAR}`s are read).
    pub fn url(&mut self, keys: &[&str], url: &str) {
        if url.contains("${") {
            return; // Known only when the connection is built.
        }
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.len() <= "https://".len()
        {
            let pos = self.value_pos(keys);
            self.error("invalid_url", pos, format!("`{url}` is not an http(s) URL"));
        }
    }

    /// A duration within `[min, max]`; `why` says what the bound protects.
    pub fn duration_within(
        &mut self,
        keys: &[&str],
        value: Duration,
        min: Duration,
        max: Duration,
    ) {
        let key = keys.last().copied().unwrap_or("duration");
        if value < min {
            let pos = self.value_pos(keys);
            self.error(
                "out_of_range",
                pos,
                format!("`{key}: {value}` is too short; the shortest is {min}"),
            );
        } else if value > max {
            let pos = self.value_pos(keys);
            self.error(
                "out_of_range",
                pos,
                format!("`{key}: {value}` is too long; the longest is {max}"),
            );
        }
    }

    /// A connection string's `${VAR}`s are well formed and set (or have defaults).
    pub fn env_string(&mut self, keys: &[&str], text: &str, connection: &str) {
        match env::references(text) {
            Err(e) => {
                let pos = self.value_pos(keys);
                self.error("invalid_interpolation", pos, e.to_string()).hint =
                    Some("write `${NAME}` or `${NAME:-default}`; `$${` for a literal `${`".into());
            }
            Ok(refs) => {
                let is_set = self.options.env_is_set;
                for var in refs
                    .into_iter()
                    .filter(|r| r.default.is_none() && !is_set(&r.name))
                {
                    let pos = self.value_pos(keys);
                    self.missing_at_runtime(
                        "unset_env",
                        pos,
                        format!("environment variable `{}` is not set", var.name),
                    )
                    .hint = Some(format!(
                        "connection `{connection}` needs it when the flows run"
                    ));
                }
            }
        }
    }

    /// Flow files are not interpolated (they are the same wherever they run): a `${VAR}` in a
    /// flow setting would be taken literally, so it is refused.
    pub fn no_interpolation(&mut self, keys: &[&str], text: &str) {
        if text.contains("${") {
            let pos = self.value_pos(keys);
            let key = keys.last().copied().unwrap_or("value");
            self.error(
                "interpolation_in_flow",
                pos,
                format!("`{key}` contains `${{…}}`, but flow files are not interpolated: it would be taken literally"),
            )
            .hint = Some("write the path itself; environment variables belong in connections.yaml".into());
        }
    }

    /// The text of the source file (for positions inside strings).
    fn text(&self) -> &str {
        &self.file.text
    }

    /// The tree node at `keys` below this block.
    fn node_at(&self, keys: &[&str]) -> Option<&Node> {
        self.node.at(&self.path(keys))
    }
}

fn key_steps(keys: &[&str]) -> Vec<Step> {
    keys.iter().map(|k| Step::Key((*k).to_string())).collect()
}

fn check_connection(c: &mut Checker<'_>, name: &str, connection: &Connection) {
    match connection {
        Connection::Hubspot(hs) => {
            connectors::hubspot::check_connection(&mut c.block(&["hubspot"]), name, hs)
        }
        Connection::Http(http) => {
            connectors::http::check_connection(&mut c.block(&["http"]), name, http)
        }
    }
}

fn check_flow(c: &mut Checker<'_>, flow: Flow) -> CheckedFlow {
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
        let pos = c.value_pos(&["name"]);
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
    match (&flow.trigger, &flow.schedule, &flow.source) {
        (Some(_), Some(_), _) => {
            let pos = c.key_pos(&["schedule"]);
            c.error(
                "trigger_and_schedule",
                pos,
                "a flow has a `trigger` or a `schedule`, not both",
            )
            .hint = Some("a trigger polls on its own `poll_every`; remove `schedule`".into());
        }
        (Some(_), None, Some(_)) => {
            let pos = c.key_pos(&["source"]);
            c.error("trigger_and_source", pos, "a triggered flow gets its records from the trigger; `source` is for scheduled flows")
                .hint = Some("remove `source`, or replace `trigger` with a `schedule`".into());
        }
        (None, Some(_), None) => {
            let pos = c.key_pos(&["schedule"]);
            c.error(
                "schedule_without_source",
                pos,
                "a schedule needs a `source` to read from",
            )
            .hint = Some("add `source:` with `file`, `http` or `hubspot`".into());
        }
        (None, None, None) => {
            let pos = c.key_pos(&["name"]);
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

    let mut calls_per_day = None;
    if let Some(trigger) = &flow.trigger {
        match trigger {
            Trigger::Hubspot(t) => {
                connectors::hubspot::check_trigger(&mut c.block(&["trigger", "hubspot"]), t)
            }
        }
        if trigger.poll_every() >= MIN_INTERVAL {
            calls_per_day = Some(calls_per_day_for(trigger.poll_every()));
        }
    }

    match schedule::timing(flow.schedule.as_ref()) {
        Ok(schedule::Timing::Cron(cron)) if !schedule::fires(&cron) => {
            let pos = c.value_pos(&["schedule", "cron"]);
            c.warning(
                "cron_never_fires",
                pos,
                "this cron expression never fires (no date matches it)",
            )
            .hint =
                Some("check the day of month against the month, e.g. February has no 30th".into());
        }
        Ok(_) => {}
        Err(err) => {
            let (code, pos) = match &err {
                schedule::ScheduleError::Cron(_) => {
                    ("invalid_cron", c.value_pos(&["schedule", "cron"]))
                }
                schedule::ScheduleError::TooShort(_) => {
                    ("invalid_schedule", c.value_pos(&["schedule", "every"]))
                }
                _ => ("invalid_schedule", c.key_pos(&["schedule"])),
            };
            c.error(code, pos, err.to_string());
        }
    }

    if let Some(source) = &flow.source {
        match source {
            Source::File(s) => connectors::file::check_source(&mut c.block(&["source", "file"]), s),
            Source::Http(s) => connectors::http::check_source(&mut c.block(&["source", "http"]), s),
            Source::Hubspot(s) => {
                connectors::hubspot::check_source(&mut c.block(&["source", "hubspot"]), s)
            }
        }
    }

    let mapping = check_mapping(c, &flow);

    // `when:` conditions compile like the mapping, at validate time, and read only what the
    // records have (as the mapping's reads are checked).
    let mut condition_reads = Vec::new();
    let when = flow
        .when
        .as_deref()
        .and_then(|when| check_condition(c, &[], when));
    if let Some(condition) = &when {
        condition_reads.extend(shape::condition_reads(
            "when",
            vec![Step::Key("when".into())],
            condition,
        ));
    }
    let mut action_when = Vec::with_capacity(flow.actions.len());
    for (i, action) in flow.actions.iter().enumerate() {
        let condition = action.when().and_then(|when| {
            let mut at = c.scoped(&[Step::Key("actions".into()), Step::Index(i)]);
            check_condition(&mut at, &[action.kind()], when)
        });
        if let Some(condition) = &condition {
            condition_reads.extend(shape::condition_reads(
                &format!("action {i} `when`"),
                vec![
                    Step::Key("actions".into()),
                    Step::Index(i),
                    Step::Key(action.kind().into()),
                    Step::Key("when".into()),
                ],
                condition,
            ));
        }
        action_when.push(condition);
    }
    shape::check_flow(c, &flow, mapping.as_ref(), condition_reads);

    for (i, action) in flow.actions.iter().enumerate() {
        let mut at = c.scoped(&[Step::Key("actions".into()), Step::Index(i)]);
        let backoff = action.backoff();
        let mut b = at.block(&[action.kind(), "backoff"]);
        b.duration_within(
            &["initial"],
            backoff.initial,
            Duration::from_millis(100),
            Duration::from_secs(86_400),
        );
        b.duration_within(
            &["max"],
            backoff.max,
            backoff.initial,
            Duration::from_secs(86_400),
        );
        check_links(&mut at.block(&[action.kind()]), &flow, i);
        match action {
            Action::Hubspot(a) => {
                connectors::hubspot::check_action(&mut at.block(&["hubspot"]), &flow, i, a)
            }
            Action::File(a) => connectors::file::check_sink(&mut at.block(&["file"]), a),
            Action::Http(a) => connectors::http::check_sink(&mut at.block(&["http"]), a),
        }
    }

    CheckedFlow {
        file: c.file().to_path_buf(),
        flow,
        mapping,
        when,
        action_when,
        calls_per_day,
    }
}

/// Compiles every template and path of the mapping, pointing into the YAML on failure.
fn check_mapping(c: &mut Checker<'_>, flow: &Flow) -> Option<Mapping> {
    check_mapping_spec(c, &flow.mapping)
}

/// Compiles the field specs at the key `mapping` of the checker's block (the flow's mapping,
/// or one nested in an action), pointing into the YAML on failure.
pub(crate) fn check_mapping_spec(
    c: &mut Checker<'_>,
    spec: &crate::model::MappingSpec,
) -> Option<Mapping> {
    match Mapping::compile(spec) {
        Ok(m) => Some(m),
        Err(errors) => {
            for e in errors {
                let field = e.field.as_str();
                let pos = match c.node_at(&["mapping", field]) {
                    Some(field_node) if field_node.as_str().is_some() => {
                        offset_pos(c.text(), field_node, e.offset)
                    }
                    Some(_) => match c.node_at(&["mapping", field, e.part]) {
                        Some(part) if part.as_str().is_some() => {
                            offset_pos(c.text(), part, e.offset)
                        }
                        Some(part) => part.pos,
                        None => c.key_pos(&["mapping", field]),
                    },
                    None => c.key_pos(&["mapping", field]),
                };
                c.error(
                    "invalid_mapping",
                    pos,
                    format!("mapping `{}`: {}", e.field, e.message),
                )
                .hint = e.hint;
            }
            None
        }
    }
}

/// Compiles the condition at `keys` + `when` of the checker's block, pointing into the YAML on
/// failure; the compiled condition when it compiles.
pub(crate) fn check_condition(
    c: &mut Checker<'_>,
    keys: &[&str],
    text: &str,
) -> Option<rivulet_mapping::Condition> {
    match rivulet_mapping::Condition::compile(text) {
        Ok(condition) => Some(condition),
        Err(errors) => {
            let mut at: Vec<&str> = keys.to_vec();
            at.push("when");
            for e in errors {
                let pos = match c.node_at(&at) {
                    Some(node) if node.as_str().is_some() => offset_pos(c.text(), node, e.offset),
                    Some(node) => node.pos,
                    None => c.key_pos(&at),
                };
                c.error("invalid_condition", pos, format!("`when`: {}", e.message))
                    .hint = e.hint;
            }
            None
        }
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

/// An action's `name` and its references to others (`prerequisites`, `associate_with`): a
/// well-formed name used once; references that name an earlier action of the flow. What a
/// connector asks more of a reference (an association needs a HubSpot record) is its own rule.
fn check_links(c: &mut Checker<'_>, flow: &Flow, index: usize) {
    let action = &flow.actions[index];
    if let Some(name) = action.name() {
        let pos = c.value_pos(&["name"]);
        let well_formed = !name.is_empty()
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
        if !well_formed {
            c.error(
                "invalid_name",
                pos,
                format!("action name `{name}` is not allowed"),
            )
            .hint = Some("use letters, digits, `_` and `-`, e.g. `deal`".into());
        } else if let Some(first) = flow.actions[..index]
            .iter()
            .position(|a| a.name() == Some(name))
        {
            c.error(
                "duplicate_action_name",
                pos,
                format!("action name `{name}` is already used by action {first}"),
            )
            .hint = Some("give each action its own name".into());
        }
    }
    let names: Vec<&str> = flow.actions.iter().filter_map(|a| a.name()).collect();
    for (key, refs) in [
        ("prerequisites", action.prerequisites().unwrap_or_default()),
        ("associate_with", action.associate_with()),
    ] {
        for (k, r) in refs.iter().enumerate() {
            let mut at = c.scoped(&[Step::Key(key.into()), Step::Index(k)]);
            let pos = at.value_pos(&[]);
            let Some(target) = flow.action_index(r) else {
                let (message, hint) = match r {
                    ActionRef::Index(i) => (
                        format!(
                            "`{key}` names action {i}, but the flow has {} actions (numbered from 0)",
                            flow.actions.len()
                        ),
                        "refer to an earlier action by its position or its `name`".to_string(),
                    ),
                    ActionRef::Name(n) => (
                        format!("`{key}` names `{n}`, which is no action of this flow"),
                        did_you_mean(n, names.iter().copied())
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| {
                                format!("give the action `name: {n}`, or refer to it by its position (0 is the first)")
                            }),
                    ),
                };
                at.error("unknown_action", pos, message).hint = Some(hint);
                continue;
            };
            if target == index {
                at.error(
                    "invalid_reference",
                    pos,
                    format!("`{key}` names this action itself"),
                )
                .hint = Some("name an earlier action".into());
            } else if target > index {
                at.error(
                    "action_order",
                    pos,
                    format!(
                        "`{key}` names {}, which runs after this action (action {index}): actions run in order",
                        flow.action_label(target)
                    ),
                )
                .hint = Some(format!("move {} before this action", flow.action_label(target)));
            }
        }
    }
}
