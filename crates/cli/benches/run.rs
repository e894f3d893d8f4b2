//! Benchmark of `rivulet run` against the sandbox (issue figures, printed, not asserted):
//! - search calls per idle poll with 10 flows watching one object (goal: 1);
//! - peak RSS of `run --once` delivering 100,000 records (goal: < 64 MB);
//! - idle RSS with 100 flows (goal: < 30 MB).
//!
//! `cargo bench -p rivulet --bench run`

use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn connections(dir: &Path, url: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("connections.yaml"),
        format!("connections:\n  hubspot:\n    hubspot:\n      token: ${{HUBSPOT_TOKEN}}\n      base_url: {url}\n      search_per_second: 200\n      throttle: {{ limit: 10000, per: 10s }}\n"),
    )
    .unwrap();
}

fn flow(dir: &Path, name: &str, object: &str, on: &str, poll: &str, start: &str) {
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        format!(
            "name: {name}\ntrigger:\n  hubspot:\n    connection: hubspot\n    on: {on}\n    object: {object}\n    poll_every: {poll}\n    start_from: {start}\n    settle: 1s\n    properties: [email, firstname, lastname]\nmapping:\n  id: \"{{{{record.id}}}}\"\n  email: \"{{{{lowercase record.properties.email}}}}\"\n  name: \"{{{{record.properties.firstname}}}} {{{{record.properties.lastname}}}}\"\n  created: {{ path: $.createdAt, type: datetime }}\nactions:\n  - file: {{ path: out/{name}.jsonl }}\n"
        ),
    )
    .unwrap();
}

fn rivulet(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    cmd.arg("run")
        .arg(dir.join("flows"))
        .arg("--state")
        .arg(dir.join("state.db"))
        .args(extra)
        .env("HUBSPOT_TOKEN", "bench")
        .env("RIVULET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

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
        if child.try_wait().unwrap().is_some() {
            return (peak, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mb = |kb: u64| kb as f64 / 1024.0;

    // 1. Shared polling: 10 flows on one object and event cost one search per idle poll.
    {
        let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
        sb.store()
            .seed(
                SeedSpec::generated("contacts", 100)
                    .at(chrono::Utc::now().timestamp_millis() - 3_600_000)
                    .step(1000),
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        connections(&flows, &sb.url());
        for i in 0..10 {
            flow(
                &flows,
                &format!("watch-{i}"),
                "contact",
                "new_record",
                "15s",
                "beginning",
            );
        }
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            assert!(rivulet(&d, &["--once"]).status().unwrap().success())
        })
        .await
        .unwrap();
        let before = sb.store().endpoint_count("search");
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            assert!(rivulet(&d, &["--once"]).status().unwrap().success())
        })
        .await
        .unwrap();
        let idle = sb.store().endpoint_count("search") - before;
        println!("search calls per idle poll, 10 flows on one object: {idle}");
        sb.shutdown().await;
    }

    // 2. Peak RSS of run --once delivering 100,000 records.
    {
        let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
        sb.store()
            .seed(
                SeedSpec::generated("contacts", 100_000)
                    .at(chrono::Utc::now().timestamp_millis() - 86_400_000)
                    .step(500),
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        connections(&flows, &sb.url());
        flow(
            &flows,
            "all-contacts",
            "contact",
            "new_record",
            "1m",
            "beginning",
        );
        let d = dir.path().to_path_buf();
        let (peak, took) = tokio::task::spawn_blocking(move || {
            peak_rss_kb(rivulet(&d, &["--once"]).spawn().unwrap())
        })
        .await
        .unwrap();
        let lines = std::fs::read_to_string(flows.join("out/all-contacts.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        println!(
            "run --once delivering {lines} records: peak RSS {:.1} MB, {:.1} s ({:.0} records/s)",
            mb(peak),
            took.as_secs_f64(),
            lines as f64 / took.as_secs_f64()
        );
        sb.shutdown().await;
    }

    // 3. Idle RSS with 100 flows.
    {
        let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        connections(&flows, &sb.url());
        for i in 0..100 {
            let (object, on) = [
                ("contact", "new_record"),
                ("company", "new_record"),
                ("contact", "new_or_updated_record"),
                ("company", "new_or_updated_record"),
            ][i % 4];
            flow(&flows, &format!("idle-{i:03}"), object, on, "10s", "now");
        }
        let mut child = rivulet(dir.path(), &[]).spawn().unwrap();
        tokio::time::sleep(Duration::from_secs(12)).await;
        let rss = status_kb(child.id(), "VmRSS:").unwrap_or(0);
        let searches = sb.store().endpoint_count("search");
        child.kill().unwrap();
        child.wait().unwrap();
        println!(
            "idle with 100 flows (4 shared polls): RSS {:.1} MB after 12 s, {searches} searches",
            mb(rss)
        );
        sb.shutdown().await;
    }
}
