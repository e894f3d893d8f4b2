//! HubSpot: the connection (an account), the polling trigger, the scheduled source and the
//! create / update / upsert action — their settings and the rules a schema cannot say.

use super::{CheckedFlow, Checker, ConnectionKind};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::env;
use crate::model::{Backoff, Duration, Flow, Throttle, default_timeout};
use crate::schedule::MIN_INTERVAL;
use crate::validate::{CheckedConnection, thousands};
use crate::yaml::Step;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A HubSpot account: credentials, where to reach it and how hard to use it. Exactly one of
/// `token`, `token_file` or `oauth`.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotConnection {
    /// A name to recognise the connection by in logs and run history (e.g. `HubSpot – Release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A private app or service key access token, from the environment: `${HUBSPOT_TOKEN}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the access token (e.g. a mounted secret), relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// OAuth 2.0: access tokens obtained and refreshed with a refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuth>,
    /// API base URL; `https://api.hubapi.com` for every HubSpot account.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Which of HubSpot's API versions to call: `2026-03`, the date-versioned API (generally
    /// available since March 2026; what `rivulet init` writes), or `v3`, the numbered paths,
    /// which HubSpot stops supporting in September 2027 (the v4 associations they use, on 30
    /// March 2027). Without it, `v3`, so files written before it keep working; `validate`
    /// warns about it.
    #[serde(default)]
    pub api_version: HubSpotApiVersion,
    /// The internal name of a dropdown (enumeration) property of companies that holds the
    /// customer category, e.g. `company_category`; create it in HubSpot first. At start-up
    /// Rivulet checks that it exists and is a dropdown, and reads its options once; a mapped
    /// field of that name may then give an option's label or internal value (the internal value
    /// is sent), and a value that is no option fails that record, naming the allowed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_category_property: Option<String>,
    /// Like `company_category_property`, for contacts (e.g. `contact_category`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_category_property: Option<String>,
    /// Transfer products as a prerequisite for transactions: before a page's deals are created,
    /// the SKUs (`hs_sku`) of their line items are looked up among HubSpot's products (one
    /// search per 100 SKUs) and the missing products created (one batch call per 100, named
    /// and priced after the line item's `name`, `price` and `description`), so each deal is
    /// then created with its line items on those products. Off (the default, as in the
    /// installation guide): no product is created; a line item whose SKU has no product fails
    /// its record — before its deal is created — with an error naming the SKU (kept for
    /// replay), and the other records go on.
    #[serde(default)]
    pub transfer_products_first: bool,
    /// At most `limit` requests per `per` window (HubSpot's burst limit; 100 per 10 s on
    /// Free/Starter, 190 on Professional/Enterprise). Shared by every flow on this connection.
    #[serde(default)]
    pub throttle: Throttle,
    /// At most this many search requests per second (HubSpot allows 5 per account).
    #[serde(default = "default_search_per_second")]
    #[schemars(range(min = 1))]
    pub search_per_second: u32,
    /// At most this many requests in flight at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrent_connections: u32,
    /// At most this many batch calls in flight at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrent_batches: u32,
    /// Requests per day this account may make (250,000 on Free/Starter, 650,000 on
    /// Professional); `validate` warns when polling alone would exceed it.
    #[serde(default = "default_daily_limit")]
    #[schemars(range(min = 1))]
    pub daily_limit: u64,
    /// Give up on a request after this long (it is then retried).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

/// Secrets may have been pasted here by mistake: `Debug` never shows credentials.
impl fmt::Debug for HubSpotConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotConnection")
            .field("display_name", &self.display_name)
            .field("token", &self.token.as_ref().map(|_| super::REDACTED))
            .field("token_file", &self.token_file)
            .field("oauth", &self.oauth)
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("company_category_property", &self.company_category_property)
            .field("contact_category_property", &self.contact_category_property)
            .field("transfer_products_first", &self.transfer_products_first)
            .field("throttle", &self.throttle)
            .field("search_per_second", &self.search_per_second)
            .field("concurrent_connections", &self.concurrent_connections)
            .field("concurrent_batches", &self.concurrent_batches)
            .field("daily_limit", &self.daily_limit)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn default_base_url() -> String {
    "https://api.hubapi.com".into()
}

