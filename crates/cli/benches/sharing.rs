//! Benchmark of runners sharing one PostgreSQL state (issue 16 figures, printed, not asserted):
//! - failover time: the runner holding a busy trigger is killed (SIGKILL) or frozen (SIGSTOP);
//!   how long until another runner has taken the work over and writes again;
//! - throughput of 1 vs 3 runners on 300 scheduled flows (each copying 200 CSV rows to a file).
//!
//! Needs a PostgreSQL server: `RIVULET_TEST_DATABASE_URL` (e.g.
//! `postgres://root@127.0.0.1:5432/test`). Each measurement works in a schema of its own.
//!
//! `RIVULET_TEST_DATABASE_URL=postgres://root@127.0.0.1:5432/test cargo bench -p rivulet --bench sharing`

use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TTL: &str = "15s";

struct Schema {
    admin: String,
    name: String,
    url: String,
}

fn psql_exec(admin: &str, sql: &str, rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .expect("the database is reachable");
        tokio::spawn(conn);
        client.batch_execute(sql).await.expect("schema statement");
    });
}

impl Schema {
    fn new(admin: &str, tag: &str, rt: &tokio::runtime::Runtime) -> Schema {
        let name = format!("rivulet_bench_{tag}_{}", std::process::id());
        psql_exec(
            admin,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
            rt,
        );
        let separator = if admin.contains('?') { '&' } else { '?' };
        Schema {
            admin: admin.to_string(),
            url: format!("{admin}{separator}options=-c%20search_path%3D{name}"),
            name,
        }
    }

    fn drop(self, rt: &tokio::runtime::Runtime) {
        psql_exec(
            &self.admin,
            &format!("DROP SCHEMA {} CASCADE", self.name),
            rt,
        );
    }
}

