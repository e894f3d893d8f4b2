//! The runtime of an `http` connection: one client per connection, shared by every flow that
//! uses it (and so sharing its throttle). Sending, retrying, waiting on `Retry-After` and
//! bounding answers are the shared HTTP policy's (`rivulet-http`); this client adds the
//! connection's base URL and headers, and reads answers as JSON.
//!
//! Header values come from the environment (`${VAR}`); errors name the variable, never its
//! value, and never print a full URL (its query may carry a key).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use rivulet_http::{Policy, PolicyConfig, Request};
use rivulet_spec::env::{EnvError, interpolate_env};
use rivulet_spec::model::HttpConnection;
use serde_json::Value;

pub use rivulet_http::RetryPolicy;

/// Requests one HTTP connection keeps in flight at most.
const MAX_IN_FLIGHT: usize = 16;

/// What went wrong talking to an HTTP API. Carries no header values and no query strings.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A connection setting uses an environment variable that cannot be read.
    #[error("connection setting `{setting}`: {source}")]
    Env {
        /// Which setting (`base_url`, `header Authorization`).
        setting: String,
        /// The interpolation error (names the variable only).
        source: EnvError,
    },
    /// A connection setting is unusable (bad base URL, bad header name or value).
    #[error("{0}")]
    Config(String),
    /// A path or link does not form a URL.
    #[error("`{path}` does not form a URL: {message}")]
    Url {
        /// The path or link as given.
        path: String,
        /// Why.
        message: String,
    },
    /// The server answered with a status that is not a success (after any retries).
    #[error("HTTP {status} from {method} {path}{after}: {snippet}", after = attempts_text(*attempts))]
    Status {
        /// The HTTP status.
        status: u16,
        /// The method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The start of the body (at most 200 characters).
        snippet: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A success response is not JSON.
    #[error("HTTP {status} from {method} {path} is not JSON ({message}); body starts: {snippet}")]
    NotJson {
        /// The HTTP status.
        status: u16,
        /// The method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The parse error.
        message: String,
        /// The start of the body (at most 200 characters).
        snippet: String,
    },
    /// The answer was larger than the connection reads.
    #[error("HTTP {status} from {method} {path}: the answer is larger than {limit} bytes")]
    TooLarge {
        /// The HTTP status.
        status: u16,
        /// The method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// The cap.
        limit: u64,
    },
    /// No answer: a timeout or a connection error (after any retries).
    #[error("{method} {path}{after}: {message}", after = attempts_text(*attempts))]
    Transport {
        /// The method.
        method: String,
        /// The URL path (no query).
        path: String,
        /// What happened (without the URL).
        message: String,
        /// Whether the request may have reached the server (a timeout) rather than surely not
        /// (a refused connection).
        maybe_sent: bool,
        /// Attempts made.
        attempts: u32,
    },
}

impl HttpError {
    /// Whether the API could not take the request now (unreachable, a timeout, a rate limit,
    /// a server error): the same request may succeed later, unlike one it refused.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Transport { .. } => true,
            HttpError::Status { status, .. } => matches!(status, 408 | 429 | 500..),
            _ => false,
        }
    }
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// Counters of one client, for tests and run summaries.
pub type HttpStats = rivulet_http::Stats;

/// A client for one `http` connection. Cheap to clone; clones share the policy (throttle,
/// in-flight limit, counters).
#[derive(Debug, Clone)]
pub struct HttpClient {
    policy: Policy,
    /// The base URL, without a trailing `/`.
    base: String,
}

/// A JSON answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonResponse {
    /// The status (a success).
    pub status: StatusCode,
    /// The final URL of the request (to resolve relative links against).
    pub url: Url,
    /// The body; `null` when it was empty.
    pub body: Value,
}

impl HttpClient {
    /// Builds the client of a connection, reading `${VAR}`s from the environment.
    pub fn new(conn: &HttpConnection) -> Result<HttpClient, HttpError> {
        HttpClient::with_policy(conn, RetryPolicy::default())
    }

