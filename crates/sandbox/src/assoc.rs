//! Batch association endpoints, on `/crm/v4/associations/{from}/{to}/batch/…` and
//! `/crm/associations/2026-03/{from}/{to}/batch/…`: `create` (with types), `associate/default`
//! and `read`, plus the labelled single `PUT …/objects/{type}/{id}/associations/{to}/{toId}`.
//!
//! The store keeps that two records are associated, not the association's labels: listings
//! answer the default type of the pair. An input naming a record that does not exist is one
//! error of a 207, with the id under `context.fromObjectId` or `context.toObjectId` (HubSpot
//! does not document this error's context; the keys follow its field names).

use crate::error::ApiError;
use crate::handle::Store;
use crate::model::{ASSOCIATION_TYPES, ObjectType, default_association_type};
use crate::server::{ApiResult, json_kind, obj_type, parse_body};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// Inputs of one batch association request at most: HubSpot's documented cap for batch reads
/// (1,000 since February 2025), used for every association batch.
pub const MAX_ASSOCIATION_BATCH: usize = 1_000;

fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks one association type of a labelled create between `from` and `to`.
fn check_type(from: ObjectType, to: ObjectType, t: &Value) -> Result<(), ApiError> {
    let id = t
        .get("associationTypeId")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::validation("each type needs an associationTypeId"))?;
    let category = t
        .get("associationCategory")
        .and_then(Value::as_str)
        .unwrap_or("HUBSPOT_DEFINED");
    match category {
        "HUBSPOT_DEFINED" => {
            let fits = ASSOCIATION_TYPES
                .iter()
                .any(|(tid, f, tt)| u64::from(*tid) == id && *f == from && *tt == to);
            if fits {
                Ok(())
            } else {
                Err(ApiError::validation(format!(
                    "association type {id} (HUBSPOT_DEFINED) does not go from {from} to {to}"
                )))
            }
        }
        // labels a portal defined: the sandbox keeps no labels, so any id is taken
        "USER_DEFINED" | "INTEGRATOR_DEFINED" => Ok(()),
        other => Err(ApiError::validation(format!(
            "unknown associationCategory {other}"
        ))),
    }
}

fn type_json(from: ObjectType, to: ObjectType) -> Value {
    json!({
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": default_association_type(from, to),
    })
}

