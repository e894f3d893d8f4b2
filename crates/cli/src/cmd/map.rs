//! `rivulet map`: the mapped output of a flow for some input records, for quick iteration on a
//! mapping.
//!
//! ```sh
//! rivulet map new-contacts-to-file --input contacts.jsonl     # a flow name, found in flows/
//! rivulet map flows/companies-from-erp.yaml --mode native --pretty < records.jsonl
//! ```
//!
//! FLOW is a flow file, or the `name:` of a flow in the PATHS after it (default `flows`). The flow is
//! validated first (with the connections file beside it); an invalid flow prints its
//! diagnostics and exits 1.
//!
//! `--input FILE` holds JSON Lines, a JSON array of records or a single JSON object; without
//! `--input` (or with `-`) records are read as JSON Lines from stdin, one at a time, so the
//! output of each line appears as soon as it is typed. Each record is mapped with a context whose
//! run id is `map` and whose `now` is `--now` (default: the current time).
//!
//! Output: one JSON object per record on stdout (`--pretty`: indented). A record that fails to
//! map prints `record N: field x: … (from $.y)` on stderr, one line per field error, and nothing
//! on stdout; a line that is not JSON prints `record N (line L): invalid JSON: …`.
//!
//! Exit codes: 0 every record mapped, 1 some record failed (or the flow is invalid), 2 usage or
//! I/O error (unknown flow, unreadable input).

use crate::render::{self, Format};
use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use rivulet_mapping::{Context, Mapping, OutputMode};
use rivulet_spec::diagnostic::{Diagnostic, Pos, did_you_mean};
use rivulet_spec::validate::{Options, Validation, validate_paths};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The largest `--input` file read.
const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// How mapped values are written (`--mode`, and `mode:` in test files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// HubSpot's wire format: every value a string, dates as epoch milliseconds.
    Wire,
    /// JSON types for file and HTTP actions: numbers, bools, ISO dates, lists.
    Native,
}

impl From<Mode> for OutputMode {
    fn from(mode: Mode) -> OutputMode {
        match mode {
            Mode::Wire => OutputMode::Wire,
            Mode::Native => OutputMode::Native,
        }
    }
}

/// Arguments of `rivulet map`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet map new-contacts-to-file --input contacts.jsonl\n  echo '{\"email\":\"A@B.EXAMPLE\"}' | rivulet map customers-to-contacts flows/ --pretty\n\nExit codes: 0 every record mapped, 1 some record failed (or the flow is invalid), 2 usage or I/O error."
)]
pub struct Args {
    /// A flow file, or the name of a flow in PATHS.
    flow: String,
    /// Flow files or directories to look a flow name up in (as for `run` and `validate`).
    #[arg(default_value = "flows")]
    paths: Vec<PathBuf>,
    /// Records to map: JSON Lines, a JSON array or one JSON object (`-`: JSON Lines on stdin,
    /// the default).
    #[arg(long, short, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Where to look a flow up by name (kept for scripts written before PATHS; prefer PATHS).
    #[arg(long, value_name = "DIR", hide = true)]
    flows: Option<PathBuf>,
    /// Output format: `wire` (HubSpot strings) or `native` (JSON types). Default: `wire` when
    /// the flow has a `hubspot` action, else `native`.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// The time templates see as `now` and `run.started_at` (RFC 3339; default: now).
    #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
    now: Option<DateTime<Utc>>,
    /// Indent the output.
    #[arg(long)]
    pretty: bool,
}

/// Parses an RFC 3339 instant.
pub(crate) fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 instant such as 2026-01-01T00:00:00Z ({e})"))
}

/// A flow ready to map records.
pub(crate) struct LoadedFlow {
    /// The flow's name.
    pub name: String,
    /// Its compiled mapping.
    pub mapping: Mapping,
    /// Wire when the flow writes to HubSpot, else native.
    pub default_mode: OutputMode,
    /// The flow's `when:`, when it has one: records that do not meet it are filtered.
    pub when: Option<rivulet_mapping::Condition>,
}

/// Validates the flow file `path` (with the connections beside it) and compiles its mapping;
/// the validation when it has errors (or `path` holds no flow).
pub(crate) fn load_flow(path: &Path) -> anyhow::Result<Result<LoadedFlow, Box<Validation>>> {
    let mut validation = validate_paths(&[path.to_path_buf()], &Options::default())?;
    if validation.is_valid(false) {
        let checked = validation
            .flows
            .iter()
            .find(|f| f.file == path)
            .or(validation.flows.first());
        if let Some(checked) = checked
            && let Some(mapping) = &checked.mapping
        {
            return Ok(Ok(LoadedFlow {
                name: checked.flow.name.clone(),
                mapping: mapping.clone(),
                when: checked.when.clone(),
                default_mode: if checked
                    .flow
                    .actions
                    .iter()
                    .any(|a| matches!(a, rivulet_spec::model::Action::Hubspot(_)))
                {
                    OutputMode::Wire
                } else {
                    OutputMode::Native
                },
            }));
        }
        validation.diagnostics.push(Diagnostic::error(
            "not_a_flow",
            path,
            Pos::default(),
            "this file holds no flow",
        ));
    }
    Ok(Err(Box::new(validation)))
}

