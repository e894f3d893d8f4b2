//! Records from CSV, JSON Lines and JSON array files, streamed in bounded memory.
//!
//! - CSV (header row, any one-byte delimiter, RFC 4180 quoting with embedded newlines): each
//!   row is an object of strings keyed by the header. A row with the wrong number of fields (or
//!   not UTF-8) is an [`Item::Bad`] carrying its line number; the other rows go on.
//! - JSON Lines: each non-blank line an object; a line that is not a JSON object is bad.
//! - JSON: an array of objects, read element by element (a lone top-level object is one
//!   record). An element that is not a valid object is bad; a broken array ends the file with
//!   one bad item.
//!
//! Keys: `"{path}:{line}"` for CSV rows and JSON lines, `"{path}#{n}"` for the `n`th element of
//! a JSON array (paths relative to the flow's folder, `/`-separated). Versions:
//! `"{size}-{mtime_ms}"` of the file when its reading started.
//!
//! The checkpoint (`{"files": {path: {size, mtime_ms, done, offset, line, index}}}`) remembers
//! finished files (not read again while their size and modification time stay the same) and,
//! for a file being read, where to resume, so a restart re-sends no row.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connector::{Source, SourceError, SourcePage as Page};
use crate::record::{Item, Record};
use async_trait::async_trait;
use rivulet_spec::model::{AfterRead, FileFormat, FileSource};

/// Most bytes of a bad line kept as its `raw` text.
const RAW_LIMIT: usize = 64 * 1024;

use crate::record::MAX_RECORD_BYTES;

fn too_large(limit: usize) -> String {
    format!(
        "the record is larger than {} KiB, the most one record may take; it is skipped and the rest go on",
        limit / 1024
    )
}

/// Reads the files a [`FileSource`] matches, page by page. File I/O blocks, so each page is
/// read on tokio's blocking pool, never on an async worker.
#[derive(Debug)]
pub struct FileReader {
    /// Taken out while a page is read on the blocking pool.
    reader: Option<Box<Reader>>,
}

#[derive(Debug)]
struct Reader {
    format: Option<FileFormat>,
    delimiter: Option<u8>,
    after_read: AfterRead,
    move_to: Option<PathBuf>,
    /// Files still to look at: (relative path, full path).
    queue: VecDeque<(String, PathBuf)>,
    state: State,
    current: Option<OpenFile>,
    /// Files finished (by this reader or an earlier one) waiting to be moved or deleted once a
    /// page saying so is committed.
    finished: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    files: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Entry {
    size: u64,
    mtime_ms: i64,
    #[serde(default)]
    done: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    offset: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    line: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    index: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a format reader stands: byte offset, line counter and items read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pos {
    offset: u64,
    line: u64,
    index: u64,
}

#[derive(Debug)]
struct OpenFile {
    rel: String,
    full: PathBuf,
    rows: Rows,
    lookahead: Option<(Item, Pos)>,
}

#[derive(Debug)]
enum Rows {
    Csv(CsvRows),
    Lines(JsonLines),
    Array(JsonArray),
}

impl Rows {
    fn next(&mut self) -> io::Result<Option<(Item, Pos)>> {
        match self {
            Rows::Csv(r) => r.next(),
            Rows::Lines(r) => r.next(),
            Rows::Array(r) => r.next(),
        }
    }
}

impl FileReader {
    /// Lists the matching files (`config.path` is a path or glob relative to `base_dir`) and
    /// takes up where `checkpoint` (a [`Page::checkpoint`] of an earlier reader) left off.
    pub fn new(
        config: &FileSource,
        base_dir: &Path,
        checkpoint: Option<Value>,
    ) -> Result<FileReader, SourceError> {
        Ok(FileReader {
            reader: Some(Box::new(Reader::new(config, base_dir, checkpoint)?)),
        })
    }

    /// Runs `f` on the reader on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Reader) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let mut reader = self.reader.take().ok_or_else(|| {
            SourceError::Config("the file reader was lost by a failed read".into())
        })?;
        let (reader, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut reader);
            (reader, result)
        })
        .await
        .map_err(|e| SourceError::Config(format!("reading files: {e}")))?;
        self.reader = Some(reader);
        result
    }
}

