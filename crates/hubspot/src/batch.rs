//! Batch writes with one outcome per input record.
//!
//! Inputs are chunked to HubSpot's 100 per call and sent concurrently (the connection's
//! `concurrent_batches` bounds how many calls are in flight). Each input carries an
//! `objectWriteTraceId`, which turns on HubSpot's 207 multi-status answers and lets every result
//! and error be traced back to its input. An input the answer names neither in its results nor in
//! its errors (HubSpot does that to an update of a merged-away record) is resolved by a single
//! PATCH when it is an update and reported `Unknown` otherwise. A batch that HubSpot refuses whole because of one bad input is
//! bisected, so the good inputs still go through and only the bad one fails.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use serde::Deserialize;
use tokio::task::JoinSet;

use crate::Client;
use crate::client::{Call, decode, is_ambiguous};
use crate::error::{Error, ErrorBody, RecordError};
use crate::objects::{Association, Object, ObjectType, WriteInput};

/// HubSpot's batch size.
pub const BATCH_SIZE: usize = 100;

/// What happened to one input record of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A new record was made.
    Created {
        /// Its id.
        id: String,
    },
    /// An existing record was changed.
    Updated {
        /// Its id.
        id: String,
    },
    /// The record was refused or could not be sent.
    Failed(RecordError),
    /// Whether the write happened is not known: the answer was lost and could not be checked,
    /// or HubSpot answered the batch with neither a result nor an error for this input (a
    /// create or upsert; never taken for a success). Look the record up before sending it again.
    Unknown {
        /// Why, for the operator.
        reason: String,
    },
}

impl WriteOutcome {
    /// The record id, when the write succeeded.
    pub fn id(&self) -> Option<&str> {
        match self {
            WriteOutcome::Created { id } | WriteOutcome::Updated { id } => Some(id),
            _ => None,
        }
    }

    /// True for `Created` and `Updated`.
    pub fn is_success(&self) -> bool {
        self.id().is_some()
    }
}

/// The kind of batch write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Create,
    Update { id_property: Option<String> },
    Upsert { id_property: String },
}

impl Op {
    fn endpoint(&self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update { .. } => "update",
            Op::Upsert { .. } => "upsert",
        }
    }
}

/// One input and where its outcome goes.
#[derive(Debug, Clone)]
struct Item {
    index: usize,
    /// Record id (update) or unique value (upsert).
    key: Option<String>,
    input: WriteInput,
}

impl Item {
    fn trace_id(&self) -> String {
        self.index.to_string()
    }
}

type Outcomes = Vec<(usize, WriteOutcome)>;
type BoxFut<'a> = Pin<Box<dyn Future<Output = Outcomes> + Send + 'a>>;

