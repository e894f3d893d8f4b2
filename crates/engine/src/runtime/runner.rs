//! `rivulet run`: every selected flow, concurrently, until stopped (or once).
//!
//! Triggers are grouped by (connection, object, event): one scan per group per poll, fanned out
//! to every flow in it, each with its own cursor. Scheduled flows tick on their cron expression
//! or interval and never overlap themselves. Stopping (SIGINT/SIGTERM, or `--once` finishing)
//! lets the page in hand finish and be recorded; nothing else starts.

use super::executor::{ActionRuntime, FlowRuntime, Page};
use super::http::HttpClient;
use super::hubspot::{HubSpotReader, HubSpotWriter, object_json};
use super::record::{Item, Record};
use super::sink::file::FileWriter;
use super::sink::http::HttpWriter;
use super::source::{FileReader, HttpReader};
use super::state::{Counts, StateError, StateStore};
use super::trigger::{Scan, TriggerCursor, object_type, record_timestamp, watched_property};
use crate::env;
use crate::model::{CatchUp, Connection, HubSpotTrigger, TriggerEvent, TriggerObject};
use crate::schedule::{self, Timing};
use crate::validate::{CheckedFlow, Validation};
use indexmap::IndexMap;
use rivulet_hubspot::{Auth, Client, ClientConfig, SecretString};
use rivulet_mapping::Context;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run every flow once (one poll, one schedule tick) and return.
    pub once: bool,
    /// Read and map, print what would be sent, write nothing, move no cursor.
    pub dry_run: bool,
    /// Only these flows (all when empty).
    pub flows: Vec<String>,
    /// Point every HubSpot connection here with this token (the sandbox).
    pub hubspot_override: Option<(String, String)>,
    /// Point every HTTP connection at `{this}/{connection name}` (the demo API).
    pub http_override: Option<String>,
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A connection could not be built (an unset variable, an unreadable token file).
    #[error("connection `{name}`: {message}")]
    Connection {
        /// The connection.
        name: String,
        /// Why.
        message: String,
    },
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
    /// Search calls made by trigger polls.
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

/// Resolves `${VAR}` in a connection string, naming the variable (never its value) on error.
fn resolve(name: &str, text: &str) -> Result<String, RunError> {
    env::interpolate_env(text).map_err(|e| RunError::Connection {
        name: name.into(),
        message: e.to_string(),
    })
}

fn hubspot_client(
    name: &str,
    conn: &Connection,
    dir: &Path,
    options: &RunOptions,
) -> Result<Client, RunError> {
    let hs = conn.hubspot.as_ref().ok_or_else(|| RunError::Connection {
        name: name.into(),
        message: "not a hubspot connection".into(),
    })?;
    let (base_url, auth) = if let Some((url, token)) = &options.hubspot_override {
        (url.clone(), Auth::Token(SecretString::from(token.clone())))
    } else {
        let auth = if let Some(token) = &hs.token {
            Auth::Token(SecretString::from(resolve(name, token)?))
        } else if let Some(file) = &hs.token_file {
            let path = dir.join(resolve(name, file)?);
            let token = std::fs::read_to_string(&path).map_err(|e| RunError::Connection {
                name: name.into(),
                message: format!("token file {}: {e}", path.display()),
            })?;
            Auth::Token(SecretString::from(token.trim().to_string()))
        } else if let Some(o) = &hs.oauth {
            Auth::OAuth {
                client_id: resolve(name, &o.client_id)?,
                client_secret: SecretString::from(resolve(name, &o.client_secret)?),
                refresh_token: SecretString::from(resolve(name, &o.refresh_token)?),
                token_url: resolve(name, &o.token_url)?,
            }
        } else {
            return Err(RunError::Connection {
                name: name.into(),
                message: "no credentials".into(),
            });
        };
        (resolve(name, &hs.base_url)?, auth)
    };
    let mut config = ClientConfig::new(auth).base_url(base_url.trim_end_matches('/'));
    config.throttle = rivulet_hubspot::Throttle {
        limit: hs.throttle.limit,
        per: hs.throttle.per.get(),
    };
    config.search_per_second = hs.search_per_second;
    config.concurrent_connections = hs.concurrent_connections as usize;
    config.concurrent_batches = hs.concurrent_batches as usize;
    config.timeout = hs.timeout.get();
    Client::new(config).map_err(|e| RunError::Connection {
        name: name.into(),
        message: e.to_string(),
    })
}

