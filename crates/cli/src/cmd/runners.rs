//! `rivulet runners`: the runners working on a state, what each holds, and when each was last
//! heard from.
//!
//! ```sh
//! rivulet runners --state postgres://rivulet@db/rivulet
//! rivulet runners --format json
//! ```
//!
//! Exit codes: 0 listed; 2 usage or I/O error.

use super::state::{Format, StateArgs, runtime};
use chrono::{DateTime, Utc};
use rivulet_runtime::lease;
use rivulet_runtime::state::Lease;
use serde_json::json;
use std::process::ExitCode;

/// Arguments of `rivulet runners`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet runners --state postgres://rivulet@db/rivulet\n  rivulet runners --format json\n\nExit codes: 0 listed, 2 usage or I/O error."
)]
pub struct Args {
    #[command(flatten)]
    state: StateArgs,
    /// Output: `human` or `json`.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

/// What a lease says of its holder, as of `now`.
fn state_of(lease: &Lease, now: DateTime<Utc>) -> &'static str {
    if lease.expires_at.timestamp_millis() == 0 {
        "released"
    } else if lease.expires_at > now {
        "live"
    } else {
        "lapsed"
    }
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = args.state.open().await?;
        let leases = store.leases().await?;
        let now = Utc::now();
        // A runner is known by its heartbeat (shared state) or by the whole state's lease.
        let runners: Vec<&Lease> = leases
            .iter()
            .filter(|l| l.name.starts_with("runner:") || l.name == lease::STATE_LEASE)
            .collect();
        let work_of = |holder: &str| -> Vec<&Lease> {
            leases
                .iter()
                .filter(|l| {
                    l.name.starts_with("work:")
                        && l.holder.id == holder
                        && state_of(l, now) == "live"
                })
                .collect()
        };
        if args.format == Format::Json {
            let doc = json!({
                "version": crate::render::JSON_VERSION,
                "shared": store.shared(),
                "runners": runners.iter().map(|r| json!({
                    "id": r.holder.id,
                    "pid": r.holder.pid,
                    "host": r.holder.host,
                    "since": at(r.holder.since),
                    "state": state_of(r, now),
                    "lease_expires_at": at(r.expires_at),
                    "work": work_of(&r.holder.id).iter().map(|w| json!({
                        "lease": w.name,
                        "token": w.token,
                        "expires_at": at(w.expires_at),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "unowned": leases.iter().filter(|l| l.name.starts_with("work:") && state_of(l, now) != "live").map(|l| json!({
                    "lease": l.name,
                    "last_holder": l.holder.id,
                    "state": state_of(l, now),
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(ExitCode::SUCCESS);
        }
        if runners.is_empty() {
            println!("(no runner has worked on this state yet)");
            return Ok(ExitCode::SUCCESS);
        }
        for r in &runners {
            let state = state_of(r, now);
            let heard = match state {
                "live" => format!("lease until {}", at(r.expires_at)),
                "released" => "stopped cleanly".to_string(),
                _ => format!("lapsed at {}", at(r.expires_at)),
            };
            println!("{} · {state} · {heard}", r.holder);
            let work = work_of(&r.holder.id);
            for w in &work {
                let what = w.name.strip_prefix("work:").unwrap_or(&w.name);
                println!("    {what} (token {})", w.token);
            }
            if r.name.starts_with("runner:") && work.is_empty() && state == "live" {
                println!("    (no work held)");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