/// How often unanswered inputs of a chunk are sent again.
const RESENDS: u32 = 2;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<BatchResult>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchResult {
    #[serde(flatten)]
    object: Object,
    #[serde(default)]
    object_write_trace_id: Option<String>,
    #[serde(default)]
    new: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchError {
    #[serde(flatten)]
    body: ErrorBody,
    #[serde(default)]
    object_write_trace_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

fn status_for_category(category: &str) -> Option<u16> {
    Some(match category {
        "VALIDATION_ERROR" | "INVALID_EMAIL" | "PROPERTY_DOESNT_EXIST" => 400,
        "OBJECT_NOT_FOUND" => 404,
        "CONFLICT" | "OBJECT_ALREADY_EXISTS" => 409,
        "RATE_LIMIT" | "RATE_LIMITS" => 429,
        _ => return None,
    })
}

/// Email-like keys compare case-insensitively, as HubSpot does.
pub(crate) fn norm(key: &str) -> String {
    key.trim().to_lowercase()
}

impl Op {
    fn input_json(&self, item: &Item, trace: bool) -> serde_json::Value {
        let mut v = serde_json::json!({ "properties": item.input.properties });
        if trace {
            v["objectWriteTraceId"] = item.trace_id().into();
        }
        match self {
            Op::Create => {
                v["associations"] = item
                    .input
                    .associations
                    .iter()
                    .map(Association::to_json)
                    .collect();
            }
            Op::Update { id_property } => {
                v["id"] = item.key.clone().unwrap_or_default().into();
                if let Some(p) = id_property {
                    v["idProperty"] = p.clone().into();
                }
            }
            Op::Upsert { id_property } => {
                v["id"] = item.key.clone().unwrap_or_default().into();
                v["idProperty"] = id_property.clone().into();
            }
        }
        v
    }
}

/// Maps a 200/201/207 answer back onto the chunk's items; returns the outcomes found and the
/// errors that named no input.
fn map_answer(
    op: &Op,
    items: &[Item],
    answer: BatchAnswer,
) -> (Vec<Option<WriteOutcome>>, Vec<RecordError>) {
    let mut out: Vec<Option<WriteOutcome>> = vec![None; items.len()];
    let by_trace: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(pos, it)| (it.trace_id(), pos))
        .collect();
    let by_key: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .filter_map(|(pos, it)| it.key.as_deref().map(|k| (norm(k), pos)))
        .collect();
    let in_order = *op == Op::Create
        && answer.errors.is_empty()
        && answer.results.len() == items.len()
        && answer
            .results
            .iter()
            .all(|r| r.object_write_trace_id.is_none());
    for (i, r) in answer.results.into_iter().enumerate() {
        // A result that carries a trace id is placed by it alone: its id or unique value may
        // name another record than the input did (an update of a merged-away id answers with
        // the surviving record).
        let pos = match &r.object_write_trace_id {
            Some(t) => by_trace.get(t).copied(),
            None => match op {
                Op::Create => in_order.then_some(i),
                Op::Update { id_property: None } => by_key.get(&norm(&r.object.id)).copied(),
                Op::Update {
                    id_property: Some(p),
                }
                | Op::Upsert { id_property: p } => r
                    .object
                    .property(p)
                    .and_then(|v| by_key.get(&norm(v)).copied()),
            },
        };
        let Some(pos) = pos else { continue };
        let id = r.object.id;
        out[pos] = Some(match op {
            Op::Create => WriteOutcome::Created { id },
            Op::Update { .. } => WriteOutcome::Updated { id },
            Op::Upsert { .. } if r.new == Some(true) => WriteOutcome::Created { id },
            Op::Upsert { .. } => WriteOutcome::Updated { id },
        });
    }
    let mut unmapped = Vec::new();
    for e in answer.errors {
        let mut traces: Vec<String> = e.object_write_trace_id.into_iter().collect();
        let mut keys: Vec<String> = e.id.into_iter().collect();
        let api = e.body.into_api_error(0);
        for (k, values) in &api.context {
            let k = k.to_ascii_lowercase();
            if k.starts_with("objectwritetraceid") {
                traces.extend(values.iter().cloned());
            } else if k == "ids" || k == "id" {
                keys.extend(values.iter().cloned());
            }
        }
        let mut err = RecordError::from(api);
        err.status = err
            .status
            .filter(|s| *s >= 400)
            .or_else(|| status_for_category(&err.category));
        let mut positions: Vec<usize> = traces
            .iter()
            .filter_map(|t| by_trace.get(t).copied())
            .collect();
        if positions.is_empty() {
            positions = keys
                .iter()
                .filter_map(|k| by_key.get(&norm(k)).copied())
                .collect();
        }
        if positions.is_empty() {
            unmapped.push(err);
            continue;
        }
        for pos in positions {
            if out[pos].is_none() {
                out[pos] = Some(WriteOutcome::Failed(err.clone()));
            }
        }
    }
    (out, unmapped)
}

/// Splits inputs into rounds in which every key appears once: HubSpot refuses a batch that names
/// one record twice, and later rounds keep the inputs' order for the same record.
fn rounds(items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut rounds: Vec<Vec<Item>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in items {
        let r = match &item.key {
            Some(k) => {
                let n = seen.entry(norm(k)).or_insert(0);
                *n += 1;
                *n - 1
            }
            None => 0,
        };
        if rounds.len() <= r {
            rounds.push(Vec::new());
        }
        rounds[r].push(item);
    }
    rounds
}

impl Client {
    /// Creates records; one outcome per input, in input order.
    pub async fn batch_create(
        &self,
        object: &ObjectType,
        inputs: Vec<WriteInput>,
    ) -> Vec<WriteOutcome> {
        let items = inputs
            .into_iter()
            .enumerate()
            .map(|(index, input)| Item {
                index,
                key: None,
                input,
            })
            .collect();
        self.run_writes(object, Op::Create, items).await
    }

    /// Updates records by id, or by the unique property `id_property`; one outcome per input.
    pub async fn batch_update(
        &self,
        object: &ObjectType,
        id_property: Option<&str>,
        inputs: Vec<(String, WriteInput)>,
    ) -> Vec<WriteOutcome> {
        let op = Op::Update {
            id_property: id_property.map(str::to_string),
        };
        self.run_keyed(object, op, inputs).await
    }

    /// Creates or updates records matched on the unique property `id_property` (contacts:
    /// `email`; any custom property with unique values); one outcome per input.
    pub async fn batch_upsert(
        &self,
        object: &ObjectType,
        id_property: &str,
        inputs: Vec<(String, WriteInput)>,
    ) -> Vec<WriteOutcome> {
        let op = Op::Upsert {
            id_property: id_property.to_string(),
        };
        self.run_keyed(object, op, inputs).await
    }

    /// Creates or updates records by HubSpot ID: an input without an id is created; one whose id
    /// exists is updated; one whose id does not exist fails, or is created when
    /// `create_if_missing`.
    pub async fn upsert_by_id(
        &self,
        object: &ObjectType,
        inputs: Vec<(Option<String>, WriteInput)>,
        create_if_missing: bool,
    ) -> Vec<WriteOutcome> {
        let n = inputs.len();
        let mut out: Vec<Option<WriteOutcome>> = vec![None; n];
        let ids: Vec<String> = inputs
            .iter()
            .filter_map(|(id, _)| id.as_deref().map(str::trim).filter(|s| !s.is_empty()))
            // HubSpot record ids are numeric; anything else cannot exist, and asking for it
            // could fail the whole read.
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let existing: Result<HashMap<String, String>, Error> = if ids.is_empty() {
            Ok(HashMap::new())
        } else {
            self.existing_ids(object, &ids).await
        };
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for (index, (id, input)) in inputs.into_iter().enumerate() {
            let id = id.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            match (id, &existing) {
                (None, _) => creates.push(Item {
                    index,
                    key: None,
                    input,
                }),
                (Some(_), Err(e)) => out[index] = Some(WriteOutcome::Failed(e.into())),
                (Some(id), Ok(found)) if found.contains_key(&id) => updates.push(Item {
                    index,
                    key: Some(found[&id].clone()),
                    input,
                }),
                (Some(_), Ok(_)) if create_if_missing => creates.push(Item {
                    index,
                    key: None,
                    input,
                }),
                (Some(id), Ok(_)) => {
                    let mut err = RecordError::client(
                        "OBJECT_NOT_FOUND",
                        format!(
                            "no {object} record with id {id}; leave the id empty to create one"
                        ),
                    );
                    err.status = Some(404);
                    out[index] = Some(WriteOutcome::Failed(err));
                }
            }
        }
        let (created, updated) = tokio::join!(
            self.write_items(object, Op::Create, creates),
            self.write_items(object, Op::Update { id_property: None }, updates),
        );
        for (index, outcome) in created.into_iter().chain(updated) {
            out[index] = Some(outcome);
        }
        finish(out)
    }

    /// Which of `ids` exist, each mapped to the record it stands for now: itself, or, for an id
    /// that was merged away (absent from a batch read), the surviving record a single GET
    /// answers with.
    async fn existing_ids(
        &self,
        object: &ObjectType,
        ids: &[String],
    ) -> Result<HashMap<String, String>, Error> {
        let mut found: HashMap<String, String> = self
            .batch_read(object, ids, None, &[])
            .await?
            .into_iter()
            .map(|o| (o.id.clone(), o.id))
            .collect();
        for id in ids
            .iter()
            .filter(|id| !found.contains_key(*id))
            .cloned()
            .collect::<Vec<_>>()
        {
            if let Some(o) = self.get(object, &id, None, &[]).await? {
                found.insert(id, o.id);
            }
        }
        Ok(found)
    }

    /// Reads records by id (or by `id_property`), chunked to 100; ids that do not exist are
    /// simply absent from the result.
    pub async fn batch_read(
        &self,
        object: &ObjectType,
        ids: &[String],
        id_property: Option<&str>,
        properties: &[String],
    ) -> Result<Vec<Object>, Error> {
        let mut set = JoinSet::new();
        for (n, chunk) in ids.chunks(BATCH_SIZE).enumerate() {
            let mut body = serde_json::json!({
                "inputs": chunk.iter().map(|id| serde_json::json!({ "id": id })).collect::<Vec<_>>(),
                "properties": properties,
            });
            if let Some(p) = id_property {
                body["idProperty"] = p.into();
            }
            let mut call = Call::post(self.paths().batch(object, "read"), body);
            call.batch = true;
            let client = self.clone();
            set.spawn(rivulet_http::counted(async move {
                let answer = match client.send(&call).await {
                    Ok(a) => a,
                    Err(e) if e.is_not_found() => return Ok((n, Vec::new())),
                    Err(e) => return Err(e),
                };
                let parsed: BatchAnswer = decode(&call.path, &answer.body)?;
                Ok((n, parsed.results.into_iter().map(|r| r.object).collect()))
            }));
        }
        let mut pages: Vec<(usize, Vec<Object>)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            let page =
                joined.map_err(|e| Error::Unknown(format!("batch read task failed: {e}")))??;
            pages.push(page);
        }
        pages.sort_by_key(|(n, _)| *n);
        Ok(pages.into_iter().flat_map(|(_, p)| p).collect())
    }

    async fn run_keyed(
        &self,
        object: &ObjectType,
        op: Op,
        inputs: Vec<(String, WriteInput)>,
    ) -> Vec<WriteOutcome> {
        let items = inputs
            .into_iter()
            .enumerate()
            .map(|(index, (key, input))| Item {
                index,
                key: Some(key),
                input,
            })
            .collect();
        self.run_writes(object, op, items).await
    }

    async fn run_writes(&self, object: &ObjectType, op: Op, items: Vec<Item>) -> Vec<WriteOutcome> {
        let mut out: Vec<Option<WriteOutcome>> = vec![None; items.len()];
        for (index, outcome) in self.write_items(object, op, items).await {
            out[index] = Some(outcome);
        }
        finish(out)
    }

    /// Writes items of any number: empty keys fail at once, duplicates go in later rounds,
    /// each round in concurrent chunks of 100.
    async fn write_items(&self, object: &ObjectType, op: Op, items: Vec<Item>) -> Outcomes {
        let mut done = Vec::with_capacity(items.len());
        let mut valid = Vec::with_capacity(items.len());
        for item in items {
            if op != Op::Create && item.key.as_deref().is_none_or(|k| k.trim().is_empty()) {
                let what = match &op {
                    Op::Upsert { id_property } => format!("the unique property {id_property}"),
                    _ => "the record id".to_string(),
                };
                done.push((
                    item.index,
                    WriteOutcome::Failed(RecordError::client(
                        "VALIDATION_ERROR",
                        format!("no value for {what}; the record was not sent"),
                    )),
                ));
            } else {
                valid.push(item);
            }
        }
        for round in rounds(valid) {
            let mut set = JoinSet::new();
            let mut items = round.into_iter().peekable();
            while items.peek().is_some() {
                let chunk: Vec<Item> = items.by_ref().take(BATCH_SIZE).collect();
                let client = self.clone();
                let object = object.clone();
                let op = op.clone();
                set.spawn(rivulet_http::counted(async move {
                    client.write_chunk(&object, &op, chunk, RESENDS).await
                }));
            }
            while let Some(joined) = set.join_next().await {
                match joined {
                    Ok(outcomes) => done.extend(outcomes),
                    Err(e) => tracing::error!(error = %e, "batch write task failed"),
                }
            }
        }
        done
    }

    /// One HubSpot call for at most 100 items, then bisection or recovery as the answer needs.
    fn write_chunk<'a>(
        &'a self,
        object: &'a ObjectType,
        op: &'a Op,
        items: Vec<Item>,
        resends: u32,
    ) -> BoxFut<'a> {
        Box::pin(async move {
            if items.is_empty() {
                return Vec::new();
            }
            let trace = self.inner.config.multi_status;
            let body = serde_json::json!({
                "inputs": items.iter().map(|it| op.input_json(it, trace)).collect::<Vec<_>>(),
            });
            let mut call = Call::post(self.paths().batch(object, op.endpoint()), body);
            call.batch = true;
            call.write = true;
            call.idempotent = *op != Op::Create;
            match self.send(&call).await {
                Ok(answer) => {
                    let parsed: BatchAnswer = match decode(&call.path, &answer.body) {
                        Ok(p) => p,
                        Err(e) => return self.unsure(object, op, items, &e, resends).await,
                    };
                    let (mut mapped, unmapped) = map_answer(op, &items, parsed);
                    let missing: Vec<usize> =
                        (0..items.len()).filter(|p| mapped[*p].is_none()).collect();
                    if missing.len() == 1 && unmapped.len() == 1 {
                        mapped[missing[0]] = Some(WriteOutcome::Failed(unmapped[0].clone()));
                    }
                    let mut done: Outcomes = Vec::with_capacity(items.len());
                    let mut again = Vec::new();
                    for (pos, item) in items.into_iter().enumerate() {
                        match mapped[pos].take() {
                            Some(o) => done.push((item.index, o)),
                            None => again.push(item),
                        }
                    }
                    if !again.is_empty() {
                        done.extend(
                            self.unanswered(object, op, again, answer.status, unmapped.first())
                                .await,
                        );
                    }
                    done
                }
                Err(Error::Api(api)) if api.refuses_the_input() => {
                    if items.len() == 1 {
                        let item = items.into_iter().next().expect("one item");
                        return vec![(item.index, WriteOutcome::Failed((*api).into()))];
                    }
                    tracing::debug!(
                        size = items.len(),
                        status = api.status,
                        "batch refused whole; bisecting"
                    );
                    let mut left = items;
                    let right = left.split_off(left.len() / 2);
                    let (a, b) = tokio::join!(
                        self.write_chunk(object, op, left, resends),
                        self.write_chunk(object, op, right, resends)
                    );
                    a.into_iter().chain(b).collect()
                }
                Err(e) if *op == Op::Create && is_ambiguous(&e) => {
                    self.unsure(object, op, items, &e, resends).await
                }
                Err(e) => {
                    let err = RecordError::from(&e);
                    items
                        .into_iter()
                        .map(|it| (it.index, WriteOutcome::Failed(err.clone())))
                        .collect()
                }
            }
        })
    }

    /// Inputs that a batch answer (200/201/207) gave neither a result nor an error: neither a
    /// success nor a failure yet. HubSpot (2026) answers a batch update of a record that was
    /// merged away like this, and a single PATCH of the old id then updates the surviving
    /// record: so an update is resolved by one single PATCH per input (its answer's id is the
    /// record actually updated; its error, if any, is the outcome). A create or upsert is
    /// reported `Unknown`, never taken for a success.
    async fn unanswered(
        &self,
        object: &ObjectType,
        op: &Op,
        items: Vec<Item>,
        status: u16,
        unattributed: Option<&RecordError>,
    ) -> Outcomes {
        let said = unattributed
            .map(|e| format!("; an error naming no input said: {e}"))
            .unwrap_or_default();
        let Op::Update { id_property } = op else {
            return items
                .into_iter()
                .map(|it| {
                    let reason = format!(
                        "HubSpot answered {status} to batch/{} with neither a result nor an error for this input (objectWriteTraceId {}){said}; whether it was written is unknown until it is looked up",
                        op.endpoint(),
                        it.trace_id(),
                    );
                    (it.index, WriteOutcome::Unknown { reason })
                })
                .collect();
        };
        tracing::debug!(
            count = items.len(),
            status,
            "batch update left inputs unanswered (merged records?); sending them one by one"
        );
        let mut set = JoinSet::new();
        for it in items {
            let client = self.clone();
            let object = object.clone();
            let id_property = id_property.clone();
            set.spawn(rivulet_http::counted(async move {
                let key = it.key.clone().unwrap_or_default();
                let outcome = match client
                    .update(&object, &key, id_property.as_deref(), &it.input)
                    .await
                {
                    Ok(o) => WriteOutcome::Updated { id: o.id },
                    Err(e) => WriteOutcome::Failed(RecordError::from(&e)),
                };
                (it.index, outcome)
            }));
        }
        let mut done = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(o) => done.push(o),
                Err(e) => tracing::error!(error = %e, "single update task failed"),
            }
        }
        done
    }

    /// Items whose fate is unknown: idempotent writes are sent again; creates are first looked
    /// up by the object's unique property, and only those not found are sent again.
    async fn unsure(
        &self,
        object: &ObjectType,
        op: &Op,
        items: Vec<Item>,
        cause: &Error,
        resends: u32,
    ) -> Outcomes {
        if *op != Op::Create {
            if resends > 0 {
                return self.write_chunk(object, op, items, resends - 1).await;
            }
            let err = RecordError::from(cause);
            return items
                .into_iter()
                .map(|it| (it.index, WriteOutcome::Failed(err.clone())))
                .collect();
        }
        let unknown = |it: &Item, why: String| {
            (
                it.index,
                WriteOutcome::Unknown {
                    reason: format!("create may or may not have happened ({cause}); {why}"),
                },
            )
        };
        let Some(prop) = object.unique_property() else {
            return items
                .iter()
                .map(|it| {
                    unknown(
                        it,
                        format!("{object} records have no unique property to check"),
                    )
                })
                .collect();
        };
        let mut done = Vec::new();
        let mut checkable = Vec::new();
        for it in items {
            match it
                .input
                .properties
                .get(prop)
                .filter(|v| !v.trim().is_empty())
            {
                Some(v) => checkable.push((norm(v), it)),
                None => done.push(unknown(&it, format!("the input has no {prop} to check"))),
            }
        }
        if checkable.is_empty() {
            return done;
        }
        let values: Vec<String> = checkable.iter().map(|(v, _)| v.clone()).collect();
        let found =
            match self
                .batch_read(object, &values, Some(prop), &[prop.to_string()])
                .await
            {
                Ok(found) => found,
                Err(e) => {
                    done.extend(checkable.iter().map(|(_, it)| {
                        unknown(it, format!("looking it up by {prop} failed: {e}"))
                    }));
                    return done;
                }
            };
        let ids: HashMap<String, String> = found
            .into_iter()
            .filter_map(|o| o.property(prop).map(norm).map(|v| (v, o.id)))
            .collect();
        let mut resend = Vec::new();
        for (value, it) in checkable {
            match ids.get(&value) {
                Some(id) => done.push((it.index, WriteOutcome::Created { id: id.clone() })),
                None if resends > 0 => resend.push(it),
                None => done.push((it.index, WriteOutcome::Failed(RecordError::from(cause)))),
            }
        }
        if !resend.is_empty() {
            tracing::debug!(
                count = resend.len(),
                "creates not found after a lost answer; sending again"
            );
            done.extend(self.write_chunk(object, op, resend, resends - 1).await);
        }
        done
    }
}

