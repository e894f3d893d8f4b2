//! HTTP source and sink against a small axum server: three pagination styles, incremental
//! reads, bad responses, retries (429, 503, 400), templated paths, idempotency keys, batches,
//! per-record outcomes, the throttle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use indexmap::IndexMap;
use rivulet_mapping::Context;
use rivulet_runtime::connector::{Source, SourceError};
use rivulet_runtime::connectors::http::{
    HttpClient, HttpError, HttpReader, HttpWriter, RetryPolicy,
};
use rivulet_runtime::{ActionOutcome, Item, Prepared, Record};
use rivulet_spec::model::{
    CursorPagination, HttpConnection, HttpIncremental, HttpReadMethod, HttpSink, HttpSource,
    HttpWriteMethod, PagePagination, Pagination, Throttle,
};
use serde_json::{Value, json};

#[derive(Default)]
struct Server {
    hits: Mutex<HashMap<String, u32>>,
    /// (method, path, idempotency key, body) of writes.
    writes: Mutex<Vec<Write>>,
    queries: Mutex<Vec<HashMap<String, String>>>,
}

type S = Arc<Server>;

/// A write the server received: method, path, idempotency key, body.
type Write = (String, String, Option<String>, Value);

impl Server {
    fn hit(&self, name: &str) -> u32 {
        let mut h = self.hits.lock().unwrap();
        let n = h.entry(name.to_string()).or_default();
        *n += 1;
        *n
    }
    fn hits(&self, name: &str) -> u32 {
        self.hits.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

fn customers() -> Vec<Value> {
    (1..=5)
        .map(|i| json!({"id": i, "name": format!("c{i}"), "updated_at": i * 10}))
        .collect()
}

async fn links(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    s.hit("links");
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let all = customers();
    let chunk: Vec<Value> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
    let next = if page * 2 < all.len() {
        // Relative to the request URL.
        json!(format!("links?page={}", page + 1))
    } else {
        Value::Null
    };
    Json(json!({"data": chunk, "links": {"next": next}}))
}

async fn cursor(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    s.hit("cursor");
    let after: usize = q.get("after").and_then(|p| p.parse().ok()).unwrap_or(0);
    let all = customers();
    let chunk: Vec<Value> = all.iter().skip(after).take(3).cloned().collect();
    let paging = if after + 3 < all.len() {
        json!({"next": {"after": (after + 3).to_string()}})
    } else {
        json!({})
    };
    Json(json!({"results": chunk, "paging": paging}))
}

async fn pages(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    s.hit("pages");
    s.queries.lock().unwrap().push(q.clone());
    let page: usize = q.get("p").and_then(|p| p.parse().ok()).unwrap_or(0);
    let size: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(10);
    let since: i64 = q
        .get("updated_since")
        .and_then(|p| p.parse().ok())
        .unwrap_or(i64::MIN);
    let all: Vec<Value> = customers()
        .into_iter()
        .filter(|c| c["updated_at"].as_i64().unwrap() > since)
        .collect();
    Json(Value::Array(
        all.into_iter().skip(page * size).take(size).collect(),
    ))
}

async fn html(State(s): State<S>) -> Response {
    s.hit("html");
    (
        StatusCode::OK,
        [("content-type", "text/html")],
        format!("<html><body>{}</body></html>", "maintenance ".repeat(50)),
    )
        .into_response()
}

async fn limited(State(s): State<S>) -> Response {
    if s.hit("limited") == 1 {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response()
    } else {
        Json(json!([{"id": "a"}])).into_response()
    }
}

async fn unavailable(State(s): State<S>) -> Response {
    if s.hit("unavailable") == 1 {
        (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response()
    } else {
        Json(json!([{"id": "b"}])).into_response()
    }
}

async fn refused(State(s): State<S>) -> Response {
    s.hit("refused");
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "bad filter"})),
    )
        .into_response()
}

async fn ok(State(s): State<S>) -> Json<Value> {
    s.hit("ok");
    Json(json!([]))
}

fn idem(h: &HeaderMap) -> Option<String> {
    h.get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn create(State(s): State<S>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let n = s.hit("create");
    s.writes.lock().unwrap().push((
        "POST".into(),
        "/customers".into(),
        idem(&headers),
        body.clone(),
    ));
    if body["name"] == "bad" {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "name is not allowed"})),
        )
            .into_response();
    }
    (StatusCode::CREATED, Json(json!({"id": format!("c-{n}")}))).into_response()
}

async fn replace(
    State(s): State<S>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    s.writes.lock().unwrap().push((
        "PUT".into(),
        format!("/customers/{id}"),
        idem(&headers),
        body,
    ));
    Json(json!({"id": id}))
}

