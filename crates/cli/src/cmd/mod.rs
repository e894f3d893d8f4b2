//! One module per subcommand.

pub mod auth;
pub mod check;
pub mod completions;
pub mod cursor;
pub mod failures;
pub mod init;
pub mod map;
pub mod plan;
pub mod replay;
pub mod run;
pub mod runners;
pub mod runs;
pub mod sandbox;
pub mod schema;
pub mod state;
pub mod test;
pub mod validate;
