//! Cases the sandbox cannot stage: a server that revokes a live OAuth token (401 → one refresh),
//! one that performs a create but loses the answer, one that echoes secrets back, and one that
//! pages a batch read of associations. Each
//! stub is a few axum routes in this file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use rivulet_hubspot::{
    Auth, Client, ClientConfig, Error, ObjectType, RetryPolicy, SecretString, Throttle, WriteInput,
    WriteOutcome,
};
use serde_json::{Value, json};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn bearer(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string()
}

#[derive(Default)]
struct OAuthStub {
    issued: AtomicU64,
    /// Tokens issued before this number are refused (revoked server-side).
    revoked_below: AtomicU64,
    api_calls: AtomicU64,
    always_401: AtomicBool,
}

fn oauth_app(state: Arc<OAuthStub>) -> Router {
    Router::new()
        .route(
            "/oauth/v1/token",
            post(|State(s): State<Arc<OAuthStub>>, body: String| async move {
                assert!(body.contains("grant_type=refresh_token"), "{body}");
                assert!(body.contains("refresh_token=rt-1"), "{body}");
                let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
                // Slow, so concurrent requests really do pile up behind one refresh.
                tokio::time::sleep(Duration::from_millis(50)).await;
                axum::Json(json!({"access_token": format!("at-{n}"), "refresh_token": "rt-1",
                    "expires_in": 1800, "token_type": "bearer", "token_use": "access_token"}))
            }),
        )
        .route(
            "/crm/v3/objects/contacts/{id}",
            get(|State(s): State<Arc<OAuthStub>>, h: HeaderMap| async move {
                s.api_calls.fetch_add(1, Ordering::SeqCst);
                let n: u64 = bearer(&h).trim_start_matches("at-").parse().unwrap_or(0);
                if s.always_401.load(Ordering::SeqCst) || n < s.revoked_below.load(Ordering::SeqCst) {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"status":"error",
                        "message":"The OAuth token used to make this call expired","category":"EXPIRED_AUTHENTICATION",
                        "correlationId":"cid-401"}))).into_response();
                }
                axum::Json(json!({"id":"1","properties":{},"archived":false})).into_response()
            }),
        )
        .with_state(state)
}

fn oauth_config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::new(Auth::OAuth {
        client_id: "cid".into(),
        client_secret: SecretString::from("secret-1"),
        refresh_token: SecretString::from("rt-1"),
        token_url: format!("{base}/oauth/v1/token"),
    })
    .base_url(base);
    c.concurrent_connections = 50;
    c.throttle = Throttle {
        limit: 1000,
        per: Duration::from_secs(1),
    };
    c
}

#[tokio::test]
async fn a_401_causes_one_shared_refresh_and_one_retry() {
    let state = Arc::new(OAuthStub::default());
    let base = serve(oauth_app(state.clone())).await;
    let client = Client::new(oauth_config(&base)).unwrap();
    client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap();
    assert_eq!(state.issued.load(Ordering::SeqCst), 1);

    // The server revokes at-1; 50 concurrent requests all get a 401 with it.
    state.revoked_below.store(2, Ordering::SeqCst);
    let calls_before = state.api_calls.load(Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.get(&ObjectType::Contacts, "1", None, &[]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap().unwrap();
    }
    assert_eq!(
        state.issued.load(Ordering::SeqCst),
        2,
        "exactly one refresh after the 401s"
    );
    assert_eq!(client.stats().token_refreshes, 2);
    assert_eq!(
        state.api_calls.load(Ordering::SeqCst) - calls_before,
        100,
        "each request retried once"
    );
}

#[tokio::test]
async fn a_persistent_401_is_retried_once_then_reported() {
    let state = Arc::new(OAuthStub::default());
    state.always_401.store(true, Ordering::SeqCst);
    let base = serve(oauth_app(state.clone())).await;
    let client = Client::new(oauth_config(&base)).unwrap();
    let err = client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(state.api_calls.load(Ordering::SeqCst), 2);
    let shown = err.to_string();
    assert!(
        shown.contains("EXPIRED_AUTHENTICATION") && shown.contains("cid-401"),
        "{shown}"
    );
    assert!(shown.contains("check the connection's token"), "{shown}");
}

/// Performs creates but answers too late for the client's timeout.
#[derive(Default)]
struct LossyStub {
    creates: AtomicU64,
    records: Mutex<Vec<(String, String)>>, // (id, email)
}

async fn lossy_create(State(s): State<Arc<LossyStub>>, body: axum::Json<Value>) -> Response {
    s.creates.fetch_add(1, Ordering::SeqCst);
    let mut results = Vec::new();
    for input in body["inputs"].as_array().unwrap() {
        let email = input["properties"]["email"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut recs = s.records.lock();
        let id = (recs.len() + 100).to_string();
        recs.push((id.clone(), email));
        results.push(
            json!({"id": id, "properties": {}, "objectWriteTraceId": input["objectWriteTraceId"]}),
        );
    }
    // The records exist now; the answer arrives after the client gave up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    (
        StatusCode::CREATED,
        axum::Json(json!({"status":"COMPLETE","results":results})),
    )
        .into_response()
}

async fn lossy_read(State(s): State<Arc<LossyStub>>, body: axum::Json<Value>) -> Response {
    assert_eq!(body["idProperty"], "email");
    let recs = s.records.lock();
    let results: Vec<Value> = body["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let want = i["id"].as_str().unwrap();
            recs.iter()
                .find(|(_, e)| e == want)
                .map(|(id, e)| json!({"id": id, "properties": {"email": e}}))
        })
        .collect();
    axum::Json(json!({"status":"COMPLETE","results":results})).into_response()
}