#[async_trait]
impl Source for FileReader {
    async fn next_page(&mut self, max: usize) -> Result<Option<Page>, SourceError> {
        self.blocking(move |r| r.next_page(max)).await
    }

    async fn committed(&mut self, checkpoint: &Value) -> Result<(), SourceError> {
        let checkpoint = checkpoint.clone();
        self.blocking(move |r| r.committed(checkpoint)).await
    }
}

impl Reader {
    fn new(
        config: &FileSource,
        base_dir: &Path,
        checkpoint: Option<Value>,
    ) -> Result<Reader, SourceError> {
        let format = match config.format {
            Some(f) => Some(f),
            None if has_glob(&config.path) => {
                // Each file's extension decides; the pattern must at least tell.
                if FileFormat::from_path(&config.path).is_none() {
                    return Err(SourceError::Config(format!(
                        "cannot tell the format of `{}` from its extension; set `format`",
                        config.path
                    )));
                }
                None
            }
            None => Some(FileFormat::from_path(&config.path).ok_or_else(|| {
                SourceError::Config(format!(
                    "cannot tell the format of `{}` from its extension; set `format`",
                    config.path
                ))
            })?),
        };
        let delimiter = match config.delimiter.as_deref() {
            None => None,
            Some("\t" | "\\t" | "tab") => Some(b'\t'),
            Some(d) if d.len() == 1 && d.is_ascii() => Some(d.as_bytes()[0]),
            Some(d) => {
                return Err(SourceError::Config(format!(
                    "delimiter `{d}` must be a single ASCII character"
                )));
            }
        };
        let move_to = match config.after_read {
            AfterRead::Move => Some(base_dir.join(config.move_to.as_deref().ok_or_else(|| {
                SourceError::Config("`after_read: move` needs `move_to`".into())
            })?)),
            _ => None,
        };
        let mut state: State = match checkpoint {
            None | Some(Value::Null) => State::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| {
                SourceError::Checkpoint(format!(
                    "{e}; the flow stops rather than read everything again (`rivulet cursor reset FLOW --to beginning` reads it afresh)"
                ))
            })?,
        };
        let files = list_files(base_dir, &config.path)?;
        // Forget files that are gone, so the checkpoint does not grow forever.
        state
            .files
            .retain(|rel, _| files.iter().any(|(r, _)| r == rel));
        Ok(Reader {
            format,
            delimiter,
            after_read: config.after_read,
            move_to,
            queue: files.into(),
            state,
            current: None,
            finished: Vec::new(),
        })
    }

    /// The next page of at most `max` items, or `None` when every matching file has been read.
    /// A page may have no items when it only records that files were finished.
    fn next_page(&mut self, max: usize) -> Result<Option<Page>, SourceError> {
        let max = max.max(1);
        let mut items = Vec::new();
        let mut changed = false;
        while items.len() < max {
            if self.current.is_none() && !self.open_next(&mut changed)? {
                break;
            }
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let next = match cur.lookahead.take() {
                Some(x) => Some(x),
                None => cur.rows.next().map_err(|e| io_error(&cur.rel, e))?,
            };
            match next {
                Some((item, pos)) => {
                    items.push(item);
                    if let Some(e) = self.state.files.get_mut(&cur.rel) {
                        e.offset = pos.offset;
                        e.line = pos.line;
                        e.index = pos.index;
                    }
                }
                None => {
                    self.finish_current()?;
                    changed = true;
                }
            }
        }
        // Look one item ahead, so that a file whose last row is in this page is recorded as
        // finished with it.
        if let Some(cur) = self.current.as_mut() {
            if cur.lookahead.is_none() {
                match cur.rows.next().map_err(|e| io_error(&cur.rel, e))? {
                    Some(x) => cur.lookahead = Some(x),
                    None => {
                        self.finish_current()?;
                        changed = true;
                    }
                }
            }
        }
        if items.is_empty() && !changed {
            return Ok(None);
        }
        let checkpoint = serde_json::to_value(&self.state)
            .map_err(|e| SourceError::Checkpoint(e.to_string()))?;
        Ok(Some(Page { items, checkpoint }))
    }

    /// Called once the page's outcomes and checkpoint are durably recorded: files the page
    /// finished are now moved or deleted (`after_read`).
    fn committed(&mut self, checkpoint: Value) -> Result<(), SourceError> {
        if self.after_read == AfterRead::Keep || self.finished.is_empty() {
            return Ok(());
        }
        let state: State = serde_json::from_value(checkpoint)
            .map_err(|e| SourceError::Checkpoint(e.to_string()))?;
        let mut rest = Vec::new();
        for (rel, full) in std::mem::take(&mut self.finished) {
            if !state.files.get(&rel).is_some_and(|e| e.done) {
                rest.push((rel, full));
                continue;
            }
            let result = match self.after_read {
                AfterRead::Delete => std::fs::remove_file(&full),
                AfterRead::Move => match &self.move_to {
                    Some(dir) => move_file(&full, dir),
                    None => Ok(()),
                },
                AfterRead::Keep => Ok(()),
            };
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.finished = rest;
                    return Err(io_error(&rel, e));
                }
            }
        }
        self.finished = rest;
        Ok(())
    }

    /// Opens the next file that needs reading; false when there is none.
    fn open_next(&mut self, changed: &mut bool) -> Result<bool, SourceError> {
        while let Some((rel, full)) = self.queue.pop_front() {
            let meta = match std::fs::metadata(&full) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&rel, e)),
            };
            let size = meta.len();
            let mtime_ms = mtime_ms(&meta);
            let resume = match self.state.files.get(&rel) {
                Some(e) if e.done && e.size == size && e.mtime_ms == mtime_ms => {
                    if self.after_read != AfterRead::Keep {
                        // Finished earlier but not yet moved (a crash between commit and move).
                        self.finished.push((rel, full));
                        *changed = true;
                    }
                    continue;
                }
                Some(e) if !e.done && e.offset > 0 && e.offset <= size => Some(e.clone()),
                _ => None,
            };
            let entry = resume.clone().unwrap_or(Entry {
                size,
                mtime_ms,
                ..Entry::default()
            });
            let version = format!("{}-{}", entry.size, entry.mtime_ms);
            let pos = resume.map(|e| Pos {
                offset: e.offset,
                line: e.line,
                index: e.index,
            });
            let format = self
                .format
                .or_else(|| FileFormat::from_path(&rel))
                .ok_or_else(|| {
                    SourceError::Config(format!(
                        "cannot tell the format of `{rel}` from its extension; set `format`"
                    ))
                })?;
            let delimiter = self.delimiter.unwrap_or_else(|| {
                if rel.to_ascii_lowercase().ends_with(".tsv") {
                    b'\t'
                } else {
                    b','
                }
            });
            let rows = match format {
                FileFormat::Csv => Rows::Csv(
                    CsvRows::open(&full, &rel, &version, delimiter, pos)
                        .map_err(|e| io_error(&rel, e))?,
                ),
                FileFormat::Jsonl => Rows::Lines(
                    JsonLines::open(&full, &rel, &version, pos).map_err(|e| io_error(&rel, e))?,
                ),
                FileFormat::Json => Rows::Array(
                    JsonArray::open(&full, &rel, &version, pos).map_err(|e| io_error(&rel, e))?,
                ),
            };
            self.state.files.insert(rel.clone(), entry);
            self.current = Some(OpenFile {
                rel,
                full,
                rows,
                lookahead: None,
            });
            return Ok(true);
        }
        Ok(false)
    }

    /// Marks the open file done (with its size and time now) and closes it.
    fn finish_current(&mut self) -> Result<(), SourceError> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let meta = std::fs::metadata(&cur.full).map_err(|e| io_error(&cur.rel, e))?;
        self.state.files.insert(
            cur.rel.clone(),
            Entry {
                size: meta.len(),
                mtime_ms: mtime_ms(&meta),
                done: true,
                ..Entry::default()
            },
        );
        if self.after_read != AfterRead::Keep {
            self.finished.push((cur.rel, cur.full));
        }
        Ok(())
    }
}

