//! CRM objects of any type through one code path, and the single-record calls (get, list, create,
//! update, archive).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};

use crate::Client;
use crate::client::{Call, is_ambiguous};
use crate::error::Error;

/// A CRM object type: companies, contacts, or any other by its API name or `2-…` id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ObjectType {
    /// `companies`.
    Companies,
    /// `contacts`.
    Contacts,
    /// Any other type, by the name used in its API path (`deals`, `line_items`, `2-1234`).
    Other(String),
}

impl ObjectType {
    /// The segment in `/crm/v3/objects/{segment}` (and every other path naming the type).
    pub fn path_segment(&self) -> &str {
        match self {
            ObjectType::Companies => "companies",
            ObjectType::Contacts => "contacts",
            ObjectType::Other(name) => name,
        }
    }

    /// The property that changes on every update: contacts use `lastmodifieddate`, every other
    /// type `hs_lastmodifieddate` (filtering contacts on the latter silently finds nothing).
    pub fn last_modified_property(&self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// A unique property that identifies a record besides its id (contacts: `email`); used to
    /// check whether a create whose answer was lost happened.
    pub fn unique_property(&self) -> Option<&'static str> {
        match self {
            ObjectType::Contacts => Some("email"),
            _ => None,
        }
    }

    /// The scope reading (`write: false`) or writing records of this type needs:
    /// `crm.objects.{type}.read|write`, HubSpot's pattern for companies, contacts, deals and
    /// line items (products follow it too); custom objects share `crm.objects.custom.…`.
    pub fn scope(&self, write: bool) -> String {
        let access = if write { "write" } else { "read" };
        format!("crm.objects.{}.{access}", self.scope_segment())
    }

    /// The scope reading this type's property definitions needs: `crm.schemas.{type}.read`.
    pub fn schema_scope(&self) -> String {
        format!("crm.schemas.{}.read", self.scope_segment())
    }

    fn scope_segment(&self) -> &str {
        let segment = self.path_segment();
        if segment.starts_with("2-") || segment.starts_with("p_") {
            "custom"
        } else {
            segment
        }
    }

    /// Deals (`deals`).
    pub fn deals() -> Self {
        ObjectType::Other("deals".into())
    }

    /// Products (`products`), matched to line items by their SKU (`hs_sku`).
    pub fn products() -> Self {
        ObjectType::Other("products".into())
    }

    /// Line items (`line_items`): a product (`hs_product_id`) in a quantity, on a deal.
    pub fn line_items() -> Self {
        ObjectType::Other("line_items".into())
    }
}

impl FromStr for ObjectType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.trim();
        Ok(match name.to_ascii_lowercase().as_str() {
            "company" | "companies" => ObjectType::Companies,
            "contact" | "contacts" => ObjectType::Contacts,
            "deal" | "deals" => ObjectType::Other("deals".into()),
            "product" | "products" => ObjectType::Other("products".into()),
            "line_item" | "line_items" => ObjectType::Other("line_items".into()),
            "ticket" | "tickets" => ObjectType::Other("tickets".into()),
            "" => return Err(Error::Config("empty object type".into())),
            _ if name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                ObjectType::Other(name.to_string())
            }
            _ => {
                return Err(Error::Config(format!(
                    "invalid object type {name:?}: use company, contact, an object name like deals, or an id like 2-1234"
                )));
            }
        })
    }
}

impl TryFrom<String> for ObjectType {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<ObjectType> for String {
    fn from(o: ObjectType) -> String {
        o.path_segment().to_string()
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path_segment())
    }
}

/// A CRM record as HubSpot returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// The record id (`hs_object_id`).
    pub id: String,
    /// Property values; all strings, `None` for a requested property without a value.
    #[serde(default, deserialize_with = "lenient_properties")]
    pub properties: IndexMap<String, Option<String>>,
    /// When the record was created.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the record last changed.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Whether the record is archived (deleted).
    #[serde(default)]
    pub archived: bool,
}

impl Object {
    /// A property's value, if set.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// Property values are strings, but a lenient reader keeps a stray number or boolean.
fn lenient_properties<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, Option<String>>, D::Error> {
    let raw: Option<IndexMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                other => Some(other.to_string()),
            };
            (k, v)
        })
        .collect())
}

/// The values written to one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteInput {
    /// Property values, as HubSpot wants them: strings (see [`crate::values`] for dates).
    pub properties: IndexMap<String, String>,
    /// Associations to create with the record (create only).
    #[serde(default)]
    pub associations: Vec<Association>,
}

