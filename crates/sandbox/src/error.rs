//! HubSpot-shaped error bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// A uuid-shaped (version 4 layout) random identifier, as HubSpot uses for `correlationId`.
pub fn correlation_id() -> String {
    let b: [u8; 16] = rand::random();
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        let byte = match i {
            6 => (byte & 0x0f) | 0x40,
            8 => (byte & 0x3f) | 0x80,
            _ => *byte,
        };
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// An error answered in HubSpot's standard error body:
/// `{"status":"error","message":…,"correlationId":…,"category":…,"context"?:…,"errors"?:…,"links"?:…}`.
#[derive(Debug, Clone)]
pub struct ApiError(Box<ApiErrorData>);

/// The fields of an [`ApiError`] (reachable through `Deref`).
#[derive(Debug, Clone)]
pub struct ApiErrorData {
    /// HTTP status.
    pub status: StatusCode,
    /// `category` (e.g. `VALIDATION_ERROR`, `CONFLICT`, `OBJECT_NOT_FOUND`).
    pub category: String,
    /// `message`.
    pub message: String,
    /// `context`: map of string lists.
    pub context: Map<String, Value>,
    /// `errors`: detail objects (`message`, `code`, `context`, …).
    pub errors: Vec<Value>,
    /// `subCategory`, if any.
    pub sub_category: Option<String>,
}

impl ApiError {
    /// A new error with the given status, category and message.
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        ApiError(Box::new(ApiErrorData {
            status,
            category: category.to_string(),
            message: message.into(),
            context: Map::new(),
            errors: Vec::new(),
            sub_category: None,
        }))
    }

    /// The error's fields, by value.
    pub fn into_data(self) -> ApiErrorData {
        *self.0
    }

    /// 400 `VALIDATION_ERROR`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// 404 `OBJECT_NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    /// 409 `CONFLICT`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// Adds `context[key] = values`.
    pub fn with_context(mut self, key: &str, values: Vec<String>) -> Self {
        let entry = self
            .context
            .entry(key.to_string())
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(a) = entry {
            a.extend(values.into_iter().map(Value::String));
        }
        self
    }

    /// Sets the `errors` details.
    pub fn with_errors(mut self, errors: Vec<Value>) -> Self {
        self.errors = errors;
        self
    }

    /// The body as HubSpot's `StandardError` / `Error` JSON (with a fresh `correlationId`).
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("status".into(), json!("error"));
        m.insert("message".into(), json!(self.message));
        m.insert("correlationId".into(), json!(correlation_id()));
        m.insert("category".into(), json!(self.category));
        if let Some(sc) = &self.sub_category {
            m.insert("subCategory".into(), json!(sc));
        }
        if !self.context.is_empty() {
            m.insert("context".into(), Value::Object(self.context.clone()));
        }
        if !self.errors.is_empty() {
            m.insert("errors".into(), Value::Array(self.errors.clone()));
        }
        Value::Object(m)
    }
}

impl std::ops::Deref for ApiError {
    type Target = ApiErrorData;
    fn deref(&self) -> &ApiErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ApiErrorData {
        &mut self.0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn correlation_id_is_uuid_shaped() {
        let id = super::correlation_id();
        assert_eq!(id.len(), 36);
        let parts: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
    }
}
