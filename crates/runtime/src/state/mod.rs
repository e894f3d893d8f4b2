//! Durable state: cursors, dedupe keys, runs, failed records and the write-ahead ledger.
//!
//! Everything a page of records changes is written in **one transaction** ([`Commit`]): the
//! outcome of each record (delivered, or a failed-record entry that can be replayed), the run's
//! counts and the cursor that covers them. A crash before the commit re-reads the page; a crash
//! after it reads on from the new cursor. Writes that are not idempotent (HubSpot creates, file
//! appends) are announced *before* they are made (ledger entries, undo marks), so a restart
//! knows what may already have happened.
//!
//! [`StateStore`] is backend-neutral: typed statuses, a neutral error, batched lookups; the SQL
//! of each backend stays inside it ([`sqlite`]). [`open`] picks the backend from `--state`.

pub mod postgres;
mod postgres_tls;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivulet_http::SharedClock;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// An instant as both stores keep it in text: RFC 3339, milliseconds, UTC (so both print the
/// same).
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Epoch milliseconds `ttl` after `now`, saturating (a lease's expiry).
fn ms_after(now: DateTime<Utc>, ttl: std::time::Duration) -> i64 {
    now.timestamp_millis()
        .saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The instant of epoch milliseconds `ms`; beyond chrono's range, the latest it has.
fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why a stored cursor that does not parse stops its flow, and the way out.
fn unreadable_cursor(flow: &str, e: &serde_json::Error) -> String {
    format!(
        "the stored cursor of `{flow}` is not JSON ({e}); the flow stops rather than deliver everything again. Reset it with `rivulet cursor reset {flow} --to …`"
    )
}

/// A state store failure. Fatal for the page at hand: nothing is acknowledged without it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backend refused or failed an operation.
    #[error("state store: {0}")]
    Backend(String),
    /// The state file or its folder could not be created or read.
    #[error("state store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state was written by a newer Rivulet.
    #[error("state schema version {found} is newer than this Rivulet understands ({supported})")]
    TooNew {
        /// Version found.
        found: i64,
        /// Newest version known here.
        supported: i64,
    },
    /// The state exists but is not Rivulet's, or is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// `--state` names a backend this build does not have.
    #[error("{0}")]
    Unsupported(String),
    /// The lease this work was done under has passed to another runner: nothing was recorded.
    #[error(
        "lease `{name}` was taken over by another runner (fencing token {held} is no longer {current}); nothing was recorded"
    )]
    Fenced {
        /// The lease.
        name: String,
        /// The token this runner held.
        held: i64,
        /// The token now in force.
        current: i64,
    },
}

/// Opens the state store `--state` names: a `postgres://` URL, or a path (or `sqlite://PATH`)
/// for the embedded SQLite store. Rows are stamped with `clock`'s time.
pub async fn open(location: &str, clock: SharedClock) -> Result<Arc<dyn StateStore>, StateError> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::connect(location, clock).await?));
    }
    if let Some((scheme, _)) = location.split_once("://")
        && scheme != "sqlite"
    {
        return Err(StateError::Unsupported(format!(
            "`{scheme}://` is not a state store; give a file path (SQLite) or a postgres:// URL"
        )));
    }
    let path = PathBuf::from(location.strip_prefix("sqlite://").unwrap_or(location));
    Ok(Arc::new(SqliteStore::open_with_clock(&path, clock).await?))
}

#[cfg(test)]
mod location_tests {
    #[test]
    fn a_urls_password_is_not_shown() {
        assert_eq!(
            super::display_location("postgres://me:s%40cret@db:5432/rivulet"),
            "postgres://me:***@db:5432/rivulet"
        );
        assert_eq!(
            super::display_location("postgres://me@db/x"),
            "postgres://me@db/x"
        );
        assert_eq!(
            super::display_location("/var/lib/state.db"),
            "/var/lib/state.db"
        );
    }
}

