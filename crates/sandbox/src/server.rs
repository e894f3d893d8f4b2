//! The HubSpot-compatible HTTP API and the gate in front of it (auth, limits, faults, log).

use crate::error::{ApiError, correlation_id};
use crate::handle::{RequestLogEntry, Store};
use crate::limits::RateHeaders;
use crate::model::{ObjectType, default_association_type};
use crate::net::ConnHandle;
use crate::store::{Prepared, PropSel, RecordView};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::time::Instant;

pub(crate) type ApiResult = Result<Response, ApiError>;

/// Builds the full router (HubSpot API + control API) with the gate middleware. The CRM API is
/// served on both of HubSpot's path families, numbered (`/crm/v3/…`, associations `/crm/v4/…`)
/// and date-versioned (`/crm/objects/2026-03/…`, `/crm/properties/2026-03/…`,
/// `/crm/associations/2026-03/…`), from the same store.
pub(crate) fn router(store: Store) -> Router {
    let mut r = Router::new();
    for p in ["/crm/v3/objects", "/crm/objects/2026-03"] {
        r = r
            .route(&format!("{p}/{{object_type}}"), get(list).post(create))
            .route(&format!("{p}/{{object_type}}/search"), post(search))
            .route(&format!("{p}/{{object_type}}/merge"), post(merge))
            .route(&format!("{p}/{{object_type}}/batch/{{op}}"), post(batch))
            .route(
                &format!("{p}/{{object_type}}/{{id}}"),
                get(get_one).patch(update).delete(archive_one),
            );
    }
    r = r
        .route(
            "/crm/v3/objects/{object_type}/{id}/associations/{to_type}",
            get(assoc_v3),
        )
        .route(
            "/crm/v3/objects/{object_type}/{id}/associations/{to_type}/{to_id}/{assoc_type}",
            put(assoc_put_v3),
        );
    for p in ["/crm/v4/objects", "/crm/objects/2026-03"] {
        r = r
            .route(
                &format!("{p}/{{object_type}}/{{id}}/associations/{{to_type}}"),
                get(assoc_v4),
            )
            .route(
                &format!("{p}/{{object_type}}/{{id}}/associations/default/{{to_type}}/{{to_id}}"),
                put(assoc_put_v4),
            )
            .route(
                &format!("{p}/{{object_type}}/{{id}}/associations/{{to_type}}/{{to_id}}"),
                put(crate::assoc::put_labelled),
            );
    }
    for p in ["/crm/v4/associations", "/crm/associations/2026-03"] {
        r = r
            .route(
                &format!("{p}/{{from}}/{{to}}/batch/associate/default"),
                post(crate::assoc::batch_default),
            )
            .route(
                &format!("{p}/{{from}}/{{to}}/batch/{{op}}"),
                post(crate::assoc::batch),
            );
    }
    for p in ["/crm/v3/properties", "/crm/properties/2026-03"] {
        r = r
            .route(
                &format!("{p}/{{object_type}}"),
                get(props_list).post(props_create),
            )
            .route(&format!("{p}/{{object_type}}/{{name}}"), get(prop_get));
    }
    r.route("/oauth/authorize", get(crate::oauth::authorize))
        .route("/oauth/v1/token", post(crate::oauth::token))
        .route("/oauth/v3/token", post(crate::oauth::token))
        .route(
            "/oauth/v1/access-tokens/{token}",
            get(crate::oauth::access_token_info),
        )
        .route(
            "/oauth/v2/private-apps/get/access-token-info",
            post(crate::oauth::private_app_token_info),
        )
        .merge(crate::control::routes())
        .fallback(not_found)
        // the gate reads bodies with the sandbox's own limit (`max_body_bytes`)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(store.clone(), gate))
        .with_state(store)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "resource not found",
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Api { search: bool },
    OAuth,
    Other,
}

/// A CRM path in one family's terms: `objects/…`, `properties/…` or `associations/…`, with
/// the version prefix taken off (`/crm/v3/objects/x` and `/crm/objects/2026-03/x` alike).
pub(crate) fn crm_segments(path: &str) -> Option<Vec<&str>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, rest) = match segs.as_slice() {
        ["crm", "v3" | "v4", kind, rest @ ..] => (*kind, rest),
        ["crm", kind, "2026-03", rest @ ..] => (*kind, rest),
        _ => return None,
    };
    if !matches!(kind, "objects" | "properties" | "associations") {
        return None;
    }
    Some(std::iter::once(kind).chain(rest.iter().copied()).collect())
}

