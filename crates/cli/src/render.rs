//! Rendering diagnostics: for people (source line and caret, colour on a terminal unless
//! `NO_COLOR`), as JSON for tools, and as GitHub workflow annotations.

use rivulet_spec::diagnostic::{Diagnostic, Severity};
use rivulet_spec::load::FileKind;
use rivulet_spec::model::Trigger;
use rivulet_spec::validate::{Validation, thousands};
use serde_json::json;
use std::io::{IsTerminal, Write};

/// Output formats of commands that report diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Readable text with the offending source line.
    Human,
    /// One JSON document (see the README for its fields).
    Json,
    /// `::error file=…,line=…,col=…::message` lines for GitHub Actions.
    Github,
}

/// Version of the JSON output; bumped only on incompatible changes.
pub const JSON_VERSION: u32 = 1;

struct Style {
    on: bool,
}

impl Style {
    fn detect() -> Style {
        Style {
            on: std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Writes a validation in `format`.
pub fn validation(
    out: &mut impl Write,
    v: &Validation,
    format: Format,
    valid: bool,
) -> std::io::Result<()> {
    match format {
        Format::Human => human(out, v, valid),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &json_report(v, valid))?;
            writeln!(out)
        }
        Format::Github => {
            for d in &v.diagnostics {
                writeln!(out, "{}", github(d))?;
            }
            summary_line(out, v, &Style { on: false })
        }
    }
}

/// The JSON report (`version` 1): `valid`, `files`, `flows`, `diagnostics`, `summary`.
pub fn json_report(v: &Validation, valid: bool) -> serde_json::Value {
    json!({
        "version": JSON_VERSION,
        "valid": valid,
        "files": v.files.iter().map(|f| json!({
            "path": f.path,
            "kind": match f.kind() { FileKind::Flow => "flow", FileKind::Connections => "connections" },
        })).collect::<Vec<_>>(),
        "flows": v.flows.iter().map(|f| {
            let trigger = f.flow.trigger.as_ref().map(|t| match t {
                Trigger::Hubspot(t) => json!({
                    "connection": t.connection,
                    "object": t.object,
                    "on": t.on,
                    "poll_every": t.poll_every.to_string(),
                }),
            });
            json!({
                "name": f.flow.name,
                "file": f.file,
                "trigger": trigger,
                "api_calls_per_day": f.calls_per_day,
                "actions": f.flow.actions.len(),
            })
        }).collect::<Vec<_>>(),
        "diagnostics": v.diagnostics,
        "summary": {
            "errors": v.count(Severity::Error),
            "warnings": v.count(Severity::Warning),
        },
    })
}

fn github(d: &Diagnostic) -> String {
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "notice",
    };
    // CR and LF are the format's own escapes; any other control byte (ESC, BEL) is shown, not
    // passed to a log viewer that would act on it.
    let escape_data = |s: &str| {
        let s = s
            .replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        printable(&s).into_owned()
    };
    let escape_prop = |s: &str| escape_data(s).replace(':', "%3A").replace(',', "%2C");
    let mut message = d.message.clone();
    if let Some(hint) = &d.hint {
        message.push_str(&format!(" (hint: {hint})"));
    }
    let mut props = vec![format!(
        "file={}",
        escape_prop(&d.file.display().to_string())
    )];
    if d.pos.is_known() {
        props.push(format!("line={}", d.pos.line));
        props.push(format!("col={}", d.pos.column));
    }
    props.push(format!(
        "title={}",
        escape_prop(&format!("rivulet {}", d.code))
    ));
    format!("::{level} {}::{}", props.join(","), escape_data(&message))
}

fn human(out: &mut impl Write, v: &Validation, valid: bool) -> std::io::Result<()> {
    let style = Style::detect();
    for d in &v.diagnostics {
        diagnostic(out, d, v.source(&d.file), &style)?;
    }
    for f in v.flows.iter() {
        if let (Some(Trigger::Hubspot(t)), Some(calls)) = (&f.flow.trigger, f.calls_per_day) {
            writeln!(
                out,
                "{} {}: polls HubSpot {} every {} on `{}`: {} search calls/day",
                style.paint("2", "note:"),
                f.flow.name,
                match t.object {
                    rivulet_spec::model::TriggerObject::Company => "companies",
                    rivulet_spec::model::TriggerObject::Contact => "contacts",
                },
                t.poll_every,
                t.connection,
                thousands(calls),
            )?;
        }
    }
    summary_line(out, v, &style)?;
    if !valid && v.count(Severity::Error) == 0 {
        writeln!(out, "warnings are denied (--deny-warnings)")?;
    }
    Ok(())
}

fn summary_line(out: &mut impl Write, v: &Validation, style: &Style) -> std::io::Result<()> {
    let errors = v.count(Severity::Error);
    let warnings = v.count(Severity::Warning);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let text = format!(
        "checked {} ({}): {}, {}",
        plural(v.files.len(), "file"),
        plural(v.flows.len(), "flow"),
        plural(errors, "error"),
        plural(warnings, "warning"),
    );
    let code = if errors > 0 {
        "1;31"
    } else if warnings > 0 {
        "1;33"
    } else {
        "1;32"
    };
    writeln!(out, "{}", style.paint(code, &text))
}

/// Text from a file as it may be shown on a terminal: control characters (an ESC that would
/// start an escape sequence, a carriage return that would overwrite the line) are written as
/// `\u{1b}` instead of being sent raw. Tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn diagnostic(
    out: &mut impl Write,
    d: &Diagnostic,
    source: Option<&str>,
    style: &Style,
) -> std::io::Result<()> {
    let (label, color) = match d.severity {
        Severity::Error => ("error", "1;31"),
        Severity::Warning => ("warning", "1;33"),
        Severity::Info => ("note", "1;36"),
    };
    writeln!(
        out,
        "{}: {} {}",
        style.paint(color, label),
        style.paint("1", &printable(&d.message)),
        style.paint("2", &format!("[{}]", d.code))
    )?;
    if d.pos.is_known() {
        writeln!(
            out,
            "  {} {}:{}:{}",
            style.paint("34", "-->"),
            d.file.display(),
            d.pos.line,
            d.pos.column
        )?;
        if let Some(line) = source.and_then(|s| s.lines().nth(d.pos.line as usize - 1)) {
            let number = d.pos.line.to_string();
            let pad = " ".repeat(number.len());
            let col = d.pos.column.saturating_sub(1) as usize;
            let shown: String = if d.redact {
                line.chars().take(col).chain("********".chars()).collect()
            } else {
                line.chars().take(200).collect()
            };
            let shown = printable(&shown);
            writeln!(out, "  {pad} {}", style.paint("34", "|"))?;
            writeln!(
                out,
                "  {} {} {}",
                style.paint("34", &number),
                style.paint("34", "|"),
                shown
            )?;
            let width = if d.redact {
                8
            } else {
                line.chars()
                    .skip(col)
                    .take_while(|c| !c.is_whitespace() && *c != ':' && *c != ',')
                    .count()
                    .max(1)
            };
            let indent: String = line
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(
                out,
                "  {pad} {} {indent}{}",
                style.paint("34", "|"),
                style.paint(color, &"^".repeat(width))
            )?;
        }
    } else {
        writeln!(out, "  {} {}", style.paint("34", "-->"), d.file.display())?;
    }
    if let Some(hint) = &d.hint {
        writeln!(
            out,
            "  {} {}",
            style.paint("36", "= hint:"),
            printable(hint)
        )?;
    }
    writeln!(out)
}