fn io_error(rel: &str, source: io::Error) -> SourceError {
    SourceError::Io {
        path: rel.to_string(),
        source,
    }
}

fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn mtime_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The files a path or glob matches, sorted, as (relative `/`-separated path, full path).
fn list_files(base_dir: &Path, pattern: &str) -> Result<Vec<(String, PathBuf)>, SourceError> {
    let full_pattern = if Path::new(pattern).is_absolute() || base_dir.as_os_str().is_empty() {
        pattern.to_string()
    } else {
        let base = base_dir.to_str().ok_or_else(|| {
            SourceError::Config(format!(
                "the flow folder `{}` is not valid UTF-8",
                base_dir.display()
            ))
        })?;
        format!(
            "{}/{}",
            glob::Pattern::escape(base.trim_end_matches('/')),
            pattern
        )
    };
    let entries = glob::glob(&full_pattern).map_err(|e| {
        SourceError::Config(format!(
            "`{pattern}` is not a valid path or glob: {}",
            e.msg
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let full = match entry {
            Ok(p) => p,
            Err(e) => {
                let rel = relative(base_dir, e.path());
                return Err(io_error(&rel, e.into()));
            }
        };
        if !full.is_file() {
            // A folder is simply not a file to read; a FIFO or a device (`/dev/zero`) would
            // block or never end, so it is not read either — but not silently.
            if !full.is_dir() && full.exists() {
                tracing::warn!(
                    path = %relative(base_dir, &full),
                    "not a regular file (a FIFO, socket or device): it is not read"
                );
            }
            continue;
        }
        files.push((relative(base_dir, &full), full));
    }
    files.sort();
    Ok(files)
}

fn relative(base_dir: &Path, full: &Path) -> String {
    let rel = full.strip_prefix(base_dir).unwrap_or(full);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if rel.is_absolute() {
        full.to_string_lossy().into_owned()
    } else {
        parts.join("/")
    }
}

fn move_file(from: &Path, dir: &Path) -> io::Result<()> {
    if !from.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let name = from
        .file_name()
        .ok_or_else(|| io::Error::other("not a file name"))?;
    let mut dest = dir.join(name);
    let mut n = 1;
    while dest.exists() {
        let stem = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = Path::new(name)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        dest = dir.join(format!("{stem}-{n}{ext}"));
        n += 1;
    }
    match std::fs::rename(from, &dest) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Another file system: copy, then remove.
            std::fs::copy(from, &dest).map_err(|_| e)?;
            std::fs::remove_file(from)
        }
    }
}

fn raw_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RAW_LIMIT)];
    String::from_utf8_lossy(cut)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

