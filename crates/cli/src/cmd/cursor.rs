//! `rivulet cursor`: where each flow stands, and moving it. `reset` takes the state's lease:
//! refused while a runner holds it, unless `--wait`.
//!
//! ```sh
//! rivulet cursor show                              # every flow's cursor
//! rivulet cursor reset new-contacts --to beginning # read everything again (a backfill)
//! rivulet cursor reset new-contacts --to 2026-11-01T00:00:00Z
//! ```
//!
//! Exit codes: 0 done; 1 the flows are invalid; 2 usage or I/O error; 5 a runner holds the
//! state.

use super::state::{Format, StateArgs, hold, runtime};
use rivulet_runtime::ops::{self, ResetTo};
use rivulet_runtime::runner::RunOptions;
use rivulet_runtime::state::Cursor;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rivulet cursor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Each flow's cursor: what it tracks, where it stands, when it last moved.
    #[command(
        after_help = "Examples:\n  rivulet cursor show\n  rivulet cursor show new-contacts --format json\n\nExit codes: 0 shown, 2 usage or I/O error."
    )]
    Show {
        /// Only this flow's.
        flow: Option<String>,
        /// Flow files or directories (the state defaults to `.rivulet/state.db` beside them).
        #[arg(default_value = "flows")]
        paths: Vec<PathBuf>,
        /// The state store: a SQLite file or a postgres:// URL.
        #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
        state: Option<String>,
        /// Output: `human` or `json`.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Moves a flow's cursor: a trigger starts again from `--to`; a source reads afresh.
    #[command(
        after_help = "Examples:\n  rivulet cursor reset new-contacts --to beginning\n  rivulet cursor reset new-contacts --to 2026-11-01T00:00:00Z\n\nExit codes: 0 moved, 1 the flows are invalid, 2 usage or I/O error, 5 a runner holds the state."
    )]
    Reset {
        /// The flow.
        flow: String,
        /// Flow files or directories (default `flows`).
        #[arg(default_value = "flows")]
        paths: Vec<PathBuf>,
        /// `now` (only changes from now on), `beginning` (everything again: a backfill) or an
        /// RFC 3339 instant.
        #[arg(long, value_name = "now|beginning|INSTANT", value_parser = ResetTo::parse)]
        to: ResetTo,
        /// The state store: a SQLite file or a postgres:// URL.
        #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
        state: Option<String>,
        /// When a runner holds the state, wait for it to stop instead of refusing.
        #[arg(long)]
        wait: bool,
    },
}

/// A cursor's state for people: a trigger's position as an instant.
fn describe(cursor: &Cursor) -> String {
    let at = |ms: &Value| {
        ms.as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    match (
        cursor.state.get("ts").and_then(at),
        cursor.state.get("floor").and_then(at),
    ) {
        (Some(ts), Some(floor)) => format!("read up to {ts} (never before {floor})"),
        _ => super::state::compact(&cursor.state, 120),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Show {
            flow,
            paths,
            state,
            format,
        } => runtime()?.block_on(async move {
            let store = StateArgs { paths, state }.open().await?;
            let cursors = store.cursors(flow.as_deref()).await?;
            if format == Format::Json {
                let doc = json!({
                    "version": crate::render::JSON_VERSION,
                    "cursors": cursors.iter().map(|c| json!({
                        "flow": c.flow,
                        "identity": c.cursor.identity,
                        "state": c.cursor.state,
                        "updated_at": c.updated_at,
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            for c in &cursors {
                println!("{}", crate::render::printable(&c.flow));
                println!(
                    "  of:      {}",
                    c.cursor.identity.chars().take(160).collect::<String>()
                );
                println!("  where:   {}", describe(&c.cursor));
                println!("  moved:   {}", c.updated_at);
            }
            if cursors.is_empty() {
                println!("(no cursors yet)");
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Reset {
            flow,
            paths,
            to,
            state,
            wait,
        } => {
            let validation = match super::state::valid_flows(&paths, None)? {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            let state = StateArgs { paths, state };
            runtime()?.block_on(async move {
                let store = state.open().await?;
                let lease = super::state::lease_of(&store, &validation, &flow);
                let held = match hold(&store, &state.location(), &lease, wait).await? {
                    Ok(held) => held,
                    Err(code) => return Ok(code),
                };
                let result = ops::reset_cursor(
                    &validation,
                    store.as_ref(),
                    &RunOptions::default(),
                    &flow,
                    &to,
                )
                .await;
                held.release().await;
                match result? {
                    Some(cursor) => println!("{flow}: {}", describe(&cursor)),
                    None => println!("{flow}: its source is read afresh on the next run"),
                }
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
