//! HubSpot polling triggers: search for what changed, list for what already exists.
//!
//! A trigger watches one timestamp property — `createdate` for new records, the object's
//! last-modified property for changes (contacts: `lastmodifieddate`; companies:
//! `hs_lastmodifieddate`). Each poll reads two windows of it in one search:
//!
//! - the **leading** window `[cursor, now − settle)`: what changed since the last poll;
//! - the **late** window: windows read at their leading edge at least `late_after` ago,
//!   searched once more for records HubSpot's search index showed late.
//!
//! So a record costs at most two reads, an idle poll one search per group, and a record the
//! index shows up to `settle + late_after` after its change is still delivered; what the late
//! pass finds again is dropped by the (id, timestamp) dedupe. The windows are read in
//! ascending order. Search only pages through 10,000 results per query, so the scan restarts
//! at the last timestamp it saw; when more than a page's worth of records share one timestamp
//! it walks that timestamp by `hs_object_id` instead, so any number of identical timestamps is
//! delivered without looping.
//!
//! A trigger starting from `beginning` (or from an instant with more than 10,000 matching
//! records, or reset there) **backfills**: it lists every record by id (`GET
//! /crm/v3/objects/{type}`: the connection's 10-second budget, not search's 5 per second, and
//! no 10,000 cap), then hands over to search from the instant the backfill started, minus
//! settle, so whatever changed while it listed is searched for afterwards (and the late pass
//! checks the `late_after` before that instant once).
//!
//! The cursor (JSON, committed with each page's outcomes):
//! `{"ts": leading edge, "floor": start_from, "late": late pass edge, "backfill": {"after":
//! list cursor, "until": hand-over instant}}`, instants in epoch ms. Cursors written before the
//! late pass (`{"ts", "floor"}`) load with `late = ts − overlap`.
//!
//! Flows watching the same object and event on the same connection share one scan
//! ([`TriggerGroup`]); each keeps its own cursor and dedupe keys.

use super::object_json;
use crate::connector::{self, TriggerError, TriggerPage, TriggerPoll};
use crate::record::{Item, Record};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivulet_hubspot::{
    Client, Filter, FilterGroup, ListRequest, Object, ObjectType, Operator, SearchRequest, Sort,
};
use rivulet_spec::connectors::hubspot::trigger_properties;
pub use rivulet_spec::connectors::hubspot::watched_property;
use rivulet_spec::model::{HubSpotTrigger, TriggerEvent, TriggerObject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// HubSpot's search page size limit.
pub const PAGE_SIZE: u32 = 200;

/// HubSpot's list page size limit.
pub const LIST_PAGE_SIZE: u32 = 100;

/// Results one search query can page through.
pub const SEARCH_CAP: usize = 10_000;

/// Windows one search reads at most (HubSpot takes five filter groups; a poll needs two).
const MAX_RANGES: usize = 3;

/// What a trigger cursor remembers, in HubSpot's own timestamps (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerCursor {
    /// The leading edge: every record before it has been read once.
    pub ts: i64,
    /// Nothing before this is ever delivered (`start_from`).
    pub floor: i64,
    /// The late pass's edge (≤ `ts`): every record before it has been read a second time.
    /// Absent in cursors written before the late pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<i64>,
    /// A backfill by listing under way; `ts` and `late` take over when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
}

/// Where a backfill by listing stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// HubSpot's paging cursor of the next list page (absent: the first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Where search takes over: the instant the backfill started, minus settle (ms). Absent
    /// until its first poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Started from an instant: the first poll counts the records since it and backfills only
    /// when search would have to page past its 10,000-result cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
}

impl TriggerCursor {
    /// A cursor that searches from `start` (ms).
    pub fn starting_at(start: i64) -> TriggerCursor {
        TriggerCursor {
            ts: start,
            floor: start,
            late: Some(start),
            backfill: None,
        }
    }

    /// A cursor that lists every record from `floor` on, then searches.
    pub fn backfilling(floor: i64, probe: bool) -> TriggerCursor {
        TriggerCursor {
            backfill: Some(Backfill {
                probe,
                ..Backfill::default()
            }),
            ..TriggerCursor::starting_at(floor)
        }
    }