    /// [`HttpClient::new`] with a retry policy (tests use short delays).
    pub fn with_policy(conn: &HttpConnection, retry: RetryPolicy) -> Result<HttpClient, HttpError> {
        let base = interpolate_env(&conn.base_url).map_err(|source| HttpError::Env {
            setting: "base_url".into(),
            source,
        })?;
        let base = base.trim_end_matches('/').to_string();
        let parsed = Url::parse(&base)
            .map_err(|e| HttpError::Config(format!("base_url is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(HttpError::Config(
                "base_url must start with http:// or https://".into(),
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &conn.headers {
            let setting = format!("header {name}");
            let value = interpolate_env(value).map_err(|source| HttpError::Env {
                setting: setting.clone(),
                source,
            })?;
            // What came from the environment may be a credential: scrubbed wherever it shows,
            // alone and as the whole header value (`Bearer …`, which a server may echo
            // base64-encoded as it is).
            let refs = rivulet_spec::env::references(&conn.headers[name]).unwrap_or_default();
            for var in &refs {
                if let Ok(v) = std::env::var(&var.name) {
                    rivulet_http::secrets::register(&v);
                }
            }
            if !refs.is_empty() {
                rivulet_http::secrets::register(&value);
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::Config(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::from_str(&value).map_err(|_| {
                HttpError::Config(format!("{setting}: the value is not valid in a header"))
            })?;
            headers.insert(name, value);
        }
        let policy = Policy::new(PolicyConfig {
            label: conn
                .display_name
                .clone()
                .unwrap_or_else(|| parsed.host_str().unwrap_or("http").to_string()),
            retry,
            timeout: conn.timeout.get(),
            max_in_flight: MAX_IN_FLIGHT,
            throttle: conn.throttle.map(|t| rivulet_http::Throttle {
                limit: t.limit.max(1),
                per: t.per.get(),
            }),
            default_headers: headers,
            ..PolicyConfig::default()
        })
        .map_err(|e| HttpError::Config(e.to_string()))?;
        Ok(HttpClient { policy, base })
    }

    /// The counters so far.
    pub fn stats(&self) -> HttpStats {
        self.policy.stats()
    }

    /// Keeps to a `1/runners` part of the connection's throttle (runners sharing it).
    pub fn share_budget(&self, runners: usize) {
        self.policy.share_budget(runners);
    }

    /// The URL of a path below the base URL (`/customers` → `{base}/customers`), or an
    /// absolute `http(s)://` URL as is.
    pub fn url(&self, path_or_url: &str) -> Result<Url, HttpError> {
        let text = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else if path_or_url.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, path_or_url.trim_start_matches('/'))
        };
        Url::parse(&text).map_err(|e| HttpError::Url {
            path: path_or_url.to_string(),
            message: e.to_string(),
        })
    }

    /// `GET` a path (or URL) with query parameters, expecting JSON.
    pub async fn get_json(
        &self,
        path_or_url: &str,
        query: &[(String, String)],
    ) -> Result<JsonResponse, HttpError> {
        self.send_json(Method::GET, path_or_url, query, None, &[])
            .await
    }

    /// Sends a request (with a JSON body if given, and extra headers) through the connection's
    /// policy and parses the JSON answer. A success with an empty body is `null`; any other
    /// non-JSON success is [`HttpError::NotJson`]; a failure status is [`HttpError::Status`].
    pub async fn send_json(
        &self,
        method: Method,
        path_or_url: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<JsonResponse, HttpError> {
        let mut url = self.url(path_or_url)?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let path = url.path().to_string();
        let mut request = Request::new(method.clone(), url).header(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::Config(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| HttpError::Config(format!("header {name}: not a valid value")))?;
            request = request.header(name, value);
        }
        if let Some(v) = body {
            request =
                request.json(serde_json::to_vec(v).map_err(|e| HttpError::Config(e.to_string()))?);
        }
        let method = method.to_string();
        let answer = self.policy.send(&request).await.map_err(|e| match e {
            rivulet_http::Error::Transport {
                kind,
                maybe_sent,
                attempts,
                message,
            } => HttpError::Transport {
                method: method.clone(),
                path: path.clone(),
                message: format!("{kind}: {message}"),
                maybe_sent,
                attempts,
            },
            rivulet_http::Error::Status {
                status,
                body,
                attempts,
                ..
            } => HttpError::Status {
                status: status.as_u16(),
                method: method.clone(),
                path: path.clone(),
                snippet: snippet(&body),
                attempts,
            },
            rivulet_http::Error::RateLimited { body, attempts, .. } => HttpError::Status {
                status: StatusCode::TOO_MANY_REQUESTS.as_u16(),
                method: method.clone(),
                path: path.clone(),
                snippet: snippet(&body),
                attempts,
            },
            rivulet_http::Error::TooLarge { status, limit, .. } => HttpError::TooLarge {
                status: status.as_u16(),
                method: method.clone(),
                path: path.clone(),
                limit,
            },
            other => HttpError::Config(other.to_string()),
        })?;
        let status = answer.status;
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonResponse {
                status,
                url: answer.url,
                body: Value::Null,
            });
        }
        match serde_json::from_slice(&answer.body) {
            Ok(body) => Ok(JsonResponse {
                status,
                url: answer.url,
                body,
            }),
            Err(e) => Err(HttpError::NotJson {
                status: status.as_u16(),
                method,
                path,
                message: e.to_string(),
                snippet: snippet(&answer.body),
            }),
        }
    }
}

/// At most 200 characters of a body, on one line.
pub fn snippet(bytes: &[u8]) -> String {
    // Scrubbed before it is cut: a server that echoes a secret across the cut would otherwise
    // leave its first characters behind, which no later scrubbing recognises.
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    let text = rivulet_http::secrets::scrub(&text);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(base_url: &str, headers: &[(&str, &str)]) -> HttpConnection {
        HttpConnection {
            display_name: None,
            base_url: base_url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            throttle: None,
            timeout: rivulet_spec::model::Duration::from_secs(1),
        }
    }

    #[test]
    fn snippets_are_short_and_single_line() {
        let long = "x".repeat(1000);
        assert!(snippet(long.as_bytes()).chars().count() <= 201);
        assert_eq!(snippet(b"<html>\n<b>oops</b>"), "<html> <b>oops</b>");
    }

    #[test]
    fn a_secret_echoed_across_the_cut_leaves_nothing_behind() {
        rivulet_http::secrets::register("snippet-s3cr3t-value");
        let echoed = format!("{}Bearer snippet-s3cr3t-value", "x".repeat(185));
        let shown = snippet(echoed.as_bytes());
        assert!(!shown.contains("snippet-"), "{shown}");
    }

    #[test]
    fn urls_join_below_the_base() {
        let c = HttpClient::new(&connection("http://127.0.0.1:1/api/", &[])).unwrap();
        assert_eq!(
            c.url("/customers").unwrap().as_str(),
            "http://127.0.0.1:1/api/customers"
        );
        assert_eq!(
            c.url("customers").unwrap().as_str(),
            "http://127.0.0.1:1/api/customers"
        );
        assert_eq!(
            c.url("https://x.test/a?b=1").unwrap().as_str(),
            "https://x.test/a?b=1"
        );
    }

    #[test]
    fn env_errors_name_the_variable_only() {
        let conn = connection(
            "http://127.0.0.1:1",
            &[("Authorization", "Bearer ${RIVULET_TEST_UNSET_TOKEN_VAR}")],
        );
        let e = HttpClient::new(&conn).unwrap_err().to_string();
        assert!(e.contains("RIVULET_TEST_UNSET_TOKEN_VAR"), "{e}");
        assert!(e.contains("header Authorization"), "{e}");
    }
}
