//! `rivulet runs`: what ran, when, how it went.
//!
//! ```sh
//! rivulet runs                         # the latest 20 runs of every flow
//! rivulet runs --flow companies-from-erp --limit 50 --format json
//! rivulet runs show 42                 # one run, with its errors and failed records
//! ```
//!
//! Exit codes: 0 listed; 2 usage or I/O error (no state, unknown run).

use super::state::{Format, StateArgs, compact, duration, runtime};
use rivulet_runtime::state::{FailureFilter, RunRow};
use serde_json::json;
use std::process::ExitCode;

/// Arguments of `rivulet runs`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet runs --flow orders --limit 5\n  rivulet runs show 42 --format json\n\nExit codes: 0 listed, 2 usage or I/O error."
)]
pub struct Args {
    #[command(subcommand)]
    show: Option<Show>,
    #[command(flatten)]
    state: StateArgs,
    /// Only this flow's runs.
    #[arg(long = "flow", value_name = "NAME")]
    flow: Option<String>,
    /// How many runs, newest first.
    #[arg(long, default_value = "20")]
    limit: usize,
    /// Output: `human` or `json`.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

#[derive(Debug, clap::Subcommand)]
enum Show {
    /// One run: its counts, its error, and the records it failed.
    Show {
        /// The run's id (the first column of `rivulet runs`).
        run_id: i64,
        #[command(flatten)]
        state: StateArgs,
        /// Output: `human` or `json`.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
}

fn run_json(r: &RunRow) -> serde_json::Value {
    json!({
        "id": r.id,
        "flow": r.flow,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration": duration(&r.started_at, r.finished_at.as_deref()),
        "status": r.status.as_str(),
        "read": r.counts.read,
        "delivered": r.counts.succeeded,
        "failed": r.counts.failed,
        "read_again": r.counts.skipped,
        "unchanged": r.counts.unchanged,
        "filtered": r.counts.filtered,
        "api_calls": r.counts.api_calls,
        "error": r.error.as_deref().map(rivulet_http::secrets::scrub),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match args.show {
            Some(Show::Show {
                run_id,
                state,
                format,
            }) => show(run_id, &state, format).await,
            None => list(&args.state, args.flow.as_deref(), args.limit, args.format).await,
        }
    })
}

async fn list(
    state: &StateArgs,
    flow: Option<&str>,
    limit: usize,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let store = state.open().await?;
    let runs = store.runs(flow, limit).await?;
    if format == Format::Json {
        let doc = json!({
            "version": crate::render::JSON_VERSION,
            "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<26} {:<20} {:>8}  {:<11} {:>7} {:>9} {:>9} {:>8} {:>6} {:>6} {:>6}",
        "run",
        "flow",
        "started",
        "took",
        "status",
        "read",
        "delivered",
        "unchanged",
        "filtered",
        "failed",
        "again",
        "calls"
    );
    for r in &runs {
        let started = r
            .started_at
            .get(..19)
            .unwrap_or(&r.started_at)
            .replace('T', " ");
        println!(
            "{:>6}  {:<26} {:<20} {:>8}  {:<11} {:>7} {:>9} {:>9} {:>8} {:>6} {:>6} {:>6}",
            r.id,
            crate::render::printable(&r.flow),
            started,
            duration(&r.started_at, r.finished_at.as_deref()),
            r.status.as_str(),
            r.counts.read,
            r.counts.succeeded,
            r.counts.unchanged,
            r.counts.filtered,
            r.counts.failed,
            r.counts.skipped,
            r.counts.api_calls,
        );
    }
    if runs.is_empty() {
        println!("(no runs yet)");
    } else {
        println!(
            "\n`again`: records read again where windows overlap, already delivered by an earlier run."
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(run_id: i64, state: &StateArgs, format: Format) -> anyhow::Result<ExitCode> {
    let store = state.open().await?;
    let Some(run) = store.run(run_id).await? else {
        anyhow::bail!(
            "no run {run_id} in {}",
            rivulet_runtime::state::display_location(&state.location())
        );
    };
    let failures = store
        .find_failures(&FailureFilter {
            run_id: Some(run_id),
            limit: 1000,
            ..FailureFilter::default()
        })
        .await?;
    if format == Format::Json {
        let mut doc = run_json(&run);
        doc["version"] = json!(crate::render::JSON_VERSION);
        doc["failures"] = json!(
            failures
                .iter()
                .map(super::failures::failure_json)
                .collect::<Vec<_>>()
        );
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("run {} of {}: {}", run.id, run.flow, run.status);
    println!(
        "  started {}, took {}",
        run.started_at,
        duration(&run.started_at, run.finished_at.as_deref())
    );
    println!(
        "  read {}, delivered {}, unchanged {}, filtered {}, failed {}, read again {}, API calls {}",
        run.counts.read,
        run.counts.succeeded,
        run.counts.unchanged,
        run.counts.filtered,
        run.counts.failed,
        run.counts.skipped,
        run.counts.api_calls
    );
    if let Some(e) = &run.error {
        println!(
            "  error: {}",
            crate::render::printable(&rivulet_http::secrets::scrub(e))
        );
    }
    for f in &failures {
        println!(
            "  failed #{} {} ({}): {}",
            f.id,
            crate::render::printable(&f.failure.origin),
            f.status,
            crate::render::printable(&rivulet_http::secrets::scrub(&f.failure.error))
        );
        if let Some(r) = &f.failure.record {
            println!("    record: {}", compact(r, 300));
        }
    }
    Ok(ExitCode::SUCCESS)
}
