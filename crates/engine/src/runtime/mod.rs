//! Running flows: triggers and sources produce records, mappings shape them, actions write
//! them, and the state store records every outcome before a cursor moves.

pub mod executor;
pub mod http;
pub mod hubspot;
pub mod record;
pub mod runner;
pub mod sink;
pub mod source;
pub mod state;
pub mod trigger;

pub use record::{ActionOutcome, Item, Prepared, Record};