/// `--state` as it may be shown: a URL's password replaced by `***` (logs, errors and the
/// summary name the store without giving its key away).
pub fn display_location(location: &str) -> String {
    match postgres::written_password(location).filter(|p| !p.is_empty()) {
        Some(password) => location.replacen(&format!(":{password}@"), ":***@", 1),
        None => location.to_string(),
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Under way.
    Running,
    /// Every record went through.
    Succeeded,
    /// It finished, but some records failed (they are kept for replay).
    Failed,
    /// It stopped early on an error (a failed poll, an unreadable source).
    Error,
    /// A destination (or the source) was unreachable: nothing past the last recorded page moved,
    /// and the same records are tried again after a backoff.
    Waiting,
    /// The runner stopped (grace period over, crash, kill) before the run finished; its
    /// unrecorded records are read again.
    Interrupted,
}

/// Where a failed record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureStatus {
    /// Waiting for an operator or a replay.
    Failed,
    /// Sent again by a replay.
    Replayed,
    /// The same record went through later (a later version, a replay).
    Resolved,
    /// Dropped on purpose by an operator.
    Discarded,
}

/// Where an announced write stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerState {
    /// Announced; whether it happened is unknown until it is recorded.
    Pending,
    /// Made, and recorded.
    Done,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored (and printed) name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// The value of a stored name.
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($text => Some($ty::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(RunStatus {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Error => "error",
    Waiting => "waiting",
    Interrupted => "interrupted",
});
text_enum!(FailureStatus {
    Failed => "failed",
    Replayed => "replayed",
    Resolved => "resolved",
    Discarded => "discarded",
});
text_enum!(LedgerState { Pending => "pending", Done => "done" });

/// A flow's cursor: what it tracks, and how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// What the cursor is of (a trigger's connection, object and event; a source's settings).
    pub identity: String,
    /// The trigger's or source's own state.
    pub state: Value,
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
    /// What the failing action was given (the mapped fields), when it got that far.
    pub sent: Option<Value>,
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
    /// Where it stands.
    pub status: FailureStatus,
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
    /// Records read again where windows overlap and dropped as already delivered (not
    /// records of this run: they were delivered by an earlier one).
    pub skipped: u64,
    /// Calls the run's actions made to their systems (HTTP requests, retries included).
    pub api_calls: u64,
    /// Records a `when:` condition kept out (never sent, never a failure).
    pub filtered: u64,
    /// Records whose mapped properties were already in the target as last written: no call.
    pub unchanged: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.read += o.read;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.skipped += o.skipped;
        self.api_calls += o.api_calls;
        self.filtered += o.filtered;
        self.unchanged += o.unchanged;
    }
}

/// Which failed records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureFilter {
    /// Of this flow only.
    pub flow: Option<String>,
    /// In this status only.
    pub status: Option<FailureStatus>,
    /// Of this run only.
    pub run_id: Option<i64>,
    /// These ids only.
    pub ids: Option<Vec<i64>>,
    /// At most this many (oldest first).
    pub limit: usize,
}

/// A flow's cursor as stored, for `rivulet cursor show`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCursor {
    /// The flow.
    pub flow: String,
    /// The cursor.
    pub cursor: Cursor,
    /// When it last moved (RFC 3339).
    pub updated_at: String,
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
    /// Where it stands.
    pub status: RunStatus,
    /// Its counts.
    pub counts: Counts,
    /// Why the run stopped, for [`RunStatus::Error`].
    pub error: Option<String>,
}

/// A ledger entry: a write announced before it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Where it stands.
    pub state: LedgerState,
    /// The target's id once done (a HubSpot record id).
    pub target_id: Option<String>,
    /// When it was announced (or last changed).
    pub at: Option<DateTime<Utc>>,
}

/// A write that can be undone, announced before it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct UndoMark {
    /// The action index.
    pub action: usize,
    /// The connector's key of the action (`file`).
    pub kind: String,
    /// What the connector needs to undo the write (a file's path and length before it).
    pub mark: Value,
}