    /// The late pass's edge; a cursor from before the late pass had read `overlap` back on
    /// every poll, so everything before `ts − overlap` counts as read twice.
    pub fn late_edge(&self, overlap_ms: i64) -> i64 {
        self.late
            .unwrap_or_else(|| self.ts.saturating_sub(overlap_ms))
            .max(self.floor)
            .min(self.ts)
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
    /// The ranges' parts at or after `lower` (after it when `strict`), sorted by P.
    Range { lower: i64, strict: bool },
    /// `P = ts` and `hs_object_id > after_id`, sorted by id.
    Tie { ts: i64, after_id: u64 },
}

/// One pass over one or more windows of a timestamp property, page by page, in ascending
/// order, as one search (the windows are OR'ed filter groups).
pub struct Scan {
    client: Client,
    object: ObjectType,
    property: &'static str,
    properties: Vec<String>,
    /// Disjoint `[lo, hi)` windows in ascending order.
    ranges: Vec<(i64, i64)>,
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

/// `ranges` sorted, overlapping and touching ones joined, and at most [`MAX_RANGES`] of them
/// (the closest are joined: reading a gap costs records, never misses one).
fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.retain(|(lo, hi)| lo < hi);
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    while out.len() > MAX_RANGES {
        let i = (1..out.len())
            .min_by_key(|i| out[*i].0.saturating_sub(out[*i - 1].1))
            .unwrap_or(1);
        out[i - 1].1 = out[i].1;
        out.remove(i);
    }
    out
}

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
        Scan::over(client, object, property, properties, vec![(lower, upper)])
    }

    /// A scan of every `[lo, hi)` window of `ranges` on `property`, in one search.
    pub fn over(
        client: Client,
        object: ObjectType,
        property: &'static str,
        properties: Vec<String>,
        ranges: Vec<(i64, i64)>,
    ) -> Scan {
        let ranges = merge_ranges(ranges);
        let lower = ranges.first().map_or(0, |r| r.0);
        Scan {
            client,
            object,
            property,
            properties: trigger_properties(&properties, property),
            done: ranges.is_empty(),
            ranges,
            mode: Mode::Range {
                lower,
                strict: false,
            },
            after: None,
            fetched: 0,
            max_seen: None,
            calls: 0,
        }
    }

    /// The filter groups of the ranges' parts at or after `lower`.
    fn range_groups(&self, lower: i64, strict: bool) -> Vec<FilterGroup> {
        self.ranges
            .iter()
            .filter(|(_, hi)| *hi > lower)
            .map(|&(lo, hi)| {
                let from = if lo > lower {
                    Filter::new(self.property, Operator::Gte, lo.to_string())
                } else {
                    let op = if strict { Operator::Gt } else { Operator::Gte };
                    Filter::new(self.property, op, lower.to_string())
                };
                FilterGroup {
                    filters: vec![
                        from,
                        Filter::new(self.property, Operator::Lt, hi.to_string()),
                    ],
                }
            })
            .collect()
    }

    fn request(&self) -> SearchRequest {
        let (filter_groups, sort) = match self.mode {
            Mode::Range { lower, strict } => {
                (self.range_groups(lower, strict), Sort::asc(self.property))
            }
            Mode::Tie { ts, after_id } => (
                vec![FilterGroup {
                    filters: vec![
                        Filter::new(self.property, Operator::Eq, ts.to_string()),
                        Filter::new("hs_object_id", Operator::Gt, after_id.to_string()),
                    ],
                }],
                Sort::asc("hs_object_id"),
            ),
        };
        SearchRequest {
            filter_groups,
            sorts: vec![sort],
            properties: self.properties.clone(),
            query: None,
            limit: PAGE_SIZE,
            after: self.after.clone(),
        }
    }

    /// The next page, in ascending timestamp order; `None` when the windows are exhausted.
    ///
    /// Search pages through at most 10,000 results per query, and a query is done only when
    /// its `total` has been read: when the next page would pass the cap, or paging ends while
    /// `total` says more records match, the query is narrowed — restarted at the newest
    /// timestamp read (its records come again and are deduplicated), or, when the whole query
    /// shares one timestamp, walked by `hs_object_id` — and no request ever pages past the cap.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Object>>, ScanError> {
        while !self.done {
            if let Mode::Range { lower, strict } = self.mode
                && self.range_groups(lower, strict).is_empty()
            {
                self.done = true;
                break;
            }
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

/// What a trigger's cursor is of: its connection, object and watched timestamp.
pub fn cursor_identity(t: &HubSpotTrigger) -> String {
    format!(
        "hubspot:{}:{}:{}",
        t.connection,
        object_type(t.object),
        watched_property(t.object, t.on)
    )
}

/// A fresh cursor for `t`, where its `start_from` says, as of `now`: `now` searches from now
/// on, `beginning` backfills by listing, an instant searches from it — or backfills when its
/// first poll counts more records since than one search query can page through.
pub fn start_cursor(t: &HubSpotTrigger, now: DateTime<Utc>) -> Value {
    let now_ms = now.timestamp_millis();
    let cursor = match t.start_from.as_str() {
        "beginning" => TriggerCursor::backfilling(0, false),
        "now" => TriggerCursor::starting_at(now_ms),
        instant => match DateTime::parse_from_rfc3339(instant) {
            Ok(at) if at.timestamp_millis() < now_ms => {
                TriggerCursor::backfilling(at.timestamp_millis(), true)
            }
            Ok(at) => TriggerCursor::starting_at(at.timestamp_millis()),
            Err(_) => TriggerCursor::starting_at(now_ms),
        },
    };
    serde_json::to_value(cursor).unwrap_or(Value::Null)
}

/// The flows polling one connection, object and event: one scan per poll, each flow with its
/// own cursor and windows.
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

    /// How many records changed in `[lower, upper)`: one search call.
    async fn count(&self, lower: i64, upper: i64) -> Result<u64, ScanError> {
        let property = watched_property(self.object, self.event);
        let request = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: vec![
                    Filter::new(property, Operator::Gte, lower.to_string()),
                    Filter::new(property, Operator::Lt, upper.to_string()),
                ],
            }],
            sorts: Vec::new(),
            properties: vec!["hs_object_id".into()],
            query: None,
            limit: 1,
            after: None,
        };
        Ok(self
            .client
            .search(&object_type(self.object), &request)
            .await?
            .total)
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
        match self.members.get(member) {
            Some(t) => start_cursor(t, now),
            None => serde_json::to_value(TriggerCursor::starting_at(now.timestamp_millis()))
                .unwrap_or(Value::Null),
        }
    }

    fn position(&self, cursor: &Value) -> Option<DateTime<Utc>> {
        let cursor: TriggerCursor = serde_json::from_value(cursor.clone()).ok()?;
        // A backfill's position is not a time: it has no lag to report yet.
        match cursor.backfill {
            Some(_) => None,
            None => DateTime::from_timestamp_millis(cursor.ts),
        }
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
        let mut probes = 0;
        let mut members = Vec::with_capacity(cursors.len());
        for (t, state) in self.members.iter().zip(cursors) {
            let Some(state) = state else {
                members.push(None);
                continue;
            };
            let mut cursor: TriggerCursor =
                serde_json::from_value(state).map_err(TriggerError::new)?;
            if cursor.backfill.as_ref().is_some_and(|b| b.probe) {
                probes += 1;
                let matching = self
                    .count(cursor.floor, upper)
                    .await
                    .map_err(TriggerError::new)?;
                cursor.backfill = (matching > SEARCH_CAP as u64).then(Backfill::default);
            }
            if let Some(b) = &mut cursor.backfill {
                // Whatever changes from here on is searched for once the listing is done.
                b.until.get_or_insert(upper.max(cursor.floor));
            }
            let horizon = ms(t.late_horizon().get());
            let late = cursor.late_edge(ms(t.overlap.get()));
            let late_hi = upper.saturating_sub(horizon).min(cursor.ts).max(late);
            cursor.late = Some(late);
            members.push(Some(Member {
                horizon,
                lead: cursor.ts,
                late,
                late_hi,
                cursor,
            }));
        }
        let ranges: Vec<(i64, i64)> = members
            .iter()
            .flatten()
            .filter(|m| m.cursor.backfill.is_none())
            .flat_map(|m| [(m.late, m.late_hi), (m.lead, upper)])
            .collect();
        let scan = Scan::over(
            self.client.clone(),
            object_type(self.object),
            property,
            self.properties.clone(),
            ranges,
        );
        let mut lists: Vec<List> = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let Some(b) = m.as_ref().and_then(|m| m.cursor.backfill.as_ref()) else {
                continue;
            };
            match lists.iter_mut().find(|l| l.after == b.after) {
                Some(l) => l.members.push(i),
                None => lists.push(List {
                    after: b.after.clone(),
                    members: vec![i],
                }),
            }
        }
        Ok(Box::new(Poll {
            client: self.client.clone(),
            properties: trigger_properties(&self.properties, property),
            scan,
            lists,
            members,
            upper,
            object: self.object,
            property,
            list_calls: probes,
        }))
    }
}