fn lossy_config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::with_token("t").base_url(base);
    c.timeout = Duration::from_millis(200);
    c.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_rate_limited_attempts: 3,
        ..RetryPolicy::default()
    };
    c
}

#[tokio::test]
async fn lost_batch_create_is_looked_up_not_resent() {
    let state = Arc::new(LossyStub::default());
    let app = Router::new()
        .route("/crm/v3/objects/contacts/batch/create", post(lossy_create))
        .route("/crm/v3/objects/contacts/batch/read", post(lossy_read))
        .route("/crm/v3/objects/companies/batch/create", post(lossy_create))
        .with_state(state.clone());
    let base = serve(app).await;
    let client = Client::new(lossy_config(&base)).unwrap();

    let inputs = vec![
        WriteInput::new([("email", "a@x.io")]),
        WriteInput::new([("email", "b@x.io")]),
        WriteInput::new([("firstname", "no email")]),
    ];
    let out = client.batch_create(&ObjectType::Contacts, inputs).await;
    assert_eq!(state.creates.load(Ordering::SeqCst), 1, "no blind resend");
    assert_eq!(out[0], WriteOutcome::Created { id: "100".into() });
    assert_eq!(out[1], WriteOutcome::Created { id: "101".into() });
    assert!(
        matches!(&out[2], WriteOutcome::Unknown { reason } if reason.contains("no email")),
        "{out:?}"
    );
    assert_eq!(client.stats().timeouts, 1);

    // Companies have no unique property to check: the outcome is unknown, not a second create.
    let out = client
        .batch_create(
            &ObjectType::Companies,
            vec![WriteInput::new([("name", "Acme")])],
        )
        .await;
    assert_eq!(state.creates.load(Ordering::SeqCst), 2);
    assert!(matches!(&out[0], WriteOutcome::Unknown { .. }), "{out:?}");
}