fn finish(out: Vec<Option<WriteOutcome>>) -> Vec<WriteOutcome> {
    out.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| WriteOutcome::Unknown {
                reason: "internal: no outcome recorded".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize, keyed: bool) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                index: i + 10,
                key: keyed.then(|| format!("u{i}@x.io")),
                input: WriteInput::new([("email", format!("u{i}@x.io"))]),
            })
            .collect()
    }

    #[test]
    fn maps_207_by_trace_id() {
        let answer: BatchAnswer = serde_json::from_str(
            r#"{"status":"COMPLETE","numErrors":1,
                "results":[{"id":"501","properties":{},"objectWriteTraceId":"12"},{"id":"500","properties":{},"objectWriteTraceId":"10"}],
                "errors":[{"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid","correlationId":"c1",
                           "context":{"objectWriteTraceId":["11"]}}]}"#,
        )
        .unwrap();
        let its = items(3, false);
        let (out, unmapped) = map_answer(&Op::Create, &its, answer);
        assert!(unmapped.is_empty());
        assert_eq!(out[0], Some(WriteOutcome::Created { id: "500".into() }));
        assert_eq!(out[2], Some(WriteOutcome::Created { id: "501".into() }));
        match &out[1] {
            Some(WriteOutcome::Failed(e)) => {
                assert_eq!(e.category, "VALIDATION_ERROR");
                assert_eq!(e.status, Some(400));
                assert_eq!(e.correlation_id.as_deref(), Some("c1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn maps_upsert_new_flag_and_error_ids() {
        let answer: BatchAnswer = serde_json::from_str(
            r#"{"results":[{"id":"1","new":true,"properties":{"email":"U0@x.io"}},{"id":"2","new":false,"properties":{"email":"u1@x.io"}}],
                "errors":[{"category":"VALIDATION_ERROR","message":"bad","context":{"ids":["u2@x.io"]}}]}"#,
        )
        .unwrap();
        let its = items(3, true);
        let op = Op::Upsert {
            id_property: "email".into(),
        };
        let (out, _) = map_answer(&op, &its, answer);
        assert_eq!(out[0], Some(WriteOutcome::Created { id: "1".into() }));
        assert_eq!(out[1], Some(WriteOutcome::Updated { id: "2".into() }));
        assert!(matches!(out[2], Some(WriteOutcome::Failed(_))));
    }

    #[test]
    fn results_with_a_trace_id_are_placed_by_it_alone() {
        // an update of a merged-away id answers with the survivor's id, which may be another
        // input's key: the trace id decides, and an input without a result stays open
        let answer: BatchAnswer = serde_json::from_str(
            r#"{"status":"COMPLETE","results":[
                {"id":"u1@x.io","properties":{},"objectWriteTraceId":"11"},
                {"id":"u0@x.io","properties":{},"objectWriteTraceId":"99"}]}"#,
        )
        .unwrap();
        let its = items(2, true);
        let (out, unmapped) = map_answer(&Op::Update { id_property: None }, &its, answer);
        assert!(unmapped.is_empty());
        assert_eq!(out[0], None, "not matched by id through a foreign trace id");
        assert_eq!(
            out[1],
            Some(WriteOutcome::Updated {
                id: "u1@x.io".into()
            })
        );
    }

    #[test]
    fn request_shapes() {
        let it = &items(1, true)[0];
        let up = Op::Upsert {
            id_property: "email".into(),
        }
        .input_json(it, true);
        assert_eq!(up["idProperty"], "email");
        assert_eq!(up["id"], "u0@x.io");
        assert_eq!(up["objectWriteTraceId"], "10");
        let create = Op::Create.input_json(it, true);
        assert!(create.get("id").is_none());
        assert_eq!(create["associations"], serde_json::json!([]));
        let upd = Op::Update { id_property: None }.input_json(it, false);
        assert!(upd.get("objectWriteTraceId").is_none());
        assert!(upd.get("idProperty").is_none());
    }

    #[test]
    fn duplicates_go_to_later_rounds() {
        let mut its = items(3, true);
        its[2].key = Some("U0@X.io".into());
        let r = rounds(its);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
        assert_eq!(r[1][0].index, 12);
    }
}