/// Who holds (or wants) a lease: one runner process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Unique per runner process (host, pid and start).
    pub id: String,
    /// The process id.
    pub pid: u32,
    /// The host name.
    pub host: String,
    /// When the runner started.
    pub since: DateTime<Utc>,
}

impl Holder {
    /// This process, now.
    pub fn this_process(now: DateTime<Utc>) -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let pid = std::process::id();
        Holder {
            id: format!("{host}:{pid}:{}", now.timestamp_millis()),
            pid,
            host,
            since: now,
        }
    }

    /// Whether this holder is a process on this host that no longer runs (a crashed runner,
    /// whose lease can be taken without waiting for it to expire). A killed process its parent
    /// has not reaped yet (a zombie) no longer runs either.
    pub fn is_dead_here(&self, this_host: &str) -> bool {
        // Without /proc nothing can be told: wait for the lease to lapse.
        if self.host != this_host
            || !cfg!(target_os = "linux")
            || !std::path::Path::new("/proc/self").exists()
        {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // The state is the first field after the command name, which ends with the last `)`.
            Ok(stat) => stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| matches!(state, 'Z' | 'X')),
            Err(_) => true,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} on {} (since {})",
            self.pid,
            self.host,
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// A lease on a piece of work (the whole state, a trigger group, a scheduled flow): one
/// holder at a time, until it expires or is released. Each new holder gets a larger fencing
/// token, and every commit made under the lease checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is on.
    pub name: String,
    /// The holder.
    pub holder: Holder,
    /// The fencing token: larger for each new holder.
    pub token: i64,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A lease's name and token, checked by every commit made under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease.
    pub name: String,
    /// The token it was held with.
    pub token: i64,
}

/// What an action last wrote to one target record (change-only writes): a hash of each
/// property's value as sent, and the target's id when it said.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Written {
    /// Property name → hash of the value last written.
    pub hashes: std::collections::BTreeMap<String, String>,
    /// The target's id (a HubSpot id), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

/// Everything one page changes, applied atomically.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// What each action wrote to each target, by (action, target key): committed with the
    /// outcomes so a crash never leaves a hash for a write that was not recorded.
    pub written: Vec<(usize, String, Written)>,
    /// The run the page belongs to.
    pub run_id: i64,
    /// The lease the page was processed under; the commit is refused unless it still holds.
    pub fence: Option<Fence>,
    /// Keys of records every action took: earlier failures of them are now resolved.
    pub succeeded_keys: Vec<String>,
    /// Keys (key, version, at_ms) whose outcome is now recorded, for dedupe of re-reads.
    pub delivered: Vec<(String, String, i64)>,
    /// Records that failed.
    pub failed: Vec<FailedRecord>,
    /// Ledger entries whose write is now done: (action, key, target id).
    pub ledger_done: Vec<(usize, String, Option<String>)>,
    /// Ledger entries to forget (pending writes that turned out not to happen or were recorded
    /// as failures): (action, key).
    pub ledger_clear: Vec<(usize, String)>,
    /// Undo marks to drop: the writes they guarded are now recorded.
    pub clear_undo_marks: bool,
    /// The cursor after this page.
    pub cursor: Option<Cursor>,
    /// What to add to the run's counts.
    pub counts: Counts,
}

