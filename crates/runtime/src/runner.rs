//! `rivulet run`: every selected flow, concurrently, until stopped (or once).
//!
//! Triggers are grouped by their group key: one poll per group, fanned out to every flow in it,
//! each with its own cursor. Scheduled flows tick on their cron expression or interval and
//! never overlap themselves. Stopping (SIGINT/SIGTERM, or `--once` finishing) lets the page in
//! hand finish and be recorded; nothing else starts.
//!
//! The runner knows connectors only through [`crate::connector`] and the registry in
//! [`crate::connectors`]; time comes from the injected clock.

use crate::connector::{Source, TriggerGroup};
use crate::connectors::{self, ActionContext, Clients, ConnectionError, Overrides};
use crate::executor::{FlowRuntime, Page};
use crate::state::{Counts, Cursor, RunStatus, StateError, StateStore};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use rivulet_http::SharedClock;
use rivulet_mapping::Context;
use rivulet_spec::model::CatchUp;
use rivulet_spec::schedule::{self, Timing};
use rivulet_spec::validate::{CheckedFlow, Validation};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run every flow once (one poll, one schedule tick) and return.
    pub once: bool,
    /// Read and map, print what would be sent, write nothing, move no cursor.
    pub dry_run: bool,
    /// Only these flows (all when empty).
    pub flows: Vec<String>,
    /// Where connections point instead of their own settings (the sandbox).
    pub overrides: Overrides,
    /// Wall time.
    pub clock: SharedClock,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            once: false,
            dry_run: false,
            flows: Vec::new(),
            overrides: Overrides::default(),
            clock: rivulet_http::clock::system(),
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
    #[error("no flow named `{0}`")]
    UnknownFlow(String),
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
    /// Errors that stopped a run (a failed poll, the state store).
    pub errors: Vec<String>,
}

impl Summary {
    /// Whether any record failed or any run stopped on an error.
    pub fn has_failures(&self) -> bool {
        self.flows
            .values()
            .any(|f| f.counts.failed > 0 || !f.errors.is_empty())
    }
}

type SharedSummary = Arc<Mutex<Summary>>;

fn note(summary: &SharedSummary, flow: &str, f: impl FnOnce(&mut FlowSummary)) {
    let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
    f(s.flows.entry(flow.to_string()).or_default());
}

/// What every task of a run shares.
#[derive(Clone)]
struct Shared {
    clients: Clients,
    summary: SharedSummary,
    clock: SharedClock,
    stop: watch::Receiver<bool>,
    once: bool,
}

fn build_flow(
    checked: &CheckedFlow,
    clients: &Clients,
    store: &Arc<dyn StateStore>,
    dry_run: bool,
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
        dry_run,
    })
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
            return Err(RunError::UnknownFlow(name.clone()));
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
        stop,
        once: options.once,
    };

    let mut groups: IndexMap<String, Vec<(Arc<FlowRuntime>, &CheckedFlow)>> = IndexMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for checked in &selected {
        let flow = Arc::new(build_flow(
            checked,
            &shared.clients,
            &store,
            options.dry_run,
        )?);
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
                tasks.spawn(async move { scheduled(flow, shared).await });
            }
        }
    }
    for (key, members) in groups {
        let triggers: Vec<_> = members
            .iter()
            .filter_map(|(_, c)| c.flow.trigger.as_ref())
            .collect();
        let group =
            connectors::build_trigger_group(&triggers, &shared.clients).map_err(|message| {
                RunError::Flow {
                    name: key.clone(),
                    message,
                }
            })?;
        let flows = members.into_iter().map(|(f, _)| f).collect();
        let shared = shared.clone();
        tasks.spawn(async move { poll_group(key, group, flows, shared).await });
    }
    while tasks.join_next().await.is_some() {}
    let out = shared
        .summary
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(out)
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

async fn poll_group(
    key: String,
    group: Box<dyn TriggerGroup>,
    members: Vec<Arc<FlowRuntime>>,
    mut shared: Shared,
) {
    let every = group.poll_every();
    loop {
        let span = tracing::info_span!("poll", group = %key);
        let calls = poll_once(group.as_ref(), &members, &shared)
            .instrument(span)
            .await;
        shared
            .summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .search_calls += calls;
        if shared.once || !pause(every, &mut shared.stop).await {
            return;
        }
    }
}

/// Per-member state during one poll.
struct Member {
    flow: Arc<FlowRuntime>,
    /// Its position among the group's members.
    index: usize,
    identity: String,
    run: Option<(i64, Context)>,
    counts: Counts,
    failed: bool,
}

