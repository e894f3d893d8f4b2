//! File and HTTP actions.

pub mod file;
pub mod http;
