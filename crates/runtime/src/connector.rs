//! The interfaces every connector implements. The runner and the executor know nothing else
//! about a connector: a trigger polls changes from a durable cursor, a source reads pages from
//! a checkpoint, and an action writes a batch and says, record by record, what happened — and
//! how a retry of that write stays safe.
//!
//! Each connector's folder under [`crate::connectors`] implements these; `docs/connectors.md`
//! walks through the file connector.

use crate::record::{ActionOutcome, Item, Prepared};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivulet_mapping::{Context, OutputMode};
use serde_json::Value;
use std::time::Duration;

/// How an action's write stays exactly-once across a crash between sending it and recording
/// its outcome. The executor does the bookkeeping each answer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrySafety {
    /// Writing the same record again changes nothing (an update by id, an upsert by a unique
    /// property): after a crash the page is simply written again.
    Idempotent,
    /// A create: announced in the ledger before it is sent; after a crash an announced record is
    /// looked up ([`Action::find_created`]) instead of being created a second time.
    LedgeredCreate,
    /// A write that can be taken back: a mark ([`Action::undo_mark`]) is recorded before it,
    /// and after a crash whatever was written after the mark is undone ([`undo`]) and written
    /// again (file appends: the file is cut back to its recorded length).
    ///
    /// [`undo`]: crate::connectors::undo
    Undoable,
    /// Sent again after a crash with the same idempotency key, so the receiver can drop the
    /// repeat (HTTP sinks: `Idempotency-Key`).
    AtLeastOnceWithKey,
}

/// What an earlier action of the flow made for the same record, handed to an action that
/// builds on it (`associate_with`): the created deal's id for its line items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// The earlier action, for messages (`` `deal` (action 0) ``).
    pub action: String,
    /// What its ids name, in its connector's terms (HubSpot: `deals`), when it says.
    pub object: Option<String>,
    /// The ids it reported for the record.
    pub ids: Vec<String>,
    /// Whether those records were created by this very attempt, so nothing can hang off them
    /// yet (a new deal has no line items); false when they may be older (an update, an upsert,
    /// a create found after a crash or made by an earlier run).
    pub new: bool,
}

/// Whether an action checks or makes something for a page before any action writes it (see
/// [`Action::prepare`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preparation {
    /// Nothing to prepare.
    None,
    /// Reads only (products looked up by SKU).
    Reads,
    /// May create things the records share (missing products): the executor marks the
    /// attempt in the ledger first, and an attempt after a crash is told when the interrupted
    /// one began, so lookups that lag writes (search) can allow for it.
    Writes,
}

/// An action: writes mapped records somewhere.
#[async_trait]
pub trait Action: Send + Sync {
    /// The connector's key (`hubspot`, `file`, `http`), for logs and dry runs.
    fn kind(&self) -> &'static str;

    /// Where it writes, for people ("http connection `erp_webhook`", "file out/a.jsonl").
    fn destination(&self) -> String {
        self.kind().to_string()
    }

    /// The form the action takes mapped values in: HubSpot's wire format, or native JSON.
    fn output_mode(&self) -> OutputMode;

    /// How a retry of this action's writes stays safe.
    fn retry_safety(&self) -> RetrySafety;

