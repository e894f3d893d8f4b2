//! The PostgreSQL store: the state of runners on several hosts in one database, with the same
//! semantics as the SQLite store ([`super::sqlite`]). Its SQL stays in this file.
//!
//! `--state postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]` (or `postgresql://`).
//! The options are libpq's as [`tokio_postgres::Config`] reads them (`connect_timeout`,
//! `application_name`, `options=-c%20search_path%3Dmy_schema` to keep the state in its own
//! schema, …), `sslmode` and `sslrootcert` as libpq reads them (see [`super::postgres_tls`]),
//! plus one of Rivulet's: `pool_size=N` (1 to 32, default 4) bounds the connections one
//! runner holds. The tables live in the connection's current
//! schema (the first of `search_path` that exists); behind PgBouncer, which refuses the
//! `options` startup parameter, give the role its schema instead (`ALTER ROLE … SET
//! search_path`).
//!
//! **Works through PgBouncer in transaction mode.** Nothing here depends on the session a
//! server connection had before the current transaction: statements go out as *unnamed*
//! prepared statements (`query_typed`: Parse, Bind, Execute and Sync in one round trip, the
//! parameter types given by the caller, nothing kept on the server), DDL as simple queries,
//! and the only lock beyond row locks is `pg_advisory_xact_lock`, released with its
//! transaction. No session-level advisory lock, no `SET`, no named statement.
//!
//! **Timestamps** are the injected clock's, stored as RFC 3339 text like the SQLite store's,
//! so both print the same; lease expiry is in milliseconds. JSON (cursor state, records,
//! undo marks) is stored as text, which keeps the key order serde_json preserves (`jsonb`
//! would not).
//!
//! The connection URL's password never appears in an error: messages are built from the host,
//! port, database and user only, and the password is registered with
//! [`rivulet_http::secrets`] and stripped from every message this store makes.

use super::postgres_tls as tls;
use super::{
    Commit, Counts, Cursor, FailedRecord, FailureFilter, FailureStatus, Holder, Lease, LedgerEntry,
    LedgerState, RunRow, RunStatus, StateError, StateStore, StoredCursor, StoredFailure, UndoMark,
    Written,
};
use super::{from_ms, ms_after, rfc3339, unreadable_cursor};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use indexmap::IndexMap;
use rivulet_http::SharedClock;
use rivulet_http::secrets::{self, scrub, scrub_owned};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

/// Migrations, in order; the index + 1 is the schema version (PostgreSQL's own numbering).
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
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (flow, record_key, version)
);
CREATE INDEX delivered_by_time ON delivered (flow, at_ms);
CREATE TABLE runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    read_count BIGINT NOT NULL DEFAULT 0,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    api_calls BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX runs_by_flow ON runs (flow, id);
CREATE TABLE failed_records (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    record_key TEXT NOT NULL,
    version TEXT NOT NULL,
    origin TEXT NOT NULL,
    action BIGINT,
    error TEXT NOT NULL,
    record TEXT,
    sent TEXT,
    failed_at TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX failed_by_flow ON failed_records (flow, status, id);
CREATE INDEX failed_by_key ON failed_records (flow, record_key, status);
CREATE INDEX failed_by_run ON failed_records (run_id);
CREATE TABLE ledger (
    flow TEXT NOT NULL,
    action BIGINT NOT NULL,
    record_key TEXT NOT NULL,
    state TEXT NOT NULL,
    target_id TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (flow, action, record_key)
);
CREATE TABLE undo_marks (
    flow TEXT NOT NULL,
    action BIGINT NOT NULL,
    kind TEXT NOT NULL,
    mark TEXT NOT NULL,
    PRIMARY KEY (flow, action)
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    pid BIGINT NOT NULL,
    host TEXT NOT NULL,
    since TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
"#,
    // Change-only writes and `when:` filters.
    r#"
ALTER TABLE runs ADD COLUMN filtered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN unchanged BIGINT NOT NULL DEFAULT 0;
CREATE TABLE written (
    flow TEXT NOT NULL,
    action BIGINT NOT NULL,
    target_key TEXT NOT NULL,
    hashes TEXT NOT NULL,
    target_id TEXT,
    PRIMARY KEY (flow, action, target_key)
);
"#,
];

/// The pool's size unless the URL says `pool_size=N`.
const DEFAULT_POOL_SIZE: usize = 4;
/// The largest `pool_size` accepted.
const MAX_POOL_SIZE: usize = 32;
/// How long an operation waits for a free connection of the pool.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a connection may take, unless the URL says `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Leases lapse by the runners' clocks: past this much disagreement with the database's clock
/// a runner says so (two runners whose clocks differ by more see a lease lapse at different
/// instants, and the one ahead takes work over early; fencing keeps its commits safe, but the
/// work runs twice for a while).
const MAX_CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// Serialises migrations (with the schema's name as the second key).
const MIGRATION_LOCK: &str = "rivulet state migration";

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    /// `postgres://user@host:port/database`, never with the password.
    target: String,
    /// Forms of the password to strip from messages (as given and as written in the URL).
    hidden: Vec<String>,
    /// Stamps rows (`updated_at`, `failed_at`) and times leases.
    clock: SharedClock,
    /// How far this host's clock was ahead of the database's when the store connected.
    clock_skew: Option<chrono::TimeDelta>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("pool_size", &self.pool.status().max_size)
            .finish()
    }
}

/// Why an operation failed, before it is told as a [`StateError`] (with the password out).
enum Failure {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    State(StateError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        Failure::Pool(e)
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::State(e)
    }
}

