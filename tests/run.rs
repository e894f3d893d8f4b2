//! `rivulet run` end to end: the binary against the HubSpot sandbox (started in the test
//! process so it outlives restarts and kills of the runner).

mod common;

use common::{copy_dir, poll_until, rivulet, root};
use rivulet_runtime::state::{FailureStatus, RunStatus, SqliteStore, StateStore};
use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A flows folder wired to a sandbox.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(sandbox_url: &str, flows: &[(&str, String)]) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let flows_dir = dir.path().join("flows");
        std::fs::create_dir_all(&flows_dir).unwrap();
        std::fs::write(
            flows_dir.join("connections.yaml"),
            format!(
                "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {sandbox_url}\n      search_per_second: 50\n      throttle: {{ limit: 1000, per: 10s }}\n      timeout: 5s\n"
            ),
        )
        .unwrap();
        for (name, text) in flows {
            std::fs::write(flows_dir.join(format!("{name}.yaml")), text).unwrap();
        }
        Workspace { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.arg("run")
            .arg(self.path("flows"))
            .arg("--state")
            .arg(self.path("state.db"))
            // Tests run side by side: any free port for the metrics endpoint.
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("HUBSPOT_TOKEN", "test-token")
            .env("RIVULET_LOG", "warn")
            .env("NO_COLOR", "1");
        cmd
    }

    fn run_once(&self) -> Output {
        let out = self.command(&["--once"]).output().unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The JSON lines of an output file (relative to the flows folder).
    fn lines(&self, rel: &str) -> Vec<Value> {
        match std::fs::read_to_string(self.path("flows").join(rel)) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a whole JSON line"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.path("state.db")).await.unwrap()
    }
}

fn trigger_flow(name: &str, object: &str, on: &str, out: &str, extra: &str) -> String {
    format!(
        "name: {name}\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: {on}\n    object: {object}\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [email, name]\nmapping:\n  id: \"{{{{record.id}}}}\"\n  updated: \"{{{{record.updatedAt}}}}\"\n{extra}actions:\n  - file: {{ path: {out} }}\n"
    )
}

fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_unique(lines: &[Value]) {
    let all = ids(lines);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "duplicates delivered");
}

fn past(minutes: i64) -> i64 {
    chrono::Utc::now().timestamp_millis() - minutes * 60_000
}

/// A second ago on the system's clock: past the flows' `settle: 1s`, and after every window a
/// poll has read so far (polls read up to their start minus `settle`).
fn settled() -> i64 {
    chrono::Utc::now().timestamp_millis() - 1_000
}

async fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.unwrap()
}

/// How far behind the system clock the sandbox's clock runs in tests that write records
/// between runs: comfortably more than the flows' `settle: 1s` (and well within their default
/// 5-minute `overlap`), so every record the sandbox stamps "now" is already settled for the
/// runner, which reads the system clock. No test waits for settle to pass.
const BEHIND_MS: i64 = -10_000;

