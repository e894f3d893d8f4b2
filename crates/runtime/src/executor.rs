//! One page of records through one flow: map, run the actions in order, record every outcome
//! and the cursor that covers them in one transaction.
//!
//! The executor knows actions only through [`Action`]; what it does around a write depends on
//! the action's [`RetrySafety`]: ledger entries around creates, an undo mark before undoable
//! writes, nothing for idempotent ones.

use crate::connector::{Action, RetrySafety};
use crate::record::{ActionOutcome, Item, Prepared, Record};
use crate::state::{
    Commit, Counts, Cursor, FailedRecord, Fence, LedgerState, StateError, StateStore, UndoMark,
};
use indexmap::IndexMap;
use rivulet_mapping::{Context, Mapping, OutputMode};
use rivulet_spec::model::Flow;
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A flow ready to process pages.
pub struct FlowRuntime {
    /// The flow as written.
    pub flow: Flow,
    /// The flow file's folder: relative paths start here.
    pub base_dir: PathBuf,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// The actions, in order.
    pub actions: Vec<Box<dyn Action>>,
    /// Where outcomes are recorded.
    pub store: Arc<dyn StateStore>,
    /// Read and map, but write nothing and record nothing.
    pub dry_run: bool,
    /// The lease the flow runs under; every commit checks it.
    pub fence: Option<Fence>,
    /// Records an at-least-once-with-key action already delivered in a page that was then
    /// given up (a later destination was down): when the page comes again they are not sent
    /// again. Kept in memory only: after a restart the key makes a repeat harmless.
    pub resend: Mutex<HashSet<(usize, String, String)>>,
}

/// A page handed to [`FlowRuntime::process`].
pub struct Page {
    /// The items.
    pub items: Vec<Item>,
    /// Drop records whose (key, version) is already recorded (re-reads of an overlap).
    pub dedupe: bool,
    /// The cursor to store with the page's outcomes.
    pub cursor: Option<Cursor>,
}

/// Why a page could not be processed: nothing of it was recorded, so it will be read again.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The state store failed (or the lease passed to another runner).
    #[error(transparent)]
    State(#[from] StateError),
    /// A destination could not take the page right now; it is tried again after a backoff.
    #[error("waiting for {destination}: {reason}")]
    Transient {
        /// The action that hit it.
        action: usize,
        /// The action's connector and target, for people (`http erp_webhook`).
        destination: String,
        /// Why.
        reason: String,
    },
}

/// A record on its way through the actions.
struct Live {
    record: Record,
    wire: Option<IndexMap<String, Value>>,
    native: Option<IndexMap<String, Value>>,
}

impl Live {
    fn fields(&self, mode: OutputMode) -> &IndexMap<String, Value> {
        static EMPTY: std::sync::LazyLock<IndexMap<String, Value>> =
            std::sync::LazyLock::new(IndexMap::new);
        match mode {
            OutputMode::Wire => self.wire.as_ref(),
            OutputMode::Native => self.native.as_ref(),
        }
        .unwrap_or(&EMPTY)
    }
}

/// The dedupe timestamp of a record: its version when that is epoch milliseconds (trigger
/// and HubSpot records), else 0.
fn version_ms(record: &Record) -> i64 {
    record.version.parse().unwrap_or(0)
}

