//! Deals with line items: the products a line item refers to are found by SKU (`hs_sku`) and
//! the missing ones created first, so the deal and its line items can then be created and
//! associated. The steps, each a batch call per 100 records:
//!
//! 1. [`Client::ensure_products`]: every SKU → a product id, one search per 100 SKUs for the
//!    products that exist and one batch create per 100 for the ones that do not.
//! 2. [`Client::batch_create`] on [`ObjectType::deals`]: the deals.
//! 3. [`Client::batch_create`] on [`ObjectType::line_items`], each input from
//!    [`line_item`] (its `hs_product_id` and quantity) with an association to its deal
//!    ([`types::LINE_ITEM_TO_DEAL`]), or created first and associated afterwards with
//!    [`Client::associate`].
//!
//! ```no_run
//! # async fn demo(client: rivulet_hubspot::Client) {
//! use rivulet_hubspot::{ObjectType, ProductInput, WriteInput, commerce};
//! let products = client
//!     .ensure_products(vec![ProductInput::new("SKU-1", [("name", "Widget"), ("price", "9.50")])])
//!     .await;
//! let product_id = products[0].id().expect("a product").to_string();
//! let deals = client
//!     .batch_create(&ObjectType::deals(), vec![WriteInput::new([("dealname", "Order 1")])])
//!     .await;
//! let deal_id = deals[0].id().expect("a deal");
//! let items = client
//!     .batch_create(
//!         &ObjectType::line_items(),
//!         vec![commerce::line_item(&product_id, "2", Some(deal_id))],
//!     )
//!     .await;
//! # }
//! ```
//!
//! `hs_sku` is not a unique property in HubSpot (so it cannot be an `idProperty`): products are
//! found by search, which shows a new product only after a few seconds. A client remembers the
//! product ids it found or created ([`SkuMemory`]: for 15 minutes, at most 100,000 SKUs), so
//! later records never create a product twice; another process that starts within seconds of
//! a create could. A portal with a unique SKU property can look products up exactly with
//! [`Client::find_by_unique`] instead.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use indexmap::IndexMap;

use crate::Client;
use crate::associations::types;
use crate::batch::WriteOutcome;
use crate::error::{Error, RecordError};
use crate::objects::{Association, AssociationType, ObjectType, WriteInput};

/// HubSpot's SKU property of products (and line items).
pub const SKU_PROPERTY: &str = "hs_sku";

/// Product ids by SKU, as a client found or created them. Search shows a new product only
/// after a few seconds, so what was made must be remembered; but not for ever: an entry is
/// believed for [`SkuMemory::TTL`] (a product merged or deleted in HubSpot is then looked up
/// again, one search per 100 SKUs), and at most [`SkuMemory::MAX`] SKUs are kept, so a
/// catalogue of any size costs bounded memory (the oldest half goes when it is full: they are
/// searched for again, which is all forgetting costs).
#[derive(Debug)]
pub struct SkuMemory {
    ids: HashMap<String, (String, DateTime<Utc>)>,
    max: usize,
}

impl SkuMemory {
    /// How long a SKU's product id is believed without asking HubSpot again.
    pub const TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
    /// How many SKUs are remembered at the most.
    pub const MAX: usize = 100_000;

    /// An empty memory keeping at most `max` SKUs (at least 2).
    pub fn new(max: usize) -> SkuMemory {
        SkuMemory {
            ids: HashMap::new(),
            max: max.max(2),
        }
    }

    /// The product id of `sku`, if it was found or made less than [`Self::TTL`] before `now`.
    pub fn get(&self, sku: &str, now: DateTime<Utc>) -> Option<&str> {
        self.ids
            .get(sku)
            .filter(|(_, at)| now - *at < Self::TTL)
            .map(|(id, _)| id.as_str())
    }

    /// Remembers `id` as `sku`'s product, seen at `now`.
    pub fn insert(&mut self, sku: String, id: String, now: DateTime<Utc>) {
        if self.ids.len() >= self.max && !self.ids.contains_key(&sku) {
            self.ids.retain(|_, (_, at)| now - *at < Self::TTL);
            if self.ids.len() >= self.max {
                let mut times: Vec<DateTime<Utc>> = self.ids.values().map(|(_, at)| *at).collect();
                // The older half (and whatever shares the newest of its instants).
                let middle = (times.len() - 1) / 2;
                let (_, newest_old, _) = times.select_nth_unstable(middle);
                let cut = *newest_old;
                self.ids.retain(|_, (_, at)| *at > cut);
            }
        }
        self.ids.insert(sku, (id, now));
    }