#[tokio::test]
async fn secrets_never_show() {
    const SENTINEL: &str = "SENTINEL-7f3a";
    // A token endpoint that echoes what it was sent, as a misbehaving proxy might.
    let app = Router::new().route(
        "/oauth/v1/token",
        post(|body: String| async move {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"status":"BAD_REFRESH_TOKEN",
                "message": format!("refused: {body}")})),
            )
        }),
    );
    let base = serve(app).await;
    let config = ClientConfig::new(Auth::OAuth {
        client_id: "cid".into(),
        client_secret: SecretString::from(format!("{SENTINEL}-secret")),
        refresh_token: SecretString::from(format!("{SENTINEL}-refresh")),
        token_url: format!("{base}/oauth/v1/token"),
    })
    .base_url(&base);
    assert!(!format!("{config:?}").contains(SENTINEL));
    let client = Client::new(config).unwrap();
    assert!(!format!("{client:?}").contains(SENTINEL));
    let err = client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth(_)));
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(SENTINEL), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }

    let token_config = ClientConfig::with_token(SENTINEL);
    assert!(!format!("{token_config:?}").contains(SENTINEL));
    let client = Client::new(token_config.base_url(&base)).unwrap();
    assert!(!format!("{client:?}").contains(SENTINEL));
    let err = client
        .create(
            &ObjectType::Contacts,
            &WriteInput::new([("email", "a@x.io")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!err.to_string().contains(SENTINEL));
}

#[tokio::test]
async fn lost_single_create_is_looked_up_by_email() {
    let state = Arc::new(LossyStub::default());
    let app = Router::new()
        .route(
            "/crm/v3/objects/contacts",
            post(
                |State(s): State<Arc<LossyStub>>, body: axum::Json<Value>| async move {
                    s.creates.fetch_add(1, Ordering::SeqCst);
                    let email = body["properties"]["email"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    s.records.lock().push(("7".into(), email));
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({"id":"7","properties":{}})),
                    )
                },
            ),
        )
        .route(
            "/crm/v3/objects/contacts/{id}",
            get(
                |State(s): State<Arc<LossyStub>>,
                 axum::extract::Path(id): axum::extract::Path<String>| async move {
                    match s.records.lock().iter().find(|(_, e)| *e == id) {
                        Some((rid, e)) => {
                            axum::Json(json!({"id": rid, "properties": {"email": e}}))
                                .into_response()
                        }
                        None => (
                            StatusCode::NOT_FOUND,
                            axum::Json(json!({"category":"OBJECT_NOT_FOUND","message":"nope"})),
                        )
                            .into_response(),
                    }
                },
            ),
        )
        .with_state(state.clone());
    let base = serve(app).await;
    let client = Client::new(lossy_config(&base)).unwrap();
    let found = client
        .create(
            &ObjectType::Contacts,
            &WriteInput::new([("email", "a@x.io")]),
        )
        .await
        .unwrap();
    assert_eq!(found.id, "7");
    let err = client
        .create(
            &ObjectType::Contacts,
            &WriteInput::new([("firstname", "no email")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unknown(_)), "{err}");
    assert_eq!(state.creates.load(Ordering::SeqCst), 2, "never sent twice");
}

/// Counts requests in flight at once.
#[derive(Default)]
struct Gauge {
    now: AtomicU64,
    max: AtomicU64,
}

async fn gauged(State(g): State<Arc<Gauge>>, body: Option<axum::Json<Value>>) -> Response {
    let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(n, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    g.now.fetch_sub(1, Ordering::SeqCst);
    let results: Vec<Value> = body
        .map(|b| {
            b["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| json!({"id": i["id"], "properties": {}, "objectWriteTraceId": i["objectWriteTraceId"]}))
                .collect()
        })
        .unwrap_or_default();
    axum::Json(json!({"id":"1","properties":{},"status":"COMPLETE","results":results}))
        .into_response()
}

#[tokio::test]
async fn in_flight_limits_hold() {
    let batches = Arc::new(Gauge::default());
    let singles = Arc::new(Gauge::default());
    let app = Router::new()
        .route(
            "/crm/v3/objects/deals/batch/update",
            post(gauged).with_state(batches.clone()),
        )
        .route(
            "/crm/v3/objects/deals/{id}",
            get(gauged).with_state(singles.clone()),
        );
    let base = serve(app).await;
    let mut config = lossy_config(&base);
    config.concurrent_connections = 3;
    config.concurrent_batches = 2;
    let client = Client::new(config).unwrap();
    let deals: ObjectType = "deals".parse().unwrap();
    let updates = (0..1000)
        .map(|i| (i.to_string(), WriteInput::new([("amount", "1")])))
        .collect();
    let (out, _) = tokio::join!(client.batch_update(&deals, None, updates), async {
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let c = client.clone();
            let d = deals.clone();
            tasks.push(tokio::spawn(async move { c.get(&d, "1", None, &[]).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    assert!(out.iter().all(WriteOutcome::is_success));
    assert_eq!(batches.max.load(Ordering::SeqCst), 2);
    assert!(singles.max.load(Ordering::SeqCst) + batches.max.load(Ordering::SeqCst) <= 3 + 2);
    assert!(singles.max.load(Ordering::SeqCst) <= 3);
}

/// Answers 429 with the given `Retry-After` once, then the record.
#[derive(Default)]
struct RetryAfterStub {
    value: Mutex<String>,
    calls: AtomicU64,
}

fn retry_after_app(state: Arc<RetryAfterStub>) -> Router {
    Router::new()
        .route(
            "/crm/v3/objects/contacts/{id}",
            get(|State(s): State<Arc<RetryAfterStub>>| async move {
                if s.calls.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                    let value = s.value.lock().clone();
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", value)],
                        axum::Json(json!({"status":"error","message":"slow down",
                            "errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"})),
                    )
                        .into_response();
                }
                axum::Json(json!({"id":"1","properties":{},"archived":false})).into_response()
            }),
        )
        .with_state(state)
}

/// Log lines written while a test runs, for asserting on them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn hostile_retry_after_is_capped_and_logged() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // This test's runtime is single-threaded: the subscriber sees the client's events.
    let _guard = tracing::subscriber::set_default(subscriber);

    let state = Arc::new(RetryAfterStub::default());
    let base = serve(retry_after_app(state.clone())).await;
    let mut config = lossy_config(&base);
    config.retry.max_retry_after = Duration::from_millis(200);
    config.timeout = Duration::from_secs(5);
    let client = Client::new(config).unwrap();
    for value in ["18446744073709551615", "1e300", "99999"] {
        *state.value.lock() = value.to_string();
        let started = std::time::Instant::now();
        let got = tokio::time::timeout(
            Duration::from_secs(30),
            client.get(&ObjectType::Contacts, "1", None, &[]),
        )
        .await
        .unwrap_or_else(|_| panic!("Retry-After: {value} was not capped"))
        .unwrap();
        assert!(got.is_some());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(10),
            "Retry-After: {value} took {took:?}"
        );
    }
    assert_eq!(state.calls.load(Ordering::SeqCst), 6);
    assert_eq!(client.stats().rate_limited, 3);
    let shown = String::from_utf8(logs.0.lock().clone()).unwrap();
    let warned: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("max_retry_after"))
        .collect();
    assert_eq!(warned.len(), 3, "{shown}");
    assert!(
        warned[2].contains("asked_s=99999") && warned[2].contains("waiting_s=0.2"),
        "{shown}"
    );
    assert!(
        !shown.contains("Bearer") && !shown.contains("authorization"),
        "{shown}"
    );
}

#[tokio::test]
async fn token_endpoint_429_and_5xx_are_retried_outside_the_api_budget() {
    let token_calls = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/oauth/v1/token",
            post(|State(n): State<Arc<AtomicU64>>| async move {
                match n.fetch_add(1, Ordering::SeqCst) {
                    0 => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "0")],
                        "slow",
                    )
                        .into_response(),
                    1 => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
                    _ => axum::Json(json!({"access_token": "at-1", "expires_in": 1800}))
                        .into_response(),
                }
            }),
        )
        .route(
            "/crm/v3/objects/contacts/{id}",
            get(|| async { axum::Json(json!({"id":"1","properties":{}})) }),
        )
        .with_state(token_calls.clone());
    let base = serve(app).await;
    let mut config = oauth_config(&base);
    // An API budget of one request: token requests must not spend it.
    config.throttle = Throttle {
        limit: 1,
        per: Duration::from_secs(60),
    };
    let client = Client::new(config).unwrap();
    client
        .get(&ObjectType::Contacts, "1", None, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token_calls.load(Ordering::SeqCst), 3);
    let stats = client.stats();
    assert_eq!(
        (stats.requests, stats.token_refreshes, stats.rate_limited),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn a_daily_429_pauses_writes_until_midnight_by_the_injected_clock() {
    use chrono::TimeZone;
    let creates = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/crm/v3/objects/contacts",
            post(|State(n): State<Arc<AtomicU64>>| async move {
                n.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(
                        json!({"status":"error","message":"You have reached your daily limit.",
                        "errorType":"RATE_LIMIT","policyName":"DAILY"}),
                    ),
                )
            }),
        )
        .with_state(creates.clone());
    let base = serve(app).await;
    let mut config = lossy_config(&base);
    let eleven_pm = chrono::Utc.with_ymd_and_hms(2025, 3, 1, 23, 0, 0).unwrap();
    config.clock = Arc::new(rivulet_http::ManualClock::new(eleven_pm));
    let client = Client::new(config).unwrap();
    let input = WriteInput::new([("email", "a@x.io")]);
    let err = client
        .create(&ObjectType::Contacts, &input)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DailyLimit { resume_in } if resume_in == Duration::from_secs(3600)),
        "{err:?}"
    );
    // The next write is refused without a request.
    let err = client
        .create(&ObjectType::Contacts, &input)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DailyLimit { .. }), "{err:?}");
    assert_eq!(creates.load(Ordering::SeqCst), 1);
}