/// A version of HubSpot's API: which paths its calls use (the request and answer shapes are the
/// same).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum HubSpotApiVersion {
    /// The numbered paths (`/crm/v3/…`, associations on `/crm/v4/…`): unsupported from
    /// September 2027 (v4 associations from 30 March 2027).
    #[default]
    #[serde(rename = "v3")]
    V3,
    /// The date-versioned paths (`/crm/objects/2026-03/…`), generally available since 30 March
    /// 2026.
    #[serde(rename = "2026-03")]
    V2026_03,
}

impl HubSpotApiVersion {
    /// As written in a connections file.
    pub fn as_str(self) -> &'static str {
        match self {
            HubSpotApiVersion::V3 => "v3",
            HubSpotApiVersion::V2026_03 => "2026-03",
        }
    }
}

/// The object types whose category property a connection may name, with the key naming it.
pub const CATEGORY_PROPERTIES: [(&str, &str); 2] = [
    ("company_category_property", "company"),
    ("contact_category_property", "contact"),
];

/// Whether `name` can be a HubSpot property's internal name: lower-case letters, digits and
/// underscores, starting with a letter.
pub fn is_property_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn default_search_per_second() -> u32 {
    5
}

fn default_concurrency() -> u32 {
    5
}

fn default_daily_limit() -> u64 {
    250_000
}

/// OAuth 2.0 refresh-token credentials.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret, from the environment: `${HUBSPOT_CLIENT_SECRET}`.
    pub client_secret: String,
    /// The refresh token, from the environment: `${HUBSPOT_REFRESH_TOKEN}`. Exactly one of
    /// `refresh_token` and `refresh_token_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// A file holding the refresh token, relative to this file: what `rivulet auth hubspot`
    /// writes (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_file: Option<String>,
    /// The token endpoint.
    #[serde(default = "default_token_url")]
    pub token_url: String,
}

impl fmt::Debug for OAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("client_id", &self.client_id)
            .field("client_secret", &super::REDACTED)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| super::REDACTED),
            )
            .field("refresh_token_file", &self.refresh_token_file)
            .field("token_url", &self.token_url)
            .finish()
    }
}

fn default_token_url() -> String {
    "https://api.hubapi.com/oauth/v1/token".into()
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
    /// The name `late_after` had before the late pass (each poll used to search this far back
    /// behind its cursor): when `late_after` is not set, this value is its horizon.
    #[serde(default = "default_overlap")]
    pub overlap: Duration,
    /// The late pass: each window is searched once at its leading edge (`now − settle`) and
    /// once more this long after, for records HubSpot's search index showed late (HubSpot says
    /// new and changed records take "a few moments" to be searchable). Records already
    /// delivered are not delivered again. Default: `overlap` (5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_after: Option<Duration>,
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

impl HubSpotTrigger {
    /// How long after its first read a window is checked once more (the late pass).
    pub fn late_horizon(&self) -> Duration {
        self.late_after.unwrap_or(self.overlap)
    }

    /// Flows polling the same connection, object and event share one search per poll.
    pub fn group_key(&self) -> String {
        format!(
            "hubspot:{}:{}:{}",
            self.connection,
            self.object.as_str(),
            self.on.as_str()
        )
    }
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

impl TriggerEvent {
    /// As written in a flow file.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerEvent::NewRecord => "new_record",
            TriggerEvent::NewOrUpdatedRecord => "new_or_updated_record",
        }
    }
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

impl TriggerObject {
    /// As written in a flow file.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerObject::Company => "company",
            TriggerObject::Contact => "contact",
        }
    }
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

