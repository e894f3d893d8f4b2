//! Records from a JSON HTTP API, page by page.
//!
//! Each response's records are found at the `records` JSONPath (default `$`: the response is
//! the array). Pagination follows a next link, a cursor or page numbers; incremental reads send
//! the largest `incremental.field` value seen by earlier runs as `incremental.param`.
//!
//! The checkpoint holds the incremental value (`max_seen`) and, while a run is under way, the
//! request of the response being read and how many of its records are handed out already
//! (`pending`), so a restart re-sends no record. Keys are the record's `id` (string or number)
//! or else a stable hash of its JSON; versions are the incremental field's value, if any.

use std::collections::VecDeque;

use jsonpath_rust::parser::model::JpQuery;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{HttpClient, JsonResponse, snippet};
use crate::connector::{Source, SourceError, SourcePage as Page};
use crate::record::{Item, Record};
use async_trait::async_trait;
use rivulet_spec::model::{HttpReadMethod, HttpSource, Pagination};

/// A JSONPath compiled once (the same RFC 9535 implementation the mapping crate uses; the
/// mapping crate converts matches to scalar field values, while a source needs them whole).
#[derive(Debug, Clone)]
struct JsonPath {
    src: String,
    query: JpQuery,
}

impl JsonPath {
    fn compile(what: &str, src: &str) -> Result<JsonPath, SourceError> {
        let query = jsonpath_rust::parser::parse_json_path(src).map_err(|e| {
            SourceError::Config(format!("{what} `{src}` is not a valid JSONPath: {e}"))
        })?;
        Ok(JsonPath {
            src: src.to_string(),
            query,
        })
    }

    fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        match jsonpath_rust::query::js_path_process(&self.query, root) {
            Ok(refs) => refs.into_iter().map(|r| r.val).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The single value found, if exactly one.
    fn one<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        match self.find(root).as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Paging {
    None,
    NextLink(JsonPath),
    Cursor {
        path: JsonPath,
        param: String,
    },
    Page {
        param: String,
        start: u64,
        size_param: Option<String>,
        size: Option<u64>,
    },
}

/// Which request a response came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum At {
    First,
    Url(String),
    Cursor(String),
    Page(u64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    at: At,
    /// Records of that response already handed out.
    skip: usize,
    /// The incremental value this run sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    /// The largest incremental value seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_seen: Option<Value>,
    /// The run under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

/// Reads an [`HttpSource`], page by page.
#[derive(Debug)]
pub struct HttpReader {
    client: HttpClient,
    path: String,
    method: Method,
    query: Vec<(String, String)>,
    body: Option<Value>,
    records: JsonPath,
    paging: Paging,
    incremental: Option<(JsonPath, String)>,
    state: State,
    /// The request of the buffered response and the records not yet handed out.
    at: At,
    since: Option<Value>,
    skip: usize,
    buffer: VecDeque<Item>,
    /// The request after the buffered response, if any (`None`: it was the last).
    next: Option<At>,
    fetched: bool,
    finished: bool,
    /// Requests already made this run, to stop a server that links back.
    seen: Vec<At>,
}

impl HttpReader {
    /// A reader for `config` through `client`, resuming from an earlier page's checkpoint.
    pub fn new(
        config: &HttpSource,
        client: HttpClient,
        checkpoint: Option<Value>,
    ) -> Result<HttpReader, SourceError> {
        let records = JsonPath::compile("records", &config.records)?;
        let paging = match &config.pagination {
            None => Paging::None,
            Some(Pagination::NextLink(link)) => {
                Paging::NextLink(JsonPath::compile("pagination.next_link", link)?)
            }
            Some(Pagination::Cursor(c)) => Paging::Cursor {
                path: JsonPath::compile("pagination.cursor.path", &c.path)?,
                param: c.param.clone(),
            },
            Some(Pagination::Page(pg)) => Paging::Page {
                param: pg.param.clone(),
                start: pg.start,
                size_param: pg.size_param.clone(),
                size: pg.size,
            },
        };
        let incremental = match &config.incremental {
            Some(inc) => Some((
                JsonPath::compile("incremental.field", &inc.field)?,
                inc.param.clone(),
            )),
            None => None,
        };
        let state: State = match checkpoint {
            None | Some(Value::Null) => State::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| {
                SourceError::Checkpoint(format!(
                    "{e}; the flow stops rather than read everything again (`rivulet cursor reset FLOW --to beginning` reads it afresh)"
                ))
            })?,
        };
        let (at, skip, since) = match &state.pending {
            Some(p) => (p.at.clone(), p.skip, p.since.clone()),
            None => (At::First, 0, state.max_seen.clone()),
        };
        Ok(HttpReader {
            client,
            path: config.path.clone(),
            method: match config.method {
                HttpReadMethod::Get => Method::GET,
                HttpReadMethod::Post => Method::POST,
            },
            query: config
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: config.body.clone(),
            records,
            paging,
            incremental,
            state,
            at,
            since,
            skip,
            buffer: VecDeque::new(),
            next: None,
            fetched: false,
            finished: false,
            seen: Vec::new(),
        })
    }

    /// The next page of at most `max` records, or `None` when the run has read everything.
    /// A response larger than `max` is handed out over several pages.
    async fn read_page(&mut self, max: usize) -> Result<Option<Page>, SourceError> {
        let max = max.max(1);
        if self.finished {
            return Ok(None);
        }
        loop {
            if !self.fetched {
                self.fetch().await?;
                self.fetched = true;
            }
            if self.buffer.is_empty() {
                // This response is spent: go on to the next, or end the run.
                match self.next.take() {
                    Some(next) => {
                        self.at = next;
                        self.skip = 0;
                        self.fetched = false;
                        continue;
                    }
                    None => return self.finish_page(Vec::new()).map(Some),
                }
            }
            let take = max.min(self.buffer.len());
            let items: Vec<Item> = self.buffer.drain(..take).collect();
            self.skip += take;
            for item in &items {
                if let Item::Record(r) = item {
                    self.observe(&r.data);
                }
            }
            if !self.buffer.is_empty() {
                self.state.pending = Some(Pending {
                    at: self.at.clone(),
                    skip: self.skip,
                    since: self.since.clone(),
                });
            } else {
                match self.next.take() {
                    Some(next) => {
                        self.state.pending = Some(Pending {
                            at: next.clone(),
                            skip: 0,
                            since: self.since.clone(),
                        });
                        self.at = next;
                        self.skip = 0;
                        self.fetched = false;
                    }
                    None => return self.finish_page(items).map(Some),
                }
            }
            return Ok(Some(Page {
                items,
                checkpoint: self.checkpoint()?,
            }));
        }
    }

    /// The counters of the client (requests, retries, 429s).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    fn finish_page(&mut self, items: Vec<Item>) -> Result<Page, SourceError> {
        self.finished = true;
        self.state.pending = None;
        Ok(Page {
            items,
            checkpoint: self.checkpoint()?,
        })
    }

    fn checkpoint(&self) -> Result<Value, SourceError> {
        serde_json::to_value(&self.state).map_err(|e| SourceError::Checkpoint(e.to_string()))
    }

    fn observe(&mut self, data: &Value) {
        let Some((path, _)) = &self.incremental else {
            return;
        };
        let Some(v) = path.one(data).filter(|v| !v.is_null()) else {
            return;
        };
        let bigger = match &self.state.max_seen {
            None => true,
            Some(cur) => greater(v, cur),
        };
        if bigger {
            self.state.max_seen = Some(v.clone());
        }
    }

    async fn fetch(&mut self) -> Result<(), SourceError> {
        if self.seen.contains(&self.at) {
            // The server sent us back to a page we read: stop rather than loop.
            self.buffer.clear();
            self.next = None;
            return Ok(());
        }
        self.seen.push(self.at.clone());
        let mut query = Vec::new();
        let target = match &self.at {
            At::Url(url) => url.clone(),
            at => {
                query.extend(self.query.iter().cloned());
                if let (Some((_, param)), Some(since)) = (&self.incremental, &self.since) {
                    query.push((param.clone(), scalar_text(since)));
                }
                match (at, &self.paging) {
                    (At::Cursor(c), Paging::Cursor { param, .. }) => {
                        query.push((param.clone(), c.clone()));
                    }
                    (
                        At::Page(n),
                        Paging::Page {
                            param,
                            size_param,
                            size,
                            ..
                        },
                    ) => {
                        query.push((param.clone(), n.to_string()));
                        if let (Some(sp), Some(s)) = (size_param, size) {
                            query.push((sp.clone(), s.to_string()));
                        }
                    }
                    (
                        At::First,
                        Paging::Page {
                            param,
                            start,
                            size_param,
                            size,
                        },
                    ) => {
                        self.at = At::Page(*start);
                        query.push((param.clone(), start.to_string()));
                        if let (Some(sp), Some(s)) = (size_param, size) {
                            query.push((sp.clone(), s.to_string()));
                        }
                    }
                    _ => {}
                }
                self.path.clone()
            }
        };
        let resp = self
            .client
            .send_json(
                self.method.clone(),
                &target,
                &query,
                self.body.as_ref(),
                &[],
            )
            .await?;
        let records = self.records_of(&resp)?;
        let empty = records.is_empty();
        self.next = if empty && matches!(self.paging, Paging::Page { .. }) {
            None
        } else {
            self.next_of(&resp)?
        };
        let skip = std::mem::take(&mut self.skip);
        self.skip = skip.min(records.len());
        self.buffer = records.into_iter().skip(skip).collect();
        Ok(())
    }

    fn bad_response(&self, resp: &JsonResponse, message: String) -> SourceError {
        let body = serde_json::to_vec(&resp.body).unwrap_or_default();
        SourceError::BadResponse {
            status: resp.status.as_u16(),
            path: resp.url.path().to_string(),
            message,
            snippet: snippet(&body),
        }
    }

    fn records_of(&self, resp: &JsonResponse) -> Result<Vec<Item>, SourceError> {
        let found = self.records.find(&resp.body);
        let list: Vec<&Value> = match found.as_slice() {
            [] => {
                return Err(self.bad_response(
                    resp,
                    format!("the records path `{}` matches nothing", self.records.src),
                ));
            }
            [Value::Array(a)] => a.iter().collect(),
            [Value::Null] => Vec::new(),
            // One match of a path that selects many (`$.data[*]`) is one record.
            [Value::Object(_)] if selects_many(&self.records.src) => found,
            [_] => {
                return Err(self.bad_response(
                    resp,
                    format!(
                        "the records path `{}` does not lead to an array",
                        self.records.src
                    ),
                ));
            }
            _ => found,
        };
        let mut items = Vec::with_capacity(list.len());
        for v in list {
            if !v.is_object() {
                return Err(self.bad_response(
                    resp,
                    format!("the records at `{}` are not all objects", self.records.src),
                ));
            }
            items.push(Item::Record(self.record(v.clone())));
        }
        Ok(items)
    }

    fn record(&self, data: Value) -> Record {
        let key = match data.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => format!("h{:016x}", fnv1a(data.to_string().as_bytes())),
        };
        let version = self
            .incremental
            .as_ref()
            .and_then(|(p, _)| p.one(&data))
            .filter(|v| !v.is_null())
            .map(scalar_text)
            .unwrap_or_default();
        Record {
            origin: format!("{} record {key}", self.path),
            key,
            version,
            data,
        }
    }

