//! Deals with line items, end to end through the binary against the HubSpot sandbox: products
//! as a prerequisite (`transfer_products_first`), a missing product failing its record alone,
//! prerequisites failing their dependents, and a kill -9 mid-transaction that creates nothing
//! twice.

mod common;

use common::{poll_until, rivulet};
use rivulet_runtime::state::{FailureStatus, SqliteStore, StateStore};
use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A flows folder wired to a sandbox, with an orders file.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(sandbox_url: &str, connection_extra: &str, flow: &str) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        std::fs::create_dir_all(flows.join("data")).unwrap();
        std::fs::write(
            flows.join("connections.yaml"),
            format!(
                "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {sandbox_url}\n      search_per_second: 50\n      throttle: {{ limit: 1000, per: 10s }}\n      timeout: 5s\n{connection_extra}"
            ),
        )
        .unwrap();
        std::fs::write(flows.join("orders.yaml"), flow).unwrap();
        Workspace { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write_orders(&self, orders: &[Value]) {
        let text: String = orders.iter().map(|o| format!("{o}\n")).collect();
        std::fs::write(self.path("flows/data/orders.jsonl"), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.args(args)
            .env("HUBSPOT_TOKEN", "test-token")
            .env("RIVULET_LOG", "warn")
            .env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, extra: &[&str]) -> Command {
        let flows = self.path("flows");
        let state = self.path("state.db");
        let mut cmd = self.command(&["run"]);
        cmd.arg(&flows)
            .arg("--state")
            .arg(&state)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra);
        cmd
    }

    fn run_once(&self) -> Output {
        let out = self.run(&["--once"]).output().unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.path("state.db")).await.unwrap()
    }
}

/// The deals flow of the README: a deal per order, its line items from the order's lines.
fn deals_flow(deal_extra: &str, items_extra: &str, more_actions: &str) -> String {
    format!(
        r#"name: orders
source:
  file: {{ path: data/orders.jsonl, format: jsonl }}
mapping:
  dealname: "Order {{{{record.order_no}}}}"
  external_id: "order-{{{{record.order_no}}}}"
  amount: {{ path: $.total, type: number }}
  dealstage: "{{{{record.stage}}}}"
  pipeline: default
actions:
  - hubspot:
      name: deal
      connection: hubspot
      operation: create
      object: deal
      match_on: external_id
{deal_extra}  - hubspot:
      name: line_items
      connection: hubspot
      operation: create
      object: line_item
      associate_with: [deal]
      line_items:
        path: $.lines
        mapping:
          hs_sku: "{{{{record.sku}}}}"
          name: "{{{{record.title}}}}"
          quantity: {{ path: $.qty, type: number }}
          price: {{ path: $.price, type: number }}
{items_extra}{more_actions}"#
    )
}

/// `count` orders, order `n` with `n % 3 + 1` lines over the SKUs `skus` (in turn).
fn orders(from: usize, count: usize, skus: &[&str]) -> Vec<Value> {
    (from..from + count)
        .map(|n| {
            let lines: Vec<Value> = (0..n % 3 + 1)
                .map(|k| {
                    let sku = skus[(n + k) % skus.len()];
                    json!({"sku": sku, "title": format!("Item {sku}"), "qty": k + 1, "price": 10 + k})
                })
                .collect();
            json!({"order_no": n, "total": 100 + n, "stage": "closedwon", "lines": lines})
        })
        .collect()
}

fn seed_products(sb: &Sandbox, skus: &[&str]) -> HashMap<String, String> {
    let records: Vec<Value> = skus
        .iter()
        .map(|s| json!({"name": format!("Seeded {s}"), "hs_sku": s, "price": "5"}))
        .collect();
    let ids = sb
        .store()
        .seed(SeedSpec::records("products", records))
        .unwrap();
    skus.iter().map(|s| s.to_string()).zip(ids).collect()
}

/// The products of the sandbox by SKU (each SKU's ids).
fn products_by_sku(sb: &Sandbox) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for p in sb.store().records("products").unwrap() {
        let sku = p["properties"]["hs_sku"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.entry(sku)
            .or_default()
            .push(p["id"].as_str().unwrap().to_string());
    }
    out
}