/// One member's windows during a poll.
struct Member {
    cursor: TriggerCursor,
    /// `late_after`, in ms.
    horizon: i64,
    /// The leading window is `[lead, upper)`.
    lead: i64,
    /// The late window is `[late, late_hi)`.
    late: i64,
    late_hi: i64,
}

impl Member {
    /// Whether an incremental member takes a record of timestamp `ts`.
    fn wants(&self, ts: i64, upper: i64) -> bool {
        (ts >= self.lead && ts < upper) || (ts >= self.late && ts < self.late_hi)
    }

    /// A backfilling member's window: `[floor, until)`.
    fn lists(&self, ts: i64) -> bool {
        let until = self
            .cursor
            .backfill
            .as_ref()
            .and_then(|b| b.until)
            .unwrap_or(i64::MAX);
        ts >= self.cursor.floor && ts < until
    }

    fn state(&self) -> Value {
        serde_json::to_value(&self.cursor).unwrap_or(Value::Null)
    }
}

/// Backfilling members at one list position.
struct List {
    after: Option<String>,
    members: Vec<usize>,
}

/// One poll of a group: a scan of the union of the searching members' windows, then the lists
/// of the backfilling ones, split by member.
struct Poll {
    client: Client,
    properties: Vec<String>,
    scan: Scan,
    lists: Vec<List>,
    members: Vec<Option<Member>>,
    upper: i64,
    object: TriggerObject,
    property: &'static str,
    /// List calls (and backfill probes) made.
    list_calls: u64,
}

