//! Test helpers and modules.
//! HTTP tests of the sandbox, over real sockets on 127.0.0.1.
#![allow(clippy::field_reassign_with_default)]

mod auth;
mod batch;
mod control;
mod hostile;
mod limits;
mod merge;
mod oauth_flow;
mod objects;
mod rules;
mod search;
mod versions;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use rivulet_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

pub(crate) const TOKEN: &str = "test-token";

pub(crate) struct Env {
    pub(crate) sb: Sandbox,
    pub(crate) c: reqwest::Client,
    pub(crate) url: String,
    pub(crate) token: String,
}

pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: HeaderMap,
}

pub(crate) async fn start(cfg: SandboxConfig) -> Env {
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    let url = sb.url();
    Env {
        sb,
        c: reqwest::Client::new(),
        url,
        token: TOKEN.to_string(),
    }
}

pub(crate) async fn default_env() -> Env {
    start(SandboxConfig::default()).await
}

impl Env {
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self
            .c
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            body,
            headers,
        }
    }
    pub(crate) async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub(crate) async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub(crate) async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub(crate) async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    pub(crate) async fn delete(&self, path: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// Checks HubSpot's standard error shape.
pub(crate) fn assert_error(r: &Resp, status: u16, category: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.body);
    assert_eq!(r.body["status"], "error", "body: {}", r.body);
    assert_eq!(r.body["category"], category, "body: {}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let cid = r.body["correlationId"].as_str().expect("correlationId");
    assert_eq!(cid.len(), 36, "uuid-shaped correlationId");
}
