use crate::*;
use rivulet_sandbox::{OAuthConfig, SandboxConfig};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let mut cfg = SandboxConfig::default();
    cfg.tokens = vec!["good".into()];
    let mut e = start(cfg).await;
    let r =
        e.c.get(format!("{}/crm/v3/objects/contacts", e.url))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert_eq!(body["correlationId"].as_str().unwrap().len(), 36);
    e.token = "bad".into();
    let r = e.get("/crm/v3/objects/contacts").await;
    assert_error(&r, 401, "INVALID_AUTHENTICATION");
    e.token = "good".into();
    let r = e.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 200);
    assert_eq!(e.sb.store().stats().unauthorized, 2);
    // the control API needs no token
    let r =
        e.c.get(format!("{}/_sandbox/health", e.url))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    e.sb.shutdown().await;
}

async fn refresh(e: &Env, refresh_token: &str) -> reqwest::Response {
    e.c.post(format!("{}/oauth/v1/token", e.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&client_id=cid&client_secret=secret&refresh_token={refresh_token}"
        ))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn oauth_tokens_expire_and_refresh() {
    let mut cfg = SandboxConfig::default();
    cfg.tokens = vec!["static".into()];
    cfg.oauth = OAuthConfig {
        client_id: "cid".into(),
        client_secret: "secret".into(),
        refresh_token: "rt".into(),
        access_token_lifetime: Duration::from_secs(60),
    };
    let mut e = start(cfg).await;
    let r = refresh(&e, "wrong").await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "BAD_REFRESH_TOKEN");

    let r = refresh(&e, "rt").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["refresh_token"], "rt");
    assert_eq!(body["token_type"], "bearer");
    let access = body["access_token"].as_str().unwrap().to_string();
    assert!(access.len() <= 300);
    e.token = access.clone();
    let r = e.get("/crm/v3/objects/companies").await;
    assert_eq!(r.status, 200);
    // Expiry follows the sandbox's clock: move it past the token's lifetime.
    e.sb.clock().advance(Duration::from_secs(61)).unwrap();
    let r = e.get("/crm/v3/objects/companies").await;
    assert_error(&r, 401, "EXPIRED_AUTHENTICATION");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("second(s) ago"),
        "{}",
        r.body
    );
    let r = refresh(&e, "rt").await;
    let body: Value = r.json().await.unwrap();
    e.token = body["access_token"].as_str().unwrap().to_string();
    assert_ne!(e.token, access);
    let r = e.get("/crm/v3/objects/companies").await;
    assert_eq!(r.status, 200);
    assert_eq!(e.sb.store().token_refreshes(), 2);
    let stats = e.get("/_sandbox/stats").await;
    assert_eq!(stats.body["token_refreshes"], 2);

    // control API can expire tokens at once
    let r = e.post("/_sandbox/tokens/expire", json!({})).await;
    assert_eq!(r.body["expired"], 2);
    let r = e.get("/crm/v3/objects/companies").await;
    assert_eq!(r.status, 401);
    e.sb.shutdown().await;
}
