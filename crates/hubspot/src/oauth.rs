//! What setting up and checking a connection needs of HubSpot's OAuth endpoints: the
//! authorization URL a person opens ([`authorize_url`]), trading the code HubSpot redirects
//! back with for tokens ([`exchange_code`]), and what a token may do ([`Client::token_info`]).
//!
//! Codes, client secrets and tokens are registered with `rivulet_http::secrets` as soon as they
//! are seen, and never appear in an error.

use std::time::Duration;

use rivulet_http::{Hooks, Policy, PolicyConfig, Request, RetryPolicy, StopReason, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::Client;
use crate::auth::TokenSource;
use crate::client::Call;
use crate::config::{DEFAULT_AUTHORIZE_URL, DEFAULT_TOKEN_URL};
use crate::error::{Error, parse_error_body};
use rivulet_http::secrets::scrub_owned;

/// An OAuth app: what its token endpoint needs to know who asks.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// The token endpoint ([`DEFAULT_TOKEN_URL`] unless testing).
    pub token_url: String,
    /// Time allowed for the token request.
    pub timeout: Duration,
}

impl OAuthApp {
    /// An app on HubSpot's token endpoint.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        OAuthApp {
            client_id: client_id.into(),
            client_secret,
            token_url: DEFAULT_TOKEN_URL.to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The tokens an authorization code was traded for.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The access token (30 minutes on HubSpot).
    pub access_token: SecretString,
    /// The refresh token: what a connection stores to get access tokens later.
    pub refresh_token: SecretString,
    /// How long the access token lives.
    pub expires_in: Duration,
    /// The account (portal) that installed the app, when HubSpot says.
    pub hub_id: Option<u64>,
    /// The scopes granted, when HubSpot says.
    pub scopes: Vec<String>,
}

/// What a token may do, as HubSpot describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The account (portal).
    pub hub_id: Option<u64>,
    /// The app the token belongs to.
    pub app_id: Option<u64>,
    /// The user who authorised it (OAuth), by e-mail.
    pub user: Option<String>,
    /// Time left before the token expires (OAuth access tokens only).
    pub expires_in: Option<Duration>,
}

impl TokenInfo {
    /// The scopes of `needed` the token lacks, in the order given.
    pub fn missing_scopes<'a>(&self, needed: &[&'a str]) -> Vec<&'a str> {
        needed
            .iter()
            .copied()
            .filter(|s| !self.scopes.iter().any(|g| g == s))
            .collect()
    }
}

/// The URL where a person grants `client_id` the `scopes` (HubSpot's, or another
/// `authorize_base` such as the sandbox's `/oauth/authorize`); HubSpot then redirects to
/// `redirect_uri?code=…&state=…`.
pub fn authorize_url(
    authorize_base: Option<&str>,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    state: &str,
) -> Result<String, Error> {
    let base = authorize_base.unwrap_or(DEFAULT_AUTHORIZE_URL);
    let mut url = Url::parse(base)
        .map_err(|e| Error::Config(format!("authorize URL `{base}` is not a URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", state);
    Ok(url.to_string())
}

#[derive(Deserialize)]
struct GrantAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_in: u64,
    #[serde(default)]
    hub_id: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Puts the code and the app's credentials into the form at the moment of sending, so they are
/// never part of a request description that might be logged.
struct CodeGrant<'a> {
    app: &'a OAuthApp,
    code: &'a SecretString,
    redirect_uri: &'a str,
}

impl Hooks for CodeGrant<'_> {
    async fn authorize(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, StopReason> {
        Ok(request.form(&[
            ("grant_type", "authorization_code"),
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.expose_secret()),
            ("redirect_uri", self.redirect_uri),
            ("code", self.code.expose_secret()),
        ]))
    }
}

