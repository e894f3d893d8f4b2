//! The flow and connection formats, as Rust types. Parsing, validation, the JSON Schema and
//! the docs all come from these definitions. Each connector's own settings are defined in
//! [`crate::connectors`] and re-exported here, so the whole format reads from one place.

mod connection;
mod duration;
mod flow;

pub use crate::connectors::file::{AfterRead, FileFormat, FileSink, FileSource, SinkFormat};
pub use crate::connectors::http::{
    CursorPagination, HttpConnection, HttpIncremental, HttpReadMethod, HttpSink, HttpSource,
    HttpWriteMethod, PagePagination, Pagination,
};
pub use crate::connectors::hubspot::{
    HubSpotAction, HubSpotConnection, HubSpotSource, HubSpotTrigger, LineItems, OAuth, Operation,
    TriggerEvent, TriggerObject,
};
pub use connection::*;
pub use duration::Duration;
pub use flow::*;
