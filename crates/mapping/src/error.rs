//! Compile-time and per-record errors.

use std::fmt;

/// A field spec that cannot be compiled (found at load time, before any record is read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CompileError {
    /// The target field name.
    pub field: String,
    /// Which part of the spec is wrong: `template`, `path`, `value`, `default`, `map`,
    /// `options`, `truncate` or `spec` (the spec as a whole).
    pub part: &'static str,
    /// What is wrong.
    pub message: String,
    /// A byte offset inside the template or path string, when known.
    pub offset: Option<usize>,
    /// A suggestion, e.g. `did you mean "record.email"?`.
    pub hint: Option<String>,
}

impl CompileError {
    pub(crate) fn new(field: &str, part: &'static str, message: impl Into<String>) -> Self {
        CompileError {
            field: field.to_owned(),
            part,
            message: message.into(),
            offset: None,
            hint: None,
        }
    }

    pub(crate) fn at(mut self, offset: Option<usize>) -> Self {
        self.offset = offset;
        self
    }

    pub(crate) fn hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}: invalid {}", self.field, self.part)?;
        if let Some(o) = self.offset {
            write!(f, " at byte {o}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// One field of one record that could not be mapped. Fails that record only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The target field name.
    pub field: String,
    /// What is wrong, e.g. `"abc" is not a number`.
    pub message: String,
    /// The path or template the value came from.
    pub source: Option<String>,
}

// Written by hand: thiserror would take the `source` field for the error's cause.
impl std::error::Error for FieldError {}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}: {}", self.field, self.message)?;
        if let Some(s) = &self.source {
            write!(f, " (from {s})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_display() {
        let e = FieldError {
            field: "numberofemployees".into(),
            message: "\"abc\" is not a number".into(),
            source: Some("$.employees".into()),
        };
        assert_eq!(
            e.to_string(),
            "field numberofemployees: \"abc\" is not a number (from $.employees)"
        );
    }

    #[test]
    fn compile_error_display() {
        let e = CompileError::new("domain", "template", "unknown helper \"lowercse\"")
            .at(Some(2))
            .hint(Some("did you mean \"lowercase\"?".into()));
        assert_eq!(
            e.to_string(),
            "field domain: invalid template at byte 2: unknown helper \"lowercse\" (did you mean \"lowercase\"?)"
        );
    }
}
