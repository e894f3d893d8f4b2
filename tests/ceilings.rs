//! At HubSpot's ceilings, end to end: the runtime (in this process, on the sandbox's clock)
//! against the sandbox. Time moves by hand (`Clock::advance`), never by sleeping; each test
//! takes seconds.
//!
//! - the late pass catches what search showed late, and every change is delivered once;
//! - an idle poll costs one search per group, late pass included;
//! - a backfill lists, resumes after a restart where it stopped, and hands over to search
//!   without missing what changed while it listed;
//! - writes at a server's exact limit get no 429.

use chrono::{DateTime, Utc};
use rivulet_runtime::runner::{self, RunOptions, Summary};
use rivulet_runtime::state::{SqliteStore, StateStore};
use rivulet_sandbox::{RateLimit, Sandbox, SandboxConfig, SeedSpec};
use rivulet_spec::Severity;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The runner's wall time is the sandbox's, so moving one moves both.
#[derive(Debug)]
struct SandboxTime(rivulet_sandbox::Clock);

impl rivulet_http::clock::Clock for SandboxTime {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0.now_ms()).expect("a sandbox instant")
    }
}

/// A flows folder whose connections point at sandboxes.
struct Flows {
    dir: tempfile::TempDir,
}

impl Flows {
    /// `connections`: (name, sandbox URL, extra settings).
    fn new(connections: &[(&str, &str, &str)]) -> Flows {
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        std::fs::create_dir_all(&flows).unwrap();
        std::fs::write(flows.join("token.txt"), "test-token").unwrap();
        let mut text = String::from("connections:\n");
        for (name, url, extra) in connections {
            text.push_str(&format!(
                "  {name}:\n    hubspot:\n      token_file: token.txt\n      base_url: {url}\n{extra}"
            ));
        }
        std::fs::write(flows.join("connections.yaml"), text).unwrap();
        Flows { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("flows").join(rel)
    }

    fn flow(&self, name: &str, text: &str) {
        std::fs::write(self.path(&format!("{name}.yaml")), text).unwrap();
    }

    /// The JSON lines a flow's file action wrote.
    fn lines(&self, rel: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(rel))
            .map(|t| {
                t.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn store(&self) -> Arc<dyn StateStore> {
        Arc::new(
            SqliteStore::open(&self.dir.path().join("state.db"))
                .await
                .unwrap(),
        )
    }

    /// `rivulet run --once` in this process, on `clock`, giving up at once on a destination
    /// that is down.
    async fn run_once(&self, clock: &rivulet_sandbox::Clock) -> Summary {
        let validation = rivulet_spec::validate::validate_paths(
            &[self.dir.path().join("flows")],
            &rivulet_spec::validate::Options::default(),
        )
        .unwrap();
        assert_eq!(
            validation.count(Severity::Error),
            0,
            "{:?}",
            validation.diagnostics
        );
        let options = RunOptions {
            once: true,
            once_wait: Duration::ZERO,
            clock: Arc::new(SandboxTime(clock.clone())),
            ..RunOptions::default()
        };
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        runner::run(&validation, self.store().await, options, stopped)
            .await
            .unwrap()
    }
}

fn trigger(name: &str, object: &str, on: &str, start: &str, extra: &str) -> String {
    format!(
        "name: {name}\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: {on}\n    object: {object}\n    poll_every: 10s\n    start_from: {start}\n    settle: 1s\n{extra}    properties: [email, firstname]\nmapping:\n  id: \"{{{{record.id}}}}\"\n  updated: \"{{{{record.updatedAt}}}}\"\nactions:\n  - file: {{ path: out/{name}.jsonl }}\n"
    )
}

/// (id, modified) of each line, from the fields that hold them.
fn versions_in(lines: &[Value], id: &str, updated: &str) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l[id].as_str().unwrap().to_string(),
                l[updated].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn versions(lines: &[Value]) -> Vec<(String, String)> {
    versions_in(lines, "id", "updated")
}

fn assert_once(all: &[(String, String)]) {
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a version was delivered twice");
}

fn searches(sb: &Sandbox) -> u64 {
    sb.store().endpoint_count("search")
}

/// Full list pages requested (the runner's start-up probe lists one record).
fn list_pages(sb: &Sandbox) -> usize {
    sb.store()
        .requests()
        .iter()
        .filter(|r| r.endpoint == "list" && r.query.as_deref().unwrap_or("").contains("limit=100"))
        .count()
}

async fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::start(SandboxConfig {
        request_log_capacity: 100_000,
        ..config
    })
    .await
    .unwrap()
}

fn past(sb: &Sandbox, ms: i64) -> i64 {
    sb.clock().now_ms() - ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_late_pass_catches_what_search_showed_late_and_delivers_each_change_once() {
    let sb = sandbox(SandboxConfig::default()).await;
    let clock = sb.clock();
    let ids = sb
        .store()
        .seed(
            SeedSpec::generated("contacts", 60)
                .at(past(&sb, 86_400_000))
                .step(1000),
        )
        .unwrap();
    let flows = Flows::new(&[("hubspot", &sb.url(), "      search_per_second: 50\n")]);
    flows.flow(
        "late",
        &trigger(
            "late",
            "contact",
            "new_or_updated_record",
            "now",
            "    late_after: 60s\n",
        ),
    );
    flows.run_once(&clock).await;

    // 50 changes search shows only 30 s later, 10 it shows at once.
    let props = serde_json::Map::new();
    sb.store()
        .update_faults(|f| f.search_lag = Duration::from_secs(30));
    for id in &ids[..50] {
        sb.store().touch("contacts", id, &props, None).unwrap();
    }
    sb.store().update_faults(|f| f.search_lag = Duration::ZERO);
    for id in &ids[50..] {
        sb.store().touch("contacts", id, &props, None).unwrap();
    }

    // The leading edge: the 10 visible changes, one search.
    clock.advance(Duration::from_secs(5)).unwrap();
    let before = searches(&sb);
    flows.run_once(&clock).await;
    assert_eq!(searches(&sb) - before, 1);
    assert_eq!(flows.lines("out/late.jsonl").len(), 10);

    // The 50 are searchable now, but their window was read already; the late pass is not due.
    clock.advance(Duration::from_secs(40)).unwrap();
    let before = searches(&sb);
    flows.run_once(&clock).await;
    assert_eq!(searches(&sb) - before, 1);
    assert_eq!(flows.lines("out/late.jsonl").len(), 10);

    // A minute after their window was read, the late pass reads it again: the 50 come, the 10
    // it reads a second time are dropped — in the same one search as the leading window.
    clock.advance(Duration::from_secs(30)).unwrap();
    let before = searches(&sb);
    let summary = flows.run_once(&clock).await;
    assert_eq!(
        searches(&sb) - before,
        1,
        "leading and late windows in one search"
    );
    let lines = flows.lines("out/late.jsonl");
    assert_eq!(lines.len(), 60);
    assert_once(&versions(&lines));
    assert_eq!(summary.flows["late"].counts.skipped, 10);

    // And nothing comes again later.
    clock.advance(Duration::from_secs(300)).unwrap();
    flows.run_once(&clock).await;
    let lines = flows.lines("out/late.jsonl");
    assert_eq!(lines.len(), 60);
    let changed: HashSet<String> = versions(&lines).into_iter().map(|(id, _)| id).collect();
    assert_eq!(changed, ids.iter().cloned().collect());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_poll_costs_one_search_per_group() {
    let sb = sandbox(SandboxConfig::default()).await;
    let clock = sb.clock();
    let flows = Flows::new(&[("hubspot", &sb.url(), "      search_per_second: 50\n")]);
    for i in 0..10 {
        let name = format!("contacts-{i}");
        flows.flow(&name, &trigger(&name, "contact", "new_record", "now", ""));
    }
    for i in 0..3 {
        let name = format!("companies-{i}");
        flows.flow(
            &name,
            &trigger(
                &name,
                "company",
                "new_record",
                "now",
                "    late_after: 30s\n",
            ),
        );
    }
    flows.run_once(&clock).await;
    for step in [10, 10, 40, 300] {
        // Past 30 s (companies) and 5 min (contacts) each poll has a late window too.
        clock.advance(Duration::from_secs(step)).unwrap();
        let before = searches(&sb);
        let summary = flows.run_once(&clock).await;
        assert_eq!(searches(&sb) - before, 2, "two groups, one search each");
        assert_eq!(summary.search_calls, 2);
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_lists_resumes_after_a_restart_and_hands_over_to_search() {
    let source = sandbox(SandboxConfig::default()).await;
    // The destination answers a few requests, then is out of its daily budget: the first run
    // stops in the middle of the backfill, as a crash would leave it.
    let dest = sandbox(SandboxConfig {
        daily_limit: Some(4),
        ..SandboxConfig::default()
    })
    .await;
    let clock = source.clock();
    let ids = source
        .store()
        .seed(
            SeedSpec::generated("contacts", 1000)
                .at(past(&source, 3_600_000))
                .step(1000),
        )
        .unwrap();
    let flows = Flows::new(&[
        ("hubspot", &source.url(), "      search_per_second: 50\n"),
        ("dest", &dest.url(), ""),
    ]);
    flows.flow(
        "copy",
        "name: copy\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_or_updated_record\n    object: contact\n    poll_every: 10s\n    start_from: beginning\n    settle: 1s\n    properties: [email, firstname]\nmapping:\n  email: \"{{record.properties.email}}\"\n  firstname: \"{{record.id}}\"\n  lastname: \"{{record.updatedAt}}\"\nactions:\n  - hubspot: { connection: dest, operation: upsert, object: contact, match_on: email }\n  - file: { path: out/copy.jsonl }\n",
    );

    let summary = flows.run_once(&clock).await;
    assert!(summary.gave_up_waiting(), "{summary:?}");
    let first = flows.lines("out/copy.jsonl").len();
    assert!(
        first > 0 && first < 1000 && first % 100 == 0,
        "{first} delivered: {summary:?} {:?}",
        dest.store().stats()
    );
    assert_eq!(searches(&source), 0, "a backfill lists, it does not search");
    let listed = list_pages(&source);

    // Changed while the backfill is under way: one already listed, one not yet.
    clock.advance(Duration::from_secs(2)).unwrap();
    let props = serde_json::Map::new();
    for id in [&ids[0], &ids[999]] {
        source.store().touch("contacts", id, &props, None).unwrap();
    }

    // Back up: the backfill resumes where it stopped, not from the start.
    dest.store().update_faults(|f| f.daily_limit = None);
    let summary = flows.run_once(&clock).await;
    assert!(
        !summary.has_failures() && !summary.gave_up_waiting(),
        "{summary:?}"
    );
    let resumed = list_pages(&source) - listed;
    assert_eq!(resumed, 10 - first / 100, "list pages after the restart");
    // The record changed before it was listed is left to search: 999 so far.
    assert_eq!(flows.lines("out/copy.jsonl").len(), 999);
    assert_eq!(searches(&source), 0);

    // Search takes over from where the backfill started: both changes, once each.
    clock.advance(Duration::from_secs(5)).unwrap();
    let before = searches(&source);
    flows.run_once(&clock).await;
    assert_eq!(searches(&source) - before, 1);
    let lines = flows.lines("out/copy.jsonl");
    assert_eq!(lines.len(), 1001);
    let copied = versions_in(&lines, "firstname", "lastname");
    assert_once(&copied);
    let delivered: HashSet<&String> = copied.iter().map(|(id, _)| id).collect();
    assert_eq!(delivered.len(), 1000);
    let first_changed = copied.iter().filter(|(id, _)| id == &ids[0]).count();
    assert_eq!(first_changed, 2, "the listed record and its change");
    assert_eq!(dest.store().count("contacts").unwrap(), 1000);
    source.shutdown().await;
    dest.shutdown().await;
}

fn contacts_file(path: &Path, prefix: &str, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "{{\"email\": \"{prefix}-{i}@limit.example\", \"name\": \"N{i}\"}}\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_flows_writing_at_the_exact_limit_get_no_429() {
    let sb = sandbox(SandboxConfig {
        rate_limit: Some(RateLimit::new(10, Duration::from_secs(1))),
        ..SandboxConfig::default()
    })
    .await;
    let flows = Flows::new(&[(
        "hubspot",
        &sb.url(),
        "      throttle: { limit: 10, per: 1s }\n",
    )]);
    for name in ["a", "b"] {
        contacts_file(&flows.path(&format!("{name}.jsonl")), name, 1500);
        flows.flow(
            name,
            &format!(
                "name: {name}\nschedule:\n  every: 1h\nsource:\n  file: {{ path: {name}.jsonl }}\nmapping:\n  email: \"{{{{record.email}}}}\"\n  firstname: \"{{{{record.name}}}}\"\nactions:\n  - hubspot: {{ connection: hubspot, operation: upsert, object: contact, match_on: email }}\n"
            ),
        );
    }
    let summary = flows.run_once(&sb.clock()).await;
    assert!(!summary.has_failures(), "{summary:?}");
    for name in ["a", "b"] {
        assert_eq!(summary.flows[name].counts.succeeded, 1500);
    }
    assert_eq!(sb.store().stats().rate_limited, 0);
    assert_eq!(sb.store().endpoint_count("batch_upsert"), 30);
    assert_eq!(sb.store().count("contacts").unwrap(), 3000);
    sb.shutdown().await;
}
