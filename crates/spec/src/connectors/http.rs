//! JSON HTTP APIs: the connection (base URL, headers, throttle), a paginated and incremental
//! source, and a sink that sends records one by one or in batches — settings and rules.

use super::{Checker, ConnectionKind};
use crate::env;
use crate::model::{Backoff, Duration, Throttle, default_timeout};
use crate::schedule::MIN_INTERVAL;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A JSON HTTP API.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConnection {
    /// A name to recognise the connection by in logs and run history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Base URL every path is joined to, e.g. `https://erp.example.com/api`.
    pub base_url: String,
    /// Headers sent with every request; put secrets in the environment:
    /// `Authorization: "Bearer ${ERP_TOKEN}"`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// At most `limit` requests per `per` window; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Give up on a request after this long (it is then retried).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

/// Header values may carry credentials: `Debug` shows the header names only.
impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), super::REDACTED))
            .collect();
        f.debug_struct("HttpConnection")
            .field("display_name", &self.display_name)
            .field("base_url", &self.base_url)
            .field("headers", &headers)
            .field("throttle", &self.throttle)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Records from a JSON HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// Name of an `http` connection (base URL, headers, throttle).
    pub connection: String,
    /// Path below the connection's base URL, such as `/customers`.
    pub path: String,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: HttpReadMethod,
    /// Query parameters added to every request.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// JSON body for `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// JSONPath to the records in each response (default `$`: the response is the array).
    #[serde(default = "default_records_path")]
    pub records: String,
    /// How to get the next page; no pagination reads one page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Read only records changed since the last run, by a field of each record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<HttpIncremental>,
}

fn default_records_path() -> String {
    "$".into()
}

/// HTTP methods for reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpReadMethod {
    /// GET.
    #[default]
    Get,
    /// POST.
    Post,
}

/// Pagination of an HTTP source: exactly one of `next_link`, `cursor` or `page`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = crate::schema::one_key_object)]
pub enum Pagination {
    /// JSONPath to the URL of the next page in each response (e.g. `$.links.next`).
    NextLink(String),
    /// A cursor found in each response and sent as a query parameter.
    Cursor(CursorPagination),
    /// Numbered pages.
    Page(PagePagination),
}

/// Cursor pagination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorPagination {
    /// JSONPath to the next cursor in each response (e.g. `$.paging.next.after`).
    pub path: String,
    /// Query parameter that carries it (e.g. `after`).
    pub param: String,
}

/// Page-number pagination: stops at the first empty page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagePagination {
    /// Query parameter of the page number (e.g. `page`).
    pub param: String,
    /// Number of the first page (default 1).
    #[serde(default = "one")]
    pub start: u64,
    /// Query parameter of the page size, if the API takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_param: Option<String>,
    /// Page size to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

fn one() -> u64 {
    1
}

/// Incremental reads of an HTTP source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpIncremental {
    /// JSONPath to each record's change marker (e.g. `$.updated_at`); the largest seen is kept.
    pub field: String,
    /// Query parameter that sends the last kept value (e.g. `updated_since`).
    pub param: String,
}

/// Send records to an HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSink {
    /// A name for this action, unique in the flow, by which later actions refer to it in
    /// `prerequisites`: letters, digits, `_` and `-` (e.g. `archive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub name: Option<String>,
    /// The actions that must have succeeded for a record before this one writes it: earlier
    /// actions of this flow, by `name` or 0-based position (e.g. `[contact]`). Without it an
    /// action needs every earlier action, so a record stops at its first failure; with it, only
    /// these, so a failure elsewhere does not hold it back (`[]`: no action). A record whose
    /// prerequisite failed fails this action too, its error naming the prerequisite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prerequisites: Option<Vec<crate::model::ActionRef>>,
    /// Name of an `http` connection.
    pub connection: String,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default)]
    pub method: HttpWriteMethod,
    /// Path template below the base URL, e.g. `/customers/{{record.id}}`.
    pub path: String,
    /// Send records in JSON arrays of this many (one request per record when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch_size: Option<u32>,
    /// While the destination is unreachable or overloaded: how long to wait before sending
    /// the same records again (default: from 1s, doubling up to 5m).
    #[serde(default, skip_serializing_if = "Backoff::is_default")]
    pub backoff: Backoff,
    /// Only records for which this condition holds go through this action (the others skip
    /// it; that is no failure): a JSONPath predicate (`$.properties.email`,
    /// `$[?(@.amount > 100)]`: holds when it selects a value other than `null` or `false`) or a
    /// template rendering `true` or `false` (`{{eq record.status "active"}}`), over the source
    /// record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// HTTP methods for writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpWriteMethod {
    /// POST.
    #[default]
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
}

/// Headers whose values are credentials, by name (case-insensitive): their values must come
/// from the environment, like a HubSpot token.
pub fn is_credential_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "x-api-key" | "api-key" | "apikey"
    ) || ["token", "secret", "password", "api_key", "apikey"]
        .iter()
        .any(|part| lower.contains(part))
}

/// Bounds of a request timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The rules of an `http` connection.
pub fn check_connection(c: &mut Checker<'_>, name: &str, http: &HttpConnection) {
    c.env_string(&["base_url"], &http.base_url, name);
    c.url(&["base_url"], &http.base_url);
    for (header, value) in &http.headers {
        c.env_string(&["headers", header], value, name);
        let from_env = env::references(value)
            .is_ok_and(|refs| !refs.is_empty() && refs.iter().all(|r| r.default.is_none()));
        if is_credential_header(header) && !from_env {
            let pos = c.value_pos(&["headers", header]);
            // The value is never echoed: it may be a real credential pasted by mistake.
            let d = c.error(
                "literal_secret",
                pos,
                format!("header `{header}` carries a credential and must come from the environment, not be written in the file"),
            );
            let example = if header.eq_ignore_ascii_case("authorization") {
                "\"Bearer ${ERP_TOKEN}\""
            } else {
                "${ERP_API_KEY}"
            };
            d.hint = Some(format!(
                "write `{header}: {example}` (text around one or more `${{VAR}}`, none with a default) and set the variable"
            ));
            d.redact = true;
        }
    }
    if let Some(display) = &http.display_name {
        c.env_string(&["display_name"], display, name);
    }
    if let Some(t) = &http.throttle {
        c.duration_within(
            &["throttle", "per"],
            t.per,
            MIN_INTERVAL,
            Duration::from_secs(86_400),
        );
    }
    c.duration_within(&["timeout"], http.timeout, MIN_INTERVAL, MAX_TIMEOUT);
}

/// The rules of an `http` source.
pub fn check_source(c: &mut Checker<'_>, http: &HttpSource) {
    c.connection_ref("connection", &http.connection, ConnectionKind::Http);
    c.json_path(&["records"], &http.records);
    match &http.pagination {
        Some(Pagination::NextLink(link)) => c.json_path(&["pagination", "next_link"], link),
        Some(Pagination::Cursor(cursor)) => {
            c.json_path(&["pagination", "cursor", "path"], &cursor.path)
        }
        Some(Pagination::Page(_)) | None => {}
    }
    if let Some(inc) = &http.incremental {
        c.json_path(&["incremental", "field"], &inc.field);
    }
}

/// The rules of an `http` action.
pub fn check_sink(c: &mut Checker<'_>, http: &HttpSink) {
    c.connection_ref("connection", &http.connection, ConnectionKind::Http);
    c.template("path", &http.path);
}