/// Trades an authorization `code` for an access and a refresh token (`grant_type=
/// authorization_code`). `redirect_uri` must be the one the authorization was started with. A
/// code works once: the request is never sent again after it may have reached HubSpot, so a lost
/// answer means starting the authorization again.
pub async fn exchange_code(
    app: &OAuthApp,
    code: &SecretString,
    redirect_uri: &str,
) -> Result<TokenGrant, Error> {
    rivulet_http::secrets::register(code.expose_secret());
    rivulet_http::secrets::register(app.client_secret.expose_secret());
    let url = Url::parse(&app.token_url)
        .map_err(|e| Error::Config(format!("token_url is not a URL: {e}")))?;
    let policy = Policy::new(PolicyConfig {
        label: "hubspot-oauth".into(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(400),
            max_delay: Duration::from_secs(2),
            max_rate_limited_attempts: 3,
            max_retry_after: Duration::from_secs(30),
        },
        timeout: app.timeout,
        max_in_flight: 1,
        max_body_bytes: 1 << 20,
        ..PolicyConfig::default()
    })
    .map_err(|e| Error::Config(format!("OAuth token client: {e}")))?;
    let request = Request::post(url).idempotent(false);
    let mut grant = CodeGrant {
        app,
        code,
        redirect_uri,
    };
    let refused = |status: u16, body: &[u8]| {
        let e = parse_error_body(status, body);
        Error::Auth(scrub_owned(format!(
            "token endpoint answered {status}: {} (a code works once and expires within minutes: authorize again; check the client id, secret and redirect URI)",
            e.message
        )))
    };
    let answer = match policy.send_with(&request, &mut grant).await {
        Ok(answer) => answer,
        Err(rivulet_http::Error::Status { status, body, .. }) => {
            return Err(refused(status.as_u16(), &body));
        }
        Err(rivulet_http::Error::RateLimited { body, .. }) => return Err(refused(429, &body)),
        Err(rivulet_http::Error::Config(m)) => return Err(Error::Config(m)),
        Err(other) => return Err(Error::Auth(scrub_owned(other.to_string()))),
    };
    let parsed: GrantAnswer = serde_json::from_slice(&answer.body)
        .map_err(|e| Error::Auth(format!("token endpoint answered an unreadable body: {e}")))?;
    rivulet_http::secrets::register(&parsed.access_token);
    let refresh_token = parsed
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Auth("token endpoint answered without a refresh token".into()))?;
    rivulet_http::secrets::register(&refresh_token);
    Ok(TokenGrant {
        access_token: SecretString::from(parsed.access_token),
        refresh_token: SecretString::from(refresh_token),
        expires_in: Duration::from_secs(parsed.expires_in),
        hub_id: parsed.hub_id,
        scopes: parsed.scopes,
    })
}

/// HubSpot's two token descriptions: OAuth (`snake_case`) and private apps (`camelCase`).
#[derive(Deserialize)]
struct InfoAnswer {
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, alias = "hubId")]
    hub_id: Option<u64>,
    #[serde(default, alias = "appId")]
    app_id: Option<u64>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Client {
    /// What the connection's token may do: its scopes, account and app. An OAuth connection
    /// asks `GET /oauth/v1/access-tokens/{token}` about its current access token; a private app
    /// or service key token asks `POST /oauth/v2/private-apps/get/access-token-info`.
    pub async fn token_info(&self) -> Result<TokenInfo, Error> {
        let token = self.inner.tokens.token().await?;
        if token.refreshed {
            self.inner.stats.token_refreshed();
        }
        // The token is part of the path or body from here on: known secrets are scrubbed.
        rivulet_http::secrets::register(token.value.expose_secret());
        let call = match &self.inner.tokens {
            TokenSource::OAuth(_) => Call::get(
                crate::paths::access_token_info(token.value.expose_secret()),
                Vec::new(),
            ),
            TokenSource::Static(_) => Call::post(
                crate::paths::PRIVATE_APP_TOKEN_INFO.to_string(),
                serde_json::json!({ "tokenKey": token.value.expose_secret() }),
            ),
        };
        let info: InfoAnswer = match self.send_json(&call).await {
            Ok(info) => info,
            Err(e) => return Err(scrub_error(e)),
        };
        Ok(TokenInfo {
            scopes: info.scopes,
            hub_id: info.hub_id,
            app_id: info.app_id,
            user: info.user,
            expires_in: info.expires_in.map(Duration::from_secs),
        })
    }
}

/// An error about a call whose path held a token: the path (named by decode errors) is
/// dropped, and the token scrubbed from any message.
fn scrub_error(e: Error) -> Error {
    match e {
        Error::Decode { message, .. } => Error::Decode {
            what: "the token description".into(),
            message: scrub_owned(message),
        },
        Error::Transport { kind, message } => Error::Transport {
            kind,
            message: scrub_owned(message),
        },
        Error::Api(mut api) => {
            api.message = scrub_owned(std::mem::take(&mut api.message));
            Error::Api(api)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_carries_the_request() {
        let url = authorize_url(
            Some("http://127.0.0.1:9/oauth/authorize"),
            "cid",
            "http://127.0.0.1:8/cb",
            &["crm.objects.contacts.read".into(), "oauth".into()],
            "st4te",
        )
        .unwrap();
        assert_eq!(
            url,
            "http://127.0.0.1:9/oauth/authorize?client_id=cid&redirect_uri=http%3A%2F%2F127.0.0.1%3A8%2Fcb&scope=crm.objects.contacts.read+oauth&state=st4te"
        );
        assert!(
            authorize_url(None, "c", "r", &[], "s")
                .unwrap()
                .starts_with(DEFAULT_AUTHORIZE_URL)
        );
        assert!(authorize_url(Some("not a url"), "c", "r", &[], "s").is_err());
    }

    #[test]
    fn missing_scopes_in_order() {
        let info = TokenInfo {
            scopes: vec!["crm.objects.contacts.read".into()],
            hub_id: None,
            app_id: None,
            user: None,
            expires_in: None,
        };
        assert_eq!(
            info.missing_scopes(&[
                "crm.objects.deals.read",
                "crm.objects.contacts.read",
                "crm.objects.companies.read"
            ]),
            vec!["crm.objects.deals.read", "crm.objects.companies.read"]
        );
    }
}
