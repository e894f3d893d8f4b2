//! Files: a scheduled source of CSV, JSON Lines and JSON records ([`FileReader`]), and an
//! action that appends JSON Lines or CSV ([`FileWriter`]) and can be undone after a crash.

mod sink;
mod source;

pub use sink::{FileWriter, truncate_to, undo};
pub use source::FileReader;
