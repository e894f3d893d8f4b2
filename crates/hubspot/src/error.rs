//! Typed errors: what HubSpot said (status, category, correlation id) in a form an operator can
//! act on, plus the client-side failures (transport, rate limits, auth) that never reach HubSpot.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Everything a call to the client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// HubSpot answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// HubSpot kept answering 429 after the client had waited and retried as often as allowed.
    #[error(
        "HubSpot rate limit ({policy}) still hit after {attempts} attempts; lower the connection's throttle or concurrency"
    )]
    RateLimited {
        /// `policyName` of the last 429 (`TEN_SECONDLY_ROLLING`, `SECONDLY`, …) or `unknown`.
        policy: String,
        /// How many times the request was sent.
        attempts: u32,
    },
    /// The account's daily request limit is used up; this connection sends no more writes until
    /// the reset.
    #[error(
        "HubSpot daily API limit reached; writes on this connection are paused for {}s (until the daily reset)",
        .resume_in.as_secs()
    )]
    DailyLimit {
        /// Time left until the client lets writes through again.
        resume_in: Duration,
    },
    /// The request never produced a usable HTTP answer (timeout, refused connection, …).
    #[error("HubSpot request failed ({kind}): {message}")]
    Transport {
        /// What went wrong, coarsely.
        kind: TransportKind,
        /// The transport's own description (never contains credentials).
        message: String,
    },
    /// Getting an OAuth access token failed.
    #[error("HubSpot OAuth token refresh failed: {0}")]
    Auth(String),
    /// HubSpot answered 2xx with a body the client could not read.
    #[error("unexpected HubSpot response for {what}: {message}")]
    Decode {
        /// Which call.
        what: String,
        /// The parse error.
        message: String,
    },
    /// The client configuration or a call's arguments are invalid.
    #[error("invalid HubSpot client configuration: {0}")]
    Config(String),
    /// A create may or may not have happened (its response was lost) and it could not be checked.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

impl Error {
    /// The HTTP status HubSpot answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::RateLimited { .. } | Error::DailyLimit { .. } => Some(429),
            _ => None,
        }
    }

    /// HubSpot's error category, or a client-side category (`TRANSPORT`, `RATE_LIMIT`, …).
    pub fn category(&self) -> &str {
        match self {
            Error::Api(e) => &e.category,
            Error::RateLimited { .. } => "RATE_LIMIT",
            Error::DailyLimit { .. } => "DAILY_LIMIT",
            Error::Transport { .. } => "TRANSPORT",
            Error::Auth(_) => "AUTH",
            Error::Decode { .. } => "DECODE",
            Error::Config(_) => "CONFIG",
            Error::Unknown(_) => "UNKNOWN",
        }
    }

    /// Whether HubSpot could not take the request now (down, overloaded, rate limited): the
    /// same request may succeed later, unlike one HubSpot refused.
    pub fn is_transient(&self) -> bool {
        transient(self.status(), self.category())
    }

    /// True for a 404 from HubSpot.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api(e) if e.status == 404)
    }
}

pub use rivulet_http::TransportKind;

/// An error answer from HubSpot, as its standard error body describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `category`, e.g. `VALIDATION_ERROR`, `CONFLICT`, `OBJECT_NOT_FOUND`, `RATE_LIMIT`.
    pub category: String,
    /// `subCategory`, when given.
    pub sub_category: Option<String>,
    /// `correlationId`: quote it to HubSpot support.
    pub correlation_id: Option<String>,
    /// `message`.
    pub message: String,
    /// `context`, e.g. `{"invalidPropertyName": ["foo"]}`.
    pub context: BTreeMap<String, Vec<String>>,
    /// `policyName` on 429s (`DAILY`, `SECONDLY`, `TEN_SECONDLY_ROLLING`).
    pub policy_name: Option<String>,
}

impl ApiError {
    /// Whether HubSpot refused what was sent (a 4xx other than authentication and rate
    /// limits): a batch refused whole is split until the refused inputs stand alone.
    pub(crate) fn refuses_the_input(&self) -> bool {
        (400..500).contains(&self.status) && !matches!(self.status, 401 | 403 | 429)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubSpot {} {}", self.status, self.category)?;
        if let Some(sub) = &self.sub_category {
            write!(f, "/{sub}")?;
        }
        write!(f, ": {}", self.message)?;
        for (k, v) in &self.context {
            write!(f, "; {k}: {}", v.join(", "))?;
        }
        if let Some(hint) = hint(self.status, &self.category) {
            write!(f, " ({hint})")?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " [correlationId {id}]")?;
        }
        Ok(())
    }
}

/// A next step for the statuses operators meet most.
fn hint(status: u16, category: &str) -> Option<&'static str> {
    match (status, category) {
        (401, _) => Some("check the connection's token or OAuth credentials"),
        (403, _) => Some("the token lacks a scope this call needs"),
        (404, _) => Some("no such record or object type"),
        (409, _) => Some("a record with this unique value already exists"),
        (_, "VALIDATION_ERROR") => Some("fix the record's property names or values"),
        _ => None,
    }
}

