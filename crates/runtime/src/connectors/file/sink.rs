//! Append mapped records to a JSON Lines or CSV file, never leaving half a line behind.
//!
//! A batch is turned into bytes in memory, written with one `write_all` to the file opened for
//! appending, then `sync_data`. The caller records [`FileWriter::len`] before a write; after a
//! crash, [`truncate_to`] that length drops a partial or unrecorded batch before it is sent
//! again.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rivulet_mapping::{Context, OutputMode};
use rivulet_spec::model::{FileSink, SinkFormat};
use serde_json::{Value, json};

use crate::connector::{Action, RetrySafety};
use crate::record::{ActionOutcome, Prepared};

/// Appends records to one file.
#[derive(Debug)]
pub struct FileWriter {
    path: PathBuf,
    format: SinkFormat,
    columns: Vec<String>,
    /// One write at a time (the CSV header depends on the file being empty).
    lock: tokio::sync::Mutex<()>,
}

impl FileWriter {
    /// A writer for `config` (path relative to `base_dir`); `columns` are the mapped field
    /// names in mapping order (the CSV columns; when empty, the first record's fields).
    pub fn new(config: &FileSink, base_dir: &Path, columns: Vec<String>) -> FileWriter {
        FileWriter {
            path: base_dir.join(&config.path),
            format: config.format,
            columns,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current length (0 when it does not exist yet).
    pub fn len(&self) -> io::Result<u64> {
        length(&self.path)
    }

    /// Whether the file is empty or missing.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Cuts the file back to `len` bytes (see [`truncate_to`]).
    pub fn truncate(&self, len: u64) -> io::Result<()> {
        truncate_to(&self.path, len)
    }

    /// Appends the batch: every record `Done`; or, when the file cannot be written (a full
    /// disk, an I/O error), every record `Transient` and the file as it was before (a partly
    /// written batch is cut back, so the file never holds half a line).
    pub async fn append(&self, batch: &[Prepared<'_>]) -> Vec<ActionOutcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        let _guard = self.lock.lock().await;
        let result = match self.is_empty() {
            Ok(empty) => match self.render(batch, empty) {
                Ok(bytes) => {
                    let path = self.path.clone();
                    match tokio::task::spawn_blocking(move || append(&path, &bytes)).await {
                        Ok(r) => r,
                        Err(e) => Err(io::Error::other(e.to_string())),
                    }
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => batch
                .iter()
                .map(|_| ActionOutcome::Done { id: None })
                .collect(),
            Err(e) => {
                let message = format!("cannot write {}: {e}", self.path.display());
                batch
                    .iter()
                    .map(|_| ActionOutcome::transient(message.clone()))
                    .collect()
            }
        }
    }

    /// The batch's bytes: whole lines only.
    fn render(&self, batch: &[Prepared<'_>], empty_file: bool) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(batch.len() * 128);
        match self.format {
            SinkFormat::Jsonl => {
                for p in batch {
                    serde_json::to_writer(&mut out, p.fields)?;
                    out.push(b'\n');
                }
            }
            SinkFormat::Csv => {
                let columns: Vec<String> = if self.columns.is_empty() {
                    batch[0].fields.keys().cloned().collect()
                } else {
                    self.columns.clone()
                };
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(&mut out);
                if empty_file {
                    w.write_record(&columns).map_err(csv_error)?;
                }
                for p in batch {
                    let row = columns
                        .iter()
                        .map(|c| cell(p.fields.get(c)))
                        .collect::<Vec<_>>();
                    w.write_record(&row).map_err(csv_error)?;
                }
                w.flush()?;
            }
        }
        Ok(out)
    }
}

fn csv_error(e: csv::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// A CSV cell: strings as they are, `null`/missing empty, nested values as JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Appends `bytes` with one write and syncs it; on failure the file is cut back to its length
/// before, so no partial line stays behind.
fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let meta = f.metadata()?;
    let before = meta.len();
    let written = f.write_all(bytes).and_then(|()| f.sync_data());
    if let Err(e) = written {
        // Best effort: the undo mark recorded before the write cuts it back too. A device
        // (`/dev/full`) keeps nothing, so there is nothing to cut.
        if meta.is_file() && f.set_len(before).and_then(|()| f.sync_data()).is_err() {
            tracing::warn!(path = %path.display(), "could not cut a failed append back; the next start does");
        }
        return Err(e);
    }
    Ok(())
}

#[async_trait]
impl Action for FileWriter {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn destination(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn output_mode(&self) -> OutputMode {
        OutputMode::Native
    }

    fn retry_safety(&self) -> RetrySafety {
        RetrySafety::Undoable
    }

    async fn write(
        &self,
        batch: &[Prepared<'_>],
        _known_ids: &[Option<String>],
        _ctx: &Context,
    ) -> Vec<ActionOutcome> {
        self.append(batch).await
    }

    /// The file's length before the write: cutting it back to that undoes the write.
    async fn undo_mark(&self) -> Result<Value, String> {
        let path = self.path.clone();
        let len = tokio::task::spawn_blocking(move || length(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(json!({ "path": self.path, "len": len }))
    }
}

/// Undoes an append from its mark: the file is cut back to the length it had before.
pub async fn undo(mark: &Value) -> Result<String, String> {
    let path = mark
        .get("path")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .ok_or("the undo mark has no `path`")?;
    let len = mark
        .get("len")
        .and_then(Value::as_u64)
        .ok_or("the undo mark has no `len`")?;
    let shown = format!("{} cut back to {len} bytes", path.display());
    tokio::task::spawn_blocking(move || truncate_to(&path, len))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(shown)
}

/// A file's length (0 when it does not exist yet).
fn length(path: &Path) -> io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Cuts `path` back to `len` bytes, dropping a batch written after the length was recorded
/// (also a partial one from a crash). Nothing to do when the file is missing or not longer.
pub fn truncate_to(path: &Path, len: u64) -> io::Result<()> {
    let f = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if meta.is_file() && meta.len() > len {
        f.set_len(len)?;
        f.sync_data()?;
    }
    Ok(())
}
