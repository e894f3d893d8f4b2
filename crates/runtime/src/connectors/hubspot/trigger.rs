//! HubSpot polling triggers, built on search.
//!
//! Each poll scans the window `[cursor − overlap, now − settle)` of one timestamp property —
//! `createdate` for new records, the object's last-modified property for changes (contacts:
//! `lastmodifieddate`; companies: `hs_lastmodifieddate`) — in ascending order, and hands the
//! records to the flows page by page. Search only pages through 10,000 results per query, so
//! the scan restarts its window at the last timestamp it saw; when more than a page's worth of
//! records share one timestamp it walks that timestamp by `hs_object_id` instead, so any number
//! of identical timestamps is delivered without looping.
//!
//! Flows watching the same object and event on the same connection share one scan (one search
//! per idle poll, [`TriggerGroup`]); each keeps its own cursor and dedupe keys.

use super::object_json;
use crate::connector::{self, TriggerError, TriggerPage, TriggerPoll};
use crate::record::{Item, Record};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivulet_hubspot::{
    Client, Filter, FilterGroup, Object, ObjectType, Operator, SearchRequest, Sort,
};
use rivulet_spec::model::{HubSpotTrigger, TriggerEvent, TriggerObject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// HubSpot's search page size limit.
pub const PAGE_SIZE: u32 = 200;

/// Results one search query can page through.
pub const SEARCH_CAP: usize = 10_000;

/// What a trigger cursor remembers, in HubSpot's own timestamps (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerCursor {
    /// Everything before this (minus the overlap) has been delivered.
    pub ts: i64,
    /// Nothing before this is ever delivered (`start_from`).
    pub floor: i64,
}

impl TriggerCursor {
    /// A cursor that starts at `start` (ms).
    pub fn starting_at(start: i64) -> TriggerCursor {
        TriggerCursor {
            ts: start,
            floor: start,
        }
    }

    /// The lowest timestamp the next poll looks at.
    pub fn lower(&self, overlap_ms: i64) -> i64 {
        self.ts.saturating_sub(overlap_ms).max(self.floor)
    }
}

/// The timestamp property a trigger watches.
pub fn watched_property(object: TriggerObject, event: TriggerEvent) -> &'static str {
    match (event, object) {
        (TriggerEvent::NewRecord, _) => "createdate",
        (TriggerEvent::NewOrUpdatedRecord, TriggerObject::Contact) => "lastmodifieddate",
        (TriggerEvent::NewOrUpdatedRecord, TriggerObject::Company) => "hs_lastmodifieddate",
    }
}

/// The HubSpot object type of a trigger object.
pub fn object_type(object: TriggerObject) -> ObjectType {
    match object {
        TriggerObject::Company => ObjectType::Companies,
        TriggerObject::Contact => ObjectType::Contacts,
    }
}

