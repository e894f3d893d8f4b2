//! Sandbox throughput benchmark (limits off): batch-upsert requests per second over HTTP
//! (100 contacts each, several concurrent clients) and the latency of a timestamp-window
//! search (limit 200, sorted) over 1,000,000 seeded contacts.
//!
//! Run: `cargo bench -p rivulet-sandbox --bench sandbox`
//! (`SANDBOX_BENCH_RECORDS`, `SANDBOX_BENCH_BATCHES`, `SANDBOX_BENCH_CLIENTS` override sizes).

use rivulet_sandbox::{Sandbox, SandboxConfig, SeedSpec};

// The sandbox allocates per property and per record; glibc's malloc was a third of its time.
// (`rivulet` itself keeps the system allocator: with mimalloc its idle RSS with 100 flows rose
// from 17 MB to 33 MB, over the runner's 30 MB goal.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Process CPU time (user + system) so far, from /proc (Linux); None elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn batch_phase(
    store: &rivulet_sandbox::Store,
    url: &str,
    bodies: Vec<String>,
    clients: usize,
    label: &str,
) {
    let n = bodies.len();
    let chunks: Vec<Vec<String>> = {
        let mut v: Vec<Vec<String>> = (0..clients).map(|_| vec![]).collect();
        for (i, b) in bodies.into_iter().enumerate() {
            v[i % clients].push(b);
        }
        v
    };
    let log_before = store.requests().len();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut tasks = vec![];
    for chunk in chunks {
        let url = format!("{url}/crm/v3/objects/contacts/batch/upsert");
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            for body in chunk {
                let r = c
                    .post(&url)
                    .bearer_auth("bench")
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.expect("body");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(a, b)| a - b)
        .filter(|c| *c > 0.0);
    let mut server: Vec<f64> = store
        .requests()
        .iter()
        .skip(log_before.min(store.requests().len()))
        .filter(|r| r.endpoint == "batch_upsert")
        .map(|r| r.duration_ms)
        .collect();
    server.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let median = server.get(server.len() / 2).copied().unwrap_or(0.0);
    println!(
        "batch upsert ({label}): {n} requests x 100 contacts, {clients} clients: {:.0} requests/s wall ({:.0} records/s); server time per request p50 {median:.2} ms; process CPU (server + clients) {}",
        n as f64 / secs,
        n as f64 * 100.0 / secs,
        cpu.map(|c| format!(
            "{:.2} ms/request = {:.0} requests per CPU-second",
            c * 1000.0 / n as f64,
            n as f64 / c
        ))
        .unwrap_or_else(|| "n/a".into())
    );
}

fn upsert_bodies(batches: usize, offset: usize, generation: usize) -> Vec<String> {
    (0..batches)
        .map(|b| {
            let inputs: Vec<Value> = (0..100)
                .map(|i| {
                    let n = offset + b * 100 + i;
                    json!({
                        "id": format!("bench{n}@example.com"),
                        "idProperty": "email",
                        "objectWriteTraceId": format!("{n}"),
                        "properties": {"firstname": format!("F{generation}"), "lastname": format!("L{n}"), "contact_category": "retail"}
                    })
                })
                .collect();
            json!({ "inputs": inputs }).to_string()
        })
        .collect()
}

async fn search_latency(
    c: &reqwest::Client,
    url: &str,
    body: &Value,
    runs: usize,
) -> (Vec<Duration>, u64) {
    let mut lat = Vec::with_capacity(runs);
    let mut total = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = c
            .post(format!("{url}/crm/v3/objects/contacts/search"))
            .bearer_auth("bench")
            .json(body)
            .send()
            .await
            .expect("search");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        lat.push(t.elapsed());
        total = v["total"].as_u64().unwrap_or(0);
    }
    lat.sort();
    (lat, total)
}

fn window(lo: i64, hi: i64, after_id: Option<u64>) -> Value {
    let mut filters = vec![
        json!({"propertyName": "lastmodifieddate", "operator": "GTE", "value": lo.to_string()}),
        json!({"propertyName": "lastmodifieddate", "operator": "LT", "value": hi.to_string()}),
    ];
    if let Some(id) = after_id {
        filters.push(
            json!({"propertyName": "hs_object_id", "operator": "GT", "value": id.to_string()}),
        );
    }
    json!({
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email", "firstname", "lastname"],
        "limit": 200
    })
}

fn main() {
    let records = env_usize("SANDBOX_BENCH_RECORDS", 1_000_000);
    let batches = env_usize("SANDBOX_BENCH_BATCHES", 3_000);
    let clients = env_usize("SANDBOX_BENCH_CLIENTS", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let sb = Sandbox::start(SandboxConfig::default()).await.expect("start");
        let url = sb.url();
        println!("sandbox bench at {url} (limits off, {} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));

        // warm-up
        let store = sb.store();
        batch_phase(&store, &url, upsert_bodies(50, 10_000_000, 0), clients, "warm-up").await;
        batch_phase(&store, &url, upsert_bodies(batches, 0, 1), clients, "creates").await;
        batch_phase(&store, &url, upsert_bodies(batches, 0, 2), clients, "updates").await;

        // search over a million records
        store.reset();
        let t0: i64 = 1_700_000_000_000;
        let step = 1_000; // one record per second: 1M records span ~11.6 days
        let t = Instant::now();
        store
            .seed(SeedSpec::generated("contacts", records).at(t0).step(step))
            .expect("seed");
        println!("seeded {records} contacts in {:.2} s", t.elapsed().as_secs_f64());

        let c = reqwest::Client::new();
        let span = records as i64 * step;
        // a 15-minute window (900 records) in the middle
        let mid = t0 + span / 2;
        let (lat, total) = search_latency(&c, &url, &window(mid, mid + 900_000, None), 200).await;
        println!(
            "search window 15 min (total {total}, limit 200, sorted): p50 {} p95 {} p99 {}",
            ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.95)), ms(percentile(&lat, 0.99))
        );
        // with an hs_object_id tiebreak anchor half-way through the window (ids start at 1001)
        let anchor = 1001 + (records as u64) / 2 + 450;
        let (lat, total) = search_latency(&c, &url, &window(mid, mid + 900_000, Some(anchor)), 200).await;
        println!(
            "search window 15 min + hs_object_id GT anchor (total {total}): p50 {} p95 {}",
            ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.95))
        );
        // a 1-day window (86,400 records; total counted exactly)
        let (lat, total) = search_latency(&c, &url, &window(mid, mid + 86_400_000, None), 50).await;
        println!(
            "search window 1 day (total {total}): p50 {} p95 {}",
            ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.95))
        );
        // the whole data set in one window
        let (lat, total) = search_latency(&c, &url, &window(t0, t0 + span + 1, None), 20).await;
        println!(
            "search window over all records (total {total}): p50 {} p95 {}",
            ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.95))
        );
        // a non-indexed scan for comparison
        let scan = json!({"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Ava"}]}], "limit": 200});
        let (lat, total) = search_latency(&c, &url, &scan, 5).await;
        println!("search full scan, firstname EQ (total {total}): p50 {}", ms(percentile(&lat, 0.5)));
        sb.shutdown().await;
    });
}
