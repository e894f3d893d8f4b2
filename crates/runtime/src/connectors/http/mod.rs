//! JSON HTTP APIs: the connection's client ([`HttpClient`], one per connection, shared by its
//! flows), a paginated and incremental source ([`HttpReader`]) and a sink ([`HttpWriter`])
//! that sends an `Idempotency-Key` with every request.

mod client;
mod sink;
mod source;

pub use client::{HttpClient, HttpError, HttpStats, JsonResponse, RetryPolicy};
pub use sink::{HttpSinkError, HttpWriter};
pub use source::HttpReader;

impl From<HttpError> for crate::connector::SourceError {
    fn from(e: HttpError) -> Self {
        use crate::connector::SourceError;
        if e.is_transient() {
            SourceError::Unavailable(Box::new(e))
        } else {
            SourceError::Remote(Box::new(e))
        }
    }
}
