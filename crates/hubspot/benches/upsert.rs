//! Upsert 20,000 contacts into the sandbox limited to 100 requests per 10 s, and print records/s
//! against the ceiling (100 records × 100 requests / 10 s = 1,000 records/s), the write calls
//! and the 429s received.
//!
//! Two phases: "cold" starts with the connection's whole window unspent (a rolling window lets
//! the first 100 calls go at once, so it can beat the steady ceiling); "steady" follows at once,
//! with the window already spent, which is what a long-running connection sees.
//!
//! Run: `cargo bench -p rivulet-hubspot --bench upsert` (about 30 s by design).

use std::time::{Duration, Instant};

use rivulet_hubspot::{Client, ClientConfig, ObjectType, Throttle, WriteInput, WriteOutcome};
use rivulet_sandbox::{RateLimit, Sandbox, SandboxConfig};

const RECORDS: usize = 20_000;
const CEILING: f64 = 100.0 * 100.0 / 10.0;

fn inputs(phase: &str) -> Vec<(String, WriteInput)> {
    (0..RECORDS)
        .map(|i| {
            let email = format!("{phase}-{i}@bench.example");
            let input = WriteInput::new([
                ("email", email.clone()),
                ("firstname", format!("First{i}")),
                ("lastname", format!("Last{i}")),
                ("company", "Bench Inc".to_string()),
            ]);
            (email, input)
        })
        .collect()
}

async fn phase(name: &str, client: &Client, sandbox: &Sandbox) {
    let before_calls = sandbox.store().endpoint_count("batch_upsert");
    let before_429 = sandbox.store().stats().rate_limited;
    let before = client.stats();
    let batch = inputs(name);
    let started = Instant::now();
    let out = client
        .batch_upsert(&ObjectType::Contacts, "email", batch)
        .await;
    let elapsed = started.elapsed();
    let ok = out.iter().filter(|o| o.is_success()).count();
    let created = out
        .iter()
        .filter(|o| matches!(o, WriteOutcome::Created { .. }))
        .count();
    let after = client.stats();
    let rate = RECORDS as f64 / elapsed.as_secs_f64();
    println!("{name}:");
    println!("  records            {RECORDS} ({ok} ok, {created} created)");
    println!("  wall time          {:.2} s", elapsed.as_secs_f64());
    println!(
        "  records/s          {rate:.0} ({:.1}% of the {CEILING:.0}/s ceiling)",
        100.0 * rate / CEILING
    );
    println!(
        "  write calls        {} (client) / {} (sandbox)",
        after.write_requests - before.write_requests,
        sandbox.store().endpoint_count("batch_upsert") - before_calls
    );
    println!(
        "  429s received      {} (client) / {} (sandbox)",
        after.rate_limited - before.rate_limited,
        sandbox.store().stats().rate_limited - before_429
    );
    println!("  retries            {}", after.retries - before.retries);
}

#[tokio::main]
async fn main() {
    let sandbox = Sandbox::start(SandboxConfig {
        rate_limit: Some(RateLimit::new(100, Duration::from_secs(10))),
        latency: Duration::from_millis(50),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts");
    let mut config = ClientConfig::with_token("bench-token").base_url(sandbox.url());
    config.throttle = Throttle {
        limit: 100,
        per: Duration::from_secs(10),
    };
    let client = Client::new(config).expect("client");
    println!(
        "upsert {RECORDS} contacts by email; sandbox 100 req / 10 s rolling, 50 ms latency; client throttle 100 / 10 s, 5 connections, 5 batches"
    );
    phase("cold", &client, &sandbox).await;
    phase("steady", &client, &sandbox).await;
}
