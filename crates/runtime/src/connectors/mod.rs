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
    /// Each HubSpot connection's category properties, read once and shared like its client.
    hubspot_categories: HashMap<String, std::sync::Arc<hubspot::Categories>>,
    http: HashMap<String, http::HttpClient>,
    /// Each client's connection as it was defined, to tell on reload whether it changed.
    defined: HashMap<String, String>,
    /// The HubSpot connections that create line items' missing products first.
    products_first: std::collections::HashSet<String>,
}

impl Clients {
    /// Builds the clients of the connections `names` (those in use), reading secrets from the
    /// environment and secret files now.
    pub fn build<'a>(
        validation: &Validation,
        names: impl IntoIterator<Item = &'a str>,
        overrides: &Overrides,
    ) -> Result<Clients, ConnectionError> {
        Clients::default().rebuild(validation, names, overrides)
    }

    /// The clients of the connections `names` after a reload: a connection defined as before
    /// keeps its client (and so its rate budget, its in-flight requests and its counters); a
    /// new or changed one gets a new client.
    pub fn rebuild<'a>(
        &self,
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
            let defined = Clients::definition(checked);
            clients.defined.insert(name.to_string(), defined.clone());
            if let Connection::Hubspot(c) = &checked.connection
                && c.transfer_products_first
            {
                clients.products_first.insert(name.to_string());
            }
            if self.defined.get(name) == Some(&defined) {
                if let Some(client) = self.hubspot.get(name) {
                    clients.hubspot.insert(name.to_string(), client.clone());
                    if let Some(c) = self.hubspot_categories.get(name) {
                        clients
                            .hubspot_categories
                            .insert(name.to_string(), std::sync::Arc::clone(c));
                    }
                    continue;
                }
                if let Some(client) = self.http.get(name) {
                    clients.http.insert(name.to_string(), client.clone());
                    continue;
                }
            }
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
                    clients.hubspot_categories.insert(
                        name.to_string(),
                        std::sync::Arc::new(hubspot::Categories::new(c)),
                    );
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

    /// A connection's definition, compared across reloads (the file matters: relative secret
    /// files are read from beside it).
    fn definition(checked: &rivulet_spec::validate::CheckedConnection) -> String {
        format!(
            "{}\n{}",
            checked.file.display(),
            serde_json::to_string(&checked.connection).unwrap_or_default()
        )
    }

    /// Whether `name`'s client is the one `other` has (the connection did not change).
    pub fn same_as(&self, other: &Clients, name: &str) -> bool {
        self.defined
            .get(name)
            .is_some_and(|d| other.defined.get(name) == Some(d))
    }

    /// Each connection keeps to a `1/runners` part of its limits: `runners` runners share the
    /// state, and so the accounts and APIs behind its connections.
    pub fn share_budget(&self, runners: usize) {
        for client in self.hubspot.values() {
            client.share_budget(runners);
        }
        for client in self.http.values() {
            client.share_budget(runners);
        }
    }

    /// Has `metrics` read every connection's HTTP counters at each scrape.
    pub fn watch(&self, metrics: &crate::metrics::Metrics) {
        for (name, client) in &self.hubspot {
            let client = client.clone();
            metrics.watch_connection(name, move || client.http_stats());
        }
        for (name, client) in &self.http {
            let client = client.clone();
            metrics.watch_connection(name, move || client.stats());
        }
        let names: Vec<&str> = self.defined.keys().map(String::as_str).collect();
        metrics.retain_connections(&names);
    }

    /// Asks every connection for one cheap answer, in the background, so a connection that
    /// cannot be reached shows at once (and `/readyz` knows each has answered) rather than at
    /// the first record.
    pub fn probe(&self) {
        self.probe_changed(&Clients::default());
    }

    /// [`Clients::probe`] for the connections that are new or changed since `before`.
    pub fn probe_changed(&self, before: &Clients) {
        for (name, client) in self
            .hubspot
            .iter()
            .filter(|(n, _)| !self.same_as(before, n))
        {
            let (name, client) = (name.clone(), client.clone());
            tokio::spawn(async move {
                let request = rivulet_hubspot::ListRequest {
                    limit: Some(1),
                    ..rivulet_hubspot::ListRequest::default()
                };
                if let Err(e) = client
                    .list(&rivulet_hubspot::ObjectType::Contacts, &request)
                    .await
                {
                    tracing::warn!(connection = %name, error = %e, "the connection does not answer yet");
                }
            });
        }
        for (name, client) in self.http.iter().filter(|(n, _)| !self.same_as(before, n)) {
            let (name, client) = (name.clone(), client.clone());
            tokio::spawn(async move {
                // Any answer, even a 404, says the API is there.
                if let Err(e @ http::HttpError::Transport { .. }) = client.get_json("", &[]).await {
                    tracing::warn!(connection = %name, error = %e, "the connection does not answer yet");
                }
            });
        }
    }

    /// Reads every HubSpot connection's category properties (once; later calls answer from
    /// memory) and checks that each exists and is a dropdown; the first that does not is the
    /// error, naming the property and what to do.
    pub async fn verify_hubspot(&self) -> Result<(), ConnectionError> {
        for (name, categories) in &self.hubspot_categories {
            let Some(client) = self.hubspot.get(name).filter(|_| !categories.is_empty()) else {
                continue;
            };
            categories.load(client).await.map_err(|e| ConnectionError {
                name: name.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The category properties of HubSpot connection `name`.
    pub fn hubspot_categories(&self, name: &str) -> Option<std::sync::Arc<hubspot::Categories>> {
        self.hubspot_categories.get(name).cloned()
    }

    /// The client of HubSpot connection `name`.
    pub fn hubspot(&self, name: &str) -> Result<&rivulet_hubspot::Client, String> {
        self.hubspot
            .get(name)
            .ok_or_else(|| format!("no hubspot connection `{name}` was built"))
    }

    /// Whether HubSpot connection `name` creates line items' missing products first
    /// (`transfer_products_first`).
    pub fn transfers_products_first(&self, name: &str) -> bool {
        self.products_first.contains(name)
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
            cx.clients.hubspot_categories(&a.connection),
            cx.clients.transfers_products_first(&a.connection),
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

/// A fresh cursor for `trigger`, where its `start_from` says, as of `now` (what a new flow, or a
/// cursor reset, starts from).
pub fn start_cursor(
    trigger: &model::Trigger,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::state::Cursor {
    match trigger {
        model::Trigger::Hubspot(t) => crate::state::Cursor {
            identity: hubspot::cursor_identity(t),
            state: hubspot::start_cursor(t, now),
        },
    }
}

/// Takes back a write a crash left unrecorded, from the undo mark recorded before it (see
/// [`crate::connector::RetrySafety::Undoable`]); says what it did.
pub async fn undo(kind: &str, mark: &Value) -> Result<String, String> {
    match kind {
        "file" => file::undo(mark).await,
        other => Err(format!("no connector `{other}` can undo writes")),
    }
}