/// HubSpot's standard error body; every field optional, as HubSpot advises.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub status: Option<serde_json::Value>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub sub_category: Option<serde_json::Value>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub context: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub policy_name: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    /// The input field the detail is about (a property name for property errors).
    #[serde(default, rename = "in")]
    pub in_: Option<String>,
    #[serde(default)]
    pub context: Option<BTreeMap<String, serde_json::Value>>,
}

/// The `context` key under which HubSpot names the properties an error is about.
pub(crate) const PROPERTY_NAME_KEY: &str = "propertyName";

/// Context keys that name properties (HubSpot uses several).
fn names_properties(key: &str) -> bool {
    matches!(
        key,
        "propertyName"
            | "propertyNames"
            | "properties"
            | "invalidPropertyName"
            | "missingProperties"
    )
}

fn context_values(v: serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(items) => items.into_iter().map(value_text).collect(),
        other => vec![value_text(other)],
    }
}

impl ErrorBody {
    /// Turns a body into an [`ApiError`]; `status` is the HTTP status when the body's own
    /// `status` is not a number (HubSpot often sends `"status": "error"`).
    pub(crate) fn into_api_error(self, http_status: u16) -> ApiError {
        let status = match &self.status {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| n as u16),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(http_status);
        let mut message = self.message.unwrap_or_default();
        // property names the details carry (`errors[].context.propertyName`, `errors[].in`)
        let mut detail_props: Vec<String> = Vec::new();
        let mut details: Vec<String> = Vec::new();
        for d in self.errors {
            let mut named = false;
            for (k, v) in d.context.into_iter().flatten() {
                if names_properties(&k) {
                    named = true;
                    detail_props.extend(context_values(v));
                }
            }
            if !named && let Some(p) = d.in_.filter(|p| !p.is_empty()) {
                detail_props.push(p);
            }
            details.extend(d.message);
        }
        if message.is_empty() {
            message = details.join("; ");
        } else if !details.is_empty() && !details.iter().all(|d| message.contains(d.as_str())) {
            message = format!("{message} ({})", details.join("; "));
        }
        if message.is_empty() {
            message = format!("HTTP {http_status} without an error message");
        }
        let mut context: BTreeMap<String, Vec<String>> = self
            .context
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, context_values(v)))
            .collect();
        if !detail_props.is_empty() {
            let names = context.entry(PROPERTY_NAME_KEY.to_string()).or_default();
            for p in detail_props {
                if !names.contains(&p) {
                    names.push(p);
                }
            }
        }
        let category = self
            .category
            .or(self.error_type)
            .unwrap_or_else(|| default_category(status).to_string());
        ApiError {
            status,
            category,
            sub_category: self.sub_category.map(value_text),
            correlation_id: self.correlation_id,
            message,
            context,
            policy_name: self.policy_name,
        }
    }
}

fn value_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn default_category(status: u16) -> &'static str {
    match status {
        400 => "VALIDATION_ERROR",
        401 => "INVALID_AUTHENTICATION",
        403 => "MISSING_SCOPES",
        404 => "OBJECT_NOT_FOUND",
        409 => "CONFLICT",
        429 => "RATE_LIMIT",
        500..=599 => "SERVER_ERROR",
        _ => "ERROR",
    }
}

/// Parses an error response body leniently: a non-JSON body becomes the message.
pub(crate) fn parse_error_body(http_status: u16, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => parsed.into_api_error(http_status),
        Err(_) => {
            // Scrubbed before it is cut: a secret echoed across the cut would otherwise leave
            // its first characters behind, unrecognisable to the scrubber.
            let text =
                rivulet_http::secrets::scrub_owned(String::from_utf8_lossy(body).into_owned());
            let text: String = text.chars().take(500).collect();
            ErrorBody {
                message: Some(text.trim().to_string()).filter(|t| !t.is_empty()),
                ..ErrorBody::default()
            }
            .into_api_error(http_status)
        }
    }
}

/// Why one input record of a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// HTTP status of the answer that refused the record, when there was one.
    pub status: Option<u16>,
    /// HubSpot's category, or a client-side one (`TRANSPORT`, `RATE_LIMIT`, `DAILY_LIMIT`, …).
    pub category: String,
    /// HubSpot's subCategory, when given.
    pub sub_category: Option<String>,
    /// What went wrong.
    pub message: String,
    /// HubSpot's correlationId, when given.
    pub correlation_id: Option<String>,
    /// HubSpot's error context.
    pub context: BTreeMap<String, Vec<String>>,
}

/// The rule of [`Error::is_transient`] and [`RecordError::is_transient`]: a timeout, a rate
/// limit or a server error, by status or by category.
fn transient(status: Option<u16>, category: &str) -> bool {
    matches!(status, Some(408 | 429 | 500..=599))
        || matches!(category, "TRANSPORT" | "RATE_LIMIT" | "DAILY_LIMIT")
}

