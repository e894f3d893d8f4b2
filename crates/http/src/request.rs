//! What is sent and what comes back. A [`Request`] is a description, not a `reqwest` builder,
//! so the policy can send it again; credentials are added per attempt by a hook
//! ([`crate::Hooks::authorize`]), never stored in it.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::error::HeaderNames;
use crate::throttle::RollingWindow;

/// One request, described so that it can be sent again.
#[derive(Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The full URL, query included.
    pub url: Url,
    /// Headers of this request (the policy's default headers are added by the client).
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// Safe to send again when the first answer may have been lost (a timeout, a broken
    /// connection, a 5xx). A request that surely never reached the server (a connect error) is
    /// sent again either way.
    pub idempotent: bool,
    /// The budget this request spends; `None` spends the policy's own (if it has one).
    pub budget: Option<Arc<RollingWindow>>,
}

impl Request {
    /// A request without body; idempotent as the method is (`GET`, `PUT`, `DELETE`, … yes;
    /// `POST`, `PATCH` no).
    pub fn new(method: Method, url: Url) -> Self {
        Request {
            idempotent: method.is_idempotent(),
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            budget: None,
        }
    }

    /// A `GET`.
    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }

    /// A `POST` (not idempotent unless said so).
    pub fn post(url: Url) -> Self {
        Self::new(Method::POST, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the body and its content type.
    pub fn body(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.body = Some(body);
        self
    }

    /// Sets a JSON body (already serialised).
    pub fn json(self, body: Vec<u8>) -> Self {
        self.body("application/json", body)
    }

    /// Says whether the request may be sent again after an ambiguous failure.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Spends `window` instead of the policy's budget.
    pub fn budget(mut self, window: Arc<RollingWindow>) -> Self {
        self.budget = Some(window);
        self
    }

    /// The URL's path, for logs and errors (never the query: it may carry a key).
    pub fn path(&self) -> &str {
        self.url.path()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path())
            .field("headers", &HeaderNames(&self.headers))
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("idempotent", &self.idempotent)
            .field("budget", &self.budget.is_some())
            .finish()
    }
}

/// A complete answer: status, headers, final URL and the whole body (within the size cap).
#[derive(Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The URL that answered (after redirects), to resolve relative links against.
    pub url: Url,
    /// The body.
    pub body: Vec<u8>,
    /// Sends it took.
    pub attempts: u32,
}

impl Response {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("path", &self.url.path())
            .field("headers", &HeaderNames(&self.headers))
            .field("body_bytes", &self.body.len())
            .field("attempts", &self.attempts)
            .finish()
    }
}