fn classify(method: &Method, path: &str) -> (String, Class) {
    let api = |name: &str| (name.to_string(), Class::Api { search: false });
    if let Some(crm) = crm_segments(path) {
        return match crm.as_slice() {
            ["objects", _] if method == Method::POST => api("create"),
            ["objects", _] => api("list"),
            ["objects", _, "search"] => ("search".into(), Class::Api { search: true }),
            ["objects", _, "merge"] if method == Method::POST => api("merge"),
            ["objects", _, "batch", op] => api(&format!("batch_{op}")),
            ["objects", _, _] => api(match *method {
                Method::PATCH => "update",
                Method::DELETE => "archive",
                _ => "get",
            }),
            ["objects", ..] => api("associations"),
            ["properties", ..] => api("properties"),
            ["associations", ..] => api("associations_batch"),
            _ => ("unknown".into(), Class::Other),
        };
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["oauth", "authorize"] => ("authorize".into(), Class::OAuth),
        ["oauth", _, "token"] => ("token".into(), Class::OAuth),
        ["oauth", "v1", "access-tokens", _]
        | ["oauth", "v2", "private-apps", "get", "access-token-info"] => {
            ("token_info".into(), Class::OAuth)
        }
        ["_sandbox", rest @ ..] => (
            format!("control_{}", rest.first().copied().unwrap_or("")),
            Class::Other,
        ),
        _ => ("unknown".into(), Class::Other),
    }
}

/// The path as the request log keeps it: a token in the path is not kept.
fn logged_path(path: &str) -> String {
    match path.strip_prefix("/oauth/v1/access-tokens/") {
        Some(_) => "/oauth/v1/access-tokens/[REDACTED]".into(),
        None => path.to_string(),
    }
}

/// Who a request authenticated as.
struct Caller {
    token: String,
    /// An OAuth access token the sandbox issued (HubSpot sends no daily headers to those).
    oauth: bool,
}

const AUTH_MISSING: &str = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";

fn check_auth(store: &Store, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let unauthorized = |cat: &str, msg: String| ApiError::new(StatusCode::UNAUTHORIZED, cat, msg);
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("INVALID_AUTHENTICATION", AUTH_MISSING.into()))?;
    if let Some(exp) = store.inner.rt.lock().tokens.get(token).copied() {
        let now = store.now_ms();
        if now >= exp {
            let ago = now.saturating_sub(exp) / 1000;
            return Err(unauthorized(
                "EXPIRED_AUTHENTICATION",
                format!("The OAuth token used to make this call expired {ago} second(s) ago."),
            ));
        }
        return Ok(Caller {
            token: token.to_string(),
            oauth: true,
        });
    }
    let tokens = &store.inner.config.tokens;
    if tokens.is_empty() || tokens.iter().any(|t| t == token) {
        Ok(Caller {
            token: token.to_string(),
            oauth: false,
        })
    } else {
        Err(unauthorized(
            "INVALID_AUTHENTICATION",
            "The access token provided is not valid for this account.".into(),
        ))
    }
}

fn header(resp: &mut Response, name: &'static str, v: impl ToString) {
    if let Ok(hv) = HeaderValue::from_str(&v.to_string()) {
        resp.headers_mut().insert(name, hv);
    }
}

fn add_rate_headers(resp: &mut Response, h: &RateHeaders) {
    if let Some((max, remaining, interval)) = h.window {
        header(resp, "X-HubSpot-RateLimit-Max", max);
        header(resp, "X-HubSpot-RateLimit-Remaining", remaining);
        header(resp, "X-HubSpot-RateLimit-Interval-Milliseconds", interval);
    }
    if let Some((max, remaining)) = h.daily {
        header(resp, "X-HubSpot-RateLimit-Daily", max);
        header(resp, "X-HubSpot-RateLimit-Daily-Remaining", remaining);
    }
}

/// Why a request body was not read.
enum BodyError {
    TooLarge,
    TimedOut,
    Broken(String),
}

/// Reads the whole body: at most `max` bytes, all of it within `timeout` (so a body trickled
/// in byte by byte cannot hold the connection either).
async fn read_body(
    mut body: axum::body::Body,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    use axum::body::HttpBody;
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut len = 0usize;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
        let Some(frame) = tokio::time::timeout_at(deadline, frame)
            .await
            .map_err(|_| BodyError::TimedOut)?
        else {
            break;
        };
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > max {
            return Err(BodyError::TooLarge);
        }
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(rest)))
}

