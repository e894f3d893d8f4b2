//! The flow file: what triggers a flow, where its records come from, how they are mapped and
//! what is done with them. These types *are* the format: their `///` comments become the JSON
//! Schema descriptions (`rivulet schema`) and the reference docs.

use super::Duration;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The field specs of a mapping, keyed by target field name.
pub type MappingSpec = IndexMap<String, rivulet_mapping::FieldSpec>;

/// A flow: a trigger (or a schedule and a source), a mapping, and actions run in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Rivulet flow")]
pub struct Flow {
    /// Unique name of the flow across the flows directory: letters, digits, `-`, `_` and `.`.
    /// Run history, cursors and failed records are kept under this name, so renaming a flow
    /// starts it afresh.
    pub name: String,
    /// What the flow is for, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Start the flow when HubSpot records appear or change (polled). Exclusive with
    /// `schedule` and `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// When to read the `source`: a cron expression or an interval. Without a schedule block a
    /// flow with a source runs every 15 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Where a scheduled flow reads its records from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Target fields, each a template string (`"{{record.email}}"`) or a detailed spec with a
    /// `path`, `template` or `value`, a `type` and options.
    #[serde(default)]
    pub mapping: MappingSpec,
    /// What to do with each mapped record, in order.
    #[schemars(length(min = 1))]
    pub actions: Vec<Action>,
}

/// A trigger: poll a system for new or changed records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Poll HubSpot for new (or new and updated) companies or contacts.
    pub hubspot: HubSpotTrigger,
}

/// A HubSpot polling trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotTrigger {
    /// Name of a `hubspot` connection in a connections file.
    pub connection: String,
    /// `new_record` fires once per created record; `new_or_updated_record` also fires each time
    /// a record changes.
    pub on: TriggerEvent,
    /// Which records to watch.
    pub object: TriggerObject,
    /// How often to poll. Required: each poll is one search call, so `15s` costs 5,760 calls a
    /// day and `1h` costs 24; `validate` prints the figure. At least `1s`.
    pub poll_every: Duration,
    /// Where a new trigger starts: `now` (only records from now on; the default), `beginning`
    /// (every existing record), or an RFC 3339 instant such as `2026-01-01T00:00:00Z`.
    #[serde(default = "default_start_from")]
    #[schemars(example = &"now", example = &"beginning", example = &"2026-01-01T00:00:00Z")]
    pub start_from: String,
    /// Properties to fetch with each record (HubSpot returns a few defaults when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
    /// How far each poll looks back behind its cursor, to catch records HubSpot's search index
    /// showed late. Records already delivered are not delivered again.
    #[serde(default = "default_overlap")]
    pub overlap: Duration,
    /// How recent a change must not be for a poll to take it: search shows fresh writes after a
    /// few seconds, so the window ends this long before now.
    #[serde(default = "default_settle")]
    pub settle: Duration,
}

fn default_start_from() -> String {
    "now".into()
}

fn default_overlap() -> Duration {
    Duration::from_secs(300)
}

fn default_settle() -> Duration {
    Duration::from_secs(5)
}

/// Which changes fire a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerEvent {
    /// A record was created (by `createdate`).
    NewRecord,
    /// A record was created or changed (by its last-modified date).
    NewOrUpdatedRecord,
}

/// The HubSpot objects a trigger can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerObject {
    /// Companies.
    Company,
    /// Contacts.
    Contact,
}

/// When a scheduled flow runs: exactly one of `cron` or `every`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A cron expression in standard 5-field form (`*/15 * * * *`), or 6 fields with seconds
    /// first. Evaluated in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A fixed interval such as `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
    /// What to do about runs missed while Rivulet was down: `latest` runs once (the default),
    /// `all` runs each missed tick, `none` waits for the next tick.
    #[serde(default)]
    pub catch_up: CatchUp,
}

/// The misfire policy after downtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run once for all missed ticks.
    #[default]
    Latest,
    /// Run once per missed tick.
    All,
    /// Skip missed ticks.
    None,
}