/// `POST …/associations/{from}/{to}/batch/{create|read}` and `…/batch/associate/default`.
pub(crate) async fn batch(
    State(s): State<Store>,
    Path((from, to, op)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    run(&s, &from, &to, &op, &body)
}

pub(crate) async fn batch_default(
    State(s): State<Store>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    run(&s, &from, &to, "associate/default", &body)
}

fn run(s: &Store, from: &str, to: &str, op: &str, body: &Bytes) -> ApiResult {
    let (from, to) = (obj_type(from)?, obj_type(to)?);
    if !matches!(op, "create" | "associate/default" | "read") {
        return Err(ApiError::not_found(format!(
            "no association batch operation {op}"
        )));
    }
    let v = parse_body(body)?;
    let inputs = v
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::validation("inputs is required"))?;
    if inputs.len() > MAX_ASSOCIATION_BATCH {
        return Err(ApiError::validation(format!(
            "Too many inputs: {} (at most {MAX_ASSOCIATION_BATCH} in an association batch)",
            inputs.len()
        )));
    }
    if op == "associate/default" && default_association_type(from, to).is_none() {
        return Err(ApiError::validation(format!(
            "there is no default association from {from} to {to}"
        )));
    }
    let started = s.now_iso();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    if op == "read" {
        let data = s.inner.data.read();
        for input in inputs {
            let Some(id) = id_of(input.get("id")) else {
                return Err(ApiError::validation("each input needs an id"));
            };
            match data.resolve(from, &id, None, false)? {
                Some(rid) => results.push(json!({
                    "from": {"id": rid.to_string()},
                    "to": data.association_results_v4(from, rid, to),
                })),
                None => errors.push(
                    ApiError::not_found(format!("No {} with id {id}", from.singular()))
                        .with_context("ids", vec![id])
                        .body(),
                ),
            }
        }
    } else {
        // Shapes and types first: a request refused whole changes nothing.
        let mut pairs = Vec::with_capacity(inputs.len());
        for input in inputs {
            if !input.is_object() {
                return Err(ApiError::validation(format!(
                    "each input must be a JSON object, not {}",
                    json_kind(input)
                )));
            }
            let (Some(a), Some(b)) = (
                id_of(input.pointer("/from/id")),
                id_of(input.pointer("/to/id")),
            ) else {
                return Err(ApiError::validation("each input needs from.id and to.id"));
            };
            if op == "create" {
                let types = input
                    .get("types")
                    .and_then(Value::as_array)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ApiError::validation("each input needs types"))?;
                for t in types {
                    check_type(from, to, t)?;
                }
            }
            pairs.push((a, b));
        }
        let mut data = s.inner.data.write();
        for (a, b) in pairs {
            let fa = data.resolve(from, &a, None, false)?;
            let tb = data.resolve(to, &b, None, false)?;
            let (Some(fa), Some(tb)) = (fa, tb) else {
                let (key, id, ty) = if fa.is_none() {
                    ("fromObjectId", a, from)
                } else {
                    ("toObjectId", b, to)
                };
                errors.push(
                    ApiError::validation(format!(
                        "Could not find {} with id {id} to associate",
                        ty.singular()
                    ))
                    .with_context(key, vec![id])
                    .body(),
                );
                continue;
            };
            data.associate(from, fa, to, tb);
            results.push(if op == "create" {
                json!({
                    "fromObjectTypeId": from.type_id(),
                    "fromObjectId": fa,
                    "toObjectTypeId": to.type_id(),
                    "toObjectId": tb,
                    "labels": [],
                })
            } else {
                json!({
                    "from": {"id": fa.to_string()},
                    "to": {"id": tb.to_string()},
                    "associationSpec": type_json(from, to),
                })
            });
        }
    }
    let status = match (errors.is_empty(), op) {
        (false, _) => StatusCode::MULTI_STATUS,
        (true, "read") => StatusCode::OK,
        (true, _) => StatusCode::CREATED,
    };
    let mut out = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": s.now_iso(),
    });
    if !errors.is_empty() {
        out["numErrors"] = json!(errors.len());
        for e in &mut errors {
            if let Some(o) = e.as_object_mut() {
                o.remove("correlationId");
            }
        }
        out["errors"] = Value::Array(errors);
    }
    Ok((status, axum::Json(out)).into_response())
}

/// `PUT …/objects/{type}/{id}/associations/{to}/{toId}` with a body of types: a labelled
/// association of one pair.
pub(crate) async fn put_labelled(
    State(s): State<Store>,
    Path((t, id, to, to_id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult {
    let (ty, to) = (obj_type(&t)?, obj_type(&to)?);
    let types: Value = if body.is_empty() {
        Value::Array(vec![])
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::validation(format!("Invalid input JSON: {e}")))?
    };
    let types = types
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::validation("the body must be a non-empty array of types"))?;
    for t in types {
        check_type(ty, to, t)?;
    }
    let mut data = s.inner.data.write();
    let a = data
        .resolve(ty, &id, None, false)?
        .ok_or_else(|| ApiError::not_found(format!("No {} with id {id}", ty.singular())))?;
    let b = data
        .resolve(to, &to_id, None, false)?
        .ok_or_else(|| ApiError::not_found(format!("No {} with id {to_id}", to.singular())))?;
    data.associate(ty, a, to, b);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "fromObjectTypeId": ty.type_id(),
            "fromObjectId": a,
            "toObjectTypeId": to.type_id(),
            "toObjectId": b,
            "labels": [],
        })),
    )
        .into_response())
}