/// Everything a run shares: clients (one per connection), the store, the flows.
struct World {
    hubspot: HashMap<String, Client>,
    http: HashMap<String, HttpClient>,
    store: Arc<dyn StateStore>,
}

fn base_dir(file: &Path) -> PathBuf {
    file.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn build_flow(
    checked: &CheckedFlow,
    world: &World,
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
    let dir = base_dir(&checked.file);
    let columns: Vec<String> = mapping.fields().map(str::to_string).collect();
    let mut actions = Vec::new();
    for action in &flow.actions {
        if let Some(hs) = &action.hubspot {
            let client = world
                .hubspot
                .get(&hs.connection)
                .ok_or_else(|| err(format!("no connection `{}`", hs.connection)))?;
            actions.push(ActionRuntime::HubSpot(
                HubSpotWriter::new(client.clone(), hs).map_err(err)?,
            ));
        } else if let Some(file) = &action.file {
            actions.push(ActionRuntime::File(FileWriter::new(
                file,
                &dir,
                columns.clone(),
            )));
        } else if let Some(http) = &action.http {
            let client = world
                .http
                .get(&http.connection)
                .ok_or_else(|| err(format!("no connection `{}`", http.connection)))?;
            actions.push(ActionRuntime::Http(
                HttpWriter::new(http, client.clone(), &flow.name)
                    .map_err(|e| err(e.to_string()))?,
            ));
        }
    }
    Ok(FlowRuntime {
        flow: flow.clone(),
        base_dir: dir,
        mapping,
        actions,
        store: world.store.clone(),
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
    let mut world = World {
        hubspot: HashMap::new(),
        http: HashMap::new(),
        store,
    };
    for checked in &selected {
        let f = &checked.flow;
        let mut names: Vec<&str> = f
            .actions
            .iter()
            .filter_map(|a| a.hubspot.as_ref().map(|h| h.connection.as_str()))
            .collect();
        names.extend(f.trigger.as_ref().map(|t| t.hubspot.connection.as_str()));
        names.extend(
            f.source
                .as_ref()
                .and_then(|s| s.hubspot.as_ref())
                .map(|h| h.connection.as_str()),
        );
        for name in names {
            if !world.hubspot.contains_key(name)
                && let Some(c) = validation.connections.get(name)
            {
                world.hubspot.insert(
                    name.to_string(),
                    hubspot_client(name, &c.connection, &base_dir(&c.file), &options)?,
                );
            }
        }
        let mut http_names: Vec<&str> = f
            .actions
            .iter()
            .filter_map(|a| a.http.as_ref().map(|h| h.connection.as_str()))
            .collect();
        http_names.extend(
            f.source
                .as_ref()
                .and_then(|s| s.http.as_ref())
                .map(|h| h.connection.as_str()),
        );
        for name in http_names {
            if !world.http.contains_key(name)
                && let Some(c) = validation.connections.get(name)
                && let Some(http) = &c.connection.http
            {
                let mut http = http.clone();
                if let Some(prefix) = &options.http_override {
                    http.base_url = format!("{}/{name}", prefix.trim_end_matches('/'));
                }
                let client = HttpClient::new(&http).map_err(|e| RunError::Connection {
                    name: name.into(),
                    message: e.to_string(),
                })?;
                world.http.insert(name.to_string(), client);
            }
        }
    }

    let summary: SharedSummary = Arc::new(Mutex::new(Summary::default()));
    let mut groups: IndexMap<(String, TriggerObject, TriggerEvent), Vec<Arc<FlowRuntime>>> =
        IndexMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for checked in &selected {
        let flow = Arc::new(build_flow(checked, &world, options.dry_run)?);
        note(&summary, flow.name(), |_| {});
        if !options.dry_run {
            flow.recover()?;
        }
        if let Some(t) = &checked.flow.trigger {
            groups
                .entry((t.hubspot.connection.clone(), t.hubspot.object, t.hubspot.on))
                .or_default()
                .push(flow);
        } else {
            let world_http = world.http.clone();
            let world_hs = world.hubspot.clone();
            let (stop, summary, once) = (stop.clone(), summary.clone(), options.once);
            tasks.spawn(
                async move { scheduled(flow, world_hs, world_http, stop, summary, once).await },
            );
        }
    }
    for ((connection, object, event), members) in groups {
        let client =
            world
                .hubspot
                .get(&connection)
                .cloned()
                .ok_or_else(|| RunError::Connection {
                    name: connection.clone(),
                    message: "not built".into(),
                })?;
        let (stop, summary, once) = (stop.clone(), summary.clone(), options.once);
        tasks.spawn(async move {
            poll_group(
                client, connection, object, event, members, stop, summary, once,
            )
            .await
        });
    }
    while tasks.join_next().await.is_some() {}
    let out = summary.lock().unwrap_or_else(|p| p.into_inner()).clone();
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn trigger_identity(connection: &str, t: &HubSpotTrigger) -> String {
    format!(
        "hubspot:{connection}:{}:{}",
        object_type(t.object),
        watched_property(t.object, t.on)
    )
}

/// A flow's trigger cursor, created from `start_from` or reset when the trigger changed.
fn load_cursor(
    flow: &FlowRuntime,
    identity: &str,
    t: &HubSpotTrigger,
) -> Result<TriggerCursor, StateError> {
    if let Some((stored, state)) = flow.store.cursor(flow.name())? {
        if stored == identity
            && let Ok(cursor) = serde_json::from_value::<TriggerCursor>(state)
        {
            return Ok(cursor);
        }
        tracing::warn!(flow = flow.name(), from = %stored, to = %identity, "the trigger changed: its cursor starts afresh from `start_from`");
    }
    let start = match t.start_from.as_str() {
        "now" => now_ms(),
        "beginning" => 0,
        instant => chrono::DateTime::parse_from_rfc3339(instant)
            .map_or_else(|_| now_ms(), |t| t.timestamp_millis()),
    };
    let cursor = TriggerCursor::starting_at(start);
    if !flow.dry_run {
        flow.store.set_cursor(
            flow.name(),
            identity,
            &serde_json::to_value(cursor).unwrap_or(Value::Null),
        )?;
    }
    Ok(cursor)
}

#[allow(clippy::too_many_arguments)]
async fn poll_group(
    client: Client,
    connection: String,
    object: TriggerObject,
    event: TriggerEvent,
    members: Vec<Arc<FlowRuntime>>,
    mut stop: watch::Receiver<bool>,
    summary: SharedSummary,
    once: bool,
) {
    let trigger = |f: &FlowRuntime| {
        f.flow
            .trigger
            .as_ref()
            .map(|t| t.hubspot.clone())
            .expect("grouped by trigger")
    };
    let every = members
        .iter()
        .map(|f| trigger(f).poll_every.get())
        .min()
        .unwrap_or(Duration::from_secs(60));
    let settle = members
        .iter()
        .map(|f| trigger(f).settle.get())
        .max()
        .unwrap_or_default();
    let property = watched_property(object, event);
    let mut properties: Vec<String> = Vec::new();
    for f in &members {
        for p in trigger(f).properties {
            if !properties.contains(&p) {
                properties.push(p);
            }
        }
    }
    loop {
        let span =
            tracing::info_span!("poll", connection = %connection, object = ?object, event = ?event);
        let calls = poll_once(
            &client,
            &connection,
            object,
            property,
            &properties,
            settle,
            &members,
            &summary,
        )
        .instrument(span)
        .await;
        summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .search_calls += calls;
        if once || !pause(every, &mut stop).await {
            return;
        }
    }
}

/// Per-member state during one poll.
struct Member {
    flow: Arc<FlowRuntime>,
    identity: String,
    cursor: TriggerCursor,
    lower: i64,
    run: Option<(i64, Context)>,
    counts: Counts,
    failed: bool,
}

#[allow(clippy::too_many_arguments)]
async fn poll_once(
    client: &Client,
    connection: &str,
    object: TriggerObject,
    property: &'static str,
    properties: &[String],
    settle: Duration,
    flows: &[Arc<FlowRuntime>],
    summary: &SharedSummary,
) -> u64 {
    let upper = now_ms() - settle.as_millis() as i64;
    let mut members = Vec::new();
    for flow in flows {
        let t = flow
            .flow
            .trigger
            .as_ref()
            .map(|t| t.hubspot.clone())
            .expect("trigger");
        let identity = trigger_identity(connection, &t);
        match load_cursor(flow, &identity, &t) {
            Ok(cursor) => members.push(Member {
                lower: cursor.lower(t.overlap.get().as_millis() as i64),
                flow: flow.clone(),
                identity,
                cursor,
                run: None,
                counts: Counts::default(),
                failed: false,
            }),
            Err(e) => note(summary, flow.name(), |s| s.errors.push(e.to_string())),
        }
    }
    let Some(lower) = members.iter().map(|m| m.lower).min() else {
        return 0;
    };
    let mut scan = Scan::new(
        client.clone(),
        object_type(object),
        property,
        properties.to_vec(),
        lower,
        upper,
    );
    let mut scan_failed = None;
    loop {
        let page = match scan.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => {
                scan_failed = Some(e.to_string());
                break;
            }
        };
        let page_max = page
            .iter()
            .filter_map(|o| record_timestamp(o, property))
            .max();
        let mut work = Vec::new();
        for m in members.iter_mut().filter(|m| !m.failed) {
            let mut items = Vec::new();
            let mut timestamps = Vec::new();
            for o in &page {
                let Some(ts) = record_timestamp(o, property) else {
                    continue;
                };
                if ts < m.lower || ts >= upper {
                    continue;
                }
                items.push(Item::Record(Record {
                    key: o.id.clone(),
                    version: ts.to_string(),
                    data: object_json(o),
                    origin: format!("{} {}", object_type(object), o.id),
                }));
                timestamps.push(ts);
            }
            if let Some(max) = page_max {
                m.cursor.ts = m.cursor.ts.max(max);
            }
            if items.is_empty() {
                continue;
            }
            let started = chrono::Utc::now();
            if m.run.is_none() && m.flow.dry_run {
                m.run = Some((0, Context::new(m.flow.name(), "dry-run", started)));
            }
            if m.run.is_none() {
                match m.flow.store.start_run(m.flow.name(), &started.to_rfc3339()) {
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
            let cursor = Some((
                m.identity.clone(),
                serde_json::to_value(m.cursor).unwrap_or(Value::Null),
            ));
            work.push((
                m,
                Page {
                    items,
                    dedupe: true,
                    cursor,
                    timestamps,
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
    for m in &mut members {
        if let Some(err) = &scan_failed {
            tracing::error!(flow = m.flow.name(), error = %err, "poll failed; the cursor stays where it was");
            note(summary, m.flow.name(), |s| s.errors.push(err.clone()));
        }
        if scan_failed.is_none() && !m.failed && !m.flow.dry_run {
            // The whole window is done: the next poll starts at its end (minus the overlap).
            m.cursor.ts = m.cursor.ts.max(upper);
            let state = serde_json::to_value(m.cursor).unwrap_or(Value::Null);
            if let Err(e) = m.flow.store.set_cursor(m.flow.name(), &m.identity, &state) {
                note(summary, m.flow.name(), |s| s.errors.push(e.to_string()));
            }
            let overlap = m
                .flow
                .flow
                .trigger
                .as_ref()
                .map_or(0, |t| t.hubspot.overlap.get().as_millis() as i64);
            let _ = m
                .flow
                .store
                .prune_delivered(m.flow.name(), m.cursor.lower(overlap) - 86_400_000);
        }
        finish(
            m.flow.as_ref(),
            m.run.as_ref().map(|r| r.0),
            m.counts,
            scan_failed
                .as_deref()
                .or(m.failed.then_some("state store failure")),
            summary,
        );
    }
    scan.calls
}

fn finish(
    flow: &FlowRuntime,
    run: Option<i64>,
    counts: Counts,
    error: Option<&str>,
    summary: &SharedSummary,
) {
    let Some(run_id) = run else { return };
    let status = match (error, counts.failed) {
        (Some(_), _) => "error",
        (None, 0) => "succeeded",
        _ => "failed",
    };
    if !flow.dry_run {
        let _ = flow
            .store
            .finish_run(run_id, &chrono::Utc::now().to_rfc3339(), status, error);
    }
    tracing::info!(
        flow = flow.name(),
        run_id,
        status,
        read = counts.read,
        succeeded = counts.succeeded,
        failed = counts.failed,
        skipped = counts.skipped,
        "run finished"
    );
    note(summary, flow.name(), |s| {
        s.runs += 1;
        s.counts += counts;
    });
}

/// Scheduled flows: tick, read the source page by page, repeat.
async fn scheduled(
    flow: Arc<FlowRuntime>,
    hubspot: HashMap<String, Client>,
    http: HashMap<String, HttpClient>,
    mut stop: watch::Receiver<bool>,
    summary: SharedSummary,
    once: bool,
) {
    let timing = match schedule::timing(flow.flow.schedule.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            note(&summary, flow.name(), |s| s.errors.push(e.to_string()));
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
        .ok()
        .and_then(|r| r.into_iter().next());
    let last = last
        .and_then(|r| chrono::DateTime::parse_from_rfc3339(&r.started_at).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let (extra, mut due) = plan_start(&timing, catch_up, last, chrono::Utc::now());
    // `--once` means one tick, whatever was missed.
    if extra > 0 && !once {
        tracing::info!(
            flow = flow.name(),
            missed = extra + 1,
            "catching up on missed schedule ticks"
        );
        for _ in 0..extra {
            run_source(&flow, &hubspot, &http, &summary).await;
        }
    }
    loop {
        if !once {
            let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
            if !pause(wait, &mut stop).await {
                return;
            }
        }
        run_source(&flow, &hubspot, &http, &summary).await;
        if once || *stop.borrow() {
            return;
        }
        due = next_tick(&timing, chrono::Utc::now());
    }
}

/// When a scheduled flow first runs after (re)starting, given its last run: a first start runs
/// at once; otherwise missed ticks are handled by the `catch_up` policy. Returns how many extra
/// runs to make at once (for `all`) and when the regular run is due.
fn plan_start(
    timing: &Timing,
    catch_up: CatchUp,
    last: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> (u64, chrono::DateTime<chrono::Utc>) {
    let Some(last) = last else { return (0, now) };
    match (catch_up, missed_ticks(timing, last, now)) {
        (_, 0) => (0, next_tick(timing, last)),
        (CatchUp::None, _) => (0, next_tick(timing, now)),
        (CatchUp::Latest, _) => (0, now),
        (CatchUp::All, missed) => (missed.min(100) - 1, now),
    }
}

fn next_tick(
    timing: &Timing,
    after: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    match timing {
        Timing::Every(d) => after + chrono::Duration::from_std(d.get()).unwrap_or_default(),
        Timing::Cron(cron) => cron
            .find_next_occurrence(&after, false)
            .unwrap_or(after + chrono::Duration::minutes(15)),
    }
}

fn missed_ticks(
    timing: &Timing,
    last: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> u64 {
    let mut n = 0;
    let mut t = next_tick(timing, last);
    while t <= now && n < 10_000 {
        n += 1;
        t = next_tick(timing, t);
    }
    n
}

enum Reader {
    File(FileReader),
    Http(HttpReader),
    HubSpot(HubSpotReader),
}

async fn run_source(
    flow: &Arc<FlowRuntime>,
    hubspot: &HashMap<String, Client>,
    http: &HashMap<String, HttpClient>,
    summary: &SharedSummary,
) {
    let Some(source) = flow.flow.source.as_ref() else {
        return;
    };
    let identity = format!(
        "source:{}",
        serde_json::to_string(source).unwrap_or_default()
    );
    let checkpoint = match flow.store.cursor(flow.name()) {
        Ok(Some((stored, state))) if stored == identity => Some(state),
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
    let reader = if let Some(f) = &source.file {
        FileReader::new(f, &flow.base_dir, checkpoint)
            .map(Reader::File)
            .map_err(|e| e.to_string())
    } else if let Some(h) = &source.http {
        match http.get(&h.connection) {
            Some(c) => HttpReader::new(h, c.clone(), checkpoint)
                .map(Reader::Http)
                .map_err(|e| e.to_string()),
            None => Err(format!("no connection `{}`", h.connection)),
        }
    } else if let Some(h) = &source.hubspot {
        match hubspot.get(&h.connection) {
            Some(c) => HubSpotReader::new(c.clone(), h, checkpoint.as_ref()).map(Reader::HubSpot),
            None => Err(format!("no connection `{}`", h.connection)),
        }
    } else {
        Err("no source".into())
    };
    let started = chrono::Utc::now();
    let run_id = if flow.dry_run {
        0
    } else {
        match flow.store.start_run(flow.name(), &started.to_rfc3339()) {
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
        let mut reader = reader?;
        loop {
            let (items, checkpoint, dedupe, file_page) = match &mut reader {
                Reader::File(r) => match r.next_page(100).await.map_err(|e| e.to_string())? {
                    Some(p) => (p.items.clone(), p.checkpoint.clone(), false, Some(p)),
                    None => return Ok(()),
                },
                Reader::Http(r) => match r.next_page(100).await.map_err(|e| e.to_string())? {
                    Some(p) => (p.items.clone(), p.checkpoint.clone(), false, Some(p)),
                    None => return Ok(()),
                },
                Reader::HubSpot(r) => match r.next_page().await.map_err(|e| e.to_string())? {
                    Some((items, checkpoint)) => (items, checkpoint, true, None),
                    None => return Ok(()),
                },
            };
            let timestamps = items
                .iter()
                .map(|i| match i {
                    Item::Record(r) => r.version.parse().unwrap_or(0),
                    Item::Bad { .. } => 0,
                })
                .collect();
            let page = Page {
                items,
                dedupe,
                cursor: Some((identity.clone(), checkpoint)),
                timestamps,
            };
            counts += flow
                .process(run_id, &ctx, page)
                .await
                .map_err(|e| e.to_string())?;
            if flow.dry_run {
                continue;
            }
            if let Some(p) = file_page {
                let done = match &mut reader {
                    Reader::File(r) => r.committed(&p).await.map_err(|e| e.to_string()),
                    Reader::Http(r) => r.committed(&p).await.map_err(|e| e.to_string()),
                    Reader::HubSpot(_) => Ok(()),
                };
                done?;
            }
        }
    }
    .instrument(span)
    .await;
    let error = result.err();
    if let Some(e) = &error {
        tracing::error!(flow = flow.name(), run_id, error = %e, "run stopped");
        note(summary, flow.name(), |s| s.errors.push(e.clone()));
    }
    // `finish` records nothing for a dry run but still counts it in the summary.
    finish(flow, Some(run_id), counts, error.as_deref(), summary);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(h: u32, m: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    #[test]
    fn catch_up_policies_after_downtime() {
        let every = Timing::Every(crate::model::Duration::from_secs(15 * 60));
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
        let cron = Timing::Cron(Box::new(crate::schedule::parse_cron("0 * * * *").unwrap()));
        assert_eq!(next_tick(&cron, at(10, 1)), at(11, 0));
        assert_eq!(missed_ticks(&cron, at(10, 1), at(13, 30)), 3);
        assert_eq!(
            plan_start(&cron, CatchUp::None, Some(at(10, 1)), at(13, 30)),
            (0, at(14, 0))
        );
    }
}
