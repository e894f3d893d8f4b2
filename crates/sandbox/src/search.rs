//! `POST /crm/v3/objects/{type}/search`: filter groups, sorts, paging and the 10,000 cap.
//!
//! Window queries on `createdate` or the type's last-modified property walk an ordered
//! `BTreeSet<(timestamp_ms, id)>` index, so they answer in milliseconds over a million
//! records; everything else scans.

use crate::error::ApiError;
use crate::limits::SearchCap;
use crate::model::{ObjectType, parse_ts};
use crate::props::coerce;
use crate::store::{Data, PropSel, Record, RecordView, TypeStore};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::ops::Bound;

/// Results per page at most.
pub const MAX_LIMIT: usize = 200;
/// Results reachable through paging at most.
pub const RESULT_CAP: usize = 10_000;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 10;
const MAX_FILTERS: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    Has,
    NotHas,
    Contains,
    NotContains,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "EQ" => Op::Eq,
            "NEQ" => Op::Neq,
            "LT" => Op::Lt,
            "LTE" => Op::Lte,
            "GT" => Op::Gt,
            "GTE" => Op::Gte,
            "BETWEEN" => Op::Between,
            "IN" => Op::In,
            "NOT_IN" => Op::NotIn,
            "HAS_PROPERTY" => Op::Has,
            "NOT_HAS_PROPERTY" => Op::NotHas,
            "CONTAINS_TOKEN" => Op::Contains,
            "NOT_CONTAINS_TOKEN" => Op::NotContains,
            _ => return None,
        })
    }
}

/// How a property's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Created,
    Modified,
    /// `hs_lastmodifieddate` on contacts: filtering on it silently matches nothing, as in HubSpot.
    Never,
    Time,
    Number,
    Text,
}

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Typed {
    Num(f64),
    Ms(i64),
    Text(String),
}

