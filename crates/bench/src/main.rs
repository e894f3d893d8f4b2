//! `rivulet-bench`: Rivulet against a sandbox that enforces HubSpot's ceilings (100 requests
//! per rolling 10 s, 5 searches per second), printed as one table, each row with its limit.
//! Figures are printed, never asserted: speed is the bench's business, not the tests'.
//!
//! ```sh
//! cargo build --release -p rivulet -p rivulet-bench && target/release/rivulet-bench
//! ```
//!
//! The runs go through the release `rivulet` binary beside this one (or `RIVULET_BIN`), as a
//! user runs it; the upsert's client row and the mapping row run in this process. Options:
//! `--latency-ms N` (the sandbox's added latency per request, default 20) and `--only NAME`
//! (`upsert`, `backfill`, `incremental`, `idle`, `rss`, `validate`, `mapping`; repeatable).

use chrono::Utc;
use indexmap::IndexMap;
use rivulet_hubspot::{Client, ClientConfig, ObjectType, Throttle, WriteInput};
use rivulet_sandbox::{RateLimit, Sandbox, SandboxConfig, SeedSpec};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// HubSpot's burst limit on Free/Starter (and the sandbox's): requests per window.
const LIMIT: u32 = 100;
/// Its window.
const WINDOW: Duration = Duration::from_secs(10);
/// Search requests per second per account.
const SEARCHES: u32 = 5;
/// Records per batch write.
const BATCH: u32 = 100;

/// One line of the table.
struct Row {
    measure: String,
    result: String,
    limit: String,
}

struct Bench {
    exe: PathBuf,
    latency: Duration,
    rows: Vec<Row>,
}

