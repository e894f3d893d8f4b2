//! Deals with line items: a `hubspot` action of `object: line_item`, `operation: create` that
//! builds on the action creating the deal (`associate_with`). Each record's line items (the
//! elements of `line_items.path`, mapped by `line_items.mapping`; or the record itself) name
//! their products by SKU (`hs_sku`).
//!
//! Before any action of a page writes ([`Items::prepare`]), every SKU is resolved to a product:
//! one search per 100 SKUs, and — with the connection's `transfer_products_first` — one batch
//! create per 100 missing products. A record whose line items cannot all be resolved (a missing
//! product when products are not transferred, a line that does not map) fails whole, before its
//! deal is created. Then, after the deal action, [`Items::write`] creates every record's line
//! items in batch calls, each associated with its deal as it is made (type 20).
//!
//! A retry never doubles a line item: a deal created by this very attempt has none yet; for a
//! deal that may be older (an earlier, interrupted attempt made it, a replay, an upsert) the
//! line items it already has are read (one batch read of associations per 1,000 such deals, one
//! batch read per 100 line items) and only the missing ones are created — a line item counts as there when one of the
//! deal's has the same product and quantity.

use crate::connector::Link;
use crate::record::{ActionOutcome, Prepared};
use chrono::{DateTime, Utc};
use indexmap::{IndexMap, IndexSet};
use jsonpath_rust::parser::model::JpQuery;
use rivulet_hubspot::associations::types::LINE_ITEM_TO_DEAL;
use rivulet_hubspot::{
    Association, AssociationType, Client, ObjectType, ProductInput, ProductOutcome, RecordError,
    WriteInput, WriteOutcome,
};
use rivulet_mapping::{Context, Mapping, OutputMode};
use rivulet_spec::model::HubSpotAction;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// How long HubSpot's search may take to show a product just created: after a crash cut a
/// preparation short, SKUs are looked up only once this long has passed since it began.
const SEARCH_LAG: Duration = Duration::from_secs(10);

/// A deal's line items, as one `hubspot` action makes them.
pub(super) struct Items {
    /// Where each record's list is (`None`: the record is its own line item), as written.
    path: Option<(String, JpQuery)>,
    /// Each element's properties.
    mapping: Option<Mapping>,
    /// Without a list: the mapped fields to send (`properties`; default all).
    only: Option<Vec<String>>,
    /// Create the products HubSpot does not have.
    transfer_products_first: bool,
    /// The connection, for messages.
    connection: String,
    /// Line items per batch call.
    batch_size: usize,
}

/// One line item of a record.
#[derive(Debug, Clone)]
struct Line {
    /// Its properties, as mapped.
    properties: IndexMap<String, String>,
    /// Its product's SKU, when it names one.
    sku: Option<String>,
    /// Its product's id, when mapped (or once resolved).
    product: Option<String>,
}

/// The line items one record wants on its deal.
struct Wanted {
    /// The record's position in the batch.
    at: usize,
    /// Its deal.
    deal: String,
    /// Whether the deal was created just now (so it has no line items yet).
    new: bool,
    /// Each line's product id.
    products: Vec<String>,
    /// Its lines.
    lines: Vec<Line>,
}

/// What became of a SKU.
#[derive(Debug, Clone)]
enum Product {
    Id(String),
    Missing,
    CreateFailed(RecordError),
    LookupFailed(RecordError),
}