/// Answers every batch write with results for the even-numbered inputs only (by
/// `objectWriteTraceId`) and no error for the others, as HubSpot (2026) did for an update of a
/// merged-away record. The results come back in reverse order.
async fn partial_batch(body: axum::Json<Value>) -> Response {
    let results: Vec<Value> = body["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, input)| {
            json!({"id": (500 + i).to_string(), "new": true, "properties": {},
                   "objectWriteTraceId": input["objectWriteTraceId"]})
        })
        .rev()
        .collect();
    axum::Json(json!({"status": "COMPLETE", "results": results})).into_response()
}

#[tokio::test]
async fn creates_and_upserts_without_a_result_are_unknown_never_successes() {
    let app = Router::new()
        .route("/crm/v3/objects/contacts/batch/create", post(partial_batch))
        .route("/crm/v3/objects/contacts/batch/upsert", post(partial_batch));
    let base = serve(app).await;
    let client = Client::new(lossy_config(&base)).unwrap();
    let inputs: Vec<WriteInput> = (0..4)
        .map(|i| WriteInput::new([("email", format!("u{i}@x.io"))]))
        .collect();
    let out = client
        .batch_create(&ObjectType::Contacts, inputs.clone())
        .await;
    assert_eq!(out[0], WriteOutcome::Created { id: "500".into() });
    assert_eq!(out[2], WriteOutcome::Created { id: "502".into() });
    for i in [1, 3] {
        let WriteOutcome::Unknown { reason } = &out[i] else {
            panic!("{i}: {:?}", out[i])
        };
        assert!(
            reason.contains("neither a result nor an error") && reason.contains("batch/create"),
            "{reason}"
        );
    }
    let keyed: Vec<(String, WriteInput)> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, w)| (format!("u{i}@x.io"), w))
        .collect();
    let out = client
        .batch_upsert(&ObjectType::Contacts, "email", keyed)
        .await;
    assert_eq!(out[0], WriteOutcome::Created { id: "500".into() });
    assert!(
        matches!(&out[1], WriteOutcome::Unknown { reason } if reason.contains("batch/upsert")),
        "{out:?}"
    );
    assert!(matches!(&out[3], WriteOutcome::Unknown { .. }), "{out:?}");
}

