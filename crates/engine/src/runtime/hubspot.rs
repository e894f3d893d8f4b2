//! HubSpot as an action (create, update, upsert) and as a scheduled source.

use super::record::{ActionOutcome, Item, Prepared, Record};
use crate::model::{HubSpotAction, HubSpotSource, Operation};
use indexmap::IndexMap;
use rivulet_hubspot::{Client, ListRequest, Object, ObjectType, WriteInput, WriteOutcome};
use rivulet_mapping::{Context, FieldSpec, Mapping, OutputMode};
use serde_json::Value;

/// The JSON a template sees as `record` for a HubSpot record: HubSpot's own shape.
pub fn object_json(object: &Object) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Writes mapped records to HubSpot with one outcome per record.
pub struct HubSpotWriter {
    client: Client,
    object: ObjectType,
    operation: Operation,
    id: Option<Mapping>,
    match_on: Option<String>,
    create_if_missing: bool,
    batch_size: usize,
}

/// What a write needs per record besides its properties.
enum Target {
    Create,
    Update(String),
    Upsert(String),
    UpsertById(Option<String>),
}

impl HubSpotWriter {
    /// A writer for one `hubspot` action (validated beforehand, so templates compile).
    pub fn new(client: Client, action: &HubSpotAction) -> Result<HubSpotWriter, String> {
        let object: ObjectType = action
            .object
            .parse()
            .map_err(|e: rivulet_hubspot::Error| e.to_string())?;
        let id = match &action.id {
            Some(t) => {
                let mut fields = IndexMap::new();
                fields.insert("id".to_string(), FieldSpec::template(t.clone()));
                Some(Mapping::compile(&fields).map_err(|e| {
                    e.iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                })?)
            }
            None => None,
        };
        Ok(HubSpotWriter {
            client,
            object,
            operation: action.operation,
            id,
            match_on: action.match_on.clone(),
            create_if_missing: action.create_if_missing,
            batch_size: action.batch_size.clamp(1, 100) as usize,
        })
    }

    /// Whether a write may create records (and so goes through the create ledger).
    pub fn creates(&self) -> bool {
        match self.operation {
            Operation::Create => true,
            Operation::Update => false,
            // By a unique property HubSpot decides atomically; by id, an empty id creates.
            Operation::Upsert => self.match_on.is_none(),
        }
    }

    /// After a crash interrupted a create, whether HubSpot has the record: looked up by the
    /// object's unique property (a contact's email) when the mapping provides it. `Ok(None)`
    /// means it surely does not exist; `Err` means nobody can tell.
    pub async fn find_created(&self, p: &Prepared<'_>) -> Result<Option<String>, String> {
        let Some(prop) = self.object.unique_property() else {
            return Err("this object type has no unique property to look the record up by".into());
        };
        let Some(value) = p
            .fields
            .get(prop)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Err(format!("the record has no `{prop}` to look it up by"));
        };
        match self.client.get(&self.object, value, Some(prop), &[]).await {
            Ok(found) => Ok(found.map(|o| o.id)),
            Err(e) => Err(e.to_string()),
        }
    }

    fn target(&self, p: &Prepared<'_>, ctx: &Context) -> Result<Target, String> {
        let rendered_id = match &self.id {
            Some(m) => {
                let out = m
                    .apply(&p.record.data, ctx, OutputMode::Wire)
                    .map_err(|errs| {
                        errs.iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })?;
                out.get("id")
                    .and_then(Value::as_str)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            }
            None => None,
        };
        Ok(match self.operation {
            Operation::Create => Target::Create,
            Operation::Update => Target::Update(
                rendered_id
                    .ok_or("the `id` template rendered empty: there is no record to update")?,
            ),
            Operation::Upsert => {
                match &self.match_on {
                    Some(prop) => {
                        let value = p
                            .fields
                            .get(prop)
                            .and_then(Value::as_str)
                            .map(str::trim)
                            .filter(|s| !s.is_empty());
                        Target::Upsert(value.ok_or_else(|| format!("`{prop}` is empty, so there is nothing to match the record by"))?.to_string())
                    }
                    None => Target::UpsertById(rendered_id),
                }
            }
        })
    }

    /// Writes `batch`; `known_ids[i]` is the id a previous, interrupted run already created for
    /// record `i` (from the ledger), which turns a create into an update of that record.
    pub async fn write(
        &self,
        batch: &[Prepared<'_>],
        known_ids: &[Option<String>],
        ctx: &Context,
    ) -> Vec<ActionOutcome> {
        let mut outcomes: Vec<Option<ActionOutcome>> = vec![None; batch.len()];
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        let mut upserts = Vec::new();
        let mut by_id = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let input = WriteInput {
                properties: p
                    .fields
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect(),
                associations: Vec::new(),
            };
            match (self.target(p, ctx), known_ids.get(i).cloned().flatten()) {
                (Err(message), _) => outcomes[i] = Some(ActionOutcome::failed(message)),
                (Ok(Target::Create | Target::UpsertById(None)), Some(id)) => {
                    updates.push((i, id, input))
                }
                (Ok(Target::Create), None) => creates.push((i, input)),
                (Ok(Target::Update(id)), _) => updates.push((i, id, input)),
                (Ok(Target::Upsert(value)), _) => upserts.push((i, value, input)),
                (Ok(Target::UpsertById(id)), _) => by_id.push((i, id, input)),
            }
        }
        for chunk in creates.chunks(self.batch_size) {
            let results = self
                .client
                .batch_create(
                    &self.object,
                    chunk.iter().map(|(_, inp)| inp.clone()).collect(),
                )
                .await;
            for ((i, _), r) in chunk.iter().zip(results) {
                outcomes[*i] = Some(convert(r));
            }
        }
        for chunk in updates.chunks(self.batch_size) {
            let results = self
                .client
                .batch_update(
                    &self.object,
                    None,
                    chunk
                        .iter()
                        .map(|(_, id, inp)| (id.clone(), inp.clone()))
                        .collect(),
                )
                .await;
            for ((i, _, _), r) in chunk.iter().zip(results) {
                outcomes[*i] = Some(convert(r));
            }
        }
        if let Some(prop) = &self.match_on {
            for chunk in upserts.chunks(self.batch_size) {
                let results = self
                    .client
                    .batch_upsert(
                        &self.object,
                        prop,
                        chunk
                            .iter()
                            .map(|(_, v, inp)| (v.clone(), inp.clone()))
                            .collect(),
                    )
                    .await;
                for ((i, _, _), r) in chunk.iter().zip(results) {
                    outcomes[*i] = Some(convert(r));
                }
            }
        }
        for chunk in by_id.chunks(self.batch_size) {
            let results = self
                .client
                .upsert_by_id(
                    &self.object,
                    chunk
                        .iter()
                        .map(|(_, id, inp)| (id.clone(), inp.clone()))
                        .collect(),
                    self.create_if_missing,
                )
                .await;
            for ((i, _, _), r) in chunk.iter().zip(results) {
                outcomes[*i] = Some(convert(r));
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| ActionOutcome::failed("internal: no outcome for the record"))
            })
            .collect()
    }
}

