//! Running flows: triggers and sources produce records, mappings shape them, actions write
//! them, and the state store records every outcome before a cursor moves.

pub mod http;
pub mod record;
pub mod sink;
pub mod source;

pub use record::{ActionOutcome, Item, Prepared, Record};
