//! OAuth as HubSpot serves it: the authorization page (`GET /oauth/authorize`, which here
//! grants at once and redirects with a single-use code), the token endpoint (authorization-code
//! and refresh-token grants), what a token may do (`GET /oauth/v1/access-tokens/{token}`,
//! `POST /oauth/v2/private-apps/get/access-token-info`), and the scopes each request needs.
//!
//! Tokens have every scope unless they were granted fewer: an authorization that asked for some
//! scopes, or a static token restricted through the control API (`PUT /_sandbox/scopes`). Only
//! then are requests checked against scopes (403 `MISSING_SCOPES`, as HubSpot answers).

use crate::error::{ApiError, correlation_id};
use crate::handle::Store;
use crate::model::{ObjectType, fmt_ms};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};

/// Codes, refresh tokens and scoped tokens kept at most; the oldest go first.
pub const MAX_OAUTH_ENTRIES: usize = 10_000;
/// How long an authorization code can be exchanged, on the sandbox's clock.
pub const CODE_LIFETIME_MS: i64 = 5 * 60 * 1000;
/// The sandbox's account (portal) id, in token answers.
pub const HUB_ID: u64 = 1_234_567;
/// The sandbox's app id, in token descriptions.
pub const APP_ID: u64 = 7_654_321;

/// Every scope the sandbox knows: what an unrestricted token has. Object scopes follow
/// HubSpot's `crm.objects.{type}.{read,write}`; property definitions need
/// `crm.schemas.{type}.{read,write}` (HubSpot names these for contacts, companies and deals; the
/// sandbox uses the same pattern for products and line items).
pub fn all_scopes() -> Vec<String> {
    let mut v = vec!["oauth".to_string()];
    for ty in ObjectType::ALL {
        for kind in ["objects", "schemas"] {
            for access in ["read", "write"] {
                v.push(format!("crm.{kind}.{}.{access}", ty.as_str()));
            }
        }
    }
    v
}

struct Code {
    redirect_uri: String,
    scopes: Vec<String>,
    expires_ms: i64,
}

/// A bounded map that forgets its oldest entries.
struct Bounded<T> {
    map: HashMap<String, T>,
    order: VecDeque<String>,
}

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T> Bounded<T> {
    fn insert(&mut self, key: String, value: T) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        // Keys removed from the map stay queued until they come up, so the queue bounds both.
        while self.order.len() > MAX_OAUTH_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<T> {
        self.map.remove(key)
    }

    fn get(&self, key: &str) -> Option<&T> {
        self.map.get(key)
    }
}

/// Issued codes and the scopes of tokens that have fewer than all.
#[derive(Default)]
pub(crate) struct OAuthState {
    codes: Bounded<Code>,
    /// Refresh tokens issued for a code → their scopes.
    refresh: Bounded<Vec<String>>,
    /// Access tokens with fewer than all scopes → their scopes.
    access: Bounded<Vec<String>>,
    /// Static tokens restricted through the control API → their scopes.
    statics: HashMap<String, Vec<String>>,
}

impl OAuthState {
    /// The scopes of `token` when it has fewer than all; `None`: every scope.
    pub(crate) fn restricted(&self, token: &str) -> Option<&Vec<String>> {
        self.access.get(token).or_else(|| self.statics.get(token))
    }

    /// Restricts a static token to `scopes` (`None`: every scope again); refused when
    /// [`MAX_OAUTH_ENTRIES`] tokens are restricted already.
    pub(crate) fn restrict_static(
        &mut self,
        token: &str,
        scopes: Option<Vec<String>>,
    ) -> Result<(), String> {
        match scopes {
            Some(s) => {
                if self.statics.len() >= MAX_OAUTH_ENTRIES && !self.statics.contains_key(token) {
                    return Err(format!(
                        "at most {MAX_OAUTH_ENTRIES} tokens can be restricted; lift some first"
                    ));
                }
                self.statics.insert(token.to_string(), s);
            }
            None => {
                self.statics.remove(token);
            }
        }
        Ok(())
    }
}

fn oauth_error(status: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "status": status,
            "message": message,
            "correlationId": correlation_id(),
            "requestId": correlation_id(),
        })),
    )
        .into_response()
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn scopes_of(text: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in text.split([' ', '+', ',']).filter(|s| !s.is_empty()) {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    }
    v
}