fn convert(outcome: WriteOutcome) -> ActionOutcome {
    match outcome {
        WriteOutcome::Created { id } | WriteOutcome::Updated { id } => {
            ActionOutcome::Done { id: Some(id) }
        }
        WriteOutcome::Failed(e) => ActionOutcome::failed(e.to_string()),
        WriteOutcome::Unknown { reason } => ActionOutcome::Unknown { reason },
    }
}

/// Reads HubSpot records for a scheduled flow: every record each run, or those changed since the
/// previous run (`incremental`), by listing or searching.
pub struct HubSpotReader {
    client: Client,
    object: ObjectType,
    properties: Vec<String>,
    /// For incremental reads: last-modified ms already covered.
    since: Option<i64>,
    upper: i64,
    after: Option<String>,
    done: bool,
    max_seen: i64,
    incremental: bool,
    scan: Option<super::trigger::Scan>,
}

impl HubSpotReader {
    /// A reader starting from `checkpoint` (the previous run's last-modified high-water mark).
    pub fn new(
        client: Client,
        source: &HubSpotSource,
        checkpoint: Option<&Value>,
    ) -> Result<HubSpotReader, String> {
        let object: ObjectType = source
            .object
            .parse()
            .map_err(|e: rivulet_hubspot::Error| e.to_string())?;
        let since = checkpoint
            .and_then(|c| c.get("since"))
            .and_then(Value::as_i64);
        Ok(HubSpotReader {
            client,
            object,
            properties: source.properties.clone(),
            since,
            upper: chrono::Utc::now().timestamp_millis() - 5_000,
            after: None,
            done: false,
            max_seen: since.unwrap_or(0),
            incremental: source.incremental,
            scan: None,
        })
    }

    /// The next page of records, and the checkpoint to store once it is recorded.
    pub async fn next_page(
        &mut self,
    ) -> Result<Option<(Vec<Item>, Value)>, rivulet_hubspot::Error> {
        if self.done {
            return Ok(None);
        }
        let modified = self.object.last_modified_property();
        let objects = if self.incremental {
            // Incremental reads go through the trigger's scan: windows, the 10k cap and ties.
            let lower = self.since.map_or(0, |s| s - 60_000).max(0);
            let (client, object, properties, upper) =
                (&self.client, &self.object, &self.properties, self.upper);
            let scan = self.scan.get_or_insert_with(|| {
                super::trigger::Scan::new(
                    client.clone(),
                    object.clone(),
                    modified,
                    properties.clone(),
                    lower,
                    upper,
                )
            });
            match scan.next_page().await? {
                Some(page) => page,
                None => {
                    self.done = true;
                    return Ok(None);
                }
            }
        } else {
            let mut properties = self.properties.clone();
            if !properties.iter().any(|p| p == modified) {
                properties.push(modified.to_string());
            }
            let page = self
                .client
                .list(
                    &self.object,
                    &ListRequest {
                        limit: Some(100),
                        after: self.after.clone(),
                        properties,
                        ..ListRequest::default()
                    },
                )
                .await?;
            self.after = page.after.clone();
            self.done = page.after.is_none();
            page.results
        };
        let items: Vec<Item> = objects
            .iter()
            .map(|o| {
                let version = super::trigger::record_timestamp(o, modified).unwrap_or(0);
                self.max_seen = self.max_seen.max(version);
                Item::Record(Record {
                    key: o.id.clone(),
                    version: version.to_string(),
                    data: object_json(o),
                    origin: format!("{} {}", self.object, o.id),
                })
            })
            .collect();
        // Pages come in ascending modification order, so the newest seen is a safe high-water
        // mark; the next run looks a minute behind it and dedupe drops what it sees again.
        let checkpoint = serde_json::json!({ "since": self.max_seen });
        Ok(Some((items, checkpoint)))
    }
}
