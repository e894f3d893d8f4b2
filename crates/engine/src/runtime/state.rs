//! Durable state: cursors, dedupe keys, runs, failed records and the write-ahead ledger.
//!
//! Everything a page of records changes is written in **one transaction** ([`Commit`]): the
//! outcome of each record (delivered, or a failed-record entry that can be replayed), the run's
//! counts and the cursor that covers them. A crash before the commit re-reads the page; a crash
//! after it reads on from the new cursor. Writes that are not idempotent (HubSpot creates, file
//! appends) are announced in the ledger *before* they are made, so a restart knows what may
//! already have happened.
//!
//! The store is a trait so a shared backend (Postgres, for several runners) can follow; the SQL
//! here sticks to what both understand.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A state store failure. Fatal for the page at hand: nothing is acknowledged without it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite said no.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The state file could not be created.
    #[error("state database {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was written by a newer Rivulet.
    #[error(
        "state database schema version {found} is newer than this Rivulet understands ({supported})"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version known here.
        supported: i64,
    },
}

/// A record that failed, kept for inspection and replay.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRecord {
    /// The record's key.
    pub key: String,
    /// The record's version.
    pub version: String,
    /// Where it came from.
    pub origin: String,
    /// The action that failed it (None: mapping or input failure).
    pub action: Option<usize>,
    /// Why.
    pub error: String,
    /// The source record, for replay.
    pub record: Option<Value>,
}

/// A stored failed record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFailure {
    /// Its id in the store.
    pub id: i64,
    /// The flow.
    pub flow: String,
    /// The run that failed it.
    pub run_id: i64,
    /// When.
    pub failed_at: String,
    /// `failed`, `replayed` or `resolved`.
    pub status: String,
    /// The record and error.
    pub failure: FailedRecord,
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read from the trigger or source (after dedupe).
    pub read: u64,
    /// Records every action took.
    pub succeeded: u64,
    /// Records kept as failed.
    pub failed: u64,
    /// Records skipped as already delivered.
    pub skipped: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.read += o.read;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// The flow.
    pub flow: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End, once finished.
    pub finished_at: Option<String>,
    /// `running`, `succeeded`, `failed` (some records failed), `error` (the run stopped).
    pub status: String,
    /// Its counts.
    pub counts: Counts,
    /// Why the run stopped, for `error`.
    pub error: Option<String>,
}

/// A ledger entry: a write announced before it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// `pending` (announced; outcome unknown) or `done` (made; `target_id` known).
    pub state: String,
    /// The target's id once done (a HubSpot record id).
    pub target_id: Option<String>,
}

/// Everything one page changes, applied atomically.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The run the page belongs to.
    pub run_id: i64,
    /// Keys (key, version) whose outcome is now recorded, for dedupe of re-reads.
    pub delivered: Vec<(String, String, i64)>,
    /// Records that failed.
    pub failed: Vec<FailedRecord>,
    /// Ledger entries whose write is now done: (action, key, target id).
    pub ledger_done: Vec<(usize, String, Option<String>)>,
    /// Ledger entries to forget (pending writes that turned out not to happen or were recorded
    /// as failures): (action, key).
    pub ledger_clear: Vec<(usize, String)>,
    /// File-append marks to drop: the appends they guarded are now recorded.
    pub clear_file_marks: bool,
    /// The cursor after this page: (identity, state).
    pub cursor: Option<(String, Value)>,
    /// What to add to the run's counts.
    pub counts: Counts,
}

/// A pending append to a file sink: the file's length before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMark {
    /// The action index.
    pub action: usize,
    /// The file.
    pub path: PathBuf,
    /// Its length before the append.
    pub len: u64,
}