/// A batch read of associations as HubSpot answers it for records with many: deal 1's first
/// page with a `paging.next`, deal 2 whole, deal 3 not answered at all. Each listing of one
/// deal answers its every association.
#[tokio::test]
async fn a_paged_or_unanswered_batch_read_of_associations_is_completed_by_listing() {
    let listings = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&listings);
    let app = Router::new()
        .route(
            "/crm/v4/associations/deals/line_items/batch/read",
            post(|body: axum::Json<Value>| async move {
                let asked: Vec<&str> = body["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap())
                    .collect();
                assert_eq!(asked.len(), 3, "{asked:?}");
                let item = |id: u64| json!({"toObjectId": id, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 19, "label": null}]});
                axum::Json(json!({"status": "COMPLETE", "results": [
                    {"from": {"id": "1"}, "to": [item(11)], "paging": {"next": {"after": "p2"}}},
                    {"from": {"id": "2"}, "to": [item(21), item(22)]}
                ]}))
            }),
        )
        .route(
            "/crm/v4/objects/deals/{id}/associations/line_items",
            get(
                move |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let ids: Vec<u64> = match id.as_str() {
                        "1" => vec![11, 12],
                        _ => vec![],
                    };
                    let results: Vec<Value> = ids
                        .into_iter()
                        .map(|t| json!({"toObjectId": t, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 19}]}))
                        .collect();
                    axum::Json(json!({"results": results}))
                },
            ),
        );
    let base = serve(app).await;
    let client = Client::new(lossy_config(&base)).unwrap();
    let ids: Vec<String> = ["1", "2", "3", "2"].iter().map(|s| s.to_string()).collect();
    let got = client
        .associations_of_many(&ObjectType::deals(), &ids, &ObjectType::line_items())
        .await
        .unwrap();
    let to = |deal: &str| -> Vec<String> {
        let mut v: Vec<String> = got[deal].iter().map(|r| r.to_id.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(to("1"), ["11", "12"], "a paged answer is listed whole");
    assert_eq!(to("2"), ["21", "22"]);
    assert!(
        to("3").is_empty(),
        "an unanswered deal is listed: it has none"
    );
    assert_eq!(listings.load(Ordering::SeqCst), 2, "deals 1 and 3 only");
}
