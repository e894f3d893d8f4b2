//! `rivulet plan FLOW…`: what a run of these flows would change, record by record, before it
//! runs. Reads what a run would read now (the trigger's window from its cursor, the source from
//! its checkpoint), maps, applies `when:`, batch-reads the HubSpot records the writes would go
//! to (by id or by the property matched on) and prints `create`, `update` with `field: old →
//! new`, `unchanged`, `filtered` or `would fail: why`. It writes nothing and moves no cursor.
//!
//! ```sh
//! rivulet plan customers-to-contacts                  # against the real portal
//! rivulet plan customers-to-contacts --sandbox        # against the built-in sandbox
//! rivulet plan orders flows/ --format json            # for a review step in CI
//! ```
//!
//! Exit codes: 0 planned (nothing would fail); 1 some record would fail, or the flows are
//! invalid; 2 usage or I/O error (an unknown flow, with a did-you-mean).

use super::state::default_state;
use crate::render;
use anyhow::Context as _;
use rivulet_runtime::connector::{PlanEntry, PlanSink, Planned};
use rivulet_runtime::runner::{self, RunOptions};
use rivulet_runtime::state;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per record and action, then a summary.
    Human,
    /// One JSON document (stable, versioned).
    Json,
}

/// Arguments of `rivulet plan`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet plan customers-to-contacts --sandbox\n  rivulet plan orders flows/ --format json\n\nIt writes nothing and moves no cursor.\n\nExit codes: 0 planned (nothing would fail), 1 some record would fail or the flows are invalid, 2 usage or I/O error."
)]
pub struct Args {
    /// Flow names, then flow files or directories (anything that exists is a path; default
    /// `flows`).
    #[arg(required = true, value_name = "FLOW|PATH")]
    targets: Vec<String>,
    /// The state store whose cursors say where the flows stand (default: `.rivulet/state.db`
    /// beside the flows, when it exists; else the flows start from their `start_from`).
    #[arg(long, value_name = "PATH|URL", env = "RIVULET_STATE_URL")]
    state: Option<String>,
    /// Plan against the built-in HubSpot sandbox and demo HTTP API instead of the real ends.
    #[arg(long)]
    sandbox: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (paths, names): (Vec<String>, Vec<String>) = args
        .targets
        .iter()
        .cloned()
        .partition(|t| std::path::Path::new(t).exists());
    let mut paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    if paths.is_empty() {
        paths.push(PathBuf::from("flows"));
    }
    if names.is_empty() {
        anyhow::bail!("name the flows to plan (`rivulet plan FLOW… [PATHS]`)");
    }
    let validation = match super::state::valid_flows(&paths, Some("planning"))? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let runtime = super::state::runtime()?;
    runtime.block_on(async move {
        let sink = Arc::new(PlanSink::default());
        let mut options = RunOptions {
            once: true,
            dry_run: true,
            flows: names.clone(),
            plan: Some(Arc::clone(&sink)),
            ..RunOptions::default()
        };
        let mut sandbox = None;
        if args.sandbox {
            let sb = rivulet_sandbox::Sandbox::start(rivulet_sandbox::SandboxConfig {
                demo_data: true,
                ..Default::default()
            })
            .await
            .context("starting the sandbox")?;
            options.overrides.hubspot = Some((sb.url(), "sandbox".into()));
            let (addr, _) = crate::demo::start()
                .await
                .context("starting the demo HTTP API")?;
            options.overrides.http = Some(format!("http://{addr}"));
            sandbox = Some(sb);
        }
        // The flows' cursors, when a state exists; a plan never creates one.
        let scratch = tempfile::Builder::new()
            .prefix("rivulet-plan-")
            .tempdir()
            .context("creating a scratch folder")?;
        let location = match &args.state {
            Some(s) => s.clone(),
            None => {
                let default = default_state(&paths);
                if default.exists() {
                    default.display().to_string()
                } else {
                    scratch.path().join("state.db").display().to_string()
                }
            }
        };
        let store = state::open(&location, options.clock.clone())
            .await
            .with_context(|| format!("opening state {}", state::display_location(&location)))?;
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let summary = runner::run(&validation, store, options, stop).await;
        if let Some(sb) = sandbox {
            sb.shutdown().await;
        }
        let summary = summary?;
        let entries = sink.entries();
        let errors: Vec<String> = summary
            .flows
            .values()
            .flat_map(|f| f.errors.iter().cloned())
            .collect();
        let would_fail = entries
            .iter()
            .filter(|e| matches!(e.planned, Planned::WouldFail { .. }))
            .count();
        match args.format {
            Format::Json => {
                let doc = json!({
                    "version": render::JSON_VERSION,
                    "flows": names,
                    "entries": entries,
                    "summary": tally(&entries),
                    "errors": errors.iter().map(|e| rivulet_http::secrets::scrub(e)).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
            Format::Human => print_human(&entries, &errors),
        }
        Ok(ExitCode::from(if would_fail > 0 || !errors.is_empty() {
            crate::exit::FAILED
        } else {
            crate::exit::OK
        }))
    })
}

/// How many of each change.
fn tally(entries: &[PlanEntry]) -> serde_json::Value {
    let mut t = [0usize; 7];
    for e in entries {
        let i = match e.planned {
            Planned::Create => 0,
            Planned::Update { .. } => 1,
            Planned::Unchanged { .. } => 2,
            Planned::Write { .. } => 3,
            Planned::Filtered => 4,
            Planned::WouldFail { .. } => 5,
        };
        t[i] += 1;
    }
    json!({
        "create": t[0], "update": t[1], "unchanged": t[2], "write": t[3],
        "filtered": t[4], "would_fail": t[5],
    })
}

fn shown(v: &Option<String>) -> String {
    match v {
        Some(v) => rivulet_http::secrets::scrub(&format!("{v:?}")).into_owned(),
        None => "(empty)".into(),
    }
}

fn print_human(entries: &[PlanEntry], errors: &[String]) {
    let mut flow = None;
    for e in entries {
        if flow != Some(&e.flow) {
            println!("{}", render::printable(&e.flow));
            flow = Some(&e.flow);
        }
        let target = e
            .target
            .as_deref()
            .map(|t| format!(" → {t}"))
            .unwrap_or_default();
        let record = render::printable(&e.record);
        match &e.planned {
            Planned::Create => println!("  {record}{target}: create"),
            Planned::Update { id, fields } => {
                println!("  {record}{target}: update {id}");
                for f in fields {
                    println!(
                        "      {}: {} → {}",
                        render::printable(&f.field),
                        render::printable(&shown(&f.old)),
                        render::printable(&shown(&f.new))
                    );
                }
            }
            Planned::Unchanged { id } => println!("  {record}{target}: unchanged ({id})"),
            Planned::Write { what } => println!("  {record}: {}", render::printable(what)),
            Planned::Filtered => println!("  {record}{target}: filtered by `when`"),
            Planned::WouldFail { reason } => println!(
                "  {record}{target}: would fail: {}",
                render::printable(&rivulet_http::secrets::scrub(reason))
            ),
        }
    }
    for e in errors {
        println!("error: {}", rivulet_http::secrets::scrub(e));
    }
    let t = tally(entries);
    println!(
        "plan: {} create, {} update, {} unchanged, {} other writes, {} filtered, {} would fail (nothing was written)",
        t["create"], t["update"], t["unchanged"], t["write"], t["filtered"], t["would_fail"]
    );
}
