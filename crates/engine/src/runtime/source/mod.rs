//! Sources of scheduled flows.
//!
//! A source is read page by page: [`Page::items`] are the records (or unusable pieces of input)
//! and [`Page::checkpoint`] is the source's whole state once those items are handled. The
//! caller records the page's outcomes and checkpoint durably, then calls the reader's
//! `committed` so it may act on the files it finished (move or delete them); a reader built
//! again from the last recorded checkpoint resumes after the last recorded page.

pub mod file;
pub mod http;

pub use file::FileReader;
pub use http::HttpReader;

use crate::runtime::Item;

/// One page read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records and bad inputs of this page, in source order.
    pub items: Vec<Item>,
    /// The source's whole state after this page, to store with the page's outcomes.
    pub checkpoint: serde_json::Value,
}

/// Why a source cannot be read (as opposed to one bad record, which is an [`Item::Bad`]).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source settings cannot be used (bad delimiter, unknown format, bad JSONPath).
    #[error("{0}")]
    Config(String),
    /// A stored checkpoint is not one this source wrote.
    #[error("the stored checkpoint cannot be read: {0}")]
    Checkpoint(String),
    /// A file could not be listed, opened, read, moved or deleted.
    #[error("{path}: {source}")]
    Io {
        /// The file, relative to the flow's folder where possible.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An HTTP request failed (after its retries).
    #[error(transparent)]
    Http(#[from] crate::runtime::http::HttpError),
    /// A response does not hold records where the source expects them.
    #[error("HTTP {status} from {path}: {message}; body starts: {snippet}")]
    BadResponse {
        /// The HTTP status.
        status: u16,
        /// The request path (without query, which may hold secrets).
        path: String,
        /// What is wrong.
        message: String,
        /// The start of the body (at most 200 characters).
        snippet: String,
    },
}
