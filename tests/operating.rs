//! Operating a runner end to end, through the binary against the sandbox: run history, failed
//! records and their replay, cursors, the live endpoints and `--watch`.

mod common;

use common::Service;
use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec, WriteRules};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A flows folder wired to a sandbox, with its state beside it.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(sandbox_url: &str, flows: &[(&str, &str)]) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let flows_dir = dir.path().join("flows");
        std::fs::create_dir_all(flows_dir.join("data")).unwrap();
        std::fs::write(
            flows_dir.join("connections.yaml"),
            format!(
                "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {sandbox_url}\n      search_per_second: 50\n      throttle: {{ limit: 1000, per: 10s }}\n      timeout: 5s\n"
            ),
        )
        .unwrap();
        for (name, text) in flows {
            std::fs::write(flows_dir.join(name), text).unwrap();
        }
        Workspace { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn state(&self) -> String {
        self.path("state.db").display().to_string()
    }

    /// `rivulet ARGS… --state STATE` with the test's environment.
    fn rivulet(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.args(args)
            .args(["--state", &self.state()])
            .current_dir(self.dir.path())
            .env("HUBSPOT_TOKEN", "operating-test-token")
            .env("RIVULET_LOG", "warn")
            .env("NO_COLOR", "1");
        cmd
    }

    fn run_once(&self) -> Output {
        self.rivulet(&["run", "flows", "--once"]).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.rivulet(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)))
    }

    fn service(&self, extra: &[&str]) -> Service {
        let mut cmd = self.rivulet(&["run", "flows"]);
        cmd.args(["--listen", "127.0.0.1:0"]).args(extra);
        Service::start(cmd)
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Contacts from a CSV, upserted by email; a row without a phone is refused while the sandbox
/// requires one.
const CSV_FLOW: &str = "name: customers\nschedule:\n  every: 1h\nsource:\n  file:\n    path: data/customers.csv\n    format: csv\nmapping:\n  email: \"{{record.email}}\"\n  phone:\n    path: $.phone\n    required: false\nactions:\n  - hubspot:\n      connection: hubspot\n      operation: upsert\n      object: contact\n      match_on: email\n";

const CSV: &str = "email,phone\nann@example.com,+49 30 1\nbob@example.com,\ncid@example.com,\n";

fn failure_ids(doc: &Value) -> Vec<i64> {
    doc["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_failures_replay_after_the_fix_and_discard() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sb.store()
        .set_write_rules(
            "contacts",
            WriteRules {
                required_on_create: vec!["phone".into()],
                ..WriteRules::default()
            },
        )
        .unwrap();
    let ws = Workspace::new(&sb.url(), &[("customers.yaml", CSV_FLOW)]);
    std::fs::write(ws.path("flows/data/customers.csv"), CSV).unwrap();

    let out = ws.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "two records failed: {}",
        text(&out)
    );

    // The run history: one failed run with its counts and API calls.
    let runs = ws.json(&["runs", "flows", "--format", "json"]);
    let run = &runs["runs"][0];
    assert_eq!(run["flow"], "customers");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["read"], 3);
    assert_eq!(run["delivered"], 1);
    assert_eq!(run["failed"], 2);
    assert!(run["api_calls"].as_u64().unwrap() >= 1, "{run}");
    let run_id = run["id"].as_i64().unwrap().to_string();
    let human = ws
        .rivulet(&["runs", "flows", "--flow", "customers", "--limit", "5"])
        .output()
        .unwrap();
    assert!(human.status.success());
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("customers"),
        "{}",
        text(&human)
    );

    // `runs show` lists the records it failed, with their errors.
    let shown = ws.json(&["runs", "show", &run_id, "flows", "--format", "json"]);
    assert_eq!(shown["failures"].as_array().unwrap().len(), 2, "{shown}");

    // Each failure with its error, the source record and what was sent.
    let failures = ws.json(&[
        "failures",
        "flows",
        "--flow",
        "customers",
        "--format",
        "json",
    ]);
    let list = failures["failures"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{failures}");
    for f in list {
        assert!(f["error"].as_str().unwrap().contains("phone"), "{f}");
        assert!(f["record"]["email"].is_string(), "{f}");
        assert!(f["sent"].is_object(), "what was sent is kept: {f}");
    }
    let ids = failure_ids(&failures);

    // The destination is fixed; one failure is replayed and resolves, the other is dropped.
    sb.store()
        .set_write_rules("contacts", WriteRules::default())
        .unwrap();
    let first = ids[0].to_string();
    let out = ws.rivulet(&["replay", &first, "flows"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let second = ids[1].to_string();
    let out = ws
        .rivulet(&["failures", "discard", &second])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let open = ws.json(&["failures", "flows", "--format", "json"]);
    assert!(failure_ids(&open).is_empty(), "nothing left open: {open}");
    let all = ws.json(&["failures", "flows", "--status", "all", "--format", "json"]);
    let status = |id: i64| {
        all["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status(ids[0]).as_deref(), Some("resolved"));
    assert_eq!(
        status(ids[1]).as_deref(),
        Some("discarded"),
        "discarded entries are kept: {all}"
    );
    let emails: Vec<String> = sb
        .store()
        .records("contacts")
        .unwrap()
        .iter()
        .filter_map(|r| r["properties"]["email"].as_str().map(String::from))
        .collect();
    assert!(emails.contains(&"ann@example.com".to_string()));
    assert_eq!(
        emails
            .iter()
            .filter(|e| e.ends_with("@example.com"))
            .count(),
        2,
        "the replayed record reached HubSpot, the discarded one did not: {emails:?}"
    );

    // A replay of an unknown id is a usage error.
    let out = ws
        .rivulet(&["failures", "discard", "99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    sb.shutdown().await;
}

const TRIGGER_FLOW: &str = "name: new-contacts\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [email]\nmapping:\n  id: \"{{record.id}}\"\nactions:\n  - file: { path: out/contacts.jsonl }\n";

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_are_shown_and_reset_only_when_no_runner_holds_the_state() {
    let sb = Sandbox::start(SandboxConfig {
        clock_offset_ms: -10_000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let at = chrono::Utc::now().timestamp_millis() - 3_600_000;
    sb.store()
        .seed(SeedSpec::generated("contacts", 5).at(at).step(1000))
        .unwrap();
    let ws = Workspace::new(&sb.url(), &[("new-contacts.yaml", TRIGGER_FLOW)]);
    assert!(ws.run_once().status.success());
    assert_eq!(lines(&ws.path("flows/out/contacts.jsonl")), 5);

    let shown = ws.json(&[
        "cursor",
        "show",
        "new-contacts",
        "flows",
        "--format",
        "json",
    ]);
    let cursor = &shown["cursors"][0];
    assert_eq!(cursor["flow"], "new-contacts", "{shown}");
    assert!(cursor["state"]["ts"].is_i64(), "{shown}");

    // While a runner holds the state, a reset is refused (exit 5) and nothing moves.
    let service = ws.service(&[]);
    service.wait_for("running;", WAIT);
    let out = ws
        .rivulet(&[
            "cursor",
            "reset",
            "new-contacts",
            "flows",
            "--to",
            "beginning",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds the state"),
        "{}",
        text(&out)
    );
    let (code, _) = service.terminate();
    assert_eq!(code, Some(0));

    // Stopped: the reset goes through and the next run reads everything again (a backfill).
    let out = ws
        .rivulet(&[
            "cursor",
            "reset",
            "new-contacts",
            "flows",
            "--to",
            "beginning",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(ws.run_once().status.success());
    assert_eq!(
        lines(&ws.path("flows/out/contacts.jsonl")),
        10,
        "read again from the beginning"
    );
    sb.shutdown().await;
}

/// An HTTP server that holds every connection unanswered until `release` is sent, then
/// answers `200 {}` to everything: a connection that has not answered yet, on demand.
async fn held_server() -> (String, tokio::sync::watch::Sender<bool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (release, released) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut released = released.clone();
            tokio::spawn(async move {
                let _ = released.wait_for(|r| *r).await;
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                let body = "{}";
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (url, release)
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_are_served_while_running() {
    let sb = Sandbox::start(SandboxConfig {
        clock_offset_ms: -10_000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let at = chrono::Utc::now().timestamp_millis() - 3_600_000;
    sb.store()
        .seed(SeedSpec::generated("contacts", 4).at(at).step(1000))
        .unwrap();
    let (webhook, release) = held_server().await;
    let hook_flow = "name: to-webhook\nschedule:\n  every: 1h\nsource:\n  file:\n    path: data/rows.jsonl\n    format: jsonl\nmapping:\n  n: \"{{record.n}}\"\nactions:\n  - http:\n      connection: webhook\n      method: POST\n      path: /hook\n";
    let ws = Workspace::new(
        &sb.url(),
        &[
            ("new-contacts.yaml", TRIGGER_FLOW),
            ("to-webhook.yaml", hook_flow),
        ],
    );
    std::fs::write(ws.path("flows/data/rows.jsonl"), "{\"n\": 1}\n").unwrap();
    std::fs::write(
        ws.path("flows/webhook.yaml"),
        format!(
            "connections:\n  webhook:\n    http:\n      base_url: {webhook}\n      timeout: 30s\n"
        ),
    )
    .unwrap();

    let service = ws.service(&[]);
    let line = service.wait_for("metrics on http://", WAIT);
    let base = line
        .split("metrics on ")
        .nth(1)
        .and_then(|s| s.split("/metrics").next())
        .unwrap()
        .to_string();

    // Liveness at once; readiness only once every connection has answered: the webhook holds.
    service.wait_for("running;", WAIT);
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["ready"], false, "{doc}");

    release.send(true).unwrap();
    let mut ready = None;
    for _ in 0..1500 {
        let (status, body) = get(&format!("{base}/readyz")).await;
        if status == 200 {
            ready = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready: Value = serde_json::from_str(&ready.expect("ready within 30 s")).unwrap();
    assert_eq!(ready["ready"], true);
    assert!(ready["flows"]["new-contacts"].is_object(), "{ready}");
    service.wait_for("flow=\"new-contacts\"", WAIT);
    service.wait_for("flow=\"to-webhook\"", WAIT);

    // The metrics, parsed as Prometheus text.
    let (status, body) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => {
                    h.last().map(|b| b.count).unwrap_or_default()
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            })
    };
    assert_eq!(
        value(
            "rivulet_records_total",
            &[("flow", "new-contacts"), ("outcome", "delivered")]
        ),
        Some(4.0),
        "{body}"
    );
    assert_eq!(
        value(
            "rivulet_records_total",
            &[("flow", "to-webhook"), ("outcome", "read")]
        ),
        Some(1.0),
        "{body}"
    );
    assert!(
        value(
            "rivulet_action_records_total",
            &[("flow", "to-webhook"), ("outcome", "delivered")]
        ) == Some(1.0),
        "{body}"
    );
    assert!(
        value("rivulet_api_requests_total", &[("connection", "hubspot")]).unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert!(
        value("rivulet_api_requests_total", &[("connection", "webhook")]).unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert!(
        value(
            "rivulet_api_throttle_wait_seconds_total",
            &[("connection", "hubspot")]
        )
        .is_some(),
        "{body}"
    );
    assert!(
        value(
            "rivulet_api_rate_limited_total",
            &[("connection", "hubspot")]
        )
        .is_some(),
        "{body}"
    );
    assert!(
        value("rivulet_trigger_search_requests_total", &[]).unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert!(
        value("rivulet_trigger_lag_seconds", &[("flow", "new-contacts")]).is_some(),
        "{body}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "rivulet_run_duration_seconds"
                && matches!(s.value, prometheus_parse::Value::Histogram(_))),
        "run durations are a histogram: {body}"
    );
    let (code, _) = service.terminate();
    assert_eq!(code, Some(0));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_trigger_is_reported_in_the_log_the_metrics_and_readyz() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let ws = Workspace::new(&sb.url(), &[("new-contacts.yaml", TRIGGER_FLOW)]);
    let service = ws.service(&[]);
    let line = service.wait_for("metrics on http://", WAIT);
    let base = line
        .split("metrics on ")
        .nth(1)
        .and_then(|s| s.split("/metrics").next())
        .unwrap()
        .to_string();
    service.wait_for("running;", WAIT);
    // Every search now fails (a server error on each); the cursor cannot move.
    let mut faults = sb.store().faults();
    faults.fault_rate = 1.0;
    sb.store().set_faults(faults);
    let warn = service.wait_for("stalled", Duration::from_secs(120));
    assert!(
        warn.contains("WARN") && warn.contains("new-contacts"),
        "{warn}"
    );
    let (status, body) = get(&format!("{base}/readyz")).await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["flows"]["new-contacts"]["status"], "stalled", "{doc}");
    assert_eq!(status, 503, "a stalled trigger is not ready: {doc}");
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rivulet_trigger_stalled{")
                && l.contains("new-contacts")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    service.terminate();
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_applies_valid_changes_and_refuses_invalid_ones() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let at = chrono::Utc::now().timestamp_millis() - 3_600_000;
    sb.store()
        .seed(SeedSpec::generated("contacts", 3).at(at).step(1000))
        .unwrap();
    let ws = Workspace::new(&sb.url(), &[("new-contacts.yaml", TRIGGER_FLOW)]);
    let service = ws.service(&["--watch"]);
    service.wait_for("watching the flow files", WAIT);
    service.wait_for("run finished flow=\"new-contacts\"", WAIT);
    assert_eq!(lines(&ws.path("flows/out/contacts.jsonl")), 3);

    // An invalid edit: refused with its diagnostics, the running flow kept.
    std::fs::write(ws.path("flows/broken.yaml"), "name: [\n").unwrap();
    let refused = service.wait_for("refused", WAIT);
    assert!(refused.contains("ERROR"), "{refused}");
    service.wait_for("broken.yaml:1:7", WAIT);

    // A valid edit: a second flow is added; the unchanged one keeps running (and its cursor).
    std::fs::remove_file(ws.path("flows/broken.yaml")).unwrap();
    // Another trigger (new or updated contacts) polls on its own, beside the first.
    let second = TRIGGER_FLOW
        .replace("name: new-contacts", "name: copy")
        .replace("on: new_record", "on: new_or_updated_record")
        .replace("out/contacts.jsonl", "out/copy.jsonl");
    std::fs::write(ws.path("flows/copy.yaml"), second).unwrap();
    let reloaded = service.wait_for("reloaded the flows", WAIT);
    assert!(
        reloaded.contains("1 started") && reloaded.contains("0 stopping"),
        "{reloaded}"
    );
    service.wait_for("run finished flow=\"copy\"", WAIT);
    assert_eq!(lines(&ws.path("flows/out/copy.jsonl")), 3);

    // A new contact reaches both, once each: the first flow did not start over.
    // Stamped now: the next poll past the flow's one-second `settle` reads it.
    sb.store().seed(SeedSpec::generated("contacts", 1)).unwrap();
    let mut done = false;
    for _ in 0..1500 {
        if lines(&ws.path("flows/out/contacts.jsonl")) == 4
            && lines(&ws.path("flows/out/copy.jsonl")) == 4
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "{}", service.log());

    // A removed flow stops after its page; the other goes on.
    std::fs::remove_file(ws.path("flows/copy.yaml")).unwrap();
    let removed = service.wait_for("1 stopping", WAIT);
    assert!(removed.contains("0 started"), "{removed}");
    service.wait_for(
        "stopped: poll of hubspot:hubspot:contact:new_or_updated_record",
        WAIT,
    );
    let (code, _) = service.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(
        lines(&ws.path("flows/out/contacts.jsonl")),
        4,
        "nothing delivered twice"
    );
    sb.shutdown().await;
}