fn row(measure: impl Into<String>, result: impl Into<String>, limit: impl Into<String>) -> Row {
    Row {
        measure: measure.into(),
        result: result.into(),
        limit: limit.into(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// A folder of flows and the connection to a sandbox, removed when dropped.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// `connection`: extra settings of the `hubspot` connection.
    fn new(url: &str, connection: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let flows = dir.path().join("flows");
        std::fs::create_dir_all(&flows).expect("the flows folder");
        std::fs::write(
            flows.join("connections.yaml"),
            format!(
                "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {url}\n{connection}"
            ),
        )
        .expect("connections.yaml");
        Workspace { dir }
    }

    fn flows(&self) -> PathBuf {
        self.dir.path().join("flows")
    }

    fn flow(&self, name: &str, text: &str) {
        std::fs::write(self.flows().join(format!("{name}.yaml")), text).expect("a flow file");
    }

    fn lines(&self, rel: &str) -> usize {
        std::fs::read_to_string(self.flows().join(rel)).map_or(0, |t| t.lines().count())
    }

    fn command(&self, exe: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.arg("run")
            .arg(self.flows())
            .arg("--state")
            .arg(self.dir.path().join("state.db"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("HUBSPOT_TOKEN", "bench")
            .env("RIVULET_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// `rivulet run --once`, timed.
    async fn run_once(&self, exe: &Path) -> Duration {
        let mut cmd = self.command(exe, &["--once"]);
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let status = cmd.status().expect("rivulet runs");
            if !status.success() {
                eprintln!("warning: rivulet run --once exited with {status}");
            }
            start.elapsed()
        })
        .await
        .expect("the run's thread")
    }
}

fn trigger(name: &str, on: &str, start: &str, extra: &str) -> String {
    format!(
        "name: {name}\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: {on}\n    object: contact\n    poll_every: 15s\n    start_from: {start}\n    settle: 1s\n{extra}    properties: [email, firstname, lastname]\nmapping:\n  id: \"{{{{record.id}}}}\"\n  email: \"{{{{lowercase record.properties.email}}}}\"\n  name: \"{{{{record.properties.firstname}}}} {{{{record.properties.lastname}}}}\"\n  updated: \"{{{{record.updatedAt}}}}\"\nactions:\n  - file: {{ path: out/{name}.jsonl }}\n"
    )
}

/// A value from `/proc/PID/status`, in kB.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Waits for `child`, sampling its peak RSS (VmHWM) until it exits.
fn peak_rss_kb(mut child: Child) -> (u64, Duration) {
    let start = Instant::now();
    let mut peak = 0;
    loop {
        if let Some(kb) = status_kb(child.id(), "VmHWM:") {
            peak = peak.max(kb);
        }
        if child.try_wait().ok().flatten().is_some() {
            return (peak, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Bench {
    /// The sandbox as HubSpot limits it (and this bench's latency).
    async fn limited(&self) -> Sandbox {
        Sandbox::start(SandboxConfig {
            rate_limit: Some(RateLimit::new(LIMIT, WINDOW)),
            search_per_second: Some(SEARCHES),
            latency: self.latency,
            ..SandboxConfig::default()
        })
        .await
        .expect("the sandbox starts")
    }

    /// A sandbox without limits (for memory and polling figures).
    async fn unlimited(&self) -> Sandbox {
        Sandbox::start(SandboxConfig {
            clock_offset_ms: -10_000,
            ..SandboxConfig::default()
        })
        .await
        .expect("the sandbox starts")
    }

    /// 20,000 contacts upserted by email: by the client in this process (200 batch calls as
    /// fast as the window lets them go), then by a flow (`run --once`, a file source).
    async fn upsert(&mut self) {
        const RECORDS: usize = 20_000;
        let floor = WINDOW.as_secs_f64()
            * ((RECORDS as f64 / f64::from(BATCH)) / f64::from(LIMIT) - 1.0).max(0.0);
        let ceiling = f64::from(BATCH) * f64::from(LIMIT) / WINDOW.as_secs_f64();
        let sb = self.limited().await;
        let mut config = ClientConfig::with_token("bench").base_url(sb.url());
        config.throttle = Throttle {
            limit: LIMIT,
            per: WINDOW,
        };
        let client = Client::new(config).expect("a client");
        let inputs: Vec<(String, WriteInput)> = (0..RECORDS)
            .map(|i| {
                let email = format!("c{i}@bench.example");
                let input = WriteInput::new([
                    ("email", email.clone()),
                    ("firstname", format!("First{i}")),
                    ("lastname", format!("Last{i}")),
                ]);
                (email, input)
            })
            .collect();
        let start = Instant::now();
        let out = client
            .batch_upsert(&ObjectType::Contacts, "email", inputs)
            .await;
        let took = start.elapsed();
        let ok = out.iter().filter(|o| o.is_success()).count();
        let calls = sb.store().endpoint_count("batch_upsert");
        let limited = sb.store().stats().rate_limited;
        self.rows.push(row(
            format!("upsert {RECORDS} contacts, client ({ok} ok)"),
            format!(
                "{}, {:.0} records/s, {:.1} calls/100 records, {limited} × 429",
                secs(took),
                RECORDS as f64 / took.as_secs_f64(),
                100.0 * calls as f64 / RECORDS as f64
            ),
            format!(
                "≤ 11 s (window floor {floor:.0} s + a round trip), burst then {ceiling:.0} records/s, 1.0 calls/100, 0 × 429"
            ),
        ));
        sb.shutdown().await;

        let sb = self.limited().await;
        let ws = Workspace::new(&sb.url(), "");
        let mut text = String::with_capacity(RECORDS * 64);
        for i in 0..RECORDS {
            text.push_str(&format!(
                "{{\"email\":\"f{i}@bench.example\",\"first\":\"First{i}\",\"last\":\"Last{i}\"}}\n"
            ));
        }
        std::fs::write(ws.flows().join("contacts.jsonl"), text).expect("the input file");
        ws.flow(
            "upsert",
            "name: upsert\nschedule:\n  every: 1h\nsource:\n  file: { path: contacts.jsonl }\nmapping:\n  email: \"{{record.email}}\"\n  firstname: \"{{record.first}}\"\n  lastname: \"{{record.last}}\"\nactions:\n  - hubspot: { connection: hubspot, operation: upsert, object: contact, match_on: email }\n",
        );
        let took = ws.run_once(&self.exe).await;
        let calls = sb.store().endpoint_count("batch_upsert");
        let stats = sb.store().stats();
        let records = sb.store().count("contacts").unwrap_or(0);
        self.rows.push(row(
            format!(
                "upsert {RECORDS} contacts, flow `run --once` ({records} written, {} calls in all)",
                stats.requests
            ),
            format!(
                "{}, {:.0} records/s, {:.1} calls/100 records, {} × 429",
                secs(took),
                RECORDS as f64 / took.as_secs_f64(),
                100.0 * calls as f64 / RECORDS as f64,
                stats.rate_limited
            ),
            "≤ 11 s, 1.0 calls/100, 0 × 429".to_string(),
        ));
        sb.shutdown().await;
    }

    /// A trigger from `beginning` over 20,000 contacts: listed, then handed over to search.
    async fn backfill(&mut self) {
        const RECORDS: usize = 20_000;
        let sb = self.limited().await;
        let at = sb.clock().now_ms() - 86_400_000;
        sb.store()
            .seed(SeedSpec::generated("contacts", RECORDS).at(at).step(1000))
            .expect("seeded");
        let ws = Workspace::new(&sb.url(), "");
        ws.flow("all", &trigger("all", "new_record", "beginning", ""));
        let took = ws.run_once(&self.exe).await;
        let stats = sb.store().stats();
        let list = sb.store().endpoint_count("list");
        let search = sb.store().endpoint_count("search");
        self.rows.push(row(
            format!(
                "backfill {RECORDS} contacts, `start_from: beginning` ({} delivered)",
                ws.lines("out/all.jsonl")
            ),
            format!(
                "{}, {} calls ({list} list, {search} search), {} × 429",
                secs(took),
                stats.requests,
                stats.rate_limited
            ),
            "≥ 10 s (200 list calls, 100 per rolling 10 s), ≤ 22 s, ≤ 205 calls".to_string(),
        ));
        sb.shutdown().await;
    }

    /// 50 changes read after a bulk change of 20,000 contacts; then the late pass over the
    /// bulk's window (each record's second and last read).
    async fn incremental(&mut self) {
        const RECORDS: usize = 20_000;
        const LATE_AFTER: u64 = 60;
        // Past the flow's `settle: 1s`: what was just changed is due.
        let settled = || tokio::time::sleep(Duration::from_millis(1_200));
        let sb = self.limited().await;
        let at = sb.clock().now_ms() - 86_400_000;
        let ids = sb
            .store()
            .seed(SeedSpec::generated("contacts", RECORDS).at(at).step(1000))
            .expect("seeded");
        let ws = Workspace::new(&sb.url(), "");
        ws.flow(
            "changes",
            &trigger(
                "changes",
                "new_or_updated_record",
                "now",
                &format!("    late_after: {LATE_AFTER}s\n"),
            ),
        );
        ws.run_once(&self.exe).await;
        let props = serde_json::Map::new();
        for id in &ids {
            sb.store()
                .touch("contacts", id, &props, None)
                .expect("touched");
        }
        settled().await;
        let read_at = Instant::now();
        let before = sb.store().endpoint_count("search");
        let bulk = ws.run_once(&self.exe).await;
        let bulk_calls = sb.store().endpoint_count("search") - before;
        let bulk_delivered = ws.lines("out/changes.jsonl");
        let changed: Vec<&String> = ids.iter().step_by(RECORDS / 50).take(50).collect();
        for id in &changed {
            sb.store()
                .touch("contacts", id, &props, None)
                .expect("touched");
        }
        settled().await;
        let before = sb.store().endpoint_count("search");
        let took = ws.run_once(&self.exe).await;
        let calls = sb.store().endpoint_count("search") - before;
        let got = ws.lines("out/changes.jsonl") - bulk_delivered;
        self.rows.push(row(
            format!("bulk change of {RECORDS} contacts, read at its leading edge ({bulk_delivered} delivered)"),
            format!("{bulk_calls} search calls, {}", secs(bulk)),
            format!("{} calls of 200 at {SEARCHES}/s: ≥ {} s", RECORDS / 200, RECORDS / 200 / SEARCHES as usize),
        ));
        self.rows.push(row(
            format!("incremental read of 50 changes after it ({got} delivered)"),
            format!("{calls} search calls, {}", secs(took)),
            "≤ 3 calls, each change exactly once".to_string(),
        ));
        // The late pass reads the bulk's window `late_after` after its leading edge.
        let due = Duration::from_secs(LATE_AFTER + 1).saturating_sub(read_at.elapsed());
        tokio::time::sleep(due).await;
        let before = sb.store().endpoint_count("search");
        let delivered = ws.lines("out/changes.jsonl");
        let took = ws.run_once(&self.exe).await;
        let calls = sb.store().endpoint_count("search") - before;
        let again = ws.lines("out/changes.jsonl") - delivered;
        self.rows.push(row(
            format!("late pass over those windows, `late_after: {LATE_AFTER}s` ({again} delivered again)"),
            format!("{calls} search calls, {}", secs(took)),
            "each record read at most twice, none delivered twice".to_string(),
        ));
        sb.shutdown().await;
    }

    /// Searches per idle poll with 1, 10 and 100 flows watching one object and event.
    async fn idle(&mut self) {
        for n in [1usize, 10, 100] {
            let sb = self.unlimited().await;
            let ws = Workspace::new(&sb.url(), "      search_per_second: 200\n");
            for i in 0..n {
                let name = format!("watch-{i:03}");
                ws.flow(&name, &trigger(&name, "new_record", "now", ""));
            }
            ws.run_once(&self.exe).await;
            // Past `settle`, so the next poll's window is not empty.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let before = sb.store().endpoint_count("search");
            ws.run_once(&self.exe).await;
            let calls = sb.store().endpoint_count("search") - before;
            self.rows.push(row(
                format!("idle poll, {n} flows on one object"),
                format!("{calls} search per poll"),
                "1 per shared group".to_string(),
            ));
            sb.shutdown().await;
        }
    }

    /// Peak RSS of `run --once` delivering 100,000 records; RSS of 100 idle flows.
    async fn rss(&mut self) {
        const RECORDS: usize = 100_000;
        let sb = self.unlimited().await;
        let at = sb.clock().now_ms() - 86_400_000;
        sb.store()
            .seed(SeedSpec::generated("contacts", RECORDS).at(at).step(500))
            .expect("seeded");
        let ws = Workspace::new(
            &sb.url(),
            "      search_per_second: 200\n      throttle: { limit: 10000, per: 10s }\n",
        );
        ws.flow("all", &trigger("all", "new_record", "beginning", ""));
        let cmd = ws.command(&self.exe, &["--once"]);
        let (peak, took) = tokio::task::spawn_blocking(move || {
            let mut cmd = cmd;
            peak_rss_kb(cmd.spawn().expect("rivulet runs"))
        })
        .await
        .expect("the run's thread");
        let lines = ws.lines("out/all.jsonl");
        self.rows.push(row(
            format!("peak RSS, {lines} records through `run --once` (limits off)"),
            format!(
                "{} ({}, {:.0} records/s)",
                mb(peak),
                secs(took),
                lines as f64 / took.as_secs_f64()
            ),
            "< 64 MB".to_string(),
        ));
        sb.shutdown().await;

        let sb = self.unlimited().await;
        let ws = Workspace::new(&sb.url(), "      search_per_second: 200\n");
        for i in 0..100 {
            let on = ["new_record", "new_or_updated_record"][i % 2];
            let name = format!("idle-{i:03}");
            ws.flow(&name, &trigger(&name, on, "now", ""));
        }
        let mut child = ws.command(&self.exe, &[]).spawn().expect("rivulet runs");
        tokio::time::sleep(Duration::from_secs(12)).await;
        let rss = status_kb(child.id(), "VmRSS:").unwrap_or(0);
        let _ = child.kill();
        let _ = child.wait();
        self.rows.push(row(
            "idle RSS, 100 flows (after 12 s)",
            mb(rss),
            "< 30 MB".to_string(),
        ));
        sb.shutdown().await;
    }

    /// `rivulet validate` of 1,000 generated flows (median of 5).
    fn validate(&mut self) {
        const FLOWS: usize = 1_000;
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(
            dir.path().join("connections.yaml"),
            "connections:\n  hubspot:\n    hubspot:\n      token: ${HUBSPOT_TOKEN}\n      daily_limit: 100000000\n  erp:\n    http:\n      base_url: https://erp.example.com\n      headers: { Authorization: \"Bearer ${ERP_TOKEN}\" }\n",
        )
        .expect("connections.yaml");
        for i in 0..FLOWS {
            let head = match i % 3 {
                0 => format!("trigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: {}s\n    properties: [email, firstname, lastname]\n", 10 + i % 50),
                1 => format!("schedule:\n  cron: \"*/{} * * * *\"\nsource:\n  file: {{ path: data/in-{i}.csv }}\n", 1 + i % 30),
                _ => "schedule:\n  every: 1h\nsource:\n  http:\n    connection: erp\n    path: /customers\n    records: $.data\n".to_string(),
            };
            let action = match i % 2 {
                0 => {
                    "  - hubspot: { connection: hubspot, operation: upsert, object: contact, match_on: email }\n"
                }
                _ => "  - file: { path: out/x.jsonl }\n",
            };
            // A trigger's records are HubSpot's (`properties.*`); a source's are its own rows.
            let mapping = if i % 3 == 0 {
                "  email: \"{{lowercase record.properties.email}}\"\n  firstname: { path: $.properties.firstname }\n  lastname: { path: $.properties.lastname }\n  created: { path: $.createdAt, type: datetime }\n  tier: { path: $.properties.firstname, type: enumeration, map: { A: gold, B: silver }, default: silver }\n"
            } else {
                "  email: \"{{lowercase record.email}}\"\n  firstname: { path: $.first_name }\n  numberofemployees: { path: $.size, type: integer }\n  created: { path: $.created_at, type: datetime }\n  tier: { path: $.tier, type: enumeration, map: { A: gold, B: silver } }\n"
            };
            std::fs::write(
                dir.path().join(format!("flow-{i:04}.yaml")),
                format!("name: flow-{i:04}\n{head}mapping:\n{mapping}actions:\n{action}"),
            )
            .expect("a flow file");
        }
        let mut times = Vec::new();
        let mut ok = true;
        for _ in 0..5 {
            let start = Instant::now();
            let out = Command::new(&self.exe)
                .arg("validate")
                .arg(dir.path())
                .args(["--format", "json"])
                .env("HUBSPOT_TOKEN", "x")
                .env("ERP_TOKEN", "x")
                .output()
                .expect("rivulet validate runs");
            times.push(start.elapsed());
            ok &= out.status.success();
        }
        times.sort();
        self.rows.push(row(
            format!(
                "`validate` of {FLOWS} flows{}",
                if ok { "" } else { " (FAILED)" }
            ),
            secs(times[times.len() / 2]),
            "< 1 s".to_string(),
        ));
    }

    /// A 20-field mapping (15 paths, 5 templates with helpers) on one core.
    fn mapping(&mut self) {
        use rivulet_mapping::{Context, FieldSpec, Mapping, OutputMode};
        let spec = serde_json::json!({
            "name": { "path": "$.company_name" },
            "domain": { "path": "$.website", "trim": true },
            "phone": { "path": "$.contact.phone" },
            "city": { "path": "$.address.city" },
            "zip": { "path": "$.address.zip" },
            "country": { "path": "$.address.country" },
            "numberofemployees": { "path": "$.employees", "type": "integer" },
            "annualrevenue": { "path": "$.revenue", "type": "number" },
            "is_customer": { "path": "$.active", "type": "bool" },
            "founded": { "path": "$.founded", "type": "date" },
            "erp_updated": { "path": "$.updated_at", "type": "datetime" },
            "company_category": {
                "path": "$.segment", "type": "enumeration",
                "map": { "SMB": "small_business", "ENT": "enterprise" }
            },
            "industries": { "path": "$.industries", "type": "multi_enumeration" },
            "erp_id": { "path": "$.id" },
            "first_sku": { "path": "$.lines[0].sku" },
            "display_name": "{{uppercase record.company_name}} ({{record.address.country}})",
            "slug": "{{lowercase (replace record.company_name \" \" \"-\")}}",
            "contact_first": "{{first (split record.contact.name \" \")}}",
            "created_day": { "template": "{{date_format record.updated_at \"%Y-%m-%d\"}}", "type": "date" },
            "price": { "template": "{{number_format record.revenue 2}}", "type": "number" },
        });
        let fields: IndexMap<String, FieldSpec> = serde_json::from_value(spec).expect("a mapping");
        let mapping = Mapping::compile(&fields).expect("the mapping compiles");
        let record = serde_json::json!({
            "id": "C-10042",
            "company_name": "Acme Tools GmbH",
            "website": " acme-tools.example ",
            "contact": { "name": "Ada Lovelace", "phone": "+44 20 7946 0000" },
            "address": { "city": "Berlin", "zip": "10115", "country": "DE" },
            "employees": 250,
            "revenue": 12500000.5,
            "active": "yes",
            "founded": "1999-04-01",
            "updated_at": "2024-05-01T10:30:00Z",
            "segment": "SMB",
            "industries": ["manufacturing", "retail"],
            "lines": [{ "sku": "A-1", "qty": 2 }, { "sku": "B-2", "qty": 1 }]
        });
        let ctx = Context::new("bench", "run-1", Utc::now());
        let n = 200_000;
        let start = Instant::now();
        let mut ok = 0;
        for _ in 0..n {
            ok += usize::from(
                std::hint::black_box(mapping.apply(&record, &ctx, OutputMode::Wire)).is_ok(),
            );
        }
        let took = start.elapsed();
        self.rows.push(row(
            format!("mapping, 20 fields ({ok} of {n} records mapped)"),
            format!("{:.0} records/s on one core", n as f64 / took.as_secs_f64()),
            "≥ 100,000 records/s".to_string(),
        ));
    }

    fn print(&self) {
        let widths = [
            self.rows
                .iter()
                .map(|r| r.measure.chars().count())
                .max()
                .unwrap_or(0)
                .max(7),
            self.rows
                .iter()
                .map(|r| r.result.chars().count())
                .max()
                .unwrap_or(0)
                .max(6),
            self.rows
                .iter()
                .map(|r| r.limit.chars().count())
                .max()
                .unwrap_or(0)
                .max(5),
        ];
        let line = |a: &str, b: &str, c: &str| {
            let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w - s.chars().count()));
            println!(
                "| {} | {} | {} |",
                pad(a, widths[0]),
                pad(b, widths[1]),
                pad(c, widths[2])
            );
        };
        line("measure", "result", "limit");
        println!(
            "|{}|{}|{}|",
            "-".repeat(widths[0] + 2),
            "-".repeat(widths[1] + 2),
            "-".repeat(widths[2] + 2)
        );
        for r in &self.rows {
            line(&r.measure, &r.result, &r.limit);
        }
    }
}

fn rivulet_exe() -> PathBuf {
    if let Some(path) = std::env::var_os("RIVULET_BIN") {
        return PathBuf::from(path);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("rivulet")));
    match beside {
        Some(p) if p.exists() => p,
        _ => {
            eprintln!(
                "rivulet-bench: no `rivulet` binary beside this one; build both with `cargo build --release -p rivulet -p rivulet-bench` or set RIVULET_BIN"
            );
            std::process::exit(2);
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut latency_ms = 20u64;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--latency-ms" => {
                latency_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(latency_ms)
            }
            "--only" => only.extend(args.next()),
            // `cargo bench` and friends pass their own flags.
            _ => {}
        }
    }
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut bench = Bench {
        exe: rivulet_exe(),
        latency: Duration::from_millis(latency_ms),
        rows: Vec::new(),
    };
    println!(
        "rivulet-bench: sandbox at {LIMIT} requests / {} s rolling, {SEARCHES} searches/s, {latency_ms} ms latency; connection defaults (throttle {LIMIT}/{} s, 5 connections, 5 batches); {} cores",
        WINDOW.as_secs(),
        WINDOW.as_secs(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if wanted("upsert") {
        bench.upsert().await;
    }
    if wanted("backfill") {
        bench.backfill().await;
    }
    if wanted("incremental") {
        bench.incremental().await;
    }
    if wanted("idle") {
        bench.idle().await;
    }
    if wanted("rss") {
        bench.rss().await;
    }
    if wanted("validate") {
        bench.validate();
    }
    if wanted("mapping") {
        bench.mapping();
    }
    println!();
    bench.print();
}