/// `GET /oauth/authorize?client_id&redirect_uri&scope&state`: the person "grants" at once;
/// 302 to `redirect_uri?code=…&state=…`. The code works once, within five minutes, with the same
/// `redirect_uri`.
pub(crate) async fn authorize(
    State(s): State<Store>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != s.inner.config.oauth.client_id {
        return oauth_error("BAD_CLIENT_ID", "missing or unknown client id");
    }
    let redirect = get("redirect_uri");
    let plausible = (redirect.starts_with("http://") || redirect.starts_with("https://"))
        && !redirect
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#');
    if !plausible {
        return oauth_error(
            "BAD_REDIRECT_URI",
            "redirect_uri must be an http(s) URL without a fragment",
        );
    }
    let scopes = scopes_of(get("scope"));
    if scopes.is_empty() {
        return oauth_error("BAD_SCOPE", "scope is required");
    }
    let known = all_scopes();
    if let Some(unknown) = scopes.iter().find(|s| !known.contains(s)) {
        return oauth_error("BAD_SCOPE", &format!("unknown scope: {unknown}"));
    }
    let code = format!("sbx-code-{}", correlation_id().replace('-', ""));
    s.inner.oauth.lock().codes.insert(
        code.clone(),
        Code {
            redirect_uri: redirect.to_string(),
            scopes,
            expires_ms: s.now_ms().saturating_add(CODE_LIFETIME_MS),
        },
    );
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut location = format!("{redirect}{sep}code={}", encode(&code));
    if let Some(state) = q.get("state") {
        location.push_str(&format!("&state={}", encode(state)));
    }
    let mut resp = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => oauth_error("BAD_REDIRECT_URI", "redirect_uri cannot be redirected to"),
    }
}

/// `POST /oauth/v1/token` (and `/oauth/v3/token`), form-encoded: `refresh_token` and
/// `authorization_code` grants.
pub(crate) async fn token(
    State(s): State<Store>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return oauth_error(
            "BAD_REQUEST",
            "The token request must be application/x-www-form-urlencoded",
        );
    };
    let cfg = &s.inner.config.oauth;
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != cfg.client_id {
        return oauth_error("BAD_CLIENT_ID", "missing or unknown client id");
    }
    if get("client_secret") != cfg.client_secret {
        return oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret");
    }
    let now = s.now_ms();
    // (refresh token answered, scopes of the access token; None = all)
    let (refresh_token, scopes): (String, Option<Vec<String>>) = match get("grant_type") {
        "refresh_token" => {
            let given = get("refresh_token");
            if given == cfg.refresh_token {
                (given.to_string(), None)
            } else {
                match s.inner.oauth.lock().refresh.get(given) {
                    Some(scopes) => (given.to_string(), Some(scopes.clone())),
                    None => {
                        return oauth_error(
                            "BAD_REFRESH_TOKEN",
                            "missing or unknown refresh token",
                        );
                    }
                }
            }
        }
        "authorization_code" => {
            let mut st = s.inner.oauth.lock();
            // a code is spent by any attempt to use it, as HubSpot's are
            let Some(code) = st.codes.remove(get("code")) else {
                return oauth_error(
                    "BAD_AUTH_CODE",
                    "missing, unknown or already used auth code",
                );
            };
            if now >= code.expires_ms {
                return oauth_error("BAD_AUTH_CODE", "the auth code has expired");
            }
            if code.redirect_uri != get("redirect_uri") {
                return oauth_error(
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the one the code was issued for",
                );
            }
            let refresh = format!("sbx-refresh-{}", correlation_id().replace('-', ""));
            st.refresh.insert(refresh.clone(), code.scopes.clone());
            (refresh, Some(code.scopes))
        }
        other => {
            return oauth_error(
                "BAD_GRANT_TYPE",
                &format!("unsupported grant_type: {other:?}"),
            );
        }
    };
    let lifetime = cfg.access_token_lifetime;
    let token = format!("sbx-{}", correlation_id().replace('-', ""));
    let expires_at = now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX));
    s.inner.rt.lock().tokens.insert(token.clone(), expires_at);
    let granted = scopes.clone().unwrap_or_else(all_scopes);
    if let Some(scopes) = scopes {
        s.inner.oauth.lock().access.insert(token.clone(), scopes);
    }
    s.bump(|st| st.token_refreshes += 1);
    (
        StatusCode::OK,
        axum::Json(json!({
            "access_token": token,
            "refresh_token": refresh_token,
            "expires_in": lifetime.as_secs(),
            "token_type": "bearer",
            "token_use": "access_token",
            "hub_id": HUB_ID,
            "scopes": granted,
            "expires_at": fmt_ms(expires_at),
        })),
    )
        .into_response()
}

fn not_found_token() -> Response {
    ApiError::not_found("The access token could not be found or has expired").into_response()
}

/// `GET /oauth/v1/access-tokens/{token}`: an OAuth access token the sandbox issued, with its
/// scopes and the seconds it has left.
pub(crate) async fn access_token_info(
    State(s): State<Store>,
    Path(token): Path<String>,
) -> Response {
    let Some(expires) = s.inner.rt.lock().tokens.get(&token).copied() else {
        return not_found_token();
    };
    let now = s.now_ms();
    if now >= expires {
        return not_found_token();
    }
    let scopes = s
        .inner
        .oauth
        .lock()
        .restricted(&token)
        .cloned()
        .unwrap_or_else(all_scopes);
    (
        StatusCode::OK,
        axum::Json(json!({
            "token": token,
            "user": "sandbox-user@example.com",
            "hub_domain": "sandbox.example.com",
            "scopes": scopes,
            "hub_id": HUB_ID,
            "app_id": APP_ID,
            "expires_in": (expires - now + 999) / 1000,
            "user_id": 1,
            "token_type": "access",
        })),
    )
        .into_response()
}

