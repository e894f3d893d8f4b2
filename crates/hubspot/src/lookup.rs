//! Finding records by their natural keys, many at once: after a crash the caller must learn
//! whether the creates it announced happened, for whole pages of records, in a few calls.
//!
//! - [`Client::find_by_unique`]: batch read by a unique property (`idProperty`), 100 values
//!   a call; exact, immediate (no search index involved).
//! - [`Client::find_by_property`]: search with an `IN` filter for a property that is not unique
//!   (a company's `domain`); every id per value. Search lags writes.

use std::collections::{HashMap, HashSet};

use crate::Client;
use crate::batch::norm;
use crate::error::Error;
use crate::objects::{Object, ObjectType};
use crate::search::{Filter, FilterGroup, MAX_SEARCH_LIMIT, Operator, SearchRequest, Sort};

/// Values in one `IN` filter at most.
pub const IN_FILTER_MAX_VALUES: usize = 100;
/// Bytes of values in one `IN` filter at most, to keep each search request small.
pub const IN_FILTER_MAX_BYTES: usize = 8 * 1024;

/// The distinct non-empty trimmed values, in first-seen order.
fn distinct(values: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty() && seen.insert(v.to_string()))
        .map(str::to_string)
        .collect()
}

/// Maps each found record's value of `property` back to the caller's values: those equal to
/// it, or, when none is, those equal up to case and surrounding spaces.
struct Matcher<'a> {
    exact: HashMap<&'a str, Vec<&'a String>>,
    loose: HashMap<String, Vec<&'a String>>,
}

impl<'a> Matcher<'a> {
    fn new(values: &'a [String]) -> Self {
        let mut exact: HashMap<&str, Vec<&String>> = HashMap::new();
        let mut loose: HashMap<String, Vec<&String>> = HashMap::new();
        for v in values.iter().filter(|v| !v.trim().is_empty()) {
            exact.entry(v.trim()).or_default().push(v);
            loose.entry(norm(v)).or_default().push(v);
        }
        Matcher { exact, loose }
    }

    fn inputs(&self, found: &str) -> &[&'a String] {
        self.exact
            .get(found.trim())
            .or_else(|| self.loose.get(&norm(found)))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Splits values into `IN` filter chunks: at most [`IN_FILTER_MAX_VALUES`] values and
/// [`IN_FILTER_MAX_BYTES`] bytes each (a single longer value goes alone).
fn in_chunks(values: Vec<String>) -> Vec<Vec<String>> {
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    for v in values {
        let fits = chunks.last().is_some_and(|c| {
            c.len() < IN_FILTER_MAX_VALUES && bytes + v.len() <= IN_FILTER_MAX_BYTES
        });
        if !fits {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += v.len();
        chunks.last_mut().expect("a chunk").push(v);
    }
    chunks
}

impl Client {
    /// The record id for each value of the unique property `property` (contacts: `email`; any
    /// custom property with `hasUniqueValue`), by batch read with `idProperty`, 100 values
    /// ([`crate::BATCH_SIZE`]) a call. Values with no record are absent from the map; keys are the caller's values as
    /// given. Reads are exact and immediate (no search index lag).
    pub async fn find_by_unique(
        &self,
        object: &ObjectType,
        property: &str,
        values: &[String],
    ) -> Result<HashMap<String, String>, Error> {
        let ask = distinct(values);
        if ask.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self
            .batch_read(object, &ask, Some(property), &[property.to_string()])
            .await?;
        let matcher = Matcher::new(values);
        let mut out = HashMap::new();
        for o in found {
            let Some(v) = o.property(property) else {
                continue;
            };
            for input in matcher.inputs(v) {
                out.insert((*input).clone(), o.id.clone());
            }
        }
        Ok(out)
    }

    /// Every record id for each value of `property`, a property that need not be unique (a
    /// company's `domain`): CRM search with an `IN` filter of at most 100 values (and 8 KiB) a
    /// query, plus `createdate >= created_since_ms` when given, paged by record id so that no
    /// query runs into search's 10,000-result cap. Ids come in ascending order; values with no
    /// record are absent; keys are the caller's values as given. String values are matched
    /// case-insensitively (they are sent in lower case, as HubSpot's `IN` wants).
    ///
    /// Search lags writes: a record created moments ago may not be found yet. A caller that
    /// must know whether a create happened has to allow for that lag (wait it out, or look
    /// again later) before it takes "absent" for "not created".
    pub async fn find_by_property(
        &self,
        object: &ObjectType,
        property: &str,
        values: &[String],
        created_since_ms: Option<i64>,
    ) -> Result<HashMap<String, Vec<String>>, Error> {
        let ask: Vec<String> = distinct(&values.iter().map(|v| norm(v)).collect::<Vec<_>>());
        let matcher = Matcher::new(values);
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in in_chunks(ask) {
            let mut last_id: Option<String> = None;
            loop {
                let mut filters = vec![Filter::any_of(property, Operator::In, chunk.clone())];
                if let Some(ms) = created_since_ms {
                    filters.push(Filter::new("createdate", Operator::Gte, ms.to_string()));
                }
                if let Some(id) = &last_id {
                    filters.push(Filter::new("hs_object_id", Operator::Gt, id.clone()));
                }
                let request = SearchRequest {
                    filter_groups: vec![FilterGroup { filters }],
                    sorts: vec![Sort::asc("hs_object_id")],
                    properties: vec![property.to_string()],
                    limit: MAX_SEARCH_LIMIT,
                    ..SearchRequest::default()
                };
                let page = self.search(object, &request).await?;
                let more = page.after.is_some() && !page.results.is_empty();
                last_id = page.results.last().map(|o: &Object| o.id.clone());
                for o in page.results {
                    let Some(v) = o.property(property) else {
                        continue;
                    };
                    for input in matcher.inputs(v) {
                        let ids = out.entry((*input).clone()).or_default();
                        if !ids.contains(&o.id) {
                            ids.push(o.id.clone());
                        }
                    }
                }
                if !more {
                    break;
                }
            }
        }
        for ids in out.values_mut() {
            ids.sort_by_key(|id| (id.len(), id.clone()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_count_and_bytes() {
        let many: Vec<String> = (0..250).map(|i| format!("v{i}")).collect();
        let c = in_chunks(many);
        assert_eq!(
            c.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        let long: Vec<String> = (0..5).map(|i| format!("{i}{}", "x".repeat(3000))).collect();
        let c = in_chunks(long);
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(in_chunks(Vec::new()).is_empty());
    }

    #[test]
    fn matcher_prefers_exact_then_loose() {
        let values = vec!["A1".to_string(), "a1".to_string(), " Acme.io ".to_string()];
        let m = Matcher::new(&values);
        assert_eq!(m.inputs("A1"), [&values[0]]);
        assert_eq!(m.inputs("a1"), [&values[1]]);
        assert_eq!(m.inputs("ACME.IO"), [&values[2]]);
        assert!(m.inputs("nope").is_empty());
        assert_eq!(distinct(&values), vec!["A1", "a1", "Acme.io"]);
    }
}