async fn batch(State(s): State<S>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    s.writes
        .lock()
        .unwrap()
        .push(("POST".into(), "/batch".into(), idem(&headers), body.clone()));
    let ids: Vec<Value> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"id": format!("b-{}", r["name"].as_str().unwrap())}))
        .collect();
    Json(Value::Array(ids))
}

async fn start() -> (String, S) {
    let state: S = Arc::new(Server::default());
    let api = Router::new()
        .route("/customers/links", get(links))
        .route("/customers/cursor", get(cursor))
        .route("/customers/pages", get(pages))
        .route("/html", get(html))
        .route("/limited", get(limited))
        .route("/unavailable", get(unavailable))
        .route("/refused", get(refused))
        .route("/ok", get(ok))
        .route("/customers", post(create))
        .route("/customers/{id}", put(replace))
        .route("/batch", post(batch))
        .with_state(state.clone());
    let app = Router::new().nest("/api", api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/api"), state)
}

fn connection(base: &str, throttle: Option<Throttle>) -> HttpConnection {
    HttpConnection {
        display_name: None,
        base_url: base.into(),
        headers: IndexMap::new(),
        throttle,
        timeout: rivulet_spec::model::Duration::from_secs(5),
    }
}

fn client(base: &str) -> HttpClient {
    HttpClient::with_policy(
        &connection(base, None),
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(2),
            max_rate_limited_attempts: 3,
        },
    )
    .unwrap()
}

fn http_source(path: &str) -> HttpSource {
    HttpSource {
        connection: "api".into(),
        path: path.into(),
        method: HttpReadMethod::Get,
        query: IndexMap::new(),
        body: None,
        records: "$".into(),
        pagination: None,
        incremental: None,
    }
}

async fn read_all(reader: &mut HttpReader, max: usize) -> (Vec<Record>, Option<Value>) {
    let mut out = Vec::new();
    let mut checkpoint = None;
    while let Some(page) = reader.next_page(max).await.unwrap() {
        reader.committed(&page.checkpoint).await.unwrap();
        checkpoint = Some(page.checkpoint.clone());
        for item in page.items {
            match item {
                Item::Record(r) => out.push(r),
                Item::Bad { message, .. } => panic!("{message}"),
            }
        }
    }
    (out, checkpoint)
}

fn ids(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.key.clone()).collect()
}

#[tokio::test]
async fn next_link_pagination() {
    let (base, server) = start().await;
    let mut cfg = http_source("/customers/links");
    cfg.records = "$.data".into();
    cfg.pagination = Some(Pagination::NextLink("$.links.next".into()));
    let mut r = HttpReader::new(&cfg, client(&base), None).unwrap();
    let (records, cp) = read_all(&mut r, 10).await;
    assert_eq!(ids(&records), ["1", "2", "3", "4", "5"]);
    assert_eq!(server.hits("links"), 3);
    assert_eq!(records[0].data["name"], json!("c1"));
    assert_eq!(records[0].version, "");
    assert_eq!(cp.unwrap()["pending"], Value::Null);
}

#[tokio::test]
async fn cursor_pagination_and_resume_inside_a_response() {
    let (base, server) = start().await;
    let mut cfg = http_source("/customers/cursor");
    cfg.records = "$.results".into();
    cfg.pagination = Some(Pagination::Cursor(CursorPagination {
        path: "$.paging.next.after".into(),
        param: "after".into(),
    }));
    let mut r = HttpReader::new(&cfg, client(&base), None).unwrap();
    // Two of the first response's three records, then a "restart".
    let page = r.next_page(2).await.unwrap().unwrap();
    assert_eq!(page.items.len(), 2);
    let mut r = HttpReader::new(&cfg, client(&base), Some(page.checkpoint)).unwrap();
    let (records, _) = read_all(&mut r, 2).await;
    assert_eq!(ids(&records), ["3", "4", "5"]);
    assert_eq!(server.hits("cursor"), 3);
}

