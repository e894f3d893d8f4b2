//! The one send loop. A [`Policy`] takes a [`Request`] through: the hook's admission check →
//! a throttle slot (the request's budget or the policy's) → an in-flight permit → the hook's
//! per-attempt authorisation → the send (with the timeout) → a body read bounded by the size
//! cap → classification → a wait and another attempt, or the answer.
//!
//! The rules: a 429 pauses the whole budget for the server's `Retry-After` (or what the
//! [`Hooks::on_rate_limited`] hook decides), capped by [`RetryPolicy::max_retry_after`]; 5xx,
//! timeouts and connection errors back off and retry; other statuses are returned; a 401 is
//! retried once when [`Hooks::on_unauthorized`] says fresh credentials may cure it. A request
//! that is not idempotent is not sent again after an ambiguous failure (a timeout, a broken
//! connection, a 5xx), but is after a connect error (it never reached the server).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::{self, SharedClock};
use crate::error::{Error, HeaderNames, StopReason, describe};
use crate::request::{Request, Response};
use crate::retry::{Class, RetryPolicy, TransportKind, classify_status, parse_retry_after};
use crate::throttle::{InFlight, RollingWindow, Slot, Throttle};

/// The default cap on an answer's body: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// Settings of a [`Policy`].
#[derive(Clone)]
pub struct PolicyConfig {
    /// A name for log lines (`hubspot`, a connection's name).
    pub label: String,
    /// Retries and the cap on server-imposed waits.
    pub retry: RetryPolicy,
    /// Time allowed for one attempt, from send to the last byte of the answer; connecting gets
    /// at most 10 s of it.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Largest answer body read; a larger one is refused with [`Error::TooLarge`].
    pub max_body_bytes: u64,
    /// The policy's own request budget; requests may name another ([`Request::budget`]).
    pub throttle: Option<Throttle>,
    /// Headers sent with every request; their values are marked sensitive (never logged).
    pub default_headers: HeaderMap,
    /// Wall time, for `Retry-After` dates.
    pub clock: SharedClock,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            label: "http".into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            max_in_flight: 5,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            throttle: None,
            default_headers: HeaderMap::new(),
            clock: clock::system(),
        }
    }
}

impl fmt::Debug for PolicyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyConfig")
            .field("label", &self.label)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("throttle", &self.throttle)
            .field("default_headers", &HeaderNames(&self.default_headers))
            .field("clock", &self.clock)
            .finish()
    }
}

/// Counters since the policy was made (shared by clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent (each attempt counts).
    pub requests: u64,
    /// Attempts that were retries (after a 429, 5xx, timeout, connection error or 401).
    pub retries: u64,
    /// Answers received (any status): a connection that has answered is reachable.
    pub answers: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Attempts that got no answer in time.
    pub timeouts: u64,
    /// Times a request waited for its throttle slot.
    pub throttle_waits: u64,
    /// Time spent waiting for throttle slots, in milliseconds.
    pub throttle_wait_ms: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    answers: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    timeouts: AtomicU64,
    throttle_waits: AtomicU64,
    throttle_wait_ms: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

tokio::task_local! {
    /// The requests of the work being counted (see [`count_calls`]).
    static CALLS: Arc<AtomicU64>;
    /// The longest wait the work makes on a server's behalf (see [`with_patience`]).
    static PATIENCE: Duration;
}

/// Runs `work` waiting at most `patience` at a time on a server's behalf: a wait the policy
/// would make before sending again — a `Retry-After` (capped), a 429's pause of the budget, a
/// backoff after a 5xx, a timeout or a broken connection — that is longer is not made; the
/// request fails at once with the error it would end with after its last attempt, and a
/// warning says so. (A paused budget stays paused for `patience` at most, so the requests
/// sharing it do not hammer the server meanwhile.) Meant for `run --once` with its
/// `--once-wait`: a server that asks for hours then costs the run that long, not hours. Tasks
/// `work` spawns keep it when spawned through [`counted`].
pub async fn with_patience<F: Future>(patience: Duration, work: F) -> F::Output {
    PATIENCE.scope(patience, work).await
}