/// A member's cursor: the stored one, or a fresh one when there is none or it belongs to an
/// earlier version of the trigger. A cursor of this trigger that cannot be read is an error:
/// starting afresh would deliver everything again.
async fn load_cursor(
    group: &dyn TriggerGroup,
    flow: &FlowRuntime,
    index: usize,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, String> {
    let identity = group.cursor_identity(index);
    let stored = flow
        .store
        .cursor(flow.name())
        .await
        .map_err(|e| e.to_string())?;
    if let Some(Cursor {
        identity: was,
        state,
    }) = stored
    {
        if was == identity {
            return group.check_cursor(&state).map(|()| state).map_err(|why| {
                format!(
                    "the stored cursor cannot be read ({why}); the flow stops rather than deliver everything again. Reset it with `rivulet cursor reset {}`",
                    flow.name()
                )
            });
        }
        tracing::warn!(flow = flow.name(), from = %was, to = %identity, "the trigger changed: its cursor starts afresh from `start_from`");
    }
    let state = group.start_cursor(index, now);
    if !flow.dry_run {
        flow.store
            .set_cursor(
                flow.name(),
                &Cursor {
                    identity,
                    state: state.clone(),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(state)
}

async fn poll_once(group: &dyn TriggerGroup, flows: &[Arc<FlowRuntime>], shared: &Shared) -> u64 {
    let summary = &shared.summary;
    let now = shared.clock.now();
    let mut members = Vec::new();
    let mut cursors = Vec::new();
    for (index, flow) in flows.iter().enumerate() {
        match load_cursor(group, flow, index, now).await {
            Ok(state) => {
                cursors.push(Some(state));
                members.push(Member {
                    flow: Arc::clone(flow),
                    index,
                    identity: group.cursor_identity(index),
                    run: None,
                    counts: Counts::default(),
                    failed: false,
                });
            }
            Err(e) => {
                tracing::error!(flow = flow.name(), error = %e, "the flow cannot poll");
                note(summary, flow.name(), |s| s.errors.push(e));
                cursors.push(None);
            }
        }
    }
    if members.is_empty() {
        return 0;
    }
    let mut poll = match group.poll(cursors, now).await {
        Ok(p) => p,
        Err(e) => {
            for m in &members {
                note(summary, m.flow.name(), |s| s.errors.push(e.to_string()));
            }
            return 0;
        }
    };
    let mut scan_failed = None;
    loop {
        let page = match poll.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => {
                scan_failed = Some(e.to_string());
                break;
            }
        };
        let mut pages = page.members;
        let mut work = Vec::new();
        for m in members.iter_mut().filter(|m| !m.failed) {
            let Some((items, state)) = pages.get_mut(m.index).map(std::mem::take) else {
                continue;
            };
            if items.is_empty() {
                continue;
            }
            let started = shared.clock.now();
            if m.run.is_none() && m.flow.dry_run {
                m.run = Some((0, Context::new(m.flow.name(), "dry-run", started)));
            }
            if m.run.is_none() {
                match m.flow.store.start_run(m.flow.name(), started).await {
                    Ok(id) => {
                        m.run = Some((id, Context::new(m.flow.name(), id.to_string(), started)))
                    }
                    Err(e) => {
                        m.failed = true;
                        note(summary, m.flow.name(), |s| s.errors.push(e.to_string()));
                        continue;
                    }
                }
            }
            let cursor = Some(Cursor {
                identity: m.identity.clone(),
                state,
            });
            work.push((
                m,
                Page {
                    items,
                    dedupe: true,
                    cursor,
                },
            ));
        }
        let results =
            futures_util::future::join_all(work.into_iter().map(|(m, page)| async move {
                let (run_id, ctx) = m.run.clone().expect("run started");
                let span = tracing::info_span!("run", flow = m.flow.name(), run_id);
                let result = m.flow.process(run_id, &ctx, page).instrument(span).await;
                (m, result)
            }))
            .await;
        for (m, result) in results {
            match result {
                Ok(c) => m.counts += c,
                Err(e) => {
                    m.failed = true;
                    note(summary, m.flow.name(), |s| s.errors.push(e.to_string()));
                }
            }
        }
    }
    let finished = if scan_failed.is_none() {
        poll.finish()
    } else {
        Vec::new()
    };
    for m in &mut members {
        if let Some(err) = &scan_failed {
            tracing::error!(flow = m.flow.name(), error = %err, "poll failed; the cursor stays where it was");
            note(summary, m.flow.name(), |s| s.errors.push(err.clone()));
        }
        if let Some(state) = finished
            .get(m.index)
            .filter(|_| !m.failed && !m.flow.dry_run)
        {
            let cursor = Cursor {
                identity: m.identity.clone(),
                state: state.clone(),
            };
            if let Err(e) = m.flow.store.set_cursor(m.flow.name(), &cursor).await {
                note(summary, m.flow.name(), |s| s.errors.push(e.to_string()));
            }
            if let Some(before) = poll.prune_before(m.index) {
                let _ = m.flow.store.prune_delivered(m.flow.name(), before).await;
            }
        }
        let error = scan_failed
            .as_deref()
            .or(m.failed.then_some("state store failure"));
        finish(
            &m.flow,
            m.run.as_ref().map(|r| r.0),
            m.counts,
            error,
            shared,
        )
        .await;
    }
    poll.calls()
}

async fn finish(
    flow: &FlowRuntime,
    run: Option<i64>,
    counts: Counts,
    error: Option<&str>,
    shared: &Shared,
) {
    let Some(run_id) = run else { return };
    let status = match (error, counts.failed) {
        (Some(_), _) => RunStatus::Error,
        (None, 0) => RunStatus::Succeeded,
        _ => RunStatus::Failed,
    };
    if !flow.dry_run {
        let _ = flow
            .store
            .finish_run(run_id, shared.clock.now(), status, error)
            .await;
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
    note(&shared.summary, flow.name(), |s| {
        s.runs += 1;
        s.counts += counts;
    });
}

/// Scheduled flows: tick, read the source page by page, repeat.
async fn scheduled(flow: Arc<FlowRuntime>, mut shared: Shared) {
    let timing = match schedule::timing(flow.flow.schedule.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            note(&shared.summary, flow.name(), |s| {
                s.errors.push(e.to_string())
            });
            return;
        }
    };
    let catch_up = flow
        .flow
        .schedule
        .as_ref()
        .map(|s| s.catch_up)
        .unwrap_or_default();
    let last = flow
        .store
        .runs(Some(flow.name()), 1)
        .await
        .ok()
        .and_then(|r| r.into_iter().next())
        .and_then(|r| DateTime::parse_from_rfc3339(&r.started_at).ok())
        .map(|t| t.with_timezone(&Utc));
    let (extra, mut due) = plan_start(&timing, catch_up, last, shared.clock.now());
    // `--once` means one tick, whatever was missed.
    if extra > 0 && !shared.once {
        tracing::info!(
            flow = flow.name(),
            missed = extra + 1,
            "catching up on missed schedule ticks"
        );
        for _ in 0..extra {
            run_source(&flow, &shared).await;
        }
    }
    loop {
        if !shared.once {
            let wait = (due - shared.clock.now()).to_std().unwrap_or_default();
            if !pause(wait, &mut shared.stop).await {
                return;
            }
        }
        run_source(&flow, &shared).await;
        if shared.once || *shared.stop.borrow() {
            return;
        }
        due = next_tick(&timing, shared.clock.now());
    }
}

/// When a scheduled flow first runs after (re)starting, given its last run: a first start runs
/// at once; otherwise missed ticks are handled by the `catch_up` policy. Returns how many extra
/// runs to make at once (for `all`) and when the regular run is due.
fn plan_start(
    timing: &Timing,
    catch_up: CatchUp,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (u64, DateTime<Utc>) {
    let Some(last) = last else { return (0, now) };
    match (catch_up, missed_ticks(timing, last, now)) {
        (_, 0) => (0, next_tick(timing, last)),
        (CatchUp::None, _) => (0, next_tick(timing, now)),
        (CatchUp::Latest, _) => (0, now),
        (CatchUp::All, missed) => (missed.min(100) - 1, now),
    }
}

/// The tick after `after`. Date arithmetic saturates: no schedule can overflow it.
fn next_tick(timing: &Timing, after: DateTime<Utc>) -> DateTime<Utc> {
    let fallback = || {
        after
            .checked_add_signed(chrono::Duration::minutes(15))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    match timing {
        Timing::Every(d) => chrono::Duration::from_std(d.get())
            .ok()
            .and_then(|d| after.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        Timing::Cron(cron) => cron
            .find_next_occurrence(&after, false)
            .unwrap_or_else(|_| fallback()),
    }
}

fn missed_ticks(timing: &Timing, last: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let mut n = 0;
    let mut t = next_tick(timing, last);
    while t <= now && n < 10_000 {
        n += 1;
        t = next_tick(timing, t);
    }
    n
}

/// One run of a scheduled flow's source: page by page until it is done.
async fn run_source(flow: &Arc<FlowRuntime>, shared: &Shared) {
    let summary = &shared.summary;
    let Some(source) = flow.flow.source.as_ref() else {
        return;
    };
    let identity = format!(
        "source:{}",
        serde_json::to_string(source).unwrap_or_default()
    );
    let checkpoint = match flow.store.cursor(flow.name()).await {
        Ok(Some(c)) if c.identity == identity => Some(c.state),
        Ok(Some(_)) => {
            tracing::warn!(flow = flow.name(), "the source changed: reading it afresh");
            None
        }
        Ok(None) => None,
        Err(e) => {
            note(summary, flow.name(), |s| s.errors.push(e.to_string()));
            return;
        }
    };
    let started = shared.clock.now();
    let reader =
        connectors::build_source(source, &flow.base_dir, &shared.clients, checkpoint, started);
    let run_id = if flow.dry_run {
        0
    } else {
        match flow.store.start_run(flow.name(), started).await {
            Ok(id) => id,
            Err(e) => {
                note(summary, flow.name(), |s| s.errors.push(e.to_string()));
                return;
            }
        }
    };
    let ctx = Context::new(flow.name(), run_id.to_string(), started);
    let span = tracing::info_span!("run", flow = flow.name(), run_id);
    let mut counts = Counts::default();
    let result: Result<(), String> = async {
        let mut reader: Box<dyn Source> = reader.map_err(|e| e.to_string())?;
        while let Some(page) = reader.next_page(100).await.map_err(|e| e.to_string())? {
            let dedupe = reader.dedupe();
            let cursor = Some(Cursor {
                identity: identity.clone(),
                state: page.checkpoint.clone(),
            });
            counts += flow
                .process(
                    run_id,
                    &ctx,
                    Page {
                        items: page.items.clone(),
                        dedupe,
                        cursor,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            if !flow.dry_run {
                reader.committed(&page).await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
    .instrument(span)
    .await;
    let error = result.err();
    if let Some(e) = &error {
        tracing::error!(flow = flow.name(), run_id, error = %e, "run stopped");
        note(summary, flow.name(), |s| s.errors.push(e.clone()));
    }
    // `finish` records nothing for a dry run but still counts it in the summary.
    finish(flow, Some(run_id), counts, error.as_deref(), shared).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    #[test]
    fn catch_up_policies_after_downtime() {
        let every = Timing::Every(rivulet_spec::model::Duration::from_secs(15 * 60));
        // First start: run now.
        assert_eq!(
            plan_start(&every, CatchUp::Latest, None, at(10, 0)),
            (0, at(10, 0))
        );
        // Nothing missed: the next tick after the last run.
        assert_eq!(
            plan_start(&every, CatchUp::Latest, Some(at(10, 0)), at(10, 5)),
            (0, at(10, 15))
        );
        // Down from 10:00 to 11:00 (4 ticks missed).
        assert_eq!(
            plan_start(&every, CatchUp::Latest, Some(at(10, 0)), at(11, 0)),
            (0, at(11, 0))
        );
        assert_eq!(
            plan_start(&every, CatchUp::All, Some(at(10, 0)), at(11, 0)),
            (3, at(11, 0))
        );
        assert_eq!(
            plan_start(&every, CatchUp::None, Some(at(10, 0)), at(11, 0)),
            (0, at(11, 15))
        );
    }

    #[test]
    fn cron_ticks() {
        let cron = Timing::Cron(Box::new(schedule::parse_cron("0 * * * *").unwrap()));
        assert_eq!(next_tick(&cron, at(10, 1)), at(11, 0));
        assert_eq!(missed_ticks(&cron, at(10, 1), at(13, 30)), 3);
        assert_eq!(
            plan_start(&cron, CatchUp::None, Some(at(10, 1)), at(13, 30)),
            (0, at(14, 0))
        );
    }

    #[test]
    fn date_arithmetic_saturates() {
        let longest = Timing::Every(rivulet_spec::model::Duration::MAX);
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(next_tick(&longest, end), end);
        assert_eq!(missed_ticks(&longest, end, end), 0);
        let never = Timing::Cron(Box::new(schedule::parse_cron("0 0 30 2 *").unwrap()));
        assert!(next_tick(&never, at(10, 0)) > at(10, 0));
    }
}
