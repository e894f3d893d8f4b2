//! CRM search: filter groups (OR of ANDs), sorts as objects, up to 200 records a page, with its
//! own budget (HubSpot limits search to 5 requests per second per account, apart from the
//! 10-second burst limit).

use serde::{Deserialize, Serialize};

use crate::Client;
use crate::client::{Budget, Call};
use crate::error::Error;
use crate::objects::{Object, ObjectType, RawPage};

/// HubSpot's largest search page.
pub const MAX_SEARCH_LIMIT: u32 = 200;

/// A search request, serialised as HubSpot documents it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// Groups are ORed; the filters within a group are ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_groups: Vec<FilterGroup>,
    /// Sort order; HubSpot wants objects here (strings are silently ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sorts: Vec<Sort>,
    /// Properties to return.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
    /// Free-text query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Page size, at most 200 (larger values are lowered).
    pub limit: u32,
    /// Cursor from the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Filters that must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterGroup {
    /// The filters.
    pub filters: Vec<Filter>,
}

/// One condition on a property. Values are strings, dates as epoch milliseconds
/// (see [`crate::values`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// The property.
    pub property_name: String,
    /// The comparison.
    pub operator: Operator,
    /// The value (most operators; the low bound of BETWEEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The high bound of BETWEEN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    /// The values of IN and NOT_IN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl Filter {
    /// `property operator value`.
    pub fn new(property: impl Into<String>, operator: Operator, value: impl Into<String>) -> Self {
        Filter {
            property_name: property.into(),
            operator,
            value: Some(value.into()),
            high_value: None,
            values: None,
        }
    }

    /// `property IN values` (or NOT_IN).
    pub fn any_of(property: impl Into<String>, operator: Operator, values: Vec<String>) -> Self {
        Filter {
            property_name: property.into(),
            operator,
            value: None,
            high_value: None,
            values: Some(values),
        }
    }

    /// `low <= property <= high`.
    pub fn between(
        property: impl Into<String>,
        low: impl Into<String>,
        high: impl Into<String>,
    ) -> Self {
        Filter {
            property_name: property.into(),
            operator: Operator::Between,
            value: Some(low.into()),
            high_value: Some(high.into()),
            values: None,
        }
    }

    /// `property HAS_PROPERTY` (or NOT_HAS_PROPERTY).
    pub fn exists(property: impl Into<String>, operator: Operator) -> Self {
        Filter {
            property_name: property.into(),
            operator,
            value: None,
            high_value: None,
            values: None,
        }
    }
}

/// Search operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum Operator {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

/// A sort key, `{"propertyName": …, "direction": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    /// The property.
    pub property_name: String,
    /// The direction.
    pub direction: Direction,
}

impl Sort {
    /// Ascending by `property`.
    pub fn asc(property: impl Into<String>) -> Self {
        Sort {
            property_name: property.into(),
            direction: Direction::Ascending,
        }
    }

    /// Descending by `property`.
    pub fn desc(property: impl Into<String>) -> Self {
        Sort {
            property_name: property.into(),
            direction: Direction::Descending,
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// Matches in all pages (HubSpot stops paging at 10,000).
    pub total: u64,
    /// This page's records.
    pub results: Vec<Object>,
    /// Cursor of the next page; `None` on the last.
    pub after: Option<String>,
}

impl Client {
    /// One page of a search.
    pub async fn search(
        &self,
        object: &ObjectType,
        request: &SearchRequest,
    ) -> Result<SearchPage, Error> {
        let mut request = request.clone();
        request.limit = request.limit.clamp(1, MAX_SEARCH_LIMIT);
        let body = serde_json::to_value(&request).map_err(|e| Error::Config(e.to_string()))?;
        let mut call = Call::post(self.paths().search(object), body);
        call.budget = Budget::Search;
        let raw: RawPage = self.send_json(&call).await?;
        let after = raw.next_after();
        Ok(SearchPage {
            total: raw.total.unwrap_or(raw.results.len() as u64),
            results: raw.results,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_hubspot_documents() {
        let req = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: vec![
                    Filter::new("lastmodifieddate", Operator::Gte, "1700000000000"),
                    Filter::any_of("lifecyclestage", Operator::In, vec!["lead".into()]),
                ],
            }],
            sorts: vec![Sort::asc("lastmodifieddate")],
            properties: vec!["email".into()],
            limit: 200,
            after: Some("NTI1Cg%3D%3D".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1700000000000"},
                    {"propertyName": "lifecyclestage", "operator": "IN", "values": ["lead"]}
                ]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["email"],
                "limit": 200,
                "after": "NTI1Cg%3D%3D"
            })
        );
    }
}
