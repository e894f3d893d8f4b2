//! The example flows end to end, each against its real other end: the HubSpot sandbox and a
//! small HTTP server started here on 127.0.0.1 (a web shop's customers API and an ERP webhook).
//! Also bad input at the edges: a malformed CSV row, a non-JSON API answer, and HubSpot as a
//! scheduled source.

mod common;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{copy_dir, root};
use rivulet_runtime::state::{FailureStatus, RunStatus, SqliteStore, StateStore};
use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// Webhook deliveries: the Idempotency-Key header and the body.
type Deliveries = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone, Default)]
struct Seen {
    webhook: Deliveries,
    customer_queries: Arc<Mutex<Vec<HashMap<String, String>>>>,
    html: Arc<Mutex<bool>>,
}

fn customers() -> Vec<Value> {
    (0..12)
        .map(|i| {
            json!({
                "id": 500 + i,
                "name": format!("Test Person{i}"),
                "email": format!("  Person{i}@Shop.Example "),
                "phone": if i % 2 == 0 { Value::Null } else { json!("+1 555 0100") },
                "updated_at": format!("2026-10-{:02}T00:00:00Z", 1 + i),
            })
        })
        .collect()
}

async fn shop(
    State(seen): State<Seen>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    seen.customer_queries.lock().unwrap().push(q.clone());
    if *seen.html.lock().unwrap() {
        return (
            StatusCode::OK,
            "<html><body>Maintenance until 10:00</body></html>",
        )
            .into_response();
    }
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let start: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let all: Vec<Value> = customers()
        .into_iter()
        .filter(|c| c["updated_at"].as_str().unwrap() > since.as_str())
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(5).cloned().collect();
    let next = (start + 5 < all.len()).then(|| (start + 5).to_string());
    Json(json!({ "data": page, "next_cursor": next })).into_response()
}

async fn webhook(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    seen.webhook.lock().unwrap().push((key, body));
    Json(json!({ "ok": true }))
}

async fn http_server() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/shop/customers", get(shop))
        .route("/erp/companies", post(webhook))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

struct Env {
    dir: tempfile::TempDir,
    sandbox_url: String,
    http_url: String,
}

impl Env {
    fn run(&self, extra: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .arg("run")
            .arg(self.dir.path().join("flows"))
            .arg("--state")
            .arg(self.dir.path().join("state.db"))
            .arg("--once")
            .args(extra)
            .env("HUBSPOT_TOKEN", "example-token")
            .env("SHOP_TOKEN", "example-shop-token")
            .env("HUBSPOT_BASE_URL", &self.sandbox_url)
            .env("SHOP_BASE_URL", format!("{}/shop", self.http_url))
            .env("ERP_WEBHOOK_URL", format!("{}/erp", self.http_url))
            .env("RIVULET_LOG", "warn")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.path("state.db")).await.unwrap()
    }
}

async fn setup(sandbox: &Sandbox) -> (Env, Seen) {
    let (http_url, seen) = http_server().await;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("flows"), &dir.path().join("flows"));
    (
        Env {
            dir,
            sandbox_url: sandbox.url(),
            http_url,
        },
        seen,
    )
}

