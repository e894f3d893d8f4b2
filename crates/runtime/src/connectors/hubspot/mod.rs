//! HubSpot: polling triggers shared by the flows that watch one object and event
//! ([`TriggerGroup`]), a scheduled source ([`HubSpotReader`]) and create / update / upsert
//! actions ([`HubSpotWriter`]), all through one [`rivulet_hubspot::Client`] per connection,
//! on the connection's API version; and the connection's category properties ([`Categories`]),
//! checked at start-up and read once per run.

mod action;
mod category;
mod deals;
mod source;
mod trigger;

pub use action::HubSpotWriter;
pub use category::{Categories, Category, CategoryError};
pub use source::HubSpotReader;
pub use trigger::{
    Scan, TriggerCursor, TriggerGroup, cursor_identity, parse_timestamp, record_timestamp,
    start_cursor,
};

use rivulet_hubspot::{ApiVersion, Auth, Client, ClientConfig, Object, SecretString};
use rivulet_spec::connectors::hubspot::HubSpotApiVersion;
use rivulet_spec::env;
use rivulet_spec::model::HubSpotConnection;
use serde_json::Value;
use std::path::Path;

/// The JSON a template sees as `record` for a HubSpot record: HubSpot's own shape.
pub fn object_json(object: &Object) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Resolves `${VAR}` in a connection string, naming the variable (never its value) on error.
fn resolve(text: &str) -> Result<String, String> {
    env::interpolate_env(text).map_err(|e| e.to_string())
}

/// [`resolve`] for a secret: the value is registered, so it is scrubbed from whatever is
/// logged, printed or stored.
fn secret(text: &str) -> Result<SecretString, String> {
    let value = resolve(text)?;
    rivulet_http::secrets::register(&value);
    Ok(SecretString::from(value))
}

/// A secret kept in a file beside the connections file (`what` names it in errors): read
/// bounded, trimmed, registered so it is scrubbed from every output.
fn secret_file(dir: &Path, file: &str, what: &str) -> Result<SecretString, String> {
    let path = dir.join(resolve(file)?);
    let text = rivulet_spec::load::read_regular_file(&path, 64 * 1024)
        .map_err(|e| format!("{what} {}: {e}", path.display()))
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| format!("{what} {} is not text", path.display()))
        })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(format!("{what} {} is empty", path.display()));
    }
    rivulet_http::secrets::register(value);
    Ok(SecretString::from(value.to_string()))
}

/// The client's API version for a connection's `api_version`.
pub fn api_version(hs: &HubSpotConnection) -> ApiVersion {
    match hs.api_version {
        HubSpotApiVersion::V3 => ApiVersion::V3,
        HubSpotApiVersion::V2026_03 => ApiVersion::V2026_03,
    }
}

/// The client of a HubSpot connection (`dir`: the connections file's folder, where a
/// `token_file` is found), or of the sandbox at `over` (URL, token) instead; either way on the
/// connection's API version (the sandbox serves both).
pub fn client(
    hs: &HubSpotConnection,
    dir: &Path,
    over: Option<&(String, String)>,
) -> Result<Client, String> {
    let (base_url, auth) = if let Some((url, token)) = over {
        (url.clone(), Auth::Token(SecretString::from(token.clone())))
    } else {
        let auth = if let Some(token) = &hs.token {
            Auth::Token(secret(token)?)
        } else if let Some(file) = &hs.token_file {
            Auth::Token(secret_file(dir, file, "token file")?)
        } else if let Some(o) = &hs.oauth {
            let refresh_token = match (&o.refresh_token, &o.refresh_token_file) {
                (Some(token), _) => secret(token)?,
                (None, Some(file)) => secret_file(dir, file, "refresh token file")?,
                (None, None) => return Err("`oauth` has no refresh token".into()),
            };
            Auth::OAuth {
                client_id: resolve(&o.client_id)?,
                client_secret: secret(&o.client_secret)?,
                refresh_token,
                token_url: resolve(&o.token_url)?,
            }
        } else {
            return Err("no credentials".into());
        };
        (resolve(&hs.base_url)?, auth)
    };
    let mut config = ClientConfig::new(auth)
        .base_url(base_url.trim_end_matches('/'))
        .api_version(api_version(hs));
    config.throttle = rivulet_hubspot::Throttle {
        limit: hs.throttle.limit,
        per: hs.throttle.per.get(),
    };
    config.search_per_second = hs.search_per_second;
    config.concurrent_connections = hs.concurrent_connections as usize;
    config.concurrent_batches = hs.concurrent_batches as usize;
    config.timeout = hs.timeout.get();
    Client::new(config).map_err(|e| e.to_string())
}