    /// Writes `batch`: one outcome per record, in order. For [`RetrySafety::LedgeredCreate`],
    /// `known_ids[i]` is the id an interrupted earlier attempt already created for record `i`
    /// (turning its create into an update); empty otherwise.
    async fn write(
        &self,
        batch: &[Prepared<'_>],
        known_ids: &[Option<String>],
        ctx: &Context,
    ) -> Vec<ActionOutcome>;

    /// [`RetrySafety::LedgeredCreate`]: for each record whose create an interruption left in
    /// doubt (announced at `announced[i]`), whether it happened: `Ok(Some(id))` it did,
    /// `Ok(None)` it surely did not, `Err` nobody can tell. One call for a whole page.
    async fn find_created(
        &self,
        records: &[Prepared<'_>],
        announced: &[Option<DateTime<Utc>>],
    ) -> Vec<Result<Option<String>, String>> {
        let _ = announced;
        records
            .iter()
            .map(|_| Err("this action cannot look records up".into()))
            .collect()
    }

    /// [`RetrySafety::Undoable`]: the mark to record before a write, self-describing enough
    /// for [`crate::connectors::undo`] to take the write back.
    async fn undo_mark(&self) -> Result<Value, String> {
        Ok(Value::Null)
    }

    /// What writing `records` would do, without writing (`rivulet plan`): by default a write
    /// to the destination, whose current state cannot be read. Reads are allowed (batched).
    async fn plan(&self, records: &[Prepared<'_>], ctx: &Context) -> Vec<Planned> {
        let _ = ctx;
        let what = format!("{} to {}", self.kind(), self.destination());
        vec![Planned::Write { what }; records.len()]
    }

    /// For change-only writes: the target record this record's write goes to and the fields
    /// it sends. An action that answers lets the executor skip a record whose fields are as
    /// last written to that target, and send only the changed ones (plus `keep`) when some
    /// changed. `None` (the default): the action writes every time.
    fn change_target(&self, record: &Prepared<'_>, ctx: &Context) -> Option<ChangeTarget> {
        let _ = (record, ctx);
        None
    }

    /// What a dry run prints as the record's fields for this action: by default the mapped
    /// fields it takes.
    fn preview(&self, record: &Prepared<'_>, ctx: &Context) -> Value {
        let _ = ctx;
        Value::Object(
            record
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// What the ids this action reports name (HubSpot: the object type, `deals`), for the
    /// actions that build on them.
    fn object(&self) -> Option<String> {
        None
    }

    /// Whether an id this action reports for a record it was given no earlier id for
    /// (`known_ids`) names a record it has just created (true for creates).
    fn creates_new(&self) -> bool {
        false
    }

    /// Whether the action prepares pages (see [`Action::prepare`]).
    fn preparation(&self) -> Preparation {
        Preparation::None
    }

    /// Called for a page before any action of the flow writes it: checks and makes what this
    /// action's writes will need (a deal's line items' products), so that a record that cannot
    /// go through fails whole — its transaction — before anything of it is written. One answer
    /// per record: `Ok` or the outcome to fail it with (`Failed`, kept for replay; `Transient`:
    /// the whole page waits). `interrupted`: when an earlier attempt at preparing, which a crash
    /// cut short, began ([`Preparation::Writes`] only).
    async fn prepare(
        &self,
        batch: &[Prepared<'_>],
        interrupted: Option<DateTime<Utc>>,
        ctx: &Context,
    ) -> Vec<Result<(), ActionOutcome>> {
        let _ = (interrupted, ctx);
        batch.iter().map(|_| Ok(())).collect()
    }

    /// [`Action::write`], given for each record what the actions it builds on made of it
    /// (`links[i]`, in the order of its `associate_with`). An outcome's id may list several
    /// ids, comma-separated (a deal's line items).
    async fn write_linked(
        &self,
        batch: &[Prepared<'_>],
        links: &[Vec<Link>],
        known_ids: &[Option<String>],
        ctx: &Context,
    ) -> Vec<ActionOutcome> {
        let _ = links;
        self.write(batch, known_ids, ctx).await
    }
}

/// One page read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePage {
    /// The records and bad inputs of this page, in source order.
    pub items: Vec<Item>,
    /// The source's whole state after this page, to store with the page's outcomes.
    pub checkpoint: Value,
}

/// A source of a scheduled flow, read page by page from a checkpoint.
///
/// The runner records each page's outcomes and checkpoint durably, then calls
/// [`Source::committed`]; a source built again from the last recorded checkpoint resumes after
/// the last recorded page.
#[async_trait]
pub trait Source: Send {
    /// The next page of at most `max` items, or `None` when the source is done for this run.
    async fn next_page(&mut self, max: usize) -> Result<Option<SourcePage>, SourceError>;

    /// Called once the page that ended at `checkpoint` is durably recorded (files it finished
    /// may now be moved away).
    async fn committed(&mut self, checkpoint: &Value) -> Result<(), SourceError> {
        let _ = checkpoint;
        Ok(())
    }

    /// Whether reads overlap, so records must be deduplicated by (key, version).
    fn dedupe(&self) -> bool {
        false
    }
}

/// What an action would do with a record (`rivulet plan`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Planned {
    /// A new record in the target.
    Create,
    /// An existing record's fields change: (field, old, new).
    Update {
        /// The target's id.
        id: String,
        /// The fields that change.
        fields: Vec<FieldChange>,
    },
    /// The target already holds these values.
    Unchanged {
        /// The target's id.
        id: String,
    },
    /// Written where no before can be read (appended to a file, sent to an API).
    Write {
        /// What, for people.
        what: String,
    },
    /// The write would be refused: why.
    WouldFail {
        /// Why.
        reason: String,
    },
    /// A `when:` keeps the record out.
    Filtered,
}

/// One line of a plan: what one action would do with one record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanEntry {
    /// The flow.
    pub flow: String,
    /// The record, for people (`contacts 1051`, `data/x.csv line 3`).
    pub record: String,
    /// The action (by index), or `None` for the flow as a whole (its `when:`, its mapping).
    pub action: Option<usize>,
    /// The action's kind and destination, for people.
    pub target: Option<String>,
    /// What would happen.
    #[serde(flatten)]
    pub planned: Planned,
}

/// Where a plan's lines are collected while the flows are read and mapped.
#[derive(Debug, Default)]
pub struct PlanSink(std::sync::Mutex<Vec<PlanEntry>>);

impl PlanSink {
    /// Adds lines.
    pub fn add(&self, entries: impl IntoIterator<Item = PlanEntry>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(entries);
    }

    /// The lines so far.
    pub fn entries(&self) -> Vec<PlanEntry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One field of a planned update.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// Its value in the target now (`None`: empty).
    pub old: Option<String>,
    /// The value it would get.
    pub new: Option<String>,
}

/// Where a change-only write goes (see [`Action::change_target`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeTarget {
    /// Names the target record among this action's targets (`email:ann@example.com`).
    pub key: String,
    /// The mapped fields the write sends.
    pub fields: Vec<String>,
    /// Fields sent even when unchanged (the property the target is matched on).
    pub keep: Vec<String>,
}

/// Why a source cannot be read (as opposed to one bad record, which is an [`Item::Bad`]).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source settings cannot be used (bad delimiter, unknown format, bad JSONPath).
    #[error("{0}")]
    Config(String),
    /// A stored checkpoint is not one this source wrote.
    #[error("the stored checkpoint cannot be read: {0}")]
    Checkpoint(String),
    /// A file could not be listed, opened, read, moved or deleted.
    #[error("{path}: {source}")]
    Io {
        /// The file, relative to the flow's folder where possible.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The system behind the source is down or overloaded (no answer, 5xx, 429 after the
    /// client's retries): the read is tried again later from the same checkpoint.
    #[error(transparent)]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// The system behind the source answered, but refused the read (a 4xx).
    #[error(transparent)]
    Remote(Box<dyn std::error::Error + Send + Sync>),
    /// A response does not hold records where the source expects them.
    #[error("HTTP {status} from {path}: {message}; body starts: {snippet}")]
    BadResponse {
        /// The HTTP status.
        status: u16,
        /// The request path (without query, which may hold secrets).
        path: String,
        /// What is wrong.
        message: String,
        /// The start of the body (at most 200 characters).
        snippet: String,
    },
}

/// The flows whose triggers share a group key, polled together: one read per poll, fanned out
/// to every member, each with its own cursor. Members are numbered in the order they were
/// given to the connector.
#[async_trait]
pub trait TriggerGroup: Send + Sync {
    /// How often the group polls (its fastest member's interval).
    fn poll_every(&self) -> Duration;

    /// What member `member`'s cursor tracks; a stored cursor of another identity belongs to an
    /// earlier version of the trigger and is replaced by a fresh one.
    fn cursor_identity(&self, member: usize) -> String;

    /// A fresh cursor for `member` (where `start_from` says), as of `now`.
    fn start_cursor(&self, member: usize, now: DateTime<Utc>) -> Value;

    /// Whether `state` is a cursor this trigger wrote; damaged state is an error, never a
    /// silent restart.
    fn check_cursor(&self, state: &Value) -> Result<(), String>;

    /// The instant up to which a cursor has read (for the trigger's lag), if it tracks time.
    fn position(&self, cursor: &Value) -> Option<DateTime<Utc>> {
        let _ = cursor;
        None
    }

    /// Starts one poll, given each member's cursor (in member order; `None` for a member that
    /// sits this poll out), as of `now`.
    async fn poll(
        &self,
        cursors: Vec<Option<Value>>,
        now: DateTime<Utc>,
    ) -> Result<Box<dyn TriggerPoll>, TriggerError>;
}

/// One poll of a [`TriggerGroup`], page by page.
#[async_trait]
pub trait TriggerPoll: Send {
    /// The next page, or `None` once the poll's window is read.
    async fn next_page(&mut self) -> Result<Option<TriggerPage>, TriggerError>;

    /// Each member's cursor once every page was read and recorded (`Null` for a member that
    /// sat the poll out).
    fn finish(&mut self) -> Vec<Value>;

    /// Dedupe keys of `member` older than this (epoch ms) can no longer come again.
    fn prune_before(&self, member: usize) -> Option<i64>;

    /// Calls this poll made to the system, for the run summary.
    fn calls(&self) -> u64;
}

/// One page of a poll, split by member.
#[derive(Debug, Clone, Default)]
pub struct TriggerPage {
    /// Per member (in member order): the records for it and its cursor after them (nothing and
    /// `Null` for a member that sits the poll out).
    pub members: Vec<(Vec<Item>, Value)>,
}

/// A poll failed (after the client's retries); no cursor moves.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TriggerError(pub Box<dyn std::error::Error + Send + Sync>);

impl TriggerError {
    /// Wraps a connector's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        TriggerError(Box::new(e))
    }
}