/// A sandbox whose clock runs [`BEHIND_MS`] behind the system's.
fn behind(config: SandboxConfig) -> SandboxConfig {
    SandboxConfig {
        clock_offset_ms: BEHIND_MS,
        ..config
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_contacts_are_delivered_exactly_once_across_restarts() {
    let sb = sandbox(behind(SandboxConfig::default())).await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 450).at(past(60)).step(1000))
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        &[(
            "new",
            trigger_flow("new", "contact", "new_record", "out/new.jsonl", ""),
        )],
    );
    assert!(ws.run_once().status.success());
    assert_eq!(ws.lines("out/new.jsonl").len(), 450);
    // Nothing new: nothing delivered, one search.
    let before = sb.store().endpoint_count("search");
    assert!(ws.run_once().status.success());
    assert_eq!(ws.lines("out/new.jsonl").len(), 450);
    assert_eq!(
        sb.store().endpoint_count("search") - before,
        1,
        "an idle poll costs one search"
    );
    // New records after a restart are picked up from the cursor. Stamped a second ago on the
    // system's clock: past the flow's `settle`, and after the window the last poll read.
    sb.store()
        .seed(SeedSpec::generated("contacts", 50).at(settled()))
        .unwrap();
    let out = ws.run_once();
    assert!(out.status.success());
    let lines = ws.lines("out/new.jsonl");
    assert_eq!(lines.len(), 500);
    assert_unique(&lines);
    let runs = ws.store().await.runs(Some("new"), 10).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.counts.succeeded).sum::<u64>(), 500);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_delivered_under_new_or_updated_only() {
    let sb = sandbox(behind(SandboxConfig::default())).await;
    let created = sb
        .store()
        .seed(SeedSpec::generated("contacts", 100).at(past(30)).step(100))
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        &[
            (
                "new",
                trigger_flow("new", "contact", "new_record", "out/new.jsonl", ""),
            ),
            (
                "changed",
                trigger_flow(
                    "changed",
                    "contact",
                    "new_or_updated_record",
                    "out/changed.jsonl",
                    "",
                ),
            ),
        ],
    );
    assert!(ws.run_once().status.success());
    assert_eq!(ws.lines("out/new.jsonl").len(), 100);
    assert_eq!(ws.lines("out/changed.jsonl").len(), 100);
    let mut props = serde_json::Map::new();
    props.insert("firstname".into(), Value::String("Changed".into()));
    for id in &created[..10] {
        // stamped a second ago on the system's clock: settled, after the last window read
        sb.store()
            .touch("contacts", id, &props, Some(settled()))
            .unwrap();
    }
    assert!(ws.run_once().status.success());
    assert_eq!(
        ws.lines("out/new.jsonl").len(),
        100,
        "an update is not a new record"
    );
    let changed = ws.lines("out/changed.jsonl");
    assert_eq!(changed.len(), 110);
    let counts = ids(&changed).into_iter().fold(HashMap::new(), |mut m, id| {
        *m.entry(id).or_insert(0) += 1;
        m
    });
    for id in &created[..10] {
        assert_eq!(
            counts[id], 2,
            "contact {id} changed once: delivered twice in all"
        );
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_thousand_identical_timestamps_are_delivered_without_looping() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .seed(
            SeedSpec::generated("contacts", 15_000)
                .at(past(120))
                .step(0),
        )
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        &[(
            "same",
            trigger_flow("same", "contact", "new_record", "out/same.jsonl", ""),
        )],
    );
    let out = ws.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = ws.lines("out/same.jsonl");
    assert_eq!(lines.len(), 15_000);
    assert_unique(&lines);
    let searches = sb.store().endpoint_count("search");
    assert!(searches < 250, "{searches} searches for 15,000 records");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_lag_is_covered_by_settle_and_the_late_pass() {
    let sb = sandbox(behind(SandboxConfig {
        search_lag: Duration::from_secs(3),
        ..SandboxConfig::default()
    }))
    .await;
    let created = sb
        .store()
        .seed(SeedSpec::generated("contacts", 100).at(past(10)).step(10))
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        &[(
            "changed",
            // The late pass checks each window again at once (the next poll).
            trigger_flow(
                "changed",
                "contact",
                "new_or_updated_record",
                "out/changed.jsonl",
                "",
            )
            .replace("settle: 1s\n", "settle: 1s\n    late_after: 0s\n"),
        )],
    );
    assert!(ws.run_once().status.success());
    assert_eq!(ws.lines("out/changed.jsonl").len(), 100);
    let props = serde_json::Map::new();
    for id in &created {
        sb.store()
            .touch("contacts", id, &props, Some(settled()))
            .unwrap();
    }
    // Stamped a second ago (settled), but invisible to search for 3 s of the sandbox's clock:
    // this poll sees nothing and moves its cursor past them.
    assert!(ws.run_once().status.success());
    assert_eq!(ws.lines("out/changed.jsonl").len(), 100);
    // The search index catches up: the lag ends on the sandbox's clock.
    sb.clock().advance(Duration::from_secs(3)).unwrap();
    assert!(ws.run_once().status.success());
    let lines = ws.lines("out/changed.jsonl");
    assert_eq!(lines.len(), 200, "the late pass finds the late records");
    assert!(ws.run_once().status.success());
    assert_eq!(
        ws.lines("out/changed.jsonl").len(),
        200,
        "and delivers them once"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_loses_nothing_and_creates_nothing_twice() {
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(40),
        ..SandboxConfig::default()
    })
    .await;
    sb.store()
        .seed(
            SeedSpec::generated("companies", 1500)
                .at(past(90))
                .step(100),
        )
        .unwrap();
    let flow = "name: owners\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: company\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [name, domain]\nmapping:\n  email: \"owner-{{record.id}}@kill.example\"\n  lastname: \"{{record.properties.name}}\"\nactions:\n  - hubspot: { connection: hubspot, operation: create, object: contact, batch_size: 50 }\n  - file: { path: out/owners.jsonl }\n".to_string();
    let ws = Workspace::new(&sb.url(), &[("owners", flow)]);
    let mut child = ws
        .command(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the event "300 owners created" (polled, with a deadline), then kill.
    let reached = poll_until(Duration::from_secs(60), || {
        sb.store().count("contacts").unwrap() >= 300
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no chance to flush anything
    child.wait().unwrap();
    assert!(reached, "the runner never created 300 contacts");
    let at_kill = sb.store().count("contacts").unwrap();
    assert!(
        at_kill > 0 && at_kill < 1500,
        "killed mid-run ({at_kill} created)"
    );
    for _ in 0..3 {
        ws.run_once();
        if ws.lines("out/owners.jsonl").len() >= 1500 {
            break;
        }
    }
    assert_eq!(
        sb.store().count("contacts").unwrap(),
        1500,
        "every company got exactly one owner contact"
    );
    let lines = ws.lines("out/owners.jsonl");
    assert_eq!(
        lines.len(),
        1500,
        "the file holds each record once, with no partial line"
    );
    let emails: HashSet<&str> = lines.iter().map(|l| l["email"].as_str().unwrap()).collect();
    assert_eq!(emails.len(), 1500);
    assert!(
        ws.store()
            .await
            .failures(Some("owners"), FailureStatus::Failed, 10)
            .await
            .unwrap()
            .is_empty(),
        "no record failed"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_429_storms_deliver_every_record_once() {
    let sb = sandbox(SandboxConfig {
        fault_rate: 0.10,
        fault_seed: Some(7),
        rate_limit: Some("20/1s".parse().unwrap()),
        ..SandboxConfig::default()
    })
    .await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 1000).at(past(60)).step(10))
        .unwrap();
    let flow = "name: mirror\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [email, firstname]\nmapping:\n  external_id: \"c-{{record.id}}\"\n  name: \"{{record.properties.firstname}} {{record.id}}\"\nactions:\n  - hubspot: { connection: hubspot, operation: upsert, object: company, match_on: external_id }\n  - file: { path: out/mirror.jsonl }\n".to_string();
    let ws = Workspace::new(&sb.url(), &[("mirror", flow)]);
    for _ in 0..5 {
        ws.run_once();
        if ws.lines("out/mirror.jsonl").len() >= 1000
            && ws
                .store()
                .await
                .failures(None, FailureStatus::Failed, 1)
                .await
                .unwrap()
                .is_empty()
        {
            break;
        }
    }
    let lines = ws.lines("out/mirror.jsonl");
    assert_eq!(lines.len(), 1000);
    let unique: HashSet<&str> = lines
        .iter()
        .map(|l| l["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), 1000);
    assert_eq!(sb.store().count("companies").unwrap(), 1000);
    let stats = sb.store().stats();
    let runs = ws.store().await.runs(Some("mirror"), 100).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.counts.succeeded).sum::<u64>(),
        1000,
        "run history counts each record once"
    );
    assert!(
        ws.store()
            .await
            .failures(None, FailureStatus::Failed, 1)
            .await
            .unwrap()
            .is_empty()
    );
    eprintln!("sandbox stats: {stats:?}");
    sb.shutdown().await;
}

#[test]
fn the_readme_quick_start_runs_every_example_on_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("flows"), &dir.path().join("flows"));
    let out = rivulet()
        .current_dir(dir.path())
        .args(["run", "flows", "--sandbox", "--once"])
        .env("RIVULET_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for flow in [
        "companies-from-erp",
        "companies-to-webhook",
        "customers-to-contacts",
        "new-contacts-to-file",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(flow))
            .unwrap_or_else(|| panic!("no summary row for {flow}: {stdout}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(
            cols[2].parse::<u64>().unwrap() > 0,
            "{flow} read nothing: {row}"
        );
        assert_eq!(cols[4], "0", "{flow} had failures: {row}");
    }
    let contacts = std::fs::read_to_string(dir.path().join("out/new-contacts.jsonl")).unwrap();
    assert_eq!(contacts.lines().count(), 100);
    assert!(
        stdout.contains("demo API `erp_webhook` received 50 records"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_and_moves_no_cursor() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 30).at(past(60)).step(1000))
        .unwrap();
    let flow = trigger_flow("dry", "contact", "new_record", "out/dry.jsonl", "");
    let ws = Workspace::new(&sb.url(), &[("dry", flow)]);
    for _ in 0..2 {
        let out = ws.command(&["--once", "--dry-run"]).output().unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with("dry-run ")).count(),
            30,
            "{stdout}"
        );
    }
    assert!(ws.lines("out/dry.jsonl").is_empty());
    assert!(ws.store().await.runs(None, 10).await.unwrap().is_empty());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_selection_invalid_flows_and_sigterm() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 5).at(past(60)).step(1000))
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        &[
            (
                "a",
                trigger_flow("a", "contact", "new_record", "out/a.jsonl", ""),
            ),
            (
                "b",
                trigger_flow("b", "company", "new_record", "out/b.jsonl", ""),
            ),
        ],
    );
    let out = ws.command(&["--once", "--flow", "a"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(ws.lines("out/a.jsonl").len(), 5);
    assert!(!ws.path("flows/out/b.jsonl").exists());
    let out = ws.command(&["--once", "--flow", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no flow named `nope`"));

    // A long-running runner stops cleanly on SIGTERM, sent once it says it listens for it.
    let mut child = ws
        .command(&[])
        .env("RIVULET_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let stderr = child.stderr.take().unwrap();
    // Reads every line (so the child never blocks on a full pipe) and reports readiness.
    let drain = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut ready_tx = Some(ready_tx);
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("running; SIGINT or SIGTERM stops")
                && let Some(tx) = ready_tx.take()
            {
                let _ = tx.send(());
            }
            seen.push(line);
        }
        seen.join("\n")
    });
    let ready = tokio::time::timeout(Duration::from_secs(30), ready_rx).await;
    if !matches!(ready, Ok(Ok(()))) {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!(
            "the runner never said it was running:\n{}",
            drain.join().unwrap()
        );
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let logs = drain.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{logs}");

    // Invalid flows: the runner refuses to start and says why.
    std::fs::write(ws.path("flows/broken.yaml"), "name: broken\ntrigger:\n  hubspot: {connection: hubspot, on: new_record, object: contact}\nactions: []\n").unwrap();
    let out = ws.run_once();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing the required key `poll_every`"));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_flows_on_one_object_share_one_search_per_idle_poll() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 40).at(past(60)).step(1000))
        .unwrap();
    let flows: Vec<(String, String)> = (0..10)
        .map(|i| {
            (
                format!("w{i}"),
                trigger_flow(
                    &format!("w{i}"),
                    "contact",
                    "new_record",
                    &format!("out/w{i}.jsonl"),
                    "",
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = flows.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let ws = Workspace::new(&sb.url(), &refs);
    assert!(ws.run_once().status.success());
    for i in 0..10 {
        assert_eq!(
            ws.lines(&format!("out/w{i}.jsonl")).len(),
            40,
            "each flow keeps its own cursor"
        );
    }
    let before = sb.store().endpoint_count("search");
    assert!(ws.run_once().status.success());
    assert_eq!(sb.store().endpoint_count("search") - before, 1);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_run_spans_and_never_the_token() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 3).at(past(60)).step(1000))
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        &[(
            "logged",
            trigger_flow("logged", "contact", "new_record", "out/l.jsonl", ""),
        )],
    );
    let out = ws
        .command(&["--once", "--log-format", "json"])
        .env("HUBSPOT_TOKEN", "pat-SENTINEL-7d1f")
        .env("RIVULET_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("SENTINEL"),
        "the token leaked into the logs"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SENTINEL"));
    let finished: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "run finished")
        .collect();
    assert_eq!(finished.len(), 1, "{stderr}");
    assert_eq!(finished[0]["flow"], "logged");
    assert_eq!(finished[0]["succeeded"], 3);
    assert!(finished[0]["run_id"].as_u64().is_some());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_command_serves_a_seeded_crm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, r#"{"contacts": [{"email": "ada@example.com", "firstname": "Ada"}, {"email": "alan@example.com"}]}"#).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["sandbox", "--port", "0", "--no-demo", "--seed"])
        .arg(&seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let http = reqwest::Client::new();
    let page: Value = http
        .get(format!("{url}/crm/v3/objects/contacts?properties=email"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let denied = http
        .get(format!("{url}/crm/v3/objects/contacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_trigger_resets_its_cursor_and_says_so() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.store()
        .seed(SeedSpec::generated("contacts", 7).at(past(60)).step(1000))
        .unwrap();
    sb.store()
        .seed(SeedSpec::generated("companies", 4).at(past(60)).step(1000))
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        &[(
            "watch",
            trigger_flow("watch", "contact", "new_record", "out/watch.jsonl", ""),
        )],
    );
    assert!(ws.run_once().status.success());
    assert_eq!(ws.lines("out/watch.jsonl").len(), 7);
    std::fs::write(
        ws.path("flows/watch.yaml"),
        trigger_flow("watch", "company", "new_record", "out/watch.jsonl", ""),
    )
    .unwrap();
    let out = ws.run_once();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the trigger changed: its cursor starts afresh"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ws.lines("out/watch.jsonl").len(),
        11,
        "the companies are delivered from `start_from`"
    );
    sb.shutdown().await;
}