/// The flow file FLOW stands for: a path, or a flow name in `paths`.
fn resolve(flow: &str, paths: &[PathBuf]) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(flow);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    let looks_like_path =
        flow.contains(['/', '\\']) || flow.ends_with(".yaml") || flow.ends_with(".yml");
    if as_path.is_dir() {
        bail!(
            "{flow}: is a directory; give a flow file, or a flow name and the directory after it"
        );
    }
    if looks_like_path {
        bail!("{flow}: no such file");
    }
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if !paths.iter().any(|p| p.exists()) {
        bail!(
            "no flow file `{flow}`, and no {shown} to look the name up in (name the flows directory after the flow: `rivulet map {flow} DIR`)"
        );
    }
    let validation = validate_paths(paths, &Options::default())?;
    if let Some(found) = validation.flows.iter().find(|f| f.flow.name == flow) {
        return Ok(found.file.clone());
    }
    let names: Vec<&str> = validation
        .flows
        .iter()
        .map(|f| f.flow.name.as_str())
        .collect();
    let mut message = format!("no flow named `{flow}` in {shown}");
    if let Some(near) = did_you_mean(flow, names.iter().copied()) {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    } else if !names.is_empty() {
        message.push_str(&format!("; flows there: {}", names.join(", ")));
    }
    bail!(message)
}

/// Where records come from.
enum Records {
    /// All records of a file, already parsed (each with its line, for messages).
    Parsed(Vec<(usize, Result<Value, String>)>),
    /// JSON Lines on stdin, read as they come.
    Stdin,
}

/// Splits the content of an input file into records.
fn parse_input(text: &str) -> Vec<(usize, Result<Value, String>)> {
    let trimmed = text.trim_start_matches('\u{feff}');
    // One JSON document (an array of records, or one record) spanning any number of lines.
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return match value {
            Value::Array(items) => items.into_iter().map(|v| (0, Ok(v))).collect(),
            other => vec![(0, Ok(other))],
        };
    }
    // Otherwise JSON Lines: one record per non-blank line.
    trimmed
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                i + 1,
                serde_json::from_str::<Value>(l).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = match &args.flows {
        Some(dir) => vec![dir.clone()],
        None => args.paths.clone(),
    };
    let path = resolve(&args.flow, &paths)?;
    let flow = match load_flow(&path)? {
        Ok(flow) => flow,
        Err(validation) => {
            let mut stderr = std::io::stderr().lock();
            render::validation(&mut stderr, &validation, Format::Human, false)?;
            eprintln!("rivulet: {}: the flow is invalid", path.display());
            return Ok(ExitCode::from(1));
        }
    };
    let mode = args.mode.map_or(flow.default_mode, OutputMode::from);
    let ctx = Context::new(&flow.name, "map", args.now.unwrap_or_else(Utc::now));

    let records = match args.input.as_deref() {
        None => Records::Stdin,
        Some(p) if p == Path::new("-") => Records::Stdin,
        Some(p) => {
            let bytes = rivulet_spec::load::read_regular_file(p, MAX_INPUT_BYTES)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", p.display()))?;
            Records::Parsed(parse_input(&text))
        }
    };

    let mut out = Output {
        stdout: std::io::stdout().lock(),
        when: flow.when.clone(),
        pretty: args.pretty,
        failed: 0,
        closed: false,
    };
    let mut number = 0usize;
    match records {
        Records::Parsed(records) => {
            for (line, record) in records {
                number += 1;
                out.record(&flow.mapping, &ctx, mode, number, line, record)?;
                if out.closed {
                    break;
                }
            }
        }
        Records::Stdin => {
            let stdin = std::io::stdin().lock();
            for (i, line) in stdin.lines().enumerate() {
                let line = line.context("cannot read stdin")?;
                if line.trim().is_empty() {
                    continue;
                }
                number += 1;
                let record = serde_json::from_str::<Value>(&line).map_err(|e| e.to_string());
                out.record(&flow.mapping, &ctx, mode, number, i + 1, record)?;
                if out.closed {
                    break;
                }
            }
        }
    }
    Ok(if out.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Output<W: Write> {
    stdout: W,
    /// The flow's `when:`: a record it keeps out is said so on stderr, and not mapped.
    when: Option<rivulet_mapping::Condition>,
    pretty: bool,
    failed: usize,
    /// stdout was closed (`| head`): stop quietly.
    closed: bool,
}

impl<W: Write> Output<W> {
    fn record(
        &mut self,
        mapping: &Mapping,
        ctx: &Context,
        mode: OutputMode,
        number: usize,
        line: usize,
        record: Result<Value, String>,
    ) -> anyhow::Result<()> {
        let at = if line > 0 {
            format!("record {number} (line {line})")
        } else {
            format!("record {number}")
        };
        let record = match record {
            Ok(Value::Object(map)) => Value::Object(map),
            Ok(other) => {
                self.failed += 1;
                eprintln!("{at}: not a JSON object: {other}");
                return Ok(());
            }
            Err(e) => {
                self.failed += 1;
                eprintln!("{at}: invalid JSON: {e}");
                return Ok(());
            }
        };
        if let Some(when) = &self.when {
            match when.eval(&record, ctx) {
                Ok(true) => {}
                Ok(false) => {
                    eprintln!("{at}: filtered by the flow's `when:` (not mapped, never sent)");
                    return Ok(());
                }
                Err(e) => {
                    self.failed += 1;
                    eprintln!("{at}: {e}");
                    return Ok(());
                }
            }
        }
        match mapping.apply(&record, ctx, mode) {
            Ok(fields) => {
                let object: serde_json::Map<String, Value> = fields.into_iter().collect();
                let text = if self.pretty {
                    serde_json::to_string_pretty(&object)?
                } else {
                    serde_json::to_string(&object)?
                };
                let written = writeln!(self.stdout, "{text}").and_then(|()| self.stdout.flush());
                match written {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.closed = true,
                    Err(e) => return Err(e).context("cannot write to stdout"),
                }
            }
            Err(errors) => {
                self.failed += 1;
                for e in errors {
                    eprintln!("record {number}: {e}");
                }
            }
        }
        Ok(())
    }
}
