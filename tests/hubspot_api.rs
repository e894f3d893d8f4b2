//! The HubSpot connection's newer settings end to end, `rivulet run` against the sandbox:
//! `api_version` choosing the path family, category properties checked at start-up and read
//! once per run, category values sent as internal values (or failing their record with the
//! allowed ones), and portal write rules failing only their record, never retried.

mod common;

use rivulet_runtime::state::{FailureStatus, SqliteStore, StateStore, StoredFailure};
use rivulet_sandbox::{Sandbox, SandboxConfig};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A flows folder with one HubSpot connection (`settings` added to it) and one flow that
/// upserts companies from `companies.jsonl` by `external_id`.
struct Workspace {
    dir: tempfile::TempDir,
}

const FLOW: &str = r#"name: companies-in
source:
  file: { path: companies.jsonl, format: jsonl }
mapping:
  name: "{{record.name}}"
  external_id: "{{record.id}}"
  company_category: { path: $.segment }
  industry: { path: $.industry }
actions:
  - hubspot:
      connection: hubspot
      operation: upsert
      object: company
      match_on: external_id
"#;

impl Workspace {
    fn new(sandbox: &Sandbox, settings: &str, rows: &[serde_json::Value]) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        std::fs::create_dir_all(&flows).unwrap();
        std::fs::write(
            flows.join("connections.yaml"),
            format!(
                "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {}\n      timeout: 5s\n{settings}",
                sandbox.url()
            ),
        )
        .unwrap();
        std::fs::write(flows.join("companies-in.yaml"), FLOW).unwrap();
        let data: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        std::fs::write(flows.join("companies.jsonl"), data.join("\n") + "\n").unwrap();
        Workspace { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run_once(&self) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .arg("run")
            .arg(self.path("flows"))
            .arg("--state")
            .arg(self.path("state.db"))
            .args(["--listen", "127.0.0.1:0", "--once"])
            .env("HUBSPOT_TOKEN", "test-token")
            .env("RIVULET_LOG", "warn")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        out
    }

    async fn failures(&self) -> Vec<StoredFailure> {
        SqliteStore::open(&self.path("state.db"))
            .await
            .unwrap()
            .failures(Some("companies-in"), FailureStatus::Failed, 100)
            .await
            .unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).await.unwrap()
}

/// The company with `external_id`, as the sandbox holds it.
fn company(sb: &Sandbox, external_id: &str) -> Option<serde_json::Value> {
    sb.store()
        .find("companies", "external_id", external_id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn category_values_go_as_internal_values_and_unknown_ones_fail_their_record() {
    let sb = sandbox().await;
    let ws = Workspace::new(
        &sb,
        "      api_version: \"2026-03\"\n      company_category_property: company_category\n",
        &[
            json!({"id": "E-1", "name": "Acme", "segment": "Enterprise"}),
            json!({"id": "E-2", "name": "Beta", "segment": "small_business"}),
            json!({"id": "E-3", "name": "Gamma", "segment": "Mid market"}),
            json!({"id": "E-4", "name": "Delta", "segment": "PARTNER"}),
        ],
    );
    let out = ws.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a record failed: {}",
        stderr(&out)
    );
    for (id, want) in [
        ("E-1", "enterprise"),
        ("E-2", "small_business"),
        ("E-4", "partner"),
    ] {
        let c = company(&sb, id).unwrap_or_else(|| panic!("{id} written: {}", stderr(&out)));
        assert_eq!(c["properties"]["company_category"], want, "{id}");
    }
    assert!(company(&sb, "E-3").is_none());
    let failures = ws.failures().await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].failure.key.ends_with(":3"), "{failures:?}");
    let error = &failures[0].failure.error;
    assert!(
        error.contains("`Mid market` is not an option of company_category")
            && error.contains(
                "allowed: small_business (Small business), mid_market (Mid-market), enterprise (Enterprise), partner (Partner)"
            ),
        "{error}"
    );
    // the definition was read once for the run; every call on the date-versioned paths
    let log = sb.store().requests();
    let definitions = log
        .iter()
        .filter(|r| r.path == "/crm/properties/2026-03/companies/company_category")
        .count();
    assert_eq!(definitions, 1, "{log:?}");
    assert!(
        log.iter()
            .any(|r| r.path == "/crm/objects/2026-03/companies/batch/upsert"),
        "{log:?}"
    );
    assert!(
        log.iter().all(|r| !r.path.starts_with("/crm/v3/")),
        "{log:?}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_category_property_stops_the_run_before_any_write() {
    let sb = sandbox().await;
    let rows = [json!({"id": "E-1", "name": "Acme", "segment": "enterprise"})];
    let missing = Workspace::new(
        &sb,
        "      company_category_property: company_category\n      contact_category_property: contact_tier\n",
        &rows,
    );
    // the run does not start (the exit code is the CLI's for a connection that cannot be used)
    let out = missing.run_once();
    assert_ne!(out.status.code(), Some(0));
    let said = stderr(&out);
    assert!(
        said.contains("contact category property `contact_tier` does not exist in HubSpot")
            && said.contains("create it as a dropdown"),
        "{said}"
    );
    let wrong = Workspace::new(
        &sb,
        "      api_version: \"2026-03\"\n      company_category_property: domain\n",
        &rows,
    );
    let out = wrong.run_once();
    assert_ne!(out.status.code(), Some(0));
    let said = stderr(&out);
    assert!(
        said.contains("`domain` is a `string` property, not a dropdown"),
        "{said}"
    );
    assert_eq!(sb.store().endpoint_count("batch_upsert"), 0);
    assert_eq!(sb.store().count("companies").unwrap(), 0);
    // once the portal has it, the same settings run
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/properties/contacts", sb.url()))
        .json(
            &json!({"name": "contact_tier", "type": "enumeration", "fieldType": "select",
                      "options": [{"label": "Gold", "value": "gold"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let out = missing.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(company(&sb, "E-1").is_some());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_rule_fails_only_its_record_and_nothing_is_sent_again() {
    let sb = sandbox().await;
    // HubSpot (2026-09): a category needs an industry
    let r = reqwest::Client::new()
        .put(format!("{}/_sandbox/validation/companies", sb.url()))
        .json(&json!({"required_when": {"property": "company_category", "then": ["industry"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // no api_version: the v3 paths
    let ws = Workspace::new(
        &sb,
        "",
        &[
            json!({"id": "E-1", "name": "Acme", "segment": "enterprise", "industry": "RETAIL"}),
            json!({"id": "E-2", "name": "Beta", "segment": "partner"}),
            json!({"id": "E-3", "name": "Gamma"}),
        ],
    );
    let out = ws.run_once();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(company(&sb, "E-1").is_some() && company(&sb, "E-3").is_some());
    assert!(company(&sb, "E-2").is_none());
    let failures = ws.failures().await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    let error = &failures[0].failure.error;
    assert!(
        error.contains("400 VALIDATION_ERROR")
            && error.contains("industry is required when company_category has a value")
            && error.contains("properties: industry"),
        "{error}"
    );
    let sent = sb.store().endpoint_count("batch_upsert");
    assert_eq!(sent, 1, "one batch, its 207 answered per record");
    assert!(
        sb.store()
            .requests()
            .iter()
            .any(|r| r.path == "/crm/v3/objects/companies/batch/upsert")
    );
    // a permanent failure waits for a replay: the next run sends nothing
    let out = ws.run_once();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sb.store().endpoint_count("batch_upsert"), sent);
    assert_eq!(ws.failures().await.len(), 1);
    sb.shutdown().await;
}