/// The body, read with the configured size limit and timeout, put back into the request; or
/// the error response (413, 408 or 400; the connection is closed after it).
async fn buffered(store: &Store, req: Request) -> Result<Request, Response> {
    let cfg = &store.inner.config;
    let max = cfg.max_body_bytes;
    let close = |e: ApiError| {
        let mut resp = e.into_response();
        header(&mut resp, "Connection", "close");
        resp
    };
    let too_large = || {
        close(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_TOO_LARGE",
            format!("The request body is larger than the sandbox's limit of {max} bytes"),
        ))
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    match read_body(body, max, cfg.body_read_timeout).await {
        Ok(bytes) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::TimedOut) => Err(close(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!(
                "The request body did not arrive within {} ms",
                cfg.body_read_timeout.as_millis()
            ),
        ))),
        Err(BodyError::Broken(e)) => Err(close(ApiError::validation(format!(
            "The request body could not be read: {e}"
        )))),
    }
}

/// Auth, limits, faults, latency, drops; then logging and counters.
async fn gate(State(store): State<Store>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let time = store.now_iso();
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let path = logged_path(&raw_path);
    let query = req.uri().query().map(str::to_string);
    let (endpoint, class) = classify(&method, &raw_path);
    let conn = req.extensions().get::<ConnectInfo<ConnHandle>>().cloned();
    // no idle or header deadline while this request is in progress (the body has its own)
    let _busy = conn.as_ref().map(|ConnectInfo(c)| c.begin());
    let resp = match buffered(&store, req).await {
        Err(resp) => resp,
        Ok(req) => match class {
            Class::Api { search } => {
                let (latency, drop, fault) = {
                    let mut rt = store.inner.rt.lock();
                    let (d, f) = (rt.faults.drop_rate, rt.faults.fault_rate);
                    (rt.faults.latency, rt.roll(d), rt.roll(f))
                };
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                if drop && let Some(ConnectInfo(c)) = &conn {
                    c.kill();
                    store.bump(|s| s.connections_dropped += 1);
                    store.log(RequestLogEntry {
                        method: method.to_string(),
                        path,
                        query,
                        endpoint,
                        status: 0,
                        time,
                        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                    });
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                if fault {
                    store.bump(|s| s.faults_injected += 1);
                    let coin: bool = store.inner.rt.lock().roll(0.5);
                    let (status, msg, cat) = if coin {
                        (
                            StatusCode::BAD_GATEWAY,
                            "Bad Gateway: the upstream service did not answer in time.",
                            "BAD_GATEWAY",
                        )
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "Service Unavailable: please retry the request.",
                            "SERVICE_UNAVAILABLE",
                        )
                    };
                    ApiError::new(status, cat, msg).into_response()
                } else {
                    match check_auth(&store, req.headers()) {
                        Err(e) => {
                            store.bump(|s| s.unauthorized += 1);
                            e.into_response()
                        }
                        Ok(caller) => match missing_scopes(&store, &caller, &method, &raw_path) {
                            Some(e) => e.into_response(),
                            None => admitted(&store, caller, search, &endpoint, req, next).await,
                        },
                    }
                }
            }
            Class::OAuth | Class::Other => {
                store.bump(|s| *s.endpoints.entry(endpoint.clone()).or_default() += 1);
                next.run(req).await
            }
        },
    };
    store.log(RequestLogEntry {
        method: method.to_string(),
        path,
        query,
        endpoint,
        status: resp.status().as_u16(),
        time,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    });
    resp
}

/// The 403 for a token whose scopes (when it has fewer than all) lack one the call needs.
fn missing_scopes(store: &Store, caller: &Caller, method: &Method, path: &str) -> Option<ApiError> {
    let granted = store
        .inner
        .oauth
        .lock()
        .restricted(&caller.token)
        .cloned()?;
    let needed = crate::oauth::required_scopes(method, &crm_segments(path)?);
    let missing: Vec<String> = needed
        .into_iter()
        .filter(|n| !granted.contains(n))
        .collect();
    (!missing.is_empty()).then(|| crate::oauth::missing_scopes(missing))
}