fn corrupt(what: impl std::fmt::Display) -> Failure {
    Failure::State(StateError::Backend(what.to_string()))
}

/// A driver error with its causes (a server error with its SQLSTATE and detail).
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        return text;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    if let Some(hint) = tls::explain(&text) {
        text.push_str(" (");
        text.push_str(hint);
        text.push(')');
    }
    text
}

/// Free text headed for the state: scrubbed of secrets, and without NUL characters, which
/// PostgreSQL's `text` cannot hold (one would fail the whole page's commit, again and again).
fn stored_text(text: &str) -> String {
    let text = scrub(text);
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
    }
}

/// A `LIMIT`: `NULL` (no limit) when it does not fit.
fn sql_limit(n: usize) -> Option<i64> {
    i64::try_from(n).ok()
}

/// `url` without the options Rivulet reads itself, `pool_size=N` and TLS's (`sslmode` is
/// given back in a form the driver reads), the pool size and the TLS settings asked for.
fn take_own_options(url: &str) -> Result<(String, usize, tls::Settings), StateError> {
    let mut tls = tls::Settings::default();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut size, mut kept) = (DEFAULT_POOL_SIZE, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if let Some((key, value)) = pair.split_once('=')
            && tls.take(key, value).map_err(StateError::Unsupported)?
        {
            continue;
        }
        match pair.split_once('=') {
            Some(("pool_size", value)) => {
                size = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_POOL_SIZE).contains(n))
                    .ok_or_else(|| {
                        StateError::Unsupported(format!(
                            "pool_size in the PostgreSQL state URL must be a number from 1 to {MAX_POOL_SIZE}"
                        ))
                    })?;
            }
            _ => kept.push(pair),
        }
    }
    let mode = format!("sslmode={}", tls.driver_mode());
    kept.push(&mode);
    Ok((format!("{base}?{}", kept.join("&")), size, tls))
}

/// `text` scrubbed of secrets and of every form of the password in `hidden`.
fn hide(text: String, hidden: &[String]) -> String {
    hidden.iter().fold(scrub_owned(text), |t, h| {
        t.replace(h.as_str(), "[REDACTED]")
    })
}

/// The password as written in the URL (percent-encoded), when there is one.
pub(crate) fn written_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p)
}

