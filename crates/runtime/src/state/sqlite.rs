//! The embedded SQLite store: one file (mode 0600), WAL with full sync, so a commit survives a
//! crash at any instant. Its SQL and PRAGMAs stay in this file. SQLite calls block, so each
//! runs on tokio's blocking pool, never on an async worker.

use super::{
    Commit, Counts, Cursor, FailedRecord, FailureFilter, FailureStatus, Holder, Lease, LedgerEntry,
    LedgerState, RunRow, RunStatus, StateError, StateStore, StoredCursor, StoredFailure, UndoMark,
    Written,
};
use super::{from_ms, ms_after, rfc3339, unreadable_cursor};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rivulet_http::SharedClock;
use rivulet_http::secrets::{scrub, scrub_owned};

/// Migrations, in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // Undo marks belong to any undoable action, not only file appends.
    r#"
CREATE TABLE undo_marks (
    flow TEXT NOT NULL,
    action INTEGER NOT NULL,
    kind TEXT NOT NULL,
    mark TEXT NOT NULL,
    PRIMARY KEY (flow, action)
);
INSERT INTO undo_marks (flow, action, kind, mark)
    SELECT flow, action, 'file', json_object('path', path, 'len', len) FROM file_marks;
DROP TABLE file_marks;
"#,
    // One holder per piece of work, with a fencing token every commit checks.
    r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    since TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX failed_by_key ON failed_records (flow, record_key, status);
"#,
    // What a failed action was given, and the calls each run made.
    r#"
ALTER TABLE failed_records ADD COLUMN sent TEXT;
ALTER TABLE runs ADD COLUMN api_calls INTEGER NOT NULL DEFAULT 0;
CREATE INDEX failed_by_run ON failed_records (run_id);
"#,
    // Change-only writes and `when:` filters.
    r#"
ALTER TABLE runs ADD COLUMN filtered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN unchanged INTEGER NOT NULL DEFAULT 0;
CREATE TABLE written (
    flow TEXT NOT NULL,
    action INTEGER NOT NULL,
    target_key TEXT NOT NULL,
    hashes TEXT NOT NULL,
    target_id TEXT,
    PRIMARY KEY (flow, action, target_key)
);
"#,
];

/// The embedded SQLite store.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Stamps rows (`updated_at`, `failed_at`).
    clock: SharedClock,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn backend(e: rusqlite::Error) -> StateError {
    StateError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) and migrates the store at `path`. A file that
    /// exists but is empty, not a database, or another program's database is refused: treating
    /// it as new would deliver every record again.
    pub async fn open(path: &Path) -> Result<SqliteStore, StateError> {
        Self::open_with_clock(path, rivulet_http::clock::system()).await
    }

    /// [`SqliteStore::open`], stamping rows with `clock`'s time.
    pub async fn open_with_clock(
        path: &Path,
        clock: SharedClock,
    ) -> Result<SqliteStore, StateError> {
        let owned = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&owned))
            .await
            .map_err(|e| StateError::Backend(format!("opening the state store: {e}")))??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
            clock,
        })
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
            // back), so a poisoned lock is safe to reuse.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StateError::Backend(format!("state store task: {e}")))?
        .map_err(backend)
    }
}

