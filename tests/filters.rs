//! `when:` filters, change-only writes and `rivulet plan`, through the binary against the
//! sandbox.

use rivulet_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(sandbox_url: &str) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flows/data")).unwrap();
        std::fs::write(
            dir.path().join("flows/connections.yaml"),
            format!(
                "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {sandbox_url}\n      api_version: \"2026-03\"\n      throttle: {{ limit: 10000, per: 10s }}\n"
            ),
        )
        .unwrap();
        Workspace { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    fn rivulet(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args(args)
            .current_dir(self.dir.path())
            .env("HUBSPOT_TOKEN", "filters-test-token")
            .env("RIVULET_LOG", "warn")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// `run flows --once --format json`: the one flow's summary.
    fn run_once(&self) -> Value {
        let out = self.rivulet(&["run", "flows", "--once", "--format", "json"]);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["flows"][0].clone()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const FLOW: &str = "name: customers\nschedule:\n  every: 1h\nsource:\n  file:\n    path: data/customers.csv\n    format: csv\nwhen: \"{{eq record.status \\\"active\\\"}}\"\nmapping:\n  email: \"{{record.email}}\"\n  firstname: \"{{record.name}}\"\n  city: \"{{record.city}}\"\nactions:\n  - hubspot:\n      connection: hubspot\n      operation: upsert\n      object: contact\n      match_on: email\n";

/// `n` customers, all active except every 10th; `changed` of them with a new city.
fn csv(n: usize, changed: usize) -> String {
    let mut out = String::from("email,name,city,status\n");
    for i in 0..n {
        let city = if i < changed { "Lyon" } else { "Berlin" };
        let status = if i % 10 == 9 { "inactive" } else { "active" };
        out.push_str(&format!("c{i}@example.com,Customer {i},{city},{status}\n"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_filters_change_only_writes_and_plan() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let ws = Workspace::new(&sb.url());
    ws.write("flows/customers.yaml", FLOW);
    ws.write("flows/data/customers.csv", &csv(5000, 0));

    // First run: 4,500 active customers written (in batches of up to 100 per page of 500
    // records read), 500 filtered.
    let first = ws.run_once();
    assert_eq!(first["read"], 5000, "{first}");
    assert_eq!(first["delivered"], 4500, "{first}");
    assert_eq!(first["filtered"], 500, "{first}");
    let calls = sb.store().endpoint_count("batch_upsert");
    assert!((45..=50).contains(&calls), "{calls} batch calls");
    assert_eq!(sb.store().count("contacts").unwrap(), 4500);

    // The same file again (rewritten, so it is read again): nothing changed, no write call.
    ws.write("flows/data/customers.csv", &csv(5000, 0));
    let again = ws.run_once();
    assert_eq!(again["unchanged"], 4500, "{again}");
    assert_eq!(again["delivered"], 0, "{again}");
    assert_eq!(again["api_calls"], 0, "{again}");
    assert_eq!(
        sb.store().endpoint_count("batch_upsert"),
        calls,
        "0 write calls"
    );

    // Ten active customers moved (the first eleven rows; the tenth is inactive): the plan says
    // so first, field by field, and writes nothing.
    ws.write("flows/data/customers.csv", &csv(5000, 11));
    let out = ws.rivulet(&["plan", "customers", "flows", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["update"], 10, "{}", plan["summary"]);
    assert_eq!(plan["summary"]["unchanged"], 4490);
    assert_eq!(plan["summary"]["filtered"], 500);
    let update = plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["change"] == "update")
        .unwrap();
    assert_eq!(update["fields"][0]["field"], "city", "{update}");
    assert_eq!(update["fields"][0]["old"], "Berlin");
    assert_eq!(update["fields"][0]["new"], "Lyon");
    assert_eq!(
        sb.store().endpoint_count("batch_upsert"),
        calls,
        "a plan writes nothing"
    );
    let human = ws.rivulet(&["plan", "customers", "flows"]);
    let said = String::from_utf8_lossy(&human.stdout);
    assert!(said.contains("city: \"Berlin\" → \"Lyon\""), "{said}");
    assert!(said.contains("filtered by `when`"), "{said}");

    // Someone edits a contact's first name in HubSpot meanwhile: a write that sent every
    // field would set it back; one that sends only what changed leaves it.
    let c3 = sb
        .store()
        .find("contacts", "email", "c3@example.com")
        .unwrap()
        .unwrap();
    let id = c3["id"].as_str().unwrap().to_string();
    let mut edit = serde_json::Map::new();
    edit.insert("firstname".into(), "Edited in HubSpot".into());
    sb.store().touch("contacts", &id, &edit, None).unwrap();

    // The run: one call, sending only what changed (and the email it is matched on).
    let changed = ws.run_once();
    assert_eq!(changed["delivered"], 10, "{changed}");
    assert_eq!(changed["unchanged"], 4490, "{changed}");
    assert_eq!(
        sb.store().endpoint_count("batch_upsert"),
        calls + 1,
        "1 write call"
    );
    let moved = sb
        .store()
        .find("contacts", "email", "c3@example.com")
        .unwrap()
        .unwrap();
    assert_eq!(moved["properties"]["city"], "Lyon");
    assert_eq!(
        moved["properties"]["firstname"], "Edited in HubSpot",
        "only the changed city was sent"
    );

    // `write: always` writes every record every time.
    ws.write(
        "flows/customers.yaml",
        &FLOW.replace("mapping:", "write: always\nmapping:"),
    );
    ws.write("flows/data/customers.csv", &csv(5000, 11));
    let always = ws.run_once();
    assert_eq!(always["delivered"], 4500, "{always}");
    assert_eq!(
        sb.store().endpoint_count("batch_upsert"),
        2 * calls + 1,
        "every record again"
    );
    sb.shutdown().await;
}

#[test]
fn filtered_records_in_map_and_mapping_tests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("flows/connections.yaml"),
        "connections:\n  hubspot:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      api_version: \"2026-03\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("flows/customers.yaml"), FLOW).unwrap();
    std::fs::write(
        dir.path().join("flows/customers.test.yaml"),
        "tests:\n  - name: inactive customers are left out\n    input: { email: a@b.example, name: A, city: X, status: inactive }\n    expect_filtered: true\n  - name: active ones go through\n    input: { email: a@b.example, name: A, city: X, status: active }\n    expect: { email: a@b.example }\n  - name: a wrong expectation is caught\n    input: { email: a@b.example, name: A, city: X, status: active }\n    expect_filtered: true\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args(args)
            .current_dir(dir.path())
            .env("HUBSPOT_TOKEN", "t")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&["test", "flows", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["passed"], 2, "{doc}");
    assert_eq!(doc["failed"], 1, "{doc}");
    let failed = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "failed")
        .unwrap();
    assert!(
        failed["errors"][0]
            .as_str()
            .unwrap()
            .contains("lets it through"),
        "{failed}"
    );

    // `map` says a record is filtered, and maps the others.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["map", "customers", "flows"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"email\":\"x@y.example\",\"name\":\"X\",\"city\":\"C\",\"status\":\"inactive\"}\n{\"email\":\"z@y.example\",\"name\":\"Z\",\"city\":\"C\",\"status\":\"active\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("z@y.example") && !stdout.contains("x@y.example"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("record 1 (line 1): filtered by the flow's `when:`"),
        "{}",
        text(&out)
    );

    // A condition that does not compile is a located validate error.
    std::fs::write(
        dir.path().join("flows/customers.yaml"),
        FLOW.replace("{{eq record.status", "{{eq record.status (("),
    )
    .unwrap();
    let out = run(&["validate", "flows"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("invalid_condition") && said.contains("customers.yaml:8:"),
        "{said}"
    );
}

#[test]
fn conditions_are_checked_against_the_records_they_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("flows/connections.yaml"),
        "connections:\n  hubspot:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      api_version: \"2026-03\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("flows/t.yaml"),
        "name: t\ntrigger:\n  hubspot: { connection: hubspot, on: new_record, object: contact, poll_every: 1m, properties: [email] }\nwhen: \"$[?(@.propertes.lifecyclestage == 'customer')]\"\nmapping:\n  email: \"{{record.properties.email}}\"\nactions:\n  - file: { path: out.jsonl, when: \"{{eq record.properties.lifecyclestage \\\"lead\\\"}}\" }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["validate", "flows"])
        .current_dir(dir.path())
        .env("HUBSPOT_TOKEN", "t")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("[unknown_record_field]")
            && said.contains("flows/t.yaml:4:14")
            && said.contains("did you mean `@.properties.lifecyclestage`?"),
        "{said}"
    );
    assert!(
        said.contains("[unfetched_property]")
            && said.contains("add `lifecyclestage` to the trigger's `properties:`"),
        "{said}"
    );
}
