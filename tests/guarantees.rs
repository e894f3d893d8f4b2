//! The delivery guarantees at their edges, end to end through the binary: one runner per state,
//! outages that lose nothing, honest outcomes (interrupted runs, exit codes).

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::{Service, until};
use rivulet_runtime::state::{FailureStatus, RunStatus, SqliteStore, StateStore};
use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// A flows folder wired to a sandbox and, optionally, an HTTP receiver.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(sandbox_url: &str, hook_url: Option<&str>, flows: &[(&str, String)]) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let flows_dir = dir.path().join("flows");
        std::fs::create_dir_all(&flows_dir).unwrap();
        let mut connections = format!(
            "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {sandbox_url}\n      search_per_second: 50\n      throttle: {{ limit: 1000, per: 10s }}\n      timeout: 5s\n"
        );
        if let Some(url) = hook_url {
            connections.push_str(&format!(
                "  hook:\n    http:\n      base_url: {url}\n      timeout: 30s\n"
            ));
        }
        std::fs::write(flows_dir.join("connections.yaml"), connections).unwrap();
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

fn contacts_to(name: &str, action: &str) -> String {
    format!(
        "name: {name}\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [email]\nmapping:\n  id: \"{{{{record.id}}}}\"\n  email: \"{{{{record.properties.email}}}}\"\nactions:\n{action}"
    )
}