fn record(key: String, version: &str, data: Map<String, Value>, origin: String) -> Item {
    Item::Record(Record {
        key,
        version: version.to_string(),
        data: Value::Object(data),
        origin,
    })
}

fn bad(key: String, origin: String, message: String, raw: Option<String>) -> Item {
    Item::Bad {
        key,
        origin,
        message,
        raw,
    }
}

/// A file read on a budget: past `limit` bytes since the budget was last reset, reads fail with
/// [`RecordTooLarge`], so a CSV parser cannot take one giant record into memory.
struct Budgeted {
    file: File,
    used: usize,
    limit: usize,
}

/// The error a [`Budgeted`] read fails with.
#[derive(Debug)]
struct RecordTooLarge;

impl std::fmt::Display for RecordTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record too large")
    }
}

impl std::error::Error for RecordTooLarge {}

impl Read for Budgeted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.used > self.limit {
            return Err(io::Error::other(RecordTooLarge));
        }
        let n = self.file.read(buf)?;
        self.used += n;
        Ok(n)
    }
}

impl Seek for Budgeted {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

fn is_too_large(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<RecordTooLarge>())
}

/// Where the CSV record starting at byte `start` ends (just past its line break, quotes
/// respected), and how many line breaks it holds; read in bounded chunks.
fn csv_record_end(path: &Path, start: u64) -> io::Result<(u64, u64)> {
    let mut file = BufReader::with_capacity(64 * 1024, File::open(path)?);
    file.seek(SeekFrom::Start(start))?;
    let (mut at, mut lines, mut quoted) = (start, 0u64, false);
    loop {
        let chunk = file.fill_buf()?;
        if chunk.is_empty() {
            return Ok((at, lines));
        }
        let n = chunk.len();
        for (i, b) in chunk.iter().enumerate() {
            match b {
                b'"' => quoted = !quoted,
                b'\n' => {
                    lines += 1;
                    if !quoted {
                        let end = at + i as u64 + 1;
                        return Ok((end, lines));
                    }
                }
                _ => {}
            }
        }
        file.consume(n);
        at += n as u64;
    }
}