impl Poll {
    fn record(&self, o: &Object, ts: i64) -> Item {
        Item::Record(Record {
            key: o.id.clone(),
            version: ts.to_string(),
            data: object_json(o),
            origin: format!("{} {}", object_type(self.object), o.id),
        })
    }

    /// A page of search results, split by searching member.
    fn searched(&mut self, page: &[Object]) -> TriggerPage {
        let property = self.property;
        let stamped: Vec<(&Object, i64)> = page
            .iter()
            .filter_map(|o| Some((o, record_timestamp(o, property)?)))
            .collect();
        let page_max = stamped.iter().map(|(_, ts)| *ts).max();
        let mut out = TriggerPage::default();
        for i in 0..self.members.len() {
            let Some(m) = self.members[i]
                .as_ref()
                .filter(|m| m.cursor.backfill.is_none())
            else {
                out.members.push((Vec::new(), Value::Null));
                continue;
            };
            let items: Vec<Item> = stamped
                .iter()
                .filter(|(_, ts)| m.wants(*ts, self.upper))
                .map(|(o, ts)| self.record(o, *ts))
                .collect();
            let Some(m) = self.members[i].as_mut() else {
                continue;
            };
            // Pages come in ascending order: everything before this page's newest timestamp is
            // handed out (its own ties may go on in the next page, which `≥` reads again).
            if let Some(max) = page_max {
                let late = m.cursor.late.unwrap_or(m.late);
                m.cursor.late = Some(late.max(max.min(m.late_hi)));
                if max > m.lead {
                    m.cursor.ts = m.cursor.ts.max(max.min(self.upper));
                }
            }
            out.members.push((items, m.state()));
        }
        out
    }

    /// The next list page of the first unfinished list, split by its members: `None` when
    /// every list is done.
    async fn listed(&mut self) -> Result<Option<TriggerPage>, ScanError> {
        let Some(list) = self.lists.first_mut() else {
            return Ok(None);
        };
        let request = ListRequest {
            limit: Some(LIST_PAGE_SIZE),
            after: list.after.clone(),
            properties: self.properties.clone(),
            archived: false,
        };
        let page = self
            .client
            .list(&object_type(self.object), &request)
            .await?;
        self.list_calls += 1;
        list.after = page.after.clone();
        let done = page.after.is_none();
        let members = if done {
            self.lists.remove(0).members
        } else {
            list.members.clone()
        };
        let property = self.property;
        let mut out = TriggerPage {
            members: vec![(Vec::new(), Value::Null); self.members.len()],
        };
        for i in members {
            let Some(m) = self.members[i].as_ref() else {
                continue;
            };
            let items: Vec<Item> = page
                .results
                .iter()
                .filter_map(|o| Some((o, record_timestamp(o, property)?)))
                .filter(|(_, ts)| m.lists(*ts))
                .map(|(o, ts)| self.record(o, ts))
                .collect();
            let Some(m) = self.members[i].as_mut() else {
                continue;
            };
            if let Some(b) = &mut m.cursor.backfill {
                b.after = page.after.clone();
                if done {
                    // Hand over to search from where the backfill started. The late pass looks
                    // `late_after` further back once: a record stamped before that instant but
                    // written after the listing passed its place (a lagging clock or index)
                    // is still found.
                    let until = b.until.unwrap_or(self.upper);
                    m.cursor.backfill = None;
                    m.cursor.ts = until;
                    m.cursor.late = Some(until.saturating_sub(m.horizon).max(m.cursor.floor));
                }
            }
            out.members[i] = (items, m.state());
        }
        Ok(Some(out))
    }
}

