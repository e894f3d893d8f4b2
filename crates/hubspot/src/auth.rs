//! Access tokens. A static token is used as is; OAuth access tokens are fetched with the refresh
//! token and renewed before `expires_in` runs out (HubSpot says a 401 is not the signal to
//! refresh). One refresh at a time: concurrent requests wait for it and share its result.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, parse_error_body};
use crate::retry;

/// Where access tokens come from.
pub(crate) enum TokenSource {
    Static(SecretString),
    OAuth(OAuth),
}

pub(crate) struct OAuth {
    client_id: String,
    client_secret: SecretString,
    token_url: String,
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
    pub(crate) fn new(auth: &crate::Auth) -> Self {
        match auth {
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
                state: Mutex::new(OAuthState {
                    refresh_token: refresh_token.clone(),
                    access: None,
                }),
            }),
        }
    }

    pub(crate) fn can_refresh(&self) -> bool {
        matches!(self, TokenSource::OAuth(_))
    }

    /// A token valid for a while yet.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Token, Error> {
        match self {
            TokenSource::Static(t) => Ok(Token {
                value: t.clone(),
                refreshed: false,
            }),
            TokenSource::OAuth(o) => o.token(http, None).await,
        }
    }

    /// After a 401 with `rejected`: a fresh token, refreshed once however many requests were
    /// rejected with the same token.
    pub(crate) async fn after_unauthorized(
        &self,
        http: &reqwest::Client,
        rejected: &SecretString,
    ) -> Result<Token, Error> {
        match self {
            TokenSource::Static(t) => Ok(Token {
                value: t.clone(),
                refreshed: false,
            }),
            TokenSource::OAuth(o) => o.token(http, Some(rejected)).await,
        }
    }

    /// Replaces every secret this source knows in `text`, in case a server echoes one back.
    pub(crate) async fn scrub(&self, text: String) -> String {
        let mut secrets: Vec<SecretString> = Vec::new();
        match self {
            TokenSource::Static(t) => secrets.push(t.clone()),
            TokenSource::OAuth(o) => {
                secrets.push(o.client_secret.clone());
                let st = o.state.lock().await;
                secrets.push(st.refresh_token.clone());
                if let Some((a, _)) = &st.access {
                    secrets.push(a.clone());
                }
            }
        }
        scrub_with(text, &secrets)
    }
}

pub(crate) fn scrub_with(mut text: String, secrets: &[SecretString]) -> String {
    for s in secrets {
        let s = s.expose_secret();
        if !s.is_empty() && text.contains(s) {
            text = text.replace(s, "[REDACTED]");
        }
    }
    text
}

/// Refresh this long before expiry: a fifth of the lifetime, at most five minutes, so a token
/// never expires while a request waits in the throttle.
fn margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(300))
}

impl OAuth {
    async fn token(
        &self,
        http: &reqwest::Client,
        rejected: Option<&SecretString>,
    ) -> Result<Token, Error> {
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
        let fresh = self.refresh(http, &st.refresh_token).await;
        let fresh = match fresh {
            Ok(f) => f,
            Err(Error::Auth(msg)) => {
                let secrets = [self.client_secret.clone(), st.refresh_token.clone()];
                return Err(Error::Auth(scrub_with(msg, &secrets)));
            }
            Err(e) => return Err(e),
        };
        let lifetime = Duration::from_secs(fresh.expires_in);
        let access = SecretString::from(fresh.access_token);
        st.access = Some((access.clone(), Instant::now() + lifetime - margin(lifetime)));
        // HubSpot may rotate the refresh token; keep whichever it sends last.
        if let Some(rt) = fresh.refresh_token.filter(|t| !t.is_empty()) {
            st.refresh_token = SecretString::from(rt);
        }
        Ok(Token {
            value: access,
            refreshed: true,
        })
    }

    async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, Error> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = http.post(&self.token_url).form(&form).send().await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if attempt < 3 => {
                    tracing::warn!(error = %e.without_url(), "OAuth token request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    continue;
                }
                Err(e) => return Err(Error::Auth(e.without_url().to_string())),
            };
            let status = resp.status().as_u16();
            // The token endpoint is rate limited too, and says when to come back.
            if (status == 429 || status >= 500) && attempt < 3 {
                let wait = retry::parse_retry_after(
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()),
                )
                .unwrap_or(Duration::from_millis(500 * attempt));
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                continue;
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| Error::Auth(e.without_url().to_string()))?;
            if !(200..300).contains(&status) {
                let e = parse_error_body(status, &body);
                return Err(Error::Auth(format!(
                    "token endpoint answered {status}: {} (check client id, secret and refresh token)",
                    e.message
                )));
            }
            return serde_json::from_slice(&body).map_err(|e| {
                Error::Auth(format!("token endpoint answered an unreadable body: {e}"))
            });
        }
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

    #[test]
    fn scrub_replaces_secrets() {
        let s = scrub_with(
            "echo SENTINEL-123 back".into(),
            &[SecretString::from("SENTINEL-123")],
        );
        assert_eq!(s, "echo [REDACTED] back");
    }
}