impl RecordError {
    /// Whether this record's failure is HubSpot's momentary state rather than a refusal of
    /// the record ([`Error::is_transient`]'s rule).
    pub fn is_transient(&self) -> bool {
        transient(self.status, &self.category)
    }

    /// The properties HubSpot named in the error's `context` (`propertyName` and kin, and the
    /// `errors[]` details' ones), e.g. the missing ones of a conditionally required rule.
    pub fn property_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (k, values) in &self.context {
            if names_properties(k) {
                for v in values {
                    if !out.contains(&v.as_str()) {
                        out.push(v);
                    }
                }
            }
        }
        out
    }

    /// A failure decided by the client before anything was sent.
    pub fn client(category: &str, message: impl Into<String>) -> Self {
        RecordError {
            status: None,
            category: category.to_string(),
            sub_category: None,
            message: message.into(),
            correlation_id: None,
            context: BTreeMap::new(),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "{status} ")?;
        }
        f.write_str(&self.category)?;
        if let Some(sub) = &self.sub_category {
            write!(f, "/{sub}")?;
        }
        write!(f, ": {}", self.message)?;
        let props = self.property_names();
        if !props.is_empty() {
            write!(f, "; properties: {}", props.join(", "))?;
        }
        for (k, v) in &self.context {
            // the trace ids are the client's own bookkeeping; the property names are above
            if names_properties(k) || k.eq_ignore_ascii_case("objectWriteTraceId") {
                continue;
            }
            write!(f, "; {k}: {}", v.join(", "))?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " [correlationId {id}]")?;
        }
        Ok(())
    }
}

impl From<ApiError> for RecordError {
    fn from(e: ApiError) -> Self {
        RecordError {
            status: Some(e.status),
            category: e.category,
            sub_category: e.sub_category,
            message: e.message,
            correlation_id: e.correlation_id,
            context: e.context,
        }
    }
}

impl From<&Error> for RecordError {
    fn from(e: &Error) -> Self {
        match e {
            Error::Api(api) => (**api).clone().into(),
            other => RecordError {
                status: other.status(),
                category: other.category().to_string(),
                sub_category: None,
                message: other.to_string(),
                correlation_id: None,
                context: BTreeMap::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hubspot_conflict_body() {
        let body = br#"{"status":"error","message":"Contact already exists. Existing ID: 6001","correlationId":"abc","category":"CONFLICT"}"#;
        let e = parse_error_body(409, body);
        assert_eq!(e.status, 409);
        assert_eq!(e.category, "CONFLICT");
        assert_eq!(e.correlation_id.as_deref(), Some("abc"));
        let shown = Error::Api(Box::new(e)).to_string();
        assert!(shown.contains("409 CONFLICT"), "{shown}");
        assert!(shown.contains("Existing ID: 6001"), "{shown}");
        assert!(shown.contains("correlationId abc"), "{shown}");
    }

    #[test]
    fn parses_rate_limit_body_and_context() {
        let body = br#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c0","policyName":"DAILY","context":{"invalidPropertyName":["foo"]}}"#;
        let e = parse_error_body(429, body);
        assert_eq!(e.category, "RATE_LIMIT");
        assert_eq!(e.policy_name.as_deref(), Some("DAILY"));
        assert_eq!(e.context["invalidPropertyName"], vec!["foo".to_string()]);
    }

    #[test]
    fn record_errors_name_their_properties() {
        let body = br#"{"status":"error","category":"VALIDATION_ERROR","message":"Some required properties for CONTACT creates are missing: [phone, jobtitle]",
            "context":{"objectWriteTraceId":["3"]},
            "errors":[{"message":"phone is required when lifecyclestage is customer","code":"REQUIRED_PROPERTY_MISSING","context":{"propertyName":["phone"]}},
                      {"message":"jobtitle is required","in":"jobtitle"}]}"#;
        let e: RecordError = parse_error_body(400, body).into();
        assert_eq!(e.property_names(), vec!["phone", "jobtitle"]);
        let shown = e.to_string();
        assert!(
            shown.starts_with("400 VALIDATION_ERROR: Some required properties"),
            "{shown}"
        );
        assert!(shown.contains("; properties: phone, jobtitle"), "{shown}");
        assert!(!shown.contains("objectWriteTraceId"), "{shown}");
        // HubSpot's own context key and other context entries still show
        let body = br#"{"category":"VALIDATION_ERROR","message":"m","context":{"propertyName":["industry"],"ids":["7"]}}"#;
        let e: RecordError = parse_error_body(400, body).into();
        assert_eq!(
            e.to_string(),
            "400 VALIDATION_ERROR: m; properties: industry; ids: 7"
        );
        assert!(RecordError::client("X", "y").property_names().is_empty());
    }

    #[test]
    fn non_json_body_becomes_message() {
        let e = parse_error_body(502, b"<html>Bad gateway</html>");
        assert_eq!(e.category, "SERVER_ERROR");
        assert!(e.message.contains("Bad gateway"));
        let e = parse_error_body(500, b"");
        assert!(e.message.contains("HTTP 500"));
    }
}
