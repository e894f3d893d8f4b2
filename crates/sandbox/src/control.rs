//! The control API under `/_sandbox/` (no auth): seed, touch, request log, stats, faults,
//! clock, reset, health.

use crate::SandboxError;
use crate::error::ApiError;
use crate::handle::Store;
use crate::seed::{SeedSpec, demo_seed, seed_from_json};
use crate::server::parse_body;
use crate::store::WriteRules;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

type R = Result<Response, ApiError>;

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Api {
                status,
                category,
                message,
            } => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &category,
                message,
            ),
            other => ApiError::validation(other.to_string()),
        }
    }
}

pub(crate) fn routes() -> Router<Store> {
    Router::new()
        .route("/_sandbox/health", get(health))
        .route("/_sandbox/seed", post(seed))
        .route("/_sandbox/demo", post(demo))
        .route(
            "/_sandbox/objects/{object_type}/{id}",
            get(record).delete(archive),
        )
        .route("/_sandbox/objects/{object_type}/{id}/touch", post(touch))
        .route("/_sandbox/requests", get(requests).delete(clear_requests))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/faults", get(faults).put(set_faults))
        .route("/_sandbox/tokens/expire", post(expire_tokens))
        .route("/_sandbox/clock", get(clock).post(set_clock))
        .route("/_sandbox/validation", get(all_rules))
        .route(
            "/_sandbox/validation/{object_type}",
            get(rules).put(set_rules).delete(clear_rules),
        )
        .route("/_sandbox/properties/{object_type}", post(define_property))
        .route(
            "/_sandbox/properties/{object_type}/{name}",
            axum::routing::delete(remove_property),
        )
        .route("/_sandbox/scopes", get(scopes).put(set_scopes))
        .route("/_sandbox/reset", post(reset))
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

async fn health() -> Response {
    ok(json!({"status": "ok"}))
}

async fn seed(State(s): State<Store>, body: Bytes) -> R {
    let v = parse_body(&body)?;
    if v.get("objectType").is_some() || v.get("object_type").is_some() || v.get("type").is_some() {
        let spec: SeedSpec = serde_json::from_value(v)
            .map_err(|e| ApiError::validation(format!("invalid seed spec: {e}")))?;
        let ty = spec.object_type.clone();
        let ids = s.seed(spec)?;
        let mut out = json!({
            "objectType": ty,
            "created": ids.len(),
            "firstId": ids.first(),
            "lastId": ids.last(),
        });
        if ids.len() <= 1000 {
            out["ids"] = json!(ids);
        }
        Ok(ok(out))
    } else {
        let n = seed_from_json(&s, &v)?;
        Ok(ok(json!({ "created": n })))
    }
}

async fn demo(State(s): State<Store>) -> Response {
    ok(json!({ "created": demo_seed(&s) }))
}

async fn record(State(s): State<Store>, Path((t, id)): Path<(String, String)>) -> R {
    match s.get(&t, &id)? {
        Some(v) => Ok(ok(v)),
        None => Err(ApiError::not_found(format!("No {t} record with id {id}"))),
    }
}

async fn archive(State(s): State<Store>, Path((t, id)): Path<(String, String)>) -> R {
    s.archive(&t, &id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn touch(State(s): State<Store>, Path((t, id)): Path<(String, String)>, body: Bytes) -> R {
    let v = parse_body(&body)?;
    let empty = Map::new();
    let props = v
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let at = match v.get("at") {
        None | Some(Value::Null) => None,
        Some(x) => Some(
            crate::props::coerce(x)
                .and_then(|s| crate::model::parse_ts(&s))
                .filter(|ms| crate::seed::ts_in_range(i128::from(*ms)))
                .ok_or_else(|| {
                    ApiError::validation("at must be epoch ms or ISO 8601 within years 0000-9999")
                })?,
        ),
    };
    Ok(ok(s.touch(&t, &id, props, at)?))
}

async fn requests(State(s): State<Store>, Query(q): Query<HashMap<String, String>>) -> Response {
    let all = s.requests();
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(all.len());
    let skip = all.len().saturating_sub(limit);
    ok(json!({ "results": &all[skip..] }))
}

async fn clear_requests(State(s): State<Store>) -> Response {
    s.inner.tele.lock().log.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(s): State<Store>) -> Response {
    ok(json!(s.stats()))
}

async fn faults(State(s): State<Store>) -> Response {
    ok(s.faults().to_json())
}

async fn set_faults(State(s): State<Store>, body: Bytes) -> R {
    let v = parse_body(&body)?;
    let mut f = s.faults();
    f.apply_json(&v).map_err(ApiError::validation)?;
    s.set_faults(f.clone());
    Ok(ok(f.to_json()))
}

async fn expire_tokens(State(s): State<Store>) -> Response {
    let now = s.now_ms();
    let mut rt = s.inner.rt.lock();
    let n = rt.tokens.len();
    for exp in rt.tokens.values_mut() {
        *exp = now;
    }
    ok(json!({ "expired": n }))
}

fn clock_json(s: &Store) -> Value {
    let now = s.now_ms();
    json!({
        "offset_ms": s.inner.clock.offset_ms(),
        "now_ms": now,
        "now": crate::model::fmt_ms(now),
    })
}

async fn clock(State(s): State<Store>) -> Response {
    ok(clock_json(&s))
}

/// `{"advance_ms": n}` moves the clock by n ms (negative: back); `{"offset_ms": n}` sets its
/// offset from the system clock. Either is refused beyond ±10 years.
async fn set_clock(State(s): State<Store>, body: Bytes) -> R {
    let v = parse_body(&body)?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::validation("clock body must be a JSON object"))?;
    let int = |k: &str| -> Result<Option<i64>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x.as_i64().map(Some).ok_or_else(|| {
                ApiError::validation(format!("{k} must be an integer number of milliseconds"))
            }),
        }
    };
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "advance_ms" | "offset_ms"))
    {
        return Err(ApiError::validation(format!(
            "unknown clock field: {other} (expected advance_ms or offset_ms)"
        )));
    }
    match (int("advance_ms")?, int("offset_ms")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "give advance_ms or offset_ms, not both",
            ));
        }
        (Some(ms), None) => {
            s.inner.clock.shift_ms(ms)?;
        }
        (None, Some(ms)) => s.inner.clock.set_offset_ms(ms)?,
        (None, None) => {}
    }
    Ok(ok(clock_json(&s)))
}