/// Write mapped records to HubSpot. Mapped fields are the record's HubSpot properties (for
/// line items from a list, `line_items.mapping` gives them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotAction {
    /// A name for this action, unique in the flow, by which later actions refer to it in
    /// `prerequisites` and `associate_with`: letters, digits, `_` and `-` (e.g. `deal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub name: Option<String>,
    /// Name of a `hubspot` connection.
    pub connection: String,
    /// `create` a new record, `update` one by HubSpot ID, or `upsert` (create or update).
    /// Companies, contacts, deals, products and custom objects take all three (upserts by
    /// `match_on`, a unique property; companies and deals also by `id`); line items from a list
    /// (`line_items`) are created.
    pub operation: Operation,
    /// Object type: `company`, `contact`, `deal`, `product`, `line_item` or a custom object id.
    pub object: String,
    /// The actions that must have succeeded for a record before this one writes it: earlier
    /// actions of this flow, by `name` or 0-based position (e.g. `[deal]`). Without it (and
    /// without `associate_with`) an action needs every earlier action, so a record stops at its
    /// first failure; with it, only these and the `associate_with` actions, so a failure
    /// elsewhere does not hold it back (`[]`: no action). A record whose prerequisite failed
    /// fails this action too, its error naming the prerequisite (kept for replay, which runs
    /// every action again: creates already made are found through the ledger, not made twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prerequisites: Option<Vec<crate::model::ActionRef>>,
    /// Earlier HubSpot actions of this flow (by `name` or position) whose records, made for
    /// the same source record, each record this action writes is associated with: line items
    /// with their deal (made with the line items, type 20), a deal with its company or contact
    /// (HubSpot's default association, one batch call per 100 after the write). The ids pass
    /// from action to action record by record, a page at a time. Each is a prerequisite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associate_with: Vec<crate::model::ActionRef>,
    /// The mapped fields this action sends, as HubSpot properties (default: every mapped
    /// field). For flows whose actions write different objects from one mapping: a deal's
    /// `[dealname, amount, dealstage]`, its buyer's `[email, firstname]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Vec<String>>,
    /// For `object: line_item`: one line item per element of a list in the record (an order's
    /// lines), instead of one per record, each on the product its SKU names and on the deal of
    /// `associate_with`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_items: Option<LineItems>,
    /// Template of the HubSpot record ID (e.g. `"{{record.hubspot_id}}"`): the record to
    /// update, or for a company upsert the record to update when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A unique property that identifies records (contacts: the external ID field, e.g.
    /// `email`; companies: a custom unique property). Upserts match records on it; creates
    /// that a crash left in doubt are looked up by it (companies without it: by `domain`).
    /// It must be mapped.
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

fn default_batch_size() -> u32 {
    100
}

/// Line items from a list in each record: one line item per element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItems {
    /// JSONPath to the record's list of line items, e.g. `$.lines` (or `$.lines[*]`). An empty
    /// list (or `null`) gives a deal without line items; a record where the path finds nothing
    /// fails, naming the path.
    pub path: String,
    /// Each line item's HubSpot properties, mapped from one element of the list: in these
    /// templates and paths `record` (and `$`) is the element, e.g. `hs_sku: "{{record.sku}}"`,
    /// `quantity: {path: $.qty, type: number}`. `hs_sku` (or `hs_product_id`) is required: the
    /// SKU names the product, whose id is sent as `hs_product_id`. `name`, `price` and
    /// `description` also describe a product created for a SKU HubSpot does not have (see the
    /// connection's `transfer_products_first`).
    pub mapping: crate::model::MappingSpec,
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

impl Operation {
    /// As written in a flow file.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
        }
    }
}

/// The timestamp property a trigger watches: when a record was created, or last changed.
pub fn watched_property(object: TriggerObject, event: TriggerEvent) -> &'static str {
    match (event, object) {
        (TriggerEvent::NewRecord, _) => "createdate",
        (TriggerEvent::NewOrUpdatedRecord, TriggerObject::Contact) => "lastmodifieddate",
        (TriggerEvent::NewOrUpdatedRecord, TriggerObject::Company) => "hs_lastmodifieddate",
    }
}

/// The properties a trigger watching `watched` fetches: those `listed`, then what it needs of
/// every record (its id, its creation and the watched timestamp). Validation checks templates
/// against the same list the runtime asks for.
pub fn trigger_properties(listed: &[String], watched: &str) -> Vec<String> {
    let mut properties = listed.to_vec();
    for p in ["hs_object_id", "createdate", watched] {
        if !properties.iter().any(|q| q == p) {
            properties.push(p.to_string());
        }
    }
    properties
}

/// HubSpot object names the engine knows, and their canonical (singular) form.
pub fn canonical_object(name: &str) -> Option<&'static str> {
    Some(match name {
        "company" | "companies" => "company",
        "contact" | "contacts" => "contact",
        "deal" | "deals" => "deal",
        "product" | "products" => "product",
        "line_item" | "line_items" => "line_item",
        "ticket" | "tickets" => "ticket",
        _ => return None,
    })
}

fn is_custom_object(name: &str) -> bool {
    name.strip_prefix("2-")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
        || name.starts_with("p_")
}

