//! The authorization-code flow: the authorization page's redirect, single-use codes, the
//! tokens they are traded for, token descriptions, and the rate headers OAuth calls get.
use crate::*;
use rivulet_sandbox::{OAuthConfig, RateLimit, SandboxConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

fn cfg() -> SandboxConfig {
    SandboxConfig {
        oauth: OAuthConfig {
            client_id: "cid".into(),
            client_secret: "secret".into(),
            refresh_token: "rt".into(),
            access_token_lifetime: Duration::from_secs(60),
        },
        rate_limit: Some(RateLimit::new(10, Duration::from_secs(10))),
        daily_limit: Some(100),
        ..SandboxConfig::default()
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Opens the authorization page; the redirect's query.
async fn authorize(e: &Env, query: &str) -> (u16, HashMap<String, String>, Value) {
    let r = browser()
        .get(format!("{}/oauth/authorize?{query}", e.url))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let q = location
        .map(|l| {
            reqwest::Url::parse(&l)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    (status, q, body)
}

/// A form-encoded token request.
async fn token(e: &Env, fields: &[(&str, &str)]) -> (u16, Value) {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let r =
        e.c.post(format!("{}/oauth/v1/token", e.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn exchange(e: &Env, code: &str, redirect: &str) -> (u16, Value) {
    token(
        e,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "cid"),
            ("client_secret", "secret"),
            ("redirect_uri", redirect),
            ("code", code),
        ],
    )
    .await
}

const CB: &str = "http%3A%2F%2F127.0.0.1%3A7%2Fcb%3Fkeep%3D1";
const CB_PLAIN: &str = "http://127.0.0.1:7/cb?keep=1";

#[tokio::test]
async fn codes_are_single_use_and_bound_to_their_redirect() {
    let mut e = start(cfg()).await;
    let (status, q, _) = authorize(
        &e,
        &format!(
            "client_id=cid&redirect_uri={CB}&scope=crm.objects.contacts.read%20oauth&state=s%201"
        ),
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(q["keep"], "1", "the redirect URI's own query is kept");
    assert_eq!(q["state"], "s 1");
    let code = q["code"].clone();
    let (status, body) = exchange(&e, &code, "http://127.0.0.1:7/other").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_REDIRECT_URI"))
    );
    // that attempt spent the code
    let (status, body) = exchange(&e, &code, CB_PLAIN).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_AUTH_CODE"))
    );

    let (_, q, _) = authorize(
        &e,
        &format!("client_id=cid&redirect_uri={CB}&scope=crm.objects.contacts.read"),
    )
    .await;
    assert!(!q.contains_key("state"));
    let (status, grant) = exchange(&e, &q["code"], CB_PLAIN).await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(
        grant["scopes"],
        serde_json::json!(["crm.objects.contacts.read"])
    );
    assert_eq!(grant["expires_in"], 60);
    assert_eq!(grant["hub_id"], rivulet_sandbox::HUB_ID);
    let refresh = grant["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(
        refresh, "rt",
        "a refresh token of its own, carrying the scopes"
    );

    // the access token: described, held to its scopes, and without daily headers
    let access = grant["access_token"].as_str().unwrap().to_string();
    let info = e.get(&format!("/oauth/v1/access-tokens/{access}")).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.body["scopes"], grant["scopes"]);
    let left = info.body["expires_in"].as_u64().unwrap();
    assert!((59..=60).contains(&left), "{left}");
    assert_eq!(info.body["token_type"], "access");
    e.token = access.clone();
    let r = e.get("/crm/objects/2026-03/contacts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-hubspot-ratelimit-max"], "10");
    assert!(r.headers.get("x-hubspot-ratelimit-daily").is_none());
    let r = e.get("/crm/objects/2026-03/deals").await;
    assert_error(&r, 403, "MISSING_SCOPES");
    // refreshing keeps the scopes
    let (_, body) = token(
        &e,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("client_secret", "secret"),
            ("refresh_token", refresh.as_str()),
        ],
    )
    .await;
    assert_eq!(body["scopes"], grant["scopes"]);
    assert_eq!(body["refresh_token"], refresh.as_str());
    // expired tokens are not described; the log never keeps a token
    e.sb.clock().advance(Duration::from_secs(3600)).unwrap();
    let info = e.get(&format!("/oauth/v1/access-tokens/{access}")).await;
    assert_error(&info, 404, "OBJECT_NOT_FOUND");
    let log = e.sb.store().requests();
    assert!(log.iter().all(|r| !r.path.contains(&access)));
    assert!(
        log.iter()
            .all(|r| r.query.as_deref().is_none_or(|q| !q.contains(&access)))
    );
    // a static token is described by the private-app endpoint, not this one
    let r = e.get("/oauth/v1/access-tokens/test-token").await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
    e.sb.shutdown().await;
}

#[tokio::test]
async fn codes_expire_and_bad_requests_are_refused() {
    let e = start(cfg()).await;
    let (_, q, _) = authorize(&e, &format!("client_id=cid&redirect_uri={CB}&scope=oauth")).await;
    e.sb.clock()
        .advance(Duration::from_millis(
            rivulet_sandbox::CODE_LIFETIME_MS as u64 + 1,
        ))
        .unwrap();
    let (status, body) = exchange(&e, &q["code"], CB_PLAIN).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_AUTH_CODE"))
    );
    for (query, why) in [
        (
            format!("client_id=other&redirect_uri={CB}&scope=oauth"),
            "BAD_CLIENT_ID",
        ),
        (
            "client_id=cid&redirect_uri=ftp%3A%2F%2Fx&scope=oauth".to_string(),
            "BAD_REDIRECT_URI",
        ),
        (
            format!("client_id=cid&redirect_uri={CB}%23frag&scope=oauth"),
            "BAD_REDIRECT_URI",
        ),
        (format!("client_id=cid&redirect_uri={CB}"), "BAD_SCOPE"),
        (
            format!("client_id=cid&redirect_uri={CB}&scope=crm.everything"),
            "BAD_SCOPE",
        ),
    ] {
        let (status, q, body) = authorize(&e, &query).await;
        assert_eq!(status, 400, "{query}");
        assert!(q.is_empty(), "{query}");
        assert_eq!(body["status"], why, "{query}: {body}");
    }
    let (status, body) = exchange(&e, "made-up", CB_PLAIN).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_AUTH_CODE"))
    );
    e.sb.shutdown().await;
}