/// The state store.
pub trait StateStore: Send + Sync {
    /// The cursor of `flow`: (identity of what it tracks, state).
    fn cursor(&self, flow: &str) -> Result<Option<(String, Value)>, StateError>;
    /// Replaces the cursor of `flow` outright (a reset).
    fn set_cursor(&self, flow: &str, identity: &str, state: &Value) -> Result<(), StateError>;
    /// Opens a run.
    fn start_run(&self, flow: &str, started_at: &str) -> Result<i64, StateError>;
    /// Closes a run.
    fn finish_run(
        &self,
        run_id: i64,
        finished_at: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StateError>;
    /// Which of these (key, version) pairs of `flow` are already recorded.
    fn delivered(
        &self,
        flow: &str,
        keys: &[(String, String)],
    ) -> Result<HashSet<(String, String)>, StateError>;
    /// Forgets dedupe keys whose timestamp is older than `before_ms`.
    fn prune_delivered(&self, flow: &str, before_ms: i64) -> Result<u64, StateError>;
    /// Ledger entries of `flow`'s action `action` for these keys.
    fn ledger(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerEntry>, StateError>;
    /// Announces writes before they are made (committed immediately).
    fn ledger_pending(&self, flow: &str, action: usize, keys: &[String]) -> Result<(), StateError>;
    /// Records a file's length before an append (committed immediately).
    fn mark_file(&self, flow: &str, mark: &FileMark) -> Result<(), StateError>;
    /// Appends announced but never recorded (a crash came between).
    fn file_marks(&self, flow: &str) -> Result<Vec<FileMark>, StateError>;
    /// Applies a page's changes atomically.
    fn commit(&self, flow: &str, commit: &Commit) -> Result<(), StateError>;
    /// Recent runs, newest first.
    fn runs(&self, flow: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StateError>;
    /// Failed records, oldest first, with `status` (`failed` for the open ones).
    fn failures(
        &self,
        flow: Option<&str>,
        status: &str,
        limit: usize,
    ) -> Result<Vec<StoredFailure>, StateError>;
    /// Marks failed records as replayed.
    fn mark_replayed(&self, ids: &[i64]) -> Result<(), StateError>;
}

/// Migrations, in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE cursors (
    flow TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE delivered (
    flow TEXT NOT NULL,
    record_key TEXT NOT NULL,
    version TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (flow, record_key, version)
);
CREATE INDEX delivered_by_time ON delivered (flow, at_ms);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    read_count INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX runs_by_flow ON runs (flow, id);
CREATE TABLE failed_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    record_key TEXT NOT NULL,
    version TEXT NOT NULL,
    origin TEXT NOT NULL,
    action INTEGER,
    error TEXT NOT NULL,
    record TEXT,
    failed_at TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX failed_by_flow ON failed_records (flow, status, id);
CREATE TABLE ledger (
    flow TEXT NOT NULL,
    action INTEGER NOT NULL,
    record_key TEXT NOT NULL,
    state TEXT NOT NULL,
    target_id TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (flow, action, record_key)
);
CREATE TABLE file_marks (
    flow TEXT NOT NULL,
    action INTEGER NOT NULL,
    path TEXT NOT NULL,
    len INTEGER NOT NULL,
    PRIMARY KEY (flow, action)
);
"#];

/// The embedded SQLite store (WAL, full sync: a commit survives a crash at any instant).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let existed = path.exists();
        let conn = Connection::open(path)?;
        if !existed {
            restrict_permissions(path).map_err(|source| StateError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StateError> {
        let mut conn = self.lock();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StateError::TooNew {
                found: version,
                supported,
            });
        }
        let tx = conn.transaction()?;
        for migration in &MIGRATIONS[version as usize..] {
            tx.execute_batch(migration)?;
        }
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [supported],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> std::io::Result<()> {
    Ok(())
}

impl StateStore for SqliteStore {
    fn cursor(&self, flow: &str) -> Result<Option<(String, Value)>, StateError> {
        let conn = self.lock();
        let row: Option<(String, String)> = conn
            .query_row(
                "SELECT identity, state FROM cursors WHERE flow = ?1",
                [flow],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(identity, state)| {
            (
                identity,
                serde_json::from_str(&state).unwrap_or(Value::Null),
            )
        }))
    }

    fn set_cursor(&self, flow: &str, identity: &str, state: &Value) -> Result<(), StateError> {
        let conn = self.lock();
        upsert_cursor(&conn, flow, identity, state)?;
        Ok(())
    }

    fn start_run(&self, flow: &str, started_at: &str) -> Result<i64, StateError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO runs (flow, started_at, status) VALUES (?1, ?2, 'running')",
            params![flow, started_at],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn finish_run(
        &self,
        run_id: i64,
        finished_at: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        let conn = self.lock();
        conn.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, error = ?4 WHERE id = ?1",
            params![run_id, finished_at, status, error],
        )?;
        Ok(())
    }

    fn delivered(
        &self,
        flow: &str,
        keys: &[(String, String)],
    ) -> Result<HashSet<(String, String)>, StateError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT 1 FROM delivered WHERE flow = ?1 AND record_key = ?2 AND version = ?3",
        )?;
        let mut found = HashSet::new();
        for (key, version) in keys {
            if stmt.exists(params![flow, key, version])? {
                found.insert((key.clone(), version.clone()));
            }
        }
        Ok(found)
    }

