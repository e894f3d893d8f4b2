//! Associations between records of two types: created in batches of 100 (one outcome per
//! input; creating one that exists changes nothing, so every call is safe to repeat) and read
//! per record or in batches of 1,000 records. On `v3` connections these are HubSpot's v4 association endpoints; on `2026-03`
//! the date-versioned ones (see [`crate::paths`]).
//!
//! A line item goes onto a deal either at its creation (an [`crate::Association`] in its
//! [`crate::WriteInput`], type [`types::LINE_ITEM_TO_DEAL`]) or afterwards:
//!
//! ```no_run
//! # async fn demo(client: rivulet_hubspot::Client) {
//! use rivulet_hubspot::{AssociationInput, ObjectType};
//! let outcomes = client
//!     .associate(
//!         &ObjectType::line_items(),
//!         &ObjectType::deals(),
//!         vec![AssociationInput::default_type("2001", "1001")],
//!     )
//!     .await;
//! assert!(outcomes.iter().all(|o| o.is_done()));
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::Client;
use crate::batch::BATCH_SIZE;
use crate::client::{Call, decode};
use crate::error::{Error, ErrorBody, RecordError};
use crate::objects::{AssociationType, ObjectType};

/// HubSpot-defined association type ids (category `HUBSPOT_DEFINED`). Each direction has its
/// own id.
pub mod types {
    /// Contact → company, primary.
    pub const CONTACT_TO_COMPANY_PRIMARY: u32 = 1;
    /// Contact → company.
    pub const CONTACT_TO_COMPANY: u32 = 279;
    /// Company → contact.
    pub const COMPANY_TO_CONTACT: u32 = 280;
    /// Deal → contact.
    pub const DEAL_TO_CONTACT: u32 = 3;
    /// Contact → deal.
    pub const CONTACT_TO_DEAL: u32 = 4;
    /// Deal → company, primary.
    pub const DEAL_TO_COMPANY_PRIMARY: u32 = 5;
    /// Deal → company.
    pub const DEAL_TO_COMPANY: u32 = 341;
    /// Company → deal.
    pub const COMPANY_TO_DEAL: u32 = 342;
    /// Deal → line item.
    pub const DEAL_TO_LINE_ITEM: u32 = 19;
    /// Line item → deal.
    pub const LINE_ITEM_TO_DEAL: u32 = 20;
}

impl AssociationType {
    /// A HubSpot-defined type by id (see [`types`]).
    pub fn hubspot(type_id: u32) -> Self {
        AssociationType {
            category: "HUBSPOT_DEFINED".into(),
            type_id,
        }
    }
}

/// One association to create, from a record of the first type to one of the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInput {
    /// The record it goes from.
    pub from_id: String,
    /// The record it goes to.
    pub to_id: String,
    /// The types (labels) to give it; empty: HubSpot's default type between the two object
    /// types.
    pub types: Vec<AssociationType>,
}

impl AssociationInput {
    /// The default (unlabelled) association between two records.
    pub fn default_type(from_id: impl Into<String>, to_id: impl Into<String>) -> Self {
        AssociationInput {
            from_id: from_id.into(),
            to_id: to_id.into(),
            types: Vec::new(),
        }
    }

    /// An association of the given types.
    pub fn of_types(
        from_id: impl Into<String>,
        to_id: impl Into<String>,
        types: Vec<AssociationType>,
    ) -> Self {
        AssociationInput {
            from_id: from_id.into(),
            to_id: to_id.into(),
            types,
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({ "from": { "id": self.from_id }, "to": { "id": self.to_id } });
        if !self.types.is_empty() {
            v["types"] = self
                .types
                .iter()
                .map(|t| {
                    json!({ "associationCategory": t.category, "associationTypeId": t.type_id })
                })
                .collect();
        }
        v
    }
}

/// What happened to one association of [`Client::associate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssociationOutcome {
    /// The association exists (made now, or already there).
    Done,
    /// HubSpot refused it, or it could not be sent; sending it again is safe.
    Failed(RecordError),
}

