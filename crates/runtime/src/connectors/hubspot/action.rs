//! HubSpot as an action: create, update or upsert records in batches, one outcome per record.
//! A mapped field named like the connection's category property of the object is given as an
//! option's label or internal value and sent as the internal value; one that names no option
//! fails its record (permanently, kept for replay) with the allowed values. HubSpot refusing a
//! record for a portal rule (400 `VALIDATION_ERROR`: a conditionally required property, a
//! required form field, an association permission) fails that record alone, with HubSpot's
//! message and the properties it names; nothing is retried.
//!
//! Records may be associated with what earlier actions made of the same source record
//! (`associate_with`: a deal with its contact, one batch call per 100 after the write), and an
//! action may send only some mapped fields (`properties`). Line items of a deal are made by
//! the `deals` module: their products resolved before the page is written, then created in batches
//! on their deals.

use super::category::{Categories, Category};
use super::deals::Items;
use crate::connector::{
    Action, ChangeTarget, FieldChange, Link, Planned, Preparation, RetrySafety,
};
use crate::record::{ActionOutcome, Prepared};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long HubSpot's search may take to show a record just created; a create in doubt is
/// looked up by search only once this long has passed since it was announced.
const SEARCH_LAG: Duration = Duration::from_secs(10);
use rivulet_hubspot::{
    AssociationInput, AssociationOutcome, Client, ObjectType, WriteInput, WriteOutcome,
};
use rivulet_mapping::{Context, FieldSpec, Mapping, OutputMode};
use rivulet_spec::model::{HubSpotAction, Operation};
use serde_json::Value;

/// Writes mapped records to HubSpot with one outcome per record.
pub struct HubSpotWriter {
    client: Client,
    object: ObjectType,
    operation: Operation,
    id: Option<Mapping>,
    match_on: Option<String>,
    create_if_missing: bool,
    batch_size: usize,
    /// The connection's category properties, read once per run and shared by its flows.
    categories: Option<Arc<Categories>>,
    /// The mapped fields it sends (`properties`; `None`: every one).
    only: Option<Vec<String>>,
    /// Line items of a deal (`object: line_item` created on the deal of `associate_with`).
    items: Option<Items>,
}

/// What a write needs per record besides its properties.
enum Target {
    Create,
    Update(String),
    Upsert(String),
    UpsertById(Option<String>),
}