#[async_trait]
impl TriggerPoll for Poll {
    async fn next_page(&mut self) -> Result<Option<TriggerPage>, TriggerError> {
        if let Some(page) = self.scan.next_page().await.map_err(TriggerError::new)? {
            return Ok(Some(self.searched(&page)));
        }
        self.listed().await.map_err(TriggerError::new)
    }

    fn finish(&mut self) -> Vec<Value> {
        // Every window is read: the next poll starts at their ends.
        let upper = self.upper;
        self.members
            .iter_mut()
            .map(|m| match m {
                Some(m) => {
                    if m.cursor.backfill.is_none() {
                        m.cursor.ts = m.cursor.ts.max(upper);
                        let late = m.cursor.late.unwrap_or(m.late);
                        m.cursor.late = Some(late.max(m.late_hi));
                    }
                    m.state()
                }
                None => Value::Null,
            })
            .collect()
    }

    fn prune_before(&self, member: usize) -> Option<i64> {
        // A day behind the lowest any later poll reads; nothing while a backfill lists.
        let m = self.members.get(member)?.as_ref()?;
        if m.cursor.backfill.is_some() {
            return None;
        }
        let late = m.cursor.late.unwrap_or(m.late);
        Some(late.saturating_sub(86_400_000))
    }

    fn calls(&self) -> u64 {
        self.scan.calls + self.list_calls
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
    fn cursors_from_before_the_late_pass_load() {
        let old: TriggerCursor =
            serde_json::from_value(serde_json::json!({"ts": 10_000, "floor": 9_000})).unwrap();
        assert_eq!(old.backfill, None);
        // They had read `overlap` back on every poll: that much counts as read twice.
        assert_eq!(old.late_edge(500), 9_500);
        assert_eq!(old.late_edge(5_000), 9_000, "never below the floor");
        let new = TriggerCursor::starting_at(7);
        assert_eq!(new.late_edge(5_000), 7);
        assert_eq!(
            serde_json::to_value(&new).unwrap(),
            serde_json::json!({"ts": 7, "floor": 7, "late": 7})
        );
    }

    #[test]
    fn backfill_cursors_round_trip() {
        let mut c = TriggerCursor::backfilling(0, false);
        c.backfill = Some(Backfill {
            after: Some("501".into()),
            until: Some(1_000),
            probe: false,
        });
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ts": 0, "floor": 0, "late": 0, "backfill": {"after": "501", "until": 1000}})
        );
        assert_eq!(serde_json::from_value::<TriggerCursor>(json).unwrap(), c);
    }

    #[test]
    fn windows_merge_into_few_filter_groups() {
        assert_eq!(
            merge_ranges(vec![(5, 9), (0, 3), (3, 4), (9, 9)]),
            vec![(0, 4), (5, 9)]
        );
        assert_eq!(
            merge_ranges(vec![(0, 1), (2, 3), (10, 11), (30, 31), (50, 51)]),
            vec![(0, 11), (30, 31), (50, 51)]
        );
        assert!(merge_ranges(vec![(4, 4)]).is_empty());
    }

    #[test]
    fn start_from_picks_search_or_backfill() {
        let mut t: HubSpotTrigger = serde_json::from_value(serde_json::json!({
            "connection": "hubspot", "on": "new_record", "object": "contact", "poll_every": "10s"
        }))
        .unwrap();
        let now = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        let cursor = |t: &HubSpotTrigger| -> TriggerCursor {
            serde_json::from_value(start_cursor(t, now)).unwrap()
        };
        assert_eq!(cursor(&t), TriggerCursor::starting_at(1_800_000_000_000));
        t.start_from = "beginning".into();
        assert_eq!(cursor(&t), TriggerCursor::backfilling(0, false));
        t.start_from = "2026-01-01T00:00:00Z".into();
        let at = 1_767_225_600_000;
        assert_eq!(cursor(&t), TriggerCursor::backfilling(at, true));
        t.start_from = "2030-01-01T00:00:00Z".into();
        assert_eq!(
            cursor(&t).backfill,
            None,
            "a future instant has nothing to list"
        );
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
