//! `rivulet check [CONNECTION] [PATHS…]`: the sample data pull (and, with `--write`, push) of
//! HubSpot's install guide, for each connection the flows define (or the one named).
//!
//! ```sh
//! rivulet check                            # every connection in flows/
//! rivulet check hubspot demo               # the connection `hubspot` of demo/
//! rivulet check --write --format json      # also create and archive a marked test record
//! rivulet check demo --sandbox             # against the built-in sandbox, no account needed
//! ```
//!
//! The first argument names a connection unless it is an existing file or folder (or give
//! `--connection NAME`); the others are flow files or folders (default `flows`). The flows are
//! validated first: what they do decides what is checked.
//!
//! For a **HubSpot** connection, one line per check:
//!
//! - `token`: what the token may do (HubSpot's token description: account, app, scopes);
//! - `scopes`: the scopes the flows need that the token lacks — `crm.objects.{type}.read` for
//!   each object a trigger, source or action uses, `.write` for each object an action writes,
//!   `crm.schemas.{type}.read` for the properties checked below;
//! - `read`: one record of each object the flows use (companies and contacts when none does);
//! - `category`: each category property the connection names (`company_category_property`,
//!   `contact_category_property`): that it exists, is a dropdown, and its options;
//! - `match_on`: each unique property an upsert matches on (a contact's `email` aside): that it
//!   exists and has unique values, as HubSpot's upsert requires;
//! - `rate_limit`: the headroom HubSpot's `X-HubSpot-RateLimit-*` headers reported on these
//!   calls, and whether the connection's `throttle` is above HubSpot's limit;
//! - `write`: with `--write`, a test record (a company named `rivulet check <time>`, or a contact
//!   `rivulet-check-<ms>@example.com` when the flows write only contacts) created and archived at
//!   once; without it, nothing is written.
//!
//! For an **HTTP** connection: `reachable`, one `GET` of the base URL; any answer counts.
//!
//! Human output marks each line `✓` (ok), `!` (warning), `✗` (problem) or `-` (not checked),
//! in colour on a terminal; with `NO_COLOR` set, or when not writing to a terminal, the markers
//! are `[ok]`, `[warn]`, `[FAIL]` and `[--]`. Secrets never appear: every message is scrubbed.
//!
//! `--format json` prints one document (`version` 1; fields are only ever added):
//! `{"version":1,"ok":bool,"write":bool,"sandbox":bool,"connections":[{"name","kind","target",
//! "api_version","ok","checks":[{"check","status","message",…}],"token","missing_scopes",
//! "rate_limit"}],"summary":{"connections","checks","problems","warnings"}}`; `status` is `ok`,
//! `warning`, `problem` or `skipped`, and a check carries the fields it concerns (`object`,
//! `property`, `flows`, `options`, `missing`, `id`, …).
//!
//! Exit codes: 0 every check passed (warnings allowed); 1 a problem was found (a missing scope,
//! a missing or non-dropdown category property, a missing or non-unique upsert property, a failed
//! read or write, an unreachable API, a connection that cannot be built, or invalid flows);
//! 2 usage or I/O error (an unknown connection, unreadable paths, no connection at all).

