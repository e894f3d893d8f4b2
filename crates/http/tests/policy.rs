//! The send loop against a small axum server on 127.0.0.1: what is retried, what waits, what
//! is refused. Delays are kept small and tests synchronise on what the server saw, never on
//! sleeps of the wall clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use rivulet_http::{
    Error, Hooks, Policy, PolicyConfig, RateLimitAction, Request, RetryPolicy, Slot, StopReason,
    Throttle, TransportKind, Url,
};

#[derive(Default)]
struct Hits {
    flaky: AtomicU32,
    limited: AtomicU32,
    bad: AtomicU32,
    hang: AtomicU32,
    auth: AtomicU32,
    big: AtomicU32,
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn flaky(State(h): State<Arc<Hits>>) -> Response {
    if h.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    } else {
        "ok".into_response()
    }
}

fn app(hits: Arc<Hits>) -> Router {
    Router::new()
        // 503 on the first call, then 200.
        .route("/flaky", get(flaky).post(flaky))
        // 429 with the Retry-After given in the query, on the first call; then 200.
        .route(
            "/limited",
            get(
                |State(h): State<Arc<Hits>>,
                 axum::extract::RawQuery(q): axum::extract::RawQuery| async move {
                    if h.limited.fetch_add(1, Ordering::SeqCst) == 0 {
                        let after = q.unwrap_or_default();
                        let mut headers = HeaderMap::new();
                        headers.insert("retry-after", after.parse().unwrap());
                        (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response()
                    } else {
                        "ok".into_response()
                    }
                },
            ),
        )
        .route(
            "/bad",
            post(|State(h): State<Arc<Hits>>| async move {
                h.bad.fetch_add(1, Ordering::SeqCst);
                (StatusCode::BAD_REQUEST, r#"{"error":"no"}"#)
            }),
        )
        // Counts the request and never answers.
        .route(
            "/hang",
            post(|State(h): State<Arc<Hits>>| async move {
                h.hang.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            })
            .get(|State(h): State<Arc<Hits>>| async move {
                h.hang.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }),
        )
        // 401 unless the bearer token is "fresh".
        .route(
            "/auth",
            get(
                |State(h): State<Arc<Hits>>, headers: HeaderMap| async move {
                    h.auth.fetch_add(1, Ordering::SeqCst);
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some("Bearer fresh") => StatusCode::OK,
                        _ => StatusCode::UNAUTHORIZED,
                    }
                },
            ),
        )
        .route(
            "/big",
            get(|State(h): State<Arc<Hits>>| async move {
                h.big.fetch_add(1, Ordering::SeqCst);
                "x".repeat(2000)
            }),
        )
        // The same 2000 bytes, streamed without a Content-Length.
        .route(
            "/big-stream",
            get(|| async {
                let chunks = (0..20).map(|_| Ok::<_, std::io::Error>("y".repeat(100)));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .with_state(hits)
}

fn config() -> PolicyConfig {
    PolicyConfig {
        label: "test".into(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_rate_limited_attempts: 3,
            max_retry_after: Duration::from_millis(300),
        },
        timeout: Duration::from_millis(300),
        ..PolicyConfig::default()
    }
}

async fn setup(config: PolicyConfig) -> (Policy, String, Arc<Hits>) {
    let hits = Arc::new(Hits::default());
    let base = serve(app(hits.clone())).await;
    (Policy::new(config).unwrap(), base, hits)
}

/// `policy.send(&request)`, taking the request by value.
async fn send(policy: &Policy, request: Request) -> Result<rivulet_http::Response, Error> {
    policy.send(&request).await
}

fn url(base: &str, path: &str) -> Url {
    Url::parse(&format!("{base}{path}")).unwrap()
}

#[tokio::test]
async fn a_5xx_is_retried_then_succeeds() {
    let (policy, base, hits) = setup(config()).await;
    let r = send(&policy, Request::get(url(&base, "/flaky")))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"ok");
    assert_eq!(r.attempts, 2);
    assert_eq!(hits.flaky.load(Ordering::SeqCst), 2);
    let s = policy.stats();
    assert_eq!((s.requests, s.retries, s.server_errors), (2, 1, 1));
}

#[tokio::test]
async fn a_5xx_on_a_create_is_not_resent() {
    let (policy, base, hits) = setup(config()).await;
    let e = send(&policy, Request::post(url(&base, "/flaky")))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        hits.flaky.load(Ordering::SeqCst),
        1,
        "it may have been processed"
    );
}

#[tokio::test]
async fn a_429_waits_as_asked_and_the_cap_bounds_it() {
    let (policy, base, hits) = setup(config()).await;
    let started = Instant::now();
    let r = send(&policy, Request::get(url(&base, "/limited?0.05")))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(hits.limited.load(Ordering::SeqCst), 2);
    assert_eq!(policy.stats().rate_limited, 1);

    // The server asks for a day; the policy waits its cap (300 ms) and no longer.
    hits.limited.store(0, Ordering::SeqCst);
    for huge in ["86400", "18446744073709551615", "1e300"] {
        hits.limited.store(0, Ordering::SeqCst);
        let started = Instant::now();
        let r = policy
            .send(&Request::get(url(&base, &format!("/limited?{huge}"))))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(10),
            "{huge}: {took:?}"
        );
    }
}

/// Tells when a 429 arrived, and waits as suggested.
struct Signal(Option<tokio::sync::oneshot::Sender<()>>);

impl Hooks for Signal {
    fn on_rate_limited(
        &mut self,
        _answer: &rivulet_http::Response,
        _retry_after: Option<Duration>,
        suggested: Duration,
    ) -> RateLimitAction {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
        RateLimitAction::Wait(suggested)
    }
}

#[tokio::test]
async fn a_429_pauses_the_whole_budget() {
    let mut c = config();
    c.throttle = Some(Throttle {
        limit: 100,
        per: Duration::from_secs(1),
    });
    let (policy, base, hits) = setup(c).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let limited = {
        let (policy, url) = (policy.clone(), url(&base, "/limited?0.25"));
        tokio::spawn(async move {
            policy
                .send_with(&Request::get(url), &mut Signal(Some(tx)))
                .await
        })
    };
    // On this single-threaded runtime the pause is in force by the time the signal is read.
    rx.await.unwrap();
    let started = Instant::now();
    let other = send(&policy, Request::get(url(&base, "/big")))
        .await
        .unwrap();
    assert_eq!(other.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "another request waited out the pause too: {:?}",
        started.elapsed()
    );
    limited.await.unwrap().unwrap();
    assert_eq!(hits.limited.load(Ordering::SeqCst), 2);
    let s = policy.stats();
    assert_eq!(s.throttle_waits, 2, "{s:?}");
    assert!(s.throttle_wait_ms >= 400, "{s:?}");
}

#[tokio::test]
async fn a_4xx_is_returned_at_once_with_its_body() {
    let (policy, base, hits) = setup(config()).await;
    let e = policy
        .send(&Request::post(url(&base, "/bad")).idempotent(true))
        .await
        .unwrap_err();
    match e {
        Error::Status {
            status,
            body,
            attempts,
            ..
        } => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body, br#"{"error":"no"}"#);
            assert_eq!(attempts, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.bad.load(Ordering::SeqCst), 1);
}

/// Kind, maybe-sent and attempts of a transport error.
fn transport(e: &Error) -> (TransportKind, bool, u32) {
    match e {
        Error::Transport {
            kind,
            maybe_sent,
            attempts,
            ..
        } => (*kind, *maybe_sent, *attempts),
        other => panic!("not a transport error: {other:?}"),
    }
}

#[tokio::test]
async fn a_create_is_not_resent_after_a_timeout() {
    let (policy, base, hits) = setup(config()).await;
    let e = policy
        .send(&Request::post(url(&base, "/hang")).json(b"{}".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(transport(&e), (TransportKind::Timeout, true, 1));
    assert!(!e.to_string().contains("127.0.0.1"), "{e}");
    assert_eq!(hits.hang.load(Ordering::SeqCst), 1, "never sent twice");
    assert_eq!(policy.stats().timeouts, 1);

    // An idempotent request is sent again, up to max_attempts.
    hits.hang.store(0, Ordering::SeqCst);
    let e = send(&policy, Request::get(url(&base, "/hang")))
        .await
        .unwrap_err();
    assert_eq!(e.attempts(), 3);
    assert_eq!(hits.hang.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_create_is_resent_after_a_refused_connection() {
    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let policy = Policy::new(config()).unwrap();
    let e = policy
        .send(&Request::post(url(
            &format!("http://{closed}"),
            "/create?key=SECRET",
        )))
        .await
        .unwrap_err();
    // Never reached the server, so sent again.
    assert_eq!(transport(&e), (TransportKind::Connect, false, 3));
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("SECRET"), "{shown}");
    }
    assert_eq!(policy.stats().retries, 2);
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let mut c = config();
    c.max_body_bytes = 1000;
    let (policy, base, hits) = setup(c).await;
    for path in ["/big", "/big-stream"] {
        let e = send(&policy, Request::get(url(&base, path)))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::TooLarge { limit: 1000, status, attempts: 1 } if status == StatusCode::OK),
            "{path}: {e:?}"
        );
    }
    assert_eq!(hits.big.load(Ordering::SeqCst), 1, "not retried");
    // Within the cap, the same answers are read whole.
    let mut c = config();
    c.max_body_bytes = 2000;
    let policy = Policy::new(c).unwrap();
    for path in ["/big", "/big-stream"] {
        let r = policy.send(&Request::get(url(&base, path))).await.unwrap();
        assert_eq!(r.body.len(), 2000);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("daily limit: come back tomorrow")]
struct Daily;

/// Stops on any 429, adds a token (fresh after a 401), and records what it saw.
#[derive(Default)]
struct TestHooks {
    admitted: u32,
    authorized: u32,
    observed: Vec<u16>,
    refreshed: bool,
    retry_after: Option<Duration>,
}

impl Hooks for TestHooks {
    fn admit(&mut self) -> Result<(), StopReason> {
        self.admitted += 1;
        Ok(())
    }

    async fn authorize(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, StopReason> {
        self.authorized += 1;
        let token = if self.refreshed { "fresh" } else { "stale" };
        Ok(request.bearer_auth(token))
    }

    fn observe(&mut self, status: StatusCode, _headers: &HeaderMap, slot: &Slot) {
        self.observed.push(status.as_u16());
        slot.observe(None, None, None);
    }

    fn on_rate_limited(
        &mut self,
        _answer: &rivulet_http::Response,
        retry_after: Option<Duration>,
        _suggested: Duration,
    ) -> RateLimitAction {
        self.retry_after = retry_after;
        RateLimitAction::Stop(Box::new(Daily))
    }

    async fn on_unauthorized(
        &mut self,
        answer: &rivulet_http::Response,
    ) -> Result<bool, StopReason> {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        self.refreshed = true;
        Ok(true)
    }
}

#[tokio::test]
async fn a_hook_stops_a_429() {
    let mut c = config();
    c.throttle = Some(Throttle::default());
    let (policy, base, hits) = setup(c).await;
    let mut hooks = TestHooks::default();
    let e = policy
        .send_with(&Request::get(url(&base, "/limited?7")), &mut hooks)
        .await
        .unwrap_err();
    assert_eq!(
        hits.limited.load(Ordering::SeqCst),
        1,
        "stopped, not retried"
    );
    assert_eq!(hooks.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(hooks.observed, vec![429]);
    match e {
        Error::Stopped { reason, attempts } => {
            assert_eq!(attempts, 1);
            assert!(reason.downcast::<Daily>().is_ok());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_401_is_retried_once_with_fresh_credentials() {
    let (policy, base, hits) = setup(config()).await;
    let mut hooks = TestHooks::default();
    let r = policy
        .send_with(&Request::get(url(&base, "/auth")), &mut hooks)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(hits.auth.load(Ordering::SeqCst), 2);
    assert_eq!((hooks.admitted, hooks.authorized), (2, 2));
    assert!(hooks.observed.is_empty(), "no budget, nothing to observe");

    // Without a hook, a 401 is an answer like any other 4xx.
    let e = send(&policy, Request::get(url(&base, "/auth")))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(hits.auth.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_of_429_are_bounded() {
    #[derive(Default)]
    struct Always(Mutex<u32>);
    let always = Arc::new(Always::default());
    let app = Router::new()
        .route(
            "/",
            get(|State(a): State<Arc<Always>>| async move {
                *a.0.lock() += 1;
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "no")
            }),
        )
        .with_state(always.clone());
    let base = serve(app).await;
    let policy = Policy::new(config()).unwrap();
    let e = send(&policy, Request::get(url(&base, "/")))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::RateLimited { attempts: 3, body, .. } if body == b"no"),
        "{e:?}"
    );
    assert_eq!(*always.0.lock(), 3);
}

#[test]
fn bad_settings_are_refused() {
    let mut c = config();
    c.max_in_flight = 0;
    assert!(matches!(Policy::new(c), Err(Error::Config(_))));
    let mut c = config();
    c.throttle = Some(Throttle {
        limit: 0,
        per: Duration::from_secs(1),
    });
    assert!(matches!(Policy::new(c), Err(Error::Config(_))));
}
