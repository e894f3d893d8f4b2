//! What happens while flows run, as typed events. Each event writes its log line and updates
//! its metrics in one place ([`Event::emit`]), so what the logs say and what `/metrics` and
//! `/readyz` show never disagree. Log fields carry values (`status="waiting"`), not Rust
//! debug forms.

use crate::metrics::{
    ActionLabels, FlowLabel, FlowOutcome, GroupLabel, Metrics, OutcomeLabel, RunLabels,
};
use crate::state::{Counts, RunStatus};

/// Something that happened, logged and counted.
pub(crate) trait Event {
    /// Writes the log line and updates the metrics.
    fn emit(&self, metrics: &Metrics);
}

/// A page's outcomes were recorded.
pub(crate) struct PageRecorded<'a> {
    pub flow: &'a str,
    pub counts: Counts,
}

impl Event for PageRecorded<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::debug!(
            flow = self.flow,
            read = self.counts.read,
            delivered = self.counts.succeeded,
            failed = self.counts.failed,
            read_again = self.counts.skipped,
            unchanged = self.counts.unchanged,
            filtered = self.counts.filtered,
            "page recorded"
        );
        for (outcome, n) in [
            ("read", self.counts.read),
            ("delivered", self.counts.succeeded),
            ("failed", self.counts.failed),
            ("read_again", self.counts.skipped),
            ("unchanged", self.counts.unchanged),
            ("filtered", self.counts.filtered),
        ] {
            if n > 0 {
                metrics
                    .records
                    .get_or_create(&FlowOutcome {
                        flow: self.flow.to_string(),
                        outcome: outcome.into(),
                    })
                    .inc_by(n);
            }
        }
    }
}

/// An action wrote a page's records.
pub(crate) struct ActionWrote<'a> {
    pub flow: &'a str,
    pub action: usize,
    pub kind: &'static str,
    pub delivered: u64,
    pub failed: u64,
}

impl Event for ActionWrote<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::debug!(
            flow = self.flow,
            action = self.action,
            kind = self.kind,
            delivered = self.delivered,
            failed = self.failed,
            "action wrote"
        );
        for (outcome, n) in [("delivered", self.delivered), ("failed", self.failed)] {
            if n > 0 {
                metrics
                    .action_records
                    .get_or_create(&ActionLabels {
                        flow: self.flow.to_string(),
                        action: self.action.to_string(),
                        kind: self.kind.to_string(),
                        outcome: outcome.into(),
                    })
                    .inc_by(n);
            }
        }
    }
}

/// A run ended.
pub(crate) struct RunFinished<'a> {
    pub flow: &'a str,
    pub run_id: i64,
    pub status: RunStatus,
    pub counts: Counts,
    pub seconds: f64,
    pub finished_at: String,
    pub error: Option<&'a str>,
}

impl Event for RunFinished<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::info!(
            flow = self.flow,
            run_id = self.run_id,
            status = self.status.as_str(),
            read = self.counts.read,
            succeeded = self.counts.succeeded,
            unchanged = self.counts.unchanged,
            filtered = self.counts.filtered,
            failed = self.counts.failed,
            read_again = self.counts.skipped,
            api_calls = self.counts.api_calls,
            seconds = self.seconds,
            "run finished"
        );
        metrics
            .run_seconds
            .get_or_create(&RunLabels {
                flow: self.flow.to_string(),
                status: self.status.as_str().into(),
            })
            .observe(self.seconds);
        metrics.last_run(
            self.flow,
            self.run_id,
            self.status.as_str(),
            self.finished_at.clone(),
        );
        match self.status {
            RunStatus::Error => {
                metrics.flow_status(self.flow, "error", self.error.map(str::to_string))
            }
            RunStatus::Waiting => {}
            _ => metrics.flow_status(self.flow, "idle", None),
        }
    }
}

/// A flow waits for a destination (or its source) that is down.
pub(crate) struct Waiting<'a> {
    pub flow: &'a str,
    pub reason: &'a str,
    pub attempt: u32,
    pub next_try_s: f64,
}

impl Event for Waiting<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            flow = self.flow,
            attempt = self.attempt,
            next_try_in_s = self.next_try_s,
            "{}; nothing past the last recorded page moves, next try in {:.1} s",
            self.reason,
            self.next_try_s
        );
        metrics
            .waiting
            .get_or_create(&FlowLabel {
                flow: self.flow.to_string(),
            })
            .set(1);
        metrics.flow_status(self.flow, "waiting", Some(self.reason.to_string()));
    }
}

