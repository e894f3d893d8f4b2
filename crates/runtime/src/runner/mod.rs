//! `rivulet run`: every selected flow, concurrently, until stopped (or once).
//!
//! - [`triggers`]: flows whose triggers share a group key are polled together, one poll
//!   fanned out to every flow in the group, each with its own cursor;
//! - [`schedules`]: scheduled flows tick on their cron expression or interval, never
//!   overlapping themselves, and read their source page by page.
//!
//! Both go through one run bookkeeping ([`Runs`]): a run is opened when a flow finds work,
//! finished with its status, and marked interrupted if the runner stops first. A destination
//! that is down makes a flow *wait* — nothing past the last recorded page moves, and the same
//! records are tried again after a backoff — rather than fail its records. Each task is
//! supervised: a panic is logged with its flows, recorded as their runs' failure, and the task
//! is started again after a backoff (or, under `--once`, counted as a failure).
//!
//! The runner knows connectors only through [`crate::connector`] and the registry in
//! [`crate::connectors`]; wall time comes from the injected clock.

mod schedules;
mod triggers;

use crate::connectors::{self, ActionContext, Clients, ConnectionError, Overrides};
use crate::executor::{FlowRuntime, PageError};
use crate::state::{Counts, Fence, RunStatus, StateError, StateStore};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use indexmap::IndexMap;
use rivulet_http::SharedClock;
use rivulet_spec::model::Backoff;
use rivulet_spec::validate::{CheckedFlow, Validation};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run every flow once (one poll, one schedule tick) and return.
    pub once: bool,
    /// Under `once`: how long to keep trying a destination (or source) that is down before
    /// giving up with nothing moved past it.
    pub once_wait: Duration,
    /// Read and map, print what would be sent, write nothing, move no cursor.
    pub dry_run: bool,
    /// Only these flows (all when empty).
    pub flows: Vec<String>,
    /// Where connections point instead of their own settings (the sandbox).
    pub overrides: Overrides,
    /// Wall time.
    pub clock: SharedClock,
    /// The lease this runner holds on the state; every commit checks it.
    pub fence: Option<Fence>,
    /// The runs under way, shared with whoever may have to mark them interrupted.
    pub runs: Runs,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            once: false,
            once_wait: Duration::from_secs(120),
            dry_run: false,
            flows: Vec::new(),
            overrides: Overrides::default(),
            clock: rivulet_http::clock::system(),
            fence: None,
            runs: Runs::default(),
        }
    }
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A connection could not be built (an unset variable, an unreadable token file).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A flow could not be prepared.
    #[error("flow `{name}`: {message}")]
    Flow {
        /// The flow.
        name: String,
        /// Why.
        message: String,
    },
    /// `--flow` named a flow that does not exist.
    #[error("no flow named `{name}`{hint}")]
    UnknownFlow {
        /// The name given.
        name: String,
        /// A did-you-mean, when one is close.
        hint: String,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What each flow did during this run of the runner.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Per flow: runs and counts.
    pub flows: IndexMap<String, FlowSummary>,
    /// Calls made by trigger polls (HubSpot: search calls).
    pub search_calls: u64,
}

/// One flow's part of a [`Summary`].
#[derive(Debug, Clone, Default)]
pub struct FlowSummary {
    /// Runs that found something to do.
    pub runs: u64,
    /// Their counts.
    pub counts: Counts,
    /// Errors that stopped a run (a failed poll, the state store, a panic).
    pub errors: Vec<String>,
    /// Still waiting for a destination or source when the runner stopped: why.
    pub waiting: Option<String>,
}

impl Summary {
    /// Whether any record failed or any run stopped on an error.
    pub fn has_failures(&self) -> bool {
        self.flows
            .values()
            .any(|f| f.counts.failed > 0 || !f.errors.is_empty())
    }

    /// Whether some flow gave up waiting for a destination or source that stayed down.
    pub fn gave_up_waiting(&self) -> bool {
        self.flows.values().any(|f| f.waiting.is_some())
    }
}