/// CSV rows.
struct CsvRows {
    rel: String,
    version: String,
    path: PathBuf,
    delimiter: u8,
    rdr: csv::Reader<Budgeted>,
    /// A second handle, to fetch the raw text of bad rows.
    raw: File,
    headers: Vec<String>,
    record: csv::ByteRecord,
    index: u64,
}

impl std::fmt::Debug for CsvRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvRows").field("rel", &self.rel).finish()
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    }
}

impl CsvRows {
    fn open(
        path: &Path,
        rel: &str,
        version: &str,
        delimiter: u8,
        resume: Option<Pos>,
    ) -> io::Result<CsvRows> {
        let file = Budgeted {
            file: File::open(path)?,
            used: 0,
            limit: MAX_RECORD_BYTES,
        };
        let raw = File::open(path)?;
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(false)
            .from_reader(file);
        let headers: Vec<String> = rdr
            .byte_headers()
            .map_err(csv_io)?
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        let mut index = 0;
        if let Some(p) = resume {
            let mut pos = csv::Position::new();
            pos.set_byte(p.offset)
                .set_line(p.line)
                .set_record(p.index + 1);
            rdr.seek(pos).map_err(csv_io)?;
            index = p.index;
        }
        Ok(CsvRows {
            rel: rel.to_string(),
            version: version.to_string(),
            path: path.to_path_buf(),
            delimiter,
            rdr,
            raw,
            headers,
            record: csv::ByteRecord::new(),
            index,
        })
    }

    fn pos(&self) -> Pos {
        let p = self.rdr.position();
        Pos {
            offset: p.byte(),
            line: p.line(),
            index: self.index,
        }
    }

    fn raw_between(&mut self, start: u64, end: u64) -> Option<String> {
        let len = end.saturating_sub(start).min(RAW_LIMIT as u64);
        let mut buf = vec![0; len as usize];
        self.raw.seek(SeekFrom::Start(start)).ok()?;
        self.raw.read_exact(&mut buf).ok()?;
        Some(raw_text(&buf))
    }

