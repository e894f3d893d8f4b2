//! `rivulet sandbox`: the in-memory HubSpot CRM on 127.0.0.1, for trying flows, exploring the
//! API with curl, and pointing a connection's `base_url` at.

use anyhow::Context as _;
use rivulet_sandbox::{RateLimit, Sandbox, SandboxConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `rivulet sandbox`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  rivulet sandbox --port 8086\n  rivulet sandbox --rate-limit 100/10s --search-per-second 5 --no-demo\n\nExit codes: 0 stopped by SIGINT/SIGTERM, 2 usage error or the port is taken."
)]
pub struct Args {
    /// Port to listen on (127.0.0.1 only; 0 picks a free one).
    #[arg(long, default_value_t = 8086)]
    port: u16,
    /// Seed records from a JSON file: `{"companies": [{…properties…}], "contacts": [...]}`.
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Start empty instead of with the demo companies and contacts.
    #[arg(long)]
    no_demo: bool,
    /// Accept only this bearer token (repeatable; default: any non-empty token).
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// A rolling request limit like HubSpot's burst limit, e.g. `100/10s` (answered with 429s).
    #[arg(long, value_name = "N/WINDOW")]
    rate_limit: Option<RateLimit>,
    /// Search requests allowed per second (HubSpot: 5).
    #[arg(long, value_name = "N")]
    search_per_second: Option<u32>,
    /// Requests allowed per day.
    #[arg(long, value_name = "N")]
    daily_limit: Option<u64>,
    /// Send `Retry-After` with 429s.
    #[arg(long)]
    retry_after: bool,
    /// Share of requests answered with an injected 502/503 (0.0–1.0).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    fault_rate: f64,
    /// Share of connections dropped without an answer (0.0–1.0).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    drop_rate: f64,
    /// Latency added to every API request, e.g. `50ms`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    latency: Option<Duration>,
    /// How long writes stay invisible to search, e.g. `2s` (HubSpot's index lag).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    search_lag: Option<Duration>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    rivulet_spec::model::Duration::parse(s).map(|d| d.get())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for (name, rate) in [
        ("--fault-rate", args.fault_rate),
        ("--drop-rate", args.drop_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            anyhow::bail!("{name} must be between 0 and 1, not {rate}");
        }
    }
    let config = SandboxConfig {
        port: args.port,
        tokens: args.tokens,
        rate_limit: args.rate_limit,
        search_per_second: args.search_per_second,
        daily_limit: args.daily_limit,
        retry_after: args.retry_after,
        fault_rate: args.fault_rate,
        drop_rate: args.drop_rate,
        latency: args.latency.unwrap_or_default(),
        search_lag: args.search_lag.unwrap_or_default(),
        demo_data: !args.no_demo,
        seed_file: args.seed,
        ..SandboxConfig::default()
    };
    let runtime = super::state::runtime()?;
    runtime.block_on(async move {
        let sandbox = Sandbox::start(config).await.context("starting the sandbox")?;
        let url = sandbox.url();
        let store = sandbox.store();
        // One write, and a closed stdout (a script that read the first line and left) is not a
        // reason to stop serving.
        let banner = format!(
            "HubSpot sandbox listening on {url}\n  {} companies, {} contacts\n  try:  curl -s -H 'Authorization: Bearer test' '{url}/crm/v3/objects/contacts?limit=2'\n        curl -s '{url}/_sandbox/stats'\n  point a connection at it with `base_url: {url}`; Ctrl-C stops it\n",
            store.count("companies").unwrap_or(0),
            store.count("contacts").unwrap_or(0)
        );
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
        }
        tokio::signal::ctrl_c().await.ok();
        sandbox.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