impl FlowRuntime {
    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.flow.name
    }

    /// Undoes writes that a crash left unrecorded, before anything else runs: the records they
    /// hold were not recorded, so they will be read and written again.
    pub async fn recover(&self) -> Result<Vec<UndoMark>, StateError> {
        let marks = self.store.undo_marks(self.name()).await?;
        for mark in &marks {
            match crate::connectors::undo(&mark.kind, &mark.mark).await {
                Ok(what) => {
                    tracing::info!(flow = self.name(), action = mark.action, undone = %what, "undid a write a crash left unrecorded")
                }
                Err(e) => {
                    tracing::warn!(flow = self.name(), action = mark.action, error = %e, "could not undo a write a crash left unrecorded")
                }
            }
        }
        Ok(marks)
    }

    /// Maps `page`, runs every action on it and records the outcome.
    pub async fn process(
        &self,
        run_id: i64,
        ctx: &Context,
        page: Page,
    ) -> Result<Counts, PageError> {
        let flow = self.name();
        let mut counts = Counts::default();
        let mut failed: Vec<FailedRecord> = Vec::new();
        let mut records: Vec<Record> = Vec::new();
        for item in page.items {
            match item {
                Item::Record(r) => records.push(r),
                Item::Bad {
                    key,
                    origin,
                    message,
                    raw,
                } => {
                    counts.read += 1;
                    failed.push(FailedRecord {
                        key,
                        version: String::new(),
                        origin,
                        action: None,
                        error: message,
                        record: raw.map(Value::String),
                        sent: None,
                    });
                }
            }
        }
        if page.dedupe && !records.is_empty() {
            let keys: Vec<(String, String)> = records
                .iter()
                .map(|r| (r.key.clone(), r.version.clone()))
                .collect();
            let seen = self.store.delivered(flow, &keys).await?;
            let before = records.len();
            records.retain(|r| !seen.contains(&(r.key.clone(), r.version.clone())));
            counts.skipped += (before - records.len()) as u64;
        }
        counts.read += records.len() as u64;
        let delivered: Vec<(String, String, i64)> = if page.dedupe {
            records
                .iter()
                .map(|r| (r.key.clone(), r.version.clone(), version_ms(r)))
                .collect()
        } else {
            Vec::new()
        };

        let needs = |mode| self.actions.iter().any(|a| a.output_mode() == mode);
        let (needs_wire, needs_native) = (needs(OutputMode::Wire), needs(OutputMode::Native));
        let mut live: Vec<Live> = Vec::with_capacity(records.len());
        for record in records {
            let map = |wanted: bool, mode| {
                wanted
                    .then(|| apply_guarded(&self.mapping, &record, ctx, mode))
                    .transpose()
            };
            match (
                map(needs_wire, OutputMode::Wire),
                map(needs_native, OutputMode::Native),
            ) {
                (Ok(wire), Ok(native)) => live.push(Live {
                    record,
                    wire,
                    native,
                }),
                (Err(errors), _) | (_, Err(errors)) => failed.push(FailedRecord {
                    key: record.key.clone(),
                    version: record.version.clone(),
                    origin: record.origin.clone(),
                    action: None,
                    error: errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                    record: Some(record.data),
                    sent: None,
                }),
            }
        }

        let mut commit = Commit {
            run_id,
            fence: self.fence.clone(),
            ..Commit::default()
        };
        let mut marks = Vec::new();
        let mut keyed = Vec::new();
        for (index, action) in self.actions.iter().enumerate() {
            if live.is_empty() {
                break;
            }
            let (outcomes, calls) = rivulet_http::count_calls(self.run_action(
                index,
                action.as_ref(),
                &live,
                ctx,
                &mut commit,
                &mut marks,
            ))
            .await;
            let outcomes = outcomes?;
            counts.api_calls += calls;
            let mode = action.output_mode();
            if action.retry_safety() == RetrySafety::AtLeastOnceWithKey {
                keyed.extend(
                    live.iter()
                        .zip(&outcomes)
                        .filter(|(_, o)| o.is_done())
                        .map(|(l, _)| (index, l.record.key.clone(), l.record.version.clone())),
                );
            }
            if let Some(reason) = outcomes.iter().find_map(|o| match o {
                ActionOutcome::Transient { reason } => Some(reason.clone()),
                _ => None,
            }) {
                self.resend_set().extend(keyed);
                self.abandon(commit, marks).await?;
                return Err(PageError::Transient {
                    action: index,
                    destination: action.destination(),
                    reason,
                });
            }
            let mut still = Vec::with_capacity(live.len());
            for (l, outcome) in live.into_iter().zip(outcomes) {
                match outcome {
                    ActionOutcome::Done { .. } => still.push(l),
                    ActionOutcome::Failed { message } => {
                        failed.push(failure(l, index, mode, message))
                    }
                    ActionOutcome::Unknown { reason } | ActionOutcome::Transient { reason } => {
                        failed.push(failure(
                            l,
                            index,
                            mode,
                            format!(
                                "outcome unknown ({reason}); check the target before replaying"
                            ),
                        ))
                    }
                }
            }
            live = still;
        }
        counts.succeeded += live.len() as u64;
        counts.failed += failed.len() as u64;
        if self.dry_run {
            for f in &failed {
                let line = serde_json::json!({
                    "flow": flow,
                    "action": f.action,
                    "record": f.key,
                    "origin": f.origin,
                    "failed": f.error,
                });
                println!(
                    "dry-run {}",
                    rivulet_http::secrets::scrub(&line.to_string())
                );
            }
            return Ok(counts);
        }
        for f in &failed {
            match f.action {
                Some(action) => {
                    tracing::warn!(flow, record = %f.origin, action, error = %f.error, "record failed")
                }
                None => tracing::warn!(flow, record = %f.origin, error = %f.error, "record failed"),
            }
        }
        commit.succeeded_keys = live.iter().map(|l| l.record.key.clone()).collect();
        commit.delivered = delivered;
        commit.failed = failed;
        commit.cursor = page.cursor;
        commit.counts = counts;
        self.store.commit(flow, &commit).await?;
        if !keyed.is_empty() {
            let mut resend = self.resend_set();
            for k in &keyed {
                resend.remove(k);
            }
        }
        Ok(counts)
    }

    fn resend_set(&self) -> std::sync::MutexGuard<'_, HashSet<(usize, String, String)>> {
        self.resend.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives a page up after a transient failure: what its actions wrote that can be taken back
    /// is undone (so the retry does not write it twice), and what is known about its creates is
    /// recorded (so the retry updates them instead of creating them again). No outcome, count
    /// or cursor is recorded: the whole page comes again.
    async fn abandon(&self, commit: Commit, marks: Vec<UndoMark>) -> Result<(), StateError> {
        for mark in &marks {
            if let Err(e) = crate::connectors::undo(&mark.kind, &mark.mark).await {
                // The mark stays recorded, so the next start tries again before anything runs.
                tracing::error!(flow = self.name(), action = mark.action, error = %e, "could not undo the writes of an abandoned page");
                return Err(StateError::Backend(format!(
                    "undoing the writes of an abandoned page: {e}"
                )));
            }
        }
        let known = Commit {
            run_id: commit.run_id,
            fence: commit.fence,
            ledger_done: commit.ledger_done,
            ledger_clear: commit.ledger_clear,
            clear_undo_marks: !marks.is_empty(),
            ..Commit::default()
        };
        self.store.commit(self.name(), &known).await
    }

    async fn run_action(
        &self,
        index: usize,
        action: &dyn Action,
        live: &[Live],
        ctx: &Context,
        commit: &mut Commit,
        marks: &mut Vec<UndoMark>,
    ) -> Result<Vec<ActionOutcome>, StateError> {
        let mode = action.output_mode();
        let prepared: Vec<Prepared<'_>> = live
            .iter()
            .map(|l| Prepared {
                record: &l.record,
                fields: l.fields(mode),
            })
            .collect();
        if self.dry_run {
            for p in &prepared {
                let line = serde_json::json!({
                    "flow": self.name(),
                    "action": index,
                    "kind": action.kind(),
                    "record": p.record.key,
                    "fields": p.fields,
                });
                println!(
                    "dry-run {}",
                    rivulet_http::secrets::scrub(&line.to_string())
                );
            }
            return Ok(vec![ActionOutcome::Done { id: None }; prepared.len()]);
        }
        let flow = self.name();
        Ok(match action.retry_safety() {
            RetrySafety::LedgeredCreate => {
                self.ledgered(index, action, &prepared, ctx, commit).await?
            }
            RetrySafety::Undoable => {
                match action.undo_mark().await {
                    Ok(mark) => {
                        let mark = UndoMark {
                            action: index,
                            kind: action.kind().to_string(),
                            mark,
                        };
                        self.store.mark_undo(flow, &mark).await?;
                        marks.push(mark);
                        commit.clear_undo_marks = true;
                        action.write(&prepared, &[], ctx).await
                    }
                    // Without a mark the write could not be taken back after a crash.
                    Err(e) => vec![ActionOutcome::failed(e); prepared.len()],
                }
            }
            RetrySafety::Idempotent => action.write(&prepared, &[], ctx).await,
            RetrySafety::AtLeastOnceWithKey => {
                // What an abandoned page already delivered is not sent again.
                let delivered: Vec<bool> = {
                    let resend = self.resend_set();
                    prepared
                        .iter()
                        .map(|p| {
                            resend.contains(&(
                                index,
                                p.record.key.clone(),
                                p.record.version.clone(),
                            ))
                        })
                        .collect()
                };
                let to_send: Vec<Prepared<'_>> = prepared
                    .iter()
                    .zip(&delivered)
                    .filter(|(_, done)| !**done)
                    .map(|(p, _)| *p)
                    .collect();
                let mut sent = action.write(&to_send, &[], ctx).await.into_iter();
                delivered
                    .iter()
                    .map(|done| match done {
                        true => ActionOutcome::Done { id: None },
                        false => sent
                            .next()
                            .unwrap_or_else(|| ActionOutcome::failed("internal: no outcome")),
                    })
                    .collect()
            }
        })
    }

    /// Creates, announced in the ledger before they are made, so a crash cannot lead to a
    /// second create: an announced record is looked up instead.
    async fn ledgered(
        &self,
        index: usize,
        action: &dyn Action,
        prepared: &[Prepared<'_>],
        ctx: &Context,
        commit: &mut Commit,
    ) -> Result<Vec<ActionOutcome>, StateError> {
        let flow = self.name();
        let keys: Vec<String> = prepared.iter().map(|p| p.record.key.clone()).collect();
        let ledger = self.store.ledger(flow, index, &keys).await?;
        let mut outcomes: Vec<Option<ActionOutcome>> = vec![None; prepared.len()];
        // Creates a crash (or an abandoned page) left in doubt: looked up, all at once.
        let in_doubt: Vec<usize> = (0..prepared.len())
            .filter(|i| {
                ledger
                    .get(&prepared[*i].record.key)
                    .is_some_and(|e| e.state == LedgerState::Pending)
            })
            .collect();
        let mut found: Vec<Option<Result<Option<String>, String>>> = vec![None; prepared.len()];
        if !in_doubt.is_empty() {
            let records: Vec<Prepared<'_>> = in_doubt.iter().map(|i| prepared[*i]).collect();
            let announced: Vec<_> = in_doubt
                .iter()
                .map(|i| ledger.get(&prepared[*i].record.key).and_then(|e| e.at))
                .collect();
            let answers = action.find_created(&records, &announced).await;
            for (i, answer) in in_doubt.iter().zip(answers) {
                found[*i] = Some(answer);
            }
        }
        let mut known = Vec::new();
        let mut to_write = Vec::new();
        let mut positions = Vec::new();
        for (i, p) in prepared.iter().enumerate() {
            match found[i].take() {
                Some(Ok(Some(id))) => {
                    commit
                        .ledger_done
                        .push((index, p.record.key.clone(), Some(id.clone())));
                    outcomes[i] = Some(ActionOutcome::Done { id: Some(id) });
                }
                Some(Ok(None)) => {
                    known.push(None);
                    to_write.push(*p);
                    positions.push(i);
                }
                Some(Err(why)) => {
                    outcomes[i] = Some(ActionOutcome::Unknown {
                        reason: format!(
                            "Rivulet stopped while this record was being created, so it may exist already ({why})"
                        ),
                    });
                }
                None => {
                    known.push(ledger.get(&p.record.key).and_then(|e| e.target_id.clone()));
                    to_write.push(*p);
                    positions.push(i);
                }
            }
        }
        let pending: Vec<String> = to_write.iter().map(|p| p.record.key.clone()).collect();
        self.store.ledger_pending(flow, index, &pending).await?;
        let written = action.write(&to_write, &known, ctx).await;
        for ((i, p), outcome) in positions.into_iter().zip(to_write.iter()).zip(written) {
            match &outcome {
                ActionOutcome::Done { id } => {
                    commit
                        .ledger_done
                        .push((index, p.record.key.clone(), id.clone()))
                }
                ActionOutcome::Failed { .. } => {
                    commit.ledger_clear.push((index, p.record.key.clone()))
                }
                // Stays pending: nobody knows whether the create happened.
                ActionOutcome::Unknown { .. } | ActionOutcome::Transient { .. } => {}
            }
            outcomes[i] = Some(outcome);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| ActionOutcome::failed("internal: no outcome")))
            .collect())
    }
}

/// Maps one record. A record that makes the mapping panic fails on its own (a clear error, kept
/// for replay) instead of taking the flow's task down and being read — and panicking — again.
fn apply_guarded(
    mapping: &Mapping,
    record: &Record,
    ctx: &Context,
    mode: OutputMode,
) -> Result<IndexMap<String, Value>, Vec<rivulet_mapping::FieldError>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mapping.apply(&record.data, ctx, mode)
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(record = %record.origin, panic = %what, "the mapping panicked on a record; it fails alone");
        Err(vec![rivulet_mapping::FieldError {
            field: "*".into(),
            message: format!("the mapping failed unexpectedly on this record ({what})"),
            source: None,
        }])
    })
}

fn failure(l: Live, action: usize, mode: OutputMode, error: String) -> FailedRecord {
    let sent = Value::Object(
        l.fields(mode)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    FailedRecord {
        sent: Some(sent),
        key: l.record.key,
        version: l.record.version,
        origin: l.record.origin,
        action: Some(action),
        error,
        record: Some(l.record.data),
    }
}
