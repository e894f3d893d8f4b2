//! Finding and reading flow and connection files.
//!
//! A directory is searched recursively for `*.yaml` / `*.yml`; mapping test files
//! (`*.test.yaml`) and hidden entries are skipped. A single flow file brings the
//! `connections.yaml` beside it along, so `rivulet validate flows/one.yaml` sees the
//! connections that flow refers to.

use crate::yaml::{self, Node};
use std::path::{Path, PathBuf};

/// Reading the paths failed in a way no diagnostic can describe (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path given does not exist.
    #[error("{}: no such file or directory", .0.display())]
    NotFound(PathBuf),
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// One flow.
    Flow,
    /// Named connections (a top-level `connections` key).
    Connections,
}

/// A file as read and parsed.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as given or found.
    pub path: PathBuf,
    /// The text (empty when the file is not text).
    pub text: String,
    /// The parsed tree, or why it could not be parsed.
    pub parsed: Result<Node, yaml::YamlError>,
}

/// Reads a regular file of at most `limit` bytes. Anything else — a FIFO, a device, a link to
/// `/dev/zero`, a directory — is refused before it is opened (opening a FIFO would block), and
/// the read itself stops at the limit, so a file that grows while it is read cannot exhaust
/// memory either.
pub fn read_regular_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a directory, FIFO, socket or device is not read)",
        ));
    }
    if meta.len() > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("the file is {} bytes; at most {limit} are read", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("the file grew past {limit} bytes while it was read"),
        ));
    }
    Ok(bytes)
}

impl SourceFile {
    /// Reads and parses `path` (a regular file of at most [`yaml::MAX_FILE_BYTES`]). Only I/O
    /// failures are errors; bad content is kept in `parsed`.
    pub fn read(path: &Path) -> Result<SourceFile, LoadError> {
        match read_regular_file(path, yaml::MAX_FILE_BYTES as u64) {
            Ok(bytes) => Ok(SourceFile::from_bytes(path, bytes)),
            // Not a file one could mean as a flow: a problem of this file, reported with the
            // others rather than stopping everything.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
                ) =>
            {
                Ok(SourceFile {
                    path: path.to_path_buf(),
                    text: String::new(),
                    parsed: Err(yaml::YamlError {
                        message: e.to_string(),
                        pos: crate::diagnostic::Pos::default(),
                        hint: Some(
                            "is this a data file in the flows directory? Move it elsewhere".into(),
                        ),
                    }),
                })
            }
            Err(source) => Err(LoadError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses `bytes` as the content of `path`.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> SourceFile {
        match String::from_utf8(bytes) {
            Ok(text) => {
                let parsed = yaml::parse(&text);
                SourceFile {
                    path: path.to_path_buf(),
                    text,
                    parsed,
                }
            }
            Err(err) => {
                let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
                let valid = String::from_utf8_lossy(valid);
                let line = valid.matches('\n').count() as u32 + 1;
                let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
                SourceFile {
                    path: path.to_path_buf(),
                    text: String::new(),
                    parsed: Err(yaml::YamlError {
                        message: "file is not UTF-8 text (is it a binary file?)".into(),
                        pos: crate::diagnostic::Pos::new(line, column),
                        hint: None,
                    }),
                }
            }
        }
    }

    /// What the file holds, judged by its top-level keys.
    pub fn kind(&self) -> FileKind {
        match &self.parsed {
            Ok(node) if node.get("connections").is_some() && node.get("name").is_none() => {
                FileKind::Connections
            }
            _ => FileKind::Flow,
        }
    }
}

/// The folder a file's relative paths start from (`.` for a bare file name).
pub fn base_dir(file: &Path) -> PathBuf {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Whether `path` names a mapping test file (`NAME.test.yaml`).
pub fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The files the given paths stand for, sorted and without repeats.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LoadError::NotFound(path.clone())
            } else {
                LoadError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        if meta.is_dir() {
            walk(path, &mut found)?;
        } else {
            found.push(path.clone());
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                for name in ["connections.yaml", "connections.yml"] {
                    let sibling = dir.join(name);
                    if sibling.is_file() {
                        found.push(sibling);
                    }
                }
            }
        }
    }
    found.sort();
    let mut seen = std::collections::HashSet::new();
    found.retain(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())));
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if is_hidden(&path) {
            continue;
        }
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            walk(&path, found)?;
        } else if is_yaml(&path) && !is_test_file(&path) {
            found.push(path);
        }
    }
    Ok(())
}