/// The patience of the work in hand, when it has one.
fn patience() -> Option<Duration> {
    PATIENCE.try_with(|p| *p).ok()
}

/// Whether `wait` is more than the work in hand waits; says so when it is.
fn impatient(wait: Duration, what: &str) -> bool {
    match patience() {
        Some(limit) if wait > limit => {
            tracing::warn!(
                waiting_s = wait.as_secs_f64(),
                patience_s = limit.as_secs_f64(),
                "{what} longer than this run waits (--once-wait); giving up on the request"
            );
            true
        }
        _ => false,
    }
}

/// Runs `work`, counting every request it sends through any policy (each attempt counts):
/// how a run learns the API calls it cost, whatever connections its actions share with other
/// flows. Tasks `work` spawns are counted when spawned through [`counted`].
pub async fn count_calls<F: Future>(work: F) -> (F::Output, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let out = CALLS.scope(Arc::clone(&counter), work).await;
    (out, counter.load(Ordering::Relaxed))
}

/// `work`, counted by the [`count_calls`] it is spawned from (if any), with the same
/// [`with_patience`]: wrap what is spawned.
pub fn counted<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let counter = CALLS.try_with(Arc::clone).ok();
    let patience = patience();
    let work = crate::throttle::inherit_party(work);
    let work = async move {
        match patience {
            Some(p) => PATIENCE.scope(p, work).await,
            None => work.await,
        }
    };
    async move {
        match counter {
            Some(c) => CALLS.scope(c, work).await,
            None => work.await,
        }
    }
}

/// What to do about a 429.
#[derive(Debug)]
pub enum RateLimitAction {
    /// Pause the budget this long (capped by [`RetryPolicy::max_retry_after`]), then send again.
    Wait(Duration),
    /// Give up now with this error ([`Error::Stopped`]).
    Stop(StopReason),
}

/// What a client adds to the policy: credentials, reading the server's budget reports, and
/// decisions the policy cannot make alone. Every method has a default; `()` uses them all.
/// One value serves one [`Policy::send_with`] call, so it may keep per-request state.
pub trait Hooks: Send {
    /// Before each attempt, before the throttle: `Err` stops the request without sending.
    fn admit(&mut self) -> Result<(), StopReason> {
        Ok(())
    }