impl Items {
    /// The line items of `action` (an `object: line_item` create), or `None` when the action
    /// makes line items on no deal (a plain create).
    pub(super) fn new(
        action: &HubSpotAction,
        transfer_products_first: bool,
    ) -> Result<Option<Items>, String> {
        let line_items = rivulet_spec::connectors::hubspot::canonical_object(&action.object)
            == Some("line_item")
            && action.operation == rivulet_spec::model::Operation::Create
            && (action.line_items.is_some() || !action.associate_with.is_empty());
        if !line_items {
            return Ok(None);
        }
        let (path, mapping) = match &action.line_items {
            Some(li) => {
                let query = jsonpath_rust::parser::parse_json_path(&li.path).map_err(|e| {
                    format!(
                        "`line_items.path` `{}` is not a valid JSONPath: {e}",
                        li.path
                    )
                })?;
                let mapping = Mapping::compile(&li.mapping).map_err(|errors| {
                    errors
                        .iter()
                        .map(|e| format!("`line_items.mapping`: {}", e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                })?;
                (Some((li.path.clone(), query)), Some(mapping))
            }
            None => (None, None),
        };
        Ok(Some(Items {
            path,
            mapping,
            only: action.properties.clone(),
            transfer_products_first,
            connection: action.connection.clone(),
            batch_size: action.batch_size.clamp(1, 100) as usize,
        }))
    }

    /// Whether preparing creates products.
    pub(super) fn creates_products(&self) -> bool {
        self.transfer_products_first
    }

    /// The line items of one record, mapped; `Err` says which one does not map, and why.
    fn lines(&self, p: &Prepared<'_>, ctx: &Context) -> Result<Vec<Line>, String> {
        let (Some((path, query)), Some(mapping)) = (&self.path, &self.mapping) else {
            let only = self.only.as_deref();
            let properties = strings(
                p.fields
                    .iter()
                    .filter(|(k, _)| only.is_none_or(|only| only.contains(k))),
            );
            return line(properties)
                .map(|l| vec![l])
                .map_err(|e| format!("the line item {e}"));
        };
        let found: Vec<&Value> = match jsonpath_rust::query::js_path_process(query, &p.record.data)
        {
            Ok(refs) => refs.into_iter().map(|r| r.val).collect(),
            Err(_) => Vec::new(),
        };
        let elements: Vec<&Value> = match found.as_slice() {
            [] => return Err(format!("the record has no line items at `{path}`")),
            [Value::Null] => Vec::new(),
            [Value::Array(list)] => list.iter().collect(),
            _ => found,
        };
        elements
            .into_iter()
            .enumerate()
            .map(|(n, element)| {
                let mapped = mapping
                    .apply(element, ctx, OutputMode::Wire)
                    .map_err(|errors| {
                        let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
                        format!("line item {}: {}", n + 1, why.join("; "))
                    })?;
                line(strings(mapped.iter())).map_err(|e| format!("line item {} {e}", n + 1))
            })
            .collect()
    }

    /// What a dry run shows of a record: its line items' properties (or why they do not map).
    pub(super) fn preview(&self, p: &Prepared<'_>, ctx: &Context) -> Value {
        match self.lines(p, ctx) {
            Ok(lines) => serde_json::json!({
                "line_items": lines.iter().map(|l| &l.properties).collect::<Vec<_>>(),
            }),
            Err(why) => serde_json::json!({ "line_items_error": why }),
        }
    }

    /// Before anything of the page is written: every record's line items mapped and their
    /// SKUs resolved to products — created first when the connection transfers products.
    pub(super) async fn prepare(
        &self,
        client: &Client,
        batch: &[Prepared<'_>],
        interrupted: Option<DateTime<Utc>>,
        ctx: &Context,
    ) -> Vec<Result<(), ActionOutcome>> {
        let lines: Vec<Result<Vec<Line>, String>> =
            batch.iter().map(|p| self.lines(p, ctx)).collect();
        let products = self.products(client, &lines, interrupted).await;
        lines
            .into_iter()
            .map(|l| match l {
                Err(why) => Err(ActionOutcome::failed(why)),
                Ok(lines) => self.check(&lines, &products).map(|_| ()),
            })
            .collect()
    }

    /// Each SKU the lines need, resolved: looked up (and, when transferring, created).
    async fn products(
        &self,
        client: &Client,
        lines: &[Result<Vec<Line>, String>],
        interrupted: Option<DateTime<Utc>>,
    ) -> HashMap<String, Product> {
        let skus: IndexSet<String> = lines
            .iter()
            .flatten()
            .flatten()
            .filter(|l| l.product.is_none())
            .filter_map(|l| l.sku.clone())
            .collect();
        if skus.is_empty() {
            return HashMap::new();
        }
        let unknown = skus.iter().any(|s| !client.knows_product_sku(s));
        if let Some(began) = interrupted.filter(|_| unknown) {
            // A crash cut an attempt short that may have created some of these products:
            // search shows new records only after a while, and must before it is believed.
            let ready = began + chrono::Duration::from_std(SEARCH_LAG).unwrap_or_default();
            let wait = (ready - client.config().clock.now())
                .to_std()
                .unwrap_or_default();
            if !wait.is_zero() {
                tracing::info!(
                    wait_s = wait.as_secs_f64(),
                    "waiting for HubSpot's search index before looking up products an interrupted attempt may have created"
                );
                tokio::time::sleep(wait).await;
            }
        }
        let out: HashMap<String, Product> = if self.transfer_products_first {
            let inputs: Vec<ProductInput> = skus
                .iter()
                .map(|sku| {
                    let first = lines
                        .iter()
                        .flatten()
                        .flatten()
                        .find(|l| l.sku.as_deref() == Some(sku.as_str()));
                    product_input(sku, first)
                })
                .collect();
            let outcomes = client.ensure_products(inputs).await;
            skus.iter()
                .cloned()
                .zip(outcomes)
                .map(|(sku, o)| {
                    let p = match o {
                        ProductOutcome::Found { id } | ProductOutcome::Created { id } => {
                            Product::Id(id)
                        }
                        ProductOutcome::Failed(e) => Product::CreateFailed(e),
                    };
                    (sku, p)
                })
                .collect()
        } else {
            let asked: Vec<String> = skus.iter().cloned().collect();
            match client.find_products_by_sku(&asked).await {
                Ok(found) => skus
                    .iter()
                    .map(|sku| {
                        let p = found
                            .get(sku)
                            .map_or(Product::Missing, |id| Product::Id(id.clone()));
                        (sku.clone(), p)
                    })
                    .collect(),
                Err(e) => {
                    let e = RecordError::from(&e);
                    skus.iter()
                        .map(|sku| (sku.clone(), Product::LookupFailed(e.clone())))
                        .collect()
                }
            }
        };
        out
    }

    /// Whether every line of a record has its product: the product ids by line, or the
    /// outcome to fail the record with (transient when HubSpot could not be asked).
    fn check(
        &self,
        lines: &[Line],
        products: &HashMap<String, Product>,
    ) -> Result<Vec<String>, ActionOutcome> {
        let mut ids = Vec::with_capacity(lines.len());
        let mut problems = Vec::new();
        for (n, l) in lines.iter().enumerate() {
            if let Some(id) = &l.product {
                ids.push(id.clone());
                continue;
            }
            let sku = l.sku.as_deref().unwrap_or_default();
            let which = format!("line item {} (SKU `{sku}`)", n + 1);
            match products.get(sku) {
                Some(Product::Id(id)) => ids.push(id.clone()),
                Some(Product::Missing) => problems.push(format!(
                    "{which}: HubSpot has no product with this SKU (`hs_sku`); create it in HubSpot, or set `transfer_products_first: true` on connection `{}` to create missing products before the deal",
                    self.connection
                )),
                Some(Product::CreateFailed(e)) if e.is_transient() => {
                    return Err(ActionOutcome::transient(format!(
                        "HubSpot: creating the product of SKU `{sku}`: {e}"
                    )));
                }
                Some(Product::LookupFailed(e)) if e.is_transient() => {
                    return Err(ActionOutcome::transient(format!(
                        "HubSpot: looking up products by SKU: {e}"
                    )));
                }
                Some(Product::CreateFailed(e)) => {
                    problems.push(format!("{which}: its product could not be created: {e}"))
                }
                Some(Product::LookupFailed(e)) => {
                    problems.push(format!("{which}: its product could not be looked up: {e}"))
                }
                None => problems.push(format!("{which}: its product was not looked up")),
            }
        }
        if problems.is_empty() {
            Ok(ids)
        } else {
            Err(ActionOutcome::failed(problems.join("; ")))
        }
    }

    /// Creates each record's line items on its deal (`links[i]`, from the deal action), in
    /// batch calls; a deal that may be older first has the line items it already has read, and
    /// only the missing ones are created. One outcome per record: the ids of its line items,
    /// comma-separated.
    pub(super) async fn write(
        &self,
        client: &Client,
        batch: &[Prepared<'_>],
        links: &[Vec<Link>],
        ctx: &Context,
    ) -> Vec<ActionOutcome> {
        let mut out: Vec<Option<ActionOutcome>> = vec![None; batch.len()];
        // Each record's lines and deal.
        let mut plans: Vec<Wanted> = Vec::new();
        let deals = ObjectType::deals().to_string();
        for (i, p) in batch.iter().enumerate() {
            let lines = match self.lines(p, ctx) {
                Ok(lines) => lines,
                Err(why) => {
                    out[i] = Some(ActionOutcome::failed(why));
                    continue;
                }
            };
            let deal = links.get(i).and_then(|ls| {
                ls.iter()
                    .find(|l| l.object.as_deref() == Some(deals.as_str()))
                    .and_then(|l| l.ids.first().map(|id| (id.clone(), l.new)))
            });
            match deal {
                Some((deal, new)) => plans.push(Wanted {
                    at: i,
                    deal,
                    new,
                    products: Vec::new(),
                    lines,
                }),
                None => {
                    out[i] = Some(ActionOutcome::failed(
                        "there is no deal to put the line items on (the deal action reported no id)",
                    ))
                }
            }
        }
        // Products: resolved while preparing, so the client answers from memory.
        let all: Vec<Result<Vec<Line>, String>> =
            plans.iter().map(|w| Ok(w.lines.clone())).collect();
        let products = self.products(client, &all, None).await;
        let mut wanted: Vec<Wanted> = Vec::new();
        for mut w in plans {
            match self.check(&w.lines, &products) {
                Ok(ids) => {
                    w.products = ids;
                    wanted.push(w);
                }
                Err(outcome) => out[w.at] = Some(outcome),
            }
        }
        // What deals that may be older already have.
        let older: Vec<String> = wanted
            .iter()
            .filter(|w| !w.new)
            .map(|w| w.deal.clone())
            .collect::<IndexSet<_>>()
            .into_iter()
            .collect();
        let existing = match existing_items(client, &older).await {
            Ok(e) => e,
            Err(e) => {
                let outcome = if e.is_transient() {
                    ActionOutcome::transient(format!(
                        "HubSpot: reading the line items deals already have: {e}"
                    ))
                } else {
                    ActionOutcome::failed(format!(
                        "reading the line items the deal already has failed: {e}"
                    ))
                };
                for w in wanted.iter().filter(|w| !w.new) {
                    out[w.at] = Some(outcome.clone());
                }
                wanted.retain(|w| w.new);
                HashMap::new()
            }
        };
        // Line by line: one the deal has already, or one to create.
        let mut made: Vec<Vec<Option<Result<String, ActionOutcome>>>> = Vec::new();
        let mut creates: Vec<((usize, usize), WriteInput)> = Vec::new();
        for (
            w,
            Wanted {
                deal,
                products: ids,
                lines,
                ..
            },
        ) in wanted.iter().enumerate()
        {
            let mut has: Vec<(String, String, Option<String>)> =
                existing.get(deal).cloned().unwrap_or_default();
            let mut row = Vec::with_capacity(lines.len());
            for (n, (line, product)) in lines.iter().zip(ids).enumerate() {
                let quantity = line.properties.get("quantity").cloned();
                let there = has.iter().position(|(_, p, q)| {
                    p == product && same_number(q.as_deref(), quantity.as_deref())
                });
                match there {
                    Some(k) => row.push(Some(Ok(has.remove(k).0))),
                    None => {
                        row.push(None);
                        let mut input = WriteInput::new(line.properties.clone());
                        input
                            .properties
                            .insert("hs_product_id".into(), product.clone());
                        input.associations.push(Association {
                            to_id: deal.clone(),
                            types: vec![AssociationType::hubspot(LINE_ITEM_TO_DEAL)],
                        });
                        creates.push(((w, n), input));
                    }
                }
            }
            made.push(row);
        }
        // The creates, a batch call at a time; once HubSpot is down the rest is not sent.
        let mut down: Option<ActionOutcome> = None;
        for chunk in creates.chunks(self.batch_size) {
            let results = match &down {
                Some(_) => Vec::new(),
                None => {
                    client
                        .batch_create(
                            &ObjectType::line_items(),
                            chunk.iter().map(|(_, input)| input.clone()).collect(),
                        )
                        .await
                }
            };
            for (k, ((w, n), _)) in chunk.iter().enumerate() {
                let r = match (&down, results.get(k)) {
                    (Some(d), _) => Err(d.clone()),
                    (None, Some(WriteOutcome::Created { id } | WriteOutcome::Updated { id })) => {
                        Ok(id.clone())
                    }
                    (None, Some(WriteOutcome::Failed(e))) if e.is_transient() => {
                        Err(ActionOutcome::transient(format!("HubSpot: {e}")))
                    }
                    (None, Some(WriteOutcome::Failed(e))) => {
                        Err(ActionOutcome::failed(e.to_string()))
                    }
                    // Lost: the retry reads what the deal has and makes only what is missing.
                    (None, Some(WriteOutcome::Unknown { reason })) => Err(
                        ActionOutcome::transient(format!("HubSpot's answer was lost: {reason}")),
                    ),
                    (None, None) => Err(ActionOutcome::failed("internal: no outcome")),
                };
                if down.is_none()
                    && let Err(t @ ActionOutcome::Transient { .. }) = &r
                {
                    down = Some(t.clone());
                }
                made[*w][*n] = Some(r);
            }
        }
        for (Wanted { at: i, lines, .. }, row) in wanted.iter().zip(made) {
            let mut ids = Vec::with_capacity(row.len());
            let mut failures = Vec::new();
            let mut transient = None;
            for (n, r) in row.into_iter().enumerate() {
                match r {
                    Some(Ok(id)) => ids.push(id),
                    Some(Err(ActionOutcome::Failed { message })) => {
                        let sku = lines[n].sku.as_deref().unwrap_or_default();
                        failures.push(format!("line item {} (SKU `{sku}`): {message}", n + 1));
                    }
                    Some(Err(other)) => transient = transient.or(Some(other)),
                    None => failures.push(format!("line item {}: no outcome", n + 1)),
                }
            }
            out[*i] = Some(match (transient, failures.is_empty()) {
                (Some(t), _) => t,
                (None, true) => ActionOutcome::Done {
                    id: (!ids.is_empty()).then(|| ids.join(",")),
                },
                (None, false) => ActionOutcome::failed(if ids.is_empty() {
                    failures.join("; ")
                } else {
                    format!(
                        "{} ({} of {} line items are on the deal; a replay adds the others)",
                        failures.join("; "),
                        ids.len(),
                        lines.len()
                    )
                }),
            });
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| ActionOutcome::failed("internal: no outcome")))
            .collect()
    }
}

/// Mapped values as HubSpot property strings (empty values left out).
fn strings<'a>(fields: impl Iterator<Item = (&'a String, &'a Value)>) -> IndexMap<String, String> {
    fields
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((k.clone(), text))
        })
        .collect()
}