type SharedSummary = Arc<Mutex<Summary>>;

fn note(summary: &SharedSummary, flow: &str, f: impl FnOnce(&mut FlowSummary)) {
    let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
    f(s.flows.entry(flow.to_string()).or_default());
}

/// The runs under way: opened when a flow finds work, closed with their status. Whoever stops
/// the runner early marks what is left as interrupted.
#[derive(Debug, Clone, Default)]
pub struct Runs(Arc<Mutex<HashMap<i64, String>>>);

impl Runs {
    fn opened(&self, id: i64, flow: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, flow.to_string());
    }

    fn closed(&self, id: i64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn of_flows(&self, flows: &[String]) -> Vec<i64> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, f)| flows.contains(f))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Marks every run still under way as interrupted (the runner is stopping before they
    /// finished); returns how many.
    pub async fn interrupt(&self, store: &dyn StateStore, at: DateTime<Utc>, why: &str) -> usize {
        let ids: Vec<i64> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(id, _)| id)
            .collect();
        for id in &ids {
            if let Err(e) = store
                .finish_run(*id, at, RunStatus::Interrupted, Some(why))
                .await
            {
                tracing::warn!(run_id = id, error = %e, "could not mark the run interrupted");
            }
        }
        ids.len()
    }
}

/// What every task of a run shares.
#[derive(Clone)]
struct Shared {
    clients: Clients,
    summary: SharedSummary,
    clock: SharedClock,
    stop: watch::Receiver<bool>,
    once: bool,
    once_wait: Duration,
    runs: Runs,
}

impl Shared {
    /// Opens a run of `flow` (none for a dry run).
    async fn start_run(
        &self,
        flow: &FlowRuntime,
        started: DateTime<Utc>,
    ) -> Result<(i64, rivulet_mapping::Context), StateError> {
        if flow.dry_run {
            return Ok((
                0,
                rivulet_mapping::Context::new(flow.name(), "dry-run", started),
            ));
        }
        let id = flow.store.start_run(flow.name(), started).await?;
        self.runs.opened(id, flow.name());
        Ok((
            id,
            rivulet_mapping::Context::new(flow.name(), id.to_string(), started),
        ))
    }

