//! `rivulet replay`: failed records sent again through their flow's current mapping and
//! actions. A record that goes through resolves its entry; one that fails again gets a new
//! entry with the new error. Takes the state's lease: refused while a runner holds it (its
//! work would race the replay), unless `--wait`.
//!
//! ```sh
//! rivulet replay                      # every open failure of every flow
//! rivulet replay --flow orders        # one flow's
//! rivulet replay 12 13 flows/         # these entries (numbers are ids, anything else a path)
//! ```
//!
//! Exit codes: 0 every replayed record went through; 1 some failed again; 2 usage or I/O error;
//! 3 a destination is down (nothing was recorded; replay again later); 5 a runner holds the
//! state.

use super::state::{StateArgs, hold, runtime};
use crate::exit;
use anyhow::Context as _;
use indexmap::IndexMap;
use rivulet_runtime::ops::{self, OpsError};
use rivulet_runtime::runner::RunOptions;
use rivulet_runtime::state::{FailureFilter, FailureStatus, StoredFailure};
use std::process::ExitCode;

/// Arguments of `rivulet replay`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet replay --flow orders\n  rivulet replay 12 13\n\nExit codes: 0 all went through, 1 some failed again, 2 usage or I/O error, 3 a destination is down, 5 a runner holds the state."
)]
pub struct Args {
    /// Failed-record ids (numbers) and flow files or directories (anything else; default
    /// `flows`), in any order.
    targets: Vec<String>,
    /// The state store: a SQLite file or a postgres:// URL.
    #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
    state: Option<String>,
    /// Only this flow's failures.
    #[arg(long = "flow", value_name = "NAME")]
    flow: Option<String>,
    /// When a runner holds the state, wait for it to stop instead of refusing.
    #[arg(long)]
    wait: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (ids, paths) = super::state::ids_and_paths(&args.targets);
    let state = StateArgs {
        paths: paths.clone(),
        state: args.state.clone(),
    };
    let validation = match super::state::valid_flows(&paths, Some("replaying"))? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async move {
        let store = state.open().await?;
        // Alone on the state: its lease, for the whole replay. Shared: each flow's work's lease,
        // flow by flow (below).
        let whole = if store.shared() {
            None
        } else {
            match hold(
                &store,
                &state.location(),
                rivulet_runtime::lease::STATE_LEASE,
                args.wait,
            )
            .await?
            {
                Ok(held) => Some(held),
                Err(code) => return Ok(code),
            }
        };
        let release = |held: Option<rivulet_runtime::lease::HeldLease>| async move {
            if let Some(held) = held {
                held.release().await;
            }
        };
        let failures = store
            .find_failures(&FailureFilter {
                flow: args.flow.clone(),
                status: if ids.is_empty() {
                    Some(FailureStatus::Failed)
                } else {
                    None
                },
                ids: (!ids.is_empty()).then(|| ids.clone()),
                limit: 100_000,
                ..FailureFilter::default()
            })
            .await?;
        if let Some(id) = ids.iter().find(|id| !failures.iter().any(|f| f.id == **id)) {
            release(whole).await;
            anyhow::bail!("no failed record with id {id}");
        }
        let mut by_flow: IndexMap<String, Vec<StoredFailure>> = IndexMap::new();
        for f in failures
            .into_iter()
            .filter(|f| matches!(f.status, FailureStatus::Failed | FailureStatus::Replayed))
        {
            by_flow.entry(f.flow.clone()).or_default().push(f);
        }
        if by_flow.is_empty() {
            println!("nothing to replay");
            release(whole).await;
            return Ok(ExitCode::SUCCESS);
        }
        let mut code = exit::OK;
        for (flow, entries) in &by_flow {
            let this = if whole.is_some() {
                None
            } else {
                let lease = super::state::lease_of(&store, &validation, flow);
                match hold(&store, &state.location(), &lease, args.wait).await? {
                    Ok(held) => Some(held),
                    // A runner works on this flow now (said by `hold`): the others go on.
                    Err(_) => {
                        code = code.max(exit::STATE_IN_USE);
                        continue;
                    }
                }
            };
            let fence = whole.as_ref().or(this.as_ref()).map(|h| h.fence());
            let options = RunOptions {
                fence,
                ..RunOptions::default()
            };
            let progress = crate::progress::bar(entries.len() as u64, &format!("replaying {flow}"));
            let result = ops::replay(&validation, store.clone(), &options, flow, entries).await;
            progress.finish_and_clear();
            match result {
                Ok(done) => {
                    println!(
                        "{flow}: {} sent again, {} went through, {} failed again (run {})",
                        done.counts.read, done.counts.succeeded, done.counts.failed, done.run_id
                    );
                    for (id, why) in &done.skipped {
                        println!("  #{id} not replayed: {why}");
                    }
                    if done.counts.failed > 0 || !done.skipped.is_empty() {
                        code = code.max(exit::FAILED);
                    }
                }
                Err(OpsError::Page(why)) => {
                    println!("{flow}: {why}; nothing was recorded, replay again once it is back");
                    code = code.max(exit::GAVE_UP_WAITING);
                }
                Err(e) => {
                    release(this).await;
                    release(whole).await;
                    return Err(e).with_context(|| format!("replaying {flow}"));
                }
            }
            release(this).await;
        }
        release(whole).await;
        Ok(ExitCode::from(code))
    })
}