/// A line item from its properties; `Err` (to follow "line item N") when it names no product.
fn line(properties: IndexMap<String, String>) -> Result<Line, String> {
    let get = |k: &str| {
        properties
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (sku, product) = (get("hs_sku"), get("hs_product_id"));
    if sku.is_none() && product.is_none() {
        return Err("has no SKU (`hs_sku` is empty), so its product cannot be found".into());
    }
    Ok(Line {
        properties,
        sku,
        product,
    })
}

/// The product to create for `sku`, described by the first line item naming it: its `name`
/// (else the SKU), `price` and `description`.
fn product_input(sku: &str, first: Option<&Line>) -> ProductInput {
    let mut properties: IndexMap<String, String> = IndexMap::new();
    let of = |k: &str| {
        first
            .and_then(|l| l.properties.get(k))
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    properties.insert("name".into(), of("name").unwrap_or_else(|| sku.to_string()));
    for key in ["price", "description"] {
        if let Some(v) = of(key) {
            properties.insert(key.into(), v);
        }
    }
    ProductInput {
        sku: sku.to_string(),
        properties,
    }
}

/// Two quantities are the same when both are missing, or equal as numbers (`2`, `2.0`) or as
/// text.
fn same_number(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.map(str::trim), b.map(str::trim)) {
        (None | Some(""), None | Some("")) => true,
        (Some(a), Some(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() < 1e-9,
            _ => a == b,
        },
        _ => false,
    }
}

/// The line items each of `deals` has: (id, product id, quantity), by deal.
async fn existing_items(
    client: &Client,
    deals: &[String],
) -> Result<HashMap<String, Vec<(String, String, Option<String>)>>, RecordError> {
    if deals.is_empty() {
        return Ok(HashMap::new());
    }
    let of_deal: HashMap<String, Vec<String>> = client
        .associations_of_many(&ObjectType::deals(), deals, &ObjectType::line_items())
        .await
        .map_err(|e| RecordError::from(&e))?
        .into_iter()
        .map(|(deal, found)| (deal, found.into_iter().map(|r| r.to_id).collect()))
        .collect();
    let ids: Vec<String> = of_deal.values().flatten().cloned().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let properties = vec!["hs_product_id".to_string(), "quantity".to_string()];
    let read = client
        .batch_read(&ObjectType::line_items(), &ids, None, &properties)
        .await
        .map_err(|e| RecordError::from(&e))?;
    let by_id: HashMap<String, (String, Option<String>)> = read
        .into_iter()
        .map(|o| {
            let product = o.property("hs_product_id").unwrap_or_default().to_string();
            let quantity = o.property("quantity").map(str::to_string);
            (o.id, (product, quantity))
        })
        .collect();
    Ok(of_deal
        .into_iter()
        .map(|(deal, items)| {
            let found = items
                .into_iter()
                .filter_map(|id| {
                    let (product, quantity) = by_id.get(&id)?.clone();
                    Some((id, product, quantity))
                })
                .collect();
            (deal, found)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_as_numbers() {
        assert!(same_number(Some("2"), Some("2.0")));
        assert!(same_number(None, Some(" ")));
        assert!(!same_number(Some("2"), Some("3")));
        assert!(!same_number(Some("2"), None));
        assert!(same_number(Some("a"), Some("a")));
    }

    #[test]
    fn a_line_names_its_product() {
        let l = line(IndexMap::from([(
            "hs_sku".to_string(),
            " S-1 ".to_string(),
        )]))
        .unwrap();
        assert_eq!(l.sku.as_deref(), Some("S-1"));
        assert!(line(IndexMap::from([("quantity".to_string(), "1".to_string())])).is_err());
        let p = product_input("S-1", Some(&l));
        assert_eq!(
            p.properties["name"], "S-1",
            "named after the SKU without a name"
        );
    }
}