    /// Closes a run with what it came to.
    async fn finish(&self, flow: &FlowRuntime, run: Option<i64>, counts: Counts, end: &End) {
        let Some(run_id) = run else { return };
        let (status, error) = match end {
            End::Done if counts.failed == 0 => (RunStatus::Succeeded, None),
            End::Done => (RunStatus::Failed, None),
            End::Waiting(reason) => (RunStatus::Waiting, Some(reason.as_str())),
            End::Error(e) => (RunStatus::Error, Some(e.as_str())),
        };
        if !flow.dry_run {
            self.runs.closed(run_id);
            if let Err(e) = flow
                .store
                .finish_run(run_id, self.clock.now(), status, error)
                .await
            {
                tracing::warn!(flow = flow.name(), run_id, error = %e, "could not record the end of the run");
            }
        }
        tracing::info!(
            flow = flow.name(),
            run_id,
            status = status.as_str(),
            read = counts.read,
            succeeded = counts.succeeded,
            failed = counts.failed,
            skipped = counts.skipped,
            "run finished"
        );
        note(&self.summary, flow.name(), |s| {
            s.runs += 1;
            s.counts += counts;
        });
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
enum End {
    /// Everything it read is recorded (some records may have failed).
    Done,
    /// A destination or the source was down: nothing past the last recorded page moved.
    Waiting(String),
    /// It stopped on an error.
    Error(String),
}

/// A flow waiting for a destination (or its source) to come back.
#[derive(Debug, Clone, Default)]
struct Wait {
    /// Consecutive failed attempts.
    attempt: u32,
    /// When to try again.
    until: Option<tokio::time::Instant>,
    /// Why it waits.
    reason: Option<String>,
}

impl Wait {
    /// Notes another failed attempt and says how long to wait before the next.
    fn failed(&mut self, flow: &str, reason: String, backoff: Backoff) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let wait = rivulet_http::RetryPolicy {
            base_delay: backoff.initial.get(),
            max_delay: backoff.max.get(),
            ..rivulet_http::RetryPolicy::default()
        }
        .backoff(self.attempt);
        tracing::warn!(
            flow,
            attempt = self.attempt,
            next_try_in_s = wait.as_secs_f64(),
            "{reason}; nothing past the last recorded page moves, next try in {:.1} s",
            wait.as_secs_f64()
        );
        self.until = Some(tokio::time::Instant::now() + wait);
        self.reason = Some(reason);
        wait
    }

    fn recovered(&mut self, flow: &str) {
        if let Some(reason) = self.reason.take() {
            tracing::info!(flow, was = %reason, "going on: the destination answers again");
        }
        *self = Wait::default();
    }

    fn due(&self) -> bool {
        self.until.is_none_or(|u| u <= tokio::time::Instant::now())
    }
}

/// How a page's failure reads, and the backoff to wait by when it is transient.
fn classify(flow: &FlowRuntime, e: &PageError) -> (String, Option<Backoff>) {
    match e {
        PageError::Transient { action, .. } => (
            e.to_string(),
            Some(
                flow.flow
                    .actions
                    .get(*action)
                    .map(|a| a.backoff())
                    .unwrap_or_default(),
            ),
        ),
        PageError::State(_) => (e.to_string(), None),
    }
}

fn build_flow(
    checked: &CheckedFlow,
    clients: &Clients,
    store: &Arc<dyn StateStore>,
    options: &RunOptions,
) -> Result<FlowRuntime, RunError> {
    let flow = &checked.flow;
    let err = |message: String| RunError::Flow {
        name: flow.name.clone(),
        message,
    };
    let mapping = checked
        .mapping
        .clone()
        .ok_or_else(|| err("the mapping does not compile".into()))?;
    let base_dir = checked.base_dir();
    let cx = ActionContext {
        flow: &flow.name,
        base_dir: &base_dir,
        mapping: &mapping,
        clients,
    };
    let actions = flow
        .actions
        .iter()
        .map(|a| connectors::build_action(a, &cx))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    Ok(FlowRuntime {
        flow: flow.clone(),
        base_dir,
        mapping,
        actions,
        store: Arc::clone(store),
        dry_run: options.dry_run,
        fence: options.fence.clone(),
        resend: Default::default(),
    })
}

/// A supervised task: what it runs, for which flows, made again after a panic.
struct Task {
    label: String,
    flows: Vec<String>,
    make: Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
}

/// Runs the validated flows until `stop` turns true (or once).
pub async fn run(
    validation: &Validation,
    store: Arc<dyn StateStore>,
    options: RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<Summary, RunError> {
    for name in &options.flows {
        if !validation.flows.iter().any(|f| &f.flow.name == name) {
            let hint = rivulet_spec::diagnostic::did_you_mean(
                name,
                validation.flows.iter().map(|f| f.flow.name.as_str()),
            )
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
            return Err(RunError::UnknownFlow {
                name: name.clone(),
                hint,
            });
        }
    }
    let selected: Vec<&CheckedFlow> = validation
        .flows
        .iter()
        .filter(|f| options.flows.is_empty() || options.flows.contains(&f.flow.name))
        .collect();

    // One client per connection in use, so flows share its budget.
    let used = selected.iter().flat_map(|f| f.flow.connections());
    let clients = Clients::build(validation, used, &options.overrides)?;
    let shared = Shared {
        clients,
        summary: Arc::new(Mutex::new(Summary::default())),
        clock: options.clock.clone(),
        stop: stop.clone(),
        once: options.once,
        once_wait: options.once_wait,
        runs: options.runs.clone(),
    };

    let mut groups: IndexMap<String, Vec<(Arc<FlowRuntime>, &CheckedFlow)>> = IndexMap::new();
    let mut tasks: Vec<Task> = Vec::new();
    for checked in &selected {
        let flow = Arc::new(build_flow(checked, &shared.clients, &store, &options)?);
        note(&shared.summary, flow.name(), |_| {});
        if !options.dry_run {
            flow.recover().await?;
        }
        match &checked.flow.trigger {
            Some(t) => groups
                .entry(t.group_key())
                .or_default()
                .push((flow, checked)),
            None => {
                let shared = shared.clone();
                let name = flow.name().to_string();
                tasks.push(Task {
                    label: format!("schedule of {name}"),
                    flows: vec![name],
                    make: Box::new(move || {
                        Box::pin(schedules::scheduled(Arc::clone(&flow), shared.clone()))
                    }),
                });
            }
        }
    }
    for (key, members) in groups {
        let triggers: Vec<_> = members
            .iter()
            .filter_map(|(_, c)| c.flow.trigger.as_ref())
            .collect();
        let group: Arc<dyn crate::connector::TriggerGroup> = Arc::from(
            connectors::build_trigger_group(&triggers, &shared.clients).map_err(|message| {
                RunError::Flow {
                    name: key.clone(),
                    message,
                }
            })?,
        );
        let flows: Vec<Arc<FlowRuntime>> = members.into_iter().map(|(f, _)| f).collect();
        let names = flows.iter().map(|f| f.name().to_string()).collect();
        let shared = shared.clone();
        let label = format!("poll of {key}");
        let poll_key = key.clone();
        tasks.push(Task {
            label,
            flows: names,
            make: Box::new(move || {
                Box::pin(triggers::poll_group(
                    poll_key.clone(),
                    Arc::clone(&group),
                    flows.clone(),
                    shared.clone(),
                ))
            }),
        });
    }
    supervise(tasks, &store, &shared).await;
    let out = shared
        .summary
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(out)
}

/// Runs the tasks to their end. A task that panics is reported with its flows, their open runs
/// are recorded as failed, and (unless running once, or stopping) it starts again after a
/// backoff — never a silent stop.
async fn supervise(tasks: Vec<Task>, store: &Arc<dyn StateStore>, shared: &Shared) {
    let mut set = tokio::task::JoinSet::new();
    let mut running: HashMap<tokio::task::Id, (usize, u32)> = HashMap::new();
    for (i, task) in tasks.iter().enumerate() {
        let handle = set.spawn((task.make)());
        running.insert(handle.id(), (i, 0));
    }
    while let Some(joined) = set.join_next_with_id().await {
        let (id, panic) = match joined {
            Ok((id, ())) => (id, None),
            Err(e) if e.is_panic() => {
                let id = e.id();
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                (id, Some(message))
            }
            Err(e) => (e.id(), None),
        };
        let Some((index, restarts)) = running.remove(&id) else {
            continue;
        };
        let Some(message) = panic else { continue };
        let task = &tasks[index];
        let why = format!("{} panicked: {message}", task.label);
        tracing::error!(flows = ?task.flows, "{why}");
        for run in shared.runs.of_flows(&task.flows) {
            shared.runs.closed(run);
            let _ = store
                .finish_run(run, shared.clock.now(), RunStatus::Error, Some(&why))
                .await;
        }
        for flow in &task.flows {
            note(&shared.summary, flow, |s| s.errors.push(why.clone()));
        }
        if shared.once || *shared.stop.borrow() {
            continue;
        }
        let wait = rivulet_http::RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            ..rivulet_http::RetryPolicy::default()
        }
        .backoff(restarts + 1);
        tracing::warn!(
            task = %task.label,
            restart_in_s = wait.as_secs_f64(),
            "restarting the task"
        );
        let make = &task.make;
        let mut stop = shared.stop.clone();
        let again = make();
        let handle = set.spawn(async move {
            if pause(wait, &mut stop).await {
                again.await;
            }
        });
        running.insert(handle.id(), (index, restarts + 1));
    }
}

/// Sleeps `d`, or less if asked to stop; says whether to go on.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}