fn open_blocking(path: &Path) -> Result<Connection, StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Only a folder made here, or Rivulet's own `.rivulet`, is tightened: a state file put
        // into a shared folder (`/srv/data`, a sticky `/tmp`) must not change who may use it.
        let made = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if made || dir.file_name().is_some_and(|n| n == ".rivulet") {
            restrict(dir, 0o700).map_err(|source| StateError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(StateError::Corrupt(format!(
                "state store {}: not a regular file",
                path.display()
            )));
        }
        Ok(meta) if meta.len() == 0 => {
            return Err(StateError::Corrupt(format!(
                "state file {} is empty (truncated?); refusing to treat it as new, which would deliver every record again. Restore it from a backup, or remove it to start afresh on purpose",
                path.display()
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let existed = path.exists();
    let conn = Connection::open(path).map_err(backend)?;
    let not_ours = |e: rusqlite::Error| {
        StateError::Corrupt(format!(
            "state file {} cannot be read as Rivulet state ({e}); refusing to start afresh over it",
            path.display()
        ))
    };
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    // A file that is not ours is refused before anything about it changes (its journal mode,
    // its permissions): reading the schema writes nothing.
    if existed {
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(not_ours)?;
        if !tables.is_empty() && !tables.iter().any(|t| t == "schema_version") {
            return Err(StateError::Corrupt(format!(
                "{} is a database, but not Rivulet's state (no schema_version table); refusing to write into it",
                path.display()
            )));
        }
    }
    // Tighten an existing file too, and the journal files beside it: they hold failed
    // records' payloads.
    restrict(path, 0o600).map_err(io)?;
    for suffix in ["-wal", "-shm"] {
        let mut beside = path.as_os_str().to_owned();
        beside.push(suffix);
        match restrict(Path::new(&beside), 0o600) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(not_ours)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StateError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(backend)?
        .unwrap_or(0);
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StateError::TooNew {
            found: version,
            supported,
        });
    }
    if version < 0 {
        return Err(StateError::Corrupt(format!(
            "state schema version {version} is not one Rivulet wrote"
        )));
    }
    if version == supported {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
    let result = (|| {
        for migration in &MIGRATIONS[version as usize..] {
            conn.execute_batch(migration)?;
        }
        conn.execute("DELETE FROM schema_version", [])?;
        conn.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [supported],
        )?;
        conn.execute_batch("COMMIT")
    })();
    if let Err(e) = result {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(backend(e));
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Why a flow's stored cursor cannot be used, and the way out: starting afresh on its own
/// would deliver everything again.
fn conversion(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(e.to_string().into())
}

fn run_status(text: String) -> rusqlite::Result<RunStatus> {
    RunStatus::parse(&text).ok_or_else(|| conversion(format!("unknown run status `{text}`")))
}

fn failure_status(text: String) -> rusqlite::Result<FailureStatus> {
    FailureStatus::parse(&text)
        .ok_or_else(|| conversion(format!("unknown failed-record status `{text}`")))
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn cursor(&self, flow: &str) -> Result<Option<Cursor>, StateError> {
        let name = flow.to_string();
        let row: Option<(String, String)> = self
            .with(move |c| {
                c.query_row(
                    "SELECT identity, state FROM cursors WHERE flow = ?1",
                    [&name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await?;
        row.map(|(identity, state)| {
            serde_json::from_str(&state)
                .map(|state| Cursor { identity, state })
                .map_err(|e| StateError::Corrupt(unreadable_cursor(flow, &e)))
        })
        .transpose()
    }

    async fn set_cursor(&self, flow: &str, cursor: &Cursor) -> Result<(), StateError> {
        let (flow, cursor) = (flow.to_string(), cursor.clone());
        let at = rfc3339(self.clock.now());
        self.with(move |c| upsert_cursor(c, &flow, &cursor, &at))
            .await
    }

    async fn start_run(&self, flow: &str, started_at: DateTime<Utc>) -> Result<i64, StateError> {
        let (flow, at) = (flow.to_string(), rfc3339(started_at));
        self.with(move |c| {
            c.execute(
                "INSERT INTO runs (flow, started_at, status) VALUES (?1, ?2, ?3)",
                params![flow, at, RunStatus::Running.as_str()],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn finish_run(
        &self,
        run_id: i64,
        finished_at: DateTime<Utc>,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        let (at, error) = (rfc3339(finished_at), error.map(|e| scrub(e).into_owned()));
        self.with(move |c| {
            c.execute(
                "UPDATE runs SET finished_at = ?2, status = ?3, error = ?4 WHERE id = ?1",
                params![run_id, at, status.as_str(), error],
            )
            .map(|_| ())
        })
        .await
    }

    async fn delivered(
        &self,
        flow: &str,
        keys: &[(String, String)],
    ) -> Result<HashSet<(String, String)>, StateError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let flow = flow.to_string();
        let wanted = serde_json::to_string(keys).map_err(|e| StateError::Backend(e.to_string()))?;
        self.with(move |c| {
            // CROSS JOIN keeps the page's keys outside, so each is one primary-key probe.
            let mut stmt = c.prepare_cached(
                "SELECT d.record_key, d.version FROM json_each(?2) AS k
                 CROSS JOIN delivered AS d
                   ON d.flow = ?1 AND d.record_key = k.value ->> 0 AND d.version = k.value ->> 1",
            )?;
            let rows = stmt.query_map(params![flow, wanted], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn prune_delivered(&self, flow: &str, before_ms: i64) -> Result<u64, StateError> {
        let flow = flow.to_string();
        self.with(move |c| {
            c.execute(
                "DELETE FROM delivered WHERE flow = ?1 AND at_ms < ?2",
                params![flow, before_ms],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn forget_delivered(&self, flow: &str, since_ms: i64) -> Result<u64, StateError> {
        let flow = flow.to_string();
        self.with(move |c| {
            c.execute(
                "DELETE FROM delivered WHERE flow = ?1 AND at_ms >= ?2",
                params![flow, since_ms],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn ledger(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerEntry>, StateError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let flow = flow.to_string();
        let wanted = serde_json::to_string(keys).map_err(|e| StateError::Backend(e.to_string()))?;
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT l.record_key, l.state, l.target_id, l.updated_at FROM json_each(?3) AS k
                 CROSS JOIN ledger AS l ON l.flow = ?1 AND l.action = ?2 AND l.record_key = k.value",
            )?;
            let rows = stmt.query_map(params![flow, action as i64, wanted], |r| {
                let state: String = r.get(1)?;
                let state = LedgerState::parse(&state)
                    .ok_or_else(|| conversion(format!("unknown ledger state `{state}`")))?;
                Ok((
                    r.get::<_, String>(0)?,
                    LedgerEntry {
                        state,
                        target_id: r.get(2)?,
                        at: r
                            .get::<_, Option<String>>(3)?
                            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                            .map(|t| t.with_timezone(&Utc)),
                    },
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn written(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<HashMap<String, Written>, StateError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let flow = flow.to_string();
        let wanted = serde_json::to_string(keys).map_err(|e| StateError::Backend(e.to_string()))?;
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT w.target_key, w.hashes, w.target_id FROM json_each(?3) AS k
                 CROSS JOIN written AS w ON w.flow = ?1 AND w.action = ?2 AND w.target_key = k.value",
            )?;
            let rows = stmt.query_map(params![flow, action as i64, wanted], |r| {
                let hashes: String = r.get(1)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Written {
                        hashes: serde_json::from_str(&hashes)
                            .map_err(|e| conversion(format!("a stored write hash: {e}")))?,
                        target_id: r.get(2)?,
                    },
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn forget_written(&self, flow: &str) -> Result<u64, StateError> {
        let flow = flow.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM written WHERE flow = ?1", [flow])
                .map(|n| n as u64)
        })
        .await
    }

    async fn ledger_pending(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<(), StateError> {
        if keys.is_empty() {
            return Ok(());
        }
        let (flow, keys) = (flow.to_string(), keys.to_vec());
        let at = rfc3339(self.clock.now());
        self.with(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO ledger (flow, action, record_key, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (flow, action, record_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                )?;
                for key in &keys {
                    stmt.execute(params![flow, action as i64, key, LedgerState::Pending.as_str(), at])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn mark_undo(&self, flow: &str, mark: &UndoMark) -> Result<(), StateError> {
        let (flow, mark) = (flow.to_string(), mark.clone());
        self.with(move |c| {
            c.execute(
                "INSERT INTO undo_marks (flow, action, kind, mark) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (flow, action) DO UPDATE SET kind = excluded.kind, mark = excluded.mark",
                params![flow, mark.action as i64, mark.kind, mark.mark.to_string()],
            )
            .map(|_| ())
        })
        .await
    }

    async fn undo_marks(&self, flow: &str) -> Result<Vec<UndoMark>, StateError> {
        let flow = flow.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT action, kind, mark FROM undo_marks WHERE flow = ?1 ORDER BY action",
            )?;
            let rows = stmt.query_map([flow], |r| {
                let mark: String = r.get(2)?;
                Ok(UndoMark {
                    action: r.get::<_, i64>(0)? as usize,
                    kind: r.get(1)?,
                    mark: serde_json::from_str(&mark).map_err(conversion)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn commit(&self, flow: &str, commit: &Commit) -> Result<(), StateError> {
        let (flow, commit) = (flow.to_string(), commit.clone());
        let at = rfc3339(self.clock.now());
        let fenced = self.with(move |c| apply(c, &flow, &commit, &at)).await?;
        match fenced {
            None => Ok(()),
            Some((name, held, current)) => Err(StateError::Fenced {
                name,
                held,
                current,
            }),
        }
    }

    async fn runs(&self, flow: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StateError> {
        let flow = flow.map(str::to_string);
        self.with(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR flow = ?1) ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![flow, limit as i64], run_row)?;
            rows.collect()
        })
        .await
    }

    async fn run(&self, id: i64) -> Result<Option<RunRow>, StateError> {
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()
        })
        .await
    }

    async fn cursors(&self, flow: Option<&str>) -> Result<Vec<StoredCursor>, StateError> {
        let flow = flow.map(str::to_string);
        let rows: Vec<(String, String, String, String)> = self
            .with(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT flow, identity, state, updated_at FROM cursors WHERE (?1 IS NULL OR flow = ?1) ORDER BY flow",
                )?;
                let rows = stmt.query_map([flow], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(flow, identity, state, updated_at)| {
                let state = serde_json::from_str(&state)
                    .map_err(|e| StateError::Corrupt(unreadable_cursor(&flow, &e)))?;
                Ok(StoredCursor {
                    flow,
                    cursor: Cursor { identity, state },
                    updated_at,
                })
            })
            .collect()
    }

    async fn delete_cursor(&self, flow: &str) -> Result<(), StateError> {
        let flow = flow.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM cursors WHERE flow = ?1", [flow])
                .map(|_| ())
        })
        .await
    }

    async fn leases(&self) -> Result<Vec<Lease>, StateError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT holder, pid, host, since, token, expires_ms, name FROM leases ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                let name: String = r.get(6)?;
                lease_row(r, &name)
            })?;
            rows.collect()
        })
        .await
    }

    async fn find_failures(
        &self,
        filter: &FailureFilter,
    ) -> Result<Vec<StoredFailure>, StateError> {
        let filter = filter.clone();
        let ids = filter
            .ids
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StateError::Backend(e.to_string()))?;
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, flow, run_id, record_key, version, origin, action, error, record, failed_at, status, sent FROM failed_records
                 WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR run_id = ?3)
                   AND (?4 IS NULL OR id IN (SELECT value FROM json_each(?4)))
                 ORDER BY id LIMIT ?5",
            )?;
            let json = |text: Option<String>| text.and_then(|s| serde_json::from_str(&s).ok());
            let rows = stmt.query_map(
                params![
                    filter.flow,
                    filter.status.map(FailureStatus::as_str),
                    filter.run_id,
                    ids,
                    filter.limit as i64
                ],
                |r| {
                    Ok(StoredFailure {
                        id: r.get(0)?,
                        flow: r.get(1)?,
                        run_id: r.get(2)?,
                        failed_at: r.get(9)?,
                        status: failure_status(r.get(10)?)?,
                        failure: FailedRecord {
                            key: r.get(3)?,
                            version: r.get(4)?,
                            origin: r.get(5)?,
                            action: r.get::<_, Option<i64>>(6)?.map(|a| a as usize),
                            error: r.get(7)?,
                            record: json(r.get(8)?),
                            sent: json(r.get(11)?),
                        },
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &Holder,
        ttl: std::time::Duration,
    ) -> Result<Result<Lease, Lease>, StateError> {
        let (name, holder) = (name.to_string(), holder.clone());
        let now = self.clock.now();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = read_lease(&tx, &name)?;
            let token = match &current {
                Some(l) if l.holder.id == holder.id => l.token,
                Some(l) if l.expires_at > now && !l.holder.is_dead_here(&holder.host) => {
                    return Ok(Err(l.clone()));
                }
                Some(l) => l.token + 1,
                None => 1,
            };
            let expires_ms = ms_after(now, ttl);
            tx.execute(
                "INSERT INTO leases (name, holder, pid, host, since, token, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, host = excluded.host,
                   since = excluded.since, token = excluded.token, expires_ms = excluded.expires_ms",
                params![name, holder.id, holder.pid as i64, holder.host, rfc3339(holder.since), token, expires_ms],
            )?;
            tx.commit()?;
            Ok(Ok(Lease {
                name,
                holder,
                token,
                expires_at: from_ms(expires_ms),
            }))
        })
        .await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<Lease, StateError> {
        let lease = lease.clone();
        let expires_ms = ms_after(self.clock.now(), ttl);
        let outcome = self
            .with(move |c| {
                let n = c.execute(
                    "UPDATE leases SET expires_ms = ?3 WHERE name = ?1 AND token = ?2",
                    params![lease.name, lease.token, expires_ms],
                )?;
                if n == 1 {
                    return Ok(Ok(Lease {
                        expires_at: from_ms(expires_ms),
                        ..lease
                    }));
                }
                let current = fenced_out(c, &lease.name, lease.token)?.unwrap_or(0);
                Ok(Err((lease.name, lease.token, current)))
            })
            .await?;
        outcome.map_err(|(name, held, current)| StateError::Fenced {
            name,
            held,
            current,
        })
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        let lease = lease.clone();
        self.with(move |c| {
            // The row stays, lapsed: fencing tokens only ever grow.
            c.execute(
                "UPDATE leases SET expires_ms = 0 WHERE name = ?1 AND token = ?2",
                params![lease.name, lease.token],
            )
            .map(|_| ())
        })
        .await
    }

    async fn interrupt_runs(
        &self,
        flows: Option<&[String]>,
        at: DateTime<Utc>,
        why: &str,
    ) -> Result<u64, StateError> {
        let flows = flows
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StateError::Backend(e.to_string()))?;
        let (at, why) = (rfc3339(at), scrub(why).into_owned());
        self.with(move |c| {
            c.execute(
                "UPDATE runs SET status = ?1, finished_at = ?2, error = ?3
                 WHERE status = ?4 AND (?5 IS NULL OR flow IN (SELECT value FROM json_each(?5)))",
                params![
                    RunStatus::Interrupted.as_str(),
                    at,
                    why,
                    RunStatus::Running.as_str(),
                    flows
                ],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn set_failure_status(
        &self,
        ids: &[i64],
        status: FailureStatus,
    ) -> Result<(), StateError> {
        let ids = serde_json::to_string(ids).map_err(|e| StateError::Backend(e.to_string()))?;
        self.with(move |c| {
            c.execute(
                "UPDATE failed_records SET status = ?2 WHERE id IN (SELECT value FROM json_each(?1))",
                params![ids, status.as_str()],
            )
            .map(|_| ())
        })
        .await
    }
}

/// The lease's current token, when it is not `token` any more (someone else holds it).
fn fenced_out(c: &Connection, name: &str, token: i64) -> rusqlite::Result<Option<i64>> {
    let current: Option<i64> = c
        .query_row("SELECT token FROM leases WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(current.filter(|t| *t != token))
}

/// One page's changes, in one transaction; `Some((lease, held, current))` and nothing written
/// when the page's lease has passed to another holder.
fn apply(
    c: &mut Connection,
    flow: &str,
    commit: &Commit,
    at: &str,
) -> rusqlite::Result<Option<(String, i64, i64)>> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if let Some(fence) = &commit.fence
        && let Some(current) = fenced_out(&tx, &fence.name, fence.token)?
    {
        return Ok(Some((fence.name.clone(), fence.token, current)));
    }
    if !commit.succeeded_keys.is_empty() {
        let keys = serde_json::to_string(&commit.succeeded_keys).map_err(conversion)?;
        tx.execute(
            "UPDATE failed_records SET status = ?3
             WHERE flow = ?1 AND status IN (?4, ?5) AND record_key IN (SELECT value FROM json_each(?2))",
            params![
                flow,
                keys,
                FailureStatus::Resolved.as_str(),
                FailureStatus::Failed.as_str(),
                FailureStatus::Replayed.as_str()
            ],
        )?;
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO delivered (flow, record_key, version, at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (flow, record_key, version) DO NOTHING",
        )?;
        for (key, version, at_ms) in &commit.delivered {
            stmt.execute(params![flow, key, version, at_ms])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO failed_records (flow, run_id, record_key, version, origin, action, error, record, failed_at, status, sent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        // Nothing that reaches the state holds a secret (an error body a server echoed, a
        // record that carried one).
        for f in &commit.failed {
            stmt.execute(params![
                flow,
                commit.run_id,
                f.key,
                f.version,
                f.origin,
                f.action.map(|a| a as i64),
                scrub(&f.error),
                f.record.as_ref().map(|r| scrub_owned(r.to_string())),
                at,
                FailureStatus::Failed.as_str(),
                f.sent.as_ref().map(|r| scrub_owned(r.to_string())),
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO ledger (flow, action, record_key, state, target_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (flow, action, record_key) DO UPDATE SET state = excluded.state, target_id = excluded.target_id, updated_at = excluded.updated_at",
        )?;
        for (action, key, target) in &commit.ledger_done {
            stmt.execute(params![
                flow,
                *action as i64,
                key,
                LedgerState::Done.as_str(),
                target,
                at
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "DELETE FROM ledger WHERE flow = ?1 AND action = ?2 AND record_key = ?3",
        )?;
        for (action, key) in &commit.ledger_clear {
            stmt.execute(params![flow, *action as i64, key])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO written (flow, action, target_key, hashes, target_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (flow, action, target_key) DO UPDATE SET hashes = excluded.hashes,
               target_id = coalesce(excluded.target_id, written.target_id)",
        )?;
        for (action, key, written) in &commit.written {
            let hashes =
                serde_json::to_string(&written.hashes).map_err(|e| conversion(e.to_string()))?;
            stmt.execute(params![
                flow,
                *action as i64,
                key,
                hashes,
                written.target_id
            ])?;
        }
    }
    if commit.clear_undo_marks {
        tx.execute("DELETE FROM undo_marks WHERE flow = ?1", [flow])?;
    }
    if let Some(cursor) = &commit.cursor {
        upsert_cursor(&tx, flow, cursor, at)?;
    }
    let n = commit.counts;
    if n != Counts::default() {
        tx.execute(
            "UPDATE runs SET read_count = read_count + ?2, succeeded = succeeded + ?3, failed = failed + ?4, skipped = skipped + ?5, api_calls = api_calls + ?6, filtered = filtered + ?7, unchanged = unchanged + ?8 WHERE id = ?1",
            params![commit.run_id, n.read as i64, n.succeeded as i64, n.failed as i64, n.skipped as i64, n.api_calls as i64, n.filtered as i64, n.unchanged as i64],
        )?;
    }
    tx.commit()?;
    Ok(None)
}

const RUN_COLUMNS: &str = "id, flow, started_at, finished_at, status, read_count, succeeded, failed, skipped, error, api_calls, filtered, unchanged";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        flow: r.get(1)?,
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        status: run_status(r.get(4)?)?,
        counts: Counts {
            read: r.get::<_, i64>(5)? as u64,
            succeeded: r.get::<_, i64>(6)? as u64,
            failed: r.get::<_, i64>(7)? as u64,
            skipped: r.get::<_, i64>(8)? as u64,
            api_calls: r.get::<_, i64>(10)? as u64,
            filtered: r.get::<_, i64>(11)? as u64,
            unchanged: r.get::<_, i64>(12)? as u64,
        },
        error: r.get(9)?,
    })
}

fn lease_row(r: &rusqlite::Row<'_>, name: &str) -> rusqlite::Result<Lease> {
    let since: String = r.get(3)?;
    Ok(Lease {
        name: name.to_string(),
        holder: Holder {
            id: r.get(0)?,
            pid: r.get::<_, i64>(1)? as u32,
            host: r.get(2)?,
            since: DateTime::parse_from_rfc3339(&since)
                .map(|t| t.with_timezone(&Utc))
                .map_err(conversion)?,
        },
        token: r.get(4)?,
        expires_at: from_ms(r.get(5)?),
    })
}

fn read_lease(c: &Connection, name: &str) -> rusqlite::Result<Option<Lease>> {
    c.query_row(
        "SELECT holder, pid, host, since, token, expires_ms FROM leases WHERE name = ?1",
        [name],
        |r| lease_row(r, name),
    )
    .optional()
}

fn upsert_cursor(conn: &Connection, flow: &str, cursor: &Cursor, at: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO cursors (flow, identity, state, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (flow) DO UPDATE SET identity = excluded.identity, state = excluded.state, updated_at = excluded.updated_at",
        params![flow, cursor.identity, cursor.state.to_string(), at],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // What every backend must do is tested once for all in `tests/state_conformance.rs`; here,
    // what only a SQLite file can get wrong.

    #[tokio::test]
    async fn damaged_or_foreign_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let e = SqliteStore::open(&empty).await.unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a database at all, just some text").unwrap();
        let e = SqliteStore::open(&junk).await.unwrap_err().to_string();
        assert!(e.contains("cannot be read as Rivulet state"), "{e}");
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE invoices (id INTEGER)")
            .unwrap();
        let e = SqliteStore::open(&foreign).await.unwrap_err().to_string();
        assert!(e.contains("not Rivulet's state"), "{e}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_refused_file_and_a_shared_folder_are_left_as_they_were() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE invoices (id INTEGER)")
            .unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SqliteStore::open(&foreign).await.is_err());
        assert_eq!(mode(&foreign), 0o644, "a refused file keeps its mode");
        let journal: String = Connection::open(&foreign)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "delete", "a refused file keeps its journal mode");

        // A state file in a folder others share: the file is private, the folder unchanged.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        SqliteStore::open(&shared.join("state.db")).await.unwrap();
        assert_eq!(mode(&shared), 0o1777);
        assert_eq!(mode(&shared.join("state.db")), 0o600);
        // A folder made for the state, and Rivulet's own, are private.
        SqliteStore::open(&dir.path().join("new/state.db"))
            .await
            .unwrap();
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        let own = dir.path().join(".rivulet");
        std::fs::create_dir(&own).unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)).unwrap();
        SqliteStore::open(&own.join("state.db")).await.unwrap();
        assert_eq!(mode(&own), 0o700);
    }

    #[tokio::test]
    async fn version_one_file_marks_become_undo_marks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);
                 INSERT INTO file_marks VALUES ('f', 2, 'out/a.jsonl', 17);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let marks = store.undo_marks("f").await.unwrap();
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].kind, "file");
        assert_eq!(marks[0].mark, json!({"path": "out/a.jsonl", "len": 17}));
    }
}
