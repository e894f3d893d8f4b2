//! The flow and connection formats, as Rust types. Parsing, validation, the JSON Schema and
//! the docs all come from these definitions.

mod connection;
mod duration;
mod flow;

pub use connection::*;
pub use duration::Duration;
pub use flow::*;