async fn all_rules(State(s): State<Store>) -> R {
    let mut out = Map::new();
    for ty in crate::model::ObjectType::ALL {
        let r = s.write_rules(ty.as_str())?;
        if r != WriteRules::default() {
            out.insert(ty.as_str().into(), json!(r));
        }
    }
    Ok(ok(Value::Object(out)))
}

async fn rules(State(s): State<Store>, Path(t): Path<String>) -> R {
    Ok(ok(json!(s.write_rules(&t)?)))
}

/// `PUT /_sandbox/validation/{type}` with `{"required_on_create": [...], "required_when":
/// {"property", "equals", "then": [...]} | [...]}` replaces the type's write rules.
async fn set_rules(State(s): State<Store>, Path(t): Path<String>, body: Bytes) -> R {
    let v = parse_body(&body)?;
    let r: WriteRules = serde_json::from_value(v)
        .map_err(|e| ApiError::validation(format!("invalid write rules: {e}")))?;
    s.set_write_rules(&t, r)?;
    Ok(ok(json!(s.write_rules(&t)?)))
}

async fn clear_rules(State(s): State<Store>, Path(t): Path<String>) -> R {
    s.set_write_rules(&t, WriteRules::default())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reset(State(s): State<Store>) -> Response {
    s.reset();
    ok(json!({"status": "ok"}))
}

/// `POST /_sandbox/properties/{type}` with HubSpot's property-create body (`name`, `label`,
/// `type`, `fieldType`, `options`, …): defines a property as a portal admin would, e.g. a
/// dropdown (`"type": "enumeration", "fieldType": "select"`) with its options.
async fn define_property(State(s): State<Store>, Path(t): Path<String>, body: Bytes) -> R {
    let v = parse_body(&body)?;
    let def = crate::props::property_from_create(&v).map_err(ApiError::validation)?;
    s.define_property(&t, def.clone())?;
    Ok((StatusCode::CREATED, axum::Json(json!(def))).into_response())
}

/// `DELETE /_sandbox/properties/{type}/{name}`: archives a property the portal defined (204;
/// 404 when there is none).
async fn remove_property(State(s): State<Store>, Path((t, name)): Path<(String, String)>) -> R {
    if s.remove_property(&t, &name)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("No property {name} on {t}")))
    }
}

async fn scopes() -> Response {
    ok(json!({ "all": crate::oauth::all_scopes() }))
}

/// `PUT /_sandbox/scopes` with `{"token": "…", "scopes": [...]}` restricts a static token to
/// those scopes (`"scopes": null` gives it every scope again).
async fn set_scopes(State(s): State<Store>, body: Bytes) -> R {
    let v = parse_body(&body)?;
    let token = v
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::validation("token is required"))?;
    let scopes = match v.get("scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let all = crate::oauth::all_scopes();
            let mut out = Vec::with_capacity(a.len());
            for x in a {
                let scope = x
                    .as_str()
                    .ok_or_else(|| ApiError::validation("scopes must be strings"))?;
                if !all.iter().any(|k| k == scope) {
                    return Err(ApiError::validation(format!("unknown scope: {scope}")));
                }
                out.push(scope.to_string());
            }
            Some(out)
        }
        Some(_) => return Err(ApiError::validation("scopes must be an array or null")),
    };
    s.restrict_token(token, scopes.clone())?;
    Ok(ok(json!({ "token": token, "scopes": scopes })))
}