    fn next(&mut self) -> io::Result<Option<(Item, Pos)>> {
        let before = self.rdr.position().clone();
        self.rdr.get_mut().used = 0;
        let result = self.rdr.read_byte_record(&mut self.record);
        match result {
            Ok(false) => Ok(None),
            Ok(true) => {
                self.index += 1;
                let start = self.record.position().cloned().unwrap_or(before);
                let line = start.line();
                let key = format!("{}:{line}", self.rel);
                let origin = format!("{} line {line}", self.rel);
                let mut data = Map::with_capacity(self.headers.len());
                let mut utf8_error = None;
                for (i, field) in self.record.iter().enumerate() {
                    let name = self.headers.get(i).cloned().unwrap_or_default();
                    match std::str::from_utf8(field) {
                        Ok(s) => {
                            data.insert(name, Value::String(s.to_string()));
                        }
                        Err(_) => {
                            utf8_error = Some(format!("column `{name}` is not valid UTF-8"));
                            break;
                        }
                    }
                }
                let end = self.rdr.position().byte();
                let item = match utf8_error {
                    Some(message) => {
                        let raw = self.raw_between(start.byte(), end);
                        bad(key, origin, message, raw)
                    }
                    None => record(key, &self.version, data, origin),
                };
                Ok(Some((item, self.pos())))
            }
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(io) if is_too_large(io)) => {
                // Too big to hold: the record fails alone, and reading goes on after it.
                let (end, lines) = csv_record_end(&self.path, before.byte())?;
                let line = before.line();
                let raw = self.raw_between(before.byte(), end);
                let resume = Pos {
                    offset: end,
                    line: line + lines,
                    index: self.index + 1,
                };
                let (path, rel, version) =
                    (self.path.clone(), self.rel.clone(), self.version.clone());
                *self = CsvRows::open(&path, &rel, &version, self.delimiter, Some(resume))?;
                let item = bad(
                    format!("{rel}:{line}"),
                    format!("{rel} line {line}"),
                    too_large(MAX_RECORD_BYTES),
                    raw,
                );
                Ok(Some((item, self.pos())))
            }
            Err(e) => {
                let (start, message) = match e.kind() {
                    csv::ErrorKind::Io(_) => return Err(csv_io(e)),
                    csv::ErrorKind::UnequalLengths {
                        pos,
                        expected_len,
                        len,
                    } => (
                        pos.clone().unwrap_or(before),
                        format!("the row has {len} fields but the header has {expected_len}"),
                    ),
                    _ => (before, format!("malformed CSV row: {e}")),
                };
                self.index += 1;
                let line = start.line();
                let end = self.rdr.position().byte();
                let raw = self.raw_between(start.byte(), end);
                let item = bad(
                    format!("{}:{line}", self.rel),
                    format!("{} line {line}", self.rel),
                    message,
                    raw,
                );
                Ok(Some((item, self.pos())))
            }
        }
    }
}

/// JSON Lines.
#[derive(Debug)]
struct JsonLines {
    rel: String,
    version: String,
    rdr: BufReader<File>,
    pos: Pos,
    buf: Vec<u8>,
}

impl JsonLines {
    fn open(path: &Path, rel: &str, version: &str, resume: Option<Pos>) -> io::Result<JsonLines> {
        let mut file = File::open(path)?;
        let pos = resume.unwrap_or_default();
        if pos.offset > 0 {
            file.seek(SeekFrom::Start(pos.offset))?;
        }
        Ok(JsonLines {
            rel: rel.to_string(),
            version: version.to_string(),
            rdr: BufReader::with_capacity(64 * 1024, file),
            pos,
            buf: Vec::new(),
        })
    }

    fn next(&mut self) -> io::Result<Option<(Item, Pos)>> {
        loop {
            self.buf.clear();
            let (n, oversize) = read_line_bounded(&mut self.rdr, &mut self.buf, MAX_RECORD_BYTES)?;
            if n == 0 {
                return Ok(None);
            }
            self.pos.offset += n as u64;
            self.pos.line += 1;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.pos.index += 1;
            let line = self.pos.line;
            let key = format!("{}:{line}", self.rel);
            let origin = format!("{} line {line}", self.rel);
            let item = match serde_json::from_slice::<Value>(&self.buf) {
                _ if oversize => bad(
                    key,
                    origin,
                    too_large(MAX_RECORD_BYTES),
                    Some(raw_text(&self.buf)),
                ),
                Ok(Value::Object(m)) => record(key, &self.version, m, origin),
                Ok(_) => bad(
                    key,
                    origin,
                    "the line is JSON but not an object".into(),
                    Some(raw_text(&self.buf)),
                ),
                Err(e) => bad(
                    key,
                    origin,
                    format!("the line is not JSON: {e}"),
                    Some(raw_text(&self.buf)),
                ),
            };
            if self.buf.capacity() > 1024 * 1024 {
                self.buf = Vec::new();
            }
            return Ok(Some((item, self.pos)));
        }
    }
}

