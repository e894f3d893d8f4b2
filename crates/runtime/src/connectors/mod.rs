//! One folder per connector, each implementing the [`crate::connector`] traits for its side of
//! a flow, and the registry below: the one place that turns a flow's settings into a
//! connector's runtime. Adding a connector is a folder here, its settings module in
//! `rivulet_spec::connectors`, and one arm in each `match` below (see `docs/connectors.md`).

pub mod file;
pub mod http;
pub mod hubspot;

use crate::connector::{Action, Source, SourceError, TriggerGroup};
use rivulet_mapping::Mapping;
use rivulet_spec::model::{self, Connection};
use rivulet_spec::validate::Validation;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Where connections point instead of their own settings (the built-in sandbox).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Point every HubSpot connection here, with this token.
    pub hubspot: Option<(String, String)>,
    /// Point every HTTP connection at `{this}/{connection name}`.
    pub http: Option<String>,
}

/// Why a connection could not be built (an unset variable, an unreadable token file).
#[derive(Debug, thiserror::Error)]
#[error("connection `{name}`: {message}")]
pub struct ConnectionError {
    /// The connection.
    pub name: String,
    /// Why.
    pub message: String,
}

/// One client per connection in use, shared by every flow that uses it (and so sharing its
/// rate budget).
#[derive(Debug, Clone, Default)]
pub struct Clients {
    hubspot: HashMap<String, rivulet_hubspot::Client>,
    http: HashMap<String, http::HttpClient>,
}

impl Clients {
    /// Builds the clients of the connections `names` (those in use), reading secrets from the
    /// environment and secret files now.
    pub fn build<'a>(
        validation: &Validation,
        names: impl IntoIterator<Item = &'a str>,
        overrides: &Overrides,
    ) -> Result<Clients, ConnectionError> {
        let mut clients = Clients::default();
        for name in names {
            if clients.hubspot.contains_key(name) || clients.http.contains_key(name) {
                continue;
            }
            let Some(checked) = validation.connections.get(name) else {
                continue;
            };
            let dir = rivulet_spec::load::base_dir(&checked.file);
            let err = |message: String| ConnectionError {
                name: name.to_string(),
                message,
            };
            match &checked.connection {
                Connection::Hubspot(c) => {
                    let client =
                        hubspot::client(c, &dir, overrides.hubspot.as_ref()).map_err(err)?;
                    clients.hubspot.insert(name.to_string(), client);
                }
                Connection::Http(c) => {
                    let mut c = c.clone();
                    if let Some(prefix) = &overrides.http {
                        // The demo API stands in for the real one: its credentials stay unread.
                        c.base_url = format!("{}/{name}", prefix.trim_end_matches('/'));
                        for (header, value) in c.headers.iter_mut() {
                            if rivulet_spec::connectors::http::is_credential_header(header) {
                                *value = "Bearer sandbox".into();
                            }
                        }
                    }
                    let client = http::HttpClient::new(&c).map_err(|e| err(e.to_string()))?;
                    clients.http.insert(name.to_string(), client);
                }
            }
        }
        Ok(clients)
    }

    /// The client of HubSpot connection `name`.
    pub fn hubspot(&self, name: &str) -> Result<&rivulet_hubspot::Client, String> {
        self.hubspot
            .get(name)
            .ok_or_else(|| format!("no hubspot connection `{name}` was built"))
    }

    /// The client of HTTP connection `name`.
    pub fn http(&self, name: &str) -> Result<&http::HttpClient, String> {
        self.http
            .get(name)
            .ok_or_else(|| format!("no http connection `{name}` was built"))
    }
}

/// What building an action may need besides its settings.
pub struct ActionContext<'a> {
    /// The flow's name (idempotency keys, logs).
    pub flow: &'a str,
    /// The flow file's folder: relative paths start here.
    pub base_dir: &'a Path,
    /// The flow's compiled mapping (its field order is the CSV column order).
    pub mapping: &'a Mapping,
    /// The connections' clients.
    pub clients: &'a Clients,
}

/// The runtime of one action.
pub fn build_action(
    action: &model::Action,
    cx: &ActionContext<'_>,
) -> Result<Box<dyn Action>, String> {
    Ok(match action {
        model::Action::Hubspot(a) => Box::new(hubspot::HubSpotWriter::new(
            cx.clients.hubspot(&a.connection)?.clone(),
            a,
        )?),
        model::Action::File(a) => Box::new(file::FileWriter::new(
            a,
            cx.base_dir,
            cx.mapping.fields().map(str::to_string).collect(),
        )),
        model::Action::Http(a) => Box::new(
            http::HttpWriter::new(a, cx.clients.http(&a.connection)?.clone(), cx.flow)
                .map_err(|e| e.to_string())?,
        ),
    })
}

/// A source, resuming from `checkpoint` (the last recorded page's).
pub fn build_source(
    source: &model::Source,
    base_dir: &Path,
    clients: &Clients,
    checkpoint: Option<Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Box<dyn Source>, SourceError> {
    Ok(match source {
        model::Source::File(s) => Box::new(file::FileReader::new(s, base_dir, checkpoint)?),
        model::Source::Http(s) => Box::new(http::HttpReader::new(
            s,
            clients
                .http(&s.connection)
                .map_err(SourceError::Config)?
                .clone(),
            checkpoint,
        )?),
        model::Source::Hubspot(s) => Box::new(hubspot::HubSpotReader::new(
            clients
                .hubspot(&s.connection)
                .map_err(SourceError::Config)?
                .clone(),
            s,
            checkpoint.as_ref(),
            now,
        )?),
    })
}

/// The poller of a group of triggers that share a group key (see
/// [`model::Trigger::group_key`]), members in the order given.
pub fn build_trigger_group(
    members: &[&model::Trigger],
    clients: &Clients,
) -> Result<Box<dyn TriggerGroup>, String> {
    let Some(first) = members.first() else {
        return Err("a trigger group needs a member".into());
    };
    Ok(match first {
        model::Trigger::Hubspot(t) => {
            let settings = members
                .iter()
                .map(|m| match m {
                    model::Trigger::Hubspot(t) => t.clone(),
                })
                .collect();
            Box::new(hubspot::TriggerGroup::new(
                clients.hubspot(&t.connection)?.clone(),
                settings,
            ))
        }
    })
}

/// Takes back a write a crash left unrecorded, from the undo mark recorded before it (see
/// [`crate::connector::RetrySafety::Undoable`]); says what it did.
pub async fn undo(kind: &str, mark: &Value) -> Result<String, String> {
    match kind {
        "file" => file::undo(mark).await,
        other => Err(format!("no connector `{other}` can undo writes")),
    }
}