/// `postgres://user@host:port/database`, for messages.
fn target_of(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    format!(
        "postgres://{user}{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

impl PostgresStore {
    /// Connects to the database `url` names (see the module's documentation for the options),
    /// and creates or migrates the state's tables in the connection's current schema. A schema
    /// that holds other tables but no Rivulet state, or state of a newer Rivulet, is refused.
    pub async fn connect(url: &str, clock: SharedClock) -> Result<PostgresStore, StateError> {
        let mut hidden = Vec::new();
        if let Some(written) = written_password(url).filter(|p| !p.is_empty()) {
            secrets::register(written);
            hidden.push(written.to_string());
        }
        let (bare, pool_size, tls) = take_own_options(url)?;
        let mut config: tokio_postgres::Config = bare.parse().map_err(|e| {
            StateError::Unsupported(hide(
                format!("the PostgreSQL state URL cannot be read: {}", describe(&e)),
                &hidden,
            ))
        })?;
        if let Some(password) = config.get_password().filter(|p| !p.is_empty()) {
            let password = String::from_utf8_lossy(password).into_owned();
            secrets::register(&password);
            if !hidden.contains(&password) {
                hidden.push(password);
            }
        }
        // Longest first, so no form is left half replaced.
        hidden.sort_by_key(|h| std::cmp::Reverse(h.len()));
        let target = target_of(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("rivulet");
        }
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(config, NoTls, recycling())
        } else {
            let connector = tls.connector().map_err(|e| {
                StateError::Unsupported(format!("PostgreSQL state at {target}: {e}"))
            })?;
            Manager::from_config(config, connector, recycling())
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| StateError::Backend(format!("PostgreSQL state at {target}: {e}")))?;
        let mut store = PostgresStore {
            pool,
            target,
            hidden,
            clock,
            clock_skew: None,
        };
        store.guard(store.migrate()).await?;
        store.clock_skew = store.measure_clock_skew().await;
        if let Some(skew) = store.clock_skew
            && skew.abs() > MAX_CLOCK_SKEW
        {
            tracing::warn!(
                state = %store.target,
                skew_ms = skew.num_milliseconds(),
                "this host's clock differs from the database's: leases lapse by the runners' clocks, so keep every runner's host in sync (NTP), or runners will take work over early"
            );
        }
        Ok(store)
    }

    /// How far this host's clock was ahead of the database's when the store connected
    /// (negative: behind), to within half a round trip.
    pub fn clock_skew(&self) -> Option<chrono::TimeDelta> {
        self.clock_skew
    }

    /// This host's clock minus the database's, read between two looks at this host's.
    async fn measure_clock_skew(&self) -> Option<chrono::TimeDelta> {
        let c = self.pool.get().await.ok()?;
        let before = self.clock.now();
        let row = c
            .query_typed_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .await
            .ok()?;
        let after = self.clock.now();
        let database = DateTime::from_timestamp_millis(row.try_get::<_, i64>(0).ok()?)?;
        Some(before + (after - before) / 2 - database)
    }

    /// Runs one statement on a pooled connection; the number of rows it touched.
    async fn execute(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<u64, StateError> {
        self.guard(async {
            let c = self.pool.get().await?;
            Ok::<_, Failure>(c.execute_typed(sql, params).await?)
        })
        .await
    }

    /// Runs `work`, telling its failure as a [`StateError`] without the password.
    async fn guard<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, StateError> {
        work.await.map_err(|f| self.fail(f))
    }

    fn hide(&self, text: String) -> String {
        hide(text, &self.hidden)
    }

    fn fail(&self, failure: Failure) -> StateError {
        let text = match failure {
            Failure::State(StateError::Backend(text)) => text,
            Failure::State(StateError::Corrupt(text)) => {
                return StateError::Corrupt(self.hide(text));
            }
            Failure::State(other) => return other,
            Failure::Pg(e) => describe(&e),
            Failure::Pool(PoolError::Backend(e)) => {
                format!("PostgreSQL state at {}: {}", self.target, describe(&e))
            }
            Failure::Pool(PoolError::Timeout(_)) => format!(
                "PostgreSQL state at {}: no connection free or made within {} s",
                self.target,
                WAIT_TIMEOUT.as_secs()
            ),
            Failure::Pool(e) => format!("PostgreSQL state at {}: {e}", self.target),
        };
        StateError::Backend(self.hide(text))
    }

    /// Creates or migrates the tables, one runner at a time (a transaction-scoped advisory
    /// lock keyed on the schema: concurrent runners wait, then find the work done).
    async fn migrate(&self) -> Result<(), Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let schema: Option<String> = tx
            .query_typed_one("SELECT current_schema()::text", &[])
            .await?
            .try_get(0)?;
        let Some(schema) = schema else {
            return Err(corrupt(format!(
                "PostgreSQL state at {}: no schema to keep the state in (none of the search_path exists)",
                self.target
            )));
        };
        tx.execute_typed(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
            &[(&MIGRATION_LOCK, Type::TEXT), (&schema, Type::TEXT)],
        )
        .await?;
        let tables: Vec<String> = tx
            .query_typed(
                "SELECT c.relname::text FROM pg_catalog.pg_class AS c
                 JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                &[(&schema, Type::TEXT)],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let version = if tables.iter().any(|t| t == "schema_version") {
            let found: Option<i64> = tx
                .query_typed_one("SELECT max(version) FROM schema_version", &[])
                .await?
                .try_get(0)?;
            found.unwrap_or(0)
        } else if tables.is_empty() {
            tx.batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
                .await?;
            0
        } else {
            return Err(Failure::State(StateError::Corrupt(format!(
                "schema `{schema}` of {} holds tables, but not Rivulet's state (no schema_version table); refusing to write into it",
                self.target
            ))));
        };
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(Failure::State(StateError::TooNew {
                found: version,
                supported,
            }));
        }
        if version < 0 {
            return Err(Failure::State(StateError::Corrupt(format!(
                "state schema version {version} is not one Rivulet wrote"
            ))));
        }
        if version < supported {
            for migration in &MIGRATIONS[version as usize..] {
                tx.batch_execute(migration).await?;
            }
            tx.batch_execute("DELETE FROM schema_version").await?;
            tx.execute_typed(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[(&supported, Type::INT8)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The lease `name` as stored, locked until the transaction ends.
async fn read_lease(
    c: &tokio_postgres::Transaction<'_>,
    name: &str,
) -> Result<Option<Lease>, Failure> {
    c.query_typed_opt(
        "SELECT holder, pid, host, since, token, expires_ms, name FROM leases WHERE name = $1 FOR UPDATE",
        &[(&name, Type::TEXT)],
    )
        .await?
        .map(|r| lease_row(&r))
        .transpose()
}

fn lease_row(r: &Row) -> Result<Lease, Failure> {
    let since: String = r.try_get(3)?;
    Ok(Lease {
        name: r.try_get(6)?,
        holder: Holder {
            id: r.try_get(0)?,
            pid: u32::try_from(r.try_get::<_, i64>(1)?).map_err(corrupt)?,
            host: r.try_get(2)?,
            since: DateTime::parse_from_rfc3339(&since)
                .map(|t| t.with_timezone(&Utc))
                .map_err(corrupt)?,
        },
        token: r.try_get(4)?,
        expires_at: from_ms(r.try_get(5)?),
    })
}

const RUN_COLUMNS: &str = "id, flow, started_at, finished_at, status, read_count, succeeded, failed, skipped, error, api_calls, filtered, unchanged";

fn run_row(r: &Row) -> Result<RunRow, Failure> {
    let status: String = r.try_get(4)?;
    let count = |i: usize| r.try_get::<_, i64>(i).map(|n| n as u64);
    Ok(RunRow {
        id: r.try_get(0)?,
        flow: r.try_get(1)?,
        started_at: r.try_get(2)?,
        finished_at: r.try_get(3)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown run status `{status}`")))?,
        counts: Counts {
            read: count(5)?,
            succeeded: count(6)?,
            failed: count(7)?,
            skipped: count(8)?,
            api_calls: count(10)?,
            filtered: count(11)?,
            unchanged: count(12)?,
        },
        error: r.try_get(9)?,
    })
}

const UPSERT_CURSOR: &str = "INSERT INTO cursors (flow, identity, state, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (flow) DO UPDATE SET identity = excluded.identity, state = excluded.state, updated_at = excluded.updated_at";

#[async_trait]
impl StateStore for PostgresStore {
    fn shared(&self) -> bool {
        true
    }

    async fn cursor(&self, flow: &str) -> Result<Option<Cursor>, StateError> {
        self.guard(async {
            let c = self.pool.get().await?;
            let row = c
                .query_typed_opt(
                    "SELECT identity, state FROM cursors WHERE flow = $1",
                    &[(&flow, Type::TEXT)],
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let state: String = row.try_get(1)?;
            let state = serde_json::from_str(&state)
                .map_err(|e| StateError::Corrupt(unreadable_cursor(flow, &e)))?;
            Ok::<_, Failure>(Some(Cursor {
                identity: row.try_get(0)?,
                state,
            }))
        })
        .await
    }

    async fn set_cursor(&self, flow: &str, cursor: &Cursor) -> Result<(), StateError> {
        let at = rfc3339(self.clock.now());
        self.execute(
            UPSERT_CURSOR,
            &[
                (&flow, Type::TEXT),
                (&cursor.identity, Type::TEXT),
                (&cursor.state.to_string(), Type::TEXT),
                (&at, Type::TEXT),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn start_run(&self, flow: &str, started_at: DateTime<Utc>) -> Result<i64, StateError> {
        let at = rfc3339(started_at);
        self.guard(async {
            let c = self.pool.get().await?;
            let row = c
                .query_typed_one(
                    "INSERT INTO runs (flow, started_at, status) VALUES ($1, $2, $3) RETURNING id",
                    &[
                        (&flow, Type::TEXT),
                        (&at, Type::TEXT),
                        (&RunStatus::Running.as_str(), Type::TEXT),
                    ],
                )
                .await?;
            Ok::<_, Failure>(row.try_get(0)?)
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
        let (at, error) = (rfc3339(finished_at), error.map(stored_text));
        self.execute(
            "UPDATE runs SET finished_at = $2, status = $3, error = $4 WHERE id = $1",
            &[
                (&run_id, Type::INT8),
                (&at, Type::TEXT),
                (&status.as_str(), Type::TEXT),
                (&error, Type::TEXT),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn delivered(
        &self,
        flow: &str,
        keys: &[(String, String)],
    ) -> Result<HashSet<(String, String)>, StateError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let (record_keys, versions): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
        self.guard(async {
            let c = self.pool.get().await?;
            // One query for the page: each (key, version) is one primary-key probe.
            let rows = c
                .query_typed(
                    "SELECT d.record_key, d.version FROM unnest($2::text[], $3::text[]) AS k(record_key, version)
                     JOIN delivered AS d ON d.flow = $1 AND d.record_key = k.record_key AND d.version = k.version",
                    &[
                        (&flow, Type::TEXT),
                        (&record_keys, Type::TEXT_ARRAY),
                        (&versions, Type::TEXT_ARRAY),
                    ],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<HashSet<_>, Failure>>()
        })
        .await
    }

    async fn prune_delivered(&self, flow: &str, before_ms: i64) -> Result<u64, StateError> {
        self.execute(
            "DELETE FROM delivered WHERE flow = $1 AND at_ms < $2",
            &[(&flow, Type::TEXT), (&before_ms, Type::INT8)],
        )
        .await
    }

    async fn forget_delivered(&self, flow: &str, since_ms: i64) -> Result<u64, StateError> {
        self.execute(
            "DELETE FROM delivered WHERE flow = $1 AND at_ms >= $2",
            &[(&flow, Type::TEXT), (&since_ms, Type::INT8)],
        )
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
        let action = action as i64;
        self.guard(async {
            let c = self.pool.get().await?;
            let rows = c
                .query_typed(
                    "SELECT l.record_key, l.state, l.target_id, l.updated_at FROM unnest($3::text[]) AS k(record_key)
                     JOIN ledger AS l ON l.flow = $1 AND l.action = $2 AND l.record_key = k.record_key",
                    &[
                        (&flow, Type::TEXT),
                        (&action, Type::INT8),
                        (&keys, Type::TEXT_ARRAY),
                    ],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let state: String = r.try_get(1)?;
                    let state = LedgerState::parse(&state)
                        .ok_or_else(|| corrupt(format!("unknown ledger state `{state}`")))?;
                    let at: Option<String> = r.try_get(3)?;
                    Ok((
                        r.try_get::<_, String>(0)?,
                        LedgerEntry {
                            state,
                            target_id: r.try_get(2)?,
                            at: at
                                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                                .map(|t| t.with_timezone(&Utc)),
                        },
                    ))
                })
                .collect::<Result<HashMap<_, _>, Failure>>()
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
        let action = action as i64;
        self.guard(async {
            let c = self.pool.get().await?;
            let rows = c
                .query_typed(
                    "SELECT w.target_key, w.hashes, w.target_id FROM unnest($3::text[]) AS k(target_key)
                     JOIN written AS w ON w.flow = $1 AND w.action = $2 AND w.target_key = k.target_key",
                    &[
                        (&flow, Type::TEXT),
                        (&action, Type::INT8),
                        (&keys, Type::TEXT_ARRAY),
                    ],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let hashes: String = r.try_get(1)?;
                    Ok((
                        r.try_get::<_, String>(0)?,
                        Written {
                            hashes: serde_json::from_str(&hashes)
                                .map_err(|e| corrupt(format!("a stored write hash: {e}")))?,
                            target_id: r.try_get(2)?,
                        },
                    ))
                })
                .collect::<Result<HashMap<_, _>, Failure>>()
        })
        .await
    }

    async fn forget_written(&self, flow: &str) -> Result<u64, StateError> {
        self.execute(
            "DELETE FROM written WHERE flow = $1",
            &[(&flow, Type::TEXT)],
        )
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
        let at = rfc3339(self.clock.now());
        let action = action as i64;
        // One row per key: ON CONFLICT DO UPDATE may not touch a row twice in one statement.
        let mut seen = HashSet::new();
        let keys: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| seen.insert(*k))
            .collect();
        self.execute(
                "INSERT INTO ledger (flow, action, record_key, state, updated_at)
                 SELECT $1, $2, k.record_key, $4, $5 FROM unnest($3::text[]) AS k(record_key)
                 ON CONFLICT (flow, action, record_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                &[
                    (&flow, Type::TEXT),
                    (&action, Type::INT8),
                    (&keys, Type::TEXT_ARRAY),
                    (&LedgerState::Pending.as_str(), Type::TEXT),
                    (&at, Type::TEXT),
                ],
            ).await.map(|_| ())
    }

    async fn mark_undo(&self, flow: &str, mark: &UndoMark) -> Result<(), StateError> {
        let action = mark.action as i64;
        let text = mark.mark.to_string();
        self.execute(
                "INSERT INTO undo_marks (flow, action, kind, mark) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (flow, action) DO UPDATE SET kind = excluded.kind, mark = excluded.mark",
                &[
                    (&flow, Type::TEXT),
                    (&action, Type::INT8),
                    (&mark.kind, Type::TEXT),
                    (&text, Type::TEXT),
                ],
            ).await.map(|_| ())
    }

    async fn undo_marks(&self, flow: &str) -> Result<Vec<UndoMark>, StateError> {
        self.guard(async {
            let c = self.pool.get().await?;
            let rows = c
                .query_typed(
                    "SELECT action, kind, mark FROM undo_marks WHERE flow = $1 ORDER BY action",
                    &[(&flow, Type::TEXT)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let mark: String = r.try_get(2)?;
                    Ok(UndoMark {
                        action: r.try_get::<_, i64>(0)? as usize,
                        kind: r.try_get(1)?,
                        mark: serde_json::from_str(&mark).map_err(corrupt)?,
                    })
                })
                .collect::<Result<Vec<_>, Failure>>()
        })
        .await
    }

    async fn commit(&self, flow: &str, commit: &Commit) -> Result<(), StateError> {
        let at = rfc3339(self.clock.now());
        self.guard(apply(self, flow, commit, &at)).await
    }

    async fn runs(&self, flow: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StateError> {
        let limit = sql_limit(limit);
        self.guard(async {
            let c = self.pool.get().await?;
            let rows = c
                .query_typed(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR flow = $1) ORDER BY id DESC LIMIT $2"
                    ),
                    &[(&flow, Type::TEXT), (&limit, Type::INT8)],
                )
                .await?;
            rows.iter().map(run_row).collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    async fn run(&self, id: i64) -> Result<Option<RunRow>, StateError> {
        self.guard(async {
            let c = self.pool.get().await?;
            c.query_typed_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
                &[(&id, Type::INT8)],
            )
            .await?
            .as_ref()
            .map(run_row)
            .transpose()
        })
        .await
    }

    async fn find_failures(
        &self,
        filter: &FailureFilter,
    ) -> Result<Vec<StoredFailure>, StateError> {
        let status = filter.status.map(FailureStatus::as_str);
        let limit = sql_limit(filter.limit);
        self.guard(async {
            let c = self.pool.get().await?;
            let rows = c
                .query_typed(
                    "SELECT id, flow, run_id, record_key, version, origin, action, error, record, failed_at, status, sent FROM failed_records
                     WHERE ($1::text IS NULL OR flow = $1) AND ($2::text IS NULL OR status = $2) AND ($3::int8 IS NULL OR run_id = $3)
                       AND ($4::int8[] IS NULL OR id = ANY ($4))
                     ORDER BY id LIMIT $5",
                    &[
                        (&filter.flow, Type::TEXT),
                        (&status, Type::TEXT),
                        (&filter.run_id, Type::INT8),
                        (&filter.ids, Type::INT8_ARRAY),
                        (&limit, Type::INT8),
                    ],
                )
                .await?;
            let json = |text: Option<String>| text.and_then(|s| serde_json::from_str(&s).ok());
            rows.iter()
                .map(|r| {
                    let status: String = r.try_get(10)?;
                    Ok(StoredFailure {
                        id: r.try_get(0)?,
                        flow: r.try_get(1)?,
                        run_id: r.try_get(2)?,
                        failed_at: r.try_get(9)?,
                        status: FailureStatus::parse(&status).ok_or_else(|| {
                            corrupt(format!("unknown failed-record status `{status}`"))
                        })?,
                        failure: FailedRecord {
                            key: r.try_get(3)?,
                            version: r.try_get(4)?,
                            origin: r.try_get(5)?,
                            action: r.try_get::<_, Option<i64>>(6)?.map(|a| a as usize),
                            error: r.try_get(7)?,
                            record: json(r.try_get(8)?),
                            sent: json(r.try_get(11)?),
                        },
                    })
                })
                .collect::<Result<Vec<_>, Failure>>()
        })
        .await
    }

    async fn cursors(&self, flow: Option<&str>) -> Result<Vec<StoredCursor>, StateError> {
        self.guard(async {
            let c = self.pool.get().await?;
            let rows = c
                .query_typed(
                    "SELECT flow, identity, state, updated_at FROM cursors WHERE ($1::text IS NULL OR flow = $1) ORDER BY flow",
                    &[(&flow, Type::TEXT)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let flow: String = r.try_get(0)?;
                    let state: String = r.try_get(2)?;
                    let state = serde_json::from_str(&state)
                        .map_err(|e| StateError::Corrupt(unreadable_cursor(&flow, &e)))?;
                    Ok(StoredCursor {
                        cursor: Cursor {
                            identity: r.try_get(1)?,
                            state,
                        },
                        updated_at: r.try_get(3)?,
                        flow,
                    })
                })
                .collect::<Result<Vec<_>, Failure>>()
        })
        .await
    }

    async fn delete_cursor(&self, flow: &str) -> Result<(), StateError> {
        self.execute(
            "DELETE FROM cursors WHERE flow = $1",
            &[(&flow, Type::TEXT)],
        )
        .await
        .map(|_| ())
    }

    async fn leases(&self) -> Result<Vec<Lease>, StateError> {
        self.guard(async {
            let c = self.pool.get().await?;
            let rows = c
                .query_typed(
                    "SELECT holder, pid, host, since, token, expires_ms, name FROM leases ORDER BY name",
                    &[],
                )
                .await?;
            rows.iter().map(lease_row).collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    async fn set_failure_status(
        &self,
        ids: &[i64],
        status: FailureStatus,
    ) -> Result<(), StateError> {
        self.execute(
            "UPDATE failed_records SET status = $2 WHERE id = ANY ($1)",
            &[(&ids, Type::INT8_ARRAY), (&status.as_str(), Type::TEXT)],
        )
        .await
        .map(|_| ())
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<Result<Lease, Lease>, StateError> {
        let now = self.clock.now();
        let expires_ms = ms_after(now, ttl);
        let since = rfc3339(holder.since);
        let pid = i64::from(holder.pid);
        let taken = |token| Lease {
            name: name.to_string(),
            holder: holder.clone(),
            token,
            expires_at: from_ms(expires_ms),
        };
        self.guard(async {
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            // The row, locked until this transaction ends: concurrent acquirers (and renewals)
            // of this lease queue behind it, and each sees what the one before it wrote.
            let mut current = read_lease(&tx, name).await?;
            if current.is_none() {
                // A first holder: a concurrent first insert makes this one wait for it, then do
                // nothing; the row it wrote is then read (locked) and weighed like any other.
                let inserted = tx
                    .execute_typed(
                        "INSERT INTO leases (name, holder, pid, host, since, token, expires_ms)
                         VALUES ($1, $2, $3, $4, $5, 1, $6) ON CONFLICT (name) DO NOTHING",
                        &[
                            (&name, Type::TEXT),
                            (&holder.id, Type::TEXT),
                            (&pid, Type::INT8),
                            (&holder.host, Type::TEXT),
                            (&since, Type::TEXT),
                            (&expires_ms, Type::INT8),
                        ],
                    )
                    .await?;
                if inserted == 1 {
                    tx.commit().await?;
                    return Ok(Ok(taken(1)));
                }
                current = read_lease(&tx, name).await?;
            }
            let Some(current) = current else {
                return Err(corrupt(format!(
                    "lease `{name}` vanished while it was being taken"
                )));
            };
            let token = if current.holder.id == holder.id {
                current.token
            } else if current.expires_at > now && !current.holder.is_dead_here(&holder.host) {
                tx.rollback().await?;
                return Ok(Err(current));
            } else {
                current.token + 1
            };
            tx.execute_typed(
                "UPDATE leases SET holder = $2, pid = $3, host = $4, since = $5, token = $6, expires_ms = $7
                 WHERE name = $1",
                &[
                    (&name, Type::TEXT),
                    (&holder.id, Type::TEXT),
                    (&pid, Type::INT8),
                    (&holder.host, Type::TEXT),
                    (&since, Type::TEXT),
                    (&token, Type::INT8),
                    (&expires_ms, Type::INT8),
                ],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, Failure>(Ok(taken(token)))
        })
        .await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StateError> {
        let expires_ms = ms_after(self.clock.now(), ttl);
        self.guard(async {
            let c = self.pool.get().await?;
            let n = c
                .execute_typed(
                    "UPDATE leases SET expires_ms = $3 WHERE name = $1 AND token = $2",
                    &[
                        (&lease.name, Type::TEXT),
                        (&lease.token, Type::INT8),
                        (&expires_ms, Type::INT8),
                    ],
                )
                .await?;
            if n == 1 {
                return Ok(Lease {
                    expires_at: from_ms(expires_ms),
                    ..lease.clone()
                });
            }
            let current: Option<i64> = c
                .query_typed_opt(
                    "SELECT token FROM leases WHERE name = $1",
                    &[(&lease.name, Type::TEXT)],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            Err(Failure::State(StateError::Fenced {
                name: lease.name.clone(),
                held: lease.token,
                current: current.filter(|t| *t != lease.token).unwrap_or(0),
            }))
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        // The row stays, lapsed: fencing tokens only ever grow.
        self.execute(
            "UPDATE leases SET expires_ms = 0 WHERE name = $1 AND token = $2",
            &[(&lease.name, Type::TEXT), (&lease.token, Type::INT8)],
        )
        .await
        .map(|_| ())
    }

    async fn interrupt_runs(
        &self,
        flows: Option<&[String]>,
        at: DateTime<Utc>,
        why: &str,
    ) -> Result<u64, StateError> {
        let (at, why) = (rfc3339(at), stored_text(why));
        self.execute(
            "UPDATE runs SET status = $1, finished_at = $2, error = $3
                     WHERE status = $4 AND ($5::text[] IS NULL OR flow = ANY ($5))",
            &[
                (&RunStatus::Interrupted.as_str(), Type::TEXT),
                (&at, Type::TEXT),
                (&why, Type::TEXT),
                (&RunStatus::Running.as_str(), Type::TEXT),
                (&flows, Type::TEXT_ARRAY),
            ],
        )
        .await
    }
}

/// One page's changes, in one transaction that first checks the page's fence; nothing written
/// (and [`StateError::Fenced`]) when the lease has passed to another holder.
async fn apply(
    store: &PostgresStore,
    flow: &str,
    commit: &Commit,
    at: &str,
) -> Result<(), Failure> {
    let mut c = store.pool.get().await?;
    let tx = c.transaction().await?;
    if let Some(fence) = &commit.fence {
        // FOR SHARE: a takeover (which updates the row) waits until this page is recorded, or
        // this check sees its new token; either way no page lands after a takeover.
        let current: Option<i64> = tx
            .query_typed_opt(
                "SELECT token FROM leases WHERE name = $1 FOR SHARE",
                &[(&fence.name, Type::TEXT)],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if let Some(current) = current.filter(|t| *t != fence.token) {
            tx.rollback().await?;
            return Err(Failure::State(StateError::Fenced {
                name: fence.name.clone(),
                held: fence.token,
                current,
            }));
        }
    }
    if !commit.succeeded_keys.is_empty() {
        tx.execute_typed(
            "UPDATE failed_records SET status = $3
             WHERE flow = $1 AND status IN ($4, $5) AND record_key = ANY ($2)",
            &[
                (&flow, Type::TEXT),
                (&commit.succeeded_keys, Type::TEXT_ARRAY),
                (&FailureStatus::Resolved.as_str(), Type::TEXT),
                (&FailureStatus::Failed.as_str(), Type::TEXT),
                (&FailureStatus::Replayed.as_str(), Type::TEXT),
            ],
        )
        .await?;
    }
    if !commit.delivered.is_empty() {
        let mut keys = Vec::with_capacity(commit.delivered.len());
        let mut versions = Vec::with_capacity(commit.delivered.len());
        let mut times = Vec::with_capacity(commit.delivered.len());
        for (key, version, at_ms) in &commit.delivered {
            keys.push(key.as_str());
            versions.push(version.as_str());
            times.push(*at_ms);
        }
        tx.execute_typed(
            "INSERT INTO delivered (flow, record_key, version, at_ms)
             SELECT $1, k.record_key, k.version, k.at_ms FROM unnest($2::text[], $3::text[], $4::int8[]) AS k(record_key, version, at_ms)
             ON CONFLICT (flow, record_key, version) DO NOTHING",
            &[
                (&flow, Type::TEXT),
                (&keys, Type::TEXT_ARRAY),
                (&versions, Type::TEXT_ARRAY),
                (&times, Type::INT8_ARRAY),
            ],
        )
        .await?;
    }
    if !commit.failed.is_empty() {
        // Nothing that reaches the state holds a secret (an error body a server echoed, a
        // record that carried one).
        let n = commit.failed.len();
        let (mut keys, mut versions, mut origins, mut actions) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut errors, mut records, mut sent) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for f in &commit.failed {
            keys.push(f.key.as_str());
            versions.push(f.version.as_str());
            origins.push(stored_text(&f.origin));
            actions.push(f.action.map(|a| a as i64));
            errors.push(stored_text(&f.error));
            records.push(f.record.as_ref().map(|r| scrub_owned(r.to_string())));
            sent.push(f.sent.as_ref().map(|r| scrub_owned(r.to_string())));
        }
        tx.execute_typed(
            "INSERT INTO failed_records (flow, run_id, record_key, version, origin, action, error, record, failed_at, status, sent)
             SELECT $1, $2, f.record_key, f.version, f.origin, f.action, f.error, f.record, $10, $11, f.sent
             FROM unnest($3::text[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::text[], $9::text[])
                  WITH ORDINALITY AS f(record_key, version, origin, action, error, record, sent, n)
             ORDER BY f.n",
            &[
                (&flow, Type::TEXT),
                (&commit.run_id, Type::INT8),
                (&keys, Type::TEXT_ARRAY),
                (&versions, Type::TEXT_ARRAY),
                (&origins, Type::TEXT_ARRAY),
                (&actions, Type::INT8_ARRAY),
                (&errors, Type::TEXT_ARRAY),
                (&records, Type::TEXT_ARRAY),
                (&sent, Type::TEXT_ARRAY),
                (&at, Type::TEXT),
                (&FailureStatus::Failed.as_str(), Type::TEXT),
            ],
        )
        .await?;
    }
    if !commit.ledger_done.is_empty() {
        // One row per record: the last of repeats wins (at its first place), as one by one would.
        let done: IndexMap<(i64, &str), Option<&str>> = commit
            .ledger_done
            .iter()
            .map(|(action, key, target)| ((*action as i64, key.as_str()), target.as_deref()))
            .collect();
        let actions: Vec<i64> = done.iter().map(|((a, _), _)| *a).collect();
        let keys: Vec<&str> = done.iter().map(|((_, k), _)| *k).collect();
        let targets: Vec<Option<&str>> = done.iter().map(|(_, t)| *t).collect();
        tx.execute_typed(
            "INSERT INTO ledger (flow, action, record_key, state, target_id, updated_at)
             SELECT $1, k.action, k.record_key, $5, k.target_id, $6
             FROM unnest($2::int8[], $3::text[], $4::text[]) AS k(action, record_key, target_id)
             ON CONFLICT (flow, action, record_key) DO UPDATE SET state = excluded.state, target_id = excluded.target_id, updated_at = excluded.updated_at",
            &[
                (&flow, Type::TEXT),
                (&actions, Type::INT8_ARRAY),
                (&keys, Type::TEXT_ARRAY),
                (&targets, Type::TEXT_ARRAY),
                (&LedgerState::Done.as_str(), Type::TEXT),
                (&at, Type::TEXT),
            ],
        )
        .await?;
    }
    if !commit.ledger_clear.is_empty() {
        let actions: Vec<i64> = commit.ledger_clear.iter().map(|(a, _)| *a as i64).collect();
        let keys: Vec<&str> = commit
            .ledger_clear
            .iter()
            .map(|(_, k)| k.as_str())
            .collect();
        tx.execute_typed(
            "DELETE FROM ledger AS l USING unnest($2::int8[], $3::text[]) AS k(action, record_key)
             WHERE l.flow = $1 AND l.action = k.action AND l.record_key = k.record_key",
            &[
                (&flow, Type::TEXT),
                (&actions, Type::INT8_ARRAY),
                (&keys, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    }
    if !commit.written.is_empty() {
        // One row per target: the last of repeats wins, as one by one would.
        let last: IndexMap<(usize, &str), &Written> = commit
            .written
            .iter()
            .map(|(action, key, written)| ((*action, key.as_str()), written))
            .collect();
        let mut actions = Vec::with_capacity(last.len());
        let mut keys = Vec::with_capacity(last.len());
        let mut hashes = Vec::with_capacity(last.len());
        let mut ids: Vec<Option<&str>> = Vec::with_capacity(last.len());
        for ((action, key), written) in last {
            actions.push(action as i64);
            keys.push(key);
            hashes
                .push(serde_json::to_string(&written.hashes).map_err(|e| corrupt(e.to_string()))?);
            ids.push(written.target_id.as_deref());
        }
        tx.execute_typed(
            "INSERT INTO written (flow, action, target_key, hashes, target_id)
             SELECT $1, k.action, k.target_key, k.hashes, k.target_id
             FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[]) AS k(action, target_key, hashes, target_id)
             ON CONFLICT (flow, action, target_key) DO UPDATE SET hashes = excluded.hashes,
               target_id = coalesce(excluded.target_id, written.target_id)",
            &[
                (&flow, Type::TEXT),
                (&actions, Type::INT8_ARRAY),
                (&keys, Type::TEXT_ARRAY),
                (&hashes, Type::TEXT_ARRAY),
                (&ids, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    }
    if commit.clear_undo_marks {
        tx.execute_typed(
            "DELETE FROM undo_marks WHERE flow = $1",
            &[(&flow, Type::TEXT)],
        )
        .await?;
    }
    if let Some(cursor) = &commit.cursor {
        tx.execute_typed(
            UPSERT_CURSOR,
            &[
                (&flow, Type::TEXT),
                (&cursor.identity, Type::TEXT),
                (&cursor.state.to_string(), Type::TEXT),
                (&at, Type::TEXT),
            ],
        )
        .await?;
    }
    let n = commit.counts;
    if n != Counts::default() {
        let counts = [
            n.read as i64,
            n.succeeded as i64,
            n.failed as i64,
            n.skipped as i64,
            n.api_calls as i64,
            n.filtered as i64,
            n.unchanged as i64,
        ];
        let params: Vec<(&(dyn ToSql + Sync), Type)> =
            std::iter::once((&commit.run_id as &(dyn ToSql + Sync), Type::INT8))
                .chain(
                    counts
                        .iter()
                        .map(|c| (c as &(dyn ToSql + Sync), Type::INT8)),
                )
                .collect();
        tx.execute_typed(
            "UPDATE runs SET read_count = read_count + $2, succeeded = succeeded + $3, failed = failed + $4,
               skipped = skipped + $5, api_calls = api_calls + $6, filtered = filtered + $7,
               unchanged = unchanged + $8 WHERE id = $1",
            &params,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_options_are_taken_out_of_the_url() {
        let take = |url: &str| {
            let (url, size, tls) = take_own_options(url).unwrap();
            (url, size, tls.mode, tls.root_cert)
        };
        assert_eq!(
            take("postgres://u@h/db"),
            (
                "postgres://u@h/db?sslmode=prefer".to_string(),
                DEFAULT_POOL_SIZE,
                tls::Mode::Prefer,
                None
            )
        );
        assert_eq!(
            take("postgres://u@h/db?pool_size=2&sslmode=disable"),
            (
                "postgres://u@h/db?sslmode=disable".to_string(),
                2,
                tls::Mode::Disable,
                None
            )
        );
        assert_eq!(
            take(
                "postgres://u@h/db?connect_timeout=3&pool_size=8&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x"
            ),
            (
                "postgres://u@h/db?connect_timeout=3&application_name=x&sslmode=require"
                    .to_string(),
                8,
                tls::Mode::VerifyFull,
                Some(std::path::PathBuf::from("/etc/ca.pem"))
            )
        );
        assert!(take_own_options("postgres://u@h/db?pool_size=0").is_err());
        assert!(take_own_options("postgres://u@h/db?pool_size=many").is_err());
        let e = take_own_options("postgres://u@h/db?sslmode=verify").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
    }

    #[test]
    fn the_written_password_is_found() {
        assert_eq!(
            written_password("postgres://me:p%40ss@host:5432/db?x=1"),
            Some("p%40ss")
        );
        assert_eq!(written_password("postgres://me@host/db"), None);
        assert_eq!(written_password("postgres://host/db"), None);
    }

    #[test]
    fn text_for_the_state_has_no_nul() {
        assert_eq!(stored_text("a\0b"), "a\u{FFFD}b");
    }
}