/// A runner whose log lines arrive on a channel.
struct Runner {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Runner {
    fn start(dir: &Path, state: &str) -> Runner {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .arg("run")
            .arg(dir.join("flows"))
            .args(["--state", state, "--lease-ttl", TTL, "--no-listen"])
            .env("HUBSPOT_TOKEN", "bench")
            .env("RIVULET_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rivulet runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Runner { child, lines }
    }

    fn wait_for(&self, text: &str, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return Some(Instant::now()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    fn stop(mut self) {
        self.signal("-TERM");
        let _ = self.child.wait();
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn holder_pid(dir: &Path, state: &str) -> Option<u32> {
    let out = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .arg("runners")
        .arg(dir.join("flows"))
        .args(["--state", state, "--format", "json"])
        .output()
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    doc["runners"].as_array()?.iter().find_map(|r| {
        (!r["work"].as_array()?.is_empty()).then(|| r["pid"].as_u64().map(|p| p as u32))?
    })
}

/// Kills or freezes the runner holding a busy trigger mid-stream; the time until the other
/// runner has taken the work over, and until it writes again.
fn failover(admin: &str, signal: &str, rt: &tokio::runtime::Runtime) -> (Duration, Duration) {
    let sb = rt.block_on(async {
        let sb = Sandbox::start(SandboxConfig {
            latency: Duration::from_millis(150),
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        let at = chrono::Utc::now().timestamp_millis() - 3_600_000;
        sb.store()
            .seed(SeedSpec::generated("contacts", 5000).at(at).step(10))
            .unwrap();
        sb
    });
    let schema = Schema::new(
        admin,
        &format!("failover{}", signal.trim_start_matches('-').to_lowercase()),
        rt,
    );
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("connections.yaml"),
        format!("connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {}\n      search_per_second: 50\n      throttle: {{ limit: 1000, per: 10s }}\n", sb.url()),
    )
    .unwrap();
    std::fs::write(
        flows.join("busy.yaml"),
        "name: busy\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: new_record\n    object: contact\n    poll_every: 1s\n    start_from: beginning\n    settle: 1s\n    properties: [email]\nmapping:\n  id: \"{{record.id}}\"\nactions:\n  - file: { path: out/busy.jsonl }\n",
    )
    .unwrap();
    let a = Runner::start(dir.path(), &schema.url);
    let b = Runner::start(dir.path(), &schema.url);
    let out = flows.join("out/busy.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&out) < 400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let holder = holder_pid(dir.path(), &schema.url).expect("a holder");
    let (victim, survivor) = if holder == a.child.id() {
        (a, b)
    } else {
        (b, a)
    };
    let before = lines(&out);
    let at = Instant::now();
    victim.signal(signal);
    let took = survivor
        .wait_for("took over poll of", Duration::from_secs(120))
        .map(|t| t - at)
        .unwrap_or(Duration::MAX);
    while lines(&out) <= before && at.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let writing = at.elapsed();
    victim.signal("-CONT");
    victim.stop();
    survivor.stop();
    schema.drop(rt);
    rt.block_on(sb.shutdown());
    (took, writing)
}

/// 300 scheduled flows copying 200 rows each; the time `runners` runners take to deliver all.
fn throughput(admin: &str, runners: usize, rt: &tokio::runtime::Runtime) -> Duration {
    let schema = Schema::new(admin, &format!("throughput{runners}"), rt);
    let dir = tempfile::tempdir().unwrap();
    let flows: PathBuf = dir.path().join("flows");
    std::fs::create_dir_all(flows.join("data")).unwrap();
    std::fs::write(flows.join("connections.yaml"), "connections: {}\n").unwrap();
    let mut csv = String::from("id,name\n");
    for i in 0..200 {
        csv.push_str(&format!("{i},row {i}\n"));
    }
    for f in 0..300 {
        std::fs::write(flows.join(format!("data/in{f}.csv")), &csv).unwrap();
        std::fs::write(
            flows.join(format!("f{f}.yaml")),
            format!("name: f{f}\nschedule:\n  every: 1h\nsource:\n  file:\n    path: data/in{f}.csv\n    format: csv\nmapping:\n  id: \"{{{{record.id}}}}\"\n  name: \"{{{{uppercase record.name}}}}\"\nactions:\n  - file: {{ path: out/f{f}.jsonl }}\n"),
        )
        .unwrap();
    }
    let started = Instant::now();
    let all: Vec<Runner> = (0..runners)
        .map(|_| Runner::start(dir.path(), &schema.url))
        .collect();
    let done = || (0..300).all(|f| lines(&flows.join(format!("out/f{f}.jsonl"))) >= 200);
    while !done() && started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    for r in all {
        r.stop();
    }
    schema.drop(rt);
    took
}

fn main() {
    let Ok(admin) = std::env::var("RIVULET_TEST_DATABASE_URL") else {
        eprintln!(
            "set RIVULET_TEST_DATABASE_URL (e.g. postgres://root@127.0.0.1:5432/test) to run this benchmark"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("runners sharing one PostgreSQL state (lease TTL {TTL})");
    println!(
        "{:<58} {:>12} {:>14}",
        "measurement", "taken over", "writing again"
    );
    let (took, writing) = failover(&admin, "-KILL", &rt);
    println!(
        "{:<58} {:>10.2} s {:>12.2} s",
        "failover after SIGKILL of the busy runner (dead pid: at once)",
        took.as_secs_f64(),
        writing.as_secs_f64()
    );
    let (took, writing) = failover(&admin, "-STOP", &rt);
    println!(
        "{:<58} {:>10.2} s {:>12.2} s",
        "failover after SIGSTOP of the busy runner (lease lapses)",
        took.as_secs_f64(),
        writing.as_secs_f64()
    );
    println!();
    println!(
        "{:<58} {:>12} {:>14}",
        "300 flows × 200 rows (60,000 records)", "time", "records/s"
    );
    for n in [1, 3] {
        let took = throughput(&admin, n, &rt);
        println!(
            "{:<58} {:>10.2} s {:>14.0}",
            format!("{n} runner(s)"),
            took.as_secs_f64(),
            60_000.0 / took.as_secs_f64()
        );
    }
}
