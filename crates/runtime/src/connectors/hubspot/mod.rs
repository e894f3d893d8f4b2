//! HubSpot: polling triggers shared by the flows that watch one object and event
//! ([`TriggerGroup`]), a scheduled source ([`HubSpotReader`]) and create / update / upsert
//! actions ([`HubSpotWriter`]), all through one [`rivulet_hubspot::Client`] per connection.

mod action;
mod source;
mod trigger;

pub use action::HubSpotWriter;
pub use source::HubSpotReader;
pub use trigger::{Scan, TriggerCursor, TriggerGroup, parse_timestamp, record_timestamp};

use rivulet_hubspot::{Auth, Client, ClientConfig, Object, SecretString};
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

/// The client of a HubSpot connection (`dir`: the connections file's folder, where a
/// `token_file` is found), or of the sandbox at `over` (URL, token) instead.
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
            let path = dir.join(resolve(file)?);
            let token = rivulet_spec::load::read_regular_file(&path, 64 * 1024)
                .map_err(|e| format!("token file {}: {e}", path.display()))
                .and_then(|bytes| {
                    String::from_utf8(bytes)
                        .map_err(|_| format!("token file {} is not text", path.display()))
                })?;
            rivulet_http::secrets::register(token.trim());
            Auth::Token(SecretString::from(token.trim().to_string()))
        } else if let Some(o) = &hs.oauth {
            Auth::OAuth {
                client_id: resolve(&o.client_id)?,
                client_secret: secret(&o.client_secret)?,
                refresh_token: secret(&o.refresh_token)?,
                token_url: resolve(&o.token_url)?,
            }
        } else {
            return Err("no credentials".into());
        };
        (resolve(&hs.base_url)?, auth)
    };
    let mut config = ClientConfig::new(auth).base_url(base_url.trim_end_matches('/'));
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