/// Where a scheduled flow reads records: exactly one of `file`, `http` or `hubspot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Source {
    /// Read CSV, JSON Lines or JSON files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSource>,
    /// Read records from a JSON HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
    /// Read HubSpot records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot: Option<HubSpotSource>,
}

/// Records from files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// File path or glob (`data/*.csv`), relative to the flow file.
    pub path: String,
    /// File format; by default taken from the extension (`.csv`, `.jsonl`/`.ndjson`, `.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// CSV field delimiter, one character (default `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// What to do with a file once all its records are done: `keep` (default; it is not read
    /// again unless it changes), `move` (to `move_to`) or `delete`.
    #[serde(default)]
    pub after_read: AfterRead,
    /// Folder to move read files to, for `after_read: move`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<String>,
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// A JSON array of objects.
    Json,
}

/// What happens to a source file after it has been read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterRead {
    /// Leave it; it is remembered as read.
    #[default]
    Keep,
    /// Move it to `move_to`.
    Move,
    /// Delete it.
    Delete,
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
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Pagination {
    /// JSONPath to the URL of the next page in each response (e.g. `$.links.next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    /// A cursor found in each response and sent as a query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<CursorPagination>,
    /// Numbered pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PagePagination>,
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

/// HubSpot records as a scheduled source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotSource {
    /// Name of a `hubspot` connection.
    pub connection: String,
    /// Object type: `company`, `contact`, `deal`, `product`, `line_item` or a custom object id
    /// (`2-1234567`).
    pub object: String,
    /// Properties to read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
    /// Read only records changed since the last run (otherwise every record, every run).
    #[serde(default)]
    pub incremental: bool,
}

/// One action: exactly one of `hubspot`, `file` or `http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Action {
    /// Create, update or upsert HubSpot records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubspot: Option<HubSpotAction>,
    /// Append records to a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSink>,
    /// Send records to an HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSink>,
}

/// Write mapped records to HubSpot. Mapped fields are the record's HubSpot properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotAction {
    /// Name of a `hubspot` connection.
    pub connection: String,
    /// `create` a new record, `update` one by HubSpot ID, or `upsert` (create or update).
    pub operation: Operation,
    /// Object type: `company`, `contact`, `deal`, `product`, `line_item` or a custom object id.
    pub object: String,
    /// Template of the HubSpot record ID (e.g. `"{{record.hubspot_id}}"`): the record to
    /// update, or for a company upsert the record to update when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For upserts: a unique property to match records on (contacts: the external ID field,
    /// e.g. `email`; companies: a custom unique property). It must be mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_on: Option<String>,
    /// For company upserts by `id`: create the record when the given ID does not exist,
    /// instead of failing it.
    #[serde(default)]
    pub create_if_missing: bool,
    /// Records per batch call (HubSpot's maximum, 100, by default).
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100))]
    pub batch_size: u32,
}

fn default_batch_size() -> u32 {
    100
}

/// A HubSpot write operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Create new records.
    Create,
    /// Update records by HubSpot ID (`id`).
    Update,
    /// Create or update: by `match_on` (a unique property) or, for companies, by `id`.
    Upsert,
}

/// Append records to a file, one per line, never leaving a half-written line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSink {
    /// File to append to, relative to the flow file; folders are created.
    pub path: String,
    /// `jsonl` (default) or `csv`.
    #[serde(default)]
    pub format: SinkFormat,
}

/// The format of a file sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// CSV with a header row written when the file is new; columns in mapping order.
    Csv,
}

/// Send records to an HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSink {
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

impl FileFormat {
    /// The format a path's extension implies, if any.
    pub fn from_path(path: &str) -> Option<FileFormat> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            Some(FileFormat::Csv)
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Some(FileFormat::Jsonl)
        } else if lower.ends_with(".json") {
            Some(FileFormat::Json)
        } else {
            None
        }
    }
}