/// The state store, shared by every flow of a runner.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The cursor of `flow`.
    async fn cursor(&self, flow: &str) -> Result<Option<Cursor>, StateError>;
    /// Replaces the cursor of `flow` outright (a reset, or a poll that found nothing).
    async fn set_cursor(&self, flow: &str, cursor: &Cursor) -> Result<(), StateError>;
    /// Opens a run.
    async fn start_run(&self, flow: &str, started_at: DateTime<Utc>) -> Result<i64, StateError>;
    /// Closes a run.
    async fn finish_run(
        &self,
        run_id: i64,
        finished_at: DateTime<Utc>,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StateError>;
    /// Which of these (key, version) pairs of `flow` are already recorded (one lookup).
    async fn delivered(
        &self,
        flow: &str,
        keys: &[(String, String)],
    ) -> Result<HashSet<(String, String)>, StateError>;
    /// Forgets dedupe keys whose timestamp is older than `before_ms`.
    async fn prune_delivered(&self, flow: &str, before_ms: i64) -> Result<u64, StateError>;
    /// What `flow`'s action `action` last wrote to these targets (one lookup).
    async fn written(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<HashMap<String, Written>, StateError>;
    /// Forgets what `flow` wrote (its change-only hashes): its next writes send everything.
    async fn forget_written(&self, flow: &str) -> Result<u64, StateError>;
    /// Forgets dedupe keys whose timestamp is `since_ms` or later: after a cursor reset those
    /// records are delivered again, as the operator asked.
    async fn forget_delivered(&self, flow: &str, since_ms: i64) -> Result<u64, StateError>;
    /// Ledger entries of `flow`'s action `action` for these keys (one lookup).
    async fn ledger(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<HashMap<String, LedgerEntry>, StateError>;
    /// Announces writes before they are made (committed immediately).
    async fn ledger_pending(
        &self,
        flow: &str,
        action: usize,
        keys: &[String],
    ) -> Result<(), StateError>;
    /// Records an undo mark before a write (committed immediately).
    async fn mark_undo(&self, flow: &str, mark: &UndoMark) -> Result<(), StateError>;
    /// Undo marks of writes announced but never recorded (a crash came between).
    async fn undo_marks(&self, flow: &str) -> Result<Vec<UndoMark>, StateError>;
    /// Applies a page's changes atomically.
    async fn commit(&self, flow: &str, commit: &Commit) -> Result<(), StateError>;
    /// Recent runs, newest first.
    async fn runs(&self, flow: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StateError>;
    /// One run.
    async fn run(&self, id: i64) -> Result<Option<RunRow>, StateError>;
    /// Failed records matching `filter`, oldest first.
    async fn find_failures(&self, filter: &FailureFilter)
    -> Result<Vec<StoredFailure>, StateError>;
    /// Failed records of `flow` (all flows when `None`) in `status`, oldest first.
    async fn failures(
        &self,
        flow: Option<&str>,
        status: FailureStatus,
        limit: usize,
    ) -> Result<Vec<StoredFailure>, StateError> {
        self.find_failures(&FailureFilter {
            flow: flow.map(str::to_string),
            status: Some(status),
            limit,
            ..FailureFilter::default()
        })
        .await
    }
    /// The stored cursors (of one flow, or all), by flow name.
    async fn cursors(&self, flow: Option<&str>) -> Result<Vec<StoredCursor>, StateError>;
    /// Forgets a flow's cursor: it starts afresh (from `start_from`, or its source's start).
    async fn delete_cursor(&self, flow: &str) -> Result<(), StateError>;
    /// Whether several runners (on several machines) may share this store, each running the
    /// work it holds a lease on; otherwise one runner holds the whole store.
    fn shared(&self) -> bool {
        false
    }
    /// Every lease, for `rivulet runners`.
    async fn leases(&self) -> Result<Vec<Lease>, StateError>;
    /// Sets the status of failed records.
    async fn set_failure_status(
        &self,
        ids: &[i64],
        status: FailureStatus,
    ) -> Result<(), StateError>;
    /// Takes lease `name` for `holder` for `ttl` when it is free, expired, already this
    /// holder's, or held by a process on this host that no longer runs; otherwise says who
    /// holds it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &Holder,
        ttl: std::time::Duration,
    ) -> Result<Result<Lease, Lease>, StateError>;
    /// Extends a held lease; [`StateError::Fenced`] when another holder has taken it.
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<Lease, StateError>;
    /// Gives a lease up (a no-op when another holder has it by now).
    async fn release_lease(&self, lease: &Lease) -> Result<(), StateError>;
    /// Marks the runs still `running` as interrupted: called by the holder of the whole state,
    /// they are what a stopped or crashed runner left behind. Returns how many.
    async fn interrupt_runs(
        &self,
        flows: Option<&[String]>,
        at: DateTime<Utc>,
        why: &str,
    ) -> Result<u64, StateError>;
}