impl AssociationOutcome {
    /// True for [`AssociationOutcome::Done`].
    pub fn is_done(&self) -> bool {
        matches!(self, AssociationOutcome::Done)
    }
}

/// A record associated with another, as a listing answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociatedRecord {
    /// The associated record's id.
    pub to_id: String,
    /// The association's types (with their labels, when labelled).
    pub types: Vec<(AssociationType, Option<String>)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    results: Vec<ListedAssociation>,
    #[serde(default)]
    paging: Option<crate::objects::Paging>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedAssociation {
    to_object_id: Value,
    #[serde(default)]
    association_types: Vec<ListedType>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedType {
    #[serde(default)]
    category: Option<String>,
    type_id: u32,
    #[serde(default)]
    label: Option<String>,
}

impl ListedAssociation {
    /// The record it names, if it names one.
    fn record(self) -> Option<AssociatedRecord> {
        let to_id = id_text(Some(&self.to_object_id))?;
        let types = self
            .association_types
            .into_iter()
            .map(|t| {
                (
                    AssociationType {
                        category: t.category.unwrap_or_else(|| "HUBSPOT_DEFINED".into()),
                        type_id: t.type_id,
                    },
                    t.label,
                )
            })
            .collect();
        Some(AssociatedRecord { to_id, types })
    }
}

/// A batch read's answer: per record asked for, its associations (a page of them).
#[derive(Deserialize)]
struct ReadAnswer {
    #[serde(default)]
    results: Vec<ReadResult>,
}

#[derive(Deserialize)]
struct ReadResult {
    from: ReadFrom,
    #[serde(default)]
    to: Vec<ListedAssociation>,
    #[serde(default)]
    paging: Option<crate::objects::Paging>,
}

#[derive(Deserialize)]
struct ReadFrom {
    id: Value,
}

/// How many records one batch read of associations may ask about (HubSpot's cap since
/// February 2025).
pub const READ_BATCH_SIZE: usize = 1_000;

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<Value>,
    #[serde(default)]
    errors: Vec<ErrorBody>,
}

/// An id as HubSpot writes it in association answers: a string or a number.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The (from, to) pair of one result: `{from:{id}, to:{id}}` (default associations) or
/// `{fromObjectId, toObjectId}` (labelled ones).
fn result_pair(r: &Value) -> Option<(String, String)> {
    let from = id_text(r.pointer("/from/id")).or_else(|| id_text(r.get("fromObjectId")))?;
    let to = id_text(r.pointer("/to/id")).or_else(|| id_text(r.get("toObjectId")))?;
    Some((from, to))
}

type Outcomes = Vec<AssociationOutcome>;
type BoxFut<'a> = Pin<Box<dyn Future<Output = Outcomes> + Send + 'a>>;

/// Places an answer's results and errors on the inputs: an input with a result went through;
/// one without is failed by an error naming its ids, else by the only error, else as
/// unanswered (safe to send again: associating twice changes nothing).
fn map_answer(inputs: &[AssociationInput], answer: BatchAnswer) -> Outcomes {
    let done: HashSet<(String, String)> = answer.results.iter().filter_map(result_pair).collect();
    let errors: Vec<(Vec<String>, RecordError)> = answer
        .errors
        .into_iter()
        .map(|e| {
            let api = e.into_api_error(400);
            let named = api.context.values().flatten().cloned().collect();
            let mut err = RecordError::from(api);
            if err.status.is_none_or(|s| s < 400) {
                err.status = Some(400);
            }
            (named, err)
        })
        .collect();
    inputs
        .iter()
        .map(|i| {
            if done.contains(&(i.from_id.clone(), i.to_id.clone())) {
                return AssociationOutcome::Done;
            }
            let named = errors
                .iter()
                .find(|(ids, _)| ids.contains(&i.from_id) || ids.contains(&i.to_id));
            match (named, errors.as_slice()) {
                (Some((_, e)), _) | (None, [(_, e)]) => AssociationOutcome::Failed(e.clone()),
                _ => AssociationOutcome::Failed(RecordError::client(
                    "UNANSWERED",
                    format!(
                        "HubSpot answered neither a result nor an error for the association {} → {}; associating again is safe",
                        i.from_id, i.to_id
                    ),
                )),
            }
        })
        .collect()
}