fn cmp_typed(a: &Typed, b: &Typed) -> Ordering {
    match (a, b) {
        (Typed::Num(x), Typed::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Typed::Ms(x), Typed::Ms(y)) => x.cmp(y),
        (Typed::Text(x), Typed::Text(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

fn kind_of(ts: &TypeStore, name: &str) -> Option<Kind> {
    let ty = ts.ty;
    Some(match name {
        "hs_object_id" => Kind::Id,
        "createdate" => Kind::Created,
        "hs_lastmodifieddate" if ty == ObjectType::Contacts => Kind::Never,
        "hs_lastmodifieddate" | "lastmodifieddate" if name == ty.modified_property() => {
            Kind::Modified
        }
        _ => {
            let def = ts.prop(name)?;
            match def.kind.as_str() {
                "number" => Kind::Number,
                "date" | "datetime" => Kind::Time,
                _ => Kind::Text,
            }
        }
    })
}

fn typed_value(ts: &TypeStore, kind: Kind, name: &str, id: u64, rec: &Record) -> Option<Typed> {
    match kind {
        Kind::Id => Some(Typed::Num(id as f64)),
        Kind::Created => Some(Typed::Ms(rec.created)),
        Kind::Modified => Some(Typed::Ms(rec.updated)),
        Kind::Never => None,
        Kind::Time => rec.props.get(name).and_then(|v| parse_ts(v)).map(Typed::Ms),
        Kind::Number => rec
            .props
            .get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(Typed::Num),
        Kind::Text => {
            let _ = ts;
            rec.props
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| Typed::Text(v.to_lowercase()))
        }
    }
}

fn operand(kind: Kind, prop: &str, v: &Value) -> Result<Typed, ApiError> {
    let raw = coerce(v).ok_or_else(|| {
        ApiError::validation(format!(
            "filter value for {prop} must be a string or number"
        ))
    })?;
    match kind {
        Kind::Id | Kind::Number => raw.trim().parse::<f64>().map(Typed::Num).map_err(|_| {
            ApiError::validation(format!("{raw} is not a valid number for property {prop}"))
        }),
        Kind::Created | Kind::Modified | Kind::Time | Kind::Never => {
            parse_ts(&raw).map(Typed::Ms).ok_or_else(|| {
                ApiError::validation(format!(
                    "{raw} is not a valid timestamp for property {prop}: use epoch milliseconds or ISO 8601"
                ))
            })
        }
        Kind::Text => Ok(Typed::Text(raw.to_lowercase())),
    }
}

#[derive(Debug, Clone)]
struct Filter {
    prop: String,
    op: Op,
    kind: Kind,
    value: Option<Typed>,
    high: Option<Typed>,
    values: Vec<Typed>,
}

fn glob(pattern: &str, text: &str) -> bool {
    // iterative wildcard match with '*'
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn contains_token(value: &str, pattern: &str) -> bool {
    if pattern.contains('*') {
        if glob(pattern, value) {
            return true;
        }
        return value.split_whitespace().any(|tok| glob(pattern, tok));
    }
    value == pattern
        || value
            .split(|c: char| !c.is_alphanumeric())
            .any(|tok| !tok.is_empty() && tok == pattern)
}

/// `value` (any case) equals `lower` (already lower-case).
fn eq_lower(value: &str, lower: &str) -> bool {
    if value.is_ascii() {
        value.eq_ignore_ascii_case(lower)
    } else {
        value.to_lowercase() == lower
    }
}

impl Filter {
    /// Fast path for text equality operators: no allocation per record.
    fn test_text(&self, v: Option<&str>) -> Option<bool> {
        let v = v.filter(|s| !s.is_empty());
        let is = |x: &Typed| matches!((v, x), (Some(v), Typed::Text(t)) if eq_lower(v, t));
        match self.op {
            Op::Eq => Some(self.value.as_ref().is_some_and(is)),
            Op::Neq => Some(!self.value.as_ref().is_some_and(is)),
            Op::In => Some(self.values.iter().any(is)),
            Op::NotIn => Some(!self.values.iter().any(is)),
            Op::Has => Some(v.is_some()),
            Op::NotHas => Some(v.is_none()),
            _ => None,
        }
    }

    /// Whether the index range bounds already express this filter exactly.
    fn captured_by_range(&self, ik: Kind) -> bool {
        self.kind == ik
            && matches!(
                self.op,
                Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Between
            )
    }

    fn parse(ts: &TypeStore, f: &Value) -> Result<Filter, ApiError> {
        let prop = f
            .get("propertyName")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::validation("filter is missing propertyName"))?
            .to_string();
        let op_s = f.get("operator").and_then(Value::as_str).unwrap_or("EQ");
        let op = Op::parse(op_s)
            .ok_or_else(|| ApiError::validation(format!("Unknown filter operator: {op_s}")))?;
        let kind = kind_of(ts, &prop).ok_or_else(|| {
            ApiError::validation(format!(
                "There was a problem with the request: property {prop} does not exist on {}",
                ts.ty
            ))
            .with_context("propertyName", vec![prop.clone()])
        })?;
        let needs = |k: &str| ApiError::validation(format!("operator {op_s} on {prop} needs {k}"));
        let mut flt = Filter {
            prop: prop.clone(),
            op,
            kind,
            value: None,
            high: None,
            values: vec![],
        };
        match op {
            Op::Has | Op::NotHas => {}
            Op::In | Op::NotIn => {
                let vals = f
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or_else(|| needs("values"))?;
                for v in vals {
                    flt.values.push(operand(kind, &prop, v)?);
                }
            }
            Op::Between => {
                flt.value = Some(operand(
                    kind,
                    &prop,
                    f.get("value").ok_or_else(|| needs("value"))?,
                )?);
                flt.high = Some(operand(
                    kind,
                    &prop,
                    f.get("highValue").ok_or_else(|| needs("highValue"))?,
                )?);
            }
            _ => {
                flt.value = Some(operand(
                    kind,
                    &prop,
                    f.get("value").ok_or_else(|| needs("value"))?,
                )?);
            }
        }
        Ok(flt)
    }

    /// Matches a value (None = property unset).
    fn test(&self, v: Option<&Typed>) -> bool {
        if self.kind == Kind::Never {
            return false;
        }
        let eq = |a: &Typed, b: &Typed| cmp_typed(a, b) == Ordering::Equal;
        let c = |b: &Option<Typed>| -> Option<Ordering> { Some(cmp_typed(v?, b.as_ref()?)) };
        match self.op {
            Op::Has => v.is_some(),
            Op::NotHas => v.is_none(),
            Op::Eq => v.is_some_and(|v| eq(v, self.value.as_ref().expect("value"))),
            Op::Neq => !v.is_some_and(|v| eq(v, self.value.as_ref().expect("value"))),
            Op::Lt => c(&self.value) == Some(Ordering::Less),
            Op::Lte => matches!(c(&self.value), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => c(&self.value) == Some(Ordering::Greater),
            Op::Gte => matches!(c(&self.value), Some(Ordering::Greater | Ordering::Equal)),
            Op::Between => {
                matches!(c(&self.value), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(c(&self.high), Some(Ordering::Less | Ordering::Equal))
            }
            Op::In => v.is_some_and(|v| self.values.iter().any(|x| eq(v, x))),
            Op::NotIn => !v.is_some_and(|v| self.values.iter().any(|x| eq(v, x))),
            Op::Contains | Op::NotContains => {
                let hit = match (v, &self.value) {
                    (Some(Typed::Text(t)), Some(Typed::Text(p))) => contains_token(t, p),
                    (Some(a), Some(b)) => eq(a, b),
                    _ => false,
                };
                if self.op == Op::Contains { hit } else { !hit }
            }
        }
    }

    /// Millisecond bounds this filter puts on a timestamp kind.
    fn bounds(&self) -> (Bound<i64>, Bound<i64>) {
        let ms = |t: &Option<Typed>| match t {
            Some(Typed::Ms(m)) => Some(*m),
            _ => None,
        };
        match (self.op, ms(&self.value)) {
            (Op::Eq, Some(m)) => (Bound::Included(m), Bound::Included(m)),
            (Op::Gt, Some(m)) => (Bound::Excluded(m), Bound::Unbounded),
            (Op::Gte, Some(m)) => (Bound::Included(m), Bound::Unbounded),
            (Op::Lt, Some(m)) => (Bound::Unbounded, Bound::Excluded(m)),
            (Op::Lte, Some(m)) => (Bound::Unbounded, Bound::Included(m)),
            (Op::Between, Some(m)) => match ms(&self.high) {
                Some(h) => (Bound::Included(m), Bound::Included(h)),
                None => (Bound::Included(m), Bound::Unbounded),
            },
            _ => (Bound::Unbounded, Bound::Unbounded),
        }
    }
}

fn tighten_lo(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    use Bound::*;
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.max(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.max(y)),
        (Included(x), Excluded(y)) | (Excluded(y), Included(x)) => {
            if y >= x {
                Excluded(y)
            } else {
                Included(x)
            }
        }
    }
}

fn tighten_hi(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    use Bound::*;
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(x), Included(y)) => Included(x.min(y)),
        (Excluded(x), Excluded(y)) => Excluded(x.min(y)),
        (Included(x), Excluded(y)) | (Excluded(y), Included(x)) => {
            if y <= x {
                Excluded(y)
            } else {
                Included(x)
            }
        }
    }
}

type KeyRange = (Bound<(i64, u64)>, Bound<(i64, u64)>);

fn key_range(lo: Bound<i64>, hi: Bound<i64>) -> Option<KeyRange> {
    let lo = match lo {
        Bound::Included(m) => Bound::Included((m, 0)),
        Bound::Excluded(m) => {
            if m == i64::MAX {
                return None;
            }
            Bound::Included((m + 1, 0))
        }
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match hi {
        Bound::Included(m) => Bound::Included((m, u64::MAX)),
        Bound::Excluded(m) => {
            if m == i64::MIN {
                return None;
            }
            Bound::Included((m - 1, u64::MAX))
        }
        Bound::Unbounded => Bound::Unbounded,
    };
    if let (Bound::Included(a), Bound::Included(b)) = (&lo, &hi)
        && a > b
    {
        return None;
    }
    Some((lo, hi))
}

struct Sort {
    prop: String,
    kind: Kind,
    desc: bool,
}

/// Runs a search request and renders HubSpot's `CollectionResponseWithTotal`; `now` (epoch ms
/// on the sandbox's clock) decides which lagging writes are visible yet, `cap` what happens
/// at 10,000 results. `total` always counts every match, past the cap too.
pub(crate) fn search(
    data: &Data,
    ty: ObjectType,
    body: &Value,
    now: i64,
    cap: SearchCap,
) -> Result<Vec<u8>, ApiError> {
    let ts = data.ts(ty);
    let limit = match body.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => coerce(v)
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| ApiError::validation("limit must be a positive integer"))?,
    };
    if limit > MAX_LIMIT {
        return Err(ApiError::validation(format!(
            "limit must be at most {MAX_LIMIT}, got {limit}"
        )));
    }
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => coerce(v)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>())
            .transpose()
            .map_err(|_| {
                ApiError::validation("after must be a paging cursor from a previous page")
            })?
            .unwrap_or(0),
    };
    // EndPaging: no page reaches past the cap (one starting at or past it is empty)
    let limit = match cap {
        SearchCap::Error400 => limit,
        SearchCap::EndPaging => limit.min(RESULT_CAP.saturating_sub(after)),
    };
    if after >= RESULT_CAP && cap == SearchCap::Error400 {
        return Err(ApiError::validation(format!(
            "The search endpoints are limited to {RESULT_CAP} total results for any given query; paging beyond {RESULT_CAP} is not allowed (after={after})"
        ))
        .with_context("after", vec![after.to_string()]));
    }
    // filter groups
    let mut groups: Vec<Vec<Filter>> = vec![];
    let empty = vec![];
    let raw_groups = body
        .get("filterGroups")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if raw_groups.len() > MAX_GROUPS {
        return Err(ApiError::validation(format!(
            "Too many filter groups: {} (at most {MAX_GROUPS})",
            raw_groups.len()
        )));
    }
    let mut n_filters = 0;
    for g in raw_groups {
        let fs = g.get("filters").and_then(Value::as_array).unwrap_or(&empty);
        if fs.len() > MAX_FILTERS_PER_GROUP {
            return Err(ApiError::validation(format!(
                "Too many filters in a group: {} (at most {MAX_FILTERS_PER_GROUP})",
                fs.len()
            )));
        }
        n_filters += fs.len();
        let parsed = fs
            .iter()
            .map(|f| Filter::parse(ts, f))
            .collect::<Result<Vec<_>, _>>()?;
        if !parsed.is_empty() {
            groups.push(parsed);
        }
    }
    if n_filters > MAX_FILTERS {
        return Err(ApiError::validation(format!(
            "Too many filters: {n_filters} (at most {MAX_FILTERS})"
        )));
    }
    // sorts: objects only; stringified sorts are silently ignored, as HubSpot does
    let mut sorts: Vec<Sort> = vec![];
    for s in body
        .get("sorts")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let Some(name) = s.get("propertyName").and_then(Value::as_str) else {
            continue;
        };
        let Some(kind) = kind_of(ts, name) else {
            return Err(ApiError::validation(format!(
                "Cannot sort by unknown property {name}"
            )));
        };
        let desc = s.get("direction").and_then(Value::as_str).is_some_and(|d| {
            d.eq_ignore_ascii_case("DESCENDING") || d.eq_ignore_ascii_case("DESC")
        });
        sorts.push(Sort {
            prop: name.to_string(),
            kind,
            desc,
        });
    }
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .filter(|q| !q.is_empty());
    let properties: Option<Vec<String>> =
        body.get("properties").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        });

    let check_lag = ts.lag_until.is_some_and(|t| t > now);
    let visible = |rec: &Record| !check_lag || rec.searchable_at.is_none_or(|t| t <= now);
    let test_record = |id: u64, rec: &Record, group: &[Filter]| -> bool {
        group.iter().all(|f| {
            if f.kind == Kind::Text
                && let Some(hit) = f.test_text(rec.props.get(&f.prop).map(String::as_str))
            {
                return hit;
            }
            let v = typed_value(ts, f.kind, &f.prop, id, rec);
            f.test(v.as_ref())
        })
    };
    let query_ok = |rec: &Record| match &query {
        None => true,
        Some(q) => rec
            .props
            .values()
            .any(|v| v.to_lowercase().contains(q.as_str())),
    };

    // Choose an ordered index when there is at most one group.
    let group: &[Filter] = groups.first().map(Vec::as_slice).unwrap_or(&[]);
    let index_kind = if groups.len() <= 1 {
        let bounded = |k: Kind| {
            group
                .iter()
                .any(|f| f.kind == k && f.bounds() != (Bound::Unbounded, Bound::Unbounded))
        };
        match sorts.first().map(|s| s.kind) {
            Some(k @ (Kind::Created | Kind::Modified)) => Some(k),
            _ if bounded(Kind::Modified) => Some(Kind::Modified),
            _ if bounded(Kind::Created) => Some(Kind::Created),
            _ => None,
        }
    } else {
        None
    };
    let index_ordered = index_kind.is_some()
        && match sorts.as_slice() {
            [] => true,
            [s] => Some(s.kind) == index_kind,
            [s, t] => Some(s.kind) == index_kind && t.kind == Kind::Id && t.desc == s.desc,
            _ => false,
        };
    let desc = sorts.first().is_some_and(|s| s.desc);

    let mut total = 0usize;
    let mut page: Vec<u64> = Vec::with_capacity(limit);

    if let Some(ik) = index_kind {
        let mut lo = Bound::Unbounded;
        let mut hi = Bound::Unbounded;
        for f in group.iter().filter(|f| f.kind == ik) {
            let (l, h) = f.bounds();
            lo = tighten_lo(lo, l);
            hi = tighten_hi(hi, h);
        }
        let index = if ik == Kind::Created {
            &ts.by_created
        } else {
            &ts.by_modified
        };
        // filters that only need the key (timestamp, id)
        let key_only = group.iter().all(|f| f.kind == ik || f.kind == Kind::Id)
            && query.is_none()
            && !check_lag;
        let residual: Vec<&Filter> = group.iter().filter(|f| !f.captured_by_range(ik)).collect();
        let key_test = |(t, id): (i64, u64)| -> bool {
            residual.iter().all(|f| {
                let v = if f.kind == Kind::Id {
                    Typed::Num(id as f64)
                } else {
                    Typed::Ms(t)
                };
                f.test(Some(&v))
            })
        };
        let mut matched: Vec<u64> = vec![];
        if let Some(range) = key_range(lo, hi)
            && key_only
            && residual.is_empty()
            && index_ordered
        {
            // every filter is the range itself: count keys, take the page directly
            total = index.range(range).count();
            page = if desc {
                index
                    .range(range)
                    .rev()
                    .skip(after)
                    .take(limit)
                    .map(|k| k.1)
                    .collect()
            } else {
                index
                    .range(range)
                    .skip(after)
                    .take(limit)
                    .map(|k| k.1)
                    .collect()
            };
        } else if let Some(range) = key_range(lo, hi) {
            let mut visit = |k: (i64, u64)| {
                let ok = if key_only {
                    key_test(k)
                } else {
                    let rec = &ts.records[&k.1];
                    visible(rec) && query_ok(rec) && test_record(k.1, rec, group)
                };
                if ok {
                    if index_ordered {
                        if total >= after && page.len() < limit {
                            page.push(k.1);
                        }
                    } else {
                        matched.push(k.1);
                    }
                    total += 1;
                }
            };
            if desc && index_ordered {
                index.range(range).rev().for_each(|k| visit(*k));
            } else {
                index.range(range).for_each(|k| visit(*k));
            }
        }
        if !index_ordered {
            sort_ids(ts, &mut matched, &sorts);
            page = matched.into_iter().skip(after).take(limit).collect();
        }
    } else {
        let mut matched: Vec<u64> = ts
            .live
            .iter()
            .copied()
            .filter(|id| {
                let rec = &ts.records[id];
                visible(rec)
                    && query_ok(rec)
                    && (groups.is_empty() || groups.iter().any(|g| test_record(*id, rec, g)))
            })
            .collect();
        total = matched.len();
        sort_ids(ts, &mut matched, &sorts);
        page = matched.into_iter().skip(after).take(limit).collect();
    }

    let sel = match &properties {
        Some(p) => PropSel::Names(p),
        None => PropSel::Defaults,
    };
    let results: Vec<RecordView<'_>> = page
        .iter()
        .map(|id| data.view(ty, *id, &sel, &[]))
        .collect();
    let next = after.saturating_add(limit);
    let more = next < total && limit > 0 && (cap == SearchCap::Error400 || next < RESULT_CAP);
    let paging = more.then(|| json!({ "next": { "after": next.to_string() } }));
    let out = SearchOut {
        total,
        results,
        paging,
    };
    serde_json::to_vec(&out).map_err(|e| ApiError::validation(e.to_string()))
}