use crate::render::JSON_VERSION;
use anyhow::{Context as _, bail};
use rivulet_hubspot::{Client, ListRequest, ObjectType, TokenInfo, WriteInput};
use rivulet_runtime::connectors::http::{HttpClient, HttpError};
use rivulet_runtime::connectors::hubspot::{Categories, CategoryError};
use rivulet_runtime::connectors::{Clients, Overrides};
use rivulet_spec::model::{Action, Connection, HubSpotConnection, Source, Trigger};
use rivulet_spec::validate::{Options, Validation, validate_paths};
use serde_json::{Map, Value, json};
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output formats of `rivulet check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// One line per check.
    Human,
    /// One JSON document (stable, versioned).
    Json,
}

/// Arguments of `rivulet check`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet check                          # every connection of flows/\n  rivulet check hubspot demo             # one connection of demo/\n  rivulet check --write                  # also create and archive a test record\n  rivulet check demo --sandbox           # try it on the built-in sandbox\n  rivulet check --format json            # for CI\n\nIt writes nothing unless --write (then it says what it created and archived).\n\nExit codes: 0 every check passed (warnings allowed), 1 a problem was found (missing scope, missing or non-dropdown category property, missing or non-unique upsert property, failed read or write, unreachable API, invalid flows), 2 usage or I/O error (unknown connection, unreadable paths)."
)]
pub struct Args {
    /// A connection to check, then flow files or folders (default `flows`). The first argument
    /// names a connection unless it is an existing file or folder.
    #[arg(value_name = "CONNECTION|PATH")]
    args: Vec<String>,
    /// The connection to check (then every argument is a path).
    #[arg(long, value_name = "NAME")]
    connection: Option<String>,
    /// Also create a marked test record (a company named `rivulet check <time>`) and archive
    /// it at once, to prove writes work.
    #[arg(long)]
    write: bool,
    /// Output: `human` (one line per check) or `json` (stable, versioned).
    #[arg(long, value_enum, default_value = "human")]
    format: CheckFormat,
    /// Check against the built-in HubSpot sandbox (with HubSpot-like rate limits) and demo HTTP
    /// API instead of the real ends.
    #[arg(long)]
    sandbox: bool,
}

// ---------------------------------------------------------------------------------------------
// Checks and their rendering

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Passed.
    Ok,
    /// Worth knowing; does not fail the command.
    Warning,
    /// Failed: the command exits 1.
    Problem,
    /// Not checked (nothing to check, or `--write` not given).
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Problem => "problem",
            Status::Skipped => "skipped",
        }
    }
}

/// Line markers: `✓ ! ✗ -` in colour on a terminal, `[ok] [warn] [FAIL] [--]` otherwise.
pub(crate) struct Marks {
    fancy: bool,
}

impl Marks {
    /// Markers for stdout: fancy only on a terminal without `NO_COLOR`.
    pub(crate) fn detect() -> Marks {
        Marks {
            fancy: std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// The marker of `status`, padded to one width.
    pub(crate) fn mark(&self, status: Status) -> String {
        if self.fancy {
            let (code, sign) = match status {
                Status::Ok => ("32", "✓"),
                Status::Warning => ("33", "!"),
                Status::Problem => ("31", "✗"),
                Status::Skipped => ("2", "-"),
            };
            format!("\x1b[{code}m{sign}\x1b[0m")
        } else {
            match status {
                Status::Ok => "[ok]  ",
                Status::Warning => "[warn]",
                Status::Problem => "[FAIL]",
                Status::Skipped => "[--]  ",
            }
            .to_string()
        }
    }
}

/// One check's outcome.
#[derive(Debug)]
struct Check {
    check: &'static str,
    status: Status,
    message: String,
    extra: Map<String, Value>,
}

impl Check {
    fn new(check: &'static str, status: Status, message: impl Into<String>) -> Check {
        Check {
            check,
            status,
            message: scrub(&message.into()),
            extra: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Check {
        self.extra.insert(key.to_string(), value);
        self
    }

    fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert("check".into(), json!(self.check));
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("message".into(), json!(self.message));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

fn scrub(text: &str) -> String {
    rivulet_http::secrets::scrub(text).into_owned()
}

/// The checks of one connection.
#[derive(Debug)]
struct Report {
    name: String,
    kind: &'static str,
    target: String,
    api_version: Option<&'static str>,
    checks: Vec<Check>,
    token: Option<Value>,
    missing_scopes: Vec<String>,
    rate_limit: Option<Value>,
}

impl Report {
    fn new(name: &str, kind: &'static str, target: String) -> Report {
        Report {
            name: name.to_string(),
            kind,
            target,
            api_version: None,
            checks: Vec::new(),
            token: None,
            missing_scopes: Vec::new(),
            rate_limit: None,
        }
    }

    fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Problem)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "api_version": self.api_version,
            "ok": self.ok(),
            "checks": self.checks.iter().map(Check::json).collect::<Vec<_>>(),
            "token": self.token,
            "missing_scopes": self.missing_scopes,
            "rate_limit": self.rate_limit,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// What the flows do with a connection

/// One object a HubSpot connection's flows use, and how.
#[derive(Debug)]
struct Use {
    object: ObjectType,
    read_by: Vec<String>,
    written_by: Vec<String>,
}

/// The objects the flows read and write through connection `name`, companies and contacts
/// first; companies and contacts (read) when no flow uses it.
fn usage(validation: &Validation, name: &str) -> Vec<Use> {
    let mut uses: Vec<Use> = Vec::new();
    let mut add = |object: &str, flow: &str, write: bool| {
        let Ok(object) = object.parse::<ObjectType>() else {
            return;
        };
        let i = match uses.iter().position(|u| u.object == object) {
            Some(i) => i,
            None => {
                uses.push(Use {
                    object,
                    read_by: Vec::new(),
                    written_by: Vec::new(),
                });
                uses.len() - 1
            }
        };
        let list = if write {
            &mut uses[i].written_by
        } else {
            &mut uses[i].read_by
        };
        if !list.iter().any(|f| f == flow) {
            list.push(flow.to_string());
        }
    };
    for f in &validation.flows {
        let flow = f.flow.name.as_str();
        if let Some(Trigger::Hubspot(t)) = &f.flow.trigger
            && t.connection == name
        {
            add(t.object.as_str(), flow, false);
        }
        if let Some(Source::Hubspot(s)) = &f.flow.source
            && s.connection == name
        {
            add(&s.object, flow, false);
        }
        for a in &f.flow.actions {
            if let Action::Hubspot(a) = a
                && a.connection == name
            {
                add(&a.object, flow, true);
            }
        }
    }
    if uses.is_empty() {
        for object in [ObjectType::Companies, ObjectType::Contacts] {
            uses.push(Use {
                object,
                read_by: Vec::new(),
                written_by: Vec::new(),
            });
        }
    }
    let rank = |o: &ObjectType| match o {
        ObjectType::Companies => 0,
        ObjectType::Contacts => 1,
        ObjectType::Other(_) => 2,
    };
    uses.sort_by_key(|u| rank(&u.object));
    uses
}

/// The unique properties the connection's upserts match on (a contact's `email` aside: HubSpot
/// matches contacts by it natively), with the flows that use each.
fn match_keys(validation: &Validation, name: &str) -> Vec<(ObjectType, String, Vec<String>)> {
    let mut keys: Vec<(ObjectType, String, Vec<String>)> = Vec::new();
    for f in &validation.flows {
        for a in &f.flow.actions {
            let Action::Hubspot(a) = a else { continue };
            let (Some(property), Ok(object)) = (&a.match_on, a.object.parse::<ObjectType>()) else {
                continue;
            };
            if a.connection != name || (object == ObjectType::Contacts && property == "email") {
                continue;
            }
            match keys
                .iter_mut()
                .find(|(o, p, _)| *o == object && p == property)
            {
                Some((_, _, flows)) => {
                    if !flows.contains(&f.flow.name) {
                        flows.push(f.flow.name.clone());
                    }
                }
                None => keys.push((object, property.clone(), vec![f.flow.name.clone()])),
            }
        }
    }
    keys
}

/// `companies` → `company`.
fn singular(object: &ObjectType) -> &str {
    match object {
        ObjectType::Companies => "company",
        ObjectType::Contacts => "contact",
        other => other.path_segment(),
    }
}

/// `reads` for one flow, `read` for several.
fn verb(subjects: usize, verb: &str) -> String {
    if subjects == 1 {
        format!("{verb}s")
    } else {
        verb.to_string()
    }
}

/// A scope and why it is needed.
struct Needed {
    scope: String,
    why: String,
}

fn needed_scopes(
    uses: &[Use],
    categories: &[ObjectType],
    keys: &[(ObjectType, String, Vec<String>)],
    write_test: Option<&ObjectType>,
) -> Vec<Needed> {
    let mut out: Vec<Needed> = Vec::new();
    let mut add = |scope: String, why: String| {
        if !out.iter().any(|n| n.scope == scope) {
            out.push(Needed { scope, why });
        }
    };
    for u in uses {
        let o = u.object.path_segment();
        let readers: Vec<&str> = u
            .read_by
            .iter()
            .chain(&u.written_by)
            .map(String::as_str)
            .collect();
        let why = if readers.is_empty() {
            format!("to read {o}")
        } else {
            format!("{} {} {o}", readers.join(", "), verb(readers.len(), "use"))
        };
        add(u.object.scope(false), why);
        if !u.written_by.is_empty() {
            add(
                u.object.scope(true),
                format!(
                    "{} {} {o}",
                    u.written_by.join(", "),
                    verb(u.written_by.len(), "write")
                ),
            );
        }
    }
    for object in categories {
        add(
            object.schema_scope(),
            format!("to read the {} category property", singular(object)),
        );
    }
    for (object, property, _) in keys {
        add(
            object.schema_scope(),
            format!("to read the {} property `{property}`", singular(object)),
        );
    }
    if let Some(object) = write_test {
        add(
            object.scope(true),
            format!("--write creates a test {}", singular(object)),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HubSpot

fn hubspot_error(e: &rivulet_hubspot::Error) -> String {
    scrub(&e.to_string())
}

async fn check_token(report: &mut Report, client: &Client, needed: &[Needed]) -> Option<TokenInfo> {
    match client.token_info().await {
        Ok(info) => {
            let mut who = Vec::new();
            if let Some(hub) = info.hub_id {
                who.push(format!("account {hub}"));
            }
            if let Some(app) = info.app_id {
                who.push(format!("app {app}"));
            }
            if let Some(user) = &info.user {
                who.push(format!("authorised by {user}"));
            }
            who.push(format!("{} scopes", info.scopes.len()));
            report.token = Some(json!({
                "hub_id": info.hub_id,
                "app_id": info.app_id,
                "user": info.user,
                "scopes": info.scopes,
                "expires_in_seconds": info.expires_in.map(|d| d.as_secs()),
            }));
            report.push(Check::new(
                "token",
                Status::Ok,
                format!("token: {}", who.join(", ")),
            ));
            let names: Vec<&str> = needed.iter().map(|n| n.scope.as_str()).collect();
            let missing = info.missing_scopes(&names);
            report.missing_scopes = missing.iter().map(|s| s.to_string()).collect();
            if missing.is_empty() {
                report.push(
                    Check::new(
                        "scopes",
                        Status::Ok,
                        format!("scopes: it has all {} needed", needed.len()),
                    )
                    .with("needed", json!(names))
                    .with("missing", json!([])),
                );
            } else {
                let said: Vec<String> = needed
                    .iter()
                    .filter(|n| missing.contains(&n.scope.as_str()))
                    .map(|n| format!("{} ({})", n.scope, n.why))
                    .collect();
                report.push(
                    Check::new(
                        "scopes",
                        Status::Problem,
                        format!(
                            "scopes: the token lacks {}; grant them to the app (private app: its scopes; OAuth: `rivulet auth hubspot --scopes …` again)",
                            said.join(", ")
                        ),
                    )
                    .with("needed", json!(names))
                    .with("missing", json!(missing)),
                );
            }
            Some(info)
        }
        Err(e) => {
            let refused = e.status() == Some(401) || e.category() == "AUTH";
            let (status, message) = if refused {
                (
                    Status::Problem,
                    format!(
                        "token: HubSpot refused it: {}; check the token (or the OAuth app and refresh token)",
                        hubspot_error(&e)
                    ),
                )
            } else {
                (
                    Status::Warning,
                    format!(
                        "token: could not read what it may do ({}); scopes not checked",
                        hubspot_error(&e)
                    ),
                )
            };
            report.push(Check::new("token", status, message));
            report.push(Check::new(
                "scopes",
                Status::Skipped,
                "scopes: not checked (no token description)",
            ));
            None
        }
    }
}

async fn check_reads(report: &mut Report, client: &Client, uses: &[Use]) {
    for u in uses {
        let o = u.object.path_segment();
        let flows: Vec<&String> = u.read_by.iter().chain(&u.written_by).collect();
        let request = ListRequest {
            limit: Some(1),
            ..ListRequest::default()
        };
        let check = match client.list(&u.object, &request).await {
            Ok(page) => match page.results.first() {
                Some(record) => Check::new(
                    "read",
                    Status::Ok,
                    format!("read {o}: one record (id {})", record.id),
                )
                .with("records", json!(1))
                .with("id", json!(record.id)),
                None => Check::new(
                    "read",
                    Status::Ok,
                    format!("read {o}: the account has none yet"),
                )
                .with("records", json!(0)),
            },
            Err(e) => Check::new(
                "read",
                Status::Problem,
                format!("read {o}: {}", hubspot_error(&e)),
            )
            .with("error", json!(scrub(&e.to_string()))),
        };
        report.push(check.with("object", json!(o)).with("flows", json!(flows)));
    }
}

async fn check_categories(report: &mut Report, client: &Client, categories: &Categories) {
    if categories.is_empty() {
        report.push(Check::new(
            "category",
            Status::Skipped,
            "category properties: none configured (company_category_property, contact_category_property)",
        ));
        return;
    }
    for (object, property, state) in categories.report(client).await {
        let check = match state {
            Ok(def) => {
                let options: Vec<Value> = def
                    .options
                    .iter()
                    .map(|o| json!({"value": o.value, "label": o.label, "hidden": o.hidden}))
                    .collect();
                let listed = if def.options.is_empty() {
                    "no options yet: add the other system's categories in HubSpot".to_string()
                } else {
                    def.allowed()
                };
                Check::new(
                    "category",
                    if def.options.is_empty() {
                        Status::Warning
                    } else {
                        Status::Ok
                    },
                    format!(
                        "{object} category property `{property}`: a dropdown with {} option{}: {listed}",
                        def.options.len(),
                        if def.options.len() == 1 { "" } else { "s" },
                    ),
                )
                .with("exists", json!(true))
                .with("dropdown", json!(true))
                .with("options", json!(options))
            }
            Err(e) => {
                let (exists, dropdown) = match &e {
                    CategoryError::Missing { .. } => (json!(false), json!(false)),
                    CategoryError::NotEnumeration { .. } => (json!(true), json!(false)),
                    CategoryError::Unreadable { .. } => (Value::Null, Value::Null),
                };
                Check::new("category", Status::Problem, e.to_string())
                    .with("exists", exists)
                    .with("dropdown", dropdown)
            }
        };
        report.push(
            check
                .with("object", json!(object))
                .with("property", json!(property)),
        );
    }
}

async fn check_match_keys(
    report: &mut Report,
    client: &Client,
    keys: &[(ObjectType, String, Vec<String>)],
) {
    for (object, property, flows) in keys {
        let o = singular(object);
        let by = flows.join(", ");
        let (status, message) = match client.property(object, property).await {
            Ok(Some(def)) if def.has_unique_value => (
                Status::Ok,
                format!(
                    "upsert key `{property}` of {}: exists, with unique values ({by})",
                    object.path_segment()
                ),
            ),
            Ok(Some(_)) => (
                Status::Problem,
                format!(
                    "upsert key `{property}` of {}: exists but does not require unique values, and HubSpot upserts only by a unique property ({by}): use a property with \"Require unique values\" on",
                    object.path_segment()
                ),
            ),
            Ok(None) => (
                Status::Problem,
                format!(
                    "upsert key `{property}` of {}: no such {o} property ({by}): create it in HubSpot as a single-line text property with \"Require unique values\" on",
                    object.path_segment()
                ),
            ),
            Err(e) => (
                Status::Problem,
                format!(
                    "upsert key `{property}` of {}: reading it failed: {}",
                    object.path_segment(),
                    hubspot_error(&e)
                ),
            ),
        };
        report.push(
            Check::new("match_on", status, message)
                .with("object", json!(object.path_segment()))
                .with("property", json!(property))
                .with("flows", json!(flows)),
        );
    }
}

fn per(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn thousands(n: u64) -> String {
    rivulet_spec::validate::thousands(n)
}

fn check_rate_limit(report: &mut Report, client: &Client, hs: &HubSpotConnection) {
    let Some(h) = client.rate_limit_headroom() else {
        report.push(Check::new(
            "rate_limit",
            Status::Skipped,
            "rate limit: HubSpot's answers carried no X-HubSpot-RateLimit headers",
        ));
        return;
    };
    report.rate_limit = Some(json!({
        "max": h.max,
        "remaining": h.remaining,
        "interval_ms": h.interval.map(|d| d.as_millis() as u64),
        "daily": h.daily,
        "daily_remaining": h.daily_remaining,
    }));
    let mut parts = Vec::new();
    match (h.remaining, h.max, h.interval) {
        (Some(r), Some(m), Some(i)) => parts.push(format!(
            "{} of {} requests left per {}",
            thousands(r),
            thousands(m),
            per(i)
        )),
        (Some(r), _, _) => parts.push(format!("{} requests left in this window", thousands(r))),
        _ => {}
    }
    match (h.daily_remaining, h.daily) {
        (Some(r), Some(d)) => {
            parts.push(format!("{} of {} left today", thousands(r), thousands(d)))
        }
        (Some(r), None) => parts.push(format!("{} left today", thousands(r))),
        _ => parts.push("no daily figures (HubSpot sends none for OAuth apps)".into()),
    }
    let mut status = Status::Ok;
    let mut notes = Vec::new();
    if let (Some(max), Some(interval)) = (h.max, h.interval)
        && !interval.is_zero()
        && !hs.throttle.per.get().is_zero()
    {
        let theirs = max as f64 / interval.as_secs_f64();
        let ours = f64::from(hs.throttle.limit) / hs.throttle.per.get().as_secs_f64();
        if ours > theirs * 1.001 {
            status = Status::Warning;
            notes.push(format!(
                "the connection's throttle ({} per {}) is above HubSpot's limit ({} per {}): lower `throttle` or expect 429s",
                hs.throttle.limit,
                per(hs.throttle.per.get()),
                max,
                per(interval)
            ));
        }
    }
    if let Some(daily) = h.daily
        && hs.daily_limit > daily
    {
        status = Status::Warning;
        notes.push(format!(
            "the connection's daily_limit ({}) is above the account's ({}): `validate` estimates against it",
            thousands(hs.daily_limit),
            thousands(daily)
        ));
    }
    if h.daily_remaining == Some(0) {
        status = Status::Problem;
        notes.push("the daily limit is used up until HubSpot's daily reset".into());
    }
    let mut message = format!("rate limit: {}", parts.join("; "));
    if !notes.is_empty() {
        message = format!("{message}; {}", notes.join("; "));
    }
    report.push(Check::new("rate_limit", status, message));
}

/// The object `--write` tests: the first of companies and contacts the flows write, else
/// companies.
fn write_object(uses: &[Use]) -> ObjectType {
    uses.iter()
        .find(|u| {
            !u.written_by.is_empty()
                && matches!(u.object, ObjectType::Companies | ObjectType::Contacts)
        })
        .map(|u| u.object.clone())
        .unwrap_or(ObjectType::Companies)
}

async fn check_write(report: &mut Report, client: &Client, object: &ObjectType) {
    let now = chrono::Utc::now();
    let stamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let marker = format!("rivulet check {stamp}");
    let note =
        "A test record `rivulet check --write` created and archived at once; safe to delete.";
    let (input, label) = match object {
        ObjectType::Contacts => {
            let email = format!("rivulet-check-{}@example.com", now.timestamp_millis());
            (
                WriteInput::new([
                    ("email", email.as_str()),
                    ("firstname", "rivulet check"),
                    ("lastname", stamp.as_str()),
                ]),
                format!("contact {email}"),
            )
        }
        _ => (
            WriteInput::new([("name", marker.as_str()), ("description", note)]),
            format!("company \"{marker}\""),
        ),
    };
    let o = object.path_segment();
    let created = match client.create(object, &input).await {
        Ok(record) => record,
        Err(e) => {
            report.push(
                Check::new(
                    "write",
                    Status::Problem,
                    format!(
                        "write: creating a test {label} failed: {}",
                        hubspot_error(&e)
                    ),
                )
                .with("object", json!(o))
                .with("created", Value::Null)
                .with("archived", json!(false)),
            );
            return;
        }
    };
    let id = created.id.clone();
    let check = match client.archive(object, &id).await {
        Ok(()) => Check::new(
            "write",
            Status::Ok,
            format!("write: created {label} (id {id}) and archived it"),
        )
        .with("archived", json!(true)),
        Err(e) => Check::new(
            "write",
            Status::Problem,
            format!(
                "write: created {label} (id {id}) but archiving it failed: {}; delete it in HubSpot",
                hubspot_error(&e)
            ),
        )
        .with("archived", json!(false)),
    };
    report.push(
        check
            .with("object", json!(o))
            .with("created", json!(id))
            .with("name", json!(marker)),
    );
}

async fn check_hubspot(
    name: &str,
    hs: &HubSpotConnection,
    validation: &Validation,
    overrides: &Overrides,
    write: bool,
) -> Report {
    let mut report = Report::new(name, "hubspot", String::new());
    report.api_version = Some(hs.api_version.as_str());
    let clients = match Clients::build(validation, [name], overrides) {
        Ok(c) => c,
        Err(e) => {
            report.target = hs.base_url.clone();
            report.push(Check::new(
                "connection",
                Status::Problem,
                format!("connection: {}", e.message),
            ));
            return report;
        }
    };
    let client = match clients.hubspot(name) {
        Ok(c) => c.clone(),
        Err(e) => {
            report.push(Check::new("connection", Status::Problem, e));
            return report;
        }
    };
    report.target = client.config().base_url.clone();
    let categories = clients
        .hubspot_categories(name)
        .unwrap_or_else(|| std::sync::Arc::new(Categories::new(hs)));
    let uses = usage(validation, name);
    let keys = match_keys(validation, name);
    let category_objects: Vec<ObjectType> = [ObjectType::Companies, ObjectType::Contacts]
        .into_iter()
        .filter(|o| categories.property_of(o).is_some())
        .collect();
    let write_test = write.then(|| write_object(&uses));
    let needed = needed_scopes(&uses, &category_objects, &keys, write_test.as_ref());
    check_token(&mut report, &client, &needed).await;
    check_reads(&mut report, &client, &uses).await;
    check_categories(&mut report, &client, &categories).await;
    check_match_keys(&mut report, &client, &keys).await;
    check_rate_limit(&mut report, &client, hs);
    match &write_test {
        Some(object) => check_write(&mut report, &client, object).await,
        None => report.push(Check::new(
            "write",
            Status::Skipped,
            format!(
                "write: not tested; nothing was written (--write creates and archives a test {})",
                singular(&write_object(&uses))
            ),
        )),
    }
    report
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// The base URL to show: scheme, host, port and path (no credentials, no query).
fn shown_url(client: &HttpClient) -> String {
    match client.url("") {
        Ok(url) => {
            let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
            if let Some(port) = url.port() {
                shown.push_str(&format!(":{port}"));
            }
            shown.push_str(url.path());
            shown
        }
        Err(_) => String::from("(no URL)"),
    }
}

async fn check_http(
    name: &str,
    base_url: &str,
    validation: &Validation,
    overrides: &Overrides,
) -> Report {
    let mut report = Report::new(name, "http", base_url.to_string());
    let clients = match Clients::build(validation, [name], overrides) {
        Ok(c) => c,
        Err(e) => {
            report.push(Check::new(
                "connection",
                Status::Problem,
                format!("connection: {}", e.message),
            ));
            return report;
        }
    };
    let client = match clients.http(name) {
        Ok(c) => c.clone(),
        Err(e) => {
            report.push(Check::new("connection", Status::Problem, e));
            return report;
        }
    };
    let url = shown_url(&client);
    report.target = url.clone();
    let answered = |status: u16| {
        Check::new(
            "reachable",
            Status::Ok,
            format!("reachable: GET {url} answered {status}"),
        )
        .with("status_code", json!(status))
    };
    let check = match client.get_json("", &[]).await {
        Ok(answer) => answered(answer.status.as_u16()),
        Err(
            HttpError::Status { status, .. }
            | HttpError::NotJson { status, .. }
            | HttpError::TooLarge { status, .. },
        ) => answered(status),
        Err(e) => Check::new(
            "reachable",
            Status::Problem,
            format!("reachable: GET {url} got no answer: {e}"),
        ),
    };
    report.push(check);
    report
}

// ---------------------------------------------------------------------------------------------
// The command

/// The connection to check (if one is named) and the paths.
fn targets(args: &Args) -> anyhow::Result<(Option<String>, Vec<PathBuf>)> {
    let mut rest: Vec<String> = args.args.clone();
    let mut connection = args.connection.clone();
    let mut inferred = false;
    if connection.is_none()
        && let Some(first) = rest.first()
        && std::fs::symlink_metadata(first).is_err()
    {
        connection = Some(rest.remove(0));
        inferred = true;
    }
    if rest.is_empty() {
        let default = PathBuf::from("flows");
        if std::fs::symlink_metadata(&default).is_err() {
            match &connection {
                Some(name) if inferred => bail!(
                    "there is no file or folder `{name}`, so it names a connection, and there is no flows/ folder here to find it in: give the folder (`rivulet check {name} DIR`, or `rivulet check DIR`)"
                ),
                _ => bail!(
                    "there is no flows/ folder here: give the flows' folder (`rivulet check DIR`; `rivulet init` writes one)"
                ),
            }
        }
        rest.push("flows".into());
    }
    Ok((connection, rest.into_iter().map(PathBuf::from).collect()))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (connection, paths) = targets(&args)?;
    let validation = validate_paths(&paths, &Options::default())?;
    let shown_paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut stdout = std::io::stdout().lock();
    if !validation.is_valid(false) {
        let mut stderr = std::io::stderr().lock();
        crate::render::validation(
            &mut stderr,
            &validation,
            crate::render::Format::Human,
            false,
        )?;
        writeln!(
            stderr,
            "rivulet: not checking: the flows are invalid (`rivulet validate {}` lists every problem)",
            shown_paths.join(" ")
        )?;
        if args.format == CheckFormat::Json {
            let doc = json!({
                "version": JSON_VERSION,
                "ok": false,
                "valid": false,
                "write": args.write,
                "sandbox": args.sandbox,
                "connections": [],
                "summary": {"connections": 0, "checks": 0, "problems": 1, "warnings": 0},
            });
            serde_json::to_writer_pretty(&mut stdout, &doc)?;
            writeln!(stdout)?;
        }
        return Ok(ExitCode::from(crate::exit::FAILED));
    }
    let names: Vec<String> = match &connection {
        Some(name) if validation.connections.contains_key(name) => vec![name.clone()],
        Some(name) => {
            let known: Vec<&str> = validation.connections.keys().map(String::as_str).collect();
            let hint = match rivulet_spec::diagnostic::did_you_mean(name, known.iter().copied()) {
                Some(m) => format!("did you mean `{m}`?"),
                None if known.is_empty() => "they define none".to_string(),
                None => format!("they define {}", known.join(", ")),
            };
            bail!(
                "no connection `{name}` in {} ({hint}); the first argument names a connection unless it is an existing file or folder",
                shown_paths.join(", ")
            );
        }
        None => validation.connections.keys().cloned().collect(),
    };
    if names.is_empty() {
        bail!(
            "no connections in {}: a connections.yaml beside the flows defines them (`rivulet init` writes one)",
            shown_paths.join(", ")
        );
    }
    let runtime = super::state::runtime()?;
    let write = args.write;
    let sandbox = args.sandbox;
    let reports = runtime.block_on(async {
        let mut overrides = Overrides::default();
        let mut handle = None;
        if sandbox {
            let sb = rivulet_sandbox::Sandbox::start(rivulet_sandbox::SandboxConfig {
                demo_data: true,
                ..rivulet_sandbox::SandboxConfig::hubspot_limits()
            })
            .await
            .context("starting the sandbox")?;
            overrides.hubspot = Some((sb.url(), "sandbox".into()));
            let (addr, _received) = crate::demo::start()
                .await
                .context("starting the demo HTTP API")?;
            overrides.http = Some(format!("http://{addr}"));
            handle = Some(sb);
        }
        let mut reports = Vec::new();
        for name in &names {
            let Some(checked) = validation.connections.get(name) else {
                continue;
            };
            let report = match &checked.connection {
                Connection::Hubspot(hs) => {
                    check_hubspot(name, hs, &validation, &overrides, write).await
                }
                Connection::Http(c) => check_http(name, &c.base_url, &validation, &overrides).await,
            };
            reports.push(report);
        }
        if let Some(sb) = handle {
            sb.shutdown().await;
        }
        anyhow::Ok(reports)
    })?;
    let ok = reports.iter().all(Report::ok);
    let checks: usize = reports.iter().map(|r| r.checks.len()).sum();
    let problems: usize = reports.iter().map(|r| r.count(Status::Problem)).sum();
    let warnings: usize = reports.iter().map(|r| r.count(Status::Warning)).sum();
    match args.format {
        CheckFormat::Json => {
            let doc = json!({
                "version": JSON_VERSION,
                "ok": ok,
                "valid": true,
                "write": write,
                "sandbox": sandbox,
                "connections": reports.iter().map(Report::json).collect::<Vec<_>>(),
                "summary": {
                    "connections": reports.len(),
                    "checks": checks,
                    "problems": problems,
                    "warnings": warnings,
                },
            });
            serde_json::to_writer_pretty(&mut stdout, &doc)?;
            writeln!(stdout)?;
        }
        CheckFormat::Human => {
            let marks = Marks::detect();
            for r in &reports {
                let kind = match r.kind {
                    "hubspot" => "HubSpot",
                    _ => "HTTP",
                };
                let version = r
                    .api_version
                    .map(|v| format!(", API {v}"))
                    .unwrap_or_default();
                let sandboxed = if sandbox { " (sandbox)" } else { "" };
                writeln!(
                    stdout,
                    "{} ({kind}, {}{version}){sandboxed}",
                    r.name,
                    scrub(&r.target)
                )?;
                for c in &r.checks {
                    writeln!(stdout, "  {} {}", marks.mark(c.status), c.message)?;
                }
            }
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            writeln!(
                stdout,
                "{} checked: {}, {}",
                plural(reports.len(), "connection"),
                plural(problems, "problem"),
                plural(warnings, "warning")
            )?;
        }
    }
    Ok(ExitCode::from(if ok {
        crate::exit::OK
    } else {
        crate::exit::FAILED
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_markers_have_one_width() {
        let m = Marks { fancy: false };
        let widths: Vec<usize> = [
            Status::Ok,
            Status::Warning,
            Status::Problem,
            Status::Skipped,
        ]
        .iter()
        .map(|s| m.mark(*s).chars().count())
        .collect();
        assert!(widths.iter().all(|w| *w == 6), "{widths:?}");
        assert_eq!(m.mark(Status::Problem), "[FAIL]");
    }

    #[test]
    fn scopes_name_why_they_are_needed() {
        let uses = vec![
            Use {
                object: ObjectType::Companies,
                read_by: vec![],
                written_by: vec!["in".into()],
            },
            Use {
                object: ObjectType::Contacts,
                read_by: vec!["out".into()],
                written_by: vec![],
            },
        ];
        let keys = vec![(
            ObjectType::Companies,
            "external_id".to_string(),
            vec!["in".into()],
        )];
        let needed = needed_scopes(
            &uses,
            &[ObjectType::Contacts],
            &keys,
            Some(&ObjectType::Contacts),
        );
        let scopes: Vec<&str> = needed.iter().map(|n| n.scope.as_str()).collect();
        assert_eq!(
            scopes,
            [
                "crm.objects.companies.read",
                "crm.objects.companies.write",
                "crm.objects.contacts.read",
                "crm.schemas.contacts.read",
                "crm.schemas.companies.read",
                "crm.objects.contacts.write"
            ]
        );
        assert_eq!(needed[1].why, "in writes companies");
        assert_eq!(needed[0].why, "in uses companies");
        assert_eq!(needed[5].why, "--write creates a test contact");
    }
}