#[tokio::test]
async fn page_pagination_with_incremental_reads() {
    let (base, server) = start().await;
    let mut cfg = http_source("/customers/pages");
    cfg.query.insert("sort".into(), "updated".into());
    cfg.pagination = Some(Pagination::Page(PagePagination {
        param: "p".into(),
        start: 0,
        size_param: Some("per_page".into()),
        size: Some(2),
    }));
    cfg.incremental = Some(HttpIncremental {
        field: "$.updated_at".into(),
        param: "updated_since".into(),
    });
    let mut r = HttpReader::new(&cfg, client(&base), None).unwrap();
    let (records, cp) = read_all(&mut r, 100).await;
    assert_eq!(ids(&records), ["1", "2", "3", "4", "5"]);
    assert_eq!(records[4].version, "50");
    // Pages 0, 1, 2 and the empty page 3.
    assert_eq!(server.hits("pages"), 4);
    let cp = cp.unwrap();
    assert_eq!(cp["max_seen"], json!(50));
    {
        let q = server.queries.lock().unwrap();
        assert_eq!(q[0].get("sort").map(String::as_str), Some("updated"));
        assert_eq!(q[0].get("per_page").map(String::as_str), Some("2"));
        assert_eq!(q[0].get("p").map(String::as_str), Some("0"));
        assert!(!q[0].contains_key("updated_since"));
    }

    // The next run sends the largest value seen, and finds nothing newer.
    let mut r = HttpReader::new(&cfg, client(&base), Some(cp)).unwrap();
    let (records, _) = read_all(&mut r, 100).await;
    assert!(records.is_empty());
    let q = server.queries.lock().unwrap();
    assert_eq!(
        q.last().unwrap().get("updated_since").map(String::as_str),
        Some("50")
    );
}

