//! One module per subcommand.

pub mod map;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod test;
pub mod validate;