/// Reads one line (through its `\n`) into `buf`, keeping at most `limit` bytes: the rest of a
/// longer line is read and dropped. Returns the bytes consumed and whether the line was cut.
fn read_line_bounded(
    rdr: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut cut = false;
    loop {
        let available = match rdr.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed, cut));
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        cut |= chunk.len() > room;
        let n = chunk.len();
        rdr.consume(n);
        consumed += n;
        if done {
            return Ok((consumed, cut));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    Start,
    First,
    AfterElement,
    Element,
    End,
}

/// A JSON array, element by element.
#[derive(Debug)]
struct JsonArray {
    rel: String,
    version: String,
    rdr: BufReader<File>,
    pos: Pos,
    state: ArrayState,
    single: bool,
    buf: Vec<u8>,
    /// The value being read passed the record size limit.
    oversize: bool,
}

impl JsonArray {
    fn open(path: &Path, rel: &str, version: &str, resume: Option<Pos>) -> io::Result<JsonArray> {
        let mut file = File::open(path)?;
        let (pos, state) = match resume {
            Some(p) if p.offset > 0 => {
                file.seek(SeekFrom::Start(p.offset))?;
                (p, ArrayState::AfterElement)
            }
            _ => (
                Pos {
                    offset: 0,
                    line: 1,
                    index: 0,
                },
                ArrayState::Start,
            ),
        };
        Ok(JsonArray {
            rel: rel.to_string(),
            version: version.to_string(),
            rdr: BufReader::with_capacity(64 * 1024, file),
            pos,
            state,
            single: false,
            buf: Vec::new(),
            oversize: false,
        })
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.rdr.fill_buf()?.first().copied())
    }

    fn bump(&mut self, b: u8) {
        self.rdr.consume(1);
        self.pos.offset += 1;
        if b == b'\n' {
            self.pos.line += 1;
        }
    }

    fn skip_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b) if b.is_ascii_whitespace() => self.bump(b),
                // A byte-order mark at the start.
                Some(0xEF) if self.pos.offset == 0 => {
                    let buf = self.rdr.fill_buf()?;
                    if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                        self.rdr.consume(3);
                        self.pos.offset += 3;
                    } else {
                        return Ok(Some(0xEF));
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// Reads one JSON value's bytes into `buf` (at most [`MAX_RECORD_BYTES`]: past that the
    /// value is scanned to its end without being kept, and `oversize` is set); `Err` text when
    /// the file ends inside it.
    fn read_value(&mut self) -> io::Result<Result<(), String>> {
        self.buf.clear();
        self.oversize = false;
        let Some(first) = self.peek()? else {
            return Ok(Err("the file ends where a value should be".into()));
        };
        let mut depth = 0u32;
        let mut in_string = false;
        let mut escape = false;
        if first == b'{' || first == b'[' || first == b'"' {
            loop {
                let Some(b) = self.peek()? else {
                    return Ok(Err("the file ends inside a value".into()));
                };
                self.bump(b);
                self.keep(b);
                if in_string {
                    if escape {
                        escape = false;
                    } else if b == b'\\' {
                        escape = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            return Ok(Ok(()));
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(Ok(()));
                        }
                    }
                    _ => {}
                }
            }
        }
        loop {
            match self.peek()? {
                Some(b) if !(b.is_ascii_whitespace() || b == b',' || b == b']') => {
                    self.bump(b);
                    self.keep(b);
                }
                _ => break,
            }
        }
        if self.buf.is_empty() {
            return Ok(Err(format!("expected a value at byte {}", self.pos.offset)));
        }
        Ok(Ok(()))
    }

    fn keep(&mut self, b: u8) {
        if self.buf.len() < MAX_RECORD_BYTES {
            self.buf.push(b);
        } else {
            self.oversize = true;
        }
    }

    /// A bad item that ends the file.
    fn broken(&mut self, message: String) -> Option<(Item, Pos)> {
        self.state = ArrayState::End;
        self.pos.index += 1;
        let key = format!("{}#{}", self.rel, self.pos.index);
        let origin = format!("{} line {}", self.rel, self.pos.line);
        Some((bad(key, origin, message, None), self.pos))
    }

    fn element(&mut self) -> io::Result<Option<(Item, Pos)>> {
        let line = self.pos.line;
        if let Err(message) = self.read_value()? {
            return Ok(self.broken(message));
        }
        self.pos.index += 1;
        let n = self.pos.index;
        let key = format!("{}#{n}", self.rel);
        let origin = format!("{} item {n} (line {line})", self.rel);
        let item = match serde_json::from_slice::<Value>(&self.buf) {
            _ if self.oversize => bad(
                key,
                origin,
                too_large(MAX_RECORD_BYTES),
                Some(raw_text(&self.buf)),
            ),
            Ok(Value::Object(m)) => record(key, &self.version, m, origin),
            Ok(_) => bad(
                key,
                origin,
                "the element is not an object".into(),
                Some(raw_text(&self.buf)),
            ),
            Err(e) => bad(
                key,
                origin,
                format!("the element is not valid JSON: {e}"),
                Some(raw_text(&self.buf)),
            ),
        };
        if self.buf.capacity() > 1024 * 1024 {
            self.buf = Vec::new();
        }
        self.state = ArrayState::AfterElement;
        Ok(Some((item, self.pos)))
    }

    fn next(&mut self) -> io::Result<Option<(Item, Pos)>> {
        loop {
            match self.state {
                ArrayState::End => return Ok(None),
                ArrayState::Start => match self.skip_ws()? {
                    None => {
                        self.state = ArrayState::End;
                        return Ok(None);
                    }
                    Some(b'[') => {
                        self.bump(b'[');
                        self.state = ArrayState::First;
                    }
                    Some(b'{') => {
                        self.single = true;
                        let item = self.element()?;
                        return Ok(item);
                    }
                    Some(_) => {
                        return Ok(self.broken("the file is not a JSON array".into()));
                    }
                },
                ArrayState::First => match self.skip_ws()? {
                    Some(b']') => {
                        self.bump(b']');
                        self.state = ArrayState::End;
                    }
                    None => return Ok(self.broken("the file ends before the array's `]`".into())),
                    Some(_) => return self.element(),
                },
                ArrayState::AfterElement => match self.skip_ws()? {
                    None if self.single => self.state = ArrayState::End,
                    None => return Ok(self.broken("the file ends before the array's `]`".into())),
                    Some(b',') if !self.single => {
                        self.bump(b',');
                        self.state = ArrayState::Element;
                    }
                    Some(b']') if !self.single => {
                        self.bump(b']');
                        self.state = ArrayState::End;
                    }
                    Some(_) => {
                        let at = self.pos.offset;
                        return Ok(self
                            .broken(format!("expected `,` or `]` after an element at byte {at}")));
                    }
                },
                ArrayState::Element => match self.skip_ws()? {
                    // A trailing comma: tolerated.
                    Some(b']') => {
                        self.bump(b']');
                        self.state = ArrayState::End;
                    }
                    None => return Ok(self.broken("the file ends before the array's `]`".into())),
                    Some(_) => return self.element(),
                },
            }
        }
    }
}
