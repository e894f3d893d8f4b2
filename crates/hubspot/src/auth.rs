//! Access tokens. A static token is used as is; OAuth access tokens are fetched with the refresh
//! token and renewed before `expires_in` runs out (HubSpot says a 401 is not the signal to
//! refresh). One refresh at a time: concurrent requests wait for it and share its result.

use std::time::Duration;

use rivulet_http::secrets::{register, scrub_owned};
use rivulet_http::{Hooks, Policy, PolicyConfig, Request, RetryPolicy, StopReason, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, parse_error_body};

/// Where access tokens come from.
pub(crate) enum TokenSource {
    Static(SecretString),
    OAuth(OAuth),
}

pub(crate) struct OAuth {
    client_id: String,
    client_secret: SecretString,
    token_url: String,
    /// Token requests have a policy of their own: they spend no API budget and hold no API
    /// connection permit (a request holding one may be waiting for this very refresh).
    policy: Policy,
    state: Mutex<OAuthState>,
}

struct OAuthState {
    refresh_token: SecretString,
    access: Option<(SecretString, Instant)>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Outcome of a refresh, for the client's statistics.
pub(crate) struct Token {
    pub value: SecretString,
    pub refreshed: bool,
}

impl TokenSource {
    /// The source of `config`'s credentials, each registered as a secret, so whatever a server
    /// echoes of them is scrubbed wherever it goes (as are the tokens it is given later).
    pub(crate) fn new(config: &crate::ClientConfig) -> Result<Self, Error> {
        match &config.auth {
            crate::Auth::Token(t) => register(t.expose_secret()),
            crate::Auth::OAuth {
                client_secret,
                refresh_token,
                ..
            } => {
                register(client_secret.expose_secret());
                register(refresh_token.expose_secret());
            }
        }
        Ok(match &config.auth {
            crate::Auth::Token(t) => TokenSource::Static(t.clone()),
            crate::Auth::OAuth {
                client_id,
                client_secret,
                refresh_token,
                token_url,
            } => TokenSource::OAuth(OAuth {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                token_url: token_url.clone(),
                policy: token_policy(config)?,
                state: Mutex::new(OAuthState {
                    refresh_token: refresh_token.clone(),
                    access: None,
                }),
            }),
        })
    }

    pub(crate) fn can_refresh(&self) -> bool {
        matches!(self, TokenSource::OAuth(_))
    }

    /// A token valid for a while yet.
    pub(crate) async fn token(&self) -> Result<Token, Error> {
        match self {
            TokenSource::Static(t) => Ok(Token {
                value: t.clone(),
                refreshed: false,
            }),
            TokenSource::OAuth(o) => o.token(None).await,
        }
    }

    /// After a 401 with `rejected`: a fresh token, refreshed once however many requests were
    /// rejected with the same token.
    pub(crate) async fn after_unauthorized(&self, rejected: &SecretString) -> Result<Token, Error> {
        match self {
            TokenSource::Static(t) => Ok(Token {
                value: t.clone(),
                refreshed: false,
            }),
            TokenSource::OAuth(o) => o.token(Some(rejected)).await,
        }
    }
}

/// Refresh this long before expiry: a fifth of the lifetime, at most five minutes, so a token
/// never expires while a request waits in the throttle.
fn margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(300))
}

/// The token endpoint's policy: three tries, short backoff, `Retry-After` honoured up to 30 s
/// (it is rate limited too), no budget, small answers.
fn token_policy(config: &crate::ClientConfig) -> Result<Policy, Error> {
    Policy::new(PolicyConfig {
        label: "hubspot-oauth".into(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(400),
            max_delay: Duration::from_secs(2),
            max_rate_limited_attempts: 3,
            max_retry_after: config.retry.max_retry_after.min(Duration::from_secs(30)),
        },
        timeout: config.timeout,
        max_in_flight: 2,
        max_body_bytes: config.max_response_bytes.min(1 << 20),
        throttle: None,
        default_headers: Default::default(),
        clock: config.clock.clone(),
    })
    .map_err(|e| Error::Config(format!("OAuth token client: {e}")))
}

/// Puts the refresh-token grant on each attempt: the credentials go into the form at the last
/// moment and are never part of the request description.
struct Grant<'a> {
    client_id: &'a str,
    client_secret: &'a SecretString,
    refresh_token: &'a SecretString,
}

impl Hooks for Grant<'_> {
    async fn authorize(
        &mut self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, StopReason> {
        Ok(request.form(&[
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", self.refresh_token.expose_secret()),
        ]))
    }
}

impl OAuth {
    async fn token(&self, rejected: Option<&SecretString>) -> Result<Token, Error> {
        let mut st = self.state.lock().await;
        if let Some((access, refresh_at)) = &st.access {
            let is_rejected = rejected.is_some_and(|r| r.expose_secret() == access.expose_secret());
            if !is_rejected && Instant::now() < *refresh_at {
                return Ok(Token {
                    value: access.clone(),
                    refreshed: false,
                });
            }
        }
        let fresh = self.refresh(&st.refresh_token).await;
        let fresh = match fresh {
            Ok(f) => f,
            Err(Error::Auth(msg)) => return Err(Error::Auth(scrub_owned(msg))),
            Err(e) => return Err(e),
        };
        let lifetime = Duration::from_secs(fresh.expires_in);
        register(&fresh.access_token);
        let access = SecretString::from(fresh.access_token);
        st.access = Some((access.clone(), Instant::now() + lifetime - margin(lifetime)));
        // HubSpot may rotate the refresh token; keep whichever it sends last.
        if let Some(rt) = fresh.refresh_token.filter(|t| !t.is_empty()) {
            register(&rt);
            st.refresh_token = SecretString::from(rt);
        }
        Ok(Token {
            value: access,
            refreshed: true,
        })
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenResponse, Error> {
        let url = Url::parse(&self.token_url)
            .map_err(|e| Error::Config(format!("token_url is not a URL: {e}")))?;
        // Refreshing twice is harmless: the grant may be sent again after a lost answer.
        let request = Request::post(url).idempotent(true);
        let mut grant = Grant {
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            refresh_token,
        };
        let refused = |status: u16, body: &[u8]| {
            let e = parse_error_body(status, body);
            Error::Auth(format!(
                "token endpoint answered {status}: {} (check client id, secret and refresh token)",
                e.message
            ))
        };
        let answer = match self.policy.send_with(&request, &mut grant).await {
            Ok(answer) => answer,
            Err(rivulet_http::Error::Status { status, body, .. }) => {
                return Err(refused(status.as_u16(), &body));
            }
            Err(rivulet_http::Error::RateLimited { body, .. }) => return Err(refused(429, &body)),
            Err(rivulet_http::Error::Config(m)) => return Err(Error::Config(m)),
            Err(other) => return Err(Error::Auth(other.to_string())),
        };
        serde_json::from_slice(&answer.body)
            .map_err(|e| Error::Auth(format!("token endpoint answered an unreadable body: {e}")))
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("TokenSource::Static([REDACTED])"),
            TokenSource::OAuth(o) => f
                .debug_struct("TokenSource::OAuth")
                .field("client_id", &o.client_id)
                .field("token_url", &o.token_url)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_a_fifth_capped() {
        assert_eq!(margin(Duration::from_secs(1800)), Duration::from_secs(300));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_secs(2));
    }
}