#[derive(serde::Serialize)]
struct SearchOut<'a> {
    total: usize,
    results: Vec<RecordView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paging: Option<Value>,
}

fn sort_ids(ts: &TypeStore, ids: &mut [u64], sorts: &[Sort]) {
    if sorts.is_empty() {
        ids.sort_unstable();
        return;
    }
    let mut keyed: Vec<(Vec<Option<Typed>>, u64)> = ids
        .iter()
        .map(|id| {
            let rec = &ts.records[id];
            (
                sorts
                    .iter()
                    .map(|s| typed_value(ts, s.kind, &s.prop, *id, rec))
                    .collect(),
                *id,
            )
        })
        .collect();
    keyed.sort_by(|(a, ia), (b, ib)| {
        for (i, s) in sorts.iter().enumerate() {
            let o = match (&a[i], &b[i]) {
                (Some(x), Some(y)) => cmp_typed(x, y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            let o = if s.desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        ia.cmp(ib)
    });
    for (slot, (_, id)) in ids.iter_mut().zip(keyed) {
        *slot = id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_globs() {
        assert!(contains_token("jane@hubspot.com", "*@hubspot.com"));
        assert!(contains_token("jane@hubspot.com", "hubspot"));
        assert!(!contains_token("jane@hubspot.com", "hub"));
        assert!(contains_token("acme corp", "acme"));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("a*c", "abbbd"));
    }
}
