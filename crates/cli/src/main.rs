//! `rivulet`: validate, test and run declarative data flows between HubSpot, files and HTTP
//! APIs.
//!
//! Exit codes (stable, for CI and scripts): see [`exit`].

mod cmd;
mod demo;
mod endpoints;
mod progress;
mod render;
mod watch;

/// Exit codes, stable for CI and scripts.
pub mod exit {
    /// Everything went through.
    pub const OK: u8 = 0;
    /// The flows are invalid, a mapping test failed, records failed (they are kept for
    /// replay), or a run stopped on an error.
    pub const FAILED: u8 = 1;
    /// Usage or I/O error: bad flags, unreadable paths, an unknown flow.
    pub const USAGE: u8 = 2;
    /// `run --once` gave up waiting for a destination (or source) that stayed down longer than
    /// `--once-wait`; nothing past it was recorded, and the next run takes it up again.
    pub const GAVE_UP_WAITING: u8 = 3;
    /// The runner stopped with work in hand (the grace period after SIGINT/SIGTERM ran out):
    /// those runs are marked interrupted and their records are read again on restart.
    pub const INTERRUPTED: u8 = 4;
    /// Another runner holds the state (or took it over while this one ran).
    pub const STATE_IN_USE: u8 = 5;
}

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Declarative data flows for HubSpot CRM: validate them in CI, test their mappings, run them
/// as a service.
#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold a flows folder: connections.yaml, default company and contact flows, their tests.
    Init(cmd::init::Args),
    /// Check flow and connection files: every error, with file, line and column.
    Validate(cmd::validate::Args),
    /// Print the JSON Schema of flow or connections files (for editors and other tools).
    Schema(cmd::schema::Args),
    /// Run the flows: triggers, schedules, mappings and actions, with durable state.
    Run(cmd::run::Args),
    /// Run the mapping tests beside the flows (`NAME.test.yaml`).
    Test(cmd::test::Args),
    /// Print the mapped output of a flow for input records (a file or JSON lines on stdin).
    Map(cmd::map::Args),
    /// What a run of these flows would change in HubSpot, record by record; writes nothing.
    Plan(cmd::plan::Args),
    /// Serve the in-memory HubSpot sandbox for trying flows and exploring with curl.
    Sandbox(cmd::sandbox::Args),
    /// List runs: when, how long, how they went (`runs show ID` for one).
    Runs(cmd::runs::Args),
    /// List the runners working on a state, the work each holds, and their heartbeats.
    Runners(cmd::runners::Args),
    /// List failed records with their errors (`failures discard ID…` drops them).
    Failures(cmd::failures::Args),
    /// Send failed records again through their flow's current mapping and actions.
    Replay(cmd::replay::Args),
    /// Show or move flows' cursors.
    Cursor(cmd::cursor::Args),
    /// Check connections against the real ends: scopes, a record read, properties, rate limit.
    Check(cmd::check::Args),
    /// Authorize an OAuth app from the terminal and store its refresh token.
    Auth(cmd::auth::Args),
    /// Print shell completions.
    Completions(cmd::completions::Args),
    /// Print (or write) the man pages.
    Man(cmd::completions::ManArgs),
}

fn main() -> ExitCode {
    // A panic's message may hold what it was working on: it is scrubbed of secrets like any
    // other output.
    std::panic::set_hook(Box::new(|info| {
        let text = format!("rivulet: internal error: {info}");
        eprintln!("{}", rivulet_http::secrets::scrub(&text));
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::Map(args) => cmd::map::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Sandbox(args) => cmd::sandbox::run(args),
        Command::Runs(args) => cmd::runs::run(args),
        Command::Runners(args) => cmd::runners::run(args),
        Command::Failures(args) => cmd::failures::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Cursor(args) => cmd::cursor::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Auth(args) => cmd::auth::run(args),
        Command::Completions(args) => cmd::completions::run(args),
        Command::Man(args) => cmd::completions::man(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let text = format!("rivulet: {err:#}");
            eprintln!("{}", rivulet_http::secrets::scrub(&text));
            ExitCode::from(exit::USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