/// The longest a poll may wait: polling less often than daily is a schedule's job.
const MAX_POLL_EVERY: Duration = Duration::from_secs(86_400);
/// How far back a poll may look: a day covers any index lag HubSpot documents.
const MAX_OVERLAP: Duration = Duration::from_secs(86_400);
/// How long a change must settle at most before a poll takes it.
const MAX_SETTLE: Duration = Duration::from_secs(3_600);
/// Bounds of a request timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The rules of a `hubspot` connection.
pub fn check_connection(c: &mut Checker<'_>, name: &str, hs: &HubSpotConnection) {
    let credentials = [
        hs.token.is_some(),
        hs.token_file.is_some(),
        hs.oauth.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    let pos = c.key_pos(&[]);
    if credentials == 0 {
        c.error(
            "missing_credentials",
            pos,
            format!("connection `{name}` has no credentials"),
        )
        .hint =
            Some("add `token: ${HUBSPOT_TOKEN}`, `token_file: PATH` or an `oauth` block".into());
    } else if credentials > 1 {
        c.error(
            "conflicting_credentials",
            pos,
            format!("connection `{name}` has more than one of `token`, `token_file` and `oauth`"),
        )
        .hint = Some("keep exactly one way to authenticate".into());
    }
    let secret_hint = |what: &str| {
        format!(
            "write `{what}: ${{HUBSPOT_{}}}` and set that variable (or use `token_file`)",
            what.to_uppercase()
        )
    };
    if let Some(token) = &hs.token {
        c.secret(&["token"], "token", secret_hint("token"), token);
        c.env_string(&["token"], token, name);
    }
    if let Some(token_file) = &hs.token_file {
        c.env_string(&["token_file"], token_file, name);
        if env::references(token_file).is_ok_and(|r| r.is_empty()) {
            let resolved = c.base_dir().join(token_file);
            if !resolved.is_file() {
                let pos = c.value_pos(&["token_file"]);
                c.missing_at_runtime(
                    "missing_secret_file",
                    pos,
                    format!("token file `{}` does not exist (yet)", resolved.display()),
                )
                .hint = Some("it must exist when the flows run".into());
            }
        }
    }
    if let Some(oauth) = &hs.oauth {
        let keys = ["oauth", "client_secret"];
        c.secret(
            &keys,
            "client_secret",
            secret_hint("client_secret"),
            &oauth.client_secret,
        );
        match (&oauth.refresh_token, &oauth.refresh_token_file) {
            (Some(token), None) => {
                let keys = ["oauth", "refresh_token"];
                c.secret(&keys, "refresh_token", secret_hint("refresh_token"), token);
                c.env_string(&keys, token, name);
            }
            (None, Some(file)) => {
                let keys = ["oauth", "refresh_token_file"];
                c.env_string(&keys, file, name);
                if env::references(file).is_ok_and(|r| r.is_empty()) {
                    let resolved = c.base_dir().join(file);
                    if !resolved.is_file() {
                        let pos = c.value_pos(&keys);
                        c.missing_at_runtime(
                            "missing_secret_file",
                            pos,
                            format!("refresh token file `{}` does not exist (yet)", resolved.display()),
                        )
                        .hint = Some(
                            "`rivulet auth hubspot --out FILE` writes it; it must exist when the flows run"
                                .into(),
                        );
                    }
                }
            }
            (None, None) => {
                let pos = c.key_pos(&["oauth"]);
                c.error(
                    "missing_credentials",
                    pos,
                    format!("connection `{name}`: `oauth` needs a refresh token"),
                )
                .hint = Some(
                    "add `refresh_token: ${HUBSPOT_REFRESH_TOKEN}` or `refresh_token_file: PATH` (what `rivulet auth hubspot` writes)"
                        .into(),
                );
            }
            (Some(_), Some(_)) => {
                let pos = c.key_pos(&["oauth", "refresh_token_file"]);
                c.error(
                    "conflicting_credentials",
                    pos,
                    format!("connection `{name}`: `oauth` has both `refresh_token` and `refresh_token_file`"),
                )
                .hint = Some("keep one of them".into());
            }
        }
        c.env_string(&["oauth", "client_id"], &oauth.client_id, name);
        c.env_string(&["oauth", "client_secret"], &oauth.client_secret, name);
        c.env_string(&["oauth", "token_url"], &oauth.token_url, name);
        c.url(&["oauth", "token_url"], &oauth.token_url);
    }
    c.env_string(&["base_url"], &hs.base_url, name);
    c.url(&["base_url"], &hs.base_url);
    if let Some(display) = &hs.display_name {
        c.env_string(&["display_name"], display, name);
    }
    if hs.throttle.per.get() < MIN_INTERVAL.get() {
        let pos = c.value_pos(&["throttle", "per"]);
        c.error("invalid_value", pos, "`throttle.per` must be at least 1s");
    } else {
        c.duration_within(
            &["throttle", "per"],
            hs.throttle.per,
            MIN_INTERVAL,
            MAX_POLL_EVERY,
        );
    }
    c.duration_within(&["timeout"], hs.timeout, MIN_INTERVAL, MAX_TIMEOUT);
    check_api_version(c, name, hs);
    for (key, object) in CATEGORY_PROPERTIES {
        let value = match key {
            "company_category_property" => &hs.company_category_property,
            _ => &hs.contact_category_property,
        };
        if let Some(property) = value
            && !is_property_name(property)
        {
            let pos = c.value_pos(&[key]);
            c.error(
                "invalid_property_name",
                pos,
                format!("`{key}: {property}` is not a HubSpot property's internal name"),
            )
            .hint = Some(format!(
                "use the internal name of the {object} dropdown property (lower-case letters, digits and underscores, e.g. `{object}_category`), not its label"
            ));
        }
    }
}

/// The numbered API goes out of support: say when, and what to write instead.
fn check_api_version(c: &mut Checker<'_>, name: &str, hs: &HubSpotConnection) {
    if hs.api_version != HubSpotApiVersion::V3 {
        return;
    }
    let explicit = c.key_pos(&["api_version"]) != c.key_pos(&[]);
    let pos = if explicit {
        c.value_pos(&["api_version"])
    } else {
        c.key_pos(&[])
    };
    let how = if explicit {
        "uses"
    } else {
        "has no `api_version`, so it uses"
    };
    c.warning(
        "api_version_retiring",
        pos,
        format!(
            "connection `{name}` {how} HubSpot's v3 API, which HubSpot stops supporting in September 2027 (the v4 associations it uses, on 30 March 2027)"
        ),
    )
    .hint = Some("set `api_version: \"2026-03\"`, HubSpot's date-versioned API".into());
}

/// The rules of a `hubspot` trigger.
pub fn check_trigger(c: &mut Checker<'_>, t: &HubSpotTrigger) {
    c.connection_ref("connection", &t.connection, ConnectionKind::HubSpot);
    if t.poll_every < MIN_INTERVAL {
        let pos = c.value_pos(&["poll_every"]);
        c.error(
            "poll_too_fast",
            pos,
            format!(
                "`poll_every: {}` is too short; the shortest is 1s",
                t.poll_every
            ),
        )
        .hint = Some(
            "HubSpot allows 5 searches per second per account, shared by every integration".into(),
        );
    } else {
        c.duration_within(&["poll_every"], t.poll_every, MIN_INTERVAL, MAX_POLL_EVERY);
    }
    c.duration_within(&["overlap"], t.overlap, Duration::default(), MAX_OVERLAP);
    if let Some(late) = t.late_after {
        c.duration_within(&["late_after"], late, Duration::default(), MAX_OVERLAP);
    }
    c.duration_within(&["settle"], t.settle, Duration::default(), MAX_SETTLE);
    if !matches!(t.start_from.as_str(), "now" | "beginning")
        && chrono::DateTime::parse_from_rfc3339(&t.start_from).is_err()
    {
        let pos = c.value_pos(&["start_from"]);
        c.error(
            "invalid_start_from",
            pos,
            format!(
                "`start_from: {}` is not `now`, `beginning` or an RFC 3339 instant",
                t.start_from
            ),
        )
        .hint = Some("for example `2026-01-01T00:00:00Z`".into());
    }
}

/// The rules of a `hubspot` source.
pub fn check_source(c: &mut Checker<'_>, s: &HubSpotSource) {
    c.connection_ref("connection", &s.connection, ConnectionKind::HubSpot);
    check_object(c, &s.object);
}

fn check_object(c: &mut Checker<'_>, object: &str) {
    if canonical_object(object).is_none() && !is_custom_object(object) {
        let pos = c.value_pos(&["object"]);
        let known = [
            "company",
            "contact",
            "deal",
            "product",
            "line_item",
            "ticket",
        ];
        let hint = did_you_mean(object, known)
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "use company, contact, deal, product, line_item, ticket or a custom object id like `2-1234567`".into());
        c.error(
            "unknown_object",
            pos,
            format!("`{object}` is not a HubSpot object type"),
        )
        .hint = Some(hint);
    }
}

