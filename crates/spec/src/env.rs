//! `${VAR}` and `${VAR:-default}` in connection strings.
//!
//! Only connection files are interpolated: flows stay the same wherever they run, and secrets
//! reach exactly one place. `$${` writes a literal `${`. Validation only asks *whether* a
//! variable is set; values are read when a connection is built, and a value containing a
//! newline is refused (it would let an environment variable smuggle extra HTTP headers).

use std::fmt;

/// A `${…}` reference found in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    /// The variable's name.
    pub name: String,
    /// The fallback after `:-`, if any.
    pub default: Option<String>,
    /// Byte offset of the `$` in the string.
    pub offset: usize,
}

/// What can go wrong with interpolation. Never carries a variable's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The `${…}` syntax is broken.
    #[error("{message}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// Byte offset in the string.
        offset: usize,
    },
    /// A referenced variable is not set and has no default.
    #[error("environment variable `{name}` is not set")]
    Unset {
        /// The variable.
        name: String,
    },
    /// A variable's value spans lines.
    #[error(
        "environment variable `{name}` contains a line break, which is not allowed in connection settings"
    )]
    Newline {
        /// The variable.
        name: String,
    },
}

/// Finds the `${…}` references in `text`, or the first syntax error.
pub fn references(text: &str) -> Result<Vec<VarRef>, EnvError> {
    let mut refs = Vec::new();
    walk(text, |piece| {
        if let Piece::Var(var) = piece {
            refs.push(var);
        }
    })?;
    Ok(refs)
}

/// Whether `text` is exactly one `${VAR}` reference with no default: the only acceptable way
/// to write a secret in a connections file.
pub fn is_single_reference(text: &str) -> bool {
    matches!(references(text).as_deref(), Ok([var]) if var.default.is_none() && var.offset == 0 && text.len() == var.name.len() + 3)
}

/// Replaces every reference using `lookup`.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    let mut error = None;
    walk(text, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Var(var) => match lookup(&var.name).or(var.default) {
            Some(value) if value.contains(['\n', '\r']) => {
                error.get_or_insert(EnvError::Newline { name: var.name });
            }
            Some(value) => out.push_str(&value),
            None => {
                error.get_or_insert(EnvError::Unset { name: var.name });
            }
        },
    })?;
    match error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// [`interpolate`] against the process environment.
pub fn interpolate_env(text: &str) -> Result<String, EnvError> {
    interpolate(text, |name| std::env::var(name).ok())
}

enum Piece<'a> {
    Text(&'a str),
    Var(VarRef),
}

fn walk<'a>(text: &'a str, mut each: impl FnMut(Piece<'a>)) -> Result<(), EnvError> {
    let mut rest = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && text[i..].starts_with("$${") {
            each(Piece::Text(&text[rest..i]));
            each(Piece::Text("${"));
            i += 3;
            rest = i;
            continue;
        }
        if bytes[i] == b'$' && text[i..].starts_with("${") {
            let Some(close) = text[i..].find('}') else {
                return Err(EnvError::Syntax {
                    message: "`${` is not closed by `}`".into(),
                    offset: i,
                });
            };
            let inner = &text[i + 2..i + close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default.to_string())),
                None => (inner, None),
            };
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(EnvError::Syntax {
                    message: format!("`{name}` is not a valid environment variable name"),
                    offset: i,
                });
            }
            each(Piece::Text(&text[rest..i]));
            each(Piece::Var(VarRef {
                name: name.to_string(),
                default,
                offset: i,
            }));
            i += close + 1;
            rest = i;
            continue;
        }
        i += 1;
    }
    each(Piece::Text(&text[rest..]));
    Ok(())
}

impl fmt::Display for VarRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("pat-123".into()),
            "EVIL" => Some("a\nX-Injected: 1".into()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_with_defaults_and_escapes() {
        assert_eq!(
            interpolate("Bearer ${TOKEN}", env).unwrap(),
            "Bearer pat-123"
        );
        assert_eq!(
            interpolate("${HOST:-localhost}:1", env).unwrap(),
            "localhost:1"
        );
        assert_eq!(interpolate("$${TOKEN}", env).unwrap(), "${TOKEN}");
        assert_eq!(interpolate("plain $ text", env).unwrap(), "plain $ text");
    }

    #[test]
    fn reports_unset_and_newlines_by_name_only() {
        assert_eq!(
            interpolate("${NOPE}", env),
            Err(EnvError::Unset {
                name: "NOPE".into()
            })
        );
        let err = interpolate("${EVIL}", env).unwrap_err();
        assert_eq!(
            err,
            EnvError::Newline {
                name: "EVIL".into()
            }
        );
        assert!(!err.to_string().contains("Injected"));
    }

    #[test]
    fn syntax_errors() {
        assert!(matches!(references("${A"), Err(EnvError::Syntax { .. })));
        assert!(matches!(references("${1A}"), Err(EnvError::Syntax { .. })));
        assert!(matches!(references("${}"), Err(EnvError::Syntax { .. })));
    }

    #[test]
    fn single_reference() {
        assert!(is_single_reference("${HUBSPOT_TOKEN}"));
        assert!(!is_single_reference("pat-na1-123"));
        assert!(!is_single_reference("${A:-literal}"));
        assert!(!is_single_reference("x${A}"));
    }
}
