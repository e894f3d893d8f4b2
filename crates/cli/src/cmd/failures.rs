//! `rivulet failures`: the records that failed, why, and what was sent; `discard` drops them on
//! purpose (they never expire on their own).
//!
//! ```sh
//! rivulet failures --flow orders                 # open failures, oldest first
//! rivulet failures --status all --format json    # every entry, with the record and what was sent
//! rivulet failures discard 12 13                 # drop entries on purpose
//! ```
//!
//! Exit codes: 0 listed (or discarded); 2 usage or I/O error.

use super::state::{Format, StateArgs, compact, runtime};
use rivulet_runtime::state::{FailureFilter, FailureStatus, StoredFailure};
use serde_json::json;
use std::process::ExitCode;

/// Which failures to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Status {
    /// Waiting for an operator or a replay.
    Failed,
    /// Sent again by a replay that failed again (a newer entry says why).
    Replayed,
    /// Went through later.
    Resolved,
    /// Dropped on purpose.
    Discarded,
    /// All of them.
    All,
}

/// Arguments of `rivulet failures`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet failures --flow orders\n  rivulet failures --format json\n  rivulet failures discard 12 13\n  rivulet replay --flow orders        # send them again\n\nExit codes: 0 listed or discarded, 2 usage or I/O error."
)]
pub struct Args {
    #[command(subcommand)]
    discard: Option<Discard>,
    #[command(flatten)]
    state: StateArgs,
    /// Only this flow's failures.
    #[arg(long = "flow", value_name = "NAME")]
    flow: Option<String>,
    /// Which entries.
    #[arg(long, value_enum, default_value = "failed")]
    status: Status,
    /// How many, oldest first.
    #[arg(long, default_value = "100")]
    limit: usize,
    /// Output: `human` or `json` (with each source record and what was sent).
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

#[derive(Debug, clap::Subcommand)]
enum Discard {
    /// Drop failed entries on purpose: they are kept, marked discarded, and not replayed.
    Discard {
        /// The entries' ids (the first column of `rivulet failures`), and the flow files or
        /// directories the state is found beside (anything that is not a number; default
        /// `flows`), in any order.
        #[arg(required = true)]
        targets: Vec<String>,
        /// The state store: a SQLite file or a postgres:// URL.
        #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
        state: Option<String>,
    },
}

/// A failed record as JSON (shared with `runs show`).
pub fn failure_json(f: &StoredFailure) -> serde_json::Value {
    let scrub = |v: &serde_json::Value| {
        serde_json::from_str::<serde_json::Value>(&rivulet_http::secrets::scrub_owned(
            v.to_string(),
        ))
        .unwrap_or(serde_json::Value::Null)
    };
    json!({
        "id": f.id,
        "flow": f.flow,
        "run_id": f.run_id,
        "failed_at": f.failed_at,
        "status": f.status.as_str(),
        "key": f.failure.key,
        "version": f.failure.version,
        "origin": f.failure.origin,
        "action": f.failure.action,
        "error": rivulet_http::secrets::scrub(&f.failure.error),
        "record": f.failure.record.as_ref().map(scrub),
        "sent": f.failure.sent.as_ref().map(scrub),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        if let Some(Discard::Discard { targets, state }) = args.discard {
            let (ids, paths) = super::state::ids_and_paths(&targets);
            if ids.is_empty() {
                anyhow::bail!("name the failed records to discard by id (see `rivulet failures`)");
            }
            let state = StateArgs { paths, state };
            let store = state.open().await?;
            let found = store
                .find_failures(&FailureFilter {
                    ids: Some(ids.clone()),
                    limit: ids.len(),
                    ..FailureFilter::default()
                })
                .await?;
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !found.iter().any(|f| f.id == **id))
                .map(ToString::to_string)
                .collect();
            if !missing.is_empty() {
                anyhow::bail!("no failed record with id {}", missing.join(", "));
            }
            store.set_failure_status(&ids, FailureStatus::Discarded).await?;
            println!("discarded {} failed record(s)", ids.len());
            return Ok(ExitCode::SUCCESS);
        }
        let store = args.state.open().await?;
        let status = match args.status {
            Status::Failed => Some(FailureStatus::Failed),
            Status::Replayed => Some(FailureStatus::Replayed),
            Status::Resolved => Some(FailureStatus::Resolved),
            Status::Discarded => Some(FailureStatus::Discarded),
            Status::All => None,
        };
        let failures = store
            .find_failures(&FailureFilter {
                flow: args.flow.clone(),
                status,
                limit: args.limit,
                ..FailureFilter::default()
            })
            .await?;
        if args.format == Format::Json {
            let doc = json!({
                "version": crate::render::JSON_VERSION,
                "failures": failures.iter().map(failure_json).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(ExitCode::SUCCESS);
        }
        for f in &failures {
            let action = f
                .failure
                .action
                .map_or_else(|| "mapping".to_string(), |a| format!("action {a}"));
            println!(
                "#{:<5} {} · {} · {} · run {} · {}",
                f.id,
                crate::render::printable(&f.flow),
                crate::render::printable(&f.failure.origin),
                action,
                f.run_id,
                f.status
            );
            println!(
                "       error:  {}",
                crate::render::printable(&rivulet_http::secrets::scrub(&f.failure.error))
            );
            if let Some(r) = &f.failure.record {
                println!("       record: {}", crate::render::printable(&compact(r, 300)));
            }
            if let Some(s) = &f.failure.sent {
                println!("       sent:   {}", crate::render::printable(&compact(s, 300)));
            }
        }
        if failures.is_empty() {
            println!("(no failed records)");
        } else {
            println!(
                "\n{} failed record(s); `rivulet replay` sends them again, `rivulet failures discard ID…` drops them",
                failures.len()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