fn past(minutes: i64) -> i64 {
    chrono::Utc::now().timestamp_millis() - minutes * 60_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_runner_per_state_and_a_waiting_one_takes_over() {
    // The sandbox's clock runs behind the system's, so records it stamps "now" are already
    // past the runner's settle window.
    let sb = Sandbox::start(SandboxConfig {
        clock_offset_ms: -10_000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sb.store()
        .seed(SeedSpec::generated("contacts", 50).at(past(30)).step(1000))
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        None,
        &[(
            "copy",
            contacts_to("copy", "  - file: { path: out/copy.jsonl }\n"),
        )],
    );
    let first = Service::start(ws.command(&[]));
    first.wait_for("running; SIGINT or SIGTERM stops", LONG);

    // A second runner on the same state refuses, naming the holder.
    let out = ws.command(&["--once"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("in use by another runner")
            && stderr.contains(&format!("pid {}", first.pid())),
        "{stderr}"
    );

    // One started with --wait waits, and takes over when the first stops.
    let second = Service::start(ws.command(&["--wait"]));
    second.wait_for("in use by another runner; waiting", LONG);
    until("the first runner's 50 records", || {
        ws.lines("out/copy.jsonl").len() >= 50
    })
    .await;
    // Stamped a second ago on the system's clock: settled, and after every window read.
    sb.store()
        .seed(SeedSpec::generated("contacts", 20).at(chrono::Utc::now().timestamp_millis() - 1_000))
        .unwrap();
    let (code, _) = first.terminate();
    assert_eq!(code, Some(0));
    second.wait_for("running; SIGINT or SIGTERM stops", LONG);
    until("all 70 records", || ws.lines("out/copy.jsonl").len() >= 70).await;
    let (code, _) = second.terminate();
    assert_eq!(code, Some(0));

    let lines = ws.lines("out/copy.jsonl");
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (lines.len(), ids.len()),
        (70, 70),
        "every record exactly once"
    );
    sb.shutdown().await;
}

/// An HTTP receiver that records each delivery by idempotency key.
#[derive(Clone, Default)]
struct Receiver {
    by_key: Arc<Mutex<HashMap<String, Vec<Value>>>>,
}

impl Receiver {
    fn keys(&self) -> usize {
        self.by_key.lock().unwrap().len()
    }

    fn deliveries(&self) -> usize {
        self.by_key.lock().unwrap().values().map(Vec::len).sum()
    }

    async fn serve(&self, listener: tokio::net::TcpListener) {
        async fn receive(
            State(r): State<Receiver>,
            headers: HeaderMap,
            Json(body): Json<Value>,
        ) -> (StatusCode, Json<Value>) {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            r.by_key.lock().unwrap().entry(key).or_default().push(body);
            (StatusCode::OK, Json(serde_json::json!({"ok": true})))
        }
        let app = Router::new()
            .route("/contacts", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
}

/// A port nothing listens on (yet): connections to it are refused.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_loses_nothing_and_gets_everything_once_when_back() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sb.store()
        .seed(SeedSpec::generated("contacts", 30).at(past(30)).step(1000))
        .unwrap();
    let port = closed_port().await;
    let ws = Workspace::new(
        &sb.url(),
        Some(&format!("http://127.0.0.1:{port}")),
        &[(
            "push",
            contacts_to(
                "push",
                "  - http: { connection: hook, path: /contacts, backoff: { initial: 200ms, max: 1s } }\n",
            ),
        )],
    );

    // --once gives up after --once-wait with exit 3, having moved nothing and failed nothing.
    let out = ws
        .command(&["--once", "--once-wait", "1s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("gave up waiting"), "{stdout}");
    let store = ws.store().await;
    assert!(
        store
            .failures(None, FailureStatus::Failed, 1)
            .await
            .unwrap()
            .is_empty()
    );
    let runs = store.runs(Some("push"), 10).await.unwrap();
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Waiting),
        "{runs:?}"
    );
    drop(store);

    // A service waits, says so, and delivers everything once the receiver is back.
    let service = Service::start(ws.command(&[]));
    service.wait_for("waiting for the HTTP API of connection `hook`", LONG);
    let receiver = Receiver::default();
    receiver
        .serve(
            tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap(),
        )
        .await;
    until("30 records at the receiver", || receiver.keys() >= 30).await;
    service.wait_for("going on: the destination answers again", LONG);
    let (code, _) = service.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(receiver.keys(), 30, "one idempotency key per record");
    assert_eq!(receiver.deliveries(), 30, "each record delivered once");
    let store = ws.store().await;
    assert!(
        store
            .failures(None, FailureStatus::Failed, 1)
            .await
            .unwrap()
            .is_empty()
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_period_that_runs_out_marks_the_run_interrupted() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sb.store()
        .seed(SeedSpec::generated("contacts", 5).at(past(30)).step(1000))
        .unwrap();
    // A receiver that takes the request and never answers.
    let (got_tx, got_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route(
        "/contacts",
        post(move || {
            let got = got_tx.clone();
            async move {
                let _ = got.send(());
                std::future::pending::<()>().await;
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let ws = Workspace::new(
        &sb.url(),
        Some(&format!("http://127.0.0.1:{port}")),
        &[(
            "stuck",
            contacts_to("stuck", "  - http: { connection: hook, path: /contacts }\n"),
        )],
    );
    let service = Service::start(ws.command(&["--grace", "300ms"]));
    let mut got = got_rx;
    tokio::time::timeout(LONG, got.recv())
        .await
        .expect("the receiver got a request");
    let (code, _) = service.terminate();
    assert_eq!(
        code,
        Some(4),
        "the documented exit code for an interrupted run"
    );
    let runs = ws.store().await.runs(Some("stuck"), 10).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Interrupted, "{runs:?}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_company_creates_then_every_company_exists_once() {
    let sb = Sandbox::start(SandboxConfig {
        latency: Duration::from_millis(40),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sb.store()
        .seed(SeedSpec::generated("contacts", 1000).at(past(90)).step(100))
        .unwrap();
    // Companies have no unique property here: an interrupted create is looked up by domain.
    let flow = "name: employers\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [email]\nmapping:\n  name: \"Employer of {{record.id}}\"\n  domain: \"c{{record.id}}.kill.example\"\nactions:\n  - hubspot: { connection: hubspot, operation: create, object: company, batch_size: 50 }\n";
    let ws = Workspace::new(&sb.url(), None, &[("employers", flow.to_string())]);
    let mut child = ws
        .command(&[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    until("200 companies created", || {
        sb.store().count("companies").unwrap() >= 200
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no chance to record anything
    child.wait().unwrap();
    let at_kill = sb.store().count("companies").unwrap();
    assert!(at_kill < 1000, "killed mid-run ({at_kill} created)");
    let mut last = None;
    for _ in 0..3 {
        let out = ws.command(&["--once"]).output().unwrap();
        last = Some(out);
        if sb.store().count("companies").unwrap() >= 1000 {
            break;
        }
    }
    let out = last.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the final run exits 0: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let companies = sb.store().records("companies").unwrap();
    let mut domains: Vec<&str> = companies
        .iter()
        .map(|c| c["properties"]["domain"].as_str().unwrap_or_default())
        .collect();
    domains.sort_unstable();
    domains.dedup();
    assert_eq!(
        (companies.len(), domains.len()),
        (1000, 1000),
        "each company once"
    );
    let store = ws.store().await;
    assert!(
        store
            .failures(None, FailureStatus::Failed, 1)
            .await
            .unwrap()
            .is_empty(),
        "nothing left unknown"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tied_window_is_read_whole_when_search_paging_just_ends_at_10000() {
    let sb = Sandbox::start(SandboxConfig {
        search_cap: rivulet_sandbox::SearchCap::EndPaging,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sb.store()
        .seed(
            SeedSpec::generated("contacts", 15_000)
                .at(past(120))
                .step(0),
        )
        .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        None,
        &[(
            "tied",
            contacts_to("tied", "  - file: { path: out/tied.jsonl }\n"),
        )],
    );
    let out = ws.command(&["--once"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = ws.lines("out/tied.jsonl");
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (lines.len(), ids.len()),
        (15_000, 15_000),
        "every record once"
    );
    sb.shutdown().await;
}