/// Counts an authenticated request against the limits and answers it (or the 429).
async fn admitted(
    store: &Store,
    caller: Caller,
    search: bool,
    endpoint: &str,
    req: Request,
    next: Next,
) -> Response {
    let now = store.now_ms();
    let admitted = store.inner.rt.lock().admit(search, now);
    let mut h = match admitted {
        Ok(h) => h,
        Err(limited) => {
            store.bump(|s| {
                s.rate_limited += 1;
                *s.rate_limited_by_policy
                    .entry(limited.policy.to_string())
                    .or_default() += 1;
            });
            let body = json!({
                "status": "error",
                "message": limited.message,
                "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(),
                "policyName": limited.policy,
                "requestId": correlation_id(),
            });
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            let faults = store.faults();
            if faults.retry_after {
                let secs = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                header(&mut resp, "Retry-After", secs);
            }
            if !search {
                let mut h = RateHeaders::default();
                if let Some(r) = faults.rate_limit {
                    let remaining = if limited.policy == "DAILY" {
                        r.limit
                    } else {
                        0
                    };
                    h.window = Some((r.limit, remaining, r.per.as_millis() as u64));
                }
                if let Some(d) = faults.daily_limit
                    && !caller.oauth
                {
                    h.daily = Some((d, if limited.policy == "DAILY" { 0 } else { d }));
                }
                add_rate_headers(&mut resp, &h);
            }
            return resp;
        }
    };
    store.bump(|s| *s.endpoints.entry(endpoint.to_string()).or_default() += 1);
    let mut resp = next.run(req).await;
    if !search {
        // "OAuth authenticated calls will not include X-HubSpot-RateLimit-Daily or
        // X-HubSpot-RateLimit-Daily-Remaining" (HubSpot's changelog)
        if caller.oauth {
            h.daily = None;
        }
        add_rate_headers(&mut resp, &h);
    }
    resp
}

// ---------- helpers ----------

pub(crate) fn obj_type(s: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(s).ok_or_else(|| {
        ApiError::validation(format!("Unable to infer object type from: {s}"))
            .with_context("objectType", vec![s.to_string()])
    })
}

/// Reads a request body, which must be a JSON object (an empty body counts as `{}`): an array
/// or any other value is refused with a 400, never taken for an empty object.
pub(crate) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::validation(format!(
            "Invalid input JSON: the body must be a JSON object, not {}",
            json_kind(&v)
        )));
    }
    Ok(v)
}

/// "an array", "a string", … for error messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn json_resp(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// Parsed common query parameters.
struct Q {
    limit: Option<usize>,
    after: Option<String>,
    properties: Option<Vec<String>>,
    archived: bool,
    associations: Vec<ObjectType>,
    id_property: Option<String>,
}

fn parse_q(q: &[(String, String)]) -> Result<Q, ApiError> {
    let mut out = Q {
        limit: None,
        after: None,
        properties: None,
        archived: false,
        associations: vec![],
        id_property: None,
    };
    for (k, v) in q {
        match k.as_str() {
            "limit" => {
                out.limit = Some(v.parse().map_err(|_| {
                    ApiError::validation(format!("limit must be a positive integer, got {v}"))
                })?)
            }
            "after" => out.after = Some(v.clone()),
            "properties" => out.properties.get_or_insert_with(Vec::new).extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            "archived" => out.archived = v == "true",
            "associations" => {
                for a in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    out.associations.push(obj_type(a)?);
                }
            }
            "idProperty" => out.id_property = Some(v.clone()).filter(|s| !s.is_empty()),
            _ => {}
        }
    }
    Ok(out)
}

fn not_found_obj(ty: ObjectType, id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Object not found. No {} with id {id}.",
        ty.singular()
    ))
    .with_context("ids", vec![id.to_string()])
}

fn visible_at(store: &Store) -> Option<i64> {
    let lag = store.inner.rt.lock().faults.search_lag;
    store.visible_at(lag)
}

// ---------- single-record endpoints ----------

async fn list(
    State(s): State<Store>,
    Path(t): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let ty = obj_type(&t)?;
    let q = parse_q(&q)?;
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    let start: u64 = match &q.after {
        Some(a) => a
            .parse()
            .map_err(|_| ApiError::validation(format!("Invalid paging cursor: {a}")))?,
        None => 0,
    };
    let data = s.inner.data.read();
    let ts = data.ts(ty);
    let set = if q.archived { &ts.archived } else { &ts.live };
    let mut ids = set.range(start..).copied();
    let page: Vec<u64> = ids.by_ref().take(limit).collect();
    let next = ids.next();
    let sel = match &q.properties {
        Some(p) => PropSel::Names(p),
        None => PropSel::Defaults,
    };
    let results: Vec<Value> = page
        .iter()
        .map(|id| Value::Object(data.render(ty, *id, &sel, &q.associations)))
        .collect();
    let mut out = json!({ "results": results });
    if let Some(n) = next {
        out["paging"] = json!({"next": {
            "after": n.to_string(),
            "link": format!("/crm/v3/objects/{}?after={n}&limit={limit}", ty.as_str()),
        }});
    }
    Ok(json_resp(StatusCode::OK, out))
}