/// The ids of the records of `to` associated with `record` (as the sandbox renders them).
fn associated(record: &Value, to: &str) -> Vec<String> {
    record["associations"][to]["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| match &r["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that HubSpot holds exactly the deals and line items `orders` call for: one deal per
/// order (by `external_id`), each with exactly its lines (product, quantity), and each line item
/// on exactly one deal.
fn assert_exactly(sb: &Sandbox, orders: &[Value]) {
    let products = products_by_sku(sb);
    for (sku, ids) in &products {
        assert_eq!(ids.len(), 1, "SKU {sku} has {} products", ids.len());
    }
    let deals = sb.store().records("deals").unwrap();
    assert_eq!(deals.len(), orders.len(), "one deal per order");
    let items = sb.store().records("line_items").unwrap();
    let wanted: usize = orders
        .iter()
        .map(|o| o["lines"].as_array().unwrap().len())
        .sum();
    assert_eq!(items.len(), wanted, "one line item per order line");
    let items_by_id: HashMap<String, &Value> = items
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i))
        .collect();
    for order in orders {
        let external = format!("order-{}", order["order_no"]);
        let deal = sb
            .store()
            .find("deals", "external_id", &external)
            .unwrap()
            .unwrap_or_else(|| panic!("no deal {external}"));
        let deal_id = deal["id"].as_str().unwrap().to_string();
        let mut have: Vec<(String, String)> = associated(&deal, "line_items")
            .iter()
            .map(|id| {
                let item = items_by_id[id];
                assert_eq!(
                    associated(item, "deals"),
                    vec![deal_id.clone()],
                    "line item {id} is on its deal only"
                );
                let p = &item["properties"];
                (
                    p["hs_product_id"].as_str().unwrap().to_string(),
                    p["quantity"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> = order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let sku = l["sku"].as_str().unwrap();
                (products[sku][0].clone(), l["qty"].to_string())
            })
            .collect();
        have.sort();
        want.sort();
        assert_eq!(have, want, "the line items of {external}");
    }
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_first_then_deals_and_line_items_in_batch_calls_on_both_api_versions() {
    for version in ["v3", "2026-03"] {
        let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let seeded = seed_products(&sb, &["MUG-01"]);
        let ws = Workspace::new(
            &sb.url(),
            &format!("      api_version: \"{version}\"\n      transfer_products_first: true\n"),
            &deals_flow("", "", ""),
        );
        // 10 orders over one SKU HubSpot has and two it does not.
        let orders = orders(0, 10, &["MUG-01", "TEE-M", "CAP-9"]);
        ws.write_orders(&orders);
        let out = ws.run_once();
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_exactly(&sb, &orders);
        let products = products_by_sku(&sb);
        assert_eq!(products.len(), 3, "{version}: the two missing SKUs created");
        assert_eq!(products["MUG-01"], vec![seeded["MUG-01"].clone()], "reused");
        // One search for the SKUs, one batch create each for the products, the deals and
        // the line items (with their associations): four calls for the page.
        let store = sb.store();
        assert_eq!(store.endpoint_count("search"), 1, "{version}");
        assert_eq!(store.endpoint_count("batch_create"), 3, "{version}");
        assert_eq!(store.endpoint_count("associations_batch"), 0, "{version}");
        // (A service also probes the connection at start with a one-record list; `--once`
        // does not, but a probe is no call of the page's.)
        let endpoints = store.stats().endpoints;
        let calls: u64 = endpoints
            .iter()
            .filter(|(e, _)| e.as_str() != "list")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(calls, 4, "{version}: {endpoints:?}");
        let runs = ws.store().await.runs(Some("orders"), 5).await.unwrap();
        assert_eq!(runs[0].counts.succeeded, 10);
        assert_eq!(
            runs[0].counts.api_calls, 4,
            "{version}: the run counts its calls"
        );
        // The file is read: nothing more happens on the next run.
        assert!(ws.run_once().status.success());
        assert_exactly(&sb, &orders);
        assert_eq!(sb.store().endpoint_count("batch_create"), 3);
        sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserted_deals_have_their_line_items_read_in_one_batch_call_per_page() {
    for version in ["v3", "2026-03"] {
        let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
        seed_products(&sb, &["MUG-01", "TEE-M", "CAP-9"]);
        let flow = deals_flow("", "", "").replace(
            "operation: create\n      object: deal\n",
            "operation: upsert\n      object: deal\n",
        );
        let ws = Workspace::new(
            &sb.url(),
            &format!("      api_version: \"{version}\"\n"),
            &flow,
        );
        let first = orders(0, 10, &["MUG-01", "TEE-M", "CAP-9"]);
        ws.write_orders(&first);
        assert!(ws.run_once().status.success(), "{version}");
        assert_exactly(&sb, &first);
        // An upserted deal may be older than the run, so what it has is read first: one batch
        // read of associations for the page's ten deals, never a listing per deal.
        assert_eq!(
            sb.store().endpoint_count("associations_batch"),
            1,
            "{version}"
        );
        assert_eq!(sb.store().endpoint_count("associations"), 0, "{version}");

        // The same orders again, new totals, and one more line on order 0: the deals are
        // updated, what they have is read in one call, and only the new line is created.
        let mut second = first.clone();
        for o in &mut second {
            o["total"] = json!(o["total"].as_u64().unwrap() + 1000);
        }
        second[0]["lines"]
            .as_array_mut()
            .unwrap()
            .push(json!({"sku": "CAP-9", "title": "Item CAP-9", "qty": 7, "price": 12}));
        std::fs::remove_file(ws.path("flows/data/orders.jsonl")).unwrap();
        ws.write_orders(&second);
        let out = ws.run_once();
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_exactly(&sb, &second);
        let store = sb.store();
        assert_eq!(
            store.endpoint_count("associations_batch"),
            2,
            "{version}: one batch read for the page's ten deals"
        );
        assert_eq!(
            store.endpoint_count("associations"),
            0,
            "{version}: no listing per deal"
        );
        sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_products_first_a_missing_sku_fails_its_record_only_and_replays() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    seed_products(&sb, &["MUG-01", "TEE-M"]);
    let ws = Workspace::new(&sb.url(), "", &deals_flow("", "", ""));
    let mut all = orders(0, 6, &["MUG-01", "TEE-M"]);
    all[3]["lines"][0]["sku"] = json!("GONE-9");
    ws.write_orders(&all);
    let out = ws.run_once();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a record failed: {stderr}");
    assert!(stderr.contains("GONE-9"), "{stderr}");
    // The others went through; no product was created; the failed order has no deal.
    assert_eq!(sb.store().count("products").unwrap(), 2);
    assert_eq!(sb.store().count("deals").unwrap(), 5);
    assert!(
        sb.store()
            .find("deals", "external_id", "order-3")
            .unwrap()
            .is_none(),
        "nothing of the failed record was written"
    );
    let failures = ws
        .store()
        .await
        .failures(Some("orders"), FailureStatus::Failed, 10)
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);
    let f = &failures[0].failure;
    assert_eq!(f.action, Some(1), "failed at the line items action");
    assert!(
        f.error.contains("line item 1 (SKU `GONE-9`)")
            && f.error.contains("HubSpot has no product with this SKU")
            && f.error.contains("transfer_products_first: true")
            && f.error.contains("no action wrote this record"),
        "{}",
        f.error
    );
    // Once the product exists, a replay makes the deal and its line items.
    seed_products(&sb, &["GONE-9"]);
    let out = ws
        .command(&["replay", "--flow", "orders", "--state"])
        .arg(ws.path("state.db"))
        .arg(ws.path("flows"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly(&sb, &all);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_prerequisite_fails_its_dependents_and_spares_the_rest() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    seed_products(&sb, &["MUG-01"]);
    // A third action that needs no other: a contact per order, whatever became of the deal;
    // a file that keeps the default (every earlier action must have succeeded); a file that
    // needs none, and one that needs only it and the contact.
    let more = "  - hubspot:\n      name: buyer\n      connection: hubspot\n      operation: upsert\n      object: contact\n      match_on: email\n      properties: [email]\n      prerequisites: []\n  - file: { path: ../out/done.jsonl }\n  - file: { name: archive, path: ../out/all.jsonl, prerequisites: [] }\n  - file: { path: ../out/buyers.jsonl, prerequisites: [archive, buyer] }\n";
    let flow = deals_flow(
        "      properties: [dealname, external_id, amount, dealstage, pipeline]\n",
        "",
        more,
    )
    .replace(
        "  pipeline: default\n",
        "  pipeline: default\n  email: \"buyer{{record.order_no}}@shop.example\"\n",
    );
    let ws = Workspace::new(&sb.url(), "", &flow);
    let mut all = orders(0, 4, &["MUG-01"]);
    all[2]["stage"] = json!("no_such_stage");
    ws.write_orders(&all);
    let out = ws.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.store().count("deals").unwrap(), 3);
    assert_eq!(
        sb.store().count("contacts").unwrap(),
        4,
        "the action without prerequisites ran for every record"
    );
    let done = std::fs::read_to_string(ws.path("out/done.jsonl")).unwrap();
    assert_eq!(
        done.lines().count(),
        3,
        "the file only took whole transactions"
    );
    for file in ["out/all.jsonl", "out/buyers.jsonl"] {
        let lines = std::fs::read_to_string(ws.path(file)).unwrap();
        assert_eq!(
            lines.lines().count(),
            4,
            "{file}: its prerequisites held for every record"
        );
    }
    let failures = ws
        .store()
        .await
        .failures(Some("orders"), FailureStatus::Failed, 10)
        .await
        .unwrap();
    assert_eq!(failures.len(), 1, "one entry per record");
    let f = &failures[0].failure;
    assert_eq!(f.action, Some(0));
    assert!(
        f.error.contains("no_such_stage")
            && f.error.contains(
                "`line_items` (action 1) was not run: its prerequisite `deal` (action 0) failed"
            ),
        "{}",
        f.error
    );
    assert!(
        !f.error.contains("action 3"),
        "undeclared: not listed: {}",
        f.error
    );
    sb.shutdown().await;
}

/// Runs the deals flow on 600 orders (pages of 200) as a service, kills it (SIGKILL) once
/// `kill_when` holds for (deals, line items), runs it again until it is done, and checks that
/// HubSpot holds each deal and line item exactly once. Returns the line items made at the kill.
async fn kill_and_finish(kill_when: impl Fn(usize, usize) -> bool) -> (usize, usize) {
    let sb = Sandbox::start(SandboxConfig {
        latency: Duration::from_millis(40),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let skus = ["MUG-01", "TEE-M", "CAP-9", "PEN-2"];
    seed_products(&sb, &skus);
    // Line items 50 a call, so the first page's take several calls.
    let ws = Workspace::new(&sb.url(), "", &deals_flow("", "      batch_size: 50\n", ""));
    let all = orders(0, 600, &skus);
    ws.write_orders(&all);
    let mut child = ws
        .run(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count = |t: &str| sb.store().count(t).unwrap();
    let reached = poll_until(Duration::from_secs(60), || {
        kill_when(count("deals"), count("line_items"))
    })
    .await;
    child.kill().unwrap(); // SIGKILL: nothing flushed
    child.wait().unwrap();
    assert!(reached, "the runner never got there");
    let at_kill = (count("deals"), count("line_items"));
    for _ in 0..3 {
        ws.run_once();
        if count("deals") == 600
            && ws
                .store()
                .await
                .runs(Some("orders"), 10)
                .await
                .unwrap()
                .first()
                .is_some_and(|r| r.counts.failed == 0 && r.counts.read == 0)
        {
            break;
        }
    }
    assert_exactly(&sb, &all);
    assert!(
        ws.store()
            .await
            .failures(Some("orders"), FailureStatus::Failed, 10)
            .await
            .unwrap()
            .is_empty(),
        "no record failed"
    );
    sb.shutdown().await;
    at_kill
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_a_page_of_deals_and_its_line_items_creates_nothing_twice() {
    let lines_of_first_page: usize = orders(0, 200, &["x"])
        .iter()
        .map(|o| o["lines"].as_array().unwrap().len())
        .sum();
    // The first page's deals are made; killed before its line items are all made.
    let (deals, items) = kill_and_finish(|deals, _| deals >= 200).await;
    assert!(
        deals < 600 && items < lines_of_first_page,
        "killed mid-transaction ({deals} deals, {items} of {lines_of_first_page} line items)"
    );
    // Killed while the line items are being made: some are, some not.
    let (_, items) = kill_and_finish(|_, items| items > 0).await;
    assert!(
        items < lines_of_first_page,
        "killed mid-line-items ({items} of {lines_of_first_page} made)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_products_are_made_creates_none_twice_despite_search_lag() {
    // Search shows a new product only after 2 s: a restart must not take "not found" for
    // "not created".
    let sb = Sandbox::start(SandboxConfig {
        latency: Duration::from_millis(200),
        search_lag: Duration::from_secs(2),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new(
        &sb.url(),
        "      transfer_products_first: true\n",
        &deals_flow("", "", ""),
    );
    let all = orders(0, 20, &["MUG-01", "TEE-M", "CAP-9"]);
    ws.write_orders(&all);
    let mut child = ws
        .run(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reached = poll_until(Duration::from_secs(60), || {
        sb.store().count("products").unwrap() >= 3
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached, "the runner never created the products");
    assert!(
        sb.store().count("deals").unwrap() < 20,
        "killed before the deals were all made"
    );
    let out = ws.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly(&sb, &all);
    sb.shutdown().await;
}

#[test]
fn validate_reports_line_items_and_references_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connections.yaml"),
        "connections:\n  hubspot:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      api_version: \"2026-03\"\n",
    )
    .unwrap();
    let flow = r#"name: bad-deals
source:
  file: { path: orders.jsonl, format: jsonl }
mapping:
  amount: "{{record.total}}"
actions:
  - hubspot:
      name: deal
      connection: hubspot
      operation: create
      object: deal
  - hubspot:
      name: deal
      connection: hubspot
      operation: create
      object: line_item
      prerequisites: [dael, 7]
      associate_with: [items]
      line_items:
        path: $.lines[
        mapping:
          quantity: "{{record.qty"
  - hubspot:
      name: items
      connection: hubspot
      operation: update
      object: contact
      id: "{{record.id}}"
  - file:
      name: items
      path: out.jsonl
      prerequisites: [items, archve]
"#;
    std::fs::write(dir.path().join("bad.yaml"), flow).unwrap();
    let out = rivulet()
        .args(["validate", "--format", "json"])
        .arg(dir.path())
        .env("HUBSPOT_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: HashSet<(String, u64, u64)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
            )
        })
        .collect();
    let messages: Vec<String> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}: {}", d["code"], d["message"]))
        .collect();
    for (code, line, column) in [
        ("missing_required_property", 10, 18), // a deal needs `dealname`
        ("duplicate_action_name", 13, 13),
        ("unknown_action", 17, 23), // `dael`: did you mean `deal`?
        ("unknown_action", 17, 29), // 7: there are 4 actions
        ("action_order", 18, 24),   // `items` comes after
        ("missing_deal", 19, 7),
        ("invalid_path", 20, 15),
        ("invalid_mapping", 22, 34), // at the unclosed `{{`
        ("missing_sku", 21, 9),
        ("duplicate_action_name", 30, 13), // a file action's name, checked like any other
        ("unknown_action", 32, 30),        // `archve`
    ] {
        assert!(
            found.contains(&(code.to_string(), line, column)),
            "no {code} at {line}:{column} in {messages:#?}\n{found:?}"
        );
    }
    let hint = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "unknown_action" && d["line"] == 17 && d["column"] == 23)
        .unwrap();
    assert_eq!(hint["hint"], "did you mean `deal`?");
}
