//! Diagnostics: what validation says about a file, with where and why.
//!
//! A diagnostic is data, not text: the CLI renders it for humans (with the source line and a
//! caret), as JSON for tools, or as GitHub annotations. Codes are stable so tools can match them.

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The flow will not run.
    Error,
    /// The flow runs, but probably not as intended (an error under `--strict` for some codes).
    Warning,
    /// Useful facts, such as the API calls a trigger costs per day.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// A 1-based line and column in a source file (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct Pos {
    /// Line, from 1; 0 when the position is unknown.
    pub line: u32,
    /// Column, from 1; 0 when the position is unknown.
    pub column: u32,
}

impl Pos {
    /// A position at `line`, `column` (both 1-based).
    pub const fn new(line: u32, column: u32) -> Self {
        Pos { line, column }
    }

    /// Whether this position points somewhere real.
    pub const fn is_known(self) -> bool {
        self.line > 0
    }
}

/// One finding of validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// A stable, machine-matchable identifier such as `unknown_key`.
    pub code: &'static str,
    /// The file it is about.
    pub file: PathBuf,
    /// Where in the file (line 0 = the file as a whole).
    #[serde(flatten)]
    pub pos: Pos,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The source text at this position may be a secret: renderers must not show it.
    #[serde(skip)]
    pub redact: bool,
}

impl Diagnostic {
    /// An error at `pos` in `file`.
    pub fn error(
        code: &'static str,
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            file: file.to_path_buf(),
            pos,
            message: message.into(),
            hint: None,
            redact: false,
        }
    }

    /// A warning at `pos` in `file`.
    pub fn warning(
        code: &'static str,
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, pos, message)
        }
    }

    /// An informational note at `pos` in `file`.
    pub fn info(
        code: &'static str,
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Info,
            ..Diagnostic::error(code, file, pos, message)
        }
    }

    /// Marks the source at this position as secret (see [`Diagnostic::redact`]).
    pub fn redacted(mut self) -> Diagnostic {
        self.redact = true;
        self
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.pos.is_known() {
            write!(f, ":{}:{}", self.pos.line, self.pos.column)?;
        }
        write!(f, ": {}: {}", self.severity, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                c,
                strsim::jaro_winkler(&word_lower, &c.to_ascii_lowercase()),
            )
        })
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["poll_every", "properties", "connection", "start_from"];
        assert_eq!(did_you_mean("pol_every", keys), Some("poll_every"));
        assert_eq!(did_you_mean("Connection", keys), Some("connection"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
