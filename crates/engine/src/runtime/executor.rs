//! One page of records through one flow: map, run the actions in order, record every outcome
//! and the cursor that covers them in one transaction.

use super::hubspot::HubSpotWriter;
use super::record::{ActionOutcome, Item, Prepared, Record};
use super::sink::file::FileWriter;
use super::sink::http::HttpWriter;
use super::state::{Commit, Counts, FailedRecord, FileMark, StateError, StateStore};
use crate::model::Flow;
use indexmap::IndexMap;
use rivulet_mapping::{Context, Mapping, OutputMode};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// An action, ready to write.
pub enum ActionRuntime {
    /// HubSpot create / update / upsert.
    HubSpot(HubSpotWriter),
    /// Append to a file.
    File(FileWriter),
    /// Send to an HTTP API.
    Http(HttpWriter),
}

impl ActionRuntime {
    fn mode(&self) -> OutputMode {
        match self {
            ActionRuntime::HubSpot(_) => OutputMode::Wire,
            _ => OutputMode::Native,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ActionRuntime::HubSpot(_) => "hubspot",
            ActionRuntime::File(_) => "file",
            ActionRuntime::Http(_) => "http",
        }
    }
}

/// A flow ready to process pages.
pub struct FlowRuntime {
    /// The flow as written.
    pub flow: Flow,
    /// The flow file's folder: relative paths start here.
    pub base_dir: PathBuf,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// The actions, in order.
    pub actions: Vec<ActionRuntime>,
    /// Where outcomes are recorded.
    pub store: Arc<dyn StateStore>,
    /// Read and map, but write nothing and record nothing.
    pub dry_run: bool,
}

/// A page handed to [`FlowRuntime::process`].
pub struct Page {
    /// The items.
    pub items: Vec<Item>,
    /// Drop records whose (key, version) is already recorded (triggers re-read an overlap).
    pub dedupe: bool,
    /// The cursor to store with the page's outcomes.
    pub cursor: Option<(String, Value)>,
    /// For dedupe keys: each record's timestamp (ms), used to prune old keys.
    pub timestamps: Vec<i64>,
}

/// Why a page could not be processed: nothing of it was recorded, so it will be read again.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A record on its way through the actions.
struct Live {
    record: Record,
    wire: Option<IndexMap<String, Value>>,
    native: Option<IndexMap<String, Value>>,
}

