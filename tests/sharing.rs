//! Several `rivulet run` processes on one flows directory and one PostgreSQL state: the work is
//! spread by leases, a crashed runner's work is taken over within the lease's time to live, a
//! runner paused past its lease cannot commit, and the runners share one rate budget.
//!
//! Needs a PostgreSQL server: `RIVULET_TEST_DATABASE_URL` (CI sets it and checks the server is
//! up). Without it these tests say so and pass without running. Each test works in a schema of
//! its own, dropped at the end.

mod common;

use common::{Service, until};
use rivulet_sandbox::{RateLimit, Sandbox, SandboxConfig, SeedSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
/// Short leases, so failover is quick in tests (the default is 15 s).
const TTL: &str = "2s";

/// A schema of its own in the test database, dropped when the test ends.
struct Database {
    url: String,
    admin: String,
    schema: String,
}

impl Database {
    async fn create(test: &str) -> Option<Database> {
        let Ok(admin) = std::env::var("RIVULET_TEST_DATABASE_URL") else {
            eprintln!(
                "SKIPPED {test}: set RIVULET_TEST_DATABASE_URL to run the multi-runner tests"
            );
            return None;
        };
        let schema = format!(
            "rivulet_sharing_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("the test database is reachable");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let separator = if admin.contains('?') { '&' } else { '?' };
        Some(Database {
            url: format!("{admin}{separator}options=-c%20search_path%3D{schema}"),
            admin,
            schema,
        })
    }

    async fn drop(self) {
        if let Ok((client, conn)) =
            tokio_postgres::connect(&self.admin, tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
                .await;
        }
    }
}

struct Workspace {
    dir: tempfile::TempDir,
    state: String,
}

impl Workspace {
    fn new(state: &str, connections: &str) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flows/data")).unwrap();
        std::fs::write(dir.path().join("flows/connections.yaml"), connections).unwrap();
        Workspace {
            dir,
            state: state.to_string(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    fn rivulet(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.args(args)
            .args(["--state", &self.state])
            .current_dir(self.dir.path())
            .env("HUBSPOT_TOKEN", "sharing-test-token")
            .env("RIVULET_LOG", "info")
            .env("NO_COLOR", "1");
        cmd
    }

    fn runner(&self) -> Service {
        let mut cmd = self.rivulet(&["run", "flows", "--lease-ttl", TTL, "--no-listen"]);
        cmd.env("RIVULET_LOG", "info");
        Service::start(cmd)
    }

    fn runners(&self) -> Value {
        let out = self
            .rivulet(&["runners", "flows", "--format", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// The live runners and how much work each holds.
fn work_per_runner(doc: &Value) -> Vec<(u64, usize)> {
    doc["runners"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "live")
        .map(|r| {
            (
                r["pid"].as_u64().unwrap(),
                r["work"].as_array().unwrap().len(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runners_share_sixty_flows_each_run_by_exactly_one() {
    let Some(db) = Database::create("three_runners_share_sixty_flows").await else {
        return;
    };
    let ws = Workspace::new(&db.url, "connections: {}\n");
    for i in 0..60 {
        ws.write(&format!("flows/data/in{i}.csv"), &format!("n\n{i}\n"));
        ws.write(
            &format!("flows/f{i}.yaml"),
            &format!(
                "name: f{i}\nschedule:\n  every: 1h\nsource:\n  file:\n    path: data/in{i}.csv\n    format: csv\nmapping:\n  n: \"{{{{record.n}}}}\"\nactions:\n  - file: {{ path: out/f{i}.jsonl }}\n"
            ),
        );
    }
    let runners: Vec<Service> = (0..3).map(|_| ws.runner()).collect();
    until("60 flows spread over 3 runners", || {
        let per = work_per_runner(&ws.runners());
        per.len() == 3 && per.iter().map(|(_, n)| n).sum::<usize>() == 60
    })
    .await;
    let per = work_per_runner(&ws.runners());
    for (pid, n) in &per {
        assert!(
            (19..=21).contains(n),
            "runner {pid} holds {n} of 60: {per:?}"
        );
    }
    until("every flow's record delivered", || {
        (0..60).all(|i| !lines(&ws.path(&format!("flows/out/f{i}.jsonl"))).is_empty())
    })
    .await;
    for runner in runners {
        let (code, _) = runner.terminate();
        assert_eq!(code, Some(0));
    }
    for i in 0..60 {
        assert_eq!(
            lines(&ws.path(&format!("flows/out/f{i}.jsonl"))).len(),
            1,
            "flow f{i} ran exactly once"
        );
    }
    // Stopped runners give their leases up.
    let doc = ws.runners();
    assert!(work_per_runner(&doc).is_empty(), "{doc}");
    db.drop().await;
}

/// A busy trigger: 3,000 contacts read 200 per search page, each page slowed by the sandbox,
/// written to a file.
fn busy_trigger(ws: &Workspace, sandbox: &str) {
    ws.write(
        "flows/connections.yaml",
        &format!(
            "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {sandbox}\n      search_per_second: 50\n      throttle: {{ limit: 1000, per: 10s }}\n"
        ),
    );
    ws.write(
        "flows/busy.yaml",
        "name: busy\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [email]\nmapping:\n  id: \"{{record.id}}\"\nactions:\n  - file: { path: out/busy.jsonl }\n",
    );
}

async fn slow_sandbox(records: usize) -> Sandbox {
    let sb = Sandbox::start(SandboxConfig {
        latency: Duration::from_millis(150),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let at = chrono::Utc::now().timestamp_millis() - 3_600_000;
    sb.store()
        .seed(SeedSpec::generated("contacts", records).at(at).step(10))
        .unwrap();
    sb
}

/// The pid of the runner holding the busy trigger's lease.
fn holder_of_busy(doc: &Value) -> Option<u32> {
    doc["runners"].as_array()?.iter().find_map(|r| {
        let holds = r["work"]
            .as_array()?
            .iter()
            .any(|w| w["lease"].as_str().is_some_and(|l| l.contains("contact")));
        holds.then(|| r["pid"].as_u64().map(|p| p as u32)).flatten()
    })
}

fn assert_exactly_once(path: &Path, expected: usize) {
    let all = lines(path);
    let mut ids: Vec<String> = all
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("whole JSON lines")["id"].to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (all.len(), ids.len()),
        (expected, expected),
        "every record exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_mid_page_is_taken_over_and_nothing_is_doubled() {
    let Some(db) = Database::create("a_killed_runner_mid_page").await else {
        return;
    };
    let sb = slow_sandbox(3000).await;
    let ws = Workspace::new(&db.url, "");
    busy_trigger(&ws, &sb.url());
    let first = ws.runner();
    let second = ws.runner();
    let out = ws.path("flows/out/busy.jsonl");
    until("the trigger under way", || {
        let n = lines(&out).len();
        n > 0 && n < 3000
    })
    .await;
    let doc = ws.runners();
    let holder = holder_of_busy(&doc).expect("someone holds the trigger");
    let (victim, survivor) = if holder == first.pid() {
        (first, second)
    } else {
        (second, first)
    };
    let killed_at = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-KILL", &holder.to_string()])
            .status()
            .unwrap()
            .success()
    );
    drop(victim);
    survivor.wait_for("took over poll of", WAIT);
    let failover = killed_at.elapsed();
    assert!(
        failover < Duration::from_secs(2) + Duration::from_secs(2),
        "taken over within the lease's time to live (plus one look): {failover:?}"
    );
    until("all 3,000 records", || lines(&out).len() >= 3000).await;
    let (code, _) = survivor.terminate();
    assert_eq!(code, Some(0));
    assert_exactly_once(&out, 3000);
    sb.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_paused_past_its_lease_cannot_commit() {
    let Some(db) = Database::create("a_runner_paused_past_its_lease").await else {
        return;
    };
    let sb = slow_sandbox(3000).await;
    let ws = Workspace::new(&db.url, "");
    busy_trigger(&ws, &sb.url());
    let first = ws.runner();
    let second = ws.runner();
    let out = ws.path("flows/out/busy.jsonl");
    until("the trigger under way", || {
        let n = lines(&out).len();
        n > 0 && n < 3000
    })
    .await;
    let holder = holder_of_busy(&ws.runners()).expect("someone holds the trigger");
    let (paused, other) = if holder == first.pid() {
        (first, second)
    } else {
        (second, first)
    };
    assert!(
        Command::new("kill")
            .args(["-STOP", &holder.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Its lease lapses; the other runner takes the work over and finishes it.
    other.wait_for("took over poll of", WAIT);
    until("all 3,000 records", || lines(&out).len() >= 3000).await;
    assert!(
        Command::new("kill")
            .args(["-CONT", &holder.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Resumed, it finds out it lost the lease before it writes or records anything more.
    paused.wait_for("another runner took", WAIT);
    let (code, _) = other.terminate();
    assert_eq!(code, Some(0));
    let _ = paused.terminate();
    assert_exactly_once(&out, 3000);
    sb.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runners_keep_one_rate_limit_together() {
    let Some(db) = Database::create("three_runners_keep_one_rate_limit").await else {
        return;
    };
    // A server enforcing exactly the connection's limit: 30 requests per rolling 2 s.
    let sb = Sandbox::start(SandboxConfig {
        rate_limit: Some(RateLimit {
            limit: 30,
            per: Duration::from_secs(2),
        }),
        demo_data: false,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let ws = Workspace::new(
        &db.url,
        &format!(
            "connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {}\n      throttle: {{ limit: 30, per: 2s }}\n",
            sb.url()
        ),
    );
    // 9 flows, each upserting 500 contacts in 5 batch calls: 45 calls, more than a window.
    for f in 0..9 {
        let mut csv = String::from("email\n");
        for i in 0..500 {
            csv.push_str(&format!("c{f}-{i}@example.com\n"));
        }
        ws.write(&format!("flows/data/c{f}.csv"), &csv);
        ws.write(
            &format!("flows/up{f}.yaml"),
            &format!(
                "name: up{f}\nschedule:\n  every: 1h\nsource:\n  file:\n    path: data/c{f}.csv\n    format: csv\nmapping:\n  email: \"{{{{record.email}}}}\"\nactions:\n  - hubspot:\n      connection: hubspot\n      operation: upsert\n      object: contact\n      match_on: email\n"
            ),
        );
    }
    let runners: Vec<Service> = (0..3).map(|_| ws.runner()).collect();
    until("4,500 contacts in HubSpot", || {
        sb.store().count("contacts").unwrap_or(0) >= 4500
    })
    .await;
    let stats = sb.store().stats();
    assert_eq!(
        stats.rate_limited, 0,
        "no 429 from a server enforcing the limit: {stats:?}"
    );
    for runner in runners {
        let (code, _) = runner.terminate();
        assert_eq!(code, Some(0));
    }
    sb.shutdown().await;
    db.drop().await;
}