impl WriteInput {
    /// An input with these properties and no associations.
    pub fn new<K: Into<String>, V: Into<String>>(props: impl IntoIterator<Item = (K, V)>) -> Self {
        WriteInput {
            properties: props
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            associations: Vec::new(),
        }
    }
}

/// An association made when a record is created, e.g. a contact to its company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    /// The id of the record to associate with.
    pub to_id: String,
    /// One or more association types.
    pub types: Vec<AssociationType>,
}

/// An association type (`associationCategory`, `associationTypeId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationType {
    /// `HUBSPOT_DEFINED`, `USER_DEFINED` or `INTEGRATOR_DEFINED`.
    pub category: String,
    /// The type id, e.g. 279 (contact → company, primary is 1).
    pub type_id: u32,
}

impl Association {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "to": { "id": self.to_id },
            "types": self.types.iter().map(|t| serde_json::json!({
                "associationCategory": t.category,
                "associationTypeId": t.type_id,
            })).collect::<Vec<_>>(),
        })
    }
}

impl WriteInput {
    /// The body of a single create, `{properties, associations}`.
    pub(crate) fn create_json(&self) -> serde_json::Value {
        serde_json::json!({
            "properties": self.properties,
            "associations": self.associations.iter().map(Association::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Options of [`Client::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Page size (HubSpot's default 10; 100 is the usual maximum).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub after: Option<String>,
    /// Properties to return (HubSpot's defaults when empty).
    pub properties: Vec<String>,
    /// Return only archived records.
    pub archived: bool,
}

/// One page of records and the cursor of the next, if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records.
    pub results: Vec<Object>,
    /// `paging.next.after`; `None` on the last page.
    pub after: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawPage {
    #[serde(default)]
    pub results: Vec<Object>,
    #[serde(default)]
    pub paging: Option<Paging>,
    #[serde(default)]
    pub total: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

#[derive(Deserialize)]
pub(crate) struct NextPage {
    #[serde(default, deserialize_with = "cursor")]
    pub after: Option<String>,
}

/// The cursor is a string, but old answers had a number.
fn cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

impl RawPage {
    pub(crate) fn next_after(&self) -> Option<String> {
        self.paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .and_then(|n| n.after.clone())
    }
}

/// Percent-encodes one path segment (ids by `idProperty` are e-mails and the like).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn properties_query(properties: &[String]) -> Option<(String, String)> {
    (!properties.is_empty()).then(|| ("properties".to_string(), properties.join(",")))
}

impl Client {
    /// One record by id, or by the unique property `id_property`; `None` when there is none.
    pub async fn get(
        &self,
        object: &ObjectType,
        id: &str,
        id_property: Option<&str>,
        properties: &[String],
    ) -> Result<Option<Object>, Error> {
        let mut query: Vec<(String, String)> = properties_query(properties).into_iter().collect();
        if let Some(p) = id_property {
            query.push(("idProperty".into(), p.into()));
        }
        let path = self.paths().object(object, id);
        match self.send_json(&Call::get(path, query)).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of records in id order.
    pub async fn list(&self, object: &ObjectType, request: &ListRequest) -> Result<Page, Error> {
        let mut query: Vec<(String, String)> =
            properties_query(&request.properties).into_iter().collect();
        if let Some(limit) = request.limit {
            query.push(("limit".into(), limit.to_string()));
        }
        if let Some(after) = &request.after {
            query.push(("after".into(), after.clone()));
        }
        if request.archived {
            query.push(("archived".into(), "true".into()));
        }
        let raw: RawPage = self
            .send_json(&Call::get(self.paths().objects(object), query))
            .await?;
        let after = raw.next_after();
        Ok(Page {
            results: raw.results,
            after,
        })
    }

    /// Creates one record. If the answer is lost, the record is looked up by the type's unique
    /// property before anything is sent again; without one the error is [`Error::Unknown`].
    pub async fn create(&self, object: &ObjectType, input: &WriteInput) -> Result<Object, Error> {
        let mut call = Call::post(self.paths().objects(object), input.create_json());
        call.write = true;
        call.idempotent = false;
        let unique = object.unique_property().and_then(|p| {
            input
                .properties
                .get(p)
                .filter(|v| !v.is_empty())
                .map(|v| (p, v))
        });
        let attempts = self.inner.config.retry.max_attempts;
        let mut last = None;
        for _ in 0..attempts {
            match self.send_json::<Object>(&call).await {
                Ok(o) => return Ok(o),
                Err(e) if is_ambiguous(&e) => {
                    let Some((prop, value)) = unique else {
                        return Err(Error::Unknown(format!(
                            "create of a {object} record may or may not have happened ({e}); it has no unique property to check"
                        )));
                    };
                    match self.get(object, value, Some(prop), &[]).await {
                        Ok(Some(found)) => return Ok(found),
                        Ok(None) => last = Some(e),
                        Err(check) => {
                            return Err(Error::Unknown(format!(
                                "create of {prop}={value} may or may not have happened ({e}); checking failed: {check}"
                            )));
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unknown("create not attempted".into())))
    }

    /// Updates one record by id, or by the unique property `id_property`.
    pub async fn update(
        &self,
        object: &ObjectType,
        id: &str,
        id_property: Option<&str>,
        input: &WriteInput,
    ) -> Result<Object, Error> {
        let path = self.paths().object(object, id);
        let mut call = Call::post(path, serde_json::json!({ "properties": input.properties }));
        call.method = reqwest::Method::PATCH;
        call.write = true;
        if let Some(p) = id_property {
            call.query.push(("idProperty".into(), p.into()));
        }
        self.send_json(&call).await
    }

    /// Archives (deletes) one record; HubSpot keeps it restorable for 90 days. Archiving a
    /// record that is already gone succeeds too, so it is safe to repeat.
    pub async fn archive(&self, object: &ObjectType, id: &str) -> Result<(), Error> {
        let mut call = Call::get(self.paths().object(object, id), Vec::new());
        call.method = reqwest::Method::DELETE;
        call.write = true;
        self.send(&call).await.map(|_| ())
    }

    /// Merges record `id_to_merge` into `primary_id` (same type); answers the surviving record.
    /// HubSpot keeps the primary's id; the merged id then stands for it in single reads and
    /// writes. Not sent again after a lost answer: a second merge of the same pair is refused.
    pub async fn merge(
        &self,
        object: &ObjectType,
        primary_id: &str,
        id_to_merge: &str,
    ) -> Result<Object, Error> {
        let body = serde_json::json!({
            "primaryObjectId": primary_id,
            "objectIdToMerge": id_to_merge,
        });
        let mut call = Call::post(self.paths().merge(object), body);
        call.write = true;
        call.idempotent = false;
        self.send_json(&call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types_parse() {
        assert_eq!(
            "company".parse::<ObjectType>().unwrap(),
            ObjectType::Companies
        );
        assert_eq!(
            "Contacts".parse::<ObjectType>().unwrap(),
            ObjectType::Contacts
        );
        let deals: ObjectType = "deal".parse().unwrap();
        assert_eq!(deals.path_segment(), "deals");
        assert_eq!(deals.last_modified_property(), "hs_lastmodifieddate");
        assert_eq!(
            ObjectType::Contacts.last_modified_property(),
            "lastmodifieddate"
        );
        let custom: ObjectType = "2-1234".parse().unwrap();
        assert_eq!(custom.path_segment(), "2-1234");
        assert_eq!(ObjectType::line_items(), "line_item".parse().unwrap());
        assert_eq!(
            ObjectType::line_items().scope(true),
            "crm.objects.line_items.write"
        );
        assert_eq!(
            ObjectType::Contacts.scope(false),
            "crm.objects.contacts.read"
        );
        assert_eq!(custom.scope(false), "crm.objects.custom.read");
        assert_eq!(
            ObjectType::Companies.schema_scope(),
            "crm.schemas.companies.read"
        );
        assert!("a/b".parse::<ObjectType>().is_err());
        assert!("".parse::<ObjectType>().is_err());
    }

    #[test]
    fn object_reads_nulls_and_numbers() {
        let o: Object = serde_json::from_str(
            r#"{"id":"1","properties":{"email":"a@b.c","age":3,"phone":null},"createdAt":"2024-01-17T19:55:04.281Z","updatedAt":"2024-01-17T19:55:04.281Z","archived":false}"#,
        )
        .unwrap();
        assert_eq!(o.property("email"), Some("a@b.c"));
        assert_eq!(o.property("age"), Some("3"));
        assert_eq!(o.property("phone"), None);
        assert!(o.created_at.is_some());
    }

    #[test]
    fn association_shape() {
        let mut input = WriteInput::new([("email", "a@b.c")]);
        input.associations.push(Association {
            to_id: "42".into(),
            types: vec![AssociationType {
                category: "HUBSPOT_DEFINED".into(),
                type_id: 279,
            }],
        });
        assert_eq!(
            input.create_json(),
            serde_json::json!({"properties":{"email":"a@b.c"},"associations":[{"to":{"id":"42"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":279}]}]})
        );
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("a+b@x.io"), "a%2Bb%40x.io");
    }
}