/// The rules of a `hubspot` action (number `index` of `flow`): HubSpot's rules for each
/// operation, checked against what the mapping provides, and the references to other actions.
pub fn check_action(c: &mut Checker<'_>, flow: &Flow, index: usize, hs: &HubSpotAction) {
    c.connection_ref("connection", &hs.connection, ConnectionKind::HubSpot);
    check_object(c, &hs.object);
    if let Some(id) = &hs.id {
        c.template("id", id);
    }
    check_links(c, flow, index, hs);
    let object = canonical_object(&hs.object);
    if let Some(items) = &hs.line_items {
        check_line_items(c, flow, index, hs, items);
    } else if object == Some("line_item") && hs.operation == Operation::Create {
        check_line_item_records(c, flow, hs);
    }
    if let Some(properties) = &hs.properties {
        check_properties(c, flow, hs, properties);
    }
    let sent = |field: &str| {
        hs.properties
            .as_ref()
            .is_none_or(|p| p.iter().any(|f| f == field))
    };
    let mapped = |field: &str| flow.mapping.contains_key(field) && sent(field);
    let op_pos = c.value_pos(&["operation"]);
    match (hs.operation, object) {
        (Operation::Create, Some("deal")) if !mapped("dealname") => {
            c.error(
                "missing_required_property",
                op_pos,
                "creating a deal needs `dealname` in the mapping",
            )
            .hint = Some("map `dealname` (and usually `dealstage` and `pipeline`)".into());
        }
        (Operation::Create, Some("product")) if !mapped("name") => {
            c.error(
                "missing_required_property",
                op_pos,
                "creating a product needs `name` in the mapping",
            )
            .hint = Some("map `name` (and usually `hs_sku` and `price`)".into());
        }
        (Operation::Create, Some("company")) if !mapped("name") && !mapped("domain") => {
            c.error(
                "missing_required_property",
                op_pos,
                "creating a company needs `name` or `domain` in the mapping",
            )
            .hint = Some(
                "HubSpot recommends `domain`: it is how HubSpot avoids duplicate companies".into(),
            );
        }
        (Operation::Create, Some("contact"))
            if !mapped("email") && !mapped("firstname") && !mapped("lastname") =>
        {
            c.error(
                "missing_required_property",
                op_pos,
                "creating a contact needs `email`, `firstname` or `lastname` in the mapping",
            )
            .hint = Some(
                "HubSpot recommends `email`: it is how HubSpot avoids duplicate contacts".into(),
            );
        }
        (Operation::Update, _) if hs.id.is_none() => {
            c.error("missing_id", op_pos, "`update` needs `id`, the HubSpot ID of the record to update").hint =
                Some("for example `id: \"{{record.hubspot_id}}\"`; to create missing records use `operation: upsert`".into());
        }
        (Operation::Upsert, Some("contact")) if hs.match_on.is_none() => {
            c.error(
                "missing_match_on",
                op_pos,
                "upserting contacts needs `match_on`, the unique property to match them by",
            )
            .hint = Some("usually `match_on: email` (and `email` in the mapping)".into());
        }
        (Operation::Upsert, _) if hs.match_on.is_none() && hs.id.is_none() => {
            c.error("missing_match_on", op_pos, "`upsert` needs `id` (the HubSpot ID) or `match_on` (a unique property)").hint =
                Some("companies: `id: \"{{record.hubspot_id}}\"`, or `match_on` a custom unique property".into());
        }
        _ => {}
    }
    if let Some(match_on) = &hs.match_on {
        let pos = c.value_pos(&["match_on"]);
        if hs.operation == Operation::Update {
            c.warning(
                "unused_key",
                pos,
                "`match_on` is used by `upsert` (to match records) and `create` (to look up a create a crash left in doubt), not by `update`",
            );
        } else if !mapped(match_on) {
            c.error("unmapped_match_on", pos, format!("`match_on: {match_on}` is not in the mapping, so records have nothing to match by"))
                .hint = Some(format!("add `{match_on}:` to `mapping`"));
        }
        if object == Some("company") && match_on == "domain" {
            c.warning("non_unique_match_on", pos, "HubSpot does not treat `domain` as a unique property, so it cannot be used to upsert")
                .hint = Some("upsert companies by `id`, or by a custom property created with unique values".into());
        }
        if matches!(object, Some("product" | "line_item")) && match_on == "hs_sku" {
            c.warning("non_unique_match_on", pos, "HubSpot does not treat `hs_sku` as a unique property, so it cannot be used to upsert")
                .hint = Some("upsert by a custom property created with unique values; line items from a list find their products by SKU on their own (and create the missing ones with the connection's `transfer_products_first`)".into());
        }
    }
    if hs.operation == Operation::Create && hs.id.is_some() {
        let pos = c.key_pos(&["id"]);
        c.warning(
            "unused_key",
            pos,
            "`id` is ignored by `create`: HubSpot assigns the ID",
        );
    }
    if hs.create_if_missing && !(hs.operation == Operation::Upsert && hs.id.is_some()) {
        let pos = c.key_pos(&["create_if_missing"]);
        c.warning(
            "unused_key",
            pos,
            "`create_if_missing` only applies to upserts by `id`",
        );
    }
}