/// A timestamp property's value in epoch ms: HubSpot returns ISO 8601 in v3 responses and
/// accepts (and sometimes returns) epoch milliseconds.
pub fn parse_timestamp(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The watched timestamp of a record, falling back to the top-level `createdAt`/`updatedAt`.
pub fn record_timestamp(object: &Object, property: &str) -> Option<i64> {
    object
        .property(property)
        .and_then(parse_timestamp)
        .or_else(|| {
            let top = if property == "createdate" {
                object.created_at
            } else {
                object.updated_at
            };
            top.map(|t| t.timestamp_millis())
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `lower ≤ P < upper` (or `lower < P` when `strict`), sorted by P.
    Range { lower: i64, strict: bool },
    /// `P = ts` and `hs_object_id > after_id`, sorted by id.
    Tie { ts: i64, after_id: u64 },
}

/// One pass over a window, page by page.
pub struct Scan {
    client: Client,
    object: ObjectType,
    property: &'static str,
    properties: Vec<String>,
    upper: i64,
    mode: Mode,
    after: Option<String>,
    fetched: usize,
    max_seen: Option<i64>,
    done: bool,
    /// Search calls made, for the shared-polling figure.
    pub calls: u64,
}

/// A scan failure (the search call failed after the client's retries).
pub type ScanError = rivulet_hubspot::Error;

impl Scan {
    /// A scan of `[lower, upper)` on `property`, fetching `properties`.
    pub fn new(
        client: Client,
        object: ObjectType,
        property: &'static str,
        properties: Vec<String>,
        lower: i64,
        upper: i64,
    ) -> Scan {
        let mut properties = properties;
        for p in ["hs_object_id", "createdate", property] {
            if !properties.iter().any(|q| q == p) {
                properties.push(p.to_string());
            }
        }
        Scan {
            client,
            object,
            property,
            properties,
            upper,
            mode: Mode::Range {
                lower,
                strict: false,
            },
            after: None,
            fetched: 0,
            max_seen: None,
            done: lower >= upper,
            calls: 0,
        }
    }

    fn request(&self) -> SearchRequest {
        let filters = match self.mode {
            Mode::Range { lower, strict } => vec![
                Filter::new(
                    self.property,
                    if strict { Operator::Gt } else { Operator::Gte },
                    lower.to_string(),
                ),
                Filter::new(self.property, Operator::Lt, self.upper.to_string()),
            ],
            Mode::Tie { ts, after_id } => vec![
                Filter::new(self.property, Operator::Eq, ts.to_string()),
                Filter::new("hs_object_id", Operator::Gt, after_id.to_string()),
            ],
        };
        let sort = match self.mode {
            Mode::Range { .. } => Sort::asc(self.property),
            Mode::Tie { .. } => Sort::asc("hs_object_id"),
        };
        SearchRequest {
            filter_groups: vec![FilterGroup { filters }],
            sorts: vec![sort],
            properties: self.properties.clone(),
            query: None,
            limit: PAGE_SIZE,
            after: self.after.clone(),
        }
    }

    /// The next page, in ascending timestamp order; `None` when the window is exhausted.
    ///
    /// Search pages through at most 10,000 results per query, and a query is done only when
    /// its `total` has been read: when the next page would pass the cap, or paging ends while
    /// `total` says more records match, the window is narrowed — restarted at the newest
    /// timestamp read (its records come again and are deduplicated), or, when the whole query
    /// shares one timestamp, walked by `hs_object_id` — and no request ever pages past the cap.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Object>>, ScanError> {
        while !self.done {
            let page = self.client.search(&self.object, &self.request()).await?;
            self.calls += 1;
            let results = page.results;
            self.fetched += results.len();
            // A server that leaves `total` out still says "more" with a cursor.
            let total = (page.total as usize).max(self.fetched + usize::from(page.after.is_some()));
            let unread = self.fetched < total && !results.is_empty();
            let can_page = page.after.is_some() && self.fetched + PAGE_SIZE as usize <= SEARCH_CAP;
            match self.mode {
                Mode::Range { lower, .. } => {
                    let page_max = results
                        .iter()
                        .filter_map(|o| record_timestamp(o, self.property))
                        .max();
                    self.max_seen = self.max_seen.max(page_max);
                    if unread && can_page {
                        self.after = page.after;
                    } else if unread {
                        let t = self.max_seen.unwrap_or(lower);
                        self.restart(if t > lower {
                            Mode::Range {
                                lower: t,
                                strict: false,
                            }
                        } else {
                            Mode::Tie { ts: t, after_id: 0 }
                        });
                    } else {
                        self.done = true;
                    }
                }
                Mode::Tie { ts, after_id } => {
                    let last_id = results
                        .iter()
                        .filter_map(|o| o.id.parse::<u64>().ok())
                        .max()
                        .unwrap_or(after_id);
                    if unread && can_page {
                        self.after = page.after;
                    } else if unread {
                        self.restart(Mode::Tie {
                            ts,
                            after_id: last_id,
                        });
                    } else {
                        // That timestamp is done; carry on after it.
                        self.restart(Mode::Range {
                            lower: ts,
                            strict: true,
                        });
                    }
                }
            }
            if !results.is_empty() {
                return Ok(Some(results));
            }
        }
        Ok(None)
    }

    fn restart(&mut self, mode: Mode) {
        self.mode = mode;
        self.after = None;
        self.fetched = 0;
    }
}

/// The flows polling one connection, object and event: one scan per poll, each flow with its
/// own cursor and window.
pub struct TriggerGroup {
    client: Client,
    members: Vec<HubSpotTrigger>,
    object: TriggerObject,
    event: TriggerEvent,
    /// Every member's properties, once each.
    properties: Vec<String>,
}

impl TriggerGroup {
    /// The group of `members` (which share connection, object and event).
    pub fn new(client: Client, members: Vec<HubSpotTrigger>) -> TriggerGroup {
        let (object, event) = members
            .first()
            .map_or((TriggerObject::Contact, TriggerEvent::NewRecord), |t| {
                (t.object, t.on)
            });
        let mut properties: Vec<String> = Vec::new();
        for t in &members {
            for p in &t.properties {
                if !properties.contains(p) {
                    properties.push(p.clone());
                }
            }
        }
        TriggerGroup {
            client,
            members,
            object,
            event,
            properties,
        }
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl connector::TriggerGroup for TriggerGroup {
    fn poll_every(&self) -> std::time::Duration {
        self.members
            .iter()
            .map(|t| t.poll_every.get())
            .min()
            .unwrap_or(std::time::Duration::from_secs(60))
    }

    fn cursor_identity(&self, member: usize) -> String {
        let connection = self
            .members
            .get(member)
            .map_or("", |t| t.connection.as_str());
        format!(
            "hubspot:{connection}:{}:{}",
            object_type(self.object),
            watched_property(self.object, self.event)
        )
    }

    fn start_cursor(&self, member: usize, now: DateTime<Utc>) -> Value {
        let now_ms = now.timestamp_millis();
        let start = match self.members.get(member).map(|t| t.start_from.as_str()) {
            Some("beginning") => 0,
            Some("now") | None => now_ms,
            Some(instant) => {
                DateTime::parse_from_rfc3339(instant).map_or(now_ms, |t| t.timestamp_millis())
            }
        };
        serde_json::to_value(TriggerCursor::starting_at(start)).unwrap_or(Value::Null)
    }

    fn check_cursor(&self, state: &Value) -> Result<(), String> {
        serde_json::from_value::<TriggerCursor>(state.clone())
            .map(|_| ())
            .map_err(|e| format!("it is not a HubSpot trigger cursor ({e})"))
    }

    async fn poll(
        &self,
        cursors: Vec<Option<Value>>,
        now: DateTime<Utc>,
    ) -> Result<Box<dyn TriggerPoll>, TriggerError> {
        let settle = self
            .members
            .iter()
            .map(|t| t.settle.get())
            .max()
            .unwrap_or_default();
        let upper = now.timestamp_millis().saturating_sub(ms(settle));
        let property = watched_property(self.object, self.event);
        let mut members = Vec::with_capacity(cursors.len());
        for (t, state) in self.members.iter().zip(cursors) {
            let Some(state) = state else {
                members.push(None);
                continue;
            };
            let cursor: TriggerCursor = serde_json::from_value(state).map_err(TriggerError::new)?;
            members.push(Some(Member {
                lower: cursor.lower(ms(t.overlap.get())),
                overlap: ms(t.overlap.get()),
                cursor,
            }));
        }
        let lower = members
            .iter()
            .flatten()
            .map(|m| m.lower)
            .min()
            .unwrap_or(upper);
        let scan = Scan::new(
            self.client.clone(),
            object_type(self.object),
            property,
            self.properties.clone(),
            lower,
            upper,
        );
        Ok(Box::new(Poll {
            scan,
            members,
            upper,
            object: self.object,
            property,
        }))
    }
}

/// One member's window during a poll.
struct Member {
    cursor: TriggerCursor,
    lower: i64,
    overlap: i64,
}

/// One poll of a group: a scan of the union of the members' windows, split by member.
struct Poll {
    scan: Scan,
    members: Vec<Option<Member>>,
    upper: i64,
    object: TriggerObject,
    property: &'static str,
}

#[async_trait]
impl TriggerPoll for Poll {
    async fn next_page(&mut self) -> Result<Option<TriggerPage>, TriggerError> {
        let Some(page) = self.scan.next_page().await.map_err(TriggerError::new)? else {
            return Ok(None);
        };
        let property = self.property;
        let page_max = page
            .iter()
            .filter_map(|o| record_timestamp(o, property))
            .max();
        let mut out = TriggerPage::default();
        for m in &mut self.members {
            let Some(m) = m else {
                out.members.push((Vec::new(), Value::Null));
                continue;
            };
            let mut items = Vec::new();
            for o in &page {
                let Some(ts) = record_timestamp(o, property) else {
                    continue;
                };
                if ts < m.lower || ts >= self.upper {
                    continue;
                }
                items.push(Item::Record(Record {
                    key: o.id.clone(),
                    version: ts.to_string(),
                    data: object_json(o),
                    origin: format!("{} {}", object_type(self.object), o.id),
                }));
            }
            // Pages come in ascending order: everything up to this page's newest is handed out.
            if let Some(max) = page_max {
                m.cursor.ts = m.cursor.ts.max(max);
            }
            out.members
                .push((items, serde_json::to_value(m.cursor).unwrap_or(Value::Null)));
        }
        Ok(Some(out))
    }

    fn finish(&mut self) -> Vec<Value> {
        // The whole window is done: the next poll starts at its end (minus the overlap).
        let upper = self.upper;
        self.members
            .iter_mut()
            .map(|m| match m {
                Some(m) => {
                    m.cursor.ts = m.cursor.ts.max(upper);
                    serde_json::to_value(m.cursor).unwrap_or(Value::Null)
                }
                None => Value::Null,
            })
            .collect()
    }

    fn prune_before(&self, member: usize) -> Option<i64> {
        // A day behind the lowest the next poll will look at.
        self.members
            .get(member)?
            .as_ref()
            .map(|m| m.cursor.lower(m.overlap).saturating_sub(86_400_000))
    }

    fn calls(&self) -> u64 {
        self.scan.calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_forms() {
        assert_eq!(parse_timestamp("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_timestamp("2024-01-17T19:55:04.281Z"),
            Some(1_705_521_304_281)
        );
        assert_eq!(parse_timestamp("soon"), None);
    }

    #[test]
    fn the_lower_bound_respects_the_floor() {
        let c = TriggerCursor {
            ts: 10_000,
            floor: 9_000,
        };
        assert_eq!(c.lower(5_000), 9_000);
        assert_eq!(c.lower(500), 9_500);
    }

    #[test]
    fn watches_the_documented_properties() {
        assert_eq!(
            watched_property(TriggerObject::Contact, TriggerEvent::NewOrUpdatedRecord),
            "lastmodifieddate"
        );
        assert_eq!(
            watched_property(TriggerObject::Company, TriggerEvent::NewOrUpdatedRecord),
            "hs_lastmodifieddate"
        );
        assert_eq!(
            watched_property(TriggerObject::Company, TriggerEvent::NewRecord),
            "createdate"
        );
    }
}