fn summary_row<'a>(stdout: &'a str, flow: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.starts_with(flow))
        .unwrap_or_else(|| panic!("no row for {flow}: {stdout}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_flow_copies_records_between_its_systems() {
    let sb = Sandbox::start(SandboxConfig {
        demo_data: true,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (env, seen) = setup(&sb).await;
    let out = env.run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // CSV of ERP companies → HubSpot companies, upserted by external_id, category mapped.
    let acme = sb
        .store()
        .find("companies", "external_id", "ERP-1001")
        .unwrap()
        .expect("ERP-1001 upserted");
    assert_eq!(acme["properties"]["company_category"], "mid_market");
    assert_eq!(acme["properties"]["domain"], "www.acme-tools.example");
    assert_eq!(acme["properties"]["numberofemployees"], "120");
    let cobalt = sb
        .store()
        .find("companies", "external_id", "ERP-1003")
        .unwrap()
        .unwrap();
    assert_eq!(cobalt["properties"]["company_category"], "enterprise");

    // HubSpot new contacts → a JSON Lines file.
    let lines = std::fs::read_to_string(env.path("out/new-contacts.jsonl")).unwrap();
    let contacts: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(contacts.len(), 100);
    assert!(
        contacts
            .iter()
            .all(|c| c["email"].as_str().unwrap().contains('@')
                && c["created"].as_str().unwrap().ends_with('Z'))
    );

    // HubSpot new or updated companies → the ERP webhook, batched, with idempotency keys.
    let received = seen.webhook.lock().unwrap().clone();
    let records: Vec<&Value> = received
        .iter()
        .flat_map(|(_, body)| body.as_array().unwrap())
        .collect();
    assert_eq!(records.len(), 50);
    assert!(
        received
            .iter()
            .all(|(key, body)| key.is_some() && body.as_array().unwrap().len() <= 50)
    );
    assert!(
        records
            .iter()
            .all(|r| r["hubspot_id"].is_string() && r["name"].is_string())
    );

    // The shop's customers → HubSpot contacts, upserted by email, read page by page.
    let ada = sb
        .store()
        .find("contacts", "email", "person3@shop.example")
        .unwrap()
        .expect("customer upserted by lower-cased email");
    assert_eq!(ada["properties"]["firstname"], "Test");
    assert_eq!(ada["properties"]["lastname"], "Person3");
    assert_eq!(ada["properties"]["lifecyclestage"], "customer");
    assert_eq!(summary_row(&stdout, "customers-to-contacts")[2], "12");
    assert_eq!(
        seen.customer_queries.lock().unwrap().len(),
        3,
        "three pages of five"
    );

    // Second run: nothing new anywhere; the shop is asked only for what changed since.
    let out = env.run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success());
    let last_query = seen
        .customer_queries
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        last_query.get("updated_since").map(String::as_str),
        Some("2026-10-12T00:00:00Z")
    );
    assert_eq!(summary_row(&stdout, "customers-to-contacts")[2], "0");
    assert_eq!(summary_row(&stdout, "new-contacts-to-file")[2], "0");
    assert_eq!(
        summary_row(&stdout, "companies-from-erp")[2],
        "0",
        "a fully read CSV is not read again"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("out/new-contacts.jsonl"))
            .unwrap()
            .lines()
            .count(),
        100
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_csv_row_fails_alone_with_its_line_number() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (env, _seen) = setup(&sb).await;
    std::fs::write(
        env.path("flows/data/erp-companies.csv"),
        "erp_id,company_name,website,city,employees,segment\nERP-1,One,one.example,Oslo,5,SMB\nERP-2,Two,two.example\nERP-3,Three,three.example,Oslo,abc,SMB\nERP-4,Four,four.example,Oslo,7,ENT\n",
    )
    .unwrap();
    let out = env.run(&["--flow", "companies-from-erp"]);
    assert_eq!(out.status.code(), Some(1), "records failed: exit 1");
    assert!(
        sb.store()
            .find("companies", "external_id", "ERP-1")
            .unwrap()
            .is_some()
    );
    assert!(
        sb.store()
            .find("companies", "external_id", "ERP-4")
            .unwrap()
            .is_some()
    );
    let failures = env
        .store()
        .await
        .failures(Some("companies-from-erp"), FailureStatus::Failed, 10)
        .await
        .unwrap();
    let origins: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: {}", f.failure.origin, f.failure.error))
        .collect();
    assert_eq!(failures.len(), 2, "{origins:?}");
    assert!(origins.iter().any(|o| o.contains("line 3")), "{origins:?}");
    assert!(
        origins
            .iter()
            .any(|o| o.contains("numberofemployees") && o.contains("abc")),
        "{origins:?}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_api_answer_is_an_error_with_status_and_snippet() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (env, seen) = setup(&sb).await;
    *seen.html.lock().unwrap() = true;
    let out = env.run(&["--flow", "customers-to-contacts"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("200") && stdout.contains("Maintenance until 10:00"),
        "{stdout}"
    );
    let runs = env
        .store()
        .await
        .runs(Some("customers-to-contacts"), 1)
        .await
        .unwrap();
    assert_eq!(runs[0].status, RunStatus::Error);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_as_a_scheduled_source_reads_all_then_only_changes() {
    // The sandbox's clock runs 10 s behind the system's, so the records it touches are already
    // older than the source's 5 s settle (the source reads up to now − 5 s): no waiting.
    let sb = Sandbox::start(SandboxConfig {
        clock_offset_ms: -10_000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let ids = sb
        .store()
        .seed(
            SeedSpec::generated("contacts", 30)
                .at(chrono::Utc::now().timestamp_millis() - 3_600_000)
                .step(1000),
        )
        .unwrap();
    let (env, _seen) = setup(&sb).await;
    std::fs::write(
        env.path("flows/export.yaml"),
        "name: export\nschedule:\n  every: 1h\nsource:\n  hubspot:\n    connection: hubspot\n    object: contact\n    properties: [email]\n    incremental: true\nmapping:\n  id: \"{{record.id}}\"\n  email: \"{{record.properties.email}}\"\nactions:\n  - file: { path: ../out/export.jsonl }\n",
    )
    .unwrap();
    let count = || {
        std::fs::read_to_string(env.path("out/export.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert!(env.run(&["--flow", "export"]).status.success());
    assert_eq!(count(), 30);
    let mut props = serde_json::Map::new();
    props.insert("firstname".into(), json!("Renamed"));
    for id in &ids[..3] {
        sb.store().touch("contacts", id, &props, None).unwrap();
    }
    assert!(env.run(&["--flow", "export"]).status.success());
    assert_eq!(count(), 33, "only the three changed records are read again");
    sb.shutdown().await;
}
