//! One page of records through one flow: map, prepare, run the actions in order, record every
//! outcome and the cursor that covers them in one transaction.
//!
//! The executor knows actions only through [`Action`]; what it does around a write depends on
//! the action's [`RetrySafety`]: ledger entries around creates, an undo mark before undoable
//! writes, nothing for idempotent ones.
//!
//! A record's actions are its transaction. Actions that prepare ([`Action::prepare`]: a deal's
//! line items' products) do so for the whole page before anything is written, and a record they
//! refuse fails before any action writes it. Then each action writes, in one batch, the records
//! whose prerequisites all succeeded (by default every earlier action; `prerequisites` and
//! `associate_with` declare others), handed what the actions it builds on made of each record
//! ([`Link`]: the created deal's id for its line items). A record whose prerequisite failed is
//! not written by the action, and its one failed-record entry says so. Creates that later
//! actions build on are recorded in the ledger as soon as they are made, so a crash between
//! the deal and its line items finds the deal instead of creating it again.

use crate::connector::{Action, Link, Preparation, RetrySafety};
use crate::events::Event;
use crate::record::{ActionOutcome, Item, Prepared, Record};
use crate::state::{
    Commit, Counts, Cursor, FailedRecord, Fence, LedgerState, StateError, StateStore, UndoMark,
    Written,
};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use rivulet_mapping::{Condition, Context, Mapping, OutputMode};
use rivulet_spec::model::{Dependencies, Flow};
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
    /// The lease the flow runs under; every commit checks it. Set when the runner takes the
    /// lease on the flow's work (runners sharing a state take it per trigger group or
    /// schedule, and may lose it).
    pub fence: Mutex<Option<Fence>>,
    /// Whether the lease behind `fence` is still surely held (runners sharing a state): checked
    /// before every write, so a runner paused past its lease writes nothing more.
    pub guard: Mutex<Option<crate::lease::LeaseGuard>>,
    /// Records an at-least-once-with-key action already delivered in a page that was then
    /// given up (a later destination was down): when the page comes again they are not sent
    /// again. Kept in memory only: after a restart the key makes a repeat harmless.
    pub resend: Mutex<HashSet<(usize, String, String)>>,
    /// Where what happens is counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The flow's `when:`: records that do not meet it are filtered.
    pub when: Option<Condition>,
    /// Each action's `when:`, by index.
    pub action_when: Vec<Option<Condition>>,
    /// Change-only writes (`write: changed`, the default).
    pub change_only: bool,
    /// `rivulet plan`: instead of printing a dry run, each action says what it would do here.
    pub plan: Option<Arc<crate::connector::PlanSink>>,
    /// What each action needs of the others for a record ([`Flow::dependencies`]), worked out
    /// once per flow rather than per page.
    pub deps: Vec<Dependencies>,
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
    /// Where it stands with each action, by index.
    steps: Vec<Step>,
    /// Failed while its actions prepared, before anything of it was written: (action, why).
    doomed: Option<(usize, String)>,
    /// Actions that wrote it; actions that found it unchanged in their target.
    wrote: u32,
    unchanged: u32,
}

/// Where a record stands with one action.
#[derive(Debug, Clone)]
enum Step {
    /// Not reached yet.
    Waiting,
    /// Written; what the action made of it.
    Done(Link),
    /// The action failed for it.
    Failed(String),
    /// Not run: this prerequisite (an action index) did not succeed.
    Blocked(usize),
    /// Not for this action: its `when:` does not hold for the record (no failure).
    Skipped,
}

impl Step {
    /// Whether actions that need this one may go on.
    fn went_through(&self) -> bool {
        matches!(self, Step::Done(_) | Step::Skipped)
    }
}

/// The ledger key under which an action's preparation is announced before it may write (see
/// [`Preparation::Writes`]); a control character keeps it apart from records' keys.
const PREPARING: &str = "\u{1f}preparing";

