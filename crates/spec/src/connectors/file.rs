//! Files: CSV, JSON Lines and JSON as a scheduled source, and JSON Lines or CSV appended by an
//! action — their settings and rules.

use super::Checker;
use crate::model::Backoff;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Records from files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// File path or glob (`data/*.csv`), relative to the flow file.
    pub path: String,
    /// File format; by default taken from the extension (`.csv`, `.jsonl`/`.ndjson`, `.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// CSV field delimiter, one character (default `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// What to do with a file once all its records are done: `keep` (default; it is not read
    /// again unless it changes), `move` (to `move_to`) or `delete`.
    #[serde(default)]
    pub after_read: AfterRead,
    /// Folder to move read files to, for `after_read: move`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<String>,
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// A JSON array of objects.
    Json,
}

impl FileFormat {
    /// The format a path's extension implies, if any.
    pub fn from_path(path: &str) -> Option<FileFormat> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            Some(FileFormat::Csv)
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Some(FileFormat::Jsonl)
        } else if lower.ends_with(".json") {
            Some(FileFormat::Json)
        } else {
            None
        }
    }
}

/// What happens to a source file after it has been read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterRead {
    /// Leave it; it is remembered as read.
    #[default]
    Keep,
    /// Move it to `move_to`.
    Move,
    /// Delete it.
    Delete,
}

/// Append records to a file, one per line, never leaving a half-written line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSink {
    /// A name for this action, unique in the flow, by which later actions refer to it in
    /// `prerequisites`: letters, digits, `_` and `-` (e.g. `archive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub name: Option<String>,
    /// The actions that must have succeeded for a record before this one writes it: earlier
    /// actions of this flow, by `name` or 0-based position (e.g. `[contact]`). Without it an
    /// action needs every earlier action, so a record stops at its first failure; with it, only
    /// these, so a failure elsewhere does not hold it back (`[]`: no action). A record whose
    /// prerequisite failed fails this action too, its error naming the prerequisite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prerequisites: Option<Vec<crate::model::ActionRef>>,
    /// File to append to, relative to the flow file; folders are created.
    pub path: String,
    /// `jsonl` (default) or `csv`.
    #[serde(default)]
    pub format: SinkFormat,
    /// While the destination is unreachable or overloaded: how long to wait before sending
    /// the same records again (default: from 1s, doubling up to 5m).
    #[serde(default, skip_serializing_if = "Backoff::is_default")]
    pub backoff: Backoff,
    /// Only records for which this condition holds go through this action (the others skip
    /// it; that is no failure): a JSONPath predicate (`$.properties.email`,
    /// `$[?(@.amount > 100)]`: holds when it selects a value other than `null` or `false`) or a
    /// template rendering `true` or `false` (`{{eq record.status "active"}}`), over the source
    /// record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// The format of a file sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// CSV with a header row written when the file is new; columns in mapping order.
    Csv,
}

/// The rules of a `file` source.
pub fn check_source(c: &mut Checker<'_>, fs: &FileSource) {
    if fs.path.trim().is_empty() {
        let pos = c.value_pos(&["path"]);
        c.error("invalid_value", pos, "`path` is empty");
    }
    c.no_interpolation(&["path"], &fs.path);
    if fs.format.is_none() && FileFormat::from_path(&fs.path).is_none() {
        let pos = c.value_pos(&["path"]);
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
        let pos = c.value_pos(&["delimiter"]);
        c.error(
            "invalid_value",
            pos,
            format!("`delimiter` must be one character, not `{d}`"),
        );
    }
    match (fs.after_read, &fs.move_to) {
        (AfterRead::Move, None) => {
            let pos = c.key_pos(&["after_read"]);
            c.error(
                "missing_move_to",
                pos,
                "`after_read: move` needs `move_to`, the folder to move files to",
            );
        }
        (a, Some(_)) if a != AfterRead::Move => {
            let pos = c.key_pos(&["move_to"]);
            c.warning(
                "unused_key",
                pos,
                "`move_to` is only used with `after_read: move`",
            );
        }
        _ => {}
    }
    if let Some(to) = &fs.move_to {
        c.no_interpolation(&["move_to"], to);
    }
}

/// The rules of a `file` action.
pub fn check_sink(c: &mut Checker<'_>, fs: &FileSink) {
    if fs.path.trim().is_empty() {
        let pos = c.value_pos(&["path"]);
        c.error("invalid_value", pos, "`path` is empty");
    }
    c.no_interpolation(&["path"], &fs.path);
}