    /// How many SKUs are remembered (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Default for SkuMemory {
    fn default() -> Self {
        SkuMemory::new(SkuMemory::MAX)
    }
}

/// A product that must exist: its SKU and the properties to create it with when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInput {
    /// The SKU (`hs_sku`).
    pub sku: String,
    /// Properties of a product created for it (`name`, `price`, …); `hs_sku` is set from
    /// `sku`.
    pub properties: IndexMap<String, String>,
}

impl ProductInput {
    /// A product with this SKU and these properties.
    pub fn new<K: Into<String>, V: Into<String>>(
        sku: impl Into<String>,
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        ProductInput {
            sku: sku.into(),
            properties: properties
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// The product of one [`ProductInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductOutcome {
    /// A product with the SKU existed.
    Found {
        /// Its id.
        id: String,
    },
    /// It was created now.
    Created {
        /// Its id.
        id: String,
    },
    /// It could not be found or created.
    Failed(RecordError),
}

impl ProductOutcome {
    /// The product id, unless it failed.
    pub fn id(&self) -> Option<&str> {
        match self {
            ProductOutcome::Found { id } | ProductOutcome::Created { id } => Some(id),
            ProductOutcome::Failed(_) => None,
        }
    }
}

/// A line item input: `quantity` of product `product_id`, on deal `deal_id` when given (the
/// association is made with the line item).
pub fn line_item(product_id: &str, quantity: &str, deal_id: Option<&str>) -> WriteInput {
    let mut input = WriteInput::new([("hs_product_id", product_id), ("quantity", quantity)]);
    if let Some(deal) = deal_id {
        input.associations.push(Association {
            to_id: deal.to_string(),
            types: vec![AssociationType::hubspot(types::LINE_ITEM_TO_DEAL)],
        });
    }
    input
}

impl Client {
    /// Whether this client knows `sku`'s product without asking (found or made within
    /// [`SkuMemory::TTL`]).
    pub fn knows_product_sku(&self, sku: &str) -> bool {
        let now = self.inner.config.clock.now();
        self.inner.skus.lock().get(sku.trim(), now).is_some()
    }

    /// The product id of each SKU that has a product (searched on `hs_sku`, 100 SKUs a query,
    /// ids the client already knows not asked again). When several products share a SKU the
    /// oldest (lowest id) is taken. SKUs without a product are absent; keys are the SKUs as
    /// given. Search lags writes by a few seconds.
    pub async fn find_products_by_sku(
        &self,
        skus: &[String],
    ) -> Result<HashMap<String, String>, Error> {
        let mut out = HashMap::new();
        let mut ask = Vec::new();
        {
            let now = self.inner.config.clock.now();
            let known = self.inner.skus.lock();
            for sku in skus.iter().filter(|s| !s.trim().is_empty()) {
                match known.get(sku.trim(), now) {
                    Some(id) => {
                        out.insert(sku.clone(), id.to_string());
                    }
                    None => ask.push(sku.clone()),
                }
            }
        }
        if ask.is_empty() {
            return Ok(out);
        }
        let found = self
            .find_by_property(&ObjectType::products(), SKU_PROPERTY, &ask, None)
            .await?;
        let now = self.inner.config.clock.now();
        let mut known = self.inner.skus.lock();
        for (sku, ids) in found {
            if let Some(id) = ids.into_iter().next() {
                known.insert(sku.trim().to_string(), id.clone(), now);
                out.insert(sku, id);
            }
        }
        Ok(out)
    }

    /// A product id for every input, in input order: the existing product with its SKU, or one
    /// created now from its properties (one batch create per 100 missing; inputs repeating a
    /// SKU share one product). An input without a SKU, or whose create HubSpot refused, fails
    /// alone; when finding products fails, every input fails with that error.
    pub async fn ensure_products(&self, products: Vec<ProductInput>) -> Vec<ProductOutcome> {
        let skus: Vec<String> = products.iter().map(|p| p.sku.trim().to_string()).collect();
        let found = match self.find_products_by_sku(&skus).await {
            Ok(f) => f,
            Err(e) => {
                let err = RecordError::from(&e);
                return products
                    .iter()
                    .map(|_| ProductOutcome::Failed(err.clone()))
                    .collect();
            }
        };
        // One create per missing SKU, in first-seen order.
        let mut to_create: IndexMap<String, WriteInput> = IndexMap::new();
        for (p, sku) in products.iter().zip(&skus) {
            if sku.is_empty() || found.contains_key(sku) || to_create.contains_key(sku) {
                continue;
            }
            let mut input = WriteInput::new(p.properties.clone());
            input
                .properties
                .insert(SKU_PROPERTY.to_string(), sku.clone());
            to_create.insert(sku.clone(), input);
        }
        let created_skus: Vec<String> = to_create.keys().cloned().collect();
        let outcomes = if to_create.is_empty() {
            Vec::new()
        } else {
            self.batch_create(&ObjectType::products(), to_create.into_values().collect())
                .await
        };
        let mut created: HashMap<String, ProductOutcome> = HashMap::new();
        {
            let now = self.inner.config.clock.now();
            let mut known = self.inner.skus.lock();
            for (sku, outcome) in created_skus.into_iter().zip(outcomes) {
                let r = match outcome {
                    WriteOutcome::Created { id } | WriteOutcome::Updated { id } => {
                        known.insert(sku.clone(), id.clone(), now);
                        ProductOutcome::Created { id }
                    }
                    WriteOutcome::Failed(e) => ProductOutcome::Failed(e),
                    WriteOutcome::Unknown { reason } => {
                        ProductOutcome::Failed(RecordError::client("UNKNOWN", reason))
                    }
                };
                created.insert(sku, r);
            }
        }
        skus.iter()
            .map(|sku| {
                if sku.is_empty() {
                    return ProductOutcome::Failed(RecordError::client(
                        "VALIDATION_ERROR",
                        "the product has no SKU; a line item needs one to find its product",
                    ));
                }
                if let Some(id) = found.get(sku) {
                    return ProductOutcome::Found { id: id.clone() };
                }
                created.get(sku).cloned().unwrap_or_else(|| {
                    ProductOutcome::Failed(RecordError::client(
                        "UNKNOWN",
                        "no outcome for the product",
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_item_shape() {
        let li = line_item("55", "3", Some("77"));
        assert_eq!(li.properties["hs_product_id"], "55");
        assert_eq!(li.properties["quantity"], "3");
        assert_eq!(li.associations[0].to_id, "77");
        assert_eq!(li.associations[0].types[0].type_id, 20);
        assert!(line_item("55", "1", None).associations.is_empty());
    }

    #[test]
    fn skus_are_remembered_for_a_while_and_in_bounded_number() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let minutes = |m: i64| t0 + chrono::TimeDelta::minutes(m);
        let mut memory = SkuMemory::new(4);
        memory.insert("A".into(), "1".into(), t0);
        assert_eq!(memory.get("A", minutes(14)), Some("1"));
        assert_eq!(
            memory.get("A", minutes(15)),
            None,
            "then HubSpot is asked again"
        );
        memory.insert("A".into(), "2".into(), minutes(15));
        assert_eq!(memory.get("A", minutes(16)), Some("2"));

        // Full: the expired go first, then the oldest half.
        let mut memory = SkuMemory::new(4);
        for (i, sku) in ["A", "B", "C", "D"].into_iter().enumerate() {
            memory.insert(sku.into(), i.to_string(), minutes(i as i64));
        }
        memory.insert("E".into(), "4".into(), minutes(4));
        assert_eq!(memory.len(), 3, "the two oldest went: {memory:?}");
        assert_eq!(memory.get("A", minutes(4)), None);
        assert_eq!(memory.get("B", minutes(4)), None);
        assert_eq!(memory.get("C", minutes(4)), Some("2"));
        assert_eq!(memory.get("E", minutes(4)), Some("4"));
        memory.insert("F".into(), "5".into(), minutes(30));
        assert_eq!(memory.len(), 4);
        memory.insert("G".into(), "6".into(), minutes(31));
        assert_eq!(memory.len(), 2, "C, D and E had expired: {memory:?}");
        // Many SKUs: never more than the bound.
        let mut memory = SkuMemory::new(1000);
        for i in 0..100_000 {
            memory.insert(format!("S{i}"), i.to_string(), t0);
        }
        assert!(memory.len() <= 1000);
        assert_eq!(memory.get("S99999", t0), Some("99999"));
    }
}