async fn get_one(
    State(s): State<Store>,
    Path((t, id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let ty = obj_type(&t)?;
    let q = parse_q(&q)?;
    let data = s.inner.data.read();
    let idp = q.id_property.as_deref();
    let rid = if q.archived {
        data.resolve(ty, &id, idp, true)?
    } else {
        data.resolve_following(ty, &id, idp)?
    }
    .ok_or_else(|| not_found_obj(ty, &id))?;
    let sel = match &q.properties {
        Some(p) => PropSel::Names(p),
        None => PropSel::Defaults,
    };
    Ok(json_resp(
        StatusCode::OK,
        Value::Object(data.render(ty, rid, &sel, &q.associations)),
    ))
}

async fn create(State(s): State<Store>, Path(t): Path<String>, body: Bytes) -> ApiResult {
    let ty = obj_type(&t)?;
    let v = parse_body(&body)?;
    let empty = Map::new();
    let props = match v.get("properties") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::validation("properties must be an object")),
    };
    let vis = visible_at(&s);
    let mut data = s.inner.data.write();
    let (p, _, _) = data.validate_props(ty, props, false)?;
    data.check_rules(ty, None, &p)?;
    data.check_unique(ty, None, &p, &mut HashSet::new())?;
    let assoc = data.resolve_associations(ty, v.get("associations"))?;
    let (id, _) = data.apply(
        ty,
        Prepared {
            target: None,
            props: p,
            assoc,
        },
        s.now_ms(),
        vis,
    );
    Ok(json_resp(
        StatusCode::CREATED,
        Value::Object(data.render(ty, id, &PropSel::All, &[])),
    ))
}

