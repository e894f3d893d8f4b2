//! Hostile input: the sandbox answers 400/408/413 or closes the connection; it never panics,
//! aborts or hangs.

use crate::*;
use rivulet_sandbox::SandboxConfig;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn huge_seed_counts_and_timestamps_are_refused() {
    let e = default_env().await;
    for count in [
        json!(1_000_000_000_000u64),
        json!(u64::MAX),
        json!(1e30),
        json!(-1),
    ] {
        let r = e
            .post(
                "/_sandbox/seed",
                json!({"objectType": "contacts", "count": count}),
            )
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
    let r = e
        .post(
            "/_sandbox/seed",
            json!({"objectType": "contacts", "count": 1_000_001}),
        )
        .await;
    assert!(
        r.body["message"].as_str().unwrap().contains("1000000"),
        "{}",
        r.body
    );
    for spec in [
        json!({"objectType": "contacts", "count": 3, "stepMs": i64::MAX}),
        json!({"objectType": "contacts", "count": 2, "createdAt": i64::MAX}),
        json!({"objectType": "contacts", "count": 2, "createdAt": i64::MIN, "stepMs": -1}),
        json!({"objectType": "contacts", "records": [{"email": "t@x.io", "createdate": "99999999999999999999"}]}),
    ] {
        let r = e.post("/_sandbox/seed", spec.clone()).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
    let r = e
        .post("/_sandbox/objects/contacts/1/touch", json!({"at": "1e300"}))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(e.sb.store().count("contacts").unwrap(), 0);
    // the library call is bounded the same way
    assert!(
        e.sb.store()
            .seed(rivulet_sandbox::SeedSpec::generated("contacts", usize::MAX))
            .is_err()
    );
    assert_eq!(e.get("/_sandbox/health").await.body["status"], "ok");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn numeric_control_input_is_bounded() {
    let e = default_env().await;
    let before = e.get("/_sandbox/faults").await.body;
    for (patch, word) in [
        (json!({"latency": "999999999999999s"}), "latency"),
        (json!({"latency": "61s"}), "latency"),
        (json!({"latency_ms": u64::MAX}), "latency"),
        (json!({"search_lag": "400d"}), "search_lag"),
        (json!({"search_lag_ms": 1_000_000_000_000u64}), "search_lag"),
        (
            json!({"rate_limit": {"limit": 5_000_000_000u64, "per_ms": 1000}}),
            "rate_limit",
        ),
        (
            json!({"rate_limit": {"limit": 10, "per_ms": 0}}),
            "rate_limit",
        ),
        (json!({"rate_limit": "10/0s"}), "rate_limit"),
        (json!({"rate_limit": "10/999999999d"}), "rate_limit"),
        (
            json!({"search_per_second": 5_000_000_000u64}),
            "search_per_second",
        ),
        (json!({"search_per_second": 0}), "search_per_second"),
        (json!({"daily_limit": 10_000_000_000_000u64}), "daily_limit"),
        (json!({"fault_rate": 2.0}), "fault_rate"),
        (json!({"drop_rate": -0.5}), "drop_rate"),
        (json!({"latency_ms": 5, "fault_rate": "lots"}), "fault_rate"),
    ] {
        let r = e.put("/_sandbox/faults", patch.clone()).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains(word), "{patch}: {msg}");
    }
    assert_eq!(
        e.get("/_sandbox/faults").await.body,
        before,
        "nothing changed"
    );
    for body in [
        json!({"advance_ms": i64::MAX}),
        json!({"offset_ms": i64::MIN}),
    ] {
        assert_error(
            &e.post("/_sandbox/clock", body).await,
            400,
            "VALIDATION_ERROR",
        );
    }
    // the same bounds at start
    let err = rivulet_sandbox::Sandbox::start(SandboxConfig {
        latency: Duration::from_secs(3600),
        ..SandboxConfig::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("latency"), "{err}");
    assert!(
        rivulet_sandbox::Sandbox::start(SandboxConfig {
            header_read_timeout: Duration::ZERO,
            ..SandboxConfig::default()
        })
        .await
        .is_err()
    );
    e.sb.shutdown().await;
}

#[tokio::test]
async fn non_object_bodies_are_refused() {
    let e = default_env().await;
    let id = e
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@x.io"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, body) in [
        ("/crm/v3/objects/contacts".to_string(), json!([1, 2, 3])),
        ("/crm/v3/objects/contacts".to_string(), json!("x")),
        ("/crm/v3/objects/contacts".to_string(), json!(17)),
        ("/crm/v3/objects/contacts/search".to_string(), json!([])),
        (
            "/crm/v3/objects/contacts/batch/create".to_string(),
            json!([{"properties": {}}]),
        ),
        (
            "/crm/v3/objects/contacts/batch/create".to_string(),
            json!({"inputs": [1, 2, 3]}),
        ),
        (
            "/crm/v3/objects/contacts/batch/upsert".to_string(),
            json!({"inputs": [[]]}),
        ),
        (
            "/crm/v3/objects/contacts/merge".to_string(),
            json!([id, id]),
        ),
        ("/_sandbox/seed".to_string(), json!([1, 2, 3])),
        (format!("/_sandbox/objects/contacts/{id}/touch"), json!([])),
        ("/crm/v3/properties/contacts".to_string(), json!(["name"])),
    ] {
        let r = e.post(&path, body.clone()).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
    let r = e
        .patch(&format!("/crm/v3/objects/contacts/{id}"), json!([1, 2]))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_error(
        &e.put("/_sandbox/faults", json!([])).await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(
        &e.put("/_sandbox/validation/contacts", json!(["phone"]))
            .await,
        400,
        "VALIDATION_ERROR",
    );
    // with trace ids, a non-object input fails alone
    let r = e
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [7, {"objectWriteTraceId": "1", "properties": {"email": "b@x.io"}}]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(
        e.sb.store().count("contacts").unwrap(),
        2,
        "no empty records made"
    );
    e.sb.shutdown().await;
}

fn short_timeouts() -> SandboxConfig {
    SandboxConfig {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        max_body_bytes: 4096,
        ..SandboxConfig::default()
    }
}

/// Reads until the server closes the connection; returns what it sent. The outer timeout is
/// only a safety net (the sandbox's own timeouts are 300 ms).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the sandbox closes the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn half_sent_requests_and_idle_connections_are_closed() {
    let e = start(short_timeouts()).await;
    let addr = e.sb.addr();

    // slowloris: a head that never ends
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /crm/v3/objects/contacts HTTP/1.1\r\nHost: sandbox\r\nX-Slow: 1")
        .await
        .unwrap();
    let answer = until_closed(&mut s).await;
    assert!(!answer.contains("201"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed by the timeout"
    );

    // an idle connection that never sends anything
    let mut s = TcpStream::connect(addr).await.unwrap();
    until_closed(&mut s).await;

    // a body that never completes: 408, then closed
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /crm/v3/objects/contacts HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"properties\":",
    )
    .await
    .unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // keep-alive between complete requests works, then the idle connection is closed
    let mut s = TcpStream::connect(addr).await.unwrap();
    let get = b"GET /_sandbox/health HTTP/1.1\r\nHost: sandbox\r\n\r\n";
    s.write_all(get).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s.write_all(get).await.unwrap();
    let rest = until_closed(&mut s).await;
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");

    assert_eq!(e.sb.store().count("contacts").unwrap(), 0);
    e.sb.shutdown().await;
}

#[tokio::test]
async fn slow_answers_are_not_cut_and_bodies_are_limited() {
    let e = start(short_timeouts()).await;
    // a request in progress has no deadline: latency longer than every timeout
    e.put("/_sandbox/faults", json!({"latency_ms": 700})).await;
    let r = e.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 200);
    e.put("/_sandbox/faults", json!({"latency_ms": 0})).await;

    // declared too large
    let big = json!({"properties": {"firstname": "x".repeat(5000)}});
    let r = e.post("/crm/v3/objects/contacts", big).await;
    assert_error(&r, 413, "REQUEST_TOO_LARGE");
    // too large without a declared length (chunked)
    let mut s = TcpStream::connect(e.sb.addr()).await.unwrap();
    let mut req = b"POST /crm/v3/objects/contacts HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        req.extend_from_slice(format!("400\r\n{}\r\n", "y".repeat(1024)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).await.unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(e.sb.store().count("contacts").unwrap(), 0);
    e.sb.shutdown().await;
}