impl HubSpotWriter {
    /// A writer for one `hubspot` action (validated beforehand, so templates compile);
    /// `categories`: the connection's category properties, if it names any;
    /// `transfer_products_first`: the connection's switch (line items' missing products are
    /// created before the deals; otherwise a line item without a product fails its record).
    pub fn new(
        client: Client,
        action: &HubSpotAction,
        categories: Option<Arc<Categories>>,
        transfer_products_first: bool,
    ) -> Result<HubSpotWriter, String> {
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
            categories: categories.filter(|c| !c.is_empty()),
            items: Items::new(action, transfer_products_first)?,
            only: action.properties.clone(),
        })
    }

    /// Associates each record written (`outcomes[i]` done) with what `links[i]` names: one batch
    /// call per 100 per object type. A record whose association fails fails (transiently when
    /// HubSpot is down): it was written, and writing and associating again is safe.
    async fn associate(&self, links: &[Vec<Link>], outcomes: &mut [ActionOutcome]) {
        let mut by_object: IndexMap<String, Vec<(usize, String, String, String)>> = IndexMap::new();
        for (i, (outcome, links)) in outcomes.iter().zip(links).enumerate() {
            let ActionOutcome::Done { id: Some(id) } = outcome else {
                continue;
            };
            for link in links {
                let Some(object) = &link.object else { continue };
                for to in &link.ids {
                    by_object.entry(object.clone()).or_default().push((
                        i,
                        id.clone(),
                        to.clone(),
                        link.action.clone(),
                    ));
                }
            }
        }
        for (object, pairs) in by_object {
            let to: ObjectType = match object.parse() {
                Ok(t) => t,
                Err(e) => {
                    for (i, ..) in &pairs {
                        outcomes[*i] = ActionOutcome::failed(format!("cannot associate: {e}"));
                    }
                    continue;
                }
            };
            let inputs = pairs
                .iter()
                .map(|(_, from, to, _)| AssociationInput::default_type(from.clone(), to.clone()))
                .collect();
            let answers = self.client.associate(&self.object, &to, inputs).await;
            for ((i, id, _, action), answer) in pairs.iter().zip(answers) {
                let AssociationOutcome::Failed(e) = answer else {
                    continue;
                };
                if !outcomes[*i].is_done() {
                    continue;
                }
                outcomes[*i] = if e.is_transient() {
                    ActionOutcome::transient(format!("HubSpot: associating with {action}: {e}"))
                } else {
                    ActionOutcome::failed(format!(
                        "{} {id} was written, but associating it with the record of {action} failed: {e}",
                        self.object
                    ))
                };
            }
        }
    }

    /// The category property of this writer's object, when the connection names one and it is
    /// mapped: its definition, read once per run.
    async fn category(&self, batch: &[Prepared<'_>]) -> Result<Option<Category>, String> {
        let Some(categories) = &self.categories else {
            return Ok(None);
        };
        let Some(property) = categories.property_of(&self.object) else {
            return Ok(None);
        };
        if !batch.iter().any(|p| p.fields.contains_key(property)) {
            return Ok(None);
        }
        categories
            .of(&self.client, &self.object)
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether a write may create records (and so goes through the create ledger).
    fn creates(&self) -> bool {
        match self.operation {
            Operation::Create => true,
            Operation::Update => false,
            // By a unique property HubSpot decides atomically; by id, an empty id creates.
            Operation::Upsert => self.match_on.is_none(),
        }
    }

    /// After an interruption left creates in doubt, whether HubSpot has the records, looked up
    /// by their natural key, a page at a time: a unique property (`match_on`, a contact's
    /// email) by batch read, which is exact at once; a company's `domain` by search among the
    /// companies created since the create was announced — once search's index has caught up,
    /// since it shows new records only after a few seconds.
    async fn lookup_created(
        &self,
        records: &[Prepared<'_>],
        announced: &[Option<DateTime<Utc>>],
    ) -> Vec<Result<Option<String>, String>> {
        let (property, unique) = match (&self.match_on, self.object.unique_property()) {
            (Some(p), _) => (p.as_str(), true),
            (None, Some(p)) => (p, true),
            (None, None) if self.object == ObjectType::Companies => ("domain", false),
            (None, None) if self.object == ObjectType::deals() => ("dealname", false),
            (None, None) if self.object == ObjectType::products() => ("hs_sku", false),
            (None, None) => {
                let why = format!(
                    "{} records have no natural key to look them up by; set `match_on` to a unique property",
                    self.object
                );
                return records.iter().map(|_| Err(why.clone())).collect();
            }
        };
        let values: Vec<Option<String>> = records
            .iter()
            .map(|p| {
                p.fields
                    .get(property)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect();
        let asked: Vec<String> = values.iter().flatten().cloned().collect();
        let found: Result<HashMap<String, Vec<String>>, String> = if unique {
            self.client
                .find_by_unique(&self.object, property, &asked)
                .await
                .map(|m| m.into_iter().map(|(k, v)| (k, vec![v])).collect())
                .map_err(|e| e.to_string())
        } else {
            let since = announced.iter().flatten().min().copied();
            if let Some(since) = since {
                let ready = since + chrono::Duration::from_std(SEARCH_LAG).unwrap_or_default();
                let wait = (ready - self.client.config().clock.now())
                    .to_std()
                    .unwrap_or_default();
                if !wait.is_zero() {
                    tracing::info!(
                        wait_s = wait.as_secs_f64(),
                        "waiting for HubSpot's search index before looking up interrupted creates"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
            // A minute of slack for clocks that disagree.
            let created_since = since.map(|t| t.timestamp_millis().saturating_sub(60_000));
            self.client
                .find_by_property(&self.object, property, &asked, created_since)
                .await
                .map_err(|e| e.to_string())
        };
        values
            .into_iter()
            .map(|value| {
                let value = value
                    .ok_or_else(|| format!("the record has no `{property}` to look it up by"))?;
                match found.as_ref().map_err(Clone::clone)?.get(&value).map(Vec::as_slice) {
                    None | Some([]) => Ok(None),
                    Some([id]) => Ok(Some(id.clone())),
                    Some(ids) => Err(format!(
                        "{} {} records with {property} `{value}` were created since: check them before replaying",
                        ids.len(),
                        self.object
                    )),
                }
            })
            .collect()
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
    pub async fn write_batch(
        &self,
        batch: &[Prepared<'_>],
        known_ids: &[Option<String>],
        ctx: &Context,
    ) -> Vec<ActionOutcome> {
        let mut outcomes: Vec<Option<ActionOutcome>> = vec![None; batch.len()];
        // Without the category's options nothing of the page can be checked: it waits, whole,
        // until HubSpot answers (start-up has already checked that the property exists).
        let category = match self.category(batch).await {
            Ok(c) => c,
            Err(why) => {
                return batch
                    .iter()
                    .map(|_| ActionOutcome::transient(format!("HubSpot: {why}")))
                    .collect();
            }
        };
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        let mut upserts = Vec::new();
        let mut by_id = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let input = match properties(p, category.as_ref(), self.only.as_deref()) {
                Ok(properties) => WriteInput {
                    properties,
                    associations: Vec::new(),
                },
                Err(message) => {
                    outcomes[i] = Some(ActionOutcome::failed(message));
                    continue;
                }
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
        // The page's batch calls go out together: the client keeps to `concurrent_batches` in
        // flight and to the throttle, so a page of several batches fills the window instead of
        // waiting for each answer in turn. When one finds HubSpot down or refusing for load,
        // the page comes again as a whole (what others wrote is idempotent or in the ledger).
        let jobs: Vec<Job<'_>> = creates
            .chunks(self.batch_size)
            .map(Job::Create)
            .chain(updates.chunks(self.batch_size).map(Job::Update))
            .chain(upserts.chunks(self.batch_size).map(Job::Upsert))
            .chain(by_id.chunks(self.batch_size).map(Job::ById))
            .collect();
        let answers =
            futures_util::future::join_all(jobs.iter().map(|job| self.run_job(job))).await;
        for (indexes, results) in answers {
            for (n, i) in indexes.into_iter().enumerate() {
                let outcome = match results.get(n) {
                    Some(r) => convert(r.clone()),
                    None => ActionOutcome::failed("internal: no outcome for the record"),
                };
                outcomes[i] = Some(outcome);
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

/// A record's mapped fields (those of `only`, when given) as HubSpot property values (strings),
/// its category value turned into the option's internal value; `Err` names the allowed values
/// when it matches none.
fn properties(
    p: &Prepared<'_>,
    category: Option<&Category>,
    only: Option<&[String]>,
) -> Result<IndexMap<String, String>, String> {
    p.fields
        .iter()
        .filter(|(k, _)| only.is_none_or(|only| only.contains(k)))
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            match category {
                Some(c) if c.definition.name == *k && !v.is_null() => c
                    .definition
                    .to_internal(&text)
                    .map(|internal| (k.clone(), internal))
                    .map_err(|e| format!("{e} (labels are accepted too)")),
                _ => Ok((k.clone(), text)),
            }
        })
        .collect()
}

/// One batch call of a page, with the page positions of its records.
enum Job<'a> {
    Create(&'a [(usize, WriteInput)]),
    Update(&'a [(usize, String, WriteInput)]),
    Upsert(&'a [(usize, String, WriteInput)]),
    ById(&'a [(usize, Option<String>, WriteInput)]),
}

impl Job<'_> {
    fn indexes(&self) -> Vec<usize> {
        match self {
            Job::Create(c) => c.iter().map(|(i, _)| *i).collect(),
            Job::Update(c) | Job::Upsert(c) => c.iter().map(|(i, _, _)| *i).collect(),
            Job::ById(c) => c.iter().map(|(i, _, _)| *i).collect(),
        }
    }
}

impl HubSpotWriter {
    async fn run_job(&self, job: &Job<'_>) -> (Vec<usize>, Vec<WriteOutcome>) {
        let results = match job {
            Job::Create(c) => {
                self.client
                    .batch_create(&self.object, c.iter().map(|(_, inp)| inp.clone()).collect())
                    .await
            }
            Job::Update(c) => {
                self.client
                    .batch_update(
                        &self.object,
                        None,
                        c.iter()
                            .map(|(_, id, inp)| (id.clone(), inp.clone()))
                            .collect(),
                    )
                    .await
            }
            Job::Upsert(c) => {
                let prop = self.match_on.as_deref().unwrap_or("hs_object_id");
                self.client
                    .batch_upsert(
                        &self.object,
                        prop,
                        c.iter()
                            .map(|(_, v, inp)| (v.clone(), inp.clone()))
                            .collect(),
                    )
                    .await
            }
            Job::ById(c) => {
                self.client
                    .upsert_by_id(
                        &self.object,
                        c.iter()
                            .map(|(_, id, inp)| (id.clone(), inp.clone()))
                            .collect(),
                        self.create_if_missing,
                    )
                    .await
            }
        };
        (job.indexes(), results)
    }
}

#[async_trait]
impl Action for HubSpotWriter {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    fn destination(&self) -> String {
        format!("HubSpot ({} {})", self.operation.as_str(), self.object)
    }

    fn output_mode(&self) -> OutputMode {
        OutputMode::Wire
    }

    /// Reads the targets (one batch read per 100 by id, per 100 by the property matched on)
    /// and compares: a create where none exists, the fields that would change, or unchanged.
    async fn plan(&self, batch: &[Prepared<'_>], ctx: &Context) -> Vec<Planned> {
        if self.items.is_some() {
            return vec![
                Planned::Write {
                    what: format!("line items on {}", self.destination())
                };
                batch.len()
            ];
        }
        let category = match self.category(batch).await {
            Ok(c) => c,
            Err(reason) => return vec![Planned::WouldFail { reason }; batch.len()],
        };
        let only = self.only.as_deref();
        // Each record: its properties as sent, and where they go.
        let mut wanted: Vec<Result<(IndexMap<String, String>, Target), String>> = batch
            .iter()
            .map(|p| {
                let props = properties(p, category.as_ref(), only)?;
                Ok((props, self.target(p, ctx)?))
            })
            .collect();
        let names: Vec<String> = {
            let mut n: Vec<String> = wanted
                .iter()
                .flatten()
                .flat_map(|(props, _)| props.keys().cloned())
                .collect();
            n.sort();
            n.dedup();
            n
        };
        let mut by_id = Vec::new();
        let mut by_key = Vec::new();
        for w in wanted.iter().flatten() {
            match &w.1 {
                Target::Update(id) | Target::UpsertById(Some(id)) => by_id.push(id.clone()),
                Target::Upsert(value) => by_key.push(value.clone()),
                Target::Create | Target::UpsertById(None) => {}
            }
        }
        let mut found_by_id: HashMap<String, rivulet_hubspot::Object> = HashMap::new();
        let mut found_by_key: HashMap<String, rivulet_hubspot::Object> = HashMap::new();
        if !by_id.is_empty() {
            match self
                .client
                .batch_read(&self.object, &by_id, None, &names)
                .await
            {
                Ok(objects) => found_by_id.extend(objects.into_iter().map(|o| (o.id.clone(), o))),
                Err(e) => {
                    let reason = format!("reading the records to update: {e}");
                    return vec![Planned::WouldFail { reason }; batch.len()];
                }
            }
        }
        if let (false, Some(prop)) = (by_key.is_empty(), self.match_on.as_deref()) {
            let mut read = names.clone();
            if !read.iter().any(|n| n == prop) {
                read.push(prop.to_string());
            }
            match self
                .client
                .batch_read(&self.object, &by_key, Some(prop), &read)
                .await
            {
                Ok(objects) => {
                    for o in objects {
                        if let Some(Some(value)) = o.properties.get(prop) {
                            found_by_key.insert(value.trim().to_lowercase(), o);
                        }
                    }
                }
                Err(e) => {
                    let reason = format!("reading the records to upsert: {e}");
                    return vec![Planned::WouldFail { reason }; batch.len()];
                }
            }
        }
        let diff = |props: &IndexMap<String, String>, current: &rivulet_hubspot::Object| {
            let fields: Vec<FieldChange> = props
                .iter()
                .filter_map(|(field, new)| {
                    let old = current.properties.get(field).cloned().flatten();
                    let new = Some(new.clone()).filter(|n| !n.is_empty());
                    (old != new).then(|| FieldChange {
                        field: field.clone(),
                        old,
                        new,
                    })
                })
                .collect();
            if fields.is_empty() {
                Planned::Unchanged {
                    id: current.id.clone(),
                }
            } else {
                Planned::Update {
                    id: current.id.clone(),
                    fields,
                }
            }
        };
        wanted
            .drain(..)
            .map(|w| match w {
                Err(reason) => Planned::WouldFail { reason },
                Ok((_, Target::Create)) | Ok((_, Target::UpsertById(None))) => Planned::Create,
                Ok((props, Target::Update(id))) => match found_by_id.get(&id) {
                    Some(current) => diff(&props, current),
                    None => Planned::WouldFail {
                        reason: format!("there is no {} with id {id} to update", self.object),
                    },
                },
                Ok((props, Target::UpsertById(Some(id)))) => match found_by_id.get(&id) {
                    Some(current) => diff(&props, current),
                    None if self.create_if_missing => Planned::Create,
                    None => Planned::WouldFail {
                        reason: format!("there is no {} with id {id}", self.object),
                    },
                },
                Ok((props, Target::Upsert(value))) => {
                    match found_by_key.get(&value.trim().to_lowercase()) {
                        Some(current) => diff(&props, current),
                        None => Planned::Create,
                    }
                }
            })
            .collect()
    }

    /// Updates by id and upserts by a unique property go to a known record, so one whose
    /// properties are as last written there costs no call; HubSpot updates only the properties
    /// sent, so a changed one sends just those (and the property it is matched on).
    fn change_target(&self, p: &Prepared<'_>, ctx: &Context) -> Option<ChangeTarget> {
        if self.items.is_some() || self.creates() {
            return None;
        }
        let (key, keep) = match self.target(p, ctx).ok()? {
            Target::Update(id) => (format!("id:{id}"), Vec::new()),
            Target::Upsert(value) => {
                let prop = self.match_on.clone()?;
                (format!("{prop}:{value}"), vec![prop])
            }
            Target::UpsertById(Some(id)) => (format!("id:{id}"), Vec::new()),
            Target::UpsertById(None) | Target::Create => return None,
        };
        let only = self.only.as_deref();
        let fields = p
            .fields
            .keys()
            .filter(|k| only.is_none_or(|only| only.contains(k)))
            .cloned()
            .collect();
        Some(ChangeTarget { key, fields, keep })
    }

    fn retry_safety(&self) -> RetrySafety {
        if self.items.is_some() {
            // Line items go on their deal: one that may be older is first read for those it
            // has, and only the missing ones are created.
            return RetrySafety::Idempotent;
        }
        if self.creates() {
            RetrySafety::LedgeredCreate
        } else {
            // Updates by id and upserts by a unique property: HubSpot ends up the same however
            // often they are sent.
            RetrySafety::Idempotent
        }
    }

    async fn write(
        &self,
        batch: &[Prepared<'_>],
        known_ids: &[Option<String>],
        ctx: &Context,
    ) -> Vec<ActionOutcome> {
        self.write_batch(batch, known_ids, ctx).await
    }

    async fn find_created(
        &self,
        records: &[Prepared<'_>],
        announced: &[Option<DateTime<Utc>>],
    ) -> Vec<Result<Option<String>, String>> {
        self.lookup_created(records, announced).await
    }

    fn object(&self) -> Option<String> {
        Some(self.object.to_string())
    }

    fn preview(&self, record: &Prepared<'_>, ctx: &Context) -> Value {
        if let Some(items) = &self.items {
            return items.preview(record, ctx);
        }
        let only = self.only.as_deref();
        Value::Object(
            record
                .fields
                .iter()
                .filter(|(k, _)| only.is_none_or(|only| only.contains(k)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    fn creates_new(&self) -> bool {
        self.operation == Operation::Create
    }

    fn preparation(&self) -> Preparation {
        match &self.items {
            Some(items) if items.creates_products() => Preparation::Writes,
            Some(_) => Preparation::Reads,
            None => Preparation::None,
        }
    }

    async fn prepare(
        &self,
        batch: &[Prepared<'_>],
        interrupted: Option<DateTime<Utc>>,
        ctx: &Context,
    ) -> Vec<Result<(), ActionOutcome>> {
        match &self.items {
            Some(items) => items.prepare(&self.client, batch, interrupted, ctx).await,
            None => batch.iter().map(|_| Ok(())).collect(),
        }
    }

    async fn write_linked(
        &self,
        batch: &[Prepared<'_>],
        links: &[Vec<Link>],
        known_ids: &[Option<String>],
        ctx: &Context,
    ) -> Vec<ActionOutcome> {
        if let Some(items) = &self.items {
            return items.write(&self.client, batch, links, ctx).await;
        }
        let mut outcomes = self.write_batch(batch, known_ids, ctx).await;
        if links.iter().any(|l| !l.is_empty())
            && !outcomes
                .iter()
                .any(|o| matches!(o, ActionOutcome::Transient { .. }))
        {
            self.associate(links, &mut outcomes).await;
        }
        outcomes
    }
}

/// A client outcome in the executor's terms. HubSpot being down, overloaded or out of its
/// daily budget (no answer, 5xx, 429 after the client's waits) is transient: not the record's
/// fault, so the page comes again. An answer that was lost is transient too: the retry finds
/// out what happened (a create was announced in the ledger and is looked up; an update or
/// upsert is simply sent again).
fn convert(outcome: WriteOutcome) -> ActionOutcome {
    match outcome {
        WriteOutcome::Created { id } | WriteOutcome::Updated { id } => {
            ActionOutcome::Done { id: Some(id) }
        }
        WriteOutcome::Failed(e) if e.is_transient() => {
            ActionOutcome::transient(format!("HubSpot: {e}"))
        }
        WriteOutcome::Failed(e) => ActionOutcome::failed(e.to_string()),
        WriteOutcome::Unknown { reason } => {
            ActionOutcome::transient(format!("HubSpot's answer was lost: {reason}"))
        }
    }
}
