//! Sources of scheduled flows.

pub mod file;
pub mod http;
