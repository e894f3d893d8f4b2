use crate::*;
use rivulet_sandbox::{RateLimit, SandboxConfig};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn rolling_limit_429_body_and_headers() {
    let mut cfg = SandboxConfig::default();
    cfg.rate_limit = Some("3/10s".parse::<RateLimit>().unwrap());
    cfg.retry_after = true;
    let e = start(cfg).await;
    for i in 0..3 {
        let r = e.get("/crm/v3/objects/contacts").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["x-hubspot-ratelimit-max"], "3");
        assert_eq!(
            r.headers["x-hubspot-ratelimit-remaining"],
            (2 - i).to_string().as_str()
        );
        assert_eq!(
            r.headers["x-hubspot-ratelimit-interval-milliseconds"],
            "10000"
        );
    }
    let r = e.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["status"], "error");
    assert_eq!(
        r.body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(r.body["errorType"], "RATE_LIMIT");
    assert_eq!(r.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(r.body["correlationId"].as_str().unwrap().len(), 36);
    assert!(r.body["requestId"].is_string());
    assert_eq!(r.headers["x-hubspot-ratelimit-remaining"], "0");
    let ra: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&ra));
    // search has its own budget (off here) and carries no rate headers
    let r = e.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-hubspot-ratelimit-max").is_none());
    let stats = e.sb.store().stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.rate_limited_by_policy["TEN_SECONDLY_ROLLING"], 1);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn window_rolls() {
    let mut cfg = SandboxConfig::default();
    cfg.rate_limit = Some(RateLimit::new(2, Duration::from_secs(10)));
    let e = start(cfg).await;
    assert_eq!(e.get("/crm/v3/objects/deals").await.status, 200);
    assert_eq!(e.get("/crm/v3/objects/deals").await.status, 200);
    let r = e.get("/crm/v3/objects/deals").await;
    assert_eq!(r.status, 429);
    assert!(
        r.headers.get("retry-after").is_none(),
        "Retry-After off by default"
    );
    // The window follows the sandbox's clock: a step short of it still refuses, a full one rolls.
    e.sb.clock().advance(Duration::from_secs(9)).unwrap();
    assert_eq!(e.get("/crm/v3/objects/deals").await.status, 429);
    e.sb.clock().advance(Duration::from_secs(1)).unwrap();
    assert_eq!(e.get("/crm/v3/objects/deals").await.status, 200);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn search_limit_is_secondly() {
    let mut cfg = SandboxConfig::default();
    cfg.search_per_second = Some(2);
    cfg.rate_limit = Some(RateLimit::new(100, Duration::from_secs(10)));
    let e = start(cfg).await;
    for _ in 0..2 {
        let r = e.post("/crm/v3/objects/companies/search", json!({})).await;
        assert_eq!(r.status, 200);
    }
    let r = e.post("/crm/v3/objects/companies/search", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "SECONDLY");
    assert!(r.headers.get("x-hubspot-ratelimit-max").is_none());
    // other endpoints still fine
    assert_eq!(e.get("/crm/v3/objects/companies").await.status, 200);
    // a second later on the sandbox's clock (moved through the control API) the window has rolled
    let r = e.post("/_sandbox/clock", json!({"advance_ms": 1000})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = e.post("/crm/v3/objects/companies/search", json!({})).await;
    assert_eq!(r.status, 200);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn daily_limit() {
    let mut cfg = SandboxConfig::default();
    cfg.daily_limit = Some(3);
    cfg.retry_after = true;
    let e = start(cfg).await;
    let r = e.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.headers["x-hubspot-ratelimit-daily"], "3");
    assert_eq!(r.headers["x-hubspot-ratelimit-daily-remaining"], "2");
    e.post("/crm/v3/objects/contacts/search", json!({})).await;
    e.get("/crm/v3/objects/contacts").await;
    let r = e.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "DAILY");
    assert_eq!(r.body["message"], "You have reached your daily limit.");
    assert!(r.headers.get("retry-after").is_some());
    e.sb.shutdown().await;
}

#[tokio::test]
async fn injected_faults_and_runtime_knobs() {
    let mut cfg = SandboxConfig::default();
    cfg.fault_rate = 1.0;
    cfg.fault_seed = Some(7);
    let e = start(cfg).await;
    for _ in 0..4 {
        let r = e.get("/crm/v3/objects/contacts").await;
        assert!(matches!(r.status.as_u16(), 502 | 503), "{}", r.status);
        assert_eq!(r.body["status"], "error");
        assert!(r.body["correlationId"].is_string());
    }
    assert_eq!(e.sb.store().stats().faults_injected, 4);
    // turn faults off, add latency through the control API
    let r = e
        .put(
            "/_sandbox/faults",
            json!({"fault_rate": 0.0, "latency_ms": 50}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["latency_ms"], 50);
    let t = std::time::Instant::now();
    let r = e.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(50));
    let r = e.put("/_sandbox/faults", json!({"bogus": 1})).await;
    assert_eq!(r.status, 400);
    // rate limit set at run time
    let r = e
        .put(
            "/_sandbox/faults",
            json!({"latency_ms": 0, "rate_limit": "1/10s"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(e.get("/crm/v3/objects/contacts").await.status, 200);
    assert_eq!(e.get("/crm/v3/objects/contacts").await.status, 429);
    e.put("/_sandbox/faults", json!({"rate_limit": null})).await;
    assert_eq!(e.get("/crm/v3/objects/contacts").await.status, 200);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn dropped_connections() {
    let mut cfg = SandboxConfig::default();
    cfg.drop_rate = 1.0;
    let e = start(cfg).await;
    let r =
        e.c.get(format!("{}/crm/v3/objects/contacts", e.url))
            .bearer_auth(TOKEN)
            .send()
            .await;
    assert!(r.is_err(), "connection should be dropped: {r:?}");
    let log = e.sb.store().requests();
    assert_eq!(log.last().unwrap().status, 0);
    assert_eq!(e.sb.store().stats().connections_dropped, 1);
    // the control API is never dropped
    let r: Value =
        e.c.put(format!("{}/_sandbox/faults", e.url))
            .json(&json!({"drop_rate": 0.0}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(r["drop_rate"], 0.0);
    assert_eq!(e.get("/crm/v3/objects/contacts").await.status, 200);
    e.sb.shutdown().await;
}