/// `associate_with`: the actions named make HubSpot records this one can be associated with
/// (line items with their deal). Whether each names an earlier action is checked with every
/// action's references ([`crate::validate`]); unresolved ones are skipped here.
fn check_links(c: &mut Checker<'_>, flow: &Flow, index: usize, hs: &HubSpotAction) {
    for (k, r) in hs.associate_with.iter().enumerate() {
        let Some(target) = flow.action_index(r).filter(|t| *t < index) else {
            continue;
        };
        let mut at = c.scoped(&[Step::Key("associate_with".into()), Step::Index(k)]);
        let pos = at.value_pos(&[]);
        let crate::model::Action::Hubspot(other) = &flow.actions[target] else {
            at.error(
                "invalid_reference",
                pos,
                format!(
                    "`associate_with` names {}, which makes no HubSpot record to associate with",
                    flow.action_label(target)
                ),
            )
            .hint = Some("name an earlier `hubspot` action".into());
            continue;
        };
        let object = canonical_object(&hs.object);
        let other_object = canonical_object(&other.object);
        if object == Some("line_item") && other_object != Some("deal") {
            at.error(
                "invalid_reference",
                pos,
                format!(
                    "line items are associated with their deal, but {} writes `{}` records",
                    flow.action_label(target),
                    other.object
                ),
            )
            .hint = Some("name the action that creates (or updates) the deal".into());
        }
    }
}