/// A waiting flow got through.
pub(crate) struct Recovered<'a> {
    pub flow: &'a str,
    pub was: &'a str,
}

impl Event for Recovered<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::info!(
            flow = self.flow,
            was = self.was,
            "going on: the destination answers again"
        );
        let label = FlowLabel {
            flow: self.flow.to_string(),
        };
        metrics.waiting.get_or_create(&label).set(0);
        metrics.trigger_stalled.get_or_create(&label).set(0);
        metrics.flow_status(self.flow, "idle", None);
    }
}

/// A trigger's cursor has not moved for several polls because its reads fail.
pub(crate) struct TriggerStalled<'a> {
    pub flow: &'a str,
    pub polls: u32,
    pub reason: &'a str,
}

impl Event for TriggerStalled<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            flow = self.flow,
            polls = self.polls,
            "the trigger is stalled: its cursor has not moved for {} polls ({})",
            self.polls,
            self.reason
        );
        metrics
            .trigger_stalled
            .get_or_create(&FlowLabel {
                flow: self.flow.to_string(),
            })
            .set(1);
        metrics.flow_status(
            self.flow,
            "stalled",
            Some(format!(
                "the cursor has not moved for {} polls: {}",
                self.polls, self.reason
            )),
        );
    }
}

/// A trigger group polled.
pub(crate) struct Polled<'a> {
    pub group: &'a str,
    pub calls: u64,
    /// Each member's lag behind now, in seconds.
    pub lags: Vec<(&'a str, f64)>,
}

impl Event for Polled<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::debug!(group = self.group, calls = self.calls, "polled");
        if self.calls > 0 {
            metrics
                .search_requests
                .get_or_create(&GroupLabel {
                    group: self.group.to_string(),
                })
                .inc_by(self.calls);
        }
        for (flow, lag) in &self.lags {
            metrics
                .trigger_lag
                .get_or_create(&FlowLabel {
                    flow: flow.to_string(),
                })
                .set(*lag);
        }
    }
}

/// A flow's task panicked.
pub(crate) struct TaskPanicked<'a> {
    pub task: &'a str,
    pub flows: &'a [String],
    pub message: &'a str,
}

impl Event for TaskPanicked<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::error!(task = self.task, flows = %self.flows.join(", "), "{} panicked: {}", self.task, self.message);
        for flow in self.flows {
            metrics
                .task_panics
                .get_or_create(&FlowLabel { flow: flow.clone() })
                .inc();
            metrics.flow_status(flow, "error", Some(format!("panicked: {}", self.message)));
        }
    }
}

/// A change to the flows was applied (`--watch`).
pub(crate) struct Reloaded<'a> {
    pub started: &'a [String],
    pub kept: &'a [String],
    pub stopping: &'a [String],
}

impl Event for Reloaded<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::info!(
            started = %self.started.join(", "),
            kept = %self.kept.join(", "),
            stopping = %self.stopping.join(", "),
            "reloaded the flows: {} started, {} kept, {} stopping after the page in hand",
            self.started.len(),
            self.kept.len(),
            self.stopping.len()
        );
        metrics
            .reloads
            .get_or_create(&OutcomeLabel {
                outcome: "applied".into(),
            })
            .inc();
    }
}

/// A change to the flows was refused; the running flows go on as they were.
pub struct ReloadRefused<'a> {
    /// Why, as one line (or the validation's diagnostics).
    pub error: &'a str,
}

impl ReloadRefused<'_> {
    /// Logs the refusal and counts it.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::error!(
            "the changed flows were refused; the running flows go on unchanged: {}",
            self.error
        );
        metrics
            .reloads
            .get_or_create(&OutcomeLabel {
                outcome: "refused".into(),
            })
            .inc();
    }
}

/// This runner took over work whose runner stopped without giving it up (crashed, paused
/// past its lease, cut off).
pub(crate) struct FailedOver<'a> {
    pub task: &'a str,
    pub from: &'a str,
}

impl Event for FailedOver<'_> {
    fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            task = self.task,
            from = self.from,
            "took over {} from runner {}, whose lease lapsed",
            self.task,
            self.from
        );
        metrics.failovers.inc();
    }
}
