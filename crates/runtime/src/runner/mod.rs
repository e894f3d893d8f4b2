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
use crate::events::{self, Event};
use crate::executor::{FlowRuntime, PageError};
use crate::metrics::Metrics;
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
    /// Whether that lease is still surely held; checked before every write.
    pub guard: Option<crate::lease::LeaseGuard>,
    /// `rivulet plan`: with `dry_run`, collect what each action would do instead of printing.
    pub plan: Option<Arc<crate::connector::PlanSink>>,
    /// The runs under way, shared with whoever may have to mark them interrupted.
    pub runs: Runs,
    /// Where what happens is counted (`/metrics`, `/readyz`).
    pub metrics: Arc<Metrics>,
    /// Runners sharing one state (a shared backend): each trigger group and scheduled flow is
    /// run by the one runner holding its lease. `None`: this runner holds the whole state.
    pub sharing: Option<Sharing>,
}

/// How a runner takes part in sharing a state with others.
#[derive(Debug, Clone)]
pub struct Sharing {
    /// This runner.
    pub holder: crate::state::Holder,
    /// How long its leases last without renewal: the bound on failover time.
    pub ttl: Duration,
}

/// The lease on one piece of work (a trigger group's poll, a scheduled flow), named after the
/// task that runs it.
pub fn work_lease(label: &str) -> String {
    format!("work:{label}")
}

/// The lease `name` of a runner's membership: its heartbeat.
const MEMBER_PREFIX: &str = "runner:";

/// The label of the task that runs `checked` (and so, with [`work_lease`], its lease).
pub fn task_label(checked: &CheckedFlow) -> String {
    match &checked.flow.trigger {
        Some(t) => format!("poll of {}", t.group_key()),
        None => format!("schedule of {}", checked.flow.name),
    }
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
            guard: None,
            plan: None,
            runs: Runs::default(),
            metrics: Arc::new(Metrics::new()),
            sharing: None,
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
pub struct Runs(Arc<Mutex<HashMap<i64, (String, tokio::time::Instant)>>>);

impl Runs {
    fn opened(&self, id: i64, flow: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (flow.to_string(), tokio::time::Instant::now()));
    }

    /// Closes a run; how long it took.
    fn closed(&self, id: i64) -> Option<std::time::Duration> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .map(|(_, started)| started.elapsed())
    }

    fn of_flows(&self, flows: &[String]) -> Vec<i64> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, (f, _))| flows.contains(f))
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
    metrics: Arc<Metrics>,
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
        self.metrics.flow_status(flow.name(), "running", None);
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
        let took = if flow.dry_run {
            None
        } else {
            self.runs.closed(run_id)
        };
        let finished = self.clock.now();
        if !flow.dry_run
            && let Err(e) = flow.store.finish_run(run_id, finished, status, error).await
        {
            tracing::warn!(flow = flow.name(), run_id, error = %e, "could not record the end of the run");
        }
        events::RunFinished {
            flow: flow.name(),
            run_id,
            status,
            counts,
            seconds: took.unwrap_or_default().as_secs_f64(),
            finished_at: finished.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            error,
        }
        .emit(&self.metrics);
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

/// Polls in a row whose reads failed before a trigger is reported stalled.
const STALLED_AFTER: u32 = 3;

/// A flow waiting for a destination (or its source) to come back.
#[derive(Debug, Clone, Default)]
struct Wait {
    /// Consecutive failed attempts.
    attempt: u32,
    /// Consecutive polls whose reads failed (the trigger's cursor cannot move).
    read_failures: u32,
    /// When to try again.
    until: Option<tokio::time::Instant>,
    /// Why it waits.
    reason: Option<String>,
}