async fn update(
    State(s): State<Store>,
    Path((t, id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> ApiResult {
    let ty = obj_type(&t)?;
    let q = parse_q(&q)?;
    let v = parse_body(&body)?;
    let props = v
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::validation("properties is required"))?;
    let vis = visible_at(&s);
    let mut data = s.inner.data.write();
    // a merged-away id updates (and answers with) the record it was merged into
    let rid = data
        .resolve_following(ty, &id, q.id_property.as_deref())?
        .ok_or_else(|| not_found_obj(ty, &id))?;
    let (p, _, _) = data.validate_props(ty, props, false)?;
    data.check_rules(ty, Some(rid), &p)?;
    data.check_unique(ty, Some(rid), &p, &mut HashSet::new())?;
    data.apply(
        ty,
        Prepared {
            target: Some(rid),
            props: p,
            assoc: vec![],
        },
        s.now_ms(),
        vis,
    );
    Ok(json_resp(
        StatusCode::OK,
        Value::Object(data.render(ty, rid, &PropSel::All, &[])),
    ))
}

async fn archive_one(State(s): State<Store>, Path((t, id)): Path<(String, String)>) -> ApiResult {
    let ty = obj_type(&t)?;
    let now = s.now_ms();
    let mut data = s.inner.data.write();
    if let Ok(Some(rid)) = data.resolve(ty, &id, None, false) {
        data.archive(ty, rid, now);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /crm/v3/objects/{type}/merge` with `{"primaryObjectId", "objectIdToMerge"}`: answers
/// the surviving (primary) record.
async fn merge(State(s): State<Store>, Path(t): Path<String>, body: Bytes) -> ApiResult {
    let ty = obj_type(&t)?;
    let v = parse_body(&body)?;
    let id_of = |k: &str| {
        v.get(k)
            .and_then(crate::props::coerce)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::validation(format!("{k} is required")))
    };
    let (primary, other) = (id_of("primaryObjectId")?, id_of("objectIdToMerge")?);
    let vis = visible_at(&s);
    let now = s.now_ms();
    let mut data = s.inner.data.write();
    let a = data
        .resolve_following(ty, &primary, None)?
        .ok_or_else(|| not_found_obj(ty, &primary))?;
    let b = data
        .resolve_following(ty, &other, None)?
        .ok_or_else(|| not_found_obj(ty, &other))?;
    let id = data.merge(ty, a, b, now, vis)?;
    Ok(json_resp(
        StatusCode::OK,
        Value::Object(data.render(ty, id, &PropSel::All, &[])),
    ))
}

// ---------- batch ----------

/// Batch inputs at most.
pub const MAX_BATCH: usize = 100;

fn standard_error(e: &ApiError, trace: Option<&str>) -> Value {
    let mut v = e.body();
    if let Some(t) = trace {
        let ctx = v
            .as_object_mut()
            .expect("object")
            .entry("context")
            .or_insert_with(|| json!({}));
        ctx["objectWriteTraceId"] = json!([t]);
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("correlationId");
    }
    v
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchOut<'a, T: serde::Serialize> {
    status: &'static str,
    results: Vec<T>,
    started_at: String,
    completed_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_errors: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Value>,
    #[serde(skip)]
    _p: std::marker::PhantomData<&'a ()>,
}

fn batch_response<T: serde::Serialize>(
    s: &Store,
    started: String,
    results: Vec<T>,
    errors: Vec<Value>,
    ok: StatusCode,
) -> Response {
    let status = if errors.is_empty() {
        ok
    } else {
        StatusCode::MULTI_STATUS
    };
    let out = BatchOut {
        status: "COMPLETE",
        results,
        started_at: started,
        completed_at: s.now_iso(),
        num_errors: (!errors.is_empty()).then_some(errors.len()),
        errors,
        _p: std::marker::PhantomData,
    };
    bytes_resp(status, serde_json::to_vec(&out))
}

fn bytes_resp(status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Response {
    match body {
        Ok(b) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            b,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            e.to_string(),
        )
        .into_response(),
    }
}

async fn batch(
    State(s): State<Store>,
    Path((t, op)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> ApiResult {
    let ty = obj_type(&t)?;
    let q = parse_q(&q)?;
    let v = parse_body(&body)?;
    let started = s.now_iso();
    if !matches!(
        op.as_str(),
        "create" | "read" | "update" | "upsert" | "archive"
    ) {
        return Err(not_found().await);
    }
    let inputs = v
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::validation("inputs is required"))?;
    if inputs.len() > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "Too many inputs: {} (the maximum number of inputs in a batch request is {MAX_BATCH})",
            inputs.len()
        ))
        .with_context("inputs", vec![inputs.len().to_string()]));
    }
    match op.as_str() {
        "read" => batch_read(&s, ty, &v, inputs, q.archived, started),
        "archive" => {
            let now = s.now_ms();
            let mut data = s.inner.data.write();
            for i in inputs {
                if let Some(id) = i.get("id").and_then(crate::props::coerce)
                    && let Ok(Some(rid)) = data.resolve(ty, &id, None, false)
                {
                    data.archive(ty, rid, now);
                }
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => batch_write(&s, ty, &op, &v, inputs, started),
    }
}

fn batch_read(
    s: &Store,
    ty: ObjectType,
    v: &Value,
    inputs: &[Value],
    archived: bool,
    started: String,
) -> ApiResult {
    if v.get("propertiesWithHistory")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
        && inputs.len() > 50
    {
        return Err(ApiError::validation(
            "The maximum number of inputs supported in a batch request for property histories is 50",
        ));
    }
    let id_property = v.get("idProperty").and_then(Value::as_str);
    let props: Option<Vec<String>> = v.get("properties").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    });
    let sel = match &props {
        Some(p) if !p.is_empty() => PropSel::Names(p),
        _ => PropSel::Defaults,
    };
    let data = s.inner.data.read();
    let mut results = vec![];
    let mut missing = vec![];
    for i in inputs {
        let id = i
            .get("id")
            .and_then(crate::props::coerce)
            .ok_or_else(|| ApiError::validation("each input needs an id"))?;
        match data.resolve(ty, &id, id_property, archived)? {
            Some(rid) => results.push(Value::Object(data.render(ty, rid, &sel, &[]))),
            // a merged-away id is left out without an error
            None if id_property.is_none_or(|p| p == "hs_object_id")
                && data.ts(ty).merged_away(&id) => {}
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        vec![]
    } else {
        vec![standard_error(
            &ApiError::not_found(format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                ty.singular().to_uppercase()
            ))
            .with_context("ids", missing),
            None,
        )]
    };
    Ok(batch_response(s, started, results, errors, StatusCode::OK))
}

struct Plan {
    prepared: Prepared,
    new: bool,
}

/// What one batch input will do: `Ok(None)` leaves it out of the answer without an error.
type PlanResult = Result<Option<Plan>, ApiError>;

fn batch_write(
    s: &Store,
    ty: ObjectType,
    op: &str,
    v: &Value,
    inputs: &[Value],
    started: String,
) -> ApiResult {
    let multi = inputs.iter().any(|i| i.get("objectWriteTraceId").is_some());
    let top_id_property = v.get("idProperty").and_then(Value::as_str);
    let vis = visible_at(s);
    let mut data = s.inner.data.write();
    let empty = Map::new();

    // duplicate ids fail the whole batch (update/upsert)
    if op != "create" {
        let mut seen = HashSet::new();
        let mut dups = vec![];
        for i in inputs {
            if let Some(id) = i.get("id").and_then(crate::props::coerce) {
                let idp = i
                    .get("idProperty")
                    .and_then(Value::as_str)
                    .or(top_id_property)
                    .unwrap_or("hs_object_id");
                let key = if idp == "email" {
                    id.to_ascii_lowercase()
                } else {
                    id.clone()
                };
                if !seen.insert(key) {
                    dups.push(id);
                }
            }
        }
        if !dups.is_empty() {
            return Err(ApiError::validation(format!(
                "Duplicate IDs found in batch input: {dups:?}. IDs must be unique"
            ))
            .with_context("ids", dups));
        }
    }

    let mut claimed = HashSet::new();
    let mut plans: Vec<(Option<String>, PlanResult)> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let trace = input
            .get("objectWriteTraceId")
            .and_then(crate::props::coerce);
        let props = match input.get("properties") {
            _ if !input.is_object() => Err(ApiError::validation(format!(
                "each input must be a JSON object, not {}",
                json_kind(input)
            ))),
            None | Some(Value::Null) => Ok(&empty),
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(ApiError::validation("properties must be an object")),
        };
        let plan = props.and_then(|props| {
            let (mut p, _, _) = data.validate_props(ty, props, false)?;
            match op {
                "create" => {
                    data.check_rules(ty, None, &p)?;
                    data.check_unique(ty, None, &p, &mut claimed)?;
                    let assoc = data.resolve_associations(ty, input.get("associations"))?;
                    Ok(Some(Plan {
                        prepared: Prepared {
                            target: None,
                            props: p,
                            assoc,
                        },
                        new: true,
                    }))
                }
                "update" => {
                    let id = input
                        .get("id")
                        .and_then(crate::props::coerce)
                        .ok_or_else(|| ApiError::validation("each input needs an id"))?;
                    let idp = input
                        .get("idProperty")
                        .and_then(Value::as_str)
                        .or(top_id_property);
                    let Some(rid) = data.resolve(ty, &id, idp, false)? else {
                        // HubSpot (2026): an id merged into another record is simply missing
                        // from the results of a batch update, without an error.
                        if idp.is_none_or(|p| p == "hs_object_id") && data.ts(ty).merged_away(&id) {
                            return Ok(None);
                        }
                        return Err(not_found_obj(ty, &id));
                    };
                    data.check_rules(ty, Some(rid), &p)?;
                    data.check_unique(ty, Some(rid), &p, &mut claimed)?;
                    Ok(Some(Plan {
                        prepared: Prepared {
                            target: Some(rid),
                            props: p,
                            assoc: vec![],
                        },
                        new: false,
                    }))
                }
                _ => {
                    // upsert
                    let id = input
                        .get("id")
                        .and_then(crate::props::coerce)
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| ApiError::validation("each upsert input needs an id"))?;
                    let idp = input
                        .get("idProperty")
                        .and_then(Value::as_str)
                        .or(top_id_property)
                        .unwrap_or("hs_object_id");
                    match data.resolve(ty, &id, Some(idp), false)? {
                        Some(rid) => {
                            data.check_rules(ty, Some(rid), &p)?;
                            data.check_unique(ty, Some(rid), &p, &mut claimed)?;
                            Ok(Some(Plan {
                                prepared: Prepared {
                                    target: Some(rid),
                                    props: p,
                                    assoc: vec![],
                                },
                                new: false,
                            }))
                        }
                        None if idp == "hs_object_id" && data.ts(ty).merged_away(&id) => Ok(None),
                        None if idp == "hs_object_id" => Err(not_found_obj(ty, &id)),
                        None => {
                            let value = if idp == "email" {
                                id.trim().to_ascii_lowercase()
                            } else {
                                id.clone()
                            };
                            p.retain(|(k, _)| k != idp);
                            p.push((idp.to_string(), value));
                            data.check_rules(ty, None, &p)?;
                            data.check_unique(ty, None, &p, &mut claimed)?;
                            Ok(Some(Plan {
                                prepared: Prepared {
                                    target: None,
                                    props: p,
                                    assoc: vec![],
                                },
                                new: true,
                            }))
                        }
                    }
                }
            }
        });
        plans.push((trace, plan));
    }
    if !multi && let Some((_, Err(e))) = plans.iter().find(|(_, p)| p.is_err()) {
        return Err(e.clone());
    }
    let now = s.now_ms();
    let mut done: Vec<(u64, bool, Option<String>)> = Vec::with_capacity(plans.len());
    let mut errors = vec![];
    for (trace, plan) in plans {
        match plan {
            Ok(Some(plan)) => {
                let (id, _) = data.apply(ty, plan.prepared, now, vis);
                done.push((id, plan.new, trace));
            }
            Ok(None) => {}
            Err(e) => errors.push(standard_error(&e, trace.as_deref())),
        }
    }
    let data = parking_lot::RwLockWriteGuard::downgrade(data);
    let sel = PropSel::All;
    let results: Vec<RecordView<'_>> = done
        .iter()
        .map(|(id, new, trace)| {
            let mut v = data.view(ty, *id, &sel, &[]);
            v.new = (op == "upsert").then_some(*new);
            v.trace = trace.as_deref();
            v
        })
        .collect();
    let ok = if op == "create" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(batch_response(s, started, results, errors, ok))
}

// ---------- search ----------

async fn search(State(s): State<Store>, Path(t): Path<String>, body: Bytes) -> ApiResult {
    let ty = obj_type(&t)?;
    let v = parse_body(&body)?;
    let cap = s.inner.rt.lock().faults.search_cap;
    let data = s.inner.data.read();
    let out = crate::search::search(&data, ty, &v, s.now_ms(), cap)?;
    Ok(bytes_resp(StatusCode::OK, Ok(out)))
}

// ---------- associations ----------

async fn assoc_v3(
    State(s): State<Store>,
    Path((t, id, to)): Path<(String, String, String)>,
) -> ApiResult {
    let (ty, to) = (obj_type(&t)?, obj_type(&to)?);
    let data = s.inner.data.read();
    let rid = data
        .resolve(ty, &id, None, false)?
        .ok_or_else(|| not_found_obj(ty, &id))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({ "results": data.association_results(ty, rid, to) }),
    ))
}

async fn assoc_v4(
    State(s): State<Store>,
    Path((t, id, to)): Path<(String, String, String)>,
) -> ApiResult {
    let (ty, to) = (obj_type(&t)?, obj_type(&to)?);
    let data = s.inner.data.read();
    let rid = data
        .resolve(ty, &id, None, false)?
        .ok_or_else(|| not_found_obj(ty, &id))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({ "results": data.association_results_v4(ty, rid, to) }),
    ))
}

fn associate_ids(
    s: &Store,
    t: &str,
    id: &str,
    to: &str,
    to_id: &str,
) -> Result<(ObjectType, u64, ObjectType, u64), ApiError> {
    let (ty, to) = (obj_type(t)?, obj_type(to)?);
    let mut data = s.inner.data.write();
    let a = data
        .resolve(ty, id, None, false)?
        .ok_or_else(|| not_found_obj(ty, id))?;
    let b = data
        .resolve(to, to_id, None, false)?
        .ok_or_else(|| not_found_obj(to, to_id))?;
    data.associate(ty, a, to, b);
    Ok((ty, a, to, b))
}

async fn assoc_put_v3(
    State(s): State<Store>,
    Path((t, id, to, to_id, _kind)): Path<(String, String, String, String, String)>,
) -> ApiResult {
    let (ty, a, to, _) = associate_ids(&s, &t, &id, &to, &to_id)?;
    let data = s.inner.data.read();
    Ok(json_resp(
        StatusCode::OK,
        Value::Object(data.render(ty, a, &PropSel::Defaults, &[to])),
    ))
}

async fn assoc_put_v4(
    State(s): State<Store>,
    Path((t, id, to, to_id)): Path<(String, String, String, String)>,
) -> ApiResult {
    let (ty, a, to, b) = associate_ids(&s, &t, &id, &to, &to_id)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({
            "status": "COMPLETE",
            "results": [{
                "from": {"id": a.to_string()},
                "to": {"id": b.to_string()},
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": default_association_type(ty, to)},
            }],
            "startedAt": s.now_iso(),
            "completedAt": s.now_iso(),
        }),
    ))
}

// ---------- properties ----------

async fn props_list(State(s): State<Store>, Path(t): Path<String>) -> ApiResult {
    let ty = obj_type(&t)?;
    let data = s.inner.data.read();
    Ok(json_resp(
        StatusCode::OK,
        json!({ "results": data.ts(ty).props }),
    ))
}

async fn prop_get(State(s): State<Store>, Path((t, name)): Path<(String, String)>) -> ApiResult {
    let ty = obj_type(&t)?;
    let data = s.inner.data.read();
    let p = data.ts(ty).prop(&name).ok_or_else(|| {
        ApiError::not_found(format!("Unable to find property {name} on {ty}"))
            .with_context("propertyName", vec![name.clone()])
    })?;
    Ok(json_resp(StatusCode::OK, json!(p)))
}

async fn props_create(State(s): State<Store>, Path(t): Path<String>, body: Bytes) -> ApiResult {
    let ty = obj_type(&t)?;
    let v = parse_body(&body)?;
    let def = crate::props::property_from_create(&v).map_err(ApiError::validation)?;
    let mut data = s.inner.data.write();
    if data.ts(ty).prop(&def.name).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("A property named '{}' already exists.", def.name),
        ));
    }
    data.ts_mut(ty).add_property(def.clone());
    Ok(json_resp(StatusCode::CREATED, json!(def)))
}