    fn prune_delivered(&self, flow: &str, before_ms: i64) -> Result<u64, StateError> {
        let conn = self.lock();
        let n = conn.execute(
            "DELETE FROM delivered WHERE flow = ?1 AND at_ms < ?2",
            params![flow, before_ms],
        )?;
        Ok(n as u64)
    }

    fn ledger(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerEntry>, StateError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT state, target_id FROM ledger WHERE flow = ?1 AND action = ?2 AND record_key = ?3")?;
        let mut out = HashMap::new();
        for key in keys {
            if let Some(entry) = stmt
                .query_row(params![flow, action as i64, key], |r| {
                    Ok(LedgerEntry {
                        state: r.get(0)?,
                        target_id: r.get(1)?,
                    })
                })
                .optional()?
            {
                out.insert(key.clone(), entry);
            }
        }
        Ok(out)
    }

    fn ledger_pending(&self, flow: &str, action: usize, keys: &[String]) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ledger (flow, action, record_key, state, updated_at) VALUES (?1, ?2, ?3, 'pending', ?4)
                 ON CONFLICT (flow, action, record_key) DO UPDATE SET state = 'pending', updated_at = excluded.updated_at",
            )?;
            let at = now();
            for key in keys {
                stmt.execute(params![flow, action as i64, key, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn mark_file(&self, flow: &str, mark: &FileMark) -> Result<(), StateError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO file_marks (flow, action, path, len) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (flow, action) DO UPDATE SET path = excluded.path, len = excluded.len",
            params![
                flow,
                mark.action as i64,
                mark.path.to_string_lossy(),
                mark.len as i64
            ],
        )?;
        Ok(())
    }

    fn file_marks(&self, flow: &str) -> Result<Vec<FileMark>, StateError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT action, path, len FROM file_marks WHERE flow = ?1 ORDER BY action",
        )?;
        let rows = stmt.query_map([flow], |r| {
            Ok(FileMark {
                action: r.get::<_, i64>(0)? as usize,
                path: PathBuf::from(r.get::<_, String>(1)?),
                len: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn commit(&self, flow: &str, c: &Commit) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let at = now();
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO delivered (flow, record_key, version, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (flow, record_key, version) DO NOTHING",
            )?;
            for (key, version, at_ms) in &c.delivered {
                stmt.execute(params![flow, key, version, at_ms])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO failed_records (flow, run_id, record_key, version, origin, action, error, record, failed_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'failed')",
            )?;
            for f in &c.failed {
                stmt.execute(params![
                    flow,
                    c.run_id,
                    f.key,
                    f.version,
                    f.origin,
                    f.action.map(|a| a as i64),
                    f.error,
                    f.record.as_ref().map(Value::to_string),
                    at
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ledger (flow, action, record_key, state, target_id, updated_at) VALUES (?1, ?2, ?3, 'done', ?4, ?5)
                 ON CONFLICT (flow, action, record_key) DO UPDATE SET state = 'done', target_id = excluded.target_id, updated_at = excluded.updated_at",
            )?;
            for (action, key, target) in &c.ledger_done {
                stmt.execute(params![flow, *action as i64, key, target, at])?;
            }
            let mut stmt = tx.prepare_cached(
                "DELETE FROM ledger WHERE flow = ?1 AND action = ?2 AND record_key = ?3",
            )?;
            for (action, key) in &c.ledger_clear {
                stmt.execute(params![flow, *action as i64, key])?;
            }
        }
        if c.clear_file_marks {
            tx.execute("DELETE FROM file_marks WHERE flow = ?1", [flow])?;
        }
        if let Some((identity, state)) = &c.cursor {
            upsert_cursor(&tx, flow, identity, state)?;
        }
        if c.counts != Counts::default() {
            tx.execute(
                "UPDATE runs SET read_count = read_count + ?2, succeeded = succeeded + ?3, failed = failed + ?4, skipped = skipped + ?5 WHERE id = ?1",
                params![c.run_id, c.counts.read as i64, c.counts.succeeded as i64, c.counts.failed as i64, c.counts.skipped as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn runs(&self, flow: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StateError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, flow, started_at, finished_at, status, read_count, succeeded, failed, skipped, error FROM runs
             WHERE (?1 IS NULL OR flow = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![flow, limit as i64], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                flow: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                status: r.get(4)?,
                counts: Counts {
                    read: r.get::<_, i64>(5)? as u64,
                    succeeded: r.get::<_, i64>(6)? as u64,
                    failed: r.get::<_, i64>(7)? as u64,
                    skipped: r.get::<_, i64>(8)? as u64,
                },
                error: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn failures(
        &self,
        flow: Option<&str>,
        status: &str,
        limit: usize,
    ) -> Result<Vec<StoredFailure>, StateError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, flow, run_id, record_key, version, origin, action, error, record, failed_at, status FROM failed_records
             WHERE (?1 IS NULL OR flow = ?1) AND status = ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![flow, status, limit as i64], |r| {
            Ok(StoredFailure {
                id: r.get(0)?,
                flow: r.get(1)?,
                run_id: r.get(2)?,
                failed_at: r.get(9)?,
                status: r.get(10)?,
                failure: FailedRecord {
                    key: r.get(3)?,
                    version: r.get(4)?,
                    origin: r.get(5)?,
                    action: r.get::<_, Option<i64>>(6)?.map(|a| a as usize),
                    error: r.get(7)?,
                    record: r
                        .get::<_, Option<String>>(8)?
                        .and_then(|s| serde_json::from_str(&s).ok()),
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn mark_replayed(&self, ids: &[i64]) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE failed_records SET status = 'replayed' WHERE id = ?1",
                [id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn upsert_cursor(
    conn: &Connection,
    flow: &str,
    identity: &str,
    state: &Value,
) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO cursors (flow, identity, state, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (flow) DO UPDATE SET identity = excluded.identity, state = excluded.state, updated_at = excluded.updated_at",
        params![flow, identity, state.to_string(), now()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_all_or_nothing_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            let run = store.start_run("f", "2026-01-01T00:00:00Z").unwrap();
            store
                .commit(
                    "f",
                    &Commit {
                        run_id: run,
                        delivered: vec![("1".into(), "100".into(), 100)],
                        failed: vec![FailedRecord {
                            key: "2".into(),
                            version: "100".into(),
                            origin: "contact 2".into(),
                            action: Some(0),
                            error: "bad".into(),
                            record: Some(serde_json::json!({"id": "2"})),
                        }],
                        cursor: Some(("contact/new_record".into(), serde_json::json!({"ts": 100}))),
                        counts: Counts {
                            read: 2,
                            succeeded: 1,
                            failed: 1,
                            skipped: 0,
                        },
                        ..Commit::default()
                    },
                )
                .unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.cursor("f").unwrap().unwrap().1["ts"], 100);
        let keys = vec![
            ("1".to_string(), "100".to_string()),
            ("1".to_string(), "200".to_string()),
        ];
        assert_eq!(store.delivered("f", &keys).unwrap().len(), 1);
        let runs = store.runs(Some("f"), 10).unwrap();
        assert_eq!(
            runs[0].counts,
            Counts {
                read: 2,
                succeeded: 1,
                failed: 1,
                skipped: 0
            }
        );
        let failures = store.failures(Some("f"), "failed", 10).unwrap();
        assert_eq!(failures[0].failure.error, "bad");
        store.mark_replayed(&[failures[0].id]).unwrap();
        assert!(store.failures(Some("f"), "failed", 10).unwrap().is_empty());
        assert_eq!(store.prune_delivered("f", 150).unwrap(), 1);
    }

    #[test]
    fn ledger_and_file_marks() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        store
            .ledger_pending("f", 0, &["a".into(), "b".into()])
            .unwrap();
        store
            .mark_file(
                "f",
                &FileMark {
                    action: 1,
                    path: "out.jsonl".into(),
                    len: 42,
                },
            )
            .unwrap();
        let run = store.start_run("f", "now").unwrap();
        store
            .commit(
                "f",
                &Commit {
                    run_id: run,
                    ledger_done: vec![(0, "a".into(), Some("901".into()))],
                    ledger_clear: vec![(0, "b".into())],
                    clear_file_marks: true,
                    ..Commit::default()
                },
            )
            .unwrap();
        let l = store.ledger("f", 0, &["a".into(), "b".into()]).unwrap();
        assert_eq!(
            l["a"],
            LedgerEntry {
                state: "done".into(),
                target_id: Some("901".into())
            }
        );
        assert!(!l.contains_key("b"));
        assert!(store.file_marks("f").unwrap().is_empty());
    }
}