    fn next_of(&self, resp: &JsonResponse) -> Result<Option<At>, SourceError> {
        Ok(match &self.paging {
            Paging::None => None,
            Paging::NextLink(path) => match path.one(&resp.body) {
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    let url: Url = resp.url.join(s.trim()).map_err(|e| {
                        self.bad_response(resp, format!("the next link is not a URL: {e}"))
                    })?;
                    Some(At::Url(url.to_string()))
                }
                _ => None,
            },
            Paging::Cursor { path, .. } => match path.one(&resp.body) {
                Some(Value::String(s)) if !s.is_empty() => Some(At::Cursor(s.clone())),
                Some(Value::Number(n)) => Some(At::Cursor(n.to_string())),
                _ => None,
            },
            Paging::Page { .. } => match &self.at {
                At::Page(n) => Some(At::Page(n + 1)),
                _ => None,
            },
        })
    }
}

/// Whether a JSONPath can select several values (wildcards, descent, filters, slices).
fn selects_many(path: &str) -> bool {
    path.contains(['*', '?', ':']) || path.contains("..")
}

/// A scalar as a query parameter or version: strings as they are, others as JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `a` is after `b`: numbers by value, RFC 3339 instants by time, other text by order.
fn greater(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x > y,
            _ => x.to_string() > y.to_string(),
        },
        (Value::String(x), Value::String(y)) => {
            match (
                chrono::DateTime::parse_from_rfc3339(x),
                chrono::DateTime::parse_from_rfc3339(y),
            ) {
                (Ok(x), Ok(y)) => x > y,
                _ => x > y,
            }
        }
        _ => scalar_text(a) > scalar_text(b),
    }
}

/// FNV-1a, 64 bits: stable across runs and Rust versions (unlike `DefaultHasher`).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The state is all in the checkpoint, so nothing happens on commit.
#[async_trait]
impl Source for HttpReader {
    async fn next_page(&mut self, max: usize) -> Result<Option<Page>, SourceError> {
        self.read_page(max).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ordering_of_incremental_values() {
        assert!(greater(&json!(10), &json!(9)));
        // By instant, not by text: 00:00+01:00 is 23:00Z.
        assert!(!greater(
            &json!("2026-01-02T00:00:00+01:00"),
            &json!("2026-01-01T23:30:00Z")
        ));
        assert!(greater(
            &json!("2026-01-02T00:00:00+00:15"),
            &json!("2026-01-01T23:30:00Z")
        ));
        assert!(!greater(&json!("2026-01-01"), &json!("2026-01-02")));
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