/// `POST /oauth/v2/private-apps/get/access-token-info` with `{"tokenKey": …}`: a static token
/// the sandbox accepts, with its scopes.
pub(crate) async fn private_app_token_info(
    State(s): State<Store>,
    body: axum::body::Bytes,
) -> Response {
    let v: Value = match crate::server::parse_body(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(token) = v.get("tokenKey").and_then(Value::as_str) else {
        return ApiError::validation("tokenKey is required").into_response();
    };
    let issued = s.inner.rt.lock().tokens.contains_key(token);
    let tokens = &s.inner.config.tokens;
    let accepted =
        !token.is_empty() && !issued && (tokens.is_empty() || tokens.iter().any(|t| t == token));
    if !accepted {
        return not_found_token();
    }
    let scopes = s
        .inner
        .oauth
        .lock()
        .restricted(token)
        .cloned()
        .unwrap_or_else(all_scopes);
    (
        StatusCode::OK,
        axum::Json(json!({
            "userId": 1,
            "hubId": HUB_ID,
            "appId": APP_ID,
            "scopes": scopes,
        })),
    )
        .into_response()
}

/// The scopes a CRM request needs, from its method and path (either path family).
pub(crate) fn required_scopes(method: &axum::http::Method, segs: &[&str]) -> Vec<String> {
    let write = |post_reads: bool| match *method {
        axum::http::Method::GET | axum::http::Method::HEAD => false,
        axum::http::Method::POST => !post_reads,
        _ => true,
    };
    let access = |w: bool| if w { "write" } else { "read" };
    let ty = |s: &str| ObjectType::parse(s).map(ObjectType::as_str);
    match segs {
        ["objects", t, rest @ ..] => {
            let Some(t) = ty(t) else { return vec![] };
            let reads = matches!(rest, ["search"] | ["batch", "read"]);
            let mut v = vec![format!("crm.objects.{t}.{}", access(write(reads)))];
            // associations of a record touch the other type too
            if let [_, "associations", "default", to, ..] | [_, "associations", to, ..] = rest
                && let Some(to) = ty(to).filter(|to| *to != t)
            {
                v.push(format!("crm.objects.{to}.{}", access(write(false))));
            }
            v
        }
        ["properties", t, ..] => ty(t)
            .map(|t| vec![format!("crm.schemas.{t}.{}", access(write(false)))])
            .unwrap_or_default(),
        ["associations", from, to, "batch", op @ ..] => {
            let reads = op == ["read"];
            [from, to]
                .iter()
                .filter_map(|t| ty(t))
                .map(|t| format!("crm.objects.{t}.{}", access(write(reads))))
                .collect()
        }
        _ => vec![],
    }
}

/// HubSpot's 403 for a token without a scope the call needs.
pub(crate) fn missing_scopes(needed: Vec<String>) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
    )
    .with_errors(vec![json!({
        "message": "One or more of the following scopes are required.",
        "context": {"requiredGranularScopes": needed},
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn scopes_by_route() {
        assert_eq!(
            required_scopes(&Method::POST, &["objects", "contacts", "search"]),
            vec!["crm.objects.contacts.read"]
        );
        assert_eq!(
            required_scopes(&Method::POST, &["objects", "deals", "batch", "create"]),
            vec!["crm.objects.deals.write"]
        );
        assert_eq!(
            required_scopes(
                &Method::GET,
                &["objects", "deals", "7", "associations", "line_items"]
            ),
            vec!["crm.objects.deals.read", "crm.objects.line_items.read"]
        );
        assert_eq!(
            required_scopes(&Method::GET, &["properties", "company", "industry"]),
            vec!["crm.schemas.companies.read"]
        );
        assert_eq!(
            required_scopes(
                &Method::POST,
                &[
                    "associations",
                    "line_items",
                    "deals",
                    "batch",
                    "associate",
                    "default"
                ]
            ),
            vec!["crm.objects.line_items.write", "crm.objects.deals.write"]
        );
        assert!(required_scopes(&Method::GET, &["objects", "tickets"]).is_empty());
        assert!(all_scopes().contains(&"crm.objects.products.write".to_string()));
    }

    #[test]
    fn bounded_forgets_the_oldest() {
        let mut b: Bounded<u8> = Bounded::default();
        for i in 0..=MAX_OAUTH_ENTRIES {
            b.insert(format!("k{i}"), 0);
        }
        assert!(b.get("k0").is_none());
        assert!(b.get(&format!("k{MAX_OAUTH_ENTRIES}")).is_some());
        assert_eq!(encode("a b&c"), "a%20b%26c");
        assert_eq!(scopes_of("a b+a,c"), vec!["a", "b", "c"]);
    }
}