/// `properties`: fields of the mapping.
fn check_properties(c: &mut Checker<'_>, flow: &Flow, hs: &HubSpotAction, properties: &[String]) {
    if hs.line_items.is_some() {
        let pos = c.key_pos(&["properties"]);
        c.warning(
            "unused_key",
            pos,
            "`properties` is not used by line items from a list: `line_items.mapping` gives their properties",
        );
        return;
    }
    for (k, field) in properties.iter().enumerate() {
        if flow.mapping.contains_key(field) {
            continue;
        }
        let mut at = c.scoped(&[Step::Key("properties".into()), Step::Index(k)]);
        let pos = at.value_pos(&[]);
        at.error(
            "unmapped_property",
            pos,
            format!("`properties` names `{field}`, which is not in the mapping"),
        )
        .hint = Some(
            did_you_mean(field, flow.mapping.keys().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("add `{field}:` to `mapping`")),
        );
    }
}

/// The action that makes the deal these line items go on, if `associate_with` names one.
fn deal_of<'f>(flow: &'f Flow, hs: &HubSpotAction) -> Option<&'f HubSpotAction> {
    hs.associate_with
        .iter()
        .find_map(|r| match flow.actions.get(flow.action_index(r)?)? {
            crate::model::Action::Hubspot(a) if canonical_object(&a.object) == Some("deal") => {
                Some(a)
            }
            _ => None,
        })
}