#[tokio::test]
async fn a_response_that_is_not_json_is_an_error_with_status_and_snippet() {
    let (base, _server) = start().await;
    let mut r = HttpReader::new(&http_source("/html"), client(&base), None).unwrap();
    let err = r.next_page(10).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HTTP 200"), "{text}");
    assert!(text.contains("<html><body>maintenance"), "{text}");
    assert!(text.len() < 400, "{text}");

    // Records that are not an array of objects.
    let mut cfg = http_source("/customers/links");
    cfg.records = "$.links".into();
    let mut r = HttpReader::new(&cfg, client(&base), None).unwrap();
    let err = r.next_page(10).await.unwrap_err();
    assert!(
        matches!(err, SourceError::BadResponse { status: 200, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn retries_429_with_retry_after_and_503_but_not_400() {
    let (base, server) = start().await;
    let c = client(&base);
    let t = Instant::now();
    let resp = c.get_json("/limited", &[]).await.unwrap();
    assert_eq!(resp.body, json!([{"id": "a"}]));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_eq!(c.stats().rate_limited, 1);
    assert_eq!(c.stats().retries, 1);

    let resp = c.get_json("/unavailable", &[]).await.unwrap();
    assert_eq!(resp.body, json!([{"id": "b"}]));
    assert_eq!(server.hits("unavailable"), 2);
    assert_eq!(c.stats().retries, 2);

    let err = c.get_json("/refused", &[]).await.unwrap_err();
    assert!(
        matches!(err, HttpError::Status { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bad filter"), "{err}");
    assert_eq!(server.hits("refused"), 1);
    assert_eq!(c.stats().retries, 2);
}

#[tokio::test]
async fn throttle_limits_requests_per_window() {
    let (base, server) = start().await;
    let c = HttpClient::new(&connection(
        &base,
        Some(Throttle {
            limit: 5,
            per: rivulet_spec::model::Duration(Duration::from_secs(1)),
        }),
    ))
    .unwrap();
    let t = Instant::now();
    for _ in 0..10 {
        c.get_json("/ok", &[]).await.unwrap();
    }
    assert_eq!(server.hits("ok"), 10);
    // The sixth waited for the first to leave the window (the rest of the burst left with it).
    assert!(c.stats().throttle_waits >= 1);
    assert!(t.elapsed() >= Duration::from_millis(900));
}

fn ctx() -> Context {
    Context::new("f", "1", chrono::Utc::now())
}

fn record(key: &str, data: Value) -> Record {
    Record {
        key: key.into(),
        version: "v1".into(),
        data,
        origin: format!("test {key}"),
    }
}

fn fields(name: &str, n: i64) -> IndexMap<String, Value> {
    let mut m = IndexMap::new();
    m.insert("name".to_string(), json!(name));
    m.insert("n".to_string(), json!(n));
    m
}

#[tokio::test]
async fn sink_per_record_with_outcomes_and_idempotency_keys() {
    let (base, server) = start().await;
    let cfg = HttpSink {
        connection: "api".into(),
        method: HttpWriteMethod::Post,
        path: "/customers".into(),
        batch_size: None,
        backoff: Default::default(),
        when: None,
        name: None,
        prerequisites: None,
    };
    let w = HttpWriter::new(&cfg, client(&base), "flow-a").unwrap();
    let recs = [
        record("r1", json!({})),
        record("r2", json!({})),
        record("r3", json!({})),
    ];
    let fs = [fields("ann", 1), fields("bad", 2), fields("cy", 3)];
    let batch: Vec<Prepared<'_>> = recs
        .iter()
        .zip(&fs)
        .map(|(record, fields)| Prepared { record, fields })
        .collect();
    let out = w.send_all(&batch, &ctx()).await;
    assert_eq!(
        out[0],
        ActionOutcome::Done {
            id: Some("c-1".into())
        }
    );
    match &out[1] {
        ActionOutcome::Failed { message } => {
            assert!(message.contains("422"), "{message}");
            assert!(message.contains("name is not allowed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        out[2],
        ActionOutcome::Done {
            id: Some("c-3".into())
        }
    );
    let writes = server.writes.lock().unwrap();
    assert_eq!(writes.len(), 3, "a 4xx is not retried");
    assert_eq!(writes[0].2.as_deref(), Some("flow-a:r1:v1"));
    assert_eq!(writes[0].3, json!({"name": "ann", "n": 1}));
}

#[tokio::test]
async fn sink_templated_path_fails_only_the_record_it_cannot_render() {
    let (base, server) = start().await;
    let cfg = HttpSink {
        connection: "api".into(),
        method: HttpWriteMethod::Put,
        path: "/customers/{{record.id}}".into(),
        batch_size: None,
        backoff: Default::default(),
        when: None,
        name: None,
        prerequisites: None,
    };
    let w = HttpWriter::new(&cfg, client(&base), "flow-b").unwrap();
    let recs = [
        record("r1", json!({"id": "x-1"})),
        record("r2", json!({"other": 1})),
    ];
    let fs = [fields("a", 1), fields("b", 2)];
    let batch: Vec<Prepared<'_>> = recs
        .iter()
        .zip(&fs)
        .map(|(record, fields)| Prepared { record, fields })
        .collect();
    let out = w.send_all(&batch, &ctx()).await;
    assert_eq!(
        out[0],
        ActionOutcome::Done {
            id: Some("x-1".into())
        }
    );
    assert!(
        matches!(&out[1], ActionOutcome::Failed { message } if message.contains("record.id")),
        "{:?}",
        out[1]
    );
    let writes = server.writes.lock().unwrap();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].1, "/customers/x-1");
    assert_eq!(writes[0].0, "PUT");

    assert!(
        HttpWriter::new(
            &HttpSink {
                path: "/c/{{#if}}".into(),
                ..cfg
            },
            client(&base),
            "f"
        )
        .is_err()
    );
}

#[tokio::test]
async fn sink_batches_as_json_arrays() {
    let (base, server) = start().await;
    let cfg = HttpSink {
        connection: "api".into(),
        method: HttpWriteMethod::Post,
        path: "/batch".into(),
        batch_size: Some(2),
        backoff: Default::default(),
        when: None,
        name: None,
        prerequisites: None,
    };
    let w = HttpWriter::new(&cfg, client(&base), "flow-c").unwrap();
    let recs: Vec<Record> = (1..=3)
        .map(|i| record(&format!("r{i}"), json!({})))
        .collect();
    let fs: Vec<IndexMap<String, Value>> = (1..=3).map(|i| fields(&format!("n{i}"), i)).collect();
    let batch: Vec<Prepared<'_>> = recs
        .iter()
        .zip(&fs)
        .map(|(record, fields)| Prepared { record, fields })
        .collect();
    let out = w.send_all(&batch, &ctx()).await;
    let got: Vec<Option<String>> = out
        .iter()
        .map(|o| match o {
            ActionOutcome::Done { id } => id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            Some("b-n1".into()),
            Some("b-n2".into()),
            Some("b-n3".into())
        ]
    );
    let writes = server.writes.lock().unwrap();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].3.as_array().unwrap().len(), 2);
    assert_eq!(writes[1].3, json!([{"name": "n3", "n": 3}]));
    let k0 = writes[0].2.clone().unwrap();
    assert!(k0.starts_with("flow-c:batch:"), "{k0}");
    assert_ne!(writes[0].2, writes[1].2);
}

#[tokio::test]
async fn an_unreachable_server_makes_records_wait_without_leaking_urls() {
    // A port nothing listens on: connection refused, so surely not sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}/api");
    let c = client(&base);
    let cfg = HttpSink {
        connection: "api".into(),
        method: HttpWriteMethod::Post,
        path: "/customers".into(),
        batch_size: None,
        backoff: Default::default(),
        when: None,
        name: None,
        prerequisites: None,
    };
    let w = HttpWriter::new(&cfg, c.clone(), "f").unwrap();
    let rec = record("r1", json!({}));
    let f = fields("a", 1);
    let out = w
        .send_all(
            &[Prepared {
                record: &rec,
                fields: &f,
            }],
            &ctx(),
        )
        .await;
    // The receiver is down, not the record at fault: the page waits and comes again.
    match &out[0] {
        ActionOutcome::Transient { reason } => {
            assert!(!reason.contains(&addr.to_string()), "{reason}");
            assert!(reason.contains("connect"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.stats().requests, 3);
}