    /// Adds credentials to one attempt, after its throttle slot and in-flight permit.
    fn authorize(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> impl Future<Output = Result<reqwest::RequestBuilder, StopReason>> + Send {
        async move { Ok(request) }
    }

    /// Sees each answer's status and headers while its slot is still held, e.g. to pass the
    /// server's usage report to [`Slot::observe`]. Called only for requests with a budget.
    fn observe(&mut self, status: StatusCode, headers: &HeaderMap, slot: &Slot) {
        let _ = (status, headers, slot);
    }

    /// Decides a 429. `retry_after` is the server's `Retry-After` (uncapped); `suggested` is
    /// what the policy would wait: `Retry-After`, else the budget's window, else a backoff.
    fn on_rate_limited(
        &mut self,
        answer: &Response,
        retry_after: Option<Duration>,
        suggested: Duration,
    ) -> RateLimitAction {
        let _ = (answer, retry_after);
        RateLimitAction::Wait(suggested)
    }

    /// A 401: `Ok(true)` when fresh credentials may cure it (the request is sent once more;
    /// a second 401 is returned as it is).
    fn on_unauthorized(
        &mut self,
        answer: &Response,
    ) -> impl Future<Output = Result<bool, StopReason>> + Send {
        let _ = answer;
        async { Ok(false) }
    }
}

impl Hooks for () {}

/// The HTTP policy of one connection. Cheap to clone; clones share the budget, the in-flight
/// limit and the counters.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: PolicyConfig,
    budget: Option<Arc<RollingWindow>>,
    in_flight: InFlight,
    counters: Counters,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended short of a complete answer.
enum Failed {
    Transport(TransportKind, String),
    TooLarge(StatusCode),
}

impl Policy {
    /// Makes a policy (and its HTTP client). No request is sent yet.
    pub fn new(mut config: PolicyConfig) -> Result<Policy, Error> {
        if config.max_in_flight == 0 {
            return Err(Error::Config("max_in_flight must be positive".into()));
        }
        if config.retry.max_attempts == 0 || config.retry.max_rate_limited_attempts == 0 {
            return Err(Error::Config(
                "retry.max_attempts and retry.max_rate_limited_attempts must be at least 1".into(),
            ));
        }
        if let Some(t) = config.throttle
            && (t.limit == 0 || t.per.is_zero())
        {
            return Err(Error::Config(
                "throttle.limit and throttle.per must be positive".into(),
            ));
        }
        for value in config.default_headers.values_mut() {
            value.set_sensitive(true);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.max_in_flight)
            .default_headers(config.default_headers.clone())
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {}", describe(e))))?;
        Ok(Policy {
            inner: Arc::new(Inner {
                http,
                budget: config.throttle.map(RollingWindow::from_throttle),
                in_flight: InFlight::new(config.max_in_flight),
                config,
                counters: Counters::default(),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &PolicyConfig {
        &self.inner.config
    }

    /// The policy's own budget, if it has one.
    pub fn budget(&self) -> Option<&Arc<RollingWindow>> {
        self.inner.budget.as_ref()
    }

    /// Keeps to a `1/runners` part of the configured throttle: runners that share one API's
    /// limit together stay within it.
    pub fn share_budget(&self, runners: usize) {
        if let (Some(budget), Some(t)) = (self.budget(), self.config().throttle) {
            let n = u32::try_from(runners.max(1)).unwrap_or(u32::MAX);
            budget.set_limit(t.limit / n);
        }
    }

    /// Counters since the policy was made.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests: get(&c.requests),
            retries: get(&c.retries),
            answers: get(&c.answers),
            rate_limited: get(&c.rate_limited),
            server_errors: get(&c.server_errors),
            timeouts: get(&c.timeouts),
            throttle_waits: get(&c.throttle_waits),
            throttle_wait_ms: get(&c.throttle_wait_ms),
        }
    }

    /// Sends `request` by the policy's rules, without hooks.
    pub async fn send(&self, request: &Request) -> Result<Response, Error> {
        self.send_with(request, &mut ()).await
    }

    /// Sends `request` by the policy's rules, with `hooks`; returns the 2xx answer or a typed
    /// error.
    pub async fn send_with<H: Hooks>(
        &self,
        request: &Request,
        hooks: &mut H,
    ) -> Result<Response, Error> {
        let span = tracing::info_span!(
            "http",
            label = %self.inner.config.label,
            method = %request.method,
            path = request.path(),
        );
        self.send_loop(request, hooks).instrument(span).await
    }

    async fn send_loop<H: Hooks>(
        &self,
        request: &Request,
        hooks: &mut H,
    ) -> Result<Response, Error> {
        let inner = &*self.inner;
        let retry = &inner.config.retry;
        let counters = &inner.counters;
        let budget = request.budget.as_ref().or(inner.budget.as_ref());
        let mut delays = retry.delays();
        let mut sends = 0u32;
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        let mut reauthorized = false;
        loop {
            hooks.admit().map_err(|reason| Error::Stopped {
                reason,
                attempts: sends,
            })?;
            let slot = match budget {
                Some(window) => Some(self.slot(window).await),
                None => None,
            };
            let permit = inner.in_flight.acquire().await;
            let builder = hooks
                .authorize(self.builder(request))
                .await
                .map_err(|reason| Error::Stopped {
                    reason,
                    attempts: sends,
                })?;
            sends += 1;
            bump(&counters.requests);
            let _ = CALLS.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
            if sends > 1 {
                bump(&counters.retries);
            }
            let outcome = self.attempt(builder, slot.as_ref(), hooks).await;
            drop(permit);
            drop(slot);
            let answer = match outcome {
                Ok(answer) => {
                    bump(&counters.answers);
                    answer
                }
                Err(Failed::TooLarge(status)) => {
                    bump(&counters.answers);
                    return Err(Error::TooLarge {
                        status,
                        limit: inner.config.max_body_bytes,
                        attempts: sends,
                    });
                }
                Err(Failed::Transport(kind, message)) => {
                    if kind == TransportKind::Timeout {
                        bump(&counters.timeouts);
                    }
                    failures += 1;
                    let resend = request.idempotent || !kind.maybe_sent();
                    let wait = next(&mut delays, retry);
                    if resend
                        && failures < retry.max_attempts
                        && !impatient(wait, "the backoff after a failed request is")
                    {
                        tracing::debug!(%kind, attempt = sends, wait_ms = ms(wait), "request failed; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    tracing::debug!(%kind, attempts = sends, "request failed; giving up");
                    return Err(Error::Transport {
                        kind,
                        maybe_sent: kind.maybe_sent(),
                        attempts: sends,
                        message,
                    });
                }
            };
            let answer = Response {
                attempts: sends,
                ..answer
            };
            let status = answer.status;
            if status == StatusCode::UNAUTHORIZED && !reauthorized {
                reauthorized = true;
                let cured =
                    hooks
                        .on_unauthorized(&answer)
                        .await
                        .map_err(|reason| Error::Stopped {
                            reason,
                            attempts: sends,
                        })?;
                if cured {
                    tracing::debug!("401; retrying with fresh credentials");
                    continue;
                }
            }
            let retry_after = || {
                answer
                    .header(reqwest::header::RETRY_AFTER.as_str())
                    .and_then(|v| parse_retry_after(v, inner.config.clock.now()))
            };
            match classify_status(status) {
                Class::Success => return Ok(answer),
                Class::Permanent => return Err(status_error(answer)),
                Class::RateLimited => {
                    bump(&counters.rate_limited);
                    let asked = retry_after();
                    let suggested = asked
                        .or(budget.map(|w| w.per()))
                        .unwrap_or_else(|| next(&mut delays, retry));
                    let wait = match hooks.on_rate_limited(&answer, asked, suggested) {
                        RateLimitAction::Stop(reason) => {
                            return Err(Error::Stopped {
                                reason,
                                attempts: sends,
                            });
                        }
                        RateLimitAction::Wait(wait) => wait,
                    };
                    rate_limited += 1;
                    if rate_limited >= retry.max_rate_limited_attempts {
                        tracing::debug!(attempts = sends, "429 again; giving up");
                        return Err(Error::RateLimited {
                            attempts: sends,
                            headers: answer.headers,
                            body: answer.body,
                        });
                    }
                    let wait = retry.server_wait(wait);
                    if impatient(wait, "the server asked to wait") {
                        if let (Some(window), Some(limit)) = (budget, patience()) {
                            window.pause(limit);
                        }
                        return Err(Error::RateLimited {
                            attempts: sends,
                            headers: answer.headers,
                            body: answer.body,
                        });
                    }
                    match budget {
                        // Everyone waits, not just this request: the budget is shared.
                        Some(window) => window.pause(wait),
                        None => tokio::time::sleep(wait).await,
                    }
                }
                Class::Transient => {
                    bump(&counters.server_errors);
                    failures += 1;
                    if !(request.idempotent && failures < retry.max_attempts) {
                        return Err(status_error(answer));
                    }
                    let wait = match retry_after() {
                        Some(asked) => retry.server_wait(asked),
                        None => next(&mut delays, retry),
                    };
                    if impatient(
                        wait,
                        "the wait before sending again after a server error is",
                    ) {
                        return Err(status_error(answer));
                    }
                    tracing::debug!(
                        status = status.as_u16(),
                        attempt = sends,
                        wait_ms = ms(wait),
                        "server error; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// A throttle slot, with the wait counted.
    async fn slot(&self, window: &Arc<RollingWindow>) -> Slot {
        let started = Instant::now();
        let slot = window.acquire().await;
        if slot.waited() {
            let c = &self.inner.counters;
            bump(&c.throttle_waits);
            c.throttle_wait_ms
                .fetch_add(ms(started.elapsed()), Ordering::Relaxed);
        }
        slot
    }

    fn builder(&self, request: &Request) -> reqwest::RequestBuilder {
        let mut b = self
            .inner
            .http
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone());
        if let Some(body) = &request.body {
            b = b.body(body.clone());
        }
        b
    }

    /// One send and its body read; the hook observes the headers while the slot is held.
    async fn attempt<H: Hooks>(
        &self,
        builder: reqwest::RequestBuilder,
        slot: Option<&Slot>,
        hooks: &mut H,
    ) -> Result<Response, Failed> {
        let transport = |e: reqwest::Error| Failed::Transport(TransportKind::of(&e), describe(e));
        let mut resp = builder.send().await.map_err(transport)?;
        let status = resp.status();
        if let Some(slot) = slot {
            hooks.observe(status, resp.headers(), slot);
        }
        let cap = self.inner.config.max_body_bytes;
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(Failed::TooLarge(status));
        }
        let hint = resp.content_length().unwrap_or(0).min(cap).min(1 << 20);
        let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(Failed::TooLarge(status));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers: std::mem::take(resp.headers_mut()),
            url: resp.url().clone(),
            body,
            attempts: 0,
        })
    }
}

fn status_error(answer: Response) -> Error {
    Error::Status {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
        attempts: answer.attempts,
    }
}

/// The next backoff delay of a request (the sequence never ends; the cap is a safe fallback).
fn next(delays: &mut impl Iterator<Item = Duration>, retry: &RetryPolicy) -> Duration {
    delays.next().unwrap_or(retry.max_delay)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Throttle;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering every request with `status` and `Retry-After: 99999`; counts them.
    async fn asks_for_a_day(status: u16) -> (reqwest::Url, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                seen.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nretry-after: 99999\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (reqwest::Url::parse(&url).unwrap(), hits)
    }

    fn policy(throttle: Option<Throttle>) -> Policy {
        Policy::new(PolicyConfig {
            throttle,
            timeout: Duration::from_secs(5),
            ..PolicyConfig::default()
        })
        .unwrap()
    }

    /// Fails the test rather than wait out what the server asked for.
    async fn bounded<F: Future>(work: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .expect("gave up at once instead of waiting the server's minutes")
    }

    #[tokio::test]
    async fn a_server_asking_for_longer_than_the_patience_fails_the_request_at_once() {
        let (url, hits) = asks_for_a_day(429).await;
        let policy = policy(Some(Throttle {
            limit: 100,
            per: Duration::from_secs(1),
        }));
        let request = Request::get(url);
        let patience = Duration::from_millis(200);
        let e = bounded(with_patience(patience, policy.send(&request)))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::RateLimited { attempts: 1, .. }), "{e:?}");
        // The budget waits out the patience, not the day: the next request is sent.
        let started = Instant::now();
        let e = bounded(with_patience(patience, policy.send(&request)))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::RateLimited { attempts: 1, .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_5xx_asking_for_longer_than_the_patience_is_not_retried() {
        let (url, hits) = asks_for_a_day(503).await;
        let policy = policy(None);
        let e = bounded(with_patience(
            Duration::from_secs(1),
            policy.send(&Request::get(url)),
        ))
        .await
        .unwrap_err();
        assert!(
            matches!(e, Error::Status { status, attempts: 1, .. } if status == 503),
            "{e:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn spawned_work_keeps_the_patience() {
        let inherited = with_patience(Duration::from_secs(3), async {
            tokio::spawn(counted(async { patience() })).await.unwrap()
        })
        .await;
        assert_eq!(inherited, Some(Duration::from_secs(3)));
        assert_eq!(
            tokio::spawn(counted(async { patience() })).await.unwrap(),
            None
        );
    }
}