impl Wait {
    /// Notes another failed attempt and says how long to wait before the next.
    fn failed(
        &mut self,
        metrics: &Metrics,
        flow: &str,
        reason: String,
        backoff: Backoff,
    ) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let wait = rivulet_http::RetryPolicy {
            base_delay: backoff.initial.get(),
            max_delay: backoff.max.get(),
            ..rivulet_http::RetryPolicy::default()
        }
        .backoff(self.attempt);
        events::Waiting {
            flow,
            reason: &reason,
            attempt: self.attempt,
            next_try_s: wait.as_secs_f64(),
        }
        .emit(metrics);
        self.until = Some(tokio::time::Instant::now() + wait);
        self.reason = Some(reason);
        wait
    }

    /// A poll whose reads failed: waits like any failure, and after [`STALLED_AFTER`] in a row
    /// says loudly that the trigger is stalled.
    fn read_failed(&mut self, metrics: &Metrics, flow: &str, reason: String) -> Duration {
        self.read_failures = self.read_failures.saturating_add(1);
        if self.read_failures == STALLED_AFTER {
            events::TriggerStalled {
                flow,
                polls: self.read_failures,
                reason: &reason,
            }
            .emit(metrics);
        }
        self.failed(metrics, flow, reason, Backoff::default())
    }

    fn recovered(&mut self, metrics: &Metrics, flow: &str) {
        if let Some(reason) = self.reason.take() {
            events::Recovered { flow, was: &reason }.emit(metrics);
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

/// A flow ready to process pages, with its actions built on `clients`.
pub(crate) fn build_flow(
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
    // Compiled by validation, which refuses a flow whose conditions do not compile.
    let uncompiled = |what: &str| err(format!("{what} does not compile"));
    let when = match (&flow.when, &checked.when) {
        (Some(_), None) => return Err(uncompiled("`when`")),
        (_, when) => when.clone(),
    };
    let action_when = flow
        .actions
        .iter()
        .enumerate()
        .map(
            |(i, a)| match (a.when(), checked.action_when.get(i).cloned().flatten()) {
                (Some(_), None) => Err(uncompiled(&format!("action {i}'s `when`"))),
                (_, when) => Ok(when),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FlowRuntime {
        flow: flow.clone(),
        base_dir,
        mapping,
        actions,
        store: Arc::clone(store),
        dry_run: options.dry_run,
        fence: Mutex::new(options.fence.clone()),
        guard: Mutex::new(options.guard.clone()),
        resend: Default::default(),
        metrics: Arc::clone(&options.metrics),
        when,
        action_when,
        change_only: flow.write == rivulet_spec::model::WriteMode::Changed,
        plan: options.plan.clone(),
        deps: flow.dependencies(),
    })
}

/// A supervised task: what it runs, for which flows, made again after a panic.
struct Task {
    label: String,
    flows: Vec<String>,
    /// Everything the task's behaviour depends on (its flows' and connections' definitions):
    /// a reload keeps a running task whose fingerprint is unchanged.
    fingerprint: String,
    /// Flows to recover (in-doubt writes of a crashed run) before the task first starts.
    recover: Vec<Arc<FlowRuntime>>,
    /// Its flows, whose commits carry the task's lease when runners share the state.
    runtimes: Vec<Arc<FlowRuntime>>,
    /// Makes the task's future; it stops (after the work in hand) when its receiver turns true.
    make: Box<dyn Fn(watch::Receiver<bool>) -> BoxFuture<'static, ()> + Send + Sync>,
}

/// A set of validated flows, as the runner receives it (at start and on each reload).
struct Loaded {
    shared: Shared,
    tasks: Vec<Task>,
    flows: Vec<String>,
}

/// Runs the validated flows until `stop` turns true (or once).
pub async fn run(
    validation: &Validation,
    store: Arc<dyn StateStore>,
    options: RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<Summary, RunError> {
    run_watched(validation, store, options, stop, None).await
}

/// [`run`], taking new sets of flows from `reloads` while it runs (`--watch`): a task whose
/// flows and connections are unchanged keeps running (and its trigger keeps its cursor, which
/// lives in the state by flow); a removed or changed one is told to stop, finishes the page in
/// hand, and its replacement starts only then, so no flow is ever worked on twice at once. A
/// reload that cannot be built (a secret that cannot be read) is refused with the running
/// flows kept. The caller validates: an invalid change never gets here.
pub async fn run_watched(
    validation: &Validation,
    store: Arc<dyn StateStore>,
    options: RunOptions,
    stop: watch::Receiver<bool>,
    reloads: Option<tokio::sync::mpsc::Receiver<Validation>>,
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
    let base = Shared {
        clients: Clients::default(),
        summary: Arc::new(Mutex::new(Summary::default())),
        clock: options.clock.clone(),
        stop: stop.clone(),
        once: options.once,
        once_wait: options.once_wait,
        runs: options.runs.clone(),
        metrics: Arc::clone(&options.metrics),
    };
    let mut loaded = load(validation, &store, &options, &base)?;
    // A category property that is missing or no dropdown stops the run before any write.
    loaded.shared.clients.verify_hubspot().await?;
    // Alone on the state: in-doubt writes are recovered now. Shared: by whoever takes the
    // work's lease, when it does.
    if !options.dry_run && options.sharing.is_none() {
        for task in &mut loaded.tasks {
            for flow in std::mem::take(&mut task.recover) {
                flow.recover().await?;
            }
        }
    }
    loaded.shared.clients.watch(&base.metrics);
    // A service probes its connections so `/readyz` can tell; a single pass needs no probe
    // (it would cost a call of the budget its writes pace themselves by).
    if !options.once {
        loaded.shared.clients.probe();
    }
    base.metrics.loaded(loaded.flows.iter().cloned());
    let member = match &options.sharing {
        Some(sharing) if !options.dry_run => {
            let (_tx, never) = watch::channel(false);
            let heartbeat = crate::lease::HeldLease::acquire(
                Arc::clone(&store),
                &format!("{MEMBER_PREFIX}{}", sharing.holder.id),
                &sharing.holder,
                sharing.ttl,
                false,
                never,
                |_| {},
            )
            .await
            .map_err(|e| match e {
                crate::lease::LeaseError::State(e) => RunError::State(e),
                other => RunError::Flow {
                    name: "runner".into(),
                    message: other.to_string(),
                },
            })?;
            Some(Member {
                sharing: sharing.clone(),
                heartbeat,
                idle: Vec::new(),
            })
        }
        _ => None,
    };
    let sharing = member.is_some();
    let balance_every = options
        .sharing
        .as_ref()
        .map_or(Duration::from_secs(3600), |s| {
            crate::lease::poll_interval(s.ttl)
        });
    let base = Shared {
        clients: loaded.shared.clients.clone(),
        ..base
    };
    let mut supervisor = Supervisor::new(&store, &base, member);
    supervisor.apply(loaded.tasks);
    // Runners started together see each other's heartbeats (taken at start) before they split
    // the work and the budget, a moment later; a single pass takes whatever is free at once.
    if options.once {
        supervisor.balance().await;
    }
    let join_delay = balance_every.min(Duration::from_secs(1));
    let mut balance =
        tokio::time::interval_at(tokio::time::Instant::now() + join_delay, balance_every);
    balance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clients = loaded.shared.clients;
    let mut reloads = reloads;
    let mut global = stop.clone();
    if *global.borrow_and_update() {
        supervisor.stop_all();
    }
    loop {
        tokio::select! {
            joined = supervisor.set.join_next_with_id(), if !supervisor.set.is_empty() => {
                if let Some(joined) = joined {
                    supervisor.joined(joined).await;
                }
            }
            _ = balance.tick(), if sharing && !supervisor.stopping && !options.once => {
                supervisor.balance().await;
            }
            changed = global.changed(), if !supervisor.stopping => {
                if changed.is_err() || *global.borrow() {
                    supervisor.stop_all();
                }
            }
            next = async { reloads.as_mut()?.recv().await }, if reloads.is_some() && !supervisor.stopping => {
                let Some(validation) = next else {
                    reloads = None;
                    continue;
                };
                match load(&validation, &store, &options, &Shared { clients: clients.clone(), ..base.clone() }) {
                    Ok(loaded) => {
                        loaded.shared.clients.watch(&base.metrics);
                        loaded.shared.clients.probe_changed(&clients);
                        base.metrics.loaded(loaded.flows.iter().cloned());
                        supervisor.shared_clients(loaded.shared.clients.clone());
                        let change = supervisor.apply(loaded.tasks);
                        supervisor.balance().await;
                        events::Reloaded {
                            started: &change.started,
                            kept: &change.kept,
                            stopping: &change.stopping,
                        }
                        .emit(&base.metrics);
                        clients = loaded.shared.clients;
                    }
                    Err(e) => {
                        events::ReloadRefused { error: &e.to_string() }.emit(&base.metrics);
                    }
                }
            }
        }
        // Shared, a runner with no work in hand waits for work to come free (another runner
        // may stop), unless it is stopping or running once.
        let waits_for_work = sharing && !options.once && supervisor.has_idle();
        if supervisor.set.is_empty()
            && (supervisor.stopping || options.once || (reloads.is_none() && !waits_for_work))
        {
            break;
        }
    }
    supervisor.leave().await;
    let out = base
        .summary
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(out)
}

/// Builds the tasks of the selected flows of `validation`, on clients rebuilt from
/// `previous.clients` (unchanged connections keep theirs).
fn load(
    validation: &Validation,
    store: &Arc<dyn StateStore>,
    options: &RunOptions,
    previous: &Shared,
) -> Result<Loaded, RunError> {
    let selected: Vec<&CheckedFlow> = validation
        .flows
        .iter()
        .filter(|f| options.flows.is_empty() || options.flows.contains(&f.flow.name))
        .collect();
    // One client per connection in use, so flows share its budget.
    let used = selected.iter().flat_map(|f| f.flow.connections());
    let clients = previous
        .clients
        .rebuild(validation, used, &options.overrides)?;
    let shared = Shared {
        clients,
        ..previous.clone()
    };
    let fingerprint = |flows: &[&CheckedFlow]| {
        let mut out = String::new();
        for checked in flows {
            out.push_str(&checked.file.display().to_string());
            out.push('\n');
            out.push_str(&serde_json::to_string(&checked.flow).unwrap_or_default());
            out.push('\n');
            for name in checked.flow.connections() {
                if let Some(c) = validation.connections.get(name) {
                    out.push_str(&c.file.display().to_string());
                    out.push_str(&serde_json::to_string(&c.connection).unwrap_or_default());
                    out.push('\n');
                }
            }
        }
        out
    };

    let mut groups: IndexMap<String, Vec<(Arc<FlowRuntime>, &CheckedFlow)>> = IndexMap::new();
    let mut tasks: Vec<Task> = Vec::new();
    for checked in &selected {
        let flow = Arc::new(build_flow(checked, &shared.clients, store, options)?);
        note(&shared.summary, flow.name(), |_| {});
        match &checked.flow.trigger {
            Some(t) => groups
                .entry(t.group_key())
                .or_default()
                .push((flow, checked)),
            None => {
                let task_shared = shared.clone();
                let name = flow.name().to_string();
                let recover = if options.dry_run {
                    Vec::new()
                } else {
                    vec![Arc::clone(&flow)]
                };
                tasks.push(Task {
                    label: task_label(checked),
                    flows: vec![name],
                    fingerprint: format!("schedule\n{}", fingerprint(&[checked])),
                    recover,
                    runtimes: vec![Arc::clone(&flow)],
                    make: Box::new(move |stop| {
                        let shared = Shared {
                            stop,
                            ..task_shared.clone()
                        };
                        Box::pin(schedules::scheduled(Arc::clone(&flow), shared))
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
        let checked: Vec<&CheckedFlow> = members.iter().map(|(_, c)| *c).collect();
        let flows: Vec<Arc<FlowRuntime>> = members.into_iter().map(|(f, _)| f).collect();
        let names = flows.iter().map(|f| f.name().to_string()).collect();
        let task_shared = shared.clone();
        let poll_key = key.clone();
        let recover = if options.dry_run {
            Vec::new()
        } else {
            flows.clone()
        };
        // A group is never empty: its flows are why it exists.
        let label = task_label(checked[0]);
        tasks.push(Task {
            fingerprint: format!("{label}\n{}", fingerprint(&checked)),
            label,
            flows: names,
            recover,
            runtimes: flows.clone(),
            make: Box::new(move |stop| {
                let shared = Shared {
                    stop,
                    ..task_shared.clone()
                };
                Box::pin(triggers::poll_group(
                    poll_key.clone(),
                    Arc::clone(&group),
                    flows.clone(),
                    shared,
                ))
            }),
        });
    }
    let flows = selected.iter().map(|f| f.flow.name.clone()).collect();
    Ok(Loaded {
        shared,
        tasks,
        flows,
    })
}

/// A task the supervisor runs (or is stopping).
struct Slot {
    task: Task,
    stop: watch::Sender<bool>,
    restarts: u32,
    /// Told to stop by a reload: it is not restarted, and its flows are free once it ends.
    retiring: bool,
    /// Told to stop to hand its work to another runner: its task goes back to the pool.
    handing_over: bool,
    /// The lease it runs under, when runners share the state.
    lease: Option<crate::lease::HeldLease>,
}

/// What a reload did, by task label.
#[derive(Default)]
struct Change {
    started: Vec<String>,
    kept: Vec<String>,
    stopping: Vec<String>,
}

/// This runner's part in sharing the state with other runners.
struct Member {
    sharing: Sharing,
    /// Its heartbeat: a lease that lapses when it stops renewing.
    heartbeat: crate::lease::HeldLease,
    /// Tasks of the flows that no runner here runs now (another runner may).
    idle: Vec<Task>,
}

/// Runs the tasks: a task that panics is reported with its flows, their open runs are recorded
/// as failed, and (unless running once, or stopping) it starts again after a backoff — never a
/// silent stop. Tasks replaced by a reload are stopped first and their replacements started
/// once they are gone. When runners share the state, a task runs only under its lease, and
/// [`Supervisor::balance`] takes and gives up leases so the work is spread evenly.
struct Supervisor<'a> {
    store: &'a Arc<dyn StateStore>,
    shared: &'a Shared,
    /// The connections' clients now (a reload may change them).
    clients: Clients,
    set: tokio::task::JoinSet<()>,
    slots: HashMap<tokio::task::Id, Slot>,
    /// Replacements waiting for a retiring task that works on one of their flows.
    pending: Vec<Task>,
    member: Option<Member>,
    stopping: bool,
}

impl<'a> Supervisor<'a> {
    fn new(store: &'a Arc<dyn StateStore>, shared: &'a Shared, member: Option<Member>) -> Self {
        Supervisor {
            store,
            shared,
            clients: shared.clients.clone(),
            set: tokio::task::JoinSet::new(),
            slots: HashMap::new(),
            pending: Vec::new(),
            member,
            stopping: false,
        }
    }

    /// Makes `tasks` the set that runs.
    fn apply(&mut self, tasks: Vec<Task>) -> Change {
        let mut change = Change::default();
        let mut incoming: Vec<Task> = Vec::new();
        for task in tasks {
            let running = self
                .slots
                .values()
                .any(|s| !s.retiring && s.task.fingerprint == task.fingerprint);
            if running {
                change.kept.push(task.label);
            } else {
                incoming.push(task);
            }
        }
        // A pending replacement that the new set no longer has is dropped.
        self.pending
            .retain(|p| incoming.iter().all(|t| t.fingerprint != p.fingerprint));
        for slot in self.slots.values_mut() {
            if slot.retiring || change.kept.contains(&slot.task.label) {
                continue;
            }
            slot.retiring = true;
            let _ = slot.stop.send(true);
            change.stopping.push(slot.task.label.clone());
        }
        if let Some(member) = &mut self.member {
            // Shared: new and changed work waits for its lease with the rest of the idle work.
            member.idle = incoming;
            change.started = member.idle.iter().map(|t| t.label.clone()).collect();
            return change;
        }
        for task in incoming {
            change.started.push(task.label.clone());
            self.pending.push(task);
        }
        self.start_pending();
        change
    }

    /// Starts the pending tasks none of whose flows a running task still works on.
    fn start_pending(&mut self) {
        let mut waiting = Vec::new();
        for task in std::mem::take(&mut self.pending) {
            if self.busy(&task) {
                waiting.push(task);
                continue;
            }
            self.start(task, None);
        }
        self.pending = waiting;
    }

    /// Whether a running task still works on one of `task`'s flows.
    fn busy(&self, task: &Task) -> bool {
        self.slots
            .values()
            .any(|s| s.task.flows.iter().any(|f| task.flows.contains(f)))
    }

    /// Starts `task` (under `lease`, when runners share the state).
    fn start(&mut self, task: Task, lease: Option<crate::lease::HeldLease>) {
        let (stop, receiver) = watch::channel(false);
        if let Some(lease) = &lease {
            let fence = lease.fence();
            for flow in &task.runtimes {
                flow.set_fence(Some(fence.clone()));
                flow.set_guard(Some(lease.guard()));
            }
            // A lease taken over mid-task: stop after the page in hand (whose commit the new
            // owner's token refuses anyway).
            let mut lost = lease.lost();
            let stopper = stop.clone();
            let label = task.label.clone();
            tokio::spawn(async move {
                if lost.wait_for(|l| *l).await.is_ok() {
                    tracing::error!(task = %label, "another runner took this work over; stopping it here");
                    let _ = stopper.send(true);
                }
            });
        }
        let recover = task.recover.clone();
        let run = (task.make)(receiver);
        let label = task.label.clone();
        let handle = self.set.spawn(async move {
            for flow in recover {
                if let Err(e) = flow.recover().await {
                    tracing::error!(task = %label, flow = flow.name(), error = %e, "could not recover the flow's in-doubt writes; not starting it");
                    return;
                }
            }
            run.await;
        });
        // Shared: every start may follow another runner's crash, so recovery runs each time.
        let keep_recover = lease.is_some();
        self.slots.insert(
            handle.id(),
            Slot {
                task: Task {
                    recover: if keep_recover {
                        task.runtimes.clone()
                    } else {
                        Vec::new()
                    },
                    ..task
                },
                stop,
                restarts: 0,
                retiring: false,
                handing_over: false,
                lease,
            },
        );
    }

    /// Tells every task to stop after the work in hand.
    fn stop_all(&mut self) {
        self.stopping = true;
        self.pending.clear();
        for slot in self.slots.values() {
            let _ = slot.stop.send(true);
        }
    }

    async fn joined(&mut self, joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
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
        let Some(mut slot) = self.slots.remove(&id) else {
            return;
        };
        if let Some(message) = panic {
            match self.panicked(slot, &message).await {
                Some(again) => slot = again,
                None => {
                    self.start_pending();
                    return;
                }
            }
        } else if slot.retiring && self.member.is_none() {
            tracing::info!(task = %slot.task.label, "stopped: {} (no longer in the flows)", slot.task.label);
        }
        if let Some(lease) = slot.lease.take() {
            for flow in &slot.task.runtimes {
                flow.set_fence(None);
                flow.set_guard(None);
            }
            let lost = *lease.lost().borrow();
            lease.release().await;
            // Handed over, or its lease lost: the work goes back to the pool (unless a reload
            // replaced it). A task that ended by itself (a flow that stopped on a cursor it
            // cannot read) stays out: taking it again would only fail again.
            if let Some(member) = &mut self.member
                && !self.stopping
                && (slot.handing_over || lost)
                && member.idle.iter().all(|t| t.label != slot.task.label)
                && !slot.retiring
            {
                member.idle.push(slot.task);
            }
        }
        self.start_pending();
    }

    /// Reports a panic; restarts the task after a backoff unless it should not run again
    /// (`None`: it is gone; `Some`: it ended for good, its slot returned for clean-up).
    async fn panicked(&mut self, slot: Slot, message: &str) -> Option<Slot> {
        let shared = self.shared;
        let task = &slot.task;
        let why = format!("{} panicked: {message}", task.label);
        events::TaskPanicked {
            task: &task.label,
            flows: &task.flows,
            message,
        }
        .emit(&shared.metrics);
        for run in shared.runs.of_flows(&task.flows) {
            shared.runs.closed(run);
            let _ = self
                .store
                .finish_run(run, shared.clock.now(), RunStatus::Error, Some(&why))
                .await;
        }
        for flow in &task.flows {
            note(&shared.summary, flow, |s| s.errors.push(why.clone()));
        }
        if shared.once || self.stopping || slot.retiring || slot.handing_over {
            return Some(slot);
        }
        let wait = rivulet_http::RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            ..rivulet_http::RetryPolicy::default()
        }
        .backoff(slot.restarts + 1);
        tracing::warn!(
            task = %task.label,
            restart_in_s = wait.as_secs_f64(),
            "restarting the task"
        );
        let again = (task.make)(slot.stop.subscribe());
        let mut stop = slot.stop.subscribe();
        let handle = self.set.spawn(async move {
            if pause(wait, &mut stop).await {
                again.await;
            }
        });
        self.slots.insert(
            handle.id(),
            Slot {
                restarts: slot.restarts + 1,
                ..slot
            },
        );
        None
    }

    /// Shared state: takes leases on idle work up to this runner's fair share of all the work
    /// (live runners are those whose heartbeat has not lapsed; the first `work % runners` of
    /// them, by id, take one more), and hands work beyond its share back. Under `once`, takes
    /// all the work no other runner holds.
    async fn balance(&mut self) {
        let Some(member) = &self.member else { return };
        if self.stopping {
            return;
        }
        let me = member.sharing.holder.id.clone();
        let leases = match self.store.leases().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the leases; keeping the work in hand");
                return;
            }
        };
        let now = self.shared.clock.now();
        let host = &member.sharing.holder.host;
        // A runner is live while its heartbeat has not lapsed, unless it is a process on this
        // host that is gone (killed): its work is taken at once, not after its lease.
        let mut live: Vec<String> = leases
            .iter()
            .filter(|l| {
                l.name.starts_with(MEMBER_PREFIX)
                    && l.expires_at > now
                    && !l.holder.is_dead_here(host)
            })
            .map(|l| l.holder.id.clone())
            .collect();
        if !live.contains(&me) {
            live.push(me.clone());
        }
        live.sort();
        live.dedup();
        let running: Vec<&Slot> = self
            .slots
            .values()
            .filter(|s| !s.retiring && !s.handing_over)
            .collect();
        let work = member.idle.len() + running.len();
        let rank = live.iter().position(|id| *id == me).unwrap_or(0);
        let share = if self.shared.once {
            work
        } else {
            work / live.len() + usize::from(rank < work % live.len())
        };
        self.shared.metrics.sharing(live.len(), running.len());
        self.clients.share_budget(live.len());

        if running.len() > share {
            // Hand back the surplus: stopped after its page in hand, then released.
            let mut surplus = running.len() - share;
            for slot in self
                .slots
                .values_mut()
                .filter(|s| !s.retiring && !s.handing_over)
            {
                if surplus == 0 {
                    break;
                }
                tracing::info!(task = %slot.task.label, runners = live.len(), "handing this work to another runner (spreading the work)");
                slot.handing_over = true;
                let _ = slot.stop.send(true);
                surplus -= 1;
            }
            return;
        }
        let mut wanted = share - running.len();
        if wanted == 0 {
            return;
        }
        // Work whose flows a stopping task still works on waits for it.
        let busy: Vec<bool> = member.idle.iter().map(|t| self.busy(t)).collect();
        // Runners try the idle work in different orders, so they rarely race for one lease.
        let Some(member) = &mut self.member else {
            return;
        };
        let mut order: Vec<usize> = (0..member.idle.len()).filter(|i| !busy[*i]).collect();
        order.sort_by_key(|i| spread_key(&member.idle[*i].label, &me));
        let mut taken = Vec::new();
        for i in order {
            if wanted == 0 {
                break;
            }
            let task = &member.idle[i];
            let name = work_lease(&task.label);
            let before = leases.iter().find(|l| l.name == name);
            let (_tx, never) = watch::channel(false);
            match crate::lease::HeldLease::acquire(
                Arc::clone(self.store),
                &name,
                &member.sharing.holder,
                member.sharing.ttl,
                false,
                never,
                |_| {},
            )
            .await
            {
                Ok(lease) => {
                    // Taken from a runner that did not give it up: a failover.
                    if let Some(prev) = before
                        && prev.holder.id != me
                        && prev.expires_at.timestamp_millis() > 0
                    {
                        events::FailedOver {
                            task: &task.label,
                            from: &prev.holder.to_string(),
                        }
                        .emit(&self.shared.metrics);
                        if let Err(e) = self
                            .store
                            .interrupt_runs(
                                Some(&task.flows),
                                now,
                                "the runner that held this work stopped before the run finished",
                            )
                            .await
                        {
                            tracing::warn!(task = %task.label, error = %e, "could not close the runs the previous runner left open");
                        }
                    }
                    taken.push((i, lease));
                    wanted -= 1;
                }
                Err(crate::lease::LeaseError::Held(_)) => {}
                Err(e) => {
                    tracing::warn!(task = %task.label, error = %e, "could not take the lease");
                }
            }
        }
        taken.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        let mut started = Vec::new();
        for (i, lease) in taken {
            let task = member.idle.remove(i);
            started.push((task, lease));
        }
        for (task, lease) in started {
            tracing::info!(task = %task.label, "took this work (lease {})", work_lease(&task.label));
            self.start(task, Some(lease));
        }
    }

    /// The clients after a reload.
    fn shared_clients(&mut self, clients: Clients) {
        self.clients = clients;
    }

    /// Gives up this runner's heartbeat (its leases on work are released as its tasks end).
    async fn leave(&mut self) {
        if let Some(member) = self.member.take() {
            member.heartbeat.release().await;
        }
    }

    /// Whether idle work is waiting for a lease this runner could take.
    fn has_idle(&self) -> bool {
        self.member.as_ref().is_some_and(|m| !m.idle.is_empty())
    }
}

/// Orders work differently for each runner (a hash of the work and the runner), so runners
/// taking leases at once try different ones first.
fn spread_key(label: &str, runner: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    label.hash(&mut h);
    runner.hash(&mut h);
    h.finish()
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
