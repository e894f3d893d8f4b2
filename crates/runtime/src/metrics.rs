//! What a runner counts and how it is doing: Prometheus metrics (`/metrics`) and the health
//! behind `/healthz` and `/readyz`. The runner never updates these directly: each thing that
//! happens is a typed event in [`crate::events`], which writes the log line and the metric
//! together, so the two cannot disagree.
//!
//! Names follow Prometheus conventions: `rivulet_` prefix, base units in the name
//! (`_seconds`), counters ending in `_total`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Labels of a flow's record counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FlowOutcome {
    pub flow: String,
    pub outcome: String,
}

/// Labels of an action's record counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabels {
    pub flow: String,
    pub action: String,
    pub kind: String,
    pub outcome: String,
}

/// Labels of a run's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RunLabels {
    pub flow: String,
    pub status: String,
}

/// A flow.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FlowLabel {
    pub flow: String,
}

/// How something ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub outcome: String,
}

/// A trigger group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabel {
    pub group: String,
}

type Stats = Box<dyn Fn() -> rivulet_http::Stats + Send + Sync>;

/// The connections whose HTTP policies are read at each scrape.
#[derive(Default)]
struct Connections(Mutex<Vec<(String, Stats)>>);

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connections")
    }
}

impl Connections {
    fn snapshot(&self) -> Vec<(String, rivulet_http::Stats)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, stats)| (name.clone(), stats()))
            .collect()
    }
}

#[derive(Debug)]
struct ConnectionCollector(Arc<Connections>);