impl Client {
    /// Creates associations from records of type `from` to records of type `to`, 100 a call;
    /// one outcome per input, in input order. Inputs without types get HubSpot's default
    /// association (`…/batch/associate/default`), the others exactly their types
    /// (`…/batch/create`). A batch HubSpot refuses whole is split until the refused inputs
    /// stand alone.
    pub async fn associate(
        &self,
        from: &ObjectType,
        to: &ObjectType,
        inputs: Vec<AssociationInput>,
    ) -> Vec<AssociationOutcome> {
        let mut out: Vec<Option<AssociationOutcome>> = vec![None; inputs.len()];
        let (defaults, labelled): (Vec<_>, Vec<_>) = inputs
            .into_iter()
            .enumerate()
            .partition(|(_, i)| i.types.is_empty());
        for (op, group) in [("associate/default", defaults), ("create", labelled)] {
            for chunk in group.chunks(BATCH_SIZE) {
                let (positions, items): (Vec<usize>, Vec<AssociationInput>) =
                    chunk.iter().cloned().unzip();
                let results = self.associate_chunk(from, to, op, items).await;
                for (pos, r) in positions.into_iter().zip(results) {
                    out[pos] = Some(r);
                }
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    AssociationOutcome::Failed(RecordError::client("UNANSWERED", "no outcome"))
                })
            })
            .collect()
    }

    fn associate_chunk<'a>(
        &'a self,
        from: &'a ObjectType,
        to: &'a ObjectType,
        op: &'a str,
        items: Vec<AssociationInput>,
    ) -> BoxFut<'a> {
        Box::pin(async move {
            if items.is_empty() {
                return Vec::new();
            }
            let body =
                json!({ "inputs": items.iter().map(AssociationInput::json).collect::<Vec<_>>() });
            let mut call = Call::post(self.paths().associations_batch(from, to, op), body);
            call.batch = true;
            call.write = true;
            match self.send(&call).await {
                Ok(answer) => match decode::<BatchAnswer>(&call.path, &answer.body) {
                    Ok(parsed) => map_answer(&items, parsed),
                    Err(e) => {
                        let err = RecordError::from(&e);
                        items
                            .iter()
                            .map(|_| AssociationOutcome::Failed(err.clone()))
                            .collect()
                    }
                },
                Err(Error::Api(api)) if api.refuses_the_input() && items.len() > 1 => {
                    let mut left = items;
                    let right = left.split_off(left.len() / 2);
                    let (a, b) = tokio::join!(
                        self.associate_chunk(from, to, op, left),
                        self.associate_chunk(from, to, op, right)
                    );
                    a.into_iter().chain(b).collect()
                }
                Err(e) => {
                    let err = RecordError::from(&e);
                    items
                        .iter()
                        .map(|_| AssociationOutcome::Failed(err.clone()))
                        .collect()
                }
            }
        })
    }

    /// The records of type `to` associated with record `id` of type `from`, every page
    /// (500 a page).
    pub async fn associations(
        &self,
        from: &ObjectType,
        id: &str,
        to: &ObjectType,
    ) -> Result<Vec<AssociatedRecord>, Error> {
        // A listing pages by cursor; a server that keeps answering one cannot keep the client.
        const MAX_PAGES: usize = 1_000;
        let path = self.paths().associations_of(from, id, to);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit".to_string(), "500".to_string())];
            if let Some(a) = &after {
                query.push(("after".into(), a.clone()));
            }
            let page: Listing = self.send_json(&Call::get(path.clone(), query)).await?;
            out.extend(
                page.results
                    .into_iter()
                    .filter_map(ListedAssociation::record),
            );
            let next = page
                .paging
                .and_then(|p| p.next)
                .and_then(|n| n.after)
                .filter(|n| after.as_ref() != Some(n));
            match next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
        Err(Error::Decode {
            what: path,
            message: format!("association listing did not end after {MAX_PAGES} pages"),
        })
    }

    /// The records of type `to` associated with each of `ids` (records of type `from`): one
    /// batch read per [`READ_BATCH_SIZE`] ids instead of a listing per record. A record whose
    /// answer is paged (HubSpot pages each record's associations after 500), or that the batch
    /// did not answer for, is listed on its own ([`Client::associations`]), so what it has is
    /// never cut short; such a listing's error is the error.
    pub async fn associations_of_many(
        &self,
        from: &ObjectType,
        ids: &[String],
        to: &ObjectType,
    ) -> Result<HashMap<String, Vec<AssociatedRecord>>, Error> {
        let ids: Vec<&String> = ids.iter().collect::<HashSet<_>>().into_iter().collect();
        let mut out: HashMap<String, Vec<AssociatedRecord>> = HashMap::new();
        for chunk in ids.chunks(READ_BATCH_SIZE) {
            let body =
                json!({ "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>() });
            let mut call = Call::post(self.paths().associations_batch(from, to, "read"), body);
            call.batch = true;
            let answer: ReadAnswer = self.send_json(&call).await?;
            for r in answer.results {
                let paged = r.paging.and_then(|p| p.next).is_some();
                let Some(id) = id_text(Some(&r.from.id)).filter(|_| !paged) else {
                    continue;
                };
                out.entry(id)
                    .or_default()
                    .extend(r.to.into_iter().filter_map(ListedAssociation::record));
            }
        }
        for id in ids {
            if !out.contains_key(id.as_str()) {
                let listed = self.associations(from, id, to).await?;
                out.insert(id.clone(), listed);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shapes() {
        let d = AssociationInput::default_type("1", "2").json();
        assert_eq!(d, json!({"from": {"id": "1"}, "to": {"id": "2"}}));
        let l = AssociationInput::of_types(
            "1",
            "2",
            vec![AssociationType::hubspot(types::LINE_ITEM_TO_DEAL)],
        )
        .json();
        assert_eq!(
            l["types"],
            json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}])
        );
    }

    #[test]
    fn answers_map_to_inputs() {
        let inputs = vec![
            AssociationInput::default_type("1", "10"),
            AssociationInput::default_type("2", "20"),
            AssociationInput::default_type("3", "30"),
        ];
        let answer: BatchAnswer = serde_json::from_value(json!({
            "status": "COMPLETE",
            "results": [
                {"from": {"id": "1"}, "to": {"id": "10"}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}},
                {"fromObjectTypeId": "0-8", "fromObjectId": 3, "toObjectTypeId": "0-3", "toObjectId": 30, "labels": []}
            ],
            "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "no line_item 2",
                        "context": {"fromObjectId": ["2"]}}]
        }))
        .unwrap();
        let out = map_answer(&inputs, answer);
        assert!(out[0].is_done() && out[2].is_done());
        let AssociationOutcome::Failed(e) = &out[1] else {
            panic!("{:?}", out[1])
        };
        assert_eq!(e.status, Some(400));
        assert!(e.message.contains("no line_item 2"));
        // neither a result nor an error: failed, never taken for a success
        let out = map_answer(
            &inputs[..1],
            serde_json::from_value(json!({"results": []})).unwrap(),
        );
        assert!(matches!(&out[0], AssociationOutcome::Failed(e) if e.category == "UNANSWERED"));
    }
}