impl FlowRuntime {
    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.flow.name
    }

    /// Undoes appends that a crash left unrecorded, before anything else runs: the records they
    /// hold were not recorded, so they will be read and written again.
    pub fn recover(&self) -> Result<Vec<FileMark>, StateError> {
        let marks = self.store.file_marks(self.name())?;
        for mark in &marks {
            if let Err(e) = super::sink::file::truncate_to(&mark.path, mark.len) {
                tracing::warn!(flow = self.name(), path = %mark.path.display(), error = %e, "could not undo an unrecorded append");
            } else {
                tracing::info!(flow = self.name(), path = %mark.path.display(), len = mark.len, "undid an append a crash left unrecorded");
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
        let mut records: Vec<(Record, i64)> = Vec::new();
        let mut timestamps = page.timestamps.into_iter();
        for item in page.items {
            let ts = timestamps.next().unwrap_or(0);
            match item {
                Item::Record(r) => records.push((r, ts)),
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
                    });
                }
            }
        }
        if page.dedupe && !records.is_empty() {
            let keys: Vec<(String, String)> = records
                .iter()
                .map(|(r, _)| (r.key.clone(), r.version.clone()))
                .collect();
            let seen = self.store.delivered(flow, &keys)?;
            let before = records.len();
            records.retain(|(r, _)| !seen.contains(&(r.key.clone(), r.version.clone())));
            counts.skipped += (before - records.len()) as u64;
        }
        counts.read += records.len() as u64;
        let delivered: Vec<(String, String, i64)> = if page.dedupe {
            records
                .iter()
                .map(|(r, ts)| (r.key.clone(), r.version.clone(), *ts))
                .collect()
        } else {
            Vec::new()
        };

        let needs_wire = self.actions.iter().any(|a| a.mode() == OutputMode::Wire);
        let needs_native = self.actions.iter().any(|a| a.mode() == OutputMode::Native);
        let mut live: Vec<Live> = Vec::with_capacity(records.len());
        for (record, _) in records {
            let map = |mode| self.mapping.apply(&record.data, ctx, mode);
            let wire = if needs_wire {
                Some(map(OutputMode::Wire))
            } else {
                None
            };
            let native = if needs_native {
                Some(map(OutputMode::Native))
            } else {
                None
            };
            match (wire.transpose(), native.transpose()) {
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
                }),
            }
        }

        let mut commit = Commit {
            run_id,
            ..Commit::default()
        };
        for (index, action) in self.actions.iter().enumerate() {
            if live.is_empty() {
                break;
            }
            let outcomes = self
                .run_action(index, action, &live, ctx, &mut commit)
                .await?;
            let mut still = Vec::with_capacity(live.len());
            for (l, outcome) in live.into_iter().zip(outcomes) {
                match outcome {
                    ActionOutcome::Done { .. } => still.push(l),
                    ActionOutcome::Failed { message } => failed.push(failure(l, index, message)),
                    ActionOutcome::Unknown { reason } => failed.push(failure(
                        l,
                        index,
                        format!("outcome unknown ({reason}); check the target before replaying"),
                    )),
                }
            }
            live = still;
        }
        counts.succeeded += live.len() as u64;
        counts.failed += failed.len() as u64;
        if self.dry_run {
            return Ok(counts);
        }
        for f in &failed {
            tracing::warn!(flow, record = %f.origin, action = ?f.action, error = %f.error, "record failed");
        }
        commit.delivered = delivered;
        commit.failed = failed;
        commit.cursor = page.cursor;
        commit.counts = counts;
        self.store.commit(flow, &commit)?;
        Ok(counts)
    }

    async fn run_action(
        &self,
        index: usize,
        action: &ActionRuntime,
        live: &[Live],
        ctx: &Context,
        commit: &mut Commit,
    ) -> Result<Vec<ActionOutcome>, StateError> {
        let prepared: Vec<Prepared<'_>> = live
            .iter()
            .map(|l| Prepared {
                record: &l.record,
                fields: match action.mode() {
                    OutputMode::Wire => l.wire.as_ref(),
                    OutputMode::Native => l.native.as_ref(),
                }
                .expect("mapped for every mode an action needs"),
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
                println!("dry-run {line}");
            }
            return Ok(vec![ActionOutcome::Done { id: None }; prepared.len()]);
        }
        let flow = self.name();
        Ok(match action {
            ActionRuntime::HubSpot(writer) if writer.creates() => {
                // Announce creates before making them, so a crash cannot lead to a second create.
                let keys: Vec<String> = prepared.iter().map(|p| p.record.key.clone()).collect();
                let ledger = self.store.ledger(flow, index, &keys)?;
                let mut outcomes: Vec<Option<ActionOutcome>> = vec![None; prepared.len()];
                let mut known = Vec::new();
                let mut to_write = Vec::new();
                let mut positions = Vec::new();
                for (i, p) in prepared.iter().enumerate() {
                    match ledger.get(&p.record.key) {
                        // A crash came between announcing this create and recording it.
                        Some(entry) if entry.state == "pending" => {
                            match writer.find_created(p).await {
                                Ok(Some(id)) => {
                                    commit.ledger_done.push((
                                        index,
                                        p.record.key.clone(),
                                        Some(id.clone()),
                                    ));
                                    outcomes[i] = Some(ActionOutcome::Done { id: Some(id) });
                                }
                                Ok(None) => {
                                    known.push(None);
                                    to_write.push(*p);
                                    positions.push(i);
                                }
                                Err(why) => {
                                    outcomes[i] = Some(ActionOutcome::Unknown {
                                        reason: format!(
                                            "Rivulet stopped while this record was being created in HubSpot, so it may exist already ({why})"
                                        ),
                                    });
                                }
                            }
                        }
                        entry => {
                            known.push(entry.and_then(|e| e.target_id.clone()));
                            to_write.push(*p);
                            positions.push(i);
                        }
                    }
                }
                let pending: Vec<String> = to_write.iter().map(|p| p.record.key.clone()).collect();
                self.store.ledger_pending(flow, index, &pending)?;
                let written = writer.write(&to_write, &known, ctx).await;
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
                        // Stays pending: nobody knows whether HubSpot made it.
                        ActionOutcome::Unknown { .. } => {}
                    }
                    outcomes[i] = Some(outcome);
                }
                outcomes
                    .into_iter()
                    .map(|o| o.unwrap_or_else(|| ActionOutcome::failed("internal: no outcome")))
                    .collect()
            }
            ActionRuntime::HubSpot(writer) => {
                writer
                    .write(&prepared, &vec![None; prepared.len()], ctx)
                    .await
            }
            ActionRuntime::File(writer) => {
                let len = writer.len().unwrap_or(0);
                self.store.mark_file(
                    flow,
                    &FileMark {
                        action: index,
                        path: writer.path().to_path_buf(),
                        len,
                    },
                )?;
                commit.clear_file_marks = true;
                writer.write(&prepared).await
            }
            ActionRuntime::Http(writer) => writer.write(&prepared).await,
        })
    }
}

fn failure(l: Live, action: usize, error: String) -> FailedRecord {
    FailedRecord {
        key: l.record.key,
        version: l.record.version,
        origin: l.record.origin,
        action: Some(action),
        error,
        record: Some(l.record.data),
    }
}