/// The records at `at` of `live`, as an action of `mode` takes them.
fn prepare_batch<'a>(live: &'a [Live], at: &[usize], mode: OutputMode) -> Vec<Prepared<'a>> {
    at.iter()
        .map(|p| Prepared {
            record: &live[*p].record,
            fields: live[*p].fields(mode),
        })
        .collect()
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
    /// The fence commits carry now.
    pub fn fence(&self) -> Option<Fence> {
        self.fence.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the flow's commits under `fence` from now on.
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = fence;
    }

    /// Writes only while `guard` says the lease is held, from now on.
    pub fn set_guard(&self, guard: Option<crate::lease::LeaseGuard>) {
        *self.guard.lock().unwrap_or_else(|p| p.into_inner()) = guard;
    }

    /// Refuses to write once the lease may have passed to another runner.
    fn check_lease(&self) -> Result<(), StateError> {
        let guard = self.guard.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match (guard, self.fence()) {
            (Some(guard), Some(fence)) if !guard.is_current() => Err(StateError::Fenced {
                name: fence.name,
                held: fence.token,
                current: fence.token,
            }),
            _ => Ok(()),
        }
    }

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

        // The flow's `when:`: records that do not meet it are filtered (recorded as read, for
        // the dedupe, never sent); one it cannot be evaluated on fails.
        if let Some(when) = &self.when {
            let mut kept = Vec::with_capacity(records.len());
            for record in records {
                match when.eval(&record.data, ctx) {
                    Ok(true) => kept.push(record),
                    Ok(false) => {
                        counts.filtered += 1;
                        if let Some(plan) = &self.plan {
                            plan.add([crate::connector::PlanEntry {
                                flow: flow.to_string(),
                                record: record.origin.clone(),
                                action: None,
                                target: None,
                                planned: crate::connector::Planned::Filtered,
                            }]);
                        }
                    }
                    Err(e) => failed.push(FailedRecord {
                        key: record.key.clone(),
                        version: record.version.clone(),
                        origin: record.origin.clone(),
                        action: None,
                        error: e.to_string(),
                        record: Some(record.data),
                        sent: None,
                    }),
                }
            }
            records = kept;
        }

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
                    steps: vec![Step::Waiting; self.actions.len()],
                    doomed: None,
                    wrote: 0,
                    unchanged: 0,
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
            fence: self.fence(),
            ..Commit::default()
        };
        let mut marks = Vec::new();
        let mut keyed = Vec::new();
        let deps = &self.deps;
        let mut preparing = Vec::new();

        // First what the actions' writes need (a deal's line items' products), before anything
        // of the page is written: a record that cannot go through fails whole here, its
        // transaction, and the others go on.
        if !self.dry_run {
            for (index, action) in self.actions.iter().enumerate() {
                let preparation = action.preparation();
                if preparation == Preparation::None {
                    continue;
                }
                let at: Vec<usize> = (0..live.len())
                    .filter(|p| live[*p].doomed.is_none())
                    .collect();
                if at.is_empty() {
                    break;
                }
                self.check_lease()?;
                let interrupted = match preparation {
                    Preparation::Writes => {
                        preparing.push(index);
                        self.mark_preparing(index).await?
                    }
                    _ => None,
                };
                let (answers, calls) = {
                    let prepared = prepare_batch(&live, &at, action.output_mode());
                    rivulet_http::count_calls(action.prepare(&prepared, interrupted, ctx)).await
                };
                counts.api_calls += calls;
                if let Some(reason) = answers.iter().find_map(|a| match a {
                    Err(ActionOutcome::Transient { reason }) => Some(reason.clone()),
                    _ => None,
                }) {
                    self.abandon(commit, marks).await?;
                    return Err(PageError::Transient {
                        action: index,
                        destination: action.destination(),
                        reason,
                    });
                }
                for (p, answer) in at.into_iter().zip(answers) {
                    match answer {
                        Ok(()) | Err(ActionOutcome::Done { .. }) => {}
                        Err(ActionOutcome::Failed { message: why })
                        | Err(ActionOutcome::Unknown { reason: why })
                        | Err(ActionOutcome::Transient { reason: why }) => {
                            live[p].doomed = Some((index, why))
                        }
                    }
                }
            }
        }

        for (index, action) in self.actions.iter().enumerate() {
            // Which records this action writes: those whose prerequisites all succeeded.
            let needs = &deps[index].needs;
            let mut at = Vec::with_capacity(live.len());
            let mut blocked = 0u64;
            for (p, l) in live.iter_mut().enumerate() {
                if l.doomed.is_some() {
                    continue;
                }
                match needs.iter().find(|d| !l.steps[**d].went_through()) {
                    None => match self.action_when.get(index).and_then(Option::as_ref) {
                        None => at.push(p),
                        Some(when) => match when.eval(&l.record.data, ctx) {
                            Ok(true) => at.push(p),
                            Ok(false) => {
                                l.steps[index] = Step::Skipped;
                                if let Some(plan) = &self.plan {
                                    plan.add([crate::connector::PlanEntry {
                                        flow: flow.to_string(),
                                        record: l.record.origin.clone(),
                                        action: Some(index),
                                        target: Some(action.destination()),
                                        planned: crate::connector::Planned::Filtered,
                                    }]);
                                }
                            }
                            Err(e) => l.steps[index] = Step::Failed(e.to_string()),
                        },
                    },
                    Some(d) => {
                        l.steps[index] = Step::Blocked(*d);
                        blocked += 1;
                    }
                }
            }
            if at.is_empty() {
                if blocked > 0 && !self.dry_run {
                    crate::events::ActionWrote {
                        flow,
                        action: index,
                        kind: action.kind(),
                        delivered: 0,
                        failed: blocked,
                    }
                    .emit(&self.metrics);
                }
                continue;
            }
            // What the actions it builds on made of each record (the deal's id for its items).
            let mut links: Vec<Vec<Link>> = at
                .iter()
                .map(|p| {
                    deps[index]
                        .builds_on
                        .iter()
                        .filter_map(|t| match &live[*p].steps[*t] {
                            Step::Done(link) => Some(link.clone()),
                            _ => None,
                        })
                        .collect()
                })
                .collect();
            // Change-only writes: a record whose fields are as last written to its target costs
            // no call; a changed one sends only what changed (and the key it is matched by).
            let mut changes: Vec<Option<(String, Written)>> = vec![None; at.len()];
            let mut full_fields: Vec<(usize, IndexMap<String, Value>)> = Vec::new();
            if self.change_only && !self.dry_run {
                let mode = action.output_mode();
                let targets: Vec<Option<crate::connector::ChangeTarget>> = at
                    .iter()
                    .map(|p| {
                        let prepared = Prepared {
                            record: &live[*p].record,
                            fields: live[*p].fields(mode),
                        };
                        action.change_target(&prepared, ctx)
                    })
                    .collect();
                let keys: Vec<String> = targets.iter().flatten().map(|t| t.key.clone()).collect();
                let stored = self.store.written(flow, index, &keys).await?;
                let mut keep_at = Vec::with_capacity(at.len());
                let mut keep_links = Vec::with_capacity(at.len());
                let mut keep_changes = Vec::with_capacity(at.len());
                for ((p, target), link) in at.iter().zip(targets).zip(links) {
                    let Some(target) = target else {
                        keep_at.push(*p);
                        keep_links.push(link);
                        keep_changes.push(None);
                        continue;
                    };
                    let fields = live[*p].fields(mode);
                    let now: std::collections::BTreeMap<String, String> = target
                        .fields
                        .iter()
                        .filter_map(|k| fields.get(k).map(|v| (k.clone(), value_hash(v))))
                        .collect();
                    let before = stored.get(&target.key);
                    let changed: Vec<&String> = now
                        .iter()
                        .filter(|(k, h)| before.is_none_or(|b| b.hashes.get(*k) != Some(*h)))
                        .map(|(k, _)| k)
                        .collect();
                    if let Some(before) = before
                        && changed.is_empty()
                    {
                        live[*p].unchanged += 1;
                        live[*p].steps[index] = Step::Done(Link {
                            action: self.flow.action_label(index),
                            object: action.object(),
                            ids: before.target_id.iter().cloned().collect(),
                            new: false,
                        });
                        continue;
                    }
                    let mut written = before.cloned().unwrap_or_default();
                    written.hashes.extend(now.clone());
                    if before.is_some() {
                        // Only what changed goes, with the key it is matched by.
                        let reduced: IndexMap<String, Value> = fields
                            .iter()
                            .filter(|(k, _)| changed.contains(k) || target.keep.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        let slot = match mode {
                            OutputMode::Wire => &mut live[*p].wire,
                            OutputMode::Native => &mut live[*p].native,
                        };
                        if let Some(full) = slot.replace(reduced) {
                            full_fields.push((*p, full));
                        }
                    }
                    keep_at.push(*p);
                    keep_links.push(link);
                    keep_changes.push(Some((target.key, written)));
                }
                at = keep_at;
                links = keep_links;
                changes = keep_changes;
            }
            if at.is_empty() {
                continue;
            }
            let ledger_from = commit.ledger_done.len();
            let (answers, calls) = rivulet_http::count_calls(self.run_action(
                index,
                action.as_ref(),
                &live,
                &at,
                &links,
                ctx,
                &mut commit,
                &mut marks,
            ))
            .await;
            for (p, full) in full_fields {
                let mode = action.output_mode();
                match mode {
                    OutputMode::Wire => live[p].wire = Some(full),
                    OutputMode::Native => live[p].native = Some(full),
                }
            }
            let answers = answers?;
            counts.api_calls += calls;
            for ((outcome, _), change) in answers.iter().zip(changes) {
                if let (ActionOutcome::Done { id }, Some((key, mut written))) = (outcome, change) {
                    if let Some(id) = id.as_ref().filter(|id| !id.is_empty()) {
                        written.target_id = Some(id.clone());
                    }
                    commit.written.push((index, key, written));
                }
            }
            if action.retry_safety() == RetrySafety::AtLeastOnceWithKey {
                keyed.extend(
                    at.iter()
                        .zip(&answers)
                        .filter(|(_, (o, _))| o.is_done())
                        .map(|(p, _)| {
                            let r = &live[*p].record;
                            (index, r.key.clone(), r.version.clone())
                        }),
                );
            }
            if let Some(reason) = answers.iter().find_map(|(o, _)| match o {
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
            if !self.dry_run {
                let done = answers.iter().filter(|(o, _)| o.is_done()).count() as u64;
                crate::events::ActionWrote {
                    flow,
                    action: index,
                    kind: action.kind(),
                    delivered: done,
                    failed: answers.len() as u64 - done + blocked,
                }
                .emit(&self.metrics);
            }
            for (p, (outcome, new)) in at.iter().zip(answers) {
                if outcome.is_done() {
                    live[*p].wrote += 1;
                }
                live[*p].steps[index] = match outcome {
                    ActionOutcome::Done { id } => Step::Done(Link {
                        action: self.flow.action_label(index),
                        object: action.object(),
                        ids: id
                            .iter()
                            .flat_map(|ids| ids.split(','))
                            .map(str::trim)
                            .filter(|id| !id.is_empty())
                            .map(str::to_string)
                            .collect(),
                        new,
                    }),
                    ActionOutcome::Failed { message } => Step::Failed(message),
                    ActionOutcome::Unknown { reason } | ActionOutcome::Transient { reason } => {
                        Step::Failed(format!(
                            "outcome unknown ({reason}); check the target before replaying"
                        ))
                    }
                };
            }
            // Creates that later actions build on are recorded at once, not with the page: a
            // crash between this action and those finds them in the ledger (the deal is not
            // created twice, and its line items are still made).
            let built_on = deps[index + 1..]
                .iter()
                .any(|d| d.declared && d.needs.contains(&index));
            if !self.dry_run && built_on && commit.ledger_done.len() > ledger_from {
                let early = Commit {
                    run_id,
                    fence: self.fence(),
                    ledger_done: commit.ledger_done[ledger_from..].to_vec(),
                    ..Commit::default()
                };
                self.store.commit(flow, &early).await?;
            }
        }
        let mut still = Vec::with_capacity(live.len());
        for mut l in live {
            if let Some((index, why)) = l.doomed.take() {
                let message = format!("{why} (so no action wrote this record)");
                failed.push(self.failure(l, index, ctx, message));
                continue;
            }
            match self.explain(&l.steps) {
                None => still.push(l),
                Some((index, message)) => failed.push(self.failure(l, index, ctx, message)),
            }
        }
        let live = still;
        // A record no action wrote: filtered when every action's `when:` kept it out, unchanged
        // when its targets already held it.
        for l in &live {
            if l.wrote > 0 {
                counts.succeeded += 1;
            } else if l.unchanged > 0 {
                counts.unchanged += 1;
            } else if l.steps.iter().all(|s| matches!(s, Step::Skipped)) {
                counts.filtered += 1;
            } else {
                counts.succeeded += 1;
            }
        }
        counts.failed += failed.len() as u64;
        if let (true, Some(plan)) = (self.dry_run, &self.plan) {
            plan.add(failed.iter().map(|f| crate::connector::PlanEntry {
                flow: flow.to_string(),
                record: f.origin.clone(),
                action: f.action,
                target: None,
                planned: crate::connector::Planned::WouldFail {
                    reason: rivulet_http::secrets::scrub(&f.error).into_owned(),
                },
            }));
            return Ok(counts);
        }
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
        commit.ledger_clear.extend(
            preparing
                .into_iter()
                .map(|index| (index, PREPARING.to_string())),
        );
        commit.delivered = delivered;
        commit.failed = failed;
        commit.cursor = page.cursor;
        commit.counts = counts;
        self.store.commit(flow, &commit).await?;
        crate::events::PageRecorded { flow, counts }.emit(&self.metrics);
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

    /// Takes down that action `index`'s preparation may create things the page's records share
    /// (so an attempt after a crash knows), and says when an earlier such attempt, which a crash
    /// cut short, began. The mark is dropped with the page's commit.
    async fn mark_preparing(&self, index: usize) -> Result<Option<DateTime<Utc>>, StateError> {
        let flow = self.name();
        let key = vec![PREPARING.to_string()];
        let before = self.store.ledger(flow, index, &key).await?;
        let interrupted = before
            .get(PREPARING)
            .filter(|e| e.state == LedgerState::Pending)
            .and_then(|e| e.at);
        self.store.ledger_pending(flow, index, &key).await?;
        Ok(interrupted)
    }

    /// Why a record that did not go through failed: the first action that failed for it (its
    /// error), then the other failures, and the actions with declared prerequisites that were
    /// not run because of them. `None` when every action took it.
    fn explain(&self, steps: &[Step]) -> Option<(usize, String)> {
        let first = steps.iter().position(|s| !s.went_through())?;
        let mut text = match &steps[first] {
            Step::Failed(message) => message.clone(),
            Step::Blocked(d) => format!(
                "not run: its prerequisite {} did not succeed",
                self.flow.action_label(*d)
            ),
            Step::Waiting | Step::Done(_) | Step::Skipped => {
                "internal: the record was never written".into()
            }
        };
        for (j, step) in steps.iter().enumerate().skip(first + 1) {
            match step {
                Step::Failed(message) => {
                    text.push_str(&format!(
                        "; {} failed too: {message}",
                        self.flow.action_label(j)
                    ));
                }
                Step::Blocked(d) if self.deps[j].declared => {
                    let how = if matches!(steps[*d], Step::Failed(_)) {
                        "failed"
                    } else {
                        "was not run"
                    };
                    text.push_str(&format!(
                        "; {} was not run: its prerequisite {} {how}",
                        self.flow.action_label(j),
                        self.flow.action_label(*d)
                    ));
                }
                _ => {}
            }
        }
        Some((first, text))
    }

    /// Runs action `index` on the records at `at` of `live`, `links[n]` being what the actions
    /// it builds on made of the `n`th of them. One answer per record: its outcome, and whether
    /// the id it reports names a record created just now.
    #[allow(clippy::too_many_arguments)]
    async fn run_action(
        &self,
        index: usize,
        action: &dyn Action,
        live: &[Live],
        at: &[usize],
        links: &[Vec<Link>],
        ctx: &Context,
        commit: &mut Commit,
        marks: &mut Vec<UndoMark>,
    ) -> Result<Vec<(ActionOutcome, bool)>, StateError> {
        let mode = action.output_mode();
        let prepared = prepare_batch(live, at, mode);
        if let (true, Some(plan)) = (self.dry_run, &self.plan) {
            let planned = action.plan(&prepared, ctx).await;
            let target = action.destination();
            plan.add(prepared.iter().zip(planned).map(|(p, planned)| {
                crate::connector::PlanEntry {
                    flow: self.name().to_string(),
                    record: p.record.origin.clone(),
                    action: Some(index),
                    target: Some(target.clone()),
                    planned,
                }
            }));
            return Ok(vec![
                (ActionOutcome::Done { id: None }, false);
                prepared.len()
            ]);
        }
        if self.dry_run {
            for p in &prepared {
                let line = serde_json::json!({
                    "flow": self.name(),
                    "action": index,
                    "kind": action.kind(),
                    "record": p.record.key,
                    "fields": action.preview(p, ctx),
                });
                println!(
                    "dry-run {}",
                    rivulet_http::secrets::scrub(&line.to_string())
                );
            }
            return Ok(vec![
                (ActionOutcome::Done { id: None }, false);
                prepared.len()
            ]);
        }
        self.check_lease()?;
        let flow = self.name();
        let old = |outcomes: Vec<ActionOutcome>| outcomes.into_iter().map(|o| (o, false)).collect();
        Ok(match action.retry_safety() {
            RetrySafety::LedgeredCreate => {
                self.ledgered(index, action, &prepared, links, ctx, commit)
                    .await?
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
                        old(action.write_linked(&prepared, links, &[], ctx).await)
                    }
                    // Without a mark the write could not be taken back after a crash.
                    Err(e) => vec![(ActionOutcome::failed(e), false); prepared.len()],
                }
            }
            RetrySafety::Idempotent => old(action.write_linked(&prepared, links, &[], ctx).await),
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
                let (to_send, send_links): (Vec<Prepared<'_>>, Vec<Vec<Link>>) = prepared
                    .iter()
                    .zip(links)
                    .zip(&delivered)
                    .filter(|(_, done)| !**done)
                    .map(|((p, l), _)| (*p, l.clone()))
                    .unzip();
                let mut sent = action
                    .write_linked(&to_send, &send_links, &[], ctx)
                    .await
                    .into_iter();
                delivered
                    .iter()
                    .map(|done| match done {
                        true => (ActionOutcome::Done { id: None }, false),
                        false => (
                            sent.next()
                                .unwrap_or_else(|| ActionOutcome::failed("internal: no outcome")),
                            false,
                        ),
                    })
                    .collect()
            }
        })
    }

    /// Creates, announced in the ledger before they are made, so a crash cannot lead to a
    /// second create: an announced record is looked up instead. A record the ledger already
    /// has an id for (an earlier attempt or run created it) is written as an update of it.
    async fn ledgered(
        &self,
        index: usize,
        action: &dyn Action,
        prepared: &[Prepared<'_>],
        links: &[Vec<Link>],
        ctx: &Context,
        commit: &mut Commit,
    ) -> Result<Vec<(ActionOutcome, bool)>, StateError> {
        let flow = self.name();
        let keys: Vec<String> = prepared.iter().map(|p| p.record.key.clone()).collect();
        let ledger = self.store.ledger(flow, index, &keys).await?;
        let mut outcomes: Vec<Option<(ActionOutcome, bool)>> = vec![None; prepared.len()];
        // Creates a crash (or an abandoned page) left in doubt: looked up, all at once. An
        // entry that has an id is no doubt: the record was made, and was being updated.
        let in_doubt: Vec<usize> = (0..prepared.len())
            .filter(|i| {
                ledger
                    .get(&prepared[*i].record.key)
                    .is_some_and(|e| e.state == LedgerState::Pending && e.target_id.is_none())
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
                    if links.get(i).is_some_and(|l| !l.is_empty()) {
                        // Found, but perhaps not yet associated: written again, as an update.
                        known.push(Some(id));
                        to_write.push(*p);
                        positions.push(i);
                    } else {
                        outcomes[i] = Some((ActionOutcome::Done { id: Some(id) }, false));
                    }
                }
                Some(Ok(None)) => {
                    known.push(None);
                    to_write.push(*p);
                    positions.push(i);
                }
                Some(Err(why)) => {
                    outcomes[i] = Some((
                        ActionOutcome::Unknown {
                            reason: format!(
                                "Rivulet stopped while this record was being created, so it may exist already ({why})"
                            ),
                        },
                        false,
                    ));
                }
                None => {
                    known.push(ledger.get(&p.record.key).and_then(|e| e.target_id.clone()));
                    to_write.push(*p);
                    positions.push(i);
                }
            }
        }
        // Only creates are announced: a write to a known record is an update.
        let pending: Vec<String> = to_write
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(p, _)| p.record.key.clone())
            .collect();
        self.store.ledger_pending(flow, index, &pending).await?;
        let write_links: Vec<Vec<Link>> = positions
            .iter()
            .map(|i| links.get(*i).cloned().unwrap_or_default())
            .collect();
        let written = action
            .write_linked(&to_write, &write_links, &known, ctx)
            .await;
        let creates_new = action.creates_new();
        for (((i, p), known), outcome) in positions
            .into_iter()
            .zip(to_write.iter())
            .zip(known)
            .zip(written)
        {
            let new = creates_new && known.is_none() && outcome.is_done();
            match &outcome {
                ActionOutcome::Done { id } => {
                    commit
                        .ledger_done
                        .push((index, p.record.key.clone(), id.clone().or(known)))
                }
                // Surely not created. (A record made before stays in the ledger: a failed
                // update of it must not lead to a second create on replay.)
                ActionOutcome::Failed { .. } if known.is_none() => {
                    commit.ledger_clear.push((index, p.record.key.clone()))
                }
                // Stays pending: nobody knows whether the create happened.
                _ => {}
            }
            outcomes[i] = Some((outcome, new));
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| (ActionOutcome::failed("internal: no outcome"), false)))
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

impl FlowRuntime {
    /// The failed-record entry of a record that failed at `action`: with what that action was
    /// given (its preview: the properties it sends, a deal's line items).
    fn failure(&self, l: Live, action: usize, ctx: &Context, error: String) -> FailedRecord {
        let sent = self.actions.get(action).map(|a| {
            a.preview(
                &Prepared {
                    record: &l.record,
                    fields: l.fields(a.output_mode()),
                },
                ctx,
            )
        });
        FailedRecord {
            sent,
            key: l.record.key,
            version: l.record.version,
            origin: l.record.origin,
            action: Some(action),
            error,
            record: Some(l.record.data),
        }
    }
}

/// A stable hash of a written value (change-only writes compare these across runs).
fn value_hash(v: &Value) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(v.to_string().as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}