/// `line_items`: line items of a created deal, from a list, each naming its product.
fn check_line_items(
    c: &mut Checker<'_>,
    flow: &Flow,
    index: usize,
    hs: &HubSpotAction,
    items: &LineItems,
) {
    let pos = c.key_pos(&["line_items"]);
    if canonical_object(&hs.object) != Some("line_item") {
        c.error(
            "invalid_line_items",
            pos,
            format!(
                "`line_items` makes line items, but this action writes `{}` records",
                hs.object
            ),
        )
        .hint = Some(
            "write `object: line_item`, in an action after the one that creates the deal".into(),
        );
        return;
    }
    if hs.operation != Operation::Create {
        let pos = c.value_pos(&["operation"]);
        c.error(
            "invalid_line_items",
            pos,
            format!(
                "line items from a list are created, not `{}`",
                hs.operation.as_str()
            ),
        )
        .hint = Some(
            "write `operation: create`; each deal gets the line items it does not have yet".into(),
        );
    }
    if deal_of(flow, hs).is_none() {
        c.error(
            "missing_deal",
            pos,
            "line items from a list belong to a deal, but `associate_with` names no deal action",
        )
        .hint = Some(match flow.actions[..index].iter().position(|a| {
            matches!(a, crate::model::Action::Hubspot(d) if canonical_object(&d.object) == Some("deal"))
        }) {
            Some(d) => format!(
                "add `associate_with: [{}]`",
                flow.actions[d].name().map_or_else(|| d.to_string(), str::to_string)
            ),
            None => "add an action that creates the deal (`object: deal`, `name: deal`) before this one, and `associate_with: [deal]` here".into(),
        });
    }
    if hs.match_on.is_some() {
        let pos = c.key_pos(&["match_on"]);
        c.warning(
            "unused_key",
            pos,
            "`match_on` is not used by line items from a list: a deal's line items are told apart by product and quantity",
        );
    }
    let mut block = c.block(&["line_items"]);
    block.json_path(&["path"], &items.path);
    crate::validate::check_mapping_spec(&mut block, &items.mapping);
    if !items.mapping.contains_key("hs_sku") && !items.mapping.contains_key("hs_product_id") {
        let pos = block.key_pos(&["mapping"]);
        block
            .error(
                "missing_sku",
                pos,
                "each line item needs `hs_sku` (the SKU of its product) or `hs_product_id` in `line_items.mapping`",
            )
            .hint = Some("for example `hs_sku: \"{{record.sku}}\"`".into());
    }
}

/// A line item create without `line_items`: one line item per record, which should go on a
/// deal and name its product.
fn check_line_item_records(c: &mut Checker<'_>, flow: &Flow, hs: &HubSpotAction) {
    let pos = c.value_pos(&["object"]);
    if hs.associate_with.is_empty() {
        c.warning(
            "line_item_without_deal",
            pos,
            "these line items are created on no deal",
        )
        .hint = Some(
            "add `associate_with: [DEAL_ACTION]` naming the earlier action that creates the deal"
                .into(),
        );
    } else if deal_of(flow, hs).is_some()
        && !flow.mapping.contains_key("hs_sku")
        && !flow.mapping.contains_key("hs_product_id")
    {
        c.error(
            "missing_sku",
            pos,
            "each line item needs `hs_sku` (the SKU of its product) or `hs_product_id` in the mapping",
        )
        .hint = Some("for example `hs_sku: \"{{record.sku}}\"`".into());
    }
}

/// The polls of all flows on one connection must fit its daily limit. Flows watching the same
/// object and event share one search per poll (at the fastest `poll_every` among them), so a
/// group costs what its fastest member costs.
pub(crate) fn check_daily_budgets(
    flows: &[&CheckedFlow],
    connections: &IndexMap<String, CheckedConnection>,
    out: &mut Vec<Diagnostic>,
) {
    let mut groups: IndexMap<String, (&str, Duration)> = IndexMap::new();
    for flow in flows {
        let Some(crate::model::Trigger::Hubspot(t)) = &flow.flow.trigger else {
            continue;
        };
        if t.poll_every < MIN_INTERVAL {
            continue;
        }
        let entry = groups
            .entry(t.group_key())
            .or_insert((t.connection.as_str(), t.poll_every));
        entry.1 = entry.1.min(t.poll_every);
    }
    let mut per_connection: IndexMap<&str, u64> = IndexMap::new();
    for (connection, every) in groups.values() {
        *per_connection.entry(connection).or_default() +=
            crate::validate::calls_per_day_for(*every);
    }
    for (name, calls) in per_connection {
        let Some(conn) = connections.get(name) else {
            continue;
        };
        let crate::model::Connection::Hubspot(hs) = &conn.connection else {
            continue;
        };
        if calls > hs.daily_limit {
            out.push(
                Diagnostic::warning(
                    "daily_limit_exceeded",
                    &conn.file,
                    conn.pos,
                    format!(
                        "the triggers on connection `{name}` poll {} times a day, more than its daily_limit of {}",
                        thousands(calls),
                        thousands(hs.daily_limit)
                    ),
                )
                .with_hint("poll less often, or raise `daily_limit` if your HubSpot tier allows more (Professional: 650,000)"),
            );
        }
    }
}