impl Collector for ConnectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot();
        type Pick = fn(&rivulet_http::Stats) -> u64;
        let counters: [(&str, &str, Pick); 5] = [
            (
                "rivulet_api_requests",
                "HTTP requests sent to the connection's API (retries included).",
                |s| s.requests,
            ),
            (
                "rivulet_api_retries",
                "Requests sent again after a 429, 5xx, timeout or connection error.",
                |s| s.retries,
            ),
            ("rivulet_api_rate_limited", "429 answers received.", |s| {
                s.rate_limited
            }),
            ("rivulet_api_server_errors", "5xx answers received.", |s| {
                s.server_errors
            }),
            (
                "rivulet_api_timeouts",
                "Requests that got no answer in time.",
                |s| s.timeouts,
            ),
        ];
        for (name, help, pick) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (connection, stats) in &snapshot {
                let labels = [("connection", connection.as_str())];
                ConstCounter::new(pick(stats)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "rivulet_api_throttle_wait_seconds",
            "Time requests waited for the connection's throttle.",
            None,
            ConstCounter::new(0.0f64).metric_type(),
        )?;
        for (connection, stats) in &snapshot {
            let labels = [("connection", connection.as_str())];
            ConstCounter::new(stats.throttle_wait_ms as f64 / 1000.0)
                .encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "rivulet_api_answered",
            "1 once the connection's API has answered (any status), else 0.",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (connection, stats) in &snapshot {
            let labels = [("connection", connection.as_str())];
            ConstGauge::new(i64::from(stats.answers > 0)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A flow's health, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHealth {
    /// `idle`, `running`, `waiting` (a destination is down), `stalled` (its trigger's cursor has
    /// not moved for several polls), `error` (its last run stopped on an error).
    pub status: &'static str,
    /// Why, when it is not idle or running.
    pub detail: Option<String>,
    /// The last run: id, status, when it finished.
    pub last_run: Option<(i64, String, String)>,
}

#[derive(Debug, Default)]
struct Health {
    loaded: bool,
    flows: BTreeMap<String, FlowHealth>,
}

/// A runner's metrics and health, shared by its tasks and its HTTP endpoints.
pub struct Metrics {
    registry: Registry,
    pub(crate) records: Family<FlowOutcome, Counter>,
    pub(crate) action_records: Family<ActionLabels, Counter>,
    pub(crate) run_seconds: Family<RunLabels, Histogram, fn() -> Histogram>,
    pub(crate) trigger_lag: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    pub(crate) trigger_stalled: Family<FlowLabel, Gauge>,
    pub(crate) waiting: Family<FlowLabel, Gauge>,
    pub(crate) search_requests: Family<GroupLabel, Counter>,
    pub(crate) task_panics: Family<FlowLabel, Counter>,
    pub(crate) reloads: Family<OutcomeLabel, Counter>,
    pub(crate) runners_live: Gauge,
    pub(crate) leases_held: Gauge,
    pub(crate) failovers: Counter,
    connections: Arc<Connections>,
    health: Mutex<Health>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let records = Family::<FlowOutcome, Counter>::default();
        registry.register(
            "rivulet_records",
            "Records per flow by outcome: read, delivered (every action took it), failed (kept for replay), read_again (already delivered, dropped).",
            records.clone(),
        );
        let action_records = Family::<ActionLabels, Counter>::default();
        registry.register(
            "rivulet_action_records",
            "Records per flow and action by outcome: delivered, failed.",
            action_records.clone(),
        );
        let run_seconds: Family<RunLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(run_histogram);
        registry.register(
            "rivulet_run_duration_seconds",
            "How long runs took, by flow and how they ended.",
            run_seconds.clone(),
        );
        let trigger_lag = Family::<FlowLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "rivulet_trigger_lag_seconds",
            "How far a trigger's cursor is behind now.",
            trigger_lag.clone(),
        );
        let trigger_stalled = Family::<FlowLabel, Gauge>::default();
        registry.register(
            "rivulet_trigger_stalled",
            "1 while a trigger's cursor has not moved for several polls because its reads fail.",
            trigger_stalled.clone(),
        );
        let waiting = Family::<FlowLabel, Gauge>::default();
        registry.register(
            "rivulet_flow_waiting",
            "1 while a flow waits for a destination (or its source) that is down.",
            waiting.clone(),
        );
        let search_requests = Family::<GroupLabel, Counter>::default();
        registry.register(
            "rivulet_trigger_search_requests",
            "Search requests made by trigger polls, per trigger group.",
            search_requests.clone(),
        );
        let task_panics = Family::<FlowLabel, Counter>::default();
        registry.register(
            "rivulet_task_panics",
            "Panics of a flow's task (each restarted after a backoff).",
            task_panics.clone(),
        );
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "rivulet_reloads",
            "Changes to the flows seen under --watch, by outcome: applied, refused (invalid or not buildable; the running flows kept).",
            reloads.clone(),
        );
        let runners_live = Gauge::default();
        registry.register(
            "rivulet_runners_live",
            "Runners sharing this state whose heartbeat has not lapsed (shared state only).",
            runners_live.clone(),
        );
        let leases_held = Gauge::default();
        registry.register(
            "rivulet_leases_held",
            "Leases on work (trigger groups, scheduled flows) this runner holds (shared state only).",
            leases_held.clone(),
        );
        let failovers = Counter::default();
        registry.register(
            "rivulet_lease_failovers",
            "Work this runner took over from a runner that stopped without giving it up.",
            failovers.clone(),
        );
        let connections = Arc::new(Connections::default());
        registry.register_collector(Box::new(ConnectionCollector(Arc::clone(&connections))));
        Metrics {
            registry,
            records,
            action_records,
            run_seconds,
            trigger_lag,
            trigger_stalled,
            waiting,
            search_requests,
            task_panics,
            reloads,
            runners_live,
            leases_held,
            failovers,
            connections,
            health: Mutex::new(Health::default()),
        }
    }

    /// Reads `stats` (a connection's HTTP policy counters) at each scrape.
    pub fn watch_connection(
        &self,
        name: &str,
        stats: impl Fn() -> rivulet_http::Stats + Send + Sync + 'static,
    ) {
        let mut all = self.connections.0.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(n, _)| n != name);
        all.push((name.to_string(), Box::new(stats)));
    }

    /// How the shared state is split: live runners, and the leases on work this one holds.
    pub(crate) fn sharing(&self, runners: usize, held: usize) {
        self.runners_live
            .set(i64::try_from(runners).unwrap_or(i64::MAX));
        self.leases_held
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    /// Drops the connections not in `names` (they went with a reload).
    pub(crate) fn retain_connections(&self, names: &[&str]) {
        let mut all = self.connections.0.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(n, _)| names.contains(&n.as_str()));
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The flows are loaded (the runner is about to run them); after a reload, those not
    /// among them are gone.
    pub fn loaded(&self, flows: impl IntoIterator<Item = String>) {
        let mut h = self.health();
        h.loaded = true;
        let flows: Vec<String> = flows.into_iter().collect();
        h.flows.retain(|name, _| flows.contains(name));
        for flow in flows {
            h.flows.entry(flow).or_insert(FlowHealth {
                status: "idle",
                detail: None,
                last_run: None,
            });
        }
    }

    /// Records how `flow` is doing.
    pub(crate) fn flow_status(&self, flow: &str, status: &'static str, detail: Option<String>) {
        let mut h = self.health();
        let entry = h.flows.entry(flow.to_string()).or_insert(FlowHealth {
            status,
            detail: None,
            last_run: None,
        });
        // A stalled or waiting flow stays so until it gets through, whatever else it does.
        if matches!(entry.status, "stalled" | "waiting") && status == "running" {
            return;
        }
        // A stalled trigger is also waiting; stalled says more.
        if entry.status == "stalled" && status == "waiting" {
            return;
        }
        entry.status = status;
        entry.detail = detail;
    }

    /// Progress for a terminal: flows that have finished a run, flows loaded.
    pub fn flows_done(&self) -> (usize, usize) {
        let h = self.health();
        let done = h.flows.values().filter(|f| f.last_run.is_some()).count();
        (done, h.flows.len())
    }

    /// Records `flow`'s last run.
    pub(crate) fn last_run(&self, flow: &str, id: i64, status: &str, finished: String) {
        if let Some(entry) = self.health().flows.get_mut(flow) {
            entry.last_run = Some((id, status.to_string(), finished));
        }
    }

    /// `/readyz`: ready once the flows are loaded and every connection has answered once, and
    /// while no trigger is stalled; the status of each flow and connection.
    pub fn readiness(&self) -> (bool, Value) {
        let connections = self.connections.snapshot();
        let h = self.health();
        let answered = connections.iter().all(|(_, s)| s.answers > 0);
        let stalled = h.flows.values().any(|f| f.status == "stalled");
        let ready = h.loaded && answered && !stalled;
        let flows: serde_json::Map<String, Value> = h
            .flows
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    json!({
                        "status": f.status,
                        "detail": f.detail.as_deref().map(rivulet_http::secrets::scrub),
                        "last_run": f.last_run.as_ref().map(|(id, status, at)| json!({"id": id, "status": status, "finished_at": at})),
                    }),
                )
            })
            .collect();
        let conns: serde_json::Map<String, Value> = connections
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    json!({"answered": s.answers > 0, "requests": s.requests, "rate_limited": s.rate_limited}),
                )
            })
            .collect();
        (
            ready,
            json!({"ready": ready, "loaded": h.loaded, "flows": flows, "connections": conns}),
        )
    }
}
