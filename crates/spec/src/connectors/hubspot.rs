//! HubSpot: the connection (an account), the polling trigger, the scheduled source and the
//! create / update / upsert action — their settings and the rules a schema cannot say.

use super::{CheckedFlow, Checker, ConnectionKind};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::env;
use crate::model::{Backoff, Duration, Flow, Throttle, default_timeout};
use crate::schedule::MIN_INTERVAL;
use crate::validate::{CheckedConnection, thousands};
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
    /// The refresh token, from the environment: `${HUBSPOT_REFRESH_TOKEN}`.
    pub refresh_token: String,
    /// The token endpoint.
    #[serde(default = "default_token_url")]
    pub token_url: String,
}

impl fmt::Debug for OAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("client_id", &self.client_id)
            .field("client_secret", &super::REDACTED)
            .field("refresh_token", &super::REDACTED)
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

impl HubSpotTrigger {
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
        let keys = ["oauth", "refresh_token"];
        c.secret(
            &keys,
            "refresh_token",
            secret_hint("refresh_token"),
            &oauth.refresh_token,
        );
        c.env_string(&["oauth", "client_id"], &oauth.client_id, name);
        c.env_string(&["oauth", "client_secret"], &oauth.client_secret, name);
        c.env_string(&["oauth", "refresh_token"], &oauth.refresh_token, name);
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

/// The rules of a `hubspot` action: HubSpot's rules for each operation, checked against what
/// the mapping provides.
pub fn check_action(c: &mut Checker<'_>, flow: &Flow, hs: &HubSpotAction) {
    c.connection_ref("connection", &hs.connection, ConnectionKind::HubSpot);
    check_object(c, &hs.object);
    if let Some(id) = &hs.id {
        c.template("id", id);
    }
    let mapped = |field: &str| flow.mapping.contains_key(field);
    let object = canonical_object(&hs.object);
    let op_pos = c.value_pos(&["operation"]);
    match (hs.operation, object) {
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
