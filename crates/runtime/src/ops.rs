//! What operators do to a runner's state besides running it: replay failed records through a
//! flow's current mapping and actions, and move a flow's cursor. Both change what a runner
//! would do, so the caller holds the state's lease while they run.

use crate::connectors::{self, Clients};
use crate::executor::Page;
use crate::record::{Item, Record};
use crate::runner::{self, RunError, RunOptions};
use crate::state::{
    Counts, Cursor, FailureStatus, RunStatus, StateError, StateStore, StoredFailure,
};
use rivulet_spec::model::Trigger;
use rivulet_spec::validate::Validation;
use serde_json::Value;
use std::sync::Arc;

/// What a replay did with one flow's failed records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// The run that recorded the replay.
    pub run_id: i64,
    /// Records sent again, and what came of them.
    pub counts: Counts,
    /// Failed entries that could not be replayed (input that never became a record), by id
    /// and why.
    pub skipped: Vec<(i64, String)>,
}

/// Why a replay or a cursor move could not be done.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The flow is not among the validated flows.
    #[error("no flow named `{0}` in the flows given")]
    UnknownFlow(String),
    /// Building or running the flow failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A page could not be recorded (a destination is down: nothing was recorded).
    #[error("{0}")]
    Page(String),
    /// The cursor cannot be moved that way.
    #[error("{0}")]
    Cursor(String),
}

/// Sends `failures` (all of one flow) again through the flow's current mapping and actions,
/// as one run. An entry whose record goes through is resolved; one that fails again stays
/// replayed and a new failed entry records the new error.
pub async fn replay(
    validation: &Validation,
    store: Arc<dyn StateStore>,
    options: &RunOptions,
    flow: &str,
    failures: &[StoredFailure],
) -> Result<Replayed, OpsError> {
    let checked = validation
        .flows
        .iter()
        .find(|f| f.flow.name == flow)
        .ok_or_else(|| OpsError::UnknownFlow(flow.to_string()))?;
    let clients = Clients::build(validation, checked.flow.connections(), &options.overrides)
        .map_err(RunError::from)?;
    let runtime = runner::build_flow(checked, &clients, &store, options)?;
    let mut out = Replayed::default();
    let mut items = Vec::new();
    let mut ids = Vec::new();
    for f in failures {
        match &f.failure.record {
            Some(data @ Value::Object(_)) => {
                ids.push(f.id);
                items.push(Item::Record(Record {
                    key: f.failure.key.clone(),
                    version: f.failure.version.clone(),
                    data: data.clone(),
                    origin: f.failure.origin.clone(),
                }));
            }
            _ => out.skipped.push((
                f.id,
                "the input never became a record (a malformed row or line): fix the source, then discard this entry".into(),
            )),
        }
    }
    if items.is_empty() {
        return Ok(out);
    }
    let started = options.clock.now();
    let run_id = store.start_run(flow, started).await?;
    out.run_id = run_id;
    store
        .set_failure_status(&ids, FailureStatus::Replayed)
        .await?;
    let ctx = rivulet_mapping::Context::new(flow, run_id.to_string(), started);
    let mut result = Ok(Counts::default());
    // How many entries the recorded pages carried: theirs are settled (resolved, or replayed
    // with a new failed entry), whatever happens to the pages after them.
    let mut recorded = 0;
    // A page at a time, as a run reads them.
    let mut items = items.into_iter();
    loop {
        let page: Vec<Item> = items.by_ref().take(200).collect();
        if page.is_empty() {
            break;
        }
        let len = page.len();
        match runtime
            .process(
                run_id,
                &ctx,
                Page {
                    items: page,
                    dedupe: false,
                    cursor: None,
                },
            )
            .await
        {
            Ok(c) => {
                recorded += len;
                if let Ok(total) = &mut result {
                    *total += c;
                }
            }
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
    }
    let (status, error) = match &result {
        Ok(c) if c.failed == 0 => (RunStatus::Succeeded, None),
        Ok(_) => (RunStatus::Failed, None),
        Err(e) => (RunStatus::Waiting, Some(e.as_str())),
    };
    store
        .finish_run(run_id, options.clock.now(), status, error)
        .await?;
    match result {
        Ok(counts) => {
            out.counts = counts;
            Ok(out)
        }
        Err(e) => {
            // Nothing of the unrecorded pages happened: their entries are failed as before.
            let open: Vec<i64> = store
                .find_failures(&crate::state::FailureFilter {
                    ids: Some(ids[recorded..].to_vec()),
                    status: Some(FailureStatus::Replayed),
                    limit: usize::MAX >> 1,
                    ..Default::default()
                })
                .await?
                .into_iter()
                .map(|f| f.id)
                .collect();
            store
                .set_failure_status(&open, FailureStatus::Failed)
                .await?;
            Err(OpsError::Page(e))
        }
    }
}

/// Where to move a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetTo {
    /// Only what changes from now on.
    Now,
    /// Everything again (a backfill).
    Beginning,
    /// From this RFC 3339 instant.
    Instant(String),
}

impl ResetTo {
    /// `now`, `beginning` or an RFC 3339 instant.
    pub fn parse(text: &str) -> Result<ResetTo, String> {
        match text {
            "now" => Ok(ResetTo::Now),
            "beginning" => Ok(ResetTo::Beginning),
            other => chrono::DateTime::parse_from_rfc3339(other)
                .map(|_| ResetTo::Instant(other.to_string()))
                .map_err(|_| format!("`{other}` is not `now`, `beginning` or an RFC 3339 instant")),
        }
    }

    fn start_from(&self) -> &str {
        match self {
            ResetTo::Now => "now",
            ResetTo::Beginning => "beginning",
            ResetTo::Instant(t) => t,
        }
    }
}

/// Moves `flow`'s cursor: a trigger starts over from `to` (as its `start_from` would); a
/// scheduled source can only start over from the beginning (its position is not a time).
/// Returns the cursor now stored (`None`: the source reads afresh).
pub async fn reset_cursor(
    validation: &Validation,
    store: &dyn StateStore,
    options: &RunOptions,
    flow: &str,
    to: &ResetTo,
) -> Result<Option<Cursor>, OpsError> {
    let checked = validation
        .flows
        .iter()
        .find(|f| f.flow.name == flow)
        .ok_or_else(|| OpsError::UnknownFlow(flow.to_string()))?;
    match &checked.flow.trigger {
        Some(Trigger::Hubspot(t)) => {
            let mut moved = t.clone();
            moved.start_from = to.start_from().to_string();
            let now = options.clock.now();
            let cursor = connectors::start_cursor(&Trigger::Hubspot(moved), now);
            // What the reset reaches back over is delivered again (the ledger still keeps
            // created records from being created twice).
            let since = match to {
                ResetTo::Beginning => i64::MIN,
                ResetTo::Now => now.timestamp_millis(),
                ResetTo::Instant(t) => chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.timestamp_millis())
                    .unwrap_or(i64::MIN),
            };
            store.forget_delivered(flow, since).await?;
            store.set_cursor(flow, &cursor).await?;
            Ok(Some(cursor))
        }
        None if *to == ResetTo::Beginning => {
            store.delete_cursor(flow).await?;
            Ok(None)
        }
        None => Err(OpsError::Cursor(format!(
            "`{flow}` reads a source, whose position is not a time: use `--to beginning` to read it afresh"
        ))),
    }
}
